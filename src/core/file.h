/*
 * file: read a whole operator file (configuration, domains list) into
 * memory, bounded, with errors worded for a start-up message.
 */
#ifndef BACKMX_FILE_H
#define BACKMX_FILE_H

#include <stddef.h>

/*
 * Read 'path' whole. Returns 0 with a malloc'd buffer in *buf_out (the
 * caller frees it; NUL-terminated, *len_out bytes before the NUL), or -1
 * with "PATH: cannot open: ...", "PATH: cannot read: ..." or "PATH: larger
 * than MAX bytes" in err.
 */
int	file_read_all(const char *path, size_t max, char **buf_out,
	    size_t *len_out, char *err, size_t errsz);

#endif
