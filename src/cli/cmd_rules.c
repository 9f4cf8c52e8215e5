/* `rules list | validate FILE... | test FILE`. */
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "store.h"
#include "util.h"

static int
rules_list(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(store_closep) struct store *st = NULL;
	int rc;

	(void)argv;
	if (argc > 2)
		return cli_usage_error("rules list: takes no arguments");
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	return cli_print_query(ctx, st, "SELECT * FROM detection_rules ORDER BY 1", ctx->format);
}

static const struct {
	const char *name;
	cli_handler_fn run;
} rules_subcommands[] = {
	{ "list", rules_list },
};

int
cmd_rules(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < ARRAY_SIZE(rules_subcommands); i++)
			if (streq(rules_subcommands[i].name, argv[1]))
				return rules_subcommands[i].run(ctx, argc, argv);
	return cli_usage_error("rules: usage: rules list | validate FILE... | test FILE");
}
