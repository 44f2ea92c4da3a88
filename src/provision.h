/* SPDX-License-Identifier: ISC */
/* Provisioning: reconcile one ClickSend automation rule per kind, record the results, and
 * the optional self-test (one test push per kind that must come back within 60 s). */
#ifndef PROVISION_H
#define PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "webhook.h"

struct config;
struct event_base;
struct json_node;
struct store;
struct store_writer;

#define PROVISION_SELFTEST_MS	 60000
#define PROVISION_BACKOFF_MIN_MS 2000
#define PROVISION_BACKOFF_MAX_MS 3600000
#define PROVISION_CLI_RETRIES	 2

struct provision;

/* STORE may be NULL (nothing recorded). Does nothing until provision_start. */
struct provision *provision_new(struct event_base *, struct store_writer *);
/*
 * (Re)start provisioning with CFG, copying what it needs (the config may be freed at
 * once): cancels a run in progress, loads the API key, and reconciles every kind in
 * cfg->provision on the event_base without ever blocking it. Logs why when it is off.
 */
void provision_start(struct provision *, const struct config *);
/* For /healthz: "off", "running", "ok" or "error: ...". */
const char *provision_status(struct provision *);
/* For /healthz: "off", "waiting", "passed" or "failed: ...". */
const char *provision_selftest_status(struct provision *);
/* Every stored event: the self-test looks for its test items' message_id. */
void provision_event_stored(struct provision *, const struct webhook_event *);
/* With a shared store the test push may land on another node: each call (the daemon's
 * tick) asks the store whether a waited-for test item is stored. */
void provision_selftest_tick(struct provision *);
void provision_free(struct provision *);
/* How long a test push may take (PROVISION_SELFTEST_MS); for tests. */
void provision_set_selftest_window(struct provision *, uint64_t ms);

/*
 * The operator tool's `provision [--dry-run]`: the same reconciliation on an event_base
 * of its own, to completion, with at most PROVISION_CLI_RETRIES quick retries and no
 * self-test. Prints one line per kind on stdout. DRY_RUN sends only GETs and records
 * nothing. 0 when every kind is fine, 69 when one failed, 78 without credentials or
 * public_url. STORE may be NULL (nothing recorded).
 */
int provision_run_cli(const struct config *, struct store *, int dry_run);

/* ----- the pure parts, for tests ----- */

/* Fields that can drift from what we want; a bit mask. */
enum provision_drift {
	PROVISION_DRIFT_ACTION = 1 << 0,
	PROVISION_DRIFT_ADDRESS = 1 << 1,
	PROVISION_DRIFT_WEBHOOK_TYPE = 1 << 2,
	PROVISION_DRIFT_ENABLED = 1 << 3,
	PROVISION_DRIFT_NUMBER = 1 << 4,
	PROVISION_DRIFT_SEARCH = 1 << 5,
	PROVISION_DRIFT_MATCH_TYPE = 1 << 6
};

/* The rule we want for one kind. */
struct provision_want {
	enum webhook_kind_id kind;
	const char *rule_name;	      /* "<rule_prefix> <kind>" */
	const char *action;	      /* "URL", or "POLL" for a polled kind; NULL: "URL" */
	const char *action_address;   /* provision_action_address(), or "poll" */
	const char *webhook_type;     /* "post", "get" or "json" (used where the kind has one) */
	const char *dedicated_number; /* "*" or a number (used where the kind has one) */
};

/* A polled kind's rule: action POLL and this address, which the API requires
 * (clicksend-relayd(8), Polling). */
#define PROVISION_POLL_ACTION  "POLL"
#define PROVISION_POLL_ADDRESS "poll"

/* public_url [+ "/" + token] + the kind's path. Caller frees. */
char *provision_action_address(
    const char *public_url, const char *token, const struct webhook_kind *);
/* The automation path ("/automations/sms/inbound") and test push path (NULL: none). */
const char *provision_rules_path(enum webhook_kind_id);
const char *provision_test_path(enum webhook_kind_id);
/* The rule's id under either spelling, numbers as strings too. 0 or -1. */
int provision_rule_id(enum webhook_kind_id, const struct json_node *rule, long long *id);
/* What differs between RULE (as listed) and WANT; 0 when nothing does. */
unsigned provision_diff(const struct provision_want *, const struct json_node *rule);
/* "action_address, enabled" for a drift mask. */
void provision_drift_text(unsigned drift, char *buf, size_t len);
/* The full rule as a JSON body for POST or PUT. Caller frees. */
char *provision_rule_body(const struct provision_want *);
/* The test push body {"url": ..., ["webhook_type": ...]}. Caller frees. */
char *provision_test_body(const struct provision_want *);
/* The test item's message_id in a test push answer's data (lenient). Caller frees; NULL. */
char *provision_test_message_id(const struct json_node *data);
/* The retry delay after ATTEMPT failures (0 first): 2 s doubling to 1 h, R in [0, 1)
 * spreading it by +/-20% (never past 1 h). */
uint64_t provision_backoff_ms(unsigned attempt, double r);

#endif
