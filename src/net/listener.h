/*
 * listener: the listening sockets, and the connection limits in all
 * (smtpd_max_connections) and per client address
 * (smtpd_max_connections_per_ip). A connection over a limit gets one
 * "421 4.7.0" line and is closed before any session exists for it.
 */
#ifndef BACKMX_LISTENER_H
#define BACKMX_LISTENER_H

#include <stddef.h>
#include <sys/socket.h>

struct server;
struct listener;

/* Bind and listen on every configured address; NULL with the reason in err
 * (the start stops). */
struct listener	*listener_open(struct server *, char *err, size_t errsz);
void		 listener_free(struct listener *);

/* "127.0.0.1:2525,[::1]:2525": the bound addresses, real ports included
 * (port 0 in the config means "any free port"). */
const char	*listener_addresses(const struct listener *);

/* A session ended: release its slot. 'sa' is the client's address. */
void		 listener_release(struct listener *, const struct sockaddr *sa);
size_t		 listener_sessions(const struct listener *);

/* Stop accepting (shutdown). */
void		 listener_disable(struct listener *);

#endif
