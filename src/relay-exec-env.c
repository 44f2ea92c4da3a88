/* SPDX-License-Identifier: ISC */
/*
 * The clean environment of a script relay: PATH, the four fixed CLICKSEND_ variables, then
 * one CLICKSEND_<FIELD> per payload field, bounded in entries and bytes. Nothing from the
 * daemon's own environment is passed on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "config.h"
#include "log.h"
#include "relay-exec-env.h"
#include "xmalloc.h"

#define EXEC_PATH      "/usr/local/bin:/usr/bin:/bin"
#define EXEC_ENV_MAX   256	     /* environment entries, PATH included */
#define EXEC_NAME_MAX  128	     /* bytes of a field's variable name */
#define EXEC_VALUE_MAX (64 * 1024)   /* bytes of one value */
#define EXEC_ENV_BYTES (1024 * 1024) /* bytes of the whole environment */

/* Field names that would shadow the fixed variables; left out of the environment. */
static const char *const exec_reserved[] = { "EVENT_ID", "EVENT_TYPE", "FORMAT", "RECEIVED_AT" };

/* The environment being built: NULL-terminated, bounded in entries and bytes. */
struct exec_env {
	char **v;
	size_t n;
	size_t bytes;
};

/* Upper-cases NAME into BUF, anything outside A-Z0-9 as '_', leading '_' dropped. 0: skip. */
static size_t
exec_env_name(const char *name, char *buf, size_t size)
{
	size_t i, n = 0;

	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		if (c == '_' && n == 0)
			continue;
		if (n + 1 >= size)
			return 0;
		buf[n++] = c;
	}
	buf[n] = '\0';
	return n;
}

static int
exec_env_reserved(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(exec_reserved) / sizeof(exec_reserved[0]); i++) {
		if (strcmp(exec_reserved[i], name) == 0)
			return 1;
	}
	return 0;
}

/* 1 when a variable KEY (the "NAME=" prefix, KEYLEN bytes) is already set. */
static int
exec_env_has(const struct exec_env *env, const char *key, size_t keylen)
{
	size_t i;

	for (i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], key, keylen) == 0)
			return 1;
	}
	return 0;
}

/* Adds NAME=VALUE with VALUE cut at a NUL byte and at EXEC_VALUE_MAX. 0 added, -1 not. */
static int
exec_env_add(struct exec_env *env, const char *name, const char *value, size_t len)
{
	char *s;
	int n;

	if (value == NULL)
		value = "";
	len = strnlen(value, len < EXEC_VALUE_MAX ? len : EXEC_VALUE_MAX);
	if (env->n + 1 >= EXEC_ENV_MAX || env->bytes + len > EXEC_ENV_BYTES)
		return -1;
	n = xasprintf(&s, "%s=%.*s", name, (int)len, value);
	env->v[env->n++] = s;
	env->v[env->n] = NULL;
	env->bytes += (size_t)n + 1;
	return 0;
}

/* One CLICKSEND_<FIELD> per field that maps to a free, non-empty name. */
static void
exec_env_fields(struct exec_env *env, const struct relay_job *job)
{
	char name[EXEC_NAME_MAX], key[EXEC_NAME_MAX + 16];
	const struct field *f;
	size_t i, dropped = 0;

	for (i = 0; job->fields != NULL && i < job->fields->n; i++) {
		f = &job->fields->v[i];
		if (exec_env_name(f->name, name, sizeof(name)) == 0 || exec_env_reserved(name))
			continue;
		snprintf(key, sizeof(key), "CLICKSEND_%s=", name);
		if (exec_env_has(env, key, strlen(key)))
			continue;
		key[strlen(key) - 1] = '\0';
		if (exec_env_add(env, key, f->value, f->value == NULL ? 0 : f->len) == -1)
			dropped++;
	}
	if (dropped > 0)
		log_ctx(LOG_WARNING, job->event_id, job->relay->name,
		    "%zu fields left out of the environment (too many or too large)", dropped);
}

/* The whole environment of a script: PATH, the four fixed variables, then the fields. */
char **
relay_exec_env(const struct relay_job *job)
{
	struct exec_env env = { .v = xcalloc(EXEC_ENV_MAX, sizeof(char *)) };

	exec_env_add(&env, "PATH", EXEC_PATH, strlen(EXEC_PATH));
	exec_env_add(&env, "CLICKSEND_EVENT_ID", job->event_ref, sizeof(job->event_ref));
	exec_env_add(&env, "CLICKSEND_EVENT_TYPE", job->kind, job->kind ? strlen(job->kind) : 0);
	exec_env_add(&env, "CLICKSEND_FORMAT", job->format, job->format ? strlen(job->format) : 0);
	exec_env_add(&env, "CLICKSEND_RECEIVED_AT", job->received_at,
	    job->received_at ? strlen(job->received_at) : 0);
	exec_env_fields(&env, job);
	return env.v;
}

void
relay_exec_env_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}
