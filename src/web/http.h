/*
 * http: a small HTTP server for the metrics and the dashboard
 * (docs/metrics.md "The HTTP server"): libevent's evhttp on the daemon's
 * loop, one listening address, GET and HEAD only, every size and time
 * bounded. It knows nothing of what it serves: the owner (main.c, the
 * metrics and the dashboard) registers routes.
 *
 * Owner: main.c, which opens it with the SMTP listeners, before the
 * privilege drop, and closes it at the end.
 */
#ifndef BACKMX_HTTP_H
#define BACKMX_HTTP_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct evhttp_request;
struct http;

typedef void	http_handler(struct evhttp_request *, void *arg);

/* Bind 'listen' (ADDR:PORT or [IPv6]:PORT; port 0: any free one) on the
 * loop; NULL with the reason in err. listen "" means off: not called. */
struct http	*http_open(struct event_base *, const char *listen, char *err,
		    size_t errsz);

/* Serve 'path' (exact, or every path it begins when prefix != 0) with
 * 'handler'; the first route that matches wins. Paths are matched as the
 * client wrote them, before any %-decoding. */
void		 http_route(struct http *, const char *path, int prefix,
		    http_handler *, void *arg);

/* Answer 'code' with 'body' (drained; NULL: empty) as 'content_type',
 * with the security headers every answer carries (Content-Security-Policy,
 * X-Content-Type-Options, Cache-Control, Referrer-Policy). A HEAD request
 * gets the headers only. */
void		 http_send(struct evhttp_request *, int code,
		    const char *content_type, struct evbuffer *body);

/* Stop accepting, cut every connection, free. NULL does nothing. */
void		 http_close(struct http *);

/* The bound address, "127.0.0.1:9125" (the real port when 0 was asked). */
const char	*http_address(const struct http *);

/* Connections open now; and since the start, those refused at the cap
 * and those cut at the per-connection deadline (for the metrics). */
struct http_counts {
	size_t		 open;
	unsigned long	 refused;
	unsigned long	 cut;
	unsigned long	 requests;
};
void		 http_counts(struct http *, struct http_counts *);

#endif
