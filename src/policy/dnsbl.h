/*
 * dnsbl: the client's address in DNS blocklists (default Spamhaus ZEN), asked
 * the moment the client connects and answered at RCPT (docs/architecture.md §5,
 * docs/dns.md, "DNSBL"). Only a definite listing rejects (554 5.7.1, the zone
 * and the code in the text); an answer in 127.255.255.0/24 is the list
 * reporting an error about us (public resolver, over quota, bad key): a warning
 * and a counter, never a listing. A list that does not answer:
 * dnsbl_fail_action. Names and codes: src/dns/dnsxl.h.
 */
#ifndef BACKMX_DNSBL_H
#define BACKMX_DNSBL_H

#include <stdint.h>

struct policy_check;
struct policy_client;
struct policy_deps;

/* Module state (zones, dnsbl_allow) for policy.c's module table. */
void	*dnsbl_new(const struct policy_deps *);
void	 dnsbl_free(void *);

/* Client hooks: the lookups start at connect; disconnect cancels. */
void	 dnsbl_connect(struct policy_client *);
void	 dnsbl_disconnect(struct policy_client *);

/* The RCPT step: answers once every zone has answered. */
void	 dnsbl_rcpt(struct policy_check *);

struct dnsbl_stats {
	uint64_t	lookups;	/* zone lookups started */
	uint64_t	listed;		/* lookups that found a listing */
	uint64_t	errors;		/* 127.255.255.0/24 answers */
	uint64_t	failures;	/* no answer (TEMPFAIL) */
};
/* Counters for the metrics endpoint. */
void	 dnsbl_get_stats(const void *module, struct dnsbl_stats *);

#endif
