/* The lifecycle tracker against a synthetic /proc tree built per test: start,
 * stop, modified (which fields), suspicious (pid reuse, future start), and
 * kernel events (exec enriched from /proc, exec of a vanished process, fork
 * then exit, thread events ignored). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "bpf_event.h"
#include "cleanup.h"
#include "lifecycle.h"
#include "util.h"

#define MAX_SEEN 64

struct seen {
	enum proc_event_type type;
	int pid;
	char source[16];
	char fields[128];
	char cmdline[128];
	char reason[200];
	char exe[128];
	char hash[72];
	char cgroup[64];
	char parent[32];
	char user[32];
	int64_t uid;
	uint64_t start_ticks;
	bool deleted, memfd;
	uint32_t missing;
	int32_t exit_code;
};

struct world {
	char root[64];
	struct procfs *pf;
	struct lifecycle *lc;
	struct seen ev[MAX_SEEN];
	size_t n;
};

static void
record(void *ctx, const struct process_event *e)
{
	struct world *w = ctx;
	struct seen *s;

	if (w->n >= MAX_SEEN)
		return;
	s = &w->ev[w->n++];
	memset(s, 0, sizeof(*s));
	s->type = e->type;
	s->pid = e->proc.pid;
	s->missing = e->proc.missing;
	s->exit_code = e->exit_code;
	de_strlcpy(s->source, e->source ? e->source : "", sizeof(s->source));
	de_strlcpy(s->fields, e->modified_fields ? e->modified_fields : "", sizeof(s->fields));
	de_strlcpy(s->cmdline, e->proc.command_line ? e->proc.command_line : "",
	           sizeof(s->cmdline));
	de_strlcpy(s->reason, e->reason ? e->reason : "", sizeof(s->reason));
	de_strlcpy(s->exe, e->proc.executable_path ? e->proc.executable_path : "", sizeof(s->exe));
	de_strlcpy(s->hash, e->proc.executable_hash ? e->proc.executable_hash : "",
	           sizeof(s->hash));
	de_strlcpy(s->cgroup, e->proc.cgroup ? e->proc.cgroup : "", sizeof(s->cgroup));
	de_strlcpy(s->parent, e->proc.parent_name ? e->proc.parent_name : "", sizeof(s->parent));
	de_strlcpy(s->user, e->proc.user_name ? e->proc.user_name : "", sizeof(s->user));
	s->uid = e->proc.user_id;
	s->start_ticks = e->proc.start_ticks;
	s->deleted = e->proc.exe_deleted;
	s->memfd = e->proc.exe_memfd;
}

static void
put(const struct world *w, int pid, const char *name, const void *data, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%d", w->root, pid);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%d/%s", w->root, pid, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, n), 0);
	close(fd);
}

static void
put_proc(const struct world *w, int pid, const char *comm, int ppid, unsigned long long start,
         const char *argv0, const char *arg1, int uid)
{
	char buf[512], cmd[256];
	int n;

	n = snprintf(buf, sizeof(buf),
	             "%d (%s) S %d 1 1 0 -1 4194560 10 0 0 0 5 5 0 0 20 0 1 0 %llu 1000 50 "
	             "18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
	             pid, comm, ppid, start);
	put(w, pid, "stat", buf, (size_t)n);
	n = snprintf(buf, sizeof(buf),
	             "Name:\t%s\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n"
	             "Threads:\t1\n",
	             comm, uid, uid, uid, uid, uid, uid, uid, uid);
	put(w, pid, "status", buf, (size_t)n);
	n = snprintf(cmd, sizeof(cmd), "%s%c%s", argv0, '\0', arg1);
	put(w, pid, "cmdline", cmd, (size_t)n + 1);
	put(w, pid, "cgroup", "0::/\n", 5);
}

static void
rm_proc(const struct world *w, int pid)
{
	static const char *const files[] = { "stat", "status", "cmdline", "cgroup" };
	char path[128];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%d/%s", w->root, pid, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/%d", w->root, pid);
	rmdir(path);
}

static const struct seen *
find(const struct world *w, enum proc_event_type t, int pid)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->ev[i].type == t && w->ev[i].pid == pid)
			return &w->ev[i];
	return NULL;
}

/* strstr on a field of a found event (GCC cannot see that find() succeeded). */
static bool
has(const struct seen *s, const char *field, const char *needle)
{
	const char *hay;

	if (s == NULL)
		return false;
	hay = streq(field, "fields") ? s->fields : streq(field, "reason") ? s->reason : s->cmdline;
	return strstr(hay, needle) != NULL;
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct collector_opts o = { .enhanced_metadata = true };
	char stat[64];
	int n;

	if (w == NULL)
		return -1;
	snprintf(w->root, sizeof(w->root), "/tmp/de-test-lifecycle-XXXXXX");
	if (mkdtemp(w->root) == NULL)
		return -1;
	/* Booted 1000 s ago: start ticks below 1000*HZ are in the past. */
	n = snprintf(stat, sizeof(stat), "btime %lld\n", (long long)time(NULL) - 1000);
	{
		char path[128];
		int fd;

		snprintf(path, sizeof(path), "%s/stat", w->root);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, stat, (size_t)n), 0);
		close(fd);
	}
	put_proc(w, 1, "init", 0, 1, "/sbin/init", "splash", 0);
	put_proc(w, 100, "bash", 1, 500, "bash", "-l", 1000);
	if (procfs_open(w->root, &w->pf) < 0 ||
	    lifecycle_new(w->pf, NULL, &o, record, w, &w->lc) < 0)
		return -1;
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;
	char cmd[128];

	lifecycle_free(w->lc);
	procfs_free(w->pf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->root);
	if (system(cmd) != 0)
		return -1;
	free(w);
	return 0;
}

static void
test_snapshot_start_stop(void **state)
{
	struct world *w = *state;

	assert_int_equal(lifecycle_snapshot(w->lc, false), 2);
	assert_int_equal(w->n, 2);
	assert_int_equal(w->ev[0].type, PROC_EV_SNAPSHOT);
	assert_int_equal(w->ev[1].type, PROC_EV_SNAPSHOT);
	/* Nothing changed: nothing to say. */
	w->n = 0;
	assert_int_equal(lifecycle_snapshot(w->lc, false), 2);
	assert_int_equal(w->n, 0);
	/* A new process and a vanished one. */
	put_proc(w, 200, "vim", 100, 900, "vim", "notes.txt", 1000);
	rm_proc(w, 100);
	assert_int_equal(lifecycle_snapshot(w->lc, false), 2);
	assert_non_null(find(w, PROC_EV_START, 200));
	assert_string_equal(find(w, PROC_EV_START, 200)->source, "poll");
	assert_non_null(find(w, PROC_EV_STOP, 100));
	assert_int_equal(find(w, PROC_EV_STOP, 100)->exit_code, -1);
}

static void
test_modified_fields(void **state)
{
	struct world *w = *state;
	const struct seen *m;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	/* argv rewritten in place (same instance: same start ticks). */
	put_proc(w, 100, "bash", 1, 500, "[kworker/0:1]", "", 1000);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(m = find(w, PROC_EV_MODIFIED, 100));
	assert_true(has(m, "fields", "command_line"));
	assert_true(has(m, "cmdline", "[kworker/0:1]"));
	/* comm renamed (prctl PR_SET_NAME): name. */
	w->n = 0;
	put_proc(w, 100, "sshd", 1, 500, "[kworker/0:1]", "", 1000);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(m = find(w, PROC_EV_MODIFIED, 100));
	assert_true(has(m, "fields", "name"));
}

/* A process caught between releasing its memory and becoming a zombie
 * still shows state S but an empty cmdline: its exit, not an argv rewrite
 * (procmond once reported such processes as `modified` with an empty
 * command line, and their stop carried it). */
static void
test_exiting_process_is_not_modified(void **state)
{
	struct world *w = *state;
	const struct seen *st;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	put(w, 100, "cmdline", "", 0);
	lifecycle_snapshot(w->lc, false);
	assert_null(find(w, PROC_EV_MODIFIED, 100));
	rm_proc(w, 100);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(st = find(w, PROC_EV_STOP, 100));
	assert_string_not_equal(st->cmdline, "");
}

static void
test_pid_reuse_is_suspicious(void **state)
{
	struct world *w = *state;
	const struct seen *s;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	put_proc(w, 100, "nc", 1, 7000, "nc", "-e", 1000);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(find(w, PROC_EV_STOP, 100));
	assert_non_null(s = find(w, PROC_EV_SUSPICIOUS, 100));
	assert_true(has(s, "reason", "reused"));
	assert_non_null(find(w, PROC_EV_START, 100));
}

static void
test_future_start_is_suspicious(void **state)
{
	struct world *w = *state;
	const struct seen *s;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	/* 10^9 ticks after a boot 1000 s ago is far in the future. */
	put_proc(w, 300, "odd", 1, 1000000000ull, "odd", "x", 0);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(find(w, PROC_EV_START, 300));
	assert_non_null(s = find(w, PROC_EV_SUSPICIOUS, 300));
	assert_true(has(s, "reason", "after the present"));
}

static void
test_exec_event_enriched_or_from_event(void **state)
{
	static const char argv[] = "sh\0-c\0--password\0hunter2";
	struct world *w = *state;
	struct source_event ev;
	const struct seen *s;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	/* A live process: read from /proc at once. */
	put_proc(w, 400, "curl", 100, 990, "curl", "--token", 1000);
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_EXEC;
	ev.pid = ev.tid = 400;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_non_null(s = find(w, PROC_EV_START, 400));
	assert_string_equal(s->source, "netlink");
	assert_true(has(s, "cmdline", "curl"));
	/* Gone before we looked: the event's own fields, the rest marked missing. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_EXEC;
	ev.pid = ev.tid = 401;
	ev.ppid = 100;
	ev.has = SOURCE_HAS_ARGV | SOURCE_HAS_PPID | SOURCE_HAS_COMM | SOURCE_HAS_FILENAME;
	memcpy(ev.argv, argv, sizeof(argv));
	ev.argv_len = sizeof(argv);
	de_strlcpy(ev.comm, "sh", sizeof(ev.comm));
	de_strlcpy(ev.filename, "/bin/sh", sizeof(ev.filename));
	lifecycle_on_source_event(w->lc, &ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 401));
	assert_false(has(s, "cmdline", "hunter2"));
	assert_true(has(s, "cmdline", "[REDACTED]"));
	assert_true(s->missing & PROC_MISSING_STAT);
	assert_false(s->missing & PROC_MISSING_CMDLINE);
	assert_false(s->missing & PROC_MISSING_EXE);
	/* Its exit: stop with the exit code. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_EXIT;
	ev.pid = ev.tid = 401;
	ev.exit_code = 256;
	ev.has = SOURCE_HAS_EXIT_CODE;
	lifecycle_on_source_event(w->lc, &ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_STOP, 401));
	assert_int_equal(s->exit_code, 256);
}

/* An exec event that finds its image already announced: by the first
 * snapshot (a `snapshot` event) it is still the process's start, since the
 * exec happened after procmond began to watch; by a later snapshot's start
 * it would be a duplicate. */
static void
test_exec_after_first_snapshot_is_a_start(void **state)
{
	struct world *w = *state;
	struct source_event ev;
	size_t starts = 0;

	assert_int_equal(lifecycle_snapshot(w->lc, false), 2);
	assert_non_null(find(w, PROC_EV_SNAPSHOT, 100));
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_EXEC;
	ev.pid = ev.tid = 100;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_non_null(find(w, PROC_EV_START, 100));
	assert_string_equal(find(w, PROC_EV_START, 100)->source, "netlink");
	assert_null(find(w, PROC_EV_STOP, 100)); /* the same instance */
	/* Found by a later snapshot (a start), then its exec event: one start. */
	put_proc(w, 300, "make", 100, 900, "make", "-j2", 1000);
	assert_int_equal(lifecycle_snapshot(w->lc, false), 3);
	assert_non_null(find(w, PROC_EV_START, 300));
	ev.pid = ev.tid = 300;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	for (size_t i = 0; i < w->n; i++)
		starts += w->ev[i].type == PROC_EV_START && w->ev[i].pid == 300;
	assert_int_equal(starts, 1);
	/* And 100's own exec again, now announced by a start: no second one. */
	ev.pid = ev.tid = 100;
	w->n = 0;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_null(find(w, PROC_EV_START, 100));
}

/* A snapshot iterator record (bpf_event.h) into buf: a uid-1000 "bash"
 * with the cgroup v2 id 77; exe NULL for none. Returns its size, padding
 * included, as the kernel writes it. */
static size_t snap_rec_key(char *buf, int pid, int ppid, unsigned long long start_ticks,
                           const char *cwd, const char *exe, uint64_t key, uint64_t before,
                           uint64_t after);

static size_t
snap_rec(char *buf, int pid, int ppid, unsigned long long start_ticks, const char *cwd,
         const char *exe)
{
	return snap_rec_key(buf, pid, ppid, start_ticks, cwd, exe, 0, 0, 0);
}

/* The same with a cgroup-set key (key 0: none) and the slot's migration
 * counts around it. */
static size_t
snap_rec_key(char *buf, int pid, int ppid, unsigned long long start_ticks, const char *cwd,
             const char *exe, uint64_t key, uint64_t before, uint64_t after)
{
	struct de_bpf_event h;
	struct de_bpf_exec x;
	size_t off = sizeof(h) + sizeof(x), n;

	memset(&h, 0, sizeof(h));
	memset(&x, 0, sizeof(x));
	h.kind = DE_BPF_EV_SNAP;
	h.tgid = h.pid = (uint32_t)pid;
	h.ppid = (uint32_t)ppid;
	h.uid = h.euid = h.gid = 1000;
	h.start_ns = start_ticks * 10000000ull; /* at 100 Hz */
	memcpy(h.comm, "bash", 5);
	x.egid = 1000;
	x.threads = 1;
	x.cgroup_id = 77;
	if (key != 0) {
		h.flags |= DE_BPF_F_CGROUP_SET;
		x.cgroup_set = key;
		x.cgroup_moves = before;
		x.cgroup_moves_after = after;
	}
	if (cwd != NULL) {
		h.flags |= DE_BPF_F_HAS_CWD;
		h.cwd_len = (uint16_t)(strlen(cwd) + 1);
		memcpy(buf + off, cwd, h.cwd_len);
		off += h.cwd_len;
	}
	if (exe != NULL) {
		h.flags |= DE_BPF_F_HAS_EXE;
		x.exe_len = (uint16_t)(strlen(exe) + 1);
		memcpy(buf + off, exe, x.exe_len);
		off += x.exe_len;
		x.exe_dev = 8u << 20;
		x.exe_ino = 4242;
		x.exe_size = 1000;
	}
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &x, sizeof(x));
	n = (off + 7) & ~(size_t)7;
	memset(buf + off, 0, n - off);
	return n;
}

/* A pipe holding len bytes of buf, its write end closed: its read end. */
static int
pipe_of(const void *buf, size_t len)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_true(len <= 65536); /* a pipe's buffer: written whole, then read */
	assert_int_equal(write_all(p[1], buf, len), 0);
	close(p[1]);
	return p[0];
}

/* Runs lifecycle_snapshot_from over len bytes of records (and klen bytes of
 * key records, when keys is not NULL) through pipes. */
static int
snapshot_from_keys(struct world *w, const char *buf, size_t len, const void *keys, size_t klen)
{
	int fd = pipe_of(buf, len), kfd = keys != NULL ? pipe_of(keys, klen) : -1, rc;

	rc = lifecycle_snapshot_from(w->lc, fd, kfd, false);
	close(fd);
	if (kfd >= 0)
		close(kfd);
	return rc;
}

static int
snapshot_from(struct world *w, const char *buf, size_t len)
{
	return snapshot_from_keys(w, buf, len, NULL, 0);
}

static size_t
count(const struct world *w, enum proc_event_type t, int pid)
{
	size_t n = 0;

	for (size_t i = 0; i < w->n; i++)
		n += w->ev[i].type == t && w->ev[i].pid == pid;
	return n;
}

/* The first snapshot from the kernel's task iterator: a complete record
 * gives a process its image and cwd, /proc its argv, cgroup and stat; a
 * record without an image (pid 1 here) goes the /proc walk's way; a record
 * whose start is not stat's is another instance's (the walk decides). */
static void
test_snapshot_from_iterator_records(void **state)
{
	static char buf[4096];
	struct world *w = *state;
	struct lifecycle_stats ls;
	const struct seen *s;
	size_t n = 0;

	n += snap_rec(buf + n, 1, 0, 1, "/", NULL);
	n += snap_rec(buf + n, 100, 1, 500, "/home/u (x)", "/usr/bin/bash");
	n += snap_rec(buf + n, 200, 100, 700, "/", "/usr/bin/vim"); /* no /proc: gone */
	assert_int_equal(snapshot_from(w, buf, n), 2);
	assert_int_equal(count(w, PROC_EV_SNAPSHOT, 1), 1);
	assert_int_equal(count(w, PROC_EV_SNAPSHOT, 100), 1);
	assert_int_equal(w->n, 2);
	assert_non_null(s = find(w, PROC_EV_SNAPSHOT, 100));
	assert_string_equal(s->exe, "/usr/bin/bash");
	assert_string_equal(s->cmdline, "bash -l");
	assert_string_equal(s->cgroup, "/");
	assert_string_equal(s->parent, "init");
	assert_int_equal(s->uid, 1000);
	assert_int_equal(s->start_ticks, 500);
	assert_false(s->missing & (PROC_MISSING_CMDLINE | PROC_MISSING_STAT | PROC_MISSING_CWD |
	                           PROC_MISSING_CGROUP | PROC_MISSING_EXE));
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.iter_reads, 1);
	/* Known now: the next (/proc) snapshot has nothing new to say of it. */
	w->n = 0;
	assert_int_equal(lifecycle_snapshot(w->lc, false), 2);
	assert_int_equal(count(w, PROC_EV_START, 100) + count(w, PROC_EV_STOP, 100), 0);
}

static void
test_snapshot_from_iterator_stale_or_broken(void **state)
{
	static char buf[4096];
	struct world *w = *state;
	struct lifecycle_stats ls;
	size_t n = 0;

	/* 100's record says it started at 499: /proc's stat says 500. */
	n += snap_rec(buf + n, 100, 1, 499, "/", "/usr/bin/bash");
	/* Then a record cut short by the end of the stream: an error that
	 * /proc's walk finishes for (100 is not announced twice). */
	n += snap_rec(buf + n, 1, 0, 1, "/", "/sbin/init") - 8;
	assert_int_equal(snapshot_from(w, buf, n), 2);
	assert_int_equal(count(w, PROC_EV_SNAPSHOT, 100), 1);
	assert_int_equal(count(w, PROC_EV_SNAPSHOT, 1), 1);
	assert_int_equal(find(w, PROC_EV_SNAPSHOT, 100)->start_ticks, 500);
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.iter_reads, 0);
}

/* Key records of the key iterator for pids 100 and 101 sharing key 0xabc. */
static size_t
two_keys(struct de_bpf_snap_key k[2], uint64_t before, uint64_t after)
{
	memset(k, 0, 2 * sizeof(*k));
	for (int i = 0; i < 2; i++) {
		k[i].kind = DE_BPF_EV_SNAP_KEY;
		k[i].flags = DE_BPF_F_CGROUP_SET;
		k[i].tgid = (uint32_t)(100 + i);
		k[i].start_ns = 500ull * 10000000ull;
		k[i].key = 0xabc;
		k[i].moves_before = before;
		k[i].moves_after = after;
	}
	return 2 * sizeof(*k);
}

/* Runs a snapshot from pid 100's and 101's records (both with key 0xabc,
 * their slot's counts in_a around the key iterator's keys and in_b around
 * de_snap's) and returns the cgroup column reported for 101, whose own file
 * says "/other" (100's says "/"). */
static const char *
shared_cgroup_of_101(struct world *w, uint64_t in_a_before, uint64_t in_a_after, uint64_t in_b)
{
	static char buf[4096];
	struct de_bpf_snap_key k[2];
	size_t n = 0, kn;
	const struct seen *s;

	put_proc(w, 101, "bash", 1, 500, "bash", "-i", 1000);
	put(w, 101, "cgroup", "0::/other\n", 10);
	kn = two_keys(k, in_a_before, in_a_after);
	n += snap_rec_key(buf + n, 100, 1, 500, "/", "/usr/bin/bash", 0xabc, in_b, in_b);
	n += snap_rec_key(buf + n, 101, 1, 500, "/", "/usr/bin/bash", 0xabc, in_b, in_b);
	assert_int_equal(snapshot_from_keys(w, buf, n, k, kn), 2);
	assert_non_null(s = find(w, PROC_EV_SNAPSHOT, 101));
	return s->cgroup;
}

/* One cgroup file read for a set two processes share: the witness's (the
 * lower pid, read between the key iterator and de_snap), when de_snap finds
 * it with the same key and its slot's count unchanged since the key
 * iterator. 101's own file says otherwise here, to tell which was used (in
 * life one key has one text). A count that moved, or a witness's key taken
 * across a migration, and each reads its own. */
static void
test_snapshot_from_iterator_shares_a_vouched_cgroup(void **state)
{
	struct world *w = *state;
	struct lifecycle_stats ls;

	assert_string_equal(shared_cgroup_of_101(w, 5, 5, 5), "/");
	assert_string_equal(find(w, PROC_EV_SNAPSHOT, 100)->cgroup, "/");
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.iter_reads, 2);
	assert_int_equal(ls.iter_cgroups_shared, 2);
}

/* The witness's slot counted a migration after the key iterator. */
static void
test_snapshot_from_iterator_cgroup_not_vouched(void **state)
{
	struct world *w = *state;
	struct lifecycle_stats ls;

	assert_string_equal(shared_cgroup_of_101(w, 5, 5, 6), "/other");
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.iter_reads, 2);
	assert_int_equal(ls.iter_cgroups_shared, 0);
}

/* The key iterator's keys were taken across a migration: no witness. */
static void
test_snapshot_from_iterator_key_across_a_move(void **state)
{
	struct world *w = *state;
	struct lifecycle_stats ls;

	assert_string_equal(shared_cgroup_of_101(w, 5, 6, 6), "/other");
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.iter_cgroups_shared, 0);
}

/* An exec record as the ebpf source delivers it: every column is in it. */
static void
kernel_exec(struct source_event *ev, int pid, const char *exe, const struct stat *sb)
{
	static const char argv[] = "tool\0--run";

	memset(ev, 0, sizeof(*ev));
	ev->kind = SOURCE_EV_EXEC;
	ev->pid = ev->tid = pid;
	ev->ppid = 100;
	ev->uid = ev->euid = ev->gid = ev->egid = 1000;
	ev->start_ns = 990ull * 10000000ull; /* 990 ticks at 100 Hz */
	memcpy(ev->argv, argv, sizeof(argv));
	ev->argv_len = sizeof(argv);
	de_strlcpy(ev->comm, "tool", sizeof(ev->comm));
	de_strlcpy(ev->filename, exe, sizeof(ev->filename));
	de_strlcpy(ev->exe, exe, sizeof(ev->exe));
	de_strlcpy(ev->cwd, "/srv", sizeof(ev->cwd));
	ev->threads = 1;
	ev->cgroup_id = 77;
	ev->image = (struct source_image_key){
		.dev = sb->st_dev,
		.ino = sb->st_ino,
		.size = sb->st_size,
		.mtime_sec = sb->st_mtim.tv_sec,
		.mtime_nsec = (uint32_t)sb->st_mtim.tv_nsec,
		.ctime_sec = sb->st_ctim.tv_sec,
		.ctime_nsec = (uint32_t)sb->st_ctim.tv_nsec,
	};
	ev->has = SOURCE_HAS_IDS | SOURCE_HAS_COMM | SOURCE_HAS_START | SOURCE_HAS_PPID |
	          SOURCE_HAS_ARGV | SOURCE_HAS_FILENAME | SOURCE_HAS_CWD | SOURCE_HAS_EXE |
	          SOURCE_HAS_IMAGE | SOURCE_HAS_STAT | SOURCE_HAS_CGROUP;
}

/* A complete kernel exec record needs no /proc: the pids below have no
 * /proc directory at all. The image is hashed once from its path (the
 * process is gone) when the file is still the one the kernel named, then
 * known by its key; the cgroup comes from /proc while it can be read. */
static void
test_exec_from_kernel_record_alone(void **state)
{
	struct world *w = *state;
	struct collector_opts o = { .enhanced_metadata = true, .compute_hashes = true };
	struct hash_cache *hc = NULL;
	struct source_event *ev = calloc(1, sizeof(*ev));
	struct lifecycle_stats ls;
	const struct seen *s;
	char exe[128], hash[72];
	struct stat sb;

	assert_non_null(ev);
	assert_int_equal(hash_cache_new(0, 0, &hc), 0);
	lifecycle_free(w->lc);
	assert_int_equal(lifecycle_new(w->pf, hc, &o, record, w, &w->lc), 0);
	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	snprintf(exe, sizeof(exe), "%s/tool", w->root);
	put(w, 0, "../tool", "#!/bin/true\n", 12); /* <root>/0/../tool */
	assert_int_equal(stat(exe, &sb), 0);

	kernel_exec(ev, 600, exe, &sb);
	lifecycle_on_source_event(w->lc, ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 600));
	assert_string_equal(s->source, "ebpf");
	assert_string_equal(s->exe, exe);
	assert_true(has(s, "cmdline", "tool --run"));
	assert_int_equal(s->uid, 1000);
	assert_int_equal(s->start_ticks, 990);
	assert_string_equal(s->parent, "bash"); /* from the table */
	assert_int_equal(strlen(s->hash), 64);
	de_strlcpy(hash, s->hash, sizeof(hash));
	assert_true(s->missing & PROC_MISSING_CGROUP); /* no /proc/600/cgroup */
	assert_false(s->missing & (PROC_MISSING_STAT | PROC_MISSING_CMDLINE | PROC_MISSING_EXE |
	                           PROC_MISSING_HASH | PROC_MISSING_STATUS));
	assert_false(s->deleted);

	/* The same image again, the file gone meanwhile: known by its key. */
	unlink(exe);
	w->n = 0;
	kernel_exec(ev, 601, exe, &sb);
	lifecycle_on_source_event(w->lc, ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 601));
	assert_string_equal(s->hash, hash);
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.from_kernel, 2);
	assert_int_equal(ls.image_memo_hits, 1);

	/* Another image (another key) whose file is gone: no hash, said so. */
	w->n = 0;
	sb.st_size++;
	kernel_exec(ev, 602, exe, &sb);
	lifecycle_on_source_event(w->lc, ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 602));
	assert_string_equal(s->hash, "");
	assert_true(s->missing & PROC_MISSING_HASH);

	/* A memfd image; a live process's cgroup is read from /proc. */
	w->n = 0;
	put(w, 603, "cgroup", "0::/system.slice/x.service\n", 27);
	kernel_exec(ev, 603, "/memfd:payload", &sb);
	ev->exe_deleted = true;
	lifecycle_on_source_event(w->lc, ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 603));
	assert_true(s->memfd);
	assert_true(s->deleted);
	assert_string_equal(s->cgroup, "/system.slice/x.service");

	/* A hybrid host: the same cgroup v2 id, other v1 cgroups. Two texts that
	 * agree must not make the id stand for the third (the column is the v1
	 * path here): each is read, and a process gone has none. */
	w->n = 0;
	put(w, 605, "cgroup", "4:memory:/a\n0::/\n", 17);
	put(w, 606, "cgroup", "4:memory:/b\n0::/\n", 17);
	put(w, 607, "cgroup", "4:memory:/a\n0::/\n", 17);
	for (int i = 0; i < 4; i++) {
		static const int order[] = { 605, 607, 606, 608 };

		kernel_exec(ev, order[i], "/memfd:payload", &sb);
		ev->cgroup_id = 78;
		lifecycle_on_source_event(w->lc, ev, "ebpf");
	}
	assert_non_null(s = find(w, PROC_EV_START, 607));
	assert_string_equal(s->cgroup, "/a");
	assert_non_null(s = find(w, PROC_EV_START, 606));
	assert_string_equal(s->cgroup, "/b");
	assert_non_null(s = find(w, PROC_EV_START, 608));
	assert_true(s->missing & PROC_MISSING_CGROUP);

	/* An incomplete record (no image) is enriched from /proc as before. */
	w->n = 0;
	put_proc(w, 604, "curl", 100, 995, "curl", "-s", 1000);
	kernel_exec(ev, 604, "/usr/bin/curl", &sb);
	ev->has &= ~(uint32_t)(SOURCE_HAS_EXE | SOURCE_HAS_IMAGE);
	lifecycle_on_source_event(w->lc, ev, "ebpf");
	assert_non_null(s = find(w, PROC_EV_START, 604));
	assert_int_equal(s->start_ticks, 995); /* from the fixture's stat */
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.from_kernel, 8);

	lifecycle_free(w->lc);
	w->lc = NULL;
	hash_cache_free(hc);
	free(ev);
}

static void
test_fork_exit_and_threads(void **state)
{
	struct world *w = *state;
	struct source_event ev;
	size_t before;

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	/* A thread exits: not a process. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_EXIT;
	ev.pid = 100;
	ev.tid = 101;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_int_equal(w->n, 0);
	/* A fork that never execs and exits: announced (as its parent's image), then stopped. */
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_FORK;
	ev.pid = ev.tid = 500;
	ev.ppid = 100;
	ev.has = SOURCE_HAS_PPID;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_int_equal(w->n, 0);
	before = w->n;
	ev.kind = SOURCE_EV_EXIT;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_int_equal(w->n, before + 2);
	assert_non_null(find(w, PROC_EV_START, 500));
	assert_non_null(find(w, PROC_EV_STOP, 500));
	assert_true(has(find(w, PROC_EV_START, 500), "cmdline", "bash"));
}

/* Entries live in slabs of 127: forks and exits across several slabs, with
 * freed entries reused and emptied slabs released, keep every instance its
 * own pid and columns (the ASan build also checks no freed entry is read). */
static void
fork_ev(struct world *w, enum source_event_kind kind, int pid)
{
	struct source_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.pid = ev.tid = pid;
	ev.ppid = 100;
	ev.has = SOURCE_HAS_PPID;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
}

static void
test_many_entries_come_and_go(void **state)
{
	struct world *w = *state;
	struct lifecycle_stats st0, st;
	const int n = 700;

	lifecycle_snapshot(w->lc, false);
	lifecycle_get_stats(w->lc, &st0);
	for (int i = 0; i < n; i++)
		fork_ev(w, SOURCE_EV_FORK, 10000 + i);
	lifecycle_get_stats(w->lc, &st);
	assert_int_equal(st.processes, st0.processes + (uint64_t)n);
	for (int i = 1; i < n; i += 2)
		fork_ev(w, SOURCE_EV_EXIT, 10000 + i);
	for (int i = 0; i < n / 2; i++)
		fork_ev(w, SOURCE_EV_FORK, 20000 + i);
	lifecycle_get_stats(w->lc, &st);
	assert_int_equal(st.processes, st0.processes + (uint64_t)n);
	assert_int_equal(st.events[PROC_EV_STOP] - st0.events[PROC_EV_STOP], n / 2);
	w->n = 0;
	for (int i = 0; i < n; i += 2)
		fork_ev(w, SOURCE_EV_EXIT, 10000 + i);
	for (int i = 0; i < n / 2; i++)
		fork_ev(w, SOURCE_EV_EXIT, 20000 + i);
	lifecycle_get_stats(w->lc, &st);
	assert_int_equal(st.processes, st0.processes);
	assert_int_equal(st.events[PROC_EV_START] - st0.events[PROC_EV_START], n + n / 2);
	assert_int_equal(st.events[PROC_EV_STOP] - st0.events[PROC_EV_STOP], n + n / 2);
	assert_true(has(find(w, PROC_EV_START, 10000), "cmdline", "bash"));
	assert_non_null(find(w, PROC_EV_STOP, 10000));
	/* The table still works after every slab but one went back. */
	fork_ev(w, SOURCE_EV_FORK, 30000);
	w->n = 0;
	fork_ev(w, SOURCE_EV_EXIT, 30000);
	assert_non_null(find(w, PROC_EV_STOP, 30000));
	assert_int_equal(find(w, PROC_EV_STOP, 30000)->exit_code, -1);
}

/* Instances that share their columns (same parent, image, user) keep their
 * own values when one of them changes: the shared tuple is copied on write. */
static void
test_shared_columns_change_per_instance(void **state)
{
	struct world *w = *state;
	struct source_event ev;
	const struct seen *a, *b;

	put_proc(w, 200, "worker", 100, 900, "worker", "--serve", 0);
	put_proc(w, 201, "worker", 100, 901, "worker", "--serve", 0);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(a = find(w, PROC_EV_SNAPSHOT, 200));
	assert_non_null(b = find(w, PROC_EV_SNAPSHOT, 201));
	assert_string_equal(a->user, b->user);
	assert_string_equal(a->parent, "bash");
	assert_string_equal(b->parent, "bash");
	/* 201 changes user: re-read at once on the kernel's word. */
	w->n = 0;
	put_proc(w, 201, "worker", 100, 901, "worker", "--serve", 65534);
	memset(&ev, 0, sizeof(ev));
	ev.kind = SOURCE_EV_UID;
	ev.pid = ev.tid = 201;
	lifecycle_on_source_event(w->lc, &ev, "netlink");
	assert_non_null(b = find(w, PROC_EV_MODIFIED, 201));
	assert_true(has(b, "fields", "user_id"));
	assert_int_equal(b->uid, 65534);
	/* 200 kept its user; the parent renamed itself for both. */
	put_proc(w, 100, "bash2", 1, 500, "bash", "-l", 1000);
	rm_proc(w, 200);
	rm_proc(w, 201);
	w->n = 0;
	lifecycle_snapshot(w->lc, false);
	assert_non_null(a = find(w, PROC_EV_STOP, 200));
	assert_non_null(b = find(w, PROC_EV_STOP, 201));
	assert_int_equal(a->uid, 0);
	assert_int_equal(b->uid, 65534);
	assert_string_not_equal(a->user, b->user);
	assert_string_equal(a->parent, "bash");
	assert_string_equal(a->cmdline, "worker --serve");
	assert_non_null(find(w, PROC_EV_MODIFIED, 100));
}

/* Poll mode sees a set*id call through the owner of /proc/PID/stat; a first
 * look whose expected owner (the euid) differs, as for a non-dumpable
 * process, re-reads the ids once and reports nothing. */
static void
test_poll_sees_id_change(void **state)
{
	struct world *w = *state;
	const struct seen *m;
	char path[128];

	lifecycle_snapshot(w->lc, false);
	w->n = 0;
	/* The fixture's files are root's, bash's euid 1000: no change. */
	lifecycle_snapshot(w->lc, false);
	assert_int_equal(w->n, 0);
	put_proc(w, 100, "bash", 1, 500, "bash", "-l", 1001);
	snprintf(path, sizeof(path), "%s/100/stat", w->root);
	assert_int_equal(chown(path, 1001, 1001), 0);
	lifecycle_snapshot(w->lc, false);
	assert_non_null(m = find(w, PROC_EV_MODIFIED, 100));
	assert_true(has(m, "fields", "user_id"));
	assert_true(has(m, "fields", "effective_user_id"));
	assert_int_equal(m->uid, 1001);
	w->n = 0;
	lifecycle_snapshot(w->lc, false);
	assert_int_equal(w->n, 0);
}

/* pid numbers wrapped: the walk (ascending pids) meets children before
 * their parent. The parent is read once, ahead, and tracked: its children
 * find it in the table (each used to read the parent's files again). */
static void
test_parent_after_children(void **state)
{
	struct world *w = *state;
	struct lifecycle_stats ls;
	size_t parents = 0;
	const struct seen *s;

	put_proc(w, 900, "server", 1, 600, "/usr/sbin/server", "-f", 0);
	for (int pid = 300; pid < 303; pid++)
		put_proc(w, pid, "worker", 900, 700, "worker", "-n", 0);
	assert_int_equal(lifecycle_snapshot(w->lc, false), 6);
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.parent_reads, 0);
	assert_int_equal(ls.full_reads, 6);
	for (size_t i = 0; i < w->n; i++)
		parents += w->ev[i].pid == 900;
	assert_int_equal(parents, 1);
	assert_non_null(s = find(w, PROC_EV_SNAPSHOT, 301));
	assert_string_equal(s->parent, "server");
	assert_non_null(s = find(w, PROC_EV_SNAPSHOT, 900));
	assert_string_equal(s->parent, "init");
	w->n = 0;
	assert_int_equal(lifecycle_snapshot(w->lc, false), 6);
	assert_int_equal(w->n, 0);
	lifecycle_get_stats(w->lc, &ls);
	assert_int_equal(ls.full_reads, 6);
	assert_int_equal(ls.cheap_reads, 6);
}

static void
test_max_processes_does_not_fake_stops(void **state)
{
	struct world *w = *state;
	struct collector_opts o = { .max_processes = 1 };
	struct lifecycle *lc = NULL;

	assert_int_equal(lifecycle_new(w->pf, NULL, &o, record, w, &lc), 0);
	assert_int_equal(lifecycle_snapshot(lc, false), 1);
	assert_int_equal(lifecycle_snapshot(lc, false), 1);
	for (size_t i = 0; i < w->n; i++)
		assert_int_not_equal(w->ev[i].type, PROC_EV_STOP);
	lifecycle_free(lc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshot_start_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modified_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exiting_process_is_not_modified, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_pid_reuse_is_suspicious, setup, teardown),
		cmocka_unit_test_setup_teardown(test_future_start_is_suspicious, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_event_enriched_or_from_event, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_exec_after_first_snapshot_is_a_start, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_exec_from_kernel_record_alone, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_from_iterator_records, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_from_iterator_stale_or_broken, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_from_iterator_shares_a_vouched_cgroup,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_from_iterator_cgroup_not_vouched,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_from_iterator_key_across_a_move,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_exit_and_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_entries_come_and_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_columns_change_per_instance, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_poll_sees_id_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_after_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_processes_does_not_fake_stops, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
