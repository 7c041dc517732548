/*
 * policy: runs the checks of docs/architecture.md §5 in order and merges their
 * verdicts (verdict.h). Each check is a step: a function in a file of its
 * own that answers through policy_step_done(), now or later.
 *
 * Order matters and is written down here, in the tables, and nowhere
 * else. Relay control ran before (in the session). A definite REJECT
 * ends the run; a TEMPFAIL is remembered and the rest still runs, so a
 * later definite REJECT can win (docs/principles.md §2).
 *
 * Answers always reach the session from the loop, through a zero-delay
 * event, never on the stack of the call that asked: a session may end in
 * its callback.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dnsbl.h"
#include "domaincheck.h"
#include "greylist.h"
#include "log.h"
#include "config.h"
#include "recipient.h"
#include "resolver.h"
#include "xmem.h"

/* MAIL FROM, in order: the sender's domain (FQDN, exists, null MX, MX
 * ranges; docs/dns.md). */
static const struct policy_step mail_steps[] = {
	{ "sender_domain", domaincheck_mail, POLICY_STEP_ALWAYS },
	{ NULL, NULL, POLICY_STEP_ALWAYS }
};

/* RCPT TO for a customer domain, in order. */
static const struct policy_step rcpt_steps[] = {
	/* The sender's domain when MAIL could not check it (pass-through
	 * on: the mode is only known at the first RCPT). */
	{ "sender_domain", domaincheck_mail, POLICY_STEP_SENDER },
	/* The recipient's domain (docs/dns.md), then the client in the
	 * DNSBLs: its lookup started at connect, so it has usually
	 * answered by now. Definite, stateless checks first. */
	{ "recipient_domain", domaincheck_rcpt, POLICY_STEP_ALWAYS },
	{ "dnsbl", dnsbl_rcpt, POLICY_STEP_ALWAYS },
	/* Backup mode only: what the primary would say of the recipient
	 * (docs/passthrough.md, "Learning"), then greylisting — last, and only when
	 * nothing before it refused or deferred: only what nothing refused
	 * is worth a triplet. A recipient already deferred (450 4.1.1
	 * invalid or unverified, 450 4.7.1 learning, a DNS tempfail) would
	 * otherwise pass on its retries and count toward
	 * greylist_auto_allow_passes (docs/greylisting.md). */
	{ "recipient", recipient_step, POLICY_STEP_BACKUP },
	{ "greylist", greylist_step, POLICY_STEP_BACKUP_CLEAN },
	{ NULL, NULL, POLICY_STEP_ALWAYS }
};

/* Modules with per-client state from connect to close. */
struct client_hook {
	void	(*connect)(struct policy_client *);
	void	(*disconnect)(struct policy_client *);
};
static const struct client_hook client_hooks[] = {
	{ dnsbl_connect, dnsbl_disconnect },
	{ NULL, NULL }
};

/* Modules with state for the policy's life (policy_module()). */
struct module_hook {
	enum policy_module	 id;
	void			*(*create)(const struct policy_deps *);
	void			 (*destroy)(void *);
};
static const struct module_hook module_hooks[] = {
	{ POLICY_MOD_DOMAINCHECK, domaincheck_new, domaincheck_free },
	{ POLICY_MOD_DNSBL, dnsbl_new, dnsbl_free },
	{ POLICY_NMODULES, NULL, NULL }
};

struct policy {
	struct policy_deps	deps;
	void			*modules[POLICY_NMODULES];
};

struct policy_client {
	struct policy		*policy;
	struct sockaddr_storage	 ss;
	char			 addr[64];
	void			*slots[POLICY_NSLOTS];
	/* What this session's checks may ask of the DNS (docs/dns.md,
	 * "Bounds"): one client cannot use up dns_max_queries. */
	struct resolver_budget	*dns;

	/* The check in flight, if any. */
	int			 busy;
	struct policy_check	 check;
	const struct policy_step *steps;
	size_t			 step;
	int			 in_step;	/* a step is running now */
	int			 step_done;	/* it answered synchronously */
	policy_cancel_fn	*cancel;
	void			*cancel_state;
	policy_done_cb		*done;
	void			*arg;
	struct event		*ev_answer;
};

static void	run_steps(struct policy_client *);

struct policy *
policy_new(const struct policy_deps *deps)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->deps = *deps;
	for (i = 0; module_hooks[i].create != NULL; i++)
		p->modules[module_hooks[i].id] =
		    module_hooks[i].create(&p->deps);
	return p;
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; module_hooks[i].create != NULL; i++)
		module_hooks[i].destroy(p->modules[module_hooks[i].id]);
	free(p);
}

void *
policy_module(const struct policy *p, enum policy_module m)
{
	return p->modules[m];
}

const struct policy_deps *
policy_deps(const struct policy *p)
{
	return &p->deps;
}

/* The check is over: its hold on the domains table goes (policy_run()). */
static void
check_release(struct policy_client *c)
{
	domains_free(c->check.domain.table);
	c->check.domain.table = NULL;
	c->check.domain.rcpts = NULL;
}

static void
answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct policy_client *c = arg;
	struct verdict_info v = c->check.verdict;

	c->busy = 0;
	check_release(c);
	c->done(&v, c->arg);
}

struct policy_client *
policy_client_new(struct policy *p, const struct sockaddr *sa,
    const char *addr)
{
	struct policy_client *c = xcalloc(1, sizeof(*c));
	size_t i;

	c->policy = p;
	memcpy(&c->ss, sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->ev_answer = event_new(p->deps.base, -1, 0, answer_cb, c);
	c->dns = resolver_budget_new(p->deps.conf->dns_session_max_queries,
	    p->deps.conf->dns_session_max_inflight);
	for (i = 0; client_hooks[i].connect != NULL; i++)
		client_hooks[i].connect(c);
	return c;
}

void
policy_client_free(struct policy_client *c)
{
	unsigned sent, refused, inflight;
	size_t i;

	if (c == NULL)
		return;
	policy_cancel(c);
	for (i = 0; client_hooks[i].disconnect != NULL; i++)
		client_hooks[i].disconnect(c);
	resolver_budget_counts(c->dns, &sent, &refused, &inflight);
	if (refused > 0)
		log_info("event=dns_budget client=%s sent=%u refused=%u "
		    "in_flight=%u", c->addr, sent, refused, inflight);
	/* Lives on while libunbound still has its questions. */
	resolver_budget_free(c->dns);
	event_free(c->ev_answer);
	free(c);
}

struct policy *
policy_client_policy(const struct policy_client *c)
{
	return c->policy;
}

const struct sockaddr *
policy_client_sa(const struct policy_client *c)
{
	return (const struct sockaddr *)&c->ss;
}

const char *
policy_client_addr(const struct policy_client *c)
{
	return c->addr;
}

struct resolver_budget *
policy_client_dns(const struct policy_client *c)
{
	return c->dns;
}

void **
policy_client_slot(struct policy_client *c, enum policy_slot slot)
{
	return &c->slots[slot];
}

void
policy_run(struct policy_client *c, const struct policy_check *what,
    const struct policy_step *steps, policy_done_cb *done, void *arg)
{
	if (c->busy)
		panic("policy: a check is already in flight");
	c->busy = 1;
	c->check = *what;
	/* The check's copy of the domain shares its table's recipients=
	 * list, and a reload may replace that table before the steps that
	 * read it run: the table stays until check_release(). */
	domains_ref(c->check.domain.table);
	c->check.policy = c->policy;
	c->check.client = c;
	verdict_accept(&c->check.verdict);
	c->steps = steps;
	c->step = 0;
	c->done = done;
	c->arg = arg;
	run_steps(c);
}

void
policy_check_mail(struct policy_client *c, const struct mailaddr *sender,
    policy_done_cb *done, void *arg)
{
	struct policy_check what;

	memset(&what, 0, sizeof(what));
	what.kind = POLICY_MAIL;
	what.sender = *sender;
	policy_run(c, &what, mail_steps, done, arg);
}

void
policy_check_rcpt(struct policy_client *c, const struct mailaddr *sender,
    const struct mailaddr *rcpt, const struct domain *dom,
    enum policy_mode mode, int check_sender, policy_done_cb *done, void *arg)
{
	struct policy_check what;

	memset(&what, 0, sizeof(what));
	what.kind = POLICY_RCPT;
	what.sender = *sender;
	what.rcpt = *rcpt;
	what.domain = *dom;
	what.mode = mode;
	what.check_sender = check_sender;
	policy_run(c, &what, rcpt_steps, done, arg);
}

void
policy_cancel(struct policy_client *c)
{
	if (!c->busy)
		return;
	if (c->cancel != NULL)
		c->cancel(c->cancel_state);
	c->cancel = NULL;
	c->cancel_state = NULL;
	event_del(c->ev_answer);
	c->busy = 0;
	check_release(c);
}

void
policy_step_pending(struct policy_check *chk, policy_cancel_fn *cancel,
    void *state)
{
	chk->client->cancel = cancel;
	chk->client->cancel_state = state;
}

void
policy_step_done(struct policy_check *chk, const struct verdict_info *v)
{
	struct policy_client *c = chk->client;

	c->cancel = NULL;
	c->cancel_state = NULL;
	verdict_merge(&c->check.verdict, v);
	c->step++;
	if (c->in_step) {
		/* Answered inside run(): the loop in run_steps() goes on. */
		c->step_done = 1;
		return;
	}
	run_steps(c);
}

/* Whether a step's 'when' holds for the check in flight. */
static int
step_applies(const struct policy_client *c, const struct policy_step *st)
{
	switch (st->when) {
	case POLICY_STEP_ALWAYS:
		return 1;
	case POLICY_STEP_BACKUP:
		return c->check.mode == POLICY_BACKUP;
	case POLICY_STEP_SENDER:
		return c->check.check_sender;
	case POLICY_STEP_BACKUP_CLEAN:
		return c->check.mode == POLICY_BACKUP &&
		    c->check.verdict.v == VERDICT_ACCEPT;
	}
	return 0;
}

/* Run steps until one goes asynchronous, a REJECT ends it, or all ran. */
static void
run_steps(struct policy_client *c)
{
	for (;;) {
		const struct policy_step *st = &c->steps[c->step];

		if (st->run == NULL || c->check.verdict.v == VERDICT_REJECT) {
			event_active(c->ev_answer, EV_TIMEOUT, 0);
			return;
		}
		if (!step_applies(c, st)) {
			c->step++;
			continue;
		}
		c->in_step = 1;
		c->step_done = 0;
		st->run(&c->check);
		c->in_step = 0;
		if (!c->step_done)
			return;		/* it answers later */
	}
}
