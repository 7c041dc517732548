/*
 * passthru: primaries as keys, and the primary's replies relayed
 * (passthru.h).
 */
#include "passthru.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "domains.h"
#include "reply.h"
#include "str.h"

void
passthru_key(char *buf, size_t bufsz, const struct domain *d)
{
	if (d->route_host[0] != '\0')
		snprintf(buf, bufsz, "%s%s%s:%u", d->route_no_mx ? "[" : "",
		    d->route_host, d->route_no_mx ? "]" : "",
		    (unsigned)d->route_port);
	else
		snprintf(buf, bufsz, "%s", d->name);
}

void
passthru_reply_out(struct evbuffer *out, const struct reply *r)
{
	char line[REPLY_TEXT_MAX + 8];
	const char *p = r->text, *nl;
	size_t n, i;

	for (;;) {
		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		snprintf(line, sizeof(line), "%03d%c", r->code,
		    nl != NULL ? '-' : ' ');
		for (i = 0; i < n && i + 4 < sizeof(line) - 1; i++) {
			unsigned char c = (unsigned char)p[i];

			line[4 + i] = (c == '\t' || (c >= 0x20 && c < 0x7f)) ?
			    (char)c : '?';
		}
		/* "250" alone: no space after the code. */
		if (n == 0 && nl == NULL)
			i = (size_t)-1;
		evbuffer_add(out, line, i == (size_t)-1 ? 3 : 4 + i);
		evbuffer_add(out, "\r\n", 2);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}

int
passthru_reply_ok(const struct reply *r, int data)
{
	if (r->code == 421)
		return 0;
	switch (r->code / 100) {
	case 2:
		/* Never to DATA (RFC 5321 §4.3.2): relayed, a 250 there
		 * tells the sender its message was taken, body unsent. */
		return !data;
	case 4:
	case 5:
		return 1;
	case 3:
		return data && r->code == 354;
	default:
		return 0;
	}
}
