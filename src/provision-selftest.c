/* SPDX-License-Identifier: ISC */
/*
 * The provisioning self-test: once a kind's rule is in place, one test push per kind whose
 * message_id must come back as a stored event within the window (60 s), retried while the
 * request itself fails transiently. Items stored before the request is answered are kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "clicksend.h"
#include "log.h"
#include "metrics.h"
#include "provision-internal.h"
#include "store-jobs.h"
#include "xmalloc.h"

#define PROVISION_TEST_RETRIES 5

void
provision_forget_seen(struct provision_kind *k)
{
	size_t i;

	for (i = 0; i < k->nseen; i++)
		free(k->seen[i]);
	k->nseen = 0;
}

static void
provision_test_pass(struct provision_kind *k)
{
	evtimer_del(k->timer);
	k->test = T_PASSED;
	metrics_set_selftest_ok(k->kind->id, 1);
	log_info("selftest %s: the test push arrived (message_id %s)", k->kind->name, k->test_id);
	provision_update(k->p);
}

static void
provision_test_fail(struct provision_kind *k, const char *why)
{
	evtimer_del(k->timer);
	k->test = T_FAILED;
	snprintf(k->test_error, sizeof(k->test_error), "%s", why);
	metrics_set_selftest_ok(k->kind->id, 0);
	log_warnx("selftest %s: failed: %s", k->kind->name, why);
	provision_update(k->p);
}

void
provision_test_timeout(struct provision_kind *k)
{
	struct provision *p = k->p;
	char why[256];

	if (p->poll & (1u << k->kind->id)) {
		snprintf(why, sizeof(why),
		    "the poller did not fetch the test item within %llu s: is polling running?",
		    (unsigned long long)p->selftest_ms / 1000);
		provision_test_fail(k, why);
		return;
	}
	snprintf(why, sizeof(why),
	    "no test push arrived within %llu s: is public_url reachable from the internet, "
	    "does the proxy forward %s%s?",
	    (unsigned long long)p->selftest_ms / 1000, *p->base_path != '\0' ? p->base_path : "/",
	    p->token != NULL ? ", is the token right" : "");
	provision_test_fail(k, why);
}

static int
provision_test_seen(const struct provision_kind *k)
{
	size_t i;

	for (i = 0; i < k->nseen; i++) {
		if (strcasecmp(k->seen[i], k->test_id) == 0)
			return 1;
	}
	return 0;
}

/* The test push request was answered: wait for its item (it may be here already). */
static void
provision_test_answered(struct clicksend_answer *ans, void *arg)
{
	struct provision_kind *k = arg;
	struct timeval tv = { (time_t)(k->p->selftest_ms / 1000),
		(suseconds_t)(k->p->selftest_ms % 1000) * 1000 };
	char why[600];
	uint64_t ms;

	k->call = NULL;
	if (ans->cls == CLICKSEND_TRANSIENT && k->test_attempts < PROVISION_TEST_RETRIES) {
		provision_forget_seen(k);
		k->test = T_BACKOFF;
		ms = provision_backoff_ms(k->test_attempts++, provision_random(k->p));
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		log_warnx("selftest %s: test push request: %s; retrying in %llu s", k->kind->name,
		    ans->error, (unsigned long long)(ms + 999) / 1000);
		evtimer_add(k->timer, &tv);
		return;
	}
	if (ans->cls != CLICKSEND_OK) {
		provision_forget_seen(k);
		snprintf(why, sizeof(why), "test push request: %s", ans->error);
		clicksend_redact(why, k->p->token);
		provision_test_fail(k, why);
		return;
	}
	free(k->test_id);
	k->test_id = provision_test_message_id(ans->data);
	if (k->test_id != NULL && provision_test_seen(k)) {
		provision_forget_seen(k);
		provision_test_pass(k);
		return;
	}
	provision_forget_seen(k);
	if (k->test_id == NULL) {
		provision_test_fail(k, "the test push answer has no message_id");
		return;
	}
	k->test = T_WAIT;
	log_info("selftest %s: waiting for test item %s", k->kind->name, k->test_id);
	evtimer_add(k->timer, &tv);
	provision_update(k->p);
}

void
provision_test_send(struct provision_kind *k)
{
	char *body = provision_test_body(&k->want);

	k->test = T_SEND;
	k->call = clicksend_request(
	    k->p->cs, CURL_REQ_POST, k->def->test_path, body, provision_test_answered, k);
	free(body);
}

void
provision_event_stored(struct provision *p, const struct webhook_event *ev)
{
	struct provision_kind *k;

	if (p == NULL || p->off || ev->kind == NULL || ev->message_id == NULL ||
	    !(p->mask & (1u << ev->kind->id)))
		return;
	k = &p->kinds[ev->kind->id];
	if (k->test == T_SEND) {
		/* ClickSend may push the item before it answers the request */
		if (k->nseen == PROVISION_SEEN_MAX) {
			free(k->seen[0]);
			memmove(
			    k->seen, k->seen + 1, (PROVISION_SEEN_MAX - 1) * sizeof(k->seen[0]));
			k->nseen--;
		}
		k->seen[k->nseen++] = xstrdup(ev->message_id);
	} else if (k->test == T_WAIT && strcasecmp(k->test_id, ev->message_id) == 0)
		provision_test_pass(k);
}

static void
provision_test_looked_up(int seen, const char *kind, const char *message_id, void *arg)
{
	struct provision_kind *k = arg;

	(void)kind;
	k->test_asking = 0;
	if (seen == 1 && k->test == T_WAIT && k->test_id != NULL &&
	    strcasecmp(k->test_id, message_id) == 0)
		provision_test_pass(k);
}

void
provision_selftest_tick(struct provision *p)
{
	size_t i;

	if (p == NULL || p->off || p->writer == NULL)
		return;
	for (i = 0; i < KIND_COUNT; i++) {
		struct provision_kind *k = &p->kinds[i];
		if (!(p->mask & (1u << i)) || k->test != T_WAIT || k->test_id == NULL ||
		    k->test_asking)
			continue;
		k->test_asking = 1;
		store_jobs_event_seen(
		    p->writer, k->kind->name, k->test_id, provision_test_looked_up, k);
	}
}
