/* SPDX-License-Identifier: ISC */
/* Runs a check suite with TAP output on stdout, for automake's TAP driver. */
#ifndef TESTS_TAP_H
#define TESTS_TAP_H

#include <check.h>
#include <stdlib.h>

static inline int
tap_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
