/*
 * Unit tests for addr.c: one table per function, one loop each. Inputs
 * may say "{x*N}" for N copies of x, so the length limits can be tested
 * at their edges without 256-byte literals. A failing row prints itself
 * and the loop goes on, so one run shows every broken row.
 */
#include "addr.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rows.h"

#define N	ADDR_ALLOW_NULL
#define P	ADDR_ALLOW_POSTMASTER
#define U	ADDR_ALLOW_UTF8

/* Expected bits of struct mailaddr. */
#define B_NULL	0x01
#define B_LIT	0x02
#define B_QUOT	0x04
#define B_ROUT	0x08
#define B_UTF8	0x10

#define OK	ADDR_OK
#define SYN	ADDR_ERR_SYNTAX
#define NOBR	ADDR_ERR_NO_BRACKETS
#define LOCL	ADDR_ERR_LOCAL_TOO_LONG
#define DOML	ADDR_ERR_DOMAIN_TOO_LONG
#define PATL	ADDR_ERR_PATH_TOO_LONG
#define NUL	ADDR_ERR_NULL_NOT_ALLOWED
#define UTF	ADDR_ERR_UTF8

#define EXPAND_MAX	1024

/* Rows write long inputs as "{x*N}" (tests/unit/rows.h). */
#define expand(in, inlen, out)	rows_expand(in, inlen, out, EXPAND_MAX)
#define show(s, len)		rows_show(s, len)

/* A row that must fail: no fields to compare. */
#define E(in, flags, err)	{ in, 0, flags, err, 0, NULL, NULL, 0 }
#define EL(in, len, flags, err)	{ in, len, flags, err, 0, NULL, NULL, 0 }

static const struct path_row {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) after expansion */
	int		 flags;
	enum addr_err	 err;
	size_t		 consumed;	/* 0: the whole input */
	const char	*local;		/* checked on OK only */
	const char	*domain;
	int		 bits;
} path_rows[] = {
	/* Plain mailboxes. */
	{ "<a@b.example>", 0, 0, OK, 0, "a", "b.example", 0 },
	{ "<A.B-c+tag@Example.COM>", 0, 0, OK, 0, "A.B-c+tag", "Example.COM",
	  0 },
	{ "<#$&'*+-/=?^_`{|}~@x.example>", 0, 0, OK, 0, "#$&'*+-/=?^_`{|}~",
	  "x.example", 0 },
	{ "<a%b@x.example>", 0, 0, OK, 0, "a%b", "x.example", B_ROUT },
	{ "<a!b@x.example>", 0, 0, OK, 0, "a!b", "x.example", B_ROUT },
	{ "<a@b>", 0, 0, OK, 0, "a", "b", 0 },
	{ "<a@b-c.example>", 0, 0, OK, 0, "a", "b-c.example", 0 },
	{ "<a@a--b.example>", 0, 0, OK, 0, "a", "a--b.example", 0 },
	{ "<a@xn--bcher-kva.example>", 0, 0, OK, 0, "a",
	  "xn--bcher-kva.example", 0 },
	{ "<a@1.2.3.4>", 0, 0, OK, 0, "a", "1.2.3.4", 0 },
	{ "<a@{x*63}.example>", 0, 0, OK, 0, "a", "{x*63}.example", 0 },
	E("<a@{x*64}.example>", 0, SYN),
	{ "<a@b.example>", 0, N | P | U, OK, 0, "a", "b.example", 0 },

	/* Quoted-string local parts, kept as sent. */
	{ "<\"a b\"@x.example>", 0, 0, OK, 0, "\"a b\"", "x.example",
	  B_QUOT },
	{ "<\"a\\\"b\\\\c\"@x.example>", 0, 0, OK, 0, "\"a\\\"b\\\\c\"",
	  "x.example", B_QUOT },
	{ "<\"a@b,c:d<e>\"@x.example>", 0, 0, OK, 0, "\"a@b,c:d<e>\"",
	  "x.example", B_QUOT | B_ROUT },
	{ "<\"a\\@b\"@x.example>", 0, 0, OK, 0, "\"a\\@b\"", "x.example",
	  B_QUOT | B_ROUT },
	{ "<\"\"@x.example>", 0, 0, OK, 0, "\"\"", "x.example", B_QUOT },
	{ "<\"\\ \\~\"@x.example>", 0, 0, OK, 0, "\"\\ \\~\"", "x.example",
	  B_QUOT },
	{ "<\"a%b\"@x.example>", 0, 0, OK, 0, "\"a%b\"", "x.example",
	  B_QUOT | B_ROUT },
	{ "<\"a\\!\"@x.example>", 0, 0, OK, 0, "\"a\\!\"", "x.example",
	  B_QUOT | B_ROUT },
	E("<\"a@x.example>", 0, SYN),
	E("<\"a\\", 0, SYN),
	E("<\"a\\\x01\"@x.example>", 0, SYN),
	E("<\"a\x01\"@x.example>", 0, SYN),
	E("<\"a\x7f\"@x.example>", 0, SYN),
	E("<\"a\tb\"@x.example>", 0, SYN),
	E("<\"a\"b@x.example>", 0, SYN),
	E("<\"a\".b@x.example>", 0, SYN),
	E("<a.\"b\"@x.example>", 0, SYN),
	E("<\"a\"\"@x.example>", 0, SYN),

	/* Dot-string and domain syntax. */
	E("<.a@x.example>", 0, SYN),
	E("<a.@x.example>", 0, SYN),
	E("<a..b@x.example>", 0, SYN),
	E("<a b@x.example>", 0, SYN),
	E("<a@b@x.example>", 0, SYN),
	E("<a(b)@x.example>", 0, SYN),
	E("<a>", 0, SYN),
	E("<a@>", 0, SYN),
	E("<@>", 0, SYN),
	E("<a@b.>", 0, SYN),
	E("<a@.b>", 0, SYN),
	E("<a@b..c>", 0, SYN),
	E("<a@-b.example>", 0, SYN),
	E("<a@b-.example>", 0, SYN),
	E("<a@b_c.example>", 0, SYN),
	E("<a@b.example >", 0, SYN),
	E("<a@b,c>", 0, SYN),
	E("<a@b", 0, SYN),
	E("<a@", 0, SYN),
	E("<", 0, SYN),

	/* Brackets required, no phrase, no comment; we stop at '>'. */
	E("", 0, NOBR),
	E("a@b.example", 0, NOBR),
	E("Name <a@b.example>", 0, NOBR),
	E("\"Name\" <a@b.example>", 0, NOBR),
	E(" <a@b.example>", 0, NOBR),
	E("(c)<a@b.example>", 0, NOBR),
	E("a@b.example>", 0, NOBR),
	E("<a@b.example (comment)>", 0, SYN),
	E("<(comment)a@b.example>", 0, SYN),
	E("<a@b.example(c)>", 0, SYN),
	E("<Name <a@b.example>>", 0, SYN),
	E("<<a@b.example>>", 0, SYN),
	{ "<a@b> junk", 0, 0, OK, 5, "a", "b", 0 },
	{ "<a@b>>", 0, 0, OK, 5, "a", "b", 0 },
	{ "<a@b> SIZE=10", 0, 0, OK, 5, "a", "b", 0 },
	{ "<a@b>\r\n", 0, 0, OK, 5, "a", "b", 0 },

	/* NUL and other control bytes. */
	EL("<a\0b@x.example>", 15, 0, SYN),
	EL("<a@x\0.example>", 14, 0, SYN),
	E("<a@b.example\r\n>", 0, SYN),
	E("<a\t@b.example>", 0, SYN),
	E("<a\x01@b.example>", 0, SYN),
	E("<a@b\x7f.example>", 0, SYN),

	/* Address literals. */
	{ "<a@[192.0.2.1]>", 0, 0, OK, 0, "a", "[192.0.2.1]", B_LIT },
	{ "<a@[0.0.0.0]>", 0, 0, OK, 0, "a", "[0.0.0.0]", B_LIT },
	{ "<a@[255.255.255.255]>", 0, 0, OK, 0, "a", "[255.255.255.255]",
	  B_LIT },
	E("<a@[256.0.0.1]>", 0, SYN),
	E("<a@[1.2.3.256]>", 0, SYN),
	E("<a@[01.2.3.4]>", 0, SYN),
	E("<a@[1.2.3.00]>", 0, SYN),
	E("<a@[1234.1.1.1]>", 0, SYN),
	E("<a@[1.2.3]>", 0, SYN),
	E("<a@[1.2.3.4.5]>", 0, SYN),
	E("<a@[1.2.3.4.]>", 0, SYN),
	E("<a@[1..2.3]>", 0, SYN),
	E("<a@[1.2.3.4 ]>", 0, SYN),
	E("<a@[a.b.c.d]>", 0, SYN),
	E("<a@[]>", 0, SYN),
	E("<a@[1.2.3.4]", 0, SYN),
	E("<a@[1.2.3.4]x>", 0, SYN),
	E("<a@x[1.2.3.4]>", 0, SYN),
	E("<a@[1.2.3.4].example>", 0, SYN),
	{ "<a@[IPv6:2001:db8::1]>", 0, 0, OK, 0, "a", "[IPv6:2001:db8::1]",
	  B_LIT },
	{ "<a@[ipv6:::1]>", 0, 0, OK, 0, "a", "[ipv6:::1]", B_LIT },
	{ "<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, OK, 0, "a",
	  "[IPv6:::ffff:192.0.2.1]", B_LIT },
	{ "<a@[IPv6:1:2:3:4:5:6:7:8]>", 0, 0, OK, 0, "a",
	  "[IPv6:1:2:3:4:5:6:7:8]", B_LIT },
	{ "<a@[IPv6:0000:0000:0000:0000:0000:0000:255.255.255.255]>", 0, 0,
	  OK, 0, "a", "[IPv6:0000:0000:0000:0000:0000:0000:255.255.255.255]",
	  B_LIT },
	E("<a@[IPv6:00000:0000:0000:0000:0000:0000:255.255.255.255]>", 0,
	  SYN),
	E("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, SYN),
	E("<a@[IPv6:1::2::3]>", 0, SYN),
	E("<a@[IPv6:2001:db8::g]>", 0, SYN),
	E("<a@[IPv6:2001:db8::1/64]>", 0, SYN),
	E("<a@[IPv6:fe80::1%eth0]>", 0, SYN),
	E("<a@[IPv6:::01.2.3.4]>", 0, SYN),
	E("<a@[IPv6:]>", 0, SYN),
	E("<a@[IPv6:192.0.2.1]>", 0, SYN),
	{ "<a@[x-tag:some:thing]>", 0, 0, OK, 0, "a", "[x-tag:some:thing]",
	  B_LIT },
	/* No "IPv6:" tag: syntactically a General-address-literal. */
	{ "<a@[2001:db8::1]>", 0, 0, OK, 0, "a", "[2001:db8::1]", B_LIT },
	E("<a@[tag:]>", 0, SYN),
	E("<a@[:abc]>", 0, SYN),
	E("<a@[tag-:abc]>", 0, SYN),
	E("<a@[t_g:abc]>", 0, SYN),
	E("<a@[tag:a[b]>", 0, SYN),
	E("<a@[tag:a\\b]>", 0, SYN),
	E("<a@[tag:a b]>", 0, SYN),
	E("<a@[x:{y*251}]>", 0, PATL),
	E("<a@[x:{y*252}]>", 0, DOML),

	/* Source routes: checked, then dropped (RFC 5321 §C). */
	{ "<@a.example,@b.example:user@c.example>", 0, 0, OK, 0, "user",
	  "c.example", 0 },
	{ "<@a:b@c>", 0, 0, OK, 0, "b", "c", 0 },
	{ "<@a:b@c> x", 0, 0, OK, 8, "b", "c", 0 },
	E("<@a,b:c@d>", 0, SYN),
	E("<@:a@b>", 0, SYN),
	E("<@a:>", N, SYN),
	E("<@a>", 0, SYN),
	E("<@a,@b>", 0, SYN),
	E("<@a,:b@c>", 0, SYN),
	E("<@a.:b@c>", 0, SYN),
	E("<@a;b@c>", 0, SYN),
	E("<:a@b>", 0, SYN),
	E("<@a:<b@c>>", 0, SYN),
	E("<@[192.0.2.1]:a@b>", 0, SYN),
	E("<@{a*64}:b@c>", 0, SYN),
	E("<@a:Postmaster>", P, SYN),

	/* <Postmaster> with no domain, where allowed. */
	{ "<Postmaster>", 0, P, OK, 0, "Postmaster", "", 0 },
	{ "<postMASTER>", 0, P, OK, 0, "postMASTER", "", 0 },
	{ "<Postmaster> NOTIFY=NEVER", 0, P, OK, 12, "Postmaster", "", 0 },
	E("<Postmaster>", 0, SYN),
	E("<Postmaster>", N | U, SYN),
	{ "<Postmaster@x.example>", 0, 0, OK, 0, "Postmaster", "x.example",
	  0 },
	E("<\"Postmaster\">", P, SYN),
	E("<Postmaste>", P, SYN),
	E("<post.master>", P, SYN),
	E("<Postmaster.>", P, SYN),

	/* The null path, where allowed. */
	{ "<>", 0, N, OK, 0, "", "", B_NULL },
	{ "<> SIZE=1", 0, N, OK, 2, "", "", B_NULL },
	{ "<>", 0, N | P | U, OK, 0, "", "", B_NULL },
	E("<>", 0, NUL),
	E("<>", P | U, NUL),
	E("< >", N, SYN),
	E("<\"\">", N, SYN),

	/* Length limits at their edges (RFC 5321 §4.5.3.1). */
	{ "<{a*64}@x.example>", 0, 0, OK, 0, "{a*64}", "x.example", 0 },
	E("<{a*65}@x.example>", 0, LOCL),
	{ "<\"{a*62}\"@x.example>", 0, 0, OK, 0, "\"{a*62}\"", "x.example",
	  B_QUOT },
	E("<\"{a*63}\"@x.example>", 0, LOCL),
	E("<{a*65}@b..c>", 0, LOCL),
	E("<{a*65}>", 0, SYN),
	E("<a@{a*63}.{b*63}.{c*63}.{d*62}.e>", 0, DOML),
	E("<a@{a*63}.{b*63}.{c*63}.{d*63}>", 0, PATL),
	{ "<{a*64}@{b*63}.{c*63}.{d*61}>", 0, 0, OK, 0, "{a*64}",
	  "{b*63}.{c*63}.{d*61}", 0 },
	{ "<{a*64}@{b*63}.{c*63}.{d*61}> x", 0, 0, OK, 256, "{a*64}",
	  "{b*63}.{c*63}.{d*61}", 0 },
	E("<{a*64}@{b*63}.{c*63}.{d*62}>", 0, PATL),
	{ "<@{a*63}.{b*63}:x@y.example>", 0, 0, OK, 0, "x", "y.example", 0 },
	E("<@{a*63}.{b*63}.{c*63},@{d*63}:x@y.example>", 0, PATL),
	E("<@{a*63}.{b*63}.{c*63}.{d*62}.e:x@y>", 0, DOML),

	/* UTF-8 (RFC 6531): only with SMTPUTF8, only well-formed. */
	{ "<δοκιμή@παράδειγμα.δοκιμή>", 0, U, OK, 0, "δοκιμή",
	  "παράδειγμα.δοκιμή", B_UTF8 },
	{ "<用户@例子.广告>", 0, U, OK, 0, "用户", "例子.广告", B_UTF8 },
	{ "<δοκιμή@x.example>", 0, U, OK, 0, "δοκιμή", "x.example", B_UTF8 },
	{ "<a@é.example>", 0, U, OK, 0, "a", "é.example", B_UTF8 },
	{ "<a@a-é.example>", 0, U, OK, 0, "a", "a-é.example", B_UTF8 },
	{ "<\"δ δ\"@x.example>", 0, U, OK, 0, "\"δ δ\"", "x.example",
	  B_QUOT | B_UTF8 },
	{ "<{é*32}@x.example>", 0, U, OK, 0, "{é*32}", "x.example", B_UTF8 },
	E("<{é*32}a@x.example>", U, LOCL),
	{ "<a@{é*59}.example>", 0, U, OK, 0, "a", "{é*59}.example", B_UTF8 },
	E("<a@{é*60}.example>", U, SYN),
	E("<a@é-.example>", U, SYN),
	E("<a@-é.example>", U, SYN),
	{ "<\xed\x9f\xbf@x>", 0, U, OK, 0, "\xed\x9f\xbf", "x", B_UTF8 },
	{ "<\xee\x80\x80@x>", 0, U, OK, 0, "\xee\x80\x80", "x", B_UTF8 },
	{ "<\xf4\x8f\xbf\xbf@x>", 0, U, OK, 0, "\xf4\x8f\xbf\xbf", "x",
	  B_UTF8 },
	{ "<@é.example:a@b.example>", 0, U, OK, 0, "a", "b.example", 0 },
	E("<δοκιμή@παράδειγμα.δοκιμή>", N | P, UTF),
	E("<a@παράδειγμα.example>", 0, UTF),
	E("<\"δ\"@x.example>", 0, UTF),
	E("<@é.example:a@b.example>", 0, UTF),
	E("<a@[é]>", 0, UTF),
	E("<a@[é]>", U, SYN),
	E("<\"\\é\"@x>", 0, UTF),
	E("<\"\\é\"@x>", U, SYN),
	E("<\xc0\xaf@x>", U, UTF),		/* overlong '/' */
	E("<\xc1\xbf@x>", U, UTF),		/* overlong */
	E("<\xe0\x80\xaf@x>", U, UTF),	/* overlong, 3 bytes */
	E("<\xe0\x9f\xbf@x>", U, UTF),	/* overlong, 3 bytes */
	E("<\xf0\x80\x80\xaf@x>", U, UTF),	/* overlong, 4 bytes */
	E("<\xed\xa0\x80@x>", U, UTF),	/* surrogate U+D800 */
	E("<\xed\xbf\xbf@x>", U, UTF),	/* surrogate U+DFFF */
	E("<\xf4\x90\x80\x80@x>", U, UTF),	/* above U+10FFFF */
	E("<\xf5\x80\x80\x80@x>", U, UTF),
	E("<\xff@x>", U, UTF),
	E("<\x80@x>", U, UTF),		/* lone continuation */
	E("<\xc3\x28@x>", U, UTF),		/* bad continuation */
	E("<\xc3@x>", U, UTF),		/* cut short */
	E("<a\xc3", U, UTF),		/* cut by the end */
	E("<a@\xc0\xaf.example>", U, UTF),
	E("<\"\xc0\xaf\"@x>", U, UTF),
	E("<a@x.example\xe2\x80>", U, UTF),
};

static void
test_parse_path(void **state)
{
	char in[EXPAND_MAX], local[EXPAND_MAX], domain[EXPAND_MAX];
	const struct path_row *r;
	struct mailaddr a;
	enum addr_err e;
	size_t i, len, used, want;
	int bits, bad = 0;

	for (i = 0; i < sizeof(path_rows) / sizeof(path_rows[0]); i++) {
		r = &path_rows[i];
		len = expand(r->in, r->len ? r->len : strlen(r->in), in);
		used = 0;
		e = addr_parse_path(in, len, r->flags, &a, &used);
		if (e != r->err) {
			print_error("row %zu '%s' flags %d: got %d (%s), "
			    "want %d\n", i, show(in, len), r->flags, e,
			    addr_strerror(e), r->err);
			bad++;
			continue;
		}
		if (e != ADDR_OK)
			continue;
		expand(r->local, strlen(r->local), local);
		expand(r->domain, strlen(r->domain), domain);
		want = r->consumed ? r->consumed : len;
		bits = (a.is_null ? B_NULL : 0) | (a.is_literal ? B_LIT : 0) |
		    (a.is_quoted ? B_QUOT : 0) |
		    (a.has_route_chars ? B_ROUT : 0) |
		    (a.is_utf8 ? B_UTF8 : 0);
		if (used != want || strcmp(a.local, local) != 0 ||
		    strcmp(a.domain, domain) != 0 || bits != r->bits) {
			print_error("row %zu '%s': consumed %zu local '%s' "
			    "domain '%s' bits %#x; want %zu '%s' '%s' %#x\n",
			    i, show(in, len), used, a.local, a.domain, bits,
			    want, local, domain, r->bits);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static const struct domain_row {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) after expansion */
	int		 utf8;
	int		 valid;
} domain_rows[] = {
	{ "example.org", 0, 0, 1 },
	{ "mx1.Example.ORG", 0, 0, 1 },
	{ "a", 0, 0, 1 },
	{ "1.2.3.4", 0, 0, 1 },
	{ "a-b.c--d.example", 0, 0, 1 },
	{ "xn--bcher-kva.example", 0, 0, 1 },
	{ "{a*63}.example", 0, 0, 1 },
	{ "{a*64}.example", 0, 0, 0 },
	{ "{a*63}.{b*63}.{c*63}.{d*63}", 0, 0, 1 },
	{ "{a*63}.{b*63}.{c*63}.{d*62}.e", 0, 0, 0 },
	{ "", 0, 0, 0 },
	{ ".", 0, 0, 0 },
	{ "example.org.", 0, 0, 0 },
	{ ".example.org", 0, 0, 0 },
	{ "example..org", 0, 0, 0 },
	{ "-a.example", 0, 0, 0 },
	{ "a-.example", 0, 0, 0 },
	{ "a_b.example", 0, 0, 0 },
	{ "a b.example", 0, 0, 0 },
	{ "a\0b", 3, 0, 0 },
	{ "a.example\r\n", 0, 0, 0 },
	{ "[192.0.2.1]", 0, 0, 0 },	/* a literal is not a Domain */
	{ "a@b.example", 0, 0, 0 },
	{ "bücher.example", 0, 0, 0 },
	{ "bücher.example", 0, 1, 1 },
	{ "例子.广告", 0, 1, 1 },
	{ "-ü.example", 0, 1, 0 },
	{ "{é*59}", 0, 1, 1 },
	{ "{é*60}", 0, 1, 0 },
	{ "\xc0\xaf.example", 0, 1, 0 },
	{ "\xed\xa0\x80.example", 0, 1, 0 },
	{ "a.example\xc3", 0, 1, 0 },
};

static void
test_domain_valid(void **state)
{
	char in[EXPAND_MAX];
	const struct domain_row *r;
	size_t i, len;
	int v, bad = 0;

	for (i = 0; i < sizeof(domain_rows) / sizeof(domain_rows[0]); i++) {
		r = &domain_rows[i];
		len = expand(r->in, r->len ? r->len : strlen(r->in), in);
		v = addr_domain_valid(in, len, r->utf8);
		if (v != r->valid) {
			print_error("row %zu '%s' utf8 %d: got %d\n", i,
			    show(in, len), r->utf8, v);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static const struct format_row {
	const char	*in;
	int		 flags;
	size_t		 sz;		/* 0: ADDR_PATH_MAX + 1 */
	int		 rc;
	const char	*out;
} format_rows[] = {
	{ "<a@b.example>", 0, 0, 11, "a@b.example" },
	{ "<>", N, 0, 0, "" },
	{ "<Postmaster>", P, 0, 10, "Postmaster" },
	{ "<@r.example:\"a b\"@[192.0.2.1]>", 0, 0, 17,
	  "\"a b\"@[192.0.2.1]" },
	{ "<δ@é.example>", U, 0, 13, "δ@é.example" },
	/* The longest path there is still fits ADDR_PATH_MAX + 1. */
	{ "<{a*64}@{b*63}.{c*63}.{d*61}>", 0, 0, 254,
	  "{a*64}@{b*63}.{c*63}.{d*61}" },
	{ "<a@b.example>", 0, 12, 11, "a@b.example" },
	{ "<a@b.example>", 0, 11, -1, "a@b.exampl" },
	{ "<a@b.example>", 0, 3, -1, "a@" },
	{ "<a@b.example>", 0, 1, -1, "" },
	{ "<>", N, 1, 0, "" },
};

static void
test_format(void **state)
{
	char in[EXPAND_MAX], want[EXPAND_MAX], buf[EXPAND_MAX];
	const struct format_row *r;
	struct mailaddr a;
	size_t i, len, used, sz;
	int rc, bad = 0;

	for (i = 0; i < sizeof(format_rows) / sizeof(format_rows[0]); i++) {
		r = &format_rows[i];
		len = expand(r->in, strlen(r->in), in);
		expand(r->out, strlen(r->out), want);
		assert_int_equal(addr_parse_path(in, len, r->flags, &a, &used),
		    ADDR_OK);
		sz = r->sz ? r->sz : ADDR_PATH_MAX + 1;
		memset(buf, 'X', sizeof(buf));
		rc = addr_format(&a, buf, sz);
		if (rc != r->rc || strcmp(buf, want) != 0) {
			print_error("row %zu '%s' sz %zu: got %d '%s'\n", i,
			    show(in, len), sz, rc, buf);
			bad++;
		}
	}
	/* No room at all for the NUL: refused, buf untouched. */
	assert_int_equal(addr_parse_path("<a@b>", 5, 0, &a, &used), ADDR_OK);
	buf[0] = 'X';
	assert_int_equal(addr_format(&a, buf, 0), -1);
	assert_int_equal(buf[0], 'X');
	assert_int_equal(bad, 0);
}

/* Every error has its own short, non-empty text. */
static void
test_strerror(void **state)
{
	const char *t[ADDR_ERR_UTF8 + 1];
	int i, j;

	for (i = ADDR_OK; i <= ADDR_ERR_UTF8; i++) {
		t[i] = addr_strerror((enum addr_err)i);
		assert_non_null(t[i]);
		assert_true(strlen(t[i]) > 0 && strlen(t[i]) < 60);
		for (j = 0; j < i; j++)
			assert_string_not_equal(t[i], t[j]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_domain_valid),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
