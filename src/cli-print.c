/* SPDX-License-Identifier: ISC */
/*
 * The operator tool's output: text tables whose cells are made safe for a terminal, one
 * JSON document per line, the end of a listing (and its note when --limit cut it), and
 * "clicksend-relay: message" on stderr.
 */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "xmalloc.h"

/* "clicksend-relay: message" on stderr. */
void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("clicksend-relay: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Bytes of the UTF-8 sequence at s, or 0 when it is not one (or is a C1 control). */
static size_t
cli_utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return (s[0] == 0xc2 && s[1] < 0xa0) ? 0 : n;
}

/*
 * A copy of S fit for a terminal cell: control characters (stored bodies come from
 * strangers) and bad UTF-8 become '?', line breaks and tabs a space, and at most MAX
 * characters are kept, "..." marking the cut. Its width in characters goes to *width.
 */
static char *
cli_cell(const char *s, size_t max, size_t *width)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "-");
	char *out = xmalloc(strlen((const char *)p) + 4), *o = out;
	size_t n, w = 0;

	for (; *p != '\0'; p += n, w++) {
		if (max > 0 && w == max) {
			memcpy(o, "...", 3);
			o += 3;
			w += 3;
			break;
		}
		n = cli_utf8_len(p);
		if (n > 1) {
			memcpy(o, p, n);
			o += n;
		} else if (n == 1 && *p >= 0x20 && *p != 0x7f)
			*o++ = (char)*p;
		else
			*o++ = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : '?';
		n = n ? n : 1;
	}
	*o = '\0';
	*width = w;
	return out;
}

void
cli_table_add(struct cli_table *t, const char **row)
{
	size_t i, k;

	t->cells = xreallocarray(t->cells, (t->nrows + 1) * t->ncols, sizeof(*t->cells));
	t->cell_width =
	    xreallocarray(t->cell_width, (t->nrows + 1) * t->ncols, sizeof(*t->cell_width));
	for (i = 0; i < t->ncols; i++) {
		k = t->nrows * t->ncols + i;
		t->cells[k] = cli_cell(row[i], t->max[i], &t->cell_width[k]);
		if (t->cell_width[k] > t->width[i])
			t->width[i] = t->cell_width[k];
	}
	t->nrows++;
}

static void
cli_table_line(const struct cli_table *t, char *const *cells, const size_t *widths)
{
	size_t i;

	for (i = 0; i < t->ncols; i++) {
		fputs(cells[i], stdout);
		if (i + 1 == t->ncols)
			break;
		printf("%*s", (int)(t->width[i] - widths[i] + 2), "");
	}
	putchar('\n');
}

/* Prints the header and every row, and frees the rows. */
void
cli_table_print(struct cli_table *t)
{
	size_t i, hw[CLI_TABLE_MAX_COLS];

	for (i = 0; i < t->ncols; i++) {
		hw[i] = strlen(t->head[i]);
		if (hw[i] > t->width[i])
			t->width[i] = hw[i];
	}
	cli_table_line(t, (char *const *)t->head, hw);
	for (i = 0; i < t->nrows; i++)
		cli_table_line(t, t->cells + i * t->ncols, t->cell_width + i * t->ncols);
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->cell_width);
	t->cells = NULL;
	t->cell_width = NULL;
	t->nrows = 0;
}

/* Prints a finished JSON document as one line; 0, or EX_SOFTWARE when it failed. */
int
cli_json_line(struct json_gen *g)
{
	size_t len;
	char *out;

	if ((out = json_gen_finish(g, &len)) == NULL)
		return EX_SOFTWARE;
	fwrite(out, 1, len, stdout);
	putchar('\n');
	free(out);
	return 0;
}

/* Counts rows against the limit: 1 when this one is past it (there are more). */
int
cli_list_more(struct cli_list *l)
{
	if (l->limit > 0 && ++l->rows > l->limit) {
		l->more = 1;
		return 1;
	}
	return 0;
}

/* The end of a listing: the table, a note when the limit cut it, the exit status. */
int
cli_list_begin(struct cli *c, int argc, char **argv, struct cli_list *l, long long *limit)
{
	int rc;

	if (optind != argc)
		return cli_bad_usage(c, "unexpected argument", argv[optind]);
	if ((rc = cli_open(c)) != EX_OK)
		return rc;
	l->limit = *limit;
	*limit += *limit < LLONG_MAX;
	return EX_OK;
}

int
cli_list_end(struct cli *c, struct cli_list *l, int rc, const char *what)
{
	if (rc == -1)
		return cli_store_error(c, what);
	if (rc > 1)
		return rc;
	if (!l->json) {
		cli_table_print(&l->table);
		if (l->more)
			cli_warn("more %s than shown; use --limit", what);
	}
	return EX_OK;
}
