/* The collector registry: who is registered, their heartbeats, their
 * in-flight RPCs (docs/pipeline.md "Registration, heartbeats, RPC").
 *
 * A passive table owned by the engine thread; the broker fills it from frames
 * and the engine's 1-second tick ages it. A collector keeps its row (with
 * counters) after it disconnects, so health shows what happened to it. */
#ifndef DE_AGENT_REGISTRY_H
#define DE_AGENT_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"

struct json_t;

#define REGISTRY_MAX         16
#define REGISTRY_ID_MAX      64
#define REGISTRY_MAX_CAPS    16
#define RPC_MAX_IN_FLIGHT    10
#define RPC_TIMEOUT_MS       30000
#define HEARTBEAT_MAX_MISSED 3

enum collector_status {
	COLLECTOR_REGISTERED = 0, /* connected, heartbeats on time */
	COLLECTOR_FAILED,         /* HEARTBEAT_MAX_MISSED heartbeats missed */
	COLLECTOR_DISCONNECTED,
};

struct rpc_slot {
	uint64_t correlation_id; /* 0: free */
	int method;              /* Daemoneye__RpcMethod */
	uint64_t deadline_ms;    /* monotonic */
};

struct collector {
	char id[REGISTRY_ID_MAX + 1];
	char caps[REGISTRY_MAX_CAPS][32];
	size_t n_caps;
	uint32_t protocol_version;
	pid_t pid;
	uid_t uid;
	uint32_t heartbeat_interval_s;
	enum collector_status status;
	void *conn;                                /* the broker's connection while connected */
	uint64_t registered_ms, last_heartbeat_ms; /* monotonic */
	uint64_t registrations;
	uint64_t events, batches, replayed;
	uint64_t high_water;
	uint64_t wal_bytes, reported_seq;
	bool backpressure;
	uint64_t backpressure_events;
	struct rpc_slot rpc[RPC_MAX_IN_FLIGHT];
	uint64_t rpc_sent, rpc_ok, rpc_failed, rpc_timeouts;
	char *last_health; /* body of the last HEALTH_CHECK answer (JSON text) */
};

struct registry {
	struct collector c[REGISTRY_MAX];
	size_t n;
	uint64_t next_correlation;
};

void registry_init(struct registry *r);
void registry_free(struct registry *r);

/* Checks a Register message: an id of [a-z0-9_.-]{1,64}, a protocol version
 * this agent speaks, no live collector with that id. On refusal returns
 * -EINVAL/-EPROTONOSUPPORT/-EEXIST/-ENOSPC and a reason in why. On success
 * returns 0 with *ret the (new or reused) row, connected to conn. */
int registry_register(struct registry *r, const Daemoneye__Register *m, void *conn, uid_t uid,
                      pid_t pid, uint64_t now_ms, struct collector **ret, const char **why);

struct collector *registry_find(struct registry *r, const char *id);
void registry_disconnect(struct registry *r, struct collector *c);
void registry_heartbeat(struct collector *c, const Daemoneye__Heartbeat *hb, uint64_t now_ms);

/* Reserves an RPC slot. Returns 0 and fills req (correlation id, method,
 * deadline), or -EBUSY when RPC_MAX_IN_FLIGHT are outstanding. */
int registry_rpc_begin(struct registry *r, struct collector *c, int method, uint64_t now_ms,
                       Daemoneye__RpcRequest *req);
/* Matches a response to its slot. Returns the method (>= 0) or -ENOENT for
 * an unknown or expired correlation id. */
int registry_rpc_end(struct collector *c, const Daemoneye__RpcResponse *resp);

/* Ages the table: expires RPCs and marks collectors whose heartbeats are
 * HEARTBEAT_MAX_MISSED intervals (plus 10%) late as failed. Calls failed(c)
 * once per newly failed collector. */
void registry_tick(struct registry *r, uint64_t now_ms,
                   void (*failed)(void *ctx, struct collector *c), void *ctx);

/* Number of connected, registered collectors. */
size_t registry_live(const struct registry *r);

/* [{"id","status","pid","capabilities",...}] (new reference; NULL on OOM). */
struct json_t *registry_json(const struct registry *r, uint64_t now_ms);

const char *collector_status_to_string(enum collector_status s);

#endif
