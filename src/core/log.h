/*
 * log: one line per event, lowercase key=value pairs (docs/principles.md §4).
 * To stderr (the journal under systemd) or to syslog(3), as log_target
 * says (docs/configuration.md). A value a peer supplied (an address, a HELO or domain
 * name, an ETRN argument, a reply text, a DNS name) goes through
 * log_value() or log_path() to be one field, or through log_escape()
 * inside a "..." field of ours: never printed raw (docs/principles.md §4).
 */
#ifndef BACKMX_LOG_H
#define BACKMX_LOG_H

#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Start logging as 'ident'; to stderr when to_stderr, else syslog LOG_MAIL. */
void	log_init(const char *ident, int to_stderr);
/* From now on to syslog(3) with 'facility' (a LOG_* value), or back to
 * stderr when to_syslog is 0. The same lines either way. */
void	log_target(int to_syslog, int facility);
/* "mail", "daemon", "user", "local0".."local7" to its LOG_* value. */
int	log_facility_parse(const char *, int *out);
void	log_set_level(enum log_level);
int	log_level_parse(const char *, enum log_level *out);
int	log_enabled(enum log_level);

void	log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
#define log_err(...)	log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)	do { if (log_enabled(LOG_LEVEL_DEBUG)) \
	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

/* Cannot start: log and exit(1). Only before the event loop runs. */
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
/* Our own bug: log file:line and abort for a core. */
void	log_panic(const char *, int, const char *, ...)
	    __attribute__((format(printf, 3, 4), noreturn));
#define panic(...)	log_panic(__FILE__, __LINE__, __VA_ARGS__)

/*
 * Copy peer text 'in' (inlen bytes) into 'out' (outsz >= 4) for a log
 * line: printable ASCII but '\' and '"' as is, everything else as \xHH,
 * cut with "..." when it does not fit. Returns out.
 */
const char *log_escape(char *out, size_t outsz, const char *in, size_t inlen);

/*
 * Peer text as the value of one key=value field (docs/principles.md §4):
 * as it is when every byte is printable ASCII other than space, '"' and
 * '\'; else between double quotes, escaped by log_escape()'s rules. So no
 * byte a peer sends can end the value, start another field or line, or
 * reach the log as a control or bidi character (non-ASCII is \xHH too).
 * A value that does not fit is cut with "..." inside its quotes.
 * LOG_VALUE_SIZE(n) bytes hold any n bytes of input uncut; outsz >= 8.
 * Returns out.
 */
#define LOG_VALUE_SIZE(n)	(4 * (n) + 3)
const char *log_value(char *out, size_t outsz, const char *in, size_t inlen);

/* A mail address as a value: "<addr>" through log_value(), e.g.
 * to=<u@example.com> or to="<\x22a b\x22@example.com>". LOG_PATH_SIZE
 * holds an address of up to 256 bytes uncut (an RFC 5321 path is at
 * most 256 octets with its brackets). */
#define LOG_PATH_SIZE		LOG_VALUE_SIZE(256 + 2)
const char *log_path(char *out, size_t outsz, const char *addr);

#endif
