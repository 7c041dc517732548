/* Unit tests for mx.c: rows of MX answers (and address answers), who we
 * are, and the next hops or the reason there are none. */
#include "mx.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "ranges.h"

/* Our names as backmx.conf gives them: mx_names written with a trailing
 * dot on one entry, as an operator copying a zone file would. */
static const struct config *
self_conf(void)
{
	static const char text[] = "myhostname = mx2.example.net\n"
	    "mx_names = backup.example.org., other.example.com\n";
	static struct config c;
	char err[256];

	config_defaults(&c);
	if (config_parse(&c, "mx_test.conf", text, sizeof(text) - 1, err,
	    sizeof(err)) != 0)
		fail_msg("%s", err);
	return &c;
}

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define RR_MAX		40
#define ADDRS_MAX	4

/* One host's address answer: text addresses, NULL-terminated. */
struct row_addrs {
	const char	*host;
	const char	*addr[ADDRS_MAX];
};

struct row {
	const char		*name;
	const char		*domain;
	int			 nodata;
	struct mx_record	 rr[RR_MAX];	/* up to the first host NULL */
	struct row_addrs	 addrs[4];	/* up to the first host NULL */
	size_t			 max;
	enum mx_status		 want;
	unsigned		 want_ours;
	const char		*want_hops;	/* "host/pref host/pref" */
};

/* We are mx2.example.net (myhostname), also known as backup.example.org.
 * (mx_names, written with its trailing dot),
 * and listen on 192.0.2.25 and 2001:db8::25. */
static const struct row rows[] = {
	{ "better hosts only, sorted", "example.org", 0,
	  { { 20, "mx3.example.org" }, { 10, "mx1.example.org" },
	    { 15, "mx2.example.net" }, { 5, "mx0.example.org" } },
	  { { 0 } }, 5, MX_OK, 15, "mx0.example.org/5 mx1.example.org/10" },
	{ "equal to ours is not better", "example.org", 0,
	  { { 10, "mx1.example.org" }, { 10, "mx2.example.net" } },
	  { { 0 } }, 5, MX_LOOP, 10, "" },
	{ "our name in another case, trailing dot", "example.org", 0,
	  { { 10, "mx1.example.org." }, { 20, "MX2.Example.NET." },
	    { 30, "mx9.example.org." } },
	  { { 0 } }, 5, MX_OK, 20, "mx1.example.org/10" },
	{ "one of mx_names", "example.org", 0,
	  { { 10, "mx1.example.org" }, { 20, "Backup.example.org" },
	    { 30, "mx9.example.org" } },
	  { { 0 } }, 5, MX_OK, 20, "mx1.example.org/10" },
	{ "our lowest preference counts", "example.org", 0,
	  { { 10, "mx1.example.org" }, { 30, "mx2.example.net" },
	    { 20, "backup.example.org" }, { 15, "mx1b.example.org" } },
	  { { 0 } }, 5, MX_OK, 20, "mx1.example.org/10 mx1b.example.org/15" },
	{ "our own address under another name", "example.org", 0,
	  { { 10, "mx1.example.org" }, { 20, "alias.example.org" },
	    { 30, "mx2.example.net" } },
	  { { "alias.example.org", { "192.0.2.25" } } },
	  5, MX_OK, 20, "mx1.example.org/10" },
	{ "our IPv6 address under another name", "example.org", 0,
	  { { 10, "v6.example.org" }, { 20, "mx5.example.org" } },
	  { { "v6.example.org", { "2001:db8::1", "2001:db8::25" } } },
	  5, MX_LOOP, 10, "" },
	{ "a CNAME'd host resolving to us", "example.org", 0,
	  { { 10, "cname-to-us.example.org." } },
	  { { "CNAME-to-us.example.org", { "192.0.2.25" } } },
	  5, MX_LOOP, 10, "" },
	{ "a CNAME'd host resolving elsewhere", "example.org", 0,
	  { { 10, "cname.example.org" }, { 20, "mx2.example.net" } },
	  { { "cname.example.org", { "198.51.100.7" } } },
	  5, MX_OK, 20, "cname.example.org/10" },
	{ "no MX: implicit, the domain itself", "example.org", 1,
	  { { 0 } }, { { 0 } }, 5, MX_OK, MX_NO_PREF, "example.org/0" },
	{ "no MX, and the domain is us", "mx2.example.net", 1,
	  { { 0 } }, { { 0 } }, 5, MX_LOOP, 0, "" },
	{ "no MX, the domain's address is ours", "example.org", 1,
	  { { 0 } }, { { "example.org", { "192.0.2.25" } } },
	  5, MX_LOOP, 0, "" },
	{ "null MX", "example.org", 0,
	  { { 0, "." } }, { { 0 } }, 5, MX_NULL, MX_NO_PREF, "" },
	{ "null MX beside others", "example.org", 0,
	  { { 10, "mx1.example.org" }, { 0, "." } }, { { 0 } }, 5, MX_NULL,
	  MX_NO_PREF, "" },
	{ "0.0.0.0 names no host: skipped", "example.org", 0,
	  { { 10, "zero.example.org" }, { 20, "mx1.example.org" },
	    { 30, "mx2.example.net" } },
	  { { "zero.example.org", { "0.0.0.0" } } },
	  5, MX_OK, 30, "mx1.example.org/20" },
	{ ":: names no host either", "example.org", 0,
	  { { 10, "zero.example.org" } },
	  { { "zero.example.org", { "::" } } },
	  5, MX_NO_ADDRESS, MX_NO_PREF, "" },
	{ "0.0.0.0 beside a real address: the real one", "example.org", 0,
	  { { 10, "mixed.example.org" } },
	  { { "mixed.example.org", { "0.0.0.0", "198.51.100.7" } } },
	  5, MX_OK, MX_NO_PREF, "mixed.example.org/10" },
	{ "loopback is used as it is", "example.org", 0,
	  { { 10, "local.example.org" }, { 20, "mx2.example.net" } },
	  { { "local.example.org", { "127.0.0.1" } } },
	  5, MX_OK, 20, "local.example.org/10" },
	{ "equal preferences keep the answer's order", "example.org", 0,
	  { { 10, "c.example.org" }, { 10, "a.example.org" },
	    { 5, "z.example.org" }, { 10, "b.example.org" } },
	  { { 0 } }, 5, MX_OK, MX_NO_PREF,
	  "z.example.org/5 c.example.org/10 a.example.org/10 b.example.org/10" },
	{ "more hosts than the limit: the best five", "example.org", 0,
	  { { 70, "h7" }, { 10, "h1" }, { 60, "h6" }, { 20, "h2" },
	    { 50, "h5" }, { 30, "h3" }, { 40, "h4" } },
	  { { 0 } }, 5, MX_OK, MX_NO_PREF, "h1/10 h2/20 h3/30 h4/40 h5/50" },
	{ "a smaller limit", "example.org", 0,
	  { { 30, "h3" }, { 10, "h1" }, { 20, "h2" } },
	  { { 0 } }, 2, MX_OK, MX_NO_PREF, "h1/10 h2/20" },
	{ "the same host twice", "example.org", 0,
	  { { 10, "h1" }, { 20, "H1." }, { 30, "h2" } },
	  { { 0 } }, 5, MX_OK, MX_NO_PREF, "h1/10 h2/30" },
	{ "only ourselves", "example.org", 0,
	  { { 10, "mx2.example.net" } }, { { 0 } }, 5, MX_LOOP, 10, "" },
};

static const char *self_addrs_text[] = { "192.0.2.25", "2001:db8::25" };

static void
run_row(const struct row *r)
{
	uint8_t self_addr[2][16], addr[4][ADDRS_MAX][16];
	struct mx_host_addrs ha[4];
	struct mx_self self;
	struct mx_query q;
	struct mx_result res;
	char hops[1024], buf[300];
	size_t i, j, nrr = 0, nha = 0;

	for (i = 0; i < 2; i++)
		assert_int_equal(ranges_addr_parse(self_addrs_text[i],
		    self_addr[i]), 0);
	memset(&self, 0, sizeof(self));
	self.conf = self_conf();
	self.addr = (const uint8_t (*)[16])self_addr;
	self.naddr = 2;
	while (nrr < RR_MAX && r->rr[nrr].host != NULL)
		nrr++;
	for (i = 0; i < 4 && r->addrs[i].host != NULL; i++, nha++) {
		ha[i].host = r->addrs[i].host;
		ha[i].addr = (const uint8_t (*)[16])addr[i];
		for (j = 0; j < ADDRS_MAX && r->addrs[i].addr[j] != NULL; j++)
			assert_int_equal(ranges_addr_parse(r->addrs[i].addr[j],
			    addr[i][j]), 0);
		ha[i].naddr = j;
	}
	memset(&q, 0, sizeof(q));
	q.domain = r->domain;
	q.nodata = r->nodata;
	q.rr = r->rr;
	q.nrr = nrr;
	q.addrs = ha;
	q.naddrs = nha;
	q.self = &self;
	q.max = r->max;
	mx_select(&q, &res);
	hops[0] = '\0';
	for (i = 0; i < res.nhop; i++) {
		snprintf(buf, sizeof(buf), "%s%s/%u", i ? " " : "",
		    res.hop[i].host, res.hop[i].pref);
		strcat(hops, buf);
	}
	if (res.status != r->want || res.ours != r->want_ours ||
	    strcmp(hops, r->want_hops) != 0)
		fail_msg("%s: status %d ours %u hops \"%s\"; want %d %u \"%s\"",
		    r->name, res.status, res.ours, hops, r->want, r->want_ours,
		    r->want_hops);
}

static void
test_select(void **state)
{
	size_t i;

	for (i = 0; i < nitems(rows); i++)
		run_row(&rows[i]);
}

/* The texts tasks are deferred and bounced with, as they always were. */
static void
test_reason(void **state)
{
	struct mx_result res;
	char buf[300];

	memset(&res, 0, sizeof(res));
	res.status = MX_NULL;
	assert_int_equal(mx_reason(&res, "example.org", buf, sizeof(buf)),
	    556);
	assert_string_equal(buf, "556 5.1.10 example.org accepts no mail "
	    "(null MX)");
	res.status = MX_LOOP;
	assert_int_equal(mx_reason(&res, "example.org", buf, sizeof(buf)),
	    451);
	assert_string_equal(buf, "451 4.4.6 mail for example.org loops back "
	    "to myself (no MX better than ours)");
	res.status = MX_NO_ADDRESS;
	assert_int_equal(mx_reason(&res, "example.org", buf, sizeof(buf)),
	    451);
	assert_string_equal(buf, "451 4.4.4 no address for the mail hosts of "
	    "example.org");
}

static void
test_addr_verdict(void **state)
{
	static const struct {
		const char	*addr;
		enum mx_addr	 want;
	} v[] = {
		{ "0.0.0.0", MX_ADDR_NONE },
		{ "::", MX_ADDR_NONE },
		{ "::ffff:0.0.0.0", MX_ADDR_NONE },
		{ "127.0.0.1", MX_ADDR_USE },
		{ "::1", MX_ADDR_USE },
		{ "10.1.2.3", MX_ADDR_USE },
		{ "192.0.2.25", MX_ADDR_SELF },
		{ "::ffff:192.0.2.25", MX_ADDR_SELF },
		{ "192.0.2.26", MX_ADDR_USE },
	};
	uint8_t self_addr[16], a[16];
	struct mx_self self = { .conf = self_conf(), .naddr = 1 };
	size_t i;

	assert_int_equal(ranges_addr_parse("192.0.2.25", self_addr), 0);
	self.addr = (const uint8_t (*)[16])&self_addr;
	for (i = 0; i < nitems(v); i++) {
		assert_int_equal(ranges_addr_parse(v[i].addr, a), 0);
		if (mx_addr_verdict(a, &self) != v[i].want)
			fail_msg("%s: %d", v[i].addr, mx_addr_verdict(a, &self));
	}
}

/*
 * Who is us, by address and port (issue 18 item 8): a listen address
 * only at its own port; a wildcard listen makes every loopback address
 * at its port us; special-purpose addresses refused where the caller
 * says so, never where it does not (the operator's route=, mx_check=no).
 */
static void
test_addr_verdict_ports(void **state)
{
	static const struct {
		const char	*addr;
		unsigned	 dport;
		int		 refuse;
		enum mx_addr	 want;
	} v[] = {
		{ "192.0.2.25", 25, 0, MX_ADDR_SELF },
		{ "192.0.2.25", 2525, 0, MX_ADDR_USE },
		{ "127.0.0.1", 25, 0, MX_ADDR_SELF },	/* wildcard at 25 */
		{ "127.3.4.5", 25, 1, MX_ADDR_SELF },
		{ "127.0.0.1", 2526, 0, MX_ADDR_USE },	/* another port */
		{ "127.0.0.1", 2526, 1, MX_ADDR_SPECIAL },
		{ "::1", 25, 1, MX_ADDR_SPECIAL },	/* no IPv6 wildcard */
		{ "10.1.2.3", 25, 1, MX_ADDR_SPECIAL },
		{ "10.1.2.3", 25, 0, MX_ADDR_USE },
		{ "0.0.0.0", 25, 1, MX_ADDR_NONE },
		{ "100.0.0.25", 25, 1, MX_ADDR_USE },
	};
	uint8_t self_addr[16], a[16];
	uint16_t port[1] = { 25 };
	struct mx_self self = { .conf = self_conf(), .naddr = 1,
	    .port = port, .loop_port = { 25, 0 } };
	size_t i;

	assert_int_equal(ranges_addr_parse("192.0.2.25", self_addr), 0);
	self.addr = (const uint8_t (*)[16])&self_addr;
	for (i = 0; i < nitems(v); i++) {
		assert_int_equal(ranges_addr_parse(v[i].addr, a), 0);
		self.dport = v[i].dport;
		self.refuse_special = v[i].refuse;
		if (mx_addr_verdict(a, &self) != v[i].want)
			fail_msg("%s:%u refuse=%d: %d", v[i].addr, v[i].dport,
			    v[i].refuse, mx_addr_verdict(a, &self));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_reason),
		cmocka_unit_test(test_addr_verdict),
		cmocka_unit_test(test_addr_verdict_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
