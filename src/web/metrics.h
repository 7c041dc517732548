/*
 * metrics: /metrics in the Prometheus text format 0.0.4
 * (docs/metrics.md). Counters come from src/core/stats.h; gauges are read
 * at each scrape from the parts that own the state, so they are never
 * stale and never kept twice.
 *
 * Owner: main.c. It only borrows the parts below; they must outlive it.
 */
#ifndef BACKMX_METRICS_H
#define BACKMX_METRICS_H

struct config;
struct domains;
struct http;
struct listener;
struct policy;
struct primary_health;
struct queue;
struct resolver;
struct state;

struct metrics_sources {
	const struct config	*conf;		/* read at each scrape */
	struct listener		*listener;
	struct queue		*queue;
	struct primary_health	*health;
	struct state		*state;
	struct resolver		*resolver;
	struct policy		*policy;
	struct cluster		*cluster;	/* NULL: one node */
};

/* Route /metrics on 'http'. */
struct metrics	*metrics_new(struct http *, const struct metrics_sources *);
void		 metrics_free(struct metrics *);
/* The customer domains now (at start and at each reload). */
void		 metrics_set_domains(struct metrics *, const struct domains *);

#endif
