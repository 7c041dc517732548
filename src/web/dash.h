/*
 * dash: the dashboard (docs/dashboard.md): read-only HTML pages and the
 * same data as JSON, on the metrics HTTP server (src/web/http.h).
 *
 *   /                    every customer domain, sortable, filterable, paged
 *   /domain/NAME         one: health, probes, its queue (paged), outcomes
 *   /api/domains         the list as JSON (same query)
 *   /api/domain/NAME     one domain as JSON (?page=N for its queue)
 *
 * The rows are domain list/show's (domain_view_get(), src/ctl/view.h),
 * with the scheduler's per-domain queue and primary/history's record.
 */
#ifndef BACKMX_DASH_H
#define BACKMX_DASH_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct http;
struct learn;
struct queue;
struct state;
struct domains;
struct dash_query;

#define DASH_PER_PAGE		100	/* domains on a page of the list */
#define DASH_MSGS_PER_PAGE	50	/* queued messages on a domain's */

struct dash;

/* myhostname: shown in the title (copied). q: the queue (not owned). */
struct dash	*dash_new(const char *myhostname, struct queue *q);
void		 dash_free(struct dash *);	/* NULL does nothing */
/* As control_set_knowledge() (control.h): main.c calls it at start and
 * after each reload, before freeing the old domains table. Until then
 * the pages answer 503. NULL does nothing (the dashboard is off). */
void		 dash_set_knowledge(struct dash *, struct learn *,
		    struct state *, const struct domains *);
/* Register the four routes on h. */
void		 dash_routes(struct dash *, struct http *h);

/* The renderers the routes call (exposed for the tests). 'status' out:
 * the HTTP code to answer with; out holds the page (or the error's). */
void		 dash_render_list(struct dash *, const struct dash_query *,
		    int json, struct evbuffer *out, int64_t now, int *status);
void		 dash_render_domain(struct dash *, const char *name,
		    unsigned page, int json, struct evbuffer *out,
		    int64_t now, int *status);

#endif
