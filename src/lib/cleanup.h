/* Scope-bound cleanup for locals, in the style of systemd's cleanup headers.
 *
 *	_cleanup_free_ char *s = NULL;          free(s) at scope exit
 *	_cleanup_close_ int fd = -1;            close(fd) when fd >= 0
 *	_cleanup_fclose_ FILE *f = NULL;        fclose(f) when non-NULL
 *	_cleanup_(foo_freep) struct foo *x;     foo_freep(&x)
 *	return TAKE_PTR(x);                     hand ownership out, leave NULL behind
 *
 * Destructors used with _cleanup_ must accept NULL. */
#ifndef DE_CLEANUP_H
#define DE_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void
freep(void *p)
{
	free(*(void **)p);
}

static inline void
closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void
fclosep(FILE **f)
{
	if (*f != NULL) {
		int saved = errno;
		fclose(*f);
		errno = saved;
	}
}

static inline void
closedirp(DIR **d)
{
	if (*d != NULL)
		closedir(*d);
}

#define _cleanup_free_     _cleanup_(freep)
#define _cleanup_close_    _cleanup_(closep)
#define _cleanup_fclose_   _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Returns the pointer and leaves NULL in its place, so the cleanup does nothing. */
#define TAKE_PTR(p)                        \
	({                                 \
		__typeof__(p) _ptr_ = (p); \
		(p) = NULL;                \
		_ptr_;                     \
	})

/* Returns the fd and leaves -1 in its place. */
#define TAKE_FD(fd)              \
	({                       \
		int _fd_ = (fd); \
		(fd) = -1;       \
		_fd_;            \
	})

/* Defines name##p(type **) calling func on a non-NULL pointer. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
	static inline void func##p(type *p)     \
	{                                       \
		if (*p)                         \
			func(*p);               \
	}

#endif
