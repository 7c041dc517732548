/*
 * resolver: asynchronous DNS for every part of backmx (the checks of
 * docs/architecture.md §5, delivery's MX lookups, later ones): libunbound on
 * our own libevent loop (ub_ctx_create_event: no thread, no fork), with its
 * cache capped at dns_cache_max_ttl for positive and negative answers alike.
 * Without forwarders it recurses from the root itself, as Spamhaus wants.
 *
 * One answer per query, always from the event loop (never on the stack of
 * resolver_query()), already parsed: OK with the records, NXDOMAIN,
 * NODATA, or TEMPFAIL for anything in doubt (SERVFAIL, timeout, a DNSSEC
 * failure, a packet we could not read, too many queries in flight, a
 * client's budget spent). A
 * TEMPFAIL is never a reason for a 5xx (docs/principles.md §1.2).
 *
 * Loop thread only (libunbound's event mode is not thread-safe).
 */
#ifndef BACKMX_RESOLVER_H
#define BACKMX_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"		/* DNS_T_*, struct dns_rr */

struct event_base;
struct resolver;
struct resolver_query;

enum dns_status {
	DNS_OK = 0,	/* records of the type asked for, nrr > 0 */
	DNS_NXDOMAIN,	/* the name (or the end of its CNAME chain) is not */
	DNS_NODATA,	/* the name is, without records of that type */
	DNS_TEMPFAIL,	/* doubt: ask again later */
};

struct dns_result {
	enum dns_status	 status;
	const char	*why;	/* TEMPFAIL: "servfail", "timeout", "bogus",
				 * "parse", "busy", "budget", "error";
				 * else "" */
	const char	*qname;	/* as asked */
	uint16_t	 qtype;
	const char	*canon;	/* end of the CNAME chain (qname if none) */
	int		 secure;	/* DNSSEC-validated */
	size_t		 nrr;
	const struct dns_rr *rr;	/* nrr records, in answer order */
};

/*
 * Called once per query unless resolver_cancel() ran first. *res and
 * everything it points to belong to the resolver and stay valid only for
 * the call: copy what you keep. The query handle is dead when it runs.
 */
typedef void	resolver_cb(const struct dns_result *res, void *arg);

struct resolver_conf {
	/* "ADDR[@PORT]" items separated by commas or white space; "" to
	 * recurse from the root. */
	const char	*forward;
	/* A trust anchor file (unbound's auto-trust-anchor format, e.g.
	 * /usr/share/dns/root.key): DNSSEC validation. ""/NULL: none. */
	const char	*trust_anchor_file;
	unsigned	 cache_max_ttl;	/* seconds, positive and negative */
	unsigned	 timeout;	/* seconds per query, ours */
	unsigned	 max_queries;	/* in flight; past it TEMPFAIL */
};

/* NULL with the reason in err when libunbound refuses the setup. */
struct resolver	*resolver_new(struct event_base *, const struct resolver_conf *,
		    char *err, size_t errsz);
/* Pending callbacks never run. NULL does nothing. */
void		 resolver_free(struct resolver *);

/*
 * Ask for (name, type); type one of DNS_T_A, DNS_T_AAAA, DNS_T_MX,
 * DNS_T_TXT, DNS_T_PTR. name is text, a trailing dot optional. Never
 * NULL: a query that cannot be made (too many in flight, a bad name)
 * answers TEMPFAIL through the loop like any other. The handle is valid
 * until the callback runs or resolver_cancel().
 */
struct resolver_query *resolver_query(struct resolver *, const char *name,
		    uint16_t type, resolver_cb *, void *arg);
/* The callback will not run. */
void		 resolver_cancel(struct resolver_query *);

/*
 * A budget: what one client of the resolver (an SMTP session's checks)
 * may ask, so that one client cannot use up dns_max_queries for
 * everyone (docs/dns.md, "Bounds"). 'max_inflight' bounds its questions
 * with libunbound at once, detached ones included (cancelled or past
 * dns_timeout, libunbound still works on them); 'max_queries' bounds the
 * questions it sends in its life — an answer libunbound gives at once
 * (its cache, a local zone) is not counted. Past either, a query
 * answers TEMPFAIL "budget" without being asked. 0: no bound.
 *
 * resolver_budget_free() is the owner's release: the budget lives on
 * while its questions are with libunbound, and goes with the last.
 */
struct resolver_budget;
struct resolver_budget *resolver_budget_new(unsigned max_queries,
		    unsigned max_inflight);
void		 resolver_budget_free(struct resolver_budget *);
/* resolver_query() on a budget; NULL: none, as resolver_query(). */
struct resolver_query *resolver_query_budget(struct resolver *,
		    struct resolver_budget *, const char *name, uint16_t type,
		    resolver_cb *, void *arg);
/* Questions sent and refused so far, and in flight now (for logs). */
void		 resolver_budget_counts(const struct resolver_budget *,
		    unsigned *sent, unsigned *refused, unsigned *in_flight);

struct resolver_stats {
	uint64_t	queries;	/* asked of libunbound */
	uint64_t	tempfails;	/* answers that were TEMPFAIL */
	uint64_t	busy;		/* refused: dns_max_queries reached */
	uint64_t	over_budget;	/* refused: a client's budget spent */
	uint64_t	timeouts;	/* dns_timeout passed */
	unsigned	in_flight;
};
void		 resolver_stats(const struct resolver *, struct resolver_stats *);

/* "A", "MX", ... for logs. */
const char	*resolver_type_name(uint16_t type);

#endif
