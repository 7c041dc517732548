/*
 * allowshare: the operator's run-time allow entries (backmxctl greylist
 * allow|delete, bulk allow|forget VALUE) shared by the nodes of a
 * cluster (docs/cluster.md "Allow entries").
 *
 * The node's own state.db stays what the checks read: Redis is never on
 * the check path. Each list is one Redis hash, field "KIND VALUE", value
 * "AT add" or "AT del"; the last writer wins, a delete on a tie, in the
 * PUT script as in state_allow_apply(). A sync pulls both hashes (at most
 * ALLOW_PULL_MAX entries each), applies what wins over the local store,
 * and pushes what the local store has newer (made while Redis was away,
 * or never pushed), in batches. A sync runs after an operator's change,
 * after every (re)connect, and whenever the heartbeat sees the version
 * key moved. One at a time; every reply is peer bytes, checked.
 */
#include "cluster.h"
#include "cluster_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "xmem.h"

#define ALLOW_PULL_MAX	10000	/* entries a pull takes of each list */
#define ALLOW_PUSH_MAX	50	/* entries a PUT carries */
#define NLISTS		2
#define ALLOW_RESYNC_SECS 300	/* a full sync at least this often */

/*
 * KEYS[1] a list's hash, KEYS[2] the version; ARGV field, at, op
 * triples ("add" or "del"). Each is set only when it wins over the one
 * there: a later time, or the same time and a delete over an add. The
 * version moves when anything changed, so the other nodes pull. A new
 * version key (none yet, or a Redis that lost its keys: FLUSHALL,
 * eviction) starts at Redis' clock in microseconds, not at 0: counted
 * from 0 again it would repeat the number a node last saw, and that
 * node would never pull.
 */
const char cluster_allow_put_lua[] =
"local n = 0\n"
"for i = 1, #ARGV - 2, 3 do\n"
"  local at, op = tonumber(ARGV[i + 1]), ARGV[i + 2]\n"
"  local old = redis.call('HGET', KEYS[1], ARGV[i])\n"
"  local win = true\n"
"  if old then\n"
"    local oat, oop = string.match(old, '^(%d+) (%a+)$')\n"
"    oat = tonumber(oat)\n"
"    if oat and (oat > at or (oat == at and"
" not (op == 'del' and oop == 'add'))) then win = false end\n"
"  end\n"
"  if win then\n"
"    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ' ' .. op)\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"if n > 0 then\n"
"  if redis.call('EXISTS', KEYS[2]) == 0 then\n"
"    local t = redis.call('TIME')\n"
"    redis.call('SET', KEYS[2], t[1] .. string.format('%06d',"
" tonumber(t[2])))\n"
"  end\n"
"  redis.call('INCR', KEYS[2])\n"
"end\n"
"return n\n";

/*
 * KEYS[1], KEYS[2] the lists' hashes, KEYS[3] the version; ARGV[1] the
 * cap. The version and each list's field, value pairs, at most 'cap'
 * pairs a list (a longer one by HSCAN, in Redis' order).
 */
const char cluster_allow_pull_lua[] =
"local cap = tonumber(ARGV[1])\n"
"local function take(k)\n"
"  if redis.call('HLEN', k) <= cap then\n"
"    return redis.call('HGETALL', k)\n"
"  end\n"
"  local out, cur = {}, '0'\n"
"  repeat\n"
"    local r = redis.call('HSCAN', k, cur, 'COUNT', 100)\n"
"    cur = r[1]\n"
"    for i = 1, #r[2] - 1, 2 do\n"
"      if #out < 2 * cap then\n"
"        out[#out + 1] = r[2][i]; out[#out + 1] = r[2][i + 1]\n"
"      end\n"
"    end\n"
"  until cur == '0' or #out >= 2 * cap\n"
"  return out\n"
"end\n"
"return {tonumber(redis.call('GET', KEYS[3]) or '0') or 0, take(KEYS[1]),"
" take(KEYS[2])}\n";

static const char *const list_names[NLISTS] = {
	[STATE_ALLOWS_GREYLIST] = "greylist",
	[STATE_ALLOWS_BULK] = "bulk",
};

struct allowshare {
	struct cluster		*cl;
	struct state		*st;		/* NULL: nothing to share */
	struct redis_req	*req;
	int			 busy;		/* a sync runs */
	int			 due;		/* a sync is due (connected
						   again, one failed) */
	int64_t			 version;	/* Redis' at the last sync */
	uint64_t		 started;	/* syncs started */
	/* The push of the running sync. */
	struct state_allow_op	*push;
	size_t			 npush, sent, batch;
	struct cluster_allow_stats stats;
};

struct allowshare *
allowshare_new(struct cluster *cl)
{
	struct allowshare *as = xcalloc(1, sizeof(*as));

	as->cl = cl;
	as->due = 1;	/* what this node has, Redis may not */
	return as;
}

void
allowshare_free(struct allowshare *as)
{
	if (as == NULL)
		return;
	redis_cancel(as->req);
	free(as->push);
	free(as);
}

void
allowshare_set_state(struct allowshare *as, struct state *st)
{
	as->st = st;
}

uint64_t
allowshare_started(const struct allowshare *as)
{
	return as->started;
}

void
allowshare_stats(const struct allowshare *as, struct cluster_allow_stats *s)
{
	*s = as->stats;
}

static void
keys(const struct allowshare *as, char k[3][128])
{
	const char *p = cluster_prefix(as->cl);

	snprintf(k[0], sizeof(k[0]), "%sallow:greylist", p);
	snprintf(k[1], sizeof(k[1]), "%sallow:bulk", p);
	snprintf(k[2], sizeof(k[2]), "%sallow:version", p);
}

static void
finish(struct allowshare *as, int ok)
{
	uint64_t n = as->started;

	as->busy = 0;
	as->req = NULL;
	free(as->push);
	as->push = NULL;
	as->npush = as->sent = 0;
	if (ok) {
		as->due = 0;
		as->stats.last_sync = (int64_t)time(NULL);
		as->stats.syncs++;
	} else {
		as->due = 1;
		as->stats.failed++;
	}
	cluster_allow_synced(as->cl, n, ok);
}

static void	push_next(struct allowshare *);

static void
push_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct allowshare *as = arg;

	as->req = NULL;
	if (st != REDIS_REPLY_OK || reply->type != REDIS_REPLY_INTEGER) {
		if (st == REDIS_REPLY_OK)
			log_warn("event=cluster_allow_push error=\"%s\"",
			    redis_reply_error(reply, "unexpected answer"));
		finish(as, 0);
		return;
	}
	as->stats.pushed += as->batch;
	as->sent += as->batch;
	push_next(as);
}

/* The next batch of one list's entries; the sync ends after the last. */
static void
push_next(struct allowshare *as)
{
	const char *argv[2 + 3 * ALLOW_PUSH_MAX];
	size_t len[2 + 3 * ALLOW_PUSH_MAX];
	char k[3][128], fields[ALLOW_PUSH_MAX][STATE_ADDR_MAX + 16];
	char ats[ALLOW_PUSH_MAX][24];
	const struct state_allow_op *first;
	size_t i, n = 0;
	int argc;

	if (as->sent == as->npush) {
		finish(as, 1);
		return;
	}
	keys(as, k);
	first = &as->push[as->sent];
	argv[0] = k[first->list];
	argv[1] = k[2];
	argc = 2;
	for (i = as->sent; i < as->npush && n < ALLOW_PUSH_MAX &&
	    as->push[i].list == first->list; i++, n++) {
		const struct state_allow_op *op = &as->push[i];

		snprintf(fields[n], sizeof(fields[n]), "%s %s",
		    state_allow_kind_name(op->kind), op->value);
		snprintf(ats[n], sizeof(ats[n]), "%lld", (long long)op->at);
		argv[argc++] = fields[n];
		argv[argc++] = ats[n];
		argv[argc++] = op->deleted ? "del" : "add";
	}
	as->batch = n;
	for (i = 0; i < (size_t)argc; i++)
		len[i] = strlen(argv[i]);
	as->req = redis_script(cluster_redis(as->cl), SCRIPT_ALLOW_PUT, 2,
	    argc, argv, len, push_cb, as);
}

/* The order of the store's listing (kind's name, then value). */
static int
op_cmp(const void *a, const void *b)
{
	const struct state_allow_op *x = a, *y = b;
	int c;

	if (x->list != y->list)
		return x->list < y->list ? -1 : 1;
	if ((c = strcmp(state_allow_kind_name(x->kind),
	    state_allow_kind_name(y->kind))) != 0)
		return c;
	return strcmp(x->value, y->value);
}

/* Walking the store's ops of one list against Redis' (sorted). */
struct walk {
	struct allowshare	*as;
	const struct state_allow_op *remote;
	size_t			 nremote;
	size_t			 cap;
};

/* This store's op goes to Redis when Redis has none, or an older one. */
static int
local_op(const struct state_allow_op *op, void *arg)
{
	struct walk *w = arg;
	struct allowshare *as = w->as;
	const struct state_allow_op *r;

	if (as->npush >= 2 * ALLOW_PULL_MAX)
		return 1;	/* bounded, like a pull */
	r = bsearch(op, w->remote, w->nremote, sizeof(*op), op_cmp);
	if (r != NULL && !state_allow_op_wins(op, r))
		return 0;
	if (as->npush == w->cap) {
		w->cap = w->cap == 0 ? 64 : 2 * w->cap;
		as->push = xreallocarray(as->push, w->cap, sizeof(*as->push));
	}
	as->push[as->npush++] = *op;
	return 0;
}

/* A kind the store names; a recipient is the bulk list's only. */
static int
parse_kind(const char *p, size_t len, enum state_allow_list list,
    enum state_allow_kind *out)
{
	if (state_allow_kind_parse(p, len, out) == -1 ||
	    (*out == STATE_ALLOW_RECIPIENT && list != STATE_ALLOWS_BULK))
		return -1;
	return 0;
}

int
cluster_parse_allow_entry(enum state_allow_list list, const char *f,
    size_t flen, const char *v, size_t vlen, struct state_allow_op *out)
{
	const char *sp;
	size_t klen;

	memset(out, 0, sizeof(*out));
	out->list = list;
	/* "KIND VALUE": the value is text, without a NUL, of our size. */
	if ((sp = memchr(f, ' ', flen)) == NULL)
		return -1;
	klen = (size_t)(sp - f);
	if (parse_kind(f, klen, list, &out->kind) == -1 ||
	    flen - klen - 1 == 0 || flen - klen - 1 >= sizeof(out->value) ||
	    memchr(sp + 1, '\0', flen - klen - 1) != NULL)
		return -1;
	memcpy(out->value, sp + 1, flen - klen - 1);
	/* "AT add" or "AT del". */
	if (vlen < 5 || v[vlen - 4] != ' ' ||
	    redis_parse_num(v, vlen - 4, &out->at) == -1 || out->at <= 0)
		return -1;
	if (memcmp(v + vlen - 3, "add", 3) == 0)
		out->deleted = 0;
	else if (memcmp(v + vlen - 3, "del", 3) == 0)
		out->deleted = 1;
	else
		return -1;
	return 0;
}

int
cluster_parse_allow(const redisReply *reply, int64_t *version,
    struct state_allow_op *ops, size_t max, size_t *nops, size_t *rejected)
{
	const redisReply *l, *f, *v;
	size_t i, k;

	*nops = *rejected = 0;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    (*version = redis_reply_int(reply->element[0], 0)) < 0)
		return -1;
	for (k = 0; k < NLISTS; k++) {
		l = reply->element[1 + k];
		if (l->type != REDIS_REPLY_ARRAY || l->elements % 2 != 0 ||
		    l->elements > 2 * ALLOW_PULL_MAX)
			return -1;
		for (i = 0; i + 1 < l->elements; i += 2) {
			f = l->element[i];
			v = l->element[i + 1];
			if (*nops == max || f->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING ||
			    cluster_parse_allow_entry((enum state_allow_list)k,
			    f->str, f->len, v->str, v->len, &ops[*nops]) == -1)
				(*rejected)++;
			else
				(*nops)++;
		}
	}
	return 0;
}

/* The pull's answer: Redis' entries into the store where they win, then
 * the store's where they win over Redis'. */
static void
pull_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct allowshare *as = arg;
	char lv[LOG_VALUE_SIZE(STATE_ADDR_MAX)];
	struct state_allow_op *remote;
	size_t nremote = 0, rejected = 0, i, max;
	int64_t version;
	struct walk w;
	int rc, k, failed;

	as->req = NULL;
	if (st != REDIS_REPLY_OK) {
		finish(as, 0);
		return;
	}
	/* Room for the pairs there are (the parser bounds them). */
	max = 1;
	if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
		for (k = 1; k <= NLISTS; k++)
			if (reply->element[k]->type == REDIS_REPLY_ARRAY)
				max += reply->element[k]->elements / 2;
	if (max > 2 * ALLOW_PULL_MAX)
		max = 2 * ALLOW_PULL_MAX;
	remote = xcalloc(max, sizeof(*remote));
	if (cluster_parse_allow(reply, &version, remote, max, &nremote,
	    &rejected) == -1) {
		log_warn("event=cluster_allow_pull error=\"%s\"",
		    redis_reply_error(reply, "unexpected answer"));
		free(remote);
		finish(as, 0);
		return;
	}
	as->stats.entries[0] = as->stats.entries[1] = 0;
	failed = 0;
	for (i = 0; i < nremote; i++) {
		as->stats.entries[remote[i].list]++;
		if ((rc = state_allow_apply(as->st, &remote[i])) == -1)
			failed = 1;	/* the turn's writes roll back */
		else if (rc == 1) {
			as->stats.applied++;
			log_info("event=cluster_allow_apply list=%s kind=%s "
			    "value=%s op=%s at=%lld",
			    list_names[remote[i].list],
			    state_allow_kind_name(remote[i].kind),
			    log_value(lv, sizeof(lv), remote[i].value,
			    strlen(remote[i].value)), remote[i].deleted ?
			    "delete" : "add", (long long)remote[i].at);
		} else if (rc == -2)
			rejected++;
	}
	if (rejected > 0) {
		as->stats.rejected += rejected;
		log_warn("event=cluster_allow_rejected count=%zu", rejected);
	}
	if (failed) {
		/* Not applied, so not synced: again at the next beat. */
		free(remote);
		finish(as, 0);
		return;
	}
	qsort(remote, nremote, sizeof(*remote), op_cmp);
	memset(&w, 0, sizeof(w));
	w.as = as;
	w.remote = remote;
	w.nremote = nremote;
	rc = 0;
	for (k = 0; k < NLISTS && rc == 0; k++)
		rc = state_allow_ops(as->st, (enum state_allow_list)k,
		    local_op, &w);
	free(remote);
	if (rc == -1) {
		finish(as, 0);
		return;
	}
	as->version = version;
	push_next(as);
}

/* Start a sync now unless one runs. */
void
allowshare_kick(struct allowshare *as)
{
	char k[3][128], cap[16];
	const char *argv[4];
	size_t len[4], i;

	if (as->busy || as->st == NULL)
		return;
	as->busy = 1;
	as->started++;
	keys(as, k);
	snprintf(cap, sizeof(cap), "%d", ALLOW_PULL_MAX);
	argv[0] = k[0];
	argv[1] = k[1];
	argv[2] = k[2];
	argv[3] = cap;
	for (i = 0; i < 4; i++)
		len[i] = strlen(argv[i]);
	as->req = redis_script(cluster_redis(as->cl), SCRIPT_ALLOW_PULL, 3, 4,
	    argv, len, pull_cb, as);
}

void
allowshare_connected(struct allowshare *as)
{
	as->due = 1;
}

void
allowshare_beat(struct allowshare *as, int64_t version)
{
	if (as->st == NULL || as->busy)
		return;
	/* The version says when to pull; a Redis that lost its keys with
	 * the connections up (FLUSHALL, eviction) counts it again from 0
	 * and may repeat the one this node last saw: a full sync every
	 * ALLOW_RESYNC_SECS whatever it says. */
	if (as->due || version != as->version ||
	    (int64_t)time(NULL) - as->stats.last_sync >= ALLOW_RESYNC_SECS)
		allowshare_kick(as);
}
