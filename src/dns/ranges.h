/*
 * ranges: addresses no real mail server lives at — the IANA IPv4 and IPv6
 * Special-Purpose Address Registries (RFC 6890, updated by RFC 8190) and
 * their neighbours (multicast, space outside 2000::/3) — compiled in, one
 * row per block with its RFC; plus address ranges as an operator writes
 * them (mx_invalid_networks, dnsbl_allow, DNSBL answer codes). Pure: no
 * I/O, no allocation.
 *
 * Every address here is 16 bytes in network order; an IPv4 address is
 * held IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so one range type
 * serves both families and a mapped address is judged as the IPv4 address
 * it is.
 */
#ifndef BACKMX_RANGES_H
#define BACKMX_RANGES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RANGES_TEXT_MAX	46	/* INET6_ADDRSTRLEN */

/* Inclusive: lo <= a <= hi, compared as 16-byte big-endian numbers. */
struct range {
	uint8_t	lo[16];
	uint8_t	hi[16];
};

/* A row of the special-purpose table. */
struct ranges_row {
	const char	*net;		/* "10.0.0.0/8" */
	const char	*what;		/* "private use" */
	const char	*rfc;		/* "RFC 1918" */
};

/*
 * The row of the special-purpose table that holds 'a', or NULL when 'a'
 * may be a mail server's address. An address in ::ffff:0:0/96 or in
 * 64:ff9b::/96 (RFC 6052 well-known prefix) is judged by the IPv4 address
 * it carries. The row stays valid for the program's life.
 */
const struct ranges_row *ranges_special(const uint8_t a[16]);

/* The table, for tests: row i for i < ranges_nrows(), and the block as
 * a range. */
size_t		 ranges_nrows(void);
const struct ranges_row *ranges_row_at(size_t i, struct range *r_out);

/*
 * "ADDR", "ADDR/LEN" or "ADDR-ADDR" (IPv4 or IPv6, both ends the same
 * family, lo <= hi), n bytes at s. Bits past LEN must be zero
 * ("10.1.0.0/8" is refused: it is a typo more often than not). Returns 0
 * or -1.
 */
int	ranges_parse(const char *s, size_t n, struct range *out);

/*
 * The CIDR parser: "ADDR" or "ADDR/LEN", n bytes at s, into net (IPv4 as
 * ::ffff:a.b.c.d) and *len_out over the 128 bits (96 + LEN for IPv4,
 * 128 for a bare address). The bits past LEN must be zero, as for
 * ranges_parse(). Returns 0 or -1.
 */
int	ranges_parse_prefix(const char *s, size_t n, uint8_t net[16],
	    unsigned *len_out);
/* The /len block at net as a range. */
void	ranges_prefix(const uint8_t net[16], unsigned len, struct range *out);

/*
 * A list of ranges separated by any byte of 'seps' (e.g. ", \t"), at
 * most 'max' of them, into out[]; *n_out is how many. An empty list is
 * valid. Returns 0, or -1 with the reason in why.
 */
int	ranges_parse_list(const char *s, size_t n, const char *seps,
	    struct range *out, size_t max, size_t *n_out, char *why,
	    size_t whysz);

/* Index of the first range of r[0..n) holding 'a', or -1. An IPv4
 * range holds only IPv4 addresses, an IPv6 range only IPv6 ones. */
int	ranges_find(const struct range *r, size_t n, const uint8_t a[16]);

/* 1 when the /len block at 'net' (len over the 128 bits, 96 + the IPv4
 * length for an IPv4 block) holds 'a'. */
int	ranges_in_prefix(const uint8_t net[16], unsigned len,
	    const uint8_t a[16]);

/* Addresses in and out of the 16-byte form. */
void	ranges_from_v4(const uint8_t v4[4], uint8_t out[16]);
int	ranges_is_v4(const uint8_t a[16]);	/* IPv4-mapped */
int	ranges_from_sockaddr(const struct sockaddr *, uint8_t out[16]);
int	ranges_addr_parse(const char *text, uint8_t out[16]);	/* 0 / -1 */
/* IPv4 dotted, IPv6 compressed; buf holds RANGES_TEXT_MAX bytes. */
const char *ranges_addr_text(const uint8_t a[16], char *buf, size_t sz);

#endif
