/*
 * greylist: the last RCPT check (docs/architecture.md §5, docs/greylisting.md).
 * Defers mail from a (client network, sender, recipient) triplet the store has
 * not seen, lets the same triplet through once it came back after
 * greylist_delay and within greylist_retry_window, and keeps passed triplets
 * for greylist_max_age. Networks that passed greylist_auto_allow_passes
 * distinct triplets, and the static and operator allow lists, skip it.
 *
 * The key and the transitions are pure functions with the time as a
 * parameter (greylist_test.c); the step reads and writes through state.h
 * and answers only after its writes committed. A store error is 451
 * 4.3.0, never an accept.
 */
#ifndef BACKMX_GREYLIST_H
#define BACKMX_GREYLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "state.h"

struct config;
struct policy_check;
struct greylist;

/* The timings of the config keys of the same names, in seconds. */
struct greylist_params {
	unsigned	delay;
	unsigned	retry_window;
	unsigned	max_age;
	unsigned	auto_allow_passes;	/* 0: no auto-allow */
};

/*
 * The static allow lists of the configuration, parsed. NULL with "KEY:
 * what is wrong" in err when an entry is bad. Owned by main.c, shared by
 * every session through struct policy_deps.
 */
struct greylist	*greylist_new(const struct config *, char *err, size_t errsz);
void		 greylist_free(struct greylist *);
/* 1 when greylist_allow_clients holds host names: they need the client's
 * reverse DNS name, confirmed by a forward lookup. */
int		 greylist_has_client_names(const struct greylist *);

/* The RCPT step (policy.c's table). */
void		 greylist_step(struct policy_check *);

/* --- the key: pure ------------------------------------------------------ */

/* The client's network as text, "192.0.2.0/24" or "2001:db8:1:2::/64";
 * an IPv4-mapped IPv6 address counts as IPv4. 0 or -1 (no IP). */
int	greylist_client_net(const struct sockaddr *, unsigned v4prefix,
	    unsigned v6prefix, char *out, size_t outsz);

/*
 * The sender as the key sees it: lower case; the per-message tags of
 * docs/greylisting.md removed: BATV "prvs=TAG=local" (and "msprvs1=") to
 * "local", SRS0/SRS1 without their hash and time stamp, digit runs that
 * stand alone in the local part (VERP and tracking numbers) as "#".
 * "" for the null sender. 0, or -1 when out is too small.
 */
int	greylist_sender_key(const struct mailaddr *, char *out, size_t outsz);
/* Same, from "local@domain" text (the benchmark and the tests). */
int	greylist_normalise(const char *addr, char *out, size_t outsz);
/* The recipient: "local@domain", lower case. */
int	greylist_rcpt_key(const struct mailaddr *, char *out, size_t outsz);

/* --- the transitions: pure ---------------------------------------------- */

enum greylist_action {
	GREYLIST_NEW,		/* first try, or the old one expired: defer */
	GREYLIST_EARLY,		/* back before the delay: defer again */
	GREYLIST_PASS,		/* back after the delay: the first pass */
	GREYLIST_PASSED,	/* passed before: pass, keep it longer */
};

/*
 * What the store knows ('cur', NULL when nothing) and the time decide the
 * action; *t (its net, sender and rcpt set by the caller) gets the record
 * to store. *retry_out: seconds until a deferred triplet may pass.
 */
enum greylist_action greylist_decide(const struct state_triplet *cur,
	    int64_t now, const struct greylist_params *,
	    struct state_triplet *t, unsigned *retry_out);

/*
 * A triplet of network 'n' passed for the first time ('found': n held a
 * stored record; else it is zeroed and n->net set). Counts it, and allows
 * the network when it reaches auto_allow_passes.
 */
void	greylist_net_pass(struct state_net *n, int found, int64_t now,
	    const struct greylist_params *);
/* 1 when network record 'n' is auto-allowed at 'now'. */
int	greylist_net_allowed(const struct state_net *n, int64_t now,
	    const struct greylist_params *);
/* An allowed network sent again: 1 when its expiry should move (and *n
 * was updated), at most once an hour, to spare the writes. */
int	greylist_net_refresh(struct state_net *n, int64_t now,
	    const struct greylist_params *);

/* --- the static allow lists: pure --------------------------------------- */

/* Matchers over greylist_new()'s lists, for the step and the tests. */
int	greylist_allow_client_addr(const struct greylist *,
	    const struct sockaddr *);
int	greylist_allow_client_name(const struct greylist *, const char *name);
int	greylist_allow_sender(const struct greylist *, const char *key);
int	greylist_allow_rcpt(const struct greylist *, const char *key);

#endif
