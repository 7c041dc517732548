/*
 * addr: RFC 5321 envelope paths (§4.1.2), parsed strictly. Pure: no I/O, no
 * allocation; every byte comes from a peer (fuzz/fuzz_addr.c).
 *
 * Accepted: "<>" (where allowed), "<Postmaster>" (where allowed), and
 * "<[@route,@route:]local@domain>" with local a Dot-string or a
 * Quoted-string and domain a name or an address literal ([IPv4],
 * [IPv6:...], [tag:...]). A source route is parsed and dropped (RFC 5321
 * §C). Refused: no angle brackets, RFC 822 phrases or comments, bare
 * addresses, anything after '>' that is not the caller's (the parser stops
 * at '>').
 */
#ifndef BACKMX_ADDR_H
#define BACKMX_ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX	64	/* RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX	255	/* RFC 5321 §4.5.3.1.2 */
#define ADDR_PATH_MAX	256	/* RFC 5321 §4.5.3.1.3, with the brackets */

struct mailaddr {
	/* Local part exactly as sent (a Quoted-string keeps its quotes and
	 * backslashes), "" for the null path. */
	char	local[ADDR_LOCAL_MAX + 1];
	/* Domain as sent (an address literal keeps its brackets), "" for the
	 * null path and for <Postmaster>. */
	char	domain[ADDR_DOMAIN_MAX + 1];
	unsigned is_null:1;	/* <> */
	unsigned is_literal:1;	/* domain is [address literal] */
	unsigned is_quoted:1;	/* local part is a Quoted-string */
	unsigned has_route_chars:1; /* '%', '!' or a quoted '@' in the
				     local part: sender routing */
	unsigned is_utf8:1;	/* bytes >= 0x80 (RFC 6531) */
};

enum addr_err {
	ADDR_OK = 0,
	ADDR_ERR_SYNTAX,	/* 501 5.1.7 (MAIL) / 501 5.1.3 (RCPT) */
	ADDR_ERR_NO_BRACKETS,	/* bare address or RFC 822 phrase */
	ADDR_ERR_LOCAL_TOO_LONG,
	ADDR_ERR_DOMAIN_TOO_LONG,
	ADDR_ERR_PATH_TOO_LONG,
	ADDR_ERR_NULL_NOT_ALLOWED,
	ADDR_ERR_UTF8,		/* 8-bit bytes without SMTPUTF8, or bad UTF-8 */
};

/* Flags for addr_parse_path(). */
#define ADDR_ALLOW_NULL		0x01	/* MAIL FROM:<> */
#define ADDR_ALLOW_POSTMASTER	0x02	/* RCPT TO:<Postmaster> */
#define ADDR_ALLOW_UTF8		0x04	/* SMTPUTF8 given: UTF-8 allowed */

/*
 * Parse the path at the start of s (len bytes, not NUL-terminated; s[0]
 * must be '<'). On ADDR_OK, fills *out and sets *consumed_out to the number
 * of bytes through the closing '>'. On error *out is unspecified.
 */
enum addr_err	addr_parse_path(const char *s, size_t len, int flags,
		    struct mailaddr *out, size_t *consumed_out);

/* A short human text for an error, for the reply ("bad address syntax"). */
const char	*addr_strerror(enum addr_err);

/*
 * Write "local@domain" (or "" for <>, "Postmaster" for <Postmaster>) into
 * buf; returns the length, or -1 when it did not fit (buf still holds a
 * NUL-terminated prefix). ADDR_PATH_MAX + 1 bytes always fit.
 */
int		addr_format(const struct mailaddr *, char *buf, size_t sz);

/*
 * Domain syntax (RFC 5321 §4.1.2 Domain: sub-domain *("." sub-domain),
 * Let-dig [Ldh-str]); a trailing dot is refused; U-labels allowed when
 * allow_utf8. Returns 1 when valid. Used for EHLO/HELO and ETRN too.
 */
int		addr_domain_valid(const char *d, size_t len, int allow_utf8);

#endif
