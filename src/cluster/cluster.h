/*
 * cluster: what the nodes of one cluster share through Redis
 * (docs/cluster.md): today greylist triplets and their networks' passes,
 * checked and updated by one server-side script; a heartbeat per node; the replay queue of the
 * decisions a node took alone while Redis was away; the operator's allow
 * entries, merged both ways with the node's store (allowshare.c).
 *
 * Off (no cluster object) when redis_servers is empty: the node is the
 * single node it always was. Every function here answers later from the
 * loop, never inside the call, and a failure is only ever "ask the local
 * store": Redis never decides a 5xx (docs/cluster.md "Fallback").
 */
#ifndef BACKMX_CLUSTER_H
#define BACKMX_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "learned.h"
#include "redis.h"
#include "sentinel.h"
#include "state.h"

struct event_base;
struct config;
struct cluster;
struct cluster_op;

/* The configuration's cluster, connecting; NULL when redis_servers is
 * empty. 'conf' is read here only. */
struct cluster	*cluster_new(struct event_base *, const struct config *);
/* Pending operations are dropped without their callbacks. NULL is fine. */
void		 cluster_free(struct cluster *);

/* --- greylisting ------------------------------------------------------------ */

/* The script's answer; the same order as greylist.h's enum. */
enum cluster_grey_action {
	CLUSTER_GREY_NEW,
	CLUSTER_GREY_EARLY,
	CLUSTER_GREY_PASS,
	CLUSTER_GREY_PASSED,
	CLUSTER_GREY_NET_ALLOWED,	/* the network is auto-allowed */
};

/* One check: the triplet, this node's clock and the greylist timings
 * (seconds). */
struct cluster_grey_query {
	const char	*net, *sender, *rcpt;
	int64_t		 now;
	unsigned	 delay, retry_window, max_age;
	unsigned	 auto_allow;	/* greylist_auto_allow_passes */
};

/* rc 0: Redis decided 'action' and *t is the shared record (with 'retry',
 * seconds until a deferred triplet may pass); with PASS and NET_ALLOWED
 * *n is the network's shared record (passes, allowed, expires; its
 * expires 0 when auto-allow is off), else n is NULL. With NET_ALLOWED
 * *t is not the triplet's: nothing was decided for it. rc -1: no answer
 * (down, breaker, timeout, error): decide from the local store. */
typedef void	cluster_grey_cb(int rc, enum cluster_grey_action action,
		    const struct state_triplet *t, const struct state_net *n,
		    unsigned retry, void *arg);

/* Check and update the triplet atomically in Redis. The handle is valid
 * until the callback starts or cluster_cancel(). */
struct cluster_op *cluster_greylist(struct cluster *,
		    const struct cluster_grey_query *, cluster_grey_cb *, void *);
void		 cluster_cancel(struct cluster_op *);

/*
 * A decision this node took alone (Redis did not answer): kept, bounded
 * by redis_replay_limit (the oldest go first, counted), and merged into
 * Redis once it answers again (docs/cluster.md "Replay").
 */
void		 cluster_replay_push(struct cluster *,
		    const struct state_triplet *);

/* The Redis key of a triplet: PREFIX "grey:" and 32 hex digits of the
 * SHA-256 of net, sender and rcpt (addresses may be 256 bytes). */
int		 cluster_grey_key(const char *prefix, const char *net,
		    const char *sender, const char *rcpt, char *out,
		    size_t outsz);

/*
 * The CHECK script's answer (an array of ten integers: action,
 * first_seen, last_seen, passed, expires, tries, passes, and the
 * network's passes, allowed, expires) into *t, *n and *act_out; 0, or -1 when it is anything else (then the node decides
 * alone). Exposed for fuzz/fuzz_redis.c: Redis' bytes, through hiredis'
 * reader.
 */
int		 cluster_parse_grey(const struct redisReply *,
		    struct state_triplet *t, struct state_net *n,
		    int *act_out);

/* --- primary health (docs/cluster.md "Primary health") ----------------------- */

/* What one node saw of one primary: a message on PREFIX "health", or the
 * key PREFIX "health:" DOMAIN. */
struct cluster_health {
	int		up;
	char		domain[256];
	char		node[256];
	int64_t		since;		/* that node's clock */
};

/* Another node's news (never this node's own), from a message or a key
 * read after (re)subscribing. */
typedef void	cluster_health_cb(const struct cluster_health *, void *arg);
/* Subscribed (again): news may have been missed; read the keys of the
 * domains this node has down (cluster_health_read). */
typedef void	cluster_resync_cb(void *arg);

void		 cluster_on_health(struct cluster *, cluster_health_cb *,
		    cluster_resync_cb *, void *arg);
/* This node saw domain's primary go up or down at 'since': the key and a
 * message, in one script. Redis away: counted, nothing else (every node
 * still probes on its own). */
void		 cluster_health_publish(struct cluster *, const char *domain,
		    int up, int64_t since);
/* Read the key of domain; its news, if any, goes to the health
 * callback. */
void		 cluster_health_read(struct cluster *, const char *domain);

/* A message ("up"|"down" SP domain SP node SP since), peer bytes: 0 and
 * *out, or -1. Exposed for fuzz/fuzz_redis.c. */
int		 cluster_parse_health_msg(const char *p, size_t len,
		    struct cluster_health *out);
/* The HMGET of a key (state, since, node, domain): 0 and *out, or -1
 * (no key, or anything else). */
int		 cluster_parse_health_key(const struct redisReply *,
		    struct cluster_health *out);

/* --- leases: one probe, one callout for the cluster (lease.c) ---------------- */

/* What a lease is for (docs/cluster.md "One probe, one callout"). */
enum cluster_lease_kind { CLUSTER_LEASE_PROBE, CLUSTER_LEASE_CALLOUT,
	CLUSTER_LEASE_KINDS };

/* How asking for a lease ended. */
enum cluster_lease_result {
	CLUSTER_LEASE_TAKEN,	/* ours: act */
	CLUSTER_LEASE_LOST,	/* another node holds it: skip */
	CLUSTER_LEASE_ALONE,	/* Redis did not answer: act, as one node */
};

struct cluster_lease_stats {
	uint64_t	taken, lost, alone;
};

struct cluster_lease;
/* go 1: act (the lease is ours, or Redis did not answer); 0: skip. */
typedef void	cluster_lease_cb(int go, void *arg);

/*
 * SET PREFIX "probe:" DOMAIN (addr NULL) or PREFIX "callout:" DOMAIN ":"
 * hash of addr, to this node's name, NX, for ttl seconds, within
 * redis_timeout. 'cb' runs once, later, from the loop; the handle is
 * valid until then or cluster_lease_cancel().
 */
struct cluster_lease *cluster_lease(struct cluster *, const char *domain,
		    const char *addr, unsigned ttl, cluster_lease_cb *,
		    void *arg);
/* The callback will not run. NULL is fine. */
void		 cluster_lease_cancel(struct cluster_lease *);
/* The key of a lease (domain lower-cased); 0, or -1 if it does not fit. */
int		 cluster_lease_key(const char *prefix, const char *domain,
		    const char *addr, char *out, size_t outsz);
/* The decision from the LEASE script's answer (pure; peer bytes, see
 * fuzz/fuzz_redis.c): nil, or our own name, is ours; another name is
 * that node's, copied (escaped) into holder; anything else, or no
 * answer, is ALONE. */
enum cluster_lease_result cluster_lease_decide(enum redis_status,
		    const struct redisReply *, const char *node,
		    char *holder, size_t holdersz);

/* --- the operator's allow entries (docs/cluster.md "Allow entries") --------- */

/* The store the allow entries are shared from and merged into (the
 * daemon's own); until it is set nothing is shared. */
void		 cluster_set_state(struct cluster *, struct state *);

/* The cluster's answer to a change: 0 Redis has it (and the others pull
 * it within a heartbeat), -1 it did not answer (the change is on this
 * node only until a later sync carries it). */
typedef void	cluster_allow_cb(int rc, void *arg);
/*
 * An operator changed an allow entry (committed in the store): sync
 * now, and call 'cb' once a sync that started after this call ended
 * (never without a store: call cluster_set_state() first).
 * Cancelled with cluster_cancel(), or dropped when the cluster stops,
 * without the callback.
 */
struct cluster_op *cluster_allow_share(struct cluster *, cluster_allow_cb *,
		    void *arg);

struct cluster_allow_stats {
	int64_t		last_sync;	/* this node's clock; 0 never */
	uint64_t	syncs, failed;	/* syncs ended and failed */
	uint64_t	applied;	/* entries taken from Redis */
	uint64_t	pushed;		/* entries sent to Redis */
	uint64_t	rejected;	/* entries of Redis' not understood */
	size_t		entries[2];	/* per list, at the last pull */
};

/*
 * A PULL answer (the version, then each list's field, value pairs) into
 * ops (at most max, both lists), *nops taken, *rejected not understood;
 * 0, or -1 when the answer is not of that shape. One pair: "KIND VALUE"
 * and "AT add|del" into *out, 0 or -1. Peer bytes: exposed for
 * fuzz/fuzz_redis.c. The value is checked for its kind by the store
 * (state_allow_apply()).
 */
int		 cluster_parse_allow(const struct redisReply *,
		    int64_t *version, struct state_allow_op *ops, size_t max,
		    size_t *nops, size_t *rejected);
int		 cluster_parse_allow_entry(enum state_allow_list,
		    const char *f, size_t flen, const char *v, size_t vlen,
		    struct state_allow_op *out);

/* --- status (backmxctl cluster status) ----------------------------------------- */

#define CLUSTER_NODES_MAX	64	/* nodes shown */

struct cluster_node {
	char		name[256];
	int64_t		beat;		/* its clock at its last heartbeat */
};

struct cluster_status {
	char		 server[300];
	char		 node[256];	/* this node's name: myhostname */
	struct redis_stats redis;
	size_t		 replay_depth;
	size_t		 replay_limit;
	uint64_t	 replay_dropped;
	uint64_t	 replay_merged;
	uint64_t	 fallbacks;	/* checks decided locally */
	uint64_t	 net_shared;	/* passes counted for a network */
	uint64_t	 net_allowed;	/* checks Redis's network allowed */
	struct redis_stats sub;		/* the subscriber's connection */
	int		 sentinel;	/* redis_sentinels: sentinel_st */
	struct sentinel_stats sentinel_st;
	uint64_t	 health_sent;	/* published, Redis said OK */
	uint64_t	 health_send_failed;
	uint64_t	 health_received; /* other nodes' messages */
	uint64_t	 health_keys_read; /* keys found after subscribing */
	uint64_t	 health_rejected; /* messages not understood */
	struct cluster_learned_stats learned; /* learned.h */
	struct cluster_lease_stats leases[CLUSTER_LEASE_KINDS];
	struct cluster_allow_stats allow;	/* allowshare.c */
	int		 nodes_known;	/* 0: Redis did not answer */
	size_t		 nnodes;
	struct cluster_node nodes[CLUSTER_NODES_MAX];
};

/* The NODES script's name, beat pairs into out (at most max); how many.
 * A name that is no string is skipped; names are cut to their field. */
size_t		 cluster_parse_nodes(const struct redisReply *,
		    struct cluster_node *out, size_t max);

typedef void	cluster_status_cb(const struct cluster_status *, void *arg);
/* Counters now, the nodes from Redis (their heartbeat keys). */
struct cluster_op *cluster_status(struct cluster *, cluster_status_cb *,
		    void *arg);
/* The same now, without the nodes (nodes_known 0): for the metrics. */
void		 cluster_status_now(struct cluster *, struct cluster_status *);

/*
 * `bulk forget DIGEST` for the whole cluster (docs/cluster.md "Bulk
 * counts"): Redis' count and set go, and every node's mirror follows at
 * its next copy of the digest. The callback: 1 Redis had something to
 * forget, 0 it had not (both: forgotten in the cluster), or one of the
 * failures below. Cancelled, or dropped when the cluster stops, without
 * the callback.
 */
#define CLUSTER_FORGET_FAILED	(-1)	/* not sent, or refused: not done */
#define CLUSTER_FORGET_UNSURE	(-2)	/* no answer in time: it may have run */
typedef void	cluster_forget_cb(int rc, void *arg);
struct cluster_op *cluster_bulk_forget(struct cluster *, const char *digest,
		    cluster_forget_cb *, void *arg);

#endif
