/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer harness for the webhook decoders: every input is decoded as get, post and
 * json for one kind, and each decoded payload is parsed back. Not built by default:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -Isrc -I. src/webhook.c src/decode.c src/json.c src/log.c src/xmalloc.c \
 *       src/systemd.c tests/fuzz/decode-fuzz.c \
 *       $(pkg-config --cflags --libs yajl libsystemd) -o decode-fuzz
 *   ./decode-fuzz -max_len=65536 tests/data/webhooks
 *
 * (run from a configured build tree, or add -I for the directory holding autoconf.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "json.h"
#include "webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Every payload must be one valid JSON object, whatever came in. */
static void
fuzz_check_payloads(const struct webhook_event *evs, int n)
{
	struct json_doc *doc;
	int i;

	for (i = 0; i < n; i++) {
		if (evs[i].payload == NULL)
			abort();
		doc = json_doc_parse(evs[i].payload, strlen(evs[i].payload), NULL, 0);
		if (doc == NULL || !json_is_object(json_doc_root(doc)))
			abort();
		json_doc_free(doc);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum webhook_format formats[] = { FORMAT_GET, FORMAT_POST, FORMAT_JSON };
	const struct webhook_kind *kind;
	struct webhook_event *evs;
	char err[256];
	size_t i;
	int n;

	/* The first byte picks the kind, so receipts and inbound kinds are both covered. */
	kind = &webhook_kinds[size > 0 ? data[0] % KIND_COUNT : 0];
	for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		n = decode_events(kind, formats[i], (const char *)data, size, &evs, err,
		    sizeof err);
		if (n > 0) {
			fuzz_check_payloads(evs, n);
			webhook_events_free(evs, (size_t)n);
		}
	}
	return 0;
}
