#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crc32c.h"

/* RFC 3720 appendix B.4 and the common check value. */
static void
test_known_vectors(void **state)
{
	unsigned char zeros[32] = { 0 }, ones[32], inc[32];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (unsigned char)i;
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(crc32c(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(crc32c(0, "", 0), 0u);
}

static void
test_incremental_and_sw_agree(void **state)
{
	unsigned char buf[1031];
	uint32_t whole, parts;

	(void)state;
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rand();
	whole = crc32c(0, buf, sizeof(buf));
	parts = crc32c(crc32c(crc32c(0, buf, 3), buf + 3, 500), buf + 503, sizeof(buf) - 503);
	assert_int_equal(whole, parts);
	for (size_t off = 0; off < 9; off++)
		assert_int_equal(crc32c(0, buf + off, sizeof(buf) - off),
		                 crc32c_sw(0, buf + off, sizeof(buf) - off));
	buf[100] ^= 1;
	assert_int_not_equal(whole, crc32c(0, buf, sizeof(buf)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_incremental_and_sw_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
