/*
 * libFuzzer harness for the primary's reply parser (src/deliver/reply.c):
 * the input is split at CRLF into lines fed one after the other, as
 * client.c does. Whatever the bytes: no crash, the kept text stays inside
 * its buffer and NUL-terminated, a finished reply has a code 200..559 and
 * every line had that code, and no reply runs past REPLY_LINES_MAX lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

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
			reply_init(&r);
		} else if (st == REPLY_BAD)
			reply_init(&r);
		p = eol ? eol + 1 : end;
	}
	return 0;
}
