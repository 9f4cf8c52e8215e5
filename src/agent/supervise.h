/* Supervision and the agent's privilege split (docs/pipeline.md
 * "Processes and privileges", SPEC §8, §9).
 *
 * daemoneye-agent starts as a small supervisor that keeps the privileges it
 * was started with and does only this: prepare the data directory (owned by
 * the engine's user), spawn the configured collectors (`collectors:` with
 * spawn: true) with DAEMONEYE_BROKER_SOCKET set, restart a dead collector
 * within 5 s (backoff 250 ms doubling to 4 s, reset after 30 s of uptime),
 * run the engine in a child that drops privileges at once, restart the
 * engine if it dies, and on SIGTERM/SIGINT stop everything within 5 s.
 * It never parses a frame, opens the store or runs a rule.
 *
 * The supervisor tells the engine what happens to collectors over a
 * SOCK_SEQPACKET pair, one JSON object per message:
 *	{"event":"start","id":"procmond","pid":123,"restarts":0,"binary":"..."}
 *	{"event":"exit","id":"procmond","pid":123,"status":"killed by signal 9",
 *	 "restarts":1,"restart_in_ms":500}
 * and the engine asks for a restart the same way ({"restart":"procmond"})
 * when a collector stops answering heartbeats. */
#ifndef DE_AGENT_SUPERVISE_H
#define DE_AGENT_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct json_t;

#define SUPERVISE_STOP_MS 4500
#define SUPERVISE_MSG_MAX 4096

struct supervise_opts {
	const struct de_config *cfg;
	const char *config_path; /* --config, passed on to procmond; may be NULL */
	const char *log_level;   /* --log-level, passed on to procmond; may be NULL */
	const char *socket_path; /* the engine's socket */
	const char *data_dir;
	const char *wal_dir;
	uid_t engine_uid; /* owner of data_dir */
	gid_t engine_gid;
	uid_t collector_uid; /* owner of wal_dir */
	gid_t collector_gid;
	/* Runs the engine in the child; chan is the SEQPACKET end. Returns the
	 * child's exit status. */
	int (*engine)(void *ctx, int chan);
	void *ctx;
};

/* Runs the supervisor until SIGTERM/SIGINT. Returns the process exit status
 * (0 after a clean stop, 1 when the engine could not start at all). */
int supervise_run(const struct supervise_opts *o);

/* Resolves a collector's binary: a path with a slash is used as is; else, for
 * procmond, $DAEMONEYE_PROCMOND_BINARY, then beside the agent binary
 * (../procmond/procmond in the build tree, ./procmond when installed), then
 * /usr/sbin, /usr/local/sbin, /usr/libexec/daemoneye. Returns 0 with the
 * path in buf, or -ENOENT. */
int supervise_find_binary(const char *binary, char *buf, size_t n);

/* The engine's view of the supervisor's reports (for health and the ledger). */
struct supervise_view;

int supervise_view_new(int chan, struct supervise_view **ret);
void supervise_view_free(struct supervise_view *v);
int supervise_view_fd(const struct supervise_view *v);
/* Reads pending messages; calls fn for each (event "start"/"exit", the
 * collector id and the message as JSON text). Returns 0, or -ECONNRESET
 * when the supervisor is gone. */
int supervise_view_read(struct supervise_view *v,
                        void (*fn)(void *ctx, const char *event, const char *id, const char *json),
                        void *ctx);
/* Asks the supervisor to restart a collector (heartbeats failed). */
int supervise_view_request_restart(struct supervise_view *v, const char *id);
/* [{"id","pid","running","restarts","last_exit"}] (new reference). */
struct json_t *supervise_view_json(const struct supervise_view *v);

#endif
