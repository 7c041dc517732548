/*
 * backmxd: options, configuration, the customer domains, the TLS context
 * and the listeners; then, as the service user (docs/service.md), the
 * spool, the state store and the rest; then the one event loop.
 * Everything that can stop the start does so here, before the loop runs,
 * with a message that says what is wrong (docs/principles.md §2).
 *
 * Signals: SIGTERM/SIGINT stop gracefully (listeners close at once; a
 * transaction under way may finish for shutdown_grace, the rest hear 421;
 * no 250 is said for a message that is not on disk), SIGHUP re-reads
 * backmx.conf, domains_file and the TLS certificate without dropping
 * sessions (what cannot change in a running process waits for a restart).
 */
#include <sys/resource.h>

#include <errno.h>
#include <pthread.h>
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
#include "cluster.h"
#include "config.h"
#include "connect.h"
#include "control.h"
#include "deliver.h"
#include "domains.h"
#include "greylist.h"
#include "health.h"
#include "learn.h"
#include "listener.h"
#include "http.h"
#include "metrics.h"
#include "dash.h"
#include "log.h"
#include "looplag.h"
#include "policy.h"
#include "pool.h"
#include "queue.h"
#include "resolver.h"
#include "sched.h"
#include "service.h"
#include "server.h"
#include "session.h"
#include "state.h"
#include "stats.h"
#include "tls.h"

static struct config	conf;
static struct server	srv;
static struct domains	*domains;
static struct state	*state;
static struct greylist	*greylist;
static struct cluster	*cluster;	/* NULL: one node (docs/cluster.md) */
static struct resolver	*resolver;
static struct control	*control;
static struct learn	*learn;
static struct callout	*callout;
static struct listener	*listener;
static struct http	*web;		/* NULL: metrics_listen is empty */
static struct metrics	*metrics;	/* NULL with web */
static struct dash	*dash;		/* on web; NULL when it is off */
static struct primary_health *health;
static struct deliver	*deliver;
static struct primary_connector *connector;
static const char	*conf_path = "/etc/backmx/backmx.conf";

static void	stop_session_ended(void);

/* A session ended: its slot in the listener's limits is free again. */
static void
session_ended(const struct sockaddr *sa, void *arg)
{
	listener_release(listener, sa);
	stop_session_ended();
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

/*
 * The stop (docs/service.md §5). SIGTERM closes the listeners and tells
 * systemd; sessions between transactions get 421 at once, a transaction
 * under way may finish for shutdown_grace (session_shutdown()). When the
 * last session is gone, or at the deadline once those left were told 421,
 * the idle primary connections get their QUIT and the loop ends; then
 * main() lets the queue writer commit what it holds, and exits 0.
 */
static struct event	*ev_stop;	/* the deadline, then the last wait */
static int		 stopping;	/* 1: grace, 2: past the deadline */

/* How long the last QUITs and the sessions told 421 at the deadline may
 * take to go out: then the loop ends whatever is left. */
#define STOP_FLUSH_SEC	3

static void
stop_end(void)
{
	struct timeval tv = { 1, 0 };
	int quits = primary_pool_count(srv.ptpool) > 0;

	/* Polite to the primaries: QUIT on every idle pass-through
	 * connection, and a second for the replies and closes. */
	primary_pool_quit_all(srv.ptpool);
	event_base_loopexit(srv.base, quits ? &tv : NULL);
}

static void
stop_last_cb(evutil_socket_t fd, short what, void *arg)
{
	log_warn("event=stop_timeout sessions=%zu", listener_sessions(listener));
	event_base_loopexit(srv.base, NULL);
}

/* shutdown_grace is over: whoever is still talking gets 421. */
static void
stop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { STOP_FLUSH_SEC, 0 };

	stopping = 2;
	log_info("event=stop_deadline sessions=%zu",
	    listener_sessions(listener));
	session_shutdown(1);
	event_free(ev_stop);
	ev_stop = evtimer_new(srv.base, stop_last_cb, NULL);
	evtimer_add(ev_stop, &tv);
}

/* A session ended during the stop: was it the last? */
static void
stop_session_ended(void)
{
	if (stopping && listener_sessions(listener) == 0 && ev_stop != NULL) {
		event_free(ev_stop);
		ev_stop = NULL;
		stop_end();
	}
}

static void
stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval grace = { conf.shutdown_grace, 0 };

	if (stopping) {
		/* A second signal: the deadline now. */
		if (stopping == 1 && ev_stop != NULL)
			event_active(ev_stop, EV_TIMEOUT, 0);
		return;
	}
	stopping = 1;
	log_info("event=stop signal=%d sessions=%zu grace=%u", (int)sig,
	    listener_sessions(listener), conf.shutdown_grace);
	service_notify("STOPPING=1\nSTATUS=stopping");
	listener_disable(listener);
	ev_stop = evtimer_new(srv.base, stop_deadline_cb, NULL);
	evtimer_add(ev_stop, &grace);
	session_shutdown(0);
	stop_session_ended();
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
	KEEP(metrics_listen);	/* bound as root (docs/metrics.md) */
	KEEP(spool_dir);
	KEEP(state_dir);
	KEEP(control_socket);
	KEEP(user);
	KEEP(group);
	KEEP(smtpd_max_connections);
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
	/* The Redis connection is made once. */
	KEEP(redis_servers);
	KEEP(redis_server);
	KEEP(nredis_servers);
	KEEP(redis_sentinels);
	KEEP(redis_sentinel);
	KEEP(nredis_sentinels);
	KEEP(redis_master_name);
	KEEP(redis_timeout);
	KEEP(redis_prefix);
	KEEP(redis_replay_limit);
#undef KEEP
	if (log_level_parse(n->log_level, &level) == 0)
		log_set_level(level);
}

/* Where log lines go, as log_target and log_facility say (checked when
 * the file was read). */
static void
set_log_target(const struct config *c)
{
	int facility = 0;

	(void)log_facility_parse(c->log_facility, &facility);
	log_target(strcmp(c->log_target, "syslog") == 0, facility);
}

/*
 * The TLS certificate and key again, read as the service user (the files
 * must be readable by it, docs/service.md §6). A new SSL_CTX for new
 * sessions; one in flight keeps the context it started with (its SSL
 * holds a reference), so the old one is freed with its last session. A
 * file that does not load keeps the running context: returns -1 with why.
 */
static int
reload_tls(const struct config *c, char *err, size_t errsz)
{
	SSL_CTX *ctx = NULL;

	if (c->tls_cert_file[0] != '\0' && (ctx = tls_server_ctx(
	    c->tls_cert_file, c->tls_key_file, err, errsz)) == NULL) {
		log_err("event=reload what=tls result=failed cert=%s "
		    "error=\"%s\" action=keep_running_certificate",
		    c->tls_cert_file, err);
		return -1;
	}
	tls_ctx_free(srv.tls);
	srv.tls = ctx;
	log_info("event=reload what=tls result=ok tls=%s", ctx ? "yes" : "no");
	return 0;
}

/*
 * A SIGHUP's reading, off the loop: 100,000 customer domains with their
 * recipients= lists take seconds to parse, and the loop serves every
 * session meanwhile (issue 16: no stall over 50 ms). A thread reads
 * backmx.conf and the domains file into a new struct config and table,
 * touching nothing the loop uses; the loop swaps them in at once when it
 * is done (reload_apply()). One reading at a time: a SIGHUP during one
 * asks for another after it, which reads the files as they are then.
 */
static struct reload_job {
	pthread_t	 thread;
	struct event	*done;		/* activated by the thread */
	int		 running, again;
	struct config	 n;
	struct domains	*d;		/* NULL: failed, see err */
	char		 err[1024];
} reload_job;

static void	reload_apply(struct config *, struct domains *);

static void *
reload_read(void *arg)
{
	struct reload_job *j = arg;

	config_defaults(&j->n);
	j->d = NULL;
	if (config_load(&j->n, conf_path, j->err, sizeof(j->err)) == 0)
		j->d = domains_load(j->n.domains_file, j->err,
		    sizeof(j->err));
	event_active(j->done, EV_READ, 0);
	return NULL;
}

static void
reload_cb(evutil_socket_t sig, short what, void *arg)
{
	struct reload_job *j = &reload_job;

	if (j->running) {
		j->again = 1;
		return;
	}
	service_reloading();
	j->running = 1;
	if (pthread_create(&j->thread, NULL, reload_read, j) != 0) {
		j->running = 0;
		stats_inc(STAT_RELOAD_FAILED);
		log_err("event=reload result=failed error=\"cannot start "
		    "a thread to read the files\"");
		service_notify("READY=1\nSTATUS=reload failed");
	}
}

static void
reload_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reload_job *j = &reload_job;

	pthread_join(j->thread, NULL);
	j->running = 0;
	/* All or nothing: a bad file keeps the running configuration.
	 * The bulk allow lists are checked here, the last thing that may
	 * refuse, and swapped at once (they are read only synchronously). */
	if (j->d != NULL && bulk_reload(srv.bulk, &j->n, j->err,
	    sizeof(j->err)) == -1) {
		domains_free(j->d);
		j->d = NULL;
	}
	if (j->d == NULL) {
		stats_inc(STAT_RELOAD_FAILED);
		log_err("event=reload result=failed error=\"%s\"", j->err);
		service_notify("READY=1\nSTATUS=reload failed, running as "
		    "before: %.300s", j->err);
	} else
		reload_apply(&j->n, j->d);
	if (j->again) {
		j->again = 0;
		reload_cb(SIGHUP, EV_SIGNAL, NULL);
	}
}

static void
reload_apply(struct config *np, struct domains *d)
{
	struct config n = *np;
	char tls_err[1024];
	int tls_ok;

	keep_running_values(&n);
	/* Everything runs on this one thread and reads the configuration
	 * at the moment it needs a value: a plain copy is the swap. struct
	 * config holds no pointer (fixed arrays only) and lives here, never
	 * freed: whoever keeps &conf across a loop turn reads the new values
	 * at its next turn, never freed memory. */
	conf = n;
	set_log_target(&conf);
	tls_ok = reload_tls(&conf, tls_err, sizeof(tls_err)) == 0;
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
	metrics_set_domains(metrics, d);
	dash_set_knowledge(dash, learn, state, d);
	domains_free(domains);
	domains = d;
	/* A partial reload (the old certificate kept) counts as failed:
	 * an operator's alert on failed reloads must see it. */
	stats_inc(tls_ok ? STAT_RELOAD_OK : STAT_RELOAD_FAILED);
	if (!tls_ok) {
		/* Partial: the rest is in force, the old certificate too. */
		log_warn("event=reload result=partial domains=%zu",
		    domains_count(d));
		service_notify("READY=1\nSTATUS=reloaded: %zu domains; TLS "
		    "certificate kept: %.300s", domains_count(d), tls_err);
		return;
	}
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
 * Primary health through the cluster (docs/cluster.md "Primary health"):
 * what this node sees goes out; another node's "up" is as good as our own
 * probe's, its "down" only a suspicion (our own probe decides).
 */
static void
health_changed(const char *domain, int up, const char *why, time_t since,
    void *arg)
{
	cluster_health_publish(cluster, domain, up, since);
}

static void
cluster_news(const struct cluster_health *n, void *arg)
{
	char why[300];

	if (n->up) {
		primary_health_remote_up(health, n->domain, n->since, n->node);
		return;
	}
	snprintf(why, sizeof(why), "down at node %s", n->node);
	primary_health_suspect(health, n->domain, why);
}

/* What this node learns goes to the others too (docs/cluster.md
 * "Learned recipients and the domain lifecycle"). */
static void
share_rcpt(const struct state_rcpt *r, void *arg)
{
	cluster_learned_rcpt(cluster, r);
}

static void
share_domain(const struct state_domain *d, void *arg)
{
	cluster_learned_domain(cluster, d);
}

/* One probe per down primary and one callout per address for the
 * cluster (docs/cluster.md "One probe, one callout"). */
static void *
lease_take(void *owner, const char *domain, const char *addr, unsigned ttl,
    primary_lease_done *done, void *arg)
{
	return cluster_lease(owner, domain, addr, ttl, done, arg);
}

static void
lease_cancel(void *l)
{
	cluster_lease_cancel(l);
}

static void
read_one(const char *domain, void *arg)
{
	cluster_health_read(cluster, domain);
}

static void
cluster_resync(void *arg)
{
	primary_health_foreach_down(health, read_one, NULL);
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
	int ch;

	while ((ch = getopt(argc, argv, "c:fh")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			/* backmxd never forks; where it logs is log_target's
			 * (docs/configuration.md). Kept for command lines. */
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	/* stderr until the file says otherwise (set_log_target()). */
	log_init("backmxd", 1);
	config_defaults(&conf);
	if (config_load(&conf, conf_path, err, sizeof(err)) == -1) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	if (log_level_parse(conf.log_level, &level) == 0)
		log_set_level(level);
	set_log_target(&conf);
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
	if (conf.metrics_listen[0] != '\0') {
		if ((web = http_open(srv.base, conf.metrics_listen, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "backmxd: %s\n", err);
			fatal("event=start_error error=\"%s\"", err);
		}
		log_info("event=http_listen address=%s", http_address(web));
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
	/* Shared greylisting, when redis_servers is set; Redis being down
	 * stops nothing (docs/cluster.md). */
	cluster = cluster_new(srv.base, &conf);
	if (cluster != NULL)	/* the operator's allow entries, shared */
		cluster_set_state(cluster, state);
	/* The bulk detector (docs/bulk.md): counts in the state store. */
	if ((srv.bulk = bulk_new(&conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=config_error error=\"%s\"", err);
	}
	/* A cluster shares the counts (docs/cluster.md "Bulk counts"). */
	bulk_set_cluster(srv.bulk, cluster);
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
	if (cluster != NULL)	/* before the domains: their first records */
		learn_on_write(learn, share_rcpt, share_domain, NULL);
	learn_set_domains(learn, domains);
	srv.learn = learn;
	srv.ptpool = primary_pool_new(&conf);
	primary_health_set_prober(health, probe, deliver);
	restore_health(health, learn, domains);
	primary_health_set_learn(health, learn);
	if (cluster != NULL) {
		primary_health_on_change(health, health_changed, NULL);
		cluster_on_health(cluster, cluster_news, cluster_resync, NULL);
	}
	sched_set_learn(queue_sched(srv.queue), learn);
	callout = callout_new(srv.base, &conf, connector, health, learn);
	callout_set_domains(callout, domains);
	if (cluster != NULL) {
		struct primary_lease pl = { lease_take, lease_cancel, cluster };

		primary_health_set_lease(health, &pl);
		callout_set_lease(callout, &pl);
	}
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
		deps.cluster = cluster;
		srv.policy = policy_new(&deps);
	}
	/* The operator's socket (docs/queue.md "Admin"). */
	if ((control = control_open(srv.base, conf.control_socket, srv.queue,
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "backmxd: %s\n", err);
		fatal("event=start_error error=\"%s\"", err);
	}
	control_set_knowledge(control, learn, state, domains);
	if (web != NULL) {
		struct metrics_sources ms = { &conf, listener, srv.queue,
		    health, state, resolver, srv.policy, cluster };

		metrics = metrics_new(web, &ms);
		metrics_set_domains(metrics, domains);
	}
	/* The dashboard on the HTTP server (docs/dashboard.md). */
	if (web != NULL) {
		dash = dash_new(conf.myhostname, srv.queue);
		dash_set_knowledge(dash, learn, state, domains);
		dash_routes(dash, web);
	}
	control_set_cluster(control, cluster);

	ev_term = evsignal_new(srv.base, SIGTERM, stop_cb, NULL);
	ev_int = evsignal_new(srv.base, SIGINT, stop_cb, NULL);
	ev_hup = evsignal_new(srv.base, SIGHUP, reload_cb, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	reload_job.done = event_new(srv.base, -1, 0, reload_done_cb, NULL);

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
	/* From here: the start's own work is no stall. */
	looplag_start(srv.base);

	event_base_dispatch(srv.base);

	listener_free(listener);
	http_close(web);
	metrics_free(metrics);
	dash_free(dash);
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
	/* A reading under way: its table is dropped with it. */
	if (reload_job.running) {
		pthread_join(reload_job.thread, NULL);
		domains_free(reload_job.d);
	}
	event_free(reload_job.done);
	looplag_stop();
	service_free();
	tls_ctx_free(srv.tls);
	policy_free(srv.policy);
	cluster_free(cluster);
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
