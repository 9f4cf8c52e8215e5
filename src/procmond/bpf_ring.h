/* A consumer of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through its
 * memory mapping, as the kernel lays it out (Documentation/bpf/ringbuf.rst):
 * a consumer-position page user space writes, then a producer-position page
 * and the data pages, mapped twice in a row so a record that wraps reads as
 * one. Each record starts with an 8-byte header whose first word is its
 * length with the BUSY (still being written) and DISCARD bits; records are
 * 8-byte aligned. No system call: it works under any seccomp filter. */
#ifndef DE_PROCMOND_BPF_RING_H
#define DE_PROCMOND_BPF_RING_H

#include <stddef.h>
#include <stdint.h>

struct bpf_ring {
	unsigned long *cons_pos;       /* the consumer page */
	const unsigned long *prod_pos; /* the producer page */
	const uint8_t *data;           /* 2 * size bytes: the data, twice */
	size_t size;                   /* a power of 2 */
	uint64_t errors;               /* impossible lengths met */
};

/* Called per committed record; data is valid during the call only. */
typedef void (*bpf_ring_record_fn)(void *ctx, const void *data, size_t size);

/* Delivers every committed record in order, releasing each one's space to
 * the kernel as soon as fn returns, and stops at the first one still being
 * written. Returns the number delivered (discarded records not counted). */
int bpf_ring_consume(struct bpf_ring *r, bpf_ring_record_fn fn, void *ctx);

#endif
