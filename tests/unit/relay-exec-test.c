/* SPDX-License-Identifier: ISC */
/* Unit tests for script relays: real child processes on a real libevent loop. The scripts are
 * written to a temp dir at test time; their stdout/stderr are read back through the log hook. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "relay.h"
#include "tap.h"
#include "webhook.h"
#include "xmalloc.h"

#define DOC "{\"id\":\"evt_42\",\"type\":\"sms.inbound\",\"data\":{\"body\":\"h\\u00e9llo\"}}"

static char dir[64];
static struct event_base *base;
static struct relay_exec *rx;
static struct config_relay relay;
static struct relay_job job;
static char *args[16];

static char **lines; /* every captured log line */
static size_t nlines;

static int calls;
static struct relay_result result;

static void
capture(int prio, const char *msg, void *arg)
{
	lines = xreallocarray(lines, nlines + 1, sizeof(*lines));
	lines[nlines++] = xstrdup(msg);
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/relay-exec-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	log_set_level(LOG_DEBUG);
	log_set_hook(capture, NULL);
	setenv("LEAK_CANARY", "x", 1);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	rx = relay_exec_new(base);

	memset(&relay, 0, sizeof(relay));
	relay.name = (char *)"script";
	relay.args = args;
	relay.timeout_ms = 10000;
	memset(&job, 0, sizeof(job));
	job.relay = &relay;
	job.event_id = 42;
	snprintf(job.event_ref, sizeof(job.event_ref), "evt_42");
	job.kind = "sms.inbound";
	job.format = "post";
	job.received_at = "2026-11-23T07:40:00.123Z";
	job.document = DOC;
	job.doclen = strlen(DOC);
}

static void
teardown(void)
{
	char cmd[160];
	size_t i;

	relay_exec_free(rx);
	event_base_free(base);
	log_set_hook(NULL, NULL);
	for (i = 0; i < nlines; i++)
		free(lines[i]);
	free(lines);
	lines = NULL;
	nlines = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Writes an executable "#!/bin/sh" script; "{D}" in BODY stands for the temp dir. The path
 * returned is valid until the next call. */
static char *
script(const char *name, const char *body)
{
	static char path[128];
	FILE *f;
	const char *p;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("#!/bin/sh\n", f);
	for (p = body; *p != '\0'; p++) {
		if (strncmp(p, "{D}", 3) == 0) {
			fputs(dir, f);
			p += 2;
		} else
			fputc(*p, f);
	}
	fputc('\n', f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0755), 0);
	return path;
}

/* The contents of a file in the temp dir, NUL-terminated; its length in *LEN. */
static char *
slurp(const char *name, size_t *len)
{
	char path[128], *buf = xmalloc(4 << 20);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s missing", path);
	n = fread(buf, 1, (4 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

static int
has_line(const char *line)
{
	size_t i;

	for (i = 0; i < nlines; i++) {
		if (strcmp(lines[i], line) == 0)
			return 1;
	}
	return 0;
}

static size_t
count_prefix(const char *prefix)
{
	size_t i, n = 0;

	for (i = 0; i < nlines; i++)
		n += strncmp(lines[i], prefix, strlen(prefix)) == 0;
	return n;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts callbacks; stays in the loop a little longer to catch a second one. */
static void
done_cb(const struct relay_job *j, const struct relay_result *r, void *arg)
{
	struct timeval tv = { 0, 150 * 1000 };

	ck_assert_ptr_eq(j, &job);
	calls++;
	result = *r;
	event_base_loopexit(base, &tv);
}

/* One attempt of the global job, run to its callback. */
static const struct relay_result *
run(void)
{
	struct timeval guard = { 40, 0 };

	calls = 0;
	ck_assert_int_eq(relay_exec_attempt(rx, &job, done_cb, NULL), 0);
	ck_assert_int_eq(relay_exec_in_flight(rx), 1);
	ck_assert_int_eq(calls, 0);
	event_base_loopexit(base, &guard);
	event_base_dispatch(base);
	ck_assert_int_eq(calls, 1);
	ck_assert_int_eq(relay_exec_in_flight(rx), 0);
	return &result;
}

static const struct relay_result *
run_script(const char *body)
{
	relay.exec = script("relay.sh", body);
	return run();
}

/* Gone, or a zombie nobody reaps (PID 1 in a container may not): polls up to a second. */
static int
proc_gone(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	for (i = 0; i < 50; i++) {
		if ((f = fopen(path, "r")) == NULL)
			return 1;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p != NULL && (p = strrchr(buf, ')')) != NULL && p[2] == 'Z')
			return 1;
		usleep(20 * 1000);
	}
	return 0;
}

static pid_t
read_pid(const char *name)
{
	char *s = slurp(name, NULL);
	pid_t pid = (pid_t)atol(s);

	free(s);
	ck_assert_int_gt(pid, 1);
	return pid;
}

START_TEST(test_stdin_bytes)
{
	char doc[600], *got;
	size_t i, len;

	for (i = 0; i < sizeof(doc); i++)
		doc[i] = (char)(i * 7 + 1);
	doc[10] = '\0';
	job.document = doc;
	job.doclen = sizeof(doc);
	ck_assert_int_eq(run_script("cat > {D}/stdin.out")->outcome, RELAY_DONE);
	got = slurp("stdin.out", &len);
	ck_assert_uint_eq(len, sizeof(doc));
	ck_assert(memcmp(got, doc, len) == 0);
	free(got);
}
END_TEST

START_TEST(test_stdin_empty)
{
	char *got;
	size_t len;

	job.document = "";
	job.doclen = 0;
	ck_assert_int_eq(run_script("cat > {D}/stdin.out")->outcome, RELAY_DONE);
	got = slurp("stdin.out", &len);
	ck_assert_uint_eq(len, 0);
	free(got);
}
END_TEST

/* /usr/bin/env run directly: its output is exactly the environment we built. */
START_TEST(test_env_exact)
{
	static const char *const want[] = {
		"stdout: PATH=/usr/local/bin:/usr/bin:/bin",
		"stdout: CLICKSEND_EVENT_ID=evt_42",
		"stdout: CLICKSEND_EVENT_TYPE=sms.inbound",
		"stdout: CLICKSEND_FORMAT=post",
		"stdout: CLICKSEND_RECEIVED_AT=2026-11-23T07:40:00.123Z",
	};
	size_t i;

	relay.exec = (char *)"/usr/bin/env";
	ck_assert_int_eq(run()->outcome, RELAY_DONE);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(has_line(want[i]), "missing %s", want[i]);
	ck_assert_uint_eq(count_prefix("stdout: "), sizeof(want) / sizeof(want[0]));
}
END_TEST

static int
env_allowed(const char *line)
{
	static const char *const ok[] = { "CLICKSEND_",
		"PATH=", "PWD=", "SHLVL=", "_=", "OLDPWD=" };
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (strncmp(line, ok[i], strlen(ok[i])) == 0)
			return 1;
	}
	return 0;
}

/* A script's view: only our variables and what /bin/sh itself adds (PWD, SHLVL, _). */
START_TEST(test_env_script)
{
	char *env, *line, *save;

	ck_assert_int_eq(run_script("env > {D}/env.out")->outcome, RELAY_DONE);
	env = slurp("env.out", NULL);
	ck_assert_ptr_null(strstr(env, "LEAK_CANARY"));
	ck_assert_ptr_null(strstr(env, "HOME="));
	ck_assert_ptr_nonnull(strstr(env, "CLICKSEND_EVENT_ID=evt_42\n"));
	for (line = strtok_r(env, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		ck_assert_msg(env_allowed(line), "unexpected variable %s", line);
	free(env);
}
END_TEST

START_TEST(test_env_fields)
{
	struct field f[] = {
		{ (char *)"message-id", (char *)"abc", 3, FIELD_STRING },
		{ (char *)"message_id", (char *)"second", 6, FIELD_STRING },
		{ (char *)"_x", (char *)"1", 1, FIELD_NUMBER },
		{ (char *)"event_id", (char *)"evil", 4, FIELD_STRING },
		{ (char *)"format", (char *)"evil", 4, FIELD_STRING },
		{ (char *)"Received At", (char *)"evil", 4, FIELD_STRING },
		{ (char *)"Event-Type", (char *)"evil", 4, FIELD_STRING },
		{ (char *)"--", (char *)"empty name", 10, FIELD_STRING },
		{ (char *)"body", (char *)"hi $(id) 'q' \"d\"", 16, FIELD_STRING },
		{ (char *)"custom_string", NULL, 0, FIELD_NULL },
		{ (char *)"nul", (char *)"a\0b", 3, FIELD_STRING },
		{ (char *)"donn\303\251es", (char *)"x", 1, FIELD_STRING },
		{ (char *)"data", (char *)"{\"a\":[1,2]}", 11, FIELD_JSON },
	};
	static const char *const want[] = {
		"stdout: CLICKSEND_EVENT_ID=evt_42",
		"stdout: CLICKSEND_EVENT_TYPE=sms.inbound",
		"stdout: CLICKSEND_FORMAT=post",
		"stdout: CLICKSEND_RECEIVED_AT=2026-11-23T07:40:00.123Z",
		"stdout: CLICKSEND_MESSAGE_ID=abc",
		"stdout: CLICKSEND_X=1",
		"stdout: CLICKSEND_BODY=hi $(id) 'q' \"d\"",
		"stdout: CLICKSEND_CUSTOM_STRING=",
		"stdout: CLICKSEND_NUL=a",
		"stdout: CLICKSEND_DONN__ES=x",
		"stdout: CLICKSEND_DATA={\"a\":[1,2]}",
	};
	struct fields fs = { f, sizeof(f) / sizeof(f[0]), sizeof(f) / sizeof(f[0]) };
	size_t i;

	job.fields = &fs;
	relay.exec = (char *)"/usr/bin/env";
	ck_assert_int_eq(run()->outcome, RELAY_DONE);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(has_line(want[i]), "missing %s", want[i]);
	/* PATH plus the above: nothing else, no duplicate, no "evil" */
	ck_assert_uint_eq(count_prefix("stdout: "), sizeof(want) / sizeof(want[0]) + 1);
}
END_TEST

/* Many large fields: bounded in entries and bytes, and the script still starts. */
START_TEST(test_env_bounded)
{
	struct field f[400];
	struct fields fs = { f, 400, 400 };
	const struct relay_result *r;
	char *big = xmalloc(100 * 1024), *s;
	size_t i;

	memset(big, 'v', 100 * 1024);
	for (i = 0; i < 400; i++) {
		xasprintf(&f[i].name, "f%zu", i);
		f[i].value = big;
		f[i].len = i == 0 ? 100 * 1024 : 10;
		f[i].type = FIELD_STRING;
	}
	job.fields = &fs;
	r = run_script("env | wc -l > {D}/n; printf %s \"$CLICKSEND_F0\" | wc -c > {D}/len");
	ck_assert_int_eq(r->outcome, RELAY_DONE);
	s = slurp("n", NULL);
	ck_assert_int_le(atoi(s), 256 + 3);
	free(s);
	s = slurp("len", NULL);
	ck_assert_int_eq(atoi(s), 64 * 1024);
	free(s);
	ck_assert(has_line("150 fields left out of the environment (too many or too large)"));
	for (i = 0; i < 400; i++)
		free(f[i].name);
	free(big);
}
END_TEST

START_TEST(test_args_verbatim)
{
	const struct relay_result *r;
	char *got, *want, *pwned;

	args[0] = (char *)"a b";
	args[1] = (char *)"'single'";
	args[2] = (char *)"\"double\"";
	xasprintf(&args[3], "$(touch %s/pwned)", dir);
	xasprintf(&args[4], "`touch %s/pwned2`", dir);
	args[5] = (char *)"";
	args[6] = (char *)"*";
	args[7] = (char *)"x;y|z&&w>v";
	relay.nargs = 8;
	r = run_script("printf '[%s]\\n' \"$0\" \"$@\" > {D}/args.out");
	ck_assert_int_eq(r->outcome, RELAY_DONE);
	got = slurp("args.out", NULL);
	xasprintf(&want,
	    "[%s/relay.sh]\n[a b]\n['single']\n[\"double\"]\n[$(touch %s/pwned)]\n"
	    "[`touch %s/pwned2`]\n[]\n[*]\n[x;y|z&&w>v]\n",
	    dir, dir, dir);
	ck_assert_str_eq(got, want);
	xasprintf(&pwned, "%s/pwned", dir);
	ck_assert_int_ne(access(pwned, F_OK), 0);
	pwned[strlen(pwned) - 1] = '2';
	ck_assert_int_ne(access(pwned, F_OK), 0);
	free(pwned);
	free(got);
	free(want);
	free(args[3]);
	free(args[4]);
}
END_TEST

static const struct {
	const char *body;
	enum relay_outcome outcome;
	const char *text;
} exit_cases[] = {
	{ "exit 0", RELAY_DONE, "exit 0" },
	{ "exit 75", RELAY_RETRY, "exit 75" },
	{ "exit 3", RELAY_DEAD, "exit 3" },
	{ "exit 1", RELAY_DEAD, "exit 1" },
	{ "kill -9 $$", RELAY_RETRY, "signal 9" },
	{ "kill -TERM $$; sleep 5", RELAY_RETRY, "signal 15" },
};

START_TEST(test_exit_status)
{
	const struct relay_result *r = run_script(exit_cases[_i].body);

	ck_assert_int_eq(r->outcome, exit_cases[_i].outcome);
	ck_assert_str_eq(r->text, exit_cases[_i].text);
	ck_assert_uint_eq(r->retry_after_ms, 0);
}
END_TEST

/* The hex mask logged on the line starting with PREFIX. */
static unsigned long long
sig_mask(const char *prefix)
{
	size_t i;

	for (i = 0; i < nlines; i++) {
		if (strncmp(lines[i], prefix, strlen(prefix)) == 0)
			return strtoull(lines[i] + strlen(prefix), NULL, 16);
	}
	ck_abort_msg("no line %s", prefix);
	return 0;
}

/* The daemon ignores SIGPIPE and may block signals: the script sees neither. */
START_TEST(test_signals_reset)
{
	const struct relay_result *r;
	sigset_t set;

	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	r = run_script("grep -E '^Sig(Ign|Blk)' /proc/self/status");
	ck_assert_int_eq(r->outcome, RELAY_DONE);
	ck_assert(has_line("stdout: SigBlk:\\x090000000000000000"));
	/* 1-31 only: glibc's posix_spawn leaves its internal signals 32 and 33 ignored */
	ck_assert_uint_eq(sig_mask("stdout: SigIgn:\\x09") & 0x7fffffffULL, 0);
}
END_TEST

START_TEST(test_timeout)
{
	const struct relay_result *r;
	double t0 = now();

	relay.timeout_ms = 300;
	r = run_script("sleep 30 & echo $! > {D}/gc.pid; sleep 30");
	ck_assert_int_eq(r->outcome, RELAY_RETRY);
	ck_assert_str_eq(r->text, "timeout after 300 ms");
	ck_assert_double_lt(now() - t0, 3.0);
	ck_assert(proc_gone(read_pid("gc.pid")));
	ck_assert_uint_eq(count_prefix("timeout after 300 ms: SIGTERM"), 1);
}
END_TEST

/* SIGTERM ignored by the whole group: SIGKILL 5 s later, grandchild included. */
START_TEST(test_timeout_kill)
{
	const struct relay_result *r;
	double t0 = now();

	relay.timeout_ms = 300;
	r = run_script("trap '' TERM; sleep 30 & echo $! > {D}/gc.pid; sleep 30");
	ck_assert_int_eq(r->outcome, RELAY_RETRY);
	ck_assert_str_eq(r->text, "timeout after 300 ms");
	ck_assert_double_gt(now() - t0, 5.2);
	ck_assert_double_lt(now() - t0, 8.0);
	ck_assert(proc_gone(read_pid("gc.pid")));
	ck_assert_uint_eq(count_prefix("still running 5 s after SIGTERM: SIGKILL"), 1);
}
END_TEST

START_TEST(test_missing_exec)
{
	const struct relay_result *r;
	char *path;

	xasprintf(&path, "%s/no-such-script", dir);
	relay.exec = path;
	r = run();
	ck_assert_int_eq(r->outcome, RELAY_RETRY);
	ck_assert_str_eq(r->text, "cannot start: No such file or directory");
	free(path);
}
END_TEST

START_TEST(test_not_executable)
{
	const struct relay_result *r;

	relay.exec = script("relay.sh", "exit 0");
	ck_assert_int_eq(chmod(relay.exec, 0644), 0);
	r = run();
	ck_assert_int_eq(r->outcome, RELAY_RETRY);
	ck_assert_str_eq(r->text, "cannot start: Permission denied");
}
END_TEST

START_TEST(test_no_exec)
{
	ck_assert_int_eq(relay_exec_attempt(rx, &job, done_cb, NULL), -1);
	ck_assert_int_eq(relay_exec_in_flight(rx), 0);
}
END_TEST

/* 10 MB of output: read to the end without blocking, only the first 4 KiB logged. */
START_TEST(test_output_bounded)
{
	size_t i, kept = 0;

	ck_assert_int_eq(run_script("yes | head -c 10000000; echo end >&2")->outcome, RELAY_DONE);
	for (i = 0; i < nlines; i++) {
		if (strncmp(lines[i], "stdout: y", 9) == 0)
			kept += strlen(lines[i]) - 8 + 1;
	}
	ck_assert_uint_eq(kept, 4096);
	ck_assert(has_line("stdout: 9995904 more bytes discarded"));
	ck_assert(has_line("stderr: end"));
}
END_TEST

START_TEST(test_output_lines)
{
	const struct relay_result *r;
	char want[1100];

	r = run_script("head -c 2100 /dev/zero | tr '\\000' a; echo; "
		       "printf 'crlf\\r\\n'; printf 'no newline'");
	ck_assert_int_eq(r->outcome, RELAY_DONE);
	memcpy(want, "stdout: ", 8);
	memset(want + 8, 'a', 1024);
	want[8 + 1024] = '\0';
	ck_assert_uint_eq(count_prefix(want), 2);
	want[8 + 52] = '\0';
	ck_assert(has_line(want));
	ck_assert(has_line("stdout: crlf"));
	ck_assert(has_line("stdout: no newline"));
}
END_TEST

static int ticks;

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	ticks++;
}

/* 1 MiB document to a script that never reads it: the loop keeps running. */
START_TEST(test_stdin_unread)
{
	struct timeval tv = { 0, 50 * 1000 };
	struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	char *doc = xmalloc(1 << 20);

	memset(doc, 'd', 1 << 20);
	job.document = doc;
	job.doclen = 1 << 20;
	event_add(tick, &tv);
	ck_assert_int_eq(run_script("sleep 1; echo done")->outcome, RELAY_DONE);
	ck_assert_int_ge(ticks, 10);
	ck_assert(has_line("stdout: done"));
	ck_assert_int_eq(run_script("exec 0<&-; exit 0")->outcome, RELAY_DONE);
	event_free(tick);
	free(doc);
}
END_TEST

/* A background job keeping stdout open does not hold the attempt past a short grace. */
START_TEST(test_background_job)
{
	const struct relay_result *r;
	double t0 = now();
	pid_t gc;

	r = run_script("sleep 30 & echo $! > {D}/gc.pid; echo bye; exit 0");
	ck_assert_int_eq(r->outcome, RELAY_DONE);
	ck_assert_double_lt(now() - t0, 3.0);
	ck_assert(has_line("stdout: bye"));
	ck_assert_uint_eq(count_prefix("stdout still open after the script ended"), 1);
	gc = read_pid("gc.pid");
	kill(gc, SIGKILL);
	ck_assert(proc_gone(gc));
}
END_TEST

static void
count_cb(const struct relay_job *j, const struct relay_result *r, void *arg)
{
	int *n = arg;

	ck_assert_int_eq(r->outcome, RELAY_DONE);
	if (++*n == 3)
		event_base_loopexit(base, NULL);
}

START_TEST(test_concurrent)
{
	struct relay_job jobs[3];
	int i, n = 0;

	relay.exec = script("relay.sh", "cat >/dev/null; sleep 0.3");
	for (i = 0; i < 3; i++) {
		jobs[i] = job;
		ck_assert_int_eq(relay_exec_attempt(rx, &jobs[i], count_cb, &n), 0);
	}
	ck_assert_int_eq(relay_exec_in_flight(rx), 3);
	event_base_dispatch(base);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(relay_exec_in_flight(rx), 0);
}
END_TEST

/* Shutdown with scripts running: no callback, process groups gone. */
static void
free_running(const char *body, double min, double max)
{
	struct timeval tv = { 0, 300 * 1000 };
	double t0;

	relay.exec = script("relay.sh", body);
	calls = 0;
	ck_assert_int_eq(relay_exec_attempt(rx, &job, done_cb, NULL), 0);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	t0 = now();
	relay_exec_free(rx);
	rx = NULL;
	ck_assert_double_ge(now() - t0, min);
	ck_assert_double_lt(now() - t0, max);
	ck_assert_int_eq(calls, 0);
	ck_assert(proc_gone(read_pid("gc.pid")));
}

START_TEST(test_free_running)
{
	free_running("sleep 30 & echo $! > {D}/gc.pid; sleep 30", 0, 1.5);
}
END_TEST

START_TEST(test_free_stubborn)
{
	free_running("trap '' TERM; sleep 30 & echo $! > {D}/gc.pid; sleep 30", 1.9, 3.5);
	ck_assert_uint_eq(count_prefix("pid "), 1);
}
END_TEST

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* The script gets fds 0-2 only, even from a daemon fd without close-on-exec; none leak here. */
START_TEST(test_fds)
{
	int fd = open("/dev/null", O_RDONLY), before = count_fds();
	char *path;

	relay.exec = (char *)"/bin/ls";
	args[0] = (char *)"/proc/self/fd";
	relay.nargs = 1;
	ck_assert_int_eq(run()->outcome, RELAY_DONE);
	/* ls itself holds 3 for the directory it lists */
	ck_assert_uint_eq(count_prefix("stdout: "), 4);
	ck_assert(has_line("stdout: 0") && has_line("stdout: 1") && has_line("stdout: 2"));
	ck_assert(has_line("stdout: 3"));
	xasprintf(&path, "%s/missing", dir);
	relay.exec = path;
	relay.nargs = 0;
	ck_assert_int_eq(run()->outcome, RELAY_RETRY);
	ck_assert_int_eq(count_fds(), before);
	free(path);
	close(fd);
}
END_TEST

static Suite *
relay_exec_suite(void)
{
	Suite *s = suite_create("relay-exec");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stdin_bytes);
	tcase_add_test(tc, test_stdin_empty);
	tcase_add_test(tc, test_env_exact);
	tcase_add_test(tc, test_env_script);
	tcase_add_test(tc, test_env_fields);
	tcase_add_test(tc, test_env_bounded);
	tcase_add_test(tc, test_args_verbatim);
	tcase_add_loop_test(tc, test_exit_status, 0, sizeof(exit_cases) / sizeof(exit_cases[0]));
	tcase_add_test(tc, test_signals_reset);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_timeout_kill);
	tcase_add_test(tc, test_missing_exec);
	tcase_add_test(tc, test_not_executable);
	tcase_add_test(tc, test_no_exec);
	tcase_add_test(tc, test_output_bounded);
	tcase_add_test(tc, test_output_lines);
	tcase_add_test(tc, test_stdin_unread);
	tcase_add_test(tc, test_background_job);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_free_running);
	tcase_add_test(tc, test_free_stubborn);
	tcase_add_test(tc, test_fds);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(relay_exec_suite());
}
