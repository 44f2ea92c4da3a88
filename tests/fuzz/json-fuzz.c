/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the JSON code (json*.c): the json webhook format as ingest decodes
 * it (every event exact, fuzz_check_event), the lenient reader used for API answers, and
 * the generator: normalising a document (json_gen_raw) is idempotent and writes UTF-8,
 * and json_quote reads back as the same string. Seeds: tests/data/webhooks and
 * tests/data/api. Built with --enable-fuzzers, run by make fuzz.
 */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz.h"
#include "json.h"

/* The json webhook format: one object or an array of objects, each event exact. */
static void
fuzz_json_events(const char *data, size_t size)
{
	const struct webhook_kind *kind = &webhook_kinds[size % KIND_COUNT];
	struct webhook_event *evs;
	char err[256] = "";
	int n, i;

	if ((n = decode_events(kind, FORMAT_JSON, data, size, &evs, err, sizeof err)) == -1) {
		if (err[0] == '\0')
			fuzz_fail("a refusal without a reason");
		return;
	}
	if (n < 1 || n > WEBHOOK_MAX_EVENTS)
		fuzz_fail("%d events", n);
	for (i = 0; i < n; i++)
		fuzz_check_event(&evs[i]);
	webhook_events_free(evs, (size_t)n);
}

/* Reads every array element and the members the API client looks at, leniently. */
static void
fuzz_json_walk(const struct json_node *n, int depth)
{
	static const char *const keys[] = { "data", "http_code", "response_code", "current_page",
		"last_page", "message_id", "" };
	long long v;
	size_t i;

	if (depth > JSON_MAX_DEPTH)
		fuzz_fail("a document nested %d deep", depth);
	(void)json_as_int(n, &v);
	(void)json_as_string(n);
	(void)json_is_null(n);
	for (i = 0; i < json_array_len(n); i++)
		fuzz_json_walk(json_array_at(n, i), depth + 1);
	for (i = 0; json_is_object(n) && i < sizeof keys / sizeof keys[0]; i++) {
		if (json_get(n, keys[i]) != NULL)
			fuzz_json_walk(json_get(n, keys[i]), depth + 1);
	}
}

static void
fuzz_json_doc(const char *data, size_t size)
{
	struct json_doc *doc;
	char err[256] = "";

	if ((doc = json_doc_parse(data, size, err, sizeof err)) == NULL) {
		if (err[0] == '\0')
			fuzz_fail("a parse error without a reason");
		return;
	}
	if (json_doc_root(doc) == NULL)
		fuzz_fail("a document without a root");
	fuzz_json_walk(json_doc_root(doc), 1);
	json_doc_free(doc);
}

/* S re-emitted through the generator, or NULL when it is not one JSON value. */
static char *
fuzz_json_normalise(const char *s)
{
	struct json_gen *g = json_gen_new();
	char *out;

	if (json_gen_raw(g, s) == -1) {
		json_gen_free(g);
		return NULL;
	}
	if ((out = json_gen_finish(g, NULL)) == NULL)
		fuzz_fail("json_gen_raw took a value json_gen_finish refuses");
	return out;
}

static void
fuzz_json_gen(const char *s)
{
	char *once, *twice;

	if ((once = fuzz_json_normalise(s)) == NULL)
		return;
	if (!json_utf8_valid(once, strlen(once)))
		fuzz_fail("normalised JSON is not UTF-8");
	if ((twice = fuzz_json_normalise(once)) == NULL)
		fuzz_fail("normalised JSON does not parse: %s", once);
	if (strcmp(once, twice) != 0)
		fuzz_fail("normalising is not idempotent: %s then %s", once, twice);
	free(once);
	free(twice);
}

/* A quoted string is one JSON string; a UTF-8 one reads back unchanged. */
static void
fuzz_json_quote(const char *data, size_t size)
{
	struct json_doc *doc;
	const char *back;
	char *q;

	if ((q = json_quote(data, size)) == NULL)
		fuzz_fail("json_quote failed");
	if ((doc = json_doc_parse(q, strlen(q), NULL, 0)) == NULL)
		fuzz_fail("json_quote wrote invalid JSON: %s", q);
	if ((back = json_as_string(json_doc_root(doc))) == NULL)
		fuzz_fail("json_quote did not write a string: %s", q);
	if (memchr(data, '\0', size) == NULL && json_utf8_valid(data, size) &&
	    (strlen(back) != size || memcmp(back, data, size) != 0))
		fuzz_fail("json_quote does not read back the same: %s", q);
	json_doc_free(doc);
	free(q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstring(data, size);

	fuzz_json_events((const char *)data, size);
	fuzz_json_doc((const char *)data, size);
	fuzz_json_gen(s);
	fuzz_json_quote((const char *)data, size);
	free(s);
	return 0;
}
