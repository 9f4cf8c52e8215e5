/* Lifecycle tracking: turns /proc snapshots and kernel events into process
 * events (the seed's lifecycle.rs).
 *
 * It keeps the previous snapshot in a table keyed by pid. A process instance is
 * (pid, start_ticks): what cannot change for an instance (start time, and the
 * image, its path and hash, until the instance execs) is read once and kept;
 * a later snapshot reads only stat and the command line of a known instance
 * (plus the ownership of its /proc directory, to notice set*id calls), so it
 * is much cheaper than the first.
 *
 * Events:
 *   snapshot   every process of the first snapshot (and of --once)
 *   start      a new instance (from a source event, or found by a snapshot:
 *              source "poll"), or an exec in a known one
 *   stop       an instance that exited (runtime_ms, exit_code when known)
 *   modified   a known instance whose name, command line, executable or ids
 *              changed (modified_fields lists the columns)
 *   suspicious a pid reused by a different instance between two looks, or a
 *              start time after the present
 *
 * The callback receives events whose strings are borrowed: valid only during
 * the call. */
#ifndef DE_PROCMOND_LIFECYCLE_H
#define DE_PROCMOND_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "procfs.h"
#include "process.h"
#include "source.h"

struct lifecycle;

typedef void (*lifecycle_emit_fn)(void *ctx, const struct process_event *ev);

struct lifecycle_stats {
	uint64_t snapshots;
	uint64_t processes; /* tracked now */
	uint64_t events[_PROC_EV_MAX];
	uint64_t full_reads;           /* every column read from /proc */
	uint64_t cheap_reads;          /* a known instance refreshed */
	uint64_t from_event;           /* records built from a source event (process gone) */
	uint64_t from_kernel;          /* new instances built from an exec record alone */
	uint64_t iter_reads;           /* of those, from a snapshot iterator's record */
	uint64_t iter_cgroups_shared;  /* of those, with a witness's cgroup text */
	uint64_t image_memo_hits;      /* of those, hashes known by the kernel's image key */
	uint64_t parent_reads;         /* a parent's columns read from /proc (not tracked) */
	uint64_t last_snapshot_us;     /* wall clock */
	uint64_t last_snapshot_cpu_us; /* CPU time (user + system) */
};

/* Creates a tracker over pf (borrowed), hashing with hc (borrowed; NULL: no
 * hashes) under opts (copied). Returns 0 and sets *ret, or -ENOMEM. */
int lifecycle_new(struct procfs *pf, struct hash_cache *hc, const struct collector_opts *opts,
                  lifecycle_emit_fn emit, void *ctx, struct lifecycle **ret);
void lifecycle_free(struct lifecycle *lc);

/* Runs one full snapshot of /proc. With emit_all (and always on the first
 * snapshot) every process is reported as a `snapshot` event. Returns the
 * number of processes seen, or -errno when /proc cannot be listed. */
int lifecycle_snapshot(struct lifecycle *lc, bool emit_all);

/* The same snapshot, walking the records of the ebpf source's task iterator
 * (fd, from source_ebpf_snapshot_fd; read to its end, not closed) instead of
 * /proc's directory: a process new to the tracker is built from its record
 * plus its cmdline, stat and cgroup files, not the eight reads of a /proc
 * walk. keys_fd (or -1), the key iterator's stream, is read first: then one
 * cgroup file per cgroup set that several processes share is read, and its
 * text stands for all of them once vouched for. Falls back to the /proc walk
 * when the stream fails. */
int lifecycle_snapshot_from(struct lifecycle *lc, int fd, int keys_fd, bool emit_all);

/* Consumes one kernel event (exec/fork/exit) from the source named source
 * (a string literal: "ebpf", "netlink"). */
void lifecycle_on_source_event(struct lifecycle *lc, const struct source_event *ev,
                               const char *source);

/* fn(ctx) is called during a snapshot every few pids, and may feed source
 * events in (lifecycle_on_source_event): a first snapshot of thousands of
 * processes, or one that hashes large images, then does not leave the
 * kernel's event buffer to fill up. NULL turns it off. */
void lifecycle_set_poll(struct lifecycle *lc, void (*fn)(void *ctx), void *ctx);

void lifecycle_get_stats(const struct lifecycle *lc, struct lifecycle_stats *ret);

#endif
