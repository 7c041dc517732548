/*
 * stats: the counters' storage and names (stats.h, docs/metrics.md).
 */
#include "stats.h"

#include <stddef.h>

uint64_t	stats_counter[STAT_MAX];

static const struct {
	const char	*family;
	const char	*labels;
} names[STAT_MAX] = {
#define STATS_NAME(id, family, labels)	{ family, labels },
	STATS_COUNTERS(STATS_NAME)
#undef STATS_NAME
};

/* Replies by class 2..5 and subject 0..7, 8 for none. */
static uint64_t	replies[4][STATS_REPLY_SUBJECTS];

static const char *const subjects[STATS_REPLY_SUBJECTS] = {
	"other", "addressing", "mailbox", "mail_system", "network",
	"protocol", "content", "policy", "none",
};

/* Delivery attempts take from milliseconds (a local primary) to
 * minutes (smtp_data_done_timeout); state store operations take
 * microseconds unless the disk is in trouble. */
static const double le_delivery[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    30, 60, 120, 300, 600 };
static const double le_state[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };

/* A content filter answers in milliseconds, a slow one in seconds. */
static const double le_milter[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

#define LE(a)	a, sizeof(a) / sizeof(a[0])

uint64_t	stats_milter[STATS_MILTERS][STATS_MILTER_KINDS];

const char *
stats_milter_kind(enum stats_milter_kind k)
{
	static const char *const n[STATS_MILTER_KINDS] = {
		"pass", "reject", "tempfail", "error" };

	return n[k];
}

static struct stats_hist hists[HIST_MAX] = {
	[HIST_DELIVERY] = { "delivery_duration_seconds", "", LE(le_delivery),
	    { 0 }, 0, 0 },
	[HIST_MILTER_RCPT] = { "milter_duration_seconds", "stage=\"rcpt\"",
	    LE(le_milter), { 0 }, 0, 0 },
	[HIST_MILTER_EOM] = { "milter_duration_seconds", "stage=\"eom\"",
	    LE(le_milter), { 0 }, 0, 0 },
	[HIST_STATE_READ] = { "state_operation_duration_seconds",
	    "op=\"read\"", LE(le_state), { 0 }, 0, 0 },
	[HIST_STATE_WRITE] = { "state_operation_duration_seconds",
	    "op=\"write\"", LE(le_state), { 0 }, 0, 0 },
	[HIST_STATE_COMMIT] = { "state_operation_duration_seconds",
	    "op=\"commit\"", LE(le_state), { 0 }, 0, 0 },
};

_Static_assert(sizeof(le_delivery) / sizeof(double) < STATS_BUCKETS_MAX &&
    sizeof(le_milter) / sizeof(double) < STATS_BUCKETS_MAX &&
    sizeof(le_state) / sizeof(double) < STATS_BUCKETS_MAX,
    "grow STATS_BUCKETS_MAX");

const char *
stats_family(enum stat_counter s)
{
	return names[s].family;
}

const char *
stats_labels(enum stat_counter s)
{
	return names[s].labels;
}

void
stats_reply(int code, const char *enh)
{
	int cls = code / 100, subject = STATS_REPLY_SUBJECTS - 1;

	if (cls < 2 || cls > 5)
		return;
	/* "C.S.D": the subject is the digit after the first dot, and the
	 * class must agree with the code's (otherwise it is no code). */
	if (enh != NULL && enh[0] == '0' + cls && enh[1] == '.' &&
	    enh[2] >= '0' && enh[2] <= '7' && enh[3] == '.')
		subject = enh[2] - '0';
	replies[cls - 2][subject]++;
}

uint64_t
stats_replies(int cls, int subject)
{
	return replies[cls - 2][subject];
}

const char *
stats_reply_subject(int subject)
{
	return subjects[subject];
}

void
stats_observe(enum stat_hist h, double seconds)
{
	struct stats_hist *s = &hists[h];
	unsigned i;

	for (i = 0; i < s->nle && seconds > s->le[i]; i++)
		;
	s->bucket[i]++;		/* i == nle: only +Inf */
	s->count++;
	s->sum += seconds;
}

const struct stats_hist *
stats_hist(enum stat_hist h)
{
	return &hists[h];
}

void
stats_start(struct timespec *t)
{
	clock_gettime(CLOCK_MONOTONIC, t);
}

double
stats_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	    (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}
