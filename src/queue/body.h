/*
 * body: where a message body waits while it streams in. Up to mem_max bytes
 * stay in memory; past that the whole body moves to an unlinked-on-free
 * temporary file in a spool directory and further bytes are appended there,
 * so a 500 MB message never sits in memory. Blocking write(2)s to a local
 * file; no fsync here: committing is the queue's job.
 *
 * Owned by the session's transaction; body_free() removes a temporary file
 * that nobody took over.
 */
#ifndef BACKMX_BODY_H
#define BACKMX_BODY_H

#include <stddef.h>
#include <stdint.h>

struct body;

/* A body that spills into tmpdir past mem_max bytes. Never NULL. */
struct body	*body_new(const char *tmpdir, size_t mem_max);
void		 body_free(struct body *);

/* Append; returns 0, or -1 with errno set (ENOSPC, EIO, ...). After an
 * error every later append fails too (sticky), the size stops growing. */
int		 body_append(struct body *, const void *, size_t);
uint64_t	 body_size(const struct body *);
int		 body_error(const struct body *);	/* errno, 0 if none */

/* In-memory bytes, or NULL when the body lives in a file. Valid until the
 * next append or free. */
const void	*body_mem(const struct body *, size_t *len_out);
/* The file descriptor of a spilled body, or -1. Still owned by the body. */
int		 body_fd(const struct body *);
/* Path of the spilled temporary file, or NULL. */
const char	*body_path(const struct body *);
/*
 * Hand the temporary file over to the caller (for a rename into the
 * queue): after this body_free() no longer unlinks it. Returns the path
 * (owned by the body until body_free()).
 */
const char	*body_take_file(struct body *);

/* Read up to len bytes at offset off, whichever way it is stored. Returns
 * bytes read, 0 at the end, -1 on error. */
long		 body_read(const struct body *, uint64_t off, void *, size_t len);

/*
 * Give a stored body's bytes back to the file system: punch [off, off+len)
 * out of fd (the body log, docs/queue.md), the file's size kept. 0, or -1
 * with errno (EOPNOTSUPP where the file system cannot: the space comes
 * back with the file). Here because this file asks for GNU extensions.
 */
int		 body_punch(int fd, uint64_t off, uint64_t len);

#endif
