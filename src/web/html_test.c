/* Unit tests for html.c (escaping, the strict query parser) and
 * primary/history.c (the bounded per-domain record the dashboard shows). */
#include "html.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "history.h"

static char *
drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void
test_text(void **state)
{
	struct evbuffer *b = evbuffer_new();
	char *s;

	html_text(b, "451 <b>x</b><script>alert('1')</script> & \"q\"");
	s = drain(b);
	assert_string_equal(s, "451 &lt;b&gt;x&lt;/b&gt;&lt;script&gt;alert("
	    "&#39;1&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
	free(s);
	/* A control, a bidi override (U+202E) and a lone byte: '?';
	 * well-formed UTF-8 stays. */
	html_text(b, "a\x1b[2Jb\xe2\x80\xae" "c\xff" "d\xc3\xa9");
	s = drain(b);
	assert_string_equal(s, "a?[2Jb?c?d\xc3\xa9");
	free(s);
	html_url(b, "a b&c/\"<d>.example");
	s = drain(b);
	assert_string_equal(s, "a%20b%26c%2F%22%3Cd%3E.example");
	free(s);
	evbuffer_free(b);
}

static void
test_query(void **state)
{
	struct dash_query q;
	char err[80];

	assert_int_equal(dash_query_parse(NULL, &q, err, sizeof(err)), 0);
	assert_int_equal(q.sort, DASH_SORT_DOMAIN);
	assert_int_equal(q.page, 1);
	assert_int_equal(dash_query_parse("sort=queued&order=desc&q=Ex%41+m"
	    "&state=down&page=12", &q, err, sizeof(err)), 0);
	assert_int_equal(q.sort, DASH_SORT_QUEUED);
	assert_int_equal(q.desc, 1);
	assert_string_equal(q.q, "exa m");
	assert_int_equal(q.state, DASH_STATE_DOWN);
	assert_int_equal(q.page, 12);
	/* The GET form sends every field, empty ones too. */
	assert_int_equal(dash_query_parse("sort=domain&order=asc&q=&state=",
	    &q, err, sizeof(err)), 0);
	assert_int_equal(q.state, DASH_STATE_ALL);
	assert_string_equal(q.q, "");

	static const char *bad[] = {
		"sort=bogus", "order=up", "state=sideways", "page=0",
		"page=100001", "page=1x", "page=", "x=1", "sort", "q=%4",
		"q=%zz", "q=%0a", "q=%C3%A9", "sort=queued&sort=domain",
		"q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dash_query_parse(bad[i], &q, err,
		    sizeof(err)), -1);
	assert_string_equal(dash_sort_name(DASH_SORT_DEFERRALS), "deferrals");
}

static void
test_history(void **state)
{
	struct history *h = history_new(2);
	struct history_view v;
	int64_t t = 1000000 * 3600LL, last;
	unsigned n, i;

	history_outcome(h, "A.example", "id1", 0, 2, 0, 451, "451 later", t);
	history_outcome(h, "a.example", "id2", 1, 0, 0, 250, "250 ok", t + 60);
	history_probe(h, "a.example", 0, "421 busy", t + 70);
	assert_int_equal(history_get(h, "a.EXAMPLE", t + 80, &v), 1);
	assert_int_equal(v.deferrals_24h, 2);
	assert_int_equal(v.last_delivery, t + 60);
	assert_int_equal(v.noutcomes, 2);
	assert_string_equal(v.outcomes[0].id, "id2");	/* newest first */
	assert_int_equal(v.outcomes[1].kind, HISTORY_DEFERRED);
	assert_int_equal(v.nprobes, 1);
	assert_string_equal(v.probes[0].text, "421 busy");
	/* 24 hours later the deferrals are out of the window. */
	history_counts(h, "a.example", t + 24 * 3600, &last, &n);
	assert_int_equal(n, 0);
	history_counts(h, "a.example", t + 23 * 3600, &last, &n);
	assert_int_equal(n, 2);
	/* The rings keep the last HISTORY_EVENTS. */
	for (i = 0; i < HISTORY_EVENTS + 3; i++)
		history_probe(h, "a.example", 1, "", t + 100 + i);
	history_get(h, "a.example", t + 200, &v);
	assert_int_equal(v.nprobes, HISTORY_EVENTS);
	assert_int_equal(v.probes[0].when, t + 100 + HISTORY_EVENTS + 2);
	/* Two domains at most: the least recently touched one goes. */
	history_probe(h, "b.example", 1, "", t);
	history_probe(h, "a.example", 1, "", t);
	history_probe(h, "c.example", 1, "", t);
	assert_int_equal(history_get(h, "b.example", t, &v), 0);
	assert_int_equal(history_get(h, "a.example", t, &v), 1);
	assert_int_equal(history_get(h, "c.example", t, &v), 1);
	history_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_history),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
