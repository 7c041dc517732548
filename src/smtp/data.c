/*
 * data: the DATA scanner, between the session's socket reads and the body
 * buffer. Every byte a client sends after "354" passes through here, up to
 * message_size_limit (500 MB) and beyond while the session reads on to the
 * dot after an overrun, so the common case -- a run of ordinary bytes --
 * costs one word-at-a-time scan and one sink call per feed.
 *
 * Exposed to peer bytes, split anywhere. It owns nothing, allocates nothing
 * and never buffers: all it carries between feeds is its state (at most a
 * line-leading "." and a CR held back) and a line length. It must never end
 * the data anywhere but at a CR LF "." CR LF whose first CR LF was real:
 * a scanner that honours a bare LF or CR here is an SMTP smuggling hole
 * (CVE-2023-51764), so bare ones are flagged and passed on as text.
 */
#include "data.h"

#include <string.h>

#include "log.h"

/*
 * RFC 5322 §2.1.1: at most 998 characters a line, CRLF excluded. Counted on
 * the message (unstuffed) octets: the line the recipient will see.
 */
#define DATA_LINE_MAX	998

enum {
	ST_BOL = 0,	/* at the beginning of a line (after a real CRLF) */
	ST_TEXT,	/* inside a line */
	ST_CR,		/* inside a line, just after a CR (emitted) */
	ST_DOT,		/* line-leading "." seen (dropped) */
	ST_DOTCR,	/* line-leading "." CR seen (both held back) */
};

/* Bytes the run scanner stops at or takes note of. */
#define C_STOP	0x100	/* CR or LF: the state machine decides */

/* Word-at-a-time helpers (Mycroft): nonzero iff some byte of v is 0. */
#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL
#define HASZERO(v)	(((v) - ONES) & ~(v) & HIGHS)

static int
byte_class(unsigned char c)
{
	if (c == '\r' || c == '\n')
		return C_STOP;
	if (c == '\0')
		return DATA_HAS_NUL;
	if (c >= 0x80)
		return DATA_HAS_8BIT;
	return 0;
}

/*
 * Length of the run of bytes at p before the first CR or LF (or end),
 * OR-ing the 8-bit and NUL flags of that run into *flags. Eight bytes a
 * step while nothing interesting is in them; once a flag is set, its bytes
 * stop being interesting, so 8-bit text runs at word speed too.
 */
static size_t
scan_run(const unsigned char *p, const unsigned char *end, int *flags)
{
	const unsigned char *s = p;
	uint64_t v, hi;
	int c, f = *flags;

	while (end - p >= 8) {
		memcpy(&v, p, sizeof(v));
		hi = (f & DATA_HAS_8BIT) ? 0 : (v & HIGHS);
		if ((HASZERO(v ^ (ONES * '\r')) | HASZERO(v ^ (ONES * '\n')) |
		    ((f & DATA_HAS_NUL) ? 0 : HASZERO(v)) | hi) == 0) {
			p += 8;
			continue;
		}
		/* Something in these eight: look at them one by one. */
		for (const unsigned char *w = p + 8; p < w; p++) {
			if ((c = byte_class(*p)) & C_STOP)
				goto out;
			f |= c;
		}
	}
	for (; p < end; p++) {
		if ((c = byte_class(*p)) & C_STOP)
			break;
		f |= c;
	}
out:
	*flags = f;
	return (size_t)(p - s);
}

static void
emit(struct data_scan *ds, const unsigned char *buf, size_t len,
    data_sink_cb *sink, void *arg)
{
	if (len == 0)
		return;
	ds->size += len;
	if (sink != NULL)
		sink((const char *)buf, len, arg);
}

void
data_scan_init(struct data_scan *ds)
{
	/* The 354 reply counts as a line end: ".\r\n" first is empty data. */
	ds->state = ST_BOL;
	ds->linelen = 0;
	ds->size = 0;
	ds->flags = 0;
}

/*
 * Output equals input except for dropped line-leading dots and the held
 * back ".\r", so 'span' marks the start of input bytes not yet emitted and
 * only those two cases cut it.
 */
size_t
data_scan_feed(struct data_scan *ds, const char *in, size_t len,
    int *done_out, data_sink_cb *sink, void *arg)
{
	static const unsigned char cr[1] = { '\r' };
	const unsigned char *p = (const unsigned char *)in;
	const unsigned char *end = p + len, *span = p;
	size_t linelen = ds->linelen, n;
	int state = ds->state, flags = ds->flags;

	*done_out = 0;
	while (p < end) {
		switch (state) {
		case ST_TEXT:
			n = scan_run(p, end, &flags);
			linelen += n;
			p += n;
			if (p == end)
				break;
			if (*p == '\r')
				state = ST_CR;
			else {
				/* Bare LF: text, never a line end. */
				flags |= DATA_ERR_BARE;
				linelen++;
			}
			p++;
			break;
		case ST_CR:
			if (*p == '\n') {
				if (linelen > DATA_LINE_MAX)
					flags |= DATA_LONG_LINE;
				linelen = 0;
				state = ST_BOL;
				p++;
				break;
			}
			/* Bare CR: one octet of text; *p is looked at again. */
			flags |= DATA_ERR_BARE;
			linelen++;
			state = ST_TEXT;
			break;
		case ST_BOL:
			if (*p == '.') {
				/* RFC 5321 §4.5.2: dropped, whatever follows */
				ds->flags = flags;
				emit(ds, span, (size_t)(p - span), sink, arg);
				span = ++p;
				state = ST_DOT;
			} else
				state = ST_TEXT;
			break;
		case ST_DOT:
			if (*p == '\r') {
				/* Maybe the end: hold the CR back. */
				span = ++p;
				state = ST_DOTCR;
			} else
				state = ST_TEXT;	/* a bare LF too */
			break;
		case ST_DOTCR:
			if (*p == '\n') {
				/* CRLF "." CRLF: the end. Nothing is pending
				 * (span == p), the rest is the next command. */
				p++;
				*done_out = 1;
				state = ST_BOL;
				goto out;
			}
			/* ".\r" then not LF: the CR was bare, it is text. */
			flags |= DATA_ERR_BARE;
			ds->flags = flags;
			emit(ds, cr, 1, sink, arg);
			linelen++;
			state = ST_TEXT;
			break;
		default:
			panic("data: bad scanner state %d", state);
		}
	}
	ds->flags = flags;
	emit(ds, span, (size_t)(p - span), sink, arg);
	/* A line still open counts too; clamp so that no line, however
	 * long, can wrap the counter back under the limit. */
	if (linelen > DATA_LINE_MAX) {
		flags |= DATA_LONG_LINE;
		linelen = DATA_LINE_MAX + 1;
	}
out:
	ds->state = state;
	ds->linelen = linelen;
	ds->flags = flags;
	return (size_t)(p - (const unsigned char *)in);
}
