/* SPDX-License-Identifier: ISC */
/*
 * libcurl for the daemon and the tool, the only file that includes <curl/curl.h>: the
 * multi interface driven by the event_base (CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION: sockets and the timer watched for libcurl, finished transfers
 * called back from the loop), and the opaque requests of curl-loop.h: an easy handle with
 * safe defaults, what to send (method, URL, headers, body, timeouts, credentials), the
 * answer kept as it arrives (body bounded, headers of the final response) and its outcome;
 * and libcurl's URL parser as a check for config values. No curl_easy_perform, no threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "curl-loop.h"
#include "log.h"
#include "xmalloc.h"

struct curl_loop_sock;
struct event;
struct event_base;

struct curl_hdr {
	char *name;
	char *value;
};

enum curl_req_state {
	REQ_NEW,
	REQ_IN_FLIGHT,
	REQ_DONE
};

struct curl_req {
	struct curl_loop *loop;
	TAILQ_ENTRY(curl_req) entry; /* every request of the loop */
	CURL *easy;
	enum curl_req_state state;
	char label[72];

	/* what to send */
	enum curl_req_method method;
	struct curl_slist *headers;
	char *body; /* NULL: none set */
	size_t bodylen;
	uint64_t timeout_ms, connect_ms;
	curl_req_done_cb done;
	void *arg;

	/* the answer */
	uint64_t started_ms, elapsed_ms;
	enum curl_req_outcome outcome;
	int status;
	char *resp;
	size_t resplen, respcap, respmax;
	int truncated;
	struct curl_hdr *hdrs;
	size_t nhdrs;
	char errbuf[CURL_ERROR_SIZE];
	char error[CURL_ERROR_SIZE + 32];
};

struct curl_loop {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	LIST_HEAD(, curl_loop_sock) socks;
	TAILQ_HEAD(, curl_req) reqs;
	int in_flight;
	int dispatching; /* inside curl_loop_action: free is deferred */
	int dying;
};

#define CURL_REQ_MAX_HEADERS 100 /* response headers kept; the rest are ignored */

static void curl_req_classify(struct curl_req *, CURLcode);

/* One socket libcurl asked us to watch; curl_multi_assign ties it to the socket. */
struct curl_loop_sock {
	struct curl_loop *loop;
	struct event *ev;
	LIST_ENTRY(curl_loop_sock) entry;
};

static unsigned curl_loop_users; /* loops alive: curl_global_init once, cleanup at the end */

/* Monotonic milliseconds, for elapsed times. */
static uint64_t
curl_loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A transfer is over: take it out of the multi, then call back. REQ may be freed by then. */
static void
curl_loop_finish(struct curl_loop *loop, struct curl_req *req, CURLcode rc)
{
	curl_req_classify(req, rc);
	req->elapsed_ms = curl_loop_now_ms() - req->started_ms;
	curl_multi_remove_handle(loop->multi, req->easy);
	req->state = REQ_DONE;
	loop->in_flight--;
	log_debug("curl: %s: %s in %llu ms", req->label,
	    req->outcome == CURL_REQ_ANSWERED ? "answered" : req->error,
	    (unsigned long long)req->elapsed_ms);
	req->done(req, req->arg);
}

/* Call back for every finished transfer; outside any libcurl callback, so re-entry is fine. */
static void
curl_loop_check(struct curl_loop *loop)
{
	CURLMsg *msg;
	CURL *easy;
	CURLcode rc;
	struct curl_req *req;
	void *priv;
	int left;

	while (!loop->dying && (msg = curl_multi_info_read(loop->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		rc = msg->data.result;
		if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
			fatalx("curl: finished transfer without its request");
		req = priv;
		curl_loop_finish(loop, req, rc);
	}
}

static void curl_loop_destroy(struct curl_loop *);

/* Let libcurl act on a socket (or its timeout), then report what finished. */
static void
curl_loop_action(struct curl_loop *loop, curl_socket_t fd, int flags)
{
	CURLMcode mc;
	int running;

	loop->dispatching++;
	if ((mc = curl_multi_socket_action(loop->multi, fd, flags, &running)) != CURLM_OK)
		log_warnx("curl: socket action: %s", curl_multi_strerror(mc));
	curl_loop_check(loop);
	loop->dispatching--;
	if (loop->dying && loop->dispatching == 0)
		curl_loop_destroy(loop);
}

static void
curl_loop_event_cb(evutil_socket_t fd, short events, void *arg)
{
	struct curl_loop_sock *cs = arg;
	int flags = 0;

	if (events & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_loop_action(cs->loop, fd, flags);
}

static void
curl_loop_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	curl_loop_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void
curl_loop_sock_free(struct curl_loop_sock *cs)
{
	LIST_REMOVE(cs, entry);
	event_free(cs->ev);
	free(cs);
}

/* CURLMOPT_SOCKETFUNCTION: watch S for what libcurl wants, or stop watching it. */
static int
curl_loop_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct curl_loop *loop = userp;
	struct curl_loop_sock *cs = socketp;
	short events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL)
			curl_loop_sock_free(cs);
		return 0;
	}
	if (cs == NULL) {
		cs = xcalloc(1, sizeof(*cs));
		cs->loop = loop;
		if ((cs->ev = event_new(loop->base, s, 0, curl_loop_event_cb, cs)) == NULL)
			fatalx("curl: event_new failed");
		LIST_INSERT_HEAD(&loop->socks, cs, entry);
		curl_multi_assign(loop->multi, s, cs);
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	event_del(cs->ev);
	event_assign(cs->ev, loop->base, s, events, curl_loop_event_cb, cs);
	if (events != EV_PERSIST)
		event_add(cs->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: only (re)arm our timer; libcurl is acted on when it fires. */
static int
curl_loop_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
	struct curl_loop *loop = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(loop->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(loop->timer, &tv);
	return 0;
}

struct curl_loop *
curl_loop_new(struct event_base *base)
{
	struct curl_loop *loop = xcalloc(1, sizeof(*loop));

	if (curl_loop_users++ == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl: global init failed");
	loop->base = base;
	LIST_INIT(&loop->socks);
	TAILQ_INIT(&loop->reqs);
	if ((loop->multi = curl_multi_init()) == NULL)
		fatalx("curl: multi init failed");
	if ((loop->timer = evtimer_new(base, curl_loop_timer_cb, loop)) == NULL)
		fatalx("curl: evtimer_new failed");
	curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, curl_loop_socket_cb);
	curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
	curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, curl_loop_timer_set);
	curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
	return loop;
}

int
curl_loop_in_flight(const struct curl_loop *loop)
{
	return loop->in_flight;
}

static void
curl_loop_destroy(struct curl_loop *loop)
{
	struct curl_loop_sock *cs;

	curl_multi_cleanup(loop->multi);
	while ((cs = LIST_FIRST(&loop->socks)) != NULL)
		curl_loop_sock_free(cs);
	event_free(loop->timer);
	free(loop);
	if (--curl_loop_users == 0)
		curl_global_cleanup();
}

void
curl_loop_free(struct curl_loop *loop)
{
	struct curl_req *req;

	if (loop == NULL || loop->dying)
		return;
	while ((req = TAILQ_FIRST(&loop->reqs)) != NULL)
		curl_req_free(req);
	loop->dying = 1;
	if (loop->dispatching == 0)
		curl_loop_destroy(loop);
}

/* --- Requests. --- */

/* The outcome, status and error text of a finished transfer. */
static void
curl_req_classify(struct curl_req *req, CURLcode rc)
{
	long code = 0, oserr = 0;
	curl_off_t connected = 0;
	const char *text = req->errbuf[0] != '\0' ? req->errbuf : curl_easy_strerror(rc);

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &code);
	req->status = (int)code;
	req->error[0] = '\0';
	switch (rc) {
	case CURLE_OK:
		req->outcome = CURL_REQ_ANSWERED;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		req->outcome = CURL_REQ_TIMEOUT;
		curl_easy_getinfo(req->easy, CURLINFO_CONNECT_TIME_T, &connected);
		if (connected == 0 && req->connect_ms < req->timeout_ms)
			snprintf(req->error, sizeof(req->error), "connect timeout after %llu ms",
			    (unsigned long long)req->connect_ms);
		else
			snprintf(req->error, sizeof(req->error), "timeout after %llu ms",
			    (unsigned long long)req->timeout_ms);
		break;
	case CURLE_COULDNT_CONNECT:
		req->outcome = CURL_REQ_CONNECT;
		curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &oserr);
		snprintf(req->error, sizeof(req->error), "connect: %s",
		    oserr != 0 ? strerror((int)oserr) : text);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		req->outcome = CURL_REQ_CONNECT;
		snprintf(req->error, sizeof(req->error), "resolve: %s", text);
		break;
	default:
		req->outcome = CURL_REQ_FAILED;
		snprintf(req->error, sizeof(req->error), "%s", text);
		break;
	}
}

/* CURLOPT_WRITEFUNCTION: keep up to respmax bytes, read and drop the rest. */
static size_t
curl_req_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct curl_req *req = arg;
	size_t len = size * n, keep = req->respmax - req->resplen;

	if (len < keep)
		keep = len;
	if (keep < len)
		req->truncated = 1;
	if (keep == 0)
		return len;
	if (req->resplen + keep + 1 > req->respcap) {
		req->respcap = req->respcap == 0 ? 4096 : req->respcap * 2;
		if (req->respcap < req->resplen + keep + 1)
			req->respcap = req->resplen + keep + 1;
		req->resp = xreallocarray(req->resp, 1, req->respcap);
	}
	memcpy(req->resp + req->resplen, data, keep);
	req->resplen += keep;
	req->resp[req->resplen] = '\0';
	return len;
}

static void
curl_req_clear_headers(struct curl_req *req)
{
	size_t i;

	for (i = 0; i < req->nhdrs; i++) {
		free(req->hdrs[i].name);
		free(req->hdrs[i].value);
	}
	free(req->hdrs);
	req->hdrs = NULL;
	req->nhdrs = 0;
}

/* Keep one "Name: value" line of a response, value trimmed of blanks and CRLF. */
static void
curl_req_keep_header(struct curl_req *req, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len), *v;
	size_t namelen, vlen;

	if (colon == NULL || colon == line || req->nhdrs == CURL_REQ_MAX_HEADERS)
		return;
	namelen = (size_t)(colon - line);
	v = colon + 1;
	vlen = len - namelen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen > 0 && strchr(" \t\r\n", v[vlen - 1]) != NULL)
		vlen--;
	req->hdrs = xreallocarray(req->hdrs, req->nhdrs + 1, sizeof(*req->hdrs));
	req->hdrs[req->nhdrs].name = xstrndup(line, namelen);
	req->hdrs[req->nhdrs].value = xstrndup(v, vlen);
	req->nhdrs++;
}

/* CURLOPT_HEADERFUNCTION: a status line starts a new response (after 1xx), forget the last. */
static size_t
curl_req_header_cb(char *line, size_t size, size_t n, void *arg)
{
	struct curl_req *req = arg;
	size_t len = size * n;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0)
		curl_req_clear_headers(req);
	else
		curl_req_keep_header(req, line, len);
	return len;
}

/* Options that hold for every request: safety first, the answer into the request. */
static void
curl_req_defaults(struct curl_req *req)
{
	CURL *e = req->easy;
	CURLcode rc;

	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(
		    e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (rc != CURLE_OK)
		fatalx("curl: cannot restrict protocols: %s", curl_easy_strerror(rc));
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_req_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, curl_req_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
}

struct curl_req *
curl_req_new(struct curl_loop *loop)
{
	struct curl_req *req = xcalloc(1, sizeof(*req));

	req->loop = loop;
	if ((req->easy = curl_easy_init()) == NULL)
		fatalx("curl: easy init failed");
	req->method = CURL_REQ_GET;
	req->timeout_ms = CURL_REQ_DEFAULT_TIMEOUT_MS;
	snprintf(req->label, sizeof(req->label), "request");
	curl_req_defaults(req);
	TAILQ_INSERT_TAIL(&loop->reqs, req, entry);
	return req;
}

void
curl_req_set_method(struct curl_req *req, enum curl_req_method method)
{
	req->method = method;
}

/* The problem with the parsed URL H: not http(s), no host or port 0; NULL when none. */
static const char *
curl_url_parts_problem(CURLU *h)
{
	char *scheme = NULL, *host = NULL, *port = NULL;
	const char *why = NULL;

	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		why = "the scheme is not http or https";
	else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0')
		why = "has no host";
	else if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK && strcmp(port, "0") == 0)
		why = "port 0 cannot be used";
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	return why;
}

const char *
curl_url_problem(const char *url)
{
	CURLU *h;
	CURLUcode rc;
	const char *why;

	if ((h = curl_url()) == NULL)
		fatalx("curl: curl_url failed");
	if ((rc = curl_url_set(h, CURLUPART_URL, url, 0)) != CURLUE_OK)
		why = curl_url_strerror(rc);
	else
		why = curl_url_parts_problem(h);
	curl_url_cleanup(h);
	return why;
}

void
curl_req_set_url(struct curl_req *req, const char *url)
{
	curl_easy_setopt(req->easy, CURLOPT_URL, url);
}

void
curl_req_add_header(struct curl_req *req, const char *line)
{
	struct curl_slist *l;

	if ((l = curl_slist_append(req->headers, line)) == NULL)
		fatalx("curl: slist append failed");
	req->headers = l;
}

void
curl_req_add_headerf(struct curl_req *req, const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	xvasprintf(&line, fmt, ap);
	va_end(ap);
	curl_req_add_header(req, line);
	free(line);
}

void
curl_req_set_body(struct curl_req *req, const void *body, size_t len)
{
	free(req->body);
	req->body = xmalloc(len + 1);
	memcpy(req->body, body, len);
	req->body[len] = '\0';
	req->bodylen = len;
}

void
curl_req_set_timeout(struct curl_req *req, uint64_t ms)
{
	req->timeout_ms = ms == 0 ? CURL_REQ_DEFAULT_TIMEOUT_MS : ms > INT32_MAX ? INT32_MAX : ms;
}

void
curl_req_set_basic_auth(struct curl_req *req, const char *user, const char *password)
{
	curl_easy_setopt(req->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(req->easy, CURLOPT_USERNAME, user);
	curl_easy_setopt(req->easy, CURLOPT_PASSWORD, password);
}

void
curl_req_set_max_response(struct curl_req *req, size_t max)
{
	req->respmax = max;
}

void
curl_req_set_label(struct curl_req *req, const char *label)
{
	snprintf(req->label, sizeof(req->label), "%s", label);
}

/* Method and body: POST, PUT and PATCH always carry one (empty when unset). */
static void
curl_req_apply_method(struct curl_req *req)
{
	static const char *const names[] = {
		[CURL_REQ_GET] = "GET",
		[CURL_REQ_POST] = "POST",
		[CURL_REQ_PUT] = "PUT",
		[CURL_REQ_PATCH] = "PATCH",
		[CURL_REQ_DELETE] = "DELETE",
	};
	CURL *e = req->easy;
	int body = req->body != NULL || req->method == CURL_REQ_POST ||
	    req->method == CURL_REQ_PUT || req->method == CURL_REQ_PATCH;

	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->bodylen);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
	} else
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	if (req->method != CURL_REQ_POST && (body || req->method != CURL_REQ_GET))
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, names[req->method]);
}

int
curl_req_start(struct curl_req *req, curl_req_done_cb done, void *arg)
{
	CURLMcode mc;

	if (req->state != REQ_NEW) {
		snprintf(req->error, sizeof(req->error), "request already started");
		return -1;
	}
	curl_req_apply_method(req);
	curl_req_add_header(req, "Expect:"); /* no 100-continue round trip */
	curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers);
	req->connect_ms = CURL_REQ_CONNECT_TIMEOUT_MS;
	if (req->timeout_ms < req->connect_ms)
		req->connect_ms = req->timeout_ms;
	curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_ms);
	req->done = done;
	req->arg = arg;
	req->started_ms = curl_loop_now_ms();
	if ((mc = curl_multi_add_handle(req->loop->multi, req->easy)) != CURLM_OK) {
		snprintf(req->error, sizeof(req->error), "%s", curl_multi_strerror(mc));
		return -1;
	}
	req->state = REQ_IN_FLIGHT;
	req->loop->in_flight++;
	return 0;
}

void
curl_req_free(struct curl_req *req)
{
	if (req == NULL)
		return;
	if (req->state == REQ_IN_FLIGHT) {
		curl_multi_remove_handle(req->loop->multi, req->easy);
		req->loop->in_flight--;
	}
	TAILQ_REMOVE(&req->loop->reqs, req, entry);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	free(req->body);
	free(req->resp);
	curl_req_clear_headers(req);
	free(req);
}

enum curl_req_outcome
curl_req_outcome(const struct curl_req *req)
{
	return req->outcome;
}

int
curl_req_status(const struct curl_req *req)
{
	return req->status;
}

const char *
curl_req_body(const struct curl_req *req, size_t *len, int *truncated)
{
	if (len != NULL)
		*len = req->resplen;
	if (truncated != NULL)
		*truncated = req->truncated;
	return req->resp != NULL ? req->resp : "";
}

const char *
curl_req_header(const struct curl_req *req, const char *name)
{
	size_t i;

	for (i = 0; i < req->nhdrs; i++) {
		if (strcasecmp(req->hdrs[i].name, name) == 0)
			return req->hdrs[i].value;
	}
	return NULL;
}

const char *
curl_req_error(const struct curl_req *req)
{
	return req->error;
}

uint64_t
curl_req_elapsed_ms(const struct curl_req *req)
{
	return req->elapsed_ms;
}
