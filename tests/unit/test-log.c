/* Logging: level names, the stderr line format, level filtering, errno kept
 * across a log call, fatal()'s exit status. stderr is redirected to a
 * temporary file to read back what was written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "util.h"

/* Runs fn with stderr sent to a temporary file; returns what was written
 * (caller frees). */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/test-log-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC), saved;
	char *out = NULL;
	size_t len = 0;

	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	fn();
	fflush(stderr);
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(fd);
	assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 20, false, &out, &len), 0);
	unlink(path);
	return out;
}

static void
test_level_names(void **state)
{
	enum log_level l = LOG_LEVEL_ERROR;

	(void)state;
	assert_int_equal(log_level_from_string("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_from_string("warn", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARN);
	assert_int_equal(log_level_from_string("error", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERROR);
	l = LOG_LEVEL_INFO;
	assert_int_equal(log_level_from_string("WARN", &l), -EINVAL);
	assert_int_equal(log_level_from_string("", &l), -EINVAL);
	assert_int_equal(log_level_from_string("warning", &l), -EINVAL);
	assert_int_equal(l, LOG_LEVEL_INFO); /* untouched on error */
	assert_string_equal(log_level_to_string(LOG_LEVEL_ERROR), "error");
	assert_string_equal(log_level_to_string(LOG_LEVEL_DEBUG), "debug");
	assert_string_equal(log_level_to_string((enum log_level)4), "?");
	assert_string_equal(log_level_to_string((enum log_level) - 1), "?");
}

static void
log_some(void)
{
	log_init("tlog");
	log_set_level(LOG_LEVEL_INFO);
	errno = EXDEV;
	log_warn("hello %d", 42);
	assert_int_equal(errno, EXDEV); /* logging never changes errno */
	log_debug("hidden %d", 1);
	log_msg(LOG_LEVEL_DEBUG, "hidden %d", 2);
	log_set_level(LOG_LEVEL_DEBUG);
	assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);
	log_debug("shown %s", "now");
	log_set_level(LOG_LEVEL_ERROR);
	log_info("hidden %d", 3);
	log_error("bad %s", "thing");
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_stderr_lines(void **state)
{
	char *out, want[64], *p;

	(void)state;
	out = capture(log_some);
	snprintf(want, sizeof(want), " tlog[%d]: warn: hello 42\n", (int)getpid());
	p = strstr(out, want);
	assert_non_null(p);
	/* The line starts with an RFC 3339 time in UTC with milliseconds. */
	assert_true(p - out == (ptrdiff_t)strlen("2026-01-01T00:00:00.000Z"));
	assert_int_equal(out[4], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[p - out - 1], 'Z');
	assert_non_null(strstr(out, ": debug: shown now\n"));
	assert_non_null(strstr(out, ": error: bad thing\n"));
	assert_null(strstr(out, "hidden"));
	/* Exactly three lines. */
	assert_int_equal(out[strlen(out) - 1], '\n');
	{
		int lines = 0;

		for (p = out; *p; p++)
			lines += *p == '\n';
		assert_int_equal(lines, 3);
	}
	free(out);
}

static void
log_long(void)
{
	char big[4000];

	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_error("%s", big);
}

/* A message longer than the line buffer is cut, still one line. */
static void
test_long_message_truncated(void **state)
{
	char *out;
	size_t n;

	(void)state;
	out = capture(log_long);
	n = strlen(out);
	assert_true(n > 2000 && n < 2200);
	assert_int_equal(out[n - 1], '\n');
	assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
	free(out);
}

static void
to_syslog(void)
{
	log_set_syslog(true);
	log_set_syslog(true); /* opening twice is harmless */
	errno = ENOTTY;
	log_error("to syslog %d", 1);
	assert_int_equal(errno, ENOTTY);
	log_set_syslog(false);
}

/* With syslog on, nothing goes to stderr. */
static void
test_syslog_not_stderr(void **state)
{
	char *out;

	(void)state;
	out = capture(to_syslog);
	assert_string_equal(out, "");
	free(out);
}

static void
die(void)
{
	fatal("cannot go on: %s", "reason");
}

/* fatal() logs at error level and exits with status 1. */
static void
test_fatal_exits_1(void **state)
{
	char path[] = "/tmp/test-log-XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC), st = 0;
	char *out = NULL;
	size_t len = 0;
	pid_t pid;

	(void)state;
	assert_true(fd >= 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		log_init("tfatal");
		die();
	}
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_int_equal(read_file_at(AT_FDCWD, path, 1 << 20, false, &out, &len), 0);
	unlink(path);
	assert_non_null(strstr(out, " tfatal["));
	assert_non_null(strstr(out, ": error: cannot go on: reason\n"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_names),
		cmocka_unit_test(test_stderr_lines),
		cmocka_unit_test(test_long_message_truncated),
		cmocka_unit_test(test_syslog_not_stderr),
		cmocka_unit_test(test_fatal_exits_1),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
