/* An event source: where procmond learns that a process started or ended.
 * Three implementations (source_ebpf.c, source_netlink.c, source_poll.c)
 * behind this one small interface; main.c picks one with --collector.
 *
 * A source only reports what the kernel told it (struct source_event). The
 * lifecycle tracker (lifecycle.c) turns those into process_events, enriching
 * them from /proc (procfs.c), hashing (hash.c) and sanitizing, and reconciles
 * them with the full /proc snapshot that runs every interval in every mode. */
#ifndef DE_PROCMOND_SOURCE_H
#define DE_PROCMOND_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errbuf.h"

enum source_event_kind {
	SOURCE_EV_EXEC = 0,
	SOURCE_EV_FORK,
	SOURCE_EV_EXIT,
	/* Added by procmond-core (netlink reports them; others may too): */
	SOURCE_EV_UID,  /* set*uid: uid and euid in SOURCE_HAS_IDS (gid unknown) */
	SOURCE_EV_COMM, /* prctl(PR_SET_NAME) or similar: the new comm */
	/* Not an event: a process that exists, as the ebpf source's snapshot
	 * iterator saw it (lifecycle_snapshot_from); fields as for EXEC. */
	SOURCE_EV_SNAPSHOT,
};

/* Which optional fields of a source_event are filled. */
enum {
	SOURCE_HAS_IDS = 1u << 0, /* uid, euid, gid */
	SOURCE_HAS_COMM = 1u << 1,
	SOURCE_HAS_FILENAME = 1u << 2, /* executable path as exec'd */
	SOURCE_HAS_ARGV = 1u << 3,
	SOURCE_HAS_CWD = 1u << 4,
	SOURCE_HAS_START = 1u << 5, /* start_ns */
	SOURCE_HAS_EXIT_CODE = 1u << 6,
	SOURCE_HAS_PPID = 1u << 7,
	/* Added by the ebpf source (EXEC), so a new process needs no /proc read: */
	SOURCE_HAS_EXE = 1u << 8,         /* exe (the running image, as /proc/PID/exe) */
	SOURCE_HAS_IMAGE = 1u << 9,       /* image: the key hash.c caches by */
	SOURCE_HAS_CGROUP = 1u << 10,     /* cgroup_id (cgroup v2) */
	SOURCE_HAS_STAT = 1u << 11,       /* rss_pages, threads, tty_nr, egid */
	SOURCE_HAS_CGROUP_SET = 1u << 12, /* cgroup_set, cgroup_moves, cgroup_move_slot */
};

/* The identity of an executable's content as the kernel knows it: a file
 * with the same key has the same bytes (hash.c's cache key). */
struct source_image_key {
	uint64_t dev; /* user-space encoding, as stat(2)'s st_dev */
	uint64_t ino;
	int64_t size;
	int64_t mtime_sec, ctime_sec;
	uint32_t mtime_nsec, ctime_nsec;
};

#define SOURCE_ARGV_MAX 4096
#define SOURCE_PATH_MAX 4096

struct source_event {
	enum source_event_kind kind;
	uint32_t has; /* SOURCE_HAS_* */
	pid_t pid;    /* thread-group id (the process) */
	pid_t tid;    /* the thread that did it */
	pid_t ppid;   /* parent's tgid (for FORK: the parent) */
	uint32_t uid, euid, gid;
	uint64_t start_ns; /* task start, ns after boot (CLOCK_BOOTTIME) */
	uint64_t ktime_ns; /* when the kernel saw it, ns after boot */
	int32_t exit_code; /* EXIT: as wait(2) encodes it */
	bool argv_truncated;
	bool exe_deleted;   /* SOURCE_HAS_EXE: the image's name is gone (or memfd) */
	uint32_t egid;      /* SOURCE_HAS_STAT */
	int32_t threads;    /* SOURCE_HAS_STAT */
	uint32_t tty_nr;    /* SOURCE_HAS_STAT: as /proc/PID/stat field 7; 0 none */
	uint64_t rss_pages; /* SOURCE_HAS_STAT */
	uint64_t cgroup_id; /* SOURCE_HAS_CGROUP */
	/* SOURCE_HAS_CGROUP_SET (ebpf): the exact key of the task's cgroup set
	 * at exec (its cgroup in every hierarchy, v1 and v2), which decides
	 * its /proc/PID/cgroup text; the count of cgroup migrations of its pid
	 * slot read before the key; and that slot's live counter (read-only,
	 * lives as long as the source). A process gone with the count still
	 * unchanged never changed cgroups between exec and exit. */
	uint64_t cgroup_set;
	uint64_t cgroup_moves;
	uint64_t cgroup_moves_after; /* the count again, read after the key */
	const volatile uint64_t *cgroup_move_slot;
	struct source_image_key image; /* SOURCE_HAS_IMAGE */
	char comm[16];
	char filename[SOURCE_PATH_MAX];
	char cwd[SOURCE_PATH_MAX];
	char exe[SOURCE_PATH_MAX]; /* SOURCE_HAS_EXE */
	size_t argv_len;           /* bytes of NUL-separated argv in argv[] */
	char argv[SOURCE_ARGV_MAX];
};

/* Collection options, with the seed's defaults (ProcessCollectionConfig). */
struct collector_opts {
	bool enhanced_metadata; /* true: cwd, tty, cgroup, parent details */
	bool compute_hashes;    /* procmond: on unless --no-hash */
	uint32_t max_processes; /* 0: unlimited */
	bool skip_system;       /* false: skip uid < 1000 processes */
	bool skip_kernel;       /* false: skip kernel threads */
	uint32_t interval_ms;   /* snapshot interval, default 1000 */
};

struct source_health {
	uint64_t events; /* events delivered */
	uint64_t drops;  /* events lost (kernel ring buffer full, ENOBUFS, ...) */
	uint64_t errors;
	bool ok;
};

/* Called for every event; the event is only valid during the call. */
typedef void (*source_event_cb)(void *ctx, const struct source_event *ev);

struct source;

struct source_ops {
	const char *name;  /* "ebpf", "netlink", "poll" */
	bool realtime;     /* sees every exec as it happens */
	bool argv_at_exec; /* captures argv in the kernel at exec time */
	/* Opens the source. Returns 0 and sets *ret, or -errno with the reason
	 * (why it cannot work here) in err. */
	int (*open)(const struct collector_opts *opts, struct source **ret, struct errbuf *err);
	/* A descriptor to poll for readability, or -1 when the source has none
	 * (poll: the snapshot timer drives it). */
	int (*fd)(struct source *s);
	/* Reads what is pending without blocking and calls cb per event.
	 * Returns the number of events, or -errno. */
	int (*dispatch)(struct source *s, source_event_cb cb, void *ctx);
	void (*health)(struct source *s, struct source_health *ret);
	void (*close)(struct source *s);
};

extern const struct source_ops source_ebpf_ops;
/* A proc connector socket that receives only uid and gid changes (the
 * kernel filters: Linux 6.6 and later, else -ENOTSUP), read with
 * source_netlink_ops' fd, dispatch, health and close. The eBPF source sees
 * no set*id() call (no tracepoint fires for one); this companion brings
 * them in real time. Needs CAP_NET_ADMIN to open, nothing afterwards. */
int source_netlink_open_ids(struct source **ret, struct errbuf *err);
/* Where source_ebpf_ops.open() finds procmond-bpf-loader, for programs that
 * do not live beside it (bench/ebpf-events); path is not copied. */
void source_ebpf_set_loader(const char *path);
/* A new read(2)-able stream of the ebpf source s's snapshot iterator
 * (bpf_event.h, DE_BPF_EV_SNAP records; lifecycle_snapshot_from), or
 * -errno (-ENOTSUP: the loader attached none); *keys_fd, one of its key
 * iterator (DE_BPF_EV_SNAP_KEY records), or -errno. Once per source, and
 * before the seccomp filter, which allows no bpf(2). */
int source_ebpf_snapshot_fd(struct source *s, int *keys_fd);
extern const struct source_ops source_netlink_ops;
extern const struct source_ops source_poll_ops;

#endif
