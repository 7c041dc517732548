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

uint32_t
str_utf8_cp(const unsigned char *p, size_t n)
{
	static const unsigned char lead_mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t cp;
	size_t i;

	if (n == 0 || n > 4)
		return 0xfffd;
	cp = p[0] & lead_mask[n];
	for (i = 1; i < n; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	return cp;
}

int
str_cp_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
	    cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069);
}

size_t
str_term_next(const char *s, size_t avail, int *hide_out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = *p < 0x80 ? 1 : str_utf8_len(p, avail);

	if (n == 0) {
		*hide_out = 1;
		return 1;
	}
	*hide_out = str_cp_control(n == 1 ? *p : str_utf8_cp(p, n));
	return n;
}

const char *
str_term(char *out, size_t outsz, const char *s)
{
	size_t left = strlen(s), o = 0, n;
	int hide;

	while (left > 0) {
		n = str_term_next(s, left, &hide);
		if (o + (hide ? 1 : n) >= outsz)
			break;
		if (hide)
			out[o++] = '?';
		else {
			memcpy(out + o, s, n);
			o += n;
		}
		s += n;
		left -= n;
	}
	out[o] = '\0';
	return out;
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

uint32_t
str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

int
str_has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	return 0;
}
