/* SHA-256 of process images (OpenSSL EVP, the digest fetched once; see
 * hash.c for what its start-up costs in resident memory), cached and
 * budgeted.
 *
 * The image is opened through /proc/PID/exe, so deleted and memfd images hash
 * too. Results are cached by (device, inode, size, mtime, ctime): a binary is
 * hashed once per change, however many processes run it. The cache is bounded
 * (set-associative, oldest entry of a set evicted).
 *
 * A per-tick byte budget keeps a huge binary from stalling collection: a file
 * that does not fit in what is left of the budget becomes a job, hashed a
 * budget's worth at a time by hash_cache_tick() on later ticks; asking for it
 * meanwhile returns -EINPROGRESS. Jobs keep their fd, so the image stays
 * readable after its process exits. */
#ifndef DE_PROCMOND_HASH_H
#define DE_PROCMOND_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define HASH_HEX_LEN             64
#define HASH_DEFAULT_ENTRIES     4096
#define HASH_DEFAULT_TICK_BUDGET (64ull << 20)
#define HASH_MAX_JOBS            8

struct hash_cache;

struct hash_stats {
	uint64_t hits, misses;
	uint64_t bytes_hashed;
	uint64_t deferred; /* lookups answered -EINPROGRESS / -EAGAIN */
	uint64_t evictions;
	size_t entries, jobs;
};

/* Creates a cache of about max_entries entries with tick_budget bytes of
 * hashing per tick (0: defaults). Returns 0 and sets *ret, or -ENOMEM. */
int hash_cache_new(size_t max_entries, uint64_t tick_budget, struct hash_cache **ret);
void hash_cache_free(struct hash_cache *hc);

/* The SHA-256 (lowercase hex into hex[65]) of the image pid runs, read through
 * <proc_dirfd>/PID/exe. Returns 0; -EINPROGRESS when it is being hashed in
 * the background (ask again after a tick); -EAGAIN when the budget and the
 * job slots are used up this tick; -ESRCH when the process or its image is
 * gone; -EACCES; -EIO. */
int hash_cache_get(struct hash_cache *hc, int proc_dirfd, pid_t pid, char hex[HASH_HEX_LEN + 1]);

/* The same, with the image's stat (taken through /proc/PID/exe of the same
 * instance, e.g. procfs's PROCFS_READ_EXE_KEY) as the cache key: a hit costs
 * no system call; a miss opens <proc_dirfd>/PID/exe and keys by what it
 * opened. */
int hash_cache_get_stat(struct hash_cache *hc, const struct stat *sb, int proc_dirfd, pid_t pid,
                        char hex[HASH_HEX_LEN + 1]);

/* The same for an open file (not consumed). */
int hash_cache_get_fd(struct hash_cache *hc, int fd, char hex[HASH_HEX_LEN + 1]);

/* Starts a new tick: refills the budget and spends it on pending jobs.
 * Returns the number of jobs that completed. */
int hash_cache_tick(struct hash_cache *hc);

void hash_cache_stats(const struct hash_cache *hc, struct hash_stats *ret);

#endif
