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
 *
 * A recipients=FILE list is read whole while its line is parsed: every
 * address checked with the RFC 5321 path parser (src/mail/addr.h), kept
 * lower case in one arena, then sorted and deduplicated so that
 * domains_static_rcpt() is a bsearch. The file is bounded (lines,
 * addresses) and must be a regular file: a FIFO or a device would block
 * the reload, or never end.
 */
#include "domains.h"

#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "allow.h"
#include "config.h"
#include "dname.h"
#include "idna.h"
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
	unsigned	 refs;		/* domains_ref(); 1 at load */
};

/* A recipients= list: the strings live in buf, v points into it. */
struct domain_rcpts {
	char		*buf;
	size_t		 len, cap;
	char		**v;		/* sorted, no duplicates */
	size_t		 n;
};

struct dparse {
	const char	*name;		/* the file, for errors */
	int		 line;
	char		*err;
	size_t		 errsz;
	const char	*dir;		/* "" or the file's directory with '/' */
};

static void	rerr(struct dparse *, const char *, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

/* An error at "FILE:LINE: what is wrong": in a recipients= file, or
 * (derr) on the line of domains_file being parsed. */
static void
rerr(struct dparse *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verr(p->err, p->errsz, file, line, fmt, ap);
	va_end(ap);
}

#define derr(p, ...)	rerr((p), (p)->name, (p)->line, __VA_ARGS__)

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
	if (!dname_valid(host, 0)) {
		derr(p, "bad route '%s': bad host", e);
		return -1;
	}
	str_lower(host);
	str_copy(dom->route_host, sizeof(dom->route_host), host);
	return 0;
}

static void
rcpts_free(struct domain_rcpts *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->v);
	free(r);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read one line of at most bufsz - 1 octets without its '\n'. */
enum { RL_LINE, RL_EOF, RL_LONG, RL_NUL, RL_ERR };

static int
read_line(FILE *f, char *buf, size_t bufsz, size_t *len_out)
{
	size_t len = 0;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (c == '\0')
			return RL_NUL;
		if (len == bufsz - 1)
			return RL_LONG;
		buf[len++] = (char)c;
	}
	if (c == EOF && ferror(f))
		return RL_ERR;
	if (c == EOF && len == 0)
		return RL_EOF;
	buf[len] = '\0';
	*len_out = len;
	return RL_LINE;
}

/*
 * "local" or "local@domain" of 'domain' (a recipients= line, an item of
 * bulk_allow_recipients=), checked as the path "<local@domain>" would be
 * in a RCPT TO, into out lower case. The domain part is after the last
 * '@' unless a '"' follows it (then the '@' is in a quoted local part).
 */
static int
rcpt_canon(struct dparse *p, const char *file, int line, const char *domain,
    const char *s, size_t n, char out[ADDR_PATH_MAX + 1])
{
	char path[DOMAINS_RCPT_LINE_MAX + DOMAIN_NAME_MAX + 8], e[96];
	const char *at = NULL, *q;
	struct mailaddr ma;
	size_t llen = n, plen, consumed;
	enum addr_err ae;

	for (q = s + n; q > s; q--)
		if (q[-1] == '@') {
			at = q - 1;
			break;
		}
	if (at != NULL && memchr(at, '"', (size_t)(s + n - at)) == NULL) {
		size_t dlen = (size_t)(s + n - at - 1);

		llen = (size_t)(at - s);
		if (dlen != strlen(domain) ||
		    strncasecmp(at + 1, domain, dlen) != 0) {
			rerr(p, file, line, "address '%s' is not in %s",
			    log_escape(e, sizeof(e), s, n), domain);
			return -1;
		}
	}
	log_escape(e, sizeof(e), s, llen);
	if (llen > DOMAINS_RCPT_LINE_MAX) {
		rerr(p, file, line, "bad local part '%s': %s", e,
		    addr_strerror(ADDR_ERR_PATH_TOO_LONG));
		return -1;
	}
	plen = (size_t)snprintf(path, sizeof(path), "<%.*s@%s>", (int)llen, s,
	    domain);
	ae = addr_parse_path(path, plen, 0, &ma, &consumed);
	if (ae == ADDR_OK && (consumed != plen || strlen(ma.local) != llen ||
	    memcmp(ma.local, s, llen) != 0))
		ae = ADDR_ERR_SYNTAX;	/* a '>' inside, or a source route */
	if (llen == 0 || ae != ADDR_OK) {
		rerr(p, file, line, "bad local part '%s': %s", e,
		    addr_strerror(ae == ADDR_OK ? ADDR_ERR_SYNTAX : ae));
		return -1;
	}
	if (addr_format(&ma, out, ADDR_PATH_MAX + 1) == -1) {
		rerr(p, file, line, "bad local part '%s': %s", e,
		    addr_strerror(ADDR_ERR_PATH_TOO_LONG));
		return -1;
	}
	str_lower(out);
	return 0;
}

/* One line of a recipients= file, trimmed, not blank, no comment,
 * appended to r (rcpt_canon()). */
static int
rcpts_add(struct dparse *p, struct domain_rcpts *r, size_t *noff,
    size_t **off, size_t *offcap, const char *file, int line,
    const char *domain, const char *s, size_t n)
{
	char out[ADDR_PATH_MAX + 1];
	size_t olen;

	if (rcpt_canon(p, file, line, domain, s, n, out) == -1)
		return -1;
	if (*noff == DOMAINS_RCPTS_MAX) {
		rerr(p, file, line, "more than %d addresses",
		    DOMAINS_RCPTS_MAX);
		return -1;
	}
	olen = strlen(out) + 1;
	if (r->len + olen > r->cap) {
		while (r->len + olen > r->cap)
			r->cap = r->cap ? r->cap * 2 : 4096;
		r->buf = xreallocarray(r->buf, r->cap, 1);
	}
	memcpy(r->buf + r->len, out, olen);
	if (*noff == *offcap) {
		*offcap = *offcap ? *offcap * 2 : 256;
		*off = xreallocarray(*off, *offcap, sizeof(**off));
	}
	(*off)[(*noff)++] = r->len;
	r->len += olen;
	return 0;
}

/*
 * recipients=FILE of 'domain': FILE relative to p->dir unless absolute.
 * NULL with the error set when the file cannot be read or is wrong.
 */
static struct domain_rcpts *
rcpts_load(struct dparse *p, const char *domain, const char *name, size_t n)
{
	char file[PATH_MAX], line[DOMAINS_RCPT_LINE_MAX + 1], e[96];
	struct domain_rcpts *r = NULL;
	size_t len, i, j, noff = 0, offcap = 0, *off = NULL;
	struct stat st;
	FILE *f = NULL;
	int fd, lineno = 0, rl;

	log_escape(e, sizeof(e), name, n);
	if (n == 0) {
		derr(p, "bad recipients '': a file name expected");
		return NULL;
	}
	if ((size_t)snprintf(file, sizeof(file), "%s%.*s", name[0] == '/' ?
	    "" : p->dir, (int)n, name) >= sizeof(file)) {
		derr(p, "bad recipients '%s': file name too long", e);
		return NULL;
	}
	/* Not blocking: a FIFO must not stall a reload (then refused). */
	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		derr(p, "recipients file %s: cannot open: %s", file,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		derr(p, "recipients file %s: not a regular file", file);
		close(fd);
		return NULL;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		derr(p, "recipients file %s: cannot open: %s", file,
		    strerror(errno));
		close(fd);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	for (;;) {
		const char *s = line;

		rl = read_line(f, line, sizeof(line), &len);
		if (rl == RL_EOF)
			break;
		lineno++;
		if (rl == RL_LONG) {
			rerr(p, file, lineno, "line longer than %d octets",
			    DOMAINS_RCPT_LINE_MAX);
			goto fail;
		}
		if (rl == RL_NUL) {
			rerr(p, file, lineno, "NUL character");
			goto fail;
		}
		if (rl == RL_ERR) {
			derr(p, "recipients file %s: cannot read: %s", file,
			    strerror(errno));
			goto fail;
		}
		while (len > 0 && (is_blank(s[len - 1])))
			len--;
		while (len > 0 && is_blank(*s)) {
			s++;
			len--;
		}
		if (len == 0 || *s == '#')
			continue;
		if (rcpts_add(p, r, &noff, &off, &offcap, file, lineno, domain,
		    s, len) == -1)
			goto fail;
	}
	fclose(f);

	/* r->buf is final now: point into it, sort, drop repeats. */
	r->v = xreallocarray(NULL, noff ? noff : 1, sizeof(r->v[0]));
	for (i = 0; i < noff; i++)
		r->v[i] = r->buf + off[i];
	free(off);
	qsort(r->v, noff, sizeof(r->v[0]), cmp_str);
	for (i = 0, j = 0; i < noff; i++)
		if (j == 0 || strcmp(r->v[j - 1], r->v[i]) != 0)
			r->v[j++] = r->v[i];
	r->n = j;
	return r;
fail:
	fclose(f);
	free(off);
	rcpts_free(r);
	return NULL;
}

/* "yes" or "no" (either case), n bytes at v, for option 'key'. */
static int
parse_yesno(struct dparse *p, const char *key, const char *v, size_t n,
    int *out)
{
	char buf[8], e[96];

	if (n < sizeof(buf)) {
		str_ncopy(buf, sizeof(buf), v, n);
		if (config_parse_bool(buf, out) == 0)
			return 0;
	}
	derr(p, "bad %s '%s': yes or no", key, log_escape(e, sizeof(e), v, n));
	return -1;
}

/* bulk_threshold=N: a number, 0 (off) to 1000000. */
static int
parse_threshold(struct dparse *p, struct domain *dom, const char *v,
    size_t n)
{
	char e[96];
	size_t i;
	long t = 0;

	for (i = 0; i < n && v[i] >= '0' && v[i] <= '9' && t <= 1000000; i++)
		t = t * 10 + (v[i] - '0');
	if (n == 0 || i != n || t > 1000000) {
		derr(p, "bad bulk_threshold '%s': a number, 0 to 1000000",
		    log_escape(e, sizeof(e), v, n));
		return -1;
	}
	dom->bulk_threshold = (int)t;
	return 0;
}

/* The options of a domain line, each allowed once. */
enum { OPT_ROUTE, OPT_MX_CHECK, OPT_ACCEPT_UNVERIFIED,
    OPT_PASSTHROUGH_FILTERS, OPT_RECIPIENTS, OPT_FORWARD_CLIENT,
    OPT_BULK_THRESHOLD, OPT_BULK_ALLOW_SENDERS, OPT_BULK_ALLOW_CLIENTS,
    OPT_BULK_ALLOW_RECIPIENTS, OPT_N };
static const char *const options[OPT_N] = {
	"route", "mx_check", "accept_unverified", "passthrough_filters",
	"recipients", "forward_client", "bulk_threshold", "bulk_allow_senders",
	"bulk_allow_clients", "bulk_allow_recipients"
};

static void
allow_lists_free(struct allow_set *a)
{
	if (a != NULL)
		allow_set_free(a);
	free(a);
}

/*
 * bulk_allow_senders=, bulk_allow_clients=, bulk_allow_recipients=: one
 * of the domain's own bulk allow lists (docs/bulk.md §4), its items split
 * by commas. A recipient is one of this domain's: "local" or
 * "local@DOMAIN", as in a recipients= file.
 */
static int
parse_allow(struct dparse *p, struct domain *dom, int o, const char *v,
    size_t n)
{
	char err[256], addr[ADDR_PATH_MAX + 1], *buf;
	const char *it;
	struct allow_set *a;
	size_t len, items = 0;
	int rc = 0;

	if (dom->bulk_allow == NULL)
		dom->bulk_allow = xcalloc(1, sizeof(*dom->bulk_allow));
	a = dom->bulk_allow;
	buf = xmalloc(n + 1);
	memcpy(buf, v, n);
	buf[n] = '\0';
	err[0] = '\0';
	for (it = buf; rc == 0 && (len = str_list_next(&it)) > 0; it += len) {
		items++;
		if (o == OPT_BULK_ALLOW_SENDERS)
			rc = allow_add(&a->senders, ALLOW_ADDRS, options[o],
			    it, len, err, sizeof(err));
		else if (o == OPT_BULK_ALLOW_CLIENTS)
			rc = allow_add(&a->clients, ALLOW_NETS, options[o],
			    it, len, err, sizeof(err));
		else if ((rc = rcpt_canon(p, p->name, p->line, dom->name, it,
		    len, addr)) == 0)
			rc = allow_add(&a->rcpts, ALLOW_ADDRS, options[o],
			    addr, strlen(addr), err, sizeof(err));
	}
	free(buf);
	if (rc == 0 && items == 0) {
		snprintf(err, sizeof(err), "%s: empty", options[o]);
		rc = -1;
	}
	if (rc == -1 && err[0] != '\0')
		derr(p, "%s", err);
	return rc;
}

/* Option 'w' (klen bytes, before its '=') with value v (vlen bytes) into
 * dom; 'seen' has a bit for each option given so far. */
static int
parse_option(struct dparse *p, struct domain *dom, unsigned *seen,
    const char *w, size_t klen, const char *v, size_t vlen)
{
	char e[96];
	int o, b;

	for (o = 0; o < OPT_N; o++)
		if (strlen(options[o]) == klen &&
		    memcmp(w, options[o], klen) == 0)
			break;
	if (o == OPT_N) {
		derr(p, "unknown option '%s'",
		    log_escape(e, sizeof(e), w, klen));
		return -1;
	}
	if (*seen & (1u << o)) {
		derr(p, "%s given twice", options[o]);
		return -1;
	}
	*seen |= 1u << o;
	switch (o) {
	case OPT_ROUTE:
		return parse_route(p, dom, v, vlen);
	case OPT_RECIPIENTS:
		dom->rcpts = rcpts_load(p, dom->name, v, vlen);
		return dom->rcpts != NULL ? 0 : -1;
	case OPT_BULK_THRESHOLD:
		return parse_threshold(p, dom, v, vlen);
	case OPT_BULK_ALLOW_SENDERS:
	case OPT_BULK_ALLOW_CLIENTS:
	case OPT_BULK_ALLOW_RECIPIENTS:
		return parse_allow(p, dom, o, v, vlen);
	}
	/* The others are yes or no. */
	if (parse_yesno(p, options[o], v, vlen, &b) == -1)
		return -1;
	if (o == OPT_MX_CHECK)
		dom->mx_check_off = !b;
	else if (o == OPT_ACCEPT_UNVERIFIED)
		dom->accept_unverified = b;
	else if (o == OPT_FORWARD_CLIENT)
		dom->forward_client = b != 0;
	else
		dom->passthrough_filters = b != 0;
	return 0;
}
/*
 * The table's key for a name written either way: its A-label form
 * (idna.h), lower case, without a trailing dot. A customer listed as
 * müller.test or xn--mller-kva.test is one entry that mail to either
 * form finds (docs/smtp.md, "International mail"). -1 when it is no
 * name; *why says why when IDNA refused it.
 */
static int
name_key(const char *s, size_t n, char out[DOMAIN_NAME_MAX + 1],
    const char **why)
{
	char al[ADDR_DOMAIN_MAX + 1];

	*why = NULL;
	/* One trailing dot is dropped, a second one is no name. */
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > DOMAIN_NAME_MAX || s[n - 1] == '.')
		return -1;
	if (idna_to_alabel(s, n, al, sizeof(al), why) != IDNA_OK)
		return -1;
	*why = NULL;
	return fold(al, strlen(al), out);
}

/* One line: "domain [key=value ...] [# comment]". */
static int
parse_line(struct dparse *p, struct domains *d, const char *s, size_t n)
{
	struct domain dom;
	const char *w, *eq;
	size_t i = 0, wlen, klen, *slot;
	unsigned seen = 0;
	const char *why;
	char e[96];

	memset(&dom, 0, sizeof(dom));
	dom.accept_unverified = -1;
	dom.bulk_threshold = -1;
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
			if (name_key(w, wlen, dom.name, &why) == -1 ||
			    !dname_valid(dom.name, DNAME_DOTTED)) {
				derr(p, "bad domain name '%s'%s%s", e,
				    why ? ": " : "", why ? why : "");
				return -1;
			}
			continue;
		}
		if ((eq = memchr(w, '=', wlen)) == NULL) {
			derr(p, "bad option '%s': key=value expected", e);
			goto fail;
		}
		klen = (size_t)(eq - w);
		if (parse_option(p, &dom, &seen, w, klen, eq + 1,
		    wlen - klen - 1) == -1)
			goto fail;
	}
	if (dom.name[0] == '\0')
		return 0;		/* blank or comment */

	if (*(slot = find_slot(d, dom.name)) != 0) {
		derr(p, "duplicate domain '%s' (first on line %d)", dom.name,
		    d->line[*slot - 1]);
		goto fail;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->v = xreallocarray(d->v, d->cap, sizeof(d->v[0]));
		d->line = xreallocarray(d->line, d->cap, sizeof(d->line[0]));
	}
	d->v[d->n] = dom;	/* d owns its lists from here */
	d->line[d->n] = p->line;
	*slot = ++d->n;
	return 0;
fail:
	rcpts_free(dom.rcpts);
	allow_lists_free(dom.bulk_allow);
	return -1;
}

/* domains_parse() with recipients= files relative to 'dir'. */
static struct domains *
parse_text(const char *name, const char *dir, const char *text, size_t len,
    char *err, size_t errsz)
{
	struct dparse p = { name, 0, err, errsz, dir };
	struct domains *d = xcalloc(1, sizeof(*d));
	size_t i, pos, lines = 1, nslot = 16;

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
	/* Once v has stopped moving: each entry names its table, so that
	 * whoever keeps a copy of one can keep the table (domains_ref()). */
	for (i = 0; i < d->n; i++)
		d->v[i].table = d;
	d->refs = 1;
	return d;
fail:
	domains_free(d);
	return NULL;
}

struct domains *
domains_parse(const char *name, const char *text, size_t len, char *err,
    size_t errsz)
{
	return parse_text(name, "", text, len, err, errsz);
}

struct domains *
domains_load(const char *path, char *err, size_t errsz)
{
	struct domains *d;
	char *buf, dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;

	/* recipients=FILE is relative to this file's directory. */
	str_ncopy(dir, sizeof(dir), path, slash != NULL ?
	    (size_t)(slash - path) + 1 : 0);
	if (file_read_all(path, DOMAINS_FILE_MAX, &buf, &len, err, errsz) == -1)
		return NULL;
	d = parse_text(path, dir, buf, len, err, errsz);
	free(buf);
	return d;
}

struct domains *
domains_ref(struct domains *d)
{
	if (d != NULL) {
		if (d->refs == 0 || d->refs == UINT_MAX)
			panic("domains: reference count %u", d->refs);
		d->refs++;
	}
	return d;
}

void
domains_free(struct domains *d)
{
	size_t i;

	if (d == NULL)
		return;
	/* 0 only for a table that failed to load, never handed out. */
	if (d->refs > 1) {
		d->refs--;
		return;
	}
	for (i = 0; i < d->n; i++) {
		rcpts_free(d->v[i].rcpts);
		allow_lists_free(d->v[i].bulk_allow);
	}
	free(d->v);
	free(d->line);
	free(d->slot);
	free(d);
}

const struct domain *
domains_lookup(const struct domains *d, const char *name)
{
	char key[DOMAIN_NAME_MAX + 1];
	const char *why;
	size_t *slot;

	if (name_key(name, strlen(name), key, &why) == -1)
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

int
domain_accept_unverified(const struct domain *dom, const struct config *c)
{
	if (dom != NULL && dom->accept_unverified != -1)
		return dom->accept_unverified;
	return c->accept_unverified;
}

int
domains_static_rcpt(const struct domain *dom, const char *addr_lower)
{
	if (dom == NULL || dom->rcpts == NULL || dom->rcpts->n == 0)
		return 0;
	return bsearch(&addr_lower, dom->rcpts->v, dom->rcpts->n,
	    sizeof(dom->rcpts->v[0]), cmp_str) != NULL;
}

size_t
domains_static_count(const struct domain *dom)
{
	return dom != NULL && dom->rcpts != NULL ? dom->rcpts->n : 0;
}

const char *
domains_static_at(const struct domain *dom, size_t i)
{
	return i < domains_static_count(dom) ? dom->rcpts->v[i] : NULL;
}
