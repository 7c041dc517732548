/*
 * qdb: the queue database and its writer thread (group commit).
 *
 * Durability protocol, for one new message (docs/queue.md):
 *   1. the body streamed into memory or a temporary file in tmp/ (body.c);
 *   2. writer: a body over queue_inline_max is fsync'd and renamed into
 *      big/ (or written there and fsync'd), then big/ itself is fsync'd —
 *      once for every such body of the group; a body over QDB_LOG_MIN (and
 *      not over queue_inline_max) is appended to the body log, log/SEG,
 *      and the log is fdatasync'd once for the group (log/ too when the
 *      segment is new);
 *   3. writer: one transaction inserts every waiting message's rows and
 *      COMMITs (WAL, synchronous=FULL: the commit is on disk when it
 *      returns);
 *   4. the loop hears QDB_OK and only then the session says 250.
 * A crash before 3 leaves at most a big/ file, or bytes in the log, that no
 * row names: removed (files) or punched out (log ranges) at the next start;
 * their senders never got a 250. A failure in 2 or 3 removes the big/ file
 * at once and answers NOSPACE or IOERR: no row, no file.
 *
 * Why a log (docs/queue.md, "Where a body goes"): a body in the row is
 * written twice, to the WAL and again at checkpoint; a file per body costs
 * an fsync per body. The log writes each byte once with one sync per group.
 *
 * Exposed to: the disk. Never to peer bytes as structure: every envelope
 * field is bound into its own column.
 */
#include "qdb.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "body.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

#define QDB_WRITER_BUSY_MS	10000
#define QDB_READER_BUSY_MS	1000
/* Bodies over this (and up to queue_inline_max) go to the body log: a few
 * KB is where the row's second copy starts to cost more than a second
 * sync per group (docs/queue.md, "Where a body goes"). */
#define QDB_LOG_MIN		(16 * 1024)
/* A segment takes no new group past this size, so delivered mail frees
 * whole files; holes are punched for each message before that. */
#define QDB_LOG_SEGMENT_MAX	(64 * 1024 * 1024)
#define QDB_LOG_NAME_MAX	32

enum job_kind { JOB_INSERT, JOB_UPDATE };

struct qdb_job {
	struct qdb_job		*next;
	enum job_kind		 kind;
	struct envelope		 env;		/* JOB_INSERT */
	struct body		*body;
	struct qdb_update	*upd;		/* JOB_UPDATE */
	char			 id[ENVELOPE_ID_MAX];
	qdb_done_cb		*done;
	void			*arg;
	int			 cancelled;
	enum qdb_result		 result;
	/* writer-private */
	char			 big[64];	/* our file in big/, to undo */
	int			 big_ours;	/* created by this job */
	const unsigned char	*blob;
	size_t			 bloblen;
	unsigned char		*blobmem;	/* read from a spilled file */
	char			 unlink_after[64]; /* big file of a delete */
	int			 in_log;	/* body appended to the log */
	uint64_t		 log_off;
	char			 punch_file[QDB_LOG_NAME_MAX]; /* log range of */
	uint64_t		 punch_off;	/* a delete, to free */
	uint64_t		 punch_len;
	int			 failed;
};

struct qdb {
	char			 spool[PATH_MAX];
	char			 path[PATH_MAX + 16];
	char			 bigdir[PATH_MAX + 8];
	char			 tmpdir[PATH_MAX + 8];
	char			 logdir[PATH_MAX + 8];
	uint64_t		 inline_max;
	/* the body log's open segment: writer thread only */
	int			 logfd;		/* -1: none open */
	char			 logname[QDB_LOG_NAME_MAX];
	uint64_t		 logend;
	unsigned long long	 logseq;	/* last segment number used */
	sqlite3			*rdb;		/* loop thread: reads */
	/* rdb's statements for qdb_load(), prepared once (load_stmt()):
	 * a drain loads every message, and preparing took a third of its
	 * CPU (docs/queue.md "Draining"). Left reset between uses, so no
	 * read transaction stays open; finalized by qdb_close(). */
	sqlite3_stmt		*st_load, *st_rcpts, *st_exists;
	sqlite3			*wdb;		/* writer thread only */
	int			 readonly;

	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct qdb_job		*todo;
	struct qdb_job		**todo_tail;
	int			 stopping;
	int			 running;
	int			 pipe[2];	/* writer -> loop */
	struct event		*ev;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS message ("
    " id TEXT PRIMARY KEY,"
    " sender TEXT NOT NULL,"		/* for people: local@domain or "" */
    " sender_local TEXT NOT NULL,"
    " sender_domain TEXT NOT NULL,"
    " sender_flags INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " param_size INTEGER,"		/* MAIL SIZE=, NULL if none */
    " param_body INTEGER NOT NULL,"	/* 0 none, 1 7BIT, 2 8BITMIME */
    " param_smtputf8 INTEGER NOT NULL,"
    " param_ret INTEGER NOT NULL,"	/* 0 none, 1 FULL, 2 HDRS */
    " param_envid TEXT NOT NULL,"
    " helo TEXT NOT NULL,"
    " client_addr TEXT NOT NULL,"
    " client_name TEXT NOT NULL,"
    " proto TEXT NOT NULL,"
    " arrival INTEGER NOT NULL,"
    " data_flags INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt INTEGER NOT NULL,"
    " last_attempt INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " hold INTEGER NOT NULL DEFAULT 0,"
    " warned INTEGER NOT NULL DEFAULT 0,"
    " is_dsn INTEGER NOT NULL DEFAULT 0,"
    " big_file TEXT,"			/* name in big/, NULL if inline */
    " body BLOB,"			/* NULL if in big/ or the log */
    " log_file TEXT,"			/* segment in log/, or NULL */
    " log_off INTEGER"			/* the body's offset there */
    ");"
    "CREATE TABLE IF NOT EXISTS recipient ("
    " message_id TEXT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " address TEXT NOT NULL,"
    " local TEXT NOT NULL,"
    " domain TEXT NOT NULL,"
    " addr_flags INTEGER NOT NULL,"
    " notify INTEGER NOT NULL,"
    " orcpt_type TEXT NOT NULL,"
    " orcpt TEXT NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 0," /* 0 pending 1 sent 2 bounced */
    " last_code INTEGER NOT NULL DEFAULT 0,"
    " last_reply TEXT NOT NULL DEFAULT '',"
    " updated INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (message_id, idx)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS attempt ("
    " message_id TEXT NOT NULL,"
    " time INTEGER NOT NULL,"
    " relay TEXT NOT NULL,"
    " result TEXT NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS attempt_message ON attempt(message_id);"
    /* The start-up scan and queue list go in arrival order: read down
     * this index, not sorted whole in memory (a million rows). */
    "CREATE INDEX IF NOT EXISTS message_arrival ON message(arrival, id);";

/* --- small helpers ------------------------------------------------------ */

static int
mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	char *p;

	if (str_copy(path, sizeof(path), dir) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int
fsync_dir(const char *dir)
{
	int fd, rc, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static enum qdb_result
errno_result(int e)
{
	return (e == ENOSPC || e == EDQUOT) ? QDB_NOSPACE : QDB_IOERR;
}

static enum qdb_result
sqlite_result(int rc)
{
	return (rc & 0xff) == SQLITE_FULL ? QDB_NOSPACE : QDB_IOERR;
}

static int
addr_flags(const struct mailaddr *a)
{
	return (a->is_null ? 1 : 0) | (a->is_literal ? 2 : 0) |
	    (a->is_quoted ? 4 : 0) | (a->has_route_chars ? 8 : 0) |
	    (a->is_utf8 ? 16 : 0);
}

static void
addr_from_columns(struct mailaddr *a, const unsigned char *local,
    const unsigned char *domain, int flags)
{
	memset(a, 0, sizeof(*a));
	str_copy(a->local, sizeof(a->local), local ? (const char *)local : "");
	str_copy(a->domain, sizeof(a->domain),
	    domain ? (const char *)domain : "");
	a->is_null = (flags & 1) != 0;
	a->is_literal = (flags & 2) != 0;
	a->is_quoted = (flags & 4) != 0;
	a->has_route_chars = (flags & 8) != 0;
	a->is_utf8 = (flags & 16) != 0;
}

static void
col_text(sqlite3_stmt *st, int i, char *out, size_t outsz)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	str_copy(out, outsz, t ? (const char *)t : "");
}

/* Run SQL without results; 0 or the SQLite error code. */
static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* --- writer: one message's rows ----------------------------------------- */

/*
 * A writer statement kept prepared from one message to the next: parsing
 * the two INSERTs again for every message was 45 % of backmxd's
 * user-space instructions per 1 KB message (callgrind; bench/README.md
 * "CPU per message"); so was parsing the outcome's UPDATEs and DELETEs
 * for every message of a big drain (run(), docs/queue.md "Draining a big
 * queue"). Found by its SQL among the connection's own statements (about
 * fifteen: the others are finalized after use), reset and
 * unbound; left reset after use (insert_rows()), finalized by
 * qdb_close().
 */
static int
prepare_kept(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;

	while ((st = sqlite3_next_stmt(db, st)) != NULL)
		if (!sqlite3_stmt_busy(st) && strcmp(sqlite3_sql(st), sql) == 0) {
			sqlite3_clear_bindings(st);
			*out = st;
			return SQLITE_OK;
		}
	return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out,
	    NULL);
}

/*
 * The body is in big/ (big), in the log (logfile at logoff) or the blob:
 * one of them, the others NULL.
 */
static int
insert_rows(sqlite3 *db, const struct envelope *e, uint64_t size,
    const char *big, const char *logfile, uint64_t logoff, const void *blob,
    size_t bloblen, int is_dsn)
{
	static const char sql_msg[] =
	    "INSERT INTO message (id, sender, sender_local, sender_domain,"
	    " sender_flags, size, param_size, param_body, param_smtputf8,"
	    " param_ret, param_envid, helo, client_addr, client_name, proto,"
	    " arrival, data_flags, next_attempt, is_dsn, big_file, body,"
	    " log_file, log_off)"
	    " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,"
	    "?17,?18,?19,?20,?21,?22,?23)";
	static const char sql_rcpt[] =
	    "INSERT INTO recipient (message_id, idx, address, local, domain,"
	    " addr_flags, notify, orcpt_type, orcpt) VALUES"
	    " (?1,?2,?3,?4,?5,?6,?7,?8,?9)";
	char addr[ADDR_PATH_MAX + 1];
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	if ((rc = prepare_kept(db, sql_msg, &st)) != SQLITE_OK)
		return rc;
	addr_format(&e->sender, addr, sizeof(addr));
	sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, addr, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, e->sender.local, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->sender.domain, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, addr_flags(&e->sender));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)size);
	if (e->params.has_size)
		sqlite3_bind_int64(st, 7, (sqlite3_int64)e->params.size);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int(st, 8, (int)e->params.body);
	sqlite3_bind_int(st, 9, e->params.smtputf8);
	sqlite3_bind_int(st, 10, (int)e->params.ret);
	sqlite3_bind_text(st, 11, e->params.envid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, e->helo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, e->client_addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, e->client_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 15, e->proto, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, (sqlite3_int64)e->arrival);
	sqlite3_bind_int(st, 17, e->data_flags);
	sqlite3_bind_int64(st, 18, (sqlite3_int64)e->arrival);
	sqlite3_bind_int(st, 19, is_dsn);
	if (big != NULL && big[0] != '\0') {
		sqlite3_bind_text(st, 20, big, -1, SQLITE_STATIC);
		sqlite3_bind_null(st, 21);
	} else if (logfile != NULL) {
		sqlite3_bind_null(st, 20);
		sqlite3_bind_null(st, 21);
		sqlite3_bind_text(st, 22, logfile, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 23, (sqlite3_int64)logoff);
	} else {
		sqlite3_bind_null(st, 20);
		sqlite3_bind_blob64(st, 21, bloblen ? blob : "",
		    (sqlite3_uint64)bloblen, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;

	if ((rc = prepare_kept(db, sql_rcpt, &st)) != SQLITE_OK)
		return rc;
	for (i = 0; i < e->nrcpt; i++) {
		const struct envelope_rcpt *r = &e->rcpts[i];

		addr_format(&r->addr, addr, sizeof(addr));
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, addr, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, r->addr.local, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->addr.domain, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 6, addr_flags(&r->addr));
		sqlite3_bind_int(st, 7, r->params.notify);
		sqlite3_bind_text(st, 8, r->params.orcpt_type, -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(st, 9, r->params.orcpt, -1, SQLITE_STATIC);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			break;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One step of a statement with text and integer arguments: "t" binds a
 * const char *, "i" a sqlite3_int64. Returns the step's code. */
static int
run(sqlite3 *db, const char *sql, int *changes_out, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int i, rc;

	if ((rc = prepare_kept(db, sql, &st)) != SQLITE_OK)
		return rc;
	va_start(ap, types);
	for (i = 0; types[i] != '\0'; i++) {
		if (types[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *),
			    -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(st, i + 1,
			    va_arg(ap, sqlite3_int64));
	}
	va_end(ap);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (changes_out != NULL)
		*changes_out = sqlite3_changes(db);
	return rc;
}

/* Apply an update inside the open transaction. SQLITE_OK, or an error
 * code; *missing when the message is not there. */
static int
update_rows(struct qdb *q, struct qdb_job *j, int *missing)
{
	struct qdb_update *u = j->upd;
	sqlite3 *db = q->wdb;
	int rc, n = 0;
	size_t i;
	time_t now = time(NULL);

	*missing = 0;
	rc = run(db, "UPDATE message SET id = id WHERE id = ?1", &n, "t",
	    u->id);
	if (rc != SQLITE_DONE)
		return rc;
	if (n == 0) {
		*missing = 1;
		return SQLITE_OK;
	}
	if (u->set & QDB_SET_ATTEMPT) {
		rc = run(db, "UPDATE message SET attempts = ?2, next_attempt = "
		    "?3, last_attempt = ?4, last_error = ?5 WHERE id = ?1",
		    NULL, "tiiit", u->id, (sqlite3_int64)u->attempts,
		    (sqlite3_int64)u->next_attempt,
		    (sqlite3_int64)u->last_attempt, u->last_error);
		if (rc != SQLITE_DONE)
			return rc;
		rc = run(db, "INSERT INTO attempt (message_id, time, relay, "
		    "result) VALUES (?1, ?2, ?3, ?4)", NULL, "tits", u->id,
		    (sqlite3_int64)u->last_attempt, u->relay, u->last_error);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (u->set & QDB_SET_NEXT) {
		rc = run(db, "UPDATE message SET next_attempt = ?2 WHERE id = "
		    "?1", NULL, "ti", u->id, (sqlite3_int64)u->next_attempt);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (u->set & QDB_SET_HOLD) {
		rc = run(db, "UPDATE message SET hold = ?2 WHERE id = ?1", NULL,
		    "ti", u->id, (sqlite3_int64)u->hold);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (u->set & QDB_SET_WARNED) {
		rc = run(db, "UPDATE message SET warned = ?2 WHERE id = ?1",
		    NULL, "ti", u->id, (sqlite3_int64)u->warned);
		if (rc != SQLITE_DONE)
			return rc;
	}
	for (i = 0; i < u->nchanges; i++) {
		const struct qdb_rcpt_change *c = &u->changes[i];

		rc = run(db, "UPDATE recipient SET status = ?3, last_code = ?4,"
		    " last_reply = ?5, updated = ?6 WHERE message_id = ?1 AND "
		    "idx = ?2", NULL, "tiiiti", u->id, (sqlite3_int64)c->idx,
		    (sqlite3_int64)c->status, (sqlite3_int64)c->code, c->reply,
		    (sqlite3_int64)now);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (u->dsn_env != NULL) {
		rc = insert_rows(db, u->dsn_env, u->dsn_bodylen, NULL, NULL, 0,
		    u->dsn_body, u->dsn_bodylen, 1);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (u->set & QDB_DELETE) {
		sqlite3_stmt *st;

		rc = prepare_kept(db, "SELECT big_file, log_file, log_off, "
		    "size FROM message WHERE id = ?1", &st);
		if (rc != SQLITE_OK)
			return rc;
		sqlite3_bind_text(st, 1, u->id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			col_text(st, 0, j->unlink_after,
			    sizeof(j->unlink_after));
			col_text(st, 1, j->punch_file, sizeof(j->punch_file));
			j->punch_off = (uint64_t)sqlite3_column_int64(st, 2);
			j->punch_len = (uint64_t)sqlite3_column_int64(st, 3);
		}
		sqlite3_reset(st);
		if ((rc = run(db, "DELETE FROM recipient WHERE message_id = ?1",
		    NULL, "t", u->id)) != SQLITE_DONE ||
		    (rc = run(db, "DELETE FROM attempt WHERE message_id = ?1",
		    NULL, "t", u->id)) != SQLITE_DONE ||
		    (rc = run(db, "DELETE FROM message WHERE id = ?1", NULL,
		    "t", u->id)) != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

/* --- writer: preparing bodies ------------------------------------------- */

/*
 * Before the transaction: put the body where its row will say it is. A big
 * body ends up as big/ID, its bytes fsync'd; the caller fsyncs big/ once
 * for the group. A small one becomes j->blob. Returns 0, or -1 with
 * j->result set and nothing left on disk.
 */
static int
prepare_body(struct qdb *q, struct qdb_job *j)
{
	char path[PATH_MAX + 100];
	uint64_t size = body_size(j->body);
	const void *mem;
	size_t len;
	int fd, saved;

	if (body_error(j->body) != 0) {
		j->result = errno_result(body_error(j->body));
		return -1;
	}
	mem = body_mem(j->body, &len);
	if (size <= q->inline_max) {
		if (mem != NULL) {
			j->blob = mem;
			j->bloblen = len;
			goto small;
		}
		/* Spilled (smtpd_body_buffer < queue_inline_max): read it
		 * back; it is small by definition. */
		j->blobmem = xmalloc(size ? (size_t)size : 1);
		if (body_read(j->body, 0, j->blobmem, (size_t)size) !=
		    (long)size) {
			j->result = QDB_IOERR;
			return -1;
		}
		j->blob = j->blobmem;
		j->bloblen = (size_t)size;
small:
		/* Over QDB_LOG_MIN the blob goes to the body log instead
		 * of the row (log_append()). */
		j->in_log = size > QDB_LOG_MIN;
		return 0;
	}

	snprintf(j->big, sizeof(j->big), "%s", j->env.id);
	snprintf(path, sizeof(path), "%s/%s", q->bigdir, j->big);
	if (mem == NULL) {
		/* The bytes are in tmp/ on the same file system: make them
		 * durable, then give them their final name. */
		if (fsync(body_fd(j->body)) == -1)
			goto fail;
		if (rename(body_take_file(j->body), path) == -1)
			goto fail;
		j->big_ours = 1;
		return 0;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		goto fail;
	j->big_ours = 1;
	if (write_all(fd, mem, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	close(fd);
	return 0;
fail:
	saved = errno;
	if (j->big_ours)
		unlink(path);
	j->big_ours = 0;
	j->big[0] = '\0';
	log_warn("queue=%s event=queue_commit_failed error=\"%s\"", j->env.id,
	    strerror(saved));
	j->result = errno_result(saved);
	return -1;
}

/* --- writer: the body log (docs/queue.md, "Where a body goes") ---------- */

static int
pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Does a committed row name log segment 'name'? 1, 0, or -1 in doubt. */
static int
log_in_use(sqlite3 *db, const char *name)
{
	int rc = run(db, "SELECT 1 FROM message WHERE log_file = ?1 LIMIT 1",
	    NULL, "t", name);

	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Unlink segment 'name' if no row names it (and it is not the open one). */
static void
log_unlink_unused(struct qdb *q, sqlite3 *db, const char *name)
{
	char path[PATH_MAX + 100];

	if (q->logfd != -1 && strcmp(name, q->logname) == 0)
		return;
	if (log_in_use(db, name) != 0)
		return;		/* named, or in doubt: keep it */
	snprintf(path, sizeof(path), "%s/%s", q->logdir, name);
	if (unlink(path) == 0)
		log_info("event=queue_log_removed file=log/%s", name);
}

/* Close the open segment; it goes too when no row names it. */
static void
log_close(struct qdb *q)
{
	char name[QDB_LOG_NAME_MAX];

	if (q->logfd == -1)
		return;
	close(q->logfd);
	q->logfd = -1;
	str_copy(name, sizeof(name), q->logname);
	log_unlink_unused(q, q->wdb, name);
}

/*
 * Step 2 for the group's log bodies: append them to the open segment (a
 * new one once it passed QDB_LOG_SEGMENT_MAX) and fdatasync once; a new
 * segment's name is made durable with an fsync of log/. 0, or -1 with
 * errno: no job may then name the new bytes, and the segment is closed
 * (after a failed sync its pages are in doubt; a new group starts a new
 * segment, and this one goes when no row names it).
 */
static int
log_append(struct qdb *q, struct qdb_job **jobs, size_t n)
{
	char path[PATH_MAX + 100];
	size_t i, any = 0;
	int fresh = 0, saved;

	for (i = 0; i < n; i++)
		if (jobs[i]->kind == JOB_INSERT && jobs[i]->in_log &&
		    !jobs[i]->failed)
			any++;
	if (any == 0)
		return 0;
	if (q->logfd != -1 && q->logend >= QDB_LOG_SEGMENT_MAX)
		log_close(q);
	if (q->logfd == -1) {
		q->logseq++;
		snprintf(q->logname, sizeof(q->logname), "%020llu",
		    q->logseq);
		snprintf(path, sizeof(path), "%s/%s", q->logdir, q->logname);
		if ((q->logfd = open(path, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600)) == -1)
			return -1;
		q->logend = 0;
		fresh = 1;
	}
	for (i = 0; i < n; i++) {
		struct qdb_job *j = jobs[i];

		if (j->kind != JOB_INSERT || !j->in_log || j->failed)
			continue;
		j->log_off = q->logend;
		if (pwrite_all(q->logfd, j->blob, j->bloblen, q->logend) == -1)
			goto fail;
		q->logend += j->bloblen;
	}
	if (fdatasync(q->logfd) == -1)
		goto fail;
	if (fresh && fsync_dir(q->logdir) == -1)
		goto fail;
	return 0;
fail:
	saved = errno;
	log_close(q);
	errno = saved;
	return -1;
}

/*
 * Give back the disk space of a body that left the queue (or never got a
 * row): punch its range out of the segment; a segment no row names any
 * more is removed whole. Best effort: a range not punched is freed with
 * its segment.
 */
static void
log_free(struct qdb *q, const char *name, uint64_t off, uint64_t len)
{
	char path[PATH_MAX + 100];
	int fd;

	if (q->logfd != -1 && strcmp(name, q->logname) == 0) {
		if (log_in_use(q->wdb, name) == 0) {
			log_close(q);
			return;
		}
		fd = q->logfd;
	} else {
		if (log_in_use(q->wdb, name) == 0) {
			log_unlink_unused(q, q->wdb, name);
			return;
		}
		snprintf(path, sizeof(path), "%s/%s", q->logdir, name);
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
			return;
	}
	(void)body_punch(fd, off, len);
	if (fd != q->logfd)
		close(fd);
}

/* Undo what prepare_body() left on disk for a job that did not commit. */
static void
undo_body(struct qdb *q, struct qdb_job *j)
{
	char path[PATH_MAX + 100];

	if (j->in_log && q->logfd != -1) {
		/* appended, never named: its bytes are garbage now */
		(void)body_punch(q->logfd, j->log_off, j->bloblen);
		j->in_log = 0;
	}
	if (!j->big_ours)
		return;
	snprintf(path, sizeof(path), "%s/%s", q->bigdir, j->big);
	unlink(path);
	j->big_ours = 0;
}

/* Run the jobs in one transaction. SQLITE_OK or the failing code. */
static int
commit_group(struct qdb *q, struct qdb_job **jobs, size_t n)
{
	size_t i;
	int rc, missing;

	if ((rc = exec(q->wdb, "BEGIN IMMEDIATE")) != SQLITE_OK)
		return rc;
	for (i = 0; i < n; i++) {
		struct qdb_job *j = jobs[i];

		j->unlink_after[0] = '\0';
		j->punch_file[0] = '\0';
		if (j->kind == JOB_INSERT)
			rc = insert_rows(q->wdb, &j->env, body_size(j->body),
			    j->big, j->in_log ? q->logname : NULL, j->log_off,
			    j->blob, j->bloblen, 0);
		else {
			rc = update_rows(q, j, &missing);
			j->result = missing ? QDB_NOTFOUND : QDB_OK;
		}
		if (rc != SQLITE_OK)
			goto fail;
	}
	/* synchronous=FULL: when COMMIT returns, the WAL is on disk. */
	if ((rc = exec(q->wdb, "COMMIT")) != SQLITE_OK)
		goto fail;
	return SQLITE_OK;
fail:
	log_warn("event=queue_db_error error=\"%s\" jobs=%zu",
	    sqlite3_errmsg(q->wdb), n);
	exec(q->wdb, "ROLLBACK");
	return rc;
}

static void
finish(struct qdb *q, struct qdb_job *j)
{
	if (write_all(q->pipe[1], &j, sizeof(j)) == -1)
		panic("qdb pipe write: %s", strerror(errno));
}

/* One group: what was waiting when the writer woke up. */
static void
write_group(struct qdb *q, struct qdb_job *list)
{
	struct qdb_job **jobs, *j;
	size_t n = 0, m = 0, i;
	int need_dirsync = 0, rc;

	for (j = list; j != NULL; j = j->next)
		n++;
	jobs = xreallocarray(NULL, n, sizeof(*jobs));
	for (j = list; j != NULL; j = j->next) {
		j->result = QDB_OK;
		if (j->kind == JOB_INSERT && prepare_body(q, j) == -1) {
			j->failed = 1;
			continue;
		}
		if (j->big_ours)
			need_dirsync = 1;
		jobs[m++] = j;
	}
	/* The new names in big/ are durable before any row names them. */
	if (need_dirsync && fsync_dir(q->bigdir) == -1) {
		int e = errno;
		enum qdb_result r = errno_result(e);

		for (i = 0; i < m; i++) {
			if (jobs[i]->kind != JOB_INSERT)
				continue;
			/* One line a message: grep queue=ID finds it. */
			log_warn("queue=%s event=queue_commit_failed "
			    "error=\"fsync big/: %s\"", jobs[i]->env.id,
			    strerror(e));
			undo_body(q, jobs[i]);
			jobs[i]->result = r;
			jobs[i]->failed = 1;
		}
	}
	/* The log's new bytes are durable before any row names them. */
	if (log_append(q, jobs, m) == -1) {
		enum qdb_result r = errno_result(errno);

		log_warn("event=queue_commit_failed error=\"body log: %s\"",
		    strerror(errno));
		for (i = 0; i < m; i++) {
			if (jobs[i]->kind != JOB_INSERT || !jobs[i]->in_log ||
			    jobs[i]->failed)
				continue;
			jobs[i]->in_log = 0;
			jobs[i]->result = r;
			jobs[i]->failed = 1;
		}
	}
	for (i = n = 0; i < m; i++)
		if (!jobs[i]->failed)
			jobs[n++] = jobs[i];

	rc = n > 0 ? commit_group(q, jobs, n) : SQLITE_OK;
	if (rc != SQLITE_OK && n > 1) {
		/* One bad job must not sink the others: each on its own. */
		for (i = 0; i < n; i++)
			if ((rc = commit_group(q, &jobs[i], 1)) != SQLITE_OK) {
				jobs[i]->failed = 1;
				jobs[i]->result = sqlite_result(rc);
			}
	} else if (rc != SQLITE_OK) {
		jobs[0]->failed = 1;
		jobs[0]->result = sqlite_result(rc);
	}
	for (i = 0; i < n; i++) {
		j = jobs[i];
		if (j->failed) {
			if (j->kind == JOB_INSERT)
				undo_body(q, j);
		} else if (j->unlink_after[0] != '\0') {
			char path[PATH_MAX + 100];

			/* The row is gone for good; a crash before this
			 * unlink leaves an orphan the next start removes. */
			snprintf(path, sizeof(path), "%s/%s", q->bigdir,
			    j->unlink_after);
			unlink(path);
		}
		if (!j->failed && j->kind == JOB_UPDATE &&
		    j->punch_file[0] != '\0')
			log_free(q, j->punch_file, j->punch_off, j->punch_len);
	}
	free(jobs);
	for (j = list; j != NULL; j = list) {
		list = j->next;
		if (j->kind == JOB_INSERT) {
			body_free(j->body);
			j->body = NULL;
			free(j->blobmem);
			j->blobmem = NULL;
			j->blob = NULL;
		}
		finish(q, j);
	}
}

static void *
writer(void *arg)
{
	struct qdb *q = arg;
	struct qdb_job *list;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (q->todo == NULL && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->todo == NULL) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		/* Everything waiting goes into one transaction. */
		list = q->todo;
		q->todo = NULL;
		q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->lock);
		write_group(q, list);
	}
}

/* --- the loop side ------------------------------------------------------ */

static void
job_free(struct qdb_job *j)
{
	if (j->kind == JOB_INSERT)
		envelope_free(&j->env);
	else
		qdb_update_free(j->upd);
	free(j);
}

static void
finished_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qdb_job *jobs[64];
	ssize_t n;
	size_t i;

	/* Pointers are written whole (PIPE_BUF atomicity). */
	while ((n = read(fd, jobs, sizeof(jobs))) > 0) {
		for (i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
			struct qdb_job *j = jobs[i];

			if (!j->cancelled && j->done != NULL)
				j->done(j->result, j->id, j->kind ==
				    JOB_INSERT ? &j->env : j->upd->dsn_env,
				    j->arg);
			job_free(j);
		}
	}
}

static void
enqueue(struct qdb *q, struct qdb_job *j)
{
	pthread_mutex_lock(&q->lock);
	*q->todo_tail = j;
	q->todo_tail = &j->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

static struct qdb_job *
job_new(struct qdb *q, enum job_kind kind, const char *id, qdb_done_cb *done,
    void *arg)
{
	struct qdb_job *j;

	if (q->readonly)
		panic("qdb write on a read-only queue");
	j = xcalloc(1, sizeof(*j));
	j->kind = kind;
	str_copy(j->id, sizeof(j->id), id);
	j->done = done;
	j->arg = arg;
	return j;
}

struct qdb_job *
qdb_insert(struct qdb *q, const struct envelope *e, struct body *b,
    qdb_done_cb *done, void *arg)
{
	struct qdb_job *j = job_new(q, JOB_INSERT, e->id, done, arg);
	size_t i;

	j->env = *e;
	j->env.rcpts = NULL;
	j->env.nrcpt = j->env.rcptcap = 0;
	for (i = 0; i < e->nrcpt; i++)
		envelope_add_rcpt(&j->env, &e->rcpts[i].addr,
		    &e->rcpts[i].params);
	j->body = b;
	enqueue(q, j);
	return j;
}

struct qdb_job *
qdb_update(struct qdb *q, struct qdb_update *u, qdb_done_cb *done,
    void *arg)
{
	struct qdb_job *j = job_new(q, JOB_UPDATE, u->id, done, arg);

	j->upd = u;
	enqueue(q, j);
	return j;
}

void
qdb_cancel(struct qdb_job *j)
{
	if (j != NULL)
		j->cancelled = 1;
}

struct qdb_update *
qdb_update_new(const char *id)
{
	struct qdb_update *u = xcalloc(1, sizeof(*u));

	str_copy(u->id, sizeof(u->id), id);
	return u;
}

struct qdb_update *
qdb_update_copy(const struct qdb_update *u)
{
	struct qdb_update *c = xmalloc(sizeof(*c));
	size_t i;

	*c = *u;
	c->changes = NULL;
	c->dsn_env = NULL;
	c->dsn_body = NULL;
	if (u->nchanges > 0) {
		c->changes = xreallocarray(NULL, u->nchanges,
		    sizeof(*c->changes));
		memcpy(c->changes, u->changes, u->nchanges *
		    sizeof(*c->changes));
	}
	if (u->dsn_env != NULL) {
		c->dsn_env = xmalloc(sizeof(*c->dsn_env));
		*c->dsn_env = *u->dsn_env;
		c->dsn_env->rcpts = NULL;
		c->dsn_env->nrcpt = c->dsn_env->rcptcap = 0;
		for (i = 0; i < u->dsn_env->nrcpt; i++)
			envelope_add_rcpt(c->dsn_env,
			    &u->dsn_env->rcpts[i].addr,
			    &u->dsn_env->rcpts[i].params);
	}
	if (u->dsn_body != NULL) {
		c->dsn_body = xmalloc(u->dsn_bodylen ? u->dsn_bodylen : 1);
		memcpy(c->dsn_body, u->dsn_body, u->dsn_bodylen);
	}
	return c;
}

void
qdb_update_free(struct qdb_update *u)
{
	if (u == NULL)
		return;
	free(u->changes);
	if (u->dsn_env != NULL) {
		envelope_free(u->dsn_env);
		free(u->dsn_env);
	}
	free(u->dsn_body);
	free(u);
}

void
qdb_update_rcpt(struct qdb_update *u, size_t idx, enum qdb_rcpt_status st,
    int code, const char *reply)
{
	struct qdb_rcpt_change *c;

	u->changes = xreallocarray(u->changes, u->nchanges + 1,
	    sizeof(*u->changes));
	c = &u->changes[u->nchanges++];
	c->idx = idx;
	c->status = st;
	c->code = code;
	str_copy(c->reply, sizeof(c->reply), reply ? reply : "");
}

/* --- reads -------------------------------------------------------------- */

#define MSG_COLS \
    "id, sender_local, sender_domain, sender_flags, size, param_size," \
    " param_body, param_smtputf8, param_ret, param_envid, helo," \
    " client_addr, client_name, proto, arrival, data_flags, attempts," \
    " next_attempt, last_attempt, last_error, hold, warned, is_dsn," \
    " big_file"

static void
msg_from_row(sqlite3_stmt *st, struct qdb_msg *m)
{
	memset(m, 0, sizeof(*m));
	col_text(st, 0, m->id, sizeof(m->id));
	addr_from_columns(&m->sender, sqlite3_column_text(st, 1),
	    sqlite3_column_text(st, 2), sqlite3_column_int(st, 3));
	m->size = (uint64_t)sqlite3_column_int64(st, 4);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		m->params.has_size = 1;
		m->params.size = (uint64_t)sqlite3_column_int64(st, 5);
	}
	m->params.body = (enum esmtp_body)sqlite3_column_int(st, 6);
	m->params.smtputf8 = sqlite3_column_int(st, 7) != 0;
	m->params.ret = (enum esmtp_ret)sqlite3_column_int(st, 8);
	col_text(st, 9, m->params.envid, sizeof(m->params.envid));
	col_text(st, 10, m->helo, sizeof(m->helo));
	col_text(st, 11, m->client_addr, sizeof(m->client_addr));
	col_text(st, 12, m->client_name, sizeof(m->client_name));
	col_text(st, 13, m->proto, sizeof(m->proto));
	m->arrival = (time_t)sqlite3_column_int64(st, 14);
	m->data_flags = sqlite3_column_int(st, 15);
	m->attempts = (unsigned)sqlite3_column_int(st, 16);
	m->next_attempt = (time_t)sqlite3_column_int64(st, 17);
	m->last_attempt = (time_t)sqlite3_column_int64(st, 18);
	col_text(st, 19, m->last_error, sizeof(m->last_error));
	m->hold = sqlite3_column_int(st, 20);
	m->warned = sqlite3_column_int(st, 21);
	m->is_dsn = sqlite3_column_int(st, 22);
	col_text(st, 23, m->big, sizeof(m->big));
}

#define SQL_RCPTS	"SELECT local, domain, addr_flags, notify, orcpt_type," \
			" orcpt, status, last_code, last_reply FROM recipient" \
			" WHERE message_id = ?1 ORDER BY idx"
#define SQL_LOAD	"SELECT " MSG_COLS ", body, log_file, log_off FROM" \
			" message WHERE id = ?1"
#define SQL_EXISTS	"SELECT 1 FROM message WHERE id = ?1"

static int
rcpts_prepare(struct qdb *q, sqlite3_stmt **st)
{
	return sqlite3_prepare_v2(q->rdb, SQL_RCPTS, -1, st, NULL) ==
	    SQLITE_OK ? 0 : -1;
}

/* *kept, rdb's statement for sql, prepared at its first use; NULL when
 * it cannot be. The caller resets it after use. */
static sqlite3_stmt *
load_stmt(struct qdb *q, sqlite3_stmt **kept, const char *sql)
{
	if (*kept == NULL && sqlite3_prepare_v3(q->rdb, sql, -1,
	    SQLITE_PREPARE_PERSISTENT, kept, NULL) != SQLITE_OK) {
		sqlite3_finalize(*kept);
		*kept = NULL;
	}
	return *kept;
}

/* m's recipients with st, rcpts_prepare()'s statement; st is reset for
 * the next message (a scan of a million prepares it once). */
static int
load_rcpts_with(sqlite3_stmt *st, struct qdb_msg *m)
{
	int rc;

	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct qdb_rcpt *r;

		m->rcpts = xreallocarray(m->rcpts, m->nrcpt + 1,
		    sizeof(*m->rcpts));
		r = &m->rcpts[m->nrcpt++];
		memset(r, 0, sizeof(*r));
		addr_from_columns(&r->addr, sqlite3_column_text(st, 0),
		    sqlite3_column_text(st, 1), sqlite3_column_int(st, 2));
		r->params.notify = sqlite3_column_int(st, 3);
		col_text(st, 4, r->params.orcpt_type,
		    sizeof(r->params.orcpt_type));
		col_text(st, 5, r->params.orcpt, sizeof(r->params.orcpt));
		r->status = (enum qdb_rcpt_status)sqlite3_column_int(st, 6);
		r->last_code = sqlite3_column_int(st, 7);
		col_text(st, 8, r->last_reply, sizeof(r->last_reply));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
load_rcpts(struct qdb *q, struct qdb_msg *m)
{
	sqlite3_stmt *st;

	if ((st = load_stmt(q, &q->st_rcpts, SQL_RCPTS)) == NULL)
		return -1;
	return load_rcpts_with(st, m);
}

void
qdb_msg_free(struct qdb_msg *m)
{
	if (m == NULL)
		return;
	free(m->rcpts);
	free(m->body);
	m->rcpts = NULL;
	m->body = NULL;
	m->nrcpt = 0;
}

int
qdb_scan(struct qdb *q, void (*each)(const struct qdb_msg *, void *),
    void *arg)
{
	sqlite3_stmt *st, *rst;
	struct qdb_msg m;
	int rc;

	if (rcpts_prepare(q, &rst) == -1)
		return -1;
	rc = sqlite3_prepare_v2(q->rdb, "SELECT " MSG_COLS " FROM message "
	    "ORDER BY arrival, id", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(rst);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		msg_from_row(st, &m);
		if (load_rcpts_with(rst, &m) == -1) {
			qdb_msg_free(&m);
			rc = SQLITE_ERROR;
			break;
		}
		each(&m, arg);
		qdb_msg_free(&m);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
qdb_scan_page(struct qdb *q, struct qdb_cursor *cur, size_t limit,
    void (*each)(const struct qdb_msg *, void *), void *arg)
{
	sqlite3_stmt *st, *rst;
	struct qdb_msg m;
	int rc, n = 0;

	if (rcpts_prepare(q, &rst) == -1)
		return -1;
	rc = sqlite3_prepare_v2(q->rdb, "SELECT " MSG_COLS " FROM message "
	    "WHERE (arrival, id) > (?1, ?2) ORDER BY arrival, id LIMIT ?3",
	    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(rst);
		return -1;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)cur->arrival);
	sqlite3_bind_text(st, 2, cur->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		msg_from_row(st, &m);
		if (load_rcpts_with(rst, &m) == -1) {
			qdb_msg_free(&m);
			rc = SQLITE_ERROR;
			break;
		}
		each(&m, arg);
		cur->arrival = m.arrival;
		str_copy(cur->id, sizeof(cur->id), m.id);
		qdb_msg_free(&m);
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_finalize(rst);
	return rc == SQLITE_DONE ? n : -1;
}

/* Is message id in the queue? 1, 0, or -1 on error. */
static int
qdb_exists(struct qdb *q, const char *id)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = load_stmt(q, &q->st_exists, SQL_EXISTS)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* m's body (m->size bytes) from the log at off. 0, or -1 (logged). */
static int
log_read(struct qdb *q, const char *name, uint64_t off, struct qdb_msg *m)
{
	char path[PATH_MAX + 100];
	size_t done = 0;
	ssize_t n = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", q->logdir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_err("queue=%s event=body_unreadable file=log/%s error=\"%s\"",
		    m->id, name, strerror(errno));
		return -1;
	}
	m->body = xmalloc(m->size + 1);
	while (done < m->size) {
		n = pread(fd, m->body + done, m->size - done,
		    (off_t)(off + done));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	if (done != m->size) {
		log_err("queue=%s event=body_unreadable file=log/%s error=\"%s\"",
		    m->id, name, n == 0 ? "short file" : strerror(errno));
		return -1;
	}
	m->bodylen = done;
	return 0;
}

/* A kept statement back to its resting state: reset (its read
 * transaction ends) and unbound (the id it pointed at is the caller's). */
static void
load_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
qdb_load(struct qdb *q, const char *id, int with_body, struct qdb_msg *out)
{
	sqlite3_stmt *st;
	int rc, from_log = 0;

	memset(out, 0, sizeof(*out));
	if ((st = load_stmt(q, &q->st_load, SQL_LOAD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		load_done(st);
		return rc == SQLITE_DONE ? 1 : -1;
	}
	msg_from_row(st, out);
	if (with_body && out->big[0] == '\0' &&
	    sqlite3_column_type(st, 25) != SQLITE_NULL) {
		char name[QDB_LOG_NAME_MAX];

		col_text(st, 25, name, sizeof(name));
		if (log_read(q, name, (uint64_t)sqlite3_column_int64(st, 26),
		    out) == -1) {
			load_done(st);
			qdb_msg_free(out);
			return -1;
		}
		from_log = 1;
	} else if (with_body && out->big[0] == '\0') {
		int n = sqlite3_column_bytes(st, 24);
		const void *p = sqlite3_column_blob(st, 24);

		out->bodylen = n > 0 ? (size_t)n : 0;
		out->body = xmalloc(out->bodylen + 1);
		if (out->bodylen > 0)
			memcpy(out->body, p, out->bodylen);
	}
	load_done(st);
	/* The writer punches a deleted body out of the log after its
	 * commit: if the row is still there now, in a new read, the bytes
	 * read were the body's. */
	if (from_log && (rc = qdb_exists(q, id)) != 1) {
		qdb_msg_free(out);
		return rc == 0 ? 1 : -1;
	}
	if (load_rcpts(q, out) == -1) {
		qdb_msg_free(out);
		return -1;
	}
	return 0;
}

void
qdb_big_path(const struct qdb *q, const char *name, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/%s", q->bigdir, name);
}

const char *
qdb_tmpdir(const struct qdb *q)
{
	return q->tmpdir;
}

const char *
qdb_spool(const struct qdb *q)
{
	return q->spool;
}

/* --- open and close ----------------------------------------------------- */

static int
set_paths(struct qdb *q, const char *spool_dir)
{
	if (str_copy(q->spool, sizeof(q->spool), spool_dir) == -1)
		return -1;
	snprintf(q->path, sizeof(q->path), "%s/queue.db", spool_dir);
	snprintf(q->bigdir, sizeof(q->bigdir), "%s/big", spool_dir);
	snprintf(q->tmpdir, sizeof(q->tmpdir), "%s/tmp", spool_dir);
	snprintf(q->logdir, sizeof(q->logdir), "%s/log", spool_dir);
	q->logfd = -1;
	return 0;
}

static sqlite3 *
open_db(const char *path, int flags, int busy_ms, char *err, size_t errsz)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errsz, "%s: cannot open: %s", path,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_extended_result_codes(db, 1);
	return db;
}

/* Remove tmp/ leftovers and big/ files no committed row names: their
 * senders never heard a 250 (docs/queue.md). */
static void
sweep(struct qdb *q)
{
	char path[PATH_MAX + 300];
	sqlite3_stmt *st = NULL;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(q->tmpdir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", q->tmpdir,
			    de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if ((d = opendir(q->bigdir)) == NULL)
		return;
	if (sqlite3_prepare_v2(q->rdb, "SELECT 1 FROM message WHERE "
	    "big_file = ?1", -1, &st, NULL) != SQLITE_OK) {
		closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int rc;

		if (de->d_name[0] == '.')
			continue;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, de->d_name, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			continue;
		if (rc != SQLITE_DONE)
			break;		/* in doubt, keep it */
		snprintf(path, sizeof(path), "%s/%s", q->bigdir, de->d_name);
		log_info("event=queue_sweep file=big/%s", de->d_name);
		unlink(path);
	}
	sqlite3_finalize(st);
	closedir(d);
}

/* One segment at start, st the statement of its named ranges. */
static void
sweep_segment(struct qdb *q, sqlite3_stmt *st, const char *name)
{
	char path[PATH_MAX + 300];
	uint64_t end = 0, off, len;
	int rc, fd, named = 0;

	snprintf(path, sizeof(path), "%s/%s", q->logdir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		off = (uint64_t)sqlite3_column_int64(st, 0);
		len = (uint64_t)sqlite3_column_int64(st, 1);
		if (fd != -1 && off > end)
			(void)body_punch(fd, end, off - end);
		if (off + len > end)
			end = off + len;
		named = 1;
	}
	/* A read that failed leaves the segment whole: in doubt, keep. */
	if (rc == SQLITE_DONE && !named) {
		log_info("event=queue_sweep file=log/%s", name);
		unlink(path);
	} else if (rc == SQLITE_DONE && fd != -1) {
		struct stat sb;

		/* Only ever cut: ftruncate() past the end extends with
		 * zeros, and a segment cut short (a damaged disk) became
		 * bodies of NUL bytes, delivered as if whole. Short, its
		 * bodies fail to load and expire (sched.c). */
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size < end)
			log_err("event=queue_log_short file=log/%s size=%lld "
			    "want=%llu", name, (long long)sb.st_size,
			    (unsigned long long)end);
		else if (ftruncate(fd, (off_t)end) == -1)
			log_warn("event=queue_sweep_failed file=log/%s "
			    "error=\"%s\"", name, strerror(errno));
	}
	if (fd != -1)
		close(fd);
}

/*
 * The body log after a start: a segment no row names is removed; in the
 * others the bytes no row names (bodies whose senders never got a 250,
 * bodies delivered while a punch failed) are punched out and the tail
 * past the last named body is cut off. No segment is appended to again:
 * new groups go to a new one, numbered past every name found.
 */
static void
sweep_log(struct qdb *q)
{
	sqlite3_stmt *st = NULL;
	struct dirent *de;
	unsigned long long seq;
	char *e;
	DIR *d;

	if ((d = opendir(q->logdir)) == NULL)
		return;
	if (sqlite3_prepare_v2(q->rdb, "SELECT log_off, size FROM message "
	    "WHERE log_file = ?1 ORDER BY log_off", -1, &st, NULL) ==
	    SQLITE_OK) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			seq = strtoull(de->d_name, &e, 10);
			if (*e == '\0' && seq > q->logseq)
				q->logseq = seq;
			sweep_segment(q, st, de->d_name);
		}
	}
	sqlite3_finalize(st);
	closedir(d);
}

/* A queue.db made before the body log lacks its columns: add them. */
static int
migrate(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT log_file, log_off FROM message "
	    "LIMIT 0", -1, &st, NULL) != SQLITE_OK) {
		rc = exec(db, "ALTER TABLE message ADD COLUMN log_file TEXT;"
		    "ALTER TABLE message ADD COLUMN log_off INTEGER;");
		if (rc != SQLITE_OK)
			return rc;
	}
	sqlite3_finalize(st);
	/* Whether a segment is still named, once per delivered body. */
	return exec(db, "CREATE INDEX IF NOT EXISTS message_log ON "
	    "message(log_file) WHERE log_file IS NOT NULL");
}

struct qdb *
qdb_open(struct event_base *base, const char *spool_dir, uint64_t inline_max,
    char *err, size_t errsz)
{
	struct qdb *q = xcalloc(1, sizeof(*q));
	char *msg = NULL;
	int rc;

	q->pipe[0] = q->pipe[1] = -1;
	q->inline_max = inline_max;
	if (set_paths(q, spool_dir) == -1) {
		snprintf(err, errsz, "%s: name too long", spool_dir);
		goto fail;
	}
	if (mkdir_p(q->spool) == -1 || mkdir_p(q->bigdir) == -1 ||
	    mkdir_p(q->tmpdir) == -1 || mkdir_p(q->logdir) == -1) {
		snprintf(err, errsz, "%s: %s", q->spool, strerror(errno));
		goto fail;
	}
	if ((q->wdb = open_db(q->path, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, QDB_WRITER_BUSY_MS, err, errsz)) == NULL)
		goto fail;
	/* Debian's default for WAL is FULL already (docs/dependencies.md §4);
	 * say it anyway: the queue must never lose a commit. */
	rc = sqlite3_exec(q->wdb, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=FULL;", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->wdb, schema, NULL, NULL, &msg);
	if (rc == SQLITE_OK && (rc = migrate(q->wdb)) != SQLITE_OK)
		msg = sqlite3_mprintf("%s", sqlite3_errmsg(q->wdb));
	if (rc != SQLITE_OK) {
		snprintf(err, errsz, "%s: cannot use the queue database: %s "
		    "(nothing was changed; move it away or repair it)",
		    q->path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		goto fail;
	}
	if ((q->rdb = open_db(q->path, SQLITE_OPEN_READWRITE,
	    QDB_READER_BUSY_MS, err, errsz)) == NULL)
		goto fail;
	sweep(q);
	sweep_log(q);

	if (pipe(q->pipe) == -1) {
		snprintf(err, errsz, "pipe: %s", strerror(errno));
		goto fail;
	}
	fcntl(q->pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(q->pipe[1], F_SETFD, FD_CLOEXEC);
	evutil_make_socket_nonblocking(q->pipe[0]);
	q->todo_tail = &q->todo;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->ev = event_new(base, q->pipe[0], EV_READ | EV_PERSIST, finished_cb,
	    q);
	event_add(q->ev, NULL);
	if (pthread_create(&q->thread, NULL, writer, q) != 0)
		panic("pthread_create failed");
	q->running = 1;
	return q;
fail:
	sqlite3_close(q->rdb);
	sqlite3_close(q->wdb);
	if (q->pipe[0] != -1) {
		close(q->pipe[0]);
		close(q->pipe[1]);
	}
	free(q);
	return NULL;
}

struct qdb *
qdb_open_readonly(const char *spool_dir, char *err, size_t errsz)
{
	struct qdb *q = xcalloc(1, sizeof(*q));
	struct stat sb;

	q->readonly = 1;
	q->pipe[0] = q->pipe[1] = -1;
	if (set_paths(q, spool_dir) == -1) {
		snprintf(err, errsz, "%s: name too long", spool_dir);
		free(q);
		return NULL;
	}
	if (stat(q->path, &sb) == -1) {
		snprintf(err, errsz, "%s: %s", q->path, strerror(errno));
		free(q);
		return NULL;
	}
	if ((q->rdb = open_db(q->path, SQLITE_OPEN_READONLY,
	    QDB_READER_BUSY_MS, err, errsz)) == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

static void
finalize_all(sqlite3 *db)
{
	sqlite3_stmt *st;

	while (db != NULL && (st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
}

void
qdb_close(struct qdb *q)
{
	if (q == NULL)
		return;
	if (q->running) {
		pthread_mutex_lock(&q->lock);
		q->stopping = 1;
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
		finished_cb(q->pipe[0], EV_READ, q);
		event_free(q->ev);
		close(q->pipe[0]);
		close(q->pipe[1]);
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->cond);
		log_close(q);
	}
	/* The kept statements (load_stmt(), prepare_kept()), or the
	 * connections stay open. */
	finalize_all(q->rdb);
	sqlite3_close(q->rdb);
	finalize_all(q->wdb);
	sqlite3_close(q->wdb);
	free(q);
}
