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

/*
 * One row of the table in learn.h: a reply line to RCPT as an MTA sends
 * it (the first line of a multi-line reply), and what it must teach.
 * Most are what a hostile client can provoke from the primary through
 * backmx (its sender, its rate, its errors): none of those may mark the
 * recipient invalid (docs/passthrough.md, "Learning").
 */
struct answer_row {
	const char	*mta;		/* who sends it */
	const char	*line;
	int		 status;	/* LEARN_* after the answer */
	int		 accepted;	/* counts as an acceptance */
};

static const struct answer_row answer_rows[] = {
	/* 2xx: the address is valid. */
	{ "Postfix", "250 2.1.5 Ok", LEARN_VALID, 1 },
	{ "RFC 5321 (forwarding)", "251 2.1.5 User not local; will forward",
	    LEARN_VALID, 1 },
	{ "OpenSMTPD", "250 2.1.5 Destination address valid: Recipient ok",
	    LEARN_VALID, 1 },
	{ "Exim", "250 Accepted", LEARN_VALID, 1 },
	{ "Postfix (VRFY off)", "252 2.0.0 <u@customer.example>",
	    LEARN_UNKNOWN, 0 },
	/* Definite "no such mailbox". */
	{ "Postfix", "550 5.1.1 <u@customer.example>: Recipient address "
	    "rejected: User unknown in virtual mailbox table",
	    LEARN_INVALID, 0 },
	{ "Postfix", "550 5.1.1 <u@customer.example>: Recipient address "
	    "rejected: User unknown in relay recipient table",
	    LEARN_INVALID, 0 },
	{ "Gmail", "550-5.1.1 The email account that you tried to reach does "
	    "not exist. Please try", LEARN_INVALID, 0 },
	{ "Exchange Online", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
	    "Recipient not found by SMTP address lookup", LEARN_INVALID, 0 },
	{ "Exchange", "550 5.1.1 User unknown", LEARN_INVALID, 0 },
	{ "RFC 5321 (moved)", "551 5.1.6 User not local; please try "
	    "<u@elsewhere.example>", LEARN_INVALID, 0 },
	/* 5.1.x that are not about the recipient's existence. */
	{ "Postfix (smtpd_reject_unlisted_sender, at RCPT)",
	    "550 5.1.0 <x@customer.example>: Sender address rejected: User "
	    "unknown in virtual mailbox table", LEARN_UNKNOWN, 0 },
	{ "Postfix (unknown_address_reject_code = 550)",
	    "550 5.1.8 <x@nx.example>: Sender address rejected: Domain not "
	    "found", LEARN_UNKNOWN, 0 },
	{ "Postfix", "450 4.1.8 <x@nx.example>: Sender address rejected: "
	    "Domain not found", LEARN_UNKNOWN, 0 },
	{ "Postfix (reject_unverified_sender)", "550 5.1.7 <x@example.org>: "
	    "Sender address rejected: undeliverable address",
	    LEARN_UNKNOWN, 0 },
	{ "a 5.1.1 about the sender", "553 5.1.1 Sender address rejected: "
	    "no such user", LEARN_UNKNOWN, 0 },
	{ "Postfix (reject_unknown_recipient_domain)", "550 5.1.2 "
	    "<u@customer.example>: Recipient address rejected: Domain not "
	    "found", LEARN_UNKNOWN, 0 },
	{ "Postfix", "501 5.1.3 Bad recipient address syntax",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix (greylisting, postgrey)", "450 4.1.1 <u@customer.example>"
	    ": Recipient address rejected: unverified address",
	    LEARN_UNKNOWN, 0 },
	/* No enhanced code: doubt. */
	{ "Exim", "550 Unrouteable address", LEARN_UNKNOWN, 0 },
	{ "Exim", "550 Administrative prohibition", LEARN_UNKNOWN, 0 },
	{ "OpenSMTPD", "550 Invalid recipient: <u@customer.example>",
	    LEARN_UNKNOWN, 0 },
	/* Mailbox state, not existence. */
	{ "OpenSMTPD (virtual table)", "524 5.2.4 Mailing list expansion "
	    "problem", LEARN_UNKNOWN, 0 },
	{ "Dovecot LMTP behind Postfix", "552 5.2.2 <u@customer.example> "
	    "Quota exceeded (mailbox for user is full)", LEARN_UNKNOWN, 0 },
	{ "Gmail", "452-4.2.2 The email account that you tried to reach is "
	    "over quota.", LEARN_UNKNOWN, 0 },
	{ "Gmail", "550-5.2.1 The email account that you tried to reach is "
	    "disabled.", LEARN_UNKNOWN, 0 },
	{ "Gmail", "450-4.2.1 The user you are trying to contact is "
	    "receiving mail at a rate that", LEARN_UNKNOWN, 0 },
	/* Refusals of backmx or of the client: policy, rate, relay. */
	{ "Postfix", "554 5.7.1 <u@elsewhere.example>: Relay access denied",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix (check_recipient_access)", "550 5.7.1 "
	    "<u@customer.example>: Recipient address rejected: Access denied",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix (RBL)", "554 5.7.1 Service unavailable; Client host "
	    "[192.0.2.1] blocked using zen.spamhaus.org", LEARN_UNKNOWN, 0 },
	{ "Gmail", "421-4.7.0 This message is suspicious due to the very low "
	    "reputation", LEARN_UNKNOWN, 0 },
	{ "Gmail", "550-5.7.1 Our system has detected an unusual rate of "
	    "unsolicited mail", LEARN_UNKNOWN, 0 },
	{ "Gmail", "550-5.7.26 This mail has been blocked because the "
	    "sender is unauthenticated.", LEARN_UNKNOWN, 0 },
	{ "Exchange Online", "550 5.7.606 Access denied, banned sending IP "
	    "[192.0.2.1]", LEARN_UNKNOWN, 0 },
	{ "Exchange", "550 5.7.1 Unable to relay", LEARN_UNKNOWN, 0 },
	{ "Exchange Online", "451 4.7.500 Server busy. Please try again "
	    "later from [192.0.2.1]", LEARN_UNKNOWN, 0 },
	{ "OpenSMTPD", "550 5.7.1 Delivery not authorized, message refused",
	    LEARN_UNKNOWN, 0 },
	/* The primary's limits and errors. */
	{ "Postfix", "421 4.7.0 mx.customer.example Error: too many errors",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix", "452 4.5.3 Error: too many recipients",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix", "503 5.5.1 Error: nested MAIL command", LEARN_UNKNOWN,
	    0 },
	{ "Postfix", "504 5.5.2 <u>: Recipient address rejected: need "
	    "fully-qualified address", LEARN_UNKNOWN, 0 },
	{ "Postfix", "552 5.3.4 Message size exceeds fixed limit",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix", "452 4.3.1 Insufficient system storage",
	    LEARN_UNKNOWN, 0 },
	{ "Postfix", "451 4.3.0 <u@customer.example>: Temporary lookup "
	    "failure", LEARN_UNKNOWN, 0 },
	{ "Exchange", "452 4.3.1 Insufficient system resources",
	    LEARN_UNKNOWN, 0 },
	{ "Exim", "451 Temporary local problem - please try later",
	    LEARN_UNKNOWN, 0 },
	{ "a 4xx with a 5.1.1-like class", "450 4.1.1 <u@customer.example>: "
	    "Recipient address rejected: User unknown", LEARN_UNKNOWN, 0 },
};

/* "550-5.1.1 text" into 550, "5.1.1" and the text, as the callers of
 * learn_rcpt_answer() hand them over (relay.c, sched.c, callout.c). */
static void
split_line(const char *line, int *code, char *enh, size_t enhsz,
    const char **text)
{
	const char *p = line + 4;
	size_t n;

	*code = atoi(line);
	enh[0] = '\0';
	*text = p;
	if (p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
		n = strcspn(p, " ");
		if (n < enhsz) {
			memcpy(enh, p, n);
			enh[n] = '\0';
			*text = p + n + (p[n] == ' ');
		}
	}
}

static void
test_answers(void **state)
{
	struct fx *f = *state;
	const struct domain *dom = domains_lookup(f->doms, "other.example");
	struct state_domain d;
	char addr[64], enh[16];
	const char *text;
	size_t i;
	int code, st;

	for (i = 0; i < sizeof(answer_rows) / sizeof(answer_rows[0]); i++) {
		const struct answer_row *r = &answer_rows[i];

		snprintf(addr, sizeof(addr), "u%zu@other.example", i);
		split_line(r->line, &code, enh, sizeof(enh), &text);
		learn_rcpt_answer(f->l, addr, code, enh, r->line,
		    STATE_SRC_PASSTHROUGH, T0);
		if ((st = learn_rcpt_status(f->l, dom, addr, T0)) != r->status)
			fail_msg("%s \"%s\": status %d, want %d", r->mta,
			    r->line, st, r->status);
		if (learn_says_invalid(code, enh, text) !=
		    (r->status == LEARN_INVALID))
			fail_msg("%s \"%s\": learn_says_invalid disagrees",
			    r->mta, r->line);
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

/* Nothing a refusal says turns a domain refused: once its primary
 * accepted something, replies of every other kind leave it active at
 * the end of its learning period (a domain is refused only for never
 * accepting, learn.h). */
static void
test_refusals_never_refuse_a_domain(void **state)
{
	struct fx *f = *state;
	struct state_domain d;
	char enh[16];
	const char *text;
	size_t i;
	int code;

	assert_int_equal(learn_domain(f->l, "r.example", T0, &d), 0);
	learn_rcpt_answer(f->l, "ok@r.example", 250, "2.1.5", "ok",
	    STATE_SRC_PASSTHROUGH, T0);
	for (i = 0; i < sizeof(answer_rows) / sizeof(answer_rows[0]); i++) {
		split_line(answer_rows[i].line, &code, enh, sizeof(enh), &text);
		if (code / 100 == 2)
			continue;
		learn_rcpt_answer(f->l, "x@r.example", code, enh,
		    answer_rows[i].line, STATE_SRC_PASSTHROUGH, T0 + 1);
	}
	assert_int_equal(learn_lifecycle(f->l, "r.example",
	    T0 + (int64_t)f->conf.learning_period + 1), STATE_DOM_ACTIVE);
	assert_int_equal(learn_refused_count(f->l), 0);
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

/* A record as another node learned it. */
static struct state_rcpt
remote_rcpt(const char *addr, int status, int64_t first, int64_t last,
    int64_t expires)
{
	struct state_rcpt r;

	memset(&r, 0, sizeof(r));
	snprintf(r.addr, sizeof(r.addr), "%s", addr);
	snprintf(r.domain, sizeof(r.domain), "%s", strchr(addr, '@') + 1);
	r.status = status;
	r.source = STATE_SRC_PASSTHROUGH;
	r.first_seen = first;
	r.last_seen = last;
	r.expires = expires;
	snprintf(r.why, sizeof(r.why), "%s", status == STATE_RCPT_VALID ?
	    "250 ok" : "550 5.1.1 no such user");
	return r;
}

/* The merge rules of docs/cluster.md, alone. */
static void
test_merge_rules(void **state)
{
	struct state_rcpt local, remote, before;
	struct state_domain dl, dr;

	(void)state;
	/* Nothing here: theirs. */
	remote = remote_rcpt("u@a.example", STATE_RCPT_VALID, T0, T0 + 10,
	    T0 + DAY);
	assert_int_equal(learn_rcpt_merge(&local, 0, &remote, T0 + 20), 1);
	assert_memory_equal(&local, &remote, sizeof(local));
	/* The same status: earliest first, latest last, later expiry. */
	local = remote_rcpt("u@a.example", STATE_RCPT_VALID, T0 + 5, T0 + 30,
	    T0 + DAY / 2);
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 40), 1);
	assert_int_equal(local.first_seen, T0);
	assert_int_equal(local.last_seen, T0 + 30);
	assert_int_equal(local.expires, T0 + DAY);
	/* Merging it again changes nothing. */
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 40), 0);
	/* A newer "invalid" wins, with its own expiry and text. */
	remote = remote_rcpt("u@a.example", STATE_RCPT_INVALID, T0 + 50,
	    T0 + 50, T0 + 60);
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 55), 1);
	assert_int_equal(local.status, STATE_RCPT_INVALID);
	assert_int_equal(local.first_seen, T0 + 50);
	assert_int_equal(local.expires, T0 + 60);
	assert_string_equal(local.why, "550 5.1.1 no such user");
	/* An older "valid" does not bring it back; a tie keeps ours. */
	remote = remote_rcpt("u@a.example", STATE_RCPT_VALID, T0, T0 + 40,
	    T0 + DAY);
	before = local;
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 55), 0);
	remote.last_seen = T0 + 50;
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 55), 0);
	assert_memory_equal(&local, &before, sizeof(local));
	/* An expired record teaches nothing; the operator's word stays. */
	remote = remote_rcpt("u@a.example", STATE_RCPT_VALID, T0, T0 + 99,
	    T0 + 56);
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 56), 0);
	local.source = STATE_SRC_ADMIN;
	local.expires = 0;
	remote.expires = T0 + DAY;
	assert_int_equal(learn_rcpt_merge(&local, 1, &remote, T0 + 56), 0);

	/* Domains: earliest start, union of acceptances. */
	memset(&dl, 0, sizeof(dl));
	memset(&dr, 0, sizeof(dr));
	dl.added = T0 + 100;
	dl.first_accept = 0;
	dr.added = T0;
	dr.first_accept = T0 + 7;
	dr.last_accept = T0 + 8;
	snprintf(dr.accept_how, sizeof(dr.accept_how), "passthrough");
	assert_int_equal(learn_domain_merge(&dl, &dr), 1);
	assert_int_equal(dl.added, T0);
	assert_int_equal(dl.first_accept, T0 + 7);
	assert_int_equal(dl.last_accept, T0 + 8);
	assert_string_equal(dl.accept_how, "passthrough");
	assert_int_equal(learn_domain_merge(&dl, &dr), 0);
	/* A later start or first acceptance, or none, changes nothing. */
	dr.added = T0 + 50;
	dr.first_accept = 0;
	dr.last_accept = T0 + 2;
	assert_int_equal(learn_domain_merge(&dl, &dr), 0);
	assert_int_equal(dl.added, T0);
	assert_int_equal(dl.first_accept, T0 + 7);
}

static int	shared_rcpts, shared_domains;

static void
count_rcpt(const struct state_rcpt *r, void *arg)
{
	shared_rcpts++;
}

static void
count_domain(const struct state_domain *d, void *arg)
{
	shared_domains++;
}

/* The rules on the store: a node's own learning is shared, what it
 * merges is not; a refused domain becomes active at another node's
 * acceptance; a learning one ends its period by the earliest start. */
static void
test_merge_store(void **state)
{
	struct fx *f = *state;
	int64_t p = f->conf.learning_period;
	struct state_rcpt remote;
	struct state_domain d, dr;

	shared_rcpts = shared_domains = 0;
	learn_on_write(f->l, count_rcpt, count_domain, NULL);
	learn_rcpt_answer(f->l, "v@customer.example", 250, "2.1.5", "ok",
	    STATE_SRC_PASSTHROUGH, T0);
	assert_int_equal(shared_rcpts, 1);
	assert_true(shared_domains >= 1);	/* its acceptance */
	shared_rcpts = shared_domains = 0;

	remote = remote_rcpt("w@customer.example", STATE_RCPT_VALID, T0, T0,
	    T0 + DAY);
	assert_int_equal(learn_merge_rcpt(f->l, &remote, T0 + 1), 1);
	assert_int_equal(learn_rcpt_status(f->l, NULL, "w@customer.example",
	    T0 + 1), LEARN_VALID);
	assert_int_equal(learn_merge_rcpt(f->l, &remote, T0 + 1), 0);

	/* b.example: refused here, accepted at another node. */
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0),
	    STATE_DOM_LEARNING);
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0 + p),
	    STATE_DOM_REFUSED);
	shared_domains = 0;
	memset(&dr, 0, sizeof(dr));
	snprintf(dr.name, sizeof(dr.name), "b.example");
	dr.added = T0;
	dr.first_accept = T0 + p + 3;
	dr.last_accept = T0 + p + 3;
	assert_int_equal(learn_merge_domain(f->l, &dr, T0 + p + 4), 1);
	assert_int_equal(learn_lifecycle(f->l, "b.example", T0 + p + 4),
	    STATE_DOM_ACTIVE);
	assert_int_equal(learn_refused_count(f->l), 0);

	/* c.example: first seen here late; another node started it
	 * earlier, so its period is over sooner. */
	assert_int_equal(learn_lifecycle(f->l, "c.example", T0 + 1000),
	    STATE_DOM_LEARNING);
	snprintf(dr.name, sizeof(dr.name), "c.example");
	dr.added = T0;
	dr.first_accept = T0 + 10;
	assert_int_equal(learn_merge_domain(f->l, &dr, T0 + 1001), 1);
	assert_int_equal(learn_lifecycle(f->l, "c.example", T0 + p),
	    STATE_DOM_ACTIVE);
	assert_int_equal(learn_domain(f->l, "c.example", T0 + p, &d), 0);
	assert_int_equal(d.added, T0);
	/* An unknown domain is not created by a merge. */
	snprintf(dr.name, sizeof(dr.name), "nope.example");
	assert_int_equal(learn_merge_domain(f->l, &dr, T0), 0);
	assert_int_equal(state_domain_get(f->st, "nope.example", &d), 0);
	/* Merges are never shared again; the transitions learn_domain()
	 * makes of its own are. */
	assert_int_equal(shared_rcpts, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_refusals_never_refuse_a_domain, setup, teardown),
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
		cmocka_unit_test(test_merge_rules),
		cmocka_unit_test_setup_teardown(test_merge_store, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
