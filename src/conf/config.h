/*
 * config: backmx.conf, Postfix main.cf syntax (docs/configuration.md): "key =
 * value", '#' comment lines, a line led by white space continues the one
 * before, the last definition wins, $name / ${name} expand another key.
 * Times take s, m, h, d, w (a bare number is seconds); sizes take K, M, G
 * (powers of 1024; a bare number is bytes); booleans yes/no.
 *
 * Every key is one row of the table in config.c, with its type, default and
 * documentation; docs/configuration.md and `backmxctl config` come from the
 * same rows. An unknown key, a bad value or an unreadable file is an error
 * "FILE:LINE: what is wrong" and the start stops.
 */
#ifndef BACKMX_CONFIG_H
#define BACKMX_CONFIG_H

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "dname.h"
#include "dnsxl.h"
#include "ranges.h"

#define CONFIG_LISTEN_MAX	16
#define CONFIG_NETWORKS_MAX	64	/* mx_invalid_networks, dnsbl_allow */
#define CONFIG_LIST_MAX		4096	/* a list value, with its NUL */
#define CONFIG_KEYS_MAX		128	/* room in unit[]; config.c checks */
#define CONFIG_MX_NAMES_MAX	16	/* items of mx_names */
#define CONFIG_SENTINELS_MAX	8	/* items of redis_sentinels */

struct config_listen {
	struct sockaddr_storage	ss;
	socklen_t		sslen;
	char			text[64];	/* "127.0.0.1:2525", "[::1]:25" */
};

/*
 * The DNS check lists, parsed at load from their text keys (which stay
 * for config_print()); the policy modules read these, never the text.
 * Like those keys they need a restart: main.c keeps the running ones
 * across a reload as one member.
 */
struct config_dns_lists {
	struct range	 mx_invalid_net[CONFIG_NETWORKS_MAX];
	size_t		 nmx_invalid_nets;
	struct dnsxl_zone dnsbl_zone[DNSXL_ZONES_MAX];
	size_t		 ndnsbl_zones;
	struct range	 dnsbl_allow_net[CONFIG_NETWORKS_MAX];
	size_t		 ndnsbl_allow_nets;
};

struct config {
	char		path[PATH_MAX];

	struct config_listen listen[CONFIG_LISTEN_MAX];
	size_t		nlisten;
	char		metrics_listen[64];	/* "": no HTTP server */
	int		metrics_domains;	/* per-domain series */
	unsigned	metrics_domains_max;
	char		myhostname[256];
	char		spool_dir[PATH_MAX];
	char		state_dir[PATH_MAX];
	char		domains_file[PATH_MAX];
	char		control_socket[PATH_MAX];
	char		user[33];		/* who backmxd runs as */
	char		group[33];		/* "": the user's own */
	char		log_level[16];
	char		log_target[16];		/* stderr or syslog */
	char		log_facility[16];	/* syslog's, e.g. mail */
	unsigned	shutdown_grace;		/* seconds a transaction may finish */

	uint64_t	message_size_limit;	/* bytes */
	unsigned	smtpd_recipient_limit;
	unsigned	smtpd_timeout;		/* seconds, per read */
	unsigned	smtpd_data_timeout;	/* seconds, whole DATA phase */
	unsigned	smtpd_max_connections;
	unsigned	smtpd_max_connections_per_ip;
	unsigned	smtpd_greet_pause;	/* seconds */
	unsigned	smtpd_soft_error_limit;	/* 4xx/5xx before each waits */
	unsigned	smtpd_hard_error_limit;	/* 4xx/5xx before 421 */
	unsigned	smtpd_error_sleep_time;	/* seconds, past the soft one */
	unsigned	smtpd_error_limit;	/* old hard limit; 0: unset */
	unsigned	smtpd_recipient_overshoot_limit; /* 452 4.5.3 uncounted */
	unsigned	smtpd_junk_command_limit; /* NOOP/VRFY/RSET/HELP/... */
	char		smtpd_etrn_clients[1024];
	struct range	etrn_client_net[CONFIG_NETWORKS_MAX]; /* parsed */
	size_t		netrn_client_nets;
	uint64_t	smtpd_body_buffer;	/* bytes in memory before spill */
	char		tls_cert_file[PATH_MAX];
	char		tls_key_file[PATH_MAX];

	/* The queue and delivery (docs/queue.md). Times in seconds. */
	uint64_t	queue_inline_max;	/* bytes of a body kept in the row */
	uint64_t	queue_minfree;		/* 0: 2 x message_size_limit */
	unsigned	minimal_backoff_time;
	unsigned	maximal_backoff_time;
	unsigned	maximal_queue_lifetime;
	unsigned	delay_warning_time;	/* 0: off */
	unsigned	primary_probe_interval;
	unsigned	primary_down_after;	/* consecutive failures */
	unsigned	primary_connection_limit;
	unsigned	smtp_connect_timeout;
	unsigned	smtp_greeting_timeout;
	unsigned	smtp_command_timeout;	/* EHLO, MAIL, RCPT, QUIT */
	unsigned	smtp_data_init_timeout;
	unsigned	smtp_data_block_timeout;
	unsigned	smtp_data_done_timeout;
	char		mx_names[1024];		/* our other MX names, list */
	/* mx_names parsed once at load (and at every reload), lower case:
	 * config_is_our_mx() reads these, never the text. */
	char		mx_name[CONFIG_MX_NAMES_MAX][DNAME_MAX + 1];
	size_t		nmx_names;
	unsigned	delivery_port;		/* TCP port of MX hosts */

	/* The state store and greylisting (docs/greylisting.md). */
	unsigned	state_sweep_interval;	/* seconds */
	unsigned	state_sweep_batch;	/* rows per transaction */
	int		greylist;
	unsigned	greylist_delay;		/* seconds */
	unsigned	greylist_retry_window;	/* seconds */
	unsigned	greylist_max_age;	/* seconds */
	unsigned	greylist_ipv4_prefix;
	unsigned	greylist_ipv6_prefix;
	unsigned	greylist_auto_allow_passes; /* 0: off */
	char		greylist_allow_clients[CONFIG_LIST_MAX];
	char		greylist_allow_senders[CONFIG_LIST_MAX];
	char		greylist_allow_recipients[CONFIG_LIST_MAX];
	/* Sharing it through Redis (docs/cluster.md). */
	char		redis_servers[256];	/* "ADDR:PORT" or "" */
	struct config_listen redis_server;	/* parsed */
	size_t		nredis_servers;		/* 0: no cluster */
	/* Or the master through Sentinel: "ADDR:PORT, ..." or "". */
	char		redis_sentinels[1024];
	struct config_listen redis_sentinel[CONFIG_SENTINELS_MAX];
	size_t		nredis_sentinels;
	char		redis_master_name[128];
	unsigned	redis_timeout;		/* milliseconds */
	char		redis_prefix[64];
	unsigned	redis_replay_limit;	/* decisions kept for Redis */
	/* The bulk detector (docs/bulk.md). */
	int		bulk_detect;
	unsigned	bulk_threshold;		/* distinct recipients */
	unsigned	bulk_window;		/* seconds */
	unsigned	bulk_remember;		/* seconds */
	char		bulk_allow_clients[CONFIG_LIST_MAX];
	char		bulk_allow_senders[CONFIG_LIST_MAX];
	char		bulk_allow_recipients[CONFIG_LIST_MAX];
	char		dccifd_socket[108];	/* sun_path; "" none */
	unsigned	dccifd_timeout;		/* seconds */
	char		dccifd_fail_action[16];	/* accept, tempfail */

	/* DNS and the checks that use it (docs/dns.md). */
	char		dns_forward[512];	/* "ADDR[@PORT] ..." or "" */
	char		dns_trust_anchor_file[PATH_MAX];
	unsigned	dns_cache_max_ttl;	/* seconds */
	unsigned	dns_timeout;		/* seconds */
	unsigned	dns_max_queries;
	unsigned	dns_session_max_queries;	/* 0: no bound */
	unsigned	dns_session_max_inflight;	/* 0: no bound */
	int		check_sender_domain;
	int		check_recipient_domain;
	int		check_mx_ranges;
	char		mx_invalid_networks[1024];
	int		check_dnsbl;
	char		dnsbl_zones[1024];
	char		dnsbl_allow[1024];
	char		dnsbl_fail_action[16];	/* "tempfail" or "ignore" */
	struct config_dns_lists dns_lists;	/* the three above, parsed */

	/* Content filters of backup mode (docs/milter.md). Seconds. */
	char		backup_milters[1024];	/* unix:PATH inet:ADDR:PORT ... */
	unsigned	milter_connect_timeout;
	unsigned	milter_command_timeout;
	unsigned	milter_content_timeout;
	char		milter_default_action[16];	/* tempfail, accept */

	/* Pass-through and recipient learning (docs/configuration.md).
	 * Times in seconds. */
	int		passthrough;		/* relay live while primary up */
	unsigned	passthrough_connect_timeout; /* connect+greeting+EHLO */
	unsigned	passthrough_reply_timeout; /* each primary reply */
	unsigned	passthrough_pool_size;	/* idle connections per primary */
	unsigned	passthrough_connection_limit; /* in use, per primary */
	int		accept_unverified;	/* domains_file can override */
	int		domain_learning;	/* 0: every domain active */
	unsigned	learning_period;
	unsigned	recipient_valid_ttl;
	unsigned	recipient_invalid_ttl;
	unsigned	callout_rate_limit;	/* per minute per domain */
	unsigned	callout_queue_limit;	/* addresses waiting, in all */
	unsigned	acceptance_probe_interval; /* RCPT postmaster@ probe */

	/* How each time and size value was written, by table row: its unit
	 * letter ('m', 'K', ...) or 0 for a bare number, so config_print()
	 * gives "5m" back rather than "300". Not part of the value:
	 * "300s" and "5m" are the same setting. */
	char		unit[CONFIG_KEYS_MAX];
};

/* Fill *c with every default. */
void	config_defaults(struct config *c);

/*
 * Read FILE over the defaults in *c. Returns 0, or -1 with "FILE:LINE: what
 * is wrong" in err (errsz bytes). Checks the values' relations too (e.g.
 * tls_cert_file without tls_key_file).
 */
int	config_load(struct config *c, const char *path, char *err,
	    size_t errsz);

/* Parse from memory (fuzz target, tests); 'name' stands for the file in
 * error texts. Same return as config_load(). */
int	config_parse(struct config *c, const char *name, const char *text,
	    size_t len, char *err, size_t errsz);

/*
 * Print every key "key = value" in table order, the effective value in the
 * unit it was written in where possible. With only_changed, only keys whose
 * value differs from its default (postconf -n).
 */
void	config_print(const struct config *c, FILE *out, int only_changed);

/*
 * An error text of the parsers (this one and domains_file's) into err
 * (errsz bytes; nothing when errsz is 0): "FILE:LINE: message", or
 * "FILE: message" when line is 0 or less.
 */
void	config_verr(char *err, size_t errsz, const char *file, int line,
	    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Parse helpers, shared with domains_file and tests: 0 or -1. */
int	config_parse_time(const char *s, unsigned *secs_out);
int	config_parse_size(const char *s, uint64_t *bytes_out);
int	config_parse_bool(const char *s, int *out);
/* "ADDR:PORT", "[IPv6]:PORT", "*:PORT" into *out. */
int	config_parse_listen(const char *s, struct config_listen *out);

/* 1 when host (any case, trailing dot or not) names this MX: myhostname
 * or one of mx_names. The one matcher of our own names (src/primary/mx.c
 * asks it).
 * Delivery never sends to such a host (docs/queue.md, loop prevention). */
int	config_is_our_mx(const struct config *c, const char *host);

/* The table's keys in order, for docs/configuration.md's test:
 * config_key_name(i) for i < config_nkeys(), NULL past the end. */
size_t	config_nkeys(void);
const char *config_key_name(size_t i);

#endif
