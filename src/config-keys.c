/* SPDX-License-Identifier: ISC */
/*
 * The config keys: one const table per section saying where each value is stored and which
 * parser checks it, and the parsers themselves. Each parser checks one value and stores it,
 * or returns why not; it knows nothing of the file being read.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-internal.h"
#include "log.h"
#include "store.h"
#include "webhook.h"
#include "xmalloc.h"

#define CONF_LIST_MAX	     100 /* words in one list value */
#define CONF_CONCURRENCY_MAX 1000
#define CONF_RATE_MAX	     100000	 /* attempts per second or minute */
#define CONF_SIZE_MAX	     (64u << 20) /* max_body_size: a body is held in memory whole */
#define CONF_SIZE_MAX_TEXT   "64m"
#define CONF_STORE_URL_MAX   4096
#define CONF_NODE_MAX	     63

#define CONF(f)		       offsetof(struct config, f)
#define RELAY(f)	       offsetof(struct config_relay, f)
#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))

#define URL_SAFE    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
#define TOKEN_CHARS URL_SAFE "!#$%&'*+^`|"

static conf_parser conf_string, conf_listen, conf_base_path, conf_token, conf_cidrs, conf_size,
    conf_duration, conf_choice, conf_url, conf_kinds, conf_format, conf_level, conf_exec,
    conf_words, conf_secret, conf_header, conf_concurrency, conf_retry, conf_glob, conf_rate,
    conf_store_url, conf_node;

static const struct conf_choice conf_synchronous[] = {
	{ "full", 1 },
	{ "normal", 0 },
	{ NULL, 0 },
};
static const struct conf_choice conf_bool[] = {
	{ "yes", 1 },
	{ "no", 0 },
	{ "true", 1 },
	{ "false", 0 },
	{ "on", 1 },
	{ "off", 0 },
	{ "1", 1 },
	{ "0", 0 },
	{ NULL, 0 },
};

static const struct conf_key conf_server_keys[] = {
	{ "listen", conf_listen, CONF(listen), CONF(nlisten), 0, NULL },
	{ "base_path", conf_base_path, CONF(base_path), 0, KEY_OPTIONAL, NULL },
	{ "token", conf_token, CONF(token), 0, KEY_OPTIONAL, NULL },
	{ "trusted_proxies", conf_cidrs, CONF(trusted_proxies), CONF(ntrusted_proxies),
	    KEY_OPTIONAL, NULL },
	{ "allow_from", conf_cidrs, CONF(allow_from), CONF(nallow_from), KEY_OPTIONAL, NULL },
	{ "max_body_size", conf_size, CONF(max_body_size), 0, KEY_NONZERO, NULL },
	{ "request_timeout", conf_duration, CONF(request_timeout_ms), 0, KEY_NONZERO, NULL },
	{ "shutdown_timeout", conf_duration, CONF(shutdown_timeout_ms), 0, 0, NULL },
};

static const struct conf_key conf_store_keys[] = {
	{ "path", conf_string, CONF(store_path), 0, 0, NULL },
	{ "synchronous", conf_choice, CONF(synchronous_full), 0, 0, conf_synchronous },
	{ "retention", conf_duration, CONF(retention_ms), 0, 0, NULL },
	{ "url", conf_store_url, CONF(store_url), 0, KEY_OPTIONAL, NULL },
	{ "node", conf_node, CONF(node), 0, 0, NULL },
};

static const struct conf_key conf_clicksend_keys[] = {
	{ "username", conf_string, CONF(username), 0, KEY_OPTIONAL, NULL },
	{ "api_key", conf_string, CONF(api_key), 0, KEY_OPTIONAL, NULL },
	{ "api_key_file", conf_string, CONF(api_key_file), 0, KEY_OPTIONAL, NULL },
	{ "api_url", conf_url, CONF(api_url), 0, KEY_TRIM | KEY_BASE, NULL },
	{ "public_url", conf_url, CONF(public_url), 0, KEY_OPTIONAL | KEY_TRIM | KEY_BASE, NULL },
	{ "provision", conf_kinds, CONF(provision), 0, KEY_OPTIONAL, NULL },
	{ "webhook_type", conf_format, CONF(webhook_type), 0, 0, NULL },
	{ "dedicated_number", conf_string, CONF(dedicated_number), 0, 0, NULL },
	{ "rule_prefix", conf_string, CONF(rule_prefix), 0, 0, NULL },
	{ "test_receipts", conf_choice, CONF(test_receipts), 0, 0, conf_bool },
	{ "poll", conf_kinds, CONF(poll), 0, KEY_OPTIONAL, NULL },
	{ "poll_interval", conf_duration, CONF(poll_interval_ms), 0, 0, NULL },
};

static const struct conf_key conf_log_keys[] = {
	{ "level", conf_level, CONF(log_level), 0, 0, NULL },
};

static const struct conf_key conf_relay_keys[] = {
	{ "url", conf_url, RELAY(url), 0, KEY_OPTIONAL, NULL },
	{ "exec", conf_exec, RELAY(exec), 0, KEY_OPTIONAL, NULL },
	{ "args", conf_words, RELAY(args), RELAY(nargs), KEY_OPTIONAL, NULL },
	{ "events", conf_kinds, RELAY(kinds), 0, KEY_STAR, NULL },
	{ "match_from", conf_glob, RELAY(match_from), 0, KEY_OPTIONAL, NULL },
	{ "match_to", conf_glob, RELAY(match_to), 0, KEY_OPTIONAL, NULL },
	{ "match_body", conf_glob, RELAY(match_body), 0, KEY_OPTIONAL, NULL },
	{ "secret", conf_secret, RELAY(secret), 0, KEY_OPTIONAL, NULL },
	{ "header", conf_header, RELAY(headers), RELAY(nheaders), KEY_OPTIONAL | KEY_REPEAT, NULL },
	{ "timeout", conf_duration, RELAY(timeout_ms), 0, KEY_NONZERO, NULL },
	{ "concurrency", conf_concurrency, RELAY(concurrency), 0, 0, NULL },
	{ "retry_schedule", conf_retry, RELAY(retry_ms), RELAY(nretry), 0, NULL },
	{ "rate", conf_rate, RELAY(rate), RELAY(rate_window_ms), KEY_OPTIONAL, NULL },
	{ "ordered", conf_choice, RELAY(ordered), 0, 0, conf_bool },
	{ "pause_after", conf_duration, RELAY(pause_after_ms), 0, KEY_OPTIONAL, NULL },
};

const struct conf_section conf_sections[SECT_COUNT] = {
	[SECT_SERVER] = { "server", conf_server_keys, nitems(conf_server_keys) },
	[SECT_STORE] = { "store", conf_store_keys, nitems(conf_store_keys) },
	[SECT_CLICKSEND] = { "clicksend", conf_clicksend_keys, nitems(conf_clicksend_keys) },
	[SECT_LOG] = { "log", conf_log_keys, nitems(conf_log_keys) },
	[SECT_RELAY] = { "relay", conf_relay_keys, nitems(conf_relay_keys) },
};

/* --- Helpers. --- */

/* Formats why a value was refused into MSG and returns it, for a parser to return. */
static const char *__attribute__((format(printf, 3, 4)))
conf_why(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return msg;
}

/* Adds one more reason to MSG, on a line of its own: a list value reports each bad word. */
static const char *__attribute__((format(printf, 3, 4)))
conf_why_add(char *msg, size_t msglen, const char *fmt, ...)
{
	size_t used = strnlen(msg, msglen);
	char one[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(one, sizeof(one), fmt, ap);
	va_end(ap);
	/* the first reason always (cut if it must be); after it only whole ones */
	if (used > 0 && (n < 0 || (size_t)n >= sizeof(one) || used + 1 + (size_t)n >= msglen))
		return msg;
	snprintf(msg + used, msglen - used, "%s%s", used > 0 ? "\n" : "", one);
	return msg;
}

/* Splits V for KEY into W; why not when it has too many words. */
static const char *
conf_split_key(
    const struct conf_key *k, const char *v, char ***w, size_t *n, char *msg, size_t msglen)
{
	*w = conf_split(v, n);
	if (*n <= CONF_LIST_MAX)
		return NULL;
	conf_strv_free(*w, *n);
	*w = NULL;
	return conf_why(msg, msglen, "%s: too many values (at most %d)", k->name, CONF_LIST_MAX);
}

/* Replaces a string list field with W. */
static void
conf_set_strv(void *base, const struct conf_key *k, char **w, size_t n)
{
	char ***field = FIELD(base, k->off, char **);
	size_t *nfield = FIELD(base, k->noff, size_t);

	conf_strv_free(*field, *nfield);
	*field = w;
	*nfield = n;
}

static void
conf_set_string(void *base, const struct conf_key *k, const char *v)
{
	char **field = FIELD(base, k->off, char *);

	free(*field);
	*field = *v == '\0' ? NULL : xstrdup(v);
}

/*
 * --- Key parsers: each checks one value and stores it, or stores nothing and returns why
 * (written into MSG); conf_apply reports that with the key's line.
 */

/* A string; conf_apply refuses an empty value unless the key is KEY_OPTIONAL. */
static const char *
conf_string(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	(void)msg, (void)msglen;
	conf_set_string(base, k, v);
	return NULL;
}

/* Whether W[I] names the address of an earlier good word (port 0, any free port, may
 * repeat): the second bind would fail, or unlink the first one's unix socket. */
static int
conf_listen_repeated(char **w, size_t i)
{
	char a[CONF_LISTEN_CANON_MAX], b[CONF_LISTEN_CANON_MAX];
	size_t j;

	conf_listen_canon(w[i], a, sizeof(a));
	if (strncmp(a, "unix:", 5) != 0 && strcmp(strrchr(a, ':'), ":0") == 0)
		return 0;
	for (j = 0; j < i; j++) {
		conf_listen_canon(w[j], b, sizeof(b));
		if (conf_listen_check(w[j]) == NULL && strcmp(a, b) == 0)
			return 1;
	}
	return 0;
}

static const char *
conf_listen(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const char *why;
	char **w;
	size_t n, i;

	if ((why = conf_split_key(k, v, &w, &n, msg, msglen)) != NULL)
		return why;
	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		if ((why = conf_listen_check(w[i])) != NULL)
			conf_why_add(msg, msglen, "listen: %s: \"%s\"", why, w[i]);
		else if (conf_listen_repeated(w, i))
			conf_why_add(msg, msglen, "listen: \"%s\" is given twice", w[i]);
	}
	if (msg[0] != '\0') {
		conf_strv_free(w, n);
		return msg;
	}
	conf_set_strv(base, k, w, n);
	return NULL;
}

/* "/x/y" or "/x/y/": stored as "/x/y". Empty or "/" means the root, stored as "". */
static const char *
conf_base_path(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	char **field = FIELD(base, k->off, char *);
	size_t len = strlen(v), i;

	if (*v != '\0' && *v != '/')
		return conf_why(msg, msglen, "base_path: must start with '/'");
	for (i = 0; i < len; i++) {
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f || strchr("?#%", v[i]) != NULL)
			return conf_why(msg, msglen, "base_path: invalid character");
	}
	while (len > 0 && v[len - 1] == '/')
		len--;
	free(*field);
	*field = xstrndup(v, len);
	return NULL;
}

static const char *
conf_token(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	if (strspn(v, URL_SAFE) != strlen(v))
		return conf_why(
		    msg, msglen, "token: invalid (only letters, digits and . _ ~ - are allowed)");
	conf_set_string(base, k, v);
	return NULL;
}

/* A libpq connection URI (postgresql:// or postgres://) or a key=value string. */
static const char *
conf_store_url(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	if (strncmp(v, "postgresql://", 13) != 0 && strncmp(v, "postgres://", 11) != 0 &&
	    strchr(v, '=') == NULL)
		return conf_why(msg, msglen,
		    "url: not a PostgreSQL connection string (postgresql://... or key=value ...)");
	if (strlen(v) > CONF_STORE_URL_MAX)
		return conf_why(msg, msglen, "url: longer than %d bytes", CONF_STORE_URL_MAX);
	if (store_pg_url_check(v) == -1)
		return conf_why(msg, msglen,
		    "url: libpq cannot parse it (check the host, port, percent-encoding and quoting)");
	conf_set_string(base, k, v);
	return NULL;
}

/* A node name: [a-z0-9_.-]+, at most 63 bytes. */
static const char *
conf_node(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	if (*v == '\0' || strlen(v) > CONF_NODE_MAX ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(v))
		return conf_why(msg, msglen,
		    "node: \"%s\" is not a node name ([a-z0-9_.-]+, at most %d bytes)", v,
		    CONF_NODE_MAX);
	conf_set_string(base, k, v);
	return NULL;
}

static const char *
conf_cidrs(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	struct cidr **field = FIELD(base, k->off, struct cidr *), *c;
	size_t *nfield = FIELD(base, k->noff, size_t);
	const char *why;
	char **w;
	size_t n, i;

	if ((why = conf_split_key(k, v, &w, &n, msg, msglen)) != NULL)
		return why;
	c = xcalloc(n, sizeof(*c));
	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		if (config_parse_cidr(w[i], &c[i]) == -1)
			conf_why_add(
			    msg, msglen, "%s: invalid address or network \"%s\"", k->name, w[i]);
	}
	conf_strv_free(w, n);
	if (msg[0] != '\0') {
		free(c);
		return msg;
	}
	free(*field);
	*field = c;
	*nfield = n;
	return NULL;
}

static const char *
conf_size(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	size_t n;

	if (config_parse_size(v, &n) == -1)
		return conf_why(msg, msglen, "%s: invalid size \"%s\"", k->name, v);
	if (n == 0 && (k->flags & KEY_NONZERO))
		return conf_why(msg, msglen, "%s: must be more than 0", k->name);
	if (n > CONF_SIZE_MAX)
		return conf_why(msg, msglen, "%s: must be at most " CONF_SIZE_MAX_TEXT, k->name);
	*FIELD(base, k->off, size_t) = n;
	return NULL;
}

static const char *
conf_duration(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	uint64_t ms;

	if (config_parse_duration(v, &ms) == -1)
		return conf_why(msg, msglen, "%s: invalid duration \"%s\"", k->name, v);
	if (ms == 0 && (k->flags & KEY_NONZERO))
		return conf_why(msg, msglen, "%s: must be more than 0", k->name);
	*FIELD(base, k->off, uint64_t) = ms;
	return NULL;
}

/* One word out of the key's table of choices. */
static const char *
conf_choice(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const struct conf_choice *c;

	for (c = k->choices; c->name != NULL; c++) {
		if (strcmp(c->name, v) == 0) {
			*FIELD(base, k->off, int) = c->value;
			return NULL;
		}
	}
	return conf_why(msg, msglen, "%s: invalid value \"%s\"", k->name, v);
}

static const char *
conf_url(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	char **field = FIELD(base, k->off, char *);
	const char *why;
	size_t len = strlen(v);

	if (*v != '\0' && (why = conf_url_check(v)) != NULL)
		return conf_why(msg, msglen, "%s: invalid URL: %s", k->name, why);
	if ((k->flags & KEY_BASE) && strpbrk(v, "?#") != NULL)
		return conf_why(
		    msg, msglen, "%s: must not have a query string or fragment", k->name);
	if (k->flags & KEY_TRIM) {
		while (len > 0 && v[len - 1] == '/')
			len--;
	}
	free(*field);
	*field = len == 0 ? NULL : xstrndup(v, len);
	return NULL;
}

/* Kind names, space separated, as a bit mask; "*" for all where the key allows it. */
static const char *
conf_kinds(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const struct webhook_kind *kind;
	const char *why;
	unsigned mask = 0;
	char **w;
	size_t n, i;

	if ((k->flags & KEY_STAR) && strcmp(v, "*") == 0) {
		*FIELD(base, k->off, unsigned) = KINDS_ALL;
		return NULL;
	}
	if ((why = conf_split_key(k, v, &w, &n, msg, msglen)) != NULL)
		return why;
	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		if ((kind = webhook_kind_by_name(w[i])) == NULL)
			conf_why_add(msg, msglen, "%s: unknown kind \"%s\"", k->name, w[i]);
		else
			mask |= 1u << kind->id;
	}
	conf_strv_free(w, n);
	if (msg[0] != '\0')
		return msg;
	*FIELD(base, k->off, unsigned) = mask;
	return NULL;
}

static const char *
conf_format(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	int format;

	if ((format = webhook_format_parse(v)) == -1)
		return conf_why(
		    msg, msglen, "%s: expected post, get or json, not \"%s\"", k->name, v);
	*FIELD(base, k->off, int) = format;
	return NULL;
}

static const char *
conf_level(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	int level;

	if ((level = log_level_parse(v)) == -1)
		return conf_why(msg, msglen,
		    "%s: expected debug, info, notice, warning or error, not \"%s\"", k->name, v);
	*FIELD(base, k->off, int) = level;
	return NULL;
}

/* Why PATH cannot be run: it is missing, not a regular file or not executable; or NULL. */
static const char *
conf_exec_problem(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		return strerror(errno);
	if (!S_ISREG(sb.st_mode))
		return "not a regular file";
	if (access(path, X_OK) == -1)
		return "not executable";
	return NULL;
}

/* An absolute path to an executable regular file, checked when the config is read. */
static const char *
conf_exec(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const char *why;

	if (*v != '\0' && *v != '/')
		return conf_why(msg, msglen, "%s: must be an absolute path", k->name);
	if (*v != '\0' && (why = conf_exec_problem(v)) != NULL)
		return conf_why(msg, msglen, "%s: cannot run \"%s\": %s", k->name, v, why);
	conf_set_string(base, k, v);
	return NULL;
}

/* A glob for fnmatch(3), checked now so that a typo is not a filter matching nothing. */
static const char *
conf_glob(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const char *why;

	if ((why = conf_glob_check(v)) != NULL)
		return conf_why(msg, msglen, "%s: invalid glob: %s", k->name, why);
	conf_set_string(base, k, v);
	return NULL;
}

static const char *
conf_words(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const char *why;
	char **w;
	size_t n;

	if ((why = conf_split_key(k, v, &w, &n, msg, msglen)) != NULL)
		return why;
	conf_set_strv(base, k, w, n);
	return NULL;
}

static const char *
conf_secret(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	if (*v != '\0' && (strncmp(v, "whsec_", 6) != 0 || !conf_base64_ok(v + 6)))
		return conf_why(msg, msglen, "%s: invalid, expected whsec_<base64>", k->name);
	conf_set_string(base, k, v);
	return NULL;
}

/* Whether a header value is free of control characters (tabs allowed). */
static int
conf_header_value_ok(const char *value)
{
	const char *c;

	for (c = value; *c != '\0'; c++) {
		if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f)
			return 0;
	}
	return 1;
}

/* "Name: value", repeatable; stored with exactly one blank after the colon. */
static const char *
conf_header(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	char ***field = FIELD(base, k->off, char **);
	size_t *nfield = FIELD(base, k->noff, size_t);
	const char *colon = strchr(v, ':'), *value;
	size_t namelen;

	if (*v == '\0')
		return NULL;
	if (colon == NULL || colon == v)
		return conf_why(msg, msglen, "%s: expected \"Name: value\"", k->name);
	namelen = (size_t)(colon - v);
	if (strspn(v, TOKEN_CHARS) < namelen)
		return conf_why(
		    msg, msglen, "%s: invalid header name \"%.*s\"", k->name, (int)namelen, v);
	for (value = colon + 1; *value == ' ' || *value == '\t'; value++)
		;
	if (!conf_header_value_ok(value))
		return conf_why(msg, msglen, "%s: control character in value", k->name);
	*field = xreallocarray(*field, *nfield + 1, sizeof(**field));
	xasprintf(&(*field)[(*nfield)++], "%.*s: %s", (int)namelen, v, value);
	return NULL;
}

static const char *
conf_concurrency(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	uint64_t n;

	if (strlen(v) > 4 || conf_number_plain(v, CONF_CONCURRENCY_MAX, &n) == -1 || n == 0)
		return conf_why(msg, msglen, "%s: expected a number from 1 to %d", k->name,
		    CONF_CONCURRENCY_MAX);
	*FIELD(base, k->off, unsigned) = (unsigned)n;
	return NULL;
}

static const char *
conf_retry(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	uint64_t **field = FIELD(base, k->off, uint64_t *), *ms;
	size_t *nfield = FIELD(base, k->noff, size_t);
	const char *why;
	char **w;
	size_t n, i;

	if ((why = conf_split_key(k, v, &w, &n, msg, msglen)) != NULL)
		return why;
	ms = xcalloc(n, sizeof(*ms));
	msg[0] = '\0';
	for (i = 0; i < n; i++) {
		if (config_parse_duration(w[i], &ms[i]) == -1)
			conf_why_add(msg, msglen, "%s: invalid duration \"%s\"", k->name, w[i]);
		else if (ms[i] == 0)
			conf_why_add(msg, msglen, "%s: step %zu is 0 (each must be more than 0)",
			    k->name, i + 1);
	}
	conf_strv_free(w, n);
	if (msg[0] != '\0') {
		free(ms);
		return msg;
	}
	free(*field);
	*field = ms;
	*nfield = n;
	return NULL;
}

/* "N/s" or "N/m": at most N attempts started in any second or minute; empty: no limit. */
static const char *
conf_rate(const struct conf_key *k, const char *v, void *base, char *msg, size_t msglen)
{
	const char *slash = strchr(v, '/');
	char num[16];
	uint64_t n, window;
	size_t len;

	if (*v == '\0') {
		*FIELD(base, k->off, unsigned) = 0;
		return NULL;
	}
	if (slash == NULL || (len = (size_t)(slash - v)) == 0 || len >= sizeof(num) ||
	    (strcmp(slash, "/s") != 0 && strcmp(slash, "/m") != 0))
		return conf_why(msg, msglen, "%s: expected N/s or N/m, e.g. 20/s", k->name);
	memcpy(num, v, len);
	num[len] = '\0';
	if (conf_number_plain(num, CONF_RATE_MAX, &n) == -1 || n == 0)
		return conf_why(
		    msg, msglen, "%s: N must be a number from 1 to %d", k->name, CONF_RATE_MAX);
	window = slash[1] == 's' ? 1000 : 60000;
	*FIELD(base, k->off, unsigned) = (unsigned)n;
	*FIELD(base, k->noff, uint64_t) = window;
	return NULL;
}
