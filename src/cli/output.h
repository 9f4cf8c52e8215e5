/* Result writers of daemoneye-cli: one interface, three formats.
 *
 *   table  for people: aligned columns, fitted to the terminal width when
 *          stdout is a terminal, optional colour per cell (output_table.c)
 *   json   one JSON document: an array of objects, numbers typed from SQLite's
 *          column types, NULL as null (output_json.c)
 *   csv    RFC 4180: a header row, CRLF line ends, fields quoted when they hold
 *          a comma, a quote, CR or LF (output_csv.c)
 *
 * A writer is fed a header (output_columns), rows (output_row) and closed with
 * output_end(). Rows may be streamed: json and csv write as they go; the table
 * writer keeps at most OUTPUT_TABLE_MAX_ROWS rows to size the columns, then
 * prints them and continues with the widths it has.
 *
 * Documents (health, stats, alerts show, config check) go through
 * output_document(): pretty JSON, an indented key/value listing for the table
 * format, or "key,value" rows with dotted keys for csv. */
#ifndef DE_CLI_OUTPUT_H
#define DE_CLI_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "cli.h"

struct json_t;
struct output;

#define OUTPUT_TABLE_MAX_ROWS 10000
#define OUTPUT_MAX_COLUMNS    256

/* Colour of one table cell: returns an ANSI SGR sequence ("\033[31m") or NULL.
 * Only called when colour is on. */
typedef const char *(*output_style_fn)(int col, const char *value);

struct output_opts {
	enum cli_format format;
	FILE *f;
	int width;             /* fit tables to this many columns; 0 = no limit */
	bool color;            /* allow output_style_fn */
	output_style_fn style; /* NULL for none */
	bool no_header;        /* omit the header row (table, csv) */
};

/* Creates a writer. On success *ret owns it (free with output_free()).
 * Returns -ENOMEM or -EINVAL (bad format). */
int output_new(const struct output_opts *opts, struct output **ret);
/* Frees the writer without printing what is buffered; accepts NULL. */
void output_free(struct output *o);
static inline void
output_freep(struct output **o)
{
	output_free(*o);
}

/* Sets the column names (copied). Must come first, once. Returns 0, -EINVAL
 * (more than OUTPUT_MAX_COLUMNS) or -ENOMEM. */
int output_columns(struct output *o, int ncol, const char *const *names);
/* One row: values as text (NULL for SQL NULL) and types as store_query gives
 * them ('i' integer, 'r' real, 't' text, 'b' blob, 'n' null; types may be NULL
 * for all text). Returns 0, -EIO on a write error or -ENOMEM. */
int output_row(struct output *o, int ncol, const char *const *values, const char *types);
/* Prints what is buffered and the closing of the document. Returns 0 or -EIO. */
int output_end(struct output *o);
/* Rows written so far. */
size_t output_count(const struct output *o);

/* Writes a JSON document in the given format to f. Returns 0 or -EIO. */
int output_document(enum cli_format format, FILE *f, const struct json_t *doc);

/* Internal: the per-format writers behind output_new (one file each). */
struct output_ops {
	int (*begin)(struct output *o);
	int (*row)(struct output *o, const char *const *values, const char *types);
	int (*end)(struct output *o);
	void (*free)(struct output *o);
};

struct output {
	const struct output_ops *ops;
	struct output_opts opts;
	int ncol;
	char **names;
	size_t count;
	void *priv; /* the format's own state */
};

extern const struct output_ops output_table_ops;
extern const struct output_ops output_json_ops;
extern const struct output_ops output_csv_ops;

/* Helpers shared by the writers. */
int output_json_write_string(FILE *f, const char *s);
int output_csv_write_field(FILE *f, const char *s);
/* Display width of a UTF-8 string (code points; wide characters count 2). */
int output_display_width(const char *s);

#endif
