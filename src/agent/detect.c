/* Detection: SQL rules over the rows of each batch. See detect.h. */
#include "detect.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/alert.h"
#include "cleanup.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

/* One rule of the running set, with its compiled statement and counters. */
struct drule {
	struct rule *rule;
	struct store_stmt *stmt; /* NULL when disabled */
	uint64_t evaluations, matches, errors, timeouts;
	uint64_t total_us, max_us;
	unsigned failures_in_row;
	bool quarantined;
	char last_error[160];
};

struct drule_set {
	struct drule *r;
	size_t n;
	unsigned rejected;
};

/* A small open-addressing hash map from non-zero u64 keys to u32 values
 * (linear probing, backward-shift deletion). Used for the instances already
 * evaluated (so a snapshot that sees a process again does not re-run the
 * rules), and per batch for instance -> row and pid -> row. */
struct u64map {
	uint64_t *keys; /* 0 = empty */
	uint32_t *vals;
	size_t cap, n;
};

/* A match waiting for its rule run to end: a run that returns too many rows
 * is discarded whole rather than flooding the alert manager. */
struct pending {
	int32_t pid;
	bool in_batch; /* ev is the process's event in this batch */
	uint32_t ev;
	json_t *row;
};

struct detect {
	struct store *store;
	struct store_eval *eval;
	struct alerts *alerts;
	uint32_t timeout_ms;
	struct drule_set *set;
	struct u64map seen;    /* instances evaluated, until they stop */
	struct u64map by_inst; /* this batch: instance -> position in rows */
	struct u64map by_pid;  /* this batch: pid + 1 -> event index */
	struct u64map matched; /* this rule run: pids matched */
	detect_rules_observer_fn observer;
	void *observer_ctx;
	pthread_mutex_t mu; /* guards the counters and the set pointer for health */
	uint64_t batches, rows_evaluated, matches, last_load_ms;
	/* Per-batch scratch. */
	size_t *rows;
	size_t rows_cap, nrows;
	struct pending *pending; /* one rule run's matches, submitted when it ends */
	size_t npending, pending_cap;
};

/* ---- u64map ------------------------------------------------------------------ */

static uint64_t
inst_key(const struct process_record *p)
{
	uint64_t k = ((uint64_t)(uint32_t)p->pid << 32) ^ (p->start_time * 0x9e3779b97f4a7c15ull);

	return k ? k : 1;
}

static size_t
map_slot(const struct u64map *m, uint64_t k)
{
	return (size_t)((k * 0xff51afd7ed558ccdull) >> 17) & (m->cap - 1);
}

static void
map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* Empties m and makes room for want entries at most half full. */
static int
map_reset(struct u64map *m, size_t want)
{
	size_t cap = 1024;

	while (cap < want * 2)
		cap *= 2;
	if (cap > m->cap) {
		uint64_t *k = calloc(cap, sizeof(*k));
		uint32_t *v = calloc(cap, sizeof(*v));
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			return -ENOMEM;
		}
		map_free(m);
		m->keys = k;
		m->vals = v;
		m->cap = cap;
	} else if (m->n > 0) {
		memset(m->keys, 0, m->cap * sizeof(*m->keys));
	}
	m->n = 0;
	return 0;
}

static int
map_grow(struct u64map *m)
{
	struct u64map old = *m;

	memset(m, 0, sizeof(*m));
	if (map_reset(m, old.cap) < 0) {
		*m = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old.cap; i++) {
		if (old.keys[i] == 0)
			continue;
		size_t j = map_slot(m, old.keys[i]);
		while (m->keys[j] != 0)
			j = (j + 1) & (m->cap - 1);
		m->keys[j] = old.keys[i];
		m->vals[j] = old.vals[i];
		m->n++;
	}
	map_free(&old);
	return 0;
}

/* Finds k: returns its slot, or the empty slot where it would go. */
static size_t
map_find(const struct u64map *m, uint64_t k)
{
	size_t j = map_slot(m, k);

	while (m->keys[j] != 0 && m->keys[j] != k)
		j = (j + 1) & (m->cap - 1);
	return j;
}

static bool
map_get(const struct u64map *m, uint64_t k, uint32_t *ret)
{
	size_t j;

	if (m->cap == 0)
		return false;
	j = map_find(m, k);
	if (m->keys[j] == 0)
		return false;
	*ret = m->vals[j];
	return true;
}

/* Sets k to v. Returns 1 when k was new, 0 when replaced, -ENOMEM. */
static int
map_put(struct u64map *m, uint64_t k, uint32_t v)
{
	size_t j;

	if ((m->cap == 0 || (m->n + 1) * 2 > m->cap) && map_grow(m) < 0)
		return -ENOMEM;
	j = map_find(m, k);
	m->vals[j] = v;
	if (m->keys[j] == k)
		return 0;
	m->keys[j] = k;
	m->n++;
	return 1;
}

static void
map_del(struct u64map *m, uint64_t k)
{
	size_t i, j;

	if (m->cap == 0 || m->keys[i = map_find(m, k)] == 0)
		return;
	/* Backward shift: pull later members of the cluster into the hole. */
	for (j = (i + 1) & (m->cap - 1); m->keys[j] != 0; j = (j + 1) & (m->cap - 1)) {
		size_t h = map_slot(m, m->keys[j]);
		bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
		if (movable) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->n--;
}

/* ---- rule sets ---------------------------------------------------------------- */

static void
drule_set_free(struct drule_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		store_stmt_free(s->r[i].stmt);
		rule_free(s->r[i].rule);
	}
	free(s->r);
	free(s);
}

static void
log_reject(void *ctx, const char *path, const char *reason)
{
	(void)ctx;
	(void)path;
	log_warn("rule rejected: %s", reason);
}

/* Compiles the rules of rs into a new drule set (taking the rules). */
static int
drule_set_build(struct detect *d, struct rule_set *rs, unsigned rejected, struct drule_set **ret)
{
	struct drule_set *s = calloc(1, sizeof(*s));

	if (s == NULL || (rs->n && (s->r = calloc(rs->n, sizeof(*s->r))) == NULL)) {
		free(s);
		return -ENOMEM;
	}
	s->rejected = rejected;
	for (size_t i = 0; i < rs->n; i++) {
		struct drule *dr = &s->r[s->n];
		struct errbuf e = { { 0 } };
		struct rule *r = rs->rules[i];

		rs->rules[i] = NULL;
		dr->rule = r;
		if (r->enabled && store_eval_prepare(d->eval, r->sql, &dr->stmt, &e) < 0) {
			/* Validated against the same schema; only a store
			 * change between validation and now can get here. */
			log_warn("rule rejected: %s: %s", r->path, e.msg);
			rule_free(r);
			dr->rule = NULL;
			s->rejected++;
			continue;
		}
		s->n++;
	}
	rs->n = 0;
	*ret = s;
	return 0;
}

static void
record_rules(struct detect *d, const struct drule_set *s)
{
	_cleanup_free_ struct store_rule *rows = calloc(s->n ? s->n : 1, sizeof(*rows));
	_cleanup_free_ const struct rule **list = calloc(s->n ? s->n : 1, sizeof(*list));
	int rc;

	if (rows == NULL || list == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		const struct rule *r = s->r[i].rule;
		rows[i] = (struct store_rule){ r->id,       r->name,     r->description,
			                       r->severity, r->category, r->sql,
			                       r->sha256,   r->path,     r->enabled };
		list[i] = r;
	}
	if ((rc = store_rules_replace(d->store, rows, s->n)) < 0)
		log_warn("recording the rule set in the store: %s", strerror(-rc));
	if (d->observer)
		d->observer(d->observer_ctx, list, s->n, s->rejected);
}

int
detect_load_rules(struct detect *d, const char *const *dirs, size_t n, struct errbuf *err)
{
	_cleanup_(rule_set_freep) struct rule_set *rs = NULL;
	struct drule_set *s = NULL, *old;
	int rc;

	rc = rule_set_load(dirs, n, d->timeout_ms, log_reject, NULL, &rs, err);
	if (rc < 0)
		return rc;
	if ((rc = drule_set_build(d, rs, (unsigned)rc, &s)) < 0) {
		errbuf_set(err, "building the rule set: %s", strerror(-rc));
		return rc;
	}
	(void)pthread_mutex_lock(&d->mu);
	old = d->set;
	d->set = s;
	d->last_load_ms = time_now_ms();
	(void)pthread_mutex_unlock(&d->mu);
	drule_set_free(old);
	record_rules(d, s);
	log_info("rules loaded: %zu active, %u rejected", s->n, s->rejected);
	return (int)s->rejected;
}

void
detect_set_rules_observer(struct detect *d, detect_rules_observer_fn fn, void *ctx)
{
	d->observer = fn;
	d->observer_ctx = ctx;
}

int
detect_new(struct detect **ret, struct store *st, const struct de_config *cfg, struct alerts *al,
           struct errbuf *err)
{
	struct detect *d;
	int rc;

	if (st == NULL)
		return -EINVAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return -ENOMEM;
	(void)pthread_mutex_init(&d->mu, NULL);
	d->store = st;
	d->alerts = al;
	d->timeout_ms = cfg ? cfg->detection.rule_timeout_ms : 0;
	if ((rc = store_eval_open(st, &d->eval, err)) < 0) {
		detect_free(d);
		return rc;
	}
	*ret = d;
	return 0;
}

void
detect_free(struct detect *d)
{
	if (d == NULL)
		return;
	drule_set_free(d->set);
	store_eval_close(d->eval);
	map_free(&d->seen);
	map_free(&d->by_inst);
	map_free(&d->by_pid);
	map_free(&d->matched);
	free(d->rows);
	free(d->pending);
	(void)pthread_mutex_destroy(&d->mu);
	free(d);
}

/* ---- evaluation --------------------------------------------------------------- */

/* Remembers an evaluated instance; returns true when it was not known. */
static bool
seen_add(struct detect *d, const struct process_record *p)
{
	if (d->seen.n >= DETECT_SEEN_MAX) {
		/* Bounded memory: forgetting only means a long-lived process seen
		 * again in a snapshot is evaluated once more (alerts dedups). */
		(void)map_reset(&d->seen, 0);
	}
	return map_put(&d->seen, inst_key(p), 0) != 0;
}

static bool
wants_evaluation(struct detect *d, const struct process_event *ev, bool fresh)
{
	switch (ev->type) {
	case PROC_EV_START:
	case PROC_EV_MODIFIED:
	case PROC_EV_SUSPICIOUS:
		(void)seen_add(d, &ev->proc);
		return fresh;
	case PROC_EV_SNAPSHOT:
		/* First sight of an instance only. */
		return seen_add(d, &ev->proc) && fresh;
	case PROC_EV_STOP:
		map_del(&d->seen, inst_key(&ev->proc));
		return false;
	default:
		return false;
	}
}

/* Collects the indexes of the rows to evaluate: one per process instance,
 * its latest event in the batch; and the pid -> event map for matches. */
static int
collect_rows(struct detect *d, const struct process_event *evs, const bool *is_new, size_t n)
{
	d->nrows = 0;
	if (n > UINT32_MAX / 2)
		return -E2BIG;
	if (n > d->rows_cap) {
		size_t *nr = reallocarray(d->rows, n, sizeof(*nr));
		if (nr == NULL)
			return -ENOMEM;
		d->rows = nr;
		d->rows_cap = n;
	}
	if (map_reset(&d->by_inst, n) < 0 || map_reset(&d->by_pid, n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint32_t pos;
		if (!wants_evaluation(d, &evs[i], is_new == NULL || is_new[i]))
			continue;
		if (map_get(&d->by_inst, inst_key(&evs[i].proc), &pos)) {
			d->rows[pos] = i; /* a later event of the same instance */
		} else {
			if (map_put(&d->by_inst, inst_key(&evs[i].proc), (uint32_t)d->nrows) < 0)
				return -ENOMEM;
			d->rows[d->nrows++] = i;
		}
		if (map_put(&d->by_pid, (uint64_t)(uint32_t)evs[i].proc.pid + 1, (uint32_t)i) < 0)
			return -ENOMEM;
	}
	return 0;
}

struct match_ctx {
	struct detect *d;
	struct drule *dr;
	const struct process_event *evs;
	int pid_col;
	unsigned matches;
	size_t rows, max_rows; /* rows seen; the bound past which the run stops */
};

static bool
find_event(const struct match_ctx *m, int32_t pid, uint32_t *ret)
{
	return map_get(&m->d->by_pid, (uint64_t)(uint32_t)pid + 1, ret);
}

static json_t *
value_json(const char *v, char type)
{
	switch (type) {
	case 'i':
		return json_integer(strtoll(v, NULL, 10));
	case 'r':
		return json_real(strtod(v, NULL));
	case 't': {
		json_t *j = json_string(v);
		if (j == NULL) {
			_cleanup_free_ char *clean = utf8_sanitize_dup(v, strlen(v));
			j = clean ? json_string(clean) : NULL;
		}
		return j;
	}
	default:
		return json_null();
	}
}

static json_t *
row_json(int ncol, const char *const *names, const char *const *values, const char *types)
{
	json_t *o = json_object();

	for (int i = 0; o != NULL && i < ncol; i++) {
		json_t *v = values[i] ? value_json(values[i], types[i]) : json_null();
		if (v == NULL || json_object_set_new(o, names[i] ? names[i] : "?", v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int
on_match(void *ctx, int ncol, const char *const *names, const char *const *values,
         const char *types)
{
	struct match_ctx *m = ctx;
	struct detect *d = m->d;
	struct pending *pe;
	int32_t pid;
	int64_t v;

	if (++m->rows > m->max_rows)
		return 1;
	if (m->pid_col < 0) {
		for (int i = 0; i < ncol && m->pid_col < 0; i++)
			if (names[i] && strcasecmp(names[i], "pid") == 0)
				m->pid_col = i;
		if (m->pid_col < 0)
			return 1;
	}
	if (values[m->pid_col] == NULL || parse_i64(values[m->pid_col], &v) < 0 || v < 0 ||
	    v > INT32_MAX)
		return 0; /* a row without a usable pid attaches to no process */
	pid = (int32_t)v;
	/* One match per process per evaluation, even when a join repeats it. */
	if (map_put(&m->d->matched, (uint64_t)(uint32_t)pid + 1, 0) == 0)
		return 0;
	if (d->npending == d->pending_cap) {
		size_t ncap = d->pending_cap ? d->pending_cap * 2 : 64;
		struct pending *np = reallocarray(d->pending, ncap, sizeof(*np));
		if (np == NULL)
			return -1;
		d->pending = np;
		d->pending_cap = ncap;
	}
	pe = &d->pending[d->npending++];
	pe->pid = pid;
	pe->in_batch = find_event(m, pid, &pe->ev);
	pe->row = d->alerts ? row_json(ncol, names, values, types) : NULL;
	m->matches++;
	return 0;
}

/* Hands the run's matches to the alert manager (submit true) or drops them,
 * and empties the buffer. */
static void
flush_pending(struct detect *d, const struct drule *dr, const struct process_event *evs,
              bool submit)
{
	const struct rule *r = dr->rule;

	for (size_t i = 0; i < d->npending; i++) {
		struct pending *pe = &d->pending[i];
		struct process_record pid_only;
		if (submit && d->alerts != NULL) {
			if (!pe->in_batch) {
				process_record_init(&pid_only);
				pid_only.pid = pe->pid;
			}
			struct alert_match am = {
				.rule_id = r->id,
				.rule_name = r->name,
				.severity = r->severity,
				.category = r->category,
				.description = r->description,
				.proc = pe->in_batch ? &evs[pe->ev].proc : &pid_only,
				.match = pe->row,
			};
			int rc = alerts_submit(d->alerts, &am);
			if (rc < 0)
				log_warn("rule %s: submitting an alert: %s", r->id, strerror(-rc));
		}
		json_decref(pe->row);
	}
	d->npending = 0;
}

static void
run_rule(struct detect *d, struct drule *dr, const struct process_event *evs)
{
	struct match_ctx m = {
		.d = d,
		.dr = dr,
		.evs = evs,
		.pid_col = -1,
		.max_rows = DETECT_ROWS_PER_PROCESS * d->nrows + DETECT_ROWS_EXTRA,
	};
	struct errbuf e = { { 0 } };
	uint64_t t0 = time_mono_ns(), us;
	int rc;

	(void)map_reset(&d->matched, 0);
	rc = store_eval_run(d->eval, dr->stmt, d->timeout_ms, on_match, &m, &e);
	us = (time_mono_ns() - t0) / 1000;
	if (rc >= 0 && m.rows > m.max_rows) {
		errbuf_set(&e, "returned more than %zu rows for %zu processes; its matches dropped",
		           m.max_rows, d->nrows);
		rc = -E2BIG;
		m.matches = 0;
	}
	/* Matches found before a timeout or error stand; a flood does not. */
	flush_pending(d, dr, evs, rc != -E2BIG || m.rows <= m.max_rows);
	(void)pthread_mutex_lock(&d->mu);
	dr->evaluations++;
	dr->matches += m.matches;
	d->matches += m.matches;
	dr->total_us += us;
	if (us > dr->max_us)
		dr->max_us = us;
	if (rc < 0) {
		if (rc == -ETIMEDOUT)
			dr->timeouts++;
		else
			dr->errors++;
		(void)de_strlcpy(dr->last_error, e.msg, sizeof(dr->last_error));
		if (++dr->failures_in_row >= DETECT_QUARANTINE_AFTER)
			dr->quarantined = true;
	} else {
		dr->failures_in_row = 0;
	}
	(void)pthread_mutex_unlock(&d->mu);
	if (rc < 0)
		log_warn("rule %s: %s%s", dr->rule->id, e.msg,
		         dr->quarantined ? " (set aside until the next rule load)" : "");
}

int
detect_on_batch(struct detect *d, const struct process_event *evs, const bool *is_new, size_t n)
{
	struct drule_set *s = d->set;
	uint64_t before;
	int rc;

	if ((rc = collect_rows(d, evs, is_new, n)) < 0)
		return rc;
	if (d->nrows == 0 || s == NULL || s->n == 0)
		return 0;
	/* The rules read the batch where it is; one read transaction for
	 * every rule run. */
	if ((rc = store_eval_stage(d->eval, evs, d->rows, d->nrows)) < 0)
		return rc;
	before = d->matches;
	for (size_t i = 0; i < s->n; i++)
		if (s->r[i].stmt != NULL && !s->r[i].quarantined)
			run_rule(d, &s->r[i], evs);
	(void)pthread_mutex_lock(&d->mu);
	d->batches++;
	d->rows_evaluated += d->nrows;
	rc = (int)(d->matches - before);
	(void)pthread_mutex_unlock(&d->mu);
	/* The table must not point at evs once we return. */
	store_eval_unstage(d->eval);
	return rc;
}

static json_t *
drule_json(const struct drule *dr)
{
	return json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s?}", "id",
	                 dr->rule->id, "severity", dr->rule->severity, "enabled", dr->stmt != NULL,
	                 "evaluations", (json_int_t)dr->evaluations, "matches",
	                 (json_int_t)dr->matches, "errors", (json_int_t)dr->errors, "timeouts",
	                 (json_int_t)dr->timeouts, "total_us", (json_int_t)dr->total_us, "max_us",
	                 (json_int_t)dr->max_us, "quarantined", dr->quarantined, "last_error",
	                 dr->last_error[0] ? dr->last_error : NULL);
}

static int
cmp_drule_total(const void *a, const void *b)
{
	uint64_t x = (*(const struct drule *const *)a)->total_us;
	uint64_t y = (*(const struct drule *const *)b)->total_us;

	return (y > x) - (y < x);
}

/* The DETECT_SLOWEST rules with the most evaluation time, slowest first:
 * [{"id","total_us","mean_us","max_us"}] (the CLI's "slowest rules"). */
static json_t *
slowest_json(const struct drule_set *s)
{
	_cleanup_free_ const struct drule **v = NULL;
	json_t *arr = json_array();
	size_t n = s ? s->n : 0;

	if (arr == NULL || n == 0)
		return arr;
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		json_decref(arr);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = &s->r[i];
	qsort(v, n, sizeof(*v), cmp_drule_total);
	for (size_t i = 0; i < n && i < DETECT_SLOWEST; i++) {
		json_t *r = json_pack(
		    "{s:s, s:I, s:I, s:I}", "id", v[i]->rule->id, "total_us",
		    (json_int_t)v[i]->total_us, "mean_us",
		    (json_int_t)(v[i]->evaluations ? v[i]->total_us / v[i]->evaluations : 0),
		    "max_us", (json_int_t)v[i]->max_us);
		if (r == NULL || json_array_append_new(arr, r) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *
detect_health_json(struct detect *d)
{
	json_t *o, *arr = json_array(), *slow;

	if (arr == NULL)
		return NULL;
	(void)pthread_mutex_lock(&d->mu);
	for (size_t i = 0; d->set != NULL && i < d->set->n; i++) {
		json_t *r = drule_json(&d->set->r[i]);
		if (r == NULL || json_array_append_new(arr, r) < 0) {
			(void)pthread_mutex_unlock(&d->mu);
			json_decref(arr);
			return NULL;
		}
	}
	slow = slowest_json(d->set);
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o*}", "rules_loaded",
	              (json_int_t)(d->set ? d->set->n : 0), "rules_rejected",
	              (json_int_t)(d->set ? d->set->rejected : 0), "last_load_ms",
	              (json_int_t)d->last_load_ms, "batches", (json_int_t)d->batches,
	              "rows_evaluated", (json_int_t)d->rows_evaluated, "matches",
	              (json_int_t)d->matches, "timeout_ms", (json_int_t)d->timeout_ms, "rules", arr,
	              "slowest", slow);
	(void)pthread_mutex_unlock(&d->mu);
	return o;
}
