/*
 * domaincheck: the sender's domain at MAIL and the recipient's at RCPT
 * (DESIGN.md §3): fully qualified, existing, no null MX, and some MX host
 * (or, without MX, the domain itself) at an address a mail server can
 * have. Steps of policy.c; DNS through src/dns/resolver.h. Decisions and
 * reply codes: docs/dns.md.
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

/*
 * RFC 1035 §2.3.1 / RFC 5321 §2.3.5 fully qualified domain name, n bytes
 * at d: two labels at least, each 1 to 63 letters, digits and '-' (not
 * at either end), 253 bytes at most, no trailing dot, and a top-level
 * label that is not all digits. 1 when it is one.
 */
int	 domaincheck_fqdn(const char *d, size_t n);

#endif
