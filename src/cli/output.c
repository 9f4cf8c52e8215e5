/* The format-independent half of the result writers: construction, the column
 * header, row counting, and JSON documents in the three formats. */
#include "output.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "cleanup.h"

int
output_new(const struct output_opts *opts, struct output **ret)
{
	struct output *o;

	if (opts == NULL || opts->f == NULL)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	o->opts = *opts;
	switch (opts->format) {
	case CLI_FORMAT_TABLE:
		o->ops = &output_table_ops;
		break;
	case CLI_FORMAT_JSON:
		o->ops = &output_json_ops;
		break;
	case CLI_FORMAT_CSV:
		o->ops = &output_csv_ops;
		break;
	default:
		free(o);
		return -EINVAL;
	}
	*ret = o;
	return 0;
}

void
output_free(struct output *o)
{
	if (o == NULL)
		return;
	if (o->ops->free)
		o->ops->free(o);
	for (int i = 0; i < o->ncol; i++)
		free(o->names[i]);
	free(o->names);
	free(o);
}

int
output_columns(struct output *o, int ncol, const char *const *names)
{
	if (o->names != NULL || ncol <= 0 || ncol > OUTPUT_MAX_COLUMNS)
		return -EINVAL;
	o->names = calloc((size_t)ncol, sizeof(char *));
	if (o->names == NULL)
		return -ENOMEM;
	o->ncol = ncol;
	for (int i = 0; i < ncol; i++) {
		o->names[i] = strdup(names[i] ? names[i] : "");
		if (o->names[i] == NULL)
			return -ENOMEM;
	}
	return o->ops->begin(o);
}

int
output_row(struct output *o, int ncol, const char *const *values, const char *types)
{
	int rc;

	if (o->names == NULL || ncol != o->ncol)
		return -EINVAL;
	rc = o->ops->row(o, values, types);
	if (rc == 0)
		o->count++;
	return rc;
}

int
output_end(struct output *o)
{
	int rc = o->ops->end(o);

	if (fflush(o->opts.f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}

size_t
output_count(const struct output *o)
{
	return o->count;
}

int
output_display_width(const char *s)
{
	mbstate_t st;
	int w = 0;
	size_t n = strlen(s);

	memset(&st, 0, sizeof(st));
	while (n > 0) {
		wchar_t wc;
		size_t k = mbrtowc(&wc, s, n, &st);
		int cw;

		if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
			/* Not valid in this locale: count bytes, one column each. */
			memset(&st, 0, sizeof(st));
			k = 1;
			cw = 1;
		} else {
			cw = wcwidth(wc);
			if (cw < 0)
				cw = 1;
		}
		w += cw;
		s += k;
		n -= k;
	}
	return w;
}

/* --- documents ----------------------------------------------------------- */

static void
doc_scalar_text(const json_t *v, char *buf, size_t n)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, n, "%s", json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, n, "%.6g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, n, "true");
		break;
	case JSON_FALSE:
		snprintf(buf, n, "false");
		break;
	case JSON_NULL:
		snprintf(buf, n, "-");
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

static bool
doc_is_container(const json_t *v)
{
	return json_is_object(v) || json_is_array(v);
}

static void doc_table(FILE *f, const json_t *v, int depth);

/* One member "key: value" (or "key:" and the nested block) at depth; lead
 * replaces the indentation of the first line ("- " for an array item). */
static void
doc_member(FILE *f, const char *key, const json_t *val, int depth, const char *lead)
{
	char buf[1024];

	if (lead)
		fprintf(f, "%*s%s", (depth - 1) * 2, "", lead);
	else
		fprintf(f, "%*s", depth * 2, "");
	if (doc_is_container(val)) {
		fprintf(f, "%s:\n", key);
		doc_table(f, val, depth + 1);
	} else {
		doc_scalar_text(val, buf, sizeof(buf));
		fprintf(f, "%s: %s\n", key, buf);
	}
}

/* Prints a document as indented "key: value" lines, YAML-like: array items
 * start with "- ", an object item's first member on the same line. */
static void
doc_table(FILE *f, const json_t *v, int depth)
{
	char buf[1024];
	const char *key;
	const json_t *val;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, val) doc_member(f, key, val, depth, NULL);
		return;
	}
	if (!json_is_array(v)) {
		doc_scalar_text(v, buf, sizeof(buf));
		fprintf(f, "%*s%s\n", depth * 2, "", buf);
		return;
	}
	if (json_array_size(v) == 0)
		fprintf(f, "%*s(none)\n", depth * 2, "");
	json_array_foreach((json_t *)v, i, val)
	{
		if (json_is_object(val) && json_object_size(val) > 0) {
			const char *lead = "- ";
			json_t *member;

			json_object_foreach((json_t *)val, key, member)
			{
				doc_member(f, key, member, depth + 1, lead);
				lead = NULL;
			}
		} else if (json_is_array(val)) {
			fprintf(f, "%*s-\n", depth * 2, "");
			doc_table(f, val, depth + 1);
		} else {
			doc_scalar_text(val, buf, sizeof(buf));
			fprintf(f, "%*s- %s\n", depth * 2, "", buf);
		}
	}
}

static void
doc_csv(FILE *f, const json_t *v, const char *prefix)
{
	char key[512], buf[1024];

	if (json_is_object(v)) {
		const char *k;
		const json_t *val;

		json_object_foreach((json_t *)v, k, val)
		{
			if (snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k) >=
			    (int)sizeof(key))
				continue;
			doc_csv(f, val, key);
		}
	} else if (json_is_array(v)) {
		size_t i;
		const json_t *val;

		json_array_foreach((json_t *)v, i, val)
		{
			if (snprintf(key, sizeof(key), "%s[%zu]", prefix, i) >= (int)sizeof(key))
				continue;
			doc_csv(f, val, key);
		}
	} else {
		doc_scalar_text(v, buf, sizeof(buf));
		if (json_is_null(v))
			buf[0] = '\0';
		output_csv_write_field(f, prefix);
		fputc(',', f);
		output_csv_write_field(f, buf);
		fputs("\r\n", f);
	}
}

int
output_document(enum cli_format format, FILE *f, const struct json_t *doc)
{
	switch (format) {
	case CLI_FORMAT_JSON:
		if (json_dumpf(doc, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
			return -EIO;
		fputc('\n', f);
		break;
	case CLI_FORMAT_CSV:
		fputs("key,value\r\n", f);
		doc_csv(f, doc, "");
		break;
	case CLI_FORMAT_TABLE:
	default:
		doc_table(f, doc, 0);
		break;
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
