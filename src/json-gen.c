/* SPDX-License-Identifier: ISC */
/*
 * JSON output: one yajl_gen wrapper that never writes invalid UTF-8 (ill-formed bytes become
 * U+FFFD), re-emitting parsed values, and the documents built from it: quoted strings and
 * webhook fields as one object.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "json-internal.h"
#include "log.h"
#include "xmalloc.h"

struct json_gen {
	yajl_gen g;
	int depth;
	int failed;
};

static void json_emit_node(struct json_gen *, const struct json_node *);

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

/* How many bytes at s are well-formed UTF-8 (len when all of them are). */
size_t
json_utf8_span(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < len && (k = json_utf8_len(u + i, len - i)) != 0)
		i += k;
	return i;
}

int
json_utf8_valid(const char *s, size_t len)
{
	return json_utf8_span(s, len) == len;
}

/* A copy of s with each ill-formed byte replaced by U+FFFD, or NULL when s is clean. */
static char *
json_utf8_clean(const char *s, size_t len, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, k, o;
	char *out;

	if ((i = json_utf8_span(s, len)) == len)
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
char *
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
