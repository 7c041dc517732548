/*
 * ctl_conn: the control-socket client of backmxctl (tools/ctl_queue.c,
 * tools/ctl_domain.c) and the argument splitting its subcommands share.
 *
 * The daemon renders every answer (text, or JSON with "json"); this side
 * sends one line, maps the status line to an exit status (sysexits.h)
 * and copies the rest.
 */
#include "ctl_conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "config.h"
#include "json.h"
#include "state.h"
#include "str.h"

#define CTL_TIMEOUT	60	/* seconds for the daemon's answer */

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

/* The exit status for a status line other than "ok". */
static int
status_rc(const char *status)
{
	if (strncmp(status, "error notfound ", 15) == 0)
		return 1;
	if (strncmp(status, "error usage ", 12) == 0)
		return 64;
	if (strncmp(status, "error domain ", 13) == 0 ||
	    strncmp(status, "error address ", 14) == 0 ||
	    strncmp(status, "error value ", 12) == 0)
		return 65;
	return 75;
}

int
ctl_request(const struct config *conf, const char *req, const char *arg,
    int may_offline)
{
	char status[1024], buf[8192];
	const char *text;
	size_t n;
	FILE *f;
	int fd, rc = 0;

	if ((fd = dial(conf->control_socket)) == -1) {
		if (may_offline && (errno == ENOENT || errno == ECONNREFUSED))
			return CTL_NOT_RUNNING;
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
	if (strcmp(status, "ok") != 0) {
		rc = status_rc(status);
		text = status;
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

int
ctl_args(int argc, char **argv, const char *const *flags, int *flag,
    int *json, char **words, int max)
{
	int i, j, n = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			*json = 1;
			continue;
		}
		for (j = 0; flags != NULL && flags[j] != NULL; j++)
			if (strcmp(argv[i], flags[j]) == 0)
				break;
		if (flags != NULL && flags[j] != NULL)
			*flag = j + 1;
		else if (n < max)
			words[n++] = argv[i];
		else
			return -1;
	}
	return n;
}

int
ctl_flush(struct evbuffer *b)
{
	while (evbuffer_get_length(b) > 0)
		if (evbuffer_write(b, STDOUT_FILENO) == -1)
			return 74;
	return 0;
}

const char *
ctl_iso(int64_t t, char *buf, size_t bufsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return "-";
	strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int
ctl_allow_row(struct json *j, const char *label, enum state_allow_kind kind,
    const char *value, int64_t added)
{
	const char *k = state_allow_kind_name(kind);
	char a[32], v[STATE_ADDR_MAX * 4];

	if (j == NULL) {
		printf("%s %s %s added=%s\n", label, k,
		    str_term(v, sizeof(v), value), ctl_iso(added, a, sizeof(a)));
		return 0;
	}
	json_object(j);
	json_kstr(j, "kind", k);
	json_kstr(j, "value", value);
	json_kint(j, "added", added);
	json_end(j);
	return 0;
}
