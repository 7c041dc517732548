/*
 * dsn_test: the reports of dsn.c taken apart as a mail reader would —
 * MIME parts by their boundary, header fields unfolded, the
 * message/delivery-status part as its groups of fields (RFC 3464 §2) —
 * and their structure asserted, never a byte-exact blob: multipart/report
 * with report-type=delivery-status (RFC 6522), the per-message and
 * per-recipient fields, failed vs delayed, RET and ENVID, the original's
 * headers only, never to <>, and reply texts that must not break the
 * structure (docs/queue.md "DSNs").
 */
#include "dsn.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "clock.h"
#include "esmtp.h"

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
#define MAXPARTS	8
#define MAXGROUPS	8

/* A span of the report. */
struct span {
	const char	*p;
	size_t		 n;
};

struct part {
	struct span	 hdr;		/* header fields, each ending CRLF */
	struct span	 body;
};

struct report {
	char		*text;		/* the report, NUL-terminated copy */
	size_t		 len;
	struct span	 hdr;		/* the top header fields */
	struct part	 parts[MAXPARTS];
	int		 nparts;
	struct span	 groups[MAXGROUPS];	/* of message/delivery-status */
	int		 ngroups;
};

/* The value of field 'name' in a header block, unfolded (RFC 5322
 * §2.2.3), into out; 1 if found, 0 if not. */
static int
field(struct span s, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name), i = 0, o = 0;

	while (i < s.n) {
		size_t eol = i;

		while (eol < s.n && s.p[eol] != '\n')
			eol++;
		if (eol - i > nl && strncasecmp(s.p + i, name, nl) == 0 &&
		    s.p[i + nl] == ':') {
			size_t j = i + nl + 1;

			for (;;) {
				while (j < s.n && s.p[j] != '\r' &&
				    s.p[j] != '\n') {
					if (o + 1 < outsz)
						out[o++] = s.p[j];
					j++;
				}
				/* CRLF then WSP: the field goes on. */
				if (j + 2 < s.n && s.p[j] == '\r' &&
				    (s.p[j + 2] == ' ' || s.p[j + 2] == '\t'))
					j += 2;
				else
					break;
			}
			out[o] = '\0';
			while (o > 0 && out[0] == ' ')
				memmove(out, out + 1, o--);
			return 1;
		}
		i = eol + 1;
	}
	out[0] = '\0';
	return 0;
}

static const char *
span_find(struct span s, const char *needle)
{
	size_t nl = strlen(needle), i;

	for (i = 0; i + nl <= s.n; i++)
		if (memcmp(s.p + i, needle, nl) == 0)
			return s.p + i;
	return NULL;
}

/* Every line ends in CRLF, is at most 998 octets (RFC 5322 §2.1.1) and
 * 7-bit unless 'eight' allows more. */
static void
assert_lines(const char *p, size_t n, int eight)
{
	size_t i, col = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				fail_msg("bare CR at %zu: %s", i, p + i);
			i++;
			col = 0;
			continue;
		}
		if (ch == '\n')
			fail_msg("bare LF at %zu: ...%.40s", i,
			    p + (i > 40 ? i - 40 : 0));
		if (ch == '\0' || (ch >= 0x80 && !eight))
			fail_msg("octet 0x%02x at %zu", ch, i);
		if (++col > 998)
			fail_msg("line over 998 octets at %zu", i);
	}
	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		fail_msg("no CRLF at the end");
}

/* A group of the delivery-status part: each line a field ("Name:") or
 * the continuation of one (RFC 3464 §2.1, RFC 5322 §2.2). */
static void
assert_fields(const char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (p[i] != ' ' && p[i] != '\t') {
			for (k = i; k < n && (isalnum((unsigned char)p[k]) ||
			    p[k] == '-'); k++)
				;
			if (k == i || k >= n || p[k] != ':')
				fail_msg("not a field: %.*s", (int)(n - i),
				    p + i);
		} else if (i == 0)
			fail_msg("a group starts with a continuation");
		while (i < n && p[i] != '\n')
			i++;
		i++;
	}
}

/* Take the report apart: the top header, the parts between the
 * boundary lines (RFC 2046 §5.1.1), the groups of the delivery-status
 * part (separated by empty lines). */
static void
parse(const unsigned char *body, size_t len, struct report *r, int eight)
{
	char ct[512], delim[300];
	const char *b, *e, *p, *end;
	struct span rest;

	memset(r, 0, sizeof(*r));
	r->text = malloc(len + 1);
	assert_non_null(r->text);
	memcpy(r->text, body, len);
	r->text[len] = '\0';
	r->len = len;
	assert_lines(r->text, len, eight);

	e = strstr(r->text, "\r\n\r\n");
	assert_non_null(e);
	r->hdr.p = r->text;
	r->hdr.n = (size_t)(e - r->text) + 2;
	assert_true(field(r->hdr, "Content-Type", ct, sizeof(ct)));
	if (strncasecmp(ct, "multipart/report;", 17) != 0 ||
	    strstr(ct, "report-type=delivery-status") == NULL)
		fail_msg("Content-Type: %s", ct);
	b = strstr(ct, "boundary=\"");
	assert_non_null(b);
	b += 10;
	assert_non_null(strchr(b, '"'));
	snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)(strchr(b, '"') - b),
	    b);

	/* The body starts at the empty line's CRLF: a delimiter right
	 * after the header is found too. */
	p = e + 2;
	end = r->text + len;
	p = strstr(p, delim);
	assert_non_null(p);
	for (;;) {
		const char *next, *h;

		p += strlen(delim);
		if (strncmp(p, "--", 2) == 0) {
			/* The close delimiter, then the epilogue: none. */
			assert_string_equal(p, "--\r\n");
			break;
		}
		assert_true(strncmp(p, "\r\n", 2) == 0);
		p += 2;
		next = strstr(p, delim);
		if (next == NULL)
			fail_msg("part %d has no end", r->nparts);
		assert_true(r->nparts < MAXPARTS);
		h = strstr(p, "\r\n\r\n");
		if (h == NULL || h > next)
			fail_msg("part %d has no header", r->nparts);
		r->parts[r->nparts].hdr.p = p;
		r->parts[r->nparts].hdr.n = (size_t)(h - p) + 2;
		r->parts[r->nparts].body.p = h + 4;
		r->parts[r->nparts].body.n = (size_t)(next - (h + 4));
		r->nparts++;
		p = next;
	}
	assert_true(p + 4 == end);

	/* message/delivery-status: the groups. */
	assert_true(r->nparts >= 2);
	rest = r->parts[1].body;
	while (rest.n > 0) {
		const char *g = span_find(rest, "\r\n\r\n");
		size_t n = g ? (size_t)(g - rest.p) + 2 : rest.n;

		assert_true(r->ngroups < MAXGROUPS);
		assert_fields(rest.p, n);
		r->groups[r->ngroups].p = rest.p;
		r->groups[r->ngroups].n = n;
		r->ngroups++;
		n = g ? n + 2 : n;
		rest.p += n;
		rest.n -= n;
	}
}

static void
report_free(struct report *r)
{
	free(r->text);
}

static void
assert_field(struct span s, const char *name, const char *want)
{
	char got[1024];

	if (!field(s, name, got, sizeof(got)))
		fail_msg("no %s: in %.*s", name, (int)s.n, s.p);
	if (strcmp(got, want) != 0)
		fail_msg("%s: \"%s\", want \"%s\"", name, got, want);
}

static void
assert_no_field(struct span s, const char *name)
{
	char got[1024];

	if (field(s, name, got, sizeof(got)))
		fail_msg("%s: %s, want none", name, got);
}

static void
assert_content_type(const struct part *pt, const char *want)
{
	char got[256];

	assert_true(field(pt->hdr, "Content-Type", got, sizeof(got)));
	if (strncasecmp(got, want, strlen(want)) != 0)
		fail_msg("Content-Type: %s, want %s", got, want);
}

/* -- the message and its recipients ----------------------------------- */

static const char HEAD[] =
    "Received: from client.example by mx2.example\r\n"
    "Message-ID: <orig-1@sender.example>\r\n"
    "Subject: the original\r\n"
    "\r\n"
    "the body, never in a report\r\n";

#define ARRIVAL	((time_t)1780000000)
#define NOW	((time_t)1780003600)

static void
msg_init(struct qdb_msg *m, struct qdb_rcpt *r, size_t nr)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	memset(r, 0, nr * sizeof(*r));
	strcpy(m->id, "Q1d2");
	strcpy(m->sender.local, "s");
	strcpy(m->sender.domain, "sender.example");
	m->arrival = ARRIVAL;
	for (i = 0; i < nr; i++) {
		snprintf(r[i].addr.local, sizeof(r[i].addr.local), "u%zu", i);
		strcpy(r[i].addr.domain, "customer.example");
	}
}

static int
build(const struct qdb_msg *m, const struct dsn_rcpt *dr, size_t n,
    int delayed, const char *head, size_t headlen, struct envelope *env,
    struct report *rep)
{
	unsigned char *body = NULL;
	size_t len = 0;

	if (dsn_build(m, dr, n, delayed, head, headlen, "mx2.example", NOW,
	    env, &body, &len) == -1)
		return -1;
	parse(body, len, rep, env->data_flags != 0);
	free(body);
	return 0;
}

static void
test_failed_report(void **state)
{
	struct qdb_msg m;
	struct qdb_rcpt r[2];
	struct dsn_rcpt dr[2];
	struct envelope env;
	struct report rep;
	char when[64], v[512];
	const struct span *g;
	size_t hl;

	msg_init(&m, r, 2);
	strcpy(m.params.envid, "env-77");
	strcpy(r[0].params.orcpt_type, "rfc822");
	strcpy(r[0].params.orcpt, "Orig@Customer.example");
	dr[0] = (struct dsn_rcpt){ &r[0], 550,
	    "550 5.1.1 <u0@customer.example>: no such user",
	    "mx.customer.example[192.0.2.25]:25" };
	dr[1] = (struct dsn_rcpt){ &r[1], 552, "552 5.2.2 mailbox full",
	    "" };
	m.last_attempt = ARRIVAL + 60;
	assert_int_equal(build(&m, dr, 2, 0, HEAD, sizeof(HEAD) - 1, &env,
	    &rep), 0);

	/* The envelope: from <> to the original sender, alone. */
	assert_true(env.sender.is_null);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpts[0].addr.local, "s");
	assert_string_equal(env.rcpts[0].addr.domain, "sender.example");
	assert_int_equal(env.rcpts[0].params.notify, 0);
	assert_string_not_equal(env.id, m.id);

	/* The top header. */
	assert_field(rep.hdr, "To", "<s@sender.example>");
	assert_field(rep.hdr, "MIME-Version", "1.0");
	assert_field(rep.hdr, "Auto-Submitted", "auto-replied");
	assert_true(field(rep.hdr, "From", v, sizeof(v)));
	assert_non_null(strstr(v, "<MAILER-DAEMON@mx2.example>"));
	assert_true(field(rep.hdr, "Subject", v, sizeof(v)));
	assert_non_null(strstr(v, "Undelivered"));

	/* Three parts: for a human, for a program, the original's header. */
	assert_int_equal(rep.nparts, 3);
	assert_content_type(&rep.parts[0], "text/plain");
	assert_content_type(&rep.parts[1], "message/delivery-status");
	assert_content_type(&rep.parts[2], "text/rfc822-headers");
	assert_non_null(span_find(rep.parts[0].body,
	    "<u0@customer.example>: 550 5.1.1"));
	assert_non_null(span_find(rep.parts[0].body,
	    "<u1@customer.example>: 552 5.2.2 mailbox full"));

	/* Per message, then one group per recipient. */
	assert_int_equal(rep.ngroups, 3);
	g = &rep.groups[0];
	assert_field(*g, "Reporting-MTA", "dns; mx2.example");
	assert_field(*g, "Original-Envelope-Id", "env-77");
	assert_field(*g, "Arrival-Date", clock_rfc5322(when, sizeof(when),
	    ARRIVAL));
	assert_no_field(*g, "Final-Recipient");

	g = &rep.groups[1];
	assert_field(*g, "Final-Recipient", "rfc822; u0@customer.example");
	assert_field(*g, "Original-Recipient",
	    "rfc822;Orig@Customer.example");
	assert_field(*g, "Action", "failed");
	assert_field(*g, "Status", "5.1.1");
	assert_field(*g, "Remote-MTA", "dns; mx.customer.example");
	assert_field(*g, "Diagnostic-Code",
	    "smtp; 550 5.1.1 <u0@customer.example>: no such user");
	assert_field(*g, "Last-Attempt-Date", clock_rfc5322(when,
	    sizeof(when), NOW));

	g = &rep.groups[2];
	assert_field(*g, "Final-Recipient", "rfc822; u1@customer.example");
	assert_no_field(*g, "Original-Recipient");
	assert_field(*g, "Action", "failed");
	assert_field(*g, "Status", "5.2.2");
	assert_no_field(*g, "Remote-MTA");
	assert_field(*g, "Diagnostic-Code", "smtp; 552 5.2.2 mailbox full");
	/* Not reached by this attempt: the message's last attempt. */
	assert_field(*g, "Last-Attempt-Date", clock_rfc5322(when,
	    sizeof(when), ARRIVAL + 60));

	/* The original's header, exactly, and nothing of its body. */
	hl = (size_t)(strstr(HEAD, "\r\n\r\n") + 2 - HEAD);
	assert_int_equal(rep.parts[2].body.n, hl);
	assert_memory_equal(rep.parts[2].body.p, HEAD, hl);
	assert_null(strstr(rep.text, "the body, never"));
	envelope_free(&env);
	report_free(&rep);
}

/* A delay warning: Action delayed, status 4.x.x, the subject says it is
 * still being retried; no ENVID, no Original-Envelope-Id. */
static void
test_delay_warning(void **state)
{
	static const struct {
		int		 code;
		const char	*text;
		const char	*status;
	} rows[] = {
		{ 451, "451 4.4.1 no answer from host", "4.4.1" },
		{ 421, "421 4.3.2 shutting down", "4.3.2" },
		/* No enhanced code in the reply: the class of the code. */
		{ 451, "451 try again later", "4.0.0" },
		/* Our own texts start with the status. */
		{ 451, "4.4.7 connection refused", "4.4.7" },
	};
	struct qdb_msg m;
	struct qdb_rcpt r[1];
	struct dsn_rcpt dr;
	struct envelope env;
	struct report rep;
	char v[512];
	size_t i;

	for (i = 0; i < nitems(rows); i++) {
		msg_init(&m, r, 1);
		dr = (struct dsn_rcpt){ &r[0], rows[i].code, rows[i].text,
		    "" };
		assert_int_equal(build(&m, &dr, 1, 1, HEAD, sizeof(HEAD) - 1,
		    &env, &rep), 0);
		assert_true(field(rep.hdr, "Subject", v, sizeof(v)));
		assert_non_null(strstr(v, "Delayed"));
		assert_non_null(span_find(rep.parts[0].body, "retried"));
		assert_int_equal(rep.ngroups, 2);
		assert_no_field(rep.groups[0], "Original-Envelope-Id");
		assert_field(rep.groups[1], "Action", "delayed");
		assert_field(rep.groups[1], "Status", rows[i].status);
		envelope_free(&env);
		report_free(&rep);
	}
}

/* RET=HDRS, RET=FULL or none: the report carries the original's header
 * only (docs/queue.md: text/rfc822-headers), never its body. */
static void
test_ret_headers_only(void **state)
{
	static const enum esmtp_ret rets[] = {
		ESMTP_RET_NONE, ESMTP_RET_HDRS, ESMTP_RET_FULL,
	};
	struct qdb_msg m;
	struct qdb_rcpt r[1];
	struct dsn_rcpt dr;
	struct envelope env;
	struct report rep;
	size_t i;

	for (i = 0; i < nitems(rets); i++) {
		msg_init(&m, r, 1);
		m.params.ret = rets[i];
		dr = (struct dsn_rcpt){ &r[0], 550, "550 5.1.1 no", "" };
		assert_int_equal(build(&m, &dr, 1, 0, HEAD, sizeof(HEAD) - 1,
		    &env, &rep), 0);
		assert_int_equal(rep.nparts, 3);
		assert_content_type(&rep.parts[2], "text/rfc822-headers");
		assert_non_null(span_find(rep.parts[2].body,
		    "Subject: the original\r\n"));
		assert_null(strstr(rep.text, "the body, never"));
		/* The text says what is attached: the header. */
		assert_non_null(span_find(rep.parts[0].body,
		    "Its header is attached below."));
		envelope_free(&env);
		report_free(&rep);
	}
}

/* RFC 3464 §2.3.6-7: an expiry's text is ours, not an SMTP reply, so
 * its Diagnostic-Code is not of type smtp; a recipient never tried has
 * no Last-Attempt-Date. */
static void
test_our_own_texts(void **state)
{
	struct qdb_msg m;
	struct qdb_rcpt r[1];
	struct dsn_rcpt dr;
	struct envelope env;
	struct report rep;

	(void)state;
	msg_init(&m, r, 1);
	m.last_attempt = 0;
	dr = (struct dsn_rcpt){ &r[0], 451, "4.4.7 message expired after "
	    "691200 s in the queue; last error: 451 4.4.7 message expired "
	    "in the queue", "" };
	assert_int_equal(build(&m, &dr, 1, 0, HEAD, sizeof(HEAD) - 1,
	    &env, &rep), 0);
	assert_field(rep.groups[1], "Status", "4.4.7");
	assert_field(rep.groups[1], "Diagnostic-Code", "X-Backmx; 4.4.7 "
	    "message expired after 691200 s in the queue; last error: 451 "
	    "4.4.7 message expired in the queue");
	assert_no_field(rep.groups[1], "Last-Attempt-Date");
	assert_no_field(rep.groups[1], "Remote-MTA");
	envelope_free(&env);
	report_free(&rep);
}

/* Who gets a report: never <> and never for a DSN of ours (a bounce of a
 * bounce loops); per recipient as its NOTIFY says (RFC 3461 §4.1). */
static void
test_who_is_reported(void **state)
{
	static const struct {
		int	 null_sender, is_dsn;
		int	 notify[2];
		int	 delayed;
		int	 want;		/* recipients reported; -1 none */
	} rows[] = {
		{ 0, 0, { 0, 0 }, 0, 2 },
		{ 1, 0, { 0, 0 }, 0, -1 },
		{ 1, 0, { 0, 0 }, 1, -1 },
		{ 0, 1, { 0, 0 }, 0, -1 },
		{ 0, 1, { 0, 0 }, 1, -1 },
		{ 0, 0, { ESMTP_NOTIFY_NEVER, ESMTP_NOTIFY_NEVER }, 0, -1 },
		{ 0, 0, { ESMTP_NOTIFY_SUCCESS, ESMTP_NOTIFY_SUCCESS }, 0, -1 },
		{ 0, 0, { ESMTP_NOTIFY_NEVER, 0 }, 0, 1 },
		{ 0, 0, { ESMTP_NOTIFY_FAILURE, ESMTP_NOTIFY_DELAY }, 0, 1 },
		{ 0, 0, { ESMTP_NOTIFY_FAILURE, ESMTP_NOTIFY_DELAY }, 1, 1 },
		{ 0, 0, { ESMTP_NOTIFY_FAILURE, ESMTP_NOTIFY_FAILURE }, 1,
		    -1 },
		{ 0, 0, { ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY, 0 }, 1,
		    2 },
	};
	struct qdb_msg m;
	struct qdb_rcpt r[2];
	struct dsn_rcpt dr[2];
	struct envelope env;
	struct report rep;
	size_t i;
	int rc;

	for (i = 0; i < nitems(rows); i++) {
		msg_init(&m, r, 2);
		if (rows[i].null_sender) {
			m.sender.is_null = 1;
			m.sender.local[0] = m.sender.domain[0] = '\0';
		}
		m.is_dsn = rows[i].is_dsn;
		r[0].params.notify = rows[i].notify[0];
		r[1].params.notify = rows[i].notify[1];
		dr[0] = (struct dsn_rcpt){ &r[0], 550, "550 5.1.1 no", "" };
		dr[1] = (struct dsn_rcpt){ &r[1], 550, "550 5.1.1 no", "" };
		rc = build(&m, dr, 2, rows[i].delayed, HEAD, sizeof(HEAD) - 1,
		    &env, &rep);
		if (rows[i].want == -1) {
			if (rc != -1)
				fail_msg("row %zu: a report", i);
			continue;
		}
		if (rc != 0)
			fail_msg("row %zu: no report", i);
		if (rep.ngroups != rows[i].want + 1)
			fail_msg("row %zu: %d recipients, want %d", i,
			    rep.ngroups - 1, rows[i].want);
		envelope_free(&env);
		report_free(&rep);
	}
}

/* What the primary said goes in as text; whatever its bytes, the
 * report stays whole: CRLF lines of at most 998 octets, 7-bit, three
 * parts, one group per recipient, the diagnostic one field. */
static void
test_odd_replies(void **state)
{
	static char long_text[QDB_TEXT_MAX];
	static const char *rows[] = {
		"550 5.1.1 two\r\nlines",
		"550 5.1.1 a bare\nLF",
		"550 5.1.1 a bare\rCR",
		"550 5.1.1 \r\n\r\nFinal-Recipient: rfc822; evil@example",
		"550 5.1.1 \r\n--Q1d2/mx2.example--\r\n",
		"550 5.1.1 8-bit \xc3\xa9\xff bytes",
		"550 5.1.1 a\ttab and \x01 control",
		long_text,
	};
	struct qdb_msg m;
	struct qdb_rcpt r[2];
	struct dsn_rcpt dr[2];
	struct envelope env;
	struct report rep;
	char v[1024];
	size_t i;

	memset(long_text, 'x', sizeof(long_text) - 1);
	memcpy(long_text, "550 5.7.1 ", 10);
	for (i = 0; i < nitems(rows); i++) {
		msg_init(&m, r, 2);
		dr[0] = (struct dsn_rcpt){ &r[0], 550, rows[i],
		    "mx.customer.example" };
		dr[1] = (struct dsn_rcpt){ &r[1], 550, "550 5.1.1 plain",
		    "" };
		assert_int_equal(build(&m, dr, 2, 0, HEAD, sizeof(HEAD) - 1,
		    &env, &rep), 0);
		assert_int_equal(env.data_flags, 0);
		assert_int_equal(rep.nparts, 3);
		assert_int_equal(rep.ngroups, 3);
		assert_field(rep.groups[1], "Final-Recipient",
		    "rfc822; u0@customer.example");
		assert_field(rep.groups[1], "Status",
		    i == nitems(rows) - 1 ? "5.7.1" : "5.1.1");
		assert_true(field(rep.groups[1], "Diagnostic-Code", v,
		    sizeof(v)));
		assert_true(strncmp(v, "smtp; 550 5.", 12) == 0);
		assert_field(rep.groups[2], "Final-Recipient",
		    "rfc822; u1@customer.example");
		assert_field(rep.groups[2], "Diagnostic-Code",
		    "smtp; 550 5.1.1 plain");
		envelope_free(&env);
		report_free(&rep);
	}
}

/* The original's header: cut at the empty line, or at the last line end
 * within reach when there is none; 8-bit bytes there make the report
 * 8BITMIME. */
static void
test_original_header(void **state)
{
	static const char nobody[] = "Subject: a\r\nX-Cut: b";
	static const char eight[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
	struct qdb_msg m;
	struct qdb_rcpt r[1];
	struct dsn_rcpt dr;
	struct envelope env;
	struct report rep;

	msg_init(&m, r, 1);
	dr = (struct dsn_rcpt){ &r[0], 550, "550 5.1.1 no", "" };
	assert_int_equal(build(&m, &dr, 1, 0, nobody, sizeof(nobody) - 1,
	    &env, &rep), 0);
	assert_int_equal(rep.parts[2].body.n, 12);
	assert_memory_equal(rep.parts[2].body.p, "Subject: a\r\n", 12);
	envelope_free(&env);
	report_free(&rep);

	assert_int_equal(build(&m, &dr, 1, 0, eight, sizeof(eight) - 1,
	    &env, &rep), 0);
	assert_int_not_equal(env.data_flags, 0);
	assert_int_equal(env.params.body, ESMTP_BODY_8BITMIME);
	assert_non_null(span_find(rep.parts[2].body, "caf\xc3\xa9"));
	assert_null(strstr(rep.text, "body\r\n"));
	envelope_free(&env);
	report_free(&rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_report),
		cmocka_unit_test(test_delay_warning),
		cmocka_unit_test(test_ret_headers_only),
		cmocka_unit_test(test_our_own_texts),
		cmocka_unit_test(test_who_is_reported),
		cmocka_unit_test(test_odd_replies),
		cmocka_unit_test(test_original_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
