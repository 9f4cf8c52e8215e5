#include "errbuf.h"

#include <stdio.h>
#include <string.h>

void
errbuf_set(struct errbuf *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void
errbuf_prefix(struct errbuf *err, const char *fmt, ...)
{
	char prefix[ERRBUF_MAX], old[ERRBUF_MAX];
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation of an over-long reason is acceptable; the start matters most. */
	if (snprintf(err->msg, sizeof(err->msg), old[0] ? "%s: %s" : "%s%s", prefix, old) < 0)
		err->msg[0] = '\0';
}
