/*
 * mime7: an 8-bit MIME message to 7 bit, streaming, in bounded memory
 * (RFC 6152 §3: what a relay does for a next hop without 8BITMIME).
 * Every leaf part that is not already quoted-printable or base64 is
 * encoded: text/... as quoted-printable (Postfix's choice, readable), any
 * other as base64; its Content-Transfer-Encoding header is rewritten,
 * nested multiparts are followed by their boundaries. Decoded, every
 * part is what was sent.
 *
 * Refused (mime7_feed returns -1, mime7_error says why), since no
 * conversion keeps them intact: 8-bit bytes in a header (that needs
 * SMTPUTF8 or RFC 2047, not a transfer encoding), inside a message/...
 * part, inside multipart/signed (re-encoding breaks the signature), in
 * a part already declared quoted-printable or base64, in a preamble or
 * an epilogue; a part header over MIME7_HDR_MAX octets; multiparts
 * nested deeper than MIME7_DEPTH_MAX.
 *
 * Input: the message as the recipient sees it (no dot-stuffing), lines
 * ended by CRLF, in chunks of any size. Every byte is a peer's
 * (fuzz/fuzz_mime7.c). Output goes to the callback, in order.
 */
#ifndef BACKMX_MIME7_H
#define BACKMX_MIME7_H

#include <stddef.h>

#define MIME7_HDR_MAX	(32 * 1024)	/* one part's header */
#define MIME7_DEPTH_MAX	16		/* multiparts in multiparts */
#define MIME7_LINE_MAX	1024		/* a longer line is cut in pieces */

struct mime7;
typedef void	mime7_out(const char *, size_t, void *arg);

struct mime7	*mime7_new(mime7_out *, void *arg);
/* -1 once the message cannot be converted; nothing more is written. */
int		 mime7_feed(struct mime7 *, const char *, size_t);
/* The end of the message: what is held is written. -1 as above. */
int		 mime7_end(struct mime7 *);
const char	*mime7_error(const struct mime7 *);
void		 mime7_free(struct mime7 *);

#endif
