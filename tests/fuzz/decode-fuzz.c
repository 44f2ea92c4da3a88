/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for form and query decoding (decode.c): every input is decoded as a
 * post body and as a get query string, and each event must keep its fields exactly
 * (fuzz_check_event). Also reads the input as a Content-Type for decode_charset_ok.
 * Seeds: tests/data/webhooks. Built with --enable-fuzzers, run by make fuzz.
 */
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "fuzz.h"

/* Decode DATA in FORMAT; a refusal must say why, an event must be exact. */
static void
fuzz_decode(
    const struct webhook_kind *kind, enum webhook_format format, const char *data, size_t size)
{
	struct webhook_event *evs;
	char err[256] = "";
	int n, i;

	n = decode_events(kind, format, data, size, &evs, err, sizeof err);
	if (n == -1) {
		if (err[0] == '\0' || evs != NULL)
			fuzz_fail("a refusal without a reason");
		return;
	}
	if (n != 1)
		fuzz_fail("a form gave %d events", n);
	if (evs[0].fields.n == 0 || evs[0].fields.n > WEBHOOK_MAX_FIELDS)
		fuzz_fail("an event with %zu fields", evs[0].fields.n);
	for (i = 0; i < n; i++)
		fuzz_check_event(&evs[i]);
	webhook_events_free(evs, (size_t)n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The kind only changes columns and dedupe keys: take one from the size. */
	const struct webhook_kind *kind = &webhook_kinds[size % KIND_COUNT];
	char *ct;

	fuzz_decode(kind, FORMAT_POST, (const char *)data, size);
	fuzz_decode(kind, FORMAT_GET, (const char *)data, size);
	ct = fuzz_cstring(data, size);
	(void)decode_charset_ok(ct);
	free(ct);
	return 0;
}
