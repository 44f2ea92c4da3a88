/* SPDX-License-Identifier: ISC */
/* Everything that touches yajl: parsing webhook bodies and API answers, generating JSON. */
#ifndef JSON_H
#define JSON_H

#include <stddef.h>
#include "fields.h"

/*
 * Parse a webhook JSON body: one object or a non-empty array of objects.
 * Each object becomes one struct fields (top-level keys; nested values kept as JSON text).
 * Refused, so that every name and value is kept exactly: a \u0000 escape, an unpaired
 * surrogate escape or a string that is not well-formed UTF-8 (yajl lets overlong forms,
 * surrogates and code points past U+10FFFF through) anywhere, and a key repeated in an
 * event object.
 * Returns 0, or -1 with a reason in err.
 */
int json_decode_objects(
    const char *buf, size_t len, struct fields **out, size_t *nout, char *err, size_t errlen);

struct json_node;
/*
 * The members of one object of a parsed document (an API answer's row) as fields, as
 * json_decode_objects makes them: strings exactly, numbers as written, nested values as
 * JSON text. A repeated key keeps the later value. 0, or -1 when OBJ is not an object or
 * has more than FIELDS_MAX members.
 */
int json_node_fields(const struct json_node *obj, struct fields *out);

/* Serialise fields as one JSON object, keeping each field's type. Caller frees. */
char *json_fields_object(const struct fields *);

/* Whether s is well-formed UTF-8 (no overlongs, no surrogates; NUL counts as valid). */
int json_utf8_valid(const char *s, size_t len);

/* Quote a string as a JSON string literal (with the quotes). Caller frees. */
char *json_quote(const char *s, size_t len);

/* A small generator for building documents (relay bodies, API requests, healthz). */
struct json_gen;
struct json_gen *json_gen_new(void);
void json_gen_free(struct json_gen *);
void json_gen_map_open(struct json_gen *);
void json_gen_map_close(struct json_gen *);
void json_gen_array_open(struct json_gen *);
void json_gen_array_close(struct json_gen *);
void json_gen_string(struct json_gen *, const char *); /* NULL writes null */
void json_gen_stringn(struct json_gen *, const char *, size_t);
void json_gen_integer(struct json_gen *, long long);
void json_gen_number_raw(struct json_gen *, const char *); /* not a JSON number: a string */
void json_gen_bool(struct json_gen *, int);
void json_gen_null(struct json_gen *);
/* Insert an already serialised JSON value (re-parsed, so it must be valid). 0 or -1. */
int json_gen_raw(struct json_gen *, const char *json);
/* kv helpers for maps */
void json_gen_kv_string(struct json_gen *, const char *k, const char *v);
void json_gen_kv_integer(struct json_gen *, const char *k, long long v);
/*
 * The finished text (NUL-terminated; its length in *len unless len is NULL); caller frees
 * it. Consumes the generator: do not json_gen_free it afterwards (json_gen_free is for
 * abandoning one). NULL when the calls did not make exactly one complete value (a
 * programming error, logged). Strings that are not valid UTF-8 are written with U+FFFD
 * in place of each ill-formed byte, so the output is always valid JSON.
 */
char *json_gen_finish(struct json_gen *, size_t *len);

/*
 * A parsed document for reading API answers leniently. Any JSON value may be the root;
 * nesting is limited to JSON_MAX_DEPTH and the whole document to JSON_MAX_VALUES values.
 */
#define JSON_MAX_DEPTH	32
#define JSON_MAX_VALUES 200000
struct json_doc;
struct json_node;
struct json_doc *json_doc_parse(const char *buf, size_t len, char *err, size_t errlen);
void json_doc_free(struct json_doc *);
const struct json_node *json_doc_root(const struct json_doc *);
/* Object member by key, NULL when absent or not an object. */
const struct json_node *json_get(const struct json_node *, const char *key);
/* Array length / element; 0 / NULL when not an array. */
size_t json_array_len(const struct json_node *);
const struct json_node *json_array_at(const struct json_node *, size_t);
int json_is_object(const struct json_node *);
int json_is_array(const struct json_node *);
int json_is_null(const struct json_node *);
int json_is_bool(const struct json_node *);
/* Lenient readers: strings holding numbers count as numbers, true as 1. 0 ok, -1 no. */
int json_as_int(const struct json_node *, long long *out);
/* Strings as is, numbers as written, true/false; NULL otherwise. Points into the doc. */
const char *json_as_string(const struct json_node *);

#endif
