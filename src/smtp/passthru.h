/*
 * passthru: what the session needs to relay a transaction live to a
 * customer's primary (DESIGN.md §3, "primary up"): which primary a
 * domain has (one per transaction), and the primary's replies written
 * back to our client verbatim — code, enhanced code, every line of text.
 *
 * The connection itself is an SMTP client (src/client/client.h) got
 * from deliver_connect(), or from the pool of idle connections kept here
 * for the next session; the session drives it command by command.
 */
#ifndef BACKMX_PASSTHRU_H
#define BACKMX_PASSTHRU_H

#include <stddef.h>

struct client;
struct config;
struct domain;
struct event_base;
struct evbuffer;
struct reply;

#define PASSTHRU_KEY_MAX	300

/* The domain's primary as a key: its route= next hop when it has one
 * (domains routed to the same host share their primary), else the
 * domain itself. */
void	passthru_key(char *buf, size_t bufsz, const struct domain *);

/*
 * The primary's reply as our client must see it: every line "ddd-text"
 * and the last "ddd text", CRLF. The text is the primary's, but bytes
 * outside printable US-ASCII and TAB become '?': what the primary says
 * is peer bytes too, and our client must get clean lines.
 */
void	passthru_reply_out(struct evbuffer *, const struct reply *);

/* 1 when 'r' has a code a relayed command can answer with: 2xx, 4xx,
 * 5xx, or 354 when 'data' (the reply to DATA). A 421 is not relayed: it
 * means the primary closes its channel, not ours. */
int	passthru_reply_ok(const struct reply *, int data);

/*
 * The pool: greeted connections between transactions, at most
 * passthrough_pool_size per primary, kept until the primary closes them
 * or they fall silent past the client's idle timeout. A session takes
 * one at its first pass-through RCPT instead of connecting, and gives its
 * own back at its end when it is idle (client_idle) with no transaction
 * open on the primary. A kept connection can be stale (the primary closed
 * it a moment ago): the session that took it connects afresh when it
 * fails before its first reply, without counting it against the primary.
 */
struct passthru_pool;
struct passthru_pool *passthru_pool_new(const struct config *);
/* Closes every kept connection (at exit, the loop stopped). NULL is
 * fine. */
void	passthru_pool_free(struct passthru_pool *);
/* A kept connection to primary 'key', now the caller's (it sets its
 * callback with client_set_cb); NULL when none. */
struct client *passthru_pool_take(struct passthru_pool *, const char *key);
/* Keep 'c' (idle) for primary 'key', or QUIT it when the pool for that
 * primary is full. The pool owns it from now on. */
void	passthru_pool_put(struct passthru_pool *, const char *key,
	    struct client *);
/* Connections kept now, in all (for tests and logs). */
size_t	passthru_pool_count(const struct passthru_pool *);

#endif
