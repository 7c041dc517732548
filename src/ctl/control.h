/*
 * control: the daemon's UNIX control socket (control_socket), served on
 * the event loop to backmxctl. docs/queue.md "Admin".
 *
 * One request line per connection (at most CONTROL_LINE_MAX bytes,
 * printable ASCII, words from a whitelist), one answer, then close. The
 * answer's first line is "ok" or "error KIND TEXT" (KIND: usage,
 * notfound, domain, io); the lines after it are the result, text or, with
 * the request's trailing word "json", one JSON document a line. Peers
 * must be uid 0 or the daemon's uid (SO_PEERCRED); the socket is 0600.
 *
 *   queue list [json]            every queued message
 *   queue show ID [json]         one message
 *   queue flush [DOMAIN] [json]  make due now (all, or one domain's)
 *   queue delete|hold|release ID [json]
 *
 * Changes go through the queue's writer thread (queue_admin()); reads use
 * the loop's read connection on queue.db.
 */
#ifndef BACKMX_CONTROL_H
#define BACKMX_CONTROL_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct queue;
struct qdb;
struct qdb_msg;
struct control;

#define CONTROL_LINE_MAX	512

/* Bind 'path' (a stale socket there is removed first; anything else
 * there is an error). NULL with a reason in err. */
struct control	*control_open(struct event_base *, const char *path,
		    struct queue *, char *err, size_t errsz);
/* Stop listening, cut connections, remove the socket. */
void		 control_close(struct control *);

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

#endif
