/* Fuzzes the /proc/PID/stat parser: any bytes, never a crash, and a parsed
 * comm always lies inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfs_stat st;

	if (procfs_parse_stat((const char *)data, size, &st) == 0) {
		if (st.comm_len >= sizeof(st.comm) || st.pid <= 0)
			abort();
	}
	return 0;
}
