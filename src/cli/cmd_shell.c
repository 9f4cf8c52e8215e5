/* `shell`: an interactive SQL shell over the store, like osqueryi: libedit
 * line editing, history in ~/.daemoneye_history, tab completion of table and
 * column names, SQL keywords and dot-commands, and
 *   .tables  .schema [TABLE]  .mode table|json|csv  .help  .quit
 * A statement ends with ';' at the end of a line and may span lines. When
 * stdin is not a terminal the same statements are read line by line without
 * prompts or history (a statement left unterminated at end of input runs). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "store.h"
#include "util.h"

#define SHELL_MAX_STMT    (64u << 10)
#define SHELL_MAX_WORDS   1024
#define SHELL_HISTORY     ".daemoneye_history"
#define SHELL_HISTORY_MAX 1000

/* Tables the store documents (docs/store.md); used when sqlite_master is not
 * readable under the sandbox. */
static const char *const known_tables[] = {
	"alerts",         "collector_state", "detection_rules",
	"live_processes", "process_events",  "process_instances",
	"processes",      "scan_metadata",   "system_info",
};

static const char *const keywords[] = {
	"SELECT", "FROM",    "WHERE",    "GROUP", "BY",     "ORDER", "LIMIT", "JOIN",
	"LEFT",   "ON",      "AS",       "AND",   "OR",     "NOT",   "IN",    "LIKE",
	"REGEXP", "COUNT",   "DISTINCT", "WITH",  "HAVING", "DESC",  "ASC",   "NULL",
	"IS",     "BETWEEN", "CASE",     "WHEN",  "THEN",   "ELSE",  "END",   "UNION",
};

struct shell {
	struct cli_ctx *ctx;
	struct store *st;
	enum cli_format mode;
	bool interactive;
	bool quit;
	int rc;          /* exit code of the last failing statement (non-interactive) */
	json_t *schema;  /* [{"name":..., "sql":..., "columns":[...]}] */
	char hist[4096]; /* the history file, "" for none */
	char *words[SHELL_MAX_WORDS];
	size_t n_words;
};

static struct shell *completion_shell; /* libedit's callbacks take no context */

static void
add_word(struct shell *sh, const char *w)
{
	for (size_t i = 0; i < sh->n_words; i++)
		if (streq(sh->words[i], w))
			return;
	if (sh->n_words < SHELL_MAX_WORDS && (sh->words[sh->n_words] = strdup(w)) != NULL)
		sh->n_words++;
}

static int
column_names_cb(void *arg, int ncol, const char *const *names, const char *const *values,
                const char *types)
{
	json_t *cols = arg;

	(void)values;
	(void)types;
	for (int i = 0; i < ncol; i++)
		json_array_append_new(cols, json_string(names[i]));
	return 1; /* one row is enough to learn the names */
}

/* Learns the tables, their CREATE statements and their columns. */
static void
load_schema(struct shell *sh)
{
	struct errbuf err = { { 0 } };
	json_t *rows = NULL, *t;
	size_t i;

	if (cli_query_json(sh->st,
	                   "SELECT name, sql FROM sqlite_master WHERE type IN ('table','view') "
	                   "AND name NOT LIKE 'sqlite_%' ORDER BY name",
	                   &rows, &err) < 0 ||
	    json_array_size(rows) == 0) {
		json_decref(rows);
		rows = json_array();
		for (i = 0; i < ARRAY_SIZE(known_tables); i++)
			json_array_append_new(rows,
			                      json_pack("{ss sn}", "name", known_tables[i], "sql"));
	}
	json_array_foreach(rows, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *cols = json_array();
		char sql[256];
		size_t j;
		json_t *c;

		if (name == NULL || cols == NULL) {
			json_decref(cols);
			continue;
		}
		/* One all-NULL row even for an empty table: its column names. */
		snprintf(sql, sizeof(sql),
		         "SELECT t.* FROM (SELECT 1) AS one LEFT JOIN \"%s\" AS t ON 0", name);
		store_query(sh->st, sql, 1000, column_names_cb, cols, NULL);
		json_object_set_new(t, "columns", cols);
		add_word(sh, name);
		json_array_foreach(cols, j, c) add_word(sh, json_string_value(c));
	}
	for (i = 0; i < ARRAY_SIZE(keywords); i++)
		add_word(sh, keywords[i]);
	sh->schema = rows;
}

static const char *const dot_commands[] = {
	".tables", ".schema", ".mode", ".help", ".quit", ".exit"
};

static char *
complete_next(const char *text, int state)
{
	static size_t idx;
	static bool dots;
	size_t len = strlen(text);
	struct shell *sh = completion_shell;

	if (state == 0) {
		idx = 0;
		dots = text[0] == '.';
	}
	if (dots) {
		while (idx < ARRAY_SIZE(dot_commands))
			if (strncmp(dot_commands[idx++], text, len) == 0)
				return strdup(dot_commands[idx - 1]);
		return NULL;
	}
	while (sh && idx < sh->n_words) {
		const char *w = sh->words[idx++];

		if (strncasecmp(w, text, len) == 0)
			return strdup(w);
	}
	return NULL;
}

static char **
shell_complete(const char *text, int start, int end)
{
	(void)start;
	(void)end;
	rl_attempted_completion_over = 1;
	return rl_completion_matches(text, complete_next);
}

static void
dot_tables(struct shell *sh)
{
	size_t i;
	json_t *t;

	json_array_foreach(sh->schema, i, t)
	    fprintf(sh->ctx->out, "%s\n", json_string_value(json_object_get(t, "name")));
}

static int
dot_schema(struct shell *sh, const char *table)
{
	size_t i, j;
	json_t *t, *c;
	bool found = false;

	json_array_foreach(sh->schema, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *sql = json_string_value(json_object_get(t, "sql"));

		if (table && !streq(table, name))
			continue;
		found = true;
		if (sql) {
			fprintf(sh->ctx->out, "%s;\n", sql);
			continue;
		}
		fprintf(sh->ctx->out, "%s (", name);
		json_array_foreach(json_object_get(t, "columns"), j, c)
		    fprintf(sh->ctx->out, "%s%s", j ? ", " : "", json_string_value(c));
		fputs(")\n", sh->ctx->out);
	}
	if (table && !found) {
		fprintf(stderr, "no such table: %s\n", table);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

static const char shell_help[] =
    ".tables            list the tables and views\n"
    ".schema [TABLE]    show how a table is defined\n"
    ".mode table|json|csv\n"
    "                   set the output format\n"
    ".help              this text\n"
    ".quit              leave (also Ctrl-D)\n"
    "Statements end with ';'. Only SELECT (and WITH) over the store is allowed.\n";

/* Runs one dot-command line. Returns an exit code. */
static int
shell_dot(struct shell *sh, char *line)
{
	char *save = NULL;
	char *cmd = strtok_r(line, " \t", &save);
	char *arg = strtok_r(NULL, " \t", &save);

	if (streq(cmd, ".quit") || streq(cmd, ".exit")) {
		sh->quit = true;
	} else if (streq(cmd, ".tables")) {
		dot_tables(sh);
	} else if (streq(cmd, ".schema")) {
		return dot_schema(sh, arg);
	} else if (streq(cmd, ".help")) {
		fputs(shell_help, sh->ctx->out);
	} else if (streq(cmd, ".mode")) {
		if (arg && streq(arg, "table"))
			sh->mode = CLI_FORMAT_TABLE;
		else if (arg && streq(arg, "json"))
			sh->mode = CLI_FORMAT_JSON;
		else if (arg && streq(arg, "csv"))
			sh->mode = CLI_FORMAT_CSV;
		else {
			fputs(".mode: use .mode table|json|csv\n", stderr);
			return CLI_EXIT_USAGE;
		}
	} else {
		fprintf(stderr, "unknown command %s (try .help)\n", cmd);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

static void
shell_run(struct shell *sh, const char *sql)
{
	int rc = cli_print_query(sh->ctx, sh->st, sql, sh->mode);

	if (rc != CLI_EXIT_OK)
		sh->rc = rc;
}

/* Reads one line: libedit on a terminal, getline otherwise. NULL at EOF. */
static char *
shell_readline(struct shell *sh, bool continuation, char **buf, size_t *cap)
{
	if (sh->interactive)
		return readline(continuation ? "   ...> " : "daemoneye> ");
	if (getline(buf, cap, stdin) < 0)
		return NULL;
	return strdup(*buf);
}

/* Adds a statement to the history and saves the file at once, so an
 * interrupted session (Ctrl-C, a closed terminal) loses nothing. Queries can
 * be sensitive: the file is the user's alone. */
static void
shell_remember(struct shell *sh, const char *stmt)
{
	mode_t old;

	add_history(stmt);
	if (sh->hist[0] == '\0')
		return;
	old = umask(077);
	if (write_history(sh->hist) == 0)
		history_truncate_file(sh->hist, SHELL_HISTORY_MAX);
	umask(old);
}

/* Feeds one input line; runs a statement when it is complete. */
static void
shell_line(struct shell *sh, char *stmt, size_t *len, char *raw)
{
	char *line = trim(raw);
	size_t n = strlen(line);

	if (*len == 0 && n == 0)
		return;
	if (*len == 0 && line[0] == '.') {
		int rc = shell_dot(sh, line);

		if (rc != CLI_EXIT_OK)
			sh->rc = rc;
		return;
	}
	if (*len + n + 2 > SHELL_MAX_STMT) {
		fprintf(stderr, "statement longer than %u bytes: dropped\n", SHELL_MAX_STMT);
		*len = 0;
		sh->rc = CLI_EXIT_USAGE;
		return;
	}
	if (*len)
		stmt[(*len)++] = '\n';
	memcpy(stmt + *len, line, n + 1);
	*len += n;
	if (n > 0 && line[n - 1] == ';') {
		if (sh->interactive)
			shell_remember(sh, stmt);
		shell_run(sh, stmt);
		*len = 0;
	}
}

static void
history_path(char *buf, size_t n)
{
	const char *home = getenv("HOME");

	buf[0] = '\0';
	if (!isempty(home) && snprintf(buf, n, "%s/%s", home, SHELL_HISTORY) >= (int)n)
		buf[0] = '\0';
}

int
cmd_shell(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(store_closep) struct store *st = NULL;
	_cleanup_free_ char *stmt = NULL, *lbuf = NULL;
	struct shell sh = { .ctx = ctx, .mode = ctx->format };
	size_t len = 0, cap = 0;
	char *line;
	int rc;

	(void)argv;
	if (argc > 1)
		return cli_usage_error("shell: takes no arguments (statements come on stdin)");
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	if ((stmt = malloc(SHELL_MAX_STMT)) == NULL)
		return cli_error("out of memory");
	sh.st = st;
	sh.interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	load_schema(&sh);
	completion_shell = &sh;
	history_path(sh.hist, sizeof(sh.hist));
	if (sh.interactive) {
		rl_readline_name = "daemoneye";
		rl_attempted_completion_function = shell_complete;
		using_history();
		stifle_history(SHELL_HISTORY_MAX);
		if (sh.hist[0])
			read_history(sh.hist);
		printf("daemoneye shell on %s. Enter \".help\" for usage hints.\n",
		       ctx->store_path);
	}
	while (!sh.quit && (line = shell_readline(&sh, len > 0, &lbuf, &cap)) != NULL) {
		shell_line(&sh, stmt, &len, line);
		free(line);
		fflush(ctx->out);
	}
	if (len > 0 && !sh.quit)
		shell_run(&sh, stmt);
	if (sh.interactive)
		fputc('\n', stdout);
	completion_shell = NULL;
	for (size_t i = 0; i < sh.n_words; i++)
		free(sh.words[i]);
	json_decref(sh.schema);
	return sh.interactive ? CLI_EXIT_OK : sh.rc;
}
