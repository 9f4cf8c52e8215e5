/* Frames on the agent socket (docs/pipeline.md, SPEC §8).
 *
 * A frame is a 12-byte little-endian header followed by a protobuf-c payload:
 *
 *	u32 payload_len   bytes after the header, at most the channel's maximum
 *	u16 type          enum ipc_type; names the protobuf message of the payload
 *	u16 flags         IPC_FLAG_*; unknown bits are an error
 *	u32 crc32c        CRC-32C over type, flags (4 bytes as on the wire) and payload
 *
 * Every peer-supplied length is checked against a per-channel maximum before
 * anything is allocated; a bad length is -EMSGSIZE, a bad CRC, type or flag
 * or a payload that does not unpack as the message its type names is
 * -EBADMSG. Nothing here asserts on input, logs above debug, or exits: the
 * caller closes the offending connection and logs once.
 *
 * Generated message types come from proto/common.proto and proto/ipc.proto
 * (Daemoneye__ProcessEvent, Daemoneye__Register, ...). */
#ifndef DE_IPC_H
#define DE_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common.pb-c.h"
#include "ipc.pb-c.h"
#include "process.h"

/* The version a peer states in Register; the agent answers with the version
 * both speak (the lower of the two, at least IPC_PROTOCOL_MIN). */
#define IPC_PROTOCOL_VERSION 1
#define IPC_PROTOCOL_MIN     1

#define IPC_HEADER_SIZE 12

/* Channel maxima (payload bytes). A collector frame carries a batch of
 * events; the CLI sends small requests and may receive large answers. */
#define IPC_MAX_COLLECTOR        (4u * 1024 * 1024)
#define IPC_MAX_CONTROL_REQUEST  (256u * 1024)
#define IPC_MAX_CONTROL_RESPONSE (32u * 1024 * 1024)
/* The agent reads a connection's first frame with this bound, before it
 * knows whether the peer is a collector or the CLI. */
#define IPC_MAX_FIRST IPC_MAX_COLLECTOR

enum ipc_type {
	IPC_REGISTER = 1,     /* Daemoneye__Register, collector -> agent */
	IPC_REGISTER_ACK,     /* Daemoneye__RegisterAck */
	IPC_HEARTBEAT,        /* Daemoneye__Heartbeat, collector -> agent */
	IPC_EVENTS,           /* Daemoneye__ProcessEventBatch, topic events.process.* */
	IPC_ACK,              /* Daemoneye__Ack, agent -> collector */
	IPC_BACKPRESSURE,     /* Daemoneye__Backpressure, agent -> collector */
	IPC_RPC_REQUEST,      /* Daemoneye__RpcRequest, agent -> collector */
	IPC_RPC_RESPONSE,     /* Daemoneye__RpcResponse, collector -> agent */
	IPC_CONTROL_REQUEST,  /* Daemoneye__ControlRequest, CLI -> agent */
	IPC_CONTROL_RESPONSE, /* Daemoneye__ControlResponse, agent -> CLI */
	IPC_DETECTION_TASK,   /* Daemoneye__DetectionTask */
	IPC_DETECTION_RESULT, /* Daemoneye__DetectionResult */
	_IPC_TYPE_MAX,
};

/* More frames answering the same request follow (streamed CLI answers). */
#define IPC_FLAG_MORE   0x0001u
#define IPC_FLAGS_KNOWN IPC_FLAG_MORE

struct ipc_header {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t crc;
};

/* The message descriptor a frame type carries, or NULL for an unknown type. */
const ProtobufCMessageDescriptor *ipc_type_descriptor(uint16_t type);
/* "register", "events", ...; "unknown" otherwise. */
const char *ipc_type_name(uint16_t type);

/* Writes the header of a frame (type, flags, payload) into out. Returns 0,
 * -EMSGSIZE when len > max_payload, -EINVAL for an unknown type or flag. */
int ipc_header_encode(uint16_t type, uint16_t flags, const void *payload, size_t len,
                      size_t max_payload, uint8_t out[IPC_HEADER_SIZE]);

/* Parses and checks a header (length against max_payload, type, flags; not
 * the CRC, which needs the payload). Returns 0 and sets *ret, -EMSGSIZE or
 * -EBADMSG. */
int ipc_header_decode(const uint8_t in[IPC_HEADER_SIZE], size_t max_payload,
                      struct ipc_header *ret);

/* Checks the CRC of a decoded header against its payload (h->len bytes).
 * Returns 0 or -EBADMSG. */
int ipc_header_check_crc(const struct ipc_header *h, const void *payload);

/* Decodes one frame at the start of buf (n bytes). Returns the number of
 * bytes it occupies (> 0) with *ret_hdr set and *ret_payload pointing into
 * buf; 0 when buf does not yet hold a whole frame; -EMSGSIZE or -EBADMSG. */
int ipc_frame_decode(const void *buf, size_t n, size_t max_payload, struct ipc_header *ret_hdr,
                     const uint8_t **ret_payload);

/* Packs msg (whose descriptor must be the one type names) into a new frame.
 * On success *ret_buf (the caller frees it) holds *ret_len bytes. Returns 0,
 * -EINVAL (descriptor does not match type), -EMSGSIZE, -ENOMEM. */
int ipc_frame_pack(uint16_t type, uint16_t flags, const ProtobufCMessage *msg, size_t max_payload,
                   uint8_t **ret_buf, size_t *ret_len);

/* Unpacks a payload as the message type names. On success *ret is a new
 * message the caller frees with protobuf_c_message_free_unpacked(*ret, NULL).
 * Returns 0, -EBADMSG (unknown type, malformed protobuf, missing required
 * field) or -ENOMEM. */
int ipc_payload_unpack(uint16_t type, const void *payload, size_t len, ProtobufCMessage **ret);

/* A bump allocator for what one received frame unpacks into: protobuf-c's
 * many small allocations (each message, array and string) come from a few
 * large blocks and are released together by ipc_arena_free(). Not
 * thread-safe; one owner at a time. */
struct ipc_arena_block;
struct ipc_arena {
	struct ipc_arena_block *head; /* the block allocations come from */
	size_t next_size;             /* size of the next block */
	size_t bytes;                 /* bytes of all blocks held */
};

/* size_hint: the first block's size (0: a default). */
void ipc_arena_init(struct ipc_arena *a, size_t size_hint);
/* Releases every block (every pointer a handed out); a is empty after. */
void ipc_arena_free(struct ipc_arena *a);
/* n bytes aligned for any type, valid until ipc_arena_free(); NULL on OOM. */
void *ipc_arena_alloc(struct ipc_arena *a, size_t n);

/* ipc_payload_unpack() allocating from a (the message is released with
 * ipc_arena_free(a), never with protobuf_c_message_free_unpacked). */
int ipc_payload_unpack_arena(uint16_t type, const void *payload, size_t len, struct ipc_arena *a,
                             ProtobufCMessage **ret);

/* Buffered non-blocking reader: collects partial frames across reads. */
struct ipc_reader {
	uint8_t *buf;
	size_t len; /* bytes held */
	size_t cap;
	size_t off; /* start of the next undelivered frame */
	size_t max_payload;
};

void ipc_reader_init(struct ipc_reader *r, size_t max_payload);
void ipc_reader_free(struct ipc_reader *r);
/* Changes the channel maximum (after the first frame named the channel). */
void ipc_reader_set_max(struct ipc_reader *r, size_t max_payload);
/* Reads what fd has (one read(2)). Returns the number of bytes read (> 0),
 * 0 at end of stream, -EAGAIN when nothing was available, -EMSGSIZE when the
 * pending header names a payload above the maximum, or -errno. */
int ipc_reader_fill(struct ipc_reader *r, int fd);
/* Takes the next whole frame. Returns 1 with *ret_hdr and *ret_payload set
 * (the payload stays valid until the next ipc_reader_* call), 0 when no
 * whole frame is buffered, -EMSGSIZE or -EBADMSG. */
int ipc_reader_next(struct ipc_reader *r, struct ipc_header *ret_hdr, const uint8_t **ret_payload);
/* Bytes buffered but not yet delivered. */
size_t ipc_reader_pending(const struct ipc_reader *r);

/* Bounded output queue for a non-blocking socket. */
struct ipc_writer {
	uint8_t *buf;
	size_t off; /* first unsent byte */
	size_t len; /* end of queued bytes */
	size_t cap;
	size_t max; /* bound on queued bytes */
};

void ipc_writer_init(struct ipc_writer *w, size_t max_queued);
void ipc_writer_free(struct ipc_writer *w);
/* Queues a frame. Returns 0, -ENOBUFS when the queue would exceed its bound
 * (nothing is queued then), or an ipc_frame_pack error. */
int ipc_writer_push(struct ipc_writer *w, uint16_t type, uint16_t flags,
                    const ProtobufCMessage *msg, size_t max_payload);
/* Queues a frame around an already-encoded payload (len bytes). Same
 * returns as ipc_writer_push. */
int ipc_writer_push_frame(struct ipc_writer *w, uint16_t type, uint16_t flags, const void *payload,
                          size_t len, size_t max_payload);
/* Queues len bytes that already form whole frames (control_respond()'s). */
int ipc_writer_push_raw(struct ipc_writer *w, const void *frame, size_t len);
/* Writes as much as fd takes. Returns 0 when the queue is empty, 1 when bytes
 * remain (EAGAIN), or -errno (-EPIPE when the peer went away). */
int ipc_writer_flush(struct ipc_writer *w, int fd);
/* Bytes queued and not yet written. */
size_t ipc_writer_queued(const struct ipc_writer *w);

/* Blocking helpers for simple clients (the CLI, test collectors). */

/* Connects a SOCK_STREAM|SOCK_CLOEXEC Unix socket to path. Returns 0 and sets
 * *ret_fd, -ENAMETOOLONG, or -errno of socket/connect. */
int ipc_connect(const char *path, int *ret_fd);
/* Sends one frame (flags 0), retrying short writes. Returns 0 or -errno. */
int ipc_send(int fd, uint16_t type, const ProtobufCMessage *msg);
int ipc_send_flags(int fd, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
                   size_t max_payload);
/* Receives one frame and unpacks it, waiting at most timeout_ms (-1: no
 * limit) for each part. On success sets *ret_type, *ret_flags (may be NULL)
 * and *ret_msg (caller frees with protobuf_c_message_free_unpacked). Returns
 * 0, -ETIMEDOUT, -ECONNRESET at end of stream, -EMSGSIZE, -EBADMSG, -errno. */
int ipc_recv(int fd, size_t max_payload, int timeout_ms, uint16_t *ret_type, uint16_t *ret_flags,
             ProtobufCMessage **ret_msg);

/* Conversion between struct process_event and its protobuf form. */

/* Fills pb (and rec, which pb->proc will point to) from e WITHOUT copying
 * strings: pb borrows e's strings and is valid while e is unchanged. */
void ipc_event_to_pb(const struct process_event *e, Daemoneye__ProcessEvent *pb,
                     Daemoneye__ProcessRecord *rec);
/* Deep-copies a received event into *ret (initialized here; the caller
 * clears it with process_event_clear). Strings that are not valid UTF-8 are
 * sanitized. Returns 0, -EBADMSG (bad event type) or -ENOMEM. */
int ipc_event_from_pb(const Daemoneye__ProcessEvent *pb, struct process_event *ret);

/* Like ipc_event_from_pb() without copying: *ret's strings point into pb,
 * which must outlive *ret, except a string that is not valid UTF-8, which is
 * sanitized into a. The caller must not process_event_clear() *ret. Returns
 * 0, -EBADMSG (bad event type) or -ENOMEM. */
int ipc_event_borrow_pb(const Daemoneye__ProcessEvent *pb, struct ipc_arena *a,
                        struct process_event *ret);

/* Serializes one event as a ProcessEvent payload into a new buffer (the WAL
 * record body). Returns 0 with *ret_buf and *ret_len set, or -ENOMEM. */
int ipc_event_pack(const struct process_event *e, uint8_t **ret_buf, size_t *ret_len);
/* Parses a ProcessEvent payload into *ret. Returns 0, -EBADMSG or -ENOMEM. */
int ipc_event_unpack(const void *buf, size_t len, struct process_event *ret);

#endif
