/*
 * backmxd: options, configuration, the customer domains, the TLS context
 * and the listeners; then, as the service user (docs/service.md), the
 * spool, the state store and the rest; then the one event loop.
 * Everything that can stop the start does so here, before the loop runs,
 * with a message that says what is wrong (docs/principles.md §2).
 *
 * Signals: SIGTERM/SIGINT stop (listeners close at once; commits in flight
 * finish, so no 250 is said for a message that is not on disk), SIGHUP
 * re-reads backmx.conf and domains_file without dropping sessions (what
 * cannot change in a running process waits for a restart).
 */
#include <sys/resource.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "bulk.h"
#include "callout.h"
#include "config.h"
#include "connect.h"
#include "control.h"
#include "deliver.h"
#include "domains.h"
#include "greylist.h"
#include "health.h"
#include "learn.h"
#include "listener.h"
#include "log.h"
#include "policy.h"
#include "pool.h"
#include "queue.h"
#include "resolver.h"
#include "sched.h"
#include "service.h"
#include "server.h"
#include "session.h"
#include "state.h"
#include "tls.h"

static struct config	conf;
static struct server	srv;
static struct domains	*domains;
static struct state	*state;
static struct greylist	*greylist;
static struct resolver	*resolver;
static struct control	*control;
static struct learn	*learn;
static struct callout	*callout;
static struct listener	*listener;
static struct primary_health *health;
static struct deliver	*deliver;
static struct primary_connector *connector;
static const char	*conf_path = "/etc/backmx/backmx.conf";

/* A session ended: its slot in the listener's limits is free again. */
static void
session_ended(const struct sockaddr *sa, void *arg)
{
	listener_release(listener, sa);
}

/* The listener accepted a connection within the limits: a session. */
static void
accepted(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
	session_new(&srv, fd, sa, salen, session_ended, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: backmxd [-f] [-c config]\n");
	exit(64);
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval grace = { 1, 0 };

	log_info("event=stop signal=%d sessions=%zu", (int)sig,
	    listener_sessions(listener));
	service_notify("STOPPING=1\nSTATUS=stopping");
	listener_disable(listener);
	/* Sessions still open get cut; none of them has heard a 250 for a
	 * message that is not durable, so nothing is lost. */
	event_base_loopexit(srv.base,
	    listener_sessions(listener) > 0 ? &grace : NULL);
}

/*
 * What a reload cannot change in a running process: the sockets, the
 * spool and state folders, the per-address table sized from
 * smtpd_max_connections, the TLS context. Such keys keep their running
 * value until a restart, and the log says so.
 */
static void
keep_running_values(struct config *n)
{
	enum log_level level;

#define KEEP(field) do {						\
	if (memcmp(&n->field, &conf.field, sizeof(conf.field)) != 0)	\
		log_warn("event=reload key=" #field " result=needs_restart"); \
	memcpy(&n->field, &conf.field, sizeof(conf.field));		\
} while (0)
	KEEP(listen);
	KEEP(nlisten);
	KEEP(spool_dir);
	KEEP(state_dir);
	KEEP(control_socket);
	KEEP(user);
	KEEP(group);
	KEEP(smtpd_max_connections);
	KEEP(tls_cert_file);
	KEEP(tls_key_file);
	/* The resolver and the parsed DNS check lists are built once. */
	KEEP(dns_forward);
	KEEP(dns_trust_anchor_file);
	KEEP(dns_cache_max_ttl);
	KEEP(dns_timeout);
	KEEP(dns_max_queries);
	KEEP(mx_invalid_networks);
	KEEP(dnsbl_zones);
	KEEP(dnsbl_allow);
	KEEP(dnsbl_fail_action);
	n->dns_lists = conf.dns_lists;	/* the three lists above, parsed */
	/* The store's timer and the parsed greylist allow lists are set up
	 * once; the greylist timings are read per check and do change. */
	KEEP(state_sweep_interval);
	KEEP(state_sweep_batch);
	KEEP(greylist_allow_clients);
	KEEP(greylist_allow_senders);
	KEEP(greylist_allow_recipients);
	KEEP(bulk_allow_clients);
	KEEP(bulk_allow_senders);
	KEEP(bulk_allow_recipients);
#undef KEEP
	if (log_level_parse(n->log_level, &level) == 0)
		log_set_level(level);
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct config n;
	char err[1024];
	struct domains *d;

	/* All or nothing: a bad file keeps the running configuration. */
	service_reloading();
	config_defaults(&n);
	if (config_load(&n, conf_path, err, sizeof(err)) == -1 ||
	    (d = domains_load(n.domains_file, err, sizeof(err))) == NULL) {
		log_err("event=reload result=failed error=\"%s\"", err);
		service_notify("READY=1\nSTATUS=reload failed, running as "
		    "before: %.300s", err);
		return;
	}
	keep_running_values(&n);
	/* Everything runs on this one thread and reads the configuration
	 * at the moment it needs a value: a plain copy is the swap. struct
	 * config holds no pointer (fixed arrays only) and lives here, never
	 * freed: whoever keeps &conf across a loop turn reads the new values
	 * at its next turn, never freed memory. */
	conf = n;
	/* The parts below keep a pointer to the table and get the new one
	 * in this same turn. Sessions look domains up per RCPT and keep a
	 * name, not a pointer; the one holder of an entry across turns, a
	 * RCPT's check in flight (its copy shares the recipients= list),
	 * holds a reference (src/policy/policy.c): domains_free() drops
	 * ours, and the old table goes with the last check that started
	 * under it. */
	srv.domains = d;
	queue_set_domains(srv.queue, d);
	deliver_set_domains(deliver, d);
	primary_connector_set_domains(connector, d);
	learn_set_domains(learn, d);
	callout_set_domains(callout, d);
	control_set_knowledge(control, learn, state, d);
	domains_free(domains);
	domains = d;
	log_info("event=reload result=ok domains=%zu", domains_count(d));
	service_notify("READY=1\nSTATUS=reloaded: %zu domains",
	    domains_count(d));
}

/* The scheduler's attempts go to deliver.c, which sits above the queue. */
static void
attempt(void *owner, struct sched_task *t, sched_task_done_cb *done,
    void *arg)
{
	deliver_submit(owner, t, done, arg);
}

/* Pass-through and callouts go in clear text where deliveries found a
 * next hop's TLS handshake broken. */
static int
tls_hint(void *arg, const struct sockaddr *sa, socklen_t salen)
{
	return deliver_tls_broken(arg, sa, salen);
}

/* Health probes go through delivery's next hop (deliver_probe). */
static void
probe(void *owner, const char *domain, primary_probe_done_cb *done, void *arg)
{
	deliver_probe(owner, domain, done, arg);
}

/*
 * A primary that was down when we stopped is down now, until its probe
 * says otherwise: pass-through would otherwise wait for it at a first
 * RCPT (up to passthrough_connect_timeout) for every such domain after
 * each restart. Before primary_health_set_learn(): the record keeps its
 * time.
 */
static void
restore_health(struct primary_health *h, struct learn *l,
    const struct domains *d)
{
	struct state_domain rec;
	char why[STATE_WHY_MAX + 32];
	int64_t now = time(NULL);
	size_t i;

	for (i = 0; i < domains_count(d); i++) {
		const char *name = domains_at(d, i)->name;

		if (learn_domain(l, name, now, &rec) == 0 && !rec.health) {
			snprintf(why, sizeof(why), "down at the last stop: %s",
			    rec.health_why);
			primary_health_failed(h, name, why, 1);
		}
	}
}

/*
 * Enough descriptors for what the configuration allows
 * (docs/configuration.md, smtpd_max_connections): each session can hold
 * two (the client, and the primary in pass-through or a spool file in
 * backup mode), each DNS query in flight one, and FD_MARGIN covers the
 * rest (stores, log, listeners, control, deliveries, callouts, probes).
 * The soft limit is raised to that; a hard limit below it stops the start
 * with a clear message, rather than sessions failing at random under
 * load. Returns -1 and says why in err.
 */
#define FD_MARGIN	256

static int
raise_nofile(const struct config *c, char *err, size_t errsz)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)c->smtpd_max_connections * 2 +
	    (rlim_t)c->dns_max_queries + FD_MARGIN;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		snprintf(err, errsz, "getrlimit(RLIMIT_NOFILE): %s",
		    strerror(errno));
		return -1;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		rl.rlim_max = need;	/* root may, up to fs.nr_open */
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		getrlimit(RLIMIT_NOFILE, &rl);
		snprintf(err, errsz, "too few file descriptors: "
		    "smtpd_max_connections=%u and dns_max_queries=%u need %llu "
		    "(2 a session, 1 a DNS query, %d more), the hard limit "
		    "(ulimit -Hn, RLIMIT_NOFILE) is %llu: raise it or lower "
		    "smtpd_max_connections", c->smtpd_max_connections,
		    c->dns_max_queries, (unsigned long long)need, FD_MARGIN,
		    (unsigned long long)rl.rlim_max);
		return -1;
	}
	log_info("event=rlimit_nofile limit=%llu", (unsigned long long)need);
	return 0;
}

int
main(int argc, char **argv)
{
	struct event *ev_term, *ev_int, *ev_hup;
	enum log_level level;
	char err[1024];
	int ch, foreground = 0;

	while ((ch = getopt(argc, argv, "c:fh")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init("backmxd", foreground);
	config_defaults(&conf);
	if (config_load(&conf, conf_path, err, sizeof(err)) == -1) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	if (log_level_parse(conf.log_level, &level) == 0)
		log_set_level(level);
	if (raise_nofile(&conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error error=\"%s\"", err);
	}
	if ((domains = domains_load(conf.domains_file, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() == -1)
		fatal("event=start_error error=\"evthread_use_pthreads\"");
	if ((srv.base = event_base_new()) == NULL)
		fatal("event=start_error error=\"event_base_new\"");
	srv.conf = &conf;
	srv.domains = domains;

	if (conf.tls_cert_file[0] != '\0' &&
	    (srv.tls = tls_server_ctx(conf.tls_cert_file, conf.tls_key_file,
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	/* The listeners are bound now (port 25 takes root), but nothing is
	 * read from them before the loop runs. */
	if ((listener = listener_open(srv.base, &conf, accepted, NULL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error error=\"%s\"", err);
	}
	/* Root leaves here, before any thread exists: the TLS key is read,
	 * the listeners bound; the files below are made by the service user
	 * (docs/service.md §2). */
	if (service_drop(conf.user, conf.group, err, sizeof(err)) == -1) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error error=\"%s\"", err);
	}
	/* The state store, before anything can ask it: one that cannot be
	 * opened stops the start here, never a session later. */
	{
		struct state_conf sc = { conf.state_sweep_interval,
		    conf.state_sweep_batch };

		if ((state = state_open(srv.base, conf.state_dir, &sc, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "backmxd: state store: %s\n", err);
			fatal("event=start_error state_dir=%s error=\"%s\"",
			    conf.state_dir, err);
		}
	}
	if ((greylist = greylist_new(&conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	/* The bulk detector (docs/bulk.md): counts in the state store. */
	if ((srv.bulk = bulk_new(&conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	srv.state = state;
	/* DNS: libunbound on this loop (docs/dns.md). */
	{
		struct resolver_conf rc;

		memset(&rc, 0, sizeof(rc));
		rc.forward = conf.dns_forward;
		rc.trust_anchor_file = conf.dns_trust_anchor_file;
		rc.cache_max_ttl = conf.dns_cache_max_ttl;
		rc.timeout = conf.dns_timeout;
		rc.max_queries = conf.dns_max_queries;
		if ((resolver = resolver_new(srv.base, &rc, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "backmxd: %s\n", err);
			fatal("event=start_error error=\"%s\"", err);
		}
	}
	/* The primaries' health (docs/queue.md): the queue, the sessions
	 * and callouts all read and feed it. */
	health = primary_health_new(srv.base, &conf);
	srv.health = health;
	if ((srv.queue = queue_open(srv.base, &conf, health, err,
	    sizeof(err))) == NULL) {
		/* Nothing was deleted to make it start (docs/queue.md). */
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error spool_dir=%s error=\"%s\"",
		    conf.spool_dir, err);
	}
	queue_set_domains(srv.queue, domains);
	connector = primary_connector_new(srv.base, &conf);
	primary_connector_set_domains(connector, domains);
	primary_connector_set_resolver(connector, resolver);
	deliver = deliver_new(srv.base, &conf, primary_client_conf(connector));
	deliver_set_domains(deliver, domains);
	deliver_set_resolver(deliver, resolver);
	primary_connector_set_tls_hint(connector, tls_hint, deliver);
	srv.connector = connector;
	sched_set_deliver(queue_sched(srv.queue), attempt, deliver);
	/* What backmx learns of each domain (docs/passthrough.md, "Learning"): from
	 * deliveries, pass-through and callouts. */
	learn = learn_new(srv.base, &conf, state);
	learn_set_domains(learn, domains);
	srv.learn = learn;
	srv.ptpool = primary_pool_new(&conf);
	primary_health_set_prober(health, probe, deliver);
	restore_health(health, learn, domains);
	primary_health_set_learn(health, learn);
	sched_set_learn(queue_sched(srv.queue), learn);
	callout = callout_new(srv.base, &conf, connector, health, learn);
	callout_set_domains(callout, domains);
	{
		struct policy_deps deps;

		memset(&deps, 0, sizeof(deps));
		deps.resolver = resolver;
		deps.base = srv.base;
		deps.conf = &conf;
		deps.state = state;
		deps.greylist = greylist;
		deps.learn = learn;
		deps.callout = callout;
		srv.policy = policy_new(&deps);
	}
	/* The operator's socket (docs/queue.md "Admin"). */
	if ((control = control_open(srv.base, conf.control_socket, srv.queue,
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error error=\"%s\"", err);
	}
	control_set_knowledge(control, learn, state, domains);

	ev_term = evsignal_new(srv.base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(srv.base, SIGINT, stop_cb, NULL);
	ev_hup = evsignal_new(srv.base, SIGHUP, reload_cb, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);

	log_info("event=ready listen=%s domains=%zu tls=%s version=%s",
	    listener_addresses(listener), domains_count(domains),
	    srv.tls ? "yes" : "no", BACKMX_VERSION);
	/* The listeners are open and the queue recovered (docs/service.md
	 * §3). */
	{
		char status[256];

		snprintf(status, sizeof(status), "listening on %s, %zu "
		    "domains", listener_addresses(listener),
		    domains_count(domains));
		service_ready(srv.base, status);
	}

	event_base_dispatch(srv.base);

	listener_free(listener);
	primary_pool_free(srv.ptpool);
	callout_free(callout);
	/* After the sessions and callouts that asked it for connections. */
	primary_connector_free(connector);
	/* No more deliveries; then the writer finishes what it holds. */
	deliver_free(deliver);
	queue_close(srv.queue);
	/* After the queue: its probes in flight are gone with deliver. */
	primary_health_free(health);
	/* After the queue: admin changes in flight answered their callers. */
	control_close(control);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	service_free();
	tls_ctx_free(srv.tls);
	policy_free(srv.policy);
	resolver_free(resolver);
	/* After the sessions' last checks: what they staged commits here. */
	learn_free(learn);
	state_close(state);
	greylist_free(greylist);
	bulk_free(srv.bulk);
	domains_free(domains);
	log_info("event=stopped");
	/* Sessions cut at exit are not freed one by one: the process ends. */
	return 0;
}
