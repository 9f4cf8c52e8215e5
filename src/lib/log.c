#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "timeutil.h"

static const char *log_progname = "daemoneye";
static enum log_level log_level = LOG_LEVEL_INFO;
static bool log_syslog;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int level_syslog[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARN] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void
log_init(const char *progname)
{
	log_progname = progname;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_set_syslog(bool on)
{
	if (on && !log_syslog)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = on;
}

int
log_level_from_string(const char *s, enum log_level *ret)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *
log_level_to_string(enum log_level level)
{
	if ((unsigned)level > LOG_LEVEL_DEBUG)
		return "?";
	return level_names[level];
}

__attribute__((format(printf, 2, 0))) static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048], ts[40];
	int saved = errno;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	if (log_syslog) {
		syslog(level_syslog[level], "%s", line);
	} else {
		if (time_format_rfc3339_ms(time_now_ms(), ts, sizeof(ts)) < 0)
			ts[0] = '\0';
		/* One write per line so concurrent writers do not interleave. */
		fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, log_progname, (int)getpid(),
		        level_names[level], line);
	}
	errno = saved;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
