/*
 * reply: the primary's replies, parsed strictly and bounded (reply.h).
 * Whatever a peer sends, the result is a complete reply, "more", or a
 * protocol error; nothing here reads past len or writes past text[].
 */
#include "reply.h"

#include <string.h>
#include <strings.h>

void
reply_init(struct reply *r)
{
	r->code = 0;
	r->enh[0] = '\0';
	r->text[0] = '\0';
	r->textlen = 0;
	r->nlines = 0;
	r->truncated = 0;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 3463: class "." subject "." detail, 1-3 digits each, class = the
 * reply's first digit; then a space or the end. Returns its length. */
static size_t
enhanced_len(const char *s, size_t len, int code)
{
	size_t i = 0, part, n;

	if (len < 5 || s[0] != (char)('0' + code / 100) || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; i < len && is_digit(s[i]) && n < 3; i++, n++)
			;
		if (n == 0)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

static void
add_text(struct reply *r, const char *s, size_t n)
{
	size_t room;

	if (r->nlines > 0 && r->textlen + 1 < sizeof(r->text)) {
		r->text[r->textlen++] = '\n';
	} else if (r->nlines > 0)
		r->truncated = 1;
	room = sizeof(r->text) - 1 - r->textlen;
	if (n > room) {
		n = room;
		r->truncated = 1;
	}
	memcpy(r->text + r->textlen, s, n);
	r->textlen += n;
	r->text[r->textlen] = '\0';
}

enum reply_status
reply_feed(struct reply *r, const char *line, size_t len)
{
	int code, last;
	size_t i;

	if (len < 3 || len > REPLY_LINE_MAX)
		return REPLY_BAD;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !is_digit(line[2]))
		return REPLY_BAD;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return REPLY_BAD;
	for (i = 3; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return REPLY_BAD;
	if (r->nlines >= REPLY_LINES_MAX)
		return REPLY_BAD;
	last = len == 3 || line[3] == ' ';
	if (r->nlines == 0) {
		size_t e;

		r->code = code;
		if (len > 4 && (e = enhanced_len(line + 4, len - 4, code)) > 0 &&
		    e < sizeof(r->enh)) {
			memcpy(r->enh, line + 4, e);
			r->enh[e] = '\0';
		}
	}
	add_text(r, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
	r->nlines++;
	return last ? REPLY_DONE : REPLY_MORE;
}

const char *
reply_first_text(const struct reply *r, size_t *len_out)
{
	const char *s = r->text, *nl;
	size_t e = strlen(r->enh);

	if (e > 0 && strncmp(s, r->enh, e) == 0) {
		s += e;
		while (*s == ' ')
			s++;
	}
	nl = strchr(s, '\n');
	*len_out = nl ? (size_t)(nl - s) : strlen(s);
	return s;
}

int
reply_has_keyword(const struct reply *r, const char *keyword, char *param,
    size_t paramsz)
{
	size_t klen = strlen(keyword);
	const char *p = r->text, *nl;

	/* The first line is the greeting text, not a keyword. */
	if ((nl = strchr(p, '\n')) == NULL)
		return 0;
	for (p = nl + 1; *p != '\0'; p = nl + 1) {
		size_t n;

		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		if (n >= klen && strncasecmp(p, keyword, klen) == 0 &&
		    (n == klen || p[klen] == ' ')) {
			if (param != NULL && paramsz > 0) {
				size_t pl = n > klen ? n - klen - 1 : 0;

				if (pl >= paramsz)
					pl = paramsz - 1;
				memcpy(param, p + klen + (n > klen), pl);
				param[pl] = '\0';
			}
			return 1;
		}
		if (nl == NULL)
			break;
	}
	return 0;
}
