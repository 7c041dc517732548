/*
 * mime7: 8 bit to 7 bit while the message streams (mime7.h). A line at a
 * time: a part's header is held until its blank line (to know its type
 * and to rewrite its Content-Transfer-Encoding), its body is encoded as
 * it comes. Memory: one line, one part header, the boundary stack; all
 * bounded (mime7.h). Nothing is looked ahead: whether a part is encoded
 * is decided from its header alone, so a leaf part in 7bit, 8bit, binary
 * or with no encoding is always encoded, even when it turns out ASCII --
 * harmless, and the only way without holding the body.
 *
 * The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1):
 * a base64 part holds each line's CRLF back until the next line shows
 * it was content. Quoted-printable keeps lines as lines.
 */
#include "mime7.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "str.h"
#include "xmem.h"

#define BOUNDARY_MAX	70		/* RFC 2046 §5.1.1 */
#define QP_LINE		76		/* RFC 2045 §6.7 (5) */

enum mode {
	M_HEADER,	/* a part's header, held */
	M_PASS,		/* body passed as is, 8 bit refused */
	M_QP,		/* body encoded quoted-printable */
	M_B64,		/* body encoded base64 */
	M_FAILED,
};

struct level {
	char	boundary[BOUNDARY_MAX + 1];
	size_t	blen;
	int	is_signed;
};

struct mime7 {
	mime7_out	*out;
	void		*arg;
	enum mode	 mode;
	const char	*error;

	char		 line[MIME7_LINE_MAX];
	size_t		 llen;

	char		*hdr;		/* MIME7_HDR_MAX */
	size_t		 hlen;
	int		 top;		/* the header is the message's */
	int		 in_signed;	/* inside multipart/signed */
	int		 pass_why_8bit;	/* WHY_*: 8 bit in M_PASS */

	struct level	 lv[MIME7_DEPTH_MAX];
	int		 depth;

	/* encoders */
	int		 crlf_held;	/* base64: a CRLF not yet known to be
					   content */
	unsigned char	 b64[3];
	int		 nb64;
	size_t		 col;		/* output column, both encoders */
};

static const char *const pass_why[] = {
	"8-bit data in a part already quoted-printable or base64",
	"8-bit data in a message/* part",
	"8-bit data in a multipart/signed part",
	"8-bit data in a preamble or epilogue",
};
enum { WHY_ENCODED, WHY_MESSAGE, WHY_SIGNED, WHY_PREAMBLE };

static int
fail(struct mime7 *m, const char *why)
{
	m->mode = M_FAILED;
	m->error = why;
	return -1;
}

static void
emit(struct mime7 *m, const char *s, size_t n)
{
	if (n > 0)
		m->out(s, n, m->arg);
}

static void
emits(struct mime7 *m, const char *s)
{
	emit(m, s, strlen(s));
}

/* --- encoders ------------------------------------------------------------ */

static void
qp_put(struct mime7 *m, const char *s, size_t n)
{
	/* A soft break before a token that would pass column 75 ('=' of
	 * the soft break is the 76th). */
	if (m->col + n > QP_LINE - 1) {
		emit(m, "=\r\n", 3);
		m->col = 0;
	}
	emit(m, s, n);
	m->col += n;
}

/* One piece of a line; 'eol': the line ends after it (whitespace before
 * a line end is encoded, RFC 2045 §6.7 (3)). A piece without eol is cut
 * from a long line: its trailing blank is encoded too, to be safe. */
static void
qp_line(struct mime7 *m, const unsigned char *s, size_t n, int eol)
{
	static const char hex[] = "0123456789ABCDEF";
	char enc[3];
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && i + 1 < n)) {
			qp_put(m, (const char *)&s[i], 1);
			continue;
		}
		enc[0] = '=';
		enc[1] = hex[c >> 4];
		enc[2] = hex[c & 15];
		qp_put(m, enc, 3);
	}
	if (eol) {
		emit(m, "\r\n", 2);
		m->col = 0;
	}
}

static void
b64_group(struct mime7 *m, const unsigned char *g, int n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char o[4];

	o[0] = tab[g[0] >> 2];
	o[1] = tab[((g[0] & 3) << 4) | (n > 1 ? g[1] >> 4 : 0)];
	o[2] = n > 1 ? tab[((g[1] & 15) << 2) | (n > 2 ? g[2] >> 6 : 0)] :
	    '=';
	o[3] = n > 2 ? tab[g[2] & 63] : '=';
	if (m->col >= QP_LINE) {
		emit(m, "\r\n", 2);
		m->col = 0;
	}
	emit(m, o, 4);
	m->col += 4;
}

static void
b64_bytes(struct mime7 *m, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		m->b64[m->nb64++] = s[i];
		if (m->nb64 == 3) {
			b64_group(m, m->b64, 3);
			m->nb64 = 0;
		}
	}
}

/* The part ends: what the encoder holds, and the line end the boundary
 * (or the message's end) needs. */
static void
enc_finish(struct mime7 *m, int keep_crlf)
{
	if (m->mode == M_B64) {
		if (keep_crlf && m->crlf_held)
			b64_bytes(m, (const unsigned char *)"\r\n", 2);
		if (m->nb64 > 0)
			b64_group(m, m->b64, m->nb64);
		if (m->col > 0)
			emit(m, "\r\n", 2);
	} else if (m->mode == M_QP && m->col > 0)
		emit(m, "=\r\n", 3);	/* a cut line never ended */
	m->nb64 = 0;
	m->crlf_held = 0;
	m->col = 0;
}

/* --- headers ----------------------------------------------------------- */

/* The value of header field 'name' in the held header, unfolded into
 * out (lower case); "" when absent. */
static void
field(const struct mime7 *m, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name), i = 0, o = 0;
	const char *h = m->hdr;

	out[0] = '\0';
	while (i < m->hlen) {
		if ((i == 0 || h[i - 1] == '\n') && m->hlen - i > nl &&
		    strncasecmp(h + i, name, nl) == 0 && h[i + nl] == ':') {
			for (i += nl + 1; i < m->hlen; i++) {
				if (h[i] == '\n' && (i + 1 >= m->hlen ||
				    (h[i + 1] != ' ' && h[i + 1] != '\t')))
					break;
				if (h[i] == '\r' || h[i] == '\n')
					continue;
				if (o + 1 < outsz) {
					char c = h[i];

					out[o++] = (c >= 'A' && c <= 'Z') ?
					    (char)(c - 'A' + 'a') : c;
				}
			}
			out[o] = '\0';
			return;
		}
		i++;
	}
}

/* The boundary parameter of a Content-Type value, case kept: it is
 * taken again from the held header (field() folded case). */
static int
boundary_of(const struct mime7 *m, char *out, size_t *len)
{
	const char *h = m->hdr, *end = m->hdr + m->hlen, *p;
	size_t n = 0;

	for (p = h; p + 9 <= end; p++)
		if (strncasecmp(p, "boundary=", 9) == 0)
			break;
	if (p + 9 > end)
		return -1;
	p += 9;
	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"' && *p != '\r' && *p != '\n';
		    p++)
			if (n < BOUNDARY_MAX)
				out[n++] = *p;
			else
				return -1;
	} else {
		for (; p < end && *p != ';' && *p != ' ' && *p != '\t' &&
		    *p != '\r' && *p != '\n'; p++)
			if (n < BOUNDARY_MAX)
				out[n++] = *p;
			else
				return -1;
	}
	if (n == 0)
		return -1;
	out[n] = '\0';
	*len = n;
	return 0;
}

static int
starts(const char *v, const char *prefix)
{
	while (*v == ' ' || *v == '\t')
		v++;
	return strncmp(v, prefix, strlen(prefix)) == 0;
}

/* The held header out, without its Content-Transfer-Encoding field, then
 * the new one (and MIME-Version for a message that had none). */
static void
header_rewrite(struct mime7 *m, const char *cte)
{
	const char *h = m->hdr;
	size_t i = 0, start;
	int skip = 0;
	char mv[8];

	while (i < m->hlen) {
		start = i;
		while (i < m->hlen && h[i] != '\n')
			i++;
		if (i < m->hlen)
			i++;
		if (h[start] != ' ' && h[start] != '\t')
			skip = i - start > 26 && strncasecmp(h + start,
			    "Content-Transfer-Encoding:", 26) == 0;
		if (!skip)
			emit(m, h + start, i - start);
	}
	field(m, "mime-version", mv, sizeof(mv));
	if (m->top && mv[0] == '\0')
		emits(m, "MIME-Version: 1.0\r\n");
	emits(m, "Content-Transfer-Encoding: ");
	emits(m, cte);
	emits(m, "\r\n\r\n");
}

/* A part's header is complete (its blank line came): what its body is. */
static int
header_done(struct mime7 *m)
{
	char ct[256], cte[64];
	struct level *l;

	field(m, "content-type", ct, sizeof(ct));
	field(m, "content-transfer-encoding", cte, sizeof(cte));
	if (ct[0] == '\0')
		snprintf(ct, sizeof(ct), "text/plain");
	if (starts(ct, "multipart/")) {
		if (m->depth == MIME7_DEPTH_MAX)
			return fail(m, "MIME parts nested too deep");
		l = &m->lv[m->depth];
		if (boundary_of(m, l->boundary, &l->blen) == 0) {
			l->is_signed = starts(ct, "multipart/signed") ||
			    m->in_signed;
			m->depth++;
			/* Its parts come out 7 bit: so is the whole. */
			if (starts(cte, "8bit") || starts(cte, "binary"))
				header_rewrite(m, "7bit");
			else {
				emit(m, m->hdr, m->hlen);
				emit(m, "\r\n", 2);
			}
			m->in_signed = l->is_signed;
			m->mode = M_PASS;
			m->pass_why_8bit = WHY_PREAMBLE;
			return 0;
		}
		/* No boundary: not a multipart one can follow; a leaf. */
	}
	if (starts(ct, "message/") || m->in_signed || starts(cte,
	    "quoted-printable") || starts(cte, "base64")) {
		emit(m, m->hdr, m->hlen);
		emit(m, "\r\n", 2);
		m->mode = M_PASS;
		m->pass_why_8bit = starts(ct, "message/") ? WHY_MESSAGE :
		    m->in_signed ? WHY_SIGNED : WHY_ENCODED;
		return 0;
	}
	if (starts(ct, "text/")) {
		header_rewrite(m, "quoted-printable");
		m->mode = M_QP;
	} else {
		header_rewrite(m, "base64");
		m->mode = M_B64;
	}
	m->col = 0;
	return 0;
}

/* --- lines ------------------------------------------------------------- */

/* A boundary of an open multipart (the innermost that matches): its
 * level, with *close for the closing one; -1 when the line is none. */
static int
boundary_line(const struct mime7 *m, const char *s, size_t n, int *close)
{
	int d;
	size_t bl;

	if (n < 2 || s[0] != '-' || s[1] != '-')
		return -1;
	for (d = m->depth - 1; d >= 0; d--) {
		bl = m->lv[d].blen;
		if (n < 2 + bl || memcmp(s + 2, m->lv[d].boundary, bl) != 0)
			continue;
		*close = n >= 4 + bl && s[2 + bl] == '-' && s[3 + bl] == '-';
		return d;
	}
	return -1;
}

/*
 * One line (s, n without its line end; 'eol' when it had one, else it
 * is a piece of a longer line and more of it follows).
 */
static int
line(struct mime7 *m, const char *s, size_t n, int eol)
{
	int d, close;

	if (m->mode == M_HEADER) {
		if (!eol)
			return fail(m, "header line too long to convert");
		if (str_has_8bit(s, n))
			return fail(m, "8-bit data in a header (needs "
			    "SMTPUTF8)");
		if (n == 0)
			return header_done(m);
		if (m->hlen + n + 2 > MIME7_HDR_MAX)
			return fail(m, "part header too long to convert");
		memcpy(m->hdr + m->hlen, s, n);
		memcpy(m->hdr + m->hlen + n, "\r\n", 2);
		m->hlen += n + 2;
		return 0;
	}
	if (eol && (d = boundary_line(m, s, n, &close)) != -1) {
		if (str_has_8bit(s, n))
			return fail(m, "8-bit data after a boundary");
		enc_finish(m, 0);
		emit(m, s, n);
		emit(m, "\r\n", 2);
		m->depth = d + 1;
		m->in_signed = m->lv[d].is_signed;
		if (close) {
			/* The epilogue, then whatever the outer one has. */
			m->depth = d;
			m->in_signed = d > 0 ? m->lv[d - 1].is_signed : 0;
			m->mode = M_PASS;
			m->pass_why_8bit = WHY_PREAMBLE;
		} else {
			m->mode = M_HEADER;
			m->hlen = 0;
			m->top = 0;
		}
		return 0;
	}
	switch (m->mode) {
	case M_PASS:
		if (str_has_8bit(s, n))
			return fail(m, pass_why[m->pass_why_8bit]);
		emit(m, s, n);
		if (eol)
			emit(m, "\r\n", 2);
		return 0;
	case M_QP:
		qp_line(m, (const unsigned char *)s, n, eol);
		return 0;
	case M_B64:
		if (m->crlf_held)
			b64_bytes(m, (const unsigned char *)"\r\n", 2);
		b64_bytes(m, (const unsigned char *)s, n);
		m->crlf_held = eol;
		return 0;
	case M_HEADER:
	case M_FAILED:
		break;
	}
	return -1;
}

struct mime7 *
mime7_new(mime7_out *out, void *arg)
{
	struct mime7 *m = xcalloc(1, sizeof(*m));

	m->out = out;
	m->arg = arg;
	m->hdr = xmalloc(MIME7_HDR_MAX);
	m->mode = M_HEADER;
	m->top = 1;
	return m;
}

int
mime7_feed(struct mime7 *m, const char *buf, size_t len)
{
	const char *nl;
	size_t take, n;

	while (len > 0) {
		if (m->mode == M_FAILED)
			return -1;
		nl = memchr(buf, '\n', len);
		take = nl != NULL ? (size_t)(nl - buf) + 1 : len;
		if (m->llen + take > sizeof(m->line)) {
			/* A line longer than the buffer: out in pieces. */
			take = sizeof(m->line) - m->llen;
			memcpy(m->line + m->llen, buf, take);
			m->llen += take;
			buf += take;
			len -= take;
			n = m->llen;
			/* Keep a CR for the next piece: it may end the line. */
			if (m->line[n - 1] == '\r')
				n--;
			if (line(m, m->line, n, 0) == -1)
				return -1;
			memmove(m->line, m->line + n, m->llen - n);
			m->llen -= n;
			continue;
		}
		memcpy(m->line + m->llen, buf, take);
		m->llen += take;
		buf += take;
		len -= take;
		if (m->line[m->llen - 1] != '\n')
			break;
		n = m->llen - 1;
		if (n > 0 && m->line[n - 1] == '\r')
			n--;
		m->llen = 0;
		if (line(m, m->line, n, 1) == -1)
			return -1;
	}
	return m->mode == M_FAILED ? -1 : 0;
}

int
mime7_end(struct mime7 *m)
{
	if (m->mode == M_FAILED)
		return -1;
	if (m->llen > 0) {
		/* A last line without its line end. */
		if (line(m, m->line, m->llen, 1) == -1)
			return -1;
		m->llen = 0;
	}
	if (m->mode == M_HEADER) {
		/* A header that never ended (a message that is all
		 * header): out as it came, it is 7 bit. */
		emit(m, m->hdr, m->hlen);
		m->hlen = 0;
		return 0;
	}
	/* The message's own last CRLF is content (no boundary follows). */
	enc_finish(m, 1);
	return 0;
}

const char *
mime7_error(const struct mime7 *m)
{
	return m->error != NULL ? m->error : "ok";
}

void
mime7_free(struct mime7 *m)
{
	if (m == NULL)
		return;
	free(m->hdr);
	free(m);
}
