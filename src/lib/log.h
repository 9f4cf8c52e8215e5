/* Process-wide logging: levels, to stderr (default) or syslog.
 *
 * Library code (src/lib) logs at debug at most; the caller that has the
 * context logs once (STYLE.md rule 4). fatal() is for process-level code
 * only: main(), dispatch loops, the privilege drop. */
#ifndef DE_LOG_H
#define DE_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Sets the program name printed on every line (not copied: pass a literal). */
void log_init(const char *progname);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Sends messages to syslog (LOG_DAEMON) instead of stderr when on is true. */
void log_set_syslog(bool on);

/* Parses "error|warn|info|debug". Returns 0 and sets *ret, or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret);
const char *log_level_to_string(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs at error level and exits with status 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                         \
	do {                                                   \
		if (log_get_level() >= LOG_LEVEL_DEBUG)        \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
