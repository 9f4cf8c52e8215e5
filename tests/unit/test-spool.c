/* The on-disk spool: order, acknowledgement across reopen, the size bound,
 * segment roll-over, torn tails and corrupt records. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/spool.h"
#include "crc32c.h"

static char tmpl[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpl, sizeof(tmpl), "/tmp/test-spool-XXXXXX");
	if (mkdtemp(tmpl) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
	return system(cmd) == 0 ? 0 : -1;
}

static void
spool_path(char *buf, size_t n)
{
	snprintf(buf, n, "%s/sp", tmpl);
}

static void
append_n(struct spool *s, int from, int to)
{
	char rec[64];

	for (int i = from; i < to; i++) {
		int n = snprintf(rec, sizeof(rec), "record-%d", i);

		assert_int_equal(spool_append(s, rec, (size_t)n), 0);
	}
}

/* Peeks, checks and acknowledges records from..to-1. */
static void
expect_n(struct spool *s, int from, int to)
{
	char want[64];

	for (int i = from; i < to; i++) {
		char *got = NULL;
		size_t len = 0;

		snprintf(want, sizeof(want), "record-%d", i);
		assert_int_equal(spool_peek(s, &got, &len), 1);
		assert_string_equal(got, want);
		assert_int_equal(len, strlen(want));
		free(got);
		assert_int_equal(spool_ack(s), 0);
	}
}

static void
test_order_and_ack(void **state)
{
	struct spool *s = NULL;
	char dir[128], *got = NULL;
	size_t len;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_peek(s, &got, &len), 0);
	assert_int_equal(spool_ack(s), -ENOENT);
	append_n(s, 0, 10);
	assert_int_equal(spool_pending(s), 10);
	/* Peeking twice without an ack gives the same record. */
	assert_int_equal(spool_peek(s, &got, &len), 1);
	assert_string_equal(got, "record-0");
	free(got);
	expect_n(s, 0, 4);
	assert_int_equal(spool_pending(s), 6);
	spool_close(s);

	/* Reopen: the acknowledged records are gone, the rest come back in order. */
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_pending(s), 6);
	append_n(s, 10, 12);
	expect_n(s, 4, 12);
	assert_int_equal(spool_peek(s, &got, &len), 0);
	assert_int_equal(spool_pending(s), 0);
	/* Everything delivered: no segment left on disk. */
	assert_int_equal(spool_bytes(s), 0);
	spool_close(s);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_pending(s), 0);
	append_n(s, 20, 22);
	spool_close(s);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	expect_n(s, 20, 22);
	spool_close(s);
}

static void
test_bound(void **state)
{
	struct spool *s = NULL;
	char dir[128];
	int ok = 0, r;

	(void)state;
	spool_path(dir, sizeof(dir));
	/* 16-byte header + "record-N" (8-9 bytes): 1000 bytes hold 40 records. */
	assert_int_equal(spool_open(dir, 1000, &s), 0);
	for (int i = 0; i < 100; i++) {
		char rec[32];
		int n = snprintf(rec, sizeof(rec), "record-%d", i);

		if ((r = spool_append(s, rec, (size_t)n)) == 0)
			ok++;
		else
			assert_int_equal(r, -ENOSPC);
	}
	assert_in_range(ok, 39, 41);
	assert_true(spool_bytes(s) <= 1000);
	assert_int_equal(spool_pending(s), (uint64_t)ok);
	/* Draining everything frees the space again. */
	expect_n(s, 0, ok);
	assert_int_equal(spool_append(s, "record-0", 8), 0);
	assert_int_equal(spool_append(s, "x", SPOOL_RECORD_MAX + 1), -E2BIG);
	spool_close(s);
	assert_int_equal(spool_open(dir, 10, &s), -EINVAL);
}

static void
test_segments(void **state)
{
	struct spool *s = NULL;
	char dir[128], *big, *got = NULL;
	size_t len;

	(void)state;
	spool_path(dir, sizeof(dir));
	big = malloc(SPOOL_RECORD_MAX);
	assert_non_null(big);
	assert_int_equal(spool_open(dir, 64ull << 20, &s), 0);
	for (int i = 0; i < 10; i++) {
		memset(big, 'a' + i, SPOOL_RECORD_MAX);
		assert_int_equal(spool_append(s, big, SPOOL_RECORD_MAX), 0);
	}
	spool_close(s);
	assert_int_equal(spool_open(dir, 64ull << 20, &s), 0);
	assert_int_equal(spool_pending(s), 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(spool_peek(s, &got, &len), 1);
		assert_int_equal(len, SPOOL_RECORD_MAX);
		assert_int_equal(got[0], 'a' + i);
		assert_int_equal(got[len - 1], 'a' + i);
		free(got);
		assert_int_equal(spool_ack(s), 0);
		/* Finished segments are removed as soon as they are acknowledged. */
		assert_true(spool_bytes(s) <= (uint64_t)(11 - i) * (SPOOL_RECORD_MAX + 16));
	}
	assert_int_equal(spool_bytes(s), 0);
	spool_close(s);
	free(big);
}

static void
segment_file(char *buf, size_t n, int idx)
{
	snprintf(buf, n, "%s/sp/seg-%016x", tmpl, idx);
}

static void
test_torn_tail(void **state)
{
	struct spool *s = NULL;
	char dir[128], seg[160];
	struct stat st;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 5);
	spool_close(s);
	/* A crash in the middle of the last write. */
	segment_file(seg, sizeof(seg), 1);
	assert_int_equal(stat(seg, &st), 0);
	assert_int_equal(truncate(seg, st.st_size - 3), 0);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_pending(s), 4);
	assert_int_equal(spool_corrupt(s), 1);
	/* Appends continue after the cut, and come out in order. */
	append_n(s, 4, 6);
	expect_n(s, 0, 6);
	spool_close(s);
}

static void
test_corrupt_middle(void **state)
{
	struct spool *s = NULL;
	char dir[128], seg[160];
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 6); /* records of 24 bytes: record 2 starts at 48 */
	spool_close(s);
	segment_file(seg, sizeof(seg), 1);
	fd = open(seg, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 48 + 16 + 2), 1);
	close(fd);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	/* Records 0 and 1 survive; the tail segment is cut at the bad record. */
	assert_int_equal(spool_pending(s), 2);
	assert_int_equal(spool_corrupt(s), 1);
	expect_n(s, 0, 2);
	append_n(s, 7, 8);
	expect_n(s, 7, 8);
	spool_close(s);
}

static void
test_corrupt_ack_file(void **state)
{
	struct spool *s = NULL;
	char dir[128], ack[160];
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 4);
	expect_n(s, 0, 2);
	spool_close(s);
	/* A damaged ack pointer replays from the start: at least once, never lost. */
	snprintf(ack, sizeof(ack), "%s/ack", dir);
	fd = open(ack, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff", 1, 3), 1);
	close(fd);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_pending(s), 4);
	expect_n(s, 0, 4);
	spool_close(s);
}

/* Writes an ack pointer {segment, offset, crc32c} as the spool does. */
static void
write_ack(const char *dir, uint64_t seg, uint64_t off)
{
	unsigned char b[20];
	char path[160];
	uint32_t crc;
	int fd;

	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(seg >> (8 * i));
		b[8 + i] = (unsigned char)(off >> (8 * i));
	}
	crc = crc32c(0, b, 16);
	for (int i = 0; i < 4; i++)
		b[16 + i] = (unsigned char)(crc >> (8 * i));
	snprintf(path, sizeof(path), "%s/ack", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);
}

/* Refusals: a bound below one record, a record over the maximum, an ack
 * without a peek, a directory that cannot be made or is a file. */
static void
test_refusals(void **state)
{
	struct spool *s = NULL;
	char dir[128], file[160];
	char *big;
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 16, &s), -EINVAL);
	assert_null(s);
	snprintf(file, sizeof(file), "%s/no/such/dir", tmpl);
	assert_int_equal(spool_open(file, 1 << 20, &s), -ENOENT);
	snprintf(file, sizeof(file), "%s/plain", tmpl);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(spool_open(file, 1 << 20, &s), -ENOTDIR);
	assert_null(s);

	assert_int_equal(spool_open(dir, 4 * SPOOL_RECORD_MAX, &s), 0);
	big = calloc(1, SPOOL_RECORD_MAX + 1);
	assert_non_null(big);
	assert_int_equal(spool_append(s, big, SPOOL_RECORD_MAX + 1), -E2BIG);
	free(big);
	assert_int_equal(spool_pending(s), 0);
	assert_int_equal(spool_bytes(s), 0);
	assert_int_equal(spool_ack(s), -ENOENT);
	append_n(s, 0, 1);
	/* An ack without a fresh peek acknowledges nothing. */
	expect_n(s, 0, 1);
	assert_int_equal(spool_ack(s), -ENOENT);
	spool_close(s);
	spool_close(NULL);
}

/* Segments older than the ack pointer were delivered: opening removes them.
 * Files that only look like segments are left alone. */
static void
test_stale_segments(void **state)
{
	struct spool *s = NULL;
	char dir[128], seg0[160], seg1[160], odd[160], cmd[400];
	struct stat st;
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 3);
	expect_n(s, 0, 1);
	spool_close(s);
	/* Segment 0 is a leftover from before the acknowledged segment 1. */
	segment_file(seg0, sizeof(seg0), 0);
	segment_file(seg1, sizeof(seg1), 1);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", seg1, seg0);
	assert_int_equal(system(cmd), 0);
	snprintf(odd, sizeof(odd), "%s/seg-zzzzzzzzzzzzzzzz", dir);
	fd = open(odd, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(stat(seg0, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(odd, &st), 0);
	assert_int_equal(spool_pending(s), 2);
	assert_int_equal(spool_corrupt(s), 0);
	expect_n(s, 1, 3);
	spool_close(s);
}

/* An ack pointer past the end of its segment (the segment shrank): nothing
 * of that segment is replayed twice, and appends still work. */
static void
test_ack_past_end(void **state)
{
	struct spool *s = NULL;
	char dir[128];
	char *got = NULL;
	size_t len = 0;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 2);
	spool_close(s);
	write_ack(dir, 1, 100000);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_pending(s), 0);
	assert_int_equal(spool_peek(s, &got, &len), 0);
	assert_null(got);
	append_n(s, 5, 7);
	assert_int_equal(spool_pending(s), 2);
	expect_n(s, 5, 7);
	spool_close(s);
}

/* A record damaged on disk after the spool validated it: peek skips the rest
 * of that segment and counts what was lost. */
static void
test_corrupt_after_open(void **state)
{
	struct spool *s = NULL;
	char dir[128], seg[160];
	char *got = NULL;
	size_t len = 0;
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	append_n(s, 0, 4); /* 24-byte records: record 1 starts at 24 */
	expect_n(s, 0, 1);
	segment_file(seg, sizeof(seg), 1);
	fd = open(seg, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 24 + 16 + 1), 1);
	close(fd);
	assert_int_equal(spool_peek(s, &got, &len), 0);
	assert_null(got);
	assert_int_equal(spool_pending(s), 0);
	assert_int_equal(spool_corrupt(s), 3);
	spool_close(s);
}

/* The "delivered" marker: none at first, kept across reopen, bounded, a
 * corrupt file is told apart; a deferred-sync batch is readable and kept. */
static void
test_marker(void **state)
{
	struct spool *s = NULL;
	char dir[128], path[160], buf[SPOOL_MARK_MAX], big[SPOOL_MARK_MAX + 1];
	int fd;

	(void)state;
	spool_path(dir, sizeof(dir));
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_mark_read(s, buf, sizeof(buf)), 0);
	assert_int_equal(spool_mark_sync(s), 0);
	assert_int_equal(spool_mark_write(s, ""), 0);
	assert_int_equal(spool_mark_read(s, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	assert_int_equal(spool_mark_write(s, "0192f6c1-0000-7000-8000-000000000001"), 0);
	assert_int_equal(spool_mark_sync(s), 0);
	memset(big, 'x', SPOOL_MARK_MAX);
	big[SPOOL_MARK_MAX] = '\0';
	assert_int_equal(spool_mark_write(s, big), -E2BIG);
	assert_int_equal(spool_mark_read(s, buf, 8), -ENOSPC);
	spool_defer_sync(s, true);
	append_n(s, 0, 3);
	spool_defer_sync(s, false);
	assert_int_equal(spool_sync(s), 0);
	assert_int_equal(spool_sync(s), 0); /* nothing left to sync */
	spool_close(s);

	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_mark_read(s, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "0192f6c1-0000-7000-8000-000000000001");
	assert_int_equal(spool_pending(s), 3);
	spool_close(s);

	/* One flipped byte in the field. */
	snprintf(path, sizeof(path), "%s/delivered", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "Z", 1, 20), 1);
	close(fd);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_mark_read(s, buf, sizeof(buf)), -EBADMSG);
	spool_close(s);
	/* Cut short. */
	assert_int_equal(truncate(path, 10), 0);
	assert_int_equal(spool_open(dir, 1 << 20, &s), 0);
	assert_int_equal(spool_mark_read(s, buf, sizeof(buf)), -EBADMSG);
	spool_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_ack_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_past_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_after_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
