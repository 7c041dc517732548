/*
 * ranges: the special-purpose address table and operator-written address
 * ranges. Pure.
 *
 * The table: IANA IPv4 Special-Purpose Address Registry and IANA IPv6
 * Special-Purpose Address Registry as of 2024-10 (RFC 6890, RFC 8190),
 * plus multicast and the space IANA never assigns for unicast. Every row
 * is invalid as the address of an MX host, even those the registry calls
 * "globally reachable" (anycast services, AS112, AMT, ORCHIDv2): no mail
 * server lives there. A more specific row comes before the block that
 * holds it so a log line names the precise reason. To change the table,
 * add a row here with its RFC and a case in ranges_test.c.
 */
#include "ranges.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "str.h"

struct special {
	uint8_t			addr[16];
	unsigned		len;	/* prefix length over 128 bits */
	struct ranges_row	row;
};

#define V4(a, b, c, d, l) \
	{ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d }, (l) + 96
#define G(x)	((x) >> 8) & 0xff, (x) & 0xff
#define V6(a, b, c, d, e, f, g, h, l) \
	{ G(a), G(b), G(c), G(d), G(e), G(f), G(g), G(h) }, (l)

static const struct special v4_rows[] = {
	{ V4(0, 0, 0, 0, 8), { "0.0.0.0/8", "this network",
	    "RFC 791, RFC 1122 §3.2.1.3" } },
	{ V4(10, 0, 0, 0, 8), { "10.0.0.0/8", "private use", "RFC 1918" } },
	{ V4(100, 64, 0, 0, 10), { "100.64.0.0/10", "shared address space",
	    "RFC 6598" } },
	{ V4(127, 0, 0, 0, 8), { "127.0.0.0/8", "loopback",
	    "RFC 1122 §3.2.1.3" } },
	{ V4(169, 254, 0, 0, 16), { "169.254.0.0/16", "link local",
	    "RFC 3927" } },
	{ V4(172, 16, 0, 0, 12), { "172.16.0.0/12", "private use",
	    "RFC 1918" } },
	{ V4(192, 0, 0, 0, 29), { "192.0.0.0/29",
	    "IPv4 service continuity prefix", "RFC 7335" } },
	{ V4(192, 0, 0, 8, 32), { "192.0.0.8/32", "IPv4 dummy address",
	    "RFC 7600" } },
	{ V4(192, 0, 0, 9, 32), { "192.0.0.9/32", "PCP anycast",
	    "RFC 7723" } },
	{ V4(192, 0, 0, 10, 32), { "192.0.0.10/32", "TURN anycast",
	    "RFC 8155" } },
	{ V4(192, 0, 0, 170, 32), { "192.0.0.170/32", "NAT64/DNS64 discovery",
	    "RFC 7050, RFC 8880" } },
	{ V4(192, 0, 0, 171, 32), { "192.0.0.171/32", "NAT64/DNS64 discovery",
	    "RFC 7050, RFC 8880" } },
	{ V4(192, 0, 0, 0, 24), { "192.0.0.0/24", "IETF protocol assignments",
	    "RFC 6890 §2.1" } },
	{ V4(192, 0, 2, 0, 24), { "192.0.2.0/24", "documentation (TEST-NET-1)",
	    "RFC 5737" } },
	{ V4(192, 31, 196, 0, 24), { "192.31.196.0/24", "AS112-v4",
	    "RFC 7535" } },
	{ V4(192, 52, 193, 0, 24), { "192.52.193.0/24", "AMT", "RFC 7450" } },
	{ V4(192, 88, 99, 2, 32), { "192.88.99.2/32", "6a44 relay anycast",
	    "RFC 6751" } },
	{ V4(192, 88, 99, 0, 24), { "192.88.99.0/24",
	    "deprecated 6to4 relay anycast", "RFC 7526" } },
	{ V4(192, 168, 0, 0, 16), { "192.168.0.0/16", "private use",
	    "RFC 1918" } },
	{ V4(192, 175, 48, 0, 24), { "192.175.48.0/24",
	    "direct delegation AS112 service", "RFC 7534" } },
	{ V4(198, 18, 0, 0, 15), { "198.18.0.0/15", "benchmarking",
	    "RFC 2544" } },
	{ V4(198, 51, 100, 0, 24), { "198.51.100.0/24",
	    "documentation (TEST-NET-2)", "RFC 5737" } },
	{ V4(203, 0, 113, 0, 24), { "203.0.113.0/24",
	    "documentation (TEST-NET-3)", "RFC 5737" } },
	{ V4(224, 0, 0, 0, 4), { "224.0.0.0/4", "multicast", "RFC 5771" } },
	{ V4(255, 255, 255, 255, 32), { "255.255.255.255/32",
	    "limited broadcast", "RFC 919 §7, RFC 8190" } },
	{ V4(240, 0, 0, 0, 4), { "240.0.0.0/4", "reserved", "RFC 1112 §4" } },
};

static const struct special v6_rows[] = {
	{ V6(0, 0, 0, 0, 0, 0, 0, 0, 128), { "::/128", "unspecified address",
	    "RFC 4291" } },
	{ V6(0, 0, 0, 0, 0, 0, 0, 1, 128), { "::1/128", "loopback",
	    "RFC 4291" } },
	{ V6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), { "64:ff9b:1::/48",
	    "local-use IPv4/IPv6 translation", "RFC 8215" } },
	{ V6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), { "100::/64",
	    "discard-only address block", "RFC 6666" } },
	{ V6(0x2001, 1, 0, 0, 0, 0, 0, 1, 128), { "2001:1::1/128",
	    "PCP anycast", "RFC 7723" } },
	{ V6(0x2001, 1, 0, 0, 0, 0, 0, 2, 128), { "2001:1::2/128",
	    "TURN anycast", "RFC 8155" } },
	{ V6(0x2001, 1, 0, 0, 0, 0, 0, 3, 128), { "2001:1::3/128",
	    "DNS-SD SRP anycast", "RFC 9665" } },
	{ V6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48), { "2001:2::/48",
	    "benchmarking", "RFC 5180" } },
	{ V6(0x2001, 3, 0, 0, 0, 0, 0, 0, 32), { "2001:3::/32", "AMT",
	    "RFC 7450" } },
	{ V6(0x2001, 4, 0x112, 0, 0, 0, 0, 0, 48), { "2001:4:112::/48",
	    "AS112-v6", "RFC 7535" } },
	{ V6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28), { "2001:10::/28",
	    "ORCHID (deprecated)", "RFC 4843" } },
	{ V6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28), { "2001:20::/28",
	    "ORCHIDv2", "RFC 7343" } },
	{ V6(0x2001, 0x30, 0, 0, 0, 0, 0, 0, 28), { "2001:30::/28",
	    "drone remote ID protocol entity tags", "RFC 9374" } },
	{ V6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), { "2001::/32", "TEREDO",
	    "RFC 4380" } },
	{ V6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), { "2001::/23",
	    "IETF protocol assignments", "RFC 2928" } },
	{ V6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), { "2001:db8::/32",
	    "documentation", "RFC 3849" } },
	{ V6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), { "2002::/16",
	    "6to4 (deprecated)", "RFC 3056" } },
	{ V6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0, 48), { "2620:4f:8000::/48",
	    "direct delegation AS112 service", "RFC 7534" } },
	{ V6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), { "3fff::/20",
	    "documentation", "RFC 9637" } },
	{ V6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16), { "5f00::/16", "SRv6 SIDs",
	    "RFC 9602" } },
	{ V6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), { "fc00::/7", "unique local",
	    "RFC 4193" } },
	{ V6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), { "fe80::/10",
	    "link-local unicast", "RFC 4291" } },
	{ V6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), { "ff00::/8", "multicast",
	    "RFC 4291" } },
	/* Last: whatever the rows above did not name. IANA assigns global
	 * unicast only from 2000::/3 (IANA IPv6 Address Space registry). */
	{ V6(0, 0, 0, 0, 0, 0, 0, 0, 0), { "outside 2000::/3",
	    "not global unicast space", "RFC 4291 §2.4" } },
};

#define NV4	(sizeof(v4_rows) / sizeof(v4_rows[0]))
#define NV6	(sizeof(v6_rows) / sizeof(v6_rows[0]))

static const uint8_t mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};
/* RFC 6052 §2.1 well-known prefix 64:ff9b::/96. */
static const uint8_t nat64_prefix[12] = {
	0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0
};

int
ranges_in_prefix(const uint8_t net[16], unsigned len, const uint8_t a[16])
{
	unsigned full = len / 8, rest = len % 8;

	if (memcmp(net, a, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((net[full] ^ a[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* The range a /len block at 'net' covers. */
void
ranges_prefix(const uint8_t net[16], unsigned len, struct range *r)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		uint8_t mask;

		if (len >= (i + 1) * 8)
			mask = 0xff;
		else if (len <= i * 8)
			mask = 0;
		else
			mask = (uint8_t)(0xff << (8 - (len - i * 8)));
		r->lo[i] = net[i] & mask;
		r->hi[i] = (uint8_t)(net[i] | (uint8_t)~mask);
	}
}

const struct ranges_row *
ranges_special(const uint8_t a[16])
{
	uint8_t m[16];
	size_t i;

	if (memcmp(a, nat64_prefix, 12) == 0) {
		/* Judged by the IPv4 address it embeds (RFC 6052 §2.2). */
		memcpy(m, mapped_prefix, 12);
		memcpy(m + 12, a + 12, 4);
		a = m;
	}
	if (memcmp(a, mapped_prefix, 12) == 0) {
		for (i = 0; i < NV4; i++)
			if (ranges_in_prefix(v4_rows[i].addr, v4_rows[i].len, a))
				return &v4_rows[i].row;
		return NULL;
	}
	for (i = 0; i < NV6 - 1; i++)
		if (ranges_in_prefix(v6_rows[i].addr, v6_rows[i].len, a))
			return &v6_rows[i].row;
	if ((a[0] & 0xe0) != 0x20)
		return &v6_rows[NV6 - 1].row;
	return NULL;
}

size_t
ranges_nrows(void)
{
	return NV4 + NV6;
}

const struct ranges_row *
ranges_row_at(size_t i, struct range *r_out)
{
	const struct special *s;

	if (i >= NV4 + NV6)
		return NULL;
	s = i < NV4 ? &v4_rows[i] : &v6_rows[i - NV4];
	if (r_out != NULL) {
		if (i == NV4 + NV6 - 1) {
			/* outside 2000::/3: give its first part, ::/3. */
			memset(r_out, 0, sizeof(*r_out));
			memset(r_out->hi, 0xff, 16);
			r_out->hi[0] = 0x1f;
		} else
			ranges_prefix(s->addr, s->len, r_out);
	}
	return &s->row;
}

void
ranges_from_v4(const uint8_t v4[4], uint8_t out[16])
{
	memcpy(out, mapped_prefix, 12);
	memcpy(out + 12, v4, 4);
}

int
ranges_is_v4(const uint8_t a[16])
{
	return memcmp(a, mapped_prefix, 12) == 0;
}

int
ranges_from_sockaddr(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		ranges_from_v4((const uint8_t *)&s4->sin_addr, out);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		memcpy(out, &s6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

int
ranges_addr_parse(const char *text, uint8_t out[16])
{
	uint8_t v4[4];

	if (inet_pton(AF_INET, text, v4) == 1) {
		ranges_from_v4(v4, out);
		return 0;
	}
	if (strchr(text, ':') != NULL && inet_pton(AF_INET6, text, out) == 1)
		return 0;
	return -1;
}

const char *
ranges_addr_text(const uint8_t a[16], char *buf, size_t sz)
{
	if (ranges_is_v4(a))
		inet_ntop(AF_INET, a + 12, buf, (socklen_t)sz);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)sz);
	return buf;
}

/* n bytes at s as a NUL-ended address: 0, or -1 when too long or bad. */
static int
addr_n(const char *s, size_t n, uint8_t out[16])
{
	char buf[RANGES_TEXT_MAX];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return ranges_addr_parse(buf, out);
}

int
ranges_parse_prefix(const char *s, size_t n, uint8_t net[16],
    unsigned *len_out)
{
	const char *slash = memchr(s, '/', n);
	struct range r;
	unsigned len = 0;
	size_t i;

	if (slash == NULL) {
		if (addr_n(s, n, net) == -1)
			return -1;
		*len_out = 128;
		return 0;
	}
	if (addr_n(s, (size_t)(slash - s), net) == -1)
		return -1;
	if (slash + 1 == s + n || n - (size_t)(slash + 1 - s) > 3)
		return -1;
	for (i = (size_t)(slash + 1 - s); i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		len = len * 10 + (unsigned)(s[i] - '0');
	}
	if (ranges_is_v4(net)) {
		if (len > 32)
			return -1;
		len += 96;
	} else if (len > 128)
		return -1;
	ranges_prefix(net, len, &r);
	if (memcmp(r.lo, net, 16) != 0)
		return -1;		/* bits set past the prefix */
	*len_out = len;
	return 0;
}

int
ranges_parse(const char *s, size_t n, struct range *out)
{
	const char *dash = memchr(s, '-', n);
	uint8_t a[16], b[16];
	unsigned len;

	if (dash != NULL) {
		if (memchr(s, '/', n) != NULL)
			return -1;
		if (addr_n(s, (size_t)(dash - s), a) == -1 ||
		    addr_n(dash + 1, n - (size_t)(dash + 1 - s), b) == -1 ||
		    ranges_is_v4(a) != ranges_is_v4(b) ||
		    memcmp(a, b, 16) > 0)
			return -1;
		memcpy(out->lo, a, 16);
		memcpy(out->hi, b, 16);
		return 0;
	}
	if (ranges_parse_prefix(s, n, a, &len) == -1)
		return -1;
	ranges_prefix(a, len, out);
	return 0;
}

int
ranges_parse_list(const char *s, size_t n, const char *seps,
    struct range *out, size_t max, size_t *n_out, char *why, size_t whysz)
{
	size_t i = 0, len, k = 0;
	char e[64];

	while (i < n) {
		if (strchr(seps, s[i]) != NULL && s[i] != '\0') {
			i++;
			continue;
		}
		for (len = 0; i + len < n && (s[i + len] == '\0' ||
		    strchr(seps, s[i + len]) == NULL); len++)
			;
		if (k == max) {
			snprintf(why, whysz, "more than %zu ranges", max);
			return -1;
		}
		if (ranges_parse(s + i, len, &out[k]) == -1) {
			str_ncopy(e, sizeof(e), s + i, len);
			snprintf(why, whysz, "bad address range '%s'", e);
			return -1;
		}
		k++;
		i += len;
	}
	*n_out = k;
	return 0;
}

int
ranges_find(const struct range *r, size_t n, const uint8_t a[16])
{
	size_t i;

	/* Families apart: "::/0" means every IPv6 address, not the
	 * IPv4 ones we hold mapped. */
	for (i = 0; i < n; i++)
		if (ranges_is_v4(r[i].lo) == ranges_is_v4(a) &&
		    memcmp(r[i].lo, a, 16) <= 0 && memcmp(a, r[i].hi, 16) <= 0)
			return (int)i;
	return -1;
}
