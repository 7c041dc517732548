/*
 * dnsxl: the DNS side of DNS blocklists (RFC 5782), pure: the zone list
 * as the operator writes it, the query name for an address, and what the
 * A records of an answer mean. src/policy/dnsbl.c asks and decides; the
 * facts about Spamhaus's answers are in docs/dns.md, "DNSBL".
 */
#ifndef BACKMX_DNSXL_H
#define BACKMX_DNSXL_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"
#include "ranges.h"

#define DNSXL_ZONES_MAX	8
#define DNSXL_CODES_MAX	16

struct dnsxl_zone {
	char		name[DNS_NAME_MAX];
	struct range	codes[DNSXL_CODES_MAX];	/* A answers that list */
	size_t		ncodes;
};

enum dnsxl_answer {
	DNSXL_NOT_LISTED = 0,	/* no A record with a listing code */
	DNSXL_LISTED,
	DNSXL_ERROR,		/* 127.255.255.0/24: the list's own error */
};

/*
 * dnsbl_zones: "ZONE[=CODES]" items separated by commas or white space;
 * CODES is ';'-separated IPv4 addresses, ranges A-B or CIDR blocks
 * ("zen.spamhaus.org=127.0.0.2-127.0.0.11"). Without CODES: 127.0.0.2 to
 * 127.0.0.11 for zen.spamhaus.org and Spamhaus DQS zones (ending in
 * .zen.dq.spamhaus.net), 127.0.0.2 to 127.255.255.255 for any other
 * (RFC 5782 §2.1). At most 'max' zones. Returns 0, or -1 with the reason
 * in why.
 */
int	dnsxl_zones_parse(const char *text, struct dnsxl_zone *out,
	    size_t max, size_t *n_out, char *why, size_t whysz);

/* The query name for address a (16 bytes, IPv4-mapped for IPv4) in
 * zone: reversed octets (RFC 5782 §2.1) or 32 reversed nibbles (§2.4),
 * the form of in-addr.arpa and ip6.arpa names too. -1 when it does not
 * fit in sz. */
int	dnsxl_query_name(const uint8_t a[16], const char *zone, char *buf,
	    size_t sz);

/*
 * What the A records a[0..n) say for zone z. An error code anywhere in
 * the answer makes the whole answer an error (never a listing); else the
 * first record with a listing code lists; else not listed (e.g. ZEN's
 * 127.0.0.30 outside the configured codes). *which: the deciding record.
 */
enum dnsxl_answer dnsxl_classify(const struct dnsxl_zone *z,
	    const uint8_t (*a)[4], size_t n, size_t *which);

#endif
