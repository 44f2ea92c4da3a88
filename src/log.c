/* SPDX-License-Identifier: ISC */
/* OpenBSD-style logging to stderr or, under systemd, to journald with structured fields. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>

#include "log.h"
#include "systemd.h"

static int log_level = LOG_INFO;
static int log_journal;
static void (*log_hook)(int, const char *, void *);
static void *log_hook_arg;

static const struct {
	const char *name;
	int prio;
} log_levels[] = {
	{ "debug", LOG_DEBUG },
	{ "info", LOG_INFO },
	{ "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING },
	{ "error", LOG_ERR },
};

void
log_init(int level, int to_journal)
{
	log_level = level;
	log_journal = to_journal;
}

void
log_set_level(int level)
{
	log_level = level;
}

int
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcmp(log_levels[i].name, name) == 0)
			return log_levels[i].prio;
	}
	return -1;
}

const char *
log_level_name(int level)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (log_levels[i].prio == level)
			return log_levels[i].name;
	}
	return level < LOG_ERR ? "error" : "debug";
}

void
log_set_hook(void (*hook)(int, const char *, void *), void *arg)
{
	log_hook = hook;
	log_hook_arg = arg;
}

/* "evt_42: " for lines about one event, "" otherwise (not thread-safe; one loop). */
static const char *
log_event_ref(int64_t event_id)
{
	static char buf[40];

	if (event_id <= 0)
		return "";
	snprintf(buf, sizeof(buf), "evt_%lld: ", (long long)event_id);
	return buf;
}

/* Writes one line; control characters from untrusted text are escaped. */
static void
log_emit(int prio, int64_t event_id, const char *relay, const char *msg)
{
	char line[2048], *p;
	size_t i;

	for (i = 0, p = line; msg[i] != '\0' && p < line + sizeof(line) - 5; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c < 0x20 || c == 0x7f)
			p += snprintf(p, 5, "\\x%02x", c);
		else
			*p++ = (char)c;
	}
	*p = '\0';
	if (log_hook != NULL)
		log_hook(prio, line, log_hook_arg);
	if (log_journal) {
		systemd_journal(prio, event_id, relay, line);
		return;
	}
	fprintf(stderr, "clicksend-relayd[%s]: %s%s%s%s%s\n", log_level_name(prio),
	    relay ? "relay " : "", relay ? relay : "", relay ? ": " : "", log_event_ref(event_id),
	    line);
}

void
log_vmsg(int prio, int64_t event_id, const char *relay, const char *fmt, va_list ap)
{
	char msg[2048];

	if (prio > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_emit(prio, event_id, relay, msg);
}

void
log_ctx(int prio, int64_t event_id, const char *relay, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(prio, event_id, relay, fmt, ap);
	va_end(ap);
}

static void log_verr(int, const char *, va_list) __attribute__((format(printf, 2, 0)));

/* Appends ": strerror(errno)" like warn(3). */
static void
log_verr(int prio, const char *fmt, va_list ap)
{
	char msg[1800];
	int saved = errno;

	if (prio > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_ctx(prio, 0, NULL, "%s: %s", msg, strerror(saved));
	errno = saved;
}

#define LOG_FN(name, prio)                        \
	void name(const char *fmt, ...)           \
	{                                         \
		va_list ap;                       \
		va_start(ap, fmt);                \
		log_vmsg(prio, 0, NULL, fmt, ap); \
		va_end(ap);                       \
	}

LOG_FN(log_warnx, LOG_WARNING)
LOG_FN(log_error, LOG_ERR)
LOG_FN(log_notice, LOG_NOTICE)
LOG_FN(log_info, LOG_INFO)
LOG_FN(log_debug, LOG_DEBUG)

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_verr(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_verr(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, 0, NULL, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}
