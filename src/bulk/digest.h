/*
 * digest: the bulk detector's fuzzy body checksums (docs/bulk.md §2),
 * computed while DATA streams. A bounded streaming MIME walk (Content-Type,
 * Content-Transfer-Encoding, charset, up to BULK_MIME_DEPTH nested
 * multiparts; quoted-printable and base64 decoded a character at a time)
 * feeds the decoded text parts to three digests:
 *
 *   body     the text parts, white space removed: exact copies;
 *   letters  the words' part (the first text part, or the last HTML
 *            alternative of the multipart/alternative it is in) with
 *            HTML tags, entities, digits, URLs
 *            (cut to their registered domain), e-mail addresses and
 *            salutation lines dropped, lower-cased letters only, the first
 *            BULK_LETTERS_MAX of them: personalised copies;
 *   shingles a min-hash of the words' part's word 3-grams, as
 *            BULK_BANDS bands of BULK_BAND_ROWS hashes, each band one
 *            digest: a copy with a sentence changed still shares a band.
 *
 * Each digest reads a fixed amount: body its first BULK_BODY_MAX octets
 * that are not white space, letters and shingles the words' part up to
 * its BULK_LETTERS_MAX-th letter or SHINGLE_WORDS-th word; the walk stops
 * once all have what they read, and at BULK_TEXT_MAX octets of decoded
 * text in any case. Memory per walk is fixed (struct bulk_walk, about
 * 4 KiB) and so is the work, whatever the message's size; the rest of the
 * message is not looked at (docs/bulk.md §2, "Bounds"). Exposed to
 * peer bytes, split anywhere (fuzz/fuzz_bulk.c). Owner: the session that
 * made it.
 */
#ifndef BACKMX_DIGEST_H
#define BACKMX_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define BULK_MIME_DEPTH		3	/* nested multiparts followed */
#define BULK_TEXT_MAX		(16 * 1024)	/* decoded text octets read, at most */
#define BULK_BODY_MAX		(4 * 1024)	/* non-white octets in "body" */
#define BULK_LETTERS_MAX	2048	/* letters hashed into "letters" */
#define BULK_BANDS		4	/* shingle bands, one digest each */
#define BULK_BAND_ROWS		6	/* min-hashes per band */
#define BULK_NDIGEST		(2 + BULK_BANDS)
#define BULK_SUBJECT_MAX	80	/* a sample Subject kept, for the operator */
#define BULK_SENDER_MAX		257	/* and its envelope sender, no brackets */
#define BULK_HEX_LEN		32	/* a digest as text: 128 bits in hex */

enum bulk_kind {
	BULK_BODY = 0,
	BULK_LETTERS,
	BULK_SHINGLE,
};

struct bulk_digest {
	int		kind;		/* enum bulk_kind */
	int		band;		/* BULK_SHINGLE: 0..BULK_BANDS-1 */
	int		valid;		/* 0: under the minimum, never counted */
	char		hex[BULK_HEX_LEN + 1];	/* the key, kind and band included */
};

struct bulk_digests {
	struct bulk_digest d[BULK_NDIGEST];	/* body, letters, bands */
	char		subject[BULK_SUBJECT_MAX];	/* top-level Subject, cut */
	char		sender[BULK_SENDER_MAX];	/* the caller's, lower case */
	uint64_t	text_octets;	/* decoded text seen, for the log */
};

struct bulk_walk;

struct bulk_walk *bulk_walk_new(void);
/* Start a new message; the walk is reusable. */
void		 bulk_walk_reset(struct bulk_walk *);
/* Message bytes (header and body, dot-unstuffed, CR LF line ends), split
 * anywhere. */
void		 bulk_walk_feed(struct bulk_walk *, const char *, size_t);
/* The digests of what was fed; the walk must be reset before reuse. */
void		 bulk_walk_finish(struct bulk_walk *, struct bulk_digests *);
void		 bulk_walk_free(struct bulk_walk *);

/* p[0..n-1]'s SHA-256, its first 128 bits in hex (BULK_HEX_LEN + 1). */
void		 bulk_hash_hex(const void *p, size_t n, char *hex);

/* "body", "letters", "shingle". */
const char	*bulk_kind_name(int kind);

#endif
