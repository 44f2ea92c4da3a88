/* SPDX-License-Identifier: ISC */
/* The daemon's small store writes (retention, the health probe, provisioning results)
 * as store writer items: each item owns copies of its arguments. */
#include <stdlib.h>

#include "log.h"
#include "store-jobs.h"
#include "store-provision.h"
#include "store-writer.h"
#include "store.h"
#include "xmalloc.h"

struct store_job_retention {
	char *before;
	int limit, deleted;
	void (*done)(int, const char *, void *);
	void *arg;
};

static int
store_jobs_retention_work(void *handle, void *arg)
{
	struct store_job_retention *r = arg;

	return (r->deleted = store_retention(handle, r->before, r->limit)) < 0 ? -1 : 0;
}

static void
store_jobs_retention_done(int result, const char *err, void *arg)
{
	struct store_job_retention *r = arg;

	if (result != STORE_WRITER_OK)
		log_warnx("retention: %s", err);
	if (r->done != NULL)
		r->done(result == STORE_WRITER_OK ? r->deleted : -1, err, r->arg);
	free(r->before);
	free(r);
}

void
store_jobs_retention(struct store_writer *w, const char *before, int limit,
    void (*done)(int, const char *, void *), void *arg)
{
	struct store_job_retention *r = xcalloc(1, sizeof(*r));

	r->before = xstrdup(before);
	r->limit = limit;
	r->done = done;
	r->arg = arg;
	store_writer_submit(w, store_jobs_retention_work, store_jobs_retention_done, r);
}

static int
store_jobs_probe_work(void *handle, void *arg)
{
	(void)arg;
	return store_probe(handle);
}

void
store_jobs_probe(struct store_writer *w)
{
	store_writer_submit(w, store_jobs_probe_work, NULL, NULL);
}

/* A provisioning result: ok (rule filled in) or an error text. */
struct store_job_provision {
	struct store_provision_rule rule;
	char *kind, *rule_name, *action_address, *webhook_type, *error;
};

static char *
store_jobs_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static struct store_job_provision *
store_jobs_provision_new(const char *kind, const char *rule_name, const char *error)
{
	struct store_job_provision *p = xcalloc(1, sizeof(*p));

	p->kind = xstrdup(kind);
	p->rule_name = store_jobs_dup(rule_name);
	p->error = store_jobs_dup(error);
	p->rule.kind = p->kind;
	p->rule.rule_name = p->rule_name;
	return p;
}

static int
store_jobs_provision_work(void *handle, void *arg)
{
	struct store_job_provision *p = arg;

	if (p->error != NULL)
		return store_provision_error(handle, p->kind, p->rule_name, p->error);
	return store_provision_ok(handle, &p->rule);
}

static void
store_jobs_provision_done(int result, const char *err, void *arg)
{
	struct store_job_provision *p = arg;

	if (result != STORE_WRITER_OK)
		log_warnx("provision %s: cannot record the result: %s", p->kind, err);
	free(p->kind);
	free(p->rule_name);
	free(p->action_address);
	free(p->webhook_type);
	free(p->error);
	free(p);
}

void
store_jobs_provision_ok(struct store_writer *w, const struct store_provision_rule *r)
{
	struct store_job_provision *p = store_jobs_provision_new(r->kind, r->rule_name, NULL);

	p->rule.rule_id = r->rule_id;
	p->rule.action_address = p->action_address = store_jobs_dup(r->action_address);
	p->rule.webhook_type = p->webhook_type = store_jobs_dup(r->webhook_type);
	store_writer_submit(w, store_jobs_provision_work, store_jobs_provision_done, p);
}

void
store_jobs_provision_error(
    struct store_writer *w, const char *kind, const char *rule_name, const char *error)
{
	struct store_job_provision *p = store_jobs_provision_new(kind, rule_name, error);

	store_writer_submit(w, store_jobs_provision_work, store_jobs_provision_done, p);
}

static int
store_jobs_refresh_work(void *handle, void *arg)
{
	(void)arg;
	return store_refresh(handle);
}

void
store_jobs_refresh(struct store_writer *w)
{
	store_writer_submit(w, store_jobs_refresh_work, NULL, NULL);
}

/* Whether this node holds the store-wide lock, for done on the loop. */
struct store_job_leader {
	int leader;
	void (*done)(int leader, void *arg);
	void *arg;
};

static int
store_jobs_leader_work(void *handle, void *arg)
{
	struct store_job_leader *l = arg;

	l->leader = store_leader(handle);
	return l->leader == -1 ? -1 : 0;
}

static void
store_jobs_leader_done(int result, const char *err, void *arg)
{
	struct store_job_leader *l = arg;

	(void)err;
	l->done(result == STORE_WRITER_OK ? l->leader : -1, l->arg);
	free(l);
}

void
store_jobs_leader(struct store_writer *w, void (*done)(int leader, void *arg), void *arg)
{
	struct store_job_leader *l = xcalloc(1, sizeof(*l));

	l->done = done;
	l->arg = arg;
	store_writer_submit(w, store_jobs_leader_work, store_jobs_leader_done, l);
}
