/*
 * domains: the customer domains backmx backs up, from domains_file. One
 * domain a line, then optional key=value options, '#' comments, blank
 * lines ignored. Names are matched case-insensitively (ASCII), without a
 * trailing dot. A domain not in the file is not ours (relay control).
 *
 * Options now: route=[HOST]:PORT or route=HOST:PORT or route=[ADDR]:PORT,
 * a static next hop ("[...]" means: no MX lookup, as in transport(5));
 * mx_check=yes|no, whether RCPT's MX-range check (docs/dns.md) applies.
 * Later issues add more options; an unknown option is an error.
 */
#ifndef BACKMX_DOMAINS_H
#define BACKMX_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

struct domain {
	char		name[256];	/* lower case, no trailing dot */
	char		route_host[256];/* "" when no route= */
	uint16_t	route_port;
	unsigned	route_no_mx:1;	/* route given as [HOST] */
	unsigned	mx_check_off:1;	/* mx_check=no: private MX is fine */
};

struct domains;

/* Load the file; NULL with "FILE:LINE: what is wrong" in err on error. */
struct domains	*domains_load(const char *path, char *err, size_t errsz);
/* Same from memory (tests, fuzzing). */
struct domains	*domains_parse(const char *name, const char *text, size_t len,
		    char *err, size_t errsz);
void		 domains_free(struct domains *);

/* The entry for 'name' (any case, trailing dot ignored) or NULL. Valid
 * until domains_free(). */
const struct domain *domains_lookup(const struct domains *, const char *name);
size_t		 domains_count(const struct domains *);
const struct domain *domains_at(const struct domains *, size_t i);

#endif
