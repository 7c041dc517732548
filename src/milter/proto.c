/*
 * milter proto: packets of the milter protocol, built and parsed
 * (proto.h). The parser trusts nothing: every length is checked against
 * what is there and against our bounds before a byte is used.
 */
#include "proto.h"

#include <arpa/inet.h>
#include <string.h>

#include <event2/buffer.h>

#include "str.h"

void
milter_put(struct evbuffer *out, int cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len + 1);
	unsigned char c = (unsigned char)cmd;

	evbuffer_add(out, &n, 4);
	evbuffer_add(out, &c, 1);
	if (len > 0)
		evbuffer_add(out, data, len);
}

void
milter_put_optneg(struct evbuffer *out, uint32_t actions, uint32_t steps)
{
	uint32_t v[3];

	v[0] = htonl(MILTER_VERSION);
	v[1] = htonl(actions);
	v[2] = htonl(steps);
	milter_put(out, MC_OPTNEG, v, sizeof(v));
}

/* Each string with its NUL, one after the other. */
void
milter_put_strings(struct evbuffer *out, int cmd, const char *const *argv)
{
	uint32_t n = 1;
	unsigned char c = (unsigned char)cmd;
	size_t i;

	for (i = 0; argv[i] != NULL; i++)
		n += (uint32_t)strlen(argv[i]) + 1;
	n = htonl(n);
	evbuffer_add(out, &n, 4);
	evbuffer_add(out, &c, 1);
	for (i = 0; argv[i] != NULL; i++)
		evbuffer_add(out, argv[i], strlen(argv[i]) + 1);
}

/* SMFIC_CONNECT: name, family ('4', '6', 'U'), port, address. */
void
milter_put_connect(struct evbuffer *out, const char *name, int family,
    unsigned port, const char *addr)
{
	size_t nl = strlen(name) + 1, al = strlen(addr) + 1;
	uint32_t n = htonl((uint32_t)(1 + nl + 1 + 2 + al));
	uint16_t p = htons((uint16_t)port);
	unsigned char c = MC_CONNECT, f = (unsigned char)family;

	evbuffer_add(out, &n, 4);
	evbuffer_add(out, &c, 1);
	evbuffer_add(out, name, nl);
	evbuffer_add(out, &f, 1);
	evbuffer_add(out, &p, 2);
	evbuffer_add(out, addr, al);
}

/* --- parsing ------------------------------------------------------------ */

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* A NUL-terminated string at *p within end, copied into dst (dstsz with
 * its NUL). Returns 0 and moves *p past the NUL, -1 if there is no NUL or
 * it does not fit. */
static int
take_string(const unsigned char **p, const unsigned char *end, char *dst,
    size_t dstsz)
{
	const unsigned char *nul = memchr(*p, '\0', (size_t)(end - *p));
	size_t n;

	if (nul == NULL || (n = (size_t)(nul - *p)) >= dstsz)
		return -1;
	memcpy(dst, *p, n);
	dst[n] = '\0';
	*p = nul + 1;
	return 0;
}

/* RFC 5322 §3.6.8 field name: printable ASCII but the colon. */
static int
valid_name(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 ||
		    *s == ':')
			return 0;
	return 1;
}

/* A field body: no CR or LF but as folding (a line break followed by a
 * space or tab), no other control byte but the tab. UTF-8 passes. */
static int
valid_value(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\r' && s[1] == '\n')
			c = (unsigned char)*++s;
		if (c == '\n') {
			if (s[1] != ' ' && s[1] != '\t')
				return 0;
			continue;
		}
		if ((c < 32 && c != '\t') || c == 127)
			return 0;
	}
	return 1;
}

/*
 * SMFIR_REPLYCODE: "4xx x.y.z text" or "5xx text", first line only. The
 * enhanced code, when there, must be of the reply's class (RFC 3463 §2).
 * The text keeps printable ASCII; anything else becomes '?'.
 */
static int
parse_replycode(const char *s, struct milter_reply *r)
{
	const char *t;
	size_t i, n;

	if ((s[0] != '4' && s[0] != '5') || s[1] < '0' || s[1] > '9' ||
	    s[2] < '0' || s[2] > '9' || (s[3] != ' ' && s[3] != '-' &&
	    s[3] != '\0'))
		return -1;
	r->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	t = s[3] == '\0' ? s + 3 : s + 4;
	r->enh[0] = '\0';
	n = strspn(t, "0123456789.");
	if (n > 0 && n < sizeof(r->enh) && t[0] == s[0] && t[1] == '.' &&
	    (t[n] == ' ' || t[n] == '\0' || t[n] == '\r')) {
		memcpy(r->enh, t, n);
		r->enh[n] = '\0';
		t += n;
		while (*t == ' ')
			t++;
	}
	for (i = 0; t[i] != '\0' && t[i] != '\r' && t[i] != '\n' &&
	    i + 1 < sizeof(r->text); i++)
		r->text[i] = (t[i] >= 32 && t[i] < 127) ? t[i] : '?';
	r->text[i] = '\0';
	return 0;
}

static int
parse_header(const unsigned char *p, const unsigned char *end, int indexed,
    struct milter_reply *r)
{
	if (indexed) {
		if (end - p < 4)
			return -1;
		r->index = get32(p);
		p += 4;
	}
	if (take_string(&p, end, r->name, sizeof(r->name)) == -1 ||
	    take_string(&p, end, r->text, sizeof(r->text)) == -1 ||
	    p != end || !valid_name(r->name) || !valid_value(r->text))
		return -1;
	return 0;
}

static const struct {
	char			 c;
	enum milter_reply_kind	 kind;
} bare[] = {
	{ 'a', MR_ACCEPT }, { 'c', MR_CONTINUE }, { 'r', MR_REJECT },
	{ 't', MR_TEMPFAIL }, { 'd', MR_DISCARD }, { 's', MR_SKIP },
	{ 'p', MR_PROGRESS },
};

int
milter_parse(const unsigned char *buf, size_t len, struct milter_reply *r,
    size_t *used)
{
	const unsigned char *p, *end;
	uint32_t n;
	size_t i;
	char cmd;

	if (len < 4)
		return 0;
	n = get32(buf);
	if (n == 0 || n > MILTER_PACKET_MAX)
		return -1;
	if (len - 4 < n)
		return 0;
	*used = 4 + (size_t)n;
	memset(r, 0, sizeof(*r));
	cmd = (char)buf[4];
	p = buf + 5;
	end = buf + 4 + n;

	for (i = 0; i < sizeof(bare) / sizeof(bare[0]); i++)
		if (bare[i].c == cmd) {
			r->kind = bare[i].kind;
			return p == end ? 1 : -1;
		}
	switch (cmd) {
	case 'O':
		/* Version, actions, steps; a v6 filter may append the
		 * macros it wants (SETSYMLIST), which we did not offer and
		 * ignore. */
		if (end - p < 12)
			return -1;
		r->kind = MR_OPTNEG;
		r->version = get32(p);
		r->actions = get32(p + 4);
		r->steps = get32(p + 8);
		return 1;
	case 'y':
		r->kind = MR_REPLYCODE;
		if (take_string(&p, end, r->text, sizeof(r->text)) == -1 ||
		    p != end)
			return -1;
		{
			char line[MILTER_TEXT_MAX];

			str_copy(line, sizeof(line), r->text);
			return parse_replycode(line, r) == 0 ? 1 : -1;
		}
	case 'h':
		r->kind = MR_ADDHEADER;
		return parse_header(p, end, 0, r) == 0 ? 1 : -1;
	case 'm':
		r->kind = MR_CHGHEADER;
		return parse_header(p, end, 1, r) == 0 ? 1 : -1;
	case 'i':
		r->kind = MR_INSHEADER;
		return parse_header(p, end, 1, r) == 0 ? 1 : -1;
	case 'q':
		r->kind = MR_QUARANTINE;
		if (take_string(&p, end, r->text, sizeof(r->text)) == -1 ||
		    p != end)
			return -1;
		for (i = 0; r->text[i] != '\0'; i++)
			if ((unsigned char)r->text[i] < 32 ||
			    (unsigned char)r->text[i] > 126)
				r->text[i] = '?';
		return 1;
	case 'b':
		r->kind = MR_REPLBODY;
		r->data = p;
		r->datalen = (size_t)(end - p);
		return 1;
	case '+':
	case '-':
	case 'e':
	case '2':
		/* Envelope changes: offered (libmilter wants them offered),
		 * refused by milter.c when asked for. */
		r->kind = MR_ENVELOPE;
		r->name[0] = cmd;
		return 1;
	default:
		return -1;
	}
}
