/*
 * bulk: the bulk detector's counting and verdict (docs/bulk.md §3, §4).
 * At the end of DATA in backup mode the session hands the message's
 * digests (digest.h) and its counted recipients here: each valid digest
 * adds the recipients it had not reached yet, and the message is bulk when
 * any digest reaches the threshold or is remembered as bulk. Allow lists
 * (bulk_allow_*) and the recipients never counted (postmaster@, abuse@)
 * are decided here too. Reads answer from the state store at once; the
 * writes, one row per digest and one per new recipient, join the store's
 * loop-turn transaction. Owner: main.c.
 */
#ifndef BACKMX_BULK_H
#define BACKMX_BULK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "digest.h"

struct cluster;
struct config;
struct domain;
struct state;
struct bulk;

enum bulk_verdict {
	BULK_SKIPPED = 0,	/* not checked: off, allowed, nothing valid */
	BULK_PASS,
	BULK_BULK,
	BULK_ERROR,		/* the store failed: 4xx, never an accept */
};

struct bulk_outcome {
	int		verdict;	/* enum bulk_verdict */
	unsigned	threshold;
	unsigned	counted;	/* recipients counted */
	unsigned	count[BULK_NDIGEST];
	int		remembered[BULK_NDIGEST];	/* bulk before this copy */
	const char	*why;		/* BULK_SKIPPED: why, for the log */
};

/* The allow lists parsed; NULL with a sentence in err when one is bad. */
struct bulk	*bulk_new(const struct config *, char *err, size_t errsz);
void		 bulk_free(struct bulk *);
/* bulk_allow_* again, from a reloaded configuration: all or nothing, -1
 * with the running lists kept and why in err. */
int		 bulk_reload(struct bulk *, const struct config *, char *err,
		    size_t errsz);

/*
 * The bulk policy of one recipient (lower case "local@domain") of a
 * customer domain, in a transaction from client 'sa' and envelope sender
 * 'sender' (lower case, "" for <>): the threshold its copies count
 * against, or 0 when it is never counted (the detector or the domain's
 * threshold off, an allowed recipient, postmaster@ or abuse@). A
 * transaction keeps one policy: a recipient with another gets 452 4.5.3.
 */
unsigned	 bulk_rcpt_policy(const struct bulk *, struct state *,
		    const struct config *, const struct domain *,
		    const char *rcpt, const struct sockaddr *sa,
		    const char *sender);
/* The recipient is never counted nor deferred as bulk: postmaster@ or
 * abuse@, bulk_allow_recipients, its domain's own bulk_allow_* list the
 * recipient, the sender or the client, or the operator's entries in the
 * store (backmxctl bulk allow --recipient; a store error reads as "not
 * allowed", as in bulk_tx_allowed()). */
int		 bulk_rcpt_allowed(const struct bulk *, struct state *,
		    const struct domain *, const char *rcpt,
		    const struct sockaddr *sa, const char *sender);
/* The whole transaction is allowed: its client or its envelope sender
 * (lower case, "" for <>) is on an allow list, bulk_allow_* or the
 * operator's in the state store (backmxctl bulk allow). A store error
 * reads as "not allowed": the message is counted, and the count's own
 * store error answers 4xx. */
int		 bulk_tx_allowed(const struct bulk *, struct state *,
		    const struct sockaddr *, const char *sender);

/*
 * Count 'nrcpt' recipients (lower-case addresses) for each valid digest
 * and decide. 'threshold' 0 skips. out->verdict is BULK_ERROR when the
 * store failed; what was staged before then may still commit.
 */
void		 bulk_judge(struct state *, const struct config *,
		    const struct bulk_digests *, const char *const *rcpts,
		    size_t nrcpt, unsigned threshold, int64_t now,
		    struct bulk_outcome *out);

/*
 * The same, the counts shared with the other nodes of a cluster
 * (docs/cluster.md "Bulk counts"): Redis is asked first, within
 * redis_timeout; without an answer the local counts decide and the
 * message's counts go to the replay queue. NULL when *out is final now
 * (no cluster, nothing to count); else 'cb' runs once, later, from the
 * loop, unless bulk_ask_cancel() comes first.
 */
struct bulk_ask;
typedef void	bulk_judged_cb(const struct bulk_outcome *,
		    const struct bulk_digests *, void *arg);
struct bulk_ask	*bulk_judge_ask(struct bulk *, struct state *,
		    const struct config *, const struct bulk_digests *,
		    const char *const *rcpts, size_t nrcpt, unsigned threshold,
		    int64_t now, struct bulk_outcome *out, bulk_judged_cb *,
		    void *arg);
void		 bulk_ask_cancel(struct bulk_ask *);
/* Share the counts through this cluster (NULL: this node's only). */
void		 bulk_set_cluster(struct bulk *, struct cluster *);

/* "body=1a2b3c4d/3 letters=.../20* ...": each valid digest's short form,
 * its count, '*' when remembered as bulk; for the per-message log line. */
const char	*bulk_summary(char *buf, size_t bufsz,
		    const struct bulk_digests *, const struct bulk_outcome *);
/* "pass", "bulk", "error", "skipped". */
const char	*bulk_verdict_name(int);

#endif
