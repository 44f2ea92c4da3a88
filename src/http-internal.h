/* SPDX-License-Identifier: ISC */
/* Shared by http.c (server, listeners, answers) and http-request.c (webhook requests). */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <stddef.h>
#include <sys/time.h>

#include <event2/http.h>

#include "http.h"

#define HTTP_MAX_BOUND	    16
#define HTTP_READ_LIMIT_MIN (256 * 1024)

struct http {
	struct event_base *base;
	struct evhttp *evh;
	const struct config *cfg;
	struct ingest *ingest;
	struct store *store;
	struct http_status_provider status;
	struct evhttp_bound_socket *bound[HTTP_MAX_BOUND];
	int nbound;
	char *unix_paths[HTTP_MAX_BOUND]; /* removed at exit */
	int nunix_paths;
	int in_flight; /* requests waiting for their commit */
	struct http_conns *conns;
};

/* One request from arrival until its answer has been written or its client left. */
struct http_ctx {
	struct http *http;
	struct evhttp_request *req; /* NULL once the client went away */
	struct evhttp_connection *evcon;
	struct timeval start;
	int answered;
};

void http_reply(struct http_ctx *, int code, const char *text);
void http_reply_headers(
    struct http_ctx *, int code, const char *text, const char *name, const char *value);
/* Every reply ends the context: the caller must not touch it afterwards. */
void http_reply_doc(struct http_ctx *, int code, const char *type, const char *doc);
void http_ctx_done(struct http_ctx *);
void http_healthz(struct http_ctx *);
void http_metrics(struct http_ctx *);
/* Connections (http-conn.c): deadline, cap, accept errors. */
struct http_conns *http_conns_new(struct http *);
void http_conns_configure(struct http_conns *, const struct config *);
void http_conns_watch(struct http_conns *, struct evhttp_bound_socket *);
/* A whole request arrived on the connection / its answer is on its way. */
void http_conn_request(struct http_conns *, struct evhttp_connection *);
void http_conn_answered(struct http_conns *, struct evhttp_connection *);
void http_conns_free(struct http_conns *);
/* Webhook requests (http-request.c). */
void http_request_cb(struct evhttp_request *, void *);

#endif
