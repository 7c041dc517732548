/*
 * verdict: what a check says about a command, and how verdicts merge
 * (docs/principles.md §2): a definite REJECT wins; a TEMPFAIL does not stop the
 * checks after it, but once there is one the result is never ACCEPT.
 * Doubt is 4xx.
 */
#ifndef BACKMX_VERDICT_H
#define BACKMX_VERDICT_H

enum verdict {
	VERDICT_ACCEPT = 0,
	VERDICT_TEMPFAIL,
	VERDICT_REJECT,
};

struct verdict_info {
	enum verdict	v;
	int		code;		/* SMTP reply code; 0 with ACCEPT */
	char		enh[8];		/* "4.7.1" */
	char		text[256];	/* reply text, no CR/LF */
	char		reason[32];	/* log value: "greylist", "dnsbl" */
};

/* Fill *out; text is printf-formatted and cut to fit. */
void	verdict_set(struct verdict_info *out, enum verdict, int code,
	    const char *enh, const char *reason, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
void	verdict_accept(struct verdict_info *out);

/* Fold 'next' into 'acc': REJECT > TEMPFAIL > ACCEPT, the first of the
 * strongest kind is kept. */
void	verdict_merge(struct verdict_info *acc, const struct verdict_info *next);

#endif
