/*
 * policy: the checks of docs/architecture.md §5 that decide MAIL and RCPT once
 * the protocol is satisfied, in a fixed order, merged by the rules of
 * verdict.h. The session asks; exactly one answer comes back through the
 * callback, always later from the event loop (never inside the call), or none
 * after policy_cancel().
 *
 * Relay control is not here: the session runs it first, before anything that
 * could accept (docs/principles.md §1.3), and only a customer domain's RCPT
 * reaches policy_check_rcpt().
 *
 * Each check is one step in the tables of policy.c and lives in a file of
 * its own; a step starts, and finishes with policy_step_done() — at once
 * or later from a callback — unless it is cancelled.
 */
#ifndef BACKMX_POLICY_H
#define BACKMX_POLICY_H

#include <sys/socket.h>

#include "addr.h"
#include "domains.h"
#include "verdict.h"

struct event_base;
struct config;
struct domain;
struct policy;
struct policy_client;
struct policy_check;

/* What the checks share: set up by main.c, each pointer may be NULL when
 * its part is not configured. */
struct policy_deps {
	struct event_base	*base;
	const struct config	*conf;
	struct resolver		*resolver;	/* src/dns */
	struct state		*state;		/* src/state */
	struct greylist		*greylist;	/* greylist.c: the static allow lists */
	struct learn		*learn;		/* src/state/learn.h */
	struct callout		*callout;	/* src/primary/callout.h */
	struct cluster		*cluster;	/* src/cluster: NULL, one node */
};

struct policy	*policy_new(const struct policy_deps *);
void		 policy_free(struct policy *);

/* One per SMTP session, from accept to close: checks that begin at
 * connect (the DNSBL lookup) start here. 'addr' is the client's address
 * in text. Never NULL. */
struct policy_client *policy_client_new(struct policy *,
		    const struct sockaddr *, const char *addr);
/* Cancels whatever is pending. */
void		 policy_client_free(struct policy_client *);

typedef void	policy_done_cb(const struct verdict_info *, void *arg);

/* At most one check per client at a time. The addresses and domain are
 * copied. */
void		 policy_check_mail(struct policy_client *,
		    const struct mailaddr *sender, policy_done_cb *, void *);
/*
 * RCPT in one of two modes (docs/architecture.md §5). POLICY_BACKUP: the
 * primary is down and the message would be stored: every check.
 * POLICY_FILTERED: pass-through with the domain's passthrough_filters=yes: the
 * DNS checks and the DNSBL only, no recipient knowledge, no greylisting. With
 * 'sender' set the sender's domain is checked first (a sender check delayed
 * from MAIL, as Postfix's smtpd_delay_reject: at MAIL the mode is not known
 * yet).
 */
enum policy_mode { POLICY_BACKUP, POLICY_FILTERED };
void		 policy_check_rcpt(struct policy_client *,
		    const struct mailaddr *sender, const struct mailaddr *rcpt,
		    const struct domain *, enum policy_mode, int check_sender,
		    policy_done_cb *, void *);
/* Forget the pending check: its callback will not run. */
void		 policy_cancel(struct policy_client *);

/* --- for the steps (policy_*.c files) ---------------------------------- */

enum policy_kind { POLICY_MAIL, POLICY_RCPT };

/* What a step sees. Valid until the step calls policy_step_done() or its
 * cancel function runs. */
struct policy_check {
	struct policy		*policy;
	struct policy_client	*client;
	enum policy_kind	 kind;
	struct mailaddr		 sender;
	struct mailaddr		 rcpt;		/* RCPT only */
	struct domain		 domain;	/* RCPT only; the customer's */
	enum policy_mode	 mode;		/* RCPT only */
	int			 check_sender;	/* RCPT only */
	struct verdict_info	 verdict;	/* merged so far */
};

/* A step that goes on later names how to stop it (with its state). */
typedef void	policy_cancel_fn(void *state);
void		policy_step_pending(struct policy_check *, policy_cancel_fn *,
		    void *state);
/* The step's answer; the next step starts (or the answer goes back). */
void		policy_step_done(struct policy_check *,
		    const struct verdict_info *);

/*
 * The runner over a step table: what policy_check_mail() and
 * policy_check_rcpt() do with the tables of policy.c, open so that
 * policy_test.c runs the real runner over fake steps. The table ends
 * with a NULL run. 'what' gives kind, sender, rcpt, domain, mode and
 * check_sender; the rest is the runner's.
 */
enum policy_step_when {
	POLICY_STEP_ALWAYS,
	POLICY_STEP_BACKUP,	/* RCPT in POLICY_BACKUP mode only */
	POLICY_STEP_SENDER,	/* RCPT with check_sender only */
	/* RCPT in POLICY_BACKUP mode, and only while every step before it
	 * accepted: a step that records something for a recipient
	 * (greylisting's triplet) must not run for one already deferred. */
	POLICY_STEP_BACKUP_CLEAN
};
struct policy_step {
	const char		*name;
	void			(*run)(struct policy_check *);
	enum policy_step_when	 when;
};
void		policy_run(struct policy_client *,
		    const struct policy_check *what, const struct policy_step *,
		    policy_done_cb *, void *);

/*
 * Per-client state of a step that begins at connect (the DNSBL lookup):
 * a slot per such module, set by its connect hook and released by its
 * disconnect hook (the tables in policy.c).
 */
enum policy_slot {
	POLICY_SLOT_DNSBL,
	POLICY_NSLOTS
};
void		**policy_client_slot(struct policy_client *, enum policy_slot);

/*
 * Per-policy state of a module (parsed configuration, counters): made by
 * policy_new() and freed by policy_free() through the module table in
 * policy.c. NULL when the module keeps none.
 */
enum policy_module {
	POLICY_MOD_DOMAINCHECK,
	POLICY_MOD_DNSBL,
	POLICY_NMODULES
};
void		*policy_module(const struct policy *, enum policy_module);

/* Shared parts, for the steps. */
const struct policy_deps *policy_deps(const struct policy *);
/* The policy a client belongs to. */
struct policy		*policy_client_policy(const struct policy_client *);
/* The client's address: sockaddr and text. */
const struct sockaddr	*policy_client_sa(const struct policy_client *);
const char		*policy_client_addr(const struct policy_client *);
/* The client's DNS budget: every lookup a check starts for it goes
 * through resolver_query_budget() with it (docs/dns.md, "Bounds"). */
struct resolver_budget	*policy_client_dns(const struct policy_client *);

#endif
