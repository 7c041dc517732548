/* smtpsrv: the scripted SMTP server of the unit tests (smtpsrv.h). */
#include "smtpsrv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

static void
conn_drop(struct smtpsrv_conn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->open = c->in_body = 0;
}

static void
conn_say(struct smtpsrv_conn *c, const char *text)
{
	bufferevent_write(c->bev, text, strlen(text));
}

/* Connection c's number in the log, from 1. */
static int
conn_number(const struct smtpsrv_conn *c)
{
	return (int)(c - c->srv->conns) + 1;
}

/* A full log fails the test: a line silently left out could make an
 * assertion that it never came pass. */
static void
srv_log(struct smtpsrv *s, const struct smtpsrv_conn *c, const char *line,
    size_t n)
{
	char tag[16] = "";
	size_t taglen;

	if (s->primary)
		snprintf(tag, sizeof(tag), "%d:", conn_number(c));
	taglen = strlen(tag);
	if (s->loglen + taglen + n + 2 > sizeof(s->log))
		fail_msg("smtpsrv: log full (%zu bytes)", sizeof(s->log));
	memcpy(s->log + s->loglen, tag, taglen);
	memcpy(s->log + s->loglen + taglen, line, n);
	s->loglen += taglen + n;
	s->log[s->loglen++] = '\n';
	s->log[s->loglen] = '\0';
}

static void	conn_event(struct bufferevent *, short, void *);

/* --- the script ---------------------------------------------------------- */

static void
script_close_when_sent(struct bufferevent *bev, void *arg)
{
	conn_drop(arg);
}

/* One line read on c: on to the next step once this one has its lines.
 * 0, or -1 when c is closed or closing. */
static int
script_line(struct smtpsrv_conn *c, const char *line)
{
	struct smtpsrv *s = c->srv;
	const struct smtpsrv_step *st;
	int done;

	if (s->step >= s->nsteps)
		return 0;
	st = &s->steps[s->step];
	if (st->nlines == SMTPSRV_UNTIL_DOT)
		done = strcmp(line, ".") == 0;
	else
		done = ++s->got == st->nlines;
	if (!done)
		return 0;
	s->got = 0;
	s->step++;
	if (st->reply != NULL)
		conn_say(c, st->reply);
	if (!st->close)
		return 0;
	if (st->reply == NULL)
		conn_drop(c);
	else
		bufferevent_setcb(c->bev, NULL, script_close_when_sent,
		    conn_event, c);
	return -1;
}

/* --- the primary --------------------------------------------------------- */

/* Whether a line starts with the verb 'v' (any case). */
static int
is_verb(const char *line, const char *v)
{
	return strncasecmp(line, v, strlen(v)) == 0;
}

/* One line read on c, answered as a Postfix with PIPELINING answers it
 * (or held). Always 0: the primary closes only when told. */
static int
primary_line(struct smtpsrv_conn *c, const char *line)
{
	struct smtpsrv *s = c->srv;

	if (c->in_body) {
		if (strcmp(line, ".") != 0)
			return 0;
		if (s->hold != NULL && strcmp(s->hold, ".") == 0)
			return 0;
		c->in_body = 0;
		c->open = 0;
		conn_say(c, "250 2.0.0 queued\r\n");
		return 0;
	}
	if (s->hold != NULL && is_verb(line, s->hold))
		return 0;
	if (is_verb(line, "EHLO"))
		conn_say(c, "250-primary\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
	else if (is_verb(line, "MAIL")) {
		if (c->open) {
			s->nested++;
			conn_say(c, "503 5.5.1 Error: nested MAIL command\r\n");
		} else {
			c->open = 1;
			conn_say(c, "250 2.1.0 ok\r\n");
		}
	} else if (is_verb(line, "RCPT"))
		conn_say(c, c->open ? "250 2.1.5 ok\r\n" :
		    "503 5.5.1 need MAIL\r\n");
	else if (is_verb(line, "DATA")) {
		c->in_body = 1;
		conn_say(c, "354 go ahead\r\n");
	} else if (is_verb(line, "RSET")) {
		c->open = 0;
		conn_say(c, "250 2.0.0 ok\r\n");
	} else if (is_verb(line, "QUIT")) {
		c->open = 0;
		conn_say(c, "221 2.0.0 bye\r\n");
	} else
		conn_say(c, "502 5.5.1 what\r\n");
	return 0;
}

/* --- the connections ----------------------------------------------------- */

static void
conn_read(struct bufferevent *bev, void *arg)
{
	struct smtpsrv_conn *c = arg;
	struct smtpsrv *s = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), n, burst = 0, i;
	const unsigned char *p = evbuffer_pullup(in, -1);
	char *line;
	int r;

	for (i = 0; i < len; i++)
		burst += p[i] == '\n';
	if (burst > s->max_burst)
		s->max_burst = burst;
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) !=
	    NULL) {
		srv_log(s, c, line, n);
		r = s->primary ? primary_line(c, line) : script_line(c, line);
		free(line);
		if (r == -1)
			return;
	}
}

static void
conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpsrv_conn *c = arg;

	c->srv->closed++;
	conn_drop(c);
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct smtpsrv *s = arg;
	struct smtpsrv_conn *c;

	s->accepted++;
	if (!s->primary && smtpsrv_open(s) > 0) {
		/* The script is one conversation at a time. */
		if (s->nextra < SMTPSRV_CONNS)
			s->extra[s->nextra++] = fd;
		else
			evutil_closesocket(fd);
		return;
	}
	if (s->nconns == SMTPSRV_CONNS) {
		evutil_closesocket(fd);
		fail_msg("smtpsrv: more than %d connections", SMTPSRV_CONNS);
	}
	c = &s->conns[s->nconns++];
	c->srv = s;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(c->bev);
	bufferevent_setcb(c->bev, conn_read, NULL, conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	conn_say(c, s->greeting);
}

static void
srv_listen(struct smtpsrv *s, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	s->base = base;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->l = evconnlistener_new_bind(base, srv_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(s->l);
	assert_int_equal(getsockname(evconnlistener_get_fd(s->l),
	    (struct sockaddr *)&sin, &slen), 0);
	s->port = ntohs(sin.sin_port);
}

/* --- the interface ------------------------------------------------------- */

void
smtpsrv_start(struct smtpsrv *s, struct event_base *base, const char *greeting,
    const struct smtpsrv_step *steps, size_t nsteps)
{
	memset(s, 0, sizeof(*s));
	s->greeting = greeting;
	s->steps = steps;
	s->nsteps = nsteps;
	srv_listen(s, base);
}

void
smtpsrv_start_primary(struct smtpsrv *s, struct event_base *base)
{
	memset(s, 0, sizeof(*s));
	s->primary = 1;
	s->greeting = "220 primary ESMTP\r\n";
	srv_listen(s, base);
}

void
smtpsrv_drop_all(struct smtpsrv *s)
{
	int i;

	for (i = 0; i < s->nconns; i++)
		conn_drop(&s->conns[i]);
}

void
smtpsrv_stop(struct smtpsrv *s)
{
	smtpsrv_drop_all(s);
	while (s->nextra > 0)
		evutil_closesocket(s->extra[--s->nextra]);
	if (s->l != NULL)
		evconnlistener_free(s->l);
	s->l = NULL;
}

void
smtpsrv_say(struct smtpsrv *s, int n, const char *text)
{
	assert_true(n >= 1 && n <= s->nconns);
	assert_non_null(s->conns[n - 1].bev);
	conn_say(&s->conns[n - 1], text);
}

int
smtpsrv_open(const struct smtpsrv *s)
{
	int i, n = 0;

	for (i = 0; i < s->nconns; i++)
		n += s->conns[i].bev != NULL;
	return n;
}

int
smtpsrv_saw(const struct smtpsrv *s, const char *str)
{
	return strstr(s->log, str) != NULL;
}

int
smtpsrv_count(const struct smtpsrv *s, const char *str)
{
	const char *p = s->log;
	int n = 0;

	while (*p != '\0') {
		n += strncmp(p, str, strlen(str)) == 0;
		p = strchr(p, '\n') + 1;
	}
	return n;
}
