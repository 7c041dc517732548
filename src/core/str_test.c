/* Unit tests for str.c and log_escape()/log_value(): bounded copies
 * report cuts; peer text is escaped for logs and terminals. */
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

/*
 * log_value(): one key=value value whatever a peer sent. Bare when it can
 * be; else quoted, so that spaces, '=', quotes, controls and non-ASCII
 * (C1, bidi) can neither start a field nor reach the log raw; a cut
 * value keeps its closing quote.
 */
static void
test_value(void **state)
{
	static const struct {
		const char	*in;
		size_t		 outsz;
		const char	*out;
	} rows[] = {
		{ "u@example.com", 64, "u@example.com" },
		{ "a=b", 64, "a=b" },
		{ "", 64, "\"\"" },
		{ "x verdict=accept", 64, "\"x verdict=accept\"" },
		{ "\"q\"@d", 64, "\"\\x22q\\x22@d\"" },
		{ "back\\slash", 64, "\"back\\x5cslash\"" },
		{ "a\r\nb", 64, "\"a\\x0d\\x0ab\"" },
		{ "\xe2\x80\xae" "rtl", 64, "\"\\xe2\\x80\\xaertl\"" },
		{ "\xc2\x85", 64, "\"\\xc2\\x85\"" },	/* C1 NEL */
		{ "abcdefghij", 11, "abcdefghij" },
		{ "abcdefghij", 10, "\"abcd...\"" },
		{ "a b c d e f", 10, "\"a b ...\"" },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		log_value(out, rows[i].outsz, rows[i].in, strlen(rows[i].in));
		if (strcmp(out, rows[i].out) != 0)
			fail_msg("row %zu: got '%s' want '%s'", i, out,
			    rows[i].out);
		assert_true(strlen(out) < rows[i].outsz);
	}
	/* An address: the brackets go inside the quotes. */
	assert_string_equal(log_path(out, sizeof(out), "u@d"), "<u@d>");
	assert_string_equal(log_path(out, sizeof(out), ""), "<>");
	assert_string_equal(log_path(out, sizeof(out), "\"x y=1\"@d"),
	    "\"<\\x22x y=1\\x22@d>\"");
	/* Uncut at LOG_PATH_SIZE: 256 bytes all escaped. */
	{
		char in[257], big[LOG_PATH_SIZE];

		memset(in, 1, 256);
		in[256] = '\0';
		log_path(big, sizeof(big), in);
		assert_int_equal(strlen(big), 2 + 1 + 4 * 256 + 1);
		assert_string_equal(big + strlen(big) - 2, ">\"");
	}
}

/* str_term(): what a terminal may show of a peer's text. */
static void
test_term(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} rows[] = {
		{ "plain text", "plain text" },
		{ "a\x1b[2Jb", "a?[2Jb" },			/* ESC */
		{ "del\x7f", "del?" },
		{ "nel\xc2\x85", "nel?" },			/* C1 */
		{ "\xe2\x80\xae" "cba", "?cba" },		/* U+202E RLO */
		{ "\xe2\x81\xa6" "x\xe2\x81\xa9", "?x?" },	/* LRI, PDI */
		{ "\xe2\x80\x8f", "?" },			/* RLM */
		{ "caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac" },
		{ "bad\xff\xc3", "bad??" },			/* not UTF-8 */
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		str_term(out, sizeof(out), rows[i].in);
		if (strcmp(out, rows[i].out) != 0)
			fail_msg("row %zu: got '%s' want '%s'", i, out,
			    rows[i].out);
	}
	/* Cut to fit, never inside a character. */
	assert_string_equal(str_term(out, 5, "ab\xc3\xa9\xc3\xa9"),
	    "ab\xc3\xa9");
	assert_true(str_cp_control(0x202a) && str_cp_control(0x2069) &&
	    str_cp_control(0x9f) && str_cp_control(0x1f));
	assert_false(str_cp_control(0x2029) || str_cp_control(0x206a) ||
	    str_cp_control(0xa0) || str_cp_control('a'));
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
		cmocka_unit_test(test_value),
		cmocka_unit_test(test_term),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_host_eq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
