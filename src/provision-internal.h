/* SPDX-License-Identifier: ISC */
/*
 * Shared by the provisioning files: provision.c (reconciliation and life cycle),
 * provision-status.c (the /healthz and systemd texts), provision-rules.c (the kind table
 * and the pure rule parts), provision-selftest.c (test pushes and their arrival) and
 * provision-cli.c (the operator tool's run). Nothing outside provision*.c includes this.
 */
#ifndef PROVISION_INTERNAL_H
#define PROVISION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "provision.h"
#include "webhook.h"

struct clicksend;
struct clicksend_call;
struct event;
struct event_base;
struct store_writer;

#define PROVISION_SEEN_MAX 16 /* events remembered while a test push is in flight */

enum kind_state {
	K_OFF,
	K_LIST,
	K_WRITE,
	K_BACKOFF,
	K_OK,
	K_ERROR
};
enum kind_result {
	R_NONE,
	R_CREATE,
	R_UPDATE,
	R_UNCHANGED
};
enum test_state {
	T_NONE,
	T_SEND,
	T_BACKOFF,
	T_WAIT,
	T_PASSED,
	T_FAILED
};

struct provision_kind {
	struct provision *p;
	const struct webhook_kind *kind;
	const struct webhook_rule *def;
	struct provision_want want;
	char *rule_name, *action_address;
	enum kind_state state;
	struct clicksend_call *call;
	struct event *timer; /* backoff, then the self-test's retries and 60 s wait */
	unsigned attempts;
	int relisted; /* a PUT found the rule gone: listed once more */
	enum kind_result result;
	unsigned drift;
	long long rule_id;
	char error[640];
	/* self-test */
	enum test_state test;
	unsigned test_attempts;
	char *test_id;
	int test_asking; /* a store lookup of test_id is with the writer */
	char *seen[PROVISION_SEEN_MAX];
	size_t nseen;
	char test_error[256];
};

struct provision {
	struct event_base *base;
	struct store_writer *writer; /* NULL: results are not recorded */
	struct clicksend *cs;
	struct provision_kind kinds[KIND_COUNT];
	unsigned mask; /* kinds being provisioned */
	unsigned poll; /* of those, the polled ones: POLL rules, test items fetched */
	int off, test_receipts, cli, dry_run;
	char *token, *base_path, *dedicated_number;
	char fatal[512];      /* why the run could not start (the key), or "" */
	uint64_t selftest_ms; /* how long a test push may take to arrive */
	unsigned seed;
	char status[1024], selftest[1024], notified[2100];
};

/* provision.c */
/* A uniform number in [0, 1) for backoff jitter. */
double provision_random(struct provision *);
/* Starts with CFG: 0 running, 1 off (WHY says why), -1 the key cannot be read (WHY). */
int provision_begin(struct provision *, const struct config *, char *why, size_t whylen);

/* provision-status.c */
int provision_kind_running(const struct provision_kind *);
int provision_kind_tested(const struct provision *, const struct provision_kind *);
void provision_status_text(struct provision *);
void provision_selftest_text(struct provision *);
/* Recompute both texts; tell systemd when they changed; the tool stops when all is done. */
void provision_update(struct provision *);

/* provision-selftest.c */
void provision_forget_seen(struct provision_kind *);
void provision_test_send(struct provision_kind *);
void provision_test_timeout(struct provision_kind *);

#endif
