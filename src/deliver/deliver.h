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

/* ok: 1 greeted, 0 failed (why), -1 no socket here (health.h). */
typedef void	deliver_probe_cb(const char *domain, int ok, const char *why,
		    void *arg);

/* 'cc': how connections are made (primary_client_conf(): our name, the
 * timeouts, the one TLS client context), copied; its TLS context must
 * outlive the deliverer. */
struct client_conf;
struct deliver	*deliver_new(struct event_base *, const struct config *,
		    const struct client_conf *cc);
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

/* 1 when a delivery's TLS handshake with this next hop failed (deliveries
 * go on in clear text there): src/primary/connect.c asks, through the hint
 * main.c registers. */
int		 deliver_tls_broken(const struct deliver *,
		    const struct sockaddr *, socklen_t);

#endif
