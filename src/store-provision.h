/* SPDX-License-Identifier: ISC */
/* The provisioned_rules table: what provisioning last found or did per kind. */
#ifndef STORE_PROVISION_H
#define STORE_PROVISION_H

struct store;

/* One kind's rule as provisioned; rule_id -1 when unknown. */
struct store_provision_rule {
	const char *kind;
	long long rule_id;
	const char *rule_name;
	const char *action_address;
	const char *webhook_type; /* NULL for kinds without one */
};

/* The kind is in sync: every column replaced, synced_at now, last_error cleared. 0 or -1. */
int store_provision_ok(struct store *, const struct store_provision_rule *);
/*
 * The kind failed (or is being retried): last_error and synced_at set, the rule columns
 * of an earlier success kept (a new row gets RULE_NAME only). 0 or -1.
 */
int store_provision_error(
    struct store *, const char *kind, const char *rule_name, const char *error);

#endif
