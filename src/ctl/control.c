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

#include "envelope.h"
#include "log.h"
#include "str.h"
#include "qdb.h"
#include "queue.h"
#include "xmem.h"

#define CONTROL_CONN_MAX	16	/* connections at once */
#define CONTROL_TIMEOUT		10	/* seconds to send the line */

struct control {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct queue		*queue;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t			 nconn;
};

struct conn {
	struct control		*ctl;
	struct bufferevent	*bev;
	int			 json;
	int			 pending;	/* waiting for the writer */
	int			 dead;		/* peer gone while pending */
};

/* Every string we answer with is bounded (addresses, QDB_TEXT_MAX texts,
 * paths). */
static void
json_str(struct evbuffer *b, const char *s)
{
	char q[6 * PATH_MAX + 3];

	evbuffer_add_printf(b, "%s", str_json(q, sizeof(q), s));
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
	evbuffer_add_printf(b, ",\"arrival_time\":%lld,\"message_size\":%llu,"
	    "\"sender\":", (long long)m->arrival, (unsigned long long)m->size);
	json_str(b, a);
	evbuffer_add_printf(b, ",\"hold\":%s,\"attempts\":%u,"
	    "\"last_attempt\":%lld,\"next_attempt\":%lld,\"last_error\":",
	    m->hold ? "true" : "false", m->attempts,
	    (long long)m->last_attempt, (long long)m->next_attempt);
	json_str(b, m->last_error);
	if (detail) {
		evbuffer_add_printf(b, ",\"is_dsn\":%s,\"helo\":",
		    m->is_dsn ? "true" : "false");
		json_str(b, m->helo);
		evbuffer_add_printf(b, ",\"client_addr\":");
		json_str(b, m->client_addr);
		evbuffer_add_printf(b, ",\"client_name\":");
		json_str(b, m->client_name);
		evbuffer_add_printf(b, ",\"protocol\":");
		json_str(b, m->proto);
		evbuffer_add_printf(b, ",\"body_file\":");
		json_str(b, m->big);
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

/* A domain name's shape (LDH labels and dots, at most 253). */
static int
valid_domain(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    s[i] == '-' || s[i] == '.'))
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

static void
admin_cb(enum queue_result r, const char *id, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *b;

	c->pending = 0;
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (r != QUEUE_OK) {
		answer(c, "error io the queue database could not commit the "
		    "change", NULL);
		return;
	}
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

static void
request(struct conn *c, char *line)
{
	struct queue *q = c->ctl->queue;
	struct evbuffer *b;
	char *w[4];
	int n, rc;
	enum queue_admin op;

	if ((n = words(line, w, 4)) < 2 || strcmp(w[0], "queue") != 0) {
		answer(c, "error usage unknown request", NULL);
		return;
	}
	if (strcmp(w[n - 1], "json") == 0) {
		c->json = 1;
		n--;
	}
	log_info("event=control request=\"%s%s%s\"", w[1], n > 2 ? " " : "",
	    n > 2 ? w[2] : "");
	if (strcmp(w[1], "list") == 0 && n == 2) {
		b = evbuffer_new();
		if (control_queue_list(queue_qdb(q), b, c->json) == -1)
			answer(c, "error io the queue database could not be "
			    "read", NULL);
		else
			answer(c, "ok", b);
		evbuffer_free(b);
		return;
	}
	if (strcmp(w[1], "show") == 0 && n == 3) {
		struct qdb_msg m;

		if (!valid_id(w[2])) {
			answer(c, "error usage not a queue id", NULL);
			return;
		}
		memset(&m, 0, sizeof(m));
		rc = qdb_load(queue_qdb(q), w[2], 0, &m);
		if (rc == 1)
			answer(c, "error notfound no such message", NULL);
		else if (rc == -1)
			answer(c, "error io the queue database could not be "
			    "read", NULL);
		else {
			b = evbuffer_new();
			control_queue_show(&m, b, c->json);
			answer(c, "ok", b);
			evbuffer_free(b);
		}
		if (rc != 1)
			qdb_msg_free(&m);
		return;
	}
	if (strcmp(w[1], "flush") == 0 && (n == 2 || n == 3)) {
		if (n == 3 && !valid_domain(w[2])) {
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
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	evconnlistener_free(ctl->lev);
	unlink(ctl->path);
	/* Connections still open are cut at exit with the loop. */
	free(ctl);
}
