/* Fuzzes the alert spool's recovery over whatever a crash, a full disk or a
 * hostile writer left in a sink's spool directory: the input becomes the
 * first segment file (and, when it starts with 'A', its first 20 bytes the ack
 * file). Opening, replaying and acknowledging every record, then appending
 * and reading one more, must neither crash nor read out of bounds, and what
 * comes out must be whole records. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/spool.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static int
put_file(const char *name, const uint8_t *data, size_t size)
{
	char path[128];
	int fd, r;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	r = write_all(fd, data, size);
	close(fd);
	return r;
}

static void
clean_dir(void)
{
	static const char *const names[] = { "ack", "seg-0000000000000001", "seg-0000000000000002",
		                             "seg-0000000000000003" };
	char path[128];

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		(void)unlink(path);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool *s = NULL;
	char *rec = NULL;
	size_t len = 0;
	int n = 0;

	if (dir[0] == '\0') {
		(void)snprintf(dir, sizeof(dir), "/tmp/fuzz-spool-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
	}
	clean_dir();
	if (size >= 21 && data[0] == 'A') {
		if (put_file("ack", data + 1, 20) < 0)
			abort();
		data += 21;
		size -= 21;
	}
	if (put_file("seg-0000000000000001", data, size) < 0)
		abort();
	if (spool_open(dir, 8u << 20, &s) < 0)
		return 0;
	while (n++ < 100000 && spool_peek(s, &rec, &len) == 1) {
		if (strlen(rec) > len)
			__builtin_trap();
		free(rec);
		if (spool_ack(s) < 0)
			break;
	}
	if (spool_pending(s) != 0)
		__builtin_trap();
	if (spool_append(s, "{\"alert_id\":\"x\"}", 16) == 0) {
		if (spool_peek(s, &rec, &len) != 1 || len != 16 || memcmp(rec, "{\"alert_id\"", 11))
			__builtin_trap();
		free(rec);
	}
	spool_close(s);
	return 0;
}
