/*
 * log: formatting and the two sinks (stderr, syslog LOG_MAIL). Nothing here
 * knows about mail; callers build the key=value text.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int		log_stderr = 1;
static enum log_level	log_max = LOG_LEVEL_INFO;
static const char	*log_ident = "backmx";

static const char *const level_names[] = {
	[LOG_LEVEL_ERR] = "err",
	[LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *ident, int to_stderr)
{
	log_ident = ident;
	log_stderr = to_stderr;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_target(int to_syslog, int facility)
{
	if (!log_stderr)
		closelog();
	log_stderr = !to_syslog;
	/* LOG_NDELAY: /dev/log is connected now, while we may still be
	 * root and before any chroot or namespace could hide it. */
	if (to_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
}

int
log_facility_parse(const char *s, int *out)
{
	static const struct {
		const char	*name;
		int		 value;
	} names[] = {
		{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON },
		{ "user", LOG_USER },
		{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
		{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
		{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].value;
			return 0;
		}
	return -1;
}

void
log_set_level(enum log_level l)
{
	log_max = l;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

int
log_enabled(enum log_level l)
{
	return l <= log_max;
}

static void	log_vmsg(enum log_level, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level l, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[4096];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_stderr) {
		/* Per thread (the queue writer logs too): the second's text
		 * is made once a second, the pid once (backmxd never forks).
		 * A line costs one write(2), no stdio, no getpid(2): a
		 * message logs about seven (bench/README.md "CPU per
		 * message"). */
		static _Thread_local time_t when_sec = -1;
		static _Thread_local char when[32];
		static long pid;
		char out[sizeof(line) + 128];
		struct timespec ts;
		struct tm tm;
		int n;

		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec != when_sec) {
			gmtime_r(&ts.tv_sec, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
			when_sec = ts.tv_sec;
		}
		if (pid == 0)
			pid = (long)getpid();
		n = snprintf(out, sizeof(out), "%s.%03ldZ %s[%ld]: %s: %s\n",
		    when, ts.tv_nsec / 1000000, log_ident, pid,
		    level_names[l], line);
		if (n > (int)sizeof(out) - 1) {
			n = (int)sizeof(out) - 1;
			out[n - 1] = '\n';
		}
		/* One write per line: lines from a crash stay whole. */
		if (n > 0)
			(void)!write(STDERR_FILENO, out, (size_t)n);
	} else
		syslog(prio[l], "%s: %s", level_names[l], line);
}

void
log_msg(enum log_level l, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(l))
		return;
	va_start(ap, fmt);
	log_vmsg(l, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_LEVEL_ERR, "event=panic file=%s line=%d what=\"%s\"",
	    file, line, msg);
	abort();
}

const char *
log_escape(char *out, size_t outsz, const char *in, size_t inlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\' &&
		    c != '"') ? 1 : 4;

		if (o + need + 4 > outsz) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (need == 1)
			out[o++] = (char)c;
		else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

/* A byte that may stand bare in a value (log_value()). */
static int
bare_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Bytes log_escape() makes of in[0..n), uncut. */
static size_t
escaped_len(const char *in, size_t n)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		len += c >= 0x20 && c < 0x7f && c != '\\' && c != '"' ? 1 : 4;
	}
	return len;
}

/* in[0..n) escaped as log_escape() does, into out, which the caller made
 * escaped_len(in, n) bytes long at least; returns that length. */
static size_t
escape_put(char *out, const char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			out[o++] = (char)c;
		else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

/*
 * pre, in[0..inlen), post as one value into out: bare, or quoted and
 * escaped. pre and post are ours: short, printable, no quote. A value
 * cut short keeps its closing quote and loses post.
 */
static const char *
value(char *out, size_t outsz, const char *pre, const char *in,
    size_t inlen, const char *post)
{
	size_t i, pl = strlen(pre), ql = strlen(post), o;
	int bare = pl + inlen + ql > 0;

	for (i = 0; i < inlen && bare; i++)
		bare = bare_ok((unsigned char)in[i]);
	if (bare && pl + inlen + ql < outsz) {
		memcpy(out, pre, pl);
		memcpy(out + pl, in, inlen);
		memcpy(out + pl + inlen, post, ql);
		out[pl + inlen + ql] = '\0';
		return out;
	}
	out[0] = '"';
	memcpy(out + 1, pre, pl);
	o = 1 + pl;
	if (o + escaped_len(in, inlen) + ql + 1 < outsz) {
		o += escape_put(out + o, in, inlen);
		memcpy(out + o, post, ql);
		o += ql;
	} else {
		/* Room for the closing quote and the NUL is kept back. */
		log_escape(out + o, outsz - o - 1, in, inlen);
		o += strlen(out + o);
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

const char *
log_value(char *out, size_t outsz, const char *in, size_t inlen)
{
	return value(out, outsz, "", in, inlen, "");
}

const char *
log_path(char *out, size_t outsz, const char *addr)
{
	return value(out, outsz, "<", addr, strlen(addr), ">");
}
