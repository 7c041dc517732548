/*
 * connect: a greeted SMTP connection to a customer domain's primary, for
 * pass-through and callouts (docs/passthrough.md). The next hop is the
 * domain's route= (an address; [HOST] its A/AAAA; HOST its MX), else the
 * domain's MX hosts better than our own preference, lowest first (mx.c),
 * up to MX_HOPS_MAX hosts; a host that does not greet us hands the
 * request on to the next. STARTTLS is opportunistic as for deliveries:
 * clear text where a delivery's handshake with the same next hop failed
 * (the tls hint), and a handshake that fails here is retried once in
 * clear text with the same host before the next host is tried.
 *
 * Not counted against primary_connection_limit of queued delivery: the
 * connection is the caller's once greeted.
 */
#ifndef BACKMX_CONNECT_H
#define BACKMX_CONNECT_H

#include <sys/socket.h>

#include "client.h"

struct event_base;
struct config;
struct domains;
struct resolver;
struct primary_connector;
struct primary_conn;

struct primary_connector *primary_connector_new(struct event_base *,
		    const struct config *);
/* Every request still running is forgotten (no callback). */
void		 primary_connector_free(struct primary_connector *);
/* The customer domains (route=), at start and after each reload. */
void		 primary_connector_set_domains(struct primary_connector *,
		    const struct domains *);
/* MX and host lookups; without one, only routes to addresses work. */
void		 primary_connector_set_resolver(struct primary_connector *,
		    struct resolver *);
/* 1 when a delivery's TLS handshake with this next hop failed: connect
 * in clear text (deliver.c answers it). */
typedef int	primary_tls_hint_fn(void *arg, const struct sockaddr *,
		    socklen_t);
void		 primary_connector_set_tls_hint(struct primary_connector *,
		    primary_tls_hint_fn *, void *arg);
/* The client_conf of these connections (helo name, TLS context, RFC 5321
 * timeouts), for callers to copy and adjust. */
const struct client_conf *primary_client_conf(
		    const struct primary_connector *);

/*
 * 'cb' runs exactly once, later from the loop: with the client (now the
 * caller's: set its callback with client_set_cb, free it with
 * client_quit/client_free) and why == NULL, or with NULL and a sentence in why
 * ("connect: Connection refused", "no MX host better than ours", a 421
 * greeting's text...) and 'reached': 1 when some host greeted (e.g. 421 or EHLO
 * failure after a greeting), 0 when none could be connected at all, -1 when the
 * failure was ours (no file descriptor: say nothing about the primary,
 * client_local_failure). 'why' is valid only during the call. Until
 * client_set_cb the handed-over client calls nobody. 'conf' gives the timeouts
 * (copied).
 */
typedef void	primary_connect_cb(struct client *, int reached,
		    const char *why, void *arg);
struct primary_conn *primary_connect(struct primary_connector *,
		    const char *domain, const struct client_conf *,
		    primary_connect_cb *, void *arg);
/* Forget a request whose cb has not run yet (a client that connected
 * meanwhile is closed). NULL is fine. */
void		 primary_connect_cancel(struct primary_conn *);

#endif
