/* SPDX-License-Identifier: ISC */
/* The clean environment of a script relay (relay-exec-env.c), for relay-exec.c. */
#ifndef RELAY_EXEC_ENV_H
#define RELAY_EXEC_ENV_H

#include "relay.h"

/* The whole environment of a script, NULL-terminated; relay_exec_env_free frees it. */
char **relay_exec_env(const struct relay_job *);
void relay_exec_env_free(char **);

#endif
