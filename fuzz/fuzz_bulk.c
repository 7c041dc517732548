/*
 * fuzz_bulk: the bulk detector's streaming MIME walk and digests
 * (src/bulk/digest.c) under libFuzzer.
 *
 * Input: one byte choosing a split point, then message bytes. The message
 * is fed whole, split in two at the chosen point, and in pseudo-random
 * pieces seeded by that byte; every way must give the same digests (a
 * client decides where its reads end). Memory safety is the sanitizers'.
 * Any difference abort()s.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct bulk_walk *walk;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bulk_digests whole, half, pieces;
	const char *m;
	size_t len, cut, off, n;
	uint32_t seed;

	if (size < 1)
		return 0;
	if (walk == NULL)
		walk = bulk_walk_new();
	seed = data[0];
	m = (const char *)data + 1;
	len = size - 1;

	bulk_walk_reset(walk);
	bulk_walk_feed(walk, m, len);
	bulk_walk_finish(walk, &whole);

	cut = len > 0 ? seed % (len + 1) : 0;
	bulk_walk_reset(walk);
	bulk_walk_feed(walk, m, cut);
	bulk_walk_feed(walk, m + cut, len - cut);
	bulk_walk_finish(walk, &half);

	bulk_walk_reset(walk);
	for (off = 0; off < len; off += n) {
		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 17;
		if (n > len - off)
			n = len - off;
		bulk_walk_feed(walk, m + off, n);
	}
	bulk_walk_finish(walk, &pieces);

	if (memcmp(&whole, &half, sizeof(whole)) != 0 ||
	    memcmp(&whole, &pieces, sizeof(whole)) != 0)
		abort();
	return 0;
}
