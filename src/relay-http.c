/* SPDX-License-Identifier: ISC */
/* URL relays: one POST of the event document per attempt over curl-loop, Standard Webhooks
 * signing, and what an answer means: 2xx done, 410 dead, the rest retried (Retry-After). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <syslog.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "curl-loop.h"
#include "log.h"
#include "relay.h"
#include "version.h"
#include "xmalloc.h"

#define RELAY_HTTP_RETRY_AFTER_MAX (366LL * 86400) /* seconds; the outbox bounds it further */

/* One attempt in flight. */
struct relay_http_call {
	struct relay_http *rh;
	struct curl_req *req;
	const struct relay_job *job;
	relay_done_cb cb;
	void *arg;
	TAILQ_ENTRY(relay_http_call) entry;
};

struct relay_http {
	struct curl_loop *loop;
	TAILQ_HEAD(, relay_http_call) calls;
};

/* Standard Webhooks: "v1," and the base64 HMAC-SHA256 of "id.timestamp.body". */
char *
relay_sign(
    const char *secret, const char *msg_id, long long timestamp, const char *body, size_t bodylen)
{
	const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
	unsigned char *key, mac[CRYPTO_SHA256_LEN];
	size_t keylen, prefixlen;
	char *msg, *sig, *out = NULL;
	int rc;

	if ((key = crypto_base64_decode(b64, strlen(b64), &keylen)) == NULL)
		return NULL;
	prefixlen = (size_t)xasprintf(&msg, "%s.%lld.", msg_id, timestamp);
	msg = xreallocarray(msg, 1, prefixlen + bodylen + 1);
	memcpy(msg + prefixlen, body, bodylen);
	rc = keylen > 0 ? crypto_hmac_sha256(key, keylen, msg, prefixlen + bodylen, mac) : -1;
	explicit_bzero(key, keylen);
	free(key);
	free(msg);
	if (rc == 0) {
		sig = crypto_base64_encode(mac, sizeof(mac));
		xasprintf(&out, "v1,%s", sig);
		free(sig);
	}
	return out;
}

/* The Standard Webhooks headers, when the relay has a secret. 0 or -1 (bad secret). */
static int
relay_http_sign(struct curl_req *req, const struct relay_job *job)
{
	const struct config_relay *r = job->relay;
	long long now = (long long)time(NULL);
	char *sig;

	if (r->secret == NULL || *r->secret == '\0')
		return 0;
	if ((sig = relay_sign(r->secret, job->event_ref, now, job->document, job->doclen)) == NULL)
		return -1;
	curl_req_add_headerf(req, "webhook-timestamp: %lld", now);
	curl_req_add_headerf(req, "webhook-signature: %s", sig);
	free(sig);
	return 0;
}

/* The whole request of one attempt. 0 or -1. */
static int
relay_http_prepare(struct curl_req *req, const struct relay_job *job)
{
	const struct config_relay *r = job->relay;
	size_t i;

	curl_req_set_label(req, r->name);
	curl_req_set_method(req, CURL_REQ_POST);
	curl_req_set_url(req, r->url);
	curl_req_set_timeout(req, r->timeout_ms);
	curl_req_set_body(req, job->document, job->doclen);
	curl_req_add_header(req, "Content-Type: application/json");
	curl_req_add_header(req, "User-Agent: " RELAY_USER_AGENT);
	curl_req_add_headerf(req, "webhook-id: %s", job->event_ref);
	if (relay_http_sign(req, job) == -1) {
		log_ctx(
		    LOG_ERR, job->event_id, r->name, "relay %s: secret does not decode", r->name);
		return -1;
	}
	for (i = 0; i < r->nheaders; i++)
		curl_req_add_header(req, r->headers[i]);
	return 0;
}

/* Seconds to wait from a Retry-After value, delta-seconds or an HTTP-date; -1 when neither. */
static long long
relay_http_retry_after(const char *v, time_t now)
{
	static const char *const dates[] = {
		"%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
		"%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
		"%a %b %e %H:%M:%S %Y",	     /* asctime */
	};
	struct tm tm;
	const char *end;
	time_t t;
	size_t i, n = strspn(v, "0123456789");

	if (n > 0 && v[n] == '\0')
		return n > 9 ? RELAY_HTTP_RETRY_AFTER_MAX : strtoll(v, NULL, 10);
	for (i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(v, dates[i], &tm)) == NULL || *end != '\0')
			continue;
		if ((t = timegm(&tm)) == (time_t)-1)
			return -1;
		return t > now ? (long long)(t - now) : 0;
	}
	return -1;
}

/* What one answer (or failure) means for the delivery. */
static void
relay_http_result(const struct curl_req *req, struct relay_result *res)
{
	int status = curl_req_status(req);
	const char *v;
	long long secs = -1;

	memset(res, 0, sizeof(*res));
	res->outcome = RELAY_RETRY;
	if (curl_req_outcome(req) != CURL_REQ_ANSWERED) {
		snprintf(res->text, sizeof(res->text), "%s", curl_req_error(req));
		return;
	}
	if (status >= 200 && status <= 299)
		res->outcome = RELAY_DONE;
	else if (status == 410)
		res->outcome = RELAY_DEAD;
	if ((status == 429 || status == 503) && (v = curl_req_header(req, "Retry-After")) != NULL)
		secs = relay_http_retry_after(v, time(NULL));
	if (secs > RELAY_HTTP_RETRY_AFTER_MAX)
		secs = RELAY_HTTP_RETRY_AFTER_MAX;
	if (secs < 0) {
		snprintf(res->text, sizeof(res->text), "HTTP %d", status);
		return;
	}
	res->retry_after_ms = (uint64_t)secs * 1000;
	snprintf(res->text, sizeof(res->text), "HTTP %d (Retry-After %lld s)", status, secs);
}

/* curl-loop's callback: forget the attempt, then report; the caller may start the next. */
static void
relay_http_done(struct curl_req *req, void *arg)
{
	struct relay_http_call *call = arg;
	const struct relay_job *job = call->job;
	relay_done_cb cb = call->cb;
	void *cbarg = call->arg;
	struct relay_result res;

	relay_http_result(req, &res);
	log_ctx(LOG_DEBUG, job->event_id, job->relay->name, "relay %s: %s in %llu ms",
	    job->relay->name, res.text, (unsigned long long)curl_req_elapsed_ms(req));
	TAILQ_REMOVE(&call->rh->calls, call, entry);
	curl_req_free(req);
	free(call);
	cb(job, &res, cbarg);
}

struct relay_http *
relay_http_new(struct event_base *base)
{
	struct relay_http *rh = xcalloc(1, sizeof(*rh));

	rh->loop = curl_loop_new(base);
	TAILQ_INIT(&rh->calls);
	return rh;
}

int
relay_http_attempt(struct relay_http *rh, const struct relay_job *job, relay_done_cb cb, void *arg)
{
	const struct config_relay *r = job->relay;
	struct curl_req *req;
	struct relay_http_call *call;

	if (r->url == NULL) {
		log_ctx(LOG_ERR, job->event_id, r->name, "relay %s: no url", r->name);
		return -1;
	}
	req = curl_req_new(rh->loop);
	call = xcalloc(1, sizeof(*call));
	*call = (struct relay_http_call){ .rh = rh, .req = req, .job = job, .cb = cb, .arg = arg };
	if (relay_http_prepare(req, job) == -1 ||
	    curl_req_start(req, relay_http_done, call) == -1) {
		if (*curl_req_error(req) != '\0')
			log_ctx(LOG_ERR, job->event_id, r->name, "relay %s: cannot start: %s",
			    r->name, curl_req_error(req));
		curl_req_free(req);
		free(call);
		return -1;
	}
	TAILQ_INSERT_TAIL(&rh->calls, call, entry);
	return 0;
}

int
relay_http_in_flight(const struct relay_http *rh)
{
	return curl_loop_in_flight(rh->loop);
}

void
relay_http_free(struct relay_http *rh)
{
	struct relay_http_call *call;

	if (rh == NULL)
		return;
	while ((call = TAILQ_FIRST(&rh->calls)) != NULL) {
		TAILQ_REMOVE(&rh->calls, call, entry);
		curl_req_free(call->req);
		free(call);
	}
	curl_loop_free(rh->loop);
	free(rh);
}
