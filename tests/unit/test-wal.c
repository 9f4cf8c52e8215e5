#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procmond/wal.h"

struct collect {
	uint64_t seqs[4096];
	size_t n;
	bool payload_ok;
};

static int
collect_cb(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct collect *c = ctx;
	char want[64];

	snprintf(want, sizeof(want), "event-%llu", (unsigned long long)seq);
	if (len != strlen(want) || memcmp(payload, want, len) != 0)
		c->payload_ok = false;
	if (c->n < 4096)
		c->seqs[c->n++] = seq;
	return 0;
}

static char *
make_dir(void)
{
	char tmpl[] = "/tmp/test-wal-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static void
rm_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];

	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

static void
append_n(struct wal *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t seq = wal_next_seq(w);
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "event-%llu", (unsigned long long)seq);

		assert_int_equal(wal_append(w, seq, buf, (size_t)len), 0);
	}
}

static size_t
read_all(struct wal *w, uint64_t from, struct collect *c)
{
	int r;

	c->n = 0;
	c->payload_ok = true;
	while ((r = wal_read(w, from, 100, 1 << 20, collect_cb, c)) > 0)
		from = c->seqs[c->n - 1] + 1;
	assert_true(r >= 0);
	assert_true(c->payload_ok);
	return c->n;
}

static int
count_wal_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".wal") != NULL)
			n++;
	if (d)
		closedir(d);
	return n;
}

static void
test_append_replay_across_restart(void **state)
{
	char *dir = make_dir();
	struct wal *w = NULL;
	struct collect c;

	(void)state;
	assert_int_equal(wal_open(dir, 0, &w), 0);
	assert_int_equal(wal_next_seq(w), 1);
	append_n(w, 50);
	assert_int_equal(wal_append(w, 7, "x", 1), -EINVAL); /* not the next seq */
	wal_close(w);

	assert_int_equal(wal_open(dir, 0, &w), 0);
	assert_int_equal(wal_next_seq(w), 51); /* monotonic across restarts */
	assert_int_equal(read_all(w, 1, &c), 50);
	for (size_t i = 0; i < 50; i++)
		assert_int_equal(c.seqs[i], i + 1);
	assert_int_equal(read_all(w, 40, &c), 11);
	assert_int_equal(c.seqs[0], 40);
	wal_close(w);
	rm_dir(dir);
}

static void
test_rotation_and_ack_trimming(void **state)
{
	char *dir = make_dir();
	struct wal *w = NULL;
	struct wal_stats st;
	struct collect c;
	int files;

	(void)state;
	assert_int_equal(wal_open(dir, 256, &w), 0); /* ~8 records per file */
	append_n(w, 100);
	files = count_wal_files(dir);
	assert_true(files > 5);
	assert_int_equal(read_all(w, 1, &c), 100);
	/* Nothing acknowledged past the first file: nothing deleted. */
	assert_int_equal(wal_ack(w, 1), 0);
	assert_int_equal(count_wal_files(dir), files);
	assert_true(wal_ack(w, 60) > 0);
	assert_true(count_wal_files(dir) < files);
	wal_get_stats(w, &st);
	assert_true(st.first_seq <= 61);
	assert_int_equal(st.last_seq, 100);
	assert_int_equal(read_all(w, 61, &c), 40);
	/* Acknowledging everything keeps the file being appended to. */
	wal_ack(w, 100);
	assert_int_equal(count_wal_files(dir), 1);
	wal_close(w);

	assert_int_equal(wal_open(dir, 256, &w), 0);
	assert_true(wal_next_seq(w) == 101);
	append_n(w, 3);
	assert_int_equal(read_all(w, 101, &c), 3);
	wal_close(w);
	rm_dir(dir);
}

static void
corrupt_byte(const char *dir, const char *name, off_t from_end)
{
	char p[512];
	struct stat st;
	int fd;
	unsigned char b;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pread(fd, &b, 1, st.st_size - from_end), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, st.st_size - from_end), 1);
	close(fd);
}

static void
test_corrupt_tail_skipped(void **state)
{
	char *dir = make_dir();
	struct wal *w = NULL;
	struct wal_stats st;
	struct collect c;

	(void)state;
	assert_int_equal(wal_open(dir, 0, &w), 0);
	append_n(w, 20);
	wal_close(w);
	corrupt_byte(dir, "procmond-00001.wal", 2); /* inside the last record */

	assert_int_equal(wal_open(dir, 0, &w), 0);
	wal_get_stats(w, &st);
	assert_true(st.corrupt_bytes > 0);
	assert_int_equal(st.corrupt_files, 1);
	assert_int_equal(read_all(w, 1, &c), 19); /* the 19 before it survive */
	/* The bad tail was cut: the next record follows the last good one. */
	assert_int_equal(wal_next_seq(w), 20);
	append_n(w, 2);
	wal_close(w);

	assert_int_equal(wal_open(dir, 0, &w), 0);
	wal_get_stats(w, &st);
	assert_int_equal(st.corrupt_bytes, 0);
	assert_int_equal(read_all(w, 1, &c), 21);
	wal_close(w);
	rm_dir(dir);
}

static void
test_truncated_tail_and_garbage(void **state)
{
	char *dir = make_dir(), p[512];
	struct wal *w = NULL;
	struct collect c;
	int fd;

	(void)state;
	assert_int_equal(wal_open(dir, 0, &w), 0);
	append_n(w, 5);
	wal_close(w);
	/* A crash in the middle of a write leaves half a record. */
	snprintf(p, sizeof(p), "%s/procmond-00001.wal", dir);
	fd = open(p, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x20\x00\x00\x00garbage", 11), 11);
	close(fd);
	assert_int_equal(wal_open(dir, 0, &w), 0);
	assert_int_equal(read_all(w, 1, &c), 5);
	assert_int_equal(wal_next_seq(w), 6);
	wal_close(w);
	rm_dir(dir);
}

static void
test_lock_excludes_second_writer(void **state)
{
	char *dir = make_dir();
	struct wal *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(wal_open(dir, 0, &a), 0);
	/* flock is per open file description: a second open in-process conflicts too. */
	assert_int_equal(wal_open(dir, 0, &b), -EBUSY);
	assert_null(b);
	wal_close(a);
	assert_int_equal(wal_open(dir, 0, &b), 0);
	wal_close(b);
	rm_dir(dir);
}

static void
test_bump_and_parse_buffer(void **state)
{
	uint8_t buf[256];
	uint8_t hdr[WAL_RECORD_HEADER];
	uint64_t last = 0;
	char *dir = make_dir();
	struct wal *w = NULL;

	(void)state;
	wal_record_header(5, "abc", 3, hdr);
	memcpy(buf, hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), "abc", 3);
	wal_record_header(4, "d", 1, hdr); /* seq going backwards: invalid */
	memcpy(buf + 19, hdr, sizeof(hdr));
	buf[19 + sizeof(hdr)] = 'd';
	assert_int_equal(wal_parse_buffer(buf, 19 + 17, 0, NULL, NULL, &last), 19);
	assert_int_equal(last, 5);
	assert_int_equal(wal_parse_buffer(buf, 10, 0, NULL, NULL, &last), 0);

	assert_int_equal(wal_open(dir, 0, &w), 0);
	wal_bump_seq(w, 1000);
	assert_int_equal(wal_next_seq(w), 1000);
	wal_bump_seq(w, 10);
	assert_int_equal(wal_next_seq(w), 1000);
	assert_int_equal(wal_append(w, 1000, "x", 1), 0);
	assert_int_equal(wal_sync(w), 0);
	wal_close(w);
	rm_dir(dir);
}

static off_t
wal_file_size(const char *dir)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/procmond-00001.wal", dir);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Appends gather in memory; one flush writes them all; a read, a sync and
 * a close flush first; a record too big for the buffer is written at once. */
static void
test_appends_gather_until_flush(void **state)
{
	char *dir = make_dir();
	struct collect *c = calloc(1, sizeof(*c));
	struct wal *w = NULL;
	static char big[80 * 1024];
	off_t size;

	(void)state;
	assert_non_null(c);
	assert_int_equal(wal_open(dir, 0, &w), 0);
	append_n(w, 3);
	assert_int_equal(wal_file_size(dir), 0); /* not written yet */
	assert_int_equal(wal_flush(w), 0);
	size = wal_file_size(dir);
	assert_true(size > 3 * WAL_RECORD_HEADER);
	assert_int_equal(wal_flush(w), 0); /* nothing more to write */
	assert_int_equal(wal_file_size(dir), size);

	append_n(w, 2);
	assert_int_equal(read_all(w, 1, c), 5); /* the reader sees its own tail */
	assert_true(wal_file_size(dir) > size);

	append_n(w, 1);
	size = wal_file_size(dir);
	assert_int_equal(wal_sync(w), 0);
	assert_true(wal_file_size(dir) > size);

	/* Larger than the buffer: straight to the file, after what was pending. */
	append_n(w, 1);
	memset(big, 'b', sizeof(big));
	size = wal_file_size(dir);
	assert_int_equal(wal_append(w, 8, big, sizeof(big)), 0);
	assert_true(wal_file_size(dir) >= size + (off_t)sizeof(big));
	append_n(w, 1); /* seq 9: pending at close */
	wal_close(w);

	/* Everything survived the restart, in order. */
	assert_int_equal(wal_open(dir, 0, &w), 0);
	assert_int_equal(wal_next_seq(w), 10);
	c->n = 0;
	assert_int_equal(wal_read(w, 9, 10, 1 << 20, collect_cb, c), 1);
	assert_int_equal(c->seqs[0], 9);
	wal_close(w);
	free(c);
	rm_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_replay_across_restart),
		cmocka_unit_test(test_rotation_and_ack_trimming),
		cmocka_unit_test(test_corrupt_tail_skipped),
		cmocka_unit_test(test_truncated_tail_and_garbage),
		cmocka_unit_test(test_lock_excludes_second_writer),
		cmocka_unit_test(test_bump_and_parse_buffer),
		cmocka_unit_test(test_appends_gather_until_flush),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
