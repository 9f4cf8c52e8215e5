#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "procfs.h"
#include "util.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int rc = 0;

	if (f == NULL)
		return -1;
	if (fputs(text, f) < 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static const char *
fixture_root(void)
{
	static char path[PATH_MAX];
	const char *top = getenv("DE_SOURCE_ROOT");

	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/proc", top ? top : ".");
	return path;
}

static void
test_parse_stat_hostile_comm(void **state)
{
	static const char line[] = "42 (a) S 9 (b\n) R 7 42 42 34817 42 4194560 1 2 3 4 "
	                           "11 22 0 0 20 0 5 0 777 100 33 18446744073709551615\n";
	struct procfs_stat st;

	(void)state;
	assert_int_equal(procfs_parse_stat(line, strlen(line), &st), 0);
	assert_int_equal(st.pid, 42);
	assert_string_equal(st.comm, "a) S 9 (b\n");
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.ppid, 7);
	assert_int_equal(st.tty_nr, 34817);
	assert_int_equal(st.utime, 11);
	assert_int_equal(st.stime, 22);
	assert_int_equal(st.num_threads, 5);
	assert_int_equal(st.starttime, 777);
	assert_int_equal(st.rss_pages, 33);
}

static void
test_parse_stat_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"42",
		"42 (x",
		"42 (x)",
		"42 (x) S",
		"(x) S 1 2 3",
		"42 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"42 (x) S a b c d e f g h i j k l m n o p q r s t u v w",
		"0 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 1\n",
		"99999999999999999999 (x) S 1 1 1 0 1 0 0 0 0 0 0 0 0 0 0 0 1 0 1 0 1\n",
	};
	struct procfs_stat st;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(procfs_parse_stat(bad[i], strlen(bad[i]), &st), -EINVAL);
}

static void
test_parse_status(void **state)
{
	static const char ok[] =
	    "Name:\tx\nUid:\t1000\t0\t1000\t1000\nGid:\t5\t6\t5\t5\nThreads:\t12\n";
	static const char no_uid[] = "Name:\tx\nGid:\t5\t6\t5\t5\n";
	static const char bad_gid[] = "Uid:\t1\t2\t3\t4\nGid:\tx\nThreads:\t99999999999\n";
	struct procfs_status st;

	(void)state;
	assert_int_equal(procfs_parse_status(ok, strlen(ok), &st), 0);
	assert_int_equal(st.uid, 1000);
	assert_int_equal(st.euid, 0);
	assert_int_equal(st.gid, 5);
	assert_int_equal(st.egid, 6);
	assert_int_equal(st.threads, 12);
	assert_int_equal(procfs_parse_status(no_uid, strlen(no_uid), &st), -EINVAL);
	assert_int_equal(procfs_parse_status(bad_gid, strlen(bad_gid), &st), 0);
	assert_int_equal(st.uid, 1);
	assert_int_equal(st.gid, -1);
	assert_int_equal(st.threads, -1);
}

static void
test_container_ids(void **state)
{
	char id[65];
	char path[256];
	const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	(void)state;
	snprintf(path, sizeof(path), "/system.slice/docker-%s.scope", hex);
	assert_true(procfs_container_id(path, id));
	assert_string_equal(id, hex);
	snprintf(path, sizeof(path), "/docker/%s", hex);
	assert_true(procfs_container_id(path, id));
	snprintf(path, sizeof(path), "/machine.slice/libpod-%s.scope/container", hex);
	assert_true(procfs_container_id(path, id));
	snprintf(path, sizeof(path), "/kubepods/besteffort/pod1/crio-%s.scope", hex);
	assert_true(procfs_container_id(path, id));
	/* Not containers: a bare id outside an engine tree, conmon, short ids. */
	snprintf(path, sizeof(path), "/user.slice/%s", hex);
	assert_false(procfs_container_id(path, id));
	snprintf(path, sizeof(path), "/machine.slice/crio-conmon-%s.scope", hex);
	assert_false(procfs_container_id(path, id));
	assert_false(procfs_container_id("/process_api/376295e2006904ba64529a1164d554b6", id));
	assert_false(procfs_container_id("", id));
}

static void
test_parse_cgroup(void **state)
{
	static const char hybrid[] =
	    "12:pids:/docker/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n0::/\n";
	_cleanup_free_ char *path = NULL;
	char id[65];

	(void)state;
	assert_int_equal(procfs_parse_cgroup(hybrid, strlen(hybrid), &path, id), 0);
	assert_int_equal(strncmp(path, "/docker/aaaa", 12), 0);
	assert_int_equal(strlen(id), 64);
	assert_int_equal(procfs_parse_cgroup("no colons", 9, &path, id), -EINVAL);
}

static void
test_tty_and_exe(void **state)
{
	char b[32];
	bool del, memfd;
	_cleanup_free_ char *a = NULL, *m = NULL, *p = NULL;

	(void)state;
	assert_true(procfs_tty_name(34817, b, sizeof(b)));
	assert_string_equal(b, "pts/1");
	assert_true(procfs_tty_name(1025, b, sizeof(b)));
	assert_string_equal(b, "tty1");
	assert_true(procfs_tty_name((4 << 8) | 64, b, sizeof(b)));
	assert_string_equal(b, "ttyS0");
	assert_false(procfs_tty_name(0, b, sizeof(b)));
	a = procfs_clean_exe("/usr/bin/x (deleted)", &del, &memfd);
	assert_string_equal(a, "/usr/bin/x");
	assert_true(del);
	assert_false(memfd);
	m = procfs_clean_exe("/memfd:payload (deleted)", &del, &memfd);
	assert_string_equal(m, "/memfd:payload");
	assert_true(del && memfd);
	p = procfs_clean_exe("/usr/bin/plain", &del, &memfd);
	assert_string_equal(p, "/usr/bin/plain");
	assert_false(del || memfd);
}

struct fixture {
	struct procfs *pf;
	struct process_record rec;
	struct procfs_sample sample;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || procfs_open(fixture_root(), &f->pf) < 0)
		return -1;
	process_record_init(&f->rec);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	process_record_clear(&f->rec);
	procfs_free(f->pf);
	free(f);
	return 0;
}

static void
test_read_ordinary(void **state)
{
	struct fixture *f = *state;
	struct process_record *r = &f->rec;

	assert_int_equal(procfs_boot_ms(f->pf), 1700000000000ull);
	assert_int_equal(procfs_read_pid(f->pf, 100, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_int_equal(r->pid, 100);
	assert_int_equal(r->ppid, 1);
	assert_string_equal(r->name, "bash");
	assert_string_equal(r->state, "S");
	assert_string_equal(r->executable_path, "/bin/sh");
	assert_true(r->file_exists);
	assert_false(r->exe_deleted);
	assert_non_null(strstr(r->command_line, "--password [REDACTED]"));
	assert_null(strstr(r->command_line, "hunter2"));
	assert_string_equal(r->cwd, "[REDACTED]");
	assert_string_equal(r->tty, "pts/1");
	assert_int_equal(r->user_id, 1000);
	assert_int_equal(r->effective_user_id, 0);
	assert_int_equal(r->group_id, 100);
	assert_int_equal(r->threads, 3);
	assert_int_equal(r->start_ticks, 123456);
	assert_int_equal(r->start_time,
	                 1700000000000ull +
	                     123456ull * 1000 / (uint64_t)procfs_ticks_per_sec(f->pf));
	assert_int_equal(r->memory_usage, 2560ull * (uint64_t)sysconf(_SC_PAGESIZE));
	assert_string_equal(r->container_id,
	                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_non_null(strstr(r->cgroup, "docker-"));
	assert_true(r->accessible);
	assert_int_equal(r->missing & ~PROC_MISSING_PARENT, 0);
	assert_int_equal(f->sample.cpu_ticks, 200);
	assert_false(f->sample.kernel_thread);
}

/* Identical cgroup texts share one parse; every pid still gets its own. */
static void
test_read_cgroup_repeats(void **state)
{
	struct fixture *f = *state;
	static const pid_t order[] = { 100, 500, 300, 600, 100, 400, 500, 300 };

	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		struct process_record r;

		process_record_init(&r);
		assert_int_equal(procfs_read_pid(f->pf, order[i],
		                                 PROCFS_READ_STAT | PROCFS_READ_CGROUP, &r,
		                                 &f->sample),
		                 0);
		switch (order[i]) {
		case 100:
			assert_string_equal(r.container_id, "0123456789abcdef0123456789abcdef"
			                                    "0123456789abcdef0123456789abcdef");
			assert_non_null(strstr(r.cgroup, "/system.slice/docker-"));
			break;
		case 500:
			assert_string_equal(r.container_id, "ffffffffffffffffffffffffffffffff"
			                                    "ffffffffffffffffffffffffffffffff");
			break;
		case 400:
			assert_null(r.cgroup);
			assert_true(r.missing & PROC_MISSING_CGROUP);
			break;
		default:
			assert_string_equal(r.cgroup, "/");
			assert_null(r.container_id);
		}
		process_record_clear(&r);
	}
}

/* More distinct cgroup texts than the cache holds, read forwards and back:
 * an evicted or reused slot never hands out another text's path. */
/* procfs_cgroup_by_id: a cgroup v2 id stands for its text once two reads of
 * a unified-only text agreed (702 has no file and still gets it); hybrid
 * texts and disagreeing reads are never trusted. */
static void
test_cgroup_by_id(void **state)
{
	static const struct {
		int pid;
		uint64_t id;
		const char *text; /* NULL: no file */
		int rc;
		const char *want;
	} cases[] = {
		{ 700, 9, "0::/kubepods/pod1/" HEX64 "\n", 0, "/kubepods/pod1/" HEX64 },
		{ 701, 9, "0::/kubepods/pod1/" HEX64 "\n", 0, "/kubepods/pod1/" HEX64 },
		{ 702, 9, NULL, 0, "/kubepods/pod1/" HEX64 },
		{ 710, 10, "5:cpu:/x\n0::/\n", 0, "/x" },
		{ 711, 10, "5:cpu:/x\n0::/\n", 0, "/x" },
		{ 712, 10, NULL, -ENOENT, NULL },
		{ 720, 11, "0::/a\n", 0, "/a" },
		{ 721, 11, "0::/b\n", 0, "/b" },
		{ 722, 11, NULL, -ENOENT, NULL },
	};
	char root[] = "/tmp/test-procfs-XXXXXX", path[PATH_MAX], cid[65];
	struct procfs *pf = NULL;

	(void)state;
	assert_non_null(mkdtemp(root));
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(path, sizeof(path), "%s/%d", root, cases[i].pid);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof(path), "%s/%d/cgroup", root, cases[i].pid);
		if (cases[i].text != NULL)
			assert_int_equal(write_file(path, cases[i].text), 0);
	}
	assert_int_equal(procfs_open(root, &pf), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *cg = NULL;
		int rc = procfs_cgroup_by_id(pf, cases[i].pid, cases[i].id, &cg, cid);

		if (rc == -ESRCH)
			rc = -ENOENT;
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_string_equal(cg, cases[i].want);
			assert_string_equal(cid, cases[i].id == 9 ? HEX64 : "");
		}
		free(cg);
	}
	procfs_free(pf);
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	assert_int_equal(system(path), 0);
}

/* A fixture process: <root>/PID/stat with start time start (0: none), and
 * <root>/PID/cgroup with text (NULL: none). */
static void
put_proc_cgroup(const char *root, int pid, uint64_t start, const char *text)
{
	char path[PATH_MAX], stat[160];

	snprintf(path, sizeof(path), "%s/%d", root, pid);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%d/stat", root, pid);
	unlink(path);
	if (start != 0) {
		snprintf(stat, sizeof(stat),
		         "%d (sh) S 1 %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %llu 100 10\n", pid,
		         pid, pid, (unsigned long long)start);
		assert_int_equal(write_file(path, stat), 0);
	}
	snprintf(path, sizeof(path), "%s/%d/cgroup", root, pid);
	unlink(path);
	if (text != NULL)
		assert_int_equal(write_file(path, text), 0);
}

static int
by_set(struct procfs *pf, int pid, uint64_t key, uint64_t start, const volatile uint64_t *slot,
       bool exact, char want[64])
{
	struct procfs_cgroup_set cs = {
		.exact = exact, .key = key, .start_ticks = start, .moves = *slot, .move_slot = slot
	};
	char *cg = NULL, cid[65];
	int rc = procfs_cgroup_by_set(pf, pid, &cs, &cg, cid);

	want[0] = '\0';
	if (rc == 0 && cg != NULL)
		snprintf(want, 64, "%s", cg);
	free(cg);
	return rc == -ENOENT ? -ESRCH : rc;
}

/* procfs_cgroup_by_set: the text read from a key's first process stands for
 * the key only once that process is gone without a migration counted in its
 * slot; other keys (even in the same memo slot), inexact keys, a process
 * that moved and a reused pid never get it. */
static void
test_cgroup_by_set(void **state)
{
	char root[] = "/tmp/test-procfs-XXXXXX", cmd[PATH_MAX + 16], got[64];
	volatile uint64_t slots[4] = { 0 };
	struct procfs *pf = NULL;
	const uint64_t k1 = 0x1234567890abcdefull, k2 = 0x0fedcba987654321ull;

	(void)state;
	assert_non_null(mkdtemp(root));
	put_proc_cgroup(root, 100, 500, "4:memory:/a\n0::/\n");
	put_proc_cgroup(root, 101, 501, "4:memory:/a\n0::/\n");
	put_proc_cgroup(root, 102, 0, NULL);
	assert_int_equal(procfs_open(root, &pf), 0);

	/* 100 is read (the first of k1); 101 too while 100 lives, and is
	 * the witness now: 100 gone is not enough. */
	assert_int_equal(by_set(pf, 100, k1, 500, &slots[0], true, got), 0);
	assert_string_equal(got, "/a");
	assert_int_equal(by_set(pf, 101, k1, 501, &slots[1], true, got), 0);
	assert_string_equal(got, "/a");
	put_proc_cgroup(root, 100, 0, NULL);
	assert_int_equal(by_set(pf, 102, k1, 502, &slots[2], true, got), -ESRCH);
	/* 101 gone, nothing moved in its slot: k1 is /a without a read. */
	put_proc_cgroup(root, 101, 0, NULL);
	assert_int_equal(by_set(pf, 102, k1, 502, &slots[2], true, got), 0);
	assert_string_equal(got, "/a");
	/* Not for an inexact key, another key, or a key in the same slot. */
	assert_int_equal(by_set(pf, 102, k1, 502, &slots[2], false, got), -ESRCH);
	assert_int_equal(by_set(pf, 102, k2, 502, &slots[2], true, got), -ESRCH);
	assert_int_equal(by_set(pf, 102, k1 + 64, 502, &slots[2], true, got), -ESRCH);

	/* 200 (k2) moved after its read: once gone, its text is dropped. */
	put_proc_cgroup(root, 200, 700, "4:memory:/b\n0::/\n");
	assert_int_equal(by_set(pf, 200, k2, 700, &slots[3], true, got), 0);
	assert_string_equal(got, "/b");
	slots[3]++;
	put_proc_cgroup(root, 200, 0, NULL);
	put_proc_cgroup(root, 201, 0, NULL);
	assert_int_equal(by_set(pf, 201, k2, 701, &slots[3], true, got), -ESRCH);
	/* ... and the next process of k2 that is read stands for it. */
	put_proc_cgroup(root, 202, 702, "4:memory:/c\n0::/\n");
	assert_int_equal(by_set(pf, 202, k2, 702, &slots[3], true, got), 0);
	assert_string_equal(got, "/c");
	put_proc_cgroup(root, 202, 0, NULL);
	assert_int_equal(by_set(pf, 201, k2, 701, &slots[3], true, got), 0);
	assert_string_equal(got, "/c");

	/* A reused pid (another start time): its text is not the exec'd
	 * process's, and nothing is kept. */
	put_proc_cgroup(root, 300, 999, "4:memory:/other\n0::/\n");
	assert_int_equal(by_set(pf, 300, 0x42, 800, &slots[0], true, got), -ESRCH);
	put_proc_cgroup(root, 300, 0, NULL);
	assert_int_equal(by_set(pf, 301, 0x42, 801, &slots[0], true, got), -ESRCH);
	/* An inexact key still reads the file. */
	put_proc_cgroup(root, 302, 0, "4:memory:/d\n0::/\n");
	assert_int_equal(by_set(pf, 302, 0x42, 802, &slots[0], false, got), 0);
	assert_string_equal(got, "/d");

	procfs_free(pf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

/* With the memo on (pure cgroup v2 hosts; forced here), a new process's
 * cgroup is read after the ids' ioctl, and the record is the same. */
static void
test_live_cgroup_late(void **state)
{
	struct procfs *pf = NULL;
	struct process_record a, b;
	struct procfs_sample s;

	(void)state;
	assert_int_equal(procfs_open("/proc", &pf), 0);
	if (!procfs_set_cgroup_memo(pf, true)) {
		procfs_free(pf);
		skip(); /* no pidfd ids here */
	}
	for (int i = 0; i < 3; i++) {
		process_record_init(&a);
		process_record_init(&b);
		assert_true(procfs_set_cgroup_memo(pf, true));
		assert_int_equal(procfs_read_pid(pf, getpid(), PROCFS_READ_ALL, &a, &s), 0);
		assert_false(procfs_set_cgroup_memo(pf, false));
		assert_int_equal(procfs_read_pid(pf, getpid(), PROCFS_READ_ALL, &b, &s), 0);
		assert_string_equal(a.cgroup, b.cgroup);
		assert_true(a.container_id == NULL ? b.container_id == NULL
		                                   : streq(a.container_id, b.container_id));
		assert_int_equal(a.missing, b.missing);
		assert_int_equal(a.user_id, b.user_id);
		process_record_clear(&a);
		process_record_clear(&b);
	}
	procfs_free(pf);
}

static void
test_read_cgroup_many(void **state)
{
	char root[] = "/tmp/test-procfs-XXXXXX", path[PATH_MAX], text[200];
	struct procfs *pf = NULL;
	struct procfs_sample s;

	(void)state;
	assert_non_null(mkdtemp(root));
	for (int pid = 1; pid <= 20; pid++) {
		snprintf(path, sizeof(path), "%s/%d", root, pid);
		assert_int_equal(mkdir(path, 0700), 0);
		snprintf(path, sizeof(path), "%s/%d/stat", root, pid);
		snprintf(text, sizeof(text),
		         "%d (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 10\n", pid,
		         100 + pid);
		assert_int_equal(write_file(path, text), 0);
		snprintf(path, sizeof(path), "%s/%d/cgroup", root, pid);
		snprintf(text, sizeof(text), "0::/slice-%d/docker-%064d.scope\n", pid % 12,
		         pid % 12);
		assert_int_equal(write_file(path, text), 0);
	}
	assert_int_equal(procfs_open(root, &pf), 0);
	for (int round = 0; round < 2; round++) {
		for (int k = 1; k <= 20; k++) {
			int pid = round ? 21 - k : k;
			struct process_record r;
			char want[100];

			process_record_init(&r);
			assert_int_equal(
			    procfs_read_pid(pf, pid, PROCFS_READ_STAT | PROCFS_READ_CGROUP, &r, &s),
			    0);
			snprintf(want, sizeof(want), "/slice-%d/docker-%064d.scope", pid % 12,
			         pid % 12);
			assert_string_equal(r.cgroup, want);
			snprintf(want, sizeof(want), "%064d", pid % 12);
			assert_string_equal(r.container_id, want);
			process_record_clear(&r);
		}
	}
	procfs_free(pf);
	for (int pid = 1; pid <= 20; pid++) {
		snprintf(path, sizeof(path), "%s/%d/stat", root, pid);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%d/cgroup", root, pid);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%d", root, pid);
		rmdir(path);
	}
	rmdir(root);
}

static void
test_read_hostile(void **state)
{
	struct fixture *f = *state;
	struct process_record *r = &f->rec;

	assert_int_equal(procfs_read_pid(f->pf, 200, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_true(utf8_is_valid(r->name, strlen(r->name)));
	assert_string_equal(r->name, "a) S 9 (b\n?");
	assert_string_equal(r->state, "R");
	assert_int_equal(r->ppid, 100);
	assert_true(utf8_is_valid(r->command_line, strlen(r->command_line)));
	assert_string_equal(r->executable_path, "/tmp/evil-binary");
	assert_true(r->exe_deleted);
	assert_false(r->exe_memfd);
	assert_false(r->file_exists);
	assert_null(r->tty);
	assert_null(r->container_id);
	/* status is absent: ids unknown, and said so. */
	assert_int_equal(r->user_id, -1);
	assert_true(r->missing & PROC_MISSING_STATUS);
	/* The parent (100) is read from the same tree. */
	assert_string_equal(r->parent_name, "bash");
	assert_string_equal(r->parent_executable_path, "/bin/sh");
	assert_null(strstr(r->parent_command_line, "hunter2"));
}

static void
test_read_kernel_zombie_memfd(void **state)
{
	struct fixture *f = *state;
	struct process_record *r = &f->rec;

	assert_int_equal(procfs_read_pid(f->pf, 300, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_true(f->sample.kernel_thread);
	assert_null(r->executable_path);
	assert_string_equal(r->command_line, "");
	assert_int_equal(r->missing & (PROC_MISSING_EXE | PROC_MISSING_CMDLINE), 0);
	process_record_clear(r);

	assert_int_equal(procfs_read_pid(f->pf, 600, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_string_equal(r->state, "Z");
	assert_true(r->missing & PROC_MISSING_EXE);
	assert_true(r->missing & PROC_MISSING_CMDLINE);
	process_record_clear(r);

	assert_int_equal(procfs_read_pid(f->pf, 400, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_true(r->exe_memfd);
	assert_true(r->exe_deleted);
	assert_false(r->file_exists);
	assert_string_equal(r->executable_path, "/memfd:payload");
	assert_true(r->missing & PROC_MISSING_CGROUP);
}

static void
test_read_truncated_and_long_name(void **state)
{
	struct fixture *f = *state;
	struct process_record *r = &f->rec;

	assert_int_equal(procfs_read_pid(f->pf, 500, PROCFS_READ_ALL, r, &f->sample), 0);
	assert_true(r->argv_truncated);
	assert_true(strlen(r->command_line) <= PROC_CMDLINE_MAX);
	assert_string_equal(r->name, "averyveryverylongname");
	assert_string_equal(r->container_id,
	                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

static void
test_read_gone(void **state)
{
	struct fixture *f = *state;
	struct procfs_stat st;

	assert_int_equal(procfs_read_pid(f->pf, 12345, PROCFS_READ_ALL, &f->rec, &f->sample),
	                 -ESRCH);
	assert_int_equal(procfs_read_stat(f->pf, 12345, &st), -ESRCH);
	assert_int_equal(f->rec.pid, -1);
}

/* The stat read's owner is what lifecycle.c expects from the ids it read:
 * the euid and egid of a dumpable process, root once it is not dumpable. */
static void
test_live_stat_owner(void **state)
{
	struct procfs *pf = NULL;
	struct procfs_stat st;
	struct stat owner;
	int go[2], done[2], status;
	pid_t child;
	char c = 0;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(procfs_open("/proc", &pf), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	if ((child = fork()) == 0) {
		close(go[1]);
		close(done[0]);
		if (setresgid(4001, 4002, 4003) < 0 || setresuid(3001, 3002, 3003) < 0)
			_exit(1);
		/* Changing ids cleared dumpable: /proc/PID is root's. */
		(void)!write(done[1], &c, 1);
		(void)!read(go[0], &c, 1);
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			_exit(1);
		(void)!write(done[1], &c, 1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	assert_true(child > 0);
	close(go[0]);
	close(done[1]);
	assert_int_equal(read(done[0], &c, 1), 1);
	assert_int_equal(procfs_read_stat_owner(pf, child, &st, &owner), 0);
	assert_int_equal(st.pid, child);
	assert_int_equal(owner.st_uid, 0);
	assert_int_equal(owner.st_gid, 0);
	assert_int_equal(write(go[1], &c, 1), 1);
	assert_int_equal(read(done[0], &c, 1), 1);
	assert_int_equal(procfs_read_stat_owner(pf, child, &st, &owner), 0);
	assert_int_equal(owner.st_uid, 3002);
	assert_int_equal(owner.st_gid, 4002);
	assert_int_equal(write(go[1], &c, 1), 1);
	close(go[1]);
	close(done[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(procfs_read_stat_owner(pf, child, &st, &owner), -ESRCH);
	procfs_free(pf);
}

static int
count_pid(void *ctx, pid_t pid)
{
	(void)pid;
	(*(int *)ctx)++;
	return 0;
}

static void
test_foreach(void **state)
{
	struct fixture *f = *state;
	int n = 0;

	assert_int_equal(procfs_foreach_pid(f->pf, count_pid, &n), 0);
	assert_int_equal(n, 6);
}

static void
test_live_self(void **state)
{
	struct procfs *pf = NULL;
	struct process_record r;
	struct procfs_sample s;
	char exe[PATH_MAX];
	ssize_t n;

	(void)state;
	assert_int_equal(procfs_open("/proc", &pf), 0);
	process_record_init(&r);
	assert_int_equal(procfs_read_pid(pf, getpid(), PROCFS_READ_ALL, &r, &s), 0);
	assert_int_equal(r.ppid, getppid());
	assert_int_equal(r.user_id, (int64_t)getuid());
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_string_equal(r.executable_path, exe);
	assert_non_null(r.user_name);
	process_record_clear(&r);
	procfs_free(pf);
}

/* A live kernel thread (kthreadd, pid 2 in procmond's pid namespace): its
 * cmdline and exe link are not read, and the record says what the kernel
 * would have (an empty command line and no image, neither missing), read
 * by path with the ids from a pidfd and through a directory fd alike. */
static void
test_live_kernel_thread(void **state)
{
	struct procfs *pf = NULL;
	struct process_record r;
	struct procfs_sample s;
	char buf[64];
	ssize_t n;
	int fd = -1;

	(void)state;
	if (geteuid() != 0 || (fd = open("/proc/2/cmdline", O_RDONLY | O_CLOEXEC)) < 0)
		skip();
	n = read(fd, buf, sizeof(buf));
	close(fd);
	/* Another pid namespace: pid 2 is not kthreadd. */
	if (n != 0 || readlink("/proc/2/exe", buf, sizeof(buf)) >= 0 || errno != ENOENT)
		skip();
	assert_int_equal(procfs_open("/proc", &pf), 0);
	for (int way = 0; way < 2; way++) {
		procfs_set_pidfd_info(pf, way == 0);
		process_record_init(&r);
		assert_int_equal(procfs_read_pid(pf, 2, PROCFS_READ_ALL | PROCFS_KEEP_FDS, &r, &s),
		                 0);
		assert_true(s.kernel_thread);
		assert_string_equal(r.command_line, "");
		assert_null(r.executable_path);
		assert_false(r.file_exists);
		assert_int_equal(r.missing & (PROC_MISSING_CMDLINE | PROC_MISSING_EXE), 0);
		assert_int_equal(s.cmdline_fd, -1);
		assert_int_equal(r.user_id, 0);
		assert_string_equal(r.name, "kthreadd");
		process_record_clear(&r);
	}
	procfs_free(pf);
}

/* The ids of a live process read through PIDFD_GET_INFO match status, field
 * by field: a child made to hold different real and effective uids and gids
 * (needs root) so a swapped field cannot pass. */
static void
test_live_ids_pidfd_vs_status(void **state)
{
	struct procfs *pf = NULL;
	struct process_record a, b;
	struct procfs_sample s;
	int go[2], status;
	pid_t child;
	char c = 0;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(procfs_open("/proc", &pf), 0);
	if (!procfs_set_pidfd_info(pf, true)) {
		procfs_free(pf);
		skip(); /* kernel before 6.13 */
	}
	assert_int_equal(pipe(go), 0);
	if ((child = fork()) == 0) {
		close(go[1]);
		if (setresgid(4001, 4002, 4003) < 0 || setresuid(3001, 3002, 3003) < 0)
			_exit(1);
		(void)!read(go[0], &c, 1); /* until the parent has looked */
		_exit(0);
	}
	assert_true(child > 0);
	close(go[0]);
	/* Wait until the child has switched ids (status is the reference). */
	for (int i = 0; i < 2000; i++) {
		process_record_init(&a);
		assert_int_equal(
		    procfs_read_pid(pf, child, PROCFS_READ_STAT | PROCFS_READ_STATUS, &a, &s), 0);
		if (a.effective_user_id == 3002)
			break;
		process_record_clear(&a);
		usleep(1000);
	}
	assert_int_equal(a.user_id, 3001);
	assert_int_equal(a.effective_user_id, 3002);
	assert_int_equal(a.group_id, 4001);
	assert_int_equal(s.egid, 4002);
	assert_true(procfs_pidfd_info(pf)); /* no silent fall back to status */
	assert_false(procfs_set_pidfd_info(pf, false));
	process_record_init(&b);
	assert_int_equal(procfs_read_pid(pf, child, PROCFS_READ_STAT | PROCFS_READ_STATUS, &b, &s),
	                 0);
	assert_int_equal(b.user_id, a.user_id);
	assert_int_equal(b.effective_user_id, a.effective_user_id);
	assert_int_equal(b.group_id, a.group_id);
	assert_int_equal(b.threads, a.threads);
	assert_int_equal(s.egid, 4002);
	assert_int_equal(b.missing & PROC_MISSING_STATUS, 0);
	process_record_clear(&a);
	process_record_clear(&b);
	assert_int_equal(write(go[1], &c, 1), 1);
	close(go[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* A reaped pid: both ways say it is gone. */
	assert_true(procfs_set_pidfd_info(pf, true));
	process_record_init(&a);
	assert_int_equal(procfs_read_pid(pf, child, PROCFS_READ_ALL, &a, &s), -ESRCH);
	process_record_clear(&a);
	procfs_free(pf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_stat_hostile_comm),
		cmocka_unit_test(test_parse_stat_malformed),
		cmocka_unit_test(test_parse_status),
		cmocka_unit_test(test_container_ids),
		cmocka_unit_test(test_parse_cgroup),
		cmocka_unit_test(test_tty_and_exe),
		cmocka_unit_test_setup_teardown(test_read_ordinary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_cgroup_repeats, setup, teardown),
		cmocka_unit_test(test_read_cgroup_many),
		cmocka_unit_test(test_cgroup_by_id),
		cmocka_unit_test(test_cgroup_by_set),
		cmocka_unit_test(test_live_cgroup_late),
		cmocka_unit_test_setup_teardown(test_read_kernel_zombie_memfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_truncated_and_long_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test(test_live_self),
		cmocka_unit_test(test_live_kernel_thread),
		cmocka_unit_test(test_live_ids_pidfd_vs_status),
		cmocka_unit_test(test_live_stat_owner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
