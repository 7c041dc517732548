/*
 * esmtp: MAIL and RCPT parameters (RFC 5321 §4.1.2 esmtp-param), validated
 * and decoded. Pure, fuzzable, every byte from a peer.
 *
 * MAIL: SIZE (RFC 1870), BODY=7BIT|8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531,
 * no value), RET=FULL|HDRS and ENVID=xtext (RFC 3461).
 * RCPT: NOTIFY=NEVER|SUCCESS,FAILURE,DELAY and ORCPT=addr-type;xtext
 * (RFC 3461). Keywords are case-insensitive; a keyword given twice is a
 * syntax error; xtext is decoded and must decode to printable US-ASCII.
 */
#ifndef BACKMX_ESMTP_H
#define BACKMX_ESMTP_H

#include <stdint.h>
#include <stddef.h>

#define ESMTP_ENVID_MAX		100	/* RFC 3461 §4.4, decoded */
#define ESMTP_ORCPT_MAX		500	/* RFC 3461 §4.2, decoded */

enum esmtp_body { ESMTP_BODY_NONE, ESMTP_BODY_7BIT, ESMTP_BODY_8BITMIME };
enum esmtp_ret { ESMTP_RET_NONE, ESMTP_RET_FULL, ESMTP_RET_HDRS };

#define ESMTP_NOTIFY_NEVER	0x01
#define ESMTP_NOTIFY_SUCCESS	0x02
#define ESMTP_NOTIFY_FAILURE	0x04
#define ESMTP_NOTIFY_DELAY	0x08

struct mail_params {
	uint64_t	size;		/* valid when has_size */
	unsigned	has_size:1;
	unsigned	smtputf8:1;
	enum esmtp_body	body;
	enum esmtp_ret	ret;
	char		envid[ESMTP_ENVID_MAX + 1];	/* decoded, "" if none */
};

struct rcpt_params {
	int		notify;		/* ESMTP_NOTIFY_* bits, 0 if none */
	char		orcpt_type[32];	/* "rfc822", "utf-8", ... or "" */
	char		orcpt[ESMTP_ORCPT_MAX + 1];	/* decoded, "" if none */
};

/* Why a parameter list was refused: static strings, code per RFC 5321. */
struct esmtp_error {
	int		 code;		/* 501 or 555 */
	const char	*enhanced;	/* "5.5.4" */
	const char	*text;		/* e.g. "Unsupported MAIL parameter" */
};

/*
 * Parse the parameters after the path: s is what follows '>' (len bytes,
 * not NUL-terminated), either empty or starting with a space, parameters
 * separated by one or more spaces (a tab or control byte is bad syntax).
 * Returns 0 and fills *out, or -1 and fills *err (*out is then
 * unspecified): 555 5.5.4 for an unknown keyword (RFC 5321 §4.1.1.11) and
 * for BODY=BINARYMIME (not offered), 501 5.5.4 for a known keyword with a
 * bad value, a repeated keyword or bad syntax.
 * A SIZE larger than UINT64_MAX is a syntax error; comparing SIZE with the
 * limit is the caller's.
 */
int	esmtp_parse_mail(const char *s, size_t len, struct mail_params *out,
	    struct esmtp_error *err);
int	esmtp_parse_rcpt(const char *s, size_t len, struct rcpt_params *out,
	    struct esmtp_error *err);

/*
 * Decode RFC 3461 §4 xtext (s, len) into out (outsz bytes, NUL-terminated).
 * xchar is 0x21..0x7e but '+' and '='; "+XX" uses upper-case hex only.
 * Every decoded byte must be printable US-ASCII or space (0x20..0x7e), as
 * ENVID and ORCPT require. Returns the decoded length, or -1 on bad syntax,
 * a forbidden byte or overflow.
 */
int	esmtp_xtext_decode(const char *s, size_t len, char *out, size_t outsz);
/* Encode into xtext for sending on; returns length or -1 on overflow. */
int	esmtp_xtext_encode(const char *s, size_t len, char *out, size_t outsz);

/*
 * The MAIL and RCPT command lines (no CRLF) to send on to a next hop, with
 * the parameters it offered in its EHLO reply (ESMTP_EXT_* bits): SIZE
 * when 'size' is not 0, BODY=, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT.
 * 'has_8bit': the body is known to hold 8-bit bytes (BODY=8BITMIME is then
 * said even if the sender did not). 'addr' is the path without brackets.
 * Returns the length, or -1 when it does not fit in bufsz.
 */
#define ESMTP_EXT_SIZE		0x01
#define ESMTP_EXT_8BITMIME	0x02
#define ESMTP_EXT_SMTPUTF8	0x04
#define ESMTP_EXT_DSN		0x08
int	esmtp_mail_line(char *buf, size_t bufsz, const char *addr,
	    const struct mail_params *, uint64_t size, int has_8bit,
	    unsigned ext);
int	esmtp_rcpt_line(char *buf, size_t bufsz, const char *addr,
	    const struct rcpt_params *, unsigned ext);

#endif
