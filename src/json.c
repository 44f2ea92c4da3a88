/* SPDX-License-Identifier: ISC */
/*
 * Everything that touches yajl. Input is parsed with yajl's callback API into a small tree
 * of our own (exact string lengths, numbers as written, bounded depth and size), which
 * serves both webhook bodies and the lenient reader of API answers; output goes through
 * one yajl_gen wrapper that never writes invalid UTF-8.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "json.h"
#include "log.h"
#include "xmalloc.h"

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_OBJECT, JSON_ARRAY };

struct json_member {
	char *key;              /* objects only; keylen bytes, NUL-terminated */
	size_t keylen;
	struct json_node *value;
};

struct json_node {
	enum json_type type;
	char *text;             /* string bytes, number as written, "true"/"false" */
	size_t len;
	struct json_member *m;  /* object members or array elements */
	size_t n, cap;
};

struct json_doc {
	struct json_node *root;
};

/* Parser state shared by the yajl callbacks. */
struct json_build {
	struct json_node *root;
	struct json_node *stack[JSON_MAX_DEPTH];
	size_t depth;
	char *key;              /* the pending object key */
	size_t keylen;
	size_t values;
	const char *error;      /* why a callback stopped the parse */
};

struct json_gen {
	yajl_gen g;
	int depth;
	int failed;
};

static void json_emit_node(struct json_gen *, const struct json_node *);

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
static yajl_alloc_funcs json_alloc_funcs = { json_yalloc, json_yrealloc, json_yfree, NULL };

static void __attribute__((format(printf, 3, 4)))
json_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *
json_copy(const char *s, size_t len)
{
	char *p;

	p = xmalloc(len + 1);
	if (len > 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void
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

/* A new value, attached to the open container (with the pending key) or as the root. */
static struct json_node *
json_build_value(struct json_build *b, enum json_type type, const char *text, size_t len)
{
	struct json_node *n, *parent;
	struct json_member *m;

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
	if (b->depth == 0) {
		b->root = n;
		return n;
	}
	parent = b->stack[b->depth - 1];
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
json_parse_error(yajl_handle h, const struct json_build *b, const char *buf, size_t len,
    size_t at, char *err, size_t errlen)
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
static struct json_node *
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

/* Length of the well-formed UTF-8 sequence at s (no overlongs, no surrogates), or 0. */
static size_t
json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned int cp, min;
	size_t need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		need = 2, cp = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3, cp = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (n < need + 1)
		return 0;
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/* A copy of s with each ill-formed byte replaced by U+FFFD, or NULL when s is clean. */
static char *
json_utf8_clean(const char *s, size_t len, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k, o;
	char *out;

	while (i < len && (k = json_utf8_len(u + i, len - i)) != 0)
		i += k;
	if (i == len)
		return NULL;
	out = xreallocarray(NULL, len + 1, 3);
	memcpy(out, s, i);
	for (o = i; i < len; i += k) {
		if ((k = json_utf8_len(u + i, len - i)) == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Whether s is exactly one JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
json_number_valid(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		s += strspn(s, "0123456789");
	else
		return 0;
	if (*s == '.') {
		if (strspn(++s, "0123456789") == 0)
			return 0;
		s += strspn(s, "0123456789");
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (strspn(s, "0123456789") == 0)
			return 0;
		s += strspn(s, "0123456789");
	}
	return *s == '\0';
}

struct json_gen *
json_gen_new(void)
{
	struct json_gen *g;

	g = xcalloc(1, sizeof *g);
	g->g = yajl_gen_alloc(&json_alloc_funcs);
	if (g->g == NULL)
		fatalx("json_gen_new: yajl_gen_alloc failed");
	return g;
}

void
json_gen_free(struct json_gen *g)
{
	if (g == NULL)
		return;
	yajl_gen_free(g->g);
	free(g);
}

/* Record a yajl_gen failure (misuse: a non-string key, a second top-level value...). */
static int
json_gen_check(struct json_gen *g, yajl_gen_status st)
{
	if (st == yajl_gen_status_ok)
		return 0;
	if (!g->failed)
		log_warnx("json_gen: yajl_gen status %d", (int)st);
	g->failed = 1;
	return -1;
}

void
json_gen_map_open(struct json_gen *g)
{
	if (json_gen_check(g, yajl_gen_map_open(g->g)) == 0)
		g->depth++;
}

void
json_gen_map_close(struct json_gen *g)
{
	if (json_gen_check(g, yajl_gen_map_close(g->g)) == 0)
		g->depth--;
}

void
json_gen_array_open(struct json_gen *g)
{
	if (json_gen_check(g, yajl_gen_array_open(g->g)) == 0)
		g->depth++;
}

void
json_gen_array_close(struct json_gen *g)
{
	if (json_gen_check(g, yajl_gen_array_close(g->g)) == 0)
		g->depth--;
}

void
json_gen_string(struct json_gen *g, const char *s)
{
	json_gen_stringn(g, s, s != NULL ? strlen(s) : 0);
}

void
json_gen_stringn(struct json_gen *g, const char *s, size_t len)
{
	char *clean;
	size_t cleanlen;

	if (s == NULL) {
		json_gen_null(g);
		return;
	}
	if ((clean = json_utf8_clean(s, len, &cleanlen)) == NULL) {
		json_gen_check(g, yajl_gen_string(g->g, (const unsigned char *)s, len));
		return;
	}
	json_gen_check(g, yajl_gen_string(g->g, (const unsigned char *)clean, cleanlen));
	free(clean);
}

void
json_gen_integer(struct json_gen *g, long long v)
{
	json_gen_check(g, yajl_gen_integer(g->g, v));
}

void
json_gen_number_raw(struct json_gen *g, const char *s)
{
	if (s == NULL || !json_number_valid(s)) {
		json_gen_string(g, s);
		return;
	}
	json_gen_check(g, yajl_gen_number(g->g, s, strlen(s)));
}

void
json_gen_bool(struct json_gen *g, int v)
{
	json_gen_check(g, yajl_gen_bool(g->g, v != 0));
}

void
json_gen_null(struct json_gen *g)
{
	json_gen_check(g, yajl_gen_null(g->g));
}

int
json_gen_raw(struct json_gen *g, const char *json)
{
	struct json_node *root;

	if (json == NULL || (root = json_parse_tree(json, strlen(json), NULL, 0)) == NULL)
		return -1;
	json_emit_node(g, root);
	json_node_free(root);
	return 0;
}

void
json_gen_kv_string(struct json_gen *g, const char *k, const char *v)
{
	json_gen_string(g, k);
	json_gen_string(g, v);
}

void
json_gen_kv_integer(struct json_gen *g, const char *k, long long v)
{
	json_gen_string(g, k);
	json_gen_integer(g, v);
}

char *
json_gen_finish(struct json_gen *g, size_t *len)
{
	const unsigned char *buf = NULL;
	size_t blen = 0;
	char *out;

	if (yajl_gen_get_buf(g->g, &buf, &blen) != yajl_gen_status_ok)
		g->failed = 1;
	if (g->failed || g->depth != 0 || blen == 0) {
		log_warnx("json_gen_finish: incomplete or invalid document");
		json_gen_free(g);
		return NULL;
	}
	if (len != NULL)
		*len = blen;
	out = json_copy((const char *)buf, blen);
	json_gen_free(g);
	return out;
}

/* Write a parsed value back out (strings are re-checked for UTF-8 on the way). */
static void
json_emit_node(struct json_gen *g, const struct json_node *n)
{
	size_t i;

	switch (n->type) {
	case JSON_NULL:
		json_gen_null(g);
		break;
	case JSON_BOOL:
		json_gen_bool(g, n->text[0] == 't');
		break;
	case JSON_NUMBER:
		json_gen_number_raw(g, n->text);
		break;
	case JSON_STRING:
		json_gen_stringn(g, n->text, n->len);
		break;
	case JSON_OBJECT:
		json_gen_map_open(g);
		for (i = 0; i < n->n; i++) {
			json_gen_stringn(g, n->m[i].key, n->m[i].keylen);
			json_emit_node(g, n->m[i].value);
		}
		json_gen_map_close(g);
		break;
	case JSON_ARRAY:
		json_gen_array_open(g);
		for (i = 0; i < n->n; i++)
			json_emit_node(g, n->m[i].value);
		json_gen_array_close(g);
		break;
	}
}

/* A whole value as compact JSON text. */
static char *
json_node_text(const struct json_node *n, size_t *len)
{
	struct json_gen *g;

	g = json_gen_new();
	json_emit_node(g, n);
	return json_gen_finish(g, len);
}

char *
json_quote(const char *s, size_t len)
{
	struct json_gen *g;

	g = json_gen_new();
	json_gen_stringn(g, s != NULL ? s : "", s != NULL ? len : 0);
	return json_gen_finish(g, NULL);
}

/* One field's value with its type kept; a FIELD_JSON that does not parse becomes a string. */
static void
json_gen_field(struct json_gen *g, const struct field *f)
{
	if (f->value == NULL) {
		json_gen_null(g);
		return;
	}
	switch (f->type) {
	case FIELD_NULL:
		json_gen_null(g);
		break;
	case FIELD_NUMBER:
		json_gen_number_raw(g, f->value);
		break;
	case FIELD_BOOL:
		if (strcmp(f->value, "true") == 0 || strcmp(f->value, "false") == 0)
			json_gen_bool(g, f->value[0] == 't');
		else
			json_gen_stringn(g, f->value, f->len);
		break;
	case FIELD_JSON:
		if (json_gen_raw(g, f->value) == -1)
			json_gen_stringn(g, f->value, f->len);
		break;
	case FIELD_STRING:
		json_gen_stringn(g, f->value, f->len);
		break;
	}
}

char *
json_fields_object(const struct fields *fields)
{
	struct json_gen *g;
	char *out;
	size_t i;

	g = json_gen_new();
	json_gen_map_open(g);
	for (i = 0; i < fields->n; i++) {
		json_gen_string(g, fields->v[i].name);
		json_gen_field(g, &fields->v[i]);
	}
	json_gen_map_close(g);
	out = json_gen_finish(g, NULL);
	return out != NULL ? out : xstrdup("{}");
}

/* One object member as a field: strings with their exact length, the rest as text. */
static void
json_member_field(struct fields *f, const struct json_member *m)
{
	const struct json_node *v = m->value;
	char *text;
	size_t len;

	switch (v->type) {
	case JSON_NULL:
		fields_add(f, m->key, m->keylen, NULL, 0, FIELD_NULL);
		break;
	case JSON_BOOL:
		fields_add(f, m->key, m->keylen, v->text, v->len, FIELD_BOOL);
		break;
	case JSON_NUMBER:
		fields_add(f, m->key, m->keylen, v->text, v->len, FIELD_NUMBER);
		break;
	case JSON_STRING:
		fields_add(f, m->key, m->keylen, v->text, v->len, FIELD_STRING);
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		if ((text = json_node_text(v, &len)) == NULL)
			text = xstrdup("null"), len = 4;
		fields_add(f, m->key, m->keylen, text, len, FIELD_JSON);
		free(text);
		break;
	}
}

/* Check the top level: one object, or a non-empty, bounded array of objects. */
static int
json_check_events(const struct json_node *root, char *err, size_t errlen)
{
	size_t i;

	if (root->type == JSON_OBJECT)
		return 0;
	if (root->type != JSON_ARRAY) {
		json_error(err, errlen, "JSON body is not an object or an array of objects");
		return -1;
	}
	if (root->n == 0) {
		json_error(err, errlen, "JSON body is an empty array");
		return -1;
	}
	if (root->n > WEBHOOK_MAX_EVENTS) {
		json_error(err, errlen, "too many events (more than %d)", WEBHOOK_MAX_EVENTS);
		return -1;
	}
	for (i = 0; i < root->n; i++) {
		if (root->m[i].value->type != JSON_OBJECT) {
			json_error(err, errlen, "JSON array element %zu is not an object", i);
			return -1;
		}
	}
	return 0;
}

/* The members of one event object as fields; -1 when there are too many. */
static int
json_object_fields(const struct json_node *obj, struct fields *out, char *err, size_t errlen)
{
	size_t i;

	if (obj->n > WEBHOOK_MAX_FIELDS) {
		json_error(err, errlen, "too many fields (more than %d)", WEBHOOK_MAX_FIELDS);
		return -1;
	}
	for (i = 0; i < obj->n; i++)
		json_member_field(out, &obj->m[i]);
	return 0;
}

int
json_decode_objects(const char *buf, size_t len, struct fields **out, size_t *nout,
    char *err, size_t errlen)
{
	struct json_node *root;
	const struct json_node *obj;
	struct fields *v;
	size_t n, i;

	*out = NULL;
	*nout = 0;
	if ((root = json_parse_tree(buf, len, err, errlen)) == NULL)
		return -1;
	if (json_check_events(root, err, errlen) == -1) {
		json_node_free(root);
		return -1;
	}
	n = root->type == JSON_OBJECT ? 1 : root->n;
	v = xcalloc(n, sizeof *v);
	for (i = 0; i < n; i++) {
		obj = root->type == JSON_OBJECT ? root : root->m[i].value;
		if (json_object_fields(obj, &v[i], err, errlen) == -1)
			break;
	}
	json_node_free(root);
	if (i < n) {
		for (i = 0; i < n; i++)
			fields_free(&v[i]);
		free(v);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
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
