/*
 * view: what the control socket answers, rendered. The queue, domain and
 * recipient listings (shared with backmxctl, which renders them itself
 * from the databases when the daemon is stopped) and the short answers
 * to a change. Text for a terminal (a peer's control bytes shown as '?'),
 * or JSON, one document a line. Reads only; the socket, its requests and
 * the writes they make are control.c's.
 */
#include "view.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "addr.h"
#include "cluster.h"
#include "domains.h"
#include "health.h"
#include "json.h"
#include "learn.h"
#include "looplag.h"
#include "qdb.h"
#include "sched.h"
#include "state.h"
#include "str.h"
#include "xmem.h"

/* The JSON writer's sink: the answer's buffer. */
static void
evb_write(void *arg, const char *p, size_t n)
{
	evbuffer_add(arg, p, n);
}

/* Text output: control characters shown as '?' so that a peer's bytes in
 * an address or an error text cannot move the operator's terminal or
 * reorder what it shows (str_cp_control(): C0, DEL, C1, bidi); bytes
 * that are not UTF-8 as '?' too. */
static void
text_str(struct evbuffer *b, const char *s)
{
	size_t left = strlen(s), n;
	int hide;

	for (; left > 0; s += n, left -= n) {
		n = str_term_next(s, left, &hide);
		evbuffer_add(b, hide ? "?" : s, hide ? 1 : n);
	}
}

static void
addr_str(const struct mailaddr *a, char *buf, size_t bufsz)
{
	if (a->is_null)
		buf[0] = '\0';
	else if (a->domain[0] == '\0')
		snprintf(buf, bufsz, "%s", a->local);
	else
		snprintf(buf, bufsz, "%s@%s", a->local, a->domain);
}

static const char *
rcpt_status(enum qdb_rcpt_status s)
{
	return s == QDB_RCPT_SENT ? "sent" : s == QDB_RCPT_BOUNCED ?
	    "bounced" : "pending";
}

static void
msg_json(const struct qdb_msg *m, struct evbuffer *b, int detail)
{
	char a[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	struct json j;
	size_t i;

	json_init(&j, evb_write, b);
	addr_str(&m->sender, a, sizeof(a));
	/* postqueue -j's names where they fit (docs/configuration.md). */
	json_object(&j);
	json_kstr(&j, "queue_name", m->hold ? "hold" : "deferred");
	json_kstr(&j, "queue_id", m->id);
	json_kint(&j, "arrival_time", m->arrival);
	json_kuint(&j, "message_size", m->size);
	json_kstr(&j, "sender", a);
	json_kbool(&j, "hold", m->hold);
	json_kuint(&j, "attempts", m->attempts);
	json_kint(&j, "last_attempt", m->last_attempt);
	json_kint(&j, "next_attempt", m->next_attempt);
	json_kstr(&j, "last_error", m->last_error);
	if (detail) {
		json_kbool(&j, "is_dsn", m->is_dsn);
		json_kstr(&j, "helo", m->helo);
		json_kstr(&j, "client_addr", m->client_addr);
		json_kstr(&j, "client_name", m->client_name);
		json_kstr(&j, "protocol", m->proto);
		json_kstr(&j, "body_file", m->big);
	}
	json_key(&j, "recipients");
	json_array(&j);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qdb_rcpt *r = &m->rcpts[i];

		addr_str(&r->addr, a, sizeof(a));
		json_object(&j);
		json_kstr(&j, "address", a);
		json_kstr(&j, "status", rcpt_status(r->status));
		json_kint(&j, "last_code", r->last_code);
		json_kstr(&j, "delay_reason", r->last_reply);
		json_end(&j);
	}
	json_end(&j);
	json_end(&j);
	json_raw(&j, "\n");
}

static const char *
when(time_t t, char *buf, size_t bufsz)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		return "-";
	strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* mailq's shape: id ('!' on hold), size, arrival, sender; the last error
 * in parentheses; the pending recipients indented. */
static void
msg_text(const struct qdb_msg *m, struct evbuffer *b)
{
	char a[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2], t[32];
	size_t i;

	addr_str(&m->sender, a, sizeof(a));
	evbuffer_add_printf(b, "%s%c %8llu %s  ", m->id, m->hold ? '!' : ' ',
	    (unsigned long long)m->size, when(m->arrival, t, sizeof(t)));
	text_str(b, a[0] ? a : "<>");
	evbuffer_add(b, "\n", 1);
	if (m->last_error[0] != '\0') {
		evbuffer_add(b, "   (", 4);
		text_str(b, m->last_error);
		evbuffer_add(b, ")\n", 2);
	}
	for (i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i].status != QDB_RCPT_PENDING)
			continue;
		addr_str(&m->rcpts[i].addr, a, sizeof(a));
		evbuffer_add(b, "      ", 6);
		text_str(b, a);
		evbuffer_add(b, "\n", 1);
	}
}

/* "queue list" as a page-at-a-time cursor (view.h). */
struct queue_listing {
	struct qdb		*db;
	struct qdb_cursor	 cur;
	struct evbuffer		*out;		/* this page's */
	int			 json;
	size_t			 n;
	uint64_t		 bytes;
};

static void
list_each(const struct qdb_msg *m, void *arg)
{
	struct queue_listing *l = arg;

	l->n++;
	l->bytes += m->size;
	if (l->json)
		msg_json(m, l->out, 0);
	else
		msg_text(m, l->out);
}

struct queue_listing *
control_queue_list_new(struct qdb *db, int json)
{
	struct queue_listing *l = xcalloc(1, sizeof(*l));

	l->db = db;
	l->json = json;
	return l;
}

int
control_queue_list_page(struct queue_listing *l, struct evbuffer *out,
    size_t max)
{
	int n;

	l->out = out;
	if ((n = qdb_scan_page(l->db, &l->cur, max, list_each, l)) == -1)
		return -1;
	if ((size_t)n == max)
		return 1;
	if (!l->json) {
		if (l->n == 0)
			evbuffer_add_printf(out, "Mail queue is empty\n");
		else
			evbuffer_add_printf(out, "-- %llu Kbytes in %zu "
			    "Request%s.\n",
			    (unsigned long long)((l->bytes + 1023) / 1024),
			    l->n, l->n == 1 ? "" : "s");
	}
	return 0;
}

void
control_queue_list_free(struct queue_listing *l)
{
	free(l);
}

void
control_queue_show(const struct qdb_msg *m, struct evbuffer *b, int json)
{
	char a[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2], t[32];
	size_t i;

	if (json) {
		msg_json(m, b, 1);
		return;
	}
	addr_str(&m->sender, a, sizeof(a));
	evbuffer_add_printf(b, "id: %s\nsize: %llu\narrival: %s\nsender: ",
	    m->id, (unsigned long long)m->size,
	    when(m->arrival, t, sizeof(t)));
	text_str(b, a[0] ? a : "<>");
	evbuffer_add_printf(b, "\nhold: %s\nattempts: %u\nlast_attempt: %s\n",
	    m->hold ? "yes" : "no", m->attempts,
	    when(m->last_attempt, t, sizeof(t)));
	evbuffer_add_printf(b, "next_attempt: %s\nlast_error: ",
	    when(m->next_attempt, t, sizeof(t)));
	text_str(b, m->last_error);
	evbuffer_add_printf(b, "\nclient: ");
	text_str(b, m->client_name);
	evbuffer_add_printf(b, " [");
	text_str(b, m->client_addr);
	evbuffer_add_printf(b, "] helo=");
	text_str(b, m->helo);
	evbuffer_add_printf(b, " proto=");
	text_str(b, m->proto);
	evbuffer_add(b, "\n", 1);
	for (i = 0; i < m->nrcpt; i++) {
		const struct qdb_rcpt *r = &m->rcpts[i];

		addr_str(&r->addr, a, sizeof(a));
		evbuffer_add_printf(b, "recipient: ");
		text_str(b, a);
		evbuffer_add_printf(b, " %s", rcpt_status(r->status));
		if (r->last_code != 0) {
			evbuffer_add_printf(b, " %d ", r->last_code);
			text_str(b, r->last_reply);
		}
		evbuffer_add(b, "\n", 1);
	}
}

/* --- domains and recipients (docs/architecture.md §6, docs/queue.md) ------ */

static const char *
lifecycle_name(int l)
{
	switch (l) {
	case STATE_DOM_LEARNING:
		return "learning";
	case STATE_DOM_ACTIVE:
		return "active";
	case STATE_DOM_REFUSED:
		return "refused";
	}
	return NULL;	/* no record (offline), or one we cannot read */
}

static const char *
rcpt_status_name(int s)
{
	return s == STATE_RCPT_INVALID ? "invalid" : "valid";
}

static const char *
rcpt_source_name(int s)
{
	switch (s) {
	case STATE_SRC_PASSTHROUGH:
		return "passthrough";
	case STATE_SRC_DELIVERY:
		return "delivery";
	case STATE_SRC_CALLOUT:
		return "callout";
	case STATE_SRC_ADMIN:
		return "admin";
	}
	return "unknown";
}

/* view.h */
const char *
view_age(int64_t since, int64_t now, char *buf, size_t bufsz)
{
	int64_t s = now - since;

	if (since == 0)
		return "-";
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, bufsz, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, bufsz, "%lldm", (long long)(s / 60));
	else if (s < 86400)
		snprintf(buf, bufsz, "%lldh%02lldm", (long long)(s / 3600),
		    (long long)(s % 3600 / 60));
	else
		snprintf(buf, bufsz, "%lldd%02lldh", (long long)(s / 86400),
		    (long long)(s % 86400 / 3600));
	return buf;
}

/* The one gatherer of a domain's row (view.h). */
int
domain_view_get(struct state *st, struct learn *ln, struct sched *sc,
    const struct domain *d, int64_t now, struct domain_view *v)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->d = d;
	if (ln != NULL) {
		if (learn_domain(ln, d->name, now, &v->rec) == -1)
			return -1;
	} else {
		if ((rc = state_domain_get(st, d->name, &v->rec)) == -1)
			return -1;
		if (rc == 0)
			memset(&v->rec, 0, sizeof(v->rec));
	}
	if (ln != NULL && sc != NULL) {
		v->live = 1;
		v->up = primary_health_up(sched_health(sc), d->name);
		sched_domain_stats(sc, d->name, &v->queued, &v->oldest);
	}
	if (state_rcpt_count(st, d->name, now, &v->valid, &v->invalid) == -1)
		return -1;
	/* The static list counts as valid (an address in both the list
	 * and the store counts twice: docs/queue.md). */
	v->valid += domains_static_count(d);
	return 0;
}

const char *
domain_view_lifecycle(const struct domain_view *v)
{
	return lifecycle_name(v->rec.lifecycle);
}

/* "up", "down", or NULL when not known (offline). */
static const char *
dview_health(const struct domain_view *v)
{
	return v->live ? (v->up ? "up" : "down") : NULL;
}

/*
 * One field of "domain show": a "key: value" line, or with j a member of
 * its one-line document. NULL, "" and time 0 stand for nothing: "-" in
 * text, null in JSON; times are shown as in "queue show".
 */
static void
show_text(struct evbuffer *b, struct json *j, const char *key,
    const char *s)
{
	if (j != NULL) {
		json_kstr_or_null(j, key, s);
		return;
	}
	evbuffer_add_printf(b, "%s: ", key);
	text_str(b, s != NULL && s[0] != '\0' ? s : "-");
	evbuffer_add(b, "\n", 1);
}

static void
show_time(struct evbuffer *b, struct json *j, const char *key, int64_t t)
{
	char buf[32];

	if (j != NULL)
		json_ktime(j, key, t);
	else
		evbuffer_add_printf(b, "%s: %s\n", key,
		    when((time_t)t, buf, sizeof(buf)));
}

/* A count, or nothing when not 'known'. */
static void
show_count(struct evbuffer *b, struct json *j, const char *key, int known,
    size_t n)
{
	if (j != NULL) {
		json_key(j, key);
		if (known)
			json_uint(j, n);
		else
			json_null(j);
	} else if (!known)
		evbuffer_add_printf(b, "%s: -\n", key);
	else
		evbuffer_add_printf(b, "%s: %zu\n", key, n);
}

/* A yes/no option: 1, 0, or -1 when not given (the global key decides):
 * true, false, null in JSON; yes, no, - in text. */
static void
show_flag(struct evbuffer *b, struct json *j, const char *key, int v)
{
	if (j != NULL) {
		json_key(j, key);
		if (v < 0)
			json_null(j);
		else
			json_bool(j, v);
	} else
		evbuffer_add_printf(b, "%s: %s\n", key, v < 0 ? "-" : v ? "yes" :
		    "no");
}

/* One of a domain's bulk allow lists: a JSON array, or its items joined
 * by commas as the domains file writes them, "-" for none. */
static void
show_allow(struct evbuffer *b, struct json *j, const char *key,
    const struct allow_list *l)
{
	static const struct allow_list none;
	char buf[80];
	const char *it;
	size_t i;

	if (l == NULL)
		l = &none;
	if (j != NULL) {
		json_key(j, key);
		json_array(j);
	} else
		evbuffer_add_printf(b, "%s: ", key);
	for (i = 0; (it = allow_item(l, i, buf, sizeof(buf))) != NULL; i++) {
		if (j != NULL)
			json_string(j, it);
		else {
			if (i > 0)
				evbuffer_add(b, ",", 1);
			text_str(b, it);
		}
	}
	if (j != NULL)
		json_end(j);
	else
		evbuffer_add_printf(b, "%s\n", i == 0 ? "-" : "");
}

static void
dview_show(const struct domain_view *v, struct evbuffer *b, int json)
{
	const struct allow_set *a = v->d->bulk_allow;
	char route[sizeof(v->d->route_host) + 8];
	const struct state_domain *r = &v->rec;
	struct json js, *j = NULL;

	if (json) {
		j = &js;
		json_init(j, evb_write, b);
		json_object(j);
		json_kstr(j, "domain", v->d->name);
	} else
		evbuffer_add_printf(b, "domain: %s\n", v->d->name);
	show_text(b, j, "lifecycle", lifecycle_name(r->lifecycle));
	show_text(b, j, "health", dview_health(v));
	show_count(b, j, "valid", 1, v->valid);
	show_count(b, j, "invalid", 1, v->invalid);
	show_count(b, j, "queued", v->live, v->queued);
	show_time(b, j, "oldest", v->live ? (int64_t)v->oldest : 0);
	show_time(b, j, "added", r->added);
	show_time(b, j, "first_accept", r->first_accept);
	show_time(b, j, "last_accept", r->last_accept);
	show_text(b, j, "accept_how", r->accept_how);
	show_time(b, j, "health_changed", r->health_changed);
	show_text(b, j, "health_why", r->health_why);
	/* The domain's options in force, as domains_file gave them
	 * (docs/configuration.md, "The domains file"); unset, the global
	 * keys decide. */
	route[0] = '\0';
	if (v->d->route_host[0] != '\0')
		snprintf(route, sizeof(route), v->d->route_no_mx ? "[%s]:%u" :
		    "%s:%u", v->d->route_host, (unsigned)v->d->route_port);
	show_text(b, j, "route", route);
	show_flag(b, j, "mx_check", !v->d->mx_check_off);
	show_flag(b, j, "accept_unverified", v->d->accept_unverified);
	show_flag(b, j, "passthrough_filters", v->d->passthrough_filters);
	show_flag(b, j, "forward_client", v->d->forward_client);
	show_count(b, j, "bulk_threshold", v->d->bulk_threshold >= 0,
	    (size_t)(v->d->bulk_threshold >= 0 ? v->d->bulk_threshold : 0));
	show_allow(b, j, "bulk_allow_senders", a ? &a->senders : NULL);
	show_allow(b, j, "bulk_allow_clients", a ? &a->clients : NULL);
	show_allow(b, j, "bulk_allow_recipients", a ? &a->rcpts : NULL);
	if (j != NULL) {
		json_end(j);
		json_raw(j, "\n");
	}
}

int
control_domain_list(struct state *st, struct learn *ln, struct sched *sc,
    const struct domains *ds, struct evbuffer *out, int json, int64_t now)
{
	size_t n = domains_count(ds), i, w = strlen("DOMAIN"), refused = 0;
	struct domain_view *v;
	char a[32];
	int rc = 0;

	/* Whole first: the text columns are as wide as the longest name. */
	v = xcalloc(n ? n : 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		if (domain_view_get(st, ln, sc, domains_at(ds, i), now, &v[i]) ==
		    -1) {
			rc = -1;
			goto done;
		}
		if (strlen(v[i].d->name) > w)
			w = strlen(v[i].d->name);
		if (v[i].rec.lifecycle == STATE_DOM_REFUSED)
			refused++;
	}
	/* Live, the count the lifecycle timer keeps (and exports). */
	if (ln != NULL)
		refused = learn_refused_count(ln);
	if (json) {
		for (i = 0; i < n; i++)
			dview_show(&v[i], out, 1);
		goto done;
	}
	evbuffer_add_printf(out, "%-*s  %-9s  %-6s  %7s  %7s  %6s  %s\n",
	    (int)w, "DOMAIN", "LIFECYCLE", "HEALTH", "VALID", "INVALID",
	    "QUEUED", "OLDEST");
	for (i = 0; i < n; i++) {
		const char *lc = lifecycle_name(v[i].rec.lifecycle);
		const char *health = dview_health(&v[i]);
		char q[24];

		if (v[i].live)
			snprintf(q, sizeof(q), "%zu", v[i].queued);
		else
			snprintf(q, sizeof(q), "-");
		evbuffer_add_printf(out, "%-*s  %-9s  %-6s  %7zu  %7zu  %6s  "
		    "%s\n", (int)w, v[i].d->name, lc ? lc : "-",
		    health ? health : "-", v[i].valid,
		    v[i].invalid, q, view_age(v[i].live ?
		    (int64_t)v[i].oldest : 0, now, a, sizeof(a)));
	}
	evbuffer_add_printf(out, "-- %zu domain%s, %zu refused%s\n", n,
	    n == 1 ? "" : "s", refused, refused == 0 ? "" :
	    " (WARNING: a refused domain's primary never accepted mail from "
	    "backmx: its mail is deferred)");
done:
	free(v);
	return rc;
}

int
control_domain_show(struct state *st, struct learn *ln, struct sched *sc,
    const struct domain *d, struct evbuffer *out, int json, int64_t now)
{
	struct domain_view v;

	if (domain_view_get(st, ln, sc, d, now, &v) == -1)
		return -1;
	dview_show(&v, out, json);
	return 0;
}

struct rlisting {
	struct evbuffer	*out;
	int		 json;
	size_t		 valid, invalid;
};

static void
rcpt_line(struct rlisting *l, const char *addr, const char *status,
    const char *source, int64_t first, int64_t last, int64_t expires,
    const char *why)
{
	struct evbuffer *b = l->out;
	char t1[32], t2[32], t3[32];

	if (strcmp(status, "valid") == 0)
		l->valid++;
	else
		l->invalid++;
	if (l->json) {
		struct json j;

		json_init(&j, evb_write, b);
		json_object(&j);
		json_kstr(&j, "address", addr);
		json_kstr(&j, "status", status);
		json_kstr(&j, "source", source);
		json_ktime(&j, "first_seen", first);
		json_ktime(&j, "last_seen", last);
		json_ktime(&j, "expires", expires);
		json_kstr_or_null(&j, "why", why);
		json_end(&j);
		json_raw(&j, "\n");
		return;
	}
	text_str(b, addr);
	evbuffer_add_printf(b, " %s %s first=%s last=%s expires=%s", status,
	    source, when((time_t)first, t1, sizeof(t1)), when((time_t)last,
	    t2, sizeof(t2)), expires == 0 ? "never" : when((time_t)expires,
	    t3, sizeof(t3)));
	if (why != NULL && why[0] != '\0') {
		evbuffer_add(b, " (", 2);
		text_str(b, why);
		evbuffer_add(b, ")", 1);
	}
	evbuffer_add(b, "\n", 1);
}

static int
rcpt_each(const struct state_rcpt *r, void *arg)
{
	rcpt_line(arg, r->addr, rcpt_status_name(r->status),
	    rcpt_source_name(r->source), r->first_seen, r->last_seen,
	    r->expires, r->why);
	return 0;
}

int
control_rcpt_list(struct state *st, const struct domain *d,
    struct evbuffer *out, int json, int64_t now)
{
	struct rlisting l = { out, json, 0, 0 };
	size_t i, n = domains_static_count(d);

	for (i = 0; i < n; i++)
		rcpt_line(&l, domains_static_at(d, i), "valid", "static", 0,
		    0, 0, NULL);
	if (state_rcpt_list(st, d->name, now, rcpt_each, &l) == -1)
		return -1;
	if (!json)
		evbuffer_add_printf(out, "-- %zu recipient%s: %zu valid, "
		    "%zu invalid\n", l.valid + l.invalid, l.valid + l.invalid
		    == 1 ? "" : "s", l.valid, l.invalid);
	return 0;
}

void
view_status(struct evbuffer *b, int json, long pid, int64_t uptime,
    size_t domains, const struct looplag_stats *l)
{
	const unsigned *bound = looplag_bounds();
	struct json j;
	size_t i;

	if (!json) {
		evbuffer_add_printf(b, "pid: %ld\nuptime: %lld s\n"
		    "domains: %zu\nloop lag: max %llu ms, last %llu ms, "
		    "%llu probes over %d ms of %llu\nloop lag histogram:",
		    pid, (long long)uptime, domains,
		    (unsigned long long)l->max_ms,
		    (unsigned long long)l->last_ms,
		    (unsigned long long)l->stalls, LOOPLAG_STALL_MS,
		    (unsigned long long)l->ticks);
		for (i = 0; i < LOOPLAG_BUCKETS; i++)
			if (bound[i] != 0)
				evbuffer_add_printf(b, " <%ums:%llu", bound[i],
				    (unsigned long long)l->hist[i]);
			else
				evbuffer_add_printf(b, " more:%llu",
				    (unsigned long long)l->hist[i]);
		evbuffer_add(b, "\n", 1);
		return;
	}
	json_init(&j, evb_write, b);
	json_object(&j);
	json_kint(&j, "pid", pid);
	json_kint(&j, "uptime_s", uptime);
	json_kuint(&j, "domains", domains);
	json_kuint(&j, "loop_lag_max_ms", l->max_ms);
	json_kuint(&j, "loop_lag_last_ms", l->last_ms);
	json_kuint(&j, "loop_stalls_50ms", l->stalls);
	json_kuint(&j, "loop_probes", l->ticks);
	/* [upper bound in ms (null: none), probes] pairs */
	json_key(&j, "loop_lag_histogram");
	json_array(&j);
	for (i = 0; i < LOOPLAG_BUCKETS; i++) {
		json_array(&j);
		if (bound[i] != 0)
			json_uint(&j, bound[i]);
		else
			json_null(&j);
		json_uint(&j, l->hist[i]);
		json_end(&j);
	}
	json_end(&j);
	json_end(&j);
	json_raw(&j, "\n");
}

void
view_queue_changed(struct evbuffer *b, int json, const char *id)
{
	struct json j;

	if (!json)
		return;
	json_init(&j, evb_write, b);
	json_object(&j);
	json_kstr(&j, "queue_id", id);
	json_kstr(&j, "result", "ok");
	json_end(&j);
	json_raw(&j, "\n");
}

void
view_rcpt_changed(struct evbuffer *b, int json, const char *addr,
    int deleted, int still_static, int status)
{
	struct json j;

	if (json) {
		json_init(&j, evb_write, b);
		json_object(&j);
		json_kstr(&j, "address", addr);
		if (deleted)
			json_kbool(&j, "deleted", 1);
		else
			json_kstr(&j, "status", rcpt_status_name(status));
		json_kstr(&j, "result", "ok");
		json_end(&j);
		json_raw(&j, "\n");
	} else if (deleted)
		evbuffer_add_printf(b, "%s deleted%s\n", addr,
		    still_static ? " (still valid: it is in the domain's "
		    "recipients= list)" : "");
	else
		evbuffer_add_printf(b, "%s added as %s\n", addr,
		    rcpt_status_name(status));
}

void
view_greylist_allowed(struct evbuffer *b, int json, const char *value,
    int added)
{
	struct json j;

	if (!json) {
		text_str(b, value);
		evbuffer_add_printf(b, " %s\n", added ? "allowed" :
		    "was allowed already");
		return;
	}
	json_init(&j, evb_write, b);
	json_object(&j);
	json_kbool(&j, "added", added);
	json_end(&j);
	json_raw(&j, "\n");
}

void
view_greylist_deleted(struct evbuffer *b, int json, int n)
{
	struct json j;

	if (!json) {
		evbuffer_add_printf(b, "%d deleted\n", n);
		return;
	}
	json_init(&j, evb_write, b);
	json_object(&j);
	json_kint(&j, "deleted", n);
	json_end(&j);
	json_raw(&j, "\n");
}

/* The largest lag of the replicas the master reports, in bytes. */
static int64_t
repl_lag_max(const struct redis_repl *p)
{
	int64_t m = 0;
	size_t i;

	for (i = 0; i < p->nreplicas; i++)
		if (p->replicas[i].lag_bytes > m)
			m = p->replicas[i].lag_bytes;
	return m;
}

/* The role and replication lag, and how the master was found
 * (docs/cluster.md "Sentinel"). */
static void
repl_text(struct evbuffer *b, const struct cluster_status *s)
{
	const struct redis_repl *p = &s->redis.repl;
	const struct sentinel_stats *t = &s->sentinel_st;
	const struct redis_replica *q;
	size_t i;

	if (!p->known)
		evbuffer_add_printf(b, "role: unknown\n");
	else {
		evbuffer_add_printf(b, "role: %s offset: %lld replicas: %u "
		    "lag_max: %lld bytes\n", p->role, (long long)p->offset,
		    p->connected, (long long)repl_lag_max(p));
		for (i = 0; i < p->nreplicas; i++) {
			q = &p->replicas[i];
			evbuffer_add_printf(b, "  replica %s %s offset: %lld "
			    "lag: %lld bytes %llds\n", q->addr, q->state,
			    (long long)q->offset, (long long)q->lag_bytes,
			    (long long)q->lag_secs);
		}
	}
	if (!s->sentinel)
		return;
	evbuffer_add_printf(b, "sentinel: %s master: %s %s failovers: %llu "
	    "lookups: %llu lookup_failures: %llu skipped: %llu switches: %llu "
	    "rejected: %llu\n", t->known ? t->sentinel : "none",
	    t->known ? t->master : "unknown",
	    t->watching ? "watching" : "not watching",
	    (unsigned long long)t->failovers, (unsigned long long)t->lookups,
	    (unsigned long long)t->lookup_failures,
	    (unsigned long long)t->skipped, (unsigned long long)t->switches,
	    (unsigned long long)t->rejected);
}

static void
repl_json(struct json *j, const struct cluster_status *s)
{
	const struct redis_repl *p = &s->redis.repl;
	const struct sentinel_stats *t = &s->sentinel_st;
	size_t i;

	json_kstr_or_null(j, "role", p->known ? p->role : NULL);
	json_key(j, "replication_lag_bytes");
	if (p->known)
		json_int(j, repl_lag_max(p));
	else
		json_null(j);
	json_key(j, "replicas");
	json_array(j);
	for (i = 0; p->known && i < p->nreplicas; i++) {
		json_object(j);
		json_kstr(j, "address", p->replicas[i].addr);
		json_kstr(j, "state", p->replicas[i].state);
		json_kint(j, "offset", p->replicas[i].offset);
		json_kint(j, "lag_bytes", p->replicas[i].lag_bytes);
		json_kint(j, "lag_seconds", p->replicas[i].lag_secs);
		json_end(j);
	}
	json_end(j);
	json_key(j, "sentinel");
	if (!s->sentinel) {
		json_null(j);
		return;
	}
	json_object(j);
	json_kstr_or_null(j, "sentinel", t->known ? t->sentinel : NULL);
	json_kstr_or_null(j, "master", t->known ? t->master : NULL);
	json_kbool(j, "watching", t->watching);
	json_kuint(j, "failovers", t->failovers);
	json_kuint(j, "lookups", t->lookups);
	json_kuint(j, "lookup_failures", t->lookup_failures);
	json_kuint(j, "skipped", t->skipped);
	json_kuint(j, "switches", t->switches);
	json_kuint(j, "rejected", t->rejected);
	json_end(j);
}

static void
cluster_text(struct evbuffer *b, const struct cluster_status *s, int64_t now)
{
	const struct redis_stats *r = &s->redis;
	size_t i;

	evbuffer_add_printf(b, "node: ");
	text_str(b, s->node);
	evbuffer_add_printf(b, "\nredis: %s %s\nbreaker: %s\n", s->server,
	    r->connected ? "connected" : "not connected",
	    redis_breaker_name(r->breaker));
	repl_text(b, s);
	evbuffer_add_printf(b, "requests: %llu errors: %llu timeouts: %llu "
	    "refused: %llu\n", (unsigned long long)r->requests,
	    (unsigned long long)r->errors, (unsigned long long)r->timeouts,
	    (unsigned long long)r->refused);
	evbuffer_add_printf(b, "connects: %llu connect_failures: %llu "
	    "local_decisions: %llu\n", (unsigned long long)r->connects,
	    (unsigned long long)r->connect_failures,
	    (unsigned long long)s->fallbacks);
	evbuffer_add_printf(b, "replay: %zu of %zu dropped: %llu merged: "
	    "%llu\n", s->replay_depth, s->replay_limit,
	    (unsigned long long)s->replay_dropped,
	    (unsigned long long)s->replay_merged);
	evbuffer_add_printf(b, "networks: passes_shared: %llu "
	    "allowed_from_redis: %llu\n", (unsigned long long)s->net_shared,
	    (unsigned long long)s->net_allowed);
	evbuffer_add_printf(b, "health: subscription %s received: %llu "
	    "sent: %llu send_failed: %llu keys_read: %llu rejected: %llu\n",
	    s->sub.connected ? "connected" : "not connected",
	    (unsigned long long)s->health_received,
	    (unsigned long long)s->health_sent,
	    (unsigned long long)s->health_send_failed,
	    (unsigned long long)s->health_keys_read,
	    (unsigned long long)s->health_rejected);
	evbuffer_add_printf(b, "learned: shared recipients: %llu domains: "
	    "%llu lookups: %llu failed: %llu found recipients: %llu "
	    "domains: %llu rejected: %llu\n",
	    (unsigned long long)s->learned.rcpt_shared,
	    (unsigned long long)s->learned.domain_shared,
	    (unsigned long long)s->learned.lookups,
	    (unsigned long long)s->learned.lookup_failed,
	    (unsigned long long)s->learned.rcpt_found,
	    (unsigned long long)s->learned.domain_found,
	    (unsigned long long)s->learned.rejected);
	evbuffer_add_printf(b, "allow: last_sync: %lld syncs: %llu "
	    "failed: %llu greylist: %zu bulk: %zu applied: %llu "
	    "pushed: %llu rejected: %llu\n", (long long)s->allow.last_sync,
	    (unsigned long long)s->allow.syncs,
	    (unsigned long long)s->allow.failed, s->allow.entries[0],
	    s->allow.entries[1], (unsigned long long)s->allow.applied,
	    (unsigned long long)s->allow.pushed,
	    (unsigned long long)s->allow.rejected);
	evbuffer_add_printf(b, "leases: probe taken: %llu lost: %llu "
	    "alone: %llu callout taken: %llu lost: %llu alone: %llu\n",
	    (unsigned long long)s->leases[CLUSTER_LEASE_PROBE].taken,
	    (unsigned long long)s->leases[CLUSTER_LEASE_PROBE].lost,
	    (unsigned long long)s->leases[CLUSTER_LEASE_PROBE].alone,
	    (unsigned long long)s->leases[CLUSTER_LEASE_CALLOUT].taken,
	    (unsigned long long)s->leases[CLUSTER_LEASE_CALLOUT].lost,
	    (unsigned long long)s->leases[CLUSTER_LEASE_CALLOUT].alone);
	if (!s->nodes_known) {
		evbuffer_add_printf(b, "nodes: unknown (Redis did not "
		    "answer)\n");
		return;
	}
	evbuffer_add_printf(b, "nodes: %zu\n", s->nnodes);
	for (i = 0; i < s->nnodes; i++) {
		evbuffer_add_printf(b, "  ");
		text_str(b, s->nodes[i].name);
		evbuffer_add_printf(b, " beat %llds ago\n",
		    (long long)(now - s->nodes[i].beat));
	}
}

void
view_cluster_status(struct evbuffer *b, int json,
    const struct cluster_status *s, int64_t now)
{
	const struct redis_stats *r = &s->redis;
	struct json j;
	size_t i;

	if (!json) {
		cluster_text(b, s, now);
		return;
	}
	json_init(&j, evb_write, b);
	json_object(&j);
	json_kstr(&j, "node", s->node);
	json_kstr(&j, "redis", s->server);
	json_kbool(&j, "connected", r->connected);
	json_kstr(&j, "breaker", redis_breaker_name(r->breaker));
	repl_json(&j, s);
	json_kuint(&j, "requests", r->requests);
	json_kuint(&j, "errors", r->errors);
	json_kuint(&j, "timeouts", r->timeouts);
	json_kuint(&j, "refused", r->refused);
	json_kuint(&j, "connects", r->connects);
	json_kuint(&j, "connect_failures", r->connect_failures);
	json_kuint(&j, "local_decisions", s->fallbacks);
	json_kuint(&j, "replay_depth", s->replay_depth);
	json_kuint(&j, "replay_limit", s->replay_limit);
	json_kuint(&j, "replay_dropped", s->replay_dropped);
	json_kuint(&j, "replay_merged", s->replay_merged);
	json_key(&j, "networks");
	json_object(&j);
	json_kuint(&j, "passes_shared", s->net_shared);
	json_kuint(&j, "allowed_from_redis", s->net_allowed);
	json_end(&j);
	json_key(&j, "health");
	json_object(&j);
	json_kbool(&j, "subscribed", s->sub.connected);
	json_kuint(&j, "subscribe_connects", s->sub.connects);
	json_kuint(&j, "messages", s->sub.messages);
	json_kuint(&j, "received", s->health_received);
	json_kuint(&j, "sent", s->health_sent);
	json_kuint(&j, "send_failed", s->health_send_failed);
	json_kuint(&j, "keys_read", s->health_keys_read);
	json_kuint(&j, "rejected", s->health_rejected);
	json_end(&j);
	json_key(&j, "learned");
	json_object(&j);
	json_kuint(&j, "recipients_shared", s->learned.rcpt_shared);
	json_kuint(&j, "domains_shared", s->learned.domain_shared);
	json_kuint(&j, "lookups", s->learned.lookups);
	json_kuint(&j, "lookup_failed", s->learned.lookup_failed);
	json_kuint(&j, "recipients_found", s->learned.rcpt_found);
	json_kuint(&j, "domains_found", s->learned.domain_found);
	json_kuint(&j, "rejected", s->learned.rejected);
	json_end(&j);
	/* The allow entries' sync: entries per list at the last pull. */
	json_key(&j, "allow");
	json_object(&j);
	json_kint(&j, "last_sync", s->allow.last_sync);
	json_kuint(&j, "syncs", s->allow.syncs);
	json_kuint(&j, "failed", s->allow.failed);
	json_kuint(&j, "greylist", s->allow.entries[0]);
	json_kuint(&j, "bulk", s->allow.entries[1]);
	json_kuint(&j, "applied", s->allow.applied);
	json_kuint(&j, "pushed", s->allow.pushed);
	json_kuint(&j, "rejected", s->allow.rejected);
	json_end(&j);
	/* Each lost lease is one probe or callout this node skipped. */
	json_key(&j, "leases");
	json_object(&j);
	for (i = 0; i < CLUSTER_LEASE_KINDS; i++) {
		json_key(&j, i == CLUSTER_LEASE_PROBE ? "probe" : "callout");
		json_object(&j);
		json_kuint(&j, "taken", s->leases[i].taken);
		json_kuint(&j, "lost", s->leases[i].lost);
		json_kuint(&j, "alone", s->leases[i].alone);
		json_end(&j);
	}
	json_end(&j);
	json_key(&j, "nodes");
	if (!s->nodes_known)
		json_null(&j);
	else {
		json_array(&j);
		for (i = 0; i < s->nnodes; i++) {
			json_object(&j);
			json_kstr(&j, "name", s->nodes[i].name);
			json_kint(&j, "beat", s->nodes[i].beat);
			json_kint(&j, "age", now - s->nodes[i].beat);
			json_end(&j);
		}
		json_end(&j);
	}
	json_end(&j);
	json_raw(&j, "\n");
}
