/* SPDX-License-Identifier: ISC */
/* The ClickSend REST v3 client: the API key, Basic-auth JSON requests over curl-loop, the
 * answer envelope read leniently, error classes, and lists followed over every page. */
#ifndef CLICKSEND_H
#define CLICKSEND_H

#include <stddef.h>
#include <stdint.h>

#include "curl-loop.h"

struct config;
struct event_base;
struct json_doc;
struct json_node;

#define CLICKSEND_CREDENTIAL   "clicksend-api-key" /* systemd credential name */
#define CLICKSEND_KEY_MAX      4096		   /* bytes read from a key file */
#define CLICKSEND_MAX_RESPONSE (1024 * 1024)	   /* answer bodies kept */
#define CLICKSEND_PAGE_LIMIT   100		   /* rows asked for per page */
#define CLICKSEND_MAX_PAGES    50		   /* a longer list is an error */
#define CLICKSEND_TIMEOUT_MS   30000
#define CLICKSEND_AUTH_TEXT    "ClickSend rejected the credentials (%d): check username and api key"

/*
 * The API key from, in this order: the systemd credential CLICKSEND_CREDENTIAL in
 * $CREDENTIALS_DIRECTORY (skipped when absent or only whitespace), api_key_file (first
 * line, trimmed), api_key. 0 with *key set (caller frees, ideally after explicit_bzero);
 * 1 when no key is configured anywhere; -1 when one cannot be read. Both with a reason in
 * err that names the source, never the key.
 */
int clicksend_load_key(const struct config *, char **key, char *err, size_t errlen);

/* What an answer means for the caller. */
enum clicksend_class {
	CLICKSEND_OK,	     /* 2xx with a readable envelope */
	CLICKSEND_INVALID,   /* 400 and other 4xx: the request was refused as it is */
	CLICKSEND_AUTH,	     /* 401, 403: permanent until the credentials change */
	CLICKSEND_NOT_FOUND, /* 404 */
	CLICKSEND_TRANSIENT  /* 429, 5xx, timeout, network, unreadable answer: retry later */
};

struct clicksend_answer {
	enum clicksend_class cls;
	int status;		      /* the HTTP status (the envelope's http_code if worse) */
	struct json_doc *doc;	      /* the parsed body, NULL when it was not JSON */
	const struct json_node *data; /* the envelope's data, NULL when absent */
	char error[512];	      /* "" when ok; never holds the key */
};

/*
 * Read one answer: STATUS is the HTTP status (0 when none arrived, then TRANSPORT_ERROR
 * says why), BODY the kept bytes. Fills every field of ANS; free with clicksend_answer_clear.
 */
void clicksend_answer_parse(struct clicksend_answer *, int status, const char *body, size_t len,
    int truncated, const char *transport_error);
void clicksend_answer_clear(struct clicksend_answer *);
const char *clicksend_class_name(enum clicksend_class);

/*
 * The rows of one list page: DATA is the envelope's data, either the paginated object
 * ({current_page, last_page, data: [...]}) or a bare array. 0 with *rows (an array or
 * NULL for none) and the page numbers (both 1 when not given), -1 when unreadable.
 */
int clicksend_page(const struct json_node *data, const struct json_node **rows, long long *current,
    long long *last);

/* Every row of a list, across pages; the nodes live as long as the list. */
struct clicksend_list {
	struct clicksend_answer answer; /* the last page's answer; cls says how it ended */
	const struct json_node **rows;
	size_t nrows;
	struct json_doc **docs;
	size_t ndocs;
	int pages;
};
void clicksend_list_clear(struct clicksend_list *);
/* Appends one page's answer (taking its doc). 1 when another page follows, 0 at the end,
 * -1 when the answer is unreadable or past CLICKSEND_MAX_PAGES (answer.error says why). */
int clicksend_list_add(struct clicksend_list *, struct clicksend_answer *, int page);

/* Replace every occurrence of SECRET in TEXT by "***" (secrets shorter than 4 are kept). */
void clicksend_redact(char *text, const char *secret);

struct clicksend;
struct clicksend_call;
/* The answer is only valid during the callback; the call is gone after it. */
typedef void (*clicksend_done_cb)(struct clicksend_answer *, void *arg);
typedef void (*clicksend_list_cb)(struct clicksend_list *, void *arg);

/* A client on BASE; copies its arguments. */
struct clicksend *clicksend_new(
    struct event_base *, const char *api_url, const char *username, const char *key);
void clicksend_set_timeout(struct clicksend *, uint64_t ms);
/* Abandons calls in flight without callbacks. Safe from inside a callback. */
void clicksend_free(struct clicksend *);

/*
 * One request to api_url + PATH with an optional JSON BODY. DONE runs exactly once, from
 * the loop, never from inside this call (a request that cannot start is reported too).
 */
struct clicksend_call *clicksend_request(struct clicksend *, enum curl_req_method, const char *path,
    const char *body, clicksend_done_cb, void *arg);
/* GET PATH?page=N&limit=CLICKSEND_PAGE_LIMIT for every page; DONE once, as above. */
struct clicksend_call *clicksend_list(
    struct clicksend *, const char *path, clicksend_list_cb, void *arg);
/* Forget a call before its callback ran; it never runs. */
void clicksend_cancel(struct clicksend_call *);

#endif
