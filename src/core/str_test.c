/* Unit tests for str.c and log_escape(): bounded copies report cuts. */
#include "str.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"

static void
test_copy(void **state)
{
	char b[4];

	assert_int_equal(str_copy(b, sizeof(b), "abc"), 0);
	assert_string_equal(b, "abc");
	assert_int_equal(str_copy(b, sizeof(b), "abcd"), -1);
	assert_string_equal(b, "abc");
	assert_int_equal(str_ncopy(b, sizeof(b), "xyz123", 2), 0);
	assert_string_equal(b, "xy");
}

static void
test_lower_trim(void **state)
{
	char b[32] = "  MiXeD.Example \t\r\n";

	str_trim(b);
	assert_string_equal(b, "MiXeD.Example");
	str_lower(b);
	assert_string_equal(b, "mixed.example");
}

static void
test_escape(void **state)
{
	static const struct {
		const char	*in;
		size_t		 inlen;
		size_t		 outsz;
		const char	*out;
	} rows[] = {
		{ "plain", 5, 64, "plain" },
		{ "a\x01" "b", 3, 64, "a\\x01b" },
		{ "q\"\\", 3, 64, "q\\x22\\x5c" },
		{ "\r\n\xff", 3, 64, "\\x0d\\x0a\\xff" },
		{ "abcdefghij", 10, 8, "abcd..." },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		log_escape(out, rows[i].outsz, rows[i].in, rows[i].inlen);
		if (strcmp(out, rows[i].out) != 0)
			fail_msg("row %zu: got '%s' want '%s'", i, out,
			    rows[i].out);
		assert_true(strlen(out) < rows[i].outsz);
	}
}

/* Each row: a list and its items joined by '|'. */
static void
test_list(void **state)
{
	static const struct {
		const char	*in;
		const char	*items;
	} rows[] = {
		{ "", "" },
		{ " ,\t, ", "" },
		{ "a", "a" },
		{ "a,b", "a|b" },
		{ "a, b\tc  d", "a|b|c|d" },
		{ ",,a,,", "a" },
		{ " mx1.example.org , mx2.example.org ", "mx1.example.org|"
		    "mx2.example.org" },
		{ "x=127.0.0.2;127.0.0.3,y", "x=127.0.0.2;127.0.0.3|y" },
		{ "a\n\tb\r\n", "a|b" },	/* a continuation line */
	};
	char got[128];
	const char *p;
	size_t i, n, o;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		o = 0;
		got[0] = '\0';
		for (p = rows[i].in; (n = str_list_next(&p)) > 0; p += n) {
			assert_true(o + n + 2 < sizeof(got));
			if (o > 0)
				got[o++] = '|';
			memcpy(got + o, p, n);
			o += n;
			got[o] = '\0';
		}
		assert_int_equal(*p, '\0');
		if (strcmp(got, rows[i].items) != 0)
			fail_msg("row %zu: got '%s' want '%s'", i, got,
			    rows[i].items);
	}
}

/* Host names compare as DNS does: any case, one trailing dot. */
static void
test_host_eq(void **state)
{
	assert_true(str_host_eq("mx.example.org", "MX.Example.ORG"));
	assert_true(str_host_eq("mx.example.org.", "mx.example.org"));
	assert_true(str_host_eq("mx.example.org", "mx.example.org."));
	assert_false(str_host_eq("mx.example.org", "mx.example.or"));
	assert_false(str_host_eq("mx.example.org", "mx.example.org.."));
	assert_false(str_host_eq("mx.example.org", "x.example.org"));
	assert_false(str_host_eq("", ""));
	assert_false(str_host_eq(".", ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy),
		cmocka_unit_test(test_lower_trim),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_host_eq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
