/*
 * addr: RFC 5321 §4.1.2 envelope paths, parsed strictly from peer bytes.
 * smtp/parse.c calls it for MAIL FROM and RCPT TO, the session for the
 * EHLO/HELO argument and FQDN checks. Owns nothing, allocates nothing,
 * does no I/O.
 *
 * Every byte is the peer's (fuzz/fuzz_addr.c): each scan is bounded by
 * the caller's length, never by a NUL, and a field of struct mailaddr is
 * written only after its length was checked against its array. Errors are
 * reported left to right: the first component that is malformed decides;
 * a component's length is checked once its syntax is known good, and the
 * whole path's length last.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dname.h"
#include "log.h"
#include "str.h"

struct cur {
	const unsigned char	*p;	/* next byte */
	const unsigned char	*end;
	int			 flags;
};

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_letdig(int c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5322 §3.2.3 atext, the characters of an RFC 5321 Atom. */
static int
is_atext(int c)
{
	return is_letdig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/* RFC 5321 §4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static int
is_qtext(int c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) ||
	    (c >= 93 && c <= 126);
}

/* RFC 5321 §4.1.3 dcontent: %d33-90 / %d94-126. */
static int
is_dcontent(int c)
{
	return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * A byte >= 0x80 at c->p: RFC 6531 allows UTF8-non-ascii only after
 * SMTPUTF8, and only well-formed. On ADDR_OK *n_out is the sequence
 * length; whether the grammar allows it here is the caller's question.
 */
static enum addr_err
eight_bit(const struct cur *c, size_t *n_out)
{
	if (!(c->flags & ADDR_ALLOW_UTF8))
		return ADDR_ERR_UTF8;
	if ((*n_out = str_utf8_len(c->p, (size_t)(c->end - c->p))) == 0)
		return ADDR_ERR_UTF8;
	return ADDR_OK;
}

/*
 * Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (RFC 5321 §4.1.2), or a U-label (RFC 6531 §3.3) when allow_utf8, at
 * most 255 octets (§4.5.3.1.2): src/core/dname.h's rules.
 */
static enum addr_err
domain_check(const unsigned char *d, size_t len, int allow_utf8)
{
	switch (dname_check((const char *)d, len, DNAME_SMTP_LENGTH |
	    (allow_utf8 ? DNAME_UTF8 : 0))) {
	case DNAME_OK:
		return ADDR_OK;
	case DNAME_ERR_UTF8:
		return ADDR_ERR_UTF8;
	case DNAME_ERR_TOO_LONG:
		return ADDR_ERR_DOMAIN_TOO_LONG;
	case DNAME_ERR_SYNTAX:
	case DNAME_ERR_NOT_FQDN:
		break;
	}
	return ADDR_ERR_SYNTAX;
}

/*
 * Scan the bytes that can make up a domain name and check them. On
 * ADDR_OK c->p is past the name and the name is at *d_out, *len_out.
 */
static enum addr_err
domain_scan(struct cur *c, const unsigned char **d_out, size_t *len_out)
{
	const unsigned char *d = c->p;

	while (c->p < c->end && (is_letdig(*c->p) || *c->p == '-' ||
	    *c->p == '.' || *c->p >= 0x80))
		c->p++;
	*d_out = d;
	*len_out = (size_t)(c->p - d);
	return domain_check(d, *len_out, c->flags & ADDR_ALLOW_UTF8);
}

/* RFC 5321 §4.1.3 IPv4-address-literal, without leading zeros. */
static int
ipv4_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, nd;
	unsigned v;
	int part;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		for (v = 0, nd = 0; i < len && is_digit(s[i]) && nd < 4;
		    i++, nd++)
			v = v * 10 + (unsigned)(s[i] - '0');
		if (nd == 0 || nd > 3 || v > 255)
			return 0;
		if (nd > 1 && s[i - nd] == '0')
			return 0;
	}
	return i == len;
}

/* Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig, as Standardized-tag. */
static int
ldh_str(const unsigned char *s, size_t len)
{
	size_t i;

	if (len == 0 || !is_letdig(s[len - 1]))
		return 0;
	for (i = 0; i < len; i++)
		if (!is_letdig(s[i]) && s[i] != '-')
			return 0;
	return 1;
}

/*
 * The inside of an address literal (between the brackets, already known
 * to be dcontent): IPv4, "IPv6:" + RFC 4291 text, or tag ":" dcontent.
 */
static int
literal_valid(const unsigned char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN];
	struct in6_addr in6;
	const unsigned char *colon;
	size_t taglen;

	if ((colon = memchr(s, ':', len)) == NULL)
		return ipv4_valid(s, len);
	taglen = (size_t)(colon - s);
	len -= taglen + 1;
	if (taglen == 4 && lower(s[0]) == 'i' && lower(s[1]) == 'p' &&
	    lower(s[2]) == 'v' && s[3] == '6') {
		/* RFC 5321 IPv6-addr is RFC 4291 text; inet_pton is pure and
		 * takes no scope ids or prefixes. */
		if (len == 0 || len >= sizeof(buf))
			return 0;
		memcpy(buf, colon + 1, len);
		buf[len] = '\0';
		return inet_pton(AF_INET6, buf, &in6) == 1;
	}
	return ldh_str(s, taglen) && len > 0;
}

/* "[" ... "]" at c->p. On ADDR_OK c->p is past the ']'. */
static enum addr_err
literal_scan(struct cur *c)
{
	const unsigned char *start = c->p;
	enum addr_err e;
	size_t n;

	c->p++;			/* '[' */
	while (c->p < c->end && *c->p != ']') {
		if (*c->p >= 0x80) {
			if ((e = eight_bit(c, &n)) != ADDR_OK)
				return e;
			return ADDR_ERR_SYNTAX;
		}
		if (!is_dcontent(*c->p))
			return ADDR_ERR_SYNTAX;
		c->p++;
	}
	if (c->p == c->end)
		return ADDR_ERR_SYNTAX;
	if (!literal_valid(start + 1, (size_t)(c->p - start - 1)))
		return ADDR_ERR_SYNTAX;
	c->p++;			/* ']' */
	if ((size_t)(c->p - start) > ADDR_DOMAIN_MAX)
		return ADDR_ERR_DOMAIN_TOO_LONG;
	return ADDR_OK;
}

/*
 * A-d-l ":" (RFC 5321 §4.1.2): "@dom,@dom:", no address literals. RFC
 * 5321 §C: a receiver SHOULD ignore the route, so it is only checked.
 */
static enum addr_err
route_scan(struct cur *c)
{
	const unsigned char *d;
	enum addr_err e;
	size_t n;

	for (;;) {
		if (c->p == c->end || *c->p != '@')
			return ADDR_ERR_SYNTAX;
		c->p++;
		if ((e = domain_scan(c, &d, &n)) != ADDR_OK)
			return e;
		if (c->p == c->end)
			return ADDR_ERR_SYNTAX;
		if (*c->p == ':') {
			c->p++;
			return ADDR_OK;
		}
		if (*c->p != ',')
			return ADDR_ERR_SYNTAX;
		c->p++;
	}
}

/*
 * Routing inside a local part: "user%host", "host!user" and, quoted,
 * "user@host". A primary that honours such sender-specified routing for
 * backmx (Postfix with backmx in mynetworks) relays it on, so the session
 * refuses them all with one rule (docs/smtp.md, "Threats"). An '@' can
 * only appear quoted (it is no atext).
 */
static int
is_route_char(unsigned char ch, int quoted)
{
	return ch == '%' || ch == '!' || (quoted && ch == '@');
}

/*
 * Local-part = Dot-string / Quoted-string. On ADDR_OK c->p is past it.
 * Sets the is_quoted, has_route_chars and is_utf8 bits of *a.
 */
static enum addr_err
local_scan(struct cur *c, struct mailaddr *a)
{
	enum addr_err e;
	size_t n;
	int atom;

	if (c->p < c->end && *c->p == '"') {
		a->is_quoted = 1;
		for (c->p++; c->p < c->end && *c->p != '"'; c->p += n) {
			n = 1;
			if (is_route_char(*c->p, 1))
				a->has_route_chars = 1;
			if (*c->p == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (c->end - c->p < 2)
					return ADDR_ERR_SYNTAX;
				c->p++;
				if (is_route_char(*c->p, 1))
					a->has_route_chars = 1;
				if (*c->p >= 0x80 &&
				    (e = eight_bit(c, &n)) != ADDR_OK)
					return e;
				if (*c->p < 32 || *c->p > 126)
					return ADDR_ERR_SYNTAX;
			} else if (*c->p >= 0x80) {
				if ((e = eight_bit(c, &n)) != ADDR_OK)
					return e;
				a->is_utf8 = 1;
			} else if (!is_qtext(*c->p))
				return ADDR_ERR_SYNTAX;
		}
		if (c->p == c->end)
			return ADDR_ERR_SYNTAX;
		c->p++;		/* closing DQUOTE */
		return ADDR_OK;
	}

	/* Dot-string = Atom *("." Atom) */
	atom = 0;
	while (c->p < c->end) {
		if (*c->p == '.') {
			if (!atom)
				return ADDR_ERR_SYNTAX;
			atom = 0;
			c->p++;
			continue;
		}
		if (*c->p >= 0x80) {
			if ((e = eight_bit(c, &n)) != ADDR_OK)
				return e;
			a->is_utf8 = 1;
			c->p += n;
		} else if (is_atext(*c->p)) {
			if (is_route_char(*c->p, 0))
				a->has_route_chars = 1;
			c->p++;
		} else
			break;
		atom = 1;
	}
	return atom ? ADDR_OK : ADDR_ERR_SYNTAX;
}

static int
is_postmaster(const unsigned char *s, size_t len)
{
	static const char pm[] = "postmaster";
	size_t i;

	if (len != sizeof(pm) - 1)
		return 0;
	for (i = 0; i < len; i++)
		if (lower(s[i]) != pm[i])
			return 0;
	return 1;
}

enum addr_err
addr_parse_path(const char *s, size_t len, int flags, struct mailaddr *out,
    size_t *consumed_out)
{
	struct cur c;
	const unsigned char *start, *local, *dom;
	size_t locallen, domlen, i;
	enum addr_err e;
	int route = 0;

	/* The caller hands us what follows "FROM:" / "TO:"; anything not
	 * opening with '<' is a bare address or an RFC 822 phrase. */
	if (len == 0 || s[0] != '<')
		return ADDR_ERR_NO_BRACKETS;
	memset(out, 0, sizeof(*out));
	start = (const unsigned char *)s;
	c.p = start + 1;
	c.end = start + len;
	c.flags = flags;

	if (c.p < c.end && *c.p == '>') {
		if (!(flags & ADDR_ALLOW_NULL))
			return ADDR_ERR_NULL_NOT_ALLOWED;
		out->is_null = 1;
		*consumed_out = 2;
		return ADDR_OK;
	}
	if (c.p < c.end && *c.p == '@') {
		if ((e = route_scan(&c)) != ADDR_OK)
			return e;
		route = 1;
	}

	local = c.p;
	if ((e = local_scan(&c, out)) != ADDR_OK)
		return e;
	locallen = (size_t)(c.p - local);
	if (c.p == c.end)
		return ADDR_ERR_SYNTAX;

	/* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, RCPT only. */
	if (*c.p == '>' && (flags & ADDR_ALLOW_POSTMASTER) && !route &&
	    !out->is_quoted && is_postmaster(local, locallen)) {
		memcpy(out->local, local, locallen);
		out->local[locallen] = '\0';
		*consumed_out = (size_t)(c.p + 1 - start);
		return ADDR_OK;
	}
	if (*c.p != '@')
		return ADDR_ERR_SYNTAX;
	if (locallen > ADDR_LOCAL_MAX)
		return ADDR_ERR_LOCAL_TOO_LONG;
	c.p++;

	dom = c.p;
	if (c.p < c.end && *c.p == '[') {
		if ((e = literal_scan(&c)) != ADDR_OK)
			return e;
		domlen = (size_t)(c.p - dom);
		out->is_literal = 1;
	} else {
		if ((e = domain_scan(&c, &dom, &domlen)) != ADDR_OK)
			return e;
	}
	if (c.p == c.end || *c.p != '>')
		return ADDR_ERR_SYNTAX;
	c.p++;

	/* RFC 5321 §4.5.3.1.3: 256 octets, punctuation and route included. */
	if ((size_t)(c.p - start) > ADDR_PATH_MAX)
		return ADDR_ERR_PATH_TOO_LONG;

	memcpy(out->local, local, locallen);
	out->local[locallen] = '\0';
	memcpy(out->domain, dom, domlen);
	out->domain[domlen] = '\0';
	for (i = 0; i < domlen; i++)
		if (dom[i] >= 0x80)
			out->is_utf8 = 1;
	*consumed_out = (size_t)(c.p - start);
	return ADDR_OK;
}

const char *
addr_strerror(enum addr_err e)
{
	switch (e) {
	case ADDR_OK:
		return "ok";
	case ADDR_ERR_SYNTAX:
		return "bad address syntax";
	case ADDR_ERR_NO_BRACKETS:
		return "address must be in angle brackets";
	case ADDR_ERR_LOCAL_TOO_LONG:
		return "local part too long";
	case ADDR_ERR_DOMAIN_TOO_LONG:
		return "domain too long";
	case ADDR_ERR_PATH_TOO_LONG:
		return "path too long";
	case ADDR_ERR_NULL_NOT_ALLOWED:
		return "null path not allowed here";
	case ADDR_ERR_UTF8:
		return "8-bit address needs SMTPUTF8 and valid UTF-8";
	}
	panic("addr_strerror: unknown error %d", (int)e);
}

int
addr_format(const struct mailaddr *a, char *buf, size_t sz)
{
	int n;

	if (sz == 0)
		return -1;
	if (a->is_null)
		n = snprintf(buf, sz, "%s", "");
	else if (a->domain[0] == '\0')
		n = snprintf(buf, sz, "%s", a->local);	/* <Postmaster> */
	else
		n = snprintf(buf, sz, "%s@%s", a->local, a->domain);
	if (n < 0 || (size_t)n >= sz)
		return -1;
	return n;
}

int
addr_domain_valid(const char *d, size_t len, int allow_utf8)
{
	return domain_check((const unsigned char *)d, len, allow_utf8) ==
	    ADDR_OK;
}
