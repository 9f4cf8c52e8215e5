#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

static uint64_t
clock_ns(clockid_t id)
{
	struct timespec ts;

	(void)clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
time_now_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000ull;
}

uint64_t
time_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000ull;
}

uint64_t
time_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int
time_format_rfc3339_ms(uint64_t epoch_ms, char *buf, size_t n)
{
	time_t secs = (time_t)(epoch_ms / 1000);
	struct tm tm;
	int len;

	if (epoch_ms / 1000 > (uint64_t)253402300799ull) /* 9999-12-31 */
		return -EOVERFLOW;
	if (gmtime_r(&secs, &tm) == NULL)
		return -EOVERFLOW;
	len = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	               (unsigned)(epoch_ms % 1000));
	if (len < 0 || (size_t)len >= n)
		return -ENOSPC;
	return 0;
}

static int
parse_digits(const char **p, int count, int *ret)
{
	int v = 0;

	for (int i = 0; i < count; i++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*ret = v;
	return 0;
}

static int
expect_char(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

int
time_parse_rfc3339(const char *s, uint64_t *ret_ms)
{
	const char *p = s;
	int Y, M, D, h, m, sec, oh = 0, om = 0, ms = 0, sign = 0;
	struct tm tm = { 0 };
	time_t t;

	if (parse_digits(&p, 4, &Y) < 0 || expect_char(&p, '-') < 0 ||
	    parse_digits(&p, 2, &M) < 0 || expect_char(&p, '-') < 0 || parse_digits(&p, 2, &D) < 0)
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (parse_digits(&p, 2, &h) < 0 || expect_char(&p, ':') < 0 ||
	    parse_digits(&p, 2, &m) < 0 || expect_char(&p, ':') < 0 ||
	    parse_digits(&p, 2, &sec) < 0)
		return -EINVAL;
	if (*p == '.') {
		int scale = 100;

		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (parse_digits(&p, 2, &oh) < 0 || expect_char(&p, ':') < 0 ||
		    parse_digits(&p, 2, &om) < 0)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p != '\0' || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 ||
	    oh > 23 || om > 59)
		return -EINVAL;
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	t -= (time_t)sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -EINVAL;
	*ret_ms = (uint64_t)t * 1000u + (uint64_t)ms;
	return 0;
}

static const struct {
	const char *suffix;
	uint64_t ms;
} duration_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
};

int
time_parse_duration(const char *s, uint64_t *ret_ms)
{
	const char *p = s;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++) {
		if (strcmp(p, duration_units[i].suffix) == 0) {
			if (v > UINT64_MAX / duration_units[i].ms)
				return -ERANGE;
			*ret_ms = v * duration_units[i].ms;
			return 0;
		}
	}
	return -EINVAL;
}
