/*
 * libFuzzer harness for what backmx makes of Redis' answers
 * (src/cluster/cluster.c): the bytes go through hiredis' own reader, as
 * they do on the connection, and every reply it builds is read as the
 * CHECK script's answer and as the NODES script's. Whatever the bytes: no
 * crash, a parsed triplet has an action of the five (the fifth: its
 * network allowed) and counts that fit, its network's times not negative,
 * node names stay NUL-terminated inside their field. The same bytes, raw,
 * are a primary-health message on the subscription, and each reply the
 * HMGET of a health key: a parsed one has names of 1..255 printable
 * bytes and a non-negative time. Each reply is also the bulk script's
 * answer (src/cluster/bulkshare.c) for 1 to CLUSTER_BULK_MAX digests: a
 * parsed one has counts that fit, remembered 0 or 1, a non-negative
 * bulk_until, and nothing written past its n answers. And each reply is
 * the answer of the learned recipients' GET script (check_learned()).
 *
 * Sentinel (src/cluster/sentinel.c): each reply is also read as the
 * answer to SENTINEL get-master-addr-by-name, and the raw bytes as a
 * +switch-master message and as INFO replication's text; a parsed
 * address is a NUL-terminated literal with a port of 1-65535, replicas
 * stay within their array and their lag is never negative. Each reply
 * is also a lease's answer (src/cluster/lease.c).
 *
 * Allow entries (src/cluster/allowshare.c): each reply is also a PULL
 * answer, read into a few slots: never more than the slots, each entry
 * taken of its list's kinds (a recipient only in the bulk list), with a
 * NUL-terminated value, a positive time and an op of the two; the
 * rejected and taken add up to no more than the pairs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bulkshare.h"
#include "cluster.h"
#include "sentinel.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_health(const struct cluster_health *h)
{
	size_t dl = strnlen(h->domain, sizeof(h->domain));
	size_t nl = strnlen(h->node, sizeof(h->node));

	if (dl == 0 || dl == sizeof(h->domain) || nl == 0 ||
	    nl == sizeof(h->node) || h->since < 0 || (h->up != 0 && h->up != 1) ||
	    strchr(h->domain, ' ') != NULL || strchr(h->node, ' ') != NULL)
		abort();
}

/* The GET script's answer (src/cluster/learned.c): a record taken has
 * a status, a source and a lifecycle of their lists, non-negative times,
 * and its strings end inside their fields. */
static void
check_learned(const redisReply *reply)
{
	static struct state_rcpt r;
	static struct state_domain d;
	int hr, hd;

	if (cluster_parse_learned(reply, &r, &hr, &d, &hd) == -1)
		return;
	if (hr && (r.status < STATE_RCPT_VALID ||
	    r.status > STATE_RCPT_INVALID || r.source < STATE_SRC_PASSTHROUGH ||
	    r.source > STATE_SRC_ADMIN || r.first_seen < 0 || r.expires < 0 ||
	    memchr(r.addr, '\0', sizeof(r.addr)) == NULL ||
	    memchr(r.why, '\0', sizeof(r.why)) == NULL || r.addr[0] == '\0'))
		abort();
	if (hd && (d.lifecycle < STATE_DOM_LEARNING ||
	    d.lifecycle > STATE_DOM_REFUSED || d.added < 0 ||
	    memchr(d.name, '\0', sizeof(d.name)) == NULL ||
	    memchr(d.accept_how, '\0', sizeof(d.accept_how)) == NULL))
		abort();
}

static void
check_bulk(const redisReply *reply)
{
	struct cluster_bulk_answer a[CLUSTER_BULK_MAX + 1];
	size_t n, i;

	for (n = 1; n <= CLUSTER_BULK_MAX; n++) {
		memset(a, 0xa5, sizeof(a));
		if (cluster_parse_bulk(reply, a, n) != 0)
			continue;
		for (i = 0; i < n; i++)
			if ((a[i].remembered != 0 && a[i].remembered != 1) ||
			    a[i].bulk_until < 0 || a[i].forgotten < 0)
				abort();
		if (a[n].remembered != (int)0xa5a5a5a5)
			abort();	/* written past its n */
	}
}

static void
check_addr(const char *host, size_t hostsz, unsigned port)
{
	if (memchr(host, '\0', hostsz) == NULL || host[0] == '\0' ||
	    port < 1 || port > 65535)
		abort();
}

static void
check_master(const redisReply *reply)
{
	char host[64];
	unsigned port = 0;

	if (sentinel_parse_master(reply, host, sizeof(host), &port) == 0)
		check_addr(host, sizeof(host), port);
}

/* The raw bytes as a +switch-master message and as INFO's text. */
static void
check_text(const char *p, size_t n)
{
	static struct redis_repl repl;
	char host[64];
	unsigned port = 0;
	size_t i;

	if (sentinel_parse_switch(p, n, "mymaster", host, sizeof(host),
	    &port) == 0)
		check_addr(host, sizeof(host), port);
	if (redis_parse_repl(p, n, &repl) == 0) {
		if (repl.nreplicas > REDIS_REPLICAS_MAX ||
		    memchr(repl.role, '\0', sizeof(repl.role)) == NULL)
			abort();
		for (i = 0; i < repl.nreplicas; i++)
			if (repl.replicas[i].lag_bytes < 0 ||
			    memchr(repl.replicas[i].addr, '\0',
			    sizeof(repl.replicas[i].addr)) == NULL)
				abort();
	}
}

/* The answer to a lease's LEASE script (src/cluster/lease.c): one of
 * the three results, a holder's name NUL-terminated inside its field and
 * escaped (no byte of it can end a log line). */
static void
check_lease(const redisReply *reply)
{
	char holder[LOG_VALUE_SIZE(64)];
	enum cluster_lease_result res;

	res = cluster_lease_decide(REDIS_REPLY_OK, reply, "mx2a.example.net",
	    holder, sizeof(holder));
	if (res != CLUSTER_LEASE_TAKEN && res != CLUSTER_LEASE_LOST &&
	    res != CLUSTER_LEASE_ALONE)
		abort();
	if (memchr(holder, '\0', sizeof(holder)) == NULL ||
	    strpbrk(holder, "\r\n") != NULL)
		abort();
	if (res == CLUSTER_LEASE_LOST && holder[0] == '\0')
		abort();
}

static void
check_allow(const redisReply *reply)
{
	enum { SLOTS = 4 };
	static struct state_allow_op ops[SLOTS + 1];
	size_t n = 0, rejected = 0, i;
	int64_t version;

	memset(ops, 0xa5, sizeof(ops));
	if (cluster_parse_allow(reply, &version, ops, SLOTS, &n,
	    &rejected) != 0)
		return;
	if (version < 0 || n > SLOTS || n + rejected > reply->element[1]->
	    elements / 2 + reply->element[2]->elements / 2)
		abort();
	for (i = 0; i < n; i++)
		if ((ops[i].list != STATE_ALLOWS_GREYLIST &&
		    ops[i].list != STATE_ALLOWS_BULK) ||
		    ops[i].kind > STATE_ALLOW_RECIPIENT ||
		    (ops[i].kind == STATE_ALLOW_RECIPIENT &&
		    ops[i].list != STATE_ALLOWS_BULK) ||
		    memchr(ops[i].value, '\0', sizeof(ops[i].value)) == NULL ||
		    ops[i].value[0] == '\0' || ops[i].at <= 0 ||
		    (ops[i].deleted != 0 && ops[i].deleted != 1))
			abort();
	if (ops[SLOTS].at != (int64_t)0xa5a5a5a5a5a5a5a5)
		abort();	/* written past its slots */
}

static void
check(const redisReply *reply)
{
	static struct cluster_health h;

	static struct cluster_node nodes[CLUSTER_NODES_MAX];
	struct state_triplet t;
	struct state_net net;
	size_t n, i;
	int act;

	memset(&t, 0, sizeof(t));
	memset(&net, 0, sizeof(net));
	if (cluster_parse_grey(reply, &t, &net, &act) == 0 &&
	    (act < CLUSTER_GREY_NEW || act > CLUSTER_GREY_NET_ALLOWED ||
	    t.first_seen < 0 || t.expires < 0 || net.allowed < 0 ||
	    net.expires < 0))
		abort();
	n = cluster_parse_nodes(reply, nodes, CLUSTER_NODES_MAX);
	if (n > CLUSTER_NODES_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (memchr(nodes[i].name, '\0', sizeof(nodes[i].name)) == NULL)
			abort();
	if (cluster_parse_health_key(reply, &h) == 0)
		check_health(&h);
	check_bulk(reply);
	check_learned(reply);
	check_master(reply);
	check_lease(reply);
	check_allow(reply);
}

/*
 * hiredis 0.14 allocates what a length header announces ("*1765172800"
 * is a 14 GB calloc): it has no limit on elements (1.0's maxelements),
 * and that is the server's to abuse, not ours to parse
 * (docs/dependencies.md §5). Such inputs are skipped.
 */
static int
huge_header(const uint8_t *p, size_t n)
{
	size_t i, j;
	uint64_t v;

	for (i = 0; i < n; i++) {
		if (p[i] != '*' && p[i] != '$')
			continue;
		for (v = 0, j = i + 1; j < n && p[j] >= '0' && p[j] <= '9' &&
		    v < (1u << 20); j++)
			v = v * 10 + (uint64_t)(p[j] - '0');
		if (v >= (1u << 20))
			return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	redisReader *r;
	void *reply;
	int i;

	static struct cluster_health h;

	if (cluster_parse_health_msg((const char *)data, size, &h) == 0)
		check_health(&h);
	check_text((const char *)data, size);
	if (huge_header(data, size) || (r = redisReaderCreate()) == NULL)
		return 0;
	if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK) {
		/* A few replies from one read, as a pipelined answer. */
		for (i = 0; i < 8; i++) {
			reply = NULL;
			if (redisReaderGetReply(r, &reply) != REDIS_OK ||
			    reply == NULL)
				break;
			check(reply);
			freeReplyObject(reply);
		}
	}
	redisReaderFree(r);
	return 0;
}
