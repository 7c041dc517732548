/*
 * libFuzzer harness for the primary's reply parser (src/client/reply.c):
 * the input is split at CRLF into lines fed one after the other, as
 * client.c does. Whatever the bytes: no crash, the kept text stays inside
 * its buffer and NUL-terminated, a finished reply has a code 200..559 and
 * every line had that code, and no reply runs past REPLY_LINES_MAX lines.
 *
 * A finished reply is also relayed as pass-through relays it to our own
 * client (src/smtp/passthru.c): every line must come out "ddd-" or "ddd "
 * (or "ddd" alone) with the reply's code, CRLF-terminated, the last line
 * only without '-', and nothing but printable US-ASCII and TAB inside.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "passthru.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_relayed(const struct reply *r)
{
	struct evbuffer *b = evbuffer_new();
	char code[4];
	size_t len, i, j, start;
	unsigned char *o;
	int last = 0;

	if (b == NULL)
		abort();
	passthru_reply_out(b, r);
	len = evbuffer_get_length(b);
	o = evbuffer_pullup(b, -1);
	snprintf(code, sizeof(code), "%03d", r->code);
	for (start = 0; start < len; start = j + 2) {
		if (last)
			abort();		/* a line after the last */
		for (j = start; j + 1 < len && !(o[j] == '\r' &&
		    o[j + 1] == '\n'); j++)
			;
		if (j + 1 >= len)
			abort();		/* not CRLF-terminated */
		if (j - start < 3 || memcmp(o + start, code, 3) != 0)
			abort();
		if (j - start == 3 || o[start + 3] == ' ')
			last = 1;
		else if (o[start + 3] != '-')
			abort();
		for (i = start + 4; i < j; i++)
			if (o[i] != '\t' && (o[i] < 0x20 || o[i] >= 0x7f))
				abort();
	}
	if (!last)
		abort();
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct reply r;
	char param[64];
	size_t n;

	reply_init(&r);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
		enum reply_status st;

		if (len > 0 && p[len - 1] == '\r')
			len--;
		st = reply_feed(&r, p, len);
		if (r.textlen >= sizeof(r.text) || r.text[r.textlen] != '\0')
			abort();
		if (r.nlines > REPLY_LINES_MAX)
			abort();
		if (st == REPLY_DONE) {
			if (r.code < 200 || r.code > 559)
				abort();
			(void)reply_first_text(&r, &n);
			(void)reply_has_keyword(&r, "SIZE", param,
			    sizeof(param));
			check_relayed(&r);
			reply_init(&r);
		} else if (st == REPLY_BAD)
			reply_init(&r);
		p = eol ? eol + 1 : end;
	}
	return 0;
}
