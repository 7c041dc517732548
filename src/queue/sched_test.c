/* Unit tests for sched.c's retry schedule and what an attempt's outcome
 * means (sched_outcome), and dsn.c: rows of attempts and what they earn;
 * a DSN never goes to <>. */
#include "sched.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "body.h"
#include "config.h"
#include "dsn.h"
#include "health.h"
#include "log.h"
#include "qdb.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_backoff(void **state)
{
	static const struct {
		unsigned attempts, min, max, want;
	} rows[] = {
		{ 0, 60, 3600, 0 },
		{ 1, 60, 3600, 60 },
		{ 2, 60, 3600, 120 },
		{ 3, 60, 3600, 240 },
		{ 6, 60, 3600, 1920 },
		{ 7, 60, 3600, 3600 },
		{ 100, 60, 3600, 3600 },
		{ 4000000000u, 60, 3600, 3600 },
		{ 3, 1, 2, 2 },
		{ 5, 7, 7, 7 },
	};
	size_t i;

	for (i = 0; i < nitems(rows); i++)
		if (sched_backoff(rows[i].attempts, rows[i].min, rows[i].max) !=
		    rows[i].want)
			fail_msg("row %zu: %u", i, sched_backoff(
			    rows[i].attempts, rows[i].min, rows[i].max));
}

/* --- sched_outcome ------------------------------------------------------ */

#define OR_MAX	4
#define LIFE	432000		/* maximal_queue_lifetime, 5 d */
#define WARN	14400		/* delay_warning_time, 4 h */

struct orow {
	const char	*name;
	long		 age;		/* now - arrival */
	unsigned	 attempts;	/* before this one */
	int		 warned;
	const char	*pre;		/* status before: P, S, B per rcpt */
	int		 code[OR_MAX];	/* this attempt's; -1: not tried */
	const char	*want;		/* status after: P, S, B per rcpt */
	const char	*want_notice;	/* "idx:code" ... ('a' answered) */
	int		 want_delayed;
	int		 want_deleted;
	long		 want_next;	/* next_attempt - now */
	const char	*want_defer;	/* first_defer, or NULL */
	const char	*want_reply0;	/* in rcpt 0's last reply, or NULL */
};

static const struct orow orows[] = {
	{ "2xx delivered", 10, 0, 0, "P", { 250 }, "S", "", 0, 1, 300,
	  NULL, "250 reply" },
	{ "4xx deferred with backoff", 10, 2, 0, "P", { 451 }, "P", "", 0,
	  0, 1200, "451 reply", "451 reply" },
	{ "a connection problem is deferred", 10, 0, 0, "P", { 0 }, "P", "",
	  0, 0, 300, "0 reply", NULL },
	{ "5xx bounced with a DSN", 10, 0, 0, "PP", { 550, 250 }, "BS",
	  "0:550a", 0, 1, 300, NULL, "550 reply" },
	{ "mixed: one deferred stays", 10, 0, 0, "PPP", { 250, 451, 550 },
	  "SPB", "2:550a", 0, 0, 300, "451 reply", NULL },
	{ "a bounce, no delay warning in the same update", WARN + 5, 0, 0,
	  "PP", { 451, 554 }, "PB", "1:554a", 0, 0, 300, "451 reply", NULL },
	{ "past maximal_queue_lifetime: bounced", LIFE, 3, 0, "P", { 451 },
	  "B", "0:451", 0, 1, 2400, "451 reply",
	  "4.4.7 message expired after 432000 s in the queue; last error: "
	  "451 reply" },
	{ "expired while its primary is down (never tried)", LIFE + 1, 3, 1,
	  "P", { -1 }, "B", "0:451", 0, 1, 2400, NULL,
	  "last error: 451 4.4.7 message expired in the queue" },
	{ "expired: a sent one stays sent", LIFE, 3, 1, "SP", { -1, 452 },
	  "SB", "1:452", 0, 1, 2400, "452 reply", NULL },
	{ "delay warning once past delay_warning_time", WARN, 1, 0, "PP",
	  { 451, 250 }, "PS", "0:451", 1, 0, 600, "451 reply", NULL },
	{ "no second delay warning", WARN * 2, 1, 1, "P", { 451 }, "P", "",
	  0, 0, 600, "451 reply", NULL },
	{ "no delay warning before its time", WARN - 1, 1, 0, "P", { 451 },
	  "P", "", 0, 0, 600, "451 reply", NULL },
	{ "a recipient done before is untouched", 10, 1, 0, "SP",
	  { -1, 250 }, "SS", "", 0, 1, 600, NULL, NULL },
	{ "the first deferral is the message's last error", 10, 0, 0, "PP",
	  { 451, 421 }, "PP", "", 0, 0, 300, "451 reply", NULL },
	{ "backoff capped at maximal_backoff_time", 10, 9, 0, "P", { 421 },
	  "P", "", 0, 0, 4000, "421 reply", NULL },
};

static enum qdb_rcpt_status
status_of(char c)
{
	return c == 'S' ? QDB_RCPT_SENT : c == 'B' ? QDB_RCPT_BOUNCED :
	    QDB_RCPT_PENDING;
}

static void
run_orow(const struct orow *r)
{
	static const struct sched_rules rules = { LIFE, WARN, 300, 4000 };
	struct qdb_rcpt rc[OR_MAX];
	struct qdb_msg m;
	struct sched_result res[OR_MAX];
	struct sched_outcome o;
	enum sched_kind kind[OR_MAX];
	struct sched_notice notice[OR_MAX];
	size_t idx[OR_MAX], i, n = 0, nr = strlen(r->pre);
	char got[OR_MAX + 1], notices[128], one[32];
	time_t now = 1000000000;

	memset(&m, 0, sizeof(m));
	memset(rc, 0, sizeof(rc));
	memset(idx, 0, sizeof(idx));
	memset(res, 0, sizeof(res));
	m.arrival = now - r->age;
	m.attempts = r->attempts;
	m.warned = r->warned;
	m.rcpts = rc;
	m.nrcpt = nr;
	for (i = 0; i < nr; i++) {
		rc[i].status = status_of(r->pre[i]);
		if (r->code[i] == -1)
			continue;
		idx[n] = i;
		res[n].code = r->code[i];
		snprintf(res[n].text, sizeof(res[n].text), "%d reply",
		    r->code[i]);
		n++;
	}
	memset(&o, 0, sizeof(o));
	o.kind = kind;
	o.notice = notice;
	sched_outcome(&rules, &m, idx, res, n, now, &o);

	for (i = 0; i < nr; i++)
		got[i] = rc[i].status == QDB_RCPT_SENT ? 'S' :
		    rc[i].status == QDB_RCPT_BOUNCED ? 'B' : 'P';
	got[nr] = '\0';
	notices[0] = '\0';
	for (i = 0; i < o.nnotice; i++) {
		snprintf(one, sizeof(one), "%s%zu:%d%s", i ? " " : "",
		    notice[i].idx, notice[i].code,
		    notice[i].answered ? "a" : "");
		strcat(notices, one);
	}
	if (strcmp(got, r->want) != 0 || strcmp(notices, r->want_notice) != 0 ||
	    o.delayed != r->want_delayed || o.deleted != r->want_deleted ||
	    o.next_attempt - now != r->want_next ||
	    (o.first_defer == NULL) != (r->want_defer == NULL) ||
	    (r->want_defer != NULL && strcmp(o.first_defer, r->want_defer)) ||
	    (r->want_reply0 != NULL && strstr(rc[0].last_reply,
	    r->want_reply0) == NULL))
		fail_msg("%s: status %s notice \"%s\" delayed %d deleted %d "
		    "next +%lld defer \"%s\" reply0 \"%s\"", r->name, got,
		    notices, o.delayed, o.deleted,
		    (long long)(o.next_attempt - now),
		    o.first_defer ? o.first_defer : "(none)", rc[0].last_reply);
	/* The pending count agrees with the statuses. */
	for (i = n = 0; i < nr; i++)
		n += rc[i].status == QDB_RCPT_PENDING;
	assert_int_equal(o.pending, n);
	assert_int_equal(o.expired, r->age >= LIFE);
}

static void
test_outcome(void **state)
{
	size_t i;

	for (i = 0; i < nitems(orows); i++)
		run_orow(&orows[i]);
}

static void
test_rcpt_status(void **state)
{
	static const struct {
		int code;
		enum qdb_rcpt_status want;
	} v[] = {
		{ 250, QDB_RCPT_SENT }, { 251, QDB_RCPT_SENT },
		{ 421, QDB_RCPT_PENDING }, { 452, QDB_RCPT_PENDING },
		{ 0, QDB_RCPT_PENDING }, { 550, QDB_RCPT_BOUNCED },
		{ 556, QDB_RCPT_BOUNCED },
	};
	size_t i;

	for (i = 0; i < nitems(v); i++)
		if (sched_rcpt_status(v[i].code) != v[i].want)
			fail_msg("%d", v[i].code);
}

static void
test_dsn(void **state)
{
	static const char head[] = "Received: x\r\nSubject: s\r\n\r\nbody\r\n";
	struct qdb_msg m;
	struct qdb_rcpt r;
	struct dsn_rcpt dr;
	struct envelope env;
	unsigned char *body;
	size_t len;

	memset(&m, 0, sizeof(m));
	memset(&r, 0, sizeof(r));
	strcpy(m.id, "ID1");
	strcpy(m.sender.local, "s");
	strcpy(m.sender.domain, "sender.example");
	strcpy(r.addr.local, "u");
	strcpy(r.addr.domain, "customer.example");
	dr.rcpt = &r;
	dr.code = 550;
	dr.text = "550 5.1.1 no such user";
	dr.relay = "mx.customer.example";
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), 0);
	assert_true(env.sender.is_null);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpts[0].addr.domain, "sender.example");
	assert_non_null(strstr((char *)body, "Status: 5.1.1\r\n"));
	assert_non_null(strstr((char *)body, "Subject: s\r\n"));
	assert_null(strstr((char *)body, "body\r\n"));
	envelope_free(&env);
	free(body);

	/* Never to <>. */
	m.sender.is_null = 1;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
	/* NOTIFY=NEVER, or SUCCESS only: no failure report. */
	m.sender.is_null = 0;
	r.params.notify = 0x01;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
	r.params.notify = 0x02;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
}


/* --- per-domain counts and lookups by id (issue 16) --------------------- */

/*
 * Counts kept as messages come (no queue walk): many messages over a few
 * domains, in mixed case, several domains in one message; the oldest is
 * the first queued; flushing a domain reaches exactly its messages; ids
 * are found after the table grew. No database: nothing is delivered
 * (no deliverer is set).
 */
static void
test_domain_counts(void **state)
{
	struct event_base *base = event_base_new();
	struct config conf;
	struct primary_health *h;
	struct sched *s;
	struct envelope env;
	struct mailaddr a;
	struct rcpt_params rp;
	char ids[3000][ENVELOPE_ID_MAX];
	size_t i, n;
	time_t oldest;

	config_defaults(&conf);
	h = primary_health_new(NULL, &conf);
	s = sched_new(base, &conf, NULL, h);
	memset(&rp, 0, sizeof(rp));
	for (i = 0; i < nitems(ids); i++) {
		envelope_init(&env);
		snprintf(env.id, sizeof(env.id), "id%06zu", i);
		memcpy(ids[i], env.id, sizeof(env.id));
		env.arrival = 1000000 + (time_t)i;
		memset(&a, 0, sizeof(a));
		snprintf(a.local, sizeof(a.local), "u");
		/* every third in Big.Example; each also in small%zu */
		if (i % 3 == 0) {
			snprintf(a.domain, sizeof(a.domain), i % 2 ?
			    "Big.Example" : "big.example");
			envelope_add_rcpt(&env, &a, &rp);
			envelope_add_rcpt(&env, &a, &rp);
		}
		snprintf(a.domain, sizeof(a.domain), "small%zu.example", i % 7);
		envelope_add_rcpt(&env, &a, &rp);
		sched_add_env(s, &env);
		envelope_free(&env);
	}
	sched_domain_stats(s, "BIG.example", &n, &oldest);
	assert_int_equal(n, 1000);
	assert_int_equal(oldest, 1000000);
	sched_domain_stats(s, "small3.example", &n, &oldest);
	assert_int_equal(n, 3000 / 7 + (3000 % 7 > 3));
	assert_int_equal(oldest, 1000003);
	sched_domain_stats(s, "other.example", &n, &oldest);
	assert_int_equal(n, 0);
	assert_int_equal(oldest, 0);
	assert_true(sched_has_domain(s, "Small6.Example"));
	assert_false(sched_has_domain(s, "small7.example"));
	assert_int_equal(sched_flush(s, "big.EXAMPLE"), 1000);
	assert_int_equal(sched_flush(s, "nobody.example"), 0);
	assert_int_equal(sched_flush(s, NULL), 3000);
	for (i = 0; i < nitems(ids); i++)
		assert_int_equal(sched_flush_id(s, ids[i]), 0);
	assert_int_equal(sched_flush_id(s, "id999999"), -1);
	sched_free(s);
	primary_health_free(h);
	event_base_free(base);
}

/* --- a drain through the real queue.db, with a deliverer that records -- */

#define DRAIN_N		(SCHED_START_BATCH * 12 + 5)
#define DRAIN_BIG	(4096 + DRAIN_N)	/* past a flush's batch */
#define DRAIN_DOMAIN	"big.example"

struct drain {
	struct sched_task	*t[DRAIN_BIG];
	sched_task_done_cb	*done[DRAIN_BIG];
	void			*arg[DRAIN_BIG];
	size_t			 npending;
	size_t			 calls;		/* deliver() calls in all */
	size_t			 inserted;
};

/* The deliverer: keeps the task; the test answers it between turns. */
static void
drain_deliver(void *owner, struct sched_task *t, sched_task_done_cb *done,
    void *arg)
{
	struct drain *d = owner;

	assert_true(d->npending < nitems(d->t));
	d->t[d->npending] = t;
	d->done[d->npending] = done;
	d->arg[d->npending] = arg;
	d->npending++;
	d->calls++;
}

static void
drain_inserted(enum qdb_result r, const char *id, const struct envelope *env,
    void *arg)
{
	struct drain *d = arg;

	(void)id;
	(void)env;
	assert_int_equal(r, QDB_OK);
	d->inserted++;
}

/* Every task answered 250: its message is delivered. */
static void
drain_answer(struct drain *d)
{
	size_t i, j, n = d->npending;

	d->npending = 0;
	for (i = 0; i < n; i++) {
		struct sched_task *t = d->t[i];

		for (j = 0; j < t->nrcpt; j++) {
			t->res[j].code = 250;
			snprintf(t->res[j].text, sizeof(t->res[j].text),
			    "250 2.0.0 ok");
		}
		t->customer = 1;
		t->reached = 1;
		d->done[i](t, d->arg[i]);
	}
}

/* n messages to DRAIN_DOMAIN, committed to queue.db and scheduled. */
static void
drain_fill(struct event_base *base, struct qdb *q, struct sched *s,
    struct drain *d, char (*ids)[ENVELOPE_ID_MAX], size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct envelope env;
		struct mailaddr a;
		struct rcpt_params rp;
		struct body *b = body_new(qdb_tmpdir(q), 1 << 16);

		envelope_init(&env);
		envelope_new_id(env.id);
		memcpy(ids[i], env.id, sizeof(env.id));
		env.arrival = time(NULL);
		snprintf(env.proto, sizeof(env.proto), "ESMTP");
		snprintf(env.sender.local, sizeof(env.sender.local), "s");
		snprintf(env.sender.domain, sizeof(env.sender.domain),
		    "sender.example");
		memset(&a, 0, sizeof(a));
		memset(&rp, 0, sizeof(rp));
		snprintf(a.local, sizeof(a.local), "u%zu", i);
		snprintf(a.domain, sizeof(a.domain), DRAIN_DOMAIN);
		envelope_add_rcpt(&env, &a, &rp);
		assert_int_equal(body_append(b, "Subject: x\r\n\r\nhi\r\n",
		    19), 0);
		assert_non_null(qdb_insert(q, &env, b, drain_inserted, d));
		sched_add_env(s, &env);
		envelope_free(&env);
	}
	while (d->inserted < n)
		event_base_loop(base, EVLOOP_ONCE);
}

/*
 * n due messages, one loop turn at a time, the deliverer answering
 * between turns: no turn starts more than SCHED_START_BATCH attempts (a
 * turn that started them all would stall the loop: docs/queue.md
 * "Draining a big queue"), and in the end every message was tried once
 * and is gone from the queue and from queue.db. Twenty turns in a row
 * without progress (each waits at most for the one-second tick) is a
 * drain that stopped.
 */
static void
drain_run(struct event_base *base, struct qdb *q, struct sched *s,
    struct drain *d, char (*ids)[ENVELOPE_ID_MAX], size_t n)
{
	size_t i, before, most = 0, idle = 0, msgs, last = SIZE_MAX;
	uint64_t bytes;
	time_t oldest;
	struct qdb_msg m;

	for (;;) {
		sched_totals(s, &msgs, &bytes, &oldest);
		if (msgs == 0 || idle == 20)
			break;
		before = d->calls;
		event_base_loop(base, EVLOOP_ONCE);
		assert_true(d->calls - before <= SCHED_START_BATCH);
		if (d->calls - before > most)
			most = d->calls - before;
		idle = d->calls == before && msgs == last ? idle + 1 : 0;
		last = msgs;
		drain_answer(d);
	}
	assert_int_equal(msgs, 0);
	/* Each message tried exactly once, and batches were full. */
	assert_int_equal(d->calls, n);
	assert_int_equal(most, SCHED_START_BATCH);
	for (i = 0; i < n; i++) {
		assert_int_equal(qdb_load(q, ids[i], 0, &m), 1);
		qdb_msg_free(&m);
	}
}

/*
 * A big domain's queue drains a bounded batch per loop turn, and all of
 * it: with its primary up from the start (down_first 0), or down while
 * the messages are queued and back once every one is parked; then the
 * return's flush, SCHED_FLUSH_BATCH a turn, must reach every message
 * (DRAIN_BIG of them: more than one flush batch).
 */
static void
drain_case(size_t n, int down_first)
{
	struct event_base *base = event_base_new();
	struct config conf;
	struct primary_health *h;
	struct sched *s;
	struct qdb *q;
	struct drain *d = calloc(1, sizeof(*d));
	char (*ids)[ENVELOPE_ID_MAX] = calloc(n, sizeof(*ids));
	char dir[] = "/tmp/sched_test.XXXXXX", err[256], cmd[64];
	size_t i;

	log_set_level(LOG_LEVEL_WARNING);	/* n "removed" lines */
	assert_non_null(d);
	assert_non_null(ids);
	assert_non_null(mkdtemp(dir));
	config_defaults(&conf);
	q = qdb_open(base, dir, conf.queue_inline_max, err, sizeof(err));
	assert_non_null(q);
	h = primary_health_new(NULL, &conf);
	s = sched_new(base, &conf, q, h);
	if (down_first)
		primary_health_failed(h, DRAIN_DOMAIN, "test", 1);
	drain_fill(base, q, s, d, ids, n);
	/* Nothing starts before there is a deliverer. */
	assert_int_equal(d->calls, 0);
	sched_set_deliver(s, drain_deliver, d);
	if (down_first) {
		/* Every message comes due and is parked, a batch a turn;
		 * nothing is tried while the primary is down. */
		for (i = 0; i < 2 * (n / 4096 + 2); i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		assert_int_equal(d->calls, 0);
		primary_health_ok(h, DRAIN_DOMAIN);	/* flushes it */
		/* The count a flush reports, kept, not walked; flushing
		 * again starts the walk again, harmlessly. */
		assert_int_equal(sched_flush(s, DRAIN_DOMAIN), n);
	}
	drain_run(base, q, s, d, ids, n);
	sched_free(s);
	qdb_close(q);
	primary_health_free(h);
	event_base_free(base);
	free(ids);
	free(d);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_drain_batches(void **state)
{
	(void)state;
	drain_case(DRAIN_N, 0);
}

static void
test_drain_return(void **state)
{
	(void)state;
	drain_case(DRAIN_BIG, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_rcpt_status),
		cmocka_unit_test(test_outcome),
		cmocka_unit_test(test_dsn),
		cmocka_unit_test(test_domain_counts),
		cmocka_unit_test(test_drain_batches),
		cmocka_unit_test(test_drain_return),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
