/*
 * Unit tests for relay.c, the pass-through stage: every state, and in
 * each the session resetting its transaction (what EHLO, HELO, RSET and
 * STARTTLS do: relay_reset), the session ending (QUIT or its timeout:
 * relay_close), and the primary dropping the connection. The stage runs
 * for real: the real SMTP client (client.c) on loopback against the
 * scripted server of tests/unit/smtpsrv.h as a primary (it answers a
 * nested MAIL as Postfix does), on one event_base. Asserted each time:
 * the state after, what the session is told to say, what the primary
 * received, and what went to the pool.
 * Only the connect step is the test's (client_connect to the scripted
 * primary instead of deliver.c's MX lookup); no primary health is kept.
 */
#include "relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "domains.h"
#include "envelope.h"
#include "passthru.h"
#include "pool.h"
#include "smtpsrv.h"

/* --- the primary: the shared scripted server, answering by verb --------- */

static struct event_base *base;
static struct smtpsrv P;

/* The primary drops every connection now. */
static void
p_drop_all(void)
{
	smtpsrv_drop_all(&P);
}

static int
p_saw(const char *s)
{
	return smtpsrv_saw(&P, s);
}

/* How many logged lines start with s ("1:RCPT"). */
static int
p_count(const char *s)
{
	return smtpsrv_count(&P, s);
}

/* --- the connect step: client_connect to the scripted primary ----------- */

struct dial {
	struct client		*c;
	relay_connected_cb	*cb;
	void			*cbarg;
};

static int port;
static int dials;

static void
dial_event(struct client *c, enum client_event ev, void *arg)
{
	struct dial *d = arg;
	relay_connected_cb *cb = d->cb;
	void *cbarg = d->cbarg;

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
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	d->cb = cb;
	d->cbarg = cbarg;
	dials++;
	d->c = client_connect(base, cc, (struct sockaddr *)&sin, sizeof(sin),
	    "primary", 0, dial_event, d);
	assert_non_null(d->c);
	return d;
}

static void
dial_cancel(void *h, void *arg)
{
	struct dial *d = h;

	client_free(d->c);
	free(d);
}

/* --- the session's side -------------------------------------------------- */

struct sess {
	char		said[4096];
	size_t		saidlen;
	int		backups, failed, dones, datas, resumes;
	enum relay_state failed_was;
	int		data_go;
};

static struct sess S;

static void
s_say(struct evbuffer *b, void *arg)
{
	size_t n = evbuffer_get_length(b);

	assert_true(S.saidlen + n < sizeof(S.said));
	evbuffer_remove(b, S.said + S.saidlen, n);
	S.saidlen += n;
	S.said[S.saidlen] = '\0';
}

static void
s_backup(void *arg)
{
	struct relay *r = *(struct relay **)arg;

	S.backups++;
	/* What backup mode would answer, one by one. */
	while (relay_waiting(r, NULL) != NULL)
		relay_answer(r, "450 4.1.1 backup");
}

static void
s_failed(enum relay_state was, void *arg)
{
	S.failed++;
	S.failed_was = was;
}

static void
s_data(int go, void *arg)
{
	S.datas++;
	S.data_go = go;
}

static void s_done(int delivered, void *arg) { S.dones++; }
static void s_resume(void *arg) { S.resumes++; }
static void s_process(void *arg) { }

static const struct relay_cbs cbs = {
	s_say, s_backup, s_failed, s_data, s_done, s_resume, s_process,
};

/* --- the fixture --------------------------------------------------------- */

static struct config conf;
static struct primary_pool *pool;
static struct domain dom;
static struct envelope env;
static struct relay *R, *R2;
static struct mailaddr rcpt;
static struct rcpt_params rparams;

static void
watchdog(evutil_socket_t fd, short what, void *arg)
{
	fail_msg("a test waited 5 s for the loop");
}

/* Run the loop until cond() or 5 s (a hang is a failure, not a wait). */
static void
run_until(int (*cond)(void))
{
	struct event *wd = evtimer_new(base, watchdog, NULL);
	struct timeval tv = { 5, 0 };

	evtimer_add(wd, &tv);
	while (!cond())
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wd);
}

static enum relay_state want;
static int in_want(void) { return relay_state(R) == want; }
static void
run_to(enum relay_state s)
{
	want = s;
	run_until(in_want);
}

static const char *want_line;
static int want_count;
static int saw_line(void) { return p_count(want_line) >= want_count; }
/* Until the primary read its n-th line starting with s. */
static void
run_to_nth(const char *s, int n)
{
	want_line = s;
	want_count = n;
	run_until(saw_line);
}
#define run_to_line(s)	run_to_nth((s), 1)
static int idle_unheld(void) { return !relay_connected(R); }

static int primary_closed(void) { return P.closed > 0; }

static int
setup(void **state)
{
	struct relay_deps deps;

	base = event_base_new();
	smtpsrv_start_primary(&P, base);
	port = P.port;
	dials = 0;
	memset(&S, 0, sizeof(S));
	config_defaults(&conf);
	conf.passthrough = 1;
	conf.passthrough_connect_timeout = 5;
	conf.passthrough_reply_timeout = 5;
	conf.passthrough_pool_size = 2;
	pool = primary_pool_new(&conf);
	memset(&dom, 0, sizeof(dom));
	strcpy(dom.name, "customer.example");
	envelope_init(&env);
	memset(&env.sender, 0, sizeof(env.sender));
	strcpy(env.sender.local, "a");
	strcpy(env.sender.domain, "sender.example");
	memset(&rcpt, 0, sizeof(rcpt));
	strcpy(rcpt.local, "u");
	strcpy(rcpt.domain, "customer.example");
	memset(&rparams, 0, sizeof(rparams));
	memset(&deps, 0, sizeof(deps));
	deps.conf = &conf;
	deps.pool = pool;
	deps.connect = dial;
	deps.cancel = dial_cancel;
	R = relay_new(&deps, &env, "t1", "127.0.0.1", &cbs, &R);
	R2 = relay_new(&deps, &env, "t2", "127.0.0.1", &cbs, &R2);
	return 0;
}

static int
teardown(void **state)
{
	relay_free(R);
	relay_free(R2);
	primary_pool_free(pool);
	envelope_free(&env);
	smtpsrv_stop(&P);
	event_base_free(base);
	assert_int_equal(relay_illegal_transitions(), 0);
	return 0;
}

/* --- getting into each state ---------------------------------------------- */

/* MAIL and one RCPT answered: a transaction open on the primary. */
static void
to_mail_sent(void)
{
	relay_rcpt(R, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R), RELAY_CONNECTING);
	run_to(RELAY_MAIL_SENT);
	assert_string_equal(S.said, "250 2.1.5 ok\r\n");
	assert_int_equal(relay_places(R), 0);
	assert_true(p_saw("1:MAIL FROM:<a@sender.example>"));
	assert_true(p_saw("1:RCPT TO:<u@customer.example>"));
	S.saidlen = 0;
	S.said[0] = '\0';
}

static void
to_body(void)
{
	to_mail_sent();
	relay_data(R);
	assert_int_equal(relay_state(R), RELAY_DATA);
	run_to(RELAY_BODY);
	assert_int_equal(S.datas, 1);
	assert_int_equal(S.data_go, 1);
	assert_string_equal(S.said, "354 go ahead\r\n");
	relay_body(R, "Subject: x\r\n\r\nhi\r\n", 18);
}

/* A whole transaction: the connection is idle again, nothing open. */
static void
to_idle_connected(void)
{
	to_body();
	relay_dot(R, 18);
	assert_int_equal(relay_state(R), RELAY_DOT_SENT);
	run_to(RELAY_IDLE);
	assert_int_equal(S.dones, 1);
	assert_true(p_saw("1:."));
	S.saidlen = 0;
	S.said[0] = '\0';
}

/* After the session is gone: a second relay takes the pooled connection
 * (if any) and its transaction must get 250, never the 503 of a MAIL
 * nested in one left open. */
static void
next_session_works(void)
{
	S.saidlen = 0;
	relay_rcpt(R2, &dom, &rcpt, &rparams);
	want = RELAY_MAIL_SENT;
	while (relay_state(R2) != RELAY_MAIL_SENT)
		event_base_loop(base, EVLOOP_ONCE);
	assert_string_equal(S.said, "250 2.1.5 ok\r\n");
	assert_int_equal(P.nested, 0);
}

/* --- reset (EHLO, HELO, RSET, STARTTLS) in each state --------------------- */

static void
reset_idle(void **state)
{
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(P.loglen, 0);
	to_idle_connected();
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_false(p_saw("RSET"));	/* nothing open: nothing to say */
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 1);
	next_session_works();
	assert_int_equal(dials, 1);	/* the kept connection served */
}

static void
reset_connecting(void **state)
{
	relay_rcpt(R, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R), RELAY_CONNECTING);
	relay_close(R);		/* the only way out while connecting */
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(primary_pool_count(pool), 0);
	assert_string_equal(S.said, "");
}

static void
reset_mail_sent(void **state)
{
	to_mail_sent();
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_RSET_SENT);
	run_to(RELAY_IDLE);	/* only RSET's 250 makes it idle */
	assert_true(p_saw("1:RSET"));
	assert_int_equal(P.conns[0].open, 0);
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 1);
	assert_false(p_saw("QUIT"));
	next_session_works();
	assert_int_equal(dials, 1);
}

static void
reset_rset_sent_then_close(void **state)
{
	/* EHLO then QUIT at once: RSET's 250 not in yet, the connection
	 * is not pooled (its transaction is not known closed). */
	to_mail_sent();
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_RSET_SENT);
	relay_close(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(primary_pool_count(pool), 0);
	next_session_works();
	assert_int_equal(dials, 2);
}

static void
reset_rset_sent_then_rcpt(void **state)
{
	/* RSET then a new transaction right away: MAIL follows RSET on the
	 * same connection, and the late 250 to RSET changes nothing. */
	to_mail_sent();
	relay_reset(R);
	relay_rcpt(R, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R), RELAY_RCPT_PENDING);
	run_to(RELAY_MAIL_SENT);
	assert_string_equal(S.said, "250 2.1.5 ok\r\n");
	assert_int_equal(P.nested, 0);
	assert_int_equal(dials, 1);
}

static void
reset_rcpt_pending(void **state)
{
	/* The session never resets with RCPTs waiting; if it did, the
	 * connection must not survive with the transaction open. */
	to_mail_sent();
	P.hold = "RCPT";
	relay_rcpt(R, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R), RELAY_RCPT_PENDING);
	run_to_nth("1:RCPT", 2);
	relay_close(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(primary_pool_count(pool), 0);
	run_until(primary_closed);
	assert_false(p_saw("QUIT"));
}

static void
reset_data(void **state)
{
	to_mail_sent();
	P.hold = "DATA";
	relay_data(R);
	run_to_line("1:DATA");
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	run_until(primary_closed);
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
	P.hold = NULL;
	next_session_works();
	assert_int_equal(dials, 2);
}

static void
refused_data_then_reset(void **state)
{
	/* The primary refuses DATA: its transaction stays open, and a
	 * reset after it (EHLO) must close it before pooling. */
	to_mail_sent();
	P.hold = "DATA";
	relay_data(R);
	run_to_line("1:DATA");
	smtpsrv_say(&P, 1, "554 5.5.1 no\r\n");
	run_to(RELAY_MAIL_SENT);
	assert_int_equal(S.data_go, 0);
	assert_string_equal(S.said, "554 5.5.1 no\r\n");
	P.hold = NULL;
	relay_reset(R);
	run_to(RELAY_IDLE);
	assert_true(p_saw("1:RSET"));
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 1);
	next_session_works();
}

static void
reset_body(void **state)
{
	to_body();
	relay_abort(R);		/* size or bare LF: no dot */
	assert_int_equal(relay_state(R), RELAY_IDLE);
	run_until(primary_closed);
	assert_false(p_saw("1:."));
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
}

static void
close_dot_sent(void **state)
{
	to_body();
	P.hold = ".";
	relay_dot(R, 18);
	assert_int_equal(relay_state(R), RELAY_DOT_SENT);
	relay_close(R);		/* the session's timeout, say */
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(primary_pool_count(pool), 0);
}

static void
close_mail_sent_quits(void **state)
{
	/* QUIT after RCPT: QUIT ends the transaction; never pooled. */
	to_mail_sent();
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
	run_to_line("1:QUIT");
	next_session_works();
	assert_int_equal(dials, 2);
}

/* --- the primary drops the connection in each state ----------------------- */

static void
drop_idle(void **state)
{
	to_idle_connected();
	assert_true(relay_connected(R));
	p_drop_all();
	run_until(idle_unheld);		/* noticed, and let go */
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_int_equal(S.failed + S.backups, 0);
	assert_string_equal(S.said, "");
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
}

static void
drop_connecting(void **state)
{
	port = 1;			/* nobody listens: refused */
	relay_rcpt(R, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R), RELAY_CONNECTING);
	run_to(RELAY_IDLE);
	assert_int_equal(S.backups, 1);	/* backup mode judged it */
	assert_string_equal(S.said, "450 4.1.1 backup\r\n");
	assert_int_equal(P.nconns, 0);
}

static int got_backup(void) { return S.backups > 0; }
static int got_failed(void) { return S.failed > 0; }

static void
drop_rcpt_pending_before_answer(void **state)
{
	/* Gone before it answered any RCPT: backup mode. */
	P.hold = "RCPT";
	relay_rcpt(R, &dom, &rcpt, &rparams);
	run_to_line("1:RCPT");
	assert_int_equal(relay_state(R), RELAY_RCPT_PENDING);
	p_drop_all();
	run_until(got_backup);
	assert_int_equal(relay_state(R), RELAY_IDLE);
	assert_string_equal(S.said, "450 4.1.1 backup\r\n");
	assert_int_equal(S.failed, 0);
}

static void
drop_rcpt_pending_after_answer(void **state)
{
	to_mail_sent();
	P.hold = "RCPT";
	relay_rcpt(R, &dom, &rcpt, &rparams);
	run_to_nth("1:RCPT", 2);
	p_drop_all();
	run_until(got_failed);
	assert_int_equal(relay_state(R), RELAY_FAILED);
	assert_int_equal(S.failed_was, RELAY_RCPT_PENDING);
	assert_non_null(strstr(S.said, "451 4.4.2 <u@customer.example>"));
	relay_reset(R);
	assert_int_equal(relay_state(R), RELAY_IDLE);
}

static void
drop_mail_sent(void **state)
{
	to_mail_sent();
	p_drop_all();
	run_until(got_failed);
	assert_int_equal(relay_state(R), RELAY_FAILED);
	assert_int_equal(S.failed_was, RELAY_MAIL_SENT);
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
}

static void
drop_data(void **state)
{
	to_mail_sent();
	P.hold = "DATA";
	relay_data(R);
	run_to_line("1:DATA");
	p_drop_all();
	run_until(got_failed);
	assert_int_equal(S.failed_was, RELAY_DATA);
	assert_int_equal(relay_state(R), RELAY_FAILED);
}

static void
drop_body(void **state)
{
	to_body();
	p_drop_all();
	run_until(got_failed);
	assert_int_equal(S.failed_was, RELAY_BODY);
	relay_body(R, "more\r\n", 6);	/* read on, send nothing */
	assert_int_equal(relay_state(R), RELAY_FAILED);
}

static void
drop_dot_sent(void **state)
{
	to_body();
	P.hold = ".";
	relay_dot(R, 18);
	run_to_line("1:.");
	p_drop_all();
	run_until(got_failed);
	assert_int_equal(S.failed_was, RELAY_DOT_SENT);
	assert_int_equal(S.dones, 0);
}

static void
drop_rset_sent(void **state)
{
	to_mail_sent();
	P.hold = "RSET";
	relay_reset(R);
	run_to_line("1:RSET");
	p_drop_all();
	run_to(RELAY_IDLE);
	assert_int_equal(S.failed + S.backups, 0);	/* nothing was open */
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 0);
}

static void
stale_pooled_connects_afresh(void **state)
{
	/* A kept connection dead at its first command: a new one, MAIL and
	 * the RCPT again; the session sees only the 250. */
	to_idle_connected();
	relay_close(R);
	assert_int_equal(primary_pool_count(pool), 1);
	P.hold = "MAIL";
	relay_rcpt(R2, &dom, &rcpt, &rparams);
	assert_int_equal(relay_state(R2), RELAY_RCPT_PENDING);
	run_to_line("1:MAIL");
	P.hold = NULL;
	p_drop_all();
	while (relay_state(R2) != RELAY_MAIL_SENT)
		event_base_loop(base, EVLOOP_ONCE);
	assert_string_equal(S.said, "250 2.1.5 ok\r\n");
	assert_int_equal(dials, 2);
	assert_true(p_saw("2:MAIL FROM:<a@sender.example>"));
}

static void
places_keep_order(void **state)
{
	/* A reply said while a RCPT waits goes behind it. */
	to_mail_sent();
	P.hold = "RCPT";
	relay_rcpt(R, &dom, &rcpt, &rparams);
	evbuffer_add_printf(relay_reply_place(R), "452 4.5.3 other\r\n");
	assert_int_equal(relay_places(R), 2);
	run_to_nth("1:RCPT", 2);
	assert_string_equal(S.said, "");
	smtpsrv_say(&P, 1, "550 5.1.1 no such user\r\n");
	run_to(RELAY_MAIL_SENT);
	assert_string_equal(S.said,
	    "550 5.1.1 no such user\r\n452 4.5.3 other\r\n");
	assert_int_equal(relay_places(R), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(reset_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_connecting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(reset_mail_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(reset_rset_sent_then_close,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(reset_rset_sent_then_rcpt,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(reset_rcpt_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(reset_data, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_data_then_reset, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(reset_body, setup, teardown),
		cmocka_unit_test_setup_teardown(close_dot_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(close_mail_sent_quits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(drop_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_connecting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(drop_rcpt_pending_before_answer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(drop_rcpt_pending_after_answer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(drop_mail_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(drop_data, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_body, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_dot_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(drop_rset_sent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(stale_pooled_connects_afresh,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(places_keep_order, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
