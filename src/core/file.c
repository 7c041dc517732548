/* file: bounded whole-file reads for the configuration files. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmem.h"

int
file_read_all(const char *path, size_t max, char **buf_out, size_t *len_out,
    char *err, size_t errsz)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			if (cap > max) {
				snprintf(err, errsz, "%s: larger than %zu "
				    "bytes", path, max);
				goto fail;
			}
			/* One byte past max tells "too large" from "just
			 * fits"; the last byte is for the NUL. */
			cap = cap ? cap * 2 : 64 * 1024;
			if (cap > max + 1)
				cap = max + 1;
			buf = xreallocarray(buf, cap + 1, 1);
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errsz, "%s: cannot read: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			snprintf(err, errsz, "%s: larger than %zu bytes", path,
			    max);
			goto fail;
		}
	}
	close(fd);
	if (buf == NULL)
		buf = xmalloc(1);
	buf[len] = '\0';
	*buf_out = buf;
	*len_out = len;
	return 0;
fail:
	close(fd);
	free(buf);
	return -1;
}
