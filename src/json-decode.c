/* SPDX-License-Identifier: ISC */
/*
 * Webhook JSON bodies: one object or a bounded array of objects, each turned into a struct
 * fields (top-level members; nested objects and arrays kept as compact JSON text), refusing
 * what could not be kept exactly; and the rows of API answers (polling) as fields.
 */
#include <stdlib.h>
#include <string.h>

#include "json-internal.h"
#include "xmalloc.h"

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
	if (root->n > FIELDS_MAX_OBJECTS) {
		json_error(err, errlen, "too many events (more than %d)", FIELDS_MAX_OBJECTS);
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

/* The value of the four hex digits at s (valid JSON has them after a \u). */
static unsigned int
json_hex4(const char *s)
{
	char tmp[5];

	memcpy(tmp, s, 4);
	tmp[4] = '\0';
	return (unsigned int)strtoul(tmp, NULL, 16);
}

/* Why the \u escape at p (end - p bytes left) cannot be kept exactly, or NULL and its
 * length (12 for a surrogate pair) in *skip. */
static const char *
json_escape_problem(const char *p, const char *end, size_t *skip)
{
	unsigned int cp;

	*skip = 6;
	if (end - p < 6)
		return "a truncated \\u escape";
	cp = json_hex4(p + 2);
	if (cp == 0)
		return "\\u0000 (a NUL character)";
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return "an unpaired low surrogate escape";
	if (cp < 0xd800 || cp > 0xdbff)
		return NULL;
	if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
		return "an unpaired high surrogate escape";
	cp = json_hex4(p + 8);
	if (cp < 0xdc00 || cp > 0xdfff)
		return "an unpaired high surrogate escape";
	*skip = 12;
	return NULL;
}

/*
 * yajl turns \u0000 into a NUL byte (which would cut names and columns), an unpaired high
 * surrogate into '?' and a high surrogate before any other \u escape into some unrelated
 * character, so two different keys could become one: refuse those. Runs on text yajl
 * accepted, where every backslash starts an escape inside a string.
 */
static int
json_check_escapes(const char *buf, size_t len, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len, *why;
	size_t skip;

	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL && end - p >= 2) {
		if (p[1] != 'u') {
			p += 2;
			continue;
		}
		if ((why = json_escape_problem(p, end, &skip)) != NULL) {
			json_error(err, errlen, "JSON string at byte %zu holds %s",
			    (size_t)(p - buf), why);
			return -1;
		}
		p += skip;
	}
	return 0;
}

/*
 * yajl checks only the shape of UTF-8 sequences: overlong forms, UTF-16 surrogates and
 * code points past U+10FFFF get through it, and would be kept raw in the fields but become
 * U+FFFD in the payload. Any such byte sits in a string of text yajl accepted.
 */
static int
json_check_utf8(const char *buf, size_t len, char *err, size_t errlen)
{
	size_t at = json_utf8_span(buf, len);

	if (at == len)
		return 0;
	json_error(err, errlen, "JSON string at byte %zu is not valid UTF-8", at);
	return -1;
}

/* The members of event object N as fields; -1 when there are too many or a key repeats. */
static int
json_object_fields(
    const struct json_node *obj, size_t n, struct fields *out, char *err, size_t errlen)
{
	size_t i;

	if (obj->n > FIELDS_MAX) {
		json_error(err, errlen, "too many fields (more than %d)", FIELDS_MAX);
		return -1;
	}
	for (i = 0; i < obj->n; i++) {
		if (fields_get(out, obj->m[i].key) != NULL) {
			json_error(err, errlen, "JSON object %zu: key %zu repeats an earlier key",
			    n, i + 1);
			return -1;
		}
		json_member_field(out, &obj->m[i]);
	}
	return 0;
}

int
json_node_fields(const struct json_node *obj, struct fields *out)
{
	size_t i;

	if (obj == NULL || obj->type != JSON_OBJECT || obj->n > FIELDS_MAX)
		return -1;
	for (i = 0; i < obj->n; i++)
		json_member_field(out, &obj->m[i]);
	return 0;
}

/* Frees the N events decoded so far (all of them: unused ones are empty). */
static void
json_fields_free_all(struct fields *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fields_free(&v[i]);
	free(v);
}

int
json_decode_objects(
    const char *buf, size_t len, struct fields **out, size_t *nout, char *err, size_t errlen)
{
	struct json_node *root;
	const struct json_node *obj;
	struct fields *v;
	size_t n, i;

	*out = NULL;
	*nout = 0;
	if ((root = json_parse_tree(buf, len, err, errlen)) == NULL)
		return -1;
	if (json_check_utf8(buf, len, err, errlen) == -1 ||
	    json_check_escapes(buf, len, err, errlen) == -1 ||
	    json_check_events(root, err, errlen) == -1) {
		json_node_free(root);
		return -1;
	}
	n = root->type == JSON_OBJECT ? 1 : root->n;
	v = xcalloc(n, sizeof *v);
	for (i = 0; i < n; i++) {
		obj = root->type == JSON_OBJECT ? root : root->m[i].value;
		if (json_object_fields(obj, i + 1, &v[i], err, errlen) == -1)
			break;
	}
	json_node_free(root);
	if (i < n) {
		json_fields_free_all(v, n);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
}
