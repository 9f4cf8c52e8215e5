/* output.c's JSON lines writer against process_event_to_json_line(): the
 * direct writer must produce the very same bytes (tests and consumers parse
 * them) for hostile strings (quotes, backslashes, every control byte, DEL,
 * non-ASCII and invalid UTF-8, which take the jansson path), nulls, extreme
 * integers and reals of every magnitude, and every event type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "errbuf.h"
#include "output.h"
#include "process.h"
#include "util.h"

#define N_RANDOM 3000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random string, or NULL: mostly printable ASCII, with escapes, control
 * bytes, DEL and (rarely) bytes >= 0x80. */
static char *
rand_str(void)
{
	size_t n = next() % 40;
	char *s;

	if (next() % 6 == 0)
		return NULL;
	s = malloc(n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)(next() % 100);

		if (k < 70)
			s[i] = (char)(' ' + next() % 95);
		else if (k < 80)
			s[i] = "\"\\/"[next() % 3];
		else if (k < 97)
			s[i] = (char)(1 + next() % 31);
		else if (k < 98)
			s[i] = 0x7f;
		else
			s[i] = (char)(0x80 + next() % 128);
	}
	s[n] = '\0';
	return s;
}

static double
rand_real(void)
{
	static const double special[] = { 0.0,         -0.0, 1.0,   100.0, 1e-5,      1.5e-7,
		                          123456789.0, 1e21, 1e300, 0.1,   1.0 / 3.0, 5e-324 };
	unsigned k = (unsigned)(next() % 10);

	if (k == 0)
		return special[next() % ARRAY_SIZE(special)];
	if (k == 1)
		return (double)(next() % 1000);
	if (k == 2)
		return ldexp((double)(next() % 1000000), (int)(next() % 200) - 100);
	if (k == 3)
		return next() % 20 == 0 ? NAN : INFINITY;
	return (double)(next() % 100000) / 997.0;
}

static int64_t
rand_i64(void)
{
	switch (next() % 5) {
	case 0:
		return -1;
	case 1:
		return INT64_MAX;
	case 2:
		return (int64_t)(next() % 70000);
	case 3:
		return -(int64_t)(next() % 100000) - 2;
	default:
		return (int64_t)(next() >> 1);
	}
}

static void
rand_event(struct process_event *ev)
{
	struct process_record *p = &ev->proc;

	process_event_init(ev);
	ev->type = (enum proc_event_type)(next() % 6);
	ev->time = next() % 4102444800000ull;
	ev->source = rand_str();
	ev->exit_code = (int32_t)rand_i64();
	ev->runtime_ms = next();
	ev->modified_fields = next() % 3 ? NULL : rand_str();
	ev->reason = next() % 3 ? NULL : rand_str();
	p->pid = (int32_t)rand_i64();
	p->ppid = (int32_t)rand_i64();
	p->name = rand_str();
	p->executable_path = rand_str();
	p->command_line = rand_str();
	p->start_time = next();
	p->cpu_usage = rand_real();
	p->memory_usage = next();
	p->executable_hash = rand_str();
	p->user_id = rand_i64();
	p->effective_user_id = rand_i64();
	p->group_id = rand_i64();
	p->user_name = rand_str();
	p->cwd = rand_str();
	p->tty = rand_str();
	p->state = rand_str();
	p->threads = (int32_t)rand_i64();
	p->accessible = next() & 1;
	p->file_exists = next() & 1;
	p->exe_deleted = next() & 1;
	p->exe_memfd = next() & 1;
	p->argv_truncated = next() & 1;
	p->parent_name = rand_str();
	p->parent_executable_path = rand_str();
	p->parent_command_line = rand_str();
	p->container_id = rand_str();
	p->cgroup = rand_str();
	p->missing = (uint32_t)next();
}

/* Writes evs through the jsonl output into a file and compares each line
 * with process_event_to_json_line. */
static void
compare(struct process_event *evs, size_t n)
{
	char path[] = "/tmp/test-output-XXXXXX";
	struct errbuf err = { 0 };
	struct output *o = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(output_jsonl_open(path, &o, &err), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(output_emit(o, &evs[i]), 0);
	output_close(o);
	f = fopen(path, "r");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *want = process_event_to_json_line(&evs[i]);
		ssize_t len = getline(&line, &cap, f);

		assert_non_null(want);
		assert_true(len > 0);
		assert_int_equal(line[len - 1], '\n');
		line[len - 1] = '\0';
		assert_string_equal(line, want);
	}
	assert_int_equal(getline(&line, &cap, f), -1);
	free(line);
	unlink(path);
}

static void
test_same_bytes_as_jansson(void **state)
{
	struct process_event *evs = calloc(N_RANDOM, sizeof(*evs));

	(void)state;
	assert_non_null(evs);
	for (size_t i = 0; i < N_RANDOM; i++)
		rand_event(&evs[i]);
	compare(evs, N_RANDOM);
	for (size_t i = 0; i < N_RANDOM; i++)
		process_event_clear(&evs[i]);
	free(evs);
}

static void
test_plain_record(void **state)
{
	struct process_event ev;

	(void)state;
	process_event_init(&ev);
	ev.type = PROC_EV_SNAPSHOT;
	ev.time = 1764100000123ull;
	ev.source = strdup("poll");
	ev.proc.pid = 42;
	ev.proc.ppid = 1;
	ev.proc.name = strdup("sleep");
	ev.proc.command_line = strdup("sleep \"600\"\tx\\y");
	ev.proc.cpu_usage = 0.25;
	ev.proc.state = strdup("S");
	ev.proc.accessible = true;
	compare(&ev, 1);
	process_event_clear(&ev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_record),
		cmocka_unit_test(test_same_bytes_as_jansson),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
