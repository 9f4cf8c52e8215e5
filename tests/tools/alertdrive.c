/* alertdrive: drives the real alert pipeline (alert.c, spool, sinks) without
 * the rest of the agent, for tests/e2e/test_sinks.py and the alert benchmark.
 *
 *   alertdrive --config FILE [--data-dir DIR] [--no-store] [--count N]
 *              [--pid-base N] [--rule ID] [--severity S] [--stdin]
 *              [--flush-ms MS] [--wait-spool] [--health-out FILE]
 *              [--latency-file FILE]
 *
 * Loads FILE with config.h (alerting section: sinks, dedup, rate limit),
 * opens <data_dir>/events.db with the store unless --no-store, and submits N
 * synthetic matches (process pid-base+i, match {"seq": i, ...}), or one match
 * per JSON line on stdin with --stdin ({"rule_id","pid","start_time","name",
 * "command_line","severity"}; missing keys take defaults). Then waits up to
 * --flush-ms for the sinks (with --wait-spool also for the spools to drain),
 * writes alerts_health_json to --health-out, and exits 0.
 *
 * --latency-file FILE: after each submit, waits until the alert's line is in
 * FILE (the file sink's path) and prints p50/p99/max submit->line latency.
 * --timing: prints alerts/s from the first submit until the sinks are drained.
 * --floor-out FILE: instead of the pipeline, writes the same N alert lines
 * with one write(2) each to FILE and prints lines/s (the benchmark's floor). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/alert.h"
#include "cleanup.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "util.h"

struct opts {
	const char *config, *data_dir, *rule, *severity, *health_out, *latency_file, *floor_out;
	uint64_t count, pid_base, flush_ms;
	bool no_store, use_stdin, wait_spool, timing;
};

static void
usage(FILE *f)
{
	fputs("usage: alertdrive --config FILE [--data-dir DIR] [--no-store] [--count N]\n"
	      "       [--pid-base N] [--rule ID] [--severity S] [--stdin] [--flush-ms MS]\n"
	      "       [--wait-spool] [--health-out FILE] [--latency-file FILE]\n"
	      "       [--timing] [--floor-out FILE]\n",
	      f);
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "no-store", no_argument, NULL, 'S' },
		{ "count", required_argument, NULL, 'n' },
		{ "pid-base", required_argument, NULL, 'p' },
		{ "rule", required_argument, NULL, 'r' },
		{ "severity", required_argument, NULL, 's' },
		{ "stdin", no_argument, NULL, 'i' },
		{ "flush-ms", required_argument, NULL, 'f' },
		{ "wait-spool", no_argument, NULL, 'w' },
		{ "health-out", required_argument, NULL, 'H' },
		{ "latency-file", required_argument, NULL, 'L' },
		{ "timing", no_argument, NULL, 'T' },
		{ "floor-out", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .rule = "synthetic-rule",
		            .severity = "high",
		            .count = 0,
		            .pid_base = 100000,
		            .flush_ms = 10000 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int r = 0;

		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->data_dir = optarg;
			break;
		case 'S':
			o->no_store = true;
			break;
		case 'n':
			r = parse_u64(optarg, &o->count);
			break;
		case 'p':
			r = parse_u64(optarg, &o->pid_base);
			break;
		case 'r':
			o->rule = optarg;
			break;
		case 's':
			o->severity = optarg;
			break;
		case 'i':
			o->use_stdin = true;
			break;
		case 'f':
			r = parse_u64(optarg, &o->flush_ms);
			break;
		case 'w':
			o->wait_spool = true;
			break;
		case 'H':
			o->health_out = optarg;
			break;
		case 'L':
			o->latency_file = optarg;
			break;
		case 'T':
			o->timing = true;
			break;
		case 'F':
			o->floor_out = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "alertdrive: bad number '%s'\n", optarg);
			return -EINVAL;
		}
	}
	if (o->config == NULL) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static uint64_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Submits one match; with a latency file, waits for its line (up to 5 s). */
static int
submit_one(struct alerts *al, const struct alert_match *m, const char *latency_file,
           uint64_t *ret_ns)
{
	uint64_t before = latency_file ? file_size(latency_file) : 0;
	uint64_t t0 = time_mono_ns();
	int r = alerts_submit(al, m);

	if (r < 0 || latency_file == NULL || r != ALERT_RAISED)
		return r;
	while (file_size(latency_file) <= before) {
		struct timespec ts = { 0, 20 * 1000 };

		if (time_mono_ns() - t0 > 5000000000ull)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
	}
	*ret_ns = time_mono_ns() - t0;
	return r;
}

static void
print_latency(uint64_t *ns, size_t n)
{
	if (n == 0)
		return;
	qsort(ns, n, sizeof(ns[0]), cmp_u64);
	printf("latency submit->file line: n=%zu p50=%.3f ms p99=%.3f ms max=%.3f ms\n", n,
	       (double)ns[n / 2] / 1e6,
	       (double)ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e6,
	       (double)ns[n - 1] / 1e6);
}

static int
run_synthetic(struct alerts *al, const struct opts *o)
{
	_cleanup_free_ uint64_t *lat = calloc(o->count ? o->count : 1, sizeof(uint64_t));
	uint64_t start = time_now_ms();
	size_t n_lat = 0;

	if (lat == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < o->count; i++) {
		struct process_record p;
		struct alert_match m = { .rule_id = o->rule,
			                 .rule_name = "Synthetic test rule",
			                 .severity = o->severity,
			                 .category = "test",
			                 .description = "alertdrive synthetic match" };
		char cmd[64];
		json_t *mt;
		int r;

		process_record_init(&p);
		p.pid = (int32_t)(o->pid_base + i);
		p.ppid = 1;
		p.start_time = start;
		p.name = (char *)"synthetic";
		(void)snprintf(cmd, sizeof(cmd), "synthetic --seq %" PRIu64, i);
		p.command_line = cmd;
		p.user_id = 0;
		mt = json_pack("{s:I, s:i, s:s}", "seq", (json_int_t)i, "pid", p.pid, "name",
		               "synthetic");
		m.proc = &p;
		m.match = mt;
		r = submit_one(al, &m, o->latency_file, &lat[n_lat]);
		json_decref(mt);
		if (r < 0) {
			fprintf(stderr, "alertdrive: submit %" PRIu64 ": %s\n", i, strerror(-r));
			return r;
		}
		if (o->latency_file != NULL && r == ALERT_RAISED)
			n_lat++;
	}
	print_latency(lat, n_lat);
	return 0;
}

static const char *
jget(json_t *o, const char *k, const char *def)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : def;
}

static int
run_stdin(struct alerts *al, const struct opts *o)
{
	char line[16384];
	unsigned n = 0;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		json_t *j = json_loads(line, 0, NULL);
		struct process_record p;
		struct alert_match m;
		int r;

		if (!json_is_object(j)) {
			json_decref(j);
			continue;
		}
		process_record_init(&p);
		p.pid = (int32_t)json_integer_value(json_object_get(j, "pid"));
		p.ppid = 1;
		p.start_time = (uint64_t)json_integer_value(json_object_get(j, "start_time"));
		p.name = (char *)jget(j, "name", "synthetic");
		p.command_line = (char *)jget(j, "command_line", "synthetic");
		p.user_id = 0;
		m = (struct alert_match){ .rule_id = jget(j, "rule_id", o->rule),
			                  .rule_name = jget(j, "rule_name", "Synthetic test rule"),
			                  .severity = jget(j, "severity", o->severity),
			                  .category = "test",
			                  .description = "alertdrive stdin match",
			                  .proc = &p,
			                  .match = json_object_get(j, "match") };
		r = alerts_submit(al, &m);
		printf("%u %s\n", n++,
		       r == ALERT_RAISED         ? "raised"
		       : r == ALERT_DUPLICATE    ? "duplicate"
		       : r == ALERT_RATE_LIMITED ? "rate_limited"
		                                 : "error");
		json_decref(j);
	}
	fflush(stdout);
	return 0;
}

/* The floor: the same alert lines, prebuilt, one write(2) each. */
static int
run_floor(const struct opts *o)
{
	char **lines = calloc(o->count ? o->count : 1, sizeof(char *));
	uint64_t t0, ns;
	int fd, r = 0;

	if (lines == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < o->count && r == 0; i++) {
		struct process_record p;
		struct alert_match m = { .rule_id = o->rule,
			                 .rule_name = "Synthetic test rule",
			                 .severity = o->severity,
			                 .category = "test",
			                 .description = "alertdrive synthetic match" };
		char id[64];
		json_t *a, *mt;
		char *text;

		process_record_init(&p);
		p.pid = (int32_t)(o->pid_base + i);
		p.start_time = time_now_ms();
		p.name = (char *)"synthetic";
		mt = json_pack("{s:I, s:i, s:s}", "seq", (json_int_t)i, "pid", p.pid, "name",
		               "synthetic");
		m.proc = &p;
		m.match = mt;
		(void)snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012" PRIx64, i);
		a = alert_build_json(&m, id, time_now_ms(), "host");
		text = a ? json_dumps(a, JSON_COMPACT) : NULL;
		json_decref(a);
		json_decref(mt);
		if (text == NULL || asprintf(&lines[i], "%s\n", text) < 0) {
			lines[i] = NULL;
			r = -ENOMEM;
		}
		free(text);
	}
	fd = open(o->floor_out, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (r == 0 && fd < 0)
		r = -errno;
	t0 = time_mono_ns();
	for (uint64_t i = 0; i < o->count && r == 0; i++)
		r = write_all(fd, lines[i], strlen(lines[i]));
	ns = time_mono_ns() - t0;
	if (fd >= 0)
		close(fd);
	for (uint64_t i = 0; i < o->count; i++)
		free(lines[i]);
	free(lines);
	if (r == 0)
		printf("floor: %" PRIu64 " lines in %.3f ms = %.0f lines/s\n", o->count,
		       (double)ns / 1e6, (double)o->count * 1e9 / (double)(ns ? ns : 1));
	return r;
}

int
main(int argc, char **argv)
{
	struct de_config cfg;
	struct errbuf err = { { 0 } };
	_cleanup_(alerts_freep) struct alerts *al = NULL;
	_cleanup_(store_closep) struct store *st = NULL;
	char path[4096], spool[4096];
	struct opts o;
	uint64_t t0;
	int r;

	log_init("alertdrive");
	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	if (o.floor_out != NULL)
		return run_floor(&o) < 0 ? 1 : 0;
	if ((r = config_load(o.config, &cfg, &err)) < 0) {
		fprintf(stderr, "alertdrive: %s\n", err.msg);
		return 2;
	}
	if (o.data_dir != NULL && (r = config_set(&cfg, "agent.data_dir", o.data_dir, &err)) < 0) {
		fprintf(stderr, "alertdrive: %s\n", err.msg);
		return 2;
	}
	(void)mkdir(cfg.agent.data_dir, 0750);
	(void)snprintf(path, sizeof(path), "%s/events.db", cfg.agent.data_dir);
	(void)snprintf(spool, sizeof(spool), "%s/spool", cfg.agent.data_dir);
	if (!o.no_store && (r = store_open(path, STORE_RW, &st)) < 0)
		fatal("cannot open store %s: %s", path, strerror(-r));
	if ((r = alerts_new(&al, &cfg, st, spool, &err)) < 0)
		fatal("%s", err.msg);
	config_free(&cfg);
	t0 = time_mono_ns();
	r = o.use_stdin ? run_stdin(al, &o) : run_synthetic(al, &o);
	if (r < 0)
		return 1;
	if (alerts_flush(al, (uint32_t)o.flush_ms, o.wait_spool) < 0)
		log_warn("sinks not drained within %" PRIu64 " ms", o.flush_ms);
	if (o.timing) {
		uint64_t ns = time_mono_ns() - t0;
		json_t *h = alerts_health_json(al);
		json_t *s0 = json_array_get(json_object_get(h, "sinks"), 0);
		json_int_t delivered = json_integer_value(json_object_get(s0, "delivered"));

		printf("pipeline: %" PRIu64 " alerts submitted, %" JSON_INTEGER_FORMAT
		       " delivered, %" JSON_INTEGER_FORMAT " dropped in %.3f ms = %.0f alerts/s\n",
		       o.count, delivered, json_integer_value(json_object_get(s0, "dropped")),
		       (double)ns / 1e6, (double)delivered * 1e9 / (double)(ns ? ns : 1));
		json_decref(h);
	}
	if (o.health_out != NULL) {
		json_t *h = alerts_health_json(al);

		if (h == NULL || json_dump_file(h, o.health_out, JSON_INDENT(1)) < 0)
			fatal("cannot write %s", o.health_out);
		json_decref(h);
	}
	return 0;
}
