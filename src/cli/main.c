/* daemoneye-cli: global options, configuration, and the command table.
 *
 * The data directory and the agent socket come from, highest first: the
 * --data-dir/--socket flags, DAEMONEYE_AGENT_DATA_DIR/DAEMONEYE_AGENT_SOCKET,
 * the configuration file (--config, or the standard ones), the defaults. */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define PROG "daemoneye-cli"

const struct cli_command cli_commands[] = {
	{ "query", "\"SQL\"", cmd_query, "run one read-only SQL statement over the store" },
	{ "shell", NULL, cmd_shell, "interactive SQL shell (history, completion)" },
	{ "alerts", "[--since DUR] [--severity L] [--rule ID] [--limit N] | show ID", cmd_alerts,
	  "recent alerts (DUR: 10m, 2h, 7d), or show one" },
	{ "processes", "[--tree] [--pid PID]", cmd_processes, "list processes, or draw the tree" },
	{ "rules", "list | validate FILE... | test FILE", cmd_rules,
	  "list, validate or try detection rules" },
	{ "health", NULL, cmd_health, "ask the running agent how it is doing" },
	{ "stats", NULL, cmd_stats, "rows per table, size, oldest/newest, events/s" },
	{ "config", "check [FILE]", cmd_config, "validate a configuration file" },
#ifdef CLI_HAVE_LEDGER
	{ "ledger",
	  "verify [--pubkey FILE] | show [--last N] | prove SEQ | verify-proof FILE | export | "
	  "pubkey",
	  cmd_ledger, "verify and read the audit ledger" },
#endif
	{ NULL, NULL, NULL, NULL },
};

static void
vmsg(const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int
cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAILURE;
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

static void
usage(FILE *f)
{
	fputs("Usage: " PROG " [OPTIONS] COMMAND [ARGS]\n"
	      "Read-only operator tool for DaemonEye: queries, alerts, rules, health.\n"
	      "\n"
	      "Options:\n"
	      "  --data-dir DIR          data directory (events.db, ledger)\n"
	      "  --socket PATH           agent control socket\n"
	      "  --format table|json|csv output format (default table)\n"
	      "  --config PATH           read this configuration file only\n"
	      "  --log-level LEVEL       error|warn|info|debug\n"
	      "  -h, --help              show this help\n"
	      "  -V, --version           show the version\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (const struct cli_command *c = cli_commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->help);
	fputs("\nRun '" PROG " COMMAND --help' for a command's arguments.\n"
	      "Exit status: 0 ok, 1 runtime failure, 2 usage or validation error.\n",
	      f);
}

/* "Usage:" and one line per alternative of the row's subcommands. */
static void
command_usage(const struct cli_command *c)
{
	const char *alt = c->subs ? c->subs : "";

	printf("Usage: " PROG " [OPTIONS] %s%s\n", c->name, c->subs ? " ..." : "");
	while (c->subs) {
		const char *bar = strstr(alt, " | ");
		int n = bar ? (int)(bar - alt) : (int)strlen(alt);

		printf("  " PROG " %s %.*s\n", c->name, n, alt);
		if (bar == NULL)
			break;
		alt = bar + 3;
	}
	printf("%s\n", c->help);
}

static const struct cli_command *
command_find(const char *name)
{
	for (const struct cli_command *c = cli_commands; c->name; c++)
		if (streq(c->name, name))
			return c;
	return NULL;
}

static int
format_parse(const char *s, enum cli_format *ret)
{
	static const struct {
		const char *name;
		enum cli_format fmt;
	} formats[] = {
		{ "table", CLI_FORMAT_TABLE },
		{ "json", CLI_FORMAT_JSON },
		{ "csv", CLI_FORMAT_CSV },
	};

	for (size_t i = 0; i < ARRAY_SIZE(formats); i++)
		if (streq(formats[i].name, s)) {
			*ret = formats[i].fmt;
			return 0;
		}
	return -EINVAL;
}

struct global_opts {
	const char *data_dir;
	const char *socket;
	const char *format;
	const char *config;
	const char *log_level;
};

/* Parses the options before the command. Returns -1 to go on, or an exit code. */
static int
parse_globals(int argc, char **argv, struct global_opts *g)
{
	enum { OPT_DATA_DIR = 256, OPT_SOCKET, OPT_FORMAT, OPT_CONFIG, OPT_LOG_LEVEL };
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case OPT_DATA_DIR:
			g->data_dir = optarg;
			break;
		case OPT_SOCKET:
			g->socket = optarg;
			break;
		case OPT_FORMAT:
			g->format = optarg;
			break;
		case OPT_CONFIG:
			g->config = optarg;
			break;
		case OPT_LOG_LEVEL:
			g->log_level = optarg;
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf(PROG " %s\n", DAEMONEYE_VERSION);
			return CLI_EXIT_OK;
		default:
			if (optopt)
				cli_usage_error("option '-%c' is unknown or needs a value", optopt);
			else
				cli_usage_error("option '%s' is unknown or needs a value",
				                argv[optind - 1]);
			fputs("Try '" PROG " --help'.\n", stderr);
			return CLI_EXIT_USAGE;
		}
	}
	return -1;
}

/* Global options may also follow the command ("alerts --format json"): takes
 * them out of argv[start..] so the command's own parser never sees them.
 * Stops at "--". Returns the new argc, or -1 when one lacks its value. */
static int
extract_globals(int argc, char **argv, int start, struct global_opts *g)
{
	const struct {
		const char *name;
		const char **dst;
	} globals[] = {
		{ "--data-dir", &g->data_dir },   { "--socket", &g->socket },
		{ "--format", &g->format },       { "--config", &g->config },
		{ "--log-level", &g->log_level },
	};
	int out = start;

	for (int i = start; i < argc; i++) {
		bool taken = false;

		if (streq(argv[i], "--")) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		for (size_t k = 0; k < ARRAY_SIZE(globals) && !taken; k++) {
			size_t n = strlen(globals[k].name);

			if (streq(argv[i], globals[k].name)) {
				if (i + 1 >= argc) {
					cli_usage_error("option '%s' needs a value", argv[i]);
					return -1;
				}
				*globals[k].dst = argv[++i];
				taken = true;
			} else if (strncmp(argv[i], globals[k].name, n) == 0 && argv[i][n] == '=') {
				*globals[k].dst = argv[i] + n + 1;
				taken = true;
			}
		}
		if (!taken)
			argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

static int
terminal_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	int w;

	if (cols && parse_int(cols, &w) == 0 && w > 0)
		return w;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Loads the configuration and applies the flags. Returns -1 to go on, or an exit code. */
static int
setup_context(struct cli_ctx *ctx, const struct global_opts *g)
{
	struct errbuf err = { { 0 } };
	int rc;

	if (g->format && format_parse(g->format, &ctx->format) < 0)
		return cli_usage_error("--format: '%s' is not one of table, json, csv", g->format);
	ctx->format_set = g->format != NULL;
	ctx->config_path = g->config;
	if ((rc = config_load(g->config, &ctx->cfg, &err)) < 0) {
		if (rc == -EINVAL)
			return cli_usage_error("%s",
			                       err.msg[0] ? err.msg : "invalid configuration");
		return cli_error("configuration %s: %s", g->config ? g->config : "",
		                 err.msg[0] ? err.msg : strerror(-rc));
	}
	if (g->data_dir && config_set(&ctx->cfg, "agent.data_dir", g->data_dir, &err) < 0)
		return cli_usage_error("--data-dir: %s", err.msg);
	if (g->socket && config_set(&ctx->cfg, "agent.socket", g->socket, &err) < 0)
		return cli_usage_error("--socket: %s", err.msg);
	if (de_strlcpy(ctx->data_dir, ctx->cfg.agent.data_dir, sizeof(ctx->data_dir)) >=
	    sizeof(ctx->data_dir))
		return cli_usage_error("data directory path is too long");
	if (config_socket_path(&ctx->cfg, ctx->socket_path, sizeof(ctx->socket_path)) < 0)
		return cli_usage_error("socket path is too long (at most %zu bytes)",
		                       sizeof(ctx->socket_path) - 1);
	if (snprintf(ctx->store_path, sizeof(ctx->store_path), "%s/events.db", ctx->data_dir) >=
	    (int)sizeof(ctx->store_path))
		return cli_usage_error("data directory path is too long");
	ctx->out = stdout;
	ctx->color = isatty(STDOUT_FILENO) && isempty(getenv("NO_COLOR"));
	ctx->term_width = isatty(STDOUT_FILENO) ? terminal_width() : 0;
	return -1;
}

int
main(int argc, char **argv)
{
	struct global_opts g = { 0 };
	struct cli_ctx ctx;
	const struct cli_command *cmd;
	enum log_level lvl = LOG_LEVEL_WARN;
	int rc;

	setlocale(LC_CTYPE, "");
	log_init(PROG);
	memset(&ctx, 0, sizeof(ctx));
	if ((rc = parse_globals(argc, argv, &g)) >= 0)
		return rc;
	if (optind < argc && (argc = extract_globals(argc, argv, optind + 1, &g)) < 0)
		return CLI_EXIT_USAGE;
	if (g.log_level && log_level_from_string(g.log_level, &lvl) < 0)
		return cli_usage_error("--log-level: '%s' is not one of error, warn, info, debug",
		                       g.log_level);
	log_set_level(lvl);
	if (optind >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((cmd = command_find(argv[optind])) == NULL) {
		cli_usage_error("unknown command '%s'", argv[optind]);
		fputs("Try '" PROG " --help'.\n", stderr);
		return CLI_EXIT_USAGE;
	}
	if (optind + 1 < argc &&
	    (streq(argv[optind + 1], "--help") || streq(argv[optind + 1], "-h"))) {
		command_usage(cmd);
		return CLI_EXIT_OK;
	}
	if ((rc = setup_context(&ctx, &g)) < 0) {
		int n = argc - optind;
		char **sub = argv + optind;

		optind = 0;
		rc = cmd->run(&ctx, n, sub);
	}
	config_free(&ctx.cfg);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
		rc = cli_error("writing the output: %s", strerror(errno));
	return rc;
}
