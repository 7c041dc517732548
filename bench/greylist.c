/*
 * bench/greylist: what one greylist check costs, and the expiry sweep over
 * a million triplets, on the real store (state_sqlite.c: WAL,
 * synchronous=NORMAL, the checkpoint worker running) in a temporary
 * directory on the disk under test.
 *
 *   ninja -C build bench_greylist
 *   ./build/bench_greylist [-n TRIPLETS] [-d DIR]
 *
 * A check is what greylist_step() does for an RCPT that reaches the store:
 * the key (client network, sender normalisation), the triplet read, the
 * decision, the write, the commit. "miss": a new triplet; "hit": a passed
 * one (read, refresh, commit). Measured with one commit per check (every
 * RCPT in a loop turn of its own, the worst case) and with 100 checks per
 * commit (a busy loop turn). The table holds TRIPLETS rows first, so the
 * B-tree is as deep as a large site's. Never run as a test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "greylist.h"
#include "log.h"
#include "state.h"

static const struct greylist_params P = {
	.delay = 300, .retry_window = 48 * 3600, .max_age = 36 * 86400,
	.auto_allow_passes = 5,
};

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
make_sa(uint32_t i, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x0a000000u | (i & 0xffffffu));
}

/* One check, as greylist_step() would run it for client i, sender j. */
static void
check(struct state *st, uint32_t i, uint32_t j, int64_t now)
{
	struct sockaddr_in sin;
	struct state_triplet cur, t;
	char sender[128], key[STATE_ADDR_MAX];
	unsigned retry;
	int found;

	make_sa(i, &sin);
	memset(&t, 0, sizeof(t));
	greylist_client_net((struct sockaddr *)&sin, 24, 64, t.net,
	    sizeof(t.net));
	snprintf(sender, sizeof(sender), "prvs=1234abcdef=bounce-%u-%u@"
	    "sender%u.example", j, i, j % 1000);
	greylist_normalise(sender, key, sizeof(key));
	snprintf(t.sender, sizeof(t.sender), "%s", key);
	snprintf(t.rcpt, sizeof(t.rcpt), "user%u@customer.example", i % 5000);
	if ((found = state_triplet_get(st, t.net, t.sender, t.rcpt, &cur)) ==
	    -1) {
		fprintf(stderr, "bench: store error\n");
		exit(1);
	}
	greylist_decide(found ? &cur : NULL, now, &P, &t, &retry);
	if (state_triplet_put(st, &t) == -1) {
		fprintf(stderr, "bench: store error\n");
		exit(1);
	}
}

/* Run n checks starting at key 'base', committing every 'per' checks
 * (through the loop, as the daemon does); microseconds per check. */
static double
run(struct state *st, struct event_base *eb, uint32_t base, uint32_t n,
    unsigned per, int64_t now)
{
	double t0 = now_us();
	uint32_t k;

	for (k = 0; k < n; k++) {
		check(st, base + k, base + k, now);
		if ((k + 1) % per == 0)
			event_base_loop(eb, EVLOOP_NONBLOCK);
	}
	event_base_loop(eb, EVLOOP_NONBLOCK);
	return (now_us() - t0) / n;
}

int
main(int argc, char **argv)
{
	struct state_conf sc = { 3600, 1000 };
	struct event_base *eb;
	struct state *st;
	char dir[512] = "", tmpl[600], err[512], path[700];
	uint32_t total = 1000000, k;
	const int64_t t0 = 1700000000;
	double us, worst = 0, t;
	size_t del, batches = 0, swept = 0;
	sqlite3 *db;
	int ch;

	while ((ch = getopt(argc, argv, "n:d:")) != -1) {
		switch (ch) {
		case 'n':
			total = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			snprintf(dir, sizeof(dir), "%s", optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_greylist [-n TRIPLETS] "
			    "[-d DIR]\n");
			return 64;
		}
	}
	log_init("bench_greylist", 1);
	log_set_level(LOG_LEVEL_WARNING);
	snprintf(tmpl, sizeof(tmpl), "%s/bench_greylist.XXXXXX",
	    dir[0] ? dir : "/var/tmp");
	if (mkdtemp(tmpl) == NULL) {
		perror(tmpl);
		return 1;
	}
	eb = event_base_new();
	if ((st = state_open(eb, tmpl, &sc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench: %s\n", err);
		return 1;
	}
	printf("store %s/state.db, %u triplets\n", tmpl, total);

	/* Fill: misses, 1000 per commit. */
	t = now_us();
	run(st, eb, 0, total, 1000, t0);
	printf("fill              %8.1f s  (%.0f triplets/s)\n",
	    (now_us() - t) / 1e6, total / ((now_us() - t) / 1e6));

	/* Misses: new triplets on the full table. */
	us = run(st, eb, total, 2000, 1, t0);
	printf("check miss        %8.1f us  (commit per check)\n", us);
	us = run(st, eb, total + 2000, 20000, 100, t0);
	printf("check miss        %8.1f us  (100 checks per commit)\n", us);
	/* Hits: the same triplets again after the delay: first pass,
	 * then passed (a read, a refresh, a commit). */
	run(st, eb, 0, 22000, 100, t0 + 400);
	us = run(st, eb, 0, 2000, 1, t0 + 500);
	printf("check hit         %8.1f us  (commit per check)\n", us);
	us = run(st, eb, 2000, 20000, 100, t0 + 500);
	printf("check hit         %8.1f us  (100 checks per commit)\n", us);

	/* A sweep that finds nothing: what the timer costs while idle. */
	t = now_us();
	state_sweep(st, t0 - 1, sc.sweep_batch, &del);
	printf("sweep, none due   %8.1f us\n", now_us() - t);

	/* Expire them all (another connection, as an operator could),
	 * then sweep in bounded batches as the timer does. */
	snprintf(path, sizeof(path), "%s/state.db", tmpl);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, 10000) != SQLITE_OK ||
	    sqlite3_exec(db, "UPDATE grey_triplet SET expires = 1000 + "
	    "(rowid % 100000)", NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_close(db);
	t = now_us();
	do {
		double b = now_us(), d;

		if (state_sweep(st, t0, sc.sweep_batch, &del) == -1) {
			fprintf(stderr, "bench: sweep failed\n");
			return 1;
		}
		d = now_us() - b;
		if (d > worst)
			worst = d;
		swept += del;
		batches++;
	} while (del > 0);
	t = now_us() - t;
	printf("sweep %zu rows  %8.1f s  in %zu transactions of %u: "
	    "%.0f us mean, %.0f us worst (the loop's longest stall)\n",
	    swept, t / 1e6, batches - 1, sc.sweep_batch,
	    t / (double)(batches > 1 ? batches - 1 : 1), worst);
	state_close(st);
	event_base_free(eb);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmpl);
	if (system(path) != 0)
		return 1;
	return 0;
}
