/*
 * fuzz_config: libFuzzer harness for the two operator files. The input is
 * read both as backmx.conf (config_parse) and as a domains file
 * (domains_parse). Neither may crash or leak, and a configuration that
 * parses must survive the trip config_print() makes for `backmxctl
 * config`: its output parses again, to the same struct and the same text,
 * and so does the only-changed form (postconf -n).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "domains.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* config_print() into memory; the caller frees *out. */
static void
print_mem(const struct config *c, int only_changed, char **out,
    size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (f == NULL)
		abort();
	config_print(c, f, only_changed);
	if (fclose(f) != 0)
		abort();
}

/* Parse what was printed: it must succeed, to the same settings. */
static void
reparse(const struct config *c, int only_changed)
{
	static struct config c2;
	char err[512], *t1, *t2;
	size_t l1, l2;

	print_mem(c, only_changed, &t1, &l1);
	config_defaults(&c2);
	if (config_parse(&c2, "fuzz", t1, l1, err, sizeof(err)) != 0) {
		fprintf(stderr, "printed config does not parse: %s\n%s\n",
		    err, t1);
		abort();
	}
	memcpy(c2.path, c->path, sizeof(c2.path));
	/* Left out as unchanged, "5m" comes back as the default "300s": the
	 * same setting. Units are checked by the full print. */
	if (only_changed)
		memcpy(c2.unit, c->unit, sizeof(c2.unit));
	if (memcmp(c, &c2, sizeof(c2)) != 0) {
		fprintf(stderr, "printed config parses differently:\n%s\n",
		    t1);
		abort();
	}
	print_mem(&c2, only_changed, &t2, &l2);
	if (l1 != l2 || memcmp(t1, t2, l1) != 0) {
		fprintf(stderr, "print is not stable:\n%s\n---\n%s\n", t1,
		    t2);
		abort();
	}
	free(t1);
	free(t2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config c;		/* 30 KB: not on the stack */
	struct domains *d;
	char err[512];

	config_defaults(&c);
	if (config_parse(&c, "fuzz", (const char *)data, size, err,
	    sizeof(err)) == 0) {
		reparse(&c, 0);
		reparse(&c, 1);
	}

	d = domains_parse("fuzz", (const char *)data, size, err, sizeof(err));
	if (d != NULL) {
		size_t i;

		/* Every entry is found under its own name. */
		for (i = 0; i < domains_count(d); i++)
			if (domains_lookup(d, domains_at(d, i)->name) !=
			    domains_at(d, i))
				abort();
		domains_free(d);
	}
	return 0;
}
