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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker.h"
#include "ipc.h"
#include "registry.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backpressure_on_off_and_acks),
		cmocka_unit_test(test_registry_rules_rpc_and_heartbeats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
