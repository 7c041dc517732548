/*
 * libFuzzer harness for the dashboard's query parser (src/web/html.c):
 * the bytes, cut at the first NUL, as a request's query string. Whatever
 * they are: no crash, and an accepted query holds only values of the
 * whitelists (a sort, an order, a state, a page 1..DASH_PAGE_MAX, a
 * filter of printable ASCII, lower case, within its buffer). The filter
 * is then written as HTML and as a URL: no '<', '>', '"', '\'' survives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "html.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dash_query q;
	struct evbuffer *b;
	char *s, err[80];
	size_t i, n;
	unsigned char *o;

	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (dash_query_parse(s, &q, err, sizeof(err)) == 0) {
		if ((unsigned)q.sort >= DASH_SORT_N ||
		    (unsigned)q.state >= DASH_STATE_N || (q.desc != 0 &&
		    q.desc != 1) || q.page < 1 || q.page > DASH_PAGE_MAX)
			abort();
		n = strnlen(q.q, sizeof(q.q));
		if (n == sizeof(q.q))
			abort();
		for (i = 0; i < n; i++)
			if (q.q[i] < 0x20 || q.q[i] > 0x7e ||
			    (q.q[i] >= 'A' && q.q[i] <= 'Z'))
				abort();
		if ((b = evbuffer_new()) == NULL)
			abort();
		html_text(b, q.q);
		html_url(b, q.q);
		n = evbuffer_get_length(b);
		o = evbuffer_pullup(b, -1);
		for (i = 0; i < n; i++)
			if (o[i] == '<' || o[i] == '>' || o[i] == '"' ||
			    o[i] == '\'')
				abort();
		evbuffer_free(b);
	} else if (strnlen(err, sizeof(err)) == sizeof(err))
		abort();
	free(s);
	return 0;
}
