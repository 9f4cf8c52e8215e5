/* The store's SQLite VFS: the default one, except that in a -wal file a
 * frame's 24-byte header and the page after it reach the file in one
 * pwrite(2) instead of two.
 *
 * SQLite writes each WAL frame as two calls (walWriteOneFrame(): the header,
 * then the page at the next offset), so a commit of N pages costs 2N system
 * calls; at the small transactions of an exec burst that is most of what a
 * commit costs. Here a write of at most WC_SMALL bytes to a WAL file is held
 * and sent together with the write that follows it when that one starts
 * where it ends; anything else first sends what is held. Nothing else is
 * changed, and nothing is held across a call that could observe the file:
 * the WAL code always follows a frame header with its page, and only after
 * the last page of a commit does it publish the frames in the shared-memory
 * index (a different file). A crash while a header is held is a crash
 * before the frame was written, which the WAL's checksums already cover.
 * The connection's mutex serializes calls on one file (SQLite's rule). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define WC_VFS_NAME "daemoneye-wal-combine"
#define WC_SMALL    32          /* the WAL header (32) or a frame header (24) */
#define WC_MAX_PAGE (64 * 1024) /* SQLite's largest page */
#define WC_BUF      (WC_SMALL + WC_MAX_PAGE)

struct wc_file {
	sqlite3_file base;  /* pMethods: &wc_io, or NULL when the open failed */
	sqlite3_file *real; /* the default VFS's file, right after this struct */
	bool wal;           /* a -wal file: writes are combined */
	int held_len;       /* bytes held in buf, 0..WC_SMALL */
	sqlite3_int64 held_off;
	unsigned char *buf; /* WC_BUF bytes, allocated at the first combine */
};

static sqlite3_vfs *wc_real; /* the default VFS */
static sqlite3_vfs wc_vfs;
static sqlite3_io_methods wc_io;
static pthread_once_t wc_once = PTHREAD_ONCE_INIT;
static int wc_rc;

/* Sends what is held. */
static int
wc_flush(struct wc_file *f)
{
	int n = f->held_len;

	if (n == 0)
		return SQLITE_OK;
	f->held_len = 0;
	return f->real->pMethods->xWrite(f->real, f->buf, n, f->held_off);
}

static int
wc_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wc_file *f = (struct wc_file *)file;
	int rc;

	if (!f->wal)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	if (f->held_len > 0 && off == f->held_off + f->held_len && amt <= WC_MAX_PAGE) {
		memcpy(f->buf + f->held_len, data, (size_t)amt);
		amt += f->held_len;
		off = f->held_off;
		f->held_len = 0;
		return f->real->pMethods->xWrite(f->real, f->buf, amt, off);
	}
	if ((rc = wc_flush(f)) != SQLITE_OK)
		return rc;
	if (amt > WC_SMALL || amt <= 0)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	if (f->buf == NULL && (f->buf = sqlite3_malloc(WC_BUF)) == NULL)
		return f->real->pMethods->xWrite(f->real, data, amt, off);
	memcpy(f->buf, data, (size_t)amt);
	f->held_len = amt;
	f->held_off = off;
	return SQLITE_OK;
}

/* The other methods send what is held, then forward. */
#define WC_FWD(call)                                        \
	do {                                                \
		struct wc_file *f = (struct wc_file *)file; \
		int rc_ = wc_flush(f);                      \
		return rc_ != SQLITE_OK ? rc_ : (call);     \
	} while (0)

static int
wc_close(sqlite3_file *file)
{
	struct wc_file *f = (struct wc_file *)file;
	int rc = wc_flush(f), crc = f->real->pMethods->xClose(f->real);

	sqlite3_free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : crc;
}

static int
wc_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
	WC_FWD(f->real->pMethods->xRead(f->real, data, amt, off));
}

static int
wc_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	WC_FWD(f->real->pMethods->xTruncate(f->real, size));
}

static int
wc_sync(sqlite3_file *file, int flags)
{
	WC_FWD(f->real->pMethods->xSync(f->real, flags));
}

static int
wc_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	WC_FWD(f->real->pMethods->xFileSize(f->real, size));
}

static int
wc_lock(sqlite3_file *file, int level)
{
	WC_FWD(f->real->pMethods->xLock(f->real, level));
}

static int
wc_unlock(sqlite3_file *file, int level)
{
	WC_FWD(f->real->pMethods->xUnlock(f->real, level));
}

static int
wc_check_reserved(sqlite3_file *file, int *out)
{
	WC_FWD(f->real->pMethods->xCheckReservedLock(f->real, out));
}

static int
wc_file_control(sqlite3_file *file, int op, void *arg)
{
	WC_FWD(f->real->pMethods->xFileControl(f->real, op, arg));
}

static int
wc_sector_size(sqlite3_file *file)
{
	struct wc_file *f = (struct wc_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int
wc_device_characteristics(sqlite3_file *file)
{
	struct wc_file *f = (struct wc_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* The unix VFS's files have version 3 methods; a version below would lack
 * these, and SQLite then goes without shared memory or mmap. */
static bool
wc_has(const struct wc_file *f, int version)
{
	return f->real->pMethods->iVersion >= version;
}

static int
wc_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	if (!wc_has((struct wc_file *)file, 2))
		return SQLITE_IOERR;
	WC_FWD(f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp));
}

static int
wc_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	if (!wc_has((struct wc_file *)file, 2))
		return SQLITE_IOERR;
	WC_FWD(f->real->pMethods->xShmLock(f->real, offset, n, flags));
}

static void
wc_shm_barrier(sqlite3_file *file)
{
	struct wc_file *f = (struct wc_file *)file;

	(void)wc_flush(f);
	if (wc_has(f, 2))
		f->real->pMethods->xShmBarrier(f->real);
}

static int
wc_shm_unmap(sqlite3_file *file, int del)
{
	if (!wc_has((struct wc_file *)file, 2))
		return SQLITE_OK;
	WC_FWD(f->real->pMethods->xShmUnmap(f->real, del));
}

static int
wc_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
	if (!wc_has((struct wc_file *)file, 3)) {
		*pp = NULL;
		return SQLITE_OK;
	}
	WC_FWD(f->real->pMethods->xFetch(f->real, off, amt, pp));
}

static int
wc_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	if (!wc_has((struct wc_file *)file, 3))
		return SQLITE_OK;
	WC_FWD(f->real->pMethods->xUnfetch(f->real, off, p));
}

static int
wc_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
	struct wc_file *f = (struct wc_file *)file;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	f->wal = (flags & SQLITE_OPEN_WAL) != 0;
	rc = wc_real->xOpen(wc_real, name, f->real, flags, out_flags);
	/* A file whose open failed has no methods: SQLite will not close it. */
	f->base.pMethods = f->real->pMethods != NULL ? &wc_io : NULL;
	return rc;
}

static void
wc_init(void)
{
	if ((wc_real = sqlite3_vfs_find(NULL)) == NULL || wc_real->iVersion < 2) {
		wc_rc = -ENOSYS;
		return;
	}
	/* The default VFS's methods and app data, a bigger file and our open:
	 * its other methods get this struct and read only what it copied. */
	wc_vfs = *wc_real;
	wc_vfs.szOsFile = (int)sizeof(struct wc_file) + wc_real->szOsFile;
	wc_vfs.zName = WC_VFS_NAME;
	wc_vfs.pNext = NULL;
	wc_vfs.xOpen = wc_open;
	wc_io = (sqlite3_io_methods){
		.iVersion = 3,
		.xClose = wc_close,
		.xRead = wc_read,
		.xWrite = wc_write,
		.xTruncate = wc_truncate,
		.xSync = wc_sync,
		.xFileSize = wc_file_size,
		.xLock = wc_lock,
		.xUnlock = wc_unlock,
		.xCheckReservedLock = wc_check_reserved,
		.xFileControl = wc_file_control,
		.xSectorSize = wc_sector_size,
		.xDeviceCharacteristics = wc_device_characteristics,
		.xShmMap = wc_shm_map,
		.xShmLock = wc_shm_lock,
		.xShmBarrier = wc_shm_barrier,
		.xShmUnmap = wc_shm_unmap,
		.xFetch = wc_fetch,
		.xUnfetch = wc_unfetch,
	};
	wc_rc = sqlite3_vfs_register(&wc_vfs, 0) == SQLITE_OK ? 0 : -EIO;
}

int
store_vfs_name(const char **ret)
{
	(void)pthread_once(&wc_once, wc_init);
	if (wc_rc < 0)
		return wc_rc;
	*ret = WC_VFS_NAME;
	return 0;
}
