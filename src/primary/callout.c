/*
 * callout: recipient verification and the acceptance probe (callout.h).
 */
#include "callout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "connect.h"
#include "domains.h"
#include "health.h"
#include "learn.h"
#include "log.h"
#include "reply.h"
#include "str.h"
#include "xmem.h"

/* RCPTs asked on one connection: a primary counts its own limits. */
#define CALLOUT_BATCH	20
#define CDOM_BUCKETS_MIN 64

struct caddr {
	struct caddr	*next;
	char		 addr[STATE_ADDR_MAX];
	int		 probe;		/* the acceptance probe */
	int		 leased;	/* ours to call out (the cluster said) */
	void		*lease;		/* asking the cluster */
	struct cdomain	*cd;		/* while asking */
};

/*
 * A domain with callout work: waiting or asked addresses, a connection,
 * a retry time or a spent budget. Found by name in a hash table; only
 * these are looked at each second, and one that is idle again (nothing
 * waiting, its budget full) is freed: 100,000 customer domains cost
 * nothing here until they have work (issue 16).
 */
struct cdomain {
	struct cdomain		*hnext;		/* hash chain */
	struct cdomain		*prev, *next;	/* every cdomain */
	struct callout		*co;
	char			 name[256];
	struct caddr		*wait;		/* FIFO */
	struct caddr		**wait_tail;
	struct caddr		*asked;		/* on the connection now */
	size_t			 nwait;
	size_t			 nasked;
	size_t			 nanswered;
	size_t			 leasing;	/* asked addresses waiting for
						   their lease */
	double			 tokens;	/* RCPTs we may ask now */
	time_t			 refilled;
	time_t			 retry_at;	/* after a failed callout */
	struct primary_conn	*req;
	struct client		*c;
};

struct callout {
	struct event_base	*base;
	const struct config	*conf;
	struct primary_connector *connector;
	struct primary_health	*health;
	struct learn		*learn;
	const struct domains	*domains;
	struct cdomain		*doms;		/* every cdomain */
	struct cdomain		**bkt;		/* by lower-case name */
	size_t			 nbkt, ndoms;
	size_t			 nwait;		/* in all */
	struct event		*tick;
	size_t			 probe_next;	/* domains_at() to look at next */
	struct primary_lease	 lease;		/* take NULL: no cluster */
};

static uint32_t
hash_name(const char *p)
{
	uint32_t h = 2166136261u;	/* FNV-1a, lower-cased */

	for (; *p != '\0'; p++)
		h = (h ^ (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p))
		    * 16777619u;
	return h;
}

static void
cdomain_rehash(struct callout *co)
{
	struct cdomain **nb, *cd;
	size_t m = co->nbkt * 2, k;

	nb = xcalloc(m, sizeof(*nb));
	for (cd = co->doms; cd != NULL; cd = cd->next) {
		k = hash_name(cd->name) & (m - 1);
		cd->hnext = nb[k];
		nb[k] = cd;
	}
	free(co->bkt);
	co->bkt = nb;
	co->nbkt = m;
}

static struct cdomain *
cdomain_find(struct callout *co, const char *name)
{
	struct cdomain *cd;

	for (cd = co->bkt[hash_name(name) & (co->nbkt - 1)]; cd != NULL;
	    cd = cd->hnext)
		if (strcasecmp(cd->name, name) == 0)
			return cd;
	return NULL;
}

static void
cdomain_free(struct cdomain *cd)
{
	struct callout *co = cd->co;
	struct cdomain **pp;

	for (pp = &co->bkt[hash_name(cd->name) & (co->nbkt - 1)]; *pp != cd;
	    pp = &(*pp)->hnext)
		;
	*pp = cd->hnext;
	if (cd->prev != NULL)
		cd->prev->next = cd->next;
	else
		co->doms = cd->next;
	if (cd->next != NULL)
		cd->next->prev = cd->prev;
	co->ndoms--;
	free(cd);
}

/* Nothing waiting, asked or connecting, no retry time ahead, and the
 * budget full again: a new cdomain would be the same. */
static int
cdomain_idle(const struct cdomain *cd, time_t now)
{
	const struct config *c = cd->co->conf;

	return cd->wait == NULL && cd->asked == NULL && cd->req == NULL &&
	    cd->c == NULL && now >= cd->retry_at &&
	    cd->tokens + (double)(now - cd->refilled) *
	    c->callout_rate_limit / 60.0 >= c->callout_rate_limit;
}

static struct cdomain *
cdomain_get(struct callout *co, const char *name)
{
	struct cdomain *cd;
	size_t k;

	if ((cd = cdomain_find(co, name)) != NULL)
		return cd;
	if (co->ndoms >= co->nbkt)
		cdomain_rehash(co);
	cd = xcalloc(1, sizeof(*cd));
	cd->co = co;
	str_copy(cd->name, sizeof(cd->name), name);
	cd->wait_tail = &cd->wait;
	cd->tokens = co->conf->callout_rate_limit;
	cd->refilled = time(NULL);
	cd->next = co->doms;
	if (co->doms != NULL)
		co->doms->prev = cd;
	co->doms = cd;
	k = hash_name(cd->name) & (co->nbkt - 1);
	cd->hnext = co->bkt[k];
	co->bkt[k] = cd;
	co->ndoms++;
	return cd;
}

static int
listed(const struct caddr *a, const char *addr)
{
	for (; a != NULL; a = a->next)
		if (strcmp(a->addr, addr) == 0)
			return 1;
	return 0;
}

static void
enqueue(struct callout *co, const char *domain, const char *addr, int probe)
{
	struct cdomain *cd = cdomain_get(co, domain);
	struct caddr *a;
	char la[LOG_PATH_SIZE];

	if (listed(cd->wait, addr) || listed(cd->asked, addr))
		return;
	if (co->nwait >= co->conf->callout_queue_limit) {
		log_warn("event=callout_queue_full domain=%s rcpt=%s "
		    "limit=%u", cd->name, log_path(la, sizeof(la), addr),
		    co->conf->callout_queue_limit);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	str_copy(a->addr, sizeof(a->addr), addr);
	a->probe = probe;
	*cd->wait_tail = a;
	cd->wait_tail = &a->next;
	cd->nwait++;
	co->nwait++;
}

void
callout_want(struct callout *co, const char *domain, const char *addr)
{
	enqueue(co, domain, addr, 0);
}

static void
free_list(struct caddr *a)
{
	struct caddr *n;

	for (; a != NULL; a = n) {
		n = a->next;
		free(a);
	}
}

/* The connection is over: what was not answered waits again, first.
 * After a failure ('failed'), not before primary_probe_interval: a
 * primary that refuses us must not be asked every second. */
static void
session_end(struct cdomain *cd, int failed)
{
	struct callout *co = cd->co;
	struct caddr *a, *last = NULL;

	cd->req = NULL;
	cd->c = NULL;
	if (failed)
		cd->retry_at = time(NULL) +
		    (time_t)co->conf->primary_probe_interval;
	for (a = cd->asked; a != NULL; a = a->next)
		last = a;
	if (last != NULL) {
		last->next = cd->wait;
		if (cd->wait == NULL)
			cd->wait_tail = &last->next;
		cd->wait = cd->asked;
		cd->nwait += cd->nasked;
		co->nwait += cd->nasked;
	}
	cd->asked = NULL;
	cd->nasked = 0;
	cd->nanswered = 0;
}

/* The answered head of 'asked' goes. */
static struct caddr *
asked_pop(struct cdomain *cd)
{
	struct caddr *a = cd->asked;

	if (a != NULL) {
		cd->asked = a->next;
		cd->nasked--;
	}
	return a;
}

static void
summary(const struct reply *r, char *out, size_t outsz)
{
	size_t n;
	const char *t = reply_first_text(r, &n);
	char esc[STATE_WHY_MAX];
	int k;

	log_escape(esc, sizeof(esc), t, n);
	k = snprintf(out, outsz, "%d%s%s ", r->code, r->enh[0] ? " " : "",
	    r->enh);
	if (k > 0 && (size_t)k < outsz)
		str_copy(out + k, outsz - (size_t)k, esc);
}

static void
rcpt_cb(struct client *c, const struct reply *r, void *arg)
{
	struct cdomain *cd = arg;
	struct callout *co = cd->co;
	struct caddr *a = asked_pop(cd);
	char why[STATE_WHY_MAX], la[LOG_PATH_SIZE];
	time_t now = time(NULL);

	(void)c;
	if (a == NULL)
		return;
	summary(r, why, sizeof(why));
	log_info("event=callout domain=%s rcpt=%s probe=%s reply=\"%s\"",
	    cd->name, log_path(la, sizeof(la), a->addr), a->probe ? "yes" : "no", why);
	if (a->probe && r->code / 100 == 2)
		learn_accepted(co->learn, cd->name, "probe", now);
	learn_rcpt_answer(co->learn, a->addr, r->code, r->enh, why,
	    STATE_SRC_CALLOUT, now);
	free(a);
}

static void
rset_cb(struct client *c, const struct reply *r, void *arg)
{
	struct cdomain *cd = arg;

	(void)r;
	client_quit(c);
	session_end(cd, 0);
}

static void
mail_cb(struct client *c, const struct reply *r, void *arg)
{
	struct cdomain *cd = arg;
	char why[STATE_WHY_MAX];

	if (r->code / 100 == 2)
		return;		/* the pipelined RCPTs answer next */
	/* MAIL FROM:<> refused: the primary refuses backmx or null
	 * senders; no RCPT answer can be trusted. Learn nothing. */
	summary(r, why, sizeof(why));
	log_warn("event=callout_refused domain=%s reply=\"%s\"", cd->name,
	    why);
	client_quit(c);
	session_end(cd, 1);
}

static void
event_cb(struct client *c, enum client_event ev, void *arg)
{
	struct cdomain *cd = arg;

	if (ev != CLIENT_FAILED)
		return;
	log_info("event=callout_failed domain=%s error=\"%s\"", cd->name,
	    client_error(c));
	client_free(c);
	session_end(cd, 1);
}

static void
connected(struct client *c, int reached, const char *why, void *arg)
{
	struct cdomain *cd = arg;
	struct callout *co = cd->co;
	char line[STATE_ADDR_MAX + 16];
	struct caddr *a;

	cd->req = NULL;
	if (c == NULL) {
		log_info("event=callout_failed domain=%s error=\"%s\"",
		    cd->name, why);
		/* Strangers' RCPTs start callouts: a failure is only a
		 * suspicion, our own probe decides (health.h). */
		if (reached >= 0)	/* -1: out of descriptors here */
			primary_health_suspect(co->health, cd->name, why);
		session_end(cd, 1);
		return;
	}
	primary_health_ok(co->health, cd->name);
	cd->c = c;
	client_set_cb(c, event_cb, cd);
	if (client_cmd(c, "MAIL FROM:<>", 0, mail_cb, cd) == -1)
		goto fail;
	for (a = cd->asked; a != NULL; a = a->next) {
		snprintf(line, sizeof(line), "RCPT TO:<%s>", a->addr);
		if (client_cmd(c, line, 0, rcpt_cb, cd) == -1)
			goto fail;
	}
	if (client_cmd(c, "RSET", 0, rset_cb, cd) == -1)
		goto fail;
	return;
fail:
	client_free(c);
	session_end(cd, 1);
}

/* One connection for what is in 'asked'. */
static void
dial(struct cdomain *cd)
{
	struct callout *co = cd->co;
	const struct client_conf *base = primary_client_conf(co->connector);
	struct client_conf cc;

	cc = *base;
	cc.connect_timeout = co->conf->passthrough_connect_timeout;
	cc.greeting_timeout = co->conf->passthrough_connect_timeout;
	cd->req = primary_connect(co->connector, cd->name, &cc, connected, cd);
}

/*
 * The cluster's answer for one address (docs/cluster.md "One probe, one
 * callout"): another node calls it out, so this one drops it; the RCPT
 * was answered 4xx already, and the sender's retry finds the answer, or
 * asks again. Its RCPT token is given back. The last answer dials.
 */
static void
lease_done(int go, void *arg)
{
	struct caddr *a = arg, **pp;
	struct cdomain *cd = a->cd;

	a->lease = NULL;
	cd->leasing--;
	if (go)
		a->leased = 1;
	else {
		for (pp = &cd->asked; *pp != a; pp = &(*pp)->next)
			;
		*pp = a->next;
		cd->nasked--;
		cd->tokens += 1.0;
		free(a);
	}
	if (cd->leasing == 0 && cd->nasked > 0)
		dial(cd);
}

/* Leases for the addresses of 'asked' not ours yet; how many asked. The
 * acceptance probe takes none: what it proves (the domain lifecycle) is
 * each node's own until that is shared. */
static size_t
ask_leases(struct cdomain *cd)
{
	struct callout *co = cd->co;
	struct caddr *a;

	if (co->lease.take == NULL)
		return 0;
	/* Counted first: an answer must not see leasing reach 0 early. */
	for (a = cd->asked; a != NULL; a = a->next)
		if (!a->probe && !a->leased)
			cd->leasing++;
	for (a = cd->asked; a != NULL; a = a->next)
		if (!a->probe && !a->leased) {
			a->cd = cd;
			/* Held for primary_probe_interval: a holder whose
			 * callout failed tries again after that long. */
			a->lease = co->lease.take(co->lease.owner, cd->name,
			    a->addr, co->conf->primary_probe_interval,
			    lease_done, a);
		}
	return cd->leasing;
}

/* Move up to the budget from 'wait' to 'asked' and connect. */
static void
start(struct cdomain *cd, time_t now)
{
	struct callout *co = cd->co;
	struct caddr *a, **tail = &cd->asked;

	cd->tokens += (double)(now - cd->refilled) *
	    co->conf->callout_rate_limit / 60.0;
	if (cd->tokens > co->conf->callout_rate_limit)
		cd->tokens = co->conf->callout_rate_limit;
	cd->refilled = now;
	while (cd->nasked < CALLOUT_BATCH && cd->tokens >= 1.0 &&
	    (a = cd->wait) != NULL) {
		cd->wait = a->next;
		if (cd->wait == NULL)
			cd->wait_tail = &cd->wait;
		a->next = NULL;
		*tail = a;
		tail = &a->next;
		cd->nasked++;
		cd->nwait--;
		co->nwait--;
		cd->tokens -= 1.0;
	}
	if (cd->nasked == 0 || ask_leases(cd) > 0)
		return;
	dial(cd);
}

size_t
callout_probe_budget(size_t ndomains, unsigned interval)
{
	size_t n;

	if (ndomains == 0)
		return 0;
	if (interval == 0)
		interval = 1;
	n = (ndomains + interval - 1) / interval;
	return n < CALLOUT_PROBE_RATE_MAX ? n : CALLOUT_PROBE_RATE_MAX;
}

/*
 * Every acceptance_probe_interval per domain, while its primary is up:
 * each second the walk looks at the next callout_probe_budget() domains
 * of domains_file, so the probes are spread over the interval, never all
 * at start (issue 16: 100,000 domains queued at once filled the callout
 * queue, logged ~9,000 lines a second and kept a core busy). While the
 * callout queue is half full the walk waits: the senders' own callouts
 * come first, and a probe that cannot be queued is not lost, only later.
 */
static void
probe_walk(struct callout *co, time_t now)
{
	struct state_domain d;
	char addr[STATE_ADDR_MAX];
	size_t n, i, budget;
	unsigned every = co->conf->acceptance_probe_interval;

	if (co->domains == NULL || (n = domains_count(co->domains)) == 0)
		return;
	budget = callout_probe_budget(n, every);
	for (i = 0; i < budget; i++) {
		const struct domain *dom;

		if (co->nwait >= (co->conf->callout_queue_limit + 1) / 2)
			return;
		if (co->probe_next >= n)
			co->probe_next = 0;
		dom = domains_at(co->domains, co->probe_next++);
		if (!primary_health_up(co->health, dom->name) ||
		    learn_domain(co->learn, dom->name, now, &d) == -1 ||
		    (d.last_probe != 0 && now < d.last_probe + (int64_t)every))
			continue;
		learn_key(addr, sizeof(addr), "postmaster", dom->name);
		enqueue(co, dom->name, addr, 1);
		learn_probed(co->learn, dom->name, now);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct callout *co = arg;
	struct cdomain *cd, *next;
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	probe_walk(co, now);
	for (cd = co->doms; cd != NULL; cd = next) {
		next = cd->next;
		if (cdomain_idle(cd, now)) {
			cdomain_free(cd);
			continue;
		}
		if (cd->wait == NULL || cd->req != NULL || cd->c != NULL ||
		    cd->leasing > 0 || now < cd->retry_at ||
		    !primary_health_up(co->health, cd->name))
			continue;
		start(cd, now);
	}
}

struct callout *
callout_new(struct event_base *base, const struct config *conf,
    struct primary_connector *pc, struct primary_health *h,
    struct learn *l)
{
	struct callout *co = xcalloc(1, sizeof(*co));
	struct timeval one = { 1, 0 };

	co->base = base;
	co->conf = conf;
	co->connector = pc;
	co->health = h;
	co->learn = l;
	co->nbkt = CDOM_BUCKETS_MIN;
	co->bkt = xcalloc(co->nbkt, sizeof(*co->bkt));
	co->tick = event_new(base, -1, EV_PERSIST, tick_cb, co);
	event_add(co->tick, &one);
	return co;
}

void
callout_set_domains(struct callout *co, const struct domains *doms)
{
	co->domains = doms;
	co->probe_next = 0;
}

void
callout_set_lease(struct callout *co, const struct primary_lease *l)
{
	if (l != NULL)
		co->lease = *l;
	else
		memset(&co->lease, 0, sizeof(co->lease));
}

void
callout_free(struct callout *co)
{
	struct cdomain *cd, *next;
	struct caddr *a;

	if (co == NULL)
		return;
	for (cd = co->doms; cd != NULL; cd = next) {
		next = cd->next;
		for (a = cd->asked; a != NULL; a = a->next)
			if (a->lease != NULL)
				co->lease.cancel(a->lease);
		primary_connect_cancel(cd->req);
		client_free(cd->c);
		free_list(cd->wait);
		free_list(cd->asked);
		free(cd);
	}
	event_free(co->tick);
	free(co->bkt);
	free(co);
}
