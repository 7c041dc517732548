/*
 * pool: greeted connections to customers' primaries, kept between
 * pass-through transactions (docs/passthrough.md): at most
 * passthrough_pool_size per primary, kept until the primary closes them
 * or they fall silent past the client's idle timeout. A session takes
 * one at its first pass-through RCPT instead of connecting, and gives its
 * own back at its end when it is idle (client_idle) with no transaction
 * open on the primary. A kept connection can be stale (the primary closed
 * it a moment ago): the session that took it connects afresh when it
 * fails before its first reply, without counting it against the primary.
 */
#ifndef BACKMX_POOL_H
#define BACKMX_POOL_H

#include <stddef.h>

struct client;
struct config;

/* A primary's key (passthru_key()): at most this long. */
#define PRIMARY_POOL_KEY_MAX	300

struct primary_pool;
struct primary_pool *primary_pool_new(const struct config *);
/* Closes every kept connection (at exit, the loop stopped). NULL is
 * fine. */
void	primary_pool_free(struct primary_pool *);
/* QUIT every kept connection, the loop still running (the stop,
 * docs/service.md §5); the pool stays usable and empty. */
void	primary_pool_quit_all(struct primary_pool *);
/* A kept connection to primary 'key', now the caller's (it sets its
 * callback with client_set_cb); NULL when none. */
struct client *primary_pool_take(struct primary_pool *, const char *key);
/* Keep 'c' (idle) for primary 'key', or QUIT it when the pool for that
 * primary is full. The pool owns it from now on. */
void	primary_pool_put(struct primary_pool *, const char *key,
	    struct client *);
/*
 * passthrough_connection_limit: the pass-through connections to one
 * primary in sessions' hands (connecting or in a transaction; the idle
 * ones kept here are bounded by passthrough_pool_size). A stranger's
 * sessions must not fill the primary's own per-client limit (Postfix's
 * smtpd_client_connection_count_limit) with connections from backmx:
 * the next one would be greeted 421, and deliveries, probes and other
 * clients' mail with it. hold: 1 and one more counted, or 0 when the
 * primary has its limit already; every 1 is given back by unhold. full:
 * 1 when a hold would fail now.
 */
int	primary_pool_hold(struct primary_pool *, const char *key);
void	primary_pool_unhold(struct primary_pool *, const char *key);
int	primary_pool_full(const struct primary_pool *, const char *key);
/* Connections kept now, in all (for tests and logs). */
size_t	primary_pool_count(const struct primary_pool *);

#endif
