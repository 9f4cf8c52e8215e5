/* The SQL sandbox: see sqlguard.h. Everything here is SQLite's own machinery
 * (authorizer, limits, progress handler, db_config) plus PCRE2 for regexp(). */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "sqlguard.h"

#include <errno.h>
#include <stdarg.h>
#include <pcre2.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

/* Progress handler period in VDBE instructions: about a microsecond of work,
 * so the deadline is honoured to well under a millisecond. */
#define PROGRESS_PERIOD 1000

enum guard_mode {
	MODE_TRUSTED = 0,
	MODE_PREPARE, /* compiling a user statement */
	MODE_RUN,     /* stepping a user statement */
};

enum guard_stop {
	STOP_NONE = 0,
	STOP_TIME,
	STOP_MEMORY,
};

struct regex_entry {
	char *pattern;
	size_t len;
	pcre2_code *code;
	pcre2_match_data *md;
	uint64_t last_use;
	uint64_t gen; /* which compile this is (0: empty) */
};

/* What regexp() keeps with a constant pattern for the rest of a statement
 * run (sqlite3_set_auxdata): its cache slot, and the slot's generation, so
 * a slot evicted and refilled meanwhile is noticed. Saves the cache lookup
 * (up to 64 pattern comparisons) on every row of a rule with several
 * patterns. */
struct regex_ref {
	struct regex_entry *e;
	uint64_t gen;
};

struct sqlguard {
	sqlite3 *db;
	enum guard_mode mode;
	enum sqlguard_kind kind;
	enum guard_stop stop;
	uint32_t timeout_ms;
	struct timespec deadline;
	sqlite3_int64 mem_base;
	char reason[256]; /* why the authorizer said no */
	pcre2_match_context *mctx;
	struct regex_entry regex[SQLGUARD_REGEX_CACHE];
	struct regex_entry *mru; /* the entry used last */
	uint64_t regex_clock, regex_gen;
	struct sqlguard_stats stats;
	char *known[64]; /* tables and views at attach time */
	size_t n_known;
};

/* Tables a statement may read, per kind. Views are read through their
 * underlying tables: instance_state and process_events back the views
 * process_instances, processes and live_processes (store.c). */
static const char *const rule_tables[] = {
	"processes", "live_processes", "process_events", "process_instances", "instance_state",
};

static const char *const query_tables[] = {
	"processes", "live_processes",  "process_events", "process_instances", "instance_state",
	"alerts",    "detection_rules", "system_info",    "scan_metadata",     "collector_state",
};

/* Core functions a rule may call: string, numeric, aggregate, window, date
 * and JSON functions that allocate at most a bounded value (SQLITE_LIMIT_LENGTH
 * caps every result). Deliberately absent: load_extension, randomblob,
 * zeroblob, sqlite_* introspection, fts/rtree helpers, and anything else. */
static const char *const allowed_functions[] = {
	"abs",          "avg",         "char",         "coalesce",   "count",
	"cume_dist",    "date",        "datetime",     "dense_rank", "first_value",
	"format",       "glob",        "group_concat", "hex",        "ifnull",
	"iif",          "instr",       "json",         "json_array", "json_array_length",
	"json_extract", "json_object", "json_quote",   "json_type",  "json_valid",
	"julianday",    "lag",         "last_value",   "lead",       "length",
	"like",         "likelihood",  "likely",       "lower",      "ltrim",
	"max",          "min",         "nth_value",    "ntile",      "nullif",
	"percent_rank", "printf",      "quote",        "rank",       "regexp",
	"replace",      "round",       "row_number",   "rtrim",      "sign",
	"strftime",     "substr",      "substring",    "sum",        "time",
	"total",        "trim",        "typeof",       "unicode",    "unixepoch",
	"unlikely",     "upper",
};

struct action_name {
	int code;
	const char *name;
};

/* Human names of the actions we refuse, for the reason in the error. */
static const struct action_name action_names[] = {
	{ SQLITE_ATTACH, "ATTACH" },
	{ SQLITE_DETACH, "DETACH" },
	{ SQLITE_PRAGMA, "PRAGMA" },
	{ SQLITE_INSERT, "INSERT" },
	{ SQLITE_UPDATE, "UPDATE" },
	{ SQLITE_DELETE, "DELETE" },
	{ SQLITE_TRANSACTION, "a transaction statement" },
	{ SQLITE_SAVEPOINT, "SAVEPOINT" },
	{ SQLITE_ANALYZE, "ANALYZE" },
	{ SQLITE_REINDEX, "REINDEX" },
	{ SQLITE_ALTER_TABLE, "ALTER TABLE" },
	{ SQLITE_CREATE_INDEX, "CREATE INDEX" },
	{ SQLITE_CREATE_TABLE, "CREATE TABLE" },
	{ SQLITE_CREATE_TEMP_INDEX, "CREATE INDEX" },
	{ SQLITE_CREATE_TEMP_TABLE, "CREATE TABLE" },
	{ SQLITE_CREATE_TEMP_TRIGGER, "CREATE TRIGGER" },
	{ SQLITE_CREATE_TEMP_VIEW, "CREATE VIEW" },
	{ SQLITE_CREATE_TRIGGER, "CREATE TRIGGER" },
	{ SQLITE_CREATE_VIEW, "CREATE VIEW" },
	{ SQLITE_CREATE_VTABLE, "CREATE VIRTUAL TABLE" },
	{ SQLITE_DROP_INDEX, "DROP INDEX" },
	{ SQLITE_DROP_TABLE, "DROP TABLE" },
	{ SQLITE_DROP_TEMP_INDEX, "DROP INDEX" },
	{ SQLITE_DROP_TEMP_TABLE, "DROP TABLE" },
	{ SQLITE_DROP_TEMP_TRIGGER, "DROP TRIGGER" },
	{ SQLITE_DROP_TEMP_VIEW, "DROP VIEW" },
	{ SQLITE_DROP_TRIGGER, "DROP TRIGGER" },
	{ SQLITE_DROP_VIEW, "DROP VIEW" },
	{ SQLITE_DROP_VTABLE, "DROP VIRTUAL TABLE" },
};

struct limit_row {
	int id;
	int value;
};

/* sqlite3_limit() settings of a sandboxed connection. */
static const struct limit_row limits[] = {
	{ SQLITE_LIMIT_LENGTH, (int)SQLGUARD_MAX_VALUE },
	{ SQLITE_LIMIT_SQL_LENGTH, (int)SQLGUARD_MAX_SQL },
	{ SQLITE_LIMIT_COLUMN, 200 },
	{ SQLITE_LIMIT_EXPR_DEPTH, 100 },
	{ SQLITE_LIMIT_COMPOUND_SELECT, 32 },
	{ SQLITE_LIMIT_VDBE_OP, 50000 },
	{ SQLITE_LIMIT_FUNCTION_ARG, 32 },
	{ SQLITE_LIMIT_ATTACHED, 0 },
	{ SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000 },
	{ SQLITE_LIMIT_VARIABLE_NUMBER, 100 }, /* our own inserts bind 38 */
	{ SQLITE_LIMIT_TRIGGER_DEPTH, 1 },
	{ SQLITE_LIMIT_WORKER_THREADS, 0 },
};

static bool
in_list(const char *name, const char *const *list, size_t n)
{
	if (name == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(name, list[i]) == 0)
			return true;
	return false;
}

bool
sqlguard_function_allowed(const char *name)
{
	return in_list(name, allowed_functions, ARRAY_SIZE(allowed_functions));
}

static const char *
action_name(int code)
{
	for (size_t i = 0; i < ARRAY_SIZE(action_names); i++)
		if (action_names[i].code == code)
			return action_names[i].name;
	return "this operation";
}

static bool
table_allowed(const struct sqlguard *g, const char *table)
{
	if (g->kind == SQLGUARD_QUERY)
		return in_list(table, query_tables, ARRAY_SIZE(query_tables));
	return in_list(table, rule_tables, ARRAY_SIZE(rule_tables));
}

static bool
known_table(const struct sqlguard *g, const char *name)
{
	for (size_t i = 0; i < g->n_known; i++)
		if (strcasecmp(g->known[i], name) == 0)
			return true;
	return false;
}

/* Remembers the tables and views that exist when the guard is attached, so
 * a column-less read of one (which SQLite reports without a database name,
 * like a CTE) can be told apart from a CTE. */
static int
load_known_tables(struct sqlguard *g)
{
	static const char sql[] = "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')"
	                          " UNION SELECT name FROM sqlite_temp_schema"
	                          " WHERE type IN ('table', 'view')";
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(g->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && g->n_known < ARRAY_SIZE(g->known)) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		if (n != NULL && (g->known[g->n_known] = strdup(n)) != NULL)
			g->n_known++;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

static int deny(struct sqlguard *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
deny(struct sqlguard *g, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(g->reason, sizeof(g->reason), fmt, ap);
	va_end(ap);
	g->stats.denied++;
	return SQLITE_DENY;
}

/* The allow-list. a1..a4 are the action's arguments (see sqlite3_set_authorizer). */
static int
guard_authorize(void *ctx, int action, const char *a1, const char *a2, const char *db,
                const char *view)
{
	struct sqlguard *g = ctx;

	(void)view;
	if (g->mode == MODE_TRUSTED)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_READ:
		/* A read with no database name is either a common table
		 * expression or a table scanned without reading a column
		 * (count(*)); refuse the latter for tables outside the list. */
		if (db == NULL) {
			if (a1 != NULL && !table_allowed(g, a1) &&
			    (strncasecmp(a1, "sqlite_", 7) == 0 || known_table(g, a1)))
				return deny(g, "reading table '%s' is not allowed", a1);
			return SQLITE_OK;
		}
		if (!streq(db, "main") && !streq(db, "temp"))
			return deny(g, "reading database '%s' is not allowed", db);
		if (!table_allowed(g, a1))
			return deny(g, "reading table '%s' is not allowed", a1 ? a1 : "?");
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		if (!sqlguard_function_allowed(a2))
			return deny(g, "function %s() is not allowed", a2 ? a2 : "?");
		return SQLITE_OK;
	default:
		/* DDL first writes the schema table; keep looking for the
		 * statement's own action, which names it better. */
		if ((action == SQLITE_INSERT || action == SQLITE_UPDATE ||
		     action == SQLITE_DELETE) &&
		    a1 != NULL && strncasecmp(a1, "sqlite_", 7) == 0) {
			if (g->reason[0] == '\0')
				(void)deny(g, "modifying %s is not allowed (only SELECT)", a1);
			return SQLITE_DENY;
		}
		return deny(g, "%s is not allowed (only SELECT)", action_name(action));
	}
}

static int
timespec_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* Interrupts a user statement past its deadline or memory budget. */
static int
guard_progress(void *ctx)
{
	struct sqlguard *g = ctx;
	struct timespec now;

	if (g->mode != MODE_RUN)
		return 0;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	if (timespec_after(&now, &g->deadline)) {
		g->stop = STOP_TIME;
		return 1;
	}
	if (sqlite3_memory_used() - g->mem_base > (sqlite3_int64)SQLGUARD_MEM_BUDGET) {
		g->stop = STOP_MEMORY;
		return 1;
	}
	return 0;
}

static void
regex_entry_clear(struct regex_entry *e)
{
	free(e->pattern);
	pcre2_match_data_free(e->md);
	pcre2_code_free(e->code);
	memset(e, 0, sizeof(*e));
}

/* Returns the compiled pattern from the cache, compiling (and evicting the
 * least recently used entry) when needed. NULL with a message on error. */
static struct regex_entry *
regex_get(struct sqlguard *g, const char *pat, size_t len, char *msg, size_t msgsz)
{
	struct regex_entry *victim = &g->regex[0];
	PCRE2_SIZE erroff;
	int errcode;

	/* A rule scanning a batch calls with the same pattern row after row. */
	if (g->mru != NULL && g->mru->len == len && memcmp(g->mru->pattern, pat, len) == 0) {
		g->stats.regex_cache_hits++;
		return g->mru;
	}
	for (size_t i = 0; i < ARRAY_SIZE(g->regex); i++) {
		struct regex_entry *e = &g->regex[i];
		if (e->pattern != NULL && e->len == len && memcmp(e->pattern, pat, len) == 0) {
			e->last_use = ++g->regex_clock;
			g->stats.regex_cache_hits++;
			g->mru = e;
			return e;
		}
		if (e->pattern == NULL ||
		    (victim->pattern != NULL && e->last_use < victim->last_use))
			victim = e;
	}
	if (g->mru == victim)
		g->mru = NULL;
	regex_entry_clear(victim);
	victim->code = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF, &errcode, &erroff, NULL);
	if (victim->code == NULL) {
		PCRE2_UCHAR buf[128];
		(void)pcre2_get_error_message(errcode, buf, sizeof(buf));
		(void)snprintf(msg, msgsz, "regexp: bad pattern at offset %zu: %s", (size_t)erroff,
		               (const char *)buf);
		return NULL;
	}
	/* JIT is an optimisation; a pattern it cannot compile still runs interpreted. */
	(void)pcre2_jit_compile(victim->code, PCRE2_JIT_COMPLETE);
	victim->md = pcre2_match_data_create_from_pattern(victim->code, NULL);
	victim->pattern = strndup(pat, len);
	if (victim->md == NULL || victim->pattern == NULL) {
		regex_entry_clear(victim);
		(void)snprintf(msg, msgsz, "regexp: out of memory");
		return NULL;
	}
	victim->len = len;
	victim->last_use = ++g->regex_clock;
	victim->gen = ++g->regex_gen;
	g->stats.regex_compiles++;
	g->mru = victim;
	return victim;
}

/* True when s[0..n-1] is all ASCII, hence valid UTF-8: eight bytes at a
 * time, where PCRE2's own UTF check walks byte by byte (two thirds of the
 * cost of matching a typical command line). */
static bool
ascii_only(const unsigned char *s, size_t n)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= s[i];
	return (acc & 0x8080808080808080ull) == 0;
}

/* regexp(pattern, text): 1 when text matches, 0 when not, NULL when either is
 * NULL; an error when the pattern is bad or a PCRE2 limit is hit. */
static void
guard_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sqlguard *g = sqlite3_user_data(ctx);
	const unsigned char *pat, *text;
	struct regex_entry *e;
	struct regex_ref *ref;
	char msg[200];
	int plen, tlen, rc;

	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL ||
	    sqlite3_value_type(argv[1]) == SQLITE_NULL)
		return;
	text = sqlite3_value_text(argv[1]);
	tlen = sqlite3_value_bytes(argv[1]);
	if (text == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	/* SQLite keeps auxiliary data only for a constant argument. */
	ref = sqlite3_get_auxdata(ctx, 0);
	if (ref != NULL && ref->gen == ref->e->gen) {
		e = ref->e;
		e->last_use = ++g->regex_clock;
		g->stats.regex_cache_hits++;
	} else {
		pat = sqlite3_value_text(argv[0]);
		plen = sqlite3_value_bytes(argv[0]);
		if (pat == NULL) {
			sqlite3_result_error_nomem(ctx);
			return;
		}
		if ((size_t)plen > SQLGUARD_REGEX_MAX_PATTERN) {
			sqlite3_result_error(ctx, "regexp: pattern longer than 1024 bytes", -1);
			return;
		}
		e = regex_get(g, (const char *)pat, (size_t)plen, msg, sizeof(msg));
		if (e == NULL) {
			sqlite3_result_error(ctx, msg, -1);
			return;
		}
		if ((ref = malloc(sizeof(*ref))) != NULL) {
			*ref = (struct regex_ref){ e, e->gen };
			sqlite3_set_auxdata(ctx, 0, ref, free);
		}
	}
	/* Compiled for UTF-8 without PCRE2_MATCH_INVALID_UTF (which made JIT
	 * matching ~1.6x slower): PCRE2 checks a subject that is not plain
	 * ASCII itself and reports the rare text that is not UTF-8 (only a
	 * CAST blob can be). */
	rc = pcre2_match(e->code, text, (size_t)tlen, 0,
	                 ascii_only(text, (size_t)tlen) ? PCRE2_NO_UTF_CHECK : 0, e->md, g->mctx);
	/* A match can cost milliseconds below its limits, and the progress
	 * handler only runs between instructions: check the deadline here too.
	 * The coarse clock (a few ns, where the fine one costs about as much
	 * as a short match) trails the fine one by at most a tick, so it never
	 * stops a rule early, and late by a few milliseconds at most. */
	if (g->mode == MODE_RUN) {
		struct timespec now;
		(void)clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
		if (timespec_after(&now, &g->deadline)) {
			g->stop = STOP_TIME;
			sqlite3_interrupt(g->db);
		}
	}
	if (rc >= 0) {
		sqlite3_result_int(ctx, 1);
	} else if (rc == PCRE2_ERROR_NOMATCH) {
		sqlite3_result_int(ctx, 0);
	} else {
		PCRE2_UCHAR buf[128];
		if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
		    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
			g->stats.regex_limit_hits++;
		(void)pcre2_get_error_message(rc, buf, sizeof(buf));
		(void)snprintf(msg, sizeof(msg), "regexp: %s", (const char *)buf);
		sqlite3_result_error(ctx, msg, -1);
	}
}

static int
guard_configure(struct sqlguard *g, sqlite3 *db)
{
	static const int off_flags[] = {
		SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
		SQLITE_DBCONFIG_TRUSTED_SCHEMA,
		SQLITE_DBCONFIG_ENABLE_TRIGGER,
		SQLITE_DBCONFIG_ENABLE_VIEW,
	};
	int on = 1;

	for (size_t i = 0; i < ARRAY_SIZE(limits); i++)
		(void)sqlite3_limit(db, limits[i].id, limits[i].value);
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) != SQLITE_OK)
		return -EIO;
	for (size_t i = 0; i < ARRAY_SIZE(off_flags); i++) {
		int v = -1;
		/* Views stay on: `processes` is one. Only extensions, triggers and
		 * untrusted schema functions are switched off. */
		if (off_flags[i] == SQLITE_DBCONFIG_ENABLE_VIEW)
			continue;
		if (sqlite3_db_config(db, off_flags[i], 0, &v) != SQLITE_OK || v != 0)
			return -EIO;
	}
	if (sqlite3_set_authorizer(db, guard_authorize, g) != SQLITE_OK)
		return -EIO;
	sqlite3_progress_handler(db, PROGRESS_PERIOD, guard_progress, g);
	if (sqlite3_create_function_v2(db, "regexp", 2,
	                               SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, g,
	                               guard_regexp, NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	return 0;
}

int
sqlguard_attach(struct sqlite3 *db, struct sqlguard **ret)
{
	struct sqlguard *g;
	int rc;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return -ENOMEM;
	g->db = db;
	if (load_known_tables(g) < 0) {
		sqlguard_free(g);
		return -EIO;
	}
	if ((g->mctx = pcre2_match_context_create(NULL)) == NULL) {
		sqlguard_free(g);
		return -ENOMEM;
	}
	(void)pcre2_set_match_limit(g->mctx, SQLGUARD_REGEX_MATCH_LIMIT);
	(void)pcre2_set_depth_limit(g->mctx, SQLGUARD_REGEX_DEPTH_LIMIT);
	(void)pcre2_set_heap_limit(g->mctx, 4096); /* KiB */
	if ((rc = guard_configure(g, db)) < 0) {
		sqlite3_set_authorizer(db, NULL, NULL);
		sqlite3_progress_handler(db, 0, NULL, NULL);
		sqlguard_free(g);
		return rc;
	}
	*ret = g;
	return 0;
}

void
sqlguard_free(struct sqlguard *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(g->regex); i++)
		regex_entry_clear(&g->regex[i]);
	for (size_t i = 0; i < g->n_known; i++)
		free(g->known[i]);
	pcre2_match_context_free(g->mctx);
	free(g);
}

static bool
has_pid_column(sqlite3_stmt *st)
{
	for (int i = 0; i < sqlite3_column_count(st); i++) {
		const char *n = sqlite3_column_name(st, i);
		if (n != NULL && strcasecmp(n, "pid") == 0)
			return true;
	}
	return false;
}

/* Fails when the text after the first statement holds another statement. */
static int
check_tail(struct sqlguard *g, const char *tail, struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	const char *next = NULL;
	int rc;

	while (tail != NULL && *tail != '\0') {
		rc = sqlite3_prepare_v2(g->db, tail, -1, &st, &next);
		if (rc != SQLITE_OK || st != NULL) {
			sqlite3_finalize(st);
			errbuf_set(err, "exactly one statement is allowed");
			return -EINVAL;
		}
		if (next == tail)
			break;
		tail = next;
	}
	return 0;
}

static int
prepare_error(struct sqlguard *g, int rc, struct errbuf *err)
{
	if (rc == SQLITE_AUTH && g->reason[0] != '\0')
		errbuf_set(err, "%s", g->reason);
	else if (rc == SQLITE_AUTH || streq(sqlite3_errmsg(g->db), "not authorized"))
		errbuf_set(err,
		           "not allowed: only SELECT over the documented tables and functions");
	else if (rc == SQLITE_TOOBIG)
		errbuf_set(err, "statement too long (at most %u bytes)", SQLGUARD_MAX_SQL);
	else
		errbuf_set(err, "%s", sqlite3_errmsg(g->db));
	return rc == SQLITE_NOMEM ? -ENOMEM : -EINVAL;
}

int
sqlguard_prepare(struct sqlguard *g, enum sqlguard_kind kind, const char *sql,
                 struct sqlite3_stmt **ret, struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	int rc;

	if (sql == NULL || strlen(sql) > SQLGUARD_MAX_SQL) {
		errbuf_set(err, "statement missing or too long (at most %u bytes)",
		           SQLGUARD_MAX_SQL);
		return -EINVAL;
	}
	g->mode = MODE_PREPARE;
	g->kind = kind;
	g->reason[0] = '\0';
	rc = sqlite3_prepare_v3(g->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
	if (rc != SQLITE_OK) {
		rc = prepare_error(g, rc, err);
		goto out;
	}
	if (st == NULL) {
		errbuf_set(err, "empty statement");
		rc = -EINVAL;
		goto out;
	}
	if ((rc = check_tail(g, tail, err)) < 0)
		goto out;
	if (!sqlite3_stmt_readonly(st)) {
		errbuf_set(err, "only read-only SELECT statements are allowed");
		rc = -EINVAL;
		goto out;
	}
	if (kind == SQLGUARD_RULE && !has_pid_column(st)) {
		errbuf_set(err, "a rule must select a column named pid");
		rc = -EINVAL;
		goto out;
	}
	*ret = st;
	st = NULL;
	rc = 0;
out:
	sqlite3_finalize(st);
	g->mode = MODE_TRUSTED;
	return rc;
}

void
sqlguard_run_begin(struct sqlguard *g, enum sqlguard_kind kind, uint32_t timeout_ms)
{
	if (timeout_ms == 0)
		timeout_ms = SQLGUARD_DEFAULT_TIMEOUT_MS;
	g->mode = MODE_RUN;
	g->kind = kind;
	g->stop = STOP_NONE;
	g->reason[0] = '\0';
	g->timeout_ms = timeout_ms;
	(void)clock_gettime(CLOCK_MONOTONIC, &g->deadline);
	g->deadline.tv_sec += timeout_ms / 1000;
	g->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (g->deadline.tv_nsec >= 1000000000L) {
		g->deadline.tv_sec++;
		g->deadline.tv_nsec -= 1000000000L;
	}
	g->mem_base = sqlite3_memory_used();
}

void
sqlguard_run_end(struct sqlguard *g)
{
	g->mode = MODE_TRUSTED;
}

bool
sqlguard_deadline_passed(struct sqlguard *g)
{
	struct timespec now;

	if (g == NULL || g->mode != MODE_RUN)
		return false;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	if (!timespec_after(&now, &g->deadline))
		return false;
	g->stop = STOP_TIME;
	return true;
}

int
sqlguard_step_error(struct sqlguard *g, int sqlite_rc, struct errbuf *err)
{
	if (sqlite_rc == SQLITE_INTERRUPT && g->stop == STOP_TIME) {
		g->stats.timeouts++;
		errbuf_set(err, "time limit of %u ms exceeded", g->timeout_ms);
		return -ETIMEDOUT;
	}
	if (sqlite_rc == SQLITE_INTERRUPT && g->stop == STOP_MEMORY) {
		errbuf_set(err, "memory budget of %u MiB exceeded", SQLGUARD_MEM_BUDGET >> 20);
		return -E2BIG;
	}
	if (sqlite_rc == SQLITE_TOOBIG || sqlite_rc == SQLITE_NOMEM) {
		errbuf_set(err, "value larger than %u bytes or out of memory", SQLGUARD_MAX_VALUE);
		return -E2BIG;
	}
	if (sqlite_rc == SQLITE_AUTH && g->reason[0] != '\0') {
		errbuf_set(err, "%s", g->reason);
		return -EINVAL;
	}
	errbuf_set(err, "%s", sqlite3_errmsg(g->db));
	return -EINVAL;
}

void
sqlguard_get_stats(const struct sqlguard *g, struct sqlguard_stats *ret)
{
	*ret = g->stats;
}
