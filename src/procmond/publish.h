/* procmond's managed mode (DAEMONEYE_BROKER_SOCKET set): every event goes
 * into the write-ahead log first (wal.h), then a publisher thread sends it to
 * the agent in batches, registers, sends heartbeats, trims the WAL when the
 * agent acknowledges, answers the agent's RPCs, and reconnects with
 * exponential backoff and a circuit breaker. Back-pressure from the agent
 * pauses sending; nothing is dropped, the WAL holds it (docs/pipeline.md).
 *
 * Threading: publish_event() may be called from one thread (procmond's main
 * loop); everything else runs on the publisher thread this module owns. The
 * callbacks in publish_opts run on the publisher thread. */
#ifndef DE_PROCMOND_PUBLISH_H
#define DE_PROCMOND_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"
#include "process.h"

struct publish;

struct publish_opts {
	const char *socket_path;       /* the agent's socket (DAEMONEYE_BROKER_SOCKET) */
	const char *wal_dir;           /* created 0700 when missing */
	uint64_t wal_rotate_bytes;     /* 0: 80 MiB */
	uint64_t max_buffer_bytes;     /* unacknowledged bytes in flight; 0: 10 MiB */
	const char *collector_id;      /* NULL: "procmond" */
	const char *capabilities;      /* comma-separated, e.g. "process,exec-events,hashes" */
	const char *source_name;       /* the event source in use ("ebpf", ...), or NULL */
	uint32_t heartbeat_interval_s; /* 0: 30 */
	uint32_t sync_interval_ms;     /* group-commit window; 0: 10 */
	uint32_t sync_max_ms;          /* the window under sustained load, at most; 0: 30 */
	/* RPC hooks, called on the publisher thread; each may be NULL. */
	void (*on_adjust_interval)(void *ctx, uint32_t interval_ms);
	void (*on_shutdown)(void *ctx); /* the agent asked for a graceful stop */
	void *ctx;
};

/* Opens the WAL (replaying what the agent has not acknowledged, after
 * reconnecting) and starts the publisher thread. On success *ret owns the
 * publisher; free it with publish_close(). Returns -EBUSY when another
 * procmond holds the WAL directory, -errno for I/O errors, with the reason
 * in err. */
int publish_open(const struct publish_opts *opts, struct publish **ret, struct errbuf *err);

/* Appends one event to the WAL (assigning ev's sequence) and wakes the
 * publisher. Never blocks on the agent. Returns 0, or -errno when the WAL
 * write failed (the event is then not accepted; the caller logs it). */
int publish_event(struct publish *p, const struct process_event *ev);

/* Counters for procmond's own health/logging. */
struct publish_stats {
	uint64_t appended;  /* events written to the WAL since start */
	uint64_t sent;      /* events sent (replays included) */
	uint64_t acked_seq; /* the agent's high-water sequence */
	uint64_t last_seq;  /* the WAL's highest sequence */
	uint64_t reconnects;
	uint32_t window_ms; /* the group-commit window now */
	bool connected;
	bool backpressure;
};
void publish_get_stats(struct publish *p, struct publish_stats *ret);

/* Records the event source's own counters (events seen, events the kernel
 * could not deliver), so the agent's health check can show them. Called from
 * the collector's main thread; cheap. */
void publish_set_source_stats(struct publish *p, uint64_t events, uint64_t drops);

/* Stops the thread: syncs the WAL, waits up to timeout_ms for the agent to
 * acknowledge what was sent, closes the connection. Accepts NULL. */
void publish_close(struct publish *p, uint32_t timeout_ms);

#endif
