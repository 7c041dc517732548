/*
 * recipient: backup-mode recipient verification (recipient.h).
 */
#include "recipient.h"

#include <stdlib.h>
#include <time.h>

#include "callout.h"
#include "cluster.h"
#include "config.h"
#include "learn.h"
#include "log.h"
#include "policy.h"
#include "xmem.h"

/* A check asking the cluster first (docs/cluster.md "Learned
 * recipients and the domain lifecycle"). */
struct rcptreq {
	struct policy_check		*chk;
	struct cluster_learned_op	*op;
};

/* This node's store decides, as a single node's. */
static void
decide(struct policy_check *chk, const char *key, int64_t now)
{
	const struct policy_deps *deps = policy_deps(chk->policy);
	const struct domain *dom = &chk->domain;
	struct verdict_info v;
	int lc, st, unverified_ok;

	verdict_accept(&v);
	if ((lc = learn_lifecycle(deps->learn, dom->name, now)) == -1 ||
	    (st = learn_rcpt_status(deps->learn, dom, key, now)) == -1) {
		verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0", "store_error",
		    "<%s>: Temporary lookup failure", key);
		policy_step_done(chk, &v);
		return;
	}
	unverified_ok = dom->accept_unverified != -1 ? dom->accept_unverified :
	    deps->conf->accept_unverified;
	if (lc == STATE_DOM_LEARNING) {
		verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.7.1", "learning",
		    "<%s>: Recipient address deferred: %s is new to this "
		    "backup MX and is still being learned; try again later",
		    key, dom->name);
		/* Learning is what the period is for (DESIGN.md §2): an
		 * address seen now is asked of the primary, so it is known
		 * when the period ends, not deferred again at the next
		 * outage. */
		if (st == LEARN_UNKNOWN && deps->callout != NULL)
			callout_want(deps->callout, dom->name, key);
	}
	else if (lc == STATE_DOM_REFUSED)
		verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.7.1", "refused",
		    "<%s>: Recipient address deferred: the mail server of %s "
		    "has never accepted mail from this backup MX; try again "
		    "later", key, dom->name);
	else if (st == LEARN_INVALID)
		verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.1.1", "rcpt_invalid",
		    "<%s>: Recipient address deferred: the primary mail "
		    "server says it does not exist", key);
	else if (st == LEARN_UNKNOWN && !unverified_ok) {
		verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.1.1",
		    "rcpt_unverified", "<%s>: Recipient address deferred: "
		    "not yet verified with the primary mail server; try "
		    "again later", key);
		if (deps->callout != NULL)
			callout_want(deps->callout, dom->name, key);
	}
	policy_step_done(chk, &v);
}

static void
req_cancel(void *arg)
{
	struct rcptreq *r = arg;

	cluster_learned_cancel(r->op);
	free(r);
}

/* What Redis knows goes into the store first (merged), then the store
 * decides; no answer: the store alone. */
static void
shared_cb(int rc, const struct state_rcpt *rec, const struct state_domain *d,
    void *arg)
{
	struct rcptreq *r = arg;
	struct policy_check *chk = r->chk;
	const struct policy_deps *deps = policy_deps(chk->policy);
	char key[STATE_ADDR_MAX];
	int64_t now = time(NULL);

	free(r);
	learn_key(key, sizeof(key), chk->rcpt.local, chk->rcpt.domain);
	if (rc == 0 && ((rec != NULL &&
	    learn_merge_rcpt(deps->learn, rec, now) == -1) ||
	    (d != NULL && learn_merge_domain(deps->learn, d, now) == -1)))
		log_err("event=store_error op=merge rcpt=%s", key);
	decide(chk, key, now);
}

void
recipient_step(struct policy_check *chk)
{
	const struct policy_deps *deps = policy_deps(chk->policy);
	struct verdict_info v;
	struct rcptreq *r;
	char key[STATE_ADDR_MAX];
	int64_t now = time(NULL);

	if (deps->learn == NULL) {
		verdict_accept(&v);
		policy_step_done(chk, &v);
		return;
	}
	learn_key(key, sizeof(key), chk->rcpt.local, chk->rcpt.domain);
	if (deps->cluster == NULL || key[0] == '\0') {
		decide(chk, key, now);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->chk = chk;
	r->op = cluster_learned_get(deps->cluster, key, chk->domain.name,
	    shared_cb, r);
	policy_step_pending(chk, req_cancel, r);
}
