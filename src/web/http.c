/*
 * http: evhttp on the daemon's loop, with the limits libevent 2.1 leaves
 * out (docs/metrics.md "The HTTP server"). evhttp bounds the header and
 * body sizes and times each read and write; what it lacks is done here:
 *
 * - a connection cap: every connection evhttp accepts asks us for its
 *   bufferevent (evhttp_set_bevcb). We keep a reference to each, and
 *   count as gone those evhttp has freed, at each new connection and
 *   each scrape, so the count is exact when it is compared with the cap,
 *   without touching evhttp's internals. (A filter bufferevent's free
 *   callback would tell at once, but libevent 2.1 does not pass the
 *   socket evhttp sets through a filter.);
 * - an absolute deadline per connection: evhttp's timeouts restart at
 *   every byte, so a client sending one byte a second would hold its
 *   connection for ever. A timer per connection shuts the socket down;
 *   evhttp sees the end of the stream and frees the connection itself
 *   (never freed under its feet);
 * - 405 for methods other than GET and HEAD (evhttp's own filter answers
 *   501, which says "we do not know the method" rather than "not here").
 *
 * A connection over the cap gets the same treatment at once: it is shut
 * down before a byte of it is read.
 */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "log.h"
#include "sockaddr.h"
#include "xmem.h"

#define HTTP_CONN_MAX		32	/* connections at once */
#define HTTP_HEADERS_MAX	8192	/* bytes of the request line + headers */
#define HTTP_BODY_MAX		1024	/* GET and HEAD carry none */
#define HTTP_IO_TIMEOUT		5	/* seconds without progress */
#define HTTP_DEADLINE		10	/* seconds a connection may live */
#define HTTP_ROUTES_MAX		32
#define HTTP_PATH_MAX		64	/* of a route, not of a request */

struct route {
	char		 path[HTTP_PATH_MAX];
	size_t		 len;
	int		 prefix;
	http_handler	*handler;
	void		*arg;
};

struct conn {
	struct http		*http;
	struct bufferevent	*bev;		/* evhttp's, plus our reference */
	struct event		*deadline;
	int			 counted;	/* within the cap */
	LIST_ENTRY(conn)	 entry;
};

struct http {
	struct event_base	*base;
	struct evhttp		*evhttp;
	char			 address[64];
	struct route		 route[HTTP_ROUTES_MAX];
	size_t			 nroutes;
	LIST_HEAD(, conn)	 conns;
	struct http_counts	 counts;
};

/*
 * Has evhttp let go of the connection? bufferevent_free() clears all
 * three callbacks; while evhttp holds it, its error callback is always
 * set (the read one is not, while a response is written).
 */
static int
conn_freed(struct conn *c)
{
	bufferevent_data_cb r, w;
	bufferevent_event_cb e;
	void *arg;

	bufferevent_getcb(c->bev, &r, &w, &e, &arg);
	return r == NULL && w == NULL && e == NULL;
}

static void
conn_release(struct http *h, struct conn *c)
{
	if (c->counted)
		h->counts.open--;
	LIST_REMOVE(c, entry);
	event_free(c->deadline);
	bufferevent_decref(c->bev);
	free(c);
}

/* Forget the connections evhttp has freed; the last reference closes
 * the socket (BEV_OPT_CLOSE_ON_FREE, conn_new). At most HTTP_CONN_MAX
 * plus the few refused ones in flight. */
static void
conn_sweep(struct http *h)
{
	struct conn *c, *next;

	for (c = LIST_FIRST(&h->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, entry);
		if (conn_freed(c))
			conn_release(h, c);
	}
}

/* The deadline, or the cap: end the connection from below. evhttp reads
 * the end of the stream (or fails its next write) and frees it; it is
 * never freed under its feet. */
static void
conn_deadline(evutil_socket_t fd_unused, short what, void *arg)
{
	struct conn *c = arg;
	struct http *h = c->http;
	evutil_socket_t fd;

	if (conn_freed(c)) {
		conn_release(h, c);
		return;
	}
	if (c->counted) {
		h->counts.cut++;
		log_info("event=http_cut reason=deadline seconds=%d",
		    HTTP_DEADLINE);
	}
	if ((fd = bufferevent_getfd(c->bev)) != -1)
		shutdown(fd, SHUT_RDWR);
}

/*
 * evhttp accepted a connection and asks for its bufferevent (without an
 * fd: evhttp sets it when we return). We keep a reference, so that the
 * pointer stays good after evhttp frees it and conn_freed() can tell.
 * NULL would make evhttp build one we could not count: never returned.
 */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct timeval tv = { HTTP_DEADLINE, 0 };
	struct conn *c;

	conn_sweep(h);
	c = xcalloc(1, sizeof(*c));
	c->http = h;
	/*
	 * BEV_OPT_CLOSE_ON_FREE: the socket closes when our reference goes,
	 * not when evhttp frees the bufferevent. Without it evhttp closed
	 * the fd while the bufferevent, kept alive by our reference, still
	 * had its events in the base: the next socket given that number (a
	 * control connection, a session) was never added to epoll and never
	 * read, since libevent took the fd as registered already.
	 */
	if ((c->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL ||
	    (c->deadline = evtimer_new(base, conn_deadline, c)) == NULL)
		fatal("event=http_error error=\"out of memory\"");
	bufferevent_incref(c->bev);
	if (h->counts.open >= HTTP_CONN_MAX) {
		h->counts.refused++;
		log_info("event=http_refused reason=connection_cap max=%d",
		    HTTP_CONN_MAX);
		tv.tv_sec = 0;	/* at the next turn, once evhttp set the fd */
	} else {
		c->counted = 1;
		h->counts.open++;
	}
	evtimer_add(c->deadline, &tv);
	LIST_INSERT_HEAD(&h->conns, c, entry);
	return c->bev;
}

static const struct route *
route_find(const struct http *h, const char *path)
{
	size_t i;

	for (i = 0; i < h->nroutes; i++) {
		const struct route *r = &h->route[i];

		if (r->prefix ? strncmp(path, r->path, r->len) == 0 :
		    strcmp(path, r->path) == 0)
			return r;
	}
	return NULL;
}

/* Every request: the method, then the route. */
static void
dispatch(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const struct route *r;
	const char *path;
	struct evbuffer *b;

	h->counts.requests++;
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		break;
	default:
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		b = evbuffer_new();
		evbuffer_add_printf(b, "405 only GET and HEAD here\n");
		http_send(req, 405, "text/plain; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	if (path == NULL || *path == '\0')
		path = "/";
	if ((r = route_find(h, path)) == NULL) {
		b = evbuffer_new();
		evbuffer_add_printf(b, "404 not found\n");
		http_send(req, 404, "text/plain; charset=utf-8", b);
		evbuffer_free(b);
		return;
	}
	r->handler(req, r->arg);
}

/* A listening socket for 'la', as the SMTP listener makes them. */
static int
bind_socket(const struct config_listen *la, char *err, size_t errsz)
{
	int fd, on = 1;

	if ((fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errsz, "metrics_listen %s: socket: %s", la->text,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (la->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)&la->ss, la->sslen) == -1 ||
	    listen(fd, 64) == -1) {
		snprintf(err, errsz, "metrics_listen %s: %s", la->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct http *
http_open(struct event_base *base, const char *listen, char *err,
    size_t errsz)
{
	struct config_listen la;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct http *h;
	char host[64];
	int fd, port;

	if (config_parse_listen(listen, &la) == -1) {
		snprintf(err, errsz, "bad metrics_listen address '%.64s'",
		    listen);
		return NULL;
	}
	if ((fd = bind_socket(&la, err, errsz)) == -1)
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	LIST_INIT(&h->conns);
	if ((h->evhttp = evhttp_new(base)) == NULL ||
	    evhttp_accept_socket_with_handle(h->evhttp, fd) == NULL) {
		snprintf(err, errsz, "metrics_listen %s: evhttp", la.text);
		if (h->evhttp != NULL)
			evhttp_free(h->evhttp);
		close(fd);
		free(h);
		return NULL;
	}
	evhttp_set_max_headers_size(h->evhttp, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(h->evhttp, HTTP_BODY_MAX);
	evhttp_set_timeout(h->evhttp, HTTP_IO_TIMEOUT);
	/* Every method evhttp parses reaches dispatch(), which answers 405
	 * to all but GET and HEAD. */
	evhttp_set_allowed_methods(h->evhttp, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(h->evhttp, conn_new, h);
	evhttp_set_gencb(h->evhttp, dispatch, h);
	/* The real port, when 0 asked the kernel for one (the tests). */
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
	    (port = sockaddr_ntop((struct sockaddr *)&ss, host,
	    sizeof(host))) != -1)
		snprintf(h->address, sizeof(h->address),
		    ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
	else
		snprintf(h->address, sizeof(h->address), "%s", la.text);
	return h;
}

void
http_route(struct http *h, const char *path, int prefix,
    http_handler *handler, void *arg)
{
	struct route *r;

	if (h->nroutes == HTTP_ROUTES_MAX || strlen(path) >= HTTP_PATH_MAX)
		panic("http_route: no room for %s", path);
	r = &h->route[h->nroutes++];
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->len = strlen(path);
	r->prefix = prefix;
	r->handler = handler;
	r->arg = arg;
}

void
http_send(struct evhttp_request *req, int code, const char *content_type,
    struct evbuffer *body)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

	evhttp_add_header(hd, "Content-Type", content_type);
	evhttp_add_header(hd, "Content-Security-Policy", "default-src 'none'; "
	    "style-src 'self' 'unsafe-inline'; img-src 'self'");
	evhttp_add_header(hd, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hd, "Cache-Control", "no-store");
	evhttp_add_header(hd, "Referrer-Policy", "no-referrer");
	/* evhttp 2.1 would send the body to a HEAD request too: the length
	 * a GET would get is announced, and nothing follows the headers. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char len[24];

		snprintf(len, sizeof(len), "%zu",
		    body != NULL ? evbuffer_get_length(body) : (size_t)0);
		evhttp_add_header(hd, "Content-Length", len);
		if (body != NULL)
			evbuffer_drain(body, evbuffer_get_length(body));
		evhttp_send_reply(req, code, NULL, NULL);
		return;
	}
	evhttp_send_reply(req, code, NULL, body);
}

void
http_close(struct http *h)
{
	struct conn *c;

	if (h == NULL)
		return;
	/* evhttp frees its connections, closing their sockets; then our
	 * references go. */
	evhttp_free(h->evhttp);
	while ((c = LIST_FIRST(&h->conns)) != NULL)
		conn_release(h, c);
	free(h);
}

const char *
http_address(const struct http *h)
{
	return h->address;
}

void
http_counts(struct http *h, struct http_counts *out)
{
	conn_sweep(h);
	*out = h->counts;
}
