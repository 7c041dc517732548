/*
 * cluster_int: what the files of src/cluster share among themselves and
 * nobody else: the scripts' numbers, the replay queue, the connection.
 * cluster.c owns all of it; learned.c (docs/cluster.md "Learned
 * recipients"), bulkshare.c ("Bulk counts"), lease.c ("One probe,
 * one callout") and allowshare.c ("Allow entries") use it.
 */
#ifndef BACKMX_CLUSTER_INT_H
#define BACKMX_CLUSTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "redis.h"

struct cluster;
struct learned;
struct cluster_learned_stats;

/* The server-side scripts, loaded by redis.c at every connect. */
enum { SCRIPT_CHECK, SCRIPT_MERGE, SCRIPT_BEAT, SCRIPT_NODES, SCRIPT_HEALTH,
	SCRIPT_LEARN_GET, SCRIPT_LEARN_RCPT, SCRIPT_LEARN_DOMAIN, SCRIPT_BULK,
	SCRIPT_LEASE, SCRIPT_ALLOW_PULL, SCRIPT_ALLOW_PUT, NSCRIPTS };

/* lease.c's script: the lease taken, or kept and renewed by its holder. */
extern const char cluster_lease_lua[];

/* allowshare.c's scripts: a sync's pull, and its push. */
extern const char cluster_allow_pull_lua[], cluster_allow_put_lua[];

/* learned.c's sources of the last three. */
extern const char learned_script_get[], learned_script_rcpt[],
		  learned_script_domain[];

/* What the replay queue holds (docs/cluster.md "Replay"). */
enum replay_kind { REPLAY_TRIPLET, REPLAY_RCPT, REPLAY_DOMAIN, REPLAY_OPS };

/* One script with text arguments (their length is strlen()). */
struct redis_req *cluster_script(struct cluster *, size_t script, int nkeys,
		    int argc, const char **argv, redis_reply_cb *, void *);
const char	*cluster_prefix(const struct cluster *);
const char	*cluster_node(const struct cluster *);
struct learned	*cluster_learned_of(struct cluster *);
/* Queue a record (a struct state_triplet, state_rcpt or state_domain by
 * 'kind') and push what waits if Redis answers now. */
void		 cluster_replay_add(struct cluster *, enum replay_kind,
		    const void *rec);
/* Redis answered a request: what waited may go now. */
void		 cluster_replay_kick(struct cluster *);
/* PREFIX, 'what' and 32 hex digits of the SHA-256 of the n strings,
 * each with its NUL. 0, or -1 when it does not fit. */
int		 cluster_hash_key(const char *prefix, const char *what,
		    const char *const *parts, size_t n, char *out,
		    size_t outsz);

/* learned.c, for cluster.c: made and freed with the cluster; the
 * replay queue's record of 'kind' sent to Redis (a MERGE of its own);
 * its end counted. */
struct learned	*learned_new(void);
void		 learned_free(struct learned *);
struct redis_req *learned_replay(struct cluster *, enum replay_kind,
		    const void *rec, redis_reply_cb *, void *);
void		 learned_replayed(struct learned *, enum replay_kind, int ok);
void		 learned_stats(const struct learned *,
		    struct cluster_learned_stats *);

/*
 * Another kind of entry in the same replay queue (bulkshare.c's counts):
 * 'send' makes its merge request, whose success is an integer reply;
 * 'drop' frees the payload (merged, dropped, or the node stopping).
 */
struct cluster_replay_ops {
	struct redis_req *(*send)(struct cluster *, void *payload,
			    redis_reply_cb *, void *arg);
	void		 (*drop)(void *payload);
};
void		 cluster_replay_push_ops(struct cluster *,
		    const struct cluster_replay_ops *, void *payload);

/* --- for bulkshare.c (docs/cluster.md "Bulk counts") -------------------------- */

/* The bulk script in its "forget" mode for one digest (bulkshare.c). */
struct redis_req *bulkshare_forget_send(struct cluster *,
		    const char *digest, int64_t now, unsigned window,
		    unsigned remember, redis_reply_cb *, void *arg);
/* The bulk script (cluster_bulk_lua), loaded with the others. */
struct redis_req *cluster_bulk_script(struct cluster *, int nkeys, int argc,
		    const char **argv, const size_t *argvlen,
		    redis_reply_cb *, void *arg);
/* A message counted alone: counted with the checks decided alone. */
void		 cluster_fell_back(struct cluster *);

/* --- allowshare.c (docs/cluster.md "Allow entries") -------------------------- */

struct allowshare;
/* Made and freed with the cluster; it shares nothing until it has a
 * store (allowshare_set_state()). */
struct allowshare *allowshare_new(struct cluster *);
void		 allowshare_free(struct allowshare *);
void		 allowshare_set_state(struct allowshare *, struct state *);
/* Start a sync unless one runs (answered later, from the loop, through
 * cluster_allow_synced()). */
void		 allowshare_kick(struct allowshare *);
/* How many syncs started so far: a change waits for one started after
 * it. */
uint64_t	 allowshare_started(const struct allowshare *);
/* The connection is (again) ready: a sync is due. */
void		 allowshare_connected(struct allowshare *);
/* A heartbeat's answer: the version key; a sync when it moved, or one is
 * due. */
void		 allowshare_beat(struct allowshare *, int64_t version);
void		 allowshare_stats(const struct allowshare *,
		    struct cluster_allow_stats *);
/* cluster.c: sync number 'n' ended (ok 1: Redis has what this store has,
 * and this store what Redis had); its waiters hear it. */
void		 cluster_allow_synced(struct cluster *, uint64_t n, int ok);

/* --- for lease.c (docs/cluster.md "One probe, one callout") ----------------- */

/* The connection, and the counters of one kind. */
struct redis	*cluster_redis(struct cluster *);
struct cluster_lease_stats *cluster_lease_counts(struct cluster *,
		    enum cluster_lease_kind);

#endif
