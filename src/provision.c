/* SPDX-License-Identifier: ISC */
/*
 * Provisioning (SPEC section 7). Per kind: list the automation rules (every page), find
 * the one named "<rule_prefix> <kind>", create or update it when it drifted, record the
 * result in provisioned_rules. Everything runs on the daemon's event_base through the
 * ClickSend client, so ingest never waits for the API. Then the optional self-test: one
 * test push per kind whose message_id must come back as a stored event within 60 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clicksend.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "provision.h"
#include "store.h"
#include "store-provision.h"
#include "systemd.h"
#include "xmalloc.h"

#define PROVISION_SEEN_MAX	 16 /* events remembered while a test push is in flight */
#define PROVISION_TEST_RETRIES	 5
#define PROVISION_CLI_BACKOFF_MS 1000

/* What a rule matches on, beyond its name. */
#define MATCH_NUMBER 0x1 /* dedicated_number */
#define MATCH_SEARCH 0x2 /* message_search_type 0, message_search_term "" */
#define MATCH_TYPE   0x4 /* match_type 0 */

/* One kind's automation endpoint, as in clicksend/README.md. */
struct provision_def {
	const char *rules_path;
	const char *id_field;
	const char *id_alias; /* the spelling lists may use instead */
	unsigned match;
	int webhook_type;      /* the rule takes webhook_type */
	const char *test_path; /* test push endpoint, NULL when there is none */
};

static const struct provision_def provision_defs[KIND_COUNT] = {
	[KIND_SMS_INBOUND] = { .rules_path = "/automations/sms/inbound",
	    .id_field = "inbound_rule_id",
	    .id_alias = "sms_inbound_rule_id",
	    .match = MATCH_NUMBER | MATCH_SEARCH,
	    .webhook_type = 1,
	    .test_path = "/sms/inbound" },
	[KIND_SMS_RECEIPT] = { .rules_path = "/automations/sms/receipts",
	    .id_field = "receipt_rule_id",
	    .match = MATCH_TYPE,
	    .test_path = "/sms/receipts" },
	[KIND_FAX_INBOUND] = { .rules_path = "/automations/fax/inbound",
	    .id_field = "inbound_rule_id",
	    .match = MATCH_NUMBER },
	[KIND_FAX_RECEIPT] = { .rules_path = "/automations/fax/receipts",
	    .id_field = "receipt_rule_id",
	    .match = MATCH_TYPE,
	    .test_path = "/fax/receipts" },
	[KIND_VOICE_RECEIPT] = { .rules_path = "/automations/voice/receipts",
	    .id_field = "receipt_rule_id",
	    .match = MATCH_TYPE,
	    .test_path = "/voice/receipts" },
	[KIND_EMAIL_RECEIPT] = { .rules_path = "/automations/email/receipts",
	    .id_field = "receipt_rule_id",
	    .match = MATCH_TYPE,
	    .test_path = "/email/receipts" },
};

static const char *const provision_drift_names[] = {
	"action",
	"action_address",
	"webhook_type",
	"enabled",
	"dedicated_number",
	"message_search",
	"match_type",
};

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
	const struct provision_def *def;
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
	char *seen[PROVISION_SEEN_MAX];
	size_t nseen;
	char test_error[256];
};

struct provision {
	struct event_base *base;
	struct store *store;
	struct clicksend *cs;
	struct provision_kind kinds[KIND_COUNT];
	unsigned mask; /* kinds being provisioned */
	int off, test_receipts, cli, dry_run;
	char *token, *base_path, *dedicated_number;
	char fatal[512];      /* why the run could not start (the key), or "" */
	uint64_t selftest_ms; /* how long a test push may take to arrive */
	unsigned seed;
	char status[1024], selftest[1024], notified[2100];
};

static void provision_kind_begin(struct provision_kind *);
static void provision_test_send(struct provision_kind *);
static void provision_update(struct provision *);

/* ------------------------------------------------------------------ pure parts */

char *
provision_action_address(const char *public_url, const char *token, const struct webhook_kind *k)
{
	size_t len = strlen(public_url);
	char *out;

	while (len > 0 && public_url[len - 1] == '/')
		len--;
	if (token != NULL && *token != '\0')
		xasprintf(&out, "%.*s/%s%s", (int)len, public_url, token, k->path);
	else
		xasprintf(&out, "%.*s%s", (int)len, public_url, k->path);
	return out;
}

const char *
provision_rules_path(enum webhook_kind_id kind)
{
	return provision_defs[kind].rules_path;
}

const char *
provision_test_path(enum webhook_kind_id kind)
{
	return provision_defs[kind].test_path;
}

int
provision_rule_id(enum webhook_kind_id kind, const struct json_node *rule, long long *id)
{
	const struct provision_def *def = &provision_defs[kind];

	if (json_as_int(json_get(rule, def->id_field), id) == 0 && *id >= 0)
		return 0;
	if (def->id_alias != NULL && json_as_int(json_get(rule, def->id_alias), id) == 0 &&
	    *id >= 0)
		return 0;
	return -1;
}

/* A number field that must be WANT; absent or null is taken as fine (lenient). */
static int
provision_int_differs(const struct json_node *have, long long want)
{
	long long v;

	if (have == NULL || json_is_null(have))
		return 0;
	return json_as_int(have, &v) == -1 || v != want;
}

/* Only the digits of a number, for comparing "+61 411 111 111" with "+61411111111". */
static void
provision_digits(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < len; s++) {
		if (*s >= '0' && *s <= '9')
			out[n++] = *s;
	}
	out[n] = '\0';
}

/*
 * dedicated_number: "*" must be "*". ClickSend may answer a specific number with an
 * internal id string, so two values are only called different when both are written
 * the same way (both "+" numbers) and their digits differ.
 */
static int
provision_number_differs(const char *want, const struct json_node *have)
{
	char a[64], b[64];
	const char *h;

	if (have == NULL || json_is_null(have))
		return 0;
	if ((h = json_as_string(have)) == NULL)
		return 1;
	if (strcmp(want, "*") == 0 || strcmp(h, "*") == 0)
		return strcmp(want, h) != 0;
	provision_digits(want, a, sizeof(a));
	provision_digits(h, b, sizeof(b));
	if (strcmp(a, b) == 0)
		return 0;
	return want[0] == '+' && h[0] == '+';
}

/* The match settings of the kind's rule. */
static unsigned
provision_match_diff(const struct provision_want *want, const struct json_node *rule)
{
	const struct provision_def *def = &provision_defs[want->kind];
	const struct json_node *term = json_get(rule, "message_search_term");
	unsigned drift = 0;

	if ((def->match & MATCH_NUMBER) &&
	    provision_number_differs(want->dedicated_number, json_get(rule, "dedicated_number")))
		drift |= PROVISION_DRIFT_NUMBER;
	if ((def->match & MATCH_SEARCH) &&
	    (provision_int_differs(json_get(rule, "message_search_type"), 0) ||
		(term != NULL && !json_is_null(term) &&
		    (json_as_string(term) == NULL || *json_as_string(term) != '\0'))))
		drift |= PROVISION_DRIFT_SEARCH;
	if ((def->match & MATCH_TYPE) && provision_int_differs(json_get(rule, "match_type"), 0))
		drift |= PROVISION_DRIFT_MATCH_TYPE;
	return drift;
}

unsigned
provision_diff(const struct provision_want *want, const struct json_node *rule)
{
	const struct provision_def *def = &provision_defs[want->kind];
	unsigned drift = provision_match_diff(want, rule);
	const char *s;
	long long v;

	if ((s = json_as_string(json_get(rule, "action"))) == NULL || strcasecmp(s, "URL") != 0)
		drift |= PROVISION_DRIFT_ACTION;
	if ((s = json_as_string(json_get(rule, "action_address"))) == NULL ||
	    strcmp(s, want->action_address) != 0)
		drift |= PROVISION_DRIFT_ADDRESS;
	if (def->webhook_type &&
	    ((s = json_as_string(json_get(rule, "webhook_type"))) == NULL ||
		strcasecmp(s, want->webhook_type) != 0))
		drift |= PROVISION_DRIFT_WEBHOOK_TYPE;
	if (json_as_int(json_get(rule, "enabled"), &v) == -1 || v != 1)
		drift |= PROVISION_DRIFT_ENABLED;
	return drift;
}

void
provision_drift_text(unsigned drift, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(provision_drift_names) / sizeof(provision_drift_names[0]); i++) {
		if ((drift & (1u << i)) && n < len)
			n += (size_t)snprintf(
			    buf + n, len - n, "%s%s", n > 0 ? ", " : "", provision_drift_names[i]);
	}
}

char *
provision_rule_body(const struct provision_want *want)
{
	const struct provision_def *def = &provision_defs[want->kind];
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	if (def->match & MATCH_NUMBER)
		json_gen_kv_string(g, "dedicated_number", want->dedicated_number);
	json_gen_kv_string(g, "rule_name", want->rule_name);
	if (def->match & MATCH_SEARCH) {
		json_gen_kv_integer(g, "message_search_type", 0);
		json_gen_kv_string(g, "message_search_term", "");
	}
	if (def->match & MATCH_TYPE)
		json_gen_kv_integer(g, "match_type", 0);
	json_gen_kv_string(g, "action", "URL");
	json_gen_kv_string(g, "action_address", want->action_address);
	json_gen_kv_integer(g, "enabled", 1);
	if (def->webhook_type)
		json_gen_kv_string(g, "webhook_type", want->webhook_type);
	json_gen_map_close(g);
	return json_gen_finish(g, NULL);
}

char *
provision_test_body(const struct provision_want *want)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_string(g, "url", want->action_address);
	if (provision_defs[want->kind].webhook_type)
		json_gen_kv_string(g, "webhook_type", want->webhook_type);
	json_gen_map_close(g);
	return json_gen_finish(g, NULL);
}

char *
provision_test_message_id(const struct json_node *data)
{
	const char *s;

	if (json_is_array(data))
		data = json_array_at(data, 0);
	if ((s = json_as_string(json_get(data, "message_id"))) == NULL || *s == '\0')
		return NULL;
	return xstrdup(s);
}

uint64_t
provision_backoff_ms(unsigned attempt, double r)
{
	uint64_t ms = PROVISION_BACKOFF_MIN_MS;

	while (attempt-- > 0 && ms < PROVISION_BACKOFF_MAX_MS)
		ms *= 2;
	ms = (uint64_t)((double)ms * (0.8 + 0.4 * r));
	return ms > PROVISION_BACKOFF_MAX_MS ? PROVISION_BACKOFF_MAX_MS : ms;
}

/* A uniform number in [0, 1) for backoff jitter. */
static double
provision_random(struct provision *p)
{
	return rand_r(&p->seed) / ((double)RAND_MAX + 1);
}

/* ------------------------------------------------------------------ status */

static int
provision_kind_running(const struct provision_kind *k)
{
	return k->state == K_LIST || k->state == K_WRITE || k->state == K_BACKOFF;
}

static int
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

static void
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

static void
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
static void
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

/* ------------------------------------------------------------------ self-test */

static void
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

static void
provision_test_timeout(struct provision_kind *k)
{
	struct provision *p = k->p;
	char why[256];

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

static void
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
	struct store *st = k->p->store;
	int rc = 0;

	if (st == NULL || k->p->dry_run)
		return;
	if (k->state == K_OK)
		rc = store_provision_ok(st, &r);
	else
		rc = store_provision_error(st, k->kind->name, k->rule_name, k->error);
	if (rc == -1)
		log_warnx(
		    "provision %s: cannot record the result: %s", k->kind->name, store_errmsg(st));
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
	if (p->store != NULL && !p->dry_run)
		store_provision_error(p->store, k->kind->name, k->rule_name, error);
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
provision_new(struct event_base *base, struct store *st)
{
	struct provision *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->base = base;
	p->store = st;
	p->off = 1;
	p->selftest_ms = PROVISION_SELFTEST_MS;
	p->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	for (i = 0; i < KIND_COUNT; i++) {
		p->kinds[i].p = p;
		p->kinds[i].kind = &webhook_kinds[i];
		p->kinds[i].def = &provision_defs[i];
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
	p->mask = 0;
	p->off = 1;
}

/* Why provisioning cannot run with CFG, or NULL. */
static const char *
provision_off_reason(const struct config *cfg)
{
	if (cfg->provision == 0)
		return "no kinds in provision";
	if (cfg->public_url == NULL || *cfg->public_url == '\0')
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
	for (i = 0; i < KIND_COUNT; i++) {
		k = &p->kinds[i];
		if (!(p->mask & (1u << i)))
			continue;
		xasprintf(&k->rule_name, "%s %s", cfg->rule_prefix, k->kind->name);
		k->action_address = provision_action_address(cfg->public_url, p->token, k->kind);
		k->want = (struct provision_want){ .kind = k->kind->id,
			.rule_name = k->rule_name,
			.action_address = k->action_address,
			.webhook_type = webhook_format_name(cfg->webhook_type),
			.dedicated_number = p->dedicated_number };
		metrics_set_provision_ok(k->kind->id, 0);
		if (provision_kind_tested(p, k))
			metrics_set_selftest_ok(k->kind->id, 0);
	}
}

/* Starts with CFG: 0 running, 1 off (WHY says why), -1 the key cannot be read (WHY). */
static int
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

/* ------------------------------------------------------------------ the operator tool */

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
		return 70;
	}
	p = provision_new(base, st);
	p->cli = 1;
	p->dry_run = dry_run;
	if ((rc = provision_begin(p, cfg, why, sizeof(why))) != 0) {
		fprintf(stderr, "clicksend-relay: provision: %s\n", why);
		provision_free(p);
		event_base_free(base);
		return 78;
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
	event_base_free(base);
	return failed ? 69 : 0;
}
