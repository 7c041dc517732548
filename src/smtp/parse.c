/*
 * parse: SMTP command lines. Verbs are case-insensitive (RFC 5321 §2.4);
 * a verb is a whole word, so "MAILFROM:" or "NOOPX" is not MAIL or NOOP.
 * No allocation; the argument points into the caller's line.
 */
#include "parse.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
	int		 ends_group;
} verbs[] = {
	{ "HELO",	SMTP_HELO,	1 },
	{ "EHLO",	SMTP_EHLO,	1 },
	{ "MAIL",	SMTP_MAIL,	0 },
	{ "RCPT",	SMTP_RCPT,	0 },
	{ "DATA",	SMTP_DATA,	1 },
	{ "RSET",	SMTP_RSET,	0 },
	{ "NOOP",	SMTP_NOOP,	1 },
	{ "QUIT",	SMTP_QUIT,	1 },
	{ "HELP",	SMTP_HELP,	0 },
	{ "VRFY",	SMTP_VRFY,	1 },
	{ "EXPN",	SMTP_EXPN,	1 },
	{ "STARTTLS",	SMTP_STARTTLS,	1 },
	{ "ETRN",	SMTP_ETRN,	1 },
	{ "TURN",	SMTP_TURN,	1 },
	{ "AUTH",	SMTP_AUTH,	1 },
	{ "BDAT",	SMTP_BDAT,	0 },
};

int
parse_ends_group(enum smtp_verb v)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == v)
			return verbs[i].ends_group;
	return 0;
}

/* "FROM:" / "TO:" right after "MAIL " / "RCPT "; spaces after the colon
 * are skipped (tolerated, as Postfix does). */
static int
parse_path_arg(struct smtp_cmd *cmd, const char *p, size_t n, const char *kw)
{
	size_t kwlen = strlen(kw);

	if (n < kwlen || strncasecmp(p, kw, kwlen) != 0)
		return -1;
	p += kwlen;
	n -= kwlen;
	while (n > 0 && *p == ' ') {
		p++;
		n--;
	}
	cmd->arg = p;
	cmd->arglen = n;
	return 0;
}

enum parse_result
parse_command(const char *line, size_t len, struct smtp_cmd *out)
{
	size_t i, vlen;
	const char *p;

	memset(out, 0, sizeof(*out));
	out->verb = SMTP_UNKNOWN;
	out->name = "?";
	out->arg = line + len;

	for (i = 0; i < len; i++)
		if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
			return PARSE_BAD_BYTES;

	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strlen(verbs[i].name) == vlen &&
		    strncasecmp(line, verbs[i].name, vlen) == 0)
			break;
	if (i == sizeof(verbs) / sizeof(verbs[0]))
		return PARSE_OK;	/* unknown verb: the session says 500 */

	out->verb = verbs[i].verb;
	out->name = verbs[i].name;
	p = line + vlen;
	len -= vlen;
	if (len > 0) {		/* skip the one separating space */
		p++;
		len--;
	}
	switch (out->verb) {
	case SMTP_MAIL:
		if (parse_path_arg(out, p, len, "FROM:"))
			return PARSE_SYNTAX;
		break;
	case SMTP_RCPT:
		if (parse_path_arg(out, p, len, "TO:"))
			return PARSE_SYNTAX;
		break;
	default:
		out->arg = p;
		out->arglen = len;
		break;
	}
	return PARSE_OK;
}
