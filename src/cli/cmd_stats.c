/* `stats`: rows per table, database size, oldest and newest record and the
 * recent event rate, as the store reports them (store_stats_json). */
#include <jansson.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

/* Epoch-millisecond values (keys ending in "_ms" holding a time after 2001)
 * read better as "2026-11-25T17:00:00.123Z (3h ago)" in the table. */
static void
humanize_times(json_t *doc)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(doc, tmp, key, v)
	{
		size_t n = strlen(key);
		json_int_t ms = json_integer_value(v);
		char when[32], ago[32], text[80];

		if (json_is_object(v)) {
			humanize_times(v);
			continue;
		}
		if (n < 3 || !streq(key + n - 3, "_ms") || !json_is_integer(v) ||
		    ms < 1000000000000LL ||
		    time_format_rfc3339_ms((uint64_t)ms, when, sizeof(when)) < 0)
			continue;
		cli_relative_time((uint64_t)ms, time_now_ms(), ago, sizeof(ago));
		snprintf(text, sizeof(text), "%s (%s)", when, ago);
		json_object_set_new(doc, key, json_string(text));
	}
}

int
cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(store_closep) struct store *st = NULL;
	json_t *doc;
	int rc;

	(void)argv;
	if (argc > 1)
		return cli_usage_error("stats: takes no arguments");
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	if ((doc = store_stats_json(st)) == NULL)
		return cli_error("cannot read statistics from %s", ctx->store_path);
	if (ctx->format == CLI_FORMAT_TABLE)
		humanize_times(doc);
	rc = output_document(ctx->format, ctx->out, doc);
	json_decref(doc);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}
