/* SPDX-License-Identifier: ISC */
/* libcurl's multi interface driven by the event_base (CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION): sockets and the timer watched for libcurl, finished transfers
 * called back from the loop, loops created and freed. The requests are in curl-req.c.
 * No curl_easy_perform, no threads of ours. */
#include <stdlib.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "curl-internal.h"
#include "log.h"
#include "xmalloc.h"

/* One socket libcurl asked us to watch; curl_multi_assign ties it to the socket. */
struct curl_loop_sock {
	struct curl_loop *loop;
	struct event *ev;
	LIST_ENTRY(curl_loop_sock) entry;
};

static unsigned curl_loop_users; /* loops alive: curl_global_init once, cleanup at the end */

/* Monotonic milliseconds, for elapsed times. */
uint64_t
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
