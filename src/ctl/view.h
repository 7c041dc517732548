/*
 * view: the control socket's answers rendered (src/ctl/view.c), text or
 * JSON (with "json": one JSON document a line). The listings are shared
 * with backmxctl, which reads the databases itself when the daemon is
 * stopped, so both paths print the same bytes.
 */
#ifndef BACKMX_VIEW_H
#define BACKMX_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "state.h"

struct evbuffer;
struct qdb;
struct qdb_msg;
struct domain;
struct domains;
struct learn;
struct sched;
struct state;

/*
 * The result lines of "queue list" (without the status line), a page at
 * a time so that neither the daemon nor backmxctl holds a million of them
 * (issue 16): each call renders up to 'max' messages into out and returns
 * 1 while more may follow, 0 once the end (and the text trailer) is in
 * out, -1 on a database error. Shared with backmxctl, which reads
 * queue.db itself when the daemon is stopped.
 */
struct queue_listing;
struct queue_listing *control_queue_list_new(struct qdb *, int json);
int		 control_queue_list_page(struct queue_listing *,
		    struct evbuffer *out, size_t max);
void		 control_queue_list_free(struct queue_listing *);
/* One message as "queue show" renders it. */
void		 control_queue_show(const struct qdb_msg *,
		    struct evbuffer *out, int json);

/*
 * Everything "domain list|show" (and the dashboard, docs/dashboard.md)
 * says of one domain: the one gatherer of those rows.
 */
struct domain_view {
	const struct domain	*d;
	struct state_domain	 rec;		/* all 0: no record */
	int			 live;		/* health, queue known */
	int			 up;
	size_t			 queued;
	time_t			 oldest;
	size_t			 valid, invalid;
};
/*
 * Live (learn != NULL, in the daemon): the record through learn_domain(),
 * which brings the lifecycle up to date (and may stage its write), health
 * and queue from the scheduler. Offline (backmxctl, daemon stopped): the
 * stored record as it is; health and queue unknown. O(1) per domain (two
 * indexed reads of state.db). 0 or -1.
 */
int		 domain_view_get(struct state *, struct learn *,
		    struct sched *, const struct domain *, int64_t now,
		    struct domain_view *);
/* An age for a column: "45s", "12m", "3h05m", "2d04h"; "-" for none
 * (since 0). Into buf; returns buf or "-". */
const char	*view_age(int64_t since, int64_t now, char *buf, size_t bufsz);
/* Its lifecycle's name ("learning", "active", "refused"), or NULL. */
const char	*domain_view_lifecycle(const struct domain_view *);

/*
 * The result lines of "domain list", "domain show" and "recipients list"
 * into out, shared with backmxctl's offline path. In the daemon 'learn'
 * and 'sched' are given: the lifecycle is brought up to date through
 * learn_domain() (which may stage a write) and health and queue are the
 * live ones. Offline both are NULL: the lifecycle as stored, health and
 * queue unknown ("-", JSON null). 0, or -1 on a store error.
 */
int		 control_domain_list(struct state *, struct learn *,
		    struct sched *, const struct domains *,
		    struct evbuffer *out, int json, int64_t now);
int		 control_domain_show(struct state *, struct learn *,
		    struct sched *, const struct domain *,
		    struct evbuffer *out, int json, int64_t now);
/* The domain's recipients= list (source "static"), then the store's
 * unexpired rows. */
int		 control_rcpt_list(struct state *, const struct domain *,
		    struct evbuffer *out, int json, int64_t now);

/*
 * The answer to "status": the daemon's pid, seconds up, customer domains,
 * and the loop's lag (core/looplag: the latest a 25 ms probe ran, probes
 * over 50 ms late, the histogram).
 */
struct looplag_stats;
void		 view_status(struct evbuffer *out, int json, long pid,
		    int64_t uptime, size_t domains,
		    const struct looplag_stats *);

/* The answer to a queue change (flush, delete, hold, release) of id. */
void		 view_queue_changed(struct evbuffer *out, int json,
		    const char *id);
/* The answer to "recipients add" (status STATE_RCPT_*) or, with deleted,
 * "recipients delete"; still_static: the address stays valid through the
 * domain's recipients= list. */
void		 view_rcpt_changed(struct evbuffer *out, int json,
		    const char *addr, int deleted, int still_static,
		    int status);
/* The answers to "greylist allow VALUE" (added: a new entry, else it was
 * there already) and "greylist delete" (n rows). */
void		 view_greylist_allowed(struct evbuffer *out, int json,
		    const char *value, int added);
void		 view_greylist_deleted(struct evbuffer *out, int json,
		    int n);
struct cluster_status;
/* "cluster status": the Redis connection, the breaker, the replay queue
 * and the nodes seen (docs/cluster.md "Status"); 'now' ages the
 * heartbeats. */
void		 view_cluster_status(struct evbuffer *out, int json,
		    const struct cluster_status *, int64_t now);

#endif
