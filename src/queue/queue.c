/*
 * queue: interim spool. A worker thread takes finished messages from a
 * list, writes ID.env (JSON made by us, each value escaped) and ID.msg into
 * spool_dir/tmp, fsyncs both, renames them into spool_dir/incoming (.msg
 * first, .env last: an .env names a complete message) and fsyncs the
 * directory; then it tells the loop through a pipe. Nothing in here runs
 * peer bytes as structure: the envelope arrives as parsed fields.
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "body.h"
#include "envelope.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

struct queue_job {
	struct queue_job	*next;
	struct queue		*q;
	struct envelope		 env;
	struct body		*body;
	queue_done_cb		*done;
	void			*arg;
	int			 cancelled;
	enum queue_result	 result;
};

struct queue {
	char			 spool[PATH_MAX];
	char			 tmp[PATH_MAX];
	char			 incoming[PATH_MAX];
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct queue_job	*todo;		/* for the worker, FIFO */
	struct queue_job	**todo_tail;
	int			 stopping;
	int			 pipe[2];	/* worker -> loop: finished jobs */
	struct event		*ev;
	int			 inflight;
};

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
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
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

/* JSON string with every byte outside printable ASCII escaped. */
static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int
write_env(const char *path, const struct envelope *e, uint64_t size)
{
	char addr[ADDR_PATH_MAX + 1];
	char *text = NULL;
	size_t textlen = 0;
	FILE *f;
	size_t i;
	int fd, rc, saved;

	if ((f = open_memstream(&text, &textlen)) == NULL)
		return -1;
	fputs("{\"id\":", f);
	json_str(f, e->id);
	addr_format(&e->sender, addr, sizeof(addr));
	fputs(",\"sender\":", f);
	json_str(f, addr);
	fputs(",\"rcpts\":[", f);
	for (i = 0; i < e->nrcpt; i++) {
		addr_format(&e->rcpts[i].addr, addr, sizeof(addr));
		if (i > 0)
			fputc(',', f);
		json_str(f, addr);
	}
	fputs("],\"helo\":", f);
	json_str(f, e->helo);
	fputs(",\"client\":", f);
	json_str(f, e->client_addr);
	fputs(",\"proto\":", f);
	json_str(f, e->proto);
	fprintf(f, ",\"arrival\":%lld,\"size\":%llu}\n",
	    (long long)e->arrival, (unsigned long long)size);
	fclose(f);

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		free(text);
		return -1;
	}
	rc = write_all(fd, text, textlen);
	if (rc == 0)
		rc = fsync(fd);
	saved = errno;
	close(fd);
	free(text);
	errno = saved;
	return rc;
}

static int
write_body(const char *path, struct body *b)
{
	const void *mem;
	size_t len;
	int fd, rc, saved;

	if (body_error(b) != 0) {
		errno = body_error(b);
		return -1;
	}
	if ((mem = body_mem(b, &len)) == NULL) {
		/* Spilled: the bytes are in a file on the same file system
		 * already; make them durable and move the file. */
		if (fsync(body_fd(b)) == -1)
			return -1;
		if (rename(body_take_file(b), path) == -1)
			return -1;
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	rc = write_all(fd, mem, len);
	if (rc == 0)
		rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static enum queue_result
commit(struct queue *q, struct queue_job *j)
{
	char tmpenv[PATH_MAX + 64], msg[PATH_MAX + 64], env[PATH_MAX + 64];
	int saved;

	snprintf(tmpenv, sizeof(tmpenv), "%s/%s.env", q->tmp, j->env.id);
	snprintf(msg, sizeof(msg), "%s/%s.msg", q->incoming, j->env.id);
	snprintf(env, sizeof(env), "%s/%s.env", q->incoming, j->env.id);

	/* Order matters: the message is complete and durable before the
	 * .env that names it appears, and both before the 250. */
	if (write_body(msg, j->body) == -1)
		goto fail;
	if (write_env(tmpenv, &j->env, body_size(j->body)) == -1)
		goto fail;
	if (rename(tmpenv, env) == -1)
		goto fail;
	if (fsync_dir(q->incoming) == -1)
		goto fail;
	return QUEUE_OK;

fail:
	saved = errno;
	unlink(tmpenv);
	unlink(env);
	unlink(msg);
	log_warn("event=queue_commit_failed queue=%s error=\"%s\"", j->env.id,
	    strerror(saved));
	return (saved == ENOSPC || saved == EDQUOT) ? QUEUE_NOSPACE :
	    QUEUE_IOERR;
}

static void *
worker(void *arg)
{
	struct queue *q = arg;
	struct queue_job *j;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (q->todo == NULL && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->todo == NULL) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		j = q->todo;
		q->todo = j->next;
		if (q->todo == NULL)
			q->todo_tail = &q->todo;
		pthread_mutex_unlock(&q->lock);

		j->result = commit(q, j);
		body_free(j->body);
		j->body = NULL;
		if (write_all(q->pipe[1], &j, sizeof(j)) == -1)
			panic("queue pipe write: %s", strerror(errno));
	}
}

static void
queue_finished(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct queue_job *jobs[64];
	ssize_t n;
	size_t i;

	/* Pointers are written whole (PIPE_BUF atomicity). */
	while ((n = read(fd, jobs, sizeof(jobs))) > 0) {
		for (i = 0; i < (size_t)n / sizeof(jobs[0]); i++) {
			struct queue_job *j = jobs[i];

			q->inflight--;
			if (!j->cancelled)
				j->done(j->result, j->env.id, j->arg);
			envelope_free(&j->env);
			free(j);
		}
	}
}

/* Remove what a crash left half-written: the temp folder entirely, and
 * .msg files that no .env names (their senders never got a 250). */
static void
queue_sweep(struct queue *q)
{
	struct dirent *de;
	char path[PATH_MAX + 300];
	DIR *d;

	if ((d = opendir(q->tmp)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", q->tmp,
			    de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	if ((d = opendir(q->incoming)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			struct stat st;

			if (n < 5 || strcmp(de->d_name + n - 4, ".msg") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%.*s.env",
			    q->incoming, (int)(n - 4), de->d_name);
			if (stat(path, &st) == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", q->incoming,
			    de->d_name);
			log_info("event=queue_sweep file=%s", de->d_name);
			unlink(path);
		}
		closedir(d);
	}
}

struct queue *
queue_open(struct event_base *base, const char *spool_dir)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	if (str_copy(q->spool, sizeof(q->spool), spool_dir) == -1 ||
	    (size_t)snprintf(q->tmp, sizeof(q->tmp), "%s/tmp", spool_dir) >=
	    sizeof(q->tmp) ||
	    (size_t)snprintf(q->incoming, sizeof(q->incoming), "%s/incoming",
	    spool_dir) >= sizeof(q->incoming)) {
		free(q);
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (mkdir_p(q->tmp) == -1 || mkdir_p(q->incoming) == -1) {
		free(q);
		return NULL;
	}
	queue_sweep(q);
	if (pipe(q->pipe) == -1) {
		free(q);
		return NULL;
	}
	fcntl(q->pipe[0], F_SETFD, FD_CLOEXEC);
	fcntl(q->pipe[1], F_SETFD, FD_CLOEXEC);
	evutil_make_socket_nonblocking(q->pipe[0]);
	q->todo_tail = &q->todo;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->ev = event_new(base, q->pipe[0], EV_READ | EV_PERSIST,
	    queue_finished, q);
	event_add(q->ev, NULL);
	if (pthread_create(&q->thread, NULL, worker, q) != 0)
		panic("pthread_create failed");
	return q;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = 1;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	/* Deliver what finished so nothing leaks; callbacks of cancelled
	 * jobs do not run. */
	queue_finished(q->pipe[0], EV_READ, q);
	event_free(q->ev);
	close(q->pipe[0]);
	close(q->pipe[1]);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}

const char *
queue_tmpdir(const struct queue *q)
{
	return q->tmp;
}

struct queue_job *
queue_submit(struct queue *q, const struct envelope *e, struct body *b,
    queue_done_cb *done, void *arg)
{
	struct queue_job *j = xcalloc(1, sizeof(*j));
	size_t i;

	j->q = q;
	j->env = *e;
	j->env.rcpts = NULL;
	j->env.nrcpt = j->env.rcptcap = 0;
	for (i = 0; i < e->nrcpt; i++)
		envelope_add_rcpt(&j->env, &e->rcpts[i].addr,
		    &e->rcpts[i].params);
	j->body = b;
	j->done = done;
	j->arg = arg;
	q->inflight++;

	pthread_mutex_lock(&q->lock);
	*q->todo_tail = j;
	q->todo_tail = &j->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return j;
}

void
queue_cancel(struct queue_job *j)
{
	if (j != NULL)
		j->cancelled = 1;
}
