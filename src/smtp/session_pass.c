/*
 * session_pass: the pass-through half of the SMTP session (DESIGN.md §3,
 * docs/passthrough.md): at the first RCPT for a domain whose primary is
 * up, a connection to it (from the pool, or primary_connect), MAIL and
 * the RCPTs relayed with their replies kept in order, DATA streamed, the
 * primary's answers verbatim; a primary gone before its first answer
 * sends the transaction to backup mode, one gone after gets 451 4.4.2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "connect.h"
#include "domains.h"
#include "health.h"
#include "learn.h"
#include "log.h"
#include "policy.h"
#include "pool.h"
#include "queue.h"
#include "reply.h"
#include "server.h"
#include "session_int.h"
#include "str.h"
#include "xmem.h"

static void	rcpt_filtered(const struct verdict_info *, void *);
static void	replay_next(struct session *);
static void	replay_checked(const struct verdict_info *, void *);
static void	pt_attach(struct session *, struct client *, int);
static void	pt_connect(struct session *, primary_connect_cb *);
static int	pt_send_mail(struct session *);
static int	pt_cmd_rcpt(struct session *, const struct mailaddr *,
		    const struct rcpt_params *);
static void	pt_reconnected(struct client *, int, const char *, void *);
static void	pt_rcpt_reply(struct client *, const struct reply *, void *);
static void	pt_data_reply(struct client *, const struct reply *, void *);

static void	pt_go(struct session *);
static void	pt_send_rcpt(struct session *);

/* The EHLO keywords of the primary that MAIL and RCPT parameters need. */
static unsigned
pt_ext(struct session *s)
{
	return (client_has_ext(s->pt, "SIZE") ? ESMTP_EXT_SIZE : 0) |
	    (client_has_ext(s->pt, "8BITMIME") ? ESMTP_EXT_8BITMIME : 0) |
	    (client_has_ext(s->pt, "SMTPUTF8") ? ESMTP_EXT_SMTPUTF8 : 0) |
	    (client_has_ext(s->pt, "DSN") ? ESMTP_EXT_DSN : 0);
}

/* Close the connection to the primary: QUIT when it is between
 * commands, else drop it (which aborts its transaction: no dot, no
 * message). */
void
session_pt_drop(struct session *s, int polite)
{
	primary_connect_cancel(s->pt_req);
	s->pt_req = NULL;
	if (s->pt == NULL)
		return;
	if (polite && !s->pt_mail_sent && client_idle(s->pt))
		primary_pool_put(s->srv->ptpool, s->pt_key, s->pt);
	else if (polite)
		client_quit(s->pt);
	else
		client_free(s->pt);
	s->pt = NULL;
	s->pt_pooled = 0;
	s->pt_waiting = 0;
	s->pt_paused = 0;
}

/*
 * The primary failed after it answered us (a drop, a timeout, garbage):
 * DESIGN.md §3, doubt is 4xx. Nothing was queued and, without its final
 * dot, nothing was delivered: the transaction ends on both sides.
 */
static void
pt_fail(struct session *s, const char *why)
{
	int waiting = s->pt_waiting;
	char to[ADDR_PATH_MAX + 1];
	struct outq *q;

	if (s->pt_filtering) {
		/* A pipelined RCPT's filter check is running on the
		 * session's one policy client: what follows (a backup-mode
		 * replay, a new connection) waits for its answer
		 * (rcpt_filtered). */
		if (s->pt_fail_why[0] == '\0')
			str_copy(s->pt_fail_why, sizeof(s->pt_fail_why),
			    why[0] != '\0' ? why : "failed");
		return;
	}
	if (s->pt_pooled && s->mode == TX_PASS && !s->pt_waiting &&
	    session_outq_waiting(s) != NULL) {
		log_info("session=%s event=passthrough_stale client=%s "
		    "domain=%s reason=\"%s\"", s->id, s->addr, s->pt_domain,
		    why);
		session_pt_drop(s, 0);
		s->pt_inflight = 0;
		s->pt_mail_sent = 0;
		str_copy(s->pending_domain, sizeof(s->pending_domain),
		    s->pt_domain);
		str_copy(s->pending_key, sizeof(s->pending_key), s->pt_key);
		pt_connect(s, pt_reconnected);
		return;
	}
	log_warn("session=%s event=passthrough_failed client=%s domain=%s "
	    "reason=\"%s\"", s->id, s->addr, s->pt_domain, why);
	if (s->mode == TX_PASS && s->pt_answered == 0 &&
	    session_outq_waiting(s) != NULL) {
		/* Gone before it answered a single RCPT of this transaction:
		 * our client has heard nothing from it, so this is "cannot
		 * be reached at the first RCPT" — down at once, and the
		 * RCPTs waiting are judged in backup mode. */
		primary_health_failed(queue_health(s->srv->queue),
		    s->pt_domain, why, 1);
		session_pt_drop(s, 0);
		s->pt_inflight = 0;
		s->pt_mail_sent = 0;
		s->mode = TX_BACKUP;
		replay_next(s);
		return;
	}
	primary_health_failed(queue_health(s->srv->queue), s->pt_domain, why,
	    0);
	session_pt_drop(s, 0);
	/* Relayed RCPTs still waiting get theirs, in their places. */
	while ((q = session_outq_waiting(s)) != NULL) {
		addr_format(&q->addr, to, sizeof(to));
		q->text = evbuffer_new();
		evbuffer_add_printf(q->text, "451 4.4.2 <%s>: Error: the "
		    "primary mail server failed; try again later\r\n", to);
	}
	s->pt_inflight = 0;
	session_outq_flush(s, 0);
	if (s->state == S_DATA) {
		/* Read on to the client's dot, answer then (data_end): with
		 * s->pt gone, session_pt_data_end() says 451. */
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);
		return;
	}
	if (s->in_tx)
		s->mode = TX_ABORTED;
	if (!waiting)
		return;
	session_reply(s, 451, "4.4.2", "Error: the primary mail server failed "
	    "during this transaction; try again later");
	if (s->state == S_COMMIT) {
		session_tx_reset(s);
		bufferevent_enable(s->bev, EV_READ);
	}
	s->state = S_CMD;
	session_process(s);
}

/*
 * Backup mode for the RCPTs that were waiting for a primary that went
 * away: one after the other, each answer into its own place in the reply
 * queue.
 */
static void
replay_next(struct session *s)
{
	struct outq *q = session_outq_waiting(s);
	const struct domain *dom;
	char to[ADDR_PATH_MAX + 1];

	for (; q != NULL; q = session_outq_waiting(s)) {
		addr_format(&q->addr, to, sizeof(to));
		dom = domains_lookup(s->srv->domains, q->addr.domain);
		if (dom != NULL && queue_space_ok(s->srv->queue))
			break;
		/* Gone from domains_file meanwhile, or no room to store. */
		q->text = evbuffer_new();
		evbuffer_add_printf(q->text, dom == NULL ?
		    "451 4.3.0 <%s>: Error: try again later\r\n" :
		    "452 4.3.1 <%s>: Error: insufficient system storage\r\n",
		    to);
	}
	if (q == NULL) {
		s->state = S_CMD;
		session_outq_flush(s, 0);
		return;
	}
	s->pending_addr = q->addr;
	s->pending_rcpt = q->params;
	s->state = S_POLICY;
	policy_check_rcpt(s->policy, &s->env.sender, &q->addr, dom,
	    POLICY_BACKUP, !s->sender_ok, replay_checked, s);
}

static void
replay_checked(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;
	struct outq *q = session_outq_waiting(s);
	char to[ADDR_PATH_MAX + 1];

	if (q == NULL)
		return;
	addr_format(&q->addr, to, sizeof(to));
	q->text = evbuffer_new();
	if (v->v != VERDICT_ACCEPT) {
		log_info("session=%s event=rcpt client=%s to=<%s> verdict=%s "
		    "code=%d dsn=%s reason=%s", s->id, s->addr, to,
		    v->v == VERDICT_REJECT ? "reject" : "tempfail", v->code,
		    v->enh, v->reason);
		evbuffer_add_printf(q->text, "%d %s %s\r\n", v->code, v->enh,
		    v->text);
	} else {
		s->sender_ok = 1;
		envelope_add_rcpt(&s->env, &q->addr, &q->params);
		log_info("session=%s event=rcpt client=%s to=<%s> "
		    "verdict=accept", s->id, s->addr, to);
		evbuffer_add_printf(q->text, "250 2.1.5 Ok\r\n");
	}
	replay_next(s);
	session_process(s);
}

static void
pt_event(struct client *c, enum client_event ev, void *arg)
{
	struct session *s = arg;
	char why[256];

	if (ev != CLIENT_FAILED)
		return;
	str_copy(why, sizeof(why), client_error(c));
	if (s->mode != TX_PASS && !s->pt_waiting) {
		/* An idle connection between transactions: the primary's
		 * own idle timeout, nothing lost. */
		client_free(c);
		s->pt = NULL;
		return;
	}
	pt_fail(s, why);
	session_process(s);
}

/* Pass-through for this RCPT: the domain's own filters first, if any. */
void
session_pt_rcpt(struct session *s, const struct domain *dom)
{
	s->state = S_POLICY;
	if (dom->passthrough_filters) {
		s->pt_filtering = 1;
		policy_check_rcpt(s->policy, &s->env.sender, &s->pending_addr,
		    dom, POLICY_FILTERED, !s->sender_ok, rcpt_filtered, s);
		return;
	}
	pt_go(s);
}

static void
rcpt_filtered(const struct verdict_info *v, void *arg)
{
	struct session *s = arg;
	char to[ADDR_PATH_MAX + 1], why[sizeof(s->pt_fail_why)];

	s->pt_filtering = 0;
	if (v->v != VERDICT_ACCEPT) {
		s->state = S_CMD;
		addr_format(&s->pending_addr, to, sizeof(to));
		session_refuse(s, "rcpt", "to", to, v);
	} else {
		s->sender_ok = 1;
		if (s->pt_fail_why[0] == '\0')
			pt_go(s);
		else {
			/* The primary failed meanwhile: this RCPT waits
			 * with the others for what that failure decides. */
			s->state = S_CMD;
			session_outq_add(s, &s->pending_addr, &s->pending_rcpt);
		}
	}
	if (s->pt_fail_why[0] != '\0') {
		str_copy(why, sizeof(why), s->pt_fail_why);
		s->pt_fail_why[0] = '\0';
		pt_fail(s, why);
	}
	session_process(s);
}

static void
pt_connected(struct client *c, int reached, const char *why, void *arg)
{
	struct session *s = arg;
	const struct domain *dom;

	s->pt_req = NULL;
	if (c == NULL) {
		/* Cannot be reached at the first RCPT: down at once, and
		 * this transaction goes on in backup mode. */
		log_info("session=%s event=passthrough_unreachable client=%s "
		    "domain=%s reached=%d reason=\"%s\"", s->id, s->addr,
		    s->pending_domain, reached, why);
		primary_health_failed(queue_health(s->srv->queue),
		    s->pending_domain, why, 1);
		s->mode = TX_BACKUP;
		if ((dom = domains_lookup(s->srv->domains,
		    s->pending_domain)) == NULL) {
			/* Gone from domains_file by a reload meanwhile. */
			s->state = S_CMD;
			session_reply(s, 451, "4.3.0", "Error: try again later");
			session_process(s);
			return;
		}
		session_rcpt_backup(s, dom);
		return;
	}
	primary_health_ok(queue_health(s->srv->queue), s->pending_domain);
	pt_attach(s, c, 0);
	pt_send_rcpt(s);
	session_process(s);
}

/* A connection to the pending RCPT's primary becomes the session's. */
static void
pt_attach(struct session *s, struct client *c, int pooled)
{
	s->pt = c;
	s->pt_pooled = pooled;
	client_set_cb(c, pt_event, s);
	str_copy(s->pt_key, sizeof(s->pt_key), s->pending_key);
	str_copy(s->pt_domain, sizeof(s->pt_domain), s->pending_domain);
	log_info("session=%s event=passthrough client=%s domain=%s relay=%s "
	    "pooled=%s", s->id, s->addr, s->pt_domain, client_relay(c),
	    pooled ? "yes" : "no");
}

/* Connect to the pending RCPT's primary; 'cb' gets the outcome. */
static void
pt_connect(struct session *s, primary_connect_cb *cb)
{
	struct client_conf cc;
	unsigned t = s->conf->passthrough_connect_timeout;

	s->state = S_POLICY;
	cc = *primary_client_conf(queue_connector(s->srv->queue));
	cc.connect_timeout = t;
	cc.greeting_timeout = t;
	cc.command_timeout = t;		/* EHLO; commands pass their own */
	cc.data_init_timeout = s->conf->passthrough_reply_timeout;
	cc.data_block_timeout = s->conf->passthrough_reply_timeout;
	cc.data_done_timeout = s->conf->passthrough_reply_timeout;
	s->pt_req = primary_connect(queue_connector(s->srv->queue),
	    s->pending_domain, &cc, cb, s);
}

/*
 * A kept connection failed before its first reply: the primary closed it
 * while it waited in the pool, which says nothing of the primary. Connect
 * afresh and send MAIL and the RCPTs waiting again.
 */
static void
pt_reconnected(struct client *c, int reached, const char *why, void *arg)
{
	struct session *s = arg;
	struct outq *q;

	s->pt_req = NULL;
	if (c == NULL) {
		/* Now it really cannot be reached: backup mode. */
		primary_health_failed(queue_health(s->srv->queue),
		    s->pending_domain, why, 1);
		s->mode = TX_BACKUP;
		replay_next(s);
		session_process(s);
		return;
	}
	primary_health_ok(queue_health(s->srv->queue), s->pending_domain);
	pt_attach(s, c, 0);
	s->state = S_CMD;
	if (pt_send_mail(s) == -1) {
		pt_fail(s, "MAIL could not be sent");
		session_process(s);
		return;
	}
	for (q = s->outq; q != NULL; q = q->next)
		if (q->text == NULL &&
		    pt_cmd_rcpt(s, &q->addr, &q->params) == -1) {
			pt_fail(s, "RCPT could not be sent");
			break;
		}
	session_process(s);
}

/* A connection to this primary, then MAIL (once) and the RCPT. */
static void
pt_go(struct session *s)
{
	struct client *c;

	s->state = S_POLICY;
	if (s->pt != NULL && strcmp(s->pt_key, s->pending_key) == 0) {
		str_copy(s->pt_domain, sizeof(s->pt_domain),
		    s->pending_domain);
		pt_send_rcpt(s);
		return;
	}
	session_pt_drop(s, 1);
	if ((c = primary_pool_take(s->srv->ptpool, s->pending_key)) != NULL) {
		/* A kept connection: no connect, no greeting, no EHLO. */
		pt_attach(s, c, 1);
		pt_send_rcpt(s);
		return;
	}
	pt_connect(s, pt_connected);
}

static void
pt_mail_reply(struct client *c, const struct reply *r, void *arg)
{
	struct session *s = arg;

	if (!passthru_reply_ok(r, 0)) {
		pt_fail(s, "unexpected reply to MAIL");
		session_process(s);
		return;
	}
	s->pt_pooled = 0;	/* alive: what fails now is the primary */
	if (r->code / 100 == 2)
		return;
	/* Refused: every RCPT of this transaction gets this answer (the
	 * primary would only say "need MAIL"). */
	if (s->pt_mail_refusal == NULL)
		s->pt_mail_refusal = xmalloc(sizeof(*r));
	*s->pt_mail_refusal = *r;
}

static void
pt_rcpt_reply(struct client *c, const struct reply *r, void *arg)
{
	struct session *s = arg;
	const struct reply *ans = s->pt_mail_refusal ? s->pt_mail_refusal : r;
	char to[ADDR_PATH_MAX + 1], key[STATE_ADDR_MAX], text[STATE_WHY_MAX];
	struct outq *q = session_outq_waiting(s);
	size_t n;
	const char *t;

	if (q == NULL)
		return;		/* cannot be: one place per RCPT sent */
	if (!passthru_reply_ok(r, 0)) {
		pt_fail(s, "unexpected reply to RCPT");
		session_process(s);
		return;
	}
	s->pt_inflight--;
	s->pt_answered++;
	addr_format(&q->addr, to, sizeof(to));
	if (s->pt_mail_refusal == NULL) {
		/* What the primary said teaches us (learn.h). */
		t = reply_first_text(r, &n);
		snprintf(text, sizeof(text), "%d%s%s %.*s", r->code,
		    r->enh[0] ? " " : "", r->enh, (int)(n < 150 ? n : 150), t);
		learn_key(key, sizeof(key), q->addr.local, q->addr.domain);
		learn_rcpt_answer(s->srv->learn, key, r->code, r->enh, text,
		    STATE_SRC_PASSTHROUGH, time(NULL));
		if (r->code / 100 == 2)
			envelope_add_rcpt(&s->env, &q->addr, &q->params);
	}
	log_info("session=%s event=rcpt client=%s to=<%s> verdict=passthrough "
	    "code=%d dsn=%s", s->id, s->addr, to, ans->code,
	    ans->enh[0] ? ans->enh : "-");
	q->text = evbuffer_new();
	passthru_reply_out(q->text, ans);
	session_outq_flush(s, 0);
	session_process(s);
}

/* MAIL with the client's parameters, those the primary offers. */
static int
pt_send_mail(struct session *s)
{
	char line[ADDR_PATH_MAX + ESMTP_ENVID_MAX * 3 + 128];
	char addr[ADDR_PATH_MAX + 1];

	addr_format(&s->env.sender, addr, sizeof(addr));
	if (esmtp_mail_line(line, sizeof(line), addr, &s->env.params,
	    s->env.params.has_size ? s->env.params.size : 0, 0,
	    pt_ext(s)) == -1 || client_cmd(s->pt, line,
	    s->conf->passthrough_reply_timeout, pt_mail_reply, s) == -1)
		return -1;
	s->pt_mail_sent = 1;
	return 0;
}

/* RCPT with the client's parameters, those the primary offers; its
 * answer comes to pt_rcpt_reply(). -1 when it could not be sent. */
static int
pt_cmd_rcpt(struct session *s, const struct mailaddr *a,
    const struct rcpt_params *p)
{
	char line[ADDR_PATH_MAX + ESMTP_ORCPT_MAX * 3 + 256];
	char addr[ADDR_PATH_MAX + 1];

	addr_format(a, addr, sizeof(addr));
	if (esmtp_rcpt_line(line, sizeof(line), addr, p, pt_ext(s)) == -1 ||
	    client_cmd(s->pt, line, s->conf->passthrough_reply_timeout,
	    pt_rcpt_reply, s) == -1)
		return -1;
	s->pt_inflight++;
	return 0;
}

/*
 * Relay the pending RCPT (and MAIL, the first time). Its reply takes a
 * place in the reply queue and the session reads on: a pipelining client
 * gets its RCPTs pipelined to the primary too when it offers PIPELINING
 * (client.c), and the answers come back in order.
 */
static void
pt_send_rcpt(struct session *s)
{
	char addr[ADDR_PATH_MAX + 1];

	s->mode = TX_PASS;
	s->state = S_CMD;
	if (!s->pt_mail_sent && pt_send_mail(s) == -1) {
		session_reply(s, 451, "4.4.2", "Error: try again later");
		pt_fail(s, "MAIL could not be sent");
		return;
	}
	if (pt_cmd_rcpt(s, &s->pending_addr, &s->pending_rcpt) == -1) {
		/* The primary's command queue is full (a flood of RCPTs)
		 * or the connection is failing: no answer will come. */
		addr_format(&s->pending_addr, addr, sizeof(addr));
		session_reply(s, 451, "4.4.2", "<%s>: Error: try again later",
		    addr);
		return;
	}
	session_outq_add(s, &s->pending_addr, &s->pending_rcpt);
}

static void
pt_rset_reply(struct client *c, const struct reply *r, void *arg)
{
	/* Nothing to tell: our client had its 250 already. */
}

/* RSET from our client: the primary forgets the transaction too. */
void
session_pt_rset(struct session *s)
{
	if (s->pt == NULL || !s->pt_mail_sent)
		return;
	if (client_cmd(s->pt, "RSET", s->conf->passthrough_reply_timeout,
	    pt_rset_reply, s) == -1)
		session_pt_drop(s, 0);
}

void
session_pt_drained(struct client *c, void *arg)
{
	struct session *s = arg;

	client_on_drained(c, NULL, NULL);
	s->pt_paused = 0;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

static void
pt_dot_reply(struct client *c, const struct reply *r, void *arg)
{
	struct session *s = arg;

	if (!passthru_reply_ok(r, 0)) {
		pt_fail(s, "unexpected reply to the end of data");
		return;
	}
	s->pt_waiting = 0;
	log_info("session=%s event=passthrough_done client=%s domain=%s "
	    "size=%llu nrcpt=%zu code=%d dsn=%s", s->id, s->addr,
	    s->pt_domain, (unsigned long long)s->data_bytes, s->env.nrcpt,
	    r->code, r->enh[0] ? r->enh : "-");
	if (r->code / 100 == 2)
		learn_accepted(s->srv->learn, s->pt_domain, "passthrough",
		    time(NULL));
	passthru_reply_out(bufferevent_get_output(s->bev), r);
	session_tx_reset(s);
	s->state = S_CMD;
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

/* The final dot of a relayed message: the primary's answer is ours. */
void
session_pt_data_end(struct session *s)
{
	if (s->pt == NULL) {
		session_reply(s, 451, "4.4.2", "Error: the primary mail server "
		    "failed during this transaction; try again later");
		session_tx_reset(s);
		return;
	}
	s->state = S_COMMIT;
	s->pt_waiting = 1;
	bufferevent_disable(s->bev, EV_READ);
	client_body_end(s->pt, s->conf->passthrough_reply_timeout,
	    pt_dot_reply, s);
}

static void
pt_data_reply(struct client *c, const struct reply *r, void *arg)
{
	struct session *s = arg;
	char hdr[2048];
	size_t n;

	if (!passthru_reply_ok(r, 1)) {
		pt_fail(s, "unexpected reply to DATA");
		return;
	}
	s->pt_waiting = 0;
	s->state = S_CMD;
	passthru_reply_out(bufferevent_get_output(s->bev), r);
	if (r->code != 354) {
		/* Refused: the client hears it, the transaction stays as
		 * on the primary (RSET or QUIT next). */
		session_process(s);
		return;
	}
	if ((n = session_data_begin(s, hdr, sizeof(hdr))) > 0)
		client_body(s->pt, hdr, n);
	session_data_go(s);
	session_process(s);
}

/* DATA relayed: the primary's 354 (or its refusal) is the answer. */
void
session_pt_data(struct session *s)
{
	s->state = S_POLICY;
	s->pt_waiting = 1;
	if (s->pt == NULL || client_cmd(s->pt, "DATA",
	    s->conf->passthrough_reply_timeout, pt_data_reply, s) == -1)
		pt_fail(s, "DATA could not be sent");
}
