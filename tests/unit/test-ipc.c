#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ipc.h"

static int
pack_heartbeat(uint8_t **buf, size_t *len)
{
	Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;

	hb.collector_id = (char *)"procmond";
	hb.timestamp_ms = 1234;
	hb.last_seq = 99;
	return ipc_frame_pack(IPC_HEARTBEAT, 0, &hb.base, IPC_MAX_COLLECTOR, buf, len);
}

static void
test_roundtrip(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct ipc_header h;
	const uint8_t *payload;
	ProtobufCMessage *m = NULL;
	Daemoneye__Heartbeat *hb;

	(void)state;
	assert_int_equal(pack_heartbeat(&buf, &len), 0);
	/* Incomplete input is "need more", at every length short of the frame. */
	for (size_t i = 0; i < len; i++)
		assert_int_equal(ipc_frame_decode(buf, i, IPC_MAX_COLLECTOR, &h, &payload), 0);
	assert_int_equal(ipc_frame_decode(buf, len, IPC_MAX_COLLECTOR, &h, &payload), (int)len);
	assert_int_equal(h.type, IPC_HEARTBEAT);
	assert_int_equal(ipc_payload_unpack(h.type, payload, h.len, &m), 0);
	hb = (Daemoneye__Heartbeat *)m;
	assert_string_equal(hb->collector_id, "procmond");
	assert_int_equal(hb->last_seq, 99);
	protobuf_c_message_free_unpacked(m, NULL);
	free(buf);
}

static void
test_bad_frames(void **state)
{
	uint8_t *buf = NULL, copy[256];
	size_t len = 0;
	struct ipc_header h;
	const uint8_t *payload;
	ProtobufCMessage *m = NULL;

	(void)state;
	assert_int_equal(pack_heartbeat(&buf, &len), 0);
	assert_true(len < sizeof(copy));

	/* Bad CRC: a flipped payload bit. */
	memcpy(copy, buf, len);
	copy[len - 1] ^= 1;
	assert_int_equal(ipc_frame_decode(copy, len, IPC_MAX_COLLECTOR, &h, &payload), -EBADMSG);
	/* Bad CRC field itself. */
	memcpy(copy, buf, len);
	copy[9] ^= 0x80;
	assert_int_equal(ipc_frame_decode(copy, len, IPC_MAX_COLLECTOR, &h, &payload), -EBADMSG);
	/* Huge length: refused from the header alone. */
	memcpy(copy, buf, len);
	copy[3] = 0x7f;
	assert_int_equal(ipc_frame_decode(copy, 12, IPC_MAX_COLLECTOR, &h, &payload), -EMSGSIZE);
	/* Length above a small channel maximum. */
	assert_int_equal(ipc_frame_decode(buf, len, 4, &h, &payload), -EMSGSIZE);
	/* Unknown type and unknown flag. */
	memcpy(copy, buf, len);
	copy[4] = 0xee;
	assert_int_equal(ipc_frame_decode(copy, len, IPC_MAX_COLLECTOR, &h, &payload), -EBADMSG);
	memcpy(copy, buf, len);
	copy[0 + 7] = 0x80;
	assert_int_equal(ipc_frame_decode(copy, len, IPC_MAX_COLLECTOR, &h, &payload), -EBADMSG);
	/* A valid frame whose payload is not the message its type names. */
	assert_int_equal(ipc_payload_unpack(IPC_REGISTER, "\xff\xff\xff", 3, &m), -EBADMSG);
	/* A required field missing (Register without collector_id) is refused. */
	assert_int_equal(ipc_payload_unpack(IPC_REGISTER, "", 0, &m), -EBADMSG);
	assert_null(m);
	/* Packing refuses a message that is not the type's. */
	{
		Daemoneye__Ack ack = DAEMONEYE__ACK__INIT;
		uint8_t *b2 = NULL;
		size_t l2;

		assert_int_equal(
		    ipc_frame_pack(IPC_HEARTBEAT, 0, &ack.base, IPC_MAX_COLLECTOR, &b2, &l2),
		    -EINVAL);
		assert_int_equal(ipc_frame_pack(IPC_ACK, 0, &ack.base, 1, &b2, &l2), -EMSGSIZE);
		assert_null(b2);
	}
	free(buf);
}

static void
test_reader_partial_and_writer(void **state)
{
	int sv[2];
	struct ipc_reader r;
	struct ipc_writer w;
	struct ipc_header h;
	const uint8_t *payload;
	uint8_t *buf = NULL;
	size_t len = 0;
	int got = 0, rc;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pack_heartbeat(&buf, &len), 0);
	/* Three frames, written a byte at a time. */
	for (int f = 0; f < 3; f++)
		for (size_t i = 0; i < len; i++)
			assert_int_equal(write(sv[0], buf + i, 1), 1);
	ipc_reader_init(&r, IPC_MAX_COLLECTOR);
	while ((rc = ipc_reader_fill(&r, sv[1])) > 0)
		while (ipc_reader_next(&r, &h, &payload) == 1) {
			assert_int_equal(h.type, IPC_HEARTBEAT);
			got++;
		}
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(got, 3);
	assert_int_equal(ipc_reader_pending(&r), 0);

	/* A huge length is refused before anything is allocated for it. */
	assert_int_equal(write(sv[0], "\xff\xff\xff\x7f\x03\x00\x00\x00\x00\x00\x00\x00", 12), 12);
	rc = ipc_reader_fill(&r, sv[1]);
	if (rc > 0)
		rc = ipc_reader_next(&r, &h, &payload);
	assert_int_equal(rc, -EMSGSIZE);
	ipc_reader_free(&r);

	/* The writer's bound. */
	ipc_writer_init(&w, len * 2);
	{
		Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;

		hb.collector_id = (char *)"procmond";
		hb.timestamp_ms = 1234;
		hb.last_seq = 99;
		assert_int_equal(ipc_writer_push(&w, IPC_HEARTBEAT, 0, &hb.base, IPC_MAX_COLLECTOR),
		                 0);
		assert_int_equal(ipc_writer_push(&w, IPC_HEARTBEAT, 0, &hb.base, IPC_MAX_COLLECTOR),
		                 0);
		assert_int_equal(ipc_writer_push(&w, IPC_HEARTBEAT, 0, &hb.base, IPC_MAX_COLLECTOR),
		                 -ENOBUFS);
	}
	assert_int_equal(ipc_writer_flush(&w, sv[0]), 0);
	assert_int_equal(ipc_writer_queued(&w), 0);
	ipc_writer_free(&w);
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

static void
test_blocking_send_recv(void **state)
{
	int sv[2];
	Daemoneye__ControlRequest req = DAEMONEYE__CONTROL_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	uint16_t type = 0, flags = 1;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	req.command = (char *)"health";
	assert_int_equal(ipc_send(sv[0], IPC_CONTROL_REQUEST, &req.base), 0);
	assert_int_equal(ipc_recv(sv[1], IPC_MAX_CONTROL_REQUEST, 1000, &type, &flags, &m), 0);
	assert_int_equal(type, IPC_CONTROL_REQUEST);
	assert_int_equal(flags, 0);
	assert_string_equal(((Daemoneye__ControlRequest *)m)->command, "health");
	assert_null(((Daemoneye__ControlRequest *)m)->args_json);
	protobuf_c_message_free_unpacked(m, NULL);
	/* Nothing more: a timeout, then end of stream. */
	assert_int_equal(ipc_recv(sv[1], IPC_MAX_CONTROL_REQUEST, 50, &type, &flags, &m),
	                 -ETIMEDOUT);
	assert_int_equal(write(sv[0], "\x01\x00", 2), 2);
	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], IPC_MAX_CONTROL_REQUEST, 1000, &type, &flags, &m),
	                 -ECONNRESET);
	close(sv[1]);
}

static void
test_event_conversion(void **state)
{
	struct process_event e, back;
	uint8_t *buf = NULL;
	size_t len = 0;

	(void)state;
	process_event_init(&e);
	e.type = PROC_EV_START;
	e.time = 1700000000123ull;
	e.seq = 42;
	e.source = strdup("netlink");
	e.proc.pid = 4242;
	e.proc.ppid = 1;
	e.proc.name = strdup("sleep");
	e.proc.command_line = strdup("sleep 1");
	e.proc.start_time = 1700000000000ull;
	e.proc.user_id = 1000;
	e.proc.accessible = true;
	e.proc.missing = PROC_MISSING_HASH;
	assert_int_equal(ipc_event_pack(&e, &buf, &len), 0);
	assert_int_equal(ipc_event_unpack(buf, len, &back), 0);
	assert_int_equal(back.type, PROC_EV_START);
	assert_int_equal(back.seq, 42);
	assert_int_equal(back.proc.pid, 4242);
	assert_string_equal(back.proc.name, "sleep");
	assert_string_equal(back.source, "netlink");
	assert_null(back.proc.executable_path); /* unknown stays unknown */
	assert_null(back.proc.executable_hash);
	assert_int_equal(back.proc.group_id, -1);
	assert_int_equal(back.proc.missing, PROC_MISSING_HASH);
	assert_true(back.proc.accessible);
	assert_int_equal(ipc_event_unpack(buf, len / 2, &back) < 0 ? 1 : 0, 1);
	process_event_clear(&back);
	process_event_clear(&e);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_reader_partial_and_writer),
		cmocka_unit_test(test_blocking_send_recv),
		cmocka_unit_test(test_event_conversion),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
