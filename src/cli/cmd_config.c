/* `config check [FILE]`: loads a configuration exactly as the daemons do
 * (config_load + config_validate), prints a summary and exits 0, or exits 2
 * with "file:line: reason". Without FILE it checks what the CLI itself loaded
 * (--config, or the standard files and the environment). */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "util.h"

int
cmd_config(struct cli_ctx *ctx, int argc, char **argv)
{
	struct de_config cfg;
	struct errbuf err = { { 0 } };
	const char *path;
	int rc;

	if (argc < 2 || !streq(argv[1], "check"))
		return cli_usage_error("config: usage: config check [FILE]");
	if (argc > 3)
		return cli_usage_error("config check: takes at most one FILE");
	path = argc == 3 ? argv[2] : ctx->config_path;
	memset(&cfg, 0, sizeof(cfg));
	rc = config_load(path, &cfg, &err);
	if (rc == 0)
		rc = config_validate(&cfg, &err);
	if (rc < 0) {
		config_free(&cfg);
		if (rc == -EINVAL)
			return cli_usage_error("%s",
			                       err.msg[0] ? err.msg : "invalid configuration");
		return cli_error("%s: %s", path ? path : "configuration",
		                 err.msg[0] ? err.msg : strerror(-rc));
	}
	fprintf(ctx->out, "configuration OK: %s\n",
	        cfg.source_path ? cfg.source_path : "(embedded defaults)");
	config_print_summary(&cfg, ctx->out);
	config_free(&cfg);
	return CLI_EXIT_OK;
}
