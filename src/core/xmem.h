/*
 * xmem: allocation that cannot fail. On exhaustion these log and abort, so
 * callers never test for NULL. Sizes that come from a peer must be checked
 * against a limit *before* they reach these functions.
 */
#ifndef BACKMX_XMEM_H
#define BACKMX_XMEM_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);

#endif
