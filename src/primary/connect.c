/*
 * connect: greeted connections to a domain's primary for other stages
 * (connect.h). One request walks: its route or its MX answer (mx.c), the
 * hosts in order, each host's A then AAAA answer, a connection; a host
 * that does not greet hands on to the next one once some host had an
 * address. Failures reach the caller from the loop, never from inside
 * primary_connect().
 */
#include "connect.h"

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

struct primary_conn {
	struct primary_conn	*next, *prev;
	struct primary_connector *pc;
	char			 domain[256];	/* lower case: whose primary */
	char			 name[256];	/* whose MX (or A) we ask */
	uint16_t		 port;
	struct client_conf	 cconf;		/* the caller's, copied */
	char			 helo[256];
	primary_connect_cb	*cb;
	void			*arg;
	struct resolver_query	*rq;		/* running, or NULL */
	struct client		*c;		/* connecting, or NULL */
	struct event		*ev_fail;	/* the failure, from the loop */
	struct event		*ev_deadline;	/* the whole request's */
	struct mx_hop		 hop[MX_HOPS_MAX];
	size_t			 nhop, cur;
	uint16_t		 qtype;		/* of the address query */
	int			 found;		/* some host had an address */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 clear;		/* this host: no STARTTLS */
	int			 reached;	/* some host greeted */
	int			 local;		/* failed here: no descriptor */
	int			 trusted;	/* the operator's route= or
						   mx_check=no: special-purpose
						   addresses are fine */
	char			 why[CLIENT_TEXT_MAX];
};

struct primary_connector {
	struct event_base	*base;
	const struct config	*conf;
	const struct domains	*domains;
	struct resolver		*resolver;
	struct client_conf	 cconf;
	SSL_CTX			*tls;
	struct mx_self		 self;
	struct mx_self_store	 self_store;
	primary_tls_hint_fn	*tls_hint;
	void			*tls_hint_arg;
	struct primary_conn	*reqs;
};

static void	addr_lookup(struct primary_conn *, uint16_t qtype);
static void	start_client(struct primary_conn *);

/* --- the request's end -------------------------------------------------- */

static void
req_free(struct primary_conn *r)
{
	struct primary_connector *pc = r->pc;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		pc->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	event_free(r->ev_fail);
	event_free(r->ev_deadline);
	free(r);
}

static void
fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct primary_conn *r = arg;
	primary_connect_cb *cb = r->cb;
	void *cbarg = r->arg;
	char why[CLIENT_TEXT_MAX];
	int reached = r->local ? -1 : r->reached;

	str_copy(why, sizeof(why), r->why[0] ? r->why : "no next hop");
	req_free(r);
	cb(NULL, reached, why, cbarg);
}

/* The lookup or the connection under way, gone. */
static void
stop_work(struct primary_conn *r)
{
	if (r->rq != NULL) {
		resolver_cancel(r->rq);
		r->rq = NULL;
	}
	client_free(r->c);
	r->c = NULL;
}

/* No connection: the caller hears of it from the loop. */
static void
fail_later(struct primary_conn *r)
{
	event_active(r->ev_fail, EV_TIMEOUT, 0);
}

/*
 * The caller's connect timeout bounds the whole request: lookups, the
 * hosts one after the other, connect, greeting, STARTTLS and EHLO
 * together. The client's own timeouts restart at every byte, so a host
 * that dribbles its greeting a byte at a time held a first RCPT for
 * minutes, and backup mode never began.
 */
static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct primary_conn *r = arg;

	(void)fd;
	(void)what;
	stop_work(r);
	snprintf(r->why, sizeof(r->why), "no greeting and EHLO within %u s",
	    r->cconf.connect_timeout);
	fail_cb(-1, EV_TIMEOUT, r);
}

/*
 * The host tried did not greet us, or its lookup failed (the reason is
 * in r->why): the next host by preference once some host had an address
 * (RFC 5321 §5.1), else the failure.
 */
static void
next_host(struct primary_conn *r)
{
	if (!r->found || r->cur + 1 >= r->nhop || r->pc->resolver == NULL) {
		fail_later(r);
		return;
	}
	r->cur++;
	log_info("event=connect_next_mx domain=%s host=%s", r->domain,
	    r->hop[r->cur].host);
	addr_lookup(r, DNS_T_A);
}

/* --- lookups ------------------------------------------------------------ */

/* The host r is at resolved to one of our own addresses: it is us, and
 * every host after it (no better preference) too. */
static void
fail_self(struct primary_conn *r)
{
	struct mx_result res;

	memset(&res, 0, sizeof(res));
	res.status = MX_LOOP;
	mx_reason(&res, r->name, r->why, sizeof(r->why));
	log_warn("event=mx_loop domain=%s host=%s reason=own_address",
	    r->name, r->hop[r->cur].host);
	fail_later(r);
}

static void
addr_answer(const struct dns_result *res, void *arg)
{
	struct primary_conn *r = arg;
	struct mx_self self = r->pc->self;
	size_t i;

	r->rq = NULL;
	self.refuse_special = !r->trusted;
	for (i = 0; res->status == DNS_OK && i < res->nrr; i++) {
		const struct dns_rr *rr = &res->rr[i];

		if (rr->type != r->qtype)
			continue;
		switch (mx_rr_target(rr, &self, r->port, &r->ss, &r->sslen)) {
		case MX_ADDR_SPECIAL:
			log_warn("event=mx_refused domain=%s host=%s "
			    "reason=special_purpose_address", r->domain,
			    r->hop[r->cur].host);
			continue;
		case MX_ADDR_NONE:
			continue;
		case MX_ADDR_SELF:
			fail_self(r);
			return;
		case MX_ADDR_USE:
			break;
		}
		r->found = 1;
		r->clear = 0;
		start_client(r);
		return;
	}
	if (res->status == DNS_TEMPFAIL) {
		snprintf(r->why, sizeof(r->why), "451 4.4.3 %s: address lookup "
		    "failed (%s)", r->hop[r->cur].host, res->why);
		next_host(r);
		return;
	}
	if (r->qtype == DNS_T_A) {
		addr_lookup(r, DNS_T_AAAA);
		return;
	}
	/* No address for this host: the next one by preference. */
	if (r->cur + 1 < r->nhop) {
		r->cur++;
		addr_lookup(r, DNS_T_A);
		return;
	}
	snprintf(r->why, sizeof(r->why), "451 4.4.4 no address for the mail "
	    "hosts of %s", r->name);
	fail_later(r);
}

static void
addr_lookup(struct primary_conn *r, uint16_t qtype)
{
	r->qtype = qtype;
	r->rq = resolver_query(r->pc->resolver, r->hop[r->cur].host, qtype,
	    addr_answer, r);
}

static void
mx_answer(const struct dns_result *res, void *arg)
{
	struct primary_conn *r = arg;
	struct mx_record rr[MX_RECORDS_MAX];
	struct mx_query q;
	struct mx_result mx;
	size_t n;

	r->rq = NULL;
	switch (res->status) {
	case DNS_TEMPFAIL:
		snprintf(r->why, sizeof(r->why), "451 4.4.3 MX lookup for %s "
		    "failed (%s)", r->name, res->why);
		fail_later(r);
		return;
	case DNS_NXDOMAIN:
		snprintf(r->why, sizeof(r->why), "550 5.1.2 domain %s does not "
		    "exist", r->name);
		fail_later(r);
		return;
	case DNS_NODATA:
	case DNS_OK:
		break;
	}
	n = mx_records(res, rr, MX_RECORDS_MAX);
	memset(&q, 0, sizeof(q));
	q.domain = r->name;
	q.nodata = res->status == DNS_NODATA;
	q.rr = rr;
	q.nrr = n;
	q.self = &r->pc->self;
	q.max = MX_HOPS_MAX;
	mx_select(&q, &mx);
	if (mx.status != MX_OK) {
		if (mx.status == MX_LOOP)
			log_warn("event=mx_loop domain=%s our_preference=%u",
			    r->name, mx.ours);
		mx_reason(&mx, r->name, r->why, sizeof(r->why));
		fail_later(r);
		return;
	}
	memcpy(r->hop, mx.hop, mx.nhop * sizeof(mx.hop[0]));
	r->nhop = mx.nhop;
	r->cur = 0;
	addr_lookup(r, DNS_T_A);
}

/* --- the connection ----------------------------------------------------- */

static void
conn_event(struct client *c, enum client_event ev, void *arg)
{
	struct primary_conn *r = arg;
	primary_connect_cb *cb = r->cb;
	void *cbarg = r->arg;
	int tls_failed;

	if (ev == CLIENT_READY) {
		/* Greeted: the connection is the caller's now; until it
		 * sets its own callback nobody hears of the client. */
		client_set_cb(c, NULL, NULL);
		r->c = NULL;
		req_free(r);
		cb(c, 1, NULL, cbarg);
		return;
	}
	if (ev != CLIENT_FAILED)
		return;
	/* A greeting of any kind (421 too) means the host was reached. */
	if (client_greeting(c) != NULL)
		r->reached = 1;
	str_copy(r->why, sizeof(r->why), client_error(c));
	tls_failed = client_tls_failed(c);
	if (client_local_failure(c)) {
		/* Out of descriptors here: the next host would fail the
		 * same way, and none of it is the primary's doing. */
		client_free(c);
		r->c = NULL;
		r->local = 1;
		fail_later(r);
		return;
	}
	client_free(c);
	r->c = NULL;
	if (tls_failed && !r->clear) {
		/* RFC 7435: the same host once more, in clear text. */
		log_info("event=connect_tls_retry domain=%s host=%s",
		    r->domain, r->hop[r->cur].host);
		r->clear = 1;
		start_client(r);
		return;
	}
	next_host(r);
}

static void
start_client(struct primary_conn *r)
{
	struct primary_connector *pc = r->pc;
	int broken = pc->tls_hint != NULL && pc->tls_hint(pc->tls_hint_arg,
	    (const struct sockaddr *)&r->ss, r->sslen);

	/* Opportunistic TLS as for deliveries: clear text where a
	 * handshake with this next hop failed before. */
	r->c = client_connect(pc->base, &r->cconf,
	    (const struct sockaddr *)&r->ss, r->sslen, r->hop[r->cur].host,
	    !r->clear && !broken, conn_event, r);
	if (r->c == NULL) {
		str_copy(r->why, sizeof(r->why), "connect: out of resources");
		r->local = 1;
		fail_later(r);
	}
}

/* route=[ADDR]:PORT: the address itself, no lookup. */
static int
route_addr(struct primary_conn *r, const char *host, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&r->ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->ss;

	memset(&r->ss, 0, sizeof(r->ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		r->sslen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		r->sslen = sizeof(*s6);
	} else
		return 0;
	str_copy(r->hop[0].host, sizeof(r->hop[0].host), host);
	r->nhop = 1;
	r->cur = 0;
	return 1;
}

/* The route's address is one we listen on (route_addr() filled r->ss). */
static int
route_is_self(struct primary_conn *r)
{
	struct mx_self self = r->pc->self;
	uint8_t a[16];

	self.dport = r->port = ntohs(r->ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&r->ss)->sin_port :
	    ((struct sockaddr_in6 *)&r->ss)->sin6_port);
	self.refuse_special = 0;
	return ranges_from_sockaddr((struct sockaddr *)&r->ss, a) == 0 &&
	    mx_addr_verdict(a, &self) == MX_ADDR_SELF;
}

/* --- the face ----------------------------------------------------------- */

struct primary_conn *
primary_connect(struct primary_connector *pc, const char *domain,
    const struct client_conf *conf, primary_connect_cb *cb, void *arg)
{
	struct primary_conn *r = xcalloc(1, sizeof(*r));
	const struct domain *dom;
	int no_mx = 0, routed = 0;

	r->pc = pc;
	r->cb = cb;
	r->arg = arg;
	str_copy(r->domain, sizeof(r->domain), domain);
	str_lower(r->domain);
	r->cconf = *conf;
	str_copy(r->helo, sizeof(r->helo), conf->helo_name);
	r->cconf.helo_name = r->helo;
	r->ev_fail = event_new(pc->base, -1, 0, fail_cb, r);
	r->ev_deadline = evtimer_new(pc->base, deadline_cb, r);
	if (conf->connect_timeout > 0) {
		struct timeval tv = { (time_t)conf->connect_timeout, 0 };

		evtimer_add(r->ev_deadline, &tv);
	}
	r->next = pc->reqs;
	if (pc->reqs != NULL)
		pc->reqs->prev = r;
	pc->reqs = r;

	r->port = (uint16_t)pc->conf->delivery_port;
	str_copy(r->name, sizeof(r->name), r->domain);
	dom = pc->domains ? domains_lookup(pc->domains, r->domain) : NULL;
	if (dom != NULL && dom->mx_check_off)
		r->trusted = 1;		/* private MX hosts are known */
	if (dom != NULL && dom->route_host[0] != '\0') {
		/* The operator's word, taken as it is, except where it
		 * names ourselves. */
		r->trusted = 1;
		if (route_addr(r, dom->route_host, dom->route_port)) {
			if (route_is_self(r)) {
				fail_self(r);
				return r;
			}
			r->found = 1;
			start_client(r);
			return r;
		}
		/* route=HOST:PORT (MX of HOST) or route=[HOST]:PORT. */
		routed = 1;
		r->port = dom->route_port;
		str_copy(r->name, sizeof(r->name), dom->route_host);
		no_mx = dom->route_no_mx;
	}
	if (pc->resolver == NULL) {
		if (routed)
			str_copy(r->why, sizeof(r->why),
			    "451 4.4.3 no resolver");
		else
			snprintf(r->why, sizeof(r->why), "451 4.4.3 no "
			    "resolver for the MX of %s", r->domain);
		fail_later(r);
		return r;
	}
	if (no_mx) {
		str_copy(r->hop[0].host, sizeof(r->hop[0].host), r->name);
		r->nhop = 1;
		r->cur = 0;
		addr_lookup(r, DNS_T_A);
		return r;
	}
	r->rq = resolver_query(pc->resolver, r->name, DNS_T_MX, mx_answer, r);
	return r;
}

void
primary_connect_cancel(struct primary_conn *r)
{
	if (r == NULL)
		return;
	stop_work(r);
	req_free(r);
}

struct primary_connector *
primary_connector_new(struct event_base *base, const struct config *conf)
{
	struct primary_connector *pc = xcalloc(1, sizeof(*pc));

	pc->base = base;
	pc->conf = conf;
	/* One client context for all of these connections. */
	if ((pc->tls = SSL_CTX_new(TLS_client_method())) != NULL) {
		SSL_CTX_set_verify(pc->tls, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_options(pc->tls, SSL_OP_IGNORE_UNEXPECTED_EOF |
		    SSL_OP_NO_RENEGOTIATION);
	}
	pc->cconf.helo_name = conf->myhostname;
	pc->cconf.tls = pc->tls;
	pc->cconf.connect_timeout = conf->smtp_connect_timeout;
	pc->cconf.greeting_timeout = conf->smtp_greeting_timeout;
	pc->cconf.command_timeout = conf->smtp_command_timeout;
	pc->cconf.data_init_timeout = conf->smtp_data_init_timeout;
	pc->cconf.data_block_timeout = conf->smtp_data_block_timeout;
	pc->cconf.data_done_timeout = conf->smtp_data_done_timeout;
	mx_self_init(&pc->self, &pc->self_store, conf);
	return pc;
}

void
primary_connector_free(struct primary_connector *pc)
{
	if (pc == NULL)
		return;
	/* Their callbacks do not run. */
	while (pc->reqs != NULL)
		primary_connect_cancel(pc->reqs);
	SSL_CTX_free(pc->tls);
	free(pc);
}

void
primary_connector_set_domains(struct primary_connector *pc,
    const struct domains *d)
{
	pc->domains = d;
}

void
primary_connector_set_resolver(struct primary_connector *pc,
    struct resolver *res)
{
	pc->resolver = res;
}

void
primary_connector_set_tls_hint(struct primary_connector *pc,
    primary_tls_hint_fn *fn, void *arg)
{
	pc->tls_hint = fn;
	pc->tls_hint_arg = arg;
}

const struct client_conf *
primary_client_conf(const struct primary_connector *pc)
{
	return &pc->cconf;
}
