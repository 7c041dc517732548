/*
 * esmtp: the parameters after the path in MAIL FROM and RCPT TO (RFC 5321
 * §4.1.2 Mail-parameters / Rcpt-parameters), checked and decoded into
 * plain structs for the envelope. smtp/parse.c calls it with what follows
 * the closing '>'. Pure: no I/O, no allocation, nothing kept.
 *
 * Every byte is the peer's (fuzz/fuzz_esmtp.c): scans are bounded by the
 * caller's length and every decoded field by its array. A parameter list
 * is all or nothing; the first bad parameter, left to right, names the
 * error. We refuse what we do not offer (555) rather than ignore it, so a
 * client never believes an extension took effect.
 */
#include "esmtp.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One "keyword[=value]" of the list. */
struct param {
	const char	*kw;
	size_t		 kwlen;
	const char	*val;
	size_t		 vallen;
	int		 hasval;
	int		 valok;		/* value matches esmtp-value */
};

typedef int param_cb(const struct param *, void *, struct esmtp_error *);

struct keyword {
	const char	*name;
	const char	*bad;		/* 501 text for a bad value */
	param_cb	*fn;
};

/* RFC 3463: syntax error in command arguments. */
#define ENH		"5.5.4"

static const char T_SYNTAX[] = "Bad parameter syntax";
static const char T_DUP[] = "Duplicate parameter";

static int
fail(struct esmtp_error *err, int code, const char *text)
{
	err->code = code;
	err->enhanced = ENH;
	err->text = text;
	return -1;
}

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
is_upper_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int
hex_val(int c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* ASCII-only, never locale-dependent. */
static int
ci_equal(const char *s, size_t len, const char *lit)
{
	size_t i;
	int a, b;

	if (strlen(lit) != len)
		return 0;
	for (i = 0; i < len; i++) {
		a = (unsigned char)s[i];
		b = (unsigned char)lit[i];
		if (a >= 'a' && a <= 'z')
			a -= 'a' - 'A';
		if (a != b)
			return 0;
	}
	return 1;
}

/*
 * Split one space-free token into keyword and value. esmtp-keyword =
 * (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 /
 * %d62-126). Returns -1 when the keyword itself is malformed; a bad value
 * is only marked, so that a known keyword can name itself in the reply.
 */
static int
param_split(const char *s, size_t len, struct param *p)
{
	size_t i;
	unsigned char c;

	memset(p, 0, sizeof(*p));
	p->kw = s;
	for (i = 0; i < len && s[i] != '='; i++)
		if (!is_alnum((unsigned char)s[i]) && (i == 0 || s[i] != '-'))
			return -1;
	if (i == 0)
		return -1;
	p->kwlen = i;
	p->valok = 1;
	if (i == len)
		return 0;
	p->hasval = 1;
	p->val = s + i + 1;
	p->vallen = len - i - 1;
	if (p->vallen == 0)
		p->valok = 0;
	for (i = 0; i < p->vallen; i++) {
		c = (unsigned char)p->val[i];
		if (c < 33 || c == 61 || c > 126)
			p->valok = 0;
	}
	return 0;
}

/* RFC 1870: SIZE=1*20DIGIT. Larger than UINT64_MAX is refused. */
static int
mail_size(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct mail_params *mp = arg;
	uint64_t v = 0;
	unsigned d;
	size_t i;

	if (!p->hasval || p->vallen > 20)
		return fail(err, 501, "Bad SIZE parameter");
	for (i = 0; i < p->vallen; i++) {
		if (p->val[i] < '0' || p->val[i] > '9')
			return fail(err, 501, "Bad SIZE parameter");
		d = (unsigned)(p->val[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return fail(err, 501, "Bad SIZE parameter");
		v = v * 10 + d;
	}
	mp->size = v;
	mp->has_size = 1;
	return 0;
}

/*
 * RFC 6152 BODY=7BIT|8BITMIME. BINARYMIME (RFC 3030) needs CHUNKING,
 * which we do not offer: "not implemented" is 555 (RFC 5321 §4.1.1.11).
 */
static int
mail_body(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct mail_params *mp = arg;

	if (p->hasval && ci_equal(p->val, p->vallen, "7BIT"))
		mp->body = ESMTP_BODY_7BIT;
	else if (p->hasval && ci_equal(p->val, p->vallen, "8BITMIME"))
		mp->body = ESMTP_BODY_8BITMIME;
	else if (p->hasval && ci_equal(p->val, p->vallen, "BINARYMIME"))
		return fail(err, 555, "BINARYMIME not supported");
	else
		return fail(err, 501, "Bad BODY parameter");
	return 0;
}

/* RFC 6531 §3.4: SMTPUTF8 takes no value. */
static int
mail_smtputf8(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct mail_params *mp = arg;

	if (p->hasval)
		return fail(err, 501, "Bad SMTPUTF8 parameter");
	mp->smtputf8 = 1;
	return 0;
}

/* RFC 3461 §4.3 RET=FULL|HDRS. */
static int
mail_ret(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct mail_params *mp = arg;

	if (p->hasval && ci_equal(p->val, p->vallen, "FULL"))
		mp->ret = ESMTP_RET_FULL;
	else if (p->hasval && ci_equal(p->val, p->vallen, "HDRS"))
		mp->ret = ESMTP_RET_HDRS;
	else
		return fail(err, 501, "Bad RET parameter");
	return 0;
}

/* RFC 3461 §4.4 ENVID=xtext, at most 100 characters decoded. */
static int
mail_envid(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct mail_params *mp = arg;

	if (!p->hasval || esmtp_xtext_decode(p->val, p->vallen, mp->envid,
	    sizeof(mp->envid)) <= 0)
		return fail(err, 501, "Bad ENVID parameter");
	return 0;
}

/*
 * RFC 3461 §4.1 NOTIFY="NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY"):
 * NEVER stands alone, and a word given twice is as wrong as a keyword
 * given twice.
 */
static int
rcpt_notify(const struct param *p, void *arg, struct esmtp_error *err)
{
	static const struct {
		const char	*word;
		int		 bit;
	} words[] = {
		{ "NEVER", ESMTP_NOTIFY_NEVER },
		{ "SUCCESS", ESMTP_NOTIFY_SUCCESS },
		{ "FAILURE", ESMTP_NOTIFY_FAILURE },
		{ "DELAY", ESMTP_NOTIFY_DELAY },
	};
	struct rcpt_params *rp = arg;
	const char *w, *end, *comma;
	size_t i;
	int bits = 0;

	if (!p->hasval)
		return fail(err, 501, "Bad NOTIFY parameter");
	w = p->val;
	end = p->val + p->vallen;
	for (;;) {
		if ((comma = memchr(w, ',', (size_t)(end - w))) == NULL)
			comma = end;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (ci_equal(w, (size_t)(comma - w), words[i].word))
				break;
		if (i == sizeof(words) / sizeof(words[0]) ||
		    (bits & words[i].bit))
			return fail(err, 501, "Bad NOTIFY parameter");
		bits |= words[i].bit;
		if (comma == end)
			break;
		w = comma + 1;
	}
	if ((bits & ESMTP_NOTIFY_NEVER) && bits != ESMTP_NOTIFY_NEVER)
		return fail(err, 501, "Bad NOTIFY parameter");
	rp->notify = bits;
	return 0;
}

/* RFC 5322 §3.2.3 atext: RFC 3461's addr-type is an RFC 822 atom. */
static int
is_atext(int c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/*
 * RFC 3461 §4.2 ORCPT=addr-type ";" xtext. The type is kept as sent (it
 * is case-insensitive: compare with strcasecmp); the address must decode
 * to 1..500 printable characters. We do not check that it parses as an
 * address of that type: it is only carried on into a DSN.
 */
static int
rcpt_orcpt(const struct param *p, void *arg, struct esmtp_error *err)
{
	struct rcpt_params *rp = arg;
	const char *semi;
	size_t i, tlen;

	if (!p->hasval ||
	    (semi = memchr(p->val, ';', p->vallen)) == NULL)
		return fail(err, 501, "Bad ORCPT parameter");
	tlen = (size_t)(semi - p->val);
	if (tlen == 0 || tlen >= sizeof(rp->orcpt_type))
		return fail(err, 501, "Bad ORCPT parameter");
	for (i = 0; i < tlen; i++)
		if (!is_atext((unsigned char)p->val[i]))
			return fail(err, 501, "Bad ORCPT parameter");
	if (esmtp_xtext_decode(semi + 1, p->vallen - tlen - 1, rp->orcpt,
	    sizeof(rp->orcpt)) <= 0)
		return fail(err, 501, "Bad ORCPT parameter");
	memcpy(rp->orcpt_type, p->val, tlen);
	rp->orcpt_type[tlen] = '\0';
	return 0;
}

static const struct keyword mail_keywords[] = {
	{ "SIZE", "Bad SIZE parameter", mail_size },
	{ "BODY", "Bad BODY parameter", mail_body },
	{ "SMTPUTF8", "Bad SMTPUTF8 parameter", mail_smtputf8 },
	{ "RET", "Bad RET parameter", mail_ret },
	{ "ENVID", "Bad ENVID parameter", mail_envid },
};

static const struct keyword rcpt_keywords[] = {
	{ "NOTIFY", "Bad NOTIFY parameter", rcpt_notify },
	{ "ORCPT", "Bad ORCPT parameter", rcpt_orcpt },
};

/*
 * Walk "SP param *(SP param)". We tolerate runs of spaces (clients do
 * send them) and a trailing space, but nothing else between parameters:
 * a tab or control byte lands inside a token and fails its syntax.
 */
static int
params_parse(const char *s, size_t len, const struct keyword *kws,
    size_t nkws, const char *unknown, void *out, struct esmtp_error *err)
{
	struct param p;
	unsigned seen = 0;
	size_t i = 0, j, k;

	if (len > 0 && s[0] != ' ')
		return fail(err, 501, T_SYNTAX);
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			return 0;
		for (j = i; j < len && s[j] != ' '; j++)
			;
		if (param_split(s + i, j - i, &p) == -1)
			return fail(err, 501, T_SYNTAX);
		for (k = 0; k < nkws; k++)
			if (ci_equal(p.kw, p.kwlen, kws[k].name))
				break;
		if (k == nkws)
			return fail(err, p.valok ? 555 : 501,
			    p.valok ? unknown : T_SYNTAX);
		if (seen & (1u << k))
			return fail(err, 501, T_DUP);
		seen |= 1u << k;
		if (!p.valok)
			return fail(err, 501, kws[k].bad);
		if (kws[k].fn(&p, out, err) == -1)
			return -1;
		i = j;
	}
}

int
esmtp_parse_mail(const char *s, size_t len, struct mail_params *out,
    struct esmtp_error *err)
{
	memset(out, 0, sizeof(*out));
	out->body = ESMTP_BODY_NONE;
	out->ret = ESMTP_RET_NONE;
	return params_parse(s, len, mail_keywords,
	    sizeof(mail_keywords) / sizeof(mail_keywords[0]),
	    "Unsupported MAIL parameter", out, err);
}

int
esmtp_parse_rcpt(const char *s, size_t len, struct rcpt_params *out,
    struct esmtp_error *err)
{
	memset(out, 0, sizeof(*out));
	return params_parse(s, len, rcpt_keywords,
	    sizeof(rcpt_keywords) / sizeof(rcpt_keywords[0]),
	    "Unsupported RCPT parameter", out, err);
}

/*
 * RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = %d33-42 / %d44-60 /
 * %d62-126, hexchar = "+" 2(upper-case HEXDIG).
 */
int
esmtp_xtext_decode(const char *s, size_t len, char *out, size_t outsz)
{
	size_t i, n = 0;
	int c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 ||
			    !is_upper_hex((unsigned char)s[i + 1]) ||
			    !is_upper_hex((unsigned char)s[i + 2]))
				return -1;
			c = hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]);
			i += 2;
			/* ENVID and ORCPT must be printable US-ASCII. */
			if (c < 0x20 || c > 0x7e)
				return -1;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
		if (n + 1 >= outsz || n >= INT_MAX)
			return -1;
		out[n++] = (char)c;
	}
	if (outsz == 0)
		return -1;
	out[n] = '\0';
	return (int)n;
}

int
esmtp_xtext_encode(const char *s, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, n = 0;
	int c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			if (n + 1 >= outsz || n >= INT_MAX)
				return -1;
			out[n++] = (char)c;
		} else {
			if (n + 3 >= outsz || n >= INT_MAX - 3)
				return -1;
			out[n++] = '+';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0x0f];
		}
	}
	if (outsz == 0)
		return -1;
	out[n] = '\0';
	return (int)n;
}

/* Append to buf at *off; -1 once it does not fit (sticky). */
static int
line_add(char *buf, size_t bufsz, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
line_add(char *buf, size_t bufsz, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= bufsz)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, bufsz - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= bufsz - *off) {
		*off = bufsz;
		return -1;
	}
	*off += (size_t)n;
	return 0;
}

int
esmtp_mail_line(char *buf, size_t bufsz, const char *addr,
    const struct mail_params *p, uint64_t size, int has_8bit, unsigned ext)
{
	char envid[ESMTP_ENVID_MAX * 3 + 1];
	size_t off = 0;

	line_add(buf, bufsz, &off, "MAIL FROM:<%s>", addr);
	if ((ext & ESMTP_EXT_SIZE) && size != 0)
		line_add(buf, bufsz, &off, " SIZE=%llu",
		    (unsigned long long)size);
	if ((ext & ESMTP_EXT_8BITMIME) &&
	    (p->body == ESMTP_BODY_8BITMIME || has_8bit))
		line_add(buf, bufsz, &off, " BODY=8BITMIME");
	else if ((ext & ESMTP_EXT_8BITMIME) && p->body == ESMTP_BODY_7BIT)
		line_add(buf, bufsz, &off, " BODY=7BIT");
	if ((ext & ESMTP_EXT_SMTPUTF8) && p->smtputf8)
		line_add(buf, bufsz, &off, " SMTPUTF8");
	if (ext & ESMTP_EXT_DSN) {
		if (p->ret == ESMTP_RET_FULL)
			line_add(buf, bufsz, &off, " RET=FULL");
		else if (p->ret == ESMTP_RET_HDRS)
			line_add(buf, bufsz, &off, " RET=HDRS");
		if (p->envid[0] != '\0' && esmtp_xtext_encode(p->envid,
		    strlen(p->envid), envid, sizeof(envid)) > 0)
			line_add(buf, bufsz, &off, " ENVID=%s", envid);
	}
	return off < bufsz ? (int)off : -1;
}

int
esmtp_rcpt_line(char *buf, size_t bufsz, const char *addr,
    const struct rcpt_params *p, unsigned ext)
{
	char orcpt[ESMTP_ORCPT_MAX * 3 + 1];
	size_t off = 0;
	int n = p->notify;

	line_add(buf, bufsz, &off, "RCPT TO:<%s>", addr);
	if (ext & ESMTP_EXT_DSN) {
		if (n & ESMTP_NOTIFY_NEVER)
			line_add(buf, bufsz, &off, " NOTIFY=NEVER");
		else if (n != 0)
			line_add(buf, bufsz, &off, " NOTIFY=%s%s%s%s%s",
			    (n & ESMTP_NOTIFY_SUCCESS) ? "SUCCESS" : "",
			    (n & ESMTP_NOTIFY_SUCCESS) &&
			    (n & (ESMTP_NOTIFY_FAILURE | ESMTP_NOTIFY_DELAY)) ?
			    "," : "",
			    (n & ESMTP_NOTIFY_FAILURE) ? "FAILURE" : "",
			    (n & ESMTP_NOTIFY_FAILURE) &&
			    (n & ESMTP_NOTIFY_DELAY) ? "," : "",
			    (n & ESMTP_NOTIFY_DELAY) ? "DELAY" : "");
		if (p->orcpt[0] != '\0' && esmtp_xtext_encode(p->orcpt,
		    strlen(p->orcpt), orcpt, sizeof(orcpt)) > 0)
			line_add(buf, bufsz, &off, " ORCPT=%s;%s",
			    p->orcpt_type[0] ? p->orcpt_type : "rfc822",
			    orcpt);
	}
	return off < bufsz ? (int)off : -1;
}
