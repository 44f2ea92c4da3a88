/* SPDX-License-Identifier: ISC */
/*
 * Shared by the script relay's files: relay-exec.c (attempts: spawn, timeouts, reaping,
 * outcome), relay-exec-pipe.c (the child's pipes: the document to stdin, stdout and stderr
 * logged) and relay-exec-env.c (the clean environment). Nothing else includes this.
 */
#ifndef RELAY_EXEC_INTERNAL_H
#define RELAY_EXEC_INTERNAL_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>

#include <event2/util.h>

#include "relay.h"

struct event;

#define EXEC_LINE_MAX 1024 /* a longer line is logged in pieces */

/* What the timer does next. */
enum exec_phase {
	EXEC_RUN,   /* fires at the relay's timeout: SIGTERM */
	EXEC_TERM,  /* fires EXEC_KILL_MS later: SIGKILL */
	EXEC_DRAIN, /* exited or killed: stop waiting for the pipes */
	EXEC_FAILED /* never started: report it from the loop */
};

struct exec_child;

/* One of the child's output pipes. */
struct exec_out {
	struct exec_child *child;
	const char *name; /* "stdout", "stderr" */
	int fd;		  /* -1 once at EOF */
	struct event *ev;
	char line[EXEC_LINE_MAX + 1];
	size_t linelen;
	size_t kept;	  /* bytes logged so far */
	size_t discarded; /* bytes read past EXEC_OUTPUT_MAX */
};

/*
 * One attempt. The child is its own process group leader (pgid == pid). Its exit is noticed
 * with WNOWAIT and it stays a zombie until the attempt is over: that keeps the pid, and so the
 * process group id, from being reused while we may still signal the group.
 */
struct exec_child {
	struct relay_exec *rx;
	const struct relay_job *job;
	relay_done_cb cb;
	void *arg;
	pid_t pid;	 /* -1 when it did not start */
	int error;	 /* errno when it did not start */
	int exited;	 /* how and status are known */
	int how, status; /* CLD_EXITED etc., exit status or signal */
	int timed_out;
	enum exec_phase phase;
	int in_fd; /* our end of its stdin; -1 once closed */
	struct event *in_ev;
	size_t written;
	struct exec_out out[2];
	struct event *timer;
	TAILQ_ENTRY(exec_child) entry;
};
TAILQ_HEAD(exec_children, exec_child);

struct relay_exec {
	struct event_base *base;
	struct event *sigchld;
	struct exec_children children;
	int n;
};

/* relay-exec.c */
/* Calls back once the child has exited and both output pipes are closed (logs complete). */
void relay_exec_finish(struct exec_child *);

/* relay-exec-pipe.c */
void relay_exec_close(int *fd);
int relay_exec_pipes(int ours[3], int child[3]);
void relay_exec_stdin_close(struct exec_child *);
void relay_exec_stdin_cb(evutil_socket_t, short, void *);
void relay_exec_output_cb(evutil_socket_t, short, void *);
void relay_exec_output_eof(struct exec_out *);

/* relay-exec-env.c */
/* The whole environment of a script, NULL-terminated; relay_exec_env_free frees it. */
char **relay_exec_env(const struct relay_job *);
void relay_exec_env_free(char **);

#endif
