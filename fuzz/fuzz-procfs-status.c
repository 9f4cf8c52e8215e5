/* Fuzzes the /proc/PID/status parser (Uid/Gid/Threads lines). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfs_status st;

	if (procfs_parse_status((const char *)data, size, &st) == 0) {
		if (st.uid < 0 || st.uid > UINT32_MAX || st.euid > UINT32_MAX)
			abort();
	}
	return 0;
}
