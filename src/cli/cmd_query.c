/* `query "SQL"` (or `query -`: the statement from stdin): one read-only statement over the store, under the same
 * sandbox as detection rules (sqlguard), against the live store while the
 * agent writes (a WAL reader never blocks the writer). */
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "store.h"
#include "util.h"

#define QUERY_MAX_SQL (64u << 10)

/* Joins argv[1..] with spaces, so `query SELECT 1` works unquoted too. */
static int
join_args(int argc, char **argv, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 1; i < argc; i++) {
		size_t k = strlen(argv[i]);

		if (len + k + 2 > n)
			return -1;
		if (i > 1)
			buf[len++] = ' ';
		memcpy(buf + len, argv[i], k + 1);
		len += k;
	}
	return (int)len;
}

int
cmd_query(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(store_closep) struct store *st = NULL;
	static char sql[QUERY_MAX_SQL]; /* one statement per process */
	int rc;

	if (argc < 2)
		return cli_usage_error("query: give one SQL statement, e.g. "
		                       "query \"SELECT pid, name FROM live_processes\"");
	if (argc == 2 && streq(argv[1], "-")) {
		/* The statement from stdin, for long SQL kept in a file. */
		size_t n = fread(sql, 1, QUERY_MAX_SQL - 1, stdin);

		if (ferror(stdin) || !feof(stdin))
			return cli_usage_error(
			    "query -: stdin is unreadable or longer than %u bytes",
			    QUERY_MAX_SQL - 1);
		sql[n] = '\0';
	} else if (join_args(argc, argv, sql, QUERY_MAX_SQL) <= 0)
		return cli_usage_error("query: the statement is empty or longer than %u bytes",
		                       QUERY_MAX_SQL);
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	return cli_print_query(ctx, st, sql, ctx->format);
}
