/* A consumer of a BPF ring buffer through its mapping: see bpf_ring.h. */
#include "bpf_ring.h"

#include <limits.h>
#include <stdbool.h>

#include <linux/bpf.h>

int
bpf_ring_consume(struct bpf_ring *r, bpf_ring_record_fn fn, void *ctx)
{
	const uint32_t flags = BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT;
	unsigned long cons = __atomic_load_n(r->cons_pos, __ATOMIC_ACQUIRE);
	size_t mask = r->size - 1;
	bool progress;
	int n = 0;

	do {
		unsigned long prod = __atomic_load_n(r->prod_pos, __ATOMIC_ACQUIRE);

		progress = false;
		while (cons < prod) {
			const uint8_t *rec = r->data + (cons & mask);
			uint32_t len =
			    __atomic_load_n((const uint32_t *)(const void *)rec, __ATOMIC_ACQUIRE);
			uint32_t size = len & ~flags;

			if (len & BPF_RINGBUF_BUSY_BIT)
				return n; /* the producer is still writing it */
			if (size > r->size - BPF_RINGBUF_HDR_SZ) {
				/* Not from a kernel-written ring: count it and
				 * stop rather than read past the mapping. */
				r->errors++;
				return n;
			}
			cons += (size + BPF_RINGBUF_HDR_SZ + 7u) & ~7ul;
			if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
				fn(ctx, rec + BPF_RINGBUF_HDR_SZ, size);
				if (n < INT_MAX)
					n++;
			}
			__atomic_store_n(r->cons_pos, cons, __ATOMIC_RELEASE);
			progress = true;
		}
	} while (progress);
	return n;
}
