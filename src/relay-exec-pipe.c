/* SPDX-License-Identifier: ISC */
/*
 * The pipes of a script relay's child: three close-on-exec pipes made before the spawn, the
 * document written to its stdin as far as the script reads it, and its stdout and stderr
 * logged line by line up to EXEC_OUTPUT_MAX bytes each, the rest only counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "relay-exec-internal.h"

#define EXEC_OUTPUT_MAX 4096  /* bytes logged of stdout, and of stderr */
#define EXEC_READ_SIZE	16384 /* bytes read from a pipe per loop turn */

void
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
int
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

void
relay_exec_stdin_close(struct exec_child *c)
{
	if (c->in_ev != NULL)
		event_free(c->in_ev);
	c->in_ev = NULL;
	relay_exec_close(&c->in_fd);
}

/* Writes as much of the document as the pipe takes; a script may never read it. */
void
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

void
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

void
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
