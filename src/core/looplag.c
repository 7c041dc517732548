/*
 * looplag: a timer that measures the event loop's own lag. One loop does
 * everything (docs/architecture.md §1), so a callback that runs long
 * delays every session's next reply; this is how it shows
 * (docs/architecture.md §7).
 *
 * The timer is one-shot and re-armed from its own callback, due one tick
 * after the time it actually ran: a persistent libevent timer would
 * reschedule from its previous due time and fire back to back after a
 * stall, counting one stall several times. Times are CLOCK_MONOTONIC;
 * the loop thread's CPU time picks the next period, short only while
 * there is work whose lag matters, so that an idle daemon stays asleep.
 */
#include "looplag.h"

#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"

static struct event		*tick;
static struct timespec		 due;
static struct timespec		 cpu;	/* the loop thread's, last probe */
static struct looplag_stats	 stats;
static const unsigned		 bounds[LOOPLAG_BUCKETS] = LOOPLAG_BOUNDS;

static void
arm(struct timespec now, long ms)
{
	struct timeval tv = { 0, ms * 1000 };

	due = now;
	due.tv_nsec += ms * 1000000L;
	if (due.tv_nsec >= 1000000000L) {
		due.tv_sec++;
		due.tv_nsec -= 1000000000L;
	}
	if (event_add(tick, &tv) == -1)
		panic("loop lag timer");
}

/* Milliseconds from 'from' to 'to', 0 when 'to' is not later. */
static uint64_t
late_ms(struct timespec from, struct timespec to)
{
	int64_t ns;

	ns = (int64_t)(to.tv_sec - from.tv_sec) * 1000000000LL +
	    (to.tv_nsec - from.tv_nsec);
	return ns > 0 ? (uint64_t)(ns / 1000000) : 0;
}

static void
record(uint64_t ms)
{
	size_t i;

	stats.ticks++;
	stats.last_ms = ms;
	if (ms > stats.max_ms)
		stats.max_ms = ms;
	for (i = 0; i + 1 < LOOPLAG_BUCKETS && ms >= bounds[i]; i++)
		;
	stats.hist[i]++;
	if (ms > LOOPLAG_STALL_MS) {
		stats.stalls++;
		log_warn("event=loop_stall late_ms=%llu max_ms=%llu "
		    "stalls=%llu", (unsigned long long)ms,
		    (unsigned long long)stats.max_ms,
		    (unsigned long long)stats.stalls);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timespec now, c;
	uint64_t ms;
	int busy;

	(void)fd;
	(void)what;
	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &now);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
	/* libevent may run a timer up to its clock's granularity before
	 * our due time: that is 0, not negative. */
	ms = late_ms(due, now);
	record(ms);
	/* Lateness alone is no work: on a loaded machine an idle loop's
	 * probe is late too (not scheduled), and it stays cheap then. */
	busy = (c.tv_sec - cpu.tv_sec) * 1000000LL +
	    (c.tv_nsec - cpu.tv_nsec) / 1000 >= LOOPLAG_BUSY_US;
	cpu = c;
	arm(now, busy ? LOOPLAG_TICK_MS : LOOPLAG_IDLE_MS);
}

void
looplag_start(struct event_base *base)
{
	struct timespec now;

	if (tick != NULL)
		return;
	if ((tick = evtimer_new(base, tick_cb, NULL)) == NULL)
		panic("loop lag timer");
	clock_gettime(CLOCK_MONOTONIC, &now);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
	arm(now, LOOPLAG_IDLE_MS);
}

void
looplag_read(struct looplag_stats *out)
{
	*out = stats;
}

const unsigned *
looplag_bounds(void)
{
	return bounds;
}

void
looplag_stop(void)
{
	if (tick != NULL)
		event_free(tick);
	tick = NULL;
}
