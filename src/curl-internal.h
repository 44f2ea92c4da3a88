/* SPDX-License-Identifier: ISC */
/*
 * Shared by the libcurl glue: curl-loop.c (the multi interface driven by the event_base)
 * and curl-req.c (the requests: options, answer, outcome). These two are the only files
 * that include <curl/curl.h>; nothing else includes this header.
 */
#ifndef CURL_INTERNAL_H
#define CURL_INTERNAL_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "curl-loop.h"

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

/* curl-loop.c */
/* Monotonic milliseconds, for elapsed times. */
uint64_t curl_loop_now_ms(void);

/* curl-req.c */
/* The outcome, status and error text of a finished transfer. */
void curl_req_classify(struct curl_req *, CURLcode);

#endif
