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

struct event;
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
/* Something says the server may no longer be the master: a failed
 * connect, a broken connection, a timeout, a READONLY reply, a ROLE or
 * INFO that is not "master" (docs/cluster.md "Sentinel"). Never called
 * from inside redis_new() or redis_call(); the redis may not be freed
 * from it. */
typedef void	redis_trouble_cb(const char *why, void *arg);

/* What INFO replication says (peer bytes, parsed and bounded). */
#define REDIS_REPLICAS_MAX	8
struct redis_replica {
	char		addr[64];	/* "ip:port", a checked literal */
	char		state[16];	/* "online", "wait_bgsave"... */
	int64_t		offset;		/* acknowledged offset */
	int64_t		lag_bytes;	/* master_repl_offset - offset, >= 0 */
	int64_t		lag_secs;	/* seconds since its last ack */
};
struct redis_repl {
	int		known;		/* an INFO answer parsed */
	char		role[16];	/* "master", "slave" */
	int64_t		offset;		/* master_repl_offset */
	unsigned	connected;	/* connected_slaves */
	size_t		nreplicas;	/* shown: at most REDIS_REPLICAS_MAX */
	struct redis_replica replicas[REDIS_REPLICAS_MAX];
};

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
	/* Set: at every connect ROLE must answer "master" first, else the
	 * connection is dropped (a Sentinel's master, docs/cluster.md
	 * "Sentinel"). 'host' may then be NULL: no connect until
	 * redis_set_server(). */
	int		 check_role;
	redis_trouble_cb *on_trouble;	/* NULL: none */
	void		*trouble_arg;
	/* Set: INFO replication at every connect and every
	 * REDIS_INFO_SECS: the role and the replicas' lag for the status. */
	int		 poll_info;
};

#define REDIS_INFO_SECS		5

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
	struct redis_repl repl;		/* poll_info's last answer */
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
/* "host:port", for messages; "none" while no server is named. */
const char	*redis_address(const struct redis *);
/* Talk to this server from now on: a new one drops the connection and
 * connects at once; the same one, not connected, connects at once. Not
 * from inside one of this redis' own callbacks. */
void		 redis_set_server(struct redis *, const char *host,
		    unsigned port);

/* INFO replication's text (peer bytes) into *out; 0, or -1 when it is no
 * such answer. Unknown lines are ignored; replicas past the limit are
 * counted, not kept. */
int		 redis_parse_repl(const char *p, size_t len,
		    struct redis_repl *out);
/* Helpers shared with src/cluster/sentinel.c: "host:port" ("[v6]:port"),
 * the monotonic clock in ms, a timer armed for ms from now. */
void		 redis_format_addr(char *out, size_t outsz, const char *host,
		    unsigned port);
uint64_t	 redis_now_ms(void);
void		 redis_arm(struct event *, unsigned ms);
/* 1 to 18 digits (peer bytes): 0 and *out, or -1. */
int		 redis_parse_num(const char *p, size_t len, int64_t *out);
/* A reply's count or time (peer bytes): an integer reply, or with
 * 'strings' also a string reply of 1 to 18 digits (a hash field's
 * value). The value, negative when it is neither. */
int64_t		 redis_reply_int(const struct redisReply *, int strings);
/*
 * What an answer that is not the one expected says, for a log line's
 * error="..." field: the server's error text through log_escape() (its
 * bytes are a peer's: a bare LF would start a forged log line), or
 * 'other'. A static buffer: use it before the next call (loop thread).
 */
const char	*redis_reply_error(const struct redisReply *,
		    const char *other);

/* An address a server named (peer bytes): an IPv4 or IPv6 literal that
 * is loopback or unicast (not unspecified, multicast or broadcast) and a
 * port of 1-65535 in digits. 0 and host (NUL-terminated) and *port, or
 * -1. */
int		 redis_parse_addr(const char *host, size_t hostlen,
		    const char *port, size_t portlen, char *out,
		    size_t outsz, unsigned *port_out);
const char	*redis_breaker_name(enum redis_breaker);

#endif
