/* The json writer: one document, an array of objects, streamed row by row so
 * memory stays flat however many rows a query returns. */
#include "output.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int
output_json_write_string(FILE *f, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20) {
				fputs("\\u00", f);
				fputc(hex[*p >> 4], f);
				fputc(hex[*p & 0xf], f);
			} else {
				fputc(*p, f);
			}
		}
	}
	fputc('"', f);
	return ferror(f) ? -EIO : 0;
}

/* SQLite prints reals like "1.0e+20" or "Inf"; JSON takes only finite
 * numbers in its own grammar, so anything else becomes a string. */
static bool
json_number_ok(const char *v)
{
	char *end;
	double d;

	if (v == NULL || *v == '\0')
		return false;
	d = strtod(v, &end);
	return *end == '\0' && isfinite(d) && v[0] != '+' && v[0] != '.' &&
	       !(v[0] == '-' && v[1] == '.');
}

/* A value that is not UTF-8 (a blob, say) cannot be a JSON string as it is:
 * its bad bytes become '?', as everywhere else in DaemonEye. */
static void
json_write_sanitized(FILE *f, const char *v)
{
	char *clean = utf8_sanitize_dup(v, strlen(v));

	output_json_write_string(f, clean ? clean : "");
	free(clean);
}

static int
json_begin(struct output *o)
{
	fputc('[', o->opts.f);
	return 0;
}

static int
json_row(struct output *o, const char *const *values, const char *types)
{
	FILE *f = o->opts.f;

	fputs(o->count ? ",\n{" : "\n{", f);
	for (int i = 0; i < o->ncol; i++) {
		const char *v = values[i];
		char t = types ? types[i] : 't';

		if (i)
			fputc(',', f);
		output_json_write_string(f, o->names[i]);
		fputc(':', f);
		if (v == NULL || t == 'n')
			fputs("null", f);
		else if ((t == 'i' || t == 'r') && json_number_ok(v))
			fputs(v, f);
		else if (utf8_is_valid(v, strlen(v)))
			output_json_write_string(f, v);
		else
			json_write_sanitized(f, v);
	}
	fputc('}', f);
	return ferror(f) ? -EIO : 0;
}

static int
json_end(struct output *o)
{
	if (o->names == NULL)
		fputc('[', o->opts.f);
	fputs(o->count ? "\n]\n" : "]\n", o->opts.f);
	return ferror(o->opts.f) ? -EIO : 0;
}

const struct output_ops output_json_ops = {
	.begin = json_begin,
	.row = json_row,
	.end = json_end,
	.free = NULL,
};
