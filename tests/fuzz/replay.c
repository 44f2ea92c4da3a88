/* SPDX-License-Identifier: ISC */
/*
 * Replays a fuzz target's seeds and regression inputs in every build (gcc, the
 * sanitizers), not only in the clang fuzz build: each file of the directories named by
 * FUZZ_DIRS (below tests/data) goes through LLVMFuzzerTestOneInput once, one TAP line each.
 * A target's own checks abort on a broken promise, which fails the test.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define REPLAY_MAX_FILES 4096
#define REPLAY_MAX_BYTES (1 << 20)

/* The config target has an initializer; the others do not. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (f == NULL)
		return -1;
	buf = malloc(REPLAY_MAX_BYTES);
	n = buf ? fread(buf, 1, REPLAY_MAX_BYTES, f) : 0;
	fclose(f);
	if (buf == NULL)
		return -1;
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

static int
replay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file below TESTS_DATA/DIR, sorted, appended to PATHS. */
static void
replay_collect(const char *dir, char **paths, size_t *n)
{
	char full[1024];
	struct dirent *de;
	DIR *d;

	snprintf(full, sizeof(full), "%s/%s", TESTS_DATA, dir);
	if ((d = opendir(full)) == NULL)
		return;
	while ((de = readdir(d)) != NULL && *n < REPLAY_MAX_FILES) {
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&paths[*n], "%s/%s", full, de->d_name) >= 0)
			(*n)++;
	}
	closedir(d);
}

int
main(int argc, char **argv)
{
	static const char *const dirs[] = { FUZZ_DIRS };
	static char *paths[REPLAY_MAX_FILES];
	size_t n = 0, i, start;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		start = n;
		replay_collect(dirs[i], paths, &n);
		qsort(paths + start, n - start, sizeof(*paths), replay_cmp);
	}
	printf("1..%zu\n", n);
	for (i = 0; i < n; i++) {
		int rc = replay_file(paths[i]);

		printf("%s %zu - %s replays %s\n", rc == 0 ? "ok" : "not ok", i + 1, FUZZ_NAME,
		    paths[i] + strlen(TESTS_DATA) + 1);
		fflush(stdout);
		free(paths[i]);
	}
	return 0;
}
