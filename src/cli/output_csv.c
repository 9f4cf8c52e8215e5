/* The csv writer: RFC 4180 (CRLF records, a header row, fields quoted when
 * they hold a comma, a double quote, CR or LF, quotes doubled inside). */
#include "output.h"

#include <errno.h>
#include <string.h>

int
output_csv_write_field(FILE *f, const char *s)
{
	if (s == NULL)
		return 0;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
	} else {
		fputc('"', f);
		for (const char *p = s; *p; p++) {
			if (*p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fputc('"', f);
	}
	return ferror(f) ? -EIO : 0;
}

static int
csv_record(struct output *o, const char *const *fields)
{
	for (int i = 0; i < o->ncol; i++) {
		if (i)
			fputc(',', o->opts.f);
		output_csv_write_field(o->opts.f, fields[i]);
	}
	fputs("\r\n", o->opts.f);
	return ferror(o->opts.f) ? -EIO : 0;
}

static int
csv_begin(struct output *o)
{
	if (o->opts.no_header)
		return 0;
	return csv_record(o, (const char *const *)o->names);
}

static int
csv_row(struct output *o, const char *const *values, const char *types)
{
	(void)types;
	return csv_record(o, values);
}

static int
csv_end(struct output *o)
{
	return ferror(o->opts.f) ? -EIO : 0;
}

const struct output_ops output_csv_ops = {
	.begin = csv_begin,
	.row = csv_row,
	.end = csv_end,
	.free = NULL,
};
