/* What procmond-bpf-loader (bpf_loader.c) hands procmond's eBPF source
 * (source_ebpf.c): one SOCK_SEQPACKET message on fd BPF_LOADER_FD, this
 * struct in the data and, on success, the kernel objects as SCM_RIGHTS
 * fds in the order below.
 *
 * Why a separate program: loading CO-RE programs takes libbpf, libelf and
 * zlib, and parsing the kernel's BTF peaks at ~17 MB of heap. Once the
 * programs are attached, all procmond needs is fds: the links hold the
 * attachment, the ring buffer and .bss are read through mmap. So the loader
 * does the loading and exits, and procmond never maps those libraries
 * (docs/ebpf.md, "The loader"). */
#ifndef DE_PROCMOND_BPF_LOADER_H
#define DE_PROCMOND_BPF_LOADER_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf_event.h"

#define BPF_LOADER_NAME  "procmond-bpf-loader"
#define BPF_LOADER_FD    3           /* the socket, in the loader */
#define BPF_LOADER_MAGIC 0x44454c32u /* "DEL2": bump when the struct changes */

/* The fds, in this order: */
enum {
	BPF_LOADER_FD_RING = 0, /* the BPF_MAP_TYPE_RINGBUF map */
	BPF_LOADER_FD_BSS,      /* .bss: drop_count, cgroup_moves (mmap read-only) */
	BPF_LOADER_FD_LINKS,    /* then nlinks link fds: closing them detaches */
	                        /* then iter snapshot iterator links: de_snap, de_snap_keys */
};
#define BPF_LOADER_MAX_LINKS 8
#define BPF_LOADER_MAX_ITERS 2
#define BPF_LOADER_MAX_FDS   (BPF_LOADER_FD_LINKS + BPF_LOADER_MAX_LINKS + BPF_LOADER_MAX_ITERS)

#define BPF_LOADER_NO_OFFSET UINT32_MAX

struct bpf_loader_msg {
	uint32_t magic;
	int32_t rc;         /* 0, or the -errno of the failure reason[] explains */
	uint32_t ring_size; /* data bytes of the ring buffer: a power of 2, pages */
	uint32_t bss_size;  /* value bytes of .bss */
	uint32_t drop_off;  /* byte offset of the u64 drop counter in .bss */
	uint32_t moves_off; /* of the cgroup migration counts, or BPF_LOADER_NO_OFFSET
	                     * when the cgroup programs are not attached */
	uint32_t nlinks;
	uint32_t iter;    /* snapshot iterator links after the others: de_snap, de_snap_keys */
	char reason[512]; /* rc < 0: why; rc == 0: a note for procmond's log, or "" */
};

/* Whether m, which came with nfds fds, describes objects procmond can map
 * with pages of page bytes: the fd count matches (iter 0 to 2), the ring is a power of
 * two of whole pages, and both counters lie inside .bss, 8-byte aligned.
 * Returns 0 or -EPROTO. */
static inline int
bpf_loader_msg_check(const struct bpf_loader_msg *m, size_t nfds, size_t page)
{
	uint64_t moves_end = m->moves_off == BPF_LOADER_NO_OFFSET
	                         ? 0
	                         : (uint64_t)m->moves_off + DE_BPF_MOVE_SLOTS * sizeof(uint64_t);

	if (m->magic != BPF_LOADER_MAGIC || m->rc != 0 || m->nlinks > BPF_LOADER_MAX_LINKS ||
	    m->iter > BPF_LOADER_MAX_ITERS ||
	    nfds != BPF_LOADER_FD_LINKS + (size_t)m->nlinks + m->iter)
		return -EPROTO;
	if (m->ring_size == 0 || (m->ring_size & (m->ring_size - 1)) != 0 || page == 0 ||
	    m->ring_size % page != 0)
		return -EPROTO;
	if ((uint64_t)m->bss_size < (uint64_t)m->drop_off + sizeof(uint64_t) ||
	    m->drop_off % sizeof(uint64_t) != 0 || m->bss_size < moves_end ||
	    (m->moves_off != BPF_LOADER_NO_OFFSET && m->moves_off % sizeof(uint64_t) != 0))
		return -EPROTO;
	return 0;
}

#endif
