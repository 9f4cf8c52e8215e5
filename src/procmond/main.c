/* procmond: the privileged collector (SPEC §1, §3, §8).
 *
 * Start-up, in order: options and configuration; /proc, the hash cache and
 * the lifecycle tracker; the event source (auto: ebpf, then netlink, then
 * poll); the output (JSON lines, or the agent when DAEMONEYE_BROKER_SOCKET is
 * set); the privilege drop and the seccomp filter; then one loop over epoll:
 * the source's fd, a timerfd for the snapshot interval, a signalfd, and the
 * output's fd when it has one. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "hash.h"
#include "lifecycle.h"
#include "log.h"
#include "output.h"
#include "privdrop.h"
#include "procfs.h"
#include "publish.h"
#include "seccomp_profile.h"
#include "source.h"
#include "util.h"

#define EXIT_RUNTIME     1
#define EXIT_USAGE       2
#define MAX_EPOLL        8
#define CLOSE_TIMEOUT_MS 2000
/* After a drain of the ebpf ring buffer that found events, procmond lets
 * the next ones gather this long before it looks again: at 1,000 exec/s one
 * wake-up reads a few processes' records instead of one record, and an
 * event waits at most this much longer. (netlink is read at once: its
 * records carry no argv, which must be read from /proc before the process
 * exits.) */
#define COALESCE_NS 2000000L

struct options {
	const char *config_path;
	const char *log_level;
	const char *collector;
	const char *interval;
	const char *output;
	const char *wal_dir;
	bool once, no_hash;
};

/* Everything the loop touches. */
struct procmond {
	struct de_config cfg;
	struct options opt;
	struct procfs *pf;
	struct hash_cache *hc;
	struct lifecycle *lc;
	const struct source_ops *src_ops;
	struct source *src;
	struct source *ids_src; /* with ebpf: the proc connector's uid/gid events */
	struct output *out;
	int epfd, tfd, sfd, efd;
	int snap_fd;      /* with ebpf: the first snapshot's task iterator, or -1 */
	int snap_keys_fd; /* and its cgroup-set key iterator, or -1 */
	uint32_t interval_ms;
	_Atomic uint32_t want_interval_ms; /* set by the publisher thread */
	_Atomic bool agent_stop;           /* likewise */
	bool stop;
	bool coalesce; /* the last drain found events: let the next ones gather */
	int exit_code;
	uint64_t out_errors;
};

static const struct option long_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "config", required_argument, NULL, 'c' },
	{ "log-level", required_argument, NULL, 'l' },
	{ "once", no_argument, NULL, '1' },
	{ "collector", required_argument, NULL, 'C' },
	{ "interval", required_argument, NULL, 'i' },
	{ "output", required_argument, NULL, 'o' },
	{ "no-hash", no_argument, NULL, 'H' },
	{ "wal-dir", required_argument, NULL, 'w' },
	{ NULL, 0, NULL, 0 },
};

static void
usage(FILE *f)
{
	fputs("Usage: procmond [OPTIONS]\n"
	      "The DaemonEye process collector: /proc snapshots, real-time exec/exit events,\n"
	      "executable hashes. Standalone it prints JSON lines; with\n"
	      "DAEMONEYE_BROKER_SOCKET set it sends to the agent through a write-ahead log.\n\n"
	      "  --once                   one full snapshot as JSON lines, then exit\n"
	      "  --collector auto|ebpf|netlink|poll\n"
	      "                           event source (default auto: the best that works)\n"
	      "  --interval MS            snapshot interval (default 1000)\n"
	      "  --output PATH|-          where JSON lines go (default -: stdout)\n"
	      "  --no-hash                do not hash executables\n"
	      "  --wal-dir DIR            write-ahead log directory (managed mode)\n"
	      "  --config PATH            read this YAML file instead of the standard ones\n"
	      "  --log-level error|warn|info|debug\n"
	      "  --help, --version\n",
	      f);
}

static int
parse_args(int argc, char **argv, struct options *o)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("procmond %s\n", DAEMONEYE_VERSION);
			exit(0);
		case 'c':
			o->config_path = optarg;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case '1':
			o->once = true;
			break;
		case 'C':
			o->collector = optarg;
			break;
		case 'i':
			o->interval = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'H':
			o->no_hash = true;
			break;
		case 'w':
			o->wal_dir = optarg;
			break;
		default:
			fprintf(stderr, "procmond: unknown or incomplete option '%s'\n",
			        argv[optind - 1]);
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "procmond: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Flags override the file and the environment (SPEC §4). */
static int
load_config(struct procmond *pm, struct errbuf *err)
{
	static const struct {
		const char *key;
		size_t off;
	} flag_keys[] = {
		{ "procmond.collector", offsetof(struct options, collector) },
		{ "agent.scan_interval_ms", offsetof(struct options, interval) },
		{ "procmond.wal_dir", offsetof(struct options, wal_dir) },
	};
	int rc;

	if ((rc = config_load(pm->opt.config_path, &pm->cfg, err)) < 0)
		return rc;
	for (size_t i = 0; i < ARRAY_SIZE(flag_keys); i++) {
		const char *v = *(const char *const *)((const char *)&pm->opt + flag_keys[i].off);

		if (v != NULL && (rc = config_set(&pm->cfg, flag_keys[i].key, v, err)) < 0)
			return rc;
	}
	if (pm->opt.no_hash &&
	    (rc = config_set(&pm->cfg, "procmond.compute_hashes", "false", err)) < 0)
		return rc;
	return config_validate(&pm->cfg, err);
}

/* ---- the event source ---- */

static const struct source_ops *const source_order[] = {
	&source_ebpf_ops,
	&source_netlink_ops,
	&source_poll_ops,
};

static int
open_source(struct procmond *pm, const struct collector_opts *copts)
{
	const char *want = pm->cfg.procmond.collector ? pm->cfg.procmond.collector : "auto";
	bool is_auto = streq(want, "auto");
	struct errbuf err;
	int rc = -ENOENT;

	for (size_t i = 0; i < ARRAY_SIZE(source_order); i++) {
		const struct source_ops *ops = source_order[i];

		if (!is_auto && !streq(want, ops->name))
			continue;
		errbuf_clear(&err);
		if ((rc = ops->open(copts, &pm->src, &err)) == 0) {
			pm->src_ops = ops;
			log_info("collector: %s%s", ops->name,
			         is_auto ? " (auto: the best source that works here)" : "");
			return 0;
		}
		if (!is_auto) {
			log_error("collector %s cannot run here: %s", ops->name, err.msg);
			return rc;
		}
		log_info("collector %s passed over: %s", ops->name, err.msg);
	}
	log_error("unknown collector '%s' (auto, ebpf, netlink or poll)", want);
	return rc;
}

/* The eBPF source sees no set*id() call: a proc connector socket filtered
 * to uid and gid events brings those in (source_netlink_open_ids). Without
 * it they show at the next snapshot, as before. */
static void
open_ids_companion(struct procmond *pm)
{
	struct errbuf err;

	errbuf_clear(&err);
	if (source_netlink_open_ids(&pm->ids_src, &err) < 0) {
		pm->ids_src = NULL;
		log_info("uid and gid changes show at the next snapshot (%s)", err.msg);
		return;
	}
	log_info("uid and gid changes: from the proc connector (those events only)");
}

/* The first snapshot walks the kernel's task list through the ebpf source's
 * iterator (lifecycle_snapshot_from): created now, while bpf(2) is still
 * allowed; read after the privilege drop. Later snapshots walk /proc, where
 * a known instance costs one stat read. */
static void
open_snapshot_iter(struct procmond *pm)
{
	int keys = -1, fd = source_ebpf_snapshot_fd(pm->src, &keys);

	if (fd < 0) {
		if (fd != -ENOTSUP)
			log_info("first snapshot: no task iterator (%s); it walks /proc",
			         strerror(-fd));
		return;
	}
	pm->snap_fd = fd;
	pm->snap_keys_fd = keys >= 0 ? keys : -1;
}

static void
on_ids_event(void *ctx, const struct source_event *ev)
{
	struct procmond *pm = ctx;

	lifecycle_on_source_event(pm->lc, ev, source_netlink_ops.name);
}

static void
dispatch_ids(struct procmond *pm)
{
	int rc = source_netlink_ops.dispatch(pm->ids_src, on_ids_event, pm);

	if (rc < 0)
		log_warn("uid and gid events: reading failed: %s", strerror(-rc));
}

static void
on_source_event(void *ctx, const struct source_event *ev)
{
	struct procmond *pm = ctx;

	lifecycle_on_source_event(pm->lc, ev, pm->src_ops->name);
}

/* ---- output ---- */

static void
on_lifecycle_event(void *ctx, const struct process_event *ev)
{
	struct procmond *pm = ctx;
	int rc = output_emit(pm->out, ev);

	if (rc == -EPIPE) {
		pm->stop = true; /* the reader went away: nothing left to do */
	} else if (rc < 0 && pm->out_errors++ == 0) {
		log_error("output %s: %s", pm->out->ops->name, strerror(-rc));
		pm->exit_code = EXIT_RUNTIME;
	}
}

static void
on_adjust_interval(void *ctx, uint32_t ms)
{
	struct procmond *pm = ctx;
	uint64_t one = 1;

	atomic_store(&pm->want_interval_ms, ms);
	if (write(pm->efd, &one, sizeof(one)) < 0)
		return; /* the counter is already non-zero: the loop wakes anyway */
}

static void
on_agent_shutdown(void *ctx)
{
	struct procmond *pm = ctx;
	uint64_t one = 1;

	atomic_store(&pm->agent_stop, true);
	if (write(pm->efd, &one, sizeof(one)) < 0)
		return;
}

static int
open_output(struct procmond *pm, const char *broker, struct errbuf *err)
{
	char wal_dir[4096];
	struct publish_opts po = { 0 };
	int rc;

	if (broker == NULL || pm->opt.once)
		return output_jsonl_open(pm->opt.output, &pm->out, err);
	if ((rc = config_wal_dir(&pm->cfg, wal_dir, sizeof(wal_dir))) < 0) {
		errbuf_set(err, "WAL directory path too long");
		return rc;
	}
	po.socket_path = broker;
	po.wal_dir = wal_dir;
	po.wal_rotate_bytes = pm->cfg.procmond.wal_rotate_bytes;
	po.max_buffer_bytes = pm->cfg.procmond.max_buffer_bytes;
	po.collector_id = "procmond";
	po.capabilities = pm->src_ops->realtime ? "process,exec-events,hashes" : "process,hashes";
	po.source_name = pm->src_ops->name;
	po.heartbeat_interval_s = pm->cfg.agent.heartbeat_interval_s;
	po.on_adjust_interval = on_adjust_interval;
	po.on_shutdown = on_agent_shutdown;
	po.ctx = pm;
	return output_publish_open(&po, &pm->out, err);
}

/* The WAL directory must belong to the user procmond becomes. */
static int
prepare_wal_dir(struct procmond *pm, const struct privdrop_user *u)
{
	char dir[4096];

	if (config_wal_dir(&pm->cfg, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (geteuid() == 0 && chown(dir, u->uid, u->gid) < 0)
		return -errno;
	return 0;
}

/* ---- privileges ---- */

/* privdrop_resolve_user() in a child process that answers over a pipe and
 * exits. A name that is not in /etc/passwd (the default `daemoneye` before
 * `make install` creates it) sends glibc on to the next NSS module:
 * libnss_systemd and its libm, 0.6 MB that would stay mapped in procmond
 * for its whole life to answer one question at start. Called before any
 * thread exists. Returns what privdrop_resolve_user() returns. */
static int
resolve_user(const char *name, struct privdrop_user *ret)
{
	struct {
		int rc;
		struct privdrop_user u;
	} msg;
	size_t got = 0;
	int p[2], status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return privdrop_resolve_user(name, ret);
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return privdrop_resolve_user(name, ret);
	}
	if (pid == 0) {
		close(p[0]);
		memset(&msg, 0, sizeof(msg));
		msg.rc = privdrop_resolve_user(name, &msg.u);
		_exit(write_all(p[1], &msg, sizeof(msg)) < 0 ? 1 : 0);
	}
	close(p[1]);
	while (got < sizeof(msg)) {
		ssize_t n = read(p[0], (char *)&msg + got, sizeof(msg) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got != sizeof(msg))
		return -EIO;
	if (msg.rc < 0)
		return msg.rc;
	msg.u.name[sizeof(msg.u.name) - 1] = '\0';
	*ret = msg.u;
	return 0;
}

/* SPEC §8: keep CAP_SYS_PTRACE (read other users' /proc/PID/exe, cwd) and
 * CAP_DAC_READ_SEARCH (hash images the user cannot read); nothing else. The
 * sources need their capabilities only to open (subscribe, load), which is
 * done by now. Only capabilities we have can be kept. */
static void
drop_privileges(struct procmond *pm, const struct privdrop_user *user, bool managed)
{
	static const int wanted[] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };
	int keep[ARRAY_SIZE(wanted)];
	size_t n = 0;
	struct privdrop_user u = *user;
	struct errbuf err;
	enum seccomp_profile prof;
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(wanted); i++)
		if (privdrop_has_cap(wanted[i]))
			keep[n++] = wanted[i];
	if (n < ARRAY_SIZE(wanted))
		log_warn("running degraded: without CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, "
		         "other users' executables, hashes and working directories are hidden");
	if (u.fell_back && geteuid() == 0)
		log_info("user '%s' does not exist: running as %s", pm->cfg.procmond.user, u.name);
	if (managed && (rc = prepare_wal_dir(pm, &u)) < 0)
		fatal("WAL directory: %s", strerror(-rc));
	errbuf_clear(&err);
	if (privdrop_apply(&u, keep, n, &err) < 0)
		fatal("privilege drop failed: %s", err.msg);
	prof = streq(pm->src_ops->name, "ebpf") ? SECCOMP_PROFILE_PROCMOND_BPF
	                                        : SECCOMP_PROFILE_PROCMOND;
	if (seccomp_profile_apply(prof, &err) < 0)
		fatal("seccomp filter: %s", err.msg);
	log_info("running as %s (uid %u), %zu capabilities kept, no_new_privs, seccomp on",
	         geteuid() == u.uid ? u.name : "self", (unsigned)geteuid(), n);
}

/* ---- the loop ---- */

static int
arm_timer(int tfd, uint32_t ms)
{
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { ms / 1000, (long)(ms % 1000) * 1000000L },
	};

	return timerfd_settime(tfd, 0, &its, NULL) < 0 ? -errno : 0;
}

static int
watch(int epfd, int fd, uint32_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

enum { TAG_SOURCE = 1, TAG_TIMER, TAG_SIGNAL, TAG_OUTPUT, TAG_WAKE, TAG_IDS };

static void
dispatch_source(struct procmond *pm)
{
	int rc = pm->src_ops->dispatch(pm->src, on_source_event, pm);

	if (rc < 0)
		log_warn("%s: reading events failed: %s", pm->src_ops->name, strerror(-rc));
	pm->coalesce = rc > 0 && pm->src_ops->argv_at_exec;
}

static void
poll_source(void *ctx)
{
	dispatch_source(ctx);
}

/* One debug line per snapshot: bench/bench-snapshot.py reads it. */
static void
log_snapshot(struct procmond *pm, int n)
{
	struct lifecycle_stats ls;

	lifecycle_get_stats(pm->lc, &ls);
	log_debug("snapshot: %d processes in %llu us, %llu us CPU (%llu full reads, %llu cheap "
	          "refreshes, %llu from the task iterator, %llu of them with a shared cgroup read)",
	          n, (unsigned long long)ls.last_snapshot_us,
	          (unsigned long long)ls.last_snapshot_cpu_us, (unsigned long long)ls.full_reads,
	          (unsigned long long)ls.cheap_reads, (unsigned long long)ls.iter_reads,
	          (unsigned long long)ls.iter_cgroups_shared);
}

static void
run_snapshot(struct procmond *pm)
{
	int rc;

	/* Events first, so a snapshot does not announce what an event is about to. */
	dispatch_source(pm);
	if (pm->snap_fd >= 0) {
		rc = lifecycle_snapshot_from(pm->lc, pm->snap_fd, pm->snap_keys_fd, false);
		close(pm->snap_fd);
		pm->snap_fd = -1;
		if (pm->snap_keys_fd >= 0)
			close(pm->snap_keys_fd);
		pm->snap_keys_fd = -1;
	} else {
		rc = lifecycle_snapshot(pm->lc, false);
	}
	if (rc < 0)
		log_error("snapshot failed: %s", strerror(-rc));
	else
		log_snapshot(pm, rc);
	if (pm->src != NULL) {
		struct source_health sh = { 0 };

		pm->src_ops->health(pm->src, &sh);
		output_source_stats(pm->out, sh.events, sh.drops);
	}
}

static void
on_signal(struct procmond *pm)
{
	struct signalfd_siginfo si;

	while (read(pm->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: full snapshot now");
			run_snapshot(pm);
		} else {
			log_info("signal %u: stopping", si.ssi_signo);
			pm->stop = true;
		}
	}
}

static void
on_wake(struct procmond *pm)
{
	uint64_t v;
	uint32_t ms;

	if (read(pm->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("eventfd: %s", strerror(errno));
	if (atomic_load(&pm->agent_stop)) {
		log_info("the agent asked procmond to stop");
		pm->stop = true;
	}
	ms = atomic_exchange(&pm->want_interval_ms, 0);
	if (ms >= 10 && ms != pm->interval_ms) {
		pm->interval_ms = ms;
		arm_timer(pm->tfd, ms);
		log_info("snapshot interval now %u ms (asked by the agent)", ms);
	}
}

static int
block_loop_signals(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	return sigprocmask(SIG_BLOCK, mask, NULL) < 0 ? -errno : 0;
}

static int
setup_loop(struct procmond *pm)
{
	sigset_t mask;
	int sfd_src = pm->src_ops->fd(pm->src), ofd = output_fd(pm->out), rc;

	if ((rc = block_loop_signals(&mask)) < 0)
		return rc;
	pm->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	pm->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	pm->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (pm->sfd < 0 || pm->tfd < 0 || pm->epfd < 0)
		return -errno;
	if (watch(pm->epfd, pm->sfd, TAG_SIGNAL) < 0 || watch(pm->epfd, pm->tfd, TAG_TIMER) < 0 ||
	    watch(pm->epfd, pm->efd, TAG_WAKE) < 0)
		return -errno;
	if (sfd_src >= 0 && watch(pm->epfd, sfd_src, TAG_SOURCE) < 0)
		return -errno;
	if (pm->ids_src != NULL && watch(pm->epfd, source_netlink_ops.fd(pm->ids_src), TAG_IDS) < 0)
		return -errno;
	if (ofd >= 0 && watch(pm->epfd, ofd, TAG_OUTPUT) < 0)
		return -errno;
	return arm_timer(pm->tfd, pm->interval_ms);
}

static void
run_loop(struct procmond *pm)
{
	struct epoll_event evs[MAX_EPOLL];

	while (!pm->stop) {
		int n;

		if (pm->coalesce) {
			struct timespec ts = { 0, COALESCE_NS };

			pm->coalesce = false;
			(void)clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		}
		n = epoll_wait(pm->epfd, evs, MAX_EPOLL, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fatal("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n && !pm->stop; i++) {
			uint64_t ticks;
			int rc;

			switch (evs[i].data.u32) {
			case TAG_SOURCE:
				dispatch_source(pm);
				break;
			case TAG_IDS:
				/* The exec that a uid change follows first. */
				dispatch_source(pm);
				dispatch_ids(pm);
				break;
			case TAG_TIMER:
				if (read(pm->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					log_debug("timerfd: %s", strerror(errno));
				run_snapshot(pm);
				break;
			case TAG_SIGNAL:
				on_signal(pm);
				break;
			case TAG_WAKE:
				on_wake(pm);
				break;
			case TAG_OUTPUT:
				if ((rc = output_on_readable(pm->out)) < 0) {
					log_error("output: %s", strerror(-rc));
					pm->stop = true;
					pm->exit_code = EXIT_RUNTIME;
				}
				break;
			default:
				break;
			}
		}
		output_flush(pm->out);
	}
}

static void
log_summary(struct procmond *pm)
{
	struct lifecycle_stats ls;
	struct source_health sh = { 0 };

	lifecycle_get_stats(pm->lc, &ls);
	if (pm->src != NULL)
		pm->src_ops->health(pm->src, &sh);
	log_info("stopping: %llu snapshots, %llu starts, %llu stops, %llu modified, "
	         "%llu suspicious; %s: %llu events, %llu drops",
	         (unsigned long long)ls.snapshots, (unsigned long long)ls.events[PROC_EV_START],
	         (unsigned long long)ls.events[PROC_EV_STOP],
	         (unsigned long long)ls.events[PROC_EV_MODIFIED],
	         (unsigned long long)ls.events[PROC_EV_SUSPICIOUS], pm->src_ops->name,
	         (unsigned long long)sh.events, (unsigned long long)sh.drops);
	if (pm->ids_src != NULL) {
		source_netlink_ops.health(pm->ids_src, &sh);
		log_info("uid and gid events: %llu, %llu drops", (unsigned long long)sh.events,
		         (unsigned long long)sh.drops);
	}
}

static void
procmond_free(struct procmond *pm)
{
	output_close(pm->out);
	if (pm->src != NULL)
		pm->src_ops->close(pm->src);
	if (pm->ids_src != NULL)
		source_netlink_ops.close(pm->ids_src);
	lifecycle_free(pm->lc);
	hash_cache_free(pm->hc);
	procfs_free(pm->pf);
	const int fds[] = { pm->epfd, pm->tfd, pm->sfd, pm->efd, pm->snap_fd, pm->snap_keys_fd };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	config_free(&pm->cfg);
}

static void
setup_core(struct procmond *pm, struct collector_opts *copts)
{
	struct rlimit rl;
	int rc;

	/* lifecycle.c keeps two fds per process (stat, cmdline) when it may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_debug("raising RLIMIT_NOFILE: %s", strerror(errno));
	}
	copts->enhanced_metadata = true;
	copts->compute_hashes = pm->cfg.procmond.compute_hashes;
	copts->interval_ms = pm->interval_ms;
	if ((rc = procfs_open("/proc", &pm->pf)) < 0)
		fatal("/proc: %s", strerror(-rc));
	if (copts->compute_hashes && (rc = hash_cache_new(0, 0, &pm->hc)) < 0)
		fatal("hash cache: %s", strerror(-rc));
	if ((rc = lifecycle_new(pm->pf, pm->hc, copts, on_lifecycle_event, pm, &pm->lc)) < 0)
		fatal("lifecycle: %s", strerror(-rc));
}

int
main(int argc, char **argv)
{
	struct procmond pm = {
		.epfd = -1, .tfd = -1, .sfd = -1, .efd = -1, .snap_fd = -1, .snap_keys_fd = -1
	};
	struct collector_opts copts = { 0 };
	const char *broker = getenv("DAEMONEYE_BROKER_SOCKET");
	struct privdrop_user user;
	struct errbuf err;
	enum log_level lvl;
	sigset_t sigs;
	int rc;

	log_init("procmond");
	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv, &pm.opt) < 0)
		return EXIT_USAGE;
	if (pm.opt.log_level != NULL) {
		if (log_level_from_string(pm.opt.log_level, &lvl) < 0) {
			fprintf(stderr, "procmond: --log-level: expected error|warn|info|debug\n");
			return EXIT_USAGE;
		}
		log_set_level(lvl);
	}
	errbuf_clear(&err);
	if ((rc = load_config(&pm, &err)) < 0) {
		fprintf(stderr, "procmond: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		return rc == -EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	pm.interval_ms = pm.cfg.agent.scan_interval_ms ? pm.cfg.agent.scan_interval_ms : 1000;
	if (broker != NULL && broker[0] == '\0')
		broker = NULL;
	/* The user is looked up (in a short-lived child) before any source
	 * opens: procmond's own helper is then never collected, and never
	 * mistaken for a root child of an unprivileged parent once procmond
	 * has dropped to its user. */
	if ((rc = resolve_user(pm.cfg.procmond.user, &user)) < 0)
		fatal("cannot resolve user '%s' or nobody: %s", pm.cfg.procmond.user,
		      strerror(-rc));
	setup_core(&pm, &copts);
	if (pm.opt.once) {
		pm.src_ops = &source_poll_ops;
	} else if (open_source(&pm, &copts) < 0) {
		procmond_free(&pm);
		return EXIT_RUNTIME;
	} else if (pm.src_ops == &source_ebpf_ops) {
		open_ids_companion(&pm);
		open_snapshot_iter(&pm);
	}
	if ((pm.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		fatal("eventfd: %s", strerror(errno));
	if (broker == NULL || pm.opt.once) {
		if (open_output(&pm, NULL, &err) < 0)
			fatal("output: %s", err.msg);
	}
	/* Before any thread starts: the loop's signals must reach only the main
	 * loop's signalfd, never the publisher thread (whose default action
	 * would kill procmond instead of stopping it cleanly). */
	if (broker != NULL && !pm.opt.once && block_loop_signals(&sigs) < 0)
		fatal("sigprocmask: %s", strerror(errno));
	drop_privileges(&pm, &user, broker != NULL && !pm.opt.once);
	/* Managed mode opens after the drop: the publisher thread it starts must
	 * not carry privileges procmond's main thread gave up. */
	if (broker != NULL && !pm.opt.once && (rc = open_output(&pm, broker, &err)) < 0)
		fatal("managed mode (%s): %s", broker, err.msg[0] ? err.msg : strerror(-rc));
	if (pm.opt.once) {
		rc = lifecycle_snapshot(pm.lc, true);
		output_flush(pm.out);
		if (rc < 0)
			log_error("snapshot failed: %s", strerror(-rc));
		else
			log_snapshot(&pm, rc);
		procmond_free(&pm);
		return rc < 0 || pm.exit_code ? EXIT_RUNTIME : 0;
	}
	if ((rc = setup_loop(&pm)) < 0)
		fatal("event loop: %s", strerror(-rc));
	/* A long snapshot (the first one, thousands of processes, large images
	 * to hash) reads the source's events as it goes, so the kernel's buffer
	 * does not overflow meanwhile. */
	if (pm.src_ops->realtime)
		lifecycle_set_poll(pm.lc, poll_source, &pm);
	run_snapshot(&pm);
	output_flush(pm.out);
	run_loop(&pm);
	/* What the kernel already queued is not dropped on the way out. */
	dispatch_source(&pm);
	if (pm.ids_src != NULL)
		dispatch_ids(&pm);
	output_flush(pm.out);
	log_summary(&pm);
	procmond_free(&pm);
	return pm.exit_code;
}
