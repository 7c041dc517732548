/* Unit tests for reply.c: one row per sequence of lines a primary may
 * send, with the verdict on the last line and what the reply holds. */
#include "reply.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

struct row {
	const char	*lines[4];	/* fed in order; NULL ends */
	enum reply_status want;		/* of the last line fed */
	int		 code;
	const char	*enh;
	const char	*first;		/* reply_first_text() */
};

static const struct row rows[] = {
	{ { "250 ok" }, REPLY_DONE, 250, "", "ok" },
	{ { "250" }, REPLY_DONE, 250, "", "" },
	{ { "550 5.1.1 no such user" }, REPLY_DONE, 550, "5.1.1",
	    "no such user" },
	{ { "451 4.3.0" }, REPLY_DONE, 451, "4.3.0", "" },
	{ { "250-first", "250-SIZE 10", "250 last" }, REPLY_DONE, 250, "",
	    "first" },
	{ { "250-first", "250-more" }, REPLY_MORE, 250, "", "first" },
	/* the class of the enhanced code must match the reply's */
	{ { "550 4.1.1 odd" }, REPLY_DONE, 550, "", "4.1.1 odd" },
	{ { "250 2.0.0x" }, REPLY_DONE, 250, "", "2.0.0x" },
	/* malformed */
	{ { "25" }, REPLY_BAD, 0, "", "" },
	{ { "2500 x" }, REPLY_BAD, 0, "", "" },
	{ { "250x" }, REPLY_BAD, 0, "", "" },
	{ { "150 too low" }, REPLY_BAD, 0, "", "" },
	{ { "650 too high" }, REPLY_BAD, 0, "", "" },
	{ { "290 second digit" }, REPLY_BAD, 0, "", "" },
	{ { "abc" }, REPLY_BAD, 0, "", "" },
	/* inconsistent multi-line */
	{ { "250-a", "251 b" }, REPLY_BAD, 250, "", "a" },
	{ { "250-a", "550 b" }, REPLY_BAD, 250, "", "a" },
};

static void
test_rows(void **state)
{
	size_t i, j;

	for (i = 0; i < nitems(rows); i++) {
		const struct row *r = &rows[i];
		enum reply_status st = REPLY_MORE;
		struct reply rp;
		const char *t;
		size_t n;

		reply_init(&rp);
		for (j = 0; j < 4 && r->lines[j] != NULL; j++)
			st = reply_feed(&rp, r->lines[j],
			    strlen(r->lines[j]));
		if (st != r->want)
			fail_msg("row %zu: status %d, want %d", i, st, r->want);
		if (r->want == REPLY_BAD && rp.nlines == 0)
			continue;
		assert_int_equal(rp.code, r->code);
		assert_string_equal(rp.enh, r->enh);
		t = reply_first_text(&rp, &n);
		if (n != strlen(r->first) || memcmp(t, r->first, n) != 0)
			fail_msg("row %zu: first text '%.*s'", i, (int)n, t);
	}
}

static void
test_bounds(void **state)
{
	char line[REPLY_LINE_MAX + 2];
	struct reply rp;
	unsigned i;

	/* An endless reply is a protocol error, not a memory hog. */
	reply_init(&rp);
	for (i = 0; i < REPLY_LINES_MAX; i++)
		assert_int_equal(reply_feed(&rp, "250-xxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 76),
		    REPLY_MORE);
	assert_int_equal(reply_feed(&rp, "250 end", 7), REPLY_BAD);
	assert_true(rp.textlen < sizeof(rp.text));
	assert_int_equal(rp.truncated, 1);

	/* Over-long line. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	reply_init(&rp);
	assert_int_equal(reply_feed(&rp, line, REPLY_LINE_MAX + 1),
	    REPLY_BAD);
	assert_int_equal(reply_feed(&rp, line, REPLY_LINE_MAX), REPLY_DONE);

	/* NUL inside. */
	reply_init(&rp);
	assert_int_equal(reply_feed(&rp, "250 a\0b", 7), REPLY_BAD);
}

static void
test_keywords(void **state)
{
	static const char *const ehlo[] = { "250-mx.example hi",
	    "250-PIPELINING", "250-size 1000", "250-8BITMIMEX", "250 DSN" };
	char param[32];
	struct reply rp;
	size_t i;

	reply_init(&rp);
	for (i = 0; i < nitems(ehlo); i++)
		reply_feed(&rp, ehlo[i], strlen(ehlo[i]));
	assert_true(reply_has_keyword(&rp, "PIPELINING", NULL, 0));
	assert_true(reply_has_keyword(&rp, "SIZE", param, sizeof(param)));
	assert_string_equal(param, "1000");
	assert_false(reply_has_keyword(&rp, "8BITMIME", NULL, 0));
	assert_true(reply_has_keyword(&rp, "dsn", param, sizeof(param)));
	assert_string_equal(param, "");
	/* the greeting line is no keyword */
	assert_false(reply_has_keyword(&rp, "mx.example", NULL, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_keywords),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
