/*
 * client: the SMTP client state machine (client.h). One struct per
 * connection; the owner (deliver.c) hands it one transaction at a time.
 *
 * A transaction's replies are expected in order: MAIL, one per RCPT,
 * DATA. With PIPELINING all of them go out in one write (RFC 2920 §3.1:
 * DATA ends the group); without, one command per reply. Every recipient
 * ends with a code: the primary's (RCPT refusal, DATA refusal or the
 * answer to the dot) or ours (451 for a connection problem). Nothing here
 * decides what a code means for the queue: deliver.c and sched.c do.
 *
 * The owner's own commands (client_cmd, pass-through and callouts) take
 * another road after the greeting: a bounded FIFO of lines and reply
 * callbacks (C_CMD), the body the owner streams after a 354 (C_OBODY).
 * Each reply awaited there has its own deadline (ev_reply) that a primary
 * dribbling one byte at a time cannot push back.
 */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "envelope.h"
#include "esmtp.h"
#include "log.h"
#include "mime7.h"
#include "reply.h"
#include "sockaddr.h"
#include "str.h"
#include "xmem.h"

#define CLIENT_CHUNK		(64 * 1024)	/* body read and stuffed */
#define CLIENT_WRITE_LOW	(64 * 1024)	/* refill below this */

enum cstate {
	C_CONNECT, C_GREETING, C_EHLO, C_HELO, C_STARTTLS, C_IDLE, C_TX,
	C_BODY, C_DOT, C_RSET, C_QUIT, C_DEAD, C_CMD, C_OBODY,
};

static const char *const state_names[] = {
	"connect", "greeting", "EHLO", "HELO", "STARTTLS", "idle",
	"MAIL/RCPT/DATA", "body", "end of data", "RSET", "QUIT", "dead",
	"command", "owner's body",
};

/* One of the owner's commands: written (line freed) or waiting to be. */
struct cmd {
	char		*line;		/* NULL once written */
	client_reply_cb	*cb;
	void		*arg;
	unsigned	 timeout;	/* seconds for its reply */
	unsigned	 group_end:1;	/* RFC 2920 §3.1: last in a group */
	unsigned	 is_data:1;
};

struct client {
	struct event_base	*base;
	const struct client_conf *conf;		/* &conf_copy */
	struct client_conf	 conf_copy;
	unsigned		 idle_timeout;	/* 0: conf->command_timeout */
	char			 helo[256];
	struct bufferevent	*bev;
	enum cstate		 state;
	char			 host[256];
	char			 relay[320];
	char			 error[CLIENT_TEXT_MAX];
	client_cb		*cb;
	void			*arg;
	struct reply		 reply;
	struct reply		 ehlo;		/* for client_has_ext() */
	char			 greeting[REPLY_LINE_MAX + 1];
	struct event		*ev_later;	/* async TX_DONE */
	struct event		*ev_noconn;	/* connect() failed at once */
	int			 connect_errno;

	/* the owner's commands: a ring of CLIENT_CMD_MAX; the first
	 * cmd_nsent of cmd_n are written and wait for their replies */
	struct cmd		*cmds;
	size_t			 cmd_head, cmd_n, cmd_nsent;
	struct event		*ev_reply;	/* the first one's deadline */
	int			 obol;		/* owner's body: at a line start */
	void			(*drained_cb)(struct client *, void *);
	void			*drained_arg;

	unsigned		 try_tls:1;
	unsigned		 tls:1;
	unsigned		 tls_handshake:1;
	unsigned		 tls_failed:1;
	int			 local_errno;	/* our own connect() failed
						   for lack of resources */
	unsigned		 greeted:1;
	unsigned		 got_greeting:1;
	unsigned		 esmtp:1;
	unsigned		 ext_pipelining:1;
	unsigned		 ext_8bitmime:1;
	unsigned		 ext_smtputf8:1;
	unsigned		 ext_dsn:1;
	unsigned		 ext_starttls:1;
	unsigned		 ext_size_offered:1;
	uint64_t		 ext_size;	/* 0: no SIZE or no limit */
	int			 busy;		/* inside one of our handlers */
	int			 freed;		/* client_free() ran meanwhile */

	/* the transaction */
	struct client_tx	*tx;
	unsigned char		*accepted;	/* per rcpt: RCPT got 2xx */
	size_t			 nreplies;	/* replies taken in C_TX */
	size_t			 nsent;		/* commands sent in C_TX */
	size_t			 naccepted;
	int			 mail_failed;
	int			 empty_data;	/* 354 but nobody accepted */
	int			 body_fd;
	uint64_t		 body_off;
	int			 bol;		/* next byte starts a line */
	/* 8 bit to 7 bit on the way out (a primary without 8BITMIME,
	 * docs/smtp.md "International mail"); NULL: bytes as they are. */
	struct mime7		*conv;
	struct evbuffer		*conv_out;	/* where it writes now */
	int			*conv_bol;
};

static void	client_fail(struct client *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
static void	client_destroy(struct client *);
static void	cmd_clear(struct client *);

/*
 * Our handlers run the owner's callbacks, and an owner may free us from
 * inside one: enter() and leave() bracket every handler, client_free()
 * only marks a busy client, and leave() frees it once the stack unwound.
 * leave() returns 1 when the client is gone.
 */
static void
notify(struct client *c, enum client_event ev)
{
	if (c->cb != NULL && !c->freed)
		c->cb(c, ev, c->arg);
}

static void
enter(struct client *c)
{
	c->busy++;
}

static int
leave(struct client *c)
{
	if (--c->busy == 0 && c->freed) {
		client_destroy(c);
		return 1;
	}
	return 0;
}
static void	read_cb(struct bufferevent *, void *);
static void	write_cb(struct bufferevent *, void *);
static void	event_cb(struct bufferevent *, short, void *);

size_t
client_dotstuff(const char *in, size_t n, int *bol, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		/* RFC 5321 §4.5.2: a line that starts with "." gets one
		 * more. */
		if (*bol && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		*bol = in[i] == '\n';
	}
	return o;
}

/* Append n body bytes to out, dot-stuffed in place: no copy in between. */
static void
add_stuffed(struct evbuffer *out, const char *in, size_t n, int *bol)
{
	struct evbuffer_iovec v;

	if (evbuffer_reserve_space(out, (ev_ssize_t)(2 * n), &v, 1) != 1)
		panic("evbuffer_reserve_space: out of memory");
	v.iov_len = client_dotstuff(in, n, bol, v.iov_base);
	evbuffer_commit_space(out, &v, 1);
}

static void
set_timeouts(struct client *c, unsigned rd, unsigned wr)
{
	struct timeval r = { (time_t)rd, 0 }, w = { (time_t)wr, 0 };

	bufferevent_set_timeouts(c->bev, rd ? &r : NULL, wr ? &w : NULL);
}

static void
sendf(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sendf(struct client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

/* The reply as "CODE text", escaped, for results and logs. */
static void
reply_summary(const struct reply *r, char *out, size_t outsz)
{
	char esc[CLIENT_TEXT_MAX - 32];
	size_t n;
	const char *t = reply_first_text(r, &n);

	log_escape(esc, sizeof(esc), t, n);
	if (r->enh[0] != '\0')
		snprintf(out, outsz, "%d %s %s", r->code, r->enh, esc);
	else
		snprintf(out, outsz, "%d %s", r->code, esc);
}

static void
set_result(struct client_result *res, int code, const char *text)
{
	res->code = code;
	str_copy(res->text, sizeof(res->text), text);
}

static void
body_close(struct client *c)
{
	if (c->body_fd != -1)
		close(c->body_fd);
	c->body_fd = -1;
	mime7_free(c->conv);
	c->conv = NULL;
}

static void
conv_write(const char *s, size_t n, void *arg)
{
	struct client *c = arg;

	add_stuffed(c->conv_out, s, n, c->conv_bol);
}

static void
conv_start(struct client *c, struct evbuffer *out, int *bol)
{
	mime7_free(c->conv);
	c->conv = mime7_new(conv_write, c);
	c->conv_out = out;
	c->conv_bol = bol;
}

/* Body bytes out, through the converter when there is one. -1 when
 * the message cannot be converted (mime7.h says which cannot). */
static int
body_out(struct client *c, struct evbuffer *out, const char *p, size_t n,
    int *bol)
{
	if (c->conv == NULL) {
		add_stuffed(out, p, n, bol);
		return 0;
	}
	c->conv_out = out;
	return mime7_feed(c->conv, p, n);
}

/* Every recipient still open gets 'code' and 'text'. */
static void
tx_resolve_open(struct client *c, int code, const char *text)
{
	size_t i;

	if (c->tx == NULL)
		return;
	for (i = 0; i < c->tx->nrcpt; i++)
		if (c->tx->res[i].code == 0)
			set_result(&c->tx->res[i], code, text);
}

static void
tx_clear(struct client *c)
{
	free(c->accepted);
	c->accepted = NULL;
	body_close(c);
	c->tx = NULL;
}

static void
client_fail(struct client *c, const char *fmt, ...)
{
	char text[CLIENT_TEXT_MAX];
	va_list ap;

	int quitting = c->state == C_QUIT;

	if (c->state == C_DEAD)
		return;
	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	log_info("event=delivery_connection relay=%s state=%s error=\"%s\"",
	    c->relay, state_names[c->state], c->error);
	c->state = C_DEAD;
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	/* The owner's replies still due never come. */
	cmd_clear(c);
	if (quitting) {
		/* client_quit() promised: no callbacks, frees itself. */
		client_free(c);
		return;
	}
	/* Doubt is 4xx: whatever the primary had not answered is kept. */
	snprintf(text, sizeof(text), "451 4.4.2 lost connection with %.200s "
	    "(%.250s)", c->relay, c->error);
	tx_resolve_open(c, 451, text);
	tx_clear(c);
	notify(c, CLIENT_FAILED);
}

/* --- transactions ------------------------------------------------------- */

/* The parameters the primary's EHLO offered, as esmtp_mail_line() and
 * esmtp_rcpt_line() take them. */
static unsigned
tx_ext(const struct client *c)
{
	return (c->ext_size_offered ? ESMTP_EXT_SIZE : 0) |
	    (c->ext_8bitmime ? ESMTP_EXT_8BITMIME : 0) |
	    (c->ext_smtputf8 ? ESMTP_EXT_SMTPUTF8 : 0) |
	    (c->ext_dsn ? ESMTP_EXT_DSN : 0);
}

/* Room for the longest path, ORCPT or ENVID and every other parameter:
 * the lines below always fit. */
#define TX_LINE_MAX	(ADDR_PATH_MAX + ESMTP_ORCPT_MAX * 3 + 256)

static void
send_mail(struct client *c)
{
	const struct client_tx *m = c->tx;
	char addr[ADDR_PATH_MAX + 1], line[TX_LINE_MAX];

	addr_format(m->sender, addr, sizeof(addr));
	/* m->size is never 0 (the body holds our Received: line at
	 * least), so SIZE= goes out whenever it is offered. */
	esmtp_mail_line(line, sizeof(line), addr, m->params, m->size,
	    (m->data_flags & DATA_HAS_8BIT) != 0, tx_ext(c));
	sendf(c, "%s", line);
}

static void
send_rcpt(struct client *c, size_t i)
{
	const struct client_rcpt *r = &c->tx->rcpts[i];
	char addr[ADDR_PATH_MAX + 1], line[TX_LINE_MAX];

	addr_format(r->addr, addr, sizeof(addr));
	esmtp_rcpt_line(line, sizeof(line), addr, r->params, tx_ext(c));
	sendf(c, "%s", line);
}

/* Send what may go out now: everything with PIPELINING, else the next. */
static void
tx_send_next(struct client *c)
{
	size_t total = c->tx->nrcpt + 2;

	while (c->nsent < total) {
		if (c->nsent == 0)
			send_mail(c);
		else if (c->nsent <= c->tx->nrcpt)
			send_rcpt(c, c->nsent - 1);
		else
			sendf(c, "DATA");
		c->nsent++;
		if (!c->ext_pipelining)
			break;
	}
	set_timeouts(c, c->nsent == total ? c->conf->data_init_timeout :
	    c->conf->command_timeout, c->conf->data_block_timeout);
}

/* The transaction is over; a failed one is RSET first (RFC 5321 §4.1.1.5)
 * so the next starts clean. */
static void
tx_finish(struct client *c, int need_rset)
{
	if (need_rset) {
		c->state = C_RSET;
		sendf(c, "RSET");
		set_timeouts(c, c->conf->command_timeout,
		    c->conf->data_block_timeout);
		return;
	}
	tx_clear(c);
	c->state = C_IDLE;
	notify(c, CLIENT_TX_DONE);
}

/* A transaction client_send() ended at once, finished from the loop. */
static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	enter(c);
	tx_finish(c, 0);
	leave(c);
}

/* bufferevent_socket_connect() failed before any socket existed
 * (libevent 2.1 raises no event for that): fail from the loop, as for
 * any other connect failure, not after the connect timeout. */
static void
noconn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	enter(c);
	client_fail(c, "connect: %s%s", strerror(c->connect_errno),
	    c->local_errno ? " (here, not at the peer)" : "");
	leave(c);
}

/*
 * The queued message cannot be made 7 bit for this primary (mime7.h):
 * a definite no for every recipient still open (the sender gets a DSN
 * naming 5.6.3), then the connection is dropped -- half a body is on
 * the wire, and no dot must follow it.
 */
static void
conv_failed(struct client *c)
{
	char text[CLIENT_TEXT_MAX];

	snprintf(text, sizeof(text), "554 5.6.3 %.200s does not offer "
	    "8BITMIME and the message cannot be converted to 7 bit: %.200s",
	    c->relay, mime7_error(c->conv));
	tx_resolve_open(c, 554, text);
	client_fail(c, "conversion to 7 bit: %s", mime7_error(c->conv));
}

/* Refill the output with the next piece of the body. */
static void
body_pump(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const struct client_tx *m = c->tx;
	char in[CLIENT_CHUNK];
	const char *p;
	size_t n;

	while (evbuffer_get_length(out) < CLIENT_WRITE_LOW) {
		if (c->body_fd != -1) {
			ssize_t r;

			do
				r = pread(c->body_fd, in, sizeof(in),
				    (off_t)c->body_off);
			while (r == -1 && errno == EINTR);
			if (r == -1) {
				client_fail(c, "reading the queued body: %s",
				    strerror(errno));
				return;
			}
			n = (size_t)r;
			p = in;
		} else {
			n = m->bodylen - (size_t)c->body_off;
			if (n > CLIENT_CHUNK)
				n = CLIENT_CHUNK;
			p = (const char *)m->body + c->body_off;
		}
		if (n == 0)
			break;
		c->body_off += n;
		if (body_out(c, out, p, n, &c->bol) == -1) {
			conv_failed(c);
			return;
		}
	}
	if (evbuffer_get_length(out) >= CLIENT_WRITE_LOW)
		return;
	if (c->conv != NULL && mime7_end(c->conv) == -1) {
		conv_failed(c);
		return;
	}
	/* The end: a body that does not end in CRLF gets one, then the
	 * dot (RFC 5321 §4.1.1.4). */
	if (c->body_off > 0 && !c->bol)
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	body_close(c);
	c->state = C_DOT;
	set_timeouts(c, c->conf->data_done_timeout,
	    c->conf->data_block_timeout);
}

static void
body_start(struct client *c)
{
	c->state = C_BODY;
	c->body_off = 0;
	c->bol = 1;
	if (c->tx->body_path != NULL &&
	    (c->body_fd = open(c->tx->body_path, O_RDONLY | O_CLOEXEC)) ==
	    -1) {
		client_fail(c, "opening the queued body: %s",
		    strerror(errno));
		return;
	}
	/* No reply is due while the body goes out; the write timeout
	 * bounds a primary that stops reading. */
	set_timeouts(c, 0, c->conf->data_block_timeout);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_WRITE_LOW, 0);
	/* RFC 6152 §3: 8 bit to a primary without 8BITMIME goes as 7 bit
	 * (MAIL went without BODY=8BITMIME). */
	if ((c->tx->data_flags & DATA_HAS_8BIT) && !c->ext_8bitmime)
		conv_start(c, bufferevent_get_output(c->bev), &c->bol);
	body_pump(c);
}

/* One reply inside the MAIL/RCPT/DATA group. */
static void
tx_reply(struct client *c)
{
	struct client_tx *tx = c->tx;
	char text[CLIENT_TEXT_MAX];
	size_t k = c->nreplies++, i;
	int code = c->reply.code;

	reply_summary(&c->reply, text, sizeof(text));
	if (k == 0) {				/* MAIL */
		if (code / 100 != 2) {
			c->mail_failed = 1;
			tx_resolve_open(c, code, text);
		}
	} else if (k <= tx->nrcpt) {		/* RCPT */
		i = k - 1;
		if (!c->mail_failed) {
			if (code / 100 == 2) {
				c->accepted[i] = 1;
				c->naccepted++;
			} else
				set_result(&tx->res[i], code, text);
		}
	} else {				/* DATA */
		if (code == 354) {
			if (c->naccepted > 0 && !c->mail_failed) {
				body_start(c);
				return;
			}
			/* RFC 2920 §3.1: nobody to send to, yet 354: an
			 * empty message ends it. */
			c->empty_data = 1;
			c->state = C_DOT;
			sendf(c, ".");
			set_timeouts(c, c->conf->data_done_timeout,
			    c->conf->data_block_timeout);
			return;
		}
		/* RFC 5321 §4.3.2: DATA is answered 354, 4xx or 5xx. A 2xx
		 * here is a stray line that shifted the count (or a broken
		 * primary): taken as an answer it would mark a body never
		 * sent as delivered. */
		if (code / 100 != 4 && code / 100 != 5) {
			client_fail(c, "DATA: %s", text);
			return;
		}
		tx_resolve_open(c, code, text);
		tx_finish(c, 1);
		return;
	}
	if (c->nreplies < c->nsent)
		return;			/* more replies of the group due */
	/* Without PIPELINING: decide what to send next. */
	if (c->mail_failed || (c->nsent == tx->nrcpt + 1 &&
	    c->naccepted == 0)) {
		tx_resolve_open(c, code, text);
		tx_finish(c, 1);
		return;
	}
	tx_send_next(c);
}

void
client_send(struct client *c, struct client_tx *tx)
{
	const struct client_tx *m = tx;
	char text[CLIENT_TEXT_MAX];
	int code = 450;
	size_t i;

	if (c->state != C_IDLE || c->tx != NULL)
		panic("client_send in state %s", state_names[c->state]);
	c->tx = tx;
	for (i = 0; i < tx->nrcpt; i++)
		tx->res[i].code = 0;
	c->accepted = xcalloc(tx->nrcpt ? tx->nrcpt : 1, 1);
	c->nreplies = c->nsent = c->naccepted = 0;
	c->mail_failed = c->empty_data = 0;
	c->body_fd = -1;

	text[0] = '\0';
	if (m->params->smtputf8 && !c->ext_smtputf8) {
		/* RFC 6531 §3.2: never sent to it, and no waiting for a
		 * primary to learn it -- the sender hears now (a DSN
		 * naming 5.6.7, docs/smtp.md "International mail"). First:
		 * a definite no beats the 4xx below. */
		code = 553;
		snprintf(text, sizeof(text), "553 5.6.7 %s does not offer "
		    "SMTPUTF8, which this message needs", c->relay);
	} else if (c->ext_size > 0 && m->size > c->ext_size) {
		/* RFC 1870 §6: a definite "too big" for this primary. */
		code = 552;
		snprintf(text, sizeof(text), "552 5.3.4 message size %llu "
		    "exceeds the limit %llu of %s",
		    (unsigned long long)m->size,
		    (unsigned long long)c->ext_size, c->relay);
	}
	if (text[0] != '\0') {
		tx_resolve_open(c, code, text);
		/* Not from inside the owner's call: it may be handing
		 * transactions over in a loop. */
		event_active(c->ev_later, EV_TIMEOUT, 0);
		return;
	}
	c->state = C_TX;
	tx_send_next(c);
}

/* --- the owner's commands (pass-through, callouts) ---------------------- */

static struct cmd *
cmd_at(struct client *c, size_t i)
{
	return &c->cmds[(c->cmd_head + i) % CLIENT_CMD_MAX];
}

/* Forget every command, written or not: their callbacks never run. */
static void
cmd_clear(struct client *c)
{
	while (c->cmd_n > 0) {
		free(cmd_at(c, 0)->line);
		c->cmd_head = (c->cmd_head + 1) % CLIENT_CMD_MAX;
		c->cmd_n--;
	}
	c->cmd_nsent = 0;
	if (c->ev_reply != NULL)
		evtimer_del(c->ev_reply);
}

/* How long nothing may come while nothing is due. */
static unsigned
idle_secs(const struct client *c)
{
	return c->idle_timeout != 0 ? c->idle_timeout :
	    c->conf->command_timeout;
}

/* The first written command's reply is due within its own timeout from
 * now; with nothing due, the idle timeout. */
static void
cmd_arm(struct client *c)
{
	struct timeval tv = { 0, 0 };

	if (c->cmd_nsent == 0) {
		evtimer_del(c->ev_reply);
		set_timeouts(c, idle_secs(c), c->conf->data_block_timeout);
		return;
	}
	tv.tv_sec = (time_t)cmd_at(c, 0)->timeout;
	evtimer_add(c->ev_reply, &tv);
	/* The deadline above bounds the reply; the write timeout bounds a
	 * primary that stops reading. */
	set_timeouts(c, 0, c->conf->data_block_timeout);
}

/* Write what may go out now: all with PIPELINING up to a command that
 * ends a group, else one at a time. */
static void
cmd_flush(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int was_waiting = c->cmd_nsent > 0;
	struct cmd *k;

	while (c->cmd_nsent < c->cmd_n) {
		if (c->cmd_nsent > 0 && (!c->ext_pipelining ||
		    cmd_at(c, c->cmd_nsent - 1)->group_end))
			break;
		k = cmd_at(c, c->cmd_nsent);
		evbuffer_add(out, k->line, strlen(k->line));
		evbuffer_add(out, "\r\n", 2);
		free(k->line);
		k->line = NULL;
		c->cmd_nsent++;
	}
	if (!was_waiting && c->cmd_nsent > 0)
		cmd_arm(c);
}

static int
verb_is(const char *line, const char *verb)
{
	size_t n = strlen(verb);

	return strncasecmp(line, verb, n) == 0 &&
	    (line[n] == '\0' || line[n] == ' ');
}

/* The reply to the first written command. */
static void
cmd_reply(struct client *c)
{
	struct cmd k;

	if (c->cmd_nsent == 0) {
		client_fail(c, "reply where none was due");
		return;
	}
	k = *cmd_at(c, 0);
	c->cmd_head = (c->cmd_head + 1) % CLIENT_CMD_MAX;
	c->cmd_n--;
	c->cmd_nsent--;
	if (k.is_data && c->reply.code == 354) {
		/* The owner streams the body; no reply is due meanwhile.
		 * Nothing can wait in the queue: client_cmd refuses
		 * commands after DATA. */
		c->state = C_OBODY;
		c->obol = 1;
		evtimer_del(c->ev_reply);
		set_timeouts(c, 0, c->conf->data_block_timeout);
	} else {
		cmd_arm(c);
		cmd_flush(c);
	}
	/* Last: the owner may queue more, or free us. */
	if (k.cb != NULL)
		k.cb(c, &c->reply, k.arg);
}

static void
reply_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	enter(c);
	client_fail(c, "timeout in state %s", state_names[c->state]);
	leave(c);
}

int
client_cmd(struct client *c, const char *line, unsigned timeout,
    client_reply_cb *cb, void *arg)
{
	static const char *const group_end[] = {
		"EHLO", "HELO", "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP",
	};
	size_t len = strlen(line), i;
	struct cmd *k;

	if (c->freed || (c->state != C_IDLE && c->state != C_CMD) ||
	    c->tx != NULL)
		return -1;
	/* One line is one command: a CR or LF inside would smuggle
	 * another past us. */
	if (len > CLIENT_CMD_LINE_MAX || strpbrk(line, "\r\n") != NULL)
		return -1;
	/* Bounded: a primary that stops answering holds at most this. */
	if (c->cmd_n >= CLIENT_CMD_MAX)
		return -1;
	/* TLS is ours to negotiate; and after DATA comes the body (or a
	 * refusal), not the next command. */
	if (verb_is(line, "STARTTLS") ||
	    (c->cmd_n > 0 && cmd_at(c, c->cmd_n - 1)->is_data))
		return -1;
	if (c->cmds == NULL)
		c->cmds = xcalloc(CLIENT_CMD_MAX, sizeof(*c->cmds));
	c->state = C_CMD;
	k = cmd_at(c, c->cmd_n++);
	k->line = xstrdup(line);
	k->cb = cb;
	k->arg = arg;
	k->timeout = timeout ? timeout : c->conf->command_timeout;
	k->is_data = verb_is(line, "DATA");
	k->group_end = 0;
	for (i = 0; i < sizeof(group_end) / sizeof(group_end[0]); i++)
		if (verb_is(line, group_end[i]))
			k->group_end = 1;
	cmd_flush(c);
	return 0;
}

void
client_set_idle_timeout(struct client *c, unsigned secs)
{
	c->idle_timeout = secs;
	if (c->state == C_IDLE || (c->state == C_CMD && c->cmd_nsent == 0))
		set_timeouts(c, idle_secs(c), c->conf->data_block_timeout);
}

void
client_body_convert(struct client *c)
{
	if (c->freed || c->state == C_DEAD)
		return;
	if (c->state != C_OBODY)
		panic("client_body_convert in state %s", state_names[c->state]);
	conv_start(c, bufferevent_get_output(c->bev), &c->obol);
}

const char *
client_body_error(const struct client *c)
{
	return c->conv != NULL ? mime7_error(c->conv) : "ok";
}

int
client_body(struct client *c, const char *buf, size_t len)
{
	if (c->freed || c->state == C_DEAD)
		return 0;	/* CLIENT_FAILED says it */
	if (c->state != C_OBODY)
		panic("client_body in state %s", state_names[c->state]);
	if (len == 0)
		return 0;
	return body_out(c, bufferevent_get_output(c->bev), buf, len,
	    &c->obol);
}

void
client_body_end(struct client *c, unsigned timeout, client_reply_cb *cb,
    void *arg)
{
	struct evbuffer *out;
	struct cmd *k;

	if (c->freed || c->state == C_DEAD)
		return;
	if (c->state != C_OBODY || c->cmd_n != 0)
		panic("client_body_end in state %s", state_names[c->state]);
	out = bufferevent_get_output(c->bev);
	if (c->conv != NULL) {
		c->conv_out = out;
		if (mime7_end(c->conv) == -1) {
			/* Never a dot behind half a message. */
			client_fail(c, "conversion to 7 bit: %s",
			    mime7_error(c->conv));
			return;
		}
		mime7_free(c->conv);
		c->conv = NULL;
	}
	/* RFC 5321 §4.1.1.4: the dot on a line of its own. */
	if (!c->obol)
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	c->state = C_CMD;
	k = cmd_at(c, c->cmd_n++);
	memset(k, 0, sizeof(*k));
	k->cb = cb;
	k->arg = arg;
	k->timeout = timeout ? timeout : c->conf->data_done_timeout;
	k->group_end = 1;
	c->cmd_nsent = 1;
	cmd_arm(c);
}

void
client_set_cb(struct client *c, client_cb *cb, void *arg)
{
	if (c->freed)
		return;
	c->cb = cb;
	c->arg = arg;
}

size_t
client_pending_out(const struct client *c)
{
	struct bufferevent *u;
	size_t n;

	if (c->bev == NULL)
		return 0;
	n = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (c->tls && (u = bufferevent_get_underlying(c->bev)) != NULL)
		n += evbuffer_get_length(bufferevent_get_output(u));
	return n;
}

void
client_on_drained(struct client *c, void (*cb)(struct client *, void *),
    void *arg)
{
	if (c->freed)
		return;
	c->drained_cb = cb;
	c->drained_arg = arg;
	/* The write callback runs once a write leaves this much or less. */
	if (cb != NULL && c->bev != NULL && c->state != C_BODY)
		bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_DRAIN_LOW,
		    0);
}

int
client_has_ext(const struct client *c, const char *keyword)
{
	return c->esmtp && reply_has_keyword(&c->ehlo, keyword, NULL, 0);
}

const char *
client_greeting(const struct client *c)
{
	return c->got_greeting ? c->greeting : NULL;
}

/* --- greeting, EHLO, STARTTLS ------------------------------------------- */

static void
parse_ehlo(struct client *c)
{
	char param[64];

	c->ext_pipelining = reply_has_keyword(&c->reply, "PIPELINING", NULL,
	    0);
	c->ext_8bitmime = reply_has_keyword(&c->reply, "8BITMIME", NULL, 0);
	c->ext_smtputf8 = reply_has_keyword(&c->reply, "SMTPUTF8", NULL, 0);
	c->ext_dsn = reply_has_keyword(&c->reply, "DSN", NULL, 0);
	c->ext_starttls = reply_has_keyword(&c->reply, "STARTTLS", NULL, 0);
	c->ext_size = 0;
	c->ext_size_offered = reply_has_keyword(&c->reply, "SIZE", param,
	    sizeof(param));
	if (c->ext_size_offered)
		c->ext_size = strtoull(param, NULL, 10);
}

static void
log_tls(struct client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *cert;
	long v;

	if (ssl == NULL)
		return;
	cert = SSL_get1_peer_certificate(ssl);
	v = SSL_get_verify_result(ssl);
	/* Opportunistic (RFC 7435): say what was used, never refuse. */
	log_info("event=delivery_tls relay=%s version=%s cipher=%s "
	    "peer_certificate=%s verify=\"%s\"", c->relay,
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    cert ? "yes" : "no", X509_verify_cert_error_string(v));
	X509_free(cert);
}

static void
start_tls(struct client *c)
{
	struct bufferevent *tlsbev;
	SSL *ssl;

	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	if ((ssl = SSL_new(c->conf->tls)) == NULL) {
		client_fail(c, "SSL_new failed");
		return;
	}
	if (inet_addr(c->host) == INADDR_NONE && strchr(c->host, ':') == NULL)
		SSL_set_tlsext_host_name(ssl, c->host);
	tlsbev = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		client_fail(c, "TLS filter failed");
		return;
	}
	/* The filter moves bytes down only while the socket layer holds
	 * less than this: what waits stays bounded and visible to
	 * client_pending_out() and the drained callback. */
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, CLIENT_DRAIN_LOW);
	c->bev = tlsbev;
	c->tls = 1;
	c->tls_handshake = 1;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* RFC 3207 §4.2: start over with EHLO; it waits in the filter
	 * until the handshake is done. */
	c->state = C_EHLO;
	c->greeted = 0;
	sendf(c, "EHLO %s", c->conf->helo_name);
	set_timeouts(c, c->conf->command_timeout,
	    c->conf->data_block_timeout);
}

static void
handle_reply(struct client *c)
{
	char text[CLIENT_TEXT_MAX];
	int code = c->reply.code;

	reply_summary(&c->reply, text, sizeof(text));
	switch (c->state) {
	case C_GREETING:
		{
			/* The first line, bounded by REPLY_LINE_MAX. */
			size_t n = strcspn(c->reply.text, "\n");

			if (n >= sizeof(c->greeting))
				n = sizeof(c->greeting) - 1;
			memcpy(c->greeting, c->reply.text, n);
			c->greeting[n] = '\0';
			c->got_greeting = 1;
		}
		if (code != 220) {
			client_fail(c, "greeting: %s", text);
			return;
		}
		c->state = C_EHLO;
		sendf(c, "EHLO %s", c->conf->helo_name);
		set_timeouts(c, c->conf->command_timeout,
		    c->conf->data_block_timeout);
		return;
	case C_EHLO:
		if (c->tls_handshake) {
			c->tls_handshake = 0;
			log_tls(c);
		}
		if (code / 100 != 2) {
			if (c->tls || code / 100 == 4) {
				client_fail(c, "EHLO: %s", text);
				return;
			}
			/* RFC 5321 §3.2: an old server; try HELO. */
			c->state = C_HELO;
			sendf(c, "HELO %s", c->conf->helo_name);
			return;
		}
		c->esmtp = 1;
		parse_ehlo(c);
		c->ehlo = c->reply;
		if (c->try_tls && c->conf->tls != NULL && !c->tls &&
		    c->ext_starttls) {
			c->state = C_STARTTLS;
			sendf(c, "STARTTLS");
			return;
		}
		break;
	case C_HELO:
		if (code / 100 != 2) {
			client_fail(c, "HELO: %s", text);
			return;
		}
		c->esmtp = 0;
		reply_init(&c->ehlo);
		c->ext_pipelining = c->ext_8bitmime = c->ext_smtputf8 = 0;
		c->ext_dsn = c->ext_starttls = c->ext_size_offered = 0;
		c->ext_size = 0;
		break;
	case C_STARTTLS:
		if (code == 220) {
			start_tls(c);
			return;
		}
		/* Refused: opportunistic TLS goes on in clear. */
		log_info("event=delivery_tls relay=%s result=refused reply=\"%s\"",
		    c->relay, text);
		break;
	case C_TX:
		tx_reply(c);
		return;
	case C_CMD:
		cmd_reply(c);
		return;
	case C_DOT:
		/* The answer to the dot comes after the dot: a reply while
		 * it is still in our output buffer answers nothing we sent
		 * (a line the primary wrote after its 354), and only 2xx,
		 * 4xx and 5xx end a message. Either way the message is not
		 * known delivered: deferred, never marked sent. */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) != 0) {
			client_fail(c, "reply before the end of data: %s",
			    text);
			return;
		}
		if (code / 100 != 2 && code / 100 != 4 && code / 100 != 5) {
			client_fail(c, "end of data: %s", text);
			return;
		}
		if (c->empty_data) {
			tx_finish(c, 1);
			return;
		}
		{
			size_t i;

			for (i = 0; i < c->tx->nrcpt; i++)
				if (c->accepted[i])
					set_result(&c->tx->res[i], code, text);
		}
		tx_finish(c, 0);
		return;
	case C_RSET:
		if (code / 100 != 2) {
			client_fail(c, "RSET: %s", text);
			return;
		}
		tx_finish(c, 0);
		return;
	case C_QUIT:
		c->state = C_DEAD;
		client_free(c);
		return;
	default:
		client_fail(c, "unexpected reply in state %s: %s",
		    state_names[c->state], text);
		return;
	}
	/* Greeted: idle, ask the owner for work. */
	c->greeted = 1;
	c->state = C_IDLE;
	set_timeouts(c, idle_secs(c), c->conf->data_block_timeout);
	notify(c, CLIENT_READY);
}

/* --- I/O ---------------------------------------------------------------- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum reply_status rs;
	char *line;
	size_t n;

	enter(c);
	while (c->state != C_DEAD && !c->freed) {
		line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
		if (line == NULL) {
			/* Bounded: no line end within the limit is an
			 * endless reply. */
			if (evbuffer_get_length(in) > REPLY_LINE_MAX + 2)
				client_fail(c, "reply line too long");
			break;
		}
		if (c->state == C_IDLE || c->state == C_BODY ||
		    c->state == C_CONNECT || c->state == C_OBODY ||
		    (c->state == C_CMD && c->cmd_nsent == 0)) {
			free(line);
			client_fail(c, "reply where none was due");
			break;
		}
		/* A bare LF inside the line is no CRLF line end. */
		rs = memchr(line, '\n', n) != NULL ? REPLY_BAD :
		    reply_feed(&c->reply, line, n);
		free(line);
		if (rs == REPLY_BAD) {
			client_fail(c, "malformed reply");
			break;
		}
		if (rs == REPLY_MORE)
			continue;
		handle_reply(c);
		reply_init(&c->reply);
	}
	leave(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	enter(c);
	if (c->state == C_BODY)
		body_pump(c);
	else if (c->drained_cb != NULL && c->state != C_DEAD && !c->freed)
		c->drained_cb(c, c->drained_arg);
	leave(c);
}

static void	event_handle(struct client *, struct bufferevent *, short);

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	enter(c);
	event_handle(c, bev, what);
	leave(c);
}

static void
event_handle(struct client *c, struct bufferevent *bev, short what)
{
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == C_CONNECT) {
			c->state = C_GREETING;
			set_timeouts(c, c->conf->greeting_timeout,
			    c->conf->data_block_timeout);
		}
		return;
	}
	if (c->state == C_QUIT || c->state == C_DEAD) {
		c->state = C_DEAD;
		client_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		client_fail(c, "timeout in state %s", state_names[c->state]);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		client_fail(c, "connection closed by the primary");
		return;
	}
	if (c->tls_handshake) {
		c->tls_failed = 1;
		e = bufferevent_get_openssl_error(bev);
		client_fail(c, "TLS handshake failed: %s",
		    e ? ERR_reason_error_string(e) : "error");
		return;
	}
	client_fail(c, "%s: %s", c->state == C_CONNECT ? "connect" : "I/O",
	    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

struct client *
client_connect(struct event_base *base, const struct client_conf *conf,
    const struct sockaddr *sa, socklen_t salen, const char *host,
    int try_tls, client_cb *cb, void *arg)
{
	struct client *c = xcalloc(1, sizeof(*c));
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	c->base = base;
	/* A copy: a connection handed to a new owner outlives the
	 * request that made it (primary_connect). */
	c->conf_copy = *conf;
	str_copy(c->helo, sizeof(c->helo), conf->helo_name);
	c->conf_copy.helo_name = c->helo;
	c->conf = &c->conf_copy;
	c->cb = cb;
	c->arg = arg;
	c->try_tls = try_tls != 0;
	c->body_fd = -1;
	c->state = C_CONNECT;
	str_copy(c->host, sizeof(c->host), host);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	}
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", host, addr, port);
	reply_init(&c->reply);
	reply_init(&c->ehlo);
	c->ev_later = evtimer_new(base, later_cb, c);
	c->ev_noconn = evtimer_new(base, noconn_cb, c);
	c->ev_reply = evtimer_new(base, reply_timeout_cb, c);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		event_free(c->ev_reply);
		event_free(c->ev_later);
		event_free(c->ev_noconn);
		free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* libevent bounds a connect by the write timeout. */
	set_timeouts(c, conf->greeting_timeout, conf->connect_timeout);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)(void *)
	    (uintptr_t)sa, (int)salen) == -1) {
		/* No socket for lack of descriptors or memory is our own
		 * trouble, never the peer's (local_errno: callers must not
		 * count it against the primary). */
		c->connect_errno = errno;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM)
			c->local_errno = errno;
		event_active(c->ev_noconn, EV_TIMEOUT, 0);
		log_debug("event=delivery_connect relay=%s result=failed",
		    c->relay);
	} else
		(void)sockaddr_nodelay(bufferevent_getfd(c->bev));
	return c;
}

int
client_idle(const struct client *c)
{
	return c != NULL && !c->freed && (c->state == C_IDLE ||
	    (c->state == C_CMD && c->cmd_n == 0));
}

void
client_quit(struct client *c)
{
	if (c == NULL || c->freed)
		return;
	if (!client_idle(c)) {
		client_free(c);
		return;
	}
	/* No callback of any kind from now on. */
	c->cb = NULL;
	c->drained_cb = NULL;
	c->state = C_QUIT;
	sendf(c, "QUIT");
	set_timeouts(c, c->conf->command_timeout,
	    c->conf->data_block_timeout);
}

void
client_free(struct client *c)
{
	if (c == NULL || c->freed)
		return;
	c->freed = 1;
	c->cb = NULL;
	c->drained_cb = NULL;
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->busy == 0)
		client_destroy(c);
}

static void
client_destroy(struct client *c)
{
	tx_clear(c);
	cmd_clear(c);
	free(c->cmds);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->ev_reply);
	event_free(c->ev_later);
	event_free(c->ev_noconn);
	free(c);
}

const char *
client_error(const struct client *c)
{
	return c->error;
}

int
client_greeted(const struct client *c)
{
	return c->greeted;
}

int
client_tls_failed(const struct client *c)
{
	return c->tls_failed;
}

int
client_local_failure(const struct client *c)
{
	return c->local_errno != 0;
}

const char *
client_relay(const struct client *c)
{
	return c->relay;
}
