/*
 * str: small string helpers with explicit bounds. glibc 2.36 has no
 * strlcpy, so str_copy() reports truncation itself.
 */
#ifndef BACKMX_STR_H
#define BACKMX_STR_H

#include <stddef.h>
#include <stdint.h>

/* Copy src into dst (dstsz > 0), always NUL-terminated.
 * Returns 0, or -1 when src did not fit (dst holds the cut copy). */
int	str_copy(char *dst, size_t dstsz, const char *src);
/* Same for a counted source of n bytes. */
int	str_ncopy(char *dst, size_t dstsz, const char *src, size_t n);
/* Lower-case ASCII letters in place; other bytes untouched. */
void	str_lower(char *);
/* 1 when a and b name the same host: any case, one trailing dot on
 * either ("MX.example.org." is "mx.example.org"); never for "". */
int	str_host_eq(const char *a, const char *b);
/* FNV-1a of s: the hash of the in-memory tables keyed by a name. */
uint32_t str_hash(const char *s);
/* Strip ASCII white space at both ends, in place; returns s. */
char	*str_trim(char *s);

/*
 * Length of the well-formed UTF-8 sequence for one non-ASCII code point at
 * p (avail bytes, avail > 0), or 0. RFC 3629 §4: no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
size_t	str_utf8_len(const unsigned char *p, size_t avail);
/* 1 when one of the n bytes at p is >= 0x80 (not ASCII). */
int	str_has_8bit(const char *p, size_t n);
/* The code point of the n-byte sequence at p, n from str_utf8_len(). */
uint32_t str_utf8_cp(const unsigned char *p, size_t n);
/*
 * 1 for a code point that must not reach a terminal or a log raw, because
 * it can hide, move or reorder the text around it: C0 controls, DEL, C1
 * controls, and the bidi controls (U+061C, U+200E, U+200F, U+202A to
 * U+202E, U+2066 to U+2069). The one list of them (docs/principles.md §4).
 */
int	str_cp_control(uint32_t cp);
/*
 * For a terminal: the length of the next character at p (avail > 0 bytes):
 * 1 for ASCII or a byte that does not start well-formed UTF-8, else its
 * sequence; *hide_out is 1 when it must be shown as '?' instead (a
 * control code point of str_cp_control() or a malformed byte).
 */
size_t	str_term_next(const char *p, size_t avail, int *hide_out);
/*
 * s for a terminal, into out (outsz > 0), by str_term_next(): each hidden
 * character as '?'; cut to fit. Returns out.
 */
const char *str_term(char *out, size_t outsz, const char *s);

/*
 * The next item of a list whose items are separated by commas and white space
 * (a continuation line's newline included), the one list syntax of backmx.conf
 * and the admin tools: *p moves to the item's start and the item's length is
 * returned; 0 at the end of the list. Call again with *p += length for the next
 * one. for (p = v; (n = str_list_next(&p)) > 0; p += n) ...
 */
size_t	str_list_next(const char **p);

#endif
