/*
 * envelope: one SMTP transaction's envelope, as the session built it and
 * as the queue stores it: sender, recipients, their ESMTP parameters and
 * where the mail came from. No I/O. The session owns the envelope of its
 * open transaction; queue_submit() takes a copy of what it needs.
 */
#ifndef BACKMX_ENVELOPE_H
#define BACKMX_ENVELOPE_H

#include <stddef.h>
#include <time.h>

#include "addr.h"
#include "esmtp.h"

#define ENVELOPE_ID_MAX	24

/*
 * What the DATA scanner (src/smtp/data.c) saw in the body: sticky flags,
 * OR-ed into data_scan.flags and kept as envelope.data_flags. Here, next
 * to the envelope, because the queue (dsn.c) and the SMTP client read
 * them too and must not depend on the SMTP server.
 */
#define DATA_ERR_BARE	0x01	/* bare CR or bare LF seen */
#define DATA_HAS_8BIT	0x02	/* a byte >= 0x80 seen (8BITMIME check) */
#define DATA_HAS_NUL	0x04	/* a NUL byte seen */
#define DATA_LONG_LINE	0x08	/* a line over 998 octets + CRLF (§4.5.3.1.6) */

struct envelope_rcpt {
	struct mailaddr		addr;
	struct rcpt_params	params;
};

struct envelope {
	char			 id[ENVELOPE_ID_MAX];	/* queue id */
	struct mailaddr		 sender;
	struct mail_params	 params;
	struct envelope_rcpt	*rcpts;
	size_t			 nrcpt;
	size_t			 rcptcap;
	char			 helo[256];
	char			 client_addr[64];	/* "192.0.2.1" */
	char			 client_name[256];	/* rDNS or "unknown" */
	char			 proto[16];		/* ESMTP, ESMTPS, ... */
	time_t			 arrival;
	int			 data_flags;		/* DATA_* of the body */
};

void	envelope_init(struct envelope *);
/* Forget sender and recipients (RSET, new MAIL); keeps the allocation. */
void	envelope_reset(struct envelope *);
void	envelope_free(struct envelope *);
/* Append a recipient (copied). The caller bounds the count first. */
void	envelope_add_rcpt(struct envelope *, const struct mailaddr *,
	    const struct rcpt_params *);

/*
 * A new queue id: never reused, sortable by arrival, 16 characters of
 * [0-9A-Z] (seconds and microseconds of 'now', a process-wide counter and
 * the pid), written into out (ENVELOPE_ID_MAX bytes).
 */
void	envelope_new_id(char *out);

#endif
