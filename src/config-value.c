/* SPDX-License-Identifier: ISC */
/*
 * Config values that need no parse state: numbers with units (durations, sizes), addresses
 * and networks (CIDRs, matching a peer against them), listen addresses, URLs (libcurl's
 * parser), globs, base64 and blank-separated lists. Shared with the operator tool and the
 * tests through config.h.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-internal.h"
#include "curl-loop.h"
#include "xmalloc.h"

#define CONF_DURATION_MAX (100ULL * 365 * 86400 * 1000) /* 100 years, in ms */
#define BASE64_CHARS	  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

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
conf_number_plain(const char *s, uint64_t max, uint64_t *out)
{
	return conf_number(s, conf_plain_units, nitems(conf_plain_units), max, out);
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
		if (strlen(slash + 1) > 3 || conf_number_plain(slash + 1, c->prefix, &prefix) == -1)
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

void
conf_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Splits S at blanks into a new array of words. */
char **
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

/* --- Checks of one word. --- */

/* Why a listen port is bad, or NULL. */
static const char *
conf_port_check(const char *s)
{
	uint64_t port;

	if (*s == '\0')
		return "missing port";
	if (strlen(s) > 5 || conf_number_plain(s, 65535, &port) == -1)
		return "invalid port";
	return NULL;
}

/* Why "unix:/path" is bad, or NULL. */
static const char *
conf_listen_unix_check(const char *s)
{
	if (s[5] != '/')
		return "unix socket path must be absolute";
	if (strlen(s + 5) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return "unix socket path too long";
	return NULL;
}

/* Why "[V6ADDR]:PORT" is bad, or NULL. */
static const char *
conf_listen_v6_check(const char *s)
{
	char host[INET6_ADDRSTRLEN];
	unsigned char a[16];
	const char *end;
	size_t len;

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

/*
 * Why a listen address (V4ADDR:PORT, [V6ADDR]:PORT, unix:/path) is bad, or NULL. Only
 * numeric addresses: a name would be resolved at every load (blocking a reload on DNS) and
 * could change under the daemon; inet_pton also refuses the short forms ("127.1").
 */
const char *
conf_listen_check(const char *s)
{
	char host[INET_ADDRSTRLEN];
	unsigned char a[4];
	const char *end;
	size_t len;

	if (strncmp(s, "unix:", 5) == 0)
		return conf_listen_unix_check(s);
	if (*s == '[')
		return conf_listen_v6_check(s);
	if ((end = strrchr(s, ':')) == NULL)
		return "expected HOST:PORT";
	len = (size_t)(end - s);
	if (len == 0)
		return "missing host";
	if (memchr(s, ':', len) != NULL)
		return "an IPv6 address must be in brackets, [V6ADDR]:PORT";
	if (strspn(s, "0123456789.") != len)
		return "host names are not accepted, use an address (127.0.0.1, [::1], 0.0.0.0)";
	if (len >= sizeof(host))
		return "invalid IPv4 address";
	memcpy(host, s, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, a) != 1)
		return "invalid IPv4 address";
	return conf_port_check(end + 1);
}

/*
 * Writes the canonical form of a listen word that passed conf_listen_check into BUF: the
 * address as inet_ntop spells it and the port as a number ("[0:0::1]:080" is "[::1]:80");
 * a unix socket is its path as given.
 */
void
conf_listen_canon(const char *s, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
	const char *end = strrchr(s, ':');
	int af = *s == '[' ? AF_INET6 : AF_INET, v6 = af == AF_INET6;
	unsigned char a[16];
	size_t hl;

	snprintf(buf, len, "%s", s);
	if (strncmp(s, "unix:", 5) == 0 || end == NULL ||
	    (hl = (size_t)(end - s) - (v6 ? 2 : 0)) >= sizeof(host))
		return;
	memcpy(host, s + v6, hl);
	host[hl] = '\0';
	if (inet_pton(af, host, a) == 1 && inet_ntop(af, a, text, sizeof(text)) != NULL)
		snprintf(buf, len, v6 ? "[%s]:%lu" : "%s:%lu", text, strtoul(end + 1, NULL, 10));
}

/* Why URL is not an http(s) URL libcurl can use, or NULL. Never echoed: it may hold
 * credentials. */
const char *
conf_url_check(const char *v)
{
	const char *p;
	size_t n;

	if (strncasecmp(v, "http://", 7) == 0)
		n = 7;
	else if (strncasecmp(v, "https://", 8) == 0)
		n = 8;
	else
		return "must start with http:// or https://";
	if (v[n] == '\0' || v[n] == '/')
		return "has no host";
	for (p = v; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "contains a blank or a control character";
	}
	return curl_url_problem(v);
}

/* Whether the N bytes at S name a POSIX character class, as in "[[:alpha:]]". */
static int
conf_glob_class_ok(const char *s, size_t n)
{
	static const char *const classes[] = { "alnum", "alpha", "blank", "cntrl", "digit", "graph",
		"lower", "print", "punct", "space", "upper", "xdigit" };
	size_t i;

	for (i = 0; i < nitems(classes); i++) {
		if (strlen(classes[i]) == n && strncmp(s, classes[i], n) == 0)
			return 1;
	}
	return 0;
}

/*
 * The ']' closing the bracket expression opened at P, or NULL with the reason in *why.
 * As glibc's fnmatch reads it: a leading ']' (after '!' or '^') is literal, a backslash
 * escapes, "[:class:]", "[=c=]" and "[.c.]" are units.
 */
static const char *
conf_glob_bracket(const char *p, const char **why)
{
	const char *close;
	char term[3] = { 0, ']', '\0' };

	p += (p[1] == '!' || p[1] == '^') ? 2 : 1;
	for (p += *p == ']'; *p != '\0' && *p != ']'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '[' && strchr(":=.", p[1]) != NULL && p[1] != '\0') {
			term[0] = p[1];
			if ((close = strstr(p + 2, term)) == NULL)
				break;
			if (p[1] == ':' && !conf_glob_class_ok(p + 2, (size_t)(close - p - 2))) {
				*why = "unknown character class";
				return NULL;
			}
			p = close + 1;
		}
	}
	if (*p != ']') {
		*why = "unterminated '[' (write \\[ for a literal one)";
		return NULL;
	}
	return p;
}

/*
 * Why S is not a well-formed fnmatch(3) glob, or NULL. fnmatch takes an unterminated
 * '[' or a trailing backslash literally and an unknown class as never matching, so a
 * typo would silently filter everything out: refuse those instead.
 */
const char *
conf_glob_check(const char *s)
{
	const char *why = NULL;

	for (; *s != '\0'; s++) {
		if (*s == '\\' && *++s == '\0')
			return "ends in a lone backslash";
		if (*s == '[' && (s = conf_glob_bracket(s, &why)) == NULL)
			return why;
	}
	return NULL;
}

/* Whether S is base64: the standard alphabet, with or without padding. */
int
conf_base64_ok(const char *s)
{
	size_t n = strspn(s, BASE64_CHARS), pad = strspn(s + n, "=");

	if (n == 0 || s[n + pad] != '\0' || pad > 2)
		return 0;
	if (pad > 0 && (n + pad) % 4 != 0)
		return 0;
	return n % 4 != 1;
}
