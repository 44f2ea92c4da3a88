/* SPDX-License-Identifier: ISC */
/*
 * The ClickSend REST v3 client. Loads the API key (credential, file, inline), sends JSON
 * requests with Basic auth over curl-loop, reads the envelope leniently, sorts answers
 * into error classes and follows paginated lists. The key never reaches a log line or an
 * error text: answers are redacted before anyone sees them.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "clicksend.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "version.h"
#include "webhook.h"
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

/* ------------------------------------------------------------------ the key */

/* The first non-blank line of BUF, trimmed; NULL when BUF is only whitespace. */
static char *
clicksend_first_line(const char *buf, size_t len)
{
	size_t start = 0, end;

	len = strnlen(buf, len);
	while (start < len && isspace((unsigned char)buf[start]))
		start++;
	if (start == len)
		return NULL;
	for (end = start; end < len && buf[end] != '\n' && buf[end] != '\r'; end++)
		;
	while (end > start && isspace((unsigned char)buf[end - 1]))
		end--;
	return xstrndup(buf + start, end - start);
}

/*
 * Reads a small file whole. 0 with *out (NUL-terminated), 1 when it does not exist (only
 * if MISSING_OK), -1 with a reason naming WHAT (never the contents).
 */
static int
clicksend_read_small(const char *path, const char *what, int missing_ok, char **out, size_t *len,
    char *err, size_t errlen)
{
	char *buf = xmalloc(CLICKSEND_KEY_MAX + 2);
	size_t n = 0;
	ssize_t r = 0;
	int fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		free(buf);
		if (missing_ok && errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: cannot open: %s", what, strerror(errno));
		return -1;
	}
	while (n <= CLICKSEND_KEY_MAX && (r = read(fd, buf + n, CLICKSEND_KEY_MAX + 1 - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: cannot read: %s", what, strerror(errno));
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	if (n > CLICKSEND_KEY_MAX)
		snprintf(err, errlen, "%s: too large (over %d bytes)", what, CLICKSEND_KEY_MAX);
	if (n > CLICKSEND_KEY_MAX || r == -1) {
		explicit_bzero(buf, CLICKSEND_KEY_MAX + 2);
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* A key from a file: 0 with *key, 1 when the file is missing or blank (if allowed), -1. */
static int
clicksend_key_from_file(
    const char *path, const char *what, int optional, char **key, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	if ((rc = clicksend_read_small(path, what, optional, &buf, &len, err, errlen)) != 0)
		return rc;
	*key = clicksend_first_line(buf, len);
	explicit_bzero(buf, len);
	free(buf);
	if (*key != NULL)
		return 0;
	if (optional)
		return 1;
	snprintf(err, errlen, "%s: holds no key", what);
	return -1;
}

int
clicksend_load_key(const struct config *cfg, char **key, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path, *what;
	int rc;

	*key = NULL;
	if (dir != NULL && *dir != '\0') {
		xasprintf(&path, "%s/%s", dir, CLICKSEND_CREDENTIAL);
		rc = clicksend_key_from_file(
		    path, "credential " CLICKSEND_CREDENTIAL, 1, key, err, errlen);
		free(path);
		if (rc != 1)
			return rc;
	}
	if (cfg->api_key_file != NULL && *cfg->api_key_file != '\0') {
		xasprintf(&what, "api_key_file %s", cfg->api_key_file);
		rc = clicksend_key_from_file(cfg->api_key_file, what, 0, key, err, errlen);
		free(what);
		return rc;
	}
	if (cfg->api_key != NULL &&
	    (*key = clicksend_first_line(cfg->api_key, strlen(cfg->api_key))) != NULL)
		return 0;
	snprintf(err, errlen,
	    "no API key: set api_key or api_key_file, or the systemd "
	    "credential " CLICKSEND_CREDENTIAL);
	return 1;
}

/* ------------------------------------------------------------------ answers */

const char *
clicksend_class_name(enum clicksend_class cls)
{
	static const char *const names[] = {
		[CLICKSEND_OK] = "ok",
		[CLICKSEND_INVALID] = "invalid",
		[CLICKSEND_AUTH] = "auth",
		[CLICKSEND_NOT_FOUND] = "not found",
		[CLICKSEND_TRANSIENT] = "transient",
	};

	return (unsigned)cls < sizeof(names) / sizeof(names[0]) ? names[cls] : "unknown";
}

static enum clicksend_class
clicksend_classify(int status)
{
	if (status >= 200 && status <= 299)
		return CLICKSEND_OK;
	if (status == 401 || status == 403)
		return CLICKSEND_AUTH;
	if (status == 404)
		return CLICKSEND_NOT_FOUND;
	if (status == 408 || status == 429 || status >= 500 || status == 0)
		return CLICKSEND_TRANSIENT;
	return CLICKSEND_INVALID;
}

void
clicksend_redact(char *text, const char *secret)
{
	size_t slen = secret != NULL ? strlen(secret) : 0;
	char *p;

	if (slen < 4)
		return;
	while ((p = strstr(text, secret)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + slen, strlen(p + slen) + 1);
	}
}

/* Appends to a bounded text; what does not fit is dropped. */
static void __attribute__((format(printf, 3, 4)))
clicksend_append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	if (len + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/* One message value: a string, or the strings of an array (Laravel style) joined. */
static void
clicksend_append_message(char *buf, size_t size, const struct field *f)
{
	struct json_doc *doc;
	const struct json_node *arr;
	const char *s;
	size_t i;

	if (f->type != FIELD_JSON) {
		clicksend_append(buf, size, "%s", f->value != NULL ? f->value : "null");
		return;
	}
	doc = json_doc_parse(f->value, f->len, NULL, 0);
	arr = json_doc_root(doc);
	for (i = 0; i < json_array_len(arr); i++) {
		if ((s = json_as_string(json_array_at(arr, i))) != NULL)
			clicksend_append(buf, size, "%s%s", i > 0 ? " " : "", s);
	}
	json_doc_free(doc);
}

/* " (field: message; ...)" from a 400's data object, when it is one. */
static void
clicksend_append_fields(char *buf, size_t size, const char *body, size_t len)
{
	struct fields *top = NULL, *data = NULL;
	const struct field *f;
	size_t ntop = 0, ndata = 0, i;

	if (json_decode_objects(body, len, &top, &ntop, NULL, 0) == -1 || ntop != 1)
		goto out;
	if ((f = fields_get(&top[0], "data")) == NULL || f->type != FIELD_JSON ||
	    f->value[0] != '{' || json_decode_objects(f->value, f->len, &data, &ndata, NULL, 0))
		goto out;
	for (i = 0; i < data[0].n; i++) {
		clicksend_append(buf, size, "%s%s: ", i == 0 ? " (" : "; ", data[0].v[i].name);
		clicksend_append_message(buf, size, &data[0].v[i]);
	}
	if (data[0].n > 0)
		clicksend_append(buf, size, ")");
out:
	for (i = 0; i < ntop; i++)
		fields_free(&top[i]);
	for (i = 0; i < ndata; i++)
		fields_free(&data[i]);
	free(top);
	free(data);
}

/* The error text of a refused request: "HTTP 400 BAD_REQUEST: Invalid input. (f: m)". */
static void
clicksend_error_text(struct clicksend_answer *ans, const char *body, size_t len)
{
	const struct json_node *root = json_doc_root(ans->doc);
	const char *code = json_as_string(json_get(root, "response_code"));
	const char *msg = json_as_string(json_get(root, "response_msg"));

	if (ans->cls == CLICKSEND_AUTH) {
		snprintf(ans->error, sizeof(ans->error), CLICKSEND_AUTH_TEXT, ans->status);
		return;
	}
	snprintf(ans->error, sizeof(ans->error), "HTTP %d", ans->status);
	if (code != NULL && *code != '\0')
		clicksend_append(ans->error, sizeof(ans->error), " %s", code);
	if (msg != NULL && *msg != '\0')
		clicksend_append(ans->error, sizeof(ans->error), ": %s", msg);
	if (ans->status == 400 && ans->doc != NULL)
		clicksend_append_fields(ans->error, sizeof(ans->error), body, len);
}

void
clicksend_answer_parse(struct clicksend_answer *ans, int status, const char *body, size_t len,
    int truncated, const char *transport_error)
{
	const struct json_node *root;
	char perr[128] = "";
	long long code;

	memset(ans, 0, sizeof(*ans));
	ans->status = status;
	if (status == 0) {
		ans->cls = CLICKSEND_TRANSIENT;
		snprintf(ans->error, sizeof(ans->error), "%s",
		    transport_error != NULL && *transport_error != '\0' ? transport_error :
									  "no answer");
		return;
	}
	if (!truncated && len > 0)
		ans->doc = json_doc_parse(body, len, perr, sizeof(perr));
	root = json_doc_root(ans->doc);
	ans->data = json_get(root, "data");
	/* A 200 whose envelope reports an error counts as that error. */
	if (status >= 200 && status <= 299 &&
	    json_as_int(json_get(root, "http_code"), &code) == 0 && code >= 400 && code <= 599)
		ans->status = (int)code;
	ans->cls = clicksend_classify(ans->status);
	if (ans->cls != CLICKSEND_OK)
		clicksend_error_text(ans, body, len);
	else if (truncated) {
		ans->cls = CLICKSEND_INVALID;
		snprintf(ans->error, sizeof(ans->error), "answer larger than %d bytes",
		    CLICKSEND_MAX_RESPONSE);
	} else if (len > 0 && (root == NULL || !json_is_object(root))) {
		ans->cls = CLICKSEND_TRANSIENT;
		snprintf(ans->error, sizeof(ans->error), "unreadable answer (HTTP %d): %s", status,
		    root == NULL ? perr : "not a JSON object");
	}
}

void
clicksend_answer_clear(struct clicksend_answer *ans)
{
	json_doc_free(ans->doc);
	memset(ans, 0, sizeof(*ans));
}

/* ------------------------------------------------------------------ lists */

int
clicksend_page(const struct json_node *data, const struct json_node **rows, long long *current,
    long long *last)
{
	const struct json_node *v;

	*rows = NULL;
	*current = *last = 1;
	if (data == NULL || json_is_null(data))
		return 0;
	if (json_is_array(data)) {
		*rows = data;
		return 0;
	}
	if (!json_is_object(data))
		return json_as_string(data) != NULL ? 0 : -1; /* true: nothing listed */
	v = json_get(data, "data");
	if (json_is_array(v))
		*rows = v;
	else if (v != NULL && !json_is_null(v))
		return -1;
	if (json_as_int(json_get(data, "current_page"), current) == -1)
		*current = 1;
	if (json_as_int(json_get(data, "last_page"), last) == -1 || *last < *current)
		*last = *current;
	return 0;
}

int
clicksend_list_add(struct clicksend_list *l, struct clicksend_answer *ans, int page)
{
	const struct json_node *rows;
	long long current, last;
	size_t i, n;

	clicksend_answer_clear(&l->answer);
	l->answer = *ans;
	memset(ans, 0, sizeof(*ans));
	if (l->answer.cls != CLICKSEND_OK)
		return -1;
	if (clicksend_page(l->answer.data, &rows, &current, &last) == -1) {
		l->answer.cls = CLICKSEND_TRANSIENT;
		snprintf(
		    l->answer.error, sizeof(l->answer.error), "unreadable list on page %d", page);
		return -1;
	}
	/* the rows point into the doc: the list keeps it */
	l->docs = xreallocarray(l->docs, l->ndocs + 1, sizeof(*l->docs));
	l->docs[l->ndocs++] = l->answer.doc;
	l->answer.doc = NULL;
	l->answer.data = NULL;
	n = json_array_len(rows);
	l->rows = xreallocarray(l->rows, l->nrows + n + 1, sizeof(*l->rows));
	for (i = 0; i < n; i++)
		l->rows[l->nrows++] = json_array_at(rows, i);
	l->pages++;
	if (n == 0 || (current > page ? current : page) >= last)
		return 0;
	if (page >= CLICKSEND_MAX_PAGES) {
		l->answer.cls = CLICKSEND_INVALID;
		snprintf(l->answer.error, sizeof(l->answer.error), "more than %d pages of %d rows",
		    CLICKSEND_MAX_PAGES, CLICKSEND_PAGE_LIMIT);
		return -1;
	}
	return 1;
}

void
clicksend_list_clear(struct clicksend_list *l)
{
	size_t i;

	clicksend_answer_clear(&l->answer);
	for (i = 0; i < l->ndocs; i++)
		json_doc_free(l->docs[i]);
	free(l->docs);
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ requests */

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
