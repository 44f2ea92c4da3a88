/* SPDX-License-Identifier: ISC */
/* Unit tests for config.c: defaults, every key, every error class with its FILE:LINE. */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "webhook.h"
#include "tap.h"

#define CONF_DIR TESTS_DATA "/conf/"
#define EXAMPLE	 TESTS_DATA "/../../etc/clicksend-relay.conf"
#define MAX_ERRS 64
#define KIND(k)	 (1u << (k))

static char *errs[MAX_ERRS];
static size_t nerrs;
static char tmpdir[] = "/tmp/config-test.XXXXXX";
static char tmp_conf[sizeof(tmpdir) + 16];
static const char *loaded; /* the file of the last load(), for err() */

static void
hook(const char *line, void *arg)
{
	(void)arg;
	if (nerrs < MAX_ERRS)
		errs[nerrs++] = strdup(line);
}

static void
errs_reset(void)
{
	size_t i;

	for (i = 0; i < nerrs; i++)
		free(errs[i]);
	nerrs = 0;
}

static struct config *
load(const char *path)
{
	errs_reset();
	loaded = path;
	config_set_error_hook(hook, NULL);
	return config_load(path);
}

/* Writes TEXT to a temporary file and loads it. */
static struct config *
load_text(const char *text)
{
	FILE *f;

	if (tmp_conf[0] == '\0') {
		ck_assert_ptr_nonnull(mkdtemp(tmpdir));
		snprintf(tmp_conf, sizeof(tmp_conf), "%s/t.conf", tmpdir);
	}
	ck_assert_ptr_nonnull(f = fopen(tmp_conf, "w"));
	fputs(text, f);
	fclose(f);
	return load(tmp_conf);
}

/* Whether "FILE:LINE: MSG" was reported for the file loaded last. */
static int
has_err(int line, const char *msg)
{
	char want[1024];
	size_t i;

	snprintf(want, sizeof(want), "%s:%d: %s", loaded, line, msg);
	for (i = 0; i < nerrs; i++) {
		if (strcmp(errs[i], want) == 0)
			return 1;
	}
	return 0;
}

/* Whether any error mentions S. */
static int
errs_mention(const char *s)
{
	size_t i;

	for (i = 0; i < nerrs; i++) {
		if (strstr(errs[i], s) != NULL)
			return 1;
	}
	return 0;
}

static void
dump_errs(void)
{
	size_t i;

	for (i = 0; i < nerrs; i++)
		fprintf(stderr, "# %s\n", errs[i]);
}

struct want {
	int line;
	const char *msg;
};

/* The errors are exactly WANT, in any order. */
static void
expect_errs(const struct want *want, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!has_err(want[i].line, want[i].msg))
			dump_errs();
		ck_assert_msg(has_err(want[i].line, want[i].msg), "missing %s:%d: %s", loaded,
		    want[i].line, want[i].msg);
	}
	if (nerrs != n)
		dump_errs();
	ck_assert_uint_eq(nerrs, n);
}

#define EXPECT_ERRS(w) expect_errs((w), sizeof(w) / sizeof((w)[0]))

/* Loads TEXT, which must fail with exactly one error MSG at LINE. */
static void
expect_one(const char *text, int line, const char *msg)
{
	struct config *c = load_text(text);

	if (nerrs != 1 || !has_err(line, msg))
		dump_errs();
	ck_assert_ptr_null(c);
	ck_assert_msg(has_err(line, msg), "missing :%d: %s for:\n%s", line, msg, text);
	ck_assert_uint_eq(nerrs, 1);
}

/* Loads TEXT, which must be valid. */
static struct config *
expect_ok(const char *text)
{
	struct config *c = load_text(text);

	if (c == NULL)
		dump_errs();
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(nerrs, 0);
	return c;
}

static void
teardown(void)
{
	errs_reset();
	if (tmp_conf[0] != '\0') {
		unlink(tmp_conf);
		rmdir(tmpdir);
		tmp_conf[0] = '\0';
		memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	}
}

START_TEST(test_example)
{
	struct config *c;

	if (access(EXAMPLE, R_OK) == -1)
		return; /* not written yet */
	c = load(EXAMPLE);
	if (c == NULL)
		dump_errs();
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(nerrs, 0);
	config_free(c);
}
END_TEST

START_TEST(test_defaults)
{
	struct config *c = expect_ok("; nothing but a comment\n");

	ck_assert_str_eq(c->file, tmp_conf);
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->listen[0], "127.0.0.1:8080");
	ck_assert_str_eq(c->base_path, "/clicksend");
	ck_assert_ptr_null(c->token);
	ck_assert_uint_eq(c->ntrusted_proxies, 2);
	ck_assert(config_cidr_match_text(c->trusted_proxies, 2, "127.0.0.1"));
	ck_assert(config_cidr_match_text(c->trusted_proxies, 2, "::1"));
	ck_assert(!config_cidr_match_text(c->trusted_proxies, 2, "127.0.0.2"));
	ck_assert_uint_eq(c->nallow_from, 0);
	ck_assert_uint_eq(c->max_body_size, 65536);
	ck_assert_uint_eq(c->request_timeout_ms, 10000);
	ck_assert_uint_eq(c->shutdown_timeout_ms, 10000);
	ck_assert_str_eq(c->store_path, "/var/lib/clicksend-relay/events.db");
	ck_assert_int_eq(c->synchronous_full, 1);
	ck_assert_uint_eq(c->retention_ms, 0);
	ck_assert_ptr_null(c->username);
	ck_assert_ptr_null(c->api_key);
	ck_assert_ptr_null(c->api_key_file);
	ck_assert_str_eq(c->api_url, "https://rest.clicksend.com/v3");
	ck_assert_ptr_null(c->public_url);
	ck_assert_uint_eq(c->provision, 0);
	ck_assert_int_eq(c->webhook_type, FORMAT_JSON);
	ck_assert_str_eq(c->dedicated_number, "*");
	ck_assert_str_eq(c->rule_prefix, "clicksend-relay");
	ck_assert_int_eq(c->test_receipts, 0);
	ck_assert_int_eq(c->log_level, LOG_INFO);
	ck_assert_uint_eq(c->nrelays, 0);
	config_free(c);
}
END_TEST

START_TEST(test_empty_values)
{
	struct config *c =
	    expect_ok("[server]\ntoken =\nallow_from =\ntrusted_proxies =\n"
		      "base_path =\n[clicksend]\nusername =\napi_key =   ; comment\npublic_url =\n"
		      "provision =\n");

	ck_assert_ptr_null(c->token);
	ck_assert_uint_eq(c->nallow_from, 0);
	ck_assert_uint_eq(c->ntrusted_proxies, 0);
	ck_assert_str_eq(c->base_path, "");
	ck_assert_ptr_null(c->api_key);
	ck_assert_ptr_null(c->public_url);
	config_free(c);
}
END_TEST

START_TEST(test_good)
{
	struct config *c = load(CONF_DIR "good.conf");
	const struct config_relay *r;

	if (c == NULL)
		dump_errs();
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->nlisten, 3);
	ck_assert_str_eq(c->listen[0], "127.0.0.1:0");
	ck_assert_str_eq(c->listen[1], "[::1]:8081");
	ck_assert_str_eq(c->listen[2], "unix:/run/clicksend-relay/http.sock");
	ck_assert_str_eq(c->base_path, "/hooks/clicksend");
	ck_assert_str_eq(c->token, "Abc123._~-xyzXYZ0987");
	ck_assert_uint_eq(c->ntrusted_proxies, 3);
	ck_assert(config_cidr_match_text(c->trusted_proxies, 3, "fd00::1:2"));
	ck_assert(config_cidr_match_text(c->trusted_proxies, 3, "192.168.200.1"));
	ck_assert(!config_cidr_match_text(c->trusted_proxies, 3, "10.0.0.2"));
	ck_assert_uint_eq(c->nallow_from, 2);
	ck_assert_uint_eq(c->max_body_size, 1048576);
	ck_assert_uint_eq(c->request_timeout_ms, 500);
	ck_assert_uint_eq(c->shutdown_timeout_ms, 0);
	ck_assert_str_eq(c->store_path, "/tmp/clicksend-relay-test/events.db");
	ck_assert_int_eq(c->synchronous_full, 0);
	ck_assert_uint_eq(c->retention_ms, 30ULL * 86400 * 1000);
	ck_assert_str_eq(c->username, "someone");
	ck_assert_ptr_null(c->api_key);
	ck_assert_str_eq(
	    c->api_key_file, "/run/credentials/clicksend-relayd.service/clicksend-api-key");
	ck_assert_str_eq(c->api_url, "https://rest.clicksend.com/v3");
	ck_assert_str_eq(c->public_url, "https://hooks.example.com/clicksend");
	ck_assert_uint_eq(c->provision,
	    KIND(KIND_SMS_INBOUND) | KIND(KIND_SMS_RECEIPT) | KIND(KIND_EMAIL_RECEIPT));
	ck_assert_int_eq(c->webhook_type, FORMAT_POST);
	ck_assert_str_eq(c->dedicated_number, "+61411111111");
	ck_assert_str_eq(c->rule_prefix, "test-relay");
	ck_assert_int_eq(c->test_receipts, 1);
	ck_assert_int_eq(c->log_level, LOG_DEBUG);
	ck_assert_uint_eq(c->nrelays, 2);

	ck_assert_ptr_nonnull(r = config_relay_find(c, "crm"));
	ck_assert_ptr_eq(r, &c->relays[0]);
	ck_assert_str_eq(r->url, "https://crm.example.com/hooks/clicksend?source=relay");
	ck_assert_ptr_null(r->exec);
	ck_assert_uint_eq(r->kinds, KIND(KIND_SMS_INBOUND) | KIND(KIND_SMS_RECEIPT));
	ck_assert_str_eq(r->match_from, "+614*");
	ck_assert_ptr_null(r->match_to);
	ck_assert_str_eq(r->secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	ck_assert_uint_eq(r->nheaders, 2);
	ck_assert_uint_eq(
	    strlen(r->headers[0]), strlen("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.") + 204);
	ck_assert(strncmp(r->headers[0], "Authorization: Bearer eyJ", 25) == 0);
	ck_assert(strcmp(r->headers[0] + strlen(r->headers[0]) - 5, "A.sig") == 0);
	ck_assert_str_eq(r->headers[1], "X-Source: clicksend-relay");
	ck_assert_uint_eq(r->timeout_ms, 10000);
	ck_assert_uint_eq(r->concurrency, 4);
	ck_assert_uint_eq(r->nretry, 2);
	ck_assert_uint_eq(r->retry_ms[0], 1000);
	ck_assert_uint_eq(r->retry_ms[1], 2000);

	ck_assert_ptr_nonnull(r = config_relay_find(c, "opt_out-2"));
	ck_assert_ptr_null(r->url);
	ck_assert_str_eq(r->exec, "/bin/true");
	ck_assert_uint_eq(r->nargs, 2);
	ck_assert_str_eq(r->args[0], "--list");
	ck_assert_str_eq(r->args[1], "marketing");
	ck_assert_uint_eq(r->kinds, (1u << KIND_COUNT) - 1);
	ck_assert_str_eq(r->match_to, "+61411111111");
	ck_assert_str_eq(r->match_body, "*stop*");
	ck_assert_uint_eq(r->timeout_ms, 30000);
	ck_assert_uint_eq(r->concurrency, 1);
	ck_assert_uint_eq(r->nretry, 10);
	ck_assert_uint_eq(r->retry_ms[0], 5000);
	ck_assert_uint_eq(r->retry_ms[9], 12 * 3600 * 1000);
	ck_assert_ptr_null(config_relay_find(c, "nope"));
	config_free(c);
}
END_TEST

START_TEST(test_missing_file)
{
	ck_assert_ptr_null(load(CONF_DIR "does-not-exist.conf"));
	ck_assert_uint_eq(nerrs, 1);
	ck_assert_str_eq(errs[0],
	    CONF_DIR "does-not-exist.conf: cannot open: "
		     "No such file or directory");
}
END_TEST

START_TEST(test_directory)
{
	ck_assert_ptr_null(load(CONF_DIR));
	ck_assert_uint_eq(nerrs, 1);
	ck_assert(strstr(errs[0], ": cannot read: Is a directory") != NULL);
}
END_TEST

START_TEST(test_bad_syntax)
{
	static const struct want want[] = {
		{ 2, "key \"orphan\" outside of any section" },
		{ 4, "expected \"key = value\"" },
		{ 5, "unknown section [bogus]" },
		{ 7, "malformed section header: no ']'" },
		{ 8, "unexpected text after section header" },
		{ 11, "unknown key \"nosuch\" in [store]" },
		{ 12, "duplicate section [store] (first at line 10)" },
	};

	ck_assert_ptr_null(load(CONF_DIR "bad-syntax.conf"));
	EXPECT_ERRS(want);
}
END_TEST

START_TEST(test_bad_values)
{
	static const struct want want[] = {
		{ 2, "listen: invalid port: \"[::1]:99999\"" },
		{ 2, "listen: unix socket path must be absolute: \"unix:relative\"" },
		{ 2, "listen: expected HOST:PORT: \"host\"" },
		{ 3, "base_path: must start with '/'" },
		{ 4, "token: invalid (only letters, digits and . _ ~ - are allowed)" },
		{ 5, "trusted_proxies: invalid address or network \"10.0.0.0/33\"" },
		{ 5, "trusted_proxies: invalid address or network \"fe80::/129\"" },
		{ 5, "trusted_proxies: invalid address or network \"banana\"" },
		{ 7, "duplicate key \"allow_from\" (first at line 6)" },
		{ 8, "max_body_size: must be more than 0" },
		{ 9, "request_timeout: invalid duration \"10x\"" },
		{ 10, "shutdown_timeout: invalid duration \"-1\"" },
		{ 12, "path: missing value" },
		{ 13, "synchronous: invalid value \"sometimes\"" },
		{ 14, "retention: invalid duration \"1y\"" },
		{ 17, "api_key and api_key_file are mutually exclusive" },
		{ 18, "api_url: invalid URL: must start with http:// or https://" },
		{ 19, "provision: unknown kind \"sms.outbound\"" },
		{ 20, "webhook_type: expected post, get or json, not \"xml\"" },
		{ 21, "test_receipts: invalid value \"maybe\"" },
		{ 23, "level: expected debug, info, notice, warning or error, not \"verbose\"" },
	};

	ck_assert_ptr_null(load(CONF_DIR "bad-values.conf"));
	EXPECT_ERRS(want);
	ck_assert(!errs_mention("not a token"));
	ck_assert(!errs_mention("sekrit"));
}
END_TEST

START_TEST(test_bad_checks)
{
	/* values that parse but could never work, each with its line */
	static const struct want want[] = {
		{ 3, "listen: invalid IPv4 address: \"999.1.1.1:80\"" },
		{ 3,
		    "listen: host names are not accepted, use an address (127.0.0.1, [::1], "
		    "0.0.0.0): \"localhost:80\"" },
		{ 3, "listen: invalid IPv4 address: \"1.2.3:80\"" },
		{ 3, "listen: invalid port: \"127.0.0.1:65536\"" },
		{ 4, "max_body_size: must be at most 64m" },
		{ 8, "public_url: must not have a query string or fragment" },
		{ 9, "api_url: invalid URL: Bad IPv6 address" },
		{ 11, "url: invalid URL: No host part in the URL" },
		{ 12, "retry_schedule: step 2 is 0 (each must be more than 0)" },
		{ 13, "match_from: invalid glob: unterminated '[' (write \\[ for a literal one)" },
		{ 14, "match_to: invalid glob: ends in a lone backslash" },
		{ 15, "match_body: invalid glob: unknown character class" },
		{ 17, "exec: cannot run \"/nonexistent/relay-script\": No such file or directory" },
		{ 19, "exec: cannot run \"/\": not a regular file" },
		{ 21, "exec: cannot run \"/etc/passwd\": not executable" },
		{ 23, "url: invalid URL: port 0 cannot be used" },
		{ 25,
		    "url: invalid URL: Port number was not a decimal number between 0 and 65535" },
		{ 27, "url: invalid URL: Bad IPv6 address" },
	};

	ck_assert_ptr_null(load(CONF_DIR "bad-checks.conf"));
	EXPECT_ERRS(want);
	ck_assert(!errs_mention("token=x"));
}
END_TEST

/* Checked values: what passes, and the URL, glob and exec checks one at a time. */
START_TEST(test_checks)
{
	struct config *c;
	char text[512], script[64], want[256];
	FILE *f;

	c = expect_ok("[server]\nmax_body_size = 64m\n[clicksend]\n"
		      "public_url = https://[::1]:8443/a/b/\napi_url = http://10.0.0.1:8080\n"
		      "[relay:a]\nurl = https://user:pw@x.example/p?q=1#f\nexec =\n"
		      "match_from = +61[45]*\nmatch_to = [!0]*[[:digit:]]\n"
		      "match_body = *\\[urgent]* []x]*\nretry_schedule = 1ms\n"
		      "[relay:b]\nexec = /bin/true\n");
	ck_assert_uint_eq(c->max_body_size, 64u << 20);
	ck_assert_str_eq(c->public_url, "https://[::1]:8443/a/b");
	ck_assert_str_eq(c->relays[0].match_body, "*\\[urgent]* []x]*");
	config_free(c);
	expect_one("[clicksend]\npublic_url = https://h.example/x#frag\n", 2,
	    "public_url: must not have a query string or fragment");
	expect_one("[clicksend]\napi_url = https://h.example/v3?\n", 2,
	    "api_url: must not have a query string or fragment");
	expect_one(
	    "[relay:a]\nurl = http://:80/\n", 2, "url: invalid URL: No host part in the URL");
	expect_one("[relay:a]\nurl = http://h.example:x/\n", 2,
	    "url: invalid URL: Port number was not a decimal number between 0 and 65535");
	expect_one("[relay:a]\nurl = http://h%00x.example/\n", 2, "url: invalid URL: Bad hostname");
	expect_one("[relay:a]\nurl = http://h/\nretry_schedule = 0\n", 3,
	    "retry_schedule: step 1 is 0 (each must be more than 0)");
	expect_one("[relay:a]\nurl = http://h/\nmatch_from = [\n", 3,
	    "match_from: invalid glob: unterminated '[' (write \\[ for a literal one)");
	expect_one("[relay:a]\nurl = http://h/\nmatch_to = [!]\n", 3,
	    "match_to: invalid glob: unterminated '[' (write \\[ for a literal one)");
	expect_one("[relay:a]\nurl = http://h/\nmatch_body = [[:alpha:]\n", 3,
	    "match_body: invalid glob: unterminated '[' (write \\[ for a literal one)");
	/* a script of ours: refused until it is executable */
	snprintf(script, sizeof script, "%s/relay.sh", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(script, "w"));
	fputs("#!/bin/sh\nexit 0\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(script, 0644), 0);
	snprintf(text, sizeof text, "[relay:a]\nexec = %s\n", script);
	snprintf(want, sizeof want, "exec: cannot run \"%s\": not executable", script);
	expect_one(text, 2, want);
	ck_assert_int_eq(chmod(script, 0755), 0);
	config_free(expect_ok(text));
	ck_assert_int_eq(unlink(script), 0);
	expect_one("[relay:a]\nexec = /dev/null\n", 2,
	    "exec: cannot run \"/dev/null\": not a regular file");
	expect_one("[relay:a]\nexec = /etc\n", 2, "exec: cannot run \"/etc\": not a regular file");
}
END_TEST

START_TEST(test_bad_relay)
{
	static const struct want want[] = {
		{ 1, "invalid relay name \"Bad Name\" (1-64 of a-z 0-9 _ -)" },
		{ 3, "[relay:both]: exactly one of url or exec is required" },
		{ 6, "[relay:neither]: exactly one of url or exec is required" },
		{ 10, "duplicate section [relay:ok] (first at line 8)" },
		{ 14, "secret: only for url relays" },
		{ 15, "header: only for url relays" },
		{ 18, "args: only for exec relays" },
		{ 19, "[relay:values]: exactly one of url or exec is required" },
		{ 20, "url: invalid URL: must start with http:// or https://" },
		{ 21, "secret: invalid, expected whsec_<base64>" },
		{ 22, "header: invalid header name \"Bad Name\"" },
		{ 23, "header: expected \"Name: value\"" },
		{ 24, "timeout: must be more than 0" },
		{ 25, "concurrency: expected a number from 1 to 1000" },
		{ 26, "retry_schedule: invalid duration \"nope\"" },
		{ 27, "events: unknown kind \"bogus\"" },
		{ 28, "exec: must be an absolute path" },
		{ 30, "duplicate key \"url\" (first at line 20)" },
	};

	ck_assert_ptr_null(load(CONF_DIR "bad-relay.conf"));
	EXPECT_ERRS(want);
	ck_assert(!errs_mention("not*base64"));
	ck_assert(!errs_mention("mailto"));
}
END_TEST

START_TEST(test_lines)
{
	struct config *c;

	/* Line numbers count comments, blanks and continuation lines. */
	expect_one("; c\n\n[server]\nlisten = 1.2.3.4:1\n   5.6.7.8:2\n\n  ; c\nfoo = 1\n", 8,
	    "unknown key \"foo\" in [server]");
	/* An error in a continued value is reported at the key's line. */
	expect_one(
	    "[server]\nlisten = 1.2.3.4:1\n  nope\n", 2, "listen: expected HOST:PORT: \"nope\"");
	/* A byte-order mark and CRLF line ends are fine. */
	c = expect_ok("\xef\xbb\xbf[log]\r\nlevel = error\r\n");
	ck_assert_int_eq(c->log_level, LOG_ERR);
	config_free(c);
	/* The last line without a newline still counts. */
	expect_one(
	    "[log]\nlevel = info\nlevel = info", 3, "duplicate key \"level\" (first at line 2)");
	/* An indented line right after a section header is a key, not a continuation. */
	c = expect_ok("[log]\n   level = debug\n");
	ck_assert_int_eq(c->log_level, LOG_DEBUG);
	config_free(c);
	/* The last line, without a newline, is not a key. */
	expect_one("[log]\nlevel = info\nwhat", 3, "expected \"key = value\"");
}
END_TEST

START_TEST(test_long_lines)
{
	char text[2048], value[600];
	struct config *c;

	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(text, sizeof(text),
	    "[relay:a]\nurl = https://example.com/%s   ; c\n"
	    "header = X-A: %s\n",
	    value, value);
	c = expect_ok(text);
	ck_assert_uint_eq(strlen(c->relays[0].url), strlen("https://example.com/") + 599);
	ck_assert_uint_eq(strlen(c->relays[0].headers[0]), 5 + 599);
	config_free(c);
	/* Long lines keep the numbering right. */
	snprintf(text, sizeof(text), "[relay:a]\nurl = https://example.com/%s\nbad = 1\n", value);
	expect_one(text, 3, "unknown key \"bad\" in [relay:a]");
	snprintf(text, sizeof(text), "[server]\n%s\nbad = 1\n", value);
	c = load_text(text);
	ck_assert_ptr_null(c);
	ck_assert(has_err(2, "line too long, or not \"key = value\""));
	ck_assert(has_err(3, "unknown key \"bad\" in [server]"));
	ck_assert_uint_eq(nerrs, 2);
}
END_TEST

START_TEST(test_inline_comments)
{
	struct config *c = expect_ok("[relay:a] ; comment\nurl = https://x.example/a;b ; c\n"
				     "match_body = *#x*\nheader = X-A: a=b;c\n");

	ck_assert_str_eq(c->relays[0].url, "https://x.example/a;b");
	ck_assert_str_eq(c->relays[0].match_body, "*#x*");
	ck_assert_str_eq(c->relays[0].headers[0], "X-A: a=b;c");
	config_free(c);
}
END_TEST

START_TEST(test_listen)
{
	struct config *c = expect_ok(
	    "[server]\nlisten = 0.0.0.0:65535 127.0.0.1:1 [::]:0 unix:/run/x.sock [::1]:80\n");
	char longpath[200];

	ck_assert_uint_eq(c->nlisten, 5);
	config_free(c);
	/* addresses only: a name would be looked up at every load, reload included */
	expect_one("[server]\nlisten = localhost:1\n", 2,
	    "listen: host names are not accepted, use an address (127.0.0.1, [::1], 0.0.0.0): "
	    "\"localhost:1\"");
	expect_one("[server]\nlisten = host-1.example.com:80\n", 2,
	    "listen: host names are not accepted, use an address (127.0.0.1, [::1], 0.0.0.0): "
	    "\"host-1.example.com:80\"");
	expect_one("[server]\nlisten = 256.1.1.1:80\n", 2,
	    "listen: invalid IPv4 address: \"256.1.1.1:80\"");
	expect_one(
	    "[server]\nlisten = 127.1:80\n", 2, "listen: invalid IPv4 address: \"127.1:80\"");
	expect_one("[server]\nlisten = 1.2.3.4.5:80\n", 2,
	    "listen: invalid IPv4 address: \"1.2.3.4.5:80\"");
	expect_one("[server]\nlisten = [fe80::1%eth0]:80\n", 2,
	    "listen: invalid IPv6 address: \"[fe80::1%eth0]:80\"");
	snprintf(longpath, sizeof longpath, "[server]\nlisten = unix:/%0108d\n", 0);
	expect_one(longpath, 2,
	    "listen: unix socket path too long: \"unix:/"
	    "000000000000000000000000000000000000000000000000000000"
	    "000000000000000000000000000000000000000000000000000000\"");
	expect_one(
	    "[server]\nlisten = 1.2.3.4:65536\n", 2, "listen: invalid port: \"1.2.3.4:65536\"");
	expect_one("[server]\nlisten = 1.2.3.4:\n", 2, "listen: missing port: \"1.2.3.4:\"");
	expect_one("[server]\nlisten = :80\n", 2, "listen: missing host: \":80\"");
	expect_one("[server]\nlisten = ::1:80\n", 2,
	    "listen: an IPv6 address must be in brackets, [V6ADDR]:PORT: \"::1:80\"");
	expect_one(
	    "[server]\nlisten = [::1]80\n", 2, "listen: expected [V6ADDR]:PORT: \"[::1]80\"");
	expect_one(
	    "[server]\nlisten = [nope]:80\n", 2, "listen: invalid IPv6 address: \"[nope]:80\"");
	expect_one("[server]\nlisten = a_b:80\n", 2,
	    "listen: host names are not accepted, use an address (127.0.0.1, [::1], 0.0.0.0): "
	    "\"a_b:80\"");
	expect_one("[server]\nlisten = 1.2.3.4:+80\n", 2, "listen: invalid port: \"1.2.3.4:+80\"");
	expect_one("[server]\nlisten =\n", 2, "listen: missing value");
}
END_TEST

/* The same address twice could never be bound twice (a unix socket would be unlinked under
 * its own first listener): refused, spelled alike or not; port 0 (any free port) may repeat. */
START_TEST(test_listen_twice)
{
	struct config *c = expect_ok("[server]\nlisten = 127.0.0.1:0 127.0.0.1:0 127.0.0.1:80 "
				     "0.0.0.0:80 [::1]:80 unix:/run/a.sock unix:/run/b.sock\n");

	ck_assert_uint_eq(c->nlisten, 7);
	config_free(c);
	expect_one("[server]\nlisten = 127.0.0.1:8080 127.0.0.1:8080\n", 2,
	    "listen: \"127.0.0.1:8080\" is given twice");
	expect_one("[server]\nlisten = [::1]:80 [0:0::1]:080\n", 2,
	    "listen: \"[0:0::1]:080\" is given twice");
	expect_one("[server]\nlisten = unix:/run/x.sock 1.2.3.4:1 unix:/run/x.sock\n", 2,
	    "listen: \"unix:/run/x.sock\" is given twice");
}
END_TEST

START_TEST(test_base_path)
{
	struct config *c = expect_ok("[server]\nbase_path = /\n");

	ck_assert_str_eq(c->base_path, "");
	config_free(c);
	c = expect_ok("[server]\nbase_path = /a/b//\n");
	ck_assert_str_eq(c->base_path, "/a/b");
	config_free(c);
	expect_one("[server]\nbase_path = /a b\n", 2, "base_path: invalid character");
	expect_one("[server]\nbase_path = /a?b\n", 2, "base_path: invalid character");
}
END_TEST

START_TEST(test_secret_values)
{
	static const char *const good[] = {
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_YWJj",
		"whsec_YWI=",
		"whsec_YQ==",
		"whsec_YWI",
		"whsec_a+/b",
	};
	static const char *const bad[] = {
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"whsec_",
		"whsec_YQ===",
		"whsec_Y",
		"whsec_YW=I",
		"whsec_Y-_a",
		"whsec_YQ=",
	};
	char text[256];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[relay:a]\nurl = http://x\nsecret = %s\n", good[i]);
		c = expect_ok(text);
		ck_assert_str_eq(c->relays[0].secret, good[i]);
		config_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[relay:a]\nurl = http://x\nsecret = %s\n", bad[i]);
		expect_one(text, 3, "secret: invalid, expected whsec_<base64>");
	}
}
END_TEST

START_TEST(test_tokens)
{
	struct config *c = expect_ok("[server]\ntoken = a\n");

	ck_assert_str_eq(c->token, "a");
	config_free(c);
	expect_one("[server]\ntoken = abc/def\n", 2,
	    "token: invalid (only letters, digits and . _ ~ - are allowed)");
	expect_one("[server]\ntoken = abc%20\n", 2,
	    "token: invalid (only letters, digits and . _ ~ - are allowed)");
	ck_assert(!errs_mention("abc%20"));
}
END_TEST

/* rate, ordered, pause_after: values and refusals. */
START_TEST(test_relay_controls)
{
	struct config *c;

	c = expect_ok("[relay:a]\nurl = http://a\nrate = 20/s\nordered = yes\n"
		      "pause_after = 6h\n[relay:b]\nurl = http://b\nrate = 100000/m\n"
		      "[relay:c]\nurl = http://c\n");
	ck_assert_uint_eq(c->relays[0].rate, 20);
	ck_assert_uint_eq(c->relays[0].rate_window_ms, 1000);
	ck_assert_int_eq(c->relays[0].ordered, 1);
	ck_assert_uint_eq(c->relays[0].pause_after_ms, 6 * 3600 * 1000);
	ck_assert_uint_eq(c->relays[1].rate, 100000);
	ck_assert_uint_eq(c->relays[1].rate_window_ms, 60000);
	ck_assert_uint_eq(c->relays[2].rate, 0);
	ck_assert_int_eq(c->relays[2].ordered, 0);
	ck_assert_uint_eq(c->relays[2].pause_after_ms, 0);
	config_free(c);
	expect_one("[relay:a]\nurl = http://a\nrate = 0/s\n", 3,
	    "rate: N must be a number from 1 to 100000");
	expect_one("[relay:a]\nurl = http://a\nrate = 100001/m\n", 3,
	    "rate: N must be a number from 1 to 100000");
	expect_one(
	    "[relay:a]\nurl = http://a\nrate = 5/h\n", 3, "rate: expected N/s or N/m, e.g. 20/s");
	expect_one(
	    "[relay:a]\nurl = http://a\nrate = 5\n", 3, "rate: expected N/s or N/m, e.g. 20/s");
	expect_one(
	    "[relay:a]\nurl = http://a\nordered = maybe\n", 3, "ordered: invalid value \"maybe\"");
	expect_one("[relay:a]\nurl = http://a\npause_after = soon\n", 3,
	    "pause_after: invalid duration \"soon\"");
}
END_TEST

START_TEST(test_relays)
{
	struct config *c;

	c = expect_ok("[relay:u]\nurl = HTTPS://x.example\n[relay:e]\nexec = /bin/true\n"
		      "args =\n[relay:"
		      "a123456789a123456789a123456789a123456789a123456789a123456789abcd]\n"
		      "url = http://y\nsecret =\nheader =\nevents = email.receipt fax.inbound\n"
		      "concurrency = 1000\ntimeout = 1d\n");
	ck_assert_uint_eq(c->nrelays, 3);
	ck_assert_uint_eq(c->relays[0].timeout_ms, 10000);
	ck_assert_uint_eq(c->relays[0].concurrency, 4);
	ck_assert_uint_eq(c->relays[1].timeout_ms, 30000);
	ck_assert_uint_eq(c->relays[1].concurrency, 1);
	ck_assert_uint_eq(c->relays[1].nargs, 0);
	ck_assert_uint_eq(c->relays[2].concurrency, 1000);
	ck_assert_uint_eq(c->relays[2].timeout_ms, 86400000);
	ck_assert_uint_eq(c->relays[2].nheaders, 0);
	ck_assert_ptr_null(c->relays[2].secret);
	ck_assert_uint_eq(c->relays[2].kinds, KIND(KIND_EMAIL_RECEIPT) | KIND(KIND_FAX_INBOUND));
	config_free(c);

	expect_one("[relay:"
		   "a123456789a123456789a123456789a123456789a123456789a123456789abcde]\n"
		   "url = http://y\n",
	    1,
	    "invalid relay name "
	    "\"a123456789a123456789a123456789a123456789a123456789a123456789abcde\""
	    " (1-64 of a-z 0-9 _ -)");
	expect_one(
	    "[relay:]\nurl = http://y\n", 1, "invalid relay name \"\" (1-64 of a-z 0-9 _ -)");
	expect_one("[relay:a]\nurl = http://\n", 2, "url: invalid URL: has no host");
	expect_one("[relay:a]\nurl = http://a b\n", 2,
	    "url: invalid URL: contains a blank or a control character");
	expect_one("[relay:a]\nurl = http://a\nconcurrency = 0\n", 3,
	    "concurrency: expected a number from 1 to 1000");
	expect_one(
	    "[relay:a]\nurl = http://a\nevents = * sms.inbound\n", 3, "events: unknown kind \"*\"");
	expect_one("[relay:a]\nurl = http://a\nevents =\n", 3, "events: missing value");
	expect_one(
	    "[relay:a]\nurl = http://a\nretry_schedule =\n", 3, "retry_schedule: missing value");
	expect_one("[relay:a]\nurl = http://a\nheader = X-A\x01: b\n", 3,
	    "header: invalid header name \"X-A\x01\"");
	expect_one("[relay:a]\nurl = http://a\nheader = X-A: b\x01\n", 3,
	    "header: control character in value");
	expect_one("[relay:a]\nexec =\n", 1, "[relay:a]: exactly one of url or exec is required");
	/* A url that was given but rejected gets one error, not a second "neither". */
	expect_one("[relay:a]\nurl = ftp://x\n", 2,
	    "url: invalid URL: must start with http:// or https://");
	/* A relay section without keys is still checked. */
	expect_one("[relay:a]\n", 1, "[relay:a]: exactly one of url or exec is required");
}
END_TEST

START_TEST(test_cross_checks)
{
	struct config *c;

	expect_one("[clicksend]\nprovision = sms.inbound\n", 2, "provision: needs public_url");
	c = expect_ok("[clicksend]\nprovision = fax.receipt\npublic_url = http://h.example/x/\n");
	ck_assert_uint_eq(c->provision, KIND(KIND_FAX_RECEIPT));
	ck_assert_str_eq(c->public_url, "http://h.example/x");
	config_free(c);
	expect_one("[clicksend]\napi_key = secretkey1234\napi_key_file = /k\n", 3,
	    "api_key and api_key_file are mutually exclusive");
	ck_assert(!errs_mention("secretkey1234"));
}
END_TEST

START_TEST(test_choices)
{
	static const struct {
		const char *word;
		int value;
	} bools[] = {
		{ "yes", 1 },
		{ "no", 0 },
		{ "true", 1 },
		{ "false", 0 },
		{ "on", 1 },
		{ "off", 0 },
		{ "1", 1 },
		{ "0", 0 },
	};
	char text[128];
	struct config *c;
	size_t i;

	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), "[clicksend]\ntest_receipts = %s\n", bools[i].word);
		c = expect_ok(text);
		ck_assert_int_eq(c->test_receipts, bools[i].value);
		config_free(c);
	}
	c = expect_ok("[clicksend]\nwebhook_type = get\n[store]\nsynchronous = full\n"
		      "[log]\nlevel = warning\n");
	ck_assert_int_eq(c->webhook_type, FORMAT_GET);
	ck_assert_int_eq(c->synchronous_full, 1);
	ck_assert_int_eq(c->log_level, LOG_WARNING);
	config_free(c);
	expect_one("[clicksend]\ntest_receipts = YES\n", 2, "test_receipts: invalid value \"YES\"");
}
END_TEST

START_TEST(test_list_limit)
{
	char text[2048];
	size_t i, len;

	len = (size_t)snprintf(text, sizeof(text), "[relay:a]\nurl = http://x\nretry_schedule =");
	for (i = 0; i < 101; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, " 1s");
	snprintf(text + len, sizeof(text) - len, "\n");
	expect_one(text, 3, "retry_schedule: too many values (at most 100)");
}
END_TEST

/* A list value with many bad words: as many reasons as fit are reported, each on its
 * line, and nothing runs past the message buffer (config-fuzz found an overrun when the
 * reasons filled it to the byte). The first word's length sweeps so that some run ends
 * a reason exactly there. */
START_TEST(test_many_bad_words)
{
	char text[8192], first[128];
	size_t i, len;
	int pad;

	for (pad = 0; pad < 80; pad++) {
		snprintf(first, sizeof(first), "h%0*d.example:80", pad + 1, 0);
		len = (size_t)snprintf(text, sizeof(text), "[server]\nlisten = %s", first);
		for (i = 0; i < 60; i++)
			len += (size_t)snprintf(text + len, sizeof(text) - len,
			    " bad-host-name-number-%03zu.example:80", i);
		snprintf(text + len, sizeof(text) - len, "\n");
		ck_assert_ptr_null(load_text(text));
		ck_assert_uint_gt(nerrs, 10);
		ck_assert_uint_lt(nerrs, 61);
		ck_assert(errs_mention(first));
		for (i = 0; i < nerrs; i++) /* each reason whole: it ends with the quoted word */
			ck_assert_msg(
			    errs[i][strlen(errs[i]) - 1] == '"', "pad %d: %s", pad, errs[i]);
	}
}
END_TEST

START_TEST(test_many_errors)
{
	/* Every error is reported, not just the first. */
	ck_assert_ptr_null(load_text("[server]\nmax_body_size = x\nrequest_timeout = y\n"
				     "[log]\nlevel = z\n[store]\nretention = w\n"));
	ck_assert_uint_eq(nerrs, 4);
	ck_assert(has_err(2, "max_body_size: invalid size \"x\""));
	ck_assert(has_err(3, "request_timeout: invalid duration \"y\""));
	ck_assert(has_err(5, "level: expected debug, info, notice, warning or error, not \"z\""));
	ck_assert(has_err(7, "retention: invalid duration \"w\""));
}
END_TEST

START_TEST(test_duration)
{
	static const struct {
		const char *s;
		int ok;
		uint64_t ms;
	} t[] = {
		{ "0", 1, 0 },
		{ "30", 1, 30000 },
		{ "30s", 1, 30000 },
		{ "500ms", 1, 500 },
		{ "5m", 1, 300000 },
		{ "2h", 1, 7200000 },
		{ "1d", 1, 86400000 },
		{ "0ms", 1, 0 },
		{ "007s", 1, 7000 },
		{ "36500d", 1, 36500ULL * 86400000 },
		{ "36501d", 0, 0 },
		{ "3153600000000ms", 1, 3153600000000ULL },
		{ "3153600000001ms", 0, 0 },
		{ "18446744073709551615", 0, 0 },
		{ "18446744073709551616ms", 0, 0 },
		{ "99999999999999999999999", 0, 0 },
		{ "", 0, 0 },
		{ "s", 0, 0 },
		{ "-1", 0, 0 },
		{ "+1", 0, 0 },
		{ " 1", 0, 0 },
		{ "1 ", 0, 0 },
		{ "1.5s", 0, 0 },
		{ "1S", 0, 0 },
		{ "1sec", 0, 0 },
		{ "1h30m", 0, 0 },
		{ "1w", 0, 0 },
		{ "0x10", 0, 0 },
	};
	uint64_t ms;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ms = 12345;
		ck_assert_msg(
		    (config_parse_duration(t[i].s, &ms) == 0) == t[i].ok, "\"%s\"", t[i].s);
		if (t[i].ok)
			ck_assert_msg(
			    ms == t[i].ms, "\"%s\": %llu", t[i].s, (unsigned long long)ms);
	}
}
END_TEST

START_TEST(test_size)
{
	static const struct {
		const char *s;
		int ok;
		size_t n;
	} t[] = {
		{ "0", 1, 0 },
		{ "100", 1, 100 },
		{ "64k", 1, 65536 },
		{ "64K", 1, 65536 },
		{ "1m", 1, 1048576 },
		{ "2M", 1, 2097152 },
		{ "1g", 1, 1073741824 },
		{ "18446744073709551615", 1, SIZE_MAX },
		{ "18446744073709551616", 0, 0 },
		{ "17179869184g", 0, 0 },
		{ "", 0, 0 },
		{ "k", 0, 0 },
		{ "-1", 0, 0 },
		{ "1kb", 0, 0 },
		{ "1 k", 0, 0 },
		{ "1.5m", 0, 0 },
		{ "1t", 0, 0 },
	};
	size_t i, n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = 12345;
		ck_assert_msg((config_parse_size(t[i].s, &n) == 0) == t[i].ok, "\"%s\"", t[i].s);
		if (t[i].ok)
			ck_assert_msg(n == t[i].n, "\"%s\": %zu", t[i].s, n);
	}
}
END_TEST

START_TEST(test_cidr_parse)
{
	static const char *const bad[] = {
		"",
		"/8",
		"10.0.0.0/",
		"10.0.0.0/33",
		"10.0.0.0/-1",
		"10.0.0.0/+8",
		"10.0.0.0/8/8",
		"10.0.0",
		"10.0.0.0.0",
		"256.0.0.0",
		"::/129",
		"::1/0008",
		"fe80::1%eth0",
		"10.0.0.0 /8",
		"banana",
		"10.0.0.0/8x",
		"::g",
		"1234:1234:1234:1234:1234:1234:1234:1234:1234",
	};
	struct cidr c;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(config_parse_cidr(bad[i], &c) == -1, "\"%s\"", bad[i]);
	ck_assert_int_eq(config_parse_cidr("10.1.2.3/8", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_uint_eq(c.addr[0], 10);
	ck_assert_uint_eq(c.addr[1], 0); /* host bits cleared */
	ck_assert_int_eq(config_parse_cidr("10.1.2.3", &c), 0);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_int_eq(config_parse_cidr("2001:db8::/32", &c), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_int_eq(config_parse_cidr("::", &c), 0);
	ck_assert_uint_eq(c.prefix, 128);
	ck_assert_int_eq(config_parse_cidr("0.0.0.0/0", &c), 0);
	ck_assert_uint_eq(c.prefix, 0);
	/* A v4-mapped network is stored as the IPv4 network. */
	ck_assert_int_eq(config_parse_cidr("::ffff:10.0.0.0/104", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_uint_eq(c.addr[0], 10);
	ck_assert_int_eq(config_parse_cidr("::ffff:0:0/95", &c), 0);
	ck_assert_int_eq(c.family, AF_INET6);
}
END_TEST

/* Parses the space separated networks of LIST into C (at most 8). */
static size_t
cidrs(const char *list, struct cidr *c)
{
	char buf[256], *w, *save = NULL;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (w = strtok_r(buf, " ", &save); w != NULL && n < 8; w = strtok_r(NULL, " ", &save))
		ck_assert_msg(config_parse_cidr(w, &c[n++]) == 0, "\"%s\"", w);
	return n;
}

START_TEST(test_cidr_match_text)
{
	struct cidr c[8];
	size_t n;

	n = cidrs("10.0.0.0/8 192.168.1.0/25 172.16.0.1 2001:db8::/33 ::1", c);
	ck_assert(config_cidr_match_text(c, n, "10.255.255.255"));
	ck_assert(!config_cidr_match_text(c, n, "11.0.0.0"));
	ck_assert(config_cidr_match_text(c, n, "192.168.1.127"));
	ck_assert(!config_cidr_match_text(c, n, "192.168.1.128"));
	ck_assert(config_cidr_match_text(c, n, "172.16.0.1"));
	ck_assert(!config_cidr_match_text(c, n, "172.16.0.2"));
	ck_assert(config_cidr_match_text(c, n, "2001:db8:7fff::1"));
	ck_assert(!config_cidr_match_text(c, n, "2001:db8:8000::1"));
	ck_assert(config_cidr_match_text(c, n, "::1"));
	ck_assert(!config_cidr_match_text(c, n, "::2"));
	/* IPv4-mapped IPv6 addresses match IPv4 networks, and only those. */
	ck_assert(config_cidr_match_text(c, n, "::ffff:10.1.2.3"));
	ck_assert(!config_cidr_match_text(c, n, "::ffff:11.1.2.3"));
	ck_assert(!config_cidr_match_text(c, n, "::10.1.2.3"));
	/* Garbage matches nothing. */
	ck_assert(!config_cidr_match_text(c, n, "10.0.0.1:80"));
	ck_assert(!config_cidr_match_text(c, n, ""));
	ck_assert(!config_cidr_match_text(c, n, NULL));
	ck_assert(!config_cidr_match_text(c, 0, "10.0.0.1"));
	/* /0 matches its whole family. */
	n = cidrs("0.0.0.0/0", c);
	ck_assert(config_cidr_match_text(c, n, "1.2.3.4"));
	ck_assert(config_cidr_match_text(c, n, "::ffff:1.2.3.4"));
	ck_assert(!config_cidr_match_text(c, n, "2001:db8::1"));
	n = cidrs("::/0", c);
	ck_assert(config_cidr_match_text(c, n, "2001:db8::1"));
	ck_assert(!config_cidr_match_text(c, n, "1.2.3.4"));
	/* A mapped network matches both spellings. */
	n = cidrs("::ffff:10.0.0.0/104", c);
	ck_assert(config_cidr_match_text(c, n, "10.9.9.9"));
	ck_assert(config_cidr_match_text(c, n, "::ffff:10.9.9.9"));
	ck_assert(!config_cidr_match_text(c, n, "11.9.9.9"));
}
END_TEST

START_TEST(test_cidr_match_sockaddr)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un su;
	struct cidr c[8];
	size_t n = cidrs("127.0.0.0/8 fd00::/8", c);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1234);
	inet_pton(AF_INET, "127.1.2.3", &sin.sin_addr);
	ck_assert(config_cidr_match(c, n, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "128.1.2.3", &sin.sin_addr);
	ck_assert(!config_cidr_match(c, n, (struct sockaddr *)&sin));

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "fd12::1", &sin6.sin6_addr);
	ck_assert(config_cidr_match(c, n, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "fe12::1", &sin6.sin6_addr);
	ck_assert(!config_cidr_match(c, n, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	ck_assert(config_cidr_match(c, n, (struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::ffff:126.0.0.1", &sin6.sin6_addr);
	ck_assert(!config_cidr_match(c, n, (struct sockaddr *)&sin6));

	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	ck_assert(!config_cidr_match(c, n, (struct sockaddr *)&su));
	ck_assert(!config_cidr_match(c, n, NULL));
}
END_TEST

START_TEST(test_reload_twice)
{
	/* Loading twice gives two independent structs (reload builds a new one). */
	struct config *a = load(CONF_DIR "good.conf"), *b = load(CONF_DIR "good.conf");

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a->relays, b->relays);
	config_free(a);
	ck_assert_str_eq(b->relays[0].name, "crm");
	config_free(b);
	config_free(NULL);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_example);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_values);
	tcase_add_test(tc, test_good);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_directory);
	tcase_add_test(tc, test_bad_syntax);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_bad_checks);
	tcase_add_test(tc, test_checks);
	tcase_add_test(tc, test_bad_relay);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_long_lines);
	tcase_add_test(tc, test_inline_comments);
	tcase_add_test(tc, test_listen);
	tcase_add_test(tc, test_listen_twice);
	tcase_add_test(tc, test_base_path);
	tcase_add_test(tc, test_secret_values);
	tcase_add_test(tc, test_tokens);
	tcase_add_test(tc, test_relays);
	tcase_add_test(tc, test_relay_controls);
	tcase_add_test(tc, test_cross_checks);
	tcase_add_test(tc, test_choices);
	tcase_add_test(tc, test_list_limit);
	tcase_add_test(tc, test_many_errors);
	tcase_add_test(tc, test_many_bad_words);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_cidr_parse);
	tcase_add_test(tc, test_cidr_match_text);
	tcase_add_test(tc, test_cidr_match_sockaddr);
	tcase_add_test(tc, test_reload_twice);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tap_run(config_suite());
}
