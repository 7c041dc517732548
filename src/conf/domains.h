/*
 * domains: the customer domains backmx backs up, from domains_file. One
 * domain a line, then optional key=value options, '#' comments, blank
 * lines ignored. Names are matched case-insensitively (ASCII), without a
 * trailing dot. A domain not in the file is not ours (relay control).
 *
 * Options, each at most once (docs/configuration.md, "The domains file"):
 *   route=[HOST]:PORT, route=HOST:PORT or route=[ADDR]:PORT: a static next
 *     hop ("[...]" means: no MX lookup, as in transport(5));
 *   mx_check=yes|no: whether RCPT's MX-range check (docs/dns.md) applies;
 *   accept_unverified=yes|no: in backup mode, accept recipients never
 *     verified; unset, the global key accept_unverified decides;
 *   passthrough_filters=yes|no (no): the DNSBL and the sender and
 *     recipient domain checks run on the pass-through path too;
 *   forward_client=yes|no (no): in pass-through, tell a primary that
 *     offers XFORWARD who the client is (docs/passthrough.md);
 *   bulk_threshold=N: the bulk detector's threshold for this domain's
 *     recipients (docs/bulk.md); 0 turns it off; unset, the global key;
 *   bulk_allow_senders=LIST, bulk_allow_clients=LIST,
 *     bulk_allow_recipients=LIST: the domain's own bulk allow lists, items
 *     split by commas: sender addresses and domains, client addresses and
 *     networks, this domain's recipients ("local" or "local@DOMAIN");
 *     its recipients are never counted for what they list (docs/bulk.md
 *     §4), on top of the global bulk_allow_* keys;
 *   recipients=FILE: the domain's valid recipients, never expired. FILE
 *     is relative to the domains file's directory (to the current
 *     directory for domains_parse()). One address a line, "local" or
 *     "local@DOMAIN" (this line's domain, any case), '#' comment lines,
 *     blank lines; at most DOMAINS_RCPTS_MAX addresses and lines of at
 *     most DOMAINS_RCPT_LINE_MAX octets. Stored lower case, sorted, once.
 * An unknown option is an error.
 */
#ifndef BACKMX_DOMAINS_H
#define BACKMX_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

#include "allow.h"

#define DOMAINS_RCPTS_MAX	1000000	/* addresses in one recipients= file */
#define DOMAINS_RCPT_LINE_MAX	1000	/* octets in one of its lines */

struct config;
struct domain_rcpts;			/* opaque; see domains_static_rcpt() */

/*
 * One customer domain. Copied by value elsewhere (the policy keeps one):
 * a copy shares 'rcpts', which lives as long as the table it came from,
 * 'table'. Whoever keeps a copy, or a pointer into the table, past the
 * current loop turn holds a reference on that table (domains_ref(),
 * dropped with domains_free()): a reload replaces the table at any turn
 * (docs/configuration.md, "Reload").
 */
struct domain {
	char		name[256];	/* lower case, no trailing dot */
	char		route_host[256];/* "" when no route= */
	uint16_t	route_port;
	unsigned	route_no_mx:1;	/* route given as [HOST] */
	unsigned	mx_check_off:1;	/* mx_check=no: private MX is fine */
	unsigned	passthrough_filters:1; /* DNSBL, DNS checks in pass-through */
	unsigned	forward_client:1; /* XFORWARD the client in pass-through */
	int		accept_unverified; /* -1 unset (global key), 0 no, 1 yes */
	int		bulk_threshold;	/* -1 unset (global key), 0 off */
	struct domain_rcpts *rcpts;	/* recipients=; NULL: none. Owned by
					 * struct domains */
	struct allow_set *bulk_allow;	/* bulk_allow_*=; clients networks,
					 * recipients this domain's. NULL:
					 * none. Owned alike */
	struct domains	*table;		/* the table this entry is of; NULL
					 * for one built by hand (tests) */
};

struct domains;

/* Load the file; NULL with "FILE:LINE: what is wrong" in err on error.
 * The table comes with one reference, the caller's. */
struct domains	*domains_load(const char *path, char *err, size_t errsz);
/* Same from memory (tests, fuzzing). */
struct domains	*domains_parse(const char *name, const char *text, size_t len,
		    char *err, size_t errsz);
/*
 * One more reference on the table (NULL: nothing); returns it. Each
 * domains_ref() is matched by one domains_free(), which drops a reference
 * and frees the table, its entries and their recipients= lists with the
 * last one.
 */
struct domains	*domains_ref(struct domains *);
void		 domains_free(struct domains *);

/* The entry for 'name' (any case, trailing dot ignored) or NULL. Valid
 * until domains_free(). */
const struct domain *domains_lookup(const struct domains *, const char *name);
size_t		 domains_count(const struct domains *);
const struct domain *domains_at(const struct domains *, size_t i);

/* accept_unverified for this domain: its own option, else c's key. */
int		 domain_accept_unverified(const struct domain *,
		    const struct config *c);

/*
 * 1 when 'addr_lower' ("local@domain", already lower case) is in the
 * domain's recipients= list, else 0 (also with no list). O(log n).
 */
int		 domains_static_rcpt(const struct domain *,
		    const char *addr_lower);
/* Addresses in the domain's recipients= list, after deduplication. */
size_t		 domains_static_count(const struct domain *);
/* The i-th of them in sorted order, NULL past the end (listings). */
const char	*domains_static_at(const struct domain *, size_t i);

#endif
