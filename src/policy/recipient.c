/*
 * recipient: backup-mode recipient verification (recipient.h).
 */
#include "recipient.h"

#include <time.h>

#include "callout.h"
#include "config.h"
#include "learn.h"
#include "policy.h"

void
recipient_step(struct policy_check *chk)
{
	const struct policy_deps *deps = policy_deps(chk->policy);
	const struct domain *dom = &chk->domain;
	struct verdict_info v;
	char key[STATE_ADDR_MAX];
	int64_t now = time(NULL);
	int lc, st, unverified_ok;

	verdict_accept(&v);
	if (deps->learn == NULL) {
		policy_step_done(chk, &v);
		return;
	}
	learn_key(key, sizeof(key), chk->rcpt.local, chk->rcpt.domain);
	if ((lc = learn_lifecycle(deps->learn, dom->name, now)) == -1 ||
	    (st = learn_rcpt_status(deps->learn, dom, key, now)) == -1) {
		verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0", "store_error",
		    "<%s>: Temporary lookup failure", key);
		policy_step_done(chk, &v);
		return;
	}
	unverified_ok = dom->accept_unverified != -1 ? dom->accept_unverified :
	    deps->conf->accept_unverified;
	if (lc == STATE_DOM_LEARNING)
		verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.7.1", "learning",
		    "<%s>: Recipient address deferred: %s is new to this "
		    "backup MX and is still being learned; try again later",
		    key, dom->name);
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
