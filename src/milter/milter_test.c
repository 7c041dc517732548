/* Unit tests for the milter packets (proto.c) and the header changes
 * (milter.c): one row per packet a filter may send, with the verdict;
 * then changes made on a stored copy. */
#include "milter.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "body.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

struct row {
	const char	*bytes;		/* after the length */
	size_t		 len;
	int		 want;		/* milter_parse() */
	enum milter_reply_kind kind;
	int		 code;
	const char	*enh, *text;
};

#define R(s)	s, sizeof(s) - 1
static const struct row rows[] = {
	{ R("a"), 1, MR_ACCEPT, 0, "", "" },
	{ R("c"), 1, MR_CONTINUE, 0, "", "" },
	{ R("r"), 1, MR_REJECT, 0, "", "" },
	{ R("rx"), -1, 0, 0, "", "" },		/* a bare reply with data */
	{ R("y554 5.7.1 Gtube pattern\0"), 1, MR_REPLYCODE, 554, "5.7.1",
	    "Gtube pattern" },
	{ R("y451 try later\0"), 1, MR_REPLYCODE, 451, "", "try later" },
	{ R("y550 4.7.1 odd\0"), 1, MR_REPLYCODE, 550, "", "4.7.1 odd" },
	{ R("y250 2.0.0 ok\0"), -1, 0, 0, "", "" },	/* not 4xx/5xx */
	{ R("y554 5.7.1 a\001b\0"), 1, MR_REPLYCODE, 554, "5.7.1", "a?b" },
	{ R("hX-Spam\0No\0"), 1, MR_ADDHEADER, 0, "", "No" },
	{ R("hX Spam\0No\0"), -1, 0, 0, "", "" },	/* not a name */
	{ R("hX-Spam\0a\r\nb\0"), -1, 0, 0, "", "" },	/* not folded */
	{ R("hX-Spam\0a\n\tb\0"), 1, MR_ADDHEADER, 0, "", "a\n\tb" },
	{ R("hX-Spam\0No"), -1, 0, 0, "", "" },		/* no NUL */
	{ R("hX-Spam\0No\0z"), -1, 0, 0, "", "" },	/* trailing */
	{ R("m\0\0\0\1Subject\0new\0"), 1, MR_CHGHEADER, 0, "", "new" },
	{ R("m\0\0\1"), -1, 0, 0, "", "" },		/* short index */
	{ R("qvirus\0"), 1, MR_QUARANTINE, 0, "", "virus" },
	{ R("bnew body"), 1, MR_REPLBODY, 0, "", "" },
	{ R("+<x@y>\0"), 1, MR_ENVELOPE, 0, "", "" },	/* refused later */
	{ R("Zzz"), -1, 0, 0, "", "" },			/* no such reply */
	{ R("O\0\0\0\6\0\0\0\1\0\0\0\0"), 1, MR_OPTNEG, 0, "", "" },
	{ R("O\0\0\0\6"), -1, 0, 0, "", "" },
};

static void
test_rows(void **state)
{
	unsigned char buf[256];
	struct milter_reply r;
	size_t i, used;

	(void)state;
	for (i = 0; i < nitems(rows); i++) {
		const struct row *w = &rows[i];
		uint32_t n = (uint32_t)w->len;
		int got;

		buf[0] = (unsigned char)(n >> 24);
		buf[1] = (unsigned char)(n >> 16);
		buf[2] = (unsigned char)(n >> 8);
		buf[3] = (unsigned char)n;
		memcpy(buf + 4, w->bytes, w->len);
		got = milter_parse(buf, 4 + w->len, &r, &used);
		if (got != w->want)
			fail_msg("row %zu: got %d want %d", i, got, w->want);
		if (got != 1)
			continue;
		assert_int_equal(used, 4 + w->len);
		assert_int_equal(r.kind, w->kind);
		assert_int_equal(r.code, w->code);
		assert_string_equal(r.enh, w->enh);
		assert_string_equal(r.text, w->text);
		/* Any prefix is "more to come", never a packet. */
		assert_int_equal(milter_parse(buf, 3 + w->len, &r, &used), 0);
	}
}

static void
test_bounds(void **state)
{
	unsigned char big[8] = { 0, 2, 0, 0, 'a' };	/* 128 KiB claimed */
	unsigned char zero[5] = { 0, 0, 0, 0, 'a' };
	struct milter_reply r;
	size_t used;

	(void)state;
	assert_int_equal(milter_parse(big, sizeof(big), &r, &used), -1);
	assert_int_equal(milter_parse(zero, sizeof(zero), &r, &used), -1);
}

static struct body *
mem_body(const char *s)
{
	struct body *b = body_new("/tmp", 1 << 20);

	body_append(b, s, strlen(s));
	return b;
}

static char *
contents(const struct body *b)
{
	size_t n;
	const char *p = body_mem(b, &n);
	char *s = malloc(n + 1);

	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void
test_edits(void **state)
{
	struct milter_edit e[] = {
		{ MR_ADDHEADER, 0, "X-Spam-Status", "No, score=1" },
		{ MR_CHGHEADER, 2, "X-Old", "" },		/* delete 2nd */
		{ MR_CHGHEADER, 1, "subject", "[x] hi" },
		{ MR_INSHEADER, 0, "X-Top", "t" },
		{ MR_INSHEADER, 1, "X-After-First", "a\n\tfolded" },
	};
	struct milter_verdict v = { .result = MILTER_PASS, .edits = e,
	    .nedits = nitems(e) };
	struct body *in = mem_body("Received: r\r\n\tfold\r\nSubject: hi\r\n"
	    "X-Old: 1\r\nX-Old: 2\r\n\r\nbody\r\nX-Old: 3\r\n");
	struct body *out = NULL;
	char *s;

	(void)state;
	assert_int_equal(milter_apply_edits(&v, in, "/tmp", 1 << 20, &out),
	    0);
	s = contents(out);
	assert_string_equal(s, "X-Top: t\r\nReceived: r\r\n\tfold\r\n"
	    "X-After-First: a\r\n\tfolded\r\nsubject: [x] hi\r\nX-Old: 1\r\n"
	    "X-Spam-Status: No, score=1\r\n\r\nbody\r\nX-Old: 3\r\n");
	free(s);
	body_free(in);
	body_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_edits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
