/* Replays every file of a corpus directory through a fuzz target's
 * LLVMFuzzerTestOneInput, so each corpus runs as an ordinary test (and under
 * the sanitizer build). Exits 0 when every input was processed. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20)

int
main(int argc, char **argv)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int dfd, n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) == NULL) {
		perror(argv[1]);
		return 1;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;

		if (de->d_name[0] == '.')
			continue;
		if (read_file_at(dfd, de->d_name, REPLAY_MAX_INPUT, true, &buf, &len) < 0) {
			fprintf(stderr, "%s/%s: cannot read\n", argv[1], de->d_name);
			return 1;
		}
		(void)LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		n++;
	}
	printf("replayed %d inputs from %s\n", n, argv[1]);
	return n > 0 ? 0 : 1;
}
