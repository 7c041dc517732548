/*
 * libFuzzer harness for what backmx makes of Redis' answers
 * (src/cluster/cluster.c): the bytes go through hiredis' own reader, as
 * they do on the connection, and every reply it builds is read as the
 * CHECK script's answer and as the NODES script's. Whatever the bytes: no
 * crash, a parsed triplet has an action of the four and counts that fit,
 * node names stay NUL-terminated inside their field. The same bytes, raw,
 * are a primary-health message on the subscription, and each reply the
 * HMGET of a health key: a parsed one has names of 1..255 printable
 * bytes and a non-negative time. Each reply is also a lease's answer
 * (src/cluster/lease.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
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

/* The answer to a lease's SET ... NX GET (src/cluster/lease.c): one of
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
check(const redisReply *reply)
{
	static struct cluster_health h;

	static struct cluster_node nodes[CLUSTER_NODES_MAX];
	struct state_triplet t;
	size_t n, i;
	int act;

	memset(&t, 0, sizeof(t));
	if (cluster_parse_grey(reply, &t, &act) == 0 &&
	    (act < CLUSTER_GREY_NEW || act > CLUSTER_GREY_PASSED ||
	    t.first_seen < 0 || t.expires < 0))
		abort();
	n = cluster_parse_nodes(reply, nodes, CLUSTER_NODES_MAX);
	if (n > CLUSTER_NODES_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (memchr(nodes[i].name, '\0', sizeof(nodes[i].name)) == NULL)
			abort();
	if (cluster_parse_health_key(reply, &h) == 0)
		check_health(&h);
	check_lease(reply);
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
