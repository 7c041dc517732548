/*
 * ctl_greylist: the greylist subcommands of backmxctl.
 *
 *   greylist list [--pending|--passed] [--json]
 *   greylist allow CLIENT|DOMAIN       an address, ADDR/LEN, or a sender
 *                                      domain (and its subdomains)
 *   greylist delete KEY                a triplet "NET <SENDER> <RCPT>"
 *                                      (one word or three), an allow
 *                                      entry, or a network's record
 *
 * Text by default, one line a row; --json: one JSON document. Exit 0, 1
 * when delete found nothing, 64 usage, 65 bad value, 75 store error.
 */
#include "ctl_greylist.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "ctl_conn.h"
#include "state.h"
#include "str.h"

struct out {
	int	json;
	int	n;		/* rows written in the current array */
	int64_t	now;
};

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] greylist list "
	    "[--pending|--passed] [--json]\n"
	    "       backmxctl [-c config] greylist allow CLIENT|DOMAIN\n"
	    "       backmxctl [-c config] greylist delete KEY\n");
	exit(64);
}

static void
json_str(const char *s)
{
	char q[6 * 512 + 3];	/* keys and addresses are far shorter */

	fputs(str_json(q, sizeof(q), s), stdout);
}

/* "2024-05-01T12:00:00Z", or "-" for 0. */
static const char *
iso(int64_t t, char *buf, size_t bufsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static int
triplet_row(const struct state_triplet *t, void *arg)
{
	struct out *o = arg;
	char a[32], b[32], c[32], d[32];

	if (!o->json) {
		printf("%-7s %s <%s> <%s> first=%s last=%s passed=%s "
		    "expires=%s tries=%u passes=%u\n",
		    t->passed ? "passed" : "pending", t->net, t->sender,
		    t->rcpt, iso(t->first_seen, a, sizeof(a)),
		    iso(t->last_seen, b, sizeof(b)), iso(t->passed, c,
		    sizeof(c)), iso(t->expires, d, sizeof(d)), t->tries,
		    t->passes);
		return 0;
	}
	printf("%s\n    {\"key\": ", o->n++ ? "," : "");
	{
		char key[STATE_NET_MAX + 2 * STATE_ADDR_MAX + 8];

		snprintf(key, sizeof(key), "%s <%s> <%s>", t->net, t->sender,
		    t->rcpt);
		json_str(key);
	}
	printf(", \"state\": \"%s\", \"net\": ", t->passed ? "passed" :
	    "pending");
	json_str(t->net);
	printf(", \"sender\": ");
	json_str(t->sender);
	printf(", \"rcpt\": ");
	json_str(t->rcpt);
	printf(", \"first_seen\": %lld, \"last_seen\": %lld, \"passed\": %lld"
	    ", \"expires\": %lld, \"tries\": %u, \"passes\": %u}",
	    (long long)t->first_seen, (long long)t->last_seen,
	    (long long)t->passed, (long long)t->expires, t->tries, t->passes);
	return 0;
}

static int
net_row(const struct state_net *n, void *arg)
{
	struct out *o = arg;
	int allowed = n->allowed != 0 && n->expires >= o->now;
	char a[32], b[32];

	if (!o->json) {
		printf("network %s passes=%u auto_allowed=%s since=%s "
		    "expires=%s\n", n->net, n->passes, allowed ? "yes" : "no",
		    iso(n->allowed, a, sizeof(a)), iso(n->expires, b,
		    sizeof(b)));
		return 0;
	}
	printf("%s\n    {\"net\": ", o->n++ ? "," : "");
	json_str(n->net);
	printf(", \"passes\": %u, \"auto_allowed\": %s, \"since\": %lld, "
	    "\"expires\": %lld}", n->passes, allowed ? "true" : "false",
	    (long long)n->allowed, (long long)n->expires);
	return 0;
}

static int
allow_row(enum state_allow_kind kind, const char *value, int64_t added,
    void *arg)
{
	struct out *o = arg;
	const char *k = kind == STATE_ALLOW_CLIENT ? "client" : "domain";
	char a[32];

	if (!o->json) {
		printf("allow   %s %s added=%s\n", k, value, iso(added, a,
		    sizeof(a)));
		return 0;
	}
	printf("%s\n    {\"kind\": \"%s\", \"value\": ", o->n++ ? "," : "",
	    k);
	json_str(value);
	printf(", \"added\": %lld}", (long long)added);
	return 0;
}

static int
list(struct state *st, enum state_list_filter filter, int json)
{
	struct out o = { json, 0, (int64_t)time(NULL) };

	if (json)
		printf("{\"triplets\": [");
	if (state_triplet_list(st, filter, triplet_row, &o) == -1)
		return 75;
	if (filter == STATE_LIST_ALL) {
		if (json)
			printf("%s],\n \"networks\": [", o.n ? "\n  " : "");
		o.n = 0;
		if (state_net_list(st, net_row, &o) == -1)
			return 75;
		if (json)
			printf("%s],\n \"allow\": [", o.n ? "\n  " : "");
		o.n = 0;
		if (state_allow_list(st, allow_row, &o) == -1)
			return 75;
	}
	if (json)
		printf("%s]}\n", o.n ? "\n  " : "");
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

int
ctl_greylist(const struct config *conf, int argc, char **argv)
{
	enum state_list_filter filter = STATE_LIST_ALL;
	struct state *st;
	static const char *const flags[] = { "--pending", "--passed", NULL };
	char err[1024], *args[4], *net, *sender, *rcpt, *key = NULL;
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
	} else if (strcmp(args[0], "delete") == 0) {
		if ((nargs != 2 && nargs != 4) || filter != STATE_LIST_ALL)
			usage();
	} else
		usage();

	if ((st = state_open_admin(conf->state_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 75;
	}
	if (strcmp(args[0], "list") == 0)
		rc = list(st, filter, json);
	else if (strcmp(args[0], "allow") == 0) {
		/* An address or a network has a digit-dot or a colon
		 * shape; anything else is a sender domain. */
		const char *v = args[1];
		enum state_allow_kind kind = strchr(v, ':') != NULL ||
		    strchr(v, '/') != NULL || strspn(v, "0123456789.") ==
		    strlen(v) ? STATE_ALLOW_CLIENT : STATE_ALLOW_DOMAIN;

		rc = state_allow_add(st, kind, v, (int64_t)time(NULL), err,
		    sizeof(err));
		if (rc == -2) {
			fprintf(stderr, "backmxctl: %s\n", err);
			rc = 65;
		} else if (rc == -1)
			rc = 75;
		else {
			if (json)
				printf("{\"added\": %s}\n", rc ? "false" :
				    "true");
			else
				printf("%s %s\n", v, rc ? "was allowed "
				    "already" : "allowed");
			rc = 0;
		}
	} else {
		if (nargs == 4) {
			net = args[1];
			sender = strip_brackets(args[2]);
			rcpt = strip_brackets(args[3]);
			rc = state_delete(st, net, sender, rcpt);
		} else {
			key = strdup(args[1]);
			if (key != NULL && strchr(key, ' ') != NULL) {
				if (split_key(key, &net, &sender, &rcpt) ==
				    -1) {
					fprintf(stderr, "backmxctl: bad key "
					    "'%s': NET <SENDER> <RCPT>\n",
					    args[1]);
					free(key);
					state_close(st);
					return 65;
				}
				rc = state_delete(st, net, sender, rcpt);
			} else
				rc = state_delete(st, args[1], NULL, NULL);
		}
		free(key);
		if (rc == -1)
			rc = 75;
		else {
			if (json)
				printf("{\"deleted\": %d}\n", rc);
			else
				printf("%d deleted\n", rc);
			rc = rc == 0 ? 1 : 0;
		}
	}
	state_close(st);
	return rc;
}
