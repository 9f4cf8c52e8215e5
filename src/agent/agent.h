/* daemoneye-agent's engine: the state shared by main.c's loop and its
 * helpers (docs/pipeline.md). One engine per process, single-threaded except
 * for the alert sinks' workers. */
#ifndef DE_AGENT_AGENT_H
#define DE_AGENT_AGENT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker.h"
#include "config.h"
#include "registry.h"

struct store;
struct ledger;
struct alerts;
struct detect;
struct control;
struct ingest;
struct supervise_view;

/* The seed's agent state machine. */
enum agent_state {
	AGENT_LOADING = 0,    /* waiting for the spawned collectors to register */
	AGENT_READY,          /* all registered: BeginMonitoring goes out */
	AGENT_STEADY,         /* normal operation */
	AGENT_STARTUP_FAILED, /* startup_timeout passed first; still serving */
	AGENT_SHUTTING_DOWN,
};

/* Command-line overrides, re-applied on every (re)load of the config. */
struct agent_flags {
	const char *config_path;
	const char *data_dir;
	const char *socket;
	const char *rules_dirs[CONFIG_MAX_RULES_DIRS];
	size_t n_rules_dirs;
	const char *log_level;
	bool check_config;
};

struct agent {
	struct agent_flags flags;
	struct de_config cfg;
	char data_dir[PATH_MAX];
	char socket_path[PATH_MAX];
	char wal_dir[PATH_MAX];
	char user[64];

	int epfd, sigfd, timerfd;
	struct ev_watch sig_w, timer_w, sup_w;

	struct store *store;
	struct ledger *ledger;
	struct alerts *alerts;
	struct detect *detect;
	struct control *control;
	struct ingest *ingest;
	struct registry reg;
	struct broker *broker;
	struct supervise_view *sup;

	enum agent_state state;
	char state_reason[256];
	uint64_t started_ms, state_since_ms;
	size_t expected_collectors;
	uint64_t ticks, reloads, reload_failures;
	bool stop;
	uint64_t stop_deadline_ms;
};

const char *agent_state_to_string(enum agent_state s);

#endif
