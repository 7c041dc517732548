/*
 * mx: next-hop selection (mx.h). Two passes over the answer: the first
 * finds our own preference (by name, then by address), the second keeps
 * the hosts strictly better than it, sorted, up to the limit.
 */
#include "mx.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "packet.h"
#include "resolver.h"
#include "ranges.h"
#include "str.h"

int
mx_is_self_name(const char *host, const struct mx_self *self)
{
	return self->conf != NULL && config_is_our_mx(self->conf, host);
}

static const uint8_t any6[16];
static const uint8_t any4[16] = { [10] = 0xff, [11] = 0xff };
static const uint8_t loop6[16] = { [15] = 1 };

/* 127.0.0.0/8 (IPv4-mapped): 0, ::1: 1, else -1. */
static int
loopback(const uint8_t a[16])
{
	if (memcmp(a, any4, 12) == 0 && a[12] == 127)
		return 0;
	return memcmp(a, loop6, 16) == 0 ? 1 : -1;
}

enum mx_addr
mx_addr_verdict(const uint8_t a[16], const struct mx_self *self)
{
	size_t i;
	int lo;

	if (memcmp(a, any6, 16) == 0 || memcmp(a, any4, 16) == 0)
		return MX_ADDR_NONE;
	for (i = 0; i < self->naddr; i++)
		if (memcmp(a, self->addr[i], 16) == 0 &&
		    (self->port == NULL || self->port[i] == self->dport))
			return MX_ADDR_SELF;
	if ((lo = loopback(a)) != -1 && self->loop_port[lo] != 0 &&
	    self->loop_port[lo] == self->dport)
		return MX_ADDR_SELF;
	if (self->refuse_special && ranges_special(a) != NULL)
		return MX_ADDR_SPECIAL;
	return MX_ADDR_USE;
}

/* The known addresses of host, or NULL when none were given. */
static const struct mx_host_addrs *
host_addrs(const struct mx_query *q, const char *host)
{
	size_t i;

	for (i = 0; i < q->naddrs; i++)
		if (str_host_eq(q->addrs[i].host, host))
			return &q->addrs[i];
	return NULL;
}

/* What the host is, by name and by its known addresses. */
enum host_kind { HOST_USE, HOST_SELF, HOST_NOADDR };

static enum host_kind
host_kind(const struct mx_query *q, const char *host)
{
	const struct mx_host_addrs *ha;
	size_t i, usable = 0;

	if (mx_is_self_name(host, q->self))
		return HOST_SELF;
	if ((ha = host_addrs(q, host)) == NULL)
		return HOST_USE;	/* not looked up yet */
	for (i = 0; i < ha->naddr; i++)
		switch (mx_addr_verdict(ha->addr[i], q->self)) {
		case MX_ADDR_SELF:
			return HOST_SELF;
		case MX_ADDR_USE:
			usable++;
			break;
		case MX_ADDR_NONE:
		case MX_ADDR_SPECIAL:
			break;
		}
	return usable > 0 ? HOST_USE : HOST_NOADDR;
}

void
mx_select(const struct mx_query *q, struct mx_result *res)
{
	size_t max = q->max < MX_HOPS_MAX ? q->max : MX_HOPS_MAX;
	size_t i, j, n, nrr = q->nrr < MX_RECORDS_MAX ? q->nrr : MX_RECORDS_MAX;
	int noaddr = 0;

	memset(res, 0, sizeof(*res));
	res->ours = MX_NO_PREF;
	if (q->nodata) {
		/* RFC 5321 §5.1: no MX, the domain itself at preference 0. */
		switch (host_kind(q, q->domain)) {
		case HOST_SELF:
			res->ours = 0;
			res->status = MX_LOOP;
			return;
		case HOST_NOADDR:
			res->status = MX_NO_ADDRESS;
			return;
		case HOST_USE:
			break;
		}
		str_copy(res->hop[0].host, sizeof(res->hop[0].host),
		    q->domain);
		res->nhop = max > 0;
		res->status = res->nhop ? MX_OK : MX_NO_ADDRESS;
		return;
	}
	for (i = 0; i < nrr; i++)
		if (strcmp(q->rr[i].host, ".") == 0) {
			/* RFC 7505: this domain takes no mail. */
			res->status = MX_NULL;
			return;
		}
	for (i = 0; i < nrr; i++)
		if (q->rr[i].pref < res->ours &&
		    host_kind(q, q->rr[i].host) == HOST_SELF)
			res->ours = q->rr[i].pref;
	/*
	 * Strictly better than ours, lowest first; equal preferences keep
	 * the answer's order (a stable insertion into hop[]). A host past
	 * the limit by preference is dropped.
	 */
	n = 0;
	for (i = 0; i < nrr; i++) {
		const struct mx_record *rr = &q->rr[i];
		size_t hl;

		if (rr->pref >= res->ours)
			continue;
		if (host_kind(q, rr->host) == HOST_NOADDR) {
			noaddr = 1;
			continue;
		}
		for (j = 0; j < n; j++)
			if (str_host_eq(res->hop[j].host, rr->host))
				break;
		if (j < n)
			continue;	/* the same host twice */
		for (j = n; j > 0 && res->hop[j - 1].pref > rr->pref; j--)
			;
		if (j >= max)
			continue;
		if (n == max)
			n--;		/* the worst one falls off */
		memmove(&res->hop[j + 1], &res->hop[j],
		    (n - j) * sizeof(res->hop[0]));
		res->hop[j].pref = rr->pref;
		str_copy(res->hop[j].host, sizeof(res->hop[j].host), rr->host);
		hl = strlen(res->hop[j].host);
		if (hl > 0 && res->hop[j].host[hl - 1] == '.')
			res->hop[j].host[hl - 1] = '\0';
		n++;
	}
	res->nhop = n;
	if (n > 0)
		res->status = MX_OK;
	else
		res->status = noaddr ? MX_NO_ADDRESS : MX_LOOP;
}

int
mx_reason(const struct mx_result *res, const char *domain, char *buf,
    size_t bufsz)
{
	switch (res->status) {
	case MX_NULL:
		snprintf(buf, bufsz, "556 5.1.10 %s accepts no mail (null MX)",
		    domain);
		return 556;
	case MX_LOOP:
		snprintf(buf, bufsz, "451 4.4.6 mail for %s loops back to "
		    "myself (no MX better than ours)", domain);
		return 451;
	case MX_NO_ADDRESS:
		snprintf(buf, bufsz, "451 4.4.4 no address for the mail hosts "
		    "of %s", domain);
		return 451;
	case MX_OK:
		break;
	}
	buf[0] = '\0';
	return 0;
}

/* One address of ours at 'port', if there is room. */
static void
self_add(struct mx_self *self, struct mx_self_store *st, const uint8_t a[16],
    unsigned port)
{
	size_t i;

	for (i = 0; i < self->naddr; i++)
		if (memcmp(st->addr[i], a, 16) == 0 && st->port[i] == port)
			return;
	if (self->naddr >= MX_SELF_ADDRS_MAX)
		return;
	memcpy(st->addr[self->naddr], a, 16);
	st->port[self->naddr] = (uint16_t)port;
	self->naddr++;
}

/* A wildcard listen of this family at port: every interface address. */
static void
self_add_interfaces(struct mx_self *self, struct mx_self_store *st,
    int family, unsigned port)
{
	struct ifaddrs *ifa, *i;
	uint8_t a[16];

	if (getifaddrs(&ifa) == -1)
		return;		/* loop_port still catches loopback */
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && i->ifa_addr->sa_family == family &&
		    ranges_from_sockaddr(i->ifa_addr, a) == 0)
			self_add(self, st, a, port);
	freeifaddrs(ifa);
}

void
mx_self_init(struct mx_self *self, struct mx_self_store *st,
    const struct config *conf)
{
	size_t i;

	memset(self, 0, sizeof(*self));
	self->conf = conf;
	self->addr = (const uint8_t (*)[16])st->addr;
	self->port = st->port;
	self->dport = conf->delivery_port;
	self->refuse_special = 1;
	for (i = 0; i < conf->nlisten; i++) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&conf->listen[i].ss;
		uint8_t a[16];
		unsigned port;
		int v6 = sa->sa_family == AF_INET6;

		if (sa->sa_family == AF_INET)
			port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
		else if (v6)
			port = ntohs(((const struct sockaddr_in6 *)sa)->
			    sin6_port);
		else
			continue;
		if (port == 0 || ranges_from_sockaddr(sa, a) == -1)
			continue;
		if (memcmp(a, any6, 16) == 0 || memcmp(a, any4, 16) == 0) {
			/* Every address of this machine reaches it. */
			self->loop_port[v6] = (uint16_t)port;
			self_add_interfaces(self, st, sa->sa_family, port);
			continue;
		}
		self_add(self, st, a, port);
	}
}

size_t
mx_records(const struct dns_result *res, struct mx_record *rr, size_t max)
{
	size_t i, n = 0;

	for (i = 0; res->status == DNS_OK && i < res->nrr && n < max; i++)
		if (res->rr[i].type == DNS_T_MX) {
			rr[n].pref = res->rr[i].u.mx.pref;
			rr[n].host = res->rr[i].u.mx.host;
			n++;
		}
	return n;
}

enum mx_addr
mx_rr_target(const struct dns_rr *rr, const struct mx_self *self,
    uint16_t port, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct mx_self at = *self;
	enum mx_addr v;
	uint8_t a[16];

	if (rr->type == DNS_T_A)
		ranges_from_v4(rr->u.a, a);
	else
		memcpy(a, rr->u.aaaa, 16);
	at.dport = port;
	if ((v = mx_addr_verdict(a, &at)) != MX_ADDR_USE)
		return v;
	memset(ss, 0, sizeof(*ss));
	if (rr->type == DNS_T_A) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, rr->u.a, 4);
		s4->sin_port = htons(port);
		*sslen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, rr->u.aaaa, 16);
		s6->sin6_port = htons(port);
		*sslen = sizeof(*s6);
	}
	return v;
}
