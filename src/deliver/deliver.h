/*
 * deliver: from "this message, these recipients, this domain" to SMTP
 * conversations with the domain's primary. Picks the next hop (the
 * domain's route= from domains_file; else its MX hosts better than our
 * own preference, lowest first, through src/dns/resolver.h), keeps up to
 * primary_connection_limit connections per next hop, and lets each
 * connection carry one queued message after the other (client.c).
 *
 * Above the queue: the scheduler hands it sched_tasks through the function
 * main.c registers (sched_set_deliver). Owns its connections; never owns
 * a task (sched.c does). Decides nothing about the queue: it fills in
 * per-recipient codes and says whether the primary could be reached at
 * all. The SMTP client (src/client/) knows no queue rows: deliver.c
 * translates a task into the client's transaction and the results back.
 */
#ifndef BACKMX_DELIVER_H
#define BACKMX_DELIVER_H

#include <stddef.h>

#include "client.h"
#include "sched.h"

struct event_base;
struct config;
struct domains;
struct deliver;

typedef void	deliver_probe_cb(const char *domain, int ok, const char *why,
		    void *arg);

struct deliver	*deliver_new(struct event_base *, const struct config *);
/* Close every connection; callbacks of tasks in flight do not run. */
void		 deliver_free(struct deliver *);
void		 deliver_set_domains(struct deliver *, const struct domains *);
/* MX and host lookups; without one, only routes to addresses work. */
struct resolver;
void		 deliver_set_resolver(struct deliver *, struct resolver *);

/* Deliver; 'done' runs exactly once, later, on the loop (never from
 * inside this call). The task's res[] is filled when it runs. */
void		 deliver_submit(struct deliver *, struct sched_task *,
		    sched_task_done_cb *, void *);
/* Probe the domain's primary (connect, EHLO, QUIT); 'done' runs once,
 * later. */
void		 deliver_probe(struct deliver *, const char *domain,
		    deliver_probe_cb *, void *);

/* Pass-through and callouts: a greeted connection to the domain's primary, chosen as deliver_submit() chooses (route=, else MX hosts better than ours, lowest first; the next host when one does not greet, as for a task). 'conf' gives the timeouts (copied). 'cb' runs exactly once, later from the loop: with the client (now the caller's: set its callback with client_set_cb, free it with client_quit/client_free) and why == NULL, or with NULL and a sentence in why ("connect: Connection refused", "no MX host better than ours", a 421 greeting's text...) and 'reached': 1 when some host greeted (e.g. 421 or EHLO failure after a greeting), 0 when none could be connected at all. Not counted against primary_connection_limit of queued delivery.
 *
 * Until client_set_cb the handed-over client calls nobody. STARTTLS as for
 * deliveries (opportunistic; clear text where a delivery's handshake with
 * the same next hop failed); a handshake that fails here is retried once
 * in clear text with the same host before the next host is tried. 'why'
 * is valid only during the call. */
struct deliver_conn;
typedef void	deliver_connect_cb(struct client *, int reached, const char *why, void *arg);
struct deliver_conn *deliver_connect(struct deliver *, const char *domain, const struct client_conf *, deliver_connect_cb *, void *arg);
/* Forget a request whose cb has not run yet (a client that connected meanwhile is closed). NULL is fine. */
void		 deliver_connect_cancel(struct deliver_conn *);
/* The client_conf deliver uses for its own connections (helo name, TLS ctx, RFC 5321 timeouts), for callers to copy and adjust. */
const struct client_conf *deliver_client_conf(const struct deliver *);

#endif
