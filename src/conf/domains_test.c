/*
 * domains_test: the domains file as an operator writes it, and the lookup
 * relay control depends on. Rows are whole files (name "d") with the
 * domains they must yield or the exact error. Also 10,000 domains, the
 * example etc/domains (read from SOURCE_ROOT), and recipients= files
 * (written to a temporary directory).
 */
#include "domains.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT	"."
#endif

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
/* A label of 63 letters, the most RFC 1035 §2.3.4 allows. */
#define A63	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
		"aaaaaaaaaaaaaaaa"

static struct domains *
parse(const char *text, char *err, size_t errsz)
{
	return domains_parse("d", text, strlen(text), err, errsz);
}

/*
 * Row i of a table: 'text' parsed. With 'want' (an error text) it must
 * fail with it, and NULL is returned; else it must parse, and *dom is
 * example.com's entry.
 */
static struct domains *
parse_one(size_t i, const char *text, const char *want,
    const struct domain **dom)
{
	char err[256];
	struct domains *d = parse(text, err, sizeof(err));

	if (want != NULL) {
		if (d != NULL || strcmp(err, want) != 0)
			fail_msg("row %zu: got '%s'", i, d ? "parsed" : err);
		domains_free(d);
		return NULL;
	}
	if (d == NULL)
		fail_msg("row %zu: %s", i, err);
	*dom = domains_lookup(d, "example.com");
	assert_non_null(*dom);
	return d;
}

struct parse_row {
	const char	*text;
	const char	*names;		/* expected, in order, ' '-separated */
	const char	*err;		/* NULL: parses */
};

static const struct parse_row parse_rows[] = {
	{ "", "", NULL },
	{ "\n\n   \n\t\n", "", NULL },
	{ "# only a comment\n", "", NULL },
	{ "example.com", "example.com", NULL },
	{ "example.com\nexample.net\n", "example.com example.net", NULL },
	{ "  Example.COM.  \r\n", "example.com", NULL },
	{ "a.b\n# x\n\nc-d.e.f   # trailing comment\n", "a.b c-d.e.f", NULL },
	{ "example.com #route=bogus", "example.com", NULL },
	{ "xn--bcher-kva.example\n", "xn--bcher-kva.example", NULL },
	{ "123.example", "123.example", NULL },
	{ "a.b\tc.d", NULL, "d:1: bad option 'c.d': key=value expected" },
	{ "example", NULL, "d:1: bad domain name 'example'" },
	{ "a.b\n\nlocalhost", NULL, "d:3: bad domain name 'localhost'" },
	{ ".example.com", NULL, "d:1: bad domain name '.example.com'" },
	{ "example..com", NULL, "d:1: bad domain name 'example..com'" },
	{ "example.com..", NULL, "d:1: bad domain name 'example.com..'" },
	{ "-ex.com", NULL, "d:1: bad domain name '-ex.com'" },
	{ "ex-.com", NULL, "d:1: bad domain name 'ex-.com'" },
	{ "ex.-com", NULL, "d:1: bad domain name 'ex.-com'" },
	{ "e_x.com", NULL, "d:1: bad domain name 'e_x.com'" },
	{ "*.example.com", NULL, "d:1: bad domain name '*.example.com'" },
	{ "[192.0.2.1]", NULL, "d:1: bad domain name '[192.0.2.1]'" },
	/* Either form of an international name is one entry, its A-label
	 * form (docs/smtp.md, "International mail"). */
	{ "b\xc3\xbc" "cher.example", "xn--bcher-kva.example", NULL },
	{ "B\xc3\x9c" "CHER.example.", "xn--bcher-kva.example", NULL },
	{ "b\xc3\xbc" "cher.example\nxn--bcher-kva.example", NULL,
	    "d:2: duplicate domain 'xn--bcher-kva.example' (first on line 1)" },
	{ "xn--zz.example", NULL, "d:1: bad domain name 'xn--zz.example': "
	    "string contains invalid punycode data" },
	/* Labels up to 63, names up to 253 (RFC 1035 §2.3.4). */
	{ A63 ".com", A63 ".com", NULL },
	{ "a" A63 ".com", NULL, "d:1: bad domain name 'a" A63 ".com'" },
	{ "example.com foo=bar", NULL, "d:1: unknown option 'foo'" },
	{ "example.com\nexample.net Route=[a.b]", NULL,
	    "d:2: unknown option 'Route'" },
	{ "example.com =x", NULL, "d:1: unknown option ''" },
	{ "example.com route", NULL,
	    "d:1: bad option 'route': key=value expected" },
	{ "example.com route=[a.b] route=[c.d]", NULL,
	    "d:1: route given twice" },
	/* Duplicates, whatever their case or trailing dot. */
	{ "example.com\nexample.net\nEXAMPLE.com.\n", NULL,
	    "d:3: duplicate domain 'example.com' (first on line 1)" },
	{ "# c\nexample.com\nexample.com", NULL,
	    "d:3: duplicate domain 'example.com' (first on line 2)" },
};

static void
test_parse(void **state)
{
	char err[512], names[1024], long_name[300];
	struct domains *d;
	size_t i, j, o;

	for (i = 0; i < nitems(parse_rows); i++) {
		const struct parse_row *r = &parse_rows[i];

		d = parse(r->text, err, sizeof(err));
		if (r->err != NULL) {
			if (d != NULL || strcmp(err, r->err) != 0)
				fail_msg("row %zu \"%s\": error \"%s\", want "
				    "\"%s\"", i, r->text, d ? "none" : err,
				    r->err);
			continue;
		}
		if (d == NULL)
			fail_msg("row %zu \"%s\": %s", i, r->text, err);
		names[0] = '\0';
		for (j = 0, o = 0; j < domains_count(d); j++)
			o += (size_t)snprintf(names + o, sizeof(names) - o,
			    "%s%s", j ? " " : "", domains_at(d, j)->name);
		if (strcmp(names, r->names) != 0)
			fail_msg("row %zu: \"%s\", want \"%s\"", i, names,
			    r->names);
		assert_null(domains_at(d, domains_count(d)));
		domains_free(d);
	}
	domains_free(NULL);

	/* 253 bytes at most, not counting a trailing dot. */
	memset(long_name, 'a', 253);
	long_name[63] = long_name[127] = long_name[191] = '.';
	strcpy(long_name + 253, ".");
	d = parse(long_name, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(strlen(domains_at(d, 0)->name), 253);
	assert_non_null(domains_lookup(d, long_name));
	domains_free(d);
	strcpy(long_name + 253, "a");
	assert_null(parse(long_name, err, sizeof(err)));
	assert_memory_equal(err, "d:1: bad domain name 'aaa", 25);
}

static void
test_nul(void **state)
{
	static const char text[] = "example.com\nexa\0mple.net\n";
	struct domains *d;
	char err[256];

	d = domains_parse("d", text, sizeof(text) - 1, err, sizeof(err));
	assert_null(d);
	assert_string_equal(err, "d:2: NUL character");
	/* The length, not a NUL, ends the text. */
	d = domains_parse("d", text, 12, err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(domains_count(d), 1);
	domains_free(d);
}

struct lookup_row {
	const char	*name;
	const char	*found;		/* NULL: not ours */
};

static void
test_lookup(void **state)
{
	static const struct lookup_row rows[] = {
		{ "example.com", "example.com" },
		{ "EXAMPLE.COM", "example.com" },
		{ "Example.Com.", "example.com" },
		{ "mixed.case.example", "mixed.case.example" },
		{ "MIXED.case.Example.", "mixed.case.example" },
		{ "example.com..", NULL },
		{ "sub.example.com", NULL },
		{ "xample.com", NULL },
		{ "example.co", NULL },
		{ "example.com ", NULL },
		{ "", NULL },
		{ ".", NULL },
		{ "[192.0.2.1]", NULL },
	};
	char err[256], longname[600];
	struct domains *d;
	size_t i;

	d = parse("example.com\nMixed.Case.Example.\n", err, sizeof(err));
	assert_non_null(d);
	for (i = 0; i < nitems(rows); i++) {
		const struct domain *dom = domains_lookup(d, rows[i].name);

		if (rows[i].found == NULL ? dom != NULL : dom == NULL ||
		    strcmp(dom->name, rows[i].found) != 0)
			fail_msg("row %zu \"%s\": found %s", i, rows[i].name,
			    dom ? dom->name : "nothing");
	}
	/* A peer's name far past any limit is just not found. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(domains_lookup(d, longname));
	domains_free(d);

	d = parse("", err, sizeof(err));
	assert_non_null(d);
	assert_int_equal(domains_count(d), 0);
	assert_null(domains_lookup(d, "example.com"));
	domains_free(d);
}

/* A domain line's options: what example.com gets, or the error. */
struct opt_row {
	const char	*text;
	int		 off;		/* expected mx_check_off */
	int		 accept;	/* accept_unverified */
	int		 filters;	/* passthrough_filters */
	const char	*err;		/* NULL: parses */
};

static void
check_opt_rows(const struct opt_row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct domain *dom;
		struct domains *d = parse_one(i, rows[i].text, rows[i].err,
		    &dom);

		if (d == NULL)
			continue;
		if ((int)dom->mx_check_off != rows[i].off ||
		    dom->accept_unverified != rows[i].accept ||
		    (int)dom->passthrough_filters != rows[i].filters)
			fail_msg("row %zu: mx_check_off %d, accept_unverified "
			    "%d, passthrough_filters %d", i,
			    (int)dom->mx_check_off, dom->accept_unverified,
			    (int)dom->passthrough_filters);
		domains_free(d);
	}
}

/* mx_check=yes|no per domain: the MX-range check (docs/dns.md). */
static void
test_mx_check(void **state)
{
	static const struct opt_row rows[] = {
		{ "example.com", 0, -1, 0, NULL },
		{ "example.com mx_check=yes", 0, -1, 0, NULL },
		{ "example.com mx_check=no", 1, -1, 0, NULL },
		{ "example.com route=[a.example]:25 mx_check=no", 1, -1, 0,
		    NULL },
		{ "example.com mx_check=maybe", 0, 0, 0,
		    "d:1: bad mx_check 'maybe': yes or no" },
		{ "example.com mx_check=no mx_check=yes", 0, 0, 0,
		    "d:1: mx_check given twice" },
	};

	check_opt_rows(rows, nitems(rows));
}

/* forward_client=yes|no, once (docs/passthrough.md). */
static void
test_forward_client(void **state)
{
	static const struct {
		const char	*text;
		int		 want;
		const char	*err;
	} rows[] = {
		{ "example.com", 0, NULL },
		{ "example.com forward_client=yes", 1, NULL },
		{ "example.com forward_client=no route=[a.example]", 0, NULL },
		{ "example.com forward_client=xclient", 0,
		    "d:1: bad forward_client 'xclient': yes or no" },
		{ "example.com forward_client=yes forward_client=yes", 0,
		    "d:1: forward_client given twice" },
	};
	size_t i;

	for (i = 0; i < nitems(rows); i++) {
		const struct domain *dom;
		struct domains *d = parse_one(i, rows[i].text, rows[i].err,
		    &dom);

		if (d == NULL)
			continue;
		if ((int)dom->forward_client != rows[i].want)
			fail_msg("row %zu: forward_client %d", i,
			    (int)dom->forward_client);
		domains_free(d);
	}
}

/* bulk_threshold=N, 0 to 1000000, once (docs/bulk.md §4). */
static void
test_bulk_threshold(void **state)
{
	static const struct {
		const char	*text;
		int		 want;
		const char	*err;
	} rows[] = {
		{ "example.com", -1, NULL },
		{ "example.com bulk_threshold=5", 5, NULL },
		{ "example.com bulk_threshold=0", 0, NULL },
		{ "example.com bulk_threshold=1000000", 1000000, NULL },
		{ "example.com bulk_threshold=1000001", 0,
		    "d:1: bad bulk_threshold '1000001': a number, 0 to 1000000" },
		{ "example.com bulk_threshold=-1", 0,
		    "d:1: bad bulk_threshold '-1': a number, 0 to 1000000" },
		{ "example.com bulk_threshold=", 0,
		    "d:1: bad bulk_threshold '': a number, 0 to 1000000" },
		{ "example.com bulk_threshold=99999999999999999999", 0,
		    "d:1: bad bulk_threshold '99999999999999999999': a number, "
		    "0 to 1000000" },
		{ "example.com bulk_threshold=2 bulk_threshold=3", 0,
		    "d:1: bulk_threshold given twice" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(rows); i++) {
		const struct domain *dom;
		struct domains *d = parse_one(i, rows[i].text, rows[i].err,
		    &dom);

		if (d == NULL)
			continue;
		if (dom->bulk_threshold != rows[i].want)
			fail_msg("row %zu: bulk_threshold %d", i,
			    dom->bulk_threshold);
		domains_free(d);
	}
}

/* bulk_allow_senders=, bulk_allow_clients=, bulk_allow_recipients=: a
 * domain's own bulk allow lists, split by commas (docs/bulk.md §4). */
static void
test_bulk_allow(void **state)
{
	static const struct {
		const char	*text;
		const char	*err;
	} bad[] = {
		{ "example.com bulk_allow_senders=a@@",
		    "d:1: bulk_allow_senders: bad entry 'a@@'" },
		{ "example.com bulk_allow_senders=",
		    "d:1: bulk_allow_senders: empty" },
		{ "example.com bulk_allow_senders=,,",
		    "d:1: bulk_allow_senders: empty" },
		{ "example.com bulk_allow_clients=news.example",
		    "d:1: bulk_allow_clients: bad address or network "
		    "'news.example'" },
		{ "example.com bulk_allow_clients=192.0.2.0/33",
		    "d:1: bulk_allow_clients: bad address or network "
		    "'192.0.2.0/33'" },
		{ "example.com bulk_allow_recipients=u@other.example",
		    "d:1: address 'u@other.example' is not in example.com" },
		{ "example.com bulk_allow_recipients=a<b",
		    "d:1: bad local part 'a<b': bad address syntax" },
		{ "example.com bulk_allow_senders=a.example "
		    "bulk_allow_senders=b.example",
		    "d:1: bulk_allow_senders given twice" },
	};
	struct sockaddr_in in, out;
	const struct domain *dom;
	struct domains *d;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++)
		parse_one(i, bad[i].text, bad[i].err, &dom);

	d = parse_one(0, "example.com", NULL, &dom);
	assert_null(dom->bulk_allow);
	domains_free(d);

	d = parse_one(0, "example.com bulk_allow_senders=News.Example,"
	    "list@lists.example bulk_allow_clients=192.0.2.0/24,2001:db8::1 "
	    "bulk_allow_recipients=Subscriber,other@EXAMPLE.com\n"
	    "example.net", NULL, &dom);
	assert_non_null(dom->bulk_allow);
	assert_true(allow_has_addr(&dom->bulk_allow->senders,
	    "x@news.example"));
	assert_true(allow_has_addr(&dom->bulk_allow->senders,
	    "x@mail.news.example"));
	assert_true(allow_has_addr(&dom->bulk_allow->senders,
	    "list@lists.example"));
	assert_false(allow_has_addr(&dom->bulk_allow->senders,
	    "other@lists.example"));
	assert_false(allow_has_addr(&dom->bulk_allow->senders, ""));
	assert_true(allow_has_addr(&dom->bulk_allow->rcpts,
	    "subscriber@example.com"));
	assert_true(allow_has_addr(&dom->bulk_allow->rcpts,
	    "other@example.com"));
	assert_false(allow_has_addr(&dom->bulk_allow->rcpts,
	    "subscriber@example.net"));
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	out = in;
	inet_pton(AF_INET, "192.0.2.77", &in.sin_addr);
	inet_pton(AF_INET, "192.0.3.1", &out.sin_addr);
	assert_true(allow_has_ip(&dom->bulk_allow->clients,
	    (struct sockaddr *)&in));
	assert_false(allow_has_ip(&dom->bulk_allow->clients,
	    (struct sockaddr *)&out));
	/* Another domain's lists are its own. */
	assert_null(domains_lookup(d, "example.net")->bulk_allow);
	domains_free(d);
}

/* accept_unverified= and passthrough_filters=, yes or no, once each. */
static void
test_flag_options(void **state)
{
	static const struct opt_row rows[] = {
		{ "example.com", 0, -1, 0, NULL },
		{ "example.com accept_unverified=yes", 0, 1, 0, NULL },
		{ "example.com accept_unverified=NO", 0, 0, 0, NULL },
		{ "example.com passthrough_filters=yes", 0, -1, 1, NULL },
		{ "example.com passthrough_filters=no accept_unverified=no",
		    0, 0, 0, NULL },
		{ "example.com mx_check=no passthrough_filters=Yes "
		    "route=[a.example]", 1, -1, 1, NULL },
		{ "example.com accept_unverified=1", 0, 0, 0,
		    "d:1: bad accept_unverified '1': yes or no" },
		{ "example.com accept_unverified=", 0, 0, 0,
		    "d:1: bad accept_unverified '': yes or no" },
		{ "example.com accept_unverified=yesyesyes", 0, 0, 0,
		    "d:1: bad accept_unverified 'yesyesyes': yes or no" },
		{ "example.com passthrough_filters=on", 0, 0, 0,
		    "d:1: bad passthrough_filters 'on': yes or no" },
		{ "example.com accept_unverified=no accept_unverified=no", 0,
		    0, 0, "d:1: accept_unverified given twice" },
		{ "example.com passthrough_filters=no passthrough_filters=yes",
		    0, 0, 0, "d:1: passthrough_filters given twice" },
		{ "example.com Accept_unverified=yes", 0, 0, 0,
		    "d:1: unknown option 'Accept_unverified'" },
		{ "example.com passthrough=yes", 0, 0, 0,
		    "d:1: unknown option 'passthrough'" },
	};
	struct config c;
	char err[256];

	check_opt_rows(rows, nitems(rows));

	/* The option overrides the key; unset, the key decides. */
	config_defaults(&c);
	assert_int_equal(c.accept_unverified, 0);
	{
		struct domains *d = parse("a.example accept_unverified=yes\n"
		    "b.example accept_unverified=no\nc.example\n", err,
		    sizeof(err));

		assert_non_null(d);
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "a.example"), &c), 1);
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "b.example"), &c), 0);
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "c.example"), &c), 0);
		c.accept_unverified = 1;
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "a.example"), &c), 1);
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "b.example"), &c), 0);
		assert_int_equal(domain_accept_unverified(domains_lookup(d,
		    "c.example"), &c), 1);
		assert_int_equal(domain_accept_unverified(NULL, &c), 1);
		domains_free(d);
	}
}

/* A temporary directory for recipients= files, removed at the end. */
static char	tmpdir[64];

static void
put(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* domains_load() of "domains" in tmpdir holding 'text'. */
static struct domains *
load(const char *text, char *err, size_t errsz)
{
	char path[PATH_MAX];

	put("domains", text);
	snprintf(path, sizeof(path), "%s/domains", tmpdir);
	return domains_load(path, err, errsz);
}

/* The error of load(text), "TMP/" standing for the directory in 'want'. */
static void
load_fails(const char *text, const char *want)
{
	char err[1024], exp[1024];
	const char *w;
	size_t o = 0;
	struct domains *d;

	for (w = want; *w != '\0' && o < sizeof(exp) - 80; w++)
		if (strncmp(w, "TMP/", 4) == 0) {
			o += (size_t)snprintf(exp + o, sizeof(exp) - o, "%s/",
			    tmpdir);
			w += 3;
		} else
			exp[o++] = *w;
	exp[o] = '\0';
	d = load(text, err, sizeof(err));
	if (d != NULL || strcmp(err, exp) != 0)
		fail_msg("\"%s\": got \"%s\", want \"%s\"", text,
		    d ? "parsed" : err, exp);
}

static void
test_recipients(void **state)
{
	char err[1024], text[PATH_MAX + 64], cwd[PATH_MAX], *big;
	const struct domain *dom;
	struct domain copy;
	struct domains *d;
	size_t i;

	strcpy(tmpdir, "/tmp/domains_test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));

	put("r1", "# the static list\n\nAlice\nbob@Example.COM\n"
	    "  carol@example.com \t\r\nalice@example.com\nALICE\n"
	    "\"Quoted Name\"@example.com\n\"a@b\"\n"
	    "   # indented comment\nlast.one");
	put("r2", "x@example.net\n");
	put("empty", "");

	/* Relative to the domains file's directory, or absolute. */
	snprintf(text, sizeof(text), "example.com recipients=r1\n"
	    "example.net recipients=%s/r2 accept_unverified=yes\n"
	    "example.org recipients=empty\nexample.info\n", tmpdir);
	d = load(text, err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	dom = domains_lookup(d, "example.com");
	assert_non_null(dom);
	/* alice three times, once after folding; one quoted '@'. */
	assert_int_equal(domains_static_count(dom), 6);
	assert_int_equal(domains_static_rcpt(dom, "alice@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom, "bob@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom, "carol@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom, "last.one@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom,
	    "\"quoted name\"@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom, "\"a@b\"@example.com"), 1);
	assert_int_equal(domains_static_rcpt(dom, "dave@example.com"), 0);
	assert_int_equal(domains_static_rcpt(dom, "alice@example.net"), 0);
	assert_int_equal(domains_static_rcpt(dom, "alice"), 0);
	assert_int_equal(domains_static_rcpt(dom, ""), 0);
	/* The caller folds case: the list is lower case. */
	assert_int_equal(domains_static_rcpt(dom, "Alice@example.com"), 0);
	/* In order, for listings. */
	assert_string_equal(domains_static_at(dom, 0),
	    "\"a@b\"@example.com");
	assert_string_equal(domains_static_at(dom, 1),
	    "\"quoted name\"@example.com");
	assert_string_equal(domains_static_at(dom, 2), "alice@example.com");
	assert_string_equal(domains_static_at(dom, 5),
	    "last.one@example.com");
	assert_null(domains_static_at(dom, 6));
	assert_null(domains_static_at(NULL, 0));
	/* A copy of the struct shares the list (the policy keeps one). */
	memcpy(&copy, dom, sizeof(copy));
	assert_int_equal(domains_static_rcpt(&copy, "bob@example.com"), 1);
	assert_int_equal(domains_static_count(&copy), 6);

	dom = domains_lookup(d, "example.net");
	assert_int_equal(domains_static_count(dom), 1);
	assert_int_equal(domains_static_rcpt(dom, "x@example.net"), 1);
	assert_int_equal(dom->accept_unverified, 1);
	dom = domains_lookup(d, "example.org");
	assert_non_null(dom->rcpts);
	assert_int_equal(domains_static_count(dom), 0);
	assert_int_equal(domains_static_rcpt(dom, "x@example.org"), 0);
	dom = domains_lookup(d, "example.info");
	assert_null(dom->rcpts);
	assert_int_equal(domains_static_count(dom), 0);
	assert_int_equal(domains_static_rcpt(dom, "x@example.info"), 0);
	assert_int_equal(domains_static_count(NULL), 0);
	assert_int_equal(domains_static_rcpt(NULL, "x@example.info"), 0);

	/* A copy kept across a reload (the policy's check in flight) holds
	 * the table: the loader's domains_free() leaves it, and the list
	 * stays readable (under ASan: not freed) until the holder's own. */
	dom = domains_lookup(d, "example.com");
	assert_ptr_equal(dom->table, d);
	memcpy(&copy, dom, sizeof(copy));
	assert_ptr_equal(domains_ref(copy.table), d);
	domains_free(d);
	assert_int_equal(domains_static_rcpt(&copy, "bob@example.com"), 1);
	assert_int_equal(domains_static_count(&copy), 6);
	domains_free(copy.table);
	assert_null(domains_ref(NULL));

	/* A file that is missing fails the whole load, with the reason. */
	load_fails("example.com\nexample.net recipients=nothere\n",
	    "TMP/domains:2: recipients file TMP/nothere: cannot open: "
	    "No such file or directory");
	load_fails("example.com recipients=/nonexistent/r",
	    "TMP/domains:1: recipients file /nonexistent/r: cannot open: "
	    "No such file or directory");
	load_fails("example.com recipients=", "TMP/domains:1: bad recipients "
	    "'': a file name expected");
	load_fails("example.com recipients=/dev/null",
	    "TMP/domains:1: recipients file /dev/null: not a regular file");
	load_fails("example.com recipients=.",
	    "TMP/domains:1: recipients file TMP/.: not a regular file");
	load_fails("example.com recipients=r1 recipients=r1",
	    "TMP/domains:1: recipients given twice");
	/* The list read before a later error is freed (ASan checks). */
	load_fails("example.com recipients=r1 foo=bar",
	    "TMP/domains:1: unknown option 'foo'");
	load_fails("example.com recipients=r1\nEXAMPLE.com recipients=r1",
	    "TMP/domains:2: duplicate domain 'example.com' (first on line 1)");

	/* What the file may hold. */
	put("r3", "a@example.com\nb@example.net\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:2: address 'b@example.net' is not in example.com");
	put("r3", "a@sub.example.com\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: address 'a@sub.example.com' is not in example.com");
	put("r3", "a@example.com.\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: address 'a@example.com.' is not in example.com");
	put("r3", "ok\na..b\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:2: bad local part 'a..b': bad address syntax");
	put("r3", "john doe\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: bad local part 'john doe': bad address syntax");
	put("r3", ".a\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: bad local part '.a': bad address syntax");
	put("r3", "@example.com\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: bad local part '': bad address syntax");
	put("r3", "a>b\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: bad local part 'a>b': bad address syntax");
	/* A source route is no local part. */
	put("r3", "@x.example:y@example.com\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: bad local part '@x.example:y': bad address syntax");
	put("r3", "b\xc3\xbcr\n");
	load_fails("example.com recipients=r3", "TMP/r3:1: bad local part "
	    "'b\\xc3\\xbcr': 8-bit address needs SMTPUTF8 and valid UTF-8");
	put("r3", "a\n"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\n");
	load_fails("example.com recipients=r3",
	    "TMP/r3:2: bad local part 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaa': local part too long");

	/* Lines of 1000 octets at most; no NUL. */
	big = malloc(DOMAINS_RCPT_LINE_MAX + 3);
	assert_non_null(big);
	memset(big, ' ', DOMAINS_RCPT_LINE_MAX + 1);
	big[0] = 'a';
	big[DOMAINS_RCPT_LINE_MAX] = '\n';
	big[DOMAINS_RCPT_LINE_MAX + 1] = '\0';
	put("r3", big);
	d = load("example.com recipients=r3", err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	assert_int_equal(domains_static_rcpt(domains_lookup(d, "example.com"),
	    "a@example.com"), 1);
	domains_free(d);
	big[DOMAINS_RCPT_LINE_MAX] = ' ';
	big[DOMAINS_RCPT_LINE_MAX + 1] = '\n';
	big[DOMAINS_RCPT_LINE_MAX + 2] = '\0';
	put("r3", big);
	load_fails("example.com recipients=r3",
	    "TMP/r3:1: line longer than 1000 octets");
	free(big);
	{
		static const char nul[] = "a\nb\0c\n";
		char path[PATH_MAX];
		FILE *f;

		snprintf(path, sizeof(path), "%s/r3", tmpdir);
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(nul, 1, sizeof(nul) - 1, f),
		    sizeof(nul) - 1);
		assert_int_equal(fclose(f), 0);
		load_fails("example.com recipients=r3",
		    "TMP/r3:2: NUL character");
	}

	/* domains_parse(): relative to the current directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	d = parse("example.net recipients=r2", err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	assert_int_equal(domains_static_rcpt(domains_lookup(d, "example.net"),
	    "x@example.net"), 1);
	domains_free(d);
	assert_null(parse("example.net recipients=nothere", err,
	    sizeof(err)));
	assert_string_equal(err, "d:1: recipients file nothere: cannot open: "
	    "No such file or directory");
	assert_int_equal(chdir(cwd), 0);
	assert_null(parse("example.net recipients=r2", err, sizeof(err)));

	/* At most 1,000,000 addresses, counted before deduplication. */
	{
		char path[PATH_MAX];
		FILE *f;

		snprintf(path, sizeof(path), "%s/r4", tmpdir);
		f = fopen(path, "w");
		assert_non_null(f);
		for (i = 0; i < DOMAINS_RCPTS_MAX; i++)
			fprintf(f, "u%zu\n", i % 500000);
		assert_int_equal(fclose(f), 0);
		d = load("example.com recipients=r4", err, sizeof(err));
		if (d == NULL)
			fail_msg("%s", err);
		dom = domains_lookup(d, "example.com");
		assert_int_equal(domains_static_count(dom), 500000);
		assert_int_equal(domains_static_rcpt(dom, "u0@example.com"), 1);
		assert_int_equal(domains_static_rcpt(dom,
		    "u499999@example.com"), 1);
		assert_int_equal(domains_static_rcpt(dom,
		    "u500000@example.com"), 0);
		domains_free(d);
		f = fopen(path, "a");
		assert_non_null(f);
		fputs("# a comment does not count\none.more\n", f);
		assert_int_equal(fclose(f), 0);
		load_fails("example.com recipients=r4",
		    "TMP/r4:1000002: more than 1000000 addresses");
		unlink(path);
	}

	for (i = 0; i < 5; i++) {
		static const char *const names[] = {
			"r1", "r2", "r3", "empty", "domains"
		};
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	assert_int_equal(rmdir(tmpdir), 0);
}

struct route_row {
	const char	*route;		/* after "example.com route=" */
	const char	*host;		/* NULL: refused */
	unsigned	 port;
	int		 no_mx;
	const char	*err;
};

static const struct route_row route_rows[] = {
	{ "[mx.example.net]:2525", "mx.example.net", 2525, 1, NULL },
	{ "[mx.example.net]", "mx.example.net", 25, 1, NULL },
	{ "mx.example.net:587", "mx.example.net", 587, 0, NULL },
	{ "mx.example.net", "mx.example.net", 25, 0, NULL },
	{ "MX.Example.NET.", "mx.example.net", 25, 0, NULL },
	{ "[MX.Example.NET]:25", "mx.example.net", 25, 1, NULL },
	{ "localhost:2526", "localhost", 2526, 0, NULL },
	{ "[127.0.0.1]:2526", "127.0.0.1", 2526, 1, NULL },
	{ "[192.0.2.7]", "192.0.2.7", 25, 1, NULL },
	{ "[::1]:2526", "::1", 2526, 1, NULL },
	{ "[2001:DB8:0:0::7]:25", "2001:db8::7", 25, 1, NULL },
	{ "[::1]:65535", "::1", 65535, 1, NULL },
	{ "", NULL, 0, 0, "d:1: bad route '': bad host" },
	{ "[]:25", NULL, 0, 0, "d:1: bad route '[]:25': bad host" },
	{ ":25", NULL, 0, 0, "d:1: bad route ':25': bad host" },
	{ "[mx.example.net", NULL, 0, 0,
	    "d:1: bad route '[mx.example.net': missing ']'" },
	{ "[mx.example.net]:0", NULL, 0, 0,
	    "d:1: bad route '[mx.example.net]:0': port must be 1 to 65535" },
	{ "[mx.example.net]:65536", NULL, 0, 0, "d:1: bad route "
	    "'[mx.example.net]:65536': port must be 1 to 65535" },
	{ "[mx.example.net]:", NULL, 0, 0,
	    "d:1: bad route '[mx.example.net]:': port must be 1 to 65535" },
	{ "[mx.example.net]:25x", NULL, 0, 0,
	    "d:1: bad route '[mx.example.net]:25x': port must be 1 to 65535" },
	{ "[mx.example.net]x", NULL, 0, 0,
	    "d:1: bad route '[mx.example.net]x': port must be 1 to 65535" },
	{ "mx.example.net:-1", NULL, 0, 0,
	    "d:1: bad route 'mx.example.net:-1': port must be 1 to 65535" },
	{ "127.0.0.1:25", NULL, 0, 0, "d:1: bad route '127.0.0.1:25': an "
	    "address needs brackets, [127.0.0.1]" },
	{ "::1", NULL, 0, 0, "d:1: bad route '::1': an address needs "
	    "brackets, [::1]" },
	{ "2001:db8::7:25", NULL, 0, 0, "d:1: bad route '2001:db8::7:25': "
	    "an address needs brackets, [2001:db8::7:25]" },
	{ "mx_1.example.net", NULL, 0, 0,
	    "d:1: bad route 'mx_1.example.net': bad host" },
	{ "[mx..example]", NULL, 0, 0,
	    "d:1: bad route '[mx..example]': bad host" },
	{ "[fe80::1%eth0]:25", NULL, 0, 0,
	    "d:1: bad route '[fe80::1%eth0]:25': bad host" },
};

static void
test_routes(void **state)
{
	const struct domain *dom;
	struct domains *d;
	char text[512], err[512];
	size_t i;

	for (i = 0; i < nitems(route_rows); i++) {
		const struct route_row *r = &route_rows[i];

		snprintf(text, sizeof(text), "example.com route=%s\n",
		    r->route);
		d = parse(text, err, sizeof(err));
		if (r->host == NULL) {
			if (d != NULL || strcmp(err, r->err) != 0)
				fail_msg("row %zu \"%s\": error \"%s\", want "
				    "\"%s\"", i, r->route, d ? "none" : err,
				    r->err);
			continue;
		}
		if (d == NULL)
			fail_msg("row %zu \"%s\": %s", i, r->route, err);
		dom = domains_lookup(d, "example.com");
		assert_non_null(dom);
		if (strcmp(dom->route_host, r->host) != 0 ||
		    dom->route_port != r->port || dom->route_no_mx != r->no_mx)
			fail_msg("row %zu \"%s\": host \"%s\" port %u no_mx %u",
			    i, r->route, dom->route_host, dom->route_port,
			    dom->route_no_mx);
		domains_free(d);
	}

	/* No route=: empty host, no port, delivery by MX. */
	d = parse("example.com\n", err, sizeof(err));
	assert_non_null(d);
	dom = domains_at(d, 0);
	assert_string_equal(dom->route_host, "");
	assert_int_equal(dom->route_port, 0);
	assert_int_equal(dom->route_no_mx, 0);
	domains_free(d);
}

/* 10,000 customers: every one found, in any case, and nothing else. */
static void
test_many(void **state)
{
	const size_t n = 10000;
	char *text, name[64], err[256];
	struct domains *d;
	size_t i, o = 0;

	text = malloc(n * 64);
	assert_non_null(text);
	for (i = 0; i < n; i++)
		o += (size_t)sprintf(text + o, "customer-%zu.example%s\n", i,
		    i % 7 == 0 ? " route=[127.0.0.1]:2526" : "");
	d = domains_parse("many", text, o, err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	assert_int_equal(domains_count(d), n);
	for (i = 0; i < n; i++) {
		const struct domain *dom;

		snprintf(name, sizeof(name), "Customer-%zu.EXAMPLE.", i);
		dom = domains_lookup(d, name);
		if (dom == NULL || dom != domains_at(d, i))
			fail_msg("%s not found", name);
		assert_int_equal(dom->route_port, i % 7 == 0 ? 2526 : 0);
		snprintf(name, sizeof(name), "customer-%zu.example", i + n);
		assert_null(domains_lookup(d, name));
	}
	domains_free(d);

	/* A duplicate far down is still caught, with both lines. */
	o += (size_t)sprintf(text + o, "CUSTOMER-5000.example\n");
	d = domains_parse("many", text, o, err, sizeof(err));
	assert_null(d);
	assert_string_equal(err, "many:10001: duplicate domain "
	    "'customer-5000.example' (first on line 5001)");
	free(text);
}

static void
test_load(void **state)
{
	const struct domain *dom;
	struct domains *d;
	char err[512];

	/* The example `make run` uses. */
	d = domains_load(SOURCE_ROOT "/etc/domains", err, sizeof(err));
	if (d == NULL)
		fail_msg("%s", err);
	assert_int_equal(domains_count(d), 2);
	assert_non_null(domains_lookup(d, "example.com"));
	dom = domains_lookup(d, "EXAMPLE.NET");
	assert_non_null(dom);
	assert_string_equal(dom->route_host, "127.0.0.1");
	assert_int_equal(dom->route_port, 2526);
	assert_int_equal(dom->route_no_mx, 1);
	domains_free(d);

	d = domains_load("/nonexistent/domains", err, sizeof(err));
	assert_null(d);
	assert_string_equal(err, "/nonexistent/domains: cannot open: "
	    "No such file or directory");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_mx_check),
		cmocka_unit_test(test_flag_options),
		cmocka_unit_test(test_forward_client),
		cmocka_unit_test(test_bulk_threshold),
		cmocka_unit_test(test_bulk_allow),
		cmocka_unit_test(test_recipients),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
