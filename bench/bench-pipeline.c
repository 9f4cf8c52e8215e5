/* bench-pipeline: the pipeline's C-side figures, each beside its floor.
 *
 *   bench-pipeline wal N DIR
 *	appends N real-sized ProcessEvent records to a fresh WAL in DIR with the
 *	publisher's group commit (one fdatasync per 5 ms window), then reopens
 *	and replays them; prints records/s and MB/s beside the floor (the same
 *	bytes with plain write(2) and the same fdatasync cadence into one file,
 *	and a plain sequential read of it).
 *
 *   bench-pipeline spawn RATE SECONDS MARKER CHILD
 *	starts CHILD MARKER-<i> at RATE per second (0: as fast as one process
 *	can fork+exec) for SECONDS, reaping as it goes, and prints one line per
 *	child on stdout: "<MARKER-i> <epoch ms at fork>". bench-pipeline.py turns
 *	those into exec -> row committed latencies.
 *
 *   bench-pipeline feed SOCKET EXECS PER_FRAME RATE
 *	acts as a collector ("feeder") on the agent's SOCKET: registers, then
 *	sends the events of EXECS short-lived processes (each a start and, a few
 *	events later, its stop, shaped like procmond's eBPF events of an exec
 *	burst) in ProcessEventBatch frames of PER_FRAME events, RATE events per
 *	second (0: as fast as the acks come back), reading the acks as they come;
 *	then waits for the ack of the last event. A fixed, repeatable load for
 *	measuring the engine alone (bench-engine.py). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "procmond/wal.h"
#include "timeutil.h"
#include "util.h"

#define SYNC_WINDOW_NS (5ull * 1000 * 1000)

static double
now_s(void)
{
	return (double)time_mono_ns() / 1e9;
}

static int
sample_event(uint8_t **buf, size_t *len)
{
	struct process_event e;
	int rc;

	process_event_init(&e);
	e.type = PROC_EV_START;
	e.time = time_now_ms();
	e.source = (char *)"ebpf";
	e.proc.pid = 123456;
	e.proc.ppid = 1234;
	e.proc.name = (char *)"burst-child";
	e.proc.executable_path = (char *)"/usr/local/lib/daemoneye/bench/burst-child";
	e.proc.command_line = (char *)"/usr/local/lib/daemoneye/bench/burst-child marker-123456 0";
	e.proc.start_time = e.time;
	e.proc.start_ticks = 987654;
	e.proc.user_id = e.proc.effective_user_id = e.proc.group_id = 0;
	e.proc.user_name = (char *)"root";
	e.proc.cwd = (char *)"/work/main";
	e.proc.state = (char *)"R";
	e.proc.threads = 1;
	e.proc.executable_hash =
	    (char *)"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	e.proc.parent_name = (char *)"burst";
	e.proc.parent_executable_path = (char *)"/usr/local/lib/daemoneye/bench/burst";
	e.proc.cgroup = (char *)"/user.slice/user-0.slice/session-1.scope";
	rc = ipc_event_pack(&e, buf, len);
	return rc;
}

struct replay_ctx {
	uint64_t n, bytes;
};

static int
count_cb(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct replay_ctx *r = ctx;

	(void)seq;
	(void)payload;
	r->n++;
	r->bytes += len;
	return 0;
}

static int
bench_wal(uint64_t n, const char *dir)
{
	uint8_t *payload = NULL, *rec = NULL, hdr[WAL_RECORD_HEADER];
	size_t len = 0;
	struct wal *w = NULL;
	struct replay_ctx rc = { 0 };
	char walpath[4096], floorpath[4096];
	uint64_t last_sync = time_mono_ns(), syncs = 0, from = 1;
	double t0, t_append, t_open, t_replay, t_floor_w, t_floor_r;
	int fd, r;

	if (sample_event(&payload, &len) < 0)
		return 1;
	snprintf(walpath, sizeof(walpath), "%s/wal", dir);
	snprintf(floorpath, sizeof(floorpath), "%s/floor.bin", dir);
	if ((r = wal_open(walpath, 0, &w)) < 0) {
		fprintf(stderr, "wal_open %s: %s\n", walpath, strerror(-r));
		return 1;
	}
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		if ((r = wal_append(w, wal_next_seq(w), payload, len)) < 0) {
			fprintf(stderr, "wal_append: %s\n", strerror(-r));
			return 1;
		}
		if (time_mono_ns() - last_sync >= SYNC_WINDOW_NS) {
			wal_sync(w);
			syncs++;
			last_sync = time_mono_ns();
		}
	}
	wal_sync(w);
	t_append = now_s() - t0;
	wal_close(w);

	/* The floor: the same bytes, write(2) per record, same sync cadence. */
	if ((fd = open(floorpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return 1;
	wal_record_header(1, payload, len, hdr);
	if ((rec = malloc(sizeof(hdr) + len)) == NULL)
		return 1;
	memcpy(rec, hdr, sizeof(hdr));
	memcpy(rec + sizeof(hdr), payload, len);
	last_sync = time_mono_ns();
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		if (write(fd, rec, sizeof(hdr) + len) < 0)
			return 1;
		if (time_mono_ns() - last_sync >= SYNC_WINDOW_NS) {
			fdatasync(fd);
			last_sync = time_mono_ns();
		}
	}
	fdatasync(fd);
	t_floor_w = now_s() - t0;
	close(fd);

	/* Replay: open (scans and checks every record) + read them all in order. */
	t0 = now_s();
	if ((r = wal_open(walpath, 0, &w)) < 0)
		return 1;
	t_open = now_s() - t0;
	while ((r = wal_read(w, from, 4096, 16u << 20, count_cb, &rc)) > 0)
		from = rc.n + 1;
	t_replay = now_s() - t0;
	wal_close(w);
	{
		char buf[1 << 16];
		ssize_t k;

		t0 = now_s();
		if ((fd = open(floorpath, O_RDONLY | O_CLOEXEC)) < 0)
			return 1;
		while ((k = read(fd, buf, sizeof(buf))) > 0)
			;
		close(fd);
		t_floor_r = now_s() - t0;
	}
	printf("wal: %llu records of %zu bytes (+%d header), %llu fdatasyncs (5 ms group commit)\n",
	       (unsigned long long)n, len, WAL_RECORD_HEADER, (unsigned long long)syncs);
	printf("wal append:   %10.0f rec/s %7.1f MB/s   floor write+fdatasync: %10.0f rec/s\n",
	       (double)n / t_append, (double)n * (double)(len + 16) / t_append / 1e6,
	       (double)n / t_floor_w);
	printf("wal replay:   %8.3f s (open+scan %.3f s, read %llu records)   floor read: %.3f s "
	       "(page cache warm for both)\n",
	       t_replay, t_open, (unsigned long long)rc.n, t_floor_r);
	free(payload);
	free(rec);
	return rc.n == n ? 0 : 1;
}

static int
bench_spawn(double rate, double seconds, const char *marker, const char *child)
{
	uint64_t i = 0, alive = 0;
	double t0 = now_s(), next = t0;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while (now_s() - t0 < seconds) {
		char m[128];
		pid_t pid;
		int st;

		while (waitpid(-1, &st, WNOHANG) > 0)
			alive--;
		if (rate > 0) {
			double now = now_s();

			if (now < next) {
				struct timespec ts = { 0, (long)((next - now) * 1e9) };

				nanosleep(&ts, NULL);
			}
			next += 1.0 / rate;
		}
		snprintf(m, sizeof(m), "%s-%llu", marker, (unsigned long long)i);
		printf("%s %llu\n", m, (unsigned long long)time_now_ms());
		pid = fork();
		if (pid == 0) {
			execl(child, child, m, (char *)NULL);
			_exit(127);
		}
		if (pid > 0) {
			alive++;
			i++;
		}
		while (alive > 64 && waitpid(-1, &st, 0) > 0)
			alive--;
	}
	while (waitpid(-1, NULL, 0) > 0)
		;
	fflush(stdout);
	fprintf(stderr, "spawned %llu in %.2f s: %.0f/s\n", (unsigned long long)i, now_s() - t0,
	        (double)i / (now_s() - t0));
	return 0;
}

#define FEED_ID "feeder"

/* Event k of the feed: start of exec k/2 for even k, else the stop of the
 * exec started three events earlier (k - 3 is even for odd k), so a frame
 * carries starts and stops like procmond's. */
static void
feed_event(uint64_t k, uint64_t base_ms, uint64_t pid0, struct process_event *e, char *cmd,
           size_t cmdlen)
{
	bool stop = k % 2 == 1 && k >= 3;
	uint64_t x = stop ? (k - 3) / 2 : k / 2;

	process_event_init(e);
	e->type = stop ? PROC_EV_STOP : PROC_EV_START;
	e->time = base_ms + k / 2;
	e->seq = k + 1;
	e->source = (char *)"ebpf";
	e->proc.pid = (int32_t)(pid0 + x % 4000000);
	e->proc.ppid = (int32_t)pid0 - 1;
	e->proc.start_time = base_ms + x;
	e->proc.start_ticks = 100000 + x / 10;
	e->proc.name = (char *)"burst-child";
	e->proc.executable_path = (char *)"/usr/local/lib/daemoneye/bench/burst-child";
	(void)snprintf(cmd, cmdlen, "/usr/local/lib/daemoneye/bench/burst-child feed-%llu 0",
	               (unsigned long long)x);
	e->proc.command_line = cmd;
	e->proc.user_id = e->proc.effective_user_id = e->proc.group_id = 0;
	e->proc.user_name = (char *)"root";
	e->proc.cwd = (char *)"/work/main";
	e->proc.parent_name = (char *)"burst";
	e->proc.parent_executable_path = (char *)"/usr/local/lib/daemoneye/bench/burst";
	e->proc.parent_command_line =
	    (char *)"/usr/local/lib/daemoneye/bench/burst 8000 feed /usr/local/lib/daemoneye/bench/"
	            "burst-child 4 0 1000";
	e->proc.missing = 240;
	if (stop) {
		e->exit_code = 0;
		e->runtime_ms = 2;
	}
}

/* Reads the frames waiting on fd (acks, RPCs); returns the highest acked
 * sequence seen so far, or -errno. */
static int
feed_drain(int fd, int timeout_ms, uint64_t *acked)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ProtobufCMessage *m = NULL;
	uint16_t type;
	int rc;

	while (poll(&pfd, 1, timeout_ms) == 1) {
		if ((rc = ipc_recv(fd, IPC_MAX_COLLECTOR, 5000, &type, NULL, &m)) < 0)
			return rc;
		if (type == IPC_ACK && ((Daemoneye__Ack *)m)->high_water_seq > *acked)
			*acked = ((Daemoneye__Ack *)m)->high_water_seq;
		protobuf_c_message_free_unpacked(m, NULL);
		timeout_ms = 0;
	}
	return 0;
}

static int
feed_register(int fd, uint64_t *ret_hw)
{
	Daemoneye__Register r = DAEMONEYE__REGISTER__INIT;
	ProtobufCMessage *m = NULL;
	uint16_t type;
	int rc;

	r.collector_id = (char *)FEED_ID;
	r.protocol_version = IPC_PROTOCOL_VERSION;
	r.pid = (uint32_t)getpid();
	r.heartbeat_interval_s = 30;
	if ((rc = ipc_send(fd, IPC_REGISTER, &r.base)) < 0 ||
	    (rc = ipc_recv(fd, IPC_MAX_COLLECTOR, 10000, &type, NULL, &m)) < 0)
		return rc;
	rc = type == IPC_REGISTER_ACK && ((Daemoneye__RegisterAck *)m)->accepted ? 0 : -EPROTO;
	if (rc == 0)
		*ret_hw = ((Daemoneye__RegisterAck *)m)->high_water_seq;
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* Sends events first..first+n-1 as one ProcessEventBatch frame. */
static int
feed_frame(int fd, uint64_t first, size_t n, uint64_t base_ms, uint64_t pid0)
{
	enum { MAX = 4096 };
	static struct process_event evs[MAX];
	static Daemoneye__ProcessEvent pbs[MAX], *ptrs[MAX];
	static Daemoneye__ProcessRecord recs[MAX];
	static char cmds[MAX][96];
	Daemoneye__ProcessEventBatch b = DAEMONEYE__PROCESS_EVENT_BATCH__INIT;

	if (n > MAX)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		feed_event(first + i, base_ms, pid0, &evs[i], cmds[i], sizeof(cmds[i]));
		ipc_event_to_pb(&evs[i], &pbs[i], &recs[i]);
		ptrs[i] = &pbs[i];
	}
	b.events = ptrs;
	b.n_events = n;
	return ipc_send(fd, IPC_EVENTS, &b.base);
}

static int
bench_feed(const char *sock, uint64_t execs, uint64_t per_frame, uint64_t rate)
{
	uint64_t total = execs * 2, hw = 0, acked = 0, base_ms = time_now_ms();
	uint64_t pid0 = 1000000 + (base_ms / 1000) % 1000000 * 2;
	double t0;
	int fd = -1, rc;

	if (per_frame == 0 || (rc = ipc_connect(sock, &fd)) < 0 ||
	    (rc = feed_register(fd, &hw)) < 0) {
		fprintf(stderr, "feed: cannot register on %s\n", sock);
		return 1;
	}
	/* Sequences continue after what the agent already has. */
	t0 = now_s();
	for (uint64_t k = 0; k < total && rc == 0; k += per_frame) {
		uint64_t n = total - k < per_frame ? total - k : per_frame;
		if (rate > 0) {
			double due = t0 + (double)k / (double)rate, now = now_s();
			if (due > now)
				(void)usleep((useconds_t)((due - now) * 1e6));
		}
		if ((rc = feed_frame(fd, hw + k, n, base_ms, pid0)) == 0)
			rc = feed_drain(fd, rate > 0 ? 0 : 1000, &acked);
	}
	while (rc == 0 && acked < hw + total && now_s() - t0 < 120)
		rc = feed_drain(fd, 100, &acked);
	close(fd);
	fprintf(stderr, "fed %llu events in frames of %llu in %.2f s, acked through %llu\n",
	        (unsigned long long)total, (unsigned long long)per_frame, now_s() - t0,
	        (unsigned long long)acked);
	return rc == 0 && acked >= hw + total ? 0 : 1;
}

int
main(int argc, char **argv)
{
	uint64_t n, per, rate;

	if (argc == 4 && streq(argv[1], "wal") && parse_u64(argv[2], &n) == 0)
		return bench_wal(n, argv[3]);
	if (argc == 6 && streq(argv[1], "spawn"))
		return bench_spawn(strtod(argv[2], NULL), strtod(argv[3], NULL), argv[4], argv[5]);
	if (argc == 6 && streq(argv[1], "feed") && parse_u64(argv[3], &n) == 0 &&
	    parse_u64(argv[4], &per) == 0 && parse_u64(argv[5], &rate) == 0)
		return bench_feed(argv[2], n, per, rate);
	fprintf(stderr, "usage: bench-pipeline wal N DIR | spawn RATE SECONDS MARKER CHILD"
	                " | feed SOCKET EXECS PER_FRAME RATE\n");
	return 2;
}
