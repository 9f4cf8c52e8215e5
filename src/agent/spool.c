/* The on-disk spool of a sink: see spool.h for the format and the
 * durability promises. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "spool.h"
#include "util.h"

#define SPOOL_MAGIC       0x4c505344u /* "DSPL" little-endian */
#define SPOOL_HDR         16u
#define SPOOL_MAX_SEGS    4096u
#define SPOOL_ACK_NAME    "ack"
#define SPOOL_MARK_NAME   "delivered"
#define SPOOL_MARK_MAGIC  0x4b4d5344u /* "DSMK" little-endian */
#define SPOOL_MARK_SIZE   (16u + SPOOL_MARK_MAX)
#define SPOOL_SEG_NAMELEN 32

struct segment {
	uint64_t idx;
	uint64_t size;  /* bytes in the file */
	uint64_t end;   /* bytes of valid records (== size unless corrupt) */
	uint64_t count; /* valid records not yet acknowledged */
};

struct spool {
	int dirfd;
	int wfd;         /* the tail segment, O_APPEND; -1 until needed */
	int rfd;         /* segs[0], for reading; -1 until needed */
	int ackfd;       /* the ack file */
	int markfd;      /* the "delivered" marker file; -1 until needed */
	bool defer_sync; /* spool_append leaves the fdatasync to spool_sync */
	bool unsynced;
	uint64_t rfd_idx;
	uint64_t max_bytes;
	struct segment segs[SPOOL_MAX_SEGS]; /* by idx; segs[0] is read, the last the tail */
	size_t n_segs;
	uint64_t next_idx;
	uint64_t roff; /* offset of the first unacknowledged record in segs[0] */
	uint64_t pending, bytes, corrupt;
	bool peeked;
	uint64_t peek_next;
};

static void
put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
get_u64(const unsigned char *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void
seg_name(uint64_t idx, char buf[SPOOL_SEG_NAMELEN])
{
	(void)snprintf(buf, SPOOL_SEG_NAMELEN, "seg-%016" PRIx64, idx);
}

static uint32_t
record_crc(uint32_t len, const void *payload)
{
	unsigned char l[4];

	put_u32(l, len);
	return crc32c(crc32c(0, l, sizeof(l)), payload, len);
}

/* Reads and checks the record at off of fd (file size size). Returns 1 with
 * the payload length in *ret_len (and the payload in *ret when ret is not
 * NULL), 0 when the bytes at off are not a whole valid record, -errno. */
static int
record_read(int fd, uint64_t off, uint64_t size, char **ret, uint32_t *ret_len)
{
	unsigned char hdr[SPOOL_HDR];
	_cleanup_free_ char *buf = NULL;
	uint32_t len;
	ssize_t n;

	if (size - off < SPOOL_HDR)
		return 0;
	n = pread(fd, hdr, sizeof(hdr), (off_t)off);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(hdr) || get_u32(hdr) != SPOOL_MAGIC)
		return 0;
	len = get_u32(hdr + 4);
	if (len > SPOOL_RECORD_MAX || size - off - SPOOL_HDR < len)
		return 0;
	if ((buf = malloc((size_t)len + 1)) == NULL)
		return -ENOMEM;
	n = pread(fd, buf, len, (off_t)(off + SPOOL_HDR));
	if (n < 0)
		return -errno;
	if ((uint32_t)n != len || record_crc(len, buf) != get_u32(hdr + 8))
		return 0;
	buf[len] = '\0';
	*ret_len = len;
	if (ret != NULL)
		*ret = TAKE_PTR(buf);
	return 1;
}

/* Scans a segment from off, counting valid records into seg. */
static int
segment_scan(struct spool *s, struct segment *seg, uint64_t off, bool is_tail)
{
	char name[SPOOL_SEG_NAMELEN];
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint32_t len;
	int r;

	seg_name(seg->idx, name);
	if ((fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	seg->size = (uint64_t)st.st_size;
	seg->count = 0;
	if (off > seg->size)
		off = seg->size;
	while ((r = record_read(fd, off, seg->size, NULL, &len)) == 1) {
		off += SPOOL_HDR + len;
		seg->count++;
	}
	if (r < 0)
		return r;
	seg->end = off;
	if (seg->end < seg->size) {
		s->corrupt++;
		/* A torn write at the tail is cut off so appends continue cleanly. */
		if (is_tail) {
			if (ftruncate(fd, (off_t)seg->end) < 0)
				return -errno;
			seg->size = seg->end;
		}
	}
	s->pending += seg->count;
	return 0;
}

static int
cmp_seg(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int
spool_list_segments(struct spool *s)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd;

	if ((fd = dup(s->dirfd)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t idx;
		char *end;

		if (strncmp(de->d_name, "seg-", 4) != 0 || strlen(de->d_name) != 20)
			continue;
		errno = 0;
		idx = strtoull(de->d_name + 4, &end, 16);
		if (errno != 0 || *end != '\0')
			continue;
		if (s->n_segs >= SPOOL_MAX_SEGS)
			return -EMFILE;
		s->segs[s->n_segs++] = (struct segment){ .idx = idx };
	}
	qsort(s->segs, s->n_segs, sizeof(s->segs[0]), cmp_seg);
	return 0;
}

static int
spool_read_ack(struct spool *s, uint64_t *ret_seg, uint64_t *ret_off)
{
	unsigned char b[20];
	ssize_t n;

	n = pread(s->ackfd, b, sizeof(b), 0);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(b) || crc32c(0, b, 16) != get_u32(b + 16))
		return 0;
	*ret_seg = get_u64(b);
	*ret_off = get_u64(b + 8);
	return 1;
}

static int
spool_write_ack(struct spool *s, uint64_t seg, uint64_t off)
{
	unsigned char b[20];
	ssize_t n;

	put_u64(b, seg);
	put_u64(b + 8, off);
	put_u32(b + 16, crc32c(0, b, 16));
	n = pwrite(s->ackfd, b, sizeof(b), 0);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(b) ? 0 : -EIO;
}

/* Deletes segs[0] (fully acknowledged or unreadable). */
static int
spool_drop_first(struct spool *s)
{
	char name[SPOOL_SEG_NAMELEN];

	seg_name(s->segs[0].idx, name);
	if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	if (s->rfd >= 0 && s->rfd_idx == s->segs[0].idx) {
		close(s->rfd);
		s->rfd = -1;
	}
	if (s->n_segs == 1 && s->wfd >= 0) {
		close(s->wfd);
		s->wfd = -1;
	}
	s->bytes -= s->segs[0].size;
	s->pending -= s->segs[0].count;
	memmove(s->segs, s->segs + 1, (s->n_segs - 1) * sizeof(s->segs[0]));
	s->n_segs--;
	s->roff = 0;
	return 0;
}

static int
spool_load(struct spool *s)
{
	uint64_t ack_seg = 0, ack_off = 0;
	int r;

	if ((r = spool_list_segments(s)) < 0)
		return r;
	if ((r = spool_read_ack(s, &ack_seg, &ack_off)) < 0)
		return r;
	/* Segments before the acknowledged one were delivered: remove them. */
	while (s->n_segs > 0 && r == 1 && s->segs[0].idx < ack_seg) {
		char name[SPOOL_SEG_NAMELEN];

		seg_name(s->segs[0].idx, name);
		if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		memmove(s->segs, s->segs + 1, (s->n_segs - 1) * sizeof(s->segs[0]));
		s->n_segs--;
	}
	s->roff = (r == 1 && s->n_segs > 0 && s->segs[0].idx == ack_seg) ? ack_off : 0;
	s->next_idx = ack_seg + 1;
	for (size_t i = 0; i < s->n_segs; i++) {
		r = segment_scan(s, &s->segs[i], i == 0 ? s->roff : 0, i + 1 == s->n_segs);
		if (r < 0)
			return r;
		s->bytes += s->segs[i].size;
		if (s->segs[i].idx >= s->next_idx)
			s->next_idx = s->segs[i].idx + 1;
	}
	if (s->n_segs > 0 && s->roff > s->segs[0].end)
		s->roff = s->segs[0].end;
	return 0;
}

static int
spool_init(struct spool *s, const char *dir)
{
	if ((s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	s->ackfd =
	    openat(s->dirfd, SPOOL_ACK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->ackfd < 0)
		return -errno;
	return spool_load(s);
}

int
spool_open(const char *dir, uint64_t max_bytes, struct spool **ret)
{
	struct spool *s;
	int r;

	if (max_bytes < SPOOL_HDR + 1)
		return -EINVAL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->dirfd = s->wfd = s->rfd = s->ackfd = s->markfd = -1;
	s->max_bytes = max_bytes;
	if ((r = spool_init(s, dir)) < 0) {
		spool_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

/* Makes sure the tail segment can take reclen more bytes. */
static int
spool_tail_for(struct spool *s, uint64_t reclen)
{
	char name[SPOOL_SEG_NAMELEN];
	struct segment *tail = s->n_segs > 0 ? &s->segs[s->n_segs - 1] : NULL;
	int fd;

	if (tail != NULL && (tail->size == 0 || tail->size + reclen <= SPOOL_SEGMENT_MAX)) {
		if (s->wfd >= 0)
			return 0;
		seg_name(tail->idx, name);
		fd = openat(s->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		s->wfd = fd;
		return 0;
	}
	if (s->n_segs >= SPOOL_MAX_SEGS)
		return -ENOSPC;
	seg_name(s->next_idx, name);
	fd = openat(s->dirfd, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	            0600);
	if (fd < 0)
		return -errno;
	if (s->wfd >= 0)
		close(s->wfd);
	s->wfd = fd;
	if (s->n_segs == 0)
		s->roff = 0;
	s->segs[s->n_segs++] = (struct segment){ .idx = s->next_idx++ };
	/* The new name must survive a power loss as well as the data. */
	(void)fsync(s->dirfd);
	return 0;
}

int
spool_append(struct spool *s, const void *data, size_t len)
{
	_cleanup_free_ unsigned char *buf = NULL;
	uint64_t reclen = SPOOL_HDR + (uint64_t)len;
	struct segment *tail;
	int r;

	if (len > SPOOL_RECORD_MAX)
		return -E2BIG;
	if (s->bytes + reclen > s->max_bytes)
		return -ENOSPC;
	if ((r = spool_tail_for(s, reclen)) < 0)
		return r;
	tail = &s->segs[s->n_segs - 1];
	if ((buf = malloc(reclen)) == NULL)
		return -ENOMEM;
	put_u32(buf, SPOOL_MAGIC);
	put_u32(buf + 4, (uint32_t)len);
	put_u32(buf + 8, record_crc((uint32_t)len, data));
	put_u32(buf + 12, 0);
	memcpy(buf + SPOOL_HDR, data, len);
	if ((r = write_all(s->wfd, buf, reclen)) < 0 || (!s->defer_sync && fdatasync(s->wfd) < 0)) {
		if (r == 0)
			r = -errno;
		/* Cut off whatever part was written so the file stays valid; if
		 * even that fails, the next open cuts the torn record. */
		if (ftruncate(s->wfd, (off_t)tail->size) < 0)
			r = -errno;
		return r;
	}
	s->unsynced = s->defer_sync;
	tail->size += reclen;
	tail->end = tail->size;
	tail->count++;
	s->bytes += reclen;
	s->pending++;
	return 0;
}

static int
spool_rfd(struct spool *s)
{
	char name[SPOOL_SEG_NAMELEN];

	if (s->rfd >= 0 && s->rfd_idx == s->segs[0].idx)
		return s->rfd;
	if (s->rfd >= 0)
		close(s->rfd);
	seg_name(s->segs[0].idx, name);
	if ((s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -errno;
	s->rfd_idx = s->segs[0].idx;
	return s->rfd;
}

int
spool_peek(struct spool *s, char **ret, size_t *ret_len)
{
	while (s->n_segs > 0) {
		struct segment *seg = &s->segs[0];
		char *buf = NULL;
		uint32_t len = 0;
		int fd, r;

		if (s->roff >= seg->end) {
			/* Done with this segment; the tail goes only once it is empty. */
			if (s->n_segs == 1 && seg->end < SPOOL_SEGMENT_MAX && seg->size == 0)
				return 0;
			if ((r = spool_drop_first(s)) < 0)
				return r;
			continue;
		}
		if ((fd = spool_rfd(s)) < 0)
			return fd;
		if ((r = record_read(fd, s->roff, seg->end, &buf, &len)) < 0)
			return r;
		if (r == 0) {
			/* Corrupted since it was opened: the rest of the segment is lost. */
			s->corrupt += seg->count;
			s->pending -= seg->count;
			seg->count = 0;
			seg->end = s->roff;
			continue;
		}
		s->peeked = true;
		s->peek_next = s->roff + SPOOL_HDR + len;
		*ret = buf;
		*ret_len = len;
		return 1;
	}
	return 0;
}

int
spool_ack(struct spool *s)
{
	struct segment *seg;
	int r;

	if (!s->peeked || s->n_segs == 0)
		return -ENOENT;
	s->peeked = false;
	seg = &s->segs[0];
	s->roff = s->peek_next;
	seg->count--;
	s->pending--;
	if ((r = spool_write_ack(s, seg->idx, s->roff)) < 0)
		return r;
	/* Free the space of a fully delivered segment now. */
	if (s->roff >= seg->end)
		return spool_drop_first(s);
	return 0;
}

void
spool_defer_sync(struct spool *s, bool on)
{
	s->defer_sync = on;
}

int
spool_sync(struct spool *s)
{
	if (!s->unsynced || s->wfd < 0)
		return 0;
	if (fdatasync(s->wfd) < 0)
		return -errno;
	s->unsynced = false;
	return 0;
}

static int
spool_mark_fd(struct spool *s, bool create)
{
	if (s->markfd >= 0)
		return s->markfd;
	s->markfd = openat(s->dirfd, SPOOL_MARK_NAME,
	                   O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
	if (s->markfd < 0)
		return -errno;
	if (create)
		(void)fsync(s->dirfd);
	return s->markfd;
}

/* {magic, length, crc32c(length, field), 0} then the NUL-padded field. */
static uint32_t
mark_crc(const unsigned char *b)
{
	return crc32c(crc32c(0, b + 4, 4), b + 16, SPOOL_MARK_MAX);
}

int
spool_mark_read(struct spool *s, char *buf, size_t n)
{
	unsigned char b[SPOOL_MARK_SIZE];
	uint32_t len;
	ssize_t k;
	int fd;

	if ((fd = spool_mark_fd(s, false)) < 0)
		return fd == -ENOENT ? 0 : fd;
	if ((k = pread(fd, b, sizeof(b), 0)) < 0)
		return -errno;
	if (k == 0)
		return 0;
	len = get_u32(b + 4);
	if ((size_t)k != sizeof(b) || get_u32(b) != SPOOL_MARK_MAGIC || len >= SPOOL_MARK_MAX ||
	    mark_crc(b) != get_u32(b + 8) || memchr(b + 16, 0, len))
		return -EBADMSG;
	if (len >= n)
		return -ENOSPC;
	memcpy(buf, b + 16, len);
	buf[len] = '\0';
	return 1;
}

int
spool_mark_write(struct spool *s, const char *mark)
{
	unsigned char b[SPOOL_MARK_SIZE] = { 0 };
	size_t len = strlen(mark);
	ssize_t k;
	int fd;

	if (len >= SPOOL_MARK_MAX)
		return -E2BIG;
	if ((fd = spool_mark_fd(s, true)) < 0)
		return fd;
	put_u32(b, SPOOL_MARK_MAGIC);
	put_u32(b + 4, (uint32_t)len);
	memcpy(b + 16, mark, len);
	put_u32(b + 8, mark_crc(b));
	/* One pwrite of 80 bytes at offset 0: a crash of the process does not
	 * tear it; a power loss may leave an older marker (spool_mark_sync). */
	if ((k = pwrite(fd, b, sizeof(b), 0)) < 0)
		return -errno;
	return (size_t)k == sizeof(b) ? 0 : -EIO;
}

int
spool_mark_sync(struct spool *s)
{
	if (s->markfd < 0)
		return 0;
	return fdatasync(s->markfd) < 0 ? -errno : 0;
}

uint64_t
spool_pending(const struct spool *s)
{
	return s->pending;
}

uint64_t
spool_bytes(const struct spool *s)
{
	return s->bytes;
}

uint64_t
spool_corrupt(const struct spool *s)
{
	return s->corrupt;
}

void
spool_close(struct spool *s)
{
	if (s == NULL)
		return;
	if (s->wfd >= 0)
		close(s->wfd);
	if (s->rfd >= 0)
		close(s->rfd);
	if (s->ackfd >= 0)
		close(s->ackfd);
	if (s->markfd >= 0)
		close(s->markfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s);
}
