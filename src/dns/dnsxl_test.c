/*
 * dnsxl_test: DNSBL query names (RFC 5782 §2.1, §2.4, docs/dns.md, "DNSBL"),
 * what answer codes mean (listing, not listed, the list's own error), and
 * the dnsbl_zones syntax.
 */
#include "dnsxl.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

static const struct {
	const char	*addr, *zone, *name;
} names[] = {
	{ "203.0.113.79", "zen.spamhaus.org",
	    "79.113.0.203.zen.spamhaus.org" },
	{ "127.0.0.2", "zen.spamhaus.org", "2.0.0.127.zen.spamhaus.org" },
	{ "::ffff:192.0.2.1", "bl.example", "1.2.0.192.bl.example" },
	{ "2001:db8:7ca6:22::45", "zen.spamhaus.org",
	    "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2."
	    "zen.spamhaus.org" },
	{ "::1", "dnsbl.test",
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "dnsbl.test" },
	{ "203.0.113.79", "abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net",
	    "79.113.0.203.abcdefghijklmnopqrstuvwxyz.zen.dq.spamhaus.net" },
};

static void
test_query_names(void **state)
{
	char buf[DNS_NAME_MAX], small[20];
	uint8_t a[16];
	size_t i;

	for (i = 0; i < nitems(names); i++) {
		assert_int_equal(ranges_addr_parse(names[i].addr, a), 0);
		assert_int_equal(dnsxl_query_name(a, names[i].zone, buf,
		    sizeof(buf)), 0);
		assert_string_equal(buf, names[i].name);
	}
	assert_int_equal(dnsxl_query_name(a, "zen.spamhaus.org", small,
	    sizeof(small)), -1);
	ranges_addr_parse("2001:db8::1", a);
	assert_int_equal(dnsxl_query_name(a, "zen.spamhaus.org", small,
	    sizeof(small)), -1);
}

struct crow {
	const char	*zones;		/* dnsbl_zones, first zone used */
	const char	*answers[4];	/* A records, NULL-ended */
	enum dnsxl_answer want;
	size_t		 which;
};

static const struct crow crows[] = {
	/* ZEN by default: .2-.11 list. */
	{ "zen.spamhaus.org", { "127.0.0.2", NULL }, DNSXL_LISTED, 0 },
	{ "zen.spamhaus.org", { "127.0.0.11", NULL }, DNSXL_LISTED, 0 },
	{ "zen.spamhaus.org", { "127.0.0.10", "127.0.0.4", NULL },
	    DNSXL_LISTED, 0 },
	{ "zen.spamhaus.org", { "127.0.0.30", "127.0.0.4", NULL },
	    DNSXL_LISTED, 1 },
	{ "zen.spamhaus.org", { "127.0.0.1", NULL }, DNSXL_NOT_LISTED, 0 },
	{ "zen.spamhaus.org", { "127.0.0.12", NULL }, DNSXL_NOT_LISTED, 0 },
	{ "zen.spamhaus.org", { "127.0.0.30", NULL }, DNSXL_NOT_LISTED, 0 },
	{ "zen.spamhaus.org", { NULL }, DNSXL_NOT_LISTED, 0 },
	/* DQS keyed zone: ZEN's codes too. */
	{ "k3y.zen.dq.spamhaus.net", { "127.0.0.4", NULL }, DNSXL_LISTED, 0 },
	{ "k3y.zen.dq.spamhaus.net", { "127.0.0.30", NULL },
	    DNSXL_NOT_LISTED, 0 },
	/* Errors: never a listing, even beside a listing code. */
	{ "zen.spamhaus.org", { "127.255.255.254", NULL }, DNSXL_ERROR, 0 },
	{ "zen.spamhaus.org", { "127.255.255.252", NULL }, DNSXL_ERROR, 0 },
	{ "zen.spamhaus.org", { "127.255.255.255", NULL }, DNSXL_ERROR, 0 },
	{ "zen.spamhaus.org", { "127.0.0.2", "127.255.255.250", NULL },
	    DNSXL_ERROR, 1 },
	{ "any.example", { "127.255.255.0", NULL }, DNSXL_ERROR, 0 },
	{ "any.example", { "127.255.254.255", NULL }, DNSXL_LISTED, 0 },
	/* A domain list's answer to an address: an error, any zone. */
	{ "any.example", { "127.0.1.255", NULL }, DNSXL_ERROR, 0 },
	{ "any.example", { "127.0.1.254", NULL }, DNSXL_LISTED, 0 },
	/* Other zones: 127.0.0.2 and up (RFC 5782 §2.1). */
	{ "any.example", { "127.0.0.2", NULL }, DNSXL_LISTED, 0 },
	{ "any.example", { "127.1.2.3", NULL }, DNSXL_LISTED, 0 },
	{ "any.example", { "127.0.0.1", NULL }, DNSXL_NOT_LISTED, 0 },
	{ "any.example", { "10.0.0.2", NULL }, DNSXL_NOT_LISTED, 0 },
	/* Configured codes. */
	{ "bl.example=127.0.0.2;127.0.0.30", { "127.0.0.30", NULL },
	    DNSXL_LISTED, 0 },
	{ "bl.example=127.0.0.2;127.0.0.30", { "127.0.0.3", NULL },
	    DNSXL_NOT_LISTED, 0 },
	{ "bl.example=127.0.0.0/24", { "127.0.0.200", NULL },
	    DNSXL_LISTED, 0 },
	{ "bl.example=127.0.0.0/8", { "127.255.255.254", NULL },
	    DNSXL_ERROR, 0 },
};

static void
test_classify(void **state)
{
	struct dnsxl_zone z[DNSXL_ZONES_MAX];
	uint8_t a[4][4];
	char why[128];
	size_t i, k, n, nz, which;

	for (i = 0; i < nitems(crows); i++) {
		const struct crow *r = &crows[i];

		if (dnsxl_zones_parse(r->zones, z, DNSXL_ZONES_MAX, &nz, why,
		    sizeof(why)) != 0)
			fail_msg("%s: %s", r->zones, why);
		for (n = 0; r->answers[n] != NULL; n++) {
			uint8_t m[16];

			assert_int_equal(ranges_addr_parse(r->answers[n], m),
			    0);
			memcpy(a[n], m + 12, 4);
		}
		which = 99;
		k = dnsxl_classify(&z[0], (const uint8_t (*)[4])a, n, &which);
		if (k != r->want)
			fail_msg("row %zu (%s): %zu, want %d", i, r->zones, k,
			    (int)r->want);
		if (r->want != DNSXL_NOT_LISTED && which != r->which)
			fail_msg("row %zu: record %zu decided, want %zu", i,
			    which, r->which);
	}
}

static const struct {
	const char	*text;
	int		 n;		/* zones, or -1: refused */
	const char	*err;
} zrows[] = {
	{ "", 0, NULL },
	{ "zen.spamhaus.org", 1, NULL },
	{ "zen.spamhaus.org, bl.example=127.0.0.2", 2, NULL },
	{ "a.example b.example\tc.example", 3, NULL },
	{ "ZEN.Spamhaus.ORG", 1, NULL },
	{ "zen.spamhaus.org zen.spamhaus.org", -1,
	    "zone zen.spamhaus.org given twice" },
	{ "nodot", -1, "bad zone in 'nodot'" },
	{ "zen.spamhaus.org.", -1, "bad zone in 'zen.spamhaus.org.'" },
	{ "-a.example", -1, "bad zone in '-a.example'" },
	{ "a.example=", -1, "no codes in 'a.example='" },
	{ "a.example=127.0.0.2;bogus", -1, "bad address range 'bogus'" },
	{ "a.example=::1", -1, "codes are IPv4 in 'a.example=::1'" },
	{ "a.b b.b c.b d.b e.b f.b g.b h.b i.b", -1, "more than 8 zones" },
	{ "zen.spamhaus.org dbl.spamhaus.org", -1,
	    "'dbl.spamhaus.org' lists domains, not client addresses" },
	{ "K3Y.dbl.dq.spamhaus.net", -1,
	    "'K3Y.dbl.dq.spamhaus.net' lists domains, not client addresses" },
};

static void
test_zones_parse(void **state)
{
	struct dnsxl_zone z[DNSXL_ZONES_MAX];
	char why[128];
	size_t i, n;

	for (i = 0; i < nitems(zrows); i++) {
		int rc = dnsxl_zones_parse(zrows[i].text, z, DNSXL_ZONES_MAX,
		    &n, why, sizeof(why));

		if (zrows[i].n >= 0) {
			if (rc != 0)
				fail_msg("'%s': %s", zrows[i].text, why);
			assert_int_equal(n, zrows[i].n);
		} else {
			if (rc != -1)
				fail_msg("'%s' parsed", zrows[i].text);
			assert_string_equal(why, zrows[i].err);
		}
	}
	dnsxl_zones_parse("ZEN.Spamhaus.ORG", z, DNSXL_ZONES_MAX, &n, why,
	    sizeof(why));
	assert_string_equal(z[0].name, "zen.spamhaus.org");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_names),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_zones_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
