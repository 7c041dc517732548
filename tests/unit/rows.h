/*
 * rows: helpers for table-driven unit tests. Rows write long inputs
 * compactly: "{x*N}" stands for N copies of x ("<{a*65}@b.example>").
 */
#ifndef BACKMX_TEST_ROWS_H
#define BACKMX_TEST_ROWS_H

#include <stddef.h>
#include <sys/socket.h>

/* Expand in (inlen bytes) into out (outsz bytes, NUL-terminated); returns
 * the length. Aborts the test when out is too small. */
size_t		rows_expand(const char *in, size_t inlen, char *out,
		    size_t outsz);

/* A printable copy of s for a failure message (static buffer). */
const char	*rows_show(const char *s, size_t len);

/* ss from a numeric IPv4 or IPv6 address; fails the test when ip is
 * not one. */
void		rows_sockaddr(const char *ip, struct sockaddr_storage *ss);

/*
 * A state store on a real database in a fresh directory /tmp/NAME.XXXXXX
 * (dir: at least 64 bytes) with a new event base: for the tests of
 * src/state. NULL (and why on stderr) when it cannot be made.
 */
struct event_base;
struct state;
struct state	*rows_state_open(const char *name, char *dir,
		    struct event_base **base_out);
/* Close it, free the base, remove the directory. 0 or -1. */
int		 rows_state_close(struct state *, struct event_base *,
		    const char *dir);

#endif
