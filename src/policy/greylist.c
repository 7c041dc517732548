/*
 * greylist: the greylisting step of RCPT (docs/architecture.md §5), the last
 * check, after relay control and the DNS checks: only a customer domain's
 * recipient that nothing has refused reaches it.
 *
 * Order: the static allow lists of backmx.conf, the operator's allow
 * entries and the auto-allowed networks in the store, the client's
 * confirmed host name against greylist_allow_clients' names (one PTR and
 * one A/AAAA lookup, only when names are listed), then the triplet.
 * The key (client network, normalised sender, recipient) and the
 * transitions are pure functions below the step, with the time as a
 * parameter.
 *
 * Exposed to peer bytes (the addresses, already RFC 5321-checked by addr.c) and
 * to the store's errors: an error is 451 4.3.0, never an accept
 * (docs/principles.md §1.2). A pass is answered only after the write that
 * records it committed.
 */
#include "greylist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allow.h"
#include "cluster.h"
#include "config.h"
#include "dnsxl.h"
#include "log.h"
#include "sockaddr.h"
#include "policy.h"
#include "ranges.h"
#include "resolver.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

#define NAME_LOOKUPS_MAX	3	/* PTR names tried for a forward match */
#define NET_REFRESH_SECS	3600	/* auto-allow expiry moves at most so often */

struct greylist {
	struct allow_set allow;		/* clients: networks + host names */
	int		 warned_no_dns;
};

/* --- static allow lists ------------------------------------------------- */

struct greylist *
greylist_new(const struct config *c, char *err, size_t errsz)
{
	struct greylist *gl = xcalloc(1, sizeof(*gl));

	/* Clients: an address, ADDR/LEN, or a host name and its
	 * subdomains; senders and recipients: a domain or an address. */
	if (allow_set_parse(&gl->allow, ALLOW_CLIENTS, "greylist_allow_",
	    c->greylist_allow_clients, c->greylist_allow_senders,
	    c->greylist_allow_recipients, err, errsz) == -1) {
		greylist_free(gl);
		return NULL;
	}
	return gl;
}

void
greylist_free(struct greylist *gl)
{
	if (gl == NULL)
		return;
	allow_set_free(&gl->allow);
	free(gl);
}

int
greylist_has_client_names(const struct greylist *gl)
{
	return gl->allow.clients.nnames > 0;
}

int
greylist_allow_client_addr(const struct greylist *gl,
    const struct sockaddr *sa)
{
	return allow_has_ip(&gl->allow.clients, sa);
}

int
greylist_allow_client_name(const struct greylist *gl, const char *name)
{
	return allow_has_name(&gl->allow.clients, name);
}

int
greylist_allow_sender(const struct greylist *gl, const char *key)
{
	return allow_has_addr(&gl->allow.senders, key);
}

int
greylist_allow_rcpt(const struct greylist *gl, const char *key)
{
	return allow_has_addr(&gl->allow.rcpts, key);
}

/* --- the key -------------------------------------------------------------- */

int
greylist_client_net(const struct sockaddr *sa, unsigned v4prefix,
    unsigned v6prefix, char *out, size_t outsz)
{
	uint8_t ip[16];
	char text[INET6_ADDRSTRLEN];
	unsigned prefix, i;
	int v4;

	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -1;
	sockaddr_bytes(sa, ip);
	v4 = ranges_is_v4(ip);
	prefix = v4 ? 96 + (v4prefix > 32 ? 32 : v4prefix) :
	    (v6prefix > 128 ? 128 : v6prefix);
	for (i = 0; i < 16; i++) {
		unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;

		if (bits < 8)
			ip[i] &= (uint8_t)(0xff << (8 - bits));
	}
	if (v4)
		inet_ntop(AF_INET, ip + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, ip, text, sizeof(text));
	if (snprintf(out, outsz, "%s/%u", text, v4 ? prefix - 96 : prefix) >=
	    (int)outsz)
		return -1;
	return 0;
}

static int
is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

static int
is_sep(char c)
{
	return c == '=' || c == '+' || c == '-';
}

/*
 * BATV (draft-levine-smtp-batv-01): "prvs=KDDDSSSSSS=local", the tag
 * ten characters; Microsoft's "msprvs1=TAG=local" alike, its tag of
 * letters and digits. Returns where 'local' starts, or 'l' when it is no
 * BATV local part.
 */
static const char *
strip_batv(const char *l)
{
	const char *p;
	size_t n;

	if (strncmp(l, "prvs=", 5) == 0)
		p = l + 5;
	else if (strncmp(l, "msprvs1=", 8) == 0)
		p = l + 8;
	else
		return l;
	for (n = 0; p[n] != '\0' && p[n] != '='; n++)
		if (!is_word(p[n]))
			return l;
	if (p[n] != '=' || n < 4 || n > 32 || p[n + 1] == '\0')
		return l;
	return p + n + 1;
}

/* "{sep}HHHH=TT=domain=local", the part of SRS0 and of SRS1's first hop
 * that changes per message: where "=domain=local" starts, or NULL. */
static const char *
srs_skip_hash_time(const char *p)
{
	if (!is_sep(*p))
		return NULL;
	p++;
	p += strcspn(p, "=");		/* HHHH */
	if (*p != '=')
		return NULL;
	p++;
	p += strcspn(p, "=");		/* TT */
	if (*p != '=' || p[1] == '\0')
		return NULL;
	return p;
}

/*
 * SRS (Mail::SRS): "SRS0=HHHH=TT=domain=local" to "srs0=domain=local";
 * "SRS1=HHHH=fwd==HHHH=TT=domain=local" to "srs1=fwd=domain=local". The
 * separator after SRS0/SRS1 may be '=', '+' or '-'. Writes into out
 * (outsz >= strlen(l) + 1); 0, or -1 when it is no SRS local part.
 */
static int
strip_srs(const char *l, char *out, size_t outsz)
{
	const char *p, *fwd, *fwd_end;

	if (strncmp(l, "srs0", 4) == 0 && is_sep(l[4])) {
		if ((p = srs_skip_hash_time(l + 4)) == NULL)
			return -1;
		snprintf(out, outsz, "srs0%s", p);
		return 0;
	}
	if (strncmp(l, "srs1", 4) == 0 && is_sep(l[4])) {
		/* "=HHHH" "=fwd" "=" then "{sep}HHHH=TT=domain=local"
		 * with {sep} the first hop's own separator. */
		p = l + 5;
		while (*p != '\0' && *p != '=')
			p++;
		if (*p != '=')
			return -1;
		fwd = p + 1;
		if ((fwd_end = strchr(fwd, '=')) == NULL || fwd_end == fwd)
			return -1;
		if ((p = srs_skip_hash_time(fwd_end + 1)) == NULL)
			return -1;
		snprintf(out, outsz, "srs1=%.*s%s", (int)(fwd_end - fwd), fwd,
		    p);
		return 0;
	}
	return -1;
}

int
greylist_normalise(const char *addr, char *out, size_t outsz)
{
	char lc[ADDR_PATH_MAX + 1], local[ADDR_PATH_MAX + 1];
	char srs[ADDR_PATH_MAX + 1];
	const char *at, *l;
	size_t i, o;

	if (str_copy(lc, sizeof(lc), addr) == -1)
		return -1;
	/* Postgrey lower-cases the whole key; local parts that differ only
	 * in case are one sender for greylisting's purpose. */
	str_lower(lc);
	if ((at = strrchr(lc, '@')) == NULL)
		return str_copy(out, outsz, lc);
	str_ncopy(local, sizeof(local), lc, (size_t)(at - lc));

	l = strip_batv(local);
	if (strip_srs(l, srs, sizeof(srs)) == 0)
		l = srs;
	/* Digit runs that stand alone ("\b\d+\b", as postgrey): VERP and
	 * per-message numbers. "user2" keeps its digit. */
	for (i = 0, o = 0; l[i] != '\0' && o + 1 < outsz; ) {
		if (l[i] >= '0' && l[i] <= '9' && (i == 0 ||
		    !is_word(l[i - 1]))) {
			size_t j = i;

			while (l[j] >= '0' && l[j] <= '9')
				j++;
			if (!is_word(l[j])) {
				out[o++] = '#';
				i = j;
				continue;
			}
			while (i < j && o + 1 < outsz)
				out[o++] = l[i++];
			continue;
		}
		out[o++] = l[i++];
	}
	out[o] = '\0';
	if (l[i] != '\0' || o + strlen(at) >= outsz)
		return -1;
	memcpy(out + o, at, strlen(at) + 1);
	return 0;
}

int
greylist_sender_key(const struct mailaddr *a, char *out, size_t outsz)
{
	char text[ADDR_PATH_MAX + 1];

	if (a->is_null) {
		if (outsz == 0)
			return -1;
		out[0] = '\0';
		return 0;
	}
	if (addr_format(a, text, sizeof(text)) == -1)
		return -1;
	return greylist_normalise(text, out, outsz);
}

int
greylist_rcpt_key(const struct mailaddr *a, char *out, size_t outsz)
{
	if (addr_format(a, out, outsz) == -1)
		return -1;
	str_lower(out);
	return 0;
}

/* --- the transitions ------------------------------------------------------ */

enum greylist_action
greylist_decide(const struct state_triplet *cur, int64_t now,
    const struct greylist_params *p, struct state_triplet *t,
    unsigned *retry_out)
{
	*retry_out = 0;
	/* Expired but not swept yet counts as never seen. */
	if (cur == NULL || cur->expires < now) {
		t->first_seen = now;
		t->last_seen = now;
		t->passed = 0;
		t->expires = now + p->retry_window;
		t->tries = 1;
		t->passes = 0;
		*retry_out = p->delay;
		return GREYLIST_NEW;
	}
	t->first_seen = cur->first_seen;
	t->passed = cur->passed;
	t->tries = cur->tries;
	t->passes = cur->passes;
	t->last_seen = now;
	if (cur->passed == 0 && now - cur->first_seen < (int64_t)p->delay) {
		/* The first-seen time stays: retrying early does not
		 * restart the delay, nor shorten it. */
		t->expires = cur->expires;
		t->tries++;
		*retry_out = (unsigned)(p->delay - (now - cur->first_seen));
		return GREYLIST_EARLY;
	}
	t->passes++;
	t->expires = now + p->max_age;
	if (cur->passed == 0) {
		t->passed = now;
		return GREYLIST_PASS;
	}
	return GREYLIST_PASSED;
}

void
greylist_net_pass(struct state_net *n, int found, int64_t now,
    const struct greylist_params *p)
{
	if (!found || n->expires < now) {
		char net[STATE_NET_MAX];

		str_copy(net, sizeof(net), n->net);
		memset(n, 0, sizeof(*n));
		str_copy(n->net, sizeof(n->net), net);
	}
	n->passes++;
	n->refreshed = now;
	n->expires = now + p->max_age;
	if (p->auto_allow_passes > 0 && n->passes >= p->auto_allow_passes &&
	    n->allowed == 0)
		n->allowed = now;
}

int
greylist_net_allowed(const struct state_net *n, int64_t now,
    const struct greylist_params *p)
{
	return p->auto_allow_passes > 0 && n->allowed != 0 &&
	    n->expires >= now;
}

int
greylist_net_refresh(struct state_net *n, int64_t now,
    const struct greylist_params *p)
{
	if (now - n->refreshed < NET_REFRESH_SECS)
		return 0;
	n->refreshed = now;
	n->expires = now + p->max_age;
	return 1;
}

/* --- the step ------------------------------------------------------------- */

/* One RCPT's greylist check, from the step to its answer. */
struct greyreq {
	struct policy_check	*chk;
	struct greylist		*gl;
	struct state		*st;
	struct resolver		*resolver;
	struct greylist_params	 p;
	int64_t			 now;
	char			 net[STATE_NET_MAX];
	char			 sender[STATE_ADDR_MAX];
	char			 rcpt[STATE_ADDR_MAX];
	char			 client[64];

	/* The host name check: PTR, then A/AAAA of up to a few names. */
	struct resolver_query	*q;
	char			 names[NAME_LOOKUPS_MAX][256];
	size_t			 nnames, name;

	struct state_wait	*wait;
	struct verdict_info	 v;	/* the answer once committed */
	struct cluster		*cluster;	/* shared triplets; NULL: off */
	struct cluster_op	*op;		/* asking Redis */
	struct state_net	 shared;	/* Redis's record of the net */
	int			 has_shared;
};

_Static_assert((int)CLUSTER_GREY_NEW == (int)GREYLIST_NEW &&
    (int)CLUSTER_GREY_EARLY == (int)GREYLIST_EARLY &&
    (int)CLUSTER_GREY_PASS == (int)GREYLIST_PASS &&
    (int)CLUSTER_GREY_PASSED == (int)GREYLIST_PASSED,
    "the cluster's actions are greylist's");

static void	triplet_check(struct greyreq *);

static void
req_cancel(void *arg)
{
	struct greyreq *r = arg;

	resolver_cancel(r->q);
	state_commit_cancel(r->wait);
	cluster_cancel(r->op);
	free(r);
}

static void
answer(struct greyreq *r, const struct verdict_info *v)
{
	struct policy_check *chk = r->chk;

	free(r);
	policy_step_done(chk, v);
}

static void
store_failed(struct greyreq *r)
{
	struct verdict_info v;

	/* Doubt is 4xx (docs/principles.md §1.2): never an accept on a store
	 * error. The store logged the error. */
	verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0", "state_error",
	    "Temporary state store failure, please try again later");
	answer(r, &v);
}

static void
allowed(struct greyreq *r, const char *why)
{
	struct verdict_info v;

	log_debug("event=greylist client=%s net=%s action=allow allow=%s",
	    r->client, r->net, why);
	verdict_accept(&v);
	answer(r, &v);
}

static void
committed(int rc, void *arg)
{
	struct greyreq *r = arg;
	struct verdict_info v;

	r->wait = NULL;
	if (rc == -1) {
		store_failed(r);
		return;
	}
	v = r->v;
	answer(r, &v);
}

/* Answer r->v once the writes of this turn committed. */
static void
after_commit(struct greyreq *r)
{
	r->wait = state_commit_wait(r->st, committed, r);
	policy_step_pending(r->chk, req_cancel, r);
}

static void name_forward_cb(const struct dns_result *, void *);

static void
name_next(struct greyreq *r)
{
	const struct sockaddr *sa = policy_client_sa(r->chk->client);
	uint8_t ip[16];

	sockaddr_bytes(sa, ip);
	if (r->name >= r->nnames) {
		triplet_check(r);
		return;
	}
	r->q = resolver_query_budget(r->resolver,
	    policy_client_dns(r->chk->client), r->names[r->name],
	    ranges_is_v4(ip) ? DNS_T_A : DNS_T_AAAA, name_forward_cb, r);
	policy_step_pending(r->chk, req_cancel, r);
}

/* Forward-confirmed: the name's A/AAAA holds the client's address. */
static void
name_forward_cb(const struct dns_result *res, void *arg)
{
	struct greyreq *r = arg;
	uint8_t ip[16];
	size_t i;

	r->q = NULL;
	sockaddr_bytes(policy_client_sa(r->chk->client), ip);
	for (i = 0; res->status == DNS_OK && i < res->nrr; i++) {
		const struct dns_rr *rr = &res->rr[i];

		if ((rr->type == DNS_T_A && memcmp(rr->u.a, ip + 12, 4) == 0) ||
		    (rr->type == DNS_T_AAAA &&
		    memcmp(rr->u.aaaa, ip, 16) == 0)) {
			allowed(r, "client_name");
			return;
		}
	}
	r->name++;
	name_next(r);
}

/* The PTR names that an allow entry covers; a lookup that fails in any
 * way leaves the client unnamed, and greylisting decides (a 4xx anyway). */
static void
name_ptr_cb(const struct dns_result *res, void *arg)
{
	struct greyreq *r = arg;
	size_t i;

	r->q = NULL;
	for (i = 0; res->status == DNS_OK && i < res->nrr &&
	    r->nnames < NAME_LOOKUPS_MAX; i++)
		if (res->rr[i].type == DNS_T_PTR &&
		    greylist_allow_client_name(r->gl, res->rr[i].u.ptr))
			str_copy(r->names[r->nnames++], sizeof(r->names[0]),
			    res->rr[i].u.ptr);
	log_debug("event=greylist client=%s action=name_check ptr=%s "
	    "names=%zu", r->client, res->status == DNS_OK ? "ok" :
	    res->status == DNS_TEMPFAIL ? res->why : "none", r->nnames);
	r->name = 0;
	name_next(r);
}

/* Redis's record of the network into this node's (docs/cluster.md
 * "Network passes"): the larger count, the earlier allowance, the later
 * expiry; this node alone then decides as the cluster did. */
static void
net_merge(struct state_net *n, const struct state_net *sh)
{
	if (sh->passes > n->passes)
		n->passes = sh->passes;
	if (sh->allowed != 0 && (n->allowed == 0 || sh->allowed < n->allowed))
		n->allowed = sh->allowed;
	if (sh->expires > n->expires)
		n->expires = sh->expires;
}

/* Redis answered that the network is auto-allowed: mirror it, accept. */
static void
net_allowed_shared(struct greyreq *r, const struct state_net *sh)
{
	struct state_net n;
	int found;

	if ((found = state_net_get(r->st, r->net, &n)) == -1) {
		store_failed(r);
		return;
	}
	if (!found || n.expires < r->now) {
		memset(&n, 0, sizeof(n));
		str_copy(n.net, sizeof(n.net), r->net);
	}
	net_merge(&n, sh);
	n.refreshed = r->now;
	if (state_net_put(r->st, &n) == -1) {
		store_failed(r);
		return;
	}
	log_debug("event=greylist client=%s net=%s action=allow "
	    "allow=auto_shared passes=%u", r->client, r->net, n.passes);
	verdict_accept(&r->v);
	after_commit(r);
}

/*
 * The triplet's record 't' is decided ('act'): store it (the decision
 * itself, or the mirror of Redis's) and answer once that committed.
 */
static void
decided(struct greyreq *r, enum greylist_action act,
    const struct state_triplet *tp, unsigned retry)
{
	struct state_triplet t = *tp;
	struct state_net n;
	int nfound;
	char es[LOG_PATH_SIZE], er[LOG_PATH_SIZE];

	if (state_triplet_put(r->st, &t) == -1) {
		store_failed(r);
		return;
	}
	log_path(es, sizeof(es), r->sender);
	log_path(er, sizeof(er), r->rcpt);
	stats_inc(act == GREYLIST_NEW ? STAT_GREYLIST_NEW :
	    act == GREYLIST_EARLY ? STAT_GREYLIST_EARLY :
	    act == GREYLIST_PASS ? STAT_GREYLIST_PASS : STAT_GREYLIST_PASSED);
	switch (act) {
	case GREYLIST_NEW:
	case GREYLIST_EARLY:
		/* Reply 451, not 450: some senders bounce on 450
		 * (docs/greylisting.md). */
		verdict_set(&r->v, VERDICT_TEMPFAIL, 451, "4.7.1", "greylist",
		    "Greylisted, please try again in %u seconds", retry);
		/* The session logs the 451 with reason=greylist: the
		 * details only at debug (log once, docs/principles.md §4). */
		log_debug("event=greylist client=%s net=%s from=%s to=%s "
		    "action=%s retry=%u tries=%u", r->client, r->net, es, er,
		    act == GREYLIST_NEW ? "new" : "early", retry, t.tries);
		break;
	case GREYLIST_PASS:
		verdict_accept(&r->v);
		if ((nfound = state_net_get(r->st, r->net, &n)) == -1) {
			store_failed(r);
			return;
		}
		if (!nfound) {
			memset(&n, 0, sizeof(n));
			str_copy(n.net, sizeof(n.net), r->net);
		}
		greylist_net_pass(&n, nfound, r->now, &r->p);
		if (r->has_shared)
			net_merge(&n, &r->shared);
		if (state_net_put(r->st, &n) == -1) {
			store_failed(r);
			return;
		}
		log_info("event=greylist client=%s net=%s from=%s to=%s "
		    "action=pass waited=%lld tries=%u net_passes=%u%s",
		    r->client, r->net, es, er,
		    (long long)(r->now - t.first_seen), t.tries, n.passes,
		    n.allowed == r->now ? " auto_allow=yes" : "");
		break;
	case GREYLIST_PASSED:
		verdict_accept(&r->v);
		log_debug("event=greylist client=%s net=%s from=%s to=%s "
		    "action=passed passes=%u", r->client, r->net, es, er,
		    t.passes);
		break;
	}
	after_commit(r);
}

/* This node's store decides; with a cluster ('replay'), the decision is
 * kept for Redis too (docs/cluster.md "Fallback"). */
static void
triplet_local(struct greyreq *r, int replay)
{
	struct state_triplet cur, t;
	enum greylist_action act;
	unsigned retry;
	int found;

	if ((found = state_triplet_get(r->st, r->net, r->sender, r->rcpt,
	    &cur)) == -1) {
		store_failed(r);
		return;
	}
	memset(&t, 0, sizeof(t));
	str_copy(t.net, sizeof(t.net), r->net);
	str_copy(t.sender, sizeof(t.sender), r->sender);
	str_copy(t.rcpt, sizeof(t.rcpt), r->rcpt);
	act = greylist_decide(found ? &cur : NULL, r->now, &r->p, &t, &retry);
	if (replay)
		cluster_replay_push(r->cluster, &t);
	decided(r, act, &t, retry);
}

/* Redis decided (rc 0), or did not answer: then this node alone. */
static void
shared_cb(int rc, enum cluster_grey_action act, const struct state_triplet *t,
    const struct state_net *n, unsigned retry, void *arg)
{
	struct greyreq *r = arg;

	r->op = NULL;
	if (rc == -1) {
		triplet_local(r, 1);
		return;
	}
	if (act == CLUSTER_GREY_NET_ALLOWED) {
		net_allowed_shared(r, n);
		return;
	}
	if (n != NULL && n->expires != 0) {
		r->shared = *n;
		r->has_shared = 1;
	}
	decided(r, (enum greylist_action)act, t, retry);
}

static void
triplet_check(struct greyreq *r)
{
	struct cluster_grey_query q;

	if (r->cluster == NULL) {
		triplet_local(r, 0);
		return;
	}
	q.net = r->net;
	q.sender = r->sender;
	q.rcpt = r->rcpt;
	q.now = r->now;
	q.delay = r->p.delay;
	q.retry_window = r->p.retry_window;
	q.max_age = r->p.max_age;
	q.auto_allow = r->p.auto_allow_passes;
	r->op = cluster_greylist(r->cluster, &q, shared_cb, r);
	policy_step_pending(r->chk, req_cancel, r);
}

/*
 * The operator's sender entries (backmxctl greylist allow ADDRESS|DOMAIN):
 * the whole address as the client wrote it, lower case, which is what an
 * operator types; then the normalised key and its domain, as before
 * (BATV, SRS and digit runs change the key: "news-2024@" is "news-#@").
 */
static int
ctl_sender(struct greyreq *r, const struct mailaddr *a)
{
	char raw[ADDR_PATH_MAX + 1];
	int rc;

	if (addr_format(a, raw, sizeof(raw)) != -1) {
		str_lower(raw);
		if (strcmp(raw, r->sender) != 0 &&
		    (rc = state_allow_address(r->st, raw)) != 0)
			return rc;
	}
	return state_allow_sender(r->st, r->sender);
}

void
greylist_step(struct policy_check *chk)
{
	const struct policy_deps *deps = policy_deps(chk->policy);
	const struct config *c = deps->conf;
	const struct sockaddr *sa = policy_client_sa(chk->client);
	struct greyreq *r;
	struct state_net n;
	struct verdict_info v;
	uint8_t ip[16];
	char rev[80];
	int rc;

	if (!c->greylist || deps->greylist == NULL) {
		verdict_accept(&v);
		policy_step_done(chk, &v);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->chk = chk;
	r->gl = deps->greylist;
	r->st = deps->state;
	r->resolver = deps->resolver;
	r->cluster = deps->cluster;
	r->p.delay = c->greylist_delay;
	r->p.retry_window = c->greylist_retry_window;
	r->p.max_age = c->greylist_max_age;
	r->p.auto_allow_passes = c->greylist_auto_allow_passes;
	r->now = (int64_t)time(NULL);
	str_copy(r->client, sizeof(r->client), policy_client_addr(chk->client));

	if (greylist_client_net(sa, c->greylist_ipv4_prefix,
	    c->greylist_ipv6_prefix, r->net, sizeof(r->net)) == -1 ||
	    greylist_sender_key(&chk->sender, r->sender,
	    sizeof(r->sender)) == -1 ||
	    greylist_rcpt_key(&chk->rcpt, r->rcpt, sizeof(r->rcpt)) == -1) {
		/* Cannot happen for RFC 5321-sized paths and IP clients;
		 * if it does, doubt. */
		verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0", "greylist",
		    "Temporary failure, please try again later");
		free(r);
		policy_step_done(chk, &v);
		return;
	}
	if (greylist_allow_client_addr(r->gl, sa)) {
		allowed(r, "client");
		return;
	}
	if (r->sender[0] != '\0' && greylist_allow_sender(r->gl, r->sender)) {
		allowed(r, "sender");
		return;
	}
	if (greylist_allow_rcpt(r->gl, r->rcpt)) {
		allowed(r, "recipient");
		return;
	}
	if (r->st == NULL) {
		store_failed(r);
		return;
	}
	/* The operator's entries (backmxctl greylist allow), read each
	 * time: what backmxctl commits counts at once. */
	if ((rc = state_allow_client(r->st, sa)) != 0) {
		if (rc == -1)
			store_failed(r);
		else
			allowed(r, "ctl_client");
		return;
	}
	if (r->sender[0] != '\0' &&
	    (rc = ctl_sender(r, &chk->sender)) != 0) {
		if (rc == -1)
			store_failed(r);
		else
			allowed(r, "ctl_sender");
		return;
	}
	if ((rc = state_net_get(r->st, r->net, &n)) == -1) {
		store_failed(r);
		return;
	}
	if (rc == 1 && greylist_net_allowed(&n, r->now, &r->p)) {
		if (greylist_net_refresh(&n, r->now, &r->p)) {
			if (state_net_put(r->st, &n) == -1) {
				store_failed(r);
				return;
			}
			verdict_accept(&r->v);
			after_commit(r);
			return;
		}
		allowed(r, "auto");
		return;
	}
	if (greylist_has_client_names(r->gl)) {
		if (r->resolver == NULL) {
			if (!r->gl->warned_no_dns) {
				log_warn("event=greylist_config "
				    "error=\"greylist_allow_clients names "
				    "need the resolver; only addresses "
				    "count\"");
				r->gl->warned_no_dns = 1;
			}
		} else {
			/* The reverse name has the DNSBL form (RFC 5782
			 * §2.1, §2.4) under in-addr.arpa or ip6.arpa. */
			sockaddr_bytes(sa, ip);
			dnsxl_query_name(ip, ranges_is_v4(ip) ? "in-addr.arpa" :
			    "ip6.arpa", rev, sizeof(rev));
			r->q = resolver_query_budget(r->resolver,
			    policy_client_dns(chk->client), rev, DNS_T_PTR,
			    name_ptr_cb, r);
			policy_step_pending(chk, req_cancel, r);
			return;
		}
	}
	triplet_check(r);
}
