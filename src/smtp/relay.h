/*
 * relay: the pass-through stage (docs/passthrough.md): one session's
 * transaction relayed live to a customer's primary. The session asks it
 * to relay MAIL and RCPT, DATA, the body, the final dot, to reset or to
 * close; it answers through callbacks, in the order of the commands.
 *
 * Its state is one enum, changed only by one function (relay.c,
 * set_state) that logs a change outside the table of legal ones. The
 * rule it keeps: a connection goes back to the pool only in RELAY_IDLE,
 * that is with no transaction open on the primary; every way out of a
 * transaction (the client's RSET, EHLO, HELO, STARTTLS, a refused DATA
 * followed by any of them, the session's end) goes through one function
 * that closes it there with RSET, or drops the connection.
 *
 * Everything the stage needs from outside smtp/ (the connection to the
 * primary, the pool, the primary's health, learning) is called from
 * relay.c only.
 */
#ifndef BACKMX_RELAY_H
#define BACKMX_RELAY_H

#include <stddef.h>

#include "addr.h"
#include "esmtp.h"

struct client;
struct client_conf;
struct config;
struct domain;
struct envelope;
struct evbuffer;
struct learn;
struct primary_connector;
struct primary_health;
struct primary_pool;
struct relay;
struct server;

/* Replies held behind relayed RCPTs: past this many, the session does
 * not read its client until the primary answers (a pipelined flood
 * stays bounded). */
#define RELAY_PLACES_MAX	256
/* Past this much body not yet written to the primary, the client is not
 * read until it drains (the primary sets the pace). */
#define RELAY_OUT_MAX		(1024 * 1024)

enum relay_state {
	RELAY_IDLE,		/* nothing open on the primary; a connection
				   kept for the next transaction, or none */
	RELAY_CONNECTING,	/* connecting; RCPTs wait in their places */
	RELAY_MAIL_SENT,	/* MAIL sent, no RCPT waits for its answer */
	RELAY_RCPT_PENDING,	/* RCPTs sent, answers awaited */
	RELAY_DATA,		/* DATA sent, its 354 awaited */
	RELAY_BODY,		/* the body streams to the primary */
	RELAY_DOT_SENT,		/* the final dot sent, its answer awaited */
	RELAY_RSET_SENT,	/* the transaction closed, RSET's 250 awaited */
	RELAY_FAILED,		/* gone after it answered: 451 until reset */
	RELAY_NSTATES
};

/*
 * What the stage tells the session. Every callback may run from inside a
 * relay_* call as well as from the loop; each may call relay_* again.
 */
struct relay_cbs {
	/* A reply to say, in order (the stage's place queue is empty in
	 * front of it). The session appends it to its output. */
	void	(*say)(struct evbuffer *, void *arg);
	/* The primary failed before answering any RCPT of the transaction
	 * (or could not be reached): it is marked down, and the RCPTs
	 * waiting (relay_waiting) must be judged in backup mode, each
	 * answered with relay_answer. */
	void	(*backup)(void *arg);
	/* The primary failed after answering: the RCPTs waiting got
	 * 451 4.4.2; 'was' is the state it failed in (RELAY_DATA and
	 * RELAY_DOT_SENT: the session's DATA or dot waits for an answer). */
	void	(*failed)(enum relay_state was, void *arg);
	/* DATA answered (said already): 'go' when it was 354 and the body
	 * may stream (relay_body). */
	void	(*data_answered)(int go, void *arg);
	/* The dot answered (said already): the transaction is over;
	 * 'delivered' when the primary took the message (2xx). */
	void	(*done)(int delivered, void *arg);
	/* The primary drained what the body left waiting: read again. */
	void	(*resume)(void *arg);
	/* Something was said or changed: work through the input again. */
	void	(*process)(void *arg);
};

/* How a connection to a domain's primary is made; the stage calls it
 * with its own callback and frees nothing it returns but through
 * 'cancel'. The default is primary_connect(). */
typedef void	relay_connected_cb(struct client *, int reached,
		    const char *why, void *arg);

struct relay_deps {
	const struct config	*conf;
	struct primary_health	*health;	/* NULL: no health kept
						   (unit tests) */
	struct primary_connector *connector;	/* NULL: the connect hook
						   below (unit tests) */
	struct primary_pool	*pool;
	struct learn		*learn;	/* NULL: nothing learned (tests) */
	/* NULL: primary_connect. Otherwise returns a handle for 'cancel'
	 * and later calls cb exactly once unless cancelled. */
	void	*(*connect)(const char *domain, const struct client_conf *,
		    relay_connected_cb *cb, void *cbarg, void *arg);
	void	 (*cancel)(void *handle, void *arg);
	void	*connect_arg;
};

/* 'env' is the session's transaction: the stage reads its sender and
 * parameters for MAIL and adds the RCPTs the primary takes. 'id' and
 * 'client' name the session in logs; all three outlive the stage. */
struct relay	*relay_new(const struct relay_deps *, struct envelope *env,
		    const char *id, const char *client,
		    const struct relay_cbs *, void *arg);
/* Drops the connection (a transaction open is aborted by it) and any
 * places without a word. NULL is fine. */
void		 relay_free(struct relay *);

enum relay_state relay_state(const struct relay *);
/* 1 while the stage holds a connection to a primary. */
int		 relay_connected(const struct relay *);
const char	*relay_state_name(enum relay_state);
/* Changes outside the table of legal transitions, since the start (for
 * tests; each is logged). */
unsigned	 relay_illegal_transitions(void);

/* Pass-through applies to 'dom': switched on and its primary not known
 * down. */
int		 relay_primary_up(const struct relay *, const struct domain *);
/* 1 when the transaction's primary (once one is chosen) is 'dom''s: one
 * primary per transaction. */
int		 relay_same_primary(const struct relay *, const struct domain *);

/* Relay this RCPT (and MAIL, the first time): it takes a place in the
 * reply queue, filled when the primary answers. */
void		 relay_rcpt(struct relay *, const struct domain *,
		    const struct mailaddr *, const struct rcpt_params *);
/* A RCPT that was being checked while the primary failed before it
 * answered (the session's backup callback ran meanwhile): a place that
 * waits for relay_answer like the others. */
void		 relay_hold(struct relay *, const struct mailaddr *,
		    const struct rcpt_params *);

/* Places in the reply queue (answered or not). While there are any,
 * only RCPTs may be taken from the client (RFC 2920 §3.1). */
size_t		 relay_places(const struct relay *);
/* The buffer a reply said now goes to when places are held (behind
 * them), else NULL: say it directly. */
struct evbuffer *relay_reply_place(struct relay *);
/* The first RCPT waiting for an answer, NULL when none. */
const struct mailaddr *relay_waiting(const struct relay *,
		    const struct rcpt_params **);
/* Answer the first waiting RCPT with this reply line (CRLF added) and
 * say what is ready. */
void		 relay_answer(struct relay *, const char *line);

/* DATA: the primary's 354 or refusal comes to data_answered. */
void		 relay_data(struct relay *);
/* Body bytes (unstuffed, CRLF); nothing is sent outside RELAY_BODY
 * (the primary failed: the session reads on to the dot). */
void		 relay_body(struct relay *, const char *buf, size_t len);
/* 1 when more than RELAY_OUT_MAX waits unwritten towards the primary:
 * the session stops reading its client until resume. */
int		 relay_pause(struct relay *);
/* The final dot ('size': the body's octets, for the log): the
 * primary's answer is said, then done. */
void		 relay_dot(struct relay *, unsigned long long size);
/* The message is refused by us (size, bare CR or LF): the primary must
 * never see the dot. Drops the connection. */
void		 relay_abort(struct relay *);

/* The client's transaction ended without a dot (RSET, EHLO, HELO,
 * STARTTLS, the dot's answer): the primary's ends too. */
void		 relay_reset(struct relay *);
/* The session ends: say what is ready, drop the places never answered,
 * and close the connection (into the pool when idle; QUIT between
 * commands; dropped otherwise). */
void		 relay_close(struct relay *);

#endif
