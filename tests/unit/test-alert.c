/* alert.c: the SPEC §6 object, deduplication per process instance within the
 * window (injected clock), the rate limit, fan-out to a file sink, and a sink
 * that is down: spooled, retried, delivered in order once it is back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/alert.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

/* A stand-in for the store: records what alert.c asks it to keep. */
struct store {
	int dummy;
};
static struct store fake_store;
static int puts_n;
static char put_id[64];
static int put_fail; /* what the fake store answers */
static uint32_t put_repeat;

int
store_alert_put(struct store *s, const struct store_alert *a)
{
	assert_ptr_equal(s, &fake_store);
	assert_non_null(a->json);
	puts_n++;
	snprintf(put_id, sizeof(put_id), "%s", a->alert_id);
	put_repeat = a->repeat_count;
	return put_fail;
}

/* sink_catch_up() reads the store only for a sink with an on-disk spool;
 * these tests give a store or a spool, never both (test-sinks.c runs the
 * catch-up against a real store). */
int
store_query(struct store *s, const char *sql, uint32_t timeout_ms, store_row_cb cb, void *ctx,
            struct errbuf *err)
{
	(void)s;
	(void)sql;
	(void)timeout_ms;
	(void)cb;
	(void)ctx;
	(void)err;
	fail_msg("store_query called without a spool");
	return -EIO;
}

int
store_open(const char *path, enum store_mode mode, struct store **ret)
{
	(void)path;
	(void)mode;
	(void)ret;
	fail_msg("store_open called without a spool");
	return -EIO;
}

void
store_close(struct store *s)
{
	(void)s;
}

const char *
store_path(const struct store *s)
{
	(void)s;
	return ":memory:";
}

static uint64_t fake_now;

static uint64_t
fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static int observed;
static char observed_json[8192];

static void
observer(void *ctx, const char *id, const char *json)
{
	(void)ctx;
	assert_non_null(strstr(json, id));
	observed++;
	snprintf(observed_json, sizeof(observed_json), "%s", json);
}

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	puts_n = observed = put_fail = 0;
	fake_now = 1000000;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-alert-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
proc_make(struct process_record *p, int32_t pid, uint64_t start)
{
	process_record_init(p);
	p->pid = pid;
	p->ppid = 1;
	p->name = strdup("evil");
	p->executable_path = strdup("/tmp/evil");
	p->command_line = strdup("/tmp/evil --flag \"x,y\"");
	p->start_time = start;
	p->user_id = 1000;
	p->executable_hash = strdup("ab12");
}

static struct alert_match
match_make(const struct process_record *p, json_t *m)
{
	return (struct alert_match){
		.rule_id = "exec-from-tmp",
		.rule_name = "Process started from a world-writable directory",
		.severity = "high",
		.category = "execution",
		.description = "T1059",
		.proc = p,
		.match = m,
	};
}

static void
cfg_make(struct de_config *cfg, uint32_t window, uint32_t per_min)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->alerting.dedup_window_s = window;
	cfg->alerting.max_alerts_per_minute = per_min;
}

static void
test_json_shape(void **state)
{
	static const char *const top[] = { "alert_id",    "timestamp", "host",     "rule_id",
		                           "rule_name",   "severity",  "category", "title",
		                           "description", "dedup_key", "process",  "match" };
	static const char *const pk[] = { "pid",          "ppid",
		                          "name",         "executable_path",
		                          "command_line", "user_id",
		                          "start_time",   "executable_hash" };
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	json_t *o, *proc, *mt = json_pack("{s:i, s:s}", "pid", 4242, "name", "evil");
	const char *id, *ts;

	(void)state;
	cfg_make(&cfg, 300, 600);
	assert_int_equal(alerts_new(&a, &cfg, &fake_store, NULL, NULL), 0);
	alerts_set_observer(a, observer, NULL);
	proc_make(&p, 4242, 1764090000123ull);
	m = match_make(&p, mt);
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_int_equal(observed, 1);
	assert_int_equal(puts_n, 1);
	o = json_loads(observed_json, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), (int)ARRAY_SIZE(top));
	for (size_t i = 0; i < ARRAY_SIZE(top); i++)
		assert_non_null(json_object_get(o, top[i]));
	id = json_string_value(json_object_get(o, "alert_id"));
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '7'); /* UUIDv7 */
	assert_string_equal(id, put_id);
	ts = json_string_value(json_object_get(o, "timestamp"));
	assert_int_equal(strlen(ts), 24);
	assert_int_equal(ts[23], 'Z');
	assert_int_equal(ts[19], '.');
	assert_string_equal(json_string_value(json_object_get(o, "rule_id")), "exec-from-tmp");
	assert_string_equal(json_string_value(json_object_get(o, "severity")), "high");
	assert_string_equal(json_string_value(json_object_get(o, "dedup_key")),
	                    "exec-from-tmp:4242:1764090000123");
	assert_non_null(strstr(json_string_value(json_object_get(o, "title")), "evil"));
	assert_non_null(strstr(json_string_value(json_object_get(o, "title")), "world-writable"));
	proc = json_object_get(o, "process");
	assert_int_equal(json_object_size(proc), (int)ARRAY_SIZE(pk));
	for (size_t i = 0; i < ARRAY_SIZE(pk); i++)
		assert_non_null(json_object_get(proc, pk[i]));
	assert_int_equal(json_integer_value(json_object_get(proc, "pid")), 4242);
	assert_string_equal(json_string_value(json_object_get(proc, "start_time")),
	                    "2025-11-25T17:00:00.123Z");
	assert_true(json_equal(json_object_get(o, "match"), mt));
	json_decref(o);
	json_decref(mt);

	/* Invalid UTF-8 in a process field still yields valid JSON. */
	free(p.command_line);
	p.command_line = strdup("bad \xff\xfe bytes");
	p.pid = 4243;
	m.match = NULL;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	o = json_loads(observed_json, 0, NULL);
	assert_non_null(o);
	assert_true(json_is_object(json_object_get(o, "match")));
	json_decref(o);

	m.proc = NULL;
	assert_int_equal(alerts_submit(a, &m), -EINVAL);
	process_record_clear(&p);
	alerts_free(a);
}

static void
test_dedup_window(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p, q;
	struct alert_match m;
	char first[64];
	json_t *h;

	(void)state;
	cfg_make(&cfg, 300, 0);
	assert_int_equal(alerts_new(&a, &cfg, &fake_store, NULL, NULL), 0);
	alerts_set_clock(a, fake_clock, NULL);
	alerts_set_observer(a, observer, NULL);
	proc_make(&p, 100, 5000);
	m = match_make(&p, NULL);
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	snprintf(first, sizeof(first), "%s", put_id);
	/* Seen again in later snapshots: a repeat, stored with its count. */
	for (int i = 2; i <= 4; i++) {
		fake_now += 60 * 1000;
		assert_int_equal(alerts_submit(a, &m), ALERT_DUPLICATE);
		assert_string_equal(put_id, first);
		assert_int_equal(put_repeat, (uint32_t)i);
	}
	assert_int_equal(observed, 1);
	/* A new process instance with the same pid (pid reuse) is a new alert. */
	proc_make(&q, 100, 9000);
	m.proc = &q;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_int_equal(observed, 2);
	/* After the window: the first instance alerts again, with a new id. */
	m.proc = &p;
	fake_now += 121 * 1000; /* 301 s after the first alert */
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_string_not_equal(put_id, first);
	assert_int_equal(put_repeat, 1);
	assert_int_equal(observed, 3);
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "raised")), 3);
	assert_int_equal(json_integer_value(json_object_get(h, "duplicates")), 3);
	json_decref(h);
	process_record_clear(&p);
	process_record_clear(&q);
	alerts_free(a);
}

static void
test_rate_limit(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	int raised = 0, limited = 0, r;
	json_t *h;

	(void)state;
	cfg_make(&cfg, 300, 5);
	assert_int_equal(alerts_new(&a, &cfg, &fake_store, NULL, NULL), 0);
	alerts_set_clock(a, fake_clock, NULL);
	proc_make(&p, 1, 1);
	m = match_make(&p, NULL);
	for (int i = 0; i < 10; i++) {
		p.pid = 1000 + i;
		r = alerts_submit(a, &m);
		raised += r == ALERT_RAISED;
		limited += r == ALERT_RATE_LIMITED;
	}
	assert_int_equal(raised, 5);
	assert_int_equal(limited, 5);
	/* Rate-limited alerts are not stored (and not remembered by dedup). */
	assert_int_equal(puts_n, 5);
	/* 5 per minute: one token every 12 s. */
	fake_now += 11 * 1000;
	p.pid = 2000;
	assert_int_equal(alerts_submit(a, &m), ALERT_RATE_LIMITED);
	fake_now += 1 * 1000;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "rate_limited")), 6);
	assert_int_equal(json_integer_value(json_object_get(h, "raised")), 6);
	json_decref(h);
	process_record_clear(&p);
	alerts_free(a);
}

static int
count_lines(const char *path, char ids[][40], int max)
{
	char line[8192];
	FILE *f = fopen(path, "re");
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *o = json_loads(line, 0, NULL);

		assert_non_null(o);
		if (n < max)
			snprintf(ids[n], 40, "%s",
			         json_string_value(json_object_get(o, "alert_id")));
		n++;
		json_decref(o);
	}
	fclose(f);
	return n;
}

static void
sink_counters(struct alerts *a, const char *key, uint64_t *ret)
{
	json_t *h = alerts_health_json(a);
	json_t *s = json_array_get(json_object_get(h, "sinks"), 0);

	*ret = (uint64_t)json_integer_value(json_object_get(s, key));
	json_decref(h);
}

/* The file sink's directory is missing: alerts go to the spool, are retried
 * with backoff, and arrive in order, once each, when the directory appears. */
static void
test_down_spool_recover(void **state)
{
	enum { N = 20 };
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	char dir[128], path[160], spool[160], ids[N][40], got[N + 5][40];
	uint64_t v;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/out", tmpdir);
	snprintf(path, sizeof(path), "%s/alerts.jsonl", dir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	cfg_make(&cfg, 300, 0);
	cfg.alerting.n_sinks = 1;
	cfg.alerting.sinks[0] =
	    (struct sink_config){ .type = SINK_FILE, .path = path, .spool_max_bytes = 1 << 20 };
	assert_int_equal(alerts_new(&a, &cfg, NULL, spool, NULL), 0);
	alerts_set_observer(a, observer, NULL);
	proc_make(&p, 1, 1);
	m = match_make(&p, NULL);
	for (int i = 0; i < N; i++) {
		json_t *o;

		p.pid = 3000 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
		o = json_loads(observed_json, 0, NULL);
		snprintf(ids[i], 40, "%s", json_string_value(json_object_get(o, "alert_id")));
		json_decref(o);
	}
	assert_int_equal(alerts_flush(a, 5000, false), 0);
	sink_counters(a, "spooled", &v);
	assert_int_equal(v, N);
	sink_counters(a, "spool_depth", &v);
	assert_int_equal(v, N);
	sink_counters(a, "failed", &v);
	assert_true(v >= 1);
	/* Stop while down: the spool keeps them for the next start. */
	alerts_free(a);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(alerts_new(&a, &cfg, NULL, spool, NULL), 0);
	p.pid = 9999;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_int_equal(alerts_flush(a, 10000, true), 0);
	sink_counters(a, "delivered", &v);
	assert_int_equal(v, N + 1);
	sink_counters(a, "dropped", &v);
	assert_int_equal(v, 0);
	assert_int_equal(count_lines(path, got, N + 5), N + 1);
	for (int i = 0; i < N; i++)
		assert_string_equal(got[i], ids[i]);
	process_record_clear(&p);
	alerts_free(a);
}

/* A spool too small for the outage: what does not fit is dropped and counted,
 * never silently. */
static void
test_spool_full_counted(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	char path[160], spool[160];
	uint64_t spooled, dropped, full, bytes;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing/alerts.jsonl", tmpdir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	cfg_make(&cfg, 300, 0);
	cfg.alerting.n_sinks = 1;
	cfg.alerting.sinks[0] =
	    (struct sink_config){ .type = SINK_FILE, .path = path, .spool_max_bytes = 4096 };
	assert_int_equal(alerts_new(&a, &cfg, NULL, spool, NULL), 0);
	proc_make(&p, 1, 1);
	m = match_make(&p, NULL);
	for (int i = 0; i < 12; i++) {
		p.pid = 100 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	}
	assert_int_equal(alerts_flush(a, 5000, false), 0);
	sink_counters(a, "spooled", &spooled);
	sink_counters(a, "dropped", &dropped);
	sink_counters(a, "dropped_spool_full", &full);
	sink_counters(a, "spool_bytes", &bytes);
	assert_true(spooled >= 1 && spooled < 12);
	assert_int_equal(spooled + dropped, 12);
	assert_int_equal(full, dropped);
	assert_true(bytes <= 4096);
	process_record_clear(&p);
	alerts_free(a);
}

/* spool_max_bytes 0: no spool; a down sink keeps its alerts in memory and
 * delivers them in order once it is back. */
static void
test_memory_backlog(void **state)
{
	enum { N = 6 };
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	char dir[128], path[160], spool[160], got[N][40];
	uint64_t v;
	json_t *h;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/out", tmpdir);
	snprintf(path, sizeof(path), "%s/alerts.jsonl", dir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	cfg_make(&cfg, 300, 0);
	cfg.alerting.n_sinks = 1;
	cfg.alerting.sinks[0] = (struct sink_config){ .type = SINK_FILE, .path = path };
	assert_int_equal(alerts_new(&a, &cfg, NULL, spool, NULL), 0);
	h = alerts_health_json(a);
	assert_false(json_is_true(
	    json_object_get(json_array_get(json_object_get(h, "sinks"), 0), "on_disk_spool")));
	json_decref(h);
	proc_make(&p, 1, 1);
	m = match_make(&p, NULL);
	for (int i = 0; i < N; i++) {
		p.pid = 200 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	}
	assert_int_equal(alerts_flush(a, 5000, false), 0);
	sink_counters(a, "spool_depth", &v);
	assert_int_equal(v, N);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(alerts_flush(a, 10000, true), 0);
	sink_counters(a, "delivered", &v);
	assert_int_equal(v, N);
	assert_int_equal(count_lines(path, got, N), N);
	process_record_clear(&p);
	alerts_free(a);
}

/* What an alert says when the match leaves things out: the rule id stands in
 * for its name, severity defaults to medium, unknown ids and times are null,
 * and a process without a name is titled by its pid. */
static void
test_json_defaults(void **state)
{
	struct process_record p;
	struct alert_match m = { .rule_id = "odd-rule" };
	char big[400];
	json_t *o, *proc;

	(void)state;
	process_record_init(&p);
	p.pid = 77;
	m.proc = &p;
	o = alert_build_json(&m, "id-1", 0, "box");
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "rule_name")), "odd-rule");
	assert_string_equal(json_string_value(json_object_get(o, "severity")), "medium");
	assert_string_equal(json_string_value(json_object_get(o, "title")), "odd-rule: pid 77");
	assert_true(json_is_null(json_object_get(o, "timestamp")));
	assert_true(json_is_null(json_object_get(o, "category")));
	assert_string_equal(json_string_value(json_object_get(o, "dedup_key")), "odd-rule:77:0");
	proc = json_object_get(o, "process");
	assert_true(json_is_null(json_object_get(proc, "ppid")));
	assert_true(json_is_null(json_object_get(proc, "user_id")));
	assert_true(json_is_null(json_object_get(proc, "start_time")));
	assert_true(json_is_null(json_object_get(proc, "name")));
	assert_true(json_is_null(json_object_get(proc, "executable_hash")));
	assert_int_equal(json_object_size(json_object_get(o, "match")), 0);
	json_decref(o);

	/* A rule id too long for a dedup key cannot make an alert. */
	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m.rule_id = big;
	assert_null(alert_build_json(&m, "id-2", 0, "box"));
	process_record_clear(&p);
}

/* A store that refuses the alert: the alert is still raised (observed,
 * queued) and the refusal is counted in health as store_errors. */
static void
test_store_errors_and_bad_input(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	char big[400];
	json_t *h;

	(void)state;
	cfg_make(&cfg, 300, 0);
	assert_int_equal(alerts_new(&a, &cfg, &fake_store, NULL, NULL), 0);
	alerts_set_observer(a, observer, NULL);
	proc_make(&p, 10, 20);
	m = match_make(&p, NULL);
	put_fail = -EIO;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_int_equal(observed, 1);
	/* The repeat is stored too (with its count), and fails again. */
	assert_int_equal(alerts_submit(a, &m), ALERT_DUPLICATE);
	put_fail = 0;
	assert_int_equal(alerts_submit(a, &m), ALERT_DUPLICATE);
	assert_int_equal(put_repeat, 3);
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "store_errors")), 2);
	assert_int_equal(json_integer_value(json_object_get(h, "raised")), 1);
	assert_int_equal(json_integer_value(json_object_get(h, "duplicates")), 2);
	assert_int_equal(json_integer_value(json_object_get(h, "max_alerts_per_minute")), 0);
	assert_int_equal(json_array_size(json_object_get(h, "sinks")), 0);
	json_decref(h);

	assert_int_equal(alerts_submit(a, NULL), -EINVAL);
	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	m.rule_id = big;
	assert_int_equal(alerts_submit(a, &m), -EINVAL);
	m.rule_id = NULL;
	assert_int_equal(alerts_submit(a, &m), -EINVAL);
	assert_int_equal(observed, 1);
	process_record_clear(&p);
	alerts_free(a);
	alerts_free(NULL);
}

/* Without a store a repeat is only counted. */
static void
test_duplicate_without_store(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	json_t *h;

	(void)state;
	cfg_make(&cfg, 300, 0);
	assert_int_equal(alerts_new(&a, &cfg, NULL, NULL, NULL), 0);
	proc_make(&p, 10, 20);
	m = match_make(&p, NULL);
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	assert_int_equal(alerts_submit(a, &m), ALERT_DUPLICATE);
	assert_int_equal(puts_n, 0);
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "duplicates")), 1);
	assert_int_equal(json_integer_value(json_object_get(h, "dedup_entries")), 1);
	json_decref(h);
	process_record_clear(&p);
	alerts_free(a);
}

/* More than 1024 remembered alerts: entries older than the window are
 * pruned when the next one is remembered. */
static void
test_dedup_prune(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	struct process_record p;
	struct alert_match m;
	json_t *h;

	(void)state;
	cfg_make(&cfg, 60, 0);
	assert_int_equal(alerts_new(&a, &cfg, NULL, NULL, NULL), 0);
	alerts_set_clock(a, fake_clock, NULL);
	proc_make(&p, 1, 1);
	m = match_make(&p, NULL);
	for (int i = 0; i < 1024; i++) {
		p.pid = 10000 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	}
	fake_now += 30000; /* half a window later: 4 more, nothing old enough */
	for (int i = 0; i < 4; i++) {
		p.pid = 20000 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	}
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "dedup_entries")), 1028);
	json_decref(h);
	fake_now += 31000; /* the first 1024 are past the window, the 4 are not */
	/* Prune runs at 2048 entries now: fill up to it, then one more. */
	for (int i = 0; i < 1020; i++) {
		p.pid = 30000 + i;
		assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	}
	p.pid = 40000;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	h = alerts_health_json(a);
	assert_int_equal(json_integer_value(json_object_get(h, "dedup_entries")), 4 + 1020 + 1);
	assert_int_equal(json_integer_value(json_object_get(h, "raised")), 1024 + 4 + 1021);
	assert_int_equal(json_integer_value(json_object_get(h, "dedup_untracked")), 0);
	json_decref(h);
	/* A pruned alert is new again; a kept one is still a duplicate. */
	p.pid = 20001;
	assert_int_equal(alerts_submit(a, &m), ALERT_DUPLICATE);
	p.pid = 10005;
	assert_int_equal(alerts_submit(a, &m), ALERT_RAISED);
	process_record_clear(&p);
	alerts_free(a);
}

/* Two sinks configured alike get distinct names (and spool directories). */
static void
test_sink_names_unique(void **state)
{
	struct alerts *a = NULL;
	struct de_config cfg;
	char path[160], spool[160];
	const char *n0, *n1;
	json_t *h, *sinks;

	(void)state;
	snprintf(path, sizeof(path), "%s/same.jsonl", tmpdir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	cfg_make(&cfg, 300, 0);
	cfg.alerting.n_sinks = 2;
	cfg.alerting.sinks[0] =
	    (struct sink_config){ .type = SINK_FILE, .path = path, .spool_max_bytes = 1 << 20 };
	cfg.alerting.sinks[1] = cfg.alerting.sinks[0];
	assert_int_equal(alerts_new(&a, &cfg, NULL, spool, NULL), 0);
	h = alerts_health_json(a);
	sinks = json_object_get(h, "sinks");
	assert_int_equal(json_array_size(sinks), 2);
	n0 = json_string_value(json_object_get(json_array_get(sinks, 0), "name"));
	n1 = json_string_value(json_object_get(json_array_get(sinks, 1), "name"));
	assert_non_null(n0);
	assert_non_null(n1);
	assert_int_equal(strncmp(n0, "file-", 5), 0);
	assert_int_equal(strlen(n1), strlen(n0) + 2);
	assert_int_equal(strncmp(n1, n0, strlen(n0)), 0);
	assert_string_equal(n1 + strlen(n0), "-2");
	json_decref(h);
	alerts_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_json_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_down_spool_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_full_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_backlog, setup, teardown),
		cmocka_unit_test(test_json_defaults),
		cmocka_unit_test_setup_teardown(test_store_errors_and_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_without_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_names_unique, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
