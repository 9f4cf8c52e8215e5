/* Exactly-once ingest: see ingest.h. */
#include "ingest.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "store.h"
#include "timeutil.h"
#include "detect.h"

struct ingest {
	struct store *st;
	struct detect *det;
	ingest_gap_fn gap_fn;
	void *gap_ctx;
	uint64_t batches, events, fresh, replayed, errors, gaps, detect_errors;
	uint64_t last_batch_ms;
};

int
ingest_new(struct store *st, struct detect *det, struct ingest **ret)
{
	struct ingest *ing = calloc(1, sizeof(*ing));

	if (ing == NULL)
		return -ENOMEM;
	ing->st = st;
	ing->det = det;
	*ret = ing;
	return 0;
}

void
ingest_free(struct ingest *ing)
{
	free(ing);
}

void
ingest_set_detect(struct ingest *ing, struct detect *det)
{
	ing->det = det;
}

void
ingest_set_gap_observer(struct ingest *ing, ingest_gap_fn fn, void *ctx)
{
	ing->gap_fn = fn;
	ing->gap_ctx = ctx;
}

static void
free_events(struct process_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		process_event_clear(&evs[i]);
	free(evs);
}

static void
run_detection(struct ingest *ing, struct process_event *evs, bool *is_new, size_t n)
{
	if (ing->det != NULL && detect_on_batch(ing->det, evs, is_new, n) < 0)
		ing->detect_errors++;
}

int
ingest_batch(struct ingest *ing, struct collector *c, const Daemoneye__ProcessEventBatch *b,
             uint64_t *ret_high_water)
{
	struct process_event *evs;
	bool *is_new;
	uint64_t hw = c->high_water, t0 = time_mono_ms();
	size_t n = b->n_events;
	int rc = 0;

	if (n == 0) {
		*ret_high_water = hw;
		return 0;
	}
	evs = calloc(n, sizeof(*evs));
	is_new = calloc(n, sizeof(*is_new));
	if (evs == NULL || is_new == NULL) {
		free(evs);
		free(is_new);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		if ((rc = ipc_event_from_pb(b->events[i], &evs[i])) < 0)
			n = i; /* free only what was converted */
	if (rc == 0 && evs[0].seq > hw + 1 && hw > 0) {
		ing->gaps++;
		if (ing->gap_fn)
			ing->gap_fn(ing->gap_ctx, c, hw + 1, evs[0].seq - 1);
	}
	if (rc == 0)
		rc = store_ingest_batch(ing->st, c->id, evs, n, is_new);
	if (rc < 0) {
		ing->errors++;
		free_events(evs, n);
		free(is_new);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		if (evs[i].seq > hw)
			hw = evs[i].seq;
	ing->batches++;
	ing->events += n;
	ing->fresh += (uint64_t)rc;
	ing->replayed += n - (size_t)rc;
	c->events += (uint64_t)rc;
	c->replayed += n - (size_t)rc;
	c->batches++;
	c->high_water = hw;
	run_detection(ing, evs, is_new, n);
	ing->last_batch_ms = time_mono_ms() - t0;
	free_events(evs, n);
	free(is_new);
	*ret_high_water = hw;
	return rc;
}

json_t *
ingest_json(const struct ingest *ing)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "batches", json_integer((json_int_t)ing->batches));
	json_object_set_new(o, "events", json_integer((json_int_t)ing->events));
	json_object_set_new(o, "new", json_integer((json_int_t)ing->fresh));
	json_object_set_new(o, "replayed", json_integer((json_int_t)ing->replayed));
	json_object_set_new(o, "errors", json_integer((json_int_t)ing->errors));
	json_object_set_new(o, "gaps", json_integer((json_int_t)ing->gaps));
	json_object_set_new(o, "detect_errors", json_integer((json_int_t)ing->detect_errors));
	json_object_set_new(o, "last_batch_ms", json_integer((json_int_t)ing->last_batch_ms));
	return o;
}
