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
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "errbuf.h"
#include "util.h"

static void
test_strlcpy(void **state)
{
	char b[5];

	(void)state;
	assert_int_equal(de_strlcpy(b, "abc", sizeof(b)), 3);
	assert_string_equal(b, "abc");
	assert_int_equal(de_strlcpy(b, "abcdefgh", sizeof(b)), 8);
	assert_string_equal(b, "abcd");
}

static void
test_parse(void **state)
{
	uint64_t u;
	int64_t i;
	int n;

	(void)state;
	assert_int_equal(parse_u64("18446744073709551615", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", &u), -ERANGE);
	assert_int_equal(parse_u64("", &u), -EINVAL);
	assert_int_equal(parse_u64("12a", &u), -EINVAL);
	assert_int_equal(parse_u64(" 1", &u), -EINVAL);
	assert_int_equal(parse_i64("-9223372036854775808", &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(parse_i64("9223372036854775808", &i), -ERANGE);
	assert_int_equal(parse_int("-42", &n), 0);
	assert_int_equal(n, -42);
	assert_int_equal(parse_int("2147483648", &n), -ERANGE);
}

static void
test_read_file(void **state)
{
	char path[] = "/tmp/de-test-util-XXXXXX";
	_cleanup_close_ int fd = mkstemp(path);
	_cleanup_free_ char *buf = NULL;
	char *small = NULL;
	size_t len = 0;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "hello world", 11), 0);
	assert_int_equal(read_file_at(AT_FDCWD, path, 100, false, &buf, &len), 0);
	assert_int_equal(len, 11);
	assert_string_equal(buf, "hello world");
	assert_int_equal(read_file_at(AT_FDCWD, path, 5, false, &small, &len), -EFBIG);
	assert_null(small);
	assert_int_equal(read_file_at(AT_FDCWD, path, 5, true, &small, &len), 1);
	assert_string_equal(small, "hello");
	free(small);
	assert_int_equal(read_file_at(AT_FDCWD, "/nonexistent/x", 5, true, &small, &len), -ENOENT);
	unlink(path);
}

static void
test_utf8(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL;

	(void)state;
	assert_true(utf8_is_valid("h\xc3\xa9llo", 6));
	assert_false(utf8_is_valid("bad\xff", 4));
	assert_false(utf8_is_valid("\xc0\xaf", 2));     /* overlong '/' */
	assert_false(utf8_is_valid("\xed\xa0\x80", 3)); /* surrogate */
	a = utf8_sanitize_dup("a\xffz\xe2\x82", 5);
	assert_string_equal(a, "a?z??");
	b = utf8_sanitize_dup("\xe2\x82\xac", 3);
	assert_string_equal(b, "\xe2\x82\xac");
}

static void
test_errbuf(void **state)
{
	struct errbuf e = { { 0 } };

	(void)state;
	errbuf_set(&e, "bad key '%s'", "x");
	errbuf_prefix(&e, "%s:%d", "f.yaml", 3);
	assert_string_equal(e.msg, "f.yaml:3: bad key 'x'");
	errbuf_set(NULL, "ignored");
}

static void
test_hex(void **state)
{
	char out[7];

	(void)state;
	hex_encode((const unsigned char *)"\x00\xab\xff", 3, out);
	assert_string_equal(out, "00abff");
}

/* Edges of the integer parsers, file reading and writing errors, NUL in
 * UTF-8, a NULL errbuf. */
static void
test_edges(void **state)
{
	int64_t i64 = 7;
	int i = 7, fd;
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(parse_i64("-9223372036854775808", &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(parse_i64("-9223372036854775809", &i64), -ERANGE);
	assert_int_equal(parse_i64("9223372036854775808", &i64), -ERANGE);
	assert_int_equal(parse_i64("-", &i64), -EINVAL);
	assert_int_equal(parse_i64("--1", &i64), -EINVAL);
	assert_true(i64 == INT64_MIN); /* untouched on error */
	assert_int_equal(parse_int("-2147483648", &i), 0);
	assert_int_equal(i, -2147483647 - 1);
	assert_int_equal(parse_int("2147483648", &i), -ERANGE);
	assert_int_equal(parse_int("-2147483649", &i), -ERANGE);
	assert_int_equal(parse_int("x", &i), -EINVAL);
	assert_int_equal(i, -2147483647 - 1);

	/* A directory opens but cannot be read. */
	assert_int_equal(read_file_at(AT_FDCWD, "/", 1024, false, &buf, &len), -EISDIR);
	assert_null(buf);
	assert_int_equal(read_file_at(AT_FDCWD, "/nonexistent/x", 1024, false, &buf, &len),
	                 -ENOENT);
	/* Writing to a descriptor opened for reading. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, "x", 1), -EBADF);
	close(fd);
	assert_int_equal(write_all(-1, "x", 1), -EBADF);

	/* NUL is never valid text here, and is replaced when sanitizing. */
	assert_false(utf8_is_valid("a\0b", 3));
	buf = utf8_sanitize_dup("a\0b", 3);
	assert_non_null(buf);
	assert_memory_equal(buf, "a?b", 4);
	free(buf);

	errbuf_set(NULL, "ignored %d", 1);
	errbuf_prefix(NULL, "ignored %d", 2);
}

/* self_dir: the directory this test program runs from, which holds it. */
static void
test_self_dir(void **state)
{
	char dir[PATH_MAX], self[PATH_MAX], small[4];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	(void)state;
	assert_true(len > 0);
	self[len] = '\0';
	assert_int_equal(self_dir(dir, sizeof(dir)), 0);
	assert_true(dir[0] == '/');
	assert_int_equal(strncmp(self, dir, strlen(dir)), 0);
	assert_string_equal(self + strlen(dir), strrchr(self, '/'));
	assert_int_equal(access(dir, X_OK), 0);
	assert_int_equal(self_dir(small, sizeof(small)), -ENAMETOOLONG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strlcpy),   cmocka_unit_test(test_parse),
		cmocka_unit_test(test_read_file), cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_edges),     cmocka_unit_test(test_errbuf),
		cmocka_unit_test(test_hex),       cmocka_unit_test(test_self_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
