/* SPDX-License-Identifier: ISC */
/*
 * The ClickSend API key, from the systemd credential, api_key_file or api_key, in that
 * order. Files are read bounded, first line trimmed; errors name the source, never the key,
 * and buffers that held it are wiped.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clicksend.h"
#include "config.h"
#include "xmalloc.h"

/* The first non-blank line of BUF, trimmed; NULL when BUF is only whitespace. */
static char *
clicksend_first_line(const char *buf, size_t len)
{
	size_t start = 0, end;

	len = strnlen(buf, len);
	while (start < len && isspace((unsigned char)buf[start]))
		start++;
	if (start == len)
		return NULL;
	for (end = start; end < len && buf[end] != '\n' && buf[end] != '\r'; end++)
		;
	while (end > start && isspace((unsigned char)buf[end - 1]))
		end--;
	return xstrndup(buf + start, end - start);
}

/*
 * Reads a small file whole. 0 with *out (NUL-terminated), 1 when it does not exist (only
 * if MISSING_OK), -1 with a reason naming WHAT (never the contents).
 */
static int
clicksend_read_small(const char *path, const char *what, int missing_ok, char **out, size_t *len,
    char *err, size_t errlen)
{
	char *buf = xmalloc(CLICKSEND_KEY_MAX + 2);
	size_t n = 0;
	ssize_t r = 0;
	int fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		free(buf);
		if (missing_ok && errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: cannot open: %s", what, strerror(errno));
		return -1;
	}
	while (n <= CLICKSEND_KEY_MAX && (r = read(fd, buf + n, CLICKSEND_KEY_MAX + 1 - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: cannot read: %s", what, strerror(errno));
			break;
		}
		n += (size_t)r;
	}
	close(fd);
	if (n > CLICKSEND_KEY_MAX)
		snprintf(err, errlen, "%s: too large (over %d bytes)", what, CLICKSEND_KEY_MAX);
	if (n > CLICKSEND_KEY_MAX || r == -1) {
		explicit_bzero(buf, CLICKSEND_KEY_MAX + 2);
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* A key from a file: 0 with *key, 1 when the file is missing or blank (if allowed), -1. */
static int
clicksend_key_from_file(
    const char *path, const char *what, int optional, char **key, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc;

	if ((rc = clicksend_read_small(path, what, optional, &buf, &len, err, errlen)) != 0)
		return rc;
	*key = clicksend_first_line(buf, len);
	explicit_bzero(buf, len);
	free(buf);
	if (*key != NULL)
		return 0;
	if (optional)
		return 1;
	snprintf(err, errlen, "%s: holds no key", what);
	return -1;
}

int
clicksend_load_key(const struct config *cfg, char **key, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char *path, *what;
	int rc;

	*key = NULL;
	if (dir != NULL && *dir != '\0') {
		xasprintf(&path, "%s/%s", dir, CLICKSEND_CREDENTIAL);
		rc = clicksend_key_from_file(
		    path, "credential " CLICKSEND_CREDENTIAL, 1, key, err, errlen);
		free(path);
		if (rc != 1)
			return rc;
	}
	if (cfg->api_key_file != NULL && *cfg->api_key_file != '\0') {
		xasprintf(&what, "api_key_file %s", cfg->api_key_file);
		rc = clicksend_key_from_file(cfg->api_key_file, what, 0, key, err, errlen);
		free(what);
		return rc;
	}
	if (cfg->api_key != NULL &&
	    (*key = clicksend_first_line(cfg->api_key, strlen(cfg->api_key))) != NULL)
		return 0;
	snprintf(err, errlen,
	    "no API key: set api_key or api_key_file, or the systemd "
	    "credential " CLICKSEND_CREDENTIAL);
	return 1;
}
