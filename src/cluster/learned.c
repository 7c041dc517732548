/*
 * learned: recipients and the domain lifecycle shared through Redis
 * (learned.h, docs/cluster.md "Learned recipients and the domain
 * lifecycle").
 *
 * Three server-side scripts: GET reads an address's record and its
 * domain's in one request; RCPT and DOMAIN merge a node's record into
 * Redis by the rules learn.c applies to a node's store
 * (learn_rcpt_merge(), learn_domain_merge()), so the order in which
 * nodes push changes nothing. Records go through the replay queue of
 * cluster.c: pushed at once while Redis answers, kept (bounded) while
 * it does not.
 */
#include "learned.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster_int.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

#define RCPT_FIELDS	8	/* the GET script's first array */
#define DOMAIN_FIELDS	6	/* its second */

/*
 * KEYS[1] PREFIX rcpt:HASH, KEYS[2] PREFIX domain:NAME: both hashes'
 * fields, nil where there is none.
 */
const char learned_script_get[] =
"return {redis.call('HMGET', KEYS[1], 'addr', 'domain', 'status',"
" 'source', 'first_seen', 'last_seen', 'expires', 'why'),"
" redis.call('HMGET', KEYS[2], 'name', 'lifecycle', 'added',"
" 'first_accept', 'last_accept', 'accept_how')}\n";

/*
 * KEYS[1] PREFIX rcpt:HASH; ARGV addr, domain, status, source,
 * first_seen, last_seen, expires, why, node, now. The later last_seen
 * wins (a tie keeps Redis's: the same record pushed twice changes
 * nothing); the same status on both sides: earliest first_seen, later
 * expiry (0 never). The key lives until its expiry, by Redis' clock.
 */
const char learned_script_rcpt[] =
"local k = KEYS[1]\n"
"local st, src, why, node = ARGV[3], ARGV[4], ARGV[8], ARGV[9]\n"
"local f, l, e = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
"local now = tonumber(ARGV[10])\n"
"local function later(a, b)\n"
"  if a == 0 or b == 0 then return 0 end\n"
"  return math.max(a, b)\n"
"end\n"
"if e ~= 0 and e <= now then return 0 end\n"
"local h = redis.call('HMGET', k, 'status', 'source', 'first_seen',"
" 'last_seen', 'expires', 'why', 'node')\n"
"local hf, hl, he = tonumber(h[3]), tonumber(h[4]), tonumber(h[5])\n"
"if h[1] and hf and hl and he and (he == 0 or he > now) then\n"
"  if h[1] == st then f, e = math.min(f, hf), later(e, he) end\n"
"  if hl >= l then\n"
"    if h[1] ~= st then f, e = hf, he end\n"
"    st, src, l, why, node = h[1], h[2] or src, hl, h[6] or '',"
" h[7] or ''\n"
"  end\n"
"end\n"
"redis.call('HSET', k, 'addr', ARGV[1], 'domain', ARGV[2], 'status', st,"
" 'source', src, 'first_seen', f, 'last_seen', l, 'expires', e,"
" 'why', why, 'node', node)\n"
"if e == 0 then redis.call('PERSIST', k)\n"
"else redis.call('EXPIRE', k, math.max(1, e - now)) end\n"
"return 1\n";

/*
 * KEYS[1] PREFIX domain:NAME; ARGV name, lifecycle, added, first_accept,
 * last_accept, accept_how, node. Earliest start and first acceptance,
 * the latest last acceptance (a tie keeps Redis's); 'lifecycle' is for
 * the reader: active once any node saw it active or an acceptance came
 * after a refusal, else refused if any node said so. No TTL: a domain's
 * record is as lasting as in a node's store.
 */
const char learned_script_domain[] =
"local k = KEYS[1]\n"
"local lc, how, node = ARGV[2], ARGV[6], ARGV[7]\n"
"local a, fa, la = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
"local h = redis.call('HMGET', k, 'lifecycle', 'added', 'first_accept',"
" 'last_accept', 'accept_how', 'node')\n"
"local ha, hfa, hla = tonumber(h[2]), tonumber(h[3]), tonumber(h[4])\n"
"if ha and hfa and hla then\n"
"  if ha ~= 0 and (a == 0 or ha < a) then a = ha end\n"
"  if hfa ~= 0 and (fa == 0 or hfa < fa) then fa = hfa end\n"
"  if hla >= la then la, how, node = hla, h[5] or '', h[6] or '' end\n"
"  if h[1] == 'active' or lc == 'active' or (fa ~= 0 and"
" (h[1] == 'refused' or lc == 'refused')) then lc = 'active'\n"
"  elseif h[1] == 'refused' then lc = 'refused' end\n"
"end\n"
"redis.call('HSET', k, 'name', ARGV[1], 'lifecycle', lc, 'added', a,"
" 'first_accept', fa, 'last_accept', la, 'accept_how', how,"
" 'node', node)\n"
"return 1\n";

static const char *const status_names[] = {
	[STATE_RCPT_VALID] = "valid", [STATE_RCPT_INVALID] = "invalid",
};
static const char *const source_names[] = {
	[STATE_SRC_PASSTHROUGH] = "passthrough",
	[STATE_SRC_DELIVERY] = "delivery",
	[STATE_SRC_CALLOUT] = "callout",
	[STATE_SRC_ADMIN] = "admin",
};
static const char *const lifecycle_names[] = {
	[STATE_DOM_LEARNING] = "learning", [STATE_DOM_ACTIVE] = "active",
	[STATE_DOM_REFUSED] = "refused",
};
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct cluster_learned_op {
	TAILQ_ENTRY(cluster_learned_op) link;
	struct cluster		*cl;
	struct learned		*lr;
	struct redis_req	*req;
	cluster_learned_cb	*cb;
	void			*arg;
	char			 addr[STATE_ADDR_MAX];
	char			 domain[256];
};

struct learned {
	struct cluster_learned_stats	 st;
	TAILQ_HEAD(, cluster_learned_op) ops;
};

/* --- keys and parsing ------------------------------------------------------- */

int
cluster_rcpt_key(const char *prefix, const char *addr, char *out,
    size_t outsz)
{
	return cluster_hash_key(prefix, "rcpt:", &addr, 1, out, outsz);
}

int
cluster_domain_key(const char *prefix, const char *domain, char *out,
    size_t outsz)
{
	int n = snprintf(out, outsz, "%sdomain:%s", prefix, domain);

	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

/* Index of the name in 'names' equal to the reply's text, or -1. */
static int
name_of(const redisReply *e, const char *const *names, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (names[i] != NULL && strlen(names[i]) == e->len &&
		    memcmp(names[i], e->str, e->len) == 0)
			return (int)i;
	return -1;
}

static int
number_of(const redisReply *e, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (e->len == 0 || e->len > 18)
		return -1;
	for (i = 0; i < e->len; i++) {
		if (e->str[i] < '0' || e->str[i] > '9')
			return -1;
		v = v * 10 + (e->str[i] - '0');
	}
	*out = v;
	return 0;
}

/* A name or an address: 1..size-1 bytes, none a control byte. */
static int
text_of(const redisReply *e, char *out, size_t size)
{
	size_t i;

	if (e->len == 0 || e->len >= size)
		return -1;
	for (i = 0; i < e->len; i++)
		if ((unsigned char)e->str[i] < ' ' || e->str[i] == 0x7f)
			return -1;
	memcpy(out, e->str, e->len);
	out[e->len] = '\0';
	return 0;
}

/* Free text for the operator: cut to fit, control bytes as '?'. */
static void
why_of(const redisReply *e, char *out, size_t size)
{
	size_t i, n = e->len < size - 1 ? e->len : size - 1;

	for (i = 0; i < n; i++)
		out[i] = (unsigned char)e->str[i] < ' ' ||
		    e->str[i] == 0x7f ? '?' : e->str[i];
	out[n] = '\0';
}

/* An array of n fields, each a string: 1; each nil (no key): 0; else
 * -1 (the first n-1 required, the last may be nil). */
static int
fields(const redisReply *a, size_t n)
{
	size_t i, nil = 0;

	if (a->type != REDIS_REPLY_ARRAY || a->elements != n)
		return -2;
	for (i = 0; i < n; i++) {
		if (a->element[i]->type == REDIS_REPLY_NIL)
			nil++;
		else if (a->element[i]->type != REDIS_REPLY_STRING)
			return -1;
	}
	if (nil == n)
		return 0;
	return nil == 0 || (nil == 1 &&
	    a->element[n - 1]->type == REDIS_REPLY_NIL) ? 1 : -1;
}

static int
parse_rcpt(const redisReply *a, struct state_rcpt *r)
{
	redisReply *const *e = a->element;
	int status, source;

	memset(r, 0, sizeof(*r));
	if (text_of(e[0], r->addr, sizeof(r->addr)) == -1 ||
	    text_of(e[1], r->domain, sizeof(r->domain)) == -1 ||
	    (status = name_of(e[2], status_names, NELEM(status_names))) == -1 ||
	    (source = name_of(e[3], source_names, NELEM(source_names))) == -1 ||
	    number_of(e[4], &r->first_seen) == -1 ||
	    number_of(e[5], &r->last_seen) == -1 ||
	    number_of(e[6], &r->expires) == -1)
		return -1;
	r->status = status;
	r->source = source;
	if (e[7]->type == REDIS_REPLY_STRING)
		why_of(e[7], r->why, sizeof(r->why));
	return 0;
}

static int
parse_domain(const redisReply *a, struct state_domain *d)
{
	redisReply *const *e = a->element;
	int lc;

	memset(d, 0, sizeof(*d));
	if (text_of(e[0], d->name, sizeof(d->name)) == -1 ||
	    (lc = name_of(e[1], lifecycle_names, NELEM(lifecycle_names))) ==
	    -1 || number_of(e[2], &d->added) == -1 ||
	    number_of(e[3], &d->first_accept) == -1 ||
	    number_of(e[4], &d->last_accept) == -1)
		return -1;
	d->lifecycle = lc;
	d->health = 1;
	if (e[5]->type == REDIS_REPLY_STRING)
		why_of(e[5], d->accept_how, sizeof(d->accept_how));
	return 0;
}

int
cluster_parse_learned(const redisReply *reply, struct state_rcpt *r,
    int *have_r, struct state_domain *d, int *have_d)
{
	int fr, fd;

	*have_r = *have_d = 0;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
		return -1;
	if ((fr = fields(reply->element[0], RCPT_FIELDS)) == -2 ||
	    (fd = fields(reply->element[1], DOMAIN_FIELDS)) == -2)
		return -1;
	*have_r = fr == 1 && parse_rcpt(reply->element[0], r) == 0;
	*have_d = fd == 1 && parse_domain(reply->element[1], d) == 0;
	return 0;
}

/* --- sharing ------------------------------------------------------------------ */

void
cluster_learned_rcpt(struct cluster *cl, const struct state_rcpt *r)
{
	cluster_replay_add(cl, REPLAY_RCPT, r);
}

void
cluster_learned_domain(struct cluster *cl, const struct state_domain *d)
{
	cluster_replay_add(cl, REPLAY_DOMAIN, d);
}

static const char *
name_or(const char *const *names, size_t n, int i)
{
	return i > 0 && (size_t)i < n && names[i] != NULL ? names[i] : "";
}

static struct redis_req *
replay_rcpt(struct cluster *cl, const struct state_rcpt *r, int64_t now,
    redis_reply_cb *cb, void *arg)
{
	char key[128], num[4][24];
	const char *argv[11];

	if (cluster_rcpt_key(cluster_prefix(cl), r->addr, key,
	    sizeof(key)) == -1)
		key[0] = '\0';	/* cannot happen: a 45-byte key */
	snprintf(num[0], sizeof(num[0]), "%lld", (long long)r->first_seen);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)r->last_seen);
	snprintf(num[2], sizeof(num[2]), "%lld", (long long)r->expires);
	snprintf(num[3], sizeof(num[3]), "%lld", (long long)now);
	argv[0] = key;
	argv[1] = r->addr;
	argv[2] = r->domain;
	argv[3] = name_or(status_names, NELEM(status_names), r->status);
	argv[4] = name_or(source_names, NELEM(source_names), r->source);
	argv[5] = num[0];
	argv[6] = num[1];
	argv[7] = num[2];
	argv[8] = r->why;
	argv[9] = cluster_node(cl);
	argv[10] = num[3];
	return cluster_script(cl, SCRIPT_LEARN_RCPT, 1, 11, argv, cb, arg);
}

static struct redis_req *
replay_domain(struct cluster *cl, const struct state_domain *d,
    redis_reply_cb *cb, void *arg)
{
	char key[400], num[3][24];
	const char *argv[8];

	if (cluster_domain_key(cluster_prefix(cl), d->name, key,
	    sizeof(key)) == -1)
		key[0] = '\0';	/* a prefix of 64 and a name of 255 fit */
	snprintf(num[0], sizeof(num[0]), "%lld", (long long)d->added);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)d->first_accept);
	snprintf(num[2], sizeof(num[2]), "%lld", (long long)d->last_accept);
	argv[0] = key;
	argv[1] = d->name;
	argv[2] = name_or(lifecycle_names, NELEM(lifecycle_names),
	    d->lifecycle);
	argv[3] = num[0];
	argv[4] = num[1];
	argv[5] = num[2];
	argv[6] = d->accept_how;
	argv[7] = cluster_node(cl);
	return cluster_script(cl, SCRIPT_LEARN_DOMAIN, 1, 8, argv, cb, arg);
}

struct redis_req *
learned_replay(struct cluster *cl, enum replay_kind kind, const void *rec,
    redis_reply_cb *cb, void *arg)
{
	/* Expired is judged at the push, not at the learning. */
	if (kind == REPLAY_RCPT)
		return replay_rcpt(cl, rec, (int64_t)time(NULL), cb, arg);
	return replay_domain(cl, rec, cb, arg);
}

void
learned_replayed(struct learned *lr, enum replay_kind kind, int ok)
{
	if (!ok)
		return;
	if (kind == REPLAY_RCPT)
		lr->st.rcpt_shared++;
	else if (kind == REPLAY_DOMAIN)
		lr->st.domain_shared++;
}

/* --- asking --------------------------------------------------------------------- */

static void
op_free(struct cluster_learned_op *op)
{
	TAILQ_REMOVE(&op->lr->ops, op, link);
	free(op);
}

void
cluster_learned_cancel(struct cluster_learned_op *op)
{
	if (op == NULL)
		return;
	redis_cancel(op->req);
	op_free(op);
}

static void
get_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_learned_op *op = arg;
	struct learned *lr = op->lr;
	struct cluster *cl = op->cl;
	cluster_learned_cb *cb = op->cb;
	void *cbarg = op->arg;
	struct state_rcpt r;
	struct state_domain d;
	int have_r, have_d;

	op->req = NULL;
	if (st != REDIS_REPLY_OK ||
	    cluster_parse_learned(reply, &r, &have_r, &d, &have_d) == -1) {
		if (st == REDIS_REPLY_OK)
			log_warn("event=redis_learned error=\"%s\"",
			    redis_reply_error(reply, "unexpected answer"));
		lr->st.lookup_failed++;
		op_free(op);
		cb(-1, NULL, NULL, cbarg);
		return;
	}
	/* A record of another address (a hash collision, a hand-made key),
	 * or of this one under another domain, is no knowledge of it. */
	if (have_r && (strcmp(r.addr, op->addr) != 0 ||
	    strcmp(r.domain, strrchr(op->addr, '@') != NULL ?
	    strrchr(op->addr, '@') + 1 : "") != 0))
		have_r = 0, lr->st.rejected++;
	if (have_d && strcmp(d.name, op->domain) != 0)
		have_d = 0, lr->st.rejected++;
	lr->st.rcpt_found += have_r;
	lr->st.domain_found += have_d;
	op_free(op);
	cluster_replay_kick(cl);
	cb(0, have_r ? &r : NULL, have_d ? &d : NULL, cbarg);
}

struct cluster_learned_op *
cluster_learned_get(struct cluster *cl, const char *addr, const char *domain,
    cluster_learned_cb *cb, void *arg)
{
	struct learned *lr = cluster_learned_of(cl);
	struct cluster_learned_op *op = xcalloc(1, sizeof(*op));
	char rkey[128], dkey[400];
	const char *argv[2];

	op->cl = cl;
	op->lr = lr;
	op->cb = cb;
	op->arg = arg;
	str_copy(op->addr, sizeof(op->addr), addr);
	str_copy(op->domain, sizeof(op->domain), domain);
	str_lower(op->domain);
	TAILQ_INSERT_TAIL(&lr->ops, op, link);
	lr->st.lookups++;
	if (cluster_rcpt_key(cluster_prefix(cl), op->addr, rkey,
	    sizeof(rkey)) == -1)
		rkey[0] = '\0';
	if (cluster_domain_key(cluster_prefix(cl), op->domain, dkey,
	    sizeof(dkey)) == -1)
		dkey[0] = '\0';
	argv[0] = rkey;
	argv[1] = dkey;
	op->req = cluster_script(cl, SCRIPT_LEARN_GET, 2, 2, argv, get_cb, op);
	return op;
}

/* --- the object ------------------------------------------------------------------ */

struct learned *
learned_new(void)
{
	struct learned *lr = xcalloc(1, sizeof(*lr));

	TAILQ_INIT(&lr->ops);
	return lr;
}

/* After redis_free(): the requests are gone without their callbacks. */
void
learned_free(struct learned *lr)
{
	struct cluster_learned_op *op;

	if (lr == NULL)
		return;
	while ((op = TAILQ_FIRST(&lr->ops)) != NULL)
		op_free(op);
	free(lr);
}

void
learned_stats(const struct learned *lr, struct cluster_learned_stats *out)
{
	*out = lr->st;
}
