/* clock: time as mail headers write it. */
#ifndef BACKMX_CLOCK_H
#define BACKMX_CLOCK_H

#include <stddef.h>
#include <time.h>

/* RFC 5322 §3.3 date-time, local zone ("Sun, 29 Nov 2026 19:29:38
 * +0000"), into out (64 bytes are plenty). Returns out. */
const char	*clock_rfc5322(char *out, size_t outsz, time_t t);

#endif
