/* The agent's side of daemoneye-cli requests: one table of commands
 * (STYLE.md rule 10), each turning a request into a JSON document through a
 * callback the agent's main provides. See control.h. */
#include "control.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ipc.h"
#include "util.h"

struct control {
	struct control_callbacks cb;
	uint64_t requests;
	uint64_t errors;
};

/* A handler returns a new document, or NULL with *status and *why set. */
typedef json_t *(*control_cmd_fn)(struct control *c, const json_t *args, int *status,
                                  const char **why);

static json_t *
cmd_ping(struct control *c, const json_t *args, int *status, const char **why)
{
	(void)c;
	(void)args;
	(void)status;
	(void)why;
	return json_pack("{sb ss}", "pong", 1, "version", DAEMONEYE_VERSION);
}

static json_t *
call(control_json_fn fn, struct control *c, const json_t *args, int *status, const char **why,
     const char *what)
{
	json_t *doc;

	if (fn == NULL) {
		*status = CONTROL_STATUS_FAILED;
		*why = what;
		return NULL;
	}
	if ((doc = fn(c->cb.ctx, args)) == NULL) {
		*status = CONTROL_STATUS_FAILED;
		*why = "the agent could not build the answer";
	}
	return doc;
}

static json_t *
cmd_health(struct control *c, const json_t *args, int *status, const char **why)
{
	return call(c->cb.health, c, args, status, why, "health is not available");
}

static json_t *
cmd_stats(struct control *c, const json_t *args, int *status, const char **why)
{
	return call(c->cb.stats, c, args, status, why, "stats are not available");
}

static json_t *
cmd_rules(struct control *c, const json_t *args, int *status, const char **why)
{
	return call(c->cb.rules, c, args, status, why, "the rule list is not available");
}

static const struct {
	const char *name;
	control_cmd_fn fn;
} control_commands[] = {
	{ "ping", cmd_ping },
	{ "health", cmd_health },
	{ "stats", cmd_stats },
	{ "rules.list", cmd_rules },
};

int
control_new(const struct control_callbacks *cb, struct control **ret)
{
	struct control *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	if (cb != NULL)
		c->cb = *cb;
	*ret = c;
	return 0;
}

void
control_free(struct control *c)
{
	free(c);
}

static int
pack_response(int status, const char *body, uint8_t **ret_frame, size_t *ret_len)
{
	Daemoneye__ControlResponse resp = DAEMONEYE__CONTROL_RESPONSE__INIT;

	resp.status = status;
	resp.body_json = (char *)body;
	return ipc_frame_pack(IPC_CONTROL_RESPONSE, 0, &resp.base, IPC_MAX_CONTROL_RESPONSE,
	                      ret_frame, ret_len);
}

static int
pack_error(int status, const char *why, uint8_t **ret_frame, size_t *ret_len)
{
	_cleanup_free_ char *body = NULL;
	json_t *o = json_pack("{ss}", "error", why);

	if (o == NULL)
		return -ENOMEM;
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL)
		return -ENOMEM;
	return pack_response(status, body, ret_frame, ret_len);
}

/* Runs the named command. Returns the document or NULL with status/why set. */
static json_t *
dispatch(struct control *c, const Daemoneye__ControlRequest *req, int *status, const char **why)
{
	json_t *args = NULL, *doc = NULL;

	if (strnlen(req->command, CONTROL_MAX_COMMAND + 1) > CONTROL_MAX_COMMAND) {
		*why = "command name too long";
		return NULL;
	}
	if (req->args_json != NULL) {
		size_t n = strnlen(req->args_json, CONTROL_MAX_ARGS + 1);

		if (n > CONTROL_MAX_ARGS) {
			*why = "arguments too long";
			return NULL;
		}
		args = json_loadb(req->args_json, n, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(args)) {
			json_decref(args);
			*why = "arguments are not a JSON object";
			return NULL;
		}
	}
	*why = "unknown command";
	for (size_t i = 0; i < ARRAY_SIZE(control_commands); i++) {
		if (streq(control_commands[i].name, req->command)) {
			*status = CONTROL_STATUS_OK;
			doc = control_commands[i].fn(c, args, status, why);
			break;
		}
	}
	json_decref(args);
	return doc;
}

int
control_respond(struct control *c, const void *req, size_t len, uint8_t **ret_frame,
                size_t *ret_len)
{
	ProtobufCMessage *msg = NULL;
	_cleanup_free_ char *body = NULL;
	const char *why = NULL;
	int status = CONTROL_STATUS_BAD_REQUEST;
	json_t *doc;
	int rc;

	__atomic_add_fetch(&c->requests, 1, __ATOMIC_RELAXED);
	if ((rc = ipc_payload_unpack(IPC_CONTROL_REQUEST, req, len, &msg)) < 0) {
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		return rc;
	}
	doc = dispatch(c, (Daemoneye__ControlRequest *)msg, &status, &why);
	protobuf_c_message_free_unpacked(msg, NULL);
	if (doc == NULL) {
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		return pack_error(status ? status : CONTROL_STATUS_FAILED, why, ret_frame, ret_len);
	}
	body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (body == NULL)
		return -ENOMEM;
	rc = pack_response(CONTROL_STATUS_OK, body, ret_frame, ret_len);
	if (rc == -EMSGSIZE) {
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		return pack_error(CONTROL_STATUS_FAILED, "the answer is larger than a frame may be",
		                  ret_frame, ret_len);
	}
	return rc;
}

int
control_handle(struct control *c, int fd, const void *req, size_t len)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	if ((rc = control_respond(c, req, len, &frame, &n)) < 0)
		return rc;
	return write_all(fd, frame, n);
}

void
control_get_stats(const struct control *c, struct control_stats *ret)
{
	ret->requests = __atomic_load_n(&c->requests, __ATOMIC_RELAXED);
	ret->errors = __atomic_load_n(&c->errors, __ATOMIC_RELAXED);
}
