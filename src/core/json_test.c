/* Unit tests for json.c: escaping, nesting, numbers, misuse, streaming. */
#include "json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

struct sink {
	char	buf[4096];
	size_t	len;
	size_t	calls;
};

static void
sink_write(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	assert_true(s->len + n < sizeof(s->buf));
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	s->calls++;
}

/* One string value, n bytes at in, as the writer quotes it. */
static const struct {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	const char	*out;
} str_rows[] = {
	{ "", 0, "\"\"" },
	{ "a@b.example", 0, "\"a@b.example\"" },
	{ "q\"\\", 0, "\"q\\\"\\\\\"" },
	{ "\r\n\t\x01\x1f", 0, "\"\\u000d\\u000a\\u0009\\u0001\\u001f\"" },
	{ "\x7f", 0, "\"\\u007f\"" },
	{ "a\0b", 3, "\"a\\u0000b\"" },
	/* Well-formed UTF-8 passes as it is. */
	{ "b\xc3\xbc" "cher", 0, "\"b\xc3\xbc" "cher\"" },
	{ "\xe4\xbe\x8b\xf0\x9f\x98\x80", 0,
	    "\"\xe4\xbe\x8b\xf0\x9f\x98\x80\"" },
	/* C1 and bidi controls as \uXXXX: a peer's text cannot reorder
	 * what a terminal shows (str_cp_control()). */
	{ "\xc2\x85", 0, "\"\\u0085\"" },
	{ "a\xe2\x80\xae" "b", 0, "\"a\\u202eb\"" },
	{ "\xe2\x81\xa6\xe2\x81\xa9", 0, "\"\\u2066\\u2069\"" },
	{ "\xe2\x80\x8f\xd8\x9c", 0, "\"\\u200f\\u061c\"" },
	/* Anything else: one U+FFFD a byte, so the document stays UTF-8. */
	{ "a\xff" "b", 0, "\"a\\ufffdb\"" },
	{ "\xc0\xaf", 0, "\"\\ufffd\\ufffd\"" },		/* overlong */
	{ "\xed\xa0\x80", 0, "\"\\ufffd\\ufffd\\ufffd\"" },	/* surrogate */
	{ "x\xc3", 0, "\"x\\ufffd\"" },				/* cut short */
	{ "\xc3\xbc\xbc", 0, "\"\xc3\xbc\\ufffd\"" },
	/* A long run between escapes is written whole. */
	{ "{a*600}\"", 0, "\"{a*600}\\\"\"" },
};

static void
test_strings(void **state)
{
	char in[1024], want[1024];
	struct sink s;
	struct json j;
	size_t i, n;

	for (i = 0; i < sizeof(str_rows) / sizeof(str_rows[0]); i++) {
		n = rows_expand(str_rows[i].in, str_rows[i].len ?
		    str_rows[i].len : strlen(str_rows[i].in), in, sizeof(in));
		rows_expand(str_rows[i].out, strlen(str_rows[i].out), want,
		    sizeof(want));
		memset(&s, 0, sizeof(s));
		json_init(&j, sink_write, &s);
		json_stringn(&j, in, n);
		if (strcmp(s.buf, want) != 0)
			fail_msg("row %zu: got %s want %s", i,
			    rows_show(s.buf, s.len), rows_show(want,
			    strlen(want)));
		assert_int_equal(json_error(&j), 0);
	}
}

static void
test_nesting_and_numbers(void **state)
{
	struct sink s = { .len = 0 };
	struct json j;

	json_init(&j, sink_write, &s);
	json_object(&j);
	json_kint(&j, "min", INT64_MIN);
	json_kint(&j, "neg", -1);
	json_kuint(&j, "max", UINT64_MAX);
	json_kuint(&j, "zero", 0);
	json_kbool(&j, "t", 1);
	json_kbool(&j, "f", 0);
	json_ktime(&j, "never", 0);
	json_ktime(&j, "at", 1700000000);
	json_kstr_or_null(&j, "empty", "");
	json_kstr_or_null(&j, "none", NULL);
	json_kstr_or_null(&j, "k\"ey", "v");
	json_key(&j, "list");
	json_array(&j);
	json_array(&j);
	json_end(&j);
	json_object(&j);
	json_end(&j);
	json_string(&j, "s");
	json_null(&j);
	json_end(&j);
	json_end(&j);
	json_raw(&j, "\n");
	json_array(&j);			/* a second document, no comma */
	json_end(&j);
	assert_int_equal(json_error(&j), 0);
	assert_string_equal(s.buf, "{\"min\":-9223372036854775808,"
	    "\"neg\":-1,\"max\":18446744073709551615,\"zero\":0,"
	    "\"t\":true,\"f\":false,\"never\":null,\"at\":1700000000,"
	    "\"empty\":null,\"none\":null,\"k\\\"ey\":\"v\","
	    "\"list\":[[],{},\"s\",null]}\n[]");
}

/* Each misuse is caught, and nothing is written after it. */
static void
test_misuse(void **state)
{
	struct sink s;
	struct json j;
	size_t before, d;

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	json_object(&j);
	json_string(&j, "no key");		/* a value where a key is due */
	assert_int_equal(json_error(&j), -1);
	before = s.len;
	json_kstr(&j, "k", "v");
	json_end(&j);
	assert_int_equal(s.len, before);

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	json_end(&j);				/* nothing open */
	assert_int_equal(json_error(&j), -1);

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	json_array(&j);
	json_key(&j, "k");			/* a key in an array */
	assert_int_equal(json_error(&j), -1);

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	json_object(&j);
	json_key(&j, "k");
	json_end(&j);				/* the key's value missing */
	assert_int_equal(json_error(&j), -1);

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	for (d = 0; d < JSON_DEPTH_MAX; d++)
		json_array(&j);
	assert_int_equal(json_error(&j), 0);
	json_array(&j);				/* one too deep */
	assert_int_equal(json_error(&j), -1);
	assert_int_equal(s.len, JSON_DEPTH_MAX);
}

/* Streaming: each row is in the sink before the listing ends, and the
 * writer holds no copy (its size does not grow with the rows). */
static void
test_streaming(void **state)
{
	struct sink s;
	struct json j;
	size_t i, last = 0;

	memset(&s, 0, sizeof(s));
	json_init(&j, sink_write, &s);
	json_array(&j);
	for (i = 0; i < 50; i++) {
		json_object(&j);
		json_kuint(&j, "n", i);
		json_end(&j);
		assert_true(s.len > last);
		last = s.len;
	}
	json_end(&j);
	assert_int_equal(json_error(&j), 0);
	assert_int_equal(strncmp(s.buf, "[{\"n\":0},{\"n\":1},", 17), 0);
	assert_int_equal(s.buf[s.len - 1], ']');
	assert_true(sizeof(j) < 128);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_nesting_and_numbers),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_streaming),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
