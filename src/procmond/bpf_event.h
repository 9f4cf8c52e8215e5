/* The record procmond.bpf.c writes into the BPF ring buffer and source_ebpf.c
 * reads back: shared by the kernel programs (built with clang -target bpf
 * against vmlinux.h) and user space (built against <linux/types.h>), so it
 * uses only fixed-width kernel types and no padding the two could disagree on.
 *
 * A record is a fixed header followed by its data: filename_len bytes of the
 * executable path as exec'd (NUL included), argv_len bytes of NUL-separated
 * argv, then cwd_len bytes of the working directory (NUL included). FORK and
 * EXIT and COMM records carry no data. The kernel writes only the used part of the data,
 * so a typical exec costs ~200 bytes of ring buffer, not the maximum. */
#ifndef DE_PROCMOND_BPF_EVENT_H
#define DE_PROCMOND_BPF_EVENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#ifndef __VMLINUX_H__
struct source_event;

/* Fills *ev from one ring-buffer record of size bytes (user space only). ev
 * is a scratch buffer: a rejected record may leave it partly written. Its
 * strings are always NUL-terminated, argv is argv_len raw bytes; a relative
 * filename is joined with the record's cwd (execve resolved it there). Returns
 * 0, or -EBADMSG for a record that is short, of an unknown kind or whose
 * lengths do not add up (a kernel/user mismatch the caller counts). */
int bpf_event_decode(const void *rec, size_t size, struct source_event *ev);
#endif

#endif

#define DE_BPF_COMM_LEN     16
#define DE_BPF_PATH_MAX     4096 /* filename and cwd, NUL included */
#define DE_BPF_ARGV_MAX     4096 /* bytes of argv read from mm->arg_start */
#define DE_BPF_CWD_DEPTH    48   /* path components walked for cwd */
#define DE_BPF_RINGBUF_SIZE (16u << 20)

enum de_bpf_kind {
	DE_BPF_EV_EXEC = 1,
	DE_BPF_EV_FORK = 2,
	DE_BPF_EV_EXIT = 3,
	DE_BPF_EV_COMM = 5, /* the process renamed itself: comm is the new name */
};

/* de_bpf_event.flags */
#define DE_BPF_F_ARGV_TRUNC     (1u << 0) /* argv longer than DE_BPF_ARGV_MAX */
#define DE_BPF_F_ARGV_FAULT     (1u << 1) /* argv could not be read */
#define DE_BPF_F_FILENAME_TRUNC (1u << 2)
#define DE_BPF_F_CWD_TRUNC      (1u << 3) /* deeper than DE_BPF_CWD_DEPTH or too long */
#define DE_BPF_F_HAS_CWD        (1u << 4)

struct de_bpf_event {
	__u32 kind; /* enum de_bpf_kind */
	__u32 flags;
	__u32 tgid; /* the process */
	__u32 pid;  /* the thread that did it (EXEC: the new leader; EXIT: tgid) */
	__u32 ppid; /* real_parent's tgid */
	__u32 uid, euid, gid;
	__u64 start_ns;  /* task start_boottime: ns after boot, CLOCK_BOOTTIME */
	__u64 ktime_ns;  /* bpf_ktime_get_boot_ns() when the event fired */
	__s32 exit_code; /* EXIT: task->exit_code, as wait(2) encodes it */
	__u16 filename_len;
	__u16 argv_len;
	__u16 cwd_len;
	__u16 pad0;
	__u32 pad1;
	char comm[DE_BPF_COMM_LEN];
	/* data follows: filename, argv, cwd */
};

/* The per-CPU scratch record: the header plus room for the three strings.
 * The data area is twice the sum of its parts, rounded to a power of two, so
 * the kernel can bound every offset with a mask the verifier understands. */
#define DE_BPF_DATA_SIZE 16384u
#define DE_BPF_DATA_MASK (DE_BPF_DATA_SIZE - 1)

struct de_bpf_scratch {
	struct de_bpf_event ev;
	char data[DE_BPF_DATA_SIZE];
};

#ifndef __VMLINUX_H__
struct source_event;

/* Fills *ev from one ring-buffer record of size bytes (user space only). ev
 * is a scratch buffer: a rejected record may leave it partly written. Its
 * strings are always NUL-terminated, argv is argv_len raw bytes; a relative
 * filename is joined with the record's cwd (execve resolved it there). Returns
 * 0, or -EBADMSG for a record that is short, of an unknown kind or whose
 * lengths do not add up (a kernel/user mismatch the caller counts). */
int bpf_event_decode(const void *rec, size_t size, struct source_event *ev);
#endif

#endif
