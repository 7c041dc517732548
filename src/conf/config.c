/*
 * config: reads backmx.conf (Postfix main.cf syntax, docs/configuration.md)
 * into struct config. Runs once at start and on SIGHUP, before anything uses
 * the values; a failure leaves the caller's struct untouched.
 *
 * The table keys[] is the one list of keys: type, field, default and a
 * line of documentation per row. Reading is three passes: collect the last
 * "name = value" of every key (joining continuation lines), expand $name
 * references against the final values, then convert each value by its
 * row's type. Expansion is memoized per key, so neither a loop nor a value
 * that fans out into many references can run away.
 *
 * Exposed to the operator's file only, never to peer bytes; it is still a
 * fuzz target (fuzz/fuzz_config.c): no input may crash or leak.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/util.h>

#include "dname.h"
#include "dnsxl.h"
#include "log.h"
#include "ranges.h"
#include "sockaddr.h"
#include "str.h"
#include "file.h"
#include "xmem.h"

#define CONFIG_FILE_MAX	(1024 * 1024)	/* a bigger file is a mistake */
#define EXPAND_DEPTH	32		/* nested ${name?...} and $name */
#define TEXT_MAX	(PATH_MAX + 64)	/* one value as text */

enum conf_type {
	CONF_PATH,	/* file or directory name */
	CONF_HOST,	/* host name, src/core/dname.h */
	CONF_TIME,	/* unsigned seconds; s, m, h, d, w */
	CONF_SIZE,	/* uint64_t bytes; K, M, G */
	CONF_UINT,	/* unsigned */
	CONF_BOOL,	/* int; yes or no */
	CONF_LISTEN,	/* listen[] and nlisten */
	CONF_LOGLEVEL,	/* char[]; err, warning, info, debug */
	CONF_LIST,	/* char[]; items split by commas or white space */
};

#define CONF_EMPTY_OK	0x01	/* a string that may be "" */

struct conf_key {
	const char	*name;
	enum conf_type	 type;
	size_t		 off;		/* of the field in struct config */
	size_t		 size;		/* of the field */
	const char	*def;		/* NULL: config_defaults() knows */
	uint64_t	 min;		/* numbers only */
	unsigned	 flags;
	const char	*doc;
};

static int	check_forward(struct config *, const char *, char *, size_t);
static int	set_mx_invalid(struct config *, const char *, char *, size_t);
static int	set_dnsbl_zones(struct config *, const char *, char *, size_t);
static int	set_dnsbl_allow(struct config *, const char *, char *, size_t);
static int	set_mx_names(struct config *, const char *, char *, size_t);
static int	set_etrn_clients(struct config *, const char *, char *,
		    size_t);
static int	check_fail_action(struct config *, const char *, char *,
		    size_t);
static int	check_user(struct config *, const char *, char *, size_t);
static int	check_milters(struct config *, const char *, char *, size_t);
static int	check_milter_action(struct config *, const char *, char *,
		    size_t);
static int	check_log_target(struct config *, const char *, char *, size_t);
static int	check_log_facility(struct config *, const char *, char *,
		    size_t);
static int	check_group(struct config *, const char *, char *, size_t);
static int	check_metrics_listen(struct config *, const char *, char *,
		    size_t);
static int	set_redis_servers(struct config *, const char *, char *,
		    size_t);
static int	set_redis_sentinels(struct config *, const char *, char *,
		    size_t);
static int	check_redis_master_name(struct config *, const char *,
		    char *, size_t);
static int	check_redis_prefix(struct config *, const char *, char *,
		    size_t);

#define FIELD(f)	offsetof(struct config, f), \
			sizeof(((struct config *)0)->f)

/*
 * One row per key, in the order config_print() shows them. Keep
 * docs/configuration.md in step: config_test.c checks it names exactly
 * these keys with these defaults.
 */
static const struct conf_key keys[] = {
	{ "listen", CONF_LISTEN, FIELD(listen), "0.0.0.0:25, [::]:25", 0, 0,
	    "addresses to accept SMTP on: ADDR:PORT, [IPv6]:PORT, *:PORT" },
	{ "metrics_listen", CONF_LIST, FIELD(metrics_listen), "127.0.0.1:9125",
	    0, CONF_EMPTY_OK, "address of the HTTP server for /metrics "
	    "(docs/metrics.md): ADDR:PORT, [IPv6]:PORT; empty: off" },
	{ "metrics_domains", CONF_BOOL, FIELD(metrics_domains), "no", 0, 0,
	    "also export series per customer domain (a label each)" },
	{ "metrics_domains_max", CONF_UINT, FIELD(metrics_domains_max), "100",
	    0, 0, "per-domain series for at most this many domains, in the "
	    "domains file's order" },
	{ "myhostname", CONF_HOST, FIELD(myhostname), NULL, 0, 0,
	    "our name in the greeting, EHLO and Received: headers" },
	{ "spool_dir", CONF_PATH, FIELD(spool_dir), "/var/spool/backmx", 0, 0,
	    "the queue: queue.db and big/" },
	{ "state_dir", CONF_PATH, FIELD(state_dir), "/var/lib/backmx", 0, 0,
	    "the state store: greylist, recipients, domain state" },
	{ "state_sweep_interval", CONF_TIME, FIELD(state_sweep_interval),
	    "60s", 1, 0, "how often expired state is deleted" },
	{ "state_sweep_batch", CONF_UINT, FIELD(state_sweep_batch), "1000", 1,
	    0, "most expired rows deleted in one transaction" },
	{ "greylist", CONF_BOOL, FIELD(greylist), "yes", 0, 0,
	    "greylist mail backmx would store (docs/greylisting.md)" },
	{ "greylist_delay", CONF_TIME, FIELD(greylist_delay), "300s", 1, 0,
	    "a new triplet passes when retried this long after its first try" },
	{ "greylist_retry_window", CONF_TIME, FIELD(greylist_retry_window),
	    "48h", 1, 0, "an unretried triplet is forgotten after this" },
	{ "greylist_max_age", CONF_TIME, FIELD(greylist_max_age), "36d", 1, 0,
	    "a passed triplet is kept this long after its last pass" },
	{ "greylist_ipv4_prefix", CONF_UINT, FIELD(greylist_ipv4_prefix),
	    "24", 0, 0, "IPv4 clients count by network of this length (0-32)" },
	{ "greylist_ipv6_prefix", CONF_UINT, FIELD(greylist_ipv6_prefix),
	    "64", 0, 0, "IPv6 clients count by network of this length (0-128)" },
	{ "greylist_auto_allow_passes", CONF_UINT,
	    FIELD(greylist_auto_allow_passes), "5", 0, 0,
	    "passed triplets after which a network skips greylisting; 0: off" },
	{ "greylist_allow_clients", CONF_LIST, FIELD(greylist_allow_clients),
	    "", 0, 0, "clients never greylisted: addresses, networks, names" },
	{ "greylist_allow_senders", CONF_LIST, FIELD(greylist_allow_senders),
	    "", 0, 0, "senders never greylisted: domains, addresses" },
	{ "greylist_allow_recipients", CONF_LIST,
	    FIELD(greylist_allow_recipients), "", 0, 0,
	    "recipients never greylisted: addresses, domains" },
	{ "redis_servers", CONF_LIST, FIELD(redis_servers), "", 0,
	    CONF_EMPTY_OK, "ADDR:PORT of the Redis server the nodes share "
	    "their state through (docs/cluster.md); empty: no cluster" },
	{ "redis_sentinels", CONF_LIST, FIELD(redis_sentinels), "", 0,
	    CONF_EMPTY_OK, "ADDR:PORT of the Redis Sentinels that name the "
	    "master (instead of redis_servers); empty: none" },
	{ "redis_master_name", CONF_LIST, FIELD(redis_master_name),
	    "mymaster", 0, 0, "the master's name the Sentinels monitor" },
	{ "redis_timeout", CONF_UINT, FIELD(redis_timeout), "150", 1, 0,
	    "milliseconds a Redis request may take before the node decides "
	    "alone" },
	{ "redis_prefix", CONF_LIST, FIELD(redis_prefix), "backmx:", 0,
	    CONF_EMPTY_OK, "start of every Redis key of this cluster" },
	{ "redis_replay_limit", CONF_UINT, FIELD(redis_replay_limit), "10000",
	    1, 0, "greylist decisions kept for Redis while it is away; past "
	    "it the oldest go" },
	{ "bulk_detect", CONF_BOOL, FIELD(bulk_detect), "yes", 0, 0,
	    "defer bulk mail backmx would store (docs/bulk.md)" },
	{ "bulk_threshold", CONF_UINT, FIELD(bulk_threshold), "20", 1, 0,
	    "distinct recipients of one digest that make it bulk" },
	{ "bulk_window", CONF_TIME, FIELD(bulk_window), "24h", 1, 0,
	    "a digest's count is kept this long after it was last seen" },
	{ "bulk_remember", CONF_TIME, FIELD(bulk_remember), "30d", 1, 0,
	    "a bulk digest is deferred this long after its last copy" },
	{ "bulk_allow_clients", CONF_LIST, FIELD(bulk_allow_clients), "", 0, 0,
	    "clients whose mail is never counted: addresses, networks" },
	{ "bulk_allow_senders", CONF_LIST, FIELD(bulk_allow_senders), "", 0, 0,
	    "senders whose mail is never counted: domains, addresses" },
	{ "bulk_allow_recipients", CONF_LIST, FIELD(bulk_allow_recipients), "",
	    0, 0, "recipients never counted: addresses, domains" },
	{ "dccifd_socket", CONF_PATH, FIELD(dccifd_socket), "", 0,
	    CONF_EMPTY_OK, "a site's own DCC daemon asked about backup mail "
	    "(UNIX socket); empty: none" },
	{ "dccifd_timeout", CONF_TIME, FIELD(dccifd_timeout), "30s", 1, 0,
	    "time dccifd has for one message, connect to verdict" },
	{ "dccifd_fail_action", CONF_LIST, FIELD(dccifd_fail_action),
	    "accept", 0, 0, "dccifd in trouble or failing: accept or "
	    "tempfail" },
	{ "domains_file", CONF_PATH, FIELD(domains_file),
	    "/etc/backmx/domains", 0, 0,
	    "the customer domains we are backup MX for" },
	{ "control_socket", CONF_PATH, FIELD(control_socket),
	    "/run/backmx/control.sock", 0, 0,
	    "UNIX socket backmxctl talks to" },
	{ "user", CONF_LIST, FIELD(user), "backmx", 0, 0,
	    "started as root, run as this user; root: stay root" },
	{ "group", CONF_LIST, FIELD(group), "", 0, 0,
	    "and this group; empty: the user's own" },
	{ "log_level", CONF_LOGLEVEL, FIELD(log_level), "info", 0, 0,
	    "least severe level logged: err, warning, info or debug" },
	{ "log_target", CONF_LIST, FIELD(log_target), "stderr", 0, 0,
	    "where log lines go: stderr (the journal) or syslog" },
	{ "log_facility", CONF_LIST, FIELD(log_facility), "mail", 0, 0,
	    "syslog facility with log_target = syslog" },
	{ "shutdown_grace", CONF_TIME, FIELD(shutdown_grace), "30s", 0, 0,
	    "at SIGTERM, how long a transaction under way may finish" },
	{ "message_size_limit", CONF_SIZE, FIELD(message_size_limit), "500M",
	    1, 0, "largest message accepted, in bytes" },
	{ "smtpd_recipient_limit", CONF_UINT, FIELD(smtpd_recipient_limit),
	    "100", 1, 0, "most recipients in one transaction" },
	{ "smtpd_timeout", CONF_TIME, FIELD(smtpd_timeout), "300s", 1, 0,
	    "longest wait for a command line or a DATA line" },
	{ "smtpd_data_timeout", CONF_TIME, FIELD(smtpd_data_timeout), "30m",
	    1, 0, "longest time for a whole DATA phase" },
	{ "smtpd_max_connections", CONF_UINT, FIELD(smtpd_max_connections),
	    "1000", 1, 0, "most SMTP sessions at once" },
	{ "smtpd_max_connections_per_ip", CONF_UINT,
	    FIELD(smtpd_max_connections_per_ip), "20", 1, 0,
	    "most SMTP sessions at once from one client address" },
	{ "smtpd_greet_pause", CONF_TIME, FIELD(smtpd_greet_pause), "0s", 0,
	    0, "wait before the 220 greeting; a client talking first is "
	    "rejected" },
	{ "smtpd_soft_error_limit", CONF_UINT, FIELD(smtpd_soft_error_limit),
	    "10", 1, 0, "4xx/5xx replies in one session before each further "
	    "one waits smtpd_error_sleep_time" },
	{ "smtpd_hard_error_limit", CONF_UINT, FIELD(smtpd_hard_error_limit),
	    "20", 1, 0, "4xx/5xx replies in one session before 421 and "
	    "close" },
	{ "smtpd_error_sleep_time", CONF_TIME, FIELD(smtpd_error_sleep_time),
	    "1s", 0, 0, "delay of each reply past smtpd_soft_error_limit" },
	{ "smtpd_error_limit", CONF_UINT, FIELD(smtpd_error_limit), "0", 0,
	    0, "old name of smtpd_hard_error_limit; set, it wins; 0: unset" },
	{ "smtpd_recipient_overshoot_limit", CONF_UINT,
	    FIELD(smtpd_recipient_overshoot_limit), "1000", 1, 0,
	    "452 4.5.3 (too many recipients) replies in one session before "
	    "they count as errors" },
	{ "smtpd_junk_command_limit", CONF_UINT,
	    FIELD(smtpd_junk_command_limit), "100", 1, 0,
	    "NOOP, VRFY, RSET, HELP... in one session before 421 and close" },
	{ "smtpd_etrn_clients", CONF_LIST, FIELD(smtpd_etrn_clients),
	    "127.0.0.1, ::1", 0, CONF_EMPTY_OK, "networks whose ETRN is "
	    "obeyed, besides each domain's own route= address" },
	{ "smtpd_body_buffer", CONF_SIZE, FIELD(smtpd_body_buffer), "256K", 0,
	    0, "bytes of a body held in memory before it spills to a file" },
	{ "tls_cert_file", CONF_PATH, FIELD(tls_cert_file), "", 0,
	    CONF_EMPTY_OK, "PEM certificate chain for STARTTLS; \"\": none" },
	{ "tls_key_file", CONF_PATH, FIELD(tls_key_file), "", 0,
	    CONF_EMPTY_OK, "PEM private key for tls_cert_file" },
	{ "dns_forward", CONF_LIST, FIELD(dns_forward), "", 0, 0,
	    "forwarders ADDR[@PORT]; empty: resolve from the root" },
	{ "dns_trust_anchor_file", CONF_PATH, FIELD(dns_trust_anchor_file),
	    "/usr/share/dns/root.key", 0, CONF_EMPTY_OK,
	    "DNSSEC trust anchor; empty or missing: no validation" },
	{ "dns_cache_max_ttl", CONF_TIME, FIELD(dns_cache_max_ttl), "300s", 0,
	    0, "longest a DNS answer, found or not found, is cached" },
	{ "dns_timeout", CONF_TIME, FIELD(dns_timeout), "10s", 1, 0,
	    "longest wait for one DNS answer before a 4xx" },
	{ "dns_max_queries", CONF_UINT, FIELD(dns_max_queries), "1000", 1, 0,
	    "DNS queries in flight at most; past it a 4xx" },
	{ "dns_session_max_queries", CONF_UINT,
	    FIELD(dns_session_max_queries), "200", 0, 0,
	    "DNS queries one SMTP session's checks may send; past it a 4xx" },
	{ "dns_session_max_inflight", CONF_UINT,
	    FIELD(dns_session_max_inflight), "24", 0, 0,
	    "DNS queries of one SMTP session in flight at most; past it a 4xx" },
	{ "check_sender_domain", CONF_BOOL, FIELD(check_sender_domain), "yes",
	    0, 0, "MAIL FROM domain: FQDN, exists, no null MX, MX ranges" },
	{ "check_recipient_domain", CONF_BOOL, FIELD(check_recipient_domain),
	    "yes", 0, 0, "RCPT TO domain: FQDN, exists, no null MX, MX ranges" },
	{ "check_mx_ranges", CONF_BOOL, FIELD(check_mx_ranges), "yes", 0, 0,
	    "refuse domains whose MX hosts are all at special addresses" },
	{ "mx_invalid_networks", CONF_LIST, FIELD(mx_invalid_networks), "", 0,
	    0, "more ranges no MX host may be in" },
	{ "check_dnsbl", CONF_BOOL, FIELD(check_dnsbl), "yes", 0, 0,
	    "look the client up in dnsbl_zones" },
	{ "dnsbl_zones", CONF_LIST, FIELD(dnsbl_zones), "zen.spamhaus.org", 0,
	    0, "DNSBL zones, ZONE[=CODES]" },
	{ "dnsbl_allow", CONF_LIST, FIELD(dnsbl_allow), "127.0.0.0/8, ::1", 0,
	    0, "client networks never looked up" },
	{ "dnsbl_fail_action", CONF_LIST, FIELD(dnsbl_fail_action),
	    "tempfail", 0, 0, "a DNSBL that does not answer: tempfail or "
	    "ignore" },
	{ "backup_milters", CONF_LIST, FIELD(backup_milters), "", 0,
	    CONF_EMPTY_OK, "content filters asked in backup mode, in order: "
	    "unix:PATH or inet:ADDR:PORT" },
	{ "milter_connect_timeout", CONF_TIME, FIELD(milter_connect_timeout),
	    "30s", 1, 0, "time to connect to a filter and agree on options" },
	{ "milter_command_timeout", CONF_TIME, FIELD(milter_command_timeout),
	    "30s", 1, 0, "time a filter has to answer a command" },
	{ "milter_content_timeout", CONF_TIME, FIELD(milter_content_timeout),
	    "300s", 1, 0, "time a filter has to answer the message content" },
	{ "milter_default_action", CONF_LIST, FIELD(milter_default_action),
	    "tempfail", 0, 0, "a filter that fails: tempfail or accept" },
	{ "queue_inline_max", CONF_SIZE, FIELD(queue_inline_max), "1M", 0, 0,
	    "bodies up to this size live in queue.db or log/, larger in big/" },
	{ "queue_minfree", CONF_SIZE, FIELD(queue_minfree), "0", 0, 0,
	    "free space under which MAIL gets 452; 0: 2 x message_size_limit" },
	{ "minimal_backoff_time", CONF_TIME, FIELD(minimal_backoff_time),
	    "1m", 1, 0, "first retry delay; doubles per attempt" },
	{ "maximal_backoff_time", CONF_TIME, FIELD(maximal_backoff_time),
	    "1h", 1, 0, "longest delay between two delivery attempts" },
	{ "maximal_queue_lifetime", CONF_TIME, FIELD(maximal_queue_lifetime),
	    "8d", 1, 0, "undelivered this long: bounce to the sender" },
	{ "delay_warning_time", CONF_TIME, FIELD(delay_warning_time), "0s", 0,
	    0, "undelivered this long: warn the sender once; 0s: never" },
	{ "primary_probe_interval", CONF_TIME, FIELD(primary_probe_interval),
	    "60s", 1, 0, "how often a down primary with queued mail is probed" },
	{ "primary_down_after", CONF_UINT, FIELD(primary_down_after), "3", 1,
	    0, "consecutive connection failures before a primary is down" },
	{ "primary_connection_limit", CONF_UINT,
	    FIELD(primary_connection_limit), "4", 1, 0,
	    "parallel delivery connections to one primary" },
	{ "smtp_connect_timeout", CONF_TIME, FIELD(smtp_connect_timeout),
	    "30s", 1, 0, "delivery: longest wait for a TCP connection" },
	{ "smtp_greeting_timeout", CONF_TIME, FIELD(smtp_greeting_timeout),
	    "5m", 1, 0, "delivery: longest wait for the 220 greeting" },
	{ "smtp_command_timeout", CONF_TIME, FIELD(smtp_command_timeout),
	    "5m", 1, 0, "delivery: longest wait for EHLO, MAIL, RCPT replies" },
	{ "smtp_data_init_timeout", CONF_TIME, FIELD(smtp_data_init_timeout),
	    "2m", 1, 0, "delivery: longest wait for the 354 after DATA" },
	{ "smtp_data_block_timeout", CONF_TIME,
	    FIELD(smtp_data_block_timeout), "3m", 1, 0,
	    "delivery: longest stall while sending the body" },
	{ "smtp_data_done_timeout", CONF_TIME, FIELD(smtp_data_done_timeout),
	    "10m", 1, 0, "delivery: longest wait for the reply to the dot" },
	{ "mx_names", CONF_LIST, FIELD(mx_names), "", 0, 0,
	    "names of this MX besides myhostname, for loop prevention" },
	{ "delivery_port", CONF_UINT, FIELD(delivery_port), "25", 1, 0,
	    "TCP port of MX hosts (routes name their own)" },
	{ "passthrough", CONF_BOOL, FIELD(passthrough), "yes", 0, 0,
	    "relay live to an up primary; no: always store and forward" },
	{ "passthrough_connect_timeout", CONF_TIME,
	    FIELD(passthrough_connect_timeout), "10s", 1, 0,
	    "pass-through: connect, greeting and EHLO of the primary" },
	{ "passthrough_reply_timeout", CONF_TIME,
	    FIELD(passthrough_reply_timeout), "240s", 1, 0,
	    "pass-through: longest wait for each reply of the primary" },
	{ "passthrough_pool_size", CONF_UINT, FIELD(passthrough_pool_size),
	    "2", 0, 0, "pass-through: idle connections kept per primary for "
	    "the next session (0: none)" },
	{ "passthrough_connection_limit", CONF_UINT,
	    FIELD(passthrough_connection_limit), "20", 1, 0,
	    "pass-through: connections to one primary in use at once; a "
	    "session beyond it is stored (backup mode)" },
	{ "accept_unverified", CONF_BOOL, FIELD(accept_unverified), "no", 0,
	    0, "backup mode: accept recipients never verified (per domain "
	    "too)" },
	{ "domain_learning", CONF_BOOL, FIELD(domain_learning), "yes", 0, 0,
	    "learn a new domain's recipients first; no: every domain active" },
	{ "learning_period", CONF_TIME, FIELD(learning_period), "7d", 1, 0,
	    "how long a new domain learns its recipients" },
	{ "recipient_valid_ttl", CONF_TIME, FIELD(recipient_valid_ttl), "31d",
	    1, 0, "a recipient the primary accepted is known valid this long" },
	{ "recipient_invalid_ttl", CONF_TIME, FIELD(recipient_invalid_ttl),
	    "3d", 1, 0, "a recipient the primary refused is known invalid "
	    "this long" },
	{ "callout_rate_limit", CONF_UINT, FIELD(callout_rate_limit), "30", 1,
	    0, "recipient verifications per minute per customer domain" },
	{ "callout_queue_limit", CONF_UINT, FIELD(callout_queue_limit),
	    "10000", 1, 0, "addresses waiting for verification, in all" },
	{ "acceptance_probe_interval", CONF_TIME,
	    FIELD(acceptance_probe_interval), "1d", 1, 0,
	    "how often RCPT TO:<postmaster@DOMAIN> checks a primary takes "
	    "our mail" },
};

#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* CONF_LIST keys whose syntax is checked when read, by the parsers their
 * modules use, so a value that loads is a value that works; the set_
 * ones also store the parsed list in *c (once, not at every use). */
static const struct {
	const char	*name;
	int		(*check)(struct config *c, const char *v, char *why,
			    size_t whysz);
} list_checks[] = {
	{ "dns_forward", check_forward },
	{ "mx_invalid_networks", set_mx_invalid },
	{ "dnsbl_zones", set_dnsbl_zones },
	{ "dnsbl_allow", set_dnsbl_allow },
	{ "dnsbl_fail_action", check_fail_action },
	{ "backup_milters", check_milters },
	{ "milter_default_action", check_milter_action },
	{ "dccifd_fail_action", check_milter_action },
	{ "log_target", check_log_target },
	{ "log_facility", check_log_facility },
	{ "user", check_user },
	{ "group", check_group },
	{ "mx_names", set_mx_names },
	{ "smtpd_etrn_clients", set_etrn_clients },
	{ "metrics_listen", check_metrics_listen },
	{ "redis_servers", set_redis_servers },
	{ "redis_sentinels", set_redis_sentinels },
	{ "redis_master_name", check_redis_master_name },
	{ "redis_prefix", check_redis_prefix },
};

_Static_assert(NKEYS <= CONFIG_KEYS_MAX, "grow CONFIG_KEYS_MAX");
_Static_assert(CONFIG_LISTEN_MAX * 66 < TEXT_MAX, "listen text too long");

/* A number type: how it is written (unit letters, their multipliers, and
 * the ones config_print() may pick, largest first), its bound, and how
 * its errors name it. */
struct num_type {
	const char	*units;		/* NULL: a bare number only */
	const uint64_t	*mult;
	const char	*best;
	uint64_t	 max;
	const char	*what;		/* "bad WHAT '...' for KEY" */
	const char	*min_unit;	/* "(at least 1s)" */
	int		 show_range;	/* bad: "(0 to MAX)" */
};

static const uint64_t	 time_mult[] = { 1, 60, 3600, 86400, 604800 };
static const uint64_t	 size_mult[] = {
	1ULL << 10, 1ULL << 20, 1ULL << 30, 1ULL << 10, 1ULL << 20, 1ULL << 30
};
static const struct num_type num_time = {
	"smhdw", time_mult, "wdhms", UINT_MAX, "time value", "s", 0
};
static const struct num_type num_size = {
	"KMGkmg", size_mult, "GMK", UINT64_MAX, "size value", "", 0
};
static const struct num_type num_uint = {
	NULL, NULL, NULL, UINT_MAX, "number", "", 1
};

/* A growable string, for logical lines and expanded values. */
struct sbuf {
	char	*p;
	size_t	 len, cap;
};

/* What pass one collected for a key. */
struct raw {
	char	*text;		/* the last definition; NULL: not in the file */
	char	*value;		/* after $expansion; NULL: not yet */
	int	 line;		/* of that definition */
	int	 busy;		/* being expanded: meeting it again is a loop */
};

struct parse {
	const char	*name;		/* the file, for errors */
	struct config	*c;		/* a copy; the caller's on success */
	struct raw	 raw[NKEYS];
	int		 line;		/* of the key being expanded */
	size_t		 cur;		/* and its row */
	char		*err;
	size_t		 errsz;
};

static void	seterr(struct parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

void
config_verr(char *err, size_t errsz, const char *file, int line,
    const char *fmt, va_list ap)
{
	char msg[512];

	if (errsz == 0)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		snprintf(err, errsz, "%s:%d: %s", file, line, msg);
	else
		snprintf(err, errsz, "%s: %s", file, msg);
}

static void
seterr(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verr(p->err, p->errsz, p->name, line, fmt, ap);
	va_end(ap);
}

static void
sb_add(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		while (sb->len + n + 1 > sb->cap)
			sb->cap = sb->cap ? sb->cap * 2 : 128;
		sb->p = xreallocarray(sb->p, sb->cap, 1);
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static int
is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
	    ch == '\v' || ch == '\f';
}

static int
is_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_';
}

static int
find_key(const char *name, size_t n)
{
	size_t k;

	for (k = 0; k < NKEYS; k++)
		if (strlen(keys[k].name) == n &&
		    memcmp(keys[k].name, name, n) == 0)
			return (int)k;
	return -1;
}

/*
 * Decimal digits, then at most one of t's unit letters, then nothing: no
 * sign, no space. The product must not pass t->max.
 */
static int
parse_scaled(const char *s, const struct num_type *t, uint64_t *out,
    char *unit_out)
{
	const char *p = s, *u;
	uint64_t n = 0, m = 1;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*unit_out = '\0';
	if (*p != '\0') {
		if (t->units == NULL || (u = strchr(t->units, *p)) == NULL ||
		    p[1] != '\0')
			return -1;
		m = t->mult[u - t->units];
		*unit_out = *p;
	}
	if (n > t->max / m)
		return -1;
	*out = n * m;
	return 0;
}

int
config_parse_time(const char *s, unsigned *secs_out)
{
	uint64_t v;
	char unit;

	if (parse_scaled(s, &num_time, &v, &unit) == -1)
		return -1;
	*secs_out = (unsigned)v;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *bytes_out)
{
	char unit;

	return parse_scaled(s, &num_size, bytes_out, &unit);
}

int
config_parse_bool(const char *s, int *out)
{
	if (strcasecmp(s, "yes") == 0)
		*out = 1;
	else if (strcasecmp(s, "no") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

int
config_parse_listen(const char *s, struct config_listen *out)
{
	char host[INET6_ADDRSTRLEN + 1], addr[INET6_ADDRSTRLEN];
	const char *colon, *h, *p;
	size_t hlen;
	unsigned long port = 0;
	int v6;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		v6 = 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		h = s;
		hlen = (size_t)(colon - s);
		v6 = 0;
	}
	if (*colon != ':' || hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	/* Port 0 is allowed: the kernel picks one (the tests use it). */
	p = colon + 1;
	if (*p == '\0' || strlen(p) > 5)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		return -1;

	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->sslen = sizeof(*sin6);
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		snprintf(out->text, sizeof(out->text), "[%s]:%lu", addr, port);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

		if (strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->sslen = sizeof(*sin);
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		snprintf(out->text, sizeof(out->text), "%s:%lu", addr, port);
	}
	return 0;
}

/* One address, or nothing: the HTTP server is off. */
static int
check_metrics_listen(struct config *c, const char *v, char *why,
    size_t whysz)
{
	struct config_listen l;

	if (*v != '\0' && config_parse_listen(v, &l) == -1) {
		snprintf(why, whysz, "bad address '%.64s' (ADDR:PORT, "
		    "[IPv6]:PORT)", v);
		return -1;
	}
	return 0;
}

/* A list of addresses separated by commas or white space. */
static int
set_listen(struct config *c, const char *v, char *why, size_t whysz)
{
	struct config_listen l[CONFIG_LISTEN_MAX];
	char item[128], e[96];
	size_t n = 0, len, i;

	while ((len = str_list_next(&v)) > 0) {
		if (n == CONFIG_LISTEN_MAX) {
			snprintf(why, whysz, "too many listen addresses "
			    "(at most %d)", CONFIG_LISTEN_MAX);
			return -1;
		}
		if (len >= sizeof(item) ||
		    (str_ncopy(item, sizeof(item), v, len),
		    config_parse_listen(item, &l[n]) == -1)) {
			snprintf(why, whysz, "bad listen address '%s'",
			    log_escape(e, sizeof(e), v, len));
			return -1;
		}
		for (i = 0; i < n; i++)
			if (strcmp(l[i].text, l[n].text) == 0) {
				snprintf(why, whysz, "duplicate listen "
				    "address '%s'", l[n].text);
				return -1;
			}
		n++;
		v += len;
	}
	if (n == 0) {
		snprintf(why, whysz, "listen needs at least one address");
		return -1;
	}
	/* Zero what is unused: two equal settings are equal bytes. */
	memset(c->listen, 0, sizeof(c->listen));
	memcpy(c->listen, l, n * sizeof(l[0]));
	c->nlisten = n;
	return 0;
}

/* Row k's number (of type t) from the text 'v' ('e' escaped) into *c,
 * with the unit it was written in. */
static int
set_number(struct config *c, size_t k, const struct num_type *t,
    const char *v, const char *e, char *why, size_t whysz)
{
	const struct conf_key *key = &keys[k];
	void *field = (char *)c + key->off;
	char range[32] = "", unit;
	uint64_t n;

	if (parse_scaled(v, t, &n, &unit) == -1) {
		if (t->show_range)
			snprintf(range, sizeof(range), " (0 to %llu)",
			    (unsigned long long)t->max);
		snprintf(why, whysz, "bad %s '%s' for %s%s", t->what, e,
		    key->name, range);
		return -1;
	}
	if (n < key->min) {
		snprintf(why, whysz, "bad %s '%s' for %s (at least %llu%s)",
		    t->what, e, key->name, (unsigned long long)key->min,
		    t->min_unit);
		return -1;
	}
	if (key->type == CONF_SIZE)
		*(uint64_t *)field = n;
	else
		*(unsigned *)field = (unsigned)n;
	c->unit[k] = unit;
	return 0;
}

/* Convert the text 'v' by row k's type into *c; -1 with 'why' on error. */
static int
set_value(struct config *c, size_t k, const char *v, char *why, size_t whysz)
{
	const struct conf_key *key = &keys[k];
	char *field = (char *)c + key->off;
	char e[96];
	enum log_level level;
	int b;

	log_escape(e, sizeof(e), v, strlen(v));
	switch (key->type) {
	case CONF_LISTEN:
		return set_listen(c, v, why, whysz);
	case CONF_HOST:
		if (!dname_valid(v, 0)) {
			snprintf(why, whysz, "bad host name '%s' for %s", e,
			    key->name);
			return -1;
		}
		break;
	case CONF_PATH:
		if (*v == '\0' && !(key->flags & CONF_EMPTY_OK)) {
			snprintf(why, whysz, "%s must not be empty",
			    key->name);
			return -1;
		}
		break;
	case CONF_LIST: {
		char r[160];
		size_t i;

		for (i = 0; i < sizeof(list_checks) / sizeof(list_checks[0]);
		    i++)
			if (strcmp(list_checks[i].name, key->name) == 0 &&
			    list_checks[i].check(c, v, r, sizeof(r)) == -1) {
				snprintf(why, whysz, "bad value for %s: %s",
				    key->name, r);
				return -1;
			}
		break;
	}
	case CONF_LOGLEVEL:
		if (log_level_parse(v, &level) == -1) {
			snprintf(why, whysz, "bad log level '%s' for %s "
			    "(err, warning, info or debug)", e, key->name);
			return -1;
		}
		break;
	case CONF_TIME:
		return set_number(c, k, &num_time, v, e, why, whysz);
	case CONF_SIZE:
		return set_number(c, k, &num_size, v, e, why, whysz);
	case CONF_UINT:
		return set_number(c, k, &num_uint, v, e, why, whysz);
	case CONF_BOOL:
		if (config_parse_bool(v, &b) == -1) {
			snprintf(why, whysz, "bad boolean value '%s' for %s "
			    "(yes or no)", e, key->name);
			return -1;
		}
		*(int *)(void *)field = b;
		return 0;
	}
	/* The string types. Clear the whole field first: two equal settings
	 * are equal bytes (the tests and the fuzzer compare with memcmp). */
	if (strlen(v) >= key->size) {
		snprintf(why, whysz, "value of %s too long (at most %zu bytes)",
		    key->name, key->size - 1);
		return -1;
	}
	memset(field, 0, key->size);
	memcpy(field, v, strlen(v));
	return 0;
}

/* Number 'n' written with 'unit' if that is exact, else the largest unit
 * that is, else bare. */
static void
format_scaled(uint64_t n, char unit, const struct num_type *t, char *buf,
    size_t bufsz)
{
	const char *u;

	if (unit != '\0' && (u = strchr(t->units, unit)) != NULL &&
	    n % t->mult[u - t->units] == 0) {
		snprintf(buf, bufsz, "%llu%c",
		    (unsigned long long)(n / t->mult[u - t->units]), unit);
		return;
	}
	if (unit == '\0') {
		snprintf(buf, bufsz, "%llu", (unsigned long long)n);
		return;
	}
	for (u = t->best; *u != '\0'; u++) {
		uint64_t m = t->mult[strchr(t->units, *u) - t->units];

		if (n % m == 0 && (n != 0 || u[1] == '\0')) {
			snprintf(buf, bufsz, "%llu%c",
			    (unsigned long long)(n / m), *u);
			return;
		}
	}
	snprintf(buf, bufsz, "%llu", (unsigned long long)n);
}

/* Row k's value in *c as text, the way config_print() shows it (before
 * '$' is doubled). */
static void
format_value(const struct config *c, size_t k, char *buf, size_t bufsz)
{
	const struct conf_key *key = &keys[k];
	const char *field = (const char *)c + key->off;
	size_t i, o;

	switch (key->type) {
	case CONF_LISTEN:
		buf[0] = '\0';
		for (i = 0, o = 0; i < c->nlisten && o < bufsz; i++)
			o += (size_t)snprintf(buf + o, bufsz - o, "%s%s",
			    i ? ", " : "", c->listen[i].text);
		break;
	case CONF_TIME:
		format_scaled(*(const unsigned *)(const void *)field,
		    c->unit[k], &num_time, buf, bufsz);
		break;
	case CONF_SIZE:
		format_scaled(*(const uint64_t *)(const void *)field,
		    c->unit[k], &num_size, buf, bufsz);
		break;
	case CONF_UINT:
		snprintf(buf, bufsz, "%u", *(const unsigned *)(const void *)
		    field);
		break;
	case CONF_BOOL:
		snprintf(buf, bufsz, "%s", *(const int *)(const void *)field ?
		    "yes" : "no");
		break;
	case CONF_PATH:
	case CONF_HOST:
	case CONF_LOGLEVEL:
	case CONF_LIST:
		str_ncopy(buf, bufsz, field, strnlen(field, key->size));
		break;
	}
}

/* Same setting in a and b? The unit it was written in does not count. */
static int
same_value(const struct config *a, const struct config *b, size_t k)
{
	const struct conf_key *key = &keys[k];
	const char *fa = (const char *)a + key->off;
	const char *fb = (const char *)b + key->off;
	size_t i;

	switch (key->type) {
	case CONF_LISTEN:
		if (a->nlisten != b->nlisten)
			return 0;
		for (i = 0; i < a->nlisten; i++)
			if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
				return 0;
		return 1;
	case CONF_TIME:
	case CONF_UINT:
		return *(const unsigned *)(const void *)fa ==
		    *(const unsigned *)(const void *)fb;
	case CONF_SIZE:
		return *(const uint64_t *)(const void *)fa ==
		    *(const uint64_t *)(const void *)fb;
	case CONF_BOOL:
		return *(const int *)(const void *)fa ==
		    *(const int *)(const void *)fb;
	case CONF_PATH:
	case CONF_HOST:
	case CONF_LOGLEVEL:
	case CONF_LIST:
		break;
	}
	return strncmp(fa, fb, key->size) == 0;
}

/* mx_names into the typed mx_name[]: host names, at most
 * CONFIG_MX_NAMES_MAX, lower-cased so a lookup is a plain compare. */
static int
set_mx_names(struct config *c, const char *v, char *why, size_t whysz)
{
	char item[DNAME_MAX + 1], e[96];
	size_t len, n = 0;

	memset(c->mx_name, 0, sizeof(c->mx_name));
	for (; (len = str_list_next(&v)) > 0; v += len) {
		size_t hl = len;

		/* "mx.example.org." is the same host, as a DNS answer
		 * writes it. */
		if (hl > 1 && v[hl - 1] == '.')
			hl--;
		if (n == CONFIG_MX_NAMES_MAX) {
			snprintf(why, whysz, "more than %d names",
			    CONFIG_MX_NAMES_MAX);
			return -1;
		}
		if (hl >= sizeof(item) || dname_check(v, hl, 0) !=
		    DNAME_OK) {
			snprintf(why, whysz, "'%s' is no host name",
			    log_escape(e, sizeof(e), v, len));
			return -1;
		}
		str_ncopy(item, sizeof(item), v, hl);
		str_lower(item);
		memcpy(c->mx_name[n++], item, hl + 1);
	}
	c->nmx_names = n;
	return 0;
}

int
config_is_our_mx(const struct config *c, const char *host)
{
	size_t i;

	if (str_host_eq(host, c->myhostname))
		return 1;
	for (i = 0; i < c->nmx_names; i++)
		if (str_host_eq(host, c->mx_name[i]))
			return 1;
	return 0;
}

/* dns_forward: "ADDR[@PORT]" items, numeric addresses only. */
static int
check_forward(struct config *c, const char *v, char *why, size_t whysz)
{
	char item[128], host[INET6_ADDRSTRLEN + 1];
	unsigned char buf[16];
	const char *at;
	size_t len, hlen;
	unsigned long port;
	char *end;

	while ((len = str_list_next(&v)) > 0) {
		str_ncopy(item, sizeof(item), v, len);
		v += len;
		at = strchr(item, '@');
		hlen = at != NULL ? (size_t)(at - item) : strlen(item);
		if (len >= sizeof(item) || hlen >= sizeof(host))
			goto bad;
		str_ncopy(host, sizeof(host), item, hlen);
		if (inet_pton(AF_INET, host, buf) != 1 &&
		    inet_pton(AF_INET6, host, buf) != 1)
			goto bad;
		if (at != NULL) {
			if (at[1] < '0' || at[1] > '9')
				goto bad;
			port = strtoul(at + 1, &end, 10);
			if (*end != '\0' || port == 0 || port > 65535)
				goto bad;
		}
		continue;
bad:
		snprintf(why, whysz, "'%s' is not ADDR or ADDR@PORT", item);
		return -1;
	}
	return 0;
}

/* mx_invalid_networks, dnsbl_allow: address ranges (src/dns/ranges.h).
 * Unused slots zeroed: two equal settings are equal bytes. */
static int
set_networks(struct range *r, size_t *n, const char *v, char *why,
    size_t whysz)
{
	memset(r, 0, CONFIG_NETWORKS_MAX * sizeof(*r));
	return ranges_parse_list(v, strlen(v), ", \t", r, CONFIG_NETWORKS_MAX,
	    n, why, whysz);
}

static int
set_mx_invalid(struct config *c, const char *v, char *why, size_t whysz)
{
	return set_networks(c->dns_lists.mx_invalid_net,
	    &c->dns_lists.nmx_invalid_nets, v, why, whysz);
}

static int
set_dnsbl_allow(struct config *c, const char *v, char *why, size_t whysz)
{
	return set_networks(c->dns_lists.dnsbl_allow_net,
	    &c->dns_lists.ndnsbl_allow_nets, v, why, whysz);
}

static int
set_etrn_clients(struct config *c, const char *v, char *why, size_t whysz)
{
	return set_networks(c->etrn_client_net, &c->netrn_client_nets, v,
	    why, whysz);
}

/* dnsbl_zones (src/dns/dnsxl.h). */
static int
set_dnsbl_zones(struct config *c, const char *v, char *why, size_t whysz)
{
	memset(c->dns_lists.dnsbl_zone, 0, sizeof(c->dns_lists.dnsbl_zone));
	return dnsxl_zones_parse(v, c->dns_lists.dnsbl_zone, DNSXL_ZONES_MAX,
	    &c->dns_lists.ndnsbl_zones, why, whysz);
}

/* v is word a or word b; else why says which two it may be. */
static int
check_either(const char *v, const char *a, const char *b, char *why,
    size_t whysz)
{
	if (strcmp(v, a) == 0 || strcmp(v, b) == 0)
		return 0;
	snprintf(why, whysz, "%s or %s", a, b);
	return -1;
}

static int
check_fail_action(struct config *c, const char *v, char *why, size_t whysz)
{
	return check_either(v, "tempfail", "ignore", why, whysz);
}

static int
check_log_target(struct config *c, const char *v, char *why, size_t whysz)
{
	return check_either(v, "stderr", "syslog", why, whysz);
}

static int
check_log_facility(struct config *c, const char *v, char *why, size_t whysz)
{
	int f;

	if (log_facility_parse(v, &f) == 0)
		return 0;
	snprintf(why, whysz, "mail, daemon, user or local0 to local7");
	return -1;
}

/* Each filter: unix:/ABSOLUTE/PATH or inet:ADDR:PORT (an address: the
 * filters are the ISP's own, and no DNS runs on this path), 8 at most. */
static int
check_milters(struct config *c, const char *v, char *why, size_t whysz)
{
	char list[sizeof(c->backup_milters)], *p, *tok;
	unsigned n = 0;

	str_copy(list, sizeof(list), v);
	for (p = list; (tok = strsep(&p, " \t,")) != NULL;) {
		struct sockaddr_storage ss;
		int len = (int)sizeof(ss);

		if (*tok == '\0')
			continue;
		if (++n > 8) {
			snprintf(why, whysz, "at most 8 filters");
			return -1;
		}
		if (strncmp(tok, "unix:/", 6) == 0 && strlen(tok + 5) <
		    sizeof(((struct sockaddr_un *)0)->sun_path))
			continue;
		if (strncmp(tok, "inet:", 5) == 0 &&
		    evutil_parse_sockaddr_port(tok + 5, (struct sockaddr *)&ss,
		    &len) == 0 && ((struct sockaddr_in *)&ss)->sin_port != 0)
			continue;
		snprintf(why, whysz, "\"%s\": unix:/PATH or inet:ADDR:PORT",
		    tok);
		return -1;
	}
	return 0;
}

static int
check_milter_action(struct config *c, const char *v, char *why,
    size_t whysz)
{
	(void)c;
	if (strcmp(v, "tempfail") == 0 || strcmp(v, "accept") == 0)
		return 0;
	snprintf(why, whysz, "tempfail or accept");
	return -1;
}

/*
 * A user or group name as useradd(8) takes it: letters, digits, '.', '_',
 * '-', not led by '-', 32 bytes at most. Whether it exists is asked at
 * start, by the daemon only (src/core/service.c): backmxctl reads the same
 * file on machines where it may not.
 */
static int
check_account(const char *v, int empty_ok, char *why, size_t whysz)
{
	size_t i, n = strlen(v);

	if (n == 0 && empty_ok)
		return 0;
	if (n == 0 || n > 32 || v[0] == '-')
		goto bad;
	for (i = 0; i < n; i++)
		if (!is_name_char(v[i]) && v[i] != '.' && v[i] != '-')
			goto bad;
	return 0;
bad:
	snprintf(why, whysz, "one name of letters, digits, '.', '_', '-'");
	return -1;
}

static int
check_user(struct config *c, const char *v, char *why, size_t whysz)
{
	return check_account(v, 0, why, whysz);
}

static int
check_group(struct config *c, const char *v, char *why, size_t whysz)
{
	return check_account(v, 1, why, whysz);
}

/*
 * One ADDR:PORT or [IPv6]:PORT for this version (docs/cluster.md): an
 * address, not a name, because hiredis 0.14 resolves a name with a
 * blocking getaddrinfo() on the loop.
 */
static int
set_redis_servers(struct config *c, const char *v, char *why, size_t whysz)
{
	char item[80], e[96];
	size_t len;

	c->nredis_servers = 0;
	memset(&c->redis_server, 0, sizeof(c->redis_server));
	for (; (len = str_list_next(&v)) > 0; v += len) {
		if (c->nredis_servers == 1) {
			snprintf(why, whysz, "one server for now");
			return -1;
		}
		if (len < sizeof(item))
			str_ncopy(item, sizeof(item), v, len);
		/* Not "*:PORT" (no server is there), not port 0. */
		if (len >= sizeof(item) || item[0] == '*' ||
		    config_parse_listen(item, &c->redis_server) == -1 ||
		    sockaddr_ntop((struct sockaddr *)&c->redis_server.ss, e,
		    sizeof(e)) <= 0) {
			snprintf(why, whysz, "'%s' is not ADDR:PORT or "
			    "[IPv6]:PORT", log_escape(e, sizeof(e), v, len));
			return -1;
		}
		c->nredis_servers = 1;
	}
	return 0;
}

/* Up to CONFIG_SENTINELS_MAX ADDR:PORT, addresses as for redis_servers
 * (docs/cluster.md "Sentinel"). */
static int
set_redis_sentinels(struct config *c, const char *v, char *why,
    size_t whysz)
{
	char item[80], e[96];
	struct config_listen *l;
	size_t len;

	c->nredis_sentinels = 0;
	memset(c->redis_sentinel, 0, sizeof(c->redis_sentinel));
	for (; (len = str_list_next(&v)) > 0; v += len) {
		if (c->nredis_sentinels == CONFIG_SENTINELS_MAX) {
			snprintf(why, whysz, "at most %d sentinels",
			    CONFIG_SENTINELS_MAX);
			return -1;
		}
		l = &c->redis_sentinel[c->nredis_sentinels];
		if (len < sizeof(item))
			str_ncopy(item, sizeof(item), v, len);
		if (len >= sizeof(item) || item[0] == '*' ||
		    config_parse_listen(item, l) == -1 ||
		    sockaddr_ntop((struct sockaddr *)&l->ss, e,
		    sizeof(e)) <= 0) {
			snprintf(why, whysz, "'%s' is not ADDR:PORT or "
			    "[IPv6]:PORT", log_escape(e, sizeof(e), v, len));
			return -1;
		}
		c->nredis_sentinels++;
	}
	return 0;
}

/* Sentinel's own rule for a master's name: one word, no spaces (it is a
 * field of +switch-master's message). */
static int
check_redis_master_name(struct config *c, const char *v, char *why,
    size_t whysz)
{
	(void)c;
	if (*v == '\0') {
		snprintf(why, whysz, "a name is needed");
		return -1;
	}
	for (; *v != '\0'; v++)
		if (*v <= ' ' || *v > '~') {
			snprintf(why, whysz, "printable ASCII, no spaces");
			return -1;
		}
	return 0;
}

/* One word of printable ASCII: it starts every key. */
static int
check_redis_prefix(struct config *c, const char *v, char *why, size_t whysz)
{
	(void)c;
	for (; *v != '\0'; v++)
		if (*v <= ' ' || *v > '~') {
			snprintf(why, whysz, "printable ASCII, no spaces");
			return -1;
		}
	return 0;
}

/* gethostname(), or "localhost" when that is no usable host name. */
static void
default_hostname(char *buf, size_t bufsz)
{
	if (gethostname(buf, bufsz) == -1)
		buf[0] = '\0';
	buf[bufsz - 1] = '\0';
	if (!dname_valid(buf, 0))
		str_copy(buf, bufsz, "localhost");
}

void
config_defaults(struct config *c)
{
	char why[256], host[256];
	const char *def;
	size_t k;

	memset(c, 0, sizeof(*c));
	for (k = 0; k < NKEYS; k++) {
		if ((def = keys[k].def) == NULL) {
			default_hostname(host, sizeof(host));
			def = host;
		}
		if (set_value(c, k, def, why, sizeof(why)) == -1)
			panic("default of %s: %s", keys[k].name, why);
	}
}

/* Pass one: a logical line "name = value" becomes raw[name]. */
static int
define(struct parse *p, int line, const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n), *v;
	size_t nlen, vlen;
	char e[96];
	int k;

	if (eq == NULL) {
		seterr(p, line, "missing '=' in '%s'",
		    log_escape(e, sizeof(e), s, n));
		return -1;
	}
	for (nlen = (size_t)(eq - s); nlen > 0 && is_blank(s[nlen - 1]);
	    nlen--)
		;
	if (nlen == 0) {
		seterr(p, line, "missing key name before '='");
		return -1;
	}
	if ((k = find_key(s, nlen)) == -1) {
		seterr(p, line, "unknown key '%s'",
		    log_escape(e, sizeof(e), s, nlen));
		return -1;
	}
	for (v = eq + 1; v < s + n && is_blank(*v); v++)
		;
	vlen = (size_t)(s + n - v);	/* the caller trimmed the end */
	free(p->raw[k].text);
	p->raw[k].text = xstrndup(v, vlen);
	p->raw[k].line = line;
	return 0;
}

static int expand_key(struct parse *, size_t, int, const char **);

/* Look up $name (n bytes at s) for expansion. */
static int
expand_name(struct parse *p, const char *s, size_t n, int depth,
    const char **out)
{
	char e[96];
	int k;

	if ((k = find_key(s, n)) == -1) {
		seterr(p, p->line, "unknown key '%s' in $expansion",
		    log_escape(e, sizeof(e), s, n));
		return -1;
	}
	return expand_key(p, (size_t)k, depth, out);
}

/*
 * Append s (n bytes) to sb with $name, ${name}, ${name?text} (text when
 * name is not empty), ${name:text} (text when it is) and $$ (one '$')
 * replaced, as in postconf(5).
 */
static int
expand_text(struct parse *p, const char *s, size_t n, int depth,
    struct sbuf *sb)
{
	const char *v;
	size_t i = 0, start, tstart, tlen;
	int level;
	char op;

	if (depth > EXPAND_DEPTH) {
		seterr(p, p->line, "recursive expansion (more than %d deep)",
		    EXPAND_DEPTH);
		return -1;
	}
	while (i < n) {
		if (s[i] != '$') {
			for (start = i; i < n && s[i] != '$'; i++)
				;
			sb_add(sb, s + start, i - start);
		} else if (++i < n && s[i] == '$') {
			sb_add(sb, "$", 1);
			i++;
		} else if (i < n && s[i] == '{') {
			for (start = ++i; i < n && is_name_char(s[i]); i++)
				;
			op = i < n ? s[i] : '\0';
			if (i == start || (op != '}' && op != '?' &&
			    op != ':')) {
				seterr(p, p->line, "bad '${' in value: "
				    "${name}, ${name?text} or ${name:text}");
				return -1;
			}
			if (expand_name(p, s + start, i - start, depth + 1,
			    &v) == -1)
				return -1;
			if (op == '}') {
				sb_add(sb, v, strlen(v));
				i++;
			} else {
				for (tstart = ++i, level = 1; i < n; i++)
					if (s[i] == '{')
						level++;
					else if (s[i] == '}' && --level == 0)
						break;
				if (i == n) {
					seterr(p, p->line, "missing '}' in "
					    "value");
					return -1;
				}
				tlen = i++ - tstart;
				if ((op == '?') == (v[0] != '\0') &&
				    expand_text(p, s + tstart, tlen,
				    depth + 1, sb) == -1)
					return -1;
			}
		} else if (i < n && is_name_char(s[i])) {
			for (start = i; i < n && is_name_char(s[i]); i++)
				;
			if (expand_name(p, s + start, i - start, depth + 1,
			    &v) == -1)
				return -1;
			sb_add(sb, v, strlen(v));
		} else {
			seterr(p, p->line, "'$' not followed by a name, '{' "
			    "or '$' (write $$ for a '$')");
			return -1;
		}
		/* Bounds the work too: a key's value expands only once. */
		if (sb->len >= TEXT_MAX) {
			seterr(p, p->line, "value of %s too long",
			    keys[p->cur].name);
			return -1;
		}
	}
	return 0;
}

/* The current value of a key the file does not set, as text. */
static const char *
unset_value(struct parse *p, size_t k)
{
	char buf[TEXT_MAX];

	format_value(p->c, k, buf, sizeof(buf));
	return p->raw[k].value = xstrdup(buf);
}

/* Key k's value after expansion, computed once; valid until the end of
 * config_parse(). */
static int
expand_key(struct parse *p, size_t k, int depth, const char **out)
{
	struct raw *r = &p->raw[k];
	struct sbuf sb = { NULL, 0, 0 };
	size_t saved_cur;
	int saved;

	if (r->value != NULL) {
		*out = r->value;
		return 0;
	}
	if (r->text == NULL) {
		*out = unset_value(p, k);
		return 0;
	}
	if (r->busy) {
		seterr(p, p->line, "recursive expansion of $%s",
		    keys[k].name);
		return -1;
	}
	r->busy = 1;
	saved = p->line;
	saved_cur = p->cur;
	p->line = r->line;	/* errors name the line that holds the text */
	p->cur = k;
	sb_add(&sb, "", 0);
	if (expand_text(p, r->text, strlen(r->text), depth, &sb) == -1) {
		free(sb.p);
		return -1;
	}
	p->line = saved;
	p->cur = saved_cur;
	r->busy = 0;
	/* "a $empty" is "a": values never end in white space, so what
	 * config_print() writes reads back the same. */
	*out = r->value = str_trim(sb.p);
	return 0;
}

/* Passes two and three, in the order of the lines in the file. */
static int
apply(struct parse *p)
{
	size_t order[NKEYS], n = 0, i, j, k;
	const char *v;
	char why[384];

	for (k = 0; k < NKEYS; k++) {
		if (p->raw[k].text == NULL)
			continue;
		for (i = n++; i > 0 && p->raw[order[i - 1]].line >
		    p->raw[k].line; i--)
			order[i] = order[i - 1];
		order[i] = k;
	}
	for (j = 0; j < n; j++)
		if (expand_key(p, order[j], 0, &v) == -1)
			return -1;
	for (j = 0; j < n; j++) {
		k = order[j];
		if (set_value(p->c, k, p->raw[k].value, why,
		    sizeof(why)) == -1) {
			seterr(p, p->raw[k].line, "%s", why);
			return -1;
		}
	}
	if (p->c->tls_cert_file[0] != '\0' && p->c->tls_key_file[0] == '\0') {
		seterr(p, 0, "tls_cert_file needs tls_key_file");
		return -1;
	}
	if (p->c->tls_key_file[0] != '\0' && p->c->tls_cert_file[0] == '\0') {
		seterr(p, 0, "tls_key_file needs tls_cert_file");
		return -1;
	}
	if (p->c->greylist_ipv4_prefix > 32 ||
	    p->c->greylist_ipv6_prefix > 128) {
		seterr(p, 0, "greylist_ipv4_prefix is 0 to 32, "
		    "greylist_ipv6_prefix 0 to 128");
		return -1;
	}
	if (p->c->nredis_servers > 0 && p->c->nredis_sentinels > 0) {
		seterr(p, 0, "redis_servers or redis_sentinels, not both");
		return -1;
	}
	if (p->c->greylist_retry_window <= p->c->greylist_delay) {
		seterr(p, 0, "greylist_retry_window must be longer than "
		    "greylist_delay");
		return -1;
	}
	return 0;
}

int
config_parse(struct config *c, const char *name, const char *text,
    size_t len, char *err, size_t errsz)
{
	struct parse p;
	struct sbuf ll = { NULL, 0, 0 };	/* the logical line */
	size_t pos = 0, i, n, k;
	int line = 0, llline = 0, rc = -1;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.err = err;
	p.errsz = errsz;
	if (errsz > 0)
		err[0] = '\0';
	p.c = xmalloc(sizeof(*p.c));
	memcpy(p.c, c, sizeof(*c));

	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);

		n = nl != NULL ? (size_t)(nl - s) : len - pos;
		pos += n + (nl != NULL);
		line++;
		if (memchr(s, '\0', n) != NULL) {
			seterr(&p, line, "NUL character");
			goto out;
		}
		for (i = 0; i < n && is_blank(s[i]); i++)
			;
		/* postconf(5): blank and comment lines are ignored, even
		 * between a line and its continuation. */
		if (i == n || s[i] == '#')
			continue;
		while (is_blank(s[n - 1]))
			n--;
		if (i > 0) {
			if (llline == 0) {
				seterr(&p, line, "continuation line (leading "
				    "white space) with no line before it");
				goto out;
			}
			sb_add(&ll, " ", 1);
			sb_add(&ll, s + i, n - i);
			continue;
		}
		if (llline > 0 && define(&p, llline, ll.p, ll.len) == -1)
			goto out;
		ll.len = 0;
		sb_add(&ll, s, n);
		llline = line;
	}
	if (llline > 0 && define(&p, llline, ll.p, ll.len) == -1)
		goto out;
	if (apply(&p) == -1)
		goto out;

	memset(p.c->path, 0, sizeof(p.c->path));
	str_copy(p.c->path, sizeof(p.c->path), name);
	memcpy(c, p.c, sizeof(*c));
	rc = 0;
out:
	for (k = 0; k < NKEYS; k++) {
		free(p.raw[k].text);
		free(p.raw[k].value);
	}
	free(ll.p);
	free(p.c);
	return rc;
}

int
config_load(struct config *c, const char *path, char *err, size_t errsz)
{
	char *buf;
	size_t len;
	int rc;

	if (file_read_all(path, CONFIG_FILE_MAX, &buf, &len, err, errsz) == -1)
		return -1;
	rc = config_parse(c, path, buf, len, err, errsz);
	free(buf);
	return rc;
}

void
config_print(const struct config *c, FILE *out, int only_changed)
{
	struct config *d = NULL;
	char buf[TEXT_MAX];
	const char *s;
	size_t k;

	if (only_changed) {
		d = xmalloc(sizeof(*d));
		config_defaults(d);
	}
	for (k = 0; k < NKEYS; k++) {
		if (d != NULL && same_value(c, d, k))
			continue;
		format_value(c, k, buf, sizeof(buf));
		fprintf(out, "%s =", keys[k].name);
		if (buf[0] != '\0')
			fputc(' ', out);
		/* '$' is ours to expand: a literal one is written "$$". */
		for (s = buf; *s != '\0'; s++) {
			if (*s == '$')
				fputc('$', out);
			fputc(*s, out);
		}
		fputc('\n', out);
	}
	free(d);
}

size_t
config_nkeys(void)
{
	return NKEYS;
}

const char *
config_key_name(size_t i)
{
	return i < NKEYS ? keys[i].name : NULL;
}
