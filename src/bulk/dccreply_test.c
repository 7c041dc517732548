/*
 * dccreply_test: dccifd's answers, one row each (docs/bulk.md §7): what
 * is an answer, what is cut short (dccifd closed early), what is garbage,
 * and when a header calls the message bulk. "{x*N}" rows write long
 * inputs (tests/unit/rows.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "dccreply.h"
#include "rows.h"

static const struct row {
	const char	*in;
	size_t		 nrcpt;
	int		 rc;		/* enum dccifd_parse */
	char		 result;
	int		 bulk;
	const char	*header;	/* unfolded, on OK */
} rows[] = {
	{ "A\nA\nX-DCC-x-Metrics: h 1; Body=1 Fuz1=2\n", 1, DCCIFD_OK, 'A',
	    0, "X-DCC-x-Metrics: h 1; Body=1 Fuz1=2" },
	{ "A\r\nAA\r\nX-DCC-x-Metrics: h 1; Body=1\r\n", 2, DCCIFD_OK, 'A',
	    0, "X-DCC-x-Metrics: h 1; Body=1" },
	{ "R\nR\n", 1, DCCIFD_OK, 'R', 0, "" },
	{ "T\nT\n", 1, DCCIFD_OK, 'T', 0, "" },
	{ "G\nG\nX-DCC-x-Metrics: h 1; Body=1\n\n", 1, DCCIFD_OK, 'G', 0,
	    "X-DCC-x-Metrics: h 1; Body=1" },
	{ "S\nAR\nX-DCC-x-Metrics: h 1; Body=1\n", 2, DCCIFD_OK, 'S', 0,
	    "X-DCC-x-Metrics: h 1; Body=1" },
	/* Folded: the line breaks go, the white space stays. */
	{ "A\nA\nX-DCC-x-Metrics: h 1; bulk\n\tBody=1\n Fuz1=many\n", 1,
	    DCCIFD_OK, 'A', 1, "X-DCC-x-Metrics: h 1; bulk\tBody=1 Fuz1=many" },
	{ "A\nA\nx-dcc-x-metrics: h 1; Fuz2=MANY\n", 1, DCCIFD_OK, 'A', 1,
	    "x-dcc-x-metrics: h 1; Fuz2=MANY" },
	/* "bulk" only as a word of its own; "many" only as a count. */
	{ "A\nA\nX-DCC-x-Metrics: bulkhost 1; Body=1 many\n", 1, DCCIFD_OK,
	    'A', 0, "X-DCC-x-Metrics: bulkhost 1; Body=1 many" },
	/* Cut: dccifd closed before a line ended. */
	{ "", 1, DCCIFD_SHORT, 0, 0, NULL },
	{ "A", 1, DCCIFD_SHORT, 0, 0, NULL },
	{ "A\n", 2, DCCIFD_SHORT, 0, 0, NULL },
	{ "A\nA", 2, DCCIFD_SHORT, 0, 0, NULL },
	{ "A\nA\nX-DCC-x-Metrics: h", 1, DCCIFD_SHORT, 0, 0, NULL },
	/* Garbage. */
	{ "X\nA\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "AA\nA\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nAAA", 2, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nAx", 2, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\n", 2, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nAQ\n", 2, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nSubject: hi\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\n\tfolded first\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-: v\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x y: v\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x: v\nX-DCC-y: w\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x: v\n\n more\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x: \001\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x: {v*1015}\n", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\nX-DCC-x: {v*1014}\n", 1, DCCIFD_OK, 'A', 0, NULL },
	{ "A\nA\nX-DCC-x: v\n{ *5000}", 1, DCCIFD_GARBAGE, 0, 0, NULL },
	{ "A\nA\n", 0, DCCIFD_GARBAGE, 0, 0, NULL },
};

static void
test_rows(void **state)
{
	static char in[8192];
	struct dccifd_reply r;
	size_t i, n;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];

		n = rows_expand(w->in, strlen(w->in), in, sizeof(in));
		rc = dccifd_parse(in, n, w->nrcpt, &r);
		if (rc != w->rc)
			fail_msg("row %zu \"%s\": %d, not %d", i,
			    rows_show(in, n), rc, w->rc);
		if (rc != DCCIFD_OK)
			continue;
		assert_int_equal(r.result, w->result);
		if (r.bulk != w->bulk)
			fail_msg("row %zu: bulk %d", i, r.bulk);
		if (w->header != NULL)
			assert_string_equal(r.header, w->header);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
