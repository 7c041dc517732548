/*
 * redis: one Redis connection on the loop (docs/cluster.md "The
 * connection"), with what hiredis 0.14 leaves to its user: timeouts,
 * reconnection, a circuit breaker.
 *
 * hiredis 0.14's rules, each followed below (docs/dependencies.md):
 * - onConnect(REDIS_ERR) frees the context itself after the callback;
 *   a redisAsyncConnect() whose ac->err is set at once is ours to free.
 * - onDisconnect runs only after a successful connect, also from our own
 *   redisAsyncFree(); then the pending callbacks have already run with a
 *   NULL reply.
 * - A context is never freed from inside one of its callbacks: drop_later()
 *   frees it from a zero-delay event instead.
 * - Commands through redisAsyncCommandArgv() only: binary-safe, no format
 *   string ever sees peer bytes.
 *
 * A request lives in r->reqs from redis_call() to its end. It is answered
 * exactly once: by its reply, its timer (timeout, or the zero-delay
 * "not sent" answer), never inside redis_call(). A request that timed out
 * or was cancelled while hiredis still holds its pointer stays allocated,
 * with no callback, until hiredis hands it back (a reply, or NULL when the
 * context goes).
 */
#include "redis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "log.h"
#include "str.h"
#include "xmem.h"

#define REDIS_CONNECT_TIMEOUT_MS 1000	/* connect and load the scripts */
#define REDIS_BACKOFF_MIN_MS	100	/* first reconnect delay */
#define REDIS_BACKOFF_MAX_MS	5000	/* doubling stops here */
#define REDIS_BREAKER_OPEN_MS	2000	/* no requests for so long */
#define REDIS_SHA_LEN		40

struct redis_req {
	TAILQ_ENTRY(redis_req)	 link;
	struct redis		*r;
	struct event		*ev;		/* timeout, or "answer now" */
	redis_reply_cb		*cb;		/* NULL once answered/cancelled */
	void			*arg;
	int			 inflight;	/* hiredis holds a pointer */
	int			 settled;	/* the breaker counted it */
	int			 probe;		/* the half-open breaker's try */
	int			 setup;		/* a SCRIPT LOAD of the connect */
	int			 evalled;	/* resent with EVAL */
	enum redis_status	 st;		/* a "not sent" answer */
	size_t			 script;	/* index + 1; 0: a plain command */
	int			 nkeys;
	int			 argc;
	char			**argv;
	size_t			*argvlen;
};

struct redis {
	struct event_base	*base;
	char			 host[256];
	unsigned		 port;
	unsigned		 timeout_ms;
	char			 addr[300];
	char			**src;		/* the Lua scripts */
	char			(*sha)[REDIS_SHA_LEN + 1];
	size_t			 nscripts;
	redis_ready_cb		*ready_cb;
	void			*ready_arg;
	char			*channel;	/* a subscriber's; NULL: none */
	redis_message_cb	*message_cb;
	void			*message_arg;
	int			 check_role;
	redis_trouble_cb	*trouble_cb;
	void			*trouble_arg;
	struct event		*ev_trouble;	/* tell it from the loop */
	char			 trouble_why[64];
	struct event		*ev_info;	/* NULL: no INFO polling */
	struct redis_req	*info_req;
	struct redis_repl	 repl;

	redisAsyncContext	*ac;		/* NULL: not connected */
	int			 ready;		/* connected, scripts loaded */
	size_t			 loading;	/* SCRIPT LOADs outstanding */
	struct event		*ev_conn;	/* connect deadline or reconnect */
	struct event		*ev_drop;	/* free ac outside its callbacks */
	redisAsyncContext	*drop_ac;	/* the one drop_later() meant */
	unsigned		 backoff_ms;

	enum redis_breaker	 breaker;
	unsigned		 failures;	/* in a row */
	uint64_t		 open_until;	/* monotonic ms */

	TAILQ_HEAD(, redis_req)	 reqs;
	struct redis_stats	 st;
};

static void	start_connect(struct redis *);
static void	send_req(struct redis_req *);
static void	subscribe(struct redis *);
static void	after_role(struct redis *);
static void	ask_info(struct redis *);

uint64_t
redis_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
redis_arm(struct event *ev, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* The server may not be the master any more: told from a zero-delay
 * event, so the listener never runs inside our callbacks (and one burst
 * of failures is told once). */
static void
trouble(struct redis *r, const char *why)
{
	if (r->trouble_cb == NULL)
		return;
	str_copy(r->trouble_why, sizeof(r->trouble_why), why);
	event_active(r->ev_trouble, EV_TIMEOUT, 0);
}

static void
trouble_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	r->trouble_cb(r->trouble_why, r->trouble_arg);
}

/* hiredis's errstr of a context, escaped as redis_reply_error() does: it
 * can hold the text of a server's error reply. */
static const char *
ctx_error(const redisAsyncContext *ac)
{
	static char buf[256];

	return log_escape(buf, sizeof(buf), ac->errstr, strlen(ac->errstr));
}

const char *
redis_breaker_name(enum redis_breaker b)
{
	switch (b) {
	case REDIS_BREAKER_CLOSED:
		return "closed";
	case REDIS_BREAKER_OPEN:
		return "open";
	case REDIS_BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "?";
}

/* --- the connection ------------------------------------------------------ */

/* Reconnect after the backoff, with +-25% jitter so that nodes that lost
 * the same server do not come back in step. */
static void
schedule_reconnect(struct redis *r)
{
	unsigned b = r->backoff_ms, d;

	d = b - b / 4 + arc4random_uniform(b / 2 + 1);
	r->backoff_ms = b * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS :
	    b * 2;
	event_del(r->ev_conn);
	redis_arm(r->ev_conn, d);
}

/* Free the context now: never from inside one of its callbacks. */
static void
drop(struct redis *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	if (ac == NULL)
		return;
	log_warn("event=redis_disconnect server=%s why=\"%s\"", r->addr, why);
	r->ac = NULL;
	r->drop_ac = NULL;
	r->ready = 0;
	r->loading = 0;
	/* Runs every pending callback with NULL (reply_cb answers them);
	 * on_disconnect sees r->ac != ac and leaves it. */
	redisAsyncFree(ac);
	schedule_reconnect(r);
}

static void
drop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	if (r->ac != NULL && r->ac == r->drop_ac)
		drop(r, "failing");
	r->drop_ac = NULL;
}

static void
drop_later(struct redis *r)
{
	if (r->ac == NULL)
		return;
	r->drop_ac = r->ac;
	event_active(r->ev_drop, EV_TIMEOUT, 0);
}

static void
became_ready(struct redis *r)
{
	r->ready = 1;
	r->backoff_ms = REDIS_BACKOFF_MIN_MS;
	r->st.connects++;
	event_del(r->ev_conn);
	log_info("event=redis_connected server=%s scripts=%zu", r->addr,
	    r->nscripts);
	ask_info(r);
	if (r->ready_cb != NULL)
		r->ready_cb(r->ready_arg);
}

static void
loaded_cb(enum redis_status st, const struct redisReply *reply, void *arg)
{
	struct redis_req *q = arg;
	struct redis *r = q->r;
	size_t i = q->script - 1;

	if (st != REDIS_REPLY_OK || reply->type != REDIS_REPLY_STRING ||
	    reply->len != REDIS_SHA_LEN) {
		log_warn("event=redis_script_load server=%s script=%zu "
		    "error=\"%s\"", r->addr, i, st == REDIS_REPLY_OK ?
		    redis_reply_error(reply, "no answer") : "no answer");
		r->st.connect_failures++;
		drop_later(r);
		return;
	}
	memcpy(r->sha[i], reply->str, REDIS_SHA_LEN);
	r->sha[i][REDIS_SHA_LEN] = '\0';
	if (--r->loading == 0)
		became_ready(r);
}

static struct redis_req *
req_new(struct redis *r, int argc, const char **argv, const size_t *argvlen,
    redis_reply_cb *cb, void *arg);
static void	req_timer_cb(evutil_socket_t, short, void *);

/*
 * ROLE's answer at connect: an array whose first element is "master",
 * "slave" or "sentinel". Anything else drops the connection, and the
 * listener hears of it (a Sentinel then asks who the master is now).
 */
static void
role_cb(enum redis_status st, const struct redisReply *reply, void *arg)
{
	struct redis_req *q = arg;
	struct redis *r = q->r;
	const redisReply *e;

	if (st == REDIS_REPLY_OK && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements >= 1 && (e = reply->element[0]) != NULL &&
	    e->type == REDIS_REPLY_STRING && e->len == 6 &&
	    memcmp(e->str, "master", 6) == 0) {
		after_role(r);
		return;
	}
	log_warn("event=redis_not_master server=%s", r->addr);
	r->st.connect_failures++;
	drop_later(r);
	trouble(r, "not master");
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;
	struct redis_req *q;
	const char *argv[1];
	size_t len[1];

	if (r == NULL || r->ac != ac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		log_warn("event=redis_connect server=%s error=\"%s\"", r->addr,
		    ctx_error(ac));
		r->ac = NULL;
		r->st.connect_failures++;
		schedule_reconnect(r);
		trouble(r, "connect failed");
		return;
	}
	if (r->check_role) {
		argv[0] = "ROLE";
		len[0] = 4;
		q = req_new(r, 1, argv, len, role_cb, NULL);
		q->arg = q;
		q->setup = 1;
		send_req(q);
		return;
	}
	after_role(r);
}

/* Connected (and the master, when that is asked): subscribe, or load
 * the scripts. */
static void
after_role(struct redis *r)
{
	struct redis_req *q;
	size_t i;
	const char *argv[3];
	size_t len[3];

	if (r->channel != NULL) {
		subscribe(r);
		return;
	}
	if (r->nscripts == 0) {
		became_ready(r);
		return;
	}
	/* The scripts, loaded at every connect: a restarted server has
	 * none. Ready once every sha is back. */
	r->loading = r->nscripts;
	for (i = 0; i < r->nscripts; i++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = r->src[i];
		len[0] = 6;
		len[1] = 4;
		len[2] = strlen(r->src[i]);
		q = req_new(r, 3, argv, len, loaded_cb, NULL);
		q->arg = q;
		q->setup = 1;
		q->script = i + 1;
		send_req(q);
	}
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis *r = ac->data;

	/* Our own drop() cleared r->ac first: nothing to do. */
	if (r == NULL || r->ac != ac)
		return;
	log_warn("event=redis_disconnect server=%s why=\"%s\"", r->addr,
	    status == REDIS_OK ? "closed" : ctx_error(ac));
	/* hiredis frees the context after this callback; a drop_later()
	 * meant for it must not hit a new context at the same address. */
	r->ac = NULL;
	r->drop_ac = NULL;
	r->ready = 0;
	r->loading = 0;
	schedule_reconnect(r);
	trouble(r, "disconnected");
}

static void
start_connect(struct redis *r)
{
	redisAsyncContext *ac;

	/* A Sentinel's master not named yet: redis_set_server() starts. */
	if (r->host[0] == '\0')
		return;
	ac = redisAsyncConnect(r->host, (int)r->port);
	if (ac == NULL || ac->err) {
		/* Failed at once: hiredis calls no callback, the context is
		 * ours to free. */
		log_warn("event=redis_connect server=%s error=\"%s\"", r->addr,
		    ac != NULL ? ctx_error(ac) : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		r->st.connect_failures++;
		schedule_reconnect(r);
		trouble(r, "connect failed");
		return;
	}
	ac->data = r;
	r->ac = ac;
	redisLibeventAttach(ac, r->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* hiredis 0.14 has no connect timeout: a server that accepts and
	 * then says nothing (stopped, or swapping) is caught here. */
	redis_arm(r->ev_conn, REDIS_CONNECT_TIMEOUT_MS);
}

/* The connect deadline, or the reconnect delay (r->ac NULL). */
static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	if (r->ac == NULL) {
		start_connect(r);
		return;
	}
	if (!r->ready) {
		r->st.connect_failures++;
		drop(r, "connect timeout");
		trouble(r, "connect timeout");
	}
}

/* --- a subscriber -------------------------------------------------------- */

/*
 * hiredis keeps a SUBSCRIBE's callback for the connection's life and runs
 * it for the confirmation and for every message; with NULL when the
 * context goes (then on_disconnect or drop() deal with it). 'privdata' is
 * r, which outlives every context of its own.
 */
static void
sub_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis *r = privdata;
	const redisReply *reply = reply_, *kind, *body;

	if (reply == NULL || r->ac != ac || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements < 3)
		return;
	kind = reply->element[0];
	body = reply->element[2];
	if (kind->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(kind->str, "subscribe") == 0) {
		if (!r->ready)
			became_ready(r);
		return;
	}
	if (strcmp(kind->str, "message") != 0 ||
	    body->type != REDIS_REPLY_STRING)
		return;
	r->st.messages++;
	if (r->message_cb != NULL)
		r->message_cb(body->str, body->len, r->message_arg);
}

/* At every connect; ready at the server's confirmation, which the
 * connect timer waits for like a script load. */
static void
subscribe(struct redis *r)
{
	const char *argv[2] = { "SUBSCRIBE", r->channel };
	size_t len[2] = { 9, strlen(r->channel) };

	/* Nothing is written to a listener: keepalive is how a peer that
	 * vanished (no FIN, no RST) is found at all. */
	(void)redisEnableKeepAlive(&r->ac->c);
	if (redisAsyncCommandArgv(r->ac, sub_cb, r, 2, argv, len) !=
	    REDIS_OK) {
		r->st.connect_failures++;
		drop_later(r);
	}
}

/* --- the breaker ---------------------------------------------------------- */

static void
breaker_open(struct redis *r)
{
	r->breaker = REDIS_BREAKER_OPEN;
	r->open_until = redis_now_ms() + REDIS_BREAKER_OPEN_MS;
	log_warn("event=redis_breaker server=%s state=open failures=%u "
	    "pause_ms=%u", r->addr, r->failures, REDIS_BREAKER_OPEN_MS);
	/* A stalled server keeps what was written to it: start again on a
	 * new connection rather than wait behind it. */
	drop_later(r);
}

/* A sent request ended: once per request, at its reply or its timeout. */
static void
settle(struct redis_req *q, int ok)
{
	struct redis *r = q->r;

	if (q->settled || q->setup)
		return;
	q->settled = 1;
	if (ok) {
		r->failures = 0;
		if (r->breaker != REDIS_BREAKER_CLOSED) {
			r->breaker = REDIS_BREAKER_CLOSED;
			log_info("event=redis_breaker server=%s state=closed",
			    r->addr);
		}
		return;
	}
	r->failures++;
	if (q->probe || (r->breaker == REDIS_BREAKER_CLOSED &&
	    r->failures >= REDIS_BREAKER_FAILURES))
		breaker_open(r);
}

/* --- requests ------------------------------------------------------------- */

static struct redis_req *
req_new(struct redis *r, int argc, const char **argv, const size_t *argvlen,
    redis_reply_cb *cb, void *arg)
{
	struct redis_req *q;
	int i;

	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->ev = evtimer_new(r->base, req_timer_cb, q);
	q->argc = argc;
	q->argv = xreallocarray(NULL, (size_t)argc + 1, sizeof(*q->argv));
	q->argvlen = xreallocarray(NULL, (size_t)argc + 1,
	    sizeof(*q->argvlen));
	for (i = 0; i < argc; i++) {
		q->argv[i] = xmalloc(argvlen[i] + 1);
		memcpy(q->argv[i], argv[i], argvlen[i]);
		q->argv[i][argvlen[i]] = '\0';
		q->argvlen[i] = argvlen[i];
	}
	TAILQ_INSERT_TAIL(&r->reqs, q, link);
	return q;
}

static void
req_free(struct redis_req *q)
{
	int i;

	TAILQ_REMOVE(&q->r->reqs, q, link);
	event_free(q->ev);
	for (i = 0; i < q->argc; i++)
		free(q->argv[i]);
	free(q->argv);
	free(q->argvlen);
	free(q);
}

/* The caller's callback, once. */
static void
answer(struct redis_req *q, enum redis_status st, const redisReply *reply)
{
	redis_reply_cb *cb = q->cb;

	q->cb = NULL;
	if (cb != NULL)
		cb(st, reply, q->arg);
}

/* Not sent: answered from the loop, never inside redis_call(). */
static void
fail_later(struct redis_req *q, enum redis_status st)
{
	static const struct timeval zero = { 0, 0 };

	q->st = st;
	q->r->st.refused++;
	evtimer_add(q->ev, &zero);
}

static void
req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis_req *q = arg;
	struct redis *r = q->r;

	if (!q->inflight) {
		answer(q, q->st, NULL);
		req_free(q);
		return;
	}
	/* hiredis keeps the pointer: q stays until reply_cb gets it back. */
	if (!q->setup) {
		r->st.timeouts++;
		log_debug("event=redis_timeout server=%s timeout_ms=%u",
		    r->addr, r->timeout_ms);
		trouble(r, "timeout");
	}
	settle(q, 0);
	answer(q, REDIS_FAIL_TIMEOUT, NULL);
}

static int
is_noscript(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
	    strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void
reply_cb(redisAsyncContext *ac, void *reply_, void *privdata)
{
	struct redis_req *q = privdata;
	struct redis *r = q->r;
	const redisReply *reply = reply_;

	q->inflight = 0;
	if (reply == NULL) {
		/* The context is going: every pending request lands here. */
		if (!q->settled && q->cb != NULL && !q->setup)
			r->st.errors++;
		settle(q, 0);
		answer(q, REDIS_FAIL_CONN, NULL);
		req_free(q);
		return;
	}
	/* A server that lost its scripts (restarted, SCRIPT FLUSH): once
	 * more with the source, within the same timeout. */
	if (q->script > 0 && !q->setup && !q->evalled && q->cb != NULL &&
	    is_noscript(reply)) {
		q->evalled = 1;
		send_req(q);
		if (q->inflight)
			return;
		settle(q, 0);
		answer(q, REDIS_FAIL_CONN, NULL);
		req_free(q);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR && !q->settled && !q->setup)
		r->st.errors++;
	/* A replica (a failover demoted our master): ask again. */
	if (reply->type == REDIS_REPLY_ERROR && reply->str != NULL &&
	    strncmp(reply->str, "READONLY", 8) == 0)
		trouble(r, "READONLY");
	settle(q, reply->type != REDIS_REPLY_ERROR);
	event_del(q->ev);
	answer(q, REDIS_REPLY_OK, reply);
	req_free(q);
}

/* Put q on the wire; q->inflight says whether it went. */
static void
send_req(struct redis_req *q)
{
	struct redis *r = q->r;
	const char **v;
	size_t *l, n = 0;
	char nk[16];
	int i;

	v = xreallocarray(NULL, (size_t)q->argc + 3, sizeof(*v));
	l = xreallocarray(NULL, (size_t)q->argc + 3, sizeof(*l));
	if (q->script > 0 && !q->setup) {
		size_t s = q->script - 1;

		v[n] = q->evalled ? "EVAL" : "EVALSHA";
		l[n] = strlen(v[n]);
		n++;
		v[n] = q->evalled ? r->src[s] : r->sha[s];
		l[n] = strlen(v[n]);
		n++;
		snprintf(nk, sizeof(nk), "%d", q->nkeys);
		v[n] = nk;
		l[n] = strlen(nk);
		n++;
	}
	for (i = 0; i < q->argc; i++, n++) {
		v[n] = q->argv[i];
		l[n] = q->argvlen[i];
	}
	if (r->ac != NULL && redisAsyncCommandArgv(r->ac, reply_cb, q, (int)n,
	    v, l) == REDIS_OK) {
		q->inflight = 1;
		if (!q->evalled) {
			r->st.requests += !q->setup;
			redis_arm(q->ev, q->setup ? REDIS_CONNECT_TIMEOUT_MS :
			    r->timeout_ms);
		}
	}
	free(v);
	free(l);
}

/* Send q, or answer it later with why not. */
static void
submit(struct redis_req *q)
{
	struct redis *r = q->r;

	if (!r->ready || r->channel != NULL) {
		fail_later(q, REDIS_FAIL_DOWN);
		return;
	}
	if (r->breaker == REDIS_BREAKER_OPEN &&
	    redis_now_ms() >= r->open_until) {
		/* One request tries the server; the rest still wait. */
		r->breaker = REDIS_BREAKER_HALF_OPEN;
		q->probe = 1;
	} else if (r->breaker != REDIS_BREAKER_CLOSED) {
		fail_later(q, REDIS_FAIL_BREAKER);
		return;
	}
	send_req(q);
	if (!q->inflight) {
		if (q->probe)
			r->breaker = REDIS_BREAKER_OPEN;
		r->st.errors++;
		r->st.refused--;	/* fail_later() counts it refused */
		fail_later(q, REDIS_FAIL_CONN);
	}
}

struct redis_req *
redis_call(struct redis *r, int argc, const char **argv,
    const size_t *argvlen, redis_reply_cb *cb, void *arg)
{
	struct redis_req *q = req_new(r, argc, argv, argvlen, cb, arg);

	submit(q);
	return q;
}

struct redis_req *
redis_script(struct redis *r, size_t script, int nkeys, int argc,
    const char **argv, const size_t *argvlen, redis_reply_cb *cb, void *arg)
{
	struct redis_req *q = req_new(r, argc, argv, argvlen, cb, arg);

	if (script >= r->nscripts)
		panic("redis_script: no script %zu", script);
	q->script = script + 1;
	q->nkeys = nkeys;
	submit(q);
	return q;
}

void
redis_cancel(struct redis_req *q)
{
	if (q == NULL)
		return;
	q->cb = NULL;
	/* In flight: reply_cb frees it when hiredis hands it back; its
	 * timer still counts a stalled server against the breaker. */
	if (!q->inflight)
		req_free(q);
}

/* --- the server's replication (INFO) -------------------------------------- */

static void
info_cb(enum redis_status st, const struct redisReply *reply, void *arg)
{
	struct redis_req *q = arg;
	struct redis *r = q->r;

	r->info_req = NULL;
	if (st != REDIS_REPLY_OK || reply->type != REDIS_REPLY_STRING ||
	    redis_parse_repl(reply->str, reply->len, &r->repl) == -1) {
		r->repl.known = 0;
		return;
	}
	/* A master demoted under us (a failover we did not hear of). */
	if (r->check_role && strcmp(r->repl.role, "master") != 0) {
		log_warn("event=redis_not_master server=%s role=%s", r->addr,
		    r->repl.role);
		drop_later(r);
		trouble(r, "not master");
	}
}

/* Not a caller's request: neither counted nor seen by the breaker; it
 * has the connect timeout (a stalled server is the requests' business). */
static void
ask_info(struct redis *r)
{
	static const char *argv[2] = { "INFO", "replication" };
	static const size_t len[2] = { 4, 11 };
	struct redis_req *q;

	if (r->ev_info == NULL || r->info_req != NULL || !r->ready)
		return;
	q = req_new(r, 2, argv, len, info_cb, NULL);
	q->arg = q;
	q->setup = 1;
	send_req(q);
	if (!q->inflight) {
		req_free(q);
		return;
	}
	r->info_req = q;
}

static void
info_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;

	redis_arm(r->ev_info, REDIS_INFO_SECS * 1000);
	ask_info(r);
}

/* A short word a server sent: printable ASCII, no spaces. */
static int
printable(const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return 0;
	return 1;
}

void
redis_format_addr(char *out, size_t outsz, const char *host, unsigned port)
{
	int v6 = strchr(host, ':') != NULL;

	snprintf(out, outsz, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
	    port);
}

/* A count or an offset. */
int
redis_parse_num(const char *p, size_t len, int64_t *out)
{
	int64_t n = 0;
	size_t i;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		n = n * 10 + (p[i] - '0');
	}
	*out = n;
	return 0;
}

const char *
redis_reply_error(const redisReply *r, const char *other)
{
	static char buf[256];

	if (r == NULL || r->type != REDIS_REPLY_ERROR || r->str == NULL)
		return other;
	return log_escape(buf, sizeof(buf), r->str, r->len);
}

int64_t
redis_reply_int(const redisReply *r, int strings)
{
	int64_t v;

	if (r->type == REDIS_REPLY_INTEGER)
		return (int64_t)r->integer;
	if (strings && r->type == REDIS_REPLY_STRING && r->str != NULL &&
	    redis_parse_num(r->str, r->len, &v) == 0)
		return v;
	return -1;
}

int
redis_parse_addr(const char *host, size_t hostlen, const char *port,
    size_t portlen, char *out, size_t outsz, unsigned *port_out)
{
	char h[INET6_ADDRSTRLEN];
	unsigned char a[16];
	int64_t pn;

	if (host == NULL || port == NULL || hostlen == 0 ||
	    hostlen >= sizeof(h) || hostlen >= outsz ||
	    memchr(host, '\0', hostlen) != NULL ||
	    redis_parse_num(port, portlen, &pn) == -1 || pn < 1 || pn > 65535)
		return -1;
	memcpy(h, host, hostlen);
	h[hostlen] = '\0';
	if (inet_pton(AF_INET, h, a) == 1) {
		/* 0/8 "this network", 224/4 multicast, 240/4 and broadcast. */
		if (a[0] == 0 || a[0] >= 224)
			return -1;
	} else if (inet_pton(AF_INET6, h, a) == 1) {
		static const unsigned char any[16];

		if (memcmp(a, any, 16) == 0 || a[0] == 0xff)
			return -1;
	} else
		return -1;
	memcpy(out, h, hostlen + 1);
	*port_out = (unsigned)pn;
	return 0;
}

/* "ip=127.0.0.1,port=6380,state=online,offset=123,lag=0" */
static int
parse_replica(const char *p, size_t len, struct redis_replica *out)
{
	const char *ip = NULL, *port = NULL, *f, *eq, *end = p + len;
	size_t iplen = 0, portlen = 0, n, klen;
	char host[INET6_ADDRSTRLEN];
	unsigned pn;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		f = memchr(p, ',', (size_t)(end - p));
		n = f != NULL ? (size_t)(f - p) : (size_t)(end - p);
		if ((eq = memchr(p, '=', n)) != NULL) {
			klen = (size_t)(eq - p);
			eq++;
			if (klen == 2 && memcmp(p, "ip", 2) == 0) {
				ip = eq;
				iplen = n - 3;
			} else if (klen == 4 && memcmp(p, "port", 4) == 0) {
				port = eq;
				portlen = n - 5;
			} else if (klen == 5 && memcmp(p, "state", 5) == 0 &&
			    n - 6 < sizeof(out->state)) {
				if (printable(eq, n - 6))
					str_ncopy(out->state,
					    sizeof(out->state), eq, n - 6);
			} else if (klen == 6 && memcmp(p, "offset", 6) == 0)
				(void)redis_parse_num(eq, n - 7, &out->offset);
			else if (klen == 3 && memcmp(p, "lag", 3) == 0)
				(void)redis_parse_num(eq, n - 4,
				    &out->lag_secs);
		}
		p += n + (f != NULL);
	}
	if (redis_parse_addr(ip, iplen, port, portlen, host, sizeof(host),
	    &pn) == -1)
		return -1;
	redis_format_addr(out->addr, sizeof(out->addr), host, pn);
	return 0;
}

int
redis_parse_repl(const char *p, size_t len, struct redis_repl *out)
{
	const char *end, *nl, *colon;
	size_t n, klen, vlen, i;
	int64_t v;

	memset(out, 0, sizeof(*out));
	if (p == NULL)
		return -1;
	for (end = p + len; p < end; p += n + (nl != NULL)) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		vlen = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
		if ((colon = memchr(p, ':', vlen)) == NULL)
			continue;
		klen = (size_t)(colon - p);
		vlen -= klen + 1;
		colon++;
		if (klen == 4 && memcmp(p, "role", 4) == 0) {
			if (vlen == 0 || vlen >= sizeof(out->role) ||
			    !printable(colon, vlen))
				return -1;
			str_ncopy(out->role, sizeof(out->role), colon, vlen);
		} else if (klen == 18 &&
		    memcmp(p, "master_repl_offset", 18) == 0) {
			(void)redis_parse_num(colon, vlen, &out->offset);
		} else if (klen == 16 &&
		    memcmp(p, "connected_slaves", 16) == 0) {
			if (redis_parse_num(colon, vlen, &v) == 0 &&
			    v <= 100000)
				out->connected = (unsigned)v;
		} else if (klen > 5 && memcmp(p, "slave", 5) == 0 &&
		    redis_parse_num(p + 5, klen - 5, &v) == 0 &&
		    out->nreplicas < REDIS_REPLICAS_MAX &&
		    parse_replica(colon, vlen,
		    &out->replicas[out->nreplicas]) == 0)
			out->nreplicas++;
	}
	if (out->role[0] == '\0')
		return -1;
	for (i = 0; i < out->nreplicas; i++)
		out->replicas[i].lag_bytes = out->offset >
		    out->replicas[i].offset ? out->offset -
		    out->replicas[i].offset : 0;
	out->known = 1;
	return 0;
}

/* --- the object ----------------------------------------------------------- */

static void
set_addr(struct redis *r, const char *host, unsigned port)
{
	str_copy(r->host, sizeof(r->host), host != NULL ? host : "");
	r->port = port;
	if (r->host[0] == '\0') {
		str_copy(r->addr, sizeof(r->addr), "none");
		return;
	}
	redis_format_addr(r->addr, sizeof(r->addr), r->host, port);
}

void
redis_set_server(struct redis *r, const char *host, unsigned port)
{
	char to[sizeof(r->addr)];

	if (strcmp(r->host, host) != 0 || r->port != port) {
		redis_format_addr(to, sizeof(to), host, port);
		log_info("event=redis_server from=%s to=%s", r->addr, to);
		drop(r, "master moved");
		set_addr(r, host, port);
	} else if (r->ac != NULL)
		return;		/* connected or connecting to it */
	/* At once: the delay was for a server that failed. */
	r->backoff_ms = REDIS_BACKOFF_MIN_MS;
	event_del(r->ev_conn);
	redis_arm(r->ev_conn, 0);
}

struct redis *
redis_new(struct event_base *base, const struct redis_conf *c,
    redis_ready_cb *ready_cb, void *arg)
{
	struct redis *r;
	size_t i;

	r = xcalloc(1, sizeof(*r));
	r->base = base;
	set_addr(r, c->host, c->port);
	r->timeout_ms = c->timeout_ms;
	r->nscripts = c->nscripts;
	r->src = xreallocarray(NULL, c->nscripts + 1, sizeof(*r->src));
	r->sha = xcalloc(c->nscripts + 1, sizeof(*r->sha));
	for (i = 0; i < c->nscripts; i++)
		r->src[i] = xstrdup(c->scripts[i]);
	r->ready_cb = ready_cb;
	r->ready_arg = arg;
	if (c->subscribe != NULL)
		r->channel = xstrdup(c->subscribe);
	r->message_cb = c->on_message;
	r->message_arg = c->message_arg;
	r->ev_conn = evtimer_new(base, conn_timer_cb, r);
	r->ev_drop = evtimer_new(base, drop_cb, r);
	r->check_role = c->check_role;
	r->trouble_cb = c->on_trouble;
	r->trouble_arg = c->trouble_arg;
	r->ev_trouble = evtimer_new(base, trouble_cb, r);
	if (c->poll_info) {
		r->ev_info = evtimer_new(base, info_timer_cb, r);
		redis_arm(r->ev_info, REDIS_INFO_SECS * 1000);
	}
	r->backoff_ms = REDIS_BACKOFF_MIN_MS;
	TAILQ_INIT(&r->reqs);
	start_connect(r);
	return r;
}

void
redis_free(struct redis *r)
{
	struct redis_req *q, *next;
	redisAsyncContext *ac;
	size_t i;

	if (r == NULL)
		return;
	/* No callback runs from here on. */
	TAILQ_FOREACH(q, &r->reqs, link)
		q->cb = NULL;
	for (q = TAILQ_FIRST(&r->reqs); q != NULL; q = next) {
		next = TAILQ_NEXT(q, link);
		if (!q->inflight)
			req_free(q);
	}
	if ((ac = r->ac) != NULL) {
		r->ac = NULL;
		/* reply_cb frees the requests in flight, with NULL. */
		redisAsyncFree(ac);
	}
	if (!TAILQ_EMPTY(&r->reqs))
		panic("redis_free: requests left after the context");
	event_free(r->ev_conn);
	event_free(r->ev_drop);
	event_free(r->ev_trouble);
	if (r->ev_info != NULL)
		event_free(r->ev_info);
	for (i = 0; i < r->nscripts; i++)
		free(r->src[i]);
	free(r->src);
	free(r->sha);
	free(r->channel);
	free(r);
}

int
redis_usable(const struct redis *r)
{
	if (!r->ready || r->channel != NULL)
		return 0;
	return r->breaker == REDIS_BREAKER_CLOSED ||
	    (r->breaker == REDIS_BREAKER_OPEN &&
	    redis_now_ms() >= r->open_until);
}

void
redis_get_stats(const struct redis *r, struct redis_stats *out)
{
	*out = r->st;
	out->connected = r->ready;
	out->breaker = r->breaker;
	out->repl = r->repl;
	out->repl.known = r->ready && r->repl.known;
}

const char *
redis_address(const struct redis *r)
{
	return r->addr;
}
