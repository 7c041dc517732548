/*
 * history: recent per-domain events for the dashboard (history.h).
 *
 * A fixed chained hash table (sized once for max_domains) and an LRU
 * list: touching a domain moves it to the front; a new domain past the
 * cap reuses the record at the back. Events are two rings per domain;
 * deferrals are counted in 24 hourly buckets, each stamped with its hour
 * so that a stale bucket reads as zero without a sweep.
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

#include "str.h"
#include "xmem.h"

#define HOURS	24

struct ring {
	struct history_event	ev[HISTORY_EVENTS];
	size_t			next, n;
};

struct hrec {
	struct hrec	*hnext;			/* bucket chain */
	struct hrec	*lprev, *lnext;		/* LRU, most recent first */
	char		 domain[256];		/* lower case */
	int64_t		 last_delivery;
	int64_t		 hour[HOURS];		/* which hour a bucket counts */
	unsigned	 deferred[HOURS];
	struct ring	 probes, outcomes;
};

struct history {
	struct hrec	**bucket;
	size_t		 nbucket;		/* a power of two */
	size_t		 n, max;
	struct hrec	*head, *tail;
};

struct history *
history_new(size_t max_domains)
{
	struct history *h = xcalloc(1, sizeof(*h));

	h->max = max_domains ? max_domains : 1;
	for (h->nbucket = 64; h->nbucket < h->max; h->nbucket *= 2)
		;
	h->bucket = xcalloc(h->nbucket, sizeof(*h->bucket));
	return h;
}

void
history_free(struct history *h)
{
	struct hrec *r, *next;

	if (h == NULL)
		return;
	for (r = h->head; r != NULL; r = next) {
		next = r->lnext;
		free(r);
	}
	free(h->bucket);
	free(h);
}

static struct hrec **
slot(const struct history *h, const char *k)
{
	struct hrec **p;

	for (p = &h->bucket[str_hash(k) & (h->nbucket - 1)]; *p != NULL;
	    p = &(*p)->hnext)
		if (strcmp((*p)->domain, k) == 0)
			break;
	return p;
}

static void
lru_unlink(struct history *h, struct hrec *r)
{
	if (r->lprev != NULL)
		r->lprev->lnext = r->lnext;
	else
		h->head = r->lnext;
	if (r->lnext != NULL)
		r->lnext->lprev = r->lprev;
	else
		h->tail = r->lprev;
	r->lprev = r->lnext = NULL;
}

static void
lru_front(struct history *h, struct hrec *r)
{
	r->lnext = h->head;
	if (h->head != NULL)
		h->head->lprev = r;
	h->head = r;
	if (h->tail == NULL)
		h->tail = r;
}

/* The record of domain, made (or recycled from the least recent) when
 * missing; moved to the front either way. */
static struct hrec *
touch(struct history *h, const char *domain)
{
	char k[256];
	struct hrec **p, *r;

	str_copy(k, sizeof(k), domain);
	str_lower(k);
	if (*(p = slot(h, k)) != NULL) {
		r = *p;
		lru_unlink(h, r);
		lru_front(h, r);
		return r;
	}
	if (h->n >= h->max) {
		r = h->tail;
		lru_unlink(h, r);
		*slot(h, r->domain) = r->hnext;
		memset(r, 0, sizeof(*r));
		p = slot(h, k);		/* the chain may have changed */
	} else {
		r = xcalloc(1, sizeof(*r));
		h->n++;
	}
	str_copy(r->domain, sizeof(r->domain), k);
	*p = r;
	lru_front(h, r);
	return r;
}

static void
ring_add(struct ring *g, int64_t now, int kind, int code, const char *id,
    const char *text)
{
	struct history_event *e = &g->ev[g->next];

	e->when = now;
	e->kind = kind;
	e->code = code;
	str_copy(e->id, sizeof(e->id), id != NULL ? id : "");
	str_copy(e->text, sizeof(e->text), text != NULL ? text : "");
	g->next = (g->next + 1) % HISTORY_EVENTS;
	if (g->n < HISTORY_EVENTS)
		g->n++;
}

/* Newest first into out; returns how many. */
static size_t
ring_get(const struct ring *g, struct history_event *out)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		out[i] = g->ev[(g->next + HISTORY_EVENTS - 1 - i) %
		    HISTORY_EVENTS];
	return g->n;
}

void
history_probe(struct history *h, const char *domain, int ok,
    const char *why, int64_t now)
{
	ring_add(&touch(h, domain)->probes, now, ok ? HISTORY_PROBE_OK :
	    HISTORY_PROBE_FAILED, 0, NULL, ok ? "" : why);
}

void
history_outcome(struct history *h, const char *domain, const char *id,
    size_t sent, size_t deferred, size_t bounced, int code,
    const char *text, int64_t now)
{
	struct hrec *r = touch(h, domain);
	int64_t hr = now / 3600;
	size_t b = (size_t)(hr % HOURS);
	int kind;

	if (sent > 0)
		r->last_delivery = now;
	if (deferred > 0) {
		if (r->hour[b] != hr) {
			r->hour[b] = hr;
			r->deferred[b] = 0;
		}
		r->deferred[b] += (unsigned)deferred;
	}
	kind = deferred > 0 ? HISTORY_DEFERRED : bounced > 0 ?
	    HISTORY_BOUNCED : HISTORY_DELIVERED;
	ring_add(&r->outcomes, now, kind, code, id, text);
}

static const struct hrec *
lookup(const struct history *h, const char *domain)
{
	char k[256];

	str_copy(k, sizeof(k), domain);
	str_lower(k);
	return *slot(h, k);
}

static unsigned
deferrals(const struct hrec *r, int64_t now)
{
	int64_t hr = now / 3600;
	unsigned n = 0;
	size_t i;

	/* The current hour and the 23 before it: up to 24 h. */
	for (i = 0; i < HOURS; i++)
		if (r->hour[i] > hr - HOURS && r->hour[i] <= hr)
			n += r->deferred[i];
	return n;
}

int
history_counts(const struct history *h, const char *domain, int64_t now,
    int64_t *last_delivery, unsigned *deferrals_24h)
{
	const struct hrec *r = lookup(h, domain);

	*last_delivery = r != NULL ? r->last_delivery : 0;
	*deferrals_24h = r != NULL ? deferrals(r, now) : 0;
	return r != NULL;
}

int
history_get(const struct history *h, const char *domain, int64_t now,
    struct history_view *out)
{
	const struct hrec *r = lookup(h, domain);

	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return 0;
	out->last_delivery = r->last_delivery;
	out->deferrals_24h = deferrals(r, now);
	out->nprobes = ring_get(&r->probes, out->probes);
	out->noutcomes = ring_get(&r->outcomes, out->outcomes);
	return 1;
}
