/* Helpers shared by the commands: opening the store read-only, printing a
 * sandboxed query in the chosen format, SQL quoting, relative times, and one
 * request/answer exchange with the agent's control socket. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "ipc.h"
#include "output.h"
#include "store.h"
#include "util.h"

#define CLI_STORE_DENIED "permission denied (run as root or as a member of the agent's group)"

int
cli_store_open(struct cli_ctx *ctx, struct store **ret)
{
	struct stat sb;
	int rc;

	if (stat(ctx->store_path, &sb) < 0) {
		if (errno == ENOENT)
			return cli_error("no event store at %s (is the agent running with "
			                 "--data-dir %s? use --data-dir to point elsewhere)",
			                 ctx->store_path, ctx->data_dir);
		return cli_error("cannot open the event store %s: %s", ctx->store_path,
		                 errno == EACCES ? CLI_STORE_DENIED : strerror(errno));
	}
	/* SQLite reports an unreadable file as "cannot open": say why first. */
	if (access(ctx->store_path, R_OK) < 0 && errno == EACCES)
		return cli_error("cannot open the event store %s: %s", ctx->store_path,
		                 CLI_STORE_DENIED);
	if ((rc = store_open(ctx->store_path, STORE_RO, ret)) < 0)
		return cli_error("cannot open the event store %s: %s", ctx->store_path,
		                 rc == -EACCES || rc == -EPERM ? CLI_STORE_DENIED : strerror(-rc));
	return 0;
}

struct print_state {
	struct output *o;
	struct output_opts opts;
	int rc;
};

static int
print_row_cb(void *arg, int ncol, const char *const *names, const char *const *values,
             const char *types)
{
	struct print_state *ps = arg;
	int rc;

	if (ps->o == NULL) {
		if ((rc = output_new(&ps->opts, &ps->o)) < 0 ||
		    (rc = output_columns(ps->o, ncol, names)) < 0) {
			ps->rc = rc;
			return 1;
		}
	}
	if ((rc = output_row(ps->o, ncol, values, types)) < 0) {
		ps->rc = rc;
		return 1;
	}
	return 0;
}

/* Maps a store_query failure to an exit code with a message. */
static int
query_failed(int rc, const struct errbuf *err)
{
	const char *why = err->msg[0] ? err->msg : strerror(-rc);

	switch (rc) {
	case -EINVAL:
	case -EACCES:
		return cli_usage_error("query refused: %s", why);
	case -ETIMEDOUT:
		return cli_error("query stopped: it ran longer than %u ms (%s)",
		                 CLI_QUERY_TIMEOUT_MS, why);
	case -E2BIG:
		return cli_error("query stopped: it needed more memory than allowed (%s)", why);
	default:
		return cli_error("query failed: %s", why);
	}
}

int
cli_print_query(struct cli_ctx *ctx, struct store *st, const char *sql, enum cli_format format)
{
	struct print_state ps = {
		.opts = { .format = format, .f = ctx->out, .width = ctx->term_width },
	};
	struct errbuf err = { { 0 } };
	int rc;

	rc = store_query(st, sql, CLI_QUERY_TIMEOUT_MS, print_row_cb, &ps, &err);
	if (rc < 0) {
		output_free(ps.o);
		return query_failed(rc, &err);
	}
	if (ps.rc < 0) {
		output_free(ps.o);
		return cli_error("writing the output: %s", strerror(-ps.rc));
	}
	if (ps.o == NULL) {
		/* No rows: an empty JSON document still parses. */
		if (format == CLI_FORMAT_JSON)
			fputs("[]\n", ctx->out);
		return fflush(ctx->out) == 0 ? CLI_EXIT_OK : cli_error("writing the output");
	}
	rc = output_end(ps.o);
	output_free(ps.o);
	return rc < 0 ? cli_error("writing the output: %s", strerror(-rc)) : CLI_EXIT_OK;
}

static json_t *
typed_value(const char *v, char t)
{
	if (v == NULL || t == 'n')
		return json_null();
	if (t == 'i') {
		int64_t i;

		if (parse_i64(v, &i) == 0)
			return json_integer(i);
	} else if (t == 'r') {
		char *end;
		double d = strtod(v, &end);

		if (*end == '\0')
			return json_real(d);
	}
	return json_string(v);
}

static int
json_row_cb(void *arg, int ncol, const char *const *names, const char *const *values,
            const char *types)
{
	json_t *rows = arg;
	json_t *row = json_object();

	if (row == NULL)
		return 1;
	for (int i = 0; i < ncol; i++) {
		json_t *v = typed_value(values[i], types ? types[i] : 't');

		if (v == NULL) {
			/* A string that is not UTF-8 cannot be a JSON string. */
			v = json_null();
		}
		json_object_set_new(row, names[i], v);
	}
	return json_array_append_new(rows, row) < 0;
}

int
cli_query_json(struct store *st, const char *sql, json_t **ret, struct errbuf *err)
{
	json_t *rows = json_array();
	int rc;

	if (rows == NULL)
		return -ENOMEM;
	rc = store_query(st, sql, CLI_QUERY_TIMEOUT_MS, json_row_cb, rows, err);
	if (rc < 0) {
		json_decref(rows);
		return rc;
	}
	*ret = rows;
	return 0;
}

char *
cli_sql_quote(const char *s)
{
	size_t n = 3;
	char *q, *p;

	for (const char *c = s; *c; c++)
		n += *c == '\'' ? 2 : 1;
	if ((q = malloc(n)) == NULL)
		return NULL;
	p = q;
	*p++ = '\'';
	for (const char *c = s; *c; c++) {
		if (*c == '\'')
			*p++ = '\'';
		*p++ = *c;
	}
	*p++ = '\'';
	*p = '\0';
	return q;
}

void
cli_relative_time(uint64_t then_ms, uint64_t now_ms, char *buf, size_t n)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {
		{ 86400000, "d" },
		{ 3600000, "h" },
		{ 60000, "m" },
		{ 1000, "s" },
	};
	bool future = then_ms > now_ms;
	uint64_t d = future ? then_ms - now_ms : now_ms - then_ms;

	if (d < 1000) {
		snprintf(buf, n, "just now");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (d >= units[i].ms) {
			if (future)
				snprintf(buf, n, "in %" PRIu64 "%s", d / units[i].ms,
				         units[i].unit);
			else
				snprintf(buf, n, "%" PRIu64 "%s ago", d / units[i].ms,
				         units[i].unit);
			return;
		}
	}
}

int
cli_control(const struct cli_ctx *ctx, const char *command, const json_t *args, int timeout_ms,
            int *ret_status, json_t **ret_body)
{
	Daemoneye__ControlRequest req = DAEMONEYE__CONTROL_REQUEST__INIT;
	Daemoneye__ControlResponse *resp;
	ProtobufCMessage *msg = NULL;
	_cleanup_free_ char *args_text = NULL;
	_cleanup_close_ int fd = -1;
	json_t *body = NULL;
	uint16_t type = 0;
	int rc;

	if ((rc = ipc_connect(ctx->socket_path, &fd)) < 0)
		return rc;
	req.command = (char *)command;
	if (args != NULL) {
		if ((args_text = json_dumps(args, JSON_COMPACT)) == NULL)
			return -ENOMEM;
		req.args_json = args_text;
	}
	if ((rc = ipc_send(fd, IPC_CONTROL_REQUEST, &req.base)) < 0)
		return rc;
	if ((rc = ipc_recv(fd, IPC_MAX_CONTROL_RESPONSE, timeout_ms, &type, NULL, &msg)) < 0)
		return rc;
	if (type != IPC_CONTROL_RESPONSE) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return -EBADMSG;
	}
	resp = (Daemoneye__ControlResponse *)msg;
	if (resp->body_json != NULL) {
		body = json_loads(resp->body_json, 0, NULL);
		if (body == NULL) {
			protobuf_c_message_free_unpacked(msg, NULL);
			return -EBADMSG;
		}
	}
	*ret_status = resp->status;
	*ret_body = body;
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}
