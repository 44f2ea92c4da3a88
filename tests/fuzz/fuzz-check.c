/* SPDX-License-Identifier: ISC */
/*
 * Checks shared by the fuzz targets: the exactness promise of decoded webhook events
 * (every name and value kept as received, the payload saying the same as the fields),
 * and small helpers. A broken promise aborts with a reason, which libFuzzer reports.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "xmalloc.h"

void
fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);

	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* A name or value as kept: UTF-8 and no NUL byte. */
static void
fuzz_check_text(const char *what, const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL)
		fuzz_fail("%s holds a NUL byte", what);
	if (!json_utf8_valid(s, len))
		fuzz_fail("%s is not valid UTF-8", what);
}

/* Field I of A and B: same name, type and bytes. */
static void
fuzz_same_field(const struct field *a, const struct field *b, size_t i)
{
	if (strcmp(a->name, b->name) != 0)
		fuzz_fail("field %zu: name \"%s\" comes back as \"%s\"", i, a->name, b->name);
	if (a->type != b->type)
		fuzz_fail("field %zu (%s): type %d comes back as %d", i, a->name, (int)a->type,
		    (int)b->type);
	if ((a->value == NULL) != (b->value == NULL) || a->len != b->len ||
	    (a->value != NULL && memcmp(a->value, b->value, a->len) != 0))
		fuzz_fail("field %zu (%s): the value does not come back the same", i, a->name);
}

void
fuzz_check_event(const struct webhook_event *ev)
{
	struct fields *back;
	char err[256] = "";
	size_t i, n;

	for (i = 0; i < ev->fields.n; i++) {
		fuzz_check_text("a field name", ev->fields.v[i].name, strlen(ev->fields.v[i].name));
		if (ev->fields.v[i].value != NULL)
			fuzz_check_text(
			    "a field value", ev->fields.v[i].value, ev->fields.v[i].len);
	}
	if (ev->payload == NULL)
		fuzz_fail("an event without a payload");
	if (json_decode_objects(ev->payload, strlen(ev->payload), &back, &n, err, sizeof err) == -1)
		fuzz_fail("the payload does not decode: %s", err);
	if (n != 1 || back[0].n != ev->fields.n)
		fuzz_fail("the payload holds %zu objects, %zu fields (the event has %zu)", n,
		    back[0].n, ev->fields.n);
	for (i = 0; i < ev->fields.n; i++)
		fuzz_same_field(&ev->fields.v[i], &back[0].v[i], i);
	fields_free(&back[0]);
	free(back);
}
