/* envelope: the transaction's envelope and queue ids. */
#include "envelope.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "xmem.h"

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
}

void
envelope_reset(struct envelope *e)
{
	memset(&e->sender, 0, sizeof(e->sender));
	memset(&e->params, 0, sizeof(e->params));
	e->nrcpt = 0;
	e->id[0] = '\0';
	e->data_flags = 0;
}

void
envelope_free(struct envelope *e)
{
	free(e->rcpts);
	e->rcpts = NULL;
	e->nrcpt = e->rcptcap = 0;
}

void
envelope_add_rcpt(struct envelope *e, const struct mailaddr *a,
    const struct rcpt_params *p)
{
	if (e->nrcpt == e->rcptcap) {
		e->rcptcap = e->rcptcap ? e->rcptcap * 2 : 4;
		e->rcpts = xreallocarray(e->rcpts, e->rcptcap,
		    sizeof(*e->rcpts));
	}
	e->rcpts[e->nrcpt].addr = *a;
	e->rcpts[e->nrcpt].params = *p;
	e->nrcpt++;
}

static void
put_base36(char *out, int width, uint64_t v)
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

	while (width-- > 0) {
		out[width] = digits[v % 36];
		v /= 36;
	}
}

void
envelope_new_id(char *out)
{
	static uint32_t counter;
	struct timeval tv;

	/* Like Postfix's long queue ids: time first so ids sort by arrival,
	 * then enough of the microseconds, a counter and the pid that two
	 * ids from one process, or from a restarted one, never collide. */
	gettimeofday(&tv, NULL);
	put_base36(out, 7, (uint64_t)tv.tv_sec);	/* 36^7 s: year 4200+ */
	put_base36(out + 7, 4, (uint64_t)tv.tv_usec);	/* 36^4 > 10^6 */
	put_base36(out + 11, 2, counter++ % (36 * 36));
	put_base36(out + 13, 3, (uint64_t)getpid() % (36 * 36 * 36));
	out[16] = '\0';
}
