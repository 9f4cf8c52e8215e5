#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strlcpy),   cmocka_unit_test(test_parse),
		cmocka_unit_test(test_read_file), cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_errbuf),    cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
