/*
 * control: the UNIX control socket. See control.h for the protocol.
 * Every byte from the socket is bounded and checked although the peer is
 * local and authenticated: a fixed-size line, printable ASCII only, a
 * whitelist of words, ids and domains checked by shape.
 */
#define _GNU_SOURCE		/* struct ucred */
#include "control.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "addr.h"
#include "dname.h"
#include "domains.h"
#include "envelope.h"
#include "learn.h"
#include "log.h"
#include "str.h"
#include "qdb.h"
#include "queue.h"
#include "sched.h"
#include "state.h"
#include "xmem.h"

#define CONTROL_CONN_MAX	16	/* connections at once */
#define CONTROL_TIMEOUT		10	/* seconds to send the line */

struct control {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct queue		*queue;
	struct learn		*learn;		/* control_set_knowledge */
	struct state		*state;
	const struct domains	*domains;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t			 nconn;
};

struct conn {
	struct control		*ctl;
	struct bufferevent	*bev;
	int			 json;
	int			 pending;	/* waiting for the writer */
	int			 dead;		/* peer gone while pending */
	/* recipients add|delete, waiting for the state store's commit */
	char			 addr[STATE_ADDR_MAX];
	int			 rcpt_status;	/* add: STATE_RCPT_* */
	int			 deleted;	/* delete: it was there */
	int			 still_static;	/* delete: in recipients= */
};

/* Every string we answer with is bounded (addresses, QDB_TEXT_MAX texts,
 * paths). */
static void
json_str(struct evbuffer *b, const char *s)
{
	char q[6 * PATH_MAX + 3];

	evbuffer_add_printf(b, "%s", str_json(q, sizeof(q), s));
}

/* A JSON member after the first: ,"key":"s". */
static void
json_member(struct evbuffer *b, const char *key, const char *s)
{
	evbuffer_add_printf(b, ",\"%s\":", key);
	json_str(b, s);
}

/* Text output: control bytes shown as '?' so a peer's bytes in an error
 * text cannot move the operator's terminal. */
static void
text_str(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		evbuffer_add(b, c < 0x20 || c == 0x7f ? "?" : s, 1);
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
	size_t i;

	addr_str(&m->sender, a, sizeof(a));
	/* postqueue -j's names where they fit (REFERENCE.md §7). */
	evbuffer_add_printf(b, "{\"queue_name\":\"%s\",\"queue_id\":",
	    m->hold ? "hold" : "deferred");
	json_str(b, m->id);
	evbuffer_add_printf(b, ",\"arrival_time\":%lld,\"message_size\":%llu",
	    (long long)m->arrival, (unsigned long long)m->size);
	json_member(b, "sender", a);
	evbuffer_add_printf(b, ",\"hold\":%s,\"attempts\":%u,"
	    "\"last_attempt\":%lld,\"next_attempt\":%lld",
	    m->hold ? "true" : "false", m->attempts,
	    (long long)m->last_attempt, (long long)m->next_attempt);
	json_member(b, "last_error", m->last_error);
	if (detail) {
		evbuffer_add_printf(b, ",\"is_dsn\":%s",
		    m->is_dsn ? "true" : "false");
		json_member(b, "helo", m->helo);
		json_member(b, "client_addr", m->client_addr);
		json_member(b, "client_name", m->client_name);
		json_member(b, "protocol", m->proto);
		json_member(b, "body_file", m->big);
	}
	evbuffer_add_printf(b, ",\"recipients\":[");
	for (i = 0; i < m->nrcpt; i++) {
		const struct qdb_rcpt *r = &m->rcpts[i];

		addr_str(&r->addr, a, sizeof(a));
		evbuffer_add_printf(b, "%s{\"address\":", i ? "," : "");
		json_str(b, a);
		evbuffer_add_printf(b, ",\"status\":\"%s\",\"last_code\":%d,"
		    "\"delay_reason\":", rcpt_status(r->status),
		    r->last_code);
		json_str(b, r->last_reply);
		evbuffer_add(b, "}", 1);
	}
	evbuffer_add_printf(b, "]}\n");
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

struct listing {
	struct evbuffer	*out;
	int		 json;
	size_t		 n;
	uint64_t	 bytes;
};

static void
list_each(const struct qdb_msg *m, void *arg)
{
	struct listing *l = arg;

	l->n++;
	l->bytes += m->size;
	if (l->json)
		msg_json(m, l->out, 0);
	else
		msg_text(m, l->out);
}

int
control_queue_list(struct qdb *db, struct evbuffer *out, int json)
{
	struct listing l = { out, json, 0, 0 };

	if (qdb_scan(db, list_each, &l) == -1)
		return -1;
	if (!json) {
		if (l.n == 0)
			evbuffer_add_printf(out, "Mail queue is empty\n");
		else
			evbuffer_add_printf(out, "-- %llu Kbytes in %zu "
			    "Request%s.\n",
			    (unsigned long long)((l.bytes + 1023) / 1024),
			    l.n, l.n == 1 ? "" : "s");
	}
	return 0;
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

/* --- domains and recipients (DESIGN.md §2, docs/queue.md) ------------- */

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

/* A JSON time: Unix seconds, null for 0 ("none"). */
static void
json_time(struct evbuffer *b, const char *key, int64_t t)
{
	if (t == 0)
		evbuffer_add_printf(b, ",\"%s\":null", key);
	else
		evbuffer_add_printf(b, ",\"%s\":%lld", key, (long long)t);
}

/* A JSON text: null when empty. */
static void
json_text(struct evbuffer *b, const char *key, const char *s)
{
	if (s == NULL || s[0] == '\0')
		evbuffer_add_printf(b, ",\"%s\":null", key);
	else
		json_member(b, key, s);
}

/* An age for a column: "45s", "12m", "3h05m", "2d04h"; "-" for none. */
static const char *
age(int64_t since, int64_t now, char *buf, size_t bufsz)
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

/* Everything "domain list|show" says of one domain. */
struct dview {
	const struct domain	*d;
	struct state_domain	 rec;		/* all 0: no record */
	int			 live;		/* health, queue known */
	int			 up;
	size_t			 queued;
	time_t			 oldest;
	size_t			 valid, invalid;
};

/*
 * Live (learn != NULL, in the daemon): the record through learn_domain(),
 * which brings the lifecycle up to date (and may stage its write), health
 * and queue from the scheduler. Offline (backmxctl, daemon stopped): the
 * stored record as it is; health and queue unknown. 0 or -1.
 */
static int
dview_get(struct state *st, struct learn *ln, struct sched *sc,
    const struct domain *d, int64_t now, struct dview *v)
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
		v->up = sched_primary_up(sc, d->name);
		sched_domain_stats(sc, d->name, &v->queued, &v->oldest);
	}
	if (state_rcpt_count(st, d->name, now, &v->valid, &v->invalid) == -1)
		return -1;
	/* The static list counts as valid (an address in both the list
	 * and the store counts twice: docs/queue.md). */
	v->valid += domains_static_count(d);
	return 0;
}

/* "up", "down", or NULL when not known (offline). */
static const char *
dview_health(const struct dview *v)
{
	return v->live ? (v->up ? "up" : "down") : NULL;
}

/*
 * One field of "domain show": a "key: value" line, or with json a member
 * of its one-line document. NULL, "" and time 0 stand for nothing: "-"
 * in text, null in JSON; times are shown as in "queue show".
 */
static void
show_text(struct evbuffer *b, int json, const char *key, const char *s)
{
	if (json) {
		json_text(b, key, s);
		return;
	}
	evbuffer_add_printf(b, "%s: ", key);
	text_str(b, s != NULL && s[0] != '\0' ? s : "-");
	evbuffer_add(b, "\n", 1);
}

static void
show_time(struct evbuffer *b, int json, const char *key, int64_t t)
{
	char buf[32];

	if (json)
		json_time(b, key, t);
	else
		evbuffer_add_printf(b, "%s: %s\n", key,
		    when((time_t)t, buf, sizeof(buf)));
}

/* A count, or nothing when not 'known'. */
static void
show_count(struct evbuffer *b, int json, const char *key, int known,
    size_t n)
{
	if (!known)
		evbuffer_add_printf(b, json ? ",\"%s\":null" : "%s: -\n", key);
	else
		evbuffer_add_printf(b, json ? ",\"%s\":%zu" : "%s: %zu\n", key,
		    n);
}

static void
dview_show(const struct dview *v, struct evbuffer *b, int json)
{
	const struct state_domain *r = &v->rec;

	if (json) {
		evbuffer_add_printf(b, "{\"domain\":");
		json_str(b, v->d->name);
	} else
		evbuffer_add_printf(b, "domain: %s\n", v->d->name);
	show_text(b, json, "lifecycle", lifecycle_name(r->lifecycle));
	show_text(b, json, "health", dview_health(v));
	show_count(b, json, "valid", 1, v->valid);
	show_count(b, json, "invalid", 1, v->invalid);
	show_count(b, json, "queued", v->live, v->queued);
	show_time(b, json, "oldest", v->live ? (int64_t)v->oldest : 0);
	show_time(b, json, "added", r->added);
	show_time(b, json, "first_accept", r->first_accept);
	show_time(b, json, "last_accept", r->last_accept);
	show_text(b, json, "accept_how", r->accept_how);
	show_time(b, json, "health_changed", r->health_changed);
	show_text(b, json, "health_why", r->health_why);
	if (json)
		evbuffer_add_printf(b, "}\n");
}

int
control_domain_list(struct state *st, struct learn *ln, struct sched *sc,
    const struct domains *ds, struct evbuffer *out, int json, int64_t now)
{
	size_t n = domains_count(ds), i, w = strlen("DOMAIN"), refused = 0;
	struct dview *v;
	char a[32];
	int rc = 0;

	/* Whole first: the text columns are as wide as the longest name. */
	v = xcalloc(n ? n : 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		if (dview_get(st, ln, sc, domains_at(ds, i), now, &v[i]) ==
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
		    v[i].invalid, q, age(v[i].live ? (int64_t)v[i].oldest : 0,
		    now, a, sizeof(a)));
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
	struct dview v;

	if (dview_get(st, ln, sc, d, now, &v) == -1)
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
		evbuffer_add_printf(b, "{\"address\":");
		json_str(b, addr);
		evbuffer_add_printf(b, ",\"status\":\"%s\",\"source\":\"%s\"",
		    status, source);
		json_time(b, "first_seen", first);
		json_time(b, "last_seen", last);
		json_time(b, "expires", expires);
		json_text(b, "why", why);
		evbuffer_add_printf(b, "}\n");
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

/* A queue id: letters and digits, as envelope.c makes them. */
static int
valid_id(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= ENVELOPE_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

static void
conn_free(struct conn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->ctl->nconn--;
	free(c);
}

static void	event_cb(struct bufferevent *, short, void *);

static void
written_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

/* The answer: status line, then 'body' (may be NULL); close when sent. */
static void
answer(struct conn *c, const char *status, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	bufferevent_disable(c->bev, EV_READ);
	evbuffer_add_printf(out, "%s\n", status);
	if (body != NULL)
		evbuffer_add_buffer(out, body);
	bufferevent_setcb(c->bev, NULL, written_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
	written_cb(c->bev, c);
}

/* The answer to a read: "ok" and 'b', rendered by rc 0, or 'store''s
 * read error for rc -1. Frees b. */
static void
answer_read(struct conn *c, int rc, struct evbuffer *b, const char *store)
{
	char status[128];

	if (rc == -1) {
		snprintf(status, sizeof(status), "error io %s could not be "
		    "read", store);
		answer(c, status, NULL);
	} else
		answer(c, "ok", b);
	evbuffer_free(b);
}

/* The commit of c's change came back: 0 when c is to get its "ok" now,
 * -1 when c is gone or was answered 'store''s commit error. */
static int
committed(struct conn *c, int ok, const char *store)
{
	char status[128];

	c->pending = 0;
	if (c->dead) {
		conn_free(c);
		return -1;
	}
	if (!ok) {
		snprintf(status, sizeof(status), "error io %s could not "
		    "commit the change", store);
		answer(c, status, NULL);
		return -1;
	}
	return 0;
}

static void
admin_cb(enum queue_result r, const char *id, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *b;

	if (committed(c, r == QUEUE_OK, "the queue database") == -1)
		return;
	b = evbuffer_new();
	if (c->json) {
		evbuffer_add_printf(b, "{\"queue_id\":");
		json_str(b, id);
		evbuffer_add_printf(b, ",\"result\":\"ok\"}\n");
	}
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* Split 'line' at single spaces into at most 'max' words. -1 if more. */
static int
words(char *line, char **w, int max)
{
	int n = 0;
	char *p;

	while ((p = strsep(&line, " ")) != NULL) {
		if (*p == '\0')
			return -1;
		if (n == max)
			return -1;
		w[n++] = p;
	}
	return n;
}

/* "queue list|show|flush|delete|hold|release [ARG]" */
static void
queue_request(struct conn *c, char **w, int n)
{
	struct queue *q = c->ctl->queue;
	struct evbuffer *b;
	int rc;
	enum queue_admin op;

	if (strcmp(w[1], "list") == 0 && n == 2) {
		b = evbuffer_new();
		answer_read(c, control_queue_list(queue_qdb(q), b, c->json),
		    b, "the queue database");
		return;
	}
	if (strcmp(w[1], "show") == 0 && n == 3) {
		struct qdb_msg m;

		if (!valid_id(w[2])) {
			answer(c, "error usage not a queue id", NULL);
			return;
		}
		memset(&m, 0, sizeof(m));
		if ((rc = qdb_load(queue_qdb(q), w[2], 0, &m)) == 1) {
			answer(c, "error notfound no such message", NULL);
			return;
		}
		b = evbuffer_new();
		if (rc == 0)
			control_queue_show(&m, b, c->json);
		answer_read(c, rc, b, "the queue database");
		qdb_msg_free(&m);
		return;
	}
	if (strcmp(w[1], "flush") == 0 && (n == 2 || n == 3)) {
		if (n == 3 && !dname_valid(w[2], 0)) {
			answer(c, "error usage not a domain name", NULL);
			return;
		}
		if ((rc = queue_flush_domain(q, n == 3 ? w[2] : NULL)) == -1) {
			answer(c, "error domain not a customer domain", NULL);
			return;
		}
		b = evbuffer_new();
		if (c->json)
			evbuffer_add_printf(b, "{\"flushed\":%d}\n", rc);
		else
			evbuffer_add_printf(b, "%d message%s made due\n", rc,
			    rc == 1 ? "" : "s");
		answer(c, "ok", b);
		evbuffer_free(b);
		return;
	}
	if (strcmp(w[1], "delete") == 0)
		op = QUEUE_ADMIN_DELETE;
	else if (strcmp(w[1], "hold") == 0)
		op = QUEUE_ADMIN_HOLD;
	else if (strcmp(w[1], "release") == 0)
		op = QUEUE_ADMIN_RELEASE;
	else {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	if (n != 3 || !valid_id(w[2])) {
		answer(c, "error usage not a queue id", NULL);
		return;
	}
	c->pending = 1;
	if (queue_admin(q, op, w[2], admin_cb, c) == -1) {
		c->pending = 0;
		answer(c, "error notfound no such message", NULL);
	}
}

/* A DOMAIN argument: by shape, then one of domains_file's. NULL with the
 * answer sent when it is not. */
static const struct domain *
customer_domain(struct conn *c, char *name)
{
	const struct domain *d;

	if (!dname_valid(name, 0)) {
		answer(c, "error usage not a domain name", NULL);
		return NULL;
	}
	str_lower(name);
	if ((d = domains_lookup(c->ctl->domains, name)) == NULL) {
		answer(c, "error domain not a customer domain", NULL);
		return NULL;
	}
	return d;
}

/*
 * An ADDRESS argument, parsed as the RFC 5321 path "<ADDRESS>" (no <>,
 * no Postmaster, no address literal, ASCII only: read_cb let nothing
 * else in), into the lower-case key "local@domain" of key_out
 * (STATE_ADDR_MAX bytes) and its domain part. -1 with the answer sent.
 */
static int
rcpt_arg(struct conn *c, const char *arg, char *key_out,
    const char **domain_out)
{
	char path[ADDR_PATH_MAX + 1];
	struct mailaddr a;
	size_t len = strlen(arg), used;

	if (len + 2 > ADDR_PATH_MAX ||
	    (size_t)snprintf(path, sizeof(path), "<%s>", arg) != len + 2 ||
	    addr_parse_path(path, len + 2, 0, &a, &used) != ADDR_OK ||
	    used != len + 2 || a.domain[0] == '\0' || a.is_literal)
		goto bad;
	learn_key(key_out, STATE_ADDR_MAX, a.local, a.domain);
	if (key_out[0] == '\0')
		goto bad;
	*domain_out = strrchr(key_out, '@') + 1;
	return 0;
bad:
	answer(c, "error address not an RFC 5321 address (local@domain)",
	    NULL);
	return -1;
}

/* "domain list" and "domain show DOMAIN". */
static void
domain_request(struct conn *c, char **w, int n)
{
	struct control *ctl = c->ctl;
	const struct domain *d;
	struct evbuffer *b;
	int rc;

	if (strcmp(w[1], "list") == 0 && n == 2) {
		b = evbuffer_new();
		rc = control_domain_list(ctl->state, ctl->learn,
		    queue_sched(ctl->queue), ctl->domains, b, c->json,
		    (int64_t)time(NULL));
	} else if (strcmp(w[1], "show") == 0 && n == 3) {
		if ((d = customer_domain(c, w[2])) == NULL)
			return;
		b = evbuffer_new();
		rc = control_domain_show(ctl->state, ctl->learn,
		    queue_sched(ctl->queue), d, b, c->json,
		    (int64_t)time(NULL));
	} else {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	answer_read(c, rc, b, "the state store");
}

/* The state store committed (or not) a "recipients add|delete". */
static void
rcpt_committed(int rc, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *b;

	if (committed(c, rc != -1, "the state store") == -1)
		return;
	b = evbuffer_new();
	if (c->json) {
		evbuffer_add_printf(b, "{\"address\":");
		json_str(b, c->addr);
		if (c->deleted)
			evbuffer_add_printf(b, ",\"deleted\":true");
		else
			evbuffer_add_printf(b, ",\"status\":\"%s\"",
			    rcpt_status_name(c->rcpt_status));
		evbuffer_add_printf(b, ",\"result\":\"ok\"}\n");
	} else if (c->deleted)
		evbuffer_add_printf(b, "%s deleted%s\n", c->addr,
		    c->still_static ? " (still valid: it is in the domain's "
		    "recipients= list)" : "");
	else
		evbuffer_add_printf(b, "%s added as %s\n", c->addr,
		    rcpt_status_name(c->rcpt_status));
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* "recipients list DOMAIN", "recipients add ADDRESS valid|invalid",
 * "recipients delete ADDRESS". Writes are staged in the loop turn's
 * transaction; the answer waits for its commit. */
static void
rcpt_request(struct conn *c, char **w, int n)
{
	struct control *ctl = c->ctl;
	const struct domain *d;
	const char *dom;
	struct evbuffer *b;
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (strcmp(w[1], "list") == 0 && n == 3) {
		if ((d = customer_domain(c, w[2])) == NULL)
			return;
		b = evbuffer_new();
		answer_read(c, control_rcpt_list(ctl->state, d, b, c->json,
		    now), b, "the state store");
		return;
	}
	if (strcmp(w[1], "add") == 0 && (n == 3 || n == 4)) {
		if (n == 4 && strcmp(w[3], "valid") == 0)
			c->rcpt_status = STATE_RCPT_VALID;
		else if (n == 4 && strcmp(w[3], "invalid") == 0)
			c->rcpt_status = STATE_RCPT_INVALID;
		else if (n == 3)
			c->rcpt_status = STATE_RCPT_VALID;
		else {
			answer(c, "error usage the status is valid or invalid",
			    NULL);
			return;
		}
		if (rcpt_arg(c, w[2], c->addr, &dom) == -1)
			return;
		/* Relay control's rule (STYLE.md §1.3) for what we learn:
		 * only addresses of our domains. learn_rcpt_add() checks
		 * it again against its own copy of the table. */
		if (domains_lookup(ctl->domains, dom) == NULL ||
		    (rc = learn_rcpt_add(ctl->learn, c->addr, c->rcpt_status,
		    now)) == -2) {
			answer(c, "error domain not a customer domain", NULL);
			return;
		}
	} else if (strcmp(w[1], "delete") == 0 && n == 3) {
		/* Any domain: rows of a domain since removed from
		 * domains_file can be cleaned up too. */
		if (rcpt_arg(c, w[2], c->addr, &dom) == -1)
			return;
		if ((rc = state_rcpt_delete(ctl->state, c->addr)) == 0) {
			answer(c, "error notfound no such recipient in the "
			    "state store", NULL);
			return;
		}
		if (rc == 1) {
			c->deleted = 1;
			d = domains_lookup(ctl->domains, dom);
			c->still_static = d != NULL &&
			    domains_static_rcpt(d, c->addr);
			rc = 0;
		}
	} else {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	if (rc == -1) {
		answer(c, "error io the state store could not stage the "
		    "change", NULL);
		return;
	}
	c->pending = 1;
	state_commit_wait(ctl->state, rcpt_committed, c);
}

static void
request(struct conn *c, char *line)
{
	char *w[5];
	int n;

	/* The trailing "json" is no word of the request proper. */
	if ((n = words(line, w, 5)) > 0 && strcmp(w[n - 1], "json") == 0) {
		c->json = 1;
		n--;
	}
	if (n < 2) {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	log_info("event=control request=\"%s %s%s%s\"", w[0], w[1],
	    n > 2 ? " " : "", n > 2 ? w[2] : "");
	if (strcmp(w[0], "queue") == 0 && n <= 3)
		queue_request(c, w, n);
	else if (strcmp(w[0], "domain") == 0 || strcmp(w[0], "recipients") ==
	    0) {
		if (c->ctl->learn == NULL || c->ctl->state == NULL ||
		    c->ctl->domains == NULL) {
			answer(c, "error io domain knowledge is not available "
			    "in this daemon", NULL);
			return;
		}
		if (w[0][0] == 'd')
			domain_request(c, w, n);
		else
			rcpt_request(c, w, n);
	} else
		answer(c, "error usage unknown request", NULL);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr p;
	size_t eol, i;
	char line[CONTROL_LINE_MAX + 2];

	p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			answer(c, "error usage request line too long", NULL);
		return;
	}
	if ((size_t)p.pos > CONTROL_LINE_MAX) {
		answer(c, "error usage request line too long", NULL);
		return;
	}
	/* One request per connection: nothing more is read, so a second
	 * line cannot start a second change while the first one waits for
	 * its commit (a peer gone meanwhile shows when the answer is
	 * written). */
	bufferevent_disable(bev, EV_READ);
	evbuffer_remove(in, line, (size_t)p.pos);
	line[p.pos] = '\0';
	for (i = 0; i < (size_t)p.pos; i++)
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] > 0x7e) {
			answer(c, "error usage bad byte in request", NULL);
			return;
		}
	request(c, line);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (c->pending) {
		/* The writer's answer comes later; it frees c then. */
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->dead = 1;
		return;
	}
	conn_free(c);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { CONTROL_TIMEOUT, 0 };
	struct conn *c;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    len != sizeof(cred) ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("event=control_refused uid=%ld",
		    len == sizeof(cred) ? (long)cred.uid : -1L);
		close(fd);
		return;
	}
	if (ctl->nconn >= CONTROL_CONN_MAX) {
		log_warn("event=control_refused reason=too_many");
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	ctl->nconn++;
	if ((c->bev = bufferevent_socket_new(ctl->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		conn_free(c);
		return;
	}
	/* Never hold more than one line (and its end) of input. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 2);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
}

/* Does something accept connections on this socket path? */
static int
socket_alive(const struct sockaddr_un *sun)
{
	int fd, alive;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return alive;
}

struct control *
control_open(struct event_base *base, const char *path, struct queue *q,
    char *err, size_t errsz)
{
	struct control *ctl;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "control_socket %s: path too long", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsz, "control_socket %s: exists and "
			    "is not a socket", path);
			return NULL;
		}
		/* A stale socket of an earlier run, unless a daemon still
		 * answers on it: then this one must not take it over. */
		if (socket_alive(&sun)) {
			snprintf(err, errsz, "control_socket %s: another "
			    "backmxd is listening there", path);
			return NULL;
		}
		if (unlink(path) == -1) {
			snprintf(err, errsz, "control_socket %s: %s", sun.sun_path,
			    strerror(errno));
			return NULL;
		}
	}
	/* The folder, one level (e.g. /run/backmx, which a tmpfs /run
	 * loses at every boot). */
	{
		char dir[sizeof(sun.sun_path)];
		char *slash;

		memcpy(dir, path, strlen(path) + 1);
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
				snprintf(err, errsz, "control_socket %s: %s",
				    dir, strerror(errno));
				return NULL;
			}
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errsz, "control_socket: %s", strerror(errno));
		return NULL;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, errsz, "control_socket %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	if (chmod(path, 0600) == -1) {
		snprintf(err, errsz, "control_socket %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->base = base;
	ctl->queue = q;
	memcpy(ctl->path, path, strlen(path) + 1);
	if ((ctl->lev = evconnlistener_new(base, accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd)) == NULL) {
		snprintf(err, errsz, "control_socket %s: cannot listen",
		    sun.sun_path);
		close(fd);
		unlink(path);
		free(ctl);
		return NULL;
	}
	return ctl;
}

void
control_set_knowledge(struct control *ctl, struct learn *ln,
    struct state *st, const struct domains *ds)
{
	ctl->learn = ln;
	ctl->state = st;
	ctl->domains = ds;
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	evconnlistener_free(ctl->lev);
	unlink(ctl->path);
	/* Connections still open are cut at exit with the loop. */
	free(ctl);
}
