/* bench-rules: 100 rules over a batch of 10,000 new processes (issue 5 goal:
 * under 100 ms), through the production path (detect_on_batch: pick the
 * rows, serve them to every rule through the temp.processes virtual table
 * under the sandbox, build a match per row), printed beside the floor: the
 * same 100 statements over the same rows on a bare SQLite connection (no
 * authorizer, progress handler, limits, or match building), the rows in a
 * TEMP table as plain SQLite would hold them, with a PCRE2 regexp() called
 * the usual way. The floor's time is also shown split into staging (the
 * INSERT into TEMP processes) and the statements alone.
 *
 * Usage: bench-rules [ROWS [RULES [ROUNDS [RULES_DIR]]]]
 * With RULES_DIR (e.g. the bundled pack, rules/) its enabled rules are used
 * instead of the 100 generated ones, and RULES is ignored. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <pcre2.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/alert.h"
#include "agent/detect.h"
#include "rule.h"
#include "config.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

static unsigned long submitted;

/* detect.c's only outside call: count the matches (alert delivery is
 * measured by bench-alert-latency, not here). */
int
alerts_submit(struct alerts *a, const struct alert_match *m)
{
	(void)a;
	(void)m;
	submitted++;
	return 0;
}

/* Rule templates modelled on the bundled pack; %d makes each of the 100
 * distinct (a marker no process has), as a real pack's rules are. */
static const char *const templates[] = {
	"SELECT pid, name, executable_path FROM processes WHERE (executable_path LIKE '/tmp/%%'"
	" OR executable_path LIKE '/dev/shm/%%' OR executable_path LIKE '/var/tmp/%%')"
	" AND name <> 'm%d'",
	"SELECT pid, executable_path FROM processes WHERE exe_deleted = 1 AND name <> 'm%d'",
	"SELECT pid FROM processes WHERE exe_memfd = 1 OR executable_path LIKE '/memfd:%%'"
	" OR name = 'm%d'",
	"SELECT pid, command_line FROM processes WHERE command_line LIKE '%%/dev/tcp/%%'"
	" OR command_line LIKE '%%/dev/udp/%%' OR name = 'm%d'",
	"SELECT pid, command_line FROM processes WHERE name IN ('nc', 'ncat', 'netcat')"
	" AND command_line REGEXP '\\s-(e|c)\\s' AND name <> 'm%d'",
	"SELECT pid, command_line FROM processes WHERE command_line REGEXP"
	" '(curl|wget)\\s.*\\|\\s*(ba|da)?sh' AND name <> 'm%d'",
	"SELECT pid, name, parent_name FROM processes WHERE parent_name IN ('nginx', 'apache2',"
	" 'httpd', 'mysqld', 'postgres', 'php-fpm') AND name IN ('sh', 'bash', 'dash', 'zsh')"
	" AND name <> 'm%d'",
	"SELECT pid, name FROM processes WHERE name LIKE '[%%]' AND executable_path IS NOT NULL"
	" AND name <> 'm%d'",
	"SELECT pid, command_line FROM processes WHERE lower(command_line) LIKE"
	" '%%stratum+tcp://%%' OR name IN ('xmrig', 'minerd', 'cpuminer', 'm%d')",
	"SELECT pid, command_line FROM processes WHERE command_line LIKE '%%base64%%-d%%'"
	" AND command_line LIKE '%%|%%sh%%' AND name <> 'm%d'",
	"SELECT pid FROM processes WHERE instr(command_line, 'pty.spawn') > 0 AND name <> 'm%d'",
	"SELECT pid, executable_path FROM processes WHERE executable_path LIKE '%%/.%%'"
	" AND name <> 'm%d'",
	"SELECT pid, user_id FROM processes WHERE effective_user_id = 0 AND user_id <> 0"
	" AND parent_name NOT IN ('sudo', 'su', 'pkexec') AND name <> 'm%d'",
	"SELECT pid, command_line FROM processes WHERE command_line REGEXP"
	" '(history\\s+-c|unset\\s+HISTFILE|rm\\s+.*\\.bash_history)' AND name <> 'm%d'",
	"SELECT pid, command_line FROM processes WHERE command_line LIKE '%%socat%%exec:%%'"
	" AND name <> 'm%d'",
	"SELECT pid FROM processes WHERE name = 'shred' AND command_line LIKE '%%/var/log/%%'"
	" AND name <> 'm%d'",
	"SELECT pid, cwd FROM processes WHERE cwd LIKE '/dev/shm%%' AND name <> 'm%d'",
	"SELECT pid, name FROM processes WHERE name <> 'm%d' AND executable_hash ="
	" 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'",
	"SELECT pid, command_line FROM processes WHERE length(command_line) > 3000"
	" AND name <> 'm%d'",
	"SELECT pid, tty FROM processes WHERE tty IS NULL AND name IN ('bash', 'sh') AND"
	" parent_name = 'm%d'",
};

static const char *const names[] = { "bash", "sshd", "cron",    "python3", "node",
	                             "curl", "sh",   "systemd", "nginx",   "postgres",
	                             "make", "gcc",  "ls",      "cat" };

static void
make_events(struct process_event *evs, size_t n, int32_t pid0, uint64_t start)
{
	char cmd[160];

	for (size_t i = 0; i < n; i++) {
		struct process_event *e = &evs[i];
		const char *name = names[i % ARRAY_SIZE(names)];
		process_event_init(e);
		e->type = PROC_EV_START;
		e->time = start;
		e->proc.pid = pid0 + (int32_t)i;
		e->proc.ppid = 1000;
		e->proc.start_time = start + i;
		e->proc.name = strdup(name);
		(void)snprintf(cmd, sizeof(cmd), "/usr/bin/%s --config /etc/%s/%zu.conf -v %s",
		               name, name, i, i % 997 == 0 ? "| base64 -d | sh" : "--quiet");
		e->proc.command_line = strdup(cmd);
		(void)snprintf(cmd, sizeof(cmd), i % 1000 == 7 ? "/tmp/.x/%s" : "/usr/bin/%s",
		               name);
		e->proc.executable_path = strdup(cmd);
		e->proc.cwd = strdup("/home/user");
		e->proc.user_id = 1000;
		e->proc.effective_user_id = 1000;
		e->proc.group_id = 1000;
		e->proc.user_name = strdup("user");
		e->proc.parent_name = strdup("bash");
		e->proc.parent_executable_path = strdup("/usr/bin/bash");
		e->proc.state = strdup("R");
		e->proc.threads = 1;
		e->proc.accessible = true;
		e->proc.file_exists = true;
	}
}

static void
clear_events(struct process_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		process_event_clear(&evs[i]);
}

/* CPU time of this process (every thread): what the work cost, whatever else the shared
 * machine is running (wall time is printed too). */
static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
write_rules(const char *dir, int nrules)
{
	char path[512], sql[1024];

	for (int i = 0; i < nrules; i++) {
		FILE *f;
		(void)snprintf(path, sizeof(path), "%s/r%03d.yaml", dir, i);
		if ((f = fopen(path, "we")) == NULL)
			return -errno;
			/* The templates are ours and take exactly one %d. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		(void)snprintf(sql, sizeof(sql), templates[i % ARRAY_SIZE(templates)], i);
#pragma GCC diagnostic pop
		fprintf(f, "id: bench-%03d\nname: bench rule %d\nseverity: high\nsql: |\n  %s\n", i,
		        i, sql);
		fclose(f);
	}
	return 0;
}

/* ---- the floor: bare SQLite ------------------------------------------------ */

static void
floor_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	pcre2_code *re = sqlite3_get_auxdata(ctx, 0);
	pcre2_match_data *md;
	const char *text;
	int rc;

	(void)argc;
	if (re == NULL) {
		int err;
		PCRE2_SIZE off;
		const char *pat = (const char *)sqlite3_value_text(argv[0]);
		re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off,
		                   NULL);
		if (re == NULL) {
			sqlite3_result_error(ctx, "bad pattern", -1);
			return;
		}
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		sqlite3_set_auxdata(ctx, 0, re, (void (*)(void *))pcre2_code_free);
		re = sqlite3_get_auxdata(ctx, 0);
		if (re == NULL) {
			sqlite3_result_error_nomem(ctx);
			return;
		}
	}
	if ((text = (const char *)sqlite3_value_text(argv[1])) == NULL)
		return;
	md = pcre2_match_data_create_from_pattern(re, NULL);
	rc =
	    pcre2_match(re, (PCRE2_SPTR)text, (size_t)sqlite3_value_bytes(argv[1]), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	sqlite3_result_int(ctx, rc >= 0);
}

/* Runs the same statements over the same rows with nothing in between.
 * Returns the time in microseconds, or -1. */
static long
floor_run(const char *dbpath, const char *const *sqls, int nrules, int32_t pid_lo, int32_t pid_hi,
          unsigned long *ret_rows, long *ret_cpu_us, long *ret_stage_cpu_us)
{
	sqlite3 *db = NULL;
	sqlite3_stmt **st = calloc((size_t)nrules, sizeof(*st)), *stage = NULL;
	unsigned long rows = 0;
	uint64_t t0, c0, c1;
	long us = -1;

	if (st == NULL || sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	sqlite3_create_function(db, "regexp", 2, SQLITE_UTF8, NULL, floor_regexp, NULL, NULL);
	if (sqlite3_exec(db,
	                 "PRAGMA temp_store = MEMORY;"
	                 "CREATE TEMP TABLE processes AS SELECT * FROM main.processes LIMIT 0",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO temp.processes SELECT * FROM main.processes"
	                       " WHERE pid BETWEEN ?1 AND ?2",
	                       -1, &stage, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < nrules; i++)
		if (sqlite3_prepare_v2(db, sqls[i], -1, &st[i], NULL) != SQLITE_OK)
			goto out;
	t0 = time_mono_ns();
	c0 = cpu_ns();
	/* Staging (the floor copies the rows inside SQLite: cheaper than ours,
	 * which binds them from the batch) then every statement to the end. */
	sqlite3_exec(db, "BEGIN; DELETE FROM temp.processes", NULL, NULL, NULL);
	sqlite3_bind_int(stage, 1, pid_lo);
	sqlite3_bind_int(stage, 2, pid_hi);
	sqlite3_step(stage);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	c1 = cpu_ns();
	for (int i = 0; i < nrules; i++) {
		while (sqlite3_step(st[i]) == SQLITE_ROW)
			rows++;
		sqlite3_reset(st[i]);
	}
	us = (long)((time_mono_ns() - t0) / 1000);
	*ret_cpu_us = (long)((cpu_ns() - c0) / 1000);
	*ret_stage_cpu_us = (long)((c1 - c0) / 1000);
	*ret_rows = rows;
out:
	for (int i = 0; st && i < nrules; i++)
		sqlite3_finalize(st[i]);
	free(st);
	sqlite3_finalize(stage);
	sqlite3_close(db);
	return us;
}

/* The SQL of the enabled rules of dir (the floor runs the same statements). */
static int
load_pack(const char *dir, char ***ret)
{
	struct rule_set *rs = NULL;
	struct errbuf err = { { 0 } };
	char **sqls;
	int n = 0;

	if (rule_set_load(&dir, 1, 1000, NULL, NULL, &rs, &err) < 0) {
		fprintf(stderr, "bench-rules: %s\n", err.msg);
		return -1;
	}
	if ((sqls = calloc(rs->n + 1, sizeof(*sqls))) == NULL)
		return -1;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->rules[i]->enabled)
			sqls[n++] = strdup(rs->rules[i]->sql);
	rule_set_free(rs);
	*ret = sqls;
	return n;
}

static int
cmp_total(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "total_us"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "total_us"));

	return (y > x) - (y < x);
}

/* The slowest rules by total time (five, or $BENCH_RULES_SLOWEST), from
 * detect_health_json(). */
static void
print_slowest(struct detect *d, int rounds)
{
	json_t *h = detect_health_json(d), *rules, *r;
	json_t *list[4096];
	const char *env = getenv("BENCH_RULES_SLOWEST");
	size_t i, n = 0, show = env ? strtoul(env, NULL, 10) : 5;

	if (h == NULL)
		return;
	rules = json_object_get(h, "rules");
	json_array_foreach(rules, i, r) if (n < ARRAY_SIZE(list)) list[n++] = r;
	qsort(list, n, sizeof(*list), cmp_total);
	printf("  slowest rules (mean per batch):");
	for (i = 0; i < n && i < show; i++)
		printf(" %s %.2f ms%s", json_string_value(json_object_get(list[i], "id")),
		       (double)json_integer_value(json_object_get(list[i], "total_us")) / rounds /
		           1000.0,
		       i + 1 < n && i + 1 < show ? "," : "\n");
	json_decref(h);
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	int nrows = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 10000;
	int nrules = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 100;
	int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
	char dir[] = "/tmp/bench-rules-XXXXXX", rdir[300], dbpath[300], cmd[400];
	struct process_event *evs;
	struct de_config cfg;
	struct store *st = NULL;
	struct detect *d = NULL;
	struct errbuf err = { { 0 } };
	const char *dirs[1];
	long ours[32], floor_us[32], ours_cpu[32], floor_cpu[32], stage_cpu[32];
	char **sqls = NULL;
	unsigned long floor_rows = 0;
	const char *pack = argc > 4 ? argv[4] : NULL;
	/* $BENCH_RULES_REPEAT: evaluate each batch that many times (the mean
	 * is ours): small batches, as the agent sees them, for profiling. */
	const char *rep_env = getenv("BENCH_RULES_REPEAT");
	long repeat = rep_env ? strtol(rep_env, NULL, 10) : 1;
	int rc;

	if (nrows <= 0 || nrules <= 0 || rounds <= 0 || rounds > 32 || repeat <= 0 ||
	    mkdtemp(dir) == NULL)
		return 2;
	if (pack != NULL && (nrules = load_pack(pack, &sqls)) < 0)
		return 1;
	(void)snprintf(rdir, sizeof(rdir), "%s/rules", dir);
	(void)snprintf(dbpath, sizeof(dbpath), "%s/events.db", dir);
	dirs[0] = pack ? pack : rdir;
	memset(&cfg, 0, sizeof(cfg));
	cfg.detection.rule_timeout_ms = 1000;
	/* The fake alerts_submit() above counts; the pointer is never used. */
	if (mkdir(rdir, 0700) < 0 || (pack == NULL && write_rules(rdir, nrules) < 0) ||
	    store_open(dbpath, STORE_RW, &st) < 0 ||
	    detect_new(&d, st, &cfg, (struct alerts *)&submitted, &err) < 0 ||
	    (rc = detect_load_rules(d, dirs, 1, &err)) < 0) {
		fprintf(stderr, "bench-rules: setup failed: %s\n", err.msg);
		return 1;
	}
	if (rc > 0)
		fprintf(stderr, "bench-rules: %d rules rejected\n", rc);
	if (pack == NULL)
		sqls = calloc((size_t)nrules, sizeof(*sqls));
	evs = calloc((size_t)nrows, sizeof(*evs));
	if (sqls == NULL || evs == NULL)
		return 1;
	for (int i = 0; pack == NULL && i < nrules; i++) {
		sqls[i] = malloc(1024);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		(void)snprintf(sqls[i], 1024, templates[i % ARRAY_SIZE(templates)], i);
#pragma GCC diagnostic pop
	}
	for (int r = 0; r < rounds; r++) {
		int32_t pid0 = 100000 + r * nrows;
		uint64_t t0, c0;
		make_events(evs, (size_t)nrows, pid0, 1795626000000ull + (uint64_t)r * 100000);
		if (store_ingest_batch(st, "bench", evs, (size_t)nrows, NULL) < 0)
			return 1;
		submitted = 0;
		t0 = time_mono_ns();
		c0 = cpu_ns();
		for (long k = 0; k < repeat; k++)
			rc = detect_on_batch(d, evs, NULL, (size_t)nrows);
		ours[r] = (long)((time_mono_ns() - t0) / 1000 / (uint64_t)repeat);
		ours_cpu[r] = (long)((cpu_ns() - c0) / 1000 / (uint64_t)repeat);
		floor_us[r] =
		    floor_run(dbpath, (const char *const *)sqls, nrules, pid0, pid0 + nrows - 1,
		              &floor_rows, &floor_cpu[r], &stage_cpu[r]);
		if (rc < 0 || floor_us[r] < 0)
			return 1;
		clear_events(evs, (size_t)nrows);
	}
	qsort(ours, (size_t)rounds, sizeof(long), cmp_long);
	qsort(floor_us, (size_t)rounds, sizeof(long), cmp_long);
	qsort(ours_cpu, (size_t)rounds, sizeof(long), cmp_long);
	qsort(floor_cpu, (size_t)rounds, sizeof(long), cmp_long);
	qsort(stage_cpu, (size_t)rounds, sizeof(long), cmp_long);
	printf(
	    "bench-rules: %d rules (%s) over a batch of %d new processes (median of %d rounds)\n",
	    nrules, pack ? pack : "generated", nrows, rounds);
	printf("  daemoneye detect_on_batch: cpu %8.2f ms, wall %8.2f ms (min %.2f), %lu matches;"
	       " goal < 100 ms\n",
	       ours_cpu[rounds / 2] / 1000.0, ours[rounds / 2] / 1000.0, ours[0] / 1000.0,
	       submitted);
	printf(
	    "  floor (bare SQLite, same SQL): cpu %8.2f ms, wall %8.2f ms (min %.2f), %lu rows\n",
	    floor_cpu[rounds / 2] / 1000.0, floor_us[rounds / 2] / 1000.0, floor_us[0] / 1000.0,
	    floor_rows);
	printf("    of which staging the rows into its TEMP table: cpu %.2f ms; the statements"
	       " alone: cpu %.2f ms\n",
	       stage_cpu[rounds / 2] / 1000.0,
	       (floor_cpu[rounds / 2] - stage_cpu[rounds / 2]) / 1000.0);
	printf("  ratio (cpu): %.2fx the floor\n",
	       (double)ours_cpu[rounds / 2] /
	           (double)(floor_cpu[rounds / 2] ? floor_cpu[rounds / 2] : 1));
	print_slowest(d, rounds);
	for (int i = 0; i < nrules; i++)
		free(sqls[i]);
	free(sqls);
	free(evs);
	detect_free(d);
	store_close(st);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
