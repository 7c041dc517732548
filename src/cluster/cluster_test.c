/*
 * cluster_test: the Redis key of a triplet, and the redis_* keys as the
 * configuration reads them. The conversation with Redis itself is
 * tested against a real redis-server (tests/blackbox/test_cluster.py).
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

#include "bulkshare.h"
#include "config.h"

static void
test_grey_key(void **state)
{
	char a[STATE_ADDR_MAX], b[STATE_ADDR_MAX], k1[128], k2[128];

	/* SHA-256 of "192.0.2.0/24\0a@sender.example\0u@customer.example\0",
	 * its first 16 bytes (Python's hashlib says so). */
	assert_int_equal(cluster_grey_key("backmx:", "192.0.2.0/24",
	    "a@sender.example", "u@customer.example", k1, sizeof(k1)), 0);
	assert_string_equal(k1,
	    "backmx:grey:7fe3cf23d3c7647d58d1035000668adc");
	/* The parts are delimited: moving a byte between them is another
	 * triplet. */
	assert_int_equal(cluster_grey_key("p:", "n", "ab", "c", k1,
	    sizeof(k1)), 0);
	assert_int_equal(cluster_grey_key("p:", "n", "a", "bc", k2,
	    sizeof(k2)), 0);
	assert_string_not_equal(k1, k2);
	/* Longest addresses: the key stays short. */
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memset(b, 'b', sizeof(b) - 1);
	b[sizeof(b) - 1] = '\0';
	assert_int_equal(cluster_grey_key("backmx:", "2001:db8::/64", a, b,
	    k1, sizeof(k1)), 0);
	assert_int_equal(strlen(k1), strlen("backmx:grey:") + 32);
	/* No room: -1, never a cut key. */
	assert_int_equal(cluster_grey_key("backmx:", "n", "s", "r", k1, 20),
	    -1);
}

static int
load(struct config *c, const char *text, char *err, size_t errsz)
{
	config_defaults(c);
	return config_parse(c, "t.conf", text, strlen(text), err, errsz);
}

/* A primary-health message as another node sends it, and what is not
 * one (peer bytes: docs/cluster.md "Primary health"). */
static void
test_health_msg(void **state)
{
	struct cluster_health h;
	char big[700];
	static const char *const bad[] = {
		"", "up", "up a b", "up a b 1 x", "sideways a b 1",
		"up  b 1 2", "up a b -1", "up a b 1x", "up a\tb c 1",
		"up a b 1234567890123456789", "down a b ", "UP a b 1",
	};
	size_t i;
	const char *ok = "up customer.example mx2a 1796626740";

	assert_int_equal(cluster_parse_health_msg(ok, strlen(ok), &h), 0);
	assert_int_equal(h.up, 1);
	assert_string_equal(h.domain, "customer.example");
	assert_string_equal(h.node, "mx2a");
	assert_true(h.since == 1796626740);
	assert_int_equal(cluster_parse_health_msg("down d n 0", 10, &h), 0);
	assert_int_equal(h.up, 0);
	/* Not NUL-terminated: the length says where it ends. */
	assert_int_equal(cluster_parse_health_msg("up d n 12xyz", 9, &h), 0);
	assert_true(h.since == 12);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cluster_parse_health_msg(bad[i],
		    strlen(bad[i]), &h), -1);
	assert_int_equal(cluster_parse_health_msg("up d\0 n 1", 9, &h), -1);
	/* A domain of 256 bytes is no domain. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "up ", 3);
	memcpy(big + 3 + 256, " n 1", 4);
	assert_int_equal(cluster_parse_health_msg(big, 3 + 256 + 4, &h), -1);
	memcpy(big + 3 + 255, " n 1", 4);
	assert_int_equal(cluster_parse_health_msg(big, 3 + 255 + 4, &h), 0);
	assert_int_equal(strlen(h.domain), 255);
}

static void
test_config(void **state)
{
	static const char *const bad[] = {
		"redis_servers = redis.example:6379\n",	/* a name */
		"redis_servers = *:6379\n",
		"redis_servers = 127.0.0.1:0\n",
		"redis_servers = 127.0.0.1\n",
		"redis_servers = 127.0.0.1:6379 127.0.0.2:6379\n",
		"redis_prefix = a b\n",
		"redis_timeout = 0\n",
		"redis_sentinels = sentinel.example:26379\n",
		"redis_sentinels = 127.0.0.1:0\n",
		"redis_servers = 127.0.0.1:6379\n"
		    "redis_sentinels = 127.0.0.1:26379\n",	/* not both */
		"redis_sentinels = 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 "
		    "127.0.0.1:4 127.0.0.1:5 127.0.0.1:6 127.0.0.1:7 "
		    "127.0.0.1:8 127.0.0.1:9\n",
		"redis_master_name = my master\n",
	};
	struct config *c = calloc(1, sizeof(*c));
	char err[512];
	size_t i;

	assert_int_equal(load(c, "", err, sizeof(err)), 0);
	assert_int_equal(c->nredis_servers, 0);
	assert_int_equal(c->redis_timeout, 150);
	assert_string_equal(c->redis_prefix, "backmx:");
	assert_int_equal(c->redis_replay_limit, 10000);
	assert_int_equal(load(c, "redis_servers = 127.0.0.1:6379\n", err,
	    sizeof(err)), 0);
	assert_int_equal(c->nredis_servers, 1);
	assert_string_equal(c->redis_server.text, "127.0.0.1:6379");
	assert_int_equal(load(c, "redis_servers = [::1]:7000\n", err,
	    sizeof(err)), 0);
	assert_string_equal(c->redis_server.text, "[::1]:7000");
	assert_int_equal(load(c, "redis_sentinels = 127.0.0.1:26379, "
	    "[::1]:26380\n", err, sizeof(err)), 0);
	assert_int_equal(c->nredis_sentinels, 2);
	assert_int_equal(c->nredis_servers, 0);
	assert_string_equal(c->redis_sentinel[1].text, "[::1]:26380");
	assert_string_equal(c->redis_master_name, "mymaster");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (load(c, bad[i], err, sizeof(err)) != -1)
			fail_msg("accepted: %s", bad[i]);
	free(c);
}

/* One reply as hiredis' reader makes it of RESP bytes. */
static redisReply *
reply_of(const char *resp)
{
	redisReader *r = redisReaderCreate();
	void *reply = NULL;

	assert_non_null(r);
	assert_int_equal(redisReaderFeed(r, resp, strlen(resp)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
	assert_non_null(reply);
	redisReaderFree(r);
	return reply;
}

#define RCPT_OK	"*8\r\n$18\r\nu@customer.example\r\n$16\r\ncustomer.example" \
		"\r\n$7\r\ninvalid\r\n$11\r\npassthrough\r\n$3\r\n100\r\n" \
		"$3\r\n200\r\n$3\r\n300\r\n$11\r\n550 5.1.1 x\r\n"
#define DOM_NIL	"*6\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"

/* A recipient answer whose first five fields are 'head' (the rest
 * well formed): parsed, but no record. */
static void
no_rcpt(const char *head)
{
	struct state_rcpt r;
	struct state_domain d;
	redisReply *rep;
	char buf[512];
	int hr, hd;

	snprintf(buf, sizeof(buf), "*2\r\n*8\r\n%s$1\r\n1\r\n$1\r\n1\r\n"
	    "$-1\r\n%s", head, DOM_NIL);
	rep = reply_of(buf);
	assert_int_equal(cluster_parse_learned(rep, &r, &hr, &d, &hd), 0);
	assert_false(hr);
	freeReplyObject(rep);
}

/*
 * Numbers in the scripts' answers (peer bytes): the greylist's and the
 * nodes' may come as integers or as a hash field's digits, and digits
 * are all a string may hold; the bulk answer is integers only.
 */
static void
test_reply_numbers(void **state)
{
	static const char grey[] = "*10\r\n:0\r\n:1\r\n:2\r\n:3\r\n"
	    ":4\r\n:5\r\n:6\r\n:7\r\n:8\r\n";
	struct state_triplet t;
	struct state_net net;
	struct cluster_node nodes[2];
	struct cluster_bulk_answer a;
	redisReply *rep;
	char buf[256];
	int act;

	(void)state;
	snprintf(buf, sizeof(buf), "%s$2\r\n90\r\n", grey);
	rep = reply_of(buf);
	assert_int_equal(cluster_parse_grey(rep, &t, &net, &act), 0);
	assert_int_equal(net.expires, 90);
	freeReplyObject(rep);
	/* strtoll() read "90abc" as 90. */
	snprintf(buf, sizeof(buf), "%s$5\r\n90abc\r\n", grey);
	rep = reply_of(buf);
	assert_int_equal(cluster_parse_grey(rep, &t, &net, &act), -1);
	freeReplyObject(rep);
	snprintf(buf, sizeof(buf), "%s$3\r\n-90\r\n", grey);
	rep = reply_of(buf);
	assert_int_equal(cluster_parse_grey(rep, &t, &net, &act), -1);
	freeReplyObject(rep);

	rep = reply_of("*4\r\n$2\r\nn1\r\n$4\r\n1700\r\n"
	    "$2\r\nn2\r\n$4\r\n17x0\r\n");
	assert_int_equal(cluster_parse_nodes(rep, nodes, 2), 2);
	assert_int_equal(nodes[0].beat, 1700);
	assert_true(nodes[1].beat < 0);
	freeReplyObject(rep);

	rep = reply_of("*4\r\n:5\r\n:0\r\n:0\r\n:1700\r\n");
	assert_int_equal(cluster_parse_bulk(rep, &a, 1), 0);
	assert_int_equal(a.count, 5);
	assert_int_equal(a.forgotten, 1700);
	freeReplyObject(rep);
	rep = reply_of("*4\r\n$1\r\n5\r\n:0\r\n:0\r\n:0\r\n");
	assert_int_equal(cluster_parse_bulk(rep, &a, 1), -1);
	freeReplyObject(rep);
	/* An older node's script (three a digest) is not this one's. */
	rep = reply_of("*3\r\n:5\r\n:0\r\n:0\r\n");
	assert_int_equal(cluster_parse_bulk(rep, &a, 1), -1);
	freeReplyObject(rep);
}

/* The recipient's key, and the GET script's answer read back (peer
 * bytes: docs/cluster.md "Learned recipients and the domain lifecycle"). */
static void
test_learned(void **state)
{
	struct state_rcpt r;
	struct state_domain d;
	redisReply *rep;
	char k[128];
	int hr, hd;

	(void)state;
	/* SHA-256 of "u@customer.example\0", its first 16 bytes. */
	assert_int_equal(cluster_rcpt_key("backmx:", "u@customer.example", k,
	    sizeof(k)), 0);
	assert_string_equal(k, "backmx:rcpt:349dc2e6cb1cf9ffcdf48d00755fc1c6");
	assert_int_equal(cluster_domain_key("backmx:", "customer.example", k,
	    sizeof(k)), 0);
	assert_string_equal(k, "backmx:domain:customer.example");

	rep = reply_of("*2\r\n" RCPT_OK "*6\r\n$16\r\ncustomer.example\r\n"
	    "$7\r\nrefused\r\n$2\r\n50\r\n$1\r\n0\r\n$1\r\n0\r\n$-1\r\n");
	assert_int_equal(cluster_parse_learned(rep, &r, &hr, &d, &hd), 0);
	assert_true(hr && hd);
	assert_string_equal(r.addr, "u@customer.example");
	assert_int_equal(r.status, STATE_RCPT_INVALID);
	assert_int_equal(r.source, STATE_SRC_PASSTHROUGH);
	assert_int_equal(r.first_seen + r.last_seen + r.expires, 600);
	assert_string_equal(r.why, "550 5.1.1 x");
	assert_int_equal(d.lifecycle, STATE_DOM_REFUSED);
	assert_int_equal(d.added, 50);
	assert_string_equal(d.accept_how, "");
	freeReplyObject(rep);

	/* No keys: nothing, and no error. */
	rep = reply_of("*2\r\n*8\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n"
	    "$-1\r\n$-1\r\n" DOM_NIL);
	assert_int_equal(cluster_parse_learned(rep, &r, &hr, &d, &hd), 0);
	assert_false(hr || hd);
	freeReplyObject(rep);

	/* A status, a number, an address not understood: no record. */
	no_rcpt("$1\r\nu\r\n$1\r\nc\r\n$5\r\nmaybe\r\n$5\r\nadmin\r\n"
	    "$1\r\n1\r\n");
	no_rcpt("$1\r\nu\r\n$1\r\nc\r\n$5\r\nvalid\r\n$5\r\nadmin\r\n"
	    "$2\r\n-1\r\n");
	no_rcpt("$3\r\nu\nx\r\n$1\r\nc\r\n$5\r\nvalid\r\n$5\r\nadmin\r\n"
	    "$1\r\n1\r\n");
	/* Not the script's shape: an error, the node decides alone. */
	rep = reply_of("*1\r\n" DOM_NIL);
	assert_int_equal(cluster_parse_learned(rep, &r, &hr, &d, &hd), -1);
	freeReplyObject(rep);
	rep = reply_of("-ERR nope\r\n");
	assert_int_equal(cluster_parse_learned(rep, &r, &hr, &d, &hd), -1);
	freeReplyObject(rep);
}

/* What Sentinels and INFO say: peer bytes, only literals pass. */
static void
test_sentinel_parsers(void **state)
{
	static const char *const bad[] = {
		"mymaster 127.0.0.1 6379 224.0.0.1 6380",	/* multicast */
		"mymaster 127.0.0.1 6379 0.0.0.0 6380",
		"mymaster 127.0.0.1 6379 255.255.255.255 6380",
		"mymaster 127.0.0.1 6379 :: 6380",
		"mymaster 127.0.0.1 6379 ff02::1 6380",
		"mymaster 127.0.0.1 6379 127.0.0.1 0",
		"mymaster 127.0.0.1 6379 127.0.0.1 65536",
		"mymaster 127.0.0.1 6379 127.0.0.1 63x",
		"mymaster 127.0.0.1 6379 redis.example 6380",	/* a name */
		"other 127.0.0.1 6379 127.0.0.1 6380",		/* not ours */
		"mymaster 127.0.0.1 6379 127.0.0.1",
		"mymaster 127.0.0.1 6379 127.0.0.1 6380 extra",
		"mymaster  127.0.0.1 6379 127.0.0.1 6380",
		"",
	};
	static const char info[] = "# Replication\r\nrole:master\r\n"
	    "connected_slaves:2\r\n"
	    "slave0:ip=127.0.0.1,port=6380,state=online,offset=900,lag=1\r\n"
	    "slave1:ip=224.0.0.1,port=6381,state=online,offset=1,lag=0\r\n"
	    "master_repl_offset:1000\r\n";
	struct redis_repl repl;
	char host[64];
	unsigned port = 0;
	size_t i;

	assert_int_equal(sentinel_parse_switch("mymaster 127.0.0.1 6379 "
	    "::1 6380", 32, "mymaster", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 6380);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sentinel_parse_switch(bad[i], strlen(bad[i]), "mymaster",
		    host, sizeof(host), &port) != -1)
			fail_msg("accepted: %s", bad[i]);
	assert_int_equal(redis_parse_repl(info, sizeof(info) - 1, &repl), 0);
	assert_string_equal(repl.role, "master");
	assert_int_equal(repl.connected, 2);
	assert_int_equal(repl.nreplicas, 1);	/* the multicast one: no */
	assert_string_equal(repl.replicas[0].addr, "127.0.0.1:6380");
	assert_int_equal(repl.replicas[0].lag_bytes, 100);
	assert_int_equal(repl.replicas[0].lag_secs, 1);
	assert_int_equal(redis_parse_repl("master_repl_offset:1\r\n", 21,
	    &repl), -1);				/* no role */
}

/* One pair of an allow list's hash (src/cluster/allowshare.c), peer
 * bytes: only "KIND VALUE" and "AT add|del" of the list's kinds. */
static void
test_allow_entry(void **state)
{
	static const struct {
		int		 list;
		const char	*f, *v;
		int		 rc, kind;
		long long	 at;
		int		 deleted;
	} rows[] = {
		{ STATE_ALLOWS_GREYLIST, "domain friend.example",
		    "1796626740 add", 0, STATE_ALLOW_DOMAIN, 1796626740, 0 },
		{ STATE_ALLOWS_GREYLIST, "client 192.0.2.0/24", "5 del", 0,
		    STATE_ALLOW_CLIENT, 5, 1 },
		{ STATE_ALLOWS_BULK, "recipient subs@customer.example",
		    "7 add", 0, STATE_ALLOW_RECIPIENT, 7, 0 },
		{ STATE_ALLOWS_BULK, "sender a b@c.example", "7 add", 0,
		    STATE_ALLOW_SENDER, 7, 0 },	/* the store judges it */
		/* Not for the greylist: recipients are bulk's only. */
		{ STATE_ALLOWS_GREYLIST, "recipient subs@customer.example",
		    "7 add", -1, 0, 0, 0 },
		{ STATE_ALLOWS_GREYLIST, "host friend.example", "7 add", -1,
		    0, 0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain", "7 add", -1, 0, 0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain ", "7 add", -1, 0, 0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", "0 add", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", "-7 add", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", "7 put", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", "7add", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", " add", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example", "add", -1, 0,
		    0, 0 },
		{ STATE_ALLOWS_GREYLIST, "domain x.example",
		    "1234567890123456789 add", -1, 0, 0, 0 },
	};
	struct state_allow_op op;
	char big[400];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int rc = cluster_parse_allow_entry(
		    (enum state_allow_list)rows[i].list, rows[i].f,
		    strlen(rows[i].f), rows[i].v, strlen(rows[i].v), &op);

		if (rc != rows[i].rc)
			fail_msg("row %zu: %d", i, rc);
		if (rc == 0 && ((int)op.kind != rows[i].kind ||
		    op.at != rows[i].at || op.deleted != rows[i].deleted ||
		    strcmp(op.value, strchr(rows[i].f, ' ') + 1) != 0))
			fail_msg("row %zu", i);
	}
	/* A value longer than any entry, or with a NUL: refused. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "domain ", 7);
	assert_int_equal(cluster_parse_allow_entry(STATE_ALLOWS_GREYLIST, big,
	    sizeof(big), "7 add", 5, &op), -1);
	assert_int_equal(cluster_parse_allow_entry(STATE_ALLOWS_GREYLIST,
	    "domain a\0b", 10, "7 add", 5, &op), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grey_key),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_health_msg),
		cmocka_unit_test(test_learned),
		cmocka_unit_test(test_sentinel_parsers),
		cmocka_unit_test(test_reply_numbers),
		cmocka_unit_test(test_allow_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
