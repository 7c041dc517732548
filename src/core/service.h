/*
 * service: what running as a system service takes (docs/service.md): the
 * privilege drop at start. No state of its own beyond the process's
 * credentials.
 */
#ifndef BACKMX_SERVICE_H
#define BACKMX_SERVICE_H

#include <stddef.h>

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

#endif
