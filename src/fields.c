/* SPDX-License-Identifier: ISC */
/* The field list of one decoded object: adding (a repeated name replaces the earlier
 * value in place), looking up and freeing. */
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "xmalloc.h"

/* Index of the field with that name, or f->n. */
static size_t
fields_index(const struct fields *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		if (strcmp(f->v[i].name, name) == 0)
			break;
	}
	return i;
}

/*
 * Repeated names (a=1&a=2, or a JSON object with a key twice): the later value replaces
 * the earlier one where it stood, so an event never holds two fields of one name and
 * the payload is a JSON object with unique keys.
 */
void
fields_add(struct fields *f, const char *name, size_t namelen, const char *value, size_t valuelen,
    enum field_type type)
{
	struct field *fd;
	char *key;
	size_t i;

	key = xstrndup(name, namelen);
	if ((i = fields_index(f, key)) < f->n) {
		fd = &f->v[i];
		free(key);
		free(fd->value);
	} else {
		if (f->n == f->cap) {
			f->cap = f->cap == 0 ? 16 : f->cap * 2;
			f->v = xreallocarray(f->v, f->cap, sizeof *f->v);
		}
		fd = &f->v[f->n++];
		fd->name = key;
	}
	if (value == NULL || type == FIELD_NULL) {
		fd->value = NULL, fd->len = 0, fd->type = FIELD_NULL;
		return;
	}
	fd->value = xmalloc(valuelen + 1);
	memcpy(fd->value, value, valuelen);
	fd->value[valuelen] = '\0';
	fd->len = valuelen;
	fd->type = type;
}

const struct field *
fields_get(const struct fields *f, const char *name)
{
	size_t i;

	if (name == NULL || (i = fields_index(f, name)) == f->n)
		return NULL;
	return &f->v[i];
}

void
fields_free(struct fields *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].value);
	}
	free(f->v);
	memset(f, 0, sizeof *f);
}
