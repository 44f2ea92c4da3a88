/* SPDX-License-Identifier: ISC */
/*
 * ClickSend answers, read without I/O: the envelope taken leniently, the HTTP status sorted
 * into error classes, error texts with the API's field messages (the key redacted), and
 * paginated lists gathered page by page.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clicksend.h"
#include "json.h"
#include "webhook.h"
#include "xmalloc.h"

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
		return json_is_bool(data) ? 0 : -1; /* true: nothing listed; a string is not a list */
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
