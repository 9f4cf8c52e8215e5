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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc.h"
#include "util.h"

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

/* The arena: aligned pieces from blocks that grow, a piece larger than any
 * block, everything released at once (ASan sees no leak). */
static void
test_arena(void **state)
{
	struct ipc_arena a;
	uint8_t *first = NULL;

	(void)state;
	ipc_arena_init(&a, 64);
	for (size_t i = 0; i < 1000; i++) {
		uint8_t *p = ipc_arena_alloc(&a, i % 37);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
		memset(p, 0xab, i % 37);
		if (i == 0)
			first = p;
	}
	assert_non_null(first);
	assert_non_null(ipc_arena_alloc(&a, 1u << 20));
	assert_true(a.bytes >= (1u << 20) + 1000);
	assert_null(ipc_arena_alloc(&a, SIZE_MAX - 8));
	ipc_arena_free(&a);
	assert_int_equal(a.bytes, 0);
	ipc_arena_free(&a); /* twice is harmless */
	ipc_arena_init(&a, 0);
	assert_non_null(ipc_arena_alloc(&a, 0));
	ipc_arena_free(&a);
}

/* A batch unpacked into an arena, its events borrowed without copies: the
 * strings are the batch's own, except one that is not UTF-8, which is
 * sanitized; refusals for a bad event type, a missing record and a
 * malformed payload. */
static void
test_batch_arena_and_borrow(void **state)
{
	Daemoneye__ProcessEventBatch b = DAEMONEYE__PROCESS_EVENT_BATCH__INIT, *got;
	Daemoneye__ProcessEvent pbs[2], *ptrs[2];
	Daemoneye__ProcessRecord recs[2];
	struct process_event e[2], view;
	struct ipc_arena a, scratch;
	ProtobufCMessage *m = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	for (int i = 0; i < 2; i++) {
		process_event_init(&e[i]);
		e[i].type = i ? PROC_EV_STOP : PROC_EV_START;
		e[i].seq = 7 + (uint64_t)i;
		e[i].source = (char *)"ebpf";
		e[i].proc.pid = 100 + i;
		e[i].proc.start_time = 5;
		e[i].proc.name = (char *)(i ? "bad\xff\xfename" : "plain");
		e[i].proc.command_line = (char *)"a long enough ASCII command line, past 8 bytes";
		e[i].proc.cwd = (char *)"/home/\xc3\xa9t\xc3\xa9"; /* valid UTF-8 */
		ipc_event_to_pb(&e[i], &pbs[i], &recs[i]);
		ptrs[i] = &pbs[i];
	}
	b.events = ptrs;
	b.n_events = 2;
	len = daemoneye__process_event_batch__get_packed_size(&b);
	buf = malloc(len);
	assert_non_null(buf);
	daemoneye__process_event_batch__pack(&b, buf);

	ipc_arena_init(&a, 0);
	ipc_arena_init(&scratch, 0);
	assert_int_equal(ipc_payload_unpack_arena(IPC_EVENTS, buf, len, &a, &m), 0);
	got = (Daemoneye__ProcessEventBatch *)m;
	assert_int_equal(got->n_events, 2);
	assert_int_equal(ipc_event_borrow_pb(got->events[0], &scratch, &view), 0);
	assert_int_equal(view.type, PROC_EV_START);
	assert_int_equal(view.seq, 7);
	assert_int_equal(view.proc.pid, 100);
	assert_ptr_equal(view.proc.name, got->events[0]->proc->name); /* borrowed */
	assert_ptr_equal(view.proc.cwd, got->events[0]->proc->cwd);
	assert_string_equal(view.proc.command_line, e[0].proc.command_line);
	assert_null(view.proc.executable_path);
	assert_int_equal(view.proc.group_id, -1);
	assert_int_equal(ipc_event_borrow_pb(got->events[1], &scratch, &view), 0);
	assert_int_equal(view.type, PROC_EV_STOP);
	assert_ptr_not_equal(view.proc.name, got->events[1]->proc->name); /* sanitized */
	assert_true(utf8_is_valid(view.proc.name, strlen(view.proc.name)));
	assert_non_null(strstr(view.proc.name, "bad"));
	got->events[1]->type = (Daemoneye__EventType)99;
	assert_int_equal(ipc_event_borrow_pb(got->events[1], &scratch, &view), -EBADMSG);
	got->events[0]->proc = NULL;
	assert_int_equal(ipc_event_borrow_pb(got->events[0], &scratch, &view), -EBADMSG);
	ipc_arena_free(&scratch);
	ipc_arena_free(&a);
	/* Malformed: cut in the middle. */
	ipc_arena_init(&a, 0);
	assert_int_equal(ipc_payload_unpack_arena(IPC_EVENTS, buf, len - 3, &a, &m), -EBADMSG);
	assert_int_equal(ipc_payload_unpack_arena(999, buf, len, &a, &m), -EBADMSG);
	ipc_arena_free(&a);
	free(buf);
}

/* Type table, header encoding and packing refusals. */
static void
test_types_and_encode_refusals(void **state)
{
	uint8_t hdr[IPC_HEADER_SIZE], *b = NULL;
	Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;
	ProtobufCMessage *m = NULL;
	struct ipc_header h;
	size_t l = 0;

	(void)state;
	assert_string_equal(ipc_type_name(IPC_HEARTBEAT), "heartbeat");
	assert_string_equal(ipc_type_name(0), "unknown");
	assert_string_equal(ipc_type_name(_IPC_TYPE_MAX), "unknown");
	assert_string_equal(ipc_type_name(0xffff), "unknown");
	assert_null(ipc_type_descriptor(_IPC_TYPE_MAX));
	assert_null(ipc_type_descriptor(0));
	assert_ptr_equal(ipc_type_descriptor(IPC_HEARTBEAT), &daemoneye__heartbeat__descriptor);

	assert_int_equal(ipc_header_encode(0, 0, "", 0, 16, hdr), -EINVAL);
	assert_int_equal(ipc_header_encode(_IPC_TYPE_MAX, 0, "", 0, 16, hdr), -EINVAL);
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, 0x8000, "", 0, 16, hdr), -EINVAL);
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, 0, "abcd", 4, 3, hdr), -EMSGSIZE);
	/* The MORE flag is known and survives the round trip. */
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, IPC_FLAG_MORE, "abcd", 4, 4, hdr), 0);
	assert_int_equal(ipc_header_decode(hdr, 4, &h), 0);
	assert_int_equal(h.len, 4);
	assert_int_equal(h.flags, IPC_FLAG_MORE);
	assert_int_equal(ipc_header_check_crc(&h, "abcd"), 0);
	assert_int_equal(ipc_header_check_crc(&h, "abce"), -EBADMSG);

	assert_int_equal(ipc_frame_pack(IPC_HEARTBEAT, 0, NULL, IPC_MAX_COLLECTOR, &b, &l),
	                 -EINVAL);
	assert_int_equal(ipc_frame_pack(0, 0, &hb.base, IPC_MAX_COLLECTOR, &b, &l), -EINVAL);
	hb.collector_id = (char *)"c";
	assert_int_equal(ipc_frame_pack(IPC_HEARTBEAT, 0x4000, &hb.base, IPC_MAX_COLLECTOR, &b, &l),
	                 -EINVAL);
	assert_null(b);
	assert_int_equal(ipc_payload_unpack(0, "", 0, &m), -EBADMSG);
	assert_int_equal(ipc_payload_unpack(_IPC_TYPE_MAX, "", 0, &m), -EBADMSG);
	assert_null(m);
}

/* The non-blocking writer: raw and pre-encoded frames, its bound, partial
 * flushes into a full socket, then draining to the reader. */
static void
test_writer_frames_and_backpressure(void **state)
{
	int sv[2], rc, got = 0;
	struct ipc_writer w;
	struct ipc_reader r;
	struct ipc_header h;
	const uint8_t *payload;
	uint8_t *frame = NULL, big[8192];
	size_t flen = 0, total = 0;
	bool seen_first = false;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pack_heartbeat(&frame, &flen), 0);
	memset(big, 'x', sizeof(big));

	ipc_writer_init(&w, 64);
	assert_int_equal(ipc_writer_push_frame(&w, IPC_HEARTBEAT, 0, big, 65, 64), -EMSGSIZE);
	assert_int_equal(ipc_writer_push_frame(&w, IPC_HEARTBEAT, 0, big, 60, 1024), -ENOBUFS);
	assert_int_equal(ipc_writer_push_frame(&w, 0, 0, big, 4, 1024), -EINVAL);
	assert_int_equal(ipc_writer_queued(&w), 0);
	assert_int_equal(ipc_writer_push_raw(&w, big, 65), -ENOBUFS);
	assert_int_equal(ipc_writer_push_raw(&w, frame, flen), 0);
	assert_int_equal(ipc_writer_queued(&w), flen);
	assert_int_equal(ipc_writer_flush(&w, sv[0]), 0);
	assert_int_equal(ipc_writer_queued(&w), 0);
	ipc_writer_free(&w);

	/* Fill the socket until the writer has to keep bytes back. */
	ipc_writer_init(&w, 64u << 20);
	for (int i = 0; i < 4096; i++) {
		assert_int_equal(ipc_writer_push_frame(&w, IPC_HEARTBEAT, 0, big, sizeof(big),
		                                       IPC_MAX_COLLECTOR),
		                 0);
		total++;
		if ((rc = ipc_writer_flush(&w, sv[0])) == 1)
			break;
		assert_int_equal(rc, 0);
	}
	assert_int_equal(rc, 1);
	assert_true(ipc_writer_queued(&w) > 0);
	/* Read everything back; flushing again as room appears (the writer
	 * compacts what was already sent when new frames come in). */
	ipc_reader_init(&r, IPC_MAX_COLLECTOR);
	assert_int_equal(
	    ipc_writer_push_frame(&w, IPC_HEARTBEAT, 0, big, sizeof(big), IPC_MAX_COLLECTOR), 0);
	total++;
	for (int spins = 0; spins < 100000 && (size_t)got < total; spins++) {
		(void)ipc_writer_flush(&w, sv[0]);
		rc = ipc_reader_fill(&r, sv[1]);
		assert_true(rc > 0 || rc == -EAGAIN);
		while (ipc_reader_next(&r, &h, &payload) == 1) {
			if (!seen_first) { /* the raw heartbeat flushed above */
				assert_int_equal(IPC_HEADER_SIZE + h.len, flen);
				seen_first = true;
				continue;
			}
			assert_int_equal(h.len, sizeof(big));
			assert_memory_equal(payload, big, sizeof(big));
			got++;
		}
	}
	assert_int_equal((size_t)got, total);
	assert_int_equal(ipc_writer_queued(&w), 0);
	/* The peer is gone: a hard error, not "try again". */
	assert_int_equal(ipc_writer_push_raw(&w, frame, flen), 0);
	close(sv[1]);
	assert_int_equal(ipc_writer_flush(&w, sv[0]), -EPIPE);
	ipc_writer_free(&w);
	ipc_reader_free(&r);
	free(frame);
	close(sv[0]);
}

/* Blocking helpers: connect errors and a listening socket; frames that
 * arrive whole but are wrong in each part. */
static void
test_connect_and_recv_refusals(void **state)
{
	char dir[] = "/tmp/test-ipc-XXXXXX", path[128], longp[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;
	uint8_t hdr[IPC_HEADER_SIZE];
	ProtobufCMessage *m = NULL;
	uint16_t type = 0;
	int lfd, fd = -1, sv[2];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(ipc_connect(longp, &fd), -ENAMETOOLONG);
	assert_int_equal(ipc_connect(path, &fd), -ENOENT);
	assert_int_equal(fd, -1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_true(de_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) < sizeof(sa.sun_path));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(ipc_connect(path, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
	unlink(path);
	rmdir(dir);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	hb.collector_id = (char *)"c";
	/* Bigger than the sender's own maximum: nothing is sent. */
	assert_int_equal(ipc_send_flags(sv[0], IPC_HEARTBEAT, 0, &hb.base, 2), -EMSGSIZE);
	/* Bigger than the receiver's maximum. */
	assert_int_equal(ipc_send(sv[0], IPC_HEARTBEAT, &hb.base), 0);
	assert_int_equal(ipc_recv(sv[1], 2, 1000, &type, NULL, &m), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);

	/* A payload whose CRC was damaged in transit. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, 0, "\x0a\x01\x63", 3, 64, hdr), 0);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(write(sv[0], "\x0a\x01\x64", 3), 3);
	assert_int_equal(ipc_recv(sv[1], 64, 1000, &type, NULL, &m), -EBADMSG);
	/* A correct frame whose payload is not a Heartbeat. */
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, 0, "\xff\xff\xff", 3, 64, hdr), 0);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(write(sv[0], "\xff\xff\xff", 3), 3);
	assert_int_equal(ipc_recv(sv[1], 64, 1000, &type, NULL, &m), -EBADMSG);
	/* The payload never comes. */
	assert_int_equal(ipc_header_encode(IPC_HEARTBEAT, 0, "\x0a\x01\x63", 3, 64, hdr), 0);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(ipc_recv(sv[1], 64, 50, &type, NULL, &m), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);
	assert_null(m);
	/* A good one on a fresh connection, without asking for the flags. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(ipc_send(sv[0], IPC_HEARTBEAT, &hb.base), 0);
	assert_int_equal(ipc_recv(sv[1], 64, 1000, &type, NULL, &m), 0);
	assert_int_equal(type, IPC_HEARTBEAT);
	assert_string_equal(((Daemoneye__Heartbeat *)m)->collector_id, "c");
	protobuf_c_message_free_unpacked(m, NULL);
	close(sv[1]);
	/* Sending to a peer that is gone. */
	assert_int_equal(ipc_send(sv[0], IPC_HEARTBEAT, &hb.base), -EPIPE);
	close(sv[0]);
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
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_batch_arena_and_borrow),
		cmocka_unit_test(test_types_and_encode_refusals),
		cmocka_unit_test(test_writer_frames_and_backpressure),
		cmocka_unit_test(test_connect_and_recv_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
