/* SPDX-License-Identifier: ISC */
/* The field list of one decoded object (form, query or JSON): names, values as received
 * and their types. A leaf: json and webhook build on it. */
#ifndef FIELDS_H
#define FIELDS_H

#include <stddef.h>

/* Bounds on one request: fields per object and objects (JSON array items) per request. */
#define FIELDS_MAX	   1000
#define FIELDS_MAX_OBJECTS 1000

/* How a field's value was received. Form and query values are always strings. */
enum field_type {
	FIELD_STRING,
	FIELD_NUMBER,
	FIELD_BOOL,
	FIELD_NULL,
	FIELD_JSON
};

struct field {
	char *name;
	char *value; /* decoded text; number/bool as written; NULL for null;
	                         FIELD_JSON: a nested object/array as JSON text */
	size_t len;  /* bytes in value (strings may hold NUL) */
	enum field_type type;
};

struct fields {
	struct field *v;
	size_t n, cap;
};

/*
 * Copy one field in. A repeated name replaces the earlier value in place (the later one
 * wins, like most form parsers). Names are C strings: one holding a NUL byte is cut there.
 * A NULL value or FIELD_NULL stores a JSON null (value NULL, len 0).
 */
void fields_add(struct fields *, const char *name, size_t namelen, const char *value,
    size_t valuelen, enum field_type);
const struct field *fields_get(const struct fields *, const char *name);
void fields_free(struct fields *);

#endif
