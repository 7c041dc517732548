/* looplag: how late the event loop runs its timers (docs/architecture.md §7). */
#ifndef BACKMX_LOOPLAG_H
#define BACKMX_LOOPLAG_H

#include <stdint.h>

struct event_base;

#define LOOPLAG_TICK_MS		20	/* the probe's period, loop busy */
#define LOOPLAG_IDLE_MS		100	/* the probe's period, loop idle */
#define LOOPLAG_BUSY_US		1000	/* loop CPU a period that is busy */
#define LOOPLAG_STALL_MS	50	/* lateness logged and counted */

/* Upper bounds (ms, exclusive) of the histogram's buckets; the last
 * bucket takes everything from the previous bound up. */
#define LOOPLAG_BUCKETS		8
#define LOOPLAG_BOUNDS		{ 1, 5, 10, 25, 50, 100, 500, 0 }

struct looplag_stats {
	uint64_t	ticks;		/* probes fired since start */
	uint64_t	max_ms;		/* the latest a probe fired */
	uint64_t	last_ms;	/* the last probe's lateness */
	uint64_t	stalls;		/* probes later than LOOPLAG_STALL_MS */
	uint64_t	hist[LOOPLAG_BUCKETS];	/* probes by lateness */
};

/*
 * Start the probe on 'base': a timer that records how long after its due
 * time it ran. Lateness is time the loop spent busy with other work (or
 * the process was not scheduled): a callback that runs D ms shows as a
 * probe between D - period and D ms late. The period is LOOPLAG_TICK_MS
 * while the loop works (its thread used LOOPLAG_BUSY_US of CPU or more
 * since the last probe), LOOPLAG_IDLE_MS while it
 * does not: idle, the probe costs a tenth of a wake-up a second
 * (bench/README.md "Loop lag"). Process-wide: one loop, one probe.
 * Panics if the timer cannot be added.
 */
void	looplag_start(struct event_base *);
/* The figures so far (zero before looplag_start()). */
void	looplag_read(struct looplag_stats *);
/* The histogram's bucket bounds, for renderers: LOOPLAG_BUCKETS values,
 * the last 0 (no bound). */
const unsigned *looplag_bounds(void);
void	looplag_stop(void);

#endif
