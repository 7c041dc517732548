/*
 * dsn: RFC 3464 reports (dsn.h). Everything from a peer that goes into
 * the report — addresses, reply texts — should be printable ASCII by the
 * time it gets here (addresses were parsed strictly, reply texts
 * escaped); a reply text is still cleaned once more on the way in
 * (clean_text()), since one stray CR or LF there would end its field and
 * forge the next. The original headers are quoted as a
 * text/rfc822-headers part, untouched but cut at a line end.
 */
#include "dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "esmtp.h"
#include "clock.h"
#include "str.h"
#include "xmem.h"

/* RFC 3463 status from a reply text "ddd x.y.z ..." or from the code. */
static void
status_of(int code, const char *text, char *out, size_t outsz)
{
	const char *p = text ? strchr(text, ' ') : NULL;

	/* Our own texts may start with the status itself ("4.4.7 ..."). */
	if (text != NULL && text[0] >= '2' && text[0] <= '5' &&
	    text[1] == '.')
		p = text - 1;
	if (p != NULL && p[1] >= '2' && p[1] <= '5' && p[2] == '.') {
		size_t n = strcspn(p + 1, " ");

		if (n < outsz) {
			memcpy(out, p + 1, n);
			out[n] = '\0';
			return;
		}
	}
	snprintf(out, outsz, "%d.0.0", code / 100 == 5 ? 5 : 4);
}

/* A reply text as one line of printable US-ASCII: line breaks and tabs
 * become spaces, any other control or 8-bit octet '?'. */
static const char *
clean_text(const char *in, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; in != NULL && in[i] != '\0' && i + 1 < outsz; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '\r' || ch == '\n' || ch == '\t')
			ch = ' ';
		else if (ch < 0x20 || ch > 0x7e)
			ch = '?';
		out[i] = (char)ch;
	}
	out[i] = '\0';
	return out;
}

/* RFC 3464 §2.3.6: "smtp" is for an SMTP reply ("550 5.1.1 ..."); our
 * own texts ("4.4.7 message expired ...") get a type of our own. */
static const char *
diagnostic_type(const char *text)
{
	return text[0] >= '2' && text[0] <= '5' && text[1] >= '0' &&
	    text[1] <= '9' && text[2] >= '0' && text[2] <= '9' &&
	    (text[3] == ' ' || text[3] == '-') ? "smtp" : "X-Backmx";
}

static int
wants_report(const struct qdb_rcpt *r, int delayed)
{
	int n = r->params.notify;

	if (n == 0)	/* RFC 3461 §4.1: default is FAILURE (and DELAY) */
		return 1;
	if (n & ESMTP_NOTIFY_NEVER)
		return 0;
	return (n & (delayed ? ESMTP_NOTIFY_DELAY : ESMTP_NOTIFY_FAILURE)) !=
	    0;
}

int
dsn_build(const struct qdb_msg *m, const struct dsn_rcpt *rcpts,
    size_t nrcpt, int delayed, const char *head, size_t headlen,
    const char *myhostname, time_t now, struct envelope *env_out,
    unsigned char **body_out, size_t *bodylen_out)
{
	char date[64], arrival[64], last[64], addr[ADDR_PATH_MAX + 1];
	char st[32];
	char txt[QDB_TEXT_MAX];
	struct rcpt_params none;
	size_t i, n, hl = 0, want = 0;
	char *text = NULL;
	size_t textlen = 0;
	FILE *f;
	int eight = 0;

	/* Never to <>: a bounce of a bounce would loop (RFC 5321 §6.1). */
	if (m->sender.is_null || m->is_dsn)
		return -1;
	for (i = 0; i < nrcpt; i++)
		if (wants_report(rcpts[i].rcpt, delayed))
			want++;
	if (want == 0)
		return -1;

	/* The original headers: up to the first empty line. */
	for (i = 0; i + 1 < headlen && i < DSN_HEADERS_MAX; i++)
		if (head[i] == '\n' && (i + 2 < headlen &&
		    head[i + 1] == '\r' && head[i + 2] == '\n')) {
			hl = i + 1;
			break;
		}
	if (hl == 0) {
		/* No empty line within reach: cut at the last line end. */
		n = headlen < DSN_HEADERS_MAX ? headlen : DSN_HEADERS_MAX;
		while (n > 0 && head[n - 1] != '\n')
			n--;
		hl = n;
	}
	for (i = 0; i < hl; i++)
		if ((unsigned char)head[i] >= 0x80)
			eight = 1;

	clock_rfc5322(date, sizeof(date), now);
	clock_rfc5322(arrival, sizeof(arrival), m->arrival);
	addr_format(&m->sender, addr, sizeof(addr));
	if ((f = open_memstream(&text, &textlen)) == NULL)
		return -1;
	fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: %s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.dsn%lld@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/%s\"\r\n"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n"
	    "\r\n"
	    "--%s/%s\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n"
	    "This is the mail system at host %s.\r\n"
	    "\r\n",
	    myhostname, addr,
	    delayed ? "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender", date, m->id,
	    (long long)now, myhostname, m->id, myhostname, m->id, myhostname,
	    myhostname);
	if (delayed)
		fprintf(f, "Your message could not be delivered yet. It "
		    "will be retried;\r\nno need to send it again.\r\n"
		    "\r\n");
	else
		fprintf(f, "Your message could not be delivered to one or "
		    "more recipients.\r\nIts header is attached below.\r\n"
		    "\r\n");
	for (i = 0; i < nrcpt; i++) {
		if (!wants_report(rcpts[i].rcpt, delayed))
			continue;
		addr_format(&rcpts[i].rcpt->addr, addr, sizeof(addr));
		fprintf(f, "<%s>: %s\r\n", addr, clean_text(rcpts[i].text,
		    txt, sizeof(txt)));
	}
	fprintf(f, "\r\n--%s/%s\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; %s\r\n"
	    "X-Backmx-Queue-ID: %s\r\n", m->id, myhostname, myhostname, m->id);
	if (m->params.envid[0] != '\0')
		fprintf(f, "Original-Envelope-Id: %s\r\n", m->params.envid);
	fprintf(f, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < nrcpt; i++) {
		const struct qdb_rcpt *r = rcpts[i].rcpt;

		if (!wants_report(r, delayed))
			continue;
		addr_format(&r->addr, addr, sizeof(addr));
		status_of(rcpts[i].code, rcpts[i].text, st, sizeof(st));
		fprintf(f, "\r\nFinal-Recipient: %s; %s\r\n",
		    r->addr.is_utf8 ? "utf-8" : "rfc822", addr);
		if (r->params.orcpt[0] != '\0')
			fprintf(f, "Original-Recipient: %s;%s\r\n",
			    r->params.orcpt_type[0] ? r->params.orcpt_type :
			    "rfc822", r->params.orcpt);
		fprintf(f, "Action: %s\r\nStatus: %s\r\n",
		    delayed ? "delayed" : "failed", st);
		/* RFC 3464 §2.3.5: the MTA's name, not our
		 * "host[addr]:port". */
		if (rcpts[i].relay != NULL && rcpts[i].relay[0] != '\0')
			fprintf(f, "Remote-MTA: dns; %.*s\r\n",
			    (int)strcspn(rcpts[i].relay, "[:"),
			    clean_text(rcpts[i].relay, txt, sizeof(txt)));
		if (rcpts[i].text != NULL && rcpts[i].text[0] != '\0' &&
		    rcpts[i].code > 0) {
			clean_text(rcpts[i].text, txt, sizeof(txt));
			fprintf(f, "Diagnostic-Code: %s; %s\r\n",
			    diagnostic_type(txt), txt);
		}
		/* RFC 3464 §2.3.7: when it was last tried: now if this
		 * attempt reached it, else the message's last attempt;
		 * never tried, no date. */
		if (rcpts[i].relay != NULL && rcpts[i].relay[0] != '\0')
			fprintf(f, "Last-Attempt-Date: %s\r\n", date);
		else if (m->last_attempt > 0)
			fprintf(f, "Last-Attempt-Date: %s\r\n",
			    clock_rfc5322(last, sizeof(last),
			    m->last_attempt));
	}
	fprintf(f, "\r\n--%s/%s\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "\r\n", m->id, myhostname);
	fwrite(head, 1, hl, f);
	fprintf(f, "\r\n--%s/%s--\r\n", m->id, myhostname);
	fclose(f);

	envelope_init(env_out);
	envelope_new_id(env_out->id);
	env_out->sender.is_null = 1;
	env_out->arrival = now;
	str_copy(env_out->helo, sizeof(env_out->helo), myhostname);
	str_copy(env_out->client_addr, sizeof(env_out->client_addr), "");
	str_copy(env_out->client_name, sizeof(env_out->client_name),
	    "localhost");
	str_copy(env_out->proto, sizeof(env_out->proto), "DSN");
	env_out->data_flags = eight ? DATA_HAS_8BIT : 0;
	if (eight)
		env_out->params.body = ESMTP_BODY_8BITMIME;
	/* To a UTF-8 mailbox the DSN's own RCPT needs SMTPUTF8 (RFC 6531
	 * §3.4): without it, it would go nowhere that does not offer it. */
	env_out->params.smtputf8 = str_has_8bit(m->sender.local,
	    strlen(m->sender.local));
	memset(&none, 0, sizeof(none));
	envelope_add_rcpt(env_out, &m->sender, &none);
	*body_out = (unsigned char *)text;
	*bodylen_out = textlen;
	return 0;
}
