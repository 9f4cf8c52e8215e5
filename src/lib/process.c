#include "process.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"
#include "util.h"

static const char *const event_names[_PROC_EV_MAX] = {
	[PROC_EV_SNAPSHOT] = "snapshot",
	[PROC_EV_START] = "start",
	[PROC_EV_STOP] = "stop",
	[PROC_EV_MODIFIED] = "modified",
	[PROC_EV_SUSPICIOUS] = "suspicious",
};

/* The string members of a record, so init/clear/copy stay in step. */
// clang-format off
#define PROC_STRINGS(X) \
	X(name) X(executable_path) X(command_line) X(executable_hash) X(user_name) \
	X(cwd) X(tty) X(state) X(parent_name) X(parent_executable_path) \
	X(parent_command_line) X(container_id) X(cgroup)
// clang-format on

void
process_record_init(struct process_record *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->ppid = -1;
	p->user_id = -1;
	p->effective_user_id = -1;
	p->group_id = -1;
	p->threads = 0;
}

void
process_record_clear(struct process_record *p)
{
#define FREE_ONE(f) free(p->f);
	PROC_STRINGS(FREE_ONE)
#undef FREE_ONE
	process_record_init(p);
}

int
process_record_copy(struct process_record *dst, const struct process_record *src)
{
	bool oom = false;

	*dst = *src;
#define COPY_ONE(f)                                              \
	if (src->f != NULL && (dst->f = strdup(src->f)) == NULL) \
		oom = true;
	PROC_STRINGS(COPY_ONE)
#undef COPY_ONE
	if (oom) {
		process_record_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

void
process_event_init(struct process_event *e)
{
	memset(e, 0, sizeof(*e));
	process_record_init(&e->proc);
	e->exit_code = -1;
}

void
process_event_clear(struct process_event *e)
{
	free(e->source);
	free(e->modified_fields);
	free(e->reason);
	process_record_clear(&e->proc);
	process_event_init(e);
}

int
process_event_copy(struct process_event *dst, const struct process_event *src)
{
	*dst = *src;
	dst->source = NULL;
	dst->modified_fields = NULL;
	dst->reason = NULL;
	process_record_init(&dst->proc);
	if ((src->source && !(dst->source = strdup(src->source))) ||
	    (src->modified_fields && !(dst->modified_fields = strdup(src->modified_fields))) ||
	    (src->reason && !(dst->reason = strdup(src->reason))) ||
	    process_record_copy(&dst->proc, &src->proc) < 0) {
		process_event_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

const char *
proc_event_type_to_string(enum proc_event_type t)
{
	if ((unsigned)t >= _PROC_EV_MAX)
		return "unknown";
	return event_names[t];
}

int
proc_event_type_from_string(const char *s, enum proc_event_type *ret)
{
	for (size_t i = 0; i < _PROC_EV_MAX; i++) {
		if (strcmp(s, event_names[i]) == 0) {
			*ret = (enum proc_event_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

static json_t *
json_str_or_null(const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	/* Not valid UTF-8: should not happen for sanitized records, but never
	 * drop the field silently. */
	{
		char *fixed = utf8_sanitize_dup(s, strlen(s));

		j = fixed ? json_string(fixed) : NULL;
		free(fixed);
		return j ? j : json_null();
	}
}

static json_t *
json_id(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

json_t *
process_record_to_json(const struct process_record *p, const struct process_event *ev)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "pid", json_integer(p->pid));
	json_object_set_new(o, "ppid", json_id(p->ppid));
	json_object_set_new(o, "name", json_str_or_null(p->name));
	json_object_set_new(o, "executable_path", json_str_or_null(p->executable_path));
	json_object_set_new(o, "command_line", json_str_or_null(p->command_line));
	json_object_set_new(o, "start_time", json_integer((json_int_t)p->start_time));
	json_object_set_new(o, "cpu_usage", json_real(p->cpu_usage));
	json_object_set_new(o, "memory_usage", json_integer((json_int_t)p->memory_usage));
	json_object_set_new(o, "executable_hash", json_str_or_null(p->executable_hash));
	json_object_set_new(o, "user_id", json_id(p->user_id));
	json_object_set_new(o, "effective_user_id", json_id(p->effective_user_id));
	json_object_set_new(o, "group_id", json_id(p->group_id));
	json_object_set_new(o, "user_name", json_str_or_null(p->user_name));
	json_object_set_new(o, "cwd", json_str_or_null(p->cwd));
	json_object_set_new(o, "tty", json_str_or_null(p->tty));
	json_object_set_new(o, "state", json_str_or_null(p->state));
	json_object_set_new(o, "threads", json_integer(p->threads));
	json_object_set_new(o, "accessible", json_boolean(p->accessible));
	json_object_set_new(o, "file_exists", json_boolean(p->file_exists));
	json_object_set_new(o, "exe_deleted", json_boolean(p->exe_deleted));
	json_object_set_new(o, "exe_memfd", json_boolean(p->exe_memfd));
	json_object_set_new(o, "argv_truncated", json_boolean(p->argv_truncated));
	json_object_set_new(o, "parent_name", json_str_or_null(p->parent_name));
	json_object_set_new(o, "parent_executable_path",
	                    json_str_or_null(p->parent_executable_path));
	json_object_set_new(o, "parent_command_line", json_str_or_null(p->parent_command_line));
	json_object_set_new(o, "container_id", json_str_or_null(p->container_id));
	json_object_set_new(o, "cgroup", json_str_or_null(p->cgroup));
	if (ev != NULL) {
		json_object_set_new(o, "event_type",
		                    json_string(proc_event_type_to_string(ev->type)));
		json_object_set_new(o, "collection_time", json_integer((json_int_t)ev->time));
	}
	json_object_set_new(o, "missing", json_integer(p->missing));
	return o;
}

char *
process_event_to_json_line(const struct process_event *e)
{
	char ts[40];
	json_t *root, *proc;
	char *s;

	if (time_format_rfc3339_ms(e->time, ts, sizeof(ts)) < 0)
		ts[0] = '\0';
	if ((root = json_object()) == NULL)
		return NULL;
	if ((proc = process_record_to_json(&e->proc, e)) == NULL) {
		json_decref(root);
		return NULL;
	}
	json_object_set_new(root, "event", json_string(proc_event_type_to_string(e->type)));
	json_object_set_new(root, "time", json_string(ts));
	if (e->source != NULL)
		json_object_set_new(root, "source", json_string(e->source));
	if (e->type == PROC_EV_STOP) {
		json_object_set_new(root, "exit_code", json_integer(e->exit_code));
		json_object_set_new(root, "runtime_ms", json_integer((json_int_t)e->runtime_ms));
	}
	if (e->modified_fields != NULL)
		json_object_set_new(root, "modified_fields", json_string(e->modified_fields));
	if (e->reason != NULL)
		json_object_set_new(root, "reason", json_str_or_null(e->reason));
	json_object_set_new(root, "process", proc);
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	return s;
}
