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
 * Health is src/primary/health.c's: the scheduler skips domains whose
 * primary is down, reports what each attempt found there, and drains a
 * domain the moment its primary comes back (it registers for that).
 */
#ifndef BACKMX_SCHED_H
#define BACKMX_SCHED_H

#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "qdb.h"

struct event_base;
struct config;
struct sched;

/* One recipient's outcome in an attempt: an SMTP code (synthesized for a
 * connection problem, e.g. 451) and the text for the log and the DSN. */
struct sched_result {
	int	code;
	char	text[QDB_TEXT_MAX];
};

/*
 * One attempt's work for one domain: a message to its pending recipients
 * there. The scheduler fills the first part and keeps it all valid until
 * 'done'; whoever delivers fills res[] (every entry) and the rest.
 */
struct sched_task {
	const struct qdb_msg	*msg;
	const char		*body_path;	/* big body, or NULL */
	char			 domain[256];	/* lower case */
	const struct qdb_rcpt	**rcpts;
	struct sched_result	*res;
	size_t			 nrcpt;
	/* out */
	int			 customer;	/* a domain of domains_file:
						   health, learning, history */
	int			 reached;	/* the primary greeted us */
	int			 conn_failed;	/* refused, timeout, 421... */
	char			 relay[320];	/* "host[addr]:port" or "" */
};

typedef void	sched_task_done_cb(struct sched_task *, void *arg);
/* Deliver t; 'done' runs exactly once, later, from the loop (never from
 * inside the call). deliver.c is one (main.c registers it). */
typedef void	sched_deliver_fn(void *owner, struct sched_task *t,
		    sched_task_done_cb *done, void *arg);

/* Attempts started in one loop turn at most, each a message loaded from
 * queue.db on the loop; the rest of what is due starts at the next turns,
 * after the loop's other I/O. Sized so a turn of a big drain stays well
 * under 50 ms on a loaded 2-core machine (docs/queue.md "Draining a big
 * queue"). */
#define SCHED_START_BATCH	32

struct primary_health;
struct sched	*sched_new(struct event_base *, const struct config *,
		    struct qdb *, struct primary_health *);
/* Who delivers. Until set, nothing is attempted. */
void		 sched_set_deliver(struct sched *, sched_deliver_fn *,
		    void *owner);
/* Stops the timer; attempts in flight are abandoned (their messages stay
 * queued as last committed). */
void		 sched_free(struct sched *);

/* A committed message: from the startup scan, or just inserted. */
void		 sched_add_msg(struct sched *, const struct qdb_msg *);
void		 sched_add_env(struct sched *, const struct envelope *);

/* Make due every message with a pending recipient in 'domain' (NULL:
 * all) not on hold: 4,096 a loop turn, from the next turn on, so that a
 * big queue never stalls the loop. Returns how many (counts kept, no
 * walk). */
size_t		 sched_flush(struct sched *, const char *domain);
/* 1 when some queued message has a pending recipient in 'domain'. */
int		 sched_has_domain(const struct sched *, const char *domain);

/* Operator's changes (done through the writer). 'done' as qdb's. */
int		 sched_hold(struct sched *, const char *id, int hold,
		    qdb_done_cb *, void *);
int		 sched_delete(struct sched *, const char *id, qdb_done_cb *,
		    void *);
int		 sched_flush_id(struct sched *, const char *id);

/* The primaries' health it was given (health.h). */
struct primary_health *sched_health(const struct sched *);
/* Messages with a pending recipient in 'domain' and the arrival of the
 * oldest (0 when none). */
void		 sched_domain_stats(const struct sched *, const char *domain,
		    size_t *queued, time_t *oldest);
/* The size of a message just added (sched_add_env() does not know it),
 * and the whole queue for the metrics: messages, bytes, the arrival of
 * the oldest with a pending recipient (0 when none). No walk of the
 * queue: counts kept, and one look per domain. */
void		 sched_note_size(struct sched *, const char *id,
		    uint64_t size);
void		 sched_totals(const struct sched *, size_t *messages,
		    uint64_t *bytes, time_t *oldest);
/* The ids of the messages with a pending recipient in 'domain', in queued
 * order, from the offset-th, up to max of them (a page of the dashboard's
 * domain view); returns how many. O(offset + max). */
size_t		 sched_domain_ids(const struct sched *, const char *domain,
		    size_t offset, char (*ids)[ENVELOPE_ID_MAX], size_t max);
/* Who learns from delivery outcomes (learn.h). */
struct learn;
void		 sched_set_learn(struct sched *, struct learn *);

/* --- what an attempt's outcome means (pure, no I/O) --------------------- */

/* What a recipient's SMTP code means: 2xx sent, 5xx bounced, anything
 * else (4xx, 0 for a connection problem) still pending. */
enum qdb_rcpt_status sched_rcpt_status(int code);

struct sched_rules {
	unsigned	maximal_queue_lifetime;
	unsigned	delay_warning_time;	/* 0: never warn */
	unsigned	minimal_backoff_time;
	unsigned	maximal_backoff_time;
};

enum sched_kind {
	SCHED_UNTOUCHED,	/* not in this attempt, not expired */
	SCHED_TRIED,		/* a result came back for it */
	SCHED_EXPIRED,		/* bounced now: maximal_queue_lifetime */
};

/* A recipient the DSN of this attempt tells about. */
struct sched_notice {
	size_t	idx;		/* into the message's rcpts */
	int	code;		/* its last code (451 when it never had one) */
	int	answered;	/* bounced by the primary's reply (its relay) */
};

struct sched_outcome {
	enum sched_kind		*kind;		/* nrcpt entries (caller's) */
	struct sched_notice	*notice;	/* nrcpt entries (caller's) */
	size_t			 nnotice;
	int			 expired;	/* past maximal_queue_lifetime */
	int			 delayed;	/* the notice is the delay warning */
	int			 deleted;	/* nothing pending: remove it */
	size_t			 pending;	/* recipients still to deliver */
	time_t			 next_attempt;
	const char		*first_defer;	/* res text, or NULL */
};

/*
 * An attempt's results (res[i] for recipient idx[i] of m, n of them) at
 * 'now': updates m's recipients (status, last code and reply; past
 * maximal_queue_lifetime the pending ones bounce with a 4.4.7 text) and
 * says what follows: the recipients a DSN tells about (bounced, or once
 * per message the delay warning when nothing bounced), whether the
 * message goes, and when it is tried next. Pure: sched.c logs, builds the
 * DSN and commits.
 */
void		 sched_outcome(const struct sched_rules *, struct qdb_msg *m,
		    const size_t *idx, const struct sched_result *res,
		    size_t n, time_t now, struct sched_outcome *);

/* The retry delay after 'attempts' attempts: min * 2^(attempts-1),
 * capped at max. Pure. */
unsigned	 sched_backoff(unsigned attempts, unsigned min, unsigned max);

#endif
