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

struct evbuffer;
struct qdb;
struct qdb_msg;
struct domain;
struct domains;
struct learn;
struct sched;
struct state;

/*
 * The result lines of "queue list" (without the status line) into out:
 * shared with backmxctl, which reads queue.db itself when the daemon is
 * stopped. 0, or -1 on a database error.
 */
int		 control_queue_list(struct qdb *, struct evbuffer *out,
		    int json);
/* One message as "queue show" renders it. */
void		 control_queue_show(const struct qdb_msg *,
		    struct evbuffer *out, int json);

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

#endif
