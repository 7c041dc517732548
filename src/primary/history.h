/*
 * history: what each customer domain's primary did lately, for the
 * dashboard (docs/dashboard.md "What is kept"): its last probes, its last
 * delivery outcomes, the deferrals of the last 24 hours and the time of
 * the last delivery. Kept in memory only, bounded twice: a few events per
 * domain, and at most HISTORY_DOMAINS_MAX domains (the least recently
 * touched one goes first). A domain whose primary never failed and whose
 * mail was never queued has no record: nothing happened to show.
 *
 * Owned by primary/health (primary_health_history()), which records the
 * probes; the scheduler records the delivery outcomes.
 */
#ifndef BACKMX_HISTORY_H
#define BACKMX_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#define HISTORY_EVENTS		8	/* probes, and outcomes, per domain */
#define HISTORY_TEXT_MAX	160	/* a reply as kept (cut) */
#define HISTORY_ID_MAX		32	/* a queue id */
#define HISTORY_DOMAINS_MAX	4096

enum history_kind {
	HISTORY_PROBE_OK,
	HISTORY_PROBE_FAILED,
	HISTORY_DELIVERED,	/* every recipient of the attempt 2xx */
	HISTORY_DEFERRED,	/* some still pending (4xx, no connection) */
	HISTORY_BOUNCED,	/* none pending, some 5xx */
};

struct history_event {
	int64_t	when;
	int	kind;			/* enum history_kind */
	int	code;			/* 0: none (a probe that went well) */
	char	id[HISTORY_ID_MAX];	/* queue id, "" for a probe */
	char	text[HISTORY_TEXT_MAX];
};

/* One domain's record as the dashboard shows it; events newest first. */
struct history_view {
	int64_t			last_delivery;	/* 0: none seen */
	unsigned		deferrals_24h;	/* deferred recipients */
	size_t			nprobes, noutcomes;
	struct history_event	probes[HISTORY_EVENTS];
	struct history_event	outcomes[HISTORY_EVENTS];
};

struct history;

struct history	*history_new(size_t max_domains);
void		 history_free(struct history *);
/* A probe's result ('why': the failure). Any case of domain. */
void		 history_probe(struct history *, const char *domain, int ok,
		    const char *why, int64_t now);
/* One delivery attempt of message 'id' to domain: how many recipients
 * went, stayed pending, bounced; code and text: the first answer. */
void		 history_outcome(struct history *, const char *domain,
		    const char *id, size_t sent, size_t deferred,
		    size_t bounced, int code, const char *text, int64_t now);
/* The two numbers of the domain list: 1, or 0 (both 0) when domain has
 * no record. O(1). */
int		 history_counts(const struct history *, const char *domain,
		    int64_t now, int64_t *last_delivery,
		    unsigned *deferrals_24h);
/* 1 and *out, or 0 (all zero) when domain has no record. */
int		 history_get(const struct history *, const char *domain,
		    int64_t now, struct history_view *out);

#endif
