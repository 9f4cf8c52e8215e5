/* `rules list | validate FILE... | test FILE`.
 *
 *   list       the rules the agent loaded (the store's detection_rules); when
 *              there is no store or it holds none, the rule files of the
 *              configured rules_dirs, as the agent would load them
 *   validate   parses and validates each file (or each *.yaml of a directory)
 *              exactly as the agent does (rule_load: YAML, sandboxed SQL, one
 *              run over hostile sample rows); exit 2 naming each bad file
 *   test       validates one rule, then runs its SQL over the current store
 *              (the processes view: every process instance recorded) and
 *              prints the rows it would alert on */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "rule.h"
#include "store.h"
#include "util.h"

#define RULES_MAX_FILES 4096

static int
print_rule_set(struct cli_ctx *ctx, const struct rule_set *set)
{
	static const char *const names[] = {
		"id", "name", "severity", "category", "enabled", "path"
	};
	struct output_opts oo = { .format = ctx->format, .f = ctx->out, .width = ctx->term_width };
	_cleanup_(output_freep) struct output *o = NULL;

	if (output_new(&oo, &o) < 0 || output_columns(o, 6, names) < 0)
		return cli_error("out of memory");
	for (size_t i = 0; i < set->n; i++) {
		const struct rule *r = set->rules[i];
		const char *v[6] = {
			r->id, r->name, r->severity, r->category, r->enabled ? "1" : "0", r->path
		};

		if (output_row(o, 6, v, "ttttit") < 0)
			return cli_error("writing the output");
	}
	return output_end(o) < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

static void
report_reject(void *arg, const char *path, const char *reason)
{
	int *bad = arg;

	(*bad)++;
	/* The reason names the file and line already. */
	(void)path;
	fprintf(stderr, "daemoneye-cli: rule rejected: %s\n", reason);
}

static int
rules_list_dirs(struct cli_ctx *ctx)
{
	_cleanup_(rule_set_freep) struct rule_set *set = NULL;
	struct errbuf err = { { 0 } };
	int bad = 0, rc;

	rc = rule_set_load((const char *const *)ctx->cfg.detection.rules_dirs,
	                   ctx->cfg.detection.n_rules_dirs, ctx->cfg.detection.rule_timeout_ms,
	                   report_reject, &bad, &set, &err);
	if (rc < 0)
		return cli_error("reading the rule directories: %s",
		                 err.msg[0] ? err.msg : strerror(-rc));
	return print_rule_set(ctx, set);
}

static int
rules_list(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(store_closep) struct store *st = NULL;
	struct errbuf err = { { 0 } };
	struct json_t *rows = NULL;
	struct stat sb;
	int rc;

	(void)argv;
	if (argc > 2)
		return cli_usage_error("rules list: takes no arguments");
	if (stat(ctx->store_path, &sb) < 0)
		return rules_list_dirs(ctx);
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	if ((rc = cli_query_json(st, "SELECT 1 FROM detection_rules LIMIT 1", &rows, &err)) < 0)
		return cli_error("reading detection_rules: %s",
		                 err.msg[0] ? err.msg : strerror(-rc));
	rc = json_array_size(rows) > 0;
	json_decref(rows);
	if (!rc)
		return rules_list_dirs(ctx);
	return cli_print_query(ctx, st,
	                       "SELECT id, name, severity, category, enabled, path, sha256, "
	                       "loaded_at FROM detection_rules ORDER BY id",
	                       ctx->format);
}

static int
validate_one(struct cli_ctx *ctx, const char *path)
{
	_cleanup_(rule_freep) struct rule *r = NULL;
	struct errbuf err = { { 0 } };
	int rc;

	rc = rule_load(path, ctx->cfg.detection.rule_timeout_ms, &r, &err);
	if (rc < 0) {
		fprintf(stderr, "daemoneye-cli: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		if (rc != -EINVAL && rc != -ETIMEDOUT && rc != -E2BIG && !err.msg[0])
			fprintf(stderr, "daemoneye-cli: %s: cannot read the rule\n", path);
		return rc == -EINVAL || rc == -ETIMEDOUT || rc == -E2BIG ? CLI_EXIT_USAGE
		                                                         : CLI_EXIT_FAILURE;
	}
	fprintf(ctx->out, "%s: OK (%s, %s)\n", path, r->id, r->severity);
	return CLI_EXIT_OK;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
is_rule_file(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' &&
	       ((n > 5 && streq(name + n - 5, ".yaml")) || (n > 4 && streq(name + n - 4, ".yml")));
}

/* Validates every rule file of a directory, in name order. */
static int
validate_dir(struct cli_ctx *ctx, const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	char *files[RULES_MAX_FILES];
	size_t n = 0;
	struct dirent *de;
	int worst = CLI_EXIT_OK;

	if (d == NULL)
		return cli_error("%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL && n < RULES_MAX_FILES) {
		char path[4096];

		if (!is_rule_file(de->d_name) ||
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if ((files[n] = strdup(path)) != NULL)
			n++;
	}
	qsort(files, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++) {
		int rc = validate_one(ctx, files[i]);

		if (rc > worst)
			worst = rc;
		free(files[i]);
	}
	return worst;
}

static int
rules_validate(struct cli_ctx *ctx, int argc, char **argv)
{
	int worst = CLI_EXIT_OK;

	if (argc < 3)
		return cli_usage_error("rules validate: give one or more rule files");
	for (int i = 2; i < argc; i++) {
		struct stat sb;
		int rc;

		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
			rc = validate_dir(ctx, argv[i]);
		else
			rc = validate_one(ctx, argv[i]);
		if (rc > worst)
			worst = rc;
	}
	return worst;
}

static int
rules_test(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(rule_freep) struct rule *r = NULL;
	_cleanup_(store_closep) struct store *st = NULL;
	struct errbuf err = { { 0 } };
	int rc;

	if (argc != 3)
		return cli_usage_error("rules test: usage: rules test FILE");
	if ((rc = rule_load(argv[2], ctx->cfg.detection.rule_timeout_ms, &r, &err)) < 0) {
		fprintf(stderr, "daemoneye-cli: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		return rc == -ENOENT || rc == -EACCES ? CLI_EXIT_FAILURE : CLI_EXIT_USAGE;
	}
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	fprintf(stderr, "rule %s (%s) over %s:\n", r->id, r->severity, ctx->store_path);
	return cli_print_query(ctx, st, r->sql, ctx->format);
}

static const struct {
	const char *name;
	cli_handler_fn run;
} rules_subcommands[] = {
	{ "list", rules_list },
	{ "validate", rules_validate },
	{ "test", rules_test },
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
