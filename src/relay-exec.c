/* SPDX-License-Identifier: ISC */
/*
 * Script relays: one attempt runs the relay's exec as a child process, without a shell, in
 * its own process group and with a clean environment (relay-exec-env.c). Three
 * close-on-exec pipes are made before the spawn; the document is written to its stdin as
 * far as the script reads it, its stdout and stderr are logged line by line up to
 * EXEC_OUTPUT_MAX bytes each (the rest only counted), and the exit status becomes the
 * outcome. Pipes, SIGCHLD and timers all run on the daemon's loop: nothing here blocks
 * except at shutdown. This file starts, times out and reaps the children.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "config.h"
#include "log.h"
#include "relay-exec-env.h"
#include "relay.h"
#include "xmalloc.h"

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

/* Calls back once the child has exited and both output pipes are closed (logs complete). */
static void relay_exec_finish(struct exec_child *);
static void relay_exec_close(int *fd);
static int relay_exec_pipes(int ours[3], int child[3]);
static void relay_exec_stdin_close(struct exec_child *);
static void relay_exec_stdin_cb(evutil_socket_t, short, void *);
static void relay_exec_output_cb(evutil_socket_t, short, void *);
static void relay_exec_output_eof(struct exec_out *);

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
		else if (c->status != EX_TEMPFAIL)
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
static void
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

#define EXEC_OUTPUT_MAX 4096  /* bytes logged of stdout, and of stderr */
#define EXEC_READ_SIZE	16384 /* bytes read from a pipe per loop turn */

static void
relay_exec_close(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

/*
 * Three close-on-exec pipes: child[] are the script's stdin/stdout/stderr, ours[] the other
 * ends, non-blocking. 0 or an errno, with nothing left open.
 */
static int
relay_exec_pipes(int ours[3], int child[3])
{
	int p[2], i, error;

	for (i = 0; i < 3; i++)
		ours[i] = child[i] = -1;
	for (i = 0; i < 3; i++) {
		if (pipe2(p, O_CLOEXEC) == -1)
			goto fail;
		ours[i] = i == 0 ? p[1] : p[0];
		child[i] = i == 0 ? p[0] : p[1];
		if (fcntl(ours[i], F_SETFL, O_NONBLOCK) == -1)
			goto fail;
	}
	return 0;
fail:
	error = errno;
	for (i = 0; i < 3; i++) {
		relay_exec_close(&ours[i]);
		relay_exec_close(&child[i]);
	}
	return error;
}

static void
relay_exec_stdin_close(struct exec_child *c)
{
	if (c->in_ev != NULL)
		event_free(c->in_ev);
	c->in_ev = NULL;
	relay_exec_close(&c->in_fd);
}

/* Writes as much of the document as the pipe takes; a script may never read it. */
static void
relay_exec_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_child *c = arg;
	const struct relay_job *job = c->job;
	ssize_t n;

	if (c->written < job->doclen) {
		n = write(fd, job->document + c->written, job->doclen - c->written);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n == -1) {
			if (errno != EPIPE)
				log_ctx(LOG_DEBUG, job->event_id, job->relay->name, "stdin: %s",
				    strerror(errno));
			relay_exec_stdin_close(c);
			return;
		}
		c->written += (size_t)n;
	}
	if (c->written >= job->doclen)
		relay_exec_stdin_close(c);
}

/* Logs the buffered (partial) line, if any. */
static void
exec_line_flush(struct exec_out *o)
{
	const struct relay_job *job = o->child->job;

	if (o->linelen == 0)
		return;
	if (o->line[o->linelen - 1] == '\r')
		o->linelen--;
	o->line[o->linelen] = '\0';
	log_ctx(LOG_INFO, job->event_id, job->relay->name, "%s: %s", o->name, o->line);
	o->linelen = 0;
}

/* Takes output bytes: lines are logged until EXEC_OUTPUT_MAX, the rest only counted. */
static void
exec_output_take(struct exec_out *o, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && o->kept < EXEC_OUTPUT_MAX; i++) {
		o->kept++;
		if (buf[i] == '\n') {
			exec_line_flush(o);
			continue;
		}
		o->line[o->linelen++] = buf[i] == '\0' ? '?' : buf[i];
		if (o->linelen == EXEC_LINE_MAX || o->kept == EXEC_OUTPUT_MAX)
			exec_line_flush(o);
	}
	o->discarded += len - i;
}

static void
relay_exec_output_eof(struct exec_out *o)
{
	const struct relay_job *job = o->child->job;

	exec_line_flush(o);
	if (o->discarded > 0)
		log_ctx(LOG_INFO, job->event_id, job->relay->name, "%s: %zu more bytes discarded",
		    o->name, o->discarded);
	event_free(o->ev);
	o->ev = NULL;
	relay_exec_close(&o->fd);
}

static void
relay_exec_output_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_out *o = arg;
	char buf[EXEC_READ_SIZE];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		exec_output_take(o, buf, (size_t)n);
		return;
	}
	relay_exec_output_eof(o);
	relay_exec_finish(o->child);
}
