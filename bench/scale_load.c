/*
 * bench/scale_load: fills a spool's queue.db with N queued messages for
 * bench/scale.py, straight through the queue's own API: qdb_open() and
 * qdb_insert(), the writer thread and group commit backmxd's sessions use
 * (src/queue/qdb.c), so the rows are exactly what backmxd writes. Not
 * through SMTP: a million messages through sessions, the policy and the
 * DNS checks would take hours and measure those, not the queue.
 *
 *   ninja -C build bench_scale_load
 *   ./build/bench_scale_load -s SPOOL -n MESSAGES -d DOMAINS [-b BIG]
 *
 * Each message: 4 KB body (inline in its row, as every body below
 * queue_inline_max), one recipient, sender a@sender.example. Half the
 * messages go to BIG big domains (cust000000.example ... , default 3),
 * the other half spread evenly over all DOMAINS (custNNNNNN.example), so a
 * few customers hold most of the queue, as after one big outage.
 * Prints the seconds it took. Never run as a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "body.h"
#include "envelope.h"
#include "log.h"
#include "qdb.h"

#define INFLIGHT	4000	/* inserts handed to the writer at once */

static size_t	 inflight, done_ok, failed;

static void
inserted(enum qdb_result r, const char *id, const struct envelope *env,
    void *arg)
{
	(void)id;
	(void)env;
	(void)arg;
	inflight--;
	if (r == QDB_OK)
		done_ok++;
	else
		failed++;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench_scale_load -s SPOOL -n MESSAGES "
	    "-d DOMAINS [-b BIG]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct qdb *q;
	struct envelope env;
	struct mailaddr rcpt;
	struct rcpt_params rp;
	char err[256], body[4096];
	const char *spool = NULL;
	unsigned long n = 0, ndom = 0, nbig = 3, i, dom;
	double t0;
	size_t k;
	int ch;

	while ((ch = getopt(argc, argv, "s:n:d:b:")) != -1) {
		switch (ch) {
		case 's': spool = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'd': ndom = strtoul(optarg, NULL, 10); break;
		case 'b': nbig = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (spool == NULL || n == 0 || ndom == 0)
		usage();
	if (nbig > ndom)
		nbig = ndom;
	if (nbig == 0)
		nbig = 1;
	log_init("bench_scale_load", 1);
	log_set_level(LOG_LEVEL_WARNING);
	base = event_base_new();
	/* queue_inline_max's default (1M): a 4 KB body is a row blob. */
	if ((q = qdb_open(base, spool, 1024 * 1024, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "bench_scale_load: %s\n", err);
		return 1;
	}
	/* 4 KB of 78-character lines, like bench/queue_bench.py's. */
	k = (size_t)snprintf(body, sizeof(body), "Subject: scale bench\r\n\r\n");
	while (k + 80 <= sizeof(body)) {
		memset(body + k, 'x', 78);
		memcpy(body + k + 78, "\r\n", 2);
		k += 80;
	}
	memset(&rp, 0, sizeof(rp));
	t0 = now_s();
	for (i = 0; i < n; i++) {
		struct body *b = body_new(qdb_tmpdir(q), sizeof(body) * 2);

		dom = (i % 2 == 0) ? (i / 2) % nbig : (i / 2) % ndom;
		envelope_init(&env);
		envelope_new_id(env.id);
		snprintf(env.sender.local, sizeof(env.sender.local), "a");
		snprintf(env.sender.domain, sizeof(env.sender.domain),
		    "sender.example");
		memset(&rcpt, 0, sizeof(rcpt));
		snprintf(rcpt.local, sizeof(rcpt.local), "u%lu", i % 1000);
		snprintf(rcpt.domain, sizeof(rcpt.domain),
		    "cust%06lu.example", dom);
		envelope_add_rcpt(&env, &rcpt, &rp);
		snprintf(env.helo, sizeof(env.helo), "bench.example");
		snprintf(env.client_addr, sizeof(env.client_addr),
		    "127.0.0.1");
		snprintf(env.client_name, sizeof(env.client_name), "localhost");
		snprintf(env.proto, sizeof(env.proto), "ESMTP");
		env.arrival = time(NULL);
		body_append(b, body, k);
		inflight++;
		qdb_insert(q, &env, b, inserted, NULL);
		envelope_free(&env);
		while (inflight >= INFLIGHT)
			event_base_loop(base, EVLOOP_ONCE);
	}
	while (inflight > 0)
		event_base_loop(base, EVLOOP_ONCE);
	qdb_close(q);
	event_base_free(base);
	printf("loaded=%zu failed=%zu seconds=%.1f\n", done_ok, failed,
	    now_s() - t0);
	return failed ? 1 : 0;
}
