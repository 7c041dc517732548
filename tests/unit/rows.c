/* rows: shared helpers of the table-driven unit tests. */
#include "rows.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <event2/event.h>

#include "log.h"
#include "state.h"

size_t
rows_expand(const char *in, size_t inlen, char *out, size_t outsz)
{
	const char *star, *close, *d;
	size_t i = 0, n = 0, k, count;

	while (i < inlen) {
		star = close = NULL;
		if (in[i] == '{') {
			star = memchr(in + i, '*', inlen - i);
			close = memchr(in + i, '}', inlen - i);
		}
		if (star != NULL && close != NULL && star < close &&
		    star + 1 < close) {
			for (d = star + 1; d < close && *d >= '0' && *d <= '9';
			    d++)
				;
			if (d == close) {
				count = strtoul(star + 1, NULL, 10);
				k = (size_t)(star - (in + i + 1));
				while (count-- > 0) {
					assert_true(n + k < outsz);
					memcpy(out + n, in + i + 1, k);
					n += k;
				}
				i = (size_t)(close - in) + 1;
				continue;
			}
		}
		assert_true(n + 1 < outsz);
		out[n++] = in[i++];
	}
	out[n] = '\0';
	return n;
}

const char *
rows_show(const char *s, size_t len)
{
	static char buf[8192];

	return log_escape(buf, sizeof(buf), s, len);
}

void
rows_sockaddr(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
}

struct state *
rows_state_open(const char *name, char *dir, struct event_base **base_out)
{
	struct state_conf sc = { 3600, 100 };
	struct state *st;
	char err[512];

	snprintf(dir, 64, "/tmp/%.40s.XXXXXX", name);
	if (mkdtemp(dir) == NULL)
		return NULL;
	*base_out = event_base_new();
	if ((st = state_open(*base_out, dir, &sc, err, sizeof(err))) == NULL)
		fprintf(stderr, "%s\n", err);
	return st;
}

int
rows_state_close(struct state *st, struct event_base *base, const char *dir)
{
	char cmd[128];

	state_close(st);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}
