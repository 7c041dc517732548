/*
 * bulkshare: bulk digest counts shared through Redis (docs/cluster.md
 * "Bulk counts").
 *
 * Per digest two keys: PREFIX "bulk:" HEX, a hash with the readable
 * fields (kind, count, first_seen, last_seen, bulk_until, subject,
 * sender), and
 * PREFIX "bulkr:" HEX, the set of the recipient hashes counted. A set,
 * not a HyperLogLog: the count decides a 4xx at exactly bulk_threshold,
 * and HLL's estimate is not exact; SADD of a member already there adds
 * nothing, so a retry (at any node) or a replayed message never grows a
 * count. A remembered digest stops counting, so a set stays near the
 * threshold.
 */
#include "bulkshare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "cluster_int.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

#define HEX_LEN		32
#define SUBJECT_MAX	80
#define SENDER_MAX	257	/* an RFC 5321 address, no brackets */

/*
 * KEYS: per digest its hash and its set. ARGV: mode ("ask", "merge" or
 * "forget"), now, seen, window, remember, global threshold, this
 * message's threshold, subject, sender, nrcpt, then n kinds, n
 * bulk_until known to the node, n generations of the node's rows (its
 * first_seen), then the recipients. The rules are bulk.c's
 * judged_decide(): a remembered digest (before this copy) stops counting
 * unless this message's threshold is above the global one; a digest is
 * remembered once the global threshold is met. Times never move back
 * (clock skew, docs/cluster.md "Clocks"); TTLs are relative, set from
 * the asking node's 'now'. A replayed message whose window has passed is
 * dropped. A replayed copy carries the bulk_until its node set when it
 * judged that very copy alone: only Redis' own bulk_until says whether
 * the digest was remembered before it, or its recipients would never be
 * counted (the copy that made it bulk alone would count for nothing).
 *
 * "forget" (backmxctl bulk forget, at any node): the set goes, the hash
 * starts a new generation at 0 and keeps 'forgotten' for the longer of
 * window and remember, as long as a node's mirror row of before may
 * live. An ask is after it in Redis' order whatever the node's clock
 * says; a replayed copy of its time or before counts nothing, and one
 * judged alone on a row of before (its generation) does not bring back
 * the bulk_until that row remembered. Each answer carries 'forgotten',
 * so the node resets such a row (bulk.c). Answers 1 when Redis knew the
 * digest, counted or already forgotten: a forget run again after an
 * answer that did not come is "ok", not "not found".
 */
const char cluster_bulk_lua[] =
"local mode, now, seen = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local win, rem = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
"local glob, t = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
"local subj, from = ARGV[8], ARGV[9]\n"
"local nr, n = tonumber(ARGV[10]), #KEYS / 2\n"
"local r0, out = 10 + 3 * n, {}\n"
"if mode == 'forget' then\n"
"  local known = 0\n"
"  for i = 1, n do\n"
"    local h, s = KEYS[2 * i - 1], KEYS[2 * i]\n"
"    known = math.max(known, redis.call('EXISTS', h))\n"
"    redis.call('DEL', s)\n"
"    redis.call('HSET', h, 'count', 0, 'first_seen', now, 'last_seen',"
" now, 'bulk_until', 0, 'forgotten', now)\n"
"    redis.call('EXPIRE', h, math.max(1, win, rem))\n"
"  end\n"
"  return known\n"
"end\n"
"for i = 1, n do\n"
"  local h, s = KEYS[2 * i - 1], KEYS[2 * i]\n"
"  local mine = tonumber(ARGV[10 + n + i])\n"
"  local gen = tonumber(ARGV[10 + 2 * n + i])\n"
"  local count, was, untl, forg = 0, false, mine, 0\n"
"  if math.max(seen + win, mine) > now then\n"
"    local v = redis.call('HMGET', h, 'first_seen', 'last_seen',"
" 'bulk_until', 'forgotten')\n"
"    forg = tonumber(v[4]) or 0\n"
"    if mode == 'merge' and forg > 0 and gen <= forg then mine = 0 end\n"
"    local theirs = tonumber(v[3]) or 0\n"
"    untl = math.max(theirs, mine)\n"
"    if mode == 'merge' and seen <= forg then\n"
"      count = redis.call('SCARD', s)\n"
"    else\n"
"      local first, last = tonumber(v[1]), tonumber(v[2]) or seen\n"
"      if not first then redis.call('DEL', s); first = seen end\n"
"      if mode == 'merge' then was = theirs > seen else was = untl > seen"
" end\n"
"      if not was or t > glob then\n"
"        for j = 1, nr do redis.call('SADD', s, ARGV[r0 + j]) end\n"
"      end\n"
"      count = redis.call('SCARD', s)\n"
"      local bulk = count >= t or (was and t <= glob)\n"
"      if (bulk and was) or count >= glob then\n"
"        untl = math.max(untl, seen + rem)\n"
"      end\n"
"      first, last = math.min(first, seen), math.max(last, seen)\n"
"      local keep = 0\n"
"      if forg > 0 then keep = forg + math.max(win, rem) end\n"
"      local ttl = math.max(last + win, untl, keep) - now\n"
"      redis.call('HSET', h, 'kind', ARGV[10 + i], 'count', count,"
" 'first_seen', first, 'last_seen', last, 'bulk_until', untl)\n"
"      redis.call('HSETNX', h, 'subject', subj)\n"
"      redis.call('HSETNX', h, 'sender', from)\n"
"      redis.call('EXPIRE', h, math.max(1, ttl))\n"
"      if redis.call('EXISTS', s) == 1 then\n"
"        redis.call('EXPIRE', s, math.max(1, ttl))\n"
"      end\n"
"    end\n"
"  end\n"
"  out[#out + 1] = count\n"
"  out[#out + 1] = was and 1 or 0\n"
"  out[#out + 1] = untl\n"
"  out[#out + 1] = forg\n"
"end\n"
"if mode == 'merge' then return 1 end\n"
"return out\n";

struct cluster_bulk_req {
	struct cluster		*cl;
	struct redis_req	*req;
	cluster_bulk_cb		*cb;
	void			*arg;
	size_t			 n;
};

/* A message counted alone, owned by the replay queue. */
struct pending {
	struct cluster_bulk_query q;
	char		 digest[CLUSTER_BULK_MAX][HEX_LEN + 1];
	char		 kind[CLUSTER_BULK_MAX][16];
	char		 subject[SUBJECT_MAX];
	char		 sender[SENDER_MAX];
	char		(*rcpt)[HEX_LEN + 1];
	const char	**rcptp;
};

int
cluster_parse_bulk(const redisReply *reply, struct cluster_bulk_answer *a,
    size_t n)
{
	int64_t v[4];
	size_t i, k;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 * n)
		return -1;
	for (i = 0; i < n; i++) {
		for (k = 0; k < 4; k++)
			if ((v[k] = redis_reply_int(reply->element[4 * i + k],
			    0)) < 0)
				return -1;
		if (v[0] > UINT32_MAX || v[1] > 1)
			return -1;
		a[i].count = (unsigned)v[0];
		a[i].remembered = (int)v[1];
		a[i].bulk_until = v[2];
		a[i].forgotten = v[3];
	}
	return 0;
}

/*
 * The script's argument vector: keys, then arguments. 'keys' and 'nums'
 * are the caller's room (2 keys and 2 numbers a digest, 7 numbers);
 * *argcp and *nkeysp out. The caller frees the returned vectors.
 */
static const char **
query_argv(const char *prefix, const struct cluster_bulk_query *q,
    const char *mode, char (*keys)[128], char (*nums)[24], size_t **lenp,
    int *argcp, int *nkeysp)
{
	size_t nr = q->nrcpt < CLUSTER_BULK_RCPT_MAX ? q->nrcpt :
	    CLUSTER_BULK_RCPT_MAX, argc = 2 * q->n + 10 + 3 * q->n + nr;
	const char **argv = xreallocarray(NULL, argc, sizeof(*argv));
	size_t *len = xreallocarray(NULL, argc, sizeof(*len)), i, a = 0;
	int64_t num[7] = { q->now, q->seen, q->window, q->remember, q->global,
	    q->threshold, (int64_t)nr };

	for (i = 0; i < q->n; i++) {
		snprintf(keys[2 * i], 128, "%sbulk:%s", prefix, q->digest[i]);
		snprintf(keys[2 * i + 1], 128, "%sbulkr:%s", prefix,
		    q->digest[i]);
		argv[a++] = keys[2 * i];
		argv[a++] = keys[2 * i + 1];
	}
	argv[a++] = mode;
	for (i = 0; i < 7; i++) {
		snprintf(nums[i], 24, "%lld", (long long)num[i]);
		argv[a++] = nums[i];
		if (i == 5) {	/* the samples sit before nrcpt */
			argv[a++] = q->subject;
			argv[a++] = q->sender;
		}
	}
	for (i = 0; i < q->n; i++)
		argv[a++] = q->kind[i];
	for (i = 0; i < q->n; i++) {
		snprintf(nums[7 + i], 24, "%lld", (long long)q->until[i]);
		argv[a++] = nums[7 + i];
	}
	for (i = 0; i < q->n; i++) {
		snprintf(nums[7 + q->n + i], 24, "%lld", (long long)q->gen[i]);
		argv[a++] = nums[7 + q->n + i];
	}
	for (i = 0; i < nr; i++)
		argv[a++] = q->rcpt[i];
	for (i = 0; i < a; i++)
		len[i] = strlen(argv[i]);
	*lenp = len;
	*argcp = (int)a;
	*nkeysp = (int)(2 * q->n);
	return argv;
}

static struct redis_req *
query_send(struct cluster *cl, const struct cluster_bulk_query *q,
    const char *mode, redis_reply_cb *cb, void *arg)
{
	char keys[2 * CLUSTER_BULK_MAX][128];
	char nums[7 + 2 * CLUSTER_BULK_MAX][24];
	struct redis_req *req;
	const char **argv;
	size_t *len;
	int argc, nkeys;

	argv = query_argv(cluster_prefix(cl), q, mode, keys, nums, &len,
	    &argc, &nkeys);
	req = cluster_bulk_script(cl, nkeys, argc, argv, len, cb, arg);
	free(argv);
	free(len);
	return req;
}

static void
ask_cb(enum redis_status st, const redisReply *reply, void *arg)
{
	struct cluster_bulk_req *r = arg;
	struct cluster_bulk_answer a[CLUSTER_BULK_MAX];
	cluster_bulk_cb *cb = r->cb;
	void *cbarg = r->arg;
	size_t n = r->n;
	struct cluster *cl = r->cl;
	int rc;

	free(r);
	rc = st == REDIS_REPLY_OK && cluster_parse_bulk(reply, a, n) == 0 ?
	    0 : -1;
	if (rc == 0)
		cluster_replay_kick(cl);	/* Redis answers again */
	else {
		if (st == REDIS_REPLY_OK)
			log_warn("event=redis_bulk error=\"%s\"",
			    redis_reply_error(reply, "unexpected answer"));
		cluster_fell_back(cl);
	}
	cb(rc, rc == 0 ? a : NULL, rc == 0 ? n : 0, cbarg);
}

struct cluster_bulk_req *
cluster_bulk_ask(struct cluster *cl, const struct cluster_bulk_query *q,
    cluster_bulk_cb *cb, void *arg)
{
	struct cluster_bulk_req *r = xcalloc(1, sizeof(*r));

	if (q->n > CLUSTER_BULK_MAX)
		panic("cluster_bulk_ask: %zu digests", q->n);
	r->cl = cl;
	r->cb = cb;
	r->arg = arg;
	r->n = q->n;
	r->req = query_send(cl, q, "ask", ask_cb, r);
	return r;
}

struct redis_req *
bulkshare_forget_send(struct cluster *cl, const char *digest, int64_t now,
    unsigned window, unsigned remember, redis_reply_cb *cb, void *arg)
{
	struct cluster_bulk_query q;

	memset(&q, 0, sizeof(q));
	q.now = q.seen = now;
	q.window = window;
	q.remember = remember;
	q.subject = q.sender = "";
	q.n = 1;
	q.digest[0] = digest;
	q.kind[0] = "";
	return query_send(cl, &q, "forget", cb, arg);
}

void
cluster_bulk_cancel(struct cluster_bulk_req *r)
{
	if (r == NULL)
		return;
	redis_cancel(r->req);
	free(r);
}

/* --- replay ------------------------------------------------------------------ */

static struct redis_req *
pending_send(struct cluster *cl, void *payload, redis_reply_cb *cb,
    void *arg)
{
	struct pending *p = payload;

	/* 'now' is the push's: a window that passed meanwhile drops it. */
	p->q.now = (int64_t)time(NULL);
	return query_send(cl, &p->q, "merge", cb, arg);
}

static void
pending_drop(void *payload)
{
	struct pending *p = payload;

	free(p->rcpt);
	free(p->rcptp);
	free(p);
}

static const struct cluster_replay_ops pending_ops = {
	pending_send, pending_drop,
};

void
cluster_bulk_replay(struct cluster *cl, const struct cluster_bulk_query *q)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	size_t i, nr = q->nrcpt < CLUSTER_BULK_RCPT_MAX ? q->nrcpt :
	    CLUSTER_BULK_RCPT_MAX;

	if (q->n > CLUSTER_BULK_MAX)
		panic("cluster_bulk_replay: %zu digests", q->n);
	p->q = *q;
	for (i = 0; i < q->n; i++) {
		str_copy(p->digest[i], sizeof(p->digest[i]), q->digest[i]);
		str_copy(p->kind[i], sizeof(p->kind[i]), q->kind[i]);
		p->q.digest[i] = p->digest[i];
		p->q.kind[i] = p->kind[i];
	}
	str_copy(p->subject, sizeof(p->subject), q->subject);
	p->q.subject = p->subject;
	str_copy(p->sender, sizeof(p->sender), q->sender);
	p->q.sender = p->sender;
	p->rcpt = xreallocarray(NULL, nr + 1, sizeof(*p->rcpt));
	p->rcptp = xreallocarray(NULL, nr + 1, sizeof(*p->rcptp));
	for (i = 0; i < nr; i++) {
		str_copy(p->rcpt[i], sizeof(p->rcpt[i]), q->rcpt[i]);
		p->rcptp[i] = p->rcpt[i];
	}
	p->q.nrcpt = nr;
	p->q.rcpt = p->rcptp;
	cluster_replay_push_ops(cl, &pending_ops, p);
}
