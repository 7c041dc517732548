/*
 * redis: one connection to one Redis server on the daemon's loop, through
 * hiredis 0.14's asynchronous API and its libevent adapter
 * (docs/cluster.md "The connection").
 *
 * hiredis 0.14 has no timeouts and no reconnect in async mode, so this
 * file owns them: a timer for connecting (and loading the scripts), a
 * timer per request (redis_timeout), reconnection with backoff and
 * jitter, and a circuit breaker that stops asking after
 * REDIS_BREAKER_FAILURES failures in a row and lets one request through
 * after a pause. The server's Lua scripts are loaded at every connect;
 * a NOSCRIPT answer is sent again once with EVAL.
 *
 * The promise to callers: every request is answered exactly once, always
 * later from the loop, never inside redis_call() (unless cancelled
 * first). The reply is valid during the callback only. Loop thread only.
 */
#ifndef BACKMX_REDIS_H
#define BACKMX_REDIS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;
struct redis;
struct redis_req;

/* How a request ended. */
enum redis_status {
	REDIS_REPLY_OK,		/* a reply (it may be a Redis error reply) */
	REDIS_FAIL_DOWN,	/* not connected: not sent */
	REDIS_FAIL_BREAKER,	/* the breaker is open: not sent */
	REDIS_FAIL_TIMEOUT,	/* no reply within redis_timeout */
	REDIS_FAIL_CONN,	/* the connection broke with it in flight */
};

enum redis_breaker { REDIS_BREAKER_CLOSED, REDIS_BREAKER_OPEN,
	REDIS_BREAKER_HALF_OPEN };

/* A message on the subscribed channel: the payload, valid during the
 * call only (peer bytes: not NUL-terminated, may hold anything). */
typedef void	redis_message_cb(const char *payload, size_t len, void *arg);

struct redis_conf {
	const char	*host;		/* an address or a name */
	unsigned	 port;
	unsigned	 timeout_ms;	/* per request: redis_timeout */
	const char	*const *scripts; /* Lua sources, loaded at connect */
	size_t		 nscripts;
	/* Set: a subscriber. At every connect it SUBSCRIBEs to this channel
	 * (ready once the server confirms, within the connect timeout) and
	 * hands each message to on_message. A subscribed connection can send
	 * nothing else: redis_call() answers REDIS_FAIL_DOWN. */
	const char	*subscribe;
	redis_message_cb *on_message;
	void		*message_arg;
};

struct redis_stats {
	int		 connected;	/* connected and its scripts loaded */
	enum redis_breaker breaker;
	uint64_t	 requests;	/* sent to the server */
	uint64_t	 errors;	/* error replies and broken connections */
	uint64_t	 timeouts;
	uint64_t	 refused;	/* not sent: down or breaker open */
	uint64_t	 connects;	/* successful connects, scripts loaded */
	uint64_t	 connect_failures;
	uint64_t	 messages;	/* a subscriber's messages received */
};

/* status REDIS_REPLY_OK: 'reply' is the server's, else NULL. */
typedef void	redis_reply_cb(enum redis_status, const struct redisReply *reply,
		    void *arg);
/* Called (from the loop) each time the connection becomes ready. */
typedef void	redis_ready_cb(void *arg);

#define REDIS_BREAKER_FAILURES	5	/* in a row: the breaker opens */

/* Starts connecting at once. Never NULL; the strings of 'conf' are
 * copied. */
struct redis	*redis_new(struct event_base *, const struct redis_conf *,
		    redis_ready_cb *, void *arg);
/* Frees the connection; requests still pending are dropped without
 * their callbacks. NULL is fine. */
void		 redis_free(struct redis *);

/*
 * Send one command (argv, binary-safe; copied). 'cb' runs once, later,
 * from the loop. The handle is valid until the callback starts or
 * redis_cancel().
 */
struct redis_req *redis_call(struct redis *, int argc, const char **argv,
		    const size_t *argvlen, redis_reply_cb *cb, void *arg);
/* EVALSHA of script 'script' (an index into conf.scripts), then EVAL on
 * NOSCRIPT. argv: the keys, then the arguments. */
struct redis_req *redis_script(struct redis *, size_t script, int nkeys,
		    int argc, const char **argv, const size_t *argvlen,
		    redis_reply_cb *cb, void *arg);
/* The callback will not run. NULL is fine. */
void		 redis_cancel(struct redis_req *);

/* 1 when a request would be sent now (connected, breaker not open). */
int		 redis_usable(const struct redis *);
void		 redis_get_stats(const struct redis *, struct redis_stats *);
/* "host:port", for messages. */
const char	*redis_address(const struct redis *);
const char	*redis_breaker_name(enum redis_breaker);

#endif
