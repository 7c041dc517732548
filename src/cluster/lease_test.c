/*
 * lease_test: the lease decision from Redis' answer to SET ... NX GET,
 * and the keys. The conversation with Redis itself, and what the nodes
 * do with the decision, is tested against a real redis-server and three
 * nodes (tests/blackbox/test_cluster_lease.py).
 */
#include "cluster.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "log.h"

static const char NODE[] = "mx2a.example.net";

static enum cluster_lease_result
decide(int type, const char *str, char *holder, size_t holdersz)
{
	redisReply r;
	static char buf[128];

	memset(&r, 0, sizeof(r));
	r.type = type;
	if (str != NULL) {
		strcpy(buf, str);	/* hiredis' str is not const */
		r.str = buf;
		r.len = strlen(buf);
	}
	return cluster_lease_decide(REDIS_REPLY_OK, &r, NODE, holder,
	    holdersz);
}

static void
test_decide(void **state)
{
	char h[LOG_VALUE_SIZE(64)];
	static const enum redis_status fail[] = { REDIS_FAIL_DOWN,
	    REDIS_FAIL_BREAKER, REDIS_FAIL_TIMEOUT, REDIS_FAIL_CONN };
	size_t i;

	(void)state;
	/* No key before: SET set it, the lease is ours. */
	assert_int_equal(decide(REDIS_REPLY_NIL, NULL, h, sizeof(h)),
	    CLUSTER_LEASE_TAKEN);
	/* Our own lease, not expired yet: still ours. */
	assert_int_equal(decide(REDIS_REPLY_STRING, NODE, h, sizeof(h)),
	    CLUSTER_LEASE_TAKEN);
	/* Another node's: it acts, we skip, and we can say who. */
	assert_int_equal(decide(REDIS_REPLY_STRING, "mx2b.example.net", h,
	    sizeof(h)), CLUSTER_LEASE_LOST);
	assert_string_equal(h, "mx2b.example.net");
	/* A name that is ours with more after it is somebody else's. */
	assert_int_equal(decide(REDIS_REPLY_STRING, "mx2a.example.net.evil",
	    h, sizeof(h)), CLUSTER_LEASE_LOST);
	/* Peer bytes in a holder's name are escaped for the log. */
	assert_int_equal(decide(REDIS_REPLY_STRING, "a b\n", h, sizeof(h)),
	    CLUSTER_LEASE_LOST);
	assert_null(strchr(h, '\n'));
	/* An error (a Redis before 7.0 refuses NX with GET), a status, a
	 * number, an empty name: nobody can say; act alone. */
	assert_int_equal(decide(REDIS_REPLY_ERROR, "ERR syntax error", h,
	    sizeof(h)), CLUSTER_LEASE_ALONE);
	assert_int_equal(decide(REDIS_REPLY_STATUS, "OK", h, sizeof(h)),
	    CLUSTER_LEASE_ALONE);
	assert_int_equal(decide(REDIS_REPLY_INTEGER, NULL, h, sizeof(h)),
	    CLUSTER_LEASE_ALONE);
	assert_int_equal(decide(REDIS_REPLY_STRING, "", h, sizeof(h)),
	    CLUSTER_LEASE_ALONE);
	/* No answer at all: alone, as a single node (never skip). */
	for (i = 0; i < sizeof(fail) / sizeof(fail[0]); i++)
		assert_int_equal(cluster_lease_decide(fail[i], NULL, NODE, h,
		    sizeof(h)), CLUSTER_LEASE_ALONE);
}

static void
test_keys(void **state)
{
	char a[STATE_ADDR_MAX], k1[512], k2[512];

	(void)state;
	assert_int_equal(cluster_lease_key("backmx:", "Customer.Example", NULL,
	    k1, sizeof(k1)), 0);
	assert_string_equal(k1, "backmx:probe:customer.example");
	/* SHA-256 of "u@customer.example", its first 16 bytes (Python's
	 * hashlib says so). */
	assert_int_equal(cluster_lease_key("backmx:", "customer.example",
	    "u@customer.example", k1, sizeof(k1)), 0);
	assert_string_equal(k1, "backmx:callout:customer.example:"
	    "7162363482f51f18d43be5da9222b525");
	assert_int_equal(cluster_lease_key("backmx:", "customer.example",
	    "v@customer.example", k2, sizeof(k2)), 0);
	assert_string_not_equal(k1, k2);
	/* The longest address: the key stays short. */
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	assert_int_equal(cluster_lease_key("backmx:", "customer.example", a,
	    k1, sizeof(k1)), 0);
	assert_int_equal(strlen(k1), strlen("backmx:callout:customer.example:")
	    + 32);
	/* Too small a buffer: refused, not cut. */
	assert_int_equal(cluster_lease_key("backmx:", "customer.example",
	    NULL, k1, 10), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
