/*
 * domaincheck: the sender's domain at MAIL and the recipient's at RCPT
 * (docs/architecture.md §5): fully qualified, existing, no null MX, and some MX
 * host (or, without MX, the domain itself) at an address a mail server can
 * have. Steps of policy.c; DNS through src/dns/resolver.h. Decisions and reply
 * codes: docs/dns.md.
 */
#ifndef BACKMX_DOMAINCHECK_H
#define BACKMX_DOMAINCHECK_H

#include <stddef.h>

struct policy_check;
struct policy_deps;
struct domaincheck;

/* Module state (the mx_invalid_networks ranges), for policy.c's module
 * table. Config errors were caught by config.c. */
void	*domaincheck_new(const struct policy_deps *);
void	 domaincheck_free(void *);

/* The steps. */
void	 domaincheck_mail(struct policy_check *);
void	 domaincheck_rcpt(struct policy_check *);

#endif
