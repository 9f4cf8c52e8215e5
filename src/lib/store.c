/* The event store: see store.h and docs/store.md. The one owner of SQLite
 * (with sqlguard.c, STYLE.md rule 8). */
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "sqlguard.h"
#include "store-internal.h"
#include "timeutil.h"
#include "util.h"

#define STORE_SCHEMA_VERSION "2" /* PRAGMA user_version */

/* ---- The process columns: one table drives schema, inserts and binding. */

#define PC(n, t, k)                                          \
	{                                                    \
#n, t, k, offsetof(struct process_record, n) \
	}
const struct proc_col proc_cols[] = {
	PC(pid, "INTEGER NOT NULL", COL_I32),
	PC(ppid, "INTEGER", COL_ID32),
	PC(name, "TEXT", COL_TEXT),
	PC(executable_path, "TEXT", COL_TEXT),
	PC(command_line, "TEXT", COL_TEXT),
	PC(start_time, "INTEGER NOT NULL", COL_U64),
	PC(start_ticks, "INTEGER", COL_U64),
	PC(cpu_usage, "REAL", COL_REAL),
	PC(memory_usage, "INTEGER", COL_U64),
	PC(executable_hash, "TEXT", COL_TEXT),
	PC(user_id, "INTEGER", COL_ID64),
	PC(effective_user_id, "INTEGER", COL_ID64),
	PC(group_id, "INTEGER", COL_ID64),
	PC(user_name, "TEXT", COL_TEXT),
	PC(cwd, "TEXT", COL_TEXT),
	PC(tty, "TEXT", COL_TEXT),
	PC(state, "TEXT", COL_TEXT),
	PC(threads, "INTEGER", COL_I32),
	PC(accessible, "INTEGER", COL_BOOL),
	PC(file_exists, "INTEGER", COL_BOOL),
	PC(exe_deleted, "INTEGER", COL_BOOL),
	PC(exe_memfd, "INTEGER", COL_BOOL),
	PC(argv_truncated, "INTEGER", COL_BOOL),
	PC(parent_name, "TEXT", COL_TEXT),
	PC(parent_executable_path, "TEXT", COL_TEXT),
	PC(parent_command_line, "TEXT", COL_TEXT),
	PC(container_id, "TEXT", COL_TEXT),
	PC(cgroup, "TEXT", COL_TEXT),
	PC(missing, "INTEGER", COL_U32),
	{ "event_type", "TEXT", COL_EVTYPE, 0 },
	{ "collection_time", "INTEGER", COL_EVTIME, 0 },
};
#undef PC
const int N_PROC_COLS = (int)ARRAY_SIZE(proc_cols);

int
store_map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_TOOBIG:
		return -E2BIG;
	default:
		return -EIO;
	}
}

/* Appends "fmt" to buf at *len; false when it does not fit. */
bool
store_sql_append(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*len >= n)
		return false;
	va_start(ap, fmt);
	r = vsnprintf(buf + *len, n - *len, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= n - *len)
		return false;
	*len += (size_t)r;
	return true;
}

/* "pid INTEGER NOT NULL, ppid INTEGER, ..." or, with types false, "pid, ppid, ...". */
bool
store_sql_cols(char *buf, size_t n, size_t *len, bool types)
{
	for (int i = 0; i < N_PROC_COLS; i++)
		if (!store_sql_append(buf, n, len, "%s%s%s%s", i ? ", " : "", proc_cols[i].name,
		                      types ? " " : "", types ? proc_cols[i].sqltype : ""))
			return false;
	return true;
}

/* "?first, ?first+1, ..." for the process columns. */
bool
store_sql_params(char *buf, size_t n, size_t *len, int first)
{
	for (int i = 0; i < N_PROC_COLS; i++)
		if (!store_sql_append(buf, n, len, "%s?%d", i ? ", " : "", first + i))
			return false;
	return true;
}

/* Binds the process columns of ev to parameters first.. of st. The strings
 * are bound SQLITE_STATIC: ev must outlive the step. */
int
store_bind_proc(sqlite3_stmt *st, int first, const struct process_event *ev)
{
	const char *base = (const char *)&ev->proc;
	int rc = SQLITE_OK;

	for (int i = 0; i < N_PROC_COLS && rc == SQLITE_OK; i++) {
		const struct proc_col *c = &proc_cols[i];
		const void *p = base + c->off;
		int idx = first + i;

		switch (c->kind) {
		case COL_I32:
			rc = sqlite3_bind_int(st, idx, *(const int32_t *)p);
			break;
		case COL_ID32:
			rc = *(const int32_t *)p < 0
			         ? sqlite3_bind_null(st, idx)
			         : sqlite3_bind_int(st, idx, *(const int32_t *)p);
			break;
		case COL_ID64:
			rc = *(const int64_t *)p < 0
			         ? sqlite3_bind_null(st, idx)
			         : sqlite3_bind_int64(st, idx, *(const int64_t *)p);
			break;
		case COL_U64:
			rc = sqlite3_bind_int64(st, idx, (sqlite3_int64) * (const uint64_t *)p);
			break;
		case COL_U32:
			rc = sqlite3_bind_int64(st, idx, *(const uint32_t *)p);
			break;
		case COL_REAL:
			rc = sqlite3_bind_double(st, idx, *(const double *)p);
			break;
		case COL_TEXT:
			rc = sqlite3_bind_text(st, idx, *(char *const *)p, -1, SQLITE_STATIC);
			break;
		case COL_BOOL:
			rc = sqlite3_bind_int(st, idx, *(const bool *)p ? 1 : 0);
			break;
		case COL_EVTYPE:
			rc = sqlite3_bind_text(st, idx, proc_event_type_to_string(ev->type), -1,
			                       SQLITE_STATIC);
			break;
		case COL_EVTIME:
			rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)ev->time);
			break;
		}
	}
	return rc;
}

static const char schema_fixed[] =
    "CREATE TABLE IF NOT EXISTS alerts ("
    " alert_id TEXT PRIMARY KEY, timestamp INTEGER NOT NULL, rule_id TEXT NOT NULL,"
    " severity TEXT NOT NULL, severity_rank INTEGER NOT NULL, category TEXT,"
    " dedup_key TEXT, pid INTEGER, process_start_time INTEGER,"
    " repeat_count INTEGER NOT NULL DEFAULT 1, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts(timestamp);"
    "CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts(rule_id, timestamp);"
    "CREATE INDEX IF NOT EXISTS alerts_by_severity ON alerts(severity_rank, timestamp);"
    "CREATE TABLE IF NOT EXISTS detection_rules ("
    " id TEXT PRIMARY KEY, name TEXT, description TEXT, severity TEXT,"
    " severity_rank INTEGER, category TEXT, enabled INTEGER, sql TEXT, sha256 TEXT,"
    " path TEXT, loaded_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS system_info ("
    " key TEXT PRIMARY KEY, value TEXT, updated INTEGER);"
    "CREATE TABLE IF NOT EXISTS scan_metadata ("
    " id INTEGER PRIMARY KEY, collector_id TEXT, time INTEGER, process_count INTEGER,"
    " duration_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS scan_by_time ON scan_metadata(time);"
    "CREATE TABLE IF NOT EXISTS collector_state ("
    " collector_id TEXT PRIMARY KEY, high_water INTEGER NOT NULL, updated INTEGER);"
    "CREATE INDEX IF NOT EXISTS events_by_time ON process_events(collection_time);"
    "CREATE INDEX IF NOT EXISTS events_by_pid ON process_events(pid, start_time);";

/* One row per process instance; see store_create_schema(). */
static const char schema_instance_state[] =
    "CREATE TABLE IF NOT EXISTS instance_state (pid INTEGER NOT NULL,"
    " start_time INTEGER NOT NULL, event_id INTEGER NOT NULL,"
    " first_seen INTEGER, last_seen INTEGER, stopped INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (pid, start_time)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS instance_live ON instance_state(pid, start_time)"
    " WHERE stopped = 0;";

/* The process columns of an instance, as the views over instance_state
 * (alias s) and the event row holding its latest record (alias e) show
 * them: identity and times from s, the rest from e; a stopped instance
 * shows event_type 'stop' and its stop time (what a stop writes). */
static bool
store_sql_instance_cols(char *buf, size_t n, size_t *len)
{
	for (int i = 0; i < N_PROC_COLS; i++) {
		const char *c = proc_cols[i].name, *expr;
		char col[64];

		if (streq(c, "pid") || streq(c, "start_time"))
			expr = streq(c, "pid") ? "s.pid" : "s.start_time";
		else if (streq(c, "event_type"))
			expr = "CASE WHEN s.stopped THEN 'stop' ELSE e.event_type END";
		else if (streq(c, "collection_time"))
			expr = "s.last_seen";
		else if ((size_t)snprintf(col, sizeof(col), "e.%s", c) < sizeof(col))
			expr = col;
		else
			return false;
		if (!store_sql_append(buf, n, len, "%s%s AS %s", i ? ", " : "", expr, c))
			return false;
	}
	return true;
}

/* Creates every table, index and view (idempotent). Shared by the file store
 * and the in-memory sample database of rule validation.
 *
 * Each event writes its full record once, into process_events. An instance
 * is a small instance_state row pointing at the event that holds its latest
 * record (event_id), with its first and last sighting and whether it has
 * stopped; process_instances, processes and live_processes are views that
 * join it to that event row, so readers see the columns of SPEC 5 without the
 * store writing a full row three times per event. The partial index
 * instance_live holds the instances not stopped: live_processes is those,
 * minus an instance whose pid has a newer one (the pid was reused). */
static int
store_create_schema(sqlite3 *db)
{
	char sql[SQL_MAX * 4];
	size_t len = 0;
	bool ok;

	ok = store_sql_append(sql, sizeof(sql), &len,
	                      "CREATE TABLE IF NOT EXISTS process_events (id INTEGER PRIMARY KEY,"
	                      " collector_id TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT,"
	                      " exit_code INTEGER, runtime_ms INTEGER, modified_fields TEXT,"
	                      " reason TEXT, ") &&
	     store_sql_cols(sql, sizeof(sql), &len, true) &&
	     store_sql_append(sql, sizeof(sql), &len, ");%s", schema_instance_state) &&
	     store_sql_append(sql, sizeof(sql), &len,
	                      "CREATE VIEW IF NOT EXISTS process_instances AS SELECT ") &&
	     store_sql_instance_cols(sql, sizeof(sql), &len) &&
	     store_sql_append(sql, sizeof(sql), &len,
	                      ", s.first_seen AS first_seen, s.last_seen AS last_seen"
	                      " FROM instance_state AS s CROSS JOIN process_events AS e"
	                      " ON e.id = s.event_id;"
	                      "CREATE VIEW IF NOT EXISTS processes AS SELECT ") &&
	     store_sql_cols(sql, sizeof(sql), &len, false) &&
	     store_sql_append(sql, sizeof(sql), &len,
	                      " FROM process_instances;"
	                      "CREATE VIEW IF NOT EXISTS live_processes AS SELECT ") &&
	     store_sql_instance_cols(sql, sizeof(sql), &len) &&
	     store_sql_append(sql, sizeof(sql), &len,
	                      " FROM instance_state AS s INDEXED BY instance_live"
	                      " CROSS JOIN process_events AS e ON e.id = s.event_id"
	                      " WHERE s.stopped = 0 AND NOT EXISTS (SELECT 1"
	                      " FROM instance_state AS n WHERE n.pid = s.pid"
	                      " AND n.start_time > s.start_time);");
	if (!ok)
		return -E2BIG;
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema_fixed, NULL, NULL, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(db));
	return 0;
}

/* Builds the text of a cached statement. */
static bool
stmt_sql(int id, char *b, size_t n)
{
	size_t l = 0;

	switch (id) {
	case ST_BEGIN:
		return store_sql_append(b, n, &l, "BEGIN IMMEDIATE");
	case ST_COMMIT:
		return store_sql_append(b, n, &l, "COMMIT");
	case ST_ROLLBACK:
		return store_sql_append(b, n, &l, "ROLLBACK");
	case ST_HW_GET:
		return store_sql_append(
		    b, n, &l, "SELECT high_water FROM collector_state WHERE collector_id = ?1");
	case ST_HW_SET:
		return store_sql_append(
		    b, n, &l,
		    "INSERT INTO collector_state (collector_id, high_water, updated)"
		    " VALUES (?1, ?2, ?3) ON CONFLICT (collector_id) DO UPDATE SET"
		    " high_water = excluded.high_water, updated = excluded.updated");
	case ST_EV_INSERT:
		return store_sql_append(
		           b, n, &l,
		           "INSERT INTO process_events (collector_id, seq, source, exit_code,"
		           " runtime_ms, modified_fields, reason, ") &&
		       store_sql_cols(b, n, &l, false) &&
		       store_sql_append(b, n, &l, ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ") &&
		       store_sql_params(b, n, &l, 8) && store_sql_append(b, n, &l, ")");
	case ST_INST_UPSERT:
		return store_sql_append(
		    b, n, &l,
		    "INSERT INTO instance_state (pid, start_time, event_id, first_seen,"
		    " last_seen) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (pid, start_time)"
		    " DO UPDATE SET event_id = excluded.event_id,"
		    " last_seen = excluded.last_seen, stopped = 0");
	case ST_INST_STOP:
		return store_sql_append(b, n, &l,
		                        "UPDATE instance_state SET stopped = 1, last_seen = ?3"
		                        " WHERE pid = ?1 AND (?2 = 0 OR start_time = ?2)");
	case ST_ALERT_PUT:
		return store_sql_append(
		    b, n, &l,
		    "INSERT INTO alerts (alert_id, timestamp, rule_id, severity,"
		    " severity_rank, category, dedup_key, pid, process_start_time,"
		    " repeat_count, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
		    " ?10, ?11) ON CONFLICT (alert_id) DO UPDATE SET"
		    " repeat_count = excluded.repeat_count, json = excluded.json");
	default:
		return false;
	}
}

/* Returns the cached statement id, reset; its parameters keep the values of
 * the last run until the caller binds them all again. */
static sqlite3_stmt *
stmt_get(struct store *s, int id)
{
	char sql[SQL_MAX];

	if (s->st[id] == NULL) {
		if (!stmt_sql(id, sql, sizeof(sql)))
			return NULL;
		if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[id],
		                       NULL) != SQLITE_OK)
			return NULL;
	} else {
		/* No sqlite3_clear_bindings(): every caller binds every
		 * parameter of its statement each time (NULL included). */
		sqlite3_reset(s->st[id]);
	}
	return s->st[id];
}

/* Steps a statement that returns no rows; returns 0 or -errno. */
int
store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : store_map_rc(rc);
}

static int
exec_id(struct store *s, int id)
{
	sqlite3_stmt *st = stmt_get(s, id);

	return st ? store_step_done(st) : store_map_rc(sqlite3_errcode(s->db));
}

/* The type of the schema object called name ("table", "view"), or "" when
 * there is none, into type[n]. Returns 0 or -errno. */
static int
schema_type(sqlite3 *db, const char *name, char *type, size_t n)
{
	static const char sql[] = "SELECT type FROM sqlite_schema WHERE name = ?1";
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(db));
	(void)sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	type[0] = '\0';
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		de_strlcpy(type, (const char *)sqlite3_column_text(st, 0), n);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_map_rc(rc);
}

/* Brings a database of schema version 1 up to date, inside the caller's
 * transaction. Version 1 wrote every event's full record three times: into
 * process_events and into the tables process_instances and live_processes.
 * Since version 2 an instance is an instance_state row pointing at the event
 * that holds its latest record, and both names are views. An instance whose
 * latest record is no longer in process_events (trimmed by retention) cannot
 * point anywhere and is dropped; a process still running is reported again
 * by the collector's next snapshot. */
static int
store_migrate(sqlite3 *db)
{
	static const char copy[] =
	    "INSERT OR IGNORE INTO instance_state (pid, start_time, event_id, first_seen,"
	    " last_seen, stopped) SELECT * FROM (SELECT i.pid, i.start_time, (SELECT max(e.id)"
	    " FROM process_events AS e WHERE e.pid = i.pid AND e.start_time = i.start_time"
	    " AND e.event_type <> 'stop') AS ev, i.first_seen, i.last_seen,"
	    " i.event_type = 'stop' FROM process_instances AS i) WHERE ev IS NOT NULL;"
	    "DROP VIEW IF EXISTS processes;"
	    "DROP TABLE process_instances;";
	char type[16];
	int rc;

	if ((rc = schema_type(db, "live_processes", type, sizeof(type))) < 0)
		return rc;
	if (streq(type, "table") &&
	    sqlite3_exec(db, "DROP TABLE live_processes", NULL, NULL, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(db));
	if ((rc = schema_type(db, "process_instances", type, sizeof(type))) < 0)
		return rc;
	if (!streq(type, "table"))
		return 0;
	if (sqlite3_exec(db, schema_instance_state, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, copy, NULL, NULL, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(db));
	return 0;
}

static int
store_configure_rw(struct store *s)
{
	static const char *const pragmas[] = {
		/* WAL: readers (the CLI, detect) never block the writer. */
		"PRAGMA journal_mode = WAL",
		/* NORMAL in WAL mode: a commit survives a crash of the process;
		 * only a power loss can roll back the newest commits, and the
		 * collector's WAL replays those (docs/store.md). */
		"PRAGMA synchronous = NORMAL",
		"PRAGMA foreign_keys = OFF",
		"PRAGMA temp_store = MEMORY",
		"PRAGMA cache_size = -8192",
		"PRAGMA wal_autocheckpoint = 2000",
	};

	for (size_t i = 0; i < ARRAY_SIZE(pragmas); i++) {
		if (s->memory && i < 2)
			continue;
		if (sqlite3_exec(s->db, pragmas[i], NULL, NULL, NULL) != SQLITE_OK)
			return store_map_rc(sqlite3_errcode(s->db));
	}
	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(s->db));
	int rc = store_migrate(s->db);
	if (rc == 0)
		rc = store_create_schema(s->db);
	if (rc == 0 && sqlite3_exec(s->db, "PRAGMA user_version = " STORE_SCHEMA_VERSION, NULL,
	                            NULL, NULL) != SQLITE_OK)
		rc = store_map_rc(sqlite3_errcode(s->db));
	if (rc < 0) {
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(s->db));
	return 0;
}

int
store_open(const char *path, enum store_mode mode, struct store **ret)
{
	const char *vfs = NULL;
	struct store *s;
	int flags, rc;

	if (path == NULL)
		return -EINVAL;
	/* The writer's WAL frames go out with one system call each. */
	if (mode == STORE_RW && (rc = store_vfs_name(&vfs)) < 0)
		return rc;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	(void)pthread_mutex_init(&s->mu, NULL);
	s->mode = mode;
	s->memory = streq(path, ":memory:");
	if ((s->path = strdup(path)) == NULL) {
		store_close(s);
		return -ENOMEM;
	}
	if (mode == STORE_RO) {
		struct stat sb;
		if (stat(path, &sb) < 0) {
			rc = -errno;
			store_close(s);
			return rc;
		}
		flags = SQLITE_OPEN_READONLY;
	} else {
		flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	}
	/* NOMUTEX: every use of s->db holds s->mu (or, for the in-memory
	 * sample database, stays on its one thread), so SQLite's own
	 * per-call mutex would only be taken again on each of the ~40
	 * bind/step calls an event costs. */
	rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX,
	                     mode == STORE_RW && !s->memory ? vfs : NULL);
	if (rc != SQLITE_OK) {
		/* The operating system's reason (EACCES, ENOENT, ...) says more
		 * than SQLite's "unable to open database file". */
		int sys = s->db ? sqlite3_system_errno(s->db) : 0;
		rc = sys > 0 ? -sys : store_map_rc(rc);
		store_close(s);
		return rc;
	}
	(void)sqlite3_extended_result_codes(s->db, 0);
	(void)sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	if (mode == STORE_RW && (rc = store_configure_rw(s)) < 0) {
		store_close(s);
		return rc;
	}
	/* Prepare every cached statement now, before any sandbox limit is set
	 * on this connection, so a failure shows at open and not mid-ingest. */
	for (int i = 0; mode == STORE_RW && i < _ST_MAX; i++) {
		if (stmt_get(s, i) == NULL) {
			rc = store_map_rc(sqlite3_errcode(s->db));
			store_close(s);
			return rc < 0 ? rc : -EIO;
		}
	}
	*ret = s;
	return 0;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < _ST_MAX; i++)
		sqlite3_finalize(s->st[i]);
	/* close_v2 so an unfinished eval statement cannot make this leak. */
	if (s->db)
		(void)sqlite3_close_v2(s->db);
	sqlguard_free(s->guard);
	(void)pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}

const char *
store_path(const struct store *s)
{
	return s->path;
}

static int
hw_get_locked(struct store *s, const char *collector_id, uint64_t *ret)
{
	sqlite3_stmt *st = stmt_get(s, ST_HW_GET);
	int rc;

	if (st == NULL)
		return store_map_rc(sqlite3_errcode(s->db));
	(void)sqlite3_bind_text(st, 1, collector_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = (uint64_t)sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	} else if (rc == SQLITE_DONE) {
		*ret = 0;
	}
	sqlite3_reset(st);
	return store_map_rc(rc);
}

int
store_high_water(struct store *s, const char *collector_id, uint64_t *ret)
{
	uint64_t hw = 0;
	int rc;

	(void)pthread_mutex_lock(&s->mu);
	if (s->mode != STORE_RW) {
		/* The RO store caches no statements: ask directly. */
		sqlite3_stmt *st = NULL;
		rc = sqlite3_prepare_v2(
		    s->db, "SELECT high_water FROM collector_state WHERE collector_id = ?1", -1,
		    &st, NULL);
		if (rc == SQLITE_OK) {
			(void)sqlite3_bind_text(st, 1, collector_id, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW)
				hw = (uint64_t)sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
		rc = rc == SQLITE_ROW ? 0 : store_map_rc(rc);
	} else {
		rc = hw_get_locked(s, collector_id, &hw);
	}
	(void)pthread_mutex_unlock(&s->mu);
	if (rc < 0)
		return rc;
	*ret = hw;
	return 0;
}

/* Writes one event into the three process tables. */
static int
ingest_one(struct store *s, const char *collector_id, const struct process_event *ev)
{
	const struct process_record *p = &ev->proc;
	sqlite3_stmt *st;
	int rc;

	if ((st = stmt_get(s, ST_EV_INSERT)) == NULL)
		return store_map_rc(sqlite3_errcode(s->db));
	(void)sqlite3_bind_text(st, 1, collector_id, -1, SQLITE_STATIC);
	(void)sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->seq);
	(void)sqlite3_bind_text(st, 3, ev->source, -1, SQLITE_STATIC);
	if (ev->type == PROC_EV_STOP) {
		(void)sqlite3_bind_int(st, 4, ev->exit_code);
		(void)sqlite3_bind_int64(st, 5, (sqlite3_int64)ev->runtime_ms);
	} else {
		(void)sqlite3_bind_null(st, 4);
		(void)sqlite3_bind_null(st, 5);
	}
	(void)sqlite3_bind_text(st, 6, ev->modified_fields, -1, SQLITE_STATIC);
	(void)sqlite3_bind_text(st, 7, ev->reason, -1, SQLITE_STATIC);
	if (store_bind_proc(st, 8, ev) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(s->db));
	if ((rc = store_step_done(st)) < 0)
		return rc;

	if (ev->type == PROC_EV_STOP) {
		if ((st = stmt_get(s, ST_INST_STOP)) == NULL)
			return store_map_rc(sqlite3_errcode(s->db));
		(void)sqlite3_bind_int(st, 1, p->pid);
		(void)sqlite3_bind_int64(st, 2, (sqlite3_int64)p->start_time);
		(void)sqlite3_bind_int64(st, 3, (sqlite3_int64)ev->time);
		return store_step_done(st);
	}
	if ((st = stmt_get(s, ST_INST_UPSERT)) == NULL)
		return store_map_rc(sqlite3_errcode(s->db));
	(void)sqlite3_bind_int(st, 1, p->pid);
	(void)sqlite3_bind_int64(st, 2, (sqlite3_int64)p->start_time);
	(void)sqlite3_bind_int64(st, 3, sqlite3_last_insert_rowid(s->db));
	(void)sqlite3_bind_int64(st, 4, (sqlite3_int64)ev->time);
	return store_step_done(st);
}

static int
ingest_locked(struct store *s, const char *cid, const struct process_event *evs, size_t n,
              bool *ret_new)
{
	uint64_t hw = 0, old_hw;
	sqlite3_stmt *st;
	int rc, inserted = 0;

	if ((rc = hw_get_locked(s, cid, &hw)) < 0)
		return rc;
	old_hw = hw;
	for (size_t i = 0; i < n; i++) {
		bool fresh = evs[i].seq == 0 || evs[i].seq > hw;
		if (fresh) {
			if ((rc = ingest_one(s, cid, &evs[i])) < 0)
				return rc;
			inserted++;
			if (evs[i].seq > hw)
				hw = evs[i].seq;
		}
		if (ret_new)
			ret_new[i] = fresh;
	}
	if (hw != old_hw) {
		if ((st = stmt_get(s, ST_HW_SET)) == NULL)
			return store_map_rc(sqlite3_errcode(s->db));
		(void)sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
		(void)sqlite3_bind_int64(st, 2, (sqlite3_int64)hw);
		(void)sqlite3_bind_int64(st, 3, (sqlite3_int64)time_now_ms());
		if ((rc = store_step_done(st)) < 0)
			return rc;
	}
	return inserted;
}

int
store_ingest_batch(struct store *s, const char *collector_id, const struct process_event *evs,
                   size_t n, bool *ret_new)
{
	const char *cid = collector_id ? collector_id : "";
	int rc;

	if (s->mode != STORE_RW)
		return -EACCES;
	if (n > INT32_MAX)
		return -E2BIG;
	(void)pthread_mutex_lock(&s->mu);
	if ((rc = exec_id(s, ST_BEGIN)) == 0) {
		/* ret_new is written only when the transaction commits. */
		_cleanup_free_ bool *fresh = n ? calloc(n, sizeof(bool)) : NULL;
		if (n && fresh == NULL)
			rc = -ENOMEM;
		else
			rc = ingest_locked(s, cid, evs, n, fresh);
		if (rc >= 0) {
			int crc = exec_id(s, ST_COMMIT);
			if (crc < 0)
				rc = crc;
		}
		if (rc < 0)
			(void)exec_id(s, ST_ROLLBACK);
		else if (ret_new && n)
			memcpy(ret_new, fresh, n * sizeof(bool));
	}
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}

int
store_severity_rank(const char *severity)
{
	static const char *const names[] = { "info", "low", "medium", "high", "critical" };

	for (size_t i = 0; severity && i < ARRAY_SIZE(names); i++)
		if (streq(severity, names[i]))
			return (int)i;
	return -1;
}

int
store_alert_put(struct store *s, const struct store_alert *a)
{
	sqlite3_stmt *st;
	int rc;

	if (s->mode != STORE_RW)
		return -EACCES;
	if (a->alert_id == NULL || a->rule_id == NULL || a->json == NULL)
		return -EINVAL;
	(void)pthread_mutex_lock(&s->mu);
	if ((st = stmt_get(s, ST_ALERT_PUT)) == NULL) {
		rc = store_map_rc(sqlite3_errcode(s->db));
	} else {
		(void)sqlite3_bind_text(st, 1, a->alert_id, -1, SQLITE_STATIC);
		(void)sqlite3_bind_int64(st, 2, (sqlite3_int64)a->timestamp);
		(void)sqlite3_bind_text(st, 3, a->rule_id, -1, SQLITE_STATIC);
		(void)sqlite3_bind_text(st, 4, a->severity ? a->severity : "info", -1,
		                        SQLITE_STATIC);
		(void)sqlite3_bind_int(st, 5, store_severity_rank(a->severity));
		(void)sqlite3_bind_text(st, 6, a->category, -1, SQLITE_STATIC);
		(void)sqlite3_bind_text(st, 7, a->dedup_key, -1, SQLITE_STATIC);
		(void)sqlite3_bind_int(st, 8, a->pid);
		(void)sqlite3_bind_int64(st, 9, (sqlite3_int64)a->process_start_time);
		(void)sqlite3_bind_int64(st, 10, a->repeat_count);
		(void)sqlite3_bind_text(st, 11, a->json, -1, SQLITE_STATIC);
		rc = store_step_done(st);
	}
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}

/* One bounded retention delete; returns rows deleted or -errno. */
static int
retention_delete(struct store *s, const char *sql, uint64_t cutoff, uint32_t max_rows)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (max_rows == 0)
		return 0;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(s->db));
	(void)sqlite3_bind_int64(st, 1, (sqlite3_int64)cutoff);
	(void)sqlite3_bind_int64(st, 2, max_rows);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_map_rc(rc);
	return sqlite3_changes(s->db);
}

int
store_retention_step(struct store *s, uint32_t retention_days, uint32_t max_rows)
{
	/* Each statement deletes at most ?2 rows in its own short transaction,
	 * oldest first via the time indexes, so ingest waits at most one step. */
	static const char *const steps[] = {
		/* Events, but never the latest record of an instance still kept
		 * (a long-running process keeps its start event). */
		"DELETE FROM process_events WHERE id IN (SELECT e.id FROM process_events AS e"
		" WHERE e.collection_time < ?1 AND NOT EXISTS (SELECT 1 FROM instance_state AS s"
		" WHERE s.pid = e.pid AND s.start_time = e.start_time AND s.event_id = e.id)"
		" ORDER BY e.collection_time LIMIT ?2)",
		/* Instances no longer running (stopped, or their pid has a newer
		 * instance), last seen before the cutoff, found through their
		 * latest record, which is older still; that event goes at the
		 * next step. After the first statement the old events left are
		 * such records, so this scan is short. */
		"DELETE FROM instance_state WHERE (pid, start_time) IN (SELECT s.pid, s.start_time"
		" FROM process_events AS e CROSS JOIN instance_state AS s ON s.pid = e.pid"
		" AND s.start_time = e.start_time AND s.event_id = e.id"
		" WHERE e.collection_time < ?1 AND s.last_seen < ?1 AND (s.stopped OR EXISTS"
		" (SELECT 1 FROM instance_state AS n WHERE n.pid = s.pid"
		" AND n.start_time > s.start_time)) ORDER BY e.collection_time LIMIT ?2)",
		"DELETE FROM alerts WHERE rowid IN (SELECT rowid FROM alerts"
		" WHERE timestamp < ?1 ORDER BY timestamp LIMIT ?2)",
		"DELETE FROM scan_metadata WHERE id IN (SELECT id FROM scan_metadata"
		" WHERE time < ?1 ORDER BY time LIMIT ?2)",
	};
	uint64_t now = time_now_ms(), cutoff;
	uint32_t left = max_rows;
	int total = 0, rc = 0;

	if (s->mode != STORE_RW)
		return -EACCES;
	if (retention_days == 0)
		return 0;
	cutoff = (uint64_t)retention_days * 86400000ull;
	cutoff = now > cutoff ? now - cutoff : 0;
	(void)pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < ARRAY_SIZE(steps) && left > 0; i++) {
		if ((rc = retention_delete(s, steps[i], cutoff, left)) < 0)
			break;
		total += rc;
		left -= (uint32_t)rc;
	}
	(void)pthread_mutex_unlock(&s->mu);
	return rc < 0 ? rc : total;
}

/* Collects one result row as text and calls cb. Returns cb's value, or
 * -ENOMEM. names/values/types are scratch arrays of ncol entries. */
static int
emit_row(sqlite3_stmt *st, int ncol, const char **names, const char **values, char *types,
         store_row_cb cb, void *ctx)
{
	for (int i = 0; i < ncol; i++) {
		int t = sqlite3_column_type(st, i);
		names[i] = sqlite3_column_name(st, i);
		types[i] = t == SQLITE_INTEGER ? 'i'
		           : t == SQLITE_FLOAT ? 'r'
		           : t == SQLITE_TEXT  ? 't'
		           : t == SQLITE_BLOB  ? 'b'
		                               : 'n';
		if (t == SQLITE_BLOB) {
			/* Blobs are shown as their length; a value is text. */
			values[i] = NULL;
			types[i] = 'b';
			continue;
		}
		values[i] = t == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, i);
		if (t != SQLITE_NULL && values[i] == NULL)
			return -ENOMEM;
	}
	types[ncol] = '\0';
	return cb(ctx, ncol, names, values, types);
}

/* Steps a sandboxed statement to the end (or until cb stops it). */
int
store_run_guarded(struct sqlguard *g, enum sqlguard_kind kind, sqlite3_stmt *st,
                  uint32_t timeout_ms, store_row_cb cb, void *ctx, struct errbuf *err)
{
	int ncol = sqlite3_column_count(st), rows = 0, rc;
	_cleanup_free_ const char **names = calloc((size_t)ncol + 1, sizeof(char *));
	_cleanup_free_ const char **values = calloc((size_t)ncol + 1, sizeof(char *));
	_cleanup_free_ char *types = calloc((size_t)ncol + 1, 1);

	if (names == NULL || values == NULL || types == NULL)
		return -ENOMEM;
	sqlguard_run_begin(g, kind, timeout_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows == INT32_MAX)
			break;
		rows++;
		if (cb == NULL)
			continue;
		int r = emit_row(st, ncol, names, values, types, cb, ctx);
		if (r < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		if (r > 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		rows = sqlguard_step_error(g, rc, err);
	sqlguard_run_end(g);
	sqlite3_reset(st);
	return rows;
}

int
store_ensure_guard(struct store *s, struct errbuf *err)
{
	int rc;

	if (s->guard != NULL)
		return 0;
	if ((rc = sqlguard_attach(s->db, &s->guard)) < 0)
		errbuf_set(err, "cannot set up the SQL sandbox: %s", strerror(-rc));
	return rc;
}

int
store_query(struct store *s, const char *sql, uint32_t timeout_ms, store_row_cb cb, void *ctx,
            struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	(void)pthread_mutex_lock(&s->mu);
	if ((rc = store_ensure_guard(s, err)) == 0 &&
	    (rc = sqlguard_prepare(s->guard, SQLGUARD_QUERY, sql, &st, err)) == 0) {
		rc = store_run_guarded(s->guard, SQLGUARD_QUERY, st, timeout_ms, cb, ctx, err);
		sqlite3_finalize(st);
	}
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Runs "SELECT <expr>" style single-integer queries for stats. */
static int64_t
query_int(sqlite3 *db, const char *sql, bool *ok)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		*ok = false;
	sqlite3_finalize(st);
	return v;
}

struct json_t *
store_stats_json(struct store *s)
{
	static const char *const tables[] = {
		"process_events",  "process_instances", "live_processes", "alerts",
		"detection_rules", "system_info",       "scan_metadata",  "collector_state",
	};
	json_t *o = json_object(), *rows = json_object();
	char sql[128];
	bool ok = true;
	int64_t pages, psize, newest;

	if (o == NULL || rows == NULL) {
		json_decref(o);
		json_decref(rows);
		return NULL;
	}
	(void)pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		(void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		json_object_set_new(rows, tables[i], json_integer(query_int(s->db, sql, &ok)));
	}
	json_object_set_new(o, "path", json_string(s->path));
	json_object_set_new(o, "rows", rows);
	pages = query_int(s->db, "PRAGMA page_count", &ok);
	psize = query_int(s->db, "PRAGMA page_size", &ok);
	json_object_set_new(o, "database_bytes", json_integer(pages * psize));
	json_object_set_new(o, "oldest_event_ms",
	                    json_integer(query_int(s->db,
	                                           "SELECT coalesce(min(collection_time), 0)"
	                                           " FROM process_events",
	                                           &ok)));
	newest =
	    query_int(s->db, "SELECT coalesce(max(collection_time), 0) FROM process_events", &ok);
	json_object_set_new(o, "newest_event_ms", json_integer(newest));
	(void)snprintf(sql, sizeof(sql),
	               "SELECT count(*) FROM process_events WHERE collection_time > %lld",
	               (long long)(newest - 60000));
	json_object_set_new(o, "events_per_second_last_minute",
	                    json_real((double)query_int(s->db, sql, &ok) / 60.0));
	json_object_set_new(
	    o, "oldest_alert_ms",
	    json_integer(query_int(s->db, "SELECT coalesce(min(timestamp), 0) FROM alerts", &ok)));
	json_object_set_new(
	    o, "newest_alert_ms",
	    json_integer(query_int(s->db, "SELECT coalesce(max(timestamp), 0) FROM alerts", &ok)));
	(void)pthread_mutex_unlock(&s->mu);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
exec_bound(struct store *s, const char *sql, const char *const *text, size_t ntext,
           const int64_t *ints, size_t nints)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_map_rc(sqlite3_errcode(s->db));
	for (size_t i = 0; i < ntext; i++)
		(void)sqlite3_bind_text(st, (int)i + 1, text[i], -1, SQLITE_STATIC);
	for (size_t i = 0; i < nints; i++)
		(void)sqlite3_bind_int64(st, (int)(ntext + i) + 1, ints[i]);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_map_rc(rc);
}

int
store_rules_replace(struct store *s, const struct store_rule *rules, size_t n)
{
	static const char ins[] =
	    "INSERT OR REPLACE INTO detection_rules (id, name, description, severity,"
	    " category, sql, sha256, path, severity_rank, enabled, loaded_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
	int64_t now = (int64_t)time_now_ms();
	int rc;

	if (s->mode != STORE_RW)
		return -EACCES;
	(void)pthread_mutex_lock(&s->mu);
	rc = exec_id(s, ST_BEGIN);
	if (rc == 0)
		rc = exec_bound(s, "DELETE FROM detection_rules", NULL, 0, NULL, 0);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct store_rule *r = &rules[i];
		const char *text[] = { r->id,       r->name, r->description, r->severity,
			               r->category, r->sql,  r->sha256,      r->path };
		int64_t ints[] = { store_severity_rank(r->severity), r->enabled, now };
		rc = exec_bound(s, ins, text, ARRAY_SIZE(text), ints, ARRAY_SIZE(ints));
	}
	if (rc == 0)
		rc = exec_id(s, ST_COMMIT);
	if (rc < 0)
		(void)exec_id(s, ST_ROLLBACK);
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}

int
store_system_info_put(struct store *s, const char *key, const char *value)
{
	const char *text[] = { key, value };
	int64_t now = (int64_t)time_now_ms();
	int rc;

	if (s->mode != STORE_RW)
		return -EACCES;
	(void)pthread_mutex_lock(&s->mu);
	rc = exec_bound(
	    s, "INSERT OR REPLACE INTO system_info (key, value, updated) VALUES (?1, ?2, ?3)", text,
	    2, &now, 1);
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}

int
store_scan_put(struct store *s, const char *collector_id, uint64_t time_ms, uint32_t process_count,
               uint32_t duration_ms)
{
	const char *text[] = { collector_id };
	int64_t ints[] = { (int64_t)time_ms, process_count, duration_ms };
	int rc;

	if (s->mode != STORE_RW)
		return -EACCES;
	(void)pthread_mutex_lock(&s->mu);
	rc = exec_bound(s,
	                "INSERT INTO scan_metadata (collector_id, time, process_count, duration_ms)"
	                " VALUES (?1, ?2, ?3, ?4)",
	                text, 1, ints, 3);
	(void)pthread_mutex_unlock(&s->mu);
	return rc;
}
