/*
 * fuzz_session: one whole SMTP session under libFuzzer, through the real
 * state machine (src/smtp/session.c), its parser and DATA scanner, the
 * pass-through stage (relay.c) with the real SMTP client (client.c), the
 * real policy runner (checks that need DNS or the state store are off)
 * and, for backup mode, the real queue in a scratch spool.
 *
 * The input is a program of steps, each chosen by a byte:
 *   - the client sends a command from a table, or raw bytes, or a body;
 *   - the client stops or resumes reading, or half-closes;
 *   - the scripted primary is told how to answer its next command (a
 *     code, a multi-line reply, garbage, an over-long line, a drop, an
 *     unsolicited extra reply), to stall or to resume, or drops a
 *     connection;
 *   - a timer of the session or of its relay fires now (event_active on
 *     the pending timeouts, so nothing depends on the clock).
 * The client is a socketpair; the primary is reached through the relay
 * stage's connect hook (struct server relay_hooks) over a Unix socket.
 *
 * Checked after every step (abort() on a breach):
 *   - nothing reaches the client after a 221 or 421 (the session said it
 *     closes), nor after the session ended;
 *   - no reply without a command: final reply lines read by the client
 *     stay within 2 + the lines it sent + the timers fired;
 *   - bounded buffers: the heap may not grow past SESSION_HEAP_MAX over
 *     what the harness itself holds;
 *   - nothing relayed the client did not send: each MAIL the primary
 *     receives names a sender of a MAIL the client sent, and each RCPT
 *     names a recipient the client sent after a MAIL of that sender;
 *   - a connection never carries a transaction into another: a MAIL
 *     arriving on a primary connection with MAIL open (answered 250, not
 *     reset) is a breach (unless the primary refused the RSET before it:
 *     a MAIL pipelined behind RSET meets the old transaction, and backmx
 *     must then drop the connection), and when the session is over no
 *     connection kept alive (the pool's) has one open or a refused RSET.
 * At the end the session must end (client EOF, timers) and free all.
 *
 * Not covered: STARTTLS itself (no TLS context: it is refused), DNS
 * checks, greylisting and learning (no resolver, no state store), the
 * primary's health probes (a fresh health per run, no prober), reloads.
 */
#define _XOPEN_SOURCE 700	/* nftw */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <sanitizer/allocator_interface.h>

#include "client.h"
#include "config.h"
#include "domains.h"
#include "health.h"
#include "log.h"
#include "policy.h"
#include "pool.h"
#include "queue.h"
#include "relay.h"
#include "server.h"
#include "session.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

#define SESSION_HEAP_MAX	(24 * 1024 * 1024)
#define PRIMARY_CONNS		32
#define OVERRIDES		16
#define SENT_MAX		512
#define STEPS_MAX		400

static void
breach(const char *what)
{
	fprintf(stderr, "fuzz_session: %s\n", what);
	abort();
}

/* --- what the process shares ----------------------------------------- */

static struct event_base *base;
static struct config conf;
static struct domains *doms;
static struct server srv;
static struct relay_deps hooks;
static struct sockaddr_un psun;
static socklen_t psunlen;
static unsigned long progress;	/* anything happened: settle() again */
static int trace;		/* FUZZ_SESSION_TRACE set: the dialogue */

/* --- the client's side: what it sent, what it read ------------------- */

struct sent {
	int	is_mail;
	char	addr[600];
};

static struct {
	int		 fd;		/* -1 once closed */
	int		 shut;		/* half-closed: sends nothing */
	int		 paused;	/* not reading */
	struct evbuffer	*out;		/* not yet written */
	char		 line[1100];	/* the line being sent */
	size_t		 linelen;
	int		 maybe_body;	/* DATA sent, no "." yet */
	unsigned long	 lines;		/* LF sent */
	struct sent	 sent[SENT_MAX];
	size_t		 nsent;
	char		 rline[1100];	/* the reply line being read */
	size_t		 rlinelen;
	unsigned long	 replies;	/* final reply lines read */
	int		 said_close;	/* 221 or 421 read */
	unsigned long	 timers;	/* timers fired */
	int		 ended;		/* the session freed itself */
} C;

/* The path inside <...>, lower case, without quotes and backslashes:
 * the session may write a path differently from the client (quoting,
 * case of the domain), never name another. */
static void
path_of(const char *line, char *out, size_t outsz)
{
	const char *p = strchr(line, '<'), *e;
	size_t n = 0;

	out[0] = '\0';
	if (p == NULL || (e = strchr(p, '>')) == NULL)
		return;
	for (p++; p < e && n + 1 < outsz; p++) {
		if (*p == '"' || *p == '\\')
			continue;
		out[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
	}
	out[n] = '\0';
}

static void
sent_add(int is_mail, const char *line)
{
	struct sent *s;

	if (C.nsent == SENT_MAX) {
		/* Keep the newest: drop the oldest half. */
		memmove(C.sent, C.sent + SENT_MAX / 2,
		    sizeof(C.sent[0]) * (SENT_MAX / 2));
		C.nsent = SENT_MAX / 2;
	}
	s = &C.sent[C.nsent++];
	s->is_mail = is_mail;
	path_of(line, s->addr, sizeof(s->addr));
}

/* A line the client sends, as the session will read it (DATA's body
 * roughly: a MAIL or RCPT inside it only adds, never hides). */
static void
client_line(const char *l)
{
	if (C.maybe_body) {
		if (strcmp(l, ".") == 0)
			C.maybe_body = 0;
	} else if (strcasecmp(l, "DATA") == 0)
		C.maybe_body = 1;
	if (strncasecmp(l, "MAIL FROM:", 10) == 0)
		sent_add(1, l);
	else if (strncasecmp(l, "RCPT TO:", 8) == 0)
		sent_add(0, l);
}

static void
c_send(const char *buf, size_t len)
{
	size_t i;

	if (C.shut || C.fd == -1)
		return;
	if (trace)
		fprintf(stderr, "C: %.*s", (int)(len > 200 ? 200 : len), buf);
	evbuffer_add(C.out, buf, len);
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			C.lines++;
			if (C.linelen > 0 && C.line[C.linelen - 1] == '\r')
				C.linelen--;
			C.line[C.linelen] = '\0';
			client_line(C.line);
			C.linelen = 0;
		} else if (C.linelen + 1 < sizeof(C.line))
			C.line[C.linelen++] = buf[i];
	}
}

static void
client_flush(void)
{
	ssize_t n;

	while (C.fd != -1 && evbuffer_get_length(C.out) > 0) {
		n = evbuffer_write(C.out, C.fd);
		if (n <= 0)
			break;
		progress++;
	}
}

static void
client_reply_line(void)
{
	C.rline[C.rlinelen] = '\0';
	if (C.rlinelen == 3 || (C.rlinelen > 3 && C.rline[3] == ' ')) {
		C.replies++;
		if (strncmp(C.rline, "221", 3) == 0 ||
		    strncmp(C.rline, "421", 3) == 0)
			C.said_close = 1;
	}
	C.rlinelen = 0;
}

static void
client_read(void)
{
	char buf[8192];
	ssize_t n, i;

	while (C.fd != -1 && !C.paused) {
		n = recv(C.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		progress++;
		if (trace)
			fprintf(stderr, "S: %.*s", (int)n, buf);
		for (i = 0; i < n; i++) {
			if (C.said_close)
				breach("bytes sent to the client after a "
				    "closing reply");
			if (buf[i] == '\n')
				client_reply_line();
			else if (buf[i] != '\r' && C.rlinelen + 1 <
			    sizeof(C.rline))
				C.rline[C.rlinelen++] = buf[i];
		}
	}
}

static void
session_ended(const struct sockaddr *sa, void *arg)
{
	if (C.ended)
		breach("the session ended twice");
	C.ended = 1;
	progress++;
}

/* --- the scripted primary ---------------------------------------------- */

enum answer {
	A_DEFAULT, A_550, A_450, A_421, A_503, A_MULTI, A_GARBAGE, A_DROP,
	A_552, A_354, A_LONG, A_EXTRA, A_524, A_554, A_NANSWERS
};

struct pconn {
	struct bufferevent	*bev;
	int			 open;		/* MAIL taken, not reset */
	int			 in_body;
	int			 desync;	/* it said what was not asked */
	int			 rset_refused;	/* backmx must drop it (RFC 5321
						   knows only 250 to RSET) */
	char			 mail[600];	/* the open MAIL's sender */
};

static struct {
	struct evconnlistener	*l;
	struct pconn		 c[PRIMARY_CONNS];
	enum answer		 next[OVERRIDES];
	size_t			 nnext;
	int			 stalled;
} P;

static enum answer
p_answer(void)
{
	enum answer a;

	if (P.nnext == 0)
		return A_DEFAULT;
	a = P.next[0];
	memmove(P.next, P.next + 1, sizeof(P.next[0]) * --P.nnext);
	return a;
}

static void
p_drop(struct pconn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	memset(c, 0, sizeof(*c));
	progress++;
}

static void
p_say(struct pconn *c, const char *s)
{
	bufferevent_write(c->bev, s, strlen(s));
}

/* Say 'dflt' unless the input chose another answer. Returns the code
 * said (0: none, the connection is gone). */
static int
p_reply(struct pconn *c, int code, const char *dflt)
{
	static char longline[700];
	enum answer a = p_answer();

	if (trace)
		fprintf(stderr, "P%d> answer %d\n", (int)(c - P.c), (int)a);
	switch (a) {
	case A_DEFAULT:	p_say(c, dflt); return code;
	case A_550:	p_say(c, "550 5.1.1 no such user\r\n"); return 550;
	case A_450:	p_say(c, "450 4.2.0 try later\r\n"); return 450;
	case A_421:
		p_say(c, "421 4.3.2 closing\r\n");
		bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
		p_drop(c);
		return 0;
	case A_503:	p_say(c, "503 5.5.1 bad sequence\r\n"); return 503;
	case A_MULTI:
		p_say(c, "250-first\r\n250-second\r\n");
		p_say(c, dflt);
		return code;
	case A_GARBAGE:	p_say(c, "xyzzy\r\n"); return -1;
	case A_DROP:	p_drop(c); return 0;
	case A_552:	p_say(c, "552 5.2.2 mailbox full\r\n"); return 552;
	case A_354:	p_say(c, "354 go ahead\r\n"); return 354;
	case A_LONG:
		memset(longline, 'A', sizeof(longline) - 3);
		memcpy(longline, "250 ", 4);
		memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
		p_say(c, longline);
		return 250;	/* if taken, it is a 250 */
	case A_EXTRA:
		c->desync = 1;
		p_say(c, dflt);
		p_say(c, "250 2.0.0 extra\r\n");
		return code;
	case A_524:
		p_say(c, "524 5.2.4 Mailing list expansion problem\r\n");
		return 524;
	case A_554:	p_say(c, "554 5.7.1 rejected\r\n"); return 554;
	case A_NANSWERS: break;
	}
	return code;
}

/* A MAIL or RCPT from backmx: the client must have sent it. */
static void
p_check(struct pconn *c, const char *line, int is_mail)
{
	char path[600];
	size_t i;

	path_of(line, path, sizeof(path));
	for (i = C.nsent; i-- > 0; ) {
		if (is_mail && C.sent[i].is_mail &&
		    strcmp(C.sent[i].addr, path) == 0)
			return;
		if (!is_mail && !C.sent[i].is_mail &&
		    strcmp(C.sent[i].addr, path) == 0) {
			/* Sent after a MAIL of this transaction's sender. */
			size_t j;

			for (j = i; j-- > 0; )
				if (C.sent[j].is_mail &&
				    strcmp(C.sent[j].addr, c->mail) == 0)
					return;
		}
	}
	if (C.nsent < SENT_MAX / 2)	/* none forgotten */
		breach(is_mail ? "relayed a MAIL the client did not send" :
		    "relayed a RCPT the client did not send in this "
		    "transaction");
}

static void
p_line(struct pconn *c, const char *line)
{
	int code;

	progress++;
	if (trace && !c->in_body)
		fprintf(stderr, "P%d< %s\n", (int)(c - P.c), line);
	if (c->in_body) {
		if (strcmp(line, ".") == 0) {
			c->in_body = 0;
			c->open = 0;
			(void)p_reply(c, 250, "250 2.0.0 queued\r\n");
		}
		return;
	}
	if (strncasecmp(line, "EHLO", 4) == 0 ||
	    strncasecmp(line, "HELO", 4) == 0) {
		if (p_reply(c, 250, "250-primary\r\n250-PIPELINING\r\n"
		    "250-SIZE 10240000\r\n250 8BITMIME\r\n") / 100 == 2)
			c->open = 0;
	} else if (strncasecmp(line, "MAIL", 4) == 0) {
		if (c->open && !c->desync && !c->rset_refused)
			breach("MAIL on a primary connection with a "
			    "transaction open (nested MAIL)");
		p_check(c, line, 1);
		if (c->open) {
			p_say(c, "503 5.5.1 Error: nested MAIL command\r\n");
			return;
		}
		path_of(line, c->mail, sizeof(c->mail));
		if (p_reply(c, 250, "250 2.1.0 ok\r\n") / 100 == 2)
			c->open = 1;
	} else if (strncasecmp(line, "RCPT", 4) == 0) {
		if (c->open)
			p_check(c, line, 0);
		(void)p_reply(c, 250, c->open ? "250 2.1.5 ok\r\n" :
		    "503 5.5.1 need MAIL\r\n");
	} else if (strncasecmp(line, "DATA", 4) == 0) {
		code = p_reply(c, 354, "354 go ahead\r\n");
		if (code == 354)
			c->in_body = 1;
	} else if (strncasecmp(line, "RSET", 4) == 0) {
		code = p_reply(c, 250, "250 2.0.0 ok\r\n");
		if (code / 100 == 2)
			c->open = 0;
		else if (code != 0)	/* 0: dropped */
			/* A MAIL pipelined behind it may meet the old one. */
			c->rset_refused = 1;
	} else if (strncasecmp(line, "QUIT", 4) == 0) {
		p_say(c, "221 2.0.0 bye\r\n");
		bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
		p_drop(c);
	} else
		(void)p_reply(c, 502, "502 5.5.1 what\r\n");
}

static void
p_read(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	char *line;
	size_t len;

	while (!P.stalled && c->bev != NULL && (line = evbuffer_readln(
	    bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF)) != NULL) {
		p_line(c, line);
		free(line);
	}
}

static void
p_event(struct bufferevent *bev, short what, void *arg)
{
	p_drop(arg);
}

static void
p_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct pconn *c = NULL;
	int i;

	progress++;
	for (i = 0; i < PRIMARY_CONNS && c == NULL; i++)
		if (P.c[i].bev == NULL)
			c = &P.c[i];
	if (c == NULL) {
		close(fd);	/* refused: a connect failure */
		return;
	}
	memset(c, 0, sizeof(*c));
	evutil_make_socket_nonblocking(fd);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, p_read, NULL, p_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	(void)p_reply(c, 220, "220 primary ESMTP\r\n");
}

static void
p_unstall(void)
{
	int i;

	P.stalled = 0;
	for (i = 0; i < PRIMARY_CONNS; i++)
		if (P.c[i].bev != NULL)
			p_read(P.c[i].bev, &P.c[i]);
}

/* --- the connect hook: client_connect to the scripted primary --------- */

struct dial {
	struct client		*c;
	relay_connected_cb	*cb;
	void			*cbarg;
};

static void
dial_event(struct client *c, enum client_event ev, void *arg)
{
	struct dial *d = arg;
	relay_connected_cb *cb = d->cb;
	void *cbarg = d->cbarg;

	progress++;
	if (ev == CLIENT_READY) {
		client_set_cb(c, NULL, NULL);
		free(d);
		cb(c, 1, NULL, cbarg);
	} else if (ev == CLIENT_FAILED) {
		int reached = client_greeting(c) != NULL;

		client_free(c);
		free(d);
		cb(NULL, reached, "dropped", cbarg);
	}
}

static void *
dial(const char *domain, const struct client_conf *cc, relay_connected_cb *cb,
    void *cbarg, void *arg)
{
	struct dial *d = calloc(1, sizeof(*d));

	if (d == NULL)
		abort();
	d->cb = cb;
	d->cbarg = cbarg;
	d->c = client_connect(base, cc, (struct sockaddr *)&psun, psunlen,
	    "primary", 0, dial_event, d);
	if (d->c == NULL)
		breach("client_connect failed");
	progress++;
	return d;
}

static void
dial_cancel(void *h, void *arg)
{
	struct dial *d = h;

	client_free(d->c);
	free(d);
}

/* --- timers: fired by the input, not by the clock ---------------------- */

/* Callbacks of the timers that were there before the session: the
 * queue's and the scheduler's, never fired by the input. */
#define BASELINE_MAX	64
static event_callback_fn baseline[BASELINE_MAX];
static size_t nbaseline;
#define TIMERS_MAX	128
static struct event *timers[TIMERS_MAX];
static size_t ntimers;

static int
is_baseline(event_callback_fn fn)
{
	size_t i;

	for (i = 0; i < nbaseline; i++)
		if (baseline[i] == fn)
			return 1;
	return 0;
}

static int
note_baseline(const struct event_base *b, const struct event *ev, void *arg)
{
	event_callback_fn fn = event_get_callback(ev);

	if (!is_baseline(fn) && nbaseline < BASELINE_MAX)
		baseline[nbaseline++] = fn;
	return 0;
}

static int
note_timer(const struct event_base *b, const struct event *ev, void *arg)
{
	/* event_pending() takes the base's lock: asked after the walk. */
	if (ntimers < TIMERS_MAX && !is_baseline(event_get_callback(ev)))
		timers[ntimers++] = (struct event *)(uintptr_t)ev;
	return 0;
}

/* Fire the k-th pending timer, or all of them (k < 0). */
static void
fire_timers(int k)
{
	size_t i;

	size_t n = 0;

	ntimers = 0;
	event_base_foreach_event(base, note_timer, NULL);
	for (i = 0; i < ntimers; i++)
		if (event_pending(timers[i], EV_TIMEOUT, NULL))
			timers[n++] = timers[i];
	ntimers = n;
	if (ntimers == 0)
		return;
	C.timers += k < 0 ? ntimers : 1;
	if (k >= 0) {
		event_active(timers[(size_t)k % ntimers], EV_TIMEOUT, 0);
		return;
	}
	for (i = 0; i < ntimers; i++)
		event_active(timers[i], EV_TIMEOUT, 0);
}

/* --- the steps --------------------------------------------------------- */

static const char *const commands[] = {
	"EHLO client.example",
	"HELO client.example",
	"MAIL FROM:<a@sender.example>",
	"MAIL FROM:<b@sender.example> SIZE=1000",
	"MAIL FROM:<>",
	"MAIL FROM:<a@sender.example> BODY=8BITMIME",
	"MAIL FROM:<a@sender.example> SIZE=999999999999",
	"RCPT TO:<u@customer.example>",
	"RCPT TO:<v@customer.example>",
	"RCPT TO:<w@filtered.example>",
	"RCPT TO:<x@other.example>",
	"RCPT TO:<postmaster>",
	"RCPT TO:<y@elsewhere.example>",
	"RCPT TO:<\"q@elsewhere.example\"@customer.example>",
	"RCPT TO:<u@customer.example> NOTIFY=NEVER",
	"RCPT TO:<z@backup.example>",
	"DATA",
	".",
	"Subject: test",
	"",
	"RSET",
	"NOOP",
	"QUIT",
	"STARTTLS",
	"VRFY u",
	"ETRN customer.example",
	"HELP",
	"BDAT 10 LAST",
	"AUTH PLAIN",
	"MAIL FROM:<c@sender.example> SMTPUTF8",
	"RCPT TO:<u%elsewhere.example@customer.example>",
	"..stuffed",
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

struct input {
	const uint8_t	*p;
	size_t		 n;
};

static int
next(struct input *in)
{
	if (in->n == 0)
		return -1;
	in->n--;
	return *in->p++;
}

/* Run the loop until nothing moves: the socketpair and the Unix socket
 * deliver at once, so a few idle rounds in a row mean quiet. */
static void
settle(void)
{
	int idle = 0, i;
	unsigned long before;

	for (i = 0; i < 20000 && idle < 3; i++) {
		before = progress;
		client_flush();
		client_read();
		event_base_loop(base, EVLOOP_NONBLOCK);
		client_flush();
		client_read();
		if (progress == before && event_base_get_num_events(base,
		    EVENT_BASE_COUNT_ACTIVE) == 0)
			idle++;
		else
			idle = 0;
	}
}

static size_t heap0;

static void
check(void)
{
	size_t heap = __sanitizer_get_current_allocated_bytes();

	if (C.replies > 2 + C.lines + C.timers) {
		fprintf(stderr, "replies %lu, lines %lu, timers %lu\n",
		    C.replies, C.lines, C.timers);
		breach("more replies than commands");
	}
	if (heap > heap0 && heap - heap0 > SESSION_HEAP_MAX +
	    evbuffer_get_length(C.out))
		breach("the heap grew without bound");
}

static void
body(size_t kb)
{
	static char line[1024];
	size_t i;

	memset(line, 'b', sizeof(line));
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	for (i = 0; i < kb; i++)
		c_send(line, sizeof(line));
}

static const char pipelined[] = "MAIL FROM:<a@sender.example>\r\n"
    "RCPT TO:<u@customer.example>\r\nRCPT TO:<v@customer.example>\r\n"
    "DATA\r\n";

static void
step(struct input *in, int op)
{
	char buf[300];
	int k;

	if (trace)
		fprintf(stderr, "step %d\n", op % 14);
	switch (op % 14) {
	case 0: case 1: case 2: case 3: case 4:
		if ((k = next(in)) < 0)
			return;
		snprintf(buf, sizeof(buf), "%s\r\n",
		    commands[(size_t)k % NCOMMANDS]);
		c_send(buf, strlen(buf));
		break;
	case 5:
		if ((k = next(in)) < 0)
			return;
		k %= 64;
		if ((size_t)k > in->n)
			k = (int)in->n;
		c_send((const char *)in->p, (size_t)k);
		in->p += k;
		in->n -= (size_t)k;
		break;
	case 6:
		if ((k = next(in)) < 0)
			return;
		if (P.nnext < OVERRIDES)
			P.next[P.nnext++] = (enum answer)(k % A_NANSWERS);
		break;
	case 7:
		if ((k = next(in)) < 0)
			return;
		fire_timers(k);
		break;
	case 8:
		C.paused = !C.paused;
		break;
	case 9:
		if ((k = next(in)) < 0)
			return;
		if (P.c[k % PRIMARY_CONNS].bev != NULL)
			p_drop(&P.c[k % PRIMARY_CONNS]);
		break;
	case 10:
		if (!C.shut && C.fd != -1) {
			client_flush();
			if (evbuffer_get_length(C.out) == 0) {
				shutdown(C.fd, SHUT_WR);
				C.shut = 1;
			}
		}
		break;
	case 11:
		if ((k = next(in)) < 0)
			return;
		body((size_t)k * 4);
		break;
	case 12:
		if (P.stalled)
			p_unstall();
		else
			P.stalled = 1;
		break;
	case 13:
		/* A whole transaction at once, pipelined. */
		c_send(pipelined, sizeof(pipelined) - 1);
		break;
	}
}

/* The end: the client reads everything and hangs up, the primary
 * answers; the session must end and every primary connection kept must
 * have no transaction open. */
static void
finish(void)
{
	int i;

	C.paused = 0;
	p_unstall();
	P.nnext = 0;
	settle();
	if (C.fd != -1 && !C.shut) {
		client_flush();
		shutdown(C.fd, SHUT_WR);
		C.shut = 1;
	}
	settle();
	/* Every timer fired until the session ends: up to one tarpit per
	 * error between the soft and the hard limit, then the rest. */
	for (i = 0; i < 64 && !C.ended; i++) {
		fire_timers(-1);
		settle();
	}
	for (i = 0; i < 5000 && !C.ended; i++) {
		/* A commit on the queue's writer thread. */
		struct timeval tv = { 0, 1000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		settle();
	}
	if (!C.ended)
		breach("the session did not end after the client left");
	client_read();
	close(C.fd);
	C.fd = -1;
	for (i = 0; i < PRIMARY_CONNS; i++)
		if (P.c[i].bev != NULL && (P.c[i].open ||
		    P.c[i].rset_refused) && !P.c[i].desync) {
			fprintf(stderr, "P%d: open %d rset_refused %d mail "
			    "<%s>\n", i, P.c[i].open, P.c[i].rset_refused,
			    P.c[i].mail);
			breach("a kept primary connection has a transaction "
			    "open");
		}
	primary_pool_free(srv.ptpool);
	srv.ptpool = NULL;
	primary_health_free(srv.health);
	srv.health = NULL;
	settle();
	for (i = 0; i < PRIMARY_CONNS; i++)
		p_drop(&P.c[i]);
	settle();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct sockaddr_in sin;
	int fds[2], op, steps = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    fds) == -1)
		abort();
	memset(&C, 0, sizeof(C));
	memset(P.c, 0, sizeof(P.c));
	P.nnext = 0;
	P.stalled = 0;
	C.fd = fds[1];
	C.out = evbuffer_new();
	srv.ptpool = primary_pool_new(&conf);
	nbaseline = 0;
	event_base_foreach_event(base, note_baseline, NULL);
	/* A fresh health per run: a primary failing sends the domain's
	 * next RCPTs to backup mode (primary_down_after), alike each run. */
	srv.health = primary_health_new(base, &conf);
	heap0 = __sanitizer_get_current_allocated_bytes();

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	sin.sin_addr.s_addr = htonl(0xc0000207);	/* 192.0.2.7 */
	session_new(&srv, fds[0], (struct sockaddr *)&sin, sizeof(sin),
	    session_ended, NULL);
	settle();
	check();
	while ((op = next(&in)) >= 0 && steps++ < STEPS_MAX && !C.ended) {
		step(&in, op);
		settle();
		check();
	}
	finish();
	check();
	evbuffer_free(C.out);
	return 0;
}

static const char domains_text[] =
    "customer.example accept_unverified=yes\n"
    "filtered.example passthrough_filters=yes accept_unverified=yes\n"
    "other.example accept_unverified=yes\n"
    "backup.example accept_unverified=no\n";

static char *spooldir;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* The scratch spool goes with the process. */
static void
rm_spool(void)
{
	if (spooldir != NULL)
		(void)nftw(spooldir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char spool[] = "/dev/shm/fuzz_session.XXXXXX";
	static char spool2[] = "/tmp/fuzz_session.XXXXXX";
	char err[512], *dir;
	struct policy_deps pd;

	trace = getenv("FUZZ_SESSION_TRACE") != NULL;
	log_init("fuzz_session", 1);
	log_set_level(trace ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR);
	if ((dir = mkdtemp(spool)) == NULL && (dir = mkdtemp(spool2)) == NULL)
		abort();
	spooldir = dir;
	atexit(rm_spool);
	config_defaults(&conf);
	snprintf(conf.spool_dir, sizeof(conf.spool_dir), "%s", dir);
	snprintf(conf.state_dir, sizeof(conf.state_dir), "%s", dir);
	snprintf(conf.myhostname, sizeof(conf.myhostname), "mx2.fuzz.example");
	conf.smtpd_greet_pause = 0;
	/* Every timeout far away: only the input fires them. */
	conf.smtpd_timeout = 3600;
	conf.smtpd_data_timeout = 3600;
	/* The tarpit past smtpd_soft_error_limit too: with its real second
	 * an input with a dozen errors took a dozen seconds, and the run
	 * crawled at a few inputs a second. */
	conf.smtpd_error_sleep_time = 3600;
	conf.passthrough = 1;
	conf.passthrough_connect_timeout = 3600;
	conf.passthrough_reply_timeout = 3600;
	conf.passthrough_pool_size = 2;
	conf.greylist = 0;
	conf.check_sender_domain = 0;
	conf.check_recipient_domain = 0;
	conf.check_mx_ranges = 0;
	conf.check_dnsbl = 0;
	conf.domain_learning = 0;
	conf.message_size_limit = 1024 * 1024;
	conf.smtpd_body_buffer = 64 * 1024;
	if ((doms = domains_parse("fuzz", domains_text, strlen(domains_text),
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		abort();
	}
	evthread_use_pthreads();
	if ((base = event_base_new()) == NULL)
		abort();
	srv.base = base;
	srv.conf = &conf;
	srv.domains = doms;
	/* The queue's own health (its scheduler reads it); the sessions
	 * get a fresh one each run. */
	if ((srv.queue = queue_open(base, &conf, primary_health_new(base,
	    &conf), err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		abort();
	}
	queue_set_domains(srv.queue, doms);
	memset(&pd, 0, sizeof(pd));
	pd.base = base;
	pd.conf = &conf;
	srv.policy = policy_new(&pd);
	hooks.connect = dial;
	hooks.cancel = dial_cancel;
	srv.relay_hooks = &hooks;

	memset(&psun, 0, sizeof(psun));
	psun.sun_family = AF_UNIX;
	/* Abstract: nothing on disk, one per process. */
	snprintf(psun.sun_path + 1, sizeof(psun.sun_path) - 1,
	    "backmx-fuzz-session-%ld", (long)getpid());
	psunlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(psun.sun_path + 1));
	P.l = evconnlistener_new_bind(base, p_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, 64, (struct sockaddr *)&psun, (int)psunlen);
	if (P.l == NULL)
		abort();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}
