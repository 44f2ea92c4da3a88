/* SPDX-License-Identifier: ISC */
/* Every sd_* call lives here: notify, watchdog, socket activation and journald.
 * Built without libsystemd, each function is a harmless no-op. */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

#include "systemd.h"

void
systemd_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

void
systemd_notifyf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	systemd_notify(buf);
}

uint64_t
systemd_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}

int
systemd_listen_fds(void)
{
#ifdef HAVE_LIBSYSTEMD
	int n = sd_listen_fds(1);

	return n > 0 ? n : 0;
#else
	return 0;
#endif
}

int
systemd_listen_fds_start(void)
{
#ifdef HAVE_LIBSYSTEMD
	return SD_LISTEN_FDS_START;
#else
	return 3;
#endif
}

/* JOURNAL_STREAM names the device and inode of the journal's stream (systemd.exec(5)). */
int
systemd_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
systemd_journal(int prio, int64_t event_id, const char *relay, const char *msg)
{
#ifdef HAVE_LIBSYSTEMD
	const char *id = "SYSLOG_IDENTIFIER=clicksend-relayd";

	if (event_id > 0 && relay != NULL)
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio, "EVENT_ID=evt_%lld",
		    (long long)event_id, "RELAY=%s", relay, id, NULL);
	else if (event_id > 0)
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio, "EVENT_ID=evt_%lld",
		    (long long)event_id, id, NULL);
	else if (relay != NULL)
		sd_journal_send(
		    "MESSAGE=%s", msg, "PRIORITY=%d", prio, "RELAY=%s", relay, id, NULL);
	else
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio, id, NULL);
#else
	fprintf(stderr, "%s\n", msg);
	(void)prio;
	(void)event_id;
	(void)relay;
#endif
}
