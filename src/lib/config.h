/* Configuration (SPEC §4): one YAML file, table-driven (STYLE.md rule 10).
 *
 * Precedence, highest first: command-line flags (applied by each program's
 * main after config_load) > environment DAEMONEYE_<SECTION>_<KEY> >
 * ~/.config/daemoneye/config.yaml > /etc/daemoneye/config.yaml > embedded
 * defaults. With an explicit path (--config) only that file is read instead of
 * the two standard ones. Unknown keys, wrong types and out-of-range values are
 * errors that name the file and line. */
#ifndef DE_CONFIG_H
#define DE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "errbuf.h"

#define CONFIG_MAX_RULES_DIRS 16
#define CONFIG_MAX_SINKS      16
#define CONFIG_MAX_COLLECTORS 8
#define CONFIG_MAX_ARGS       32

enum sink_type {
	SINK_STDOUT = 0,
	SINK_FILE,
	SINK_SYSLOG,
	SINK_WEBHOOK,
};

enum sink_format {
	SINK_FORMAT_JSON = 0,
	SINK_FORMAT_HUMAN,
	SINK_FORMAT_CSV,
};

struct sink_config {
	enum sink_type type;
	enum sink_format format; /* stdout, file */
	char *path;              /* file */
	uint64_t max_bytes;      /* file: rotate at this size (default 64 MiB) */
	uint32_t max_files;      /* file: rotated files kept (default 5) */
	char *facility;          /* syslog: "auth" default */
	char *server;        /* syslog: "tcp://host:514", "tls://host:6514" or NULL = /dev/log */
	char *url;           /* webhook */
	uint32_t timeout_ms; /* webhook (default 5000) */
	uint64_t spool_max_bytes; /* every sink: on-disk spool bound (default 64 MiB) */
	/* syslog tls:// and webhook https:// only (absolute paths, optional): */
	char *ca_file;     /* trust this PEM CA file instead of the system store */
	char *client_cert; /* PEM client certificate (chain) for mutual TLS ... */
	char *client_key;  /* ... and its PEM private key; both or neither */
};

struct collector_config {
	char *id;     /* "procmond" */
	char *binary; /* a path, or a name looked up beside the agent binary */
	char *args[CONFIG_MAX_ARGS];
	size_t n_args;
	bool spawn;
};

struct de_config {
	struct {
		char *data_dir;                /* default "/var/lib/daemoneye" */
		char *socket;                  /* default "<data_dir>/daemoneye.sock" when NULL */
		char *user;                    /* default "daemoneye" */
		uint32_t scan_interval_ms;     /* default 1000 */
		uint32_t startup_timeout_s;    /* default 60 */
		uint32_t heartbeat_interval_s; /* default 30 */
		uint32_t retention_days;       /* default 30 */
	} agent;
	struct {
		char *collector;           /* "auto" | "ebpf" | "netlink" | "poll" */
		bool compute_hashes;       /* default true */
		uint64_t max_buffer_bytes; /* default 10 MiB */
		char *wal_dir;             /* default "<data_dir>/wal" when NULL */
		uint64_t wal_rotate_bytes; /* default 80 MiB */
		char *user; /* default "daemoneye" (falls back to staying root only for caps) */
	} procmond;
	struct {
		char *rules_dirs[CONFIG_MAX_RULES_DIRS];
		size_t n_rules_dirs;      /* default one: "/etc/daemoneye/rules" */
		uint32_t rule_timeout_ms; /* default 100 */
	} detection;
	struct {
		uint32_t dedup_window_s;        /* default 300 */
		uint32_t max_alerts_per_minute; /* default 600 */
		struct sink_config sinks[CONFIG_MAX_SINKS];
		size_t n_sinks; /* default one: stdout human */
	} alerting;
	struct collector_config collectors[CONFIG_MAX_COLLECTORS];
	size_t n_collectors; /* default one: procmond, spawn */
	char *source_path;   /* the file that was read last, or NULL */
};

/* Fills cfg with the embedded defaults. Returns 0 or -ENOMEM. */
int config_defaults(struct de_config *cfg);

/* Loads the configuration with the precedence above (everything but the
 * command-line flags). path is the --config file or NULL. On success *cfg is
 * filled (the caller frees it with config_free). Returns -EINVAL with
 * "file:line: reason" in err for a bad file, -errno for I/O errors. */
int config_load(const char *path, struct de_config *cfg, struct errbuf *err);

/* Parses one YAML document from memory (name is used in messages) on top of
 * what cfg already holds. Same errors as config_load. */
int config_parse_string(struct de_config *cfg, const char *name, const char *yaml, size_t len,
                        struct errbuf *err);

/* Applies DAEMONEYE_<SECTION>_<KEY> variables from environ. */
int config_apply_env(struct de_config *cfg, struct errbuf *err);

/* Sets a single key by dotted name ("agent.data_dir") from a string, as a
 * command-line flag does. Same validation as the file. */
int config_set(struct de_config *cfg, const char *key, const char *value, struct errbuf *err);

/* Adds one entry to a list key ("detection.rules_dirs"), as a repeatable
 * flag (--rules-dir) does; config_set() on a list key replaces the whole list
 * with its colon-separated items. Returns 0, -EINVAL (reason in err) or
 * -ENOMEM. */
int config_append(struct de_config *cfg, const char *key, const char *value, struct errbuf *err);

/* Deep copy of src into *ret (the caller frees it with config_free), e.g. to
 * try a reload without touching the running configuration. Returns 0 or
 * -ENOMEM (and then *ret is untouched). */
int config_copy(const struct de_config *src, struct de_config *ret);

/* Cross-field checks (a file sink needs a path, ...). Returns 0 or -EINVAL. */
int config_validate(const struct de_config *cfg, struct errbuf *err);

/* Prints a human summary (what --check-config prints) to f. */
void config_print_summary(const struct de_config *cfg, FILE *f);

/* The effective socket path and WAL dir (resolving the NULL defaults) into buf. */
int config_socket_path(const struct de_config *cfg, char *buf, size_t n);
int config_wal_dir(const struct de_config *cfg, char *buf, size_t n);

void config_free(struct de_config *cfg);

const char *sink_type_to_string(enum sink_type t);
const char *sink_format_to_string(enum sink_format f);

#endif
