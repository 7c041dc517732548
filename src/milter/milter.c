/*
 * milter: the conversation with backup mode's content filters (milter.h,
 * docs/milter.md). Each filter of the chain is a small state machine of
 * its own: 'step' names what it was last sent, 'waiting' whether an
 * answer is due. The chain asks one filter at a time, in order.
 */
#include "milter.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "body.h"
#include "config.h"
#include "log.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

#define MILTER_MAX		8	/* filters in backup_milters */
#define HEADER_BLOCK_MAX	(256 * 1024)	/* headers read at the dot */
#define HEADERS_MAX		1000	/* fields shown to a filter */
#define PROGRESS_FACTOR		4	/* 'p' extends to 4x the timeout */
#define OUT_HIGH		(256 * 1024)	/* body queued to a filter */

enum step {
	ST_CONNECT,	/* the socket connects */
	ST_OPTNEG,	/* options sent */
	ST_CONN,	/* SMFIC_CONNECT */
	ST_HELO,
	ST_MAIL,
	ST_READY,	/* open: waits for a stage */
	ST_RCPT,
	ST_DATA,
	ST_HEADER,	/* 'hdr' is the field */
	ST_EOH,
	ST_BODY,	/* 'off' is where the body goes on */
	ST_EOM,
	ST_DONE,	/* accepted the message: asked no more */
	ST_FAILED,
};

enum stage { STAGE_NONE, STAGE_RCPT, STAGE_EOM };

struct filter {
	struct milter_tx	*tx;
	char			 spec[128];
	struct bufferevent	*bev;
	struct event		*timer;
	enum step		 step;
	int			 waiting;	/* an answer is due */
	uint32_t		 actions, steps;
	size_t			 hdr;		/* ST_HEADER: field index */
	uint64_t		 off;		/* ST_BODY: body offset */
	int			 skip_body;	/* 's' said */
	struct timeval		 eom_start;
};

struct field {
	size_t	name_off, name_len;
	size_t	value_off, value_len;	/* after the colon, lead space gone */
};

/* --- the header block --------------------------------------------------- */

/* The header block as read at the dot (bounded by HEADER_BLOCK_MAX). */
struct hblock {
	char		*buf;
	size_t		 fields_end;	/* where the empty line starts */
	size_t		 body_start;	/* after it */
	int		 whole;		/* the empty line was found */
	int		 truncated;	/* fields past HEADERS_MAX or the
					   HEADER_BLOCK_MAX octets */
	int		 nul;		/* a NUL among the fields */
	struct field	*fl;
	size_t		 nf;
};

static void
hblock_free(struct hblock *h)
{
	free(h->buf);
	free(h->fl);
	memset(h, 0, sizeof(*h));
}

/* Read the header block and index its fields: each field runs from its
 * name to the start of the next one, folded lines included. */
static int
hblock_read(const struct body *b, struct hblock *h)
{
	uint64_t size = body_size(b);
	size_t cap = size < HEADER_BLOCK_MAX ? (size_t)size : HEADER_BLOCK_MAX;
	size_t got = 0, i = 0;
	long n;

	memset(h, 0, sizeof(*h));
	h->buf = xmalloc(cap + 1);
	h->fl = xcalloc(HEADERS_MAX, sizeof(*h->fl));
	while (got < cap && (n = body_read(b, got, h->buf + got,
	    cap - got)) > 0)
		got += (size_t)n;
	if (got < cap) {
		hblock_free(h);
		return -1;
	}
	h->buf[cap] = '\0';
	while (i < cap) {
		char *eol = memchr(h->buf + i, '\n', cap - i), *colon;
		size_t line_end = eol ? (size_t)(eol - h->buf) + 1 : cap;

		if (eol == NULL) {
			h->truncated = cap < size;	/* cut by the bound */
			break;
		}
		if (h->buf[i] == '\r' || h->buf[i] == '\n') {
			h->whole = 1;
			h->fields_end = i;
			h->body_start = line_end;
			break;
		}
		if ((h->buf[i] == ' ' || h->buf[i] == '\t') && h->nf > 0)
			;			/* folded: the field goes on */
		else if ((colon = memchr(h->buf + i, ':', line_end - i)) !=
		    NULL && h->nf < HEADERS_MAX) {
			struct field *f = &h->fl[h->nf++];
			size_t v = (size_t)(colon - h->buf) + 1;

			f->name_off = i;
			f->name_len = (size_t)(colon - h->buf) - i;
			while (v < line_end && (h->buf[v] == ' ' ||
			    h->buf[v] == '\t'))
				v++;
			f->value_off = v;
		} else {
			/* Not a header: the body. Or one field too many. */
			h->truncated = colon != NULL;
			break;
		}
		i = line_end;
		if (h->nf > 0)
			h->fl[h->nf - 1].value_len = i -
			    h->fl[h->nf - 1].value_off;
	}
	if (!h->whole)
		h->fields_end = h->body_start = i;
	h->nul = memchr(h->buf, '\0', h->fields_end) != NULL;
	/* A field's extent keeps its line end; its value does not. */
	for (i = 0; i < h->nf; i++) {
		struct field *f = &h->fl[i];

		while (f->value_len > 0 && (h->buf[f->value_off +
		    f->value_len - 1] == '\n' || h->buf[f->value_off +
		    f->value_len - 1] == '\r'))
			f->value_len--;
	}
	return 0;
}

static size_t
field_end(const struct hblock *h, size_t i)
{
	return i + 1 < h->nf ? h->fl[i + 1].name_off : h->fields_end;
}

struct milter_tx {
	struct event_base	*base;
	const struct config	*conf;
	struct filter		 f[MILTER_MAX];
	size_t			 nf;
	size_t			 cur;		/* the filter being asked */
	enum stage		 stage;
	struct event		*ev_done;	/* answers from the loop */

	/* What the filters are shown. */
	char			*client_addr, *client_name, *helo, *sender;
	char			*args[16];
	int			 family;
	unsigned		 port;
	char			*rcpt;
	char			 queue_id[32];
	char			*tmpdir;
	size_t			 mem_max;
	struct body		*newbody;	/* replaced by a filter that
						 * answered */
	/* What the filter at end of message, pend_by, sent so far: made
	 * the message's when it answers, dropped when it fails, since a
	 * failed filter is left out of the message (docs/milter.md). */
	struct filter		*pend_by;
	struct body		*pend_body;	/* its new body, or NULL */
	int			 pend_cr;	/* its last byte was CR */
	size_t			 pend_edits;	/* edits[pend_edits..] */
	int			 pend_quarantine;
	char			 pend_reason[256];
	const struct body	*body;
	struct hblock		*hb;		/* the header block */

	int			 sticky;	/* a verdict for the message */
	struct milter_verdict	 v;		/* the answer being built */
	struct milter_verdict	 sticky_v;
	struct milter_edit	 edits[MILTER_EDITS_MAX];
	size_t			 nedits;
	milter_done_cb		*done;
	void			*done_arg;
	struct timeval		 stage_start;	/* for the log's latency */
};

static void	chain_next(struct milter_tx *);
static void	pend_drop(struct milter_tx *, struct filter *);
static void	filter_advance(struct filter *);
static void	filter_fail(struct filter *, const char *why);

/* --- answers ------------------------------------------------------------ */

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_tx *tx = arg;
	milter_done_cb *cb = tx->done;

	struct timeval now, d;

	(void)fd;
	(void)what;
	/* One line per stage: who decided, what, and how long the filters
	 * took (docs/milter.md). */
	evutil_gettimeofday(&now, NULL);
	evutil_timersub(&now, &tx->stage_start, &d);
	stats_observe(tx->stage == STAGE_EOM ? HIST_MILTER_EOM :
	    HIST_MILTER_RCPT, (double)d.tv_sec + d.tv_usec / 1e6);
	log_info("milter=%s event=milter stage=%s result=%s why=%s code=%d "
	    "ms=%ld", tx->v.filter[0] ? tx->v.filter : "all",
	    tx->stage == STAGE_EOM ? "eom" : "rcpt",
	    tx->v.result == MILTER_PASS ? "pass" : tx->v.result ==
	    MILTER_REFUSE ? "reject" : "tempfail", tx->v.why ? tx->v.why :
	    "pass", tx->v.code, (long)(d.tv_sec * 1000 + d.tv_usec / 1000));
	tx->done = NULL;
	tx->stage = STAGE_NONE;
	tx->v.edits = tx->edits;
	tx->v.nedits = tx->nedits;
	tx->v.body = tx->v.result == MILTER_PASS ? tx->newbody : NULL;
	if (cb != NULL)
		cb(&tx->v, tx->done_arg);
}

/* The stage's answer, from the loop. */
static void
answer(struct milter_tx *tx)
{
	event_active(tx->ev_done, EV_TIMEOUT, 0);
}

static void
decide(struct milter_tx *tx, struct filter *f, enum milter_result r,
    int code, const char *enh, const char *text, const char *why)
{
	tx->v.result = r;
	tx->v.code = code;
	str_copy(tx->v.enh, sizeof(tx->v.enh), enh);
	str_copy(tx->v.text, sizeof(tx->v.text), text);
	str_copy(tx->v.filter, sizeof(tx->v.filter), f->spec);
	tx->v.why = why;
	answer(tx);
}

/*
 * A filter that failed: milter_default_action. tempfail defers the whole
 * transaction (doubt is 4xx); accept leaves the filter out of this
 * message.
 */
static void
filter_fail(struct filter *f, const char *why)
{
	struct milter_tx *tx = f->tx;
	int accept = strcmp(tx->conf->milter_default_action, "accept") == 0;

	if (f->step == ST_FAILED)
		return;
	log_warn("milter=%s event=milter_error error=%s step=%d", f->spec,
	    why, (int)f->step);
	stats_milter_inc((unsigned)(f - tx->f), STATS_MILTER_ERROR);
	if (f->bev != NULL) {
		bufferevent_free(f->bev);
		f->bev = NULL;
	}
	event_del(f->timer);
	f->waiting = 0;
	f->step = ST_FAILED;
	pend_drop(tx, f);
	if (!accept && !tx->sticky) {
		tx->sticky = 1;
		memset(&tx->sticky_v, 0, sizeof(tx->sticky_v));
		tx->sticky_v.result = MILTER_DEFER;
		tx->sticky_v.code = 451;
		str_copy(tx->sticky_v.enh, sizeof(tx->sticky_v.enh), "4.7.1");
		str_copy(tx->sticky_v.text, sizeof(tx->sticky_v.text),
		    "Error: content filter unavailable; try again later");
		str_copy(tx->sticky_v.filter, sizeof(tx->sticky_v.filter),
		    f->spec);
		tx->sticky_v.why = why;
	}
	/* The filter being asked failed: the chain goes on, or hears the
	 * sticky answer. Any other one is heard when its turn comes. */
	if (tx->stage != STAGE_NONE && f == &tx->f[tx->cur])
		chain_next(tx);
}

static void
arm(struct filter *f, unsigned secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	evtimer_add(f->timer, &tv);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	filter_fail(arg, "timeout");
}

/* Send what is in 'out' and wait for the answer, or go on at once. */
static void
expect(struct filter *f, int reply)
{
	struct milter_tx *tx = f->tx;

	f->waiting = reply;
	if (reply)
		arm(f, tx->stage == STAGE_EOM ? tx->conf->milter_content_timeout
		    : tx->conf->milter_command_timeout);
}

/* --- what the filter is sent -------------------------------------------- */

/* SMFIC_MACRO: the command it is for (one byte, no NUL), then name and
 * value pairs, each NUL-ended. */
static void
put_macros(struct evbuffer *out, int cmd, const char *const *kv)
{
	struct evbuffer *tmp = evbuffer_new();
	unsigned char code = (unsigned char)cmd;
	size_t i;

	evbuffer_add(tmp, &code, 1);
	for (i = 0; kv[i] != NULL; i++)
		evbuffer_add(tmp, kv[i], strlen(kv[i]) + 1);
	milter_put(out, MC_MACRO, evbuffer_pullup(tmp, -1),
	    evbuffer_get_length(tmp));
	evbuffer_free(tmp);
}

static const char *
path_of(char *buf, size_t bufsz, const char *addr)
{
	snprintf(buf, bufsz, "<%s>", addr);
	return buf;
}

/* The next thing to send, by step; stops where an answer is due. */
static void
filter_advance(struct filter *f)
{
	struct milter_tx *tx = f->tx;
	struct evbuffer *out;
	char path[600], port[8];

	if (f->bev == NULL)
		return;
	out = bufferevent_get_output(f->bev);
	for (;;) {
		switch (f->step) {
		case ST_CONNECT:
			milter_put_optneg(out, MILTER_OFFER_ACTIONS,
			    MILTER_OFFER_STEPS);
			f->step = ST_OPTNEG;
			expect(f, 1);
			return;
		case ST_OPTNEG:
			f->step = ST_CONN;
			if (f->steps & SMFIP_NOCONNECT)
				continue;
			snprintf(port, sizeof(port), "%u", tx->port);
			put_macros(out, MC_CONNECT, (const char *const[]){
			    "j", tx->conf->myhostname, "{daemon_name}",
			    "backmx", "{client_addr}", tx->client_addr,
			    "{client_name}", tx->client_name,
			    "{client_port}", port, NULL });
			milter_put_connect(out, tx->client_name,
			    tx->family == AF_INET6 ? '6' : '4', tx->port,
			    tx->client_addr);
			expect(f, !(f->steps & SMFIP_NR_CONN));
			if (f->waiting)
				return;
			continue;
		case ST_CONN:
			f->step = ST_HELO;
			if (f->steps & SMFIP_NOHELO)
				continue;
			milter_put_strings(out, MC_HELO,
			    (const char *const[]){ tx->helo, NULL });
			expect(f, !(f->steps & SMFIP_NR_HELO));
			if (f->waiting)
				return;
			continue;
		case ST_HELO:
			f->step = ST_MAIL;
			if (f->steps & SMFIP_NOMAIL)
				continue;
			/* No {auth_*}: backmx has no AUTH, and a filter
			 * may read an empty {auth_authen} as a login
			 * (rspamd does, and skips its headers). Postfix too
			 * sends a macro only when it has a value. */
			put_macros(out, MC_MAIL, (const char *const[]){
			    "{mail_addr}", tx->sender, NULL });
			{
				const char *argv[18];
				size_t i;

				argv[0] = path_of(path, sizeof(path),
				    tx->sender);
				for (i = 0; tx->args[i] != NULL; i++)
					argv[i + 1] = tx->args[i];
				argv[i + 1] = NULL;
				milter_put_strings(out, MC_MAIL, argv);
			}
			expect(f, !(f->steps & SMFIP_NR_MAIL));
			if (f->waiting)
				return;
			continue;
		case ST_MAIL:
			f->step = ST_READY;
			continue;
		case ST_READY:
			if (tx->stage == STAGE_NONE || f != &tx->f[tx->cur])
				return;		/* open; not its turn */
			if (tx->stage == STAGE_RCPT) {
				f->step = ST_RCPT;
				if (f->steps & SMFIP_NORCPT) {
					f->step = ST_READY;
					tx->cur++;
					chain_next(tx);
					return;
				}
				put_macros(out, MC_RCPT, (const char *const[]){
				    "{rcpt_addr}", tx->rcpt, NULL });
				milter_put_strings(out, MC_RCPT,
				    (const char *const[]){ path_of(path,
				    sizeof(path), tx->rcpt), NULL });
				expect(f, !(f->steps & SMFIP_NR_RCPT));
				if (f->waiting)
					return;
				f->step = ST_READY;
				tx->cur++;
				chain_next(tx);
				return;
			}
			evutil_gettimeofday(&f->eom_start, NULL);
			f->step = ST_DATA;
			if (f->steps & SMFIP_NODATA)
				continue;
			put_macros(out, MC_DATA, (const char *const[]){
			    "i", tx->queue_id, NULL });
			milter_put(out, MC_DATA, NULL, 0);
			expect(f, !(f->steps & SMFIP_NR_DATA));
			if (f->waiting)
				return;
			continue;
		case ST_DATA:
			f->step = ST_HEADER;
			f->hdr = 0;
			if (f->steps & SMFIP_NOHDRS)
				f->hdr = tx->hb->nf;
			/* fall through */
		case ST_HEADER:
			if (f->hdr < tx->hb->nf) {
				const struct field *h = &tx->hb->fl[f->hdr++];
				struct evbuffer *tmp = evbuffer_new();
				unsigned char nul = 0;

				evbuffer_add(tmp, tx->hb->buf + h->name_off,
				    h->name_len);
				evbuffer_add(tmp, &nul, 1);
				evbuffer_add(tmp, tx->hb->buf + h->value_off,
				    h->value_len);
				evbuffer_add(tmp, &nul, 1);
				milter_put(out, MC_HEADER,
				    evbuffer_pullup(tmp, -1),
				    evbuffer_get_length(tmp));
				evbuffer_free(tmp);
				expect(f, !(f->steps & SMFIP_NR_HDR));
				if (f->waiting)
					return;
				continue;
			}
			f->step = ST_EOH;
			if (f->steps & SMFIP_NOEOH)
				continue;
			milter_put(out, MC_EOH, NULL, 0);
			expect(f, !(f->steps & SMFIP_NR_EOH));
			if (f->waiting)
				return;
			continue;
		case ST_EOH:
			f->step = ST_BODY;
			f->off = tx->hb->body_start;
			if (f->steps & SMFIP_NOBODY)
				f->skip_body = 1;
			/* fall through */
		case ST_BODY:
			if (!f->skip_body && f->off < body_size(tx->body)) {
				char chunk[MILTER_CHUNK];
				long n;

				if (evbuffer_get_length(out) > OUT_HIGH) {
					/* On at the write callback. A filter
					 * that does not read does not answer:
					 * with no answer due (NR_BODY) only
					 * this timer ends it. */
					arm(f, tx->conf->
					    milter_content_timeout);
					return;
				}
				n = body_read(tx->body, f->off, chunk,
				    sizeof(chunk));
				if (n <= 0) {
					filter_fail(f, "body_read");
					return;
				}
				f->off += (uint64_t)n;
				milter_put(out, MC_BODY, chunk, (size_t)n);
				expect(f, !(f->steps & SMFIP_NR_BODY));
				if (f->waiting)
					return;
				continue;
			}
			f->step = ST_EOM;
			tx->pend_by = f;
			tx->pend_edits = tx->nedits;
			put_macros(out, MC_EOM, (const char *const[]){
			    "i", tx->queue_id, NULL });
			milter_put(out, MC_EOM, NULL, 0);
			expect(f, 1);
			return;
		case ST_EOM:
		case ST_RCPT:
			return;		/* an answer is due */
		case ST_DONE:
		case ST_FAILED:
			tx->cur++;
			chain_next(tx);
			return;
		}
	}
}

/* --- what the filter says ----------------------------------------------- */

static int
take_edit(struct milter_tx *tx, struct filter *f,
    const struct milter_reply *r)
{
	struct milter_edit *e;
	uint32_t need = r->kind == MR_ADDHEADER || r->kind == MR_INSHEADER ?
	    SMFIF_ADDHDRS : SMFIF_CHGHDRS;

	if (!(f->actions & need) || tx->nedits >= MILTER_EDITS_MAX)
		return -1;
	e = &tx->edits[tx->nedits++];
	e->kind = r->kind;
	e->index = r->index;
	e->name = xstrdup(r->name);
	e->value = xstrdup(r->text);
	return 0;
}

/*
 * A chunk of the filter's new body, its bare LFs made CRLF (the stored
 * message is in SMTP form). The last filter that replaces wins, once it
 * answers (pend_keep); the new body is bounded like a client's
 * (message_size_limit).
 */
static int
replace_body(struct milter_tx *tx, const struct milter_reply *r)
{
	size_t i, from = 0;

	if (tx->pend_body == NULL) {
		tx->pend_body = body_new(tx->tmpdir, tx->mem_max);
		tx->pend_cr = 0;
	}
	for (i = 0; i < r->datalen; i++) {
		if (r->data[i] == '\n' && !(i > 0 ? r->data[i - 1] == '\r' :
		    tx->pend_cr)) {
			body_append(tx->pend_body, r->data + from, i - from);
			body_append(tx->pend_body, "\r\n", 2);
			from = i + 1;
		}
	}
	body_append(tx->pend_body, r->data + from, r->datalen - from);
	if (r->datalen > 0)
		tx->pend_cr = r->data[r->datalen - 1] == '\r';
	if (body_size(tx->pend_body) > tx->conf->message_size_limit ||
	    body_error(tx->pend_body) != 0)
		return -1;
	return 0;
}

/* The filter at end of message answered: what it sent is the message's
 * (a new body replaces an earlier filter's). */
static void
pend_keep(struct milter_tx *tx, struct filter *f)
{
	if (tx->pend_by != f)
		return;
	if (tx->pend_body != NULL) {
		body_free(tx->newbody);
		tx->newbody = tx->pend_body;
		tx->pend_body = NULL;
	}
	if (tx->pend_quarantine) {
		tx->v.quarantine = 1;
		str_copy(tx->v.reason, sizeof(tx->v.reason), tx->pend_reason);
	}
	tx->pend_quarantine = 0;
	tx->pend_by = NULL;
}

/* It failed: none of it is made, not a half-sent body nor the headers
 * it added before it failed; the filters before it keep theirs. */
static void
pend_drop(struct milter_tx *tx, struct filter *f)
{
	if (tx->pend_by != f)
		return;
	body_free(tx->pend_body);
	tx->pend_body = NULL;
	while (tx->nedits > tx->pend_edits) {
		tx->nedits--;
		free(tx->edits[tx->nedits].name);
		free(tx->edits[tx->nedits].value);
	}
	tx->pend_quarantine = 0;
	tx->pend_by = NULL;
}

/* A final answer to the step that waited for it. */
static void
filter_final(struct filter *f, const struct milter_reply *r)
{
	struct milter_tx *tx = f->tx;
	int message = f->step != ST_RCPT;	/* decides the message */
	enum step was = f->step;

	if (r->kind == MR_ACCEPT || (r->kind == MR_CONTINUE &&
	    (was == ST_RCPT || was == ST_EOM)))
		stats_milter_inc((unsigned)(f - tx->f), STATS_MILTER_PASS);
	switch (r->kind) {
	case MR_CONTINUE:
		if (was == ST_EOM) {
			f->step = ST_DONE;
			break;
		}
		if (was == ST_RCPT) {
			f->step = ST_READY;
			tx->cur++;
			chain_next(tx);
			return;
		}
		filter_advance(f);
		return;
	case MR_SKIP:
		if (was != ST_BODY || !(f->steps & SMFIP_SKIP)) {
			filter_fail(f, "protocol");
			return;
		}
		f->skip_body = 1;
		filter_advance(f);
		return;
	case MR_ACCEPT:
		/* This filter has nothing against the message (or the
		 * recipient at RCPT: the message then passes it). */
		f->step = ST_DONE;
		break;
	case MR_REJECT:
	case MR_DISCARD:
	case MR_TEMPFAIL:
	case MR_REPLYCODE: {
		enum milter_result res;
		int code;
		const char *enh, *text, *why;

		if (r->kind == MR_REPLYCODE) {
			code = r->code;
			res = code >= 500 ? MILTER_REFUSE : MILTER_DEFER;
			enh = r->enh[0] ? r->enh : (code >= 500 ? "5.7.1" :
			    "4.7.1");
			text = r->text[0] ? r->text : "Error: message "
			    "content refused";
			why = "replycode";
		} else if (r->kind == MR_TEMPFAIL) {
			res = MILTER_DEFER;
			code = 451;
			enh = "4.7.1";
			text = "Error: try again later";
			why = "tempfail";
		} else {
			/* Discard is a reject here: a backup MX that said
			 * 250 and dropped the message would lose mail
			 * nobody hears about (docs/milter.md). */
			res = MILTER_REFUSE;
			code = 550;
			enh = "5.7.1";
			text = "Error: message content rejected";
			why = r->kind == MR_DISCARD ? "discard" : "reject";
		}
		event_del(f->timer);
		stats_milter_inc((unsigned)(f - tx->f), res == MILTER_REFUSE ?
		    STATS_MILTER_REJECT : STATS_MILTER_TEMPFAIL);
		if (message) {
			f->step = ST_DONE;
			tx->sticky = 1;
		} else
			f->step = ST_READY;
		if (tx->stage == STAGE_NONE || f != &tx->f[tx->cur]) {
			/* At open (connect, HELO, MAIL), before its turn:
			 * the chain hears it when it gets there. */
			tx->sticky_v.result = res;
			tx->sticky_v.code = code;
			str_copy(tx->sticky_v.enh, sizeof(tx->sticky_v.enh),
			    enh);
			str_copy(tx->sticky_v.text, sizeof(tx->sticky_v.text),
			    text);
			str_copy(tx->sticky_v.filter,
			    sizeof(tx->sticky_v.filter), f->spec);
			tx->sticky_v.why = why;
			return;
		}
		decide(tx, f, res, code, enh, text, why);
		if (message)
			tx->sticky_v = tx->v;
		return;
	}
	default:
		filter_fail(f, "protocol");
		return;
	}
	/* Accepted or continued at the end: what it sent is made, and on
	 * to the next filter. */
	pend_keep(tx, f);
	if (tx->stage != STAGE_NONE && f == &tx->f[tx->cur]) {
		tx->cur++;
		chain_next(tx);
	}
}

static void
filter_packet(struct filter *f, const struct milter_reply *r)
{
	struct milter_tx *tx = f->tx;

	if (!f->waiting) {
		filter_fail(f, "unasked");
		return;
	}
	if (f->step == ST_OPTNEG) {
		if (r->kind != MR_OPTNEG || r->version < 2 ||
		    r->version > MILTER_VERSION) {
			filter_fail(f, "version");
			return;
		}
		/* A filter wanting what we did not offer cannot work with
		 * us (it would count on an action we refuse). */
		if ((r->steps & ~(uint32_t)MILTER_OFFER_STEPS) != 0) {
			filter_fail(f, "options");
			return;
		}
		f->actions = r->actions & MILTER_OFFER_ACTIONS;
		f->steps = r->steps;
		f->waiting = 0;
		event_del(f->timer);
		filter_advance(f);
		return;
	}
	if (f->step == ST_EOM) {
		switch (r->kind) {
		case MR_ADDHEADER:
		case MR_CHGHEADER:
		case MR_INSHEADER:
			if (take_edit(tx, f, r) == -1)
				filter_fail(f, "edit");
			return;
		case MR_REPLBODY:
			if (!(f->actions & SMFIF_CHGBODY) ||
			    replace_body(tx, r) == -1)
				filter_fail(f, "body");
			return;
		case MR_ENVELOPE:
			/* backmx stores the envelope its client gave: a
			 * filter that adds, drops or rewrites addresses is
			 * refused (docs/milter.md). */
			filter_fail(f, "envelope_change");
			return;
		case MR_QUARANTINE:
			if (!(f->actions & SMFIF_QUARANTINE)) {
				filter_fail(f, "protocol");
				return;
			}
			tx->pend_quarantine = 1;
			str_copy(tx->pend_reason, sizeof(tx->pend_reason),
			    r->text);
			return;
		case MR_PROGRESS: {
			struct timeval now, d;
			unsigned max = tx->conf->milter_content_timeout *
			    PROGRESS_FACTOR;

			/* More time, up to a bound: a filter that only
			 * ever says "working" is a stalled one. */
			evutil_gettimeofday(&now, NULL);
			evutil_timersub(&now, &f->eom_start, &d);
			if ((unsigned long)d.tv_sec < max) {
				unsigned left = max - (unsigned)d.tv_sec;

				arm(f, left < tx->conf->milter_content_timeout
				    ? left : tx->conf->milter_content_timeout);
			}
			return;
		}
		default:
			break;
		}
	} else if (r->kind == MR_PROGRESS || r->kind == MR_OPTNEG ||
	    r->kind == MR_ADDHEADER || r->kind == MR_CHGHEADER ||
	    r->kind == MR_INSHEADER || r->kind == MR_QUARANTINE) {
		filter_fail(f, "protocol");
		return;
	}
	f->waiting = 0;
	event_del(f->timer);
	filter_final(f, r);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct filter *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct milter_reply r;
	size_t used, len;
	int n;

	while (f->bev != NULL && (len = evbuffer_get_length(in)) > 0) {
		size_t want = len < 4 ? len : 4;
		const unsigned char *p = evbuffer_pullup(in, (ssize_t)want);
		uint32_t plen;

		if (len < 4)
			return;
		plen = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		    (uint32_t)p[2] << 8 | p[3];
		if (plen <= MILTER_PACKET_MAX && len < 4 + (size_t)plen)
			return;		/* more to come */
		want = plen <= MILTER_PACKET_MAX ? 4 + (size_t)plen : len;
		p = evbuffer_pullup(in, (ssize_t)want);
		n = milter_parse(p, want, &r, &used);
		if (n <= 0) {
			filter_fail(f, "garbage");
			return;
		}
		/* The reply may point into the buffer (a body chunk): drain
		 * after it was used, unless the filter is gone with it. */
		filter_packet(f, &r);
		if (f->bev == NULL)
			return;
		evbuffer_drain(in, used);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct filter *f = arg;

	(void)bev;
	if (f->step == ST_BODY && !f->waiting) {
		event_del(f->timer);	/* it read: the body goes on */
		filter_advance(f);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct filter *f = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		event_del(f->timer);
		filter_advance(f);
		return;
	}
	filter_fail(f, (what & BEV_EVENT_EOF) ? "closed" : "socket");
}

/* "unix:/path" or "inet:ADDR:PORT" (an address, not a name: no DNS on
 * this path). */
static int
spec_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (strlen(spec + 5) >= sizeof(un->sun_path))
			return -1;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, spec + 5);
		*len = sizeof(*un);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		int l = (int)sizeof(*ss);

		if (evutil_parse_sockaddr_port(spec + 5,
		    (struct sockaddr *)ss, &l) != 0 ||
		    ((struct sockaddr_in *)ss)->sin_port == 0)
			return -1;
		*len = (socklen_t)l;
		return 0;
	}
	return -1;
}

static void
filter_open(struct filter *f)
{
	struct sockaddr_storage ss;
	socklen_t len;

	f->step = ST_CONNECT;
	if (spec_addr(f->spec, &ss, &len) == -1) {
		filter_fail(f, "address");
		return;
	}
	f->bev = bufferevent_socket_new(f->tx->base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(f->bev, read_cb, write_cb, event_cb, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	arm(f, f->tx->conf->milter_connect_timeout);
	if (bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss,
	    (int)len) == -1) {
		filter_fail(f, "connect");
		return;
	}
	if (ss.ss_family != AF_UNIX) {
		/* Small packets that wait for no answer (a filter that asks
		 * for none until the end): Nagle would hold each one for
		 * the filter's delayed ACK. */
		int one = 1;

		(void)setsockopt(bufferevent_getfd(f->bev), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one));
	}
}

/* --- the chain ---------------------------------------------------------- */

/* Ask filter 'cur' for the stage, or answer when all were asked. */
static void
chain_next(struct milter_tx *tx)
{
	struct filter *f;

	if (tx->stage == STAGE_NONE)
		return;
	if (tx->sticky) {
		tx->v = tx->sticky_v;
		answer(tx);
		return;
	}
	while (tx->cur < tx->nf && (tx->f[tx->cur].step == ST_DONE ||
	    tx->f[tx->cur].step == ST_FAILED))
		tx->cur++;
	if (tx->cur == tx->nf) {
		tx->v.result = MILTER_PASS;
		tx->v.why = "pass";
		answer(tx);
		return;
	}
	f = &tx->f[tx->cur];
	if (f->waiting || f->step < ST_READY)
		return;		/* still opening: its answer goes on */
	filter_advance(f);
}

static void
stage_begin(struct milter_tx *tx, enum stage st, milter_done_cb *cb,
    void *arg)
{
	int q = tx->v.quarantine;
	char reason[sizeof(tx->v.reason)];

	str_copy(reason, sizeof(reason), tx->v.reason);
	memset(&tx->v, 0, sizeof(tx->v));
	tx->v.quarantine = q;
	str_copy(tx->v.reason, sizeof(tx->v.reason), reason);
	tx->stage = st;
	tx->cur = 0;
	evutil_gettimeofday(&tx->stage_start, NULL);
	tx->done = cb;
	tx->done_arg = arg;
	chain_next(tx);
}

struct milter_tx *
milter_tx_new(struct event_base *base, const struct config *conf,
    const struct milter_info *in)
{
	struct milter_tx *tx;
	char list[sizeof(conf->backup_milters)], *p, *tok;
	size_t i;

	if (conf->backup_milters[0] == '\0')
		return NULL;
	tx = xcalloc(1, sizeof(*tx));
	tx->base = base;
	tx->conf = conf;
	tx->ev_done = event_new(base, -1, 0, done_cb, tx);
	tx->client_addr = xstrdup(in->client_addr);
	tx->client_name = xstrdup(in->client_name);
	tx->helo = xstrdup(in->helo);
	tx->sender = xstrdup(in->sender);
	for (i = 0; in->mail_args != NULL && in->mail_args[i] != NULL &&
	    i + 1 < sizeof(tx->args) / sizeof(tx->args[0]); i++)
		tx->args[i] = xstrdup(in->mail_args[i]);
	tx->family = in->family;
	tx->tmpdir = xstrdup(in->tmpdir);
	tx->mem_max = in->mem_max;
	tx->port = in->port;

	str_copy(list, sizeof(list), conf->backup_milters);
	for (p = list; (tok = strsep(&p, " \t,")) != NULL;) {
		struct filter *f;

		if (*tok == '\0' || tx->nf == MILTER_MAX)
			continue;
		f = &tx->f[tx->nf++];
		f->tx = tx;
		str_copy(f->spec, sizeof(f->spec), tok);
		f->timer = evtimer_new(base, timeout_cb, f);
	}
	for (i = 0; i < tx->nf; i++)
		filter_open(&tx->f[i]);
	return tx;
}

void
milter_tx_rcpt(struct milter_tx *tx, const char *rcpt, milter_done_cb *cb,
    void *arg)
{
	free(tx->rcpt);
	tx->rcpt = xstrdup(rcpt);
	stage_begin(tx, STAGE_RCPT, cb, arg);
}

/* The end of the message answered before any filter is asked. */
static void
eom_decided(struct milter_tx *tx, milter_done_cb *cb, void *arg,
    enum milter_result r, int code, const char *enh, const char *text,
    const char *why)
{
	tx->stage = STAGE_EOM;
	evutil_gettimeofday(&tx->stage_start, NULL);
	tx->done = cb;
	tx->done_arg = arg;
	memset(&tx->v, 0, sizeof(tx->v));
	decide(tx, &tx->f[0], r, code, enh, text, why);
}

void
milter_tx_eom(struct milter_tx *tx, const struct body *b,
    const char *queue_id, milter_done_cb *cb, void *arg)
{
	size_t i;

	tx->body = b;
	str_copy(tx->queue_id, sizeof(tx->queue_id), queue_id);
	if (tx->hb == NULL)
		tx->hb = xcalloc(1, sizeof(*tx->hb));
	hblock_free(tx->hb);
	if (hblock_read(b, tx->hb) == -1) {
		eom_decided(tx, cb, arg, MILTER_DEFER, 451, "4.3.0",
		    "Error: local error in processing", "body_read");
		return;
	}
	/* What the filters cannot be shown as it is stored is not stored:
	 * past HEADERS_MAX fields or HEADER_BLOCK_MAX octets the rest of
	 * the header reached them as body, and a NUL ended a field early
	 * (the protocol's strings end at NUL), so they judged another
	 * message than the one kept. RFC 5322 allows no NUL at all. */
	if (tx->hb->nul) {
		eom_decided(tx, cb, arg, MILTER_REFUSE, 550, "5.6.0",
		    "Error: NUL in the message header", "header_nul");
		return;
	}
	if (tx->hb->truncated) {
		eom_decided(tx, cb, arg, MILTER_REFUSE, 552, "5.3.4",
		    "Error: message header too large for the content filters",
		    "header_size");
		return;
	}
	for (i = 0; i < tx->nf; i++)
		tx->f[i].skip_body = 0;
	stage_begin(tx, STAGE_EOM, cb, arg);
}

void
milter_tx_free(struct milter_tx *tx)
{
	size_t i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->nf; i++) {
		struct filter *f = &tx->f[i];

		if (f->bev != NULL) {
			/* Abort and quit, best effort: the socket closes
			 * with what is written. */
			struct evbuffer *out = bufferevent_get_output(f->bev);
			int fd = bufferevent_getfd(f->bev);

			if (f->step > ST_OPTNEG && fd >= 0) {
				milter_put(out, MC_ABORT, NULL, 0);
				milter_put(out, MC_QUIT, NULL, 0);
				(void)evbuffer_write(out, fd);
			}
			bufferevent_free(f->bev);
		}
		event_free(f->timer);
	}
	for (i = 0; i < tx->nedits; i++) {
		free(tx->edits[i].name);
		free(tx->edits[i].value);
	}
	for (i = 0; tx->args[i] != NULL; i++)
		free(tx->args[i]);
	event_free(tx->ev_done);
	free(tx->tmpdir);
	body_free(tx->newbody);
	body_free(tx->pend_body);
	free(tx->client_addr);
	free(tx->client_name);
	free(tx->helo);
	free(tx->sender);
	free(tx->rcpt);
	if (tx->hb != NULL)
		hblock_free(tx->hb);
	free(tx->hb);
	free(tx);
}

/* --- the changes, made ---------------------------------------------------- */

/* Append a field "Name: value\r\n", folding breaks as CRLF. */
static void
put_field(struct body *out, const char *name, const char *value)
{
	const char *p;

	body_append(out, name, strlen(name));
	body_append(out, ": ", 2);
	for (p = value; *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			body_append(out, "\r\n", 2);
		else
			body_append(out, p, 1);
	}
	body_append(out, "\r\n", 2);
}

/* Does edit e name field i of the block (CHGHEADER: the index-th field
 * of that name, counted from 1)? */
static int
edit_names(const struct hblock *h, size_t i, const struct milter_edit *e)
{
	const struct field *f = &h->fl[i];
	size_t j, seen = 0;

	if (strlen(e->name) != f->name_len ||
	    strncasecmp(e->name, h->buf + f->name_off, f->name_len) != 0)
		return 0;
	for (j = 0; j <= i; j++)
		if (h->fl[j].name_len == f->name_len &&
		    strncasecmp(h->buf + h->fl[j].name_off,
		    h->buf + f->name_off, f->name_len) == 0)
			seen++;
	return seen == (e->index == 0 ? 1 : e->index);
}

static void
put_inserts(struct body *out, const struct milter_verdict *v, uint32_t at)
{
	size_t k;

	for (k = 0; k < v->nedits; k++)
		if (v->edits[k].kind == MR_INSHEADER &&
		    v->edits[k].index == at)
			put_field(out, v->edits[k].name, v->edits[k].value);
}

int
milter_apply_edits(const struct milter_verdict *v, const struct body *in,
    const char *tmpdir, size_t mem_max, struct body **outp)
{
	char chunk[64 * 1024];
	struct hblock h;
	struct body *out;
	uint64_t off;
	size_t i, k;
	long n = 0;

	if (hblock_read(in, &h) == -1)
		return -1;
	if (!h.whole && h.body_start < body_size(in)) {
		/* The header block is past our bound: a change could land
		 * in the middle of a field. */
		hblock_free(&h);
		errno = EMSGSIZE;
		return -1;
	}
	out = body_new(tmpdir, mem_max);
	/* Inserts at their position (0 is the top), each field as it
	 * came or as changed (an empty value deletes it), then the adds. */
	put_inserts(out, v, 0);
	for (i = 0; i < h.nf; i++) {
		int changed = 0;

		for (k = 0; k < v->nedits; k++) {
			const struct milter_edit *e = &v->edits[k];

			if (e->kind != MR_CHGHEADER || !edit_names(&h, i, e))
				continue;
			changed = 1;
			if (e->value[0] != '\0')
				put_field(out, e->name, e->value);
		}
		if (!changed)
			body_append(out, h.buf + h.fl[i].name_off,
			    field_end(&h, i) - h.fl[i].name_off);
		put_inserts(out, v, (uint32_t)i + 1);
	}
	for (k = 0; k < v->nedits; k++)
		if (v->edits[k].kind == MR_ADDHEADER ||
		    (v->edits[k].kind == MR_INSHEADER &&
		    v->edits[k].index > h.nf))
			put_field(out, v->edits[k].name, v->edits[k].value);
	/* The rest as it came (the empty line and the body), or the empty
	 * line and the filter's body. */
	off = h.fields_end;
	hblock_free(&h);
	if (v->body != NULL) {
		body_append(out, "\r\n", 2);
		in = v->body;
		off = 0;
	}
	while ((n = body_read(in, off, chunk, sizeof(chunk))) > 0) {
		body_append(out, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	if (n < 0 || body_error(out) != 0) {
		int e = n < 0 ? EIO : body_error(out);

		body_free(out);
		errno = e;
		return -1;
	}
	*outp = out;
	return 0;
}
