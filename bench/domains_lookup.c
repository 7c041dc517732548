/*
 * bench/domains_lookup: the relay-control cost per RCPT for bench/scale.py
 * (issue 16): the customer-domain lookup a RCPT makes (domains_lookup(),
 * src/conf/domains.c) and, for a domain with a recipients= list, the
 * static-recipient check (domains_static_rcpt()), timed over a loaded
 * domains file. Also the time domains_load() takes, the work a SIGHUP
 * does for the domains file.
 *
 *   ninja -C build bench_domains_lookup
 *   ./build/bench_domains_lookup -f DOMAINS_FILE -n LOOKUPS
 *
 * Names asked: every domain of the file in a shuffled order, in upper
 * case half the time (matching folds case), and as many names that are
 * not customers. Prints one JSON line. Never run as a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "domains.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	long n = 1000000, i, hits = 0, rhits = 0, nr = 0;
	struct domains *d;
	const struct domain *with = NULL;
	char err[1024], name[300], addr[300];
	size_t nd, k, *order;
	char (*names)[256];
	double t0, t_load, t_hit, t_miss, t_rcpt;
	int ch;

	while ((ch = getopt(argc, argv, "f:n:")) != -1) {
		if (ch == 'f')
			path = optarg;
		else if (ch == 'n')
			n = atol(optarg);
		else
			path = NULL;
	}
	if (path == NULL || n <= 0) {
		fprintf(stderr, "usage: bench_domains_lookup -f FILE [-n N]\n");
		return 64;
	}
	t0 = now();
	if ((d = domains_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	t_load = now() - t0;
	nd = domains_count(d);
	order = calloc(nd, sizeof(*order));
	for (k = 0; k < nd; k++)
		order[k] = k;
	srandom(1);
	for (k = nd - 1; k > 0; k--) {
		size_t j = (size_t)random() % (k + 1), t = order[k];

		order[k] = order[j];
		order[j] = t;
	}
	/* The names asked, in that order, built before the clock runs: the
	 * loop reads them in sequence, so only the lookup's own memory
	 * accesses are timed. */
	names = calloc(nd, sizeof(*names));
	for (k = 0; k < nd; k++) {
		snprintf(names[k], sizeof(names[k]), "%s",
		    domains_at(d, order[k])->name);
		if (k & 1)
			names[k][0] = (char)(names[k][0] & ~0x20);
	}
	for (k = 0; k < nd && with == NULL; k++)
		if (domains_static_count(domains_at(d, k)) > 0)
			with = domains_at(d, k);

	t0 = now();
	for (i = 0; i < n; i++)
		hits += domains_lookup(d, names[i % nd]) != NULL;
	t_hit = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "not%07ld.example", i % 1000000);
		hits += domains_lookup(d, name) != NULL;
	}
	t_miss = now() - t0;
	t_rcpt = 0;
	if (with != NULL) {
		nr = (long)domains_static_count(with);
		t0 = now();
		for (i = 0; i < n; i++) {
			/* Half in the list, half not. */
			if (i & 1)
				snprintf(addr, sizeof(addr), "%s",
				    domains_static_at(with, (size_t)(i / 2 % nr)));
			else
				snprintf(addr, sizeof(addr), "nobody%ld@%s",
				    i % 1000, with->name);
			rhits += domains_static_rcpt(with, addr);
		}
		t_rcpt = now() - t0;
	}
	printf("{\"domains\": %zu, \"load_seconds\": %.3f, \"lookups\": %ld, "
	    "\"hits\": %ld, \"hit_us\": %.3f, \"miss_us\": %.3f, "
	    "\"static_list\": %ld, \"static_hits\": %ld, \"static_us\": %.3f}\n",
	    nd, t_load, n, hits, t_hit * 1e6 / n, t_miss * 1e6 / n, nr, rhits,
	    with != NULL ? t_rcpt * 1e6 / n : 0.0);
	free(order);
	free(names);
	domains_free(d);
	return 0;
}
