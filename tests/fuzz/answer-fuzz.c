/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the ClickSend answer parser (clicksend-answer.c): each input is
 * read as the body of a 200, a 400 and a 503 answer and as a transport error; a 200 is
 * also gathered as a list page. Every answer is classed, an error always has a text, and
 * redacting a secret from it leaves none. Seeds: tests/data/api. Built with
 * --enable-fuzzers, run by make fuzz.
 */
#include <stdlib.h>
#include <string.h>

#include "clicksend.h"
#include "fuzz.h"

#define FUZZ_SECRET "s3cr3t-key"

/* An answer's error text: empty exactly when it is ok, bounded, and redactable. */
static void
fuzz_answer_check(struct clicksend_answer *a)
{
	size_t len = strnlen(a->error, sizeof a->error);

	if (len == sizeof a->error)
		fuzz_fail("an error text without its NUL");
	if ((a->cls == CLICKSEND_OK) != (len == 0))
		fuzz_fail("class %s with error \"%s\"", clicksend_class_name(a->cls), a->error);
	if (strcmp(clicksend_class_name(a->cls), "unknown") == 0)
		fuzz_fail("an answer without a class");
	clicksend_redact(a->error, FUZZ_SECRET);
	if (strstr(a->error, FUZZ_SECRET) != NULL)
		fuzz_fail("the secret is left in \"%s\"", a->error);
}

/* A 200 answer as list pages: the body again for each page asked for, up to three. */
static void
fuzz_answer_list(const char *body, size_t size)
{
	struct clicksend_list l;
	struct clicksend_answer a;
	size_t i;
	int page = 0, rc;

	memset(&l, 0, sizeof l);
	do {
		clicksend_answer_parse(&a, 200, body, size, 0, NULL);
		rc = clicksend_list_add(&l, &a, ++page);
	} while (rc == 1 && page < 3);
	if (rc == -1 && l.answer.error[0] == '\0')
		fuzz_fail("a list refused without a reason");
	for (i = 0; i < l.nrows; i++) {
		if (l.rows[i] == NULL)
			fuzz_fail("list row %zu is NULL", i);
	}
	clicksend_list_clear(&l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 400, 503 };
	const char *body = (const char *)data;
	struct clicksend_answer a;
	char *text;
	size_t i;

	for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
		clicksend_answer_parse(&a, statuses[i], body, size, 0, NULL);
		fuzz_answer_check(&a);
		clicksend_answer_clear(&a);
	}
	clicksend_answer_parse(&a, 200, body, size, 1, NULL);
	fuzz_answer_check(&a);
	clicksend_answer_clear(&a);
	text = fuzz_cstring(data, size);
	clicksend_answer_parse(&a, 0, NULL, 0, 0, text);
	if (a.cls != CLICKSEND_TRANSIENT || a.error[0] == '\0')
		fuzz_fail("a transport error not transient or without a text");
	clicksend_answer_clear(&a);
	free(text);
	fuzz_answer_list(body, size);
	return 0;
}
