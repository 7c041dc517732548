/*
 * policy_test: the runner of policy.c over fake steps (policy_run(), the
 * function policy_check_mail() and policy_check_rcpt() call with the real
 * tables): the order, a REJECT that ends the run, a TEMPFAIL that does
 * not, the merge (verdict.h), a step that answers from a later loop turn,
 * a cancel while one is in flight, the steps a mode leaves out, and that
 * the answer never comes on the caller's stack.
 */
#include "policy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "rows.h"

#include "config.h"

#define NSTEPS	5

/* What fake step i does: its verdict, and whether it answers at once or
 * from a timer (a later loop turn, as a DNS lookup would). */
struct plan {
	enum verdict	v;
	int		later;
};

static struct {
	struct event_base	*base;
	struct config		 conf;
	struct policy		*policy;
	struct policy_client	*client;
	struct plan		 plan[NSTEPS];
	char			 ran[16];	/* "012": the steps run */
	int			 in_run;	/* inside policy_run() */
	int			 answers;
	int			 answered_in_run;
	struct verdict_info	 got;
	struct event		*timer[NSTEPS];
	struct policy_check	*pending[NSTEPS];
	int			 cancelled[NSTEPS];
} t;

static void
step_answer(int i, struct policy_check *chk)
{
	struct verdict_info v;

	switch (t.plan[i].v) {
	case VERDICT_ACCEPT:
		verdict_accept(&v);
		break;
	case VERDICT_TEMPFAIL:
		verdict_set(&v, VERDICT_TEMPFAIL, 450 + i, "4.7.1", "fake",
		    "step %d tempfails", i);
		break;
	case VERDICT_REJECT:
		verdict_set(&v, VERDICT_REJECT, 550 + i, "5.7.1", "fake",
		    "step %d rejects", i);
		break;
	}
	policy_step_done(chk, &v);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	int i = (int)(intptr_t)arg;
	struct policy_check *chk = t.pending[i];

	t.pending[i] = NULL;
	step_answer(i, chk);
}

static void
step_cancel(void *state)
{
	int i = (int)(intptr_t)state;

	t.cancelled[i]++;
	event_del(t.timer[i]);
	t.pending[i] = NULL;
}

static void
fake_run(int i, struct policy_check *chk)
{
	size_t n = strlen(t.ran);
	struct timeval tv = { 0, 20000 };

	assert_true(n + 1 < sizeof(t.ran));
	t.ran[n] = (char)('0' + i);
	t.ran[n + 1] = '\0';
	if (!t.plan[i].later) {
		step_answer(i, chk);
		return;
	}
	t.pending[i] = chk;
	policy_step_pending(chk, step_cancel, (void *)(intptr_t)i);
	evtimer_add(t.timer[i], &tv);
}

static void step0(struct policy_check *c) { fake_run(0, c); }
static void step1(struct policy_check *c) { fake_run(1, c); }
static void step2(struct policy_check *c) { fake_run(2, c); }
static void step3(struct policy_check *c) { fake_run(3, c); }
static void step4(struct policy_check *c) { fake_run(4, c); }

static const struct policy_step steps[] = {
	{ "s0", step0, POLICY_STEP_ALWAYS },
	{ "s1", step1, POLICY_STEP_ALWAYS },
	{ "s2", step2, POLICY_STEP_ALWAYS },
	{ "s3", step3, POLICY_STEP_ALWAYS },
	{ "s4", step4, POLICY_STEP_ALWAYS },
	{ NULL, NULL, POLICY_STEP_ALWAYS }
};

static void
done_cb(const struct verdict_info *v, void *arg)
{
	assert_ptr_equal(arg, &t);
	t.answers++;
	if (t.in_run)
		t.answered_in_run++;
	t.got = *v;
}

static int
setup(void **state)
{
	struct policy_deps deps;
	struct sockaddr_storage ss;
	int i;

	memset(&t, 0, sizeof(t));
	t.base = event_base_new();
	config_defaults(&t.conf);
	memset(&deps, 0, sizeof(deps));
	deps.base = t.base;
	deps.conf = &t.conf;
	t.policy = policy_new(&deps);
	rows_sockaddr("192.0.2.1", &ss);
	t.client = policy_client_new(t.policy, (struct sockaddr *)&ss,
	    "192.0.2.1");
	for (i = 0; i < NSTEPS; i++)
		t.timer[i] = evtimer_new(t.base, timer_cb,
		    (void *)(intptr_t)i);
	return 0;
}

static int
teardown(void **state)
{
	int i;

	policy_client_free(t.client);
	policy_free(t.policy);
	for (i = 0; i < NSTEPS; i++)
		event_free(t.timer[i]);
	event_base_free(t.base);
	return 0;
}

/* Run a RCPT check over 'table', then the loop until nothing is left. */
static void
run(const struct policy_step *table, enum policy_mode mode, int check_sender)
{
	struct policy_check what;

	memset(&what, 0, sizeof(what));
	what.kind = POLICY_RCPT;
	what.mode = mode;
	what.check_sender = check_sender;
	t.ran[0] = '\0';
	t.answers = 0;
	t.in_run = 1;
	policy_run(t.client, &what, table, done_cb, &t);
	t.in_run = 0;
	event_base_dispatch(t.base);
}

static void
set_plan(const char *plan)
{
	int i;

	/* One letter a step: a accept, t tempfail, r reject; upper case
	 * answers from a timer. */
	for (i = 0; i < NSTEPS; i++) {
		char ch = plan[i];

		t.plan[i].later = ch >= 'A' && ch <= 'Z';
		switch (ch | 0x20) {
		case 'a': t.plan[i].v = VERDICT_ACCEPT; break;
		case 't': t.plan[i].v = VERDICT_TEMPFAIL; break;
		case 'r': t.plan[i].v = VERDICT_REJECT; break;
		default: fail_msg("plan %s", plan);
		}
	}
}

static void
test_merge_rows(void **state)
{
	static const struct {
		const char	*plan;	/* set_plan() */
		const char	*ran;	/* steps that ran, in order */
		enum verdict	 v;
		int		 code;	/* whose answer: 45i or 55i */
	} rows[] = {
		/* All run, in table order; nothing refused: accept. */
		{ "aaaaa", "01234", VERDICT_ACCEPT, 0 },
		{ "AaAaA", "01234", VERDICT_ACCEPT, 0 },
		/* A REJECT ends the run: nothing after it runs (greylisting
		 * last in policy.c: only what nothing refused is worth a
		 * triplet). */
		{ "araaa", "01", VERDICT_REJECT, 551 },
		{ "rtaaa", "0", VERDICT_REJECT, 550 },
		{ "aaaaR", "01234", VERDICT_REJECT, 554 },
		{ "aRaaa", "01", VERDICT_REJECT, 551 },
		/* A TEMPFAIL does not stop the run, and the answer is never
		 * ACCEPT after one. */
		{ "ataaa", "01234", VERDICT_TEMPFAIL, 451 },
		{ "aTaaa", "01234", VERDICT_TEMPFAIL, 451 },
		/* A later definite REJECT wins over an earlier TEMPFAIL, and
		 * ends the run there. */
		{ "atara", "0123", VERDICT_REJECT, 553 },
		{ "aTaRa", "0123", VERDICT_REJECT, 553 },
		/* Of two of a kind, the first is kept. */
		{ "attaa", "01234", VERDICT_TEMPFAIL, 451 },
		{ "aTTTa", "01234", VERDICT_TEMPFAIL, 451 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		set_plan(rows[i].plan);
		run(steps, POLICY_BACKUP, 0);
		if (strcmp(t.ran, rows[i].ran) != 0)
			fail_msg("%s: ran %s, want %s", rows[i].plan, t.ran,
			    rows[i].ran);
		if (t.answers != 1)
			fail_msg("%s: %d answers", rows[i].plan, t.answers);
		if (t.got.v != rows[i].v || t.got.code != rows[i].code)
			fail_msg("%s: verdict %d %d, want %d %d (%s)",
			    rows[i].plan, t.got.v, t.got.code, rows[i].v,
			    rows[i].code, t.got.text);
		/* The reply is the winning step's own. */
		if (rows[i].code != 0) {
			char want[64];

			snprintf(want, sizeof(want), "step %d %s",
			    rows[i].code % 10, rows[i].v == VERDICT_REJECT ?
			    "rejects" : "tempfails");
			assert_string_equal(t.got.text, want);
			assert_string_equal(t.got.enh, rows[i].v ==
			    VERDICT_REJECT ? "5.7.1" : "4.7.1");
		}
	}
}

/* Even when every step answers at once, the answer comes from the loop,
 * never on the stack of policy_run(): a session may end in its callback
 * (policy.h). */
static void
test_answer_from_the_loop(void **state)
{
	struct policy_check what;

	set_plan("aaaaa");
	memset(&what, 0, sizeof(what));
	t.in_run = 1;
	policy_run(t.client, &what, steps, done_cb, &t);
	t.in_run = 0;
	assert_string_equal(t.ran, "01234");
	assert_int_equal(t.answers, 0);
	event_base_loop(t.base, EVLOOP_ONCE);
	assert_int_equal(t.answers, 1);
	assert_int_equal(t.answered_in_run, 0);
}

/* A step that answers from a timer holds the run: the next step starts
 * only after it answered, and the answer comes after all. */
static void
test_waits_for_a_later_step(void **state)
{
	struct policy_check what;

	set_plan("aAaaa");
	memset(&what, 0, sizeof(what));
	policy_run(t.client, &what, steps, done_cb, &t);
	assert_string_equal(t.ran, "01");
	assert_non_null(t.pending[1]);
	/* Turns of the loop before the timer fires change nothing. */
	event_base_loop(t.base, EVLOOP_NONBLOCK);
	if (t.pending[1] != NULL) {
		assert_string_equal(t.ran, "01");
		assert_int_equal(t.answers, 0);
	}
	event_base_dispatch(t.base);
	assert_null(t.pending[1]);
	assert_string_equal(t.ran, "01234");
	assert_int_equal(t.answers, 1);
	assert_int_equal(t.got.v, VERDICT_ACCEPT);
}

/* Cancel while a step is in flight: its cancel function runs, no later
 * step runs, no answer comes; the client takes a new check after. */
static void
test_cancel_in_flight(void **state)
{
	struct policy_check what;

	set_plan("aaRaa");
	memset(&what, 0, sizeof(what));
	policy_run(t.client, &what, steps, done_cb, &t);
	assert_string_equal(t.ran, "012");
	policy_cancel(t.client);
	assert_int_equal(t.cancelled[2], 1);
	event_base_dispatch(t.base);
	assert_string_equal(t.ran, "012");
	assert_int_equal(t.answers, 0);
	/* A second cancel with nothing in flight does nothing. */
	policy_cancel(t.client);
	assert_int_equal(t.cancelled[2], 1);

	/* Cancelled after the last step answered but before the answer
	 * went out: no answer either. */
	set_plan("aaaaa");
	t.ran[0] = '\0';
	policy_run(t.client, &what, steps, done_cb, &t);
	assert_string_equal(t.ran, "01234");
	policy_cancel(t.client);
	event_base_dispatch(t.base);
	assert_int_equal(t.answers, 0);

	set_plan("tAaaa");
	run(steps, POLICY_BACKUP, 0);
	assert_string_equal(t.ran, "01234");
	assert_int_equal(t.answers, 1);
	assert_int_equal(t.got.code, 450);
}

/* Freeing the client with a step in flight cancels it (a session that
 * closes while its RCPT waits for DNS). */
static void
test_free_in_flight(void **state)
{
	struct policy_check what;

	set_plan("Aaaaa");
	memset(&what, 0, sizeof(what));
	policy_run(t.client, &what, steps, done_cb, &t);
	policy_client_free(t.client);
	t.client = NULL;
	assert_int_equal(t.cancelled[0], 1);
	event_base_dispatch(t.base);
	assert_int_equal(t.answers, 0);
	assert_string_equal(t.ran, "0");
}

/* Which steps a RCPT check runs: backup-only steps only in backup mode,
 * the delayed sender check only when asked for. */
static void
test_when(void **state)
{
	static const struct policy_step table[] = {
		{ "sender", step0, POLICY_STEP_SENDER },
		{ "always", step1, POLICY_STEP_ALWAYS },
		{ "backup", step2, POLICY_STEP_BACKUP },
		{ "backup2", step3, POLICY_STEP_BACKUP },
		{ NULL, NULL, POLICY_STEP_ALWAYS }
	};
	static const struct {
		enum policy_mode mode;
		int		 check_sender;
		const char	*ran;
	} rows[] = {
		{ POLICY_BACKUP, 0, "123" },
		{ POLICY_BACKUP, 1, "0123" },
		{ POLICY_FILTERED, 0, "1" },
		{ POLICY_FILTERED, 1, "01" },
	};
	size_t i;

	set_plan("aaaaa");
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		run(table, rows[i].mode, rows[i].check_sender);
		if (strcmp(t.ran, rows[i].ran) != 0)
			fail_msg("row %zu: ran %s, want %s", i, t.ran,
			    rows[i].ran);
		assert_int_equal(t.answers, 1);
	}
	/* A tempfail in a step the mode keeps, none from one it skips. */
	set_plan("aataa");
	run(table, POLICY_FILTERED, 0);
	assert_string_equal(t.ran, "1");
	assert_int_equal(t.got.v, VERDICT_ACCEPT);
	set_plan("ataaa");
	run(table, POLICY_FILTERED, 0);
	assert_int_equal(t.got.v, VERDICT_TEMPFAIL);
	assert_int_equal(t.got.code, 451);
}

/* A step for a clean recipient only (greylisting's place): it does not
 * run once an earlier step deferred or refused, so it records nothing
 * for a recipient already refused (docs/greylisting.md). */
static void
test_clean_only(void **state)
{
	static const struct policy_step table[] = {
		{ "always", step0, POLICY_STEP_ALWAYS },
		{ "backup", step1, POLICY_STEP_BACKUP },
		{ "clean", step2, POLICY_STEP_BACKUP_CLEAN },
		{ NULL, NULL, POLICY_STEP_ALWAYS }
	};

	set_plan("aaaaa");
	run(table, POLICY_BACKUP, 0);
	assert_string_equal(t.ran, "012");
	assert_int_equal(t.got.v, VERDICT_ACCEPT);
	/* Deferred by the step before: the answer is its tempfail. */
	set_plan("ataaa");
	run(table, POLICY_BACKUP, 0);
	assert_string_equal(t.ran, "01");
	assert_int_equal(t.got.v, VERDICT_TEMPFAIL);
	set_plan("taaaa");
	run(table, POLICY_BACKUP, 0);
	assert_string_equal(t.ran, "01");
	assert_int_equal(t.got.v, VERDICT_TEMPFAIL);
	/* Not in filtered pass-through, as any backup-only step. */
	set_plan("aaaaa");
	run(table, POLICY_FILTERED, 0);
	assert_string_equal(t.ran, "0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merge_rows, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_answer_from_the_loop,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_waits_for_a_later_step,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_when, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_only, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
