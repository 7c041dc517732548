/*
 * relay: the pass-through stage (docs/passthrough.md, relay.h). At the
 * first RCPT for a domain whose primary is up: a connection to it (from
 * the pool, or a new one), MAIL and the RCPTs relayed with their replies
 * kept in order, DATA streamed, the primary's answers verbatim. A primary
 * gone before its first answer sends the transaction to backup mode; one
 * gone after gets 451 4.4.2.
 *
 * Every change of r->state goes through set_state(); every way out of a
 * transaction open on the primary goes through tx_close(); the connection
 * leaves the stage only through conn_release(), which pools it only in
 * RELAY_IDLE.
 */
#include "relay.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "client.h"
#include "config.h"
#include "connect.h"
#include "domains.h"
#include "envelope.h"
#include "esmtp.h"
#include "health.h"
#include "learn.h"
#include "log.h"
#include "passthru.h"
#include "pool.h"
#include "reply.h"
#include "str.h"
#include "xmem.h"

/* A reply in the order of the commands (RFC 2920 §3.1): a relayed RCPT's
 * (text NULL until the primary answers), or one said meanwhile. */
struct place {
	struct place		*next;
	struct evbuffer		*text;
	struct mailaddr		 addr;
	struct rcpt_params	 params;
};

struct relay {
	struct relay_deps	 deps;
	struct envelope		*env;
	const char		*id;
	const char		*client;
	struct relay_cbs	 cbs;
	void			*arg;

	enum relay_state	 state;
	struct client		*c;
	void			*req;		/* connecting */
	unsigned		 pooled:1;	/* kept connection, no reply yet */
	unsigned		 held:1;	/* counted in held_key's
						   passthrough_connection_limit */
	unsigned		 forward:1;	/* the domain's forward_client */
	unsigned		 convert:1;	/* the body goes as 7 bit */
	char			 key[PASSTHRU_KEY_MAX];
	/* This transaction went to backup mode when this primary failed
	 * us: not tried again until the transaction ends ("" none). */
	char			 backup_key[PASSTHRU_KEY_MAX];
	char			 held_key[PASSTHRU_KEY_MAX];
	char			 domain[256];

	struct reply		*mail_refusal;	/* the primary's no to MAIL */
	unsigned		 inflight;	/* RCPTs sent, not answered */
	unsigned		 answered;	/* RCPT answers in this tx */
	unsigned long long	 size;		/* the body's, for the log */
	struct place		*places, **tail;
	size_t			 nplaces;
};

static const char *const state_names[RELAY_NSTATES] = {
	"idle", "connecting", "mail_sent", "rcpt_pending", "data", "body",
	"dot_sent", "rset_sent", "failed",
};

#define B(s)	(1u << (s))
/*
 * The legal transitions. IDLE is reachable from everywhere: the
 * connection dropped, which ends whatever was open on the primary.
 */
static const unsigned legal[RELAY_NSTATES] = {
	[RELAY_IDLE] = B(RELAY_CONNECTING) | B(RELAY_MAIL_SENT),
	[RELAY_CONNECTING] = B(RELAY_MAIL_SENT),
	[RELAY_MAIL_SENT] = B(RELAY_RCPT_PENDING) | B(RELAY_DATA) |
	    B(RELAY_RSET_SENT) | B(RELAY_FAILED) | B(RELAY_CONNECTING),
	[RELAY_RCPT_PENDING] = B(RELAY_MAIL_SENT) | B(RELAY_FAILED) |
	    B(RELAY_CONNECTING),
	[RELAY_DATA] = B(RELAY_BODY) | B(RELAY_MAIL_SENT) | B(RELAY_FAILED),
	[RELAY_BODY] = B(RELAY_DOT_SENT) | B(RELAY_FAILED),
	[RELAY_DOT_SENT] = B(RELAY_FAILED),
	[RELAY_RSET_SENT] = B(RELAY_MAIL_SENT),
	[RELAY_FAILED] = 0,
};

static unsigned illegal_count;

static void	fail(struct relay *, const char *why);
static void	send_waiting(struct relay *);
static void	event_cb(struct client *, enum client_event, void *);

/* --- state ---------------------------------------------------------------- */

static void
set_state(struct relay *r, enum relay_state to)
{
	if (to == r->state)
		return;
	if (to != RELAY_IDLE && !(legal[r->state] & B(to))) {
		illegal_count++;
		log_warn("session=%s event=relay_illegal from=%s to=%s", r->id,
		    state_names[r->state], state_names[to]);
	}
	log_debug("session=%s event=relay from=%s to=%s", r->id,
	    state_names[r->state], state_names[to]);
	r->state = to;
}

enum relay_state
relay_state(const struct relay *r)
{
	return r->state;
}

int
relay_connected(const struct relay *r)
{
	return r->c != NULL;
}

const char *
relay_state_name(enum relay_state s)
{
	return s < RELAY_NSTATES ? state_names[s] : "?";
}

unsigned
relay_illegal_transitions(void)
{
	return illegal_count;
}

/* --- the primary's health: the one place the stage tells primary/health --- */

/*
 * Pass-through for dom now: the primary is up, this transaction has not
 * been sent to backup mode already, and a connection to it is ours or
 * may be opened (passthrough_connection_limit, pool.h): beyond the bound
 * a session is stored, for this transaction only, and nothing is marked
 * down.
 */
int
relay_primary_up(const struct relay *r, const struct domain *dom)
{
	char key[PASSTHRU_KEY_MAX];

	if (!r->deps.conf->passthrough || (r->deps.health != NULL &&
	    !primary_health_up(r->deps.health, dom->name)))
		return 0;
	passthru_key(key, sizeof(key), dom);
	if (strcmp(key, r->backup_key) == 0)
		return 0;
	if (r->held && strcmp(key, r->held_key) == 0)
		return 1;
	if (primary_pool_full(r->deps.pool, key)) {
		log_info("session=%s event=passthrough_limit client=%s domain=%s "
		    "limit=%u", r->id, r->client, dom->name,
		    r->deps.conf->passthrough_connection_limit);
		return 0;
	}
	return 1;
}

/*
 * The primary failed us. A client can provoke that (it filled the
 * primary's per-client limit, it knows the primary drops some MAIL), so
 * it is only a suspicion: the health monitor probes, and only its probe
 * marks the primary down (docs/passthrough.md, "Failures").
 */
static void
primary_failed(struct relay *r, const char *why)
{
	if (r->deps.health != NULL)
		primary_health_suspect(r->deps.health, r->domain, why);
}

/* One connection to the transaction's primary more in our hands: 0 when
 * it has passthrough_connection_limit already. */
static int
hold(struct relay *r)
{
	if (r->held)
		return 1;
	if (!primary_pool_hold(r->deps.pool, r->key))
		return 0;
	str_copy(r->held_key, sizeof(r->held_key), r->key);
	r->held = 1;
	return 1;
}

static void
unhold(struct relay *r)
{
	if (!r->held)
		return;
	primary_pool_unhold(r->deps.pool, r->held_key);
	r->held = 0;
}

static void
primary_ok(struct relay *r)
{
	if (r->deps.health != NULL)
		primary_health_ok(r->deps.health, r->domain);
}

/* --- the reply queue ------------------------------------------------------ */

static struct place *
place_add(struct relay *r, const struct mailaddr *addr,
    const struct rcpt_params *params)
{
	struct place *q = xcalloc(1, sizeof(*q));

	if (addr != NULL) {
		q->addr = *addr;
		q->params = *params;
	} else
		q->text = evbuffer_new();
	if (r->places == NULL)
		r->tail = &r->places;
	*r->tail = q;
	r->tail = &q->next;
	r->nplaces++;
	return q;
}

static struct place *
waiting(const struct relay *r)
{
	struct place *q;

	for (q = r->places; q != NULL; q = q->next)
		if (q->text == NULL)
			return q;
	return NULL;
}

/* Say what is ready at the head; with 'all', also drop the places that
 * will never be answered (the session ends). */
static void
flush(struct relay *r, int all)
{
	struct place *q;

	while ((q = r->places) != NULL && (q->text != NULL || all)) {
		r->places = q->next;
		r->nplaces--;
		if (q->text != NULL) {
			r->cbs.say(q->text, r->arg);
			evbuffer_free(q->text);
		}
		free(q);
	}
}

/* A relayed RCPT's place answered by us: 451 4.4.2 and why. */
static void
fill(struct place *q, const char *why)
{
	char to[ADDR_PATH_MAX + 1];

	addr_format(&q->addr, to, sizeof(to));
	q->text = evbuffer_new();
	evbuffer_add_printf(q->text, "451 4.4.2 <%s>: Error: %s\r\n", to, why);
}

size_t
relay_places(const struct relay *r)
{
	return r->nplaces;
}

struct evbuffer *
relay_reply_place(struct relay *r)
{
	return r->places != NULL ? place_add(r, NULL, NULL)->text : NULL;
}

const struct mailaddr *
relay_waiting(const struct relay *r, const struct rcpt_params **params)
{
	struct place *q = waiting(r);

	if (q == NULL)
		return NULL;
	if (params != NULL)
		*params = &q->params;
	return &q->addr;
}

void
relay_answer(struct relay *r, const char *line)
{
	struct place *q = waiting(r);

	if (q == NULL)
		return;
	q->text = evbuffer_new();
	evbuffer_add_printf(q->text, "%s\r\n", line);
	flush(r, 0);
}

void
relay_hold(struct relay *r, const struct mailaddr *addr,
    const struct rcpt_params *params)
{
	place_add(r, addr, params);
}

/* --- the connection ------------------------------------------------------- */

/*
 * The connection leaves the stage: into the pool only when nothing is
 * open on the primary (RELAY_IDLE) and nothing waits on the wire; QUIT
 * when the primary is between commands (its transaction, if any, ends
 * with it); dropped otherwise, which aborts whatever was open.
 */
static void
conn_release(struct relay *r, int polite)
{
	if (r->req != NULL) {
		if (r->deps.cancel != NULL)
			r->deps.cancel(r->req, r->deps.connect_arg);
		else
			primary_connect_cancel(r->req);
		r->req = NULL;
	}
	unhold(r);
	if (r->c == NULL)
		return;
	if (polite && r->state == RELAY_IDLE && client_idle(r->c))
		primary_pool_put(r->deps.pool, r->key, r->c);
	else if (polite && (r->state == RELAY_IDLE ||
	    r->state == RELAY_MAIL_SENT))
		client_quit(r->c);
	else
		client_free(r->c);
	r->c = NULL;
	r->pooled = 0;
	r->inflight = 0;
}

/* What the transaction knew of the primary's answers. */
static void
tx_forget(struct relay *r)
{
	r->answered = 0;
	free(r->mail_refusal);
	r->mail_refusal = NULL;
}

static void
rset_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;

	if (rp->code / 100 != 2) {
		/* The primary's state is unknown now: no pooling. */
		fail(r, "unexpected reply to RSET");
		r->cbs.process(r->arg);
		return;
	}
	if (r->state == RELAY_RSET_SENT)
		set_state(r, RELAY_IDLE);
}

/*
 * The one way out of a transaction open on the primary: RSET when it is
 * between commands (the connection may be pooled once its 250 came),
 * else the connection dropped. Nothing open: nothing to do.
 */
static void
tx_close(struct relay *r)
{
	tx_forget(r);
	switch (r->state) {
	case RELAY_IDLE:
	case RELAY_RSET_SENT:
		return;
	case RELAY_FAILED:
	case RELAY_CONNECTING:
		conn_release(r, 0);
		set_state(r, RELAY_IDLE);
		return;
	case RELAY_MAIL_SENT:
		if (client_cmd(r->c, "RSET", r->deps.conf->
		    passthrough_reply_timeout, rset_reply, r) == 0) {
			set_state(r, RELAY_RSET_SENT);
			return;
		}
		break;
	default:
		/* A command or the body in flight: RSET cannot go now. */
		break;
	}
	conn_release(r, 0);
	set_state(r, RELAY_IDLE);
}

/* The EHLO keywords of the primary that MAIL and RCPT parameters need. */
static unsigned
ext(struct relay *r)
{
	return (client_has_ext(r->c, "SIZE") ? ESMTP_EXT_SIZE : 0) |
	    (client_has_ext(r->c, "8BITMIME") ? ESMTP_EXT_8BITMIME : 0) |
	    (client_has_ext(r->c, "SMTPUTF8") ? ESMTP_EXT_SMTPUTF8 : 0) |
	    (client_has_ext(r->c, "DSN") ? ESMTP_EXT_DSN : 0);
}

/* A connection to the transaction's primary becomes the stage's. */
static void
attach(struct relay *r, struct client *c, int pooled)
{
	r->c = c;
	r->pooled = pooled;
	client_set_cb(c, event_cb, r);
	/* Held by a session: a sender may pause up to smtpd_timeout
	 * between commands (RFC 5321 §4.5.3.2.7 gives it 5 minutes), and
	 * the session's own timer ends a silent one. The connect timeout
	 * as the idle limit dropped the primary under a slow sender's
	 * open transaction: 451 for the rest of it, and a probe. */
	client_set_idle_timeout(c, r->deps.conf->smtpd_timeout);
	log_info("session=%s event=passthrough client=%s domain=%s relay=%s "
	    "pooled=%s", r->id, r->client, r->domain, client_relay(c),
	    pooled ? "yes" : "no");
}

static void
connected(struct client *c, int reached, const char *why, void *arg)
{
	struct relay *r = arg;

	r->req = NULL;
	if (c == NULL) {
		/* Cannot be reached at the first RCPT: the waiting RCPTs and
		 * the rest of the transaction are judged in backup mode, and
		 * the probe says whether the primary is down. */
		log_info("session=%s event=passthrough_unreachable client=%s "
		    "domain=%s reached=%d reason=\"%s\"", r->id, r->client,
		    r->domain, reached, why);
		unhold(r);
		if (reached >= 0)	/* -1: out of descriptors here */
			primary_failed(r, why);
		set_state(r, RELAY_IDLE);
		tx_forget(r);
		str_copy(r->backup_key, sizeof(r->backup_key), r->key);
		r->cbs.backup(r->arg);
		r->cbs.process(r->arg);
		return;
	}
	primary_ok(r);
	attach(r, c, 0);
	send_waiting(r);
	r->cbs.process(r->arg);
}

/* Connect to the transaction's primary: passthrough_connect_timeout for
 * the connection, greeting and EHLO, passthrough_reply_timeout for each
 * reply after. */
static void
start_connect(struct relay *r)
{
	struct client_conf cc;
	unsigned t = r->deps.conf->passthrough_connect_timeout;

	memset(&cc, 0, sizeof(cc));
	cc.helo_name = r->deps.conf->myhostname;
	if (r->deps.connector != NULL)
		cc = *primary_client_conf(r->deps.connector);
	cc.connect_timeout = t;
	cc.greeting_timeout = t;
	cc.command_timeout = t;		/* EHLO; commands pass their own */
	cc.data_init_timeout = r->deps.conf->passthrough_reply_timeout;
	cc.data_block_timeout = r->deps.conf->passthrough_reply_timeout;
	cc.data_done_timeout = r->deps.conf->passthrough_reply_timeout;
	set_state(r, RELAY_CONNECTING);
	if (r->deps.connect != NULL)
		r->req = r->deps.connect(r->domain, &cc, connected, r,
		    r->deps.connect_arg);
	else
		r->req = primary_connect(r->deps.connector, r->domain, &cc,
		    connected, r);
}

/* --- MAIL and RCPT ----------------------------------------------------- */

static void
mail_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;

	if (!passthru_reply_ok(rp, 0)) {
		fail(r, "unexpected reply to MAIL");
		r->cbs.process(r->arg);
		return;
	}
	r->pooled = 0;		/* alive: what fails now is the primary */
	if (rp->code / 100 == 2)
		return;
	/* Refused: every RCPT of this transaction gets this answer (the
	 * primary would only say "need MAIL"). */
	if (r->mail_refusal == NULL)
		r->mail_refusal = xmalloc(sizeof(*rp));
	*r->mail_refusal = *rp;
}

static void
rcpt_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;
	const struct reply *ans = r->mail_refusal ? r->mail_refusal : rp;
	char to[ADDR_PATH_MAX + 1], key[STATE_ADDR_MAX], text[STATE_WHY_MAX];
	char la[LOG_PATH_SIZE];
	struct place *q = waiting(r);
	size_t n;
	const char *t;

	if (q == NULL)
		return;		/* cannot be: one place per RCPT sent */
	if (!passthru_reply_ok(rp, 0)) {
		fail(r, "unexpected reply to RCPT");
		r->cbs.process(r->arg);
		return;
	}
	r->inflight--;
	r->answered++;
	addr_format(&q->addr, to, sizeof(to));
	if (r->mail_refusal == NULL) {
		/* What the primary said teaches us (learn.h). */
		t = reply_first_text(rp, &n);
		snprintf(text, sizeof(text), "%d%s%s %.*s", rp->code,
		    rp->enh[0] ? " " : "", rp->enh, (int)(n < 150 ? n : 150),
		    t);
		learn_key(key, sizeof(key), q->addr.local, q->addr.domain);
		if (r->deps.learn != NULL)
			learn_rcpt_answer(r->deps.learn, key, rp->code, rp->enh,
			    text, STATE_SRC_PASSTHROUGH, time(NULL));
		if (rp->code / 100 == 2)
			envelope_add_rcpt(r->env, &q->addr, &q->params);
	}
	log_info("session=%s event=rcpt client=%s to=%s verdict=passthrough "
	    "code=%d dsn=%s", r->id, r->client,
	    log_path(la, sizeof(la), to), ans->code,
	    ans->enh[0] ? ans->enh : "-");
	q->text = evbuffer_new();
	passthru_reply_out(q->text, ans);
	if (r->inflight == 0 && r->state == RELAY_RCPT_PENDING)
		set_state(r, RELAY_MAIL_SENT);
	flush(r, 0);
	r->cbs.process(r->arg);
}

static void
xforward_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;

	/* Refused (backmx not in smtpd_authorized_xforward_hosts): the
	 * mail goes on, the primary sees backmx as the client. */
	if (rp->code / 100 != 2)
		log_warn("session=%s event=xforward_refused domain=%s code=%d",
		    r->id, r->domain, rp->code);
}

/*
 * forward_client=yes and the primary offers XFORWARD (Postfix,
 * XFORWARD_README): who the client really is, before each MAIL (Postfix
 * forgets the attributes when a transaction ends), so that the
 * primary's own address checks, SPF and logs see the client, not
 * backmx. NAME is [UNAVAILABLE]: backmx does not look the client's name
 * up. Values are xtext (RFC 3461), the line under 512 octets. 0, or -1
 * when it could not be sent.
 */
static int
send_xforward(struct relay *r)
{
	char line[512], addr[200], helo[300];
	const char *a = r->client;

	if (!r->forward || !client_has_ext(r->c, "XFORWARD"))
		return 0;
	if (esmtp_xtext_encode(a, strlen(a), addr, sizeof(addr)) == -1 ||
	    esmtp_xtext_encode(r->env->helo, strlen(r->env->helo), helo,
	    sizeof(helo)) == -1)
		return 0;	/* cannot be: both are short */
	if ((size_t)snprintf(line, sizeof(line), "XFORWARD NAME=[UNAVAILABLE] "
	    "ADDR=%s%s%s%s", strchr(a, ':') != NULL ? "IPV6:" : "", addr,
	    helo[0] ? " HELO=" : "", helo) >= sizeof(line))
		return 0;
	return client_cmd(r->c, line, r->deps.conf->passthrough_reply_timeout,
	    xforward_reply, r);
}

/* MAIL with the client's parameters, those the primary offers. */
static int
send_mail(struct relay *r)
{
	char line[ADDR_PATH_MAX + ESMTP_ENVID_MAX * 3 + 128];
	char addr[ADDR_PATH_MAX + 1];

	addr_format(&r->env->sender, addr, sizeof(addr));
	if (send_xforward(r) == -1)
		return -1;
	if (esmtp_mail_line(line, sizeof(line), addr, &r->env->params,
	    r->env->params.has_size ? r->env->params.size : 0, 0,
	    ext(r)) == -1 || client_cmd(r->c, line,
	    r->deps.conf->passthrough_reply_timeout, mail_reply, r) == -1)
		return -1;
	set_state(r, RELAY_MAIL_SENT);
	return 0;
}

/* RCPT with the client's parameters, those the primary offers; its
 * answer comes to rcpt_reply(). When it cannot be sent (the primary's
 * command queue is full, the connection failing) its place says 451. */
static void
send_rcpt(struct relay *r, struct place *q)
{
	char line[ADDR_PATH_MAX + ESMTP_ORCPT_MAX * 3 + 256];
	char addr[ADDR_PATH_MAX + 1];

	addr_format(&q->addr, addr, sizeof(addr));
	if (esmtp_rcpt_line(line, sizeof(line), addr, &q->params,
	    ext(r)) == -1 || client_cmd(r->c, line,
	    r->deps.conf->passthrough_reply_timeout, rcpt_reply, r) == -1) {
		fill(q, "try again later");
		flush(r, 0);
		return;
	}
	r->inflight++;
	set_state(r, RELAY_RCPT_PENDING);
}

/*
 * The transaction needs what the primary did not offer: SMTPUTF8 (the
 * client gave it on MAIL: RFC 6531 §3.4, it says so only when the
 * envelope or the headers need it), or 8BITMIME for a body the client
 * declared 8-bit (BODY=8BITMIME) -- backmx does not convert to 7 bit.
 * Nothing of it is sent (RFC 6531 §3.2, RFC 6152 §3); every RCPT
 * waiting gets 553 from us: permanent, the primary's EHLO was just
 * read, a retry would meet the same (docs/smtp.md, "International
 * mail"). Nothing is open on the primary.
 */
static void
refuse_unoffered(struct relay *r, const char *enh, const char *ext,
    const char *reason)
{
	char to[ADDR_PATH_MAX + 1], la[LOG_PATH_SIZE];
	struct place *q;

	if (r->state == RELAY_CONNECTING)
		set_state(r, RELAY_IDLE);
	while ((q = waiting(r)) != NULL) {
		addr_format(&q->addr, to, sizeof(to));
		log_info("session=%s event=rcpt client=%s to=%s "
		    "verdict=passthrough code=553 dsn=%s reason=%s relay=%s",
		    r->id, r->client, log_path(la, sizeof(la), to), enh,
		    reason, client_relay(r->c));
		q->text = evbuffer_new();
		evbuffer_add_printf(q->text, "553 %s <%s>: Error: the "
		    "primary mail server does not support %s\r\n", enh, to,
		    ext);
	}
	flush(r, 0);
}

/* Connected (or reconnected): MAIL, then every RCPT waiting. */
static void
send_waiting(struct relay *r)
{
	struct place *q, *next;

	if (r->env->params.smtputf8 && !client_has_ext(r->c, "SMTPUTF8")) {
		refuse_unoffered(r, "5.6.7", "SMTPUTF8",
		    "primary_without_smtputf8");
		return;
	}
	if (send_mail(r) == -1) {
		/* From CONNECTING the table has no FAILED: MAIL_SENT first
		 * is what the primary will see of it anyway. */
		set_state(r, RELAY_MAIL_SENT);
		fail(r, "MAIL could not be sent");
		return;
	}
	for (q = r->places; q != NULL; q = next) {
		next = q->next;
		if (q->text == NULL)
			send_rcpt(r, q);
	}
}

void
relay_rcpt(struct relay *r, const struct domain *dom,
    const struct mailaddr *addr, const struct rcpt_params *params)
{
	struct place *q = place_add(r, addr, params);
	char key[PASSTHRU_KEY_MAX];
	struct client *c;

	switch (r->state) {
	case RELAY_CONNECTING:
		return;		/* sent once connected */
	case RELAY_FAILED:
	case RELAY_DATA:
	case RELAY_BODY:
	case RELAY_DOT_SENT:
		/* The session does not relay a RCPT now. */
		fill(q, "try again later");
		flush(r, 0);
		return;
	case RELAY_MAIL_SENT:
	case RELAY_RCPT_PENDING:
		send_rcpt(r, q);
		return;
	case RELAY_IDLE:
	case RELAY_RSET_SENT:
	case RELAY_NSTATES:
		break;
	}
	/* A new transaction: its primary's connection, then MAIL. */
	passthru_key(key, sizeof(key), dom);
	if (r->c != NULL && strcmp(key, r->key) != 0) {
		conn_release(r, 1);
		set_state(r, RELAY_IDLE);
	}
	str_copy(r->key, sizeof(r->key), key);
	str_copy(r->domain, sizeof(r->domain), dom->name);
	r->forward = dom->forward_client;
	tx_forget(r);
	if (r->c == NULL) {
		if (!hold(r)) {
			/* The bound was free when the mode was chosen
			 * (relay_primary_up) and filled during this RCPT's
			 * checks: this RCPT only, try again. */
			fill(q, "too many connections to the primary mail "
			    "server; try again later");
			flush(r, 0);
			return;
		}
		if ((c = primary_pool_take(r->deps.pool, r->key)) == NULL) {
			start_connect(r);
			return;
		}
		/* A kept connection: no connect, no greeting, no EHLO. */
		attach(r, c, 1);
	}
	send_waiting(r);
}

int
relay_same_primary(const struct relay *r, const struct domain *dom)
{
	char key[PASSTHRU_KEY_MAX];

	passthru_key(key, sizeof(key), dom);
	return strcmp(key, r->key) == 0;
}

/* --- failures ----------------------------------------------------------- */

/*
 * The connection failed (a drop, a timeout, garbage, a command that could
 * not be sent). Between transactions: nothing lost. A kept connection
 * before its first reply: stale, connect afresh. Before any RCPT was
 * answered: down, backup mode. After: 451 4.4.2 (doubt is 4xx); nothing
 * was queued and, without its final dot, nothing was delivered.
 */
static void
fail(struct relay *r, const char *why)
{
	enum relay_state was = r->state;
	struct place *q;

	if (was == RELAY_IDLE || was == RELAY_RSET_SENT ||
	    was == RELAY_FAILED) {
		/* Nothing open: the primary's own idle timeout, or the RSET
		 * that closed a transaction; nothing lost. */
		conn_release(r, 0);
		set_state(r, RELAY_IDLE);
		return;
	}
	if (r->pooled && (was == RELAY_MAIL_SENT ||
	    was == RELAY_RCPT_PENDING) && waiting(r) != NULL) {
		log_info("session=%s event=passthrough_stale client=%s "
		    "domain=%s reason=\"%s\"", r->id, r->client, r->domain,
		    why);
		conn_release(r, 0);
		tx_forget(r);
		if (hold(r)) {
			start_connect(r);
			return;
		}
		/* Others took the bound meanwhile: backup mode. */
		set_state(r, RELAY_IDLE);
		str_copy(r->backup_key, sizeof(r->backup_key), r->key);
		r->cbs.backup(r->arg);
		return;
	}
	log_warn("session=%s event=passthrough_failed client=%s domain=%s "
	    "reason=\"%s\"", r->id, r->client, r->domain, why);
	if ((was == RELAY_MAIL_SENT || was == RELAY_RCPT_PENDING) &&
	    r->answered == 0 && waiting(r) != NULL) {
		/* Gone before it answered a single RCPT of this transaction:
		 * our client has heard nothing from it, so this is "cannot
		 * be reached at the first RCPT". */
		primary_failed(r, why);
		conn_release(r, 0);
		set_state(r, RELAY_IDLE);
		tx_forget(r);
		str_copy(r->backup_key, sizeof(r->backup_key), r->key);
		r->cbs.backup(r->arg);
		return;
	}
	primary_failed(r, why);
	conn_release(r, 0);
	set_state(r, RELAY_FAILED);
	/* Relayed RCPTs still waiting get theirs, in their places. */
	while ((q = waiting(r)) != NULL)
		fill(q, "the primary mail server failed; try again later");
	flush(r, 0);
	r->cbs.failed(was, r->arg);
}

static void
event_cb(struct client *c, enum client_event ev, void *arg)
{
	struct relay *r = arg;
	char why[256];

	if (ev != CLIENT_FAILED)
		return;
	str_copy(why, sizeof(why), client_error(c));
	fail(r, why);
	r->cbs.process(r->arg);
}

/* --- DATA, the body, the dot ---------------------------------------------- */

static void
data_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *out;

	if (!passthru_reply_ok(rp, 1)) {
		fail(r, "unexpected reply to DATA");
		r->cbs.process(r->arg);
		return;
	}
	out = evbuffer_new();
	passthru_reply_out(out, rp);
	r->cbs.say(out, r->arg);
	evbuffer_free(out);
	/* Refused: the transaction stays open on the primary as on ours
	 * (RSET, EHLO or QUIT next: tx_close). */
	set_state(r, rp->code == 354 ? RELAY_BODY : RELAY_MAIL_SENT);
	/* A body declared 8 bit, a primary without 8BITMIME: 7 bit on the
	 * way (RFC 6152 §3, docs/smtp.md "International mail"). */
	r->convert = rp->code == 354 && r->env->params.body ==
	    ESMTP_BODY_8BITMIME && !client_has_ext(c, "8BITMIME");
	if (r->convert)
		client_body_convert(c);
	r->cbs.data_answered(rp->code == 354, r->arg);
	r->cbs.process(r->arg);
}

/* The session asked for DATA or the dot in a state that cannot take it:
 * its command gets 451 through the failed callback. */
static void
refuse(struct relay *r, enum relay_state as)
{
	log_warn("session=%s event=relay_illegal cmd=%s state=%s", r->id,
	    state_names[as], state_names[r->state]);
	illegal_count++;
	conn_release(r, 0);
	set_state(r, RELAY_FAILED);
	r->cbs.failed(as, r->arg);
}

void
relay_data(struct relay *r)
{
	if (r->state != RELAY_MAIL_SENT) {
		refuse(r, RELAY_DATA);
		return;
	}
	set_state(r, RELAY_DATA);
	if (client_cmd(r->c, "DATA", r->deps.conf->passthrough_reply_timeout,
	    data_reply, r) == -1)
		fail(r, "DATA could not be sent");
}

void
relay_body(struct relay *r, const char *buf, size_t len)
{
	const char *why;

	if (r->state != RELAY_BODY)
		return;
	/* 8-bit bytes the client did not declare (RFC 6152 §3 is its
	 * rule) to a primary without 8BITMIME are never sent; a declared
	 * body that cannot be made 7 bit (mime7.h) neither. Dropping the
	 * connection aborts the primary's transaction; the client's dot
	 * gets 451 (docs/smtp.md, "International mail"). Not the
	 * primary's failure: its health is left alone. */
	why = NULL;
	if (!r->convert && !client_has_ext(r->c, "8BITMIME") &&
	    str_has_8bit(buf, len))
		why = "undeclared 8-bit body, primary without 8BITMIME";
	if (why == NULL && client_body(r->c, buf, len) == -1)
		why = client_body_error(r->c);
	if (why != NULL) {
		log_warn("session=%s event=passthrough_failed client=%s "
		    "domain=%s reason=\"%s\"", r->id, r->client, r->domain,
		    why);
		conn_release(r, 0);
		set_state(r, RELAY_FAILED);
		r->cbs.failed(RELAY_BODY, r->arg);
	}
}

static void
drained(struct client *c, void *arg)
{
	struct relay *r = arg;

	client_on_drained(c, NULL, NULL);
	r->cbs.resume(r->arg);
}

int
relay_pause(struct relay *r)
{
	if (r->state != RELAY_BODY ||
	    client_pending_out(r->c) <= RELAY_OUT_MAX)
		return 0;
	client_on_drained(r->c, drained, r);
	return 1;
}

static void
dot_reply(struct client *c, const struct reply *rp, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *out;

	if (!passthru_reply_ok(rp, 0)) {
		fail(r, "unexpected reply to the end of data");
		r->cbs.process(r->arg);
		return;
	}
	log_info("session=%s event=passthrough_done client=%s domain=%s "
	    "size=%llu nrcpt=%zu code=%d dsn=%s", r->id, r->client,
	    r->domain, r->size,
	    r->env->nrcpt, rp->code, rp->enh[0] ? rp->enh : "-");
	if (rp->code / 100 == 2 && r->deps.learn != NULL)
		learn_accepted(r->deps.learn, r->domain, "passthrough",
		    time(NULL));
	out = evbuffer_new();
	passthru_reply_out(out, rp);
	r->cbs.say(out, r->arg);
	evbuffer_free(out);
	/* The primary reset itself after the dot. */
	tx_forget(r);
	set_state(r, RELAY_IDLE);
	r->cbs.done(rp->code / 100 == 2, r->arg);
	r->cbs.process(r->arg);
}

void
relay_dot(struct relay *r, unsigned long long size)
{
	r->size = size;
	if (r->state != RELAY_BODY) {
		refuse(r, RELAY_DOT_SENT);
		return;
	}
	set_state(r, RELAY_DOT_SENT);
	/* The dot gets what RFC 5321 §4.5.3.2.6 gives it, as delivery
	 * does (smtp_data_done_timeout, 10 minutes), not the 4 minutes
	 * kept under a sender's RCPT limit: a primary that scans before
	 * it answers took the message while the sender heard 451, and
	 * every retry was delivered again. */
	client_body_end(r->c, r->deps.conf->smtp_data_done_timeout,
	    dot_reply, r);
}

void
relay_abort(struct relay *r)
{
	/* No dot: dropping the connection aborts the primary's
	 * transaction. */
	conn_release(r, 0);
	tx_forget(r);
	set_state(r, RELAY_IDLE);
}

/* --- the session's end ------------------------------------------------ */

void
relay_reset(struct relay *r)
{
	r->backup_key[0] = '\0';
	if (waiting(r) != NULL)
		log_warn("session=%s event=relay_illegal reset with RCPTs "
		    "waiting", r->id);
	tx_close(r);
}

void
relay_close(struct relay *r)
{
	flush(r, 1);
	if (r->state == RELAY_CONNECTING || r->state == RELAY_FAILED) {
		conn_release(r, 0);
		set_state(r, RELAY_IDLE);
	}
	/* QUIT ends an open transaction on the primary too; in IDLE the
	 * connection may be pooled. */
	conn_release(r, r->state == RELAY_IDLE ||
	    r->state == RELAY_MAIL_SENT);
	tx_forget(r);
	set_state(r, RELAY_IDLE);
}

struct relay *
relay_new(const struct relay_deps *deps, struct envelope *env,
    const char *id, const char *client, const struct relay_cbs *cbs,
    void *arg)
{
	struct relay *r = xcalloc(1, sizeof(*r));

	r->deps = *deps;
	r->env = env;
	r->id = id;
	r->client = client;
	r->cbs = *cbs;
	r->arg = arg;
	r->state = RELAY_IDLE;
	return r;
}

void
relay_free(struct relay *r)
{
	struct place *q;

	if (r == NULL)
		return;
	conn_release(r, 0);
	while ((q = r->places) != NULL) {
		r->places = q->next;
		if (q->text != NULL)
			evbuffer_free(q->text);
		free(q);
	}
	tx_forget(r);
	free(r);
}
