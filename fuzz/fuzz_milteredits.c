/*
 * libFuzzer harness for the header edits a filter asks for, made on the
 * stored copy (milter_apply_edits() in src/milter/milter.c, with the
 * header block walk under it). The message comes from the peer; the
 * edits from a filter. Input: one byte, the number of edits (0..7), then
 * three bytes an edit (kind, index, a name and value picked from small
 * tables, names in either case as filters write them), then the message.
 * Whatever the bytes: no crash, no leak; a refusal is EMSGSIZE (a header
 * block with no end within its bound), and a copy made with no edit is
 * the message byte for byte.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "milter.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
same(const struct body *a, const struct body *b)
{
	char x[4096], y[4096];
	uint64_t off = 0;
	long n, m;

	if (body_size(a) != body_size(b))
		return 0;
	while ((n = body_read(a, off, x, sizeof(x))) > 0) {
		m = body_read(b, off, y, sizeof(y));
		if (m != n || memcmp(x, y, (size_t)n) != 0)
			return 0;
		off += (uint64_t)n;
	}
	return n == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const enum milter_reply_kind kinds[] = {
		MR_ADDHEADER, MR_CHGHEADER, MR_INSHEADER,
	};
	static const char *names[] = {
		"Subject", "X-Spam", "x-spam", "Received", "From",
	};
	static const char *values[] = {
		"", "yes", "folded\r\n\tvalue", "a longer value than most",
	};
	static char name[5][16], value[4][32];
	struct milter_edit e[8];
	struct milter_verdict v;
	struct body *in, *out = NULL;
	size_t ne, i;

	if (n < 1)
		return 0;
	ne = d[0] % 8;
	d++;
	n--;
	if (n < ne * 3)
		return 0;
	memset(&v, 0, sizeof(v));
	for (i = 0; i < ne; i++) {
		e[i].kind = kinds[d[0] % 3];
		e[i].index = d[1] % 16;
		/* Writable copies: the edit's strings are not const. */
		e[i].name = strcpy(name[d[2] % 5], names[d[2] % 5]);
		e[i].value = strcpy(value[(d[2] >> 4) % 4],
		    values[(d[2] >> 4) % 4]);
		d += 3;
		n -= 3;
	}
	v.result = MILTER_PASS;
	v.edits = e;
	v.nedits = ne;
	/* Small mem_max: the spilled path is walked too. */
	in = body_new("/tmp", 4096);
	if (body_append(in, d, n) == -1)
		abort();
	if (milter_apply_edits(&v, in, "/tmp", 4096, &out) == 0) {
		if (ne == 0 && !same(in, out))
			abort();
		body_free(out);
	} else if (errno != EMSGSIZE)
		abort();
	body_free(in);
	return 0;
}
