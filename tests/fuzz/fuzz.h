/* SPDX-License-Identifier: ISC */
/* Shared by the libFuzzer targets in tests/fuzz: the entry points and the checks of
 * promises that several targets test (fuzz-check.c). */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

/* libFuzzer's entry points, declared for -Wmissing-prototypes. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print why an invariant does not hold and abort, so libFuzzer keeps the input. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A NUL-terminated copy of the input (it may hold NUL bytes itself). Caller frees. */
char *fuzz_cstring(const uint8_t *data, size_t size);

/*
 * A decoded event keeps every field exactly: names and values are UTF-8 without NUL
 * bytes, and its payload is one JSON object that decodes back into the same fields
 * (names, types and bytes), so the payload and the columns never disagree.
 */
void fuzz_check_event(const struct webhook_event *);

#endif
