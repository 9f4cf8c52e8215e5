/* Internals shared by the store's translation units (store.c: schema,
 * ingest, alerts, queries; store-eval.c: rule evaluation). Not part of the
 * store's contract: only src/lib/store*.c include this. */
#ifndef DAEMONEYE_STORE_INTERNAL_H
#define DAEMONEYE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "process.h"
#include "sqlguard.h"
#include "store.h"

#define SQL_MAX               4096
#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- The process columns: one table drives schema, inserts and binding. */

enum col_kind {
	COL_I32,    /* int32_t */
	COL_ID32,   /* int32_t, NULL when negative (unknown) */
	COL_ID64,   /* int64_t, NULL when negative (unknown) */
	COL_U64,    /* uint64_t */
	COL_U32,    /* uint32_t */
	COL_REAL,   /* double */
	COL_TEXT,   /* char *, NULL when unknown */
	COL_BOOL,   /* bool, stored 0/1 */
	COL_EVTYPE, /* the event's type name */
	COL_EVTIME, /* the event's time */
};

struct proc_col {
	const char *name;
	const char *sqltype;
	enum col_kind kind;
	size_t off; /* into struct process_record */
};

/* Every process column, in schema order (store.c). */
extern const struct proc_col proc_cols[];
extern const int N_PROC_COLS;

/* The cached statements of the read-write store. */
enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_HW_GET,
	ST_HW_SET,
	ST_EV_INSERT,
	ST_INST_UPSERT,
	ST_INST_STOP,
	ST_ALERT_PUT,
	_ST_MAX,
};

struct store {
	sqlite3 *db;
	enum store_mode mode;
	bool memory;
	char *path;
	struct sqlguard *guard; /* lazily attached: store_query, shared eval */
	pthread_mutex_t mu;     /* one caller at a time (agent threads share a store) */
	sqlite3_stmt *st[_ST_MAX];
};

/* SQLite result code -> 0 or -errno. */
int store_map_rc(int rc);
/* Appends "fmt" to buf at *len; false when it does not fit. */
bool store_sql_append(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "pid INTEGER NOT NULL, ppid INTEGER, ..." or, with types false, "pid, ppid, ...". */
bool store_sql_cols(char *buf, size_t n, size_t *len, bool types);
/* "?first, ?first+1, ..." for the process columns. */
bool store_sql_params(char *buf, size_t n, size_t *len, int first);
/* Binds the process columns of ev to parameters first.. of st (strings
 * SQLITE_STATIC: ev must outlive the step). Returns an SQLite code. */
int store_bind_proc(sqlite3_stmt *st, int first, const struct process_event *ev);
/* Steps a statement that returns no rows; returns 0 or -errno. */
int store_step_done(sqlite3_stmt *st);
/* Steps a sandboxed statement to the end (or until cb stops it); returns
 * the rows seen or -errno with err set. */
int store_run_guarded(struct sqlguard *g, enum sqlguard_kind kind, sqlite3_stmt *st,
                      uint32_t timeout_ms, store_row_cb cb, void *ctx, struct errbuf *err);
/* Attaches the SQL sandbox to s's own connection once. */
int store_ensure_guard(struct store *s, struct errbuf *err);
/* The name of the store's VFS (store-vfs.c: the default one, writing each
 * WAL frame with one system call instead of two), registered at the first
 * call. Returns 0, or -errno when it cannot be set up. */
int store_vfs_name(const char **ret);

#endif
