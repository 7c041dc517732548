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
/* A kept connection to primary 'key', now the caller's (it sets its
 * callback with client_set_cb); NULL when none. */
struct client *primary_pool_take(struct primary_pool *, const char *key);
/* Keep 'c' (idle) for primary 'key', or QUIT it when the pool for that
 * primary is full. The pool owns it from now on. */
void	primary_pool_put(struct primary_pool *, const char *key,
	    struct client *);
/* Connections kept now, in all (for tests and logs). */
size_t	primary_pool_count(const struct primary_pool *);

#endif
