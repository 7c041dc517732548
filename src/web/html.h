/*
 * html: what the dashboard needs to write HTML safely and to read its
 * query string strictly (docs/dashboard.md). No I/O, no daemon state:
 * the fuzz target (fuzz/fuzz_query.c) drives the parser alone.
 */
#ifndef BACKMX_HTML_H
#define BACKMX_HTML_H

#include <stddef.h>

struct evbuffer;

/*
 * s as HTML text or attribute value: & < > " ' as entities; control
 * characters, bidi controls and bytes that are not well-formed UTF-8 as
 * '?' (str_term_next(), docs/principles.md §4). Every string a peer or
 * the operator wrote goes through here, none through a format.
 */
void	html_text(struct evbuffer *, const char *s);
/* s for a URL's query value or path segment: every byte outside
 * [A-Za-z0-9.-_] as %XX. The result needs no HTML escaping. */
void	html_url(struct evbuffer *, const char *s);

/* The columns the domain list sorts by (the `sort` values, in order). */
enum dash_sort {
	DASH_SORT_DOMAIN,
	DASH_SORT_LIFECYCLE,
	DASH_SORT_PRIMARY,
	DASH_SORT_SINCE,
	DASH_SORT_QUEUED,
	DASH_SORT_OLDEST,
	DASH_SORT_DELIVERY,
	DASH_SORT_VALID,
	DASH_SORT_INVALID,
	DASH_SORT_DEFERRALS,
	DASH_SORT_N
};

/* The `state` filter. */
enum dash_state {
	DASH_STATE_ALL,
	DASH_STATE_UP,
	DASH_STATE_DOWN,
	DASH_STATE_LEARNING,
	DASH_STATE_ACTIVE,
	DASH_STATE_REFUSED,
	DASH_STATE_N
};

#define DASH_QUERY_MAX		512	/* bytes of a query string */
#define DASH_QUERY_PARAMS	8	/* key=value pairs */
#define DASH_FILTER_MAX		64	/* q, decoded, with its NUL */
#define DASH_PAGE_MAX		100000

struct dash_query {
	enum dash_sort	sort;
	int		desc;
	char		q[DASH_FILTER_MAX];	/* "" none; lower case */
	enum dash_state	state;
	unsigned	page;			/* from 1 */
};

/*
 * Parse a query string ("sort=queued&order=desc&q=ex&state=down&page=2",
 * NULL or "" for none) into q, defaults for what is absent: sort by
 * domain ascending, no filter, page 1. Strict and bounded: at most
 * DASH_QUERY_MAX bytes and DASH_QUERY_PARAMS pairs, keys from the list
 * above each at most once, values from their lists; q is %XX- and
 * '+'-decoded and must be printable ASCII. 0, or -1 with the reason in
 * err (a 400 for the client).
 */
int	dash_query_parse(const char *query, struct dash_query *q, char *err,
	    size_t errsz);
/* The names: for the links (the inverse of the parser). */
const char *dash_sort_name(enum dash_sort);
const char *dash_state_name(enum dash_state);

#endif
