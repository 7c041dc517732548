/*
 * dccifd: one message's conversation with dccifd (dccifd.h,
 * docs/bulk.md §7). A small state machine: the request is queued at once
 * (the bufferevent holds it until the socket connects), the body follows
 * chunk by chunk whenever the output drained below OUT_HIGH, then the
 * write side is shut; dccifd answers and closes, and the answer is parsed
 * once whole. One timer bounds it all.
 */
#include "dccifd.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "body.h"
#include "config.h"
#include "log.h"
#include "xmem.h"

#define OUT_HIGH	(64 * 1024)	/* body queued to dccifd */
#define CHUNK		(16 * 1024)

struct dccifd_req {
	const struct config	*conf;
	const struct body	*body;
	uint64_t		 off;		/* where the body goes on */
	int			 shut;		/* the write side is shut */
	int			 connected;
	int			 in_ask;	/* inside dccifd_ask() */
	size_t			 nrcpt;
	struct bufferevent	*bev;
	struct event		*timer;
	const char		*fail;		/* failed before the loop ran */
	dccifd_done_cb		*done;
	void			*arg;
};

static void
finish(struct dccifd_req *r, const struct dccifd_reply *rep,
    const char *why)
{
	struct dccifd_outcome o;
	dccifd_done_cb *done = r->done;
	void *arg = r->arg;

	memset(&o, 0, sizeof(o));
	o.header = "";
	if (rep != NULL) {
		o.result = rep->result;
		o.header = rep->header;
	}
	if (rep != NULL && (rep->result == 'R' || rep->bulk))
		o.verdict = DCCIFD_BULK;	/* never a 250 for it */
	else if (rep != NULL && rep->result == 'T')
		why = "trouble";
	if (o.verdict != DCCIFD_BULK && why != NULL) {
		o.why = why;
		o.verdict = strcmp(r->conf->dccifd_fail_action, "accept") ==
		    0 ? DCCIFD_PASS : DCCIFD_DEFER;
	}
	/* o.header points into *rep, which outlives the callback. */
	dccifd_cancel(r);
	done(&o, arg);
}

/* The whole answer came (dccifd closed): judge it. */
static void
answer(struct dccifd_req *r, const char *closed_why)
{
	struct evbuffer *in = bufferevent_get_input(r->bev);
	struct dccifd_reply rep;
	size_t len = evbuffer_get_length(in);
	const char *p;
	int rc;

	p = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
	rc = dccifd_parse(p, len, r->nrcpt, &rep);
	if (rc == DCCIFD_OK)
		finish(r, &rep, NULL);
	else
		finish(r, NULL, rc == DCCIFD_SHORT ? closed_why : "garbage");
}

/* Queue more of the body, or shut the write side after its end. */
static void
feed(struct dccifd_req *r)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);
	char chunk[CHUNK];
	long n;

	while (r->off < body_size(r->body) &&
	    evbuffer_get_length(out) <= OUT_HIGH) {
		if ((n = body_read(r->body, r->off, chunk, sizeof(chunk))) <=
		    0) {
			finish(r, NULL, "body_read");
			return;
		}
		r->off += (uint64_t)n;
		evbuffer_add(out, chunk, (size_t)n);
	}
	if (r->off >= body_size(r->body) && evbuffer_get_length(out) == 0 &&
	    !r->shut) {
		/* dccifd reads the message to its end before it answers. */
		r->shut = 1;
		(void)shutdown(bufferevent_getfd(r->bev), SHUT_WR);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct dccifd_req *r = arg;

	/* The answer is small; more than the bound is not dccifd's. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) >
	    DCCIFD_REPLY_MAX)
		finish(r, NULL, "garbage");
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	feed(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct dccifd_req *r = arg;

	(void)bev;
	if (r->in_ask)
		return;		/* dccifd_ask() sees the failure itself */
	if (what & BEV_EVENT_CONNECTED) {
		r->connected = 1;
		feed(r);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		answer(r, "closed");
		return;
	}
	/* A write error after a whole answer (dccifd closed without
	 * reading the rest) still has the answer. */
	answer(r, r->connected ? "socket" : "connect");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dccifd_req *r = arg;

	(void)fd;
	(void)what;
	finish(r, NULL, r->fail != NULL ? r->fail : "timeout");
}

/* The request's lines (docs/bulk.md §7): CR separates the client's
 * address from its name; an absent HELO or name is left out. */
static void
put_request(struct evbuffer *out, const struct dccifd_info *in)
{
	size_t i;

	evbuffer_add_printf(out, "header\n");
	if (in->client_name != NULL && *in->client_name != '\0')
		evbuffer_add_printf(out, "%s\r%s\n", in->client_addr,
		    in->client_name);
	else
		evbuffer_add_printf(out, "%s\n", in->client_addr);
	evbuffer_add_printf(out, "%s\n", in->helo != NULL ? in->helo : "");
	evbuffer_add_printf(out, "%s\n", *in->sender != '\0' ? in->sender :
	    "<>");
	for (i = 0; i < in->nrcpt; i++)
		evbuffer_add_printf(out, "%s\n", in->rcpts[i]);
	evbuffer_add_printf(out, "\n");
}

struct dccifd_req *
dccifd_ask(struct event_base *base, const struct config *conf,
    const struct dccifd_info *in, const struct body *body,
    dccifd_done_cb *done, void *arg)
{
	struct dccifd_req *r = xcalloc(1, sizeof(*r));
	struct sockaddr_un un;
	struct timeval tv = { (time_t)conf->dccifd_timeout, 0 };

	r->conf = conf;
	r->body = body;
	r->done = done;
	r->arg = arg;
	r->nrcpt = in->nrcpt;
	r->timer = evtimer_new(base, timer_cb, r);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	if (in->nrcpt == 0 || in->nrcpt > DCCIFD_RCPTS_MAX ||
	    strlen(conf->dccifd_socket) >= sizeof(un.sun_path)) {
		r->fail = "request";
		tv.tv_sec = 0;	/* the callback from the loop */
		evtimer_add(r->timer, &tv);
		return r;
	}
	memcpy(un.sun_path, conf->dccifd_socket, strlen(conf->dccifd_socket));
	r->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->bev, read_cb, write_cb, event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	put_request(bufferevent_get_output(r->bev), in);
	evtimer_add(r->timer, &tv);
	/* libevent reports a connect that failed at once (no such socket)
	 * from inside the call: answered from the loop instead. */
	r->in_ask = 1;
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&un,
	    (int)sizeof(un)) == -1) {
		bufferevent_free(r->bev);
		r->bev = NULL;
		r->fail = "connect";
		tv.tv_sec = 0;
		evtimer_add(r->timer, &tv);
	}
	r->in_ask = 0;
	return r;
}

void
dccifd_cancel(struct dccifd_req *r)
{
	if (r == NULL)
		return;
	if (r->bev != NULL)
		bufferevent_free(r->bev);
	event_free(r->timer);
	free(r);
}

const char *
dccifd_verdict_name(int v)
{
	return v == DCCIFD_BULK ? "bulk" : v == DCCIFD_DEFER ? "defer" :
	    "pass";
}
