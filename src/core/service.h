/*
 * service: what running as a system service takes (docs/service.md): the
 * privilege drop at start, and telling systemd how it goes (sd_notify(3),
 * the watchdog). Owns the watchdog timer; service_free() frees it.
 */
#ifndef BACKMX_SERVICE_H
#define BACKMX_SERVICE_H

#include <stddef.h>

struct event_base;

/*
 * Call once the listeners are bound and the TLS key read, before any
 * thread exists. Started as root: become 'user' and 'group' ("" = the
 * user's own) for good (setgroups, setgid, setuid, each checked, then
 * checked that root cannot come back); user "root": stay root, said out
 * loud in the log. Started as anyone else: stay so, and give up the
 * capabilities systemd may have given (CAP_NET_BIND_SERVICE). Returns 0,
 * or -1 with a sentence in err (the start must stop).
 */
int	service_drop(const char *user, const char *group, char *err,
	    size_t errsz);

/*
 * One sd_notify(3) message, "KEY=VALUE" lines, to $NOTIFY_SOCKET (a path,
 * or '@' for an abstract name); nothing when it is not set. Never blocks,
 * never fails the caller: a systemd that does not listen changes nothing.
 */
void	service_notify(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/* Started: READY=1 with STATUS=status; and when systemd set WatchdogSec=
 * (WATCHDOG_USEC, for this pid), WATCHDOG=1 from a timer on base at half
 * the interval, so a stuck loop is a restart. */
void	service_ready(struct event_base *base, const char *status);

/* A SIGHUP reload begins: RELOADING=1 with MONOTONIC_USEC (what systemd
 * 253's Type=notify-reload asks; 252 reads RELOADING=1 alone). Its end
 * is service_notify("READY=1\nSTATUS=..."). */
void	service_reloading(void);

/* The watchdog timer, if any. */
void	service_free(void);

#endif
