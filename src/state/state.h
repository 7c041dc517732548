/*
 * state: the state store (docs/architecture.md §2), in backmx's terms: greylist
 * triplets seen and passed, client networks and their passes, the operator's
 * allow entries, learned recipients, customer domains' lifecycle and primary
 * health (docs/architecture.md §6), and the bulk detector's digests
 * (docs/bulk.md §3).
 *
 * One implementation today: SQLite (state_sqlite.c), one database file
 * state_dir/state.db in WAL mode, owned by the event-loop thread. A Redis
 * backend for clusters (a later issue) becomes one more file behind this
 * header; then state.c picks the backend and these functions dispatch
 * (docs/architecture.md §3: a struct of function pointers once two
 * implementations exist, not before).
 *
 * Reads answer at once from the loop thread. Writes are staged in the
 * loop turn's transaction; state_commit_wait() calls back after that
 * transaction committed (or failed), so a caller that must not answer
 * before its write is durable — a greylist pass — waits for it. Every
 * function returns -1 on a store error: the caller turns it into a
 * TEMPFAIL, never an accept (docs/principles.md §1.2).
 *
 * Times are Unix seconds, passed in by the caller (time is a parameter:
 * the tests and the benchmark drive it).
 */
#ifndef BACKMX_STATE_H
#define BACKMX_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct state;

#define STATE_NET_MAX	64	/* "2001:db8:ffff:ffff::/64" and room */
#define STATE_ADDR_MAX	257	/* an RFC 5321 address without brackets */
#define STATE_WHY_MAX	200	/* last answer text kept with a record */
#define STATE_SCHEMA	5	/* PRAGMA user_version this code writes */

struct state_conf {
	unsigned	sweep_interval;	/* seconds between expiry sweeps */
	unsigned	sweep_batch;	/* rows per sweep transaction */
};

/*
 * Open (creating it and its schema, or migrating it forward) the store in
 * 'dir' for the daemon: expiry sweeps on a timer of 'base', checkpoints on
 * a worker thread. NULL with a sentence in err when it cannot be opened,
 * is not a database, or has a schema newer than this program.
 */
struct state	*state_open(struct event_base *base, const char *dir,
		    const struct state_conf *, char *err, size_t errsz);
/*
 * For backmxctl, beside a running daemon: no loop, no timers, no worker;
 * the database must exist; each write commits at once. A longer busy
 * timeout than the daemon's: an operator can wait, a session cannot.
 */
struct state	*state_open_admin(const char *dir, char *err, size_t errsz);
/* Commits what is staged, stops the worker, closes. NULL is fine. */
void		 state_close(struct state *);
/* The database file, for messages. Valid until state_close(). */
const char	*state_path(const struct state *);

/* --- greylist triplets ------------------------------------------------ */

/* One (client network, normalised sender, recipient) triplet. */
struct state_triplet {
	char		net[STATE_NET_MAX];	/* "192.0.2.0/24" */
	char		sender[STATE_ADDR_MAX];	/* "" for <> */
	char		rcpt[STATE_ADDR_MAX];
	int64_t		first_seen;	/* the try that started the delay */
	int64_t		last_seen;
	int64_t		passed;		/* first pass; 0: still pending */
	int64_t		expires;	/* the sweep removes it after this */
	unsigned	tries;		/* deferred tries */
	unsigned	passes;		/* tries let through */
};

/* 1 and *out filled, 0 when unknown, -1 on a store error. */
int	state_triplet_get(struct state *, const char *net, const char *sender,
	    const char *rcpt, struct state_triplet *out);
/* Insert or replace, staged in this turn's transaction. 0 or -1. */
int	state_triplet_put(struct state *, const struct state_triplet *);

/* --- client networks -------------------------------------------------- */

/* What a client network earned: passed triplets, auto-allow. */
struct state_net {
	char		net[STATE_NET_MAX];
	unsigned	passes;		/* distinct triplets passed */
	int64_t		allowed;	/* auto-allowed since; 0: not */
	int64_t		refreshed;	/* last time 'expires' moved */
	int64_t		expires;
};

int	state_net_get(struct state *, const char *net, struct state_net *out);
int	state_net_put(struct state *, const struct state_net *);

/* --- the operator's allow entries (backmxctl greylist allow) ---------- */

enum state_allow_kind {
	STATE_ALLOW_CLIENT,	/* an address or network, "192.0.2.0/24" */
	STATE_ALLOW_DOMAIN,	/* a sender domain and its subdomains */
	STATE_ALLOW_SENDER,	/* a whole sender address, lower case */
	STATE_ALLOW_RECIPIENT,	/* a recipient address or domain: bulk only */
};

/* 1 when the client address is inside an allowed network, 0 when not,
 * -1 on a store error. Read each time: no cache, so what backmxctl
 * commits counts from the next check on. */
int	state_allow_client(struct state *, const struct sockaddr *);
/* Same for a sender (lower case "local@domain", or a domain alone): the
 * whole address, or its domain or a parent, is allowed. */
int	state_allow_sender(struct state *, const char *sender);
/* The same for the whole address only, not its domain. */
int	state_allow_address(struct state *, const char *addr);

/* --- recipients (docs/architecture.md §6) --------------------------------- */

/*
 * What backmx learned about one address of a customer domain. Keys and
 * domains are lower case as the caller gives them: nothing is folded
 * here. Strings read back are cut to their fields, never overflow them.
 */
enum state_rcpt_status { STATE_RCPT_VALID = 1, STATE_RCPT_INVALID = 2 };
enum state_rcpt_source {
	STATE_SRC_PASSTHROUGH = 1,	/* a pass-through RCPT answer */
	STATE_SRC_DELIVERY,		/* a delivery outcome */
	STATE_SRC_CALLOUT,		/* a callout or acceptance probe */
	STATE_SRC_ADMIN,		/* backmxctl recipients add: never expires */
};
struct state_rcpt {
	char		domain[256];		/* lower case */
	char		addr[STATE_ADDR_MAX];	/* lower case "local@domain", the key */
	int		status;			/* enum state_rcpt_status */
	int		source;			/* enum state_rcpt_source */
	int64_t		first_seen;
	int64_t		last_seen;
	int64_t		expires;		/* 0: never */
	char		why[STATE_WHY_MAX];	/* the answer that taught it, e.g. "550 5.1.1 no such user" */
};
/* 1 and *out, 0 unknown (or expired: expires != 0 && expires <= now), -1 error.
 */
int	state_rcpt_get(struct state *, const char *addr, int64_t now, struct state_rcpt *out);
/* Insert or replace (key addr), staged in this turn's transaction. 0 or -1. */
int	state_rcpt_put(struct state *, const struct state_rcpt *);
/* Rows deleted (0 or 1) or -1. Staged like a put. */
int	state_rcpt_delete(struct state *, const char *addr);
/* Called per row; a non-zero return stops the walk. The pointer is valid
 * during the call only. */
typedef int	state_rcpt_fn(const struct state_rcpt *, void *arg);
/* Rows of one domain (NULL: all), ordered by addr; expired rows skipped.
 * 0 or -1. */
int	state_rcpt_list(struct state *, const char *domain, int64_t now, state_rcpt_fn *, void *arg);
/* Counts of unexpired valid and invalid rows of one domain (NULL: all).
 * 0 or -1. */
int	state_rcpt_count(struct state *, const char *domain, int64_t now, size_t *valid, size_t *invalid);

/* --- customer domains: lifecycle and primary health (docs/architecture.md §6) --- */

/* One row per customer domain; never expires (state_sweep leaves it). */
enum state_lifecycle { STATE_DOM_LEARNING = 1, STATE_DOM_ACTIVE, STATE_DOM_REFUSED };
struct state_domain {
	char		name[256];		/* lower case, the key */
	int		lifecycle;		/* enum state_lifecycle */
	int64_t		added;			/* first seen in domains_file */
	int64_t		changed;		/* lifecycle last changed */
	int64_t		first_accept;		/* first acceptance by the primary; 0 never */
	int64_t		last_accept;
	char		accept_how[32];		/* "delivery", "passthrough", "callout", "probe" */
	int		health;			/* 1 up, 0 down */
	int64_t		health_changed;		/* 0: never probed/changed */
	char		health_why[STATE_WHY_MAX];
	int64_t		last_probe;		/* last acceptance probe sent; 0 never */
};
/* 1 and *out, 0 unknown, -1 error. */
int	state_domain_get(struct state *, const char *name, struct state_domain *out);
/* Insert or replace (key name), staged in this turn's transaction. 0 or -1. */
int	state_domain_put(struct state *, const struct state_domain *);
/* Called per row; a non-zero return stops the walk. */
typedef int	state_domain_fn(const struct state_domain *, void *arg);
/* Every row, ordered by name. 0 or -1. */
int	state_domain_list(struct state *, state_domain_fn *, void *arg);

/* --- bulk digests (docs/bulk.md §3) -------------------------------------- */

/*
 * One digest of the bulk detector: how many distinct recipients it
 * reached since it was first seen (it expires bulk_window after it was
 * last seen, and counts from 0 if it comes back), and until when it is
 * remembered as bulk.
 */
struct state_bulk {
	char		digest[40];	/* lower-case hex, the key */
	int		kind;		/* the detector's digest kind */
	unsigned	count;		/* distinct recipients */
	int64_t		first_seen;	/* also the generation of its rows */
	int64_t		last_seen;
	int64_t		bulk_until;	/* remembered as bulk until; 0 never */
	int64_t		expires;
	char		subject[80];	/* a sample Subject, for the operator */
	char		sender[STATE_ADDR_MAX];	/* and its envelope sender, */
	int		has_sender;	/* 0: not known (counted before schema 4) */
};
/* 1 and *out, 0 unknown or expired, -1 error. */
int	state_bulk_get(struct state *, const char *digest, int64_t now,
	    struct state_bulk *out);
/* Insert or replace, staged in this turn's transaction. 0 or -1. */
int	state_bulk_put(struct state *, const struct state_bulk *);
/*
 * Note that 'rcpt' (an opaque key) was counted for 'digest' of generation
 * 'gen', staged like a put; its row lives until 'expires'. 1 when it had
 * not been counted in that generation, 0 when it had, -1 on an error.
 */
int	state_bulk_rcpt_add(struct state *, const char *digest, int64_t gen,
	    const char *rcpt, int64_t expires);
/*
 * The grouped forms the detector uses, one statement each for all of a
 * message's digests (docs/bulk.md §5, "Cost"): up to STATE_BULK_MANY
 * digests, a NULL digest a slot skipped.
 */
#define STATE_BULK_MANY	10
/* found[i] 1 and out[i] set, or 0 when unknown or expired. 0 or -1. */
int	state_bulk_get_many(struct state *, const char *const *digests,
	    size_t n, int64_t now, struct state_bulk *out, int *found);
/* Insert or update rows[0..n-1], staged like a put. 0 or -1. */
int	state_bulk_put_many(struct state *, const struct state_bulk *rows,
	    size_t n);
/* seen[i] 1 when 'rcpt' was counted for digests[i] in generation
 * gens[i], 2 when its row also lives until 'fresh' or later, else 0.
 * 0 or -1. */
int	state_bulk_rcpt_seen(struct state *, const char *rcpt,
	    const char *const *digests, const int64_t *gens, size_t n,
	    int64_t fresh, int *seen);
/* Note 'rcpt' as counted for each digests[i] of generation gens[i],
 * staged like a put; the rows live until 'expires'. 0 or -1. */
int	state_bulk_rcpt_put_many(struct state *, const char *rcpt,
	    const char *const *digests, const int64_t *gens, size_t n,
	    int64_t expires);
typedef int	state_bulk_fn(const struct state_bulk *, void *arg);
/* Unexpired digests with count >= min_count or remembered as bulk, the
 * highest count first. 0 or -1. */
int	state_bulk_list(struct state *, unsigned min_count, int64_t now,
	    state_bulk_fn *, void *arg);
/* Delete one digest and its recipient rows, staged like a put: it
 * counts from 0 again. Digest rows deleted (0 or 1), or -1. */
int	state_bulk_forget(struct state *, const char *digest);

/* --- writes' durability ----------------------------------------------- */

struct state_wait;
/* rc 0: every write staged before the wait committed; -1: the transaction
 * failed and was rolled back. */
typedef void	state_commit_cb(int rc, void *arg);
/*
 * Call 'cb' once this turn's transaction has committed (or failed), from
 * the loop, never inside this call; unless state_commit_cancel() runs
 * first. The returned handle is valid until the callback starts.
 */
struct state_wait *state_commit_wait(struct state *, state_commit_cb *,
		    void *arg);
void	state_commit_cancel(struct state_wait *);

/* --- expiry ----------------------------------------------------------- */

/*
 * Delete at most 'batch' expired rows of each table (expires < now;
 * recipients with expires 0 never go, domains never do), in
 * one transaction of its own, committed before it returns. Puts the count
 * in *deleted_out. 0 or -1. The daemon runs it on its timer; exposed for
 * the tests and the benchmark.
 */
int	state_sweep(struct state *, int64_t now, unsigned batch,
	    size_t *deleted_out);

/* --- for backmxctl and the control socket ------------------------------ */

enum state_list_filter {
	STATE_LIST_ALL,
	STATE_LIST_PENDING,
	STATE_LIST_PASSED,
};

/* Calls a callback per row, in key order; a non-zero return stops the
 * walk. The pointers are valid during the call only. 0 or -1. */
typedef int	state_triplet_fn(const struct state_triplet *, void *arg);
typedef int	state_net_fn(const struct state_net *, void *arg);
typedef int	state_allow_fn(enum state_allow_kind, const char *value,
		    int64_t added, void *arg);
int	state_triplet_list(struct state *, enum state_list_filter,
	    state_triplet_fn *, void *arg);
int	state_net_list(struct state *, state_net_fn *, void *arg);
int	state_allow_list(struct state *, state_allow_fn *, void *arg);

/*
 * Add an allow entry. A client is an IPv4 or IPv6 address, or a network
 * "ADDR/LEN" (the host bits must be zero); a domain is a host name; a
 * sender is "local@domain" with such a domain. Stored in canonical form
 * (lower case). 0, 1 when it was there already, -1 on a store error,
 * -2 when 'value' is not of its kind (a sentence in err). In the daemon
 * the write joins the loop turn's transaction (state_commit_wait());
 * on an admin connection it commits at once, as state_delete() does.
 */
int	state_allow_add(struct state *, enum state_allow_kind,
	    const char *value, int64_t now, char *err, size_t errsz);
/* Which kind an operator's VALUE is: with an '@' a sender; an address or
 * a network has a digit-dot or a colon shape (or a '/'); anything else is
 * a domain. */
enum state_allow_kind state_allow_kind_of(const char *value);
/* "client", "domain", "sender", "recipient": as stored and shown. */
const char *state_allow_kind_name(enum state_allow_kind);
/* The kind 'name' (n octets, not terminated) names, as the above
 * writes it: 0, or -1 for no kind. */
int	state_allow_kind_parse(const char *name, size_t n,
	    enum state_allow_kind *);
/*
 * Delete what 'key' names: an allow entry (leaving its tombstone, of
 * 'now', below), a client network's record, or the triplet (net, sender,
 * rcpt) when sender is not NULL. The number of rows deleted, or -1.
 */
int	state_delete(struct state *, const char *key, const char *sender,
	    const char *rcpt, int64_t now);

/*
 * The operator's bulk allow entries (backmxctl bulk allow): client
 * networks, sender domains and sender addresses whose mail is never
 * counted, kept like the greylist's (state_allow_add(): same kinds, same
 * canonical forms, same return values) in a table of their own.
 */
int	state_bulk_allow_add(struct state *, enum state_allow_kind,
	    const char *value, int64_t now, char *err, size_t errsz);
/* 1 when the client is in an allowed network or the sender (lower case,
 * "" for <>) is allowed, as state_allow_sender() says; 0; -1 on an
 * error. */
int	state_bulk_allowed(struct state *, const struct sockaddr *,
	    const char *sender);
/* 1 when the recipient (lower case "local@domain") or its domain or a
 * parent is an allowed recipient; 0; -1 on an error. */
int	state_bulk_rcpt_allowed(struct state *, const char *rcpt);
int	state_bulk_allow_list(struct state *, state_allow_fn *, void *arg);
/* Entries deleted (value as written or canonical, each leaving its
 * tombstone of 'now'), or -1. */
int	state_bulk_allow_delete(struct state *, const char *value,
	    int64_t now);

/*
 * The run-time allow entries as a cluster shares them (docs/cluster.md
 * "Allow entries"): the last operation on each entry of a list, an add
 * (the entry is in its table) or a delete (a tombstone, in no table: the
 * look-ups above never see it), at the writing node's clock. The
 * operator's adds and deletes above write them, at max(now, the entry's
 * previous operation + 1).
 */
enum state_allow_list { STATE_ALLOWS_GREYLIST, STATE_ALLOWS_BULK };
struct state_allow_op {
	enum state_allow_list	list;
	enum state_allow_kind	kind;
	char			value[STATE_ADDR_MAX];	/* canonical */
	int64_t			at;
	int			deleted;	/* 1: a tombstone */
};
/* 1 when a replaces b (last writer wins; on a tie a delete wins), else
 * 0. The same rule as the Redis script's. */
int	state_allow_op_wins(const struct state_allow_op *a,
	    const struct state_allow_op *b);
typedef int	state_allow_op_fn(const struct state_allow_op *, void *arg);
/* Every operation of a list, tombstones too, in (kind, value) order. 0
 * or -1. */
int	state_allow_ops(struct state *, enum state_allow_list,
	    state_allow_op_fn *, void *arg);
/*
 * Another node's operation, applied when it wins over this store's
 * (staged like a put): the entry added to (its 'added' the op's time) or
 * deleted from its table. 1 applied, 0 this store's is as new, -1 on a
 * store error, -2 when it is not an entry this node would write (not of
 * its kind, not canonical: peer bytes).
 */
int	state_allow_apply(struct state *, const struct state_allow_op *);

#endif
