/*
 * ctl_bulk: the bulk subcommands of backmxctl (docs/bulk.md §6).
 *
 *   bulk list [--all] [--json]   digests counted past half the threshold
 *                                (--all: every one), or remembered as bulk;
 *                                the operator's allow entries
 *   bulk allow CLIENT|DOMAIN|SENDER
 *                                an address, ADDR/LEN, a sender domain
 *                                (and its subdomains) or a whole sender
 *                                address: never counted
 *   bulk allow --recipient RECIPIENT|DOMAIN
 *                                a recipient, or every recipient of a
 *                                domain (and its subdomains): never
 *                                counted
 *   bulk forget DIGEST|VALUE     the digest is no longer bulk and counts
 *                                from 0 (a false positive, or a newsletter
 *                                just allow-listed); or an allow entry goes
 *
 * list reads state.db itself; allow and forget are requests to the running
 * daemon, answered once the change committed, refused (69) with no daemon
 * (entries for before a start go in bulk_allow_*). Exit 0, 1 when forget
 * found nothing, 64 usage, 65 bad value, 69 no daemon, 75 store error (or,
 * in a cluster, Redis did not answer a forget, or an allow entry's add or
 * delete: that one is done on this node, shared once Redis answers).
 */
#include "ctl_bulk.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "ctl_conn.h"
#include "digest.h"
#include "json.h"
#include "state.h"
#include "str.h"

struct out {
	struct json	*j;	/* NULL: text */
	int64_t		 now;
};

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] bulk list [--all] "
	    "[--json]\n"
	    "       backmxctl [-c config] bulk allow CLIENT|DOMAIN|SENDER\n"
	    "       backmxctl [-c config] bulk allow --recipient "
	    "RECIPIENT|DOMAIN\n"
	    "       backmxctl [-c config] bulk forget DIGEST|VALUE\n");
	exit(64);
}

static int
row(const struct state_bulk *b, void *arg)
{
	struct out *o = arg;
	char a[32], c[32], d[32], subj[sizeof(b->subject) * 4],
	    from[sizeof(b->sender) * 4];
	int remembered = b->bulk_until > o->now;

	if (o->j == NULL) {
		/* The Subject and the sender are a peer's: no control or
		 * bidi character reaches the terminal (str_term()). */
		printf("%s %-7s count=%u first=%s last=%s bulk=%s "
		    "from=%s%s%s subject=\"%s\"\n", b->digest,
		    bulk_kind_name(b->kind), b->count,
		    ctl_iso(b->first_seen, a, sizeof(a)),
		    ctl_iso(b->last_seen, c, sizeof(c)), remembered ?
		    ctl_iso(b->bulk_until, d, sizeof(d)) : "no",
		    b->has_sender ? "<" : "?", b->has_sender ?
		    str_term(from, sizeof(from), b->sender) : "",
		    b->has_sender ? ">" : "",
		    str_term(subj, sizeof(subj), b->subject));
		return 0;
	}
	json_object(o->j);
	json_kstr(o->j, "digest", b->digest);
	json_kstr(o->j, "kind", bulk_kind_name(b->kind));
	json_key(o->j, "count");
	json_uint(o->j, b->count);
	json_key(o->j, "first_seen");
	json_int(o->j, b->first_seen);
	json_key(o->j, "last_seen");
	json_int(o->j, b->last_seen);
	json_key(o->j, "remembered");
	json_bool(o->j, remembered);
	json_key(o->j, "bulk_until");
	json_int(o->j, remembered ? b->bulk_until : 0);
	json_kstr(o->j, "subject", b->subject);
	/* "" is the null sender <>; null: not known (schema 3). */
	if (b->has_sender)
		json_kstr(o->j, "sender", b->sender);
	else {
		json_key(o->j, "sender");
		json_null(o->j);
	}
	json_end(o->j);
	return 0;
}

static int
allow_row(enum state_allow_kind kind, const char *value, int64_t added,
    void *arg)
{
	struct out *o = arg;

	return ctl_allow_row(o->j, "allow", kind, value, added);
}

static int
list(const struct config *conf, int all, int json)
{
	struct state *st;
	struct json j;
	struct out o = { json ? &j : NULL, (int64_t)time(NULL) };
	unsigned min = all ? 0 : (conf->bulk_threshold + 1) / 2;
	char err[1024];
	int rc = 0;

	if ((st = state_open_admin(conf->state_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 75;
	}
	json_init(&j, json_stdio, stdout);
	if (json) {
		json_object(&j);
		json_key(&j, "threshold");
		json_uint(&j, conf->bulk_threshold);
		json_key(&j, "digests");
		json_array(&j);
	}
	if (state_bulk_list(st, min, o.now, row, &o) == -1)
		rc = 75;
	if (json) {
		json_end(&j);
		json_key(&j, "allow");
		json_array(&j);
	}
	if (rc == 0 && state_bulk_allow_list(st, allow_row, &o) == -1)
		rc = 75;
	if (json) {
		json_end(&j);
		json_end(&j);
		json_raw(&j, "\n");
	}
	state_close(st);
	return rc;
}

/* "bulk allow|forget VALUE", to the daemon. */
static int
change(const struct config *conf, const char *verb, const char *value,
    int json)
{
	char req[CONTROL_LINE_MAX + 1], w[CONTROL_LINE_MAX];
	int rc;

	if (control_word_encode(value, w, sizeof(w)) == -1 ||
	    (size_t)snprintf(req, sizeof(req), "bulk %s %s%s\n", verb, w,
	    json ? " json" : "") >= sizeof(req)) {
		fprintf(stderr, "backmxctl: argument too long: %s\n", value);
		return 65;
	}
	rc = ctl_request(conf, req, value, 1);
	if (rc == CTL_NOT_RUNNING) {
		fprintf(stderr, "backmxctl: backmxd is not running (no %s): "
		    "bulk changes are made by the daemon; entries for before "
		    "a start go in backmx.conf (bulk_allow_clients, "
		    "bulk_allow_senders, bulk_allow_recipients)\n",
		    conf->control_socket);
		return 69;
	}
	return rc;
}

int
ctl_bulk(const struct config *conf, int argc, char **argv)
{
	static const char *const flags[] = { "--all", "--recipient", NULL };
	char *args[3];
	int nargs, json = 0, flag = 0;

	if ((nargs = ctl_args(argc, argv, flags, &flag, &json, args, 3)) <= 0)
		usage();
	if (strcmp(args[0], "list") == 0 && nargs == 1 && flag != 2)
		return list(conf, flag == 1, json);
	if (strcmp(args[0], "allow") == 0 && nargs == 2 && flag == 2)
		return change(conf, "allow-recipient", args[1], json);
	if ((strcmp(args[0], "forget") == 0 || strcmp(args[0], "allow") ==
	    0) && nargs == 2 && flag == 0)
		return change(conf, args[0], args[1], json);
	usage();
	return 64;
}
