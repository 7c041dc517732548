/*
 * smtpsrv: the scripted SMTP server of the unit tests, on 127.0.0.1 (port
 * 0) and on the test's own event_base, so that the real client (client.c,
 * connect.c, relay.c) talks to it over a real socket in the same loop.
 *
 * It answers in one of two ways:
 *
 * - a script (smtpsrv_start): a greeting, then steps, each reading a
 *   number of lines (or up to ".") before writing its reply and maybe
 *   closing. A script is one conversation: a connection arriving while
 *   one is served is held open, never answered. Lines after the last
 *   step are read and logged, not answered. The log is "LINE\n" each.
 *
 * - a primary (smtpsrv_start_primary): up to SMTPSRV_CONNS connections
 *   at once, each answered by its verb as a small Postfix would, a
 *   transaction at a time: a MAIL inside an open transaction gets
 *   "503 5.5.1 Error: nested MAIL command" (counted in 'nested'), RCPT
 *   outside one 503. 'hold' names a verb (or "." for the end of DATA)
 *   read but left unanswered, for a test to answer with smtpsrv_say or
 *   to drop. The log is "N:LINE\n", N the connection's number from 1.
 *
 * Every line read is logged (body lines too), CRLF stripped. Nothing here
 * waits or sleeps: the test runs the loop until what it expects happened.
 */
#ifndef BACKMX_TEST_SMTPSRV_H
#define BACKMX_TEST_SMTPSRV_H

#include <stddef.h>

#include <event2/util.h>

struct bufferevent;
struct event_base;
struct evconnlistener;

#define SMTPSRV_UNTIL_DOT	(-1)	/* a step reading lines up to "." */
#define SMTPSRV_CONNS		8	/* connections kept, either way */

struct smtpsrv_step {
	int		 nlines;	/* lines to read, or SMTPSRV_UNTIL_DOT */
	const char	*reply;		/* written once they are in; NULL: none */
	int		 close;		/* then close (after the reply went) */
};

struct smtpsrv_conn {
	struct smtpsrv		*srv;
	struct bufferevent	*bev;		/* NULL once closed */
	int			 open;		/* primary: MAIL taken */
	int			 in_body;	/* primary: after DATA's 354 */
};

struct smtpsrv {
	struct event_base	*base;
	struct evconnlistener	*l;
	int			 port;
	int			 primary;	/* answer by verb, not script */
	const char		*greeting;
	/* the script */
	const struct smtpsrv_step *steps;
	size_t			 nsteps, step;
	int			 got;		/* lines of this step so far */
	/* the connections, served in the order they came */
	struct smtpsrv_conn	 conns[SMTPSRV_CONNS];
	int			 nconns;
	int			 accepted;	/* served or held */
	evutil_socket_t		 extra[SMTPSRV_CONNS];	/* script: held */
	int			 nextra;
	int			 closed;	/* connections the peer closed */
	/* the primary */
	const char		*hold;		/* verb read but not answered */
	int			 nested;	/* 503s to a nested MAIL */
	/* what came in */
	char			 log[16384];
	size_t			 loglen;
	size_t			 max_burst;	/* lines there at one read */
};

/* Listen on 127.0.0.1 with a script: 'greeting' (may be "" for silence),
 * then 'steps'. Fails the test when it cannot listen. */
void	smtpsrv_start(struct smtpsrv *, struct event_base *,
	    const char *greeting, const struct smtpsrv_step *, size_t nsteps);
/* Listen on 127.0.0.1 as a primary, greeting "220 primary ESMTP". */
void	smtpsrv_start_primary(struct smtpsrv *, struct event_base *);
/* Close every connection and the listener; again is harmless. */
void	smtpsrv_stop(struct smtpsrv *);

/* Write 'text' to connection n (from 1), e.g. the answer to a held verb. */
void	smtpsrv_say(struct smtpsrv *, int n, const char *text);
/* Close every connection now, as a primary going away does (not counted
 * in 'closed', which is the peer's doing). */
void	smtpsrv_drop_all(struct smtpsrv *);
/* Connections still open. */
int	smtpsrv_open(const struct smtpsrv *);

/* Whether the log holds 's' anywhere; how many logged lines start with
 * 's' ("1:RCPT"). */
int	smtpsrv_saw(const struct smtpsrv *, const char *s);
int	smtpsrv_count(const struct smtpsrv *, const char *s);

#endif
