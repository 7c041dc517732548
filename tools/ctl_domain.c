/*
 * ctl_domain: the per-domain knowledge of docs/architecture.md §6 for the
 * operator.
 *
 *   domain list [--json]                     every customer domain
 *   domain show DOMAIN [--json]
 *   recipients list DOMAIN [--json]          recipients= list, then learned
 *   recipients add ADDRESS [valid|invalid] [--json]   never expires
 *   recipients delete ADDRESS [--json]
 *
 * As ctl_queue.c: the daemon renders the answer, this side sends one
 * line, checks the status line and copies the rest. Changes always go
 * through the daemon (its state store transaction owns them). The three
 * reads fall back to reading state_dir/state.db when the daemon is not
 * running (socket missing or refused): the lifecycle is then the stored
 * one and health and queue are unknown ("-", JSON null).
 *
 * Exit 0, 1 no such recipient (delete), 64 usage, 65 not a customer
 * domain or not an address, 69 daemon not reachable, 75 store error.
 */
#include "ctl_domain.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "control.h"
#include "view.h"
#include "ctl_conn.h"
#include "domains.h"
#include "state.h"

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] domain list [--json]\n"
	    "       backmxctl [-c config] domain show DOMAIN [--json]\n"
	    "       backmxctl [-c config] recipients list DOMAIN [--json]\n"
	    "       backmxctl [-c config] recipients add ADDRESS "
	    "[valid|invalid] [--json]\n"
	    "       backmxctl [-c config] recipients delete ADDRESS "
	    "[--json]\n");
	exit(64);
}

/* One word of the request: printable ASCII without spaces. The daemon
 * checks it again; this only keeps the line one line. */
static int
word_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* Without the daemon: state.db and domains_file, rendered the same way.
 * noun verb: "domain list", "domain show DOMAIN", "recipients list
 * DOMAIN". */
static int
offline(const struct config *conf, const char *noun, const char *verb,
    const char *arg, int json)
{
	struct domains *ds;
	const struct domain *d = NULL;
	struct state *st;
	struct evbuffer *b;
	char err[1024];
	int64_t now = (int64_t)time(NULL);
	int rc;

	if ((ds = domains_load(conf->domains_file, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 78;
	}
	if (arg != NULL && (d = domains_lookup(ds, arg)) == NULL) {
		fprintf(stderr, "backmxctl: not a customer domain: %s\n", arg);
		domains_free(ds);
		return 65;
	}
	if ((st = state_open_admin(conf->state_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		domains_free(ds);
		return 75;
	}
	fprintf(stderr, "backmxctl: backmxd is not running: %s from %s%s\n",
	    strcmp(noun, "domain") == 0 ? "lifecycle as stored" : "recipients",
	    state_path(st), strcmp(noun, "domain") == 0 ? ", health and queue "
	    "unknown" : "");
	b = evbuffer_new();
	if (strcmp(noun, "recipients") == 0)
		rc = control_rcpt_list(st, d, b, json, now);
	else if (strcmp(verb, "show") == 0)
		rc = control_domain_show(st, NULL, NULL, d, b, json, now);
	else
		rc = control_domain_list(st, NULL, NULL, ds, b, json, now);
	if (rc == -1) {
		fprintf(stderr, "backmxctl: %s: read error\n", state_path(st));
		rc = 75;
	} else
		rc = ctl_flush(b);
	evbuffer_free(b);
	state_close(st);
	domains_free(ds);
	return rc;
}

int
ctl_domain(const struct config *conf, int argc, char **argv)
{
	const char *noun = argv[0], *verb, *arg = NULL, *status = NULL;
	char req[CONTROL_LINE_MAX + 1], *args[4];
	int nargs, json = 0, rc;

	if ((nargs = ctl_args(argc, argv, NULL, NULL, &json, args, 4)) <= 0)
		usage();
	verb = args[0];
	if (strcmp(noun, "domain") == 0) {
		if (strcmp(verb, "list") == 0 && nargs == 1)
			;
		else if (strcmp(verb, "show") == 0 && nargs == 2)
			arg = args[1];
		else
			usage();
	} else {
		if ((strcmp(verb, "list") == 0 || strcmp(verb, "delete") ==
		    0) && nargs == 2)
			arg = args[1];
		else if (strcmp(verb, "add") == 0 && (nargs == 2 ||
		    nargs == 3)) {
			arg = args[1];
			status = nargs == 3 ? args[2] : "valid";
			if (strcmp(status, "valid") != 0 &&
			    strcmp(status, "invalid") != 0)
				usage();
		} else
			usage();
	}
	if (arg != NULL && !word_ok(arg)) {
		fprintf(stderr, "backmxctl: not a %s: %s\n",
		    strcmp(noun, "domain") == 0 || strcmp(verb, "list") == 0 ?
		    "domain name" : "plain ASCII address", arg);
		return 65;
	}
	if ((size_t)snprintf(req, sizeof(req), "%s %s%s%s%s%s%s\n", noun, verb,
	    arg ? " " : "", arg ? arg : "", status ? " " : "",
	    status ? status : "", json ? " json" : "") >= sizeof(req)) {
		fprintf(stderr, "backmxctl: argument too long\n");
		return 65;
	}
	/* Only the reads may do without the daemon. */
	rc = ctl_request(conf, req, arg, strcmp(verb, "list") == 0 ||
	    strcmp(verb, "show") == 0);
	return rc == CTL_NOT_RUNNING ? offline(conf, noun, verb, arg, json) :
	    rc;
}
