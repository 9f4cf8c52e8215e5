#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "errbuf.h"
#include "process.h"
#include "store.h"
#include "timeutil.h"

static char dir[] = "/tmp/test-store-XXXXXX";
static char dbpath[256];

static void
ev_make(struct process_event *e, enum proc_event_type type, int32_t pid, uint64_t start,
        const char *name, const char *exe, uint64_t seq)
{
	process_event_init(e);
	e->type = type;
	e->time = time_now_ms();
	e->seq = seq;
	e->source = strdup("poll");
	e->proc.pid = pid;
	e->proc.ppid = 1;
	e->proc.start_time = start;
	e->proc.name = strdup(name);
	e->proc.executable_path = exe ? strdup(exe) : NULL;
	e->proc.command_line = strdup(name);
	e->proc.user_id = 1000;
	e->proc.accessible = true;
}

static void
evs_clear(struct process_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		process_event_clear(&evs[i]);
}

/* Counts rows, remembering the first value of the first column. */
struct count_ctx {
	int rows;
	char first[128];
};

static int
count_cb(void *ctx, int ncol, const char *const *names, const char *const *values,
         const char *types)
{
	struct count_ctx *c = ctx;

	(void)names;
	(void)types;
	if (c->rows++ == 0 && ncol > 0)
		snprintf(c->first, sizeof(c->first), "%s", values[0] ? values[0] : "NULL");
	return 0;
}

static int
query_count(struct store *s, const char *sql)
{
	struct count_ctx c = { 0 };
	struct errbuf err = { { 0 } };
	int rc = store_query(s, sql, 1000, count_cb, &c, &err);

	if (rc < 0)
		fprintf(stderr, "query failed: %s: %s\n", sql, err.msg);
	assert_true(rc >= 0);
	return (int)strtol(c.first, NULL, 10);
}

static int
setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/events.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_ingest_exactly_once(void **state)
{
	struct process_event evs[3];
	struct store *s = NULL;
	bool fresh[3];
	uint64_t hw = 0;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_START, 100, 5000, "bash", "/bin/bash", 1);
	ev_make(&evs[1], PROC_EV_START, 101, 5001, "curl", "/usr/bin/curl", 2);
	ev_make(&evs[2], PROC_EV_STOP, 100, 5000, "bash", "/bin/bash", 3);
	assert_int_equal(store_ingest_batch(s, "procmond", evs, 2, fresh), 2);
	assert_true(fresh[0] && fresh[1]);
	assert_int_equal(store_high_water(s, "procmond", &hw), 0);
	assert_int_equal(hw, 2);
	/* A replay of the whole WAL: the first two are skipped, the third is new. */
	assert_int_equal(store_ingest_batch(s, "procmond", evs, 3, fresh), 1);
	assert_false(fresh[0]);
	assert_false(fresh[1]);
	assert_true(fresh[2]);
	assert_int_equal(store_ingest_batch(s, "procmond", evs, 3, fresh), 0);
	/* Another collector has its own sequence space. */
	assert_int_equal(store_ingest_batch(s, "other", &evs[1], 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events"), 4);
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes"), 2);
	/* bash stopped: gone from live_processes, kept (as stopped) in processes. */
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes WHERE pid = 100"
	                                " AND event_type = 'stop'"),
	                 1);
	/* seq 0 events (not from a WAL) are always inserted. */
	evs[1].seq = 0;
	assert_int_equal(store_ingest_batch(s, "procmond", &evs[1], 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events"), 5);
	evs_clear(evs, 3);
	store_close(s);
}

static void
test_instances_and_pid_reuse(void **state)
{
	struct process_event evs[3];
	struct store *s = NULL;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_START, 200, 1000, "a", "/bin/a", 0);
	ev_make(&evs[1], PROC_EV_MODIFIED, 200, 1000, "a2", "/bin/a", 0);
	ev_make(&evs[2], PROC_EV_START, 200, 2000, "b", "/bin/b", 0);
	assert_int_equal(store_ingest_batch(s, "c", evs, 3, NULL), 3);
	/* Two instances of pid 200; the first one's latest record is "a2". */
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes WHERE pid = 200"), 2);
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes WHERE name = 'a2'"), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE name = 'b'"), 1);
	/* Unknown ids are NULL, not -1. */
	evs_clear(evs, 3);
	ev_make(&evs[0], PROC_EV_SNAPSHOT, 300, 1, "x", NULL, 0);
	evs[0].proc.user_id = -1;
	assert_int_equal(store_ingest_batch(s, "c", evs, 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 300"
	                                " AND user_id IS NULL"),
	                 1);
	evs_clear(evs, 1);
	store_close(s);
}

static void
test_ro_while_writing(void **state)
{
	struct process_event ev;
	struct store *rw = NULL, *ro = NULL;
	struct errbuf err = { { 0 } };

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RO, &ro), -ENOENT);
	/* RW in a directory that does not exist: the OS reason, not -EIO. */
	assert_int_equal(store_open("/nonexistent-dir/events.db", STORE_RW, &rw), -ENOENT);
	assert_int_equal(store_open(dbpath, STORE_RW, &rw), 0);
	ev_make(&ev, PROC_EV_START, 1, 1, "init", "/sbin/init", 1);
	assert_int_equal(store_ingest_batch(rw, "c", &ev, 1, NULL), 1);
	assert_int_equal(store_open(dbpath, STORE_RO, &ro), 0);
	assert_int_equal(query_count(ro, "SELECT count(*) FROM process_events"), 1);
	/* The writer keeps writing while the reader is open. */
	ev.seq = 2;
	assert_int_equal(store_ingest_batch(rw, "c", &ev, 1, NULL), 1);
	assert_int_equal(query_count(ro, "SELECT count(*) FROM process_events"), 2);
	/* The RO store refuses writes, at the API and in SQL. */
	assert_int_equal(store_ingest_batch(ro, "c", &ev, 1, NULL), -EACCES);
	assert_int_equal(store_query(ro, "DELETE FROM process_events", 100, NULL, NULL, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "DELETE"));
	process_event_clear(&ev);
	store_close(ro);
	store_close(rw);
}

static void
test_query_sandbox(void **state)
{
	static const char *const bad[] = {
		"ATTACH DATABASE '/tmp/x.db' AS x",
		"PRAGMA journal_mode",
		"SELECT * FROM sqlite_master",
		"SELECT load_extension('/tmp/evil.so')",
		"INSERT INTO alerts (alert_id) VALUES ('x')",
		"DROP TABLE alerts",
		"SELECT 1; SELECT 2",
		"SELEC 1",
		"",
	};
	struct store *s = NULL;
	struct errbuf err;
	int rc;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		rc = store_query(s, bad[i], 100, NULL, NULL, &err);
		if (rc != -EINVAL)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		assert_int_equal(rc, -EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	/* A never-ending recursive CTE stops at the time limit. */
	rc = store_query(s,
	                 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
	                 " SELECT count(*) FROM c",
	                 50, NULL, NULL, &err);
	assert_int_equal(rc, -ETIMEDOUT);
	/* The sandbox does not stick: ingest still works afterwards. */
	assert_int_equal(query_count(s, "SELECT count(*) FROM alerts"), 0);
	/* Trailing semicolons and comments are one statement. */
	assert_int_equal(query_count(s, "SELECT 7; -- done\n ;"), 7);
	store_close(s);
}

static void
test_alerts_and_stats(void **state)
{
	struct store *s = NULL;
	struct store_alert a = {
		.alert_id = "a1",
		.timestamp = 1000,
		.rule_id = "r",
		.severity = "high",
		.category = "execution",
		.dedup_key = "r:1:1",
		.pid = 1,
		.process_start_time = 1,
		.repeat_count = 1,
		.json = "{}",
	};
	json_t *st;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_alert_put(s, &a), 0);
	a.repeat_count = 3;
	assert_int_equal(store_alert_put(s, &a), 0);
	assert_int_equal(query_count(s, "SELECT repeat_count FROM alerts WHERE alert_id = 'a1'"),
	                 3);
	assert_int_equal(query_count(s, "SELECT severity_rank FROM alerts"), 3);
	assert_int_equal(store_system_info_put(s, "hostname", "h"), 0);
	assert_int_equal(store_scan_put(s, "procmond", 5, 10, 2), 0);
	st = store_stats_json(s);
	assert_non_null(st);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "rows"), "alerts")),
	                 1);
	assert_true(json_integer_value(json_object_get(st, "database_bytes")) > 0);
	json_decref(st);
	store_close(s);
}

static void
test_retention(void **state)
{
	struct process_event evs[10];
	struct store *s = NULL;
	int total = 0, rc;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	for (int i = 0; i < 10; i++) {
		ev_make(&evs[i], i < 7 ? PROC_EV_STOP : PROC_EV_START, 10 + i, 1, "old", NULL, 0);
		if (i < 7)
			evs[i].time = 1000; /* 1970: far older than any retention */
	}
	assert_int_equal(store_ingest_batch(s, "c", evs, 10, NULL), 10);
	/* Small steps: at most 3 rows per call. */
	while ((rc = store_retention_step(s, 30, 3)) > 0) {
		assert_true(rc <= 3);
		total += rc;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(total, 7); /* the 7 old events; their instances never went live */
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events"), 3);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 3);
	evs_clear(evs, 10);
	store_close(s);
}

/* Instances leave with their history: a stopped instance last seen before
 * the cutoff goes, and its events; one superseded by a newer instance of its
 * pid goes too; a long-running process keeps its instance and the start
 * event that holds its record, however old, and stays in live_processes. */
static void
test_retention_of_instances(void **state)
{
	struct process_event evs[6];
	struct store *s = NULL;
	int total = 0, rc;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_START, 10, 1, "gone", NULL, 0);
	ev_make(&evs[1], PROC_EV_STOP, 10, 1, "gone", NULL, 0);
	ev_make(&evs[2], PROC_EV_START, 11, 1, "daemon", NULL, 0);
	ev_make(&evs[3], PROC_EV_START, 12, 1, "reused", NULL, 0);
	ev_make(&evs[4], PROC_EV_START, 12, 2, "reuser", NULL, 0);
	ev_make(&evs[5], PROC_EV_START, 13, 1, "fresh", NULL, 0);
	for (int i = 0; i < 5; i++)
		evs[i].time = 1000 + (uint64_t)i; /* 1970 */
	assert_int_equal(store_ingest_batch(s, "c", evs, 6, NULL), 6);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 3);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 12"
	                                " AND name = 'reuser'"),
	                 1);
	while ((rc = store_retention_step(s, 30, 2)) > 0) {
		assert_true(rc <= 2);
		total += rc;
	}
	assert_int_equal(rc, 0);
	/* pid 10's instance and both its events, pid 12's first instance and
	 * its event; pid 12's second instance is live (old, but running). */
	assert_int_equal(total, 5);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_instances"), 3);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events"), 3);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE name IN"
	                                " ('daemon', 'reuser', 'fresh')"),
	                 3);
	evs_clear(evs, 6);
	store_close(s);
}

/* The cached insert keeps no value from the event before: a start right
 * after a stop has no exit code or runtime, a stop has its own. */
static void
test_no_stale_parameters(void **state)
{
	struct process_event evs[3];
	struct store *s = NULL;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_STOP, 80, 1, "a", NULL, 0);
	evs[0].exit_code = 3;
	evs[0].runtime_ms = 10;
	ev_make(&evs[1], PROC_EV_START, 81, 1, "b", NULL, 0);
	ev_make(&evs[2], PROC_EV_STOP, 81, 1, "b", NULL, 0);
	evs[2].exit_code = 0;
	evs[2].runtime_ms = 4;
	assert_int_equal(store_ingest_batch(s, "c", evs, 2, NULL), 2);
	assert_int_equal(store_ingest_batch(s, "c", &evs[2], 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events WHERE pid = 81"
	                                " AND event_type = 'start' AND exit_code IS NULL"
	                                " AND runtime_ms IS NULL"),
	                 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_events WHERE"
	                                " (pid = 80 AND exit_code = 3 AND runtime_ms = 10) OR"
	                                " (pid = 81 AND exit_code = 0 AND runtime_ms = 4)"),
	                 2);
	evs_clear(evs, 3);
	store_close(s);
}

/* PRAGMA integrity_check and the rows of process_events, read directly. */
static void
check_db(int64_t *ret_events, int64_t *ret_hw)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT (SELECT count(*) FROM process_events),"
	                                    " (SELECT coalesce(max(high_water), 0)"
	                                    " FROM collector_state)",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*ret_events = sqlite3_column_int64(st, 0);
	*ret_hw = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The writer's VFS sends each WAL frame in one write. A writer killed at a
 * random moment while committing batches after batches (through several
 * checkpoints) leaves a database that passes integrity_check and holds
 * exactly the events up to its high-water: every commit whole, or none. */
static void
test_wal_frames_survive_kill(void **state)
{
	int64_t events = 0, hw = 0;

	(void)state;
	for (int round = 0; round < 3; round++) {
		struct timespec pause = { 0, 150000000L + 70000000L * round };
		pid_t pid;
		int status;

		unlink(dbpath);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct process_event evs[16];
			struct store *s = NULL;

			if (store_open(dbpath, STORE_RW, &s) < 0)
				_exit(1);
			for (uint64_t seq = 1;; seq += 16) {
				for (int i = 0; i < 16; i++)
					ev_make(&evs[i], i % 2 ? PROC_EV_STOP : PROC_EV_START,
					        (int32_t)(1000 + (seq + (uint64_t)i) / 2), 7,
					        "worker", "/usr/bin/worker", seq + (uint64_t)i);
				if (store_ingest_batch(s, "c", evs, 16, NULL) != 16)
					_exit(2);
				evs_clear(evs, 16);
			}
		}
		(void)nanosleep(&pause, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		check_db(&events, &hw);
		assert_true(hw > 0);
		assert_int_equal(events, hw);
		assert_int_equal(hw % 16, 0);
	}
	assert_non_null(sqlite3_vfs_find("daemoneye-wal-combine"));
}

/* live_processes is the instances not stopped, one per pid (the newest): a
 * stop without a start time stops every instance of its pid; an event after
 * a stop brings the instance back with that event's record. */
static void
test_live_view(void **state)
{
	struct process_event evs[5];
	struct store *s = NULL;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_START, 70, 100, "old", NULL, 0);
	ev_make(&evs[1], PROC_EV_START, 70, 200, "new", NULL, 0);
	ev_make(&evs[2], PROC_EV_STOP, 70, 0, "new", NULL, 0);
	ev_make(&evs[3], PROC_EV_SNAPSHOT, 71, 100, "snap", NULL, 0);
	ev_make(&evs[4], PROC_EV_MODIFIED, 71, 100, "snap2", NULL, 0);
	evs[2].time = 5000;
	assert_int_equal(store_ingest_batch(s, "c", evs, 2, NULL), 2);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 70"), 1);
	assert_int_equal(query_count(s, "SELECT start_time FROM live_processes WHERE pid = 70"),
	                 200);
	assert_int_equal(store_ingest_batch(s, "c", &evs[2], 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 70"), 0);
	/* Both instances show the stop with its time, and keep their records. */
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes WHERE pid = 70"
	                                " AND event_type = 'stop' AND collection_time = 5000"
	                                " AND name IN ('old', 'new')"),
	                 2);
	assert_int_equal(store_ingest_batch(s, "c", &evs[3], 2, NULL), 2);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 71"
	                                " AND name = 'snap2' AND event_type = 'modified'"),
	                 1);
	evs[1].type = PROC_EV_MODIFIED;
	assert_int_equal(store_ingest_batch(s, "c", &evs[1], 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes WHERE pid = 70"
	                                " AND event_type = 'modified'"),
	                 1);
	assert_int_equal(query_count(s, "SELECT first_seen <= last_seen FROM process_instances"
	                                " WHERE pid = 70 AND start_time = 200"),
	                 1);
	evs_clear(evs, 5);
	store_close(s);
}

/* A database written by schema version 1 (live_processes and
 * process_instances as tables holding full rows) opens as version 2: its
 * instances point at their latest event, the views answer, one whose
 * history was trimmed is dropped, and ingest goes on. */
static void
test_migrate_v1(void **state)
{
	static const char v1[] =
	    "CREATE TABLE process_events (id INTEGER PRIMARY KEY, collector_id TEXT NOT NULL,"
	    " seq INTEGER NOT NULL, source TEXT, exit_code INTEGER, runtime_ms INTEGER,"
	    " modified_fields TEXT, reason TEXT, pid INTEGER NOT NULL, ppid INTEGER, name TEXT,"
	    " executable_path TEXT, command_line TEXT, start_time INTEGER NOT NULL,"
	    " start_ticks INTEGER, cpu_usage REAL, memory_usage INTEGER, executable_hash TEXT,"
	    " user_id INTEGER, effective_user_id INTEGER, group_id INTEGER, user_name TEXT,"
	    " cwd TEXT, tty TEXT, state TEXT, threads INTEGER, accessible INTEGER,"
	    " file_exists INTEGER, exe_deleted INTEGER, exe_memfd INTEGER,"
	    " argv_truncated INTEGER, parent_name TEXT, parent_executable_path TEXT,"
	    " parent_command_line TEXT, container_id TEXT, cgroup TEXT, missing INTEGER,"
	    " event_type TEXT, collection_time INTEGER);"
	    "CREATE TABLE process_instances (pid INTEGER NOT NULL, name TEXT,"
	    " start_time INTEGER NOT NULL, event_type TEXT, collection_time INTEGER,"
	    " first_seen INTEGER, last_seen INTEGER, PRIMARY KEY (pid, start_time));"
	    "CREATE TABLE live_processes (pid INTEGER NOT NULL, name TEXT, start_time INTEGER,"
	    " PRIMARY KEY (pid));"
	    "CREATE VIEW processes AS SELECT pid, name FROM process_instances;"
	    "CREATE INDEX instances_by_last_seen ON process_instances(last_seen);"
	    "INSERT INTO process_events (collector_id, seq, pid, name, start_time, event_type,"
	    " collection_time) VALUES ('c', 1, 5, 'sh', 50, 'start', 60), ('c', 2, 5, 'sh', 50,"
	    " 'stop', 70), ('c', 3, 6, 'vim', 55, 'start', 65);"
	    "INSERT INTO process_instances VALUES (5, 'sh', 50, 'stop', 70, 60, 70),"
	    " (6, 'vim', 55, 'start', 65, 65, 65), (7, 'trimmed', 1, 'start', 2, 2, 2);"
	    "INSERT INTO live_processes VALUES (6, 'vim', 55), (7, 'trimmed', 1);"
	    "PRAGMA user_version = 1;";
	struct process_event ev;
	struct store *s = NULL;
	sqlite3 *db = NULL;

	(void)state;
	unlink(dbpath);
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_instances"), 2);
	assert_int_equal(query_count(s, "SELECT count(*) FROM processes WHERE pid = 5"
	                                " AND event_type = 'stop' AND collection_time = 70"),
	                 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 1);
	assert_int_equal(query_count(s, "SELECT pid FROM live_processes WHERE name = 'vim'"), 6);
	ev_make(&ev, PROC_EV_START, 8, 80, "new", NULL, 4);
	assert_int_equal(store_ingest_batch(s, "c", &ev, 1, NULL), 1);
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 2);
	process_event_clear(&ev);
	store_close(s);
	/* Opening again changes nothing. */
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(query_count(s, "SELECT count(*) FROM process_instances"), 3);
	store_close(s);
}

/* Records the column types and values of the rows it sees; stops after
 * `stop_after` rows when that is not 0. */
struct types_ctx {
	int rows, stop_after;
	char types[8];
	bool first_null;
	char second[32];
};

static int
types_cb(void *ctx, int ncol, const char *const *names, const char *const *values,
         const char *types)
{
	struct types_ctx *c = ctx;

	(void)names;
	if (c->rows++ == 0) {
		snprintf(c->types, sizeof(c->types), "%s", types);
		c->first_null = values[0] == NULL;
		if (ncol > 1)
			snprintf(c->second, sizeof(c->second), "%s",
			         values[1] ? values[1] : "NULL");
	}
	return c->stop_after > 0 && c->rows >= c->stop_after;
}

/* The read-only store refuses every write at the API, still answers reads
 * (high water, stats), and the writer's argument checks hold. */
static void
test_ro_refusals_and_edges(void **state)
{
	struct store_alert a = { .alert_id = "a1", .rule_id = "r1", .json = "{}" };
	struct store_rule rule = { .id = "r1", .name = "R", .severity = "high", .sql = "SELECT 1" };
	struct process_event ev;
	struct store *rw = NULL, *ro = NULL;
	struct types_ctx tc = { 0 };
	struct errbuf err = { { 0 } };
	uint64_t hw = 99;
	json_t *stats;

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(NULL, STORE_RW, &rw), -EINVAL);
	assert_int_equal(store_open(dbpath, STORE_RW, &rw), 0);
	assert_string_equal(store_path(rw), dbpath);
	ev_make(&ev, PROC_EV_START, 42, 7, "sh", "/bin/sh", 5);
	assert_int_equal(store_ingest_batch(rw, "col", &ev, 1, NULL), 1);
	assert_int_equal(store_rules_replace(rw, &rule, 1), 0);
	assert_int_equal(store_system_info_put(rw, "hostname", "h"), 0);
	assert_int_equal(store_scan_put(rw, "col", 1000, 3, 4), 0);
	a.alert_id = NULL;
	assert_int_equal(store_alert_put(rw, &a), -EINVAL);
	a.alert_id = "a1";
	a.json = NULL;
	assert_int_equal(store_alert_put(rw, &a), -EINVAL);
	a.json = "{}";
	/* Nothing to do: no retention, or no rows allowed. */
	assert_int_equal(store_retention_step(rw, 0, 100), 0);
	assert_int_equal(store_retention_step(rw, 1, 0), 0);

	assert_int_equal(store_open(dbpath, STORE_RO, &ro), 0);
	assert_int_equal(store_alert_put(ro, &a), -EACCES);
	assert_int_equal(store_retention_step(ro, 1, 10), -EACCES);
	assert_int_equal(store_rules_replace(ro, &rule, 1), -EACCES);
	assert_int_equal(store_system_info_put(ro, "k", "v"), -EACCES);
	assert_int_equal(store_scan_put(ro, "col", 1, 1, 1), -EACCES);
	assert_int_equal(query_count(ro, "SELECT count(*) FROM alerts"), 0);
	/* The reader asks the database directly for a collector's high water. */
	assert_int_equal(store_high_water(ro, "col", &hw), 0);
	assert_int_equal(hw, 5);
	assert_int_equal(store_high_water(ro, "nobody", &hw), 0);
	assert_int_equal(hw, 0);
	stats = store_stats_json(ro);
	assert_non_null(stats);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(stats, "rows"), "process_events")),
	    1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(stats, "rows"), "scan_metadata")),
	    1);
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(stats, "rows"), "detection_rules")),
	    1);
	json_decref(stats);

	/* Blob, real and NULL columns; a callback that stops early. */
	assert_int_equal(
	    store_query(ro, "SELECT x'0102', 1.5, NULL, 'x', 3", 1000, types_cb, &tc, &err), 1);
	assert_string_equal(tc.types, "brnti");
	assert_true(tc.first_null); /* a blob is shown as no text */
	assert_string_equal(tc.second, "1.5");
	memset(&tc, 0, sizeof(tc));
	tc.stop_after = 2;
	assert_int_equal(store_query(ro,
	                             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
	                             " FROM n WHERE i < 50) SELECT i FROM n",
	                             1000, types_cb, &tc, &err),
	                 2);
	assert_int_equal(tc.rows, 2);
	/* No callback: the rows are only counted. */
	assert_int_equal(store_query(ro, "SELECT pid FROM process_events", 1000, NULL, NULL, &err),
	                 1);

	assert_int_equal(store_severity_rank("critical"), 4);
	assert_int_equal(store_severity_rank("info"), 0);
	assert_int_equal(store_severity_rank("urgent"), -1);
	assert_int_equal(store_severity_rank(NULL), -1);
	process_event_clear(&ev);
	store_close(ro);
	store_close(rw);
	store_close(NULL);
}

/* Rule evaluation on a file store (a second, read-only connection): rows
 * set, subset by index, staged and re-staged, unstaged; refused rules; a
 * database file that is gone. */
static void
test_eval_on_file_store(void **state)
{
	static const size_t tail[] = { 1, 2 }, first[] = { 0 };
	struct process_event evs[3];
	struct store *s = NULL, *gone = NULL;
	struct store_eval *e = NULL;
	struct store_stmt *st = NULL, *bad = NULL;
	struct count_ctx c;
	struct errbuf err = { { 0 } };
	char path[300];

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	ev_make(&evs[0], PROC_EV_START, 10, 1, "nc", "/usr/bin/nc", 1);
	ev_make(&evs[1], PROC_EV_START, 11, 1, "bash", "/bin/bash", 2);
	ev_make(&evs[2], PROC_EV_START, 12, 1, "nc", "/tmp/nc", 3);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	assert_int_equal(
	    store_eval_prepare(e, "SELECT pid FROM processes WHERE name = 'nc'", &st, &err), 0);
	assert_int_equal(store_eval_prepare(e, "DELETE FROM processes", &bad, &err), -EINVAL);
	assert_null(bad);
	assert_int_equal(store_eval_prepare(e, "SELECT pid FROM alerts_nope", &bad, &err), -EINVAL);

#define RUN(want)                                                                          \
	do {                                                                               \
		memset(&c, 0, sizeof(c));                                                  \
		assert_int_equal(store_eval_run(e, st, 1000, count_cb, &c, &err), (want)); \
	} while (0)
	assert_int_equal(store_eval_set_rows(e, evs, NULL, 3), 0);
	RUN(2);
	assert_string_equal(c.first, "10");
	assert_int_equal(store_eval_set_rows(e, evs, tail, 2), 0);
	RUN(1);
	assert_string_equal(c.first, "12");
	assert_int_equal(store_eval_stage(e, evs, NULL, 3), 0);
	RUN(2);
	RUN(2); /* the staged rows stay for every rule of the batch */
	assert_int_equal(store_eval_stage(e, evs, first, 1), 0); /* replaces the staged rows */
	RUN(1);
	assert_string_equal(c.first, "10");
	store_eval_unstage(e);
	store_eval_unstage(e); /* nothing staged: nothing to do */
	RUN(0);
	/* The rows under evaluation never reach the store itself. */
	assert_int_equal(query_count(s, "SELECT count(*) FROM live_processes"), 0);
#undef RUN
	store_stmt_free(st);
	store_stmt_free(NULL);
	store_eval_close(e);
	store_eval_close(NULL);

	snprintf(path, sizeof(path), "%s/gone.db", dir);
	assert_int_equal(store_open(path, STORE_RW, &gone), 0);
	assert_int_equal(unlink(path), 0);
	e = NULL;
	assert_int_not_equal(store_eval_open(gone, &e, &err), 0);
	assert_null(e);
	assert_non_null(strstr(err.msg, "gone.db"));
	store_close(gone);
	evs_clear(evs, 3);
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ingest_exactly_once),
		cmocka_unit_test(test_instances_and_pid_reuse),
		cmocka_unit_test(test_ro_while_writing),
		cmocka_unit_test(test_query_sandbox),
		cmocka_unit_test(test_alerts_and_stats),
		cmocka_unit_test(test_retention),
		cmocka_unit_test(test_retention_of_instances),
		cmocka_unit_test(test_live_view),
		cmocka_unit_test(test_no_stale_parameters),
		cmocka_unit_test(test_wal_frames_survive_kill),
		cmocka_unit_test(test_migrate_v1),
		cmocka_unit_test(test_ro_refusals_and_edges),
		cmocka_unit_test(test_eval_on_file_store),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
