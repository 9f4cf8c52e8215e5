/* daemoneye-cli: the command table and the context every command handler gets.
 *
 * main.c parses the global options (SPEC §3), resolves the data directory and
 * the agent socket (flags > environment > configuration file > defaults), fills
 * a struct cli_ctx and dispatches through one table (STYLE.md rule 10): a row per
 * command with its name, its subcommands, its handler and a one-line help.
 *
 * A handler is called with argv[0] = the command name ("alerts", "ledger", ...)
 * and the remaining words after it, so it can run getopt_long() itself (optind
 * is reset to 0 by main before the call). It returns an exit code of SPEC §3:
 * CLI_EXIT_OK, CLI_EXIT_FAILURE (agent unreachable, verification failed, I/O)
 * or CLI_EXIT_USAGE (usage or validation error). A handler prints its own
 * message on stderr with cli_error()/cli_usage_error() before returning non-zero. */
#ifndef DE_CLI_H
#define DE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "errbuf.h"

#define CLI_EXIT_OK      0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE   2

/* Default time limit of one operator query (the sandbox is the rules' one; the
 * limit is longer because a person is waiting, not the pipeline). */
#define CLI_QUERY_TIMEOUT_MS 30000

enum cli_format {
	CLI_FORMAT_TABLE = 0,
	CLI_FORMAT_JSON,
	CLI_FORMAT_CSV,
};

struct cli_ctx {
	struct de_config cfg;    /* loaded configuration, flags applied */
	const char *config_path; /* --config, or NULL */
	char data_dir[4096];     /* effective data directory */
	char socket_path[108];   /* effective agent socket (sun_path bound) */
	char store_path[4096];   /* <data_dir>/events.db */
	enum cli_format format;  /* --format */
	bool format_set;         /* --format was given (shell keeps its own mode otherwise) */
	bool color;              /* stdout is a tty and NO_COLOR is unset */
	int term_width;          /* columns of the terminal, 80 when unknown */
	FILE *out;               /* stdout */
};

typedef int (*cli_handler_fn)(struct cli_ctx *ctx, int argc, char **argv);

struct cli_command {
	const char *name;   /* "alerts" */
	const char *subs;   /* subcommands and arguments for --help, or NULL */
	cli_handler_fn run; /* the handler */
	const char *help;   /* one line, fits 80 columns with the name */
};

/* The command table (main.c), terminated by a row with name == NULL. */
extern const struct cli_command cli_commands[];

/* Prints "daemoneye-cli: <message>" on stderr. Returns CLI_EXIT_FAILURE. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "daemoneye-cli: <message>" on stderr. Returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct store;
struct json_t;

/* Helpers shared by the commands (cli_common.c). */

/* Opens the store at ctx->store_path read-only. On failure prints why (a
 * missing store names the path and the data directory) and returns
 * CLI_EXIT_FAILURE; on success returns 0 and sets *ret. */
int cli_store_open(struct cli_ctx *ctx, struct store **ret);
/* Runs sql (sandboxed, read-only) and prints its rows in ctx->format. Returns
 * an exit code: CLI_EXIT_USAGE with the reason for a statement the sandbox
 * refuses, CLI_EXIT_FAILURE for I/O and time-outs. */
int cli_print_query(struct cli_ctx *ctx, struct store *st, const char *sql, enum cli_format format);
/* Collects the rows of sql as a JSON array of objects (new reference) into
 * *ret. Returns 0 or a store_query error (-EINVAL with the reason in err). */
int cli_query_json(struct store *st, const char *sql, struct json_t **ret, struct errbuf *err);
/* Returns a new SQL string literal for s ('it''s'), or NULL on OOM. */
char *cli_sql_quote(const char *s);
/* "just now", "42s ago", "3m ago", "2h ago", "5d ago" (or "in 3m"). */
void cli_relative_time(uint64_t then_ms, uint64_t now_ms, char *buf, size_t n);
/* Sends one control request to the agent and waits for its answer. On
 * success returns 0 with *ret_status and *ret_body (a new JSON document, or
 * NULL when the agent sent none). Fails with -errno of connect/recv; prints
 * nothing. */
int cli_control(const struct cli_ctx *ctx, const char *command, const struct json_t *args,
                int timeout_ms, int *ret_status, struct json_t **ret_body);

/* Handlers, one per command group (src/cli/cmd_<group>.c). */
int cmd_query(struct cli_ctx *ctx, int argc, char **argv);
int cmd_shell(struct cli_ctx *ctx, int argc, char **argv);
int cmd_alerts(struct cli_ctx *ctx, int argc, char **argv);
int cmd_processes(struct cli_ctx *ctx, int argc, char **argv);
int cmd_rules(struct cli_ctx *ctx, int argc, char **argv);
int cmd_health(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stats(struct cli_ctx *ctx, int argc, char **argv);
int cmd_config(struct cli_ctx *ctx, int argc, char **argv);
/* Owned by the ledger module (src/cli/cmd_ledger.c): argv[1] is the
 * subcommand (verify, show [--last N], prove SEQ, export). It opens the
 * ledger at <ctx->data_dir>/ledger read-only. */
int cmd_ledger(struct cli_ctx *ctx, int argc, char **argv);

#endif
