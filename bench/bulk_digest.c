/*
 * bulk_digest: the bulk detector's digests (src/bulk/digest.c) of many
 * messages, for bench/bulk_corpus.py's false-positive pair rates. Reads
 * from standard input messages framed as "LENGTH\n" then LENGTH octets;
 * writes one line per message: BULK_NDIGEST fields, each a digest's hex
 * or "-" when it is invalid. Fed in 4 KiB pieces, as DATA arrives.
 */
#include <stdio.h>
#include <stdlib.h>

#include "digest.h"

int
main(void)
{
	struct bulk_walk *w = bulk_walk_new();
	struct bulk_digests d;
	char buf[4096];
	size_t len, n;
	int i;

	while (scanf("%zu", &len) == 1 && getchar() == '\n') {
		bulk_walk_reset(w);
		while (len > 0) {
			n = len < sizeof(buf) ? len : sizeof(buf);
			if (fread(buf, 1, n, stdin) != n)
				return 1;
			bulk_walk_feed(w, buf, n);
			len -= n;
		}
		bulk_walk_finish(w, &d);
		for (i = 0; i < BULK_NDIGEST; i++)
			printf("%s%s", i ? " " : "", d.d[i].valid ?
			    d.d[i].hex : "-");
		printf("\n");
	}
	bulk_walk_free(w);
	return 0;
}
