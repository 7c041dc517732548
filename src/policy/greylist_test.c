/*
 * greylist_test: the key (client network, sender normalisation) and the
 * transitions of a triplet and a network, time passed in. Table-driven.
 */
#include "greylist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

#include "config.h"

/* A client address for a row (tests/unit/rows.h). */
#define make_sa(ip, ss)	rows_sockaddr(ip, ss)

static void
test_client_net(void **state)
{
	static const struct {
		const char	*ip;
		unsigned	 v4, v6;
		const char	*want;
	} rows[] = {
		{ "192.0.2.77", 24, 64, "192.0.2.0/24" },
		{ "192.0.2.1", 24, 64, "192.0.2.0/24" },
		{ "192.0.3.1", 24, 64, "192.0.3.0/24" },
		{ "198.51.100.200", 19, 64, "198.51.96.0/19" },
		{ "198.51.100.200", 32, 64, "198.51.100.200/32" },
		{ "198.51.100.200", 0, 64, "0.0.0.0/0" },
		{ "2001:db8:1:2:a:b:c:d", 24, 64, "2001:db8:1:2::/64" },
		{ "2001:db8:1:2::ffff", 24, 64, "2001:db8:1:2::/64" },
		{ "2001:db8:1:3::1", 24, 64, "2001:db8:1:3::/64" },
		{ "2001:db8:1:2:a:b:c:d", 24, 48, "2001:db8:1::/48" },
		{ "2001:db8:1:2:a:b:c:d", 24, 56, "2001:db8:1::/56" },
		{ "2001:db8:1:2ff:a:b:c:d", 24, 56, "2001:db8:1:200::/56" },
		/* IPv4-mapped: an IPv4 client on a [::] listener. */
		{ "::ffff:192.0.2.9", 24, 64, "192.0.2.0/24" },
		{ "::1", 24, 64, "::/64" },
	};
	struct sockaddr_storage ss;
	char out[STATE_NET_MAX];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		make_sa(rows[i].ip, &ss);
		assert_int_equal(greylist_client_net((struct sockaddr *)&ss,
		    rows[i].v4, rows[i].v6, out, sizeof(out)), 0);
		if (strcmp(out, rows[i].want) != 0)
			fail_msg("%s /%u /%u: got %s, want %s", rows[i].ip,
			    rows[i].v4, rows[i].v6, out, rows[i].want);
	}
}

static void
test_normalise(void **state)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
		/* Case: the whole key. */
		{ "Alice@Example.ORG", "alice@example.org" },
		{ "user2@example.org", "user2@example.org" },
		/* BATV prvs (draft-levine-smtp-batv-01), and Microsoft's. */
		{ "prvs=1234abcdef=alice@example.org", "alice@example.org" },
		{ "PRVS=0321f00baa=Alice@Example.org", "alice@example.org" },
		{ "prvs=9876543210=bob.smith@example.net",
		    "bob.smith@example.net" },
		{ "msprvs1=17595yDS3wFmJ=bounces-44@example.com",
		    "bounces-#@example.com" },
		/* Not BATV: no tag, or nothing after it. */
		{ "prvs=alice@example.org", "prvs=alice@example.org" },
		{ "prvs=1234abcdef=@example.org", "prvs=1234abcdef=@example.org" },
		/* SRS0 and SRS1 (Mail::SRS), each separator. */
		{ "SRS0=HHH1=TT=orig.example=alice@fwd.example",
		    "srs0=orig.example=alice@fwd.example" },
		{ "SRS0=Zx9a=4Q=orig.example=alice@fwd.example",
		    "srs0=orig.example=alice@fwd.example" },
		{ "SRS0+Zx9a=4Q=orig.example=alice@fwd.example",
		    "srs0=orig.example=alice@fwd.example" },
		{ "SRS0-Zx9a=4Q=orig.example=alice@fwd.example",
		    "srs0=orig.example=alice@fwd.example" },
		{ "SRS1=Xy12=fwd1.example==Zx9a=4Q=orig.example=alice@fwd2.example",
		    "srs1=fwd1.example=orig.example=alice@fwd2.example" },
		{ "SRS1=Ab34=fwd1.example=+Qq77=AB=orig.example=alice@fwd2.example",
		    "srs1=fwd1.example=orig.example=alice@fwd2.example" },
		/* Not SRS (too few fields): as is. */
		{ "SRS0=abc@fwd.example", "srs0=abc@fwd.example" },
		/* VERP and tracking numbers: stand-alone digit runs. */
		{ "bounce-12345-alice=example.org@lists.example.net",
		    "bounce-#-alice=example.org@lists.example.net" },
		{ "bounce-99-alice=example.org@lists.example.net",
		    "bounce-#-alice=example.org@lists.example.net" },
		{ "list-owner-bob=example.org@lists.example.net",
		    "list-owner-bob=example.org@lists.example.net" },
		{ "msg.20240501.7781@news.example", "msg.#.#@news.example" },
		{ "12345@example.org", "#@example.org" },
		{ "a1b2@example.org", "a1b2@example.org" },
		/* The domain keeps its digits. */
		{ "x-1@mx01.example.org", "x-#@mx01.example.org" },
		/* BATV around SRS around VERP all at once. */
		{ "prvs=1111aaaaaa=SRS0=Hh=TT=orig.example=n-42@fwd.example",
		    "srs0=orig.example=n-#@fwd.example" },
	};
	char out[STATE_ADDR_MAX];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(greylist_normalise(rows[i].in, out,
		    sizeof(out)), 0);
		if (strcmp(out, rows[i].want) != 0)
			fail_msg("%s: got %s, want %s", rows[i].in, out,
			    rows[i].want);
	}
	/* A first try and its retry with another tag are one key. */
	{
		char a[STATE_ADDR_MAX], b[STATE_ADDR_MAX];

		greylist_normalise("prvs=0123abcdef=n@example.org", a,
		    sizeof(a));
		greylist_normalise("prvs=0124fedcba=n@example.org", b,
		    sizeof(b));
		assert_string_equal(a, b);
	}
	/* Too small a buffer is an error, never a cut key. */
	assert_int_equal(greylist_normalise("alice@example.org", out, 8), -1);
}

static void
test_sender_key(void **state)
{
	struct mailaddr a;
	char out[STATE_ADDR_MAX];

	memset(&a, 0, sizeof(a));
	a.is_null = 1;
	assert_int_equal(greylist_sender_key(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "");

	memset(&a, 0, sizeof(a));
	strcpy(a.local, "prvs=1234abcdef=Bob");
	strcpy(a.domain, "Example.COM");
	assert_int_equal(greylist_sender_key(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "bob@example.com");

	memset(&a, 0, sizeof(a));
	strcpy(a.local, "U");
	strcpy(a.domain, "Customer.Example");
	assert_int_equal(greylist_rcpt_key(&a, out, sizeof(out)), 0);
	assert_string_equal(out, "u@customer.example");
}

static const struct greylist_params P = {
	.delay = 300, .retry_window = 48 * 3600, .max_age = 36 * 86400,
	.auto_allow_passes = 3,
};

/* One step: what the store holds ('have' NULL: nothing), at 'now'. */
static enum greylist_action
step(struct state_triplet *rec, int have, int64_t now, unsigned *retry)
{
	struct state_triplet next;
	enum greylist_action a;

	memset(&next, 0, sizeof(next));
	a = greylist_decide(have ? rec : NULL, now, &P, &next, retry);
	*rec = next;
	return a;
}

static void
test_transitions(void **state)
{
	static const struct {
		int64_t			at;	/* seconds after t0 */
		enum greylist_action	want;
		unsigned		retry;
		int64_t			first;	/* first_seen after, - t0 */
		int64_t			expires;/* after, - t0 */
	} rows[] = {
		/* First try: deferred, the delay ahead. */
		{ 0, GREYLIST_NEW, 300, 0, 48 * 3600 },
		/* Early retries: deferred, first-seen unchanged. */
		{ 1, GREYLIST_EARLY, 299, 0, 48 * 3600 },
		{ 299, GREYLIST_EARLY, 1, 0, 48 * 3600 },
		/* At the delay: passes, kept max_age from now. */
		{ 300, GREYLIST_PASS, 0, 0, 300 + 36 * 86400 },
		/* Again later: passes, the age moves on. */
		{ 86400, GREYLIST_PASSED, 0, 0, 86400 + 36 * 86400 },
		{ 30 * 86400, GREYLIST_PASSED, 0, 0, 66 * 86400 },
		/* Past max_age after the last pass: a stranger again. */
		{ 66 * 86400 + 1, GREYLIST_NEW, 300, 66 * 86400 + 1,
		    66 * 86400 + 1 + 48 * 3600 },
	};
	const int64_t t0 = 1700000000;
	struct state_triplet rec;
	unsigned retry, tries = 0;
	size_t i;

	memset(&rec, 0, sizeof(rec));
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum greylist_action a = step(&rec, i > 0, t0 + rows[i].at,
		    &retry);

		if (a != rows[i].want || retry != rows[i].retry ||
		    rec.first_seen != t0 + rows[i].first ||
		    rec.expires != t0 + rows[i].expires)
			fail_msg("row %zu: action %d retry %u first %+lld "
			    "expires %+lld", i, a, retry,
			    (long long)(rec.first_seen - t0),
			    (long long)(rec.expires - t0));
		if (a == GREYLIST_NEW)
			tries = 1;
		else if (a == GREYLIST_EARLY)
			tries++;
		assert_int_equal(rec.tries, tries);
		assert_int_equal(rec.last_seen, t0 + rows[i].at);
	}

	/* Unretried: forgotten after the retry window, even past the
	 * delay; the late retry starts over. */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(step(&rec, 0, t0, &retry), GREYLIST_NEW);
	assert_int_equal(step(&rec, 1, t0 + 48 * 3600, &retry),
	    GREYLIST_PASS);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(step(&rec, 0, t0, &retry), GREYLIST_NEW);
	assert_int_equal(step(&rec, 1, t0 + 48 * 3600 + 1, &retry),
	    GREYLIST_NEW);
	assert_int_equal(rec.first_seen, t0 + 48 * 3600 + 1);
	assert_int_equal(rec.passed, 0);
	assert_int_equal(step(&rec, 1, t0 + 48 * 3600 + 301, &retry),
	    GREYLIST_PASS);
	assert_int_equal(rec.passed, t0 + 48 * 3600 + 301);
	assert_int_equal(rec.passes, 1);
}

static void
test_net(void **state)
{
	const int64_t t0 = 1700000000;
	struct state_net n;
	int i;

	memset(&n, 0, sizeof(n));
	strcpy(n.net, "192.0.2.0/24");
	/* Passes 1 and 2: counted, not allowed (P: 3). */
	for (i = 0; i < 2; i++) {
		greylist_net_pass(&n, i > 0, t0 + i, &P);
		assert_int_equal(n.passes, i + 1);
		assert_false(greylist_net_allowed(&n, t0 + i, &P));
	}
	greylist_net_pass(&n, 1, t0 + 10, &P);
	assert_int_equal(n.passes, 3);
	assert_int_equal(n.allowed, t0 + 10);
	assert_true(greylist_net_allowed(&n, t0 + 10, &P));
	assert_string_equal(n.net, "192.0.2.0/24");
	/* Allowed until max_age after the last pass... */
	assert_true(greylist_net_allowed(&n, t0 + 10 + 36 * 86400, &P));
	assert_false(greylist_net_allowed(&n, t0 + 11 + 36 * 86400, &P));
	/* ...which use moves, at most once an hour. */
	assert_false(greylist_net_refresh(&n, t0 + 100, &P));
	assert_true(greylist_net_refresh(&n, t0 + 10 + 3600, &P));
	assert_int_equal(n.expires, t0 + 10 + 3600 + 36 * 86400);
	/* An expired record starts counting from zero. */
	greylist_net_pass(&n, 1, t0 + 100 * 86400, &P);
	assert_int_equal(n.passes, 1);
	assert_int_equal(n.allowed, 0);
	assert_string_equal(n.net, "192.0.2.0/24");
	/* auto_allow_passes 0: never. */
	{
		struct greylist_params off = P;

		off.auto_allow_passes = 0;
		memset(&n, 0, sizeof(n));
		for (i = 0; i < 10; i++)
			greylist_net_pass(&n, i > 0, t0, &off);
		assert_false(greylist_net_allowed(&n, t0, &off));
	}
}

static void
test_allow_lists(void **state)
{
	struct config c;
	struct greylist *gl;
	struct sockaddr_storage ss;
	char err[256];
	static const struct {
		const char	*ip;
		int		 want;
	} ips[] = {
		{ "192.0.2.1", 1 }, { "192.0.2.255", 1 }, { "192.0.3.1", 0 },
		{ "198.51.100.7", 1 }, { "198.51.100.8", 0 },
		{ "2001:db8:aa::1", 1 }, { "2001:db9::1", 0 },
		{ "::ffff:192.0.2.3", 1 },
	};
	size_t i;

	config_defaults(&c);
	strcpy(c.greylist_allow_clients, "192.0.2.0/24, 198.51.100.7 "
	    "2001:db8::/32,.google.com,Outlook.COM");
	strcpy(c.greylist_allow_senders, "lists.example.org, "
	    "bounces@news.example");
	strcpy(c.greylist_allow_recipients, "postmaster@customer.example "
	    "open.example");
	gl = greylist_new(&c, err, sizeof(err));
	if (gl == NULL)
		fail_msg("%s", err);
	for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		make_sa(ips[i].ip, &ss);
		if (greylist_allow_client_addr(gl, (struct sockaddr *)&ss) !=
		    ips[i].want)
			fail_msg("%s: want %d", ips[i].ip, ips[i].want);
	}
	assert_true(greylist_has_client_names(gl));
	assert_true(greylist_allow_client_name(gl, "mail-a1.google.com"));
	assert_true(greylist_allow_client_name(gl, "google.com."));
	assert_true(greylist_allow_client_name(gl, "X.OUTLOOK.com"));
	assert_false(greylist_allow_client_name(gl, "notgoogle.com"));
	assert_false(greylist_allow_client_name(gl, "google.com.evil.test"));

	assert_true(greylist_allow_sender(gl, "a@lists.example.org"));
	assert_true(greylist_allow_sender(gl, "a@x.lists.example.org"));
	assert_false(greylist_allow_sender(gl, "a@example.org"));
	assert_true(greylist_allow_sender(gl, "bounces@news.example"));
	assert_false(greylist_allow_sender(gl, "other@news.example"));
	assert_false(greylist_allow_sender(gl, ""));

	assert_true(greylist_allow_rcpt(gl, "postmaster@customer.example"));
	assert_false(greylist_allow_rcpt(gl, "u@customer.example"));
	assert_true(greylist_allow_rcpt(gl, "anyone@open.example"));
	greylist_free(gl);

	/* Bad entries name their key. */
	config_defaults(&c);
	strcpy(c.greylist_allow_clients, "192.0.2.0/33");
	assert_null(greylist_new(&c, err, sizeof(err)));
	assert_string_equal(err, "greylist_allow_clients: bad address or "
	    "network '192.0.2.0/33'");
	config_defaults(&c);
	strcpy(c.greylist_allow_senders, "a@@");
	assert_null(greylist_new(&c, err, sizeof(err)));
	config_defaults(&c);
	strcpy(c.greylist_allow_clients, "user@example.org");
	assert_null(greylist_new(&c, err, sizeof(err)));
	config_defaults(&c);
	gl = greylist_new(&c, err, sizeof(err));
	assert_non_null(gl);
	assert_false(greylist_has_client_names(gl));
	greylist_free(gl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_net),
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_sender_key),
		cmocka_unit_test(test_transitions),
		cmocka_unit_test(test_net),
		cmocka_unit_test(test_allow_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
