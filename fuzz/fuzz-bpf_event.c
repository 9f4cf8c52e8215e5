/* Fuzzes the decoder of the eBPF ring-buffer records (bpf_event.c): any
 * bytes, never a crash or an out-of-bounds read, and a decoded event always
 * has terminated strings and an argv that fits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpf_event.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct source_event ev;
	/* The ring buffer hands records over 8-byte aligned, and exactly sized:
	 * a heap copy of exactly size bytes lets ASan see any overread. */
	void *rec = malloc(size > 0 ? size : 1);

	if (rec == NULL)
		return 0;
	memcpy(rec, data, size);
	if (bpf_event_decode(rec, size, &ev) == 0) {
		if (ev.kind > SOURCE_EV_COMM || ev.argv_len > sizeof(ev.argv) ||
		    memchr(ev.filename, '\0', sizeof(ev.filename)) == NULL ||
		    memchr(ev.cwd, '\0', sizeof(ev.cwd)) == NULL ||
		    memchr(ev.comm, '\0', sizeof(ev.comm)) == NULL)
			abort();
	}
	free(rec);
	return 0;
}
