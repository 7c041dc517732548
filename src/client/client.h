/*
 * client: one SMTP client connection to a primary, on the event loop
 * (RFC 5321 as the client). Connect, greeting, EHLO (HELO when EHLO is
 * refused), opportunistic STARTTLS (RFC 3207, no certificate check; what
 * was used is logged), then transactions one after the other as the owner
 * hands them over, then QUIT. PIPELINING, SIZE, 8BITMIME, SMTPUTF8 and
 * DSN parameters when the primary offers them; dot-stuffing and CRLF on
 * the way out; every wait bounded by the timeouts of RFC 5321 §4.5.3.2.
 *
 * Exposed to: every byte the primary sends (replies go through reply.c).
 * A malformed or endless reply, a drop or a timeout is a connection
 * problem: every recipient not yet answered is deferred (4xx), never
 * bounced.
 *
 * Lifetime: the owner frees the client (client_free, or client_quit which
 * ends it politely). Callbacks run last in a handler: the owner may free
 * the client, or hand it the next transaction, from inside one.
 */
#ifndef BACKMX_CLIENT_H
#define BACKMX_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "esmtp.h"

struct event_base;
struct client;
typedef struct ssl_ctx_st SSL_CTX;

struct client_conf {
	const char	*helo_name;		/* our EHLO name */
	SSL_CTX		*tls;			/* NULL: never STARTTLS */
	unsigned	 connect_timeout;	/* seconds */
	unsigned	 greeting_timeout;
	unsigned	 command_timeout;
	unsigned	 data_init_timeout;
	unsigned	 data_block_timeout;
	unsigned	 data_done_timeout;
};

/* A reply or error text as the client reports it (the queue keeps 512
 * octets too: nothing is cut on the way). */
#define CLIENT_TEXT_MAX	512

/* One recipient's outcome: an SMTP code (ours when synthesized, e.g. 451
 * for a lost connection) and the text for the log and the DSN. */
struct client_result {
	int	code;
	char	text[CLIENT_TEXT_MAX];
};

/* One recipient of a transaction: its path and its RFC 3461 parameters. */
struct client_rcpt {
	const struct mailaddr		*addr;
	const struct rcpt_params	*params;
};

/*
 * One transaction: a message to some of its recipients, in the client's
 * own terms (the caller translates whatever it stores into this). Every
 * pointer is the caller's and stays valid until CLIENT_TX_DONE or
 * CLIENT_FAILED.
 */
struct client_tx {
	const struct mailaddr		*sender;
	const struct mail_params	*params;
	uint64_t			 size;		/* for SIZE=, never 0 */
	int				 data_flags;	/* DATA_* (envelope.h) */
	const unsigned char		*body;		/* in memory, or: */
	size_t				 bodylen;
	const char			*body_path;	/* a file, or NULL */
	const struct client_rcpt	*rcpts;
	size_t				 nrcpt;
	struct client_result		*res;		/* nrcpt, filled */
};

enum client_event {
	CLIENT_READY,		/* greeted, idle: send a tx or quit */
	CLIENT_TX_DONE,		/* the tx handed over has its results */
	CLIENT_FAILED,		/* the connection is unusable; a tx in
				   flight has its results (deferred) */
};

typedef void	client_cb(struct client *, enum client_event, void *arg);

/* Start connecting to sa. 'host' names the peer in logs and SNI (a name
 * or an address). conf is copied (helo_name too). NULL when no socket
 * could be made. */
struct client	*client_connect(struct event_base *, const struct client_conf *,
		    const struct sockaddr *, socklen_t, const char *host,
		    int try_tls, client_cb *, void *arg);
/* Hand over a transaction (only after CLIENT_READY or CLIENT_TX_DONE). The
 * tx must stay valid until CLIENT_TX_DONE or CLIENT_FAILED. */
void		 client_send(struct client *, struct client_tx *);
/* Say QUIT and close; the client frees itself, no more callbacks (none
 * of the event, reply or drained kind). Idle only; otherwise the same as
 * client_free. */
void		 client_quit(struct client *);
/* Close at once and free. NULL is fine. */
void		 client_free(struct client *);

/* Why it failed, for logs ("connect: Connection refused"). */
const char	*client_error(const struct client *);
/* 1 once the greeting and EHLO/HELO succeeded. */
int		 client_greeted(const struct client *);
/* 1 when the failure was a TLS handshake failure (retry in clear). */
int		 client_tls_failed(const struct client *);
/* 1 when the connection failed here, not at the peer: no socket for lack
 * of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM). Such a
 * failure says nothing about the primary and never counts against it. */
int		 client_local_failure(const struct client *);
/* "host[addr]:port" of the peer. */
const char	*client_relay(const struct client *);

/* --- the owner's own commands (pass-through, callouts) -------------------
 *
 * Not mixed with client_send on one connection. A command is refused (-1)
 * when the connection is failing or busy with something else, when the
 * line is over CLIENT_CMD_LINE_MAX octets or holds CR, LF or NUL (one
 * line is one command: no smuggling), for STARTTLS (the client negotiates
 * TLS itself), after DATA until its reply came, during a body, and past
 * CLIENT_CMD_MAX commands waiting for their replies. With PIPELINING a
 * command that must end a group (RFC 2920 §3.1: EHLO, HELO, DATA, VRFY,
 * EXPN, TURN, QUIT, NOOP) holds back the ones queued after it until its
 * reply arrives. A QUIT's reply is followed by the primary's close: free
 * the client from that reply's callback, or CLIENT_FAILED follows.
 */
#define CLIENT_CMD_LINE_MAX	1000
#define CLIENT_CMD_MAX		128
#define CLIENT_DRAIN_LOW	(64 * 1024)

struct reply;	/* reply.h */
/* The owner's own commands, for pass-through and callouts (not mixed with
 * client_send on one connection). */
typedef void	client_reply_cb(struct client *, const struct reply *, void *arg);
/* Change who gets the connection's events (CLIENT_FAILED etc.): a connection
 * handed from primary_connect() to its new owner. */
void		 client_set_cb(struct client *, client_cb *, void *arg);
/*
 * How long the connection may stay silent while nothing is asked of the
 * primary: the owner's, in seconds (pass-through: the session's own
 * smtpd_timeout while a session holds it, a sender may pause between
 * commands), 0 for the conf's command_timeout (a kept connection's
 * idle limit). Applied at once when nothing is due.
 */
void		 client_set_idle_timeout(struct client *, unsigned secs);
/* After CLIENT_READY, or from any reply callback: queue one command line (no
 * CRLF; at most 1000 octets; -1 if longer or the connection is failing).
 * Replies come back to each cb in order. Queued commands are written back to
 * back when the server offered PIPELINING, else one at a time as replies
 * arrive. A connection failure (drop, timeout, malformed reply) gives
 * CLIENT_FAILED through the event callback; the reply callbacks still pending
 * do not run. Each reply is awaited at most 'timeout' seconds (0: the conf's
 * command_timeout). */
int		 client_cmd(struct client *, const char *line, unsigned timeout, client_reply_cb *, void *arg);
/* After a 354 to DATA: message bytes as the recipient must see them (unstuffed,
 * CRLF line ends); the client dot-stuffs. -1 when client_body_convert() is on
 * and the message cannot be made 7 bit (client_body_error() says why): the
 * owner must drop the connection, nothing more may be sent. */
int		 client_body(struct client *, const char *buf, size_t len);
/* After a 354: convert what client_body() gets to 7 bit (src/mail/mime7.h),
 * for a primary without 8BITMIME; until client_body_end(). */
void		 client_body_convert(struct client *);
const char	*client_body_error(const struct client *);
/* ".\r\n" (after a CRLF if the body did not end with one) and the reply to cb,
 * awaited at most 'timeout' seconds (0: data_done_timeout). */
void		 client_body_end(struct client *, unsigned timeout, client_reply_cb *, void *arg);
/* Octets accepted but not yet written to the socket (TLS: before
 * encryption, in both layers); and a callback run from the write handler
 * each time a write leaves at most CLIENT_DRAIN_LOW octets waiting above
 * the socket layer (with TLS up to twice that in all) -- the session uses
 * it as backpressure: it stops reading its client while the primary is
 * slow. Check client_pending_out() first: the callback needs a write to
 * happen. It stays until removed (NULL cb removes it). */
size_t		 client_pending_out(const struct client *);
void		 client_on_drained(struct client *, void (*cb)(struct client *, void *), void *arg);
/* 1 when the EHLO reply offered the keyword (e.g. "PIPELINING", "SIZE",
 * "8BITMIME", "SMTPUTF8", "DSN"). */
int		 client_has_ext(const struct client *, const char *keyword);
/* 1 when greeted and between commands: nothing sent waits for a reply,
 * nothing is queued (a connection fit to be kept for later). */
int		 client_idle(const struct client *);
/* The greeting line's text (after the code; "" when it had none), NULL
 * before a greeting arrived. The peer's name as used in logs is
 * client_relay(). */
const char	*client_greeting(const struct client *);

/*
 * Dot-stuff 'n' bytes of a body (RFC 5321 §4.5.2) into out (room for 2n
 * bytes). *bol says whether the next byte starts a line; updated. Returns
 * the bytes written.
 */
size_t		 client_dotstuff(const char *in, size_t n, int *bol, char *out);

#endif
