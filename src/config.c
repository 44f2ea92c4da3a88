/* SPDX-License-Identifier: ISC */
/*
 * The config file. libinih splits key lines into names and values; our line reader in front
 * of it numbers the lines, follows sections and continuation lines, and hands each complete
 * key to its section (config-section.c), whose key table (config-keys.c) says how the value
 * is checked and where it is stored. Every error is reported as FILE:LINE: message and
 * counted; one bad key never stops the rest being checked. The only file that uses inih.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config-internal.h"
#include "xmalloc.h"

#define CONF_LONG_VALUE "\x01" /* stands for a value too long for inih's buffer */

static void (*config_error_hook)(const char *, void *);
static void *config_error_arg;

void
config_set_error_hook(void (*hook)(const char *line, void *arg), void *arg)
{
	config_error_hook = hook;
	config_error_arg = arg;
}

/* Reports "FILE:LINE: message" (just "FILE: message" for line 0) and counts it. */
void
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

/* The host name, lower case, as a node name ([a-z0-9_.-]); "node" when there is none. */
static char *
config_default_node(void)
{
	char host[256] = "";
	size_t i, n = 0;

	if (gethostname(host, sizeof(host) - 1) == -1)
		host[0] = '\0';
	for (i = 0; host[i] != '\0' && n < 63; i++) {
		char ch = (char)tolower((unsigned char)host[i]);
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_.-", ch) != NULL)
			host[n++] = ch;
	}
	host[n] = '\0';
	return xstrdup(n > 0 ? host : "node");
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
	c->node = config_default_node();
	c->synchronous_full = 1;
	c->api_url = xstrdup("https://rest.clicksend.com/v3");
	c->webhook_type = FORMAT_JSON;
	c->dedicated_number = xstrdup("*");
	c->rule_prefix = xstrdup("clicksend-relay");
	c->log_level = LOG_INFO;
	return c;
}

/* A kind in provision needs an automation endpoint in its row of webhook_kinds. */
static void
conf_check_provisionable(struct conf_parse *p)
{
	int i;

	for (i = 0; i < KIND_COUNT; i++) {
		if ((p->conf->provision & (1u << i)) && webhook_kinds[i].rule.rules_path == NULL)
			conf_error(p, conf_key_line(p, SECT_CLICKSEND, "provision"),
			    "provision: %s has no ClickSend automation rule to provision",
			    webhook_kinds[i].name);
	}
}

/* Checks that span keys: only once the whole file is read. */
static void
conf_finish(struct conf_parse *p)
{
	struct config *c = p->conf;

	conf_check_provisionable(p);
	if (c->store_url != NULL && conf_key_line(p, SECT_STORE, "path") != 0)
		conf_error(p, conf_key_line(p, SECT_STORE, "url"),
		    "url: the store is either a file (path) or PostgreSQL (url), not both");
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
	free(c->store_url);
	free(c->node);
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
