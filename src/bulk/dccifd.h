/*
 * dccifd: asking a site's own DCC daemon about a message of backup mode
 * (docs/bulk.md §7). At the end of DATA the session hands the envelope and
 * the spooled body here; one connection to dccifd_socket per message,
 * non-blocking on the loop: the request (options, client, HELO, sender,
 * recipients, a blank line), then the message streamed from the body in
 * bounded chunks, then a half close; the answer is read, bounded, until
 * dccifd closes, and parsed by dccreply.c. Everything is bounded by
 * dccifd_timeout. The callback runs later from the loop, never inside
 * dccifd_ask(), exactly once unless dccifd_cancel() ran first.
 */
#ifndef BACKMX_DCCIFD_H
#define BACKMX_DCCIFD_H

#include <stddef.h>

#include "dccreply.h"

struct event_base;
struct config;
struct body;
struct dccifd_req;

struct dccifd_info {
	const char	*client_addr;	/* "192.0.2.1" */
	const char	*client_name;	/* rDNS, or NULL when unknown */
	const char	*helo;
	const char	*sender;	/* without <>; "" for the null sender */
	const char	*const *rcpts;	/* without <> */
	size_t		 nrcpt;
};

enum dccifd_verdict {
	DCCIFD_PASS,	/* A, S, G; or a failure with fail_action accept */
	DCCIFD_BULK,	/* R, or a header that says bulk */
	DCCIFD_DEFER,	/* a failure with dccifd_fail_action tempfail */
};

struct dccifd_outcome {
	int		 verdict;	/* enum dccifd_verdict */
	char		 result;	/* the letter, or 0 when none came */
	const char	*why;		/* NULL, or the failure: "timeout",
					 * "closed", "garbage", "connect",
					 * "socket", "trouble" (T) */
	const char	*header;	/* the X-DCC header unfolded, or "" */
};

typedef void	dccifd_done_cb(const struct dccifd_outcome *, void *arg);

struct dccifd_req *dccifd_ask(struct event_base *, const struct config *,
		    const struct dccifd_info *, const struct body *,
		    dccifd_done_cb *, void *);
/* Close the connection; the callback does not run. */
void		 dccifd_cancel(struct dccifd_req *);
/* "pass", "bulk", "defer". */
const char	*dccifd_verdict_name(int);

#endif
