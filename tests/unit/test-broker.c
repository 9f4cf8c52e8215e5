/* The broker and the registry: back-pressure on and off at 70% / 50% of the
 * per-client queue with acks carrying the ingest high-water, registration
 * rules, RPC slots and heartbeat failure. The engine's loop is played by
 * pump(): epoll events are dispatched, broker_process() runs only when the
 * test lets the "engine" ingest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/control.h"
#include "broker.h"
#include "ingest.h"
#include "ipc.h"
#include "registry.h"
#include "store.h"
#include "supervise.h"
#include "timeutil.h"

struct fake_engine {
	uint64_t batches, events, last_seq;
};

static int
fake_ingest(void *ctx, struct collector *c, const Daemoneye__ProcessEventBatch *b, uint64_t *ret)
{
	struct fake_engine *e = ctx;

	(void)c;
	e->batches++;
	e->events += b->n_events;
	/* Merged batches keep the collector's order, none repeated or lost. */
	for (size_t i = 0; i < b->n_events; i++)
		assert_int_equal(b->events[i]->seq, e->last_seq + 1 + i);
	if (b->n_events)
		e->last_seq = b->events[b->n_events - 1]->seq;
	*ret = e->last_seq;
	return 0;
}

static int
fake_high_water(void *ctx, const char *id, uint64_t *ret)
{
	(void)ctx;
	(void)id;
	*ret = 0;
	return 0;
}

static void
pump(int epfd, int ms)
{
	struct epoll_event evs[16];
	int n = epoll_wait(epfd, evs, 16, ms);

	for (int i = 0; i < n; i++) {
		struct ev_watch *w = evs[i].data.ptr;

		w->fn(w->ctx, evs[i].events);
	}
}

static void
register_client(int fd, int epfd, const char *id, bool want_accept)
{
	Daemoneye__Register r = DAEMONEYE__REGISTER__INIT;
	ProtobufCMessage *m = NULL;
	uint16_t type = 0;

	r.collector_id = (char *)id;
	r.protocol_version = IPC_PROTOCOL_VERSION;
	r.heartbeat_interval_s = 30;
	assert_int_equal(ipc_send(fd, IPC_REGISTER, &r.base), 0);
	pump(epfd, 100);
	assert_int_equal(ipc_recv(fd, IPC_MAX_COLLECTOR, 1000, &type, NULL, &m), 0);
	assert_int_equal(type, IPC_REGISTER_ACK);
	assert_int_equal(((Daemoneye__RegisterAck *)m)->accepted, want_accept);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* One batch of 8 events with 60 KB command lines: ~480 KB. */
static int
batch_frame(uint64_t first_seq, uint8_t **ret, size_t *len)
{
	static char cmd[60 * 1024];
	struct process_event e[8];
	Daemoneye__ProcessEvent pb[8], *pp[8];
	Daemoneye__ProcessRecord rec[8];
	Daemoneye__ProcessEventBatch b = DAEMONEYE__PROCESS_EVENT_BATCH__INIT;

	memset(cmd, 'x', sizeof(cmd) - 1);
	for (int i = 0; i < 8; i++) {
		process_event_init(&e[i]);
		e[i].seq = first_seq + (uint64_t)i;
		e[i].proc.pid = 100 + i;
		e[i].proc.command_line = cmd;
		ipc_event_to_pb(&e[i], &pb[i], &rec[i]);
		pp[i] = &pb[i];
	}
	b.events = pp;
	b.n_events = 8;
	return ipc_frame_pack(IPC_EVENTS, 0, &b.base, IPC_MAX_COLLECTOR, ret, len);
}

/* Reads what the broker sent; counts back-pressure frames and the last ack. */
struct seen {
	int bp_on, bp_off;
	uint64_t acked;
	struct ipc_reader rd;
};

static void
drain(int fd, struct seen *s)
{
	struct ipc_header h;
	const uint8_t *payload;

	while (ipc_reader_fill(&s->rd, fd) > 0)
		while (ipc_reader_next(&s->rd, &h, &payload) == 1) {
			ProtobufCMessage *m = NULL;

			assert_int_equal(ipc_payload_unpack(h.type, payload, h.len, &m), 0);
			if (h.type == IPC_BACKPRESSURE) {
				if (((Daemoneye__Backpressure *)m)->on)
					s->bp_on++;
				else
					s->bp_off++;
			} else if (h.type == IPC_ACK) {
				s->acked = ((Daemoneye__Ack *)m)->high_water_seq;
			}
			protobuf_c_message_free_unpacked(m, NULL);
		}
}

static void
test_backpressure_on_off_and_acks(void **state)
{
	char dir[] = "/tmp/test-broker-XXXXXX", path[128];
	struct fake_engine eng = { 0 };
	struct broker_ops ops = { .ingest = fake_ingest,
		                  .high_water = fake_high_water,
		                  .ctx = &eng };
	struct registry reg;
	struct broker *b = NULL;
	struct errbuf err = { 0 };
	struct seen seen = { 0 };
	struct ipc_writer out;
	uint64_t seq = 1;
	bool more = true;
	int epfd, fd = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	registry_init(&reg);
	assert_true((epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	assert_int_equal(broker_new(epfd, path, &reg, NULL, &ops, &b, &err), 0);
	assert_int_equal(ipc_connect(path, &fd), 0);
	pump(epfd, 100); /* accept */
	register_client(fd, epfd, "bp-test", true);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	ipc_reader_init(&seen.rd, IPC_MAX_COLLECTOR);
	ipc_writer_init(&out, 64u << 20);

	/* The engine is busy: nothing is ingested, the queue fills to 70%. */
	for (int round = 0; round < 400 && seen.bp_on == 0; round++) {
		if (ipc_writer_queued(&out) < (1u << 20)) {
			uint8_t *f = NULL;
			size_t n = 0;

			assert_int_equal(batch_frame(seq, &f, &n), 0);
			assert_int_equal(ipc_writer_push_raw(&out, f, n), 0);
			free(f);
			seq += 8;
		}
		assert_true(ipc_writer_flush(&out, fd) >= 0);
		pump(epfd, 5);
		drain(fd, &seen);
	}
	assert_int_equal(seen.bp_on, 1);
	assert_true(broker_queued_bytes(b) >= (size_t)BROKER_QUEUE_MAX * BROKER_BP_ON_PCT / 100);
	assert_int_equal(eng.batches, 0);

	/* The engine catches up: below 50% back-pressure goes off; every batch
	 * is acknowledged with its high-water, nothing was dropped. */
	while (more || ipc_writer_queued(&out) > 0) {
		broker_process(b, 1, &more);
		(void)ipc_writer_flush(&out, fd);
		pump(epfd, 1);
		drain(fd, &seen);
	}
	for (int i = 0; i < 50 && seen.acked < seq - 1; i++) {
		pump(epfd, 5);
		broker_process(b, 64, &more);
		drain(fd, &seen);
	}
	assert_int_equal(seen.bp_off, 1);
	assert_int_equal(eng.events, seq - 1);
	/* The batches that waited together were ingested together (one
	 * transaction each), up to BROKER_MERGE_MAX_EVENTS events. */
	assert_true(eng.batches < (seq - 1) / 8);
	assert_int_equal(seen.acked, seq - 1);
	assert_int_equal(broker_queued_bytes(b), 0);

	close(fd);
	pump(epfd, 50);
	broker_process(b, 1, &more); /* reaps the closed connection */
	assert_int_equal(registry_live(&reg), 0);
	ipc_writer_free(&out);
	ipc_reader_free(&seen.rd);
	broker_free(b);
	registry_free(&reg);
	close(epfd);
	rmdir(dir);
}

static void
test_registry_rules_rpc_and_heartbeats(void **state)
{
	struct registry reg;
	Daemoneye__Register r = DAEMONEYE__REGISTER__INIT;
	Daemoneye__RpcRequest req;
	Daemoneye__RpcResponse resp = DAEMONEYE__RPC_RESPONSE__INIT;
	struct collector *c = NULL, *c2 = NULL;
	const char *why = NULL;
	int conn1, conn2;
	uint64_t ids[RPC_MAX_IN_FLIGHT];

	(void)state;
	registry_init(&reg);
	r.collector_id = (char *)"Bad Id";
	r.protocol_version = 1;
	assert_int_equal(registry_register(&reg, &r, &conn1, 0, 1, 0, &c, &why), -EINVAL);
	r.collector_id = (char *)"procmond";
	r.protocol_version = 0;
	assert_int_equal(registry_register(&reg, &r, &conn1, 0, 1, 0, &c, &why), -EPROTONOSUPPORT);
	r.protocol_version = 99; /* newer peer: we speak ours */
	r.heartbeat_interval_s = 1;
	assert_int_equal(registry_register(&reg, &r, &conn1, 0, 1, 1000, &c, &why), 0);
	assert_int_equal(c->protocol_version, IPC_PROTOCOL_VERSION);
	assert_int_equal(registry_register(&reg, &r, &conn2, 0, 2, 1000, &c2, &why), -EEXIST);

	/* At most RPC_MAX_IN_FLIGHT outstanding; a response frees its slot. */
	for (int i = 0; i < RPC_MAX_IN_FLIGHT; i++) {
		assert_int_equal(registry_rpc_begin(
		                     &reg, c, DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK, 1000, &req),
		                 0);
		ids[i] = req.correlation_id;
	}
	assert_int_equal(registry_rpc_begin(&reg, c, 0, 1000, &req), -EBUSY);
	resp.correlation_id = ids[3];
	resp.body_json = (char *)"{\"ok\":true}";
	assert_int_equal(registry_rpc_end(c, &resp), DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK);
	assert_string_equal(c->last_health, "{\"ok\":true}");
	assert_int_equal(registry_rpc_end(c, &resp), -ENOENT); /* answered already */
	assert_int_equal(registry_rpc_begin(&reg, c, 0, 1000, &req), 0);
	/* 30 s later the rest time out. */
	registry_tick(&reg, 1000 + RPC_TIMEOUT_MS + 1, NULL, NULL);
	assert_int_equal(c->rpc_timeouts, RPC_MAX_IN_FLIGHT);
	/* Heartbeats every 1 s: 3 missed plus 10% fails it. */
	assert_int_equal(c->status, COLLECTOR_FAILED);
	registry_disconnect(&reg, c);
	assert_int_equal(registry_live(&reg), 0);
	/* After it left it may come back under the same id. */
	assert_int_equal(registry_register(&reg, &r, &conn2, 0, 3, 50000, &c2, &why), 0);
	assert_ptr_equal(c, c2);
	assert_int_equal(c2->registrations, 2);
	registry_heartbeat(c2, &(Daemoneye__Heartbeat){ .last_seq = 5 }, 52000);
	registry_tick(&reg, 53000, NULL, NULL);
	assert_int_equal(c2->status, COLLECTOR_REGISTERED);
	registry_free(&reg);
}

static void
count_failed(void *ctx, struct collector *c)
{
	(void)c;
	(*(int *)ctx)++;
}

/* The table's limits, the failed-collector callback and its health rows. */
static void
test_registry_limits_and_json(void **state)
{
	struct registry reg;
	Daemoneye__Register r = DAEMONEYE__REGISTER__INIT;
	Daemoneye__RpcResponse resp = DAEMONEYE__RPC_RESPONSE__INIT;
	Daemoneye__RpcRequest req;
	char *caps[] = { (char *)"exec", (char *)"hash" };
	struct collector *c = NULL, *first = NULL;
	const char *why = NULL;
	char id[32];
	int conn[REGISTRY_MAX + 1], failed = 0;
	json_t *a, *o;

	(void)state;
	registry_init(&reg);
	r.protocol_version = IPC_PROTOCOL_VERSION;
	r.collector_id = (char *)"";
	assert_int_equal(registry_register(&reg, &r, &conn[0], 0, 1, 0, &c, &why), -EINVAL);
	r.collector_id =
	    (char *)"a234567890123456789012345678901234567890123456789012345678901234x";
	assert_int_equal(registry_register(&reg, &r, &conn[0], 0, 1, 0, &c, &why), -EINVAL);
	for (int i = 0; i < REGISTRY_MAX; i++) {
		snprintf(id, sizeof(id), "col-%d", i);
		r.collector_id = id;
		r.heartbeat_interval_s = i == 0 ? 0 : 1; /* 0: the default, 30 s */
		r.capabilities = caps;
		r.n_capabilities = 2;
		assert_int_equal(registry_register(&reg, &r, &conn[i], 0, 100 + i, 1000, &c, &why),
		                 0);
		if (i == 0)
			first = c;
	}
	assert_int_equal(first->heartbeat_interval_s, 30);
	r.collector_id = (char *)"one-too-many";
	assert_int_equal(registry_register(&reg, &r, &conn[REGISTRY_MAX], 0, 1, 1000, &c, &why),
	                 -ENOSPC);
	assert_non_null(strstr(why, "too many"));
	assert_int_equal(registry_live(&reg), REGISTRY_MAX);
	assert_ptr_equal(registry_find(&reg, "col-0"), first);
	assert_null(registry_find(&reg, "nope"));

	/* A failed RPC, and a health answer naming the event source. */
	c = registry_find(&reg, "col-1");
	assert_int_equal(
	    registry_rpc_begin(&reg, c, DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK, 1000, &req), 0);
	resp.correlation_id = req.correlation_id;
	resp.status = DAEMONEYE__RPC_STATUS__RPC_OK;
	resp.body_json = (char *)"{\"source\":\"netlink\",\"source_drops\":7}";
	assert_int_equal(registry_rpc_end(c, &resp), DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK);
	assert_int_equal(registry_rpc_begin(&reg, c, 0, 1000, &req), 0);
	resp.correlation_id = req.correlation_id;
	resp.status = DAEMONEYE__RPC_STATUS__RPC_ERROR;
	resp.body_json = NULL;
	assert_int_equal(registry_rpc_end(c, &resp), 0);
	assert_int_equal(c->rpc_failed, 1);

	/* 4 s later every 1 s collector has failed, once; the 30 s one has not. */
	registry_tick(&reg, 5000, count_failed, &failed);
	assert_int_equal(failed, REGISTRY_MAX - 1);
	registry_tick(&reg, 6000, count_failed, &failed);
	assert_int_equal(failed, REGISTRY_MAX - 1);
	assert_int_equal(first->status, COLLECTOR_REGISTERED);
	registry_disconnect(&reg, first);

	a = registry_json(&reg, 6000);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), REGISTRY_MAX);
	o = json_array_get(a, 0);
	assert_string_equal(json_string_value(json_object_get(o, "id")), "col-0");
	assert_string_equal(json_string_value(json_object_get(o, "status")), "disconnected");
	assert_int_equal(json_integer_value(json_object_get(o, "pid")), 100);
	assert_int_equal(json_array_size(json_object_get(o, "capabilities")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "last_heartbeat_age_ms")), 5000);
	assert_null(json_object_get(o, "collector_health"));
	o = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
	assert_string_equal(json_string_value(json_object_get(o, "source")), "netlink");
	assert_int_equal(json_integer_value(json_object_get(o, "drops")), 7);
	assert_int_equal(json_integer_value(json_object_get(o, "rpc_sent")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "rpc_failed")), 1);
	assert_true(json_is_object(json_object_get(o, "collector_health")));
	json_decref(a);
	assert_string_equal(collector_status_to_string((enum collector_status)42), "unknown");
	registry_free(&reg);
}

static void
gap_seen(void *ctx, const struct collector *c, uint64_t from, uint64_t to)
{
	uint64_t *g = ctx;

	(void)c;
	g[0] = from;
	g[1] = to;
}

/* Ingests events seq first..first+n-1 (type 99 for the one at bad_at). */
static int
ingest_seqs(struct ingest *ing, struct collector *c, uint64_t first, size_t n, size_t bad_at,
            uint64_t *hw)
{
	struct process_event e[8];
	Daemoneye__ProcessEvent pb[8], *pp[8];
	Daemoneye__ProcessRecord rec[8];
	Daemoneye__ProcessEventBatch b = DAEMONEYE__PROCESS_EVENT_BATCH__INIT;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		process_event_init(&e[i]);
		e[i].seq = first + i;
		e[i].time = 1764090000000ull + i;
		e[i].proc.pid = (int)(200 + first + i);
		e[i].proc.name = (char *)"worker";
		ipc_event_to_pb(&e[i], &pb[i], &rec[i]);
		if (i == bad_at)
			pb[i].type = 99;
		pp[i] = &pb[i];
	}
	b.events = pp;
	b.n_events = n;
	return ingest_batch(ing, c, &b, hw);
}

static uint64_t
counter(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

/* Exactly once into a real store: replays are not new, a gap is reported,
 * a bad event stores nothing. */
static void
test_ingest_exactly_once(void **state)
{
	char dir[] = "/tmp/test-ingest-XXXXXX", path[64], cmd[96];
	struct store *st = NULL;
	struct ingest *ing = NULL;
	struct collector c;
	uint64_t hw = 0, gap[2] = { 0, 0 }, stored = 0;
	json_t *o;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/events.db", dir);
	assert_int_equal(store_open(path, STORE_RW, &st), 0);
	assert_int_equal(ingest_new(st, NULL, &ing), 0);
	ingest_set_gap_observer(ing, gap_seen, gap);
	ingest_set_detect(ing, NULL);
	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "procmond");

	assert_int_equal(ingest_seqs(ing, &c, 1, 0, 99, &hw), 0);
	assert_int_equal(hw, 0);
	assert_int_equal(ingest_seqs(ing, &c, 1, 3, 99, &hw), 3);
	assert_int_equal(hw, 3);
	assert_int_equal(c.events, 3);
	/* The same batch again (the collector never saw the ack): all replays. */
	assert_int_equal(ingest_seqs(ing, &c, 1, 3, 99, &hw), 0);
	assert_int_equal(hw, 3);
	assert_int_equal(c.replayed, 3);
	/* Sequences 4..9 never arrive. */
	assert_int_equal(ingest_seqs(ing, &c, 10, 2, 99, &hw), 2);
	assert_int_equal(hw, 11);
	assert_int_equal(gap[0], 4);
	assert_int_equal(gap[1], 9);
	/* An event that does not convert: the whole batch is refused. */
	assert_int_equal(ingest_seqs(ing, &c, 12, 3, 1, &hw), -EBADMSG);
	assert_int_equal(hw, 11);
	assert_int_equal(c.high_water, 11);
	assert_int_equal(store_high_water(st, "procmond", &stored), 0);
	assert_int_equal(stored, 11);

	o = ingest_json(ing);
	assert_non_null(o);
	assert_int_equal(counter(o, "batches"), 3);
	assert_int_equal(counter(o, "events"), 8);
	assert_int_equal(counter(o, "new"), 5);
	assert_int_equal(counter(o, "replayed"), 3);
	assert_int_equal(counter(o, "errors"), 1);
	assert_int_equal(counter(o, "gaps"), 1);
	assert_int_equal(counter(o, "detect_errors"), 0);
	json_decref(o);
	ingest_free(ing);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

struct peer_events {
	int up, down;
	char why[128];
};

static void
on_up(void *ctx, struct collector *c)
{
	(void)c;
	((struct peer_events *)ctx)->up++;
}

static void
on_down(void *ctx, struct collector *c, const char *why)
{
	struct peer_events *pe = ctx;

	(void)c;
	pe->down++;
	snprintf(pe->why, sizeof(pe->why), "%s", why);
}

static int
hw_maybe_fail(void *ctx, const char *id, uint64_t *ret)
{
	(void)ctx;
	if (strcmp(id, "hw-fail") == 0)
		return -EIO;
	*ret = 41;
	return 0;
}

static json_t *
cli_health(void *ctx, const json_t *args)
{
	(void)ctx;
	(void)args;
	return json_pack("{s:s}", "state", "running");
}

static int64_t
broker_counter(struct broker *b, const char *key)
{
	json_t *o = broker_json(b);
	int64_t v;

	assert_non_null(o);
	v = json_integer_value(json_object_get(o, key));
	json_decref(o);
	return v;
}

/* Sends a ControlRequest and returns the response (caller frees). */
static Daemoneye__ControlResponse *
cli_ask(int fd, int epfd, const char *command)
{
	Daemoneye__ControlRequest req = DAEMONEYE__CONTROL_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	uint16_t type = 0;

	req.command = (char *)command;
	assert_int_equal(ipc_send(fd, IPC_CONTROL_REQUEST, &req.base), 0);
	pump(epfd, 100);
	assert_int_equal(ipc_recv(fd, IPC_MAX_CONTROL_RESPONSE, 1000, &type, NULL, &m), 0);
	assert_int_equal(type, IPC_CONTROL_RESPONSE);
	return (Daemoneye__ControlResponse *)m;
}

/* True when the broker closed fd (after its reap pass). */
static bool
closed_by_broker(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

/* The peers of one socket: CLI requests answered through control.c,
 * collectors' heartbeats and RPCs, and every kind of bad peer closed alone
 * and counted. */
static void
test_broker_peers(void **state)
{
	char dir[] = "/tmp/test-broker-XXXXXX", path[128], longpath[200];
	struct peer_events pe = { 0 };
	struct broker_ops ops = { .high_water = hw_maybe_fail,
		                  .collector_up = on_up,
		                  .collector_down = on_down,
		                  .ctx = &pe };
	struct control_callbacks cb = { .health = cli_health };
	Daemoneye__ControlResponse *resp;
	Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;
	Daemoneye__RpcResponse rr = DAEMONEYE__RPC_RESPONSE__INIT;
	Daemoneye__ProcessEventBatch eb = DAEMONEYE__PROCESS_EVENT_BATCH__INIT;
	struct control *ctl = NULL;
	struct registry reg;
	struct broker *b = NULL;
	struct collector *col;
	struct errbuf err = { 0 };
	ProtobufCMessage *m = NULL;
	uint16_t type = 0;
	bool more;
	int epfd, cli, bad, junk, idle, colfd, refused, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	registry_init(&reg);
	assert_true((epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(broker_new(epfd, longpath, &reg, NULL, &ops, &b, &err), -ENAMETOOLONG);
	snprintf(path, sizeof(path), "%s/plain", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(broker_new(epfd, path, &reg, NULL, &ops, &b, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "not a socket"));
	unlink(path);

	snprintf(path, sizeof(path), "%s/s.sock", dir);
	assert_int_equal(control_new(&cb, &ctl), 0);
	assert_int_equal(broker_new(epfd, path, &reg, ctl, &ops, &b, &err), 0);

	/* The CLI: two requests on one connection. */
	assert_int_equal(ipc_connect(path, &cli), 0);
	pump(epfd, 100);
	resp = cli_ask(cli, epfd, "ping");
	assert_int_equal(resp->status, CONTROL_STATUS_OK);
	assert_non_null(strstr(resp->body_json, "pong"));
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	resp = cli_ask(cli, epfd, "health");
	assert_int_equal(resp->status, CONTROL_STATUS_OK);
	assert_non_null(strstr(resp->body_json, "running"));
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	assert_int_equal(broker_counter(b, "cli"), 1);

	/* A first frame that is neither Register nor ControlRequest. */
	assert_int_equal(ipc_connect(path, &bad), 0);
	pump(epfd, 100);
	assert_int_equal(ipc_send(bad, IPC_EVENTS, &eb.base), 0);
	/* Bytes that are not a frame at all. */
	assert_int_equal(ipc_connect(path, &junk), 0);
	pump(epfd, 100);
	assert_int_equal(write(junk, "\x08\0\0\0\xff\xff\0\0\0\0\0\0garbage!", 20), 20);
	/* A peer that never says who it is. */
	assert_int_equal(ipc_connect(path, &idle), 0);
	pump(epfd, 100);
	pump(epfd, 100);
	assert_int_equal(broker_counter(b, "bad_frames"), 2);
	broker_tick(b, time_mono_ms() + BROKER_FIRST_FRAME_MS + 1);
	assert_true(closed_by_broker(bad));
	assert_true(closed_by_broker(junk));
	assert_true(closed_by_broker(idle));
	{
		char ch;

		/* The well-behaved CLI stays connected. */
		assert_int_equal(recv(cli, &ch, 1, MSG_DONTWAIT), -1);
		assert_int_equal(errno, EAGAIN);
	}

	/* A collector whose high-water cannot be read is refused. */
	assert_int_equal(ipc_connect(path, &refused), 0);
	pump(epfd, 100);
	register_client(refused, epfd, "hw-fail", false);

	/* A collector: heartbeats, an RPC and its answer. */
	assert_int_equal(ipc_connect(path, &colfd), 0);
	pump(epfd, 100);
	register_client(colfd, epfd, "rpc-test", true);
	assert_int_equal(pe.up, 1);
	col = registry_find(&reg, "rpc-test");
	assert_non_null(col);
	assert_int_equal(col->high_water, 41);
	hb.wal_bytes = 4096;
	hb.last_seq = 40;
	assert_int_equal(ipc_send(colfd, IPC_HEARTBEAT, &hb.base), 0);
	pump(epfd, 100);
	assert_int_equal(col->wal_bytes, 4096);
	assert_int_equal(col->reported_seq, 40);
	assert_int_equal(broker_rpc(b, col, DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK, 0), 0);
	assert_int_equal(ipc_recv(colfd, IPC_MAX_COLLECTOR, 1000, &type, NULL, &m), 0);
	assert_int_equal(type, IPC_RPC_REQUEST);
	rr.correlation_id = ((Daemoneye__RpcRequest *)m)->correlation_id;
	protobuf_c_message_free_unpacked(m, NULL);
	rr.status = DAEMONEYE__RPC_STATUS__RPC_OK;
	rr.body_json = (char *)"{\"source\":\"netlink\"}";
	assert_int_equal(ipc_send(colfd, IPC_RPC_RESPONSE, &rr.base), 0);
	rr.correlation_id = 424242; /* unknown: ignored */
	assert_int_equal(ipc_send(colfd, IPC_RPC_RESPONSE, &rr.base), 0);
	pump(epfd, 100);
	assert_string_equal(col->last_health, "{\"source\":\"netlink\"}");
	assert_int_equal(col->rpc_ok, 1);
	assert_int_equal(broker_counter(b, "collectors"), 1);

	/* It dies halfway through a frame. */
	assert_int_equal(write(colfd, "\x10\0\0\0", 4), 4);
	close(colfd);
	pump(epfd, 100);
	broker_process(b, 1, &more);
	assert_int_equal(pe.down, 1);
	assert_non_null(strstr(pe.why, "truncated"));
	assert_int_equal(broker_counter(b, "bad_frames"), 3);
	assert_int_equal(broker_rpc(b, col, 0, 0), -ENOTCONN);
	assert_int_equal(broker_counter(b, "accepted"), 6);
	assert_int_equal(broker_counter(b, "connections"), 1); /* the CLI */

	broker_stop_accepting(b);
	broker_stop_accepting(b);
	close(cli);
	close(bad);
	close(junk);
	close(idle);
	close(refused);
	broker_free(b);
	broker_free(NULL);
	control_free(ctl);

	/* No control yet (the agent is starting): the CLI gets an error answer. */
	assert_int_equal(broker_new(epfd, path, &reg, NULL, &ops, &b, &err), 0);
	assert_int_equal(ipc_connect(path, &cli), 0);
	pump(epfd, 100);
	resp = cli_ask(cli, epfd, "ping");
	assert_int_equal(resp->status, CONTROL_STATUS_FAILED);
	assert_non_null(strstr(resp->body_json, "starting"));
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	close(cli);
	broker_free(b);
	registry_free(&reg);
	close(epfd);
	assert_int_equal(rmdir(dir), 0);
}

static void
count_reports(void *ctx, const char *event, const char *id, const char *json)
{
	int *n = ctx;

	assert_non_null(strstr(json, event));
	assert_string_equal(id, "procmond");
	(*n)++;
}

static void
chan_say(int fd, const char *msg)
{
	assert_int_equal(send(fd, msg, strlen(msg), MSG_NOSIGNAL), (ssize_t)strlen(msg));
}

/* The engine's view of the supervisor's reports, its restart requests, and
 * how a collector's binary is found. */
static void
test_supervise_view_and_find(void **state)
{
	struct supervise_view *v = NULL;
	char buf[256], longid[200];
	int sv[2], reports = 0;
	json_t *a, *row;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(supervise_view_new(sv[0], &v), 0);
	assert_int_equal(supervise_view_fd(v), sv[0]);
	assert_int_equal(supervise_view_read(v, count_reports, &reports), 0);
	chan_say(sv[1], "{\"event\":\"start\",\"id\":\"procmond\",\"pid\":123,\"restarts\":0}");
	chan_say(sv[1], "not json");
	chan_say(sv[1], "{\"event\":\"start\"}");
	assert_int_equal(supervise_view_read(v, count_reports, &reports), 0);
	assert_int_equal(reports, 1);
	a = supervise_view_json(v);
	row = json_array_get(a, 0);
	assert_int_equal(json_array_size(a), 1);
	assert_true(json_is_true(json_object_get(row, "running")));
	assert_int_equal(json_integer_value(json_object_get(row, "pid")), 123);
	assert_true(json_is_null(json_object_get(row, "last_exit")));
	json_decref(a);
	chan_say(sv[1], "{\"event\":\"exit\",\"id\":\"procmond\",\"pid\":123,"
	                "\"status\":\"killed by signal 9\",\"restarts\":1,\"restart_in_ms\":500}");
	assert_int_equal(supervise_view_read(v, NULL, NULL), 0);
	a = supervise_view_json(v);
	row = json_array_get(a, 0);
	assert_false(json_is_true(json_object_get(row, "running")));
	assert_int_equal(json_integer_value(json_object_get(row, "restarts")), 1);
	assert_string_equal(json_string_value(json_object_get(row, "last_exit")),
	                    "killed by signal 9");
	json_decref(a);

	assert_int_equal(supervise_view_request_restart(v, "procmond"), 0);
	assert_int_equal(recv(sv[1], buf, sizeof(buf) - 1, 0), 22);
	buf[22] = '\0';
	assert_string_equal(buf, "{\"restart\":\"procmond\"}");
	memset(longid, 'i', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(supervise_view_request_restart(v, longid), -ENAMETOOLONG);
	close(sv[1]);
	assert_int_equal(supervise_view_read(v, NULL, NULL), -ECONNRESET);
	supervise_view_free(v);
	supervise_view_free(NULL);

	assert_int_equal(supervise_find_binary("/bin/sh", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/bin/sh");
	assert_int_equal(supervise_find_binary("/bin/sh", buf, 4), -ENAMETOOLONG);
	assert_int_equal(supervise_find_binary("/no/such/collector", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(supervise_find_binary("no-such-collector-zz", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(setenv("DAEMONEYE_PROCMOND_BINARY", "/bin/sh", 1), 0);
	assert_int_equal(supervise_find_binary("procmond", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/bin/sh");
	assert_int_equal(unsetenv("DAEMONEYE_PROCMOND_BINARY"), 0);
}

struct engine_seen {
	int starts, exits;
};

static void
engine_report(void *ctx, const char *event, const char *id, const char *json)
{
	struct engine_seen *es = ctx;

	(void)json;
	if (strcmp(id, "sleeper") != 0)
		return;
	if (strcmp(event, "start") == 0)
		es->starts++;
	else if (strcmp(event, "exit") == 0)
		es->exits++;
}

/* The engine of the supervisor test (a child of the supervisor): waits for
 * the collector to start, asks for its restart, waits for it to come back,
 * writes what it saw to the file ctx and asks the supervisor to stop. */
static int
test_engine(void *ctx, int chan)
{
	struct supervise_view *v = NULL;
	struct engine_seen es = { 0 };
	bool asked = false;
	FILE *f;

	if (supervise_view_new(chan, &v) < 0)
		return 1;
	for (int i = 0; i < 100 && es.starts < 2; i++) {
		struct pollfd p = { .fd = chan, .events = POLLIN };

		if (poll(&p, 1, 100) > 0 && supervise_view_read(v, engine_report, &es) < 0)
			break;
		if (es.starts == 1 && !asked) {
			asked = supervise_view_request_restart(v, "sleeper") == 0;
		}
	}
	if ((f = fopen(ctx, "we")) != NULL) {
		fprintf(f, "starts=%d exits=%d", es.starts, es.exits);
		fclose(f);
	}
	kill(getppid(), SIGTERM);
	for (;;)
		pause(); /* the supervisor's SIGTERM ends us */
}

/* supervise_run(o) in a child process; returns its wait status, or fails
 * the test (killing it) when it has not ended within secs seconds. */
static int
run_supervisor(const struct supervise_opts *o, int secs, const char *what)
{
	int status = -1;
	pid_t pid = fork(), w = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = supervise_run(o);

#ifdef DE_COVERAGE
		exit(rc);
#else
		_exit(rc);
#endif
	}
	for (int i = 0; i < secs * 20 && w == 0; i++) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == 0)
			usleep(50 * 1000);
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the supervisor did not %s within %d s", what, secs);
	}
	return status;
}

/* The supervisor for real, in a child process: it spawns the engine and a
 * collector (/bin/sleep), restarts the collector when the engine asks, and
 * stops everything on SIGTERM with status 0. */
static void
test_supervise_run(void **state)
{
	char dir[] = "/tmp/test-supervise-XXXXXX", data[64], wal[64], result[80], got[64] = "";
	struct de_config cfg;
	struct supervise_opts o = { 0 };
	int status;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	snprintf(result, sizeof(result), "%s/result", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_collectors = 1;
	cfg.collectors[0].id = (char *)"sleeper";
	cfg.collectors[0].binary = (char *)"/bin/sleep";
	cfg.collectors[0].args[0] = (char *)"30";
	cfg.collectors[0].n_args = 1;
	cfg.collectors[0].spawn = true;
	o.cfg = &cfg;
	o.socket_path = "/nonexistent.sock";
	o.data_dir = data;
	o.wal_dir = wal;
	o.engine_uid = o.collector_uid = geteuid();
	o.engine_gid = o.collector_gid = getegid();
	o.engine = test_engine;
	o.ctx = result;

	/* A data directory that cannot be made: the agent does not start. */
	o.data_dir = "/nonexistent/daemoneye/data";
	assert_int_equal(supervise_run(&o), 1);
	o.data_dir = data;

	status = run_supervisor(&o, 10, "stop");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	f = fopen(result, "re");
	assert_non_null(f);
	assert_non_null(fgets(got, sizeof(got), f));
	fclose(f);
	assert_string_equal(got, "starts=2 exits=1");
	unlink(result);
	assert_int_equal(rmdir(wal), 0);
	assert_int_equal(rmdir(data), 0);
	assert_int_equal(rmdir(dir), 0);
}

static int
failing_engine(void *ctx, int chan)
{
	(void)ctx;
	close(chan);
	return 3;
}

/* An engine that fails right after starting, five times in a row: the
 * supervisor gives up with status 1 instead of restarting it forever
 * (backoff 250 + 500 + 1000 + 2000 ms: about 4 s). */
static void
test_supervise_gives_up(void **state)
{
	char dir[] = "/tmp/test-supervise-XXXXXX", data[64], wal[64];
	struct de_config cfg;
	struct supervise_opts o = { 0 };
	int status;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	memset(&cfg, 0, sizeof(cfg));
	o.cfg = &cfg;
	o.socket_path = "/nonexistent.sock";
	o.data_dir = data;
	o.wal_dir = wal;
	o.engine_uid = o.collector_uid = geteuid();
	o.engine_gid = o.collector_gid = getegid();
	o.engine = failing_engine;
	status = run_supervisor(&o, 15, "give up");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_int_equal(rmdir(wal), 0);
	assert_int_equal(rmdir(data), 0);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backpressure_on_off_and_acks),
		cmocka_unit_test(test_registry_rules_rpc_and_heartbeats),
		cmocka_unit_test(test_registry_limits_and_json),
		cmocka_unit_test(test_ingest_exactly_once),
		cmocka_unit_test(test_broker_peers),
		cmocka_unit_test(test_supervise_view_and_find),
		cmocka_unit_test(test_supervise_run),
		cmocka_unit_test(test_supervise_gives_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
