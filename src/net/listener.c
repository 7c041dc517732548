/*
 * listener: accept, count, hand over to the owner's callback (main.c
 * starts a session there). Per-address counts
 * live in a small open-addressing table keyed by the client address (IPv6
 * compared whole, IPv4 as mapped), sized to smtpd_max_connections so it
 * never fills: every counted address holds at least one live connection.
 */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "log.h"
#include "sockaddr.h"
#include "stats.h"
#include "xmem.h"

struct ipcount {
	unsigned char	addr[16];
	unsigned	count;		/* 0: free slot */
};

struct listener {
	struct event_base	*base;
	const struct config	*conf;
	listener_accept_cb	*accept;
	void			*accept_arg;
	struct evconnlistener	*l[CONFIG_LISTEN_MAX];
	size_t			 nl;
	char			 addresses[CONFIG_LISTEN_MAX * 64];
	size_t			 sessions;
	struct ipcount		*ips;
	size_t			 nips;		/* table size, a power of 2 */
	struct event		*ev_resume;	/* the end of an accept pause */
	int			 paused;
	int			 disabled;	/* listener_disable: for good */
};

/* Out of descriptors: accepting stops this long (OpenSMTPD's pause). */
#define LISTENER_PAUSE_SEC	1

static size_t
key_hash(const unsigned char key[16])
{
	uint64_t h = 1469598103934665603ULL;
	int i;

	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* The slot of key, or the free slot where it would go. */
static struct ipcount *
ip_slot(struct listener *l, const unsigned char key[16])
{
	size_t i = key_hash(key) & (l->nips - 1);

	for (;;) {
		struct ipcount *c = &l->ips[i];

		if (c->count == 0 || memcmp(c->addr, key, 16) == 0)
			return c;
		i = (i + 1) & (l->nips - 1);
	}
}

/* Remove the entry at slot (linear probing: re-place the cluster after). */
static void
ip_remove(struct listener *l, struct ipcount *slot)
{
	size_t i = (size_t)(slot - l->ips);

	slot->count = 0;
	for (i = (i + 1) & (l->nips - 1); l->ips[i].count != 0;
	    i = (i + 1) & (l->nips - 1)) {
		struct ipcount moved = l->ips[i];

		l->ips[i].count = 0;
		*ip_slot(l, moved.addr) = moved;
	}
}

static void
refuse(evutil_socket_t fd, const struct config *conf, const char *why)
{
	char line[512];
	int n;

	/* One best-effort line on a fresh socket: its buffer is empty, so a
	 * non-blocking send of a short line does not block or split. */
	n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s\r\n",
	    conf->myhostname, why);
	(void)send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void
accept_cb(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *l = arg;
	const struct config *conf = l->conf;
	uint8_t key[16];
	struct ipcount *c;
	char ip[INET6_ADDRSTRLEN];

	/* docs/principles.md §1.5: sessions in all and per address are bounded.
	 * The address as text only for a refusal: the session makes its own. */
	if (l->sessions >= conf->smtpd_max_connections) {
		(void)sockaddr_ntop(sa, ip, sizeof(ip));
		log_warn("event=refuse client=%s reason=max_connections "
		    "limit=%u", ip, conf->smtpd_max_connections);
		stats_inc(STAT_CONN_REFUSED_MAX);
		refuse(fd, conf, "too many connections");
		return;
	}
	(void)sockaddr_bytes(sa, key);
	c = ip_slot(l, key);
	if (c->count >= conf->smtpd_max_connections_per_ip) {
		(void)sockaddr_ntop(sa, ip, sizeof(ip));
		log_warn("event=refuse client=%s reason=max_connections_per_ip "
		    "limit=%u", ip, conf->smtpd_max_connections_per_ip);
		stats_inc(STAT_CONN_REFUSED_PER_IP);
		refuse(fd, conf, "too many connections from your address");
		return;
	}
	if (c->count++ == 0)
		memcpy(c->addr, key, 16);
	l->sessions++;
	stats_inc(STAT_CONN_ACCEPTED);
	evutil_make_socket_nonblocking(fd);
	l->accept(fd, sa, (socklen_t)salen, l->accept_arg);
}

void
listener_release(struct listener *l, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct ipcount *c;

	(void)sockaddr_bytes(sa, key);
	c = ip_slot(l, key);
	if (c->count == 0)
		panic("listener_release: address not counted");
	if (--c->count == 0)
		ip_remove(l, c);
	l->sessions--;
}

size_t
listener_sessions(const struct listener *l)
{
	return l->sessions;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	size_t i;

	l->paused = 0;
	if (l->disabled)
		return;
	for (i = 0; i < l->nl; i++)
		evconnlistener_enable(l->l[i]);
	log_info("event=accept_resume");
}

/*
 * accept() failed. Out of descriptors or memory (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) the pending connection stays in the backlog and the
 * socket stays readable: listening on would call accept() again at once,
 * forever, a loop that burns the CPU and floods the log while nothing
 * gets better. Stop accepting for LISTENER_PAUSE_SEC instead; sessions
 * ending meanwhile give descriptors back, and the kernel's backlog holds
 * the waiting clients. Anything else (a client that reset before we
 * took it): say so, go on.
 */
static void
error_cb(struct evconnlistener *el, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = { LISTENER_PAUSE_SEC, 0 };
	int e = EVUTIL_SOCKET_ERROR();
	size_t i;

	if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
		log_warn("event=accept_error error=\"%s\"",
		    evutil_socket_error_to_string(e));
		return;
	}
	if (l->paused)
		return;
	log_warn("event=accept_error error=\"%s\" action=pause seconds=%d "
	    "sessions=%zu", evutil_socket_error_to_string(e),
	    LISTENER_PAUSE_SEC, l->sessions);
	l->paused = 1;
	for (i = 0; i < l->nl; i++)
		evconnlistener_disable(l->l[i]);
	evtimer_add(l->ev_resume, &tv);
}

/* Own socket setup: an IPv6 listener is IPv6-only, so "0.0.0.0:25,
 * [::]:25" binds both. */
static evutil_socket_t
bind_socket(const struct config_listen *cl)
{
	int fd, on = 1, saved;

	fd = socket(cl->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (cl->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)&cl->ss, cl->sslen) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

struct listener *
listener_open(struct event_base *base, const struct config *conf,
    listener_accept_cb *accept, void *arg, char *err, size_t errsz)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	size_t i, off = 0;

	l->base = base;
	l->conf = conf;
	l->accept = accept;
	l->accept_arg = arg;
	for (l->nips = 16; l->nips < 2 * (size_t)conf->smtpd_max_connections;
	    l->nips *= 2)
		;
	l->ips = xcalloc(l->nips, sizeof(*l->ips));
	l->ev_resume = evtimer_new(base, resume_cb, l);

	for (i = 0; i < conf->nlisten; i++) {
		const struct config_listen *cl = &conf->listen[i];
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		char host[INET6_ADDRSTRLEN];
		int port, v6;

		evutil_socket_t fd = bind_socket(cl);

		if (fd == -1 || (l->l[i] = evconnlistener_new(base,
		    accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
		    1024, fd)) == NULL) {
			snprintf(err, errsz, "cannot listen on %s: %s",
			    cl->text, strerror(errno));
			if (fd != -1)
				close(fd);
			listener_free(l);
			return NULL;
		}
		l->nl++;
		evconnlistener_set_error_cb(l->l[i], error_cb);
		getsockname(evconnlistener_get_fd(l->l[i]),
		    (struct sockaddr *)&ss, &sslen);
		port = sockaddr_ntop((struct sockaddr *)&ss, host,
		    sizeof(host));
		v6 = ss.ss_family == AF_INET6;
		off += (size_t)snprintf(l->addresses + off,
		    sizeof(l->addresses) - off, "%s%s%s%s:%d", off ? "," : "",
		    v6 ? "[" : "", host, v6 ? "]" : "", port);
	}
	return l;
}

const char *
listener_addresses(const struct listener *l)
{
	return l->addresses;
}

/*
 * Closed, not only paused: a client connecting now is refused by the
 * kernel and tries the next MX at once, rather than waiting in a backlog
 * nobody will accept from (docs/service.md §5). The counts stay, for
 * the sessions still open.
 */
void
listener_disable(struct listener *l)
{
	size_t i;

	l->disabled = 1;
	for (i = 0; i < l->nl; i++)
		evconnlistener_free(l->l[i]);
	l->nl = 0;
}

void
listener_free(struct listener *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->nl; i++)
		evconnlistener_free(l->l[i]);
	if (l->ev_resume != NULL)
		event_free(l->ev_resume);
	free(l->ips);
	free(l);
}
