/*
 * service: the privilege drop (docs/service.md §2).
 *
 * Why here: backmxd must bind port 25, which takes root or
 * CAP_NET_BIND_SERVICE, and read a TLS key only root may read; everything
 * else (the spool, the state store, the control socket, the network) it
 * does as its own user, so that the files it makes are that user's and a
 * hole in the SMTP parser is not a root shell. main.c binds, reads the
 * key, then calls this before the stores start their threads:
 * capabilities are per thread, and a thread made before the drop would
 * keep what the main thread gave up.
 */
/* setresuid(), getresuid(): GNU, not in _DEFAULT_SOURCE. */
#define _GNU_SOURCE
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

static struct event	*watchdog;

/* capset(2) without libcap: every set of this thread empty. */
static int
caps_clear(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	return (int)syscall(SYS_capset, &h, d);
}

/* 1 when any capability is left in the permitted set. */
static int
caps_left(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	size_t i;

	memset(&h, 0, sizeof(h));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	if (syscall(SYS_capget, &h, d) == -1)
		return 1;
	for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (d[i].permitted != 0 || d[i].effective != 0)
			return 1;
	return 0;
}

/* Every capability gone, from every set, and none to be had later. */
static int
drop_caps(char *err, size_t errsz)
{
	/* systemd's AmbientCapabilities= puts the bind one in all sets. */
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L);
	if (caps_clear() == -1 || caps_left()) {
		snprintf(err, errsz, "cannot give up the capabilities left: "
		    "%s", strerror(errno));
		return -1;
	}
	/* backmxd never execs; if a bug made it exec a set-uid program,
	 * that program gets nothing from it either. */
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L);
	return 0;
}

/* Who to become: the user's ids, the group's if named. */
static int
lookup(const char *user, const char *group, uid_t *uid, gid_t *gid,
    char *err, size_t errsz)
{
	struct passwd *pw;
	struct group *gr;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errsz, "user '%s' does not exist (the key user; "
		    "user = root to run as root)", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group[0] != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errsz, "group '%s' does not exist (the "
			    "key group)", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	if (*uid == 0 || *gid == 0) {
		snprintf(err, errsz, "user '%s' or group '%s' is root's (id "
		    "0): name an unprivileged one, or user = root to run as "
		    "root", user, group[0] ? group : user);
		return -1;
	}
	return 0;
}

/* After the switch: exactly uid and gid everywhere, and no way back. */
static int
check_dropped(uid_t uid, gid_t gid, char *err, size_t errsz)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[2];
	int n;

	if (getresuid(&ru, &eu, &su) == -1 || ru != uid || eu != uid ||
	    su != uid || getresgid(&rg, &eg, &sg) == -1 || rg != gid ||
	    eg != gid || sg != gid) {
		snprintf(err, errsz, "the user and group did not change");
		return -1;
	}
	n = getgroups(2, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != gid)) {
		snprintf(err, errsz, "supplementary groups are still there");
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1) {
		snprintf(err, errsz, "root could be regained after the drop");
		return -1;
	}
	return 0;
}

int
service_drop(const char *user, const char *group, char *err, size_t errsz)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		if (drop_caps(err, errsz) == -1)
			return -1;
		log_info("event=privileges result=not_root uid=%u gid=%u",
		    (unsigned)geteuid(), (unsigned)getegid());
		return 0;
	}
	if (strcmp(user, "root") == 0) {
		log_warn("event=privileges result=root reason=\"user = root "
		    "in the configuration\"");
		return 0;
	}
	if (lookup(user, group, &uid, &gid, err, errsz) == -1)
		return -1;
	if (setgroups(1, &gid) == -1) {
		snprintf(err, errsz, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) == -1) {
		snprintf(err, errsz, "setgid %u: %s", (unsigned)gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) == -1) {
		snprintf(err, errsz, "setuid %u: %s", (unsigned)uid,
		    strerror(errno));
		return -1;
	}
	/* setuid from root to another user empties every capability set
	 * (PR_SET_KEEPCAPS is off); check_dropped() and drop_caps() make
	 * sure. */
	if (check_dropped(uid, gid, err, errsz) == -1 ||
	    drop_caps(err, errsz) == -1)
		return -1;
	log_info("event=privileges result=dropped user=%s uid=%u gid=%u",
	    user, (unsigned)uid, (unsigned)gid);
	return 0;
}

/*
 * sd_notify(3): "a datagram to the AF_UNIX socket named by NOTIFY_SOCKET",
 * the interface systemd documents as stable, written here rather than
 * linking libsystemd for one sendto().
 */
void
service_notify(const char *fmt, ...)
{
	struct sockaddr_un sun;
	const char *path = getenv("NOTIFY_SOCKET");
	char msg[512];
	socklen_t len;
	size_t n;
	va_list ap;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sun.sun_path)) {
		log_warn("event=notify result=failed error=\"NOTIFY_SOCKET "
		    "too long\"");
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* an abstract name: not NUL-ended */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '@' ? 0 : 1));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    len) == -1)
		log_warn("event=notify result=failed error=\"%s\"",
		    strerror(errno));
	close(fd);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	service_notify("WATCHDOG=1");
}

/* WATCHDOG_USEC, when it is meant for this process; 0 otherwise. */
static uint64_t
watchdog_usec(void)
{
	const char *s = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	if (s == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	return v;
}

void
service_ready(struct event_base *base, const char *status)
{
	uint64_t usec = watchdog_usec();

	service_notify("READY=1\nSTATUS=%s", status);
	if (usec == 0 || watchdog != NULL)
		return;
	/* Half the interval, as sd_watchdog_enabled(3) advises. */
	{
		struct timeval tv = { (time_t)(usec / 2000000),
		    (suseconds_t)(usec / 2 % 1000000) };

		watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, NULL);
		if (watchdog == NULL || event_add(watchdog, &tv) == -1)
			panic("watchdog timer");
	}
	service_notify("WATCHDOG=1");
}

void
service_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	service_notify("RELOADING=1\nMONOTONIC_USEC=%" PRIu64
	    "\nSTATUS=reloading", (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000);
}

void
service_free(void)
{
	if (watchdog != NULL)
		event_free(watchdog);
	watchdog = NULL;
}
