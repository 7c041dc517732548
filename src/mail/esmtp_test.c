/*
 * Unit tests for esmtp.c: one table per function, one loop each. Inputs
 * may say "{x*N}" for N copies of x, so ENVID and ORCPT can be tested at
 * their length limits. A failing row prints itself and the loop goes on.
 */
#include "esmtp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

#define EXPAND_MAX	2048

/* Rows write long inputs as "{x*N}" (tests/unit/rows.h). */
#define expand(in, inlen, out)	rows_expand(in, inlen, out, EXPAND_MAX)
#define show(s, len)		rows_show(s, len)

/* Error texts the rows name; they are also what the peer reads. */
#define T_SYN	"Bad parameter syntax"
#define T_DUP	"Duplicate parameter"
#define T_UMAIL	"Unsupported MAIL parameter"
#define T_URCPT	"Unsupported RCPT parameter"
#define T_SIZE	"Bad SIZE parameter"
#define T_BODY	"Bad BODY parameter"
#define T_UTF8	"Bad SMTPUTF8 parameter"
#define T_RET	"Bad RET parameter"
#define T_ENVID	"Bad ENVID parameter"
#define T_NOTIFY "Bad NOTIFY parameter"
#define T_ORCPT	"Bad ORCPT parameter"

#define B7	ESMTP_BODY_7BIT
#define B8	ESMTP_BODY_8BITMIME
#define RFULL	ESMTP_RET_FULL
#define RHDRS	ESMTP_RET_HDRS

/* Rows that must fail carry no expected fields. */
#define ME(in, code, text)	{ in, 0, code, text, 0, 0, 0, 0, 0, NULL }
#define MEL(in, len, code, text) { in, len, code, text, 0, 0, 0, 0, 0, NULL }

/*
 * A row that must fail: rc -1 with the row's code, 5.5.4 and the row's
 * text. Returns 0, or 1 after printing the row.
 */
static int
refused_as(size_t i, const char *in, size_t len, int rc,
    const struct esmtp_error *err, int code, const char *text)
{
	if (rc == -1 && err->code == code && err->enhanced != NULL &&
	    strcmp(err->enhanced, "5.5.4") == 0 && err->text != NULL &&
	    strcmp(err->text, text) == 0)
		return 0;
	print_error("row %zu '%s': rc %d, %d %s %s; want %d %s\n", i,
	    show(in, len), rc, err->code, err->enhanced ? err->enhanced : "-",
	    err->text ? err->text : "-", code, text);
	return 1;
}

static const struct mail_row {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) after expansion */
	int		 code;		/* 0: must parse */
	const char	*text;
	int		 has_size;
	uint64_t	 size;
	int		 smtputf8;
	enum esmtp_body	 body;
	enum esmtp_ret	 ret;
	const char	*envid;
} mail_rows[] = {
	{ "", 0, 0, NULL, 0, 0, 0, 0, 0, "" },
	{ " ", 0, 0, NULL, 0, 0, 0, 0, 0, "" },
	{ " SIZE=1000", 0, 0, NULL, 1, 1000, 0, 0, 0, "" },
	{ " size=0", 0, 0, NULL, 1, 0, 0, 0, 0, "" },
	{ " SIZE=18446744073709551615", 0, 0, NULL, 1, UINT64_MAX, 0, 0, 0,
	  "" },
	{ " SIZE=00000000000000000001", 0, 0, NULL, 1, 1, 0, 0, 0, "" },
	{ " BODY=8BITMIME", 0, 0, NULL, 0, 0, 0, B8, 0, "" },
	{ " body=7bit", 0, 0, NULL, 0, 0, 0, B7, 0, "" },
	{ " Body=8bitMime", 0, 0, NULL, 0, 0, 0, B8, 0, "" },
	{ " SMTPUTF8", 0, 0, NULL, 0, 0, 1, 0, 0, "" },
	{ " smtputf8", 0, 0, NULL, 0, 0, 1, 0, 0, "" },
	{ " RET=FULL", 0, 0, NULL, 0, 0, 0, 0, RFULL, "" },
	{ " ret=hdrs", 0, 0, NULL, 0, 0, 0, 0, RHDRS, "" },
	{ " ENVID=QQ314159", 0, 0, NULL, 0, 0, 0, 0, 0, "QQ314159" },
	{ " ENVID=a+2Bb+3Dc+20d", 0, 0, NULL, 0, 0, 0, 0, 0, "a+b=c d" },
	{ " ENVID={x*100}", 0, 0, NULL, 0, 0, 0, 0, 0, "{x*100}" },
	{ " ENVID={+41*100}", 0, 0, NULL, 0, 0, 0, 0, 0, "{A*100}" },
	{ " SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", 0, 0, NULL,
	  1, 10, 1, B8, RHDRS, "x" },
	{ "  SIZE=10   BODY=7BIT  ", 0, 0, NULL, 1, 10, 0, B7, 0, "" },
	{ " ENVID=<id@x> SMTPUTF8", 0, 0, NULL, 0, 0, 1, 0, 0, "<id@x>" },

	/* SIZE (RFC 1870): 1*20DIGIT, no more than UINT64_MAX. */
	ME(" SIZE=18446744073709551616", 501, T_SIZE),
	ME(" SIZE=99999999999999999999", 501, T_SIZE),
	ME(" SIZE=000000000000000000001", 501, T_SIZE),
	ME(" SIZE", 501, T_SIZE),
	ME(" SIZE=", 501, T_SIZE),
	ME(" SIZE=1a", 501, T_SIZE),
	ME(" SIZE=-1", 501, T_SIZE),
	ME(" SIZE=+1", 501, T_SIZE),
	ME(" SIZE=1.5", 501, T_SIZE),
	ME(" SIZE==1", 501, T_SIZE),
	ME(" SIZE=1 SIZE=2", 501, T_DUP),
	ME(" SIZE=1 size=1", 501, T_DUP),

	/* BODY (RFC 6152); BINARYMIME needs CHUNKING, not offered. */
	ME(" BODY=BINARYMIME", 555, "BINARYMIME not supported"),
	ME(" BODY=binarymime", 555, "BINARYMIME not supported"),
	ME(" BODY=8BIT", 501, T_BODY),
	ME(" BODY=7BITX", 501, T_BODY),
	ME(" BODY", 501, T_BODY),
	ME(" BODY=", 501, T_BODY),
	ME(" BODY=7BIT BODY=8BITMIME", 501, T_DUP),

	ME(" SMTPUTF8=yes", 501, T_UTF8),
	ME(" SMTPUTF8=", 501, T_UTF8),
	ME(" SMTPUTF8 SMTPUTF8", 501, T_DUP),

	ME(" RET=ALL", 501, T_RET),
	ME(" RET", 501, T_RET),
	ME(" RET=FULL RET=HDRS", 501, T_DUP),

	/* ENVID (RFC 3461 §4.4): xtext, upper-case hex, printable, 100. */
	ME(" ENVID={x*101}", 501, T_ENVID),
	ME(" ENVID={+41*101}", 501, T_ENVID),
	ME(" ENVID", 501, T_ENVID),
	ME(" ENVID=", 501, T_ENVID),
	ME(" ENVID=a+2bb", 501, T_ENVID),
	ME(" ENVID=a+2", 501, T_ENVID),
	ME(" ENVID=a+", 501, T_ENVID),
	ME(" ENVID=+00", 501, T_ENVID),
	ME(" ENVID=+7F", 501, T_ENVID),
	ME(" ENVID=+C3+A9", 501, T_ENVID),
	ME(" ENVID=a=b", 501, T_ENVID),
	ME(" ENVID=é", 501, T_ENVID),

	/* Unknown keywords: 555 (RFC 5321 §4.1.1.11). */
	ME(" FOO=bar", 555, T_UMAIL),
	ME(" FOO", 555, T_UMAIL),
	ME(" X-FOO-1=a", 555, T_UMAIL),
	ME(" AUTH=<>", 555, T_UMAIL),
	ME(" NOTIFY=NEVER", 555, T_UMAIL),
	ME(" ORCPT=rfc822;a@b", 555, T_UMAIL),
	ME(" BODY=8BITMIME FOO=1 SIZE=x", 555, T_UMAIL),
	ME(" SIZEX=1", 555, T_UMAIL),

	/* Keyword and spacing syntax: 501. */
	ME("SIZE=10", 501, T_SYN),
	ME("\tSIZE=10", 501, T_SYN),
	ME(" SIZE=10\tBODY=7BIT", 501, T_SIZE),
	ME(" SIZE=10 \tBODY=7BIT", 501, T_SYN),
	ME(" SIZE=10\r\n", 501, T_SIZE),
	ME(" SMTPUTF8\r\n", 501, T_SYN),
	MEL(" SIZE=1\0", 8, 501, T_SIZE),
	MEL(" \0", 2, 501, T_SYN),
	ME(" -FOO=1", 501, T_SYN),
	ME(" FO_O=1", 501, T_SYN),
	ME(" =1", 501, T_SYN),
	ME(" =", 501, T_SYN),
	ME(" FOO=", 501, T_SYN),
	ME(" FOO=a=b", 501, T_SYN),
	ME(" FOO=é", 501, T_SYN),
	ME(" FÖO=1", 501, T_SYN),
	ME(" SIZE=1,BODY=7BIT", 501, T_SIZE),
};

static void
test_mail(void **state)
{
	char in[EXPAND_MAX], envid[EXPAND_MAX];
	const struct mail_row *r;
	struct mail_params mp;
	struct esmtp_error err;
	size_t i, len;
	int rc, bad = 0;

	for (i = 0; i < sizeof(mail_rows) / sizeof(mail_rows[0]); i++) {
		r = &mail_rows[i];
		len = expand(r->in, r->len ? r->len : strlen(r->in), in);
		memset(&err, 0, sizeof(err));
		rc = esmtp_parse_mail(in, len, &mp, &err);
		if (r->code != 0) {
			bad += refused_as(i, in, len, rc, &err, r->code,
			    r->text);
			continue;
		}
		expand(r->envid, strlen(r->envid), envid);
		if (rc != 0 || mp.has_size != r->has_size ||
		    mp.size != r->size || mp.smtputf8 != r->smtputf8 ||
		    mp.body != r->body || mp.ret != r->ret ||
		    strcmp(mp.envid, envid) != 0) {
			print_error("row %zu '%s': rc %d (%s) size %d/%ju utf8 "
			    "%d body %d ret %d envid '%s'\n", i,
			    show(in, len), rc, rc ? err.text : "ok",
			    mp.has_size, (uintmax_t)mp.size, mp.smtputf8,
			    mp.body, mp.ret, mp.envid);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

#define NN	ESMTP_NOTIFY_NEVER
#define NS	ESMTP_NOTIFY_SUCCESS
#define NF	ESMTP_NOTIFY_FAILURE
#define ND	ESMTP_NOTIFY_DELAY

#define RE(in, code, text)	{ in, 0, code, text, 0, NULL, NULL }

static const struct rcpt_row {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) after expansion */
	int		 code;		/* 0: must parse */
	const char	*text;
	int		 notify;
	const char	*orcpt_type;
	const char	*orcpt;
} rcpt_rows[] = {
	{ "", 0, 0, NULL, 0, "", "" },
	{ " NOTIFY=NEVER", 0, 0, NULL, NN, "", "" },
	{ " NOTIFY=SUCCESS,FAILURE,DELAY", 0, 0, NULL, NS | NF | ND, "", "" },
	{ " notify=delay,Failure", 0, 0, NULL, NF | ND, "", "" },
	{ " ORCPT=rfc822;a@b.example", 0, 0, NULL, 0, "rfc822",
	  "a@b.example" },
	{ " ORCPT=RFC822;a+2Bb@x", 0, 0, NULL, 0, "RFC822", "a+b@x" },
	{ " ORCPT=utf-8;user+40x+20y", 0, 0, NULL, 0, "utf-8", "user@x y" },
	{ " ORCPT=rfc822;a;b", 0, 0, NULL, 0, "rfc822", "a;b" },
	{ " ORCPT=rfc822;{x*500}", 0, 0, NULL, 0, "rfc822", "{x*500}" },
	{ " ORCPT={t*31};a", 0, 0, NULL, 0, "{t*31}", "a" },
	{ " NOTIFY=FAILURE ORCPT=rfc822;a@b", 0, 0, NULL, NF, "rfc822",
	  "a@b" },
	{ "   ORCPT=x;y   NOTIFY=NEVER ", 0, 0, NULL, NN, "x", "y" },

	/* NOTIFY (RFC 3461 §4.1): NEVER alone, no word twice. */
	RE(" NOTIFY=NEVER,SUCCESS", 501, T_NOTIFY),
	RE(" NOTIFY=SUCCESS,NEVER", 501, T_NOTIFY),
	RE(" NOTIFY=NEVER,NEVER", 501, T_NOTIFY),
	RE(" NOTIFY=SUCCESS,SUCCESS", 501, T_NOTIFY),
	RE(" NOTIFY=SUCCESS,", 501, T_NOTIFY),
	RE(" NOTIFY=,SUCCESS", 501, T_NOTIFY),
	RE(" NOTIFY=SUCCESS,,DELAY", 501, T_NOTIFY),
	RE(" NOTIFY=SOMETIMES", 501, T_NOTIFY),
	RE(" NOTIFY", 501, T_NOTIFY),
	RE(" NOTIFY=", 501, T_NOTIFY),
	RE(" NOTIFY=NEVER NOTIFY=NEVER", 501, T_DUP),

	/* ORCPT (RFC 3461 §4.2): atom ";" xtext, 500 decoded. */
	RE(" ORCPT=rfc822", 501, T_ORCPT),
	RE(" ORCPT=;a@b", 501, T_ORCPT),
	RE(" ORCPT=rfc822;", 501, T_ORCPT),
	RE(" ORCPT=rfc(822;a@b", 501, T_ORCPT),
	RE(" ORCPT=rfc.822;a@b", 501, T_ORCPT),
	RE(" ORCPT=rfc822;a+ZZ", 501, T_ORCPT),
	RE(" ORCPT=rfc822;a+0D+0A", 501, T_ORCPT),
	RE(" ORCPT=rfc822;{x*501}", 501, T_ORCPT),
	RE(" ORCPT={t*32};a", 501, T_ORCPT),
	RE(" ORCPT", 501, T_ORCPT),
	RE(" ORCPT=x;a ORCPT=x;a", 501, T_DUP),

	RE(" SIZE=1", 555, T_URCPT),
	RE(" BODY=8BITMIME", 555, T_URCPT),
	RE(" FOO", 555, T_URCPT),
	RE("NOTIFY=NEVER", 501, T_SYN),
	RE(" NOTIFY=NEVER\t", 501, T_NOTIFY),
	RE(" FOO\x01", 501, T_SYN),
};

static void
test_rcpt(void **state)
{
	char in[EXPAND_MAX], type[EXPAND_MAX], orcpt[EXPAND_MAX];
	const struct rcpt_row *r;
	struct rcpt_params rp;
	struct esmtp_error err;
	size_t i, len;
	int rc, bad = 0;

	for (i = 0; i < sizeof(rcpt_rows) / sizeof(rcpt_rows[0]); i++) {
		r = &rcpt_rows[i];
		len = expand(r->in, r->len ? r->len : strlen(r->in), in);
		memset(&err, 0, sizeof(err));
		rc = esmtp_parse_rcpt(in, len, &rp, &err);
		if (r->code != 0) {
			bad += refused_as(i, in, len, rc, &err, r->code,
			    r->text);
			continue;
		}
		expand(r->orcpt_type, strlen(r->orcpt_type), type);
		expand(r->orcpt, strlen(r->orcpt), orcpt);
		if (rc != 0 || rp.notify != r->notify ||
		    strcmp(rp.orcpt_type, type) != 0 ||
		    strcmp(rp.orcpt, orcpt) != 0) {
			print_error("row %zu '%s': rc %d (%s) notify %#x "
			    "orcpt '%s' '%s'\n", i, show(in, len), rc,
			    rc ? err.text : "ok", rp.notify, rp.orcpt_type,
			    rp.orcpt);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static const struct xtext_row {
	int		 encode;	/* 0: decode */
	const char	*in;
	size_t		 len;		/* 0: strlen(in) after expansion */
	size_t		 outsz;		/* 0: EXPAND_MAX */
	int		 rc;
	const char	*out;		/* checked when rc >= 0 */
} xtext_rows[] = {
	{ 0, "abc", 0, 0, 3, "abc" },
	{ 0, "", 0, 0, 0, "" },
	{ 0, "+2B+3D", 0, 0, 2, "+=" },
	{ 0, "+41+7E+20", 0, 0, 3, "A~ " },
	{ 0, "!~<>\"", 0, 0, 5, "!~<>\"" },
	{ 0, "a b", 0, 0, -1, NULL },
	{ 0, "a=b", 0, 0, -1, NULL },
	{ 0, "+2b", 0, 0, -1, NULL },
	{ 0, "+G0", 0, 0, -1, NULL },
	{ 0, "+4", 0, 0, -1, NULL },
	{ 0, "+", 0, 0, -1, NULL },
	{ 0, "++41", 0, 0, -1, NULL },
	{ 0, "+0A", 0, 0, -1, NULL },
	{ 0, "+1F", 0, 0, -1, NULL },
	{ 0, "+7F", 0, 0, -1, NULL },
	{ 0, "+80", 0, 0, -1, NULL },
	{ 0, "a\x7f", 0, 0, -1, NULL },
	{ 0, "a\x01", 0, 0, -1, NULL },
	{ 0, "\xc3\xa9", 0, 0, -1, NULL },
	{ 0, "a\0b", 3, 0, -1, NULL },
	{ 0, "abcd", 0, 5, 4, "abcd" },
	{ 0, "abcd", 0, 4, -1, NULL },
	{ 0, "+41", 0, 2, 1, "A" },
	{ 0, "+41", 0, 1, -1, NULL },
	{ 0, "", 0, 1, 0, "" },
	{ 1, "abc", 0, 0, 3, "abc" },
	{ 1, "", 0, 0, 0, "" },
	{ 1, "a b", 0, 0, 5, "a+20b" },
	{ 1, "+=", 0, 0, 6, "+2B+3D" },
	{ 1, "\x01\xff\x7f", 0, 0, 9, "+01+FF+7F" },
	{ 1, "a\0b", 3, 0, 5, "a+00b" },
	{ 1, "<a@b>", 0, 0, 5, "<a@b>" },
	{ 1, "abc", 0, 4, 3, "abc" },
	{ 1, "abc", 0, 3, -1, NULL },
	{ 1, " ", 0, 4, 3, "+20" },
	{ 1, " ", 0, 3, -1, NULL },
	{ 1, "", 0, 1, 0, "" },
};

static void
test_xtext(void **state)
{
	char in[EXPAND_MAX], out[EXPAND_MAX];
	const struct xtext_row *r;
	size_t i, len, outsz;
	int rc, bad = 0;

	for (i = 0; i < sizeof(xtext_rows) / sizeof(xtext_rows[0]); i++) {
		r = &xtext_rows[i];
		len = expand(r->in, r->len ? r->len : strlen(r->in), in);
		outsz = r->outsz ? r->outsz : sizeof(out);
		rc = r->encode ? esmtp_xtext_encode(in, len, out, outsz) :
		    esmtp_xtext_decode(in, len, out, outsz);
		if (rc != r->rc || (rc >= 0 && strcmp(out, r->out) != 0)) {
			print_error("row %zu %s '%s' outsz %zu: got %d\n", i,
			    r->encode ? "encode" : "decode", show(in, len),
			    outsz, rc);
			bad++;
		}
	}
	/* No room for even the NUL. */
	assert_int_equal(esmtp_xtext_decode("", 0, out, 0), -1);
	assert_int_equal(esmtp_xtext_encode("", 0, out, 0), -1);
	assert_int_equal(bad, 0);
}

/* Every printable byte survives encode then decode. */
static void
test_xtext_round_trip(void **state)
{
	char in[0x7f - 0x20], enc[3 * sizeof(in) + 1], dec[sizeof(in) + 1];
	size_t i;
	int n;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)(0x20 + i);
	n = esmtp_xtext_encode(in, sizeof(in), enc, sizeof(enc));
	assert_true(n > 0);
	assert_int_equal(esmtp_xtext_decode(enc, (size_t)n, dec, sizeof(dec)),
	    sizeof(in));
	assert_memory_equal(in, dec, sizeof(in));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xtext_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
