/* verdict: setting and merging check results. No I/O. */
#include "verdict.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "str.h"

void
verdict_set(struct verdict_info *out, enum verdict v, int code,
    const char *enh, const char *reason, const char *fmt, ...)
{
	va_list ap;
	char *p;

	memset(out, 0, sizeof(*out));
	out->v = v;
	out->code = code;
	str_copy(out->enh, sizeof(out->enh), enh);
	str_copy(out->reason, sizeof(out->reason), reason);
	va_start(ap, fmt);
	vsnprintf(out->text, sizeof(out->text), fmt, ap);
	va_end(ap);
	/* Reply text goes on the wire: never a line break in it. */
	for (p = out->text; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
}

void
verdict_accept(struct verdict_info *out)
{
	memset(out, 0, sizeof(*out));
	out->v = VERDICT_ACCEPT;
}

void
verdict_merge(struct verdict_info *acc, const struct verdict_info *next)
{
	if (next->v > acc->v)
		*acc = *next;
}
