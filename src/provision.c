/* SPDX-License-Identifier: ISC */
/*
 * Provisioning (clicksend-relayd(8), Provisioning). Per kind: list the automation rules (every page), find
 * the one named "<rule_prefix> <kind>", create or update it when it drifted, record the
 * result in provisioned_rules, retrying on a backoff timer. Everything runs on the daemon's
 * event_base through the ClickSend client, so ingest never waits for the API. Also the life
 * cycle: start with a config (cancelling a run in progress), reset, free. The pure rule
 * parts are in provision-rules.c, the self-test in provision-selftest.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clicksend.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "provision-internal.h"
#include "store-jobs.h"
#include "store-provision.h"
#include "xmalloc.h"

#define PROVISION_CLI_BACKOFF_MS 1000

static void provision_kind_begin(struct provision_kind *);

/* A uniform number in [0, 1) for backoff jitter. */
double
provision_random(struct provision *p)
{
	return rand_r(&p->seed) / ((double)RAND_MAX + 1);
}

/* ------------------------------------------------------------------ reconciliation */

/* Records and logs where a kind ended up: in sync, or failed for good. */
static void
provision_kind_record(struct provision_kind *k)
{
	struct store_provision_rule r = { .kind = k->kind->name,
		.rule_id = k->rule_id,
		.rule_name = k->rule_name,
		.action_address = k->action_address,
		.webhook_type = k->def->webhook_type ? k->want.webhook_type : NULL };
	struct store_writer *w = k->p->writer;

	if (w == NULL || k->p->dry_run)
		return;
	if (k->state == K_OK)
		store_jobs_provision_ok(w, &r);
	else
		store_jobs_provision_error(w, k->kind->name, k->rule_name, k->error);
}

static void
provision_kind_log(const struct provision_kind *k)
{
	char drift[128], id[32] = "";

	if (k->p->cli)
		return; /* the tool prints its own lines */
	provision_drift_text(k->drift, drift, sizeof(drift));
	if (k->rule_id >= 0)
		snprintf(id, sizeof(id), " %lld", k->rule_id);
	if (k->state == K_ERROR)
		log_error("provision %s: error: %s", k->kind->name, k->error);
	else if (k->result == R_CREATE)
		log_info("provision %s: created rule%s \"%s\"", k->kind->name, id, k->rule_name);
	else if (k->result == R_UPDATE)
		log_info("provision %s: updated rule%s (%s)", k->kind->name, id, drift);
	else
		log_info("provision %s: unchanged (rule%s)", k->kind->name, id);
}

static void
provision_kind_ok(struct provision_kind *k)
{
	k->state = K_OK;
	k->attempts = 0;
	metrics_set_provision_ok(k->kind->id, 1);
	provision_kind_record(k);
	provision_kind_log(k);
	if (provision_kind_tested(k->p, k))
		provision_test_send(k);
	provision_update(k->p);
}

/* The kind failed for good (until the next start); QUIET when it was logged already. */
static void
provision_kind_error(struct provision_kind *k, const char *error, int quiet)
{
	clicksend_cancel(k->call);
	k->call = NULL;
	evtimer_del(k->timer);
	k->state = K_ERROR;
	snprintf(k->error, sizeof(k->error), "%s", error);
	metrics_set_provision_ok(k->kind->id, 0);
	provision_kind_record(k);
	if (!quiet)
		provision_kind_log(k);
	if (provision_kind_tested(k->p, k)) {
		k->test = T_FAILED;
		snprintf(k->test_error, sizeof(k->test_error), "rule not provisioned");
		metrics_set_selftest_ok(k->kind->id, 0);
	}
	provision_update(k->p);
}

/* 401/403: the credentials are wrong for every kind. Logged once; no retry until reload. */
static void
provision_auth_failed(struct provision *p, const char *error)
{
	size_t i;

	if (!p->cli)
		log_error("provisioning: %s", error);
	for (i = 0; i < KIND_COUNT; i++) {
		if ((p->mask & (1u << i)) && provision_kind_running(&p->kinds[i]))
			provision_kind_error(&p->kinds[i], error, 1);
	}
}

/* A request of the kind failed: retry the whole kind later, or give up. */
static void
provision_kind_failed(struct provision_kind *k, const char *step, struct clicksend_answer *ans)
{
	struct provision *p = k->p;
	struct timeval tv;
	char error[sizeof(k->error)];
	uint64_t ms;

	if (ans->cls == CLICKSEND_AUTH) {
		provision_auth_failed(p, ans->error);
		return;
	}
	snprintf(error, sizeof(error), "%s: %s", step, ans->error);
	clicksend_redact(error, p->token);
	if (ans->cls != CLICKSEND_TRANSIENT || (p->cli && k->attempts >= PROVISION_CLI_RETRIES)) {
		provision_kind_error(k, error, 0);
		return;
	}
	ms = p->cli ? PROVISION_CLI_BACKOFF_MS * (k->attempts + 1) :
		      provision_backoff_ms(k->attempts, provision_random(p));
	k->attempts++;
	k->state = K_BACKOFF;
	snprintf(k->error, sizeof(k->error), "%s", error);
	if (p->writer != NULL && !p->dry_run)
		store_jobs_provision_error(p->writer, k->kind->name, k->rule_name, error);
	log_warnx("provision %s: %s; retrying in %llu s", k->kind->name, error,
	    (unsigned long long)(ms + 999) / 1000);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(k->timer, &tv);
	provision_update(p);
}

/* The write was answered: the rule is in place, or that step failed. */
static void
provision_kind_written(struct clicksend_answer *ans, void *arg)
{
	struct provision_kind *k = arg;
	char step[64];
	long long id;

	k->call = NULL;
	if (ans->cls == CLICKSEND_NOT_FOUND && k->result == R_UPDATE && !k->relisted) {
		log_notice(
		    "provision %s: rule %lld is gone; listing again", k->kind->name, k->rule_id);
		k->relisted = 1;
		provision_kind_begin(k);
		return;
	}
	if (ans->cls != CLICKSEND_OK) {
		if (k->result == R_CREATE)
			snprintf(step, sizeof(step), "create rule");
		else
			snprintf(step, sizeof(step), "update rule %lld", k->rule_id);
		provision_kind_failed(k, step, ans);
		return;
	}
	if (provision_rule_id(k->kind->id,
		json_is_array(ans->data) ? json_array_at(ans->data, 0) : ans->data, &id) == 0)
		k->rule_id = id;
	provision_kind_ok(k);
}

/* Sends the whole rule: POST to create, PUT to the rule's id to update. */
static void
provision_kind_write(struct provision_kind *k)
{
	char *body = provision_rule_body(&k->want), *path;

	if (k->result == R_CREATE)
		path = xstrdup(k->def->rules_path);
	else
		xasprintf(&path, "%s/%lld", k->def->rules_path, k->rule_id);
	k->state = K_WRITE;
	k->call = clicksend_request(k->p->cs, k->result == R_CREATE ? CURL_REQ_POST : CURL_REQ_PUT,
	    path, body, provision_kind_written, k);
	free(path);
	free(body);
}

/* Our rule among the listed ones: the first with our exact name; *n counts them. */
static const struct json_node *
provision_find(const struct provision_kind *k, const struct clicksend_list *l, size_t *n)
{
	const struct json_node *found = NULL;
	const char *name;
	size_t i;

	*n = 0;
	for (i = 0; i < l->nrows; i++) {
		name = json_as_string(json_get(l->rows[i], "rule_name"));
		if (name == NULL || strcmp(name, k->rule_name) != 0)
			continue;
		if ((*n)++ == 0)
			found = l->rows[i];
	}
	return found;
}

/* Create, update or leave the rule: the plan, carried out unless this is a dry run. */
static void
provision_kind_decide(struct provision_kind *k, const struct json_node *rule)
{
	long long id = -1;

	k->rule_id = -1;
	k->drift = 0;
	if (rule == NULL)
		k->result = R_CREATE;
	else {
		if (provision_rule_id(k->kind->id, rule, &id) == 0)
			k->rule_id = id;
		k->drift = provision_diff(&k->want, rule);
		k->result = k->drift != 0 ? R_UPDATE : R_UNCHANGED;
	}
	if (k->result == R_UPDATE && k->rule_id < 0) {
		provision_kind_error(k, "our rule has no readable id: cannot update it", 0);
		return;
	}
	if (k->result == R_UNCHANGED || k->p->dry_run)
		provision_kind_ok(k);
	else
		provision_kind_write(k);
}

/* Every page was listed (or a page failed). */
static void
provision_kind_listed(struct clicksend_list *l, void *arg)
{
	struct provision_kind *k = arg;
	const struct json_node *rule;
	size_t n;

	k->call = NULL;
	if (l->answer.cls != CLICKSEND_OK) {
		provision_kind_failed(k, "list rules", &l->answer);
		return;
	}
	rule = provision_find(k, l, &n);
	if (n > 1)
		log_warnx("provision %s: %zu rules are named \"%s\"; using the first, leaving "
			  "the others alone",
		    k->kind->name, n, k->rule_name);
	provision_kind_decide(k, rule);
}

static void
provision_kind_begin(struct provision_kind *k)
{
	k->state = K_LIST;
	k->call = clicksend_list(k->p->cs, k->def->rules_path, provision_kind_listed, k);
	provision_update(k->p);
}

/* The kind's one timer: a backoff is over, or a self-test step is due. */
static void
provision_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct provision_kind *k = arg;

	(void)fd;
	(void)what;
	if (k->state == K_BACKOFF)
		provision_kind_begin(k);
	else if (k->test == T_BACKOFF)
		provision_test_send(k);
	else if (k->test == T_WAIT)
		provision_test_timeout(k);
}

/* ------------------------------------------------------------------ life cycle */

struct provision *
provision_new(struct event_base *base, struct store_writer *w)
{
	struct provision *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->base = base;
	p->writer = w;
	p->off = 1;
	p->selftest_ms = PROVISION_SELFTEST_MS;
	p->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	for (i = 0; i < KIND_COUNT; i++) {
		p->kinds[i].p = p;
		p->kinds[i].kind = &webhook_kinds[i];
		p->kinds[i].def = &webhook_kinds[i].rule;
		p->kinds[i].timer = evtimer_new(base, provision_timer_cb, &p->kinds[i]);
	}
	provision_status_text(p);
	provision_selftest_text(p);
	return p;
}

/* Back to a kind that is not provisioned, keeping what provision_new set up. */
static void
provision_kind_clear(struct provision_kind *k)
{
	struct provision_kind keep = {
		.p = k->p, .kind = k->kind, .def = k->def, .timer = k->timer, .rule_id = -1
	};

	free(k->rule_name);
	free(k->action_address);
	free(k->test_id);
	provision_forget_seen(k);
	*k = keep;
}

/* Drops every request, timer and per-run string; the gauges go back to unknown. */
static void
provision_reset(struct provision *p)
{
	struct provision_kind *k;
	size_t i;

	clicksend_free(p->cs); /* abandons the calls in flight: no callbacks */
	p->cs = NULL;
	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		evtimer_del(k->timer);
		provision_kind_clear(k);
		metrics_set_provision_ok(k->kind->id, -1);
		metrics_set_selftest_ok(k->kind->id, -1);
	}
	p->fatal[0] = '\0';
	free(p->token);
	free(p->base_path);
	free(p->dedicated_number);
	p->token = p->base_path = p->dedicated_number = NULL;
	p->mask = p->poll = 0;
	p->off = 1;
}

/* Why provisioning cannot run with CFG, or NULL. */
static const char *
provision_off_reason(const struct config *cfg)
{
	if (cfg->provision == 0)
		return "no kinds in provision";
	if ((cfg->provision & ~cfg->poll) != 0 &&
	    (cfg->public_url == NULL || *cfg->public_url == '\0'))
		return "public_url is not set";
	if (cfg->username == NULL || *cfg->username == '\0')
		return "username is not set";
	return NULL;
}

/* The per-run copies of what the config says: the config may be gone before the run is. */
static void
provision_setup(struct provision *p, const struct config *cfg)
{
	struct provision_kind *k;
	size_t i;

	p->token = cfg->token != NULL && *cfg->token != '\0' ? xstrdup(cfg->token) : NULL;
	p->base_path = xstrdup(cfg->base_path != NULL ? cfg->base_path : "");
	p->dedicated_number = xstrdup(cfg->dedicated_number != NULL ? cfg->dedicated_number : "*");
	p->test_receipts = cfg->test_receipts;
	p->mask = cfg->provision & ((1u << KIND_COUNT) - 1);
	p->poll = p->mask & cfg->poll;
	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		if (!(p->mask & (1u << i)))
			continue;
		xasprintf(&k->rule_name, "%s %s", cfg->rule_prefix, k->kind->name);
		if (p->poll & (1u << i))
			k->action_address = xstrdup(PROVISION_POLL_ADDRESS);
		else
			k->action_address =
			    provision_action_address(cfg->public_url, p->token, k->kind);
		k->want = (struct provision_want){ .kind = k->kind->id,
			.rule_name = k->rule_name,
			.action = (p->poll & (1u << i)) ? PROVISION_POLL_ACTION : "URL",
			.action_address = k->action_address,
			.webhook_type = webhook_format_name(cfg->webhook_type),
			.dedicated_number = p->dedicated_number };
		metrics_set_provision_ok(k->kind->id, 0);
		if (provision_kind_tested(p, k))
			metrics_set_selftest_ok(k->kind->id, 0);
	}
}

/* Starts with CFG: 0 running, 1 off (WHY says why), -1 the key cannot be read (WHY). */
int
provision_begin(struct provision *p, const struct config *cfg, char *why, size_t whylen)
{
	const char *reason;
	char *key = NULL;
	size_t i;
	int rc;

	provision_reset(p);
	if ((reason = provision_off_reason(cfg)) != NULL) {
		snprintf(why, whylen, "%s", reason);
		provision_update(p);
		return 1;
	}
	if ((rc = clicksend_load_key(cfg, &key, why, whylen)) != 0) {
		if (rc == -1)
			snprintf(p->fatal, sizeof(p->fatal), "%s", why);
		for (i = 0; rc == -1 && i < KIND_COUNT; i++) {
			if (cfg->provision & (1u << i))
				metrics_set_provision_ok((enum webhook_kind_id)i, 0);
		}
		provision_update(p);
		return rc;
	}
	p->off = 0;
	provision_setup(p, cfg);
	p->cs = clicksend_new(p->base, cfg->api_url, cfg->username, key);
	explicit_bzero(key, strlen(key));
	free(key);
	for (i = 0; i < KIND_COUNT; i++) {
		if (p->mask & (1u << i))
			provision_kind_begin(&p->kinds[i]);
	}
	return 0;
}

void
provision_start(struct provision *p, const struct config *cfg)
{
	char why[512];
	int rc;

	p->cli = 0;
	p->dry_run = 0;
	if ((rc = provision_begin(p, cfg, why, sizeof(why))) == 0)
		return;
	if (rc == 1 && cfg->provision == 0)
		log_debug("provisioning off: %s", why);
	else if (rc == 1)
		log_warnx("provisioning off: %s", why);
	else
		log_error("provisioning: %s", why);
}

void
provision_set_selftest_window(struct provision *p, uint64_t ms)
{
	p->selftest_ms = ms;
}

void
provision_free(struct provision *p)
{
	size_t i;

	if (p == NULL)
		return;
	provision_reset(p);
	for (i = 0; i < KIND_COUNT; i++)
		event_free(p->kinds[i].timer);
	free(p);
}
