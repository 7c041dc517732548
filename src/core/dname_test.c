/* Unit tests for dname.c: the strict base, then each flag. */
#include "dname.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

#define U	DNAME_UNDERSCORE
#define F	DNAME_FQDN
#define D	DNAME_DOTTED
#define T	DNAME_ALPHA_TLD
#define W	DNAME_UTF8
#define L	DNAME_SMTP_LENGTH

static const struct {
	const char	*in;		/* "{x*N}" expands (tests/unit/rows.h) */
	size_t		 len;		/* 0: strlen(in) */
	unsigned	 flags;
	enum dname_err	 want;
} rows[] = {
	/* The strict base. */
	{ "example.org", 0, 0, DNAME_OK },
	{ "EXAMPLE.Org", 0, 0, DNAME_OK },
	{ "localhost", 0, 0, DNAME_OK },
	{ "a-b.c0.example", 0, 0, DNAME_OK },
	{ "1.2.3.4", 0, 0, DNAME_OK },
	{ "xn--bcher-kva.example", 0, 0, DNAME_OK },
	{ "", 0, 0, DNAME_ERR_SYNTAX },
	{ ".", 0, 0, DNAME_ERR_SYNTAX },
	{ ".example.org", 0, 0, DNAME_ERR_SYNTAX },
	{ "example.org.", 0, 0, DNAME_ERR_SYNTAX },
	{ "a..example", 0, 0, DNAME_ERR_SYNTAX },
	{ "-a.example", 0, 0, DNAME_ERR_SYNTAX },
	{ "a-.example", 0, 0, DNAME_ERR_SYNTAX },
	{ "a.example-", 0, 0, DNAME_ERR_SYNTAX },
	{ "a b.example", 0, 0, DNAME_ERR_SYNTAX },
	{ "a\0b", 3, 0, DNAME_ERR_SYNTAX },
	{ "a.example\r\n", 0, 0, DNAME_ERR_SYNTAX },
	{ "[192.0.2.1]", 0, 0, DNAME_ERR_SYNTAX },
	{ "a@b.example", 0, 0, DNAME_ERR_SYNTAX },
	{ "{a*63}.example", 0, 0, DNAME_OK },
	{ "{a*64}.example", 0, 0, DNAME_ERR_SYNTAX },
	/* 4 x 63 + 1 = 253 octets, then 255. */
	{ "{a*63}.{b*63}.{c*63}.{d*61}", 0, 0, DNAME_OK },
	{ "{a*63}.{b*63}.{c*63}.{d*62}", 0, 0, DNAME_ERR_TOO_LONG },
	{ "{a*63}.{b*63}.{c*63}.{d*63}", 0, 0, DNAME_ERR_TOO_LONG },
	/* A bad label before a too long name: the syntax decides. */
	{ "{a*63}.{b*63}.{c*63}.{d*63}-", 0, 0, DNAME_ERR_SYNTAX },
	/* DNAME_SMTP_LENGTH: 255 octets. */
	{ "{a*63}.{b*63}.{c*63}.{d*63}", 0, L, DNAME_OK },
	{ "{a*63}.{b*63}.{c*63}.{d*63}.e", 0, L, DNAME_ERR_TOO_LONG },
	/* DNAME_UNDERSCORE. */
	{ "a_b.example", 0, 0, DNAME_ERR_SYNTAX },
	{ "a_b.example", 0, U, DNAME_OK },
	{ "_dmarc.example", 0, U, DNAME_OK },
	{ "a_b.-x.example", 0, U, DNAME_ERR_SYNTAX },
	/* DNAME_FQDN. */
	{ "localhost", 0, F, DNAME_ERR_NOT_FQDN },
	{ "example.org", 0, F, DNAME_OK },
	{ "mx1.example.org", 0, F, DNAME_OK },
	{ "1.2.3.4", 0, F, DNAME_ERR_NOT_FQDN },
	{ "a.123", 0, F, DNAME_ERR_NOT_FQDN },
	{ "123.a1", 0, F, DNAME_OK },
	{ "a..b", 0, F, DNAME_ERR_SYNTAX },
	{ "a.b_c", 0, F | U, DNAME_OK },
	/* Its two halves alone. */
	{ "localhost", 0, D, DNAME_ERR_NOT_FQDN },
	{ "1.2.3.4", 0, D, DNAME_OK },
	{ "cust.123", 0, D, DNAME_OK },
	{ "localhost", 0, T, DNAME_OK },
	{ "123", 0, T, DNAME_ERR_NOT_FQDN },
	{ "cust.123", 0, T, DNAME_ERR_NOT_FQDN },
	/* DNAME_UTF8. */
	{ "bücher.example", 0, 0, DNAME_ERR_UTF8 },
	{ "bücher.example", 0, W, DNAME_OK },
	{ "例子.广告", 0, W, DNAME_OK },
	{ "例子.广告", 0, W | F, DNAME_OK },
	{ "-ü.example", 0, W, DNAME_ERR_SYNTAX },
	{ "{é*59}", 0, W, DNAME_OK },
	{ "{é*60}", 0, W, DNAME_ERR_SYNTAX },
	{ "\xc0\xaf.example", 0, W, DNAME_ERR_UTF8 },
	{ "\xed\xa0\x80.example", 0, W, DNAME_ERR_UTF8 },
	{ "a.example\xc3", 0, W, DNAME_ERR_UTF8 },
};

static void
test_rows(void **state)
{
	char in[1024];
	size_t i, len;
	enum dname_err got;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		len = rows_expand(rows[i].in, rows[i].len ? rows[i].len :
		    strlen(rows[i].in), in, sizeof(in));
		got = dname_check(in, len, rows[i].flags);
		if (got != rows[i].want)
			fail_msg("row %zu '%s' flags %#x: got %d want %d", i,
			    rows_show(in, len), rows[i].flags, got,
			    rows[i].want);
		if (rows[i].len == 0 && dname_valid(in, rows[i].flags) !=
		    (rows[i].want == DNAME_OK))
			fail_msg("row %zu: dname_valid disagrees", i);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
