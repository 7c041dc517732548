/*
 * parse: one SMTP command line (without its CRLF) into a verb and its
 * argument. Pure; every byte is a peer's (fuzz/fuzz_command.c). The line
 * has already been checked for length and for bare CR, LF and NUL by the
 * session; parse_command() checks it again and refuses them.
 */
#ifndef BACKMX_PARSE_H
#define BACKMX_PARSE_H

#include <stddef.h>

#define SMTP_LINE_MAX	512	/* RFC 5321 §4.5.3.1.4, with the CRLF */

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_HELP,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_STARTTLS,
	SMTP_ETRN,
	SMTP_TURN,
	SMTP_AUTH,
	SMTP_BDAT,
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_BAD_BYTES,	/* CR, LF or NUL inside the line */
	PARSE_SYNTAX,		/* MAIL without " FROM:", a verb glued to junk */
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*name;	/* canonical verb name, "?" when unknown */
	/*
	 * The argument: after "VERB " for most verbs, after "MAIL FROM:" /
	 * "RCPT TO:" (leading spaces skipped: we tolerate them, RFC 5321
	 * does not have them) for MAIL and RCPT. Points into the line;
	 * arglen 0 when none. Trailing spaces are not removed.
	 */
	const char	*arg;
	size_t		 arglen;
};

enum parse_result parse_command(const char *line, size_t len,
		    struct smtp_cmd *out);

/*
 * RFC 2920 §3.1 (and RFC 3207 §4, docs/smtp.md, "Pipelining"): commands that
 * may only end a pipelined group. Returns 1 for EHLO, HELO, DATA, VRFY, EXPN,
 * TURN, QUIT, NOOP and the later extensions that say nothing else: STARTTLS,
 * ETRN, AUTH. RSET, MAIL, RCPT, HELP, BDAT and unknown verbs return 0.
 */
int		parse_ends_group(enum smtp_verb);

#endif
