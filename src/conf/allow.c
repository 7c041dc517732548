/*
 * allow: static allow lists, parsed once (allow.h). Shared by greylisting
 * (docs/greylisting.md) and the bulk detector (docs/bulk.md §4), globally
 * and per customer domain.
 */
#include "allow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dname.h"
#include "ranges.h"
#include "sockaddr.h"
#include "str.h"
#include "xmem.h"

/* What a client item that is not a host name looks like. */
static int
is_net(const char *item, size_t len)
{
	return strchr(item, ':') != NULL || strchr(item, '/') != NULL ||
	    strspn(item, "0123456789.") == len;
}

int
allow_add(struct allow_list *l, enum allow_kind kind, const char *key,
    const char *item, size_t len, char *err, size_t errsz)
{
	char buf[512];
	const char *at, *dom;

	if (len >= sizeof(buf)) {
		snprintf(err, errsz, "%s: entry too long", key);
		return -1;
	}
	memcpy(buf, item, len);
	buf[len] = '\0';
	str_lower(buf);
	if (kind == ALLOW_NETS || (kind == ALLOW_CLIENTS &&
	    strchr(buf, '@') == NULL && is_net(buf, len))) {
		struct allow_net n;

		if (ranges_parse_prefix(buf, len, n.addr, &n.prefix) == -1) {
			snprintf(err, errsz, "%s: bad address or network '%s'",
			    key, buf);
			return -1;
		}
		l->nets = xreallocarray(l->nets, l->nnets + 1, sizeof(n));
		l->nets[l->nnets++] = n;
		return 0;
	}
	at = strrchr(buf, '@');
	dom = at != NULL ? at + 1 : buf;
	if (*dom == '.' && at == NULL)
		dom++;
	if (at == buf || (kind == ALLOW_CLIENTS && at != NULL) ||
	    !dname_valid(dom, DNAME_UNDERSCORE)) {
		snprintf(err, errsz, "%s: bad entry '%s'", key, buf);
		return -1;
	}
	l->names = xreallocarray(l->names, l->nnames + 1, sizeof(char *));
	l->names[l->nnames++] = xstrdup(at != NULL ? buf : dom);
	return 0;
}

int
allow_parse(struct allow_list *l, enum allow_kind kind, const char *key,
    const char *v, char *err, size_t errsz)
{
	size_t len;

	for (; (len = str_list_next(&v)) > 0; v += len)
		if (allow_add(l, kind, key, v, len, err, errsz) == -1)
			return -1;
	return 0;
}

void
allow_free(struct allow_list *l)
{
	size_t i;

	for (i = 0; i < l->nnames; i++)
		free(l->names[i]);
	free(l->names);
	free(l->nets);
	memset(l, 0, sizeof(*l));
}

int
allow_set_parse(struct allow_set *a, enum allow_kind clients_kind,
    const char *prefix, const char *clients, const char *senders,
    const char *rcpts, char *err, size_t errsz)
{
	char kc[64], ks[64], kr[64];

	snprintf(kc, sizeof(kc), "%sclients", prefix);
	snprintf(ks, sizeof(ks), "%ssenders", prefix);
	snprintf(kr, sizeof(kr), "%srecipients", prefix);
	memset(a, 0, sizeof(*a));
	if (allow_parse(&a->clients, clients_kind, kc, clients, err,
	    errsz) == -1 ||
	    allow_parse(&a->senders, ALLOW_ADDRS, ks, senders, err,
	    errsz) == -1 ||
	    allow_parse(&a->rcpts, ALLOW_ADDRS, kr, rcpts, err, errsz) == -1) {
		allow_set_free(a);
		return -1;
	}
	return 0;
}

void
allow_set_free(struct allow_set *a)
{
	allow_free(&a->clients);
	allow_free(&a->senders);
	allow_free(&a->rcpts);
}

const char *
allow_item(const struct allow_list *l, size_t i, char *buf, size_t bufsz)
{
	char text[64];
	const struct allow_net *n;

	if (i >= l->nnets)
		return i - l->nnets < l->nnames ? l->names[i - l->nnets] : NULL;
	n = &l->nets[i];
	ranges_addr_text(n->addr, text, sizeof(text));
	snprintf(buf, bufsz, "%s/%u", text, ranges_is_v4(n->addr) ?
	    n->prefix - 96 : n->prefix);
	return buf;
}

/* 'name' is 'dom' or ends in "." dom. Both lower case. */
static int
domain_match(const char *name, const char *dom)
{
	size_t n = strlen(name), d = strlen(dom);

	if (n == d)
		return strcmp(name, dom) == 0;
	return n > d && name[n - d - 1] == '.' &&
	    strcmp(name + n - d, dom) == 0;
}

int
allow_has_addr(const struct allow_list *l, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t i;

	for (i = 0; i < l->nnames; i++) {
		const char *e = l->names[i];

		if (strchr(e, '@') != NULL) {
			if (strcmp(e, addr) == 0)
				return 1;
		} else if (at != NULL && domain_match(at + 1, e))
			return 1;
	}
	return 0;
}

int
allow_has_ip(const struct allow_list *l, const struct sockaddr *sa)
{
	uint8_t ip[16];
	size_t i;

	if (l->nnets == 0 || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6))
		return 0;
	sockaddr_bytes(sa, ip);
	for (i = 0; i < l->nnets; i++)
		if (ranges_in_prefix(l->nets[i].addr, l->nets[i].prefix, ip))
			return 1;
	return 0;
}

int
allow_has_name(const struct allow_list *l, const char *name)
{
	char lc[256];
	size_t i, n;

	if (str_copy(lc, sizeof(lc), name) == -1)
		return 0;
	str_lower(lc);
	n = strlen(lc);
	if (n > 0 && lc[n - 1] == '.')
		lc[n - 1] = '\0';
	for (i = 0; i < l->nnames; i++)
		if (domain_match(lc, l->names[i]))
			return 1;
	return 0;
}
