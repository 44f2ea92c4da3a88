/* SPDX-License-Identifier: ISC */
/* One incoming request: who the client is (trusted proxies, allow_from), which route it
 * takes (status endpoints, base_path, token, kind path), method and content type checks,
 * decoding, and handing the events to the ingest queue; answered after the commit. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <syslog.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "decode.h"
#include "http-internal.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

#define HTTP_ALLOW_WEBHOOK "GET, POST"
#define HTTP_ALLOW_STATUS  "GET, HEAD"
#define HTTP_XFF_MAX	   4096 /* bytes of X-Forwarded-For, all lines together */

/*
 * The client went away before its answer. libevent then detaches the request from the
 * connection and leaves it to us: the answer later goes to evhttp_send_reply, which
 * frees a detached request instead of sending. Only the connection is gone.
 */
static void
http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_ctx *c = arg;

	c->evcon = NULL;
}

static void
http_peer_text(struct evhttp_connection *evcon, char *out, size_t outlen)
{
	const struct sockaddr *sa = evhttp_connection_get_addr(evcon);

	out[0] = '\0';
	if (sa == NULL || sa->sa_family == AF_UNIX)
		snprintf(out, outlen, "%s", sa ? "unix" : "");
	else if (sa->sa_family == AF_INET)
		evutil_inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, outlen);
	else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			evutil_inet_ntop(AF_INET, &a->s6_addr[12], out, outlen);
		else
			evutil_inet_ntop(AF_INET6, a, out, outlen);
	}
}

static int
http_is_addr(const char *s)
{
	unsigned char a[16];

	return evutil_inet_pton(AF_INET, s, a) == 1 || evutil_inet_pton(AF_INET6, s, a) == 1;
}

static int
http_xff_too_long(struct evhttp_request *req)
{
	struct evkeyval *kv;
	size_t total = 0;

	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		if (strcasecmp(kv->key, "X-Forwarded-For") == 0)
			total += strlen(kv->value) + 1;
	}
	return total > HTTP_XFF_MAX;
}

/* Every X-Forwarded-For line joined with ',' in order (a proxy may append its own
 * line rather than extend the client's); NULL when there is none. */
static char *
http_xff_joined(struct evhttp_request *req)
{
	struct evkeyvalq *hs = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	char *all = NULL, *next;

	TAILQ_FOREACH(kv, hs, next) {
		if (strcasecmp(kv->key, "X-Forwarded-For") != 0)
			continue;
		if (all == NULL)
			all = xstrdup(kv->value);
		else {
			xasprintf(&next, "%s,%s", all, kv->value);
			free(all);
			all = next;
		}
	}
	return all;
}

/* One hop of X-Forwarded-For without the blanks around it (in place). */
static char *
http_xff_hop(char *hop)
{
	size_t n;

	hop += strspn(hop, " \t");
	n = strlen(hop);
	while (n > 0 && (hop[n - 1] == ' ' || hop[n - 1] == '\t'))
		n--;
	hop[n] = '\0';
	return hop;
}

/*
 * Walks X-Forwarded-For from the right, skipping trusted hops; keeps the peer when the
 * peer is not a trusted proxy. 0 with the client's address; -1 when the header cannot
 * be used (too long: 400) and 1 when a hop is not exactly one address (empty, "unknown",
 * "ADDR:PORT", two words), so that allow_from fails closed instead of judging the proxy.
 */
static int
http_client_addr(const struct config *cfg, struct evhttp_request *req, char *addr, size_t len)
{
	char *copy, *p;
	int rc = 0;

	if (strcmp(addr, "unix") != 0 &&
	    config_cidr_match_text(cfg->trusted_proxies, cfg->ntrusted_proxies, addr) != 1)
		return 0;
	if (http_xff_too_long(req))
		return -1;
	if ((copy = http_xff_joined(req)) == NULL)
		return 0;
	for (;;) {
		char *hop = http_xff_hop((p = strrchr(copy, ',')) != NULL ? p + 1 : copy);
		if (!http_is_addr(hop)) {
			rc = 1;
			break;
		}
		snprintf(addr, len, "%s", hop);
		if (config_cidr_match_text(cfg->trusted_proxies, cfg->ntrusted_proxies, hop) != 1 ||
		    p == NULL)
			break;
		*p = '\0';
	}
	free(copy);
	return rc;
}

static int
http_token_equal(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b), i;
	unsigned char diff = alen != blen;

	for (i = 0; i < alen && i < blen; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* The kind for a path below base_path (and the token), or NULL. */
static const struct webhook_kind *
http_route_kind(const struct config *cfg, const char *path)
{
	size_t bl = strlen(cfg->base_path);
	const char *rest, *slash;

	if (strncmp(path, cfg->base_path, bl) != 0 || path[bl] != '/')
		return NULL;
	rest = path + bl;
	if (cfg->token != NULL) {
		slash = strchr(rest + 1, '/');
		if (slash == NULL ||
		    !http_token_equal(rest + 1, (size_t)(slash - rest - 1), cfg->token))
			return NULL;
		rest = slash;
	}
	return webhook_kind_by_path(rest);
}

/* The webhook format for a POST by its media type; -1 for an unsupported one. */
static int
http_post_format(struct evhttp_request *req)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t n;

	if (ct == NULL)
		return -1;
	ct += strspn(ct, " \t");
	n = strcspn(ct, "; \t");
	if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
		return FORMAT_JSON;
	if (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0)
		return FORMAT_POST;
	return -1;
}

static void
http_stored_cb(int result, struct webhook_event *evs, size_t n, void *arg)
{
	struct http_ctx *c = arg;
	struct http *h = c->http;
	size_t i;

	if (result != 0) {
		http_reply_headers(c, 503, "store unavailable, retry later", "Retry-After", "5");
		return;
	}
	for (i = 0; i < n; i++) {
		metrics_event_received(evs[i].kind->id, evs[i].format);
		if (evs[i].duplicate)
			metrics_event_duplicate(evs[i].kind->id);
		/* duplicates too: ClickSend's test items may reuse a message_id */
		if (h->status.event_stored != NULL)
			h->status.event_stored(h->status.arg, &evs[i]);
		log_ctx(evs[i].duplicate ? LOG_INFO : LOG_DEBUG, evs[i].id, NULL,
		    "%s %s event from %s%s", evs[i].kind->name, webhook_format_name(evs[i].format),
		    evs[i].remote_addr, evs[i].duplicate ? " (duplicate)" : "");
	}
	http_reply(c, 200, "OK");
}

/* Pulls the body or query, decodes it and queues the events. */
static void
http_webhook(struct http_ctx *c, const struct webhook_kind *kind, int format, const char *addr)
{
	struct evhttp_request *req = c->req;
	struct webhook_event *evs;
	char err[256];
	const char *data;
	size_t len;
	int n, i;

	if (format == FORMAT_GET) {
		data = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		len = data ? strlen(data) : 0;
	} else {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		if ((len = evbuffer_get_length(in)) > c->http->cfg->max_body_size) {
			http_reply(c, 413, "body larger than max_body_size");
			return;
		}
		data = len ? (const char *)evbuffer_pullup(in, -1) : "";
	}
	if (len == 0) {
		http_reply(c, 400, format == FORMAT_GET ? "no query string" : "empty body");
		return;
	}
	if ((n = decode_events(kind, format, data, len, &evs, err, sizeof(err))) < 0) {
		log_info("http: %s from %s rejected: %s", kind->name, addr, err);
		http_reply(c, 400, err);
		return;
	}
	for (i = 0; i < n; i++) {
		snprintf(evs[i].remote_addr, sizeof(evs[i].remote_addr), "%s", addr);
		if (c->http->status.route != NULL)
			c->http->status.route(c->http->status.arg, &evs[i]);
	}
	if (ingest_submit(c->http->ingest, evs, (size_t)n, http_stored_cb, c) == -1)
		http_reply_headers(c, 503, "store busy, retry later", "Retry-After", "1");
}

static void
http_dispatch_status(struct http_ctx *c, const char *path, enum evhttp_cmd_type m)
{
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD)
		http_reply_headers(c, 405, "method not allowed", "Allow", HTTP_ALLOW_STATUS);
	else if (strcmp(path, "/healthz") == 0)
		http_healthz(c);
	else
		http_metrics(c);
}

static void
http_dispatch(struct http_ctx *c, const char *path, const char *addr)
{
	const struct config *cfg = c->http->cfg;
	enum evhttp_cmd_type m = evhttp_request_get_command(c->req);
	const struct webhook_kind *kind;
	int format;

	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
		http_dispatch_status(c, path, m);
		return;
	}
	if ((kind = http_route_kind(cfg, path)) == NULL) {
		http_reply(c, 404, "not found");
		return;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_POST) {
		http_reply_headers(c, 405, "method not allowed", "Allow", HTTP_ALLOW_WEBHOOK);
		return;
	}
	format = m == EVHTTP_REQ_GET ? FORMAT_GET : http_post_format(c->req);
	if (format < 0) {
		http_reply(c, 415, "unsupported content type");
		return;
	}
	if (format != FORMAT_GET &&
	    !decode_charset_ok(
		evhttp_find_header(evhttp_request_get_input_headers(c->req), "Content-Type"))) {
		http_reply(c, 415, "unsupported charset (only utf-8)");
		return;
	}
	http_webhook(c, kind, format, addr);
}

/*
 * libevent reads a body by the first Content-Length and ignores the others, and by
 * chunks when Transfer-Encoding is present: a request that says two things about its
 * length is refused, and its connection closed, rather than guessed at.
 */
static int
http_framing_bad(struct evhttp_request *req)
{
	struct evkeyval *kv;
	const char *cl = NULL;
	int te = 0;

	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		if (strcasecmp(kv->key, "Transfer-Encoding") == 0)
			te = 1;
		if (strcasecmp(kv->key, "Content-Length") != 0)
			continue;
		if (cl != NULL && strcmp(cl, kv->value) != 0)
			return 1;
		cl = kv->value;
	}
	return te && cl != NULL;
}

void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	struct http_ctx *c = xcalloc(1, sizeof(*c));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	char addr[64];
	int known;

	c->http = h;
	c->req = req;
	c->evcon = evhttp_request_get_connection(req);
	evutil_gettimeofday(&c->start, NULL);
	h->in_flight++;
	if (c->evcon != NULL) {
		evhttp_connection_set_closecb(c->evcon, http_conn_closed, c);
		http_conn_request(h->conns, c->evcon);
	}
	if (http_framing_bad(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		http_reply(c, 400, "conflicting Content-Length or Transfer-Encoding headers");
		return;
	}
	http_peer_text(c->evcon, addr, sizeof(addr));
	if ((known = http_client_addr(h->cfg, req, addr, sizeof(addr))) == -1) {
		http_reply(c, 400, "X-Forwarded-For too long");
		return;
	}
	/* a unix-socket client with no forwarded address is the local proxy itself */
	if (h->cfg->nallow_from > 0 &&
	    (known == 1 ||
		(strcmp(addr, "unix") != 0 &&
		    config_cidr_match_text(h->cfg->allow_from, h->cfg->nallow_from, addr) != 1))) {
		log_info("http: %s refused by allow_from%s", addr,
		    known == 1 ? " (X-Forwarded-For names no address)" : "");
		http_reply(c, 403, "forbidden");
		return;
	}
	http_dispatch(c, path && path[0] ? path : "/", addr);
}
