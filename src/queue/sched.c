/*
 * sched: retry times, outcomes, expiry and primary health (sched.h).
 *
 * A one-second tick walks the entries: a due message not already in an
 * attempt is loaded from queue.db and handed to deliver.c, one task per
 * recipient domain whose primary is not down. When every task is back,
 * the outcome of each recipient goes to the writer in one update (with a
 * DSN for the bounced ones, in the same transaction); only when that
 * committed does the entry change or go. So a crash at any point repeats
 * at most an attempt (a duplicate), never loses a recipient.
 *
 * XXX: the tick is O(queued messages) per second; fine for the tens of
 * thousands a backup MX holds, a heap when it must be more.
 */
#include "sched.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "deliver.h"
#include "dsn.h"
#include "learn.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

#define SCHED_ACTIVE_MAX	1000	/* attempts in flight at once */
#define SCHED_DB_RETRY		60	/* s after a failed load or commit */

struct entry {
	struct entry	*prev, *next;
	char		 id[ENVELOPE_ID_MAX];
	time_t		 arrival;
	time_t		 next_attempt;
	unsigned	 attempts;
	unsigned	 hold:1;
	unsigned	 busy:1;
	unsigned	 warned:1;
	unsigned	 is_dsn:1;
	unsigned	 gone:1;	/* deleted while busy */
	unsigned	 flushed:1;	/* flushed while busy: due at once */
	char		**domains;	/* pending recipients' domains */
	size_t		 ndomains;
};

struct health {
	struct health	*next;
	char		 domain[256];
	int		 down;
	unsigned	 failures;
	time_t		 next_probe;
	int		 probing;
};

struct attempt {
	struct attempt		*anext, *aprev;	/* sched's in-flight list */
	int			 committing;	/* handed to the writer */
	struct sched		*s;
	struct entry		*e;
	struct qdb_msg		 msg;
	char			 big_path[PATH_MAX + 100];
	struct deliver_task	*tasks;
	size_t			 ntasks;
	size_t			 ndone;
	size_t			*idx;		/* per task: rcpt indexes */
	const struct qdb_rcpt	**rcptv;
	struct client_result	*resv;
	int			 expired;
	int			 deleted;
	int			 warned;	/* this attempt sent the warning */
};

struct sched {
	struct event_base	*base;
	const struct config	*conf;
	struct qdb		*qdb;
	struct deliver		*deliver;
	struct entry		*head;
	struct health		*health;
	struct event		*tick;		/* every second */
	/* "Look now" (flush, a finished attempt). Not the tick itself:
	 * activating a persistent timer by hand lost its timeout (libevent
	 * 2.1), and the queue stalled until some other event woke it. */
	struct event		*kick;
	size_t			 active;
	int			 capped;	/* last pass hit SCHED_ACTIVE_MAX */
	struct attempt		*attempts;	/* in flight */
	struct learn		*learn;		/* NULL: nobody learns */
};

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

static void
entry_set_domains(struct entry *e, const struct mailaddr *const *addrs,
    size_t n)
{
	char d[256];
	size_t i, j;

	for (i = 0; i < e->ndomains; i++)
		free(e->domains[i]);
	free(e->domains);
	e->domains = NULL;
	e->ndomains = 0;
	for (i = 0; i < n; i++) {
		lower(d, sizeof(d), addrs[i]->domain);
		for (j = 0; j < e->ndomains; j++)
			if (strcmp(e->domains[j], d) == 0)
				break;
		if (j < e->ndomains)
			continue;
		e->domains = xreallocarray(e->domains, e->ndomains + 1,
		    sizeof(*e->domains));
		e->domains[e->ndomains++] = xstrdup(d);
	}
}

/* The domains of the recipients still pending. */
static void
entry_set_pending(struct entry *e, const struct qdb_rcpt *rcpts, size_t n)
{
	const struct mailaddr **v;
	size_t i, k = 0;

	v = xreallocarray(NULL, n ? n : 1, sizeof(*v));
	for (i = 0; i < n; i++)
		if (rcpts[i].status == QDB_RCPT_PENDING)
			v[k++] = &rcpts[i].addr;
	entry_set_domains(e, v, k);
	free(v);
}

static struct entry *
entry_new(struct sched *s, const char *id)
{
	struct entry *e = xcalloc(1, sizeof(*e));

	str_copy(e->id, sizeof(e->id), id);
	e->next = s->head;
	if (s->head != NULL)
		s->head->prev = e;
	s->head = e;
	return e;
}

static void
entry_free(struct sched *s, struct entry *e)
{
	size_t i;

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	for (i = 0; i < e->ndomains; i++)
		free(e->domains[i]);
	free(e->domains);
	free(e);
}

static struct entry *
entry_find(struct sched *s, const char *id)
{
	struct entry *e;

	for (e = s->head; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static int
entry_has_domain(const struct entry *e, const char *domain)
{
	size_t i;

	for (i = 0; i < e->ndomains; i++)
		if (strcasecmp(e->domains[i], domain) == 0)
			return 1;
	return 0;
}

void
sched_add_msg(struct sched *s, const struct qdb_msg *m)
{
	struct entry *e = entry_new(s, m->id);

	e->arrival = m->arrival;
	e->next_attempt = m->next_attempt;
	e->attempts = m->attempts;
	e->hold = m->hold != 0;
	e->warned = m->warned != 0;
	e->is_dsn = m->is_dsn != 0;
	entry_set_pending(e, m->rcpts, m->nrcpt);
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
	entry_set_domains(e, v, env->nrcpt);
	free(v);
	event_active(s->kick, EV_TIMEOUT, 0);
}

/* --- health ------------------------------------------------------------- */

static struct health *
health_find(const struct sched *s, const char *domain)
{
	struct health *h;

	for (h = s->health; h != NULL; h = h->next)
		if (strcasecmp(h->domain, domain) == 0)
			return h;
	return NULL;
}

static struct health *
health_get(struct sched *s, const char *domain)
{
	struct health *h;

	if ((h = health_find(s, domain)) != NULL)
		return h;
	h = xcalloc(1, sizeof(*h));
	lower(h->domain, sizeof(h->domain), domain);
	h->next = s->health;
	s->health = h;
	return h;
}

int
sched_primary_up(const struct sched *s, const char *domain)
{
	const struct health *h = health_find(s, domain);

	return h == NULL || !h->down;
}

static void
health_down(struct sched *s, struct health *h, const char *why)
{
	h->down = 1;
	h->next_probe = time(NULL) + (time_t)s->conf->primary_probe_interval;
	log_warn("event=primary_down domain=%s failures=%u reason=\"%s\"",
	    h->domain, h->failures, why);
	if (s->learn != NULL)
		learn_health(s->learn, h->domain, 0, why, time(NULL));
}

/* A connection failure; 'now': down at once, not after
 * primary_down_after of them. */
static void
health_failed(struct sched *s, const char *domain, const char *why, int now)
{
	struct health *h = health_get(s, domain);

	h->failures++;
	if (!h->down && (now || h->failures >= s->conf->primary_down_after))
		health_down(s, h, why);
}

static void
health_ok(struct sched *s, const char *domain)
{
	struct health *h = health_get(s, domain);
	size_t n;

	h->failures = 0;
	if (!h->down)
		return;
	h->down = 0;
	if (s->learn != NULL)
		learn_health(s->learn, h->domain, 1, "", time(NULL));
	/* DESIGN.md §2: the moment a domain goes up, its queue drains at
	 * once; primary_connection_limit holds the rate. */
	n = sched_flush(s, h->domain);
	log_info("event=primary_up domain=%s drain=%zu", h->domain, n);
}

void
sched_primary_failed(struct sched *s, const char *domain, const char *why,
    int now)
{
	health_failed(s, domain, why, now);
}

void
sched_primary_ok(struct sched *s, const char *domain)
{
	health_ok(s, domain);
}

void
sched_domain_stats(const struct sched *s, const char *domain,
    size_t *queued, time_t *oldest)
{
	const struct entry *e;

	*queued = 0;
	*oldest = 0;
	for (e = s->head; e != NULL; e = e->next) {
		if (e->gone || !entry_has_domain(e, domain))
			continue;
		(*queued)++;
		if (*oldest == 0 || e->arrival < *oldest)
			*oldest = e->arrival;
	}
}

void
sched_set_learn(struct sched *s, struct learn *l)
{
	s->learn = l;
}

static void
probe_done(const char *domain, int ok, const char *why, void *arg)
{
	struct sched *s = arg;
	struct health *h = health_get(s, domain);

	h->probing = 0;
	log_info("event=primary_probe domain=%s result=%s%s%s%s", h->domain,
	    ok ? "up" : "down", ok ? "" : " reason=\"", ok ? "" : why,
	    ok ? "" : "\"");
	if (ok)
		health_ok(s, domain);
	else
		h->next_probe = time(NULL) +
		    (time_t)s->conf->primary_probe_interval;
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

/* The attempt's update is back from the writer; 'dsn' is the DSN it
 * carried, if any. */
static void
committed(enum qdb_result r, const char *id, const struct envelope *dsn,
    void *arg)
{
	struct attempt *a = arg;
	struct sched *s = a->s;
	struct entry *e = a->e;

	s->active--;
	e->busy = 0;
	/* A pass stopped at SCHED_ACTIVE_MAX: go on once half the slots
	 * are free again, not at the next one-second tick (a drain of
	 * 10,000 messages would take ten ticks). */
	if (e->flushed || (s->capped && s->active <= SCHED_ACTIVE_MAX / 2)) {
		s->capped = 0;
		event_active(s->kick, EV_TIMEOUT, 0);
	}
	if (r == QDB_NOTFOUND || e->gone || (r == QDB_OK && a->deleted)) {
		if (r == QDB_OK && a->deleted)
			log_info("queue=%s event=removed", e->id);
		entry_free(s, e);
	} else if (r != QDB_OK) {
		/* The outcome is not on disk: the attempt counts for
		 * nothing and is repeated (a duplicate at worst). */
		log_err("queue=%s event=outcome_not_saved error=%s", e->id,
		    r == QDB_NOSPACE ? "nospace" : "ioerr");
		e->next_attempt = time(NULL) + SCHED_DB_RETRY;
	} else {
		if (a->warned)
			e->warned = 1;
		e->attempts = a->msg.attempts + 1;
		e->next_attempt = time(NULL) + (time_t)sched_backoff(
		    e->attempts, s->conf->minimal_backoff_time,
		    s->conf->maximal_backoff_time);
		if (e->flushed)
			e->next_attempt = time(NULL);
		entry_set_pending(e, a->msg.rcpts, a->msg.nrcpt);
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

/* Every task is back: commit the outcome, then (committed()) act on it. */
static void
attempt_finish(struct attempt *a)
{
	struct sched *s = a->s;
	const struct config *conf = s->conf;
	struct qdb_update *u = qdb_update_new(a->msg.id);
	struct dsn_rcpt *bounced;
	size_t nb = 0, pending = 0, i, t, k;
	time_t now = time(NULL);
	char addr[ADDR_PATH_MAX + 1];
	const char *first_defer = NULL;
	int delayed = 0;

	bounced = xreallocarray(NULL, a->msg.nrcpt ? a->msg.nrcpt : 1,
	    sizeof(*bounced));
	a->expired = now >= a->msg.arrival +
	    (time_t)conf->maximal_queue_lifetime;
	for (t = 0, k = 0; t < a->ntasks; t++) {
		struct deliver_task *tk = &a->tasks[t];

		for (i = 0; i < tk->nrcpt; i++, k++) {
			size_t idx = a->idx[k];
			struct qdb_rcpt *r = &a->msg.rcpts[idx];
			const struct client_result *res = &tk->res[i];
			enum qdb_rcpt_status st = QDB_RCPT_PENDING;

			if (res->code / 100 == 2)
				st = QDB_RCPT_SENT;
			else if (res->code / 100 == 5)
				st = QDB_RCPT_BOUNCED;
			else if (first_defer == NULL)
				first_defer = res->text;
			r->status = st;
			r->last_code = res->code;
			str_copy(r->last_reply, sizeof(r->last_reply),
			    res->text);
			qdb_update_rcpt(u, idx, st, res->code, res->text);
			addr_format(&r->addr, addr, sizeof(addr));
			log_info("queue=%s event=delivery to=<%s> relay=%s "
			    "delay=%lld attempt=%u status=%s (%s)", a->msg.id,
			    addr, tk->relay[0] ? tk->relay : "none",
			    (long long)(now - a->msg.arrival),
			    a->msg.attempts + 1, status_word(st), res->text);
			if (st == QDB_RCPT_BOUNCED) {
				bounced[nb].rcpt = r;
				bounced[nb].code = res->code;
				bounced[nb].text = r->last_reply;
				bounced[nb].relay = tk->relay;
				nb++;
			}
		}
	}
	/* maximal_queue_lifetime: whatever is still pending bounces now,
	 * with its last error. */
	for (i = 0; i < a->msg.nrcpt; i++) {
		struct qdb_rcpt *r = &a->msg.rcpts[i];

		if (r->status != QDB_RCPT_PENDING)
			continue;
		if (!a->expired) {
			pending++;
			continue;
		}
		if (r->last_reply[0] == '\0')
			str_copy(r->last_reply, sizeof(r->last_reply),
			    "451 4.4.7 message expired in the queue");
		{
			char text[QDB_TEXT_MAX];

			snprintf(text, sizeof(text), "4.4.7 message expired "
			    "after %u s in the queue; last error: %.400s",
			    conf->maximal_queue_lifetime, r->last_reply);
			str_copy(r->last_reply, sizeof(r->last_reply), text);
		}
		r->status = QDB_RCPT_BOUNCED;
		qdb_update_rcpt(u, i, QDB_RCPT_BOUNCED, r->last_code,
		    r->last_reply);
		addr_format(&r->addr, addr, sizeof(addr));
		log_info("queue=%s event=expired to=<%s> status=bounced "
		    "(%s)", a->msg.id, addr, r->last_reply);
		bounced[nb].rcpt = r;
		bounced[nb].code = r->last_code ? r->last_code : 451;
		bounced[nb].text = r->last_reply;
		bounced[nb].relay = "";
		nb++;
	}
	/*
	 * delay_warning_time: once per message, a "delayed" DSN (RFC 3464
	 * Action: delayed) about the recipients still waiting. Not in an
	 * attempt that bounces some (one notification per update); the
	 * next attempt warns then.
	 */
	if (nb == 0 && pending > 0 && conf->delay_warning_time > 0 &&
	    !a->msg.warned && now >= a->msg.arrival +
	    (time_t)conf->delay_warning_time) {
		for (i = 0; i < a->msg.nrcpt; i++) {
			struct qdb_rcpt *r = &a->msg.rcpts[i];

			if (r->status != QDB_RCPT_PENDING)
				continue;
			bounced[nb].rcpt = r;
			bounced[nb].code = r->last_code ? r->last_code : 451;
			bounced[nb].text = r->last_reply;
			bounced[nb].relay = "";
			nb++;
		}
		delayed = 1;
		a->warned = 1;
		u->set |= QDB_SET_WARNED;
		u->warned = 1;
		log_info("queue=%s event=delay_warning nrcpt=%zu", a->msg.id,
		    nb);
	}
	if (nb > 0) {
		char head[DSN_HEADERS_MAX];
		size_t hl = read_head(a, head, sizeof(head));
		struct envelope *env = xcalloc(1, sizeof(*env));

		if (dsn_build(&a->msg, bounced, nb, delayed, head, hl,
		    conf->myhostname, now, env, &u->dsn_body,
		    &u->dsn_bodylen) == 0)
			u->dsn_env = env;
		else
			free(env);
	}
	free(bounced);

	u->set |= QDB_SET_ATTEMPT;
	u->attempts = a->msg.attempts + 1;
	u->last_attempt = now;
	u->next_attempt = now + (time_t)sched_backoff(u->attempts,
	    conf->minimal_backoff_time, conf->maximal_backoff_time);
	str_copy(u->last_error, sizeof(u->last_error),
	    first_defer ? first_defer : "");
	str_copy(u->relay, sizeof(u->relay), a->ntasks ? a->tasks[0].relay :
	    "");
	if (pending == 0) {
		u->set |= QDB_DELETE;
		a->deleted = 1;
	}
	a->committing = 1;
	qdb_update(s->qdb, u, committed, a);
}

/*
 * What the primary's answers teach (learn.h): only from a primary that
 * greeted us, so that a lookup's or our own synthesized answer never
 * marks an address.
 */
static void
learn_outcomes(struct sched *s, const struct deliver_task *t)
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

static void
task_done(struct deliver_task *t, void *arg)
{
	struct attempt *a = arg;
	struct sched *s = a->s;

	if (t->conn_failed)
		health_failed(s, t->domain, t->nrcpt ? t->res[0].text : "", 0);
	else if (t->reached) {
		health_ok(s, t->domain);
		learn_outcomes(s, t);
	}
	if (++a->ndone == a->ntasks)
		attempt_finish(a);
}

/* Load and hand to deliver.c; or finish at once when nothing is to send
 * (expired with every primary down). */
static void
attempt_start(struct sched *s, struct entry *e, time_t now)
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	size_t i, j, k, n;
	int rc;

	a->s = s;
	a->e = e;
	a->anext = s->attempts;
	if (s->attempts != NULL)
		s->attempts->aprev = a;
	s->attempts = a;
	if ((rc = qdb_load(s->qdb, e->id, 1, &a->msg)) != 0) {
		if (rc == 1) {
			entry_free(s, e);
		} else {
			log_err("queue=%s event=load_failed", e->id);
			e->next_attempt = now + SCHED_DB_RETRY;
		}
		attempt_free(a);
		return;
	}
	if (a->msg.big[0] != '\0')
		qdb_big_path(s->qdb, a->msg.big, a->big_path,
		    sizeof(a->big_path));
	e->busy = 1;
	e->flushed = 0;
	s->active++;

	a->idx = xreallocarray(NULL, a->msg.nrcpt + 1, sizeof(*a->idx));
	a->rcptv = xreallocarray(NULL, a->msg.nrcpt + 1, sizeof(*a->rcptv));
	a->resv = xcalloc(a->msg.nrcpt + 1, sizeof(*a->resv));
	a->tasks = xcalloc(e->ndomains + 1, sizeof(*a->tasks));
	k = 0;
	for (j = 0; j < e->ndomains; j++) {
		struct deliver_task *t = &a->tasks[a->ntasks];

		if (!sched_primary_up(s, e->domains[j]))
			continue;	/* the probe will drain it */
		n = 0;
		for (i = 0; i < a->msg.nrcpt; i++) {
			if (a->msg.rcpts[i].status != QDB_RCPT_PENDING ||
			    strcasecmp(a->msg.rcpts[i].addr.domain,
			    e->domains[j]) != 0)
				continue;
			a->idx[k + n] = i;
			a->rcptv[k + n] = &a->msg.rcpts[i];
			n++;
		}
		if (n == 0)
			continue;
		t->msg = &a->msg;
		t->body_path = a->big_path[0] ? a->big_path : NULL;
		str_copy(t->domain, sizeof(t->domain), e->domains[j]);
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
	for (j = 0; j < n; j++)
		deliver_submit(s->deliver, &a->tasks[j], task_done, a);
}

static int
all_down(const struct sched *s, const struct entry *e)
{
	size_t i;

	for (i = 0; i < e->ndomains; i++)
		if (sched_primary_up(s, e->domains[i]))
			return 0;
	return e->ndomains > 0;
}

/* delay_warning_time passed and the sender was not told yet. */
static int
warning_due(const struct sched *s, const struct entry *e, time_t now)
{
	return s->conf->delay_warning_time > 0 && !e->warned && !e->is_dsn &&
	    now >= e->arrival + (time_t)s->conf->delay_warning_time;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct entry *e, *next;
	struct health *h;
	time_t now = time(NULL);

	for (e = s->head; e != NULL; e = next) {
		next = e->next;
		if (e->busy || e->hold)
			continue;
		if (s->active >= SCHED_ACTIVE_MAX) {
			s->capped = 1;
			break;
		}
		if (now >= e->arrival + (time_t)s->conf->maximal_queue_lifetime)
			attempt_start(s, e, now);	/* expires it */
		else if (warning_due(s, e, now))
			attempt_start(s, e, now);	/* warns, even if down */
		else if (e->next_attempt <= now && !all_down(s, e))
			attempt_start(s, e, now);
	}
	for (h = s->health; h != NULL; h = h->next) {
		/* Every down primary is probed, with mail waiting or not:
		 * pass-through and callouts wait for it too. */
		if (!h->down || h->probing || now < h->next_probe)
			continue;
		h->probing = 1;
		deliver_probe(s->deliver, h->domain, probe_done, s);
	}
}

size_t
sched_flush(struct sched *s, const char *domain)
{
	struct entry *e;
	time_t now = time(NULL);
	size_t n = 0;

	for (e = s->head; e != NULL; e = e->next) {
		if (e->hold || (domain != NULL && !entry_has_domain(e, domain)))
			continue;
		if (e->next_attempt > now)
			e->next_attempt = now;
		/* An attempt in flight would set its own next time when it
		 * ends: this flush wins over that. */
		if (e->busy)
			e->flushed = 1;
		n++;
	}
	if (domain != NULL) {
		struct health *h = health_find(s, domain);

		/* An operator's or ETRN's flush is worth a probe now. */
		if (h != NULL)
			h->next_probe = now;
	}
	event_active(s->kick, EV_TIMEOUT, 0);
	return n;
}

int
sched_flush_id(struct sched *s, const char *id)
{
	struct entry *e = entry_find(s, id);

	if (e == NULL)
		return -1;
	e->next_attempt = time(NULL);
	event_active(s->kick, EV_TIMEOUT, 0);
	return 0;
}

int
sched_has_domain(const struct sched *s, const char *domain)
{
	const struct entry *e;

	for (e = s->head; e != NULL; e = e->next)
		if (entry_has_domain(e, domain))
			return 1;
	return 0;
}

int
sched_hold(struct sched *s, const char *id, int hold, qdb_done_cb *done,
    void *arg)
{
	struct entry *e = entry_find(s, id);
	struct qdb_update *u;

	if (e == NULL)
		return -1;
	e->hold = hold != 0;
	u = qdb_update_new(id);
	u->set = QDB_SET_HOLD;
	u->hold = hold != 0;
	if (!hold) {
		u->set |= QDB_SET_NEXT;
		u->next_attempt = e->next_attempt = time(NULL);
	}
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
	if (e->busy)
		e->gone = 1;	/* the attempt's update finds no row */
	else
		entry_free(s, e);
	return 0;
}

struct sched *
sched_new(struct event_base *base, const struct config *conf, struct qdb *q,
    struct deliver *d)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	struct timeval one = { 1, 0 };

	s->base = base;
	s->conf = conf;
	s->qdb = q;
	s->deliver = d;
	s->tick = event_new(base, -1, EV_PERSIST, tick_cb, s);
	event_add(s->tick, &one);
	s->kick = event_new(base, -1, 0, tick_cb, s);
	return s;
}

void
sched_free(struct sched *s)
{
	struct health *h;

	if (s == NULL)
		return;
	event_free(s->tick);
	event_free(s->kick);
	/* Attempts still waiting for deliver.c (freed before us) end here;
	 * those handed to the writer ended in qdb_close(). */
	while (s->attempts != NULL)
		attempt_free(s->attempts);
	while (s->head != NULL)
		entry_free(s, s->head);
	while ((h = s->health) != NULL) {
		s->health = h->next;
		free(h);
	}
	free(s);
}
