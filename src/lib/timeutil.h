/* Time helpers: wall-clock epoch milliseconds, monotonic milliseconds, RFC 3339
 * with milliseconds in UTC, and operator durations ("10m", "2h", "7d"). */
#ifndef DE_TIMEUTIL_H
#define DE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in Unix epoch milliseconds. */
uint64_t time_now_ms(void);
/* CLOCK_MONOTONIC in milliseconds: for intervals and timeouts. */
uint64_t time_mono_ms(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t time_mono_ns(void);

/* Writes "2026-11-25T17:00:00.123Z" (24 chars + NUL) into buf.
 * Returns 0, or -ENOSPC when n is too small, -EOVERFLOW for absurd times. */
int time_format_rfc3339_ms(uint64_t epoch_ms, char *buf, size_t n);

/* Parses RFC 3339 ("2026-11-25T17:00:00Z", fractional seconds and +hh:mm
 * offsets allowed) into epoch ms. Returns 0 or -EINVAL. */
int time_parse_rfc3339(const char *s, uint64_t *ret_ms);

/* Parses a duration: a positive integer followed by ms, s, m, h or d
 * ("10m", "2h", "7d", "500ms"). Returns 0 and sets *ret_ms, or -EINVAL
 * (-ERANGE when it does not fit in 64 bits). */
int time_parse_duration(const char *s, uint64_t *ret_ms);

#endif
