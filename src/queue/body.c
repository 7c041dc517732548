/*
 * body: a message body while it streams in, between the DATA scanner and
 * the queue. Up to mem_max bytes live in one growing buffer; the append
 * that would pass mem_max moves everything to a fresh mode 0600 file in
 * tmpdir and from then on bytes go there with plain write(2)s. So memory
 * per session is bounded by mem_max however large the message is.
 *
 * Owns its buffer, its file descriptor and, until body_take_file(), its
 * temporary file's name: body_free() unlinks a file nobody took. Writes
 * to local disk only; never fsyncs (the queue decides when bytes must be
 * durable). The first error sticks, so a session can read on to the final
 * dot and then answer once (docs/principles.md §2).
 */
/* mkostemp(3), for O_CLOEXEC at creation, is a GNU extension in glibc 2.36:
 * it must be asked for before any system header, ours included. */
#define _GNU_SOURCE
#include "body.h"

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmem.h"

#define BODY_MEM_MIN	4096	/* first allocation, or mem_max if less */

struct body {
	char		*tmpdir;
	size_t		 mem_max;
	unsigned char	*mem;		/* while fd == -1 */
	size_t		 memlen;
	size_t		 memcap;
	int		 fd;		/* spilled: the file, else -1 */
	char		*path;		/* spilled: its name, or NULL */
	int		 taken;		/* body_take_file() called */
	int		 err;		/* first errno, sticky */
	uint64_t	 size;
};

struct body *
body_new(const char *tmpdir, size_t mem_max)
{
	struct body *b = xcalloc(1, sizeof(*b));

	b->tmpdir = xstrdup(tmpdir);
	b->mem_max = mem_max;
	b->fd = -1;
	return b;
}

void
body_free(struct body *b)
{
	int saved = errno;

	if (b == NULL)
		return;
	if (b->fd != -1)
		close(b->fd);
	if (b->path != NULL && !b->taken)
		unlink(b->path);
	free(b->path);
	free(b->mem);
	free(b->tmpdir);
	free(b);
	errno = saved;
}

/*
 * Write all of buf, through EINTR and short writes. Returns the bytes
 * written: len, or fewer with errno set.
 */
static size_t
write_all(int fd, const unsigned char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, buf + done, len - done);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return done;
		}
		if (n == 0) {
			/* Not for a regular file; don't spin on it. */
			errno = EIO;
			return done;
		}
		done += (size_t)n;
	}
	return done;
}

/* Move the in-memory part to a new temporary file. 0, or -1 and errno. */
static int
spill(struct body *b)
{
	static const char name[] = "/body.XXXXXX";
	size_t dirlen = strlen(b->tmpdir);
	int fd, saved;

	b->path = xmalloc(dirlen + sizeof(name));
	memcpy(b->path, b->tmpdir, dirlen);
	memcpy(b->path + dirlen, name, sizeof(name));
	/* mkostemp creates it 0600: a body is nobody else's business. */
	if ((fd = mkostemp(b->path, O_CLOEXEC)) == -1)
		goto fail;
	if (write_all(fd, b->mem, b->memlen) != b->memlen) {
		saved = errno;
		close(fd);
		unlink(b->path);
		errno = saved;
		goto fail;
	}
	/* Only now is the file the body: until here a failure leaves the
	 * memory copy whole, and body_size() still describes it. */
	b->fd = fd;
	free(b->mem);
	b->mem = NULL;
	b->memlen = b->memcap = 0;
	return 0;
fail:
	free(b->path);
	b->path = NULL;
	return -1;
}

/* Room for need bytes in memory (need <= mem_max), doubling up to mem_max. */
static void
mem_reserve(struct body *b, size_t need)
{
	size_t cap = b->memcap;

	if (need <= cap)
		return;
	if (cap == 0)
		cap = BODY_MEM_MIN;
	while (cap < need)
		cap = cap > b->mem_max / 2 ? b->mem_max : cap * 2;
	if (cap > b->mem_max)
		cap = b->mem_max;
	b->mem = xreallocarray(b->mem, cap, 1);
	b->memcap = cap;
}

int
body_append(struct body *b, const void *buf, size_t len)
{
	size_t n;

	if (b->err != 0) {
		errno = b->err;
		return -1;
	}
	if (len == 0)
		return 0;
	if (b->fd == -1) {
		if (len <= b->mem_max - b->memlen) {
			mem_reserve(b, b->memlen + len);
			memcpy(b->mem + b->memlen, buf, len);
			b->memlen += len;
			b->size += len;
			return 0;
		}
		if (spill(b) == -1) {
			b->err = errno;
			return -1;
		}
	}
	n = write_all(b->fd, buf, len);
	/* A short write leaves its bytes in the file: count them, so that
	 * body_size() and body_read() agree. */
	b->size += n;
	if (n != len) {
		b->err = errno;
		return -1;
	}
	return 0;
}

uint64_t
body_size(const struct body *b)
{
	return b->size;
}

int
body_error(const struct body *b)
{
	return b->err;
}

const void *
body_mem(const struct body *b, size_t *len_out)
{
	if (b->fd != -1) {
		*len_out = 0;
		return NULL;
	}
	*len_out = b->memlen;
	/* Empty is still "in memory": never answer NULL for it. */
	return b->mem != NULL ? (const void *)b->mem : (const void *)"";
}

int
body_fd(const struct body *b)
{
	return b->fd;
}

const char *
body_path(const struct body *b)
{
	return b->path;
}

const char *
body_take_file(struct body *b)
{
	if (b->path != NULL)
		b->taken = 1;
	return b->path;
}

long
body_read(const struct body *b, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	if (off >= b->size)
		return 0;
	if (len > b->size - off)
		len = (size_t)(b->size - off);
	if (len > LONG_MAX)
		len = LONG_MAX;
	if (b->fd == -1) {
		memcpy(buf, b->mem + (size_t)off, len);
		return (long)len;
	}
	/* off < size: it fits in off_t, the file holds that much. */
	do
		n = pread(b->fd, buf, len, (off_t)off);
	while (n == -1 && errno == EINTR);
	return (long)n;
}

int
body_punch(int fd, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)off, (off_t)len);
}
