/*
 * deliver: next hop and connection pools (deliver.h).
 *
 * A "primary" here is one next hop (address and port). Tasks for it wait
 * in its FIFO; up to primary_connection_limit connections take them one
 * after the other, so one connection carries every message for the
 * primary in turn. A connection that cannot even greet us (refused,
 * timeout, 421) while no other connection to that primary lives fails
 * every task waiting for it: they would only fail the same way, one
 * timeout after the other.
 *
 * Pass-through and callouts connect through src/primary/connect.c; they
 * ask deliver_tls_broken() where a delivery's handshake failed.
 *
 * Loop prevention (docs/principles.md §1.4) belongs to MX selection: we deliver
 * to an MX host only when its preference is lower than ours. Routes are the
 * operator's word and are taken as they are.
 */
#include "deliver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "domains.h"
#include "log.h"
#include "mx.h"
#include "ranges.h"
#include "resolver.h"
#include "str.h"
#include "xmem.h"


/* A reply's text goes from the client into the queue's row uncut. */
_Static_assert(CLIENT_TEXT_MAX <= QDB_TEXT_MAX, "client text fits a row");

struct primary;

/* MX hosts tried per attempt after the best one (mx.h: 5 in all). */
#define DELIVER_ALT_MAX	(MX_HOPS_MAX - 1)

/* The MX hosts after the one tried, by preference: a host that does not
 * greet us hands the work on to the next (RFC 5321 §5.1). */
struct deliver_alts {
	char			 host[DELIVER_ALT_MAX][256];
	size_t			 n, next;
	uint16_t		 port;
};

/* A sched_task while deliver.c holds it. */
struct deliver_task {
	struct sched_task	*st;		/* the scheduler's */
	const char		*domain;	/* st's */
	size_t			 nrcpt;
	struct client_result	*res;		/* to st->res at the end */
	int			 reached;	/* the primary greeted us */
	int			 conn_failed;	/* refused, timeout, 421... */
	int			 shared;	/* failed with another task's
						   connection: not counted
						   again toward down */
	char			 relay[320];
	struct deliver_alts	 alts;
	struct deliver_task	*next;		/* a FIFO, or the later list */
	struct deliver_task	*lnext, *lprev;	/* d->live */
	struct client_tx	 tx;
	struct client_rcpt	*crcpts;	/* tx's, while sent */
	sched_task_done_cb	*done;
	void			*arg;
};

struct conn {
	struct conn		*next;
	struct deliver		*d;
	struct primary		*p;
	struct client		*c;
	struct deliver_task	*cur;		/* NULL: connecting or idle */
	int			 probe;
	deliver_probe_cb	*probe_cb;
	void			*probe_arg;
	char			 probe_domain[256];
};

struct primary {
	struct primary		*next;
	char			 key[320];	/* "addr:port" */
	char			 host[256];
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct deliver_task	*tasks;		/* FIFO */
	struct deliver_task	**tasks_tail;
	size_t			 ntasks;
	size_t			 nconn;
	size_t			 nfree;		/* connections without a task */
	int			 tls_broken;	/* handshake failed: clear text */
	struct conn		*conns;
};

/* One MX (or route host) lookup for one task or probe. */
struct lookup {
	struct lookup		*next, *prev;
	struct deliver		*d;
	char			 domain[256];	/* whose MX we ask */
	uint16_t		 port;
	int			 trusted;	/* route= or mx_check=no: special-
						   purpose addresses are fine */
	int			 customer;	/* a domain of domains_file (or
						   its route= host) */
	struct resolver_query	*rq;
	struct {
		uint16_t	pref;
		char		host[256];
	}			 mx[MX_HOPS_MAX];
	size_t			 nmx, cur;
	uint16_t		 qtype;		/* of the address query */
	struct deliver_task	*task;		/* or a probe: */
	deliver_probe_cb	*probe_cb;
	void			*probe_arg;
	char			 probe_domain[256];
};

struct deliver {
	struct event_base	*base;
	struct resolver		*resolver;
	struct lookup		*lookups;
	const struct config	*conf;
	const struct domains	*domains;
	struct client_conf	 cconf;	/* the connector's: one TLS context */
	/* Who we are for MX selection: our names, and the addresses we
	 * listen on at delivery_port (a connection there reaches us). */
	struct mx_self		 self;
	struct mx_self_store	 self_store;
	struct primary		*primaries;
	struct deliver_task	*live;		/* every task not finished */
	struct deliver_task	*later;		/* finished without a hop */
	struct deliver_task	**later_tail;
	struct event		*ev_later;
};

static void	conn_cb(struct client *, enum client_event, void *);
static void	primary_open(struct deliver *, struct primary *);
static void	dispatch(struct deliver *, struct deliver_task *,
		    deliver_probe_cb *, void *, const char *,
		    const struct sockaddr_storage *, socklen_t, const char *);
static int	task_next_host(struct deliver *, struct deliver_task *);
static void	lookup_start(struct deliver *, const char *domain,
		    struct deliver_task *, deliver_probe_cb *, void *);

/* --- finishing tasks ---------------------------------------------------- */

/* Forget t without a word (deliver_free) or after its results went
 * back. */
static void
task_free(struct deliver *d, struct deliver_task *t)
{
	if (t->lprev != NULL)
		t->lprev->lnext = t->lnext;
	else
		d->live = t->lnext;
	if (t->lnext != NULL)
		t->lnext->lprev = t->lprev;
	free(t->crcpts);
	free(t->res);
	free(t);
}

/* The results go back into the scheduler's task, then its callback. */
static void
task_finish(struct deliver *d, struct deliver_task *t)
{
	struct sched_task *st = t->st;
	sched_task_done_cb *done = t->done;
	void *arg = t->arg;
	size_t i;

	for (i = 0; i < t->nrcpt; i++) {
		st->res[i].code = t->res[i].code;
		str_copy(st->res[i].text, sizeof(st->res[i].text),
		    t->res[i].text);
	}
	st->reached = t->reached;
	st->conn_failed = t->conn_failed && !t->shared;
	str_copy(st->relay, sizeof(st->relay), t->relay);
	task_free(d, t);
	done(st, arg);
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	struct deliver_task *t;

	while ((t = d->later) != NULL) {
		d->later = t->next;
		if (d->later == NULL)
			d->later_tail = &d->later;
		task_finish(d, t);
	}
}

/* Finish t from the loop, not from the caller's stack. */
static void
task_finish_later(struct deliver *d, struct deliver_task *t)
{
	t->next = NULL;
	*d->later_tail = t;
	d->later_tail = &t->next;
	event_active(d->ev_later, EV_TIMEOUT, 0);
}

static void
task_resolve_all(struct deliver_task *t, int code, const char *text)
{
	size_t i;

	for (i = 0; i < t->nrcpt; i++) {
		t->res[i].code = code;
		str_copy(t->res[i].text, sizeof(t->res[i].text), text);
	}
}

/* --- next hop ----------------------------------------------------------- */

/*
 * The next hop of 'domain' into *ss, or -1 with the reason in why (the
 * tasks are deferred with it).
 */
/* A route=[ADDR]:PORT that is one of our own listen addresses would
 * deliver to ourselves: -1 with the loop's reason, else 0. */
static int
route_self(const struct deliver *d, const struct domain *dom,
    const struct sockaddr_storage *ss, char *why, size_t whysz)
{
	struct mx_self self = d->self;
	struct mx_result res;
	uint8_t a[16];

	self.dport = dom->route_port;
	self.refuse_special = 0;
	if (ranges_from_sockaddr((const struct sockaddr *)ss, a) == -1 ||
	    mx_addr_verdict(a, &self) != MX_ADDR_SELF)
		return 0;
	log_warn("event=mx_loop domain=%s host=%s reason=own_address",
	    dom->name, dom->route_host);
	memset(&res, 0, sizeof(res));
	res.status = MX_LOOP;
	mx_reason(&res, dom->name, why, whysz);
	return -1;
}

static int
next_hop(struct deliver *d, const char *domain, struct sockaddr_storage *ss,
    socklen_t *sslen, char *host, size_t hostsz, char *why, size_t whysz)
{
	const struct domain *dom = d->domains ?
	    domains_lookup(d->domains, domain) : NULL;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (dom != NULL && dom->route_host[0] != '\0') {
		str_copy(host, hostsz, dom->route_host);
		if (inet_pton(AF_INET, dom->route_host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons(dom->route_port);
			*sslen = sizeof(*s4);
			return route_self(d, dom, ss, why, whysz);
		}
		if (inet_pton(AF_INET6, dom->route_host, &s6->sin6_addr) ==
		    1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(dom->route_port);
			*sslen = sizeof(*s6);
			return route_self(d, dom, ss, why, whysz);
		}
		/* A host name: looked up (lookup_start). */
		*sslen = 0;
		return 1;
	}
	str_copy(host, hostsz, domain);
	*sslen = 0;
	if (d->resolver == NULL) {
		snprintf(why, whysz, "451 4.4.3 no resolver for the MX of %s",
		    domain);
		return -1;
	}
	return 2;		/* MX lookup */
}

/* "addr:port" of ss, the key of a primary. */
static void
primary_key(const struct sockaddr_storage *ss, char *key, size_t keysz)
{
	char addr[INET6_ADDRSTRLEN];
	int port;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	}
	snprintf(key, keysz, "%s:%d", addr, port);
}

static struct primary *
primary_find(const struct deliver *d, const struct sockaddr_storage *ss)
{
	char key[320];
	struct primary *p;

	primary_key(ss, key, sizeof(key));
	for (p = d->primaries; p != NULL; p = p->next)
		if (strcmp(p->key, key) == 0)
			return p;
	return NULL;
}

static struct primary *
primary_get(struct deliver *d, const struct sockaddr_storage *ss,
    socklen_t sslen, const char *host)
{
	char key[320];
	struct primary *p;

	if ((p = primary_find(d, ss)) != NULL)
		return p;
	primary_key(ss, key, sizeof(key));
	p = xcalloc(1, sizeof(*p));
	str_copy(p->key, sizeof(p->key), key);
	str_copy(p->host, sizeof(p->host), host);
	memcpy(&p->ss, ss, sizeof(*ss));
	p->sslen = sslen;
	p->tasks_tail = &p->tasks;
	p->next = d->primaries;
	d->primaries = p;
	return p;
}

static struct deliver_task *
primary_take(struct primary *p)
{
	struct deliver_task *t = p->tasks;

	if (t != NULL) {
		p->tasks = t->next;
		if (p->tasks == NULL)
			p->tasks_tail = &p->tasks;
		p->ntasks--;
		t->next = NULL;
	}
	return t;
}

/* --- connections -------------------------------------------------------- */

/*
 * The queued message as the client's transaction: the client knows no
 * queue rows. Its recipient array lives while a connection carries the
 * task (task_untx() when it leaves the connection).
 */
static void
task_tx(struct deliver_task *t)
{
	const struct qdb_msg *m = t->st->msg;
	size_t i;

	t->crcpts = xreallocarray(NULL, t->nrcpt ? t->nrcpt : 1,
	    sizeof(*t->crcpts));
	for (i = 0; i < t->nrcpt; i++) {
		t->crcpts[i].addr = &t->st->rcpts[i]->addr;
		t->crcpts[i].params = &t->st->rcpts[i]->params;
	}
	memset(&t->tx, 0, sizeof(t->tx));
	t->tx.sender = &m->sender;
	t->tx.params = &m->params;
	t->tx.size = m->size;
	t->tx.data_flags = m->data_flags;
	t->tx.body = m->body;
	t->tx.bodylen = m->bodylen;
	t->tx.body_path = t->st->body_path;
	t->tx.rcpts = t->crcpts;
	t->tx.nrcpt = t->nrcpt;
	t->tx.res = t->res;
}

static void
task_untx(struct deliver_task *t)
{
	free(t->crcpts);
	t->crcpts = NULL;
}

static void
conn_remove(struct deliver *d, struct conn *cn)
{
	struct primary *p = cn->p;
	struct conn **pp;

	for (pp = &p->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == cn) {
			*pp = cn->next;
			break;
		}
	p->nconn--;
	if (cn->cur == NULL && !cn->probe)
		p->nfree--;
	free(cn);
}

static void
conn_give_work(struct deliver *d, struct conn *cn)
{
	struct primary *p = cn->p;
	struct deliver_task *t = primary_take(p);

	if (t == NULL) {
		/* Nothing waits: say QUIT; the client frees itself. */
		client_quit(cn->c);
		conn_remove(d, cn);
		return;
	}
	cn->cur = t;
	p->nfree--;
	t->reached = 1;
	str_copy(t->relay, sizeof(t->relay), client_relay(cn->c));
	task_tx(t);
	client_send(cn->c, &t->tx);
}

/* Does a connection of ours to p have the primary's greeting? */
static int
primary_talking(const struct primary *p)
{
	const struct conn *cn;

	for (cn = p->conns; cn != NULL; cn = cn->next)
		if (!cn->probe && cn->c != NULL && client_greeted(cn->c))
			return 1;
	return 0;
}

static void
conn_cb(struct client *c, enum client_event ev, void *arg)
{
	struct conn *cn = arg;
	struct primary *p = cn->p;
	struct deliver *d = cn->d;
	struct deliver_task *t;
	char why[QDB_TEXT_MAX];
	/* A failed STARTTLS handshake: the primary greeted us and answered
	 * EHLO; it is up, and the next connection talks clear text (RFC
	 * 7435). Counted as down, it stayed down for good: every probe
	 * tried TLS again and failed again, and the queue expired. */
	int tls_failed = client_tls_failed(c);
	int greeted = client_greeted(c) || tls_failed, local;
	int cn_task_failed;

	if (tls_failed)
		p->tls_broken = 1;
	if (cn->probe) {
		/* -1: no verdict, the failure was ours (health.h). */
		int ok = ev == CLIENT_READY || tls_failed ? 1 :
		    client_local_failure(c) ? -1 : 0;

		snprintf(why, sizeof(why), "%s", ok ? "" : client_error(c));
		if (ev == CLIENT_READY)
			client_quit(c);
		else
			client_free(c);
		cn->probe_cb(cn->probe_domain, ok, why, cn->probe_arg);
		conn_remove(d, cn);
		return;
	}
	switch (ev) {
	case CLIENT_TX_DONE:
		t = cn->cur;
		cn->cur = NULL;
		p->nfree++;
		task_untx(t);
		task_finish(d, t);
		/* FALLTHROUGH */
	case CLIENT_READY:
		conn_give_work(d, cn);
		return;
	case CLIENT_FAILED:
		break;
	}

	/* The connection is gone. Out of descriptors here: nothing is
	 * known of the primary, so nothing counts against it. */
	local = client_local_failure(c);
	t = cn->cur;
	cn_task_failed = 0;
	if (t != NULL) {
		/* Its recipients were deferred by the client. */
		t->conn_failed = !greeted && !local;
		t->shared = 0;
		cn_task_failed = t->conn_failed;
		cn->cur = NULL;
		task_untx(t);
		p->nfree++;
	}
	snprintf(why, sizeof(why), "451 4.4.1 %s: %s", client_relay(c),
	    client_error(c));
	client_free(c);
	conn_remove(d, cn);
	if (t != NULL && !(t->conn_failed && task_next_host(d, t)))
		task_finish(d, t);
	if (local) {
		/* The waiting tasks are deferred, the primary untouched. */
		if (!primary_talking(p))
			while ((t = primary_take(p)) != NULL) {
				task_resolve_all(t, 451, why);
				str_copy(t->relay, sizeof(t->relay), p->key);
				task_finish_later(d, t);
			}
		return;
	}
	if (!greeted) {
		/*
		 * The primary did not even greet us (refused, timeout, 421).
		 * Unless another connection of ours is talking to it, every
		 * waiting task would fail the same way: fail them now, and
		 * open no replacement. Reconnecting for each waiting task
		 * while the primary refuses is a connection storm that
		 * never ends (thousands of attempts a second), and the
		 * deferrals are what tells sched that the primary is down.
		 */
		/* One connection that failed is one failed attempt
		 * toward primary_down_after, however many messages
		 * waited on it: it counts once, with the task it carried
		 * or with the first that waited. */
		int counted = cn_task_failed;

		if (!primary_talking(p))
			while ((t = primary_take(p)) != NULL) {
				task_resolve_all(t, 451, why);
				t->conn_failed = 1;
				t->shared = counted;
				counted = 1;
				str_copy(t->relay, sizeof(t->relay), p->key);
				if (!task_next_host(d, t))
					task_finish_later(d, t);
			}
		return;
	}
	/* A connection that had been talking went away (dropped, timed
	 * out mid-transaction): its task is deferred; a new connection
	 * carries the rest. */
	if (p->ntasks > 0)
		primary_open(d, p);
}

static struct conn *
conn_new(struct deliver *d, struct primary *p)
{
	struct conn *cn = xcalloc(1, sizeof(*cn));

	cn->d = d;
	cn->p = p;
	return cn;
}

static void
conn_start(struct deliver *d, struct primary *p, struct conn *cn)
{
	cn->c = client_connect(d->base, &d->cconf,
	    (const struct sockaddr *)&p->ss, p->sslen, p->host,
	    !p->tls_broken, conn_cb, cn);
	cn->next = p->conns;
	p->conns = cn;
	p->nconn++;
	if (!cn->probe)
		p->nfree++;
	if (cn->c == NULL)
		panic("client_connect: out of resources");
}

/* Open connections while tasks wait for them, up to the limit. */
static void
primary_open(struct deliver *d, struct primary *p)
{
	while (p->ntasks > p->nfree &&
	    p->nconn < d->conf->primary_connection_limit)
		conn_start(d, p, conn_new(d, p));
}

/* --- the face ----------------------------------------------------------- */

void
deliver_submit(struct deliver *d, struct sched_task *st,
    sched_task_done_cb *done, void *arg)
{
	struct deliver_task *t = xcalloc(1, sizeof(*t));
	struct sockaddr_storage ss;
	char host[256], why[QDB_TEXT_MAX];
	socklen_t sslen;

	t->st = st;
	t->domain = st->domain;
	st->customer = d->domains != NULL &&
	    domains_lookup(d->domains, st->domain) != NULL;
	t->nrcpt = st->nrcpt;
	t->res = xcalloc(st->nrcpt ? st->nrcpt : 1, sizeof(*t->res));
	t->done = done;
	t->arg = arg;
	t->lnext = d->live;
	if (d->live != NULL)
		d->live->lprev = t;
	d->live = t;
	switch (next_hop(d, t->domain, &ss, &sslen, host, sizeof(host), why,
	    sizeof(why))) {
	case -1:
		task_resolve_all(t, 451, why);
		task_finish_later(d, t);
		return;
	case 0:
		dispatch(d, t, NULL, NULL, NULL, &ss, sslen, host);
		return;
	default:
		lookup_start(d, t->domain, t, NULL, NULL);
		return;
	}
}

void
deliver_probe(struct deliver *d, const char *domain, deliver_probe_cb *done,
    void *arg)
{
	struct sockaddr_storage ss;
	char host[256], why[QDB_TEXT_MAX];
	socklen_t sslen;

	switch (next_hop(d, domain, &ss, &sslen, host, sizeof(host), why,
	    sizeof(why))) {
	case -1:
		/* No hop: nothing to probe; the caller retries later. */
		done(domain, 0, why, arg);
		return;
	case 0:
		dispatch(d, NULL, done, arg, domain, &ss, sslen, host);
		return;
	default:
		lookup_start(d, domain, NULL, done, arg);
		return;
	}
}

/* A next hop is known: queue the task there, or start the probe. */
static void
dispatch(struct deliver *d, struct deliver_task *t, deliver_probe_cb *done,
    void *arg, const char *probe_domain, const struct sockaddr_storage *ss,
    socklen_t sslen, const char *host)
{
	struct primary *p = primary_get(d, ss, sslen, host);
	struct conn *cn;

	if (t != NULL) {
		*p->tasks_tail = t;
		p->tasks_tail = &t->next;
		p->ntasks++;
		primary_open(d, p);
		return;
	}
	cn = conn_new(d, p);
	cn->probe = 1;
	cn->probe_cb = done;
	cn->probe_arg = arg;
	str_copy(cn->probe_domain, sizeof(cn->probe_domain), probe_domain);
	conn_start(d, p, cn);
}

/* --- MX and host lookups (RFC 5321 §5.1) --------------------------------- */

static void	lookup_addr(struct lookup *);

static void
lookup_free(struct lookup *l)
{
	struct deliver *d = l->d;

	if (l->rq != NULL)
		resolver_cancel(l->rq);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		d->lookups = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	free(l);
}

/* No next hop: the task gets 'code'/'why', a probe fails. */
static void
lookup_fail(struct lookup *l, int code, const char *why)
{
	struct deliver *d = l->d;

	if (l->task != NULL) {
		struct deliver_task *t = l->task;

		l->task = NULL;
		task_resolve_all(t, code, why);
		if (!task_next_host(d, t))
			task_finish_later(d, t);
	} else
		l->probe_cb(l->probe_domain, 0, why, l->probe_arg);
	lookup_free(l);
}

/* The hosts after the one l found an address for, for task_next_host(). */
static void
alts_fill(struct deliver_alts *a, const struct lookup *l)
{
	size_t i;

	a->n = a->next = 0;
	a->port = l->port;
	for (i = l->cur + 1; i < l->nmx && a->n < DELIVER_ALT_MAX; i++)
		str_copy(a->host[a->n++], sizeof(a->host[0]), l->mx[i].host);
}

/* What one address answer of the host l is at means (mx.h): ours at the
 * port we would connect to, or special-purpose where the operator did
 * not name the host; the address to use in *ss. */
static enum mx_addr
addr_verdict(const struct lookup *l, const struct dns_rr *rr,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct mx_self self = l->d->self;

	self.refuse_special = !l->trusted;
	return mx_rr_target(rr, &self, l->port, ss, sslen);
}

/* The host l is at resolved to one of our own addresses: it is us, and
 * every host after it (no better preference) too. */
static void
lookup_self(struct lookup *l)
{
	struct mx_result res;
	char why[QDB_TEXT_MAX];
	int code;

	memset(&res, 0, sizeof(res));
	res.status = MX_LOOP;
	code = mx_reason(&res, l->domain, why, sizeof(why));
	log_warn("event=mx_loop domain=%s host=%s reason=own_address",
	    l->domain, l->mx[l->cur].host);
	lookup_fail(l, code, why);
}

static void
addr_answer(const struct dns_result *res, void *arg)
{
	struct lookup *l = arg;
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	size_t i;
	char why[QDB_TEXT_MAX];

	l->rq = NULL;
	memset(&ss, 0, sizeof(ss));
	for (i = 0; res->status == DNS_OK && i < res->nrr; i++) {
		const struct dns_rr *rr = &res->rr[i];

		if (rr->type != l->qtype)
			continue;
		switch (addr_verdict(l, rr, &ss, &sslen)) {
		case MX_ADDR_SPECIAL:
			log_warn("event=mx_refused domain=%s host=%s "
			    "reason=special_purpose_address", l->domain,
			    l->mx[l->cur].host);
			continue;
		case MX_ADDR_NONE:
			continue;
		case MX_ADDR_SELF:
			lookup_self(l);
			return;
		case MX_ADDR_USE:
			break;
		}
		break;
	}
	if (sslen > 0) {
		struct deliver *d = l->d;
		struct deliver_task *t = l->task;

		if (t != NULL && l->nmx > 1)
			alts_fill(&t->alts, l);
		dispatch(d, l->task, l->probe_cb, l->probe_arg,
		    l->probe_domain, &ss, sslen, l->mx[l->cur].host);
		l->task = NULL;
		lookup_free(l);
		return;
	}
	if (res->status == DNS_TEMPFAIL) {
		snprintf(why, sizeof(why), "451 4.4.3 %s: address lookup "
		    "failed (%s)", l->mx[l->cur].host, res->why);
		lookup_fail(l, 451, why);
		return;
	}
	if (l->qtype == DNS_T_A) {
		l->qtype = DNS_T_AAAA;
		lookup_addr(l);
		return;
	}
	/* No address for this host: the next one by preference. */
	l->cur++;
	if (l->cur < l->nmx) {
		l->qtype = DNS_T_A;
		lookup_addr(l);
		return;
	}
	snprintf(why, sizeof(why), "451 4.4.4 no address for the mail "
	    "hosts of %s", l->domain);
	lookup_fail(l, 451, why);
}

static void
lookup_addr(struct lookup *l)
{
	l->rq = resolver_query(l->d->resolver, l->mx[l->cur].host, l->qtype,
	    addr_answer, l);
}

static void
mx_answer(const struct dns_result *res, void *arg)
{
	struct lookup *l = arg;
	struct deliver *d = l->d;
	struct mx_record rr[MX_RECORDS_MAX];
	struct mx_query q;
	struct mx_result mx;
	char why[QDB_TEXT_MAX];
	size_t i, n = 0;
	int code;

	l->rq = NULL;
	switch (res->status) {
	case DNS_TEMPFAIL:
		snprintf(why, sizeof(why), "451 4.4.3 MX lookup for %s failed "
		    "(%s)", l->domain, res->why);
		lookup_fail(l, 451, why);
		return;
	case DNS_NXDOMAIN:
		/* A customer's domain (or the route= host the operator
		 * wrote) that does not exist is a fault to mend, a lapsed
		 * registration or a typo: its mail waits, up to
		 * maximal_queue_lifetime, as for any doubt. Another domain
		 * (a DSN's) does not exist: bounced. */
		if (l->customer) {
			snprintf(why, sizeof(why), "451 4.4.3 domain %s does "
			    "not exist (NXDOMAIN); a customer's mail waits",
			    l->domain);
			lookup_fail(l, 451, why);
			return;
		}
		snprintf(why, sizeof(why), "550 5.1.2 domain %s does not "
		    "exist", l->domain);
		lookup_fail(l, 550, why);
		return;
	case DNS_NODATA:
	case DNS_OK:
		break;
	}
	n = mx_records(res, rr, MX_RECORDS_MAX);
	/* Addresses are not known yet: addr_answer() judges each as it
	 * comes (mx_addr_verdict). */
	memset(&q, 0, sizeof(q));
	q.domain = l->domain;
	q.nodata = res->status == DNS_NODATA;
	q.rr = rr;
	q.nrr = n;
	q.self = &d->self;
	q.max = MX_HOPS_MAX;
	mx_select(&q, &mx);
	if (mx.status != MX_OK) {
		if (mx.status == MX_LOOP)
			log_warn("event=mx_loop domain=%s our_preference=%u",
			    l->domain, mx.ours);
		code = mx_reason(&mx, l->domain, why, sizeof(why));
		lookup_fail(l, code, why);
		return;
	}
	for (i = 0; i < mx.nhop; i++) {
		l->mx[i].pref = (uint16_t)mx.hop[i].pref;
		str_copy(l->mx[i].host, sizeof(l->mx[i].host), mx.hop[i].host);
	}
	l->nmx = mx.nhop;
	l->cur = 0;
	l->qtype = DNS_T_A;
	lookup_addr(l);
}

/* A new lookup on d's list, for the task t (or a probe). */
static struct lookup *
lookup_new(struct deliver *d, struct deliver_task *t)
{
	struct lookup *l = xcalloc(1, sizeof(*l));

	l->d = d;
	l->task = t;
	l->next = d->lookups;
	if (d->lookups != NULL)
		d->lookups->prev = l;
	d->lookups = l;
	return l;
}

/* The operator vouches for the next hops of customer domain 'domain'
 * (route= or mx_check=no): special-purpose addresses are fine. */
static int
domain_trusted(const struct deliver *d, const char *domain)
{
	const struct domain *dom = d->domains ?
	    domains_lookup(d->domains, domain) : NULL;

	return dom != NULL && (dom->mx_check_off ||
	    dom->route_host[0] != '\0');
}

/* A new lookup of one MX host's addresses (an alternate of domain's),
 * ready for lookup_addr(). */
static struct lookup *
lookup_host(struct deliver *d, struct deliver_task *t, const char *domain,
    const char *host, uint16_t port)
{
	struct lookup *l = lookup_new(d, t);

	l->trusted = domain_trusted(d, domain);
	l->port = port;
	str_copy(l->domain, sizeof(l->domain), domain);
	str_copy(l->mx[0].host, sizeof(l->mx[0].host), host);
	l->nmx = 1;
	l->qtype = DNS_T_A;
	return l;
}

/*
 * The host tried for t did not greet us (or had no address): hand t to the
 * next MX host by preference, if one is left. Returns 1 when t goes on
 * (its callback runs later), 0 when it should be finished now.
 */
static int
task_next_host(struct deliver *d, struct deliver_task *t)
{
	struct lookup *l;

	if (t->alts.next >= t->alts.n)
		return 0;
	l = lookup_host(d, t, t->domain, t->alts.host[t->alts.next],
	    t->alts.port);
	log_info("queue=%s event=delivery_next_mx domain=%s host=%s",
	    t->st->msg->id, t->domain, t->alts.host[t->alts.next]);
	t->alts.next++;
	t->conn_failed = 0;
	t->shared = 0;
	lookup_addr(l);
	return 1;
}

/* The next hop of 'domain' for the task t or the probe 'done': its route
 * host's or its own MX hosts. */
static void
lookup_start(struct deliver *d, const char *domain, struct deliver_task *t,
    deliver_probe_cb *done, void *arg)
{
	const struct domain *dom = d->domains ?
	    domains_lookup(d->domains, domain) : NULL;
	struct lookup *l = lookup_new(d, t);
	int no_mx = 0;

	l->probe_cb = done;
	l->probe_arg = arg;
	if (done != NULL)
		str_copy(l->probe_domain, sizeof(l->probe_domain), domain);
	l->port = (uint16_t)d->conf->delivery_port;
	str_copy(l->domain, sizeof(l->domain), domain);
	l->trusted = domain_trusted(d, domain);
	l->customer = dom != NULL;
	if (dom != NULL && dom->route_host[0] != '\0') {
		/* route=HOST:PORT (MX of HOST) or route=[HOST]:PORT. */
		l->port = dom->route_port;
		str_copy(l->domain, sizeof(l->domain), dom->route_host);
		no_mx = dom->route_no_mx;
	}
	if (d->resolver == NULL) {
		lookup_fail(l, 451, "451 4.4.3 no resolver");
		return;
	}
	if (no_mx) {
		str_copy(l->mx[0].host, sizeof(l->mx[0].host), l->domain);
		l->nmx = 1;
		l->qtype = DNS_T_A;
		lookup_addr(l);
		return;
	}
	l->rq = resolver_query(d->resolver, l->domain, DNS_T_MX, mx_answer, l);
}

struct deliver *
deliver_new(struct event_base *base, const struct config *conf,
    const struct client_conf *cc)
{
	struct deliver *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->conf = conf;
	d->later_tail = &d->later;
	d->ev_later = event_new(base, -1, 0, later_cb, d);
	/* One client context for every connection to a primary, the
	 * connector's (docs/dependencies.md §3). */
	d->cconf = *cc;
	mx_self_init(&d->self, &d->self_store, conf);
	return d;
}

void
deliver_set_resolver(struct deliver *d, struct resolver *r)
{
	d->resolver = r;
}

void
deliver_set_domains(struct deliver *d, const struct domains *doms)
{
	d->domains = doms;
}

void
deliver_free(struct deliver *d)
{
	struct primary *p;
	struct conn *cn;

	if (d == NULL)
		return;
	/* Their callbacks do not run. */
	while (d->lookups != NULL)
		lookup_free(d->lookups);
	while ((p = d->primaries) != NULL) {
		d->primaries = p->next;
		while ((cn = p->conns) != NULL) {
			p->conns = cn->next;
			client_free(cn->c);
			free(cn);
		}
		free(p);
	}
	while (d->live != NULL)
		task_free(d, d->live);
	event_free(d->ev_later);
	free(d);
}

int
deliver_tls_broken(const struct deliver *d, const struct sockaddr *sa,
    socklen_t salen)
{
	struct sockaddr_storage ss;
	const struct primary *p;

	if (salen > sizeof(ss))
		return 0;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, salen);
	p = primary_find(d, &ss);
	return p != NULL && p->tls_broken;
}
