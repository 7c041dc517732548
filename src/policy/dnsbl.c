/*
 * dnsbl: DNS blocklist lookups of the client (docs/dns.md, "DNSBL"). The
 * connect hook asks every zone at once; the RCPT step answers from what
 * came back, waiting for the rest if need be. Per-client state lives in
 * the policy client's POLICY_SLOT_DNSBL from connect to close; every
 * pending query is cancelled in the disconnect hook (docs/principles.md §3).
 *
 * Decisions (docs/dns.md): listed in any zone (an A record with one of
 * the zone's codes) -> 554 5.7.1 naming the zone and the code; an answer
 * in 127.255.255.0/24 -> a warning, a counter, and the zone counts as not
 * answering; a zone not answering -> dnsbl_fail_action (451 4.4.3 or
 * nothing). NXDOMAIN, NODATA or any other code: not listed.
 */
#include "dnsbl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dnsxl.h"
#include "log.h"
#include "policy.h"
#include "ranges.h"
#include "resolver.h"
#include "str.h"
#include "xmem.h"

struct dnsbl {
	/* dnsbl_zones and dnsbl_allow, parsed at load (config.h) */
	const struct dnsxl_zone	*zones;
	size_t			 nzones;	/* 0: check_dnsbl off */
	const struct range	*allow;
	size_t			 nallow;
	int			 fail_tempfail;
	struct resolver		*resolver;
	struct dnsbl_stats	 stats;
	time_t			 last_error_log;
	uint64_t		 errors_unlogged;
};

enum zstate { Z_PENDING, Z_NOT_LISTED, Z_LISTED, Z_FAILED, Z_ERROR };

struct client;

struct zq {
	struct client		*cl;
	const struct dnsxl_zone	*zone;
	struct resolver_query	*q;
	enum zstate		 state;
	char			 code[RANGES_TEXT_MAX];	/* listed / error */
	const char		*why;			/* failed */
};

struct client {
	struct dnsbl		*m;
	struct policy_client	*pc;
	char			 ip[RANGES_TEXT_MAX];
	struct zq		 z[DNSXL_ZONES_MAX];
	size_t			 nz;
	size_t			 pending;
	struct policy_check	*waiting;	/* a RCPT step, if any */
};

void *
dnsbl_new(const struct policy_deps *deps)
{
	const struct config *conf = deps->conf;
	struct dnsbl *m = xcalloc(1, sizeof(*m));

	m->resolver = deps->resolver;
	m->fail_tempfail = strcmp(conf->dnsbl_fail_action, "ignore") != 0;
	m->zones = conf->dns_lists.dnsbl_zone;
	m->nzones = conf->dns_lists.ndnsbl_zones;
	m->allow = conf->dns_lists.dnsbl_allow_net;
	m->nallow = conf->dns_lists.ndnsbl_allow_nets;
	if (!conf->check_dnsbl)
		m->nzones = 0;
	return m;
}

void
dnsbl_free(void *m)
{
	free(m);
}

void
dnsbl_get_stats(const void *module, struct dnsbl_stats *out)
{
	const struct dnsbl *m = module;

	if (m == NULL)
		memset(out, 0, sizeof(*out));
	else
		*out = m->stats;
}

/* The verdict from the zones' answers, all of them in. */
static void
verdict_of(const struct client *cl, struct verdict_info *v)
{
	const struct zq *failed = NULL;
	size_t i;

	for (i = 0; i < cl->nz; i++) {
		const struct zq *z = &cl->z[i];

		if (z->state == Z_LISTED) {
			verdict_set(v, VERDICT_REJECT, 554, "5.7.1", "dnsbl",
			    "Service unavailable; Client host [%s] blocked "
			    "using %s (%s)", cl->ip, z->zone->name, z->code);
			return;
		}
		if ((z->state == Z_FAILED || z->state == Z_ERROR) &&
		    failed == NULL)
			failed = z;
	}
	if (failed != NULL && cl->m->fail_tempfail) {
		verdict_set(v, VERDICT_TEMPFAIL, 451, "4.4.3", "dnsbl_tempfail",
		    "Client host [%s]: DNSBL %s lookup failed, try again "
		    "later", cl->ip, failed->zone->name);
		return;
	}
	verdict_accept(v);
}

/* The 127.255.255.0/24 warning, at most once a minute: a peer can make
 * us ask, so a peer can make it happen (docs/principles.md §4). */
static void
log_error_answer(struct dnsbl *m, const struct zq *z)
{
	time_t now = time(NULL);

	m->stats.errors++;
	if (now - m->last_error_log < 60) {
		m->errors_unlogged++;
		return;
	}
	/* err (REFERENCE.md §1): the operator must fix the resolver or
	 * the key; until then the list is no protection. */
	log_err("event=dnsbl_error zone=%s client=%s code=%s "
	    "dnsbl_errors_total=%llu suppressed=%llu hint=\"the list "
	    "refuses to answer us: public resolver, query limit or key\"",
	    z->zone->name, z->cl->ip, z->code,
	    (unsigned long long)m->stats.errors,
	    (unsigned long long)m->errors_unlogged);
	m->last_error_log = now;
	m->errors_unlogged = 0;
}

static void
answer_cb(const struct dns_result *res, void *arg)
{
	struct zq *z = arg;
	struct client *cl = z->cl;
	struct dnsbl *m = cl->m;
	uint8_t a[PACKET_RR_MAX][4];
	size_t i, n = 0, which = 0;
	enum dnsxl_answer k;

	z->q = NULL;
	switch (res->status) {
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		z->state = Z_NOT_LISTED;
		break;
	case DNS_TEMPFAIL:
		z->state = Z_FAILED;
		z->why = res->why;
		m->stats.failures++;
		log_info("event=dnsbl zone=%s client=%s result=failed "
		    "why=%s", z->zone->name, cl->ip, res->why);
		break;
	case DNS_OK:
		for (i = 0; i < res->nrr; i++)
			if (res->rr[i].type == DNS_T_A)
				memcpy(a[n++], res->rr[i].u.a, 4);
		k = dnsxl_classify(z->zone, (const uint8_t (*)[4])a, n, &which);
		if (k == DNSXL_NOT_LISTED) {
			z->state = Z_NOT_LISTED;
			break;
		}
		snprintf(z->code, sizeof(z->code), "%u.%u.%u.%u", a[which][0],
		    a[which][1], a[which][2], a[which][3]);
		if (k == DNSXL_LISTED) {
			z->state = Z_LISTED;
			m->stats.listed++;
			log_info("event=dnsbl zone=%s client=%s result=listed "
			    "code=%s", z->zone->name, cl->ip, z->code);
		} else {
			z->state = Z_ERROR;
			log_error_answer(m, z);
		}
		break;
	}
	if (--cl->pending == 0 && cl->waiting != NULL) {
		struct policy_check *chk = cl->waiting;
		struct verdict_info v;

		cl->waiting = NULL;
		verdict_of(cl, &v);
		policy_step_done(chk, &v);
	}
}

void
dnsbl_connect(struct policy_client *pc)
{
	struct dnsbl *m;
	struct client *cl;
	uint8_t a[16];
	char name[DNS_NAME_MAX];
	size_t i;

	m = policy_module(policy_client_policy(pc), POLICY_MOD_DNSBL);
	if (m == NULL || m->nzones == 0 || m->resolver == NULL ||
	    ranges_from_sockaddr(policy_client_sa(pc), a) == -1)
		return;
	if (ranges_find(m->allow, m->nallow, a) != -1)
		return;		/* dnsbl_allow: never looked up */
	cl = xcalloc(1, sizeof(*cl));
	cl->m = m;
	cl->pc = pc;
	ranges_addr_text(a, cl->ip, sizeof(cl->ip));
	/* Each query is counted before it goes out; its answer comes
	 * from the loop anyway, never inside resolver_query(). */
	for (i = 0; i < m->nzones; i++) {
		struct zq *z = &cl->z[cl->nz];

		if (dnsxl_query_name(a, m->zones[i].name, name,
		    sizeof(name)) == -1)
			continue;
		z->cl = cl;
		z->zone = &m->zones[i];
		z->state = Z_PENDING;
		cl->nz++;
		cl->pending++;
		m->stats.lookups++;
		z->q = resolver_query(m->resolver, name, DNS_T_A, answer_cb,
		    z);
	}
	*policy_client_slot(pc, POLICY_SLOT_DNSBL) = cl;
}

void
dnsbl_disconnect(struct policy_client *pc)
{
	void **slot = policy_client_slot(pc, POLICY_SLOT_DNSBL);
	struct client *cl = *slot;
	size_t i;

	if (cl == NULL)
		return;
	for (i = 0; i < cl->nz; i++)
		resolver_cancel(cl->z[i].q);
	free(cl);
	*slot = NULL;
}

static void
wait_cancel(void *arg)
{
	struct client *cl = arg;

	cl->waiting = NULL;	/* the lookups go on for the next RCPT */
}

void
dnsbl_rcpt(struct policy_check *chk)
{
	struct client *cl = *policy_client_slot(chk->client,
	    POLICY_SLOT_DNSBL);
	struct verdict_info v;

	if (cl == NULL) {
		verdict_accept(&v);
		policy_step_done(chk, &v);
		return;
	}
	if (cl->pending > 0) {
		cl->waiting = chk;
		policy_step_pending(chk, wait_cancel, cl);
		return;
	}
	verdict_of(cl, &v);
	policy_step_done(chk, &v);
}
