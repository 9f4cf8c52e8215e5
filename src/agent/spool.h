/* A bounded, append-only, on-disk FIFO of records: where a sink's alerts wait
 * while the sink is down (SPEC §6), replayed in order when it returns.
 *
 * Layout of a spool directory:
 *   seg-<16 hex index>   segment files, appended to; the highest is the tail
 *   ack                  {u64 segment, u64 offset, u32 crc32c} of the first
 *                        record not yet acknowledged
 * Each record: {u32 magic, u32 length, u32 crc32c(length, payload), u32 0}
 * then the payload. A record is appended with one write(2) followed by
 * fdatasync(2), so an acknowledged append survives a power loss. The ack
 * pointer is written in place with pwrite(2) without a sync: after a crash of
 * the process nothing is replayed twice; after a power loss the last records
 * delivered may be delivered again (at least once, never lost).
 *
 * Opening validates every pending record. A torn record at the end of the tail
 * segment (a crash mid-write) is cut off; a corrupt record elsewhere makes the
 * rest of its segment unreadable: both are counted in spool_corrupt(), the
 * segments after it are still replayed.
 *
 * A spool is not thread-safe: one owner (the sink's worker) uses it. */
#ifndef DE_AGENT_SPOOL_H
#define DE_AGENT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;

#define SPOOL_RECORD_MAX  (1024 * 1024) /* bytes of one payload */
#define SPOOL_SEGMENT_MAX (4 * 1024 * 1024)

/* Opens (creating it, mode 0700) the spool directory dir, bounded to
 * max_bytes of segment files. Sets *ret (free with spool_close). Returns
 * -errno on I/O errors, -EINVAL for a max_bytes below one record. */
int spool_open(const char *dir, uint64_t max_bytes, struct spool **ret);

/* Appends one record. Returns 0, -ENOSPC when the bound would be exceeded
 * (nothing written), -E2BIG for a record over SPOOL_RECORD_MAX, -errno. */
int spool_append(struct spool *s, const void *data, size_t len);

/* The oldest record not yet acknowledged: on success returns 1 and sets
 * *ret (a new NUL-terminated copy, caller frees) and *ret_len; returns 0
 * when the spool is empty; -errno on I/O errors. Peeking again without
 * spool_ack returns the same record. */
int spool_peek(struct spool *s, char **ret, size_t *ret_len);

/* Acknowledges the record returned by the last spool_peek: it will not be
 * returned again, here or after a restart. Fully acknowledged segments are
 * deleted. Returns 0, -ENOENT when nothing was peeked, -errno. */
int spool_ack(struct spool *s);

/* With on true, spool_append() writes without fdatasync(2) until
 * spool_sync() (a batch: the alerts a sink replays from the store at start). */
void spool_defer_sync(struct spool *s, bool on);
/* Syncs what spool_append() wrote since spool_defer_sync(s, true).
 * Returns 0 or -errno. */
int spool_sync(struct spool *s);

/* The "delivered" marker beside the segments: a short string (the sink's
 * "delivered through" alert id; see sink_worker.c), at most SPOOL_MARK_MAX - 1
 * bytes. spool_mark_read copies it into buf (size n) and returns 1; returns 0
 * when there is none yet, -EBADMSG when the file is corrupt, -ENOSPC when buf
 * is too small, -errno. spool_mark_write replaces it with one pwrite(2) (kept
 * across a crash of the process; spool_mark_sync makes it survive a power
 * loss); returns 0, -E2BIG, -errno. */
#define SPOOL_MARK_MAX 64
int spool_mark_read(struct spool *s, char *buf, size_t n);
int spool_mark_write(struct spool *s, const char *mark);
int spool_mark_sync(struct spool *s);

uint64_t spool_pending(const struct spool *s); /* records not acknowledged */
uint64_t spool_bytes(const struct spool *s);   /* bytes of segment files on disk */
uint64_t spool_corrupt(const struct spool *s); /* records lost to corruption */

/* Closes; accepts NULL. Everything appended is already on disk. */
void spool_close(struct spool *s);

static inline void
spool_closep(struct spool **s)
{
	spool_close(*s);
}

#endif
