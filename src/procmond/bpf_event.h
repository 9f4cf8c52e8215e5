/* The record procmond.bpf.c writes into the BPF ring buffer and source_ebpf.c
 * reads back: shared by the kernel programs (built with clang -target bpf
 * against vmlinux.h) and user space (built against <linux/types.h>), so it
 * uses only fixed-width kernel types and no padding the two could disagree on.
 *
 * A record is a fixed header (struct de_bpf_event). An EXEC record goes on
 * with struct de_bpf_exec (what the running image is, and the numbers /proc
 * would otherwise be read for), then its data: filename_len bytes of the
 * executable path as exec'd (NUL included), argv_len bytes of NUL-separated
 * argv, cwd_len bytes of the working directory (NUL included), then exe_len
 * bytes of the running image's path (NUL included). FORK, EXIT and COMM
 * records are the header alone. The kernel writes only the used part of the
 * data, so a typical exec costs ~300 bytes of ring buffer, not the maximum. */
#ifndef DE_PROCMOND_BPF_EVENT_H
#define DE_PROCMOND_BPF_EVENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define DE_BPF_COMM_LEN  16
#define DE_BPF_PATH_MAX  4096 /* filename and cwd, NUL included */
#define DE_BPF_ARGV_MAX  4096 /* bytes of argv read from mm->arg_start */
#define DE_BPF_CWD_DEPTH 48   /* path components walked for cwd */
/* 256 KiB. Every page of it ends up resident in procmond, twice (the kernel
 * maps the data pages twice so that a record never wraps): 0.5 MB of RSS
 * (1 MiB cost 2 MB). Records are variable-length: fork and exit 88 bytes,
 * an exec ~300 (184 of headers, then only the used part of its strings), so
 * it holds ~500 unread short-lived processes: 140 ms at the fastest burst
 * measured here (3,800/s), more than the longest stall of procmond's loop
 * (hashing a 64 MiB tick budget from the page cache: ~60 ms). procmond reads
 * it within ~2 ms, and during snapshots every 32 processes. 128 KiB also
 * recorded 10,000-process bursts whole, 64 KiB dropped under load
 * (docs/procmond.md, "Memory"). */
#define DE_BPF_RINGBUF_SIZE (256u << 10)

enum de_bpf_kind {
	DE_BPF_EV_EXEC = 1,
	DE_BPF_EV_FORK = 2,
	DE_BPF_EV_EXIT = 3,
	DE_BPF_EV_COMM = 5, /* the process renamed itself: comm is the new name */
	/* A process found by the snapshot iterator (de_snap, not the ring):
	 * EXEC-shaped, without filename or argv; 8-byte aligned in its stream. */
	DE_BPF_EV_SNAP = 6,
	/* de_snap_keys: struct de_bpf_snap_key, one per process. */
	DE_BPF_EV_SNAP_KEY = 7,
};

/* de_bpf_event.flags */
#define DE_BPF_F_ARGV_TRUNC     (1u << 0) /* argv longer than DE_BPF_ARGV_MAX */
#define DE_BPF_F_ARGV_FAULT     (1u << 1) /* argv could not be read */
#define DE_BPF_F_FILENAME_TRUNC (1u << 2)
#define DE_BPF_F_CWD_TRUNC      (1u << 3) /* deeper than DE_BPF_CWD_DEPTH or too long */
#define DE_BPF_F_HAS_CWD        (1u << 4)
#define DE_BPF_F_HAS_EXE        (1u << 5) /* EXEC: de_bpf_exec's image fields are set */
#define DE_BPF_F_EXE_DELETED    (1u << 6) /* the image's name was unlinked (or memfd) */
#define DE_BPF_F_EXE_TRUNC      (1u << 7) /* its path was cut */
#define DE_BPF_F_HAS_TTY        (1u << 8)
/* EXEC: cgroup_set is the exact key of the task's cgroup set (every
 * hierarchy walked, no migration overlapping the walk). Unset: read the
 * cgroup file. */
#define DE_BPF_F_CGROUP_SET (1u << 9)

/* Hierarchies walked for the cgroup-set key (a host has at most 16: 15 v1
 * controllers or names, which the kernel caps, plus the unified one). */
#define DE_BPF_CGROUP_LINKS 16
/* Counters of cgroup migrations, one per tgid % DE_BPF_MOVE_SLOTS. */
#define DE_BPF_MOVE_SLOTS 512 /* 4 KiB */

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
	/* EXEC: struct de_bpf_exec, then filename, argv, cwd, exe */
};

/* What an EXEC record adds: identity of the running image (mm->exe_file's
 * inode, the key of the hash cache, so a known binary needs no stat or open
 * of /proc/PID/exe), the default-hierarchy cgroup id, and what the new
 * process's /proc/PID/stat would say right after exec. */
struct de_bpf_exec {
	__u64 exe_dev; /* the superblock's dev_t, kernel encoding (major << 20 | minor) */
	__u64 exe_ino;
	__s64 exe_size;
	__s64 exe_mtime_sec;
	__s64 exe_ctime_sec;
	__u32 exe_mtime_nsec;
	__u32 exe_ctime_nsec;
	__u64 cgroup_id; /* bpf_get_current_cgroup_id(): the cgroup v2 (unified) one */
	__u64 rss_pages; /* file + anon + shmem, as stat's rss */
	__u32 tty_nr;    /* as stat field 7 encodes it; 0: none */
	__u32 egid;
	__s32 threads;
	__u16 exe_len;
	__u16 pad0;
	/* DE_BPF_F_CGROUP_SET: a keyed 64-bit hash of the task's cgroup in
	 * every hierarchy (procmond.bpf.c, cgroup_set_key), which decides
	 * the text of /proc/PID/cgroup for a fixed reader; and the count of
	 * its pid slot's cgroup migrations, read before the key. */
	__u64 cgroup_set;
	__u64 cgroup_moves;
	__u64 cgroup_moves_after; /* the same count, read after the key */
};

/* A record of the snapshot key iterator (de_snap_keys): a process's cgroup-set
 * key (DE_BPF_F_CGROUP_SET when every hierarchy was read) between two reads
 * of its pid slot's migration count. */
struct de_bpf_snap_key {
	__u32 kind; /* DE_BPF_EV_SNAP_KEY */
	__u32 flags;
	__u32 tgid;
	__u32 pad;
	__u64 start_ns;
	__u64 key;
	__u64 moves_before;
	__u64 moves_after;
};

/* The per-CPU scratch record: the headers plus room for the four strings of
 * DE_BPF_PATH_MAX bytes each (a per-CPU value must stay under 32 KiB). The
 * kernel clamps every offset so the verifier can prove each copy fits. */
#define DE_BPF_DATA_SIZE 16384u
#define DE_BPF_DATA_MASK (DE_BPF_DATA_SIZE - 1)

struct de_bpf_scratch {
	struct de_bpf_event ev;
	struct de_bpf_exec x;
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

/* The size of the first SNAP record of the avail bytes at buf (a stream
 * read from the snapshot iterator; buf 8-byte aligned), padding included:
 * > 0, 0 when its header or data is not all there yet, or -EBADMSG for one
 * that is not a SNAP record or is longer than the kernel could write. */
long bpf_event_snap_len(const void *buf, size_t avail);
#endif

#endif
