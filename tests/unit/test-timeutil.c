#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "timeutil.h"

static void
test_format(void **state)
{
	char buf[40];

	(void)state;
	assert_int_equal(time_format_rfc3339_ms(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	assert_int_equal(time_format_rfc3339_ms(1795626000123ull, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-25T17:00:00.123Z");
	assert_int_equal(time_format_rfc3339_ms(0, buf, 10), -ENOSPC);
	assert_int_equal(time_format_rfc3339_ms(UINT64_MAX, buf, sizeof(buf)), -EOVERFLOW);
}

static void
test_parse_roundtrip(void **state)
{
	uint64_t ms;

	(void)state;
	assert_int_equal(time_parse_rfc3339("2026-11-25T17:00:00.123Z", &ms), 0);
	assert_int_equal(ms, 1795626000123ull);
	assert_int_equal(time_parse_rfc3339("2026-11-25T19:00:00+02:00", &ms), 0);
	assert_int_equal(ms, 1795626000000ull);
	assert_int_equal(time_parse_rfc3339("2026-11-25", &ms), -EINVAL);
	assert_int_equal(time_parse_rfc3339("2026-13-25T17:00:00Z", &ms), -EINVAL);
	assert_int_equal(time_parse_rfc3339("2026-11-25T17:00:00Zjunk", &ms), -EINVAL);
}

static void
test_duration(void **state)
{
	uint64_t ms;

	(void)state;
	assert_int_equal(time_parse_duration("10m", &ms), 0);
	assert_int_equal(ms, 600000);
	assert_int_equal(time_parse_duration("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(time_parse_duration("7d", &ms), 0);
	assert_int_equal(ms, 604800000);
	assert_int_equal(time_parse_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(time_parse_duration("5", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("m", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("-1h", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("99999999999999999999d", &ms), -ERANGE);
}

static void
test_clocks_move(void **state)
{
	uint64_t a = time_mono_ns(), b;

	(void)state;
	b = time_mono_ns();
	assert_true(b >= a);
	assert_true(time_now_ms() > 1600000000000ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse_roundtrip),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_clocks_move),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
