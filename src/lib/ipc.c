/* Frames, buffered readers/writers and event conversion: see ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "timeutil.h"
#include "util.h"

struct ipc_type_row {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
};

/* Indexed by enum ipc_type. */
static const struct ipc_type_row ipc_types[_IPC_TYPE_MAX] = {
	[IPC_REGISTER] = { "register", &daemoneye__register__descriptor },
	[IPC_REGISTER_ACK] = { "register-ack", &daemoneye__register_ack__descriptor },
	[IPC_HEARTBEAT] = { "heartbeat", &daemoneye__heartbeat__descriptor },
	[IPC_EVENTS] = { "events", &daemoneye__process_event_batch__descriptor },
	[IPC_ACK] = { "ack", &daemoneye__ack__descriptor },
	[IPC_BACKPRESSURE] = { "backpressure", &daemoneye__backpressure__descriptor },
	[IPC_RPC_REQUEST] = { "rpc-request", &daemoneye__rpc_request__descriptor },
	[IPC_RPC_RESPONSE] = { "rpc-response", &daemoneye__rpc_response__descriptor },
	[IPC_CONTROL_REQUEST] = { "control-request", &daemoneye__control_request__descriptor },
	[IPC_CONTROL_RESPONSE] = { "control-response", &daemoneye__control_response__descriptor },
	[IPC_DETECTION_TASK] = { "detection-task", &daemoneye__detection_task__descriptor },
	[IPC_DETECTION_RESULT] = { "detection-result", &daemoneye__detection_result__descriptor },
};

const ProtobufCMessageDescriptor *
ipc_type_descriptor(uint16_t type)
{
	if (type >= _IPC_TYPE_MAX)
		return NULL;
	return ipc_types[type].desc;
}

const char *
ipc_type_name(uint16_t type)
{
	if (type >= _IPC_TYPE_MAX || ipc_types[type].name == NULL)
		return "unknown";
	return ipc_types[type].name;
}

static void
put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t
get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint32_t
frame_crc(const uint8_t type_flags[4], const void *payload, size_t len)
{
	uint32_t crc = crc32c(0, type_flags, 4);

	return len > 0 ? crc32c(crc, payload, len) : crc;
}

int
ipc_header_encode(uint16_t type, uint16_t flags, const void *payload, size_t len,
                  size_t max_payload, uint8_t out[IPC_HEADER_SIZE])
{
	if (ipc_type_descriptor(type) == NULL || (flags & ~IPC_FLAGS_KNOWN) != 0)
		return -EINVAL;
	if (len > max_payload || len > UINT32_MAX)
		return -EMSGSIZE;
	put_le32(out, (uint32_t)len);
	put_le16(out + 4, type);
	put_le16(out + 6, flags);
	put_le32(out + 8, frame_crc(out + 4, payload, len));
	return 0;
}

int
ipc_header_decode(const uint8_t in[IPC_HEADER_SIZE], size_t max_payload, struct ipc_header *ret)
{
	struct ipc_header h = {
		.len = get_le32(in),
		.type = get_le16(in + 4),
		.flags = get_le16(in + 6),
		.crc = get_le32(in + 8),
	};

	if (h.len > max_payload)
		return -EMSGSIZE;
	if (ipc_type_descriptor(h.type) == NULL || (h.flags & ~IPC_FLAGS_KNOWN) != 0)
		return -EBADMSG;
	*ret = h;
	return 0;
}

int
ipc_header_check_crc(const struct ipc_header *h, const void *payload)
{
	uint8_t tf[4];

	put_le16(tf, h->type);
	put_le16(tf + 2, h->flags);
	return frame_crc(tf, payload, h->len) == h->crc ? 0 : -EBADMSG;
}

int
ipc_frame_decode(const void *buf, size_t n, size_t max_payload, struct ipc_header *ret_hdr,
                 const uint8_t **ret_payload)
{
	const uint8_t *p = buf;
	struct ipc_header h;
	int rc;

	if (n < IPC_HEADER_SIZE)
		return 0;
	if ((rc = ipc_header_decode(p, max_payload, &h)) < 0)
		return rc;
	if (n - IPC_HEADER_SIZE < h.len)
		return 0;
	if ((rc = ipc_header_check_crc(&h, p + IPC_HEADER_SIZE)) < 0)
		return rc;
	*ret_hdr = h;
	*ret_payload = p + IPC_HEADER_SIZE;
	return (int)(IPC_HEADER_SIZE + h.len);
}

int
ipc_frame_pack(uint16_t type, uint16_t flags, const ProtobufCMessage *msg, size_t max_payload,
               uint8_t **ret_buf, size_t *ret_len)
{
	const ProtobufCMessageDescriptor *desc = ipc_type_descriptor(type);
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (desc == NULL || msg == NULL || msg->descriptor != desc)
		return -EINVAL;
	len = protobuf_c_message_get_packed_size(msg);
	if (len > max_payload || len > UINT32_MAX)
		return -EMSGSIZE;
	if ((buf = malloc(IPC_HEADER_SIZE + len)) == NULL)
		return -ENOMEM;
	rc = protobuf_c_message_pack(msg, buf + IPC_HEADER_SIZE) == len
	         ? ipc_header_encode(type, flags, buf + IPC_HEADER_SIZE, len, max_payload, buf)
	         : -EINVAL;
	if (rc < 0)
		return rc;
	*ret_len = IPC_HEADER_SIZE + len;
	*ret_buf = TAKE_PTR(buf);
	return 0;
}

int
ipc_payload_unpack(uint16_t type, const void *payload, size_t len, ProtobufCMessage **ret)
{
	const ProtobufCMessageDescriptor *desc = ipc_type_descriptor(type);
	ProtobufCMessage *m;

	if (desc == NULL)
		return -EBADMSG;
	/* protobuf-c returns NULL for malformed input, missing required fields
	 * and allocation failure alike; malformed is by far the likely one. */
	if ((m = protobuf_c_message_unpack(desc, NULL, len, payload)) == NULL)
		return -EBADMSG;
	*ret = m;
	return 0;
}

/* ---- arena ---- */

struct ipc_arena_block {
	struct ipc_arena_block *next;
	size_t cap, used;
	max_align_t data[];
};

#define ARENA_ALIGN       (_Alignof(max_align_t))
#define ARENA_FIRST_BLOCK (16u * 1024)
#define ARENA_MAX_BLOCK   (4u * 1024 * 1024)

void
ipc_arena_init(struct ipc_arena *a, size_t size_hint)
{
	*a = (struct ipc_arena){ .next_size = size_hint ? size_hint : ARENA_FIRST_BLOCK };
}

void
ipc_arena_free(struct ipc_arena *a)
{
	struct ipc_arena_block *b = a->head;

	while (b != NULL) {
		struct ipc_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->bytes = 0;
}

void *
ipc_arena_alloc(struct ipc_arena *a, size_t n)
{
	struct ipc_arena_block *b = a->head;
	size_t cap;

	if (n > SIZE_MAX / 2)
		return NULL;
	n = n ? (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN : ARENA_ALIGN;
	if (b == NULL || b->cap - b->used < n) {
		cap = a->next_size > n ? a->next_size : n;
		if ((b = malloc(sizeof(*b) + cap)) == NULL)
			return NULL;
		*b = (struct ipc_arena_block){ .next = a->head, .cap = cap };
		a->head = b;
		a->bytes += cap;
		if (a->next_size < ARENA_MAX_BLOCK)
			a->next_size *= 2;
	}
	b->used += n;
	return (uint8_t *)b->data + b->used - n;
}

static void *
arena_pb_alloc(void *data, size_t n)
{
	return ipc_arena_alloc(data, n);
}

static void
arena_pb_free(void *data, void *p)
{
	/* Everything goes at once with ipc_arena_free(). */
	(void)data;
	(void)p;
}

int
ipc_payload_unpack_arena(uint16_t type, const void *payload, size_t len, struct ipc_arena *a,
                         ProtobufCMessage **ret)
{
	const ProtobufCMessageDescriptor *desc = ipc_type_descriptor(type);
	ProtobufCAllocator pa = { .alloc = arena_pb_alloc,
		                  .free = arena_pb_free,
		                  .allocator_data = a };
	ProtobufCMessage *m;

	if (desc == NULL)
		return -EBADMSG;
	if ((m = protobuf_c_message_unpack(desc, &pa, len, payload)) == NULL)
		return -EBADMSG;
	*ret = m;
	return 0;
}

/* ---- reader ---- */

void
ipc_reader_init(struct ipc_reader *r, size_t max_payload)
{
	*r = (struct ipc_reader){ .max_payload = max_payload };
}

void
ipc_reader_free(struct ipc_reader *r)
{
	free(r->buf);
	*r = (struct ipc_reader){ .max_payload = r->max_payload };
}

void
ipc_reader_set_max(struct ipc_reader *r, size_t max_payload)
{
	r->max_payload = max_payload;
}

size_t
ipc_reader_pending(const struct ipc_reader *r)
{
	return r->len - r->off;
}

/* How many bytes the buffer should be able to hold to complete the pending
 * frame; checks the pending header so a huge length never allocates. */
static int
reader_need(const struct ipc_reader *r, size_t *ret)
{
	size_t pending = r->len - r->off;
	struct ipc_header h;
	int rc;

	if (pending < IPC_HEADER_SIZE) {
		*ret = 64 * 1024;
		return 0;
	}
	if ((rc = ipc_header_decode(r->buf + r->off, r->max_payload, &h)) < 0)
		return rc;
	*ret = IPC_HEADER_SIZE + (size_t)h.len;
	return 0;
}

static int
reader_make_room(struct ipc_reader *r)
{
	size_t need, want;
	uint8_t *nb;
	int rc;

	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if ((rc = reader_need(r, &need)) < 0)
		return rc;
	want = need > 64 * 1024 ? need : 64 * 1024;
	if (want <= r->len)
		want = r->len + 64 * 1024; /* whole frames buffered: read on behind them */
	if (r->cap >= want)
		return 0;
	if ((nb = realloc(r->buf, want)) == NULL)
		return -ENOMEM;
	r->buf = nb;
	r->cap = want;
	return 0;
}

int
ipc_reader_fill(struct ipc_reader *r, int fd)
{
	ssize_t n;
	int rc;

	if ((rc = reader_make_room(r)) < 0)
		return rc;
	n = read(fd, r->buf + r->len, r->cap - r->len);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	r->len += (size_t)n;
	return (int)n;
}

int
ipc_reader_next(struct ipc_reader *r, struct ipc_header *ret_hdr, const uint8_t **ret_payload)
{
	struct ipc_header h;
	const uint8_t *payload;
	int n;

	n = ipc_frame_decode(r->buf + r->off, r->len - r->off, r->max_payload, &h, &payload);
	if (n <= 0)
		return n;
	r->off += (size_t)n;
	if (r->off == r->len)
		r->off = r->len = 0;
	*ret_hdr = h;
	*ret_payload = payload;
	return 1;
}

/* ---- writer ---- */

void
ipc_writer_init(struct ipc_writer *w, size_t max_queued)
{
	*w = (struct ipc_writer){ .max = max_queued };
}

void
ipc_writer_free(struct ipc_writer *w)
{
	free(w->buf);
	*w = (struct ipc_writer){ .max = w->max };
}

size_t
ipc_writer_queued(const struct ipc_writer *w)
{
	return w->len - w->off;
}

/* Compacts and grows the queue so flen more bytes fit after w->len. */
static int
writer_reserve(struct ipc_writer *w, size_t flen)
{
	size_t queued = w->len - w->off;

	if (w->off > 0) {
		memmove(w->buf, w->buf + w->off, queued);
		w->len = queued;
		w->off = 0;
	}
	if (w->len + flen > w->cap) {
		size_t ncap = w->cap ? w->cap : 4096;
		uint8_t *nb;

		while (ncap < w->len + flen)
			ncap *= 2;
		if ((nb = realloc(w->buf, ncap)) == NULL)
			return -ENOMEM;
		w->buf = nb;
		w->cap = ncap;
	}
	return 0;
}

int
ipc_writer_push(struct ipc_writer *w, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
                size_t max_payload)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t flen, queued = w->len - w->off;
	int rc;

	if ((rc = ipc_frame_pack(type, flags, msg, max_payload, &frame, &flen)) < 0)
		return rc;
	if (queued + flen > w->max)
		return -ENOBUFS;
	if ((rc = writer_reserve(w, flen)) < 0)
		return rc;
	memcpy(w->buf + w->len, frame, flen);
	w->len += flen;
	return 0;
}

int
ipc_writer_push_frame(struct ipc_writer *w, uint16_t type, uint16_t flags, const void *payload,
                      size_t len, size_t max_payload)
{
	size_t queued = w->len - w->off, flen = IPC_HEADER_SIZE + len;
	int rc;

	if (len > max_payload)
		return -EMSGSIZE;
	if (queued + flen > w->max)
		return -ENOBUFS;
	if ((rc = writer_reserve(w, flen)) < 0)
		return rc;
	if ((rc = ipc_header_encode(type, flags, payload, len, max_payload, w->buf + w->len)) < 0)
		return rc;
	memcpy(w->buf + w->len + IPC_HEADER_SIZE, payload, len);
	w->len += flen;
	return 0;
}

int
ipc_writer_push_raw(struct ipc_writer *w, const void *frame, size_t len)
{
	int rc;

	if (ipc_writer_queued(w) + len > w->max)
		return -ENOBUFS;
	if ((rc = writer_reserve(w, len)) < 0)
		return rc;
	memcpy(w->buf + w->len, frame, len);
	w->len += len;
	return 0;
}

int
ipc_writer_flush(struct ipc_writer *w, int fd)
{
	while (w->off < w->len) {
		ssize_t n = send(fd, w->buf + w->off, w->len - w->off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -errno;
		}
		w->off += (size_t)n;
	}
	w->off = w->len = 0;
	return 0;
}

/* ---- blocking helpers ---- */

int
ipc_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	de_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };

				if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
					return -errno;
				continue;
			}
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
ipc_send_flags(int fd, uint16_t type, uint16_t flags, const ProtobufCMessage *msg,
               size_t max_payload)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len;
	int rc;

	if ((rc = ipc_frame_pack(type, flags, msg, max_payload, &frame, &len)) < 0)
		return rc;
	return send_all(fd, frame, len);
}

int
ipc_send(int fd, uint16_t type, const ProtobufCMessage *msg)
{
	size_t max = type == IPC_CONTROL_RESPONSE ? IPC_MAX_CONTROL_RESPONSE : IPC_MAX_COLLECTOR;

	return ipc_send_flags(fd, type, 0, msg, max);
}

static int
recv_exact(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;
		int pr = poll(&pfd, 1, timeout_ms);

		if (pr < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pr == 0)
			return -ETIMEDOUT;
		r = recv(fd, p, n, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int
ipc_recv(int fd, size_t max_payload, int timeout_ms, uint16_t *ret_type, uint16_t *ret_flags,
         ProtobufCMessage **ret_msg)
{
	uint8_t hdr[IPC_HEADER_SIZE] = { 0 };
	_cleanup_free_ uint8_t *payload = NULL;
	struct ipc_header h;
	ProtobufCMessage *m;
	int rc;

	if ((rc = recv_exact(fd, hdr, sizeof(hdr), timeout_ms)) < 0)
		return rc;
	if ((rc = ipc_header_decode(hdr, max_payload, &h)) < 0)
		return rc;
	if ((payload = malloc(h.len ? h.len : 1)) == NULL)
		return -ENOMEM;
	if ((rc = recv_exact(fd, payload, h.len, timeout_ms)) < 0)
		return rc;
	if ((rc = ipc_header_check_crc(&h, payload)) < 0)
		return rc;
	if ((rc = ipc_payload_unpack(h.type, payload, h.len, &m)) < 0)
		return rc;
	*ret_type = h.type;
	if (ret_flags)
		*ret_flags = h.flags;
	*ret_msg = m;
	return 0;
}

/* ---- conversion ---- */

static const Daemoneye__EventType ev_to_pb[_PROC_EV_MAX] = {
	[PROC_EV_SNAPSHOT] = DAEMONEYE__EVENT_TYPE__EVENT_SNAPSHOT,
	[PROC_EV_START] = DAEMONEYE__EVENT_TYPE__EVENT_START,
	[PROC_EV_STOP] = DAEMONEYE__EVENT_TYPE__EVENT_STOP,
	[PROC_EV_MODIFIED] = DAEMONEYE__EVENT_TYPE__EVENT_MODIFIED,
	[PROC_EV_SUSPICIOUS] = DAEMONEYE__EVENT_TYPE__EVENT_SUSPICIOUS,
};

void
ipc_event_to_pb(const struct process_event *e, Daemoneye__ProcessEvent *pb,
                Daemoneye__ProcessRecord *rec)
{
	const struct process_record *p = &e->proc;

	daemoneye__process_record__init(rec);
	rec->pid = p->pid;
	rec->ppid = p->ppid;
	rec->name = p->name;
	rec->executable_path = p->executable_path;
	rec->command_line = p->command_line;
	rec->start_time = p->start_time;
	rec->start_ticks = p->start_ticks;
	rec->cpu_usage = p->cpu_usage;
	rec->memory_usage = p->memory_usage;
	rec->executable_hash = p->executable_hash;
	rec->user_id = p->user_id;
	rec->effective_user_id = p->effective_user_id;
	rec->group_id = p->group_id;
	rec->user_name = p->user_name;
	rec->cwd = p->cwd;
	rec->tty = p->tty;
	rec->state = p->state;
	rec->threads = p->threads;
	rec->accessible = p->accessible;
	rec->file_exists = p->file_exists;
	rec->exe_deleted = p->exe_deleted;
	rec->exe_memfd = p->exe_memfd;
	rec->argv_truncated = p->argv_truncated;
	rec->parent_name = p->parent_name;
	rec->parent_executable_path = p->parent_executable_path;
	rec->parent_command_line = p->parent_command_line;
	rec->container_id = p->container_id;
	rec->cgroup = p->cgroup;
	rec->missing = p->missing;

	daemoneye__process_event__init(pb);
	pb->type = (unsigned)e->type < _PROC_EV_MAX ? ev_to_pb[e->type]
	                                            : DAEMONEYE__EVENT_TYPE__EVENT_SNAPSHOT;
	pb->time = e->time;
	pb->seq = e->seq;
	pb->source = e->source;
	pb->proc = rec;
	pb->exit_code = e->exit_code;
	pb->runtime_ms = e->runtime_ms;
	pb->modified_fields = e->modified_fields;
	pb->reason = e->reason;
}

/* Copies a peer string: NULL stays NULL; invalid UTF-8 is sanitized. */
static int
dup_peer_string(const char *s, char **ret)
{
	char *d;

	if (s == NULL) {
		*ret = NULL;
		return 0;
	}
	if (utf8_is_valid(s, strlen(s)))
		d = strdup(s);
	else
		d = utf8_sanitize_dup(s, strlen(s));
	if (d == NULL)
		return -ENOMEM;
	*ret = d;
	return 0;
}

/* The record's numbers and flags; the strings are the callers' (copied or
 * borrowed). */
static void
record_numbers_from_pb(const Daemoneye__ProcessRecord *rec, struct process_record *p)
{
	p->pid = rec->pid;
	p->ppid = rec->ppid;
	p->start_time = rec->start_time;
	p->start_ticks = rec->start_ticks;
	p->cpu_usage = rec->cpu_usage;
	p->memory_usage = rec->memory_usage;
	p->user_id = rec->user_id;
	p->effective_user_id = rec->effective_user_id;
	p->group_id = rec->group_id;
	p->threads = rec->threads;
	p->accessible = rec->accessible;
	p->file_exists = rec->file_exists;
	p->exe_deleted = rec->exe_deleted;
	p->exe_memfd = rec->exe_memfd;
	p->argv_truncated = rec->argv_truncated;
	p->missing = rec->missing;
}

static int
record_from_pb(const Daemoneye__ProcessRecord *rec, struct process_record *p)
{
	struct {
		const char *src;
		char **dst;
	} strs[] = {
		{ rec->name, &p->name },
		{ rec->executable_path, &p->executable_path },
		{ rec->command_line, &p->command_line },
		{ rec->executable_hash, &p->executable_hash },
		{ rec->user_name, &p->user_name },
		{ rec->cwd, &p->cwd },
		{ rec->tty, &p->tty },
		{ rec->state, &p->state },
		{ rec->parent_name, &p->parent_name },
		{ rec->parent_executable_path, &p->parent_executable_path },
		{ rec->parent_command_line, &p->parent_command_line },
		{ rec->container_id, &p->container_id },
		{ rec->cgroup, &p->cgroup },
	};

	record_numbers_from_pb(rec, p);
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		if (dup_peer_string(strs[i].src, strs[i].dst) < 0)
			return -ENOMEM;
	return 0;
}

int
ipc_event_from_pb(const Daemoneye__ProcessEvent *pb, struct process_event *ret)
{
	struct process_event e;
	int rc;

	if ((unsigned)pb->type >= _PROC_EV_MAX || pb->proc == NULL)
		return -EBADMSG;
	process_event_init(&e);
	e.type = (enum proc_event_type)pb->type;
	e.time = pb->time;
	e.seq = pb->seq;
	e.exit_code = pb->exit_code;
	e.runtime_ms = pb->runtime_ms;
	if ((rc = record_from_pb(pb->proc, &e.proc)) < 0 ||
	    (rc = dup_peer_string(pb->source, &e.source)) < 0 ||
	    (rc = dup_peer_string(pb->modified_fields, &e.modified_fields)) < 0 ||
	    (rc = dup_peer_string(pb->reason, &e.reason)) < 0) {
		process_event_clear(&e);
		return rc;
	}
	*ret = e;
	return 0;
}

/* True when s (n bytes) is valid UTF-8. Runs of ASCII, what peers send
 * almost always, are checked eight bytes at a time. */
static bool
peer_string_valid(const char *s, size_t n)
{
	size_t i = 0;

	for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
		uint64_t w;

		memcpy(&w, s + i, sizeof(w));
		if (w & 0x8080808080808080ull)
			break;
	}
	return utf8_is_valid(s + i, n - i);
}

/* Points *ret at s when it is valid UTF-8, else at a sanitized copy in a. */
static int
borrow_peer_string(const char *s, struct ipc_arena *a, char **ret)
{
	size_t n = s ? strlen(s) : 0;
	char *d;

	if (s == NULL || peer_string_valid(s, n)) {
		*ret = (char *)s;
		return 0;
	}
	_cleanup_free_ char *clean = utf8_sanitize_dup(s, n);
	if (clean == NULL || (d = ipc_arena_alloc(a, (n = strlen(clean)) + 1)) == NULL)
		return -ENOMEM;
	memcpy(d, clean, n + 1);
	*ret = d;
	return 0;
}

int
ipc_event_borrow_pb(const Daemoneye__ProcessEvent *pb, struct ipc_arena *a,
                    struct process_event *ret)
{
	const Daemoneye__ProcessRecord *rec = pb->proc;
	struct process_event e;
	struct process_record *p = &e.proc;
	const struct {
		const char *src;
		char **dst;
	} strs[] = {
		{ pb->source, &e.source },
		{ pb->modified_fields, &e.modified_fields },
		{ pb->reason, &e.reason },
		{ rec ? rec->name : NULL, &p->name },
		{ rec ? rec->executable_path : NULL, &p->executable_path },
		{ rec ? rec->command_line : NULL, &p->command_line },
		{ rec ? rec->executable_hash : NULL, &p->executable_hash },
		{ rec ? rec->user_name : NULL, &p->user_name },
		{ rec ? rec->cwd : NULL, &p->cwd },
		{ rec ? rec->tty : NULL, &p->tty },
		{ rec ? rec->state : NULL, &p->state },
		{ rec ? rec->parent_name : NULL, &p->parent_name },
		{ rec ? rec->parent_executable_path : NULL, &p->parent_executable_path },
		{ rec ? rec->parent_command_line : NULL, &p->parent_command_line },
		{ rec ? rec->container_id : NULL, &p->container_id },
		{ rec ? rec->cgroup : NULL, &p->cgroup },
	};

	if ((unsigned)pb->type >= _PROC_EV_MAX || rec == NULL)
		return -EBADMSG;
	process_event_init(&e);
	e.type = (enum proc_event_type)pb->type;
	e.time = pb->time;
	e.seq = pb->seq;
	e.exit_code = pb->exit_code;
	e.runtime_ms = pb->runtime_ms;
	record_numbers_from_pb(rec, p);
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		if (borrow_peer_string(strs[i].src, a, strs[i].dst) < 0)
			return -ENOMEM;
	*ret = e;
	return 0;
}

int
ipc_event_pack(const struct process_event *e, uint8_t **ret_buf, size_t *ret_len)
{
	Daemoneye__ProcessEvent pb;
	Daemoneye__ProcessRecord rec;
	uint8_t *buf;
	size_t len;

	ipc_event_to_pb(e, &pb, &rec);
	len = daemoneye__process_event__get_packed_size(&pb);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	daemoneye__process_event__pack(&pb, buf);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int
ipc_event_unpack(const void *buf, size_t len, struct process_event *ret)
{
	Daemoneye__ProcessEvent *pb;
	int rc;

	if ((pb = daemoneye__process_event__unpack(NULL, len, buf)) == NULL)
		return -EBADMSG;
	rc = ipc_event_from_pb(pb, ret);
	daemoneye__process_event__free_unpacked(pb, NULL);
	return rc;
}
