/* SPDX-License-Identifier: ISC */
/* The HTTP server on evhttp: listeners (addresses, unix sockets, systemd sockets), limits,
 * the life of one request context, plain-text answers, and /healthz and /metrics. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "config.h"
#include "http-internal.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "systemd.h"
#include "xmalloc.h"

/*
 * libevent 2.1 answers a body over its own limit with an HTML page and offers no hook
 * to change that. So evhttp reads up to a few times max_body_size and the request
 * handler answers 413 with our plain line; only larger bodies meet libevent's page.
 */
static size_t
http_read_limit(size_t max_body_size)
{
	size_t limit = max_body_size * 4;

	return limit < HTTP_READ_LIMIT_MIN ? HTTP_READ_LIMIT_MIN : limit;
}

static void
http_apply_limits(struct http *h)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(h->cfg->request_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(h->cfg->request_timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(h->evh, &tv);
	evhttp_set_max_body_size(h->evh, (ev_ssize_t)http_read_limit(h->cfg->max_body_size));
	evhttp_set_max_headers_size(h->evh, 16384);
}

struct http *
http_new(struct event_base *base, const struct config *cfg, struct ingest *in, struct store *st)
{
	struct http *h = xcalloc(1, sizeof(*h));

	h->base = base;
	h->cfg = cfg;
	h->ingest = in;
	h->store = st;
	if ((h->evh = evhttp_new(base)) == NULL)
		fatalx("http: evhttp_new failed");
	evhttp_set_allowed_methods(h->evh,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
		EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH |
		EVHTTP_REQ_CONNECT);
	evhttp_set_default_content_type(h->evh, "text/plain; charset=utf-8");
	evhttp_set_gencb(h->evh, http_request_cb, h);
	evhttp_set_flags(h->evh, EVHTTP_SERVER_LINGERING_CLOSE);
	http_apply_limits(h);
	h->conns = http_conns_new(h);
	return h;
}

void
http_set_config(struct http *h, const struct config *cfg)
{
	h->cfg = cfg;
	http_apply_limits(h);
	http_conns_configure(h->conns, cfg);
}

void
http_set_status_provider(struct http *h, const struct http_status_provider *p)
{
	h->status = *p;
}

static int
http_keep_bound(struct http *h, struct evhttp_bound_socket *b, const char *what)
{
	if (b == NULL) {
		log_warnx("http: cannot listen on %s: %s", what, strerror(errno));
		return -1;
	}
	if (h->nbound == HTTP_MAX_BOUND) {
		log_warnx("http: too many listeners, %s ignored", what);
		return -1;
	}
	h->bound[h->nbound++] = b;
	http_conns_watch(h->conns, b);
	return 0;
}

/* Whether a process accepts connections on the unix socket at SUN (a stale socket
 * left by a crash refuses them): its socket is not ours to unlink. */
static int
http_unix_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), alive;

	if (fd == -1)
		return 0;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EAGAIN;
	close(fd);
	return alive;
}

static int
http_listen_unix(struct http *h, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct evconnlistener *l;
	struct stat sb;

	if (strlen(path) >= sizeof(sun.sun_path) || h->nunix_paths == HTTP_MAX_BOUND) {
		log_warnx("http: unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
		if (http_unix_alive(&sun)) {
			log_warnx(
			    "http: cannot listen on unix:%s: another process is listening on it",
			    path);
			return -1;
		}
		unlink(path);
	}
	l = evconnlistener_new_bind(h->base, NULL, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, (struct sockaddr *)&sun,
	    sizeof(sun));
	if (l == NULL) {
		log_warnx("http: cannot listen on unix:%s: %s", path, strerror(errno));
		return -1;
	}
	/* the directory guards access; the proxy runs as another user */
	if (chmod(path, 0666) == -1)
		log_warn("http: chmod %s", path);
	h->unix_paths[h->nunix_paths++] = xstrdup(path);
	return http_keep_bound(h, evhttp_bind_listener(h->evh, l), path);
}

/* "HOST:PORT" or "[V6]:PORT"; the config checked the syntax. */
static int
http_listen_inet(struct http *h, const char *spec)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - spec)) >= sizeof(host))
		return -1;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	return http_keep_bound(
	    h, evhttp_bind_socket_with_handle(h->evh, host, (ev_uint16_t)atoi(colon + 1)), spec);
}

static int
http_listen_systemd(struct http *h, int n)
{
	int fd, start = systemd_listen_fds_start();

	for (fd = start; fd < start + n; fd++) {
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
		if (http_keep_bound(
			h, evhttp_accept_socket_with_handle(h->evh, fd), "systemd socket"))
			return -1;
	}
	log_info("http: serving %d socket(s) passed by systemd", n);
	return 0;
}

int
http_listen(struct http *h)
{
	int n = systemd_listen_fds();
	size_t i;

	if (n > 0)
		return http_listen_systemd(h, n);
	for (i = 0; i < h->cfg->nlisten; i++) {
		const char *spec = h->cfg->listen[i];
		int rc = strncmp(spec, "unix:", 5) == 0 ? http_listen_unix(h, spec + 5) :
							  http_listen_inet(h, spec);
		if (rc == -1)
			return -1;
		log_info("http: listening on %s", spec);
	}
	return 0;
}

void
http_stop_accepting(struct http *h)
{
	int i;

	for (i = 0; i < h->nbound; i++)
		evhttp_del_accept_socket(h->evh, h->bound[i]);
	h->nbound = 0;
}

int
http_in_flight(const struct http *h)
{
	return h->in_flight;
}

void
http_free(struct http *h)
{
	int i;

	if (h == NULL)
		return;
	evhttp_free(h->evh);
	http_conns_free(h->conns);
	for (i = 0; i < h->nunix_paths; i++) {
		unlink(h->unix_paths[i]);
		free(h->unix_paths[i]);
	}
	free(h);
}

static double
http_elapsed(const struct timeval *start)
{
	struct timeval now, d;

	evutil_gettimeofday(&now, NULL);
	evutil_timersub(&now, start, &d);
	return (double)d.tv_sec + (double)d.tv_usec / 1e6;
}

void
http_ctx_done(struct http_ctx *c)
{
	if (c->evcon != NULL)
		evhttp_connection_set_closecb(c->evcon, NULL, NULL);
	c->http->in_flight--;
	free(c);
}

static void
http_reply_buf(struct http_ctx *c, int code, struct evbuffer *body)
{
	metrics_http_response(code);
	metrics_request_duration(http_elapsed(&c->start));
	c->answered = 1;
	if (c->evcon != NULL)
		http_conn_answered(c->http->conns, c->evcon);
	if (c->req != NULL && evhttp_request_get_command(c->req) == EVHTTP_REQ_HEAD) {
		/* the length a GET would get, and no body: libevent 2.1 would send one */
		char len[32];

		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Length", len);
		evbuffer_drain(body, evbuffer_get_length(body));
	}
	if (c->req != NULL)
		evhttp_send_reply(c->req, code, NULL, body);
	http_ctx_done(c);
}

void
http_reply_headers(
    struct http_ctx *c, int code, const char *text, const char *name, const char *value)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL)
		fatalx("http: evbuffer_new failed");
	if (c->req != NULL) {
		struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
		evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
		if (name != NULL)
			evhttp_add_header(out, name, value);
		evbuffer_add_printf(body, "%s\n", text);
	}
	http_reply_buf(c, code, body);
	evbuffer_free(body);
}

void
http_reply(struct http_ctx *c, int code, const char *text)
{
	http_reply_headers(c, code, text, NULL, NULL);
}

/* Answers a text document of the given type (the status endpoints). */
void
http_reply_doc(struct http_ctx *c, int code, const char *type, const char *doc)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL)
		fatalx("http: evbuffer_new failed");
	if (c->req != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type", type);
		evbuffer_add(body, doc, strlen(doc));
	}
	http_reply_buf(c, code, body);
	evbuffer_free(body);
}

static const char *
http_status_text(const char *(*fn)(void *), void *arg)
{
	return fn != NULL ? fn(arg) : "off";
}

static void
http_paused_name(const char *relay, const char *paused_at, const char *reason, void *arg)
{
	(void)paused_at, (void)reason;
	json_gen_string(arg, relay);
}

void
http_healthz(struct http_ctx *c)
{
	struct http *h = c->http;
	struct json_gen *g = json_gen_new();
	long long pending = 0, dead = 0;
	char err[256], *doc;
	int ok = store_health(h->store, &pending, &dead, err, sizeof(err)) == 0;

	if (ok && ingest_health(h->ingest, err, sizeof(err)) == -1)
		ok = 0;

	json_gen_map_open(g);
	json_gen_kv_string(g, "store", ok ? "ok" : err);
	json_gen_kv_integer(g, "pending", pending);
	json_gen_kv_integer(g, "dead", dead);
	json_gen_kv_string(
	    g, "provisioning", http_status_text(h->status.provisioning, h->status.arg));
	json_gen_kv_string(g, "selftest", http_status_text(h->status.selftest, h->status.arg));
	json_gen_kv_string(g, "poll", http_status_text(h->status.poll, h->status.arg));
	json_gen_kv_string(g, "node", h->cfg->node);
	json_gen_string(g, "paused");
	json_gen_array_open(g);
	(void)store_paused_relays(h->store, http_paused_name, g);
	json_gen_array_close(g);
	json_gen_map_close(g);
	doc = json_gen_finish(g, NULL);
	http_reply_doc(c, ok ? 200 : 503, "application/json", doc);
	free(doc);
}

void
http_metrics(struct http_ctx *c)
{
	const struct config *cfg = c->http->cfg;
	struct metrics_relay_gauge *g = xcalloc(cfg->nrelays + 1, sizeof(*g));
	struct metrics_store st;
	size_t i, n = 0;
	char *doc;

	for (i = 0; i < cfg->nrelays; i++) {
		g[n].relay = cfg->relays[i].name;
		if (store_relay_counts(
			c->http->store, g[n].relay, &g[n].pending, &g[n].dead, &g[n].paused) == 0)
			n++;
	}
	ingest_writer_totals(c->http->ingest, &st.batches, &st.items, &st.commits_failed);
	doc = metrics_render(g, n, &st);
	http_reply_doc(c, 200, "text/plain; version=0.0.4; charset=utf-8", doc);
	free(doc);
	free(g);
}
