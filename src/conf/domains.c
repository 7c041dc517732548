/*
 * domains: reads domains_file, the list of customer domains, into an array
 * in file order plus an open-addressing hash table (FNV-1a, linear
 * probing, at most half full) for domains_lookup(), which relay control
 * calls for every RCPT: it must stay O(1) however many customers there are.
 *
 * The table is sized once from the number of lines in the file, so it never
 * grows. Names are stored lower case without the trailing dot, which is
 * also how lookups fold theirs. Everything here is built at start or on
 * SIGHUP and read-only after; the caller swaps whole tables.
 *
 * Input is the operator's file, never peer bytes; a lookup key is peer
 * bytes (the RCPT domain) and is only hashed and compared.
 */
#include "domains.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "str.h"
#include "file.h"
#include "xmem.h"

#define DOMAINS_FILE_MAX	(256 * 1024 * 1024)
#define DOMAIN_NAME_MAX		253	/* RFC 1035 §2.3.4, without the dot */

struct domains {
	struct domain	*v;		/* in file order */
	int		*line;		/* where each was defined */
	size_t		 n, cap;
	size_t		*slot;		/* index + 1 into v; 0: empty */
	size_t		 mask;		/* number of slots - 1 */
};

struct dparse {
	const char	*name;		/* the file, for errors */
	int		 line;
	char		*err;
	size_t		 errsz;
};

static void	derr(struct dparse *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
derr(struct dparse *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		snprintf(p->err, p->errsz, "%s:%d: %s", p->name, p->line, msg);
	else
		snprintf(p->err, p->errsz, "%s: %s", p->name, msg);
}

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' ||
	    ch == '\f';
}

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Lower-case s (n bytes) into out without one trailing dot; -1 when it
 * cannot be a domain name by length. */
static int
fold(const char *s, size_t n, char out[DOMAIN_NAME_MAX + 1])
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > DOMAIN_NAME_MAX)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	str_lower(out);
	return 0;
}

/* The slot that holds 'name', or the empty one where it would go. */
static size_t *
find_slot(const struct domains *d, const char *name)
{
	size_t i = (size_t)fnv1a(name) & d->mask;

	while (d->slot[i] != 0 && strcmp(d->v[d->slot[i] - 1].name, name) != 0)
		i = (i + 1) & d->mask;
	return &d->slot[i];
}

/* Port: 1 to 65535, digits only. */
static int
parse_port(const char *s, size_t n, uint16_t *out)
{
	unsigned long port = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	if (port == 0 || port > 65535)
		return -1;
	*out = (uint16_t)port;
	return 0;
}

/*
 * route=[HOST]:PORT, [IPv4]:PORT, [IPv6]:PORT, HOST:PORT, with ":PORT"
 * optional (25). Brackets mean "this host, no MX lookup" (transport(5));
 * an address literal needs them, since an address has no MX records.
 */
static int
parse_route(struct dparse *p, struct domain *dom, const char *s, size_t n)
{
	char host[DOMAIN_NAME_MAX + 1], e[96];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *h, *rest;
	size_t hlen;

	log_escape(e, sizeof(e), s, n);
	dom->route_no_mx = 0;
	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (close == NULL) {
			derr(p, "bad route '%s': missing ']'", e);
			return -1;
		}
		h = s + 1;
		hlen = (size_t)(close - h);
		rest = close + 1;
		dom->route_no_mx = 1;
	} else {
		const char *colon = memchr(s, ':', n);

		if (colon != NULL && memchr(colon + 1, ':',
		    (size_t)(s + n - colon - 1)) != NULL) {
			derr(p, "bad route '%s': an address needs brackets, "
			    "[%s]", e, e);
			return -1;
		}
		h = s;
		hlen = colon != NULL ? (size_t)(colon - s) : n;
		rest = s + hlen;
	}
	dom->route_port = 25;
	if (rest < s + n && (*rest != ':' || parse_port(rest + 1,
	    (size_t)(s + n - rest - 1), &dom->route_port) == -1)) {
		derr(p, "bad route '%s': port must be 1 to 65535", e);
		return -1;
	}
	if (!dom->route_no_mx && hlen > 0 && h[hlen - 1] == '.')
		hlen--;		/* "mx.example.com." is absolute anyway */
	if (hlen == 0 || hlen > DOMAIN_NAME_MAX) {
		derr(p, "bad route '%s': bad host", e);
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET6, host, addr) == 1 ||
	    inet_pton(AF_INET, host, addr) == 1) {
		int af = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;

		if (!dom->route_no_mx) {
			derr(p, "bad route '%s': an address needs brackets, "
			    "[%s]", e, host);
			return -1;
		}
		inet_ntop(af, addr, dom->route_host, sizeof(dom->route_host));
		return 0;
	}
	if (config_check_host(host, 0) == -1) {
		derr(p, "bad route '%s': bad host", e);
		return -1;
	}
	str_lower(host);
	str_copy(dom->route_host, sizeof(dom->route_host), host);
	return 0;
}

/* One line: "domain [key=value ...] [# comment]". */
static int
parse_line(struct dparse *p, struct domains *d, const char *s, size_t n)
{
	struct domain dom;
	const char *w, *eq;
	size_t i = 0, wlen, *slot;
	int have_route = 0, have_mx_check = 0, b;
	char e[96];

	memset(&dom, 0, sizeof(dom));
	for (;;) {
		while (i < n && is_blank(s[i]))
			i++;
		if (i == n || s[i] == '#')
			break;
		for (w = s + i; i < n && !is_blank(s[i]); i++)
			;
		wlen = (size_t)(s + i - w);
		log_escape(e, sizeof(e), w, wlen);

		if (dom.name[0] == '\0') {
			if (fold(w, wlen, dom.name) == -1 ||
			    config_check_host(dom.name, 1) == -1) {
				derr(p, "bad domain name '%s'", e);
				return -1;
			}
			continue;
		}
		if ((eq = memchr(w, '=', wlen)) == NULL) {
			derr(p, "bad option '%s': key=value expected", e);
			return -1;
		}
		if ((size_t)(eq - w) == 5 && memcmp(w, "route", 5) == 0) {
			if (have_route++) {
				derr(p, "route given twice");
				return -1;
			}
			if (parse_route(p, &dom, eq + 1,
			    wlen - (size_t)(eq + 1 - w)) == -1)
				return -1;
			continue;
		}
		if ((size_t)(eq - w) == 8 && memcmp(w, "mx_check", 8) == 0) {
			char v[8];

			if (have_mx_check++) {
				derr(p, "mx_check given twice");
				return -1;
			}
			if (wlen - 9 >= sizeof(v) ||
			    (str_ncopy(v, sizeof(v), eq + 1, wlen - 9),
			    config_parse_bool(v, &b) == -1)) {
				derr(p, "bad mx_check '%s': yes or no",
				    log_escape(e, sizeof(e), eq + 1, wlen - 9));
				return -1;
			}
			dom.mx_check_off = !b;
			continue;
		}
		derr(p, "unknown option '%s'",
		    log_escape(e, sizeof(e), w, (size_t)(eq - w)));
		return -1;
	}
	if (dom.name[0] == '\0')
		return 0;		/* blank or comment */

	if (*(slot = find_slot(d, dom.name)) != 0) {
		derr(p, "duplicate domain '%s' (first on line %d)", dom.name,
		    d->line[*slot - 1]);
		return -1;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->v = xreallocarray(d->v, d->cap, sizeof(d->v[0]));
		d->line = xreallocarray(d->line, d->cap, sizeof(d->line[0]));
	}
	d->v[d->n] = dom;
	d->line[d->n] = p->line;
	*slot = ++d->n;
	return 0;
}

struct domains *
domains_parse(const char *name, const char *text, size_t len, char *err,
    size_t errsz)
{
	struct dparse p = { name, 0, err, errsz };
	struct domains *d = xcalloc(1, sizeof(*d));
	size_t pos, lines = 1, nslot = 16;

	if (errsz > 0)
		err[0] = '\0';
	/* Every line may hold a domain: at most half the slots fill. */
	for (pos = 0; pos < len; pos++)
		if (text[pos] == '\n')
			lines++;
	while (nslot < 2 * lines)
		nslot *= 2;
	d->slot = xcalloc(nslot, sizeof(d->slot[0]));
	d->mask = nslot - 1;

	for (pos = 0; pos < len;) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;

		pos += n + (nl != NULL);
		p.line++;
		if (memchr(s, '\0', n) != NULL) {
			derr(&p, "NUL character");
			goto fail;
		}
		if (parse_line(&p, d, s, n) == -1)
			goto fail;
	}
	return d;
fail:
	domains_free(d);
	return NULL;
}

struct domains *
domains_load(const char *path, char *err, size_t errsz)
{
	struct domains *d;
	char *buf;
	size_t len;

	if (file_read_all(path, DOMAINS_FILE_MAX, &buf, &len, err, errsz) == -1)
		return NULL;
	d = domains_parse(path, buf, len, err, errsz);
	free(buf);
	return d;
}

void
domains_free(struct domains *d)
{
	if (d == NULL)
		return;
	free(d->v);
	free(d->line);
	free(d->slot);
	free(d);
}

const struct domain *
domains_lookup(const struct domains *d, const char *name)
{
	char key[DOMAIN_NAME_MAX + 1];
	size_t *slot;

	if (fold(name, strlen(name), key) == -1)
		return NULL;
	slot = find_slot(d, key);
	return *slot != 0 ? &d->v[*slot - 1] : NULL;
}

size_t
domains_count(const struct domains *d)
{
	return d->n;
}

const struct domain *
domains_at(const struct domains *d, size_t i)
{
	return i < d->n ? &d->v[i] : NULL;
}
