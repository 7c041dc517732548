/*
 * domaincheck: is the MAIL FROM or RCPT TO domain one mail can go to?
 * (docs/architecture.md §5, docs/dns.md). A step of policy.c, asynchronous
 * through the resolver:
 *
 *   FQDN syntax -> MX -> (null MX?) -> A and AAAA of each MX host, or of
 *   the domain itself when it has no MX (RFC 5321 §5.1 implicit MX)
 *
 * Only a definite answer rejects (docs/principles.md §1.2): NXDOMAIN; NOERROR
 * with no MX, no A and no AAAA; a null MX; every MX host without an address
 * outside the special-purpose table (src/dns/ranges.c) and mx_invalid_networks.
 * Any lookup in doubt (TEMPFAIL) that could have changed the answer makes the
 * answer 451 4.4.3. The first routable address found ends the check at once and
 * cancels the other lookups.
 *
 * Exposed to peer-chosen domains and to whatever DNS says about them:
 * the number of MX hosts looked at is bounded (DC_HOSTS_MAX).
 */
#include "domaincheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "dname.h"
#include "idna.h"
#include "log.h"
#include "policy.h"
#include "ranges.h"
#include "resolver.h"
#include "str.h"
#include "xmem.h"

#define DC_HOSTS_MAX	10	/* MX hosts looked up, best first */

struct domaincheck {
	/* mx_invalid_networks, parsed at load (config.h) */
	const struct config_dns_lists *lists;
};

struct job;

/* What a query's callback needs: its job and which lookup it is. */
struct qref {
	struct job	*job;
	size_t		 host;
	int		 k;		/* 0: A, 1: AAAA */
};

struct host {
	char			 name[DNS_NAME_MAX];
	struct resolver_query	*q[2];		/* A, AAAA */
	struct qref		 ref[2];
};

struct job {
	struct policy_check	*chk;
	const struct domaincheck *dc;
	struct resolver		*resolver;
	struct resolver_budget	*dns;		/* the session's (policy.h) */
	int			 sender;	/* MAIL, else RCPT */
	int			 check_ranges;
	char			 addr[ADDR_PATH_MAX + 1];	/* for texts */
	char			 domain[ADDR_DOMAIN_MAX + 1];
	struct resolver_query	*mxq;
	int			 implicit;	/* no MX: the domain itself */
	struct host		 hosts[DC_HOSTS_MAX];
	size_t			 nhosts;
	size_t			 pending;
	int			 tempfail;
	const char		*tempwhy;
	int			 any_addr;	/* some host had an address */
	int			 truncated;	/* MX hosts left unchecked */
	char			 bad[160];	/* the special address named */
	unsigned		 bad_rank;	/* its place: see routable() */
};

void *
domaincheck_new(const struct policy_deps *deps)
{
	struct domaincheck *dc = xcalloc(1, sizeof(*dc));

	dc->lists = &deps->conf->dns_lists;
	return dc;
}

void
domaincheck_free(void *dc)
{
	free(dc);
}

static void
cancel_queries(struct job *j)
{
	size_t i, k;

	resolver_cancel(j->mxq);
	j->mxq = NULL;
	for (i = 0; i < j->nhosts; i++)
		for (k = 0; k < 2; k++) {
			resolver_cancel(j->hosts[i].q[k]);
			j->hosts[i].q[k] = NULL;
		}
}

static void
job_cancel(void *arg)
{
	struct job *j = arg;

	cancel_queries(j);
	free(j);
}

/* The answer: to the runner, and the job is gone. */
static void
finish(struct job *j, const struct verdict_info *v)
{
	struct policy_check *chk = j->chk;

	cancel_queries(j);
	free(j);
	policy_step_done(chk, v);
}

static void
accept_now(struct job *j)
{
	struct verdict_info v;

	verdict_accept(&v);
	finish(j, &v);
}

static void
tempfail_now(struct job *j, const char *why)
{
	struct verdict_info v;

	/* 4.4.3: "directory server failure" (RFC 3463): the DNS did not
	 * say; the sender tries again later (docs/dns.md). */
	verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.4.3", "dns_tempfail",
	    "<%s>: %s address rejected: Domain lookup failed temporarily "
	    "(%s), try again later", j->addr, j->sender ? "Sender" :
	    "Recipient", why);
	finish(j, &v);
}

static void
not_found(struct job *j)
{
	struct verdict_info v;

	verdict_set(&v, VERDICT_REJECT, 550, j->sender ? "5.1.8" : "5.1.2",
	    "domain_not_found", "<%s>: %s address rejected: Domain %s not "
	    "found", j->addr, j->sender ? "Sender" : "Recipient", j->domain);
	finish(j, &v);
}

static void
no_routable(struct job *j)
{
	struct verdict_info v;

	verdict_set(&v, VERDICT_REJECT, 550, j->sender ? "5.1.8" : "5.1.2",
	    "mx_ranges", "<%s>: %s address rejected: Domain %s has no mail "
	    "server at a routable address (%s)", j->addr,
	    j->sender ? "Sender" : "Recipient", j->domain,
	    j->bad[0] != '\0' ? j->bad : "MX hosts do not resolve");
	finish(j, &v);
}

/* Is 'a' an address a mail server may have? Notes in j->bad the one that
 * is not with the lowest 'rank' (the host's place in preference order,
 * then A before AAAA): the refusal names the same address whatever
 * order the answers came in. */
static int
routable(struct job *j, const char *host, unsigned rank, const uint8_t a[16])
{
	const struct ranges_row *row = ranges_special(a);
	char t[RANGES_TEXT_MAX];
	int k = -1;

	if (row == NULL && (k = ranges_find(j->dc->lists->mx_invalid_net,
	    j->dc->lists->nmx_invalid_nets,
	    a)) == -1)
		return 1;
	if (j->bad[0] == '\0' || rank < j->bad_rank) {
		j->bad_rank = rank;
		ranges_addr_text(a, t, sizeof(t));
		if (row != NULL)
			snprintf(j->bad, sizeof(j->bad), "%s%s%s %s, %s",
			    host, host[0] ? ": " : "", t, row->what,
			    row->rfc);
		else
			snprintf(j->bad, sizeof(j->bad), "%s%s%s in "
			    "mx_invalid_networks", host, host[0] ? ": " : "",
			    t);
	}
	return 0;
}

/* Every A/AAAA lookup has answered, none with a routable address. */
static void
decide(struct job *j)
{
	if (j->tempfail) {
		tempfail_now(j, j->tempwhy);
		return;
	}
	if (j->implicit && !j->any_addr) {
		/* NOERROR without MX, A or AAAA: no such mail domain. */
		not_found(j);
		return;
	}
	if (!j->check_ranges || j->truncated) {
		accept_now(j);
		return;
	}
	no_routable(j);
}

static void
addr_cb(const struct dns_result *res, void *arg)
{
	struct qref *ref = arg;
	struct job *j = ref->job;
	struct host *h = &j->hosts[ref->host];
	uint8_t a[16];
	size_t i;

	h->q[ref->k] = NULL;		/* the handle is dead now */
	j->pending--;
	switch (res->status) {
	case DNS_OK:
		for (i = 0; i < res->nrr; i++) {
			if (res->rr[i].type == DNS_T_A)
				ranges_from_v4(res->rr[i].u.a, a);
			else if (res->rr[i].type == DNS_T_AAAA)
				memcpy(a, res->rr[i].u.aaaa, 16);
			else
				continue;
			j->any_addr = 1;
			/* One routable address settles it (or, with the
			 * range check off, any address at all). */
			if (!j->check_ranges ||
			    routable(j, j->implicit ? "" : h->name,
			    ref->host * 2 + ref->k, a)) {
				accept_now(j);
				return;
			}
		}
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		break;		/* RFC 5321 §5.1: a host without address */
	case DNS_TEMPFAIL:
		j->tempfail = 1;
		j->tempwhy = res->why;
		break;
	}
	if (j->pending == 0)
		decide(j);
}

/* MX host names that are addresses ("10 192.0.2.1."): a host without a
 * valid address (RFC 1035 §3.3.9, docs/dns.md, "The special-purpose table"). */
static int
looks_numeric(const char *name)
{
	uint8_t a[16];

	return ranges_addr_parse(name, a) == 0;
}

static void
lookup_hosts(struct job *j)
{
	static const uint16_t types[2] = { DNS_T_A, DNS_T_AAAA };
	size_t i, n = j->nhosts;
	int k;

	j->pending = 0;
	for (i = 0; i < n; i++)
		for (k = 0; k < 2; k++) {
			j->hosts[i].ref[k].job = j;
			j->hosts[i].ref[k].host = i;
			j->hosts[i].ref[k].k = k;
			j->pending++;
		}
	/* Counted first, asked after: answers only come from the loop,
	 * but keep the count whole before any of them can. */
	for (i = 0; i < n; i++)
		for (k = 0; k < 2; k++)
			j->hosts[i].q[k] = resolver_query_budget(j->resolver,
			    j->dns, j->hosts[i].name, types[k], addr_cb,
			    &j->hosts[i].ref[k]);
}

static int
cmp_pref(const void *a, const void *b)
{
	const struct dns_rr *x = a, *y = b;

	return (int)x->u.mx.pref - (int)y->u.mx.pref;
}

static void
mx_cb(const struct dns_result *res, void *arg)
{
	struct job *j = arg;
	struct dns_rr mx[PACKET_RR_MAX];
	struct verdict_info v;
	char ld[LOG_VALUE_SIZE(ADDR_DOMAIN_MAX)];
	size_t i, n = 0;

	j->mxq = NULL;
	switch (res->status) {
	case DNS_TEMPFAIL:
		tempfail_now(j, res->why);
		return;
	case DNS_NXDOMAIN:
		not_found(j);
		return;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX, the domain is its own implicit MX,
		 * and must have an address to exist for mail at all. */
		j->implicit = 1;
		str_copy(j->hosts[0].name, sizeof(j->hosts[0].name),
		    j->domain);
		j->nhosts = 1;
		lookup_hosts(j);
		return;
	case DNS_OK:
		break;
	}

	/* RFC 7505 §3: a single MX with the root as target: no mail. */
	if (res->nrr == 1 && res->rr[0].type == DNS_T_MX &&
	    strcmp(res->rr[0].u.mx.host, ".") == 0) {
		if (j->sender)
			verdict_set(&v, VERDICT_REJECT, 550, "5.7.27",
			    "null_mx", "<%s>: Sender address rejected: "
			    "Domain %s has null MX", j->addr, j->domain);
		else
			verdict_set(&v, VERDICT_REJECT, 556, "5.1.10",
			    "null_mx", "<%s>: Recipient address rejected: "
			    "Domain %s has null MX", j->addr, j->domain);
		finish(j, &v);
		return;
	}
	if (!j->check_ranges) {
		accept_now(j);
		return;
	}
	/* A null MX beside real ones is a misconfiguration: ignore it
	 * (docs/dns.md, "The special-purpose table"). */
	for (i = 0; i < res->nrr && n < PACKET_RR_MAX; i++)
		if (res->rr[i].type == DNS_T_MX &&
		    strcmp(res->rr[i].u.mx.host, ".") != 0)
			mx[n++] = res->rr[i];
	if (n == 0) {
		no_routable(j);
		return;
	}
	qsort(mx, n, sizeof(mx[0]), cmp_pref);
	if (n > DC_HOSTS_MAX) {
		/* XXX: hosts past the first DC_HOSTS_MAX are not looked
		 * at; if none of those has a routable address we cannot
		 * say the rest have none: accept rather than guess. */
		j->truncated = 1;
		log_debug("event=domaincheck domain=%s mx_hosts=%zu "
		    "checked=%d", log_value(ld, sizeof(ld), j->domain,
		    strlen(j->domain)), n, DC_HOSTS_MAX);
	}
	for (i = 0; i < n && j->nhosts < DC_HOSTS_MAX; i++) {
		if (looks_numeric(mx[i].u.mx.host)) {
			if (j->bad[0] == '\0')
				snprintf(j->bad, sizeof(j->bad), "MX host %s is "
				    "an address, not a name", mx[i].u.mx.host);
			continue;
		}
		str_copy(j->hosts[j->nhosts++].name, DNS_NAME_MAX,
		    mx[i].u.mx.host);
	}
	if (j->nhosts == 0) {
		if (j->truncated)
			accept_now(j);
		else
			no_routable(j);
		return;
	}
	lookup_hosts(j);
}

/* An address literal in MAIL FROM: the address itself is checked. */
static void
check_literal(struct job *j, const char *lit)
{
	struct verdict_info v;
	char t[RANGES_TEXT_MAX + 8];
	uint8_t a[16];
	size_t n = strlen(lit);

	/* "[192.0.2.1]", "[IPv6:2001:db8::1]" (RFC 5321 §4.1.3). */
	if (n < 3 || n - 2 >= sizeof(t)) {
		accept_now(j);
		return;
	}
	str_ncopy(t, sizeof(t), lit + 1, n - 2);
	if (strncasecmp(t, "IPv6:", 5) == 0)
		memmove(t, t + 5, strlen(t + 5) + 1);
	else if (strchr(t, ':') != NULL) {
		/* A General-address-literal: no address we know to check;
		 * nothing definite to say. */
		accept_now(j);
		return;
	}
	if (ranges_addr_parse(t, a) == -1 || !j->check_ranges ||
	    routable(j, "", 0, a)) {
		accept_now(j);
		return;
	}
	verdict_set(&v, VERDICT_REJECT, 550, "5.1.8", "mx_ranges",
	    "<%s>: Sender address rejected: %s is not a routable address "
	    "(%s)", j->addr, t, j->bad);
	finish(j, &v);
}

static void
start(struct policy_check *chk, const struct mailaddr *a, int sender,
    int check_ranges)
{
	const struct policy_deps *deps = policy_deps(chk->policy);
	struct verdict_info v;
	struct job *j;
	char al[ADDR_DOMAIN_MAX + 1];
	size_t i;

	j = xcalloc(1, sizeof(*j));
	j->chk = chk;
	j->dc = policy_module(chk->policy, POLICY_MOD_DOMAINCHECK);
	j->resolver = deps->resolver;
	j->dns = policy_client_dns(chk->client);
	j->sender = sender;
	j->check_ranges = check_ranges;
	addr_format(a, j->addr, sizeof(j->addr));
	str_copy(j->domain, sizeof(j->domain), a->domain);

	if (a->is_literal) {
		/* In RCPT TO a literal is never ours: relay control has
		 * refused it before policy runs. */
		if (sender)
			check_literal(j, a->domain);
		else
			accept_now(j);
		return;
	}
	for (i = 0; j->domain[i] != '\0'; i++)
		if ((unsigned char)j->domain[i] >= 0x80)
			break;
	/* The session hands over the A-label form (docs/smtp.md,
	 * "International mail"); a U-label from anywhere else is looked
	 * up in that form too, never let through unchecked. */
	if (j->domain[i] != '\0' && idna_to_alabel(j->domain,
	    strlen(j->domain), al, sizeof(al), NULL) != IDNA_OK) {
		verdict_set(&v, VERDICT_REJECT, 553, sender ? "5.1.8" :
		    "5.1.2", "bad_idna", "<%s>: %s address rejected: "
		    "invalid international domain name", j->addr,
		    sender ? "Sender" : "Recipient");
		finish(j, &v);
		return;
	}
	if (j->domain[i] != '\0')
		str_copy(j->domain, sizeof(j->domain), al);
	if (!dname_valid(j->domain, DNAME_FQDN)) {
		verdict_set(&v, VERDICT_REJECT, 504, "5.5.2", "fqdn",
		    "<%s>: %s address rejected: need fully-qualified address",
		    j->addr, sender ? "Sender" : "Recipient");
		finish(j, &v);
		return;
	}
	if (j->resolver == NULL) {
		accept_now(j);
		return;
	}
	policy_step_pending(chk, job_cancel, j);
	j->mxq = resolver_query_budget(j->resolver, j->dns, j->domain,
	    DNS_T_MX, mx_cb, j);
}

void
domaincheck_mail(struct policy_check *chk)
{
	const struct config *conf = policy_deps(chk->policy)->conf;
	struct verdict_info v;

	/* The null sender <> (bounces) has no domain to check. */
	if (!conf->check_sender_domain || chk->sender.is_null ||
	    chk->sender.domain[0] == '\0') {
		verdict_accept(&v);
		policy_step_done(chk, &v);
		return;
	}
	start(chk, &chk->sender, 1, conf->check_mx_ranges);
}

void
domaincheck_rcpt(struct policy_check *chk)
{
	const struct config *conf = policy_deps(chk->policy)->conf;
	struct verdict_info v;

	if (!conf->check_recipient_domain || chk->rcpt.domain[0] == '\0') {
		verdict_accept(&v);
		policy_step_done(chk, &v);
		return;
	}
	/* mx_check=no in domains_file: a customer whose own MX hosts are
	 * knowingly on private addresses. */
	start(chk, &chk->rcpt, 0, conf->check_mx_ranges &&
	    !chk->domain.mx_check_off);
}
