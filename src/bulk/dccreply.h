/*
 * dccreply: the answer of a site's own DCC daemon, dccifd, parsed
 * (docs/bulk.md §7). dccifd answers a message with a result line (one
 * letter), a line with one letter per recipient, and, asked with the
 * "header" option, its X-DCC header, possibly folded, then closes. The
 * parser takes the whole answer at once (bounded by DCCIFD_REPLY_MAX) and
 * is strict: anything else is garbage, which the caller treats as dccifd
 * failing. Peer input: fuzz/fuzz_dccifd.c.
 */
#ifndef BACKMX_DCCREPLY_H
#define BACKMX_DCCREPLY_H

#include <stddef.h>

#define DCCIFD_REPLY_MAX	4096	/* the whole answer, bytes */
#define DCCIFD_HEADER_MAX	1024	/* the X-DCC header, unfolded */
#define DCCIFD_RCPTS_MAX	1000	/* letters on the recipients' line */

enum dccifd_parse {
	DCCIFD_OK = 0,
	DCCIFD_SHORT = -1,	/* cut before its last line ended */
	DCCIFD_GARBAGE = -2,	/* not an answer of the protocol */
};

struct dccifd_reply {
	char	result;		/* 'A', 'R', 'S', 'T', 'G' */
	int	bulk;		/* the header says bulk (docs/bulk.md §7) */
	/* "X-DCC-...-Metrics: ..." unfolded, or "" when none came. */
	char	header[DCCIFD_HEADER_MAX];
};

/* Parse the answer in buf (what came before dccifd closed) for a message
 * of nrcpt recipients. Returns enum dccifd_parse; *out is filled on OK. */
int	dccifd_parse(const char *buf, size_t len, size_t nrcpt,
	    struct dccifd_reply *out);

#endif
