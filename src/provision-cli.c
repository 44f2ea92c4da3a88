/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's `provision [--dry-run]`: the daemon's reconciliation run to completion
 * on an event_base of its own, then one line per kind on stdout.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <event2/event.h>

#include "config.h"
#include "provision-internal.h"
#include "store-writer.h"
#include "store.h"

/* "sms.receipt: update (action_address)" or, after the change, "... updated (...)". */
static void
provision_cli_line(const struct provision_kind *k, int dry_run)
{
	static const char *const plan[] = {
		[R_CREATE] = "create", [R_UPDATE] = "update", [R_UNCHANGED] = "unchanged"
	};
	static const char *const done[] = {
		[R_CREATE] = "created", [R_UPDATE] = "updated", [R_UNCHANGED] = "unchanged"
	};
	char drift[128];

	if (k->state != K_OK) {
		printf("%s: error: %s\n", k->kind->name, k->error[0] ? k->error : "not finished");
		return;
	}
	printf("%s: %s", k->kind->name, (dry_run ? plan : done)[k->result]);
	if (k->result == R_UPDATE) {
		provision_drift_text(k->drift, drift, sizeof(drift));
		printf(" (%s)", drift);
	}
	putchar('\n');
}

int
provision_run_cli(const struct config *cfg, struct store *st, int dry_run)
{
	struct store_writer *w = NULL;
	struct event_base *base;
	struct provision *p;
	char why[512];
	size_t i;
	int rc, failed = 0;

	if (cfg->provision == 0) {
		printf("nothing to provision: [clicksend] provision names no kinds\n");
		return 0;
	}
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "clicksend-relay: provision: cannot create an event loop\n");
		return EX_SOFTWARE;
	}
	if (st != NULL)
		w = store_writer_new(base, &store_write_ops, st, 64);
	p = provision_new(base, w);
	p->cli = 1;
	p->dry_run = dry_run;
	if ((rc = provision_begin(p, cfg, why, sizeof(why))) != 0) {
		fprintf(stderr, "clicksend-relay: provision: %s\n", why);
		provision_free(p);
		store_writer_free(w);
		event_base_free(base);
		return EX_CONFIG;
	}
	if (strcmp(p->status, "running") == 0)
		event_base_dispatch(base);
	for (i = 0; i < KIND_COUNT; i++) {
		if (p->mask & (1u << i)) {
			provision_cli_line(&p->kinds[i], dry_run);
			failed |= p->kinds[i].state != K_OK;
		}
	}
	fflush(stdout);
	provision_free(p);
	store_writer_free(w); /* after the last result is committed */
	event_base_free(base);
	return failed ? EX_UNAVAILABLE : 0;
}
