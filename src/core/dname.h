/*
 * dname: the one domain-name validator. Every host or domain name that
 * backmx reads (the peer's EHLO and path domains, backmx.conf, the domains
 * file, DNSBL zones, greylist allow lists, admin requests) is checked here,
 * with the few real differences between those places as flags.
 *
 * The strict base (RFC 1035 §2.3.4, RFC 5321 §4.1.2 sub-domain): labels of
 * letters, digits and hyphens, 1 to 63 octets, no hyphen at either end of a
 * label, dots between labels only (no leading, doubled or trailing dot),
 * 253 octets at most (a DNS name's 255 less its length octets). Case is
 * not folded: the callers that store a name lower-case it (str_lower()).
 */
#ifndef BACKMX_DNAME_H
#define BACKMX_DNAME_H

#include <stddef.h>

#define DNAME_MAX	253

enum dname_flag {
	/* Two labels at least: not "localhost". The domains file (a
	 * customer domain is one, whatever its top level) and DNSBL
	 * zones. */
	DNAME_DOTTED		= 1 << 0,
	/* '_' in labels, as in DNSBL zones (a DQS key is a label) and in
	 * the host names of real PTR records a greylist allow list may
	 * name. Never for names a peer gives us. */
	DNAME_UNDERSCORE	= 1 << 1,
	/* U-labels (RFC 6531 §3.3): well-formed UTF-8 mixed with letters,
	 * digits and inner hyphens, at most 59 code points a label (its
	 * A-label's "xn--" plus one octet a code point must fit 63). We
	 * cannot run IDNA2008 here; the resolver refuses the rest. */
	DNAME_UTF8		= 1 << 2,
	/* 255 octets rather than 253: RFC 5321 §4.5.3.1.2's limit for the
	 * domain of a path, which is what the peer is held to. */
	DNAME_SMTP_LENGTH	= 1 << 3,
	/* The last label not all digits (RFC 3696 §2: no top-level domain
	 * is numeric), so not "192.0.2.1" either. */
	DNAME_ALPHA_TLD		= 1 << 4,
	/* A name mail can be addressed to: the peer's FQDN check. */
	DNAME_FQDN		= DNAME_DOTTED | DNAME_ALPHA_TLD,
};

enum dname_err {
	DNAME_OK = 0,
	DNAME_ERR_SYNTAX,	/* a bad byte, label or dot */
	DNAME_ERR_UTF8,		/* a byte >= 0x80 not allowed or not UTF-8 */
	DNAME_ERR_TOO_LONG,	/* well-formed, but over the length limit */
	DNAME_ERR_NOT_FQDN,	/* well-formed, but DNAME_DOTTED or
				 * DNAME_ALPHA_TLD refuses it */
};

/*
 * Check n bytes at s (not NUL-terminated; a NUL byte is a syntax error)
 * under flags (enum dname_flag, or-ed). The first malformed label
 * decides; the length is checked once the syntax is good, the FQDN rules
 * last.
 */
enum dname_err	dname_check(const char *s, size_t n, unsigned flags);

/* dname_check() == DNAME_OK, for a NUL-terminated name. */
int		dname_valid(const char *s, unsigned flags);

#endif
