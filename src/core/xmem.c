/*
 * xmem: the allocation wrappers. The only policy here is "abort loudly":
 * a mail server that runs out of memory must not limp on with a half-built
 * transaction.
 */
#include "xmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		panic("malloc(%zu) failed", n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		panic("calloc(%zu, %zu) failed", nmemb, size);
	return p;
}

void *
xreallocarray(void *old, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		panic("reallocarray overflow %zu * %zu", nmemb, size);
	p = realloc(old, (nmemb * size) != 0 ? nmemb * size : 1);
	if (p == NULL)
		panic("realloc(%zu) failed", nmemb * size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
