/* procmond's write-ahead log: see wal.h. */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "log.h"
#include "util.h"

#define WAL_PREFIX "procmond-"
#define WAL_SUFFIX ".wal"
/* One read of the cursor: a frame's worth (publish.c's BATCH_MAX_BYTES). The
 * buffer stays resident, so it is not made larger than a frame needs. */
#define WAL_READ_CHUNK (32 * 1024)
/* Appends gather here and reach the file in one write(2) (wal_flush). */
#define WAL_PEND_MAX (32 * 1024)

struct wal_file {
	uint32_t index;
	uint64_t first_seq; /* 0: no records */
	uint64_t last_seq;
	uint64_t size;
};

struct wal_cursor {
	int fd;
	uint32_t index; /* file the fd belongs to */
	uint64_t off;   /* next record's offset in that file */
	uint64_t next_seq;
	uint8_t *buf;
	size_t buf_len;
	uint64_t buf_off; /* file offset of buf[0] */
};

struct wal {
	int dirfd;
	int lockfd;
	int fd; /* append fd of files[n_files - 1] */
	uint64_t rotate_bytes;
	struct wal_file *files;
	size_t n_files, cap_files;
	uint64_t next_seq;
	uint64_t acked_seq;
	uint64_t unsynced;
	uint64_t corrupt_bytes;
	uint32_t corrupt_files;
	struct wal_cursor cur;
	uint8_t *pend; /* WAL_PEND_MAX bytes of whole records not yet written */
	size_t pend_len;
	uint64_t pend_seq; /* the first of them */
	uint64_t pend_n;
};

static void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t
get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | ((uint64_t)get_le32(p + 4) << 32);
}

/* CRC over seq (8 bytes), len (4 bytes) and the payload. */
static uint32_t
record_crc(const uint8_t *hdr, const void *payload, size_t len)
{
	uint32_t crc = crc32c(0, hdr + 8, 8);

	crc = crc32c(crc, hdr, 4);
	return len ? crc32c(crc, payload, len) : crc;
}

void
wal_record_header(uint64_t seq, const void *payload, size_t len, uint8_t out[WAL_RECORD_HEADER])
{
	put_le32(out, (uint32_t)len);
	put_le64(out + 8, seq);
	put_le32(out + 4, record_crc(out, payload, len));
}

/* Checks one record at buf (n bytes available). Returns its total size, or 0
 * when it is incomplete or invalid. */
static size_t
record_check(const uint8_t *buf, size_t n, uint64_t prev_seq, uint64_t *ret_seq)
{
	uint32_t len;
	uint64_t seq;

	if (n < WAL_RECORD_HEADER)
		return 0;
	len = get_le32(buf);
	seq = get_le64(buf + 8);
	if (len > WAL_RECORD_MAX || n - WAL_RECORD_HEADER < len || seq <= prev_seq)
		return 0;
	if (record_crc(buf, buf + WAL_RECORD_HEADER, len) != get_le32(buf + 4))
		return 0;
	*ret_seq = seq;
	return WAL_RECORD_HEADER + len;
}

size_t
wal_parse_buffer(const uint8_t *buf, size_t n, uint64_t prev_seq, wal_record_cb cb, void *ctx,
                 uint64_t *ret_last_seq)
{
	size_t off = 0, sz;
	uint64_t seq;

	while ((sz = record_check(buf + off, n - off, prev_seq, &seq)) > 0) {
		if (cb && cb(ctx, seq, buf + off + WAL_RECORD_HEADER, sz - WAL_RECORD_HEADER) != 0)
			break;
		prev_seq = seq;
		off += sz;
	}
	*ret_last_seq = prev_seq;
	return off;
}

static int
file_name(uint32_t index, char *buf, size_t n)
{
	int r = snprintf(buf, n, WAL_PREFIX "%05u" WAL_SUFFIX, index);

	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static int
parse_file_name(const char *name, uint32_t *ret)
{
	size_t len = strlen(name), pl = strlen(WAL_PREFIX), sl = strlen(WAL_SUFFIX);
	char digits[16];
	uint64_t v;

	if (len <= pl + sl || len - pl - sl >= sizeof(digits) ||
	    strncmp(name, WAL_PREFIX, pl) != 0 || !streq(name + len - sl, WAL_SUFFIX))
		return -EINVAL;
	memcpy(digits, name + pl, len - pl - sl);
	digits[len - pl - sl] = '\0';
	for (const char *c = digits; *c; c++)
		if (*c < '0' || *c > '9')
			return -EINVAL;
	if (parse_u64(digits, &v) < 0 || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int
files_push(struct wal *w, const struct wal_file *f)
{
	if (w->n_files == w->cap_files) {
		size_t ncap = w->cap_files ? w->cap_files * 2 : 16;
		struct wal_file *nf = reallocarray(w->files, ncap, sizeof(*nf));

		if (nf == NULL)
			return -ENOMEM;
		w->files = nf;
		w->cap_files = ncap;
	}
	w->files[w->n_files++] = *f;
	return 0;
}

static int
cmp_file(const void *a, const void *b)
{
	const struct wal_file *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

static int
list_files(struct wal *w)
{
	int fd = openat(w->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		struct wal_file f = { 0 };
		int rc;

		if (parse_file_name(de->d_name, &f.index) < 0)
			continue;
		if (w->n_files >= WAL_MAX_FILES)
			return -EMFILE;
		if ((rc = files_push(w, &f)) < 0)
			return rc;
	}
	if (w->n_files > 0)
		qsort(w->files, w->n_files, sizeof(*w->files), cmp_file);
	return 0;
}

static int
scan_cb(void *ctx, uint64_t seq, const uint8_t *payload, size_t len)
{
	struct wal_file *f = ctx;

	(void)payload;
	(void)len;
	if (f->first_seq == 0)
		f->first_seq = seq;
	return 0;
}

/* Reads one file, sets its sequence range and valid size; truncates an
 * invalid tail when truncate is set. */
static int
scan_file(struct wal *w, struct wal_file *f, uint64_t prev_seq, bool truncate)
{
	char name[64];
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint8_t *map = NULL;
	size_t valid = 0;
	uint64_t last = prev_seq;
	int rc;

	if ((rc = file_name(f->index, name, sizeof(name))) < 0)
		return rc;
	if ((fd = openat(w->dirfd, name, (truncate ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW)) <
	    0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED)
			return -errno;
		valid = wal_parse_buffer(map, (size_t)st.st_size, prev_seq, scan_cb, f, &last);
		munmap(map, (size_t)st.st_size);
	}
	f->last_seq = f->first_seq ? last : 0;
	f->size = valid;
	if (valid < (uint64_t)st.st_size) {
		w->corrupt_bytes += (uint64_t)st.st_size - valid;
		w->corrupt_files++;
		if (truncate && ftruncate(fd, (off_t)valid) < 0)
			return -errno;
	}
	return 0;
}

static int
open_append(struct wal *w, uint32_t index, bool create)
{
	char name[64];
	int fd, rc;

	if ((rc = file_name(index, name, sizeof(name))) < 0)
		return rc;
	fd = openat(w->dirfd, name,
	            O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0),
	            0600);
	if (fd < 0)
		return -errno;
	if (create && fsync(w->dirfd) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = fd;
	return 0;
}

static int
open_lock(struct wal *w)
{
	w->lockfd =
	    openat(w->dirfd, "procmond.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->lockfd < 0)
		return -errno;
	if (flock(w->lockfd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

static int
wal_load(struct wal *w)
{
	uint64_t prev = 0;
	int rc;

	if ((rc = list_files(w)) < 0)
		return rc;
	for (size_t i = 0; i < w->n_files; i++) {
		if ((rc = scan_file(w, &w->files[i], prev, i + 1 == w->n_files)) < 0)
			return rc;
		if (w->files[i].last_seq > prev)
			prev = w->files[i].last_seq;
	}
	w->next_seq = prev + 1;
	/* Everything before the oldest record held was acknowledged earlier. */
	for (size_t i = 0; i < w->n_files; i++)
		if (w->files[i].first_seq) {
			w->acked_seq = w->files[i].first_seq - 1;
			break;
		}
	if (w->n_files == 0)
		return 0;
	return open_append(w, w->files[w->n_files - 1].index, false);
}

void
wal_close(struct wal *w)
{
	if (w == NULL)
		return;
	(void)wal_flush(w);
	free(w->pend);
	if (w->fd >= 0) {
		(void)fdatasync(w->fd);
		close(w->fd);
	}
	if (w->cur.fd >= 0)
		close(w->cur.fd);
	free(w->cur.buf);
	if (w->lockfd >= 0)
		close(w->lockfd);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->files);
	free(w);
}

static void
wal_closep(struct wal **w)
{
	wal_close(*w);
}

int
wal_open(const char *dir, uint64_t rotate_bytes, struct wal **ret)
{
	_cleanup_(wal_closep) struct wal *w = NULL;
	_cleanup_close_ int dirfd = -1;
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	w->lockfd = w->fd = w->cur.fd = -1;
	w->dirfd = TAKE_FD(dirfd);
	w->rotate_bytes = rotate_bytes ? rotate_bytes : WAL_ROTATE_DEFAULT;
	w->next_seq = 1;
	if ((rc = open_lock(w)) < 0)
		return rc;
	if ((rc = wal_load(w)) < 0)
		return rc;
	*ret = TAKE_PTR(w);
	return 0;
}

uint64_t
wal_next_seq(const struct wal *w)
{
	return w->next_seq;
}

void
wal_bump_seq(struct wal *w, uint64_t seq)
{
	if (seq > w->next_seq)
		w->next_seq = seq;
}

static int
rotate(struct wal *w)
{
	struct wal_file f = { 0 };
	int rc;

	if ((rc = wal_sync(w)) < 0)
		return rc;
	f.index = w->n_files ? w->files[w->n_files - 1].index + 1 : 1;
	if ((rc = open_append(w, f.index, true)) < 0)
		return rc;
	return files_push(w, &f);
}

int
wal_flush(struct wal *w)
{
	struct wal_file *f;
	uint64_t written;
	int rc;

	if (w->pend_len == 0)
		return 0;
	f = &w->files[w->n_files - 1];
	written = f->size - w->pend_len;
	if ((rc = write_all(w->fd, w->pend, w->pend_len)) == 0) {
		w->pend_len = 0;
		w->pend_n = 0;
		return 0;
	}
	/* Leave no half record behind, and forget the records that did not
	 * make it: their sequences are given out again. */
	if (ftruncate(w->fd, (off_t)written) < 0)
		log_debug("wal: cannot cut a short write: %s", strerror(errno));
	f->size = written;
	if (f->first_seq >= w->pend_seq)
		f->first_seq = 0;
	f->last_seq = f->first_seq ? w->pend_seq - 1 : 0;
	w->next_seq = w->pend_seq;
	w->unsynced -= w->pend_n < w->unsynced ? w->pend_n : w->unsynced;
	w->pend_len = 0;
	w->pend_n = 0;
	return rc;
}

/* Writes one record straight to the file (one too big for the buffer). */
static int
append_direct(struct wal *w, struct wal_file *f, const uint8_t *hdr, const void *payload,
              size_t len)
{
	struct iovec iov[2];
	size_t total = WAL_RECORD_HEADER + len;
	ssize_t n;
	int rc;

	iov[0] = (struct iovec){ .iov_base = (void *)hdr, .iov_len = WAL_RECORD_HEADER };
	iov[1] = (struct iovec){ .iov_base = (void *)payload, .iov_len = len };
	do
		n = writev(w->fd, iov, len ? 2 : 1);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != total) {
		rc = n < 0 ? -errno : -EIO;
		/* Leave no half record behind: the next append must follow a good one. */
		if (ftruncate(w->fd, (off_t)f->size) < 0)
			log_debug("wal: cannot cut a short write: %s", strerror(errno));
		return rc;
	}
	return 0;
}

int
wal_append(struct wal *w, uint64_t seq, const void *payload, size_t len)
{
	uint8_t hdr[WAL_RECORD_HEADER];
	struct wal_file *f;
	size_t total = WAL_RECORD_HEADER + len;
	int rc;

	if (seq != w->next_seq || len > WAL_RECORD_MAX)
		return -EINVAL;
	if (w->n_files == 0 || (w->files[w->n_files - 1].size > 0 &&
	                        w->files[w->n_files - 1].size + total > w->rotate_bytes))
		if ((rc = rotate(w)) < 0)
			return rc;
	if (w->pend == NULL && (w->pend = malloc(WAL_PEND_MAX)) == NULL)
		return -ENOMEM;
	if (w->pend_len + total > WAL_PEND_MAX && (rc = wal_flush(w)) < 0)
		return rc;
	f = &w->files[w->n_files - 1];
	wal_record_header(seq, payload, len, hdr);
	if (total > WAL_PEND_MAX) {
		if ((rc = append_direct(w, f, hdr, payload, len)) < 0)
			return rc;
	} else {
		if (w->pend_len == 0)
			w->pend_seq = seq;
		memcpy(w->pend + w->pend_len, hdr, sizeof(hdr));
		if (len > 0)
			memcpy(w->pend + w->pend_len + sizeof(hdr), payload, len);
		w->pend_len += total;
		w->pend_n++;
	}
	if (f->first_seq == 0)
		f->first_seq = seq;
	f->last_seq = seq;
	f->size += total;
	w->next_seq = seq + 1;
	w->unsynced++;
	return 0;
}

int
wal_sync(struct wal *w)
{
	int rc;

	if ((rc = wal_flush(w)) < 0)
		return rc;
	if (w->unsynced == 0 || w->fd < 0)
		return 0;
	if (fdatasync(w->fd) < 0)
		return -errno;
	w->unsynced = 0;
	return 0;
}

static void
cursor_reset(struct wal_cursor *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->index = 0;
	c->off = 0;
	c->next_seq = 0;
	c->buf_len = 0;
	c->buf_off = 0;
}

int
wal_sync_begin(struct wal *w, int *ret_fd, uint64_t *ret_seq)
{
	int fd, rc;

	if ((rc = wal_flush(w)) < 0)
		return rc;
	if (w->unsynced == 0 || w->fd < 0)
		return 0;
	if ((fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	*ret_fd = fd;
	*ret_seq = w->next_seq - 1;
	return 1;
}

void
wal_sync_done(struct wal *w, uint64_t seq)
{
	if (seq == w->next_seq - 1)
		w->unsynced = 0;
}

int
wal_ack(struct wal *w, uint64_t seq)
{
	size_t keep = 0;
	int deleted = 0;

	if (seq > w->acked_seq)
		w->acked_seq = seq;
	for (size_t i = 0; i < w->n_files; i++) {
		struct wal_file *f = &w->files[i];
		char name[64];

		if (i + 1 < w->n_files && f->last_seq <= w->acked_seq &&
		    file_name(f->index, name, sizeof(name)) == 0) {
			if (unlinkat(w->dirfd, name, 0) < 0 && errno != ENOENT)
				return -errno;
			if (w->cur.fd >= 0 && w->cur.index == f->index)
				cursor_reset(&w->cur);
			deleted++;
			continue;
		}
		w->files[keep++] = *f;
	}
	w->n_files = keep;
	return deleted;
}

static struct wal_file *
find_file(struct wal *w, uint32_t index)
{
	for (size_t i = 0; i < w->n_files; i++)
		if (w->files[i].index == index)
			return &w->files[i];
	return NULL;
}

/* Positions the cursor at the start of the first file that may hold from_seq. */
static int
cursor_seek(struct wal *w, uint64_t from_seq)
{
	struct wal_cursor *c = &w->cur;
	char name[64];
	int rc;

	cursor_reset(c);
	for (size_t i = 0; i < w->n_files; i++) {
		if (w->files[i].first_seq == 0 || w->files[i].last_seq < from_seq)
			continue;
		if ((rc = file_name(w->files[i].index, name, sizeof(name))) < 0)
			return rc;
		if ((c->fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
			return -errno;
		c->index = w->files[i].index;
		c->next_seq = from_seq;
		return 1;
	}
	return 0;
}

/* Makes buf cover [off, off + need) of the cursor's file. */
static int
cursor_fill(struct wal_cursor *c, uint64_t off, size_t need, uint64_t file_size)
{
	size_t want = need > WAL_READ_CHUNK ? need : WAL_READ_CHUNK;
	size_t got = 0;

	if (off >= c->buf_off && off + need <= c->buf_off + c->buf_len)
		return 0;
	if (off + want > file_size)
		want = (size_t)(file_size - off);
	if (want < need)
		return -ENODATA;
	if (c->buf == NULL || want > WAL_READ_CHUNK) {
		uint8_t *nb = realloc(c->buf, want > WAL_READ_CHUNK ? want : WAL_READ_CHUNK);

		if (nb == NULL)
			return -ENOMEM;
		c->buf = nb;
	}
	while (got < want) {
		ssize_t n = pread(c->fd, c->buf + got, want - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -ENODATA;
		got += (size_t)n;
	}
	c->buf_off = off;
	c->buf_len = got;
	return 0;
}

/* Moves the cursor to the file after its current one. Returns 1, or 0 at the end. */
static int
cursor_next_file(struct wal *w)
{
	struct wal_cursor *c = &w->cur;
	uint64_t seq = c->next_seq;

	for (size_t i = 0; i < w->n_files; i++)
		if (w->files[i].index > c->index && w->files[i].first_seq) {
			char name[64];
			int rc;

			if ((rc = file_name(w->files[i].index, name, sizeof(name))) < 0)
				return rc;
			cursor_reset(c);
			if ((c->fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
				return -errno;
			c->index = w->files[i].index;
			c->next_seq = seq;
			return 1;
		}
	return 0;
}

int
wal_read(struct wal *w, uint64_t from_seq, size_t max_records, size_t max_bytes, wal_record_cb cb,
         void *ctx)
{
	struct wal_cursor *c = &w->cur;
	size_t delivered = 0, bytes = 0;
	int rc;

	if ((rc = wal_flush(w)) < 0)
		return rc;
	if (c->fd < 0 || c->next_seq != from_seq) {
		if ((rc = cursor_seek(w, from_seq)) <= 0)
			return rc;
	}
	while (delivered < max_records && bytes < max_bytes) {
		struct wal_file *f = find_file(w, c->index);
		const uint8_t *rec;
		uint64_t seq;
		uint32_t len;
		size_t sz;

		if (f == NULL || c->off >= f->size) {
			if (f != NULL && f->index == w->files[w->n_files - 1].index)
				break; /* the end of the newest file: nothing more yet */
			if ((rc = cursor_next_file(w)) <= 0)
				return rc < 0 ? rc : (int)delivered;
			continue;
		}
		if ((rc = cursor_fill(c, c->off, WAL_RECORD_HEADER, f->size)) < 0)
			return rc;
		len = get_le32(c->buf + (c->off - c->buf_off));
		if (len > WAL_RECORD_MAX)
			return -EBADMSG;
		if ((rc = cursor_fill(c, c->off, WAL_RECORD_HEADER + len, f->size)) < 0)
			return rc;
		rec = c->buf + (c->off - c->buf_off);
		if ((sz = record_check(rec, WAL_RECORD_HEADER + len, 0, &seq)) == 0)
			return -EBADMSG; /* changed on disk since it was scanned */
		if (seq < from_seq) {
			c->off += sz;
			continue;
		}
		/* A callback that stops leaves the cursor on this record. */
		c->next_seq = seq;
		if ((rc = cb(ctx, seq, rec + WAL_RECORD_HEADER, len)) != 0)
			return rc;
		c->off += sz;
		c->next_seq = seq + 1;
		from_seq = seq + 1;
		delivered++;
		bytes += len;
	}
	return (int)delivered;
}

void
wal_get_stats(const struct wal *w, struct wal_stats *ret)
{
	struct wal_stats s = {
		.last_seq = w->next_seq - 1,
		.acked_seq = w->acked_seq,
		.files = (uint32_t)w->n_files,
		.corrupt_bytes = w->corrupt_bytes,
		.corrupt_files = w->corrupt_files,
		.unsynced = w->unsynced,
	};

	for (size_t i = 0; i < w->n_files; i++) {
		if (s.first_seq == 0 && w->files[i].first_seq)
			s.first_seq = w->files[i].first_seq;
		s.bytes += w->files[i].size;
	}
	*ret = s;
}
