/* SPDX-License-Identifier: ISC */
/* What one attempt carries, built from a stored delivery: the relay document
 * (clicksend-relay.conf(5), RELAY DOCUMENT) with the payload spliced in as stored, and the
 * payload's fields for script environments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "relay.h"

static int
relay_job_document(struct relay_job *job, const char *payload)
{
	struct json_gen *g = json_gen_new();

	json_gen_map_open(g);
	json_gen_kv_string(g, "id", job->event_ref);
	json_gen_kv_string(g, "type", job->kind);
	json_gen_kv_string(g, "received_at", job->received_at);
	json_gen_kv_string(g, "format", job->format);
	json_gen_string(g, "data");
	if (json_gen_raw(g, payload) == -1) {
		json_gen_free(g);
		return -1;
	}
	json_gen_map_close(g);
	job->doc_buf = json_gen_finish(g, &job->doclen);
	job->document = job->doc_buf;
	return 0;
}

int
relay_job_init(struct relay_job *job, const struct config_relay *relay, const struct relay_row *row)
{
	char err[128];

	memset(job, 0, sizeof(*job));
	job->relay = relay;
	job->delivery_id = row->delivery_id;
	job->event_id = row->event_id;
	snprintf(job->event_ref, sizeof(job->event_ref), "evt_%lld", (long long)row->event_id);
	job->kind = row->kind;
	job->format = row->format;
	job->received_at = row->received_at;
	if (relay_job_document(job, row->payload) == -1 ||
	    json_decode_objects(row->payload, strlen(row->payload), &job->field_list,
		&job->nfield_list, err, sizeof(err)) == -1 ||
	    job->nfield_list != 1)
		return -1;
	job->fields = &job->field_list[0];
	return 0;
}

void
relay_job_clear(struct relay_job *job)
{
	size_t i;

	for (i = 0; i < job->nfield_list; i++)
		fields_free(&job->field_list[i]);
	free(job->field_list);
	free(job->doc_buf);
	job->field_list = NULL;
	job->nfield_list = 0;
	job->doc_buf = NULL;
	job->document = NULL;
	job->fields = NULL;
}
