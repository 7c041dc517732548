/*
 * bulk: counting distinct recipients per digest and the verdict
 * (docs/bulk.md §3, §4).
 */
#include "bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allow.h"
#include "bulkshare.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "state.h"
#include "str.h"
#include "xmem.h"

/* Shingle bands that must be bulk together for the message to be. */
#define BULK_SHINGLE_BANDS_BULK	2

struct bulk {
	struct allow_set allow;		/* bulk_allow_*; clients: networks */
	struct cluster	*cluster;	/* counts shared; NULL: this node's */
};

/* A message whose counts wait for Redis (docs/cluster.md "Bulk
 * counts"). */
struct bulk_ask {
	struct bulk		*b;
	struct state		*st;
	const struct config	*c;
	struct bulk_digests	 d;
	char			(*keys)[33];
	size_t			 nrcpt;
	unsigned		 threshold;
	int64_t			 now;
	struct cluster_bulk_req	*req;
	bulk_judged_cb		*cb;
	void			*arg;
};

/* bulk_allow_*, parsed into a; 0 or -1 with why in err. */
static int
allow_lists(struct allow_set *a, const struct config *c, char *err,
    size_t errsz)
{
	return allow_set_parse(a, ALLOW_NETS, "bulk_allow_",
	    c->bulk_allow_clients, c->bulk_allow_senders,
	    c->bulk_allow_recipients, err, errsz);
}

struct bulk *
bulk_new(const struct config *c, char *err, size_t errsz)
{
	struct bulk *b = xcalloc(1, sizeof(*b));

	if (allow_lists(&b->allow, c, err, errsz) == -1) {
		free(b);
		return NULL;
	}
	return b;
}

int
bulk_reload(struct bulk *b, const struct config *c, char *err,
    size_t errsz)
{
	struct allow_set a;

	if (allow_lists(&a, c, err, errsz) == -1)
		return -1;
	allow_set_free(&b->allow);
	b->allow = a;
	return 0;
}

void
bulk_set_cluster(struct bulk *b, struct cluster *cl)
{
	b->cluster = cl;
}

void
bulk_free(struct bulk *b)
{
	if (b == NULL)
		return;
	allow_set_free(&b->allow);
	free(b);
}

int
bulk_rcpt_allowed(const struct bulk *b, struct state *st,
    const struct domain *dom, const char *rcpt, const struct sockaddr *sa,
    const char *sender)
{
	const struct allow_set *a = dom != NULL ? dom->bulk_allow : NULL;

	/* RFC 2142 role addresses: a report of spam forwards the spam. */
	if (strncmp(rcpt, "postmaster@", 11) == 0 ||
	    strncmp(rcpt, "abuse@", 6) == 0)
		return 1;
	if (allow_has_addr(&b->allow.rcpts, rcpt) || (a != NULL &&
	    (allow_has_addr(&a->rcpts, rcpt) ||
	    allow_has_addr(&a->senders, sender) ||
	    allow_has_ip(&a->clients, sa))))
		return 1;
	return st != NULL && state_bulk_rcpt_allowed(st, rcpt) == 1;
}

unsigned
bulk_rcpt_policy(const struct bulk *b, struct state *st,
    const struct config *c, const struct domain *dom, const char *rcpt,
    const struct sockaddr *sa, const char *sender)
{
	unsigned t = c->bulk_threshold;

	if (!c->bulk_detect)
		return 0;
	if (dom != NULL && dom->bulk_threshold >= 0)
		t = (unsigned)dom->bulk_threshold;
	if (t == 0 || bulk_rcpt_allowed(b, st, dom, rcpt, sa, sender))
		return 0;
	return t;
}

int
bulk_tx_allowed(const struct bulk *b, struct state *st,
    const struct sockaddr *sa, const char *sender)
{
	if (allow_has_addr(&b->allow.senders, sender) ||
	    allow_has_ip(&b->allow.clients, sa))
		return 1;
	return st != NULL && state_bulk_allowed(st, sa, sender) == 1;
}

/* The key a recipient is counted under: a hash, so that the store keeps
 * no address list per message (docs/bulk.md §3). */
static void
rcpt_key(const char *rcpt, char *out)
{
	bulk_hash_hex(rcpt, strlen(rcpt), out);
}

_Static_assert(sizeof(((struct state_bulk *)0)->sender) >= BULK_SENDER_MAX,
    "a digest row keeps the whole sample sender");
_Static_assert(BULK_NDIGEST <= STATE_BULK_MANY,
    "a message's digests go to the store in one grouped call");

/*
 * A message's valid digests as the store sees them: one read of every
 * row, then per recipient one read and one write for all the digests
 * still counting, then one write of every row (docs/bulk.md §5, "Cost").
 */
struct judged {
	size_t		 n;
	int		 idx[BULK_NDIGEST];	/* its slot in bulk_digests */
	const char	*hex[BULK_NDIGEST];
	const char	*counting[BULK_NDIGEST];	/* NULL: not counting */
	int64_t		 gen[BULK_NDIGEST];
	int		 found[BULK_NDIGEST];
	int		 seen[BULK_NDIGEST];
	struct state_bulk row[BULK_NDIGEST];
	struct state_bulk was[BULK_NDIGEST];	/* as read */
	int64_t		 refresh;	/* see bulk_refresh() */
};

/*
 * How far a row's times may lag before it is written again: a copy that
 * changes no count and no verdict only moves last_seen and expires, and
 * rewriting ten rows for that at every copy (every retry of one message)
 * was most of the detector's cost on a short message (docs/bulk.md §5).
 * A row may so expire up to this much early: 1/16 of the window, at most
 * a minute.
 */
static int64_t
bulk_refresh(const struct config *c)
{
	int64_t r = (int64_t)c->bulk_window / 16;

	return r < 60 ? r : 60;
}

/* Read every valid digest's row; a new one starts at 0. 0 or -1. */
static int
judged_load(struct judged *j, struct state *st, const struct config *c,
    const struct bulk_digests *d, unsigned t, int64_t now,
    const struct cluster_bulk_answer *sh, struct bulk_outcome *out)
{
	size_t k;
	int i;

	j->n = 0;
	for (i = 0; i < BULK_NDIGEST; i++)
		if (d->d[i].valid) {
			j->idx[j->n] = i;
			j->hex[j->n++] = d->d[i].hex;
		}
	if (state_bulk_get_many(st, j->hex, j->n, now, j->row,
	    j->found) == -1)
		return -1;
	for (k = 0; k < j->n; k++) {
		struct state_bulk *row = &j->row[k];
		int64_t forgot = sh != NULL ? sh[k].forgotten : 0;
		int remembered;

		/* Forgotten at some node since this row began: its count
		 * and its verdict go here too, as in Redis. */
		if (j->found[k] && forgot > 0 && row->first_seen <= forgot)
			j->found[k] = 0;
		if (!j->found[k]) {
			memset(row, 0, sizeof(*row));
			str_copy(row->digest, sizeof(row->digest), j->hex[k]);
			row->kind = d->d[j->idx[k]].kind;
			/* A generation of after the forget, whatever this
			 * node's clock says (a reset only once). */
			row->first_seen = now > forgot ? now : forgot + 1;
		}
		j->was[k] = *row;
		/* Remembered at any node is remembered here. */
		remembered = row->bulk_until > now ||
		    (sh != NULL && sh[k].remembered);
		out->remembered[j->idx[k]] = remembered;
		/* A remembered digest stops counting (its rows stay
		 * bounded), but for a domain whose own threshold is above
		 * the global one. */
		j->counting[k] = !remembered || t > c->bulk_threshold ?
		    j->hex[k] : NULL;
		j->gen[k] = row->first_seen;
	}
	return 0;
}

/* Add the recipients each counting digest had not reached. 0 or -1. */
static int
judged_count(struct judged *j, struct state *st, const struct config *c,
    const char (*keys)[33], size_t nrcpt, int64_t now)
{
	const char *stale[BULK_NDIGEST];
	int64_t expires = now + (int64_t)c->bulk_window;
	size_t k, r;
	int known = 0, nstale;

	/* A digest new to the store has no recipient rows of its
	 * generation (now): only known ones need the read. */
	for (k = 0; k < j->n; k++)
		known |= j->found[k] && j->counting[k] != NULL;
	for (r = 0; r < nrcpt; r++) {
		if (known) {
			if (state_bulk_rcpt_seen(st, keys[r], j->counting,
			    j->gen, j->n, expires - j->refresh, j->seen) == -1)
				return -1;
		} else
			memset(j->seen, 0, sizeof(j->seen));
		/* A row seen and fresh (2) is not written again. */
		for (k = 0, nstale = 0; k < j->n; k++) {
			j->row[k].count += j->counting[k] != NULL &&
			    !j->seen[k];
			stale[k] = j->seen[k] == 2 ? NULL : j->counting[k];
			nstale += stale[k] != NULL;
		}
		if (nstale > 0 && state_bulk_rcpt_put_many(st, keys[r], stale,
		    j->gen, j->n, expires) == -1)
			return -1;
		/* The same recipient twice in one message is one. */
		known = 1;
	}
	return 0;
}

/* Must row k be written: new, counted, newly bulk, or its times lag by
 * the refresh step or more? */
static int
row_stale(const struct judged *j, size_t k)
{
	const struct state_bulk *was = &j->was[k], *row = &j->row[k];

	return !j->found[k] || row->count != was->count ||
	    row->has_sender != was->has_sender ||
	    row->bulk_until - was->bulk_until >= j->refresh ||
	    row->last_seen - was->last_seen >= j->refresh;
}

/* Decide each digest and refresh its row. 1 bulk, 0 not, per slot. */
static int
judged_decide(struct judged *j, size_t k, const struct config *c,
    const struct bulk_digests *d, unsigned t, int64_t now,
    struct bulk_outcome *out)
{
	struct state_bulk *row = &j->row[k];
	int remembered = out->remembered[j->idx[k]], bulk;

	out->count[j->idx[k]] = row->count;
	bulk = row->count >= t || (remembered && t <= c->bulk_threshold);
	/* Remembered for every domain only once the global threshold is
	 * met: a domain's lower one defers its own copies, no one else's. */
	if ((bulk && remembered) || row->count >= c->bulk_threshold)
		row->bulk_until = now + (int64_t)c->bulk_remember;
	row->last_seen = now;
	row->expires = now + (int64_t)c->bulk_window;
	if (row->bulk_until > row->expires)
		row->expires = row->bulk_until;
	if (row->subject[0] == '\0')
		str_copy(row->subject, sizeof(row->subject), d->subject);
	if (!row->has_sender) {
		str_copy(row->sender, sizeof(row->sender), d->sender);
		row->has_sender = 1;
	}
	return bulk;
}

/* Nothing to count: *out says why. 1 skipped, 0 go on. */
static int
judge_skip(const struct bulk_digests *d, size_t nrcpt, unsigned threshold,
    struct bulk_outcome *out)
{
	int i, any = 0;

	memset(out, 0, sizeof(*out));
	out->threshold = threshold;
	out->counted = (unsigned)nrcpt;
	if (threshold == 0 || nrcpt == 0) {
		out->verdict = BULK_SKIPPED;
		out->why = "not_counted";
		return 1;
	}
	for (i = 0; i < BULK_NDIGEST; i++)
		any |= d->d[i].valid;
	if (!any) {
		out->verdict = BULK_SKIPPED;
		out->why = "too_short";
		return 1;
	}
	return 0;
}

static char (*rcpt_keys(const char *const *rcpts, size_t nrcpt))[33]
{
	char (*keys)[33] = xreallocarray(NULL, nrcpt, sizeof(*keys));
	size_t k;

	for (k = 0; k < nrcpt; k++)
		rcpt_key(rcpts[k], keys[k]);
	return keys;
}

/*
 * Count in the state store and decide. 'sh': Redis' answer for each valid
 * digest, or NULL (no cluster, or it did not answer). With it, the local
 * row mirrors the shared count (the larger of the two, so `bulk list`
 * shows it and a later fallback starts from it) and a digest remembered at
 * any node is remembered here.
 */
static void
judge(struct judged *j, struct state *st, const struct config *c,
    const struct bulk_digests *d, const char (*keys)[33], size_t nrcpt,
    unsigned threshold, int64_t now, const struct cluster_bulk_answer *sh,
    struct bulk_outcome *out)
{
	struct state_bulk stale[BULK_NDIGEST];
	size_t k, nstale = 0;
	int bands = 0;

	out->verdict = BULK_PASS;
	j->refresh = bulk_refresh(c);
	if (judged_load(j, st, c, d, threshold, now, sh, out) == -1 ||
	    judged_count(j, st, c, keys, nrcpt, now) == -1) {
		out->verdict = BULK_ERROR;
		return;
	}
	for (k = 0; sh != NULL && k < j->n; k++) {
		if (sh[k].count > j->row[k].count)
			j->row[k].count = sh[k].count;
		if (sh[k].bulk_until > j->row[k].bulk_until)
			j->row[k].bulk_until = sh[k].bulk_until;
	}
	for (k = 0; k < j->n; k++) {
		int r = judged_decide(j, k, c, d, threshold, now, out);

		if (r == 1 && d->d[j->idx[k]].kind != BULK_SHINGLE)
			out->verdict = BULK_BULK;
		bands += r == 1 && d->d[j->idx[k]].kind == BULK_SHINGLE;
		if (row_stale(j, k))
			stale[nstale++] = j->row[k];
	}
	if (nstale > 0 && state_bulk_put_many(st, stale, nstale) == -1) {
		out->verdict = BULK_ERROR;
		return;
	}
	/* One shingle band alone is too easily shared by messages that only
	 * have a list footer in common; two make the S-curve of the min-hash
	 * steeper (docs/bulk.md §4). */
	if (out->verdict == BULK_PASS && bands >= BULK_SHINGLE_BANDS_BULK)
		out->verdict = BULK_BULK;
}

/* bulk_judge() once judge_skip() said "go on". */
static void
judge_here(struct state *st, const struct config *c,
    const struct bulk_digests *d, const char *const *rcpts, size_t nrcpt,
    unsigned threshold, int64_t now, struct bulk_outcome *out)
{
	struct judged j;
	char (*keys)[33] = rcpt_keys(rcpts, nrcpt);

	judge(&j, st, c, d, (const char (*)[33])keys, nrcpt, threshold, now,
	    NULL, out);
	free(keys);
}

void
bulk_judge(struct state *st, const struct config *c,
    const struct bulk_digests *d, const char *const *rcpts, size_t nrcpt,
    unsigned threshold, int64_t now, struct bulk_outcome *out)
{
	if (!judge_skip(d, nrcpt, threshold, out))
		judge_here(st, c, d, rcpts, nrcpt, threshold, now, out);
}

/* The message as the cluster sees it: the valid digests in slot order
 * (judged_load's), its recipients' keys. */
static void
ask_query(const struct bulk_ask *a, const char **rcptp,
    struct cluster_bulk_query *q)
{
	size_t k;
	int i;

	memset(q, 0, sizeof(*q));
	q->now = q->seen = a->now;
	q->window = a->c->bulk_window;
	q->remember = a->c->bulk_remember;
	q->global = a->c->bulk_threshold;
	q->threshold = a->threshold;
	q->subject = a->d.subject;
	q->sender = a->d.sender;
	for (i = 0; i < BULK_NDIGEST; i++)
		if (a->d.d[i].valid) {
			q->digest[q->n] = a->d.d[i].hex;
			q->kind[q->n++] = bulk_kind_name(a->d.d[i].kind);
		}
	for (k = 0; k < a->nrcpt; k++)
		rcptp[k] = a->keys[k];
	q->nrcpt = a->nrcpt;
	q->rcpt = rcptp;
}

static void
ask_free(struct bulk_ask *a)
{
	free(a->keys);
	free(a);
}

/* Redis answered (rc 0), or not: count here and decide; what was counted
 * alone goes to the replay queue, remembered digests with it. */
static void
ask_done(int rc, const struct cluster_bulk_answer *sh, size_t n, void *arg)
{
	struct bulk_ask *a = arg;
	struct cluster_bulk_query q;
	struct bulk_outcome out;
	struct judged j;
	const char **rcptp;
	size_t k;

	a->req = NULL;
	memset(&out, 0, sizeof(out));
	out.threshold = a->threshold;
	out.counted = (unsigned)a->nrcpt;
	judge(&j, a->st, a->c, &a->d, (const char (*)[33])a->keys, a->nrcpt,
	    a->threshold, a->now, rc == 0 ? sh : NULL, &out);
	if (rc != 0) {
		rcptp = xreallocarray(NULL, a->nrcpt, sizeof(*rcptp));
		ask_query(a, rcptp, &q);
		/* judged_load() filled the same slots in the same order. */
		for (k = 0; k < q.n && out.verdict != BULK_ERROR; k++) {
			q.until[k] = j.row[k].bulk_until;
			q.gen[k] = j.gen[k];
		}
		cluster_bulk_replay(a->b->cluster, &q);
		free(rcptp);
	}
	a->cb(&out, &a->d, a->arg);
	ask_free(a);
}

struct bulk_ask *
bulk_judge_ask(struct bulk *b, struct state *st, const struct config *c,
    const struct bulk_digests *d, const char *const *rcpts, size_t nrcpt,
    unsigned threshold, int64_t now, struct bulk_outcome *out,
    bulk_judged_cb *cb, void *arg)
{
	struct cluster_bulk_query q;
	struct bulk_ask *a;
	const char **rcptp;

	if (judge_skip(d, nrcpt, threshold, out))
		return NULL;
	if (b->cluster == NULL) {
		judge_here(st, c, d, rcpts, nrcpt, threshold, now, out);
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->b = b;
	a->st = st;
	a->c = c;
	a->d = *d;
	a->keys = rcpt_keys(rcpts, nrcpt);
	a->nrcpt = nrcpt;
	a->threshold = threshold;
	a->now = now;
	a->cb = cb;
	a->arg = arg;
	rcptp = xreallocarray(NULL, nrcpt, sizeof(*rcptp));
	ask_query(a, rcptp, &q);
	a->req = cluster_bulk_ask(b->cluster, &q, ask_done, a);
	free(rcptp);
	return a;
}

void
bulk_ask_cancel(struct bulk_ask *a)
{
	if (a == NULL)
		return;
	cluster_bulk_cancel(a->req);
	ask_free(a);
}

/* v in decimal at out, unterminated: how many digits. */
static size_t
uint_text(unsigned v, char *out)
{
	char tmp[12];
	size_t n = 0, k;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	for (k = 0; k < n; k++)
		out[k] = tmp[n - 1 - k];
	return n;
}

const char *
bulk_summary(char *buf, size_t bufsz, const struct bulk_digests *d,
    const struct bulk_outcome *o)
{
	char one[64];
	size_t n = 0, k;
	int i;

	/* Pieces joined by hand: a snprintf per digest was a tenth of the
	 * detector's cost on a short message (docs/bulk.md §5). */
	buf[0] = '\0';
	for (i = 0; i < BULK_NDIGEST; i++) {
		const struct bulk_digest *dg = &d->d[i];
		const char *name = bulk_kind_name(dg->kind);

		if (!dg->valid)
			continue;
		k = 0;
		if (n > 0)
			one[k++] = ',';
		if (dg->kind == BULK_SHINGLE) {
			one[k++] = 's';
			one[k++] = (char)('0' + dg->band % 10);
		} else {
			memcpy(one + k, name, strlen(name));
			k += strlen(name);
		}
		one[k++] = '=';
		memcpy(one + k, dg->hex, 8);
		k += 8;
		one[k++] = '/';
		k += uint_text(o->count[i], one + k);
		if (o->remembered[i])
			one[k++] = '*';
		if (n + k >= bufsz)
			break;
		memcpy(buf + n, one, k);
		buf[n += k] = '\0';
	}
	return buf;
}

const char *
bulk_verdict_name(int v)
{
	switch (v) {
	case BULK_PASS:
		return "pass";
	case BULK_BULK:
		return "bulk";
	case BULK_ERROR:
		return "error";
	default:
		return "skipped";
	}
}
