/*
 * metrics: renders /metrics (docs/metrics.md) in the Prometheus text
 * format 0.0.4. One scrape is one pass over counters in memory, a look
 * at each configured domain's health (a hash lookup), one query over the
 * state store's domain records, and one look per queued domain: never a
 * walk of the queue.
 */
#include "metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "cluster.h"
#include "config.h"
#include "str.h"
#include "dnsbl.h"
#include "domains.h"
#include "health.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "policy.h"
#include "queue.h"
#include "resolver.h"
#include "sched.h"
#include "state.h"
#include "stats.h"
#include "xmem.h"

#define P	"backmx_"
#define CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct metrics_sources	 src;
	struct http		*http;
	const struct domains	*domains;
	time_t			 started;
};

/* HELP of each family counted in stats.h. */
static const struct {
	const char	*family;
	const char	*help;
} counter_help[] = {
	{ "connections_total", "SMTP connections, by what the listener did "
	    "with them" },
	{ "transactions_total", "SMTP transactions that reached DATA's end, "
	    "by mode (passthrough: relayed live; backup: stored) and result "
	    "(accepted; rejected: by the primary or a check; failed: "
	    "temporary failure)" },
	{ "deliveries_total", "Queued recipients' delivery outcomes, per "
	    "recipient and attempt" },
	{ "primary_probes_total", "Probes of down primaries, by result "
	    "(error: ours, no verdict)" },
	{ "greylist_total", "Greylisting decisions (new, early: deferred; "
	    "pass: first retry in time; passed: known triplet)" },
	{ "recipients_learned_total", "Recipients learned or changed from "
	    "a primary's answers, by status" },
	{ "config_reloads_total", "Configuration reloads (SIGHUP), by "
	    "result" },
	{ "bulk_total", "Backup-mode messages the bulk detector judged, by "
	    "verdict (skipped: off, allowed or nothing to digest; bulk: "
	    "deferred 451 4.7.28; error: the store failed, 4xx)" },
	{ "dccifd_total", "Backup-mode messages a site's dccifd judged, by "
	    "its answer (reject, or bulk in its header: deferred 451 4.7.28; "
	    "trouble: T; failed: no usable answer)" },
};

static const char *
help_of(const char *family)
{
	size_t i;

	for (i = 0; i < sizeof(counter_help) / sizeof(counter_help[0]); i++)
		if (strcmp(counter_help[i].family, family) == 0)
			return counter_help[i].help;
	return "see docs/metrics.md";
}

static void
header(struct evbuffer *b, const char *family, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n",
	    family, help, family, type);
}

/* One series without labels. */
static void
one(struct evbuffer *b, const char *family, const char *type,
    const char *help, uint64_t v)
{
	header(b, family, type, help);
	evbuffer_add_printf(b, P "%s %llu\n", family, (unsigned long long)v);
}

/* A family of two or more series told apart by one label. */
static void
labelled(struct evbuffer *b, const char *family, const char *help,
    const char *label, const char *const *values, const uint64_t *v,
    size_t n)
{
	size_t i;

	header(b, family, "counter", help);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, P "%s{%s=\"%s\"} %llu\n", family, label,
		    values[i], (unsigned long long)v[i]);
}

static void
counters(struct evbuffer *b)
{
	const char *last = "";
	int i;

	for (i = 0; i < STAT_MAX; i++) {
		const char *f = stats_family((enum stat_counter)i);

		if (strcmp(f, last) != 0)
			header(b, f, "counter", help_of(f));
		last = f;
		evbuffer_add_printf(b, P "%s{%s} %llu\n", f,
		    stats_labels((enum stat_counter)i),
		    (unsigned long long)stats_counter[i]);
	}
}

static void
replies(struct evbuffer *b)
{
	int cls, subj;

	header(b, "smtp_replies_total", "counter", "Replies the SMTP server "
	    "sent, ours or a primary's relayed, by class and by the RFC 3463 "
	    "subject of the enhanced status code (none: without one)");
	for (cls = 2; cls <= 5; cls++)
		for (subj = 0; subj < STATS_REPLY_SUBJECTS; subj++)
			evbuffer_add_printf(b, P "smtp_replies_total{class="
			    "\"%dxx\",reason=\"%s\"} %llu\n", cls,
			    stats_reply_subject(subj),
			    (unsigned long long)stats_replies(cls, subj));
}

static void
histograms(struct evbuffer *b)
{
	const char *last = "";
	int h;

	for (h = 0; h < HIST_MAX; h++) {
		const struct stats_hist *s = stats_hist((enum stat_hist)h);
		const char *sep = s->labels[0] ? "," : "";
		uint64_t cum = 0;
		unsigned i;

		if (strcmp(s->family, last) != 0)
			header(b, s->family, "histogram", h == HIST_DELIVERY ?
			    "Seconds of one delivery attempt of a message, "
			    "all its domains" : h == HIST_MILTER_RCPT ||
			    h == HIST_MILTER_EOM ? "Seconds the content "
			    "filters took to answer one recipient (rcpt) or "
			    "one message (eom), backup mode" : "Seconds of "
			    "one state store operation (read: a lookup; "
			    "write: a staged write; commit: a turn's writes "
			    "made durable)");
		last = s->family;
		for (i = 0; i < s->nle; i++) {
			cum += s->bucket[i];
			evbuffer_add_printf(b, P "%s_bucket{%s%sle=\"%g\"} "
			    "%llu\n", s->family, s->labels, sep, s->le[i],
			    (unsigned long long)cum);
		}
		evbuffer_add_printf(b, P "%s_bucket{%s%sle=\"+Inf\"} %llu\n",
		    s->family, s->labels, sep, (unsigned long long)s->count);
		evbuffer_add_printf(b, P "%s_sum%s%s%s %.6f\n", s->family,
		    s->labels[0] ? "{" : "", s->labels,
		    s->labels[0] ? "}" : "", s->sum);
		evbuffer_add_printf(b, P "%s_count%s%s%s %llu\n", s->family,
		    s->labels[0] ? "{" : "", s->labels,
		    s->labels[0] ? "}" : "", (unsigned long long)s->count);
	}
}

/* Per content filter of backup_milters, by its place in the list. */
static void
milter_counters(struct metrics *m, struct evbuffer *b)
{
	char list[sizeof(m->src.conf->backup_milters)], *p;
	unsigned n = 0, f;
	int k;

	str_copy(list, sizeof(list), m->src.conf->backup_milters);
	for (p = strtok(list, " \t,"); p != NULL; p = strtok(NULL, " \t,"))
		n++;
	if (n == 0)
		return;
	header(b, "milter_replies_total", "counter", "Content filters' "
	    "answers in backup mode, by filter (its place in backup_milters) "
	    "and result (error: unreachable, timed out, or nonsense)");
	for (f = 0; f < n && f < STATS_MILTERS; f++)
		for (k = 0; k < STATS_MILTER_KINDS; k++)
			evbuffer_add_printf(b, P "milter_replies_total{filter="
			    "\"%u\",result=\"%s\"} %llu\n", f + 1,
			    stats_milter_kind((enum stats_milter_kind)k),
			    (unsigned long long)stats_milter[f][k]);
}

static void
queue_gauges(struct metrics *m, struct evbuffer *b, time_t now)
{
	size_t n;
	uint64_t bytes;
	time_t oldest;

	sched_totals(queue_sched(m->src.queue), &n, &bytes, &oldest);
	one(b, "queue_messages", "gauge", "Messages in the queue", n);
	one(b, "queue_bytes", "gauge", "Bytes of the messages in the queue",
	    bytes);
	one(b, "queue_oldest_message_age_seconds", "gauge", "Age of the "
	    "oldest queued message with a recipient still to deliver; 0: "
	    "none", oldest != 0 && now > oldest ? (uint64_t)(now - oldest) :
	    0);
}

/* Lifecycles from the store's domain records, one query. */
struct lifecycles {
	const struct domains	*domains;
	size_t			 n[4];		/* by enum state_lifecycle */
	size_t			 seen;
};

static int
count_lifecycle(const struct state_domain *d, void *arg)
{
	struct lifecycles *lc = arg;

	if (domains_lookup(lc->domains, d->name) == NULL)
		return 0;	/* a domain no longer configured */
	if (d->lifecycle >= STATE_DOM_LEARNING &&
	    d->lifecycle <= STATE_DOM_REFUSED) {
		lc->n[d->lifecycle]++;
		lc->seen++;
	}
	return 0;
}

static void
domain_gauges(struct metrics *m, struct evbuffer *b)
{
	struct lifecycles lc;
	size_t i, total = domains_count(m->domains), up = 0;

	memset(&lc, 0, sizeof(lc));
	lc.domains = m->domains;
	if (state_domain_list(m->src.state, count_lifecycle, &lc) == -1)
		memset(lc.n, 0, sizeof(lc.n)), lc.seen = 0;
	/* A domain without a record yet starts learning (docs/passthrough.md,
	 * "Learning"); without domain_learning every domain is active. */
	lc.n[STATE_DOM_LEARNING] += total - lc.seen;
	if (!m->src.conf->domain_learning) {
		lc.n[STATE_DOM_ACTIVE] += lc.n[STATE_DOM_LEARNING];
		lc.n[STATE_DOM_LEARNING] = 0;
	}
	header(b, "domains", "gauge", "Customer domains, by lifecycle");
	evbuffer_add_printf(b, P "domains{lifecycle=\"learning\"} %zu\n"
	    P "domains{lifecycle=\"active\"} %zu\n"
	    P "domains{lifecycle=\"refused\"} %zu\n",
	    lc.n[STATE_DOM_LEARNING], lc.n[STATE_DOM_ACTIVE],
	    lc.n[STATE_DOM_REFUSED]);
	for (i = 0; i < total; i++)
		up += primary_health_up(m->src.health,
		    domains_at(m->domains, i)->name) ? 1 : 0;
	header(b, "domains_primary", "gauge", "Customer domains, by their "
	    "primary's state");
	evbuffer_add_printf(b, P "domains_primary{state=\"up\"} %zu\n"
	    P "domains_primary{state=\"down\"} %zu\n", up, total - up);
}

/*
 * The per-domain series (metrics_domains): configured domains only, the
 * first metrics_domains_max in the domains file's order, so the series
 * set is bounded by the operator. Domain names are checked host names;
 * escaped all the same, as the format asks.
 */
static void
label_value(struct evbuffer *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			evbuffer_add_printf(b, "\\%c", *v);
		else if (*v == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, v, 1);
	}
}

struct one_domain {
	const char	*name;
	int		 lifecycle;
};

static void
per_domain(struct metrics *m, struct evbuffer *b, time_t now)
{
	static const char *const lc_name[] = { "", "learning", "active",
	    "refused" };
	struct sched *s = queue_sched(m->src.queue);
	size_t i, n = domains_count(m->domains), queued;
	time_t oldest;
	int l;

	if (n > m->src.conf->metrics_domains_max)
		n = m->src.conf->metrics_domains_max;
	header(b, "domain_queue_messages", "gauge", "Queued messages with a "
	    "recipient still to deliver in this domain (metrics_domains)");
	for (i = 0; i < n; i++) {
		const char *d = domains_at(m->domains, i)->name;

		sched_domain_stats(s, d, &queued, &oldest);
		evbuffer_add_printf(b, P "domain_queue_messages{domain=\"");
		label_value(b, d);
		evbuffer_add_printf(b, "\"} %zu\n", queued);
	}
	header(b, "domain_oldest_message_age_seconds", "gauge", "Age of this "
	    "domain's oldest queued message; 0: none (metrics_domains)");
	for (i = 0; i < n; i++) {
		const char *d = domains_at(m->domains, i)->name;

		sched_domain_stats(s, d, &queued, &oldest);
		evbuffer_add_printf(b, P "domain_oldest_message_age_seconds"
		    "{domain=\"");
		label_value(b, d);
		evbuffer_add_printf(b, "\"} %lld\n", oldest != 0 &&
		    now > oldest ? (long long)(now - oldest) : 0LL);
	}
	header(b, "domain_primary_up", "gauge", "1 while this domain's "
	    "primary is up (metrics_domains)");
	for (i = 0; i < n; i++) {
		const char *d = domains_at(m->domains, i)->name;

		evbuffer_add_printf(b, P "domain_primary_up{domain=\"");
		label_value(b, d);
		evbuffer_add_printf(b, "\"} %d\n",
		    primary_health_up(m->src.health, d) ? 1 : 0);
	}
	header(b, "domain_lifecycle", "gauge", "1 for this domain's "
	    "lifecycle, 0 for the others (metrics_domains)");
	for (i = 0; i < n; i++) {
		struct one_domain o = { domains_at(m->domains, i)->name,
		    STATE_DOM_LEARNING };
		struct state_domain rec;

		if (state_domain_get(m->src.state, o.name, &rec) == 1)
			o.lifecycle = rec.lifecycle;
		if (!m->src.conf->domain_learning)
			o.lifecycle = STATE_DOM_ACTIVE;
		for (l = STATE_DOM_LEARNING; l <= STATE_DOM_REFUSED; l++) {
			evbuffer_add_printf(b, P "domain_lifecycle{domain=\"");
			label_value(b, o.name);
			evbuffer_add_printf(b, "\",lifecycle=\"%s\"} %d\n",
			    lc_name[l], o.lifecycle == l);
		}
	}
}

static void
dns_counters(struct metrics *m, struct evbuffer *b)
{
	struct resolver_stats rs;
	static const char *const dnsbl_results[] = { "listed", "not_listed",
	    "error", "no_answer" };
	struct dnsbl_stats ds;
	uint64_t clean, v[4];

	resolver_stats(m->src.resolver, &rs);
	one(b, "dns_queries_total", "counter", "DNS questions asked of "
	    "libunbound", rs.queries);
	header(b, "dns_failures_total", "counter", "DNS questions without a "
	    "usable answer, by reason (tempfail: SERVFAIL or similar; busy: "
	    "dns_max_queries reached; over_budget: a session's budget spent; "
	    "timeout: dns_timeout passed)");
	evbuffer_add_printf(b, P "dns_failures_total{reason=\"tempfail\"} "
	    "%llu\n" P "dns_failures_total{reason=\"busy\"} %llu\n"
	    P "dns_failures_total{reason=\"over_budget\"} %llu\n"
	    P "dns_failures_total{reason=\"timeout\"} %llu\n",
	    (unsigned long long)rs.tempfails, (unsigned long long)rs.busy,
	    (unsigned long long)rs.over_budget,
	    (unsigned long long)rs.timeouts);
	one(b, "dns_queries_in_flight", "gauge", "DNS questions waiting for "
	    "an answer now", rs.in_flight);

	dnsbl_get_stats(policy_module(m->src.policy, POLICY_MOD_DNSBL), &ds);
	clean = ds.lookups - ds.listed - ds.errors - ds.failures;
	if (clean > ds.lookups)
		clean = 0;	/* lookups still in flight */
	v[0] = ds.listed;
	v[1] = clean;
	v[2] = ds.errors;
	v[3] = ds.failures;
	labelled(b, "dnsbl_lookups_total", "DNSBL zone lookups, by result "
	    "(error: the list's own 127.255.255.x error answer; no_answer: a "
	    "temporary failure)", "result", dnsbl_results, v, 4);
}

static void
http_gauges(struct metrics *m, struct evbuffer *b)
{
	struct http_counts hc;

	http_counts(m->http, &hc);
	one(b, "http_connections_open", "gauge", "HTTP connections open "
	    "now", hc.open);
	one(b, "http_requests_total", "counter", "HTTP requests read",
	    hc.requests);
	header(b, "http_connections_closed_total", "counter", "HTTP "
	    "connections we ended, by reason (connection_cap: over the cap; "
	    "deadline: alive too long)");
	evbuffer_add_printf(b, P "http_connections_closed_total{reason="
	    "\"connection_cap\"} %lu\n" P "http_connections_closed_total"
	    "{reason=\"deadline\"} %lu\n", hc.refused, hc.cut);
}

/*
 * What the node asks of Redis and decides without it (docs/cluster.md
 * "Fallback", "Replay", "One probe, one callout"): the breaker, the
 * requests, the decisions taken alone, the replay queue, the leases.
 */
static void
cluster_counters(struct evbuffer *b, const struct cluster_status *s)
{
	static const char *const states[] = { "closed", "open", "half_open" };
	static const char *const kinds[] = { "probe", "callout" };
	size_t i;

	header(b, "redis_breaker", "gauge", "1 for the circuit breaker's "
	    "state toward Redis: open means the node decides alone");
	for (i = 0; i < 3; i++)
		evbuffer_add_printf(b, P "redis_breaker{state=\"%s\"} %d\n",
		    states[i], (size_t)s->redis.breaker == i);
	one(b, "redis_requests_total", "counter", "Requests sent to Redis",
	    s->redis.requests);
	one(b, "redis_timeouts_total", "counter", "Requests Redis did not "
	    "answer within redis_timeout", s->redis.timeouts);
	one(b, "redis_errors_total", "counter", "Error replies and broken "
	    "connections", s->redis.errors);
	one(b, "cluster_local_decisions_total", "counter", "Checks this node "
	    "decided from its own store because Redis did not answer",
	    s->fallbacks);
	one(b, "cluster_replay_depth", "gauge", "Decisions and records "
	    "waiting in the replay queue for Redis", (uint64_t)s->replay_depth);
	one(b, "cluster_replay_dropped_total", "counter", "Replay entries "
	    "dropped: the queue was full, or Redis refused one",
	    s->replay_dropped);
	one(b, "cluster_replay_merged_total", "counter", "Decisions "
	    "(greylist triplets, bulk counts) merged into Redis from the "
	    "replay queue", s->replay_merged);
	header(b, "cluster_leases_total", "counter", "Probe and callout "
	    "leases: taken (this node acts), lost (another node does), "
	    "alone (no answer from Redis: this node acts)");
	for (i = 0; i < CLUSTER_LEASE_KINDS && i < 2; i++)
		evbuffer_add_printf(b, P "cluster_leases_total{kind=\"%s\","
		    "result=\"taken\"} %llu\n" P "cluster_leases_total{kind="
		    "\"%s\",result=\"lost\"} %llu\n" P "cluster_leases_total"
		    "{kind=\"%s\",result=\"alone\"} %llu\n", kinds[i],
		    (unsigned long long)s->leases[i].taken, kinds[i],
		    (unsigned long long)s->leases[i].lost, kinds[i],
		    (unsigned long long)s->leases[i].alone);
}

/*
 * What the node shares besides greylisting and bulk counts (docs/cluster.md
 * "Network passes", "Primary health", "Learned recipients"): until now
 * only in `backmxctl cluster status`.
 */
static void
cluster_shared(struct evbuffer *b, const struct cluster_status *s)
{
	static const char *const records[] = { "recipient", "domain" };
	static const char *const answers[] = { "answered", "no_answer" };
	static const char *const health[] = { "sent", "send_failed",
	    "received", "rejected" };
	const struct cluster_learned_stats *l = &s->learned;
	uint64_t v[4];

	one(b, "cluster_network_passes_total", "counter", "Greylisting "
	    "passes this node counted for its client's network in Redis",
	    s->net_shared);
	one(b, "cluster_network_allowed_total", "counter", "Greylisting "
	    "checks a network that Redis's record allowed let through",
	    s->net_allowed);
	v[0] = s->health_sent;
	v[1] = s->health_send_failed;
	v[2] = s->health_received;
	v[3] = s->health_rejected;
	labelled(b, "cluster_health_messages_total", "Primary health news: "
	    "published by this node (sent, send_failed), other nodes' "
	    "(received, rejected: not understood)", "result", health, v, 4);
	one(b, "cluster_health_keys_read_total", "counter", "Primary health "
	    "keys read after (re)subscribing", s->health_keys_read);
	v[0] = l->rcpt_shared;
	v[1] = l->domain_shared;
	labelled(b, "cluster_learned_shared_total", "Learned records this "
	    "node merged into Redis", "record", records, v, 2);
	v[0] = l->lookups - (l->lookup_failed < l->lookups ? l->lookup_failed :
	    l->lookups);
	v[1] = l->lookup_failed;
	labelled(b, "cluster_learned_lookups_total", "Backup-mode checks that "
	    "asked Redis for learned records (no_answer: decided from the "
	    "node's own store)", "result", answers, v, 2);
	v[0] = l->rcpt_found;
	v[1] = l->domain_found;
	labelled(b, "cluster_learned_found_total", "Learned records Redis "
	    "answered with", "record", records, v, 2);
	one(b, "cluster_learned_rejected_total", "counter", "Learned records "
	    "from Redis not understood, and ignored", l->rejected);
}

/*
 * The Redis the cluster shares through (docs/cluster.md "Sentinel"):
 * role, replicas and lag as the master's INFO says, the failovers
 * followed. No address is a label (docs/metrics.md): the master's and
 * the Sentinel's addresses are in `backmxctl cluster status`; the
 * Sentinel in use is its place in redis_sentinels.
 */
static void
cluster_gauges(struct metrics *m, struct evbuffer *b)
{
	static const char *const roles[] = { "master", "replica", "unknown" };
	struct cluster_status *s;
	const struct redis_repl *p;
	const char *role;
	int64_t lag = 0;
	size_t i;

	if (m->src.cluster == NULL)
		return;
	s = xcalloc(1, sizeof(*s));
	cluster_status_now(m->src.cluster, s);
	p = &s->redis.repl;
	role = !p->known ? "unknown" : strcmp(p->role, "master") == 0 ?
	    "master" : "replica";
	for (i = 0; p->known && i < p->nreplicas; i++)
		if (p->replicas[i].lag_bytes > lag)
			lag = p->replicas[i].lag_bytes;
	one(b, "redis_connected", "gauge", "1 while the commands connection "
	    "to Redis is up", (uint64_t)s->redis.connected);
	header(b, "redis_role", "gauge", "1 for the role the Redis server "
	    "reports (INFO replication); unknown while it does not answer");
	for (i = 0; i < 3; i++)
		evbuffer_add_printf(b, P "redis_role{role=\"%s\"} %d\n",
		    roles[i], strcmp(role, roles[i]) == 0);
	one(b, "redis_replicas", "gauge", "Replicas connected to the Redis "
	    "master, as it reports", p->known ? p->connected : 0);
	one(b, "redis_replication_lag_bytes", "gauge", "Bytes of the "
	    "master's replication stream its slowest replica has not "
	    "acknowledged", (uint64_t)lag);
	one(b, "redis_failovers_total", "counter", "Changes of the Redis "
	    "master followed (through Sentinel)",
	    s->sentinel_st.failovers);
	one(b, "redis_sentinel_in_use", "gauge", "Place in redis_sentinels "
	    "(1-based) of the Sentinel that named the master; 0: none",
	    s->sentinel_st.sentinel_place);
	one(b, "redis_sentinel_lookups_total", "counter", "Rounds of asking "
	    "the Sentinels for the master", s->sentinel_st.lookups);
	one(b, "redis_sentinel_skipped_total", "counter", "Sentinels that "
	    "did not answer, stalled or answered no valid address",
	    s->sentinel_st.skipped);
	cluster_counters(b, s);
	cluster_shared(b, s);
	free(s);
}

static void
serve(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *b = evbuffer_new();
	time_t now = time(NULL);

	if (b == NULL)
		fatal("event=metrics_error error=\"out of memory\"");
	header(b, "build_info", "gauge", "Always 1; the version as a label");
	evbuffer_add_printf(b, P "build_info{version=\"%s\"} 1\n",
	    BACKMX_VERSION);
	one(b, "start_time_seconds", "gauge", "Start time of the process, "
	    "seconds since the epoch", (uint64_t)m->started);
	one(b, "sessions_active", "gauge", "SMTP sessions open now",
	    listener_sessions(m->src.listener));
	counters(b);
	replies(b);
	histograms(b);
	milter_counters(m, b);
	queue_gauges(m, b, now);
	domain_gauges(m, b);
	if (m->src.conf->metrics_domains)
		per_domain(m, b, now);
	dns_counters(m, b);
	http_gauges(m, b);
	cluster_gauges(m, b);
	http_send(req, 200, CONTENT_TYPE, b);
	evbuffer_free(b);
}

struct metrics *
metrics_new(struct http *h, const struct metrics_sources *src)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->src = *src;
	m->http = h;
	m->started = time(NULL);
	http_route(h, "/metrics", 0, serve, m);
	return m;
}

void
metrics_set_domains(struct metrics *m, const struct domains *d)
{
	if (m != NULL)
		m->domains = d;
}

void
metrics_free(struct metrics *m)
{
	free(m);
}
