#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "procmond/bpf_event.h"
#include "procmond/source.h"

/* A record as the ring buffer hands it over: 8-byte aligned, header + data. */
struct rec {
	struct de_bpf_event h;
	char data[3 * DE_BPF_PATH_MAX];
};

static struct source_event ev;

/* Builds an exec record from its three strings; returns its size. The
 * lengths include the NUL, as the kernel writes them (argv: its raw bytes). */
static size_t
make_exec(struct rec *r, const char *file, const char *argv, size_t argv_len, const char *cwd)
{
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->h.kind = DE_BPF_EV_EXEC;
	r->h.tgid = 4242;
	r->h.pid = 4243;
	r->h.ppid = 1;
	r->h.uid = 1000;
	r->h.euid = 0;
	r->h.gid = 100;
	r->h.start_ns = 123456789;
	r->h.ktime_ns = 123999999;
	memcpy(r->h.comm, "tool", 5);
	r->h.filename_len = (uint16_t)(strlen(file) + 1);
	memcpy(r->data, file, r->h.filename_len);
	off += r->h.filename_len;
	r->h.argv_len = (uint16_t)argv_len;
	memcpy(r->data + off, argv, argv_len);
	off += argv_len;
	if (cwd != NULL) {
		r->h.flags |= DE_BPF_F_HAS_CWD;
		r->h.cwd_len = (uint16_t)(strlen(cwd) + 1);
		memcpy(r->data + off, cwd, r->h.cwd_len);
		off += r->h.cwd_len;
	}
	return sizeof(r->h) + off;
}

static void
test_exec_record_decodes_every_field(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/usr/bin/tool", "tool\0-x\0marker", 15, "/srv/data");

	(void)state;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_EXEC);
	assert_int_equal(ev.has, SOURCE_HAS_IDS | SOURCE_HAS_COMM | SOURCE_HAS_START |
	                             SOURCE_HAS_PPID | SOURCE_HAS_FILENAME | SOURCE_HAS_ARGV |
	                             SOURCE_HAS_CWD);
	assert_int_equal(ev.pid, 4242);
	assert_int_equal(ev.tid, 4243);
	assert_int_equal(ev.ppid, 1);
	assert_int_equal(ev.uid, 1000);
	assert_int_equal(ev.euid, 0);
	assert_int_equal(ev.gid, 100);
	assert_int_equal(ev.start_ns, 123456789);
	assert_int_equal(ev.ktime_ns, 123999999);
	assert_string_equal(ev.comm, "tool");
	assert_string_equal(ev.filename, "/usr/bin/tool");
	assert_int_equal(ev.argv_len, 15);
	assert_memory_equal(ev.argv, "tool\0-x\0marker", 15);
	assert_string_equal(ev.cwd, "/srv/data");
	assert_false(ev.argv_truncated);
}

static void
test_flags_and_missing_parts(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "", "", 0, NULL);

	(void)state;
	r.h.flags |= DE_BPF_F_ARGV_TRUNC;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.has & (SOURCE_HAS_FILENAME | SOURCE_HAS_ARGV | SOURCE_HAS_CWD), 0);
	assert_true(ev.argv_truncated);
	assert_string_equal(ev.filename, "");
	assert_string_equal(ev.cwd, "");

	/* cwd bytes without the flag that says they are a cwd are not one. */
	n = make_exec(&r, "/bin/x", "x", 2, "/tmp");
	r.h.flags &= ~DE_BPF_F_HAS_CWD;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.has & SOURCE_HAS_CWD, 0);
}

static void
test_full_argv_and_unterminated_strings(void **state)
{
	static struct rec r;
	static char argv[DE_BPF_ARGV_MAX];
	size_t n;

	(void)state;
	memset(argv, 'a', sizeof(argv));
	n = make_exec(&r, "/bin/x", argv, sizeof(argv), "/");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.argv_len, sizeof(argv));
	assert_memory_equal(ev.argv, argv, sizeof(argv));

	/* A filename whose last byte is not NUL is still terminated. */
	n = make_exec(&r, "/bin/xyz", "x", 2, NULL);
	r.data[r.h.filename_len - 1] = 'Q';
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/bin/xyz");
}

static void
test_relative_filename_is_joined_with_cwd(void **state)
{
	static struct rec r;
	size_t n;

	(void)state;
	n = make_exec(&r, "./bin/tool", "t", 2, "/srv/app");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/srv/app/bin/tool");
	n = make_exec(&r, "tool", "t", 2, "/");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/tool");
	/* Without a cwd it stays as exec'd. */
	n = make_exec(&r, "./tool", "t", 2, NULL);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "./tool");
}

static void
test_fork_and_exit_records(void **state)
{
	static struct rec r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.h.kind = DE_BPF_EV_FORK;
	r.h.tgid = r.h.pid = 77;
	r.h.ppid = 76;
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_FORK);
	assert_int_equal(ev.has & (SOURCE_HAS_EXIT_CODE | SOURCE_HAS_ARGV | SOURCE_HAS_FILENAME),
	                 0);
	assert_int_equal(ev.ppid, 76);

	r.h.kind = DE_BPF_EV_EXIT;
	r.h.exit_code = 7 << 8;
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_EXIT);
	assert_true(ev.has & SOURCE_HAS_EXIT_CODE);
	assert_int_equal(ev.exit_code, 7 << 8);
	assert_int_equal(ev.argv_len, 0);

	r.h.kind = DE_BPF_EV_COMM;
	memcpy(r.h.comm, "kworker/0:1", 12);
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_COMM);
	assert_string_equal(ev.comm, "kworker/0:1");
	assert_int_equal(ev.has & SOURCE_HAS_EXIT_CODE, 0);
}

static void
test_malformed_records_are_rejected(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/bin/x", "x", 2, "/tmp");

	(void)state;
	assert_int_equal(bpf_event_decode(NULL, n, &ev), -EBADMSG);
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h) - 1, &ev), -EBADMSG);
	/* The lengths claim more than the record holds. */
	assert_int_equal(bpf_event_decode(&r, n - 1, &ev), -EBADMSG);
	r.h.argv_len = 0xffff;
	assert_int_equal(bpf_event_decode(&r, sizeof(r), &ev), -EBADMSG);
	n = make_exec(&r, "/bin/x", "x", 2, NULL);
	r.h.kind = 99;
	assert_int_equal(bpf_event_decode(&r, n, &ev), -EBADMSG);
	r.h.kind = 0;
	assert_int_equal(bpf_event_decode(&r, n, &ev), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_record_decodes_every_field),
		cmocka_unit_test(test_flags_and_missing_parts),
		cmocka_unit_test(test_full_argv_and_unterminated_strings),
		cmocka_unit_test(test_relative_filename_is_joined_with_cwd),
		cmocka_unit_test(test_fork_and_exit_records),
		cmocka_unit_test(test_malformed_records_are_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
