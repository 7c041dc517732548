/*
 * sched: retry times, outcomes and expiry (sched.h).
 *
 * A one-second tick takes the due entries off a heap (earliest first;
 * nothing to do costs nothing): a due message is loaded from queue.db
 * and handed to whoever delivers (deliver.c, as main.c registers it),
 * one task per recipient domain whose primary is not down. When every
 * task is back, the outcome of each recipient goes to the writer in one
 * update (with a DSN for the bounced ones, in the same transaction); only
 * when that committed does the entry change or go. So a crash at any
 * point repeats at most an attempt (a duplicate), never loses a
 * recipient.
 */
#include "sched.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "config.h"
#include "dsn.h"
#include "health.h"
#include "history.h"
#include "learn.h"
#include "log.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

#define SCHED_ACTIVE_MAX	1000	/* attempts in flight at once */
/* Bodies the attempts in flight hold in memory, at most (one attempt
 * always starts): a drain of big messages behind a few connections
 * would otherwise load SCHED_ACTIVE_MAX of them, up to a GB at
 * queue_inline_max = 1M, while four are sent. */
#define SCHED_BODY_BUDGET	(64u << 20)
#define SCHED_REKEY_BATCH	4096	/* entries re-keyed per loop turn */
/* Due entries looked at per loop turn (kick_cb()); SCHED_START_BATCH of
 * them at most start an attempt (sched.h). */
#define SCHED_LOOK_BATCH	4096
#define SCHED_FLUSH_BATCH	4096	/* entries made due per loop turn */
#define SCHED_DB_RETRY		60	/* s after a failed load or commit */

#define NOT_DUE		SIZE_MAX	/* entry.hidx: not in the heap */

struct entry;

/* A domain with pending recipients in the queue. */
struct qdom {
	struct qdom	*hnext;		/* hash chain */
	struct dlink	*head, *tail;	/* its entries, in queued order */
	size_t		 n;
	size_t		 nheld;		/* of them on hold */
	/* A flush under way (flush_cb()): the next of its entries to make
	 * due, and its place in sched's list of domains being flushed. */
	struct dlink	*flushing;
	struct qdom	*fnext, **fprev;
	char		 name[256];	/* lower case */
};

/* One entry in one domain's list. */
struct dlink {
	struct dlink	*prev, *next;
	struct qdom	*d;
	struct entry	*e;
};

struct entry {
	struct entry	*prev, *next;	/* every entry */
	struct entry	*hnext;		/* hash chain, by id */
	size_t		 hidx;		/* in the due heap, or NOT_DUE */
	time_t		 due;		/* heap key: entry_due() */
	char		 id[ENVELOPE_ID_MAX];
	time_t		 arrival;
	time_t		 next_attempt;
	uint64_t	 size;		/* bytes, for the metrics */
	unsigned	 attempts;
	unsigned	 hold:1;
	unsigned	 busy:1;
	unsigned	 warned:1;
	unsigned	 is_dsn:1;
	unsigned	 gone:1;	/* deleted while busy */
	unsigned	 flushed:1;	/* flushed while busy: due at once */
	unsigned	 parked:1;	/* due, every primary down */
	struct dlink	**links;	/* pending recipients' domains */
	size_t		 nlinks;
};

struct attempt {
	struct attempt		*anext, *aprev;	/* sched's in-flight list */
	int			 committing;	/* handed to the writer */
	struct sched		*s;
	struct entry		*e;
	struct qdb_msg		 msg;
	char			 big_path[PATH_MAX + 100];
	struct sched_task	*tasks;
	size_t			 ntasks;
	size_t			 ndone;
	size_t			*idx;		/* per task: rcpt indexes */
	const struct qdb_rcpt	**rcptv;
	struct sched_result	*resv;
	int			 expired;
	int			 deleted;
	int			 warned;	/* this attempt sent the warning */
	struct timespec		 started;	/* for the metrics */
	uint64_t		 held;		/* its body's bytes, in s->held */
	struct qdb_update	*saved;		/* the outcome, until on disk */
	struct event		*retry;		/* its commit again (committed()) */
	unsigned		 retry_secs;	/* 1, 2, 4 ... SCHED_DB_RETRY */
};

struct sched {
	struct event_base	*base;
	const struct config	*conf;
	struct qdb		*qdb;
	sched_deliver_fn	*deliver;
	void			*deliver_owner;
	struct entry		*head;		/* every entry */
	struct entry		**ids;		/* by id */
	size_t			 nidbkt, nentries;
	uint64_t		 bytes;		/* of every entry's message */
	struct qdom		**doms;		/* by name */
	size_t			 ndombkt, ndoms;
	struct entry		**heap;		/* due first */
	size_t			 nheap, heapcap;
	struct primary_health	*health;	/* main.c's */
	struct event		*tick;		/* every second: the heap's top */
	/* "Look now" (flush, a finished attempt). Not the tick itself:
	 * activating a persistent timer by hand lost its timeout (libevent
	 * 2.1), and the queue stalled until some other event woke it. */
	struct event		*kick;
	size_t			 active;
	uint64_t		 held;		/* body bytes the attempts hold */
	int			 capped;	/* last pass hit SCHED_ACTIVE_MAX
						   or SCHED_BODY_BUDGET */
	struct attempt		*attempts;	/* in flight */
	struct learn		*learn;		/* NULL: nobody learns */
	/* The times the heap's keys were computed with, and the walk that
	 * re-keys every entry after a reload changed them (rekey_cb()). */
	unsigned		 keyed_lifetime, keyed_warning;
	struct entry		*rekey;		/* next to re-key; NULL: none */
	struct event		*rekey_ev;
	/* Flushes under way, SCHED_FLUSH_BATCH entries a loop turn
	 * (flush_cb()): domains with a cursor, and the walk of every entry
	 * (flush_all; NULL: none). */
	struct qdom		*flushq;
	struct entry		*flush_all;
	int			 flush_all_on;
	struct event		*flush_ev;
	size_t			 nheld;		/* entries on hold */
	size_t			 ngone;		/* deleted, not held, busy */
};

/* Run 'ev' again at the loop's next turn, after the I/O that is ready:
 * event_active() would run it in this same turn (libevent runs what
 * becomes active while it runs the active queue), and a walk in batches
 * would stall the loop all the same. */
static void
next_turn(struct event *ev)
{
	struct timeval zero = { 0, 0 };

	event_add(ev, &zero);
}

/* Look at what is due at the next turn (kick_cb()). Any number of kicks
 * in one turn make one look. Not again when one is pending: adding a
 * timer that is already active takes it off the active queue (libevent
 * 2.1), and a kick from every committed message would put the look off
 * turn after turn. */
static void
kick(struct sched *s)
{
	if (!event_pending(s->kick, EV_TIMEOUT, NULL))
		next_turn(s->kick);
}

unsigned
sched_backoff(unsigned attempts, unsigned min, unsigned max)
{
	unsigned long long d = min;

	if (attempts == 0)
		return 0;
	while (--attempts > 0 && d < max)
		d *= 2;
	return d > max ? max : (unsigned)d;
}

static void
lower(char *out, size_t outsz, const char *in)
{
	str_copy(out, outsz, in);
	str_lower(out);
}

/* --- entries ------------------------------------------------------------ */

/*
 * Every lookup here is O(1) or O(log n) in the number of queued messages
 * (issue 16: an ISP's backup MX holds a million): entries by id in a hash
 * table, per domain a list and a count kept as messages come and go, and
 * the entries waiting for a time in a heap keyed by the earliest thing due
 * (next attempt, delay warning, expiry). The one-second tick looks at the
 * heap's top only, so an idle queue costs nothing however large it is.
 */

static uint32_t
hash_str(const char *p)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

/* Double a chained table's buckets when it holds as many items as it has
 * buckets: chains stay about one long. (Two of them, typed: entries by
 * id, domains by name.) */
#define TABLE_GROW(fn, type, keyf)					\
static void								\
fn(type ***b, size_t *nb, size_t items)					\
{									\
	type **nbkt, *it, *next;					\
	size_t i, m;							\
									\
	if (items < *nb)						\
		return;							\
	m = *nb * 2;							\
	nbkt = xcalloc(m, sizeof(*nbkt));				\
	for (i = 0; i < *nb; i++)					\
		for (it = (*b)[i]; it != NULL; it = next) {		\
			size_t k = hash_str(it->keyf) & (m - 1);	\
									\
			next = it->hnext;				\
			it->hnext = nbkt[k];				\
			nbkt[k] = it;					\
		}							\
	free(*b);							\
	*b = nbkt;							\
	*nb = m;							\
}
TABLE_GROW(ids_grow, struct entry, id)
TABLE_GROW(doms_grow, struct qdom, name)

static struct qdom *
qdom_find(const struct sched *s, const char *lname)
{
	struct qdom *d;

	for (d = s->doms[hash_str(lname) & (s->ndombkt - 1)]; d != NULL;
	    d = d->hnext)
		if (strcmp(d->name, lname) == 0)
			return d;
	return NULL;
}

static struct qdom *
qdom_get(struct sched *s, const char *lname)
{
	struct qdom *d;
	size_t k;

	if ((d = qdom_find(s, lname)) != NULL)
		return d;
	doms_grow(&s->doms, &s->ndombkt, s->ndoms);
	d = xcalloc(1, sizeof(*d));
	str_copy(d->name, sizeof(d->name), lname);
	k = hash_str(lname) & (s->ndombkt - 1);
	d->hnext = s->doms[k];
	s->doms[k] = d;
	s->ndoms++;
	return d;
}

static void
flushq_remove(struct qdom *d)
{
	if (d->fnext != NULL)
		d->fnext->fprev = d->fprev;
	*d->fprev = d->fnext;
	d->fnext = NULL;
	d->fprev = NULL;
	d->flushing = NULL;
}

static void
qdom_free(struct sched *s, struct qdom *d)
{
	struct qdom **pp;

	for (pp = &s->doms[hash_str(d->name) & (s->ndombkt - 1)]; *pp != d;
	    pp = &(*pp)->hnext)
		;
	*pp = d->hnext;
	s->ndoms--;
	if (d->fprev != NULL)
		flushq_remove(d);
	free(d);
}

/* e joins its domain's list at the tail: the lists are in the order the
 * messages were queued (the startup scan goes oldest first), so a
 * domain's head is its oldest. */
static struct dlink *
dlink_new(struct sched *s, struct entry *e, const char *lname)
{
	struct dlink *l = xcalloc(1, sizeof(*l));
	struct qdom *d = qdom_get(s, lname);

	l->d = d;
	l->e = e;
	l->prev = d->tail;
	if (d->tail != NULL)
		d->tail->next = l;
	else
		d->head = l;
	d->tail = l;
	d->n++;
	if (e->hold)
		d->nheld++;
	return l;
}

static void
dlink_free(struct sched *s, struct dlink *l)
{
	struct qdom *d = l->d;

	if (d->flushing == l)
		d->flushing = l->next;
	if (l->e->hold)
		d->nheld--;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		d->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		d->tail = l->prev;
	free(l);
	if (--d->n == 0)
		qdom_free(s, d);
}

static void
entry_unlink_domains(struct sched *s, struct entry *e)
{
	size_t i;

	for (i = 0; i < e->nlinks; i++)
		if (e->links[i] != NULL)
			dlink_free(s, e->links[i]);
	free(e->links);
	e->links = NULL;
	e->nlinks = 0;
}

/* The distinct domains of addrs become e's. A domain it already had keeps
 * its place in that domain's list (the oldest stays the head). */
static void
entry_set_domains(struct sched *s, struct entry *e,
    const struct mailaddr *const *addrs, size_t n)
{
	struct dlink **nl;
	char d[256];
	size_t i, j, nn = 0;

	nl = xreallocarray(NULL, n ? n : 1, sizeof(*nl));
	for (i = 0; i < n; i++) {
		lower(d, sizeof(d), addrs[i]->domain);
		for (j = 0; j < nn; j++)
			if (strcmp(nl[j]->d->name, d) == 0)
				break;
		if (j < nn)
			continue;
		for (j = 0; j < e->nlinks; j++)
			if (e->links[j] != NULL &&
			    strcmp(e->links[j]->d->name, d) == 0)
				break;
		if (j < e->nlinks) {
			nl[nn++] = e->links[j];
			e->links[j] = NULL;
		} else
			nl[nn++] = dlink_new(s, e, d);
	}
	entry_unlink_domains(s, e);
	e->links = nl;
	e->nlinks = nn;
}

/* The domains of the recipients still pending. */
static void
entry_set_pending(struct sched *s, struct entry *e,
    const struct qdb_rcpt *rcpts, size_t n)
{
	const struct mailaddr **v;
	size_t i, k = 0;

	v = xreallocarray(NULL, n ? n : 1, sizeof(*v));
	for (i = 0; i < n; i++)
		if (rcpts[i].status == QDB_RCPT_PENDING)
			v[k++] = &rcpts[i].addr;
	entry_set_domains(s, e, v, k);
	free(v);
}

/* --- the due heap: entries not busy nor held, by their next time ------- */

static void
heap_set(struct sched *s, size_t i, struct entry *e)
{
	s->heap[i] = e;
	e->hidx = i;
}

static void
heap_up(struct sched *s, size_t i)
{
	struct entry *e = s->heap[i];

	while (i > 0 && s->heap[(i - 1) / 2]->due > e->due) {
		heap_set(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(s, i, e);
}

static void
heap_down(struct sched *s, size_t i)
{
	struct entry *e = s->heap[i];
	size_t c;

	while ((c = 2 * i + 1) < s->nheap) {
		if (c + 1 < s->nheap && s->heap[c + 1]->due < s->heap[c]->due)
			c++;
		if (s->heap[c]->due >= e->due)
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, e);
}

static void
heap_remove(struct sched *s, struct entry *e)
{
	size_t i = e->hidx;
	struct entry *last;

	if (i == NOT_DUE)
		return;
	e->hidx = NOT_DUE;
	last = s->heap[--s->nheap];
	if (last == e)
		return;
	heap_set(s, i, last);
	heap_up(s, i);
	heap_down(s, last->hidx);
}

/* When e next needs a look: its next attempt (not while every primary
 * of it is known down: the primary's return flushes it, sched_flush()),
 * the delay warning (warning_due()), its expiry. */
static time_t
entry_due(const struct sched *s, const struct entry *e)
{
	const struct config *c = s->conf;
	time_t t = e->arrival + (time_t)c->maximal_queue_lifetime;

	if (c->delay_warning_time > 0 && !e->warned && !e->is_dsn &&
	    e->arrival + (time_t)c->delay_warning_time < t)
		t = e->arrival + (time_t)c->delay_warning_time;
	if (!e->parked && e->next_attempt < t)
		t = e->next_attempt;
	return t;
}

/* After any change to e's times or flags: into, within or out of the
 * heap. */
static void
entry_schedule(struct sched *s, struct entry *e)
{
	if (e->busy || e->hold || e->gone) {
		heap_remove(s, e);
		return;
	}
	e->due = entry_due(s, e);
	if (e->hidx == NOT_DUE) {
		if (s->nheap == s->heapcap) {
			s->heapcap = s->heapcap ? s->heapcap * 2 : 1024;
			s->heap = xreallocarray(s->heap, s->heapcap,
			    sizeof(*s->heap));
		}
		heap_set(s, s->nheap++, e);
		heap_up(s, e->hidx);
	} else {
		heap_up(s, e->hidx);
		heap_down(s, e->hidx);
	}
}

static struct entry *
entry_new(struct sched *s, const char *id)
{
	struct entry *e = xcalloc(1, sizeof(*e));
	size_t k;

	str_copy(e->id, sizeof(e->id), id);
	e->hidx = NOT_DUE;
	e->next = s->head;
	if (s->head != NULL)
		s->head->prev = e;
	s->head = e;
	ids_grow(&s->ids, &s->nidbkt, s->nentries);
	k = hash_str(e->id) & (s->nidbkt - 1);
	e->hnext = s->ids[k];
	s->ids[k] = e;
	s->nentries++;
	return e;
}

static void
entry_free(struct sched *s, struct entry *e)
{
	struct entry **pp;

	heap_remove(s, e);
	for (pp = &s->ids[hash_str(e->id) & (s->nidbkt - 1)]; *pp != e;
	    pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	s->nentries--;
	s->bytes -= e->size;
	if (s->rekey == e)
		s->rekey = e->next;
	if (s->flush_all == e)
		s->flush_all = e->next;
	if (e->hold)
		s->nheld--;
	else if (e->gone)
		s->ngone--;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	entry_unlink_domains(s, e);
	free(e);
}

static struct entry *
entry_find(struct sched *s, const char *id)
{
	struct entry *e;

	for (e = s->ids[hash_str(id) & (s->nidbkt - 1)]; e != NULL;
	    e = e->hnext)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

void
sched_add_msg(struct sched *s, const struct qdb_msg *m)
{
	struct entry *e = entry_new(s, m->id);

	e->arrival = m->arrival;
	e->size = m->size;
	s->bytes += e->size;
	e->next_attempt = m->next_attempt;
	e->attempts = m->attempts;
	e->hold = m->hold != 0;
	s->nheld += e->hold;
	e->warned = m->warned != 0;
	e->is_dsn = m->is_dsn != 0;
	entry_set_pending(s, e, m->rcpts, m->nrcpt);
	entry_schedule(s, e);
}

void
sched_add_env(struct sched *s, const struct envelope *env)
{
	const struct mailaddr **v;
	struct entry *e = entry_new(s, env->id);
	size_t i;

	e->arrival = env->arrival;
	e->next_attempt = env->arrival;		/* try at once */
	e->is_dsn = env->sender.is_null && strcmp(env->proto, "DSN") == 0;
	v = xreallocarray(NULL, env->nrcpt ? env->nrcpt : 1, sizeof(*v));
	for (i = 0; i < env->nrcpt; i++)
		v[i] = &env->rcpts[i].addr;
	entry_set_domains(s, e, v, env->nrcpt);
	free(v);
	entry_schedule(s, e);
	kick(s);
}

/* The health of a domain's primary came back up: its queue drains now. */
static size_t
primary_back(const char *domain, void *arg)
{
	return sched_flush(arg, domain);
}

void
sched_domain_stats(const struct sched *s, const char *domain,
    size_t *queued, time_t *oldest)
{
	const struct qdom *d;
	char l[256];

	lower(l, sizeof(l), domain);
	d = qdom_find(s, l);
	*queued = d != NULL ? d->n : 0;
	*oldest = d != NULL ? d->head->e->arrival : 0;
}

size_t
sched_domain_ids(const struct sched *s, const char *domain, size_t offset,
    char (*ids)[ENVELOPE_ID_MAX], size_t max)
{
	const struct qdom *d;
	const struct dlink *l;
	char k[256];
	size_t n = 0;

	lower(k, sizeof(k), domain);
	if ((d = qdom_find(s, k)) == NULL)
		return 0;
	for (l = d->head; l != NULL && offset > 0; l = l->next)
		offset--;
	for (; l != NULL && n < max; l = l->next)
		str_copy(ids[n++], ENVELOPE_ID_MAX, l->e->id);
	return n;
}

void
sched_note_size(struct sched *s, const char *id, uint64_t size)
{
	struct entry *e = entry_find(s, id);

	if (e == NULL)
		return;
	s->bytes += size - e->size;
	e->size = size;
}

void
sched_totals(const struct sched *s, size_t *messages, uint64_t *bytes,
    time_t *oldest)
{
	const struct qdom *d;
	size_t i;

	*messages = s->nentries;
	*bytes = s->bytes;
	*oldest = 0;
	/* Each domain's list is in queued order: its head is its oldest. */
	for (i = 0; i < s->ndombkt; i++)
		for (d = s->doms[i]; d != NULL; d = d->hnext)
			if (d->head != NULL && (*oldest == 0 ||
			    d->head->e->arrival < *oldest))
				*oldest = d->head->e->arrival;
}

void
sched_set_learn(struct sched *s, struct learn *l)
{
	s->learn = l;
}

/* --- attempts ----------------------------------------------------------- */

static void
attempt_free(struct attempt *a)
{
	struct sched *s = a->s;

	if (a->aprev != NULL)
		a->aprev->anext = a->anext;
	else
		s->attempts = a->anext;
	if (a->anext != NULL)
		a->anext->aprev = a->aprev;
	if (a->retry != NULL)
		event_free(a->retry);
	s->held -= a->held;
	qdb_update_free(a->saved);
	free(a->tasks);
	free(a->idx);
	free(a->rcptv);
	free(a->resv);
	qdb_msg_free(&a->msg);
	free(a);
}

static const char *
status_word(enum qdb_rcpt_status st)
{
	return st == QDB_RCPT_SENT ? "sent" : st == QDB_RCPT_BOUNCED ?
	    "bounced" : "deferred";
}

static void	committed(enum qdb_result, const char *,
		    const struct envelope *, void *);

/* The outcome a failed commit rolled back, submitted again as it was. */
static void
commit_again(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;

	(void)fd;
	(void)what;
	qdb_update(a->s->qdb, qdb_update_copy(a->saved), committed, a);
}

/* The attempt's update is back from the writer; 'dsn' is the DSN it
 * carried, if any. */
static void
committed(enum qdb_result r, const char *id, const struct envelope *dsn,
    void *arg)
{
	struct attempt *a = arg;
	struct sched *s = a->s;
	struct entry *e = a->e;
	int freed = 0;

	if (r != QDB_OK && r != QDB_NOTFOUND && !e->gone) {
		/* What the primary answered is known but not on disk. A
		 * new attempt would deliver again all that the primary
		 * took (a disk full for an hour: every message, once a
		 * minute): the outcome is kept and only its commit is
		 * tried again. The message stays busy and keeps its
		 * slot, so a failing disk also stops new deliveries at
		 * SCHED_ACTIVE_MAX; only its body is let go. A stop in
		 * between loses the outcome: one delivery again at the
		 * next start, as after a crash (docs/queue.md). A commit
		 * is cheap: tried again after 1 s, doubling to
		 * SCHED_DB_RETRY. */
		struct timeval tv = { 0, 0 };

		a->retry_secs = a->retry_secs == 0 ? 1 :
		    a->retry_secs * 2 > SCHED_DB_RETRY ? SCHED_DB_RETRY :
		    a->retry_secs * 2;
		tv.tv_sec = a->retry_secs;
		log_err("queue=%s event=outcome_not_saved error=%s retry=%us",
		    e->id, r == QDB_NOSPACE ? "nospace" : "ioerr",
		    a->retry_secs);
		free(a->msg.body);
		a->msg.body = NULL;
		a->msg.bodylen = 0;
		s->held -= a->held;
		a->held = 0;
		if (a->retry == NULL)
			a->retry = evtimer_new(s->base, commit_again, a);
		evtimer_add(a->retry, &tv);
		return;
	}
	s->active--;
	e->busy = 0;
	/* A pass stopped at SCHED_ACTIVE_MAX or SCHED_BODY_BUDGET: go on
	 * once half of it is free again, not at the next one-second tick
	 * (a drain of 10,000 messages would take ten ticks). */
	if (e->flushed || (s->capped && s->active <= SCHED_ACTIVE_MAX / 2 &&
	    s->held - a->held <= SCHED_BODY_BUDGET / 2)) {
		s->capped = 0;
		kick(s);
	}
	if (r == QDB_NOTFOUND || e->gone || (r == QDB_OK && a->deleted)) {
		if (r == QDB_OK && a->deleted)
			log_info("queue=%s event=removed", e->id);
		entry_free(s, e);
		freed = 1;
	} else {
		if (a->warned)
			e->warned = 1;
		e->attempts = a->msg.attempts + 1;
		e->next_attempt = time(NULL) + (time_t)sched_backoff(
		    e->attempts, s->conf->minimal_backoff_time,
		    s->conf->maximal_backoff_time);
		if (e->flushed)
			e->next_attempt = time(NULL);
		entry_set_pending(s, e, a->msg.rcpts, a->msg.nrcpt);
	}
	if (!freed) {
		e->parked = 0;
		entry_schedule(s, e);
	}
	if (r == QDB_OK && dsn != NULL) {
		log_info("queue=%s event=dsn_queued dsn=%s", id, dsn->id);
		sched_add_env(s, dsn);
	}
	attempt_free(a);
}

/* Read the start of the body, for the DSN's original headers. */
static size_t
read_head(struct attempt *a, char *buf, size_t bufsz)
{
	FILE *f;
	size_t n;

	if (a->msg.big[0] == '\0') {
		if (a->msg.body == NULL)
			return 0;	/* unreadable (attempt_start()) */
		n = a->msg.bodylen < bufsz ? a->msg.bodylen : bufsz;
		memcpy(buf, a->msg.body, n);
		return n;
	}
	if ((f = fopen(a->big_path, "rb")) == NULL)
		return 0;
	n = fread(buf, 1, bufsz, f);
	fclose(f);
	return n;
}

/* --- what an attempt's outcome means (pure) ----------------------------- */

enum qdb_rcpt_status
sched_rcpt_status(int code)
{
	if (code / 100 == 2)
		return QDB_RCPT_SENT;
	if (code / 100 == 5)
		return QDB_RCPT_BOUNCED;
	return QDB_RCPT_PENDING;	/* 4xx, or 0: a connection problem */
}

void
sched_outcome(const struct sched_rules *rules, struct qdb_msg *m,
    const size_t *idx, const struct sched_result *res, size_t n, time_t now,
    struct sched_outcome *o)
{
	size_t i;

	o->expired = now >= m->arrival + (time_t)rules->maximal_queue_lifetime;
	o->delayed = o->deleted = 0;
	o->pending = o->nnotice = 0;
	o->first_defer = NULL;
	for (i = 0; i < m->nrcpt; i++)
		o->kind[i] = SCHED_UNTOUCHED;
	/* What the primary said, recipient by recipient. */
	for (i = 0; i < n; i++) {
		struct qdb_rcpt *r = &m->rcpts[idx[i]];
		enum qdb_rcpt_status st = sched_rcpt_status(res[i].code);

		if (st == QDB_RCPT_PENDING && o->first_defer == NULL)
			o->first_defer = res[i].text;
		r->status = st;
		r->last_code = res[i].code;
		str_copy(r->last_reply, sizeof(r->last_reply), res[i].text);
		o->kind[idx[i]] = SCHED_TRIED;
		if (st == QDB_RCPT_BOUNCED) {
			o->notice[o->nnotice].idx = idx[i];
			o->notice[o->nnotice].code = res[i].code;
			o->notice[o->nnotice].answered = 1;
			o->nnotice++;
		}
	}
	/* maximal_queue_lifetime: whatever is still pending bounces now,
	 * with its last error. */
	for (i = 0; i < m->nrcpt; i++) {
		struct qdb_rcpt *r = &m->rcpts[i];
		char text[QDB_TEXT_MAX];

		if (r->status != QDB_RCPT_PENDING)
			continue;
		if (!o->expired) {
			o->pending++;
			continue;
		}
		if (r->last_reply[0] == '\0')
			str_copy(r->last_reply, sizeof(r->last_reply),
			    "451 4.4.7 message expired in the queue");
		snprintf(text, sizeof(text), "4.4.7 message expired after %u s "
		    "in the queue; last error: %.400s",
		    rules->maximal_queue_lifetime, r->last_reply);
		str_copy(r->last_reply, sizeof(r->last_reply), text);
		r->status = QDB_RCPT_BOUNCED;
		o->kind[i] = SCHED_EXPIRED;
		o->notice[o->nnotice].idx = i;
		o->notice[o->nnotice].code = r->last_code ? r->last_code : 451;
		o->notice[o->nnotice].answered = 0;
		o->nnotice++;
	}
	/*
	 * delay_warning_time: once per message, a "delayed" DSN (RFC 3464
	 * Action: delayed) about the recipients still waiting. Not in an
	 * attempt that bounces some (one notification per update); the
	 * next attempt warns then.
	 */
	if (o->nnotice == 0 && o->pending > 0 && rules->delay_warning_time > 0 &&
	    !m->warned && now >= m->arrival + (time_t)rules->delay_warning_time) {
		for (i = 0; i < m->nrcpt; i++) {
			const struct qdb_rcpt *r = &m->rcpts[i];

			if (r->status != QDB_RCPT_PENDING)
				continue;
			o->notice[o->nnotice].idx = i;
			o->notice[o->nnotice].code = r->last_code ?
			    r->last_code : 451;
			o->notice[o->nnotice].answered = 0;
			o->nnotice++;
		}
		o->delayed = 1;
	}
	o->deleted = o->pending == 0;
	o->next_attempt = now + (time_t)sched_backoff(m->attempts + 1,
	    rules->minimal_backoff_time, rules->maximal_backoff_time);
}

/* --- attempts, continued ------------------------------------------------- */

/* Every task is back: decide (sched_outcome), commit the outcome, then
 * (committed()) act on it. */
static void
attempt_finish(struct attempt *a)
{
	struct sched *s = a->s;
	const struct config *conf = s->conf;
	struct qdb_update *u = qdb_update_new(a->msg.id);
	struct sched_rules rules;
	struct sched_outcome o;
	struct dsn_rcpt *dr;
	const char **relay;
	size_t i, t, k;
	time_t now = time(NULL);
	char addr[ADDR_PATH_MAX + 1], la[LOG_PATH_SIZE];
	char lr[LOG_VALUE_SIZE(QDB_TEXT_MAX)];

	rules.maximal_queue_lifetime = conf->maximal_queue_lifetime;
	rules.delay_warning_time = conf->delay_warning_time;
	rules.minimal_backoff_time = conf->minimal_backoff_time;
	rules.maximal_backoff_time = conf->maximal_backoff_time;
	k = a->msg.nrcpt ? a->msg.nrcpt : 1;
	o.kind = xreallocarray(NULL, k, sizeof(*o.kind));
	o.notice = xreallocarray(NULL, k, sizeof(*o.notice));
	dr = xreallocarray(NULL, k, sizeof(*dr));
	relay = xcalloc(k, sizeof(*relay));
	for (t = 0, k = 0; t < a->ntasks; t++)
		for (i = 0; i < a->tasks[t].nrcpt; i++, k++)
			relay[a->idx[k]] = a->tasks[t].relay;
	sched_outcome(&rules, &a->msg, a->idx, a->resv, k, now, &o);
	if (a->ntasks > 0)
		stats_observe(HIST_DELIVERY, stats_since(&a->started));
	a->expired = o.expired;

	/* The log and the rows, in the order the tasks answered. */
	for (t = 0, k = 0; t < a->ntasks; t++) {
		const struct sched_task *tk = &a->tasks[t];

		for (i = 0; i < tk->nrcpt; i++, k++) {
			const struct qdb_rcpt *r = &a->msg.rcpts[a->idx[k]];
			const struct sched_result *res = &tk->res[i];
			enum qdb_rcpt_status st = sched_rcpt_status(res->code);

			qdb_update_rcpt(u, a->idx[k], st, res->code, res->text);
			stats_inc(st == QDB_RCPT_SENT ? STAT_DELIVERY_SENT :
			    st == QDB_RCPT_BOUNCED ? STAT_DELIVERY_BOUNCED :
			    STAT_DELIVERY_DEFERRED);
			addr_format(&r->addr, addr, sizeof(addr));
			log_info("queue=%s event=delivery to=%s relay=%s "
			    "delay=%lld attempt=%u status=%s reply=%s",
			    a->msg.id, log_path(la, sizeof(la), addr),
			    tk->relay[0] ? tk->relay : "none",
			    (long long)(now - a->msg.arrival),
			    a->msg.attempts + 1, status_word(st),
			    log_value(lr, sizeof(lr), res->text,
			    strlen(res->text)));
		}
	}
	for (i = 0; i < a->msg.nrcpt; i++) {
		const struct qdb_rcpt *r = &a->msg.rcpts[i];

		if (o.kind[i] != SCHED_EXPIRED)
			continue;
		qdb_update_rcpt(u, i, QDB_RCPT_BOUNCED, r->last_code,
		    r->last_reply);
		stats_inc(STAT_DELIVERY_EXPIRED);
		addr_format(&r->addr, addr, sizeof(addr));
		log_info("queue=%s event=expired to=%s status=bounced "
		    "reply=%s", a->msg.id, log_path(la, sizeof(la), addr),
		    log_value(lr, sizeof(lr), r->last_reply,
		    strlen(r->last_reply)));
	}
	if (o.delayed) {
		a->warned = 1;
		u->set |= QDB_SET_WARNED;
		u->warned = 1;
		log_info("queue=%s event=delay_warning nrcpt=%zu", a->msg.id,
		    o.nnotice);
	}
	if (o.nnotice > 0) {
		char head[DSN_HEADERS_MAX];
		size_t hl = read_head(a, head, sizeof(head));
		struct envelope *env = xcalloc(1, sizeof(*env));

		for (i = 0; i < o.nnotice; i++) {
			size_t x = o.notice[i].idx;

			dr[i].rcpt = &a->msg.rcpts[x];
			dr[i].code = o.notice[i].code;
			dr[i].text = a->msg.rcpts[x].last_reply;
			dr[i].relay = o.notice[i].answered && relay[x] != NULL ?
			    relay[x] : "";
		}
		if (dsn_build(&a->msg, dr, o.nnotice, o.delayed, head, hl,
		    conf->myhostname, now, env, &u->dsn_body,
		    &u->dsn_bodylen) == 0)
			u->dsn_env = env;
		else
			free(env);
	}

	u->set |= QDB_SET_ATTEMPT;
	u->attempts = a->msg.attempts + 1;
	u->last_attempt = now;
	u->next_attempt = o.next_attempt;
	str_copy(u->last_error, sizeof(u->last_error),
	    o.first_defer ? o.first_defer : "");
	str_copy(u->relay, sizeof(u->relay), a->ntasks ? a->tasks[0].relay :
	    "");
	if (o.deleted) {
		u->set |= QDB_DELETE;
		a->deleted = 1;
	}
	free(o.kind);
	free(o.notice);
	free(dr);
	free(relay);
	a->committing = 1;
	a->saved = qdb_update_copy(u);
	qdb_update(s->qdb, u, committed, a);
}

/*
 * What the primary's answers teach (learn.h): only from a primary that
 * greeted us, so that a lookup's or our own synthesized answer never
 * marks an address.
 */
static void
learn_outcomes(struct sched *s, const struct sched_task *t)
{
	char key[STATE_ADDR_MAX], enh[16];
	const char *p;
	size_t i, n;

	if (s->learn == NULL)
		return;
	for (i = 0; i < t->nrcpt; i++) {
		/* "550 5.1.1 text": the enhanced code after the code. */
		enh[0] = '\0';
		p = t->res[i].text;
		if (strlen(p) > 4 && p[3] == ' ') {
			n = strcspn(p + 4, " ");
			if (n < sizeof(enh) && n > 0 && p[4] >= '2' &&
			    p[4] <= '5' && p[5] == '.') {
				memcpy(enh, p + 4, n);
				enh[n] = '\0';
			}
		}
		learn_key(key, sizeof(key), t->rcpts[i]->addr.local,
		    t->rcpts[i]->addr.domain);
		learn_rcpt_answer(s->learn, key, t->res[i].code, enh,
		    t->res[i].text, STATE_SRC_DELIVERY, time(NULL));
	}
}

/* The attempt's outcome in the domain's recent history (history.h),
 * for the dashboard: counts, and the first answer. */
static void
history_task(struct sched *s, const struct sched_task *t)
{
	size_t i, n[3] = { 0, 0, 0 };

	for (i = 0; i < t->nrcpt; i++)
		n[sched_rcpt_status(t->res[i].code)]++;
	history_outcome(primary_health_history(s->health), t->domain,
	    t->msg->id, n[QDB_RCPT_SENT], n[QDB_RCPT_PENDING],
	    n[QDB_RCPT_BOUNCED], t->nrcpt ? t->res[0].code : 0,
	    t->nrcpt ? t->res[0].text : "", time(NULL));
}

static void
task_done(struct sched_task *t, void *arg)
{
	struct attempt *a = arg;
	struct sched *s = a->s;

	/* A DSN's domain is nobody's primary: no health record (probed
	 * every primary_probe_interval for good once down), no learned
	 * recipients, no domain row, no history; only its own backoff. */
	if (t->customer) {
		history_task(s, t);
		if (t->conn_failed)
			primary_health_failed(s->health, t->domain,
			    t->nrcpt ? t->res[0].text : "", 0);
		else if (t->reached) {
			primary_health_ok(s->health, t->domain);
			learn_outcomes(s, t);
		}
	}
	if (++a->ndone == a->ntasks)
		attempt_finish(a);
}

/* Load and hand to the deliverer; or finish at once when nothing is to send
 * (expired with every primary down). */
static void
attempt_start(struct sched *s, struct entry *e, time_t now)
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	size_t i, j, k, n;
	int rc, unreadable = 0;

	a->s = s;
	a->e = e;
	a->anext = s->attempts;
	if (s->attempts != NULL)
		s->attempts->aprev = a;
	s->attempts = a;
	/* A body that cannot be read (a damaged body log): tried again
	 * every SCHED_DB_RETRY, as a disk may come back, but past the
	 * lifetime the message expires without it, its DSN quoting no
	 * header. It waited for good before, and its sender never knew. */
	if ((rc = qdb_load(s->qdb, e->id, 1, &a->msg)) == -1 &&
	    now >= e->arrival + (time_t)s->conf->maximal_queue_lifetime &&
	    qdb_load(s->qdb, e->id, 0, &a->msg) == 0) {
		log_err("queue=%s event=load_failed action=expire", e->id);
		rc = 0;
		unreadable = 1;
	}
	if (rc != 0) {
		if (rc == 1) {
			entry_free(s, e);
		} else {
			log_err("queue=%s event=load_failed", e->id);
			e->next_attempt = now + SCHED_DB_RETRY;
			e->parked = 0;
			entry_schedule(s, e);
		}
		attempt_free(a);
		return;
	}
	if (a->msg.big[0] != '\0')
		qdb_big_path(s->qdb, a->msg.big, a->big_path,
		    sizeof(a->big_path));
	a->held = a->msg.bodylen;
	s->held += a->held;
	e->busy = 1;
	e->flushed = 0;
	heap_remove(s, e);
	s->active++;

	a->idx = xreallocarray(NULL, a->msg.nrcpt + 1, sizeof(*a->idx));
	a->rcptv = xreallocarray(NULL, a->msg.nrcpt + 1, sizeof(*a->rcptv));
	a->resv = xcalloc(a->msg.nrcpt + 1, sizeof(*a->resv));
	a->tasks = xcalloc(e->nlinks + 1, sizeof(*a->tasks));
	k = 0;
	for (j = 0; j < e->nlinks && !unreadable; j++) {
		struct sched_task *t = &a->tasks[a->ntasks];
		const char *dom = e->links[j]->d->name;

		if (!primary_health_up(s->health, dom))
			continue;	/* the probe will drain it */
		n = 0;
		for (i = 0; i < a->msg.nrcpt; i++) {
			if (a->msg.rcpts[i].status != QDB_RCPT_PENDING ||
			    strcasecmp(a->msg.rcpts[i].addr.domain, dom) != 0)
				continue;
			a->idx[k + n] = i;
			a->rcptv[k + n] = &a->msg.rcpts[i];
			n++;
		}
		if (n == 0)
			continue;
		t->msg = &a->msg;
		t->body_path = a->big_path[0] ? a->big_path : NULL;
		str_copy(t->domain, sizeof(t->domain), dom);
		t->rcpts = &a->rcptv[k];
		t->res = &a->resv[k];
		t->nrcpt = n;
		k += n;
		a->ntasks++;
	}
	if (a->ntasks == 0) {
		/* Nothing reachable: only expiry can happen now. */
		attempt_finish(a);
		return;
	}
	n = a->ntasks;
	stats_start(&a->started);
	for (j = 0; j < n; j++)
		s->deliver(s->deliver_owner, &a->tasks[j], task_done, a);
}

static int
all_down(const struct sched *s, const struct entry *e)
{
	size_t i;

	for (i = 0; i < e->nlinks; i++)
		if (primary_health_up(s->health, e->links[i]->d->name))
			return 0;
	return e->nlinks > 0;
}

/* delay_warning_time passed and the sender was not told yet. */
static int
warning_due(const struct sched *s, const struct entry *e, time_t now)
{
	return s->conf->delay_warning_time > 0 && !e->warned && !e->is_dsn &&
	    now >= e->arrival + (time_t)s->conf->delay_warning_time;
}

/*
 * A reload changed maximal_queue_lifetime or delay_warning_time: every
 * heap key holds the old expiry or warning time, and a parked entry has
 * nothing else that would bring it up before then (a shorter lifetime
 * would wait for the old one). Re-key them all, SCHED_REKEY_BATCH a loop
 * turn, so a million queued messages never stall the loop
 * (docs/queue.md "Reload"). Keys from before are harmless meanwhile: an
 * early one is put right when it comes up (kick_cb()), a late one when
 * the walk reaches it. New entries are keyed with the new times.
 */
static void
rekey_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct entry *e;
	size_t n;

	(void)fd;
	(void)what;
	for (n = 0; n < SCHED_REKEY_BATCH && (e = s->rekey) != NULL; n++) {
		s->rekey = e->next;
		if (e->hidx != NOT_DUE)
			entry_schedule(s, e);
	}
	if (s->rekey != NULL)
		next_turn(s->rekey_ev);
	else
		kick(s);	/* what is due now */
}

/* The configuration is read in place (main.c copies a reload over it):
 * a change of the times the keys hold shows here, at the next tick. */
static void
rekey_check(struct sched *s)
{
	if (s->conf->maximal_queue_lifetime == s->keyed_lifetime &&
	    s->conf->delay_warning_time == s->keyed_warning)
		return;
	s->keyed_lifetime = s->conf->maximal_queue_lifetime;
	s->keyed_warning = s->conf->delay_warning_time;
	log_info("event=queue_rekey messages=%zu lifetime=%u "
	    "delay_warning=%u", s->nentries, s->keyed_lifetime,
	    s->keyed_warning);
	/* A walk under way starts again: it may have passed entries. */
	s->rekey = s->head;
	if (s->rekey != NULL)
		next_turn(s->rekey_ev);
}

/*
 * What is due comes off the heap's top, earliest first: O(log n) per due
 * entry, nothing for the rest. A due entry whose primaries are all down
 * is parked (only its warning or expiry keeps a time) until one comes
 * back: primary_back() flushes its domain. At most SCHED_START_BATCH
 * attempts start, SCHED_LOOK_BATCH entries are looked at, in one turn;
 * the rest at the next, after the loop's other I/O (a big drain stalled
 * every session otherwise: docs/queue.md "Draining a big queue").
 */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct entry *e;
	time_t now = time(NULL);
	size_t started = 0, looked = 0;

	(void)fd;
	(void)what;
	if (s->deliver == NULL)
		return;			/* nobody to deliver yet */
	rekey_check(s);
	while (s->nheap > 0 && (e = s->heap[0])->due <= now) {
		if (s->active >= SCHED_ACTIVE_MAX ||
		    (s->active > 0 && s->held >= SCHED_BODY_BUDGET)) {
			s->capped = 1;
			return;
		}
		if (started == SCHED_START_BATCH || looked == SCHED_LOOK_BATCH) {
			kick(s);
			return;
		}
		looked++;
		if (now >= e->arrival + (time_t)s->conf->maximal_queue_lifetime)
			attempt_start(s, e, now);	/* expires it */
		else if (warning_due(s, e, now))
			attempt_start(s, e, now);	/* warns, even if down */
		else if (e->next_attempt <= now && !e->parked && !all_down(s, e))
			attempt_start(s, e, now);
		else {
			if (e->next_attempt <= now)
				e->parked = 1;
			entry_schedule(s, e);
			/* A key from before a reload's new times: next tick. */
			if (e->due <= now)
				return;
			continue;
		}
		started++;
	}
}

/* The one-second timer: what came due meanwhile. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	kick(arg);
}

/* Due now (or as soon as its attempt in flight ends). */
static void
entry_flush(struct sched *s, struct entry *e, time_t now)
{
	if (e->hold || e->gone)
		return;
	if (e->next_attempt > now)
		e->next_attempt = now;
	e->parked = 0;
	/* An attempt in flight would set its own next time when it ends:
	 * this flush wins over that. */
	if (e->busy)
		e->flushed = 1;
	else
		entry_schedule(s, e);
}

/*
 * The flushes under way, SCHED_FLUSH_BATCH entries a loop turn: a big
 * domain's return made 200,000 messages due in one callback before
 * (docs/queue.md "Draining a big queue"). What is made due starts as
 * kick_cb() gets to it; what is queued meanwhile is due at once anyway,
 * and what leaves the queue moves the cursors on (dlink_free(),
 * entry_free()).
 */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct entry *e;
	struct qdom *d;
	struct dlink *l;
	time_t now = time(NULL);
	size_t n = 0;

	(void)fd;
	(void)what;
	while (n < SCHED_FLUSH_BATCH && s->flush_all_on) {
		if ((e = s->flush_all) == NULL) {
			s->flush_all_on = 0;
			break;
		}
		s->flush_all = e->next;
		entry_flush(s, e, now);
		n++;
	}
	while (n < SCHED_FLUSH_BATCH && (d = s->flushq) != NULL) {
		if ((l = d->flushing) == NULL) {
			flushq_remove(d);
			continue;
		}
		d->flushing = l->next;
		entry_flush(s, l->e, now);
		n++;
	}
	if (s->flush_all_on || s->flushq != NULL)
		next_turn(s->flush_ev);
	kick(s);
}

/* Start (or start again from the top) the flush of a domain, or of every
 * entry; returns how many it will make due. */
size_t
sched_flush(struct sched *s, const char *domain)
{
	struct qdom *d;
	size_t n = 0;
	char ld[256];

	if (domain == NULL) {
		s->flush_all = s->head;
		s->flush_all_on = 1;
		n = s->nentries - s->nheld - s->ngone;
	} else {
		lower(ld, sizeof(ld), domain);
		if ((d = qdom_find(s, ld)) != NULL) {
			if (d->fprev == NULL) {
				d->fnext = s->flushq;
				if (s->flushq != NULL)
					s->flushq->fprev = &d->fnext;
				d->fprev = &s->flushq;
				s->flushq = d;
			}
			d->flushing = d->head;
			n = d->n - d->nheld;
		}
		/* An operator's or ETRN's flush is worth a probe now. */
		primary_health_probe_soon(s->health, domain);
	}
	if (!event_pending(s->flush_ev, EV_TIMEOUT, NULL))
		next_turn(s->flush_ev);
	return n;
}

int
sched_flush_id(struct sched *s, const char *id)
{
	struct entry *e = entry_find(s, id);

	if (e == NULL)
		return -1;
	e->next_attempt = time(NULL);
	e->parked = 0;
	entry_schedule(s, e);
	kick(s);
	return 0;
}

int
sched_has_domain(const struct sched *s, const char *domain)
{
	char ld[256];

	lower(ld, sizeof(ld), domain);
	return qdom_find(s, ld) != NULL;
}

int
sched_hold(struct sched *s, const char *id, int hold, qdb_done_cb *done,
    void *arg)
{
	struct entry *e = entry_find(s, id);
	struct qdb_update *u;
	size_t i;

	if (e == NULL || e->gone)
		return -1;
	if (e->hold != (hold != 0)) {
		for (i = 0; i < e->nlinks; i++)
			if (hold)
				e->links[i]->d->nheld++;
			else
				e->links[i]->d->nheld--;
		if (hold)
			s->nheld++;
		else
			s->nheld--;
	}
	e->hold = hold != 0;
	u = qdb_update_new(id);
	u->set = QDB_SET_HOLD;
	u->hold = hold != 0;
	if (!hold) {
		u->set |= QDB_SET_NEXT;
		u->next_attempt = e->next_attempt = time(NULL);
		e->parked = 0;
	}
	entry_schedule(s, e);
	qdb_update(s->qdb, u, done, arg);
	return 0;
}

int
sched_delete(struct sched *s, const char *id, qdb_done_cb *done, void *arg)
{
	struct entry *e = entry_find(s, id);
	struct qdb_update *u;

	if (e == NULL)
		return -1;
	u = qdb_update_new(id);
	u->set = QDB_DELETE;
	qdb_update(s->qdb, u, done, arg);
	log_info("queue=%s event=deleted by=operator", id);
	if (e->busy) {
		if (!e->gone && !e->hold)
			s->ngone++;
		e->gone = 1;	/* the attempt's update finds no row */
		entry_unlink_domains(s, e);	/* counted no more */
	} else
		entry_free(s, e);
	return 0;
}

struct sched *
sched_new(struct event_base *base, const struct config *conf, struct qdb *q,
    struct primary_health *h)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	struct timeval one = { 1, 0 };

	s->base = base;
	s->conf = conf;
	s->qdb = q;
	s->health = h;
	s->nidbkt = 1024;
	s->ids = xcalloc(s->nidbkt, sizeof(*s->ids));
	s->ndombkt = 256;
	s->doms = xcalloc(s->ndombkt, sizeof(*s->doms));
	primary_health_on_up(h, primary_back, s);
	s->tick = event_new(base, -1, EV_PERSIST, tick_cb, s);
	event_add(s->tick, &one);
	s->kick = event_new(base, -1, 0, kick_cb, s);
	s->rekey_ev = event_new(base, -1, 0, rekey_cb, s);
	s->flush_ev = event_new(base, -1, 0, flush_cb, s);
	s->keyed_lifetime = conf->maximal_queue_lifetime;
	s->keyed_warning = conf->delay_warning_time;
	return s;
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	event_free(s->tick);
	event_free(s->kick);
	event_free(s->rekey_ev);
	event_free(s->flush_ev);
	/* Attempts still waiting for the deliverer (freed before us) end here;
	 * those handed to the writer ended in qdb_close(). */
	while (s->attempts != NULL)
		attempt_free(s->attempts);
	while (s->head != NULL)
		entry_free(s, s->head);
	free(s->ids);
	free(s->doms);
	free(s->heap);
	primary_health_on_up(s->health, NULL, NULL);
	free(s);
}

void
sched_set_deliver(struct sched *s, sched_deliver_fn *fn, void *owner)
{
	s->deliver = fn;
	s->deliver_owner = owner;
	kick(s);
}

struct primary_health *
sched_health(const struct sched *s)
{
	return s->health;
}
