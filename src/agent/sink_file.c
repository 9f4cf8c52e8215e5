/* The file sink: one alert per line (JSON lines by default), appended with a
 * single write(2) per alert on an O_APPEND descriptor, rotated by size:
 * path -> path.1 -> ... -> path.<max_files>, the oldest removed. A file moved
 * or removed from outside (logrotate) is noticed before the next line, which
 * goes to a new file at path.
 *
 * Durability: a line is in the kernel when deliver() returns (it survives a
 * crash of the agent); it is not fsync'ed per alert, which would put a disk
 * flush on every alert's latency. Rotation fsyncs the file it closes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "sink.h"
#include "util.h"

#define FILE_MAX_ROTATED 1000u

struct sink_file {
	char *path;
	enum sink_format format;
	uint64_t max_bytes;
	uint32_t max_files;
	int fd;
	uint64_t size;
	dev_t dev; /* of the open file, to notice an outside rotation */
	ino_t ino;
};

/* Regular-file writes do not wait on a peer: nothing to abort. */
static void
file_set_abort(void *state, const atomic_bool *abort)
{
	(void)state;
	(void)abort;
}

static int
file_reopen(struct sink_file *f)
{
	struct stat st;
	int fd;

	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
	fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

/* True when path no longer names the open file: logrotate (or an operator)
 * moved or removed it, and the next line belongs in a new file. */
static bool
file_moved(const struct sink_file *f)
{
	struct stat st;

	if (stat(f->path, &st) < 0)
		return true;
	return st.st_dev != f->dev || st.st_ino != f->ino;
}

static int
rotated_name(const char *path, uint32_t i, char *buf, size_t n)
{
	int k = snprintf(buf, n, "%s.%u", path, i);

	return (k < 0 || (size_t)k >= n) ? -ENAMETOOLONG : 0;
}

/* Shifts path.i to path.i+1 (dropping the last) and path to path.1. */
static int
file_rotate(struct sink_file *f)
{
	char from[PATH_MAX], to[PATH_MAX];
	int r;

	if (f->fd >= 0)
		(void)fsync(f->fd);
	if (f->max_files == 0) {
		if (unlink(f->path) < 0 && errno != ENOENT)
			return -errno;
		return file_reopen(f);
	}
	if ((r = rotated_name(f->path, f->max_files, to, sizeof(to))) < 0)
		return r;
	if (unlink(to) < 0 && errno != ENOENT)
		return -errno;
	for (uint32_t i = f->max_files; i > 1; i--) {
		if ((r = rotated_name(f->path, i - 1, from, sizeof(from))) < 0 ||
		    (r = rotated_name(f->path, i, to, sizeof(to))) < 0)
			return r;
		if (rename(from, to) < 0 && errno != ENOENT)
			return -errno;
	}
	if ((r = rotated_name(f->path, 1, to, sizeof(to))) < 0)
		return r;
	if (rename(f->path, to) < 0 && errno != ENOENT)
		return -errno;
	return file_reopen(f);
}

static void
file_close(void *state)
{
	struct sink_file *f = state;

	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f);
}

static int
file_open(const struct sink_config *sc, void **ret, struct errbuf *err)
{
	struct sink_file *f;
	char probe[PATH_MAX];

	if (isempty(sc->path)) {
		errbuf_set(err, "file sink needs a path");
		return -EINVAL;
	}
	if (sc->max_files > FILE_MAX_ROTATED) {
		errbuf_set(err, "file sink: max_files %u is over %u", sc->max_files,
		           FILE_MAX_ROTATED);
		return -EINVAL;
	}
	if (rotated_name(sc->path, sc->max_files, probe, sizeof(probe)) < 0) {
		errbuf_set(err, "file sink: path too long");
		return -EINVAL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->path = strdup(sc->path)) == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->fd = -1;
	f->format = sc->format;
	f->max_bytes = sc->max_bytes ? sc->max_bytes : 64ull * 1024 * 1024;
	f->max_files = sc->max_files;
	/* Opened lazily by the worker: a missing directory is a delivery
	 * failure (spooled, retried), not a reason to refuse to start. */
	*ret = f;
	return 0;
}

static int
file_deliver(void *state, const char *json, size_t len, struct errbuf *err)
{
	struct sink_file *f = state;
	_cleanup_free_ char *line = NULL;
	size_t n;
	int r;

	if ((r = sink_format_line(f->format, json, len, false, &line, &n)) < 0) {
		errbuf_set(err, "cannot format alert: %s", strerror(-r));
		return r == -EINVAL ? SINK_REJECTED : r;
	}
	if ((f->fd < 0 || file_moved(f)) && (r = file_reopen(f)) < 0) {
		errbuf_set(err, "open %s: %s", f->path, strerror(-r));
		return r;
	}
	if (f->size > 0 && f->size + n > f->max_bytes && (r = file_rotate(f)) < 0) {
		errbuf_set(err, "rotate %s: %s", f->path, strerror(-r));
		return r;
	}
	if (f->size == 0 && f->format == SINK_FORMAT_CSV) {
		if ((r = write_all(f->fd, sink_csv_header, strlen(sink_csv_header))) < 0)
			goto fail;
		f->size += strlen(sink_csv_header);
	}
	if ((r = write_all(f->fd, line, n)) < 0)
		goto fail;
	f->size += n;
	return 0;
fail:
	errbuf_set(err, "write %s: %s", f->path, strerror(-r));
	/* Reopen next time: the file may have been removed or the disk fixed. */
	close(f->fd);
	f->fd = -1;
	return r;
}

const struct sink_ops sink_file_ops = {
	.type = SINK_FILE,
	.open = file_open,
	.deliver = file_deliver,
	.close = file_close,
	.set_abort = file_set_abort,
};
