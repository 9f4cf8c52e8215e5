/* Fuzzes the /proc/PID/cgroup parser and the container-id finder: the path
 * must come back valid UTF-8 and an id exactly 64 lowercase hex digits. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "procfs.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = NULL, id[65];

	if (procfs_parse_cgroup((const char *)data, size, &path, id) == 0) {
		if (path == NULL || !utf8_is_valid(path, strlen(path)))
			abort();
		if (id[0] != '\0') {
			if (strlen(id) != 64)
				abort();
			for (size_t i = 0; i < 64; i++)
				if (!isxdigit((unsigned char)id[i]) ||
				    isupper((unsigned char)id[i]))
					abort();
		}
		free(path);
	}
	return 0;
}
