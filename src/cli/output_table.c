/* The table writer, for people: the first rows (at most OUTPUT_TABLE_MAX_ROWS)
 * are kept to size the columns, numbers are right-aligned, control characters
 * are shown as spaces, and when a width is given (stdout is a terminal) the
 * widest columns are narrowed until the row fits, cut cells ending in "…". */
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define TABLE_MIN_COL  4
#define TABLE_MAX_CELL 4096 /* bytes of one cell kept for display */

struct table {
	char **cells;  /* nrows * ncol, row-major; NULL = SQL NULL */
	char *numeric; /* per column: every value so far was a number */
	int *widths;
	size_t nrows;
	bool sized; /* widths fixed and header printed */
};

static char *
cell_dup(const char *v)
{
	size_t n = strnlen(v, TABLE_MAX_CELL);
	char *c = malloc(n + 1);

	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		c[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? ' ' : v[i];
	c[n] = '\0';
	return c;
}

static int
table_begin(struct output *o)
{
	struct table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	o->priv = t;
	t->widths = calloc((size_t)o->ncol, sizeof(int));
	t->numeric = calloc((size_t)o->ncol, 1);
	t->cells = calloc((size_t)OUTPUT_TABLE_MAX_ROWS * (size_t)o->ncol, sizeof(char *));
	if (t->widths == NULL || t->numeric == NULL || t->cells == NULL)
		return -ENOMEM;
	memset(t->numeric, 1, (size_t)o->ncol);
	for (int i = 0; i < o->ncol; i++)
		t->widths[i] = output_display_width(o->names[i]);
	return 0;
}

/* Prints s in exactly w columns: padded, or cut with an ellipsis. */
static void
print_cell(FILE *f, const char *s, int w, bool right)
{
	int dw = output_display_width(s);
	mbstate_t st;

	if (dw <= w) {
		if (right)
			fprintf(f, "%*s%s", w - dw, "", s);
		else
			fprintf(f, "%s%*s", s, w - dw, "");
		return;
	}
	memset(&st, 0, sizeof(st));
	int used = 0;
	size_t n = strlen(s);
	const char *p = s;

	while (n > 0) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, p, n, &st);
		int cw = 1;

		if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
			memset(&st, 0, sizeof(st));
			k = 1;
		} else if ((cw = wcwidth(wc)) < 0) {
			cw = 1;
		}
		if (used + cw > w - 1)
			break;
		fwrite(p, 1, k, f);
		used += cw;
		p += k;
		n -= k;
	}
	fputs("…", f);
	used++;
	fprintf(f, "%*s", w - used, "");
}

static void
fit_widths(struct output *o, struct table *t)
{
	int total = 2 * (o->ncol - 1);

	for (int i = 0; i < o->ncol; i++)
		total += t->widths[i];
	while (o->opts.width > 0 && total > o->opts.width) {
		int widest = 0;

		for (int i = 1; i < o->ncol; i++)
			if (t->widths[i] > t->widths[widest])
				widest = i;
		if (t->widths[widest] <= TABLE_MIN_COL)
			break;
		t->widths[widest]--;
		total--;
	}
}

static void
print_row(struct output *o, struct table *t, char *const *cells, bool header)
{
	FILE *f = o->opts.f;

	for (int i = 0; i < o->ncol; i++) {
		const char *v = cells[i] ? cells[i] : (header ? "" : "NULL");
		const char *sgr = NULL;
		bool last = i == o->ncol - 1;

		if (i)
			fputs("  ", f);
		if (o->opts.color && header)
			sgr = "\033[1m";
		else if (o->opts.color && o->opts.style && cells[i])
			sgr = o->opts.style(i, v);
		if (sgr)
			fputs(sgr, f);
		if (last && !t->numeric[i] && output_display_width(v) <= t->widths[i])
			fputs(v, f); /* no trailing blanks */
		else
			print_cell(f, v, t->widths[i], t->numeric[i]);
		if (sgr)
			fputs("\033[0m", f);
	}
	fputc('\n', f);
}

static int
flush_rows(struct output *o, struct table *t)
{
	if (!t->sized) {
		fit_widths(o, t);
		if (!o->opts.no_header)
			print_row(o, t, o->names, true);
		t->sized = true;
	}
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * (size_t)o->ncol;

		print_row(o, t, row, false);
		for (int i = 0; i < o->ncol; i++) {
			free(row[i]);
			row[i] = NULL;
		}
	}
	t->nrows = 0;
	return ferror(o->opts.f) ? -EIO : 0;
}

static int
table_row(struct output *o, const char *const *values, const char *types)
{
	struct table *t = o->priv;
	char **row;
	int rc;

	if (t->nrows == OUTPUT_TABLE_MAX_ROWS && (rc = flush_rows(o, t)) < 0)
		return rc;
	row = t->cells + t->nrows * (size_t)o->ncol;
	for (int i = 0; i < o->ncol; i++) {
		if (values[i] == NULL) {
			row[i] = NULL;
			continue;
		}
		if ((row[i] = cell_dup(values[i])) == NULL)
			return -ENOMEM;
		if (types == NULL || (types[i] != 'i' && types[i] != 'r'))
			t->numeric[i] = t->sized ? t->numeric[i] : 0;
		if (!t->sized) {
			int w = output_display_width(row[i]);

			if (w > t->widths[i])
				t->widths[i] = w;
		}
	}
	t->nrows++;
	return 0;
}

static int
table_end(struct output *o)
{
	struct table *t = o->priv;

	if (t == NULL)
		return 0; /* no columns: nothing to print */
	return flush_rows(o, t);
}

static void
table_free(struct output *o)
{
	struct table *t = o->priv;

	if (t == NULL)
		return;
	if (t->cells)
		for (size_t i = 0; i < t->nrows * (size_t)o->ncol; i++)
			free(t->cells[i]);
	free(t->cells);
	free(t->numeric);
	free(t->widths);
	free(t);
	o->priv = NULL;
}

const struct output_ops output_table_ops = {
	.begin = table_begin,
	.row = table_row,
	.end = table_end,
	.free = table_free,
};
