/* procmond's managed mode: WAL first, then the agent. See publish.h and
 * docs/pipeline.md.
 *
 * The publisher thread owns the connection. It reads what it sends from the
 * WAL itself (a cursor that starts after the agent's high-water sequence), so
 * replay after a restart, resending after a reconnect and live sending are one
 * code path, and nothing is held in memory that the WAL does not hold. */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "ipc.h"
#include "log.h"
#include "timeutil.h"
#include "util.h"
#include "wal.h"

#define BATCH_MAX_EVENTS 512
/* A frame (header included) is at most 32 KiB (or one record, however
 * large): ~100 processes of a snapshot. The batch buffer and the writer's
 * queue stay resident at the size the largest burst made them, so the
 * writer holds one frame at most: the next is read from the WAL only once
 * the socket took the last one (the WAL holds the rest, so memory need
 * not), and a frame of exactly 32 KiB keeps the writer's buffer, which
 * doubles, at 32 KiB. A 1,600 exec/s load fills ~16 KiB per 30 ms window. */
#define BATCH_MAX_BYTES     (32 * 1024 - IPC_HEADER_SIZE)
#define WRITER_MAX          (8u * 1024 * 1024)
#define INFLIGHT_RING       256
#define REGISTER_TIMEOUT_MS 10000
#define REGISTER_RETRIES    3
#define BACKOFF_MIN_MS      100
#define BACKOFF_MAX_MS      5000
#define BREAKER_FAILURES    8
#define BREAKER_OPEN_MS     15000
#define MAX_CAPS            16
/* The group-commit window: at most one fdatasync (and one frame to the
 * agent, one store transaction and one rule pass there) per window. Each
 * window costs about the same whatever it holds, so under sustained load
 * the window stretches, by PUBLISH_SYNC_MS per window, up to
 * PUBLISH_SYNC_MAX_MS while the events arrive at PUBLISH_STRETCH_RATE per
 * second or more, and falls back to PUBLISH_SYNC_MS as soon as a window saw
 * fewer than PUBLISH_SHRINK_RATE. A lone event after a quiet spell is synced
 * and sent at once, as before; light-load exec -> alert is unchanged
 * (docs/pipeline.md, "fsync policy"). */
#define PUBLISH_SYNC_MS 10
#ifndef PUBLISH_SYNC_MAX_MS
#define PUBLISH_SYNC_MAX_MS 30
#endif
#define PUBLISH_STRETCH_RATE 800 /* events/s: 8 per 10 ms window */
#define PUBLISH_SHRINK_RATE  400

struct inflight {
	uint64_t last_seq;
	uint64_t bytes_total; /* sent_bytes after this batch */
};

struct publish {
	char *socket_path;
	char *collector_id;
	char *source_name;      /* NULL when not told */
	uint64_t source_events; /* guarded by mu */
	uint64_t source_drops;
	char *caps_buf;
	char *caps[MAX_CAPS];
	size_t n_caps;
	uint64_t max_inflight;
	uint32_t hb_interval_s;
	uint32_t sync_interval_ms; /* the shortest window */
	uint32_t sync_max_ms;      /* the longest, under sustained load */
	void (*on_adjust_interval)(void *ctx, uint32_t interval_ms);
	void (*on_shutdown)(void *ctx);
	void *ctx;

	pthread_mutex_t mu; /* guards wal, stats, stop */
	struct wal *wal;
	struct publish_stats stats;
	bool stop;
	int wake_fd;
	/* Set by wake() when it wrote wake_fd, cleared by the publisher once it
	 * has read it: one write(2) per publisher wake-up, not one per event. */
	atomic_bool wake_pending;
	pthread_t thread;
	bool thread_started;

	/* Publisher thread only. */
	int sock;
	struct ipc_reader rd;
	struct ipc_writer wr;
	uint64_t send_seq;    /* next sequence to send */
	uint64_t durable_seq; /* synced to disk */
	uint64_t acked_seq;
	uint64_t sent_bytes, acked_bytes;
	struct inflight ring[INFLIGHT_RING];
	size_t ring_head, ring_len;
	bool paused;
	uint64_t next_heartbeat_ms;
	uint8_t *batch;
	size_t batch_len;
	uint32_t batch_n;
	uint64_t batch_last;
	uint64_t batch_limit_seq;
	uint64_t last_sync_ms;
	uint32_t window_ms; /* the current group-commit window */
	bool sync_wait;
	pid_t parent; /* the agent's supervisor when it spawned us */
	bool parent_gone;
};

static void
publish_lock(struct publish *p)
{
	pthread_mutex_lock(&p->mu);
}

static void
publish_unlock(struct publish *p)
{
	pthread_mutex_unlock(&p->mu);
}

static int
fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void
wake(struct publish *p)
{
	uint64_t one = 1;

	/* Already signalled and not yet read: the publisher will look anyway. */
	if (atomic_exchange(&p->wake_pending, true))
		return;
	(void)!write(p->wake_fd, &one, sizeof(one));
}

int
publish_event(struct publish *p, const struct process_event *ev)
{
	struct process_event tmp = *ev; /* shallow: only seq differs */
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int rc;

	publish_lock(p);
	tmp.seq = wal_next_seq(p->wal);
	if ((rc = ipc_event_pack(&tmp, &buf, &len)) == 0 &&
	    (rc = wal_append(p->wal, tmp.seq, buf, len)) == 0) {
		p->stats.appended++;
		p->stats.last_seq = tmp.seq;
		/* Connected, the publisher's group commit writes the WAL's tail
		 * within its window, with the events gathered meanwhile; with no
		 * agent to send to, nothing waits in memory. */
		if (!p->stats.connected && (rc = wal_flush(p->wal)) < 0) {
			p->stats.appended--; /* flushed at each append: only this one */
			p->stats.last_seq = wal_next_seq(p->wal) - 1;
		}
	}
	publish_unlock(p);
	if (rc == 0)
		wake(p);
	return rc;
}

void
publish_get_stats(struct publish *p, struct publish_stats *ret)
{
	publish_lock(p);
	*ret = p->stats;
	publish_unlock(p);
}

void
publish_set_source_stats(struct publish *p, uint64_t events, uint64_t drops)
{
	publish_lock(p);
	p->source_events = events;
	p->source_drops = drops;
	publish_unlock(p);
}

/* ---- connection ---- */

static void
disconnect(struct publish *p, const char *why)
{
	if (p->sock < 0)
		return;
	log_warn("publish: disconnected from agent: %s", why);
	close(p->sock);
	p->sock = -1;
	ipc_reader_free(&p->rd);
	ipc_writer_free(&p->wr);
	p->paused = false;
	p->ring_len = 0;
	publish_lock(p);
	p->stats.connected = false;
	p->stats.backpressure = false;
	publish_unlock(p);
}

static int
register_once(struct publish *p, int fd, Daemoneye__RegisterAck **ret)
{
	Daemoneye__Register r = DAEMONEYE__REGISTER__INIT;
	ProtobufCMessage *m = NULL;
	uint16_t type;
	int rc;

	r.collector_id = p->collector_id;
	r.capabilities = p->caps;
	r.n_capabilities = p->n_caps;
	r.protocol_version = IPC_PROTOCOL_VERSION;
	r.pid = (uint32_t)getpid();
	r.heartbeat_interval_s = p->hb_interval_s;
	publish_lock(p);
	r.last_seq = wal_next_seq(p->wal) - 1;
	publish_unlock(p);
	if ((rc = ipc_send(fd, IPC_REGISTER, &r.base)) < 0)
		return rc;
	if ((rc = ipc_recv(fd, IPC_MAX_COLLECTOR, REGISTER_TIMEOUT_MS, &type, NULL, &m)) < 0)
		return rc;
	if (type != IPC_REGISTER_ACK) {
		protobuf_c_message_free_unpacked(m, NULL);
		return -EPROTO;
	}
	*ret = (Daemoneye__RegisterAck *)m;
	return 0;
}

static bool stopping(struct publish *p);

/* Connects and registers: 3 tries, with exponential backoff between them. */
static int
connect_register(struct publish *p)
{
	Daemoneye__RegisterAck *ack = NULL;
	uint32_t delay = BACKOFF_MIN_MS;
	int fd = -1, rc = -ECONNREFUSED;

	for (int attempt = 0; attempt < REGISTER_RETRIES; attempt++) {
		if (attempt > 0) {
			if (stopping(p))
				break;
			usleep(delay * 1000u);
			delay *= 2;
		}
		if ((rc = ipc_connect(p->socket_path, &fd)) < 0)
			continue;
		if ((rc = register_once(p, fd, &ack)) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0 || ack == NULL)
		return rc < 0 ? rc : -EPROTO;
	if (!ack->accepted) {
		log_error("publish: agent refused registration: %s",
		          ack->reason ? ack->reason : "no reason given");
		protobuf_c_message_free_unpacked(&ack->base, NULL);
		close(fd);
		return -EPERM;
	}
	p->sock = fd;
	(void)fd_nonblock(fd);
	ipc_reader_init(&p->rd, IPC_MAX_COLLECTOR);
	ipc_writer_init(&p->wr, WRITER_MAX);
	p->acked_seq = ack->high_water_seq;
	p->send_seq = ack->high_water_seq + 1;
	p->sent_bytes = p->acked_bytes = 0;
	p->ring_len = 0;
	p->next_heartbeat_ms = time_mono_ms() + (uint64_t)p->hb_interval_s * 1000;
	publish_lock(p);
	/* The agent may remember more than this WAL does (a lost WAL
	 * directory): never reuse a sequence it already stored. */
	wal_bump_seq(p->wal, ack->high_water_seq + 1);
	(void)wal_ack(p->wal, ack->high_water_seq);
	p->stats.connected = true;
	p->stats.acked_seq = ack->high_water_seq;
	p->stats.reconnects++;
	publish_unlock(p);
	log_info("publish: registered with the agent as %s (protocol %u), resuming after seq %llu",
	         p->collector_id, ack->protocol_version, (unsigned long long)ack->high_water_seq);
	protobuf_c_message_free_unpacked(&ack->base, NULL);
	return 0;
}

/* ---- sending ---- */

static size_t
put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Appends one stored ProcessEvent as element 1 ("events") of a
 * ProcessEventBatch: tag, length, bytes. The WAL body already carries seq. */
static int
batch_cb(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct publish *p = ctx;

	/* The first record always fits (the buffer has room for the largest). */
	if (seq > p->batch_limit_seq ||
	    (p->batch_n > 0 && p->batch_len + len + 11 > BATCH_MAX_BYTES))
		return 2;
	p->batch[p->batch_len++] = 0x0a;
	p->batch_len += put_varint(p->batch + p->batch_len, len);
	memcpy(p->batch + p->batch_len, payload, len);
	p->batch_len += len;
	p->batch_n++;
	p->batch_last = seq;
	return 0;
}

/* Group commit: one fdatasync covers everything appended so far, done
 * outside the lock so procmond's main loop keeps appending meanwhile. */
static int
sync_wal(struct publish *p)
{
	uint64_t seq = 0;
	int fd = -1, rc;

	publish_lock(p);
	rc = wal_sync_begin(p->wal, &fd, &seq);
	if (rc == 0)
		p->durable_seq = wal_next_seq(p->wal) - 1;
	publish_unlock(p);
	if (rc <= 0)
		return rc;
	if (fdatasync(fd) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);
	publish_lock(p);
	wal_sync_done(p->wal, seq);
	publish_unlock(p);
	if (seq > p->durable_seq)
		p->durable_seq = seq;
	return 0;
}

/* Sets the next window from the one just closed: n events made durable in
 * elapsed_ms since the previous sync. */
static void
adapt_window(struct publish *p, uint64_t n, uint64_t elapsed_ms)
{
	uint64_t rate = n * 1000 / (elapsed_ms ? elapsed_ms : 1);
	uint32_t w = p->window_ms;

	if (rate >= PUBLISH_STRETCH_RATE) {
		w += p->sync_interval_ms;
		if (w > p->sync_max_ms)
			w = p->sync_max_ms;
	} else if (rate < PUBLISH_SHRINK_RATE) {
		w = p->sync_interval_ms;
	}
	if (w != p->window_ms) {
		p->window_ms = w;
		publish_lock(p);
		p->stats.window_ms = w;
		publish_unlock(p);
	}
}

static bool
can_send(const struct publish *p)
{
	return p->sock >= 0 && !p->paused && p->ring_len < INFLIGHT_RING &&
	       p->sent_bytes - p->acked_bytes < p->max_inflight && ipc_writer_queued(&p->wr) == 0;
}

/* Sends one batch when there is something durable to send. Returns 1 when
 * a batch went out, 0 when there was nothing, -errno on failure. */
static int
send_batch(struct publish *p)
{
	int rc;

	p->sync_wait = false;
	if (!can_send(p))
		return 0;
	if (p->send_seq > p->durable_seq) {
		uint64_t now = time_mono_ms(), prev_sync = p->last_sync_ms;
		uint64_t prev_durable = p->durable_seq;

		/* At most one fdatasync per window: events that arrive meanwhile
		 * share the next one (group commit). */
		if (now < p->last_sync_ms + p->window_ms) {
			p->sync_wait = true;
			return 0;
		}
		p->last_sync_ms = now;
		if ((rc = sync_wal(p)) < 0)
			return rc;
		adapt_window(p, p->durable_seq > prev_durable ? p->durable_seq - prev_durable : 0,
		             now - prev_sync);
	}
	if (p->send_seq > p->durable_seq)
		return 0;
	p->batch_len = 0;
	p->batch_n = 0;
	p->batch_limit_seq = p->durable_seq;
	publish_lock(p);
	rc = wal_read(p->wal, p->send_seq, BATCH_MAX_EVENTS, BATCH_MAX_BYTES, batch_cb, p);
	publish_unlock(p);
	if (rc < 0)
		return rc;
	if (p->batch_n == 0)
		return 0;
	rc =
	    ipc_writer_push_frame(&p->wr, IPC_EVENTS, 0, p->batch, p->batch_len, IPC_MAX_COLLECTOR);
	if (rc < 0)
		return rc;
	p->send_seq = p->batch_last + 1;
	p->sent_bytes += p->batch_len;
	p->ring[(p->ring_head + p->ring_len) % INFLIGHT_RING] =
	    (struct inflight){ .last_seq = p->batch_last, .bytes_total = p->sent_bytes };
	p->ring_len++;
	publish_lock(p);
	p->stats.sent += p->batch_n;
	publish_unlock(p);
	return 1;
}

/* ---- receiving ---- */

static void
on_ack(struct publish *p, uint64_t seq)
{
	int deleted;

	if (seq <= p->acked_seq)
		return;
	p->acked_seq = seq;
	while (p->ring_len > 0 && p->ring[p->ring_head].last_seq <= seq) {
		p->acked_bytes = p->ring[p->ring_head].bytes_total;
		p->ring_head = (p->ring_head + 1) % INFLIGHT_RING;
		p->ring_len--;
	}
	publish_lock(p);
	deleted = wal_ack(p->wal, seq);
	p->stats.acked_seq = seq;
	publish_unlock(p);
	if (deleted < 0)
		log_warn("publish: deleting acknowledged WAL files: %s", strerror(-deleted));
}

static void
health_body(struct publish *p, char *buf, size_t n)
{
	struct publish_stats s;
	struct wal_stats ws;
	uint64_t src_events, src_drops;

	publish_lock(p);
	s = p->stats;
	src_events = p->source_events;
	src_drops = p->source_drops;
	wal_get_stats(p->wal, &ws);
	publish_unlock(p);
	(void)snprintf(buf, n,
	               "{\"collector_id\":\"%s\",\"source\":\"%s\",\"source_events\":%llu,"
	               "\"source_drops\":%llu,\"appended\":%llu,\"sent\":%llu,\"acked_seq\":%llu,"
	               "\"last_seq\":%llu,\"wal_files\":%u,\"wal_bytes\":%llu,\"reconnects\":%llu,"
	               "\"backpressure\":%s,\"sync_window_ms\":%u}",
	               p->collector_id, p->source_name ? p->source_name : "unknown",
	               (unsigned long long)src_events, (unsigned long long)src_drops,
	               (unsigned long long)s.appended, (unsigned long long)s.sent,
	               (unsigned long long)s.acked_seq, (unsigned long long)s.last_seq, ws.files,
	               (unsigned long long)ws.bytes, (unsigned long long)s.reconnects,
	               p->paused ? "true" : "false", s.window_ms);
}

static void
on_rpc(struct publish *p, const Daemoneye__RpcRequest *req)
{
	Daemoneye__RpcResponse resp = DAEMONEYE__RPC_RESPONSE__INIT;
	char body[1024];
	bool shutdown = false;

	resp.correlation_id = req->correlation_id;
	resp.status = DAEMONEYE__RPC_STATUS__RPC_OK;
	switch (req->method) {
	case DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK:
		health_body(p, body, sizeof(body));
		resp.body_json = body;
		break;
	case DAEMONEYE__RPC_METHOD__RPC_BEGIN_MONITORING:
		break;
	case DAEMONEYE__RPC_METHOD__RPC_ADJUST_INTERVAL:
		if (p->on_adjust_interval == NULL || req->interval_ms == 0) {
			resp.status = DAEMONEYE__RPC_STATUS__RPC_UNSUPPORTED;
			break;
		}
		p->on_adjust_interval(p->ctx, req->interval_ms);
		break;
	case DAEMONEYE__RPC_METHOD__RPC_GRACEFUL_SHUTDOWN:
		shutdown = true;
		break;
	default:
		resp.status = DAEMONEYE__RPC_STATUS__RPC_UNSUPPORTED;
		resp.error_message = (char *)"procmond takes its configuration at start";
		break;
	}
	if (ipc_writer_push(&p->wr, IPC_RPC_RESPONSE, 0, &resp.base, IPC_MAX_COLLECTOR) < 0)
		log_warn("publish: RPC response dropped: output queue full");
	if (shutdown && p->on_shutdown)
		p->on_shutdown(p->ctx);
}

static int
handle_frame(struct publish *p, const struct ipc_header *h, const uint8_t *payload)
{
	ProtobufCMessage *m = NULL;
	int rc;

	if ((rc = ipc_payload_unpack(h->type, payload, h->len, &m)) < 0)
		return rc;
	switch (h->type) {
	case IPC_ACK:
		on_ack(p, ((Daemoneye__Ack *)m)->high_water_seq);
		break;
	case IPC_BACKPRESSURE:
		p->paused = ((Daemoneye__Backpressure *)m)->on;
		publish_lock(p);
		p->stats.backpressure = p->paused;
		publish_unlock(p);
		log_info("publish: agent back-pressure %s", p->paused ? "on: pausing" : "off");
		break;
	case IPC_RPC_REQUEST:
		on_rpc(p, (Daemoneye__RpcRequest *)m);
		break;
	default:
		log_debug("publish: ignoring %s frame", ipc_type_name(h->type));
		break;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static int
read_sock(struct publish *p)
{
	struct ipc_header h;
	const uint8_t *payload;
	int rc;

	for (;;) {
		rc = ipc_reader_fill(&p->rd, p->sock);
		if (rc == -EAGAIN)
			return 0;
		if (rc == 0)
			return -ECONNRESET;
		if (rc < 0)
			return rc;
		while ((rc = ipc_reader_next(&p->rd, &h, &payload)) == 1)
			if ((rc = handle_frame(p, &h, payload)) < 0)
				return rc;
		if (rc < 0)
			return rc;
	}
}

static void
send_heartbeat(struct publish *p)
{
	Daemoneye__Heartbeat hb = DAEMONEYE__HEARTBEAT__INIT;
	struct wal_stats ws;

	publish_lock(p);
	wal_get_stats(p->wal, &ws);
	hb.events_total = p->stats.appended;
	publish_unlock(p);
	hb.collector_id = p->collector_id;
	hb.timestamp_ms = time_now_ms();
	hb.last_seq = ws.last_seq;
	hb.wal_bytes = ws.bytes;
	hb.backpressure = p->paused;
	if (ipc_writer_push(&p->wr, IPC_HEARTBEAT, 0, &hb.base, IPC_MAX_COLLECTOR) < 0)
		log_debug("publish: heartbeat skipped: output queue full");
	p->next_heartbeat_ms = time_mono_ms() + (uint64_t)p->hb_interval_s * 1000;
}

static void
drain_wake(struct publish *p)
{
	uint64_t v;

	/* Read first, then clear: a wake() in between writes again, and one
	 * before the read is covered by the caller looking at the WAL after. */
	(void)!read(p->wake_fd, &v, sizeof(v));
	atomic_store(&p->wake_pending, false);
}

static bool
stopping(struct publish *p)
{
	bool s;

	publish_lock(p);
	s = p->stop;
	publish_unlock(p);
	return s;
}

/* One pass of the connected loop. Returns 0, or -errno to drop the link. */
static int
connected_step(struct publish *p)
{
	struct pollfd pfd[2] = {
		{ .fd = p->sock, .events = POLLIN },
		{ .fd = p->wake_fd, .events = POLLIN },
	};
	uint64_t now = time_mono_ms();
	int timeout, rc;

	/* Each frame goes to the socket before the next is read (can_send). */
	while ((rc = send_batch(p)) == 1)
		if ((rc = ipc_writer_flush(&p->wr, p->sock)) != 0)
			break; /* 1: the socket is full; POLLOUT below */
	if (rc < 0)
		return rc;
	if (now >= p->next_heartbeat_ms)
		send_heartbeat(p);
	if ((rc = ipc_writer_flush(&p->wr, p->sock)) < 0)
		return rc;
	if (rc == 1)
		pfd[0].events |= POLLOUT;
	timeout = (int)(p->next_heartbeat_ms > now ? p->next_heartbeat_ms - now : 0);
	if (timeout > 1000)
		timeout = 1000; /* check_parent() runs at least once a second */
	if (p->sync_wait) {
		/* Inside the group-commit window new events cannot be sent
		 * before it ends: sleep through it instead of waking per event. */
		uint64_t end = p->last_sync_ms + p->window_ms;

		if (timeout > (int)(end > now ? end - now : 0))
			timeout = (int)(end > now ? end - now : 0);
	}
	if (poll(pfd, p->sync_wait ? 1 : 2, timeout) < 0 && errno != EINTR)
		return -errno;
	if (!p->sync_wait && (pfd[1].revents & POLLIN))
		drain_wake(p);
	if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
		if ((rc = read_sock(p)) < 0)
			return rc;
	return 0;
}

/* ---- the thread ---- */

/* PR_SET_PDEATHSIG does not survive procmond's privilege drop, so a
 * procmond whose supervisor died (kill -9 of the agent) notices here and
 * stops gracefully instead of living on as an orphan holding the WAL lock. */
static void
check_parent(struct publish *p)
{
	if (p->parent_gone || p->parent <= 1 || getppid() == p->parent)
		return;
	p->parent_gone = true;
	log_warn("publish: the agent that started procmond (pid %d) is gone: stopping",
	         (int)p->parent);
	if (p->on_shutdown)
		p->on_shutdown(p->ctx);
	else
		kill(getpid(), SIGTERM);
}

/* Waits for a wake-up or timeout_ms. */
static void
idle(struct publish *p, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->wake_fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) > 0)
		drain_wake(p);
}

/* Sends what is left and waits for the agent's acknowledgement, bounded. */
static void
drain_before_exit(struct publish *p, uint64_t deadline)
{
	while (p->sock >= 0 && time_mono_ms() < deadline) {
		uint64_t last;

		publish_lock(p);
		last = wal_next_seq(p->wal) - 1;
		publish_unlock(p);
		if (p->acked_seq >= last)
			break;
		if (connected_step(p) < 0)
			break;
	}
}

static void *
publish_thread(void *arg)
{
	struct publish *p = arg;
	uint32_t backoff = BACKOFF_MIN_MS;
	unsigned failures = 0;
	int rc;

	while (!stopping(p)) {
		check_parent(p);
		if (p->sock < 0) {
			if ((rc = connect_register(p)) < 0) {
				failures++;
				if (failures == BREAKER_FAILURES) {
					log_warn("publish: agent unreachable (%s) %u times: "
					         "circuit open "
					         "for %d s; events stay in the WAL",
					         strerror(-rc), failures, BREAKER_OPEN_MS / 1000);
					idle(p, BREAKER_OPEN_MS);
					failures = 0;
					backoff = BACKOFF_MIN_MS;
				} else {
					log_debug("publish: connect failed: %s; retry in %u ms",
					          strerror(-rc), backoff);
					idle(p, (int)backoff);
					backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
					                                       : backoff * 2;
				}
				continue;
			}
			failures = 0;
			backoff = BACKOFF_MIN_MS;
		}
		if ((rc = connected_step(p)) < 0)
			disconnect(p, strerror(-rc));
	}
	return NULL;
}

static int
split_caps(struct publish *p, const char *caps)
{
	char *save = NULL, *tok;

	if ((p->caps_buf = strdup(caps ? caps : "process")) == NULL)
		return -ENOMEM;
	for (tok = strtok_r(p->caps_buf, ",", &save); tok && p->n_caps < MAX_CAPS;
	     tok = strtok_r(NULL, ",", &save))
		p->caps[p->n_caps++] = tok;
	return 0;
}

static void
publish_free(struct publish *p)
{
	if (p == NULL)
		return;
	if (p->sock >= 0)
		close(p->sock);
	ipc_reader_free(&p->rd);
	ipc_writer_free(&p->wr);
	wal_close(p->wal);
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	pthread_mutex_destroy(&p->mu);
	free(p->batch);
	free(p->caps_buf);
	free(p->collector_id);
	free(p->source_name);
	free(p->socket_path);
	free(p);
}

static void
publish_freep(struct publish **p)
{
	publish_free(*p);
}

int
publish_open(const struct publish_opts *o, struct publish **ret, struct errbuf *err)
{
	_cleanup_(publish_freep) struct publish *p = NULL;
	struct wal_stats ws;
	int rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -ENOMEM;
	p->sock = p->wake_fd = -1;
	pthread_mutex_init(&p->mu, NULL);
	p->max_inflight = o->max_buffer_bytes ? o->max_buffer_bytes : 10u * 1024 * 1024;
	p->hb_interval_s = o->heartbeat_interval_s ? o->heartbeat_interval_s : 30;
	p->sync_interval_ms = o->sync_interval_ms ? o->sync_interval_ms : PUBLISH_SYNC_MS;
	p->sync_max_ms = o->sync_max_ms ? o->sync_max_ms : PUBLISH_SYNC_MAX_MS;
	if (p->sync_max_ms < p->sync_interval_ms)
		p->sync_max_ms = p->sync_interval_ms;
	p->window_ms = p->stats.window_ms = p->sync_interval_ms;
	p->on_adjust_interval = o->on_adjust_interval;
	p->on_shutdown = o->on_shutdown;
	p->ctx = o->ctx;
	p->parent = getppid();
	if ((p->socket_path = strdup(o->socket_path)) == NULL ||
	    (p->collector_id = strdup(o->collector_id ? o->collector_id : "procmond")) == NULL ||
	    (o->source_name != NULL && (p->source_name = strdup(o->source_name)) == NULL) ||
	    (p->batch = malloc(BATCH_MAX_BYTES + WAL_RECORD_MAX + 16)) == NULL ||
	    split_caps(p, o->capabilities) < 0)
		return -ENOMEM;
	if ((p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -errno;
	if ((rc = wal_open(o->wal_dir, o->wal_rotate_bytes, &p->wal)) < 0) {
		errbuf_set(err, "%s: %s", o->wal_dir,
		           rc == -EBUSY ? "WAL directory in use by another procmond"
		                        : strerror(-rc));
		return rc;
	}
	wal_get_stats(p->wal, &ws);
	if (ws.corrupt_bytes > 0)
		log_warn(
		    "publish: WAL %s: %llu corrupt bytes in %u file(s) skipped; records before "
		    "them kept",
		    o->wal_dir, (unsigned long long)ws.corrupt_bytes, ws.corrupt_files);
	log_info("publish: WAL %s holds seq %llu..%llu (%u files)", o->wal_dir,
	         (unsigned long long)ws.first_seq, (unsigned long long)ws.last_seq, ws.files);
	p->stats.last_seq = ws.last_seq;
	if ((rc = -pthread_create(&p->thread, NULL, publish_thread, p)) < 0) {
		errbuf_set(err, "publisher thread: %s", strerror(-rc));
		return rc;
	}
	p->thread_started = true;
	*ret = TAKE_PTR(p);
	return 0;
}

void
publish_close(struct publish *p, uint32_t timeout_ms)
{
	if (p == NULL)
		return;
	if (p->thread_started) {
		publish_lock(p);
		p->stop = true;
		publish_unlock(p);
		wake(p);
		pthread_join(p->thread, NULL);
		drain_before_exit(p, time_mono_ms() + timeout_ms);
	}
	publish_lock(p);
	(void)wal_sync(p->wal);
	publish_unlock(p);
	publish_free(p);
}
