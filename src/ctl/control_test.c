/* Unit tests for the control socket's word encoding (control.h). */
#include "control.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Each row: a value, its word, and back. */
static const struct {
	const char	*value;
	const char	*word;
} rows[] = {
	{ "127.0.0.0/24", "127.0.0.0/24" },
	{ "<>", "<>" },
	{ "<a@b.example>", "<a@b.example>" },
	{ "<\"a b\"@b.example>", "<\"a%20b\"@b.example>" },
	{ "100%", "100%25" },
	{ "<j\xc3\xb6rg@b.example>", "<j%C3%B6rg@b.example>" },
	{ "\t\x7f", "%09%7F" },
	{ "", "" },
};

static void
test_roundtrip(void **state)
{
	char w[64], v[64];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_int_equal(control_word_encode(rows[i].value, w,
		    sizeof(w)), 0);
		if (strcmp(w, rows[i].word) != 0)
			fail_msg("row %zu: encoded '%s' want '%s'", i, w,
			    rows[i].word);
		assert_null(strchr(w, ' '));
		assert_int_equal(control_word_decode(w, v, sizeof(v)), 0);
		assert_string_equal(v, rows[i].value);
	}
}

static void
test_bad(void **state)
{
	static const char *const bad[] = { "%", "%4", "%zz", "a%00b", "%g1" };
	char v[8];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (control_word_decode(bad[i], v, sizeof(v)) != -1)
			fail_msg("'%s' decoded", bad[i]);
	/* No room: refused, never cut. */
	assert_int_equal(control_word_decode("abcdefgh", v, sizeof(v)), -1);
	assert_int_equal(control_word_decode("abcdefg", v, sizeof(v)), 0);
	assert_int_equal(control_word_encode(" ", v, 3), -1);
	assert_int_equal(control_word_encode(" ", v, 4), 0);
	assert_string_equal(v, "%20");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
