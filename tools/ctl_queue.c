/*
 * ctl_queue: the queue subcommands of backmxctl.
 *
 *   queue list [--json]            mailq-like; JSON: one message a line
 *   queue show ID [--json]
 *   queue flush [DOMAIN] [--json]
 *   queue delete|hold|release ID [--json]
 *
 * The daemon renders the answer (text, or JSON lines with --json); this
 * side sends one line, checks the status line and copies the rest. Exit
 * 0, 1 no such message, 64 usage, 65 bad value or not a customer domain,
 * 69 daemon not reachable, 75 queue database error.
 */
#include "ctl_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "control.h"
#include "view.h"
#include "ctl_conn.h"
#include "qdb.h"

static void
usage(void)
{
	fprintf(stderr, "usage: backmxctl [-c config] queue list [--json]\n"
	    "       backmxctl [-c config] queue show ID [--json]\n"
	    "       backmxctl [-c config] queue flush [DOMAIN] [--json]\n"
	    "       backmxctl [-c config] queue delete|hold|release ID "
	    "[--json]\n");
	exit(64);
}

/* Without the daemon: queue.db read-only, rendered the same way. */
static int
list_offline(const struct config *conf, int json)
{
	struct evbuffer *b;
	struct queue_listing *l;
	struct qdb *db;
	char err[1024];
	int rc = 0, more;

	if ((db = qdb_open_readonly(conf->spool_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 75;
	}
	b = evbuffer_new();
	l = control_queue_list_new(db, json);
	/* A page at a time, printed as it comes: never the whole queue in
	 * memory. */
	do {
		if ((more = control_queue_list_page(l, b, 256)) == -1) {
			fprintf(stderr, "backmxctl: %s/queue.db: read error\n",
			    conf->spool_dir);
			rc = 75;
		} else
			rc = ctl_flush(b);
	} while (more == 1 && rc == 0);
	control_queue_list_free(l);
	evbuffer_free(b);
	qdb_close(db);
	return rc;
}

int
ctl_queue(const struct config *conf, int argc, char **argv)
{
	char req[CONTROL_LINE_MAX + 1];
	const char *verb, *arg = NULL;
	int json = 0, rc;

	if (argc > 1 && strcmp(argv[argc - 1], "--json") == 0) {
		json = 1;
		argc--;
	}
	if (argc < 2 || argc > 3)
		usage();
	verb = argv[1];
	if (argc == 3)
		arg = argv[2];
	if (strcmp(verb, "list") == 0) {
		if (arg != NULL)
			usage();
	} else if (strcmp(verb, "flush") != 0) {
		if (strcmp(verb, "show") != 0 && strcmp(verb, "delete") != 0 &&
		    strcmp(verb, "hold") != 0 && strcmp(verb, "release") != 0)
			usage();
		if (arg == NULL)
			usage();
	}
	if (arg != NULL && (strchr(arg, ' ') != NULL || arg[0] == '\0'))
		usage();
	if ((size_t)snprintf(req, sizeof(req), "queue %s%s%s%s\n", verb,
	    arg ? " " : "", arg ? arg : "", json ? " json" : "") >=
	    sizeof(req)) {
		fprintf(stderr, "backmxctl: argument too long\n");
		return 65;
	}
	rc = ctl_request(conf, req, arg, strcmp(verb, "list") == 0);
	return rc == CTL_NOT_RUNNING ? list_offline(conf, json) : rc;
}
