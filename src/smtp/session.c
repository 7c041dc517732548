/*
 * session: the SMTP server state machine (RFC 5321), one per connection.
 *
 * Flow: accept -> (greet pause: anything sent now is an early talker) ->
 * 220 -> EHLO/HELO -> MAIL -> RCPT* -> DATA -> the scanner streams the
 * body into a bounded buffer that spills to disk -> queue_submit() -> the
 * queue's callback says 250 once the message is durable, never before.
 * At the first RCPT the transaction's mode is decided: backup (the flow
 * above) or pass-through, relayed live to the primary by the relay stage
 * (relay.h): the session asks it to relay and says what it answers.
 *
 * Exposed to: every byte the peer sends. Lines are taken strictly with
 * CRLF (a bare LF or CR, or a NUL, is refused), at most 512 octets; every
 * count a peer can push on (errors, junk commands, recipients, bytes,
 * seconds) has a limit from the configuration. Pipelining discipline is
 * checked before a command runs (RFC 2920 §3.1, docs/smtp.md, "Pipelining").
 *
 * Lifetime: a session that must end says its last line and marks itself
 * closing; a zero-delay event frees it once the output drained (or at
 * once on a dead socket), so no callback ever runs on a freed session. A
 * pending queue commit is cancelled, never abandoned: the message may
 * still be stored, a duplicate at worst, never lost.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "body.h"
#include "clock.h"
#include "config.h"
#include "data.h"
#include "domains.h"
#include "envelope.h"
#include "esmtp.h"
#include "idna.h"
#include "log.h"
#include "milter.h"
#include "parse.h"
#include "policy.h"
#include "queue.h"
#include "ranges.h"
#include "relay.h"
#include "server.h"
#include "sockaddr.h"
#include "stats.h"
#include "str.h"
#include "tls.h"
#include "bulk.h"
#include "dccifd.h"
#include "xmem.h"

/* Input is read in bounded steps: libevent stops reading from the socket
 * while this much waits unprocessed (DATA streams through in such steps). */
#define SESSION_INPUT_MAX	(256 * 1024)
/* After the last reply: how long and how much input is read and thrown
 * away before the socket closes (see closing_drained()). */
#define SESSION_LINGER_SECONDS	2
#define SESSION_LINGER_BYTES	(1024 * 1024)
/* Replies said but not yet sent: past this, no further command is taken
 * until the client read them down to half (a client that pipelines and
 * never reads is not served on; docs/smtp.md, "Threats"). Polled while
 * blocked: under TLS the bytes sit in two buffers. */
#define SESSION_OUTPUT_MAX	(64 * 1024)
#define SESSION_OUTPUT_POLL_MS	100
/* One ETRN flush per domain per this many seconds, whoever asks. */
#define ETRN_INTERVAL		60
#define ETRN_SLOTS		64

enum session_state {
	S_GREET,	/* greet pause: the client must stay silent */
	S_CMD,		/* reading commands */
	S_POLICY,	/* MAIL or RCPT waits for the checks */
	S_DATA,		/* reading message content after 354 */
	S_COMMIT,	/* waiting for the queue; input is not read */
	S_CLOSING,	/* last reply queued; freed once it is sent */
};

/*
 * What the transaction is (docs/architecture.md §5), decided at its first RCPT
 * that passes relay control: relayed live to a primary that is up, or checked
 * hard and stored because the primary is down. One mode and one primary per
 * transaction; a RCPT that would need another gets 452 4.5.3 and is sent again
 * in a later transaction (RFC 5321 §3.3).
 */
enum tx_mode {
	TX_UNDECIDED,
	TX_PASS,	/* relayed by s->relay */
	TX_BACKUP,	/* checked and queued */
	TX_ABORTED,	/* the primary failed after answering: 451 4.4.2 */
};

enum cmd_count {
	C_HELO, C_EHLO, C_MAIL, C_RCPT, C_DATA, C_RSET, C_NOOP, C_QUIT,
	C_STARTTLS, C_OTHER, C_NCOUNTS
};


struct session {
	struct server		*srv;
	const struct config	*conf;
	struct bufferevent	*bev;
	int			 fd;
	enum session_state	 state;
	char			 id[8];
	struct sockaddr_storage	 ss;
	session_end_cb		*end;		/* at the free: main.c */
	void			*end_arg;
	char			 addr[INET6_ADDRSTRLEN];
	int			 port;

	unsigned		 esmtp:1;	/* EHLO said: groups allowed */
	unsigned		 helo_done:1;
	unsigned		 tls:1;
	unsigned		 in_tx:1;	/* MAIL accepted */
	unsigned		 discard_line:1; /* inside an over-long line */
	unsigned		 data_overflow:1;
	char			 helo[256];
	char			 tls_info[128];

	struct policy_client	*policy;
	struct mailaddr		 pending_addr;	/* MAIL or RCPT under check */
	struct mail_params	 pending_mail;
	struct rcpt_params	 pending_rcpt;

	struct envelope		 env;
	unsigned		 rcpt_tried;
	struct data_scan	 scan;
	struct body		*body;
	uint64_t		 data_bytes;
	struct queue_job	*job;

	/* The transaction's mode; pass-through is the relay stage's. */
	enum tx_mode		 mode;
	unsigned		 sender_ok:1;	/* the sender's domain passed */
	unsigned		 filtering:1;	/* a RCPT's filter check runs */
	unsigned		 replay_wanted:1; /* backup verdicts wait for it */
	unsigned		 paused:1;	/* client not read: primary slow */
	unsigned		 input_full:1;	/* not read: input at its bound */
	struct relay		*relay;
	char			 pending_domain[256];
	struct milter_tx	*milter;	/* backup mode's filters */
	struct dccifd_req	*dcc;		/* dccifd asked at the dot */
	struct bulk_ask		*bulkask;	/* the cluster's counts asked */
	unsigned		 quarantine:1;	/* a filter said: hold it */
	/* The bulk detector (docs/bulk.md): the transaction's one bulk
	 * policy (its recipients' threshold), the digests while DATA
	 * streams. */
	unsigned		 bulk_policy;
	unsigned		 bulk_on:1;	/* this DATA is digested */
	unsigned		 bulk_allowed:1; /* never counted, nor asked */
	struct bulk_walk	*bulkw;

	unsigned		 errors;	/* 4xx/5xx replies said */
	unsigned		 overshoot;	/* 452 4.5.3 replies said */
	unsigned		 sleeping:1;	/* past the soft limit: held */
	unsigned		 out_full:1;	/* output over SESSION_OUTPUT_MAX */
	time_t			 out_since;
	struct event		*tarpit;	/* ends a sleep */
	struct event		*out_timer;	/* polls a full output */
	unsigned		 junk;
	unsigned		 counts[C_NCOUNTS];
	unsigned		 commands;
	const char		*close_reason;

	struct event		*timer;		/* greet pause, DATA limit */
	struct event		*ev_free;
	struct evbuffer_cb_entry *under_cb;	/* TLS close: socket drained */
	struct event		*linger;	/* half-closed, draining input */
	size_t			 lingered;
	struct session		*live_prev, *live_next;	/* all sessions */
};

/* Every session alive, for session_shutdown(); and whether the stop
 * began (docs/service.md §5). */
static struct session	*live;
static int		 shutting_down;

static const char *const count_names[C_NCOUNTS] = {
	"helo", "ehlo", "mail", "rcpt", "data", "rset", "noop", "quit",
	"starttls", "other",
};

static void	mail_checked(const struct verdict_info *, void *);
static void	rcpt_checked(const struct verdict_info *, void *);
static void	rcpt_backup(struct session *, const struct domain *);
static void	rcpt_pass(struct session *, const struct domain *);
static void	replay_next(struct session *);
static void	session_process(struct session *);
static void	output_timer_cb(evutil_socket_t, short, void *);
static void	session_setup_bev(struct session *);
static void	session_close(struct session *, const char *reason);
static void	mail_accept(struct session *);
static void	quarantine(struct session *, const char *id);
static void	eom_milter_done(const struct milter_verdict *, void *);
static void	eom_filters(struct session *);
static void	tx_answered(struct session *);
static void	commit(struct session *);
static void	bulk_begin(struct session *);
static int	bulk_end(struct session *);
static int	dcc_begin(struct session *);
static void	count_reply(struct session *, int code, const char *enh);

/*
 * Replies. Every reply but the greeting, EHLO and HELO carries an
 * enhanced status code (RFC 2034, RFC 3463).
 */
static void	vreply(struct session *, int, const char *, const char *,
		    va_list) __attribute__((format(printf, 4, 0)));

static void
vreply(struct session *s, int code, const char *enh, const char *fmt,
    va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(s->bev), *place;
	char text[512];

	vsnprintf(text, sizeof(text), fmt, ap);
	if ((place = relay_reply_place(s->relay)) != NULL)
		out = place;	/* behind relayed RCPTs (RFC 2920 §3.1) */
	if (enh != NULL)
		evbuffer_add_printf(out, "%d %s %s\r\n", code, enh, text);
	else
		evbuffer_add_printf(out, "%d %s\r\n", code, text);
	log_debug("session=%s event=reply code=%d", s->id, code);
	/* Counted when it reaches the client: a placed reply through
	 * relay_say_cb, with the primary's. */
	if (place == NULL)
		count_reply(s, code, enh);
}

static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, code, enh, fmt, ap);
	va_end(ap);
}

/*
 * A reply that is the client's error. Every 4xx/5xx counts (count_reply),
 * this only names the intent at the call site.
 */
#define reply_error	reply

/* --- the client's errors (docs/smtp.md, "Threats") ---------------------- */

/* The hard limit: smtpd_hard_error_limit, or the old smtpd_error_limit
 * when an old configuration still sets it. */
static unsigned
hard_error_limit(const struct session *s)
{
	return s->conf->smtpd_error_limit ? s->conf->smtpd_error_limit :
	    s->conf->smtpd_hard_error_limit;
}

static void
tarpit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	s->sleeping = 0;
	if (s->state != S_CLOSING)
		session_process(s);
}

/*
 * Past smtpd_soft_error_limit, after each error reply no command is taken
 * for smtpd_error_sleep_time. Postfix sleeps before the reply; a loop
 * must not sleep, so the session does: what it reads waits, and the
 * input watermark stops reading the socket. A pipelining client is slowed
 * just the same: one error a sleep.
 */
static void
error_sleep(struct session *s)
{
	struct timeval tv = { s->conf->smtpd_error_sleep_time, 0 };

	if (tv.tv_sec == 0 || s->sleeping || s->state == S_CLOSING)
		return;
	s->sleeping = 1;
	evtimer_add(s->tarpit, &tv);
}

/*
 * Every 4xx or 5xx reply the client receives, ours or the primary's, is
 * one of its errors, as Postfix counts them: a relayed 550 5.1.1 to a
 * harvester is as much an error as our own 554. Only 452 4.5.3 (too many
 * recipients, another primary: RFC 5321 §4.5.3.1.10, a legitimate client
 * sends the rest later) is exempt, up to smtpd_recipient_overshoot_limit.
 * The hard limit acts before the next command (session_process).
 */
static void
count_reply(struct session *s, int code, const char *enh)
{
	stats_reply(code, enh);
	if (code < 400 || code > 599)
		return;
	if (code == 452 && enh != NULL && strcmp(enh, "4.5.3") == 0 &&
	    ++s->overshoot <= s->conf->smtpd_recipient_overshoot_limit)
		return;
	if (++s->errors > s->conf->smtpd_soft_error_limit)
		error_sleep(s);
}

/* A message was delivered (queued, or taken by the primary): the errors
 * and junk commands so far are forgiven, as Postfix counts them ("errors
 * a client is allowed to make without delivering mail"). A sender with
 * a long batch, each message greylisted or refused for some recipients,
 * is not cut off; a client that only probes never delivers. */
static void
errors_forgiven(struct session *s)
{
	s->errors = 0;
	s->junk = 0;
}

/* The replies in a buffer about to be said (relay_say_cb): each one's
 * last line, "DDD " or "DDD X.Y.Z ", is counted. */
static void
count_replies(struct session *s, struct evbuffer *text)
{
	size_t len = evbuffer_get_length(text), i = 0, eol;
	const char *p = (const char *)evbuffer_pullup(text, -1);
	char enh[16];
	size_t n;

	while (p != NULL && i + 4 <= len) {
		const char *nl = memchr(p + i, '\n', len - i);

		eol = nl != NULL ? (size_t)(nl - p) : len;
		if (p[i + 3] == ' ' && p[i] >= '2' && p[i] <= '5') {
			for (n = 0; i + 4 + n < eol && n < sizeof(enh) - 1 &&
			    p[i + 4 + n] != ' ' && p[i + 4 + n] != '\r'; n++)
				enh[n] = p[i + 4 + n];
			enh[n] = '\0';
			count_reply(s, (p[i] - '0') * 100 + (p[i + 1] - '0') *
			    10 + (p[i + 2] - '0'), enh);
		}
		i = eol + 1;
	}
}

/* The hard limit reached: 421 instead of the next command (Postfix's
 * smtpd_hard_error_limit; RFC 5321 §3.8: a server may close on abuse). */
static int
error_limit_reached(struct session *s)
{
	if (s->errors < hard_error_limit(s))
		return 0;
	log_info("session=%s event=error_limit client=%s errors=%u", s->id,
	    s->addr, s->errors);
	reply(s, 421, "4.7.0", "%s Error: too many errors",
	    s->conf->myhostname);
	session_close(s, "hard_error_limit");
	return 1;
}

/* NOOP, RSET, VRFY, HELP and the like: harmless alone, a tarpit in bulk. */
static int
junk_command(struct session *s)
{
	if (++s->junk <= s->conf->smtpd_junk_command_limit)
		return 0;
	log_info("session=%s event=junk_limit client=%s", s->id, s->addr);
	reply(s, 421, "4.7.0", "%s Error: too many commands",
	    s->conf->myhostname);
	session_close(s, "junk_limit");
	return 1;
}

/* The transaction ends, on the primary too when it was relayed. */
static void
session_tx_reset(struct session *s)
{
	if (s->relay != NULL)
		relay_reset(s->relay);
	envelope_reset(&s->env);
	s->in_tx = 0;
	s->mode = TX_UNDECIDED;
	s->sender_ok = 0;
	s->rcpt_tried = 0;
	body_free(s->body);
	s->body = NULL;
	s->data_bytes = 0;
	s->data_overflow = 0;
	milter_tx_free(s->milter);
	s->milter = NULL;
	dccifd_cancel(s->dcc);
	s->dcc = NULL;
	bulk_ask_cancel(s->bulkask);
	s->bulkask = NULL;
	s->quarantine = 0;
	s->bulk_on = 0;
	s->bulk_allowed = 0;
}

/* --- the end of a session ----------------------------------------------- */

static void
session_free(struct session *s)
{
	char counts[256];
	size_t i, off = 0;

	for (i = 0; i < C_NCOUNTS; i++)
		if (s->counts[i] && off < sizeof(counts))
			off += (size_t)snprintf(counts + off,
			    sizeof(counts) - off, " %s=%u", count_names[i],
			    s->counts[i]);
	counts[off < sizeof(counts) ? off : sizeof(counts) - 1] = '\0';
	log_info("session=%s event=disconnect client=%s%s commands=%u "
	    "errors=%u reason=%s", s->id, s->addr, counts, s->commands,
	    s->errors, s->close_reason ? s->close_reason : "unknown");

	queue_cancel(s->job);
	relay_free(s->relay);
	s->relay = NULL;
	policy_client_free(s->policy);
	session_tx_reset(s);
	envelope_free(&s->env);
	bulk_walk_free(s->bulkw);
	if (s->timer)
		event_free(s->timer);
	event_free(s->tarpit);
	event_free(s->out_timer);
	event_free(s->ev_free);
	if (s->linger != NULL)
		event_free(s->linger);
	if (s->under_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(
		    bufferevent_get_underlying(s->bev)), s->under_cb);
	if (s->bev)
		bufferevent_free(s->bev);
	else if (s->fd != -1)
		close(s->fd);
	if (s->live_prev != NULL)
		s->live_prev->live_next = s->live_next;
	else
		live = s->live_next;
	if (s->live_next != NULL)
		s->live_next->live_prev = s->live_prev;
	s->end((struct sockaddr *)&s->ss, s->end_arg);
	free(s);
}

static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
	session_free(arg);
}

static void
schedule_free(struct session *s)
{
	event_active(s->ev_free, EV_TIMEOUT, 0);
}

/* Bytes said but not yet on the wire: under TLS also those the filter
 * already encrypted into the socket's bufferevent. */
static size_t
output_pending(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void
linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	char buf[4096];
	ssize_t n;

	if (what & EV_TIMEOUT) {
		schedule_free(s);
		return;
	}
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		if ((s->lingered += (size_t)n) > SESSION_LINGER_BYTES)
			break;
	if (n >= 0 || (errno != EAGAIN && errno != EINTR))
		schedule_free(s);
}

/*
 * Everything said is on the wire: half-close, then read and discard what
 * the client still sends until it closes too (bounded in bytes and time).
 * Closing a socket with unread input makes the kernel send a reset, and a
 * reset can destroy our last reply before the client reads it — exactly
 * the 554 a client that pipelined too much must see.
 */
static void
closing_drained(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	struct timeval tv = { SESSION_LINGER_SECONDS, 0 };

	if (s->linger != NULL)
		return;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (under != NULL)
		bufferevent_disable(under, EV_READ | EV_WRITE);
	if (shutdown(s->fd, SHUT_WR) == -1) {
		schedule_free(s);
		return;
	}
	s->linger = event_new(s->srv->base, s->fd, EV_READ | EV_PERSIST,
	    linger_cb, s);
	event_add(s->linger, &tv);
}

static void
closing_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (output_pending(s) == 0)
		closing_drained(s);
}

static void
closing_under_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct session *s = arg;

	if (info->n_deleted > 0 && output_pending(s) == 0)
		closing_drained(s);
}

static void
closing_event_cb(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	schedule_free(arg);
}

/*
 * End the conversation after what is queued in the output has gone out.
 * Safe to call from any callback: the session is freed later, from the
 * loop, never on this stack.
 */
static void
session_close(struct session *s, const char *reason)
{
	if (s->state == S_CLOSING)
		return;
	/* What was said goes out; relayed RCPTs unanswered get nothing
	 * more (the session ends for a reason of its own); the primary's
	 * transaction ends with QUIT or the connection's drop. */
	relay_close(s->relay);
	s->state = S_CLOSING;
	s->close_reason = reason;
	policy_cancel(s->policy);
	if (s->timer)
		event_del(s->timer);
	event_del(s->tarpit);
	event_del(s->out_timer);
	s->sleeping = 0;
	if (s->bev == NULL) {
		schedule_free(s);
		return;
	}
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_setcb(s->bev, NULL, closing_write_cb, closing_event_cb, s);
	if (bufferevent_get_underlying(s->bev) != NULL) {
		/* The filter hands its bytes on at once; wait for the
		 * socket's own buffer to drain. */
		bufferevent_flush(s->bev, EV_WRITE, BEV_FLUSH);
		s->under_cb = evbuffer_add_cb(bufferevent_get_output(
		    bufferevent_get_underlying(s->bev)), closing_under_cb, s);
	}
	/* The write timeout bounds how long this may take. */
	if (output_pending(s) == 0)
		closing_drained(s);
	else
		bufferevent_enable(s->bev, EV_WRITE);
}

/* --- the stop (docs/service.md §5) -------------------------------------- */

static void
shutdown_say(struct session *s)
{
	log_info("session=%s event=shutdown client=%s in_tx=%d", s->id,
	    s->addr, s->in_tx);
	reply(s, 421, "4.3.2", "%s Service shutting down",
	    s->conf->myhostname);
	session_close(s, "shutdown");
}

void
session_shutdown(int deadline)
{
	struct session *s;

	shutting_down = 1;
	/* session_close() frees nothing on this stack: the walk is safe. */
	for (s = live; s != NULL; s = s->live_next) {
		if (s->state == S_CLOSING)
			continue;
		/* At the deadline all but a commit under way, whose 250 or
		 * 4xx comes from the queue; before it, the idle ones. */
		if (deadline ? s->state != S_COMMIT :
		    (s->state == S_GREET || (s->state == S_CMD && !s->in_tx)))
			shutdown_say(s);
	}
}

/* --- pipelining --------------------------------------------------------- */

/* More bytes from the client than the command just taken? Looks into our
 * buffer and, on a plain socket, into the kernel's. */
static int
more_input(struct session *s)
{
	char c;

	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		return 1;
	if (!s->tls && recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
		return 1;
	return 0;
}

static void
sync_error(struct session *s, const char *after)
{
	/* RFC 2920 §3.1; Postfix and Exim answer the same. */
	log_info("session=%s event=reject client=%s reason=pipelining "
	    "after=%s", s->id, s->addr, after);
	reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
	session_close(s, "pipelining");
}

/* --- commands ----------------------------------------------------------- */

static void
log_reject(struct session *s, const char *event, int code, const char *enh,
    const char *reason, const char *arg, size_t arglen)
{
	char esc[600];

	log_info("session=%s event=%s client=%s code=%d dsn=%s reason=%s "
	    "arg=\"%s\"", s->id, event, s->addr, code, enh, reason,
	    log_escape(esc, sizeof(esc), arg, arglen));
}

/* An address literal as EHLO argument, checked by the path parser. */
static int
helo_literal_valid(const char *a, size_t n)
{
	char path[ADDR_PATH_MAX + 8];
	struct mailaddr tmp;
	size_t used;
	int len;

	if (n == 0 || a[0] != '[')
		return 0;
	len = snprintf(path, sizeof(path), "<x@%.*s>", (int)n, a);
	if (len < 0 || (size_t)len >= sizeof(path))
		return 0;
	return addr_parse_path(path, (size_t)len, 0, &tmp, &used) == ADDR_OK &&
	    tmp.is_literal && used == (size_t)len;
}

static void
cmd_helo(struct session *s, const struct smtp_cmd *cmd, int ehlo)
{
	const struct config *conf = s->conf;
	const char *a = cmd->arg;
	size_t n = cmd->arglen;

	while (n > 0 && a[n - 1] == ' ')	/* trailing blanks: harmless */
		n--;
	if (n == 0) {
		reply_error(s, 501, "5.5.4", "Syntax: %s hostname",
		    ehlo ? "EHLO" : "HELO");
		return;
	}
	/* RFC 5321 §4.1.1.1: a Domain or an address literal. Anything else
	 * is no name a mail server would give itself. */
	if (n >= sizeof(s->helo) || !(addr_domain_valid(a, n, 0) ||
	    helo_literal_valid(a, n))) {
		log_reject(s, ehlo ? "ehlo" : "helo", 501, "5.5.2",
		    "bad_hostname", a, cmd->arglen);
		reply_error(s, 501, "5.5.2", "Invalid %s hostname",
		    ehlo ? "EHLO" : "HELO");
		return;
	}
	str_ncopy(s->helo, sizeof(s->helo), a, n);
	/* Pass-through's XFORWARD sends it before DATA fills the rest. */
	str_copy(s->env.helo, sizeof(s->env.helo), s->helo);
	session_tx_reset(s);
	s->helo_done = 1;
	s->esmtp = ehlo;
	if (!ehlo) {
		reply(s, 250, NULL, "%s", conf->myhostname);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(s->bev),
	    "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE %llu\r\n"
	    "%s"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-ETRN\r\n"
	    "250-8BITMIME\r\n"
	    "250-DSN\r\n"
	    "250 SMTPUTF8\r\n",
	    conf->myhostname, (unsigned long long)conf->message_size_limit,
	    (s->srv->tls != NULL && !s->tls) ? "250-STARTTLS\r\n" : "");
}

static void
path_error(struct session *s, const char *event, enum addr_err e,
    const char *enh, const struct smtp_cmd *cmd)
{
	log_reject(s, event, 501, enh, "bad_address", cmd->arg, cmd->arglen);
	reply_error(s, 501, enh, "Bad %s address syntax: %s",
	    strcmp(event, "mail") == 0 ? "sender" : "recipient",
	    addr_strerror(e));
}

/*
 * The domain of a path into its A-label form, once, here at the door:
 * relay control, the DNS checks, greylisting, learning, the queue and
 * the logs after this see only that form (docs/smtp.md, "International
 * mail"). A name IDNA2008 refuses is no domain anywhere: 553 and the
 * code of a bad system address (X.1.8 sender, X.1.2 recipient), the
 * path is wrong, not the mailbox. Returns -1 when it answered.
 */
static int
take_alabel(struct session *s, const struct smtp_cmd *cmd, const char *event,
    struct mailaddr *a)
{
	char al[ADDR_DOMAIN_MAX + 1];
	char la[LOG_VALUE_SIZE(ADDR_DOMAIN_MAX)];
	char lu[LOG_VALUE_SIZE(ADDR_DOMAIN_MAX)];
	const char *why, *enh = strcmp(event, "mail") == 0 ? "5.1.8" :
	    "5.1.2";

	if (a->is_literal || a->domain[0] == '\0')
		return 0;
	if (idna_to_alabel(a->domain, strlen(a->domain), al, sizeof(al),
	    &why) != IDNA_OK) {
		log_reject(s, event, 553, enh, "bad_idna", cmd->arg,
		    cmd->arglen);
		reply_error(s, 553, enh, "Invalid international domain "
		    "name: %s", why);
		return -1;
	}
	if (strcmp(al, a->domain) == 0)
		return 0;
	/* Both forms once, for the operator who greps either (the U-label
	 * as \xHH, like all peer bytes: docs/principles.md §4). */
	log_info("session=%s event=idna client=%s domain=%s alabel=%s",
	    s->id, s->addr, log_value(lu, sizeof(lu), a->domain,
	    strlen(a->domain)), log_value(la, sizeof(la), al, strlen(al)));
	str_copy(a->domain, sizeof(a->domain), al);
	return 0;
}

/*
 * The path of MAIL or RCPT, and where its parameters start (*used). UTF-8
 * is let through here and checked against SMTPUTF8 by the caller: that
 * parameter comes after the path. Returns -1 when it answered.
 */
static int
take_path(struct session *s, const struct smtp_cmd *cmd, const char *event,
    int flags, const char *enh, struct mailaddr *a, size_t *used)
{
	enum addr_err e = ADDR_ERR_NO_BRACKETS;

	if (cmd->arglen > 0 && cmd->arg[0] == '<')
		e = addr_parse_path(cmd->arg, cmd->arglen,
		    flags | ADDR_ALLOW_UTF8, a, used);
	if (e != ADDR_OK) {
		path_error(s, event, e, enh, cmd);
		return -1;
	}
	if (take_alabel(s, cmd, event, a) == -1)
		return -1;
	if (!s->esmtp && *used != cmd->arglen) {
		/* RFC 5321 §4.1.1.2: parameters need EHLO. */
		reply_error(s, 555, "5.5.4", "Error: parameters need EHLO");
		return -1;
	}
	return 0;
}

/* A check did not accept: log it and answer. Only a definite REJECT
 * counts as the client's error. */
static void
session_refuse(struct session *s, const char *event, const char *key,
    const char *addr, const struct verdict_info *v)
{
	char la[LOG_PATH_SIZE];

	log_info("session=%s event=%s client=%s %s=%s verdict=%s code=%d "
	    "dsn=%s reason=%s", s->id, event, s->addr, key,
	    log_path(la, sizeof(la), addr),
	    v->v == VERDICT_REJECT ? "reject" : "tempfail", v->code, v->enh,
	    v->reason);
	if (v->v == VERDICT_REJECT)
		reply_error(s, v->code, v->enh, "%s", v->text);
	else
		reply(s, v->code, v->enh, "%s", v->text);
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	struct esmtp_error perr;
	struct mailaddr a;
	struct mail_params mp;
	size_t used;

	if (!s->helo_done) {
		reply_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	if (s->in_tx) {
		reply_error(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (take_path(s, cmd, "mail", ADDR_ALLOW_NULL, "5.1.7", &a, &used))
		return;
	if (esmtp_parse_mail(cmd->arg + used, cmd->arglen - used, &mp,
	    &perr) == -1) {
		log_reject(s, "mail", perr.code, perr.enhanced, "bad_parameter",
		    cmd->arg, cmd->arglen);
		reply_error(s, perr.code, perr.enhanced, "%s", perr.text);
		return;
	}
	if (a.is_utf8 && !mp.smtputf8) {
		reply_error(s, 553, "5.6.7",
		    "Error: non-ASCII address needs SMTPUTF8");
		return;
	}
	if (mp.has_size && mp.size > s->conf->message_size_limit) {
		log_reject(s, "mail", 552, "5.3.4", "size", cmd->arg,
		    cmd->arglen);
		reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
		return;
	}
	s->pending_addr = a;
	s->pending_mail = mp;
	if (s->conf->passthrough) {
		/* Whether this mail is relayed or stored is only known at
		 * the first RCPT: the sender's checks and the spool's room
		 * wait for it (rcpt_backup), as Postfix's
		 * smtpd_delay_reject. */
		mail_accept(s);
		return;
	}
	/* Refuse while the spool is short of room (queue_minfree): the
	 * message could not be stored, and doubt is 4xx. */
	if (!queue_space_ok(s->srv->queue)) {
		log_reject(s, "mail", 452, "4.3.1", "queue_minfree", cmd->arg,
		    cmd->arglen);
		reply(s, 452, "4.3.1", "Error: insufficient system storage");
		return;
	}
	/* The syntax is right: now the checks (the sender's domain). The
	 * answer comes back in mail_checked(). */
	s->state = S_POLICY;
	policy_check_mail(s->policy, &a, mail_checked, s);
}

/* MAIL passed what it is checked for: the transaction starts. */
static void
mail_accept(struct session *s)
{
	char from[ADDR_PATH_MAX + 1], la[LOG_PATH_SIZE];

	addr_format(&s->pending_addr, from, sizeof(from));
	session_tx_reset(s);
	s->env.sender = s->pending_addr;
	s->env.params = s->pending_mail;
	s->in_tx = 1;
	/* Without pass-through MAIL ran the sender's checks itself. */
	s->sender_ok = !s->conf->passthrough;
	log_info("session=%s event=mail client=%s from=%s", s->id, s->addr,
	    log_path(la, sizeof(la), from));
	reply(s, 250, "2.1.0", "Ok");
}

static void
mail_checked(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;
	char from[ADDR_PATH_MAX + 1];

	s->state = S_CMD;
	addr_format(&s->pending_addr, from, sizeof(from));
	if (v->v != VERDICT_ACCEPT)
		session_refuse(s, "mail", "from", from, v);
	else
		mail_accept(s);
	session_process(s);
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	const struct domain *dom = NULL;
	struct esmtp_error perr;
	struct rcpt_params rp;
	struct mailaddr a;
	size_t used;
	char to[ADDR_PATH_MAX + 1];

	if (!s->in_tx) {
		reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	s->rcpt_tried++;
	if (s->env.nrcpt >= s->conf->smtpd_recipient_limit) {
		/* RFC 5321 §4.5.3.1.10: 452, the client sends the rest in
		 * another transaction. Not the client's error. */
		reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (take_path(s, cmd, "rcpt", ADDR_ALLOW_POSTMASTER, "5.1.3", &a,
	    &used))
		return;
	if (esmtp_parse_rcpt(cmd->arg + used, cmd->arglen - used, &rp,
	    &perr) == -1) {
		log_reject(s, "rcpt", perr.code, perr.enhanced, "bad_parameter",
		    cmd->arg, cmd->arglen);
		reply_error(s, perr.code, perr.enhanced, "%s", perr.text);
		return;
	}
	addr_format(&a, to, sizeof(to));

	/*
	 * Relay control, before anything that could accept (docs/principles.md
	 * §1.3): only the customer domains of domains_file. An address literal
	 * or a bare <Postmaster> names this host, which keeps no mail.
	 */
	if (!a.is_literal && a.domain[0] != '\0')
		dom = domains_lookup(s->srv->domains, a.domain);
	if (dom == NULL) {
		log_reject(s, "rcpt", 554, "5.7.1", "relay_denied", to,
		    strlen(to));
		reply_error(s, 554, "5.7.1", "<%s>: Relay access denied", to);
		return;
	}
	/* user%host@ours, host!user@ours, "user@host"@ours: a primary
	 * that still honours such routing (for us, a trusted host) would
	 * make us an open relay (Postfix's allow_untrusted_routing = no).
	 * One rule for all, before anything is relayed, learned or
	 * queued (docs/smtp.md, "Threats"). */
	if (a.has_route_chars) {
		log_reject(s, "rcpt", 554, "5.7.1", "sender_routing", to,
		    strlen(to));
		reply_error(s, 554, "5.7.1",
		    "<%s>: Sender-specified routing denied", to);
		return;
	}
	if (a.is_utf8 && !s->env.params.smtputf8) {
		reply_error(s, 553, "5.6.7",
		    "Error: non-ASCII address needs SMTPUTF8");
		return;
	}
	/* Relay control passed: now the mode of the transaction, then what
	 * that mode checks (docs/architecture.md §5). */
	s->pending_addr = a;
	s->pending_rcpt = rp;
	str_copy(s->pending_domain, sizeof(s->pending_domain), dom->name);
	switch (s->mode) {
	case TX_ABORTED:
		reply(s, 451, "4.4.2", "<%s>: Error: the primary mail server "
		    "failed during this transaction; try again later", to);
		return;
	case TX_PASS:
		if (!relay_same_primary(s->relay, dom)) {
			reply(s, 452, "4.5.3", "<%s>: Error: another primary "
			    "mail server; send it in another transaction", to);
			return;
		}
		rcpt_pass(s, dom);
		return;
	case TX_BACKUP:
		if (relay_primary_up(s->relay, dom)) {
			reply(s, 452, "4.5.3", "<%s>: Error: its primary mail "
			    "server is up; send it in another transaction", to);
			return;
		}
		rcpt_backup(s, dom);
		return;
	case TX_UNDECIDED:
		if (relay_primary_up(s->relay, dom)) {
			rcpt_pass(s, dom);
			return;
		}
		s->mode = TX_BACKUP;
		rcpt_backup(s, dom);
		return;
	}
}

/* An address as the allow lists and the counts see it: lower case. */
static void
addr_key(const struct mailaddr *a, char out[ADDR_PATH_MAX + 1])
{
	addr_format(a, out, ADDR_PATH_MAX + 1);
	str_lower(out);
}

/* A recipient's bulk policy: its threshold (docs/bulk.md §4). */
static unsigned
bulk_policy_of(struct session *s, const struct mailaddr *a,
    const struct domain *dom)
{
	char to[ADDR_PATH_MAX + 1], from[ADDR_PATH_MAX + 1];

	if (s->srv->bulk == NULL)
		return 0;
	addr_key(a, to);
	addr_key(&s->env.sender, from);
	return bulk_rcpt_policy(s->srv->bulk, s->srv->state, s->conf, dom, to,
	    (struct sockaddr *)&s->ss, from);
}

/*
 * One bulk policy per transaction: a recipient that passed every check but
 * has another policy than those accepted before is sent again later (452
 * 4.5.3), so that one verdict holds for the whole message. Returns 1 for
 * such a recipient; the first one sets the transaction's policy.
 */
static int
bulk_split(struct session *s)
{
	unsigned p = bulk_policy_of(s, &s->pending_addr,
	    domains_lookup(s->srv->domains, s->pending_addr.domain));

	if (s->env.nrcpt == 0) {
		s->bulk_policy = p;
		return 0;
	}
	if (p == s->bulk_policy)
		return 0;
	s->overshoot++;
	return 1;
}

#define BULK_SPLIT_TEXT	"Error: too many recipients for one transaction " \
			"(another bulk policy); send again"

/* Backup mode: the message would be stored, so every check runs. The
 * answer comes back in rcpt_checked(). */
static void
rcpt_backup(struct session *s, const struct domain *dom)
{
	char to[ADDR_PATH_MAX + 1];

	/* Short of room (queue_minfree): it could not be stored. With
	 * pass-through on, MAIL could not know it would be. */
	if (!queue_space_ok(s->srv->queue)) {
		addr_format(&s->pending_addr, to, sizeof(to));
		log_reject(s, "rcpt", 452, "4.3.1", "queue_minfree", to,
		    strlen(to));
		reply(s, 452, "4.3.1", "Error: insufficient system storage");
		s->state = S_CMD;
		return;
	}
	s->state = S_POLICY;
	policy_check_rcpt(s->policy, &s->env.sender, &s->pending_addr, dom,
	    POLICY_BACKUP, !s->sender_ok, rcpt_checked, s);
}

/* --- backup mode's content filters (docs/milter.md) --------------------- */

/* A filter's answer in the policy's terms: one reply for both. */
static void
milter_verdict_info(const struct milter_verdict *m, struct verdict_info *v)
{
	if (m->result == MILTER_PASS) {
		verdict_accept(v);
		return;
	}
	verdict_set(v, m->result == MILTER_REFUSE ? VERDICT_REJECT :
	    VERDICT_TEMPFAIL, m->code, strlen(m->enh) < sizeof(v->enh) ?
	    m->enh : (m->code >= 500 ? "5.7.1" : "4.7.1"), "milter", "%s",
	    m->text);
}

/* The filters see the recipient a policy accepted; the conversation opens
 * at the transaction's first. Returns 0 when there are none to ask. */
static int
milter_rcpt(struct session *s, milter_done_cb *cb)
{
	char to[ADDR_PATH_MAX + 1];

	if (s->conf->backup_milters[0] == '\0')
		return 0;
	if (s->milter == NULL) {
		char from[ADDR_PATH_MAX + 1], size[32];
		const char *args[4];
		size_t n = 0;
		struct milter_info in = {
			.client_addr = s->addr, .client_name = "unknown",
			.family = s->ss.ss_family, .port = (unsigned)s->port,
			.helo = s->helo, .sender = from, .mail_args = args,
			.tmpdir = queue_tmpdir(s->srv->queue),
			.mem_max = (size_t)s->conf->smtpd_body_buffer,
		};

		addr_format(&s->env.sender, from, sizeof(from));
		if (s->env.params.has_size) {
			snprintf(size, sizeof(size), "SIZE=%llu",
			    (unsigned long long)s->env.params.size);
			args[n++] = size;
		}
		if (s->env.params.body == ESMTP_BODY_8BITMIME)
			args[n++] = "BODY=8BITMIME";
		if (s->env.params.smtputf8)
			args[n++] = "SMTPUTF8";
		args[n] = NULL;
		s->milter = milter_tx_new(s->srv->base, s->conf, &in);
	}
	addr_format(&s->pending_addr, to, sizeof(to));
	s->state = S_POLICY;
	milter_tx_rcpt(s->milter, to, cb, s);
	return 1;
}

static void	rcpt_answer(struct session *, const struct verdict_info *);
static void	replay_answer(struct session *, const struct verdict_info *);

static void
rcpt_milter_done(const struct milter_verdict *m, void *arg)
{
	struct verdict_info v;

	milter_verdict_info(m, &v);
	rcpt_answer(arg, &v);
}

static void
replay_milter_done(const struct milter_verdict *m, void *arg)
{
	struct verdict_info v;

	milter_verdict_info(m, &v);
	replay_answer(arg, &v);
}

static void
rcpt_checked(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;

	if (v->v == VERDICT_ACCEPT && milter_rcpt(s, rcpt_milter_done))
		return;
	rcpt_answer(s, v);
}

static void
rcpt_answer(struct session *s, const struct verdict_info *v)
{
	char to[ADDR_PATH_MAX + 1], la[LOG_PATH_SIZE];

	s->state = S_CMD;
	addr_format(&s->pending_addr, to, sizeof(to));
	if (v->v != VERDICT_ACCEPT)
		session_refuse(s, "rcpt", "to", to, v);
	else if (bulk_split(s))
		reply(s, 452, "4.5.3", BULK_SPLIT_TEXT);
	else {
		s->sender_ok = 1;
		envelope_add_rcpt(&s->env, &s->pending_addr, &s->pending_rcpt);
		log_info("session=%s event=rcpt client=%s to=%s "
		    "verdict=accept", s->id, s->addr,
		    log_path(la, sizeof(la), to));
		reply(s, 250, "2.1.5", "Ok");
	}
	session_process(s);
}


/* --- pass-through: what the session asks of the relay stage -------------- */

/* Relay the pending RCPT: it takes its place in the reply queue and the
 * session reads on (only RCPTs while places are held). */
static void
rcpt_relay(struct session *s, const struct domain *dom)
{
	s->mode = TX_PASS;
	s->state = S_CMD;
	relay_rcpt(s->relay, dom, &s->pending_addr, &s->pending_rcpt);
}

static void
rcpt_filtered(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;
	const struct domain *dom;
	char to[ADDR_PATH_MAX + 1];

	s->filtering = 0;
	s->state = S_CMD;
	addr_format(&s->pending_addr, to, sizeof(to));
	if (v->v == VERDICT_ACCEPT)
		s->sender_ok = 1;
	if (v->v != VERDICT_ACCEPT)
		session_refuse(s, "rcpt", "to", to, v);
	else if (s->replay_wanted)
		/* The primary failed before answering meanwhile: this RCPT
		 * is judged in backup mode with those that waited. */
		relay_hold(s->relay, &s->pending_addr, &s->pending_rcpt);
	else if (s->mode == TX_ABORTED)
		reply(s, 451, "4.4.2", "<%s>: Error: the primary mail server "
		    "failed during this transaction; try again later", to);
	else if ((dom = domains_lookup(s->srv->domains,
	    s->pending_domain)) == NULL)
		reply(s, 451, "4.3.0", "<%s>: Error: try again later", to);
	else
		rcpt_relay(s, dom);
	if (s->replay_wanted) {
		s->replay_wanted = 0;
		replay_next(s);
	}
	session_process(s);
}

/* Pass-through for the pending RCPT: the domain's own filters first
 * (passthrough_filters), on the session's one policy client. */
static void
rcpt_pass(struct session *s, const struct domain *dom)
{
	if (dom->passthrough_filters) {
		s->state = S_POLICY;
		s->filtering = 1;
		policy_check_rcpt(s->policy, &s->env.sender, &s->pending_addr,
		    dom, POLICY_FILTERED, !s->sender_ok, rcpt_filtered, s);
		return;
	}
	rcpt_relay(s, dom);
}

static void	replay_checked(const struct verdict_info *, void *);

/*
 * Backup mode for the RCPTs that were waiting for a primary that went
 * away before answering: one after the other, each answer into its own
 * place in the reply queue.
 */
static void
replay_next(struct session *s)
{
	const struct mailaddr *a;
	const struct rcpt_params *p;
	const struct domain *dom = NULL;
	char to[ADDR_PATH_MAX + 1], line[ADDR_PATH_MAX + 128];

	while ((a = relay_waiting(s->relay, &p)) != NULL) {
		dom = domains_lookup(s->srv->domains, a->domain);
		if (dom != NULL && queue_space_ok(s->srv->queue))
			break;
		/* Gone from domains_file meanwhile, or no room to store. */
		addr_format(a, to, sizeof(to));
		if (dom == NULL)
			snprintf(line, sizeof(line), "451 4.3.0 <%s>: Error: "
			    "try again later", to);
		else
			snprintf(line, sizeof(line), "452 4.3.1 <%s>: Error: "
			    "insufficient system storage", to);
		relay_answer(s->relay, line);
	}
	if (a == NULL) {
		s->state = S_CMD;
		return;
	}
	s->pending_addr = *a;
	s->pending_rcpt = *p;
	s->state = S_POLICY;
	policy_check_rcpt(s->policy, &s->env.sender, &s->pending_addr, dom,
	    POLICY_BACKUP, !s->sender_ok, replay_checked, s);
}

static void
replay_checked(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;

	if (relay_waiting(s->relay, NULL) == NULL)
		return;
	if (v->v == VERDICT_ACCEPT && milter_rcpt(s, replay_milter_done))
		return;
	replay_answer(s, v);
}

static void
replay_answer(struct session *s, const struct verdict_info *v)
{
	char to[ADDR_PATH_MAX + 1], line[1024], la[LOG_PATH_SIZE];

	if (relay_waiting(s->relay, NULL) == NULL)
		return;
	addr_format(&s->pending_addr, to, sizeof(to));
	log_path(la, sizeof(la), to);
	if (v->v != VERDICT_ACCEPT) {
		log_info("session=%s event=rcpt client=%s to=%s verdict=%s "
		    "code=%d dsn=%s reason=%s", s->id, s->addr, la,
		    v->v == VERDICT_REJECT ? "reject" : "tempfail", v->code,
		    v->enh, v->reason);
		snprintf(line, sizeof(line), "%d %s %s", v->code, v->enh,
		    v->text);
	} else if (bulk_split(s)) {
		snprintf(line, sizeof(line), "452 4.5.3 <%s>: %s", to,
		    BULK_SPLIT_TEXT);
	} else {
		s->sender_ok = 1;
		envelope_add_rcpt(&s->env, &s->pending_addr, &s->pending_rcpt);
		log_info("session=%s event=rcpt client=%s to=%s "
		    "verdict=accept", s->id, s->addr, la);
		snprintf(line, sizeof(line), "250 2.1.5 Ok");
	}
	relay_answer(s->relay, line);
	replay_next(s);
	session_process(s);
}

/* --- what the relay stage tells the session (relay.h) ------------------- */

static void
relay_say_cb(struct evbuffer *text, void *arg)
{
	struct session *s = arg;

	if (s->bev == NULL)
		return;
	count_replies(s, text);
	evbuffer_add_buffer(bufferevent_get_output(s->bev), text);
}

static void
relay_backup_cb(void *arg)
{
	struct session *s = arg;

	s->mode = TX_BACKUP;
	if (s->filtering) {
		/* The policy client is busy with a RCPT's filter check:
		 * the verdicts wait for it (rcpt_filtered). */
		s->replay_wanted = 1;
		return;
	}
	replay_next(s);
}

static void
relay_failed_cb(enum relay_state was, void *arg)
{
	struct session *s = arg;

	if (s->in_tx)
		s->mode = TX_ABORTED;
	switch (was) {
	case RELAY_BODY:
		/* Read on to the client's dot, answer then (data_end). */
		if (s->paused) {
			s->paused = 0;
			bufferevent_enable(s->bev, EV_READ);
		}
		break;
	case RELAY_DATA:
	case RELAY_DOT_SENT:
		reply(s, 451, "4.4.2", "Error: the primary mail server failed "
		    "during this transaction; try again later");
		if (s->state == S_COMMIT) {
			session_tx_reset(s);
			bufferevent_enable(s->bev, EV_READ);
		}
		s->state = S_CMD;
		break;
	default:
		break;
	}
}

static void	data_go(struct session *);
static size_t	data_begin(struct session *, char *, size_t);

static void
relay_data_cb(int go, void *arg)
{
	struct session *s = arg;
	char hdr[2048];
	size_t n;

	s->state = S_CMD;
	if (!go)
		return;	/* refused: RSET, EHLO or QUIT next */
	if ((n = data_begin(s, hdr, sizeof(hdr))) > 0)
		relay_body(s->relay, hdr, n);
	data_go(s);
}

static void
relay_done_cb(int delivered, void *arg)
{
	struct session *s = arg;

	stats_inc(delivered ? STAT_TX_PASS_ACCEPTED : STAT_TX_PASS_REJECTED);
	if (delivered)
		errors_forgiven(s);
	session_tx_reset(s);
	s->state = S_CMD;
	bufferevent_enable(s->bev, EV_READ);
}

static void
relay_resume_cb(void *arg)
{
	struct session *s = arg;

	s->paused = 0;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

static void
relay_process_cb(void *arg)
{
	session_process(arg);
}

static const struct relay_cbs relay_cbs = {
	.say = relay_say_cb,
	.backup = relay_backup_cb,
	.failed = relay_failed_cb,
	.data_answered = relay_data_cb,
	.done = relay_done_cb,
	.resume = relay_resume_cb,
	.process = relay_process_cb,
};

static void
data_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	log_info("session=%s event=timeout client=%s state=data", s->id,
	    s->addr);
	reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
	    s->conf->myhostname);
	session_close(s, "data_timeout");
}

/*
 * The message's identity and our trace header (RFC 5321 §4.4), which goes
 * first: into the spool body, or to the primary. Only checked values go
 * in: the HELO name passed addr_domain_valid(), the rest is ours. Returns
 * the header's length in hdr, 0 if it did not fit.
 */
static size_t
data_begin(struct session *s, char *hdr, size_t hdrsz)
{
	char date[64], to[ADDR_PATH_MAX + 1];
	int n;

	envelope_new_id(s->env.id);
	s->env.arrival = time(NULL);
	str_copy(s->env.helo, sizeof(s->env.helo), s->helo);
	str_copy(s->env.client_addr, sizeof(s->env.client_addr), s->addr);
	str_copy(s->env.client_name, sizeof(s->env.client_name), "unknown");
	snprintf(s->env.proto, sizeof(s->env.proto), "%s%s%s",
	    s->env.params.smtputf8 ? "UTF8SMTP" : (s->esmtp ? "ESMTP" :
	    "SMTP"), s->tls ? "S" : "", "");
	s->data_bytes = 0;
	s->data_overflow = 0;
	data_scan_init(&s->scan);

	clock_rfc5322(date, sizeof(date), s->env.arrival);
	to[0] = '\0';
	if (s->env.nrcpt == 1)
		addr_format(&s->env.rcpts[0].addr, to, sizeof(to));
	n = snprintf(hdr, hdrsz,
	    "Received: from %s (%s [%s])\r\n"
	    "%s%s%s"
	    "\tby %s (backmx) with %s id %s%s%s%s;\r\n"
	    "\t%s\r\n",
	    s->helo, s->env.client_name, s->addr,
	    s->tls ? "\t(using " : "", s->tls ? s->tls_info : "",
	    s->tls ? ")\r\n" : "",
	    s->conf->myhostname, s->env.proto, s->env.id,
	    to[0] ? "\r\n\tfor <" : "", to, to[0] ? ">" : "", date);
	return n > 0 && (size_t)n < hdrsz ? (size_t)n : 0;
}

/* 354 said: the body streams in, DATA's own time limit runs. */
static void
data_go(struct session *s)
{
	struct timeval tv;

	log_info("session=%s queue=%s event=data client=%s nrcpt=%zu%s",
	    s->id, s->env.id, s->addr, s->env.nrcpt,
	    s->mode == TX_PASS ? " mode=passthrough" : "");
	s->state = S_DATA;
	tv.tv_sec = s->conf->smtpd_data_timeout;
	tv.tv_usec = 0;
	evtimer_assign(s->timer, s->srv->base, data_timeout_cb, s);
	evtimer_add(s->timer, &tv);
}

static void
cmd_data(struct session *s, const struct smtp_cmd *cmd)
{
	char hdr[2048];
	size_t n;

	if (!s->in_tx) {
		reply_error(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->mode == TX_ABORTED) {
		reply(s, 451, "4.4.2", "Error: the primary mail server failed "
		    "during this transaction; try again later");
		return;
	}
	if (s->env.nrcpt == 0) {
		/* RFC 5321 §3.3: 554 when no recipient was accepted. */
		if (s->rcpt_tried > 0)
			reply_error(s, 554, "5.5.1",
			    "Error: no valid recipients");
		else
			reply_error(s, 503, "5.5.1",
			    "Error: need RCPT command");
		return;
	}
	if (cmd->arglen > 0) {
		reply_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->mode == TX_PASS) {
		/* The primary's 354 or refusal is the answer. */
		s->state = S_POLICY;
		relay_data(s->relay);
		return;
	}
	s->body = body_new(queue_tmpdir(s->srv->queue),
	    (size_t)s->conf->smtpd_body_buffer);
	if ((n = data_begin(s, hdr, sizeof(hdr))) > 0)
		body_append(s->body, hdr, n);
	bulk_begin(s);
	reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	data_go(s);
}

/*
 * May this client have 'dom' flushed? Loopback and smtpd_etrn_clients
 * always, and the domain's own primary named by address in route= (its
 * primary is who ETRN is for, RFC 1985 §1). A name in route= or an MX is
 * not resolved for this: list its addresses in smtpd_etrn_clients.
 */
static int
etrn_allowed(const struct session *s, const struct domain *dom)
{
	uint8_t a[16], r[16];
	struct in6_addr a6;
	struct in_addr a4;

	if (sockaddr_bytes((const struct sockaddr *)&s->ss, a) == -1)
		return 0;
	if (ranges_find(s->conf->etrn_client_net, s->conf->netrn_client_nets,
	    a) != -1)
		return 1;
	if (dom == NULL || dom->route_host[0] == '\0')
		return 0;
	if (inet_pton(AF_INET, dom->route_host, &a4) == 1) {
		memset(r, 0, 10);
		r[10] = r[11] = 0xff;
		memcpy(r + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, dom->route_host, &a6) == 1)
		memcpy(r, &a6, 16);
	else
		return 0;
	return memcmp(a, r, 16) == 0;
}

/*
 * One flush per domain per ETRN_INTERVAL, however many clients ask: the
 * queue run and the probe of the primary it starts are not repeated on
 * demand. A small table, a slot per domain by hash; a collision at worst
 * lets a flush through early.
 */
static int
etrn_due(const char *dom, time_t now)
{
	static struct {
		char	name[256];
		time_t	at;
	} slots[ETRN_SLOTS];
	unsigned h = 5381;
	const char *p;

	for (p = dom; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	h %= ETRN_SLOTS;
	if (strcmp(slots[h].name, dom) == 0 && now >= slots[h].at &&
	    now - slots[h].at < ETRN_INTERVAL)
		return 0;
	str_copy(slots[h].name, sizeof(slots[h].name), dom);
	slots[h].at = now;
	return 1;
}

/*
 * ETRN (RFC 1985 §5): flush the queue of a customer domain now. "@domain"
 * is taken as the domain itself (we keep no per-subdomain queues); "#queue"
 * names no queue of ours. Only from those etrn_allowed() names: anyone
 * else gets the same refusal whatever it names, so ETRN tells a stranger
 * neither which domains are ours nor whether mail waits for them.
 */
static void
cmd_etrn(struct session *s, const struct smtp_cmd *cmd)
{
	const struct domain *dom = NULL;
	const char *d = cmd->arg;
	size_t dl = cmd->arglen;
	char dom_name[256];
	int n, valid;

	if (dl > 0 && d[0] == '@') {
		d++;
		dl--;
	}
	valid = dl > 0 && d[0] != '#' && dl < sizeof(dom_name) &&
	    addr_domain_valid(d, dl, 0);
	if (valid) {
		str_ncopy(dom_name, sizeof(dom_name), d, dl);
		dom = domains_lookup(s->srv->domains, dom_name);
	}
	if (!etrn_allowed(s, dom)) {
		log_info("session=%s event=etrn client=%s verdict=reject "
		    "reason=client_not_allowed", s->id, s->addr);
		reply(s, 459, "4.7.1", "ETRN not allowed from this address");
		return;
	}
	if (cmd->arglen == 0) {
		reply(s, 501, "5.5.4", "Syntax: ETRN domain");
		return;
	}
	if (!valid) {
		reply(s, 458, "4.1.2", "Unable to queue messages for that node");
		return;
	}
	if (dom == NULL) {
		reply(s, 459, "4.7.1", "Node %s not allowed: not a domain "
		    "backed up here", dom_name);
		return;
	}
	if (!etrn_due(dom->name, time(NULL))) {
		log_info("session=%s event=etrn client=%s domain=%s "
		    "verdict=limited", s->id, s->addr, dom->name);
		reply(s, 251, "2.0.0", "OK, queuing for node %s was started "
		    "less than %d seconds ago", dom->name, ETRN_INTERVAL);
		return;
	}
	n = queue_flush_domain(s->srv->queue, dom->name);
	log_info("session=%s event=etrn client=%s domain=%s messages=%d", s->id,
	    s->addr, dom->name, n);
	if (n < 0)
		reply(s, 459, "4.7.1", "Node %s not allowed: not a domain "
		    "backed up here", dom->name);
	else if (n == 0)
		reply(s, 251, "2.0.0", "OK, no messages waiting for node %s",
		    dom->name);
	else
		reply(s, 250, "2.0.0", "OK, queuing for node %s started",
		    dom->name);
}

static void
cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	struct bufferevent *tlsbev;
	SSL *ssl;

	if (s->srv->tls == NULL) {
		reply_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->tls) {
		reply_error(s, 554, "5.5.1", "Error: TLS already active");
		return;
	}
	if (cmd->arglen > 0) {
		reply_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if (!s->esmtp) {
		reply_error(s, 503, "5.5.1", "Error: send EHLO first");
		return;
	}
	reply(s, 220, "2.0.0", "Ready to start TLS");
	/* CVE-2011-0411: nothing sent in clear may run inside TLS. The
	 * pipelining check already refused a client that sent more, but
	 * drain anyway. */
	evbuffer_drain(bufferevent_get_input(s->bev),
	    evbuffer_get_length(bufferevent_get_input(s->bev)));
	if ((ssl = SSL_new(s->srv->tls)) == NULL) {
		log_warn("session=%s event=tls_error reason=SSL_new", s->id);
		session_close(s, "tls_error");
		return;
	}
	/* The 220 sits in the plain bufferevent's output and leaves in
	 * clear; the filter encrypts everything after it. Freeing the
	 * filter frees the plain bufferevent and the socket. */
	tlsbev = bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		log_warn("session=%s event=tls_error reason=filter", s->id);
		session_close(s, "tls_error");
		return;
	}
	s->bev = tlsbev;
	s->tls = 1;
	session_setup_bev(s);
	/* RFC 3207 §4.2: forget everything learnt before TLS. */
	s->helo_done = 0;
	s->esmtp = 0;
	session_tx_reset(s);
}

/* Run one command line (without its CRLF). */
static void
session_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	enum parse_result pr;
	char esc[128];

	s->commands++;
	pr = parse_command(line, len, &cmd);
	if (pr == PARSE_BAD_BYTES) {
		/* SMTP smuggling and friends: CRLF is the only line end. */
		log_info("session=%s event=reject client=%s reason=bad_bytes "
		    "line=\"%s\"", s->id, s->addr,
		    log_escape(esc, sizeof(esc), line, len));
		reply_error(s, 500, "5.5.2",
		    "Error: bare CR, LF or NUL in command");
		return;
	}

	/* Pipelining discipline, before the command runs: before EHLO and
	 * in HELO sessions every command is a sync point, after EHLO only
	 * those of RFC 2920 §3.1. */
	if ((!s->esmtp || parse_ends_group(cmd.verb)) && more_input(s)) {
		sync_error(s, cmd.name);
		return;
	}
	if (pr == PARSE_SYNTAX) {
		s->counts[C_OTHER]++;
		reply_error(s, 501, "5.5.4", "Syntax: %s",
		    cmd.verb == SMTP_MAIL ? "MAIL FROM:<address>" :
		    "RCPT TO:<address>");
		return;
	}

	switch (cmd.verb) {
	case SMTP_HELO:
		s->counts[C_HELO]++;
		cmd_helo(s, &cmd, 0);
		break;
	case SMTP_EHLO:
		s->counts[C_EHLO]++;
		cmd_helo(s, &cmd, 1);
		break;
	case SMTP_MAIL:
		s->counts[C_MAIL]++;
		cmd_mail(s, &cmd);
		break;
	case SMTP_RCPT:
		s->counts[C_RCPT]++;
		cmd_rcpt(s, &cmd);
		break;
	case SMTP_DATA:
		s->counts[C_DATA]++;
		cmd_data(s, &cmd);
		break;
	case SMTP_RSET:
		s->counts[C_RSET]++;
		if (junk_command(s))
			break;
		session_tx_reset(s);
		reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_NOOP:
		s->counts[C_NOOP]++;
		if (junk_command(s))
			break;
		reply(s, 250, "2.0.0", "Ok");
		break;
	case SMTP_QUIT:
		s->counts[C_QUIT]++;
		reply(s, 221, "2.0.0", "Bye");
		session_close(s, "quit");
		break;
	case SMTP_HELP:
		s->counts[C_OTHER]++;
		if (junk_command(s))
			break;
		reply(s, 214, "2.0.0", "See RFC 5321; this is backmx, a "
		    "backup MX");
		break;
	case SMTP_VRFY:
		s->counts[C_OTHER]++;
		if (junk_command(s))
			break;
		/* RFC 5321 §3.5.3: 252, and we never confirm anything. */
		reply(s, 252, "2.1.5", "Cannot VRFY user, but will accept "
		    "message and attempt delivery");
		break;
	case SMTP_STARTTLS:
		s->counts[C_STARTTLS]++;
		cmd_starttls(s, &cmd);
		break;
	case SMTP_ETRN:
		s->counts[C_OTHER]++;
		if (junk_command(s))
			break;
		cmd_etrn(s, &cmd);
		break;
	case SMTP_EXPN:
	case SMTP_TURN:
	case SMTP_AUTH:
	case SMTP_BDAT:
		s->counts[C_OTHER]++;
		reply_error(s, 502, "5.5.1", "Error: command not implemented");
		break;
	case SMTP_UNKNOWN:
		s->counts[C_OTHER]++;
		log_info("session=%s event=reject client=%s reason=unknown_"
		    "command line=\"%s\"", s->id, s->addr,
		    log_escape(esc, sizeof(esc), line, len));
		reply_error(s, 500, "5.5.2", "Error: command not recognized");
		break;
	}
}

/* --- DATA --------------------------------------------------------------- */

/* The transaction is allowed (docs/bulk.md §4): its client or sender,
 * or each of its recipients, by the global lists or their domains'. */
static int
bulk_allowed(struct session *s)
{
	char from[ADDR_PATH_MAX + 1], to[ADDR_PATH_MAX + 1];
	const struct sockaddr *sa = (struct sockaddr *)&s->ss;
	size_t i;

	addr_key(&s->env.sender, from);
	if (bulk_tx_allowed(s->srv->bulk, s->srv->state, sa, from))
		return 1;
	/* A counted policy says it already: RCPT gives an allowed
	 * recipient policy 0, and a transaction has one policy. */
	if (s->bulk_policy != 0)
		return 0;
	for (i = 0; i < s->env.nrcpt; i++) {
		addr_key(&s->env.rcpts[i].addr, to);
		if (!bulk_rcpt_allowed(s->srv->bulk, s->srv->state,
		    domains_lookup(s->srv->domains,
		    s->env.rcpts[i].addr.domain), to, sa, from))
			return 0;
	}
	return s->env.nrcpt > 0;
}

/* The envelope sender as the bulk log lines show it: what an operator
 * puts in bulk_allow_senders or "bulk allow" for solicited bulk. */
static const char *
bulk_from(struct session *s, char *la, size_t lasz)
{
	char from[ADDR_PATH_MAX + 1];

	addr_format(&s->env.sender, from, sizeof(from));
	return log_path(la, lasz, from);
}

/* Backup mode: digest the body while it streams, unless no recipient is
 * counted or the transaction is allowed; allowed mail is not asked of
 * dccifd either (dcc_begin()). */
static void
bulk_begin(struct session *s)
{
	char la[LOG_PATH_SIZE];

	s->bulk_on = 0;
	s->bulk_allowed = 0;
	/* Nothing to skip: neither detector looks at this message. */
	if (s->srv->bulk == NULL || (!s->conf->bulk_detect &&
	    s->conf->dccifd_socket[0] == '\0'))
		return;
	if ((s->bulk_allowed = bulk_allowed(s)) != 0) {
		if (s->conf->bulk_detect)
			log_info("session=%s queue=%s event=bulk client=%s "
			    "from=%s verdict=skipped why=allowed", s->id,
			    s->env.id, s->addr, bulk_from(s, la, sizeof(la)));
		return;
	}
	if (s->bulk_policy == 0)
		return;
	if (s->bulkw == NULL)
		s->bulkw = bulk_walk_new();
	bulk_walk_reset(s->bulkw);
	s->bulk_on = 1;
}

/* The bulk deferral, the embedded detector's and dccifd's alike: 451
 * 4.7.28, told apart from greylisting's 4.7.1 (docs/bulk.md §4). */
static void
reply_bulk(struct session *s)
{
	reply(s, 451, "4.7.28", "Error: this message looks like bulk mail "
	    "(its copies reached many recipients); not accepted by this "
	    "backup MX");
}

/* The verdict's log line and counter; 1 when it answered the message:
 * bulk (451 4.7.28, docs/bulk.md §4) or a store error (451 4.3.0: doubt
 * is 4xx, docs/principles.md §1.2). */
static int
bulk_verdict(struct session *s, const struct bulk_digests *d,
    const struct bulk_outcome *o)
{
	char sum[512], la[LOG_PATH_SIZE];

	log_info("session=%s queue=%s event=bulk client=%s from=%s verdict=%s "
	    "threshold=%u nrcpt=%u digests=%s%s%s", s->id, s->env.id, s->addr,
	    bulk_from(s, la, sizeof(la)), bulk_verdict_name(o->verdict),
	    o->threshold, o->counted,
	    bulk_summary(sum, sizeof(sum), d, o), o->why ? " why=" : "",
	    o->why ? o->why : "");
	stats_inc(o->verdict == BULK_BULK ? STAT_BULK_BULK : o->verdict ==
	    BULK_ERROR ? STAT_BULK_ERROR : o->verdict == BULK_PASS ?
	    STAT_BULK_PASS : STAT_BULK_SKIPPED);
	if (o->verdict != BULK_BULK && o->verdict != BULK_ERROR)
		return 0;
	if (o->verdict == BULK_BULK)
		reply_bulk(s);
	else
		reply(s, 451, "4.3.0", "Error: local error in processing");
	return 1;
}

/* The cluster's counts came (or did not: the local ones decided). */
static void
bulk_judged(const struct bulk_outcome *o, const struct bulk_digests *d,
    void *arg)
{
	struct session *s = arg;

	s->bulkask = NULL;	/* bulk.c frees it after the call */
	if (bulk_verdict(s, d, o)) {
		tx_answered(s);
		return;
	}
	if (dcc_begin(s))
		return;		/* dccifd first (dcc_done) */
	eom_filters(s);
}

/*
 * The dot: count the recipients for each digest and decide. Returns 1
 * when the message was answered here (bulk_verdict), or when the
 * cluster's counts were asked (bulk_judged goes on).
 */
static int
bulk_end(struct session *s)
{
	struct bulk_digests d;
	struct bulk_outcome o;
	const char **rcpts;
	char (*addrs)[ADDR_PATH_MAX + 1], from[ADDR_PATH_MAX + 1];
	size_t i, n = 0;

	bulk_walk_finish(s->bulkw, &d);
	rcpts = xreallocarray(NULL, s->env.nrcpt, sizeof(*rcpts));
	addrs = xreallocarray(NULL, s->env.nrcpt, sizeof(*addrs));
	addr_key(&s->env.sender, from);
	str_copy(d.sender, sizeof(d.sender), from);
	for (i = 0; i < s->env.nrcpt; i++) {
		/* Every recipient passed bulk_split(); one whose domain's
		 * policy changed by a reload since is not counted. */
		addr_key(&s->env.rcpts[i].addr, addrs[n]);
		if (bulk_rcpt_policy(s->srv->bulk, s->srv->state, s->conf,
		    domains_lookup(s->srv->domains,
		    s->env.rcpts[i].addr.domain), addrs[n],
		    (struct sockaddr *)&s->ss, from) == s->bulk_policy) {
			rcpts[n] = addrs[n];
			n++;
		}
	}
	s->bulkask = bulk_judge_ask(s->srv->bulk, s->srv->state, s->conf, &d,
	    rcpts, n, s->bulk_policy, time(NULL), &o, bulk_judged, s);
	free(rcpts);
	free(addrs);
	if (s->bulkask != NULL) {
		/* Input stays unread while Redis is asked. */
		s->state = S_COMMIT;
		bufferevent_disable(s->bev, EV_READ);
		return 1;
	}
	if (!bulk_verdict(s, &d, &o))
		return 0;
	session_tx_reset(s);
	return 1;
}

/* The dot was answered after a wait (dccifd, the milters, the queue):
 * the transaction ends, and the commands that waited run. */
static void
tx_answered(struct session *s)
{
	session_tx_reset(s);
	s->state = S_CMD;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

/* The counter of a dccifd answer (docs/metrics.md). */
static enum stat_counter
dcc_stat(const struct dccifd_outcome *o)
{
	if (o->result == 0)
		return STAT_DCCIFD_FAILED;
	if (o->result == 'R')
		return STAT_DCCIFD_REJECT;
	if (o->verdict == DCCIFD_BULK)
		return STAT_DCCIFD_BULK;
	return o->result == 'T' ? STAT_DCCIFD_TROUBLE : o->result == 'S' ?
	    STAT_DCCIFD_SOME : o->result == 'G' ? STAT_DCCIFD_GREYLIST :
	    STAT_DCCIFD_ACCEPT;
}

/*
 * dccifd's answer (docs/bulk.md §7). Bulk is the embedded detector's
 * deferral; a failure with dccifd_fail_action tempfail is 451 4.3.0;
 * anything else goes on to the milters. G, dccifd's own greylisting,
 * goes on too: backmx greylists at RCPT already.
 */
static void
dcc_done(const struct dccifd_outcome *o, void *arg)
{
	struct session *s = arg;
	char eh[4 * DCCIFD_HEADER_MAX + 4];

	s->dcc = NULL;		/* dccifd.c freed it before the call */
	/* The header is dccifd's, made of what the peer sent: escaped, so
	 * a '"' in it cannot end the field and forge others. */
	log_info("session=%s queue=%s event=dccifd client=%s result=%c "
	    "verdict=%s%s%s header=\"%s\"", s->id, s->env.id, s->addr,
	    o->result != 0 ? o->result : '-', dccifd_verdict_name(o->verdict),
	    o->why != NULL ? " why=" : "", o->why != NULL ? o->why : "",
	    log_escape(eh, sizeof(eh), o->header, strlen(o->header)));
	stats_inc(dcc_stat(o));
	if (o->verdict == DCCIFD_PASS) {
		eom_filters(s);
		return;
	}
	if (o->verdict == DCCIFD_BULK)
		reply_bulk(s);
	else
		reply(s, 451, "4.3.0", "Error: bulk mail check unavailable; "
		    "try again later");
	tx_answered(s);
}

/* Ask the site's dccifd, when there is one and the transaction is not
 * allowed (bulk_begin()). Returns 1 when dcc_done() will go on. */
static int
dcc_begin(struct session *s)
{
	char from[ADDR_PATH_MAX + 1];
	char (*addrs)[ADDR_PATH_MAX + 1];
	const char **rcpts;
	struct dccifd_info in;
	size_t i;

	if (s->conf->dccifd_socket[0] == '\0' || s->bulk_allowed)
		return 0;
	addr_format(&s->env.sender, from, sizeof(from));
	rcpts = xreallocarray(NULL, s->env.nrcpt, sizeof(*rcpts));
	addrs = xreallocarray(NULL, s->env.nrcpt, sizeof(*addrs));
	for (i = 0; i < s->env.nrcpt; i++) {
		addr_format(&s->env.rcpts[i].addr, addrs[i], sizeof(addrs[i]));
		rcpts[i] = addrs[i];
	}
	memset(&in, 0, sizeof(in));
	in.client_addr = s->addr;
	in.helo = s->helo;
	in.sender = from;
	in.rcpts = rcpts;
	in.nrcpt = s->env.nrcpt;
	s->dcc = dccifd_ask(s->srv->base, s->conf, &in, s->body, dcc_done, s);
	free(rcpts);
	free(addrs);
	return 1;
}

static void
data_sink(const char *buf, size_t len, void *arg)
{
	struct session *s = arg;

	s->data_bytes += len;
	if (s->data_overflow)
		return;
	if (s->data_bytes > s->conf->message_size_limit) {
		/* Keep reading to the final dot, store nothing more, answer
		 * once (docs/principles.md §2, sticky transaction error). A
		 * relayed message is aborted on the primary: no dot, no mail.
		 */
		s->data_overflow = 1;
		body_free(s->body);
		s->body = NULL;
		if (s->mode == TX_PASS)
			relay_abort(s->relay);
		return;
	}
	if (s->mode == TX_PASS) {
		/* A bare CR or LF: refused at the dot (550 5.5.2), and the
		 * primary must not see a byte of it: "<CR>.<CR>" may end
		 * its data, and what follows would be commands from us
		 * (SMTP smuggling). Aborted, no dot, as for the size. */
		if (s->scan.flags & DATA_ERR_BARE) {
			relay_abort(s->relay);
			return;
		}
		relay_body(s->relay, buf, len);
		return;
	}
	if (s->mode == TX_ABORTED)
		return;		/* the primary failed: answer at the dot */
	if (s->bulk_on)
		bulk_walk_feed(s->bulkw, buf, len);
	/* An error is sticky in the body and answered at the end. */
	(void)body_append(s->body, buf, len);
}

static void
held(enum queue_result r, const char *id, void *arg)
{
	(void)arg;
	log_info("queue=%s event=quarantine result=%s", id,
	    r == QUEUE_OK ? "held" : "error");
}

/* A filter asked for quarantine: the message is held for the operator
 * (backmxctl queue release or delete), in the same loop turn as its
 * commit, before the scheduler's first attempt can run. */
static void
quarantine(struct session *s, const char *id)
{
	if (queue_admin(s->srv->queue, QUEUE_ADMIN_HOLD, id, held, NULL) ==
	    -1)
		log_warn("queue=%s event=quarantine result=error", id);
}

static void
commit_done(enum queue_result r, const char *id, void *arg)
{
	struct session *s = arg;

	s->job = NULL;
	stats_inc(r == QUEUE_OK ? STAT_TX_BACKUP_ACCEPTED :
	    STAT_TX_BACKUP_FAILED);
	if (s->state == S_CLOSING)
		return;
	switch (r) {
	case QUEUE_OK:
		/* The only 250 after DATA: the queue says it is durable. */
		log_info("session=%s queue=%s event=queued client=%s size=%llu "
		    "nrcpt=%zu", s->id, id, s->addr,
		    (unsigned long long)s->data_bytes, s->env.nrcpt);
		reply(s, 250, "2.0.0", "Ok: queued as %s", id);
		errors_forgiven(s);
		if (s->quarantine)
			quarantine(s, id);
		break;
	case QUEUE_NOSPACE:
		reply(s, 452, "4.3.1", "Error: insufficient system storage");
		break;
	case QUEUE_IOERR:
		reply(s, 451, "4.3.0", "Error: local error in processing");
		break;
	}
	s->body = NULL;		/* the queue took and freed it */
	tx_answered(s);
}

static void
commit(struct session *s)
{
	s->job = queue_submit(s->srv->queue, &s->env, s->body, commit_done, s);
	s->body = NULL;
}

/* The filters' answer to the message: refused, or stored with their
 * header changes made (docs/milter.md). */
static void
eom_milter_done(const struct milter_verdict *m, void *arg)
{
	struct session *s = arg;
	struct verdict_info v;
	struct body *nb;
	char er[4 * sizeof(m->reason) + 4];

	if (m->result != MILTER_PASS) {
		milter_verdict_info(m, &v);
		log_info("session=%s queue=%s event=reject client=%s "
		    "reason=milter code=%d dsn=%s", s->id, s->env.id, s->addr,
		    v.code, v.enh);
		if (v.v == VERDICT_REJECT)
			reply_error(s, v.code, v.enh, "%s", v.text);
		else
			reply(s, v.code, v.enh, "%s", v.text);
	} else if ((m->nedits > 0 || m->body != NULL) &&
	    milter_apply_edits(m, s->body,
	    queue_tmpdir(s->srv->queue), (size_t)s->conf->smtpd_body_buffer,
	    &nb) == -1) {
		log_warn("session=%s queue=%s event=milter_edit error=\"%s\"",
		    s->id, s->env.id, strerror(errno));
		reply(s, 451, "4.3.0", "Error: local error in processing");
	} else {
		if (m->nedits > 0 || m->body != NULL) {
			body_free(s->body);
			s->body = nb;
		}
		s->quarantine = m->quarantine != 0;
		if (s->quarantine)
			log_info("session=%s queue=%s event=milter_quarantine "
			    "reason=\"%s\"", s->id, s->env.id,
			    log_escape(er, sizeof(er), m->reason,
			    strlen(m->reason)));
		milter_tx_free(s->milter);
		s->milter = NULL;
		commit(s);
		return;
	}
	tx_answered(s);
}

/* The final dot was read: answer once for the whole message. */
static void
data_end(struct session *s)
{
	int berr;

	event_del(s->timer);
	s->state = S_CMD;
	s->env.data_flags = s->scan.flags;

	if (!s->esmtp && more_input(s)) {
		/* Without PIPELINING the dot is a sync point too. The
		 * primary never sees the dot: the reset drops it. */
		if (s->mode == TX_PASS)
			relay_abort(s->relay);
		session_tx_reset(s);
		sync_error(s, "DATA");
		return;
	}
	if (s->scan.flags & DATA_ERR_BARE) {
		/* Relayed: the primary never sees the dot. */
		if (s->mode == TX_PASS)
			relay_abort(s->relay);
		log_info("session=%s queue=%s event=reject client=%s "
		    "reason=bare_cr_lf", s->id, s->env.id, s->addr);
		stats_inc(s->mode == TX_PASS ? STAT_TX_PASS_REJECTED :
		    STAT_TX_BACKUP_REJECTED);
		reply(s, 550, "5.5.2", "Error: message contains bare CR or LF "
		    "(see RFC 5321 §2.3.8)");
		session_tx_reset(s);
		return;
	}
	if (s->data_overflow) {
		log_info("session=%s queue=%s event=reject client=%s "
		    "reason=size size=%llu limit=%llu", s->id, s->env.id,
		    s->addr, (unsigned long long)s->data_bytes,
		    (unsigned long long)s->conf->message_size_limit);
		stats_inc(s->mode == TX_PASS ? STAT_TX_PASS_REJECTED :
		    STAT_TX_BACKUP_REJECTED);
		reply(s, 552, "5.3.4", "Error: message size exceeds fixed "
		    "limit");
		session_tx_reset(s);
		return;
	}
	if (s->mode == TX_ABORTED) {
		/* The primary failed during the body: it got no dot, so
		 * nothing was delivered, and nothing was queued. */
		stats_inc(STAT_TX_PASS_FAILED);
		reply(s, 451, "4.4.2", "Error: the primary mail server failed "
		    "during this transaction; try again later");
		session_tx_reset(s);
		return;
	}
	if (s->mode == TX_PASS) {
		/* The primary's answer to the dot is ours (relay_done_cb). */
		s->state = S_COMMIT;
		bufferevent_disable(s->bev, EV_READ);
		relay_dot(s->relay, (unsigned long long)s->data_bytes);
		return;
	}
	if ((berr = body_error(s->body)) != 0) {
		log_warn("session=%s queue=%s event=spool_error error=\"%s\"",
		    s->id, s->env.id, strerror(berr));
		if (berr == ENOSPC || berr == EDQUOT)
			reply(s, 452, "4.3.1", "Error: insufficient system "
			    "storage");
		else
			reply(s, 451, "4.3.0", "Error: local error in "
			    "processing");
		session_tx_reset(s);
		return;
	}
	if (s->bulk_on && bulk_end(s))
		return;
	/* Hand over; 250 waits for the commit (commit_done). Input stays
	 * unread meanwhile: pipelined commands run after the answer. */
	s->state = S_COMMIT;
	bufferevent_disable(s->bev, EV_READ);
	if (dcc_begin(s))
		return;		/* dccifd first (dcc_done) */
	eom_filters(s);
}

/* After the bulk checks: the milters, then the commit. */
static void
eom_filters(struct session *s)
{
	if (s->milter != NULL) {
		/* The filters first; then the commit (eom_milter_done). */
		milter_tx_eom(s->milter, s->body, s->env.id, eom_milter_done,
		    s);
		return;
	}
	commit(s);
}

/* Stream what is buffered through the scanner. */
static void
data_consume(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[16];
	int i, n, done = 0;

	/* Chunk by chunk, no copy. Chunks may be empty (the TLS filter
	 * leaves such), so progress is measured in bytes, not chunks. */
	while (!done && evbuffer_get_length(in) > 0) {
		size_t used = 0;

		n = evbuffer_peek(in, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n && !done; i++)
			used += data_scan_feed(&s->scan, v[i].iov_base,
			    v[i].iov_len, &done, data_sink, s);
		evbuffer_drain(in, used);
		if (!done && s->mode == TX_PASS && relay_pause(s->relay)) {
			/* The primary is slower than our client: stop
			 * reading until it drained (relay_resume_cb). */
			s->paused = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
	}
	if (done)
		data_end(s);
}

/* --- output the client does not read ----------------------------------- */

static void
output_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct timeval tv = { 0, SESSION_OUTPUT_POLL_MS * 1000 };

	if (s->state == S_CLOSING)
		return;
	if (output_pending(s) <= SESSION_OUTPUT_MAX / 2) {
		s->out_full = 0;
		session_process(s);
		return;
	}
	if (time(NULL) - s->out_since >= (time_t)s->conf->smtpd_timeout) {
		/* It reads nothing: a last word would not be read either. */
		log_info("session=%s event=timeout client=%s state=output "
		    "pending=%zu", s->id, s->addr, output_pending(s));
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		s->state = S_CLOSING;
		s->close_reason = "output_timeout";
		event_del(s->tarpit);
		schedule_free(s);
		return;
	}
	evtimer_add(s->out_timer, &tv);
}

/*
 * Backpressure toward the client, as the relay stage does toward the
 * primary: while more than SESSION_OUTPUT_MAX of our replies wait unsent,
 * no further command is taken, so the input watermark stops reading the
 * socket; a client that has not read them down within smtpd_timeout is
 * closed (docs/smtp.md, "Threats").
 */
static int
output_full(struct session *s)
{
	struct timeval tv = { 0, SESSION_OUTPUT_POLL_MS * 1000 };

	if (s->out_full)
		return 1;
	if (output_pending(s) <= SESSION_OUTPUT_MAX)
		return 0;
	s->out_full = 1;
	s->out_since = time(NULL);
	/* Debug only: the client decides how often this happens. */
	log_debug("session=%s event=output_full client=%s pending=%zu", s->id,
	    s->addr, output_pending(s));
	evtimer_add(s->out_timer, &tv);
	return 1;
}

/* --- input -------------------------------------------------------------- */

/* Take one CRLF line, bounded. Returns 1 with a line, 0 when more input is
 * needed. An over-long line is answered and skipped here. */
static int
take_line(struct session *s, char *line, size_t *len_out)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol;
	size_t eol_len, avail = evbuffer_get_length(in);

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
	if (eol.pos == -1) {
		if (avail <= SMTP_LINE_MAX)
			return 0;
		/* No CRLF within the limit: skip what we have but a last
		 * CR, which may be half of the CRLF that ends it. */
		s->discard_line = 1;
		evbuffer_drain(in, avail - 1);
		return 0;
	}
	if (s->discard_line || (size_t)eol.pos + 2 > SMTP_LINE_MAX) {
		evbuffer_drain(in, (size_t)eol.pos + eol_len);
		s->discard_line = 0;
		s->commands++;
		log_info("session=%s event=reject client=%s reason=line_too_"
		    "long", s->id, s->addr);
		reply_error(s, 500, "5.5.2", "Error: line too long");
		*len_out = (size_t)-1;
		return 1;
	}
	evbuffer_remove(in, line, (size_t)eol.pos);
	evbuffer_drain(in, eol_len);
	*len_out = (size_t)eol.pos;
	return 1;
}

/* Is the next command a RCPT? The only one taken while relayed RCPTs
 * wait for their answers. */
static int
next_is_rcpt(struct session *s)
{
	char head[5];

	if (evbuffer_copyout(bufferevent_get_input(s->bev), head,
	    sizeof(head)) != (ev_ssize_t)sizeof(head))
		return 0;
	return strncasecmp(head, "RCPT ", sizeof(head)) == 0;
}

/* Work through buffered input while the session can act on it. */
static void
session_process(struct session *s)
{
	char line[SMTP_LINE_MAX + 1];
	size_t len;

	if (s->input_full) {
		s->input_full = 0;
		bufferevent_enable(s->bev, EV_READ);
	}
	for (;;) {
		if (s->state == S_DATA) {
			if (s->paused)
				return;
			data_consume(s);
			if (s->state == S_DATA)
				return;		/* wants more bytes */
			continue;
		}
		if (s->state != S_CMD || s->sleeping)
			return;
		if (shutting_down && !s->in_tx) {
			shutdown_say(s);	/* between transactions */
			return;
		}
		if (output_full(s) || error_limit_reached(s))
			return;
		/* Relayed RCPTs in flight: only RCPTs, and no more than
		 * could still be answered before the hard limit, so a
		 * pipelined harvest reaches the primary and the state store
		 * at most that many times. */
		if (relay_places(s->relay) > 0 && (!next_is_rcpt(s) ||
		    relay_places(s->relay) >= RELAY_PLACES_MAX ||
		    s->errors + relay_places(s->relay) >= hard_error_limit(s)))
			return;		/* waits for the primary's answers */
		if (!take_line(s, line, &len))
			return;
		if (len == (size_t)-1)
			continue;	/* over-long line, answered */
		session_command(s, line, len);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == S_GREET) {
		/* An early talker: it did not wait for our 220. */
		log_info("session=%s event=reject client=%s reason=early_talker",
		    s->id, s->addr);
		reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
		session_close(s, "early_talker");
		return;
	}
	session_process(s);
	/*
	 * The session waits (relayed RCPTs unanswered, a check in flight)
	 * with its input at the bound: libevent calls us again at once, and
	 * again, as long as the buffer stays full and reading is on (its
	 * high-watermark check after each read callback): a busy loop.
	 * Stop reading until the session works through its input again
	 * (session_process).
	 */
	if (s->state != S_CLOSING && evbuffer_get_length(
	    bufferevent_get_input(s->bev)) >= SESSION_INPUT_MAX) {
		bufferevent_disable(s->bev, EV_READ);
		s->input_full = 1;
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake finished. */
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

		if (ssl != NULL) {
			tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
			log_info("session=%s event=starttls client=%s tls=\"%s\"",
			    s->id, s->addr, s->tls_info);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("session=%s event=timeout client=%s", s->id, s->addr);
		if (what & BEV_EVENT_READING) {
			reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
			    s->conf->myhostname);
			session_close(s, "timeout");
		} else {
			s->state = S_CLOSING;
			s->close_reason = "write_timeout";
			schedule_free(s);
		}
		return;
	}
	/* EOF or error: the peer is gone; nothing more can be said. */
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0)
			log_info("session=%s event=tls_error client=%s "
			    "error=%lu", s->id, s->addr, e);
	}
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	s->state = S_CLOSING;
	if (s->close_reason == NULL)
		s->close_reason = (what & BEV_EVENT_EOF) ? "lost" : "error";
	schedule_free(s);
}

/* Callbacks, input bound and timeouts: on the socket, and again on the
 * TLS filter after STARTTLS. */
static void
session_setup_bev(struct session *s)
{
	struct timeval tv;

	bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_MAX);
	tv.tv_sec = s->conf->smtpd_timeout;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
greet(struct session *s)
{
	s->state = S_CMD;
	reply(s, 220, NULL, "%s ESMTP backmx", s->conf->myhostname);
}

static void
greet_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (more_input(s)) {
		read_cb(s->bev, s);
		return;
	}
	greet(s);
}

void
session_new(struct server *srv, int fd, const struct sockaddr *sa,
    socklen_t salen, session_end_cb *end, void *end_arg)
{
	static unsigned long long next_id;
	const struct config *conf = srv->conf;
	struct session *s = xcalloc(1, sizeof(*s));
	struct relay_deps deps;
	struct timeval tv;

	memset(&deps, 0, sizeof(deps));
	s->srv = srv;
	s->conf = conf;
	s->fd = fd;
	s->end = end;
	s->end_arg = end_arg;
	memcpy(&s->ss, sa, salen < sizeof(s->ss) ? salen : sizeof(s->ss));
	s->port = sockaddr_ntop(sa, s->addr, sizeof(s->addr));
	snprintf(s->id, sizeof(s->id), "%06llx", ++next_id & 0xffffff);
	envelope_init(&s->env);
	s->policy = policy_client_new(srv->policy, sa, s->addr);
	deps.conf = conf;
	deps.health = srv->health;
	deps.connector = srv->connector;
	deps.pool = srv->ptpool;
	deps.learn = srv->learn;
	if (srv->relay_hooks != NULL) {
		deps.connect = srv->relay_hooks->connect;
		deps.cancel = srv->relay_hooks->cancel;
		deps.connect_arg = srv->relay_hooks->connect_arg;
	}
	s->relay = relay_new(&deps, &s->env, s->id, s->addr, &relay_cbs, s);
	s->ev_free = event_new(srv->base, -1, 0, free_cb, s);
	if ((s->live_next = live) != NULL)
		live->live_prev = s;
	live = s;
	s->timer = evtimer_new(srv->base, greet_timer_cb, s);
	s->tarpit = evtimer_new(srv->base, tarpit_cb, s);
	s->out_timer = evtimer_new(srv->base, output_timer_cb, s);

	(void)sockaddr_nodelay(fd);
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warn("event=session_error client=%s reason=bufferevent",
		    s->addr);
		s->close_reason = "error";
		s->state = S_CLOSING;
		schedule_free(s);
		return;
	}
	session_setup_bev(s);

	log_info("session=%s event=connect client=%s port=%d", s->id, s->addr,
	    s->port);

	s->state = S_GREET;
	if (conf->smtpd_greet_pause > 0) {
		tv.tv_sec = conf->smtpd_greet_pause;
		tv.tv_usec = 0;
		evtimer_add(s->timer, &tv);
	} else if (more_input(s)) {
		read_cb(s->bev, s);	/* talked before we could greet */
	} else
		greet(s);
}
