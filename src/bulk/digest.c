/*
 * digest: the streaming MIME walk and the three bulk digests
 * (docs/bulk.md §2 says what each keeps and drops, and why).
 *
 * Four layers, each a small state machine fed one byte at a time, so a
 * split anywhere in the input changes nothing and nothing but a line of
 * at most WALK_LINE_MAX octets is ever buffered:
 *
 *   lines    -> the MIME walk: header fields, boundaries, parts
 *   a part   -> its decoder: identity, quoted-printable or base64
 *   decoded  -> the body digest (all text parts) and, for the words'
 *               part, the HTML stripper
 *   text     -> the tokenizer: words, URLs, salutation lines -> the
 *               letters digest and the shingles
 *
 * Designed from the published ideas (DCC's Body and fuzzy sums, Pyzor's
 * digest, rspamd's shingles); no code of theirs is used.
 */
#include "digest.h"

/* SHA-256's own functions, deprecated in OpenSSL 3 in favour of EVP, for
 * the recipient keys: an EVP start and end (an engine lookup, a provider
 * context made and freed) cost ten times the hashing of an address
 * (docs/bulk.md §5). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "str.h"
#include "xmem.h"

#define WALK_LINE_MAX	1000	/* RFC 5322 §2.1.1 line, CR LF excluded */
#define WALK_HDR_MAX	1024	/* an unfolded header field kept */
#define WALK_BND_MAX	70	/* RFC 2046 §5.1.1 boundary */
#define WORD_MAX	48	/* octets of a word kept */
#define HOST_MAX	253	/* a URL's host */
#define HOLD_WORDS	8	/* a salutation line has at most this many */
#define SHINGLE_WORDS	1000	/* words min-hashed: bounded work */
#define SHINGLES	(BULK_BANDS * BULK_BAND_ROWS)
#define BODY_BUF	256	/* non-white octets batched per hash update */

/* Below these a digest is "invalid" and never counted (docs/bulk.md §2):
 * a short body is as likely a one-line ham reply as anything. */
#define BODY_MIN	64	/* non-white octets */
#define LETTERS_MIN	64	/* letters */
#define SHINGLE_MIN	16	/* word 3-grams */

enum cte { CTE_IDENT = 0, CTE_QP, CTE_B64 };
enum ptype { P_OTHER = 0, P_PLAIN, P_HTML, P_MULTI };

/* Where the walk is in the current line's entity. */
enum wstate {
	W_HEADER = 0,	/* reading an entity's header fields */
	W_BODY,		/* an entity's body: decode if text */
	W_SKIP,		/* a preamble, an epilogue: up to the next boundary */
};

enum qpstate { QP_TEXT = 0, QP_EQ, QP_EQ1 };
enum hstate { H_TEXT = 0, H_TAG, H_ENT };
enum tstate { T_WORD = 0, T_COLON, T_SLASH, T_HOST, T_REST, T_MAILHOST };
enum lstate { L_START = 0, L_HOLD, L_DIRECT };
/* How a charset writes a no-break space: a word break like any space. */
enum nbsp { NBSP_NONE = 0, NBSP_UTF8, NBSP_LATIN };

struct entity {
	int		type;		/* enum ptype */
	int		alt;		/* multipart/alternative */
	int		cte;		/* enum cte */
	char		charset[32];	/* kept for the log; not transcoded */
	char		boundary[WALK_BND_MAX + 1];
};

/* The body and letters digests' running hash (see h128_add()). */
struct h128 {
	uint64_t	a, b;		/* the two lanes */
	uint64_t	n;		/* octets added */
	unsigned char	tail[16];	/* a block not yet full */
	size_t		taillen;
};

struct bulk_walk {
	/* lines */
	size_t		linelen;
	unsigned	line_cont:1;	/* the line overflowed: not at its start */
	int		done;		/* BULK_TEXT_MAX read: nothing more is */

	/* the MIME walk */
	int		wstate;		/* enum wstate */
	int		top;		/* the top-level header is being read */
	size_t		hdrlen;
	struct entity	cur;
	size_t		bndlen[BULK_MIME_DEPTH];
	unsigned	altmask;	/* bit i: level i is an alternative */
	int		depth;
	int		in_text;	/* cur's body is a text part being fed */
	int		first_text;	/* the letters and shingles see this part */
	int		first_done;	/* the words' part has ended */
	int		alt_level;	/* the alternative the words' part is
					 * in, + 1; 0: none (see words_begin) */

	/* decoders */
	int		qp;		/* enum qpstate */
	int		qphi;
	uint32_t	b64acc;
	int		b64bits;

	/* the body digest */
	struct h128	body;
	size_t		bodybuflen;
	uint64_t	body_n;
	uint64_t	text_octets;

	/* the HTML stripper */
	int		html;
	int		hstate;		/* enum hstate */
	char		tag[8];
	size_t		taglen;
	int		tagquote;
	int		tagdone;	/* the name ended: attributes follow */
	int		raw;		/* inside <style> or <script> */
	char		ent[11];	/* an entity's name, cut */
	size_t		entlen;

	/* the tokenizer */
	int		nbsp;		/* enum nbsp: the words' part's */
	int		c2;		/* a UTF-8 0xc2 held: NBSP if 0xa0 follows */
	int		tstate;		/* enum tstate */
	size_t		wordlen;
	size_t		hostlen;
	int		slashes;

	/* lines of words: salutations */
	int		lstate;		/* enum lstate */
	size_t		holdlen[HOLD_WORDS];
	size_t		nhold;

	/* letters and shingles */
	struct h128	letters;
	size_t		letters_n;
	uint64_t	w1, w2;		/* the two previous words' hashes */
	uint64_t	nwords;
	int		tok_done;	/* letters and shingles are full */
	uint64_t	nshingles;
	uint32_t	minh[SHINGLES];	/* 32 bits a min-hash: a band is 128 */

	char		subject[BULK_SUBJECT_MAX];

	/*
	 * Buffers, each read only up to its length above: a reset leaves
	 * them as they are. Zeroing them was 3 KiB written per message, to
	 * lines that 50 sessions' walks keep out of the cache.
	 */
	char		line[WALK_LINE_MAX];		/* linelen */
	char		hdr[WALK_HDR_MAX];		/* hdrlen */
	char		bnd[BULK_MIME_DEPTH][WALK_BND_MAX + 1];	/* bndlen */
	unsigned char	bodybuf[BODY_BUF];		/* bodybuflen */
	char		word[WORD_MAX + 1];	/* wordlen; + a slot written
						 * past a full word */
	char		host[HOST_MAX + 1];		/* hostlen */
	char		hold[HOLD_WORDS][WORD_MAX];	/* holdlen */
};

static void	text_byte(struct bulk_walk *, unsigned char);
static void	text_end(struct bulk_walk *);

/* --- hashing ------------------------------------------------------------ */

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/*
 * A word eight octets a step (a word is at most WORD_MAX): FNV-1a's one
 * multiply per octet was a serial chain, a third of a long word's cost
 * (docs/bulk.md §5). The length goes in first, so that a word and the same
 * word with NULs after it differ.
 */
static uint64_t
word_hash(const char *w, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, v;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&v, w + i, 8);
		h = mix64(h ^ v);
	}
	if (i < n) {
		v = 0;
		memcpy(&v, w + i, n - i);
		h = mix64(h ^ v);
	}
	return h;
}

static void
hex128(const unsigned char *sum, char *out)
{
	static const char x[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		out[2 * i] = x[sum[i] >> 4];
		out[2 * i + 1] = x[sum[i] & 15];
	}
	out[BULK_HEX_LEN] = '\0';
}

/* Two 64-bit lanes as a digest's hex, the first lane's low octet first. */
static void
hex_lanes(uint64_t a, uint64_t b, char *hex)
{
	unsigned char sum[16];
	int k;

	for (k = 0; k < 8; k++) {
		sum[k] = (unsigned char)(a >> (8 * k));
		sum[8 + k] = (unsigned char)(b >> (8 * k));
	}
	hex128(sum, hex);
}

/* Append to buf (bufsz, *len used) what fits of p[0..n-1]: how much. */
static size_t
buf_append(void *buf, size_t bufsz, size_t *len, const char *p, size_t n)
{
	size_t take = bufsz - *len;

	if (take > n)
		take = n;
	memcpy((char *)buf + *len, p, take);
	*len += take;
	return take;
}

static uint64_t
rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/*
 * The body and letters digests: a 128-bit hash of their octets, in two
 * 64-bit lanes of eight octets a step. A step is an exclusive or, a
 * rotation and a multiply by an odd constant: for each input, a bijection
 * of the lane, so no step loses what came before; the end mixes the
 * lanes into each other with the length. SHA-256 here was 40 % of the walk
 * of a long message (~2 cycles an octet with the CPU's SHA instructions;
 * this is ~0.3) and bought nothing: whoever wants a message's digest to
 * match has its text, and can send copies of it (docs/bulk.md §2).
 */
static void
h128_start(struct h128 *h, uint64_t kind)
{
	h->n = 0;
	h->taillen = 0;		/* the tail is read only up to it */
	h->a = mix64(kind ^ 0x626f64796c657474ULL);
	h->b = mix64(h->a ^ 0x9e3779b97f4a7c15ULL);
}

static void
h128_block(struct h128 *h, const unsigned char *p)
{
	uint64_t v0, v1;

	memcpy(&v0, p, 8);
	memcpy(&v1, p + 8, 8);
	h->a = rotl64(h->a ^ (v0 * 0xbf58476d1ce4e5b9ULL), 29) *
	    0x9e3779b97f4a7c15ULL;
	h->b = rotl64(h->b ^ (v1 * 0x94d049bb133111ebULL), 31) *
	    0xc2b2ae3d27d4eb4fULL;
}

static void
h128_add(struct h128 *h, const void *vp, size_t n)
{
	const unsigned char *p = vp;
	size_t take;

	h->n += n;
	if (h->taillen > 0) {
		take = buf_append(h->tail, sizeof(h->tail), &h->taillen,
		    (const char *)p, n);
		p += take;
		n -= take;
		if (h->taillen < sizeof(h->tail))
			return;
		h128_block(h, h->tail);
		h->taillen = 0;
	}
	for (; n >= 16; p += 16, n -= 16)
		h128_block(h, p);
	memcpy(h->tail, p, n);
	h->taillen = n;
}

static void
h128_end(struct h128 *h, char *hex)
{
	uint64_t a, b;

	if (h->taillen > 0) {
		/* Zeros after a short tail; the length tells them apart. */
		memset(h->tail + h->taillen, 0, sizeof(h->tail) - h->taillen);
		h128_block(h, h->tail);
	}
	a = mix64(h->a ^ h->n);
	b = mix64(h->b ^ rotl64(a, 32));
	a = mix64(a ^ b);
	hex_lanes(a, b, hex);
}

void
bulk_hash_hex(const void *p, size_t n, char *hex)
{
	unsigned char sum[SHA256_DIGEST_LENGTH];
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, p, n);
	SHA256_Final(sum, &c);
	hex128(sum, hex);
}

/* --- letters and shingles ----------------------------------------------- */

/* One word of the words' part, salutations already dropped. */
static void
word_out(struct bulk_walk *w, const char *p, size_t n)
{
	uint64_t h, sh;
	size_t i, take;

	if (w->letters_n < BULK_LETTERS_MAX) {
		take = BULK_LETTERS_MAX - w->letters_n;
		if (take > n)
			take = n;
		h128_add(&w->letters, p, take);
		w->letters_n += take;
	}
	h = word_hash(p, n);
	if (w->nwords >= 2) {
		/* Order matters within a 3-gram: rotate before mixing. */
		sh = mix64(w->w2 ^ ((w->w1 << 21) | (w->w1 >> 43)) ^
		    ((h << 42) | (h >> 22)));
		/* Each mix gives two 32-bit hash functions' values. */
		for (i = 0; i < SHINGLES; i += 2) {
			uint64_t v = mix64(sh ^ (0x9e3779b97f4a7c15ULL *
			    (i + 1)));
			uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);

			if (lo < w->minh[i])
				w->minh[i] = lo;
			if (hi < w->minh[i + 1])
				w->minh[i + 1] = hi;
		}
		w->nshingles++;
	}
	w->w2 = w->w1;
	w->w1 = h;
	/* The words end where either digest is full, a place no white space
	 * and no markup moves: the rest of the part feeds the body digest
	 * only. */
	if (++w->nwords >= SHINGLE_WORDS || w->letters_n >= BULK_LETTERS_MAX)
		w->tok_done = 1;
}

/*
 * A line that starts with one of these and has at most HOLD_WORDS words
 * is a salutation ("Dear John Smith,", "Hi Anna"): dropped, since bulk
 * mailers put the recipient's name there.
 */
static int
is_greeting(const char *wd, size_t n)
{
	static const char *const g[] = { "dear", "dearest", "hello", "hi",
	    "hey", "greetings", "good", "attention", "attn", "howdy",
	    "hallo", "bonjour", "hola", "salut", "liebe", "lieber", "sehr",
	    "ciao", "mr", "mrs", "ms", "dr", NULL };
	int i;

	if (n > 9)	/* "greetings", the longest */
		return 0;
	for (i = 0; g[i] != NULL; i++)
		if (strncmp(wd, g[i], n) == 0 && g[i][n] == '\0')
			return 1;
	return 0;
}

static void
hold_flush(struct bulk_walk *w)
{
	size_t i;

	for (i = 0; i < w->nhold; i++)
		word_out(w, w->hold[i], w->holdlen[i]);
	w->nhold = 0;
}

static void
line_word(struct bulk_walk *w, const char *p, size_t n)
{
	switch (w->lstate) {
	case L_START:
		if (is_greeting(p, n)) {
			memcpy(w->hold[0], p, n);
			w->holdlen[0] = n;
			w->nhold = 1;
			w->lstate = L_HOLD;
			return;
		}
		w->lstate = L_DIRECT;
		word_out(w, p, n);
		return;
	case L_HOLD:
		if (w->nhold < HOLD_WORDS) {
			memcpy(w->hold[w->nhold], p, n);
			w->holdlen[w->nhold++] = n;
			return;
		}
		hold_flush(w);
		w->lstate = L_DIRECT;
		word_out(w, p, n);
		return;
	default:
		word_out(w, p, n);
		return;
	}
}

/* The end of a line of text: a short held line was a salutation. */
static void
line_end(struct bulk_walk *w)
{
	w->nhold = 0;
	w->lstate = L_START;
}

/* --- the tokenizer ------------------------------------------------------ */

static int
is_letter(unsigned char c)
{
	/* Octets >= 0x80 are letters of some charset: a message in
	 * Cyrillic or CJK must not be letter-less (docs/bulk.md §2). */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static void
word_end(struct bulk_walk *w)
{
	if (w->wordlen > 0)
		line_word(w, w->word, w->wordlen);
	w->wordlen = 0;
}

/*
 * A URL's host cut to its registered domain: the last two labels, three
 * when the last is a two-letter country code under a generic second level
 * ("co.uk", "com.au"). No public-suffix list: close enough to keep
 * tracking hosts ("t1234.news.example.com") of one sender together.
 * Emitted as one word of its letters.
 */
static void
host_out(struct bulk_walk *w)
{
	static const char *const sld[] = { "co", "com", "net", "org", "ac",
	    "gov", "edu", "ne", "or", "go", NULL };
	char out[WORD_MAX];
	size_t i, n = 0, dots = 0, keep = 2, start = 0;
	const char *last, *prev;

	while (w->hostlen > 0 && w->host[w->hostlen - 1] == '.')
		w->hostlen--;
	w->host[w->hostlen] = '\0';
	if ((last = strrchr(w->host, '.')) != NULL && strlen(last + 1) == 2) {
		for (prev = last; prev > w->host && prev[-1] != '.'; prev--)
			;
		for (i = 0; sld[i] != NULL; i++)
			if ((size_t)(last - prev) == strlen(sld[i]) &&
			    strncmp(prev, sld[i], last - prev) == 0)
				keep = 3;
	}
	for (i = w->hostlen; i > 0; i--)
		if (w->host[i - 1] == '.' && ++dots == keep) {
			start = i;
			break;
		}
	for (i = start; i < w->hostlen && n < sizeof(out); i++)
		if (is_letter((unsigned char)w->host[i]))
			out[n++] = w->host[i];
	if (n > 0)
		line_word(w, out, n);
	w->hostlen = 0;
}

static int
url_end_char(unsigned char c)
{
	return c <= ' ' || c == '"' || c == '\'' || c == '<' || c == '>' ||
	    c == ')' || c == ']' || c == '}';
}

static int
host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
	    c == '-';
}

static void
tok_octet(struct bulk_walk *w, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	switch (w->tstate) {
	case T_COLON:		/* "http:" seen, the word held */
		if (c == '/' && ++w->slashes == 2) {
			w->tstate = T_HOST;
			w->hostlen = 0;
			w->wordlen = 0;
			return;
		}
		if (c == '/')
			return;
		w->tstate = T_WORD;
		word_end(w);
		break;
	case T_HOST:
		if (host_char(c) && w->hostlen < HOST_MAX) {
			w->host[w->hostlen++] = (char)c;
			return;
		}
		host_out(w);
		w->tstate = url_end_char(c) ? T_WORD : T_REST;
		if (w->tstate == T_REST)
			return;
		break;
	case T_REST:
		if (!url_end_char(c))
			return;
		w->tstate = T_WORD;
		break;
	case T_MAILHOST:	/* an address's domain: dropped */
		if (host_char(c))
			return;
		w->tstate = T_WORD;
		break;
	default:
		break;
	}

	if (is_letter(c)) {
		if (w->wordlen < WORD_MAX)
			w->word[w->wordlen++] = (char)c;
		return;
	}
	if (c >= '0' && c <= '9')
		return;		/* numbers are what personalisation changes */
	if (c == ':' && ((w->wordlen == 4 && memcmp(w->word, "http", 4) ==
	    0) || (w->wordlen == 5 && memcmp(w->word, "https", 5) == 0))) {
		w->tstate = T_COLON;
		w->slashes = 0;
		return;
	}
	if (c == '.' && w->wordlen == 3 && memcmp(w->word, "www", 3) == 0) {
		w->wordlen = 0;
		memcpy(w->host, "www.", 4);
		w->hostlen = 4;
		w->tstate = T_HOST;
		return;
	}
	if (c == '@') {
		/* An e-mail address is the recipient's more often than
		 * not: its local part and domain go. */
		w->wordlen = 0;
		w->tstate = T_MAILHOST;
		return;
	}
	word_end(w);
	if (c == '\n')
		line_end(w);
}

/*
 * A no-break space is a space: an HTML copy has "&nbsp;" (a separator, as
 * every entity), its text copy the character itself, and a mailer that
 * re-wraps the text may turn it into a plain space (docs/bulk.md §2). In
 * UTF-8 it is 0xc2 0xa0, in the ISO-8859 and windows-125x charsets 0xa0;
 * elsewhere 0xa0 may be half of another character and is left alone.
 */
static void
tok_byte(struct bulk_walk *w, unsigned char c)
{
	if (w->c2) {
		w->c2 = 0;
		if (c == 0xa0) {
			tok_octet(w, ' ');
			return;
		}
		tok_octet(w, 0xc2);
	}
	if (c == 0xc2 && w->nbsp == NBSP_UTF8) {
		w->c2 = 1;
		return;
	}
	tok_octet(w, c == 0xa0 && w->nbsp == NBSP_LATIN ? ' ' : c);
}

/* The charset's no-break space. */
static int
nbsp_of(const char *charset)
{
	if (strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "utf8") == 0)
		return NBSP_UTF8;
	if (strncasecmp(charset, "iso-8859-", 9) == 0 ||
	    strncasecmp(charset, "windows-125", 11) == 0)
		return NBSP_LATIN;
	return NBSP_NONE;
}

/*
 * Each octet's part in a word, for tok_run(): TOK_DIGIT (dropped), TOK_BREAK
 * (the word ends, tok_byte() decides the rest: white space, punctuation,
 * and 0xc2 and 0xa0, which may be a no-break space), else the letter as
 * the word keeps it, lower-case. Filled once, read by every walk.
 */
#define TOK_BREAK	0
#define TOK_DIGIT	1
static unsigned char tok_class[256];

static void
tok_class_init(void)
{
	int c;

	for (c = 0; c < 256; c++)
		tok_class[c] = c >= '0' && c <= '9' ? TOK_DIGIT :
		    c >= 'A' && c <= 'Z' ? (unsigned char)(c + 'a' - 'A') :
		    c == 0xc2 || c == 0xa0 ? TOK_BREAK :
		    is_letter((unsigned char)c) ? (unsigned char)c : TOK_BREAK;
}

/*
 * Are p[0..7] all ASCII letters? Then 1 and lower[] their lower case. One
 * 64-bit word (SWAR): OR 0x20 lower-cases A-Z and moves no other octet
 * into a-z; then each octet, its high bit clear, is tested for >= 'a' and
 * <= 'z' by adding so that bit 7 carries the answer (no carry crosses
 * octets: 0x7f + 0x1f < 0x100).
 */
static int
letters8(const unsigned char *p, unsigned char *lower)
{
	const uint64_t hi = 0x8080808080808080ULL;
	uint64_t v, l;

	memcpy(&v, p, 8);
	l = v | 0x2020202020202020ULL;
	if ((v & hi) != 0 || ((l + 0x1f1f1f1f1f1f1f1fULL) & hi) != hi ||
	    ((l + 0x0505050505050505ULL) & hi) != 0)
		return 0;
	memcpy(lower, &l, 8);
	return 1;
}

/*
 * Identity-encoded plain text, CR as a space: what tok_byte() does to each
 * octet, with the common case, the letters and digits of a word, taken a
 * run at a time (docs/bulk.md §5). Stops once the tokenizer is full.
 */
static void
tok_run(struct bulk_walk *w, const unsigned char *p, size_t n)
{
	unsigned char c, lower[8];
	size_t i = 0, len, k, next8;

	while (i < n && !w->tok_done) {
		if (w->tstate != T_WORD || w->c2) {
			tok_byte(w, p[i] == '\r' ? ' ' : p[i]);
			i++;
			continue;
		}
		/* wordlen in a local, as in body_octets(). A long word
		 * (a token of the text, letters beyond WORD_MAX only skipped)
		 * goes eight ASCII letters a step; then one look-up an octet,
		 * and a full word's octets land in its spare slot. */
		len = w->wordlen;
		for (next8 = i; i < n; i++) {
			/* Eight at once, tried again 8 octets after a miss:
			 * prose (short words) pays a try per 8 octets. */
			if (i >= next8 && i + 8 <= n) {
				if (letters8(p + i, lower)) {
					if (len + 8 <= WORD_MAX) {
						memcpy(w->word + len, lower, 8);
						len += 8;
					} else
						for (k = 0; k < 8 &&
						    len < WORD_MAX; k++)
							w->word[len++] =
							    (char)lower[k];
					i += 7;
					continue;
				}
				next8 = i + 8;
			}
			c = tok_class[p[i]];
			if (c > TOK_DIGIT) {
				w->word[len] = (char)c;
				len += len < WORD_MAX;
			} else if (c != TOK_DIGIT)
				break;	/* digits are dropped, as there */
		}
		w->wordlen = len;
		if (i < n) {
			tok_byte(w, p[i] == '\r' ? ' ' : p[i]);
			i++;
		}
	}
}

/* The end of the words' part's words. */
static void
tok_end(struct bulk_walk *w)
{
	if (w->tok_done)
		return;		/* a word the bound cut stays out */
	if (w->c2) {
		w->c2 = 0;
		tok_octet(w, 0xc2);
	}
	if (w->tstate == T_HOST)
		host_out(w);
	w->tstate = T_WORD;
	word_end(w);
	line_end(w);
}

/* --- the HTML stripper -------------------------------------------------- */

/* Tags that end a line of text, so that "<p>Dear Ann,</p>" is a line. */
static int
tag_breaks(const char *t)
{
	static const char *const b[] = { "br", "p", "/p", "div", "/div",
	    "tr", "/tr", "li", "/li", "td", "/td", "table", "/table", "h1",
	    "h2", "h3", "/h1", "/h2", "/h3", "hr", "title", "/title", NULL };
	int i;

	for (i = 0; b[i] != NULL; i++)
		if (strcmp(t, b[i]) == 0)
			return 1;
	return 0;
}

/*
 * What the tokenizer sees of an entity: the character for those that
 * matter to it, as the text copy of the message has them ("&amp;" inside
 * a link's text is the link's '&': a separator there would end the URL and
 * make words of its query), else a separator, as any punctuation is.
 */
static unsigned char
entity_char(const char *e)
{
	static const struct {
		const char	*name;
		unsigned char	 c;
	} map[] = { { "amp", '&' }, { "#38", '&' }, { "#x26", '&' },
	    { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
	    { "#39", '\'' }, { "#x27", '\'' }, { NULL, 0 } };
	int i;

	for (i = 0; map[i].name != NULL; i++)
		if (strcasecmp(e, map[i].name) == 0)
			return map[i].c;
	return ' ';
}

static void
html_byte(struct bulk_walk *w, unsigned char c)
{
	switch (w->hstate) {
	case H_TAG:
		if (w->tagquote) {
			if (c == w->tagquote)
				w->tagquote = 0;
			return;
		}
		if (c == '"' || c == '\'') {
			w->tagquote = c;
			return;
		}
		if (c == '>') {
			w->tag[w->taglen] = '\0';
			w->hstate = H_TEXT;
			if (strcmp(w->tag, "style") == 0 ||
			    strcmp(w->tag, "script") == 0)
				w->raw = 1;
			else if (strcmp(w->tag, "/style") == 0 ||
			    strcmp(w->tag, "/script") == 0)
				w->raw = 0;
			if (!w->raw)
				tok_byte(w, tag_breaks(w->tag) ? '\n' : ' ');
			return;
		}
		if (w->tagdone)
			return;	/* attributes: only '>' and quotes matter */
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (((c >= 'a' && c <= 'z') || (c >= '1' && c <= '6') ||
		    (c == '/' && w->taglen == 0)) && w->taglen + 1 <
		    sizeof(w->tag))
			w->tag[w->taglen++] = (char)c;
		else if (w->taglen > 0)
			w->tagdone = 1;
		return;
	case H_ENT:
		if (((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '#') && w->entlen < 10) {
			w->ent[w->entlen++] = (char)c;
			return;
		}
		w->ent[w->entlen] = '\0';
		w->hstate = H_TEXT;
		if (!w->raw)
			tok_byte(w, entity_char(w->ent));
		if (c == ';')
			return;
		break;
	default:
		break;
	}
	if (c == '<') {
		w->hstate = H_TAG;
		w->taglen = 0;
		w->tagquote = 0;
		w->tagdone = 0;
		return;
	}
	if (w->raw)
		return;
	if (c == '&') {
		w->hstate = H_ENT;
		w->entlen = 0;
		return;
	}
	/* Line ends in HTML source are spaces: tags make the lines. */
	tok_byte(w, c == '\n' || c == '\r' ? ' ' : c);
}

/* --- decoded text ------------------------------------------------------- */

static void
body_flush(struct bulk_walk *w)
{
	h128_add(&w->body, w->bodybuf, w->bodybuflen);
	w->bodybuflen = 0;
}

/*
 * Has every digest what it reads? The body its BULK_BODY_MAX octets, and
 * the words their BULK_LETTERS_MAX letters or SHINGLE_WORDS words (or the
 * words' part is over; in an alternative, only once it closed, as an HTML
 * part may replace them): then the walk stops, as it does at
 * BULK_TEXT_MAX octets of text whatever the digests have (markup with
 * little text, text without letters). Only the first stop depends on the
 * content; the second bounds the work.
 */
static void
walk_full(struct bulk_walk *w)
{
	if (w->body_n >= BULK_BODY_MAX && (w->first_done ||
	    (w->tok_done && w->alt_level == 0)))
		w->done = 1;
}

static void
text_byte(struct bulk_walk *w, unsigned char c)
{
	if (w->done)
		return;
	if (++w->text_octets == BULK_TEXT_MAX)
		w->done = 1;	/* this octet is the last one read */
	if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n') &&
	    w->body_n < BULK_BODY_MAX) {
		w->bodybuf[w->bodybuflen++] = c;
		w->body_n++;
		if (w->bodybuflen == sizeof(w->bodybuf))
			body_flush(w);
	}
	if (w->first_text && !w->tok_done) {
		if (w->html)
			html_byte(w, c);
		else
			tok_byte(w, c == '\r' ? ' ' : c);
	}
	walk_full(w);
}

/* The octets the body digest drops, as a bit mask. */
#define WHITE	((1ULL << ' ') | (1ULL << '\t') | (1ULL << '\r') | \
		    (1ULL << '\n'))

/* Identity-encoded text for the body digest. */
static void
body_octets(struct bulk_walk *w, const char *p, size_t n)
{
	size_t i, len = w->bodybuflen, kept = 0, keep, room;
	unsigned char c;

	w->text_octets += n;
	if (w->body_n >= BULK_BODY_MAX)
		return;
	/* A line without white space (a long word, an encoded blob) is
	 * kept whole: three vectorised scans, then hashed where it is. */
	if (memchr(p, ' ', n) == NULL && memchr(p, '\t', n) == NULL &&
	    memchr(p, '\r', n) == NULL) {
		if (n > BULK_BODY_MAX - w->body_n)
			n = BULK_BODY_MAX - w->body_n;
		w->body_n += n;
		body_flush(w);		/* what came before goes first */
		h128_add(&w->body, p, n);
		return;
	}
	/*
	 * Counters in locals: a store to bodybuf may alias any field of the
	 * walk, so the compiler reloaded them per octet. And no branch on
	 * white space, which prose makes unpredictable: every octet is
	 * stored, the next overwrites it unless it was kept (docs/bulk.md
	 * §5).
	 */
	room = BULK_BODY_MAX - w->body_n;
	for (i = 0; i < n && kept < room; i++) {
		c = (unsigned char)p[i];
		w->bodybuf[len] = c;
		keep = !(c <= ' ' && (WHITE >> (c & 63) & 1));
		len += keep;
		kept += keep;
		if (len == sizeof(w->bodybuf)) {
			w->bodybuflen = len;
			body_flush(w);
			len = 0;
		}
	}
	w->bodybuflen = len;
	w->body_n += kept;
}

/* A text part ended (a boundary, or the end of the message). */
static void
text_end(struct bulk_walk *w)
{
	if (!w->in_text)
		return;
	w->in_text = 0;
	if (w->first_text) {
		tok_end(w);
		w->first_text = 0;
		/* In an alternative, an HTML part may still replace it. */
		w->first_done = w->alt_level == 0;
		walk_full(w);
	}
}

/* --- decoders ----------------------------------------------------------- */

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* One octet of a text part's body, encoded; eol: the line ended here. */
static void
decode_byte(struct bulk_walk *w, unsigned char c)
{
	int v;

	switch (w->cur.cte) {
	case CTE_QP:
		if (w->qp == QP_EQ) {
			if ((v = hexval(c)) >= 0) {
				w->qphi = v;
				w->qp = QP_EQ1;
				return;
			}
			/* Not an escape: keep it as it came. */
			w->qp = QP_TEXT;
			text_byte(w, '=');
			break;
		}
		if (w->qp == QP_EQ1) {
			w->qp = QP_TEXT;
			if ((v = hexval(c)) >= 0) {
				text_byte(w, (unsigned char)(w->qphi * 16 + v));
				return;
			}
			text_byte(w, '=');
			text_byte(w, "0123456789ABCDEF"[w->qphi]);
			break;
		}
		if (c == '=') {
			w->qp = QP_EQ;
			return;
		}
		break;
	case CTE_B64:
		if ((v = b64val(c)) < 0) {
			if (c == '=')
				w->b64bits = 0;	/* padding: the group ends */
			return;
		}
		w->b64acc = (w->b64acc << 6) | (uint32_t)v;
		w->b64bits += 6;
		if (w->b64bits >= 8) {
			w->b64bits -= 8;
			text_byte(w, (unsigned char)(w->b64acc >>
			    w->b64bits));
		}
		return;
	default:
		break;
	}
	text_byte(w, c);
}

/* The end of an encoded line (not of a line-buffer chunk). */
static void
decode_eol(struct bulk_walk *w)
{
	if (w->cur.cte == CTE_B64)
		return;
	if (w->cur.cte == CTE_QP) {
		if (w->qp == QP_EQ) {	/* soft line break */
			w->qp = QP_TEXT;
			return;
		}
		if (w->qp == QP_EQ1)
			text_byte(w, '=');
		w->qp = QP_TEXT;
	}
	text_byte(w, '\n');
}

/* --- header fields ------------------------------------------------------ */

/* The value of parameter 'name' in a Content-Type's parameters, or "". */
static void
param(const char *p, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name), n = 0;

	out[0] = '\0';
	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, name, nl) != 0)
			continue;
		p += nl;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '"') {
			for (p++; *p != '\0' && *p != '"' && n + 1 < outsz; p++)
				out[n++] = *p;
		} else {
			for (; *p != '\0' && *p != ';' && *p != ' ' &&
			    *p != '\t' && n + 1 < outsz; p++)
				out[n++] = *p;
		}
		out[n] = '\0';
		return;
	}
}

static void
field_done(struct bulk_walk *w)
{
	char *v;

	if (w->hdrlen == 0)
		return;
	w->hdr[w->hdrlen] = '\0';
	w->hdrlen = 0;
	if ((v = strchr(w->hdr, ':')) == NULL)
		return;
	*v++ = '\0';
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(w->hdr, "content-type") == 0) {
		if (strncasecmp(v, "multipart/", 10) == 0) {
			w->cur.type = P_MULTI;
			w->cur.alt = strncasecmp(v + 10, "alternative",
			    11) == 0;
			param(v, "boundary", w->cur.boundary,
			    sizeof(w->cur.boundary));
		} else if (strncasecmp(v, "text/html", 9) == 0)
			w->cur.type = P_HTML;
		else if (strncasecmp(v, "text/plain", 10) == 0 ||
		    strncasecmp(v, "text/", 5) == 0 || *v == '\0')
			w->cur.type = P_PLAIN;
		else
			w->cur.type = P_OTHER;
		param(v, "charset", w->cur.charset, sizeof(w->cur.charset));
	} else if (strcasecmp(w->hdr, "content-transfer-encoding") == 0) {
		if (strncasecmp(v, "quoted-printable", 16) == 0)
			w->cur.cte = CTE_QP;
		else if (strncasecmp(v, "base64", 6) == 0)
			w->cur.cte = CTE_B64;
		else
			w->cur.cte = CTE_IDENT;
	} else if (w->top && strcasecmp(w->hdr, "subject") == 0)
		str_copy(w->subject, sizeof(w->subject), v);
}

/* The words' state as a walk starts it. */
static void
words_start(struct bulk_walk *w)
{
	size_t i;

	h128_start(&w->letters, BULK_LETTERS);
	w->letters_n = 0;
	w->w1 = w->w2 = 0;
	w->nwords = 0;
	w->tok_done = 0;
	w->nshingles = 0;
	for (i = 0; i < SHINGLES; i++)
		w->minh[i] = UINT32_MAX;
}

/*
 * Do the letters and shingles read this text part (cur)? The first text
 * part, unless it is one of a multipart/alternative's: there a later
 * text/html alternative replaces what an earlier one gave them (RFC 2046
 * §5.1.4: the last alternative is the sender's best; a text part before
 * an HTML one is often a notice of the sender's, the same in every
 * message it sends, docs/bulk.md §2).
 */
static int
words_begin(struct bulk_walk *w)
{
	int i;

	if (w->first_done)
		return 0;
	if (w->alt_level > 0) {
		if (w->cur.type != P_HTML)
			return 0;
		words_start(w);
		return 1;
	}
	/* The innermost alternative around the first text part. */
	for (i = w->depth - 1; i >= 0; i--)
		if (w->altmask & (1u << i)) {
			w->alt_level = i + 1;
			break;
		}
	return 1;
}

/* An entity's header ended: what its body is. */
static void
header_done(struct bulk_walk *w)
{
	field_done(w);
	w->top = 0;
	w->qp = QP_TEXT;
	w->b64acc = 0;
	w->b64bits = 0;
	if (w->cur.type == P_MULTI) {
		/* An unusable boundary, or one level too deep: the body is
		 * skipped up to a boundary we know. */
		if (w->cur.boundary[0] != '\0' && w->depth < BULK_MIME_DEPTH) {
			str_copy(w->bnd[w->depth], sizeof(w->bnd[0]),
			    w->cur.boundary);
			w->bndlen[w->depth] = strlen(w->cur.boundary);
			if (w->cur.alt)
				w->altmask |= 1u << w->depth;
			else
				w->altmask &= ~(1u << w->depth);
			w->depth++;
		}
		w->wstate = W_SKIP;
		return;
	}
	w->wstate = W_BODY;
	if (w->cur.type == P_PLAIN || w->cur.type == P_HTML) {
		w->in_text = 1;
		w->html = w->cur.type == P_HTML;
		w->hstate = H_TEXT;
		w->raw = 0;
		if (words_begin(w)) {
			w->first_text = 1;
			w->nbsp = nbsp_of(w->cur.charset);
			w->c2 = 0;
			w->tstate = T_WORD;
			w->wordlen = 0;
			w->lstate = L_START;
			w->nhold = 0;
		}
	}
}

static void
entity_start(struct bulk_walk *w)
{
	memset(&w->cur, 0, sizeof(w->cur));
	w->cur.type = P_PLAIN;	/* RFC 2045 §5.2: no Content-Type */
	w->hdrlen = 0;
	w->wstate = W_HEADER;
}

/* --- lines -------------------------------------------------------------- */

/*
 * Is this line a boundary of an open multipart? Innermost first; a match
 * closes the levels inside it (RFC 2046 §5.1.2: an inner part left open).
 */
static int
boundary_line(struct bulk_walk *w, const char *p, size_t n)
{
	int i;
	size_t bl, j;

	if (n < 2 || p[0] != '-' || p[1] != '-')
		return 0;
	for (i = w->depth - 1; i >= 0; i--) {
		bl = w->bndlen[i];
		if (n < 2 + bl || memcmp(p + 2, w->bnd[i], bl) != 0)
			continue;
		j = 2 + bl;
		text_end(w);
		if (n >= j + 2 && p[j] == '-' && p[j + 1] == '-') {
			w->depth = i;	/* closed: its epilogue is skipped */
			w->wstate = W_SKIP;
		} else {
			w->depth = i + 1;
			entity_start(w);
		}
		/* The words' alternative is over: what they read stays. */
		if (w->alt_level > 0 && w->depth < w->alt_level) {
			w->alt_level = 0;
			w->first_done = 1;
			walk_full(w);
		}
		return 1;
	}
	return 0;
}

static void
header_line(struct bulk_walk *w, const char *p, size_t n, int cont)
{
	size_t take;

	if (!cont && n == 0) {
		header_done(w);
		return;
	}
	if (!cont && p[0] != ' ' && p[0] != '\t')
		field_done(w);
	take = sizeof(w->hdr) - 1 - w->hdrlen;
	if (take > n)
		take = n;
	memcpy(w->hdr + w->hdrlen, p, take);
	w->hdrlen += take;
}

/* One line, or a chunk of an overlong one; eol: a line end follows. */
static void
line_out(struct bulk_walk *w, const char *p, size_t n, int eol)
{
	size_t i;

	if (w->done)
		return;
	if (!w->line_cont && w->depth > 0 && boundary_line(w, p, n))
		return;
	switch (w->wstate) {
	case W_HEADER:
		header_line(w, p, n, w->line_cont);
		return;
	case W_BODY:
		if (!w->in_text)
			return;
		if (w->cur.cte == CTE_IDENT && (!w->first_text ||
		    w->tok_done || !w->html)) {
			/* The digests' states are apart: the body's first,
			 * then the words, each a run at a time. */
			if (n >= BULK_TEXT_MAX - w->text_octets) {
				n = BULK_TEXT_MAX - w->text_octets;
				eol = 0;
			}
			body_octets(w, p, n);
			if (w->first_text)
				tok_run(w, (const unsigned char *)p, n);
			if (w->text_octets == BULK_TEXT_MAX)
				w->done = 1;
			else if (eol)
				text_byte(w, '\n');
			walk_full(w);
			return;
		}
		for (i = 0; i < n && !w->done; i++)
			decode_byte(w, (unsigned char)p[i]);
		if (eol)
			decode_eol(w);
		return;
	default:
		return;
	}
}

/* Octets of the current line; a full buffer goes out as a chunk of an
 * overlong line first. Where chunks end depends on the line alone, never on
 * how the input was split. */
static void
line_add(struct bulk_walk *w, const char *p, size_t n)
{
	size_t take;

	while (n > 0) {
		if (w->linelen == sizeof(w->line)) {
			line_out(w, w->line, w->linelen, 0);
			w->linelen = 0;
			w->line_cont = 1;
		}
		take = buf_append(w->line, sizeof(w->line), &w->linelen, p, n);
		p += take;
		n -= take;
	}
}

void
bulk_walk_feed(struct bulk_walk *w, const char *buf, size_t len)
{
	const char *nl;
	size_t n;

	/* Once the digests have read their BULK_TEXT_MAX octets, the rest
	 * of the message costs nothing. */
	while (len > 0 && !w->done) {
		nl = memchr(buf, '\n', len);
		n = nl != NULL ? (size_t)(nl - buf) : len;
		if (nl != NULL && w->linelen == 0 && !w->line_cont &&
		    n <= WALK_LINE_MAX) {
			/* A whole line in this piece: read where it is, as
			 * line_add() would have had it in one go. */
			line_out(w, buf, n > 0 && buf[n - 1] == '\r' ? n - 1 :
			    n, 1);
			buf += n + 1;
			len -= n + 1;
			continue;
		}
		line_add(w, buf, n);
		if (nl != NULL) {
			/* CR LF or LF ends a line; a CR elsewhere is text. */
			if (w->linelen > 0 && w->line[w->linelen - 1] == '\r')
				w->linelen--;
			line_out(w, w->line, w->linelen, 1);
			w->linelen = 0;
			w->line_cont = 0;
			n++;
		}
		buf += n;
		len -= n;
	}
}

/* --- the walk ----------------------------------------------------------- */

struct bulk_walk *
bulk_walk_new(void)
{
	struct bulk_walk *w = xcalloc(1, sizeof(*w));

	if (tok_class['a'] == 0)
		tok_class_init();
	bulk_walk_reset(w);
	return w;
}

void
bulk_walk_reset(struct bulk_walk *w)
{
	memset(w, 0, offsetof(struct bulk_walk, line));
	h128_start(&w->body, BULK_BODY);
	words_start(w);
	w->top = 1;
	entity_start(w);
}

/*
 * A band's key: its BULK_BAND_ROWS 32-bit min-hashes mixed down to 128
 * bits, starting from the band's number (so two bands never share a
 * key), not hashed again. SHA-256 here, eight
 * starts and ends, was a third of a short message's walk; and it bought
 * nothing: whoever wants a band of someone else's text has that text, and
 * can send copies of it (docs/bulk.md §2).
 */
static void
band_key(int band, const uint32_t *m, char *hex)
{
	/* "band" and its number */
	uint64_t a = 0x62616e6400000000ULL | (uint64_t)band, b = 0, v;
	int k;

	for (k = 0; k < BULK_BAND_ROWS; k += 2) {
		v = (uint64_t)m[k];
		if (k + 1 < BULK_BAND_ROWS)
			v |= (uint64_t)m[k + 1] << 32;
		a = mix64(a ^ v);
		b = mix64(b ^ a);
	}
	hex_lanes(a, b, hex);
}

void
bulk_walk_finish(struct bulk_walk *w, struct bulk_digests *out)
{
	struct bulk_digest *d;
	int b;

	if (w->linelen > 0 || w->line_cont)
		line_out(w, w->line, w->linelen, 1);
	w->linelen = 0;
	if (w->wstate == W_HEADER)
		header_done(w);	/* a message that is only a header */
	if (w->in_text && w->cur.cte == CTE_QP && w->qp != QP_TEXT)
		decode_eol(w);
	text_end(w);
	body_flush(w);

	memset(out, 0, sizeof(*out));
	str_copy(out->subject, sizeof(out->subject), w->subject);
	out->text_octets = w->text_octets;

	d = &out->d[0];
	d->kind = BULK_BODY;
	d->valid = w->body_n >= BODY_MIN;
	h128_end(&w->body, d->hex);

	d = &out->d[1];
	d->kind = BULK_LETTERS;
	d->valid = w->letters_n >= LETTERS_MIN;
	h128_end(&w->letters, d->hex);

	for (b = 0; b < BULK_BANDS; b++) {
		d = &out->d[2 + b];
		d->kind = BULK_SHINGLE;
		d->band = b;
		d->valid = w->nshingles >= SHINGLE_MIN;
		band_key(b, w->minh + b * BULK_BAND_ROWS, d->hex);
	}
}

void
bulk_walk_free(struct bulk_walk *w)
{
	if (w == NULL)
		return;
	free(w);
}

const char *
bulk_kind_name(int kind)
{
	switch (kind) {
	case BULK_BODY:
		return "body";
	case BULK_LETTERS:
		return "letters";
	default:
		return "shingle";
	}
}
