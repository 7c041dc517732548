/*
 * session: one SMTP server conversation, from the accepted socket to the
 * close. The session owns its bufferevent, its transaction (envelope and
 * body) and its timers; it frees itself when the conversation ends and
 * tells the listener.
 */
#ifndef BACKMX_SESSION_H
#define BACKMX_SESSION_H

#include <sys/socket.h>

struct server;

/* Start a session on an accepted, non-blocking socket. Never fails: a
 * session that cannot start closes the socket and releases its slot. */
void	session_new(struct server *, int fd, const struct sockaddr *,
	    socklen_t);

#endif
