/* SPDX-License-Identifier: ISC */
/* HTTP client requests over libcurl's multi interface, driven by the daemon's event_base.
 * Only curl-loop.c and curl-req.c include <curl/curl.h>; callers see opaque loops and requests. */
#ifndef CURL_LOOP_H
#define CURL_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct curl_loop;
struct curl_req;

enum curl_req_method {
	CURL_REQ_GET,
	CURL_REQ_POST,
	CURL_REQ_PUT,
	CURL_REQ_PATCH,
	CURL_REQ_DELETE
};

/* How a request ended; see curl_req_outcome(). */
enum curl_req_outcome {
	CURL_REQ_ANSWERED, /* a whole response arrived: curl_req_status() is its code */
	CURL_REQ_TIMEOUT,  /* the request's timeout (or the connect timeout) expired */
	CURL_REQ_CONNECT,  /* could not resolve the host or connect to it */
	CURL_REQ_FAILED	   /* any other transport error: TLS, protocol, cut short */
};

/* Runs once per request, from the loop, after the transfer has left libcurl. */
typedef void (*curl_req_done_cb)(struct curl_req *, void *arg);

#define CURL_REQ_DEFAULT_TIMEOUT_MS 30000
#define CURL_REQ_CONNECT_TIMEOUT_MS 10000 /* at most; never longer than the timeout */

/* Any number per event_base; the first loop initialises libcurl, the last cleans it up. */
struct curl_loop *curl_loop_new(struct event_base *);
/* Requests started and not yet called back. */
int curl_loop_in_flight(const struct curl_loop *);
/*
 * Frees every request of this loop, abandoning those in flight without callbacks: the
 * caller must not use its pointers to them afterwards. Safe from inside a done callback.
 */
void curl_loop_free(struct curl_loop *);

/*
 * A request: create, set what to send, start; read the answer in the callback. Setters
 * copy their arguments. Defaults: GET, no body, CURL_REQ_DEFAULT_TIMEOUT_MS, response body
 * discarded. Redirects are never followed; only http and https URLs are allowed.
 */
struct curl_req *curl_req_new(struct curl_loop *);
/*
 * Why libcurl could not use URL as an http or https URL (its own parser: brackets, host,
 * port 1-65535, characters), or NULL. A short static text that never echoes the URL.
 * Needs no loop; the config check uses it.
 */
const char *curl_url_problem(const char *url);
void curl_req_set_method(struct curl_req *, enum curl_req_method);
void curl_req_set_url(struct curl_req *, const char *);
/* "Name: value" sent as is; the caller keeps CR and LF out. A body sent without a
 * Content-Type header goes as application/x-www-form-urlencoded (libcurl's default). */
void curl_req_add_header(struct curl_req *, const char *line);
void curl_req_add_headerf(struct curl_req *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void curl_req_set_body(struct curl_req *, const void *body, size_t len);
/* Total time allowed, connect included; 0 means the default, at most INT32_MAX. */
void curl_req_set_timeout(struct curl_req *, uint64_t ms);
/* HTTP Basic credentials, handed to libcurl; the password is never logged. */
void curl_req_set_basic_auth(struct curl_req *, const char *user, const char *password);
/* Keep at most MAX bytes of the response body; the rest is read and dropped (0: keep none). */
void curl_req_set_max_response(struct curl_req *, size_t max);
/* A short label for log lines about this request, e.g. the relay name (never the URL). */
void curl_req_set_label(struct curl_req *, const char *);

/*
 * Hands the request to libcurl. DONE (not NULL) runs exactly once, later, from the loop;
 * never from inside this call. 0, or -1 (request not started, no callback; see curl_req_error()).
 * A request starts once.
 */
int curl_req_start(struct curl_req *, curl_req_done_cb done, void *arg);
/*
 * Frees a request. One in flight is abandoned first, without a callback. Safe from inside
 * any done callback, this request's included; the callback is where requests usually go.
 */
void curl_req_free(struct curl_req *);

/* The answer, valid in the callback and until curl_req_free. */
enum curl_req_outcome curl_req_outcome(const struct curl_req *);
/* The HTTP status of the last response, 0 when none arrived. */
int curl_req_status(const struct curl_req *);
/* The kept body, NUL-terminated (may hold NULs); *truncated set when bytes were dropped. */
const char *curl_req_body(const struct curl_req *, size_t *len, int *truncated);
/* A header of the final response by name, case-insensitive, value trimmed; NULL when absent. */
const char *curl_req_header(const struct curl_req *, const char *name);
/*
 * What went wrong, for logs and deliveries.last_result: "timeout after 10000 ms",
 * "connect: Connection refused", or libcurl's error text; "" when answered. Never holds
 * credentials, header values or the URL's path.
 */
const char *curl_req_error(const struct curl_req *);
/* Wall time from start to completion. */
uint64_t curl_req_elapsed_ms(const struct curl_req *);

#endif
