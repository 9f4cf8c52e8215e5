/* The agent's embedded broker: see broker.h. */
#include "broker.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "control.h"
#include "log.h"
#include "timeutil.h"
#include "util.h"

enum conn_kind {
	CONN_NEW = 0,
	CONN_COLLECTOR,
	CONN_CLI,
};

struct qitem {
	Daemoneye__ProcessEventBatch *batch; /* allocated from arena */
	struct ipc_arena arena;
	size_t bytes;
};

struct conn {
	struct ev_watch w;
	struct broker *b;
	struct conn *next;
	enum conn_kind kind;
	pid_t pid;
	uid_t uid;
	uint64_t accepted_ms;
	struct ipc_reader rd;
	struct ipc_writer wr;
	struct collector *col;
	struct qitem *q;
	size_t q_head, q_len, q_cap, q_bytes;
	bool bp_on;
	bool reading;
	bool want_out;
	bool dead;
	char dead_why[160];
};

struct broker {
	int epfd;
	struct ev_watch lw;
	char *path;
	struct registry *reg;
	struct control *control;
	struct broker_ops ops;
	struct conn *conns;
	size_t n_conns;
	Daemoneye__ProcessEvent **merge; /* scratch: the events of merged batches */
	size_t merge_cap;
	uint64_t ingests, merged_frames;
	bool accepting;
	uid_t my_uid;
	gid_t my_gid;
	uint64_t accepted, refused, bad_frames, slow_readers;
};

static const char *
conn_kind_name(enum conn_kind k)
{
	return k == CONN_COLLECTOR ? "collector" : k == CONN_CLI ? "cli" : "new";
}

/* Marks a connection for closing with one log line; the reap pass frees it. */
static void conn_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conn_fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = true;
	va_start(ap, fmt);
	(void)vsnprintf(c->dead_why, sizeof(c->dead_why), fmt, ap);
	va_end(ap);
}

static void
conn_update_events(struct conn *c)
{
	struct epoll_event ev = { .data.ptr = &c->w };

	if (c->reading)
		ev.events |= EPOLLIN;
	if (c->want_out)
		ev.events |= EPOLLOUT;
	(void)epoll_ctl(c->b->epfd, EPOLL_CTL_MOD, c->w.fd, &ev);
}

static void
conn_flush(struct conn *c)
{
	int rc = ipc_writer_flush(&c->wr, c->w.fd);
	bool want = rc == 1;

	if (rc == -EPIPE || rc == -ECONNRESET) {
		c->dead = true; /* the peer went away: its reader side logs nothing */
		return;
	}
	if (rc < 0) {
		conn_fail(c, "write failed: %s", strerror(-rc));
		return;
	}
	if (want != c->want_out) {
		c->want_out = want;
		conn_update_events(c);
	}
}

static void
conn_push(struct conn *c, uint16_t type, const ProtobufCMessage *m)
{
	int rc = ipc_writer_push(&c->wr, type, 0, m, IPC_MAX_CONTROL_RESPONSE);

	if (rc == -ENOBUFS) {
		c->b->slow_readers++;
		conn_fail(c, "peer does not read (%s output queue full)", ipc_type_name(type));
		return;
	}
	if (rc < 0) {
		conn_fail(c, "cannot queue a frame: %s", strerror(-rc));
		return;
	}
	conn_flush(c);
}

static void
queue_free(struct conn *c)
{
	for (size_t i = 0; i < c->q_len; i++)
		ipc_arena_free(&c->q[(c->q_head + i) % c->q_cap].arena);
	free(c->q);
	c->q = NULL;
	c->q_len = c->q_head = c->q_cap = c->q_bytes = 0;
}

static void
conn_free(struct broker *b, struct conn *c)
{
	(void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->w.fd, NULL);
	close(c->w.fd);
	if (c->col) {
		if (b->ops.collector_down)
			b->ops.collector_down(b->ops.ctx, c->col,
			                      c->dead_why[0] ? c->dead_why : "closed");
		registry_disconnect(b->reg, c->col);
	}
	queue_free(c);
	ipc_reader_free(&c->rd);
	ipc_writer_free(&c->wr);
	free(c);
	b->n_conns--;
}

/* Frees dead connections; logs why, once each. */
static void
reap(struct broker *b)
{
	struct conn **pp = &b->conns;

	while (*pp) {
		struct conn *c = *pp;

		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (c->dead_why[0])
			log_warn("broker: closing %s connection (pid %d, uid %u%s%s): %s",
			         conn_kind_name(c->kind), (int)c->pid, (unsigned)c->uid,
			         c->col ? ", collector " : "", c->col ? c->col->id : "",
			         c->dead_why);
		conn_free(b, c);
	}
}

/* ---- back-pressure ---- */

static void
set_backpressure(struct conn *c, bool on)
{
	Daemoneye__Backpressure m = DAEMONEYE__BACKPRESSURE__INIT;

	if (c->bp_on == on)
		return;
	c->bp_on = on;
	if (c->col) {
		c->col->backpressure = on;
		if (on)
			c->col->backpressure_events++;
	}
	m.on = on;
	m.queued_bytes = c->q_bytes;
	log_info("broker: back-pressure %s for %s (%zu bytes queued)", on ? "on" : "off",
	         c->col ? c->col->id : "?", c->q_bytes);
	conn_push(c, IPC_BACKPRESSURE, &m.base);
}

static void
check_backpressure(struct conn *c)
{
	bool reading;

	if (c->q_bytes >= (size_t)BROKER_QUEUE_MAX * BROKER_BP_ON_PCT / 100)
		set_backpressure(c, true);
	else if (c->q_bytes < (size_t)BROKER_QUEUE_MAX * BROKER_BP_OFF_PCT / 100)
		set_backpressure(c, false);
	/* A full queue stops reading: the socket buffer then slows the peer. */
	reading = c->q_bytes < BROKER_QUEUE_MAX;
	if (reading != c->reading) {
		c->reading = reading;
		conn_update_events(c);
	}
}

/* Queues a batch; on success the queue owns arena (which holds batch). */
static int
queue_push(struct conn *c, Daemoneye__ProcessEventBatch *batch, const struct ipc_arena *arena,
           size_t bytes)
{
	if (c->q_len == c->q_cap) {
		size_t ncap = c->q_cap ? c->q_cap * 2 : 16;
		struct qitem *nq = calloc(ncap, sizeof(*nq));

		if (nq == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < c->q_len; i++)
			nq[i] = c->q[(c->q_head + i) % c->q_cap];
		free(c->q);
		c->q = nq;
		c->q_cap = ncap;
		c->q_head = 0;
	}
	c->q[(c->q_head + c->q_len) % c->q_cap] =
	    (struct qitem){ .batch = batch, .arena = *arena, .bytes = bytes };
	c->q_len++;
	c->q_bytes += bytes;
	check_backpressure(c);
	return 0;
}

/* ---- frames ---- */

static void
on_register(struct conn *c, const Daemoneye__Register *m)
{
	struct broker *b = c->b;
	Daemoneye__RegisterAck ack = DAEMONEYE__REGISTER_ACK__INIT;
	char topic[96];
	char *topics[2] = { (char *)"events.process.*", topic };
	struct collector *col = NULL;
	const char *why = NULL;
	uint64_t hw = 0;
	int rc;

	rc = registry_register(b->reg, m, c, c->uid, c->pid, time_mono_ms(), &col, &why);
	if (rc == 0 && b->ops.high_water &&
	    (rc = b->ops.high_water(b->ops.ctx, m->collector_id, &hw)) < 0) {
		registry_disconnect(b->reg, col);
		why = "cannot read the store's high-water sequence";
	}
	ack.accepted = rc == 0;
	ack.protocol_version = IPC_PROTOCOL_VERSION;
	ack.heartbeat_interval_s = m->heartbeat_interval_s ? m->heartbeat_interval_s : 30;
	if (rc < 0) {
		ack.reason = (char *)why;
		conn_push(c, IPC_REGISTER_ACK, &ack.base);
		(void)ipc_writer_flush(&c->wr, c->w.fd);
		conn_fail(c, "registration refused: %s", why);
		return;
	}
	(void)snprintf(topic, sizeof(topic), "control.collector.%s", col->id);
	ack.topics = topics;
	ack.n_topics = 2;
	ack.high_water_seq = hw;
	ack.protocol_version = col->protocol_version;
	col->high_water = hw;
	c->kind = CONN_COLLECTOR;
	c->col = col;
	ipc_reader_set_max(&c->rd, IPC_MAX_COLLECTOR);
	c->wr.max = BROKER_COLLECTOR_OUT_MAX;
	conn_push(c, IPC_REGISTER_ACK, &ack.base);
	log_info("broker: collector %s registered (pid %d, protocol %u, high-water %llu)", col->id,
	         (int)c->pid, col->protocol_version, (unsigned long long)hw);
	if (b->ops.collector_up)
		b->ops.collector_up(b->ops.ctx, col);
}

static void
on_cli(struct conn *c, const uint8_t *payload, size_t len)
{
	_cleanup_free_ uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	c->kind = CONN_CLI;
	c->wr.max = BROKER_CLI_OUT_MAX;
	if (c->b->control == NULL) {
		Daemoneye__ControlResponse r = DAEMONEYE__CONTROL_RESPONSE__INIT;

		r.status = CONTROL_STATUS_FAILED;
		r.body_json = (char *)"{\"error\":\"the agent is starting\"}";
		conn_push(c, IPC_CONTROL_RESPONSE, &r.base);
		return;
	}
	if ((rc = control_respond(c->b->control, payload, len, &frame, &n)) < 0) {
		c->b->bad_frames++;
		conn_fail(c, "bad control request: %s", strerror(-rc));
		return;
	}
	if ((rc = ipc_writer_push_raw(&c->wr, frame, n)) == -ENOBUFS) {
		c->b->slow_readers++;
		conn_fail(c, "peer does not read (control-response output queue full)");
		return;
	}
	if (rc < 0) {
		conn_fail(c, "cannot queue the answer: %s", strerror(-rc));
		return;
	}
	conn_flush(c);
}

/* The message types each kind of peer may send. */
static bool
type_allowed(enum conn_kind k, uint16_t type)
{
	switch (k) {
	case CONN_NEW:
		return type == IPC_REGISTER || type == IPC_CONTROL_REQUEST;
	case CONN_COLLECTOR:
		return type == IPC_EVENTS || type == IPC_HEARTBEAT || type == IPC_RPC_RESPONSE ||
		       type == IPC_DETECTION_RESULT;
	case CONN_CLI:
		return type == IPC_CONTROL_REQUEST;
	}
	return false;
}

/* An event batch is unpacked into an arena of its own: its thousands of
 * small allocations (each event, record and string) cost a few blocks, and
 * the batch is released at once after ingest. */
static void
on_events_frame(struct conn *c, const uint8_t *payload, size_t len)
{
	struct ipc_arena arena;
	ProtobufCMessage *m = NULL;

	/* Unpacked, a batch takes about twice its encoded size. */
	ipc_arena_init(&arena, len < SIZE_MAX / 4 ? 2 * len + 4096 : 0);
	if (ipc_payload_unpack_arena(IPC_EVENTS, payload, len, &arena, &m) < 0) {
		ipc_arena_free(&arena);
		c->b->bad_frames++;
		conn_fail(c, "malformed %s payload", ipc_type_name(IPC_EVENTS));
		return;
	}
	if (queue_push(c, (Daemoneye__ProcessEventBatch *)m, &arena, len) < 0) {
		ipc_arena_free(&arena);
		conn_fail(c, "%s", "out of memory queueing a batch");
	}
}

static void
on_collector_frame(struct conn *c, uint16_t type, ProtobufCMessage *m)
{
	switch (type) {
	case IPC_HEARTBEAT:
		registry_heartbeat(c->col, (Daemoneye__Heartbeat *)m, time_mono_ms());
		break;
	case IPC_RPC_RESPONSE:
		if (registry_rpc_end(c->col, (Daemoneye__RpcResponse *)m) < 0)
			log_debug("broker: %s: RPC response with unknown correlation id",
			          c->col->id);
		break;
	default:
		break;
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

static void
on_frame(struct conn *c, const struct ipc_header *h, const uint8_t *payload)
{
	ProtobufCMessage *m = NULL;

	if (!type_allowed(c->kind, h->type)) {
		c->b->bad_frames++;
		conn_fail(c, "unexpected %s frame", ipc_type_name(h->type));
		return;
	}
	if (h->type == IPC_CONTROL_REQUEST) {
		on_cli(c, payload, h->len);
		return;
	}
	if (h->type == IPC_EVENTS) {
		on_events_frame(c, payload, h->len);
		return;
	}
	if (ipc_payload_unpack(h->type, payload, h->len, &m) < 0) {
		c->b->bad_frames++;
		conn_fail(c, "malformed %s payload", ipc_type_name(h->type));
		return;
	}
	if (h->type == IPC_REGISTER) {
		on_register(c, (Daemoneye__Register *)m);
		protobuf_c_message_free_unpacked(m, NULL);
		return;
	}
	on_collector_frame(c, h->type, m);
}

static void
conn_read(struct conn *c)
{
	struct ipc_header h;
	const uint8_t *payload;
	int rc;

	/* Bounded work per wake-up: other connections get their turn. */
	for (int rounds = 0; rounds < 16 && c->reading && !c->dead; rounds++) {
		rc = ipc_reader_fill(&c->rd, c->w.fd);
		if (rc == -EAGAIN)
			return;
		if (rc == 0) {
			if (ipc_reader_pending(&c->rd) > 0) {
				c->b->bad_frames++;
				conn_fail(c, "%s", "truncated frame at end of stream");
			} else {
				c->dead = true; /* an orderly close: nothing to log */
			}
			return;
		}
		if (rc == -ECONNRESET) {
			c->dead = true; /* the peer went away (it may have crashed) */
			return;
		}
		if (rc < 0)
			goto bad;
		while (!c->dead && (rc = ipc_reader_next(&c->rd, &h, &payload)) == 1)
			on_frame(c, &h, payload);
		if (rc < 0)
			goto bad;
	}
	return;
bad:
	if (rc == -EMSGSIZE || rc == -EBADMSG)
		c->b->bad_frames++;
	conn_fail(c, "bad frame: %s",
	          rc == -EMSGSIZE  ? "length above the channel maximum"
	          : rc == -EBADMSG ? "bad CRC, type or flags"
	                           : strerror(-rc));
}

static void
conn_event(void *ctx, uint32_t events)
{
	struct conn *c = ctx;

	if (events & EPOLLOUT)
		conn_flush(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
	if (!c->reading && (events & (EPOLLHUP | EPOLLERR)))
		c->dead = true;
	/* Dead connections are freed by broker_process(), after the whole
	 * epoll batch: another event of this batch may still point here. */
}

/* ---- accepting ---- */

/* Root, our uid, our gid as primary or supplementary group. */
static bool
peer_allowed(const struct broker *b, uid_t uid, gid_t gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[64];
	int ng = (int)ARRAY_SIZE(groups);

	if (uid == 0 || uid == b->my_uid || gid == b->my_gid)
		return true;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return false;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ng) < 0)
		return false;
	for (int i = 0; i < ng; i++)
		if (groups[i] == b->my_gid)
			return true;
	return false;
}

static void
accept_one(struct broker *b, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;
	struct epoll_event ev;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("broker: refused a connection: no peer credentials: %s", strerror(errno));
		close(fd);
		b->refused++;
		return;
	}
	if (!peer_allowed(b, cred.uid, cred.gid)) {
		log_warn("broker: refused a connection from pid %d uid %u gid %u: not root, the "
		         "agent's user or its group",
		         (int)cred.pid, (unsigned)cred.uid, (unsigned)cred.gid);
		close(fd);
		b->refused++;
		return;
	}
	if (b->n_conns >= BROKER_MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("broker: refused a connection from pid %d: too many connections",
		         (int)cred.pid);
		close(fd);
		b->refused++;
		return;
	}
	c->w = (struct ev_watch){ .fd = fd, .fn = conn_event, .ctx = c };
	c->b = b;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->accepted_ms = time_mono_ms();
	c->reading = true;
	ipc_reader_init(&c->rd, IPC_MAX_FIRST);
	ipc_writer_init(&c->wr, BROKER_COLLECTOR_OUT_MAX);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &c->w };
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = b->conns;
	b->conns = c;
	b->n_conns++;
	b->accepted++;
}

static void
listen_event(void *ctx, uint32_t events)
{
	struct broker *b = ctx;

	(void)events;
	for (int i = 0; i < 32; i++) {
		int fd = accept4(b->lw.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("broker: accept: %s", strerror(errno));
			return;
		}
		accept_one(b, fd);
	}
}

static int
bind_socket(const char *path, int *ret, struct errbuf *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errbuf_set(err, "%s: socket path too long", path);
		return -ENAMETOOLONG;
	}
	de_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	/* A stale socket from a crashed run is replaced; anything else is not. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			errbuf_set(err, "%s exists and is not a socket", path);
			return -EEXIST;
		}
		(void)unlink(path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    listen(fd, 64) < 0) {
		int rc = -errno;

		errbuf_set(err, "%s: %s", path, strerror(errno));
		return rc;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

int
broker_new(int epfd, const char *path, struct registry *reg, struct control *control,
           const struct broker_ops *ops, struct broker **ret, struct errbuf *err)
{
	struct broker *b;
	struct epoll_event ev;
	int fd = -1, rc;

	if ((rc = bind_socket(path, &fd, err)) < 0)
		return rc;
	if ((b = calloc(1, sizeof(*b))) == NULL || (b->path = strdup(path)) == NULL) {
		free(b);
		close(fd);
		return -ENOMEM;
	}
	b->epfd = epfd;
	b->lw = (struct ev_watch){ .fd = fd, .fn = listen_event, .ctx = b };
	b->reg = reg;
	b->control = control;
	b->ops = *ops;
	b->accepting = true;
	b->my_uid = geteuid();
	b->my_gid = getegid();
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &b->lw };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		rc = -errno;
		errbuf_set(err, "epoll: %s", strerror(errno));
		broker_free(b);
		return rc;
	}
	*ret = b;
	return 0;
}

void
broker_stop_accepting(struct broker *b)
{
	if (b == NULL || !b->accepting)
		return;
	b->accepting = false;
	(void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, b->lw.fd, NULL);
}

void
broker_free(struct broker *b)
{
	if (b == NULL)
		return;
	while (b->conns) {
		struct conn *c = b->conns;

		b->conns = c->next;
		conn_free(b, c);
	}
	broker_stop_accepting(b);
	if (b->lw.fd >= 0)
		close(b->lw.fd);
	free(b->merge);
	if (b->path)
		(void)unlink(b->path);
	free(b->path);
	free(b);
}

/* ---- ingest ---- */

/* How many queued batches of c the next ingest takes, and their events:
 * consecutive batches up to BROKER_MERGE_MAX_EVENTS (at least one). */
static size_t
merge_count(const struct conn *c, size_t *ret_events)
{
	size_t k = 0, events = 0;

	while (k < c->q_len) {
		size_t n = c->q[(c->q_head + k) % c->q_cap].batch->n_events;

		if (k > 0 && events + n > BROKER_MERGE_MAX_EVENTS)
			break;
		events += n;
		k++;
	}
	*ret_events = events;
	return k;
}

/* Ingests the batches at the head of c's queue in one call (one store
 * transaction) and acknowledges them with one Ack. */
static void
ingest_one(struct broker *b, struct conn *c)
{
	Daemoneye__ProcessEventBatch merged = DAEMONEYE__PROCESS_EVENT_BATCH__INIT;
	const Daemoneye__ProcessEventBatch *batch = c->q[c->q_head].batch;
	Daemoneye__Ack ack = DAEMONEYE__ACK__INIT;
	size_t events, k = merge_count(c, &events);
	uint64_t hw = 0;
	int rc;

	if (k > 1 && events > b->merge_cap) {
		Daemoneye__ProcessEvent **nm = reallocarray(b->merge, events, sizeof(*nm));

		if (nm != NULL) {
			b->merge = nm;
			b->merge_cap = events;
		} else {
			k = 1; /* no room to merge: one batch at a time */
		}
	}
	if (k > 1) {
		merged.events = b->merge;
		for (size_t i = 0; i < k; i++) {
			const Daemoneye__ProcessEventBatch *q =
			    c->q[(c->q_head + i) % c->q_cap].batch;

			memcpy(merged.events + merged.n_events, q->events,
			       q->n_events * sizeof(*q->events));
			merged.n_events += q->n_events;
		}
		batch = &merged;
		b->merged_frames += k - 1;
	}
	rc = b->ops.ingest(b->ops.ctx, c->col, batch, &hw);
	if (rc < 0) {
		/* Not acknowledged: the collector resends after a reconnect. */
		conn_fail(c, "ingest failed: %s", strerror(-rc));
		return;
	}
	b->ingests++;
	for (size_t i = 0; i < k; i++) {
		struct qitem *it = &c->q[c->q_head];

		c->q_bytes -= it->bytes;
		ipc_arena_free(&it->arena);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
	}
	ack.high_water_seq = hw;
	conn_push(c, IPC_ACK, &ack.base);
	check_backpressure(c);
}

size_t
broker_process(struct broker *b, size_t max_batches, bool *ret_more)
{
	size_t done = 0;
	bool more = true;

	while (done < max_batches && more) {
		more = false;
		for (struct conn *c = b->conns; c && done < max_batches; c = c->next) {
			if (c->dead || c->q_len == 0 || c->col == NULL)
				continue;
			ingest_one(b, c);
			done++;
			if (c->q_len > 0)
				more = true;
		}
	}
	reap(b);
	*ret_more = more;
	return done;
}

int
broker_rpc(struct broker *b, struct collector *col, int method, uint32_t interval_ms)
{
	Daemoneye__RpcRequest req;
	struct conn *c = col->conn;
	int rc;

	if (c == NULL || c->dead)
		return -ENOTCONN;
	if ((rc = registry_rpc_begin(b->reg, col, method, time_mono_ms(), &req)) < 0)
		return rc;
	req.interval_ms = interval_ms;
	conn_push(c, IPC_RPC_REQUEST, &req.base);
	return c->dead ? -ENOBUFS : 0;
}

void
broker_tick(struct broker *b, uint64_t now_ms)
{
	for (struct conn *c = b->conns; c; c = c->next)
		if (c->kind == CONN_NEW && now_ms - c->accepted_ms > BROKER_FIRST_FRAME_MS)
			conn_fail(c, "%s", "no first frame within 10 s");
	reap(b);
}

size_t
broker_queued_bytes(const struct broker *b)
{
	size_t n = 0;

	for (const struct conn *c = b->conns; c; c = c->next)
		n += c->q_bytes;
	return n;
}

json_t *
broker_json(const struct broker *b)
{
	json_t *o = json_object();
	size_t cols = 0, cli = 0, bp = 0;

	if (o == NULL)
		return NULL;
	for (const struct conn *c = b->conns; c; c = c->next) {
		cols += c->kind == CONN_COLLECTOR;
		cli += c->kind == CONN_CLI;
		bp += c->bp_on;
	}
	json_object_set_new(o, "socket", json_string(b->path));
	json_object_set_new(o, "connections", json_integer((json_int_t)b->n_conns));
	json_object_set_new(o, "collectors", json_integer((json_int_t)cols));
	json_object_set_new(o, "cli", json_integer((json_int_t)cli));
	json_object_set_new(o, "accepted", json_integer((json_int_t)b->accepted));
	json_object_set_new(o, "refused", json_integer((json_int_t)b->refused));
	json_object_set_new(o, "bad_frames", json_integer((json_int_t)b->bad_frames));
	json_object_set_new(o, "slow_readers", json_integer((json_int_t)b->slow_readers));
	json_object_set_new(o, "queued_bytes", json_integer((json_int_t)broker_queued_bytes(b)));
	json_object_set_new(o, "queue_max_bytes", json_integer(BROKER_QUEUE_MAX));
	json_object_set_new(o, "backpressure_on", json_integer((json_int_t)bp));
	json_object_set_new(o, "ingests", json_integer((json_int_t)b->ingests));
	json_object_set_new(o, "merged_frames", json_integer((json_int_t)b->merged_frames));
	return o;
}
