/*
 * fuzz_data: the DATA scanner (src/smtp/data.c) under libFuzzer.
 *
 * Input: two bytes choosing split points, then the wire bytes. The wire
 * bytes are fed whole, split in two at the chosen point, in pseudo-random
 * pieces seeded by the same two bytes, and (when short) byte by byte; every
 * way must give the same output, flags, size, consumed count and end. The
 * whole-feed answer must also match a naive reference scanner that looks
 * ahead in the buffer instead of keeping state, and re-stuffing the output
 * and adding ".\r\n" must give a stream that ends exactly at its end with
 * the same message. Any difference abort()s.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define LINE_MAX_OCTETS	998

struct run {
	unsigned char	*out;
	size_t		 outlen;
	size_t		 cap;
	size_t		 consumed;
	int		 done;
	int		 flags;
	uint64_t	 size;
};

static void
sink(const char *buf, size_t len, void *arg)
{
	struct run *r = arg;

	if (len == 0 || len > r->cap - r->outlen)
		abort();
	memcpy(r->out + r->outlen, buf, len);
	r->outlen += len;
}

static void
run_init(struct run *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->cap = cap;
	r->out = malloc(cap + 1);
	if (r->out == NULL)
		abort();
}

/*
 * The reference: one pass over the whole buffer, looking ahead instead of
 * remembering. At the end of the buffer it holds back what the scanner
 * must hold back: a line-leading "." or ".\r" (maybe the end) is not
 * emitted, a trailing CR is emitted but not yet judged bare.
 */
static void
ref_scan(struct run *r, const unsigned char *in, size_t len)
{
	size_t i = 0, linelen = 0;
	int bol = 1;

	run_init(r, len);
	while (i < len) {
		if (bol && in[i] == '.') {
			if (i + 1 == len ||
			    (in[i + 1] == '\r' && i + 2 == len)) {
				i = len;	/* held back, but consumed */
				break;
			}
			if (in[i + 1] == '\r') {
				if (in[i + 2] == '\n') {
					i += 3;
					r->done = 1;
					break;
				}
				/* ".\r" then not LF: dot gone, CR is text. */
				r->out[r->outlen++] = '\r';
				r->flags |= DATA_ERR_BARE;
				linelen++;
				i += 2;
				bol = 0;
				continue;
			}
			i++;		/* stuffing dot */
			bol = 0;
			continue;
		}
		bol = 0;
		if (in[i] == '\r') {
			r->out[r->outlen++] = '\r';
			if (i + 1 == len) {
				i++;
				break;
			}
			if (in[i + 1] == '\n') {
				r->out[r->outlen++] = '\n';
				if (linelen > LINE_MAX_OCTETS)
					r->flags |= DATA_LONG_LINE;
				linelen = 0;
				bol = 1;
				i += 2;
				continue;
			}
			r->flags |= DATA_ERR_BARE;
		} else {
			r->out[r->outlen++] = in[i];
			if (in[i] == '\n')
				r->flags |= DATA_ERR_BARE;
			else if (in[i] == '\0')
				r->flags |= DATA_HAS_NUL;
			else if (in[i] >= 0x80)
				r->flags |= DATA_HAS_8BIT;
		}
		linelen++;
		i++;
	}
	if (linelen > LINE_MAX_OCTETS)
		r->flags |= DATA_LONG_LINE;
	r->consumed = i;
	r->size = r->outlen;
}

/*
 * Feed in pieces ending at cuts[0..ncuts) then len, as a session would:
 * stop at the end of data. If first_out is set, the output after the first
 * piece must be exactly what the reference gives for that piece alone: the
 * scanner may hold back a "." and a CR, nothing more.
 */
static void
feed(struct run *r, const unsigned char *in, size_t len, const size_t *cuts,
    size_t ncuts, int check_first)
{
	struct data_scan ds;
	struct run ref;
	size_t from = 0, to, i, n;

	run_init(r, len);
	data_scan_init(&ds);
	for (i = 0; i <= ncuts && !r->done; i++) {
		to = i < ncuts ? cuts[i] : len;
		if (to < from || to > len)
			abort();
		n = data_scan_feed(&ds, (const char *)in + from, to - from,
		    &r->done, sink, r);
		if (n > to - from || (!r->done && n != to - from))
			abort();
		r->consumed += n;
		from = to;
		if (i == 0 && check_first) {
			ref_scan(&ref, in, to);
			if (ref.outlen != r->outlen ||
			    memcmp(ref.out, r->out, r->outlen) != 0 ||
			    ref.flags != ds.flags || ref.done != r->done ||
			    ref.consumed != r->consumed)
				abort();
			free(ref.out);
		}
	}
	r->flags = ds.flags;
	r->size = ds.size;
	if (r->size != r->outlen)
		abort();
}

static void
same(const struct run *a, const struct run *b)
{
	if (a->outlen != b->outlen || memcmp(a->out, b->out, a->outlen) != 0 ||
	    a->flags != b->flags || a->size != b->size ||
	    a->consumed != b->consumed || a->done != b->done)
		abort();
}

/* Dot-stuff msg the way we send (a "." first on a line gets another one)
 * and end it; the scanner must give msg back and stop exactly at the end. */
static void
restuff_check(const struct run *whole)
{
	unsigned char *w;
	struct run again;
	size_t i, n = 0;
	int bol = 1;

	w = malloc(2 * whole->outlen + 3);
	if (w == NULL)
		abort();
	for (i = 0; i < whole->outlen; i++) {
		if (bol && whole->out[i] == '.')
			w[n++] = '.';
		w[n++] = whole->out[i];
		bol = i > 0 && whole->out[i - 1] == '\r' &&
		    whole->out[i] == '\n';
	}
	memcpy(w + n, ".\r\n", 3);
	n += 3;
	feed(&again, w, n, NULL, 0, 0);
	if (!again.done || again.consumed != n)
		abort();
	if (again.outlen != whole->outlen ||
	    memcmp(again.out, whole->out, whole->outlen) != 0 ||
	    again.flags != whole->flags)
		abort();
	free(again.out);
	free(w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, ref, other;
	const unsigned char *in;
	size_t len, pos, *cuts, ncuts, i;
	uint32_t seed;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] | (uint32_t)data[1] << 8;
	in = data + 2;
	len = size - 2;

	feed(&whole, in, len, NULL, 0, 1);
	ref_scan(&ref, in, len);
	same(&whole, &ref);
	free(ref.out);

	cuts = malloc((len + 1) * sizeof(*cuts));
	if (cuts == NULL)
		abort();

	/* In two, at the chosen point. */
	pos = seed % (len + 1);
	cuts[0] = pos;
	feed(&other, in, len, cuts, 1, 1);
	same(&whole, &other);
	free(other.out);

	/* Pseudo-random pieces of 0..15 bytes (empty feeds too). */
	for (ncuts = 0, pos = 0; pos < len && ncuts < len; ncuts++) {
		seed = seed * 1103515245u + 12345u;
		pos += (seed >> 16) % 16;
		cuts[ncuts] = pos < len ? pos : len;
	}
	feed(&other, in, len, cuts, ncuts, 1);
	same(&whole, &other);
	free(other.out);

	/* Byte by byte. */
	if (len <= 4096) {
		for (i = 0; i < len; i++)
			cuts[i] = i + 1;
		feed(&other, in, len, cuts, len, 0);
		same(&whole, &other);
		free(other.out);
	}

	if (whole.done)
		restuff_check(&whole);
	free(cuts);
	free(whole.out);
	return 0;
}
