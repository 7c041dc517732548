/*
 * ctl_greylist: the greylist subcommands of backmxctl.
 *
 *   greylist list [--pending|--passed] [--json]
 *   greylist allow CLIENT|DOMAIN|SENDER
 *                                      an address, ADDR/LEN, a sender
 *                                      domain (and its subdomains) or a
 *                                      whole sender address
 *   greylist delete KEY                a triplet "NET <SENDER> <RCPT>"
 *                                      (one word or three), an allow
 *                                      entry, or a network's record
 *
 * list reads state.db itself (SQLite readers never block the daemon).
 * allow and delete are requests to the running daemon, which writes its
 * own store and answers once the change committed (src/ctl/control.h):
 * its next RCPT check sees the change, and nothing but the daemon ever
 * writes state.db while it runs. With no daemon they are refused (69),
 * as "recipients add|delete" are: the entries meant to hold before a
 * start belong in backmx.conf's greylist_allow_* keys.
 *
 * In a cluster an allow entry's add or delete is answered once Redis has
 * it too (docs/cluster.md "Allow entries").
 *
 * Text by default, one line a row; --json: one JSON document. Exit 0, 1
 * when delete found nothing, 64 usage, 65 bad value, 69 no daemon, 75
 * store error (or, in a cluster, Redis did not answer: done on this node
 * only, shared once it does).
 */
#include "ctl_greylist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "ctl_conn.h"
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
	fprintf(stderr, "usage: backmxctl [-c config] greylist list "
	    "[--pending|--passed] [--json]\n"
	    "       backmxctl [-c config] greylist allow CLIENT|DOMAIN|SENDER\n"
	    "       backmxctl [-c config] greylist delete KEY\n");
	exit(64);
}

static int
triplet_row(const struct state_triplet *t, void *arg)
{
	struct out *o = arg;
	char a[32], b[32], c[32], d[32], s[STATE_ADDR_MAX], r[STATE_ADDR_MAX];
	char key[STATE_NET_MAX + 2 * STATE_ADDR_MAX + 8];

	if (o->j == NULL) {
		/* The addresses are a client's: no control or bidi
		 * character reaches the terminal (str_term()). */
		printf("%-7s %s <%s> <%s> first=%s last=%s passed=%s "
		    "expires=%s tries=%u passes=%u\n",
		    t->passed ? "passed" : "pending", t->net,
		    str_term(s, sizeof(s), t->sender),
		    str_term(r, sizeof(r), t->rcpt), ctl_iso(t->first_seen, a,
		    sizeof(a)),
		    ctl_iso(t->last_seen, b, sizeof(b)), ctl_iso(t->passed, c,
		    sizeof(c)), ctl_iso(t->expires, d, sizeof(d)), t->tries,
		    t->passes);
		return 0;
	}
	snprintf(key, sizeof(key), "%s <%s> <%s>", t->net, t->sender,
	    t->rcpt);
	json_object(o->j);
	json_kstr(o->j, "key", key);
	json_kstr(o->j, "state", t->passed ? "passed" : "pending");
	json_kstr(o->j, "net", t->net);
	json_kstr(o->j, "sender", t->sender);
	json_kstr(o->j, "rcpt", t->rcpt);
	json_kint(o->j, "first_seen", t->first_seen);
	json_kint(o->j, "last_seen", t->last_seen);
	json_kint(o->j, "passed", t->passed);
	json_kint(o->j, "expires", t->expires);
	json_kuint(o->j, "tries", t->tries);
	json_kuint(o->j, "passes", t->passes);
	json_end(o->j);
	return 0;
}

static int
net_row(const struct state_net *n, void *arg)
{
	struct out *o = arg;
	int allowed = n->allowed != 0 && n->expires >= o->now;
	char a[32], b[32];

	if (o->j == NULL) {
		printf("network %s passes=%u auto_allowed=%s since=%s "
		    "expires=%s\n", n->net, n->passes, allowed ? "yes" : "no",
		    ctl_iso(n->allowed, a, sizeof(a)), ctl_iso(n->expires, b,
		    sizeof(b)));
		return 0;
	}
	json_object(o->j);
	json_kstr(o->j, "net", n->net);
	json_kuint(o->j, "passes", n->passes);
	json_kbool(o->j, "auto_allowed", allowed);
	json_kint(o->j, "since", n->allowed);
	json_kint(o->j, "expires", n->expires);
	json_end(o->j);
	return 0;
}

static int
allow_row(enum state_allow_kind kind, const char *value, int64_t added,
    void *arg)
{
	struct out *o = arg;

	return ctl_allow_row(o->j, "allow  ", kind, value, added);
}

/* The whole store: text one row a line, or one JSON document
 * {"triplets": [...], "networks": [...], "allow": [...]} written row by
 * row as the store is read. */
static int
list(struct state *st, enum state_list_filter filter, int json)
{
	struct json j;
	struct out o = { json ? &j : NULL, (int64_t)time(NULL) };

	json_init(&j, json_stdio, stdout);
	if (json) {
		json_object(&j);
		json_key(&j, "triplets");
		json_array(&j);
	}
	if (state_triplet_list(st, filter, triplet_row, &o) == -1)
		return 75;
	if (filter == STATE_LIST_ALL) {
		if (json) {
			json_end(&j);
			json_key(&j, "networks");
			json_array(&j);
		}
		if (state_net_list(st, net_row, &o) == -1)
			return 75;
		if (json) {
			json_end(&j);
			json_key(&j, "allow");
			json_array(&j);
		}
		if (state_allow_list(st, allow_row, &o) == -1)
			return 75;
	}
	if (json) {
		json_end(&j);
		json_end(&j);
		json_raw(&j, "\n");
	}
	return 0;
}

/* "NET <SENDER> <RCPT>" into its three parts; -1 when it is not one. */
static int
split_key(char *key, char **net, char **sender, char **rcpt)
{
	char *sp = strchr(key, ' '), *mid;
	size_t n;

	if (sp == NULL)
		return -1;
	*sp = '\0';
	*net = key;
	key = sp + 1;
	n = strlen(key);
	/* The last "> <": a recipient is a plain address, the sender is
	 * what the daemon normalised. */
	if (n < 5 || key[0] != '<' || key[n - 1] != '>')
		return -1;
	key[n - 1] = '\0';
	for (mid = key + n - 2; mid > key; mid--)
		if (strncmp(mid, "> <", 3) == 0)
			break;
	if (mid == key)
		return -1;
	*mid = '\0';
	*sender = key + 1;
	*rcpt = mid + 3;
	return 0;
}

static char *
strip_brackets(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

/*
 * "greylist allow|delete ..." as a request to the daemon: each argument
 * one %XX-encoded word, a triplet's sender and recipient with their
 * brackets ("<>" is the null sender). Returns the exit status.
 */
static int
change(const struct config *conf, char **words, int n, int json,
    const char *arg)
{
	char req[CONTROL_LINE_MAX + 1], w[CONTROL_LINE_MAX];
	size_t o;
	int i, rc;

	o = (size_t)snprintf(req, sizeof(req), "greylist %s", words[0]);
	for (i = 1; i < n; i++) {
		if (control_word_encode(words[i], w, sizeof(w)) == -1 ||
		    o + 1 + strlen(w) >= sizeof(req))
			goto too_long;
		o += (size_t)snprintf(req + o, sizeof(req) - o, " %s", w);
	}
	if (o + sizeof(" json\n") > sizeof(req))
		goto too_long;
	snprintf(req + o, sizeof(req) - o, "%s\n", json ? " json" : "");
	rc = ctl_request(conf, req, arg, 1);
	if (rc == CTL_NOT_RUNNING) {
		fprintf(stderr, "backmxctl: backmxd is not running (no %s): "
		    "greylist changes are made by the daemon; entries for "
		    "before a start go in backmx.conf "
		    "(greylist_allow_clients, greylist_allow_senders)\n",
		    conf->control_socket);
		return 69;
	}
	return rc;
too_long:
	fprintf(stderr, "backmxctl: argument too long: %s\n", arg);
	return 65;
}

int
ctl_greylist(const struct config *conf, int argc, char **argv)
{
	enum state_list_filter filter = STATE_LIST_ALL;
	struct state *st;
	static const char *const flags[] = { "--pending", "--passed", NULL };
	char err[1024], *args[4], *w[4], *key = NULL;
	char sender[STATE_ADDR_MAX + 3], rcpt[STATE_ADDR_MAX + 3];
	char *net, *s, *r;
	int nargs, json = 0, flag = 0, rc;

	if ((nargs = ctl_args(argc, argv, flags, &flag, &json, args, 4)) <= 0)
		usage();
	if (flag == 1)
		filter = STATE_LIST_PENDING;
	else if (flag == 2)
		filter = STATE_LIST_PASSED;
	if (strcmp(args[0], "list") == 0) {
		if (nargs != 1)
			usage();
	} else if (strcmp(args[0], "allow") == 0) {
		if (nargs != 2 || filter != STATE_LIST_ALL)
			usage();
		return change(conf, args, 2, json, args[1]);
	} else if (strcmp(args[0], "delete") == 0) {
		if ((nargs != 2 && nargs != 4) || filter != STATE_LIST_ALL)
			usage();
		if (nargs == 2 && strchr(args[1], ' ') == NULL)
			return change(conf, args, 2, json, args[1]);
		/* A triplet: three words, or the key as list shows it. */
		if (nargs == 4) {
			net = args[1];
			s = strip_brackets(args[2]);
			r = strip_brackets(args[3]);
		} else if ((key = strdup(args[1])) == NULL ||
		    split_key(key, &net, &s, &r) == -1) {
			fprintf(stderr, "backmxctl: bad key '%s': NET <SENDER> "
			    "<RCPT>\n", args[1]);
			free(key);
			return 65;
		}
		if ((size_t)snprintf(sender, sizeof(sender), "<%s>", s) >=
		    sizeof(sender) || (size_t)snprintf(rcpt, sizeof(rcpt),
		    "<%s>", r) >= sizeof(rcpt)) {
			fprintf(stderr, "backmxctl: bad key '%s': address too "
			    "long\n", args[1]);
			free(key);
			return 65;
		}
		w[0] = args[0];
		w[1] = net;
		w[2] = sender;
		w[3] = rcpt;
		rc = change(conf, w, 4, json, args[1]);
		free(key);
		return rc;
	} else
		usage();

	if ((st = state_open_admin(conf->state_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 75;
	}
	rc = list(st, filter, json);
	state_close(st);
	return rc;
}
