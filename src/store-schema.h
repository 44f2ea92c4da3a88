/* SPDX-License-Identifier: ISC */
/* The schema and migrations embedded from sql/ at build time (src/schema-sql.c). */
#ifndef STORE_SCHEMA_H
#define STORE_SCHEMA_H

#include <stddef.h>

struct store_schema_step {
	int version; /* PRAGMA user_version after this step */
	const char *name;
	const char *sql;
};

extern const struct store_schema_step store_schema_steps[];
extern const size_t store_schema_nsteps;
/* The PostgreSQL schema (sql/postgresql/), versioned in the store_schema table. */
extern const struct store_schema_step store_pg_schema_steps[];
extern const size_t store_pg_schema_nsteps;

#endif
