/*
 * health: is each customer domain's primary up? One record per domain
 * that ever failed or answered, in a hash table keyed by the lower-cased
 * domain (lower-cased once, here at the door): every lookup is O(1),
 * however many domains there are. docs/queue.md "Primary health".
 *
 * A primary is down after primary_down_after consecutive connection failures of
 * our own (queued deliveries, probes), or at once when the caller says so (a
 * down record restored at start). In a cluster another node's "up" counts as
 * our own (primary_health_remote_up, docs/cluster.md "Primary health"). What a client of ours can provoke -- a
 * pass-through or a callout that failed -- is only a suspicion
 * (primary_health_suspect): it starts a probe, and only the probe's failure
 * counts (docs/queue.md "Primary health"). While down it is probed every
 * primary_probe_interval, with mail waiting or not: pass-through and callouts
 * wait for it too. The first clean EHLO (a probe's, a delivery's, a
 * pass-through's or a callout's) marks it up; the up callback runs then (the
 * scheduler drains the domain's queue at once). Every change is also written to
 * the domain's record in the state store (learn_health).
 *
 * Owned by main.c; handed to the scheduler, the sessions and callouts. The
 * probe itself is somebody else's I/O: whoever can reach a primary
 * registers it (primary_health_set_prober).
 */
#ifndef BACKMX_HEALTH_H
#define BACKMX_HEALTH_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct config;
struct learn;
struct primary_health;

/* A probe's outcome: ok 1, or 0 and the reason it failed; -1 when it
 * could not be made for a reason of ours (no file descriptor): no
 * verdict, the primary stays as it was. */
typedef void	primary_probe_done_cb(const char *domain, int ok,
		    const char *why, void *arg);
/* Probe domain's primary (connect, EHLO, QUIT); 'done' runs once, later. */
typedef void	primary_probe_fn(void *owner, const char *domain,
		    primary_probe_done_cb *done, void *arg);
/* The primary of domain came back; returns how many queued messages were
 * made due (for the log). */
typedef size_t	primary_up_cb(const char *domain, void *arg);

/* This node saw the primary of domain go up or down (its own probe,
 * delivery, pass-through or callout), at 'since': for whoever shares it
 * (docs/cluster.md "Primary health"). Not called for what came from
 * outside (primary_health_remote_up) nor for downs restored at start. */
typedef void	primary_change_cb(const char *domain, int up, const char *why,
		    time_t since, void *arg);

/*
 * Leases (docs/cluster.md "One probe, one callout"): before a probe of a
 * down primary, and before a callout, ask whether this node is the one
 * to do it. 'take' answers once, later, through 'done': go 1, act (ours,
 * or nobody could say: act as a single node); 0, another node does it.
 * addr NULL: the probe of domain; else the callout of addr. ttl: how
 * long the lease holds, seconds. Returns a handle for 'cancel'.
 */
typedef void	primary_lease_done(int go, void *arg);
struct primary_lease {
	void	*(*take)(void *owner, const char *domain, const char *addr,
		    unsigned ttl, primary_lease_done *done, void *arg);
	void	 (*cancel)(void *handle);
	void	*owner;
};

/* base NULL: no probe timer (tests drive primary_health_tick). */
struct primary_health *primary_health_new(struct event_base *,
		    const struct config *);
void		 primary_health_free(struct primary_health *);
/* Who probes, who hears of a primary coming back, who keeps the record
 * (any may be NULL: nobody). */
void		 primary_health_set_prober(struct primary_health *,
		    primary_probe_fn *, void *owner);
void		 primary_health_on_up(struct primary_health *,
		    primary_up_cb *, void *arg);
void		 primary_health_set_learn(struct primary_health *,
		    struct learn *);
void		 primary_health_on_change(struct primary_health *,
		    primary_change_cb *, void *arg);
/* Probes of down primaries take a lease first (copied; NULL: none). */
void		 primary_health_set_lease(struct primary_health *,
		    const struct primary_lease *);

/* 1 up (or never seen), 0 down. Any case. */
int		 primary_health_up(const struct primary_health *,
		    const char *domain);
/* A connection failure; 'now': down at once, not after
 * primary_down_after of them. */
void		 primary_health_failed(struct primary_health *,
		    const char *domain, const char *why, int now);
/* A failure a client could have provoked: probe now (unless a probe
 * runs, the primary is down already, or one was asked in the last few
 * seconds); only that probe's failure counts toward primary_down_after. */
void		 primary_health_suspect(struct primary_health *,
		    const char *domain, const char *why);
/* A clean EHLO: up; if it was down, the up callback runs. */
void		 primary_health_ok(struct primary_health *,
		    const char *domain);
/*
 * Another node ('who') saw the primary up at 'since': if this node has it
 * down and saw no failure of its own after that, up, and the up callback drains, exactly
 * as after a probe of our own. A down restored at start ('now' above) is
 * older than any news. Not announced again (no echo between nodes).
 */
void		 primary_health_remote_up(struct primary_health *,
		    const char *domain, time_t since, const char *who);
/* Each domain whose primary is down now, for fn (which must not change
 * the table). */
void		 primary_health_foreach_down(const struct primary_health *,
		    void (*fn)(const char *domain, void *arg), void *arg);
/* A down primary is worth a probe now (an operator's flush, ETRN). */
void		 primary_health_probe_soon(struct primary_health *,
		    const char *domain);
/* Consecutive failures so far (0 when never seen). */
unsigned	 primary_health_failures(const struct primary_health *,
		    const char *domain);
/* What the primaries did lately (history.h), for the dashboard: the
 * probes are recorded here, delivery outcomes by the scheduler. */
struct history;
struct history	*primary_health_history(const struct primary_health *);
/* Start the probes that are due at 'now' (the timer calls it each
 * second). */
void		 primary_health_tick(struct primary_health *, time_t now);

#endif
