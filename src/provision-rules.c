/* SPDX-License-Identifier: ISC */
/*
 * The pure parts of provisioning: the rule we want (action address, JSON bodies), comparing
 * a listed rule with it (drift and its text), the rule's id, the test push answer's
 * message_id and the retry backoff. Each kind's endpoint is its row of webhook_kinds.
 * No I/O here.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "provision-internal.h"
#include "xmalloc.h"

static const char *const provision_drift_names[] = {
	"action",
	"action_address",
	"webhook_type",
	"enabled",
	"dedicated_number",
	"message_search",
	"match_type",
};

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
	return webhook_kinds[kind].rule.rules_path;
}

const char *
provision_test_path(enum webhook_kind_id kind)
{
	return webhook_kinds[kind].rule.test_path;
}

int
provision_rule_id(enum webhook_kind_id kind, const struct json_node *rule, long long *id)
{
	const struct webhook_rule *def = &webhook_kinds[kind].rule;

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
	const struct webhook_rule *def = &webhook_kinds[want->kind].rule;
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

/* The rule's action: URL, or POLL for a polled kind. */
static const char *
provision_action(const struct provision_want *want)
{
	return want->action != NULL ? want->action : "URL";
}

unsigned
provision_diff(const struct provision_want *want, const struct json_node *rule)
{
	const struct webhook_rule *def = &webhook_kinds[want->kind].rule;
	unsigned drift = provision_match_diff(want, rule);
	const char *s;
	long long v;

	if ((s = json_as_string(json_get(rule, "action"))) == NULL ||
	    strcasecmp(s, provision_action(want)) != 0)
		drift |= PROVISION_DRIFT_ACTION;
	if ((s = json_as_string(json_get(rule, "action_address"))) == NULL ||
	    strcmp(s, want->action_address) != 0)
		drift |= PROVISION_DRIFT_ADDRESS;
	/* null or missing means ClickSend's default, post */
	if (def->webhook_type &&
	    strcasecmp((s = json_as_string(json_get(rule, "webhook_type"))) ? s : "post",
		want->webhook_type) != 0)
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
	const struct webhook_rule *def = &webhook_kinds[want->kind].rule;
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
	json_gen_kv_string(g, "action", provision_action(want));
	json_gen_kv_string(g, "action_address", want->action_address);
	json_gen_kv_integer(g, "enabled", 1);
	if (def->webhook_type)
		json_gen_kv_string(g, "webhook_type", want->webhook_type);
	json_gen_map_close(g);
	return json_gen_finish(g, NULL);
}

/* A polled kind's action_address is "poll": its test item goes to the poll queue. */
char *
provision_test_body(const struct provision_want *want)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_string(g, "url", want->action_address);
	if (webhook_kinds[want->kind].rule.webhook_type)
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
