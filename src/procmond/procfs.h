/* Reading processes from /proc into struct process_record (SPEC §5 columns).
 *
 * Everything is relative to a directory fd that stands for /proc, so the unit
 * tests run the same code against fixture trees with hostile content. The
 * parsers below work on buffers and never trust them: a comm may hold spaces,
 * parentheses, newlines and invalid UTF-8, a status file may lack lines, a
 * cgroup file may be garbage.
 *
 * Races are normal: a process can exit between any two reads. A reader then
 * returns -ESRCH and leaves its output untouched. A permission error is not a
 * failure: the record is returned with accessible = false and the matching
 * PROC_MISSING_* bits set. */
#ifndef DE_PROCMOND_PROCFS_H
#define DE_PROCMOND_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "process.h"

/* The fields of /proc/PID/stat we use. */
/* stat's flags: a kernel thread (include/linux/sched.h). */
#define PROCFS_PF_KTHREAD 0x00200000u

struct procfs_stat {
	pid_t pid;
	char comm[64]; /* raw bytes between the first '(' and the last ')', cut */
	size_t comm_len;
	char state;
	pid_t ppid;
	uint32_t tty_nr;
	uint32_t flags; /* PF_* */
	uint64_t utime, stime;
	int32_t num_threads;
	uint64_t starttime; /* clock ticks after boot */
	uint64_t rss_pages;
};

/* The fields of /proc/PID/status we use; -1 when the line was absent. */
struct procfs_status {
	int64_t uid, euid, gid, egid;
	int32_t threads;
};

/* Parses the text of /proc/PID/stat (len bytes, need not be NUL-terminated).
 * The comm is taken up to the LAST ')' so any comm content is safe. Returns 0
 * and fills *ret, or -EINVAL for anything malformed. */
int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *ret);

/* Parses /proc/PID/status (Uid:, Gid:, Threads: lines). Returns 0 and fills
 * *ret (missing lines stay -1), or -EINVAL when no Uid line is usable. */
int procfs_parse_status(const char *buf, size_t len, struct procfs_status *ret);

/* Parses /proc/PID/cgroup: picks the unified ("0::") path, else the first
 * line's path. Sets *ret_path (caller frees; NULL when there is none) and
 * writes the container id (64 lowercase hex + NUL) into id, or "" when the
 * path names no recognisable container. Returns 0, -EINVAL or -ENOMEM. */
int procfs_parse_cgroup(const char *buf, size_t len, char **ret_path, char id[65]);

/* Finds a docker/containerd/cri-o/podman/libpod container id (64 hex) in a
 * cgroup path. Returns true and writes it into id (65 bytes). */
bool procfs_container_id(const char *path, char id[65]);

/* Formats a tty device number (stat field 7) as "pts/3", "tty1", "ttyS0", or
 * returns false when there is no terminal (0) or it is of an unknown kind. */
bool procfs_tty_name(uint32_t tty_nr, char *buf, size_t n);

/* Parses "btime N" from the text of /proc/stat. Returns 0 or -EINVAL. */
int procfs_parse_btime(const char *buf, size_t len, uint64_t *ret_sec);

/* Cleans the executable link target: strips " (deleted)", recognises
 * "/memfd:NAME". Returns a new string (caller frees) or NULL on OOM. */
char *procfs_clean_exe(const char *link, bool *ret_deleted, bool *ret_memfd);

struct procfs;

/* Opens a reader over proc_path ("/proc", or a fixture tree). Reads the boot
 * time from <proc_path>/stat (0 when absent: start times are then relative).
 * Returns 0 and sets *ret (free with procfs_free), or -errno. */
int procfs_open(const char *proc_path, struct procfs **ret);
void procfs_free(struct procfs *pf);
/* Whether the real and effective ids (PROCFS_READ_STATUS) come from
 * ioctl(PIDFD_GET_INFO) on a pidfd instead of /proc/PID/status: on by
 * default for the live /proc when the kernel has it (6.13+), off for fixture
 * trees. A reader that meets a refusal (seccomp, an older kernel) turns it
 * off by itself and reads status. Returns the setting now in force. */
bool procfs_set_pidfd_info(struct procfs *pf, bool on);
bool procfs_pidfd_info(const struct procfs *pf);
/* Whether a new process's cgroup comes from the memo of procfs_cgroup_by_id
 * keyed by the cgroup id that PIDFD_GET_INFO gives with the ids: on by
 * default where this /proc is the live one, the ids come from a pidfd and
 * the host is pure cgroup v2 (procmond's own cgroup file is the unified
 * line alone). Tests turn it on elsewhere; it needs pidfd ids. Returns the
 * setting now in force. */
bool procfs_set_cgroup_memo(struct procfs *pf, bool on);
int procfs_dirfd(const struct procfs *pf);
uint64_t procfs_boot_ms(const struct procfs *pf);
long procfs_ticks_per_sec(const struct procfs *pf);
/* Epoch ms of a start time in clock ticks after boot. */
uint64_t procfs_ticks_to_epoch_ms(const struct procfs *pf, uint64_t ticks);
/* The user name of uid, cached (bounded). Returns a new string or NULL. */
char *procfs_user_name(struct procfs *pf, int64_t uid);

/* The cgroup column (path, caller frees, may be NULL) and container id of
 * pid, read from its cgroup file. Returns 0 or -errno. */
int procfs_read_cgroup(struct procfs *pf, pid_t pid, char **ret_path, char cid[65]);

/* The cgroup column and container id of pid, whose cgroup v2 id is id (an
 * exec record's): from a memo once two reads of a unified-only text (a pure
 * cgroup v2 host, where the id decides the text) agreed for that id, else
 * read from <proc>/PID/cgroup and parsed. Sets *ret_path (caller frees; may
 * be NULL) and writes the container id into cid ("" when none). Returns 0,
 * -ESRCH/-EACCES when unreadable, -EINVAL, -ENOMEM. */
int procfs_cgroup_by_id(struct procfs *pf, pid_t pid, uint64_t id, char **ret_path, char cid[65]);

/* What an exec record says of its process's cgroup set (source.h,
 * SOURCE_HAS_CGROUP_SET). */
struct procfs_cgroup_set {
	bool exact;                         /* false: no usable key, the file is read */
	uint64_t key;                       /* the set's key: equal keys, the same text */
	uint64_t start_ticks;               /* the instance's start, as stat's field 22 */
	uint64_t moves;                     /* its pid slot's migration count before the key */
	const volatile uint64_t *move_slot; /* that slot's live count */
};

/* The cgroup column and container id of pid, whose exec record carried the
 * key of its cgroup set: from a memo by key (64 entries, direct-mapped)
 * when it holds a proven text, else read from <proc>/PID/cgroup and parsed.
 * A memo entry is the text read from the latest process of the key that was
 * read (checked to be the instance that exec'd, by its start time read
 * after the text; otherwise the text is not returned either). It becomes
 * proven once that process is gone and its pid slot counted no migration
 * since its key was taken: then it never left the key's cgroups, and the
 * text is the key's. Until then (and for an inexact key) every process of
 * the key is read.
 * Sets *ret_path (caller frees; may be NULL) and writes the container id
 * into cid ("" when none). Returns 0, -ESRCH/-EACCES when unreadable (or
 * the pid is another instance now), -EINVAL, -ENOMEM. */
int procfs_cgroup_by_set(struct procfs *pf, pid_t pid, const struct procfs_cgroup_set *cs,
                         char **ret_path, char cid[65]);

/* What to read for a pid: a known process instance is refreshed with
 * PROCFS_READ_STAT alone plus a cheap command-line check (lifecycle.c). */
enum {
	PROCFS_READ_STAT = 1u << 0,
	PROCFS_READ_STATUS = 1u << 1,
	PROCFS_READ_CMDLINE = 1u << 2,
	PROCFS_READ_EXE = 1u << 3,
	PROCFS_READ_CWD = 1u << 4, /* with tty from stat */
	PROCFS_READ_CGROUP = 1u << 5,
	PROCFS_READ_PARENT = 1u << 6, /* parent name, exe, command line */
	PROCFS_READ_USER = 1u << 7,   /* user_name from the uid */
	PROCFS_READ_ALL = 0xffu,
	/* Hand the opened cmdline fd back in the sample (caller closes):
	 * pread on it later re-reads the same process instance's argv without
	 * a path lookup, and fails with ESRCH once it is gone. It holds about
	 * 220 bytes of kernel memory; a kept stat fd would hold 4.5 KiB (the
	 * seq_file and its page-sized buffer), so stat is reopened instead. */
	PROCFS_KEEP_FDS = 1u << 8,
	/* With PROCFS_READ_EXE: also stat the image through the same /proc/PID
	 * directory fd (the hash cache key; hash_cache_get_stat). */
	PROCFS_READ_EXE_KEY = 1u << 9,
	/* With PROCFS_KEEP_FDS: hand the stat fd back too (its 4.5 KiB stay
	 * allocated while it is open; a pread re-reads the instance). */
	PROCFS_KEEP_STAT_FD = 1u << 10,
};

/* Numbers that are not record columns but that the lifecycle needs. */
struct procfs_sample {
	uint64_t cpu_ticks;      /* utime + stime */
	uint32_t flags;          /* PF_* of stat */
	uint64_t cmdline_digest; /* FNV-1a of the raw cmdline bytes (READ_CMDLINE) */
	bool kernel_thread;
	int64_t egid;       /* effective gid with the ids (READ_STATUS), or -1 */
	int cmdline_fd;     /* with PROCFS_KEEP_FDS: an open fd, or -1 */
	int stat_fd;        /* with PROCFS_KEEP_STAT_FD: an open fd, or -1 */
	bool have_exe_stat; /* PROCFS_READ_EXE_KEY: exe_stat is the image's */
	struct stat exe_stat;
};

/* Reads pid into rec (initialized by the caller with process_record_init;
 * fields already set are replaced only for what is read). Returns 0, -ESRCH
 * when the process is gone (rec may then hold partial data the caller can
 * keep or clear), -ENOMEM. */
int procfs_read_pid(struct procfs *pf, pid_t pid, unsigned what, struct process_record *rec,
                    struct procfs_sample *sample);

/* Fills rec's parent_* columns by reading rec->ppid from /proc (sets
 * PROC_MISSING_PARENT when it cannot). Returns 0 or -ENOMEM. */
int procfs_read_parent(struct procfs *pf, struct process_record *rec);

/* Reads only stat for pid. Returns 0, -ESRCH or -EINVAL. */
int procfs_read_stat(struct procfs *pf, pid_t pid, struct procfs_stat *ret);

/* The same, and the owner of the file it read (fstat of the fd it opened,
 * no second lookup): /proc/PID's files belong to the task's euid and egid
 * while it is dumpable, to root otherwise. Sets *ret_owner on success. */
int procfs_read_stat_owner(struct procfs *pf, pid_t pid, struct procfs_stat *ret,
                           struct stat *ret_owner);

/* Reads the raw command line of pid (bounded by PROC_CMDLINE_MAX) and its
 * digest; sets *ret (caller frees, NUL-separated, len in *ret_len) and
 * *ret_truncated. Returns 0 or -ESRCH/-EACCES/-ENOMEM. */
int procfs_read_cmdline_raw(struct procfs *pf, pid_t pid, char **ret, size_t *ret_len,
                            bool *ret_truncated);

/* The command_line column from raw NUL-separated argv bytes: SPEC §7
 * sanitizing, then valid UTF-8. Returns 0 and sets *ret, or -ENOMEM. */
int procfs_sanitize_cmdline(const char *raw, size_t len, char **ret);

/* Re-read an open stat or cmdline fd (PROCFS_KEEP_FDS keeps cmdline's).
 * Same results as the path-based readers; -ESRCH once the instance is gone. */
int procfs_pread_stat(int fd, struct procfs_stat *ret);
int procfs_pread_cmdline(int fd, char **ret, size_t *ret_len, bool *ret_truncated);

/* FNV-1a 64 of a buffer: the cheap change detector for command lines. */
uint64_t procfs_digest(const char *buf, size_t len);

/* Lists the pids in the proc directory, ascending order not guaranteed.
 * Calls fn(ctx, pid) per entry and stops early when fn returns non-zero (that
 * value is returned). Returns 0 or -errno. */
int procfs_foreach_pid(struct procfs *pf, int (*fn)(void *ctx, pid_t pid), void *ctx);

#endif
