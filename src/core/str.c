/* str: bounded copies and ASCII-only case folding (never locale-dependent). */
#include "str.h"

#include <stdio.h>
#include <string.h>

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

const char *
str_json(char *out, size_t outsz, const char *s)
{
	size_t o = 0;

	out[o++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		size_t n;

		if (c == '"' || c == '\\')
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		else {
			esc[0] = (char)c;
			n = 1;
		}
		if (o + n + 2 > outsz)
			break;
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
