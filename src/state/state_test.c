/*
 * state_test: the SQLite store on a real database in a temporary
 * directory: schema and migration, the loop turn's transaction and its
 * waiters, allow entries, bounded expiry, a lock held by another
 * connection (a 4xx for the caller, never a crash), the admin side;
 * learned recipients and customer domains, and the migration from
 * schema 1 that brought them.
 */
#include "state.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rows.h"
#include <event2/event.h>
#include <sqlite3.h>

struct fx {
	char			 dir[64];
	struct event_base	*base;
	struct state		*st;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if ((f->st = rows_state_open("state_test", f->dir, &f->base)) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc = rows_state_close(f->st, f->base, f->dir);

	free(f);
	return rc;
}

static void
triplet(struct state_triplet *t, const char *net, const char *sender,
    int64_t expires)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->net, net);
	strcpy(t->sender, sender);
	strcpy(t->rcpt, "u@customer.example");
	t->first_seen = t->last_seen = 1000;
	t->expires = expires;
	t->tries = 1;
}

struct waited {
	int	calls;
	int	rc;
};

static void
waited_cb(int rc, void *arg)
{
	struct waited *w = arg;

	w->calls++;
	w->rc = rc;
}

/* PRAGMA user_version, read by a connection of its own. */
static int
user_version(const char *dir)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *s;
	int v;

	snprintf(path, sizeof(path), "%s/state.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
test_put_get_commit(void **state)
{
	struct fx *f = *state;
	struct state_triplet t, got;
	struct waited w = { 0, 99 }, w2 = { 0, 99 };
	struct state_wait *h;

	assert_int_equal(state_triplet_get(f->st, "192.0.2.0/24", "",
	    "u@customer.example", &got), 0);
	triplet(&t, "192.0.2.0/24", "", 5000);
	assert_int_equal(state_triplet_put(f->st, &t), 0);
	/* Seen by reads before the commit... */
	assert_int_equal(state_triplet_get(f->st, "192.0.2.0/24", "",
	    "u@customer.example", &got), 1);
	assert_int_equal(got.expires, 5000);
	/* ...and the waiter hears of the commit from the loop, not at
	 * once; a cancelled one never does. */
	state_commit_wait(f->st, waited_cb, &w);
	h = state_commit_wait(f->st, waited_cb, &w2);
	state_commit_cancel(h);
	assert_int_equal(w.calls, 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w2.calls, 0);

	/* Committed: another connection sees it. */
	{
		char path[128];
		sqlite3 *db;
		sqlite3_stmt *s;

		snprintf(path, sizeof(path), "%s/state.db", f->dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) "
		    "FROM grey_triplet", -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), 1);
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
	assert_int_equal(user_version(f->dir), STATE_SCHEMA);

	/* A waiter with nothing staged hears 0 on the next turn. */
	w.calls = 0;
	state_commit_wait(f->st, waited_cb, &w);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.rc, 0);
}

static void
test_locked(void **state)
{
	struct fx *f = *state;
	struct state_triplet t, got;
	struct state_net n;
	char path[128];
	sqlite3 *db;

	triplet(&t, "192.0.2.0/24", "a@b.example", 5000);
	assert_int_equal(state_triplet_put(f->st, &t), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	/* Another connection holds the write lock (an operator's shell):
	 * writes fail after the busy timeout, reads still work. */
	snprintf(path, sizeof(path), "%s/state.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	assert_int_equal(state_triplet_get(f->st, "192.0.2.0/24",
	    "a@b.example", "u@customer.example", &got), 1);
	t.tries = 2;
	assert_int_equal(state_triplet_put(f->st, &t), -1);
	memset(&n, 0, sizeof(n));
	strcpy(n.net, "192.0.2.0/24");
	assert_int_equal(state_net_put(f->st, &n), -1);
	{
		size_t del;

		assert_int_equal(state_sweep(f->st, 9999, 10, &del), -1);
	}
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	/* And work again once it is gone. */
	assert_int_equal(state_triplet_put(f->st, &t), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_triplet_get(f->st, "192.0.2.0/24",
	    "a@b.example", "u@customer.example", &got), 1);
	assert_int_equal(got.tries, 2);
}

static void
test_sweep(void **state)
{
	struct fx *f = *state;
	struct state_triplet t;
	struct state_net n;
	char sender[64];
	size_t del, total = 0;
	int i, rounds = 0;

	for (i = 0; i < 250; i++) {
		snprintf(sender, sizeof(sender), "s%d@example.org", i);
		/* 200 expired at 1000 + i, 50 alive. */
		triplet(&t, "192.0.2.0/24", sender, i < 200 ? 1000 + i :
		    1000000);
		assert_int_equal(state_triplet_put(f->st, &t), 0);
	}
	memset(&n, 0, sizeof(n));
	strcpy(n.net, "198.51.100.0/24");
	n.expires = 10;
	assert_int_equal(state_net_put(f->st, &n), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	/* Batches of at most 64 per table until nothing is left. */
	do {
		assert_int_equal(state_sweep(f->st, 5000, 64, &del), 0);
		assert_true(del <= 128);
		total += del;
		rounds++;
	} while (del > 0);
	assert_int_equal(total, 201);
	assert_int_equal(rounds, 5);	/* 65, 64, 64, 8, 0 */
	/* The living stay. */
	snprintf(sender, sizeof(sender), "s%d@example.org", 220);
	assert_int_equal(state_triplet_get(f->st, "192.0.2.0/24", sender,
	    "u@customer.example", &t), 1);
	assert_int_equal(state_net_get(f->st, "198.51.100.0/24", &n), 0);
}

static int
bulk_seen_cb(const struct state_bulk *b, void *arg)
{
	strcat(arg, b->digest);
	if (b->has_sender) {
		strcat(arg, " <");
		strcat(arg, b->sender);
		strcat(arg, "> ");
	} else
		strcat(arg, " ? ");
	return 0;
}

/* Bulk digests: distinct recipients per generation, a list above a
 * count, forget, and the sweep. */
static void
test_bulk(void **state)
{
	struct fx *f = *state;
	struct state_bulk b;
	char seen[256] = "";
	size_t del;

	memset(&b, 0, sizeof(b));
	strcpy(b.digest, "aa");
	b.count = 2;
	b.first_seen = 100;
	b.last_seen = 100;
	b.expires = 1000;
	strcpy(b.subject, "hello");
	strcpy(b.sender, "news@list.example");
	b.has_sender = 1;
	assert_int_equal(state_bulk_put(f->st, &b), 0);
	assert_int_equal(state_bulk_rcpt_add(f->st, "aa", 100, "r1", 1000), 1);
	assert_int_equal(state_bulk_rcpt_add(f->st, "aa", 100, "r1", 1000), 0);
	assert_int_equal(state_bulk_rcpt_add(f->st, "aa", 100, "r2", 1000), 1);
	/* Another generation: counted again. */
	assert_int_equal(state_bulk_rcpt_add(f->st, "aa", 200, "r1", 1000), 1);
	strcpy(b.digest, "bb");
	b.count = 1;
	assert_int_equal(state_bulk_put(f->st, &b), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	assert_int_equal(state_bulk_get(f->st, "aa", 500, &b), 1);
	assert_int_equal(b.count, 2);
	assert_string_equal(b.subject, "hello");
	assert_int_equal(state_bulk_get(f->st, "aa", 1000, &b), 0);
	assert_int_equal(state_bulk_list(f->st, 2, 500, bulk_seen_cb, seen),
	    0);
	/* Read from the database: the cache has no list. */
	assert_string_equal(seen, "aa <news@list.example> ");
	assert_int_equal(state_bulk_forget(f->st, "aa"), 1);
	assert_int_equal(state_bulk_forget(f->st, "aa"), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_get(f->st, "aa", 500, &b), 0);
	/* Its recipients went with it: counted again, same generation. */
	assert_int_equal(state_bulk_rcpt_add(f->st, "aa", 200, "r1", 1000), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	/* bb and that recipient row expire. */
	assert_int_equal(state_sweep(f->st, 5000, 64, &del), 0);
	assert_int_equal(del, 2);
}

/* The grouped forms bulk_judge() uses: each slot answers for itself,
 * a NULL slot neither matches nor writes, an update keeps the row. */
static void
test_bulk_many(void **state)
{
	struct fx *f = *state;
	struct state_bulk rows[3], out[4];
	const char *dg[4] = { "d1", "d2", NULL, "d3" };
	const char *two[2] = { "d1", "d2" };
	int64_t gen[4] = { 100, 100, 0, 100 };
	int found[4], seen[4], i;
	char list[256] = "";

	memset(rows, 0, sizeof(rows));
	for (i = 0; i < 3; i++) {
		snprintf(rows[i].digest, sizeof(rows[i].digest), "d%d", i + 1);
		rows[i].count = (unsigned)i + 1;
		rows[i].first_seen = 100;
		rows[i].expires = i == 2 ? 400 : 1000;
	}
	/* Each row its own sender: not known, the null sender, one. */
	rows[1].has_sender = 1;
	strcpy(rows[2].sender, "c@d.example");
	rows[2].has_sender = 1;
	assert_int_equal(state_bulk_put_many(f->st, rows, 3), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	/* From the database (the cache has no list), highest count first. */
	assert_int_equal(state_bulk_list(f->st, 0, 300, bulk_seen_cb, list),
	    0);
	assert_string_equal(list, "d3 <c@d.example> d2 <> d1 ? ");
	/* Updated in place, in the same grouped write. */
	rows[0].count = 7;
	strcpy(rows[0].subject, "again");
	strcpy(rows[0].sender, "a@b.example");
	rows[0].has_sender = 1;
	assert_int_equal(state_bulk_put_many(f->st, rows, 1), 0);
	assert_int_equal(state_bulk_rcpt_put_many(f->st, "r1", dg, gen, 4,
	    1000), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	/* d3 expired at 500; the NULL slot finds nothing. */
	assert_int_equal(state_bulk_get_many(f->st, dg, 4, 500, out, found),
	    0);
	assert_int_equal(found[0], 1);
	assert_int_equal(found[1], 1);
	assert_int_equal(found[2], 0);
	assert_int_equal(found[3], 0);
	assert_string_equal(out[0].digest, "d1");
	assert_int_equal(out[0].count, 7);
	assert_string_equal(out[0].subject, "again");
	assert_string_equal(out[0].sender, "a@b.example");
	list[0] = '\0';
	assert_int_equal(state_bulk_list(f->st, 7, 500, bulk_seen_cb, list),
	    0);
	assert_string_equal(list, "d1 <a@b.example> ");
	assert_string_equal(out[1].digest, "d2");
	assert_int_equal(out[1].count, 2);

	/* Seen in its generation only; r2 nowhere. */
	gen[1] = 200;
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", dg, gen, 4,
	    INT64_MAX, seen), 0);
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 0);
	assert_int_equal(seen[2], 0);
	assert_int_equal(seen[3], 1);
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r2", two, gen, 2,
	    INT64_MAX, seen), 0);
	assert_int_equal(seen[0] + seen[1], 0);
	/* A new generation's row replaces the old one's. */
	assert_int_equal(state_bulk_rcpt_put_many(f->st, "r1", two, gen, 2,
	    1000), 0);
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", two, gen, 2,
	    INT64_MAX, seen), 0);
	assert_int_equal(seen[0] + seen[1], 2);
	/* Fresh (2): the row lives until 'fresh' or later, so the detector
	 * need not write it again (docs/bulk.md §5). */
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", two, gen, 2,
	    1000, seen), 0);
	assert_int_equal(seen[0] + seen[1], 4);
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", two, gen, 2,
	    1001, seen), 0);
	assert_int_equal(seen[0] + seen[1], 2);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* The rows a message's copies read again are answered from memory: never
 * one the database no longer holds. A sweep deletes what expired before
 * its time; read again with an earlier clock (the wall clock stepped
 * back), the store must not find them. */
static void
test_bulk_cache(void **state)
{
	struct fx *f = *state;
	struct state_bulk row, out;
	const char *dg[1] = { "c1" };
	int64_t gen[1] = { 100 };
	int found, seen;
	size_t del;

	memset(&row, 0, sizeof(row));
	strcpy(row.digest, "c1");
	row.count = 1;
	row.first_seen = 100;
	row.expires = 1000;
	assert_int_equal(state_bulk_put_many(f->st, &row, 1), 0);
	assert_int_equal(state_bulk_rcpt_put_many(f->st, "r1", dg, gen, 1,
	    1000), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_get_many(f->st, dg, 1, 500, &out,
	    &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", dg, gen, 1, 900,
	    &seen), 0);
	assert_int_equal(seen, 2);

	assert_int_equal(state_sweep(f->st, 5000, 64, &del), 0);
	assert_int_equal(del, 2);
	assert_int_equal(state_bulk_get_many(f->st, dg, 1, 500, &out,
	    &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(state_bulk_rcpt_seen(f->st, "r1", dg, gen, 1, 900,
	    &seen), 0);
	assert_int_equal(seen, 0);

	/* Written again, it is found again, from the store and then from
	 * memory alike. */
	assert_int_equal(state_bulk_put_many(f->st, &row, 1), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_get_many(f->st, dg, 1, 500, &out,
	    &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(out.count, 1);
}

/* The operator's bulk allow entries: a table of their own, the
 * greylist's forms. */
static void
test_bulk_allow(void **state)
{
	struct fx *f = *state;
	struct sockaddr_storage in, out;
	char err[256];

	rows_sockaddr("192.0.2.77", &in);
	rows_sockaddr("198.51.100.1", &out);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 10, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_DOMAIN,
	    "News.Example", 10, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_DOMAIN,
	    "news.example", 10, err, sizeof(err)), 1);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_CLIENT,
	    "192.0.2.1/24", 10, err, sizeof(err)), -2);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&in,
	    ""), 1);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "a.news.example"), 1);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "news.example.org"), 0);
	/* A whole address: that sender, not its domain's others. */
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_SENDER,
	    "Pudge@Perl.ORG", 10, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_SENDER,
	    "@perl.org", 10, err, sizeof(err)), -2);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_SENDER,
	    "perl.org", 10, err, sizeof(err)), -2);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_DOMAIN,
	    "a@perl.org", 10, err, sizeof(err)), -2);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "pudge@perl.org"), 1);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "other@perl.org"), 0);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "x@lists.news.example"), 1);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    ""), 0);
	assert_int_equal(state_bulk_allow_delete(f->st, "PUDGE@perl.org", 1000), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "pudge@perl.org"), 0);
	/* Recipients: an address, or a domain and its subdomains; never
	 * a sender, and not the greylist's. */
	assert_int_equal(state_bulk_rcpt_allowed(f->st, "subs@customer.example"),
	    0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_RECIPIENT,
	    "Subs@Customer.Example", 10, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_RECIPIENT,
	    "lists.customer.example", 10, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(f->st, STATE_ALLOW_RECIPIENT,
	    "bad..name", 10, err, sizeof(err)), -2);
	assert_int_equal(state_allow_add(f->st, STATE_ALLOW_RECIPIENT,
	    "subs@customer.example", 10, err, sizeof(err)), -2);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_rcpt_allowed(f->st, "subs@customer.example"),
	    1);
	assert_int_equal(state_bulk_rcpt_allowed(f->st,
	    "a@x.lists.customer.example"), 1);
	assert_int_equal(state_bulk_rcpt_allowed(f->st, "u@customer.example"),
	    0);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "subs@customer.example"), 0);
	/* Not the greylist's. */
	assert_int_equal(state_allow_client(f->st, (struct sockaddr *)&in),
	    0);
	assert_int_equal(state_allow_sender(f->st, "a@news.example"), 0);
	assert_int_equal(state_bulk_allow_delete(f->st, "News.Example", 1000), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&out,
	    "news.example"), 0);
}

/* A client address for a row (tests/unit/rows.h). */
#define make_sa(ip, ss)	rows_sockaddr(ip, ss)

struct seen {
	char	text[2048];
};

static int
allow_seen(enum state_allow_kind kind, const char *value, int64_t added,
    void *arg)
{
	struct seen *s = arg;

	snprintf(s->text + strlen(s->text), sizeof(s->text) - strlen(s->text),
	    "%s:%s ", state_allow_kind_name(kind), value);
	return 0;
}

static void
test_allow_admin(void **state)
{
	struct fx *f = *state;
	struct state *adm;
	struct sockaddr_storage ss;
	struct seen seen;
	char err[256];
	static const struct {
		const char	*ip;
		int		 want;
	} ips[] = {
		{ "192.0.2.1", 1 }, { "192.0.2.255", 1 }, { "192.0.3.0", 0 },
		{ "203.0.113.9", 1 }, { "203.0.113.10", 0 },
		{ "2001:db8:5::1", 1 }, { "2001:db8:6::1", 0 },
	};
	size_t i;

	adm = state_open_admin(f->dir, err, sizeof(err));
	assert_non_null(adm);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 1, err, sizeof(err)), 0);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 1, err, sizeof(err)), 1);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "203.0.113.9", 1, err, sizeof(err)), 0);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "2001:DB8:5::/48", 1, err, sizeof(err)), 0);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "192.0.2.1/24", 1, err, sizeof(err)), -2);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_CLIENT,
	    "bogus", 1, err, sizeof(err)), -2);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_DOMAIN,
	    "Lists.Example.ORG", 1, err, sizeof(err)), 0);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_DOMAIN,
	    "bad..name", 1, err, sizeof(err)), -2);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_SENDER,
	    "Bounces@News.example", 1, err, sizeof(err)), 0);
	assert_int_equal(state_allow_add(adm, STATE_ALLOW_SENDER,
	    "a@bad..name", 1, err, sizeof(err)), -2);

	/* The daemon's connection sees the commits at once: no cache. */
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		make_sa(ips[i].ip, &ss);
		if (state_allow_client(f->st, (struct sockaddr *)&ss) !=
		    ips[i].want)
			fail_msg("%s: want %d", ips[i].ip, ips[i].want);
	}
	assert_int_equal(state_allow_sender(f->st, "u@lists.example.org"), 1);
	assert_int_equal(state_allow_sender(f->st, "u@a.lists.example.org"),
	    1);
	assert_int_equal(state_allow_sender(f->st, "lists.example.org"), 1);
	assert_int_equal(state_allow_sender(f->st, "u@example.org"), 0);
	assert_int_equal(state_allow_sender(f->st, "bounces@news.example"), 1);
	assert_int_equal(state_allow_sender(f->st, "other@news.example"), 0);

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(state_allow_list(adm, allow_seen, &seen), 0);
	assert_string_equal(seen.text, "client:192.0.2.0/24 "
	    "client:2001:db8:5::/48 client:203.0.113.9/32 "
	    "domain:lists.example.org sender:bounces@news.example ");

	assert_int_equal(state_delete(adm, "192.0.2.0/24", NULL, NULL, 1000), 1);
	assert_int_equal(state_delete(adm, "LISTS.example.org", NULL, NULL, 1000),
	    1);
	assert_int_equal(state_delete(adm, "nothing", NULL, NULL, 1000), 0);
	make_sa("192.0.2.1", &ss);
	assert_int_equal(state_allow_client(f->st, (struct sockaddr *)&ss), 0);
	state_close(adm);

	/* No database there: the admin side does not create one. */
	assert_null(state_open_admin("/nonexistent", err, sizeof(err)));
}

static void
test_open_errors(void **state)
{
	struct state_conf sc = { 60, 10 };
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/state_test_bad.XXXXXX", path[128], err[512];
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	/* Not a database. */
	snprintf(path, sizeof(path), "%s/state.db", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, not even close to one....\n"
	    "................................................................"
	    "................................................................",
	    fp);
	fclose(fp);
	assert_null(state_open(base, dir, &sc, err, sizeof(err)));
	assert_non_null(strstr(err, "state.db"));
	unlink(path);

	/* A schema from the future. */
	{
		sqlite3 *db;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999",
		    NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		assert_null(state_open(base, dir, &sc, err, sizeof(err)));
		assert_non_null(strstr(err, "schema version 999 is newer"));
		unlink(path);
	}
	/* state_dir is a file. */
	snprintf(path, sizeof(path), "%s/file", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_null(state_open(base, path, &sc, err, sizeof(err)));
	assert_non_null(strstr(err, "not a directory"));
	unlink(path);
	rmdir(dir);
	event_base_free(base);
}

/* --- recipients and customer domains (schema 2) --------------------------- */

static void
rcpt(struct state_rcpt *r, const char *addr, int status, int64_t expires)
{
	const char *at = strchr(addr, '@');

	memset(r, 0, sizeof(*r));
	strcpy(r->addr, addr);
	strcpy(r->domain, at != NULL ? at + 1 : "");
	r->status = status;
	r->source = STATE_SRC_PASSTHROUGH;
	r->first_seen = r->last_seen = 1000;
	r->expires = expires;
	strcpy(r->why, status == STATE_RCPT_VALID ? "250 2.1.5 ok" :
	    "550 5.1.1 no such user");
}

/* A statement on a second connection, as an operator's shell would. */
static void
raw_exec(const char *dir, const char *sql)
{
	char path[128];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/state.db", dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static void
test_rcpt_put_get(void **state)
{
	struct fx *f = *state;
	struct state_rcpt r, got;
	struct waited w = { 0, 99 };

	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 1000,
	    &got), 0);
	rcpt(&r, "u@customer.example", STATE_RCPT_INVALID, 5000);
	r.source = STATE_SRC_DELIVERY;
	r.first_seen = 900;
	assert_int_equal(state_rcpt_put(f->st, &r), 0);
	/* Read before the commit, every field back. */
	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 1000,
	    &got), 1);
	assert_string_equal(got.addr, "u@customer.example");
	assert_string_equal(got.domain, "customer.example");
	assert_int_equal(got.status, STATE_RCPT_INVALID);
	assert_int_equal(got.source, STATE_SRC_DELIVERY);
	assert_int_equal(got.first_seen, 900);
	assert_int_equal(got.last_seen, 1000);
	assert_int_equal(got.expires, 5000);
	assert_string_equal(got.why, "550 5.1.1 no such user");
	state_commit_wait(f->st, waited_cb, &w);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.rc, 0);

	/* Replace refreshes the row: one row, the new values. */
	rcpt(&r, "u@customer.example", STATE_RCPT_VALID, 8000);
	r.first_seen = 900;
	r.last_seen = 2000;
	assert_int_equal(state_rcpt_put(f->st, &r), 0);
	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 2000,
	    &got), 1);
	assert_int_equal(got.status, STATE_RCPT_VALID);
	assert_int_equal(got.source, STATE_SRC_PASSTHROUGH);
	assert_int_equal(got.last_seen, 2000);
	assert_int_equal(got.expires, 8000);
	assert_string_equal(got.why, "250 2.1.5 ok");

	/* Expiry: known the second before, unknown at 'expires'. */
	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 7999,
	    &got), 1);
	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 8000,
	    &got), 0);
	/* expires 0: never. */
	rcpt(&r, "admin@customer.example", STATE_RCPT_VALID, 0);
	r.source = STATE_SRC_ADMIN;
	assert_int_equal(state_rcpt_put(f->st, &r), 0);
	assert_int_equal(state_rcpt_get(f->st, "admin@customer.example",
	    INT64_MAX, &got), 1);
	assert_int_equal(got.source, STATE_SRC_ADMIN);
	assert_int_equal(got.expires, 0);

	/* Delete: the rows it removed. */
	assert_int_equal(state_rcpt_delete(f->st, "u@customer.example"), 1);
	assert_int_equal(state_rcpt_delete(f->st, "u@customer.example"), 0);
	assert_int_equal(state_rcpt_get(f->st, "u@customer.example", 2000,
	    &got), 0);
	w.calls = 0;
	state_commit_wait(f->st, waited_cb, &w);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(w.rc, 0);
}

static void
test_rcpt_bounds(void **state)
{
	struct fx *f = *state;
	struct state_rcpt r, got;

	/* An unterminated field is stored cut to its array... */
	rcpt(&r, "long@customer.example", STATE_RCPT_INVALID, 0);
	memset(r.why, 'x', sizeof(r.why));
	assert_int_equal(state_rcpt_put(f->st, &r), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_rcpt_get(f->st, "long@customer.example", 1,
	    &got), 1);
	assert_int_equal(strlen(got.why), STATE_WHY_MAX - 1);
	/* ...and what another writer made too long, or NULL, is read
	 * back cut, never past a field. */
	raw_exec(f->dir, "UPDATE recipients SET why = printf('%.*c', 5000, "
	    "'y'), domain = printf('%.*c', 5000, 'd')");
	assert_int_equal(state_rcpt_get(f->st, "long@customer.example", 1,
	    &got), 1);
	assert_int_equal(strlen(got.why), STATE_WHY_MAX - 1);
	assert_int_equal(got.why[0], 'y');
	assert_int_equal(strlen(got.domain), sizeof(got.domain) - 1);
	{
		struct state_domain d, dg;

		memset(&d, 0, sizeof(d));
		strcpy(d.name, "customer.example");
		assert_int_equal(state_domain_put(f->st, &d), 0);
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		raw_exec(f->dir, "UPDATE domains SET health_why = "
		    "printf('%.*c', 999, 'h'), accept_how = "
		    "printf('%.*c', 99, 'a')");
		assert_int_equal(state_domain_get(f->st, "customer.example",
		    &dg), 1);
		assert_int_equal(strlen(dg.health_why), STATE_WHY_MAX - 1);
		assert_int_equal(strlen(dg.accept_how),
		    sizeof(dg.accept_how) - 1);
	}
}

struct walk {
	char		 text[2048];
	int		 stop_after;	/* 0: never */
	int		 rows;
	struct state	*st;		/* walk again from inside, if set */
	int		 inner_rows;
};

static int
count_rows(const struct state_rcpt *r, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int
rcpt_seen(const struct state_rcpt *r, void *arg)
{
	struct walk *w = arg;

	snprintf(w->text + strlen(w->text), sizeof(w->text) - strlen(w->text),
	    "%s%s ", r->addr, r->status == STATE_RCPT_VALID ? "" : "!");
	if (w->st != NULL)
		assert_int_equal(state_rcpt_list(w->st, NULL, 2000, count_rows,
		    &w->inner_rows), 0);
	return ++w->rows == w->stop_after;
}

static void
test_rcpt_list_count(void **state)
{
	struct fx *f = *state;
	struct state_rcpt r;
	struct walk w;
	size_t valid, invalid;
	static const struct {
		const char	*addr;
		int		 status;
		int64_t		 expires;
	} rows[] = {
		{ "zed@a.example", STATE_RCPT_VALID, 9000 },
		{ "bob@a.example", STATE_RCPT_INVALID, 9000 },
		{ "old@a.example", STATE_RCPT_VALID, 1500 },	/* expired */
		{ "now@a.example", STATE_RCPT_INVALID, 2000 },	/* == now */
		{ "adm@a.example", STATE_RCPT_VALID, 0 },
		{ "amy@b.example", STATE_RCPT_VALID, 9000 },
		{ "abc@a.example.net", STATE_RCPT_INVALID, 9000 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		rcpt(&r, rows[i].addr, rows[i].status, rows[i].expires);
		assert_int_equal(state_rcpt_put(f->st, &r), 0);
	}
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	memset(&w, 0, sizeof(w));
	assert_int_equal(state_rcpt_list(f->st, "a.example", 2000, rcpt_seen,
	    &w), 0);
	assert_string_equal(w.text, "adm@a.example bob@a.example! "
	    "zed@a.example ");
	memset(&w, 0, sizeof(w));
	assert_int_equal(state_rcpt_list(f->st, NULL, 2000, rcpt_seen, &w),
	    0);
	assert_string_equal(w.text, "abc@a.example.net! adm@a.example "
	    "amy@b.example bob@a.example! zed@a.example ");
	/* A non-zero return stops the walk. */
	memset(&w, 0, sizeof(w));
	w.stop_after = 2;
	assert_int_equal(state_rcpt_list(f->st, NULL, 2000, rcpt_seen, &w),
	    0);
	assert_string_equal(w.text, "abc@a.example.net! adm@a.example ");
	/* A walk inside a walk (its statement is busy) has its own. */
	memset(&w, 0, sizeof(w));
	w.st = f->st;
	assert_int_equal(state_rcpt_list(f->st, NULL, 2000, rcpt_seen, &w),
	    0);
	assert_int_equal(w.rows, 5);
	assert_int_equal(w.inner_rows, 25);
	/* Nothing of an unknown domain. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(state_rcpt_list(f->st, "c.example", 2000, rcpt_seen,
	    &w), 0);
	assert_int_equal(w.rows, 0);

	assert_int_equal(state_rcpt_count(f->st, "a.example", 2000, &valid,
	    &invalid), 0);
	assert_int_equal(valid, 2);
	assert_int_equal(invalid, 1);
	assert_int_equal(state_rcpt_count(f->st, "a.example", 1000, &valid,
	    &invalid), 0);
	assert_int_equal(valid, 3);
	assert_int_equal(invalid, 2);
	assert_int_equal(state_rcpt_count(f->st, "c.example", 2000, &valid,
	    &invalid), 0);
	assert_int_equal(valid, 0);
	assert_int_equal(invalid, 0);
	assert_int_equal(state_rcpt_count(f->st, NULL, 2000, &valid,
	    &invalid), 0);
	assert_int_equal(valid, 3);
	assert_int_equal(invalid, 2);
}

static void
test_rcpt_sweep(void **state)
{
	struct fx *f = *state;
	struct state_rcpt r;
	char addr[64];
	size_t del, total = 0, valid, invalid;
	int i;

	for (i = 0; i < 30; i++) {
		snprintf(addr, sizeof(addr), "u%02d@customer.example", i);
		/* 10 operator's (never), 10 expired, 10 alive. */
		rcpt(&r, addr, STATE_RCPT_VALID, i < 10 ? 0 : i < 20 ?
		    1000 + i : 900000);
		assert_int_equal(state_rcpt_put(f->st, &r), 0);
	}
	/* The boundary: expires == now stays for the sweep (get already
	 * calls it unknown). */
	rcpt(&r, "edge@customer.example", STATE_RCPT_INVALID, 5000);
	assert_int_equal(state_rcpt_put(f->st, &r), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);

	do {
		assert_int_equal(state_sweep(f->st, 5000, 4, &del), 0);
		assert_true(del <= 4);
		total += del;
	} while (del > 0);
	assert_int_equal(total, 10);
	assert_int_equal(state_rcpt_count(f->st, "customer.example", 0,
	    &valid, &invalid), 0);
	assert_int_equal(valid, 20);
	assert_int_equal(invalid, 1);
	assert_int_equal(state_rcpt_get(f->st, "u00@customer.example",
	    INT64_MAX, &r), 1);
	assert_int_equal(state_sweep(f->st, 5001, 4, &del), 0);
	assert_int_equal(del, 1);
	assert_int_equal(state_sweep(f->st, INT64_MAX, 100, &del), 0);
	assert_int_equal(del, 10);
	assert_int_equal(state_rcpt_count(f->st, NULL, INT64_MAX, &valid,
	    &invalid), 0);
	assert_int_equal(valid, 10);	/* the operator's */
	assert_int_equal(invalid, 0);
}

static int
domain_seen(const struct state_domain *d, void *arg)
{
	struct walk *w = arg;

	snprintf(w->text + strlen(w->text), sizeof(w->text) - strlen(w->text),
	    "%s:%d ", d->name, d->lifecycle);
	return ++w->rows == w->stop_after;
}

static void
test_domain(void **state)
{
	struct fx *f = *state;
	struct state_domain d, got;
	struct walk w;
	size_t del;

	assert_int_equal(state_domain_get(f->st, "customer.example", &got),
	    0);
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "customer.example");
	d.lifecycle = STATE_DOM_LEARNING;
	d.added = d.changed = 1000;
	d.health = 1;
	assert_int_equal(state_domain_put(f->st, &d), 0);
	assert_int_equal(state_domain_get(f->st, "customer.example", &got),
	    1);
	assert_memory_equal(&got, &d, sizeof(d));

	/* Replace: every field back as put. */
	d.lifecycle = STATE_DOM_ACTIVE;
	d.changed = 2000;
	d.first_accept = 1500;
	d.last_accept = 1900;
	strcpy(d.accept_how, "passthrough");
	d.health = 0;
	d.health_changed = 1950;
	strcpy(d.health_why, "connect to mx1.customer.example: refused");
	d.last_probe = 1960;
	assert_int_equal(state_domain_put(f->st, &d), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_domain_get(f->st, "customer.example", &got),
	    1);
	assert_string_equal(got.name, "customer.example");
	assert_int_equal(got.lifecycle, STATE_DOM_ACTIVE);
	assert_int_equal(got.added, 1000);
	assert_int_equal(got.changed, 2000);
	assert_int_equal(got.first_accept, 1500);
	assert_int_equal(got.last_accept, 1900);
	assert_string_equal(got.accept_how, "passthrough");
	assert_int_equal(got.health, 0);
	assert_int_equal(got.health_changed, 1950);
	assert_string_equal(got.health_why,
	    "connect to mx1.customer.example: refused");
	assert_int_equal(got.last_probe, 1960);

	memset(&d, 0, sizeof(d));
	strcpy(d.name, "a.example");
	d.lifecycle = STATE_DOM_REFUSED;
	assert_int_equal(state_domain_put(f->st, &d), 0);
	strcpy(d.name, "z.example");
	d.lifecycle = STATE_DOM_LEARNING;
	assert_int_equal(state_domain_put(f->st, &d), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	memset(&w, 0, sizeof(w));
	assert_int_equal(state_domain_list(f->st, domain_seen, &w), 0);
	assert_string_equal(w.text, "a.example:3 customer.example:2 "
	    "z.example:1 ");
	memset(&w, 0, sizeof(w));
	w.stop_after = 1;
	assert_int_equal(state_domain_list(f->st, domain_seen, &w), 0);
	assert_string_equal(w.text, "a.example:3 ");

	/* Domains never expire. */
	assert_int_equal(state_sweep(f->st, INT64_MAX, 100, &del), 0);
	assert_int_equal(del, 0);
	assert_int_equal(state_domain_get(f->st, "a.example", &got), 1);
}

static void
test_rcpt_domain_admin(void **state)
{
	struct fx *f = *state;
	struct state *adm;
	struct state_rcpt r, got;
	struct state_domain d, dg;
	char err[256];

	adm = state_open_admin(f->dir, err, sizeof(err));
	assert_non_null(adm);
	/* The admin handle commits each write at once: the daemon's
	 * connection sees it without a loop turn. */
	rcpt(&r, "postmaster@customer.example", STATE_RCPT_VALID, 0);
	r.source = STATE_SRC_ADMIN;
	assert_int_equal(state_rcpt_put(adm, &r), 0);
	assert_int_equal(state_rcpt_get(f->st, "postmaster@customer.example",
	    5000, &got), 1);
	assert_int_equal(got.source, STATE_SRC_ADMIN);
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "customer.example");
	d.lifecycle = STATE_DOM_ACTIVE;
	assert_int_equal(state_domain_put(adm, &d), 0);
	assert_int_equal(state_domain_get(f->st, "customer.example", &dg), 1);
	assert_int_equal(dg.lifecycle, STATE_DOM_ACTIVE);
	assert_int_equal(state_rcpt_delete(adm, "postmaster@customer.example"),
	    1);
	assert_int_equal(state_rcpt_get(f->st, "postmaster@customer.example",
	    5000, &got), 0);
	state_close(adm);
}

/* What schema 1 was, verbatim (issue 5): the migration starts from it. */
static const char schema_v1[] =
	"CREATE TABLE grey_triplet ("
	"  net TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,"
	"  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	"  passed INTEGER NOT NULL, expires INTEGER NOT NULL,"
	"  tries INTEGER NOT NULL, passes INTEGER NOT NULL,"
	"  PRIMARY KEY (net, sender, rcpt));"
	"CREATE INDEX grey_triplet_expires ON grey_triplet (expires);"
	"CREATE TABLE grey_net ("
	"  net TEXT PRIMARY KEY, passes INTEGER NOT NULL,"
	"  allowed INTEGER NOT NULL, refreshed INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX grey_net_expires ON grey_net (expires);"
	"CREATE TABLE grey_allow ("
	"  kind TEXT NOT NULL, value TEXT NOT NULL,"
	"  lo BLOB, hi BLOB, added INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, value));"
	"CREATE INDEX grey_allow_lo ON grey_allow (kind, lo);"
	"INSERT INTO grey_triplet VALUES ('192.0.2.0/24', 'a@b.example', "
	"  'u@customer.example', 1000, 1100, 1400, 90000, 2, 1);"
	"PRAGMA journal_mode = WAL;"
	"PRAGMA user_version = 1;";

static void
test_migrate_v1(void **state)
{
	struct state_conf sc = { 3600, 100 };
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/state_test_v1.XXXXXX", cmd[128], err[512];
	struct state *st;
	struct state_triplet t;
	struct state_rcpt r;
	struct state_domain d;
	size_t valid, invalid;

	assert_non_null(mkdtemp(dir));
	raw_exec(dir, schema_v1);
	assert_int_equal(user_version(dir), 1);

	/* backmxctl does not migrate: the daemon does, at its start. */
	assert_null(state_open_admin(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 1"));

	st = state_open(base, dir, &sc, err, sizeof(err));
	if (st == NULL)
		fail_msg("%s", err);
	assert_int_equal(user_version(dir), STATE_SCHEMA);
	assert_int_equal(STATE_SCHEMA, 5);
	/* The greylist row from before survives... */
	assert_int_equal(state_triplet_get(st, "192.0.2.0/24", "a@b.example",
	    "u@customer.example", &t), 1);
	assert_int_equal(t.passed, 1400);
	assert_int_equal(t.passes, 1);
	/* ...and the new tables work. */
	rcpt(&r, "u@customer.example", STATE_RCPT_VALID, 0);
	assert_int_equal(state_rcpt_put(st, &r), 0);
	memset(&d, 0, sizeof(d));
	strcpy(d.name, "customer.example");
	d.lifecycle = STATE_DOM_LEARNING;
	assert_int_equal(state_domain_put(st, &d), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	state_close(st);

	/* Opened again: nothing left to migrate, everything there. */
	st = state_open(base, dir, &sc, err, sizeof(err));
	if (st == NULL)
		fail_msg("%s", err);
	assert_int_equal(state_rcpt_get(st, "u@customer.example", 5000, &r),
	    1);
	assert_int_equal(state_rcpt_count(st, "customer.example", 5000,
	    &valid, &invalid), 0);
	assert_int_equal(valid, 1);
	assert_int_equal(state_domain_get(st, "customer.example", &d), 1);
	assert_int_equal(state_triplet_get(st, "192.0.2.0/24", "a@b.example",
	    "u@customer.example", &t), 1);
	state_close(st);

	/* One version past ours still refuses to open. */
	raw_exec(dir, "PRAGMA user_version = 6");
	assert_null(state_open(base, dir, &sc, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 6 is newer"));

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	event_base_free(base);
}

/* A version 3 store (no sample sender): its digests survive the
 * migration with none, and take one at their next write. */
static void
test_migrate_v3(void **state)
{
	struct state_conf sc = { 3600, 100 };
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/state_test_v3.XXXXXX", cmd[128], err[512],
	    seen[256] = "";
	struct state *st;
	struct state_bulk b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	if ((st = state_open(base, dir, &sc, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	state_close(st);
	raw_exec(dir, "ALTER TABLE bulk_digest DROP COLUMN sender;"
	    "DROP TABLE allow_op;"
	    "INSERT INTO bulk_digest VALUES ('aa', 0, 12, 100, 200, 0, "
	    "  90000, 'old news');"
	    "PRAGMA user_version = 3;");

	if ((st = state_open(base, dir, &sc, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_int_equal(user_version(dir), STATE_SCHEMA);
	assert_int_equal(state_bulk_get(st, "aa", 500, &b), 1);
	assert_int_equal(b.count, 12);
	assert_string_equal(b.subject, "old news");
	assert_false(b.has_sender);
	strcpy(b.sender, "news@list.example");
	b.has_sender = 1;
	assert_int_equal(state_bulk_put(st, &b), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_list(st, 10, 500, bulk_seen_cb, seen), 0);
	assert_string_equal(seen, "aa <news@list.example> ");
	state_close(st);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	event_base_free(base);
}

/* The operations of a list as text: "kind value at +|- ...". */
static int
op_seen(const struct state_allow_op *op, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 1024 - n, "%s %s %lld %s ",
	    state_allow_kind_name(op->kind), op->value, (long long)op->at,
	    op->deleted ? "-" : "+");
	return 0;
}

/* A version 4 store with allow entries: each becomes an add of its
 * 'added' time, and the look-ups answer as before. */
static void
test_migrate_v4(void **state)
{
	struct state_conf sc = { 3600, 100 };
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/state_test_v4.XXXXXX", cmd[128], err[512],
	    seen[1024] = "";
	struct sockaddr_storage in;
	struct state *st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	if ((st = state_open(base, dir, &sc, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_int_equal(state_allow_add(st, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 100, err, sizeof(err)), 0);
	assert_int_equal(state_bulk_allow_add(st, STATE_ALLOW_SENDER,
	    "News@List.Example", 200, err, sizeof(err)), 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	state_close(st);
	raw_exec(dir, "DROP TABLE allow_op; PRAGMA user_version = 4;");

	if ((st = state_open(base, dir, &sc, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_int_equal(user_version(dir), STATE_SCHEMA);
	/* The entries from before stay, and stay this node's own: no
	 * operation for a sync to push (deletes were never recorded). */
	assert_int_equal(state_allow_ops(st, STATE_ALLOWS_GREYLIST, op_seen,
	    seen), 0);
	assert_int_equal(state_allow_ops(st, STATE_ALLOWS_BULK, op_seen,
	    seen), 0);
	assert_string_equal(seen, "");
	make_sa("192.0.2.9", &in);
	assert_int_equal(state_allow_client(st, (struct sockaddr *)&in), 1);
	assert_int_equal(state_bulk_allowed(st, (struct sockaddr *)&in,
	    "news@list.example"), 1);
	/* Run again by the operator, an entry is the cluster's. */
	assert_int_equal(state_allow_add(st, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 300, err, sizeof(err)), 1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(state_allow_ops(st, STATE_ALLOWS_GREYLIST, op_seen,
	    seen), 0);
	assert_string_equal(seen, "client 192.0.2.0/24 300 + ");
	state_close(st);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	event_base_free(base);
}

/* The merge rule (docs/cluster.md "Allow entries"): the later operation
 * wins, a delete on a tie. */
static void
test_allow_op_wins(void **state)
{
	static const struct {
		int64_t	a_at;
		int	a_del;
		int64_t	b_at;
		int	b_del;
		int	wins;
	} rows[] = {
		{ 101, 0, 100, 1, 1 },	/* a later add beats a delete */
		{ 101, 1, 100, 0, 1 },
		{ 100, 0, 101, 1, 0 },	/* an older one never */
		{ 100, 1, 101, 0, 0 },
		{ 100, 1, 100, 0, 1 },	/* a tie: the delete */
		{ 100, 0, 100, 1, 0 },
		{ 100, 0, 100, 0, 0 },	/* the same: nothing to do */
		{ 100, 1, 100, 1, 0 },
	};
	struct state_allow_op a, b;
	size_t i;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		a.at = rows[i].a_at;
		a.deleted = rows[i].a_del;
		b.at = rows[i].b_at;
		b.deleted = rows[i].b_del;
		if (state_allow_op_wins(&a, &b) != rows[i].wins)
			fail_msg("row %zu", i);
	}
}

/* Another node's operations into this store: applied when they win,
 * tombstones kept and never seen by the look-ups or the listing, an
 * operator's op after them ordered after them. */
static void
test_allow_apply(void **state)
{
	struct fx *f = *state;
	struct state_allow_op op;
	struct sockaddr_storage in;
	char err[256], seen[1024] = "";
	struct seen listed;

	make_sa("192.0.2.9", &in);
	assert_int_equal(state_allow_add(f->st, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 100, err, sizeof(err)), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	memset(&op, 0, sizeof(op));
	op.list = STATE_ALLOWS_GREYLIST;
	op.kind = STATE_ALLOW_CLIENT;
	strcpy(op.value, "192.0.2.0/24");
	/* An older add, the same add: nothing. */
	op.at = 99;
	assert_int_equal(state_allow_apply(f->st, &op), 0);
	op.at = 100;
	assert_int_equal(state_allow_apply(f->st, &op), 0);
	/* A delete of the same second wins. */
	op.deleted = 1;
	assert_int_equal(state_allow_apply(f->st, &op), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_allow_client(f->st, (struct sockaddr *)&in), 0);
	memset(&listed, 0, sizeof(listed));
	assert_int_equal(state_allow_list(f->st, allow_seen, &listed), 0);
	assert_string_equal(listed.text, "");
	assert_int_equal(state_allow_ops(f->st, STATE_ALLOWS_GREYLIST,
	    op_seen, seen), 0);
	assert_string_equal(seen, "client 192.0.2.0/24 100 - ");
	/* An operator here, whose clock is behind: after it all the same. */
	assert_int_equal(state_allow_add(f->st, STATE_ALLOW_CLIENT,
	    "192.0.2.0/24", 50, err, sizeof(err)), 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_allow_client(f->st, (struct sockaddr *)&in), 1);
	seen[0] = '\0';
	assert_int_equal(state_allow_ops(f->st, STATE_ALLOWS_GREYLIST,
	    op_seen, seen), 0);
	assert_string_equal(seen, "client 192.0.2.0/24 101 + ");
	/* A bulk delete of an entry never seen here: its tombstone stays,
	 * and an older add from elsewhere does not come in. */
	op.list = STATE_ALLOWS_BULK;
	op.kind = STATE_ALLOW_SENDER;
	strcpy(op.value, "news@list.example");
	op.at = 300;
	op.deleted = 1;
	assert_int_equal(state_allow_apply(f->st, &op), 1);
	op.at = 299;
	op.deleted = 0;
	assert_int_equal(state_allow_apply(f->st, &op), 0);
	op.at = 301;
	assert_int_equal(state_allow_apply(f->st, &op), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(state_bulk_allowed(f->st, (struct sockaddr *)&in,
	    "news@list.example"), 1);
	assert_int_equal(state_bulk_allow_delete(f->st, "news@list.example",
	    10), 1);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	seen[0] = '\0';
	assert_int_equal(state_allow_ops(f->st, STATE_ALLOWS_BULK, op_seen,
	    seen), 0);
	assert_string_equal(seen, "sender news@list.example 302 - ");
	/* Peer bytes that this node would never write: refused. */
	op.at = 1000;
	strcpy(op.value, "News@List.Example");
	assert_int_equal(state_allow_apply(f->st, &op), -2);
	op.kind = STATE_ALLOW_DOMAIN;
	strcpy(op.value, "a@list.example");
	assert_int_equal(state_allow_apply(f->st, &op), -2);
	op.kind = STATE_ALLOW_CLIENT;
	strcpy(op.value, "192.0.2.1/24");
	assert_int_equal(state_allow_apply(f->st, &op), -2);
	op.list = STATE_ALLOWS_GREYLIST;
	op.kind = STATE_ALLOW_RECIPIENT;
	strcpy(op.value, "u@customer.example");
	assert_int_equal(state_allow_apply(f->st, &op), -2);
	op.kind = STATE_ALLOW_DOMAIN;
	strcpy(op.value, "list.example");
	op.at = 0;
	assert_int_equal(state_allow_apply(f->st, &op), -2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_many, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bulk_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bulk_allow, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_allow_admin, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_allow_apply, setup,
		    teardown),
		cmocka_unit_test(test_allow_op_wins),
		cmocka_unit_test_setup_teardown(test_rcpt_put_get, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_bounds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_list_count, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_sweep, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rcpt_domain_admin, setup,
		    teardown),
		cmocka_unit_test(test_migrate_v1),
		cmocka_unit_test(test_migrate_v3),
		cmocka_unit_test(test_migrate_v4),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
