/*
 * data_test: the DATA scanner against a table of wire inputs and what must
 * come out of them: message bytes, flags, bytes consumed, whether the end
 * was seen. Every row is also fed split at every byte boundary, at every
 * pair of boundaries (short rows) and byte by byte, and must give the same
 * answer each time: a client decides where its TCP segments end, and a
 * scanner that ends the data differently for "\r" + "\n.\r\n" than for the
 * whole is a smuggling hole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "data.h"

#define B(s)	s, sizeof(s) - 1

struct row {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	const char	*out;
	size_t		 outlen;
	int		 flags;
	size_t		 consumed;
	int		 done;
};

static const struct row rows[] = {
	/* Ordinary messages. */
	{ "one line", B("hello\r\n.\r\n"), B("hello\r\n"), 0, 10, 1 },
	{ "headers and body",
	  B("Subject: x\r\nFrom: <a@b.example>\r\n\r\nbody\r\nline 2\r\n.\r\n"),
	  B("Subject: x\r\nFrom: <a@b.example>\r\n\r\nbody\r\nline 2\r\n"),
	  0, 52, 1 },
	{ "empty message", B(".\r\n"), B(""), 0, 3, 1 },
	{ "one empty line", B("\r\n.\r\n"), B("\r\n"), 0, 5, 1 },
	{ "empty lines", B("\r\n\r\n\r\n.\r\n"), B("\r\n\r\n\r\n"), 0, 9, 1 },
	{ "long run",
	  B("0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n.\r\n"),
	  B("0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n"), 0, 51, 1 },
	{ "dot inside a line", B("a.b\r\na.\r\n.\r\n"), B("a.b\r\na.\r\n"),
	  0, 12, 1 },

	/* Dot-stuffing, RFC 5321 §4.5.2. */
	{ "stuffed lone dot", B("..\r\n.\r\n"), B(".\r\n"), 0, 7, 1 },
	{ "stuffed dots", B("...\r\n.\r\n"), B("..\r\n"), 0, 8, 1 },
	{ "stuffed text", B(".x\r\n. y\r\n.\r\n"), B("x\r\n y\r\n"), 0, 12, 1 },
	{ "stuffed after lines", B("a\r\n..b\r\n..\r\nc\r\n.\r\n"),
	  B("a\r\n.b\r\n.\r\nc\r\n"), 0, 18, 1 },
	{ "dot then 8 bytes", B(".abcdefghijklmnop\r\n.\r\n"),
	  B("abcdefghijklmnop\r\n"), 0, 22, 1 },

	/* Pipelining after the dot: the rest is the next command's. */
	{ "pipelined QUIT", B("hello\r\n.\r\nQUIT\r\n"), B("hello\r\n"),
	  0, 10, 1 },
	{ "empty, then MAIL", B(".\r\nMAIL FROM:<>\r\n"), B(""), 0, 3, 1 },
	{ "pipelined dot line", B("a\r\n.\r\n.\r\n"), B("a\r\n"), 0, 6, 1 },
	{ "pipelined bare LF", B("a\r\n.\r\n\n"), B("a\r\n"), 0, 6, 1 },

	/* Not the end (yet). */
	{ "no terminator", B("hello\r\n"), B("hello\r\n"), 0, 7, 0 },
	{ "dot pending", B("hello\r\n."), B("hello\r\n"), 0, 8, 0 },
	{ "dot CR pending", B("hello\r\n.\r"), B("hello\r\n"), 0, 9, 0 },
	{ "CR pending", B("hello\r"), B("hello\r"), 0, 6, 0 },
	{ "no CRLF before dot", B("hello.\r\n"), B("hello.\r\n"), 0, 8, 0 },
	{ "nothing", B(""), B(""), 0, 0, 0 },

	/* SMTP smuggling (CVE-2023-51764): none of these ends the data, each
	 * sets DATA_ERR_BARE, a bare LF or CR never starts a line. */
	{ "LF . LF", B("a\n.\nb\r\n.\r\n"), B("a\n.\nb\r\n"),
	  DATA_ERR_BARE, 10, 1 },
	{ "CR . CR", B("a\r.\rb\r\n.\r\n"), B("a\r.\rb\r\n"),
	  DATA_ERR_BARE, 10, 1 },
	{ "LF . CRLF", B("a\n.\r\nb\r\n.\r\n"), B("a\n.\r\nb\r\n"),
	  DATA_ERR_BARE, 11, 1 },
	{ "CRLF . LF", B("a\r\n.\nb\r\n.\r\n"), B("a\r\n\nb\r\n"),
	  DATA_ERR_BARE, 11, 1 },
	{ "CR . CRLF", B("a\r.\r\nb\r\n.\r\n"), B("a\r.\r\nb\r\n"),
	  DATA_ERR_BARE, 11, 1 },
	{ "LF . LF first", B("\n.\n.\r\n"), B("\n.\n.\r\n"),
	  DATA_ERR_BARE, 6, 0 },
	{ "LF . LF first, real end", B("\n.\n\r\n.\r\nX"), B("\n.\n\r\n"),
	  DATA_ERR_BARE, 8, 1 },
	{ "CR . CR first", B("\r.\r\r\n.\r\n"), B("\r.\r\r\n"),
	  DATA_ERR_BARE, 8, 1 },
	{ "LF . CRLF first", B("\n.\r\n.\r\n"), B("\n.\r\n"),
	  DATA_ERR_BARE, 7, 1 },
	{ "CRLF . LF first", B("\r\n.\n.\r\n"), B("\r\n\n.\r\n"),
	  DATA_ERR_BARE, 7, 0 },
	{ "dot LF first", B(".\n\r\n.\r\n"), B("\n\r\n"), DATA_ERR_BARE, 7, 1 },
	{ "CR . CRLF first", B("\r.\r\n.\r\n"), B("\r.\r\n"),
	  DATA_ERR_BARE, 7, 1 },
	{ "bare LF does not start a line", B("a\r\n.\n.\r\n"),
	  B("a\r\n\n.\r\n"),
	  DATA_ERR_BARE, 8, 0 },
	{ "bare CR does not start a line", B("a\r.\r\n"), B("a\r.\r\n"),
	  DATA_ERR_BARE, 5, 0 },
	{ "CR CRLF . CRLF", B("a\r\r\n.\r\n"), B("a\r\r\n"),
	  DATA_ERR_BARE, 7, 1 },
	{ "CRLF . CR CRLF", B("a\r\n.\r\r\n.\r\n"), B("a\r\n\r\r\n"),
	  DATA_ERR_BARE, 10, 1 },
	{ "CRLF . CR x", B("a\r\n.\rx\r\n.\r\n"), B("a\r\n\rx\r\n"),
	  DATA_ERR_BARE, 11, 1 },
	{ "CRLF . CR . CRLF", B("\r\n.\r.\r\n.\r\n"), B("\r\n\r.\r\n"),
	  DATA_ERR_BARE, 10, 1 },
	{ "CRLF .. LF", B("\r\n..\n.\r\n"), B("\r\n.\n.\r\n"),
	  DATA_ERR_BARE, 8, 0 },
	{ "LF CR LF", B("a\n\r\n.\r\n"), B("a\n\r\n"), DATA_ERR_BARE, 7, 1 },
	{ "bare LF in a long run", B("aaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\r\n.\r\n"),
	  B("aaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\r\n"), DATA_ERR_BARE, 34, 1 },
	{ "bare CR in a long run", B("aaaaaaaaaaaa\rbbbbbbbbbbbbbbbb\r\n.\r\n"),
	  B("aaaaaaaaaaaa\rbbbbbbbbbbbbbbbb\r\n"), DATA_ERR_BARE, 34, 1 },

	/* Content flags. */
	{ "8-bit", B("caf\xc3\xa9\r\n.\r\n"), B("caf\xc3\xa9\r\n"),
	  DATA_HAS_8BIT, 10, 1 },
	{ "8-bit late in a run", B("0123456789abcdefghij\xff\r\n.\r\n"),
	  B("0123456789abcdefghij\xff\r\n"), DATA_HAS_8BIT, 26, 1 },
	{ "8-bit after the dot", B("a\r\n.\r\n\x80"), B("a\r\n"), 0, 6, 1 },
	{ "stuffed 8-bit", B("..\x80\r\n.\r\n"), B(".\x80\r\n"),
	  DATA_HAS_8BIT, 8, 1 },
	{ "NUL", B("a\0b\r\n.\r\n"), B("a\0b\r\n"), DATA_HAS_NUL, 8, 1 },
	{ "NUL late in a run", B("0123456789abcdefghij\0\r\n.\r\n"),
	  B("0123456789abcdefghij\0\r\n"), DATA_HAS_NUL, 26, 1 },
	{ "8-bit then NUL",
	  B("\x80 aaaaaaaaaaaaaaaa\0 bbbbbbbbbbbbbbbb\r\n.\r\n"),
	  B("\x80 aaaaaaaaaaaaaaaa\0 bbbbbbbbbbbbbbbb\r\n"),
	  DATA_HAS_8BIT | DATA_HAS_NUL, 41, 1 },
	{ "NUL then 8-bit",
	  B("\0aaaaaaaaaaaaaaaa\x80 bbbbbbbbbbbbbbbb\r\n.\r\n"),
	  B("\0aaaaaaaaaaaaaaaa\x80 bbbbbbbbbbbbbbbb\r\n"),
	  DATA_HAS_8BIT | DATA_HAS_NUL, 40, 1 },
	{ "everything", B("\x80\0\n\r\n.\r\n"), B("\x80\0\n\r\n"),
	  DATA_HAS_8BIT | DATA_HAS_NUL | DATA_ERR_BARE, 8, 1 },
};

/* What one way of feeding produced. */
struct result {
	char		*out;
	size_t		 outlen;
	size_t		 outcap;
	size_t		 consumed;
	int		 done;
	int		 flags;
	uint64_t	 size;
};

static void
sink(const char *buf, size_t len, void *arg)
{
	struct result *r = arg;

	/* Unstuffing never adds bytes. */
	assert_true(len > 0);
	assert_true(len <= r->outcap - r->outlen);
	memcpy(r->out + r->outlen, buf, len);
	r->outlen += len;
}

/*
 * Feed in[0..len) in pieces ending at cuts[0] < cuts[1] < ... < len,
 * stopping at the end of the data as a session would.
 */
static void
feed(struct result *r, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, int with_sink)
{
	struct data_scan ds;
	size_t from = 0, to, i, n;

	memset(r, 0, sizeof(*r));
	r->outcap = len;
	r->out = malloc(len + 1);
	assert_non_null(r->out);
	data_scan_init(&ds);
	for (i = 0; i <= ncuts && !r->done; i++) {
		to = i < ncuts ? cuts[i] : len;
		n = data_scan_feed(&ds, in + from, to - from, &r->done,
		    with_sink ? sink : NULL, r);
		assert_true(n <= to - from);
		/* Only the end of the data leaves bytes unconsumed. */
		if (!r->done)
			assert_int_equal(n, to - from);
		r->consumed += n;
		from = to;
	}
	r->flags = ds.flags;
	r->size = ds.size;
}

static void
check(const char *name, const char *how, const struct result *r,
    const char *out, size_t outlen, int flags, size_t consumed, int done)
{
	if (out != NULL &&
	    (r->outlen != outlen || memcmp(r->out, out, outlen) != 0))
		fail_msg("%s (%s): wrong output, %zu bytes", name, how,
		    r->outlen);
	if (r->flags != flags)
		fail_msg("%s (%s): flags 0x%x, want 0x%x", name, how,
		    r->flags, flags);
	if (r->consumed != consumed)
		fail_msg("%s (%s): consumed %zu, want %zu", name, how,
		    r->consumed, consumed);
	if (r->done != done)
		fail_msg("%s (%s): done %d, want %d", name, how, r->done, done);
	if (r->size != outlen)
		fail_msg("%s (%s): size %llu, want %zu", name, how,
		    (unsigned long long)r->size, outlen);
}

/* Whole, at every cut, at every pair of cuts (up to 64 bytes), byte by byte. */
static void
check_splits(const char *name, const char *in, size_t inlen, const char *out,
    size_t outlen, int flags, size_t consumed, int done)
{
	struct result r;
	size_t *cuts, i, j;

	cuts = calloc(inlen + 2, sizeof(*cuts));
	assert_non_null(cuts);

	feed(&r, in, inlen, NULL, 0, 1);
	check(name, "whole", &r, out, outlen, flags, consumed, done);
	free(r.out);

	feed(&r, in, inlen, NULL, 0, 0);
	assert_int_equal(r.outlen, 0);
	/* No sink: only the counters. */
	check(name, "no sink", &r, NULL, outlen, flags, consumed, done);
	free(r.out);

	for (i = 0; i <= inlen; i++) {
		cuts[0] = i;
		feed(&r, in, inlen, cuts, 1, 1);
		check(name, "split in two", &r, out, outlen, flags, consumed,
		    done);
		free(r.out);
	}
	if (inlen <= 64) {
		for (i = 0; i <= inlen; i++)
			for (j = i; j <= inlen; j++) {
				cuts[0] = i;
				cuts[1] = j;
				feed(&r, in, inlen, cuts, 2, 1);
				check(name, "split in three", &r, out, outlen,
				    flags, consumed, done);
				free(r.out);
			}
	}
	for (i = 0; i < inlen; i++)
		cuts[i] = i + 1;
	feed(&r, in, inlen, cuts, inlen ? inlen - 1 : 0, 1);
	check(name, "byte by byte", &r, out, outlen, flags, consumed, done);
	free(r.out);
	free(cuts);
}

static void
test_rows(void **state)
{
	const struct row *t;

	for (t = rows; t < rows + sizeof(rows) / sizeof(rows[0]); t++)
		check_splits(t->name, t->in, t->inlen, t->out, t->outlen,
		    t->flags, t->consumed, t->done);
}

/*
 * Line length, RFC 5322 §2.1.1: 998 octets before CRLF, counted on the
 * message (a stuffing dot is not part of it, a bare CR or LF is). Input is
 * pre, n times 'a', post; output outpre, n times 'a', outpost.
 */
static const struct {
	const char	*name;
	const char	*pre, *post, *outpre, *outpost;
	size_t		 n;
	int		 flags;
	int		 done;
} long_rows[] = {
	{ "998", "", "\r\n.\r\n", "", "\r\n", 998, 0, 1 },
	{ "999", "", "\r\n.\r\n", "", "\r\n", 999, DATA_LONG_LINE, 1 },
	{ "5000", "", "\r\n.\r\n", "", "\r\n", 5000, DATA_LONG_LINE, 1 },
	{ "998 after a line", "x\r\n", "\r\n.\r\n", "x\r\n", "\r\n", 998,
	  0, 1 },
	{ "999 after a line", "x\r\n", "\r\n.\r\n", "x\r\n", "\r\n", 999,
	  DATA_LONG_LINE, 1 },
	{ "998 then a line", "", "\r\nx\r\n.\r\n", "", "\r\nx\r\n", 998, 0, 1 },
	{ "stuffed, 998 unstuffed", "..", "\r\n.\r\n", ".", "\r\n", 997, 0, 1 },
	{ "stuffed, 999 unstuffed", "..", "\r\n.\r\n", ".", "\r\n", 998,
	  DATA_LONG_LINE, 1 },
	{ "bare CR counts", "a\r", "\r\n.\r\n", "a\r", "\r\n", 997,
	  DATA_LONG_LINE | DATA_ERR_BARE, 1 },
	{ "bare CR, 998", "a\r", "\r\n.\r\n", "a\r", "\r\n", 996,
	  DATA_ERR_BARE, 1 },
	{ "bare LF counts", "a\n", "\r\n.\r\n", "a\n", "\r\n", 997,
	  DATA_LONG_LINE | DATA_ERR_BARE, 1 },
	{ "held dot CR counts", ".\r", "\r\n.\r\n", "\r", "\r\n", 998,
	  DATA_LONG_LINE | DATA_ERR_BARE, 1 },
	{ "open line, 999", "", "", "", "", 999, DATA_LONG_LINE, 0 },
	{ "open line, 998", "", "", "", "", 998, 0, 0 },
	{ "open line, 998 and CR", "", "\r", "", "\r", 998, 0, 0 },
};

static char *
build(const char *pre, size_t n, const char *post, size_t *len_out)
{
	size_t lpre = strlen(pre), lpost = strlen(post);
	char *s = malloc(lpre + n + lpost + 1);

	assert_non_null(s);
	memcpy(s, pre, lpre);
	memset(s + lpre, 'a', n);
	memcpy(s + lpre + n, post, lpost);
	*len_out = lpre + n + lpost;
	return s;
}

static void
test_long_lines(void **state)
{
	size_t i, inlen, outlen;
	char *in, *out;

	for (i = 0; i < sizeof(long_rows) / sizeof(long_rows[0]); i++) {
		in = build(long_rows[i].pre, long_rows[i].n, long_rows[i].post,
		    &inlen);
		out = build(long_rows[i].outpre, long_rows[i].n,
		    long_rows[i].outpost, &outlen);
		check_splits(long_rows[i].name, in, inlen, out, outlen,
		    long_rows[i].flags, inlen, long_rows[i].done);
		free(in);
		free(out);
	}
}

/* The flags are sticky: a later clean message part clears nothing. */
static void
test_sticky(void **state)
{
	static const char *parts[] = { "a\nb\r\n", "\x80\r\n", "\0\r\n" };
	static const size_t lens[] = { 5, 3, 3 };
	static const int want[] = { DATA_ERR_BARE, DATA_ERR_BARE |
	    DATA_HAS_8BIT, DATA_ERR_BARE | DATA_HAS_8BIT | DATA_HAS_NUL };
	struct data_scan ds;
	int done;
	size_t i;

	data_scan_init(&ds);
	for (i = 0; i < 3; i++) {
		assert_int_equal(data_scan_feed(&ds, parts[i], lens[i], &done,
		    NULL, NULL), lens[i]);
		assert_int_equal(ds.flags, want[i]);
		assert_int_equal(done, 0);
	}
	assert_int_equal(data_scan_feed(&ds, "ok\r\n.\r\n", 7, &done, NULL,
	    NULL), 7);
	assert_int_equal(done, 1);
	assert_int_equal(ds.flags, want[2]);
	assert_int_equal(ds.size, 15);
}

/* A big message in big reads, as a session sees it. */
static void
test_big(void **state)
{
	static const char line[] = "The quick brown fox jumps over the lazy "
	    "dog, again and again.\r\n";
	static const char stuffed[] = "..and a dot\r\n";
	struct result r;
	size_t i, n = 20000, len, outlen, cuts[3];
	char *in, *out, *p, *q;

	len = n * (sizeof(line) - 1) + sizeof(stuffed) - 1 + 5;
	in = malloc(len);
	out = malloc(len);
	assert_non_null(in);
	assert_non_null(out);
	p = in;
	q = out;
	for (i = 0; i < n; i++) {
		memcpy(p, line, sizeof(line) - 1);
		memcpy(q, line, sizeof(line) - 1);
		p += sizeof(line) - 1;
		q += sizeof(line) - 1;
		if (i == n / 2) {
			memcpy(p, stuffed, sizeof(stuffed) - 1);
			memcpy(q, stuffed + 1, sizeof(stuffed) - 2);
			p += sizeof(stuffed) - 1;
			q += sizeof(stuffed) - 2;
		}
	}
	memcpy(p, ".\r\n", 3);
	p += 3;
	outlen = (size_t)(q - out);
	memcpy(p, "QU", 2);	/* start of the next command */
	cuts[0] = 4096;
	cuts[1] = len / 2 + 1;
	cuts[2] = len - 4;
	feed(&r, in, len, cuts, 3, 1);
	check("big", "4096, half, -4", &r, out, outlen, 0, len - 2, 1);
	free(r.out);
	free(in);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
