/* The SQL sandbox shared by detection rules and `daemoneye-cli query`.
 *
 * It is built only from SQLite's own machinery, installed on one connection:
 *   - an authorizer allow-list: SELECT (WITH, recursive CTEs), reads of the
 *     documented tables, and an allow-list of core functions; everything else
 *     (ATTACH, PRAGMA, writes, DDL, load_extension, randomblob, ...) is denied
 *     with a reason naming what was refused;
 *   - sqlite3_limit() bounds (value length, SQL length, columns, expression
 *     depth, compound selects, LIKE pattern, VDBE program size, no ATTACH);
 *   - a progress handler enforcing a time limit and a memory budget;
 *   - SQLITE_DBCONFIG_DEFENSIVE, trusted_schema off, extension loading off;
 *   - regexp(pattern, text) (and `text REGEXP pattern`) with PCRE2: JIT,
 *     a bounded LRU cache of compiled patterns, match, depth and heap limits.
 *
 * The guard has a mode. In trusted mode (the default) the store's own
 * statements run unchecked; sqlguard_prepare() and sqlguard_run_begin() switch
 * to a sandboxed mode for the user's statement only. Only store.c uses this
 * header (STYLE.md rule 8: sqlite3 stays behind store.c and sqlguard.c). */
#ifndef DE_SQLGUARD_H
#define DE_SQLGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"

struct sqlite3;
struct sqlite3_stmt;
struct sqlguard;

enum sqlguard_kind {
	SQLGUARD_RULE = 0, /* processes, live_processes, process_events; must select pid */
	SQLGUARD_QUERY,    /* the CLI: every documented table, no pid requirement */
};

/* Default bounds (docs/store.md explains them). */
#define SQLGUARD_DEFAULT_TIMEOUT_MS 100
#define SQLGUARD_MEM_BUDGET         (64u << 20) /* bytes a statement may allocate */
#define SQLGUARD_MAX_VALUE          (1u << 20)  /* largest string or blob value */
#define SQLGUARD_MAX_SQL            (64u << 10) /* longest statement text */
#define SQLGUARD_REGEX_CACHE        64          /* compiled patterns kept per connection */
#define SQLGUARD_REGEX_MAX_PATTERN  1024
#define SQLGUARD_REGEX_MATCH_LIMIT  1000000
#define SQLGUARD_REGEX_DEPTH_LIMIT  5000

/* Installs the sandbox on db (limits, db_config, authorizer, progress
 * handler, regexp()). The guard must be freed only after db is closed (the
 * regexp function holds a pointer to it). Returns 0 and sets *ret, -ENOMEM,
 * or -EIO when SQLite refuses a setting. */
int sqlguard_attach(struct sqlite3 *db, struct sqlguard **ret);
/* Frees the guard and its compiled patterns; accepts NULL. */
void sqlguard_free(struct sqlguard *g);

/* Compiles exactly one read-only statement under the allow-list of kind.
 * Rejected: empty text, more than one statement, anything not read-only,
 * anything the authorizer denies, a syntax error, and for SQLGUARD_RULE a
 * result without a column named `pid`. On success *ret owns the statement
 * (sqlite3_finalize). Returns -EINVAL with the reason in err. */
int sqlguard_prepare(struct sqlguard *g, enum sqlguard_kind kind, const char *sql,
                     struct sqlite3_stmt **ret, struct errbuf *err);

/* Brackets the stepping of a sandboxed statement: sets the deadline
 * (timeout_ms from now; 0 means the default) and the memory baseline.
 * sqlguard_run_end() returns to trusted mode. */
void sqlguard_run_begin(struct sqlguard *g, enum sqlguard_kind kind, uint32_t timeout_ms);
void sqlguard_run_end(struct sqlguard *g);

/* For work a statement does outside SQLite's instructions (the filters of
 * the rows table, store-eval.c), where the progress handler cannot see it:
 * true when a sandboxed statement is running past its deadline. The caller
 * then fails the step with SQLITE_INTERRUPT, which sqlguard_step_error()
 * reports as the time limit. */
bool sqlguard_deadline_passed(struct sqlguard *g);

/* Maps the SQLite result code of a failed step of a sandboxed statement to
 * -ETIMEDOUT (time limit), -E2BIG (memory budget or value size), or -EINVAL
 * (any other runtime error, e.g. a regexp match limit), with the reason in err. */
int sqlguard_step_error(struct sqlguard *g, int sqlite_rc, struct errbuf *err);

/* The number of regexp() calls that hit a PCRE2 limit, and cache statistics. */
struct sqlguard_stats {
	uint64_t regex_compiles;
	uint64_t regex_cache_hits;
	uint64_t regex_limit_hits;
	uint64_t denied;
	uint64_t timeouts;
};
void sqlguard_get_stats(const struct sqlguard *g, struct sqlguard_stats *ret);

/* True when name is a function rules and queries may call (exposed for the
 * docs test and the CLI's completion). */
bool sqlguard_function_allowed(const char *name);

#endif
