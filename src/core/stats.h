/*
 * stats: process-wide counters and histograms for the metrics
 * (docs/metrics.md). Any module bumps one with one line,
 * stats_inc(STAT_X); the web part renders them at /metrics. Loop thread
 * only: plain increments, no locks, no atomics (the queue's writer and the
 * state store's checkpoint threads never count).
 *
 * Gauges are not here: the metrics read them at scrape time from the
 * part that owns the state (the scheduler's queue counts, the primaries'
 * health, the listener's sessions...), never kept twice.
 *
 * Owner: none; static storage, zero at start.
 */
#ifndef BACKMX_STATS_H
#define BACKMX_STATS_H

#include <stdint.h>
#include <time.h>

/*
 * Every counter: its id, its metric family (without the backmx_ prefix)
 * and its label set. A family's rows are adjacent; each row is one series
 * and is exported from the start, at 0. To add a counter, add a row here
 * and a HELP line for a new family in src/web/metrics.c.
 */
#define STATS_COUNTERS(X)						\
	X(CONN_ACCEPTED, "connections_total", "result=\"accepted\"")	\
	X(CONN_REFUSED_MAX, "connections_total",			\
	    "result=\"refused_max_connections\"")			\
	X(CONN_REFUSED_PER_IP, "connections_total",			\
	    "result=\"refused_max_connections_per_ip\"")		\
	X(TX_PASS_ACCEPTED, "transactions_total",			\
	    "mode=\"passthrough\",result=\"accepted\"")			\
	X(TX_PASS_REJECTED, "transactions_total",			\
	    "mode=\"passthrough\",result=\"rejected\"")			\
	X(TX_PASS_FAILED, "transactions_total",				\
	    "mode=\"passthrough\",result=\"failed\"")			\
	X(TX_BACKUP_ACCEPTED, "transactions_total",			\
	    "mode=\"backup\",result=\"accepted\"")			\
	X(TX_BACKUP_REJECTED, "transactions_total",			\
	    "mode=\"backup\",result=\"rejected\"")			\
	X(TX_BACKUP_FAILED, "transactions_total",			\
	    "mode=\"backup\",result=\"failed\"")			\
	X(DELIVERY_SENT, "deliveries_total", "result=\"sent\"")	\
	X(DELIVERY_DEFERRED, "deliveries_total", "result=\"deferred\"") \
	X(DELIVERY_BOUNCED, "deliveries_total", "result=\"bounced\"")	\
	X(DELIVERY_EXPIRED, "deliveries_total", "result=\"expired\"")	\
	X(PROBE_UP, "primary_probes_total", "result=\"up\"")		\
	X(PROBE_DOWN, "primary_probes_total", "result=\"down\"")	\
	X(PROBE_ERROR, "primary_probes_total", "result=\"error\"")	\
	X(GREYLIST_NEW, "greylist_total", "result=\"new\"")		\
	X(GREYLIST_EARLY, "greylist_total", "result=\"early\"")	\
	X(GREYLIST_PASS, "greylist_total", "result=\"pass\"")		\
	X(GREYLIST_PASSED, "greylist_total", "result=\"passed\"")	\
	X(LEARNED_VALID, "recipients_learned_total", "status=\"valid\"") \
	X(LEARNED_INVALID, "recipients_learned_total",			\
	    "status=\"invalid\"")					\
	X(RELOAD_OK, "config_reloads_total", "result=\"ok\"")		\
	X(RELOAD_FAILED, "config_reloads_total", "result=\"failed\"")	\
	X(BULK_SKIPPED, "bulk_total", "result=\"skipped\"")		\
	X(BULK_PASS, "bulk_total", "result=\"pass\"")		\
	X(BULK_BULK, "bulk_total", "result=\"bulk\"")		\
	X(BULK_ERROR, "bulk_total", "result=\"error\"")		\
	X(DCCIFD_ACCEPT, "dccifd_total", "result=\"accept\"")	\
	X(DCCIFD_SOME, "dccifd_total", "result=\"some\"")		\
	X(DCCIFD_GREYLIST, "dccifd_total", "result=\"greylist\"")	\
	X(DCCIFD_REJECT, "dccifd_total", "result=\"reject\"")	\
	X(DCCIFD_BULK, "dccifd_total", "result=\"bulk\"")		\
	X(DCCIFD_TROUBLE, "dccifd_total", "result=\"trouble\"")	\
	X(DCCIFD_FAILED, "dccifd_total", "result=\"failed\"")

enum stat_counter {
#define STATS_ENUM(id, family, labels)	STAT_##id,
	STATS_COUNTERS(STATS_ENUM)
#undef STATS_ENUM
	STAT_MAX
};

extern uint64_t	stats_counter[STAT_MAX];

#define stats_inc(s)	((void)stats_counter[(s)]++)

const char	*stats_family(enum stat_counter);
const char	*stats_labels(enum stat_counter);

/*
 * Every reply the SMTP server says, ours or a primary's in pass-through,
 * by class (2, 3, 4, 5) and the RFC 3463 subject of its enhanced code
 * (x.0 other ... x.7 security or policy; none without one). A bounded
 * set whatever a primary answers.
 */
#define STATS_REPLY_SUBJECTS	9	/* x.0 to x.7, and none */
void		 stats_reply(int code, const char *enh);
uint64_t	 stats_replies(int cls, int subject);	/* cls 2..5 */
const char	*stats_reply_subject(int subject);

/*
 * Backup mode's content filters (docs/milter.md), per filter by its place
 * in backup_milters (1-based in the label: a bounded set, and no address
 * as a label): answers that passed, refused, deferred, and failures.
 */
#define STATS_MILTERS	8
enum stats_milter_kind {
	STATS_MILTER_PASS, STATS_MILTER_REJECT, STATS_MILTER_TEMPFAIL,
	STATS_MILTER_ERROR, STATS_MILTER_KINDS
};
extern uint64_t	stats_milter[STATS_MILTERS][STATS_MILTER_KINDS];
#define stats_milter_inc(f, k) \
	((void)((f) < STATS_MILTERS ? stats_milter[(f)][(k)]++ : 0))
const char	*stats_milter_kind(enum stats_milter_kind);

/* Histograms: seconds, fixed buckets per histogram. */
enum stat_hist {
	HIST_DELIVERY,		/* one delivery attempt of a message */
	HIST_MILTER_RCPT,	/* the filters' answer to one RCPT */
	HIST_MILTER_EOM,	/* ... to one message at the end of DATA */
	HIST_STATE_READ,	/* one state store lookup */
	HIST_STATE_WRITE,	/* one staged state store write */
	HIST_STATE_COMMIT,	/* one commit of a turn's state writes */
	HIST_MAX
};

#define STATS_BUCKETS_MAX	16

struct stats_hist {
	const char	*family;	/* without the backmx_ prefix */
	const char	*labels;	/* "" or "op=\"read\"" */
	const double	*le;		/* upper bounds, ascending */
	unsigned	 nle;
	uint64_t	 bucket[STATS_BUCKETS_MAX];	/* not cumulative */
	uint64_t	 count;
	double		 sum;
};

void		 stats_observe(enum stat_hist, double seconds);
const struct stats_hist *stats_hist(enum stat_hist);

/* A monotonic start, and the seconds since it (for stats_observe). */
void		 stats_start(struct timespec *);
double		 stats_since(const struct timespec *);

#endif
