/* SPDX-License-Identifier: ISC */
/*
 * The config file. libinih splits key lines into names and values; our line reader in front
 * of it numbers the lines, follows sections and continuation lines, and the key tables below
 * say how each value is checked and where it is stored. Every error is reported as
 * FILE:LINE: message and counted; one bad key never stops the rest being checked.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "config.h"
#include "log.h"
#include "webhook.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#define KEY_OPTIONAL 0x01 /* an empty value means unset */
#define KEY_REPEAT   0x02 /* may be given more than once */
#define KEY_NONZERO  0x04 /* a duration or size must be more than 0 */
#define KEY_STAR     0x08 /* "*" means every kind */
#define KEY_TRIM     0x10 /* strip trailing slashes from a URL */

#define CONF_KEYS_MAX	     16
#define CONF_LIST_MAX	     100 /* words in one list value */
#define CONF_CONCURRENCY_MAX 1000
#define CONF_DURATION_MAX    (100ULL * 365 * 86400 * 1000) /* 100 years, in ms */
#define CONF_LONG_VALUE	     "\x01" /* stands for a value too long for inih's buffer */
#define KINDS_ALL	     ((1u << KIND_COUNT) - 1)

#define CONF(f)		       offsetof(struct config, f)
#define RELAY(f)	       offsetof(struct config_relay, f)
#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))

#define URL_SAFE	 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
#define BASE64_CHARS	 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define TOKEN_CHARS	 URL_SAFE "!#$%&'*+^`|"
#define RELAY_NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"

enum conf_section_id {
	SECT_SERVER,
	SECT_STORE,
	SECT_CLICKSEND,
	SECT_LOG,
	SECT_RELAY,
	SECT_COUNT
};

struct conf_parse;
struct conf_key;
typedef void conf_parser(struct conf_parse *, const struct conf_key *, const char *, void *);

struct conf_choice {
	const char *name;
	int value;
};

struct conf_key {
	const char *name;
	conf_parser *parse;
	size_t off;  /* the field, in struct config or config_relay */
	size_t noff; /* its element count, for lists */
	unsigned flags;
	const struct conf_choice *choices; /* for conf_choice */
};

struct conf_section {
	const char *name;
	const struct conf_key *keys;
	size_t nkeys;
};

struct conf_seen {
	char *name;
	int line;
};

/* The state of one config_load(). */
struct conf_parse {
	struct config *conf;
	FILE *fp;
	char *buf;
	size_t bufsz;
	int lineno; /* of the line read last */
	int read_errno;
	int errors;
	int expect_key;		      /* a key line went to inih, its handler call is due */
	char *longval;		      /* value of a key line too long for inih */
	char *pend_name, *pend_value; /* the last key, kept for its continuation lines */
	int pend_line;
	const struct conf_section *sect; /* NULL: none yet, or skipped */
	int skip;			 /* inside an unknown or broken section */
	int sect_line;
	int lines[SECT_COUNT][CONF_KEYS_MAX];		 /* where each key was first set; 0 unset */
	unsigned char failed[SECT_COUNT][CONF_KEYS_MAX]; /* its value was rejected */
	struct config_relay *relay;			 /* the [relay:NAME] being read */
	int relay_keep;
	struct conf_seen *seen; /* every section header, to find duplicates */
	size_t nseen;
};

static conf_parser conf_string, conf_listen, conf_base_path, conf_token, conf_cidrs, conf_size,
    conf_duration, conf_choice, conf_url, conf_kinds, conf_format, conf_level, conf_exec,
    conf_words, conf_secret, conf_header, conf_concurrency, conf_retry;

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
};

static const struct conf_key conf_clicksend_keys[] = {
	{ "username", conf_string, CONF(username), 0, KEY_OPTIONAL, NULL },
	{ "api_key", conf_string, CONF(api_key), 0, KEY_OPTIONAL, NULL },
	{ "api_key_file", conf_string, CONF(api_key_file), 0, KEY_OPTIONAL, NULL },
	{ "api_url", conf_url, CONF(api_url), 0, KEY_TRIM, NULL },
	{ "public_url", conf_url, CONF(public_url), 0, KEY_OPTIONAL | KEY_TRIM, NULL },
	{ "provision", conf_kinds, CONF(provision), 0, KEY_OPTIONAL, NULL },
	{ "webhook_type", conf_format, CONF(webhook_type), 0, 0, NULL },
	{ "dedicated_number", conf_string, CONF(dedicated_number), 0, 0, NULL },
	{ "rule_prefix", conf_string, CONF(rule_prefix), 0, 0, NULL },
	{ "test_receipts", conf_choice, CONF(test_receipts), 0, 0, conf_bool },
};

static const struct conf_key conf_log_keys[] = {
	{ "level", conf_level, CONF(log_level), 0, 0, NULL },
};

static const struct conf_key conf_relay_keys[] = {
	{ "url", conf_url, RELAY(url), 0, KEY_OPTIONAL, NULL },
	{ "exec", conf_exec, RELAY(exec), 0, KEY_OPTIONAL, NULL },
	{ "args", conf_words, RELAY(args), RELAY(nargs), KEY_OPTIONAL, NULL },
	{ "events", conf_kinds, RELAY(kinds), 0, KEY_STAR, NULL },
	{ "match_from", conf_string, RELAY(match_from), 0, KEY_OPTIONAL, NULL },
	{ "match_to", conf_string, RELAY(match_to), 0, KEY_OPTIONAL, NULL },
	{ "match_body", conf_string, RELAY(match_body), 0, KEY_OPTIONAL, NULL },
	{ "secret", conf_secret, RELAY(secret), 0, KEY_OPTIONAL, NULL },
	{ "header", conf_header, RELAY(headers), RELAY(nheaders), KEY_OPTIONAL | KEY_REPEAT, NULL },
	{ "timeout", conf_duration, RELAY(timeout_ms), 0, KEY_NONZERO, NULL },
	{ "concurrency", conf_concurrency, RELAY(concurrency), 0, 0, NULL },
	{ "retry_schedule", conf_retry, RELAY(retry_ms), RELAY(nretry), 0, NULL },
};

static const struct conf_section conf_sections[SECT_COUNT] = {
	[SECT_SERVER] = { "server", conf_server_keys, nitems(conf_server_keys) },
	[SECT_STORE] = { "store", conf_store_keys, nitems(conf_store_keys) },
	[SECT_CLICKSEND] = { "clicksend", conf_clicksend_keys, nitems(conf_clicksend_keys) },
	[SECT_LOG] = { "log", conf_log_keys, nitems(conf_log_keys) },
	[SECT_RELAY] = { "relay", conf_relay_keys, nitems(conf_relay_keys) },
};

static const uint64_t conf_retry_default[] = {
	5000,
	30000,
	120000,
	600000,
	1800000,
	3600000,
	7200000,
	14400000,
	28800000,
	43200000,
};

struct conf_unit {
	const char *suffix;
	uint64_t mult;
};

static const struct conf_unit conf_duration_units[] = {
	{ "", 1000 },
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60000 },
	{ "h", 3600000 },
	{ "d", 86400000 },
};
static const struct conf_unit conf_size_units[] = {
	{ "", 1 },
	{ "k", 1024 },
	{ "K", 1024 },
	{ "m", 1048576 },
	{ "M", 1048576 },
	{ "g", 1073741824 },
	{ "G", 1073741824 },
};
static const struct conf_unit conf_plain_units[] = { { "", 1 } };

static const unsigned char conf_v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static void (*config_error_hook)(const char *, void *);
static void *config_error_arg;

void
config_set_error_hook(void (*hook)(const char *line, void *arg), void *arg)
{
	config_error_hook = hook;
	config_error_arg = arg;
}

/* Reports "FILE:LINE: message" (just "FILE: message" for line 0) and counts it. */
static void __attribute__((format(printf, 3, 4)))
conf_error(struct conf_parse *p, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg, *full;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	if (line > 0)
		xasprintf(&full, "%s:%d: %s", p->conf->file, line, msg);
	else
		xasprintf(&full, "%s: %s", p->conf->file, msg);
	if (config_error_hook != NULL)
		config_error_hook(full, config_error_arg);
	else
		fprintf(stderr, "%s\n", full);
	free(full);
	free(msg);
	p->errors++;
}

/* --- Values: numbers, durations, sizes, addresses. --- */

/* A decimal number with one of UNITS as suffix, at most MAX once multiplied. */
static int
conf_number(
    const char *s, const struct conf_unit *units, size_t nunits, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	for (i = 0; i < nunits; i++) {
		if (strcmp(s, units[i].suffix) != 0)
			continue;
		if (n > max / units[i].mult)
			return -1;
		*out = n * units[i].mult;
		return 0;
	}
	return -1;
}

int
config_parse_duration(const char *s, uint64_t *ms)
{
	return conf_number(
	    s, conf_duration_units, nitems(conf_duration_units), CONF_DURATION_MAX, ms);
}

int
config_parse_size(const char *s, size_t *size)
{
	uint64_t n;

	if (conf_number(s, conf_size_units, nitems(conf_size_units), SIZE_MAX, &n) == -1)
		return -1;
	*size = (size_t)n;
	return 0;
}

/* Clears the address bits past the prefix. */
static void
cidr_mask(struct cidr *c)
{
	size_t i, len = c->family == AF_INET ? 4 : 16;
	unsigned bits;

	for (i = 0; i < len; i++) {
		bits = c->prefix > i * 8 ? c->prefix - (unsigned)i * 8 : 0;
		if (bits < 8)
			c->addr[i] &= (unsigned char)(0xff << (8 - bits));
	}
}

/* An IPv4-mapped IPv6 network of /96 or longer becomes the IPv4 network it maps. */
static void
cidr_unmap(struct cidr *c)
{
	if (c->family != AF_INET6 || c->prefix < 96 ||
	    memcmp(c->addr, conf_v4mapped, sizeof(conf_v4mapped)) != 0)
		return;
	c->family = AF_INET;
	c->prefix -= 96;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
}

int
config_parse_cidr(const char *s, struct cidr *c)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	uint64_t prefix;

	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, host, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, host, c->addr) == 1)
		c->family = AF_INET6;
	else
		return -1;
	c->prefix = c->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		if (strlen(slash + 1) > 3 ||
		    conf_number(slash + 1, conf_plain_units, nitems(conf_plain_units), c->prefix,
			&prefix) == -1)
			return -1;
		c->prefix = (unsigned)prefix;
	}
	cidr_mask(c);
	cidr_unmap(c);
	return 0;
}

/* Whether the address A (4 or 16 bytes) of FAMILY lies in one of the N networks. */
static int
cidr_match_addr(const struct cidr *c, size_t n, int family, const unsigned char *a)
{
	unsigned full, rest;
	unsigned char mask;
	size_t i;

	if (family == AF_INET6 && memcmp(a, conf_v4mapped, sizeof(conf_v4mapped)) == 0) {
		family = AF_INET;
		a += 12;
	}
	for (i = 0; i < n; i++) {
		if (c[i].family != family)
			continue;
		full = c[i].prefix / 8;
		rest = c[i].prefix % 8;
		mask = (unsigned char)(0xff << (8 - rest));
		if (memcmp(c[i].addr, a, full) == 0 &&
		    (rest == 0 || (c[i].addr[full] & mask) == (a[full] & mask)))
			return 1;
	}
	return 0;
}

int
config_cidr_match(const struct cidr *c, size_t n, const struct sockaddr *sa)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL)
		return 0;
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		return cidr_match_addr(c, n, AF_INET, (const unsigned char *)&sin->sin_addr);
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		return cidr_match_addr(c, n, AF_INET6, sin6->sin6_addr.s6_addr);
	default:
		return 0;
	}
}

int
config_cidr_match_text(const struct cidr *c, size_t n, const char *addr)
{
	unsigned char a[16];

	if (addr == NULL)
		return 0;
	if (inet_pton(AF_INET, addr, a) == 1)
		return cidr_match_addr(c, n, AF_INET, a);
	if (inet_pton(AF_INET6, addr, a) == 1)
		return cidr_match_addr(c, n, AF_INET6, a);
	return 0;
}

/* --- Lists. --- */

static void
conf_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Splits S at blanks into a new array of words. */
static char **
conf_split(const char *s, size_t *n)
{
	char *copy = xstrdup(s), *w, *save = NULL, **v = NULL;

	*n = 0;
	for (w = strtok_r(copy, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
		v = xreallocarray(v, *n + 1, sizeof(*v));
		v[(*n)++] = xstrdup(w);
	}
	free(copy);
	return v;
}

/* Splits V for KEY into W; -1 when it has too many words. */
static int
conf_split_key(struct conf_parse *p, const struct conf_key *k, const char *v, char ***w, size_t *n)
{
	*w = conf_split(v, n);
	if (*n <= CONF_LIST_MAX)
		return 0;
	conf_error(p, p->pend_line, "%s: too many values (at most %d)", k->name, CONF_LIST_MAX);
	conf_strv_free(*w, *n);
	return -1;
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

/* --- Key parsers: each checks one value and stores it, or reports why not. --- */

static void
conf_set_string(void *base, const struct conf_key *k, const char *v)
{
	char **field = FIELD(base, k->off, char *);

	free(*field);
	*field = *v == '\0' ? NULL : xstrdup(v);
}

/* A string; conf_apply refuses an empty value unless the key is KEY_OPTIONAL. */
static void
conf_string(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	(void)p;
	conf_set_string(base, k, v);
}

/* Why a listen port is bad, or NULL. */
static const char *
conf_port_check(const char *s)
{
	uint64_t port;

	if (*s == '\0')
		return "missing port";
	if (strlen(s) > 5 || conf_number(s, conf_plain_units, 1, 65535, &port) == -1)
		return "invalid port";
	return NULL;
}

/* Why a listen address (HOST:PORT, [V6]:PORT, unix:/path) is bad, or NULL. */
static const char *
conf_listen_check(const char *s)
{
	char host[INET6_ADDRSTRLEN];
	unsigned char a[16];
	const char *end;
	size_t len;

	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/')
			return "unix socket path must be absolute";
		if (strlen(s + 5) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
			return "unix socket path too long";
		return NULL;
	}
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL || end[1] != ':')
			return "expected [V6ADDR]:PORT";
		len = (size_t)(end - s - 1);
		if (len == 0 || len >= sizeof(host))
			return "invalid IPv6 address";
		memcpy(host, s + 1, len);
		host[len] = '\0';
		if (inet_pton(AF_INET6, host, a) != 1)
			return "invalid IPv6 address";
		return conf_port_check(end + 2);
	}
	if ((end = strrchr(s, ':')) == NULL)
		return "expected HOST:PORT";
	len = (size_t)(end - s);
	if (len == 0)
		return "missing host";
	if (memchr(s, ':', len) != NULL)
		return "an IPv6 address must be in brackets, [V6ADDR]:PORT";
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") != len)
		return "invalid host";
	return conf_port_check(end + 1);
}

static void
conf_listen(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	const char *why;
	char **w;
	size_t n, i;
	int bad = 0;

	if (conf_split_key(p, k, v, &w, &n) == -1)
		return;
	for (i = 0; i < n; i++) {
		if ((why = conf_listen_check(w[i])) != NULL) {
			conf_error(p, p->pend_line, "listen: %s: \"%s\"", why, w[i]);
			bad = 1;
		}
	}
	if (bad)
		conf_strv_free(w, n);
	else
		conf_set_strv(base, k, w, n);
}

/* "/x/y" or "/x/y/": stored as "/x/y". Empty or "/" means the root, stored as "". */
static void
conf_base_path(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	char **field = FIELD(base, k->off, char *);
	size_t len = strlen(v), i;

	if (*v != '\0' && *v != '/') {
		conf_error(p, p->pend_line, "base_path: must start with '/'");
		return;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f || strchr("?#%", v[i]) != NULL) {
			conf_error(p, p->pend_line, "base_path: invalid character");
			return;
		}
	}
	while (len > 0 && v[len - 1] == '/')
		len--;
	free(*field);
	*field = xstrndup(v, len);
}

static void
conf_token(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	if (strspn(v, URL_SAFE) != strlen(v)) {
		conf_error(p, p->pend_line,
		    "token: invalid (only letters, digits and . _ ~ - are allowed)");
		return;
	}
	conf_set_string(base, k, v);
}

static void
conf_cidrs(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	struct cidr **field = FIELD(base, k->off, struct cidr *), *c;
	size_t *nfield = FIELD(base, k->noff, size_t);
	char **w;
	size_t n, i;
	int bad = 0;

	if (conf_split_key(p, k, v, &w, &n) == -1)
		return;
	c = xcalloc(n, sizeof(*c));
	for (i = 0; i < n; i++) {
		if (config_parse_cidr(w[i], &c[i]) == -1) {
			conf_error(p, p->pend_line, "%s: invalid address or network \"%s\"",
			    k->name, w[i]);
			bad = 1;
		}
	}
	conf_strv_free(w, n);
	if (bad) {
		free(c);
		return;
	}
	free(*field);
	*field = c;
	*nfield = n;
}

static void
conf_size(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	size_t n;

	if (config_parse_size(v, &n) == -1)
		conf_error(p, p->pend_line, "%s: invalid size \"%s\"", k->name, v);
	else if (n == 0 && (k->flags & KEY_NONZERO))
		conf_error(p, p->pend_line, "%s: must be more than 0", k->name);
	else
		*FIELD(base, k->off, size_t) = n;
}

static void
conf_duration(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	uint64_t ms;

	if (config_parse_duration(v, &ms) == -1)
		conf_error(p, p->pend_line, "%s: invalid duration \"%s\"", k->name, v);
	else if (ms == 0 && (k->flags & KEY_NONZERO))
		conf_error(p, p->pend_line, "%s: must be more than 0", k->name);
	else
		*FIELD(base, k->off, uint64_t) = ms;
}

/* One word out of the key's table of choices. */
static void
conf_choice(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	const struct conf_choice *c;

	for (c = k->choices; c->name != NULL; c++) {
		if (strcmp(c->name, v) == 0) {
			*FIELD(base, k->off, int) = c->value;
			return;
		}
	}
	conf_error(p, p->pend_line, "%s: invalid value \"%s\"", k->name, v);
}

/* Why URL is not an http(s) URL, or NULL. Never echoed: it may hold credentials. */
static const char *
conf_url_check(const char *v)
{
	size_t n;

	if (strncasecmp(v, "http://", 7) == 0)
		n = 7;
	else if (strncasecmp(v, "https://", 8) == 0)
		n = 8;
	else
		return "must start with http:// or https://";
	if (v[n] == '\0' || v[n] == '/')
		return "has no host";
	for (; *v != '\0'; v++) {
		if ((unsigned char)*v <= ' ' || *v == 0x7f)
			return "contains a blank or a control character";
	}
	return NULL;
}

static void
conf_url(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	char **field = FIELD(base, k->off, char *);
	const char *why;
	size_t len = strlen(v);

	if (*v != '\0' && (why = conf_url_check(v)) != NULL) {
		conf_error(p, p->pend_line, "%s: invalid URL: %s", k->name, why);
		return;
	}
	if (k->flags & KEY_TRIM) {
		while (len > 0 && v[len - 1] == '/')
			len--;
	}
	free(*field);
	*field = len == 0 ? NULL : xstrndup(v, len);
}

/* Kind names, space separated, as a bit mask; "*" for all where the key allows it. */
static void
conf_kinds(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	const struct webhook_kind *kind;
	unsigned mask = 0;
	char **w;
	size_t n, i;
	int bad = 0;

	if ((k->flags & KEY_STAR) && strcmp(v, "*") == 0) {
		*FIELD(base, k->off, unsigned) = KINDS_ALL;
		return;
	}
	if (conf_split_key(p, k, v, &w, &n) == -1)
		return;
	for (i = 0; i < n; i++) {
		if ((kind = webhook_kind_by_name(w[i])) != NULL)
			mask |= 1u << kind->id;
		else {
			conf_error(p, p->pend_line, "%s: unknown kind \"%s\"", k->name, w[i]);
			bad = 1;
		}
	}
	conf_strv_free(w, n);
	if (!bad)
		*FIELD(base, k->off, unsigned) = mask;
}

static void
conf_format(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	int format;

	if ((format = webhook_format_parse(v)) == -1)
		conf_error(
		    p, p->pend_line, "%s: expected post, get or json, not \"%s\"", k->name, v);
	else
		*FIELD(base, k->off, int) = format;
}

static void
conf_level(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	int level;

	if ((level = log_level_parse(v)) == -1)
		conf_error(p, p->pend_line,
		    "%s: expected debug, info, notice, warning or error, not \"%s\"", k->name, v);
	else
		*FIELD(base, k->off, int) = level;
}

static void
conf_exec(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	if (*v != '\0' && *v != '/')
		conf_error(p, p->pend_line, "%s: must be an absolute path", k->name);
	else
		conf_set_string(base, k, v);
}

static void
conf_words(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	char **w;
	size_t n;

	if (conf_split_key(p, k, v, &w, &n) == 0)
		conf_set_strv(base, k, w, n);
}

/* Whether S is base64: the standard alphabet, with or without padding. */
static int
conf_base64_ok(const char *s)
{
	size_t n = strspn(s, BASE64_CHARS), pad = strspn(s + n, "=");

	if (n == 0 || s[n + pad] != '\0' || pad > 2)
		return 0;
	if (pad > 0 && (n + pad) % 4 != 0)
		return 0;
	return n % 4 != 1;
}

static void
conf_secret(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	if (*v != '\0' && (strncmp(v, "whsec_", 6) != 0 || !conf_base64_ok(v + 6)))
		conf_error(p, p->pend_line, "%s: invalid, expected whsec_<base64>", k->name);
	else
		conf_set_string(base, k, v);
}

/* "Name: value", repeatable; stored with exactly one blank after the colon. */
static void
conf_header(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	char ***field = FIELD(base, k->off, char **);
	size_t *nfield = FIELD(base, k->noff, size_t);
	const char *colon = strchr(v, ':'), *value, *c;
	size_t namelen;

	if (*v == '\0')
		return;
	if (colon == NULL || colon == v) {
		conf_error(p, p->pend_line, "%s: expected \"Name: value\"", k->name);
		return;
	}
	namelen = (size_t)(colon - v);
	if (strspn(v, TOKEN_CHARS) < namelen) {
		conf_error(
		    p, p->pend_line, "%s: invalid header name \"%.*s\"", k->name, (int)namelen, v);
		return;
	}
	for (value = colon + 1; *value == ' ' || *value == '\t'; value++)
		;
	for (c = value; *c != '\0'; c++) {
		if (((unsigned char)*c < ' ' && *c != '\t') || *c == 0x7f) {
			conf_error(p, p->pend_line, "%s: control character in value", k->name);
			return;
		}
	}
	*field = xreallocarray(*field, *nfield + 1, sizeof(**field));
	xasprintf(&(*field)[(*nfield)++], "%.*s: %s", (int)namelen, v, value);
}

static void
conf_concurrency(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	uint64_t n;

	if (strlen(v) > 4 || conf_number(v, conf_plain_units, 1, CONF_CONCURRENCY_MAX, &n) == -1 ||
	    n == 0)
		conf_error(p, p->pend_line, "%s: expected a number from 1 to %d", k->name,
		    CONF_CONCURRENCY_MAX);
	else
		*FIELD(base, k->off, unsigned) = (unsigned)n;
}

static void
conf_retry(struct conf_parse *p, const struct conf_key *k, const char *v, void *base)
{
	uint64_t **field = FIELD(base, k->off, uint64_t *), *ms;
	size_t *nfield = FIELD(base, k->noff, size_t);
	char **w;
	size_t n, i;
	int bad = 0;

	if (conf_split_key(p, k, v, &w, &n) == -1)
		return;
	ms = xcalloc(n, sizeof(*ms));
	for (i = 0; i < n; i++) {
		if (config_parse_duration(w[i], &ms[i]) == -1) {
			conf_error(p, p->pend_line, "%s: invalid duration \"%s\"", k->name, w[i]);
			bad = 1;
		}
	}
	conf_strv_free(w, n);
	if (bad) {
		free(ms);
		return;
	}
	free(*field);
	*field = ms;
	*nfield = n;
}

/* --- Sections. --- */

static int
conf_key_index(const struct conf_section *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++) {
		if (strcmp(s->keys[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* The line where KEY of section ID was set, 0 when it was not. */
static int
conf_key_line(struct conf_parse *p, enum conf_section_id id, const char *key)
{
	int i = conf_key_index(&conf_sections[id], key);

	return i == -1 ? 0 : p->lines[id][i];
}

static void
conf_relay_free(struct config_relay *r)
{
	free(r->name);
	free(r->url);
	free(r->exec);
	conf_strv_free(r->args, r->nargs);
	free(r->match_from);
	free(r->match_to);
	free(r->match_body);
	free(r->secret);
	conf_strv_free(r->headers, r->nheaders);
	free(r->retry_ms);
}

static struct config_relay *
conf_relay_new(const char *name)
{
	struct config_relay *r = xcalloc(1, sizeof(*r));

	r->name = xstrdup(name);
	r->kinds = KINDS_ALL;
	r->nretry = nitems(conf_retry_default);
	r->retry_ms = xcalloc(r->nretry, sizeof(*r->retry_ms));
	memcpy(r->retry_ms, conf_retry_default, sizeof(conf_retry_default));
	return r;
}

/* Whether relay KEY has a value (FIELD), or had one that was rejected. */
static int
conf_key_given(struct conf_parse *p, const char *key, const char *field)
{
	int i = conf_key_index(&conf_sections[SECT_RELAY], key);

	return field != NULL || p->failed[SECT_RELAY][i];
}

/* Reports KEY when it was set on a relay of the other type. */
static void
conf_relay_misfit(struct conf_parse *p, const char *key, int set, const char *type)
{
	if (set)
		conf_error(
		    p, conf_key_line(p, SECT_RELAY, key), "%s: only for %s relays", key, type);
}

/* Checks the relay just read, fills the defaults of its type and keeps it if it is sound. */
static void
conf_relay_end(struct conf_parse *p)
{
	struct config_relay *r = p->relay;
	struct config *c = p->conf;
	int exec = r->exec != NULL;

	/* A url or exec that was given but rejected counts as given: no second error. */
	if (conf_key_given(p, "url", r->url) == conf_key_given(p, "exec", r->exec))
		conf_error(
		    p, p->sect_line, "[relay:%s]: exactly one of url or exec is required", r->name);
	else if (exec) {
		conf_relay_misfit(p, "secret", r->secret != NULL, "url");
		conf_relay_misfit(p, "header", r->nheaders > 0, "url");
	} else
		conf_relay_misfit(p, "args", r->nargs > 0, "exec");
	if (conf_key_line(p, SECT_RELAY, "timeout") == 0)
		r->timeout_ms = exec ? 30000 : 10000;
	if (conf_key_line(p, SECT_RELAY, "concurrency") == 0)
		r->concurrency = exec ? 1 : 4;
	if (p->relay_keep) {
		c->relays = xreallocarray(c->relays, c->nrelays + 1, sizeof(*c->relays));
		c->relays[c->nrelays++] = *r;
	} else
		conf_relay_free(r);
	free(r);
	p->relay = NULL;
}

static void
conf_section_end(struct conf_parse *p)
{
	if (p->relay != NULL)
		conf_relay_end(p);
	p->sect = NULL;
	p->skip = 0;
}

/* Records NAME; returns the line where it was seen before, or 0. */
static int
conf_section_seen(struct conf_parse *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nseen; i++) {
		if (strcmp(p->seen[i].name, name) == 0)
			return p->seen[i].line;
	}
	p->seen = xreallocarray(p->seen, p->nseen + 1, sizeof(*p->seen));
	p->seen[p->nseen].name = xstrdup(name);
	p->seen[p->nseen++].line = p->lineno;
	return 0;
}

/* Starts [relay:NAME]: a bad or repeated one is still read, to report its errors, then dropped. */
static void
conf_relay_begin(struct conf_parse *p, const char *name, int dup)
{
	size_t len = strlen(name);

	p->relay_keep = !dup;
	if (len == 0 || len > CONFIG_RELAY_NAME_MAX || strspn(name, RELAY_NAME_CHARS) != len) {
		conf_error(p, p->lineno, "invalid relay name \"%s\" (1-%d of a-z 0-9 _ -)", name,
		    CONFIG_RELAY_NAME_MAX);
		p->relay_keep = 0;
	}
	memset(p->lines[SECT_RELAY], 0, sizeof(p->lines[SECT_RELAY]));
	memset(p->failed[SECT_RELAY], 0, sizeof(p->failed[SECT_RELAY]));
	p->relay = conf_relay_new(name);
}

/* The section named NAME ("relay:NAME" for a relay), or NULL. */
static const struct conf_section *
conf_section_find(const char *name)
{
	size_t i;

	if (strncmp(name, "relay:", 6) == 0)
		return &conf_sections[SECT_RELAY];
	for (i = 0; i < SECT_RELAY; i++) {
		if (strcmp(name, conf_sections[i].name) == 0)
			return &conf_sections[i];
	}
	return NULL;
}

static void
conf_section_begin(struct conf_parse *p, const char *name)
{
	const struct conf_section *s;
	int first;

	p->sect_line = p->lineno;
	if ((s = conf_section_find(name)) == NULL) {
		conf_error(p, p->lineno, "unknown section [%s]", name);
		p->skip = 1;
		return;
	}
	if ((first = conf_section_seen(p, name)) != 0)
		conf_error(p, p->lineno, "duplicate section [%s] (first at line %d)", name, first);
	p->sect = s;
	if (s == &conf_sections[SECT_RELAY])
		conf_relay_begin(p, name + 6, first != 0);
}

/* A "[name]" line, T trimmed. */
static void
conf_section_line(struct conf_parse *p, char *t)
{
	char *end = strchr(t, ']'), *rest, *name;

	conf_section_end(p);
	if (end == NULL) {
		conf_error(p, p->lineno, "malformed section header: no ']'");
		p->skip = 1;
		return;
	}
	for (rest = end + 1; isspace((unsigned char)*rest); rest++)
		;
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		conf_error(p, p->lineno, "unexpected text after section header");
	*end = '\0';
	for (name = t + 1; isspace((unsigned char)*name); name++)
		;
	while (end > name && isspace((unsigned char)end[-1]))
		*--end = '\0';
	conf_section_begin(p, name);
}

/* --- Keys. --- */

/* Checks and stores one key of the current section. */
static void
conf_apply(struct conf_parse *p, const char *name, const char *value)
{
	const struct conf_section *s = p->sect;
	const struct conf_key *k;
	void *base;
	int i, *first, errors;

	if (p->skip)
		return;
	if (s == NULL) {
		conf_error(p, p->pend_line, "key \"%s\" outside of any section", name);
		return;
	}
	if ((i = conf_key_index(s, name)) == -1) {
		conf_error(p, p->pend_line, "unknown key \"%s\" in [%s%s%s]", name, s->name,
		    p->relay != NULL ? ":" : "", p->relay != NULL ? p->relay->name : "");
		return;
	}
	k = &s->keys[i];
	first = &p->lines[s - conf_sections][i];
	if (*first != 0 && !(k->flags & KEY_REPEAT)) {
		conf_error(
		    p, p->pend_line, "duplicate key \"%s\" (first at line %d)", name, *first);
		return;
	}
	if (*first == 0)
		*first = p->pend_line;
	if (*value == '\0' && !(k->flags & KEY_OPTIONAL)) {
		conf_error(p, p->pend_line, "%s: missing value", name);
		return;
	}
	base = s == &conf_sections[SECT_RELAY] ? (void *)p->relay : (void *)p->conf;
	errors = p->errors;
	k->parse(p, k, value, base);
	if (p->errors != errors)
		p->failed[s - conf_sections][i] = 1;
}

/* Applies the pending key, now that its continuation lines are in. */
static void
conf_flush(struct conf_parse *p)
{
	if (p->pend_name == NULL)
		return;
	conf_apply(p, p->pend_name, p->pend_value);
	free(p->pend_name);
	free(p->pend_value);
	p->pend_name = p->pend_value = NULL;
}

/* The value part of a raw line, as inih would cut it: inline " ;" comment off, trimmed. */
static char *
conf_value_dup(const char *s)
{
	const char *end;

	for (end = s; *end != '\0'; end++) {
		if (*end == ';' && end > s && isspace((unsigned char)end[-1]))
			break;
	}
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	return xstrndup(s, (size_t)(end - s));
}

/* An indented line: one more word for the pending key's value. */
static void
conf_continue(struct conf_parse *p, const char *t)
{
	char *more = conf_value_dup(t), *v;

	if (*p->pend_value == '\0')
		v = xstrdup(more);
	else
		xasprintf(&v, "%s %s", p->pend_value, more);
	free(p->pend_value);
	p->pend_value = v;
	free(more);
}

/* inih's handler: the key is kept pending until the next line shows it has no continuation. */
static int
conf_handler(void *arg, const char *section, const char *name, const char *value)
{
	struct conf_parse *p = arg;

	(void)section;
	p->expect_key = 0;
	conf_flush(p); /* already done by the reader; keeps this safe on its own */
	if (p->longval != NULL && strcmp(value, CONF_LONG_VALUE) == 0) {
		p->pend_value = p->longval;
		p->longval = NULL;
	} else
		p->pend_value = xstrdup(value);
	p->pend_name = xstrdup(name);
	p->pend_line = p->lineno;
	return 1;
}

/* --- The line reader in front of inih. --- */

/* Copies LEN bytes of S and a newline into inih's buffer STR of NUM bytes. */
static char *
conf_feed(char *str, int num, const char *s, size_t len)
{
	if (len > (size_t)num - 2)
		len = (size_t)num - 2;
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* Hands inih a key line; one too long for its buffer goes as "name=\x01", value aside. */
static char *
conf_feed_key(struct conf_parse *p, char *str, int num, const char *t)
{
	const char *sep;
	size_t len = strlen(t);

	if (len + 2 <= (size_t)num) {
		p->expect_key = 1;
		return conf_feed(str, num, t, len);
	}
	sep = strpbrk(t, "=:");
	if (sep == NULL || (size_t)(sep - t) + 4 > (size_t)num) {
		conf_error(p, p->lineno, "line too long, or not \"key = value\"");
		return conf_feed(str, num, "", 0);
	}
	free(p->longval);
	p->longval = conf_value_dup(sep + 1);
	p->expect_key = 1;
	len = (size_t)(sep - t) + 1;
	memcpy(str, t, len);
	memcpy(str + len, CONF_LONG_VALUE "\n", 3);
	return str;
}

/* Reports a line that went to inih without giving a key (no '=' or ':'). */
static void
conf_check_missed(struct conf_parse *p)
{
	if (p->expect_key)
		conf_error(p, p->lineno, "expected \"key = value\"");
	p->expect_key = 0;
}

/* Reads one whole line, without its BOM and trailing blanks; NULL at the end. */
static char *
conf_getline(struct conf_parse *p)
{
	ssize_t len;
	char *line;

	errno = 0;
	if ((len = getline(&p->buf, &p->bufsz, p->fp)) == -1) {
		p->read_errno = errno;
		return NULL;
	}
	p->lineno++;
	line = p->buf;
	if (p->lineno == 1 && strncmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	len = (ssize_t)strlen(line);
	while (len > 0 && isspace((unsigned char)line[len - 1]))
		line[--len] = '\0';
	return line;
}

/*
 * inih's reader. Lines are classified here so that every error gets its line number:
 * comments and blanks go to inih as empty lines, section headers as a fixed "[s]" (we
 * track sections ourselves), continuation lines are joined here, and only key lines,
 * unindented, reach inih's parser.
 */
static char *
conf_reader(char *str, int num, void *arg)
{
	struct conf_parse *p = arg;
	char *line, *t;

	conf_check_missed(p);
	if ((line = conf_getline(p)) == NULL)
		return NULL;
	for (t = line; isspace((unsigned char)*t); t++)
		;
	if (*t == '\0' || *t == ';' || *t == '#')
		return conf_feed(str, num, "", 0);
	if (t != line && p->pend_name != NULL && *t != '[') {
		conf_continue(p, t);
		return conf_feed(str, num, "", 0);
	}
	conf_flush(p);
	if (*t == '[') {
		conf_section_line(p, t);
		return conf_feed(str, num, "[s]", 3);
	}
	return conf_feed_key(p, str, num, t);
}

/* --- Loading. --- */

static void
conf_parse_free(struct conf_parse *p)
{
	size_t i;

	for (i = 0; i < p->nseen; i++)
		free(p->seen[i].name);
	free(p->seen);
	free(p->buf);
	free(p->longval);
	free(p->pend_name);
	free(p->pend_value);
}

static struct config *
config_defaults(const char *file)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->file = xstrdup(file);
	c->listen = conf_split("127.0.0.1:8080", &c->nlisten);
	c->base_path = xstrdup("/clicksend");
	c->ntrusted_proxies = 2;
	c->trusted_proxies = xcalloc(2, sizeof(*c->trusted_proxies));
	config_parse_cidr("127.0.0.1", &c->trusted_proxies[0]);
	config_parse_cidr("::1", &c->trusted_proxies[1]);
	c->max_body_size = 64 * 1024;
	c->request_timeout_ms = 10000;
	c->shutdown_timeout_ms = 10000;
	c->store_path = xstrdup("/var/lib/clicksend-relay/events.db");
	c->synchronous_full = 1;
	c->api_url = xstrdup("https://rest.clicksend.com/v3");
	c->webhook_type = FORMAT_JSON;
	c->dedicated_number = xstrdup("*");
	c->rule_prefix = xstrdup("clicksend-relay");
	c->log_level = LOG_INFO;
	return c;
}

/* Checks that span keys: only once the whole file is read. */
static void
conf_finish(struct conf_parse *p)
{
	struct config *c = p->conf;

	if (c->api_key != NULL && c->api_key_file != NULL)
		conf_error(p, conf_key_line(p, SECT_CLICKSEND, "api_key_file"),
		    "api_key and api_key_file are mutually exclusive");
	if (c->provision != 0 && c->public_url == NULL)
		conf_error(p, conf_key_line(p, SECT_CLICKSEND, "provision"),
		    "provision: needs public_url");
}

struct config *
config_load(const char *file)
{
	struct conf_parse p;

	memset(&p, 0, sizeof(p));
	p.conf = config_defaults(file);
	if ((p.fp = fopen(file, "r")) == NULL) {
		conf_error(&p, 0, "cannot open: %s", strerror(errno));
		config_free(p.conf);
		return NULL;
	}
	ini_parse_stream(conf_reader, &p, conf_handler, &p);
	if (p.read_errno != 0)
		conf_error(&p, 0, "cannot read: %s", strerror(p.read_errno));
	fclose(p.fp);
	conf_check_missed(&p);
	conf_flush(&p);
	conf_section_end(&p);
	conf_finish(&p);
	conf_parse_free(&p);
	if (p.errors > 0) {
		config_free(p.conf);
		return NULL;
	}
	return p.conf;
}

void
config_free(struct config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->file);
	conf_strv_free(c->listen, c->nlisten);
	free(c->base_path);
	free(c->token);
	free(c->trusted_proxies);
	free(c->allow_from);
	free(c->store_path);
	free(c->username);
	free(c->api_key);
	free(c->api_key_file);
	free(c->api_url);
	free(c->public_url);
	free(c->dedicated_number);
	free(c->rule_prefix);
	for (i = 0; i < c->nrelays; i++)
		conf_relay_free(&c->relays[i]);
	free(c->relays);
	free(c);
}

const struct config_relay *
config_relay_find(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nrelays; i++) {
		if (strcmp(c->relays[i].name, name) == 0)
			return &c->relays[i];
	}
	return NULL;
}
