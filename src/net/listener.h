/*
 * listener: the listening sockets, and the connection limits in all
 * (smtpd_max_connections) and per client address
 * (smtpd_max_connections_per_ip). A connection over a limit gets one
 * "421 4.7.0" line and is closed before any session exists for it.
 *
 * It knows nothing of what serves a connection: each one accepted goes
 * to the callback its owner (main.c) registered, which must call
 * listener_release() once that connection ends.
 */
#ifndef BACKMX_LISTENER_H
#define BACKMX_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

struct config;
struct event_base;
struct listener;

/* A connection accepted within the limits: a non-blocking socket, now
 * the callee's, and the client's address. */
typedef void	listener_accept_cb(int fd, const struct sockaddr *,
		    socklen_t, void *arg);

/* Bind and listen on every configured address of 'conf' (kept: it must
 * outlive the listener); NULL with the reason in err (the start stops). */
struct listener	*listener_open(struct event_base *, const struct config *,
		    listener_accept_cb *, void *arg, char *err, size_t errsz);
void		 listener_free(struct listener *);

/* "127.0.0.1:2525,[::1]:2525": the bound addresses, real ports included
 * (port 0 in the config means "any free port"). */
const char	*listener_addresses(const struct listener *);

/* A connection handed to the accept callback ended: release its slot.
 * 'sa' is the client's address. */
void		 listener_release(struct listener *, const struct sockaddr *sa);
size_t		 listener_sessions(const struct listener *);

/* Stop accepting for good and close the listening sockets (the stop). */
void		 listener_disable(struct listener *);

#endif
