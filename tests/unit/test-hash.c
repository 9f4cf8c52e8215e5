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
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "hash.h"
#include "util.h"

static int
temp_file(const void *data, size_t n, char path[64])
{
	int fd;

	snprintf(path, 64, "/tmp/de-test-hash-XXXXXX");
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -1;
	if (write_all(fd, data, n) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
sha256_hex(const void *data, size_t n, char hex[65])
{
	unsigned char md[32];
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(data, n, md, &len, EVP_sha256(), NULL), 1);
	hex_encode(md, 32, hex);
}

static void
test_known_vector_and_cache(void **state)
{
	struct hash_cache *hc = NULL;
	struct hash_stats st;
	char path[64], hex[65];
	_cleanup_close_ int fd = -1;

	(void)state;
	assert_int_equal(hash_cache_new(16, 0, &hc), 0);
	assert_true((fd = temp_file("abc", 3, path)) >= 0);
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), 0);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), 0);
	hash_cache_stats(hc, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.bytes_hashed, 3);
	/* A change of content (size, mtime, ctime) is a new key. */
	assert_int_equal(pwrite(fd, "abcd", 4, 0), 4);
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), 0);
	assert_string_equal(hex,
	                    "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
	unlink(path);
	hash_cache_free(hc);
}

static void
test_budget_defers_big_files(void **state)
{
	struct hash_cache *hc = NULL;
	size_t n = 100000;
	_cleanup_free_ unsigned char *big = malloc(n);
	char path[64], hex[65], want[65];
	_cleanup_close_ int fd = -1;
	int ticks = 0, rc;

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7);
	sha256_hex(big, n, want);
	assert_int_equal(hash_cache_new(16, 16384, &hc), 0);
	assert_true((fd = temp_file(big, n, path)) >= 0);
	unlink(path); /* a deleted image still hashes through its fd */
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), -EINPROGRESS);
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), -EINPROGRESS);
	while ((rc = hash_cache_tick(hc)) == 0 && ticks < 100)
		ticks++;
	assert_int_equal(rc, 1);
	/* 100000 bytes at 16 KiB a tick: the work was spread, not done at once. */
	assert_true(ticks >= 5);
	assert_int_equal(hash_cache_get_fd(hc, fd, hex), 0);
	assert_string_equal(hex, want);
	hash_cache_free(hc);
}

static void
test_by_pid(void **state)
{
	struct hash_cache *hc = NULL;
	_cleanup_close_ int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	char hex[65], want[65];

	(void)state;
	assert_true(proc >= 0);
	assert_true(read_file_at(AT_FDCWD, "/proc/self/exe", 1u << 30, false, &data, &len) == 0);
	sha256_hex(data, len, want);
	assert_int_equal(hash_cache_new(0, 0, &hc), 0);
	assert_int_equal(hash_cache_get(hc, proc, getpid(), hex), 0);
	assert_string_equal(hex, want);
	assert_int_equal(hash_cache_get(hc, proc, 0x7ffffff0, hex), -ESRCH);
	hash_cache_free(hc);
}

/* A key handed in (procfs's stat of /proc/PID/exe): a hit reads nothing; a
 * stale key is not trusted on a miss, the opened image is keyed and hashed;
 * not a regular file is refused. */
static void
test_by_given_stat(void **state)
{
	struct hash_cache *hc = NULL;
	_cleanup_close_ int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_free_ char *data = NULL;
	struct hash_stats st;
	struct stat sb, stale;
	size_t len = 0;
	char hex[65], want[65];

	(void)state;
	assert_true(proc >= 0);
	assert_true(read_file_at(AT_FDCWD, "/proc/self/exe", 1u << 30, false, &data, &len) == 0);
	sha256_hex(data, len, want);
	assert_int_equal(fstatat(proc, "self/exe", &sb, 0), 0);
	assert_int_equal(hash_cache_new(0, 0, &hc), 0);
	stale = sb;
	stale.st_mtim.tv_sec ^= 1;
	assert_int_equal(hash_cache_get_stat(hc, &stale, proc, getpid(), hex), 0);
	assert_string_equal(hex, want);
	hash_cache_stats(hc, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.bytes_hashed, len);
	/* Cached under the image's real key, not the stale one. */
	assert_int_equal(hash_cache_get_stat(hc, &sb, proc, 0x7ffffff0, hex), 0);
	assert_string_equal(hex, want);
	hash_cache_stats(hc, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.bytes_hashed, len);
	assert_int_equal(fstat(proc, &sb), 0);
	assert_int_equal(hash_cache_get_stat(hc, &sb, proc, getpid(), hex), -EINVAL);
	hash_cache_free(hc);
}

static void
test_eviction_bounded(void **state)
{
	struct hash_cache *hc = NULL;
	struct hash_stats st;
	char path[64], hex[65];

	(void)state;
	assert_int_equal(hash_cache_new(4, 0, &hc), 0);
	for (int i = 0; i < 20; i++) {
		char body[16];
		int fd;

		snprintf(body, sizeof(body), "file %d", i);
		assert_true((fd = temp_file(body, strlen(body), path)) >= 0);
		assert_int_equal(hash_cache_get_fd(hc, fd, hex), 0);
		close(fd);
		unlink(path);
	}
	hash_cache_stats(hc, &st);
	assert_true(st.entries <= 4);
	assert_true(st.evictions >= 16);
	hash_cache_free(hc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vector_and_cache),
		cmocka_unit_test(test_budget_defers_big_files),
		cmocka_unit_test(test_by_pid),
		cmocka_unit_test(test_by_given_stat),
		cmocka_unit_test(test_eviction_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
