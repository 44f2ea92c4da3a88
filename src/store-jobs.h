/* SPDX-License-Identifier: ISC */
/* The daemon's small store jobs as store writer items: retention batches, the health
 * probe, provisioning results, and for a shared store the snapshot and the leader lock. Each copies what it needs, so the caller's strings may
 * go away at once; failures are logged on the loop. */
#ifndef STORE_JOBS_H
#define STORE_JOBS_H

struct store_writer;
struct store_provision_rule;

/* Deletes up to limit old events ([store] retention); done gets the number deleted, or -1
 * with the reason, on the loop. done may be NULL. */
void store_jobs_retention(struct store_writer *, const char *before, int limit,
    void (*done)(int n, const char *err, void *arg), void *arg);
/* A write that changes nothing visible, so the writer's health reflects a failing disk
 * even when no webhook arrives. */
void store_jobs_probe(struct store_writer *);
/* store_refresh through the writer: the loop's snapshot of a shared store. */
void store_jobs_refresh(struct store_writer *);
/* store_leader through the writer; done gets 1, 0 or -1 on the loop. */
void store_jobs_leader(struct store_writer *, void (*done)(int leader, void *arg), void *arg);
/* store_provision_ok / store_provision_error through the writer. */
void store_jobs_provision_ok(struct store_writer *, const struct store_provision_rule *);
void store_jobs_provision_error(
    struct store_writer *, const char *kind, const char *rule_name, const char *error);

#endif
