/* Fuzzes the frame decoder the agent runs on every byte a peer sends: the
 * stream is cut into frames by the buffered reader logic (ipc_frame_decode),
 * each payload is unpacked as the message its type names, and process
 * events are converted the way ingest does. Nothing may crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
convert_batch(const ProtobufCMessage *m)
{
	const Daemoneye__ProcessEventBatch *b = (const Daemoneye__ProcessEventBatch *)m;

	for (size_t i = 0; i < b->n_events; i++) {
		struct process_event e;

		if (ipc_event_from_pb(b->events[i], &e) == 0)
			process_event_clear(&e);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct ipc_header h;
		const uint8_t *payload;
		ProtobufCMessage *m = NULL;
		int n = ipc_frame_decode(data + off, size - off, IPC_MAX_COLLECTOR, &h, &payload);

		if (n <= 0)
			break;
		off += (size_t)n;
		if (ipc_payload_unpack(h.type, payload, h.len, &m) < 0)
			continue;
		if (h.type == IPC_EVENTS)
			convert_batch(m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	/* The same bytes as a WAL record body. */
	{
		struct process_event e;

		if (ipc_event_unpack(data, size, &e) == 0)
			process_event_clear(&e);
	}
	return 0;
}
