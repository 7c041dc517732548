/* Unit tests for client.c's transactions (client_send with the client's own
 * client_tx) and its own-command API (client_cmd, client_body): the real
 * client against the scripted SMTP server of tests/unit/smtpsrv.h on
 * 127.0.0.1, both on one event_base. Nothing here depends on speed: a
 * server step waits for the lines it expects, a watchdog only turns a
 * hang into a failure, and the one timeout of 1 s is the point of its
 * test. */
#include "client.h"

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
#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "reply.h"
#include "smtpsrv.h"

/* --- the client side ---------------------------------------------------- */

#define NREP	8

struct t {
	struct event_base	*base;
	struct event		*watchdog;
	struct client		*c;
	struct client_conf	 conf;
	int			 ready, failed, timed_out;
	int			 codes[NREP];
	char			 texts[NREP][REPLY_TEXT_MAX];
	int			 nrep;
	void			(*on_ready)(struct t *);
	void			(*on_reply)(struct t *, int idx);
};

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct t *t = arg;

	t->timed_out = 1;
	event_base_loopexit(t->base, NULL);
}

static void
t_init(struct t *t)
{
	struct timeval tv = { 20, 0 };

	memset(t, 0, sizeof(*t));
	t->base = event_base_new();
	assert_non_null(t->base);
	t->watchdog = evtimer_new(t->base, watchdog_cb, t);
	evtimer_add(t->watchdog, &tv);
	t->conf.helo_name = "mx2.test";
	t->conf.tls = NULL;
	t->conf.connect_timeout = 30;
	t->conf.greeting_timeout = 30;
	t->conf.command_timeout = 30;
	t->conf.data_init_timeout = 30;
	t->conf.data_block_timeout = 30;
	t->conf.data_done_timeout = 30;
}

static void
t_done(struct t *t)
{
	client_free(t->c);
	event_free(t->watchdog);
	event_base_free(t->base);
}

static void
t_stop(struct t *t)
{
	event_base_loopexit(t->base, NULL);
}

static void
rcb(struct client *c, const struct reply *r, void *arg)
{
	struct t *t = arg;
	int idx = t->nrep;

	assert_ptr_equal(c, t->c);
	assert_true(idx < NREP);
	t->codes[idx] = r->code;
	snprintf(t->texts[idx], sizeof(t->texts[idx]), "%s", r->text);
	t->nrep++;
	if (t->on_reply != NULL)
		t->on_reply(t, idx);
}

static void
ecb(struct client *c, enum client_event ev, void *arg)
{
	struct t *t = arg;

	assert_ptr_equal(c, t->c);
	if (ev == CLIENT_READY) {
		t->ready++;
		t->on_ready(t);
		return;
	}
	assert_int_equal(ev, CLIENT_FAILED);
	t->failed++;
	client_free(c);
	t->c = NULL;
	t_stop(t);
}

static void
t_connect(struct t *t, int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	t->c = client_connect(t->base, &t->conf, (struct sockaddr *)&sin,
	    sizeof(sin), "127.0.0.1", 0, ecb, t);
	assert_non_null(t->c);
}

/* QUIT, and on its reply free the client and stop. */
static void
quit_now(struct t *t)
{
	assert_int_equal(client_cmd(t->c, "QUIT", 0, rcb, t), 0);
}

static void
after_quit(struct t *t)
{
	client_free(t->c);
	t->c = NULL;
	t_stop(t);
}

/* A server saying 'greeting' and then 'steps', t connected to it with
 * these callbacks, run until done; the watchdog must not have fired. */
static void
t_run(struct t *t, struct smtpsrv *s, const char *greeting,
    const struct smtpsrv_step *steps, size_t nsteps,
    void (*on_ready)(struct t *),
    void (*on_reply)(struct t *, int idx))
{
	t_init(t);
	smtpsrv_start(s, t->base, greeting, steps, nsteps);
	t->on_ready = on_ready;
	t->on_reply = on_reply;
	t_connect(t, s->port);
	event_base_dispatch(t->base);
	assert_false(t->timed_out);
}

/* --- PIPELINING --------------------------------------------------------- */

/* 'mail', then RCPT TO x@ and y@example.org: three commands queued. */
static void
mail_two_rcpts(struct t *t, const char *mail)
{
	assert_int_equal(client_cmd(t->c, mail, 0, rcb, t), 0);
	assert_int_equal(client_cmd(t->c, "RCPT TO:<x@example.org>", 0, rcb,
	    t), 0);
	assert_int_equal(client_cmd(t->c, "RCPT TO:<y@example.org>", 0, rcb,
	    t), 0);
}

static void
pipe_ready(struct t *t)
{
	assert_true(client_has_ext(t->c, "PIPELINING"));
	assert_true(client_has_ext(t->c, "size"));
	assert_false(client_has_ext(t->c, "DSN"));
	assert_string_equal(client_greeting(t->c), "test ESMTP");
	mail_two_rcpts(t, "MAIL FROM:<a@sender.test>");
}

static void
three_then_quit(struct t *t, int idx)
{
	if (idx == 2)
		quit_now(t);
	else if (idx == 3)
		after_quit(t);
}

static void
test_pipelining(void **state)
{
	/* The second step needs all three lines before it answers: a
	 * client that waited for MAIL's reply would hang here. */
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 0 },
		{ 3, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n"
		    "550-5.1.1 first\r\n550 5.1.1 second\r\n", 0 },
		{ 1, "221 bye\r\n", 1 },
	};
	struct smtpsrv s;
	struct t t;

	t_run(&t, &s, "220 test ESMTP\r\n", steps, 3,
	    pipe_ready, three_then_quit);
	assert_int_equal(t.ready, 1);
	assert_int_equal(t.failed, 0);
	assert_int_equal(t.nrep, 4);
	assert_int_equal(t.codes[0], 250);
	assert_string_equal(t.texts[0], "2.1.0 ok");
	assert_int_equal(t.codes[1], 250);
	assert_string_equal(t.texts[1], "2.1.5 ok");
	assert_int_equal(t.codes[2], 550);
	assert_string_equal(t.texts[2], "5.1.1 first\n5.1.1 second");
	assert_int_equal(t.codes[3], 221);
	assert_string_equal(s.log, "EHLO mx2.test\n"
	    "MAIL FROM:<a@sender.test>\nRCPT TO:<x@example.org>\n"
	    "RCPT TO:<y@example.org>\nQUIT\n");
	smtpsrv_stop(&s);
	t_done(&t);
}

/* --- without PIPELINING: one at a time ---------------------------------- */

static void
nopipe_ready(struct t *t)
{
	assert_false(client_has_ext(t->c, "PIPELINING"));
	mail_two_rcpts(t, "MAIL FROM:<>");
}

static void
test_no_pipelining(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 8BITMIME\r\n", 0 },
		{ 1, "250 ok\r\n", 0 },
		{ 1, "550 5.1.1 no\r\n", 0 },
		{ 1, "250 yes\r\n", 0 },
		{ 1, "221 bye\r\n", 1 },
	};
	struct smtpsrv s;
	struct t t;

	t_run(&t, &s, "220 test\r\n", steps, 5, nopipe_ready,
	    three_then_quit);
	assert_int_equal(t.nrep, 4);
	assert_int_equal(t.codes[0], 250);
	assert_int_equal(t.codes[1], 550);
	assert_string_equal(t.texts[1], "5.1.1 no");
	assert_int_equal(t.codes[2], 250);
	assert_int_equal(t.codes[3], 221);
	/* Each command went out only after the reply before it. */
	assert_int_equal(s.max_burst, 1);
	assert_string_equal(s.log, "EHLO mx2.test\nMAIL FROM:<>\n"
	    "RCPT TO:<x@example.org>\nRCPT TO:<y@example.org>\nQUIT\n");
	smtpsrv_stop(&s);
	t_done(&t);
}

/* --- DATA, body, dot ---------------------------------------------------- */

static void
data_ready(struct t *t)
{
	assert_int_equal(client_cmd(t->c, "MAIL FROM:<a@sender.test>", 0,
	    rcb, t), 0);
	assert_int_equal(client_cmd(t->c, "RCPT TO:<x@example.org>", 0, rcb,
	    t), 0);
	assert_int_equal(client_cmd(t->c, "DATA", 0, rcb, t), 0);
	/* After DATA comes the body, not another command. */
	assert_int_equal(client_cmd(t->c, "RSET", 0, rcb, t), -1);
	/* One line is one command. */
	assert_int_equal(client_cmd(t->c, "NOOP\r\nRSET", 0, rcb, t), -1);
}

static void
body_end_cb(struct client *c, const struct reply *r, void *arg)
{
	struct t *t = arg;

	rcb(c, r, arg);
	quit_now(t);
}

static void
data_reply(struct t *t, int idx)
{
	static const char body1[] = "Subject: x\r\n\r\n.hidden\r\nli";
	static const char body2[] = "ne\r\n..two\r\nlast";

	if (idx == 2) {
		assert_int_equal(t->codes[2], 354);
		/* In two pieces, a line split across them. */
		client_body(t->c, body1, sizeof(body1) - 1);
		client_body(t->c, body2, sizeof(body2) - 1);
		assert_int_equal(client_cmd(t->c, "NOOP", 0, rcb, t), -1);
		client_body_end(t->c, 0, body_end_cb, t);
	} else if (idx == 4)
		after_quit(t);
}

static void
test_data(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 PIPELINING\r\n", 0 },
		{ 3, "250 ok\r\n250 ok\r\n354 go ahead\r\n", 0 },
		{ SMTPSRV_UNTIL_DOT, "250 2.0.0 queued as X\r\n", 0 },
		{ 1, "221 bye\r\n", 1 },
	};
	struct smtpsrv s;
	struct t t;

	t_run(&t, &s, "220 test\r\n", steps, 4, data_ready, data_reply);
	assert_int_equal(t.failed, 0);
	assert_int_equal(t.nrep, 5);
	assert_int_equal(t.codes[3], 250);
	assert_string_equal(t.texts[3], "2.0.0 queued as X");
	assert_string_equal(s.log, "EHLO mx2.test\n"
	    "MAIL FROM:<a@sender.test>\nRCPT TO:<x@example.org>\nDATA\n"
	    "Subject: x\n\n..hidden\nline\n...two\nlast\n.\nQUIT\n");
	smtpsrv_stop(&s);
	t_done(&t);
}

/* --- the primary drops mid-transaction ---------------------------------- */

static void
drop_ready(struct t *t)
{
	mail_two_rcpts(t, "MAIL FROM:<>");
}

static void
test_drop(void **state)
{
	/* MAIL answered, then the connection closes with both RCPTs
	 * unanswered. */
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 PIPELINING\r\n", 0 },
		{ 3, "250 ok\r\n", 1 },
	};
	struct smtpsrv s;
	struct t t;

	t_run(&t, &s, "220 test\r\n", steps, 2, drop_ready, NULL);
	assert_int_equal(t.failed, 1);
	assert_int_equal(t.nrep, 1);
	assert_int_equal(t.codes[0], 250);
	smtpsrv_stop(&s);
	t_done(&t);
}

/* --- a reply that never comes ------------------------------------------- */

static void
silent_ready(struct t *t)
{
	char long_line[CLIENT_CMD_LINE_MAX + 2];
	int i;

	memset(long_line, 'X', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	assert_int_equal(client_cmd(t->c, long_line, 0, rcb, t), -1);
	assert_int_equal(client_cmd(t->c, "STARTTLS", 0, rcb, t), -1);
	assert_int_equal(client_cmd(t->c, "NOOP", 1, rcb, t), 0);
	/* The queue is bounded. */
	for (i = 1; i < CLIENT_CMD_MAX; i++)
		assert_int_equal(client_cmd(t->c, "RSET", 0, rcb, t), 0);
	assert_int_equal(client_cmd(t->c, "RSET", 0, rcb, t), -1);
}

static void
test_timeout(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250 srv\r\n", 0 },
		{ 1, NULL, 0 },			/* NOOP: silence */
	};
	struct smtpsrv s;
	struct t t;

	t_run(&t, &s, "220 test\r\n", steps, 2, silent_ready, NULL);
	assert_int_equal(t.failed, 1);
	assert_int_equal(t.nrep, 0);
	smtpsrv_stop(&s);
	t_done(&t);
}

/* --- one transaction (client_send) -------------------------------------- */

/* The transaction of the tx tests: the client's own types, no queue row
 * anywhere. */
static struct mailaddr tx_sender, tx_to[3];
static struct mail_params tx_mp;
static struct rcpt_params tx_rp[3];
static struct client_rcpt tx_rcpts[3];
static struct client_result tx_res[3];
static struct client_tx tx;
static int tx_done;

static void
tx_setup(const char *body, int data_flags)
{
	static const char *local[3] = { "a", "b", "c" };
	size_t i;

	memset(&tx_sender, 0, sizeof(tx_sender));
	snprintf(tx_sender.local, sizeof(tx_sender.local), "s");
	snprintf(tx_sender.domain, sizeof(tx_sender.domain), "sender.example");
	memset(&tx_mp, 0, sizeof(tx_mp));
	snprintf(tx_mp.envid, sizeof(tx_mp.envid), "E1");
	for (i = 0; i < 3; i++) {
		memset(&tx_to[i], 0, sizeof(tx_to[i]));
		snprintf(tx_to[i].local, sizeof(tx_to[i].local), "%s",
		    local[i]);
		snprintf(tx_to[i].domain, sizeof(tx_to[i].domain),
		    "example.org");
		memset(&tx_rp[i], 0, sizeof(tx_rp[i]));
		tx_rcpts[i].addr = &tx_to[i];
		tx_rcpts[i].params = &tx_rp[i];
		tx_res[i].code = -1;
	}
	tx_rp[1].notify = ESMTP_NOTIFY_FAILURE;
	memset(&tx, 0, sizeof(tx));
	tx.sender = &tx_sender;
	tx.params = &tx_mp;
	tx.size = strlen(body);
	tx.data_flags = data_flags;
	tx.body = (const unsigned char *)body;
	tx.bodylen = strlen(body);
	tx.rcpts = tx_rcpts;
	tx.nrcpt = 3;
	tx.res = tx_res;
	tx_done = 0;
}

static void
tx_ecb(struct client *c, enum client_event ev, void *arg)
{
	struct t *t = arg;

	switch (ev) {
	case CLIENT_READY:
		t->ready++;
		client_send(c, &tx);
		return;
	case CLIENT_TX_DONE:
		tx_done++;
		client_free(c);
		t->c = NULL;
		t_stop(t);
		return;
	case CLIENT_FAILED:
		t->failed++;
		client_free(c);
		t->c = NULL;
		t_stop(t);
		return;
	}
}

static void
tx_run(struct t *t, struct smtpsrv *s, const struct smtpsrv_step *steps,
    size_t nsteps)
{
	struct sockaddr_in sin;

	t_init(t);
	smtpsrv_start(s, t->base, "220 primary ready\r\n", steps, nsteps);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)s->port);
	t->c = client_connect(t->base, &t->conf, (struct sockaddr *)&sin,
	    sizeof(sin), "127.0.0.1", 0, tx_ecb, t);
	assert_non_null(t->c);
	event_base_dispatch(t->base);
	assert_false(t->timed_out);
}

/* The sender, its parameters, each recipient with its own, the body
 * dot-stuffed; each recipient's answer comes back in its place. */
static void
test_tx(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250-PIPELINING\r\n250-SIZE 100000\r\n"
		  "250-8BITMIME\r\n250 DSN\r\n", 0 },
		{ 5, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n"
		  "452 4.2.2 full\r\n354 go\r\n", 0 },
		{ SMTPSRV_UNTIL_DOT, "250 2.0.0 queued\r\n", 0 },
	};
	struct smtpsrv s;
	struct t t;

	tx_setup("Subject: x\r\n\r\n.dot\r\nend\r\n", 0);
	tx_run(&t, &s, steps, 3);
	assert_int_equal(t.failed, 0);
	assert_int_equal(tx_done, 1);
	assert_int_equal(tx_res[0].code, 250);
	assert_int_equal(tx_res[1].code, 550);
	assert_string_equal(tx_res[1].text, "550 5.1.1 no such user");
	assert_int_equal(tx_res[2].code, 452);
	assert_string_equal(s.log, "EHLO mx2.test\n"
	    "MAIL FROM:<s@sender.example> SIZE=25 ENVID=E1\n"
	    "RCPT TO:<a@example.org>\n"
	    "RCPT TO:<b@example.org> NOTIFY=FAILURE\n"
	    "RCPT TO:<c@example.org>\n"
	    "DATA\n"
	    "Subject: x\n\n..dot\nend\n.\n");
	smtpsrv_stop(&s);
	t_done(&t);
}

/* An 8-bit body and a primary without 8BITMIME: it goes as 7 bit, its
 * text quoted-printable (RFC 6152 §3, src/mail/mime7.h), no BODY=. */
static void
test_tx_8bit(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 PIPELINING\r\n", 0 },
		{ 5, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
		  "250 2.1.5 ok\r\n354 go\r\n", 0 },
		{ SMTPSRV_UNTIL_DOT, "250 2.0.0 queued\r\n", 0 },
	};
	struct smtpsrv s;
	struct t t;
	size_t i;

	tx_setup("Subject: x\r\n\r\ncaf\xc3\xa9\r\n.dot\r\n",
	    DATA_HAS_8BIT);
	tx_run(&t, &s, steps, 3);
	assert_int_equal(tx_done, 1);
	for (i = 0; i < 3; i++)
		assert_int_equal(tx_res[i].code, 250);
	assert_string_equal(s.log, "EHLO mx2.test\n"
	    "MAIL FROM:<s@sender.example>\n"
	    "RCPT TO:<a@example.org>\n"
	    "RCPT TO:<b@example.org>\n"
	    "RCPT TO:<c@example.org>\n"
	    "DATA\n"
	    "Subject: x\nMIME-Version: 1.0\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n"
	    "caf=C3=A9\n..dot\n.\n");
	smtpsrv_stop(&s);
	t_done(&t);
}

/* 8 bit in a header cannot be made 7 bit: 554 5.6.3 for every
 * recipient, and no dot after the half-sent body. */
static void
test_tx_8bit_header(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 PIPELINING\r\n", 0 },
		{ 5, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
		  "250 2.1.5 ok\r\n354 go\r\n", 0 },
	};
	struct smtpsrv s;
	struct t t;
	size_t i;

	tx_setup("Subject: \xe9\r\n\r\nbody\r\n", DATA_HAS_8BIT);
	tx_run(&t, &s, steps, 2);
	assert_int_equal(t.failed, 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(tx_res[i].code, 554);
		assert_non_null(strstr(tx_res[i].text, "5.6.3"));
	}
	assert_null(strstr(s.log, "\xe9"));
	assert_null(strstr(s.log, "\n.\n"));
	smtpsrv_stop(&s);
	t_done(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_no_pipelining),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_tx),
		cmocka_unit_test(test_tx_8bit),
		cmocka_unit_test(test_tx_8bit_header),
	};

	log_init("client_test", 1);
	log_set_level(LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
