/* A small fixed-size buffer for a human-readable error reason, filled by the
 * function that failed and printed once by the caller that has the context
 * (STYLE.md rule 4). */
#ifndef DE_ERRBUF_H
#define DE_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

#define ERRBUF_MAX 512

struct errbuf {
	char msg[ERRBUF_MAX];
};

/* Sets the message (printf-style), replacing any previous one. Accepts a NULL
 * errbuf, in which case it does nothing. */
void errbuf_set(struct errbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to the existing message (e.g. a file name). */
void errbuf_prefix(struct errbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void
errbuf_clear(struct errbuf *err)
{
	if (err != NULL)
		err->msg[0] = '\0';
}

#endif
