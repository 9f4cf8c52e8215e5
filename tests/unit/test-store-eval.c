/* store-eval.c: the rows under evaluation are a virtual table over the
 * caller's events. Every query here runs twice on the same rows: through the
 * rule connection (the virtual table, its filters and pid lookups) and
 * through the store's own `processes` view over process_instances, where the
 * same events were ingested. The two must return the same rows with the same
 * values and types; single-table queries must also keep the batch order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "errbuf.h"
#include "process.h"
#include "rule.h"
#include "store.h"

#define NEV 24

static char dir[] = "/tmp/test-store-eval-XXXXXX";
static char dbpath[256];

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Rows built to probe the filters: NULL and unknown ids, case, LIKE
 * metacharacters, non-ASCII text, pid reuse (two instances of pid 1500),
 * every event type that is evaluated. start_time grows with the position,
 * so a query's order can be checked. */
static void
make_events(struct process_event *evs)
{
	static const char *const names[] = {
		"bash", "BASH", "sh",   "nc", "[kworker/0:1]", "j\xc3\xbcrgen", "\xc3\xa9t\xc3\xa9",
		NULL,   "curl", "a%b_c"
	};
	static const enum proc_event_type types[] = { PROC_EV_START, PROC_EV_MODIFIED,
		                                      PROC_EV_SUSPICIOUS, PROC_EV_SNAPSHOT };
	char buf[256];

	for (int i = 0; i < NEV; i++) {
		struct process_event *e = &evs[i];
		struct process_record *p = &e->proc;
		const char *name = names[i % 10];
		process_event_init(e);
		e->type = types[i % 4];
		e->time = 1795626000000ull + (uint64_t)i * 10;
		e->source = strdup("poll");
		p->pid = i == 7 ? 1500 : 1490 + i;
		p->ppid = i % 6 == 0 ? -1 : 1490 + i / 2;
		p->start_time = 1795625000000ull + (uint64_t)i;
		p->name = dup_or_null(name);
		(void)snprintf(buf, sizeof(buf), i % 5 == 0 ? "/tmp/.x/%s" : "/usr/bin/%s",
		               name ? name : "none");
		p->executable_path = i == 3 ? NULL : strdup(buf);
		(void)snprintf(buf, sizeof(buf), "%s %s --n %d", name ? name : "",
		               i % 4 == 1 ? "echo aGk= | base64 -d | sh" : "-x", i);
		p->command_line = i == 11 ? NULL : strdup(buf);
		p->cpu_usage = i * 0.25;
		p->memory_usage = (uint64_t)i << 20;
		p->user_id = i % 7 == 3 ? -1 : (i % 3 == 0 ? 0 : 1000 + i % 2);
		p->effective_user_id = i % 5 == 2 ? 0 : p->user_id;
		p->group_id = p->user_id;
		p->user_name = dup_or_null(i % 2 ? "j\xc3\xbcrgen" : "root");
		p->cwd = strdup(i % 2 ? "/home/USER" : "/tmp");
		p->tty = i % 3 ? strdup("pts/1") : NULL;
		p->state = strdup("S");
		p->threads = 1 + i % 3;
		p->exe_deleted = i % 8 == 5;
		p->file_exists = !p->exe_deleted;
		p->accessible = true;
		p->parent_name = dup_or_null(i % 4 ? "bash" : NULL);
		p->missing = (uint32_t)(i % 2);
	}
}

static void
clear_events(struct process_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		process_event_clear(&evs[i]);
}

/* The rows of a query, each as one "type:value|..." line. */
struct rows {
	char **v;
	size_t n;
};

static int
collect(void *ctx, int ncol, const char *const *names, const char *const *values, const char *types)
{
	struct rows *r = ctx;
	char line[2048];
	size_t l = 0;

	(void)names;
	for (int i = 0; i < ncol && l < sizeof(line); i++)
		l += (size_t)snprintf(line + l, sizeof(line) - l, "%c:%s|", types[i],
		                      values[i] ? values[i] : "NULL");
	r->v = realloc(r->v, (r->n + 1) * sizeof(*r->v));
	assert_non_null(r->v);
	r->v[r->n++] = strdup(line);
	return 0;
}

static void
rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs sql through both paths and compares. Single-table queries select
 * start_time second, so the virtual table's order is checked too. */
static void
check_same(struct store *s, struct store_eval *e, const char *sql, bool ordered)
{
	struct store_stmt *st = NULL;
	struct rows a = { 0 }, b = { 0 };
	struct errbuf err = { { 0 } };
	int ra, rb;

	if (store_eval_prepare(e, sql, &st, &err) < 0)
		fail_msg("%s: %s", sql, err.msg);
	ra = store_eval_run(e, st, 1000, collect, &a, &err);
	store_stmt_free(st);
	rb = store_query(s, sql, 1000, collect, &b, &err);
	if (ra != rb || a.n != b.n)
		fail_msg("%s: %d rows from the batch, %d from the view (%s)", sql, ra, rb, err.msg);
	for (size_t i = 1; ordered && i < a.n; i++) {
		/* "i:<pid>|i:<start_time>|...": the second field grows. */
		const char *x = strchr(a.v[i - 1], '|'), *y = strchr(a.v[i], '|');
		assert_non_null(x);
		assert_non_null(y);
		if (strtoull(x + 3, NULL, 10) >= strtoull(y + 3, NULL, 10))
			fail_msg("%s: row %zu out of batch order", sql, i);
	}
	if (a.n > 1) {
		qsort(a.v, a.n, sizeof(*a.v), cmp_str);
		qsort(b.v, b.n, sizeof(*b.v), cmp_str);
	}
	for (size_t i = 0; i < a.n; i++)
		if (strcmp(a.v[i], b.v[i]) != 0)
			fail_msg("%s: batch row '%s', view row '%s'", sql, a.v[i], b.v[i]);
	rows_free(&a);
	rows_free(&b);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	(void)snprintf(dbpath, sizeof(dbpath), "%s/events.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* One store holding the events, and a rule connection with them staged. */
struct fixture {
	struct process_event evs[NEV];
	struct store *s;
	struct store_eval *e;
};

static void
fixture_open(struct fixture *f)
{
	struct errbuf err = { { 0 } };

	unlink(dbpath);
	make_events(f->evs);
	assert_int_equal(store_open(dbpath, STORE_RW, &f->s), 0);
	assert_true(store_ingest_batch(f->s, "test", f->evs, NEV, NULL) >= 0);
	assert_int_equal(store_eval_open(f->s, &f->e, &err), 0);
	assert_int_equal(store_eval_stage(f->e, f->evs, NULL, NEV), 0);
}

static void
fixture_close(struct fixture *f)
{
	store_eval_unstage(f->e);
	store_eval_close(f->e);
	store_close(f->s);
	clear_events(f->evs, NEV);
}

/* Single-table queries: each WHERE term the table tests itself, with
 * operands whose type or collation must leave the test to SQLite. */
static const char *const single[] = {
	"SELECT pid, start_time, * FROM processes",
	"SELECT pid, start_time, typeof(ppid), typeof(user_id), typeof(cpu_usage), typeof(tty),"
	" typeof(name), typeof(exe_deleted), typeof(start_time), typeof(event_type) FROM processes",
	"SELECT pid, start_time FROM processes WHERE pid = 1500",
	"SELECT pid, start_time FROM processes WHERE pid = '1500'",
	"SELECT pid, start_time FROM processes WHERE pid = 1500.0",
	"SELECT pid, start_time FROM processes WHERE pid = 1500 OR pid = 1491",
	"SELECT pid, start_time FROM processes WHERE pid IN (1500, 1491, 99999)",
	"SELECT pid, start_time FROM processes WHERE pid IN ('1500', 1491)",
	"SELECT pid, start_time FROM processes WHERE pid IN (1500, NULL)",
	"SELECT pid, start_time FROM processes WHERE pid NOT IN (1500, 1491)",
	"SELECT pid, start_time FROM processes WHERE pid = NULL",
	"SELECT pid, start_time FROM processes WHERE pid = 1500 AND name = 'BASH'",
	"SELECT pid, start_time FROM processes WHERE ppid IS NULL",
	"SELECT pid, start_time FROM processes WHERE ppid IS NOT NULL AND ppid > 1495",
	"SELECT pid, start_time FROM processes WHERE ppid = -1",
	"SELECT pid, start_time FROM processes WHERE user_id <> 0",
	"SELECT pid, start_time FROM processes WHERE user_id < 1001 AND user_id >= 0",
	"SELECT pid, start_time FROM processes WHERE user_id <= 1000 AND effective_user_id = 0",
	"SELECT pid, start_time FROM processes WHERE user_id > 0 AND user_id != 1001",
	"SELECT pid, start_time FROM processes WHERE exe_deleted = 1",
	"SELECT pid, start_time FROM processes WHERE exe_deleted = '1'",
	"SELECT pid, start_time FROM processes WHERE exe_deleted = true AND file_exists = 0",
	"SELECT pid, start_time FROM processes WHERE start_time > 1795625000010",
	"SELECT pid, start_time FROM processes WHERE collection_time >= 1795626000100",
	"SELECT pid, start_time FROM processes WHERE missing = 0 AND threads > 1",
	"SELECT pid, start_time FROM processes WHERE cpu_usage > 2.5",
	"SELECT pid, start_time FROM processes WHERE memory_usage >= 10485760",
	"SELECT pid, start_time FROM processes WHERE name = 'bash'",
	"SELECT pid, start_time FROM processes WHERE name = 'BASH' COLLATE NOCASE",
	"SELECT pid, start_time FROM processes WHERE name COLLATE NOCASE IN ('bash', 'NC')",
	"SELECT pid, start_time FROM processes WHERE name <> 'bash'",
	"SELECT pid, start_time FROM processes WHERE name IN ('bash', 'sh', 'nc')",
	"SELECT pid, start_time FROM processes WHERE name IN ('bash', 5)",
	"SELECT pid, start_time FROM processes WHERE name NOT IN ('bash')",
	"SELECT pid, start_time FROM processes WHERE name = 5 OR name > 'n'",
	"SELECT pid, start_time FROM processes WHERE name = 'j\xc3\xbcrgen'",
	"SELECT pid, start_time FROM processes WHERE tty IS NULL AND name IN ('bash', 'sh')",
	"SELECT pid, start_time FROM processes WHERE tty IS NOT NULL",
	"SELECT pid, start_time FROM processes WHERE event_type = 'start'",
	"SELECT pid, start_time FROM processes WHERE event_type IN ('modified', 'suspicious')",
	"SELECT pid, start_time FROM processes WHERE executable_path LIKE '/tmp/%'",
	"SELECT pid, start_time FROM processes WHERE executable_path LIKE '/TMP/%'",
	"SELECT pid, start_time FROM processes WHERE executable_path LIKE '%/.%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%base64%-d%'"
	" AND command_line LIKE '%|%sh%'",
	"SELECT pid, start_time FROM processes WHERE name LIKE '[%]'",
	"SELECT pid, start_time FROM processes WHERE name LIKE '_ash'",
	"SELECT pid, start_time FROM processes WHERE name LIKE 'a\\%b%' ESCAPE '\\'",
	"SELECT pid, start_time FROM processes WHERE name LIKE 'a%b\\_c' ESCAPE '\\'",
	"SELECT pid, start_time FROM processes WHERE name LIKE '%\\_%'",
	"SELECT pid, start_time FROM processes WHERE name LIKE '\xc3\xa9%'",
	"SELECT pid, start_time FROM processes WHERE user_name LIKE 'j_rgen'",
	"SELECT pid, start_time FROM processes WHERE user_name LIKE 'J%N'",
	"SELECT pid, start_time FROM processes WHERE name LIKE '%t_'",
	"SELECT pid, start_time FROM processes WHERE cwd LIKE '%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE ''",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE NULL",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE 5",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%a%a%a%b'",
	"SELECT pid, start_time FROM processes WHERE name NOT LIKE 'b%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%BASE64%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%_%' AND name LIKE 'b%h'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%sh'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%%-X %%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%n _1'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%-%-%-%'",
	"SELECT pid, start_time FROM processes WHERE command_line LIKE '%a%=%|%'",
	"SELECT pid, start_time FROM processes WHERE executable_path LIKE '%/%/%s%'",
	"SELECT pid, start_time FROM processes WHERE like('%sh%', command_line)",
	"SELECT pid, start_time FROM processes WHERE command_line GLOB '*base64*'",
	"SELECT pid, start_time FROM processes WHERE exe_memfd = 1 OR name = 'nc'"
	" OR executable_path LIKE '/tmp/%'",
	"SELECT pid, start_time FROM processes WHERE effective_user_id = 0 AND user_id <> 0"
	" AND parent_name NOT IN ('sudo', 'su')",
	"SELECT pid, start_time FROM processes WHERE ppid IN (SELECT pid FROM processes"
	" WHERE name = 'bash')",
	"SELECT pid, start_time FROM processes WHERE pid = (SELECT max(pid) FROM processes)",
};

/* Joins and aggregates: the same rows, in whatever order the plan gives. */
static const char *const multi[] = {
	"SELECT p.pid, par.pid AS parent FROM processes p JOIN processes par ON par.pid = p.ppid",
	"SELECT p.pid, c.pid AS child FROM processes p JOIN processes c ON c.ppid = p.pid"
	" WHERE p.name = 'bash'",
	"SELECT p.pid, l.name FROM processes p JOIN live_processes l ON l.pid = p.ppid",
	"SELECT l.pid, p.name FROM live_processes l JOIN processes p ON p.pid = l.pid",
	"SELECT p.pid, count(e.id) AS n FROM processes p LEFT JOIN process_events e"
	" ON e.pid = p.pid GROUP BY p.pid",
	"SELECT min(pid) AS pid, name, count(*) FROM processes GROUP BY name",
	"SELECT a.pid, b.pid AS other FROM processes a JOIN processes b ON a.cwd = b.cwd"
	" AND a.pid < b.pid",
	"SELECT pid, name FROM processes WHERE pid IN (1500, 1491) ORDER BY start_time DESC",
	"SELECT a.pid, b.pid AS other FROM processes a JOIN processes b ON b.tty = a.tty"
	" AND b.name = a.name",
	"SELECT a.pid, b.pid AS other FROM processes a JOIN processes b ON b.user_id = a.user_id"
	" WHERE a.exe_deleted = 0",
	"SELECT a.pid, b.pid AS other FROM processes a, processes b WHERE b.event_type ="
	" a.event_type AND b.pid <> a.pid",
};

static void
test_same_rows_as_the_store(void **state)
{
	struct fixture f;

	(void)state;
	fixture_open(&f);
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
		check_same(f.s, f.e, single[i], true);
	for (size_t i = 0; i < sizeof(multi) / sizeof(multi[0]); i++)
		check_same(f.s, f.e, multi[i], false);
	fixture_close(&f);
}

/* Every rule of the bundled pack finds the same rows both ways. */
static void
test_bundled_pack_same_rows(void **state)
{
	const char *root = getenv("DE_SOURCE_ROOT");
	struct rule_set *rs = NULL;
	struct errbuf err = { { 0 } };
	char rdir[512];
	const char *dirs[1] = { rdir };
	struct fixture f;

	(void)state;
	if (root == NULL)
		skip();
	(void)snprintf(rdir, sizeof(rdir), "%s/rules", root);
	assert_int_equal(rule_set_load(dirs, 1, 1000, NULL, NULL, &rs, &err), 0);
	assert_true(rs->n >= 20);
	fixture_open(&f);
	for (size_t i = 0; i < rs->n; i++)
		check_same(f.s, f.e, rs->rules[i]->sql, false);
	fixture_close(&f);
	rule_set_free(rs);
}

/* The filters work outside SQLite's instructions; the time limit still
 * stops them: a LIKE that walks 4 KiB rows over and over. */
static void
test_filter_time_limit(void **state)
{
	enum { N = 3000 };
	struct process_event *evs = calloc(N, sizeof(*evs));
	char *big = malloc(4097);
	struct store *s = NULL;
	struct store_eval *e = NULL;
	struct store_stmt *st = NULL;
	struct errbuf err = { { 0 } };
	struct rows r = { 0 };
	char sql[512];

	(void)state;
	assert_non_null(evs);
	assert_non_null(big);
	memset(big, 'a', 4096);
	big[4096] = '\0';
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	for (int i = 0; i < N; i++) {
		process_event_init(&evs[i]);
		evs[i].proc.pid = i + 1;
		evs[i].proc.command_line = big; /* shared: not freed per event */
	}
	/* '%' then 300 a's then b: every start position matches 300 a's first. */
	(void)snprintf(sql, sizeof(sql),
	               "SELECT pid FROM processes WHERE command_line LIKE '%%%.300sb'", big);
	assert_int_equal(store_eval_prepare(e, sql, &st, &err), 0);
	assert_int_equal(store_eval_stage(e, evs, NULL, N), 0);
	assert_int_equal(store_eval_run(e, st, 20, collect, &r, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "time limit"));
	assert_int_equal(r.n, 0);
	store_eval_unstage(e);
	store_stmt_free(st);
	store_eval_close(e);
	store_close(s);
	free(big);
	free(evs);
}

/* The table's own LIKE against SQLite's: `name LIKE p` is tested in C,
 * `+name LIKE p` (an expression, not a column) by SQLite, on the same rows,
 * for random patterns full of '%' and '_' and random names, ASCII or not,
 * valid UTF-8 or not (\xc3\xa9 is e-acute; a lone \xc3, \xa9 or \xff is not
 * UTF-8). */
static void
test_like_matches_sqlite(void **state)
{
	enum { N = 300, PATTERNS = 600 };
	static const char alphabet[] = "aAbB%_x-", text[] = "aAbB%_x-\xc3\xa9\xff";
	struct process_event *evs = calloc(N, sizeof(*evs));
	struct store *s = NULL;
	struct store_eval *e = NULL;
	struct errbuf err = { { 0 } };
	unsigned seed = 12345;

	(void)state;
	assert_non_null(evs);
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	for (int i = 0; i < N; i++) {
		char name[16];
		int len = rand_r(&seed) % 13;
		for (int k = 0; k < len; k++)
			name[k] = text[rand_r(&seed) % (i % 2 ? 11 : 8)];
		name[len] = '\0';
		process_event_init(&evs[i]);
		evs[i].proc.pid = i + 1;
		evs[i].proc.start_time = (uint64_t)i;
		evs[i].proc.name = strdup(name);
	}
	assert_int_equal(store_eval_stage(e, evs, NULL, N), 0);
	for (int t = 0; t < PATTERNS; t++) {
		char pat[16], sql[2][128];
		struct rows r[2] = { { 0 } };
		int len = rand_r(&seed) % 9;
		for (int k = 0; k < len; k++)
			pat[k] = alphabet[rand_r(&seed) % 8];
		pat[len] = '\0';
		(void)snprintf(sql[0], sizeof(sql[0]),
		               "SELECT pid, name FROM processes WHERE name LIKE '%s'", pat);
		(void)snprintf(sql[1], sizeof(sql[1]),
		               "SELECT pid, name FROM processes WHERE +name LIKE '%s'", pat);
		for (int k = 0; k < 2; k++) {
			struct store_stmt *st = NULL;
			assert_int_equal(store_eval_prepare(e, sql[k], &st, &err), 0);
			assert_true(store_eval_run(e, st, 1000, collect, &r[k], &err) >= 0);
			store_stmt_free(st);
		}
		if (r[0].n != r[1].n)
			fail_msg("LIKE '%s': %zu rows in C, %zu from SQLite", pat, r[0].n, r[1].n);
		for (size_t k = 0; k < r[0].n; k++)
			assert_string_equal(r[0].v[k], r[1].v[k]);
		rows_free(&r[0]);
		rows_free(&r[1]);
	}
	store_eval_unstage(e);
	store_eval_close(e);
	store_close(s);
	clear_events(evs, N);
	free(evs);
}

/* A join of the batch with itself on a column is an index lookup per outer
 * row, not a scan: 10,000 rows joined on start_time well inside a time
 * limit that 100 million row tests would blow. */
static void
test_join_uses_index(void **state)
{
	enum { N = 10000 };
	struct process_event *evs = calloc(N, sizeof(*evs));
	struct store *s = NULL;
	struct store_eval *e = NULL;
	struct store_stmt *st = NULL;
	struct errbuf err = { { 0 } };

	(void)state;
	assert_non_null(evs);
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	for (int i = 0; i < N; i++) {
		process_event_init(&evs[i]);
		evs[i].proc.pid = 1000 + i;
		evs[i].proc.start_time = 5000000 + (uint64_t)(i * 7 % N);
	}
	assert_int_equal(store_eval_prepare(e,
	                                    "SELECT a.pid FROM processes a JOIN processes b"
	                                    " ON b.start_time = a.start_time + 1",
	                                    &st, &err),
	                 0);
	assert_int_equal(store_eval_stage(e, evs, NULL, N), 0);
	assert_int_equal(store_eval_run(e, st, 300, NULL, NULL, &err), N - 1);
	store_eval_unstage(e);
	store_stmt_free(st);
	store_eval_close(e);
	store_close(s);
	free(evs);
}

/* Writes to the table are the sandbox's to refuse, with its reasons. */
static void
test_writes_refused(void **state)
{
	static const struct {
		const char *sql, *reason;
	} cases[] = {
		{ "DELETE FROM processes", "DELETE" },
		{ "INSERT INTO processes (pid, start_time) VALUES (1, 1)", "INSERT" },
		{ "UPDATE processes SET name = 'x'", "UPDATE" },
		{ "DROP TABLE processes", "not allowed" },
		{ "ALTER TABLE processes RENAME TO p2", "not allowed" },
	};
	struct store *s = NULL;
	struct store_eval *e = NULL;
	struct errbuf err = { { 0 } };

	(void)state;
	unlink(dbpath);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_stmt *st = NULL;
		err.msg[0] = '\0';
		assert_int_equal(store_eval_prepare(e, cases[i].sql, &st, &err), -EINVAL);
		assert_null(st);
		if (strstr(err.msg, cases[i].reason) == NULL)
			fail_msg("%s: '%s'", cases[i].sql, err.msg);
	}
	store_eval_close(e);
	store_close(s);
}

/* store_eval_set_rows() copies: the caller's events may go right away. */
static void
test_set_rows_copies(void **state)
{
	struct process_event evs[NEV];
	struct store *s = NULL;
	struct store_eval *e = NULL;
	struct store_stmt *st = NULL;
	struct errbuf err = { { 0 } };
	struct rows r = { 0 };

	(void)state;
	unlink(dbpath);
	make_events(evs);
	assert_int_equal(store_open(dbpath, STORE_RW, &s), 0);
	assert_int_equal(store_eval_open(s, &e, &err), 0);
	assert_int_equal(store_eval_set_rows(e, evs, NULL, NEV), 0);
	clear_events(evs, NEV);
	assert_int_equal(store_eval_prepare(e,
	                                    "SELECT pid, name FROM processes WHERE name = 'nc'"
	                                    " AND pid = 1493",
	                                    &st, &err),
	                 0);
	assert_int_equal(store_eval_run(e, st, 1000, collect, &r, &err), 1);
	assert_string_equal(r.v[0], "i:1493|t:nc|");
	rows_free(&r);
	store_stmt_free(st);
	store_eval_close(e);
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_rows_as_the_store),
		cmocka_unit_test(test_bundled_pack_same_rows),
		cmocka_unit_test(test_filter_time_limit),
		cmocka_unit_test(test_join_uses_index),
		cmocka_unit_test(test_like_matches_sqlite),
		cmocka_unit_test(test_writes_refused),
		cmocka_unit_test(test_set_rows_copies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
