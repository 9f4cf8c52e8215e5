/* `alerts [--since D] [--severity L] [--rule ID] [--limit N]` and
 * `alerts show ID`: recent alerts from the store, newest first.
 *
 * The table shows relative times ("3m ago") and the severity in colour when
 * stdout is a terminal and NO_COLOR is unset; json prints the SPEC §6 alert
 * objects as one array; csv prints one flat row per alert. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

#define ALERTS_DEFAULT_LIMIT 100
#define ALERTS_MAX_LIMIT     1000000
#define ALERTS_SQL_MAX       2048
#define ALERTS_ID_SHORT      12 /* characters of the id shown in the table */

/* Severity order of SPEC §6, with the colour the table uses. */
static const struct {
	const char *name;
	const char *sgr;
} severities[] = {
	{ "info", "\033[2m" },  { "low", "\033[36m" },           { "medium", "\033[33m" },
	{ "high", "\033[31m" }, { "critical", "\033[1;97;41m" },
};

static int
severity_rank(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(severities); i++)
		if (s && streq(severities[i].name, s))
			return (int)i;
	return -1;
}

static const char *
severity_style(int col, const char *value)
{
	int r;

	if (col != 2 || (r = severity_rank(value)) < 0)
		return NULL;
	return severities[r].sgr;
}

struct alerts_opts {
	uint64_t since_ms; /* 0: no bound */
	int min_severity;  /* -1: all */
	const char *rule;
	uint64_t limit;
};

static int
alerts_parse(int argc, char **argv, struct alerts_opts *ao)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "severity", required_argument, NULL, 'S' },
		{ "rule", required_argument, NULL, 'r' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t d;
	int c;

	ao->min_severity = -1;
	ao->limit = ALERTS_DEFAULT_LIMIT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (time_parse_duration(optarg, &d) < 0)
				return cli_usage_error("alerts --since: '%s' is not a duration "
				                       "like 10m, 2h or 7d",
				                       optarg);
			ao->since_ms = d;
			break;
		case 'S':
			if ((ao->min_severity = severity_rank(optarg)) < 0)
				return cli_usage_error(
				    "alerts --severity: '%s' is not one of info, "
				    "low, medium, high, critical",
				    optarg);
			break;
		case 'r':
			ao->rule = optarg;
			break;
		case 'n':
			if (parse_u64(optarg, &ao->limit) < 0 || ao->limit == 0 ||
			    ao->limit > ALERTS_MAX_LIMIT)
				return cli_usage_error(
				    "alerts --limit: '%s' is not a number from 1 "
				    "to %d",
				    optarg, ALERTS_MAX_LIMIT);
			break;
		default:
			return cli_usage_error("alerts: unknown option or missing value: %s",
			                       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("alerts: unexpected argument '%s'", argv[optind]);
	return CLI_EXIT_OK;
}

/* Builds the SELECT for the filters. Returns 0 or -ENAMETOOLONG/-ENOMEM. */
static int
alerts_sql(const struct alerts_opts *ao, char *buf, size_t n)
{
	_cleanup_free_ char *rule = NULL;
	uint64_t now = time_now_ms();
	/* A window longer than the epoch means everything. */
	uint64_t from = ao->since_ms && ao->since_ms < now ? now - ao->since_ms : 0;
	char sev[64] = "";
	int k;

	if (ao->min_severity > 0)
		snprintf(sev, sizeof(sev), " AND severity_rank >= %d", ao->min_severity);
	if (ao->rule && (rule = cli_sql_quote(ao->rule)) == NULL)
		return -ENOMEM;
	k = snprintf(buf, n,
	             "SELECT alert_id, timestamp, severity, rule_id, pid, repeat_count, json "
	             "FROM alerts WHERE timestamp >= %" PRIu64 "%s%s%s "
	             "ORDER BY timestamp DESC LIMIT %" PRIu64,
	             from, sev, rule ? " AND rule_id = " : "", rule ? rule : "", ao->limit);
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static const char *
obj_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* One stored row to the displayed fields (table and csv). */
static void
alerts_fields(const json_t *row, const json_t *alert, bool relative, char *time_buf, size_t tn,
              char *pid_buf, size_t pn, char *rep_buf, size_t rn, const char **ret)
{
	json_int_t ts = json_integer_value(json_object_get(row, "timestamp"));
	const json_t *proc = json_object_get(alert, "process");
	const char *title = obj_str(alert, "title");

	if (relative)
		cli_relative_time((uint64_t)ts, time_now_ms(), time_buf, tn);
	else if (time_format_rfc3339_ms((uint64_t)ts, time_buf, tn) < 0)
		snprintf(time_buf, tn, "%" JSON_INTEGER_FORMAT, ts);
	snprintf(pid_buf, pn, "%" JSON_INTEGER_FORMAT,
	         json_integer_value(json_object_get(row, "pid")));
	snprintf(rep_buf, rn, "%" JSON_INTEGER_FORMAT,
	         json_integer_value(json_object_get(row, "repeat_count")));
	ret[0] = obj_str(row, "alert_id");
	ret[1] = time_buf;
	ret[2] = obj_str(row, "severity");
	ret[3] = obj_str(row, "rule_id");
	ret[4] = pid_buf;
	ret[5] = obj_str(proc, "name");
	ret[6] = *title ? title : obj_str(alert, "rule_name");
	ret[7] = rep_buf;
}

static json_t *
alert_object(const json_t *row)
{
	const char *text = json_string_value(json_object_get(row, "json"));
	json_t *a = text ? json_loads(text, 0, NULL) : NULL;

	if (a == NULL)
		a = json_object();
	if (a && json_object_get(a, "repeat_count") == NULL)
		json_object_set(a, "repeat_count", json_object_get(row, "repeat_count"));
	return a;
}

static int
alerts_print_rows(struct cli_ctx *ctx, const json_t *rows)
{
	static const char *const table_names[] = { "ID",  "TIME",    "SEVERITY", "RULE",
		                                   "PID", "PROCESS", "TITLE",    "REPEAT" };
	static const char *const csv_names[] = {
		"alert_id", "timestamp", "severity", "rule_id",
		"pid",      "process",   "title",    "repeat_count"
	};
	static const char types[] = "ttttitti";
	bool table = ctx->format == CLI_FORMAT_TABLE;
	struct output_opts oo = { .format = ctx->format,
		                  .f = ctx->out,
		                  .width = ctx->term_width,
		                  .color = ctx->color,
		                  .style = severity_style };
	_cleanup_(output_freep) struct output *o = NULL;
	const json_t *row;
	size_t i;
	int rc;

	if ((rc = output_new(&oo, &o)) < 0 ||
	    (rc = output_columns(o, 8, table ? table_names : csv_names)) < 0)
		return cli_error("output: %s", strerror(-rc));
	json_array_foreach((json_t *)rows, i, row)
	{
		json_t *alert = alert_object(row);
		char tb[64], pb[32], rb[32], idb[ALERTS_ID_SHORT + 1];
		const char *f[8];

		alerts_fields(row, alert, table, tb, sizeof(tb), pb, sizeof(pb), rb, sizeof(rb), f);
		if (table) {
			de_strlcpy(idb, f[0], sizeof(idb));
			f[0] = idb;
		}
		rc = output_row(o, 8, f, types);
		json_decref(alert);
		if (rc < 0)
			return cli_error("writing the output: %s", strerror(-rc));
	}
	if (json_array_size(rows) == 0 && table) {
		fputs("no alerts match\n", ctx->out);
		return CLI_EXIT_OK;
	}
	return output_end(o) < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
alerts_print_json(struct cli_ctx *ctx, const json_t *rows)
{
	json_t *doc = json_array();
	const json_t *row;
	size_t i;
	int rc;

	if (doc == NULL)
		return cli_error("out of memory");
	json_array_foreach((json_t *)rows, i, row) json_array_append_new(doc, alert_object(row));
	rc = output_document(CLI_FORMAT_JSON, ctx->out, doc);
	json_decref(doc);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
alerts_fetch(struct cli_ctx *ctx, const char *sql, json_t **ret)
{
	_cleanup_(store_closep) struct store *st = NULL;
	struct errbuf err = { { 0 } };
	int rc;

	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	if ((rc = cli_query_json(st, sql, ret, &err)) < 0)
		return cli_error("reading alerts from %s: %s", ctx->store_path,
		                 err.msg[0] ? err.msg : strerror(-rc));
	return CLI_EXIT_OK;
}

static int
alerts_show(struct cli_ctx *ctx, const char *id)
{
	_cleanup_free_ char *q = cli_sql_quote(id);
	char sql[ALERTS_SQL_MAX];
	json_t *rows = NULL, *alert;
	int rc;

	if (q == NULL)
		return cli_error("out of memory");
	if (strlen(id) >= ALERTS_SQL_MAX / 2)
		return cli_usage_error("alerts show: the id is too long");
	/* A unique prefix is enough, as the table shows shortened ids. */
	snprintf(sql, sizeof(sql),
	         "SELECT alert_id, timestamp, severity, rule_id, pid, repeat_count, json "
	         "FROM alerts WHERE substr(alert_id, 1, %zu) = %s LIMIT 2",
	         strlen(id), q);
	if ((rc = alerts_fetch(ctx, sql, &rows)) != 0)
		return rc;
	if (json_array_size(rows) != 1) {
		rc = json_array_size(rows) == 0
		         ? cli_error("alerts show: no alert with id '%s'", id)
		         : cli_usage_error("alerts show: '%s' matches several alerts; give more "
		                           "of the id",
		                           id);
		json_decref(rows);
		return rc;
	}
	alert = alert_object(json_array_get(rows, 0));
	json_decref(rows);
	rc = output_document(ctx->format, ctx->out, alert);
	json_decref(alert);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

int
cmd_alerts(struct cli_ctx *ctx, int argc, char **argv)
{
	struct alerts_opts ao = { 0 };
	char sql[ALERTS_SQL_MAX];
	json_t *rows = NULL;
	int rc;

	if (argc >= 2 && streq(argv[1], "show")) {
		if (argc != 3)
			return cli_usage_error("alerts show: usage: alerts show ID");
		return alerts_show(ctx, argv[2]);
	}
	if ((rc = alerts_parse(argc, argv, &ao)) != 0)
		return rc;
	if (alerts_sql(&ao, sql, sizeof(sql)) < 0)
		return cli_usage_error("alerts: the filter is too long");
	if ((rc = alerts_fetch(ctx, sql, &rows)) != 0)
		return rc;
	if (ctx->format == CLI_FORMAT_JSON)
		rc = alerts_print_json(ctx, rows);
	else
		rc = alerts_print_rows(ctx, rows);
	json_decref(rows);
	return rc;
}
