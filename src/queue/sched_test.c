/* Unit tests for sched.c's retry schedule and dsn.c: rows of attempts
 * and the delay they earn; a DSN never goes to <>. */
#include "sched.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dsn.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_backoff(void **state)
{
	static const struct {
		unsigned attempts, min, max, want;
	} rows[] = {
		{ 0, 60, 3600, 0 },
		{ 1, 60, 3600, 60 },
		{ 2, 60, 3600, 120 },
		{ 3, 60, 3600, 240 },
		{ 6, 60, 3600, 1920 },
		{ 7, 60, 3600, 3600 },
		{ 100, 60, 3600, 3600 },
		{ 4000000000u, 60, 3600, 3600 },
		{ 3, 1, 2, 2 },
		{ 5, 7, 7, 7 },
	};
	size_t i;

	for (i = 0; i < nitems(rows); i++)
		if (sched_backoff(rows[i].attempts, rows[i].min, rows[i].max) !=
		    rows[i].want)
			fail_msg("row %zu: %u", i, sched_backoff(
			    rows[i].attempts, rows[i].min, rows[i].max));
}

static void
test_dsn(void **state)
{
	static const char head[] = "Received: x\r\nSubject: s\r\n\r\nbody\r\n";
	struct qdb_msg m;
	struct qdb_rcpt r;
	struct dsn_rcpt dr;
	struct envelope env;
	unsigned char *body;
	size_t len;

	memset(&m, 0, sizeof(m));
	memset(&r, 0, sizeof(r));
	strcpy(m.id, "ID1");
	strcpy(m.sender.local, "s");
	strcpy(m.sender.domain, "sender.example");
	strcpy(r.addr.local, "u");
	strcpy(r.addr.domain, "customer.example");
	dr.rcpt = &r;
	dr.code = 550;
	dr.text = "550 5.1.1 no such user";
	dr.relay = "mx.customer.example";
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), 0);
	assert_true(env.sender.is_null);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpts[0].addr.domain, "sender.example");
	assert_non_null(strstr((char *)body, "Status: 5.1.1\r\n"));
	assert_non_null(strstr((char *)body, "Subject: s\r\n"));
	assert_null(strstr((char *)body, "body\r\n"));
	envelope_free(&env);
	free(body);

	/* Never to <>. */
	m.sender.is_null = 1;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
	/* NOTIFY=NEVER, or SUCCESS only: no failure report. */
	m.sender.is_null = 0;
	r.params.notify = 0x01;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
	r.params.notify = 0x02;
	assert_int_equal(dsn_build(&m, &dr, 1, 0, head, sizeof(head) - 1,
	    "mx2.example", 0, &env, &body, &len), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_dsn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
