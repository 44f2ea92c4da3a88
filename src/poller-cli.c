/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's `poll --once`: the daemon's poller run once to completion on an
 * event_base of its own, with a store writer and ingest of its own on the tool's store,
 * then one line per kind on stdout.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include <event2/event.h>

#include "config.h"
#include "ingest.h"
#include "poller-internal.h"
#include "store-writer.h"
#include "store.h"

#define POLLER_CLI_BATCH 64

/* Runs the one fetch of every kind, then one line per kind on stdout; 0 when each went
 * through, else 69. */
static int
poller_once_dispatch(struct poller *p)
{
	const struct poller_kind *k;
	size_t i;
	int failed = 0;

	poller_begin_all(p);
	event_base_dispatch(p->base);
	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		if (!(p->mask & (1u << i)))
			continue;
		if (k->ok == 1)
			printf("%s: %llu item(s) stored\n", k->kind->name, k->stored);
		else
			printf("%s: error: %s\n", k->kind->name,
			    k->error[0] != '\0' ? k->error :
				p->fatal[0]	? p->fatal :
						  "not finished");
		failed |= k->ok != 1;
	}
	fflush(stdout);
	return failed ? EX_UNAVAILABLE : 0;
}

int
poller_run_once(const struct config *cfg, struct store *st, const struct poller_hooks *hooks,
    char *why, size_t whylen)
{
	struct event_base *base;
	struct store_writer *w;
	struct ingest *in;
	struct poller *p;
	int rc;

	if ((base = event_base_new()) == NULL) {
		snprintf(why, whylen, "cannot create an event loop");
		return EX_SOFTWARE;
	}
	w = store_writer_new(base, &store_write_ops, st, POLLER_CLI_BATCH);
	in = ingest_new(w, 0);
	p = poller_new(base, in, hooks);
	p->once = 1;
	if ((rc = poller_configure(p, cfg, why, whylen)) == 0)
		rc = poller_once_dispatch(p);
	else {
		if (rc == 1)
			snprintf(why, whylen, "[clicksend] poll names no kinds");
		rc = EX_CONFIG;
	}
	store_writer_drain(w);
	poller_free(p);
	ingest_free(in);
	store_writer_free(w);
	event_base_free(base);
	return rc;
}
