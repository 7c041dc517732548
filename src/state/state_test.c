/*
 * state_test: the SQLite store on a real database in a temporary
 * directory: schema and migration, the loop turn's transaction and its
 * waiters, allow entries, bounded expiry, a lock held by another
 * connection (a 4xx for the caller, never a crash), the admin side.
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
	struct state_conf sc = { 3600, 100 };
	char err[512];

	strcpy(f->dir, "/tmp/state_test.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->base = event_base_new();
	f->st = state_open(f->base, f->dir, &sc, err, sizeof(err));
	if (f->st == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	state_close(f->st);
	event_base_free(f->base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
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
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version",
		    -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(s, 0), STATE_SCHEMA);
		sqlite3_finalize(s);
		sqlite3_close(db);
	}

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
	    "%s:%s ", kind == STATE_ALLOW_CLIENT ? "client" : "domain", value);
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

	/* The daemon's connection sees the commits at once: no cache. */
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		make_sa(ips[i].ip, &ss);
		if (state_allow_client(f->st, (struct sockaddr *)&ss) !=
		    ips[i].want)
			fail_msg("%s: want %d", ips[i].ip, ips[i].want);
	}
	assert_int_equal(state_allow_domain(f->st, "lists.example.org"), 1);
	assert_int_equal(state_allow_domain(f->st, "a.lists.example.org"), 1);
	assert_int_equal(state_allow_domain(f->st, "example.org"), 0);

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(state_allow_list(adm, allow_seen, &seen), 0);
	assert_string_equal(seen.text, "client:192.0.2.0/24 "
	    "client:2001:db8:5::/48 client:203.0.113.9/32 "
	    "domain:lists.example.org ");

	assert_int_equal(state_delete(adm, "192.0.2.0/24", NULL, NULL), 1);
	assert_int_equal(state_delete(adm, "LISTS.example.org", NULL, NULL),
	    1);
	assert_int_equal(state_delete(adm, "nothing", NULL, NULL), 0);
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

static void
test_parse_net(void **state)
{
	uint8_t a[16];
	unsigned p;

	assert_int_equal(state_parse_net("192.0.2.0/24", a, &p), 0);
	assert_int_equal(p, 120);
	assert_int_equal(a[10], 0xff);
	assert_int_equal(a[12], 192);
	assert_int_equal(state_parse_net("2001:db8::/32", a, &p), 0);
	assert_int_equal(p, 32);
	assert_int_equal(state_parse_net("2001:db8::1", a, &p), 0);
	assert_int_equal(p, 128);
	assert_int_equal(state_parse_net("192.0.2.0/33", a, &p), -1);
	assert_int_equal(state_parse_net("192.0.2.0/", a, &p), -1);
	assert_int_equal(state_parse_net("192.0.2.0/-1", a, &p), -1);
	assert_int_equal(state_parse_net("2001:db8::/129", a, &p), -1);
	assert_int_equal(state_parse_net("example.org", a, &p), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_admin, setup,
		    teardown),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_parse_net),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
