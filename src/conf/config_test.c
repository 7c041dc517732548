/*
 * config_test: backmx.conf as an operator writes it. Each table row is a
 * whole file (name "t.conf") and either the value one field must end up
 * with or the exact error the operator would read. Also: the print/parse
 * round trip, and that docs/configuration.md and etc/backmx.conf stay true
 * to the table (they are read from SOURCE_ROOT).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dname.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT	"."
#endif

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
/* A label of 63 letters, the most RFC 1035 §2.3.4 allows. */
#define A63	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
		"aaaaaaaaaaaaaaaa"

enum kind { K_UINT, K_U64, K_STR };

struct value_row {
	const char	*text;		/* the whole file */
	size_t		 off;		/* the field to check when it parses */
	enum kind	 kind;
	uint64_t	 num;
	const char	*str;
	const char	*err;		/* NULL: parses; else the whole error */
};

#define UINTF(f, n)	offsetof(struct config, f), K_UINT, (n), NULL
#define U64F(f, n)	offsetof(struct config, f), K_U64, (n), NULL
#define STRF(f, s)	offsetof(struct config, f), K_STR, 0, (s)
#define ERR		0, K_UINT, 0, NULL
/* Rows for a value refused, in the parser's words; 'why' "" or the
 * " (hint)" it adds. */
#define BAD_ROW(kind, k, v, why) { k " = " v, ERR, "t.conf:1: bad " kind \
	" '" v "' for " k why }
#define BAD_TIME(k, v, why)	BAD_ROW("time value", k, v, why)
#define BAD_NUM(k, v, why)	BAD_ROW("number", k, v, why)
#define BAD_BOOL(k, v)		BAD_ROW("boolean value", k, v, \
	" (yes or no)")

/* Defaults, then 'text' over them. */
static int
parse(struct config *c, const char *text, char *err, size_t errsz)
{
	config_defaults(c);
	return config_parse(c, "t.conf", text, strlen(text), err, errsz);
}

static void
run_rows(const struct value_row *rows, size_t n)
{
	struct config c;
	char err[512];
	size_t i;

	for (i = 0; i < n; i++) {
		const struct value_row *r = &rows[i];
		const char *field;
		int rc = parse(&c, r->text, err, sizeof(err));

		if (r->err != NULL) {
			if (rc != -1 || strcmp(err, r->err) != 0)
				fail_msg("row %zu \"%s\": rc %d, error \"%s\", "
				    "want \"%s\"", i, r->text, rc, err, r->err);
			continue;
		}
		if (rc != 0)
			fail_msg("row %zu \"%s\": %s", i, r->text, err);
		field = (const char *)&c + r->off;
		switch (r->kind) {
		case K_UINT:
			if (*(const unsigned *)(const void *)field != r->num)
				fail_msg("row %zu \"%s\": %u, want %llu", i,
				    r->text, *(const unsigned *)(const void *)
				    field, (unsigned long long)r->num);
			break;
		case K_U64:
			if (*(const uint64_t *)(const void *)field != r->num)
				fail_msg("row %zu \"%s\": %llu, want %llu", i,
				    r->text, (unsigned long long)
				    *(const uint64_t *)(const void *)field,
				    (unsigned long long)r->num);
			break;
		case K_STR:
			if (strcmp(field, r->str) != 0)
				fail_msg("row %zu \"%s\": \"%s\", want \"%s\"",
				    i, r->text, field, r->str);
			break;
		}
	}
}

static void
test_defaults(void **state)
{
	char host[256];
	struct config c;

	config_defaults(&c);
	assert_int_equal(c.nlisten, 2);
	assert_string_equal(c.listen[0].text, "0.0.0.0:25");
	assert_string_equal(c.listen[1].text, "[::]:25");
	assert_string_equal(c.spool_dir, "/var/spool/backmx");
	assert_string_equal(c.state_dir, "/var/lib/backmx");
	assert_string_equal(c.domains_file, "/etc/backmx/domains");
	assert_string_equal(c.control_socket, "/run/backmx/control.sock");
	assert_string_equal(c.log_level, "info");
	assert_true(c.message_size_limit == 500ULL * 1024 * 1024);
	assert_int_equal(c.smtpd_recipient_limit, 100);
	assert_int_equal(c.smtpd_timeout, 300);
	assert_int_equal(c.smtpd_data_timeout, 1800);
	assert_int_equal(c.smtpd_max_connections, 1000);
	assert_int_equal(c.smtpd_max_connections_per_ip, 20);
	assert_int_equal(c.smtpd_greet_pause, 0);
	assert_int_equal(c.smtpd_error_limit, 0);
	assert_int_equal(c.smtpd_soft_error_limit, 10);
	assert_int_equal(c.smtpd_hard_error_limit, 20);
	assert_int_equal(c.smtpd_error_sleep_time, 1);
	assert_int_equal(c.smtpd_recipient_overshoot_limit, 1000);
	assert_int_equal(c.netrn_client_nets, 2);	/* 127.0.0.1, ::1 */
	assert_int_equal(c.smtpd_junk_command_limit, 100);
	assert_true(c.smtpd_body_buffer == 256 * 1024);
	assert_string_equal(c.tls_cert_file, "");
	assert_string_equal(c.tls_key_file, "");
	/* Pass-through and recipient learning. */
	assert_int_equal(c.passthrough, 1);
	assert_int_equal(c.passthrough_connect_timeout, 10);
	assert_int_equal(c.passthrough_reply_timeout, 240);
	assert_int_equal(c.accept_unverified, 0);
	assert_int_equal(c.domain_learning, 1);
	assert_int_equal(c.learning_period, 7 * 86400);
	assert_int_equal(c.recipient_valid_ttl, 31 * 86400);
	assert_int_equal(c.recipient_invalid_ttl, 3 * 86400);
	assert_int_equal(c.callout_rate_limit, 30);
	assert_int_equal(c.passthrough_pool_size, 2);
	assert_int_equal(c.callout_queue_limit, 10000);
	assert_int_equal(c.acceptance_probe_interval, 86400);
	assert_int_equal(c.primary_probe_interval, 60);
	/* A host name without a dot is kept as it is. */
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	if (dname_valid(host, 0))
		assert_string_equal(c.myhostname, host);
	else
		assert_string_equal(c.myhostname, "localhost");
}

static const struct value_row type_rows[] = {
	/* time: s m h d w, a bare number is seconds */
	{ "smtpd_timeout = 45", UINTF(smtpd_timeout, 45), NULL },
	{ "smtpd_timeout = 45s", UINTF(smtpd_timeout, 45), NULL },
	{ "smtpd_timeout = 5m", UINTF(smtpd_timeout, 300), NULL },
	{ "smtpd_timeout = 2h", UINTF(smtpd_timeout, 7200), NULL },
	{ "smtpd_timeout = 1d", UINTF(smtpd_timeout, 86400), NULL },
	{ "smtpd_timeout = 2w", UINTF(smtpd_timeout, 1209600), NULL },
	{ "smtpd_timeout = 007m", UINTF(smtpd_timeout, 420), NULL },
	{ "smtpd_timeout = 4294967295", UINTF(smtpd_timeout, 4294967295U),
	    NULL },
	{ "smtpd_greet_pause = 0", UINTF(smtpd_greet_pause, 0), NULL },
	{ "smtpd_greet_pause = 0s", UINTF(smtpd_greet_pause, 0), NULL },
	{ "smtpd_data_timeout = 1h", UINTF(smtpd_data_timeout, 3600), NULL },
	{ "smtpd_timeout = 5x", ERR,
	    "t.conf:1: bad time value '5x' for smtpd_timeout" },
	{ "smtpd_timeout = 5M", ERR,
	    "t.conf:1: bad time value '5M' for smtpd_timeout" },
	{ "smtpd_timeout = 5 m", ERR,
	    "t.conf:1: bad time value '5 m' for smtpd_timeout" },
	{ "smtpd_timeout = 5mm", ERR,
	    "t.conf:1: bad time value '5mm' for smtpd_timeout" },
	{ "smtpd_timeout = -5", ERR,
	    "t.conf:1: bad time value '-5' for smtpd_timeout" },
	{ "smtpd_timeout = m", ERR,
	    "t.conf:1: bad time value 'm' for smtpd_timeout" },
	{ "smtpd_timeout =", ERR,
	    "t.conf:1: bad time value '' for smtpd_timeout" },
	{ "smtpd_timeout = 4294967296", ERR,
	    "t.conf:1: bad time value '4294967296' for smtpd_timeout" },
	{ "smtpd_timeout = 7102w", ERR,
	    "t.conf:1: bad time value '7102w' for smtpd_timeout" },
	{ "smtpd_timeout = 99999999999999999999999", ERR,
	    "t.conf:1: bad time value '99999999999999999999999' for "
	    "smtpd_timeout" },
	{ "smtpd_timeout = 0", ERR,
	    "t.conf:1: bad time value '0' for smtpd_timeout (at least 1s)" },

	/* size: K M G in either case, powers of 1024 */
	{ "message_size_limit = 10", U64F(message_size_limit, 10), NULL },
	{ "message_size_limit = 1k", U64F(message_size_limit, 1024), NULL },
	{ "message_size_limit = 1K", U64F(message_size_limit, 1024), NULL },
	{ "message_size_limit = 2M", U64F(message_size_limit, 2 << 20),
	    NULL },
	{ "message_size_limit = 2m", U64F(message_size_limit, 2 << 20),
	    NULL },
	{ "message_size_limit = 3G", U64F(message_size_limit, 3ULL << 30),
	    NULL },
	{ "message_size_limit = 17179869183G",
	    U64F(message_size_limit, 17179869183ULL << 30), NULL },
	{ "message_size_limit = 18446744073709551615",
	    U64F(message_size_limit, UINT64_MAX), NULL },
	{ "smtpd_body_buffer = 0", U64F(smtpd_body_buffer, 0), NULL },
	{ "smtpd_body_buffer = 64K", U64F(smtpd_body_buffer, 65536), NULL },
	{ "message_size_limit = 17179869184G", ERR,
	    "t.conf:1: bad size value '17179869184G' for message_size_limit" },
	{ "message_size_limit = 18446744073709551616", ERR,
	    "t.conf:1: bad size value '18446744073709551616' for "
	    "message_size_limit" },
	{ "message_size_limit = 5KB", ERR,
	    "t.conf:1: bad size value '5KB' for message_size_limit" },
	{ "message_size_limit = 1.5M", ERR,
	    "t.conf:1: bad size value '1.5M' for message_size_limit" },
	{ "message_size_limit = 5T", ERR,
	    "t.conf:1: bad size value '5T' for message_size_limit" },
	{ "message_size_limit = 0", ERR,
	    "t.conf:1: bad size value '0' for message_size_limit "
	    "(at least 1)" },

	/* uint */
	{ "smtpd_recipient_limit = 7", UINTF(smtpd_recipient_limit, 7),
	    NULL },
	{ "smtpd_max_connections = 4294967295",
	    UINTF(smtpd_max_connections, 4294967295U), NULL },
	{ "smtpd_max_connections_per_ip = 1",
	    UINTF(smtpd_max_connections_per_ip, 1), NULL },
	{ "smtpd_error_limit = 3", UINTF(smtpd_error_limit, 3), NULL },
	{ "smtpd_junk_command_limit = 1000",
	    UINTF(smtpd_junk_command_limit, 1000), NULL },
	{ "smtpd_recipient_limit = 0", ERR,
	    "t.conf:1: bad number '0' for smtpd_recipient_limit "
	    "(at least 1)" },
	{ "smtpd_max_connections = 4294967296", ERR,
	    "t.conf:1: bad number '4294967296' for smtpd_max_connections "
	    "(0 to 4294967295)" },
	{ "smtpd_recipient_limit = 12k", ERR,
	    "t.conf:1: bad number '12k' for smtpd_recipient_limit "
	    "(0 to 4294967295)" },
	{ "smtpd_recipient_limit = +1", ERR,
	    "t.conf:1: bad number '+1' for smtpd_recipient_limit "
	    "(0 to 4294967295)" },
	{ "smtpd_error_limit = ten", ERR,
	    "t.conf:1: bad number 'ten' for smtpd_error_limit "
	    "(0 to 4294967295)" },

	/* log level */
	{ "log_level = debug", STRF(log_level, "debug"), NULL },
	{ "log_level = err", STRF(log_level, "err"), NULL },
	{ "log_level = warning", STRF(log_level, "warning"), NULL },
	{ "log_level = verbose", ERR, "t.conf:1: bad log level 'verbose' "
	    "for log_level (err, warning, info or debug)" },

	/* host name */
	{ "myhostname = mx2.Example.NET", STRF(myhostname, "mx2.Example.NET"),
	    NULL },
	{ "myhostname = backmx", STRF(myhostname, "backmx"), NULL },
	{ "myhostname = a-b.c0", STRF(myhostname, "a-b.c0"), NULL },
	/* A label of 63 is fine, of 64 is not. */
	{ "myhostname = " A63 ".x", STRF(myhostname, A63 ".x"), NULL },
	{ "myhostname = a" A63 ".x", ERR,
	    "t.conf:1: bad host name 'a" A63 ".x' for myhostname" },
	{ "myhostname = mx_1.example", ERR,
	    "t.conf:1: bad host name 'mx_1.example' for myhostname" },
	{ "myhostname = -mx.example", ERR,
	    "t.conf:1: bad host name '-mx.example' for myhostname" },
	{ "myhostname = mx-.example", ERR,
	    "t.conf:1: bad host name 'mx-.example' for myhostname" },
	{ "myhostname = mx..example", ERR,
	    "t.conf:1: bad host name 'mx..example' for myhostname" },
	{ "myhostname = mx.example.", ERR,
	    "t.conf:1: bad host name 'mx.example.' for myhostname" },
	{ "myhostname = mx example", ERR,
	    "t.conf:1: bad host name 'mx example' for myhostname" },
	{ "myhostname =", ERR, "t.conf:1: bad host name '' for myhostname" },

	/* paths */
	{ "spool_dir = /srv/q", STRF(spool_dir, "/srv/q"), NULL },
	{ "state_dir = rel/dir", STRF(state_dir, "rel/dir"), NULL },
	{ "domains_file = /etc/d", STRF(domains_file, "/etc/d"), NULL },
	{ "control_socket = /c.sock", STRF(control_socket, "/c.sock"), NULL },
	{ "spool_dir =", ERR, "t.conf:1: spool_dir must not be empty" },
	{ "control_socket =   ", ERR,
	    "t.conf:1: control_socket must not be empty" },
	{ "tls_cert_file =\ntls_key_file =", STRF(tls_cert_file, ""), NULL },
	{ "tls_cert_file = /c.pem\ntls_key_file = /k.pem",
	    STRF(tls_key_file, "/k.pem"), NULL },
	{ "tls_cert_file = /c.pem", ERR,
	    "t.conf: tls_cert_file needs tls_key_file" },
	{ "tls_key_file = /k.pem\n", ERR,
	    "t.conf: tls_key_file needs tls_cert_file" },
	{ "tls_cert_file = /c.pem\ntls_key_file = /k.pem\ntls_key_file =", ERR,
	    "t.conf: tls_cert_file needs tls_key_file" },

	/* pass-through and recipient learning */
	{ "passthrough = no", UINTF(passthrough, 0), NULL },
	{ "passthrough = YES", UINTF(passthrough, 1), NULL },
	BAD_BOOL("passthrough", "1"),
	{ "passthrough_connect_timeout = 30s",
	    UINTF(passthrough_connect_timeout, 30), NULL },
	BAD_TIME("passthrough_connect_timeout", "0", " (at least 1s)"),
	{ "passthrough_reply_timeout = 3m",
	    UINTF(passthrough_reply_timeout, 180), NULL },
	BAD_TIME("passthrough_reply_timeout", "0s", " (at least 1s)"),
	BAD_TIME("passthrough_reply_timeout", "4x", ""),
	{ "accept_unverified = yes", UINTF(accept_unverified, 1), NULL },
	BAD_BOOL("accept_unverified", "maybe"),
	{ "domain_learning = no", UINTF(domain_learning, 0), NULL },
	BAD_BOOL("domain_learning", "off"),
	{ "learning_period = 2w", UINTF(learning_period, 1209600), NULL },
	BAD_TIME("learning_period", "0d", " (at least 1s)"),
	{ "recipient_valid_ttl = 60d", UINTF(recipient_valid_ttl, 5184000),
	    NULL },
	BAD_TIME("recipient_valid_ttl", "0", " (at least 1s)"),
	{ "recipient_invalid_ttl = 12h", UINTF(recipient_invalid_ttl, 43200),
	    NULL },
	BAD_TIME("recipient_invalid_ttl", "1y", ""),
	{ "callout_rate_limit = 1", UINTF(callout_rate_limit, 1), NULL },
	{ "passthrough_pool_size = 0", UINTF(passthrough_pool_size, 0), NULL },
	BAD_NUM("passthrough_pool_size", "-1", " (0 to 4294967295)"),
	BAD_NUM("callout_rate_limit", "0", " (at least 1)"),
	{ "callout_queue_limit = 500", UINTF(callout_queue_limit, 500),
	    NULL },
	BAD_NUM("callout_queue_limit", "0", " (at least 1)"),
	BAD_NUM("callout_queue_limit", "10k", " (0 to 4294967295)"),
	{ "acceptance_probe_interval = 6h",
	    UINTF(acceptance_probe_interval, 21600), NULL },
	BAD_TIME("acceptance_probe_interval", "0", " (at least 1s)"),
};

static void
test_types(void **state)
{
	run_rows(type_rows, nitems(type_rows));
}

static const struct value_row syntax_rows[] = {
	{ "", STRF(spool_dir, "/var/spool/backmx"), NULL },
	{ "spool_dir=/a", STRF(spool_dir, "/a"), NULL },
	{ "spool_dir \t=\t /a \t", STRF(spool_dir, "/a"), NULL },
	{ "spool_dir = /a\r\n", STRF(spool_dir, "/a"), NULL },
	{ "spool_dir = /a\nspool_dir = /b\n", STRF(spool_dir, "/b"), NULL },
	{ "spool_dir = /a\n  /b\n", STRF(spool_dir, "/a /b"), NULL },
	{ "spool_dir = /a  \n\t /b  \n c\n", STRF(spool_dir, "/a /b c"),
	    NULL },
	{ "spool_dir = /a\n# note\n\n   \n  /b\n", STRF(spool_dir, "/a /b"),
	    NULL },
	{ "spool_dir =\n  /a\n", STRF(spool_dir, "/a"), NULL },
	{ "# a comment\n   # an indented one\n\nspool_dir = /x\n",
	    STRF(spool_dir, "/x"), NULL },
	{ "spool_dir = /a # not a comment", STRF(spool_dir,
	    "/a # not a comment"), NULL },
	{ "spool_dir = a=b", STRF(spool_dir, "a=b"), NULL },
	{ "spool_dir = a  b", STRF(spool_dir, "a  b"), NULL },
	{ "listen = 127.0.0.1:1\nspool_dir = /x", STRF(spool_dir, "/x"),
	    NULL },
	{ "  spool_dir = /a", ERR, "t.conf:1: continuation line (leading "
	    "white space) with no line before it" },
	{ "# c\n\n\tspool_dir = /a", ERR, "t.conf:3: continuation line "
	    "(leading white space) with no line before it" },
	{ "spool_dir = /a\n\nsmtpd_tmeout = 5\n", ERR,
	    "t.conf:3: unknown key 'smtpd_tmeout'" },
	{ "Spool_dir = /a", ERR, "t.conf:1: unknown key 'Spool_dir'" },
	{ "spool dir = /a", ERR, "t.conf:1: unknown key 'spool dir'" },
	{ "spool_dir /a", ERR, "t.conf:1: missing '=' in 'spool_dir /a'" },
	{ "= /a", ERR, "t.conf:1: missing key name before '='" },
	{ "spool_dir = /a\nlisten = 1.2.3.4:1\n  x\n", ERR,
	    "t.conf:2: bad listen address 'x'" },
	{ "smtpd_timeout = 5\n  x", ERR,
	    "t.conf:1: bad time value '5 x' for smtpd_timeout" },
	{ "a\x01 = 1", ERR, "t.conf:1: unknown key 'a\\x01'" },
	/* The first bad value in the file is the one reported. */
	{ "smtpd_timeout = 1\nsmtpd_error_limit = x\nsmtpd_timeout = y", ERR,
	    "t.conf:2: bad number 'x' for smtpd_error_limit "
	    "(0 to 4294967295)" },
	/* A bad value overridden later is no error: the last one wins. */
	{ "smtpd_timeout = x\nsmtpd_timeout = 9", UINTF(smtpd_timeout, 9),
	    NULL },
};

static void
test_syntax(void **state)
{
	run_rows(syntax_rows, nitems(syntax_rows));
}

static void
test_nul_and_unchanged(void **state)
{
	static const char text[] = "spool_dir = /a\nstate_dir = /b\0c\n";
	struct config c, before;
	char err[256];

	/* A failed parse leaves the caller's struct as it was. */
	config_defaults(&c);
	memcpy(&before, &c, sizeof(c));
	assert_int_equal(config_parse(&c, "t.conf", text, sizeof(text) - 1,
	    err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:2: NUL character");
	assert_memory_equal(&c, &before, sizeof(c));

	/* Length, not NUL, ends the text: the rest is not read. */
	assert_int_equal(config_parse(&c, "t.conf", text, 14, err,
	    sizeof(err)), 0);
	assert_string_equal(c.spool_dir, "/a");
	assert_string_equal(c.path, "t.conf");

	/* A tiny error buffer is not overrun. */
	assert_int_equal(config_parse(&c, "t.conf", "x", 1, err, 4), -1);
	assert_string_equal(err, "t.c");
}

static const struct value_row expand_rows[] = {
	{ "control_socket = $state_dir/ctl",
	    STRF(control_socket, "/var/lib/backmx/ctl"), NULL },
	{ "control_socket = ${state_dir}/ctl\nstate_dir = /s",
	    STRF(control_socket, "/s/ctl"), NULL },
	{ "spool_dir = a$state_dir.x", STRF(spool_dir, "a/var/lib/backmx.x"),
	    NULL },
	{ "spool_dir = $state_dir$state_dir",
	    STRF(spool_dir, "/var/lib/backmx/var/lib/backmx"), NULL },
	{ "spool_dir = /$$x$$", STRF(spool_dir, "/$x$"), NULL },
	{ "spool_dir = /q\nstate_dir = $spool_dir/s\ncontrol_socket = "
	    "$state_dir/c", STRF(control_socket, "/q/s/c"), NULL },
	{ "smtpd_data_timeout = $smtpd_timeout",
	    UINTF(smtpd_data_timeout, 300), NULL },
	{ "smtpd_timeout = 2m\nsmtpd_data_timeout = ${smtpd_timeout}",
	    UINTF(smtpd_data_timeout, 120), NULL },
	{ "spool_dir = /x/$myhostname\nmyhostname = mx.example",
	    STRF(spool_dir, "/x/mx.example"), NULL },
	{ "spool_dir = $tls_cert_file /x", STRF(spool_dir, "/x"), NULL },
	/* ${name?text}: text when name is not empty; ${name:text}: when it
	 * is (postconf(5)). */
	{ "tls_cert_file = /c\ntls_key_file = ${tls_cert_file?/k}",
	    STRF(tls_key_file, "/k"), NULL },
	{ "tls_cert_file = ${tls_key_file?/c}", STRF(tls_cert_file, ""),
	    NULL },
	{ "spool_dir = ${tls_cert_file:/empty}", STRF(spool_dir, "/empty"),
	    NULL },
	{ "spool_dir = /x${state_dir:/never}", STRF(spool_dir, "/x"), NULL },
	{ "spool_dir = ${tls_cert_file:${state_dir}/q}",
	    STRF(spool_dir, "/var/lib/backmx/q"), NULL },
	{ "spool_dir = ${state_dir?{a}}", STRF(spool_dir, "{a}"), NULL },
	{ "spool_dir = ${state_dir?$$}", STRF(spool_dir, "$"), NULL },
	/* An untaken branch is not expanded. */
	{ "spool_dir = /x${state_dir:$nosuch}", STRF(spool_dir, "/x"), NULL },

	{ "spool_dir = $nosuch", ERR,
	    "t.conf:1: unknown key 'nosuch' in $expansion" },
	{ "spool_dir = /a\n\nstate_dir = ${no_such}", ERR,
	    "t.conf:3: unknown key 'no_such' in $expansion" },
	{ "spool_dir = $spool_dir", ERR,
	    "t.conf:1: recursive expansion of $spool_dir" },
	{ "spool_dir = $state_dir\nstate_dir = ${spool_dir}", ERR,
	    "t.conf:2: recursive expansion of $spool_dir" },
	{ "spool_dir = $state_dir\nstate_dir = $domains_file\n"
	    "domains_file = ${tls_cert_file:$spool_dir}", ERR,
	    "t.conf:3: recursive expansion of $spool_dir" },
	{ "spool_dir = /a$", ERR, "t.conf:1: '$' not followed by a name, "
	    "'{' or '$' (write $$ for a '$')" },
	{ "spool_dir = /a$-", ERR, "t.conf:1: '$' not followed by a name, "
	    "'{' or '$' (write $$ for a '$')" },
	{ "spool_dir = ${state_dir", ERR, "t.conf:1: bad '${' in value: "
	    "${name}, ${name?text} or ${name:text}" },
	{ "spool_dir = ${}", ERR, "t.conf:1: bad '${' in value: "
	    "${name}, ${name?text} or ${name:text}" },
	{ "spool_dir = ${state_dir!x}", ERR, "t.conf:1: bad '${' in value: "
	    "${name}, ${name?text} or ${name:text}" },
	{ "spool_dir = ${state_dir?x", ERR,
	    "t.conf:1: missing '}' in value" },
	{ "smtpd_timeout = ${spool_dir}", ERR,
	    "t.conf:1: bad time value '/var/spool/backmx' for smtpd_timeout" },
};

static void
test_expansion(void **state)
{
	run_rows(expand_rows, nitems(expand_rows));
}

/* Values that grow past any field, or nest too deep, stop with an error
 * instead of eating memory or stack. */
static void
test_expansion_bounds(void **state)
{
	struct config c;
	char err[256], *text;
	size_t i, o;

	text = malloc(16384);
	assert_non_null(text);
	o = (size_t)sprintf(text, "spool_dir = ");
	for (i = 0; i < 300; i++)
		o += (size_t)sprintf(text + o, "$state_dir");
	assert_int_equal(parse(&c, text, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:1: value of spool_dir too long");

	o = (size_t)sprintf(text, "spool_dir = ");
	for (i = 0; i < 40; i++)
		o += (size_t)sprintf(text + o, "${tls_cert_file:");
	o += (size_t)sprintf(text + o, "/x");
	for (i = 0; i < 40; i++)
		text[o++] = '}';
	text[o] = '\0';
	assert_int_equal(parse(&c, text, err, sizeof(err)), -1);
	assert_string_equal(err,
	    "t.conf:1: recursive expansion (more than 32 deep)");

	/* Fan-out: 50 references to a key that holds 50 references to
	 * one that holds 50: 125,000 substitutions without memoizing, 150
	 * with. */
	o = (size_t)sprintf(text, "tls_cert_file =\ntls_key_file = ");
	for (i = 0; i < 50; i++)
		o += (size_t)sprintf(text + o, "$tls_cert_file");
	o += (size_t)sprintf(text + o, "\nspool_dir = /");
	for (i = 0; i < 50; i++)
		o += (size_t)sprintf(text + o, "$tls_key_file");
	o += (size_t)sprintf(text + o, "\nstate_dir = /");
	for (i = 0; i < 50; i++)
		o += (size_t)sprintf(text + o, "${spool_dir:x}");
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_string_equal(c.state_dir, "/");
	free(text);
}

struct listen_row {
	const char	*in;
	const char	*text;		/* NULL: refused */
	int		 family;
	unsigned	 port;
};

static const struct listen_row listen_rows[] = {
	{ "127.0.0.1:2525", "127.0.0.1:2525", AF_INET, 2525 },
	{ "0.0.0.0:25", "0.0.0.0:25", AF_INET, 25 },
	{ "*:25", "0.0.0.0:25", AF_INET, 25 },
	{ "127.0.0.1:0", "127.0.0.1:0", AF_INET, 0 },
	{ "10.1.2.3:65535", "10.1.2.3:65535", AF_INET, 65535 },
	{ "127.0.0.1:00025", "127.0.0.1:25", AF_INET, 25 },
	{ "[::1]:25", "[::1]:25", AF_INET6, 25 },
	{ "[::]:0", "[::]:0", AF_INET6, 0 },
	{ "[2001:DB8:0::1]:587", "[2001:db8::1]:587", AF_INET6, 587 },
	{ "[::ffff:192.0.2.1]:25", "[::ffff:192.0.2.1]:25", AF_INET6, 25 },
	{ "127.0.0.1", NULL, 0, 0 },
	{ "127.0.0.1:", NULL, 0, 0 },
	{ "127.0.0.1:65536", NULL, 0, 0 },
	{ "127.0.0.1:100000", NULL, 0, 0 },
	{ "127.0.0.1:-1", NULL, 0, 0 },
	{ "127.0.0.1:25x", NULL, 0, 0 },
	{ "127.0.0.1: 25", NULL, 0, 0 },
	{ "256.0.0.1:25", NULL, 0, 0 },
	{ "1.2.3:25", NULL, 0, 0 },
	{ "localhost:25", NULL, 0, 0 },
	{ "::1:25", NULL, 0, 0 },
	{ "[::1]25", NULL, 0, 0 },
	{ "[::1]", NULL, 0, 0 },
	{ "[::1:25", NULL, 0, 0 },
	{ "[127.0.0.1]:25", NULL, 0, 0 },
	{ "[*]:25", NULL, 0, 0 },
	{ "[]:25", NULL, 0, 0 },
	{ ":25", NULL, 0, 0 },
	{ "", NULL, 0, 0 },
	{ "[fe80::1%eth0]:25", NULL, 0, 0 },
};

static void
test_parse_listen(void **state)
{
	struct config_listen l;
	size_t i;

	for (i = 0; i < nitems(listen_rows); i++) {
		const struct listen_row *r = &listen_rows[i];
		int rc = config_parse_listen(r->in, &l);

		if (r->text == NULL) {
			if (rc != -1)
				fail_msg("row %zu \"%s\": accepted as %s", i,
				    r->in, l.text);
			continue;
		}
		if (rc != 0)
			fail_msg("row %zu \"%s\": refused", i, r->in);
		if (strcmp(l.text, r->text) != 0 ||
		    l.ss.ss_family != r->family)
			fail_msg("row %zu \"%s\": \"%s\" family %d", i, r->in,
			    l.text, l.ss.ss_family);
		if (r->family == AF_INET) {
			const struct sockaddr_in *sin =
			    (const struct sockaddr_in *)(const void *)&l.ss;

			assert_int_equal(l.sslen, sizeof(*sin));
			assert_int_equal(ntohs(sin->sin_port), r->port);
		} else {
			const struct sockaddr_in6 *sin6 =
			    (const struct sockaddr_in6 *)(const void *)&l.ss;

			assert_int_equal(l.sslen, sizeof(*sin6));
			assert_int_equal(ntohs(sin6->sin6_port), r->port);
		}
	}
}

static const struct value_row listen_list_rows[] = {
	{ "listen = 127.0.0.1:1", UINTF(listen[0].sslen,
	    sizeof(struct sockaddr_in)), NULL },
	{ "listen = 127.0.0.1:1, [::1]:2", STRF(listen[1].text, "[::1]:2"),
	    NULL },
	{ "listen = 127.0.0.1:1,[::1]:2 *:3", STRF(listen[2].text,
	    "0.0.0.0:3"), NULL },
	{ "listen = ,127.0.0.1:1,,\n  [::1]:2", STRF(listen[1].text,
	    "[::1]:2"), NULL },
	{ "listen = 127.0.0.1:1\nlisten = 127.0.0.2:2",
	    STRF(listen[0].text, "127.0.0.2:2"), NULL },
	{ "listen = 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 127.0.0.1:4 "
	    "127.0.0.1:5 127.0.0.1:6 127.0.0.1:7 127.0.0.1:8 127.0.0.1:9 "
	    "127.0.0.1:10 127.0.0.1:11 127.0.0.1:12 127.0.0.1:13 "
	    "127.0.0.1:14 127.0.0.1:15 [::1]:16",
	    STRF(listen[15].text, "[::1]:16"), NULL },
	{ "listen = 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 127.0.0.1:4 "
	    "127.0.0.1:5 127.0.0.1:6 127.0.0.1:7 127.0.0.1:8 127.0.0.1:9 "
	    "127.0.0.1:10 127.0.0.1:11 127.0.0.1:12 127.0.0.1:13 "
	    "127.0.0.1:14 127.0.0.1:15 [::1]:16 [::1]:17", ERR,
	    "t.conf:1: too many listen addresses (at most 16)" },
	{ "listen =", ERR, "t.conf:1: listen needs at least one address" },
	{ "listen = , ,", ERR,
	    "t.conf:1: listen needs at least one address" },
	{ "listen = 127.0.0.1:25, localhost:25", ERR,
	    "t.conf:1: bad listen address 'localhost:25'" },
	{ "listen = 127.0.0.1:65536", ERR,
	    "t.conf:1: bad listen address '127.0.0.1:65536'" },
	{ "listen = *:25 0.0.0.0:25", ERR,
	    "t.conf:1: duplicate listen address '0.0.0.0:25'" },
};

static void
test_listen_list(void **state)
{
	struct config c;
	char err[256];

	run_rows(listen_list_rows, nitems(listen_list_rows));
	assert_int_equal(parse(&c, "listen = [::1]:0, 127.0.0.1:0", err,
	    sizeof(err)), 0);
	assert_int_equal(c.nlisten, 2);
	assert_int_equal(c.listen[0].ss.ss_family, AF_INET6);
	assert_int_equal(c.listen[1].ss.ss_family, AF_INET);
}

struct helper_row {
	const char	*in;
	int		 rc;
	uint64_t	 want;
};

static void
test_helpers(void **state)
{
	static const struct helper_row times[] = {
		{ "0", 0, 0 }, { "1s", 0, 1 }, { "8d", 0, 691200 },
		{ "1w", 0, 604800 }, { "3h", 0, 10800 },
		{ "", -1, 0 }, { "1S", -1, 0 }, { " 1s", -1, 0 },
		{ "1s ", -1, 0 }, { "1y", -1, 0 }, { "0x10", -1, 0 },
	};
	static const struct helper_row sizes[] = {
		{ "0", 0, 0 }, { "500M", 0, 524288000 }, { "1g", 0, 1 << 30 },
		{ "", -1, 0 }, { "K", -1, 0 }, { "1MB", -1, 0 },
		{ "1 M", -1, 0 }, { "-1", -1, 0 },
	};
	static const struct helper_row bools[] = {
		{ "yes", 0, 1 }, { "no", 0, 0 }, { "YES", 0, 1 },
		{ "No", 0, 0 }, { "true", -1, 0 }, { "1", -1, 0 },
		{ "", -1, 0 }, { "yes ", -1, 0 },
	};
	unsigned secs;
	uint64_t bytes;
	int b;
	size_t i;

	for (i = 0; i < nitems(times); i++) {
		secs = 12345;
		if (config_parse_time(times[i].in, &secs) != times[i].rc ||
		    (times[i].rc == 0 && secs != times[i].want))
			fail_msg("time row %zu \"%s\"", i, times[i].in);
	}
	for (i = 0; i < nitems(sizes); i++) {
		bytes = 12345;
		if (config_parse_size(sizes[i].in, &bytes) != sizes[i].rc ||
		    (sizes[i].rc == 0 && bytes != sizes[i].want))
			fail_msg("size row %zu \"%s\"", i, sizes[i].in);
	}
	for (i = 0; i < nitems(bools); i++) {
		b = 7;
		if (config_parse_bool(bools[i].in, &b) != bools[i].rc ||
		    (bools[i].rc == 0 && (uint64_t)b != bools[i].want))
			fail_msg("bool row %zu \"%s\"", i, bools[i].in);
	}
}

/* config_print() into a string the caller frees. */
static char *
print_str(const struct config *c, int only_changed)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	config_print(c, f, only_changed);
	assert_int_equal(fclose(f), 0);
	return out;
}

static const char *const roundtrip_files[] = {
	"",
	"listen = 127.0.0.1:2525 [::1]:0, *:26\n"
	"myhostname = mx.example.org\n"
	"spool_dir = /sp ool\n"
	"state_dir = $spool_dir/st$$ate\n"
	"domains_file = ${state_dir}/d # hash\n"
	"control_socket = /c{}\n"
	"log_level = debug\n"
	"message_size_limit = 1g\n"
	"smtpd_recipient_limit = 0100\n"
	"smtpd_timeout = 5m\n"
	"smtpd_data_timeout = 2h\n"
	"smtpd_max_connections = 4294967295\n"
	"smtpd_max_connections_per_ip = 1\n"
	"smtpd_greet_pause = 1w\n"
	"smtpd_error_limit = 1\n"
	"smtpd_junk_command_limit = 7\n"
	"smtpd_body_buffer = 0\n"
	"tls_cert_file = /c.pem\n"
	"tls_key_file = /k.pem\n",
	"smtpd_timeout = 86400\nmessage_size_limit = 1024K\n"
	"spool_dir = $$$$\n",
	"smtpd_timeout = 2d\nsmtpd_greet_pause = 0\n"
	"message_size_limit = 17179869183G\n",
};

static void
test_print_roundtrip(void **state)
{
	struct config a, b;
	char err[256], *t1, *t2;
	size_t i;

	for (i = 0; i < nitems(roundtrip_files); i++) {
		if (parse(&a, roundtrip_files[i], err, sizeof(err)) != 0)
			fail_msg("file %zu: %s", i, err);
		t1 = print_str(&a, 0);
		if (parse(&b, t1, err, sizeof(err)) != 0)
			fail_msg("file %zu printed:\n%s\n%s", i, t1, err);
		/* Same struct, byte for byte: values and units. */
		assert_memory_equal(&a, &b, sizeof(a));
		t2 = print_str(&b, 0);
		assert_string_equal(t1, t2);
		free(t1);
		free(t2);
	}

	/* Units as written; '$' doubled; an empty value as "key =". */
	assert_int_equal(parse(&a, roundtrip_files[1], err, sizeof(err)), 0);
	t1 = print_str(&a, 0);
	assert_non_null(strstr(t1, "\nstate_dir = /sp ool/st$$ate\n"));
	assert_non_null(strstr(t1, "\nmessage_size_limit = 1g\n"));
	assert_non_null(strstr(t1, "\nsmtpd_recipient_limit = 100\n"));
	assert_non_null(strstr(t1, "\nsmtpd_timeout = 5m\n"));
	assert_non_null(strstr(t1, "\nsmtpd_greet_pause = 1w\n"));
	assert_non_null(strstr(t1, "listen = 127.0.0.1:2525, [::1]:0, "
	    "0.0.0.0:26\n"));
	free(t1);

	config_defaults(&a);
	t1 = print_str(&a, 0);
	assert_non_null(strstr(t1, "listen = 0.0.0.0:25, [::]:25\n"));
	assert_non_null(strstr(t1, "\nmessage_size_limit = 500M\n"));
	assert_non_null(strstr(t1, "\nsmtpd_timeout = 300s\n"));
	assert_non_null(strstr(t1, "\nsmtpd_data_timeout = 30m\n"));
	assert_non_null(strstr(t1, "\nsmtpd_body_buffer = 256K\n"));
	assert_non_null(strstr(t1, "\ntls_cert_file =\ntls_key_file =\n"));
	assert_non_null(strstr(t1, "\npassthrough = yes\n"));
	assert_non_null(strstr(t1, "\npassthrough_reply_timeout = 240s\n"));
	assert_non_null(strstr(t1, "\nlearning_period = 7d\n"));
	assert_non_null(strstr(t1, "\nrecipient_valid_ttl = 31d\n"));
	assert_non_null(strstr(t1, "\ncallout_queue_limit = 10000\n"));
	assert_non_null(strstr(t1, "\nacceptance_probe_interval = 1d\n"));
	free(t1);
}

struct changed_row {
	const char	*text;
	const char	*want;
};

static void
test_print_only_changed(void **state)
{
	static const struct changed_row rows[] = {
		{ "", "" },
		{ "smtpd_timeout = 5m\nmessage_size_limit = 524288000\n"
		    "listen = *:25 [0::0]:25\n", "" },
		{ "smtpd_timeout = 6m\nspool_dir = /s\n",
		    "spool_dir = /s\nsmtpd_timeout = 6m\n" },
		{ "listen = [::]:25", "listen = [::]:25\n" },
		{ "tls_cert_file = /c\ntls_key_file = /k",
		    "tls_cert_file = /c\ntls_key_file = /k\n" },
	};
	struct config c;
	char err[256], *out;
	size_t i;

	for (i = 0; i < nitems(rows); i++) {
		if (parse(&c, rows[i].text, err, sizeof(err)) != 0)
			fail_msg("row %zu: %s", i, err);
		out = print_str(&c, 1);
		if (strcmp(out, rows[i].want) != 0)
			fail_msg("row %zu: printed \"%s\", want \"%s\"", i,
			    out, rows[i].want);
		free(out);
	}
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		fail_msg("%s: cannot open", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * docs/configuration.md documents exactly the table's keys, each once,
 * under "## Keys" as "### `name`", with "Default: `value`" (or "Default:
 * empty") as config_print() shows the default. myhostname's default is
 * the machine's, so only its presence is checked.
 */
static void
test_docs_match_table(void **state)
{
	char *doc = slurp(SOURCE_ROOT "/docs/configuration.md");
	char *keys_at, *end, *p, *next, *printed, *defaults, *line;
	char want[512];
	size_t i, n = config_nkeys(), found = 0;
	struct config c;

	keys_at = strstr(doc, "\n## Keys\n");
	assert_non_null(keys_at);
	keys_at++;
	end = strstr(keys_at + 1, "\n## ");
	if (end != NULL)
		end[1] = '\0';		/* the Keys section only */

	config_defaults(&c);
	printed = print_str(&c, 0);
	defaults = malloc(strlen(printed) + 2);
	assert_non_null(defaults);
	sprintf(defaults, "\n%s", printed);	/* every line after a \n */
	free(printed);

	for (p = strstr(keys_at, "\n### `"); p != NULL; p = next) {
		char name[128], *tick;
		int k = -1;

		p += 6;
		next = strstr(p, "\n### `");
		tick = strchr(p, '`');
		assert_non_null(tick);
		assert_true((size_t)(tick - p) < sizeof(name));
		memcpy(name, p, (size_t)(tick - p));
		name[tick - p] = '\0';
		for (i = 0; i < n; i++)
			if (strcmp(config_key_name(i), name) == 0)
				k = (int)i;
		if (k == -1)
			fail_msg("docs name '%s', which is no key", name);
		found++;
		if (next != NULL)
			*next = '\0';
		if (strcmp(name, "myhostname") != 0) {
			/* "name = value\n" or "name =\n" from the print. */
			snprintf(want, sizeof(want), "\n%s =", name);
			line = strstr(defaults, want);
			assert_non_null(line);
			line += strlen(want);
			if (*line == '\n')
				snprintf(want, sizeof(want), "Default: empty");
			else
				snprintf(want, sizeof(want), "Default: `%.*s`",
				    (int)strcspn(line + 1, "\n"), line + 1);
			if (strstr(p, want) == NULL)
				fail_msg("docs of %s lack \"%s\"", name, want);
		}
		if (next != NULL)
			*next = '\n';
	}
	/* Each key found once, and no stray name: all n are named. */
	if (found != n)
		fail_msg("docs have %zu keys, the table %zu", found, n);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "\n### `%s`", config_key_name(i));
		p = strstr(keys_at, want);
		if (p == NULL)
			fail_msg("docs lack key %s", config_key_name(i));
		if (strstr(p + 1, want) != NULL)
			fail_msg("docs name %s twice", config_key_name(i));
	}
	free(defaults);
	free(doc);
}

static void
test_load(void **state)
{
	char err[512], want[PATH_MAX + 64], *big;
	char path[] = "/tmp/config_test.XXXXXX";
	struct config c, before;
	FILE *f;
	int fd;

	/* The example `make run` uses must load and mean what it says. */
	config_defaults(&c);
	if (config_load(&c, SOURCE_ROOT "/etc/backmx.conf", err,
	    sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.path, SOURCE_ROOT "/etc/backmx.conf");
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0].text, "127.0.0.1:2525");
	assert_string_equal(c.myhostname, "backmx.localhost");
	assert_string_equal(c.spool_dir, "./var/spool");
	assert_string_equal(c.state_dir, "./var/state");
	assert_string_equal(c.domains_file, "etc/domains");
	assert_string_equal(c.control_socket, "./var/control.sock");

	config_defaults(&c);
	memcpy(&before, &c, sizeof(c));
	assert_int_equal(config_load(&c, "/nonexistent/backmx.conf", err,
	    sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/backmx.conf: cannot open: "
	    "No such file or directory");
	assert_memory_equal(&c, &before, sizeof(c));

	fd = mkstemp(path);
	assert_true(fd != -1);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("# test\nsmtpd_timeout = 5m\nsmtpd_tmeout = 5m\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: unknown key 'smtpd_tmeout'",
	    path);
	assert_string_equal(err, want);

	/* Past 1 MiB the file is refused whole. */
	big = malloc(1024 * 1024 + 2);
	assert_non_null(big);
	memset(big, '#', 1024 * 1024 + 1);
	big[1024 * 1024 + 1] = '\0';
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(big, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
	assert_string_equal(err, want);
	big[1024 * 1024] = '\0';
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(big, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
	free(big);
	unlink(path);
}

static void
test_key_names(void **state)
{
	size_t i, n = config_nkeys();

	assert_true(n >= 19);
	assert_string_equal(config_key_name(0), "listen");
	assert_null(config_key_name(n));
	for (i = 0; i < n; i++)
		assert_non_null(config_key_name(i));
}

/* mx_names is parsed at load into mx_name[], and a reload (a second
 * parse) replaces it whole; config_is_our_mx() reads only that. */
static void
test_mx_names(void **state)
{
	static const char one[] = "myhostname = mx2.example.net\n"
	    "mx_names = Backup.ISP.example, mx3.example.net\n"
	    "  mx4.example.net\n";
	static const char two[] = "myhostname = mx2.example.net\n"
	    "mx_names = mx5.example.net\n";
	static const char *const bad[] = {
		"mx_names = a..example\n",
		"mx_names = ok.example bad_name.example\n",
		"mx_names = a b c d e f g h i j k l m n o p q\n",	/* 17 */
	};
	struct config c;
	char err[256];
	size_t i;

	config_defaults(&c);
	assert_int_equal(c.nmx_names, 0);
	assert_int_equal(config_parse(&c, "t.conf", one, sizeof(one) - 1,
	    err, sizeof(err)), 0);
	assert_int_equal(c.nmx_names, 3);
	assert_string_equal(c.mx_name[0], "backup.isp.example");
	assert_string_equal(c.mx_name[2], "mx4.example.net");
	assert_true(config_is_our_mx(&c, "MX2.example.net"));
	assert_true(config_is_our_mx(&c, "backup.isp.EXAMPLE"));
	assert_true(config_is_our_mx(&c, "mx4.example.net"));
	assert_false(config_is_our_mx(&c, "mx5.example.net"));
	assert_false(config_is_our_mx(&c, "backup.isp"));
	assert_true(config_is_our_mx(&c, "mx3.example.net."));

	assert_int_equal(config_parse(&c, "t.conf", two, sizeof(two) - 1,
	    err, sizeof(err)), 0);
	assert_int_equal(c.nmx_names, 1);
	assert_string_equal(c.mx_name[1], "");
	assert_true(config_is_our_mx(&c, "mx5.example.net"));
	assert_false(config_is_our_mx(&c, "mx3.example.net"));

	for (i = 0; i < nitems(bad); i++)
		if (config_parse(&c, "t.conf", bad[i], strlen(bad[i]), err,
		    sizeof(err)) != -1 || strstr(err, "mx_names") == NULL)
			fail_msg("bad row %zu: '%s'", i, err);
}

/* The DNS check lists are parsed at load into dns_lists, zeroed past
 * their end, and a later definition replaces them whole. */
static void
test_dns_lists(void **state)
{
	static const char text[] =
	    "mx_invalid_networks = 10.0.0.0/8, 192.0.2.0/24\n"
	    "dnsbl_zones = a.example=127.0.0.2;127.0.0.4, b.example\n"
	    "dnsbl_allow = 198.51.100.7\n"
	    "dnsbl_allow = ::1\n";
	const struct config_dns_lists *l;
	struct config c, c2;
	uint8_t a[16];
	char err[256];

	config_defaults(&c);
	l = &c.dns_lists;
	assert_int_equal(l->nmx_invalid_nets, 0);
	assert_int_equal(l->ndnsbl_zones, 1);
	assert_string_equal(l->dnsbl_zone[0].name, "zen.spamhaus.org");
	assert_int_equal(l->ndnsbl_allow_nets, 2);	/* 127/8, ::1 */

	assert_int_equal(config_parse(&c, "t.conf", text, sizeof(text) - 1,
	    err, sizeof(err)), 0);
	assert_int_equal(l->nmx_invalid_nets, 2);
	assert_int_equal(ranges_addr_parse("192.0.2.9", a), 0);
	assert_int_equal(ranges_find(l->mx_invalid_net, l->nmx_invalid_nets,
	    a), 1);
	assert_int_equal(l->ndnsbl_zones, 2);
	assert_string_equal(l->dnsbl_zone[1].name, "b.example");
	assert_int_equal(l->dnsbl_zone[0].ncodes, 2);
	assert_string_equal(l->dnsbl_zone[2].name, "");
	assert_int_equal(l->ndnsbl_allow_nets, 1);
	assert_int_equal(ranges_addr_parse("::1", a), 0);
	assert_int_equal(ranges_find(l->dnsbl_allow_net, 1, a), 0);

	/* The same text parsed again: the same bytes. */
	config_defaults(&c2);
	assert_int_equal(config_parse(&c2, "t.conf", text, sizeof(text) - 1,
	    err, sizeof(err)), 0);
	assert_memory_equal(&c.dns_lists, &c2.dns_lists, sizeof(c.dns_lists));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_nul_and_unchanged),
		cmocka_unit_test(test_expansion),
		cmocka_unit_test(test_expansion_bounds),
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_listen_list),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_print_roundtrip),
		cmocka_unit_test(test_print_only_changed),
		cmocka_unit_test(test_docs_match_table),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_key_names),
		cmocka_unit_test(test_mx_names),
		cmocka_unit_test(test_dns_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
