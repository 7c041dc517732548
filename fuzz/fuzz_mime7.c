/*
 * fuzz_mime7: libFuzzer harness for mime7.c, the 8-bit to 7-bit
 * converter that a message's body goes through on its way to a primary
 * without 8BITMIME. The input is a message as a peer sends it. What
 * mime7.h promises, checked: not one byte >= 0x80 is ever written,
 * converted or refused; the output does not depend on how the input is
 * cut into chunks (all at once, then a byte at a time); a refusal names
 * its reason. A broken promise aborts. Seeds: fuzz/corpus/mime7/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime7.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct sink {
	char	*buf;
	size_t	 len, cap;
};

static void
collect(const char *s, size_t n, void *arg)
{
	struct sink *k = arg;
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			abort();
	if (k->len + n > k->cap) {
		k->cap = (k->len + n) * 2;
		if ((k->buf = realloc(k->buf, k->cap)) == NULL)
			abort();
	}
	memcpy(k->buf + k->len, s, n);
	k->len += n;
}

static int
run(const uint8_t *data, size_t size, size_t step, struct sink *k)
{
	struct mime7 *m = mime7_new(collect, k);
	size_t off, n;
	int rc = 0;

	for (off = 0; off < size && rc == 0; off += n) {
		n = size - off < step ? size - off : step;
		rc = mime7_feed(m, (const char *)data + off, n);
	}
	if (rc == 0)
		rc = mime7_end(m);
	if (rc == -1 && strcmp(mime7_error(m), "ok") == 0)
		abort();
	mime7_free(m);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
	int ra, rb;

	if (size > 64 * 1024)
		return 0;
	ra = run(data, size, size ? size : 1, &a);
	rb = run(data, size, 1, &b);
	if (ra != rb || (ra == 0 && (a.len != b.len ||
	    (a.len > 0 && memcmp(a.buf, b.buf, a.len) != 0))))
		abort();
	free(a.buf);
	free(b.buf);
	return 0;
}
