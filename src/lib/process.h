/* The process record and process event: the one in-memory shape of a process
 * shared by procmond (which fills it from /proc or the kernel), the pipeline
 * (which carries it as a protobuf ProcessRecord) and the agent (which stores it
 * in the `processes` columns of SPEC §5).
 *
 * Strings are heap-owned by the record, valid UTF-8, already sanitized
 * (SPEC §7) by whoever filled them, and NULL when unknown. Numbers that can be
 * unknown use -1 (ids) and have a bit in `missing`. */
#ifndef DE_PROCESS_H
#define DE_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

struct json_t;

enum proc_event_type {
	PROC_EV_SNAPSHOT = 0,
	PROC_EV_START,
	PROC_EV_STOP,
	PROC_EV_MODIFIED,
	PROC_EV_SUSPICIOUS,
	_PROC_EV_MAX,
};

/* Bits of process_record.missing: the field could not be read (the process
 * was gone, or access was denied) rather than being genuinely empty. */
enum {
	PROC_MISSING_EXE = 1u << 0,
	PROC_MISSING_CMDLINE = 1u << 1,
	PROC_MISSING_CWD = 1u << 2,
	PROC_MISSING_STATUS = 1u << 3, /* uids, gids, threads */
	PROC_MISSING_STAT = 1u << 4,   /* ppid, state, start time, cpu, memory */
	PROC_MISSING_HASH = 1u << 5,
	PROC_MISSING_CGROUP = 1u << 6,
	PROC_MISSING_PARENT = 1u << 7,
};

/* Upper bound of a command line we keep (bytes, before sanitizing). */
#define PROC_CMDLINE_MAX 4096

struct process_record {
	int32_t pid;
	int32_t ppid;
	char *name;            /* comm, or argv[0]'s basename when comm is cut */
	char *executable_path; /* readlink of /proc/PID/exe, " (deleted)" removed */
	char *command_line;    /* sanitized, space-joined argv */
	uint64_t start_time;   /* epoch ms */
	uint64_t start_ticks;  /* clock ticks after boot (stat field 22): identity for PID reuse */
	double cpu_usage;      /* percent of one CPU over the last interval */
	uint64_t memory_usage; /* resident bytes */
	char *executable_hash; /* SHA-256 lowercase hex, or NULL */
	int64_t user_id;       /* real uid, -1 unknown */
	int64_t effective_user_id;
	int64_t group_id;
	char *user_name;
	char *cwd;
	char *tty;   /* "pts/3", or NULL when none */
	char *state; /* one letter of /proc/PID/stat: R S D Z T t X I */
	int32_t threads;
	bool accessible;     /* everything we tried to read was readable */
	bool file_exists;    /* the executable is on disk now */
	bool exe_deleted;    /* the running image was unlinked (or is memfd) */
	bool exe_memfd;      /* the image is a memfd / anonymous file */
	bool argv_truncated; /* the command line was longer than PROC_CMDLINE_MAX */
	char *parent_name;
	char *parent_executable_path;
	char *parent_command_line;
	char *container_id; /* 64-hex (docker/containerd/podman) or NULL */
	char *cgroup;       /* the unified (or first) cgroup path */
	uint32_t missing;   /* PROC_MISSING_* */
};

struct process_event {
	enum proc_event_type type;
	uint64_t time; /* epoch ms the event was observed */
	uint64_t seq;  /* WAL sequence, 0 until written */
	char *source;  /* "ebpf", "netlink", "poll" */
	struct process_record proc;
	/* Event-specific details; 0/NULL when not relevant. */
	int32_t exit_code;     /* stop: exit status when known, else -1 */
	uint64_t runtime_ms;   /* stop: how long it lived */
	char *modified_fields; /* modified: comma-separated column names */
	char *reason;          /* suspicious: why */
};

/* Initializes a record with unknown ids (-1) and no strings. */
void process_record_init(struct process_record *p);
/* Frees the strings of a record (not the record itself) and re-initializes it. */
void process_record_clear(struct process_record *p);
/* Deep copy. Returns 0 or -ENOMEM (dst is then cleared). */
int process_record_copy(struct process_record *dst, const struct process_record *src);

void process_event_init(struct process_event *e);
void process_event_clear(struct process_event *e);
int process_event_copy(struct process_event *dst, const struct process_event *src);

/* "snapshot", "start", "stop", "modified", "suspicious"; "unknown" otherwise. */
const char *proc_event_type_to_string(enum proc_event_type t);
/* Returns 0 and sets *ret, or -EINVAL. */
int proc_event_type_from_string(const char *s, enum proc_event_type *ret);

/* Builds the JSON object of the process columns of SPEC §5 (new reference).
 * collection_time and event_type are taken from ev when given. NULL on OOM. */
struct json_t *process_record_to_json(const struct process_record *p,
                                      const struct process_event *ev);

/* Formats one SPEC §3 JSON line (no trailing newline) into a new string:
 * {"event":"start","time":"RFC3339","process":{...}}. NULL on OOM. */
char *process_event_to_json_line(const struct process_event *e);

#endif
