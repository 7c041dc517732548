/*
 * lease: one probe of a down primary, and one callout of an address, for
 * the whole cluster (docs/cluster.md "One probe, one callout").
 *
 * Before it probes or calls out, a node asks Redis for a lease: one
 * script, LEASE below. The key did not exist: set, ours. It holds our own
 * name: ours still, and renewed for another TTL (a holder keeps the lease
 * while it keeps probing: SET NX GET alone did not renew it, so the
 * holder's next timer, a moment before the key expired, probed and a
 * second node probed a moment after, two probes in one interval).
 * Another name: that node probes or calls out; this one skips. No answer
 * within redis_timeout, an error, the breaker open, not connected: the
 * node acts alone, exactly as a single node does, so Redis trouble never
 * makes a node probe or call out less than it would alone. The TTL is
 * what bounds a holder that dies: nobody ever deletes a lease.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "cluster_int.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

struct cluster_lease {
	struct cluster		*cl;
	struct redis_req	*req;
	enum cluster_lease_kind	 kind;
	cluster_lease_cb	*cb;
	void			*arg;
	char			 domain[256];
	char			 addr[STATE_ADDR_MAX];	/* "" for a probe */
};

int
cluster_lease_key(const char *prefix, const char *domain, const char *addr,
    char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;
	char dom[256], hex[33];
	int n;

	str_copy(dom, sizeof(dom), domain);
	str_lower(dom);
	if (addr == NULL)
		n = snprintf(out, outsz, "%sprobe:%s", prefix, dom);
	else {
		/* A hash, not the address: the key stays short whatever
		 * the address (up to 256 bytes), and holds no peer bytes
		 * but the domain, which is one of ours. */
		if (!EVP_Digest(addr, strlen(addr), md, &mdlen, EVP_sha256(),
		    NULL) || mdlen < 16)
			return -1;
		for (i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		n = snprintf(out, outsz, "%scallout:%s:%s", prefix, dom, hex);
	}
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

enum cluster_lease_result
cluster_lease_decide(enum redis_status st, const redisReply *r,
    const char *node, char *holder, size_t holdersz)
{
	if (holdersz > 0)
		holder[0] = '\0';
	if (st != REDIS_REPLY_OK || r == NULL)
		return CLUSTER_LEASE_ALONE;
	if (r->type == REDIS_REPLY_NIL)
		return CLUSTER_LEASE_TAKEN;
	if (r->type != REDIS_REPLY_STRING || r->str == NULL || r->len == 0)
		return CLUSTER_LEASE_ALONE;
	if (r->len == strlen(node) && memcmp(r->str, node, r->len) == 0)
		return CLUSTER_LEASE_TAKEN;
	if (holdersz >= 8)
		log_value(holder, holdersz, r->str, r->len);
	return CLUSTER_LEASE_LOST;
}

static const char *
kind_name(enum cluster_lease_kind k)
{
	return k == CLUSTER_LEASE_PROBE ? "probe" : "callout";
}

static void
lease_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_lease *l = arg;
	struct cluster_lease_stats *c = cluster_lease_counts(l->cl, l->kind);
	cluster_lease_cb *cb = l->cb;
	void *cbarg = l->arg;
	char holder[LOG_VALUE_SIZE(64)], la[LOG_PATH_SIZE];
	enum cluster_lease_result res;

	res = cluster_lease_decide(st, reply, cluster_node(l->cl), holder,
	    sizeof(holder));
	if (res == CLUSTER_LEASE_TAKEN)
		c->taken++;
	else if (res == CLUSTER_LEASE_ALONE)
		c->alone++;
	else {
		c->lost++;
		log_info("event=cluster_lease_lost kind=%s domain=%s%s%s "
		    "holder=%s", kind_name(l->kind), l->domain,
		    l->addr[0] != '\0' ? " rcpt=" : "", l->addr[0] != '\0' ?
		    log_path(la, sizeof(la), l->addr) : "", holder);
	}
	free(l);
	cb(res != CLUSTER_LEASE_LOST, cbarg);
}

/*
 * KEYS[1] the lease; ARGV this node, the TTL in ms. The holder before
 * this call, nil (false) when there was none: the same answer SET NX GET
 * gives, so cluster_lease_decide() reads both.
 */
const char cluster_lease_lua[] =
"local v = redis.call('GET', KEYS[1])\n"
"if not v or v == ARGV[1] then\n"
"  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
"end\n"
"return v\n";

struct cluster_lease *
cluster_lease(struct cluster *cl, const char *domain, const char *addr,
    unsigned ttl, cluster_lease_cb *cb, void *arg)
{
	struct cluster_lease *l = xcalloc(1, sizeof(*l));
	char key[512], px[24];
	const char *argv[3];
	unsigned long long ms;

	l->cl = cl;
	l->kind = addr == NULL ? CLUSTER_LEASE_PROBE : CLUSTER_LEASE_CALLOUT;
	l->cb = cb;
	l->arg = arg;
	str_copy(l->domain, sizeof(l->domain), domain);
	if (addr != NULL)
		str_copy(l->addr, sizeof(l->addr), addr);
	if (cluster_lease_key(cluster_prefix(cl), domain, addr, key,
	    sizeof(key)) == -1)
		panic("cluster_lease: no key for %s", domain);
	/*
	 * PX, not EX: the same milliseconds on every node. 0 is an error
	 * to Redis: at least one second. A probe's lease lasts half an
	 * interval longer than the interval: its holder's next probe, one
	 * interval on, renews it before it can expire, so the holder stays
	 * the one prober and no other node's timer slips in at the edge;
	 * a holder that dies is replaced 1.5 intervals after its last probe.
	 */
	ms = (unsigned long long)(ttl > 0 ? ttl : 1) * 1000ULL;
	if (l->kind == CLUSTER_LEASE_PROBE)
		ms += ms / 2;
	snprintf(px, sizeof(px), "%llu", ms);
	argv[0] = key;
	argv[1] = cluster_node(cl);
	argv[2] = px;
	/* Answered later from the loop, even when Redis is away. */
	l->req = cluster_script(cl, SCRIPT_LEASE, 1, 3, argv, lease_cb, l);
	return l;
}

void
cluster_lease_cancel(struct cluster_lease *l)
{
	if (l == NULL)
		return;
	redis_cancel(l->req);
	free(l);
}
