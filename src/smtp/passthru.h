/*
 * passthru: what the session needs to relay a transaction live to a
 * customer's primary (docs/architecture.md §5, "primary up"): which primary a
 * domain has (one per transaction), and the primary's replies written
 * back to our client verbatim — code, enhanced code, every line of text.
 *
 * The connection itself is an SMTP client (src/client/client.h) got
 * from primary_connect(), or from the pool of idle connections
 * (src/primary/pool.h) kept for the next session; the session drives it
 * command by command.
 */
#ifndef BACKMX_PASSTHRU_H
#define BACKMX_PASSTHRU_H

#include <stddef.h>

struct domain;
struct event_base;
struct evbuffer;
struct reply;

#define PASSTHRU_KEY_MAX	300

/* The domain's primary as a key: its route= next hop when it has one
 * (domains routed to the same host share their primary), else the
 * domain itself. */
void	passthru_key(char *buf, size_t bufsz, const struct domain *);

/*
 * The primary's reply as our client must see it: every line "ddd-text"
 * and the last "ddd text", CRLF. The text is the primary's, but bytes
 * outside printable US-ASCII and TAB become '?': what the primary says
 * is peer bytes too, and our client must get clean lines.
 */
void	passthru_reply_out(struct evbuffer *, const struct reply *);

/* 1 when 'r' has a code a relayed command can answer with: 2xx, 4xx,
 * 5xx; when 'data' (the reply to DATA) 354, 4xx or 5xx. A 421 is not
 * relayed: it means the primary closes its channel, not ours. */
int	passthru_reply_ok(const struct reply *, int data);

#endif
