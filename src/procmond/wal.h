/* procmond's write-ahead log (docs/pipeline.md "Write-ahead log").
 *
 * Files procmond-NNNNN.wal in one directory, NNNNN increasing; a new file
 * starts when the current one would pass rotate_bytes. Each record is
 *
 *	u32 len       payload bytes (at most WAL_RECORD_MAX)
 *	u32 crc32c    over seq, len (as on disk) and the payload
 *	u64 seq       monotonic across files and restarts, first is 1
 *	payload       one Daemoneye__ProcessEvent (its seq field equals seq)
 *
 * all little-endian. On open every file is read: a record with a bad length,
 * CRC or a sequence that does not increase ends that file's valid part; the
 * rest is counted in wal_stats.corrupt_bytes (the caller reports it), and in
 * the newest file it is truncated away so appends continue after the last
 * good record. Files whose records are all acknowledged are deleted.
 *
 * Durability: wal_append() gathers records in memory (64 KiB at most) and
 * wal_flush() write(2)s them in one call (they then survive a kill -9 of
 * procmond); wal_sync() flushes and fdatasync(2)s (they then survive power
 * loss); reading, syncing, rotating and closing flush first. The publisher
 * syncs before it sends, so the agent never holds a sequence the WAL could
 * lose.
 *
 * Not thread-safe: the caller serializes calls (publish.c holds a mutex). */
#ifndef DE_PROCMOND_WAL_H
#define DE_PROCMOND_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_RECORD_HEADER  16
#define WAL_RECORD_MAX     (1u * 1024 * 1024)
#define WAL_ROTATE_DEFAULT (80ull * 1024 * 1024)
#define WAL_MAX_FILES      100000

struct wal;

struct wal_stats {
	uint64_t first_seq; /* oldest record held (0 when empty) */
	uint64_t last_seq;  /* newest record written (0 when none ever) */
	uint64_t acked_seq; /* highest acknowledged sequence */
	uint64_t bytes;     /* bytes in all files */
	uint32_t files;
	uint64_t corrupt_bytes; /* bytes skipped as corrupt when opening */
	uint32_t corrupt_files; /* files in which corruption was found */
	uint64_t unsynced;      /* records written but not yet fdatasync'd */
};

/* Opens (creating, 0700) the log in dir and takes an exclusive lock on it.
 * rotate_bytes 0 means WAL_ROTATE_DEFAULT. On success *ret owns the log
 * (free with wal_close). Returns -EBUSY when another process holds the lock,
 * -ENOMEM, or -errno of the file operations. */
int wal_open(const char *dir, uint64_t rotate_bytes, struct wal **ret);

/* Syncs and closes; accepts NULL. */
void wal_close(struct wal *w);

/* The sequence the next append gets. */
uint64_t wal_next_seq(const struct wal *w);

/* Makes the next sequence at least seq (after the agent reports a
 * high-water above what this log remembers, e.g. a lost WAL directory). */
void wal_bump_seq(struct wal *w, uint64_t seq);

/* Appends a record with sequence seq, which must be wal_next_seq(w), to the
 * in-memory tail (a record over 64 KiB is written at once). Returns 0,
 * -EINVAL (wrong seq or len > WAL_RECORD_MAX), -ENOMEM, -errno of
 * write/open (nothing is appended then: a short write is truncated away). */
int wal_append(struct wal *w, uint64_t seq, const void *payload, size_t len);

/* Writes the records appended since the last flush with one write(2).
 * Returns 0, or -errno: then those records are cut away and their
 * sequences are given out again (wal_next_seq goes back). */
int wal_flush(struct wal *w);

/* fdatasync(2)s what was appended since the last sync. Returns 0 or -errno. */
int wal_sync(struct wal *w);

/* Group commit outside the caller's lock: wal_sync_begin() returns 1 with a
 * duplicate of the append fd (the caller fdatasyncs and closes it) and the
 * last sequence it covers, or 0 when nothing is unsynced; after the sync the
 * caller (holding its lock again) calls wal_sync_done(w, seq). Records in
 * files rotated away were synced at rotation. */
int wal_sync_begin(struct wal *w, int *ret_fd, uint64_t *ret_seq);
void wal_sync_done(struct wal *w, uint64_t seq);

/* Records that everything up to seq is stored by the agent and deletes the
 * files that hold nothing newer (never the file being appended to).
 * Returns the number of files deleted, or -errno. */
int wal_ack(struct wal *w, uint64_t seq);

/* Record callback: return 0 to go on, non-zero to stop (that value is
 * returned by wal_read). */
typedef int (*wal_record_cb)(void *ctx, uint64_t seq, const uint8_t *payload, size_t len);

/* Calls cb for the records with sequence >= from_seq in order, at most
 * max_records of them and stopping after max_bytes of payload. Returns the
 * number of records delivered (0: none after from_seq), the callback's
 * non-zero value, or -errno. Sequential reads continue from a cached
 * position, so replaying the log costs one pass. */
int wal_read(struct wal *w, uint64_t from_seq, size_t max_records, size_t max_bytes,
             wal_record_cb cb, void *ctx);

void wal_get_stats(const struct wal *w, struct wal_stats *ret);

/* Parses the records of one WAL file image in memory (the fuzz target and
 * the open path share it). Calls cb (may be NULL) for each valid record,
 * whose sequence must exceed prev_seq and the previous one. Returns the
 * length of the valid prefix; *ret_last_seq gets the last valid sequence
 * (prev_seq when none). */
size_t wal_parse_buffer(const uint8_t *buf, size_t n, uint64_t prev_seq, wal_record_cb cb,
                        void *ctx, uint64_t *ret_last_seq);

/* Encodes a record header for payload into out (tests and tools). */
void wal_record_header(uint64_t seq, const void *payload, size_t len,
                       uint8_t out[WAL_RECORD_HEADER]);

#endif
