/* Unit tests for parse.c: one table, one loop. */
#include "parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static const struct {
	const char		*line;
	enum parse_result	 result;
	enum smtp_verb		 verb;
	const char		*arg;	/* NULL: do not check */
} rows[] = {
	{ "EHLO mx.example.org", PARSE_OK, SMTP_EHLO, "mx.example.org" },
	{ "ehlo mx.example.org", PARSE_OK, SMTP_EHLO, "mx.example.org" },
	{ "HELO x", PARSE_OK, SMTP_HELO, "x" },
	{ "EHLO", PARSE_OK, SMTP_EHLO, "" },
	{ "MAIL FROM:<a@b.example>", PARSE_OK, SMTP_MAIL, "<a@b.example>" },
	{ "mail from:<> SIZE=10", PARSE_OK, SMTP_MAIL, "<> SIZE=10" },
	{ "MAIL FROM: <a@b.example>", PARSE_OK, SMTP_MAIL, "<a@b.example>" },
	{ "MAIL FROM:", PARSE_OK, SMTP_MAIL, "" },
	{ "MAIL", PARSE_SYNTAX, SMTP_MAIL, NULL },
	{ "MAIL TO:<a@b.example>", PARSE_SYNTAX, SMTP_MAIL, NULL },
	{ "MAILFROM:<a@b.example>", PARSE_OK, SMTP_UNKNOWN, NULL },
	{ "RCPT TO:<u@c.example>", PARSE_OK, SMTP_RCPT, "<u@c.example>" },
	{ "RCPT FROM:<u@c.example>", PARSE_SYNTAX, SMTP_RCPT, NULL },
	{ "DATA", PARSE_OK, SMTP_DATA, "" },
	{ "DATA x", PARSE_OK, SMTP_DATA, "x" },
	{ "NOOPX", PARSE_OK, SMTP_UNKNOWN, NULL },
	{ "noop", PARSE_OK, SMTP_NOOP, "" },
	{ "QUIT", PARSE_OK, SMTP_QUIT, "" },
	{ "StartTLS", PARSE_OK, SMTP_STARTTLS, "" },
	{ "VRFY postmaster", PARSE_OK, SMTP_VRFY, "postmaster" },
	{ "", PARSE_OK, SMTP_UNKNOWN, NULL },
	{ " NOOP", PARSE_OK, SMTP_UNKNOWN, NULL },
	{ "NOOP\rX", PARSE_BAD_BYTES, SMTP_UNKNOWN, NULL },
	{ "NOOP\nX", PARSE_BAD_BYTES, SMTP_UNKNOWN, NULL },
};

static void
test_rows(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_cmd cmd;
		enum parse_result r;

		r = parse_command(rows[i].line, strlen(rows[i].line), &cmd);
		if (r != rows[i].result || (r == PARSE_OK &&
		    cmd.verb != rows[i].verb))
			fail_msg("row %zu '%s': result %d verb %d", i,
			    rows[i].line, r, cmd.verb);
		if (r == PARSE_OK && rows[i].arg != NULL &&
		    (cmd.arglen != strlen(rows[i].arg) ||
		    memcmp(cmd.arg, rows[i].arg, cmd.arglen) != 0))
			fail_msg("row %zu '%s': arg '%.*s'", i, rows[i].line,
			    (int)cmd.arglen, cmd.arg);
	}
}

static void
test_nul_inside(void **state)
{
	struct smtp_cmd cmd;

	assert_int_equal(parse_command("NOOP\0x", 6, &cmd), PARSE_BAD_BYTES);
}

static void
test_group_enders(void **state)
{
	assert_true(parse_ends_group(SMTP_EHLO));
	assert_true(parse_ends_group(SMTP_DATA));
	assert_true(parse_ends_group(SMTP_NOOP));
	assert_true(parse_ends_group(SMTP_QUIT));
	assert_true(parse_ends_group(SMTP_STARTTLS));
	assert_false(parse_ends_group(SMTP_MAIL));
	assert_false(parse_ends_group(SMTP_RCPT));
	assert_false(parse_ends_group(SMTP_RSET));
	assert_false(parse_ends_group(SMTP_UNKNOWN));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_nul_inside),
		cmocka_unit_test(test_group_enders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
