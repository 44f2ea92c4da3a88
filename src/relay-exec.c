/* SPDX-License-Identifier: ISC */
/* Script relays: one attempt runs the relay's exec as a child process, without a shell, in its
 * own process group and with a clean environment. The document goes to its stdin, its stdout
 * and stderr are logged line by line (bounded), and the exit status becomes the outcome. Pipes,
 * SIGCHLD and timers all run on the daemon's loop: nothing here blocks except at shutdown.
 * This file starts, times out and reaps the children; the pipes are in relay-exec-pipe.c,
 * the environment in relay-exec-env.c. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "relay-exec-internal.h"
#include "xmalloc.h"

#define EXEC_KILL_MS  5000 /* SIGTERM to SIGKILL after a timeout */
#define EXEC_DRAIN_MS 1000 /* pipes still open after exit: background jobs */
#define EXEC_FREE_MS  2000 /* shutdown: SIGTERM to SIGKILL */

static void exec_sigchld_cb(evutil_socket_t, short, void *);
static void exec_timer_cb(evutil_socket_t, short, void *);

struct relay_exec *
relay_exec_new(struct event_base *base)
{
	struct relay_exec *rx = xcalloc(1, sizeof(*rx));

	rx->base = base;
	TAILQ_INIT(&rx->children);
	/* Writing to a script that exited must give EPIPE, not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rx->sigchld = evsignal_new(base, SIGCHLD, exec_sigchld_cb, rx);
	if (rx->sigchld == NULL || evsignal_add(rx->sigchld, NULL) == -1)
		fatalx("relay-exec: cannot watch SIGCHLD");
	return rx;
}

int
relay_exec_in_flight(const struct relay_exec *rx)
{
	return rx->n;
}

static void
exec_timer_set(struct exec_child *c, enum exec_phase phase, uint64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	c->phase = phase;
	evtimer_add(c->timer, &tv);
}

/* argv = { exec, args..., NULL }; the strings are borrowed from the relay. */
static char **
exec_argv(const struct config_relay *relay)
{
	char **argv = xcalloc(relay->nargs + 2, sizeof(char *));
	size_t i;

	argv[0] = relay->exec;
	for (i = 0; i < relay->nargs; i++)
		argv[i + 1] = relay->args[i];
	return argv;
}

/* posix_spawn without a shell: own process group, default signals, empty mask, fds 0-2 only. */
static int
exec_spawn(struct exec_child *c, int child[3], char **envp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all, none;
	char **argv = exec_argv(c->job->relay);
	int i, error;

	posix_spawn_file_actions_init(&fa);
	for (i = 0; i < 3; i++)
		posix_spawn_file_actions_adddup2(&fa, child[i], i);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(
	    &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	error = posix_spawn(&c->pid, c->job->relay->exec, &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	free(argv);
	if (error != 0)
		c->pid = -1;
	return error;
}

/* Hooks our pipe ends to the loop. */
static void
exec_watch(struct exec_child *c, int ours[3])
{
	struct event_base *base = c->rx->base;
	int i;

	c->in_fd = ours[0];
	c->in_ev = event_new(base, c->in_fd, EV_WRITE | EV_PERSIST, relay_exec_stdin_cb, c);
	for (i = 0; i < 2; i++) {
		c->out[i].child = c;
		c->out[i].name = i == 0 ? "stdout" : "stderr";
		c->out[i].fd = ours[i + 1];
		c->out[i].ev = event_new(
		    base, c->out[i].fd, EV_READ | EV_PERSIST, relay_exec_output_cb, &c->out[i]);
		if (c->out[i].ev == NULL || event_add(c->out[i].ev, NULL) == -1)
			fatalx("relay-exec: cannot watch a pipe");
	}
	if (c->in_ev == NULL || event_add(c->in_ev, NULL) == -1)
		fatalx("relay-exec: cannot watch a pipe");
}

/* Pipes, then the child. 0 or an errno, reported from the loop by the caller. */
static int
exec_start(struct exec_child *c)
{
	const struct relay_job *job = c->job;
	int ours[3], child[3], i, error;
	char **envp;

	/* Checked first too: some posix_spawn (and valgrind's) only report it as exit 127. */
	if (access(job->relay->exec, X_OK) == -1)
		return errno;
	if ((error = relay_exec_pipes(ours, child)) != 0)
		return error;
	envp = relay_exec_env(job);
	error = exec_spawn(c, child, envp);
	relay_exec_env_free(envp);
	for (i = 0; i < 3; i++) {
		relay_exec_close(&child[i]);
		if (error != 0)
			relay_exec_close(&ours[i]);
	}
	if (error != 0)
		return error;
	log_ctx(LOG_DEBUG, job->event_id, job->relay->name, "started %s, pid %ld", job->relay->exec,
	    (long)c->pid);
	exec_watch(c, ours);
	if (job->relay->timeout_ms > 0)
		exec_timer_set(c, EXEC_RUN, job->relay->timeout_ms);
	return 0;
}

int
relay_exec_attempt(struct relay_exec *rx, const struct relay_job *job, relay_done_cb cb, void *arg)
{
	struct exec_child *c;

	if (job->relay == NULL || job->relay->exec == NULL)
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->rx = rx;
	c->job = job;
	c->cb = cb;
	c->arg = arg;
	c->pid = -1;
	c->in_fd = c->out[0].fd = c->out[1].fd = -1;
	c->timer = evtimer_new(rx->base, exec_timer_cb, c);
	if (c->timer == NULL)
		fatalx("relay-exec: evtimer_new failed");
	TAILQ_INSERT_TAIL(&rx->children, c, entry);
	rx->n++;
	if ((c->error = exec_start(c)) != 0) {
		c->pid = -1;
		exec_timer_set(c, EXEC_FAILED, 0);
	}
	return 0;
}

/* Notes the exit of C without reaping it (WNOWAIT). 1 when it has exited. */
static int
exec_poll(struct exec_child *c)
{
	siginfo_t si;

	if (c->exited || c->pid == -1)
		return c->exited;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1 || si.si_pid == 0)
		return 0;
	c->exited = 1;
	c->how = si.si_code;
	c->status = si.si_status;
	return 1;
}

/* Signals the process group, valid while the leader is not reaped. */
static void
exec_kill(struct exec_child *c, int sig)
{
	if (c->pid > 0 && kill(-c->pid, sig) == -1 && errno != ESRCH)
		log_ctx(LOG_WARNING, c->job->event_id, c->job->relay->name,
		    "kill process group %ld: %s", (long)c->pid, strerror(errno));
}

/* A child exited; output may still be in the pipes, so each one finishes when it can. */
static void
exec_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct relay_exec *rx = arg;
	struct exec_child *c, *next;

	for (c = TAILQ_FIRST(&rx->children); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->exited || !exec_poll(c))
			continue;
		if (c->phase == EXEC_RUN)
			exec_timer_set(c, EXEC_DRAIN, EXEC_DRAIN_MS);
		relay_exec_finish(c);
	}
}

/* Gives up on pipes that stay open, e.g. held by a background process of the script. */
static void
exec_drain_end(struct exec_child *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (c->out[i].fd == -1)
			continue;
		log_ctx(LOG_WARNING, c->job->event_id, c->job->relay->name,
		    "%s still open after the script ended; no longer read", c->out[i].name);
		relay_exec_output_eof(&c->out[i]);
	}
	if (!c->exited)
		exec_timer_set(c, EXEC_DRAIN, EXEC_DRAIN_MS);
	relay_exec_finish(c);
}

/* Timeout, SIGKILL, drain deadline, or a start failure to report: see enum exec_phase. */
static void
exec_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_child *c = arg;
	const struct relay_job *job = c->job;

	switch (c->phase) {
	case EXEC_RUN:
		c->timed_out = 1;
		log_ctx(LOG_WARNING, job->event_id, job->relay->name,
		    "timeout after %llu ms: SIGTERM to process group %ld",
		    (unsigned long long)job->relay->timeout_ms, (long)c->pid);
		exec_kill(c, SIGTERM);
		exec_timer_set(c, EXEC_TERM, EXEC_KILL_MS);
		break;
	case EXEC_TERM:
		log_ctx(LOG_WARNING, job->event_id, job->relay->name,
		    "still running %d s after SIGTERM: SIGKILL to process group %ld",
		    EXEC_KILL_MS / 1000, (long)c->pid);
		exec_kill(c, SIGKILL);
		exec_timer_set(c, EXEC_DRAIN, EXEC_DRAIN_MS);
		break;
	case EXEC_DRAIN:
		exec_drain_end(c);
		break;
	case EXEC_FAILED:
		relay_exec_finish(c);
		break;
	}
}

/* The outcome of a finished attempt (clicksend-relay.conf(5), PROGRAM RELAYS). */
static void
exec_result(const struct exec_child *c, struct relay_result *r)
{
	memset(r, 0, sizeof(*r));
	r->outcome = RELAY_RETRY;
	if (c->pid == -1)
		snprintf(r->text, sizeof(r->text), "cannot start: %s", strerror(c->error));
	else if (c->timed_out)
		snprintf(r->text, sizeof(r->text), "timeout after %llu ms",
		    (unsigned long long)c->job->relay->timeout_ms);
	else if (c->how != CLD_EXITED)
		snprintf(r->text, sizeof(r->text), "signal %d", c->status);
	else {
		snprintf(r->text, sizeof(r->text), "exit %d", c->status);
		if (c->status == 0)
			r->outcome = RELAY_DONE;
		else if (c->status != 75)
			r->outcome = RELAY_DEAD;
	}
}

/* Closes everything and reaps the zombie; C is off the list afterwards. */
static void
exec_child_free(struct exec_child *c)
{
	int i;

	relay_exec_stdin_close(c);
	for (i = 0; i < 2; i++) {
		if (c->out[i].ev != NULL)
			event_free(c->out[i].ev);
		relay_exec_close(&c->out[i].fd);
	}
	event_free(c->timer);
	if (c->pid > 0)
		waitpid(c->pid, NULL, 0);
	TAILQ_REMOVE(&c->rx->children, c, entry);
	c->rx->n--;
	free(c);
}

/* Calls back once the child has exited and both output pipes are closed (logs complete). */
void
relay_exec_finish(struct exec_child *c)
{
	const struct relay_job *job = c->job;
	struct relay_result r;
	relay_done_cb cb = c->cb;
	void *arg = c->arg;

	if (c->pid != -1 && (!c->exited || c->out[0].fd != -1 || c->out[1].fd != -1))
		return;
	exec_result(c, &r);
	log_ctx(LOG_DEBUG, job->event_id, job->relay->name, "pid %ld: %s", (long)c->pid, r.text);
	exec_child_free(c);
	if (cb != NULL)
		cb(job, &r, arg);
}

/* Shutdown: waits up to MS for every child to exit, polling. */
static void
exec_wait_all(struct relay_exec *rx, int ms)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	struct exec_child *c;
	int running;

	for (;;) {
		running = 0;
		TAILQ_FOREACH(c, &rx->children, entry)
			running += c->pid > 0 && !exec_poll(c);
		if (running == 0 || ms <= 0)
			return;
		nanosleep(&tick, NULL);
		ms -= 20;
	}
}

void
relay_exec_free(struct relay_exec *rx)
{
	struct exec_child *c;

	if (rx == NULL)
		return;
	TAILQ_FOREACH(c, &rx->children, entry)
		exec_kill(c, SIGTERM);
	exec_wait_all(rx, EXEC_FREE_MS);
	/* Leaders still running, and what is left of every group (background jobs). */
	TAILQ_FOREACH(c, &rx->children, entry) {
		if (c->pid > 0 && !c->exited)
			log_ctx(LOG_WARNING, c->job->event_id, c->job->relay->name,
			    "pid %ld ignored SIGTERM at shutdown: SIGKILL", (long)c->pid);
		exec_kill(c, SIGKILL);
	}
	while ((c = TAILQ_FIRST(&rx->children)) != NULL)
		exec_child_free(c);
	event_free(rx->sigchld);
	free(rx);
}
