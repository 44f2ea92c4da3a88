/* SPDX-License-Identifier: ISC */
/* A SQLite VFS shim for the daemon's writer connection: it gathers the WAL writes of a
 * transaction into one buffer and hands them to the real VFS as one write when SQLite
 * syncs the WAL at COMMIT (synchronous = FULL). SQLite writes every WAL frame as two
 * writes (its 24-byte header, then the page), and on a store whose indexes take random
 * keys (message ids) a batch of webhooks writes some 60 frames: some 120 write system
 * calls per COMMIT, about half the writer thread's time, become a few.
 *
 * Why it is safe: a frame is part of the store only once the WAL index (shared memory)
 * says so, and with synchronous = FULL SQLite updates that index only after the xSync
 * of the WAL, which first writes out the buffer here. A crash before that loses frames
 * no one was told of, as a crash between SQLite's own writes would. Any read, size,
 * truncation, file control or close of the WAL first writes out what is buffered, so
 * the connection always reads back what it wrote. Other files (the database, its
 * journal) go straight to the real VFS, in the same memory. The shim is used only with
 * synchronous = FULL: with NORMAL, SQLite does not sync the WAL at COMMIT. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

/* Bytes gathered before they are written out anyway: below 128 KiB, because SQLite's unix
 * VFS masks the length of one write to 17 bits (a write of exactly 128 KiB would write
 * nothing and fail as "disk full"). 31 frames of 4 KiB pages. */
#define WALBUF_CAP (128 * 1024 - 1)

struct walbuf_file {
	sqlite3_file base;
	sqlite3_file *real; /* the real VFS's file, right after this struct */
	char *buf;
	sqlite3_int64 off; /* file offset of buf[0] */
	int len;
};

static sqlite3_vfs walbuf_vfs;

static sqlite3_vfs *
walbuf_root(void)
{
	return walbuf_vfs.pAppData;
}

/* Writes out what is buffered. On an error the bytes are dropped: the error fails the
 * transaction they belong to, and SQLite disregards the frames of a failed one. */
static int
walbuf_flush(struct walbuf_file *f)
{
	int n = f->len;

	if (n == 0)
		return SQLITE_OK;
	f->len = 0;
	return f->real->pMethods->xWrite(f->real, f->buf, n, f->off);
}

static int
walbuf_close(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f), rc2 = f->real->pMethods->xClose(f->real);

	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int
walbuf_read(sqlite3_file *file, void *out, int n, sqlite3_int64 off)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, n, off);
}

/* Appends to the buffer when the write continues it; otherwise writes out the buffer
 * and starts a new one at this offset (or writes directly what would not fit). */
static int
walbuf_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 off)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc;

	if (f->len > 0 && (off != f->off + f->len || f->len + n > WALBUF_CAP) &&
	    (rc = walbuf_flush(f)) != SQLITE_OK)
		return rc;
	if (n > WALBUF_CAP)
		return f->real->pMethods->xWrite(f->real, data, n, off);
	if (f->buf == NULL && (f->buf = malloc(WALBUF_CAP)) == NULL)
		return SQLITE_NOMEM;
	if (f->len == 0)
		f->off = off;
	memcpy(f->buf + f->len, data, (size_t)n);
	f->len += n;
	return SQLITE_OK;
}

static int
walbuf_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int
walbuf_sync(sqlite3_file *file, int flags)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int
walbuf_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int
walbuf_lock(sqlite3_file *file, int level)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xLock(f->real, level);
}

static int
walbuf_unlock(sqlite3_file *file, int level)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xUnlock(f->real, level);
}

static int
walbuf_reserved(sqlite3_file *file, int *out)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int
walbuf_control(sqlite3_file *file, int op, void *arg)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	int rc = walbuf_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int
walbuf_sector(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int
walbuf_device(sqlite3_file *file)
{
	struct walbuf_file *f = (struct walbuf_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* Version 1: SQLite maps no shared memory and no pages of a WAL file. */
static const sqlite3_io_methods walbuf_methods = {
	.iVersion = 1,
	.xClose = walbuf_close,
	.xRead = walbuf_read,
	.xWrite = walbuf_write,
	.xTruncate = walbuf_truncate,
	.xSync = walbuf_sync,
	.xFileSize = walbuf_size,
	.xLock = walbuf_lock,
	.xUnlock = walbuf_unlock,
	.xCheckReservedLock = walbuf_reserved,
	.xFileControl = walbuf_control,
	.xSectorSize = walbuf_sector,
	.xDeviceCharacteristics = walbuf_device,
};

/* A WAL file gets the buffer; any other file is the real VFS's own, in the same memory
 * (this VFS's szOsFile is larger than the real one's). */
static int
walbuf_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outflags)
{
	struct walbuf_file *f = (struct walbuf_file *)file;
	sqlite3_vfs *root = walbuf_root();
	int rc;

	(void)vfs;
	if ((flags & SQLITE_OPEN_WAL) == 0)
		return root->xOpen(root, name, file, flags, outflags);
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)&f[1];
	rc = root->xOpen(root, name, f->real, flags, outflags);
	f->base.pMethods = f->real->pMethods != NULL ? &walbuf_methods : NULL;
	return rc;
}

static int
walbuf_delete(sqlite3_vfs *vfs, const char *name, int syncdir)
{
	(void)vfs;
	return walbuf_root()->xDelete(walbuf_root(), name, syncdir);
}

static int
walbuf_access(sqlite3_vfs *vfs, const char *name, int what, int *out)
{
	(void)vfs;
	return walbuf_root()->xAccess(walbuf_root(), name, what, out);
}

static int
walbuf_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return walbuf_root()->xFullPathname(walbuf_root(), name, n, out);
}

static int
walbuf_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return walbuf_root()->xRandomness(walbuf_root(), n, out);
}

static int
walbuf_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return walbuf_root()->xSleep(walbuf_root(), us);
}

static int
walbuf_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return walbuf_root()->xCurrentTime(walbuf_root(), out);
}

static int
walbuf_lasterror(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return walbuf_root()->xGetLastError(walbuf_root(), n, out);
}

static int
walbuf_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return walbuf_root()->xCurrentTimeInt64(walbuf_root(), out);
}

static void *
walbuf_dlopen(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return walbuf_root()->xDlOpen(walbuf_root(), name);
}

static void
walbuf_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	walbuf_root()->xDlError(walbuf_root(), n, out);
}

static void (*walbuf_dlsym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
	(void)vfs;
	return walbuf_root()->xDlSym(walbuf_root(), lib, sym);
}

static void
walbuf_dlclose(sqlite3_vfs *vfs, void *lib)
{
	(void)vfs;
	walbuf_root()->xDlClose(walbuf_root(), lib);
}

/* The name of the shim's VFS, registered (not as the default) on the first call; NULL,
 * so that the caller opens with the default VFS, when it cannot be. */
const char *
store_walbuf_vfs(void)
{
	static int state; /* 0 not tried, 1 registered, -1 failed */
	sqlite3_vfs *root;

	if (state == 0) {
		state = -1;
		if ((root = sqlite3_vfs_find(NULL)) != NULL && root->iVersion >= 2 &&
		    root->xCurrentTimeInt64 != NULL) {
			walbuf_vfs = (sqlite3_vfs){
				.iVersion = 2,
				.szOsFile = (int)sizeof(struct walbuf_file) + root->szOsFile,
				.mxPathname = root->mxPathname,
				.zName = "clicksend-walbuf",
				.pAppData = root,
				.xOpen = walbuf_open,
				.xDelete = walbuf_delete,
				.xAccess = walbuf_access,
				.xFullPathname = walbuf_fullpath,
				.xDlOpen = walbuf_dlopen,
				.xDlError = walbuf_dlerror,
				.xDlSym = walbuf_dlsym,
				.xDlClose = walbuf_dlclose,
				.xRandomness = walbuf_random,
				.xSleep = walbuf_sleep,
				.xCurrentTime = walbuf_time,
				.xGetLastError = walbuf_lasterror,
				.xCurrentTimeInt64 = walbuf_time64,
			};
			if (sqlite3_vfs_register(&walbuf_vfs, 0) == SQLITE_OK)
				state = 1;
		}
	}
	return state == 1 ? walbuf_vfs.zName : NULL;
}
