/*
 * resolver: libunbound in event mode on backmx's loop, behind a small
 * query/callback API (resolver.h). Owns the ub_ctx and every query handle.
 *
 * Lifetimes, the part that bites (docs/principles.md §3):
 * - libunbound may call back inside ub_resolve_event() (a cache hit, a
 *   local zone), so its callback only records the answer and activates a
 *   zero-delay event; the caller's callback runs from there.
 * - ub_cancel() is unusable in event mode (1.17 treats the context as
 *   forked: it frees the query libunbound's mesh still holds and writes
 *   to a pipe that does not exist). So resolver_cancel() and our own
 *   timeout detach: the caller is told (or not) at once, and the handle
 *   lives on, counted against dns_max_queries, until libunbound answers
 *   into the void. resolver_free() frees whatever is left after
 *   ub_ctx_delete(), which drops its pending queries without callbacks.
 */
#include "resolver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound-event.h>
#include <unbound.h>

#include "log.h"
#include "str.h"
#include "xmem.h"

/* resolver.h. refs: the owner's, and one per question with libunbound. */
struct resolver_budget {
	unsigned	max_queries;
	unsigned	max_inflight;
	unsigned	sent;
	unsigned	refused;
	unsigned	in_flight;
	unsigned	refs;
};

struct resolver_query {
	TAILQ_ENTRY(resolver_query) entry;
	struct resolver		*r;
	struct resolver_budget	*budget;	/* charged while ub_pending */
	char			 name[DNS_NAME_MAX];
	uint16_t		 type;
	resolver_cb		*cb;		/* NULL once detached */
	void			*arg;
	int			 ub_pending;	/* libunbound still has it */
	int			 answering;	/* ev_done is active */
	struct event		*ev_done;	/* answer to the caller */
	struct event		*ev_timeout;
	enum dns_status		 status;
	const char		*why;
	int			 secure;
	struct packet_answer	*ans;		/* OK: the records */
};

TAILQ_HEAD(query_list, resolver_query);

struct resolver {
	struct event_base	*base;
	struct ub_ctx		*ctx;
	struct resolver_conf	 conf;
	struct query_list	 queries;	/* every live handle */
	struct resolver_stats	 stats;
};

static void	query_free(struct resolver_query *);

struct resolver_budget *
resolver_budget_new(unsigned max_queries, unsigned max_inflight)
{
	struct resolver_budget *b = xcalloc(1, sizeof(*b));

	b->max_queries = max_queries;
	b->max_inflight = max_inflight;
	b->refs = 1;
	return b;
}

static void
budget_unref(struct resolver_budget *b)
{
	if (--b->refs == 0)
		free(b);
}

void
resolver_budget_free(struct resolver_budget *b)
{
	if (b != NULL)
		budget_unref(b);
}

void
resolver_budget_counts(const struct resolver_budget *b, unsigned *sent,
    unsigned *refused, unsigned *in_flight)
{
	*sent = b->sent;
	*refused = b->refused;
	*in_flight = b->in_flight;
}

/* libunbound is done with q: what it cost in flight is given back. */
static void
ub_finished(struct resolver_query *q)
{
	q->ub_pending = 0;
	q->r->stats.in_flight--;
	if (q->budget != NULL) {
		q->budget->in_flight--;
		budget_unref(q->budget);
		q->budget = NULL;
	}
}

/* The query's name as a log value: it comes from a peer's address or
 * from DNS data (docs/principles.md §4). One buffer: one call per line. */
static const char *
qname(const struct resolver_query *q)
{
	static char buf[LOG_VALUE_SIZE(DNS_NAME_MAX)];

	return log_value(buf, sizeof(buf), q->name, strlen(q->name));
}

const char *
resolver_type_name(uint16_t type)
{
	switch (type) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_MX:
		return "MX";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_PTR:
		return "PTR";
	case DNS_T_CNAME:
		return "CNAME";
	}
	return "?";
}

static int
set_opt(struct resolver *r, const char *opt, const char *val, char *err,
    size_t errsz)
{
	int rc;

	if ((rc = ub_ctx_set_option(r->ctx, opt, val)) != 0) {
		snprintf(err, errsz, "libunbound option %s %s: %s", opt, val,
		    ub_strerror(rc));
		return -1;
	}
	return 0;
}

/* "ADDR[@PORT]" items: ub_ctx_set_fwd() for each. */
static int
set_forwarders(struct resolver *r, const char *list, int *n_out, char *err,
    size_t errsz)
{
	char item[128];
	size_t len;
	int rc;

	*n_out = 0;
	for (; (len = str_list_next(&list)) > 0; list += len) {
		if (len >= sizeof(item)) {
			snprintf(err, errsz, "dns_forward: item too long");
			return -1;
		}
		str_ncopy(item, sizeof(item), list, len);
		if ((rc = ub_ctx_set_fwd(r->ctx, item)) != 0) {
			snprintf(err, errsz, "dns_forward: '%s': %s", item,
			    ub_strerror(rc));
			return -1;
		}
		(*n_out)++;
	}
	return 0;
}

/* Local zones handed to the forwarder when there is one. */
static const char *const fwd_zones[] = { "test." };

struct resolver *
resolver_new(struct event_base *base, const struct resolver_conf *conf,
    char *err, size_t errsz)
{
	struct resolver *r = xcalloc(1, sizeof(*r));
	char ttl[16];
	size_t i;
	int nfwd = 0, dnssec = 0, rc;

	r->base = base;
	r->conf = *conf;
	r->conf.forward = NULL;		/* not kept: the caller's storage */
	r->conf.trust_anchor_file = NULL;
	TAILQ_INIT(&r->queries);
	if (r->conf.max_queries == 0)
		r->conf.max_queries = 1;
	if ((r->ctx = ub_ctx_create_event(base)) == NULL) {
		snprintf(err, errsz, "ub_ctx_create_event failed");
		goto fail;
	}
	/* Throwaway domains must stop working quickly: the cache keeps
	 * nothing longer than dns_cache_max_ttl, found or not found. */
	snprintf(ttl, sizeof(ttl), "%u", conf->cache_max_ttl);
	if (set_opt(r, "cache-max-ttl:", ttl, err, errsz) == -1 ||
	    set_opt(r, "cache-max-negative-ttl:", ttl, err, errsz) == -1)
		goto fail;
	if (conf->forward != NULL &&
	    set_forwarders(r, conf->forward, &nfwd, err, errsz) == -1)
		goto fail;
	if (nfwd > 0 && set_opt(r, "do-not-query-localhost:", "no", err,
	    errsz) == -1)
		goto fail;
	if (conf->trust_anchor_file != NULL &&
	    conf->trust_anchor_file[0] != '\0') {
		if (access(conf->trust_anchor_file, R_OK) == -1) {
			/* Resolving still works; validating does not. */
			log_warn("event=dns_config trust_anchor=%s "
			    "error=\"%s\" dnssec=off",
			    conf->trust_anchor_file, strerror(errno));
		} else if ((rc = ub_ctx_add_ta_file(r->ctx,
		    conf->trust_anchor_file)) != 0) {
			snprintf(err, errsz, "dns_trust_anchor_file %s: %s",
			    conf->trust_anchor_file, ub_strerror(rc));
			goto fail;
		} else
			dnssec = 1;
	}
	/*
	 * libunbound answers RFC 6761 names itself (docs/dependencies.md §1):
	 * every name under test. is NXDOMAIN without a packet sent. With
	 * a forwarder, let the forwarder answer those (the tests use
	 * .test). The other default zones stay (127.in-addr.arpa and
	 * localhost answer locally). ub_ctx_zone_remove() finalises the
	 * context: it comes last.
	 */
	for (i = 0; nfwd > 0 && i < sizeof(fwd_zones) / sizeof(fwd_zones[0]);
	    i++)
		if ((rc = ub_ctx_zone_remove(r->ctx, fwd_zones[i])) != 0) {
			snprintf(err, errsz, "libunbound: removing zone %s: "
			    "%s", fwd_zones[i], ub_strerror(rc));
			goto fail;
		}
	log_info("event=dns_ready mode=%s forwarders=%d cache_max_ttl=%u "
	    "dnssec=%s", nfwd > 0 ? "forward" : "recursive", nfwd,
	    conf->cache_max_ttl, dnssec ? "on" : "off");
	return r;
fail:
	if (r->ctx != NULL)
		ub_ctx_delete(r->ctx);
	free(r);
	return NULL;
}

void
resolver_free(struct resolver *r)
{
	struct resolver_query *q;

	if (r == NULL)
		return;
	/* Drops libunbound's pending queries without calling back. */
	ub_ctx_delete(r->ctx);
	while ((q = TAILQ_FIRST(&r->queries)) != NULL) {
		if (q->ub_pending)
			ub_finished(q);
		query_free(q);
	}
	free(r);
}

static void
query_free(struct resolver_query *q)
{
	TAILQ_REMOVE(&q->r->queries, q, entry);
	event_free(q->ev_done);
	event_free(q->ev_timeout);
	free(q->ans);
	free(q);
}

/* Zero-delay event: tell the caller, then free unless libunbound still
 * holds the handle. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;
	struct dns_result res;
	resolver_cb *cb = q->cb;

	memset(&res, 0, sizeof(res));
	res.status = q->status;
	res.why = q->why != NULL ? q->why : "";
	res.qname = q->name;
	res.qtype = q->type;
	res.canon = q->ans != NULL && q->ans->canon[0] != '\0' ?
	    q->ans->canon : q->name;
	res.secure = q->secure;
	if (q->status == DNS_OK && q->ans != NULL) {
		res.nrr = q->ans->nrr;
		res.rr = q->ans->rr;
	}
	if (q->status == DNS_TEMPFAIL)
		q->r->stats.tempfails++;
	q->cb = NULL;
	q->answering = 0;
	if (cb != NULL)
		cb(&res, q->arg);
	if (!q->ub_pending)
		query_free(q);
}

/* Answer the caller soon with what q holds (the loop delivers it). */
static void
answer_soon(struct resolver_query *q)
{
	q->answering = 1;
	event_active(q->ev_done, EV_TIMEOUT, 0);
}

/* Answer the caller soon with TEMPFAIL 'why'. */
static void
tempfail_soon(struct resolver_query *q, const char *why)
{
	q->status = DNS_TEMPFAIL;
	q->why = why;
	answer_soon(q);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;

	if (q->cb == NULL || q->answering)
		return;
	q->r->stats.timeouts++;
	log_debug("event=dns_timeout name=%s type=%s", qname(q),
	    resolver_type_name(q->type));
	tempfail_soon(q, "timeout");
}

/*
 * libunbound's answer (unbound-event.h). NXDOMAIN comes as rcode 0 with
 * RCODE 3 in the packet; SERVFAIL as rcode 2, maybe without a packet
 * (docs/dependencies.md §1). Only the packet's own words count.
 */
static void
ub_cb(void *mydata, int rcode, void *packet, int len, int sec,
    char *why_bogus, int was_ratelimited)
{
	struct resolver_query *q = mydata;

	ub_finished(q);
	evtimer_del(q->ev_timeout);
	if (q->cb == NULL) {
		/* Detached (cancelled or timed out): nobody waits. */
		if (!q->answering)
			query_free(q);
		return;
	}
	if (q->answering)
		return;		/* an answer (TEMPFAIL) is on its way */
	if (sec == 1) {		/* bogus: DNSSEC says this is forged */
		log_warn("event=dns_bogus name=%s type=%s why=\"%s\"",
		    qname(q), resolver_type_name(q->type),
		    why_bogus != NULL ? why_bogus : "");
		tempfail_soon(q, "bogus");
		return;
	}
	if (packet == NULL || len <= 0 || rcode == DNS_RCODE_SERVFAIL) {
		tempfail_soon(q, rcode == DNS_RCODE_SERVFAIL ? "servfail" :
		    "error");
		return;
	}
	q->ans = xmalloc(sizeof(*q->ans));
	if (packet_parse(packet, (size_t)len, q->name, q->type, q->ans) ==
	    -1) {
		log_warn("event=dns_error name=%s type=%s error=parse",
		    qname(q), resolver_type_name(q->type));
		tempfail_soon(q, "parse");
		return;
	}
	q->secure = sec == 2;
	switch (q->ans->rcode) {
	case DNS_RCODE_NOERROR:
		q->status = q->ans->nrr > 0 ? DNS_OK : DNS_NODATA;
		break;
	case DNS_RCODE_NXDOMAIN:
		q->status = DNS_NXDOMAIN;
		break;
	default:		/* SERVFAIL, REFUSED, FORMERR, ...: doubt */
		q->status = DNS_TEMPFAIL;
		q->why = q->ans->rcode == DNS_RCODE_SERVFAIL ? "servfail" :
		    "error";
		break;
	}
	answer_soon(q);
}

struct resolver_query *
resolver_query(struct resolver *r, const char *name, uint16_t type,
    resolver_cb *cb, void *arg)
{
	return resolver_query_budget(r, NULL, name, type, cb, arg);
}

/* The client's share, before the pool's: one client past its own bound
 * is refused without touching what the others may use. */
static int
budget_allows(struct resolver_budget *b)
{
	if (b == NULL)
		return 1;
	if ((b->max_queries > 0 && b->sent >= b->max_queries) ||
	    (b->max_inflight > 0 && b->in_flight >= b->max_inflight)) {
		b->refused++;
		return 0;
	}
	return 1;
}

struct resolver_query *
resolver_query_budget(struct resolver *r, struct resolver_budget *b,
    const char *name, uint16_t type, resolver_cb *cb, void *arg)
{
	struct resolver_query *q = xcalloc(1, sizeof(*q));
	struct timeval tv;
	int rc, id = 0;

	q->r = r;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->ev_done = event_new(r->base, -1, 0, done_cb, q);
	q->ev_timeout = evtimer_new(r->base, timeout_cb, q);
	TAILQ_INSERT_TAIL(&r->queries, q, entry);
	if (str_copy(q->name, sizeof(q->name), name) == -1 ||
	    name[0] == '\0') {
		tempfail_soon(q, "error");
		return q;
	}
	/* docs/principles.md §1.5: pending DNS queries are bounded. Detached
	 * queries still count: libunbound is still working on them. */
	if (!budget_allows(b)) {
		r->stats.over_budget++;
		tempfail_soon(q, "budget");
		return q;
	}
	if (r->stats.in_flight >= r->conf.max_queries) {
		r->stats.busy++;
		tempfail_soon(q, "busy");
		return q;
	}
	r->stats.queries++;
	r->stats.in_flight++;
	q->ub_pending = 1;
	if (b != NULL) {
		b->refs++;
		b->in_flight++;
		b->sent++;
		q->budget = b;
	}
	tv.tv_sec = r->conf.timeout > 0 ? r->conf.timeout : 1;
	tv.tv_usec = 0;
	evtimer_add(q->ev_timeout, &tv);
	/* May call ub_cb() before it returns. */
	rc = ub_resolve_event(r->ctx, q->name, type, 1, q, ub_cb, &id);
	if (rc != 0) {
		log_warn("event=dns_error name=%s type=%s error=\"%s\"",
		    qname(q), resolver_type_name(type), ub_strerror(rc));
		if (b != NULL && q->ub_pending)
			b->sent--;	/* nothing went out */
		if (q->ub_pending)
			ub_finished(q);
		evtimer_del(q->ev_timeout);
		if (!q->answering)
			tempfail_soon(q, "error");
	} else if (b != NULL && !q->ub_pending)
		b->sent--;	/* answered inside the call: cache, local */
	return q;
}

void
resolver_cancel(struct resolver_query *q)
{
	if (q == NULL)
		return;
	q->cb = NULL;
	q->answering = 0;
	event_del(q->ev_done);
	evtimer_del(q->ev_timeout);
	/* Still with libunbound: ub_cb() frees it when the answer comes. */
	if (!q->ub_pending)
		query_free(q);
}

void
resolver_stats(const struct resolver *r, struct resolver_stats *out)
{
	*out = r->stats;
}
