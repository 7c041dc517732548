/*
 * sched: when each queued message is tried, what an attempt's outcome
 * means, and the health of each customer domain's primary.
 *
 * Keeps a small entry per queued message in memory (id, times, the
 * domains with recipients still pending); the message itself stays in
 * queue.db and is loaded for each attempt. Per attempt: 2xx delivered,
 * 4xx or any connection problem deferred, 5xx bounced; the outcome of
 * every recipient is committed through the writer (qdb_update) before
 * anything else happens, with the DSN for bounced recipients in the same
 * transaction. Retry: minimal_backoff_time doubling to
 * maximal_backoff_time, per message. Past maximal_queue_lifetime: bounce.
 *
 * Health (DESIGN.md §2): a primary is down after primary_down_after
 * consecutive connection failures; then it is probed every
 * primary_probe_interval while mail for it is queued, and the first clean
 * EHLO marks it up and drains its queue at once.
 */
#ifndef BACKMX_SCHED_H
#define BACKMX_SCHED_H

#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "qdb.h"

struct event_base;
struct config;
struct deliver;
struct sched;

struct sched	*sched_new(struct event_base *, const struct config *,
		    struct qdb *, struct deliver *);
/* Stops the timer; attempts in flight are abandoned (their messages stay
 * queued as last committed). */
void		 sched_free(struct sched *);

/* A committed message: from the startup scan, or just inserted. */
void		 sched_add_msg(struct sched *, const struct qdb_msg *);
void		 sched_add_env(struct sched *, const struct envelope *);

/* Make due now every message with a pending recipient in 'domain' (NULL:
 * all) not on hold. Returns how many. */
size_t		 sched_flush(struct sched *, const char *domain);
/* 1 when some queued message has a pending recipient in 'domain'. */
int		 sched_has_domain(const struct sched *, const char *domain);

/* Operator's changes (done through the writer). 'done' as qdb's. */
int		 sched_hold(struct sched *, const char *id, int hold,
		    qdb_done_cb *, void *);
int		 sched_delete(struct sched *, const char *id, qdb_done_cb *,
		    void *);
int		 sched_flush_id(struct sched *, const char *id);

/* Health of a domain's primary: 1 up (or never seen), 0 down. */
int		 sched_primary_up(const struct sched *, const char *domain);
/* What a pass-through or a callout found: a connection failure counts
 * like a delivery's (down after primary_down_after); 'now' marks the
 * primary down at once (a pass-through that could not reach it at the
 * first RCPT). A success is a clean EHLO: up, and the queue drains. */
void		 sched_primary_failed(struct sched *, const char *domain,
		    const char *why, int now);
void		 sched_primary_ok(struct sched *, const char *domain);
/* Messages with a pending recipient in 'domain' and the arrival of the
 * oldest (0 when none). */
void		 sched_domain_stats(const struct sched *, const char *domain,
		    size_t *queued, time_t *oldest);
/* Who learns from health changes and delivery outcomes (learn.h). */
struct learn;
void		 sched_set_learn(struct sched *, struct learn *);

/* The retry delay after 'attempts' attempts: min * 2^(attempts-1),
 * capped at max. Pure. */
unsigned	 sched_backoff(unsigned attempts, unsigned min, unsigned max);

#endif
