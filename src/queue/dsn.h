/*
 * dsn: delivery status notifications (RFC 3464, multipart/report, RFC
 * 6522) for a message backmx accepted and could not deliver: 5xx from the
 * primary, or maximal_queue_lifetime passed; or a delay warning. Pure: the
 * caller hands the stored message, the recipients to report and the first
 * bytes of the body (for the original headers); the result is a new
 * envelope (sender <>, never sent to <>) and body for the same queue.
 */
#ifndef BACKMX_DSN_H
#define BACKMX_DSN_H

#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "qdb.h"

#define DSN_HEADERS_MAX	(64 * 1024)	/* original headers quoted */

struct dsn_rcpt {
	const struct qdb_rcpt	*rcpt;
	int			 code;		/* last SMTP code */
	const char		*text;		/* "550 5.1.1 ..." */
	const char		*relay;		/* "" if none */
};

/*
 * Build the notification for 'm' (action "failed", or "delayed" when
 * delayed) about rcpts. head: the start of the stored body (the original
 * headers are cut from it at the first empty line, DSN_HEADERS_MAX at
 * most). Returns 0 and fills *env_out (envelope_free() it) and *body_out
 * (free() it), or -1 when no DSN may be sent (sender <>, or every
 * recipient said NOTIFY without FAILURE/DELAY).
 */
int	dsn_build(const struct qdb_msg *m, const struct dsn_rcpt *rcpts,
	    size_t nrcpt, int delayed, const char *head, size_t headlen,
	    const char *myhostname, time_t now, struct envelope *env_out,
	    unsigned char **body_out, size_t *bodylen_out);

#endif
