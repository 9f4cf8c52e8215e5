/* The collector registry: see registry.h. */
#include "registry.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void
registry_init(struct registry *r)
{
	memset(r, 0, sizeof(*r));
	r->next_correlation = 1;
}

void
registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->c[i].last_health);
	memset(r, 0, sizeof(*r));
}

const char *
collector_status_to_string(enum collector_status s)
{
	static const char *const names[] = {
		[COLLECTOR_REGISTERED] = "registered",
		[COLLECTOR_FAILED] = "failed",
		[COLLECTOR_DISCONNECTED] = "disconnected",
	};

	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

static bool
valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > REGISTRY_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '.'))
			return false;
	return true;
}

struct collector *
registry_find(struct registry *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (streq(r->c[i].id, id))
			return &r->c[i];
	return NULL;
}

int
registry_register(struct registry *r, const Daemoneye__Register *m, void *conn, uid_t uid,
                  pid_t pid, uint64_t now_ms, struct collector **ret, const char **why)
{
	struct collector *c;

	if (!valid_id(m->collector_id)) {
		*why = "collector id must be 1-64 of [a-z0-9_.-]";
		return -EINVAL;
	}
	if (m->protocol_version < IPC_PROTOCOL_MIN) {
		*why = "protocol version too old";
		return -EPROTONOSUPPORT;
	}
	c = registry_find(r, m->collector_id);
	if (c != NULL && c->conn != NULL) {
		*why = "a collector with this id is already connected";
		return -EEXIST;
	}
	if (c == NULL) {
		if (r->n == REGISTRY_MAX) {
			*why = "too many collectors";
			return -ENOSPC;
		}
		c = &r->c[r->n++];
		memset(c, 0, sizeof(*c));
		de_strlcpy(c->id, m->collector_id, sizeof(c->id));
	}
	c->n_caps = 0;
	for (size_t i = 0; i < m->n_capabilities && i < REGISTRY_MAX_CAPS; i++)
		de_strlcpy(c->caps[c->n_caps++], m->capabilities[i], sizeof(c->caps[0]));
	c->protocol_version =
	    m->protocol_version < IPC_PROTOCOL_VERSION ? m->protocol_version : IPC_PROTOCOL_VERSION;
	c->pid = pid;
	c->uid = uid;
	c->heartbeat_interval_s = m->heartbeat_interval_s ? m->heartbeat_interval_s : 30;
	c->status = COLLECTOR_REGISTERED;
	c->conn = conn;
	c->registered_ms = c->last_heartbeat_ms = now_ms;
	c->registrations++;
	c->backpressure = false;
	memset(c->rpc, 0, sizeof(c->rpc));
	*ret = c;
	return 0;
}

void
registry_disconnect(struct registry *r, struct collector *c)
{
	(void)r;
	c->conn = NULL;
	c->status = COLLECTOR_DISCONNECTED;
	c->backpressure = false;
	memset(c->rpc, 0, sizeof(c->rpc));
}

void
registry_heartbeat(struct collector *c, const Daemoneye__Heartbeat *hb, uint64_t now_ms)
{
	c->last_heartbeat_ms = now_ms;
	c->wal_bytes = hb->wal_bytes;
	c->reported_seq = hb->last_seq;
	if (c->status == COLLECTOR_FAILED)
		c->status = COLLECTOR_REGISTERED;
}

int
registry_rpc_begin(struct registry *r, struct collector *c, int method, uint64_t now_ms,
                   Daemoneye__RpcRequest *req)
{
	for (size_t i = 0; i < RPC_MAX_IN_FLIGHT; i++) {
		struct rpc_slot *s = &c->rpc[i];

		if (s->correlation_id != 0)
			continue;
		s->correlation_id = r->next_correlation++;
		s->method = method;
		s->deadline_ms = now_ms + RPC_TIMEOUT_MS;
		daemoneye__rpc_request__init(req);
		req->correlation_id = s->correlation_id;
		req->method = (Daemoneye__RpcMethod)method;
		req->deadline_ms = s->deadline_ms;
		c->rpc_sent++;
		return 0;
	}
	return -EBUSY;
}

int
registry_rpc_end(struct collector *c, const Daemoneye__RpcResponse *resp)
{
	for (size_t i = 0; i < RPC_MAX_IN_FLIGHT; i++) {
		struct rpc_slot *s = &c->rpc[i];
		int method = s->method;

		if (s->correlation_id == 0 || s->correlation_id != resp->correlation_id)
			continue;
		s->correlation_id = 0;
		if (resp->status == DAEMONEYE__RPC_STATUS__RPC_OK)
			c->rpc_ok++;
		else
			c->rpc_failed++;
		if (method == DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK && resp->body_json) {
			char *h = strdup(resp->body_json);

			if (h) {
				free(c->last_health);
				c->last_health = h;
			}
		}
		return method;
	}
	return -ENOENT;
}

void
registry_tick(struct registry *r, uint64_t now_ms, void (*failed)(void *ctx, struct collector *c),
              void *ctx)
{
	for (size_t i = 0; i < r->n; i++) {
		struct collector *c = &r->c[i];
		uint64_t limit;

		for (size_t k = 0; k < RPC_MAX_IN_FLIGHT; k++)
			if (c->rpc[k].correlation_id && now_ms > c->rpc[k].deadline_ms) {
				c->rpc[k].correlation_id = 0;
				c->rpc_timeouts++;
			}
		if (c->status != COLLECTOR_REGISTERED)
			continue;
		/* Three intervals plus a 10% grace period. */
		limit = (uint64_t)c->heartbeat_interval_s * 1000 * HEARTBEAT_MAX_MISSED * 11 / 10;
		if (now_ms - c->last_heartbeat_ms > limit) {
			c->status = COLLECTOR_FAILED;
			if (failed)
				failed(ctx, c);
		}
	}
}

size_t
registry_live(const struct registry *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++)
		if (r->c[i].conn != NULL)
			n++;
	return n;
}

static json_t *
collector_json(const struct collector *c, uint64_t now_ms)
{
	json_t *o = json_object(), *caps = json_array(), *h = NULL;

	if (o == NULL || caps == NULL) {
		json_decref(o);
		json_decref(caps);
		return NULL;
	}
	for (size_t i = 0; i < c->n_caps; i++)
		json_array_append_new(caps, json_string(c->caps[i]));
	if (c->last_health)
		h = json_loads(c->last_health, 0, NULL);
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "status", json_string(collector_status_to_string(c->status)));
	json_object_set_new(o, "pid", json_integer(c->pid));
	json_object_set_new(o, "protocol_version", json_integer(c->protocol_version));
	json_object_set_new(o, "capabilities", caps);
	json_object_set_new(o, "registrations", json_integer((json_int_t)c->registrations));
	json_object_set_new(o, "heartbeat_interval_s", json_integer(c->heartbeat_interval_s));
	json_object_set_new(o, "last_heartbeat_age_ms",
	                    json_integer((json_int_t)(now_ms - c->last_heartbeat_ms)));
	json_object_set_new(o, "events", json_integer((json_int_t)c->events));
	json_object_set_new(
	    o, "events_per_s",
	    json_real(now_ms > c->registered_ms
	                  ? (double)c->events * 1000.0 / (double)(now_ms - c->registered_ms)
	                  : 0.0));
	json_object_set_new(o, "batches", json_integer((json_int_t)c->batches));
	json_object_set_new(o, "replayed", json_integer((json_int_t)c->replayed));
	json_object_set_new(o, "high_water_seq", json_integer((json_int_t)c->high_water));
	json_object_set_new(o, "wal_bytes", json_integer((json_int_t)c->wal_bytes));
	json_object_set_new(o, "backpressure", json_boolean(c->backpressure));
	json_object_set_new(o, "backpressure_events",
	                    json_integer((json_int_t)c->backpressure_events));
	json_object_set_new(o, "rpc_sent", json_integer((json_int_t)c->rpc_sent));
	json_object_set_new(o, "rpc_failed", json_integer((json_int_t)c->rpc_failed));
	json_object_set_new(o, "rpc_timeouts", json_integer((json_int_t)c->rpc_timeouts));
	if (h) {
		/* Lift what an operator looks for first out of the collector's report. */
		json_t *src = json_object_get(h, "source"),
		       *drops = json_object_get(h, "source_drops");

		if (json_is_string(src))
			json_object_set(o, "source", src);
		if (json_is_integer(drops))
			json_object_set(o, "drops", drops);
		json_object_set_new(o, "collector_health", h);
	}
	return o;
}

json_t *
registry_json(const struct registry *r, uint64_t now_ms)
{
	json_t *a = json_array();

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		json_t *o = collector_json(&r->c[i], now_ms);

		if (o == NULL || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
