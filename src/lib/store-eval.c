/* Rule evaluation over the store: see store.h (store_eval_*) and
 * docs/store.md. The rows under evaluation are served by a virtual table,
 * temp.processes, straight from the caller's events: nothing is copied into
 * SQLite. It shadows the store's `processes` view on a read-only connection
 * of its own, under the SQL sandbox (sqlguard.c), which polices reads of it
 * like any table's. */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sqlguard.h"
#include "store-internal.h"
#include "util.h"

/* The rows the planner assumes: plans are made once per rule set, long
 * before any batch, so no real count exists then. Every way of reading the
 * table costs about a full scan, so the planner never prefers a plan that
 * changes the order rows come out in (an OR or IN split into lookups). */
#define PLAN_ROWS   1000.0
#define MAX_FILTERS 16
/* Room for the process columns (31; checked at open). */
#define N_PROC_COLS_MAX 40
/* Filter work (rows and LIKE steps) between two looks at the deadline. */
#define WORK_CHECK (1u << 16)

struct store_stmt {
	sqlite3_stmt *stmt;
};

/* The positions of the rows whose value in one column is not NULL, sorted
 * by that value (then position): the index for col = ? when a cursor is the
 * inner loop of a join. Built on demand, once per batch. */
struct col_index {
	uint32_t *pos;
	size_t n, cap;
	bool ok;
};

struct store_eval {
	struct store *store;
	sqlite3 *db;
	bool shared;
	struct sqlguard *guard;
	sqlite3_stmt *begin, *commit;
	/* The rows under evaluation: evs[idx[i]] (evs[i] when idx is NULL),
	 * the caller's (store_eval_stage) or own copies (store_eval_set_rows). */
	const struct process_event *evs;
	const size_t *idx;
	size_t n;
	struct process_event *own;
	size_t n_own;
	bool staged;
	struct col_index ix[N_PROC_COLS_MAX];
};

/* ---- The values of a row -------------------------------------------------- */

static const struct process_event *
row_at(const struct store_eval *e, size_t pos)
{
	return &e->evs[e->idx ? e->idx[pos] : pos];
}

static bool
kind_is_int(enum col_kind k)
{
	return k != COL_REAL && k != COL_TEXT && k != COL_EVTYPE;
}

static bool
kind_is_text(enum col_kind k)
{
	return k == COL_TEXT || k == COL_EVTYPE;
}

/* The value of an integer column, with store_bind_proc()'s conventions
 * (negative ids are NULL). Returns false for NULL. */
static bool
col_int(const struct process_event *ev, int col, int64_t *ret)
{
	const struct proc_col *c = &proc_cols[col];
	const void *p = (const char *)&ev->proc + c->off;

	switch (c->kind) {
	case COL_I32:
		*ret = *(const int32_t *)p;
		return true;
	case COL_ID32:
		*ret = *(const int32_t *)p;
		return *ret >= 0;
	case COL_ID64:
		*ret = *(const int64_t *)p;
		return *ret >= 0;
	case COL_U64:
		*ret = (int64_t) * (const uint64_t *)p;
		return true;
	case COL_U32:
		*ret = *(const uint32_t *)p;
		return true;
	case COL_BOOL:
		*ret = *(const bool *)p ? 1 : 0;
		return true;
	case COL_EVTIME:
		*ret = (int64_t)ev->time;
		return true;
	default:
		return false;
	}
}

/* The value of a text column, NULL for SQL NULL. */
static const char *
col_text(const struct process_event *ev, int col)
{
	const struct proc_col *c = &proc_cols[col];

	if (c->kind == COL_EVTYPE)
		return proc_event_type_to_string(ev->type);
	return *(char *const *)((const char *)&ev->proc + c->off);
}

/* ---- Filters: the WHERE terms the table tests itself ------------------------
 * A filter only ever drops rows its term cannot accept; when the operand's
 * type leaves any doubt (affinity, a collation, non-ASCII text for LIKE) it
 * is inactive and passes every row, and SQLite tests the term as usual. */

enum {
	OP_EQ = '=',
	OP_NE = '!',
	OP_LT = '<',
	OP_LE = '{',
	OP_GT = '>',
	OP_GE = '}',
	OP_ISNULL = 'n',
	OP_NOTNULL = 'N',
	OP_IN = 'i',
	OP_LIKE = '~',
};

struct operand {
	int64_t i;
	char *s; /* text operands, owned */
	size_t len;
};

struct row_filter {
	int col;
	char op;
	bool active;
	bool like_one;     /* a LIKE pattern with '_' */
	struct operand *v; /* one, or the IN list sorted */
	size_t nv;
};

static bool
op_has_operand(char op)
{
	return op != OP_ISNULL && op != OP_NOTNULL;
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* The first position at or after s holding c, either case for a letter;
 * NULL when there is none. c is not NUL. One strcspn() pass, as SQLite's
 * own LIKE does it. */
static const unsigned char *
find_char(const unsigned char *s, unsigned char c)
{
	char set[3] = { (char)c, (char)c, '\0' };

	if (c >= 'a' && c <= 'z')
		set[1] = (char)(c - ('a' - 'A'));
	else if (c >= 'A' && c <= 'Z')
		set[1] = (char)(c + ('a' - 'A'));
	s += strcspn((const char *)s, set);
	return *s != '\0' ? s : NULL;
}

/* SQLite's LIKE without ESCAPE ('%' any run, '_' one character, ASCII
 * letters fold case) for an ASCII pattern and an ASCII text, where a
 * character is a byte. The classic wildcard walk: on a mismatch go back to
 * the last '%' and let it swallow more text, straight to the next place its
 * first character occurs. Counts its steps into *work (at most about
 * strlen(s) * strlen(p)). */
static bool
like_ascii(const unsigned char *p, const unsigned char *s, uint64_t *work)
{
	const unsigned char *star_p = NULL, *star_s = NULL;
	uint64_t steps = 0;
	bool ok = false;

	while (*s != '\0') {
		steps++;
		if (*p == '%') {
			while (*p == '%')
				p++;
			if (*p == '\0') {
				ok = true;
				goto out;
			}
			star_p = p;
			star_s = s; /* the '%' swallows nothing first */
		} else if (*p != '\0' && (*p == '_' || ascii_lower(*p) == ascii_lower(*s))) {
			p++;
			s++;
			continue;
		} else if (star_p != NULL) {
			/* A mismatch: the last '%' swallows one more character. */
			p = star_p;
			star_s++;
		} else {
			goto out;
		}
		/* Straight to the next place the text after the '%' can start. */
		if (*p != '_' && (star_s = find_char(star_s, *p)) == NULL)
			goto out;
		s = star_s;
	}
	while (*p == '%')
		p++;
	ok = *p == '\0';
out:
	*work += steps;
	return ok;
}

static bool
is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

static int
cmp_operand_int(const void *a, const void *b)
{
	int64_t x = ((const struct operand *)a)->i, y = ((const struct operand *)b)->i;

	return (x > y) - (x < y);
}

/* BINARY order; text operands and values hold no NUL (operand_set). */
static int
cmp_operand_text(const void *a, const void *b)
{
	return strcmp(((const struct operand *)a)->s, ((const struct operand *)b)->s);
}

/* Does the row's value x pass op against operand v (integers)? */
static bool
int_test(char op, int64_t x, const struct row_filter *f)
{
	int64_t v = f->v[0].i;

	switch (op) {
	case OP_EQ:
		return x == v;
	case OP_NE:
		return x != v;
	case OP_LT:
		return x < v;
	case OP_LE:
		return x <= v;
	case OP_GT:
		return x > v;
	case OP_GE:
		return x >= v;
	case OP_IN: {
		struct operand key = { .i = x };
		return bsearch(&key, f->v, f->nv, sizeof(*f->v), cmp_operand_int) != NULL;
	}
	default:
		return true;
	}
}

/* An ASCII pattern walks text byte by byte exactly as SQLite walks it
 * character by character, whatever the text's other bytes: those never
 * decode to an ASCII character (SQLite decodes a bad sequence to U+FFFD),
 * and an ASCII byte is never inside a sequence, so a literal or a '%'
 * meets the same characters either way. Only '_' differs: one character
 * there, one byte here; with '_' in the pattern the text must be ASCII. */
static bool
text_test(char op, const char *x, const struct row_filter *f, uint64_t *work)
{
	struct operand key = { .s = (char *)x };

	switch (op) {
	case OP_EQ:
		return strcmp(x, f->v[0].s) == 0;
	case OP_NE:
		return strcmp(x, f->v[0].s) != 0;
	case OP_IN:
		return bsearch(&key, f->v, f->nv, sizeof(*f->v), cmp_operand_text) != NULL;
	case OP_LIKE:
		if (f->like_one && !is_ascii(x, strlen(x)))
			return true; /* SQLite decides */
		return like_ascii((const unsigned char *)f->v[0].s, (const unsigned char *)x, work);
	default:
		return true;
	}
}

/* Does row ev pass filter f? NULL passes only IS NULL (every other test of
 * NULL is NULL, which a WHERE term drops). */
static bool
filter_pass(const struct row_filter *f, const struct process_event *ev, uint64_t *work)
{
	const char *s = NULL;
	int64_t x = 0;
	bool null;

	if (kind_is_text(proc_cols[f->col].kind))
		null = (s = col_text(ev, f->col)) == NULL;
	else
		null = !col_int(ev, f->col, &x);
	if (f->op == OP_ISNULL)
		return null;
	if (f->op == OP_NOTNULL)
		return !null;
	if (!f->active)
		return true;
	if (null)
		return false;
	return s != NULL ? text_test(f->op, s, f, work) : int_test(f->op, x, f);
}

static void
filter_clear(struct row_filter *f)
{
	for (size_t i = 0; i < f->nv; i++)
		free(f->v[i].s);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* Copies value v into o when its type allows an exact test on column col
 * (an integer, or a real that is one, for an integer column; text for a
 * text column); returns 1 when copied, 0 when not (the filter is then
 * inactive), -ENOMEM. */
static int
operand_set(struct operand *o, int col, sqlite3_value *v)
{
	if (kind_is_int(proc_cols[col].kind)) {
		double d;
		if (sqlite3_value_type(v) == SQLITE_INTEGER) {
			o->i = sqlite3_value_int64(v);
			return 1;
		}
		/* 1500.0 compares equal to 1500 (and plans as an integer). */
		if (sqlite3_value_type(v) != SQLITE_FLOAT)
			return 0;
		d = sqlite3_value_double(v);
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
		    (double)(int64_t)d != d)
			return 0;
		o->i = (int64_t)d;
		return 1;
	}
	if (sqlite3_value_type(v) != SQLITE_TEXT)
		return 0;
	const unsigned char *t = sqlite3_value_text(v);
	int len = sqlite3_value_bytes(v);
	if (t == NULL || (o->s = malloc((size_t)len + 1)) == NULL)
		return -ENOMEM;
	memcpy(o->s, t, (size_t)len);
	o->s[len] = '\0';
	o->len = (size_t)len;
	/* A NUL inside the value would compare differently as a C string. */
	if (strlen(o->s) != o->len) {
		free(o->s);
		o->s = NULL;
		return 0;
	}
	return 1;
}

/* Fills f->v from the list of an IN handled all at once. */
static int
filter_set_list(struct row_filter *f, sqlite3_value *list)
{
	sqlite3_value *v = NULL;
	size_t cap = 0;
	int rc;

	f->active = true;
	for (rc = sqlite3_vtab_in_first(list, &v); rc == SQLITE_OK && v != NULL;
	     rc = sqlite3_vtab_in_next(list, &v)) {
		if (f->nv == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct operand *nv = reallocarray(f->v, ncap, sizeof(*nv));
			if (nv == NULL)
				return -ENOMEM;
			f->v = nv;
			cap = ncap;
		}
		memset(&f->v[f->nv], 0, sizeof(*f->v));
		int r = operand_set(&f->v[f->nv], f->col, v);
		if (r < 0)
			return r;
		if (r == 0)
			f->active = false; /* keep going: the list owns its strings */
		else
			f->nv++;
	}
	if (rc != SQLITE_OK && rc != SQLITE_DONE)
		return -EIO;
	if (f->active)
		qsort(f->v, f->nv, sizeof(*f->v),
		      kind_is_int(proc_cols[f->col].kind) ? cmp_operand_int : cmp_operand_text);
	return 0;
}

/* Sets f's operand from an xFilter argument. like_max: SQLite's LIKE
 * pattern limit (a longer pattern is an error SQLite must raise itself). */
static int
filter_set(struct row_filter *f, sqlite3_value *v, int like_max)
{
	int r;

	if (f->op == OP_IN)
		return filter_set_list(f, v);
	if ((f->v = calloc(1, sizeof(*f->v))) == NULL)
		return -ENOMEM;
	f->nv = 1;
	if ((r = operand_set(&f->v[0], f->col, v)) < 0)
		return r;
	f->active = r == 1;
	if (f->op == OP_LIKE) {
		const char *pat = f->v[0].s;
		f->active = f->active && pat != NULL && f->v[0].len <= (size_t)like_max &&
		            is_ascii(pat, f->v[0].len);
		f->like_one = f->active && strchr(pat, '_') != NULL;
	}
	return 0;
}

/* ---- The virtual table ----------------------------------------------------- */

struct rows_vtab {
	sqlite3_vtab base;
	struct store_eval *e;
};

struct rows_cursor {
	sqlite3_vtab_cursor base;
	struct store_eval *e;
	struct row_filter f[MAX_FILTERS];
	int nf;
	const uint32_t *ix; /* a lookup: rows ix[i..end), else rows i..end */
	size_t i, end, pos; /* pos: the row at i */
	uint64_t work;
	unsigned filters; /* xFilter calls: more than one makes it an inner loop */
};

static int
rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **ret,
             char **errp)
{
	struct rows_vtab *t;
	char sql[SQL_MAX];
	size_t l = 0;

	(void)argc;
	(void)argv;
	(void)errp;
	if (!store_sql_append(sql, sizeof(sql), &l, "CREATE TABLE x(") ||
	    !store_sql_cols(sql, sizeof(sql), &l, true) ||
	    !store_sql_append(sql, sizeof(sql), &l, ")"))
		return SQLITE_TOOBIG;
	if (sqlite3_declare_vtab(db, sql) != SQLITE_OK)
		return SQLITE_ERROR;
	/* Only a statement of ours or a rule reads it, never a view or trigger. */
	(void)sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
	if ((t = sqlite3_malloc(sizeof(*t))) == NULL)
		return SQLITE_NOMEM;
	memset(t, 0, sizeof(*t));
	t->e = aux;
	*ret = &t->base;
	return SQLITE_OK;
}

static int
rows_disconnect(sqlite3_vtab *tab)
{
	sqlite3_free(tab);
	return SQLITE_OK;
}

/* The filter op for constraint i of info on a column of kind k, 0 when the
 * table cannot test it exactly. */
static char
constraint_op(sqlite3_index_info *info, int i, enum col_kind k)
{
	static const struct {
		unsigned char sqlite_op;
		char op;
	} map[] = {
		{ SQLITE_INDEX_CONSTRAINT_EQ, OP_EQ },
		{ SQLITE_INDEX_CONSTRAINT_NE, OP_NE },
		{ SQLITE_INDEX_CONSTRAINT_LT, OP_LT },
		{ SQLITE_INDEX_CONSTRAINT_LE, OP_LE },
		{ SQLITE_INDEX_CONSTRAINT_GT, OP_GT },
		{ SQLITE_INDEX_CONSTRAINT_GE, OP_GE },
		{ SQLITE_INDEX_CONSTRAINT_LIKE, OP_LIKE },
		{ SQLITE_INDEX_CONSTRAINT_ISNULL, OP_ISNULL },
		{ SQLITE_INDEX_CONSTRAINT_ISNOTNULL, OP_NOTNULL },
	};
	char op = 0;

	for (size_t j = 0; j < ARRAY_SIZE(map); j++)
		if (map[j].sqlite_op == info->aConstraint[i].op)
			op = map[j].op;
	if (op == 0 || k == COL_REAL)
		return 0;
	if (op == OP_ISNULL || op == OP_NOTNULL)
		return op;
	if (kind_is_int(k))
		return op == OP_LIKE ? 0 : op == OP_EQ && sqlite3_vtab_in(info, i, 1) ? OP_IN : op;
	/* Text: equality only under BINARY (NOCASE and RTRIM match more). */
	if (op == OP_LIKE)
		return op;
	if ((op != OP_EQ && op != OP_NE) ||
	    strcasecmp(sqlite3_vtab_collation(info, i), "BINARY") != 0)
		return 0;
	return op == OP_EQ && sqlite3_vtab_in(info, i, 1) ? OP_IN : op;
}

/* True when the term is a literal the filter tests exactly, so SQLite need
 * not test it again. */
static bool
constraint_exact(sqlite3_index_info *info, int i, char op, enum col_kind k)
{
	sqlite3_value *v = NULL;

	if (op == OP_IN || op == OP_LIKE || !op_has_operand(op) ||
	    sqlite3_vtab_rhs_value(info, i, &v) != SQLITE_OK || v == NULL)
		return false;
	if (kind_is_int(k))
		return sqlite3_value_type(v) == SQLITE_INTEGER;
	return sqlite3_value_type(v) == SQLITE_TEXT &&
	       strlen((const char *)sqlite3_value_text(v)) == (size_t)sqlite3_value_bytes(v);
}

/* Uses every usable term it can test; idxStr lists them ("<col><op><omit>"
 * each, in argv order; omit 'o' when SQLite leaves the test to the table).
 * Costs: see PLAN_ROWS. */
static int
rows_best_index(sqlite3_vtab *tab, sqlite3_index_info *info)
{
	char ops[3 * MAX_FILTERS + 1];
	double rows = PLAN_ROWS, cost = PLAN_ROWS;
	int nf = 0, argc = 0;

	(void)tab;
	for (int i = 0; i < info->nConstraint && nf < MAX_FILTERS; i++) {
		const struct sqlite3_index_constraint *c = &info->aConstraint[i];
		enum col_kind k;
		char op;
		if (!c->usable || c->iColumn < 0 || c->iColumn >= N_PROC_COLS)
			continue;
		k = proc_cols[c->iColumn].kind;
		if ((op = constraint_op(info, i, k)) == 0)
			continue;
		ops[3 * nf] = (char)('A' + c->iColumn);
		ops[3 * nf + 1] = op;
		ops[3 * nf + 2] = '-';
		if (op_has_operand(op)) {
			info->aConstraintUsage[i].argvIndex = ++argc;
			if (constraint_exact(info, i, op, k)) {
				info->aConstraintUsage[i].omit = 1;
				ops[3 * nf + 2] = 'o';
			}
		}
		nf++;
		rows /= op == OP_EQ || op == OP_IN ? 10.0 : 2.0;
		cost -= 1.0;
	}
	ops[3 * nf] = '\0';
	if (nf > 0 && (info->idxStr = sqlite3_mprintf("%s", ops)) == NULL)
		return SQLITE_NOMEM;
	info->needToFreeIdxStr = nf > 0;
	info->estimatedRows = (sqlite3_int64)(rows < 1.0 ? 1.0 : rows);
	info->estimatedCost = cost;
	return SQLITE_OK;
}

static int
rows_open(sqlite3_vtab *tab, sqlite3_vtab_cursor **ret)
{
	struct rows_cursor *c = sqlite3_malloc(sizeof(*c));

	if (c == NULL)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	c->e = ((struct rows_vtab *)tab)->e;
	*ret = &c->base;
	return SQLITE_OK;
}

static void
cursor_clear(struct rows_cursor *c)
{
	for (int i = 0; i < c->nf; i++)
		filter_clear(&c->f[i]);
	c->nf = 0;
	c->ix = NULL;
}

static int
rows_close(sqlite3_vtab_cursor *cur)
{
	cursor_clear((struct rows_cursor *)cur);
	sqlite3_free(cur);
	return SQLITE_OK;
}

/* Orders two rows by their value in column col (both not NULL). */
static int
cmp_rows(const struct store_eval *e, int col, uint32_t a, uint32_t b)
{
	const struct process_event *x = row_at(e, a), *y = row_at(e, b);
	int64_t u = 0, v = 0;

	if (kind_is_text(proc_cols[col].kind))
		return strcmp(col_text(x, col), col_text(y, col));
	(void)col_int(x, col, &u);
	(void)col_int(y, col, &v);
	return (u > v) - (u < v);
}

struct sort_ctx {
	const struct store_eval *e;
	int col;
};

static int
cmp_index_entry(const void *a, const void *b, void *ctx)
{
	const struct sort_ctx *sc = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int c = cmp_rows(sc->e, sc->col, x, y);

	return c ? c : (x > y) - (x < y);
}

/* Builds (once per batch) the index of column col. */
static int
col_index_get(struct store_eval *e, int col, const struct col_index **ret)
{
	struct col_index *ix = &e->ix[col];
	struct sort_ctx sc = { e, col };

	if (!ix->ok) {
		if (e->n > ix->cap) {
			uint32_t *n = reallocarray(ix->pos, e->n, sizeof(*n));
			if (n == NULL)
				return -ENOMEM;
			ix->pos = n;
			ix->cap = e->n;
		}
		ix->n = 0;
		for (size_t i = 0; i < e->n; i++) {
			int64_t v;
			const struct process_event *ev = row_at(e, i);
			if (kind_is_text(proc_cols[col].kind) ? col_text(ev, col) != NULL
			                                      : col_int(ev, col, &v))
				ix->pos[ix->n++] = (uint32_t)i;
		}
		if (ix->n > 1)
			qsort_r(ix->pos, ix->n, sizeof(*ix->pos), cmp_index_entry, &sc);
		ix->ok = true;
	}
	*ret = ix;
	return 0;
}

/* Compares the value of column col in row pos with operand o. */
static int
cmp_row_operand(const struct store_eval *e, int col, uint32_t pos, const struct operand *o)
{
	const struct process_event *ev = row_at(e, pos);
	int64_t v = 0;

	if (kind_is_text(proc_cols[col].kind))
		return strcmp(col_text(ev, col), o->s);
	(void)col_int(ev, col, &v);
	return (v > o->i) - (v < o->i);
}

/* Narrows the cursor to the rows where f's column equals its operand, in
 * position order, through the column's index. */
static int
cursor_lookup(struct rows_cursor *c, const struct row_filter *f)
{
	const struct col_index *ix;
	size_t lo = 0, hi;

	if (col_index_get(c->e, f->col, &ix) < 0)
		return -ENOMEM;
	hi = ix->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_row_operand(c->e, f->col, ix->pos[mid], &f->v[0]) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	c->ix = ix->pos;
	c->i = lo;
	for (c->end = lo;
	     c->end < ix->n && cmp_row_operand(c->e, f->col, ix->pos[c->end], &f->v[0]) == 0;
	     c->end++)
		;
	return 0;
}

/* Moves to the first row at or after c->i that passes every filter. Filter
 * work happens outside SQLite's instructions, where the progress handler
 * cannot see it: the deadline is checked here too. */
static int
cursor_seek(struct rows_cursor *c)
{
	for (; c->i < c->end; c->i++) {
		size_t pos = c->ix ? c->ix[c->i] : c->i;
		const struct process_event *ev = row_at(c->e, pos);
		int k;
		if (++c->work >= WORK_CHECK) {
			c->work = 0;
			if (sqlguard_deadline_passed(c->e->guard))
				return SQLITE_INTERRUPT;
		}
		for (k = 0; k < c->nf && filter_pass(&c->f[k], ev, &c->work); k++)
			;
		if (k == c->nf) {
			c->pos = pos;
			return SQLITE_OK;
		}
	}
	return SQLITE_OK;
}

static int
rows_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str, int argc,
            sqlite3_value **argv)
{
	struct rows_cursor *c = (struct rows_cursor *)cur;
	sqlite3 *db = c->e->db;
	int like_max = sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, -1), a = 0;
	const struct row_filter *eq = NULL;

	(void)idx_num;
	cursor_clear(c);
	c->i = 0;
	c->end = c->e->n;
	c->filters++;
	for (size_t k = 0; idx_str != NULL && strnlen(idx_str + k, 3) == 3 && c->nf < MAX_FILTERS;
	     k += 3) {
		struct row_filter *f = &c->f[c->nf++];
		f->col = idx_str[k] - 'A';
		f->op = idx_str[k + 1];
		if (op_has_operand(f->op) && (a >= argc || filter_set(f, argv[a++], like_max) < 0))
			return SQLITE_NOMEM;
		/* SQLite will not test an omitted term: the table must. A
		 * literal's type at planning is its type here, so this is a
		 * broken promise, refused rather than answered wrongly. */
		if (idx_str[k + 2] == 'o' && !f->active) {
			sqlite3_free(cur->pVtab->zErrMsg);
			cur->pVtab->zErrMsg = sqlite3_mprintf("processes: cannot test %s exactly",
			                                      proc_cols[f->col].name);
			return SQLITE_MISMATCH;
		}
		if (f->op == OP_EQ && f->active && (eq == NULL || f->col == 0))
			eq = f;
	}
	/* A scan in C costs a few ns a row, sorting the batch far more: the
	 * index pays only for a cursor that is filtered again and again, the
	 * inner loop of a join (`JOIN processes c ON c.pid = p.ppid`). */
	if (eq != NULL && c->filters > 1 && cursor_lookup(c, eq) < 0)
		return SQLITE_NOMEM;
	return cursor_seek(c);
}

static int
rows_next(sqlite3_vtab_cursor *cur)
{
	struct rows_cursor *c = (struct rows_cursor *)cur;

	c->i++;
	return cursor_seek(c);
}

static int
rows_eof(sqlite3_vtab_cursor *cur)
{
	const struct rows_cursor *c = (const struct rows_cursor *)cur;

	return c->i >= c->end;
}

/* A column, with store_bind_proc()'s types and NULL conventions; text is
 * the caller's, valid while the rows are. Its length is left to SQLite
 * (-1): a length given here would not mark the text NUL-terminated, and
 * SQLite would copy it for every LIKE and REGEXP that reads it. */
static int
rows_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	const struct rows_cursor *c = (const struct rows_cursor *)cur;
	const struct process_event *ev = row_at(c->e, c->pos);
	enum col_kind k = proc_cols[col].kind;
	int64_t v;

	if (kind_is_text(k)) {
		const char *s = col_text(ev, col);
		if (s != NULL)
			sqlite3_result_text(ctx, s, -1, SQLITE_STATIC);
	} else if (k == COL_REAL) {
		const void *p = (const char *)&ev->proc + proc_cols[col].off;
		sqlite3_result_double(ctx, *(const double *)p);
	} else if (col_int(ev, col, &v)) {
		sqlite3_result_int64(ctx, v);
	}
	return SQLITE_OK;
}

static int
rows_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *ret)
{
	*ret = (sqlite3_int64)((const struct rows_cursor *)cur)->pos + 1;
	return SQLITE_OK;
}

/* Every write fails. The method exists so that SQLite lets the sandbox's
 * authorizer refuse a rule's INSERT, UPDATE or DELETE with its own reason
 * ("DELETE is not allowed") instead of failing earlier on a table without
 * one ("table processes may not be modified"), exactly as for the TEMP
 * table this replaced. */
static int
rows_update(sqlite3_vtab *tab, int argc, sqlite3_value **argv, sqlite3_int64 *ret_rowid)
{
	(void)argc;
	(void)argv;
	(void)ret_rowid;
	sqlite3_free(tab->zErrMsg);
	tab->zErrMsg = sqlite3_mprintf("processes is read-only");
	return SQLITE_READONLY;
}

static const sqlite3_module rows_module = {
	.iVersion = 0,
	.xCreate = rows_connect,
	.xConnect = rows_connect,
	.xBestIndex = rows_best_index,
	.xDisconnect = rows_disconnect,
	.xDestroy = rows_disconnect,
	.xOpen = rows_open,
	.xClose = rows_close,
	.xFilter = rows_filter,
	.xNext = rows_next,
	.xEof = rows_eof,
	.xColumn = rows_column,
	.xRowid = rows_rowid,
	.xUpdate = rows_update,
};

/* ---- Rule evaluation ------------------------------------------------------ */

static int
eval_prepare_internal(struct store_eval *e, struct errbuf *err)
{
	if (sqlite3_create_module_v2(e->db, "de_eval_rows", &rows_module, e, NULL) != SQLITE_OK ||
	    sqlite3_exec(e->db, "CREATE VIRTUAL TABLE temp.processes USING de_eval_rows", NULL,
	                 NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(e->db, "SAVEPOINT eval_rows", -1, SQLITE_PREPARE_PERSISTENT,
	                       &e->begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(e->db, "RELEASE eval_rows", -1, SQLITE_PREPARE_PERSISTENT,
	                       &e->commit, NULL) != SQLITE_OK) {
		errbuf_set(err, "evaluation tables: %s", sqlite3_errmsg(e->db));
		return store_map_rc(sqlite3_errcode(e->db));
	}
	return 0;
}

int
store_eval_open(struct store *s, struct store_eval **ret, struct errbuf *err)
{
	struct store_eval *e;
	int rc;

	if (N_PROC_COLS > N_PROC_COLS_MAX)
		return -E2BIG;
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

static void
rows_free_own(struct store_eval *e)
{
	for (size_t i = 0; i < e->n_own; i++)
		process_event_clear(&e->own[i]);
	free(e->own);
	e->own = NULL;
	e->n_own = 0;
}

/* Points the table at evs[idx[0..n-1]] (nothing copied). */
static void
rows_point(struct store_eval *e, const struct process_event *evs, const size_t *idx, size_t n)
{
	e->evs = evs;
	e->idx = idx;
	e->n = evs != NULL ? n : 0;
	for (int i = 0; i < N_PROC_COLS; i++)
		e->ix[i].ok = false;
}

void
store_eval_close(struct store_eval *e)
{
	if (e == NULL)
		return;
	sqlite3_finalize(e->begin);
	sqlite3_finalize(e->commit);
	if (e->shared) {
		/* The connection outlives us: the table must not point here. */
		(void)sqlite3_exec(e->db, "DROP TABLE IF EXISTS temp.processes", NULL, NULL, NULL);
		(void)sqlite3_create_module_v2(e->db, "de_eval_rows", NULL, NULL, NULL);
	} else {
		if (e->db)
			(void)sqlite3_close_v2(e->db);
		sqlguard_free(e->guard);
	}
	rows_free_own(e);
	for (int i = 0; i < N_PROC_COLS; i++)
		free(e->ix[i].pos);
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

int
store_eval_set_rows(struct store_eval *e, const struct process_event *evs, const size_t *idx,
                    size_t n)
{
	struct process_event *own = NULL;
	size_t i;

	store_eval_unstage(e);
	if (n > 0 && (own = calloc(n, sizeof(*own))) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (process_event_copy(&own[i], &evs[idx ? idx[i] : i]) < 0) {
			while (i-- > 0)
				process_event_clear(&own[i]);
			free(own);
			return -ENOMEM;
		}
	}
	rows_free_own(e);
	e->own = own;
	e->n_own = n;
	rows_point(e, own, NULL, n);
	return 0;
}

int
store_eval_stage(struct store_eval *e, const struct process_event *evs, const size_t *idx, size_t n)
{
	int rc;

	store_eval_unstage(e);
	rows_free_own(e);
	rows_point(e, NULL, NULL, 0);
	/* The in-memory store shares its connection with the writer (alerts
	 * are stored during the rule runs): no transaction is held there. */
	if (!e->shared && (rc = store_step_done(e->begin)) < 0)
		return rc;
	rows_point(e, evs, idx, n);
	e->staged = true;
	return 0;
}

void
store_eval_unstage(struct store_eval *e)
{
	if (!e->staged)
		return;
	e->staged = false;
	rows_point(e, NULL, NULL, 0);
	/* An error may already have ended the transaction. */
	if (!e->shared && !sqlite3_get_autocommit(e->db))
		(void)store_step_done(e->commit);
}

int
store_eval_run(struct store_eval *e, struct store_stmt *st, uint32_t timeout_ms, store_row_cb cb,
               void *ctx, struct errbuf *err)
{
	int rc = store_run_guarded(e->guard, SQLGUARD_RULE, st->stmt, timeout_ms, cb, ctx, err);

	/* An error (out of memory, say) can roll back the transaction: open it
	 * again so the next rules still share one snapshot. The rows are ours
	 * and stay. */
	if (rc < 0 && e->staged && !e->shared && sqlite3_get_autocommit(e->db))
		(void)store_step_done(e->begin);
	return rc;
}
