/*
 * html: escaping and the dashboard's query parser (html.h).
 */
#include "html.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "str.h"

static const char *sort_names[DASH_SORT_N] = {
	"domain", "lifecycle", "primary", "since", "queued", "oldest",
	"delivery", "valid", "invalid", "deferrals",
};

static const char *state_names[DASH_STATE_N] = {
	"all", "up", "down", "learning", "active", "refused",
};

void
html_text(struct evbuffer *b, const char *s)
{
	size_t len = strlen(s), n;
	int hide;

	while (len > 0) {
		n = str_term_next(s, len, &hide);
		if (hide)
			evbuffer_add(b, "?", 1);
		else if (n > 1)
			evbuffer_add(b, s, n);
		else
			switch (*s) {
			case '&':
				evbuffer_add(b, "&amp;", 5);
				break;
			case '<':
				evbuffer_add(b, "&lt;", 4);
				break;
			case '>':
				evbuffer_add(b, "&gt;", 4);
				break;
			case '"':
				evbuffer_add(b, "&quot;", 6);
				break;
			case '\'':
				evbuffer_add(b, "&#39;", 5);
				break;
			default:
				evbuffer_add(b, s, 1);
			}
		s += n;
		len -= n;
	}
}

void
html_url(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')
			evbuffer_add(b, s, 1);
		else
			evbuffer_add_printf(b, "%%%02X", c);
	}
}

const char *
dash_sort_name(enum dash_sort s)
{
	return (unsigned)s < DASH_SORT_N ? sort_names[s] : "domain";
}

const char *
dash_state_name(enum dash_state s)
{
	return (unsigned)s < DASH_STATE_N ? state_names[s] : "all";
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The n bytes at v, %XX and '+' decoded, into out (outsz): 0, or -1 on a
 * bad escape, a byte outside printable ASCII, or no room. */
static int
decode(const char *v, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;
	int c, h, l;

	for (i = 0; i < n; i++) {
		c = (unsigned char)v[i];
		if (c == '+')
			c = ' ';
		else if (c == '%') {
			if (i + 2 >= n)
				return -1;
			if ((h = hexval(v[i + 1])) < 0 ||
			    (l = hexval(v[i + 2])) < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (c < 0x20 || c > 0x7e || o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* The index of the n bytes at v in names (count of them), or -1. */
static int
lookup(const char *v, size_t n, const char **names, int count)
{
	int i;

	for (i = 0; i < count; i++)
		if (strlen(names[i]) == n && memcmp(names[i], v, n) == 0)
			return i;
	return -1;
}

static int
fail(char *err, size_t errsz, const char *what, const char *k, size_t kn)
{
	snprintf(err, errsz, "%s%s%.*s", what, kn ? ": " : "",
	    (int)(kn > 16 ? 16 : kn), k);
	/* The key is echoed only when it is plain: it goes to a client. */
	for (; *err != '\0'; err++)
		if (*err < 0x20 || *err > 0x7e)
			*err = '?';
	return -1;
}

int
dash_query_parse(const char *query, struct dash_query *q, char *err,
    size_t errsz)
{
	const char *p, *amp, *eq, *v;
	size_t kn, vn, pairs = 0;
	unsigned seen = 0, bit;
	int i;

	memset(q, 0, sizeof(*q));
	q->page = 1;
	if (query == NULL || *query == '\0')
		return 0;
	if (strlen(query) > DASH_QUERY_MAX)
		return fail(err, errsz, "query too long", "", 0);
	for (p = query; ; p = amp + 1) {
		if ((amp = strchr(p, '&')) == NULL)
			amp = p + strlen(p);
		if (amp == p)		/* "a=1&&b=2", a trailing '&' */
			goto next;
		if (++pairs > DASH_QUERY_PARAMS)
			return fail(err, errsz, "too many parameters", "", 0);
		if ((eq = memchr(p, '=', (size_t)(amp - p))) == NULL)
			return fail(err, errsz, "parameter without a value",
			    p, (size_t)(amp - p));
		kn = (size_t)(eq - p);
		v = eq + 1;
		vn = (size_t)(amp - v);
		if ((i = lookup(p, kn, (const char *[]){ "sort", "order", "q",
		    "state", "page" }, 5)) < 0)
			return fail(err, errsz, "unknown parameter", p, kn);
		bit = 1u << i;
		if (seen & bit)
			return fail(err, errsz, "repeated parameter", p, kn);
		seen |= bit;
		switch (i) {
		case 0:
			if ((i = lookup(v, vn, sort_names, DASH_SORT_N)) < 0)
				return fail(err, errsz, "bad sort", "", 0);
			q->sort = (enum dash_sort)i;
			break;
		case 1:
			if (vn == 3 && memcmp(v, "asc", 3) == 0)
				q->desc = 0;
			else if (vn == 4 && memcmp(v, "desc", 4) == 0)
				q->desc = 1;
			else
				return fail(err, errsz, "bad order", "", 0);
			break;
		case 2:
			if (decode(v, vn, q->q, sizeof(q->q)) == -1)
				return fail(err, errsz, "bad filter", "", 0);
			str_trim(q->q);
			str_lower(q->q);
			break;
		case 3:
			if (vn == 0)	/* the form's "any" */
				break;
			if ((i = lookup(v, vn, state_names, DASH_STATE_N)) < 0)
				return fail(err, errsz, "bad state", "", 0);
			q->state = (enum dash_state)i;
			break;
		case 4:
			q->page = 0;
			if (vn == 0 || vn > 6)
				return fail(err, errsz, "bad page", "", 0);
			for (; vn > 0; v++, vn--) {
				if (*v < '0' || *v > '9')
					return fail(err, errsz, "bad page",
					    "", 0);
				q->page = q->page * 10 + (unsigned)(*v - '0');
			}
			if (q->page < 1 || q->page > DASH_PAGE_MAX)
				return fail(err, errsz, "bad page", "", 0);
			break;
		}
next:
		if (*amp == '\0')
			break;
	}
	return 0;
}
