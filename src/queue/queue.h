/*
 * queue: the queue's face. The SMTP session hands over a finished message
 * (envelope + body) and gets exactly one callback, on the event loop, once
 * the message is durable in the queue database or could not be made so.
 * "250" is said in that callback and nowhere else (docs/principles.md §1.1).
 *
 * Behind it: qdb.c (queue.db and its writer thread: no SQLite write and no
 * fsync on the event loop) and sched.c (retry times, expiry). Who delivers
 * (deliver.c) sits above it and registers with the scheduler; the
 * primaries' health is src/primary/health.c's. docs/queue.md.
 */
#ifndef BACKMX_QUEUE_H
#define BACKMX_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct envelope;
struct body;
struct config;
struct domains;
struct queue;
struct queue_job;
struct qdb;

enum queue_result {
	QUEUE_OK = 0,
	QUEUE_NOSPACE,	/* 452 4.3.1 */
	QUEUE_IOERR,	/* 451 4.3.0 */
};

typedef void	queue_done_cb(enum queue_result, const char *id, void *arg);

/*
 * Open (creating) spool_dir/queue.db, remove leftovers of messages that
 * never committed, start the writer and schedule what is queued. NULL
 * with a reason in err on failure (nothing is deleted then). 'conf' and
 * 'health' (the primaries' health, src/primary/health.h: the scheduler
 * skips down domains and drains one that comes back) must outlive the
 * queue.
 */
struct primary_health;
struct queue	*queue_open(struct event_base *, const struct config *,
		    struct primary_health *health, char *err, size_t errsz);
/* Wait for the jobs in flight, stop the writer, free. */
void		 queue_close(struct queue *);

/* The customer domains (ETRN and flushes check them); main.c calls it at start
 * and after each reload. Not owned; must stay valid until the next call. */
void		 queue_set_domains(struct queue *, const struct domains *);

/*
 * 1 while spool_dir's file system has at least queue_minfree bytes free
 * (default 2 x message_size_limit, capped at half the file system), else
 * 0: the session answers MAIL with 452 4.3.1. Cheap: cached for a second.
 */
int		 queue_space_ok(struct queue *);

/*
 * ETRN (RFC 1985) and `backmxctl queue flush DOMAIN`: every message with
 * recipients in 'domain' that is not on hold becomes due now. Returns the
 * number of messages made due, or -1 when 'domain' is not a customer
 * domain. NULL flushes the whole queue.
 */
int		 queue_flush_domain(struct queue *, const char *domain);

/* Folder for bodies that spill while they stream (same file system). */
const char	*queue_tmpdir(const struct queue *);

/*
 * Commit a message. Takes the body (it must not be used or freed by the
 * caller afterwards) and copies the envelope. 'done' runs exactly once on
 * the loop, unless queue_cancel() ran first. Never NULL.
 */
struct queue_job *queue_submit(struct queue *, const struct envelope *,
		    struct body *, queue_done_cb *done, void *arg);
/*
 * The submitter goes away: its callback will not run. The commit itself
 * goes on: a message whose 250 was never heard may be delivered (a
 * duplicate at worst, RFC 5321 §6.1), never lost.
 */
void		 queue_cancel(struct queue_job *);

/* Operators' changes to one message (backmxctl through control.c). */
enum queue_admin {
	QUEUE_ADMIN_DELETE,
	QUEUE_ADMIN_HOLD,
	QUEUE_ADMIN_RELEASE,
	QUEUE_ADMIN_FLUSH,
};
/*
 * Apply 'op' to message 'id'. Returns -1 when no such message is queued;
 * else 0 and 'done' runs once on the loop when the change is committed
 * (at once for FLUSH, which changes nothing on disk).
 */
int		 queue_admin(struct queue *, enum queue_admin, const char *id,
		    queue_done_cb *done, void *arg);

/* The database, for reads (queue list/show). Valid until queue_close(). */
struct qdb	*queue_qdb(struct queue *);
/* Its scheduler (per-domain counts, flushes). */
struct sched;
struct sched	*queue_sched(struct queue *);

#endif
