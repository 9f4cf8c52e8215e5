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
	/* The largest value that fits is accepted; one more is not. */
	assert_int_equal(time_parse_duration("18446744073709551615ms", &ms), 0);
	assert_true(ms == UINT64_MAX);
	assert_int_equal(time_parse_duration("18446744073709551616ms", &ms), -ERANGE);
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

/* Every way a timestamp or duration can be malformed or out of range. */
static void
test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"2026/11/25T17:00:00Z",      "2026-11-25X17:00:00Z",
		"2026-11-25T17-00:00Z",      "2026-11-25T17:00:00.Z",
		"2026-11-25T17:00:00",       "2026-11-25T17:00:00Zx",
		"2026-13-25T17:00:00Z",      "2026-00-25T17:00:00Z",
		"2026-11-32T17:00:00Z",      "2026-11-25T24:00:00Z",
		"2026-11-25T17:60:00Z",      "2026-11-25T17:00:61Z",
		"2026-11-25T17:00:00+0100",  "2026-11-25T17:00:00+24:00",
		"2026-11-25T17:00:00+01:60", "1970-01-01T00:00:00+01:00",
		"202a-11-25T17:00:00Z",      "",
	};
	uint64_t ms = 42;
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (time_parse_rfc3339(bad[i], &ms) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
	}
	assert_int_equal(ms, 42); /* untouched on error */
	/* Lower-case separators and zone, a space, a leap second, offsets. */
	assert_int_equal(time_parse_rfc3339("2026-11-25t17:00:00.5z", &ms), 0);
	assert_int_equal(ms, 1795626000500ull);
	assert_int_equal(time_parse_rfc3339("2026-11-25 18:30:00.123456+01:30", &ms), 0);
	assert_int_equal(ms, 1795626000123ull);
	assert_int_equal(time_parse_rfc3339("2026-11-25T16:00:00-01:00", &ms), 0);
	assert_int_equal(ms, 1795626000000ull);

	/* Formatting: beyond year 9999, and a buffer too small. */
	assert_int_equal(time_format_rfc3339_ms(253402300800000ull, buf, sizeof(buf)), -EOVERFLOW);
	assert_int_equal(time_format_rfc3339_ms(253402300799999ull, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "9999-12-31T23:59:59.999Z");
	assert_int_equal(time_format_rfc3339_ms(0, buf, 24), -ENOSPC);
	assert_int_equal(time_format_rfc3339_ms(0, buf, 25), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");

	ms = 42;
	assert_int_equal(time_parse_duration("", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("m", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("5", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("5w", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("5 m", &ms), -EINVAL);
	assert_int_equal(time_parse_duration("99999999999999999999ms", &ms), -ERANGE);
	assert_int_equal(time_parse_duration("1000000000000000d", &ms), -ERANGE);
	assert_int_equal(ms, 42);
	assert_int_equal(time_parse_duration("1844674407370955161ms", &ms), 0);
	assert_true(ms == 1844674407370955161ull);
	assert_int_equal(time_parse_duration("213503982334d", &ms), 0);
	assert_true(ms == 213503982334ull * 86400000ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),       cmocka_unit_test(test_parse_roundtrip),
		cmocka_unit_test(test_duration),     cmocka_unit_test(test_clocks_move),
		cmocka_unit_test(test_parse_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
