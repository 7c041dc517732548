/*
 * milter: the content filters of backup mode (docs/milter.md). One
 * conversation per transaction with every filter of backup_milters, in
 * order: opened at the transaction's first backup-mode RCPT (connect,
 * options, CONNECT, HELO, MAIL), asked for each RCPT, and at the end of
 * DATA shown the headers and body before the queue commits. The first
 * filter that does not say "continue" decides; one that stalls, closes or
 * talks nonsense decides milter_default_action.
 *
 * Pass-through mail never comes here: the primary's own filters decide.
 * Every callback runs later from the loop, never inside the call, exactly
 * once unless milter_tx_free() ran first.
 */
#ifndef BACKMX_MILTER_H
#define BACKMX_MILTER_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct event_base;
struct config;
struct body;
struct milter_tx;

/* What the session knows when the conversation opens (copied). */
struct milter_info {
	const char	*client_addr;	/* "192.0.2.1" */
	const char	*client_name;	/* rDNS or "unknown" */
	int		 family;	/* AF_INET, AF_INET6 */
	unsigned	 port;
	const char	*helo;
	const char	*sender;	/* the path without <> ("" for null) */
	const char	*const *mail_args; /* ESMTP parameters; NULL-ended */
	const char	*tmpdir;	/* for a replaced body */
	size_t		 mem_max;	/* in memory up to this, then spilled */
};

#define MILTER_EDITS_MAX	64	/* header changes one message may carry */

struct milter_edit {
	enum milter_reply_kind	 kind;	/* MR_ADDHEADER, MR_CHGHEADER, MR_INSHEADER */
	uint32_t		 index;
	char			*name;
	char			*value;
};

enum milter_result {
	MILTER_PASS,		/* continue or accept from every filter */
	MILTER_REFUSE,		/* reject, discard or a 5xx reply code */
	MILTER_DEFER,		/* tempfail or a 4xx reply code */
};

struct milter_verdict {
	enum milter_result	 result;
	int			 code;		/* REFUSE/DEFER: the reply */
	char			 enh[16];
	char			 text[256];
	char			 filter[128];	/* who decided, for the log */
	const char		*why;		/* "reject", "timeout", ... */
	int			 quarantine;	/* PASS: hold it (reason) */
	char			 reason[256];
	const struct milter_edit *edits;	/* PASS at end of DATA */
	size_t			 nedits;
	const struct body	*body;		/* PASS: a new body, or NULL */
};

typedef void	milter_done_cb(const struct milter_verdict *, void *arg);

/* NULL when backup_milters is empty. */
struct milter_tx *milter_tx_new(struct event_base *, const struct config *,
		    const struct milter_info *);
/* The recipient ('rcpt' the path without <>). */
void		 milter_tx_rcpt(struct milter_tx *, const char *rcpt,
		    milter_done_cb *, void *);
/* The message, at the end of DATA. */
void		 milter_tx_eom(struct milter_tx *, const struct body *,
		    const char *queue_id, milter_done_cb *, void *);
/* Abort and close every filter (QUIT); no callback runs after. */
void		 milter_tx_free(struct milter_tx *);

/*
 * A copy of 'in' with the verdict's header changes made and its body
 * replaced when a filter replaced it, in *out (a new
 * body in tmpdir, spilling past mem_max). Returns 0, or -1 with errno set.
 * The header block read is bounded (docs/milter.md): a change past the
 * bound is refused with EMSGSIZE.
 */
int		 milter_apply_edits(const struct milter_verdict *,
		    const struct body *in, const char *tmpdir, size_t mem_max,
		    struct body **out);

#endif
