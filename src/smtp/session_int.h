/*
 * session_int: what session.c (the SMTP server state machine) and
 * session_pass.c (its pass-through half: the transaction relayed live to
 * a customer's primary) share. Private to those two files.
 */
#ifndef BACKMX_SESSION_INT_H
#define BACKMX_SESSION_INT_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "addr.h"
#include "data.h"
#include "envelope.h"
#include "esmtp.h"
#include "passthru.h"

struct body;
struct bufferevent;
struct client;
struct config;
struct primary_conn;
struct domain;
struct event;
struct evbuffer;
struct evbuffer_cb_entry;
struct policy_client;
struct queue_job;
struct reply;
struct server;
struct verdict_info;

/* Input is read in bounded steps: libevent stops reading from the socket
 * while this much waits unprocessed (DATA streams through in such steps). */
#define SESSION_INPUT_MAX	(256 * 1024)
/* After the last reply: how long and how much input is read and thrown
 * away before the socket closes (see closing_drained()). */
#define SESSION_LINGER_SECONDS	2
#define SESSION_LINGER_BYTES	(1024 * 1024)
/* Pass-through: past this much body not yet written to the primary, the
 * client is not read until it drains (the primary sets the pace). */
#define SESSION_RELAY_OUT_MAX	(1024 * 1024)
/* Replies held behind relayed RCPTs: past this many, the client is not
 * read until the primary answers (a pipelined flood stays bounded). */
#define SESSION_OUTQ_MAX	256

enum session_state {
	S_GREET,	/* greet pause: the client must stay silent */
	S_CMD,		/* reading commands */
	S_POLICY,	/* MAIL or RCPT waits for the checks */
	S_DATA,		/* reading message content after 354 */
	S_COMMIT,	/* waiting for the queue; input is not read */
	S_CLOSING,	/* last reply queued; freed once it is sent */
};

/*
 * What the transaction is (DESIGN.md §3), decided at its first RCPT that
 * passes relay control: relayed live to a primary that is up, or checked
 * hard and stored because the primary is down. One mode and one primary
 * per transaction; a RCPT that would need another gets 452 4.5.3 and is
 * sent again in a later transaction (RFC 5321 §3.3).
 */
enum tx_mode {
	TX_UNDECIDED,
	TX_PASS,	/* relayed to s->pt */
	TX_BACKUP,	/* checked and queued */
	TX_ABORTED,	/* the primary failed after answering: 451 4.4.2 */
};

/*
 * Replies in the order of the commands (RFC 2920 §3.1) while relayed
 * RCPTs wait for the primary: each such RCPT holds a place in this queue
 * and every reply said meanwhile queues behind it. Only RCPTs are taken
 * from the client while places are held (session_process), so nothing
 * else can change the transaction under them.
 */
struct outq {
	struct outq		*next;
	struct evbuffer		*text;		/* NULL: waits for the primary */
	struct mailaddr		 addr;		/* the relayed RCPT's */
	struct rcpt_params	 params;
};

enum cmd_count {
	C_HELO, C_EHLO, C_MAIL, C_RCPT, C_DATA, C_RSET, C_NOOP, C_QUIT,
	C_STARTTLS, C_OTHER, C_NCOUNTS
};


struct session {
	struct server		*srv;
	const struct config	*conf;
	struct bufferevent	*bev;
	int			 fd;
	enum session_state	 state;
	char			 id[8];
	struct sockaddr_storage	 ss;
	char			 addr[INET6_ADDRSTRLEN];
	int			 port;

	unsigned		 esmtp:1;	/* EHLO said: groups allowed */
	unsigned		 helo_done:1;
	unsigned		 tls:1;
	unsigned		 in_tx:1;	/* MAIL accepted */
	unsigned		 discard_line:1; /* inside an over-long line */
	unsigned		 data_overflow:1;
	char			 helo[256];
	char			 tls_info[128];

	struct policy_client	*policy;
	struct mailaddr		 pending_addr;	/* MAIL or RCPT under check */
	struct mail_params	 pending_mail;
	struct rcpt_params	 pending_rcpt;

	struct envelope		 env;
	unsigned		 rcpt_tried;
	struct data_scan	 scan;
	struct body		*body;
	uint64_t		 data_bytes;
	struct queue_job	*job;

	/* Pass-through: the connection to the primary outlives a
	 * transaction and serves the session's next one to the same
	 * primary. */
	enum tx_mode		 mode;
	unsigned		 sender_ok:1;	/* the sender's domain passed */
	unsigned		 pt_mail_sent:1;/* MAIL went to the primary */
	unsigned		 pt_waiting:1;	/* DATA or the dot waits */
	unsigned		 pt_paused:1;	/* client not read: primary slow */
	unsigned		 pt_pooled:1;	/* kept connection, no reply yet */
	unsigned		 pt_filtering:1;/* a RCPT's filter check runs */
	char			 pt_fail_why[256]; /* failure held for it */
	struct client		*pt;
	struct primary_conn	*pt_req;	/* connecting */
	char			 pt_key[PASSTHRU_KEY_MAX];
	char			 pt_domain[256];
	struct reply		*pt_mail_refusal; /* the primary's no to MAIL */
	struct outq		*outq, **outq_tail;
	size_t			 outq_n;
	unsigned		 pt_inflight;	/* RCPTs sent, not answered */
	unsigned		 pt_answered;	/* RCPT answers relayed in this tx */
	char			 pending_domain[256];
	char			 pending_key[PASSTHRU_KEY_MAX];

	unsigned		 errors;
	unsigned		 junk;
	unsigned		 counts[C_NCOUNTS];
	unsigned		 commands;
	const char		*close_reason;

	struct event		*timer;		/* greet pause, DATA limit */
	struct event		*ev_free;
	struct evbuffer_cb_entry *under_cb;	/* TLS close: socket drained */
	struct event		*linger;	/* half-closed, draining input */
	size_t			 lingered;
};

/* --- session.c, for session_pass.c ------------------------------------- */

void	session_reply(struct session *, int code, const char *enh,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A check did not accept: log it and answer. */
void	session_refuse(struct session *, const char *event, const char *key,
	    const char *addr, const struct verdict_info *);
/* Work through buffered input while the session can act on it. */
void	session_process(struct session *);
void	session_tx_reset(struct session *);
/* Backup mode for the pending RCPT: every check, then rcpt_checked. */
void	session_rcpt_backup(struct session *, const struct domain *);
/* DATA's identity and our Received: header; 354 said, the body comes. */
size_t	session_data_begin(struct session *, char *hdr, size_t hdrsz);
void	session_data_go(struct session *);
/* The reply queue (struct outq). */
struct evbuffer *session_outq_add(struct session *, const struct mailaddr *,
	    const struct rcpt_params *);
struct outq *session_outq_waiting(struct session *);
void	session_outq_flush(struct session *, int all);

/* --- session_pass.c, for session.c ------------------------------------- */

/* Pass-through for the pending RCPT (its domain's filters first). */
void	session_pt_rcpt(struct session *, const struct domain *);
/* DATA relayed; the final dot relayed. */
void	session_pt_data(struct session *);
void	session_pt_data_end(struct session *);
/* RSET from our client: the primary forgets the transaction too. */
void	session_pt_rset(struct session *);
/* Close (QUIT when 'polite', into the pool when idle) or drop. */
void	session_pt_drop(struct session *, int polite);
/* The primary drained what the body left waiting: read the client again. */
void	session_pt_drained(struct client *, void *);

#endif
