/* SPDX-License-Identifier: ISC */
/* Unit tests for clicksend.c, provision.c and store-provision.c: the pure parts (key
 * loading, envelope, errors, pages, ids, diff, bodies, backoff), then whole runs against a
 * small fake of the ClickSend API served by evhttp on the same event loop. */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "clicksend.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "provision.h"
#include "store-admin.h"
#include "store-writer.h"
#include "store.h"
#include "tap.h"
#include "webhook.h"
#include "xmalloc.h"

#define SECRET_KEY "K3y-S3cret-0123456789ABCDEF"
#define ADDR_BASE  "https://hooks.example.com/clicksend"
#define FAKE_MAX   64

static char tmpdir[64];
static char logged[65536];

/* ------------------------------------------------------------------ helpers */

static char *
slurp(const char *name, size_t *len)
{
	char path[512], *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/api/%s", TESTS_DATA, name);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = xcalloc(1, (size_t)n + 1);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

/* S with the first FROM replaced by TO. Caller frees. */
static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	ck_assert_msg(p != NULL, "'%s' not in the fixture", from);
	xasprintf(&out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
	return out;
}

static void
log_capture(int prio, const char *msg, void *arg)
{
	size_t n = strlen(logged);

	(void)prio;
	(void)arg;
	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

static int
count_in(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay += strlen(needle))
		n++;
	return n;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void
setup_tmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/provision-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	unsetenv("CREDENTIALS_DIRECTORY");
	logged[0] = '\0';
	log_init(LOG_DEBUG, 0);
	log_set_hook(log_capture, NULL);
}

static void
teardown_tmp(void)
{
	char cmd[128];

	log_set_hook(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The first rule of the sample list (ours), parsed; free the doc. */
static const struct json_node *
sample_rule(const char *list_text, struct json_doc **doc)
{
	const struct json_node *rows;
	long long cur, last;

	ck_assert_ptr_nonnull(*doc = json_doc_parse(list_text, strlen(list_text), NULL, 0));
	ck_assert_int_eq(
	    clicksend_page(json_get(json_doc_root(*doc), "data"), &rows, &cur, &last), 0);
	return json_array_at(rows, 0);
}

static struct provision_want
want_sms_inbound(void)
{
	return (struct provision_want){ .kind = KIND_SMS_INBOUND,
		.rule_name = "clicksend-relay sms.inbound",
		.action_address = ADDR_BASE "/sms/inbound",
		.webhook_type = "json",
		.dedicated_number = "*" };
}

/* The drift of the sample list's first rule after replacing FROM by TO (NULL: as is). */
static unsigned
drift_of(const struct provision_want *want, const char *from, const char *to)
{
	char *list = slurp("list-sms-inbound-rules.json", NULL), *text;
	struct json_doc *doc;
	unsigned d;

	text = from != NULL ? replace(list, from, to) : xstrdup(list);
	d = provision_diff(want, sample_rule(text, &doc));
	json_doc_free(doc);
	free(text);
	free(list);
	return d;
}

/* ------------------------------------------------------------------ pure parts */

START_TEST(action_address)
{
	char *a;

	a = provision_action_address(ADDR_BASE, NULL, &webhook_kinds[KIND_SMS_INBOUND]);
	ck_assert_str_eq(a, ADDR_BASE "/sms/inbound");
	free(a);
	a = provision_action_address(ADDR_BASE "/", "t0k3n", &webhook_kinds[KIND_FAX_RECEIPT]);
	ck_assert_str_eq(a, ADDR_BASE "/t0k3n/fax/receipt");
	free(a);
	a = provision_action_address(ADDR_BASE, "", &webhook_kinds[KIND_EMAIL_RECEIPT]);
	ck_assert_str_eq(a, ADDR_BASE "/email/receipt");
	free(a);
}
END_TEST

START_TEST(rule_bodies)
{
	struct provision_want w = want_sms_inbound();
	char *want = slurp("create-sms-inbound-rule.request.json", NULL), *body;

	body = provision_rule_body(&w);
	ck_assert_str_eq(body, want);
	free(body);
	free(want);
	w = (struct provision_want){ .kind = KIND_SMS_RECEIPT,
		.rule_name = "clicksend-relay sms.receipt",
		.action_address = ADDR_BASE "/sms/receipt",
		.webhook_type = "json",
		.dedicated_number = "*" };
	want = slurp("create-sms-receipt-rule.request.json", NULL);
	body = provision_rule_body(&w);
	ck_assert_str_eq(body, want);
	free(body);
	free(want);
	w.kind = KIND_FAX_INBOUND;
	body = provision_rule_body(&w);
	ck_assert_ptr_null(strstr(body, "match_type"));
	ck_assert_ptr_nonnull(strstr(body, "\"dedicated_number\":\"*\""));
	ck_assert_ptr_null(strstr(body, "webhook_type"));
	free(body);
}
END_TEST

START_TEST(test_bodies)
{
	struct provision_want w = want_sms_inbound();
	char *body = provision_test_body(&w);

	ck_assert_str_eq(body, "{\"url\":\"" ADDR_BASE "/sms/inbound\",\"webhook_type\":\"json\"}");
	free(body);
	w.kind = KIND_VOICE_RECEIPT;
	w.action_address = ADDR_BASE "/voice/receipt";
	body = provision_test_body(&w);
	ck_assert_str_eq(body, "{\"url\":\"" ADDR_BASE "/voice/receipt\"}");
	free(body);
	ck_assert_str_eq(provision_test_path(KIND_SMS_INBOUND), "/sms/inbound");
	ck_assert_str_eq(provision_test_path(KIND_SMS_RECEIPT), "/sms/receipts");
	ck_assert_str_eq(provision_test_path(KIND_VOICE_RECEIPT), "/voice/receipts");
	ck_assert_str_eq(provision_test_path(KIND_FAX_RECEIPT), "/fax/receipts");
	ck_assert_str_eq(provision_test_path(KIND_EMAIL_RECEIPT), "/email/receipts");
	ck_assert_ptr_null(provision_test_path(KIND_FAX_INBOUND));
	ck_assert_str_eq(provision_rules_path(KIND_EMAIL_RECEIPT), "/automations/email/receipts");
}
END_TEST

START_TEST(diff_unchanged)
{
	struct provision_want w = want_sms_inbound();

	ck_assert_uint_eq(drift_of(&w, NULL, NULL), 0);
	/* lenient readings */
	ck_assert_uint_eq(drift_of(&w, "\"enabled\":1", "\"enabled\":\"1\""), 0);
	ck_assert_uint_eq(drift_of(&w, "\"enabled\":1", "\"enabled\":true"), 0);
	ck_assert_uint_eq(
	    drift_of(&w, "\"webhook_type\":\"json\"", "\"webhook_type\":\"JSON\""), 0);
	ck_assert_uint_eq(drift_of(&w, "\"action\":\"URL\"", "\"action\":\"url\""), 0);
	ck_assert_uint_eq(
	    drift_of(&w, "\"message_search_type\":0", "\"message_search_type\":\"0\""), 0);
	ck_assert_uint_eq(
	    drift_of(&w, "\"message_search_term\":\"\"", "\"message_search_term\":null"), 0);
}
END_TEST

START_TEST(diff_drift)
{
	struct provision_want w = want_sms_inbound();
	char text[128];

	ck_assert_uint_eq(
	    drift_of(&w, "/clicksend/sms/inbound", "/old/sms/inbound"), PROVISION_DRIFT_ADDRESS);
	ck_assert_uint_eq(drift_of(&w, "\"enabled\":1", "\"enabled\":0"), PROVISION_DRIFT_ENABLED);
	ck_assert_uint_eq(
	    drift_of(&w, "\"enabled\":1", "\"enabled\":\"0\""), PROVISION_DRIFT_ENABLED);
	ck_assert_uint_eq(drift_of(&w, "\"webhook_type\":\"json\"", "\"webhook_type\":null"),
	    PROVISION_DRIFT_WEBHOOK_TYPE);
	ck_assert_uint_eq(drift_of(&w, "\"webhook_type\":\"json\"", "\"webhook_type\":\"post\""),
	    PROVISION_DRIFT_WEBHOOK_TYPE);
	ck_assert_uint_eq(
	    drift_of(&w, ",\"webhook_type\":\"json\"", ""), PROVISION_DRIFT_WEBHOOK_TYPE);
	ck_assert_uint_eq(
	    drift_of(&w, "\"action\":\"URL\"", "\"action\":\"POLL\""), PROVISION_DRIFT_ACTION);
	ck_assert_uint_eq(drift_of(&w, "\"message_search_type\":0", "\"message_search_type\":2"),
	    PROVISION_DRIFT_SEARCH);
	ck_assert_uint_eq(
	    drift_of(&w, "\"message_search_term\":\"\"", "\"message_search_term\":\"quote\""),
	    PROVISION_DRIFT_SEARCH);
	ck_assert_uint_eq(
	    drift_of(&w, "\"dedicated_number\":\"*\"", "\"dedicated_number\":\"+61411111111\""),
	    PROVISION_DRIFT_NUMBER);
	ck_assert_uint_eq(drift_of(&w, "\"enabled\":1,\"webhook_type\":\"json\"",
			      "\"enabled\":0,\"webhook_type\":\"get\""),
	    PROVISION_DRIFT_ENABLED | PROVISION_DRIFT_WEBHOOK_TYPE);
	provision_drift_text(PROVISION_DRIFT_ADDRESS | PROVISION_DRIFT_ENABLED, text, sizeof(text));
	ck_assert_str_eq(text, "action_address, enabled");
	provision_drift_text(PROVISION_DRIFT_ADDRESS, text, sizeof(text));
	ck_assert_str_eq(text, "action_address");
}
END_TEST

START_TEST(diff_dedicated_number)
{
	struct provision_want w = want_sms_inbound();
	const char *key = "\"dedicated_number\":\"*\"";

	w.dedicated_number = "+61411111111";
	ck_assert_uint_eq(drift_of(&w, key, "\"dedicated_number\":\"*\""), PROVISION_DRIFT_NUMBER);
	ck_assert_uint_eq(drift_of(&w, key, "\"dedicated_number\":\"+61411111111\""), 0);
	ck_assert_uint_eq(drift_of(&w, key, "\"dedicated_number\":\"+61 411 111 111\""), 0);
	ck_assert_uint_eq(drift_of(&w, key, "\"dedicated_number\":61411111111"), 0);
	/* an internal id string: another representation, left alone */
	ck_assert_uint_eq(drift_of(&w, key, "\"dedicated_number\":\"4711\""), 0);
	ck_assert_uint_eq(
	    drift_of(&w, key, "\"dedicated_number\":\"+61422222222\""), PROVISION_DRIFT_NUMBER);
}
END_TEST

START_TEST(diff_receipt)
{
	struct provision_want w = { .kind = KIND_SMS_RECEIPT,
		.rule_name = "clicksend-relay sms.receipt",
		.action_address = ADDR_BASE "/sms/receipt",
		.webhook_type = "json",
		.dedicated_number = "*" };
	const char *rule = "{\"receipt_rule_id\":\"3\",\"rule_name\":\"clicksend-relay "
			   "sms.receipt\",\"match_type\":0,\"action\":\"URL\",\"action_address\":"
			   "\"" ADDR_BASE "/sms/receipt\",\"enabled\":\"1\"}";
	struct json_doc *doc = json_doc_parse(rule, strlen(rule), NULL, 0);
	char *t;
	long long id;

	/* no webhook_type on receipt rules: its absence is no drift */
	ck_assert_uint_eq(provision_diff(&w, json_doc_root(doc)), 0);
	ck_assert_int_eq(provision_rule_id(KIND_SMS_RECEIPT, json_doc_root(doc), &id), 0);
	ck_assert_int_eq(id, 3);
	json_doc_free(doc);
	t = replace(rule, "\"match_type\":0", "\"match_type\":1");
	doc = json_doc_parse(t, strlen(t), NULL, 0);
	ck_assert_uint_eq(provision_diff(&w, json_doc_root(doc)), PROVISION_DRIFT_MATCH_TYPE);
	json_doc_free(doc);
	free(t);
}
END_TEST

START_TEST(rule_ids)
{
	static const char *const rules[] = {
		"{\"inbound_rule_id\":10}",
		"{\"inbound_rule_id\":\"10\"}",
		"{\"sms_inbound_rule_id\":10}",
		"{\"sms_inbound_rule_id\":\"10\"}",
		"{\"inbound_rule_id\":null,\"sms_inbound_rule_id\":\"10\"}",
	};
	struct json_doc *doc;
	long long id;
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		doc = json_doc_parse(rules[i], strlen(rules[i]), NULL, 0);
		id = -1;
		ck_assert_int_eq(provision_rule_id(KIND_SMS_INBOUND, json_doc_root(doc), &id), 0);
		ck_assert_int_eq(id, 10);
		json_doc_free(doc);
	}
	doc = json_doc_parse("{\"receipt_rule_id\":\"x\"}", 23, NULL, 0);
	ck_assert_int_eq(provision_rule_id(KIND_SMS_RECEIPT, json_doc_root(doc), &id), -1);
	ck_assert_int_eq(provision_rule_id(KIND_SMS_INBOUND, json_doc_root(doc), &id), -1);
	json_doc_free(doc);
}
END_TEST

/* Parse a fixture as an answer with STATUS. */
static void
answer_of(struct clicksend_answer *ans, int status, const char *name)
{
	size_t len;
	char *body = slurp(name, &len);

	clicksend_answer_parse(ans, status, body, len, 0, NULL);
	free(body);
}

START_TEST(envelope_errors)
{
	struct clicksend_answer a;

	answer_of(&a, 400, "error-400.json");
	ck_assert_int_eq(a.cls, CLICKSEND_INVALID);
	ck_assert_str_eq(a.error,
	    "HTTP 400 BAD_REQUEST: Invalid input. (action_address: The "
	    "action address field is required.)");
	clicksend_answer_clear(&a);
	answer_of(&a, 401, "error-401.json");
	ck_assert_int_eq(a.cls, CLICKSEND_AUTH);
	ck_assert_str_eq(
	    a.error, "ClickSend rejected the credentials (401): check username and api key");
	clicksend_answer_clear(&a);
	answer_of(&a, 429, "error-429.json");
	ck_assert_int_eq(a.cls, CLICKSEND_TRANSIENT);
	ck_assert_str_eq(a.error, "HTTP 429 TOO_MANY_REQUESTS: Too many requests.");
	clicksend_answer_clear(&a);
	/* the envelope's code wins over a 200 */
	answer_of(&a, 200, "error-401.json");
	ck_assert_int_eq(a.cls, CLICKSEND_AUTH);
	ck_assert_int_eq(a.status, 401);
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 403, "", 0, 0, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_AUTH);
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 502, "<html>bad gateway</html>", 24, 0, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_TRANSIENT);
	ck_assert_str_eq(a.error, "HTTP 502");
	clicksend_answer_clear(&a);
	clicksend_answer_parse(
	    &a, 404, "{\"http_code\":404,\"response_code\":\"NOT_FOUND\"}", 45, 0, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_NOT_FOUND);
	ck_assert_str_eq(a.error, "HTTP 404 NOT_FOUND");
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 405, "", 0, 0, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_INVALID);
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 0, NULL, 0, 0, "connect: Connection refused");
	ck_assert_int_eq(a.cls, CLICKSEND_TRANSIENT);
	ck_assert_str_eq(a.error, "connect: Connection refused");
	clicksend_answer_clear(&a);
}
END_TEST

START_TEST(envelope_lenient)
{
	static const char *const ok[] = {
		"{\"http_code\":200,\"response_code\":\"SUCCESS\",\"data\":true}",
		"{\"http_code\":\"200\",\"data\":null}",
		"{\"http_code\":200,\"data\":[]}",
		"{\"data\":{\"a\":1}}",
		"",
	};
	const char *laravel = "{\"http_code\":400,\"response_code\":\"BAD_REQUEST\",\"response_"
			      "msg\":\"Invalid.\",\"data\":{\"rule_name\":[\"Too long.\",\"Bad.\"],"
			      "\"enabled\":\"Must be 0 or 1.\"}}";
	struct clicksend_answer a;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		clicksend_answer_parse(&a, 200, ok[i], strlen(ok[i]), 0, NULL);
		ck_assert_msg(a.cls == CLICKSEND_OK, "%s: %s", ok[i], a.error);
		clicksend_answer_clear(&a);
	}
	clicksend_answer_parse(&a, 200, "not json", 8, 0, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_TRANSIENT);
	ck_assert_ptr_nonnull(strstr(a.error, "unreadable answer"));
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 200, "{\"data\":", 8, 1, NULL);
	ck_assert_int_eq(a.cls, CLICKSEND_INVALID);
	ck_assert_ptr_nonnull(strstr(a.error, "larger than"));
	clicksend_answer_clear(&a);
	clicksend_answer_parse(&a, 400, laravel, strlen(laravel), 0, NULL);
	ck_assert_str_eq(a.error,
	    "HTTP 400 BAD_REQUEST: Invalid. (rule_name: Too long. Bad.; "
	    "enabled: Must be 0 or 1.)");
	clicksend_answer_clear(&a);
}
END_TEST

START_TEST(pages)
{
	struct clicksend_list l = { 0 };
	struct clicksend_answer a;
	const char *p1 =
	    "{\"data\":{\"current_page\":\"1\",\"last_page\":\"3\",\"data\":[{\"x\":1}]}}";
	const char *p3 = "{\"data\":{\"current_page\":3,\"last_page\":3,\"data\":[{\"x\":3}]}}";
	const char *bare = "{\"data\":[{\"x\":1},{\"x\":2}]}";
	int page;

	clicksend_answer_parse(&a, 200, p1, strlen(p1), 0, NULL);
	ck_assert_int_eq(clicksend_list_add(&l, &a, 1), 1);
	clicksend_answer_parse(&a, 200, p1, strlen(p1), 0, NULL); /* a server stuck on page 1 */
	ck_assert_int_eq(clicksend_list_add(&l, &a, 2), 1);
	clicksend_answer_parse(&a, 200, p3, strlen(p3), 0, NULL);
	ck_assert_int_eq(clicksend_list_add(&l, &a, 3), 0);
	ck_assert_int_eq(l.nrows, 3);
	ck_assert_int_eq(l.pages, 3);
	clicksend_list_clear(&l);

	clicksend_answer_parse(&a, 200, bare, strlen(bare), 0, NULL);
	ck_assert_int_eq(clicksend_list_add(&l, &a, 1), 0);
	ck_assert_int_eq(l.nrows, 2);
	clicksend_list_clear(&l);

	/* a list that never ends is cut at the cap */
	p1 = "{\"data\":{\"current_page\":1,\"last_page\":1000,\"data\":[{\"x\":1}]}}";
	for (page = 1; page <= CLICKSEND_MAX_PAGES; page++) {
		clicksend_answer_parse(&a, 200, p1, strlen(p1), 0, NULL);
		if (clicksend_list_add(&l, &a, page) != 1)
			break;
	}
	ck_assert_int_eq(page, CLICKSEND_MAX_PAGES);
	ck_assert_int_ne(l.answer.cls, CLICKSEND_OK);
	ck_assert_ptr_nonnull(strstr(l.answer.error, "pages"));
	clicksend_list_clear(&l);

	/* an error page ends the list with its class */
	clicksend_answer_parse(&a, 429, "", 0, 0, NULL);
	ck_assert_int_eq(clicksend_list_add(&l, &a, 1), -1);
	ck_assert_int_eq(l.answer.cls, CLICKSEND_TRANSIENT);
	clicksend_list_clear(&l);
}
END_TEST

START_TEST(test_message_ids)
{
	struct clicksend_answer a;
	struct json_doc *doc;
	char *id;

	answer_of(&a, 200, "test-sms-receipt.response.json");
	ck_assert_int_eq(a.cls, CLICKSEND_OK);
	id = provision_test_message_id(a.data);
	ck_assert_str_eq(id, "2336751A-BBBE-4887-9D7C-CB7558F00208");
	free(id);
	clicksend_answer_clear(&a);
	doc = json_doc_parse("[{\"message_id\":12345}]", 22, NULL, 0);
	id = provision_test_message_id(json_doc_root(doc));
	ck_assert_str_eq(id, "12345");
	free(id);
	json_doc_free(doc);
	doc = json_doc_parse("{\"message_id\":\"\"}", 17, NULL, 0);
	ck_assert_ptr_null(provision_test_message_id(json_doc_root(doc)));
	ck_assert_ptr_null(provision_test_message_id(NULL));
	json_doc_free(doc);
}
END_TEST

START_TEST(backoff)
{
	ck_assert_uint_eq(provision_backoff_ms(0, 0.5), 2000);
	ck_assert_uint_eq(provision_backoff_ms(1, 0.5), 4000);
	ck_assert_uint_eq(provision_backoff_ms(2, 0.5), 8000);
	ck_assert_uint_eq(provision_backoff_ms(0, 0.0), 1600);
	ck_assert_uint_le(provision_backoff_ms(0, 0.999), 2400);
	ck_assert_uint_eq(provision_backoff_ms(30, 0.5), 3600000);
	ck_assert_uint_eq(provision_backoff_ms(1000, 0.999), 3600000);
	ck_assert_uint_ge(provision_backoff_ms(1000, 0.0), 2880000);
}
END_TEST

START_TEST(redact)
{
	char text[128] = "HTTP 400: key " SECRET_KEY " is wrong, " SECRET_KEY;

	clicksend_redact(text, SECRET_KEY);
	ck_assert_str_eq(text, "HTTP 400: key *** is wrong, ***");
	clicksend_redact(text, "ab"); /* too short to redact */
	clicksend_redact(text, NULL);
	ck_assert_str_eq(text, "HTTP 400: key *** is wrong, ***");
}
END_TEST

/* ------------------------------------------------------------------ the key */

static int
load(struct config *cfg, char **key, char *err, size_t errlen)
{
	*key = NULL;
	err[0] = '\0';
	return clicksend_load_key(cfg, key, err, errlen);
}

START_TEST(key_order)
{
	struct config cfg = { 0 };
	char path[256], cred[256], err[512], *key;

	snprintf(path, sizeof(path), "%s/key", tmpdir);
	snprintf(cred, sizeof(cred), "%s/" CLICKSEND_CREDENTIAL, tmpdir);
	write_file(path, "  from-file  \nsecond line\n");
	write_file(cred, "\n  from-credential\t\n");
	cfg.api_key_file = path;

	/* no credentials directory: the file */
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 0);
	ck_assert_str_eq(key, "from-file");
	free(key);
	/* the credential first */
	setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 0);
	ck_assert_str_eq(key, "from-credential");
	free(key);
	/* a whitespace-only credential (SetCredential fallback) means none */
	write_file(cred, " \n\t\n");
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 0);
	ck_assert_str_eq(key, "from-file");
	free(key);
	/* an empty one too, and then the inline key */
	write_file(cred, "");
	cfg.api_key_file = NULL;
	cfg.api_key = " inline-key ";
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 0);
	ck_assert_str_eq(key, "inline-key");
	free(key);
	/* a missing credential file is fine as well */
	unlink(cred);
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 0);
	ck_assert_str_eq(key, "inline-key");
	free(key);
	/* nothing anywhere */
	cfg.api_key = "   ";
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), 1);
	ck_assert_ptr_null(key);
	ck_assert_ptr_nonnull(strstr(err, "no API key"));
}
END_TEST

START_TEST(key_errors)
{
	struct config cfg = { 0 };
	char path[256], err[512], *key, *big;

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	cfg.api_key_file = path;
	cfg.api_key = SECRET_KEY; /* not reached: the file is configured */
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), -1);
	ck_assert_ptr_null(key);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
	ck_assert_ptr_null(strstr(err, SECRET_KEY));

	/* too large: bounded, and the contents never show */
	snprintf(path, sizeof(path), "%s/big", tmpdir);
	big = xmalloc(CLICKSEND_KEY_MAX + 100);
	memset(big, 'x', CLICKSEND_KEY_MAX + 99);
	memcpy(big, SECRET_KEY, strlen(SECRET_KEY));
	big[CLICKSEND_KEY_MAX + 99] = '\0';
	write_file(path, big);
	free(big);
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too large"));
	ck_assert_ptr_null(strstr(err, SECRET_KEY));

	/* blank */
	write_file(path, "\n \n");
	ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "holds no key"));

	/* a credential that cannot be read is an error naming it */
	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/" CLICKSEND_CREDENTIAL, tmpdir);
		write_file(path, SECRET_KEY);
		chmod(path, 0);
		setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
		ck_assert_int_eq(load(&cfg, &key, err, sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "credential " CLICKSEND_CREDENTIAL));
		ck_assert_ptr_null(strstr(err, SECRET_KEY));
	}
}
END_TEST

/* ------------------------------------------------------------------ a fake ClickSend */

struct fake_req {
	enum evhttp_cmd_type method;
	char *uri;
	char *body;
	char auth[256];
};

static struct {
	struct event_base *base;
	struct evhttp *http;
	int port;
	int nreq;
	struct fake_req req[FAKE_MAX];
	int status_all; /* answer everything with this status (0: normally) */
	int fail_first; /* answer the first N requests with fail_status */
	int fail_status;
	const char *fail_body;
	int pages;	     /* lists have this many pages; the rows are on the last */
	const char *rows;    /* JSON array of rules for sms.inbound lists ("[]" when NULL) */
	const char *test_id; /* message_id of test items */
	int push_early;	     /* deliver the test item before answering the test request */
	struct provision *prov;
} fake;

static void
fake_record(struct evhttp_request *r)
{
	struct fake_req *q = &fake.req[fake.nreq++ % FAKE_MAX];
	struct evbuffer *in = evhttp_request_get_input_buffer(r);
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(r), "Authorization");
	size_t len = evbuffer_get_length(in);

	q->method = evhttp_request_get_command(r);
	q->uri = xstrdup(evhttp_request_get_uri(r));
	q->body = xcalloc(1, len + 1);
	evbuffer_copyout(in, q->body, len);
	snprintf(q->auth, sizeof(q->auth), "%s", auth != NULL ? auth : "");
}

static void
fake_send(struct evhttp_request *r, int status, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, strlen(body));
	evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type", "application/json");
	evhttp_send_reply(r, status, NULL, b);
	evbuffer_free(b);
}

/* One list page: unrelated rules before the last page, the configured rows on it. */
static void
fake_list(struct evhttp_request *r, const char *uri)
{
	const char *q = strstr(uri, "page=");
	int page = q != NULL ? atoi(q + 5) : 1, last = fake.pages > 0 ? fake.pages : 1;
	const char *rows = "[{\"inbound_rule_id\":99,\"rule_name\":\"someone else\","
			   "\"action\":\"EMAIL_FIXED\"}]";
	char *body;

	if (page == last)
		rows = strstr(uri, "/automations/sms/inbound") != NULL && fake.rows != NULL ?
		    fake.rows :
		    "[]";
	xasprintf(&body,
	    "{\"http_code\":200,\"response_code\":\"SUCCESS\",\"response_msg\":"
	    "\"Here you go.\",\"data\":{\"total\":1,\"per_page\":100,\"current_page\":%d,"
	    "\"last_page\":%d,\"data\":%s}}",
	    page, last, rows);
	fake_send(r, 200, body);
	free(body);
}

static void
fake_test_push(struct evhttp_request *r, const char *uri)
{
	struct webhook_event ev = { 0 };
	char *body;

	if (fake.push_early) {
		ev.kind = webhook_kind_by_path(
		    strstr(uri, "/sms/inbound") ? "/sms/inbound" : "/sms/receipt");
		ev.message_id = fake.test_id;
		provision_event_stored(fake.prov, &ev);
	}
	xasprintf(&body,
	    "{\"http_code\":200,\"response_code\":\"SUCCESS\",\"data\":"
	    "{\"message_id\":\"%s\",\"status_code\":201}}",
	    fake.test_id);
	fake_send(r, 200, body);
	free(body);
}

static void
fake_cb(struct evhttp_request *r, void *arg)
{
	const char *uri = evhttp_request_get_uri(r);
	enum evhttp_cmd_type m = evhttp_request_get_command(r);

	(void)arg;
	fake_record(r);
	if (fake.status_all != 0)
		fake_send(r, fake.status_all, fake.fail_body != NULL ? fake.fail_body : "{}");
	else if (fake.fail_first > 0 && fake.nreq <= fake.fail_first)
		fake_send(r, fake.fail_status, fake.fail_body != NULL ? fake.fail_body : "{}");
	else if (strncmp(uri, "/v3/automations/", 16) == 0 && m == EVHTTP_REQ_GET)
		fake_list(r, uri);
	else if (strncmp(uri, "/v3/automations/", 16) == 0 && m == EVHTTP_REQ_POST)
		fake_send(r, 200,
		    "{\"http_code\":200,\"response_code\":\"SUCCESS\",\"data\":"
		    "{\"inbound_rule_id\":12,\"receipt_rule_id\":\"13\"}}");
	else if (strncmp(uri, "/v3/automations/", 16) == 0 && m == EVHTTP_REQ_PUT)
		fake_send(r, 200, "{\"http_code\":200,\"response_code\":\"SUCCESS\",\"data\":{}}");
	else if (m == EVHTTP_REQ_POST && fake.test_id != NULL)
		fake_test_push(r, uri);
	else
		fake_send(r, 404, "{\"http_code\":404,\"response_code\":\"NOT_FOUND\"}");
}

static void
fake_start(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&fake, 0, sizeof(fake));
	ck_assert_ptr_nonnull(fake.base = event_base_new());
	ck_assert_ptr_nonnull(fake.http = evhttp_new(fake.base));
	evhttp_set_allowed_methods(fake.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
	evhttp_set_gencb(fake.http, fake_cb, NULL);
	ck_assert_ptr_nonnull(bs = evhttp_bind_socket_with_handle(fake.http, "127.0.0.1", 0));
	ck_assert_int_eq(
	    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
	fake.port = ntohs(sin.sin_port);
}

static void
fake_stop(void)
{
	int i;

	evhttp_free(fake.http);
	event_base_free(fake.base);
	for (i = 0; i < fake.nreq && i < FAKE_MAX; i++) {
		free(fake.req[i].uri);
		free(fake.req[i].body);
	}
}

/* Requests with METHOD whose URI starts with PREFIX. */
static int
fake_count(enum evhttp_cmd_type method, const char *prefix)
{
	int i, n = 0;

	for (i = 0; i < fake.nreq && i < FAKE_MAX; i++)
		n += fake.req[i].method == method &&
		    strncmp(fake.req[i].uri, prefix, strlen(prefix)) == 0;
	return n;
}

static const struct fake_req *
fake_find(enum evhttp_cmd_type method, const char *prefix)
{
	int i;

	for (i = 0; i < fake.nreq && i < FAKE_MAX; i++) {
		if (fake.req[i].method == method &&
		    strncmp(fake.req[i].uri, prefix, strlen(prefix)) == 0)
			return &fake.req[i];
	}
	return NULL;
}

/* ------------------------------------------------------------------ whole runs */

static struct config *cfg;
static struct store *st;
static struct store_writer *wr; /* provisioning records its results through it */
static char api_url[128];

static void
setup_run(void)
{
	char path[256], *cause = NULL;

	setup_tmp();
	fake_start();
	snprintf(api_url, sizeof(api_url), "http://127.0.0.1:%d/v3", fake.port);
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->username = xstrdup("user");
	cfg->api_key = xstrdup(SECRET_KEY);
	cfg->api_url = xstrdup(api_url);
	cfg->public_url = xstrdup(ADDR_BASE);
	cfg->base_path = xstrdup("/clicksend");
	cfg->provision = 1u << KIND_SMS_INBOUND;
	cfg->webhook_type = FORMAT_JSON;
	cfg->dedicated_number = xstrdup("*");
	cfg->rule_prefix = xstrdup("clicksend-relay");
	cfg->store_path = xstrdup("unused");
	snprintf(path, sizeof(path), "%s/events.db", tmpdir);
	st = store_open(path, 0, &cause);
	ck_assert_msg(st != NULL, "%s", cause);
	wr = store_writer_new(fake.base, &store_write_ops, st, 16);
}

static void
teardown_run(void)
{
	store_writer_free(wr);
	store_close(st);
	config_free(cfg);
	fake_stop();
	teardown_tmp();
}

struct waiter {
	struct provision *p;
	const char *status, *selftest; /* wait until these (NULL: any) */
	int done;
};

static void
wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;

	(void)fd;
	(void)what;
	if ((w->status == NULL || strcmp(provision_status(w->p), w->status) == 0) &&
	    (w->selftest == NULL || strcmp(provision_selftest_status(w->p), w->selftest) == 0)) {
		w->done = 1;
		event_base_loopbreak(fake.base);
	}
}

/* Runs the loop until the statuses are as wanted; fails after SECS. */
static void
run_until(struct provision *p, const char *status, const char *selftest, int secs)
{
	struct waiter w = { .p = p, .status = status, .selftest = selftest };
	struct timeval tick = { 0, 20000 }, limit = { secs, 0 };
	struct event *ev = event_new(fake.base, -1, EV_PERSIST, wait_cb, &w);

	event_add(ev, &tick);
	event_base_loopexit(fake.base, &limit);
	event_base_dispatch(fake.base);
	event_free(ev);
	ck_assert_msg(w.done, "status \"%s\", selftest \"%s\" after %d s", provision_status(p),
	    provision_selftest_status(p), secs);
}

/* Lets the loop run for MS milliseconds. */
static void
run_for(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(fake.base, &tv);
	event_base_dispatch(fake.base);
}

struct rule_row {
	char kind[32], name[128], address[256], type[16], error[512], synced[32];
	long long id;
	int n;
};

static int
rule_row_cb(const struct store_admin_rule *r, void *arg)
{
	struct rule_row *row = arg;

	row->n++;
	snprintf(row->kind, sizeof(row->kind), "%s", r->kind);
	snprintf(row->name, sizeof(row->name), "%s", r->rule_name ? r->rule_name : "");
	snprintf(
	    row->address, sizeof(row->address), "%s", r->action_address ? r->action_address : "");
	snprintf(row->type, sizeof(row->type), "%s", r->webhook_type ? r->webhook_type : "");
	snprintf(row->error, sizeof(row->error), "%s", r->last_error ? r->last_error : "");
	snprintf(row->synced, sizeof(row->synced), "%s", r->synced_at ? r->synced_at : "");
	row->id = r->rule_id;
	return 0;
}

static struct rule_row
stored_rule(void)
{
	struct rule_row row = { .id = -2 };

	store_writer_drain(wr);
	ck_assert_int_eq(store_admin_rules(st, rule_row_cb, &row), 0);
	return row;
}

START_TEST(run_create)
{
	struct provision *p = provision_new(fake.base, wr);
	char *want = slurp("create-sms-inbound-rule.request.json", NULL);
	const struct fake_req *q;
	struct rule_row row;

	ck_assert_str_eq(provision_status(p), "off");
	provision_start(p, cfg);
	ck_assert_str_eq(provision_status(p), "running");
	ck_assert_str_eq(provision_selftest_status(p), "off");
	run_until(p, "ok", "off", 10);
	ck_assert_ptr_nonnull(q = fake_find(EVHTTP_REQ_GET, "/v3/automations/sms/inbound?"));
	ck_assert_str_eq(q->uri, "/v3/automations/sms/inbound?page=1&limit=100");
	ck_assert_str_eq(q->auth, "Basic dXNlcjpLM3ktUzNjcmV0LTAxMjM0NTY3ODlBQkNERUY=");
	ck_assert_ptr_nonnull(q = fake_find(EVHTTP_REQ_POST, "/v3/automations/sms/inbound"));
	ck_assert_str_eq(q->uri, "/v3/automations/sms/inbound");
	ck_assert_str_eq(q->body, want);
	row = stored_rule();
	ck_assert_int_eq(row.n, 1);
	ck_assert_str_eq(row.kind, "sms.inbound");
	ck_assert_int_eq(row.id, 12);
	ck_assert_str_eq(row.name, "clicksend-relay sms.inbound");
	ck_assert_str_eq(row.address, ADDR_BASE "/sms/inbound");
	ck_assert_str_eq(row.type, "json");
	ck_assert_str_eq(row.error, "");
	ck_assert_int_eq(strlen(row.synced), 24);
	ck_assert_ptr_nonnull(strstr(logged, "provision sms.inbound: created rule 12"));
	ck_assert_ptr_null(strstr(logged, SECRET_KEY));
	provision_free(p);
	free(want);
}
END_TEST

START_TEST(run_unchanged_and_update)
{
	struct provision *p = provision_new(fake.base, wr);
	char *list = slurp("list-sms-inbound-rules.json", NULL), *rows, *drifted, *end;
	const struct fake_req *q;

	/* the rows array of the sample list */
	rows = xstrdup(strstr(list, "\"data\":[") + 7);
	end = strrchr(rows, ']');
	end[1] = '\0';
	fake.rows = rows;
	fake.pages = 3; /* ours on the last page */
	provision_start(p, cfg);
	run_until(p, "ok", NULL, 10);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_GET, "/v3/automations/sms/inbound?page="), 3);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_POST, "/"), 0);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_PUT, "/"), 0);
	ck_assert_ptr_nonnull(strstr(logged, "provision sms.inbound: unchanged (rule 10)"));
	ck_assert_int_eq(stored_rule().id, 10);

	/* drifted: a PUT of the full rule to its id; other rules are never touched */
	drifted = replace(rows, "\"enabled\":1", "\"enabled\":0");
	fake.rows = drifted;
	fake.pages = 1;
	provision_start(p, cfg);
	run_until(p, "ok", NULL, 10);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_PUT, "/"), 1);
	ck_assert_ptr_nonnull(q = fake_find(EVHTTP_REQ_PUT, "/"));
	ck_assert_str_eq(q->uri, "/v3/automations/sms/inbound/10");
	ck_assert_ptr_nonnull(strstr(q->body, "\"enabled\":1"));
	ck_assert_ptr_nonnull(strstr(q->body, "\"rule_name\":\"clicksend-relay sms.inbound\""));
	ck_assert_ptr_nonnull(strstr(logged, "provision sms.inbound: updated rule 10 (enabled)"));
	provision_free(p);
	free(drifted);
	free(rows);
	free(list);
}
END_TEST

START_TEST(run_auth)
{
	struct provision *p = provision_new(fake.base, wr);
	int before;

	cfg->provision = (1u << KIND_COUNT) - 1;
	fake.status_all = 401;
	fake.fail_body = "{\"http_code\":401,\"response_code\":\"UNAUTHORIZED\",\"data\":null}";
	provision_start(p, cfg);
	run_until(p, NULL, NULL, 10);
	run_for(500);
	while (strcmp(provision_status(p), "running") == 0)
		run_for(100);
	ck_assert_ptr_nonnull(strstr(provision_status(p), "error: "));
	ck_assert_ptr_nonnull(strstr(provision_status(p),
	    "ClickSend rejected the credentials (401): check username and api key"));
	ck_assert_int_eq(count_in(logged, "ClickSend rejected the credentials (401)"), 1);
	/* nothing more is tried until the next start */
	before = fake.nreq;
	run_for(2500);
	ck_assert_int_eq(fake.nreq, before);
	ck_assert_str_eq(stored_rule().error,
	    "ClickSend rejected the credentials (401): check username and api key");
	provision_free(p);
}
END_TEST

START_TEST(run_transient)
{
	struct provision *p = provision_new(fake.base, wr);

	fake.fail_first = 1;
	fake.fail_status = 503;
	provision_start(p, cfg);
	run_for(800);
	ck_assert_str_eq(provision_status(p), "running");
	ck_assert_ptr_nonnull(strstr(stored_rule().error, "list rules: HTTP 503"));
	ck_assert_ptr_nonnull(strstr(logged, "retrying in"));
	run_until(p, "ok", NULL, 10);
	ck_assert_str_eq(stored_rule().error, "");
	provision_free(p);
}
END_TEST

START_TEST(run_invalid)
{
	struct provision *p = provision_new(fake.base, wr);
	char *body;

	/* a 400 that echoes the key and the token: neither shows */
	free(cfg->token);
	cfg->token = xstrdup("t0k3n-secret");
	xasprintf(&body,
	    "{\"http_code\":400,\"response_code\":\"BAD_REQUEST\",\"response_msg\":"
	    "\"Invalid input.\",\"data\":{\"action_address\":\"%s/t0k3n-secret/x is "
	    "bad for %s\"}}",
	    ADDR_BASE, SECRET_KEY);
	fake.status_all = 400;
	fake.fail_body = body;
	provision_start(p, cfg);
	run_until(p, NULL, NULL, 10);
	while (strcmp(provision_status(p), "running") == 0)
		run_for(100);
	ck_assert_str_eq(provision_status(p),
	    "error: sms.inbound: list rules: HTTP 400 BAD_REQUEST: "
	    "Invalid input. (action_address: " ADDR_BASE "/***/x "
	    "is bad for ***)");
	ck_assert_ptr_null(strstr(logged, SECRET_KEY));
	ck_assert_ptr_null(strstr(logged, "t0k3n-secret"));
	ck_assert_int_eq(fake.nreq, 1);
	provision_free(p);
	free(body);
}
END_TEST

START_TEST(run_off)
{
	struct provision *p = provision_new(fake.base, wr);
	char path[256];

	cfg->provision = 0;
	provision_start(p, cfg);
	ck_assert_str_eq(provision_status(p), "off");
	cfg->provision = 1u << KIND_SMS_INBOUND;
	free(cfg->username);
	cfg->username = NULL;
	provision_start(p, cfg);
	ck_assert_str_eq(provision_status(p), "off");
	ck_assert_ptr_nonnull(strstr(logged, "provisioning off: username is not set"));
	cfg->username = xstrdup("user");
	snprintf(path, sizeof(path), "%s/nokey", tmpdir);
	cfg->api_key_file = xstrdup(path);
	provision_start(p, cfg);
	ck_assert_ptr_nonnull(strstr(provision_status(p), "error: api_key_file "));
	run_for(100);
	ck_assert_int_eq(fake.nreq, 0);
	provision_free(p);
}
END_TEST

/* The config is freed while the run goes on (SIGHUP); a new start cancels the old run. */
START_TEST(run_restart)
{
	struct provision *p = provision_new(fake.base, wr);

	provision_start(p, cfg);
	config_free(cfg);
	cfg = NULL;
	run_until(p, "ok", NULL, 10);
	cfg = xcalloc(1, sizeof(*cfg)); /* for teardown */
	provision_free(p);
}
END_TEST

START_TEST(run_selftest)
{
	struct provision *p = provision_new(fake.base, wr);
	struct webhook_event ev = { 0 };
	const struct fake_req *q;

	cfg->provision =
	    (1u << KIND_SMS_INBOUND) | (1u << KIND_SMS_RECEIPT) | (1u << KIND_FAX_INBOUND);
	cfg->test_receipts = 1;
	fake.test_id = "2336751A-BBBE-4887-9D7C-CB7558F00208";
	provision_start(p, cfg);
	ck_assert_str_eq(provision_selftest_status(p), "waiting");
	run_until(p, "ok", NULL, 10);
	run_for(300);
	ck_assert_str_eq(provision_selftest_status(p), "waiting");
	ck_assert_ptr_nonnull(q = fake_find(EVHTTP_REQ_POST, "/v3/sms/receipts"));
	ck_assert_str_eq(q->body, "{\"url\":\"" ADDR_BASE "/sms/receipt\"}");
	ck_assert_ptr_nonnull(q = fake_find(EVHTTP_REQ_POST, "/v3/sms/inbound"));
	ck_assert_str_eq(
	    q->body, "{\"url\":\"" ADDR_BASE "/sms/inbound\",\"webhook_type\":\"json\"}");
	ck_assert_int_eq(fake_count(EVHTTP_REQ_POST, "/v3/fax/"), 0);

	/* another event does nothing; the test items pass their kinds */
	ev.kind = &webhook_kinds[KIND_SMS_RECEIPT];
	ev.message_id = "other";
	provision_event_stored(p, &ev);
	ck_assert_str_eq(provision_selftest_status(p), "waiting");
	ev.message_id = "2336751a-bbbe-4887-9d7c-cb7558f00208";
	provision_event_stored(p, &ev);
	ck_assert_str_eq(provision_selftest_status(p), "waiting");
	ev.kind = &webhook_kinds[KIND_SMS_INBOUND];
	provision_event_stored(p, &ev);
	ck_assert_str_eq(provision_selftest_status(p), "passed");
	provision_free(p);
}
END_TEST

START_TEST(run_selftest_timeout)
{
	struct provision *p = provision_new(fake.base, wr);

	cfg->provision = (1u << KIND_SMS_RECEIPT) | (1u << KIND_VOICE_RECEIPT);
	cfg->test_receipts = 1;
	free(cfg->token);
	cfg->token = xstrdup("t0k3n");
	fake.test_id = "never-1";
	provision_set_selftest_window(p, 1500);
	provision_start(p, cfg);
	run_until(p, "ok", NULL, 10);
	while (strcmp(provision_selftest_status(p), "waiting") == 0)
		run_for(100);
	ck_assert_str_eq(provision_selftest_status(p),
	    "failed: sms.receipt, voice.receipt: no test push arrived within 1 s: is public_url "
	    "reachable from the internet, does the proxy forward /clicksend, is the token right?");
	/* a late arrival does not change the verdict */
	provision_event_stored(p,
	    &(struct webhook_event){
		.kind = &webhook_kinds[KIND_SMS_RECEIPT], .message_id = "never-1" });
	ck_assert_str_ne(provision_selftest_status(p), "passed");
	provision_free(p);
}
END_TEST

/* ClickSend may push the test item before it answers the test request. */
START_TEST(run_selftest_early)
{
	struct provision *p = provision_new(fake.base, wr);

	cfg->provision = 1u << KIND_SMS_RECEIPT;
	cfg->test_receipts = 1;
	fake.test_id = "early-1";
	fake.push_early = 1;
	fake.prov = p;
	provision_start(p, cfg);
	run_until(p, "ok", "passed", 10);
	provision_free(p);
}
END_TEST

START_TEST(run_selftest_refused)
{
	struct provision *p = provision_new(fake.base, wr);

	cfg->provision = 1u << KIND_SMS_RECEIPT;
	cfg->test_receipts = 1;
	provision_start(p, cfg); /* fake.test_id NULL: the test endpoint answers 404 */
	run_until(p, "ok", NULL, 10);
	while (strcmp(provision_selftest_status(p), "waiting") == 0)
		run_for(100);
	ck_assert_str_eq(provision_selftest_status(p),
	    "failed: sms.receipt: test push request: HTTP 404 NOT_FOUND");
	provision_free(p);
}
END_TEST

/* ------------------------------------------------------------------ the operator tool */

/*
 * Runs provision_run_cli in a child (the fake serves from this process); its stdout in OUT.
 * The writer's thread is stopped around the fork: a child of a process with other threads
 * may find an allocator lock held for ever (it did, under ASan).
 */
static int
run_cli(int dry_run, char *out, size_t outlen)
{
	char path[256];
	pid_t pid;
	int status, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/cli.out", tmpdir);
	store_writer_free(wr);
	wr = NULL;
	if ((pid = fork()) == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		_exit(provision_run_cli(cfg, NULL, dry_run));
	}
	ck_assert_int_gt(pid, 0);
	while (waitpid(pid, &status, WNOHANG) == 0)
		run_for(20);
	wr = store_writer_new(fake.base, &store_write_ops, st, 16);
	fd = open(path, O_RDONLY);
	n = read(fd, out, outlen - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(cli_dry_run)
{
	char out[1024], *list = slurp("list-sms-inbound-rules.json", NULL), *rows, *end;

	rows = xstrdup(strstr(list, "\"data\":[") + 7);
	end = strrchr(rows, ']');
	end[1] = '\0';
	fake.rows = replace(rows, ADDR_BASE "/sms/inbound", "https://old.example.com/sms/inbound");
	cfg->provision = (1u << KIND_SMS_INBOUND) | (1u << KIND_SMS_RECEIPT);
	ck_assert_int_eq(run_cli(1, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "sms.inbound: update (action_address)\nsms.receipt: create\n");
	ck_assert_int_eq(fake_count(EVHTTP_REQ_POST, "/"), 0);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_PUT, "/"), 0);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_GET, "/"), 2);

	ck_assert_int_eq(run_cli(0, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "sms.inbound: updated (action_address)\nsms.receipt: created\n");
	ck_assert_int_eq(fake_count(EVHTTP_REQ_POST, "/"), 1);
	ck_assert_int_eq(fake_count(EVHTTP_REQ_PUT, "/"), 1);
	free((char *)fake.rows);
	free(rows);
	free(list);
}
END_TEST

START_TEST(cli_errors)
{
	char out[1024];

	fake.status_all = 503;
	ck_assert_int_eq(run_cli(1, out, sizeof(out)), 69);
	ck_assert_str_eq(out, "sms.inbound: error: list rules: HTTP 503\n");
	ck_assert_int_eq(fake.nreq, 1 + PROVISION_CLI_RETRIES);
	free(cfg->public_url);
	cfg->public_url = NULL;
	ck_assert_int_eq(run_cli(1, out, sizeof(out)), 78);
	ck_assert_str_eq(out, "");
}
END_TEST

static Suite *
provision_suite(void)
{
	Suite *s = suite_create("provision");
	TCase *tc = tcase_create("pure");

	tcase_add_checked_fixture(tc, setup_tmp, teardown_tmp);
	tcase_add_test(tc, action_address);
	tcase_add_test(tc, rule_bodies);
	tcase_add_test(tc, test_bodies);
	tcase_add_test(tc, diff_unchanged);
	tcase_add_test(tc, diff_drift);
	tcase_add_test(tc, diff_dedicated_number);
	tcase_add_test(tc, diff_receipt);
	tcase_add_test(tc, rule_ids);
	tcase_add_test(tc, envelope_errors);
	tcase_add_test(tc, envelope_lenient);
	tcase_add_test(tc, pages);
	tcase_add_test(tc, test_message_ids);
	tcase_add_test(tc, backoff);
	tcase_add_test(tc, redact);
	tcase_add_test(tc, key_order);
	tcase_add_test(tc, key_errors);
	suite_add_tcase(s, tc);
	tc = tcase_create("run");
	tcase_add_checked_fixture(tc, setup_run, teardown_run);
	tcase_set_timeout(tc, 90); /* ASan on a loaded 2-core machine */
	tcase_add_test(tc, run_create);
	tcase_add_test(tc, run_unchanged_and_update);
	tcase_add_test(tc, run_auth);
	tcase_add_test(tc, run_transient);
	tcase_add_test(tc, run_invalid);
	tcase_add_test(tc, run_off);
	tcase_add_test(tc, run_restart);
	tcase_add_test(tc, run_selftest);
	tcase_add_test(tc, run_selftest_early);
	tcase_add_test(tc, run_selftest_timeout);
	tcase_add_test(tc, run_selftest_refused);
	tcase_add_test(tc, cli_dry_run);
	tcase_add_test(tc, cli_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(provision_suite());
}
