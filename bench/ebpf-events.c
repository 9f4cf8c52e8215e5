/* ebpf-events: opens the eBPF source (source_ebpf_ops) on its own and prints
 * every event as a JSON line on stdout, so the source can be proved and
 * measured end to end without the rest of procmond (bench/bench-burst.py,
 * tests/e2e/test_ebpf.py). "ready" on stderr once attached; on SIGINT or
 * SIGTERM it drains what is pending and prints the source's health as JSON
 * on stderr.
 *
 * Usage: ebpf-events [--no-cwd] [--duration SECONDS]  (0: open, attach and exit) */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <jansson.h>

#include "errbuf.h"
#include "procmond/source.h"
#include "util.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char *const kind_names[] = {
	[SOURCE_EV_EXEC] = "exec", [SOURCE_EV_FORK] = "fork", [SOURCE_EV_EXIT] = "exit",
	[SOURCE_EV_UID] = "uid",   [SOURCE_EV_COMM] = "comm",
};

static json_t *
argv_json(const struct source_event *ev)
{
	json_t *a = json_array();
	size_t i = 0;

	while (a != NULL && i < ev->argv_len) {
		size_t n = strnlen(ev->argv + i, ev->argv_len - i);

		json_array_append_new(a, json_stringn_nocheck(ev->argv + i, n));
		i += n + 1;
	}
	return a;
}

static void
print_event(void *ctx, const struct source_event *ev)
{
	json_t *o = json_object();
	char *line;

	(void)ctx;
	if (o == NULL)
		return;
	json_object_set_new(o, "kind", json_string(kind_names[ev->kind]));
	json_object_set_new(o, "pid", json_integer(ev->pid));
	json_object_set_new(o, "tid", json_integer(ev->tid));
	if (ev->has & SOURCE_HAS_PPID)
		json_object_set_new(o, "ppid", json_integer(ev->ppid));
	if (ev->has & SOURCE_HAS_IDS) {
		json_object_set_new(o, "uid", json_integer(ev->uid));
		json_object_set_new(o, "euid", json_integer(ev->euid));
		json_object_set_new(o, "gid", json_integer(ev->gid));
	}
	if (ev->has & SOURCE_HAS_COMM)
		json_object_set_new(o, "comm", json_stringn_nocheck(ev->comm, strlen(ev->comm)));
	if (ev->has & SOURCE_HAS_FILENAME)
		json_object_set_new(o, "filename",
		                    json_stringn_nocheck(ev->filename, strlen(ev->filename)));
	if (ev->has & SOURCE_HAS_ARGV) {
		json_object_set_new(o, "argv", argv_json(ev));
		json_object_set_new(o, "argv_truncated", json_boolean(ev->argv_truncated));
	}
	if (ev->has & SOURCE_HAS_CWD)
		json_object_set_new(o, "cwd", json_stringn_nocheck(ev->cwd, strlen(ev->cwd)));
	if (ev->has & SOURCE_HAS_EXE) {
		json_object_set_new(o, "exe", json_stringn_nocheck(ev->exe, strlen(ev->exe)));
		json_object_set_new(o, "exe_deleted", json_boolean(ev->exe_deleted));
	}
	if (ev->has & SOURCE_HAS_IMAGE)
		json_object_set_new(o, "image",
		                    json_pack("{sIsIsIsIsIsIsI}", "dev", (json_int_t)ev->image.dev,
		                              "ino", (json_int_t)ev->image.ino, "size",
		                              (json_int_t)ev->image.size, "mtime_sec",
		                              (json_int_t)ev->image.mtime_sec, "mtime_nsec",
		                              (json_int_t)ev->image.mtime_nsec, "ctime_sec",
		                              (json_int_t)ev->image.ctime_sec, "ctime_nsec",
		                              (json_int_t)ev->image.ctime_nsec));
	if (ev->has & SOURCE_HAS_CGROUP)
		json_object_set_new(o, "cgroup_id", json_integer((json_int_t)ev->cgroup_id));
	if (ev->has & SOURCE_HAS_STAT) {
		json_object_set_new(o, "egid", json_integer(ev->egid));
		json_object_set_new(o, "threads", json_integer(ev->threads));
		json_object_set_new(o, "tty_nr", json_integer(ev->tty_nr));
		json_object_set_new(o, "rss_pages", json_integer((json_int_t)ev->rss_pages));
	}
	if (ev->has & SOURCE_HAS_START)
		json_object_set_new(o, "start_ns", json_integer((json_int_t)ev->start_ns));
	json_object_set_new(o, "ktime_ns", json_integer((json_int_t)ev->ktime_ns));
	if (ev->has & SOURCE_HAS_EXIT_CODE)
		json_object_set_new(o, "exit_code", json_integer(ev->exit_code));
	/* Invalid UTF-8 from the kernel is kept as bytes: this is a test tool. */
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (line != NULL) {
		fputs(line, stdout);
		fputc('\n', stdout);
		free(line);
	}
	json_decref(o);
}

static int
run(struct source *s, double duration)
{
	struct epoll_event pev;
	struct timespec t0, now;
	int ep, rc;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	pev.events = EPOLLIN;
	pev.data.fd = source_ebpf_ops.fd(s);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, pev.data.fd, &pev) < 0)
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		rc = epoll_wait(ep, &pev, 1, 100);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if ((rc = source_ebpf_ops.dispatch(s, print_event, NULL)) < 0)
			return rc;
		fflush(stdout);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (duration >= 0 &&
		    (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 >= duration)
			break;
	}
	rc = source_ebpf_ops.dispatch(s, print_event, NULL);
	fflush(stdout);
	return rc < 0 ? rc : 0;
}

int
main(int argc, char **argv)
{
	struct collector_opts opts = { .enhanced_metadata = true, .interval_ms = 1000 };
	struct source_health h;
	struct errbuf err = { { 0 } };
	struct sigaction sa = { .sa_handler = on_signal };
	struct source *s = NULL;
	double duration = -1; /* until a signal */
	int rc;

	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--no-cwd")) {
			opts.enhanced_metadata = false;
		} else if (streq(argv[i], "--duration") && i + 1 < argc) {
			uint64_t v;

			if (parse_u64(argv[++i], &v) < 0)
				return 2;
			duration = (double)v;
		} else {
			fprintf(stderr, "usage: ebpf-events [--no-cwd] [--duration SECONDS]\n");
			return 2;
		}
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
#ifdef EBPF_LOADER_PATH
	source_ebpf_set_loader(EBPF_LOADER_PATH); /* the build tree's */
#endif
	/* Tests point it at a loader that misbehaves (tests/e2e/test_ebpf.py). */
	if (getenv("EBPF_EVENTS_LOADER") != NULL)
		source_ebpf_set_loader(getenv("EBPF_EVENTS_LOADER"));
	if ((rc = source_ebpf_ops.open(&opts, &s, &err)) < 0) {
		fprintf(stderr, "ebpf-events: %s (%s)\n", err.msg, strerror(-rc));
		return rc == -ENOTSUP || rc == -EPERM ? 77 : 1;
	}
	fprintf(stderr, "ready\n");
	rc = run(s, duration);
	source_ebpf_ops.health(s, &h);
	fprintf(stderr, "{\"events\":%llu,\"drops\":%llu,\"errors\":%llu}\n",
	        (unsigned long long)h.events, (unsigned long long)h.drops,
	        (unsigned long long)h.errors);
	source_ebpf_ops.close(s);
	if (rc < 0)
		fprintf(stderr, "ebpf-events: %s\n", strerror(-rc));
	return rc < 0 ? 1 : 0;
}
