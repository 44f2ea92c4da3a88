/* SPDX-License-Identifier: ISC */
/*
 * Request bodies and query strings into events: form decoding for the get and post
 * formats (split first, then percent-decode), and json via json_decode_objects. Names and
 * values are kept exactly or refused: no NUL, UTF-8 only, each name once per event.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "decode.h"
#include "json.h"
#include "xmalloc.h"

static int __attribute__((format(printf, 3, 4)))
decode_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
decode_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s ('+' is a space) into a new NUL-terminated buffer; -1 on a bad escape. */
static int
decode_percent(const char *s, size_t len, char **out, size_t *outlen)
{
	char *d;
	size_t i, o = 0;
	int hi, lo;

	d = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '+')
			d[o++] = ' ';
		else if (s[i] != '%')
			d[o++] = s[i];
		else if (len - i >= 3 && (hi = decode_hex(s[i + 1])) >= 0 &&
		    (lo = decode_hex(s[i + 2])) >= 0) {
			d[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			free(d);
			return -1;
		}
	}
	d[o] = '\0';
	*out = d;
	*outlen = o;
	return 0;
}

/* Why a decoded name or value cannot be kept exactly as sent, or NULL when it can. */
static const char *
decode_text_problem(const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL)
		return "holds a NUL byte";
	if (!json_utf8_valid(s, len))
		return "is not valid UTF-8";
	return NULL;
}

/*
 * Pair N, "key=value" (or a bare "key"): split at the first '=', decode each side, and
 * refuse what would not be kept exactly (a NUL, invalid UTF-8, a name given twice).
 */
static int
decode_pair(const char *p, size_t len, size_t n, struct fields *out, char *err, size_t errlen)
{
	const char *eq, *why;
	char *key = NULL, *value = NULL;
	size_t rawklen, klen, vlen = 0;
	int rc = -1;

	eq = memchr(p, '=', len);
	rawklen = eq != NULL ? (size_t)(eq - p) : len;
	if (decode_percent(p, rawklen, &key, &klen) == -1 ||
	    (eq != NULL && decode_percent(eq + 1, len - rawklen - 1, &value, &vlen) == -1))
		decode_fail(err, errlen, "bad percent-encoding in field %zu", n);
	else if ((why = decode_text_problem(key, klen)) != NULL)
		decode_fail(err, errlen, "field %zu: name %s", n, why);
	else if (value != NULL && (why = decode_text_problem(value, vlen)) != NULL)
		decode_fail(err, errlen, "field %zu: value %s", n, why);
	else if (fields_get(out, key) != NULL)
		decode_fail(err, errlen, "field %zu: name repeats an earlier field", n);
	else {
		fields_add(out, key, klen, value != NULL ? value : "", vlen, FIELD_STRING);
		rc = 0;
	}
	free(key);
	free(value);
	return rc;
}

int
decode_form(const char *buf, size_t len, struct fields *out, char *err, size_t errlen)
{
	const char *p, *end, *amp;
	size_t seglen, npairs = 0;

	if (buf == NULL || len == 0)
		return decode_fail(err, errlen, "empty body");
	for (p = buf, end = buf + len; p < end; p = amp + 1) {
		amp = memchr(p, '&', (size_t)(end - p));
		seglen = (size_t)((amp != NULL ? amp : end) - p);
		if (seglen > 0 && ++npairs > WEBHOOK_MAX_FIELDS) {
			fields_free(out);
			return decode_fail(
			    err, errlen, "too many fields (more than %d)", WEBHOOK_MAX_FIELDS);
		}
		if (seglen > 0 && decode_pair(p, seglen, npairs, out, err, errlen) == -1) {
			fields_free(out);
			return -1;
		}
		if (amp == NULL)
			break;
	}
	if (out->n == 0)
		return decode_fail(err, errlen, "no fields");
	return 0;
}

/* Whether the N bytes at v name UTF-8 or its subset US-ASCII. */
static int
decode_charset_name_ok(const char *v, size_t n)
{
	static const char *const names[] = { "utf-8", "utf8", "us-ascii" };
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strlen(names[i]) == n && strncasecmp(v, names[i], n) == 0)
			return 1;
	}
	return 0;
}

int
decode_charset_ok(const char *ct)
{
	const char *p, *v;
	int quoted;

	for (p = ct != NULL ? strchr(ct, ';') : NULL; p != NULL; p = strchr(p, ';')) {
		p++;
		p += strspn(p, " \t");
		if (strncasecmp(p, "charset", 7) != 0)
			continue;
		v = p + 7 + strspn(p + 7, " \t");
		if (*v++ != '=')
			continue;
		v += strspn(v, " \t");
		if ((quoted = *v == '"'))
			v++;
		if (!decode_charset_name_ok(v, strcspn(v, quoted ? "\"" : "; \t")))
			return 0;
	}
	return 1;
}

static void
decode_event_init(
    struct webhook_event *ev, const struct webhook_kind *kind, enum webhook_format format)
{
	ev->kind = kind;
	ev->format = format;
	webhook_event_finish(ev);
}

static int
decode_events_form(const struct webhook_kind *kind, enum webhook_format format, const char *buf,
    size_t len, struct webhook_event **out, char *err, size_t errlen)
{
	struct webhook_event *ev;

	ev = xcalloc(1, sizeof *ev);
	if (decode_form(buf, len, &ev->fields, err, errlen) == -1) {
		free(ev);
		return -1;
	}
	decode_event_init(ev, kind, format);
	*out = ev;
	return 1;
}

static int
decode_events_json(const struct webhook_kind *kind, const char *buf, size_t len,
    struct webhook_event **out, char *err, size_t errlen)
{
	struct webhook_event *evs;
	struct fields *objs;
	size_t n, i;

	if (json_decode_objects(buf, len, &objs, &n, err, errlen) == -1)
		return -1;
	evs = xcalloc(n, sizeof *evs);
	for (i = 0; i < n; i++) {
		evs[i].fields = objs[i];
		decode_event_init(&evs[i], kind, FORMAT_JSON);
	}
	free(objs);
	*out = evs;
	return (int)n;
}

int
decode_events(const struct webhook_kind *kind, enum webhook_format format, const char *buf,
    size_t len, struct webhook_event **out, char *err, size_t errlen)
{
	*out = NULL;
	if (kind == NULL)
		return decode_fail(err, errlen, "unknown kind");
	switch (format) {
	case FORMAT_GET:
	case FORMAT_POST:
		return decode_events_form(kind, format, buf, len, out, err, errlen);
	case FORMAT_JSON:
		return decode_events_json(kind, buf, len, out, err, errlen);
	default:
		return decode_fail(err, errlen, "unknown format");
	}
}
