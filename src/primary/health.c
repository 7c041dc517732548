/*
 * health: per-domain primary health (health.h).
 *
 * Records live in a chained hash table (FNV-1a of the lower-cased
 * domain, doubled when it holds as many records as buckets) and are kept
 * until the end: a customer domain is a handful of bytes, and its
 * failure count must survive between attempts. The down ones are also on
 * a list, which the probe timer walks: it never looks at the up ones.
 */
#include "health.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "history.h"
#include "learn.h"
#include "log.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

#define HEALTH_BUCKETS_MIN	64
#define HEALTH_SUSPECT_GAP	10	/* seconds between two suspicions'
					   probes of one primary */

struct rec {
	struct rec	*hnext;			/* bucket chain */
	struct rec	*dnext, *dprev;		/* the down list */
	char		 domain[256];		/* lower case */
	int		 down;
	unsigned	 failures;
	time_t		 next_probe;
	int		 probing;
	time_t		 suspected;	/* last probe asked by a suspicion */
	time_t		 down_since;	/* 0: restored at start, or up */
	struct primary_health *h;
	void		*lease;		/* asking for the probe's lease */
};

struct primary_health {
	const struct config	*conf;
	struct rec		**bucket;
	size_t			 nbucket;	/* a power of two */
	size_t			 nrec;
	struct rec		*down;		/* down records */
	struct event		*tick;		/* every second */
	/* "Probe now" (primary_probe_soon). Not the tick itself: activating
	 * a persistent timer by hand lost its timeout (libevent 2.1). */
	struct event		*kick;
	primary_probe_fn	*probe;
	void			*probe_owner;
	primary_up_cb		*up_cb;
	void			*up_arg;
	struct learn		*learn;
	struct history		*history;	/* for the dashboard */
	primary_change_cb	*change_cb;	/* the cluster's, or NULL */
	void			*change_arg;
	struct primary_lease	 lease;		/* take NULL: no cluster */
};

/* The door: every name is lower-cased once, here. */
static void
key(char out[256], const char *domain)
{
	str_copy(out, 256, domain);
	str_lower(out);
}

static struct rec *
find(const struct primary_health *h, const char *k)
{
	struct rec *r;

	for (r = h->bucket[str_hash(k) & (h->nbucket - 1)]; r != NULL;
	    r = r->hnext)
		if (strcmp(r->domain, k) == 0)
			return r;
	return NULL;
}

static void
grow(struct primary_health *h)
{
	size_t n = h->nbucket * 2, i;
	struct rec **b = xcalloc(n, sizeof(*b)), *r, *next;

	for (i = 0; i < h->nbucket; i++)
		for (r = h->bucket[i]; r != NULL; r = next) {
			next = r->hnext;
			r->hnext = b[str_hash(r->domain) & (n - 1)];
			b[str_hash(r->domain) & (n - 1)] = r;
		}
	free(h->bucket);
	h->bucket = b;
	h->nbucket = n;
}

static struct rec *
get(struct primary_health *h, const char *k)
{
	struct rec *r;
	size_t b;

	if ((r = find(h, k)) != NULL)
		return r;
	if (h->nrec >= h->nbucket)
		grow(h);
	r = xcalloc(1, sizeof(*r));
	str_copy(r->domain, sizeof(r->domain), k);
	r->h = h;
	b = str_hash(k) & (h->nbucket - 1);
	r->hnext = h->bucket[b];
	h->bucket[b] = r;
	h->nrec++;
	return r;
}

static void
down_link(struct primary_health *h, struct rec *r)
{
	r->dprev = NULL;
	r->dnext = h->down;
	if (h->down != NULL)
		h->down->dprev = r;
	h->down = r;
}

static void
down_unlink(struct primary_health *h, struct rec *r)
{
	if (r->dprev != NULL)
		r->dprev->dnext = r->dnext;
	else
		h->down = r->dnext;
	if (r->dnext != NULL)
		r->dnext->dprev = r->dprev;
	r->dnext = r->dprev = NULL;
}

int
primary_health_up(const struct primary_health *h, const char *domain)
{
	char k[256];
	const struct rec *r;

	key(k, domain);
	r = find(h, k);
	return r == NULL || !r->down;
}

unsigned
primary_health_failures(const struct primary_health *h, const char *domain)
{
	char k[256];
	const struct rec *r;

	key(k, domain);
	r = find(h, k);
	return r != NULL ? r->failures : 0;
}

/* 'seen' 0: restored from the last stop, no observation of ours: not
 * announced, and any other node's "up" overrides it. */
static void
mark_down(struct primary_health *h, struct rec *r, const char *why, int seen)
{
	time_t now = time(NULL);

	r->down = 1;
	r->down_since = seen ? now : 0;
	r->next_probe = now + (time_t)h->conf->primary_probe_interval;
	down_link(h, r);
	log_warn("event=primary_down domain=%s failures=%u reason=\"%s\"",
	    r->domain, r->failures, why);
	if (h->learn != NULL)
		learn_health(h->learn, r->domain, 0, why, now);
	if (seen && h->change_cb != NULL)
		h->change_cb(r->domain, 0, why, now, h->change_arg);
}

void
primary_health_failed(struct primary_health *h, const char *domain,
    const char *why, int now)
{
	char k[256];
	struct rec *r;

	key(k, domain);
	r = get(h, k);
	r->failures++;
	if (r->down && !now)
		r->down_since = time(NULL);	/* newer evidence of our own */
	if (!r->down && (now || r->failures >= h->conf->primary_down_after))
		mark_down(h, r, why, !now);
}

/* 'who': the node that saw it, NULL for this one (then announced). */
static void
mark_ok(struct primary_health *h, struct rec *r, const char *who)
{
	time_t now = time(NULL);
	size_t n = 0;

	r->failures = 0;
	if (!r->down)
		return;
	r->down = 0;
	r->down_since = 0;
	down_unlink(h, r);
	if (h->learn != NULL)
		learn_health(h->learn, r->domain, 1, "", now);
	if (who == NULL && h->change_cb != NULL)
		h->change_cb(r->domain, 1, "", now, h->change_arg);
	/* docs/queue.md: the moment a domain goes up, its queue drains at
	 * once; primary_connection_limit holds the rate. */
	if (h->up_cb != NULL)
		n = h->up_cb(r->domain, h->up_arg);
	log_info("event=primary_up domain=%s drain=%zu%s%s", r->domain, n,
	    who != NULL ? " via=" : "", who != NULL ? who : "");
}

void
primary_health_ok(struct primary_health *h, const char *domain)
{
	char k[256];

	key(k, domain);
	mark_ok(h, get(h, k), NULL);
}

void
primary_health_remote_up(struct primary_health *h, const char *domain,
    time_t since, const char *who)
{
	char k[256];
	struct rec *r;

	key(k, domain);
	if ((r = find(h, k)) == NULL || !r->down)
		return;
	/* Our own failure after their success is the newer news. */
	if (r->down_since > since) {
		log_info("event=primary_remote_stale domain=%s via=%s "
		    "since=%lld down_since=%lld", r->domain, who,
		    (long long)since, (long long)r->down_since);
		return;
	}
	mark_ok(h, r, who);
}

void
primary_health_foreach_down(const struct primary_health *h,
    void (*fn)(const char *, void *), void *arg)
{
	const struct rec *r;

	for (r = h->down; r != NULL; r = r->dnext)
		fn(r->domain, arg);
}

void
primary_health_probe_soon(struct primary_health *h, const char *domain)
{
	char k[256];
	struct rec *r;

	key(k, domain);
	if ((r = find(h, k)) == NULL)
		return;
	r->next_probe = time(NULL);
	if (r->down && h->kick != NULL)
		event_active(h->kick, EV_TIMEOUT, 0);
}

static void
probe_done(const char *domain, int ok, const char *why, void *arg)
{
	struct primary_health *h = arg;
	char k[256];
	struct rec *r;

	key(k, domain);
	r = get(h, k);
	r->probing = 0;
	stats_inc(ok > 0 ? STAT_PROBE_UP : ok < 0 ? STAT_PROBE_ERROR :
	    STAT_PROBE_DOWN);
	if (ok >= 0)
		history_probe(h->history, r->domain, ok > 0, why, time(NULL));
	log_info("event=primary_probe domain=%s result=%s%s%s%s", r->domain,
	    ok > 0 ? "up" : ok < 0 ? "none" : "down", ok > 0 ? "" :
	    " reason=\"", ok > 0 ? "" : why, ok > 0 ? "" : "\"");
	if (ok > 0)
		mark_ok(h, r, NULL);
	else if (ok < 0) {
		/* Our own trouble (no descriptor): no verdict, the next
		 * probe decides. */
		r->next_probe = time(NULL) +
		    (time_t)h->conf->primary_probe_interval;
	} else if (!r->down) {
		/* A suspicion confirmed by our own probe: a failure of
		 * ours, counted as a delivery's is. */
		r->failures++;
		if (r->failures >= h->conf->primary_down_after)
			mark_down(h, r, why, 1);
	} else {
		r->down_since = time(NULL);	/* still down, seen now */
		r->next_probe = time(NULL) +
		    (time_t)h->conf->primary_probe_interval;
	}
}

/*
 * What a client can provoke (a pass-through or a callout that failed)
 * is only a suspicion: a probe of our own, now, decides (docs/queue.md
 * "Primary health"). One probe at a time per primary, and at most one
 * per HEALTH_SUSPECT_GAP, so strangers cannot turn failures into a
 * stream of probes either.
 */
void
primary_health_suspect(struct primary_health *h, const char *domain,
    const char *why)
{
	char k[256];
	struct rec *r;
	time_t now = time(NULL);

	key(k, domain);
	r = get(h, k);
	if (r->down || r->probing || (r->suspected != 0 &&
	    now - r->suspected < HEALTH_SUSPECT_GAP))
		return;
	r->suspected = now;
	log_info("event=primary_suspect domain=%s reason=\"%s\"", r->domain,
	    why);
	if (h->probe == NULL)
		return;		/* nobody can probe: the deliveries decide */
	r->probing = 1;
	h->probe(h->probe_owner, r->domain, probe_done, h);
}

/*
 * The cluster's answer for a due probe (docs/cluster.md "One probe, one
 * callout"): another node holds the lease, so it probes this interval and
 * an "up" reaches us as its news; we look again an interval later. Up
 * meanwhile (another node's news): nothing to probe.
 */
static void
lease_done(int go, void *arg)
{
	struct rec *r = arg;
	struct primary_health *h = r->h;

	r->lease = NULL;
	if (go && r->down) {
		h->probe(h->probe_owner, r->domain, probe_done, h);
		return;
	}
	r->probing = 0;
	if (r->down)
		r->next_probe = time(NULL) +
		    (time_t)h->conf->primary_probe_interval;
}

void
primary_health_tick(struct primary_health *h, time_t now)
{
	struct rec *r, *next;

	if (h->probe == NULL)
		return;
	for (r = h->down; r != NULL; r = next) {
		/* A probe's callback may run at once and unlink r. */
		next = r->dnext;
		if (r->probing || now < r->next_probe)
			continue;
		r->probing = 1;
		if (h->lease.take == NULL) {
			h->probe(h->probe_owner, r->domain, probe_done, h);
			continue;
		}
		/* Held for the whole interval: one probe per interval for
		 * the cluster, whoever's timer comes first. */
		r->lease = h->lease.take(h->lease.owner, r->domain, NULL,
		    h->conf->primary_probe_interval, lease_done, r);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	primary_health_tick(arg, time(NULL));
}

struct primary_health *
primary_health_new(struct event_base *base, const struct config *conf)
{
	struct primary_health *h = xcalloc(1, sizeof(*h));
	struct timeval one = { 1, 0 };

	h->conf = conf;
	h->nbucket = HEALTH_BUCKETS_MIN;
	h->bucket = xcalloc(h->nbucket, sizeof(*h->bucket));
	h->history = history_new(HISTORY_DOMAINS_MAX);
	if (base != NULL) {
		h->tick = event_new(base, -1, EV_PERSIST, tick_cb, h);
		event_add(h->tick, &one);
		h->kick = event_new(base, -1, 0, tick_cb, h);
	}
	return h;
}

void
primary_health_free(struct primary_health *h)
{
	struct rec *r;
	size_t i;

	if (h == NULL)
		return;
	if (h->tick != NULL) {
		event_free(h->tick);
		event_free(h->kick);
	}
	for (i = 0; i < h->nbucket; i++)
		while ((r = h->bucket[i]) != NULL) {
			h->bucket[i] = r->hnext;
			if (r->lease != NULL)
				h->lease.cancel(r->lease);
			free(r);
		}
	history_free(h->history);
	free(h->bucket);
	free(h);
}

void
primary_health_set_prober(struct primary_health *h, primary_probe_fn *fn,
    void *owner)
{
	h->probe = fn;
	h->probe_owner = owner;
}

void
primary_health_on_up(struct primary_health *h, primary_up_cb *cb, void *arg)
{
	h->up_cb = cb;
	h->up_arg = arg;
}

void
primary_health_set_learn(struct primary_health *h, struct learn *l)
{
	h->learn = l;
}

void
primary_health_on_change(struct primary_health *h, primary_change_cb *cb,
    void *arg)
{
	h->change_cb = cb;
	h->change_arg = arg;
}

void
primary_health_set_lease(struct primary_health *h,
    const struct primary_lease *l)
{
	if (l != NULL)
		h->lease = *l;
	else
		memset(&h->lease, 0, sizeof(h->lease));
}

struct history *
primary_health_history(const struct primary_health *h)
{
	return h->history;
}
