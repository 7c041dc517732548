/*
 * policy_dns: what the DNS checks cost per RCPT once the cache is warm.
 * Links libbackmx, runs the real policy steps (recipient domain: MX, then
 * A and AAAA of the MX host; DNSBL: answered at connect) against the real
 * resolver (libunbound on a libevent loop) forwarding to a scripted DNS
 * server on loopback, and times N RCPT checks after a warm-up. Also times
 * the same with every DNS check off (the runner's own cost) and MAIL's
 * sender-domain check. Driven by bench/policy_dns.py; not a test.
 *
 * usage: policy_dns PORT N
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "addr.h"
#include "config.h"
#include "domains.h"
#include "policy.h"
#include "resolver.h"

static int	done;
static struct verdict_info last;

static void
done_cb(const struct verdict_info *v, void *arg)
{
	last = *v;
	done = 1;
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void
wait_done(struct event_base *base)
{
	while (!done)
		event_base_loop(base, EVLOOP_ONCE);
	done = 0;
}

static struct mailaddr
path(const char *s)
{
	struct mailaddr a;
	size_t used;

	if (addr_parse_path(s, strlen(s), ADDR_ALLOW_NULL, &a, &used) !=
	    ADDR_OK) {
		fprintf(stderr, "bad path %s\n", s);
		exit(1);
	}
	return a;
}

/* n RCPT checks, µs each. */
static double
run(struct event_base *base, struct policy_client *pc, int n,
    const struct mailaddr *from, const struct mailaddr *to,
    const struct domain *dom, int mail)
{
	double t0;
	int i;

	t0 = now_us();
	for (i = 0; i < n; i++) {
		if (mail)
			policy_check_mail(pc, from, done_cb, NULL);
		else
			policy_check_rcpt(pc, from, to, dom, POLICY_BACKUP, 0, done_cb,
			    NULL);
		wait_done(base);
		if (last.v != VERDICT_ACCEPT) {
			fprintf(stderr, "not accepted: %d %s\n", last.code,
			    last.text);
			exit(1);
		}
	}
	return (now_us() - t0) / n;
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct config conf;
	struct resolver_conf rc;
	struct resolver *res;
	struct policy_deps deps;
	struct policy *pol;
	struct policy_client *pc;
	struct sockaddr_in sin;
	struct domains *doms;
	const struct domain *dom;
	struct mailaddr from, to;
	char err[256];
	double warm, off, mail;
	int n;

	if (argc != 3)
		return 64;
	n = atoi(argv[2]);
	base = event_base_new();
	config_defaults(&conf);
	snprintf(conf.dns_forward, sizeof(conf.dns_forward), "127.0.0.1@%s",
	    argv[1]);
	snprintf(conf.dnsbl_zones, sizeof(conf.dnsbl_zones), "dnsbl.test");
	conf.dnsbl_allow[0] = '\0';
	conf.greylist = 0;
	memset(&rc, 0, sizeof(rc));
	rc.forward = conf.dns_forward;
	rc.trust_anchor_file = "";
	rc.cache_max_ttl = conf.dns_cache_max_ttl;
	rc.timeout = 5;
	rc.max_queries = 1000;
	if ((res = resolver_new(base, &rc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	memset(&deps, 0, sizeof(deps));
	deps.base = base;
	deps.conf = &conf;
	deps.resolver = res;
	pol = policy_new(&deps);
	doms = domains_parse("bench", "customer.example\n", 17, err,
	    sizeof(err));
	dom = domains_lookup(doms, "customer.example");
	from = path("<a@sender.example>");
	to = path("<u@customer.example>");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
	pc = policy_client_new(pol, (struct sockaddr *)&sin, "127.0.0.2");

	run(base, pc, 10, &from, &to, dom, 0);		/* warm the cache */
	run(base, pc, 10, &from, &to, dom, 1);
	warm = run(base, pc, n, &from, &to, dom, 0);
	mail = run(base, pc, n, &from, &to, dom, 1);
	conf.check_recipient_domain = 0;
	conf.check_sender_domain = 0;
	off = run(base, pc, n, &from, &to, dom, 0);
	{
		struct resolver_stats st;

		resolver_stats(res, &st);
		printf("rcpt_warm_us=%.2f mail_warm_us=%.2f "
		    "rcpt_checks_off_us=%.2f n=%d resolver_queries=%llu\n",
		    warm, mail, off, n, (unsigned long long)st.queries);
	}
	policy_client_free(pc);
	policy_free(pol);
	resolver_free(res);
	domains_free(doms);
	event_base_free(base);
	return 0;
}
