/* Unit tests for primary_connect() (connect.c): a domain routed to the
 * scripted SMTP server of tests/unit/smtpsrv.h on 127.0.0.1, the
 * connector and the server on one event_base. Nothing here depends on
 * speed: a server step waits for the lines it expects, and a watchdog
 * only turns a hang into a failure. */
#include "connect.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "reply.h"
#include "smtpsrv.h"

/* --- the caller's side --------------------------------------------------- */

#define NREP	8

struct t {
	struct event_base	*base;
	struct event		*watchdog;
	struct client		*c;
	int			 failed, timed_out;
	int			 codes[NREP];
	int			 nrep;
	int			 dc_calls, dc_reached, dc_got_client;
	char			 dc_why[512];
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

/* --- primary_connect ---------------------------------------------------- */

static struct config conf;

static void
dc_ecb(struct client *c, enum client_event ev, void *arg)
{
	struct t *t = arg;

	/* No failure expected on a connection handed over. */
	t->failed++;
	client_free(c);
	t->c = NULL;
	t_stop(t);
}

/* NOOP answered: say goodbye; no more callbacks after this. */
static void
dc_rcb(struct client *c, const struct reply *r, void *arg)
{
	struct t *t = arg;

	assert_ptr_equal(c, t->c);
	assert_true(t->nrep < NREP);
	t->codes[t->nrep++] = r->code;
	client_quit(t->c);
	t->c = NULL;
	t_stop(t);
}

static void
dc_cb(struct client *c, int reached, const char *why, void *arg)
{
	struct t *t = arg;

	t->dc_calls++;
	t->dc_reached = reached;
	snprintf(t->dc_why, sizeof(t->dc_why), "%s", why ? why : "");
	if (c == NULL) {
		assert_non_null(why);
		t_stop(t);
		return;
	}
	assert_null(why);
	t->dc_got_client = 1;
	t->c = c;
	client_set_cb(c, dc_ecb, t);
	assert_int_equal(client_cmd(c, "NOOP", 0, dc_rcb, t), 0);
}

/* t, a server saying 'greeting' then 'steps', and a connector whose domain
 * example.org routes to that server's port. */
static struct primary_connector *
dc_connector(struct t *t, struct smtpsrv *s, const char *greeting,
    const struct smtpsrv_step *steps, size_t nsteps,
    struct domains **doms_out)
{
	char text[128], err[256];
	struct primary_connector *d;
	int port;

	t_init(t);
	smtpsrv_start(s, t->base, greeting, steps, nsteps);
	port = s->port;
	config_defaults(&conf);
	snprintf(conf.myhostname, sizeof(conf.myhostname), "mx2.test");
	snprintf(text, sizeof(text), "example.org route=[127.0.0.1]:%d\n",
	    port);
	*doms_out = domains_parse("t", text, strlen(text), err, sizeof(err));
	if (*doms_out == NULL)
		fail_msg("%s", err);
	d = primary_connector_new(t->base, &conf);
	primary_connector_set_domains(d, *doms_out);
	return d;
}

/* One primary_connect() to example.org, run until its callback: it got
 * a client or not, the primary was reached or not. */
static void
dc_run(struct t *t, struct primary_connector *d, int got_client, int reached)
{
	struct primary_conn *dc;

	dc = primary_connect(d, "Example.ORG", primary_client_conf(d), dc_cb,
	    t);
	assert_non_null(dc);
	assert_int_equal(t->dc_calls, 0);	/* never from inside */
	event_base_dispatch(t->base);
	assert_false(t->timed_out);
	assert_int_equal(t->dc_calls, 1);
	assert_int_equal(t->dc_got_client, got_client);
	assert_int_equal(t->dc_reached, reached);
}

/* After dc_connector(): everything freed, the server stopped (again). */
static void
dc_done(struct t *t, struct smtpsrv *s, struct primary_connector *d,
    struct domains *doms)
{
	primary_connector_free(d);
	domains_free(doms);
	smtpsrv_stop(s);
	t_done(t);
}

static void
test_connect_ok(void **state)
{
	static const struct smtpsrv_step steps[] = {
		{ 1, "250-srv\r\n250 PIPELINING\r\n", 0 },
		{ 1, "250 2.0.0 noop\r\n", 0 },
		{ 1, "221 bye\r\n", 0 },
	};
	struct domains *doms;
	struct primary_connector *d;
	struct smtpsrv s;
	struct t t;

	d = dc_connector(&t, &s, "220 primary ready\r\n", steps, 3, &doms);
	dc_run(&t, d, 1, 1);
	assert_int_equal(t.failed, 0);
	assert_int_equal(t.nrep, 1);
	assert_int_equal(t.codes[0], 250);
	/* The client says QUIT, frees itself on the 221 and closes: the
	 * server sees the close. */
	while (smtpsrv_open(&s) > 0 && !t.timed_out)
		event_base_loop(t.base, EVLOOP_ONCE);
	assert_false(t.timed_out);
	assert_string_equal(s.log, "EHLO mx2.test\nNOOP\nQUIT\n");
	dc_done(&t, &s, d, doms);
}

static void
test_connect_refused(void **state)
{
	struct domains *doms;
	struct primary_connector *d;
	struct smtpsrv s;
	struct t t;

	/* A port that was just free: nobody listens there. */
	d = dc_connector(&t, &s, "", NULL, 0, &doms);
	smtpsrv_stop(&s);
	dc_run(&t, d, 0, 0);
	assert_non_null(strstr(t.dc_why, "connect"));
	dc_done(&t, &s, d, doms);
}

static void
test_connect_421(void **state)
{
	struct domains *doms;
	struct primary_connector *d;
	struct smtpsrv s;
	struct t t;

	d = dc_connector(&t, &s, "421 4.3.2 too busy\r\n", NULL, 0, &doms);
	dc_run(&t, d, 0, 1);
	assert_non_null(strstr(t.dc_why, "421 4.3.2 too busy"));
	dc_done(&t, &s, d, doms);
}

static void
never_cb(struct client *c, int reached, const char *why, void *arg)
{
	fail_msg("callback of a cancelled or freed request");
}

static void
test_connect_cancel(void **state)
{
	struct domains *doms;
	struct primary_connector *d;
	struct smtpsrv s;
	struct t t;
	struct timeval tv = { 0, 200000 };

	/* Silent: neither connection gets further than connected. */
	d = dc_connector(&t, &s, "", NULL, 0, &doms);
	/* Cancelled at once, and one left pending for primary_connector_free:
	 * no callback either way, nothing leaks (ASan). */
	primary_connect_cancel(primary_connect(d, "example.org",
	    primary_client_conf(d), never_cb, &t));
	primary_connect(d, "example.org", primary_client_conf(d), never_cb,
	    &t);
	primary_connect_cancel(NULL);
	event_base_loopexit(t.base, &tv);
	event_base_dispatch(t.base);
	/* A failure queued for the loop is forgotten too. */
	primary_connect(d, "no-route.example", primary_client_conf(d),
	    never_cb, &t);
	dc_done(&t, &s, d, doms);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_ok),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_421),
		cmocka_unit_test(test_connect_cancel),
	};

	log_init("connect_test", 1);
	log_set_level(LOG_LEVEL_WARNING);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
