/*
 * learn: recipient knowledge and the domain lifecycle (learn.h).
 */
#include "learn.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "domains.h"
#include "log.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

/* A record already saying the same thing is not rewritten more often
 * than this: a busy pass-through must not write a row per RCPT. */
#define LEARN_REFRESH	3600
#define LEARN_ACCEPT_REFRESH 60
/* Domains brought up to date per loop turn after a reload (a state
 * store read each): 100,000 customers must not stall the loop. */
#define LEARN_WALK_BATCH	256
/* The walk again at most this often (sooner with a shorter
 * learning_period): a domain whose learning period ends with nobody
 * asking still becomes refused, logged and exported, on time. */
#define LEARN_REWALK_SECS	300

struct learn {
	const struct config	*conf;
	struct state		*st;
	const struct domains	*domains;
	size_t			 refused;
	/* learn_set_domains()' walk over the table: the next index, the
	 * refused domains counted so far. */
	struct event		*walk_ev;
	struct event		*rewalk_ev;	/* the walk again, by time */
	size_t			 walk_next, walk_refused;
	int			 walking;
	/* learn_on_write(): the cluster's share, or NULL. */
	learn_share_rcpt_fn	*share_rcpt;
	learn_share_domain_fn	*share_domain;
	void			*share_arg;
};

static const char *const lifecycle_names[] = {
	[STATE_DOM_LEARNING] = "learning",
	[STATE_DOM_ACTIVE] = "active",
	[STATE_DOM_REFUSED] = "refused",
};

static const char *const source_names[] = {
	[STATE_SRC_PASSTHROUGH] = "passthrough",
	[STATE_SRC_DELIVERY] = "delivery",
	[STATE_SRC_CALLOUT] = "callout",
	[STATE_SRC_ADMIN] = "admin",
};

static const char *
lifecycle_name(int lc)
{
	if (lc < STATE_DOM_LEARNING || lc > STATE_DOM_REFUSED)
		return "unknown";
	return lifecycle_names[lc];
}

void
learn_key(char *buf, size_t bufsz, const char *local, const char *domain)
{
	int n;

	n = snprintf(buf, bufsz, "%s@%s", local, domain);
	if (n < 0 || (size_t)n >= bufsz) {
		buf[0] = '\0';
		return;
	}
	str_lower(buf);
}

/* A lower-case copy of s into buf, cut to fit: the form of every key. */
static void
lower_copy(char *buf, size_t bufsz, const char *s)
{
	str_copy(buf, bufsz, s);
	str_lower(buf);
}

/* The domain part of a key ("" when there is no '@'). */
static const char *
key_domain(const char *key)
{
	const char *at = strrchr(key, '@');

	return at != NULL ? at + 1 : "";
}

static void	walk_cb(evutil_socket_t, short, void *);

/* A record of this node's own seeing: stored, then shared (the store
 * first: docs/cluster.md "Learned recipients"). */
static int
domain_put(struct learn *l, const struct state_domain *d)
{
	if (state_domain_put(l->st, d) == -1)
		return -1;
	if (l->share_domain != NULL)
		l->share_domain(d, l->share_arg);
	return 0;
}

static int
rcpt_put(struct learn *l, const struct state_rcpt *r)
{
	if (state_rcpt_put(l->st, r) == -1)
		return -1;
	if (l->share_rcpt != NULL)
		l->share_rcpt(r, l->share_arg);
	return 0;
}

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

/* A walk from the table's first domain (walk_step()). */
static void
walk_begin(struct learn *l)
{
	l->walk_next = 0;
	l->walk_refused = 0;
	l->walking = 1;
}

static void
rewalk_arm(struct learn *l)
{
	struct timeval tv = { LEARN_REWALK_SECS, 0 };

	if (l->conf->learning_period > 0 &&
	    l->conf->learning_period < LEARN_REWALK_SECS)
		tv.tv_sec = (time_t)l->conf->learning_period;
	evtimer_add(l->rewalk_ev, &tv);
}

/* The lifecycle moves by time too (learning -> refused): nothing may ask
 * of a customer with no server, so a walk brings every domain up to date
 * now and then. */
static void
rewalk_cb(evutil_socket_t fd, short what, void *arg)
{
	struct learn *l = arg;

	(void)fd;
	(void)what;
	if (!l->walking && l->domains != NULL) {
		walk_begin(l);
		next_turn(l->walk_ev);
	}
	rewalk_arm(l);
}

struct learn *
learn_new(struct event_base *base, const struct config *conf,
    struct state *st)
{
	struct learn *l = xcalloc(1, sizeof(*l));

	l->conf = conf;
	l->st = st;
	if (base != NULL) {
		l->walk_ev = event_new(base, -1, 0, walk_cb, l);
		l->rewalk_ev = evtimer_new(base, rewalk_cb, l);
		rewalk_arm(l);
	}
	return l;
}

void
learn_free(struct learn *l)
{
	if (l != NULL && l->walk_ev != NULL) {
		event_free(l->walk_ev);
		event_free(l->rewalk_ev);
	}
	free(l);
}

static void
transition(struct learn *l, struct state_domain *d, int to, int64_t now)
{
	if (d->lifecycle == STATE_DOM_REFUSED && l->refused > 0)
		l->refused--;
	if (to == STATE_DOM_REFUSED) {
		l->refused++;
		/* docs/architecture.md §6: the customer runs no server, or
		 * firewalls us. The operator must hear of it. */
		log_warn("event=domain_lifecycle domain=%s from=%s to=refused "
		    "reason=\"no acceptance by the primary in %us of "
		    "learning\"", d->name, lifecycle_name(d->lifecycle),
		    l->conf->learning_period);
	} else
		log_info("event=domain_lifecycle domain=%s from=%s to=%s",
		    d->name, lifecycle_name(d->lifecycle), lifecycle_name(to));
	d->lifecycle = to;
	d->changed = now;
}

int
learn_domain(struct learn *l, const char *domain, int64_t now,
    struct state_domain *out)
{
	char name[256];
	int rc;

	lower_copy(name, sizeof(name), domain);
	if ((rc = state_domain_get(l->st, name, out)) == -1)
		return -1;
	if (rc == 0) {
		memset(out, 0, sizeof(*out));
		str_copy(out->name, sizeof(out->name), name);
		out->lifecycle = STATE_DOM_LEARNING;
		out->added = now;
		out->changed = now;
		out->health = 1;
		log_info("event=domain_lifecycle domain=%s to=learning",
		    out->name);
		return domain_put(l, out);
	}
	if (out->lifecycle == STATE_DOM_LEARNING &&
	    now >= out->added + (int64_t)l->conf->learning_period) {
		transition(l, out, out->first_accept != 0 ?
		    STATE_DOM_ACTIVE : STATE_DOM_REFUSED, now);
		return domain_put(l, out);
	}
	return 0;
}

int
learn_lifecycle(struct learn *l, const char *domain, int64_t now)
{
	struct state_domain d;

	if (learn_domain(l, domain, now, &d) == -1)
		return -1;
	if (!l->conf->domain_learning)
		return STATE_DOM_ACTIVE;
	return d.lifecycle;
}

/*
 * One step of the walk learn_set_domains() starts: LEARN_WALK_BATCH
 * domains brought up to date (a new one starts learning), the refused
 * ones counted; 1 while more follow. The count replaces l->refused at
 * the end: refused customer domains of this table (a domain that
 * changed meanwhile was counted as it is now, by the walk or by
 * transition()).
 */
static int
walk_step(struct learn *l)
{
	const struct domain *dom;
	struct state_domain d;
	int64_t now = time(NULL);
	size_t k;

	for (k = 0; k < LEARN_WALK_BATCH &&
	    (dom = domains_at(l->domains, l->walk_next)) != NULL; k++) {
		l->walk_next++;
		if (learn_domain(l, dom->name, now, &d) == -1)
			log_err("event=store_error op=domain domain=%s",
			    dom->name);
		else if (d.lifecycle == STATE_DOM_REFUSED)
			l->walk_refused++;
	}
	if (l->walk_next < domains_count(l->domains))
		return 1;
	l->refused = l->walk_refused;
	l->walking = 0;
	return 0;
}

static void
walk_cb(evutil_socket_t fd, short what, void *arg)
{
	struct learn *l = arg;

	if (l->walking && walk_step(l) == 1)
		next_turn(l->walk_ev);
}

void
learn_set_domains(struct learn *l, const struct domains *doms)
{
	/* A walk of the previous table under way starts over on this one:
	 * it is freed after this call. */
	l->domains = doms;
	walk_begin(l);
	/* The first batch now (all of a small table, as in the unit
	 * tests); the rest a batch a loop turn. */
	if (walk_step(l) == 1) {
		if (l->walk_ev != NULL)
			next_turn(l->walk_ev);
		else
			while (walk_step(l) == 1)
				;
	}
}

size_t
learn_refused_count(const struct learn *l)
{
	return l->refused;
}

int
learn_rcpt_status(struct learn *l, const struct domain *dom,
    const char *addr, int64_t now)
{
	struct state_rcpt r;
	char key[STATE_ADDR_MAX];
	int rc;

	lower_copy(key, sizeof(key), addr);
	if (dom != NULL && domains_static_rcpt(dom, key))
		return LEARN_VALID;
	if ((rc = state_rcpt_get(l->st, key, now, &r)) <= 0)
		return rc == 0 ? LEARN_UNKNOWN : -1;
	return r.status == STATE_RCPT_VALID ? LEARN_VALID : LEARN_INVALID;
}

void
learn_accepted(struct learn *l, const char *domain, const char *how,
    int64_t now)
{
	struct state_domain d;

	if (learn_domain(l, domain, now, &d) == -1)
		return;
	/* Same news again soon: nothing to write. */
	if (d.first_accept != 0 && d.lifecycle != STATE_DOM_REFUSED &&
	    now < d.last_accept + LEARN_ACCEPT_REFRESH)
		return;
	if (d.first_accept == 0) {
		d.first_accept = now;
		log_info("event=domain_accepted domain=%s how=%s", d.name,
		    how);
	}
	d.last_accept = now;
	str_copy(d.accept_how, sizeof(d.accept_how), how);
	/* A refused domain comes back at its first acceptance; a learning
	 * one waits for its period to end (learn_domain). */
	if (d.lifecycle == STATE_DOM_REFUSED)
		transition(l, &d, STATE_DOM_ACTIVE, now);
	if (domain_put(l, &d) == -1)
		log_err("event=store_error op=domain domain=%s", d.name);
}

/* 'text' names the sender ("Sender address rejected"), in any case. */
static int
names_sender(const char *text)
{
	static const char word[] = "sender";
	size_t i, n = sizeof(word) - 1;

	for (; *text != '\0'; text++) {
		for (i = 0; i < n && text[i] != '\0' &&
		    (text[i] | 0x20) == word[i]; i++)
			;
		if (i == n)
			return 1;
	}
	return 0;
}

/*
 * Definite "no such mailbox" (docs/passthrough.md, "Learning"): a 5xx
 * whose enhanced code says the destination mailbox does not exist —
 * X.1.1 bad destination mailbox, X.1.6 mailbox moved, X.1.10 recipient
 * not found (Exchange) — and whose text is not about the sender. Every
 * other 5.1.x is not about the recipient's existence: 5.1.0 is Postfix's
 * code for an unlisted *sender*, 5.1.7 and 5.1.8 are the sender's (all
 * answered at RCPT under smtpd_delay_reject), 5.1.2 the primary's own
 * DNS, 5.1.3 the syntax of what backmx sent. Anything an attacker can
 * provoke with its own sender or rate must teach nothing here.
 */
int
learn_says_invalid(int code, const char *enh, const char *text)
{
	if (code < 500 || code > 599 || enh == NULL)
		return 0;
	if (strcmp(enh, "5.1.1") != 0 && strcmp(enh, "5.1.6") != 0 &&
	    strcmp(enh, "5.1.10") != 0)
		return 0;
	return text == NULL || !names_sender(text);
}

void
learn_rcpt_answer(struct learn *l, const char *addr, int code,
    const char *enh, const char *text, int source, int64_t now)
{
	struct state_rcpt r, old;
	char la[LOG_PATH_SIZE];
	int status, rc;

	if (code == 250 || code == 251)
		status = STATE_RCPT_VALID;
	else if (learn_says_invalid(code, enh, text))
		status = STATE_RCPT_INVALID;
	else
		return;		/* a refusal of backmx, or doubt */
	if (addr[0] == '\0' || key_domain(addr)[0] == '\0')
		return;
	if (status == STATE_RCPT_VALID)
		learn_accepted(l, key_domain(addr), source > 0 && source <
		    (int)(sizeof(source_names) / sizeof(source_names[0])) ?
		    source_names[source] : "delivery", now);
	if ((rc = state_rcpt_get(l->st, addr, now, &old)) == -1)
		return;
	if (rc == 1 && old.status == status && old.source == source &&
	    now < old.last_seen + LEARN_REFRESH)
		return;
	memset(&r, 0, sizeof(r));
	str_copy(r.addr, sizeof(r.addr), addr);
	str_copy(r.domain, sizeof(r.domain), key_domain(addr));
	r.status = status;
	r.source = source;
	r.first_seen = rc == 1 && old.status == status ? old.first_seen : now;
	r.last_seen = now;
	r.expires = now + (int64_t)(status == STATE_RCPT_VALID ?
	    l->conf->recipient_valid_ttl : l->conf->recipient_invalid_ttl);
	str_copy(r.why, sizeof(r.why), text);
	if (rc == 0 || old.status != status)
		stats_inc(status == STATE_RCPT_VALID ? STAT_LEARNED_VALID :
		    STAT_LEARNED_INVALID);
	if (rc == 0 || old.status != status)
		log_info("event=recipient_learned rcpt=%s status=%s "
		    "source=%s", log_path(la, sizeof(la), addr),
		    status == STATE_RCPT_VALID ? "valid" : "invalid",
		    source_names[source]);
	if (rcpt_put(l, &r) == -1)
		log_err("event=store_error op=recipient rcpt=%s",
		    log_path(la, sizeof(la), addr));
}

void
learn_health(struct learn *l, const char *domain, int up, const char *why,
    int64_t now)
{
	struct state_domain d;

	if (learn_domain(l, domain, now, &d) == -1)
		return;
	d.health = up;
	d.health_changed = now;
	str_copy(d.health_why, sizeof(d.health_why), why);
	if (state_domain_put(l->st, &d) == -1)
		log_err("event=store_error op=domain domain=%s", d.name);
}

void
learn_probed(struct learn *l, const char *domain, int64_t now)
{
	struct state_domain d;

	if (learn_domain(l, domain, now, &d) == -1)
		return;
	d.last_probe = now;
	if (state_domain_put(l->st, &d) == -1)
		log_err("event=store_error op=domain domain=%s", d.name);
}

int
learn_rcpt_add(struct learn *l, const char *addr, int status, int64_t now)
{
	struct state_rcpt r;
	char key[STATE_ADDR_MAX];

	lower_copy(key, sizeof(key), addr);
	if (l->domains == NULL ||
	    domains_lookup(l->domains, key_domain(key)) == NULL)
		return -2;
	memset(&r, 0, sizeof(r));
	str_copy(r.addr, sizeof(r.addr), key);
	str_copy(r.domain, sizeof(r.domain), key_domain(key));
	r.status = status;
	r.source = STATE_SRC_ADMIN;
	r.first_seen = now;
	r.last_seen = now;
	r.expires = 0;
	str_copy(r.why, sizeof(r.why), "added by the operator");
	return state_rcpt_put(l->st, &r) == -1 ? -1 : 0;
}

void
learn_on_write(struct learn *l, learn_share_rcpt_fn *rcpt,
    learn_share_domain_fn *domain, void *arg)
{
	l->share_rcpt = rcpt;
	l->share_domain = domain;
	l->share_arg = arg;
}

/* The later of two expiries; 0 is never, the latest of all. */
static int64_t
later_expiry(int64_t a, int64_t b)
{
	if (a == 0 || b == 0)
		return 0;
	return a > b ? a : b;
}

int
learn_rcpt_merge(struct state_rcpt *local, int have_local,
    const struct state_rcpt *remote, int64_t now)
{
	struct state_rcpt m;

	if (remote->expires != 0 && remote->expires <= now)
		return 0;
	/* The operator's word is not overruled by what a node learned. */
	if (have_local && local->source == STATE_SRC_ADMIN)
		return 0;
	if (!have_local) {
		*local = *remote;
		return 1;
	}
	/* The newer observation wins: a mailbox created or deleted since
	 * is what the primary says now. A tie keeps ours, as the Redis
	 * side keeps its own: pushing a record twice changes nothing. */
	m = remote->last_seen > local->last_seen ? *remote : *local;
	if (remote->status == local->status) {
		m.first_seen = remote->first_seen < local->first_seen ?
		    remote->first_seen : local->first_seen;
		/* Both say the same: it holds as long as the longer one. A
		 * status that changed keeps its own expiry (an invalid mark
		 * must not inherit a valid one's 31 days). */
		m.expires = later_expiry(remote->expires, local->expires);
	}
	if (memcmp(&m, local, sizeof(m)) == 0)
		return 0;
	*local = m;
	return 1;
}

/* The earlier of two times where 0 is "never". */
static int
earlier(int64_t *mine, int64_t theirs)
{
	if (theirs == 0 || (*mine != 0 && *mine <= theirs))
		return 0;
	*mine = theirs;
	return 1;
}

int
learn_domain_merge(struct state_domain *local,
    const struct state_domain *remote)
{
	int changed = 0;

	/* The learning period started when the first node saw the domain:
	 * a node added later does not start it again. */
	changed |= earlier(&local->added, remote->added);
	/* Acceptances are the union: one node's is the domain's. */
	changed |= earlier(&local->first_accept, remote->first_accept);
	if (remote->last_accept > local->last_accept) {
		local->last_accept = remote->last_accept;
		str_copy(local->accept_how, sizeof(local->accept_how),
		    remote->accept_how);
		changed = 1;
	}
	return changed;
}

int
learn_merge_rcpt(struct learn *l, const struct state_rcpt *remote,
    int64_t now)
{
	struct state_rcpt r;
	int rc;

	if ((rc = state_rcpt_get(l->st, remote->addr, now, &r)) == -1)
		return -1;
	if (!learn_rcpt_merge(&r, rc, remote, now))
		return 0;
	return state_rcpt_put(l->st, &r) == -1 ? -1 : 1;
}

int
learn_merge_domain(struct learn *l, const struct state_domain *remote,
    int64_t now)
{
	struct state_domain d;
	int rc;

	if ((rc = state_domain_get(l->st, remote->name, &d)) == -1)
		return -1;
	/* Not a domain of ours (yet): its record starts with its first use
	 * here, and merges then. */
	if (rc == 0 || !learn_domain_merge(&d, remote))
		return 0;
	log_info("event=domain_merged domain=%s added=%lld first_accept=%lld",
	    d.name, (long long)d.added, (long long)d.first_accept);
	if (d.lifecycle == STATE_DOM_REFUSED && d.first_accept != 0)
		transition(l, &d, STATE_DOM_ACTIVE, now);
	/* A learning one is judged at its next use (learn_domain()). */
	return state_domain_put(l->st, &d) == -1 ? -1 : 1;
}
