/* control: the agent's side of daemoneye-cli requests (SPEC §3 health, stats,
 * rules list, ping).
 *
 * The broker owns the socket and the accept loop. When a connection's first
 * frame is an IPC_CONTROL_REQUEST it hands the payload to control_respond()
 * (non-blocking servers: queue the returned frame) or control_handle() (writes
 * the answer to the fd, blocking). A request is one ControlRequest: a command
 * name and optional JSON-object arguments (at most CONTROL_MAX_ARGS bytes).
 * The answer is one ControlResponse: status 0 with a JSON document, or a
 * non-zero status (CONTROL_STATUS_*) with {"error": "..."}. An unknown command
 * is an error answer, not a dropped connection; a payload that does not unpack
 * is -EBADMSG (the caller closes the connection).
 *
 * The documents come from callbacks the agent's main provides, so this module
 * knows nothing of the store, detect or the registry: each returns a new JSON
 * reference, or NULL when it cannot (answered as an error). */
#ifndef DE_AGENT_CONTROL_H
#define DE_AGENT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct json_t;
struct control;

#define CONTROL_MAX_ARGS    (64u * 1024) /* bytes of args_json */
#define CONTROL_MAX_COMMAND 64           /* bytes of a command name */

/* Status values of a ControlResponse (exit-code-like, as the CLI maps them). */
#define CONTROL_STATUS_OK          0
#define CONTROL_STATUS_FAILED      1 /* the agent could not produce the answer */
#define CONTROL_STATUS_BAD_REQUEST 2 /* unknown command or bad arguments */

/* Builds a JSON document for one command. args is the request's JSON object
 * (borrowed; NULL when absent). Returns a new reference or NULL on failure. */
typedef struct json_t *(*control_json_fn)(void *ctx, const struct json_t *args);

struct control_callbacks {
	control_json_fn health; /* the full health document (agent main assembles it) */
	control_json_fn stats;  /* store_stats_json of the agent's store */
	control_json_fn rules;  /* the loaded rules, e.g. from detect */
	void *ctx;              /* passed to every callback */
};

/* Creates the handler. cb is copied; NULL callbacks answer "not available".
 * Returns 0 and sets *ret, or -ENOMEM. */
int control_new(const struct control_callbacks *cb, struct control **ret);
/* Frees; accepts NULL. */
void control_free(struct control *c);

/* Answers one request payload (the bytes after the frame header). On success
 * *ret_frame (caller frees) holds a whole IPC_CONTROL_RESPONSE frame of
 * *ret_len bytes. Returns 0, -EBADMSG for a payload that is not a
 * ControlRequest, -ENOMEM, or -EMSGSIZE when the answer exceeds
 * IPC_MAX_CONTROL_RESPONSE (an error answer is produced instead when possible). */
int control_respond(struct control *c, const void *req, size_t len, uint8_t **ret_frame,
                    size_t *ret_len);

/* control_respond() and then writes the frame to fd (blocking, retrying short
 * writes). Returns 0 or -errno. */
int control_handle(struct control *c, int fd, const void *req, size_t len);

/* Counters for the agent's own health document. */
struct control_stats {
	uint64_t requests;
	uint64_t errors; /* error answers and bad payloads */
};
void control_get_stats(const struct control *c, struct control_stats *ret);

#endif
