/* control.c: the agent's answers to daemoneye-cli requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/control.h"
#include "ipc.h"

static int health_calls;

static json_t *
fake_health(void *ctx, const json_t *args)
{
	(void)args;
	health_calls++;
	return json_pack("{ss si}", "state", (const char *)ctx, "uptime_s", 42);
}

static json_t *
fake_rules(void *ctx, const json_t *args)
{
	const char *only = json_string_value(json_object_get(args, "id"));

	(void)ctx;
	return json_pack("[{ss}]", "id", only ? only : "all");
}

static json_t *
failing(void *ctx, const json_t *args)
{
	(void)ctx;
	(void)args;
	return NULL;
}

/* Packs a ControlRequest payload. */
static uint8_t *
request(const char *command, const char *args, size_t *len)
{
	Daemoneye__ControlRequest req = DAEMONEYE__CONTROL_REQUEST__INIT;
	uint8_t *buf;

	req.command = (char *)command;
	req.args_json = (char *)args;
	*len = protobuf_c_message_get_packed_size(&req.base);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	protobuf_c_message_pack(&req.base, buf);
	return buf;
}

/* Answers one request and decodes the response frame. */
static int
ask(struct control *c, const char *command, const char *args, json_t **body)
{
	size_t len, n = 0;
	uint8_t *req = request(command, args, &len);
	uint8_t *frame = NULL;
	const uint8_t *payload;
	struct ipc_header h;
	ProtobufCMessage *msg;
	int status;

	assert_int_equal(control_respond(c, req, len, &frame, &n), 0);
	assert_int_equal(ipc_frame_decode(frame, n, IPC_MAX_CONTROL_RESPONSE, &h, &payload),
	                 (int)n);
	assert_int_equal(h.type, IPC_CONTROL_RESPONSE);
	assert_int_equal(ipc_payload_unpack(h.type, payload, h.len, &msg), 0);
	status = ((Daemoneye__ControlResponse *)msg)->status;
	*body = json_loads(((Daemoneye__ControlResponse *)msg)->body_json, 0, NULL);
	assert_non_null(*body);
	protobuf_c_message_free_unpacked(msg, NULL);
	free(frame);
	free(req);
	return status;
}

static struct control *
new_control(void)
{
	struct control_callbacks cb = { .health = fake_health,
		                        .rules = fake_rules,
		                        .stats = failing,
		                        .ctx = (void *)"running" };
	struct control *c = NULL;

	assert_int_equal(control_new(&cb, &c), 0);
	return c;
}

static void
test_commands(void **state)
{
	struct control *c = new_control();
	json_t *body;

	(void)state;
	assert_int_equal(ask(c, "ping", NULL, &body), CONTROL_STATUS_OK);
	assert_true(json_is_true(json_object_get(body, "pong")));
	json_decref(body);

	health_calls = 0;
	assert_int_equal(ask(c, "health", NULL, &body), CONTROL_STATUS_OK);
	assert_string_equal(json_string_value(json_object_get(body, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(body, "uptime_s")), 42);
	assert_int_equal(health_calls, 1);
	json_decref(body);

	assert_int_equal(ask(c, "rules.list", "{\"id\":\"x\"}", &body), CONTROL_STATUS_OK);
	assert_string_equal(json_string_value(json_object_get(json_array_get(body, 0), "id")), "x");
	json_decref(body);
	control_free(c);
}

static void
test_errors_are_answers(void **state)
{
	struct control *c = new_control();
	struct control_stats st;
	json_t *body;

	(void)state;
	assert_int_equal(ask(c, "rm -rf", NULL, &body), CONTROL_STATUS_BAD_REQUEST);
	assert_string_equal(json_string_value(json_object_get(body, "error")), "unknown command");
	json_decref(body);
	assert_int_equal(ask(c, "rules.list", "[1,2]", &body), CONTROL_STATUS_BAD_REQUEST);
	json_decref(body);
	assert_int_equal(ask(c, "rules.list", "{not json", &body), CONTROL_STATUS_BAD_REQUEST);
	json_decref(body);
	/* The callback could not answer. */
	assert_int_equal(ask(c, "stats", NULL, &body), CONTROL_STATUS_FAILED);
	assert_non_null(json_object_get(body, "error"));
	json_decref(body);
	control_get_stats(c, &st);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.errors, 4);
	control_free(c);

	/* No callbacks at all: "not available", not a crash. */
	assert_int_equal(control_new(NULL, &c), 0);
	assert_int_equal(ask(c, "health", NULL, &body), CONTROL_STATUS_FAILED);
	json_decref(body);
	control_free(c);
}

static void
test_bounds_and_garbage(void **state)
{
	struct control *c = new_control();
	uint8_t junk[64], *frame = NULL;
	char name[CONTROL_MAX_COMMAND + 8];
	char *args = malloc(CONTROL_MAX_ARGS + 16);
	size_t n = 0;
	json_t *body;

	(void)state;
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(control_respond(c, junk, sizeof(junk), &frame, &n), -EBADMSG);
	assert_null(frame);
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(ask(c, name, NULL, &body), CONTROL_STATUS_BAD_REQUEST);
	json_decref(body);
	assert_non_null(args);
	memset(args, ' ', CONTROL_MAX_ARGS + 8);
	args[0] = '{';
	memcpy(args + CONTROL_MAX_ARGS + 6, "}", 2);
	assert_int_equal(ask(c, "health", args, &body), CONTROL_STATUS_BAD_REQUEST);
	assert_string_equal(json_string_value(json_object_get(body, "error")),
	                    "arguments too long");
	json_decref(body);
	free(args);
	control_free(c);
	control_free(NULL);
}

static void
test_handle_writes_a_frame(void **state)
{
	struct control *c = new_control();
	int sv[2];
	size_t len;
	uint8_t *req = request("ping", NULL, &len);
	ProtobufCMessage *msg = NULL;
	uint16_t type = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(control_handle(c, sv[0], req, len), 0);
	assert_int_equal(ipc_recv(sv[1], IPC_MAX_CONTROL_RESPONSE, 1000, &type, NULL, &msg), 0);
	assert_int_equal(type, IPC_CONTROL_RESPONSE);
	assert_int_equal(((Daemoneye__ControlResponse *)msg)->status, 0);
	protobuf_c_message_free_unpacked(msg, NULL);
	close(sv[0]);
	close(sv[1]);
	free(req);
	control_free(c);
}

static json_t *
huge_rules(void *ctx, const json_t *args)
{
	size_t n = IPC_MAX_CONTROL_RESPONSE + 1024;
	char *s = malloc(n + 1);
	json_t *o;

	(void)ctx;
	(void)args;
	assert_non_null(s);
	memset(s, 'a', n);
	s[n] = '\0';
	o = json_pack("{s:s}", "blob", s);
	free(s);
	return o;
}

/* An answer larger than a frame may be becomes an error answer (counted),
 * and a payload that is not a request is refused by control_handle without
 * writing anything. */
static void
test_oversized_answer_and_bad_handle(void **state)
{
	struct control_callbacks cb = { .rules = huge_rules };
	struct control_stats st;
	struct control *c = NULL;
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };
	json_t *body;
	char buf[16];
	int sv[2];

	(void)state;
	assert_int_equal(control_new(&cb, &c), 0);
	assert_int_equal(ask(c, "rules.list", NULL, &body), CONTROL_STATUS_FAILED);
	assert_non_null(strstr(json_string_value(json_object_get(body, "error")), "larger"));
	json_decref(body);
	control_get_stats(c, &st);
	assert_int_equal(st.requests, 1);
	assert_int_equal(st.errors, 1);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(control_handle(c, sv[0], junk, sizeof(junk)), -EBADMSG);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);
	control_free(c);
	control_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_errors_are_answers),
		cmocka_unit_test(test_bounds_and_garbage),
		cmocka_unit_test(test_handle_writes_a_frame),
		cmocka_unit_test(test_oversized_answer_and_bad_handle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
