/*
 * packet: the DNS wire-format answer (RFC 1035 §4) libunbound hands us,
 * read into plain records. Pure: no I/O, no allocation, bounded work; the
 * bytes come from whatever answered the resolver, so every length and
 * every compression pointer is checked (fuzz/fuzz_dnspacket.c).
 *
 * CNAMEs are followed as the answer section gives them (RFC 1034 §3.6.2:
 * a resolver returns the chain and the records at its end): the records
 * kept are those of the asked type owned by the last name of the chain.
 */
#ifndef BACKMX_PACKET_H
#define BACKMX_PACKET_H

#include <stddef.h>
#include <stdint.h>

#define DNS_T_A		1
#define DNS_T_CNAME	5
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28

#define DNS_RCODE_NOERROR	0
#define DNS_RCODE_SERVFAIL	2
#define DNS_RCODE_NXDOMAIN	3

/* A name as text: lower case, no trailing dot, the root as ".", bytes
 * outside letters, digits, '-' and '_' written \DDD. 253 characters of a
 * plain host name fit; a name whose escapes do not fit is not kept. */
#define DNS_NAME_MAX	256
#define DNS_TXT_MAX	512	/* the strings of one TXT record, joined */
#define PACKET_RR_MAX	32	/* records kept; the rest are counted */
#define PACKET_CNAME_MAX 8	/* chain length followed */

struct dns_rr {
	uint16_t	type;
	uint32_t	ttl;
	union {
		uint8_t	a[4];
		uint8_t	aaaa[16];
		struct {
			uint16_t pref;
			char	 host[DNS_NAME_MAX];	/* "." for null MX */
		} mx;
		char	ptr[DNS_NAME_MAX];
		struct {
			uint16_t len;
			char	 data[DNS_TXT_MAX];	/* not NUL-ended */
		} txt;
	} u;
};

struct packet_answer {
	int		rcode;		/* RCODE of the header */
	unsigned	truncated:1;	/* TC bit, or records past the max */
	char		canon[DNS_NAME_MAX]; /* end of the CNAME chain */
	unsigned	ncname;		/* CNAME hops followed */
	size_t		nrr;
	struct dns_rr	rr[PACKET_RR_MAX];
};

/*
 * Read the answer to (qname, qtype) from 'len' bytes at 'pkt' into *out.
 * qname is text as the query was made (a trailing dot is ignored, case
 * does not matter). Returns 0, or -1 when the packet is malformed (a
 * length or pointer out of bounds, a pointer loop, a record of the asked
 * type with bad RDATA, a CNAME chain longer than PACKET_CNAME_MAX).
 */
int	packet_parse(const uint8_t *pkt, size_t len, const char *qname,
	    uint16_t qtype, struct packet_answer *out);

/* Compare two names as packet_parse() writes them, ignoring case and a
 * trailing dot: 1 when equal. */
int	packet_name_eq(const char *a, const char *b);

#endif
