/* bench-ingest: store ingest rows/s (store_ingest_batch: one transaction per
 * batch with the collector's high-water mark; each event's record into
 * process_events and its instance into instance_state, which the views
 * process_instances, processes and live_processes read) beside the floor:
 * plain batched prepared INSERTs of the same rows into the same tables of the
 * same schema, same journal settings (WAL, synchronous=NORMAL) and connection
 * settings (NOMUTEX, the store's VFS), no upsert, no high-water.
 * Issue 5 goal: at least half the floor.
 *
 * Usage: bench-ingest [EVENTS [BATCH [SHAPE]]]
 * SHAPE "mixed" (default): nine starts of long-lived workers to one stop;
 * "execs": an exec burst, each start followed a few events later by its stop. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "process.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

static void
make_events(struct process_event *evs, size_t n, size_t first)
{
	char buf[200];

	for (size_t i = 0; i < n; i++) {
		struct process_event *e = &evs[i];
		size_t k = first + i;
		process_event_init(e);
		e->type = k % 10 == 9 ? PROC_EV_STOP : PROC_EV_START;
		e->time = 1795626000000ull + k;
		e->seq = k + 1;
		e->source = strdup("netlink");
		e->proc.pid = (int32_t)(1000 + k % 30000);
		e->proc.ppid = 1;
		e->proc.start_time = 1795626000000ull + k;
		e->proc.name = strdup("worker");
		(void)snprintf(buf, sizeof(buf), "/usr/bin/worker --job %zu --queue default -v", k);
		e->proc.command_line = strdup(buf);
		e->proc.executable_path = strdup("/usr/bin/worker");
		e->proc.executable_hash =
		    strdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
		e->proc.cwd = strdup("/srv");
		e->proc.user_id = 1000;
		e->proc.effective_user_id = 1000;
		e->proc.group_id = 1000;
		e->proc.user_name = strdup("svc");
		e->proc.parent_name = strdup("systemd");
		e->proc.parent_executable_path = strdup("/usr/lib/systemd/systemd");
		e->proc.state = strdup("R");
		e->proc.threads = 1;
		e->proc.accessible = true;
		e->proc.file_exists = true;
	}
}

/* The shape of an exec burst as procmond's eBPF source reports it: each
 * exec is a start and, a few execs later, its stop carrying the same record
 * (short-lived children of one parent, pids close together). */
static void
make_exec_events(struct process_event *evs, size_t n, size_t first)
{
	char buf[200];

	for (size_t i = 0; i < n; i++) {
		struct process_event *e = &evs[i];
		size_t k = first + i;
		bool stop = k % 2 == 1 && k >= 7;
		size_t x = stop ? (k - 7) / 2 : k / 2; /* the exec: stops lag by 3 */
		process_event_init(e);
		e->type = stop ? PROC_EV_STOP : PROC_EV_START;
		e->time = 1795626000000ull + k;
		e->seq = k + 1;
		e->source = strdup("ebpf");
		e->proc.pid = (int32_t)(20000 + x % 4000000);
		e->proc.ppid = 19999;
		e->proc.start_time = 1795626000000ull + 2 * x;
		e->proc.start_ticks = 1000000 + x / 10;
		e->proc.name = strdup("burst-child");
		e->proc.executable_path = strdup("/work/main/build/bench/burst-child");
		(void)snprintf(buf, sizeof(buf),
		               "/work/main/build/bench/burst-child bs1f2e3d4c-%zu 0", x);
		e->proc.command_line = strdup(buf);
		e->proc.cwd = strdup("/work/main");
		e->proc.user_id = 0;
		e->proc.effective_user_id = 0;
		e->proc.group_id = 0;
		e->proc.user_name = strdup("root");
		e->proc.parent_name = strdup("burst");
		e->proc.parent_executable_path = strdup("/work/main/build/bench/burst");
		e->proc.parent_command_line = strdup("/work/main/build/bench/burst 8000 bs1f2e3d4c "
		                                     "/work/main/build/bench/burst-child"
		                                     " 4 0 1000");
		e->proc.missing = 240;
		if (stop) {
			e->exit_code = 0;
			e->runtime_ms = 3;
		}
	}
}

static void
clear_events(struct process_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		process_event_clear(&evs[i]);
}

/* The floor's statements: every process column, in the store's order. */
#define COLS                                                                                     \
	"pid, ppid, name, executable_path, command_line, start_time, start_ticks, cpu_usage,"    \
	" memory_usage, executable_hash, user_id, effective_user_id, group_id, user_name, cwd,"  \
	" tty, state, threads, accessible, file_exists, exe_deleted, exe_memfd, argv_truncated," \
	" parent_name, parent_executable_path, parent_command_line, container_id, cgroup,"       \
	" missing, event_type, collection_time"
#define P31                                                                                   \
	"?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23," \
	"?24,?25,?26,?27,?28,?29,?30,?31"

static void
bind_all(sqlite3_stmt *st, const struct process_event *e)
{
	const struct process_record *p = &e->proc;
	int i = 1;

	sqlite3_bind_int(st, i++, p->pid);
	sqlite3_bind_int(st, i++, p->ppid);
	sqlite3_bind_text(st, i++, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->executable_path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->command_line, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)p->start_time);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)p->start_ticks);
	sqlite3_bind_double(st, i++, p->cpu_usage);
	sqlite3_bind_int64(st, i++, (sqlite3_int64)p->memory_usage);
	sqlite3_bind_text(st, i++, p->executable_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, p->user_id);
	sqlite3_bind_int64(st, i++, p->effective_user_id);
	sqlite3_bind_int64(st, i++, p->group_id);
	sqlite3_bind_text(st, i++, p->user_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->cwd, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->tty, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->state, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, i++, p->threads);
	sqlite3_bind_int(st, i++, p->accessible);
	sqlite3_bind_int(st, i++, p->file_exists);
	sqlite3_bind_int(st, i++, p->exe_deleted);
	sqlite3_bind_int(st, i++, p->exe_memfd);
	sqlite3_bind_int(st, i++, p->argv_truncated);
	sqlite3_bind_text(st, i++, p->parent_name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->parent_executable_path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->parent_command_line, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->container_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, i++, p->cgroup, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i++, p->missing);
	sqlite3_bind_text(st, i++, proc_event_type_to_string(e->type), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, i, (sqlite3_int64)e->time);
}

/* CPU time of this thread: robust on a shared machine (SQLite's I/O here is
 * buffered writes to the WAL, with no fsync per commit at synchronous=NORMAL). */
static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* The floor: the same rows into the same three tables, plain INSERTs. */
typedef void (*make_fn)(struct process_event *evs, size_t n, size_t first);

static double
floor_rate(const char *path, size_t total, size_t batch, struct process_event *evs, make_fn make,
           double *ret_cpu_rate)
{
	static const char *const sqls[] = {
		"INSERT INTO process_events (" COLS ", collector_id, seq, source, exit_code,"
		" runtime_ms, modified_fields, reason) VALUES (" P31
		", 'bench', 0, 'netlink', NULL,"
		" NULL, NULL, NULL)",
		"INSERT OR REPLACE INTO instance_state (pid, start_time, event_id, first_seen,"
		" last_seen, stopped) VALUES (?1, ?6, last_insert_rowid(), ?31, ?31, ?30 = 'stop')",
	};
	sqlite3_stmt *st[2] = { NULL, NULL };
	sqlite3 *db = NULL;
	uint64_t t0, c0, ns = 0, cns = 0;
	double rate = -1;

	/* The floor gets the store's connection settings too (no SQLite mutex,
	 * the store's VFS that writes a WAL frame in one call, registered by
	 * the store_open() before), so the ratio is about ingest alone. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	                    sqlite3_vfs_find("daemoneye-wal-combine") ? "daemoneye-wal-combine"
	                                                              : NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL", NULL, NULL,
	                 NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < 2; i++)
		if (sqlite3_prepare_v2(db, sqls[i], -1, &st[i], NULL) != SQLITE_OK) {
			fprintf(stderr, "floor: %s\n", sqlite3_errmsg(db));
			goto out;
		}
	for (size_t done = 0; done < total; done += batch) {
		make(evs, batch, done);
		t0 = time_mono_ns();
		c0 = cpu_ns();
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		for (size_t i = 0; i < batch; i++)
			for (int k = 0; k < 2; k++) {
				bind_all(st[k], &evs[i]);
				if (step(st[k]) < 0)
					goto out;
			}
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		ns += time_mono_ns() - t0;
		cns += cpu_ns() - c0;
		clear_events(evs, batch);
	}
	rate = (double)total / ((double)ns / 1e9);
	*ret_cpu_rate = (double)total / ((double)cns / 1e9);
out:
	for (int i = 0; i < 2; i++)
		sqlite3_finalize(st[i]);
	sqlite3_close(db);
	return rate;
}

int
main(int argc, char **argv)
{
	size_t total = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	size_t batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	bool execs = argc > 3 && streq(argv[3], "execs");
	make_fn make = execs ? make_exec_events : make_events;
	char dir[] = "/tmp/bench-ingest-XXXXXX", ours_db[300], floor_db[300], cmd[400];
	struct process_event *evs;
	struct store *st = NULL;
	uint64_t ns = 0, cns = 0;
	double ours, fl, ours_cpu, fl_cpu = 0;

	if (batch == 0 || total < batch || mkdtemp(dir) == NULL)
		return 2;
	total -= total % batch;
	(void)snprintf(ours_db, sizeof(ours_db), "%s/ours.db", dir);
	(void)snprintf(floor_db, sizeof(floor_db), "%s/floor.db", dir);
	if ((evs = calloc(batch, sizeof(*evs))) == NULL)
		return 1;
	/* The floor's database gets the same schema from the store, then the
	 * store lets go of it. */
	if (store_open(floor_db, STORE_RW, &st) < 0)
		return 1;
	store_close(st);
	if (store_open(ours_db, STORE_RW, &st) < 0)
		return 1;
	for (size_t done = 0; done < total; done += batch) {
		uint64_t t0, c0;
		make(evs, batch, done);
		t0 = time_mono_ns();
		c0 = cpu_ns();
		if (store_ingest_batch(st, "procmond", evs, batch, NULL) != (int)batch) {
			fprintf(stderr, "bench-ingest: ingest failed\n");
			return 1;
		}
		ns += time_mono_ns() - t0;
		cns += cpu_ns() - c0;
		clear_events(evs, batch);
	}
	store_close(st);
	ours = (double)total / ((double)ns / 1e9);
	ours_cpu = (double)total / ((double)cns / 1e9);
	fl = floor_rate(floor_db, total, batch, evs, make, &fl_cpu);
	printf("bench-ingest: %zu events (%s) in batches of %zu (WAL, synchronous=NORMAL)\n", total,
	       execs ? "exec starts and stops" : "mixed", batch);
	printf("  daemoneye store_ingest_batch: %9.0f events/s per CPU second, %9.0f wall"
	       " (events + instances, upsert, high-water)\n",
	       ours_cpu, ours);
	printf("  floor (plain prepared INSERTs, same schema): %9.0f events/s per CPU second,"
	       " %9.0f wall\n",
	       fl_cpu, fl);
	printf("  ratio (cpu): %.2f of the floor (goal >= 0.50); wall %.2f\n",
	       fl_cpu > 0 ? ours_cpu / fl_cpu : 0.0, fl > 0 ? ours / fl : 0.0);
	free(evs);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
