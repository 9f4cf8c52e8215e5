/* de-store-fill: fills an event store through the real schema (store.h), for
 * the CLI's end-to-end tests and benchmarks.
 *
 *   de-store-fill DB --jsonl FILE|-        ingest procmond JSON lines (SPEC §3)
 *   de-store-fill DB --synthetic N [--live L] [--alerts M] [--span-h H]
 *                                           N generated events: L long-lived
 *                                           processes in a tree, the rest
 *                                           start/stop pairs under them, and M
 *                                           alerts, spread over the last H hours
 *   --alerts M also works with --jsonl: alerts on the ingested processes.
 *
 * Deterministic (a fixed-seed generator), bounded (N <= 10M), exit 0 or 1. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "process.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

#define BATCH      4096
#define MAX_EVENTS 10000000u

static const char *const severities[] = { "info", "low", "medium", "high", "critical" };
static const char *const rules[] = { "exec-from-tmp", "reverse-shell", "deleted-exe",
	                             "miner-cmdline", "webshell-child" };
static const char *const names[] = { "bash", "sshd",     "nginx", "python3", "curl",
	                             "cron", "postgres", "sleep", "sh",      "node" };
static const char *const users[] = { "root", "www-data", "postgres", "alice", "bob" };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	/* xorshift64*: deterministic, good enough to spread test data. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static char *
xstrdup(const char *s)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d) {
		fputs("de-store-fill: out of memory\n", stderr);
		exit(1);
	}
	return d;
}

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t
jint(const json_t *o, const char *k, int64_t dflt)
{
	const json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* One procmond JSON line into an event. Returns 0 or -EINVAL. */
static int
event_from_json(const json_t *line, struct process_event *e)
{
	const json_t *p = json_object_get(line, "process");
	struct process_record *r = &e->proc;
	uint64_t t = 0;

	if (!json_is_object(p) || proc_event_type_from_string(jstr(line, "event"), &e->type) < 0)
		return -EINVAL;
	if (jstr(line, "time") && time_parse_rfc3339(jstr(line, "time"), &t) < 0)
		return -EINVAL;
	e->time = t ? t : time_now_ms();
	e->source = xstrdup(jstr(line, "source") ? jstr(line, "source") : "poll");
	r->pid = (int32_t)jint(p, "pid", 0);
	r->ppid = (int32_t)jint(p, "ppid", -1);
	r->name = xstrdup(jstr(p, "name"));
	r->executable_path = xstrdup(jstr(p, "executable_path"));
	r->command_line = xstrdup(jstr(p, "command_line"));
	r->start_time = (uint64_t)jint(p, "start_time", 0);
	r->cpu_usage = json_number_value(json_object_get(p, "cpu_usage"));
	r->memory_usage = (uint64_t)jint(p, "memory_usage", 0);
	r->executable_hash = xstrdup(jstr(p, "executable_hash"));
	r->user_id = jint(p, "user_id", -1);
	r->effective_user_id = jint(p, "effective_user_id", -1);
	r->group_id = jint(p, "group_id", -1);
	r->user_name = xstrdup(jstr(p, "user_name"));
	r->cwd = xstrdup(jstr(p, "cwd"));
	r->tty = xstrdup(jstr(p, "tty"));
	r->state = xstrdup(jstr(p, "state"));
	r->threads = (int32_t)jint(p, "threads", 1);
	r->accessible = json_is_true(json_object_get(p, "accessible"));
	r->file_exists = json_is_true(json_object_get(p, "file_exists"));
	r->exe_deleted = json_is_true(json_object_get(p, "exe_deleted"));
	r->parent_name = xstrdup(jstr(p, "parent_name"));
	r->parent_executable_path = xstrdup(jstr(p, "parent_executable_path"));
	r->parent_command_line = xstrdup(jstr(p, "parent_command_line"));
	r->container_id = xstrdup(jstr(p, "container_id"));
	r->cgroup = xstrdup(jstr(p, "cgroup"));
	return 0;
}

struct filler {
	struct store *st;
	struct process_event batch[BATCH];
	size_t n;
	uint64_t total;
	/* processes alerts can point at */
	int32_t *pids;
	uint64_t *starts;
	char **pnames;
	size_t n_pids, cap_pids;
};

static int
flush(struct filler *f)
{
	int rc = 0;

	if (f->n > 0)
		rc = store_ingest_batch(f->st, "procmond", f->batch, f->n, NULL);
	for (size_t i = 0; i < f->n; i++)
		process_event_clear(&f->batch[i]);
	f->total += f->n;
	f->n = 0;
	if (rc < 0)
		fprintf(stderr, "de-store-fill: store_ingest_batch: %s\n", strerror(-rc));
	return rc < 0 ? rc : 0;
}

static void
remember(struct filler *f, const struct process_record *r)
{
	if (f->n_pids == f->cap_pids) {
		size_t cap = f->cap_pids ? f->cap_pids * 2 : 1024;

		f->pids = reallocarray(f->pids, cap, sizeof(*f->pids));
		f->starts = reallocarray(f->starts, cap, sizeof(*f->starts));
		f->pnames = reallocarray(f->pnames, cap, sizeof(*f->pnames));
		if (!f->pids || !f->starts || !f->pnames)
			exit(1);
		f->cap_pids = cap;
	}
	f->pids[f->n_pids] = r->pid;
	f->starts[f->n_pids] = r->start_time;
	f->pnames[f->n_pids] = xstrdup(r->name ? r->name : "?");
	f->n_pids++;
}

/* Takes e (moved into the batch). */
static int
push(struct filler *f, struct process_event *e, bool keep)
{
	if (keep)
		remember(f, &e->proc);
	f->batch[f->n++] = *e;
	process_event_init(e);
	return f->n == BATCH ? flush(f) : 0;
}

static int
fill_jsonl(struct filler *f, const char *path)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *in = streq(path, "-") ? stdin : fopen(path, "re");
	int rc = 0;

	if (in == NULL) {
		fprintf(stderr, "de-store-fill: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && getline(&line, &cap, in) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		struct process_event e;

		process_event_init(&e);
		if (j && event_from_json(j, &e) == 0)
			rc = push(f, &e, true);
		process_event_clear(&e);
		json_decref(j);
	}
	if (in != stdin)
		fclose(in);
	return rc ? rc : flush(f);
}

static void
synth_record(struct process_record *r, int32_t pid, int32_t ppid, uint64_t start, uint64_t k)
{
	char buf[256];
	const char *name = names[k % ARRAY_SIZE(names)];

	r->pid = pid;
	r->ppid = ppid;
	r->name = xstrdup(name);
	snprintf(buf, sizeof(buf), "/usr/bin/%s", name);
	r->executable_path = xstrdup(buf);
	snprintf(buf, sizeof(buf), "%s --job %" PRIu64 " --flag value", name, k);
	r->command_line = xstrdup(buf);
	r->start_time = start;
	r->start_ticks = start / 10;
	r->memory_usage = 1024 * (k % 5000);
	r->user_id = (int64_t)(k % ARRAY_SIZE(users)) * 1000;
	r->effective_user_id = r->user_id;
	r->group_id = r->user_id;
	r->user_name = xstrdup(users[k % ARRAY_SIZE(users)]);
	r->cwd = xstrdup("/");
	r->state = xstrdup("S");
	r->threads = 1;
	r->accessible = true;
	r->file_exists = true;
}

static int
fill_synthetic(struct filler *f, uint64_t n, uint64_t live, uint64_t span_ms)
{
	uint64_t now = time_now_ms(), t0 = now - span_ms;
	int32_t next_pid = 2;
	int rc = 0;

	if (live < 1)
		live = 1;
	/* The long-lived tree: pid 1 and live-1 descendants, as a snapshot. */
	for (uint64_t i = 0; i < live && i < n && rc == 0; i++) {
		struct process_event e;
		int32_t pid = i == 0 ? 1 : next_pid++;
		int32_t ppid = i == 0 ? 0 : (int32_t)(1 + rng() % (uint64_t)(pid - 1));

		process_event_init(&e);
		e.type = PROC_EV_SNAPSHOT;
		e.time = t0 + i;
		e.source = xstrdup("poll");
		synth_record(&e.proc, pid, ppid, t0 - 1000 + i, i);
		rc = push(f, &e, true);
	}
	/* Short-lived children: a start and, one event later, a stop. */
	for (uint64_t i = live; i < n && rc == 0; i += 2) {
		uint64_t t = t0 + (span_ms * (i - live)) / (n - live + 1);
		int32_t pid = (int32_t)(live + 1 + ((i - live) / 2) % 4000000);
		int32_t ppid = (int32_t)(1 + rng() % live);
		struct process_event e;

		process_event_init(&e);
		e.type = PROC_EV_START;
		e.time = t;
		e.source = xstrdup("ebpf");
		synth_record(&e.proc, pid, ppid, t, i);
		rc = push(f, &e, (i / 2) % 64 == 0);
		if (rc == 0 && i + 1 < n) {
			process_event_init(&e);
			e.type = PROC_EV_STOP;
			e.time = t + 5;
			e.source = xstrdup("ebpf");
			e.exit_code = 0;
			e.runtime_ms = 5;
			synth_record(&e.proc, pid, ppid, t, i);
			rc = push(f, &e, false);
		}
	}
	return rc ? rc : flush(f);
}

static int
fill_alerts(struct filler *f, uint64_t m, uint64_t span_ms)
{
	uint64_t now = time_now_ms();

	for (uint64_t i = 0; i < m && f->n_pids > 0; i++) {
		size_t k = (size_t)(rng() % f->n_pids);
		const char *sev = severities[i % ARRAY_SIZE(severities)];
		const char *rule = rules[i % ARRAY_SIZE(rules)];
		uint64_t ts = now - (span_ms * i) / m;
		char id[40], ts_text[32], title[128], dedup[96];
		_cleanup_free_ char *text = NULL;
		json_t *a;
		int rc;

		snprintf(id, sizeof(id), "%016" PRIx64 "%016" PRIx64, rng(), i);
		time_format_rfc3339_ms(ts, ts_text, sizeof(ts_text));
		snprintf(title, sizeof(title), "%s: %s", rule, f->pnames[k]);
		snprintf(dedup, sizeof(dedup), "%s:%d:%" PRIu64, rule, f->pids[k], f->starts[k]);
		a = json_pack("{ss ss ss ss ss ss ss ss ss ss s{si si ss} s{si}}", "alert_id", id,
		              "timestamp", ts_text, "host", "testhost", "rule_id", rule,
		              "rule_name", rule, "severity", sev, "category", "test", "title",
		              title, "description", "generated by de-store-fill", "dedup_key",
		              dedup, "process", "pid", f->pids[k], "ppid", 1, "name", f->pnames[k],
		              "match", "pid", f->pids[k]);
		text = a ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		if (text == NULL)
			return -ENOMEM;
		struct store_alert sa = {
			.alert_id = id,
			.timestamp = ts,
			.rule_id = rule,
			.severity = sev,
			.category = "test",
			.dedup_key = dedup,
			.pid = f->pids[k],
			.process_start_time = f->starts[k],
			.repeat_count = 1,
			.json = text,
		};
		if ((rc = store_alert_put(f->st, &sa)) < 0) {
			fprintf(stderr, "de-store-fill: store_alert_put: %s\n", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jsonl", required_argument, NULL, 'j' },
		{ "synthetic", required_argument, NULL, 'n' },
		{ "live", required_argument, NULL, 'l' },
		{ "alerts", required_argument, NULL, 'a' },
		{ "span-h", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct filler f = { 0 };
	const char *jsonl = NULL;
	uint64_t n = 0, live = 500, alerts = 0, span_h = 24;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		uint64_t *dst = c == 'n' ? &n : c == 'l' ? &live : c == 'a' ? &alerts : &span_h;

		if (c == 'j') {
			jsonl = optarg;
			continue;
		}
		if (c == '?' || parse_u64(optarg, dst) < 0) {
			fputs("usage: de-store-fill DB [--jsonl FILE|-] [--synthetic N] [--live L] "
			      "[--alerts M] [--span-h H]\n",
			      stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || n > MAX_EVENTS || (span_h == 0) || (!jsonl && n == 0)) {
		fputs("de-store-fill: give one DB path and --jsonl or --synthetic N (<= 10M)\n",
		      stderr);
		return 2;
	}
	if ((rc = store_open(argv[optind], STORE_RW, &f.st)) < 0) {
		fprintf(stderr, "de-store-fill: %s: %s\n", argv[optind], strerror(-rc));
		return 1;
	}
	rc = jsonl ? fill_jsonl(&f, jsonl) : fill_synthetic(&f, n, live, span_h * 3600000);
	if (rc == 0)
		rc = fill_alerts(&f, alerts, span_h * 3600000);
	store_close(f.st);
	for (size_t i = 0; i < f.n_pids; i++)
		free(f.pnames[i]);
	free(f.pids);
	free(f.starts);
	free(f.pnames);
	if (rc < 0)
		return 1;
	printf("%" PRIu64 " events, %" PRIu64 " alerts\n", f.total, alerts);
	return 0;
}
