/*
 * digest_test: which copies of a message meet on which digest, and which
 * distinct messages do not. Each variant is what a bulk mailer does to
 * one template per recipient (docs/bulk.md §2): a name in the greeting, a
 * number, a tracking URL, lines re-wrapped, quoted-printable instead of
 * base64, HTML instead of text, one sentence changed. Every message is
 * also fed byte by byte and must give the same digests as fed whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "digest.h"

#define MSG_MAX	65536

/* The template: sentences of one offer. %N is the personal number, %U the
 * tracking URL. */
static const char *const offer[] = {
	"We are pleased to tell you that your account has been selected "
	"for our exclusive winter savings programme.",
	"Members of the programme receive a discount of up to seventy "
	"percent on every product in our catalogue, with free shipping on "
	"all orders placed before the end of the month.",
	"Your personal reference number is %N and it is valid for the "
	"next fourteen days only.",
	"To claim your reward simply visit %U and enter the reference "
	"number shown above.",
	"Thousands of satisfied customers have already taken advantage "
	"of this limited offer and you should not miss out either.",
	"If you have any questions our friendly support team is available "
	"around the clock to help you with your order.",
	"Our warehouse ships from three locations across the country so "
	"that most parcels arrive within two working days of your order.",
	"Every item comes with a full guarantee and may be returned within "
	"thirty days if it does not meet your expectations in any way.",
	"Gift wrapping is available at no extra charge and a personal card "
	"can be added to any parcel that you send to friends or family.",
	"Join the many households who trust us for their seasonal shopping "
	"and discover why our members keep coming back year after year.",
	"This message was sent to you because you registered on our website "
	"or took part in one of our promotions in the last twelve months.",
	"To stop receiving these offers follow the link at the bottom of this "
	"message and your address will be removed from our lists at once.",
	NULL
};

static const char *const ham1[] = {
	"Hi team, the build on the release branch failed again last night "
	"because the integration tests timed out while talking to the "
	"staging database.",
	"I think the connection pool is too small after the change that "
	"Peter merged on Tuesday, so I would like to raise it to sixteen "
	"and watch the next few runs.",
	"Could somebody who knows the deployment scripts have a look at "
	"the health check as well, it seems to start before the migrations "
	"have finished.",
	NULL
};

static const char *const ham2[] = {
	"Thanks for the photos from the weekend, the one of the lake at "
	"sunset is beautiful and I have already printed it for the kitchen "
	"wall.",
	"We are thinking of going back in spring when the trails are dry "
	"again, would you and the children like to come along this time?",
	"Let me know which dates suit you and I will book the cabin near "
	"the old mill before it fills up.",
	NULL
};

struct variant {
	const char	*greeting;	/* "Dear Alice," or NULL */
	const char	*number;
	const char	*url;
	int		 width;		/* wrap text at this column */
	int		 cte;		/* 0 8bit, 1 quoted-printable, 2 base64 */
	int		 html;
	int		 alternative;	/* multipart/alternative text + html */
	int		 change;	/* replace sentence change - 1 */
	int		 junk;		/* insert hash-buster words */
	const char *const *text;	/* NULL: the offer */
};

/* The text of a variant, wrapped, as plain text or HTML. */
static size_t
render(const struct variant *v, int html, char *out, size_t outsz)
{
	const char *const *t = v->text != NULL ? v->text : offer;
	char para[2048], word[256];
	size_t n = 0, col = 0, i;
	const char *p, *q;

	if (html)
		n += (size_t)snprintf(out + n, outsz - n,
		    "<html><head><style>p { color: red; }</style></head>"
		    "<body>\r\n");
	if (v->greeting != NULL)
		n += (size_t)snprintf(out + n, outsz - n, html ?
		    "<p>%s</p>\r\n" : "%s\r\n\r\n", v->greeting);
	for (i = 0; t[i] != NULL; i++) {
		const char *s = t[i];

		if (v->change == (int)i + 1)
			s = "Our records show that many people in your town "
			    "already use this service every single day.";
		if (v->junk && i == 5)
			s = "If you have any questions our friendly support "
			    "team xqzv is available around the clock wvkj to "
			    "help you with your order.";
		/* Substitute %N and %U. */
		para[0] = '\0';
		for (p = s; *p != '\0'; p++) {
			size_t l = strlen(para);

			if (p[0] == '%' && p[1] == 'N') {
				snprintf(para + l, sizeof(para) - l, "%s",
				    v->number);
				p++;
			} else if (p[0] == '%' && p[1] == 'U') {
				if (html)
					snprintf(para + l, sizeof(para) - l,
					    "<a href=\"%s\">%s</a>", v->url,
					    v->url);
				else
					snprintf(para + l, sizeof(para) - l,
					    "%s", v->url);
				p++;
			} else {
				para[l] = *p;
				para[l + 1] = '\0';
			}
		}
		if (html)
			n += (size_t)snprintf(out + n, outsz - n, "<p>");
		col = 0;
		for (p = para; *p != '\0'; p = q) {
			while (*p == ' ')
				p++;
			if (*p == '\0')
				break;
			for (q = p; *q != '\0' && *q != ' '; q++)
				;
			snprintf(word, sizeof(word), "%.*s", (int)(q - p), p);
			if (col > 0 && col + 1 + strlen(word) >
			    (size_t)v->width) {
				n += (size_t)snprintf(out + n, outsz - n,
				    "\r\n");
				col = 0;
			}
			n += (size_t)snprintf(out + n, outsz - n, "%s%s",
			    col > 0 ? " " : "", word);
			col += (col > 0) + strlen(word);
		}
		n += (size_t)snprintf(out + n, outsz - n, html ? "</p>\r\n" :
		    "\r\n\r\n");
	}
	if (html)
		n += (size_t)snprintf(out + n, outsz - n, "</body></html>\r\n");
	return n;
}

static size_t
enc_qp(const char *in, size_t len, char *out)
{
	size_t i, n = 0, col = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\r' && i + 1 < len && in[i + 1] == '\n') {
			memcpy(out + n, "\r\n", 2);
			n += 2;
			i++;
			col = 0;
			continue;
		}
		if (col >= 70) {
			memcpy(out + n, "=\r\n", 3);
			n += 3;
			col = 0;
		}
		if (c == '=' || c >= 0x7f || c < ' ') {
			n += (size_t)sprintf(out + n, "=%02X", c);
			col += 3;
		} else {
			out[n++] = (char)c;
			col++;
		}
	}
	return n;
}

static size_t
enc_b64(const char *in, size_t len, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	    "qrstuvwxyz0123456789+/";
	size_t i, n = 0, col = 0;

	for (i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
		size_t k = len - i < 3 ? len - i : 3;

		if (k > 1)
			v |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (k > 2)
			v |= (unsigned char)in[i + 2];
		out[n++] = t[(v >> 18) & 63];
		out[n++] = t[(v >> 12) & 63];
		out[n++] = k > 1 ? t[(v >> 6) & 63] : '=';
		out[n++] = k > 2 ? t[v & 63] : '=';
		if ((col += 4) >= 76) {
			memcpy(out + n, "\r\n", 2);
			n += 2;
			col = 0;
		}
	}
	memcpy(out + n, "\r\n", 2);
	return n + 2;
}

static size_t
part(const struct variant *v, int html, char *out, size_t outsz)
{
	static char text[MSG_MAX];
	size_t tl = render(v, html, text, sizeof(text)), n;

	n = (size_t)snprintf(out, outsz,
	    "Content-Type: text/%s;\r\n\tcharset=\"utf-8\"\r\n"
	    "Content-Transfer-Encoding: %s\r\n\r\n", html ? "html" : "plain",
	    v->cte == 1 ? "quoted-printable" : v->cte == 2 ? "base64" :
	    "8bit");
	if (v->cte == 1)
		n += enc_qp(text, tl, out + n);
	else if (v->cte == 2)
		n += enc_b64(text, tl, out + n);
	else {
		memcpy(out + n, text, tl);
		n += tl;
	}
	return n;
}

static size_t
message(const struct variant *v, char *out)
{
	size_t n;

	n = (size_t)sprintf(out, "From: <news@shop.example>\r\n"
	    "Subject: Your winter reward\r\nMIME-Version: 1.0\r\n");
	if (!v->alternative)
		return n + part(v, v->html, out + n, MSG_MAX - n);
	n += (size_t)sprintf(out + n, "Content-Type: multipart/alternative;"
	    " boundary=\"=_b1\"\r\n\r\nThis is a MIME message.\r\n--=_b1\r\n");
	n += part(v, 0, out + n, MSG_MAX - n);
	n += (size_t)sprintf(out + n, "\r\n--=_b1\r\n");
	n += part(v, 1, out + n, MSG_MAX - n);
	n += (size_t)sprintf(out + n, "\r\n--=_b1--\r\nepilogue\r\n");
	return n;
}

static void
digests_of(const char *m, size_t len, struct bulk_digests *d)
{
	struct bulk_walk *w = bulk_walk_new();
	struct bulk_digests d1;
	size_t i;

	bulk_walk_feed(w, m, len);
	bulk_walk_finish(w, d);
	/* Byte by byte: the same. */
	bulk_walk_reset(w);
	for (i = 0; i < len; i++)
		bulk_walk_feed(w, m + i, 1);
	bulk_walk_finish(w, &d1);
	assert_memory_equal(d, &d1, sizeof(d1));
	bulk_walk_free(w);
}

static struct bulk_digests
variant(const struct variant *v)
{
	static char m[MSG_MAX];
	struct bulk_digests d;

	digests_of(m, message(v, m), &d);
	return d;
}

/* Do a and b meet on this kind: share its digest, or for the shingles two
 * bands, as the verdict wants (docs/bulk.md §4)? */
static int
meet(const struct bulk_digests *a, const struct bulk_digests *b, int kind)
{
	int i, n = 0;

	for (i = 0; i < BULK_NDIGEST; i++)
		if (a->d[i].kind == kind && a->d[i].valid && b->d[i].valid &&
		    strcmp(a->d[i].hex, b->d[i].hex) == 0)
			n++;
	return n >= (kind == BULK_SHINGLE ? 2 : 1);
}

static const struct variant base = { "Dear Alice Miller,", "4711-0815",
	"http://t.shop-offers.example.com/c?u=alice&id=1", 72, 0, 0, 0, 0,
	0, NULL };

static void
test_exact(void **st)
{
	struct bulk_digests a = variant(&base), b = variant(&base);
	int i;

	(void)st;
	for (i = 0; i < BULK_NDIGEST; i++)
		assert_true(a.d[i].valid);
	assert_true(meet(&a, &b, BULK_BODY));
	assert_true(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));
	assert_string_equal(a.subject, "Your winter reward");
}

static void
test_personalised(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), b;

	(void)st;
	/* Name, number and tracking link all differ. */
	v.greeting = "Dear Mr. Robert J. Anderson,";
	v.number = "9921-3377";
	v.url = "https://click7.mail.shop-offers.example.com/r/zz91?u=bob";
	b = variant(&v);
	assert_false(meet(&a, &b, BULK_BODY));
	assert_true(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));

	/* No greeting at all. */
	v.greeting = NULL;
	b = variant(&v);
	assert_true(meet(&a, &b, BULK_LETTERS));
}

static void
test_rewrap_and_encodings(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), b;

	(void)st;
	v.width = 38;
	b = variant(&v);
	assert_true(meet(&a, &b, BULK_BODY));	/* white space only */
	assert_true(meet(&a, &b, BULK_LETTERS));

	v = base;
	v.cte = 1;
	b = variant(&v);
	assert_true(meet(&a, &b, BULK_BODY));
	assert_true(meet(&a, &b, BULK_LETTERS));
	v.cte = 2;
	b = variant(&v);
	assert_true(meet(&a, &b, BULK_BODY));
	assert_true(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));
}

static void
test_html(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), b;

	(void)st;
	v.html = 1;
	v.cte = 1;
	v.greeting = "Hello Bob,";
	b = variant(&v);
	assert_false(meet(&a, &b, BULK_BODY));
	assert_true(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));

	/* multipart/alternative, base64 parts: the HTML part counts, and
	 * it is the text's. */
	v = base;
	v.alternative = 1;
	v.cte = 2;
	b = variant(&v);
	assert_true(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));
}

#define STUB	"We attempted to deliver this message to you with HTML " \
		"formatting. However, your e-mail program does not support " \
		"HTML-enhanced messages. Please change your settings."
#define ARTICLE_A "The harvest festival opens on Saturday with a parade " \
		"through the old town, followed by a market of local produce " \
		"and music in the square until late in the evening."
#define ARTICLE_B "Our quarterly report shows that membership grew by a " \
		"fifth, thanks mostly to the new reading group and the " \
		"summer lectures on astronomy held in the library annex."

/* d: the digests of the message 'fmt' (a literal) makes of a, b, c. */
#define RAW(d, fmt, a, b, c) do {					\
	static char m_[MSG_MAX];					\
	int n_ = snprintf(m_, sizeof(m_), fmt, a, b, c);		\
									\
	assert_true(n_ > 0 && (size_t)n_ < sizeof(m_));			\
	digests_of(m_, (size_t)n_, &(d));				\
} while (0)

#define ALT	"Subject: s\r\nMIME-Version: 1.0\r\n"			\
	"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"	\
	"--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n"			\
	"--b\r\nContent-Type: text/html\r\n\r\n<html><p>%s</p></html>"	\
	"\r\n--b--\r\n%s"
#define PLAIN	"Subject: s\r\n\r\n%s\r\n%s%s"
#define CAL	"Subject: s\r\nMIME-Version: 1.0\r\n"			\
	"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"	\
	"--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n"			\
	"--b\r\nContent-Type: text/calendar\r\n\r\n%s\r\n--b--\r\n%s"
#define MIXED	"Subject: s\r\nMIME-Version: 1.0\r\n"			\
	"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"		\
	"--m\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n"	\
	"\r\n--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n"		\
	"--b\r\nContent-Type: text/html\r\n\r\n<p>%s</p>\r\n--b--\r\n"	\
	"--m\r\nContent-Type: text/plain\r\n\r\n%s\r\n--m--\r\n"

/* A sender's notice in the text part of an alternative, the message in its
 * HTML: the words are the HTML's, so two of its messages are apart. */
static void
test_alternative_stub(void **st)
{
	struct bulk_digests a, b, pa, pb, stub, c, m;

	(void)st;
	RAW(a, ALT, STUB, ARTICLE_A, "");
	RAW(b, ALT, STUB, ARTICLE_B, "");
	RAW(pa, PLAIN, ARTICLE_A, "", "");
	RAW(pb, PLAIN, ARTICLE_B, "", "");
	RAW(stub, PLAIN, STUB, "", "");
	assert_true(a.d[1].valid && b.d[1].valid);
	assert_false(meet(&a, &b, BULK_LETTERS));
	assert_false(meet(&a, &b, BULK_SHINGLE));
	assert_false(meet(&a, &stub, BULK_LETTERS));
	/* The HTML's words are the article's, as its text copy has them. */
	assert_true(meet(&a, &pa, BULK_LETTERS));
	assert_true(meet(&b, &pb, BULK_SHINGLE));
	/* Only an HTML alternative replaces the text: not a calendar. */
	RAW(c, CAL, ARTICLE_A, "BEGIN:VCALENDAR\r\nSUMMARY:Harvest festival "
	    "committee meeting in the town hall\r\nEND:VCALENDAR", "");
	assert_true(meet(&c, &pa, BULK_LETTERS));
	/* Once the alternative closed, a later text part is not read. */
	RAW(m, MIXED, STUB, ARTICLE_A, ARTICLE_B);
	assert_true(meet(&m, &pa, BULK_LETTERS));
	assert_false(meet(&m, &pb, BULK_LETTERS));
}

/* Random words inserted into a sentence (a "hash buster"): body and
 * letters differ, the shingles meet. */
static void
test_words_inserted(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), b;

	(void)st;
	v.junk = 1;
	v.greeting = "Dear Carol,";
	b = variant(&v);
	assert_false(meet(&a, &b, BULK_BODY));
	assert_false(meet(&a, &b, BULK_LETTERS));
	assert_true(meet(&a, &b, BULK_SHINGLE));
}

/*
 * One sentence of the twelve replaced, a twelfth of the text: the shingles
 * meet for some of the sentences, not for all (over 300 corpus texts, half
 * of such copies meet: docs/bulk.md §5). Bands of six min-hashes
 * make this S-curve steep on purpose: a newsletter's issues are its
 * template with a few sentences changed, and they must stay apart
 * (docs/bulk.md §2 and §5).
 */
static void
test_sentence_changed(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), b;
	int i, met = 0;

	(void)st;
	for (i = 1; i <= 12; i++) {
		v.change = i;
		b = variant(&v);
		assert_false(meet(&a, &b, BULK_BODY));
		assert_false(meet(&a, &b, BULK_LETTERS));
		met += meet(&a, &b, BULK_SHINGLE);
	}
	print_message("a sentence in twelve changed: %d of 12 meet\n", met);
	assert_in_range(met, 1, 11);
}

/* A no-break space is a space: the same text with U+00A0 in UTF-8, with
 * "&nbsp;" in HTML, and with plain spaces meets on letters. */
static void
test_nbsp(void **st)
{
	static const char hdr[] = "Subject: s\r\nContent-Type: text/%s; "
	    "charset=%s\r\n\r\n";
	static const char *const forms[][3] = {
	    { "plain", "utf-8", "Cheap\xc2\xa0" "watches for\xc2\xa0" "everyone "
	      "who wants\xc2\xa0" "to look rich at the office party this "
	      "winter, order now\r\n" },
	    { "html", "utf-8", "<p>Cheap&nbsp;watches for&nbsp;everyone who "
	      "wants&nbsp;to look rich at the office party this winter, "
	      "order now</p>\r\n" },
	    { "plain", "iso-8859-1", "Cheap\xa0" "watches for\xa0" "everyone who "
	      "wants\xa0" "to look rich at the office party this winter, order "
	      "now\r\n" },
	    { "plain", "us-ascii", "Cheap watches for everyone who wants to "
	      "look rich at the office party this winter, order now\r\n" },
	};
	struct bulk_digests d[4];
	char m[1024];
	int i, n;

	(void)st;
	for (i = 0; i < 4; i++) {
		n = snprintf(m, sizeof(m), hdr, forms[i][0], forms[i][1]);
		n += snprintf(m + n, sizeof(m) - (size_t)n, "%s", forms[i][2]);
		digests_of(m, (size_t)n, &d[i]);
		assert_true(d[i].d[1].valid);
	}
	for (i = 1; i < 4; i++)
		assert_string_equal(d[0].d[1].hex, d[i].d[1].hex);
	/* In another charset 0xa0 may be half a character: a letter. */
	n = snprintf(m, sizeof(m), hdr, "plain", "gbk");
	n += snprintf(m + n, sizeof(m) - (size_t)n, "%s", forms[2][2]);
	digests_of(m, (size_t)n, &d[1]);
	assert_string_not_equal(d[0].d[1].hex, d[1].d[1].hex);
}

/* "&amp;" in a link's text is the link's '&': the URL goes on, as in the
 * text copy, and its query makes no words. */
static void
test_entities(void **st)
{
	static const char text[] = "Subject: s\r\nContent-Type: text/plain"
	    "\r\n\r\nOur spring catalogue is out now with hundreds of new "
	    "garden tools, see http://shop.example.com/c?item=rake&source=mail"
	    "ing&campaign=spring for the details and prices\r\n";
	static const char html[] = "Subject: s\r\nContent-Type: text/html"
	    "\r\n\r\n<p>Our spring catalogue is out now with hundreds of new "
	    "garden tools, see <a href=\"x\">http://shop.example.com/c?item="
	    "rake&amp;source=mailing&amp;campaign=spring</a> for the details "
	    "and prices</p>\r\n";
	struct bulk_digests a, b;

	(void)st;
	digests_of(text, sizeof(text) - 1, &a);
	digests_of(html, sizeof(html) - 1, &b);
	assert_true(a.d[1].valid);
	assert_string_equal(a.d[1].hex, b.d[1].hex);
}

/* m (size sz) filled with a header and copies of line: its length. */
static size_t
long_message(char *m, size_t sz, const char *line)
{
	size_t n, ll = strlen(line);

	n = (size_t)snprintf(m, sz, "Subject: long\r\n\r\n");
	for (; n + ll < sz; n += ll)
		memcpy(m + n, line, ll);
	return n;
}

/*
 * Each digest reads what it needs and the walk stops there: prose fills
 * the body's BULK_BODY_MAX octets and the letters' BULK_LETTERS_MAX well
 * before BULK_TEXT_MAX octets of text, and a tail that differs changes
 * nothing, a head that does changes the body digest. Text without
 * letters never fills the words: BULK_TEXT_MAX bounds it.
 */
static void
test_text_bound(void **st)
{
	static char m[3 * BULK_TEXT_MAX];
	struct bulk_digests a, b, c;
	size_t n, i;

	(void)st;
	n = long_message(m, sizeof(m), "All work and no play makes Jack a "
	    "dull boy, all work and no play makes him dull.\r\n");
	digests_of(m, n, &a);
	assert_true(a.text_octets > BULK_BODY_MAX);
	assert_true(a.text_octets < BULK_TEXT_MAX / 2);
	memcpy(m + a.text_octets + 1000, "XYZ", 3);
	digests_of(m, n, &b);
	for (i = 0; i < BULK_NDIGEST; i++)
		assert_string_equal(a.d[i].hex, b.d[i].hex);
	memcpy(m + 1000, "XYZ", 3);
	digests_of(m, n, &c);
	assert_string_not_equal(a.d[0].hex, c.d[0].hex);

	n = long_message(m, sizeof(m), "1234 5678 9012 3456 7890 1234 5678 "
	    "9012 3456 7890 - 1234 5678 9012 3456\r\n");
	digests_of(m, n, &a);
	assert_int_equal(a.text_octets, BULK_TEXT_MAX);
	assert_false(a.d[1].valid);	/* no letters */
}

static void
test_ham_apart(void **st)
{
	struct variant v = base;
	struct bulk_digests a = variant(&base), h1, h2;

	(void)st;
	v.text = ham1;
	v.greeting = "Hi all,";
	h1 = variant(&v);
	v.text = ham2;
	v.greeting = "Dear Anna,";
	h2 = variant(&v);
	assert_false(meet(&a, &h1, BULK_BODY));
	assert_false(meet(&a, &h1, BULK_LETTERS));
	assert_false(meet(&a, &h1, BULK_SHINGLE));
	assert_false(meet(&h1, &h2, BULK_LETTERS));
	assert_false(meet(&h1, &h2, BULK_SHINGLE));
	assert_false(meet(&a, &h2, BULK_SHINGLE));
}

static void
test_short_and_odd(void **st)
{
	static const char shortm[] = "Subject: hi\r\n\r\nok, thanks!\r\n";
	static const char nested[] =
	    "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	    "Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n"
	    "Content-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\n"
	    "Content-Type: text/plain\r\n\r\nfour deep is not followed\r\n"
	    "--c--\r\n--b--\r\n--a--\r\n";
	static const char attach[] =
	    "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
	    "Content-Type: image/png\r\nContent-Transfer-Encoding: base64"
	    "\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
	    "2mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\r\n--a--\r\n";
	struct bulk_digests d;
	int i;

	(void)st;
	/* Under every minimum: never counted. */
	digests_of(shortm, sizeof(shortm) - 1, &d);
	for (i = 0; i < BULK_NDIGEST; i++)
		assert_false(d.d[i].valid);
	/* The text four multiparts deep is not seen. */
	digests_of(nested, sizeof(nested) - 1, &d);
	assert_int_equal(d.text_octets, 0);
	/* An attachment is not text. */
	digests_of(attach, sizeof(attach) - 1, &d);
	assert_int_equal(d.text_octets, 0);
	assert_false(d.d[0].valid);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_personalised),
		cmocka_unit_test(test_rewrap_and_encodings),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_alternative_stub),
		cmocka_unit_test(test_words_inserted),
		cmocka_unit_test(test_sentence_changed),
		cmocka_unit_test(test_nbsp),
		cmocka_unit_test(test_entities),
		cmocka_unit_test(test_text_bound),
		cmocka_unit_test(test_ham_apart),
		cmocka_unit_test(test_short_and_odd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
