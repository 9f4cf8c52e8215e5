/* Fuzzes the WAL reader procmond runs on start over whatever a crash (or an
 * attacker with write access to the WAL directory) left on disk: the valid
 * prefix must be found without reading out of bounds, and each valid record
 * body is decoded as a process event the way the publisher does. */
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "procmond/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
record_cb(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct process_event e;

	(void)ctx;
	(void)seq;
	if (ipc_event_unpack(payload, len, &e) == 0)
		process_event_clear(&e);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t last = 0;
	size_t valid = wal_parse_buffer(data, size, 0, record_cb, NULL, &last);

	if (valid > size)
		__builtin_trap();
	return 0;
}
