/* SPDX-License-Identifier: ISC */
/* clicksend-relayd: options, config, store, listeners, the event loop with its signals
 * and periodic timer, reload, and an orderly shutdown. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "outbox.h"
#include "poller.h"
#include "provision.h"
#include "route.h"
#include "store-jobs.h"
#include "store-writer.h"
#include "store.h"
#include "systemd.h"
#include "version.h"
#include "xmalloc.h"

#define RELAYD_TICK_MS		1000
#define RELAYD_SHUTDOWN_POLL_MS 50
/*
 * evhttp (2.1) does not tell how many connections are part-way through a request, so
 * after SIGTERM the loop keeps serving for this grace (bounded by shutdown_timeout):
 * a request whose bytes are still arriving is read, stored and answered.
 */
#define RELAYD_SHUTDOWN_GRACE_MS 1000
#define RELAYD_RETENTION_EVERY	 60 /* ticks */
#define RELAYD_RETENTION_BATCH	 1000
/* glibc gives freed memory at the top of a heap back to the kernel past this much. With
 * its default (128 KiB, adjusted on the fly) the store writer's arena gave memory back and
 * took it again about once per delivery, each time an madvise(2) with a TLB shootdown on
 * every CPU: 10-25 % of the CPU a delivery costs, measured. */
#define RELAYD_TRIM_THRESHOLD (4 * 1024 * 1024)
#define RELAYD_PROBE_EVERY    5 /* ticks: the writer's health probe when it is idle */
#define RELAYD_LEADER_EVERY   2 /* ticks: a shared store's leader lock is checked */
/* A lock held by another process (sqlite3 shell, the operator tool) makes the writer
 * wait this long, then the batch fails and its requests get 503 + Retry-After. The
 * loop never waits: its reads use a handle of their own, which gives up quickly. */
#define RELAYD_WRITER_BUSY_MS 2000
#define RELAYD_READ_BUSY_MS   100
#define RELAYD_WRITER_BATCH   512
/* Webhooks waiting on the writer past this many are refused with 503 at once. */
#define RELAYD_WRITER_QUEUE 8192

struct relayd {
	struct event_base *base;
	struct config *cfg;
	struct store *store;  /* the loop's reads */
	struct store *wstore; /* the writer thread's */
	struct store_writer *writer;
	struct ingest *ingest;
	struct http *http;
	struct outbox *outbox; /* owns the configs */
	struct provision *provision;
	struct poller *poller; /* poller_set_active() is its switch */
	struct event *sig_term, *sig_int, *sig_hup, *tick, *stop_poll;
	uint64_t watchdog_usec;
	uint64_t stop_deadline_ms;
	uint64_t stop_grace_ms;
	unsigned ticks;
	int debug; /* -d: debug logging whatever the config says */
	int stopping;
	int retention_running; /* a retention batch is with the writer */
	int shared;	       /* nodes share the store (PostgreSQL) */
	int leader;	       /* this node runs provisioning and retention (always, alone) */
	int leader_asking;     /* a leader check is with the writer */
};

static void
relayd_usage(FILE *f)
{
	fprintf(f,
	    "usage: clicksend-relayd [-c FILE] [-t] [-d] [-V] [-h]\n"
	    "  -c FILE  config file (default %s/clicksend-relay/clicksend-relay.conf)\n"
	    "  -t       check the config, create and migrate the store, and exit\n"
	    "  -d       debug logging\n"
	    "  -V       print the version\n"
	    "  -h       this help\n",
	    SYSCONFDIR);
}

static uint64_t
relayd_now_ms(struct relayd *d)
{
	struct timeval tv;

	event_base_gettimeofday_cached(d->base, &tv);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static struct timeval
relayd_tv(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

static void relayd_retention(struct relayd *);

/* A full batch means more is due: the next one goes at once, so retention keeps up with
 * any rate while each batch stays a short transaction. */
static void
relayd_retention_done(int n, const char *err, void *arg)
{
	struct relayd *d = arg;

	d->retention_running = 0;
	if (n > 0)
		log_info("retention: deleted %d event(s)", n);
	if (n == RELAYD_RETENTION_BATCH && !d->stopping)
		relayd_retention(d);
}

/* Deletes old events whose deliveries are all done, a bounded batch at a time. */
static void
relayd_retention(struct relayd *d)
{
	char before[32];

	if (d->cfg->retention_ms == 0 || d->retention_running || !d->leader)
		return;
	store_time_text(before, -(int64_t)d->cfg->retention_ms);
	d->retention_running = 1;
	store_jobs_retention(d->writer, before, RELAYD_RETENTION_BATCH, relayd_retention_done, d);
}

/* A shared store's leader lock: the node that takes it starts provisioning; one that
 * loses it (its connection broke) is standby until it takes it again. */
static void
relayd_leader_done(int leader, void *arg)
{
	struct relayd *d = arg;
	int was = d->leader;

	d->leader_asking = 0;
	d->leader = leader == 1;
	if (d->stopping || was == d->leader)
		return;
	poller_set_active(d->poller, d->leader);
	if (d->leader) {
		log_notice(
		    "node %s: now the leader (provisioning, polling, retention)", d->cfg->node);
		provision_start(d->provision, d->cfg);
	} else {
		log_notice("node %s: standby (%s)", d->cfg->node,
		    leader == 0 ? "another node holds the leader lock" :
				  "the store is unreachable; the leader lock is lost");
	}
}

/* A shared store: the loop's snapshot each tick, the leader lock every few. */
static void
relayd_tick_shared(struct relayd *d)
{
	store_jobs_refresh(d->writer);
	if (d->leader)
		provision_selftest_tick(d->provision);
	if (d->ticks % RELAYD_LEADER_EVERY == 0 && !d->leader_asking) {
		d->leader_asking = 1;
		store_jobs_leader(d->writer, relayd_leader_done, d);
	}
}

/*
 * The periodic timer (once a second). Its duties:
 * - ping the systemd watchdog when WATCHDOG_USEC is set;
 * - wake the outbox, so retries fall due and rows changed by the operator tool
 *   (retry, replay) are picked up within a second or two;
 * - on the first tick and then once a minute, apply the store's retention;
 * - every few seconds with nothing else to write, probe that the store commits;
 * - with a shared store, refresh the loop's snapshot and check the leader lock.
 */
static void
relayd_tick(evutil_socket_t fd, short what, void *arg)
{
	struct relayd *d = arg;

	if (d->watchdog_usec > 0)
		systemd_notify("WATCHDOG=1");
	if (d->stopping)
		return;
	outbox_wake(d->outbox);
	if (d->shared)
		relayd_tick_shared(d);
	if (d->ticks % RELAYD_PROBE_EVERY == 0 && store_writer_queued(d->writer) == 0)
		store_jobs_probe(d->writer);
	if (d->ticks++ % RELAYD_RETENTION_EVERY == 0)
		relayd_retention(d);
}

static void
relayd_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct relayd *d = arg;
	struct timeval tv = relayd_tv(RELAYD_SHUTDOWN_POLL_MS);
	uint64_t now = relayd_now_ms(d);

	if ((http_in_flight(d->http) == 0 && outbox_in_flight(d->outbox) == 0 &&
		now >= d->stop_grace_ms) ||
	    now >= d->stop_deadline_ms) {
		if (outbox_in_flight(d->outbox) > 0)
			log_warnx("shutdown: %d delivery attempt(s) cut short; they stay pending",
			    outbox_in_flight(d->outbox));
		/* one more short turn lets queued answers reach their sockets */
		event_base_loopexit(d->base, &tv);
		return;
	}
	event_add(d->stop_poll, &tv);
}

static void
relayd_shutdown(struct relayd *d, const char *why)
{
	struct timeval tv = relayd_tv(0);

	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("%s: shutting down", why);
	systemd_notify("STOPPING=1");
	http_stop_accepting(d->http);
	outbox_stop(d->outbox);
	poller_set_active(d->poller, 0);
	d->stop_deadline_ms = relayd_now_ms(d) + d->cfg->shutdown_timeout_ms;
	d->stop_grace_ms = relayd_now_ms(d) +
	    (d->cfg->shutdown_timeout_ms < RELAYD_SHUTDOWN_GRACE_MS ? d->cfg->shutdown_timeout_ms :
								      RELAYD_SHUTDOWN_GRACE_MS);
	event_add(d->stop_poll, &tv);
}

static void
relayd_sig_stop(evutil_socket_t sig, short what, void *arg)
{
	relayd_shutdown(arg, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void
relayd_warn_restart_needed(const struct config *old, const struct config *new)
{
	size_t i;
	int same = old->nlisten == new->nlisten;

	for (i = 0; same && i < old->nlisten; i++)
		same = strcmp(old->listen[i], new->listen[i]) == 0;
	if (!same)
		log_warnx("reload: listen addresses changed; they take effect after a restart");
	if (strcmp(old->store_path, new->store_path) != 0 ||
	    (old->store_url == NULL) != (new->store_url == NULL) ||
	    (old->store_url != NULL && strcmp(old->store_url, new->store_url) != 0) ||
	    strcmp(old->node, new->node) != 0)
		log_warnx("reload: the store changed; it takes effect after a restart");
	if (old->synchronous_full != new->synchronous_full)
		log_warnx("reload: store synchronous changed; it takes effect after a restart");
}

/* SIGHUP: a new config replaces the old one only when it is valid. */
static void
relayd_sig_hup(evutil_socket_t sig, short what, void *arg)
{
	struct relayd *d = arg;
	struct config *nc;

	if (d->stopping)
		return;
	systemd_notify("RELOADING=1");
	if ((nc = config_load(d->cfg->file)) == NULL) {
		log_warnx("reload: %s is not valid; keeping the running config", d->cfg->file);
		systemd_notify("READY=1\nSTATUS=reload rejected: config not valid");
		return;
	}
	relayd_warn_restart_needed(d->cfg, nc);
	http_set_config(d->http, nc);
	if (!d->debug)
		log_set_level(nc->log_level);
	outbox_set_config(d->outbox, nc); /* frees the old config when it is unused */
	d->cfg = nc;
	if (d->leader)
		provision_start(d->provision, nc);
	poller_start(d->poller, nc);
	log_info("reload: %s loaded", nc->file);
	systemd_notify("READY=1\nSTATUS=running (config reloaded)");
}

static struct event *
relayd_event(struct relayd *d, int fd, short what, event_callback_fn cb)
{
	struct event *ev = event_new(d->base, fd, what, cb, d);

	if (ev == NULL)
		fatalx("event_new failed");
	return ev;
}

static void
relayd_events(struct relayd *d)
{
	struct timeval tv = relayd_tv(RELAYD_TICK_MS);

	d->sig_term = relayd_event(d, SIGTERM, EV_SIGNAL | EV_PERSIST, relayd_sig_stop);
	d->sig_int = relayd_event(d, SIGINT, EV_SIGNAL | EV_PERSIST, relayd_sig_stop);
	d->sig_hup = relayd_event(d, SIGHUP, EV_SIGNAL | EV_PERSIST, relayd_sig_hup);
	d->tick = relayd_event(d, -1, EV_PERSIST, relayd_tick);
	d->stop_poll = relayd_event(d, -1, 0, relayd_stop_poll);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	event_add(d->tick, &tv);
}

static void
relayd_free(struct relayd *d)
{
	struct event *evs[] = { d->sig_term, d->sig_int, d->sig_hup, d->tick, d->stop_poll };
	size_t i;

	if (d->writer != NULL)
		store_writer_drain(d->writer); /* answers and outcomes still on their way */
	http_free(d->http);
	ingest_free(d->ingest);
	provision_free(d->provision);
	poller_free(d->poller);
	if (d->outbox != NULL)
		outbox_free(d->outbox); /* and every config */
	else
		config_free(d->cfg);
	store_writer_free(d->writer);
	store_close(d->wstore);
	for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (evs[i] != NULL)
			event_free(evs[i]);
	}
	store_close(d->store);
	if (d->base != NULL)
		event_base_free(d->base);
}

/* libevent's own messages go through our log. */
static void
relayd_libevent_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

/* The daemon takes the store's lock (one daemon per store) on the writer's handle and
 * opens a second one for the loop's reads; -t only checks the store. An exit status, or
 * -1 when the store is open. */
static int
relayd_open_store(struct relayd *d, int check)
{
	const struct store_target t = { .path = d->cfg->store_path,
		.url = d->cfg->store_url,
		.node = d->cfg->node,
		.synchronous_full = d->cfg->synchronous_full };
	char *cause = NULL;

	errno = 0;
	if (check)
		d->store = store_open_for(&t, 0, &cause);
	else if ((d->wstore = store_open_for(&t, 1, &cause)) != NULL)
		d->store = store_open_reader(d->wstore, &cause);
	if (d->store != NULL)
		return -1;
	log_error("store %s", cause); /* stderr, or the journal under systemd */
	free(cause);
	return errno == EBUSY || errno == ECONNREFUSED ? EX_UNAVAILABLE : EX_CANTCREAT;
}

static void
relayd_route(void *arg, struct webhook_event *ev)
{
	struct relayd *d = arg;

	route_event(d->cfg, ev);
}

static const char *
relayd_provisioning(void *arg)
{
	struct relayd *d = arg;

	return d->leader ? provision_status(d->provision) : "standby";
}

static const char *
relayd_selftest(void *arg)
{
	return provision_selftest_status(((struct relayd *)arg)->provision);
}

static void
relayd_event_stored(void *arg, const struct webhook_event *ev)
{
	provision_event_stored(((struct relayd *)arg)->provision, ev);
}

/* A standby node of a shared store does not poll (the leader does): its poller is
 * switched off and says "off", one of the values clicksend-relayd(8) gives for /healthz. */
static const char *
relayd_poll(void *arg)
{
	return poller_status(((struct relayd *)arg)->poller);
}

static void
relayd_wake_outbox(void *arg)
{
	struct relayd *d = arg;

	outbox_wake(d->outbox);
}

/* libevent's default clock steps in 4 ms on this kind of kernel; retries and deadlines
 * want the precise one. */
static struct event_base *
relayd_base_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;

	if (ec == NULL)
		return NULL;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/* Connections, relays and scripts all take descriptors: use all the hard limit allows
 * (systemd's LimitNOFILE= sets it). The HTTP server caps its connections below it. */
static void
relayd_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit RLIMIT_NOFILE");
	else
		log_debug("open files limit raised to %llu", (unsigned long long)rl.rlim_cur);
}

static int
relayd_run(struct relayd *d)
{
	relayd_raise_nofile();
	if ((d->base = relayd_base_new()) == NULL)
		fatalx("event_base_new failed");
	store_set_busy_timeout(d->wstore, RELAYD_WRITER_BUSY_MS);
	store_set_busy_timeout(d->store, RELAYD_READ_BUSY_MS);
	d->shared = store_shared(d->wstore);
	/* before the writer thread owns the handle: the first snapshot and the lock */
	d->leader = !d->shared || (store_refresh(d->wstore), store_leader(d->wstore) == 1);
	d->writer = store_writer_new(d->base, &store_write_ops, d->wstore, RELAYD_WRITER_BATCH);
	d->outbox = outbox_new(d->base, d->store, d->writer, d->cfg);
	d->ingest = ingest_new(d->writer, RELAYD_WRITER_QUEUE);
	ingest_set_commit_hook(d->ingest, relayd_wake_outbox, d);
	d->http = http_new(d->base, d->cfg, d->ingest, d->store);
	d->provision = provision_new(d->base, d->writer);
	d->poller = poller_new(d->base, d->ingest,
	    &(struct poller_hooks){
		.route = relayd_route, .event_stored = relayd_event_stored, .arg = d });
	http_set_status_provider(d->http,
	    &(struct http_status_provider){ .provisioning = relayd_provisioning,
		.selftest = relayd_selftest,
		.poll = relayd_poll,
		.event_stored = relayd_event_stored,
		.route = relayd_route,
		.arg = d });
	if (http_listen(d->http) == -1)
		return EX_UNAVAILABLE;
	relayd_events(d);
	d->watchdog_usec = systemd_watchdog_usec();
	systemd_notify("READY=1\nSTATUS=running");
	if (d->shared)
		log_notice("clicksend-relayd %s started, store postgresql, node %s (%s)",
		    RELAY_VERSION, d->cfg->node, d->leader ? "leader" : "standby");
	else
		log_notice(
		    "clicksend-relayd %s started, store %s", RELAY_VERSION, d->cfg->store_path);
	if (d->leader)
		provision_start(d->provision, d->cfg);
	poller_set_active(d->poller, d->leader);
	poller_start(d->poller, d->cfg);
	if (event_base_dispatch(d->base) == -1)
		return EX_SOFTWARE;
	store_writer_drain(d->writer);
	log_notice("clicksend-relayd stopped");
	return EX_OK;
}

struct relayd_options {
	const char *file;
	int check, debug;
};

/* -1 to go on, else the exit status (-V, -h, a usage error). */
static int
relayd_options(int argc, char **argv, struct relayd_options *o)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:tdVh")) != -1) {
		switch (ch) {
		case 'c':
			o->file = optarg;
			break;
		case 't':
			o->check = 1;
			break;
		case 'd':
			o->debug = 1;
			break;
		case 'V':
			printf("clicksend-relayd %s\n", RELAY_VERSION);
			return EX_OK;
		case 'h':
			relayd_usage(stdout);
			return EX_OK;
		default:
			relayd_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		relayd_usage(stderr);
		return EX_USAGE;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	struct relayd d = { 0 };
	struct relayd_options o = { SYSCONFDIR "/clicksend-relay/clicksend-relay.conf", 0, 0 };
	int rc;

	if ((rc = relayd_options(argc, argv, &o)) != -1)
		return rc;
	mallopt(M_TRIM_THRESHOLD, RELAYD_TRIM_THRESHOLD);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write (EFBIG), not the daemon */
	log_init(o.debug ? LOG_DEBUG : LOG_INFO, systemd_stderr_is_journal());
	event_set_log_callback(relayd_libevent_log);
	if ((d.cfg = config_load(o.file)) == NULL)
		return EX_CONFIG;
	if (!(d.debug = o.debug))
		log_set_level(d.cfg->log_level);
	if ((rc = relayd_open_store(&d, o.check)) != -1) {
		relayd_free(&d);
		return rc;
	}
	if (o.check) {
		printf("%s: configuration OK, store %s ready\n", o.file,
		    d.cfg->store_url != NULL ? "postgresql" : d.cfg->store_path);
		relayd_free(&d);
		return EX_OK;
	}
	rc = relayd_run(&d);
	relayd_free(&d);
	return rc;
}
