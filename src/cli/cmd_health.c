/* `health`: asks the running agent over its control socket (a ControlRequest
 * "health" frame, a ControlResponse back) and prints its answer: state,
 * uptime, collectors, sinks, rule timings, store size. Exit 1 with a clear
 * message when no agent answers. */
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "cli.h"
#include "output.h"

#define HEALTH_TIMEOUT_MS 5000

/* The message for a failed exchange with the agent. Returns CLI_EXIT_FAILURE. */
static int
agent_unreachable(const struct cli_ctx *ctx, int rc)
{
	switch (rc) {
	case -ENOENT:
	case -ECONNREFUSED:
		return cli_error("the agent is not running: nothing listens on %s "
		                 "(start daemoneye-agent, or point --socket/--data-dir at it)",
		                 ctx->socket_path);
	case -EACCES:
	case -EPERM:
		return cli_error("permission denied on %s: run as root or as a member of "
		                 "the agent's group",
		                 ctx->socket_path);
	case -ECONNRESET:
	case -EPIPE:
		return cli_error("the agent at %s closed the connection without answering: it "
		                 "admits only root, its own user and its group (see its log)",
		                 ctx->socket_path);
	case -ETIMEDOUT:
		return cli_error("the agent at %s did not answer within %d ms", ctx->socket_path,
		                 HEALTH_TIMEOUT_MS);
	case -ENAMETOOLONG:
		return cli_error("socket path too long: %s", ctx->socket_path);
	default:
		return cli_error("talking to the agent at %s: %s", ctx->socket_path, strerror(-rc));
	}
}

int
cmd_health(struct cli_ctx *ctx, int argc, char **argv)
{
	json_t *body = NULL;
	int status = 0, rc;

	(void)argv;
	if (argc > 1)
		return cli_usage_error("health: takes no arguments");
	rc = cli_control(ctx, "health", NULL, HEALTH_TIMEOUT_MS, &status, &body);
	if (rc < 0)
		return agent_unreachable(ctx, rc);
	if (status != 0) {
		const char *why = json_string_value(json_object_get(body, "error"));

		rc = cli_error("the agent refused 'health': %s", why ? why : "no reason given");
		json_decref(body);
		return rc;
	}
	if (body == NULL)
		return cli_error("the agent sent an empty health answer");
	rc = output_document(ctx->format, ctx->out, body);
	json_decref(body);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}
