/*
 * reply: strict parser of a primary's SMTP replies (RFC 5321 §4.2), one
 * line at a time. Pure, no I/O, no allocation: every byte comes from a
 * peer (fuzz/fuzz_reply.c).
 *
 * A reply is lines "ddd-text" ending with "ddd text" or "ddd"; the first
 * digit 2 to 5, the second 0 to 5; every line the same code. Refused as a
 * protocol error (the caller defers, never bounces): a malformed line, a
 * code that changes inside a reply, a line over REPLY_LINE_MAX octets, more
 * than REPLY_LINES_MAX lines. The text kept is bounded (REPLY_TEXT_MAX):
 * memory stays bounded however long a reply runs.
 */
#ifndef BACKMX_REPLY_H
#define BACKMX_REPLY_H

#include <stddef.h>

#define REPLY_LINE_MAX	1000	/* RFC 5321 says 512; be kind, not endless */
#define REPLY_LINES_MAX	100
#define REPLY_TEXT_MAX	4096

enum reply_status {
	REPLY_MORE,	/* a continuation line: feed the next */
	REPLY_DONE,	/* the last line: the reply is complete */
	REPLY_BAD,	/* protocol error; the reply is unusable */
};

struct reply {
	int		code;		/* 0 before the first line */
	char		enh[16];	/* "5.1.1" of the first line, or "" */
	char		text[REPLY_TEXT_MAX]; /* lines' texts, '\n' between */
	size_t		textlen;
	unsigned	nlines;
	int		truncated;	/* text was cut at REPLY_TEXT_MAX */
};

void		reply_init(struct reply *);
/* Feed one line without its CRLF (len bytes, may hold any byte). */
enum reply_status reply_feed(struct reply *, const char *line, size_t len);
/* The first line's text after the enhanced code, for logs and DSNs. */
const char	*reply_first_text(const struct reply *, size_t *len_out);
/*
 * For an EHLO reply: 1 when a line after the first starts with keyword
 * (case-insensitive) followed by the end or a space; its parameter text
 * goes to param (paramsz bytes, may be NULL).
 */
int		reply_has_keyword(const struct reply *, const char *keyword,
		    char *param, size_t paramsz);

#endif
