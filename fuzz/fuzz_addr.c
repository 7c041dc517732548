/*
 * fuzz_addr: libFuzzer harness for addr.c. The input is what a peer sends
 * after "MAIL FROM:" / "RCPT TO:" or as the EHLO argument. Each input is
 * parsed with every flag combination, and every ADDR_OK must keep the
 * promises of addr.h; a broken promise aborts so libFuzzer records it.
 * Seeds: fuzz/corpus/addr/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
same(const struct mailaddr *a, const struct mailaddr *b)
{
	return strcmp(a->local, b->local) == 0 &&
	    strcmp(a->domain, b->domain) == 0 && a->is_null == b->is_null &&
	    a->is_literal == b->is_literal && a->is_quoted == b->is_quoted &&
	    a->has_route_chars == b->has_route_chars &&
	    a->is_utf8 == b->is_utf8;
}

/* What addr.h promises about a path it accepted. */
static void
check_ok(const char *s, size_t len, int flags, const struct mailaddr *a,
    size_t used)
{
	char buf[ADDR_PATH_MAX + 1], path[ADDR_PATH_MAX + 3];
	struct mailaddr b, all;
	size_t used2;
	int n;

	if (used < 2 || used > len || used > ADDR_PATH_MAX ||
	    s[0] != '<' || s[used - 1] != '>')
		abort();
	if (strlen(a->local) > ADDR_LOCAL_MAX ||
	    strlen(a->domain) > ADDR_DOMAIN_MAX)
		abort();
	if (a->is_null && (!(flags & ADDR_ALLOW_NULL) || used != 2 ||
	    a->local[0] != '\0' || a->domain[0] != '\0'))
		abort();
	if (!a->is_null && a->domain[0] == '\0' &&
	    !(flags & ADDR_ALLOW_POSTMASTER))
		abort();
	if ((a->is_utf8 || has_8bit(a->local) || has_8bit(a->domain)) &&
	    !(flags & ADDR_ALLOW_UTF8))
		abort();
	if (a->is_utf8 != (has_8bit(a->local) || has_8bit(a->domain)))
		abort();
	if (a->domain[0] != '\0' && !a->is_literal &&
	    !addr_domain_valid(a->domain, strlen(a->domain),
	    flags & ADDR_ALLOW_UTF8))
		abort();
	if (a->is_literal && a->domain[0] != '[')
		abort();

	/* ADDR_PATH_MAX + 1 bytes always fit. */
	if ((n = addr_format(a, buf, sizeof(buf))) < 0 ||
	    (size_t)n != strlen(buf))
		abort();

	/* The canonical form (route dropped) parses back to the same. */
	path[0] = '<';
	memcpy(path + 1, buf, (size_t)n);
	path[n + 1] = '>';
	if (addr_parse_path(path, (size_t)n + 2, flags, &b, &used2) !=
	    ADDR_OK || used2 != (size_t)n + 2 || !same(a, &b))
		abort();

	/* Allowing more never changes what was accepted. */
	if (addr_parse_path(s, len, ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER |
	    ADDR_ALLOW_UTF8, &all, &used2) != ADDR_OK || used2 != used ||
	    !same(a, &all))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mailaddr a;
	enum addr_err e;
	size_t used;
	int flags;

	for (flags = 0; flags <= (ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER |
	    ADDR_ALLOW_UTF8); flags++) {
		e = addr_parse_path(s, size, flags, &a, &used);
		if (addr_strerror(e) == NULL)
			abort();
		if (e == ADDR_OK)
			check_ok(s, size, flags, &a, used);
	}

	/* Accepted without UTF-8 means accepted with it too. */
	if (addr_domain_valid(s, size, 0) && !addr_domain_valid(s, size, 1))
		abort();
	return 0;
}
