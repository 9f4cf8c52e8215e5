/* The agent's embedded broker: the one Unix socket (SPEC §3, §8; topics of
 * the seed: events.process.* from collectors, control.* for registration,
 * heartbeats, RPC and the CLI). docs/pipeline.md describes the protocol.
 *
 * Every connection is non-blocking on the engine's epoll loop. Peer
 * credentials (SO_PEERCRED) are checked on accept: root, the engine's uid and
 * members of its gid get in, others are refused and logged. The first frame
 * names the peer: Register (a collector) or ControlRequest (the CLI). A bad
 * frame, an unexpected type, an over-long frame or a peer that never reads
 * closes that connection only, with one log line.
 *
 * Collector event batches go into a per-connection queue bounded at
 * BROKER_QUEUE_MAX bytes; at 70% the broker tells the collector to pause
 * (Backpressure on), below 50% to resume, and at 100% it stops reading the
 * socket. Nothing is dropped: the collector's WAL holds what is not sent.
 * broker_process() ingests queued batches (through the ingest callback) and
 * acknowledges them with the collector's new high-water sequence; batches of
 * one collector waiting together are ingested as one (BROKER_MERGE_*). */
#ifndef DE_AGENT_BROKER_H
#define DE_AGENT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errbuf.h"
#include "ipc.h"
#include "registry.h"

struct json_t;
struct control;
struct broker;

#define BROKER_QUEUE_MAX         (10u * 1024 * 1024)
#define BROKER_BP_ON_PCT         70
#define BROKER_BP_OFF_PCT        50
#define BROKER_MAX_CONNS         64
#define BROKER_FIRST_FRAME_MS    10000
#define BROKER_COLLECTOR_OUT_MAX (4u * 1024 * 1024)
#define BROKER_CLI_OUT_MAX       (IPC_MAX_CONTROL_RESPONSE + 1024u * 1024)
/* Batches queued by one collector are ingested together, up to this many
 * events: one store transaction, one run of the rules, one Ack. Nothing
 * waits for a merge: only batches already queued are merged, so the
 * exec-to-alert latency does not grow. */
#define BROKER_MERGE_MAX_EVENTS 2048

/* An fd on the engine's epoll loop: epoll_event.data.ptr points to one. */
struct ev_watch {
	int fd;
	void (*fn)(void *ctx, uint32_t events);
	void *ctx;
};

struct broker_ops {
	/* Stores one batch (already converted and sequenced) for collector c.
	 * Returns 0 and sets *ret_high_water, or -errno (the batch stays
	 * queued and is retried; it is not acknowledged). */
	int (*ingest)(void *ctx, struct collector *c, const Daemoneye__ProcessEventBatch *b,
	              uint64_t *ret_high_water);
	/* The stored high-water sequence of a collector (RegisterAck). */
	int (*high_water)(void *ctx, const char *collector_id, uint64_t *ret);
	void (*collector_up)(void *ctx, struct collector *c);
	void (*collector_down)(void *ctx, struct collector *c, const char *why);
	void *ctx;
};

/* Creates the socket at path (an existing socket file is replaced), mode
 * 0660, and adds it to epfd. control answers CLI requests (borrowed; may be
 * NULL: the CLI then gets an error answer). Returns 0 and sets *ret, or
 * -errno with the reason in err. */
int broker_new(int epfd, const char *path, struct registry *reg, struct control *control,
               const struct broker_ops *ops, struct broker **ret, struct errbuf *err);
/* Closes every connection and the socket, unlinks the path. Accepts NULL. */
void broker_free(struct broker *b);

/* Stops accepting new connections (shutdown); existing ones are served. */
void broker_stop_accepting(struct broker *b);

/* Ingests up to max_batches queued batches, round-robin over collectors.
 * Returns the number ingested; *ret_more says whether batches remain. */
size_t broker_process(struct broker *b, size_t max_batches, bool *ret_more);

/* Sends an RPC to a registered collector. Returns 0, -ENOTCONN, -EBUSY
 * (RPC_MAX_IN_FLIGHT outstanding) or -ENOBUFS. */
int broker_rpc(struct broker *b, struct collector *c, int method, uint32_t interval_ms);

/* Housekeeping once a second: closes connections that never sent a first
 * frame within BROKER_FIRST_FRAME_MS. */
void broker_tick(struct broker *b, uint64_t now_ms);

/* Bytes queued for ingest across collectors. */
size_t broker_queued_bytes(const struct broker *b);

/* {"socket","connections","collectors","cli","refused","bad_frames",
 *  "queued_bytes","backpressure_on"} (new reference). */
struct json_t *broker_json(const struct broker *b);

#endif
