/* `stats`: rows per table, database size, oldest and newest record and the
 * recent event rate, as the store reports them (store_stats_json). */
#include <jansson.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "store.h"

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
	rc = output_document(ctx->format, ctx->out, doc);
	json_decref(doc);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}
