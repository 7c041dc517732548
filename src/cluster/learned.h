/*
 * learned: recipients learned and each customer domain's lifecycle,
 * shared by the nodes of a cluster through Redis (docs/cluster.md
 * "Learned recipients and the domain lifecycle").
 *
 * A node writes its own store first (src/state/learn.c, as a single
 * node) and then hands the record here: it goes to Redis through the
 * replay queue, merged there by a script. A node checking a recipient in
 * backup mode asks Redis for the address's record and its domain's
 * within redis_timeout, merges what it gets into its own store, and
 * decides from its store as a single node: an answer from Redis only
 * adds knowledge, and no answer changes nothing (never a false 5xx).
 */
#ifndef BACKMX_LEARNED_H
#define BACKMX_LEARNED_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct cluster;
struct redisReply;
struct cluster_learned_op;

/* For backmxctl cluster status (docs/cluster.md "Status"). */
struct cluster_learned_stats {
	uint64_t	rcpt_shared;	/* recipient records merged into Redis */
	uint64_t	domain_shared;	/* lifecycle records merged into Redis */
	uint64_t	lookups;	/* backup-mode checks that asked Redis */
	uint64_t	lookup_failed;	/* ...and had no answer: local alone */
	uint64_t	rcpt_found;	/* a recipient record came back */
	uint64_t	domain_found;	/* a lifecycle record came back */
	uint64_t	rejected;	/* records not understood */
};

/* This node wrote the record to its store: share it. */
void		 cluster_learned_rcpt(struct cluster *,
		    const struct state_rcpt *);
void		 cluster_learned_domain(struct cluster *,
		    const struct state_domain *);

/* rc 0: Redis answered; r and d are its records, NULL when it has none
 * (valid during the call). rc -1: no answer: decide from the store. */
typedef void	cluster_learned_cb(int rc, const struct state_rcpt *r,
		    const struct state_domain *d, void *arg);
/* Ask for addr's record (lower case "local@domain") and domain's. The
 * handle is valid until the callback starts or
 * cluster_learned_cancel(). */
struct cluster_learned_op *cluster_learned_get(struct cluster *,
		    const char *addr, const char *domain,
		    cluster_learned_cb *, void *arg);
void		 cluster_learned_cancel(struct cluster_learned_op *);

/* The keys: PREFIX "rcpt:" and 32 hex digits of the SHA-256 of the
 * address (256 bytes long at most); PREFIX "domain:" and the name. 0 or
 * -1 when it does not fit. */
int		 cluster_rcpt_key(const char *prefix, const char *addr,
		    char *out, size_t outsz);
int		 cluster_domain_key(const char *prefix, const char *domain,
		    char *out, size_t outsz);

/*
 * The GET script's answer (two arrays: the recipient's fields, the
 * domain's) into *r and *d, *have_r and *have_d 1 for a record that is
 * there and well formed (a field missing or not understood: 0). 0, or -1
 * when the answer is not of that shape. Peer bytes: exposed for
 * fuzz/fuzz_redis.c.
 */
int		 cluster_parse_learned(const struct redisReply *,
		    struct state_rcpt *r, int *have_r, struct state_domain *d,
		    int *have_d);

#endif
