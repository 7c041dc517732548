/*
 * server: what every SMTP session shares — the loop, the configuration, the
 * customer domains, the queue and the TLS context. main.c owns it; sessions
 * read it. On SIGHUP main swaps 'domains' between sessions' callbacks, so a
 * session looks domains up each time and keeps no pointer into them.
 */
#ifndef BACKMX_SERVER_H
#define BACKMX_SERVER_H

struct event_base;
struct config;
struct domains;
struct queue;
struct policy;
struct learn;
struct primary_pool;
struct primary_health;
struct primary_connector;
struct relay_deps;
typedef struct ssl_ctx_st SSL_CTX;

struct server {
	struct event_base	*base;
	const struct config	*conf;
	const struct domains	*domains;
	struct queue		*queue;
	SSL_CTX			*tls;		/* NULL: no STARTTLS */
	struct policy		*policy;	/* the checks of docs/architecture.md §5 */
	struct learn		*learn;		/* what we know of each domain */
	struct primary_pool	*ptpool;	/* idle primary connections */
	struct primary_health	*health;	/* is each primary up */
	struct primary_connector *connector;	/* connections to them */
	struct state		*state;		/* the bulk detector's counts */
	struct bulk		*bulk;		/* its allow lists; NULL: off */
	/* NULL in backmxd. The session fuzzer's scripted primary: its
	 * connect, cancel and connect_arg replace primary_connect (relay.h). */
	const struct relay_deps	*relay_hooks;
};

#endif
