/*
 * ranges_test: the special-purpose table, row by row — each row's first
 * and last address are special, the addresses just outside are not
 * (unless a neighbouring row holds them) — IPv4-mapped and NAT64 forms,
 * and the operator's range syntax.
 */
#include "ranges.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static void
addr(const char *text, uint8_t out[16])
{
	if (ranges_addr_parse(text, out) == -1)
		fail_msg("bad test address %s", text);
}

/* a +/- 1 as a 16-byte number; 0 when it wrapped. */
static int
step(uint8_t a[16], int dir)
{
	int i;

	for (i = 15; i >= 0; i--) {
		if (dir > 0 && a[i]++ != 0xff)
			return 1;
		if (dir < 0 && a[i]-- != 0)
			return 1;
	}
	return 0;
}

/* Every row: its ends are in the table (named by this row or a more
 * specific one before it); one step outside is either not special or
 * held by another row. */
static void
test_every_row_and_edges(void **state)
{
	size_t i, n = ranges_nrows();
	char t[RANGES_TEXT_MAX];

	assert_true(n > 40);
	for (i = 0; i < n; i++) {
		struct range r;
		const struct ranges_row *row = ranges_row_at(i, &r);
		uint8_t a[16];

		assert_non_null(row);
		assert_non_null(row->rfc);
		assert_true(strncmp(row->rfc, "RFC ", 4) == 0);
		if (ranges_special(r.lo) == NULL)
			fail_msg("row %s: first address %s not special",
			    row->net, ranges_addr_text(r.lo, t, sizeof(t)));
		if (ranges_special(r.hi) == NULL)
			fail_msg("row %s: last address %s not special",
			    row->net, ranges_addr_text(r.hi, t, sizeof(t)));
		memcpy(a, r.lo, 16);
		if (step(a, -1) && ranges_is_v4(a) == ranges_is_v4(r.lo)) {
			const struct ranges_row *o = ranges_special(a);

			if (o == row)
				fail_msg("row %s holds %s below it", row->net,
				    ranges_addr_text(a, t, sizeof(t)));
		}
		memcpy(a, r.hi, 16);
		if (step(a, 1) && ranges_is_v4(a) == ranges_is_v4(r.hi)) {
			const struct ranges_row *o = ranges_special(a);

			if (o == row)
				fail_msg("row %s holds %s above it", row->net,
				    ranges_addr_text(a, t, sizeof(t)));
		}
	}
	assert_null(ranges_row_at(n, NULL));
}

struct row {
	const char	*addr;
	const char	*net;	/* the row that must name it; NULL: routable */
};

static const struct row rows[] = {
	/* IPv4 edges around each block. */
	{ "0.0.0.0", "0.0.0.0/8" },
	{ "0.255.255.255", "0.0.0.0/8" },
	{ "1.0.0.0", NULL },
	{ "9.255.255.255", NULL },
	{ "10.0.0.0", "10.0.0.0/8" },
	{ "10.255.255.255", "10.0.0.0/8" },
	{ "11.0.0.0", NULL },
	{ "100.63.255.255", NULL },
	{ "100.64.0.0", "100.64.0.0/10" },
	{ "100.127.255.255", "100.64.0.0/10" },
	{ "100.128.0.0", NULL },
	{ "126.255.255.255", NULL },
	{ "127.0.0.1", "127.0.0.0/8" },
	{ "128.0.0.0", NULL },
	{ "169.253.255.255", NULL },
	{ "169.254.0.1", "169.254.0.0/16" },
	{ "169.255.0.0", NULL },
	{ "172.15.255.255", NULL },
	{ "172.16.0.0", "172.16.0.0/12" },
	{ "172.31.255.255", "172.16.0.0/12" },
	{ "172.32.0.0", NULL },
	{ "192.0.0.0", "192.0.0.0/29" },
	{ "192.0.0.8", "192.0.0.8/32" },
	{ "192.0.0.9", "192.0.0.9/32" },
	{ "192.0.0.10", "192.0.0.10/32" },
	{ "192.0.0.11", "192.0.0.0/24" },
	{ "192.0.0.170", "192.0.0.170/32" },
	{ "192.0.0.255", "192.0.0.0/24" },
	{ "192.0.1.0", NULL },
	{ "192.0.2.0", "192.0.2.0/24" },
	{ "192.0.3.0", NULL },
	{ "192.31.196.1", "192.31.196.0/24" },
	{ "192.52.193.1", "192.52.193.0/24" },
	{ "192.88.99.2", "192.88.99.2/32" },
	{ "192.88.99.1", "192.88.99.0/24" },
	{ "192.167.255.255", NULL },
	{ "192.168.0.0", "192.168.0.0/16" },
	{ "192.169.0.0", NULL },
	{ "192.175.48.1", "192.175.48.0/24" },
	{ "198.17.255.255", NULL },
	{ "198.18.0.0", "198.18.0.0/15" },
	{ "198.19.255.255", "198.18.0.0/15" },
	{ "198.20.0.0", NULL },
	{ "198.51.100.1", "198.51.100.0/24" },
	{ "203.0.113.255", "203.0.113.0/24" },
	{ "203.0.114.0", NULL },
	{ "223.255.255.255", NULL },
	{ "224.0.0.0", "224.0.0.0/4" },
	{ "239.255.255.255", "224.0.0.0/4" },
	{ "240.0.0.0", "240.0.0.0/4" },
	{ "255.255.255.254", "240.0.0.0/4" },
	{ "255.255.255.255", "255.255.255.255/32" },
	{ "8.8.8.8", NULL },
	/* IPv4-mapped IPv6 (RFC 4291 §2.5.5.2): judged as IPv4. */
	{ "::ffff:10.0.0.1", "10.0.0.0/8" },
	{ "::ffff:8.8.8.8", NULL },
	{ "::ffff:127.0.0.1", "127.0.0.0/8" },
	/* NAT64 well-known prefix (RFC 6052): judged by its IPv4. */
	{ "64:ff9b::10.1.1.1", "10.0.0.0/8" },
	{ "64:ff9b::8.8.8.8", NULL },
	{ "64:ff9b:1::1", "64:ff9b:1::/48" },
	/* IPv6. */
	{ "::", "::/128" },
	{ "::1", "::1/128" },
	{ "::2", "outside 2000::/3" },
	{ "::10.0.0.1", "outside 2000::/3" },	/* IPv4-compatible */
	{ "100::", "100::/64" },
	{ "100::1:0:0:0:1", "outside 2000::/3" },
	{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "outside 2000::/3" },
	{ "2000::", NULL },
	{ "2001::1", "2001::/32" },
	{ "2001:1::1", "2001:1::1/128" },
	{ "2001:1::2", "2001:1::2/128" },
	{ "2001:1::3", "2001:1::3/128" },
	{ "2001:1::4", "2001::/23" },
	{ "2001:2::1", "2001:2::/48" },
	{ "2001:3::1", "2001:3::/32" },
	{ "2001:4:112::1", "2001:4:112::/48" },
	{ "2001:10::1", "2001:10::/28" },
	{ "2001:20::1", "2001:20::/28" },
	{ "2001:30::1", "2001:30::/28" },
	{ "2001:1ff:ffff::1", "2001::/23" },
	{ "2001:200::1", NULL },
	{ "2001:db7:ffff::1", NULL },
	{ "2001:db8::", "2001:db8::/32" },
	{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32" },
	{ "2001:db9::", NULL },
	{ "2002::1", "2002::/16" },
	{ "2003::1", NULL },
	{ "2620:4f:8000::1", "2620:4f:8000::/48" },
	{ "2620:4f:8001::1", NULL },
	{ "2a00:1450:4001::1a", NULL },
	{ "3ffe::1", NULL },
	{ "3fff::1", "3fff::/20" },
	{ "3fff:1000::1", NULL },
	{ "3fff:fff::1", "3fff::/20" },
	{ "4000::1", "outside 2000::/3" },
	{ "5f00::1", "5f00::/16" },
	{ "fbff::1", "outside 2000::/3" },
	{ "fc00::1", "fc00::/7" },
	{ "fdff:ffff::1", "fc00::/7" },
	{ "fe80::1", "fe80::/10" },
	{ "febf::1", "fe80::/10" },
	{ "fec0::1", "outside 2000::/3" },
	{ "ff02::1", "ff00::/8" },
};

static void
test_rows(void **state)
{
	uint8_t a[16];
	size_t i;

	for (i = 0; i < nitems(rows); i++) {
		const struct ranges_row *r;

		addr(rows[i].addr, a);
		r = ranges_special(a);
		if (rows[i].net == NULL && r != NULL)
			fail_msg("%s: special (%s), want routable",
			    rows[i].addr, r->net);
		if (rows[i].net != NULL && (r == NULL ||
		    strcmp(r->net, rows[i].net) != 0))
			fail_msg("%s: %s, want %s", rows[i].addr,
			    r ? r->net : "routable", rows[i].net);
	}
}

struct prow {
	const char	*text;
	int		 ok;
	const char	*in, *out;	/* an address inside, one outside */
};

static const struct prow prows[] = {
	{ "10.0.0.0/8", 1, "10.255.0.1", "11.0.0.0" },
	{ "10.1.0.0/8", 0, NULL, NULL },	/* bits past the prefix */
	{ "192.0.2.7", 1, "192.0.2.7", "192.0.2.8" },
	{ "192.0.2.7/32", 1, "192.0.2.7", "192.0.2.6" },
	{ "0.0.0.0/0", 1, "255.255.255.255", "::1" },
	{ "10.0.0.0/33", 0, NULL, NULL },
	{ "127.0.0.2-127.0.0.11", 1, "127.0.0.11", "127.0.0.12" },
	{ "127.0.0.11-127.0.0.2", 0, NULL, NULL },
	{ "10.0.0.1-::1", 0, NULL, NULL },
	{ "2001:db8::/32", 1, "2001:db8:1::1", "2001:db9::" },
	{ "2001:db8::/129", 0, NULL, NULL },
	{ "::/0", 1, "ffff::1", "10.0.0.1" },
	{ "10.0.0.0/", 0, NULL, NULL },
	{ "10.0.0.0/8/8", 0, NULL, NULL },
	{ "10.0.0.0-", 0, NULL, NULL },
	{ "example.com", 0, NULL, NULL },
	{ "", 0, NULL, NULL },
	{ "1.2.3.4/8-1.2.3.5", 0, NULL, NULL },
};

static void
test_parse(void **state)
{
	struct range r;
	uint8_t a[16];
	size_t i;

	for (i = 0; i < nitems(prows); i++) {
		const struct prow *p = &prows[i];
		int rc = ranges_parse(p->text, strlen(p->text), &r);

		if ((rc == 0) != p->ok)
			fail_msg("'%s': %s", p->text, rc == 0 ? "parsed" :
			    "refused");
		if (!p->ok)
			continue;
		addr(p->in, a);
		if (ranges_find(&r, 1, a) != 0)
			fail_msg("'%s' lacks %s", p->text, p->in);
		addr(p->out, a);
		if (ranges_find(&r, 1, a) != -1)
			fail_msg("'%s' holds %s", p->text, p->out);
	}
}

/* The CIDR parser alone: the prefix length over 128 bits it gives. */
static const struct {
	const char	*text;
	int		 ok;
	unsigned	 len;
} cidr_rows[] = {
	{ "192.0.2.0/24", 1, 120 },
	{ "192.0.2.7", 1, 128 },
	{ "0.0.0.0/0", 1, 96 },
	{ "2001:db8::/32", 1, 32 },
	{ "2001:db8::1", 1, 128 },
	{ "::/0", 1, 0 },
	{ "192.0.2.1/24", 0, 0 },		/* host bits */
	{ "192.0.2.0/33", 0, 0 },
	{ "192.0.2.0/", 0, 0 },
	{ "192.0.2.0/-1", 0, 0 },
	{ "192.0.2.0/0024", 0, 0 },
	{ "2001:db8::/129", 0, 0 },
	{ "300.1.2.3/8", 0, 0 },
	{ "127.0.0.2-127.0.0.3", 0, 0 },	/* a range is no prefix */
	{ "example.org", 0, 0 },
	{ "", 0, 0 },
};

static void
test_cidr(void **state)
{
	uint8_t net[16];
	unsigned len;
	size_t i;
	int rc;

	for (i = 0; i < nitems(cidr_rows); i++) {
		len = 999;
		rc = ranges_parse_prefix(cidr_rows[i].text,
		    strlen(cidr_rows[i].text), net, &len);
		if ((rc == 0) != cidr_rows[i].ok ||
		    (rc == 0 && len != cidr_rows[i].len))
			fail_msg("'%s': rc %d len %u", cidr_rows[i].text, rc,
			    len);
	}
	assert_int_equal(ranges_parse_prefix("192.0.2.0/24", 12, net, &len),
	    0);
	assert_true(ranges_is_v4(net));
	assert_int_equal(net[12], 192);
	assert_int_equal(net[15], 0);
}

static void
test_list(void **state)
{
	struct range r[3];
	char why[128];
	uint8_t a[16];
	size_t n;

	assert_int_equal(ranges_parse_list("", 0, ", ", r, 3, &n, why,
	    sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ranges_parse_list("10.0.0.0/8, ::1  192.0.2.0/24",
	    29, ", ", r, 3, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 3);
	addr("::1", a);
	assert_int_equal(ranges_find(r, n, a), 1);
	assert_int_equal(ranges_parse_list("1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4",
	    31, " ", r, 3, &n, why, sizeof(why)), -1);
	assert_string_equal(why, "more than 3 ranges");
	assert_int_equal(ranges_parse_list("10.0.0.0/8,bogus", 16, ",", r, 3,
	    &n, why, sizeof(why)), -1);
	assert_string_equal(why, "bad address range 'bogus'");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_row_and_edges),
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
