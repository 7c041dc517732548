/*
 * learn_test: what an answer of the primary teaches, and the domain
 * lifecycle, through learn.c on a real state store in a temporary
 * directory, time passed in.
 */
#include "learn.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>

#include "config.h"
#include "domains.h"
#include "rows.h"

#define T0	1000000
#define DAY	86400

struct fx {
	char			 dir[64];
	struct event_base	*base;
	struct state		*st;
	struct config		 conf;
	struct domains		*doms;
	struct learn		*l;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512], path[128], text[256];
	FILE *fp;

	if ((f->st = rows_state_open("learn_test", f->dir, &f->base)) == NULL)
		return -1;
	config_defaults(&f->conf);
	snprintf(path, sizeof(path), "%s/static", f->dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fprintf(fp, "listed\n");
	fclose(fp);
	snprintf(text, sizeof(text), "customer.example recipients=%s\n"
	    "other.example\n", path);
	if ((f->doms = domains_parse("domains", text, strlen(text), err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	f->l = learn_new(f->base, &f->conf, f->st);
	learn_set_domains(f->l, f->doms);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	learn_free(f->l);
	domains_free(f->doms);
	rc = rows_state_close(f->st, f->base, f->dir);
	free(f);
	return rc;
}

/* One row of the table in learn.h: an answer and what it must teach. */
struct answer_row {
	int		 code;
	const char	*enh;
	int		 status;	/* LEARN_* after the answer */
	int		 accepted;	/* counts as an acceptance */
};

static const struct answer_row answer_rows[] = {
	{ 250, "2.1.5", LEARN_VALID, 1 },
	{ 251, "2.1.5", LEARN_VALID, 1 },
	{ 250, "", LEARN_VALID, 1 },
	{ 252, "2.1.5", LEARN_UNKNOWN, 0 },	/* cannot verify */
	{ 550, "5.1.1", LEARN_INVALID, 0 },
	{ 553, "5.1.3", LEARN_INVALID, 0 },
	{ 551, "5.1.6", LEARN_INVALID, 0 },
	{ 550, "", LEARN_UNKNOWN, 0 },		/* no enhanced code: doubt */
	{ 550, "5.7.1", LEARN_UNKNOWN, 0 },	/* refuses us, not the address */
	{ 554, "5.7.1", LEARN_UNKNOWN, 0 },
	{ 450, "4.1.1", LEARN_UNKNOWN, 0 },	/* 4xx is doubt */
	{ 421, "4.3.2", LEARN_UNKNOWN, 0 },
	{ 451, "4.4.2", LEARN_UNKNOWN, 0 },
};

static void
test_answers(void **state)
{
	struct fx *f = *state;
	const struct domain *dom = domains_lookup(f->doms, "other.example");
	struct state_domain d;
	char addr[64];
	size_t i;

	for (i = 0; i < sizeof(answer_rows) / sizeof(answer_rows[0]); i++) {
		const struct answer_row *r = &answer_rows[i];

		snprintf(addr, sizeof(addr), "u%zu@other.example", i);
		learn_rcpt_answer(f->l, addr, r->code, r->enh, "text",
		    STATE_SRC_PASSTHROUGH, T0);
		if (learn_rcpt_status(f->l, dom, addr, T0) != r->status)
			fail_msg("%d %s: status %d, want %d", r->code, r->enh,
			    learn_rcpt_status(f->l, dom, addr, T0), r->status);
		/* A fresh domain per row would be cleaner; the acceptance
		 * is checked on the first row that must give one. */
		if (i == 0) {
			assert_int_equal(learn_domain(f->l, "other.example",
			    T0, &d), 0);
			assert_int_equal(d.first_accept, T0);
			assert_string_equal(d.accept_how, "passthrough");
		}
	}
}

static void
test_no_acceptance_from_refusals(void **state)
{
	struct fx *f = *state;
	struct state_domain d;

	learn_rcpt_answer(f->l, "a@fresh.example", 550, "5.1.1", "x",
	    STATE_SRC_CALLOUT, T0);
	learn_rcpt_answer(f->l, "b@fresh.example", 554, "5.7.1", "x",
	    STATE_SRC_CALLOUT, T0);
	assert_int_equal(learn_domain(f->l, "fresh.example", T0, &d), 0);
	assert_int_equal(d.first_accept, 0);
}

static void
test_expiry_and_refresh(void **state)
{
	struct fx *f = *state;
	const struct domain *dom = domains_lookup(f->doms, "other.example");
	const char *a = "v@other.example", *b = "w@other.example";
	int64_t vttl = f->conf.recipient_valid_ttl;
	int64_t ittl = f->conf.recipient_invalid_ttl;

	learn_rcpt_answer(f->l, a, 250, "2.1.5", "ok", STATE_SRC_DELIVERY,
	    T0);
	assert_int_equal(learn_rcpt_status(f->l, dom, a, T0 + vttl - 1),
	    LEARN_VALID);
	assert_int_equal(learn_rcpt_status(f->l, dom, a, T0 + vttl),
	    LEARN_UNKNOWN);
	/* Seen again a day later: the expiry moves. */
	learn_rcpt_answer(f->l, a, 250, "2.1.5", "ok", STATE_SRC_DELIVERY,
	    T0 + DAY);
	assert_int_equal(learn_rcpt_status(f->l, dom, a, T0 + vttl),
	    LEARN_VALID);
	/* The same answer within the hour is not written again. */
	learn_rcpt_answer(f->l, a, 250, "2.1.5", "ok", STATE_SRC_DELIVERY,
	    T0 + DAY + 10);
	assert_int_equal(learn_rcpt_status(f->l, dom, a,
	    T0 + DAY + vttl - 1), LEARN_VALID);
	assert_int_equal(learn_rcpt_status(f->l, dom, a,
	    T0 + DAY + vttl), LEARN_UNKNOWN);
	/* A changed answer is written at once, with its own TTL. */
	learn_rcpt_answer(f->l, a, 550, "5.1.1", "gone", STATE_SRC_DELIVERY,
	    T0 + DAY + 20);
	assert_int_equal(learn_rcpt_status(f->l, dom, a, T0 + DAY + 20),
	    LEARN_INVALID);
	assert_int_equal(learn_rcpt_status(f->l, dom, a,
	    T0 + DAY + 20 + ittl), LEARN_UNKNOWN);
	learn_rcpt_answer(f->l, b, 550, "5.1.1", "no", STATE_SRC_CALLOUT, T0);
	assert_int_equal(learn_rcpt_status(f->l, dom, b, T0 + ittl - 1),
	    LEARN_INVALID);
}

static void
test_static_and_admin(void **state)
{
	struct fx *f = *state;
	const struct domain *dom = domains_lookup(f->doms,
	    "customer.example");

	/* The static list wins over anything learned; any case. */
	learn_rcpt_answer(f->l, "listed@customer.example", 550, "5.1.1", "x",
	    STATE_SRC_PASSTHROUGH, T0);
	assert_int_equal(learn_rcpt_status(f->l, dom,
	    "Listed@Customer.Example", T0), LEARN_VALID);
	assert_int_equal(learn_rcpt_status(f->l, dom,
	    "other@customer.example", T0), LEARN_UNKNOWN);
	/* The operator's entries never expire; not for a stranger. */
	assert_int_equal(learn_rcpt_add(f->l, "Boss@Customer.example",
	    STATE_RCPT_VALID, T0), 0);
	assert_int_equal(learn_rcpt_status(f->l, dom,
	    "boss@customer.example", T0 + 10 * 365 * DAY), LEARN_VALID);
	assert_int_equal(learn_rcpt_add(f->l, "x@elsewhere.example",
	    STATE_RCPT_VALID, T0), -2);
}

static void
test_lifecycle(void **state)
{
	struct fx *f = *state;
	int64_t p = f->conf.learning_period;
	struct state_domain d;

	/* Accepted during learning: active once the period is over. */
	assert_int_equal(learn_lifecycle(f->l, "a.example", T0),
	    STATE_DOM_LEARNING);
	learn_accepted(f->l, "a.example", "probe", T0 + 10);
	assert_int_equal(learn_lifecycle(f->l, "a.example", T0 + p - 1),
	    STATE_DOM_LEARNING);
	assert_int_equal(learn_lifecycle(f->l, "a.example", T0 + p),
	    STATE_DOM_ACTIVE);

	/* Never accepted: refused, counted; back at the first acceptance. */
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0),
	    STATE_DOM_LEARNING);
	assert_int_equal(learn_refused_count(f->l), 0);
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0 + p),
	    STATE_DOM_REFUSED);
	assert_int_equal(learn_refused_count(f->l), 1);
	learn_rcpt_answer(f->l, "postmaster@b.example", 250, "2.1.5", "ok",
	    STATE_SRC_CALLOUT, T0 + p + 5);
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0 + p + 5),
	    STATE_DOM_ACTIVE);
	assert_int_equal(learn_refused_count(f->l), 0);
	assert_int_equal(learn_domain(f->l, "b.example", T0 + p + 5, &d), 0);
	assert_int_equal(d.first_accept, T0 + p + 5);
	assert_int_equal(d.changed, T0 + p + 5);

	/* domain_learning = no: the policy sees active, the record stays. */
	f->conf.domain_learning = 0;
	assert_int_equal(learn_lifecycle(f->l, "c.example", T0),
	    STATE_DOM_ACTIVE);
	assert_int_equal(learn_domain(f->l, "c.example", T0, &d), 0);
	assert_int_equal(d.lifecycle, STATE_DOM_LEARNING);
}

static void
test_health_recorded(void **state)
{
	struct fx *f = *state;
	struct state_domain d;

	learn_health(f->l, "other.example", 0, "connect: refused", T0);
	assert_int_equal(learn_domain(f->l, "other.example", T0, &d), 0);
	assert_int_equal(d.health, 0);
	assert_int_equal(d.health_changed, T0);
	assert_string_equal(d.health_why, "connect: refused");
	learn_health(f->l, "other.example", 1, "", T0 + 60);
	assert_int_equal(learn_domain(f->l, "other.example", T0, &d), 0);
	assert_int_equal(d.health, 1);
}

static void
test_key(void **state)
{
	char buf[32];

	(void)state;
	learn_key(buf, sizeof(buf), "John.Doe", "EXAMPLE.org");
	assert_string_equal(buf, "john.doe@example.org");
	learn_key(buf, sizeof(buf), "a", "b.example");
	assert_string_equal(buf, "a@b.example");
	learn_key(buf, 8, "toolong", "example.org");
	assert_string_equal(buf, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_acceptance_from_refusals,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_and_refresh, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_static_and_admin, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_recorded, setup,
		    teardown),
		cmocka_unit_test(test_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
