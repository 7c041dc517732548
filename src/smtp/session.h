/*
 * session: one SMTP server conversation, from the accepted socket to the
 * close. The session owns its bufferevent, its transaction (envelope and
 * body) and its timers; it frees itself when the conversation ends and
 * tells whoever started it (the listener's slot, through main.c).
 */
#ifndef BACKMX_SESSION_H
#define BACKMX_SESSION_H

#include <sys/socket.h>

struct server;

/* Called once, when the session is freed: 'sa' is the client's
 * address as given to session_new(). */
typedef void	session_end_cb(const struct sockaddr *sa, void *arg);

/* Start a session on an accepted, non-blocking socket. Never fails: a
 * session that cannot start closes the socket and calls 'end'. */
void	session_new(struct server *, int fd, const struct sockaddr *,
	    socklen_t, session_end_cb *end, void *arg);

/*
 * The stop (docs/service.md §5): from now on a session between
 * transactions is told 421 4.3.2 and closed at its next command, and those
 * idle now at once; a transaction under way may finish. deadline: every
 * session but one whose message is being committed is told 421 now.
 */
void	session_shutdown(int deadline);

#endif
