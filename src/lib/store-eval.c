/* Rule evaluation over the store: see store.h (store_eval_*) and
 * docs/store.md. The rows under evaluation live in TEMP processes of a
 * read-only connection of their own, under the SQL sandbox (sqlguard.c). */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "sqlguard.h"
#include "store-internal.h"

struct store_stmt {
	sqlite3_stmt *stmt;
};

struct store_eval {
	struct store *store;
	sqlite3 *db;
	bool shared;
	struct sqlguard *guard;
	sqlite3_stmt *ins, *clr, *begin, *commit;
	/* Rows staged by store_eval_stage(), to stage again if an error in a
	 * rule rolled the open transaction back. */
	const struct process_event *evs;
	const size_t *idx;
	size_t n;
	bool staged;
};

/* ---- Rule evaluation ------------------------------------------------------ */

static int
eval_prepare_internal(struct store_eval *e, struct errbuf *err)
{
	char sql[SQL_MAX];
	size_t l = 0;

	if (!store_sql_append(sql, sizeof(sql), &l,
	                      "CREATE TEMP TABLE IF NOT EXISTS processes (") ||
	    !store_sql_cols(sql, sizeof(sql), &l, true) ||
	    !store_sql_append(sql, sizeof(sql), &l, ")"))
		return -E2BIG;
	if (sqlite3_exec(e->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	l = 0;
	if (!store_sql_append(sql, sizeof(sql), &l, "INSERT INTO temp.processes (") ||
	    !store_sql_cols(sql, sizeof(sql), &l, false) ||
	    !store_sql_append(sql, sizeof(sql), &l, ") VALUES (") ||
	    !store_sql_params(sql, sizeof(sql), &l, 1) ||
	    !store_sql_append(sql, sizeof(sql), &l, ")"))
		return -E2BIG;
	if (sqlite3_prepare_v3(e->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &e->ins, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v3(e->db, "DELETE FROM temp.processes", -1, SQLITE_PREPARE_PERSISTENT,
	                       &e->clr, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(e->db, "SAVEPOINT eval_rows", -1, SQLITE_PREPARE_PERSISTENT,
	                       &e->begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(e->db, "RELEASE eval_rows", -1, SQLITE_PREPARE_PERSISTENT,
	                       &e->commit, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	errbuf_set(err, "evaluation tables: %s", sqlite3_errmsg(e->db));
	return store_map_rc(sqlite3_errcode(e->db));
}

int
store_eval_open(struct store *s, struct store_eval **ret, struct errbuf *err)
{
	struct store_eval *e;
	int rc;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -ENOMEM;
	e->store = s;
	if (s->memory) {
		/* The sample database exists only in s's connection: share it. */
		e->shared = true;
		e->db = s->db;
		if ((rc = store_ensure_guard(s, err)) < 0)
			goto fail;
		e->guard = s->guard;
	} else {
		rc = sqlite3_open_v2(s->path, &e->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
		                     NULL);
		if (rc != SQLITE_OK) {
			errbuf_set(err, "%s: %s", s->path, sqlite3_errstr(rc));
			rc = store_map_rc(rc);
			goto fail;
		}
		(void)sqlite3_busy_timeout(e->db, STORE_BUSY_TIMEOUT_MS);
		(void)sqlite3_exec(e->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
		/* Our own statements first, then the sandbox over everything else. */
		if ((rc = eval_prepare_internal(e, err)) < 0)
			goto fail;
		if ((rc = sqlguard_attach(e->db, &e->guard)) < 0) {
			errbuf_set(err, "cannot set up the SQL sandbox");
			goto fail;
		}
	}
	if (e->shared && (rc = eval_prepare_internal(e, err)) < 0)
		goto fail;
	*ret = e;
	return 0;
fail:
	store_eval_close(e);
	return rc;
}

void
store_eval_close(struct store_eval *e)
{
	if (e == NULL)
		return;
	sqlite3_finalize(e->ins);
	sqlite3_finalize(e->clr);
	sqlite3_finalize(e->begin);
	sqlite3_finalize(e->commit);
	if (!e->shared) {
		if (e->db)
			(void)sqlite3_close_v2(e->db);
		sqlguard_free(e->guard);
	}
	free(e);
}

int
store_eval_prepare(struct store_eval *e, const char *sql, struct store_stmt **ret,
                   struct errbuf *err)
{
	struct store_stmt *st;
	sqlite3_stmt *raw = NULL;
	int rc;

	if ((rc = sqlguard_prepare(e->guard, SQLGUARD_RULE, sql, &raw, err)) < 0)
		return rc;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		sqlite3_finalize(raw);
		return -ENOMEM;
	}
	st->stmt = raw;
	*ret = st;
	return 0;
}

void
store_stmt_free(struct store_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_finalize(st->stmt);
	free(st);
}

/* Opens the eval_rows savepoint and fills TEMP processes with the rows;
 * on failure nothing is left open. */
static int
eval_fill(struct store_eval *e, const struct process_event *evs, const size_t *idx, size_t n)
{
	int rc;

	if ((rc = store_step_done(e->begin)) < 0)
		return rc;
	if ((rc = store_step_done(e->clr)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct process_event *ev = &evs[idx ? idx[i] : i];
		sqlite3_clear_bindings(e->ins);
		if (store_bind_proc(e->ins, 1, ev) != SQLITE_OK) {
			rc = store_map_rc(sqlite3_errcode(e->db));
			goto out;
		}
		if ((rc = store_step_done(e->ins)) < 0)
			goto out;
	}
out:
	if (rc < 0) {
		(void)sqlite3_exec(e->db, "ROLLBACK TO eval_rows", NULL, NULL, NULL);
		(void)store_step_done(e->commit);
	}
	return rc;
}

int
store_eval_set_rows(struct store_eval *e, const struct process_event *evs, const size_t *idx,
                    size_t n)
{
	int rc = eval_fill(e, evs, idx, n);

	return rc < 0 ? rc : store_step_done(e->commit);
}

int
store_eval_stage(struct store_eval *e, const struct process_event *evs, const size_t *idx, size_t n)
{
	int rc;

	if (e->staged)
		store_eval_unstage(e);
	/* The in-memory store shares its connection with the writer (alerts
	 * are stored during the rule runs): no transaction is held there. */
	if (e->shared)
		return store_eval_set_rows(e, evs, idx, n);
	if ((rc = eval_fill(e, evs, idx, n)) < 0)
		return rc;
	e->evs = evs;
	e->idx = idx;
	e->n = n;
	e->staged = true;
	return 0;
}

void
store_eval_unstage(struct store_eval *e)
{
	if (e->shared) {
		(void)store_eval_set_rows(e, NULL, NULL, 0);
		return;
	}
	if (!e->staged)
		return;
	e->staged = false;
	if (sqlite3_get_autocommit(e->db))
		return; /* an error already ended the transaction, and the rows */
	(void)store_step_done(e->clr);
	(void)store_step_done(e->commit);
}

int
store_eval_run(struct store_eval *e, struct store_stmt *st, uint32_t timeout_ms, store_row_cb cb,
               void *ctx, struct errbuf *err)
{
	int rc = store_run_guarded(e->guard, SQLGUARD_RULE, st->stmt, timeout_ms, cb, ctx, err);

	/* An error (out of memory, say) can roll back the whole transaction,
	 * the staged rows with it: stage them again for the next rule. */
	if (rc < 0 && e->staged && sqlite3_get_autocommit(e->db) &&
	    eval_fill(e, e->evs, e->idx, e->n) < 0)
		e->staged = false;
	return rc;
}
