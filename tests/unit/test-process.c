#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "process.h"

static void
test_copy_and_clear(void **state)
{
	struct process_record a, b;

	(void)state;
	process_record_init(&a);
	assert_int_equal(a.user_id, -1);
	a.pid = 42;
	a.name = strdup("bash");
	a.cgroup = strdup("/user.slice");
	assert_int_equal(process_record_copy(&b, &a), 0);
	assert_ptr_not_equal(a.name, b.name);
	assert_string_equal(b.name, "bash");
	assert_string_equal(b.cgroup, "/user.slice");
	process_record_clear(&a);
	assert_null(a.name);
	assert_int_equal(a.pid, -1);
	assert_string_equal(b.name, "bash");
	process_record_clear(&b);
}

static void
test_json_line(void **state)
{
	struct process_event e;
	json_error_t jerr;
	json_t *root, *proc;
	char *line;

	(void)state;
	process_event_init(&e);
	e.type = PROC_EV_START;
	e.time = 1795626000123ull;
	e.proc.pid = 7;
	e.proc.ppid = 1;
	e.proc.name = strdup("we(ird) na\nme");
	e.proc.command_line = strdup("x --password [REDACTED]");
	e.proc.user_id = 0;
	line = process_event_to_json_line(&e);
	assert_non_null(line);
	assert_null(strchr(line, '\n'));
	root = json_loads(line, 0, &jerr);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "event")), "start");
	assert_string_equal(json_string_value(json_object_get(root, "time")),
	                    "2026-11-25T17:00:00.123Z");
	proc = json_object_get(root, "process");
	assert_int_equal(json_integer_value(json_object_get(proc, "pid")), 7);
	assert_string_equal(json_string_value(json_object_get(proc, "name")), "we(ird) na\nme");
	assert_true(json_is_null(json_object_get(proc, "executable_hash")));
	assert_int_equal(json_integer_value(json_object_get(proc, "user_id")), 0);
	assert_true(json_is_null(json_object_get(proc, "group_id")));
	assert_string_equal(json_string_value(json_object_get(proc, "event_type")), "start");
	json_decref(root);
	free(line);
	process_event_clear(&e);
}

static void
test_event_names(void **state)
{
	enum proc_event_type t;

	(void)state;
	for (int i = 0; i < _PROC_EV_MAX; i++) {
		assert_int_equal(proc_event_type_from_string(
		                     proc_event_type_to_string((enum proc_event_type)i), &t),
		                 0);
		assert_int_equal(t, i);
	}
	assert_int_not_equal(proc_event_type_from_string("nope", &t), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_and_clear),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_event_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
