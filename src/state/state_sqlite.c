/*
 * state_sqlite: the state store of state.h in one SQLite database,
 * state_dir/state.db (docs/architecture.md §2, docs/dependencies.md §4).
 *
 * Owned by the event-loop thread: every statement is prepared once and
 * runs there. WAL mode with synchronous=NORMAL (Debian's SQLite would sync
 * the WAL fully): the last commits may roll back after a power loss, which
 * costs a sender one more greylist delay, never a message. Writes of one
 * loop turn share one transaction (BEGIN IMMEDIATE at the first write,
 * COMMIT from a zero-delay event); callers that must not answer before
 * their write is durable wait for that commit (state_commit_wait()).
 * Automatic checkpoints are off on this connection: a worker thread with
 * a connection of its own runs PASSIVE checkpoints, so no commit on the
 * loop carries a checkpoint's fsyncs. Expiry deletes bounded batches on a
 * timer, one short transaction each, never one long one.
 *
 * Exposed to the disk and to other processes (backmxctl, an operator's
 * sqlite3 shell): a busy or failing database is a -1 for the caller, which
 * makes it a 4xx; nothing here aborts on a database error. Peer bytes
 * reach it only as bound parameters, never as SQL text.
 */
#include "state.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "dname.h"
#include "log.h"
#include "ranges.h"
#include "sockaddr.h"
#include "stats.h"
#include "str.h"
#include "xmem.h"

/* The loop waits at most this long for another connection's write lock
 * (an operator's backmxctl): every session stalls meanwhile, so keep it
 * short; SQLITE_BUSY after it is a 4xx. */
#define BUSY_LOOP_MS	20
#define BUSY_ADMIN_MS	5000
/* WAL pages after which the worker checkpoints (SQLite's own default). */
#define CKPT_PAGES	1000
#define CKPT_IDLE_SECS	60	/* and at least this often */
#define WAL_LIMIT	(64 * 1024 * 1024)	/* journal_size_limit */
#define ERR_LOG_SECS	10	/* at most one error line per this */

/*
 * Forward migrations: schema[i] takes user_version i to i + 1. Never edit
 * a row that has shipped; add one.
 */
static const char *const schema[] = {
	/* 0 -> 1: greylisting (issue 5). */
	"CREATE TABLE grey_triplet ("
	"  net TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,"
	"  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	"  passed INTEGER NOT NULL, expires INTEGER NOT NULL,"
	"  tries INTEGER NOT NULL, passes INTEGER NOT NULL,"
	"  PRIMARY KEY (net, sender, rcpt));"
	"CREATE INDEX grey_triplet_expires ON grey_triplet (expires);"
	"CREATE TABLE grey_net ("
	"  net TEXT PRIMARY KEY, passes INTEGER NOT NULL,"
	"  allowed INTEGER NOT NULL, refreshed INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX grey_net_expires ON grey_net (expires);"
	"CREATE TABLE grey_allow ("
	"  kind TEXT NOT NULL, value TEXT NOT NULL,"
	"  lo BLOB, hi BLOB, added INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, value));"
	"CREATE INDEX grey_allow_lo ON grey_allow (kind, lo);",
	/* 1 -> 2: learned recipients, customer domains (docs/architecture.md
	 * §6). recipients_domain serves a domain's list and counts in addr
	 * order; recipients_expires holds only rows that can expire, so the
	 * sweep never walks past the operator's (expires 0). */
	"CREATE TABLE recipients ("
	"  addr TEXT PRIMARY KEY, domain TEXT NOT NULL,"
	"  status INTEGER NOT NULL, source INTEGER NOT NULL,"
	"  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL, why TEXT NOT NULL);"
	"CREATE INDEX recipients_domain ON recipients (domain, addr);"
	"CREATE INDEX recipients_expires ON recipients (expires) "
	"  WHERE expires != 0;"
	"CREATE TABLE domains ("
	"  name TEXT PRIMARY KEY, lifecycle INTEGER NOT NULL,"
	"  added INTEGER NOT NULL, changed INTEGER NOT NULL,"
	"  first_accept INTEGER NOT NULL, last_accept INTEGER NOT NULL,"
	"  accept_how TEXT NOT NULL, health INTEGER NOT NULL,"
	"  health_changed INTEGER NOT NULL, health_why TEXT NOT NULL,"
	"  last_probe INTEGER NOT NULL);",
	/* 2 -> 3: bulk digests (docs/bulk.md §3). A recipient row counts
	 * for its digest only while its gen is the digest's first_seen: a
	 * digest that expired and came back starts from 0 without a mass
	 * delete. */
	"CREATE TABLE bulk_digest ("
	"  digest TEXT PRIMARY KEY, kind INTEGER NOT NULL,"
	"  count INTEGER NOT NULL, first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL, bulk_until INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL, subject TEXT NOT NULL);"
	"CREATE INDEX bulk_digest_expires ON bulk_digest (expires);"
	"CREATE INDEX bulk_digest_count ON bulk_digest (count);"
	"CREATE TABLE bulk_rcpt ("
	"  digest TEXT NOT NULL, rcpt TEXT NOT NULL, gen INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL, PRIMARY KEY (digest, rcpt));"
	"CREATE INDEX bulk_rcpt_expires ON bulk_rcpt (expires);"
	"CREATE TABLE bulk_allow ("
	"  kind TEXT NOT NULL, value TEXT NOT NULL,"
	"  lo BLOB, hi BLOB, added INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, value));"
	"CREATE INDEX bulk_allow_lo ON bulk_allow (kind, lo);",
	/* 3 -> 4: a digest's sample envelope sender, beside its Subject,
	 * for `bulk list` (what to allow). NULL: a row from before, whose
	 * first copy's sender is not known ('' is the null sender <>). */
	"ALTER TABLE bulk_digest ADD COLUMN sender TEXT;",
	/* 4 -> 5: the last operation on each run-time allow entry, shared
	 * by a cluster (docs/cluster.md "Allow entries"): a live entry's
	 * time, or a tombstone (deleted 1) that keeps an older add from
	 * another node out. Beside the allow tables, not in them: their
	 * look-ups stay one probe and never see a tombstone. The entries
	 * from before get no operation: they were each node's own, and
	 * deletes were never recorded, so pushed they would spread one
	 * node's entries and bring back what another deleted. They stay
	 * this node's until an operator runs them again (any later op on
	 * one, remote or local, wins over it). */
	"CREATE TABLE allow_op ("
	"  list TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
	"  at INTEGER NOT NULL, deleted INTEGER NOT NULL,"
	"  PRIMARY KEY (list, kind, value));",
};
#define NSCHEMA	(sizeof(schema) / sizeof(schema[0]))
_Static_assert(NSCHEMA == STATE_SCHEMA, "STATE_SCHEMA and schema[] differ");

enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_TRIPLET_GET,
	S_TRIPLET_PUT,
	S_NET_GET,
	S_NET_PUT,
	S_ALLOW_CLIENT,
	S_ALLOW_SENDER,
	S_BULK_ALLOW_CLIENT,
	S_BULK_ALLOW_SENDER,
	S_BULK_ALLOW_RCPT,
	S_BULK_ALLOW_ANY,
	S_RCPT_GET,
	S_RCPT_PUT,
	S_RCPT_DELETE,
	S_RCPT_LIST,
	S_RCPT_LIST_DOMAIN,
	S_RCPT_COUNT,
	S_RCPT_COUNT_DOMAIN,
	S_DOMAIN_GET,
	S_DOMAIN_PUT,
	S_DOMAIN_LIST,
	S_SWEEP_TRIPLET,
	S_SWEEP_NET,
	S_SWEEP_RCPT,
	S_BULK_GET_MANY,
	S_BULK_PUT_MANY,
	S_BULK_RCPT_SEEN,
	S_BULK_RCPT_PUT_MANY,
	S_BULK_LIST,
	S_BULK_FORGET,
	S_BULK_FORGET_RCPT,
	S_SWEEP_BULK,
	S_SWEEP_BULK_RCPT,
	S_ALLOW_OP_GET,
	S_ALLOW_OP_PUT,
	S_ALLOW_OP_LOCAL,
	S_ALLOW_OP_LIST,
	NSTMT
};

#define RCPT_COLS	"addr, domain, status, source, first_seen, last_seen, " \
			"expires, why"
#define DOMAIN_COLS	"name, lifecycle, added, changed, first_accept, " \
			"last_accept, accept_how, health, health_changed, " \
			"health_why, last_probe"
#define BULK_COLS	"digest, kind, count, first_seen, last_seen, " \
			"bulk_until, expires, subject, sender"
/*
 * STATE_BULK_MANY digests' parameters as a table "s", joined (outer loop,
 * CROSS JOIN) to the primary key: one probe a slot. "digest IN (?1, ...)"
 * built an ephemeral index per statement, zeroed pages and all, which
 * cost more than the look-ups (docs/bulk.md §5).
 */
#define BULK_SLOTS	"(VALUES (?1),(?2),(?3),(?4),(?5),(?6),(?7),(?8)," \
			"(?9),(?10)) AS s"
_Static_assert(STATE_BULK_MANY == 10, "BULK_SLOTS and the VALUES lists "
    "are written for 10 digests");

static const char *const stmt_sql[NSTMT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_TRIPLET_GET] = "SELECT first_seen, last_seen, passed, expires, "
	    "tries, passes FROM grey_triplet "
	    "WHERE net = ?1 AND sender = ?2 AND rcpt = ?3",
	[S_TRIPLET_PUT] = "INSERT OR REPLACE INTO grey_triplet (net, sender, "
	    "rcpt, first_seen, last_seen, passed, expires, tries, passes) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_NET_GET] = "SELECT passes, allowed, refreshed, expires "
	    "FROM grey_net WHERE net = ?1",
	[S_NET_PUT] = "INSERT OR REPLACE INTO grey_net (net, passes, "
	    "allowed, refreshed, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_ALLOW_CLIENT] = "SELECT 1 FROM grey_allow WHERE kind = 'client' "
	    "AND lo <= ?1 AND hi >= ?1 LIMIT 1",
	/* A domain is never an address: one probe serves both kinds. */
	[S_ALLOW_SENDER] = "SELECT 1 FROM grey_allow WHERE kind IN "
	    "('domain', 'sender') AND value = ?1",
	[S_BULK_ALLOW_CLIENT] = "SELECT 1 FROM bulk_allow WHERE kind = "
	    "'client' AND lo <= ?1 AND hi >= ?1 LIMIT 1",
	[S_BULK_ALLOW_SENDER] = "SELECT 1 FROM bulk_allow WHERE kind IN "
	    "('domain', 'sender') AND value = ?1",
	[S_BULK_ALLOW_RCPT] = "SELECT 1 FROM bulk_allow WHERE kind = "
	    "'recipient' AND value = ?1",
	[S_BULK_ALLOW_ANY] = "SELECT 1 FROM bulk_allow LIMIT 1",
	/* Recipients: the columns in rcpt_row()'s order. Unexpired means
	 * expires 0 (never) or later than now (?2). */
	[S_RCPT_GET] = "SELECT " RCPT_COLS " FROM recipients "
	    "WHERE addr = ?1 AND (expires = 0 OR expires > ?2)",
	[S_RCPT_PUT] = "INSERT OR REPLACE INTO recipients (" RCPT_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_RCPT_DELETE] = "DELETE FROM recipients WHERE addr = ?1",
	[S_RCPT_LIST] = "SELECT " RCPT_COLS " FROM recipients "
	    "WHERE (expires = 0 OR expires > ?2) ORDER BY addr",
	[S_RCPT_LIST_DOMAIN] = "SELECT " RCPT_COLS " FROM recipients "
	    "WHERE domain = ?1 AND (expires = 0 OR expires > ?2) "
	    "ORDER BY addr",
	/* sum() of no rows is NULL: read as 0. */
	[S_RCPT_COUNT] = "SELECT sum(status = 1), sum(status = 2) "
	    "FROM recipients WHERE (expires = 0 OR expires > ?2)",
	[S_RCPT_COUNT_DOMAIN] = "SELECT sum(status = 1), sum(status = 2) "
	    "FROM recipients WHERE domain = ?1 "
	    "AND (expires = 0 OR expires > ?2)",
	[S_DOMAIN_GET] = "SELECT " DOMAIN_COLS " FROM domains "
	    "WHERE name = ?1",
	[S_DOMAIN_PUT] = "INSERT OR REPLACE INTO domains (" DOMAIN_COLS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_DOMAIN_LIST] = "SELECT " DOMAIN_COLS " FROM domains "
	    "ORDER BY name",
	/* Bounded: the oldest first, at most ?2 rows (docs/dependencies.md §4).
	 * The rowid form needs no SQLITE_ENABLE_UPDATE_DELETE_LIMIT. */
	[S_SWEEP_TRIPLET] = "DELETE FROM grey_triplet WHERE rowid IN "
	    "(SELECT rowid FROM grey_triplet WHERE expires < ?1 "
	    "ORDER BY expires LIMIT ?2)",
	[S_SWEEP_NET] = "DELETE FROM grey_net WHERE rowid IN "
	    "(SELECT rowid FROM grey_net WHERE expires < ?1 "
	    "ORDER BY expires LIMIT ?2)",
	/* "expires != 0" as written: it lets the partial index serve. */
	[S_SWEEP_RCPT] = "DELETE FROM recipients WHERE rowid IN "
	    "(SELECT rowid FROM recipients WHERE expires != 0 AND "
	    "expires < ?1 ORDER BY expires LIMIT ?2)",
	/*
	 * A message's digests in one statement each (docs/bulk.md §5): a
	 * slot bound NULL matches nothing and writes nothing. Rows are
	 * updated in place (not deleted and inserted, as REPLACE would:
	 * the primary-key index is not touched), and not at all when
	 * nothing changed (a copy within the same second).
	 */
	[S_BULK_GET_MANY] = "SELECT " BULK_COLS " FROM " BULK_SLOTS
	    " CROSS JOIN bulk_digest ON digest = s.column1 "
	    "WHERE expires > ?11",
	[S_BULK_PUT_MANY] = "INSERT INTO bulk_digest (" BULK_COLS ") "
	    "SELECT * FROM (VALUES "
	    "(?1,?2,?3,?4,?5,?6,?7,?8,?9),"
	    "(?10,?11,?12,?13,?14,?15,?16,?17,?18),"
	    "(?19,?20,?21,?22,?23,?24,?25,?26,?27),"
	    "(?28,?29,?30,?31,?32,?33,?34,?35,?36),"
	    "(?37,?38,?39,?40,?41,?42,?43,?44,?45),"
	    "(?46,?47,?48,?49,?50,?51,?52,?53,?54),"
	    "(?55,?56,?57,?58,?59,?60,?61,?62,?63),"
	    "(?64,?65,?66,?67,?68,?69,?70,?71,?72),"
	    "(?73,?74,?75,?76,?77,?78,?79,?80,?81),"
	    "(?82,?83,?84,?85,?86,?87,?88,?89,?90)) "
	    "WHERE column1 IS NOT NULL "
	    "ON CONFLICT (digest) DO UPDATE SET kind = excluded.kind, "
	    "count = excluded.count, first_seen = excluded.first_seen, "
	    "last_seen = excluded.last_seen, "
	    "bulk_until = excluded.bulk_until, expires = excluded.expires, "
	    "subject = excluded.subject, sender = excluded.sender "
	    "WHERE (kind, count, first_seen, last_seen, bulk_until, expires, "
	    "subject, sender) IS NOT (excluded.kind, excluded.count, "
	    "excluded.first_seen, excluded.last_seen, excluded.bulk_until, "
	    "excluded.expires, excluded.subject, excluded.sender)",
	/* The primary key (digest, rcpt) serves it, one probe a slot. */
	[S_BULK_RCPT_SEEN] = "SELECT digest, gen, expires FROM " BULK_SLOTS
	    " CROSS JOIN bulk_rcpt ON digest = s.column1 AND rcpt = ?11",
	[S_BULK_RCPT_PUT_MANY] = "INSERT INTO bulk_rcpt (digest, rcpt, gen, "
	    "expires) SELECT column1, ?21, column2, ?22 FROM "
	    "(VALUES (?1,?2),(?3,?4),(?5,?6),(?7,?8),(?9,?10),(?11,?12),"
	    "(?13,?14),(?15,?16),(?17,?18),(?19,?20)) "
	    "WHERE column1 IS NOT NULL "
	    "ON CONFLICT (digest, rcpt) DO UPDATE SET gen = excluded.gen, "
	    "expires = excluded.expires "
	    "WHERE (gen, expires) IS NOT (excluded.gen, excluded.expires)",
	[S_BULK_LIST] = "SELECT " BULK_COLS " FROM bulk_digest "
	    "WHERE expires > ?2 AND (count >= ?1 OR bulk_until > ?2) "
	    "ORDER BY count DESC, digest",
	[S_BULK_FORGET] = "DELETE FROM bulk_digest WHERE digest = ?1",
	/* The primary key's prefix serves it. */
	[S_BULK_FORGET_RCPT] = "DELETE FROM bulk_rcpt WHERE digest = ?1",
	[S_SWEEP_BULK] = "DELETE FROM bulk_digest WHERE rowid IN "
	    "(SELECT rowid FROM bulk_digest WHERE expires < ?1 "
	    "ORDER BY expires LIMIT ?2)",
	[S_SWEEP_BULK_RCPT] = "DELETE FROM bulk_rcpt WHERE rowid IN "
	    "(SELECT rowid FROM bulk_rcpt WHERE expires < ?1 "
	    "ORDER BY expires LIMIT ?2)",
	/* The allow entries' last operations (schema 5). LOCAL is an
	 * operator's: after this node's own earlier one, at least a second
	 * later, so its own ops stay ordered whatever the clock did. */
	[S_ALLOW_OP_GET] = "SELECT at, deleted FROM allow_op "
	    "WHERE list = ?1 AND kind = ?2 AND value = ?3",
	[S_ALLOW_OP_PUT] = "INSERT OR REPLACE INTO allow_op (list, kind, "
	    "value, at, deleted) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_ALLOW_OP_LOCAL] = "INSERT INTO allow_op (list, kind, value, at, "
	    "deleted) VALUES (?1, ?2, ?3, ?4, ?5) "
	    "ON CONFLICT (list, kind, value) DO UPDATE "
	    "SET at = max(excluded.at, at + 1), deleted = excluded.deleted",
	[S_ALLOW_OP_LIST] = "SELECT kind, value, at, deleted FROM allow_op "
	    "WHERE list = ?1 ORDER BY kind, value",
};

struct state_wait {
	TAILQ_ENTRY(state_wait)	 entry;
	struct state		*st;
	state_commit_cb		*cb;
	void			*arg;
	int			 firing;	/* in st->firing, not waiters */
};
TAILQ_HEAD(waitq, state_wait);

struct state {
	char			 path[4096];
	sqlite3			*db;
	sqlite3_stmt		*stmt[NSTMT];
	int			 admin;		/* backmxctl: autocommit */

	/* The loop turn's transaction. */
	struct event_base	*base;
	struct event		*ev_commit;
	int			 in_txn;
	int			 txn_failed;	/* a write in it failed */
	struct waitq		 waiters;	/* for the open transaction */
	struct waitq		 firing;	/* being called back now */

	/* Expiry. */
	struct state_conf	 conf;
	struct event		*ev_sweep;

	/* The checkpoint worker and its own connection. */
	sqlite3			*ckpt_db;
	pthread_t		 ckpt_thread;
	int			 ckpt_running;
	pthread_mutex_t		 ckpt_mtx;
	pthread_cond_t		 ckpt_cond;
	int			 ckpt_kick;
	int			 ckpt_stop;
	int			 ckpt_err;	/* last failure; read on the loop */

	/* Has bulk_allow any row: 1, 0, or -1 not known. Only this daemon
	 * writes the table (backmxctl asks it), so the answer holds until
	 * an add, a delete or a rollback here: every message read it, two
	 * or three statements for an empty table (docs/bulk.md §5). */
	int			 bulk_allow_any;

	/* The bulk rows this connection wrote or read last (see "the bulk
	 * rows' cache" below); NULL until the first use. */
	struct bulk_cache	*bcache;

	/* Rate limit of error lines. */
	time_t			 err_logged;
	unsigned		 err_suppressed;
};

static void	commit_cb(evutil_socket_t, short, void *);
static void	bulk_cache_clear(struct state *);
static void	sweep_cb(evutil_socket_t, short, void *);

/* One warning line per ERR_LOG_SECS, whatever the peers make us do. */
static void
store_error(struct state *st, const char *op)
{
	time_t now = time(NULL);

	if (st->admin) {
		fprintf(stderr, "backmxctl: %s: %s: %s\n", st->path, op,
		    sqlite3_errmsg(st->db));
		return;
	}
	if (now - st->err_logged < ERR_LOG_SECS) {
		st->err_suppressed++;
		return;
	}
	log_warn("event=state_error op=%s code=%d error=\"%s\" "
	    "suppressed=%u", op, sqlite3_extended_errcode(st->db),
	    sqlite3_errmsg(st->db), st->err_suppressed);
	st->err_logged = now;
	st->err_suppressed = 0;
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

const char *
state_path(const struct state *st)
{
	return st->path;
}

/* --- opening ------------------------------------------------------------ */

/* Bring the schema to STATE_SCHEMA, one transaction per step. */
static int
migrate(struct state *st, char *err, size_t errsz)
{
	sqlite3_stmt *s;
	int version;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		snprintf(err, errsz, "%s: %s", st->path,
		    sqlite3_errmsg(st->db));
		sqlite3_finalize(s);
		return -1;
	}
	version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (version > STATE_SCHEMA) {
		snprintf(err, errsz, "%s: schema version %d is newer than "
		    "this backmx knows (%d)", st->path, version, STATE_SCHEMA);
		return -1;
	}
	if (version < STATE_SCHEMA && st->admin) {
		snprintf(err, errsz, "%s: schema version %d: start backmxd "
		    "once to migrate it", st->path, version);
		return -1;
	}
	for (; version < STATE_SCHEMA; version++) {
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    version + 1);
		if (exec(st->db, "BEGIN IMMEDIATE") == -1 ||
		    exec(st->db, schema[version]) == -1 ||
		    exec(st->db, sql) == -1 || exec(st->db, "COMMIT") == -1) {
			snprintf(err, errsz, "%s: migrating the schema to "
			    "version %d: %s", st->path, version + 1,
			    sqlite3_errmsg(st->db));
			exec(st->db, "ROLLBACK");
			return -1;
		}
		log_info("event=state_migrate path=%s schema=%d", st->path,
		    version + 1);
	}
	return 0;
}

/* PRAGMAs every connection of ours needs. */
static int
setup_conn(sqlite3 *db, int busy_ms)
{
	char *mode = NULL;
	sqlite3_stmt *s;
	int ok;

	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_extended_result_codes(db, 1);
	/* journal_mode answers with the mode in effect: check it, a
	 * database that cannot do WAL (e.g. on NFS) must not go on
	 * silently in another mode. */
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		mode = xstrdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	ok = mode != NULL && strcasecmp(mode, "wal") == 0;
	free(mode);
	if (!ok)
		return -1;
	/* docs/dependencies.md §4: Debian's WAL default is FULL. */
	return exec(db, "PRAGMA synchronous = NORMAL");
}

static void *ckpt_main(void *);

static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct state *st = arg;

	if (pages >= CKPT_PAGES) {
		pthread_mutex_lock(&st->ckpt_mtx);
		st->ckpt_kick = 1;
		pthread_cond_signal(&st->ckpt_cond);
		pthread_mutex_unlock(&st->ckpt_mtx);
	}
	return SQLITE_OK;
}

static void
state_free(struct state *st)
{
	size_t i;

	for (i = 0; i < NSTMT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	sqlite3_close(st->ckpt_db);
	if (st->ev_commit != NULL)
		event_free(st->ev_commit);
	if (st->ev_sweep != NULL)
		event_free(st->ev_sweep);
	pthread_mutex_destroy(&st->ckpt_mtx);
	pthread_cond_destroy(&st->ckpt_cond);
	free(st->bcache);
	free(st);
}

static struct state *
open_common(struct event_base *base, const char *dir, int admin, char *err,
    size_t errsz)
{
	struct state *st = xcalloc(1, sizeof(*st));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	struct stat sb;
	size_t i;

	st->admin = admin;
	st->bulk_allow_any = -1;
	st->base = base;
	TAILQ_INIT(&st->waiters);
	TAILQ_INIT(&st->firing);
	pthread_mutex_init(&st->ckpt_mtx, NULL);
	pthread_cond_init(&st->ckpt_cond, NULL);
	if (snprintf(st->path, sizeof(st->path), "%s/state.db", dir) >=
	    (int)sizeof(st->path)) {
		snprintf(err, errsz, "%s: path too long", dir);
		goto fail;
	}
	if (!admin) {
		/* One level, like the spool: the parent is the
		 * operator's to make. */
		if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
			snprintf(err, errsz, "%s: cannot create: %s", dir,
			    strerror(errno));
			goto fail;
		}
		flags |= SQLITE_OPEN_CREATE;
	} else if (stat(st->path, &sb) == -1) {
		snprintf(err, errsz, "%s: %s (has backmxd run with this "
		    "state_dir?)", st->path, strerror(errno));
		goto fail;
	}
	if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
		snprintf(err, errsz, "%s: not a directory", dir);
		goto fail;
	}
	if (sqlite3_open_v2(st->path, &st->db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "%s: cannot open: %s", st->path,
		    st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	if (setup_conn(st->db, admin ? BUSY_ADMIN_MS : BUSY_LOOP_MS) == -1) {
		snprintf(err, errsz, "%s: cannot use it in WAL mode: %s",
		    st->path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (!admin && sqlite3_db_readonly(st->db, "main") == 1) {
		snprintf(err, errsz, "%s: read-only", st->path);
		goto fail;
	}
	if (migrate(st, err, errsz) == -1)
		goto fail;
	for (i = 0; i < NSTMT; i++)
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL) !=
		    SQLITE_OK) {
			snprintf(err, errsz, "%s: %s", st->path,
			    sqlite3_errmsg(st->db));
			goto fail;
		}
	return st;
fail:
	state_free(st);
	return NULL;
}

struct state *
state_open(struct event_base *base, const char *dir,
    const struct state_conf *conf, char *err, size_t errsz)
{
	struct state *st;
	struct timeval tv = { conf->sweep_interval, 0 };

	if ((st = open_common(base, dir, 0, err, errsz)) == NULL)
		return NULL;
	st->conf = *conf;
	if (st->conf.sweep_batch == 0)
		st->conf.sweep_batch = 1;

	/* Checkpoints leave the loop (docs/dependencies.md §4). */
	if (exec(st->db, "PRAGMA wal_autocheckpoint = 0") == -1 ||
	    sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    setup_conn(st->ckpt_db, BUSY_ADMIN_MS) == -1) {
		snprintf(err, errsz, "%s: checkpoint connection: %s", st->path,
		    st->ckpt_db ? sqlite3_errmsg(st->ckpt_db) :
		    sqlite3_errmsg(st->db));
		goto fail;
	}
	{
		char sql[64];

		/* On the writer too: SQLite cuts the WAL back when the
		 * writer restarts it, by the writer's limit. Set on the
		 * checkpoint connection alone, a WAL grown by a burst kept
		 * its size for good. */
		snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %d",
		    WAL_LIMIT);
		exec(st->ckpt_db, sql);
		exec(st->db, sql);
	}
	sqlite3_wal_hook(st->db, wal_hook, st);
	if (pthread_create(&st->ckpt_thread, NULL, ckpt_main, st) != 0) {
		snprintf(err, errsz, "%s: cannot start the checkpoint thread",
		    st->path);
		goto fail;
	}
	st->ckpt_running = 1;

	st->ev_commit = event_new(base, -1, 0, commit_cb, st);
	st->ev_sweep = evtimer_new(base, sweep_cb, st);
	evtimer_add(st->ev_sweep, &tv);
	return st;
fail:
	state_free(st);
	return NULL;
}

struct state *
state_open_admin(const char *dir, char *err, size_t errsz)
{
	return open_common(NULL, dir, 1, err, errsz);
}

void
state_close(struct state *st)
{
	struct state_wait *w;

	if (st == NULL)
		return;
	/* Nobody is left to hear them: the loop has ended, and their
	 * owners are not to be called into any more. */
	while ((w = TAILQ_FIRST(&st->waiters)) != NULL) {
		TAILQ_REMOVE(&st->waiters, w, entry);
		free(w);
	}
	if (st->in_txn)
		commit_cb(-1, 0, st);
	if (st->ckpt_running) {
		pthread_mutex_lock(&st->ckpt_mtx);
		st->ckpt_stop = 1;
		pthread_cond_signal(&st->ckpt_cond);
		pthread_mutex_unlock(&st->ckpt_mtx);
		pthread_join(st->ckpt_thread, NULL);
	}
	state_free(st);
}

/* --- the checkpoint worker ---------------------------------------------- */

/*
 * Its own connection, its own thread: PASSIVE never waits for readers or
 * the writer, copies what it can, and the WAL restarts from its beginning
 * once a checkpoint caught up. The loop connection only kicks it.
 */
static void *
ckpt_main(void *arg)
{
	struct state *st = arg;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&st->ckpt_mtx);
	while (!st->ckpt_stop) {
		if (!st->ckpt_kick) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += CKPT_IDLE_SECS;
			pthread_cond_timedwait(&st->ckpt_cond, &st->ckpt_mtx,
			    &ts);
			if (st->ckpt_stop)
				break;
		}
		st->ckpt_kick = 0;
		pthread_mutex_unlock(&st->ckpt_mtx);
		rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&st->ckpt_mtx);
		/* BUSY: someone else checkpoints; the next kick retries. */
		st->ckpt_err = rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : rc;
	}
	pthread_mutex_unlock(&st->ckpt_mtx);
	return NULL;
}

/* --- the loop turn's transaction ----------------------------------------- */

/* A one-row lookup's step, timed for the metrics (docs/metrics.md). */
static int
read_step(sqlite3_stmt *s)
{
	struct timespec t;
	int rc;

	stats_start(&t);
	rc = sqlite3_step(s);
	stats_observe(HIST_STATE_READ, stats_since(&t));
	return rc;
}

static int
step_done(struct state *st, sqlite3_stmt *s, const char *op)
{
	struct timespec t;
	int rc;

	stats_start(&t);
	rc = sqlite3_step(s);
	stats_observe(s == st->stmt[S_COMMIT] ? HIST_STATE_COMMIT :
	    HIST_STATE_WRITE, stats_since(&t));

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_error(st, op);
		return -1;
	}
	return 0;
}

/* Open the turn's transaction if none is open, and have it committed
 * once this turn's callbacks have run. */
static int
begin_write(struct state *st)
{
	if (st->admin || st->in_txn)
		return 0;
	if (step_done(st, st->stmt[S_BEGIN], "begin") == -1)
		return -1;
	st->in_txn = 1;
	st->txn_failed = 0;
	event_active(st->ev_commit, EV_TIMEOUT, 0);
	return 0;
}

/* A write failed: the whole turn's transaction goes (its waiters hear
 * -1), since SQLite may have rolled part of it back already. */
static int
write_failed(struct state *st)
{
	if (st->in_txn)
		st->txn_failed = 1;
	bulk_cache_clear(st);
	return -1;
}

static void
commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct state *st = arg;
	struct state_wait *w;
	int rc = 0, ckpt_err;

	if (st->in_txn) {
		if (st->txn_failed ||
		    step_done(st, st->stmt[S_COMMIT], "commit") == -1) {
			rc = -1;
			st->bulk_allow_any = -1;	/* an add may be gone */
			bulk_cache_clear(st);	/* so may any bulk row */
			/* After an I/O error SQLite may have rolled back
			 * on its own; autocommit says whether it did. */
			if (!sqlite3_get_autocommit(st->db))
				step_done(st, st->stmt[S_ROLLBACK],
				    "rollback");
		}
		st->in_txn = 0;
		st->txn_failed = 0;
	}
	pthread_mutex_lock(&st->ckpt_mtx);
	ckpt_err = st->ckpt_err;
	st->ckpt_err = 0;
	pthread_mutex_unlock(&st->ckpt_mtx);
	if (ckpt_err != 0)
		log_warn("event=state_checkpoint_error path=%s code=%d",
		    st->path, ckpt_err);
	/* Callbacks may stage writes again: those open the next
	 * transaction, and its waiters are not these. A callback may
	 * also cancel another waiter of this round: it is in 'firing'. */
	TAILQ_FOREACH(w, &st->waiters, entry)
		w->firing = 1;
	TAILQ_CONCAT(&st->firing, &st->waiters, entry);
	while ((w = TAILQ_FIRST(&st->firing)) != NULL) {
		TAILQ_REMOVE(&st->firing, w, entry);
		w->cb(rc, w->arg);
		free(w);
	}
}

struct state_wait *
state_commit_wait(struct state *st, state_commit_cb *cb, void *arg)
{
	struct state_wait *w = xcalloc(1, sizeof(*w));

	if (st->admin)
		panic("state_commit_wait without a loop");
	w->st = st;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&st->waiters, w, entry);
	event_active(st->ev_commit, EV_TIMEOUT, 0);
	return w;
}

void
state_commit_cancel(struct state_wait *w)
{
	if (w == NULL)
		return;
	if (w->firing)
		TAILQ_REMOVE(&w->st->firing, w, entry);
	else
		TAILQ_REMOVE(&w->st->waiters, w, entry);
	free(w);
}

/* --- triplets and networks ------------------------------------------------ */

static void
col_text(sqlite3_stmt *s, int i, char *buf, size_t bufsz)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	str_copy(buf, bufsz, t != NULL ? (const char *)t : "");
}

/*
 * The end of a one-row lookup: reset the statement at once (one left open
 * is a read transaction that stalls the checkpointer, docs/dependencies.md §4).
 * Returns 1 found, 0 not found, -1 store error (logged).
 */
static int
get_done(struct state *st, sqlite3_stmt *s, int rc, const char *what)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	store_error(st, what);
	return -1;
}

int
state_triplet_get(struct state *st, const char *net, const char *sender,
    const char *rcpt, struct state_triplet *out)
{
	sqlite3_stmt *s = st->stmt[S_TRIPLET_GET];
	int rc;

	sqlite3_bind_text(s, 1, net, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rcpt, -1, SQLITE_STATIC);
	rc = read_step(s);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		str_copy(out->net, sizeof(out->net), net);
		str_copy(out->sender, sizeof(out->sender), sender);
		str_copy(out->rcpt, sizeof(out->rcpt), rcpt);
		out->first_seen = sqlite3_column_int64(s, 0);
		out->last_seen = sqlite3_column_int64(s, 1);
		out->passed = sqlite3_column_int64(s, 2);
		out->expires = sqlite3_column_int64(s, 3);
		out->tries = (unsigned)sqlite3_column_int64(s, 4);
		out->passes = (unsigned)sqlite3_column_int64(s, 5);
	}
	return get_done(st, s, rc, "triplet_get");
}

int
state_triplet_put(struct state *st, const struct state_triplet *t)
{
	sqlite3_stmt *s = st->stmt[S_TRIPLET_PUT];

	if (begin_write(st) == -1)
		return -1;
	sqlite3_bind_text(s, 1, t->net, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, t->sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, t->rcpt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, t->first_seen);
	sqlite3_bind_int64(s, 5, t->last_seen);
	sqlite3_bind_int64(s, 6, t->passed);
	sqlite3_bind_int64(s, 7, t->expires);
	sqlite3_bind_int64(s, 8, t->tries);
	sqlite3_bind_int64(s, 9, t->passes);
	if (step_done(st, s, "triplet_put") == -1)
		return write_failed(st);
	return 0;
}

int
state_net_get(struct state *st, const char *net, struct state_net *out)
{
	sqlite3_stmt *s = st->stmt[S_NET_GET];
	int rc;

	sqlite3_bind_text(s, 1, net, -1, SQLITE_STATIC);
	rc = read_step(s);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		str_copy(out->net, sizeof(out->net), net);
		out->passes = (unsigned)sqlite3_column_int64(s, 0);
		out->allowed = sqlite3_column_int64(s, 1);
		out->refreshed = sqlite3_column_int64(s, 2);
		out->expires = sqlite3_column_int64(s, 3);
	}
	return get_done(st, s, rc, "net_get");
}

int
state_net_put(struct state *st, const struct state_net *n)
{
	sqlite3_stmt *s = st->stmt[S_NET_PUT];

	if (begin_write(st) == -1)
		return -1;
	sqlite3_bind_text(s, 1, n->net, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, n->passes);
	sqlite3_bind_int64(s, 3, n->allowed);
	sqlite3_bind_int64(s, 4, n->refreshed);
	sqlite3_bind_int64(s, 5, n->expires);
	if (step_done(st, s, "net_put") == -1)
		return write_failed(st);
	return 0;
}

/* --- allow entries ------------------------------------------------------- */

/* The client's address inside an allowed network of one allow table. */
static int
allow_client(struct state *st, enum stmt which, const struct sockaddr *sa)
{
	sqlite3_stmt *s = st->stmt[which];
	uint8_t ip[16];
	int rc;

	if (sockaddr_bytes(sa, ip) == -1)
		return 0;
	sqlite3_bind_blob(s, 1, ip, 16, SQLITE_STATIC);
	rc = read_step(s);
	return get_done(st, s, rc, "allow_client");
}

int
state_allow_client(struct state *st, const struct sockaddr *sa)
{
	return allow_client(st, S_ALLOW_CLIENT, sa);
}

/* The whole address (a sender's or a recipient's), then, unless
 * 'whole', its domain and each parent, in one allow table. */
static int
allow_sender(struct state *st, enum stmt which, const char *sender,
    int whole)
{
	sqlite3_stmt *s = st->stmt[which];
	const char *at = strrchr(sender, '@');
	const char *d = sender;
	int rc;

	/* a@a.b.example, a.b.example, b.example, example. */
	while (*d != '\0') {
		sqlite3_bind_text(s, 1, d, -1, SQLITE_STATIC);
		rc = read_step(s);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (rc == SQLITE_ROW)
			return 1;
		if (rc != SQLITE_DONE) {
			store_error(st, "allow_sender");
			return -1;
		}
		if (whole)
			break;
		if (d == sender && at != NULL)
			d = at + 1;
		else if ((d = strchr(d, '.')) == NULL)
			break;
		else
			d++;
	}
	return 0;
}

int
state_allow_sender(struct state *st, const char *sender)
{
	return allow_sender(st, S_ALLOW_SENDER, sender, 0);
}

int
state_allow_address(struct state *st, const char *addr)
{
	return allow_sender(st, S_ALLOW_SENDER, addr, 1);
}

/* Has bulk_allow a row? 1, 0, or -1 on an error; read once, then kept
 * until this daemon changes the table. */
static int
bulk_allow_any(struct state *st)
{
	sqlite3_stmt *s = st->stmt[S_BULK_ALLOW_ANY];
	int rc;

	if (st->bulk_allow_any == -1) {
		rc = read_step(s);
		if ((rc = get_done(st, s, rc, "bulk_allow_any")) == -1)
			return -1;
		st->bulk_allow_any = rc;
	}
	return st->bulk_allow_any;
}

int
state_bulk_rcpt_allowed(struct state *st, const char *rcpt)
{
	int rc;

	if ((rc = bulk_allow_any(st)) != 1)
		return rc;
	return allow_sender(st, S_BULK_ALLOW_RCPT, rcpt, 0);
}

int
state_bulk_allowed(struct state *st, const struct sockaddr *sa,
    const char *sender)
{
	int rc;

	if ((rc = bulk_allow_any(st)) != 1)
		return rc;
	if ((rc = allow_client(st, S_BULK_ALLOW_CLIENT, sa)) != 0)
		return rc;
	if (sender[0] == '\0')
		return 0;
	return allow_sender(st, S_BULK_ALLOW_SENDER, sender, 0);
}

/* A host name (src/core/dname.h), or "local@" one, lower-cased into
 * out: the canonical form of a domain or sender entry. */
static int
canon_domain(const char *v, char *out, size_t outsz)
{
	const char *at;

	if (str_copy(out, outsz, v) == -1)
		return -1;
	at = strrchr(out, '@');
	if (at == out || !dname_valid(at != NULL ? at + 1 : out, 0))
		return -1;
	str_lower(out);
	return 0;
}

enum state_allow_kind
state_allow_kind_of(const char *v)
{
	if (strchr(v, '@') != NULL)
		return STATE_ALLOW_SENDER;
	return strchr(v, ':') != NULL || strchr(v, '/') != NULL ||
	    strspn(v, "0123456789.") == strlen(v) ? STATE_ALLOW_CLIENT :
	    STATE_ALLOW_DOMAIN;
}

static const char *const allow_kinds[] = {
	[STATE_ALLOW_CLIENT] = "client",
	[STATE_ALLOW_DOMAIN] = "domain",
	[STATE_ALLOW_SENDER] = "sender",
	[STATE_ALLOW_RECIPIENT] = "recipient",
};

#define NALLOW_KINDS	(sizeof(allow_kinds) / sizeof(allow_kinds[0]))

const char *
state_allow_kind_name(enum state_allow_kind kind)
{
	return (size_t)kind < NALLOW_KINDS ? allow_kinds[kind] : "domain";
}

int
state_allow_kind_parse(const char *name, size_t n, enum state_allow_kind *out)
{
	size_t k;

	for (k = 0; k < NALLOW_KINDS; k++)
		if (strlen(allow_kinds[k]) == n &&
		    memcmp(name, allow_kinds[k], n) == 0) {
			*out = (enum state_allow_kind)k;
			return 0;
		}
	return -1;
}

/* The kind a row's text names; an unknown one reads as a domain. */
static enum state_allow_kind
allow_kind_named(const char *name)
{
	enum state_allow_kind k;

	return state_allow_kind_parse(name, strlen(name), &k) == 0 ? k :
	    STATE_ALLOW_DOMAIN;
}

/* The list an allow table's entries are shared as (docs/cluster.md). */
static const char *
allow_list_name(const char *table)
{
	return strcmp(table, "bulk_allow") == 0 ? "bulk" : "greylist";
}

/* An operator's add or delete of (kind, value) in 'table', at 'now':
 * its op row, staged. 0 or -1. */
static int
allow_op_local(struct state *st, const char *table, const char *kind,
    const char *value, int64_t now, int deleted)
{
	sqlite3_stmt *s = st->stmt[S_ALLOW_OP_LOCAL];

	sqlite3_bind_text(s, 1, allow_list_name(table), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	sqlite3_bind_int(s, 5, deleted);
	if (step_done(st, s, "allow_op") == -1)
		return write_failed(st);
	return 0;
}

/*
 * An entry of 'kind' for 'table' (grey_allow, bulk_allow) in canonical
 * form into canon, a client's range into lo and hi. 0, or -2 with a
 * sentence in err when 'value' is not of its kind.
 */
static int
allow_canon(const char *table, enum state_allow_kind kind, const char *value,
    char canon[STATE_ADDR_MAX], uint8_t lo[16], uint8_t hi[16], char *err,
    size_t errsz)
{
	char text[INET6_ADDRSTRLEN];
	unsigned prefix;

	if (kind == STATE_ALLOW_CLIENT) {
		struct range r;

		if (ranges_parse_prefix(value, strlen(value), lo, &prefix) ==
		    -1) {
			snprintf(err, errsz, "'%s' is no address or network "
			    "(ADDR or ADDR/LEN, no host bits past LEN)",
			    value);
			return -2;
		}
		ranges_prefix(lo, prefix, &r);
		memcpy(hi, r.hi, 16);
		ranges_addr_text(lo, text, sizeof(text));
		snprintf(canon, STATE_ADDR_MAX, "%s/%u", text,
		    ranges_is_v4(lo) ? prefix - 96 : prefix);
	} else if (kind == STATE_ALLOW_RECIPIENT &&
	    strcmp(table, "bulk_allow") != 0) {
		snprintf(err, errsz, "'%s' is no entry of this list "
		    "(recipients are allowed for bulk only)", value);
		return -2;
	} else if ((kind != STATE_ALLOW_RECIPIENT &&
	    (kind == STATE_ALLOW_SENDER) != (strchr(value, '@') != NULL)) ||
	    canon_domain(value, canon, STATE_ADDR_MAX) == -1) {
		/* A sender is an address, a domain none; a recipient
		 * either. */
		snprintf(err, errsz, "'%s' is no %s", value,
		    kind == STATE_ALLOW_SENDER || (kind ==
		    STATE_ALLOW_RECIPIENT && strchr(value, '@') != NULL) ?
		    "address (local@domain)" : "domain name");
		return -2;
	}
	return 0;
}

/* (kind, canon) into 'table', added at 'now' if it is new; staged. 1 it
 * was there, 0 it is new, -1 on an error. */
static int
allow_insert(struct state *st, const char *table, enum state_allow_kind kind,
    const char *canon, const uint8_t lo[16], const uint8_t hi[16],
    int64_t now)
{
	sqlite3_stmt *s;
	char sql[160];
	int rc;

	if (begin_write(st) == -1)
		return -1;
	snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO %s "
	    "(kind, value, lo, hi, added) VALUES (?1, ?2, ?3, ?4, ?5)", table);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_error(st, "allow_add");
		return write_failed(st);
	}
	sqlite3_bind_text(s, 1, state_allow_kind_name(kind), -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(s, 2, canon, -1, SQLITE_STATIC);
	if (kind == STATE_ALLOW_CLIENT) {
		sqlite3_bind_blob(s, 3, lo, 16, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, hi, 16, SQLITE_STATIC);
	}
	sqlite3_bind_int64(s, 5, now);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "allow_add");
		return write_failed(st);
	}
	return sqlite3_changes(st->db) == 0 ? 1 : 0;
}

/* An entry into one allow table (grey_allow, bulk_allow): same rows. */
static int
allow_add(struct state *st, const char *table, enum state_allow_kind kind,
    const char *value, int64_t now, char *err, size_t errsz)
{
	char canon[STATE_ADDR_MAX];
	uint8_t lo[16], hi[16];
	int rc;

	if ((rc = allow_canon(table, kind, value, canon, lo, hi, err,
	    errsz)) != 0)
		return rc;
	if ((rc = allow_insert(st, table, kind, canon, lo, hi, now)) == -1 ||
	    allow_op_local(st, table, state_allow_kind_name(kind), canon,
	    now, 0) == -1)
		return -1;
	return rc;
}

int
state_allow_add(struct state *st, enum state_allow_kind kind,
    const char *value, int64_t now, char *err, size_t errsz)
{
	return allow_add(st, "grey_allow", kind, value, now, err, errsz);
}

int
state_bulk_allow_add(struct state *st, enum state_allow_kind kind,
    const char *value, int64_t now, char *err, size_t errsz)
{
	st->bulk_allow_any = -1;
	return allow_add(st, "bulk_allow", kind, value, now, err, errsz);
}

/* --- recipients and customer domains (docs/architecture.md §6) ------------ */

/* A string field as a parameter, never read past its array even when the
 * caller left it unterminated. */
static void
bind_field(sqlite3_stmt *s, int i, const char *field, size_t fieldsz)
{
	sqlite3_bind_text(s, i, field, (int)strnlen(field, fieldsz),
	    SQLITE_STATIC);
}

/*
 * The cached statement for a walk, or, when a callback of a walk on it is
 * walking again (it is mid-step), one of its own for this walk. NULL on a
 * store error (logged). walk_end() with the same 'own'.
 */
static sqlite3_stmt *
walk_begin(struct state *st, enum stmt which, int *own_out, const char *op)
{
	sqlite3_stmt *s = st->stmt[which];

	*own_out = 0;
	if (!sqlite3_stmt_busy(s))
		return s;
	if (sqlite3_prepare_v2(st->db, stmt_sql[which], -1, &s, NULL) !=
	    SQLITE_OK) {
		store_error(st, op);
		return NULL;
	}
	*own_out = 1;
	return s;
}

/* Reset at once, as get_done() does: no read transaction left open. */
static void
walk_end(sqlite3_stmt *s, int own)
{
	if (own) {
		sqlite3_finalize(s);
		return;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* One row of RCPT_COLS. */
static void
rcpt_row(sqlite3_stmt *s, struct state_rcpt *r)
{
	memset(r, 0, sizeof(*r));
	col_text(s, 0, r->addr, sizeof(r->addr));
	col_text(s, 1, r->domain, sizeof(r->domain));
	r->status = sqlite3_column_int(s, 2);
	r->source = sqlite3_column_int(s, 3);
	r->first_seen = sqlite3_column_int64(s, 4);
	r->last_seen = sqlite3_column_int64(s, 5);
	r->expires = sqlite3_column_int64(s, 6);
	col_text(s, 7, r->why, sizeof(r->why));
}

int
state_rcpt_get(struct state *st, const char *addr, int64_t now,
    struct state_rcpt *out)
{
	sqlite3_stmt *s = st->stmt[S_RCPT_GET];
	int rc;

	sqlite3_bind_text(s, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	rc = read_step(s);
	if (rc == SQLITE_ROW)
		rcpt_row(s, out);
	return get_done(st, s, rc, "rcpt_get");
}

int
state_rcpt_put(struct state *st, const struct state_rcpt *r)
{
	sqlite3_stmt *s = st->stmt[S_RCPT_PUT];

	if (begin_write(st) == -1)
		return -1;
	bind_field(s, 1, r->addr, sizeof(r->addr));
	bind_field(s, 2, r->domain, sizeof(r->domain));
	sqlite3_bind_int(s, 3, r->status);
	sqlite3_bind_int(s, 4, r->source);
	sqlite3_bind_int64(s, 5, r->first_seen);
	sqlite3_bind_int64(s, 6, r->last_seen);
	sqlite3_bind_int64(s, 7, r->expires);
	bind_field(s, 8, r->why, sizeof(r->why));
	if (step_done(st, s, "rcpt_put") == -1)
		return write_failed(st);
	return 0;
}

int
state_rcpt_delete(struct state *st, const char *addr)
{
	sqlite3_stmt *s = st->stmt[S_RCPT_DELETE];

	if (begin_write(st) == -1)
		return -1;
	sqlite3_bind_text(s, 1, addr, -1, SQLITE_STATIC);
	if (step_done(st, s, "rcpt_delete") == -1)
		return write_failed(st);
	return sqlite3_changes(st->db);
}

int
state_rcpt_list(struct state *st, const char *domain, int64_t now,
    state_rcpt_fn *fn, void *arg)
{
	struct state_rcpt r;
	sqlite3_stmt *s;
	int own, rc;

	if ((s = walk_begin(st, domain != NULL ? S_RCPT_LIST_DOMAIN :
	    S_RCPT_LIST, &own, "rcpt_list")) == NULL)
		return -1;
	if (domain != NULL)
		sqlite3_bind_text(s, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rcpt_row(s, &r);
		if (fn(&r, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	walk_end(s, own);
	if (rc != SQLITE_DONE) {
		store_error(st, "rcpt_list");
		return -1;
	}
	return 0;
}

int
state_rcpt_count(struct state *st, const char *domain, int64_t now,
    size_t *valid, size_t *invalid)
{
	sqlite3_stmt *s = st->stmt[domain != NULL ? S_RCPT_COUNT_DOMAIN :
	    S_RCPT_COUNT];
	int rc;

	*valid = *invalid = 0;
	if (domain != NULL)
		sqlite3_bind_text(s, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	rc = read_step(s);
	if (rc == SQLITE_ROW) {
		*valid = (size_t)sqlite3_column_int64(s, 0);
		*invalid = (size_t)sqlite3_column_int64(s, 1);
	}
	return get_done(st, s, rc, "rcpt_count") == -1 ? -1 : 0;
}

/* One row of DOMAIN_COLS. */
static void
domain_row(sqlite3_stmt *s, struct state_domain *d)
{
	memset(d, 0, sizeof(*d));
	col_text(s, 0, d->name, sizeof(d->name));
	d->lifecycle = sqlite3_column_int(s, 1);
	d->added = sqlite3_column_int64(s, 2);
	d->changed = sqlite3_column_int64(s, 3);
	d->first_accept = sqlite3_column_int64(s, 4);
	d->last_accept = sqlite3_column_int64(s, 5);
	col_text(s, 6, d->accept_how, sizeof(d->accept_how));
	d->health = sqlite3_column_int(s, 7);
	d->health_changed = sqlite3_column_int64(s, 8);
	col_text(s, 9, d->health_why, sizeof(d->health_why));
	d->last_probe = sqlite3_column_int64(s, 10);
}

int
state_domain_get(struct state *st, const char *name, struct state_domain *out)
{
	sqlite3_stmt *s = st->stmt[S_DOMAIN_GET];
	int rc;

	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = read_step(s);
	if (rc == SQLITE_ROW)
		domain_row(s, out);
	return get_done(st, s, rc, "domain_get");
}

int
state_domain_put(struct state *st, const struct state_domain *d)
{
	sqlite3_stmt *s = st->stmt[S_DOMAIN_PUT];

	if (begin_write(st) == -1)
		return -1;
	bind_field(s, 1, d->name, sizeof(d->name));
	sqlite3_bind_int(s, 2, d->lifecycle);
	sqlite3_bind_int64(s, 3, d->added);
	sqlite3_bind_int64(s, 4, d->changed);
	sqlite3_bind_int64(s, 5, d->first_accept);
	sqlite3_bind_int64(s, 6, d->last_accept);
	bind_field(s, 7, d->accept_how, sizeof(d->accept_how));
	sqlite3_bind_int(s, 8, d->health);
	sqlite3_bind_int64(s, 9, d->health_changed);
	bind_field(s, 10, d->health_why, sizeof(d->health_why));
	sqlite3_bind_int64(s, 11, d->last_probe);
	if (step_done(st, s, "domain_put") == -1)
		return write_failed(st);
	return 0;
}

int
state_domain_list(struct state *st, state_domain_fn *fn, void *arg)
{
	struct state_domain d;
	sqlite3_stmt *s;
	int own, rc;

	if ((s = walk_begin(st, S_DOMAIN_LIST, &own, "domain_list")) == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		domain_row(s, &d);
		if (fn(&d, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	walk_end(s, own);
	if (rc != SQLITE_DONE) {
		store_error(st, "domain_list");
		return -1;
	}
	return 0;
}

/* --- listing and deleting (backmxctl) ------------------------------------ */

int
state_triplet_list(struct state *st, enum state_list_filter filter,
    state_triplet_fn *fn, void *arg)
{
	static const char *const sql[] = {
		[STATE_LIST_ALL] = "",
		[STATE_LIST_PENDING] = " WHERE passed = 0",
		[STATE_LIST_PASSED] = " WHERE passed != 0",
	};
	struct state_triplet t;
	char q[512];
	sqlite3_stmt *s;
	int rc;

	snprintf(q, sizeof(q), "SELECT net, sender, rcpt, first_seen, "
	    "last_seen, passed, expires, tries, passes FROM grey_triplet%s "
	    "ORDER BY net, sender, rcpt", sql[filter]);
	if (sqlite3_prepare_v2(st->db, q, -1, &s, NULL) != SQLITE_OK) {
		store_error(st, "triplet_list");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&t, 0, sizeof(t));
		col_text(s, 0, t.net, sizeof(t.net));
		col_text(s, 1, t.sender, sizeof(t.sender));
		col_text(s, 2, t.rcpt, sizeof(t.rcpt));
		t.first_seen = sqlite3_column_int64(s, 3);
		t.last_seen = sqlite3_column_int64(s, 4);
		t.passed = sqlite3_column_int64(s, 5);
		t.expires = sqlite3_column_int64(s, 6);
		t.tries = (unsigned)sqlite3_column_int64(s, 7);
		t.passes = (unsigned)sqlite3_column_int64(s, 8);
		if (fn(&t, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "triplet_list");
		return -1;
	}
	return 0;
}

int
state_net_list(struct state *st, state_net_fn *fn, void *arg)
{
	struct state_net n;
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "SELECT net, passes, allowed, "
	    "refreshed, expires FROM grey_net ORDER BY net", -1, &s,
	    NULL) != SQLITE_OK) {
		store_error(st, "net_list");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&n, 0, sizeof(n));
		col_text(s, 0, n.net, sizeof(n.net));
		n.passes = (unsigned)sqlite3_column_int64(s, 1);
		n.allowed = sqlite3_column_int64(s, 2);
		n.refreshed = sqlite3_column_int64(s, 3);
		n.expires = sqlite3_column_int64(s, 4);
		if (fn(&n, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "net_list");
		return -1;
	}
	return 0;
}

static int
allow_list(struct state *st, const char *table, state_allow_fn *fn,
    void *arg)
{
	sqlite3_stmt *s;
	char sql[96];
	int rc;

	snprintf(sql, sizeof(sql), "SELECT kind, value, added FROM %s "
	    "ORDER BY kind, value", table);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_error(st, "allow_list");
		return -1;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(s, 0);
		const char *value = (const char *)sqlite3_column_text(s, 1);

		if (kind == NULL || value == NULL)
			continue;
		if (fn(allow_kind_named(kind), value,
		    sqlite3_column_int64(s, 2), arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "allow_list");
		return -1;
	}
	return 0;
}

int
state_allow_list(struct state *st, state_allow_fn *fn, void *arg)
{
	return allow_list(st, "grey_allow", fn, arg);
}

int
state_bulk_allow_list(struct state *st, state_allow_fn *fn, void *arg)
{
	return allow_list(st, "bulk_allow", fn, arg);
}

/* Run one parameterised DELETE; the rows it removed, or -1. */
static int
delete_rows(struct state *st, const char *sql, const char *a, const char *b,
    const char *c)
{
	sqlite3_stmt *s;
	int rc;

	if (begin_write(st) == -1)
		return -1;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_error(st, "delete");
		return write_failed(st);
	}
	sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
	if (b != NULL)
		sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
	if (c != NULL)
		sqlite3_bind_text(s, 3, c, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "delete");
		return write_failed(st);
	}
	return sqlite3_changes(st->db);
}

/* The entries of 'table' whose value is 'value' go, each leaving its
 * tombstone (docs/cluster.md "Allow entries"); the rows deleted, or -1. */
static int
allow_delete_value(struct state *st, const char *table, const char *value,
    int64_t now)
{
	sqlite3_stmt *s;
	char sql[160];
	int rc;

	if (begin_write(st) == -1)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT kind FROM %s WHERE value = ?1",
	    table);
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_error(st, "allow_delete");
		return write_failed(st);
	}
	sqlite3_bind_text(s, 1, value, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(s, 0);

		if (kind != NULL && allow_op_local(st, table, kind, value, now,
		    1) == -1) {
			sqlite3_finalize(s);
			return -1;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		store_error(st, "allow_delete");
		return write_failed(st);
	}
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE value = ?1", table);
	return delete_rows(st, sql, value, NULL, NULL);
}

/* An allow entry, as written or in canonical form. */
static int
allow_delete(struct state *st, const char *table, const char *value,
    int64_t now)
{
	char canon[STATE_ADDR_MAX];
	int n;

	if ((n = allow_delete_value(st, table, value, now)) != 0)
		return n;
	if (canon_domain(value, canon, sizeof(canon)) == 0 &&
	    strcmp(canon, value) != 0)
		return allow_delete_value(st, table, canon, now);
	return 0;
}

int
state_delete(struct state *st, const char *key, const char *sender,
    const char *rcpt, int64_t now)
{
	int n, total;

	if (sender != NULL)
		return delete_rows(st, "DELETE FROM grey_triplet WHERE "
		    "net = ?1 AND sender = ?2 AND rcpt = ?3", key, sender,
		    rcpt);
	/* An allow entry, or a network's record (its auto-allow). */
	if ((total = allow_delete(st, "grey_allow", key, now)) == -1)
		return -1;
	if ((n = delete_rows(st, "DELETE FROM grey_net WHERE net = ?1", key,
	    NULL, NULL)) == -1)
		return -1;
	return total + n;
}

int
state_bulk_allow_delete(struct state *st, const char *value, int64_t now)
{
	st->bulk_allow_any = -1;
	return allow_delete(st, "bulk_allow", value, now);
}

/* --- sharing the allow entries (docs/cluster.md "Allow entries") ---------- */

static const char *const allow_tables[] = {
	[STATE_ALLOWS_GREYLIST] = "grey_allow",
	[STATE_ALLOWS_BULK] = "bulk_allow",
};

int
state_allow_op_wins(const struct state_allow_op *a,
    const struct state_allow_op *b)
{
	/* A tie goes to the delete: an allow entry is a relaxation, and
	 * in doubt it stays off. */
	return a->at > b->at || (a->at == b->at && a->deleted &&
	    !b->deleted);
}

int
state_allow_ops(struct state *st, enum state_allow_list list,
    state_allow_op_fn *fn, void *arg)
{
	sqlite3_stmt *s;
	struct state_allow_op op;
	int rc, own;

	if ((s = walk_begin(st, S_ALLOW_OP_LIST, &own, "allow_ops")) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, allow_list_name(allow_tables[list]), -1,
	    SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(s, 0);
		const char *value = (const char *)sqlite3_column_text(s, 1);

		if (kind == NULL || value == NULL)
			continue;
		memset(&op, 0, sizeof(op));
		op.list = list;
		op.kind = allow_kind_named(kind);
		if (str_copy(op.value, sizeof(op.value), value) == -1)
			continue;	/* cannot be ours */
		op.at = sqlite3_column_int64(s, 2);
		op.deleted = sqlite3_column_int(s, 3) != 0;
		if (fn(&op, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	walk_end(s, own);
	if (rc != SQLITE_DONE) {
		store_error(st, "allow_ops");
		return -1;
	}
	return 0;
}

int
state_allow_apply(struct state *st, const struct state_allow_op *op)
{
	const char *table, *kind, *list;
	char canon[STATE_ADDR_MAX], err[160], sql[96];
	struct state_allow_op mine;
	uint8_t lo[16], hi[16];
	sqlite3_stmt *s;
	int rc;

	if ((unsigned)op->list > STATE_ALLOWS_BULK ||
	    (size_t)op->kind >= NALLOW_KINDS || op->at <= 0)
		return -2;
	table = allow_tables[op->list];
	list = allow_list_name(table);
	kind = state_allow_kind_name(op->kind);
	/* Another node's bytes: only an entry this node would have written
	 * itself, in the same canonical form. */
	if (memchr(op->value, '\0', sizeof(op->value)) == NULL ||
	    allow_canon(table, op->kind, op->value, canon, lo, hi, err,
	    sizeof(err)) != 0 || strcmp(canon, op->value) != 0)
		return -2;
	s = st->stmt[S_ALLOW_OP_GET];
	sqlite3_bind_text(s, 1, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, canon, -1, SQLITE_STATIC);
	if ((rc = read_step(s)) == SQLITE_ROW) {
		mine.at = sqlite3_column_int64(s, 0);
		mine.deleted = sqlite3_column_int(s, 1) != 0;
	}
	if ((rc = get_done(st, s, rc, "allow_op_get")) == -1)
		return -1;
	if (rc == 1 && !state_allow_op_wins(op, &mine))
		return 0;
	if (op->deleted) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE kind = ?1 "
		    "AND value = ?2", table);
		if (delete_rows(st, sql, kind, canon, NULL) == -1)
			return -1;
	} else if (allow_insert(st, table, op->kind, canon, lo, hi,
	    op->at) == -1)
		return -1;
	if (op->list == STATE_ALLOWS_BULK)
		st->bulk_allow_any = -1;
	s = st->stmt[S_ALLOW_OP_PUT];
	sqlite3_bind_text(s, 1, list, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, canon, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, op->at);
	sqlite3_bind_int(s, 5, op->deleted != 0);
	if (step_done(st, s, "allow_op_put") == -1)
		return write_failed(st);
	return 1;
}

/* --- the bulk rows' cache ------------------------------------------------ */

/*
 * The last bulk_digest and bulk_rcpt rows this connection wrote or read,
 * so that a copy of a message seen a moment ago (every retry; every copy
 * of a campaign once it is remembered) is judged without a statement.
 * Reading a message's rows through SQLite took a write transaction's start
 * and end and two statements, ~10 us of the detector's ~25 us on a 1 KB
 * message (docs/bulk.md §5).
 *
 * It can answer for the store because nothing else changes these rows:
 * this daemon's loop connection is their only writer (backmxctl's bulk
 * commands ask the daemon; the checkpoint worker moves pages, not rows).
 * Every write here also writes its slot; what might have left the
 * database without passing here empties the cache: a failed write or
 * commit (the transaction rolls back), a forget (its digest's slots), a
 * sweep (the slots it may have deleted). Direct-mapped and fixed in size:
 * a slot taken by another key is a miss, and SQLite answers.
 */
#define BCACHE_ROWS	1024	/* digest rows: 424 KiB */
#define BCACHE_RCPTS	4096	/* recipient rows: 384 KiB */

struct bcache_rcpt {
	char		digest[sizeof(((struct state_bulk *)0)->digest)];
	char		rcpt[34];
	int64_t		gen;
	int64_t		expires;
};

struct bulk_cache {
	struct state_bulk	row[BCACHE_ROWS];	/* digest[0] 0: empty */
	struct bcache_rcpt	rcpt[BCACHE_RCPTS];	/* digest[0] 0: empty */
};

/* A key's slot: keys are hex digests or hashes, so their first octets
 * are already uniform; the multiply spreads them over the bits kept. */
static size_t
bcache_slot(const char *a, const char *b, size_t size)
{
	uint64_t x = 0, y = 0;

	memcpy(&x, a, strnlen(a, 8));
	if (b != NULL)
		memcpy(&y, b, strnlen(b, 8));
	x = (x ^ (y * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
	return (size_t)(x >> 32) & (size - 1);
}

static struct bulk_cache *
bcache(struct state *st)
{
	if (st->bcache == NULL)
		st->bcache = xcalloc(1, sizeof(*st->bcache));
	return st->bcache;
}

static void
bulk_cache_clear(struct state *st)
{
	if (st->bcache != NULL)
		memset(st->bcache, 0, sizeof(*st->bcache));
}

static void
bcache_put_row(struct state *st, const struct state_bulk *b)
{
	struct bulk_cache *c = bcache(st);

	c->row[bcache_slot(b->digest, NULL, BCACHE_ROWS)] = *b;
}

/* The cached row of 'digest': 1 and *out, or 0 when it is not there. */
static int
bcache_get_row(struct state *st, const char *digest, struct state_bulk *out)
{
	struct bulk_cache *c = bcache(st);
	struct state_bulk *b = &c->row[bcache_slot(digest, NULL, BCACHE_ROWS)];

	if (b->digest[0] == '\0' || strcmp(b->digest, digest) != 0)
		return 0;
	*out = *b;
	return 1;
}

static void
bcache_put_rcpt(struct state *st, const char *digest, const char *rcpt,
    int64_t gen, int64_t expires)
{
	struct bulk_cache *c = bcache(st);
	struct bcache_rcpt *r = &c->rcpt[bcache_slot(digest, rcpt,
	    BCACHE_RCPTS)];

	str_copy(r->digest, sizeof(r->digest), digest);
	str_copy(r->rcpt, sizeof(r->rcpt), rcpt);
	r->gen = gen;
	r->expires = expires;
}

/* The cached recipient row: 1 with *gen and *expires, or 0. */
static int
bcache_get_rcpt(struct state *st, const char *digest, const char *rcpt,
    int64_t *gen, int64_t *expires)
{
	struct bulk_cache *c = bcache(st);
	struct bcache_rcpt *r = &c->rcpt[bcache_slot(digest, rcpt,
	    BCACHE_RCPTS)];

	if (r->digest[0] == '\0' || strcmp(r->digest, digest) != 0 ||
	    strcmp(r->rcpt, rcpt) != 0)
		return 0;
	*gen = r->gen;
	*expires = r->expires;
	return 1;
}

/* A forget: the digest's row and its recipients' slots go. */
static void
bcache_drop_digest(struct state *st, const char *digest)
{
	struct bulk_cache *c = st->bcache;
	size_t i;

	if (c == NULL)
		return;
	i = bcache_slot(digest, NULL, BCACHE_ROWS);
	if (strcmp(c->row[i].digest, digest) == 0)
		memset(&c->row[i], 0, sizeof(c->row[i]));
	for (i = 0; i < BCACHE_RCPTS; i++)
		if (strcmp(c->rcpt[i].digest, digest) == 0)
			memset(&c->rcpt[i], 0, sizeof(c->rcpt[i]));
}

/* A sweep deletes rows that expired before 'now': so do their slots. */
static void
bcache_drop_expired(struct state *st, int64_t now)
{
	struct bulk_cache *c = st->bcache;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < BCACHE_ROWS; i++)
		if (c->row[i].digest[0] != '\0' && c->row[i].expires < now)
			memset(&c->row[i], 0, sizeof(c->row[i]));
	for (i = 0; i < BCACHE_RCPTS; i++)
		if (c->rcpt[i].digest[0] != '\0' && c->rcpt[i].expires < now)
			memset(&c->rcpt[i], 0, sizeof(c->rcpt[i]));
}

/* --- bulk digests (docs/bulk.md §3) ---------------------------------------- */

static void
bulk_row(sqlite3_stmt *s, struct state_bulk *b)
{
	memset(b, 0, sizeof(*b));
	col_text(s, 0, b->digest, sizeof(b->digest));
	b->kind = sqlite3_column_int(s, 1);
	b->count = (unsigned)sqlite3_column_int64(s, 2);
	b->first_seen = sqlite3_column_int64(s, 3);
	b->last_seen = sqlite3_column_int64(s, 4);
	b->bulk_until = sqlite3_column_int64(s, 5);
	b->expires = sqlite3_column_int64(s, 6);
	col_text(s, 7, b->subject, sizeof(b->subject));
	b->has_sender = sqlite3_column_type(s, 8) != SQLITE_NULL;
	col_text(s, 8, b->sender, sizeof(b->sender));
}

/* A recipient row of generation 'gen' living until 'expires', for one of
 * 'want': state_bulk_rcpt_seen()'s answer. A row of another generation is
 * a digest that expired and came back: it counts again. */
static int
rcpt_seen_of(int64_t gen, int64_t expires, int64_t want, int64_t fresh)
{
	return gen != want ? 0 : expires >= fresh ? 2 : 1;
}

/* The slot of 'digest' among digests[0..n-1], or -1. */
static int
bulk_slot(const char *const *digests, size_t n, const char *digest)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (digests[i] != NULL && strcmp(digests[i], digest) == 0)
			return (int)i;
	return -1;
}

/* Bind digests[0..n-1] to ?1..?STATE_BULK_MANY; the rest stay NULL. */
static void
bind_slots(sqlite3_stmt *s, const char *const *digests, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (digests[i] != NULL)
			sqlite3_bind_text(s, (int)i + 1, digests[i], -1,
			    SQLITE_STATIC);
}

int
state_bulk_get_many(struct state *st, const char *const *digests, size_t n,
    int64_t now, struct state_bulk *out, int *found)
{
	sqlite3_stmt *s = st->stmt[S_BULK_GET_MANY];
	const char *miss[STATE_BULK_MANY];
	struct state_bulk b;
	size_t k, nmiss = 0;
	int rc, i;

	if (n > STATE_BULK_MANY)
		panic("state_bulk_get_many: %zu digests", n);
	memset(found, 0, n * sizeof(*found));
	for (k = 0; k < n; k++) {
		miss[k] = NULL;
		if (digests[k] == NULL)
			continue;
		if (bcache_get_row(st, digests[k], &b)) {
			/* As the statement's "expires > now" would. */
			if (b.expires > now) {
				out[k] = b;
				found[k] = 1;
			}
			continue;
		}
		miss[k] = digests[k];
		nmiss++;
	}
	if (nmiss == 0)
		return 0;
	/* The message's writes follow at once: its reads join the turn's
	 * transaction instead of each opening a read transaction of its
	 * own (docs/bulk.md §5). */
	if (begin_write(st) == -1)
		return -1;
	bind_slots(s, miss, n);
	sqlite3_bind_int64(s, 11, now);
	while ((rc = read_step(s)) == SQLITE_ROW) {
		bulk_row(s, &b);
		if ((i = bulk_slot(miss, n, b.digest)) >= 0) {
			out[i] = b;
			found[i] = 1;
			bcache_put_row(st, &b);
		}
	}
	return get_done(st, s, rc, "bulk_get") == -1 ? -1 : 0;
}

int
state_bulk_get(struct state *st, const char *digest, int64_t now,
    struct state_bulk *out)
{
	int found;

	if (state_bulk_get_many(st, &digest, 1, now, out, &found) == -1)
		return -1;
	return found;
}

int
state_bulk_put_many(struct state *st, const struct state_bulk *rows,
    size_t n)
{
	sqlite3_stmt *s = st->stmt[S_BULK_PUT_MANY];
	const struct state_bulk *b;
	size_t i;
	int p;

	if (n > STATE_BULK_MANY)
		panic("state_bulk_put_many: %zu rows", n);
	if (begin_write(st) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		b = &rows[i];
		p = (int)i * 9;
		bind_field(s, p + 1, b->digest, sizeof(b->digest));
		sqlite3_bind_int(s, p + 2, b->kind);
		sqlite3_bind_int64(s, p + 3, b->count);
		sqlite3_bind_int64(s, p + 4, b->first_seen);
		sqlite3_bind_int64(s, p + 5, b->last_seen);
		sqlite3_bind_int64(s, p + 6, b->bulk_until);
		sqlite3_bind_int64(s, p + 7, b->expires);
		bind_field(s, p + 8, b->subject, sizeof(b->subject));
		if (b->has_sender)
			bind_field(s, p + 9, b->sender, sizeof(b->sender));
		else
			sqlite3_bind_null(s, p + 9);
	}
	if (step_done(st, s, "bulk_put") == -1)
		return write_failed(st);
	for (i = 0; i < n; i++)
		bcache_put_row(st, &rows[i]);
	return 0;
}

int
state_bulk_put(struct state *st, const struct state_bulk *b)
{
	return state_bulk_put_many(st, b, 1);
}

int
state_bulk_rcpt_seen(struct state *st, const char *rcpt,
    const char *const *digests, const int64_t *gens, size_t n,
    int64_t fresh, int *seen)
{
	sqlite3_stmt *s = st->stmt[S_BULK_RCPT_SEEN];
	const char *miss[STATE_BULK_MANY];
	const unsigned char *d;
	int64_t gen, expires;
	size_t k, nmiss = 0;
	int rc, i;

	if (n > STATE_BULK_MANY)
		panic("state_bulk_rcpt_seen: %zu digests", n);
	memset(seen, 0, n * sizeof(*seen));
	for (k = 0; k < n; k++) {
		miss[k] = NULL;
		if (digests[k] == NULL)
			continue;
		if (bcache_get_rcpt(st, digests[k], rcpt, &gen, &expires)) {
			seen[k] = rcpt_seen_of(gen, expires, gens[k], fresh);
			continue;
		}
		miss[k] = digests[k];
		nmiss++;
	}
	if (nmiss == 0)
		return 0;
	bind_slots(s, miss, n);
	sqlite3_bind_text(s, 11, rcpt, -1, SQLITE_STATIC);
	while ((rc = read_step(s)) == SQLITE_ROW) {
		d = sqlite3_column_text(s, 0);
		if (d == NULL || (i = bulk_slot(miss, n, (const char *)d)) < 0)
			continue;
		gen = sqlite3_column_int64(s, 1);
		expires = sqlite3_column_int64(s, 2);
		bcache_put_rcpt(st, miss[i], rcpt, gen, expires);
		seen[i] = rcpt_seen_of(gen, expires, gens[i], fresh);
	}
	return get_done(st, s, rc, "bulk_rcpt_get") == -1 ? -1 : 0;
}

int
state_bulk_rcpt_put_many(struct state *st, const char *rcpt,
    const char *const *digests, const int64_t *gens, size_t n,
    int64_t expires)
{
	sqlite3_stmt *s = st->stmt[S_BULK_RCPT_PUT_MANY];
	size_t i;

	if (n > STATE_BULK_MANY)
		panic("state_bulk_rcpt_put_many: %zu digests", n);
	if (begin_write(st) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (digests[i] == NULL)
			continue;
		sqlite3_bind_text(s, 2 * (int)i + 1, digests[i], -1,
		    SQLITE_STATIC);
		sqlite3_bind_int64(s, 2 * (int)i + 2, gens[i]);
	}
	sqlite3_bind_text(s, 21, rcpt, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 22, expires);
	if (step_done(st, s, "bulk_rcpt_put") == -1)
		return write_failed(st);
	for (i = 0; i < n; i++)
		if (digests[i] != NULL)
			bcache_put_rcpt(st, digests[i], rcpt, gens[i],
			    expires);
	return 0;
}

int
state_bulk_rcpt_add(struct state *st, const char *digest, int64_t gen,
    const char *rcpt, int64_t expires)
{
	int seen;

	if (state_bulk_rcpt_seen(st, rcpt, &digest, &gen, 1, INT64_MAX,
	    &seen) == -1 ||
	    state_bulk_rcpt_put_many(st, rcpt, &digest, &gen, 1,
	    expires) == -1)
		return -1;
	return !seen;
}

int
state_bulk_list(struct state *st, unsigned min_count, int64_t now,
    state_bulk_fn *fn, void *arg)
{
	struct state_bulk b;
	sqlite3_stmt *s;
	int own, rc;

	if ((s = walk_begin(st, S_BULK_LIST, &own, "bulk_list")) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, min_count);
	sqlite3_bind_int64(s, 2, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		bulk_row(s, &b);
		if (fn(&b, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	walk_end(s, own);
	if (rc != SQLITE_DONE) {
		store_error(st, "bulk_list");
		return -1;
	}
	return 0;
}

int
state_bulk_forget(struct state *st, const char *digest)
{
	sqlite3_stmt *s = st->stmt[S_BULK_FORGET];
	int n;

	bcache_drop_digest(st, digest);
	if (begin_write(st) == -1)
		return -1;
	sqlite3_bind_text(s, 1, digest, -1, SQLITE_STATIC);
	if (step_done(st, s, "bulk_forget") == -1)
		return write_failed(st);
	n = sqlite3_changes(st->db);
	s = st->stmt[S_BULK_FORGET_RCPT];
	sqlite3_bind_text(s, 1, digest, -1, SQLITE_STATIC);
	if (step_done(st, s, "bulk_forget") == -1)
		return write_failed(st);
	return n;
}

/* --- expiry -------------------------------------------------------------- */

int
state_sweep(struct state *st, int64_t now, unsigned batch,
    size_t *deleted_out)
{
	static const enum stmt which[] = { S_SWEEP_TRIPLET, S_SWEEP_NET,
	    S_SWEEP_RCPT, S_SWEEP_BULK, S_SWEEP_BULK_RCPT };
	int own = !st->admin && !st->in_txn;
	size_t i;

	*deleted_out = 0;
	bcache_drop_expired(st, now);
	/* Its own short transaction, unless this turn's is open: then it
	 * joins that one and commits with it. */
	if (own && step_done(st, st->stmt[S_BEGIN], "sweep_begin") == -1)
		return -1;
	for (i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		sqlite3_stmt *s = st->stmt[which[i]];

		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_int64(s, 2, batch);
		if (step_done(st, s, "sweep") == -1) {
			if (own && !sqlite3_get_autocommit(st->db))
				step_done(st, st->stmt[S_ROLLBACK],
				    "rollback");
			else if (!own)
				write_failed(st);
			return -1;
		}
		*deleted_out += (size_t)sqlite3_changes(st->db);
	}
	if (own && step_done(st, st->stmt[S_COMMIT], "sweep_commit") == -1) {
		if (!sqlite3_get_autocommit(st->db))
			step_done(st, st->stmt[S_ROLLBACK], "rollback");
		return -1;
	}
	return 0;
}

static void
sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct state *st = arg;
	struct timeval tv = { st->conf.sweep_interval, 0 };
	size_t n;

	if (state_sweep(st, (int64_t)time(NULL), st->conf.sweep_batch,
	    &n) == 0) {
		if (n > 0)
			log_debug("event=state_sweep deleted=%zu", n);
		/* A full batch: more may wait. Go on next turn, after
		 * whatever else is due, never in one long transaction. */
		if (n >= st->conf.sweep_batch) {
			tv.tv_sec = 0;
			tv.tv_usec = 0;
		}
	}
	evtimer_add(st->ev_sweep, &tv);
}
