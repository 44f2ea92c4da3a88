/* SPDX-License-Identifier: ISC */
/*
 * JSON input. yajl's callback API builds a small tree of our own (exact string lengths,
 * numbers as written, bounded depth and size) that serves both webhook bodies
 * (json-decode.c) and the lenient reader of API answers below: json_doc and json_node.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "json-internal.h"
#include "xmalloc.h"

struct json_doc {
	struct json_node *root;
};

/* Parser state shared by the yajl callbacks. */
struct json_build {
	struct json_node *root;
	struct json_node *stack[JSON_MAX_DEPTH];
	size_t depth;
	char *key; /* the pending object key */
	size_t keylen;
	size_t values;
	const char *error; /* why a callback stopped the parse */
};

static void *
json_yalloc(void *ctx, size_t size)
{
	return xmalloc(size);
}

static void *
json_yrealloc(void *ctx, void *p, size_t size)
{
	return xreallocarray(p, 1, size);
}

static void
json_yfree(void *ctx, void *p)
{
	free(p);
}

/* yajl allocates through xmalloc: running out of memory is fatal, as everywhere else. */
yajl_alloc_funcs json_alloc_funcs = { json_yalloc, json_yrealloc, json_yfree, NULL };

void
json_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

char *
json_copy(const char *s, size_t len)
{
	char *p;

	p = xmalloc(len + 1);
	if (len > 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void
json_node_free(struct json_node *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++) {
		free(n->m[i].key);
		json_node_free(n->m[i].value);
	}
	free(n->m);
	free(n->text);
	free(n);
}

/* Adds N to the open container, under the pending key for an object. */
static void
json_build_attach(struct json_build *b, struct json_node *n)
{
	struct json_node *parent = b->stack[b->depth - 1];
	struct json_member *m;

	if (parent->n == parent->cap) {
		parent->cap = parent->cap == 0 ? 8 : parent->cap * 2;
		parent->m = xreallocarray(parent->m, parent->cap, sizeof *parent->m);
	}
	m = &parent->m[parent->n++];
	m->key = b->key;
	m->keylen = b->keylen;
	m->value = n;
	b->key = NULL;
	b->keylen = 0;
}

/* A new value, attached to the open container (with the pending key) or as the root. */
static struct json_node *
json_build_value(struct json_build *b, enum json_type type, const char *text, size_t len)
{
	struct json_node *n;

	if (++b->values > JSON_MAX_VALUES) {
		b->error = "too many values";
		return NULL;
	}
	n = xcalloc(1, sizeof *n);
	n->type = type;
	if (text != NULL) {
		n->text = json_copy(text, len);
		n->len = len;
	}
	if (b->depth == 0)
		b->root = n;
	else
		json_build_attach(b, n);
	return n;
}

static int
json_cb_null(void *ctx)
{
	return json_build_value(ctx, JSON_NULL, NULL, 0) != NULL;
}

static int
json_cb_boolean(void *ctx, int v)
{
	return json_build_value(ctx, JSON_BOOL, v ? "true" : "false", v ? 4 : 5) != NULL;
}

static int
json_cb_number(void *ctx, const char *s, size_t len)
{
	return json_build_value(ctx, JSON_NUMBER, s, len) != NULL;
}

static int
json_cb_string(void *ctx, const unsigned char *s, size_t len)
{
	return json_build_value(ctx, JSON_STRING, (const char *)s, len) != NULL;
}

static int
json_cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct json_build *b = ctx;

	free(b->key);
	b->key = json_copy((const char *)s, len);
	b->keylen = len;
	return 1;
}

static int
json_cb_open(struct json_build *b, enum json_type type)
{
	struct json_node *n;

	if (b->depth >= JSON_MAX_DEPTH) {
		b->error = "nesting too deep";
		return 0;
	}
	if ((n = json_build_value(b, type, NULL, 0)) == NULL)
		return 0;
	b->stack[b->depth++] = n;
	return 1;
}

static int
json_cb_start_map(void *ctx)
{
	return json_cb_open(ctx, JSON_OBJECT);
}

static int
json_cb_start_array(void *ctx)
{
	return json_cb_open(ctx, JSON_ARRAY);
}

static int
json_cb_close(void *ctx)
{
	struct json_build *b = ctx;

	if (b->depth > 0)
		b->depth--;
	return 1;
}

/* yajl_number takes precedence over yajl_integer/yajl_double: numbers stay as written. */
static const yajl_callbacks json_callbacks = {
	.yajl_null = json_cb_null,
	.yajl_boolean = json_cb_boolean,
	.yajl_number = json_cb_number,
	.yajl_string = json_cb_string,
	.yajl_start_map = json_cb_start_map,
	.yajl_map_key = json_cb_map_key,
	.yajl_end_map = json_cb_close,
	.yajl_start_array = json_cb_start_array,
	.yajl_end_array = json_cb_close,
};

/* The reason for a failed parse: ours when a callback stopped it, else yajl's. */
static void
json_parse_error(yajl_handle h, const struct json_build *b, const char *buf, size_t len, size_t at,
    char *err, size_t errlen)
{
	unsigned char *msg;
	size_t n;

	if (b->error != NULL) {
		json_error(err, errlen, "invalid JSON: %s", b->error);
		return;
	}
	msg = yajl_get_error(h, 0, (const unsigned char *)buf, len);
	n = msg != NULL ? strcspn((char *)msg, "\r\n") : 0;
	json_error(err, errlen, "invalid JSON at byte %zu: %.*s", at, (int)n,
	    msg != NULL ? (char *)msg : "");
	if (msg != NULL)
		yajl_free_error(h, msg);
}

/* Parse one complete JSON text (strict: UTF-8 checked, no comments, no trailing data). */
struct json_node *
json_parse_tree(const char *buf, size_t len, char *err, size_t errlen)
{
	struct json_build b;
	yajl_handle h;
	yajl_status st;
	size_t at;

	if (buf == NULL || len == 0) {
		json_error(err, errlen, "empty body");
		return NULL;
	}
	memset(&b, 0, sizeof b);
	h = yajl_alloc(&json_callbacks, &json_alloc_funcs, &b);
	st = yajl_parse(h, (const unsigned char *)buf, len);
	at = yajl_get_bytes_consumed(h);
	if (st == yajl_status_ok) {
		st = yajl_complete_parse(h);
		at = len;
	}
	if (st != yajl_status_ok)
		json_parse_error(h, &b, buf, len, at, err, errlen);
	yajl_free(h);
	free(b.key);
	if (st != yajl_status_ok) {
		json_node_free(b.root);
		return NULL;
	}
	return b.root;
}

struct json_doc *
json_doc_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct json_doc *doc;
	struct json_node *root;

	if ((root = json_parse_tree(buf, len, err, errlen)) == NULL)
		return NULL;
	doc = xcalloc(1, sizeof *doc);
	doc->root = root;
	return doc;
}

void
json_doc_free(struct json_doc *doc)
{
	if (doc == NULL)
		return;
	json_node_free(doc->root);
	free(doc);
}

const struct json_node *
json_doc_root(const struct json_doc *doc)
{
	return doc != NULL ? doc->root : NULL;
}

/* The last member with that key wins, as with repeated webhook fields. */
const struct json_node *
json_get(const struct json_node *n, const char *key)
{
	size_t i, klen;

	if (n == NULL || n->type != JSON_OBJECT || key == NULL)
		return NULL;
	klen = strlen(key);
	for (i = n->n; i > 0; i--) {
		if (n->m[i - 1].keylen == klen && memcmp(n->m[i - 1].key, key, klen) == 0)
			return n->m[i - 1].value;
	}
	return NULL;
}

size_t
json_array_len(const struct json_node *n)
{
	return n != NULL && n->type == JSON_ARRAY ? n->n : 0;
}

const struct json_node *
json_array_at(const struct json_node *n, size_t i)
{
	if (n == NULL || n->type != JSON_ARRAY || i >= n->n)
		return NULL;
	return n->m[i].value;
}

int
json_is_object(const struct json_node *n)
{
	return n != NULL && n->type == JSON_OBJECT;
}

int
json_is_array(const struct json_node *n)
{
	return n != NULL && n->type == JSON_ARRAY;
}

int
json_is_null(const struct json_node *n)
{
	return n != NULL && n->type == JSON_NULL;
}

int
json_is_bool(const struct json_node *n)
{
	return n != NULL && n->type == JSON_BOOL;
}

/* Integer text, allowing surrounding blanks and integral decimals ("12", " 7 ", "3.0"). */
static int
json_text_int(const char *s, size_t len, long long *out)
{
	char *end;
	long long v;
	double d;

	if (len == 0 || strlen(s) != len || strspn(s, " \t0123456789.eE+-") != len)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end != s && errno == 0 && end[strspn(end, " \t")] == '\0') {
		*out = v;
		return 0;
	}
	errno = 0;
	d = strtod(s, &end);
	if (end == s || errno != 0 || end[strspn(end, " \t")] != '\0')
		return -1;
	if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0))
		return -1;
	v = (long long)d;
	if ((double)v != d)
		return -1;
	*out = v;
	return 0;
}

int
json_as_int(const struct json_node *n, long long *out)
{
	if (n == NULL)
		return -1;
	switch (n->type) {
	case JSON_BOOL:
		*out = n->text[0] == 't';
		return 0;
	case JSON_NUMBER:
	case JSON_STRING:
		return json_text_int(n->text, n->len, out);
	default:
		return -1;
	}
}

const char *
json_as_string(const struct json_node *n)
{
	if (n == NULL)
		return NULL;
	switch (n->type) {
	case JSON_STRING:
	case JSON_NUMBER:
	case JSON_BOOL:
		return n->text;
	default:
		return NULL;
	}
}
