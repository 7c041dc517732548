/*
 * dash: the dashboard's pages and JSON (dash.h, docs/dashboard.md).
 *
 * A list request walks every customer domain once in memory (name filter,
 * health, the scheduler's per-domain queue, history's counts: O(1) each);
 * the state store is read for every matching domain only when the sort
 * or the filter needs what only it has (lifecycle, since, recipients),
 * and always for the page's rows alone (at most DASH_PER_PAGE). A
 * domain's queue is read a page at a time through the scheduler's
 * per-domain list, each message one indexed load from queue.db.
 *
 * Every string that came from a peer or the operator is written through
 * html_text() (HTML) or the JSON writer: nothing of theirs reaches a
 * format string or the markup (docs/principles.md §4).
 */
#define _GNU_SOURCE	/* qsort_r */
#include "dash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "addr.h"
#include "domains.h"
#include "health.h"
#include "history.h"
#include "html.h"
#include "http.h"
#include "json.h"
#include "learn.h"
#include "qdb.h"
#include "queue.h"
#include "sched.h"
#include "state.h"
#include "str.h"
#include "view.h"
#include "xmem.h"

#define DASH_ROUTES	4
/* Domains whose recipient counts a list may read for its sort: each is a
 * COUNT query on the loop. */
#define DASH_COUNT_MAX		2000

/* What one route serves: HTML or JSON, the list or one domain. */
struct dash_route {
	struct dash	*ds;
	int		 json, one;
};

struct dash {
	struct dash_route	 routes[DASH_ROUTES];
	char			 host[256];
	struct queue		*queue;
	struct learn		*learn;
	struct state		*state;
	const struct domains	*domains;
};

/* One domain of the list: the sort keys, small (a list of 100,000
 * domains is walked whole). */
struct row {
	const struct domain	*d;
	int			 lifecycle;	/* -1: not read */
	int			 up;
	int64_t			 since;
	size_t			 queued;
	time_t			 oldest;
	int64_t			 delivery;
	size_t			 valid, invalid;
	unsigned		 deferrals;
};

/* The HTML page's frame; one stylesheet for every page (inline: the CSP
 * allows style-src 'unsafe-inline' and nothing else, docs/dashboard.md). */
static const char css[] =
"body{margin:0;font:13px/1.45 system-ui,-apple-system,'Segoe UI',"
"'DejaVu Sans',sans-serif;color:#1f2328;background:#f6f7f9}"
"header{display:flex;gap:18px;align-items:baseline;padding:10px 20px;"
"background:#24292f;color:#e6e8eb}"
"header h1{font-size:15px;margin:0;font-weight:600}"
"header a{color:#e6e8eb;text-decoration:none}"
"header .host{color:#9da5b0}header .time{margin-left:auto;color:#9da5b0}"
"main{padding:14px 20px}"
".stats{display:flex;gap:10px;margin:0 0 12px}"
".stat{background:#fff;border:1px solid #d8dde3;border-radius:4px;"
"padding:6px 12px;min-width:92px}"
".stat b{display:block;font-size:18px;font-weight:600}"
".stat span{color:#59636e;font-size:12px}"
".stat.bad b{color:#b42318}.stat.warn b{color:#9a6700}"
"form{margin:0 0 10px;display:flex;gap:6px;align-items:center}"
"input,select,button{font:inherit;padding:3px 6px;border:1px solid #c4cad1;"
"border-radius:3px;background:#fff}button{background:#eef1f4}"
"table{border-collapse:collapse;width:100%;background:#fff;"
"border:1px solid #d8dde3}"
"th,td{padding:4px 8px;text-align:left;border-bottom:1px solid #eceff2;"
"white-space:nowrap;vertical-align:top}"
"th{background:#eef1f4;font-weight:600;font-size:12px;color:#40474f}"
"th a{color:inherit;text-decoration:none}th a:hover{text-decoration:underline}"
"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
"tr.isdown td:first-child{box-shadow:inset 3px 0 #d1242f}"
"tbody tr:hover{background:#f3f6fa}"
"td a{color:#0b57b0;text-decoration:none}td a:hover{text-decoration:underline}"
".up{color:#1a7f37}.down{color:#b42318;font-weight:600}"
".tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;"
"border:1px solid #d0d7de;color:#40474f}"
".tag.refused{border-color:#d4a72c;background:#fff8c5;color:#7d4e00}"
".tag.learning{border-color:#9cc3ee;background:#eef6ff;color:#0b57b0}"
".muted{color:#6e7781}.why{color:#6e7781;white-space:normal;max-width:40em}"
".mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px}"
".reply{white-space:pre-wrap;word-break:break-all;max-width:52em}"
".facts{display:flex;gap:14px;align-items:flex-start;margin:0 0 4px}"
"dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;"
"background:#fff;border:1px solid #d8dde3;padding:10px 14px;margin:0;"
"flex:1 1 0;min-width:0}"
"dl .h{grid-column:1/3;font-weight:600;color:#40474f;font-size:12px;"
"text-transform:uppercase;letter-spacing:.04em}"
"dt{color:#59636e}dd{margin:0}"
"h2{font-size:16px;margin:4px 0 10px}h3{font-size:13px;margin:16px 0 6px;"
"color:#40474f;text-transform:uppercase;letter-spacing:.04em}"
"nav.pager{margin:8px 0;color:#59636e}nav.pager a{color:#0b57b0}"
"footer{padding:10px 20px;color:#6e7781;font-size:12px}"
"footer a{color:#59636e}";

static void
page_head(struct dash *ds, struct evbuffer *b, const char *title,
    int64_t now)
{
	char t[32];
	time_t tt = (time_t)now;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\""
	    "width=device-width\"><title>");
	html_text(b, title);
	evbuffer_add_printf(b, " \xc2\xb7 backmx</title><style>%s</style>"
	    "</head><body><header><h1><a href=\"/\">backmx</a></h1>"
	    "<span class=\"host\">", css);
	html_text(b, ds->host);
	evbuffer_add_printf(b, "</span><span class=\"time\">as of %s"
	    "</span></header><main>", t);
}

static void
page_foot(struct evbuffer *b, const char *api)
{
	evbuffer_add_printf(b, "</main><footer>Read-only. The same data as "
	    "JSON: <a href=\"%s\">%s</a>. docs/dashboard.md</footer>"
	    "</body></html>\n", api, api);
}

/* A time cell: the age ("12m ago"), the UTC time in its title. */
static void
time_cell(struct evbuffer *b, int64_t t, int64_t now)
{
	char a[32], u[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0) {
		evbuffer_add_printf(b, "<span class=\"muted\">-</span>");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(u, sizeof(u), "%Y-%m-%d %H:%M:%S UTC", &tm);
	evbuffer_add_printf(b, "<span title=\"%s\">%s ago</span>", u,
	    view_age(t, now, a, sizeof(a)));
}

/* --- the list ------------------------------------------------------------- */

static const char *
lifecycle_name(int l)
{
	return l == STATE_DOM_LEARNING ? "learning" : l == STATE_DOM_ACTIVE ?
	    "active" : l == STATE_DOM_REFUSED ? "refused" : "-";
}

/*
 * Mail that went through live reached the primary too: the last delivery
 * is the later of the queue's ('queued', history.h) and the pass-through's
 * (the store keeps that one to the minute, src/state/learn.c).
 */
static int64_t
last_delivery(const struct state_domain *rec, int64_t queued)
{
	if ((strcmp(rec->accept_how, "passthrough") == 0 ||
	    strcmp(rec->accept_how, "delivery") == 0) &&
	    rec->last_accept > queued)
		return rec->last_accept;
	return queued;
}

/* What only the state store knows of r's domain. 0 or -1. */
static int
row_full(struct dash *ds, struct row *r, int64_t now, struct domain_view *v)
{
	if (domain_view_get(ds->state, ds->learn, queue_sched(ds->queue), r->d,
	    now, v) == -1)
		return -1;
	r->lifecycle = v->rec.lifecycle;
	r->since = v->rec.health_changed;
	r->valid = v->valid;
	r->invalid = v->invalid;
	r->delivery = last_delivery(&v->rec, r->delivery);
	return 0;
}

static int
row_cmp(const void *a, const void *b, void *arg)
{
	const struct row *x = a, *y = b;
	const struct dash_query *q = arg;
	int c = 0;

#define CMP(f)	((x->f > y->f) - (x->f < y->f))
	switch (q->sort) {
	case DASH_SORT_DOMAIN:
		break;
	case DASH_SORT_LIFECYCLE:
		c = strcmp(lifecycle_name(x->lifecycle),
		    lifecycle_name(y->lifecycle));
		break;
	case DASH_SORT_PRIMARY:
		c = CMP(up);
		break;
	case DASH_SORT_SINCE:
		c = CMP(since);
		break;
	case DASH_SORT_QUEUED:
		c = CMP(queued);
		break;
	case DASH_SORT_OLDEST:
		/* Oldest first is the smallest time; none goes last. */
		c = (x->oldest == 0) - (y->oldest == 0);
		if (c == 0)
			c = CMP(oldest);
		break;
	case DASH_SORT_DELIVERY:
		c = CMP(delivery);
		break;
	case DASH_SORT_VALID:
		c = CMP(valid);
		break;
	case DASH_SORT_INVALID:
		c = CMP(invalid);
		break;
	case DASH_SORT_DEFERRALS:
		c = CMP(deferrals);
		break;
	case DASH_SORT_N:
		break;
	}
#undef CMP
	if (q->desc)
		c = -c;
	/* The name breaks ties, always ascending unless it is the sort. */
	if (c == 0) {
		c = strcmp(x->d->name, y->d->name);
		if (q->sort == DASH_SORT_DOMAIN && q->desc)
			c = -c;
	}
	return c;
}

/* Does the sort or the filter need every row's stored domain record
 * (lifecycle, health change, acceptance)? */
static int
needs_records(const struct dash_query *q)
{
	switch (q->sort) {
	case DASH_SORT_LIFECYCLE:
	case DASH_SORT_SINCE:
	case DASH_SORT_DELIVERY:
		return 1;
	default:
		break;
	}
	return q->state == DASH_STATE_LEARNING || q->state ==
	    DASH_STATE_ACTIVE || q->state == DASH_STATE_REFUSED;
}

/* Or every row's recipient counts (one COUNT query per domain)? */
static int
needs_counts(const struct dash_query *q)
{
	return q->sort == DASH_SORT_VALID || q->sort == DASH_SORT_INVALID;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->d->name,
	    ((const struct row *)b)->d->name);
}

/* The stored records, in name order, onto rows sorted by name. */
struct merge {
	struct row	*rows;
	size_t		 n, i;
};

static int
merge_rec(const struct state_domain *rec, void *arg)
{
	struct merge *m = arg;
	int c = -1;

	while (m->i < m->n && (c = strcmp(m->rows[m->i].d->name,
	    rec->name)) < 0)
		m->i++;
	if (m->i < m->n && c == 0) {
		struct row *r = &m->rows[m->i++];

		r->lifecycle = rec->lifecycle;
		r->since = rec->health_changed;
		r->delivery = last_delivery(rec, r->delivery);
	}
	return 0;
}

static int
state_match(const struct dash_query *q, const struct row *r)
{
	switch (q->state) {
	case DASH_STATE_UP:
		return r->up;
	case DASH_STATE_DOWN:
		return !r->up;
	case DASH_STATE_LEARNING:
		return r->lifecycle == STATE_DOM_LEARNING;
	case DASH_STATE_ACTIVE:
		return r->lifecycle == STATE_DOM_ACTIVE;
	case DASH_STATE_REFUSED:
		return r->lifecycle == STATE_DOM_REFUSED;
	default:
		return 1;
	}
}

/* The list's totals, over every domain (not only the filtered ones). */
struct totals {
	size_t	domains, down, refused, queued;
	time_t	oldest;
};

/*
 * Every domain matching q into *rows_out (sorted; caller frees), totals
 * over all of them. In memory but for what the sort or the filter needs
 * of the store: the domain records in one ordered scan of the table, the
 * recipient counts one query a domain (so at most DASH_COUNT_MAX of
 * them: the loop serves SMTP too). 0; -1 on a store error; -2 when the
 * counts would be needed for more domains than that.
 */
static int
gather(struct dash *ds, const struct dash_query *q, int64_t now,
    struct row **rows_out, size_t *n_out, struct totals *t)
{
	struct sched *sc = queue_sched(ds->queue);
	struct history *hist = primary_health_history(sched_health(sc));
	size_t n = domains_count(ds->domains), i, k = 0, j;
	struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
	struct domain_view v;
	struct merge m;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	t->domains = n;
	t->refused = learn_refused_count(ds->learn);
	for (i = 0; i < n; i++) {
		struct row *r = &rows[k];

		memset(r, 0, sizeof(*r));
		r->d = domains_at(ds->domains, i);
		r->lifecycle = -1;
		r->up = primary_health_up(sched_health(sc), r->d->name);
		sched_domain_stats(sc, r->d->name, &r->queued, &r->oldest);
		history_counts(hist, r->d->name, now, &r->delivery,
		    &r->deferrals);
		if (!r->up)
			t->down++;
		t->queued += r->queued;
		if (r->oldest != 0 && (t->oldest == 0 || r->oldest < t->oldest))
			t->oldest = r->oldest;
		if (q->q[0] != '\0' && strstr(r->d->name, q->q) == NULL)
			continue;
		if ((q->state == DASH_STATE_UP && !r->up) ||
		    (q->state == DASH_STATE_DOWN && r->up))
			continue;
		k++;
	}
	if (needs_records(q) && k > 0) {
		qsort(rows, k, sizeof(*rows), name_cmp);
		m.rows = rows;
		m.n = k;
		m.i = 0;
		if (state_domain_list(ds->state, merge_rec, &m) == -1)
			rc = -1;
		for (i = j = 0; rc == 0 && i < k; i++)
			if (state_match(q, &rows[i]))
				rows[j++] = rows[i];
		k = j;
	}
	if (rc == 0 && needs_counts(q)) {
		if (k > DASH_COUNT_MAX)
			rc = -2;
		for (i = 0; rc == 0 && i < k; i++)
			if (row_full(ds, &rows[i], now, &v) == -1)
				rc = -1;
	}
	if (rc != 0) {
		free(rows);
		return rc;
	}
	if (k > 1) {
		/* qsort_r's context is not const. */
		struct dash_query qc = *q;

		qsort_r(rows, k, sizeof(*rows), row_cmp, &qc);
	}
	*rows_out = rows;
	*n_out = k;
	return 0;
}

/* A query string for a link: q's filter and state kept, sort, order and
 * page as given. */
static void
link_query(struct evbuffer *b, const struct dash_query *q,
    enum dash_sort sort, int desc, unsigned page)
{
	evbuffer_add_printf(b, "?sort=%s&amp;order=%s", dash_sort_name(sort),
	    desc ? "desc" : "asc");
	if (q->q[0] != '\0') {
		evbuffer_add_printf(b, "&amp;q=");
		html_url(b, q->q);
	}
	if (q->state != DASH_STATE_ALL)
		evbuffer_add_printf(b, "&amp;state=%s",
		    dash_state_name(q->state));
	if (page > 1)
		evbuffer_add_printf(b, "&amp;page=%u", page);
}

/* A column header: a link that sorts by it (again: the other way). Counts
 * and times start descending: the biggest, the oldest first. */
static void
th_sort(struct evbuffer *b, const struct dash_query *q, enum dash_sort s,
    const char *label, int num)
{
	int desc = num && s != DASH_SORT_OLDEST;

	if (q->sort == s)
		desc = !q->desc;
	evbuffer_add_printf(b, "<th%s><a href=\"/", num ? " class=\"n\"" : "");
	link_query(b, q, s, desc, 1);
	evbuffer_add_printf(b, "\">%s%s</a></th>", label, q->sort != s ? "" :
	    q->desc ? " \xe2\x96\xbe" : " \xe2\x96\xb4");
}

static void
stat_box(struct evbuffer *b, const char *cls, const char *label,
    const char *value)
{
	evbuffer_add_printf(b, "<div class=\"stat%s%s\"><b>%s</b><span>%s"
	    "</span></div>", cls[0] ? " " : "", cls, value, label);
}

static void
list_form(struct evbuffer *b, const struct dash_query *q)
{
	int i;

	evbuffer_add_printf(b, "<form method=\"get\" action=\"/\">"
	    "<input type=\"hidden\" name=\"sort\" value=\"%s\">"
	    "<input type=\"hidden\" name=\"order\" value=\"%s\">"
	    "<input type=\"search\" name=\"q\" size=\"28\" maxlength=\"%d\" "
	    "placeholder=\"domain contains\" value=\"",
	    dash_sort_name(q->sort), q->desc ? "desc" : "asc",
	    DASH_FILTER_MAX - 1);
	html_text(b, q->q);
	evbuffer_add_printf(b, "\"><select name=\"state\">");
	for (i = 0; i < DASH_STATE_N; i++)
		evbuffer_add_printf(b, "<option value=\"%s\"%s>%s</option>",
		    i == 0 ? "" : dash_state_name(i), (int)q->state == i ?
		    " selected" : "", i == 0 ? "any state" :
		    i == DASH_STATE_UP ? "primary up" : i == DASH_STATE_DOWN ?
		    "primary down" : dash_state_name(i));
	evbuffer_add_printf(b, "</select><button type=\"submit\">Filter"
	    "</button>");
	if (q->q[0] != '\0' || q->state != DASH_STATE_ALL)
		evbuffer_add_printf(b, " <a href=\"/\">clear</a>");
	evbuffer_add_printf(b, "</form>");
}

static void
list_row_html(struct evbuffer *b, const struct row *r,
    const struct domain_view *v, int64_t now)
{
	const char *lc = lifecycle_name(r->lifecycle);
	char a[32];

	evbuffer_add_printf(b, "<tr%s><td><a href=\"/domain/",
	    r->up ? "" : " class=\"isdown\"");
	html_url(b, r->d->name);
	evbuffer_add_printf(b, "\">");
	html_text(b, r->d->name);
	evbuffer_add_printf(b, "</a></td><td><span class=\"tag %s\">%s"
	    "</span></td>", lc, lc);
	if (r->up)
		evbuffer_add_printf(b, "<td class=\"up\">up</td>");
	else {
		evbuffer_add_printf(b, "<td class=\"down\" title=\"");
		html_text(b, v->rec.health_why);
		evbuffer_add_printf(b, "\">down</td>");
	}
	evbuffer_add_printf(b, "<td>");
	time_cell(b, r->since, now);
	evbuffer_add_printf(b, "</td><td class=\"n\">%zu</td><td class=\"n\">"
	    "%s</td><td>", r->queued, view_age(r->oldest, now, a, sizeof(a)));
	time_cell(b, r->delivery, now);
	evbuffer_add_printf(b, "</td><td class=\"n\">%zu</td><td class=\"n\">"
	    "%zu</td><td class=\"n\">%u</td></tr>", r->valid, r->invalid,
	    r->deferrals);
}

static void
list_row_json(struct json *j, const struct row *r,
    const struct domain_view *v)
{
	json_object(j);
	json_kstr(j, "domain", r->d->name);
	json_kstr_or_null(j, "lifecycle", domain_view_lifecycle(v));
	json_kstr(j, "health", r->up ? "up" : "down");
	json_ktime(j, "health_changed", r->since);
	json_kstr_or_null(j, "health_why", v->rec.health_why);
	json_kuint(j, "queued", r->queued);
	json_ktime(j, "oldest", r->oldest);
	json_ktime(j, "last_delivery", r->delivery);
	json_kuint(j, "valid", r->valid);
	json_kuint(j, "invalid", r->invalid);
	json_kuint(j, "deferrals_24h", r->deferrals);
	json_end(j);
}

static void
evb_write(void *arg, const char *p, size_t n)
{
	evbuffer_add(arg, p, n);
}

static void
error_page(struct dash *ds, struct evbuffer *b, int json, int code,
    const char *what, int64_t now, int *status)
{
	struct json j;

	*status = code;
	if (json) {
		json_init(&j, evb_write, b);
		json_object(&j);
		json_kstr(&j, "error", what);
		json_end(&j);
		json_raw(&j, "\n");
		return;
	}
	page_head(ds, b, "error", now);
	evbuffer_add_printf(b, "<h2>%d</h2><p>", code);
	html_text(b, what);
	evbuffer_add_printf(b, "</p><p><a href=\"/\">All domains</a></p>");
	page_foot(b, "/api/domains");
}

void
dash_render_list(struct dash *ds, const struct dash_query *q, int json,
    struct evbuffer *b, int64_t now, int *status)
{
	struct row *rows = NULL;
	struct domain_view v;
	struct totals t;
	struct json j;
	size_t n, i, first, last, pages;
	char s[32], a[32];
	int rc;

	if (ds->learn == NULL || ds->domains == NULL) {
		error_page(ds, b, json, 503, "starting", now, status);
		return;
	}
	if ((rc = gather(ds, q, now, &rows, &n, &t)) == -2) {
		char msg[160];

		snprintf(msg, sizeof(msg), "sorting by recipients reads every "
		    "domain's counts: narrow the list first with a name "
		    "filter (at most %d domains)", DASH_COUNT_MAX);
		error_page(ds, b, json, 400, msg, now, status);
		return;
	}
	if (rc == -1) {
		error_page(ds, b, json, 500, "state store error", now, status);
		return;
	}
	*status = 200;
	pages = n == 0 ? 1 : (n + DASH_PER_PAGE - 1) / DASH_PER_PAGE;
	first = (size_t)(q->page - 1) * DASH_PER_PAGE;
	last = first + DASH_PER_PAGE < n ? first + DASH_PER_PAGE : n;
	if (json) {
		json_init(&j, evb_write, b);
		json_object(&j);
		json_ktime(&j, "generated", now);
		json_kuint(&j, "domains_total", t.domains);
		json_kuint(&j, "domains_down", t.down);
		json_kuint(&j, "domains_refused", t.refused);
		json_kuint(&j, "queued_total", t.queued);
		json_ktime(&j, "oldest", t.oldest);
		json_kuint(&j, "matching", n);
		json_kuint(&j, "page", q->page);
		json_kuint(&j, "pages", pages);
		json_kuint(&j, "per_page", DASH_PER_PAGE);
		json_key(&j, "domains");
		json_array(&j);
	} else {
		page_head(ds, b, "domains", now);
		evbuffer_add_printf(b, "<div class=\"stats\">");
		snprintf(s, sizeof(s), "%zu", t.domains);
		stat_box(b, "", "domains", s);
		snprintf(s, sizeof(s), "%zu", t.down);
		stat_box(b, t.down ? "bad" : "", "primaries down", s);
		snprintf(s, sizeof(s), "%zu", t.refused);
		stat_box(b, t.refused ? "warn" : "", "refused", s);
		snprintf(s, sizeof(s), "%zu", t.queued);
		stat_box(b, "", "queued", s);
		stat_box(b, "", "oldest queued", view_age(t.oldest, now, a,
		    sizeof(a)));
		evbuffer_add_printf(b, "</div>");
		list_form(b, q);
		evbuffer_add_printf(b, "<table><thead><tr>");
		th_sort(b, q, DASH_SORT_DOMAIN, "Domain", 0);
		th_sort(b, q, DASH_SORT_LIFECYCLE, "Lifecycle", 0);
		th_sort(b, q, DASH_SORT_PRIMARY, "Primary", 0);
		th_sort(b, q, DASH_SORT_SINCE, "Since", 0);
		th_sort(b, q, DASH_SORT_QUEUED, "Queued", 1);
		th_sort(b, q, DASH_SORT_OLDEST, "Oldest", 1);
		th_sort(b, q, DASH_SORT_DELIVERY, "Last delivery", 0);
		th_sort(b, q, DASH_SORT_VALID, "Valid", 1);
		th_sort(b, q, DASH_SORT_INVALID, "Invalid", 1);
		th_sort(b, q, DASH_SORT_DEFERRALS, "Deferrals 24h", 1);
		evbuffer_add_printf(b, "</tr></thead><tbody>");
	}
	for (i = first; i < last; i++) {
		if (row_full(ds, &rows[i], now, &v) == -1)
			memset(&v, 0, sizeof(v));
		if (json)
			list_row_json(&j, &rows[i], &v);
		else
			list_row_html(b, &rows[i], &v, now);
	}
	if (json) {
		json_end(&j);
		json_end(&j);
		json_raw(&j, "\n");
	} else {
		if (first >= last)
			evbuffer_add_printf(b, "<tr><td colspan=\"10\" "
			    "class=\"muted\">No domain matches.</td></tr>");
		evbuffer_add_printf(b, "</tbody></table><nav class=\"pager\">");
		if (q->page > 1) {
			evbuffer_add_printf(b, "<a href=\"/");
			link_query(b, q, q->sort, q->desc, q->page - 1);
			evbuffer_add_printf(b, "\">&lsaquo; previous</a> ");
		}
		evbuffer_add_printf(b, "%zu domain%s%s, page %u of %zu", n,
		    n == 1 ? "" : "s", q->q[0] || q->state ? " match" : "",
		    q->page, pages);
		if (q->page < pages) {
			evbuffer_add_printf(b, " <a href=\"/");
			link_query(b, q, q->sort, q->desc, q->page + 1);
			evbuffer_add_printf(b, "\">next &rsaquo;</a>");
		}
		evbuffer_add_printf(b, "</nav>");
		page_foot(b, "/api/domains");
	}
	free(rows);
}

/* --- one domain ----------------------------------------------------------- */

static const char *
kind_name(int k)
{
	switch (k) {
	case HISTORY_PROBE_OK:
		return "up";
	case HISTORY_PROBE_FAILED:
		return "failed";
	case HISTORY_DELIVERED:
		return "delivered";
	case HISTORY_DEFERRED:
		return "deferred";
	case HISTORY_BOUNCED:
		return "bounced";
	}
	return "-";
}

/* What a queued message last heard in this domain: the pending
 * recipient's last reply there, else the message's last error. */
static const char *
msg_reply(const struct qdb_msg *m, const char *domain, size_t *nrcpt,
    const struct qdb_rcpt **first)
{
	const char *reply = NULL;
	size_t i;

	*nrcpt = 0;
	*first = NULL;
	for (i = 0; i < m->nrcpt; i++) {
		const struct qdb_rcpt *r = &m->rcpts[i];

		if (r->status != QDB_RCPT_PENDING ||
		    strcasecmp(r->addr.domain, domain) != 0)
			continue;
		if ((*nrcpt)++ == 0)
			*first = r;
		if (reply == NULL && r->last_reply[0] != '\0')
			reply = r->last_reply;
	}
	return reply != NULL ? reply : m->last_error;
}

struct qpage {
	size_t	total, pages, n;
	char	(*ids)[ENVELOPE_ID_MAX];
};

static void
dl_text(struct evbuffer *b, const char *dt, const char *s)
{
	evbuffer_add_printf(b, "<dt>%s</dt><dd>", dt);
	if (s == NULL || s[0] == '\0')
		evbuffer_add_printf(b, "<span class=\"muted\">-</span>");
	else
		html_text(b, s);
	evbuffer_add_printf(b, "</dd>");
}

static void
dl_time(struct evbuffer *b, const char *dt, int64_t t, int64_t now)
{
	evbuffer_add_printf(b, "<dt>%s</dt><dd>", dt);
	time_cell(b, t, now);
	evbuffer_add_printf(b, "</dd>");
}

/* One of the domain page's history tables (history.h), newest first. */
static void
events_html(struct evbuffer *b, const char *title,
    const struct history_event *ev, size_t n, int probes, const char *none,
    int64_t now)
{
	size_t i;

	evbuffer_add_printf(b, "<h3>%s</h3><table><thead><tr><th>When</th>%s"
	    "<th>Result</th><th>%s</th></tr></thead><tbody>", title, probes ?
	    "" : "<th>Queue id</th>", probes ? "Reason" : "Reply");
	for (i = 0; i < n; i++) {
		const struct history_event *e = &ev[i];
		int good = e->kind == HISTORY_DELIVERED ||
		    e->kind == HISTORY_PROBE_OK;
		int bad = e->kind == HISTORY_BOUNCED ||
		    e->kind == HISTORY_PROBE_FAILED;

		evbuffer_add_printf(b, "<tr><td>");
		time_cell(b, e->when, now);
		if (!probes) {
			evbuffer_add_printf(b, "</td><td class=\"mono\">");
			html_text(b, e->id);
		}
		evbuffer_add_printf(b, "</td><td class=\"%s\">%s</td>"
		    "<td class=\"mono reply\">", good ? "up" : bad ? "down" :
		    "", kind_name(e->kind));
		html_text(b, e->text);
		evbuffer_add_printf(b, "</td></tr>");
	}
	if (n == 0)
		evbuffer_add_printf(b, "<tr><td colspan=\"%d\" class=\"muted\">"
		    "%s</td></tr>", probes ? 3 : 4, none);
	evbuffer_add_printf(b, "</tbody></table>");
}

static void
domain_html(struct dash *ds, struct evbuffer *b, const struct domain_view *v,
    const struct history_view *h, const struct qpage *qp, unsigned page,
    int64_t now)
{
	struct qdb *qdb = queue_qdb(ds->queue);
	const char *lc = lifecycle_name(v->rec.lifecycle);
	char a[32], addr[ADDR_PATH_MAX + 1];
	size_t i;

	page_head(ds, b, v->d->name, now);
	evbuffer_add_printf(b, "<p><a href=\"/\">&lsaquo; all domains</a></p>"
	    "<h2>");
	html_text(b, v->d->name);
	evbuffer_add_printf(b, " <span class=\"tag %s\">%s</span> <span "
	    "class=\"%s\">primary %s</span></h2><div class=\"facts\"><dl>"
	    "<div class=\"h\">Primary</div>", lc, lc, v->up ? "up" : "down",
	    v->up ? "up" : "down");
	evbuffer_add_printf(b, "<dt>State</dt><dd class=\"%s\">%s</dd>",
	    v->up ? "up" : "down", v->up ? "up" : "down");
	dl_time(b, "Since", v->rec.health_changed, now);
	dl_text(b, "Last failure", v->rec.health_why);
	if (v->d->route_host[0] != '\0') {
		char r[300];

		snprintf(r, sizeof(r), "%s%s%s:%u", v->d->route_no_mx ? "[" :
		    "", v->d->route_host, v->d->route_no_mx ? "]" : "",
		    (unsigned)v->d->route_port);
		dl_text(b, "Route", r);
	} else
		dl_text(b, "Route", "its MX records");
	dl_time(b, "Last delivery", last_delivery(&v->rec, h->last_delivery),
	    now);
	evbuffer_add_printf(b, "<dt>Deferrals 24h</dt><dd>%u</dd>"
	    "<dt>Queued</dt><dd>%zu, oldest %s</dd></dl><dl>"
	    "<div class=\"h\">Domain</div>", h->deferrals_24h, v->queued,
	    view_age(v->oldest, now, a, sizeof(a)));
	dl_text(b, "Lifecycle", lc);
	dl_time(b, "Added", v->rec.added, now);
	dl_time(b, "First accepted", v->rec.first_accept, now);
	dl_time(b, "Last accepted", v->rec.last_accept, now);
	dl_text(b, "Accepted by", v->rec.accept_how);
	evbuffer_add_printf(b, "<dt>Recipients</dt><dd>%zu valid, %zu invalid"
	    "</dd></dl></div>", v->valid, v->invalid);

	evbuffer_add_printf(b, "<h3>Queued messages</h3><table><thead><tr>"
	    "<th>Queue id</th><th>Sender</th><th>Recipients here</th>"
	    "<th class=\"n\">Size</th><th class=\"n\">Age</th>"
	    "<th class=\"n\">Attempts</th><th>Next attempt</th>"
	    "<th>Last reply</th></tr></thead><tbody>");
	for (i = 0; i < qp->n; i++) {
		struct qdb_msg m;
		const struct qdb_rcpt *first;
		const char *reply;
		size_t nr;

		memset(&m, 0, sizeof(m));
		if (qdb_load(qdb, qp->ids[i], 0, &m) != 0) {
			qdb_msg_free(&m);
			continue;	/* delivered since the list was read */
		}
		reply = msg_reply(&m, v->d->name, &nr, &first);
		evbuffer_add_printf(b, "<tr><td class=\"mono\">");
		html_text(b, m.id);
		evbuffer_add_printf(b, "%s</td><td>", m.hold ? " (held)" : "");
		addr_format(&m.sender, addr, sizeof(addr));
		html_text(b, addr[0] ? addr : "<>");
		evbuffer_add_printf(b, "</td><td>");
		if (first != NULL) {
			addr_format(&first->addr, addr, sizeof(addr));
			html_text(b, addr);
			if (nr > 1)
				evbuffer_add_printf(b, " <span class=\"muted\">"
				    "+%zu</span>", nr - 1);
		}
		evbuffer_add_printf(b, "</td><td class=\"n\">%llu</td>"
		    "<td class=\"n\">%s</td><td class=\"n\">%u</td><td>",
		    (unsigned long long)m.size, view_age(m.arrival, now, a,
		    sizeof(a)), m.attempts);
		if (m.next_attempt > now)
			evbuffer_add_printf(b, "in %s", view_age(now,
			    m.next_attempt, a, sizeof(a)));
		else
			evbuffer_add_printf(b, "%s", v->up ? "now" :
			    "when the primary is back");
		evbuffer_add_printf(b, "</td><td class=\"mono reply\">");
		if (reply[0] != '\0')
			html_text(b, reply);
		else
			evbuffer_add_printf(b, "<span class=\"muted\">%s"
			    "</span>", m.attempts ? "-" : "not tried yet");
		evbuffer_add_printf(b, "</td></tr>");
		qdb_msg_free(&m);
	}
	if (qp->n == 0)
		evbuffer_add_printf(b, "<tr><td colspan=\"8\" class=\"muted\">"
		    "Nothing queued for this domain.</td></tr>");
	evbuffer_add_printf(b, "</tbody></table>");
	if (qp->pages > 1) {
		evbuffer_add_printf(b, "<nav class=\"pager\">");
		if (page > 1) {
			evbuffer_add_printf(b, "<a href=\"/domain/");
			html_url(b, v->d->name);
			evbuffer_add_printf(b, "?page=%u\">&lsaquo; previous"
			    "</a> ", page - 1);
		}
		evbuffer_add_printf(b, "%zu messages, page %u of %zu",
		    qp->total, page, qp->pages);
		if (page < qp->pages) {
			evbuffer_add_printf(b, " <a href=\"/domain/");
			html_url(b, v->d->name);
			evbuffer_add_printf(b, "?page=%u\">next &rsaquo;</a>",
			    page + 1);
		}
		evbuffer_add_printf(b, "</nav>");
	}

	events_html(b, "Recent delivery outcomes", h->outcomes, h->noutcomes,
	    0, "No delivery from the queue yet.", now);
	events_html(b, "Probes of the primary", h->probes, h->nprobes, 1,
	    "No probe yet: the primary is probed only while it is down.", now);
	page_foot(b, "/api/domains");
}

static void
events_json(struct json *j, const char *key, const struct history_event *e,
    size_t n, int probes)
{
	size_t i;

	json_key(j, key);
	json_array(j);
	for (i = 0; i < n; i++) {
		json_object(j);
		json_ktime(j, "time", e[i].when);
		json_kstr(j, "result", kind_name(e[i].kind));
		if (!probes) {
			json_kstr(j, "queue_id", e[i].id);
			json_kint(j, "code", e[i].code);
		}
		json_kstr_or_null(j, probes ? "reason" : "reply",
		    e[i].text[0] ? e[i].text : NULL);
		json_end(j);
	}
	json_end(j);
}

static void
domain_json(struct dash *ds, struct evbuffer *b, const struct domain_view *v,
    const struct history_view *h, const struct qpage *qp, unsigned page,
    int64_t now)
{
	struct qdb *qdb = queue_qdb(ds->queue);
	char addr[ADDR_PATH_MAX + 1];
	struct json j;
	size_t i, k;

	json_init(&j, evb_write, b);
	json_object(&j);
	json_kstr(&j, "domain", v->d->name);
	json_kstr_or_null(&j, "lifecycle", domain_view_lifecycle(v));
	json_kstr(&j, "health", v->up ? "up" : "down");
	json_ktime(&j, "health_changed", v->rec.health_changed);
	json_kstr_or_null(&j, "health_why", v->rec.health_why);
	json_kuint(&j, "valid", v->valid);
	json_kuint(&j, "invalid", v->invalid);
	json_kuint(&j, "queued", v->queued);
	json_ktime(&j, "oldest", v->oldest);
	json_ktime(&j, "added", v->rec.added);
	json_ktime(&j, "first_accept", v->rec.first_accept);
	json_ktime(&j, "last_accept", v->rec.last_accept);
	json_kstr_or_null(&j, "accept_how", v->rec.accept_how);
	json_ktime(&j, "last_delivery", last_delivery(&v->rec,
	    h->last_delivery));
	json_kuint(&j, "deferrals_24h", h->deferrals_24h);
	events_json(&j, "probes", h->probes, h->nprobes, 1);
	events_json(&j, "outcomes", h->outcomes, h->noutcomes, 0);
	json_key(&j, "queue");
	json_object(&j);
	json_kuint(&j, "total", qp->total);
	json_kuint(&j, "page", page);
	json_kuint(&j, "pages", qp->pages);
	json_kuint(&j, "per_page", DASH_MSGS_PER_PAGE);
	json_key(&j, "messages");
	json_array(&j);
	for (i = 0; i < qp->n; i++) {
		struct qdb_msg m;
		const struct qdb_rcpt *first;
		const char *reply;
		size_t nr;

		memset(&m, 0, sizeof(m));
		if (qdb_load(qdb, qp->ids[i], 0, &m) != 0) {
			qdb_msg_free(&m);
			continue;
		}
		reply = msg_reply(&m, v->d->name, &nr, &first);
		json_object(&j);
		json_kstr(&j, "queue_id", m.id);
		addr_format(&m.sender, addr, sizeof(addr));
		json_kstr(&j, "sender", addr);
		json_key(&j, "recipients");
		json_array(&j);
		for (k = 0; k < m.nrcpt; k++) {
			if (m.rcpts[k].status != QDB_RCPT_PENDING ||
			    strcasecmp(m.rcpts[k].addr.domain, v->d->name) != 0)
				continue;
			addr_format(&m.rcpts[k].addr, addr, sizeof(addr));
			json_string(&j, addr);
		}
		json_end(&j);
		json_kuint(&j, "size", m.size);
		json_ktime(&j, "arrival", m.arrival);
		json_kuint(&j, "attempts", m.attempts);
		json_ktime(&j, "next_attempt", m.next_attempt);
		json_kbool(&j, "hold", m.hold);
		json_kstr_or_null(&j, "last_reply", reply[0] ? reply : NULL);
		json_end(&j);
		qdb_msg_free(&m);
	}
	json_end(&j);
	json_end(&j);
	json_end(&j);
	json_raw(&j, "\n");
}

void
dash_render_domain(struct dash *ds, const char *name, unsigned page,
    int json, struct evbuffer *b, int64_t now, int *status)
{
	struct sched *sc;
	const struct domain *d;
	struct domain_view v;
	struct history_view h;
	struct qpage qp;

	if (ds->learn == NULL || ds->domains == NULL) {
		error_page(ds, b, json, 503, "starting", now, status);
		return;
	}
	if ((d = domains_lookup(ds->domains, name)) == NULL) {
		error_page(ds, b, json, 404, "not a customer domain", now,
		    status);
		return;
	}
	sc = queue_sched(ds->queue);
	if (domain_view_get(ds->state, ds->learn, sc, d, now, &v) == -1) {
		error_page(ds, b, json, 500, "state store error", now, status);
		return;
	}
	history_get(primary_health_history(sched_health(sc)), d->name, now,
	    &h);
	memset(&qp, 0, sizeof(qp));
	qp.total = v.queued;
	qp.pages = qp.total == 0 ? 1 : (qp.total + DASH_MSGS_PER_PAGE - 1) /
	    DASH_MSGS_PER_PAGE;
	qp.ids = xcalloc(DASH_MSGS_PER_PAGE, sizeof(*qp.ids));
	qp.n = sched_domain_ids(sc, d->name, (size_t)(page - 1) *
	    DASH_MSGS_PER_PAGE, qp.ids, DASH_MSGS_PER_PAGE);
	*status = 200;
	if (json)
		domain_json(ds, b, &v, &h, &qp, page, now);
	else
		domain_html(ds, b, &v, &h, &qp, page, now);
	free(qp.ids);
}

/* --- the routes ----------------------------------------------------------- */

struct dash *
dash_new(const char *myhostname, struct queue *q)
{
	struct dash *ds = xcalloc(1, sizeof(*ds));

	str_copy(ds->host, sizeof(ds->host), myhostname);
	ds->queue = q;
	return ds;
}

void
dash_free(struct dash *ds)
{
	free(ds);
}

void
dash_set_knowledge(struct dash *ds, struct learn *ln, struct state *st,
    const struct domains *d)
{
	if (ds == NULL)
		return;
	ds->learn = ln;
	ds->state = st;
	ds->domains = d;
}

/* The request's path and query, split; 0, or -1 (a 400). */
static int
request_parts(struct evhttp_request *req, char *path, size_t pathsz,
    char *query, size_t querysz)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *p, *q;

	if (u == NULL || (p = evhttp_uri_get_path(u)) == NULL)
		return -1;
	q = evhttp_uri_get_query(u);
	if (str_copy(path, pathsz, p) == -1 ||
	    str_copy(query, querysz, q != NULL ? q : "") == -1)
		return -1;
	return 0;
}

static void
answer(struct evhttp_request *req, int status, int json,
    struct evbuffer *b)
{
	http_send(req, status, json ? "application/json" :
	    "text/html; charset=utf-8", b);
}

static void
serve(struct dash *ds, struct evhttp_request *req, int json, int one)
{
	struct evbuffer *b = evbuffer_new();
	char path[512], query[DASH_QUERY_MAX + 2], err[80];
	struct dash_query q;
	const char *name;
	int64_t now = (int64_t)time(NULL);
	int status = 200;

	if (b == NULL) {
		http_send(req, 500, "text/plain", NULL);
		return;
	}
	if (request_parts(req, path, sizeof(path), query, sizeof(query)) ==
	    -1) {
		error_page(ds, b, json, 400, "bad request", now, &status);
		goto out;
	}
	if (dash_query_parse(query, &q, err, sizeof(err)) == -1) {
		error_page(ds, b, json, 400, err, now, &status);
		goto out;
	}
	if (!one) {
		if (strcmp(path, json ? "/api/domains" : "/") != 0)
			error_page(ds, b, json, 404, "no such page", now,
			    &status);
		else
			dash_render_list(ds, &q, json, b, now, &status);
		goto out;
	}
	/* /domain/NAME or /api/domain/NAME: a name is a few printable
	 * bytes, looked up in the table, never echoed unescaped. */
	name = path + strlen(json ? "/api/domain/" : "/domain/");
	if (q.sort != DASH_SORT_DOMAIN || q.desc || q.q[0] != '\0' ||
	    q.state != DASH_STATE_ALL)
		error_page(ds, b, json, 400, "only page= here", now, &status);
	else
		dash_render_domain(ds, name, q.page, json, b, now, &status);
out:
	answer(req, status, json, b);
	evbuffer_free(b);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	const struct dash_route *r = arg;

	serve(r->ds, req, r->json, r->one);
}

void
dash_routes(struct dash *ds, struct http *h)
{
	static const char *paths[DASH_ROUTES] = {
		"/", "/domain/", "/api/domains", "/api/domain/",
	};
	size_t i;

	for (i = 0; i < DASH_ROUTES; i++) {
		ds->routes[i].ds = ds;
		ds->routes[i].json = i >= 2;
		ds->routes[i].one = i % 2;
		/* The lists are exact paths, a domain's page a prefix. */
		http_route(h, paths[i], (int)(i % 2), on_request,
		    &ds->routes[i]);
	}
}
