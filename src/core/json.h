/*
 * json: the one JSON writer, streaming. What the control socket and
 * backmxctl print as JSON goes through it: each value is written to the
 * sink as soon as it is given, nothing is built in memory, so a listing of
 * a million queued messages costs one message's worth of memory. The
 * writer keeps only the comma state of each open container.
 *
 * Strings are escaped for RFC 8259 and always come out as valid UTF-8:
 * '"' and '\' escaped, control bytes (and DEL) as \u00XX, the C1 and
 * bidi controls of str_cp_control() as \uXXXX (so a peer's text cannot
 * reorder what a terminal shows), other well-formed UTF-8 as it is, and
 * any byte that is not part of well-formed UTF-8 as
 * \ufffd (a peer's 8-bit reply text must not make the document
 * unreadable). Output is compact: no space, no newline unless asked for
 * with json_raw().
 *
 * Misuse (a value where a key is due, closing what is not open, nesting
 * past JSON_DEPTH_MAX) is a bug: it is recorded in json_error() and
 * nothing more is written, so the caller can check once at the end.
 */
#ifndef BACKMX_JSON_H
#define BACKMX_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX	16

/* Where the bytes go: n bytes at p. */
typedef void	json_write_fn(void *arg, const char *p, size_t n);

struct json {
	json_write_fn	*write;
	void		*arg;
	unsigned	 depth;
	/* Per open container: 'o' object, 'a' array; upper case once it
	 * has a member (the next one needs a comma). */
	char		 open[JSON_DEPTH_MAX];
	int		 key;		/* a key was written, its value is due */
	int		 error;
};

void	json_init(struct json *, json_write_fn *, void *arg);
/* A sink for stdio: arg is the FILE *. */
void	json_stdio(void *arg, const char *p, size_t n);

void	json_object(struct json *);		/* { */
void	json_array(struct json *);		/* [ */
void	json_end(struct json *);		/* } or ], whichever is open */
void	json_key(struct json *, const char *k);	/* "k": (k escaped too) */

void	json_string(struct json *, const char *s);
void	json_stringn(struct json *, const char *s, size_t n);
void	json_int(struct json *, int64_t);
void	json_uint(struct json *, uint64_t);
void	json_bool(struct json *, int);
void	json_null(struct json *);
/* Bytes as they are, outside any value: a newline between documents. */
void	json_raw(struct json *, const char *s);

/* A key and its value in one call. json_kstr_or_null: null when s is
 * NULL or empty; json_ktime: Unix seconds, null for 0 ("never"). */
void	json_kstr(struct json *, const char *k, const char *s);
void	json_kstr_or_null(struct json *, const char *k, const char *s);
void	json_kint(struct json *, const char *k, int64_t);
void	json_kuint(struct json *, const char *k, uint64_t);
void	json_kbool(struct json *, const char *k, int);
void	json_ktime(struct json *, const char *k, int64_t t);

/* 0, or -1 after a misuse. */
int	json_error(const struct json *);

#endif
