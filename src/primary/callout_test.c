/* Unit tests for callout.c: the acceptance probes are spread over their
 * interval and bounded per second, however many domains (issue 16). */
#include "callout.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_probe_budget(void **state)
{
	static const struct {
		size_t		ndomains;
		unsigned	interval;
		size_t		want;
	} rows[] = {
		{ 0, 86400, 0 },		/* nothing to probe */
		{ 1, 86400, 1 },		/* a few: one a second */
		{ 10, 86400, 1 },
		{ 86400, 86400, 1 },		/* exactly one a second */
		{ 86401, 86400, 2 },
		{ 100000, 86400, 2 },		/* an ISP: ~14 h a round */
		{ 100000, 3600, 10 },		/* capped: 10,000 s a round */
		{ 1000000, 60, CALLOUT_PROBE_RATE_MAX },
		{ 5, 0, 5 },			/* no division by zero */
	};
	size_t i, got;

	for (i = 0; i < nitems(rows); i++) {
		got = callout_probe_budget(rows[i].ndomains, rows[i].interval);
		if (got != rows[i].want)
			fail_msg("row %zu: %zu, want %zu", i, got,
			    rows[i].want);
	}
	/* Every domain is looked at within one interval when the cap
	 * allows it: budget x interval >= domains. */
	for (i = 1; i <= 200000; i += 997)
		assert_true(callout_probe_budget(i, 86400) * 86400 >= i);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
