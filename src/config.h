/* SPDX-License-Identifier: ISC */
/* The parsed configuration: one struct built from the INI file before anything starts. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_RELAY_NAME_MAX 64

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct config_relay {
	char *name; /* [a-z0-9_-]+ */
	char *url;  /* exactly one of url / exec */
	char *exec; /* absolute path */
	char **args;
	size_t nargs;
	unsigned kinds; /* bit (1u << webhook_kind_id); all bits for "*" */
	char *match_from, *match_to, *match_body; /* NULL when unset */
	char *secret;				  /* "whsec_<base64>" or NULL */
	char **headers;				  /* "Name: value" */
	size_t nheaders;
	uint64_t timeout_ms;  /* default 10 s (exec 30 s) */
	unsigned concurrency; /* default 4 (exec 1) */
	uint64_t *retry_ms;   /* delay before each retry */
	size_t nretry;
	unsigned rate;		 /* attempts started per rate_window_ms; 0: no limit */
	uint64_t rate_window_ms; /* 1000 (N/s) or 60000 (N/m) */
	int ordered;		 /* one delivery at a time per conversation */
	uint64_t pause_after_ms; /* pause when every attempt failed this long; 0 never */
};

struct config {
	char *file; /* the path it was read from */

	/* [server] */
	char **listen; /* "HOST:PORT", "[V6]:PORT", "unix:/path" */
	size_t nlisten;
	char *base_path; /* "/clicksend"; "" for the root; no trailing slash */
	char *token;	 /* NULL when unset */
	struct cidr *trusted_proxies;
	size_t ntrusted_proxies;
	struct cidr *allow_from; /* none: everyone allowed */
	size_t nallow_from;
	size_t max_body_size;
	uint64_t request_timeout_ms;
	uint64_t shutdown_timeout_ms;

	/* [store] */
	char *store_path;
	char *store_url;       /* PostgreSQL (libpq URI or key=value); NULL: SQLite */
	char *node;	       /* this daemon's name in a shared store */
	int synchronous_full;  /* 1 full, 0 normal */
	uint64_t retention_ms; /* 0 keep */

	/* [clicksend] */
	char *username;
	char *api_key;
	char *api_key_file;
	char *api_url;
	char *public_url;
	unsigned provision; /* bit (1u << webhook_kind_id) */
	int webhook_type;   /* enum webhook_format */
	char *dedicated_number;
	char *rule_prefix;
	int test_receipts;

	/* [log] */
	int log_level; /* syslog priority */

	struct config_relay *relays;
	size_t nrelays;
};

/*
 * Read and validate FILE. Every problem is reported on stderr (or through the
 * error hook) as "FILE:LINE: message"; returns NULL when there was any.
 */
struct config *config_load(const char *file);
void config_free(struct config *);
void config_set_error_hook(void (*hook)(const char *line, void *arg), void *arg);

/* Helpers shared with the operator tool and tests. 0 ok, -1 bad. */
int config_parse_duration(const char *, uint64_t *ms);
int config_parse_size(const char *, size_t *);
int config_parse_cidr(const char *, struct cidr *);
int config_cidr_match(const struct cidr *, size_t n, const struct sockaddr *);
int config_cidr_match_text(const struct cidr *, size_t n, const char *addr);
const struct config_relay *config_relay_find(const struct config *, const char *name);

#endif
