/*
 * callout: asking a customer's primary about recipients, without sending mail
 * (docs/architecture.md §6). An address deferred as unknown during an outage is
 * queued here; once the domain's primary is up again, one connection asks it:
 * EHLO, MAIL FROM:<>, RCPT TO:<address> for each address waiting (up to the
 * domain's budget), RSET, QUIT. The answers go to learn.h, so the sender's
 * retry finds the address known.
 *
 * The same connection carries the acceptance probe: every
 * acceptance_probe_interval, RCPT TO:<postmaster@DOMAIN> (RFC 5321
 * §4.5.1: postmaster must exist); a 2xx proves that the customer's server
 * accepts mail from backmx (the domain lifecycle).
 *
 * Bounds: callout_rate_limit RCPTs per minute per domain, at most
 * callout_queue_limit addresses waiting in all (beyond that, not queued:
 * the sender retries and asks again), one connection per domain at a
 * time; acceptance probes spread over their interval, at most
 * CALLOUT_PROBE_RATE_MAX domains a second, and only while the queue is
 * less than half full. The queue is memory only: a restart forgets it,
 * and the senders' retries fill it again.
 */
#ifndef BACKMX_CALLOUT_H
#define BACKMX_CALLOUT_H

#include <stddef.h>

struct event_base;
struct config;
struct primary_connector;
struct domains;
struct learn;
struct primary_health;
struct callout;

struct callout	*callout_new(struct event_base *, const struct config *,
		    struct primary_connector *, struct primary_health *,
		    struct learn *);
/* Closes its connections; nothing is learned from them any more. */
void		 callout_free(struct callout *);
/* The customer domains, for the acceptance probe (start and reload). */
void		 callout_set_domains(struct callout *, const struct domains *);
/* Verify 'addr' (lower case "local@domain") of customer domain
 * 'domain' once its primary is up. Deduplicated. */
void		 callout_want(struct callout *, const char *domain,
		    const char *addr);
/* Each address takes a lease before it is called out (copied; NULL:
 * none): docs/cluster.md "One probe, one callout". */
struct primary_lease;
void		 callout_set_lease(struct callout *,
		    const struct primary_lease *);

/* Acceptance probes started per second, at most, whatever the number of
 * domains: with more than this times acceptance_probe_interval domains,
 * each is probed less often than the interval says. */
#define CALLOUT_PROBE_RATE_MAX	10
/* How many domains the acceptance-probe walk looks at each second: all
 * of them over 'interval' seconds, at most CALLOUT_PROBE_RATE_MAX. Pure. */
size_t		 callout_probe_budget(size_t ndomains, unsigned interval);

#endif
