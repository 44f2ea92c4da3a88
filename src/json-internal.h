/* SPDX-License-Identifier: ISC */
/*
 * Shared by the JSON files: json.c (parsing into a tree, the lenient readers), json-gen.c
 * (the generator) and json-decode.c (webhook bodies as fields). Nothing outside json*.c
 * includes this, so yajl stays inside them.
 */
#ifndef JSON_INTERNAL_H
#define JSON_INTERNAL_H

#include <stddef.h>

#include <yajl/yajl_common.h>

#include "json.h"

enum json_type {
	JSON_NULL,
	JSON_BOOL,
	JSON_NUMBER,
	JSON_STRING,
	JSON_OBJECT,
	JSON_ARRAY
};

struct json_member {
	char *key; /* objects only; keylen bytes, NUL-terminated */
	size_t keylen;
	struct json_node *value;
};

struct json_node {
	enum json_type type;
	char *text; /* string bytes, number as written, "true"/"false" */
	size_t len;
	struct json_member *m; /* object members or array elements */
	size_t n, cap;
};

/* json.c */
/* yajl allocates through xmalloc: running out of memory is fatal, as everywhere else. */
extern yajl_alloc_funcs json_alloc_funcs;
void json_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *json_copy(const char *s, size_t len);
void json_node_free(struct json_node *);
/* Parse one complete JSON text (strict: UTF-8 checked, no comments, no trailing data). */
struct json_node *json_parse_tree(const char *buf, size_t len, char *err, size_t errlen);

/* json-gen.c */
/* A whole value as compact JSON text; NULL when it cannot be written. Caller frees. */
char *json_node_text(const struct json_node *, size_t *len);
/* How many bytes at s are well-formed UTF-8 (len when all of them are). */
size_t json_utf8_span(const char *s, size_t len);

#endif
