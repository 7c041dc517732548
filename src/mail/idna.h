/*
 * idna: domain names to the one form backmx compares, looks up, stores
 * and logs -- the A-label form of IDNA2008 (RFC 5890/5891) with the
 * UTS #46 mapping (non-transitional), done by libidn2. Pure: no I/O, no
 * state; every byte may be a peer's (fuzz/fuzz_idna.c).
 *
 * docs/smtp.md, "International mail": done once, at the door (MAIL and
 * RCPT, the domains file), so that every later comparison is of ASCII.
 */
#ifndef BACKMX_IDNA_H
#define BACKMX_IDNA_H

#include <stddef.h>

enum idna_err {
	IDNA_OK = 0,
	IDNA_ERR_INVALID,	/* not a valid IDNA2008 name */
	IDNA_ERR_TOO_LONG,	/* the A-label form is over 255 octets */
};

/*
 * Write the A-label form of the domain d (len octets, ASCII or UTF-8,
 * already a syntactically valid Domain by addr.h's rules) into out
 * (outsz octets, NUL-terminated). A name of LDH labels only, none of
 * them "xn--", is copied as it is (its case too: DNS and every table of
 * backmx compare case-blind); anything else is mapped and checked by
 * libidn2, comes out lower case and is a valid ASCII domain
 * (addr_domain_valid(.., 0)). On error *why (when not NULL) is a
 * short static text for the reply and the log. Never a transient error:
 * the conversion is a pure function of its input.
 */
enum idna_err	idna_to_alabel(const char *d, size_t len, char *out,
		    size_t outsz, const char **why);

/*
 * The U-label form of an A-label domain for logs ("" when it has none,
 * i.e. it is plain ASCII, or cannot be decoded). Always NUL-terminated.
 */
void		idna_to_ulabel(const char *alabel, char *out, size_t outsz);

/* 1 when some label of the ASCII name d starts with "xn--" (any case). */
int		idna_has_alabel(const char *d, size_t len);

#endif
