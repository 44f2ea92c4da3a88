/* SPDX-License-Identifier: ISC */
/* Every sd_* call: notify, watchdog, socket activation, journald. No-ops without libsystemd. */
#ifndef SYSTEMD_H
#define SYSTEMD_H

#include <stdint.h>

void systemd_notify(const char *state);
void systemd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Watchdog interval in microseconds, 0 when not requested. */
uint64_t systemd_watchdog_usec(void);
/* Number of passed sockets (first is SD_LISTEN_FDS_START), 0 when none. */
int systemd_listen_fds(void);
int systemd_listen_fds_start(void);
/* 1 when stderr is connected to the journal. */
int systemd_stderr_is_journal(void);
/* Send one structured journal entry. */
void systemd_journal(int prio, int64_t event_id, const char *relay, const char *msg);

#endif
