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
#include <sys/queue.h>
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
#include "cluster.h"
#include "dname.h"
#include "domains.h"
#include "envelope.h"
#include "learn.h"
#include "log.h"
#include "looplag.h"
#include "str.h"
#include "qdb.h"
#include "queue.h"
#include "sched.h"
#include "state.h"
#include "view.h"
#include "xmem.h"

#define CONTROL_CONN_MAX	16	/* connections at once */
#define CONTROL_TIMEOUT		10	/* seconds to send the line */
/* queue list goes out as the peer takes it (issue 16: a million queued
 * messages are not rendered whole in memory): a page of messages each
 * time the unsent answer drops under the low-water mark. */
#define CONTROL_LIST_PAGE	256
#define CONTROL_LIST_LOWAT	(64 * 1024)

struct control {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct event		*ev_resume;	/* accepting paused */
	struct queue		*queue;
	struct learn		*learn;		/* control_set_knowledge */
	struct state		*state;
	const struct domains	*domains;
	struct cluster		*cluster;	/* control_set_cluster */
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t			 nconn;
	TAILQ_HEAD(, conn)	 conns;
	time_t			 started;	/* for "status" */
};

struct conn {
	TAILQ_ENTRY(conn)	 link;
	struct control		*ctl;
	struct bufferevent	*bev;
	int			 json;
	int			 pending;	/* waiting for the writer */
	int			 dead;		/* peer gone while pending */
	struct queue_listing	*list;		/* queue list being sent */
	/* recipients add|delete, waiting for the state store's commit */
	char			 addr[STATE_ADDR_MAX];
	int			 rcpt_status;	/* add: STATE_RCPT_* */
	int			 deleted;	/* delete: it was there */
	int			 still_static;	/* delete: in recipients= */
	/* greylist allow|delete, waiting for the same commit */
	char			 value[STATE_ADDR_MAX];	/* allow: as given */
	int			 grey_added;	/* allow: a new entry */
	int			 grey_deleted;	/* delete: rows, or -1 */
	int			 share;		/* an allow entry: the cluster's */
	struct cluster_op	*op;		/* asking Redis: cluster status,
						   a forget, an allow's sync */
};

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
	control_queue_list_free(c->list);
	c->ctl->nconn--;
	TAILQ_REMOVE(&c->ctl->conns, c, link);
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
	view_queue_changed(b, c->json, id);
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* The unsent part of a queue list is small: the next page. */
static void
list_more(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);
	int rc;

	if (evbuffer_get_length(out) > CONTROL_LIST_LOWAT)
		return;
	if ((rc = control_queue_list_page(c->list, out, CONTROL_LIST_PAGE)) ==
	    1)
		return;
	/* The "ok" went out with the first page: a read error later can
	 * only cut the list short (the text trailer is missing then). */
	if (rc == -1)
		log_err("event=control_error request=\"queue list\" "
		    "error=\"the queue database could not be read\"");
	control_queue_list_free(c->list);
	c->list = NULL;
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_setcb(bev, NULL, written_cb, event_cb, c);
	written_cb(bev, c);
}

/* "queue list": the first page decides the status line (a database that
 * cannot be read is answered as such); the rest follows as it drains. */
static void
list_start(struct conn *c)
{
	struct evbuffer *b = evbuffer_new(), *out;
	int rc;

	c->list = control_queue_list_new(queue_qdb(c->ctl->queue), c->json);
	if ((rc = control_queue_list_page(c->list, b, CONTROL_LIST_PAGE)) !=
	    1) {
		control_queue_list_free(c->list);
		c->list = NULL;
		answer_read(c, rc, b, "the queue database");
		return;
	}
	out = bufferevent_get_output(c->bev);
	bufferevent_disable(c->bev, EV_READ);
	evbuffer_add_printf(out, "ok\n");
	evbuffer_add_buffer(out, b);
	evbuffer_free(b);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONTROL_LIST_LOWAT, 0);
	bufferevent_setcb(c->bev, NULL, list_more, event_cb, c);
	bufferevent_enable(c->bev, EV_WRITE);
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
		list_start(c);
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

/* A write staged in the loop turn's transaction (rc 0), or not (-1):
 * the answer waits for the commit (cb), or says so now. */
static void
staged(struct conn *c, struct state *st, int rc, state_commit_cb *cb)
{
	if (rc == -1) {
		answer(c, "error io the state store could not stage the "
		    "change", NULL);
		return;
	}
	c->pending = 1;
	state_commit_wait(st, cb, c);
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
	view_rcpt_changed(b, c->json, c->addr, c->deleted, c->still_static,
	    c->rcpt_status);
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
		/* Relay control's rule (docs/principles.md §1.3) for what we
		 * learn: only addresses of our domains. learn_rcpt_add() checks
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
	staged(c, ctl->state, rc, rcpt_committed);
}

int
control_word_encode(const char *s, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch > ' ' && ch < 0x7f && ch != '%') {
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char)ch;
			continue;
		}
		if (o + 3 >= outsz)
			return -1;
		out[o++] = '%';
		out[o++] = hex[ch >> 4];
		out[o++] = hex[ch & 0x0f];
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
control_word_decode(const char *w, char *out, size_t outsz)
{
	size_t o = 0;
	int hi, lo;

	for (; *w != '\0'; w++) {
		char ch = *w;

		if (ch == '%') {
			if ((hi = hexval(w[1])) == -1 ||
			    (lo = hexval(w[2])) == -1 || (hi | lo) == 0)
				return -1;
			ch = (char)(hi << 4 | lo);
			w += 2;
		}
		if (o + 1 >= outsz)
			return -1;
		out[o++] = ch;
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

/* "<ADDR>" or "<>", decoded, without its brackets, into out. */
static int
bracketed_arg(const char *w, char *out, size_t outsz)
{
	size_t n;

	if (control_word_decode(w, out, outsz) == -1)
		return -1;
	n = strlen(out);
	if (n < 2 || out[0] != '<' || out[n - 1] != '>')
		return -1;
	memmove(out, out + 1, n - 2);
	out[n - 2] = '\0';
	return 0;
}

/* A "greylist allow|delete" or a "bulk allow|forget" committed (ok 1)
 * or not; alone 1: the cluster did not hear of it (yet). */
static void
grey_answer(struct conn *c, int ok, int alone)
{
	struct evbuffer *b;

	if (committed(c, ok, "the state store") == -1)
		return;
	if (alone) {
		answer(c, "error io changed on this node only: Redis did not "
		    "answer; the other nodes get it once it does", NULL);
		return;
	}
	b = evbuffer_new();
	if (c->grey_deleted >= 0)
		view_greylist_deleted(b, c->json, c->grey_deleted);
	else
		view_greylist_allowed(b, c->json, c->value, c->grey_added);
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* The cluster's sync after the change ended (docs/cluster.md "Allow
 * entries"). */
static void
allow_shared(int rc, void *arg)
{
	struct conn *c = arg;

	c->op = NULL;
	grey_answer(c, 1, rc == -1);
}

/* The state store committed (or not) a "greylist allow|delete" or a
 * "bulk allow|forget": an allow entry goes to the other nodes then,
 * even when the client has gone (the operator asked for it). */
static void
grey_committed(int rc, void *arg)
{
	struct conn *c = arg;

	if (rc != -1 && c->share && c->ctl->cluster != NULL) {
		c->pending = 1;
		c->op = cluster_allow_share(c->ctl->cluster, allow_shared, c);
		return;
	}
	grey_answer(c, rc != -1, 0);
}

/*
 * "greylist allow VALUE", "greylist delete KEY", "greylist delete NET
 * <SENDER> <RCPT>": the operator's writes, on the daemon's own store, so
 * the next RCPT's check sees them. Staged in the loop turn's transaction
 * and answered once it committed, as "recipients add" is.
 */
static void
greylist_request(struct conn *c, char **w, int n)
{
	struct state *st = c->ctl->state;
	char err[256], status[320], net[STATE_NET_MAX];
	char sender[STATE_ADDR_MAX + 2], rcpt[STATE_ADDR_MAX + 2];
	int rc;

	c->grey_deleted = -1;
	if (strcmp(w[1], "allow") == 0 && n == 3) {
		if (control_word_decode(w[2], c->value, sizeof(c->value)) ==
		    -1) {
			answer(c, "error value not an address, network or "
			    "domain", NULL);
			return;
		}
		rc = state_allow_add(st, state_allow_kind_of(c->value),
		    c->value, (int64_t)time(NULL), err, sizeof(err));
		if (rc == -2) {
			snprintf(status, sizeof(status), "error value %s",
			    err);
			answer(c, status, NULL);
			return;
		}
		c->grey_added = rc == 0;
		c->share = 1;
	} else if (strcmp(w[1], "delete") == 0 && (n == 3 || n == 5)) {
		if (control_word_decode(w[2], c->value, sizeof(c->value)) ==
		    -1 || (n == 5 && (strlen(c->value) >= sizeof(net) ||
		    bracketed_arg(w[3], sender, sizeof(sender)) == -1 ||
		    bracketed_arg(w[4], rcpt, sizeof(rcpt)) == -1))) {
			answer(c, "error value not a greylist key", NULL);
			return;
		}
		if (n == 5) {
			memcpy(net, c->value, strlen(c->value) + 1);
			rc = state_delete(st, net, sender, rcpt,
			    (int64_t)time(NULL));
		} else
			rc = state_delete(st, c->value, NULL, NULL,
			    (int64_t)time(NULL));
		if (rc == 0) {
			answer(c, "error notfound nothing in the greylist "
			    "store has that key", NULL);
			return;
		}
		c->grey_deleted = rc;
		c->share = n == 3;	/* maybe an allow entry */
	} else {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	staged(c, st, rc, grey_committed);
}

/* "status": read-only, answered at once. */
static void
status_request(struct conn *c)
{
	struct looplag_stats l;
	struct evbuffer *b = evbuffer_new();

	looplag_read(&l);
	view_status(b, c->json, (long)getpid(), (int64_t)(time(NULL) -
	    c->ctl->started), c->ctl->domains != NULL ?
	    domains_count(c->ctl->domains) : 0, &l);
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* Redis answered (or not) the nodes of a "cluster status". */
static void
cluster_cb(const struct cluster_status *s, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *b;

	c->op = NULL;
	if (committed(c, 1, "Redis") == -1)
		return;
	b = evbuffer_new();
	view_cluster_status(b, c->json, s, (int64_t)time(NULL));
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* "cluster status": the counters now, the nodes from Redis within
 * redis_timeout (a Redis that is down answers at once). */
static void
cluster_request(struct conn *c, char **w, int n)
{
	if (n != 2 || strcmp(w[1], "status") != 0) {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	if (c->ctl->cluster == NULL) {
		answer(c, "error notfound no cluster: redis_servers and "
		    "redis_sentinels are empty", NULL);
		return;
	}
	c->pending = 1;
	c->op = cluster_status(c->ctl->cluster, cluster_cb, c);
}

/* Redis answered a cluster-wide "bulk forget DIGEST" (or did not). */
static void
bulk_forgot(int rc, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *b;

	c->op = NULL;
	if (committed(c, 1, "Redis") == -1)
		return;
	if (rc == CLUSTER_FORGET_FAILED || rc == CLUSTER_FORGET_UNSURE) {
		answer(c, rc == CLUSTER_FORGET_UNSURE ? "error io Redis did "
		    "not answer in time: the other nodes may still remember "
		    "it, run it again" : c->grey_deleted > 0 ? "error io "
		    "forgotten on this node only: Redis is not reachable, "
		    "run it again" : "error io Redis is not reachable, run "
		    "it again", NULL);
		return;
	}
	if (c->grey_deleted == 0 && rc == 0) {
		answer(c, "error notfound no such bulk digest or allow entry",
		    NULL);
		return;
	}
	b = evbuffer_new();
	view_greylist_deleted(b, c->json, 1);
	answer(c, "ok", b);
	evbuffer_free(b);
}

/* This node forgot the digest (or had none): now Redis and, through it,
 * the other nodes (docs/cluster.md "Bulk counts"). Even when the client
 * has gone: the operator asked for it. */
static void
bulk_forget_committed(int rc, void *arg)
{
	struct conn *c = arg;

	if (rc != -1) {
		c->pending = 1;
		c->op = cluster_bulk_forget(c->ctl->cluster, c->value,
		    bulk_forgot, c);
		return;
	}
	(void)committed(c, 0, "the state store");
}

/*
 * "bulk allow VALUE": a client network, sender domain or sender address
 * never counted; "bulk allow-recipient VALUE": a recipient address or
 * domain never counted;
 * "bulk forget DIGEST|VALUE": a digest no longer bulk, counting from 0,
 * or an allow entry gone (docs/bulk.md §6). On the daemon's own store,
 * answered once committed; a digest in a cluster, once Redis forgot it
 * too.
 */
static void
bulk_request(struct conn *c, char **w, int n)
{
	struct state *st = c->ctl->state;
	char err[256], status[320];
	int rc;

	c->grey_deleted = -1;
	if (n != 3 || control_word_decode(w[2], c->value, sizeof(c->value)) ==
	    -1) {
		answer(c, n != 3 ? "error usage unknown request" :
		    "error value not a digest, address, network or domain",
		    NULL);
		return;
	}
	if (strcmp(w[1], "allow") == 0 ||
	    strcmp(w[1], "allow-recipient") == 0) {
		rc = state_bulk_allow_add(st, strcmp(w[1], "allow") == 0 ?
		    state_allow_kind_of(c->value) : STATE_ALLOW_RECIPIENT,
		    c->value, (int64_t)time(NULL), err, sizeof(err));
		if (rc == -2) {
			snprintf(status, sizeof(status), "error value %s",
			    err);
			answer(c, status, NULL);
			return;
		}
		c->grey_added = rc == 0;
		c->share = 1;
	} else if (strcmp(w[1], "forget") == 0) {
		/* 32 hex digits: a digest; anything else: an allow entry. */
		if (strlen(c->value) == 32 &&
		    strspn(c->value, "0123456789abcdef") == 32) {
			rc = state_bulk_forget(st, c->value);
			if (rc != -1 && c->ctl->cluster != NULL) {
				c->grey_deleted = rc;
				staged(c, st, 0, bulk_forget_committed);
				return;
			}
		} else {
			rc = state_bulk_allow_delete(st, c->value,
			    (int64_t)time(NULL));
			c->share = 1;
		}
		if (rc == 0) {
			answer(c, "error notfound no such bulk digest or "
			    "allow entry", NULL);
			return;
		}
		c->grey_deleted = rc;
	} else {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	staged(c, st, rc, grey_committed);	/* the same answers */
}

static void
request(struct conn *c, char *line)
{
	char *w[6], req[CONTROL_LINE_MAX + 2];
	char lr[LOG_VALUE_SIZE(CONTROL_LINE_MAX + 2)];
	int n;

	/* The trailing "json" is no word of the request proper. */
	if ((n = words(line, w, 6)) > 0 && strcmp(w[n - 1], "json") == 0) {
		c->json = 1;
		n--;
	}
	if (n == 1 && strcmp(w[0], "status") == 0) {
		status_request(c);
		return;
	}
	if (n < 2) {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	/* The argument may be a client's address: the request is one
	 * quoted value (docs/principles.md §4). */
	snprintf(req, sizeof(req), "%s %s%s%s", w[0], w[1], n > 2 ? " " : "",
	    n > 2 ? w[2] : "");
	log_info("event=control request=%s", log_value(lr, sizeof(lr), req,
	    strlen(req)));
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
	} else if (strcmp(w[0], "cluster") == 0) {
		cluster_request(c, w, n);
	} else if (strcmp(w[0], "greylist") == 0) {
		if (c->ctl->state == NULL) {
			answer(c, "error io the state store is not available "
			    "in this daemon", NULL);
			return;
		}
		greylist_request(c, w, n);
	} else if (strcmp(w[0], "bulk") == 0) {
		if (c->ctl->state == NULL) {
			answer(c, "error io the state store is not available "
			    "in this daemon", NULL);
			return;
		}
		bulk_request(c, w, n);
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
	TAILQ_INSERT_TAIL(&ctl->conns, c, link);
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

/* accept() failed. Out of descriptors or memory the connection stays in
 * the backlog and the socket readable: accepting on would spin. Pause a
 * second, as the SMTP listener does (src/net/listener.c). */
static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct control *ctl = arg;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
		return;
	if (evtimer_pending(ctl->ev_resume, NULL))
		return;
	log_warn("event=control_accept_error error=\"%s\" action=pause "
	    "seconds=1", evutil_socket_error_to_string(e));
	evconnlistener_disable(lev);
	evtimer_add(ctl->ev_resume, &tv);
}

static void
accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;

	evconnlistener_enable(ctl->lev);
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
	TAILQ_INIT(&ctl->conns);
	ctl->base = base;
	ctl->queue = q;
	ctl->started = time(NULL);
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
	evconnlistener_set_error_cb(ctl->lev, accept_error_cb);
	ctl->ev_resume = evtimer_new(base, accept_resume_cb, ctl);
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
control_set_cluster(struct control *ctl, struct cluster *cl)
{
	ctl->cluster = cl;
}

void
control_close(struct control *ctl)
{
	struct conn *c, *next;

	if (ctl == NULL)
		return;
	evconnlistener_free(ctl->lev);
	event_free(ctl->ev_resume);
	unlink(ctl->path);
	/* One waiting for Redis goes now, its request with it (the cluster
	 * would drop the request without the callback, and nothing else
	 * would hold the connection). The others are cut at exit with the
	 * loop: a commit still to come answers them. */
	for (c = TAILQ_FIRST(&ctl->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->op != NULL) {
			cluster_cancel(c->op);
			conn_free(c);
		}
	}
	free(ctl);
}
