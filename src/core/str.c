/* str: bounded copies and ASCII-only case folding (never locale-dependent). */
#include "str.h"

#include <string.h>
#include <strings.h>

int
str_ncopy(char *dst, size_t dstsz, const char *src, size_t n)
{
	int rc = 0;

	if (n >= dstsz) {
		n = dstsz - 1;
		rc = -1;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	return rc;
}

int
str_copy(char *dst, size_t dstsz, const char *src)
{
	return str_ncopy(dst, dstsz, src, strlen(src));
}

void
str_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

char *
str_trim(char *s)
{
	size_t n;
	char *p = s;

	while (is_ws(*p))
		p++;
	n = strlen(p);
	while (n > 0 && is_ws(p[n - 1]))
		n--;
	memmove(s, p, n);
	s[n] = '\0';
	return s;
}

size_t
str_utf8_len(const unsigned char *p, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t i, n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* UTF-16 surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

size_t
str_list_next(const char **p)
{
	const char *s = *p;
	size_t n = 0;

	while (*s == ',' || is_ws(*s))
		s++;
	while (s[n] != '\0' && s[n] != ',' && !is_ws(s[n]))
		n++;
	*p = s;
	return n;
}

int
str_host_eq(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);

	if (n > 0 && a[n - 1] == '.')
		n--;
	if (m > 0 && b[m - 1] == '.')
		m--;
	return n > 0 && n == m && strncasecmp(a, b, n) == 0;
}
