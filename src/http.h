/* SPDX-License-Identifier: ISC */
/* evhttp: listeners, limits, the route table, and every answer of the HTTP contract. */
#ifndef HTTP_H
#define HTTP_H

struct event_base;
struct config;
struct ingest;
struct store;
struct webhook_event;
struct http;

/* Provides the JSON text for /healthz's provisioning/selftest keys and outbox gauges. */
struct http_status_provider {
	const char *(*provisioning)(void *arg);
	const char *(*selftest)(void *arg);
	/* /healthz "poll": "off", "ok" or "error: ...". may be NULL ("off") */
	const char *(*poll)(void *arg);
	/* an event was stored or recognised as a duplicate: self-test matching. may be NULL */
	void (*event_stored)(void *arg, const struct webhook_event *);
	/* before storing: fill ev->relays with the relays this event goes to. may be NULL */
	void (*route)(void *arg, struct webhook_event *);
	void *arg;
};

struct http *http_new(struct event_base *, const struct config *, struct ingest *, struct store *);
/* Bind the config's listen addresses, or the systemd-passed sockets. 0 or -1 (logged). */
int http_listen(struct http *);
/* Swap in a new config (reload): limits, token, ACLs; listen addresses need a restart. */
void http_set_config(struct http *, const struct config *);
void http_set_status_provider(struct http *, const struct http_status_provider *);
/* Stop accepting new connections. */
void http_stop_accepting(struct http *);
/* Requests waiting for a commit. */
int http_in_flight(const struct http *);
void http_free(struct http *);

#endif
