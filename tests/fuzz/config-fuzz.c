/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer target for the config parser (config*.c): each input is written to a memory
 * file and loaded with config_load. A config is refused exactly when an error was
 * reported, and a loaded one holds what its readers rely on. Seeds: tests/data/conf.
 * Built with --enable-fuzzers, run by make fuzz.
 */
#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char fuzz_path[64]; /* /proc/self/fd/N of the memory file */
static int fuzz_fd = -1;
static int fuzz_errors;

/* Every error must be "FILE:LINE: message" or "FILE: message". */
static void
fuzz_config_error(const char *line, void *arg)
{
	size_t n = strlen(fuzz_path);

	(void)arg;
	if (strncmp(line, fuzz_path, n) != 0 || line[n] != ':')
		fuzz_fail("an error without the file name: %s", line);
	fuzz_errors++;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((fuzz_fd = memfd_create("config-fuzz", MFD_CLOEXEC)) == -1)
		fuzz_fail("memfd_create failed");
	snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
	config_set_error_hook(fuzz_config_error, NULL);
	return 0;
}

static void
fuzz_config_write(const uint8_t *data, size_t size)
{
	if (ftruncate(fuzz_fd, 0) == -1 ||
	    (size > 0 && pwrite(fuzz_fd, data, size, 0) != (ssize_t)size))
		fuzz_fail("cannot write the memory file");
}

/* One loaded relay: what the relays and the outbox take for granted. */
static void
fuzz_config_relay(const struct config *c, const struct config_relay *r)
{
	size_t len = strlen(r->name);

	if (len == 0 || len > CONFIG_RELAY_NAME_MAX)
		fuzz_fail("relay name \"%s\" kept", r->name);
	if ((r->url == NULL) == (r->exec == NULL))
		fuzz_fail("relay %s: not exactly one of url and exec", r->name);
	if (r->timeout_ms == 0 || r->concurrency == 0 || r->nretry == 0)
		fuzz_fail("relay %s: a zero timeout, concurrency or retry schedule", r->name);
	if (config_relay_find(c, r->name) != r)
		fuzz_fail("relay %s: a second relay of that name", r->name);
}

/* A loaded config: what the daemon takes for granted. */
static void
fuzz_config_check(const struct config *c)
{
	size_t i, len = strlen(c->base_path);

	if (c->nlisten == 0 || c->listen == NULL)
		fuzz_fail("a config without a listen address");
	if (len > 0 && (c->base_path[0] != '/' || c->base_path[len - 1] == '/'))
		fuzz_fail("base_path \"%s\" kept", c->base_path);
	if (c->max_body_size == 0 || c->request_timeout_ms == 0)
		fuzz_fail("a zero max_body_size or request_timeout");
	if (c->store_path == NULL || c->api_url == NULL)
		fuzz_fail("a config without a store path or an API URL");
	if (c->provision != 0 && c->public_url == NULL)
		fuzz_fail("provision without public_url");
	for (i = 0; i < c->nrelays; i++)
		fuzz_config_relay(c, &c->relays[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c;

	fuzz_config_write(data, size);
	fuzz_errors = 0;
	c = config_load(fuzz_path);
	if (c == NULL && fuzz_errors == 0)
		fuzz_fail("a config refused without an error");
	if (c != NULL && fuzz_errors > 0)
		fuzz_fail("a config loaded despite %d errors", fuzz_errors);
	if (c != NULL)
		fuzz_config_check(c);
	config_free(c);
	return 0;
}
