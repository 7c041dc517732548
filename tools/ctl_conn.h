/*
 * ctl_conn: what the backmxctl subcommands share: one request line to
 * backmxd's control socket (src/ctl/control.h) and its answer copied to
 * stdout, the arguments split into words, an evbuffer flushed to stdout.
 */
#ifndef BACKMX_CTL_CONN_H
#define BACKMX_CTL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct config;
struct evbuffer;
struct json;

#define CTL_NOT_RUNNING	(-1)	/* ctl_request(): no daemon to ask */

/*
 * Send 'req' (one line with its '\n') to the daemon and copy the answer's
 * result lines to stdout. Returns the exit status from the status line: 0 "ok",
 * 1 "error notfound", 64 "error usage", 65 "error domain", "error address" or
 * "error value", 75 any other error (its text on stderr, then ": arg" when arg
 * is not NULL); 69 when the daemon is not reachable. With may_offline,
 * CTL_NOT_RUNNING and nothing said when it is not running (socket missing or
 * refused): the caller reads the files itself.
 */
int	ctl_request(const struct config *, const char *req, const char *arg,
	    int may_offline);

/*
 * argv[1..]: "--json" sets *json; an argument equal to one of 'flags'
 * (NULL-terminated, may be NULL) sets *flag to its index + 1, the last
 * one given wins; the rest go to words[], at most 'max'. Returns how
 * many words, or -1 when there are more.
 */
int	ctl_args(int argc, char **argv, const char *const *flags, int *flag,
	    int *json, char **words, int max);

/* "2024-05-01T12:00:00Z" (UTC) into buf, or "-" for 0 ("never"). */
const char *ctl_iso(int64_t t, char *buf, size_t bufsz);

/*
 * One operator allow entry of the state store, as `greylist list` and
 * `bulk list` show it: a text line "LABEL KIND VALUE added=TIME" (the
 * value through str_term()), or a JSON object {"kind", "value", "added"}
 * into j. Returns 0, as a state_*_allow_list() callback does.
 */
int	ctl_allow_row(struct json *j, const char *label, enum state_allow_kind,
	    const char *value, int64_t added);

/* Write all of b to stdout: 0, or 74 on a write error. */
int	ctl_flush(struct evbuffer *b);

#endif
