/*
 * learn: what backmx knows of each customer domain (docs/architecture.md §6),
 * kept in the state store: which recipients are real, where the domain is in
 * its lifecycle (learning, active, refused), and the health of its primary as
 * last seen. Every source of knowledge comes through here — pass-through RCPT
 * answers, delivery outcomes, callouts and acceptance probes, the static lists
 * of domains_file, the operator — so the rules of what an answer teaches live
 * in one place:
 *
 *   2xx to RCPT (250, 251)          the address is valid, and the primary
 *                                   accepted mail from backmx
 *   5xx with 5.1.1, 5.1.6 or 5.1.10 the address is invalid, unless the
 *                                   text is about the sender
 *   anything else                   nothing (a 554 greeting, a 5.7.x, a
 *                                   421, a 5.2.2, a 5.1.0 or 5.1.8 about
 *                                   the sender, a refused connection say
 *                                   something of backmx or of the client,
 *                                   not of the address)
 *
 * The lifecycle is evaluated when asked (and by a timer for the log): a
 * domain first seen in domains_file is `learning`; once learning_period
 * has passed it is `active` if its primary accepted something from
 * backmx, `refused` if not; a refused domain becomes active at its first
 * acceptance.
 *
 * Loop thread only. Writes are staged in the state store's transaction of
 * the loop turn; a store error is -1, which the policy turns into 4xx.
 */
#ifndef BACKMX_LEARN_H
#define BACKMX_LEARN_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct event_base;
struct config;
struct domain;
struct domains;
struct learn;

enum learn_status {
	LEARN_UNKNOWN = 0,
	LEARN_VALID,
	LEARN_INVALID,
};

struct learn	*learn_new(struct event_base *, const struct config *,
		    struct state *);
void		 learn_free(struct learn *);
/* The customer domains (at start and after each reload): a domain seen
 * for the first time starts learning now. The first few hundred at once,
 * the rest a batch a loop turn (a state store read each: a big table
 * must not stall the loop); a domain not reached yet is brought up to
 * date by its first use all the same (learn_domain()). */
void		 learn_set_domains(struct learn *, const struct domains *);

/*
 * The domain's record, its lifecycle brought up to date with 'now'
 * (transitions are written and logged). 0, or -1 on a store error. A
 * domain never seen gets its record now.
 */
int		 learn_domain(struct learn *, const char *domain, int64_t now,
		    struct state_domain *out);
/* The lifecycle the policy acts on: as learn_domain(), but `active`
 * whatever the record says when domain_learning = no. -1 on error. */
int		 learn_lifecycle(struct learn *, const char *domain,
		    int64_t now);

/* What is known of one address ("local@domain", any case): the domain's
 * static list first, then the store. -1 on a store error. */
int		 learn_rcpt_status(struct learn *, const struct domain *,
		    const char *addr, int64_t now);

/*
 * What the primary answered to RCPT for 'addr', and where we heard it
 * (STATE_SRC_*). 'enh' may be "" and 'text' is the reply's text for the
 * record. Learns per the table above; a 2xx also counts as an acceptance.
 */
void		 learn_rcpt_answer(struct learn *, const char *addr,
		    int code, const char *enh, const char *text, int source,
		    int64_t now);
/* The primary accepted mail from backmx ('how': "delivery",
 * "passthrough", "callout", "probe"). */
void		 learn_accepted(struct learn *, const char *domain,
		    const char *how, int64_t now);
/* The primary's health changed (sched.c): recorded for backmxctl. */
void		 learn_health(struct learn *, const char *domain, int up,
		    const char *why, int64_t now);
/* An acceptance probe was sent now. */
void		 learn_probed(struct learn *, const char *domain, int64_t now);

/* The rule of "invalid" in the table above, alone: 1 when a reply
 * (code, enhanced code or "", its text) says the mailbox does not exist. */
int		 learn_says_invalid(int code, const char *enh,
		    const char *text);

/* The operator's word (backmxctl recipients add): never expires. 0, -1
 * store error, -2 not an address of a customer domain. */
int		 learn_rcpt_add(struct learn *, const char *addr, int status,
		    int64_t now);

/*
 * The cluster's share (docs/cluster.md "Learned recipients"): told after
 * each recipient or lifecycle record this module writes from what this
 * node saw (not the operator's entries, not records merged from another
 * node). NULL functions: a single node.
 */
typedef void	learn_share_rcpt_fn(const struct state_rcpt *, void *arg);
typedef void	learn_share_domain_fn(const struct state_domain *, void *arg);
void		 learn_on_write(struct learn *, learn_share_rcpt_fn *,
		    learn_share_domain_fn *, void *arg);

/*
 * The merge rules of docs/cluster.md, alone: another node's record
 * 'remote' into '*local' ('have_local' 0: none here). A recipient: the
 * later last_seen wins (a tie keeps the local one); when both say the
 * same status, the earliest first_seen and the later expiry; an expired
 * remote record or a local operator's entry is left alone. A domain:
 * the earliest learning start ('added'), the earliest first acceptance
 * and the latest last one. 1 when *local changed, else 0.
 */
int		 learn_rcpt_merge(struct state_rcpt *local, int have_local,
		    const struct state_rcpt *remote, int64_t now);
int		 learn_domain_merge(struct state_domain *local,
		    const struct state_domain *remote);
/* Those rules applied to the store (staged in the loop turn's
 * transaction; a refused domain that gained an acceptance becomes
 * active). Nothing is shared again. 1 changed, 0 not, -1 store error. */
int		 learn_merge_rcpt(struct learn *, const struct state_rcpt *,
		    int64_t now);
int		 learn_merge_domain(struct learn *, const struct state_domain *,
		    int64_t now);

/* Domains refused now (for the operator: a metric). */
size_t		 learn_refused_count(const struct learn *);

/* Lower-case "local@domain" of an address into buf; "" when it does not
 * fit. The key of every recipient record. */
void		 learn_key(char *buf, size_t bufsz, const char *local,
		    const char *domain);

#endif
