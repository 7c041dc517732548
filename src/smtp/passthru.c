/*
 * passthru: primaries as keys, and the primary's replies relayed
 * (passthru.h).
 */
#include "passthru.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "client.h"
#include "config.h"
#include "domains.h"
#include "log.h"
#include "reply.h"
#include "str.h"
#include "xmem.h"

struct pooled {
	struct pooled		*next, *prev;
	struct passthru_pool	*pool;
	char			 key[PASSTHRU_KEY_MAX];
	struct client		*c;
};

struct passthru_pool {
	const struct config	*conf;
	struct pooled		*head;
	size_t			 n;
};

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
	case 4:
	case 5:
		return 1;
	case 3:
		return data && r->code == 354;
	default:
		return 0;
	}
}

/* --- the pool ------------------------------------------------------------ */

struct passthru_pool *
passthru_pool_new(const struct config *conf)
{
	struct passthru_pool *p = xcalloc(1, sizeof(*p));

	p->conf = conf;
	return p;
}

static void
unlink_pooled(struct pooled *e)
{
	struct passthru_pool *p = e->pool;

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		p->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	p->n--;
}

/* A kept connection failed (the primary closed it, or it fell silent):
 * nothing was in flight on it. */
static void
pooled_event(struct client *c, enum client_event ev, void *arg)
{
	struct pooled *e = arg;

	if (ev != CLIENT_FAILED)
		return;
	log_debug("event=passthrough_pool_closed relay=%s error=\"%s\"",
	    client_relay(c), client_error(c));
	unlink_pooled(e);
	client_free(c);
	free(e);
}

struct client *
passthru_pool_take(struct passthru_pool *p, const char *key)
{
	struct pooled *e;
	struct client *c;

	if (p == NULL)
		return NULL;
	for (e = p->head; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0 && client_idle(e->c))
			break;
	if (e == NULL)
		return NULL;
	unlink_pooled(e);
	c = e->c;
	client_set_cb(c, NULL, NULL);
	free(e);
	return c;
}

void
passthru_pool_put(struct passthru_pool *p, const char *key, struct client *c)
{
	struct pooled *e;
	size_t n = 0;

	if (p != NULL && client_idle(c))
		for (e = p->head; e != NULL; e = e->next)
			if (strcmp(e->key, key) == 0)
				n++;
	if (p == NULL || !client_idle(c) ||
	    n >= p->conf->passthrough_pool_size) {
		client_quit(c);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->pool = p;
	e->c = c;
	str_copy(e->key, sizeof(e->key), key);
	e->next = p->head;
	if (p->head != NULL)
		p->head->prev = e;
	p->head = e;
	p->n++;
	client_set_cb(c, pooled_event, e);
}

size_t
passthru_pool_count(const struct passthru_pool *p)
{
	return p != NULL ? p->n : 0;
}

void
passthru_pool_free(struct passthru_pool *p)
{
	struct pooled *e;

	if (p == NULL)
		return;
	/* The loop has stopped: a QUIT would never be sent. */
	while ((e = p->head) != NULL) {
		p->head = e->next;
		client_free(e->c);
		free(e);
	}
	free(p);
}
