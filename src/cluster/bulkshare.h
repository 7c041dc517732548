/*
 * bulkshare: the bulk detector's counts shared through Redis
 * (docs/cluster.md "Bulk counts"). One server-side script per message
 * adds its (digest, recipient hash) pairs to each digest's set, answers
 * each digest's count and whether it was remembered as bulk, and
 * remembers a digest that reached bulk_threshold; the same script merges
 * what a node counted alone while Redis was away (through the cluster's
 * replay queue), without counting anything twice.
 *
 * This file knows nothing of the detector: digests and recipients come
 * as hex strings (src/bulk/bulk.c makes them). Answers always come later
 * from the loop; a failure is only ever "count locally".
 */
#ifndef BACKMX_BULKSHARE_H
#define BACKMX_BULKSHARE_H

#include <stddef.h>
#include <stdint.h>

struct cluster;
struct redisReply;
struct cluster_bulk_req;

#define CLUSTER_BULK_MAX	10	/* digests in one message */
#define CLUSTER_BULK_RCPT_MAX	1000	/* recipients sent; more: local */

/* One message: its valid digests and its counted recipients. */
struct cluster_bulk_query {
	int64_t		 now;		/* this node's clock when sent */
	int64_t		 seen;		/* when the message came (replay:
					   earlier than now) */
	unsigned	 window;	/* bulk_window, seconds */
	unsigned	 remember;	/* bulk_remember, seconds */
	unsigned	 global;	/* bulk_threshold: remembered at it */
	unsigned	 threshold;	/* this message's (a domain's own) */
	const char	*subject;	/* a sample, for HGETALL */
	const char	*sender;	/* its envelope sender, as well */
	size_t		 n;
	const char	*digest[CLUSTER_BULK_MAX];	/* 32 hex digits */
	const char	*kind[CLUSTER_BULK_MAX];	/* "body", ... */
	int64_t		 until[CLUSTER_BULK_MAX];	/* remembered here
							   until; 0 */
	int64_t		 gen[CLUSTER_BULK_MAX];	/* replay: the row's
						   first_seen when judged */
	size_t		 nrcpt;
	const char	*const *rcpt;	/* 32 hex digits each */
};

/* Redis' word on one digest, after this message. */
struct cluster_bulk_answer {
	unsigned	 count;		/* distinct recipients, every node */
	int		 remembered;	/* bulk before this message */
	int64_t		 bulk_until;	/* remembered until (0: not) */
	int64_t		 forgotten;	/* `bulk forget` at any node: when
					   (0: never); a mirror row of
					   before then counts from 0 */
};

/* rc 0: a[0..n-1] in the query's order. rc -1: no answer (down,
 * breaker, timeout, error): count locally. */
typedef void	cluster_bulk_cb(int rc, const struct cluster_bulk_answer *a,
		    size_t n, void *arg);

/* Ask (and count) once; the handle is valid until the callback starts or
 * cluster_bulk_cancel(). */
struct cluster_bulk_req *cluster_bulk_ask(struct cluster *,
		    const struct cluster_bulk_query *, cluster_bulk_cb *,
		    void *arg);
void		 cluster_bulk_cancel(struct cluster_bulk_req *);

/* A message counted alone: a copy goes to the replay queue, merged once
 * Redis answers (sets: a pair Redis has already adds nothing). */
void		 cluster_bulk_replay(struct cluster *,
		    const struct cluster_bulk_query *);

/* The script's answer (four integers per digest: count, remembered,
 * bulk_until, forgotten) into a[0..n-1]: 0, or -1 when it is anything else.
 * Exposed for fuzz/fuzz_redis.c. */
int		 cluster_parse_bulk(const struct redisReply *,
		    struct cluster_bulk_answer *a, size_t n);

/* The script's Lua source, loaded with the cluster's others. */
extern const char cluster_bulk_lua[];

#endif
