/* SPDX-License-Identifier: ISC */
/* Turns a request body or query string into events: get/post (form) and json. */
#ifndef DECODE_H
#define DECODE_H

#include <stddef.h>
#include "webhook.h"

/*
 * Split on '&' and '=' first, then percent-decode each key and value ('+' is a space).
 * Returns 0, or -1 with a reason in err: bad percent-encoding, empty input, a name or value
 * holding a NUL byte or invalid UTF-8, a name given twice.
 */
int decode_form(const char *buf, size_t len, struct fields *out, char *err, size_t errlen);

/*
 * Whether a Content-Type header's charset parameters (if any) all name UTF-8 ("utf-8",
 * "utf8" or its subset "us-ascii", any case, quoted or not): 1, else 0. NULL is fine.
 */
int decode_charset_ok(const char *content_type);

/*
 * Decode one request into events of the given kind and format (fields filled,
 * webhook_event_finish applied). Returns the number of events (>= 1), or -1 with a
 * reason in err. Caller frees with webhook_events_free.
 */
int decode_events(const struct webhook_kind *, enum webhook_format, const char *buf, size_t len,
    struct webhook_event **out, char *err, size_t errlen);

#endif
