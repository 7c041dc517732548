/*
 * fuzz_http: the HTTP server (src/web/http.c) and what it serves at
 * /metrics, under libFuzzer, over a real loopback TCP connection: the
 * input is what a client sends, split into writes at each 0xff byte
 * (the byte itself is dropped), then the client half-closes and reads
 * until the server closes.
 *
 * Checked for every input (abort() on a breach):
 *   - whatever the server says starts with "HTTP/" and every answer
 *     of ours carries X-Content-Type-Options and Content-Security-Policy;
 *   - a request other than GET or HEAD never gets a 200;
 *   - the server closes the connection (no input keeps it);
 *   - once closed, the connection count is back to 0 (the cap cannot
 *     be eaten by connections that are gone).
 * ASan and LSan catch the rest.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "http.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

#define ANSWER_MAX	(1024 * 1024)

static struct event_base	*base;
static struct http		*server;
static struct sockaddr_in	 addr;

static void
hello(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add_printf(b, "hello\n");
	http_send(req, 200, "text/plain", b);
	evbuffer_free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	const char *a;
	unsigned port;

	log_init("fuzz_http", 1);
	log_set_level(LOG_LEVEL_ERR);
	if ((base = event_base_new()) == NULL ||
	    (server = http_open(base, "127.0.0.1:0", err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	http_route(server, "/", 0, hello, NULL);
	http_route(server, "/p/", 1, hello, NULL);
	a = strrchr(http_address(server), ':');
	if (a == NULL || sscanf(a + 1, "%u", &port) != 1)
		abort();
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

/* Run the loop until 'fd' has something or is closed. */
static void
wait_for(int fd)
{
	fd_set r;
	struct timeval tv;

	for (;;) {
		FD_ZERO(&r);
		FD_SET(fd, &r);
		tv.tv_sec = 0;
		tv.tv_usec = 0;
		if (select(fd + 1, &r, NULL, NULL, &tv) > 0)
			return;
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static void
check_answer(const char *ans, size_t len, const uint8_t *in, size_t inlen)
{
	const char *p, *code;

	if (len == 0)
		return;
	/* evhttp answers in the request's version, whatever it was */
	if (len < 9 || memcmp(ans, "HTTP/", 5) != 0 ||
	    (code = memchr(ans, ' ', len)) == NULL ||
	    (size_t)(code - ans) + 4 > len)
		abort();
	code++;
	/* evhttp's own errors (400, 413) do not pass through http_send. */
	if ((memcmp(code, "200", 3) == 0 || memcmp(code, "404", 3) == 0 ||
	    memcmp(code, "405", 3) == 0) &&
	    (memmem(ans, len, "X-Content-Type-Options: nosniff", 31) == NULL ||
	    memmem(ans, len, "Content-Security-Policy: ", 25) == NULL))
		abort();
	/* A 200 only for GET or HEAD: the first request line's method. */
	if (memcmp(code, "200", 3) == 0) {
		for (p = (const char *)in; p < (const char *)in + inlen &&
		    (*p == '\r' || *p == '\n'); p++)
			;
		if (inlen - (size_t)(p - (const char *)in) < 4 ||
		    (memcmp(p, "GET ", 4) != 0 && memcmp(p, "HEAD", 4) != 0))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char ans[ANSWER_MAX], *stream;
	static size_t streamsz;
	struct http_counts c;
	size_t i, start = 0, got = 0, sent;
	ssize_t n;
	int fd, one = 1;

	if (size > streamsz && (stream = realloc(stream,
	    streamsz = size)) == NULL)
		abort();
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ==
	    -1 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == -1)
		abort();
	for (i = 0; i <= size; i++) {
		if (i < size && data[i] != 0xff)
			continue;
		if (i > start && send(fd, data + start, i - start,
		    MSG_NOSIGNAL) < 0)
			break;		/* the server closed: fine */
		start = i + 1;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		wait_for(fd);
		n = recv(fd, ans + got, got < sizeof(ans) ? sizeof(ans) - got :
		    0, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(ans))
			abort();	/* an answer over 1 MiB: unbounded */
	}
	close(fd);
	/* What the server read: the input without its 0xff separators. */
	for (i = 0, sent = 0; i < size; i++)
		if (data[i] != 0xff)
			stream[sent++] = data[i];
	check_answer(ans, got, (const uint8_t *)stream, sent);
	/* Let evhttp finish freeing the connection, then count. */
	for (i = 0; i < 64; i++) {
		http_counts(server, &c);
		if (c.open == 0)
			break;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	if (c.open != 0)
		abort();
	return 0;
}
