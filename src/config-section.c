/* SPDX-License-Identifier: ISC */
/*
 * Config sections: "[name]" headers (unknown and repeated ones reported), each key applied
 * through its section's table, and the life of a [relay:NAME]: defaults, the checks that
 * span its keys, and whether it is kept.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"
#include "xmalloc.h"

#define RELAY_NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"

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

/* --- Keys. --- */

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
int
conf_key_line(struct conf_parse *p, enum conf_section_id id, const char *key)
{
	int i = conf_key_index(&conf_sections[id], key);

	return i == -1 ? 0 : p->lines[id][i];
}

/* The index of key NAME in the current section, or -1 once told why it cannot be set. */
static int
conf_apply_index(struct conf_parse *p, const char *name)
{
	const struct conf_section *s = p->sect;
	int i;

	if (s == NULL) {
		conf_error(p, p->pend_line, "key \"%s\" outside of any section", name);
		return -1;
	}
	if ((i = conf_key_index(s, name)) == -1) {
		conf_error(p, p->pend_line, "unknown key \"%s\" in [%s%s%s]", name, s->name,
		    p->relay != NULL ? ":" : "", p->relay != NULL ? p->relay->name : "");
		return -1;
	}
	return i;
}

/* Checks and stores one key of the current section. */
void
conf_apply(struct conf_parse *p, const char *name, const char *value)
{
	const struct conf_section *s = p->sect;
	const struct conf_key *k;
	void *base;
	char msg[2048];
	int i, *first;

	if (p->skip || (i = conf_apply_index(p, name)) == -1)
		return;
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
	if (k->parse(k, value, base, msg, sizeof(msg)) != NULL) {
		char *line, *next;

		for (line = msg; line != NULL; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			conf_error(p, p->pend_line, "%s", line);
		}
		p->failed[s - conf_sections][i] = 1;
	}
}

/* --- Relays. --- */

void
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

/* --- Section headers. --- */

void
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
void
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
