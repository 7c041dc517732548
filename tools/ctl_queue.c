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

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "control.h"
#include "qdb.h"

#define CTL_TIMEOUT	60	/* seconds for the daemon's answer */

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
	struct qdb *db;
	char err[1024];
	int rc = 0;

	if ((db = qdb_open_readonly(conf->spool_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxctl: %s\n", err);
		return 75;
	}
	b = evbuffer_new();
	if (control_queue_list(db, b, json) == -1) {
		fprintf(stderr, "backmxctl: %s/queue.db: read error\n",
		    conf->spool_dir);
		rc = 75;
	} else if (evbuffer_write(b, STDOUT_FILENO) == -1 &&
	    evbuffer_get_length(b) > 0)
		rc = 74;
	while (rc == 0 && evbuffer_get_length(b) > 0)
		if (evbuffer_write(b, STDOUT_FILENO) == -1)
			rc = 74;
	evbuffer_free(b);
	qdb_close(db);
	return rc;
}

static int
dial(const char *path)
{
	struct sockaddr_un sun;
	struct timeval tv = { CTL_TIMEOUT, 0 };
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
ctl_queue(const struct config *conf, int argc, char **argv)
{
	char req[CONTROL_LINE_MAX + 1], status[1024];
	const char *verb, *arg = NULL;
	int json = 0, fd, rc;
	FILE *f;
	size_t n;
	char buf[8192];

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
	if ((fd = dial(conf->control_socket)) == -1) {
		if (strcmp(verb, "list") == 0 && (errno == ENOENT ||
		    errno == ECONNREFUSED))
			return list_offline(conf, json);
		fprintf(stderr, "backmxctl: %s: %s (is backmxd running?)\n",
		    conf->control_socket, strerror(errno));
		return 69;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		fprintf(stderr, "backmxctl: %s: %s\n", conf->control_socket,
		    strerror(errno));
		close(fd);
		return 69;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return 71;
	}
	if (fgets(status, sizeof(status), f) == NULL) {
		fprintf(stderr, "backmxctl: %s: no answer\n",
		    conf->control_socket);
		fclose(f);
		return 69;
	}
	status[strcspn(status, "\r\n")] = '\0';
	rc = 0;
	if (strcmp(status, "ok") != 0) {
		const char *text = status;

		if (strncmp(status, "error notfound ", 15) == 0)
			rc = 1;
		else if (strncmp(status, "error usage ", 12) == 0)
			rc = 64;
		else if (strncmp(status, "error domain ", 13) == 0)
			rc = 65;
		else
			rc = 75;
		if (strncmp(text, "error ", 6) == 0 &&
		    (text = strchr(text + 6, ' ')) != NULL)
			text++;
		else
			text = status;
		fprintf(stderr, "backmxctl: %s%s%s\n", text, arg ? ": " : "",
		    arg ? arg : "");
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	if (ferror(f)) {
		fprintf(stderr, "backmxctl: %s: read error\n",
		    conf->control_socket);
		rc = rc ? rc : 69;
	}
	fclose(f);
	return rc;
}
