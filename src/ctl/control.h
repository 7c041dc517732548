/*
 * control: the daemon's UNIX control socket (control_socket), served on
 * the event loop to backmxctl. docs/queue.md "Admin".
 *
 * One request line per connection (at most CONTROL_LINE_MAX bytes,
 * printable ASCII, words from a whitelist), one answer, then close. The
 * answer's first line is "ok" or "error KIND TEXT" (KIND: usage,
 * notfound, domain, io); the lines after it are the result, text or, with
 * the request's trailing word "json", one JSON document a line. Peers
 * must be uid 0 or the daemon's uid (SO_PEERCRED); the socket is 0600.
 *
 *   status [json]                pid, uptime, domains, the loop's lag
 *   queue list [json]            every queued message
 *   queue show ID [json]         one message
 *   queue flush [DOMAIN] [json]  make due now (all, or one domain's)
 *   queue delete|hold|release ID [json]
 *   domain list [json]           every customer domain: lifecycle, health,
 *                                recipients known, queue (docs/architecture.md §6)
 *   domain show DOMAIN [json]    one
 *   recipients list DOMAIN [json]          static list, then the store's
 *   recipients add ADDRESS [valid|invalid] [json]   source admin, no expiry
 *   recipients delete ADDRESS [json]
 *   greylist allow VALUE [json]   an address, ADDR/LEN or a sender domain
 *   greylist delete KEY [json]    an allow entry or a network's record
 *   greylist delete NET <SENDER> <RCPT> [json]   one triplet
 *   cluster status [json]         Redis, the breaker, the replay queue, the
 *                                 nodes seen (docs/cluster.md "Status")
 *
 * Queue changes go through the queue's writer thread (queue_admin());
 * reads use the loop's read connection on queue.db. Recipient changes
 * are staged in the state store's transaction of the loop turn and
 * answered once it committed (state_commit_wait()). More error KINDs for
 * these: address (not an RFC 5321 address). docs/queue.md "Domains and
 * recipients".
 *
 * Greylist changes are the daemon's too, on its own state store, staged
 * and answered the same way (docs/greylisting.md "Admin"): backmxctl
 * never writes state.db behind a running daemon. Their arguments are
 * operator or peer text (a triplet's addresses may be SMTPUTF8, may even
 * be quoted with spaces), so each is one word %XX-encoded
 * (control_word_encode()). More error KINDs: value (not an address,
 * network or domain).
 */
#ifndef BACKMX_CONTROL_H
#define BACKMX_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct queue;
struct control;
struct domains;
struct learn;
struct state;

#define CONTROL_LINE_MAX	2048	/* a triplet key, %XX-encoded */

/*
 * One request word for an argument that may hold any byte: bytes outside
 * '!'..'~', and '%' itself, as %XX. 0, or -1 when out (outsz bytes) is too
 * small: 3 * strlen(s) + 1 always fits.
 */
int		 control_word_encode(const char *s, char *out, size_t outsz);
/* The inverse: 0, or -1 on a bad escape, a NUL byte or no room. */
int		 control_word_decode(const char *w, char *out, size_t outsz);

/* Bind 'path' (a stale socket there is removed first; anything else
 * there is an error). NULL with a reason in err. */
struct control	*control_open(struct event_base *, const char *path,
		    struct queue *, char *err, size_t errsz);
/* Stop listening, cut connections, remove the socket. */
void		 control_close(struct control *);

/*
 * What "domain ..." and "recipients ..." work on: the domain-knowledge
 * module, the state store it keeps its records in (reads, and the commit
 * the answer to a change waits for) and the customer domains. None is
 * owned. main.c calls it after control_open() and again after each
 * reload with the new table, before freeing the old one; each must stay
 * valid until the next call or control_close(). Until the first call
 * those requests answer "error io".
 */
void		 control_set_knowledge(struct control *, struct learn *,
		    struct state *, const struct domains *);
struct cluster;
/* What "cluster status" asks; NULL (one node): it answers "error
 * notfound". Not owned; valid until control_close(). */
void		 control_set_cluster(struct control *, struct cluster *);

#endif
