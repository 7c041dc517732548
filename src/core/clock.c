/* clock: date formats for headers (Received:, DSNs). */
#include "clock.h"

const char *
clock_rfc5322(char *out, size_t outsz, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	if (strftime(out, outsz, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0 &&
	    outsz > 0)
		out[0] = '\0';
	return out;
}
