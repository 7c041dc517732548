/*
 * pool: greeted connections to primaries kept between pass-through
 * transactions (pool.h). A plain list: a handful per primary at most.
 */
#include "pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "str.h"
#include "xmem.h"

struct pooled {
	struct pooled		*next, *prev;
	struct primary_pool	*pool;
	char			 key[PRIMARY_POOL_KEY_MAX];
	struct client		*c;
};

/* Pass-through connections of one primary in sessions' hands
 * (connecting or attached), for passthrough_connection_limit. */
struct busy {
	struct busy		*next;
	char			 key[PRIMARY_POOL_KEY_MAX];
	unsigned		 n;
};

struct primary_pool {
	const struct config	*conf;
	struct pooled		*head;
	size_t			 n;
	struct busy		*busy;		/* primaries with n > 0 */
};

struct primary_pool *
primary_pool_new(const struct config *conf)
{
	struct primary_pool *p = xcalloc(1, sizeof(*p));

	p->conf = conf;
	return p;
}

static void
unlink_pooled(struct pooled *e)
{
	struct primary_pool *p = e->pool;

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
primary_pool_take(struct primary_pool *p, const char *key)
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
primary_pool_put(struct primary_pool *p, const char *key, struct client *c)
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
	/* Kept: the conf's idle limit again (passthrough_connect_timeout). */
	client_set_idle_timeout(c, 0);
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

static struct busy **
busy_find(struct primary_pool *p, const char *key)
{
	struct busy **b;

	for (b = &p->busy; *b != NULL; b = &(*b)->next)
		if (strcmp((*b)->key, key) == 0)
			break;
	return b;
}

int
primary_pool_hold(struct primary_pool *p, const char *key)
{
	struct busy **b, *e;

	if (p == NULL)
		return 1;
	b = busy_find(p, key);
	if ((e = *b) == NULL) {
		e = *b = xcalloc(1, sizeof(*e));
		str_copy(e->key, sizeof(e->key), key);
	}
	if (e->n >= p->conf->passthrough_connection_limit) {
		if (e->n == 0) {
			*b = e->next;
			free(e);
		}
		return 0;
	}
	e->n++;
	return 1;
}

void
primary_pool_unhold(struct primary_pool *p, const char *key)
{
	struct busy **b, *e;

	if (p == NULL || (e = *(b = busy_find(p, key))) == NULL)
		return;
	if (--e->n == 0) {
		*b = e->next;
		free(e);
	}
}

int
primary_pool_full(const struct primary_pool *p, const char *key)
{
	struct busy **b;

	if (p == NULL)
		return 0;
	b = busy_find((struct primary_pool *)(uintptr_t)p, key);
	return *b != NULL &&
	    (*b)->n >= p->conf->passthrough_connection_limit;
}

size_t
primary_pool_count(const struct primary_pool *p)
{
	return p != NULL ? p->n : 0;
}

/* Every kept connection out of the pool, each ended by 'end'. */
static void
drop_all(struct primary_pool *p, void (*end)(struct client *))
{
	struct pooled *e;

	while ((e = p->head) != NULL) {
		unlink_pooled(e);
		end(e->c);
		free(e);
	}
}

void
primary_pool_quit_all(struct primary_pool *p)
{
	/* Each client frees itself once its QUIT is answered. */
	if (p != NULL)
		drop_all(p, client_quit);
}

void
primary_pool_free(struct primary_pool *p)
{
	if (p == NULL)
		return;
	/* The loop has stopped: a QUIT would never be sent. */
	drop_all(p, client_free);
	while (p->busy != NULL) {
		struct busy *b = p->busy;

		p->busy = b->next;
		free(b);
	}
	free(p);
}
