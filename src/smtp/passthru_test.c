/*
 * passthru_test: which primary a domain has, and the primary's replies
 * as our client gets them: every line, its code, the text cleaned.
 */
#include "passthru.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>

#include "domains.h"
#include "reply.h"
#include "rows.h"

static void
test_key(void **state)
{
	static const char text[] =
	    "a.example\n"
	    "b.example route=[127.0.0.1]:2526\n"
	    "c.example route=[127.0.0.1]:2526\n"
	    "d.example route=mx.d.example:25\n";
	static const struct { const char *dom, *key; } rows[] = {
		{ "a.example", "a.example" },
		{ "b.example", "[127.0.0.1]:2526" },
		{ "c.example", "[127.0.0.1]:2526" },	/* shares b's */
		{ "d.example", "mx.d.example:25" },
	};
	struct domains *d;
	char err[256], key[PASSTHRU_KEY_MAX];
	size_t i;

	(void)state;
	d = domains_parse("domains", text, strlen(text), err, sizeof(err));
	assert_non_null(d);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		passthru_key(key, sizeof(key), domains_lookup(d, rows[i].dom));
		assert_string_equal(key, rows[i].key);
	}
	domains_free(d);
}

/* The reply fed line by line (CRLF-separated in 'in'), relayed. */
static void
relay(const char *in, char *out, size_t outsz)
{
	struct reply r;
	struct evbuffer *b = evbuffer_new();
	const char *p = in, *e;
	size_t n;

	reply_init(&r);
	for (;;) {
		e = strstr(p, "\r\n");
		n = e ? (size_t)(e - p) : strlen(p);
		assert_int_not_equal(reply_feed(&r, p, n), REPLY_BAD);
		if (e == NULL)
			break;
		p = e + 2;
	}
	passthru_reply_out(b, &r);
	n = evbuffer_get_length(b);
	assert_true(n < outsz);
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	evbuffer_free(b);
}

static void
test_reply_out(void **state)
{
	static const struct { const char *in, *out; } rows[] = {
		{ "250 2.1.5 ok", "250 2.1.5 ok\r\n" },
		{ "250", "250\r\n" },
		{ "550-5.1.1 first\r\n550 5.1.1 second",
		  "550-5.1.1 first\r\n550 5.1.1 second\r\n" },
		{ "451-\r\n451 4.3.0 x", "451-\r\n451 4.3.0 x\r\n" },
		/* Peer bytes: controls and 8-bit become '?', TAB stays. */
		{ "550 5.1.1 a\x1b[31mb\tc\x7f\xc3\xa9",
		  "550 5.1.1 a?[31mb\tc???\r\n" },
	};
	char out[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		relay(rows[i].in, out, sizeof(out));
		if (strcmp(out, rows[i].out) != 0)
			fail_msg("row %zu: %s", i, rows_show(out, strlen(out)));
	}
}

static void
test_reply_ok(void **state)
{
	static const struct { int code, data, ok; } rows[] = {
		{ 250, 0, 1 }, { 251, 0, 1 }, { 450, 0, 1 }, { 550, 0, 1 },
		{ 354, 1, 1 }, { 354, 0, 0 }, { 334, 1, 0 }, { 421, 0, 0 },
		{ 421, 1, 0 }, { 221, 0, 1 }, { 250, 1, 0 }, { 251, 1, 0 },
		{ 451, 1, 1 }, { 554, 1, 1 },
	};
	struct reply r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		memset(&r, 0, sizeof(r));
		r.code = rows[i].code;
		if (passthru_reply_ok(&r, rows[i].data) != rows[i].ok)
			fail_msg("%d data=%d", rows[i].code, rows[i].data);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_reply_out),
		cmocka_unit_test(test_reply_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
