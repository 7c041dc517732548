/*
 * sentinel: find the Redis master through the Sentinels and keep the
 * node's connections on it (docs/cluster.md "Sentinel").
 *
 * One round of asking ("a lookup") tries the Sentinels in turn, starting
 * with the one that answered last: a connection of its own to each (the
 * connect timer of src/cluster/redis.c), one SENTINEL
 * get-master-addr-by-name within redis_timeout, and the whole try within
 * both and a little more; a refused connect, a broken one, a stall, an
 * error, a nil (it knows no such master) or an answer that is no address
 * skip to the next. A round where none answered is retried after a backoff. The
 * probe's connection is freed from our own zero-delay event, never inside
 * one of its callbacks (hiredis' rule, see redis.c).
 *
 * A lookup starts at creation, on a follower's trouble (at most one a
 * second: a master that is down, not yet failed over, would otherwise be
 * asked about at every reconnect), on a re-subscription (a switch may
 * have been missed meanwhile), and never while one is running.
 */
#include "sentinel.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "redis.h"
#include "str.h"
#include "xmem.h"

#define TRY_CONNECT_MS		1100	/* a try: connect 1 s, with slack, */
					/* then the request's redis_timeout */
#define SUSPECT_GAP_MS		1000	/* lookups at most so often */
#define RETRY_MIN_MS		1000	/* after a round with no answer */
#define RETRY_MAX_MS		5000
#define SWITCH_CHANNEL		"+switch-master"

struct sentinel_addr {
	char		 host[64];
	unsigned	 port;
};

struct sentinel {
	struct event_base	*base;
	char			 name[128];
	unsigned		 timeout_ms;
	struct sentinel_addr	 s[SENTINEL_MAX];
	size_t			 n;
	struct redis		*follower[SENTINEL_FOLLOWERS_MAX];
	size_t			 nfollowers;

	/* The lookup in progress. */
	int			 running;
	size_t			 cur;		/* Sentinel asked now */
	size_t			 tried;		/* in this round */
	struct redis		*probe;
	int			 found;
	char			 found_host[64];
	unsigned		 found_port;
	struct event		*ev_next;	/* a try ends: deadline, now */
	struct event		*ev_retry;	/* the next round */
	uint64_t		 last_ms;	/* a round started */
	unsigned		 backoff_ms;

	/* The master, and the Sentinel that named it. */
	int			 known;
	char			 host[64];
	unsigned		 port;
	size_t			 used;
	struct redis		*sub;		/* its +switch-master */
	size_t			 sub_of;
	int			 sub_fresh;	/* its first subscription */
	int			 sw_pending;
	char			 sw_host[64];
	unsigned		 sw_port;
	struct event		*ev_switch;

	struct sentinel_stats	 st;
};

static void	lookup_start(struct sentinel *);

/* Re-armed from now. */
static void
arm(struct event *ev, unsigned ms)
{
	event_del(ev);
	redis_arm(ev, ms);
}

/* --- parsing what Sentinels say ------------------------------------------- */

int
sentinel_parse_master(const struct redisReply *reply, char *host,
    size_t hostsz, unsigned *port)
{
	const redisReply *h, *p;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 2 || reply->element == NULL)
		return -1;
	h = reply->element[0];
	p = reply->element[1];
	if (h == NULL || p == NULL || h->type != REDIS_REPLY_STRING ||
	    p->type != REDIS_REPLY_STRING)
		return -1;
	return redis_parse_addr(h->str, h->len, p->str, p->len, host, hostsz,
	    port);
}

/* The next space-separated word of [*p, end): its start and length. */
static size_t
word(const char **p, const char *end, const char **w)
{
	const char *sp;
	size_t n;

	*w = *p;
	sp = memchr(*p, ' ', (size_t)(end - *p));
	n = sp != NULL ? (size_t)(sp - *p) : (size_t)(end - *p);
	*p += n + (sp != NULL);
	return n;
}

int
sentinel_parse_switch(const char *p, size_t len, const char *name,
    char *host, size_t hostsz, unsigned *port)
{
	const char *end, *w[5];
	size_t n[5], i;

	if (p == NULL || len == 0 || len > 400)
		return -1;
	end = p + len;
	for (i = 0; i < 5; i++) {
		if (p >= end && i > 0)
			return -1;
		n[i] = word(&p, end, &w[i]);
	}
	if (p < end || n[0] != strlen(name) || memcmp(w[0], name, n[0]) != 0)
		return -1;
	return redis_parse_addr(w[3], n[3], w[4], n[4], host, hostsz, port);
}

/* --- following the master ------------------------------------------------- */

static void	switch_msg(const char *, size_t, void *);
static void	sub_ready(void *);

/* Subscribe to the +switch-master of the Sentinel that named the master:
 * a failover it leads or hears of reaches us at once. */
static void
watch(struct sentinel *s, size_t i)
{
	struct redis_conf rc;

	if (s->sub != NULL && s->sub_of == i)
		return;
	redis_free(s->sub);
	memset(&rc, 0, sizeof(rc));
	rc.host = s->s[i].host;
	rc.port = s->s[i].port;
	rc.timeout_ms = s->timeout_ms;
	rc.subscribe = SWITCH_CHANNEL;
	rc.on_message = switch_msg;
	rc.message_arg = s;
	s->sub_of = i;
	s->sub_fresh = 1;
	s->sub = redis_new(s->base, &rc, sub_ready, s);
}

/* Sentinel 'i' named host:port the master: every follower goes there. */
static void
adopt(struct sentinel *s, size_t i, const char *host, unsigned port)
{
	char from[80], to[80];
	size_t k;

	redis_format_addr(to, sizeof(to), host, port);
	if (!s->known || strcmp(s->host, host) != 0 || s->port != port) {
		if (s->known) {
			s->st.failovers++;
			redis_format_addr(from, sizeof(from), s->host, s->port);
			log_info("event=redis_failover from=%s to=%s "
			    "sentinel=%s:%u", from, to, s->s[i].host,
			    s->s[i].port);
		} else
			log_info("event=redis_master master=%s sentinel=%s:%u",
			    to, s->s[i].host, s->s[i].port);
		str_copy(s->host, sizeof(s->host), host);
		s->port = port;
		s->known = 1;
	}
	s->used = i;
	for (k = 0; k < s->nfollowers; k++)
		redis_set_server(s->follower[k], s->host, s->port);
	watch(s, i);
}

static void
switch_msg(const char *p, size_t len, void *arg)
{
	struct sentinel *s = arg;

	if (sentinel_parse_switch(p, len, s->name, s->sw_host,
	    sizeof(s->sw_host), &s->sw_port) == -1) {
		/* Another master's switch, or nonsense. */
		s->st.rejected++;
		return;
	}
	s->st.switches++;
	s->sw_pending = 1;
	/* Not inside the subscriber's callback: adopt() may free it. */
	event_active(s->ev_switch, EV_TIMEOUT, 0);
}

static void
switch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;

	if (!s->sw_pending)
		return;
	s->sw_pending = 0;
	adopt(s, s->sub_of, s->sw_host, s->sw_port);
}

/* Subscribed again after a break: a switch may have gone unheard. */
static void
sub_ready(void *arg)
{
	struct sentinel *s = arg;

	if (s->sub_fresh) {
		s->sub_fresh = 0;
		return;
	}
	sentinel_suspect("resubscribed", s);
}

/* --- asking --------------------------------------------------------------- */

static void
probe_reply(enum redis_status st, const struct redisReply *reply, void *arg)
{
	struct sentinel *s = arg;

	if (st == REDIS_REPLY_OK && sentinel_parse_master(reply,
	    s->found_host, sizeof(s->found_host), &s->found_port) == 0)
		s->found = 1;
	else if (st == REDIS_REPLY_OK) {
		s->st.rejected++;
		log_warn("event=sentinel_answer sentinel=%s:%u error=\"no "
		    "master address\"", s->s[s->cur].host, s->s[s->cur].port);
	}
	/* Freed from our own event: this runs inside its callback. */
	event_active(s->ev_next, EV_TIMEOUT, 0);
}

static void
probe_ready(void *arg)
{
	struct sentinel *s = arg;
	const char *argv[3] = { "SENTINEL", "get-master-addr-by-name",
	    s->name };
	size_t len[3] = { 8, 23, strlen(s->name) };

	(void)redis_call(s->probe, 3, argv, len, probe_reply, s);
}

/* The probe's connection failed (refused, broken, no answer). */
static void
probe_trouble(const char *why, void *arg)
{
	struct sentinel *s = arg;

	event_active(s->ev_next, EV_TIMEOUT, 0);
}

static void
ask(struct sentinel *s)
{
	struct redis_conf rc;

	memset(&rc, 0, sizeof(rc));
	rc.host = s->s[s->cur].host;
	rc.port = s->s[s->cur].port;
	rc.timeout_ms = s->timeout_ms;
	rc.on_trouble = probe_trouble;
	rc.trouble_arg = s;
	s->found = 0;
	arm(s->ev_next, TRY_CONNECT_MS + s->timeout_ms);
	s->probe = redis_new(s->base, &rc, probe_ready, s);
}

/* A try ended: its answer, its failure or its deadline. */
static void
next_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sentinel *s = arg;
	unsigned d;

	event_del(s->ev_next);
	redis_free(s->probe);
	s->probe = NULL;
	if (!s->running)
		return;
	if (s->found) {
		s->running = 0;
		s->backoff_ms = RETRY_MIN_MS;
		adopt(s, s->cur, s->found_host, s->found_port);
		return;
	}
	s->st.skipped++;
	log_warn("event=sentinel_skip sentinel=%s:%u", s->s[s->cur].host,
	    s->s[s->cur].port);
	s->cur = (s->cur + 1) % s->n;
	if (++s->tried < s->n) {
		ask(s);
		return;
	}
	s->running = 0;
	s->st.lookup_failures++;
	d = s->backoff_ms - s->backoff_ms / 4 +
	    arc4random_uniform(s->backoff_ms / 2 + 1);
	log_warn("event=sentinel_lookup_failed sentinels=%zu retry_ms=%u",
	    s->n, d);
	s->backoff_ms = s->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS :
	    s->backoff_ms * 2;
	arm(s->ev_retry, d);
}

/* A round, starting with the Sentinel that answered last. */
static void
lookup_start(struct sentinel *s)
{
	if (s->running)
		return;
	event_del(s->ev_retry);
	s->running = 1;
	s->tried = 0;
	s->last_ms = redis_now_ms();
	s->st.lookups++;
	ask(s);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	lookup_start(arg);
}

void
sentinel_suspect(const char *why, void *arg)
{
	struct sentinel *s = arg;
	uint64_t now = redis_now_ms();

	if (s->running || evtimer_pending(s->ev_retry, NULL))
		return;
	log_debug("event=sentinel_suspect why=\"%s\"", why);
	if (now - s->last_ms >= SUSPECT_GAP_MS) {
		lookup_start(s);
		return;
	}
	arm(s->ev_retry, (unsigned)(SUSPECT_GAP_MS - (now - s->last_ms)));
}

/* --- the object ----------------------------------------------------------- */

struct sentinel *
sentinel_new(struct event_base *base, const struct sentinel_conf *c)
{
	struct sentinel *s;
	size_t i;

	if (c->n == 0 || c->n > SENTINEL_MAX)
		panic("sentinel_new: %zu sentinels", c->n);
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	str_copy(s->name, sizeof(s->name), c->master_name);
	s->timeout_ms = c->timeout_ms;
	for (i = 0; i < c->n; i++) {
		str_copy(s->s[i].host, sizeof(s->s[i].host), c->hosts[i]);
		s->s[i].port = c->ports[i];
	}
	s->n = c->n;
	s->backoff_ms = RETRY_MIN_MS;
	s->ev_next = evtimer_new(base, next_cb, s);
	s->ev_retry = evtimer_new(base, retry_cb, s);
	s->ev_switch = evtimer_new(base, switch_cb, s);
	lookup_start(s);
	return s;
}

void
sentinel_free(struct sentinel *s)
{
	if (s == NULL)
		return;
	redis_free(s->probe);
	redis_free(s->sub);
	event_free(s->ev_next);
	event_free(s->ev_retry);
	event_free(s->ev_switch);
	free(s);
}

void
sentinel_follow(struct sentinel *s, struct redis *r)
{
	if (s->nfollowers == SENTINEL_FOLLOWERS_MAX)
		panic("sentinel_follow: too many");
	s->follower[s->nfollowers++] = r;
	if (s->known)
		redis_set_server(r, s->host, s->port);
}

void
sentinel_get_stats(const struct sentinel *s, struct sentinel_stats *out)
{
	struct redis_stats rs;

	*out = s->st;
	out->known = s->known;
	if (s->known) {
		redis_format_addr(out->master, sizeof(out->master), s->host,
		    s->port);
		redis_format_addr(out->sentinel, sizeof(out->sentinel),
		    s->s[s->used].host, s->s[s->used].port);
		out->sentinel_place = s->used + 1;
	}
	if (s->sub != NULL) {
		redis_get_stats(s->sub, &rs);
		out->watching = rs.connected;
	}
}
