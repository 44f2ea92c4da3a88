/* SPDX-License-Identifier: ISC */
/*
 * Shared by the config files: config.c (the line reader in front of inih, loading),
 * config-section.c (section headers, relays, applying a key), config-keys.c (the key tables
 * and their parsers) and config-value.c (numbers, durations, sizes, addresses, lists).
 * Nothing outside config*.c includes this.
 */
#ifndef CONFIG_INTERNAL_H
#define CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "webhook.h"

#ifndef nitems
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define KEY_OPTIONAL 0x01 /* an empty value means unset */
#define KEY_REPEAT   0x02 /* may be given more than once */
#define KEY_NONZERO  0x04 /* a duration or size must be more than 0 */
#define KEY_STAR     0x08 /* "*" means every kind */
#define KEY_TRIM     0x10 /* strip trailing slashes from a URL */
#define KEY_BASE     0x20 /* a base URL: no query string or fragment */

#define CONF_KEYS_MAX 24
#define KINDS_ALL     ((1u << KIND_COUNT) - 1)

enum conf_section_id {
	SECT_SERVER,
	SECT_STORE,
	SECT_CLICKSEND,
	SECT_LOG,
	SECT_RELAY,
	SECT_COUNT
};

struct conf_key;
/* Checks VALUE for KEY and stores it in BASE (struct config or config_relay): NULL, or
 * why not, written into MSG (MSGLEN bytes) and returned, with nothing stored. A list
 * value may give several reasons, one per line. */
typedef const char *conf_parser(
    const struct conf_key *, const char *value, void *base, char *msg, size_t msglen);

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

/* config.c */
/* Reports "FILE:LINE: message" (just "FILE: message" for line 0) and counts it. */
void conf_error(struct conf_parse *, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config-section.c */
/* A "[name]" line, T trimmed: ends the section before and starts the new one. */
void conf_section_line(struct conf_parse *, char *t);
void conf_section_end(struct conf_parse *);
/* The line where KEY of section ID was set, 0 when it was not. */
int conf_key_line(struct conf_parse *, enum conf_section_id, const char *key);
/* Checks and stores one key of the current section. */
void conf_apply(struct conf_parse *, const char *name, const char *value);
void conf_relay_free(struct config_relay *);

/* config-keys.c */
extern const struct conf_section conf_sections[SECT_COUNT];

/* config-value.c */
/* A plain decimal number (no unit) of at most MAX: 0, or -1 when S is not one. */
int conf_number_plain(const char *s, uint64_t max, uint64_t *out);
/* Why a listen address or an http(s) URL is bad, or NULL. The URL is never echoed. */
const char *conf_listen_check(const char *);
const char *conf_url_check(const char *);
/* A checked listen word in one spelling per address, to find one given twice; BUF holds
 * CONF_LISTEN_CANON_MAX bytes. */
#define CONF_LISTEN_CANON_MAX 128
void conf_listen_canon(const char *, char *buf, size_t len);
/* Why S is not a well-formed fnmatch(3) pattern, or NULL. */
const char *conf_glob_check(const char *);
/* Whether S is base64: the standard alphabet, with or without padding. */
int conf_base64_ok(const char *);
void conf_strv_free(char **, size_t);
/* Splits S at blanks into a new array of words. */
char **conf_split(const char *, size_t *n);

#endif
