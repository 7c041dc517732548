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
#include <sys/socket.h>

#include "qdb.h"

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

/* One recipient's outcome: an SMTP code (ours when synthesized, e.g. 451
 * for a lost connection) and the text for the log and the DSN. */
struct client_result {
	int	code;
	char	text[QDB_TEXT_MAX];
};

/* One transaction: a message to some of its recipients. */
struct client_tx {
	const struct qdb_msg	*msg;
	const char		*body_path;	/* big body, or NULL: msg->body */
	const struct qdb_rcpt	**rcpts;
	size_t			 nrcpt;
	struct client_result	*res;		/* nrcpt entries, filled */
};

enum client_event {
	CLIENT_READY,		/* greeted, idle: send a tx or quit */
	CLIENT_TX_DONE,		/* the tx handed over has its results */
	CLIENT_FAILED,		/* the connection is unusable; a tx in
				   flight has its results (deferred) */
};

typedef void	client_cb(struct client *, enum client_event, void *arg);

/* Start connecting to sa. 'host' names the peer in logs and SNI (a name
 * or an address). NULL when no socket could be made. */
struct client	*client_connect(struct event_base *, const struct client_conf *,
		    const struct sockaddr *, socklen_t, const char *host,
		    int try_tls, client_cb *, void *arg);
/* Hand over a transaction (only after CLIENT_READY or CLIENT_TX_DONE). The
 * tx must stay valid until CLIENT_TX_DONE or CLIENT_FAILED. */
void		 client_send(struct client *, struct client_tx *);
/* Say QUIT and close; the client frees itself, no more callbacks. */
void		 client_quit(struct client *);
/* Close at once and free. NULL is fine. */
void		 client_free(struct client *);

/* Why it failed, for logs ("connect: Connection refused"). */
const char	*client_error(const struct client *);
/* 1 once the greeting and EHLO/HELO succeeded. */
int		 client_greeted(const struct client *);
/* 1 when the failure was a TLS handshake failure (retry in clear). */
int		 client_tls_failed(const struct client *);
/* "host[addr]:port" of the peer. */
const char	*client_relay(const struct client *);

/*
 * Dot-stuff 'n' bytes of a body (RFC 5321 §4.5.2) into out (room for 2n
 * bytes). *bol says whether the next byte starts a line; updated. Returns
 * the bytes written.
 */
size_t		 client_dotstuff(const char *in, size_t n, int *bol, char *out);

#endif
