/*
 * mx: which hosts may take a customer domain's mail from us (RFC 5321
 * §5.1), as a pure function: the MX answer, our own names and addresses
 * in; the ordered next hops, or the reason there is none, out. No I/O:
 * deliver.c and connect.c ask the resolver and hand the answers here.
 *
 * The backup-MX invariant (docs/passthrough.md, docs/queue.md): we hand
 * mail only to a host whose preference is strictly lower than ours, or two
 * MX hosts of one domain pass the mail back and forth until it expires.
 * "Ours" is the lowest preference of an MX host that is us: named
 * myhostname or one of mx_names (case-insensitive, a trailing dot
 * ignored), or, under any other name (a CNAME, an alias), resolving to
 * one of our own addresses. No MX record at all: the domain's own
 * address (implicit MX, preference 0). A null MX (RFC 7505, host "."):
 * the domain takes no mail. At most MX_HOPS_MAX hosts, lowest preference
 * first; hosts of equal preference keep the answer's order.
 *
 * Addresses (mx_addr_verdict): 0.0.0.0 and :: name no host (a connection
 * to them reaches this machine): such an address is never used, as if the
 * host had none. An address and port we listen on -- a wildcard listen
 * stands for every address of this machine's interfaces and loopback --
 * makes a host "us": never connected to, whatever its name (a CNAME, an
 * alias, an address literal in route=). Loopback and the other
 * special-purpose ranges (src/dns/ranges.h) are unusable too where the
 * caller says so (refuse_special): a customer's DNS must not point our
 * connections at this machine or an internal network. The operator's own
 * route= and a domain's mx_check=no allow them (a primary on this machine
 * behind another port is an operator's choice). docs/passthrough.md
 * "Threats".
 */
#ifndef BACKMX_MX_H
#define BACKMX_MX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MX_HOPS_MAX	5	/* hosts tried per attempt, in all (Postfix's
				   smtp_mx_address_limit) */
#define MX_RECORDS_MAX	32	/* MX records considered per answer */
#define MX_SELF_ADDRS_MAX 64	/* our own addresses compared */
#define MX_NO_PREF	65536	/* "ours" when no MX host is us */

/* One MX record as the answer holds it. */
struct mx_record {
	unsigned	 pref;
	const char	*host;		/* "." is a null MX */
};

/* The addresses one host resolved to (16-byte form, ranges.h), when
 * known. A host without an entry is judged by its name alone. */
struct mx_host_addrs {
	const char	*host;
	const uint8_t	(*addr)[16];
	size_t		 naddr;
};

/* Who we are. */
struct mx_self {
	const struct config *conf;	/* myhostname, mx_names; NULL: no
					   name is ours */
	const uint8_t	(*addr)[16];	/* our own addresses, may be NULL */
	size_t		 naddr;
	const uint16_t	*port;		/* addr[i] is us at port[i] only;
					   NULL: at any port */
	unsigned	 dport;		/* the port the connection would go
					   to (the caller's, per request) */
	uint16_t	 loop_port[2];	/* a wildcard IPv4 [0] or IPv6 [1]
					   listen: any loopback address at
					   this port is us; 0: none */
	int		 refuse_special; /* special-purpose addresses are
					    unusable (MX_ADDR_SPECIAL) */
};

/* Storage for mx_self_init(). */
struct mx_self_store {
	uint8_t		addr[MX_SELF_ADDRS_MAX][16];
	uint16_t	port[MX_SELF_ADDRS_MAX];
};

/* The question. */
struct mx_query {
	const char			*domain;	/* no trailing dot */
	int				 nodata;	/* no MX record */
	const struct mx_record		*rr;
	size_t				 nrr;
	const struct mx_host_addrs	*addrs;		/* may be NULL */
	size_t				 naddrs;
	const struct mx_self		*self;
	size_t				 max;		/* <= MX_HOPS_MAX */
};

enum mx_status {
	MX_OK,		/* hop[0..nhop), nhop >= 1 */
	MX_NULL,	/* RFC 7505 null MX: 556 5.1.10 */
	MX_LOOP,	/* no host better than ours: 451 4.4.6 */
	MX_NO_ADDRESS,	/* every candidate's known addresses unusable */
};

struct mx_hop {
	unsigned	pref;
	char		host[256];	/* no trailing dot */
};

struct mx_result {
	enum mx_status	status;
	unsigned	ours;		/* MX_NO_PREF when no MX host is us */
	struct mx_hop	hop[MX_HOPS_MAX];
	size_t		nhop;
};

enum mx_addr {
	MX_ADDR_USE,	/* connect to it */
	MX_ADDR_SELF,	/* one of our own: the host is us */
	MX_ADDR_NONE,	/* 0.0.0.0 or ::, no host */
	MX_ADDR_SPECIAL, /* special-purpose, refused: as if none */
};

/* Who we are by conf: myhostname, mx_names, and every address and port
 * we listen on (a wildcard listen: each address of this machine's
 * interfaces, and loopback). dport is delivery_port, refuse_special set:
 * callers adjust both per request. A listen at port 0 (tests) is matched
 * by nothing: its port is not known yet. st is the caller's storage. */
struct config;
void		mx_self_init(struct mx_self *self, struct mx_self_store *st,
		    const struct config *);
/* The next hops for q into *res; res->status says which. Pure. */
void		mx_select(const struct mx_query *q, struct mx_result *res);
/* The MX records of a DNS answer into rr[], in the answer's order, at
 * most max; returns how many. Pure. */
struct dns_result;
struct dns_rr;
size_t		mx_records(const struct dns_result *, struct mx_record *rr,
		    size_t max);
/* One A or AAAA record of a next hop reached at 'port': what it means
 * (mx_addr_verdict with self's refuse_special, at that port) and, when
 * MX_ADDR_USE, the address to connect to in *ss and *sslen. Pure. */
enum mx_addr	mx_rr_target(const struct dns_rr *, const struct mx_self *,
		    uint16_t port, struct sockaddr_storage *ss,
		    socklen_t *sslen);
/* What one address answer means (see the header comment). Pure. */
enum mx_addr	mx_addr_verdict(const uint8_t a[16], const struct mx_self *);
/* 1 when 'host' (trailing dot or not, any case) is one of our names. */
int		mx_is_self_name(const char *host, const struct mx_self *);
/* The SMTP reply a task is deferred or bounced with when res is not
 * MX_OK, as deliver.c has always said it; returns its code. */
int		mx_reason(const struct mx_result *, const char *domain,
		    char *buf, size_t bufsz);

#endif
