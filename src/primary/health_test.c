/* Unit tests for health.c: when a primary goes down and comes back, who
 * hears of it, when it is probed, and lookups among many domains. */
#include "health.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

static struct config conf;

/* What the callbacks saw. */
static struct {
	char		up[256];
	unsigned	nup;
	char		probed[8][256];
	unsigned	nprobe;
	primary_probe_done_cb *done;
	void		*done_arg;
} seen;

static size_t
up_cb(const char *domain, void *arg)
{
	snprintf(seen.up, sizeof(seen.up), "%s", domain);
	seen.nup++;
	return 7;
}

static void
prober(void *owner, const char *domain, primary_probe_done_cb *done,
    void *arg)
{
	if (seen.nprobe < 8)
		snprintf(seen.probed[seen.nprobe], 256, "%s", domain);
	seen.nprobe++;
	seen.done = done;
	seen.done_arg = arg;
}

static struct primary_health *
fresh(unsigned down_after)
{
	struct primary_health *h;

	memset(&seen, 0, sizeof(seen));
	config_defaults(&conf);
	conf.primary_down_after = down_after;
	conf.primary_probe_interval = 60;
	h = primary_health_new(NULL, &conf);
	primary_health_on_up(h, up_cb, NULL);
	primary_health_set_prober(h, prober, NULL);
	return h;
}

/* Down after primary_down_after consecutive failures, whatever case the
 * callers write the domain in; a success in between starts over. */
static void
test_down_after(void **state)
{
	struct primary_health *h = fresh(3);

	assert_true(primary_health_up(h, "example.org"));
	primary_health_failed(h, "Example.ORG", "refused", 0);
	primary_health_failed(h, "example.org", "refused", 0);
	assert_true(primary_health_up(h, "EXAMPLE.org"));
	assert_int_equal(primary_health_failures(h, "example.ORG"), 2);
	primary_health_ok(h, "example.org");		/* was up: no callback */
	assert_int_equal(seen.nup, 0);
	assert_int_equal(primary_health_failures(h, "example.org"), 0);
	primary_health_failed(h, "example.org", "refused", 0);
	primary_health_failed(h, "example.org", "refused", 0);
	assert_true(primary_health_up(h, "example.org"));
	primary_health_failed(h, "EXAMPLE.ORG", "refused", 0);
	assert_false(primary_health_up(h, "example.org"));
	assert_false(primary_health_up(h, "Example.Org"));
	assert_true(primary_health_up(h, "other.example"));
	primary_health_free(h);
}

/* 'now': down at the first failure; back up at the first clean EHLO,
 * and the up callback hears of it once, with the lower-cased name. */
static void
test_now_and_back(void **state)
{
	struct primary_health *h = fresh(100);

	primary_health_failed(h, "Cust.Example", "no greeting", 1);
	assert_false(primary_health_up(h, "cust.example"));
	primary_health_failed(h, "cust.example", "again", 1);	/* already down */
	primary_health_ok(h, "CUST.example");
	assert_true(primary_health_up(h, "cust.example"));
	assert_int_equal(seen.nup, 1);
	assert_string_equal(seen.up, "cust.example");
	primary_health_ok(h, "cust.example");
	assert_int_equal(seen.nup, 1);
	primary_health_free(h);
}

/* Only down primaries are probed, each once at a time, every
 * primary_probe_interval; a probe that finds it up brings it back. */
static void
test_probes(void **state)
{
	struct primary_health *h = fresh(1);
	time_t now = time(NULL);

	primary_health_failed(h, "a.example", "refused", 0);
	primary_health_failed(h, "b.example", "refused", 0);
	primary_health_ok(h, "b.example");
	primary_health_tick(h, now);
	assert_int_equal(seen.nprobe, 0);		/* not due yet */
	primary_health_tick(h, now + 61);
	assert_int_equal(seen.nprobe, 1);
	assert_string_equal(seen.probed[0], "a.example");
	primary_health_tick(h, now + 62);		/* still probing */
	assert_int_equal(seen.nprobe, 1);
	seen.done("a.example", 0, "refused", seen.done_arg);
	assert_false(primary_health_up(h, "a.example"));
	now = time(NULL);
	primary_health_tick(h, now + 30);		/* next one later */
	assert_int_equal(seen.nprobe, 1);
	primary_health_tick(h, now + 61);
	assert_int_equal(seen.nprobe, 2);
	seen.done("a.example", 0, "refused", seen.done_arg);
	primary_health_probe_soon(h, "A.example");	/* a flush, ETRN */
	primary_health_tick(h, time(NULL));
	assert_int_equal(seen.nprobe, 3);
	seen.done("a.example", 1, "", seen.done_arg);
	assert_true(primary_health_up(h, "a.example"));
	assert_int_equal(seen.nup, 2);			/* b, then a */
	assert_string_equal(seen.up, "a.example");
	primary_health_tick(h, now + 100000);		/* nobody is down */
	assert_int_equal(seen.nprobe, 3);
	primary_health_free(h);
}

/* Many domains: each is found as itself after the table grew. */
static void
test_many(void **state)
{
	struct primary_health *h = fresh(1);
	char d[64];
	size_t i;

	for (i = 0; i < 100000; i++) {
		snprintf(d, sizeof(d), "D%zu.Example", i);
		if (i % 3 == 0)
			primary_health_failed(h, d, "refused", 0);
		else
			primary_health_ok(h, d);
	}
	for (i = 0; i < 100000; i++) {
		snprintf(d, sizeof(d), "d%zu.example", i);
		if (primary_health_up(h, d) != (i % 3 != 0))
			fail_msg("%s", d);
	}
	assert_true(primary_health_up(h, "d100000.example"));
	primary_health_free(h);
}

/* A suspicion is a probe now, never "down" by itself: down only when
 * that probe fails; one probe at a time, none again within a few
 * seconds; nothing for a primary already down. */
static void
test_suspect(void **state)
{
	struct primary_health *h = fresh(1);

	primary_health_suspect(h, "Example.org", "421 busy");
	assert_true(primary_health_up(h, "example.org"));
	assert_int_equal(seen.nprobe, 1);
	assert_string_equal(seen.probed[0], "example.org");
	primary_health_suspect(h, "example.org", "421 busy");	/* probing */
	assert_int_equal(seen.nprobe, 1);
	seen.done("example.org", 1, "", seen.done_arg);
	assert_true(primary_health_up(h, "example.org"));
	assert_int_equal(seen.nup, 0);
	primary_health_suspect(h, "example.org", "421 busy");	/* too soon */
	assert_int_equal(seen.nprobe, 1);

	primary_health_suspect(h, "other.org", "refused");
	assert_int_equal(seen.nprobe, 2);
	seen.done("other.org", 0, "refused", seen.done_arg);
	assert_false(primary_health_up(h, "other.org"));
	primary_health_suspect(h, "other.org", "refused");	/* down */
	assert_int_equal(seen.nprobe, 2);
	primary_health_free(h);

	/* The probe's failure counts as one of primary_down_after. */
	h = fresh(2);
	primary_health_suspect(h, "example.org", "421 busy");
	seen.done("example.org", 0, "421 busy", seen.done_arg);
	assert_true(primary_health_up(h, "example.org"));
	assert_int_equal(primary_health_failures(h, "example.org"), 1);
	primary_health_failed(h, "example.org", "refused", 0);
	assert_false(primary_health_up(h, "example.org"));
	primary_health_free(h);
}

/* What the cluster would be told (docs/cluster.md "Primary health"). */
static struct {
	unsigned	n;
	int		up;
	char		domain[256];
} told;

static void
count_down(const char *domain, void *arg)
{
	(*(unsigned *)arg)++;
}

static void
change_cb(const char *domain, int up, const char *why, time_t since,
    void *arg)
{
	told.n++;
	told.up = up;
	snprintf(told.domain, sizeof(told.domain), "%s", domain);
}

/* Another node's "up" drains as our own probe would, unless our own
 * failure is newer; it is not told again (no echo); a down restored at
 * start is older than any news. Our own changes are told, not the
 * restored down. */
static void
test_remote(void **state)
{
	struct primary_health *h = fresh(1);
	time_t now = time(NULL);
	unsigned n = 0;

	memset(&told, 0, sizeof(told));
	primary_health_on_change(h, change_cb, NULL);
	primary_health_remote_up(h, "example.org", now, "b");	/* unknown */
	assert_int_equal(seen.nup, 0);
	primary_health_failed(h, "Example.ORG", "refused", 0);
	assert_int_equal(told.n, 1);
	assert_int_equal(told.up, 0);
	assert_string_equal(told.domain, "example.org");
	primary_health_remote_up(h, "example.org", now - 100, "b"); /* stale */
	assert_false(primary_health_up(h, "example.org"));
	assert_int_equal(seen.nup, 0);
	primary_health_remote_up(h, "EXAMPLE.org", now + 1, "b");
	assert_true(primary_health_up(h, "example.org"));
	assert_int_equal(seen.nup, 1);
	assert_string_equal(seen.up, "example.org");
	assert_int_equal(told.n, 1);		/* not told back */
	primary_health_remote_up(h, "example.org", now + 2, "b"); /* up */
	assert_int_equal(seen.nup, 1);

	primary_health_failed(h, "restored.org", "down at the last stop", 1);
	assert_int_equal(told.n, 1);		/* a memory, not news */
	primary_health_foreach_down(h, count_down, &n);
	assert_int_equal(n, 1);
	primary_health_remote_up(h, "restored.org", now - 86000, "b");
	assert_true(primary_health_up(h, "restored.org"));
	assert_int_equal(seen.nup, 2);
	/* A failure of ours while down is newer evidence than older news. */
	primary_health_failed(h, "restored.org", "refused", 1);
	primary_health_failed(h, "restored.org", "refused", 0);
	primary_health_remote_up(h, "restored.org", now - 100, "b");
	assert_false(primary_health_up(h, "restored.org"));

	primary_health_failed(h, "example.org", "refused", 0);
	primary_health_ok(h, "example.org");
	assert_int_equal(told.n, 3);
	assert_int_equal(told.up, 1);
	primary_health_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_down_after),
		cmocka_unit_test(test_now_and_back),
		cmocka_unit_test(test_probes),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_suspect),
		cmocka_unit_test(test_remote),
	};

	log_set_level(LOG_LEVEL_ERR);		/* 100,000 domains go down */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
