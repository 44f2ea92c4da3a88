/* SPDX-License-Identifier: ISC */
/*
 * Provisioning's two status texts for /healthz ("provisioning" and "selftest"), kinds that
 * failed for the same reason sharing it, and the STATUS line told to systemd when they change.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "provision-internal.h"
#include "systemd.h"

int
provision_kind_running(const struct provision_kind *k)
{
	return k->state == K_LIST || k->state == K_WRITE || k->state == K_BACKOFF;
}

int
provision_kind_tested(const struct provision *p, const struct provision_kind *k)
{
	return p->test_receipts && !p->cli && k->def->test_path != NULL;
}

/* The reason a kind failed provisioning (PHASE 0) or its self-test (1); NULL if it did not. */
static const char *
provision_reason(const struct provision_kind *k, int phase)
{
	if (phase == 0)
		return k->state == K_ERROR ? k->error : NULL;
	return k->test == T_FAILED ? k->test_error : NULL;
}

/* "k1, k2: reason; k3: other reason": kinds that failed for the same reason share it. */
static void
provision_reasons(const struct provision *p, int phase, char *buf, size_t len)
{
	const char *r, *r2;
	size_t i, j;
	int first, groups = 0;

	for (i = 0; i < KIND_COUNT; i++) {
		if (!(p->mask & (1u << i)) || (r = provision_reason(&p->kinds[i], phase)) == NULL)
			continue;
		for (j = 0; j < i; j++) {
			r2 = (p->mask & (1u << j)) ? provision_reason(&p->kinds[j], phase) : NULL;
			if (r2 != NULL && strcmp(r, r2) == 0)
				break;
		}
		if (j < i)
			continue; /* already listed with an earlier kind */
		snprintf(buf + strlen(buf), len - strlen(buf), "%s", groups++ > 0 ? "; " : "");
		for (first = 1, j = i; j < KIND_COUNT; j++) {
			r2 = (p->mask & (1u << j)) ? provision_reason(&p->kinds[j], phase) : NULL;
			if (r2 == NULL || strcmp(r, r2) != 0)
				continue;
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", first ? "" : ", ",
			    p->kinds[j].kind->name);
			first = 0;
		}
		snprintf(buf + strlen(buf), len - strlen(buf), ": %s", r);
	}
}

void
provision_status_text(struct provision *p)
{
	size_t i;
	int running = 0, failed = 0;

	for (i = 0; i < KIND_COUNT; i++) {
		if (p->mask & (1u << i)) {
			running |= provision_kind_running(&p->kinds[i]);
			failed |= p->kinds[i].state == K_ERROR;
		}
	}
	if (p->fatal[0] != '\0')
		snprintf(p->status, sizeof(p->status), "error: %s", p->fatal);
	else if (p->off)
		snprintf(p->status, sizeof(p->status), "off");
	else if (running)
		snprintf(p->status, sizeof(p->status), "running");
	else if (!failed)
		snprintf(p->status, sizeof(p->status), "ok");
	else {
		snprintf(p->status, sizeof(p->status), "error: ");
		provision_reasons(p, 0, p->status, sizeof(p->status));
	}
}

void
provision_selftest_text(struct provision *p)
{
	const struct provision_kind *k;
	size_t i;
	int tested = 0, waiting = 0, failed = 0;

	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		if (!(p->mask & (1u << i)) || !provision_kind_tested(p, k))
			continue;
		tested = 1;
		waiting |= k->test != T_PASSED && k->test != T_FAILED;
		failed |= k->test == T_FAILED;
	}
	if (p->off || !tested)
		snprintf(p->selftest, sizeof(p->selftest), "off");
	else if (waiting)
		snprintf(p->selftest, sizeof(p->selftest), "waiting");
	else if (!failed)
		snprintf(p->selftest, sizeof(p->selftest), "passed");
	else {
		snprintf(p->selftest, sizeof(p->selftest), "failed: ");
		provision_reasons(p, 1, p->selftest, sizeof(p->selftest));
	}
}

/* Recompute both texts; tell systemd when they changed; the tool stops when all is done. */
void
provision_update(struct provision *p)
{
	char line[sizeof(p->notified)];

	provision_status_text(p);
	provision_selftest_text(p);
	if (p->cli) {
		if (strcmp(p->status, "running") != 0)
			event_base_loopbreak(p->base);
		return;
	}
	/* nothing to say while provisioning was never on: the daemon's own STATUS stays */
	if (p->off && p->fatal[0] == '\0' && p->notified[0] == '\0')
		return;
	snprintf(line, sizeof(line), "provisioning: %s; selftest: %s", p->status, p->selftest);
	if (strcmp(line, p->notified) != 0) {
		memcpy(p->notified, line, sizeof(line));
		systemd_notifyf("STATUS=%s", line);
	}
}

const char *
provision_status(struct provision *p)
{
	return p != NULL ? p->status : "off";
}

const char *
provision_selftest_status(struct provision *p)
{
	return p != NULL ? p->selftest : "off";
}
