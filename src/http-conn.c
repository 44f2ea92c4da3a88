/* SPDX-License-Identifier: ISC */
/*
 * The server's connections, which evhttp 2.1 does not let us count or time: every
 * connection's bufferevent is made here (evhttp_set_bevcb) and held by one extra
 * reference, so a sweep four times a second (and soon after we shut one down) sees which
 * ones evhttp has let go; the reference keeps each descriptor open until then, so that
 * its number is not reused under a bufferevent still registered for it.
 *
 * - request_timeout is a deadline: a connection that has not delivered a whole request
 *   that long after it was accepted (or after its last answer) is shut down, however
 *   often it trickles a byte (slowloris); evhttp's own timer only measures idleness.
 * - connections are capped below RLIMIT_NOFILE, leaving descriptors for the store,
 *   relays and scripts: at the cap the oldest idle connection is shed and the listeners
 *   pause until there is room again.
 * - accept() failing (EMFILE, ENFILE, ENOBUFS) pauses the listeners for 250 ms instead
 *   of spinning on a readable socket, with one log line a minute. Out of descriptors,
 *   the cap drops to the connections held; 10 s without such a failure restore it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "config.h"
#include "http-internal.h"
#include "log.h"
#include "xmalloc.h"

#define HTTP_CONN_SWEEP_MS    250
#define HTTP_CONN_PAUSE_MS    250
#define HTTP_CONN_SOON_MS     20 /* after a cut: evhttp has read the EOF by then */
#define HTTP_CONN_LOG_EVERY_S 60
#define HTTP_CONN_RESERVE     32 /* descriptors kept beside relays: store, base, logs */
#define HTTP_CONN_MIN_CAP     8
#define HTTP_CONN_REGROW_S    10 /* after the last accept() out of descriptors */

struct http_conn {
	struct bufferevent *bev;
	struct timeval since; /* accepted, or its last answer: the deadline counts from here */
	int busy;	      /* a whole request is with us, not yet answered */
	int fd;		      /* index in byfd, -1 until known */
	int cut;	      /* shut down by us; waiting for evhttp to let go */
	struct http_conns *http_conns;
	TAILQ_ENTRY(http_conn) entry;
};

struct http_conns {
	struct http *http;
	TAILQ_HEAD(http_conn_list, http_conn) all; /* oldest first */
	struct http_conn **byfd;
	size_t nbyfd;
	size_t count, cap;
	size_t cap_full; /* cap from the limit; cap is lower for a while after EMFILE */
	time_t short_at; /* the last accept() out of descriptors */
	size_t ncut;	 /* of count: shut down, not yet let go by evhttp */
	uint64_t deadline_ms;
	struct event *sweep, *soon, *resume;
	int paused;
	time_t logged_at;
	unsigned long suppressed;
};

static uint64_t
http_conn_age_ms(const struct timeval *since, const struct timeval *now)
{
	struct timeval d;

	evutil_timersub(now, since, &d);
	return d.tv_sec < 0 ? 0 : (uint64_t)d.tv_sec * 1000 + (uint64_t)d.tv_usec / 1000;
}

/* One line a minute about running short of connections; the rest are counted. */
static void
http_conn_log(struct http_conns *cs, const char *what)
{
	time_t now = time(NULL);

	if (cs->logged_at != 0 && now - cs->logged_at < HTTP_CONN_LOG_EVERY_S) {
		cs->suppressed++;
		return;
	}
	log_warnx("http: %s (%zu connections, cap %zu)%s", what, cs->count, cs->cap,
	    cs->suppressed ? "; earlier such events were not logged" : "");
	cs->logged_at = now;
	cs->suppressed = 0;
}

static void
http_conn_listeners(struct http_conns *cs, int on)
{
	struct http *h = cs->http;
	int i;

	if (cs->paused == !on)
		return;
	for (i = 0; i < h->nbound; i++) {
		struct evconnlistener *l = evhttp_bound_socket_get_listener(h->bound[i]);
		if (l != NULL)
			(void)(on ? evconnlistener_enable(l) : evconnlistener_disable(l));
	}
	cs->paused = !on;
}

static void
http_conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conns *cs = arg;

	if (cs->count - cs->ncut < cs->cap)
		http_conn_listeners(cs, 1);
}

static void
http_conn_pause(struct http_conns *cs, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	http_conn_listeners(cs, 0);
	evtimer_add(cs->resume, &tv);
}

static void
http_conn_cut(struct http_conn *c)
{
	int fd = bufferevent_getfd(c->bev);

	if (c->cut)
		return;
	if (fd != -1)
		shutdown(fd, SHUT_RDWR); /* evhttp reads EOF and frees the connection */
	c->cut = 1;
	c->http_conns->ncut++;
	/* our reference keeps the descriptor open until a sweep: make it an early one */
	if (!evtimer_pending(c->http_conns->soon, NULL)) {
		struct timeval tv = { 0, HTTP_CONN_SOON_MS * 1000 };
		evtimer_add(c->http_conns->soon, &tv);
	}
}

/* Sheds the oldest connections that have no request with us, down to 7/8 of the cap;
 * when all of them are busy the listeners pause until the sweep sees room. */
static void
http_conn_make_room(struct http_conns *cs)
{
	size_t target = cs->cap - cs->cap / 8;
	struct http_conn *c;

	TAILQ_FOREACH(c, &cs->all, entry) {
		if (cs->count - cs->ncut <= target)
			break;
		if (!c->busy && !c->cut && bufferevent_getfd(c->bev) != -1)
			http_conn_cut(c);
	}
	if (cs->count - cs->ncut >= cs->cap)
		http_conn_listeners(cs, 0);
}

static void
http_conn_index(struct http_conns *cs, struct http_conn *c)
{
	int fd = bufferevent_getfd(c->bev);

	if (fd < 0 || c->fd == fd)
		return;
	if ((size_t)fd >= cs->nbyfd) {
		size_t n = cs->nbyfd ? cs->nbyfd : 64;
		while (n <= (size_t)fd)
			n *= 2;
		cs->byfd = xreallocarray(cs->byfd, n, sizeof(*cs->byfd));
		memset(cs->byfd + cs->nbyfd, 0, (n - cs->nbyfd) * sizeof(*cs->byfd));
		cs->nbyfd = n;
	}
	cs->byfd[fd] = c;
	c->fd = fd;
}

/* evhttp frees a connection's bufferevent by clearing its callbacks and dropping its
 * reference; ours keeps the object, so a cleared event callback means it is gone. */
static int
http_conn_gone(struct http_conn *c)
{
	bufferevent_event_cb ecb = NULL;

	bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
	return ecb == NULL;
}

static void
http_conn_drop(struct http_conns *cs, struct http_conn *c)
{
	TAILQ_REMOVE(&cs->all, c, entry);
	if (c->fd >= 0 && (size_t)c->fd < cs->nbyfd && cs->byfd[c->fd] == c)
		cs->byfd[c->fd] = NULL;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_decref(c->bev);
	cs->count--;
	if (c->cut)
		cs->ncut--;
	free(c);
}

static void
http_conn_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conns *cs = arg;
	struct http_conn *c, *next;
	struct timeval now;

	evutil_gettimeofday(&now, NULL);
	for (c = TAILQ_FIRST(&cs->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (http_conn_gone(c)) {
			http_conn_drop(cs, c);
			continue;
		}
		http_conn_index(cs, c);
		if (!c->busy && !c->cut && cs->deadline_ms > 0 &&
		    http_conn_age_ms(&c->since, &now) > cs->deadline_ms) {
			log_debug("http: connection without a whole request after %llu ms: closed",
			    (unsigned long long)cs->deadline_ms);
			http_conn_cut(c);
		}
	}
	if (cs->cap < cs->cap_full && time(NULL) - cs->short_at >= HTTP_CONN_REGROW_S)
		cs->cap = cs->cap_full;
	if (cs->paused && cs->count - cs->ncut < cs->cap && !evtimer_pending(cs->resume, NULL))
		http_conn_listeners(cs, 1);
}

static struct bufferevent *
http_conn_bev_cb(struct event_base *base, void *arg)
{
	struct http_conns *cs = arg;
	struct http_conn *c = xcalloc(1, sizeof(*c));

	if ((c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("http: bufferevent_socket_new failed");
	bufferevent_incref(c->bev);
	evutil_gettimeofday(&c->since, NULL);
	c->fd = -1;
	c->http_conns = cs;
	TAILQ_INSERT_TAIL(&cs->all, c, entry);
	if (++cs->count - cs->ncut >= cs->cap) {
		http_conn_log(cs, "connection cap reached: shedding the oldest idle connections");
		http_conn_make_room(cs);
	}
	return c->bev;
}

/* A listener's error callback gets evhttp's argument, not ours: the one server's
 * connections are found here. */
static struct http_conns *http_conns_server;

static void
http_conn_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct http_conns *cs = http_conns_server;
	int err = EVUTIL_SOCKET_ERROR();
	char what[160];

	if (cs == NULL)
		return;

	snprintf(what, sizeof(what), "accept failed: %s; not accepting for %d ms",
	    evutil_socket_error_to_string(err), HTTP_CONN_PAUSE_MS);
	http_conn_log(cs, what);
	if (err == EMFILE || err == ENFILE) {
		/* fewer descriptors than the cap assumed: make the cap what there is, for now */
		if (cs->count - cs->ncut > HTTP_CONN_MIN_CAP && cs->count - cs->ncut < cs->cap)
			cs->cap = cs->count - cs->ncut;
		cs->short_at = time(NULL);
		http_conn_make_room(cs);
	}
	http_conn_pause(cs, HTTP_CONN_PAUSE_MS);
}

static struct http_conn *
http_conn_find(struct http_conns *cs, struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev ? bufferevent_getfd(bev) : -1;
	struct http_conn *c;

	if (fd < 0)
		return NULL;
	if ((size_t)fd < cs->nbyfd && (c = cs->byfd[fd]) != NULL && c->bev == bev)
		return c;
	TAILQ_FOREACH_REVERSE(c, &cs->all, http_conn_list, entry) {
		if (c->bev == bev) {
			http_conn_index(cs, c);
			return c;
		}
	}
	return NULL;
}

void
http_conn_request(struct http_conns *cs, struct evhttp_connection *evcon)
{
	struct http_conn *c = http_conn_find(cs, evcon);

	if (c != NULL)
		c->busy = 1;
}

void
http_conn_answered(struct http_conns *cs, struct evhttp_connection *evcon)
{
	struct http_conn *c = http_conn_find(cs, evcon);

	if (c != NULL) {
		c->busy = 0;
		evutil_gettimeofday(&c->since, NULL);
	}
}

/* Descriptors for everything but connections: a fixed reserve plus what relays use at
 * their concurrency (a socket per HTTP attempt, a pid fd and three pipes per script). */
static size_t
http_conn_cap(const struct config *cfg)
{
	struct rlimit rl;
	size_t reserve = HTTP_CONN_RESERVE, i, limit;

	for (i = 0; i < cfg->nrelays; i++)
		reserve += (size_t)cfg->relays[i].concurrency * (cfg->relays[i].exec ? 4 : 1);
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return 65536;
	limit = (size_t)rl.rlim_cur;
	return limit > reserve + HTTP_CONN_MIN_CAP ? limit - reserve : HTTP_CONN_MIN_CAP;
}

void
http_conns_configure(struct http_conns *cs, const struct config *cfg)
{
	cs->cap = cs->cap_full = http_conn_cap(cfg);
	cs->short_at = 0;
	cs->deadline_ms = cfg->request_timeout_ms;
}

struct http_conns *
http_conns_new(struct http *h)
{
	struct http_conns *cs = xcalloc(1, sizeof(*cs));
	struct timeval tv = { 0, HTTP_CONN_SWEEP_MS * 1000 };

	cs->http = h;
	TAILQ_INIT(&cs->all);
	http_conns_configure(cs, h->cfg);
	if ((cs->sweep = event_new(h->base, -1, EV_PERSIST, http_conn_sweep_cb, cs)) == NULL ||
	    (cs->soon = evtimer_new(h->base, http_conn_sweep_cb, cs)) == NULL ||
	    (cs->resume = evtimer_new(h->base, http_conn_resume_cb, cs)) == NULL)
		fatalx("http: event_new failed");
	evtimer_add(cs->sweep, &tv);
	evhttp_set_bevcb(h->evh, http_conn_bev_cb, cs);
	return cs;
}

/* Each new listener reports accept() errors here. */
void
http_conns_watch(struct http_conns *cs, struct evhttp_bound_socket *b)
{
	struct evconnlistener *l = evhttp_bound_socket_get_listener(b);

	http_conns_server = cs;
	if (l != NULL)
		evconnlistener_set_error_cb(l, http_conn_accept_error_cb);
}

/* After evhttp_free: every bufferevent has been let go; drop our references. */
void
http_conns_free(struct http_conns *cs)
{
	struct http_conn *c;

	if (cs == NULL)
		return;
	if (http_conns_server == cs)
		http_conns_server = NULL;
	while ((c = TAILQ_FIRST(&cs->all)) != NULL)
		http_conn_drop(cs, c);
	event_free(cs->sweep);
	event_free(cs->soon);
	event_free(cs->resume);
	free(cs->byfd);
	free(cs);
}
