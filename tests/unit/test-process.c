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

/* An event copy owns its strings: the original can go away. */
static void
test_event_copy(void **state)
{
	struct process_event a, b;

	(void)state;
	process_event_init(&a);
	assert_int_equal(a.exit_code, -1);
	a.type = PROC_EV_MODIFIED;
	a.time = 1234;
	a.seq = 9;
	a.exit_code = 3;
	a.runtime_ms = 77;
	a.source = strdup("netlink");
	a.modified_fields = strdup("name,command_line");
	a.reason = strdup("odd");
	a.proc.pid = 5;
	a.proc.name = strdup("sh");
	assert_int_equal(process_event_copy(&b, &a), 0);
	assert_ptr_not_equal(a.source, b.source);
	assert_ptr_not_equal(a.modified_fields, b.modified_fields);
	assert_ptr_not_equal(a.reason, b.reason);
	assert_ptr_not_equal(a.proc.name, b.proc.name);
	process_event_clear(&a);
	assert_null(a.source);
	assert_null(a.reason);
	assert_int_equal(a.exit_code, -1);
	assert_int_equal(b.type, PROC_EV_MODIFIED);
	assert_int_equal(b.time, 1234);
	assert_int_equal(b.seq, 9);
	assert_int_equal(b.exit_code, 3);
	assert_int_equal(b.runtime_ms, 77);
	assert_string_equal(b.source, "netlink");
	assert_string_equal(b.modified_fields, "name,command_line");
	assert_string_equal(b.reason, "odd");
	assert_int_equal(b.proc.pid, 5);
	assert_string_equal(b.proc.name, "sh");
	process_event_clear(&b);

	/* No strings at all: none appear. */
	process_event_init(&a);
	a.proc.pid = 6;
	assert_int_equal(process_event_copy(&b, &a), 0);
	assert_null(b.source);
	assert_null(b.modified_fields);
	assert_null(b.reason);
	assert_null(b.proc.name);
	assert_int_equal(b.proc.pid, 6);
	process_event_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_and_clear),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_event_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
