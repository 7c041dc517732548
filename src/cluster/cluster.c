/*
 * cluster: shared greylisting over one Redis connection (docs/cluster.md).
 *
 * Four server-side Lua scripts, loaded by redis.c at every connect:
 * CHECK decides a triplet exactly as greylist_decide() does, and stores
 * the result, in one atomic step, so two nodes seeing the same retry at
 * once agree; MERGE pushes a decision taken alone during an outage
 * without counting anything twice; both count a passed triplet for its
 * client network (SCRIPT_NET), once; BEAT and NODES keep and read the
 * nodes' heartbeats. Keys and arguments go as argv (binary-safe); the
 * scripts turn numbers into text themselves.
 *
 * Time: each node passes its own 'now' (docs/cluster.md "Clocks"). The
 * keys' TTLs are relative (EXPIRE, not EXPIREAT), so Redis deletes a key
 * by its own clock, never early by a node's.
 */
#include "cluster.h"
#include "cluster_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "bulkshare.h"
#include "config.h"
#include "log.h"
#include "sockaddr.h"
#include "str.h"
#include "xmem.h"

#define BEAT_SECS	5	/* heartbeat period */
#define BEAT_TTL	15	/* a node missing 3 beats is gone */
#define GREY_FIELDS	10	/* the CHECK script's answer */

#define HEALTH_KEY_TTL	86400	/* a state nobody restated in a day is
				   no news (docs/cluster.md) */
#define HEALTH_MSG_MAX	600	/* "down", 255, 255, a number, spaces */

/*
 * A client network's passes (docs/cluster.md "Network passes"): KEYS[2]
 * the hash PREFIX net:NET (net, passes, allowed, expires), KEYS[3] the
 * set PREFIX net:NET:passed of the passed triplets' keys. A pass is the
 * triplet's key added to the set, so one triplet passed at two nodes, or
 * replayed after Redis counted it, counts once; 'passes' is the set's
 * size. Once allowed the set goes: it holds at most auto_allow members.
 * netget reads a live record; netpass counts triplet k, expiring at
 * 'exp', with auto_allow n.
 */
#define SCRIPT_NET \
"local function netget(now)\n" \
"  local g = redis.call('HMGET', KEYS[2], 'passes', 'allowed', 'expires')\n" \
"  if g[3] and tonumber(g[3]) >= now then\n" \
"    return tonumber(g[1]), tonumber(g[2]), tonumber(g[3])\n" \
"  end\n" \
"  return 0, 0, 0\n" \
"end\n" \
"local function netpass(k, now, exp, n, net)\n" \
"  local np, na, ne = netget(now)\n" \
"  if ne == 0 then redis.call('DEL', KEYS[3]) end\n" \
"  if na == 0 then\n" \
"    redis.call('SADD', KEYS[3], k)\n" \
"    np = math.max(np, redis.call('SCARD', KEYS[3]))\n" \
"    if np >= n then na = now; redis.call('DEL', KEYS[3]) end\n" \
"  end\n" \
"  ne = math.max(ne, exp)\n" \
"  redis.call('HSET', KEYS[2], 'net', net, 'passes', np, 'allowed', na,"\
" 'expires', ne)\n" \
"  redis.call('EXPIRE', KEYS[2], math.max(1, ne - now))\n" \
"  if na == 0 then\n" \
"    redis.call('EXPIRE', KEYS[3], math.max(1, ne - now))\n" \
"  end\n" \
"  return np, na, ne\n" \
"end\n"

/*
 * KEYS[1] the triplet, KEYS[2], KEYS[3] its network (SCRIPT_NET); ARGV
 * net, sender, rcpt, now, delay, retry_window, max_age, auto_allow.
 * A network allowed in Redis answers 4 without touching the triplet,
 * as a node's own auto-allow does. Else greylist_decide() in Lua
 * (src/policy/greylist.c), with one difference for clock skew:
 * last_seen and a pass's expiry never move back when a node's clock is
 * behind the one that wrote them; a pass counts for its network. The
 * answer ends with the network's passes, allowed, expires.
 */
static const char script_check[] =
SCRIPT_NET
"local k = KEYS[1]\n"
"local now = tonumber(ARGV[4])\n"
"local delay, win, maxage = tonumber(ARGV[5]), tonumber(ARGV[6]),"
" tonumber(ARGV[7])\n"
"local n = tonumber(ARGV[8])\n"
"local np, na, ne = 0, 0, 0\n"
"if n > 0 then\n"
"  np, na, ne = netget(now)\n"
"  if na ~= 0 then return {4, 0, 0, 0, 0, 0, 0, np, na, ne} end\n"
"end\n"
"local h = redis.call('HMGET', k, 'first_seen', 'last_seen', 'passed',"
" 'expires', 'tries', 'passes')\n"
"local act, first, last, passed, exp, tries, passes\n"
"if not h[1] or not h[4] or tonumber(h[4]) < now then\n"
"  act, first, last, passed, exp, tries, passes = 0, now, now, 0,"
" now + win, 1, 0\n"
"else\n"
"  first, passed = tonumber(h[1]), tonumber(h[3])\n"
"  tries, passes = tonumber(h[5]), tonumber(h[6])\n"
"  last = math.max(tonumber(h[2]), now)\n"
"  exp = tonumber(h[4])\n"
"  if passed == 0 and now - first < delay then\n"
"    act, tries = 1, tries + 1\n"
"  else\n"
"    passes = passes + 1\n"
"    exp = math.max(exp, now + maxage)\n"
"    if passed == 0 then act, passed = 2, now else act = 3 end\n"
"  end\n"
"end\n"
"redis.call('HSET', k, 'net', ARGV[1], 'sender', ARGV[2], 'rcpt', ARGV[3],"
" 'first_seen', first, 'last_seen', last, 'passed', passed,"
" 'expires', exp, 'tries', tries, 'passes', passes)\n"
"redis.call('EXPIRE', k, math.max(1, exp - now))\n"
"if act == 2 and n > 0 then\n"
"  np, na, ne = netpass(k, now, exp, n, ARGV[1])\n"
"end\n"
"return {act, first, last, passed, exp, tries, passes, np, na, ne}\n";

/*
 * KEYS[1] the triplet, KEYS[2], KEYS[3] its network; ARGV net, sender,
 * rcpt, first_seen, last_seen, passed, expires, tries, passes, now,
 * auto_allow. Earliest first_seen and pass, latest last_seen and expiry,
 * counts by max: pushing the same decision twice, or one Redis already
 * has, changes nothing. A passed triplet counts for its network once
 * (the set of SCRIPT_NET), however often it is pushed.
 */
static const char script_merge[] =
SCRIPT_NET
"local k = KEYS[1]\n"
"local f, l, p = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
"local e, t, s = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])\n"
"local now = tonumber(ARGV[10])\n"
"if e < now then return 0 end\n"
"local h = redis.call('HMGET', k, 'first_seen', 'last_seen', 'passed',"
" 'expires', 'tries', 'passes')\n"
"if h[1] and h[4] and tonumber(h[4]) >= now then\n"
"  f = math.min(f, tonumber(h[1]))\n"
"  l = math.max(l, tonumber(h[2]))\n"
"  local hp = tonumber(h[3])\n"
"  if p == 0 or (hp ~= 0 and hp < p) then p = hp end\n"
"  e = math.max(e, tonumber(h[4]))\n"
"  t = math.max(t, tonumber(h[5]))\n"
"  s = math.max(s, tonumber(h[6]))\n"
"end\n"
"redis.call('HSET', k, 'net', ARGV[1], 'sender', ARGV[2], 'rcpt', ARGV[3],"
" 'first_seen', f, 'last_seen', l, 'passed', p, 'expires', e,"
" 'tries', t, 'passes', s)\n"
"redis.call('EXPIRE', k, math.max(1, e - now))\n"
"local n = tonumber(ARGV[11])\n"
"if p ~= 0 and n > 0 then netpass(k, now, e, n, ARGV[1]) end\n"
"return 1\n";

/* KEYS[1] PREFIX node:NAME, KEYS[2] PREFIX nodes, KEYS[3] PREFIX
 * allow:version; ARGV name, now, ttl. The answer is the allow entries'
 * version (allowshare.c): a node pulls when it moved. */
static const char script_beat[] =
"redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
"redis.call('SADD', KEYS[2], ARGV[1])\n"
"return tonumber(redis.call('GET', KEYS[3]) or '0') or 0\n";

/*
 * KEYS[1] PREFIX nodes; ARGV[1] PREFIX node:. Name, beat pairs of the
 * nodes whose heartbeat key lives; the others leave the set. Reads keys
 * it was not given: fine on one server, not on Redis Cluster
 * (docs/cluster.md).
 */
static const char script_nodes[] =
"local out = {}\n"
"for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
"  local v = redis.call('GET', ARGV[1] .. n)\n"
"  if v then out[#out + 1] = n; out[#out + 1] = v\n"
"  else redis.call('SREM', KEYS[1], n) end\n"
"end\n"
"return out\n";

/*
 * KEYS[1] PREFIX health:DOMAIN, KEYS[2] the channel PREFIX health; ARGV
 * state, since, node, domain, ttl, message. The key keeps the latest news
 * by its 'since' (two nodes' news arriving out of order); the message
 * goes out either way, in the same step, so a reader that subscribed
 * first and reads the key after misses nothing.
 */
static const char script_health[] =
"local old = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')\n"
"if tonumber(ARGV[2]) >= old then\n"
"  redis.call('HSET', KEYS[1], 'state', ARGV[1], 'since', ARGV[2],"
" 'node', ARGV[3], 'domain', ARGV[4])\n"
"  redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
"end\n"
"return redis.call('PUBLISH', KEYS[2], ARGV[6])\n";

static const char *const scripts[NSCRIPTS] = {
	script_check, script_merge, script_beat, script_nodes, script_health,
	learned_script_get, learned_script_rcpt, learned_script_domain,
	cluster_bulk_lua, cluster_lease_lua, cluster_allow_pull_lua,
	cluster_allow_put_lua,
};

/* One decision or record waiting for Redis: a triplet, a learned
 * recipient or domain (learned.c), or another kind's payload
 * (REPLAY_OPS: bulkshare.c's counts, sent and freed by its ops). */
struct replay {
	TAILQ_ENTRY(replay)	 link;
	enum replay_kind	 kind;
	union {
		struct state_triplet	 t;
		struct state_rcpt	 r;
		struct state_domain	 d;
	};
	const struct cluster_replay_ops *ops;
	void			*payload;
};

struct cluster {
	struct event_base	*base;
	struct redis		*redis;
	struct sentinel		*sentinel;	/* NULL: redis_servers */
	char			 prefix[64];
	char			 node[256];
	struct event		*ev_beat;
	struct redis_req	*beat;

	TAILQ_HEAD(replay_q, replay) replay;
	size_t			 depth, limit;
	struct replay		*merging;	/* taken off the queue, in flight */
	struct redis_req	*merge_req;
	uint64_t		 dropped, merged, fallbacks;
	unsigned		 auto_allow;	/* the last check's */
	const struct config	*conf;	/* the running one: a reload copies
					   over it (main.c) */
	uint64_t		 net_shared, net_allowed;

	TAILQ_HEAD(, cluster_op) ops;

	/* Primary health: a second connection, subscribed to PREFIX
	 * "health" (a subscribed connection can send nothing else). */
	struct redis		*sub;
	char			 channel[80];
	cluster_health_cb	*health_cb;
	cluster_resync_cb	*resync_cb;
	void			*health_arg;
	int			 resync;	/* subscribed; keys not read yet */
	uint64_t		 health_sent, health_send_failed;
	uint64_t		 health_received, health_keys_read;
	uint64_t		 health_rejected;

	struct learned		*learned;	/* learned.c */
	struct cluster_lease_stats leases[CLUSTER_LEASE_KINDS]; /* lease.c */
	struct allowshare	*allow;		/* allowshare.c */
};

/* A caller's pending operation. */
struct cluster_op {
	TAILQ_ENTRY(cluster_op)	 link;
	struct cluster		*cl;
	struct redis_req	*req;
	cluster_grey_cb		*grey_cb;
	cluster_status_cb	*status_cb;
	cluster_forget_cb	*forget_cb;
	cluster_allow_cb	*allow_cb;
	uint64_t		 allow_after;	/* answered by a later sync */
	void			*arg;
	struct state_triplet	 t;	/* the query's net, sender, rcpt */
	int64_t			 now;
	unsigned		 delay;
};

static void	replay_next(struct cluster *);
static void	replay_free(struct replay *);
static void	cluster_replay_add_quiet(struct cluster *, enum replay_kind,
		    const void *);

/* Every argument here is text: its length is strlen(). */
struct redis_req *
cluster_script(struct cluster *cl, size_t script, int nkeys, int argc,
    const char **argv, redis_reply_cb *cb, void *arg)
{
	size_t len[16];
	int i;

	if (argc > 16)
		panic("script_text: %d arguments", argc);
	for (i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	return redis_script(cl->redis, script, nkeys, argc, argv, len, cb,
	    arg);
}

const char *
cluster_prefix(const struct cluster *cl)
{
	return cl->prefix;
}

const char *
cluster_node(const struct cluster *cl)
{
	return cl->node;
}

struct learned *
cluster_learned_of(struct cluster *cl)
{
	return cl->learned;
}

int
cluster_hash_key(const char *prefix, const char *what,
    const char *const *parts, size_t n, char *out, size_t outsz)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;
	EVP_MD_CTX *ctx;
	char hex[33];
	size_t k;
	int ok;

	/* NUL between the parts: ("a", "bc") and ("ab", "c") differ. */
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (k = 0; ok && k < n; k++)
		ok = EVP_DigestUpdate(ctx, parts[k], strlen(parts[k]) + 1);
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if ((size_t)snprintf(out, outsz, "%s%s%s", prefix, what, hex) >= outsz)
		return -1;
	return 0;
}

int
cluster_grey_key(const char *prefix, const char *net, const char *sender,
    const char *rcpt, char *out, size_t outsz)
{
	const char *parts[3] = { net, sender, rcpt };

	return cluster_hash_key(prefix, "grey:", parts, 3, out, outsz);
}

/* PREFIX net:NET and PREFIX net:NET:passed: a network is at most 43
 * bytes of text ("ADDR/LEN"), readable as it is. */
static void
net_keys(const struct cluster *cl, const char *net, char *rec, char *set,
    size_t sz)
{
	if ((size_t)snprintf(rec, sz, "%snet:%s", cl->prefix, net) >= sz ||
	    (size_t)snprintf(set, sz, "%snet:%s:passed", cl->prefix,
	    net) >= sz)
		rec[0] = set[0] = '\0';	/* cannot happen */
}

static struct cluster_op *
op_new(struct cluster *cl, void *arg)
{
	struct cluster_op *op = xcalloc(1, sizeof(*op));

	op->cl = cl;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&cl->ops, op, link);
	return op;
}

static void
op_free(struct cluster_op *op)
{
	TAILQ_REMOVE(&op->cl->ops, op, link);
	free(op);
}

void
cluster_cancel(struct cluster_op *op)
{
	if (op == NULL)
		return;
	redis_cancel(op->req);
	op_free(op);
}

/* --- greylisting ------------------------------------------------------------ */

int
cluster_parse_grey(const redisReply *reply, struct state_triplet *t,
    struct state_net *n, int *act_out)
{
	int64_t v[GREY_FIELDS];
	size_t i;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != GREY_FIELDS)
		return -1;
	for (i = 0; i < GREY_FIELDS; i++)
		if ((v[i] = redis_reply_int(reply->element[i], 1)) < 0)
			return -1;
	if (v[0] > CLUSTER_GREY_NET_ALLOWED || v[5] > UINT32_MAX ||
	    v[6] > UINT32_MAX || v[7] > UINT32_MAX)
		return -1;
	*act_out = (int)v[0];
	t->first_seen = v[1];
	t->last_seen = v[2];
	t->passed = v[3];
	t->expires = v[4];
	t->tries = (unsigned)v[5];
	t->passes = (unsigned)v[6];
	n->passes = (unsigned)v[7];
	n->allowed = v[8];
	n->expires = v[9];
	return 0;
}

size_t
cluster_parse_nodes(const redisReply *reply, struct cluster_node *out,
    size_t max)
{
	size_t i, n = 0;

	if (reply->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i + 1 < reply->elements && n < max; i += 2) {
		const redisReply *name = reply->element[i];

		if (name->type != REDIS_REPLY_STRING)
			continue;
		str_ncopy(out[n].name, sizeof(out[n].name), name->str,
		    name->len);
		out[n++].beat = redis_reply_int(reply->element[i + 1], 1);
	}
	return n;
}

static void
grey_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_op *op = arg;
	struct cluster *cl = op->cl;
	cluster_grey_cb *cb = op->grey_cb;
	void *cbarg = op->arg;
	struct state_triplet t = op->t;
	struct state_net n;
	int64_t now = op->now;
	unsigned delay = op->delay, retry = 0;
	int act = 0;

	op->req = NULL;
	op_free(op);
	memset(&n, 0, sizeof(n));
	str_copy(n.net, sizeof(n.net), t.net);
	if (st != REDIS_REPLY_OK ||
	    cluster_parse_grey(reply, &t, &n, &act) == -1) {
		if (st == REDIS_REPLY_OK)
			log_warn("event=redis_greylist error=\"%s\"",
			    redis_reply_error(reply, "unexpected answer"));
		cl->fallbacks++;
		cb(-1, CLUSTER_GREY_NEW, NULL, NULL, 0, cbarg);
		return;
	}
	if (act <= CLUSTER_GREY_EARLY && now - t.first_seen < (int64_t)delay)
		retry = (unsigned)(delay - (now - t.first_seen));
	/* Redis answers again: what waited for it can go now. */
	replay_next(cl);
	/* The network's record came back with a pass, or allowed it. */
	if (act == CLUSTER_GREY_PASS && n.expires != 0)
		cl->net_shared++;
	else if (act == CLUSTER_GREY_NET_ALLOWED)
		cl->net_allowed++;
	cb(0, (enum cluster_grey_action)act, &t,
	    act == CLUSTER_GREY_PASS || act == CLUSTER_GREY_NET_ALLOWED ?
	    &n : NULL, retry, cbarg);
}

struct cluster_op *
cluster_greylist(struct cluster *cl, const struct cluster_grey_query *q,
    cluster_grey_cb *cb, void *arg)
{
	struct cluster_op *op = op_new(cl, arg);
	char key[128], now[24], delay[16], win[16], age[16], aa[16];
	char nk[128], ns[128];
	const char *argv[11];

	op->grey_cb = cb;
	cl->auto_allow = q->auto_allow;
	op->now = q->now;
	op->delay = q->delay;
	str_copy(op->t.net, sizeof(op->t.net), q->net);
	str_copy(op->t.sender, sizeof(op->t.sender), q->sender);
	str_copy(op->t.rcpt, sizeof(op->t.rcpt), q->rcpt);
	if (cluster_grey_key(cl->prefix, q->net, q->sender, q->rcpt, key,
	    sizeof(key)) == -1)
		key[0] = '\0';	/* cannot happen; Redis then stores "" */
	snprintf(now, sizeof(now), "%lld", (long long)q->now);
	snprintf(delay, sizeof(delay), "%u", q->delay);
	snprintf(win, sizeof(win), "%u", q->retry_window);
	snprintf(age, sizeof(age), "%u", q->max_age);
	snprintf(aa, sizeof(aa), "%u", q->auto_allow);
	net_keys(cl, q->net, nk, ns, sizeof(nk));
	argv[0] = key;
	argv[1] = nk;
	argv[2] = ns;
	argv[3] = op->t.net;
	argv[4] = op->t.sender;
	argv[5] = op->t.rcpt;
	argv[6] = now;
	argv[7] = delay;
	argv[8] = win;
	argv[9] = age;
	argv[10] = aa;
	op->req = cluster_script(cl, SCRIPT_CHECK, 3, 11, argv, grey_cb, op);
	return op;
}

/* --- replay ------------------------------------------------------------------ */

void
cluster_replay_push(struct cluster *cl, const struct state_triplet *t)
{
	cluster_replay_add_quiet(cl, REPLAY_TRIPLET, t);
}

/* Queued; pushed later (the caller knows Redis did not answer). */
static void
cluster_replay_add_quiet(struct cluster *cl, enum replay_kind kind,
    const void *rec)
{
	struct replay *e;

	if (cl->depth >= cl->limit) {
		/* Bounded: the oldest decision is the one most likely
		 * superseded or expired by now. */
		e = TAILQ_FIRST(&cl->replay);
		TAILQ_REMOVE(&cl->replay, e, link);
		cl->depth--;
		cl->dropped++;
		if (cl->dropped == 1 || cl->dropped % 1000 == 0)
			log_warn("event=redis_replay_drop dropped=%llu "
			    "limit=%zu", (unsigned long long)cl->dropped,
			    cl->limit);
		replay_free(e);
	}
	e = xcalloc(1, sizeof(*e));
	e->kind = kind;
	if (kind == REPLAY_TRIPLET)
		e->t = *(const struct state_triplet *)rec;
	else if (kind == REPLAY_RCPT)
		e->r = *(const struct state_rcpt *)rec;
	else if (kind == REPLAY_DOMAIN)
		e->d = *(const struct state_domain *)rec;
	TAILQ_INSERT_TAIL(&cl->replay, e, link);
	cl->depth++;
}

void
cluster_replay_push_ops(struct cluster *cl,
    const struct cluster_replay_ops *ops, void *payload)
{
	cluster_replay_add_quiet(cl, REPLAY_OPS, NULL);
	TAILQ_LAST(&cl->replay, replay_q)->ops = ops;
	TAILQ_LAST(&cl->replay, replay_q)->payload = payload;
}

static void
replay_free(struct replay *e)
{
	if (e != NULL && e->ops != NULL)
		e->ops->drop(e->payload);
	free(e);
}

void
cluster_replay_add(struct cluster *cl, enum replay_kind kind,
    const void *rec)
{
	cluster_replay_add_quiet(cl, kind, rec);
	replay_next(cl);
}

static void
merge_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster *cl = arg;
	struct replay *e = cl->merging;

	cl->merge_req = NULL;
	cl->merging = NULL;
	if (st == REDIS_REPLY_OK && reply->type != REDIS_REPLY_INTEGER) {
		/* The server refused this one (a script error): trying it
		 * again would refuse it again. */
		log_warn("event=redis_replay error=\"%s\"",
		    redis_reply_error(reply, "unexpected answer"));
		cl->dropped++;
		replay_free(e);
		replay_next(cl);
		return;
	}
	if (st != REDIS_REPLY_OK) {
		/* Back to the front, unless newer ones filled the room. */
		if (cl->depth < cl->limit) {
			TAILQ_INSERT_HEAD(&cl->replay, e, link);
			cl->depth++;
		} else {
			cl->dropped++;
			replay_free(e);
		}
		return;
	}
	/* 'merged' counts decisions (triplets, bulk counts), as before;
	 * learned.c counts its records. */
	if (e->kind == REPLAY_TRIPLET || e->kind == REPLAY_OPS)
		cl->merged++;
	else
		learned_replayed(cl->learned, e->kind, reply->integer == 1);
	replay_free(e);
	if (TAILQ_EMPTY(&cl->replay))
		log_info("event=redis_replay_done merged=%llu",
		    (unsigned long long)cl->merged);
	replay_next(cl);
}

/* A triplet's MERGE. */
static struct redis_req *
replay_triplet(struct cluster *cl, const struct state_triplet *t)
{
	char key[128], num[6][24], now[24], aa[16], nk[128], ns[128];
	const char *argv[14];
	size_t i;

	if (cluster_grey_key(cl->prefix, t->net, t->sender, t->rcpt, key,
	    sizeof(key)) == -1)
		key[0] = '\0';
	snprintf(num[0], sizeof(num[0]), "%lld", (long long)t->first_seen);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)t->last_seen);
	snprintf(num[2], sizeof(num[2]), "%lld", (long long)t->passed);
	snprintf(num[3], sizeof(num[3]), "%lld", (long long)t->expires);
	snprintf(num[4], sizeof(num[4]), "%u", t->tries);
	snprintf(num[5], sizeof(num[5]), "%u", t->passes);
	/* The asking node's greylist_auto_allow_passes, as its checks'. */
	snprintf(aa, sizeof(aa), "%u", cl->auto_allow);
	net_keys(cl, t->net, nk, ns, sizeof(nk));
	argv[0] = key;
	argv[1] = nk;
	argv[2] = ns;
	argv[3] = t->net;
	argv[4] = t->sender;
	argv[5] = t->rcpt;
	for (i = 0; i < 6; i++)
		argv[6 + i] = num[i];
	/* Expired is judged at the push, not at the decision. */
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	argv[12] = now;
	argv[13] = aa;
	if (t->passed != 0 && cl->auto_allow > 0)
		cl->net_shared++;
	return cluster_script(cl, SCRIPT_MERGE, 3, 14, argv, merge_cb, cl);
}

/* One record at a time, oldest first, while Redis answers. */
static void
replay_next(struct cluster *cl)
{
	struct replay *e;

	if (cl->merging != NULL || TAILQ_EMPTY(&cl->replay) ||
	    !redis_usable(cl->redis))
		return;
	e = TAILQ_FIRST(&cl->replay);
	TAILQ_REMOVE(&cl->replay, e, link);
	cl->depth--;
	cl->merging = e;
	if (e->kind == REPLAY_OPS)
		cl->merge_req = e->ops->send(cl, e->payload, merge_cb, cl);
	else if (e->kind == REPLAY_TRIPLET)
		cl->merge_req = replay_triplet(cl, &e->t);
	else
		cl->merge_req = learned_replay(cl, e->kind,
		    e->kind == REPLAY_RCPT ? (const void *)&e->r :
		    (const void *)&e->d, merge_cb, cl);
}

/* --- for bulkshare.c --------------------------------------------------------- */

struct redis_req *
cluster_bulk_script(struct cluster *cl, int nkeys, int argc,
    const char **argv, const size_t *argvlen, redis_reply_cb *cb, void *arg)
{
	return redis_script(cl->redis, SCRIPT_BULK, nkeys, argc, argv,
	    argvlen, cb, arg);
}

void
cluster_fell_back(struct cluster *cl)
{
	cl->fallbacks++;
}

void
cluster_replay_kick(struct cluster *cl)
{
	replay_next(cl);
}

/* --- primary health ----------------------------------------------------------- */

/* A name as this file accepts it from a peer: 1..255 bytes, printable,
 * no space. */
static int
copy_name(char out[256], const char *p, size_t len)
{
	size_t i;

	if (len == 0 || len > 255)
		return -1;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return -1;
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

static int
parse_since(const char *p, size_t len, int64_t *out)
{
	return redis_parse_num(p, len, out);
}

static int
parse_state(const char *p, size_t len, int *up)
{
	if (len == 2 && memcmp(p, "up", 2) == 0)
		*up = 1;
	else if (len == 4 && memcmp(p, "down", 4) == 0)
		*up = 0;
	else
		return -1;
	return 0;
}

int
cluster_parse_health_msg(const char *p, size_t len, struct cluster_health *out)
{
	const char *f[4];
	size_t fl[4], n = 0, i, start = 0;

	if (len > HEALTH_MSG_MAX)
		return -1;
	for (i = 0; i <= len; i++) {
		if (i < len && p[i] != ' ')
			continue;
		if (n == 4)
			return -1;
		f[n] = p + start;
		fl[n++] = i - start;
		start = i + 1;
	}
	if (n != 4 || parse_state(f[0], fl[0], &out->up) == -1 ||
	    copy_name(out->domain, f[1], fl[1]) == -1 ||
	    copy_name(out->node, f[2], fl[2]) == -1 ||
	    parse_since(f[3], fl[3], &out->since) == -1)
		return -1;
	return 0;
}

int
cluster_parse_health_key(const redisReply *reply, struct cluster_health *out)
{
	const redisReply *e;
	size_t i;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
		return -1;
	for (i = 0; i < 4; i++) {
		e = reply->element[i];
		if (e->type != REDIS_REPLY_STRING || e->str == NULL)
			return -1;	/* no key: every field nil */
	}
	if (parse_state(reply->element[0]->str, reply->element[0]->len,
	    &out->up) == -1 ||
	    parse_since(reply->element[1]->str, reply->element[1]->len,
	    &out->since) == -1 ||
	    copy_name(out->node, reply->element[2]->str,
	    reply->element[2]->len) == -1 ||
	    copy_name(out->domain, reply->element[3]->str,
	    reply->element[3]->len) == -1)
		return -1;
	return 0;
}

void
cluster_on_health(struct cluster *cl, cluster_health_cb *cb,
    cluster_resync_cb *resync, void *arg)
{
	cl->health_cb = cb;
	cl->resync_cb = resync;
	cl->health_arg = arg;
}

static void
publish_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster *cl = arg;

	if (st == REDIS_REPLY_OK && reply->type == REDIS_REPLY_INTEGER)
		cl->health_sent++;
	else
		cl->health_send_failed++;
}

void
cluster_health_publish(struct cluster *cl, const char *domain, int up,
    int64_t since)
{
	char key[400], msg[HEALTH_MSG_MAX + 1], sn[24], ttl[16];
	const char *argv[8], *state = up ? "up" : "down";

	snprintf(key, sizeof(key), "%shealth:%s", cl->prefix, domain);
	snprintf(sn, sizeof(sn), "%lld", (long long)since);
	snprintf(ttl, sizeof(ttl), "%d", HEALTH_KEY_TTL);
	snprintf(msg, sizeof(msg), "%s %s %s %s", state, domain, cl->node, sn);
	argv[0] = key;
	argv[1] = cl->channel;
	argv[2] = state;
	argv[3] = sn;
	argv[4] = cl->node;
	argv[5] = domain;
	argv[6] = ttl;
	argv[7] = msg;
	/* Not tracked: redis_free() drops it at the end, and its timer
	 * bounds it meanwhile. */
	(void)cluster_script(cl, SCRIPT_HEALTH, 2, 8, argv, publish_cb, cl);
	log_info("event=cluster_health_publish domain=%s state=%s", domain,
	    state);
}

/* Another node's news; this node's own comes back too and is dropped. */
static void
deliver_news(struct cluster *cl, const struct cluster_health *n)
{
	if (strcmp(n->node, cl->node) == 0 || cl->health_cb == NULL)
		return;
	log_info("event=cluster_health domain=%s state=%s node=%s since=%lld",
	    n->domain, n->up ? "up" : "down", n->node, (long long)n->since);
	cl->health_cb(n, cl->health_arg);
}

static void
message_cb(const char *p, size_t len, void *arg)
{
	struct cluster *cl = arg;
	struct cluster_health n;

	if (cluster_parse_health_msg(p, len, &n) == -1) {
		cl->health_rejected++;
		log_warn("event=cluster_health_rejected len=%zu", len);
		return;
	}
	if (strcmp(n.node, cl->node) != 0)
		cl->health_received++;
	deliver_news(cl, &n);
}

static void
read_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster *cl = arg;
	struct cluster_health n;

	if (st != REDIS_REPLY_OK || cluster_parse_health_key(reply, &n) == -1)
		return;		/* no key, or no answer: the probes decide */
	cl->health_keys_read++;
	deliver_news(cl, &n);
}

void
cluster_health_read(struct cluster *cl, const char *domain)
{
	char key[400];
	const char *argv[6] = { "HMGET", key, "state", "since", "node",
	    "domain" };
	size_t len[6];
	int i;

	snprintf(key, sizeof(key), "%shealth:%s", cl->prefix, domain);
	for (i = 0; i < 6; i++)
		len[i] = strlen(argv[i]);
	(void)redis_call(cl->redis, 6, argv, len, read_cb, cl);
}

/* Subscribed first, read after (both connections ready): news published
 * in between comes as a message, news before is in the keys. */
static void
resync(struct cluster *cl)
{
	struct redis_stats a, b;

	redis_get_stats(cl->redis, &a);
	redis_get_stats(cl->sub, &b);
	if (!cl->resync || !a.connected || !b.connected)
		return;
	cl->resync = 0;
	if (cl->resync_cb != NULL)
		cl->resync_cb(cl->health_arg);
}

static void
sub_ready_cb(void *arg)
{
	struct cluster *cl = arg;

	cl->resync = 1;
	resync(cl);
}

/* --- heartbeat and status ----------------------------------------------------- */

static void
beat_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster *cl = arg;

	cl->beat = NULL;
	if (st == REDIS_REPLY_OK && reply->type == REDIS_REPLY_INTEGER &&
	    reply->integer >= 0)
		allowshare_beat(cl->allow, reply->integer);
}

static void
beat_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	struct timeval tv = { BEAT_SECS, 0 };
	char k1[400], k2[128], k3[128], now[24], ttl[16];
	const char *argv[6];

	evtimer_add(cl->ev_beat, &tv);
	replay_next(cl);
	if (cl->beat != NULL)
		return;
	snprintf(k1, sizeof(k1), "%snode:%s", cl->prefix, cl->node);
	snprintf(k2, sizeof(k2), "%snodes", cl->prefix);
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	snprintf(ttl, sizeof(ttl), "%d", BEAT_TTL);
	snprintf(k3, sizeof(k3), "%sallow:version", cl->prefix);
	argv[0] = k1;
	argv[1] = k2;
	argv[2] = k3;
	argv[3] = cl->node;
	argv[4] = now;
	argv[5] = ttl;
	cl->beat = cluster_script(cl, SCRIPT_BEAT, 3, 6, argv, beat_cb, cl);
}

/* The connection is (again) ready: say so at once, then push what
 * waited. */
static void
ready_cb(void *arg)
{
	struct cluster *cl = arg;

	/* What changed meanwhile, here or there, merges at this beat. */
	allowshare_connected(cl->allow);
	event_del(cl->ev_beat);
	event_active(cl->ev_beat, EV_TIMEOUT, 0);
	resync(cl);
}

static void
status_fill(struct cluster *cl, struct cluster_status *s)
{
	memset(s, 0, sizeof(*s));
	str_copy(s->server, sizeof(s->server), redis_address(cl->redis));
	str_copy(s->node, sizeof(s->node), cl->node);
	redis_get_stats(cl->redis, &s->redis);
	s->replay_depth = cl->depth + (cl->merging != NULL);
	s->replay_limit = cl->limit;
	s->replay_dropped = cl->dropped;
	s->replay_merged = cl->merged;
	s->fallbacks = cl->fallbacks;
	s->net_shared = cl->net_shared;
	s->net_allowed = cl->net_allowed;
	redis_get_stats(cl->sub, &s->sub);
	if (cl->sentinel != NULL) {
		s->sentinel = 1;
		sentinel_get_stats(cl->sentinel, &s->sentinel_st);
	}
	s->health_sent = cl->health_sent;
	s->health_send_failed = cl->health_send_failed;
	s->health_received = cl->health_received;
	s->health_keys_read = cl->health_keys_read;
	s->health_rejected = cl->health_rejected;
	learned_stats(cl->learned, &s->learned);
	memcpy(s->leases, cl->leases, sizeof(s->leases));
	allowshare_stats(cl->allow, &s->allow);
}

static void
nodes_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_op *op = arg;
	cluster_status_cb *cb = op->status_cb;
	void *cbarg = op->arg;
	struct cluster_status *s;

	s = xcalloc(1, sizeof(*s));
	status_fill(op->cl, s);
	op->req = NULL;
	op_free(op);
	if (st == REDIS_REPLY_OK && reply->type == REDIS_REPLY_ARRAY) {
		s->nodes_known = 1;
		s->nnodes = cluster_parse_nodes(reply, s->nodes,
		    CLUSTER_NODES_MAX);
	}
	cb(s, cbarg);
	free(s);
}

struct cluster_op *
cluster_status(struct cluster *cl, cluster_status_cb *cb, void *arg)
{
	struct cluster_op *op = op_new(cl, arg);
	char k[128], p[128];
	const char *argv[2];

	op->status_cb = cb;
	snprintf(k, sizeof(k), "%snodes", cl->prefix);
	snprintf(p, sizeof(p), "%snode:", cl->prefix);
	argv[0] = k;
	argv[1] = p;
	op->req = cluster_script(cl, SCRIPT_NODES, 1, 2, argv, nodes_cb, op);
	return op;
}

/* --- bulk forget (docs/cluster.md "Bulk counts") ------------------------- */

static void
forget_reply_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_op *op = arg;
	cluster_forget_cb *cb = op->forget_cb;
	void *cbarg = op->arg;
	int rc;

	op->req = NULL;
	op_free(op);
	if (st == REDIS_REPLY_OK && reply->type == REDIS_REPLY_INTEGER)
		rc = reply->integer > 0 ? 1 : 0;
	else {
		if (st == REDIS_REPLY_OK)
			log_warn("event=redis_bulk error=\"%s\"",
			    redis_reply_error(reply, "unexpected answer"));
		/* Sent but unanswered: it may have run. */
		rc = st == REDIS_FAIL_TIMEOUT || st == REDIS_FAIL_CONN ?
		    CLUSTER_FORGET_UNSURE : CLUSTER_FORGET_FAILED;
	}
	cb(rc, cbarg);
}

struct cluster_op *
cluster_bulk_forget(struct cluster *cl, const char *digest,
    cluster_forget_cb *cb, void *arg)
{
	struct cluster_op *op = op_new(cl, arg);

	op->forget_cb = cb;
	op->req = bulkshare_forget_send(cl, digest, (int64_t)time(NULL),
	    cl->conf->bulk_window, cl->conf->bulk_remember, forget_reply_cb,
	    op);
	return op;
}

/* --- the operator's allow entries (allowshare.c) ---------------------------- */

void
cluster_set_state(struct cluster *cl, struct state *st)
{
	allowshare_set_state(cl->allow, st);
}

struct cluster_op *
cluster_allow_share(struct cluster *cl, cluster_allow_cb *cb, void *arg)
{
	struct cluster_op *op = op_new(cl, arg);

	op->allow_cb = cb;
	/* A sync running now may have read the store before the change. */
	op->allow_after = allowshare_started(cl->allow);
	allowshare_kick(cl->allow);
	return op;
}

void
cluster_allow_synced(struct cluster *cl, uint64_t n, int ok)
{
	struct cluster_op *op;
	cluster_allow_cb *cb;
	void *arg;
	int more = 0;

	/* One at a time from the head: a callback may cancel others. */
	for (;;) {
		TAILQ_FOREACH(op, &cl->ops, link)
			if (op->allow_cb != NULL && op->allow_after < n)
				break;
		if (op == NULL)
			break;
		cb = op->allow_cb;
		arg = op->arg;
		op_free(op);
		cb(ok ? 0 : -1, arg);
	}
	TAILQ_FOREACH(op, &cl->ops, link)
		more |= op->allow_cb != NULL;
	if (more)
		allowshare_kick(cl->allow);
}

/* --- for lease.c ------------------------------------------------------------ */

struct redis *
cluster_redis(struct cluster *cl)
{
	return cl->redis;
}

struct cluster_lease_stats *
cluster_lease_counts(struct cluster *cl, enum cluster_lease_kind k)
{
	return &cl->leases[k];
}

/* --- the object ------------------------------------------------------------- */

static struct sentinel *
cluster_sentinel_new(struct event_base *base, const struct config *c)
{
	struct sentinel_conf sc;
	char hosts[SENTINEL_MAX][64];
	const char *hp[SENTINEL_MAX];
	unsigned ports[SENTINEL_MAX];
	size_t i;

	memset(&sc, 0, sizeof(sc));
	for (i = 0; i < c->nredis_sentinels && i < SENTINEL_MAX; i++) {
		ports[i] = (unsigned)sockaddr_ntop((const struct sockaddr *)
		    &c->redis_sentinel[i].ss, hosts[i], sizeof(hosts[i]));
		hp[i] = hosts[i];
	}
	sc.hosts = hp;
	sc.ports = ports;
	sc.n = i;
	sc.master_name = c->redis_master_name;
	sc.timeout_ms = c->redis_timeout;
	return sentinel_new(base, &sc);
}

void
cluster_status_now(struct cluster *cl, struct cluster_status *s)
{
	status_fill(cl, s);
}

struct cluster *
cluster_new(struct event_base *base, const struct config *c)
{
	struct cluster *cl;
	struct redis_conf rc;
	char host[64];
	int port = 0;

	if (c->nredis_servers == 0 && c->nredis_sentinels == 0)
		return NULL;
	cl = xcalloc(1, sizeof(*cl));
	cl->base = base;
	str_copy(cl->prefix, sizeof(cl->prefix), c->redis_prefix);
	str_copy(cl->node, sizeof(cl->node), c->myhostname);
	cl->limit = c->redis_replay_limit;
	cl->auto_allow = c->greylist_auto_allow_passes;
	cl->conf = c;
	TAILQ_INIT(&cl->replay);
	TAILQ_INIT(&cl->ops);
	cl->learned = learned_new();
	cl->allow = allowshare_new(cl);
	cl->ev_beat = evtimer_new(base, beat_timer_cb, cl);
	host[0] = '\0';
	if (c->nredis_servers > 0)
		port = sockaddr_ntop((const struct sockaddr *)
		    &c->redis_server.ss, host, sizeof(host));
	memset(&rc, 0, sizeof(rc));
	rc.host = host;
	rc.port = (unsigned)port;
	rc.timeout_ms = c->redis_timeout;
	rc.scripts = scripts;
	rc.nscripts = NSCRIPTS;
	rc.poll_info = 1;
	if (c->nredis_sentinels > 0) {
		/* The master is named later (docs/cluster.md "Sentinel"). */
		cl->sentinel = cluster_sentinel_new(base, c);
		rc.check_role = 1;
		rc.on_trouble = sentinel_suspect;
		rc.trouble_arg = cl->sentinel;
	}
	cl->redis = redis_new(base, &rc, ready_cb, cl);
	snprintf(cl->channel, sizeof(cl->channel), "%shealth", cl->prefix);
	rc.scripts = NULL;
	rc.nscripts = 0;
	rc.poll_info = 0;
	rc.subscribe = cl->channel;
	rc.on_message = message_cb;
	rc.message_arg = cl;
	cl->sub = redis_new(base, &rc, sub_ready_cb, cl);
	if (cl->sentinel != NULL) {
		sentinel_follow(cl->sentinel, cl->redis);
		sentinel_follow(cl->sentinel, cl->sub);
	}
	log_info("event=cluster node=%s server=%s prefix=%s timeout_ms=%u",
	    cl->node, redis_address(cl->redis), cl->prefix, c->redis_timeout);
	return cl;
}

void
cluster_free(struct cluster *cl)
{
	struct cluster_op *op;
	struct replay *e;

	if (cl == NULL)
		return;
	/* Its request, while the connection still holds it. */
	allowshare_free(cl->allow);
	/* Before its followers; redis_free() drops every request without
	 * its callback. */
	sentinel_free(cl->sentinel);
	redis_free(cl->sub);
	redis_free(cl->redis);
	while ((op = TAILQ_FIRST(&cl->ops)) != NULL)
		op_free(op);
	learned_free(cl->learned);
	if (cl->depth > 0 || cl->merging != NULL)
		log_warn("event=redis_replay_lost count=%zu",
		    cl->depth + (cl->merging != NULL));
	replay_free(cl->merging);
	while ((e = TAILQ_FIRST(&cl->replay)) != NULL) {
		TAILQ_REMOVE(&cl->replay, e, link);
		replay_free(e);
	}
	event_free(cl->ev_beat);
	free(cl);
}
