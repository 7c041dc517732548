/*
 * queue: the face of the queue (queue.h), tying qdb.c (the database and
 * its writer) and sched.c (when, and what an outcome means) together.
 * Delivery (deliver.c) is above it: main.c registers it with the
 * scheduler.
 *
 * A submitted message goes to the writer; its callback says OK only after
 * the transaction holding it committed, and only then does the session
 * say 250 and the scheduler learn of it. A session that went away cancels
 * its callback, never the commit: the message may be delivered though
 * its 250 was never heard (a duplicate at worst, RFC 5321 §6.1).
 */
#include "queue.h"

#include <sys/statvfs.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "body.h"
#include "config.h"
#include "domains.h"
#include "envelope.h"
#include "log.h"
#include "qdb.h"
#include "sched.h"
#include "str.h"
#include "xmem.h"

struct queue_job {
	struct queue		*q;
	queue_done_cb		*done;
	void			*arg;
	int			 cancelled;
	uint64_t		 size;		/* of the body, for sched */
};

struct queue {
	struct event_base	*base;
	const struct config	*conf;
	const struct domains	*domains;
	struct qdb		*qdb;
	struct sched		*sched;
	struct primary_health	*health;
	time_t			 space_checked;
	int			 space_ok;
};

static void
scanned(const struct qdb_msg *m, void *arg)
{
	sched_add_msg(arg, m);
}

struct queue *
queue_open(struct event_base *base, const struct config *conf,
    struct primary_health *health, char *err, size_t errsz)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->base = base;
	q->conf = conf;
	q->space_ok = 1;
	q->health = health;
	if ((q->qdb = qdb_open(base, conf->spool_dir, conf->queue_inline_max,
	    err, errsz)) == NULL) {
		free(q);
		return NULL;
	}
	q->sched = sched_new(base, conf, q->qdb, health);
	if (qdb_scan(q->qdb, scanned, q->sched) == -1) {
		snprintf(err, errsz, "%s/queue.db: cannot read the queue",
		    conf->spool_dir);
		queue_close(q);
		return NULL;
	}
	log_info("event=queue_open spool_dir=%s", conf->spool_dir);
	return q;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	/* Order: no more deliveries (main.c freed the deliverer first); the
	 * writer finishes what it holds (outcomes included, their callbacks
	 * still reach the scheduler); then the scheduler goes. */
	qdb_close(q->qdb);
	sched_free(q->sched);
	free(q);
}

void
queue_set_domains(struct queue *q, const struct domains *d)
{
	q->domains = d;
}

const char *
queue_tmpdir(const struct queue *q)
{
	return qdb_tmpdir(q->qdb);
}

struct qdb *
queue_qdb(struct queue *q)
{
	return q->qdb;
}

int
queue_space_ok(struct queue *q)
{
	struct statvfs sv;
	uint64_t want, avail, size;
	time_t now = time(NULL);

	if (now == q->space_checked)
		return q->space_ok;
	q->space_checked = now;
	if (statvfs(q->conf->spool_dir, &sv) == -1) {
		q->space_ok = 1;	/* cannot tell: the commit will */
		return 1;
	}
	want = q->conf->queue_minfree;
	if (want == 0)
		want = q->conf->message_size_limit > UINT64_MAX / 2 ?
		    UINT64_MAX : 2 * q->conf->message_size_limit;
	size = (uint64_t)sv.f_blocks * sv.f_frsize;
	/* Capped by what the disk has: a small disk still takes mail. */
	if (want > size / 2)
		want = size / 2;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail < want && q->space_ok)
		log_warn("event=queue_space_low spool_dir=%s free=%llu "
		    "queue_minfree=%llu", q->conf->spool_dir,
		    (unsigned long long)avail, (unsigned long long)want);
	q->space_ok = avail >= want;
	return q->space_ok;
}

int
queue_flush_domain(struct queue *q, const char *domain)
{
	size_t n;

	if (domain != NULL && (q->domains == NULL ||
	    domains_lookup(q->domains, domain) == NULL))
		return -1;
	n = sched_flush(q->sched, domain);
	log_info("event=flush domain=%s messages=%zu", domain ? domain : "*",
	    n);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

static enum queue_result
queue_result(enum qdb_result r)
{
	return r == QDB_OK ? QUEUE_OK : r == QDB_NOSPACE ? QUEUE_NOSPACE :
	    QUEUE_IOERR;
}

static void
inserted(enum qdb_result r, const char *id, const struct envelope *env,
    void *arg)
{
	struct queue_job *j = arg;

	if (r == QDB_OK) {
		sched_add_env(j->q->sched, env);
		sched_note_size(j->q->sched, env->id, j->size);
	}
	if (!j->cancelled)
		j->done(queue_result(r), id, j->arg);
	free(j);
}

struct queue_job *
queue_submit(struct queue *q, const struct envelope *e, struct body *b,
    queue_done_cb *done, void *arg)
{
	struct queue_job *j = xcalloc(1, sizeof(*j));

	j->q = q;
	j->done = done;
	j->arg = arg;
	j->size = body_size(b);
	qdb_insert(q->qdb, e, b, inserted, j);
	return j;
}

void
queue_cancel(struct queue_job *j)
{
	if (j != NULL)
		j->cancelled = 1;
}

struct admin_job {
	queue_done_cb	*done;
	void		*arg;
};

static void
admin_done(enum qdb_result r, const char *id, const struct envelope *env,
    void *arg)
{
	struct admin_job *a = arg;

	a->done(queue_result(r), id, a->arg);
	free(a);
}

int
queue_admin(struct queue *q, enum queue_admin op, const char *id,
    queue_done_cb *done, void *arg)
{
	struct admin_job *a;
	int rc;

	if (op == QUEUE_ADMIN_FLUSH) {
		if (sched_flush_id(q->sched, id) == -1)
			return -1;
		done(QUEUE_OK, id, arg);
		return 0;
	}
	a = xcalloc(1, sizeof(*a));
	a->done = done;
	a->arg = arg;
	if (op == QUEUE_ADMIN_DELETE)
		rc = sched_delete(q->sched, id, admin_done, a);
	else
		rc = sched_hold(q->sched, id, op == QUEUE_ADMIN_HOLD,
		    admin_done, a);
	if (rc == -1)
		free(a);
	return rc;
}

struct sched *
queue_sched(struct queue *q)
{
	return q->sched;
}
