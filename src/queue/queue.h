/*
 * queue: the queue's face to the SMTP session. The session hands over a
 * finished message (envelope + body) and gets exactly one callback, on the
 * event loop, once the message is durable on disk or could not be made so.
 * "250" is said in that callback and nowhere else (STYLE.md §1.1).
 *
 * The disk work (writes, fsync, rename, directory fsync) runs on a worker
 * thread, never on the event loop.
 *
 * XXX: this is the interim spool of the front-door issue: one pair of
 * files per message in spool_dir/incoming/ (ID.env, JSON written by us, and
 * ID.msg, the message). The durable-queue issue replaces it with the
 * SQLite queue database behind this same header.
 */
#ifndef BACKMX_QUEUE_H
#define BACKMX_QUEUE_H

#include <stdint.h>

struct event_base;
struct envelope;
struct body;
struct queue;
struct queue_job;

enum queue_result {
	QUEUE_OK = 0,
	QUEUE_NOSPACE,	/* 452 4.3.1 */
	QUEUE_IOERR,	/* 451 4.3.0 */
};

typedef void	queue_done_cb(enum queue_result, const char *id, void *arg);

/* Open (creating) spool_dir and its subfolders, remove leftovers of
 * messages that never committed, start the worker. NULL with errno and a
 * logged reason on failure. */
struct queue	*queue_open(struct event_base *, const char *spool_dir);
/* Wait for the jobs in flight, stop the worker, free. */
void		 queue_close(struct queue *);

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

#endif
