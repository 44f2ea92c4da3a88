/* SPDX-License-Identifier: ISC */
/* OpenBSD-style logging: stderr or journald, levels, and fatal exits. */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>
#include <stdint.h>

/* syslog priorities are used as levels: LOG_ERR .. LOG_DEBUG */
void log_init(int level, int to_journal);
void log_set_level(int level);
int log_get_level(void);
int log_level_parse(const char *name); /* -1 when unknown */
const char *log_level_name(int level);
/* Tests may capture every formatted line. */
void log_set_hook(void (*hook)(int prio, const char *msg, void *arg), void *arg);

void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/* A line about one event and/or one relay: journald gets EVENT_ID= and RELAY= fields. */
void log_ctx(int prio, int64_t event_id, const char *relay, const char *, ...)
    __attribute__((format(printf, 4, 5)));
void log_vmsg(int prio, int64_t event_id, const char *relay, const char *, va_list)
    __attribute__((format(printf, 4, 0)));
__attribute__((noreturn)) void fatal(const char *, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void fatalx(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
