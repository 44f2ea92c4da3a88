/* SPDX-License-Identifier: ISC */
/* The daemon's SQLite checkpointer: a thread with its own connection that copies the WAL
 * back into the database file, so that neither the writer's COMMITs nor the loop wait for
 * a checkpoint and its fsync of the database file. The writer's connection stops
 * checkpointing itself (wal_autocheckpoint 0); its WAL hook, run after each commit, wakes
 * the thread once the WAL holds STORE_CKPT_FRAMES pages. The checkpoints are PASSIVE: they
 * never wait for the writer or a reader and do what they can. SQLite rewinds the WAL (so it
 * is overwritten in place instead of growing) only when a write transaction starts with all
 * of it copied, which a busy writer racing the thread rarely sees: so once the thread has
 * copied the whole WAL as it was, the writer copies the few pages committed since
 * (STORE_CKPT_REWIND at most) itself, and its next transaction rewinds. Should the thread
 * fall behind by far (readers holding old snapshots, a slow disk), the writer checkpoints
 * itself past STORE_CKPT_FORCE pages, as SQLite would by default, so the WAL stays bounded. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store-internal.h"
#include "xmalloc.h"

#define STORE_CKPT_FRAMES     1000  /* WAL pages that wake the thread (SQLite's default) */
#define STORE_CKPT_FORCE      16000 /* past this the writer checkpoints itself */
#define STORE_CKPT_REWIND     256   /* the writer copies the last pages itself, to rewind */
#define STORE_CKPT_IDLE_S     2	    /* a WAL left over is copied after this long idle */
#define STORE_CKPT_SIZE_LIMIT (64 * 1024 * 1024) /* WAL bytes kept after a rewind */

struct store_ckpt {
	sqlite3 *db; /* the thread's own connection */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int frames; /* WAL pages at the last commit, 0 once copied */
	int copied; /* the thread copied the whole WAL as it was then, this many pages */
	int stop;
	int failing; /* the last checkpoint failed (logged once) */
};

static void
store_ckpt_run(struct store_ckpt *ck)
{
	int log_frames = 0, copied = 0;
	int rc = sqlite3_wal_checkpoint_v2(
	    ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);

	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		if (!ck->failing)
			log_warnx("store: checkpoint failed: %s", sqlite3_errmsg(ck->db));
		ck->failing = 1;
		return;
	}
	if (rc == SQLITE_OK && log_frames > 0 && copied == log_frames) {
		pthread_mutex_lock(&ck->mu);
		ck->copied = copied;
		pthread_mutex_unlock(&ck->mu);
	}
	if (ck->failing && rc == SQLITE_OK)
		log_info("store: checkpoints work again");
	ck->failing = rc != SQLITE_OK;
}

static void *
store_ckpt_thread(void *arg)
{
	struct store_ckpt *ck = arg;
	struct timespec until;

	pthread_mutex_lock(&ck->mu);
	while (!ck->stop) {
		if (ck->frames < STORE_CKPT_FRAMES) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += STORE_CKPT_IDLE_S;
			/* a timeout with pages left: the writer went idle, copy them */
			if (pthread_cond_timedwait(&ck->cond, &ck->mu, &until) == 0 ||
			    ck->frames == 0 || ck->stop)
				continue;
		}
		ck->frames = 0;
		pthread_mutex_unlock(&ck->mu);
		store_ckpt_run(ck);
		pthread_mutex_lock(&ck->mu);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* Writer thread, after each commit: the WAL holds FRAMES pages. The writer copies them
 * itself when the thread has just copied nearly all (so that the WAL rewinds) or the thread
 * has fallen far behind; otherwise the thread is woken once there are enough. */
static int
store_ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store_ckpt *ck = arg;
	int self;

	pthread_mutex_lock(&ck->mu);
	self = frames >= STORE_CKPT_FORCE ||
	       (ck->copied > 0 && frames - ck->copied <= STORE_CKPT_REWIND);
	if (self)
		ck->copied = 0;
	ck->frames = self ? 0 : frames;
	if (!self && frames >= STORE_CKPT_FRAMES)
		pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->mu);
	if (self)
		(void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

struct store_ckpt *
store_ckpt_start(struct store *st)
{
	struct store_ckpt *ck = xcalloc(1, sizeof(*ck));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	char limit[64];

	/* a read opens the connection's view of the WAL: until then it checkpoints nothing */
	if (sqlite3_open_v2(st->path, &ck->db, flags, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(ck->db, 1000) != SQLITE_OK ||
	    sqlite3_exec(ck->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) !=
		SQLITE_OK) {
		log_warnx("store: no checkpoint thread (%s): the writer checkpoints itself",
		    ck->db != NULL ? sqlite3_errmsg(ck->db) : "out of memory");
		sqlite3_close_v2(ck->db);
		free(ck);
		return NULL;
	}
	snprintf(limit, sizeof(limit), "PRAGMA journal_size_limit = %d", STORE_CKPT_SIZE_LIMIT);
	(void)sqlite3_exec(st->db, limit, NULL, NULL, NULL);
	pthread_mutex_init(&ck->mu, NULL);
	pthread_cond_init(&ck->cond, NULL);
	if (pthread_create(&ck->thread, NULL, store_ckpt_thread, ck) != 0)
		fatal("store: pthread_create");
	sqlite3_wal_hook(st->db, store_ckpt_hook, ck);
	return ck;
}

void
store_ckpt_stop(struct store *st, struct store_ckpt *ck)
{
	if (ck == NULL)
		return;
	sqlite3_wal_autocheckpoint(st->db, STORE_CKPT_FRAMES); /* also drops our hook */
	pthread_mutex_lock(&ck->mu);
	ck->stop = 1;
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->mu);
	pthread_join(ck->thread, NULL);
	sqlite3_close_v2(ck->db);
	pthread_cond_destroy(&ck->cond);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
}
