/* SPDX-License-Identifier: ISC */
/*
 * The ClickSend REST v3 client: sends JSON requests with Basic auth over curl-loop, follows
 * paginated lists page by page and reports each call exactly once, from the loop. Loading
 * the key is in clicksend-key.c, reading answers in clicksend-answer.c. The key never
 * reaches a log line or an error text: answers are redacted before anyone sees them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "clicksend.h"
#include "log.h"
#include "version.h"
#include "xmalloc.h"

struct clicksend_call {
	struct clicksend *cs;
	TAILQ_ENTRY(clicksend_call) entry;
	struct curl_req *req;
	struct event *fail_ev; /* reports a request that could not start */
	enum curl_req_method method;
	char *path;
	char *body;
	int page; /* lists: the page in flight, 0 for single requests */
	struct clicksend_list list;
	clicksend_done_cb done;
	clicksend_list_cb list_done;
	void *arg;
	char start_error[256];
};

struct clicksend {
	struct event_base *base;
	struct curl_loop *loop;
	char *api_url, *username, *key;
	uint64_t timeout_ms;
	TAILQ_HEAD(, clicksend_call) calls;
};

struct clicksend *
clicksend_new(struct event_base *base, const char *api_url, const char *username, const char *key)
{
	struct clicksend *cs = xcalloc(1, sizeof(*cs));
	size_t len = strlen(api_url);

	while (len > 0 && api_url[len - 1] == '/')
		len--;
	cs->base = base;
	cs->loop = curl_loop_new(base);
	cs->api_url = xstrndup(api_url, len);
	cs->username = xstrdup(username);
	cs->key = xstrdup(key);
	cs->timeout_ms = CLICKSEND_TIMEOUT_MS;
	TAILQ_INIT(&cs->calls);
	return cs;
}

void
clicksend_set_timeout(struct clicksend *cs, uint64_t ms)
{
	cs->timeout_ms = ms;
}

static void
clicksend_call_free(struct clicksend_call *call)
{
	curl_req_free(call->req);
	if (call->fail_ev != NULL)
		event_free(call->fail_ev);
	clicksend_list_clear(&call->list);
	free(call->path);
	free(call->body);
	free(call);
}

void
clicksend_cancel(struct clicksend_call *call)
{
	if (call == NULL)
		return;
	TAILQ_REMOVE(&call->cs->calls, call, entry);
	clicksend_call_free(call);
}

void
clicksend_free(struct clicksend *cs)
{
	struct clicksend_call *call;

	if (cs == NULL)
		return;
	while ((call = TAILQ_FIRST(&cs->calls)) != NULL)
		clicksend_cancel(call);
	curl_loop_free(cs->loop);
	explicit_bzero(cs->key, strlen(cs->key));
	free(cs->key);
	free(cs->api_url);
	free(cs->username);
	free(cs);
}

/* The call is over: take it out of the client, report, then free it. */
static void
clicksend_call_finish(struct clicksend_call *call, struct clicksend_answer *ans)
{
	struct clicksend *cs = call->cs;

	TAILQ_REMOVE(&cs->calls, call, entry);
	curl_req_free(call->req);
	call->req = NULL;
	if (call->list_done != NULL) {
		if (ans != NULL)
			clicksend_list_add(&call->list, ans, call->page);
		clicksend_redact(call->list.answer.error, cs->key);
		call->list_done(&call->list, call->arg);
	} else {
		clicksend_redact(ans->error, cs->key);
		call->done(ans, call->arg);
		clicksend_answer_clear(ans);
	}
	clicksend_call_free(call);
}

static int clicksend_send(struct clicksend_call *);

/* curl-loop's callback: one answer; lists go on to the next page. */
static void
clicksend_req_done(struct curl_req *req, void *arg)
{
	struct clicksend_call *call = arg;
	struct clicksend_answer ans;
	const char *body;
	size_t len;
	int truncated = 0;

	body = curl_req_body(req, &len, &truncated);
	clicksend_answer_parse(&ans,
	    curl_req_outcome(req) == CURL_REQ_ANSWERED ? curl_req_status(req) : 0, body, len,
	    truncated, curl_req_error(req));
	log_debug("clicksend: %s page %d: HTTP %d in %llu ms", call->path, call->page, ans.status,
	    (unsigned long long)curl_req_elapsed_ms(req));
	if (call->list_done != NULL && clicksend_list_add(&call->list, &ans, call->page) == 1) {
		curl_req_free(call->req);
		call->req = NULL;
		call->page++;
		if (clicksend_send(call) == 0)
			return;
		clicksend_answer_parse(&ans, 0, NULL, 0, 0, call->start_error);
		clicksend_call_finish(call, &ans);
		return;
	}
	clicksend_call_finish(call, call->list_done != NULL ? NULL : &ans);
}

/* Reports a request that could not start, from the loop. */
static void
clicksend_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clicksend_call *call = arg;
	struct clicksend_answer ans;

	(void)fd;
	(void)what;
	clicksend_answer_parse(&ans, 0, NULL, 0, 0, call->start_error);
	clicksend_call_finish(call, &ans);
}

/* Starts the call's (next) request. 0, or -1 with start_error set. */
static int
clicksend_send(struct clicksend_call *call)
{
	struct clicksend *cs = call->cs;
	struct curl_req *req = curl_req_new(cs->loop);
	char *url;

	if (call->page > 0)
		xasprintf(&url, "%s%s?page=%d&limit=%d", cs->api_url, call->path, call->page,
		    CLICKSEND_PAGE_LIMIT);
	else
		xasprintf(&url, "%s%s", cs->api_url, call->path);
	curl_req_set_url(req, url);
	free(url);
	curl_req_set_label(req, "clicksend");
	curl_req_set_method(req, call->method);
	curl_req_set_timeout(req, cs->timeout_ms);
	curl_req_set_basic_auth(req, cs->username, cs->key);
	curl_req_set_max_response(req, CLICKSEND_MAX_RESPONSE);
	curl_req_add_header(req, "Accept: application/json");
	curl_req_add_header(req, "User-Agent: " RELAY_USER_AGENT);
	if (call->body != NULL) {
		curl_req_add_header(req, "Content-Type: application/json");
		curl_req_set_body(req, call->body, strlen(call->body));
	}
	if (curl_req_start(req, clicksend_req_done, call) == -1) {
		snprintf(call->start_error, sizeof(call->start_error), "cannot start: %s",
		    curl_req_error(req));
		curl_req_free(req);
		return -1;
	}
	call->req = req;
	return 0;
}

static struct clicksend_call *
clicksend_call_new(
    struct clicksend *cs, enum curl_req_method method, const char *path, const char *body, int page)
{
	struct clicksend_call *call = xcalloc(1, sizeof(*call));

	call->cs = cs;
	call->method = method;
	call->path = xstrdup(path);
	call->body = body != NULL ? xstrdup(body) : NULL;
	call->page = page;
	TAILQ_INSERT_TAIL(&cs->calls, call, entry);
	return call;
}

/* Sends the first request, or arranges for the failure to be reported from the loop. */
static struct clicksend_call *
clicksend_call_start(struct clicksend_call *call)
{
	static const struct timeval now = { 0, 0 };

	if (clicksend_send(call) == -1) {
		call->fail_ev = evtimer_new(call->cs->base, clicksend_fail_cb, call);
		evtimer_add(call->fail_ev, &now);
	}
	return call;
}

struct clicksend_call *
clicksend_request(struct clicksend *cs, enum curl_req_method method, const char *path,
    const char *body, clicksend_done_cb done, void *arg)
{
	struct clicksend_call *call = clicksend_call_new(cs, method, path, body, 0);

	call->done = done;
	call->arg = arg;
	return clicksend_call_start(call);
}

struct clicksend_call *
clicksend_list(struct clicksend *cs, const char *path, clicksend_list_cb done, void *arg)
{
	struct clicksend_call *call = clicksend_call_new(cs, CURL_REQ_GET, path, NULL, 1);

	call->list_done = done;
	call->arg = arg;
	return clicksend_call_start(call);
}
