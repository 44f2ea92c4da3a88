/* SPDX-License-Identifier: ISC */
/* Unit tests for relay-http.c and the curl-loop requests under it: a real event loop and a
 * loopback evhttp sink in this file that records what arrives and answers per path. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "crypto.h"
#include "curl-loop.h"
#include "log.h"
#include "relay.h"
#include "tap.h"
#include "version.h"
#include "xmalloc.h"

#define SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define DOCUMENT "{\"id\":\"evt_42\",\"type\":\"sms.inbound\",\"data\":{\"body\":\"hi\"}}"
#define SINK_MAX 16

/* One request as the sink received it. */
struct sink_req {
	char *uri;
	enum evhttp_cmd_type method;
	char *body;
	size_t bodylen;
	struct evkeyvalq *headers; /* a copy */
};

struct sink {
	struct evhttp *http;
	int port;
	int nreq;
	int exit_at;               /* leave the loop when this many requests arrived */
	struct sink_req req[SINK_MAX];
};

static struct event_base *base;
static struct sink sink;
static struct relay_http *rh;
static struct config_relay relay;
static char url[128];
static char *relay_headers[] = { "X-Test: one", "X-Other: two words" };
static int in_attempt, calls, expected_calls, timed_out;
static char logged[65536];

/* What one callback received. */
struct outcome {
	int calls;
	const struct relay_job *job;
	struct relay_result res;
};

static void
log_capture(int prio, const char *msg, void *arg)
{
	size_t n = strlen(logged);

	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

static void
sink_record(struct evhttp_request *r)
{
	struct sink_req *q = &sink.req[sink.nreq % SINK_MAX];
	struct evbuffer *in = evhttp_request_get_input_buffer(r);
	struct evkeyval *kv;

	q->uri = xstrdup(evhttp_request_get_uri(r));
	q->method = evhttp_request_get_command(r);
	q->bodylen = evbuffer_get_length(in);
	q->body = xcalloc(1, q->bodylen + 1);
	evbuffer_copyout(in, q->body, q->bodylen);
	q->headers = xcalloc(1, sizeof(*q->headers));
	TAILQ_INIT(q->headers);
	for (kv = evhttp_request_get_input_headers(r)->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		evhttp_add_header(q->headers, kv->key, kv->value);
	if (++sink.nreq == sink.exit_at)
		event_base_loopexit(base, NULL);
}

static const char *
sink_header(int i, const char *name)
{
	return evhttp_find_header(sink.req[i].headers, name);
}

/* Answer "/NNN[?ra=7|ra=date]" with status NNN; "/big" with 1000 bytes. */
static void
sink_reply(struct evhttp_request *r, const char *uri)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(r);
	int status = atoi(uri + 1);
	char date[64];
	time_t later = time(NULL) + 30;

	if (strncmp(uri, "/big", 4) == 0) {
		status = 200;
		while (evbuffer_get_length(b) < 1000)
			evbuffer_add(b, "0123456789", 10);
	} else if (status != 204)
		evbuffer_add_printf(b, "answer %d\n", status);
	if (strstr(uri, "ra=7") != NULL)
		evhttp_add_header(out, "Retry-After", "7");
	if (strstr(uri, "ra=date") != NULL) {
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", gmtime(&later));
		evhttp_add_header(out, "Retry-After", date);
	}
	if (status == 302)
		evhttp_add_header(out, "Location", "/200");
	evhttp_add_header(out, "X-Reply", "yes");
	evhttp_send_reply(r, status, NULL, b);
	evbuffer_free(b);
}

static void
sink_reply_later(evutil_socket_t fd, short ev, void *arg)
{
	struct evhttp_request *r = arg;

	sink_reply(r, strchr(evhttp_request_get_uri(r) + 1, '/'));
}

static void
sink_cb(struct evhttp_request *r, void *arg)
{
	const char *uri = evhttp_request_get_uri(r);
	struct timeval tv = { 0, 300 * 1000 };

	sink_record(r);
	if (strcmp(uri, "/hang") == 0)
		return; /* never answered */
	if (strncmp(uri, "/slow/", 6) == 0)
		event_base_once(base, -1, EV_TIMEOUT, sink_reply_later, r, &tv);
	else
		sink_reply(r, uri);
}

static void
sink_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sink, 0, sizeof(sink));
	ck_assert_ptr_nonnull(sink.http = evhttp_new(base));
	evhttp_set_gencb(sink.http, sink_cb, NULL);
	ck_assert_ptr_nonnull(bs = evhttp_bind_socket_with_handle(sink.http, "127.0.0.1", 0));
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin,
	    &len), 0);
	sink.port = ntohs(sin.sin_port);
}

static void
sink_stop(void)
{
	int i;

	evhttp_free(sink.http);
	for (i = 0; i < sink.nreq && i < SINK_MAX; i++) {
		free(sink.req[i].uri);
		free(sink.req[i].body);
		evhttp_clear_headers(sink.req[i].headers);
		free(sink.req[i].headers);
	}
}

static void
setup(void)
{
	ck_assert_ptr_nonnull(base = event_base_new());
	sink_start();
	rh = relay_http_new(base);
	memset(&relay, 0, sizeof(relay));
	relay.name = "test";
	relay.url = url;
	relay.headers = relay_headers;
	relay.nheaders = 2;
	relay.timeout_ms = 5000;
	calls = expected_calls = timed_out = 0;
	logged[0] = '\0';
	log_init(LOG_DEBUG, 0);
	log_set_hook(log_capture, NULL);
}

static void
teardown(void)
{
	relay_http_free(rh);
	sink_stop();
	event_base_free(base);
	log_set_hook(NULL, NULL);
}

static void
job_init(struct relay_job *job, const char *ref)
{
	memset(job, 0, sizeof(*job));
	job->relay = &relay;
	job->delivery_id = 7;
	job->event_id = 42;
	snprintf(job->event_ref, sizeof(job->event_ref), "%s", ref);
	job->kind = "sms.inbound";
	job->format = "post";
	job->document = DOCUMENT;
	job->doclen = strlen(DOCUMENT);
}

static void
done_cb(const struct relay_job *job, const struct relay_result *res, void *arg)
{
	struct outcome *o = arg;

	ck_assert_int_eq(in_attempt, 0);
	o->calls++;
	o->job = job;
	o->res = *res;
	if (++calls == expected_calls)
		event_base_loopexit(base, NULL);
}

static void
attempt(const char *path, const struct relay_job *job, struct outcome *o)
{
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", sink.port, path);
	in_attempt = 1;
	ck_assert_int_eq(relay_http_attempt(rh, job, done_cb, o), 0);
	in_attempt = 0;
}

static void
safety_cb(evutil_socket_t fd, short ev, void *arg)
{
	timed_out = 1;
	event_base_loopexit(base, NULL);
}

/* Run the loop until the expected callbacks (or sink requests) arrived; 10 s at most. */
static void
run(int ncalls)
{
	struct event *safety = evtimer_new(base, safety_cb, NULL);
	struct timeval tv = { 10, 0 };

	expected_calls = ncalls;
	evtimer_add(safety, &tv);
	event_base_dispatch(base);
	event_free(safety);
	ck_assert_msg(!timed_out, "loop timed out");
}

/* The signature as a receiver would check it, without relay_sign. */
static void
verify_signature(const char *id, const char *ts, const char *body, size_t bodylen,
    const char *sig)
{
	const char *b64 = &SECRET[strlen("whsec_")];
	unsigned char *key, mac[CRYPTO_SHA256_LEN];
	size_t keylen;
	char *msg, *mac64, *expect;
	int n;

	ck_assert_ptr_nonnull(key = crypto_base64_decode(b64, strlen(b64), &keylen));
	n = xasprintf(&msg, "%s.%s.%.*s", id, ts, (int)bodylen, body);
	ck_assert_int_eq(crypto_hmac_sha256(key, keylen, msg, (size_t)n, mac), 0);
	mac64 = crypto_base64_encode(mac, sizeof(mac));
	xasprintf(&expect, "v1,%s", mac64);
	ck_assert_str_eq(sig, expect);
	free(key);
	free(msg);
	free(mac64);
	free(expect);
}

START_TEST(sign_vector)
{
	const char *body = "{\"test\": 2432232314}";
	char *sig = relay_sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
	    strlen(body));

	ck_assert_ptr_nonnull(sig);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	free(sig);
	ck_assert_ptr_null(relay_sign("whsec_not*base64", "msg", 1, body, strlen(body)));
	ck_assert_ptr_null(relay_sign("whsec_", "msg", 1, body, strlen(body)));
}
END_TEST

/* Body and every header arrive; the signature verifies; nothing secret is logged. */
START_TEST(headers_and_body)
{
	struct relay_job job;
	struct outcome o = { 0 };
	const char *ts;
	long long now = (long long)time(NULL);

	relay.secret = SECRET;
	job_init(&job, "evt_42");
	attempt("/200", &job, &o);
	ck_assert_int_eq(relay_http_in_flight(rh), 1);
	ck_assert_int_eq(o.calls, 0);
	run(1);
	ck_assert_int_eq(relay_http_in_flight(rh), 0);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_ptr_eq(o.job, &job);
	ck_assert_int_eq(o.res.outcome, RELAY_DONE);
	ck_assert_str_eq(o.res.text, "HTTP 200");
	ck_assert_int_eq(sink.nreq, 1);
	ck_assert_int_eq(sink.req[0].method, EVHTTP_REQ_POST);
	ck_assert_str_eq(sink.req[0].uri, "/200");
	ck_assert_str_eq(sink.req[0].body, DOCUMENT);
	ck_assert_uint_eq(sink.req[0].bodylen, strlen(DOCUMENT));
	ck_assert_str_eq(sink_header(0, "Content-Type"), "application/json");
	ck_assert_str_eq(sink_header(0, "User-Agent"), RELAY_USER_AGENT);
	ck_assert_str_eq(sink_header(0, "User-Agent"), "clicksend-relay/" PACKAGE_VERSION);
	ck_assert_str_eq(sink_header(0, "webhook-id"), "evt_42");
	ck_assert_str_eq(sink_header(0, "X-Test"), "one");
	ck_assert_str_eq(sink_header(0, "X-Other"), "two words");
	ck_assert_ptr_null(sink_header(0, "Expect"));
	ck_assert_ptr_nonnull(ts = sink_header(0, "webhook-timestamp"));
	ck_assert(llabs(atoll(ts) - now) <= 2);
	ck_assert_ptr_nonnull(sink_header(0, "webhook-signature"));
	verify_signature("evt_42", ts, sink.req[0].body, sink.req[0].bodylen,
	    sink_header(0, "webhook-signature"));
	ck_assert_ptr_null(strstr(logged, "MfKQ9r8G"));
	ck_assert_ptr_null(strstr(logged, "two words"));
	ck_assert_ptr_nonnull(strstr(logged, "HTTP 200"));
}
END_TEST

START_TEST(unsigned_without_secret)
{
	struct relay_job job;
	struct outcome o = { 0 };

	job_init(&job, "evt_43");
	attempt("/204", &job, &o);
	run(1);
	ck_assert_int_eq(o.res.outcome, RELAY_DONE);
	ck_assert_str_eq(o.res.text, "HTTP 204");
	ck_assert_str_eq(sink_header(0, "webhook-id"), "evt_43");
	ck_assert_ptr_null(sink_header(0, "webhook-timestamp"));
	ck_assert_ptr_null(sink_header(0, "webhook-signature"));
}
END_TEST

/* The same webhook-id on every attempt, a fresh signature each time. */
START_TEST(same_id_every_attempt)
{
	struct relay_job job;
	struct outcome o = { 0 };

	relay.secret = SECRET;
	job_init(&job, "evt_44");
	attempt("/500", &job, &o);
	run(1);
	attempt("/200", &job, &o);
	run(2);
	ck_assert_int_eq(sink.nreq, 2);
	ck_assert_str_eq(sink_header(0, "webhook-id"), "evt_44");
	ck_assert_str_eq(sink_header(1, "webhook-id"), "evt_44");
	verify_signature("evt_44", sink_header(1, "webhook-timestamp"), sink.req[1].body,
	    sink.req[1].bodylen, sink_header(1, "webhook-signature"));
}
END_TEST

static const struct {
	const char *path;
	enum relay_outcome outcome;
	uint64_t retry_after_ms;
	const char *text;
} answers[] = {
	{ "/200", RELAY_DONE, 0, "HTTP 200" },
	{ "/204", RELAY_DONE, 0, "HTTP 204" },
	{ "/202?ra=7", RELAY_DONE, 0, "HTTP 202" },
	{ "/500", RELAY_RETRY, 0, "HTTP 500" },
	{ "/404?ra=7", RELAY_RETRY, 0, "HTTP 404" },
	{ "/410", RELAY_DEAD, 0, "HTTP 410" },
	{ "/429?ra=7", RELAY_RETRY, 7000, "HTTP 429 (Retry-After 7 s)" },
	{ "/503?ra=7", RELAY_RETRY, 7000, "HTTP 503 (Retry-After 7 s)" },
	{ "/503", RELAY_RETRY, 0, "HTTP 503" },
	{ "/302", RELAY_RETRY, 0, "HTTP 302" }, /* redirects are not followed */
};

START_TEST(outcomes)
{
	struct relay_job job;
	struct outcome o = { 0 };

	job_init(&job, "evt_45");
	attempt(answers[_i].path, &job, &o);
	run(1);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.res.outcome, answers[_i].outcome);
	ck_assert_uint_eq(o.res.retry_after_ms, answers[_i].retry_after_ms);
	ck_assert_str_eq(o.res.text, answers[_i].text);
	ck_assert_int_eq(sink.nreq, 1);
}
END_TEST

START_TEST(retry_after_date)
{
	struct relay_job job;
	struct outcome o = { 0 };

	job_init(&job, "evt_46");
	attempt("/429?ra=date", &job, &o);
	run(1);
	ck_assert_int_eq(o.res.outcome, RELAY_RETRY);
	ck_assert_uint_ge(o.res.retry_after_ms, 28000);
	ck_assert_uint_le(o.res.retry_after_ms, 30000);
	ck_assert_ptr_nonnull(strstr(o.res.text, "HTTP 429 (Retry-After "));
}
END_TEST

START_TEST(connection_refused)
{
	struct relay_job job;
	struct outcome o = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd); /* nobody listens there now */
	job_init(&job, "evt_47");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(sin.sin_port));
	ck_assert_int_eq(relay_http_attempt(rh, &job, done_cb, &o), 0);
	run(1);
	ck_assert_int_eq(o.res.outcome, RELAY_RETRY);
	ck_assert_uint_eq(o.res.retry_after_ms, 0);
	ck_assert_str_eq(o.res.text, "connect: Connection refused");
}
END_TEST

START_TEST(timeout)
{
	struct relay_job job;
	struct outcome o = { 0 };
	time_t t0 = time(NULL);

	relay.timeout_ms = 500;
	job_init(&job, "evt_48");
	attempt("/hang", &job, &o);
	run(1);
	ck_assert_int_eq(o.res.outcome, RELAY_RETRY);
	ck_assert_str_eq(o.res.text, "timeout after 500 ms");
	ck_assert_int_eq(sink.nreq, 1);
	ck_assert_int_le(time(NULL) - t0, 3);
}
END_TEST

/* Attempts in flight together finish on their own, in the order their answers come. */
START_TEST(concurrent)
{
	struct relay_job jobs[3];
	struct outcome o[3] = { { 0 } };
	static const char *const paths[] = { "/slow/200", "/500", "/410" };
	int i;

	for (i = 0; i < 3; i++) {
		job_init(&jobs[i], i == 0 ? "evt_1" : i == 1 ? "evt_2" : "evt_3");
		attempt(paths[i], &jobs[i], &o[i]);
	}
	ck_assert_int_eq(relay_http_in_flight(rh), 3);
	run(2);
	ck_assert_int_eq(relay_http_in_flight(rh), 1);
	ck_assert_int_eq(o[0].calls, 0);
	run(3);
	ck_assert_int_eq(relay_http_in_flight(rh), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(o[i].calls, 1);
		ck_assert_ptr_eq(o[i].job, &jobs[i]);
	}
	ck_assert_int_eq(o[0].res.outcome, RELAY_DONE);
	ck_assert_int_eq(o[1].res.outcome, RELAY_RETRY);
	ck_assert_int_eq(o[2].res.outcome, RELAY_DEAD);
}
END_TEST

/* Shutdown with attempts in flight: no callbacks, nothing leaks (run under ASan). */
START_TEST(free_in_flight)
{
	struct relay_job jobs[3];
	struct outcome o[3] = { { 0 } };
	int i;

	for (i = 0; i < 3; i++) {
		job_init(&jobs[i], "evt_49");
		attempt("/hang", &jobs[i], &o[i]);
	}
	sink.exit_at = 3;
	run(1);
	ck_assert_int_eq(sink.nreq, 3);
	ck_assert_int_eq(relay_http_in_flight(rh), 3);
	relay_http_free(rh);
	rh = NULL;
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(o[i].calls, 0);
}
END_TEST

static void
free_in_callback_cb(const struct relay_job *job, const struct relay_result *res, void *arg)
{
	done_cb(job, res, arg);
	relay_http_free(rh);
	rh = NULL;
	event_base_loopexit(base, NULL);
}

/* A callback may tear the relay down, other attempts still in flight. */
START_TEST(free_in_callback)
{
	struct relay_job jobs[2];
	struct outcome o[2] = { { 0 } };

	job_init(&jobs[0], "evt_50");
	job_init(&jobs[1], "evt_51");
	attempt("/hang", &jobs[1], &o[1]);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/200", sink.port);
	ck_assert_int_eq(relay_http_attempt(rh, &jobs[0], free_in_callback_cb, &o[0]), 0);
	run(2);
	ck_assert_ptr_null(rh);
	ck_assert_int_eq(o[0].calls, 1);
	ck_assert_int_eq(o[1].calls, 0);
}
END_TEST

/* The generic request API below relay-http: GET, Basic auth, bounded body, headers. */
static void
req_done(struct curl_req *req, void *arg)
{
	struct curl_req **slot = arg;

	*slot = req;
	event_base_loopexit(base, NULL);
}

static struct curl_req *
req_run(struct curl_loop *loop, struct curl_req *req)
{
	struct curl_req *got = NULL;

	ck_assert_int_eq(curl_req_start(req, req_done, &got), 0);
	ck_assert_int_eq(curl_loop_in_flight(loop), 1);
	ck_assert_ptr_null(got);
	run(-1);
	ck_assert_ptr_eq(got, req);
	ck_assert_int_eq(curl_loop_in_flight(loop), 0);
	return got;
}

START_TEST(curl_req_api)
{
	struct curl_loop *loop = curl_loop_new(base);
	struct curl_req *req = curl_req_new(loop);
	const char *body;
	size_t len;
	int truncated;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", sink.port);
	curl_req_set_url(req, url);
	curl_req_set_basic_auth(req, "user", "s3cret-pass");
	curl_req_set_max_response(req, 100);
	curl_req_set_label(req, "api");
	req_run(loop, req);
	ck_assert_int_eq(curl_req_outcome(req), CURL_REQ_ANSWERED);
	ck_assert_int_eq(curl_req_status(req), 200);
	ck_assert_str_eq(curl_req_error(req), "");
	body = curl_req_body(req, &len, &truncated);
	ck_assert_uint_eq(len, 100);
	ck_assert_int_eq(truncated, 1);
	ck_assert_uint_eq(strlen(body), 100);
	ck_assert_mem_eq(body, "0123456789", 10);
	ck_assert_str_eq(curl_req_header(req, "x-reply"), "yes");
	ck_assert_str_eq(curl_req_header(req, "Content-Length"), "1000");
	ck_assert_ptr_null(curl_req_header(req, "Retry-After"));
	ck_assert_int_eq(sink.req[0].method, EVHTTP_REQ_GET);
	ck_assert_str_eq(sink_header(0, "Authorization"), "Basic dXNlcjpzM2NyZXQtcGFzcw==");
	ck_assert_ptr_null(strstr(logged, "s3cret"));
	ck_assert_int_eq(curl_req_start(req, req_done, NULL), -1);
	curl_req_free(req);
	curl_loop_free(loop);
}
END_TEST

START_TEST(curl_req_put_and_protocols)
{
	struct curl_loop *loop = curl_loop_new(base);
	struct curl_req *req = curl_req_new(loop), *file;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/201", sink.port);
	curl_req_set_url(req, url);
	curl_req_set_method(req, CURL_REQ_PUT);
	curl_req_add_header(req, "Content-Type: application/json");
	curl_req_set_body(req, "{}", 2);
	req_run(loop, req);
	ck_assert_int_eq(curl_req_status(req), 201);
	ck_assert_int_eq(sink.req[0].method, EVHTTP_REQ_PUT);
	ck_assert_str_eq(sink.req[0].body, "{}");
	/* only http and https */
	file = curl_req_new(loop);
	curl_req_set_url(file, "file:///etc/passwd");
	req_run(loop, file);
	ck_assert_int_eq(curl_req_outcome(file), CURL_REQ_FAILED);
	ck_assert_int_eq(curl_req_status(file), 0);
	ck_assert_str_ne(curl_req_error(file), "");
	/* the loop frees what is left */
	curl_loop_free(loop);
}
END_TEST

static Suite *
relay_http_suite(void)
{
	Suite *s = suite_create("relay-http");
	TCase *tc = tcase_create("relay-http");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, sign_vector);
	tcase_add_test(tc, headers_and_body);
	tcase_add_test(tc, unsigned_without_secret);
	tcase_add_test(tc, same_id_every_attempt);
	tcase_add_loop_test(tc, outcomes, 0, sizeof(answers) / sizeof(answers[0]));
	tcase_add_test(tc, retry_after_date);
	tcase_add_test(tc, connection_refused);
	tcase_add_test(tc, timeout);
	tcase_add_test(tc, concurrent);
	tcase_add_test(tc, free_in_flight);
	tcase_add_test(tc, free_in_callback);
	suite_add_tcase(s, tc);
	tc = tcase_create("curl-loop");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, curl_req_api);
	tcase_add_test(tc, curl_req_put_and_protocols);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(relay_http_suite());
}
