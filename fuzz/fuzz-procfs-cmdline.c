/* Fuzzes the command-line path of procfs: raw NUL-separated argv (embedded
 * NULs, invalid UTF-8, secrets) to the command_line column, which must be
 * valid UTF-8, and the executable-link cleaner. */
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
	char *s = NULL, *link, *exe;
	bool del, memfd;

	if (size > PROC_CMDLINE_MAX)
		size = PROC_CMDLINE_MAX;
	if (procfs_sanitize_cmdline((const char *)data, size, &s) == 0) {
		if (!utf8_is_valid(s, strlen(s)))
			abort();
		free(s);
	}
	if ((link = strndup((const char *)data, size)) == NULL)
		return 0;
	if ((exe = procfs_clean_exe(link, &del, &memfd)) != NULL) {
		if (!utf8_is_valid(exe, strlen(exe)) || (memfd && !del))
			abort();
		free(exe);
	}
	free(link);
	return 0;
}
