/* SPDX-License-Identifier: ISC */
/* Shared between the store's files (store.c, store-event.c, ...): the handle and the
 * prepared statements. Nothing outside store-*.c includes this. */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include <sqlite3.h>

enum store_stmt {
	STMT_EVENT_INSERT,
	STMT_EVENT_DUPLICATE,
	STMT_DELIVERY_INSERT,
	STMT_HEALTH,
	STMT_RELAY_COUNTS,
	STMT_DUE,
	STMT_DELIVERY_RECORD,
	STMT_RETENTION,
	STMT_NEXT_DUE,
	STMT_UNBLOCK_NEXT,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_PAUSED,
	STMT_PAUSE,
	STMT_COUNT
};

struct store {
	sqlite3 *db;
	char *path;
	int lock_fd; /* the daemon's lock on "<path>.lock", or -1 */
	sqlite3_stmt *stmt[STMT_COUNT];
	char err[256];
};

int store_exec(struct store *, const char *sql);
void store_bind_text(sqlite3_stmt *, int, const char *);
/* SQLITE_DONE or SQLITE_ROW, or -1 with st->err set (the statement is reset). */
int store_step_done(struct store *, sqlite3_stmt *);

#endif
