/* Exactly-once ingest: see ingest.h. */
#include "ingest.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>

#include "cleanup.h"
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
	/* Scratch reused from batch to batch: the events (borrowing their
	 * strings from the protobuf batch) and their is_new flags. */
	struct process_event *evs;
	bool *is_new;
	size_t cap;
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
	if (ing == NULL)
		return;
	free(ing->evs);
	free(ing->is_new);
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
run_detection(struct ingest *ing, struct process_event *evs, bool *is_new, size_t n)
{
	if (ing->det != NULL && detect_on_batch(ing->det, evs, is_new, n) < 0)
		ing->detect_errors++;
}

/* Room for n events in the scratch arrays. */
static int
reserve(struct ingest *ing, size_t n)
{
	struct process_event *evs;
	bool *is_new;

	if (n <= ing->cap)
		return 0;
	if ((evs = reallocarray(ing->evs, n, sizeof(*evs))) == NULL)
		return -ENOMEM;
	ing->evs = evs;
	if ((is_new = reallocarray(ing->is_new, n, sizeof(*is_new))) == NULL)
		return -ENOMEM;
	ing->is_new = is_new;
	ing->cap = n;
	return 0;
}

int
ingest_batch(struct ingest *ing, struct collector *c, const Daemoneye__ProcessEventBatch *b,
             uint64_t *ret_high_water)
{
	/* Holds only the sanitized copies of strings that were not UTF-8. */
	_cleanup_(ipc_arena_free) struct ipc_arena arena = { 0 };
	struct process_event *evs;
	uint64_t hw = c->high_water, t0 = time_mono_ms();
	size_t n = b->n_events;
	int rc = 0;

	ipc_arena_init(&arena, 4096);
	if (n == 0) {
		*ret_high_water = hw;
		return 0;
	}
	if (reserve(ing, n) < 0)
		return -ENOMEM;
	/* The events borrow the batch's strings: nothing to free per event. */
	evs = ing->evs;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = ipc_event_borrow_pb(b->events[i], &arena, &evs[i]);
	if (rc == 0 && evs[0].seq > hw + 1 && hw > 0) {
		ing->gaps++;
		if (ing->gap_fn)
			ing->gap_fn(ing->gap_ctx, c, hw + 1, evs[0].seq - 1);
	}
	if (rc == 0)
		rc = store_ingest_batch(ing->st, c->id, evs, n, ing->is_new);
	if (rc < 0) {
		ing->errors++;
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
	run_detection(ing, evs, ing->is_new, n);
	ing->last_batch_ms = time_mono_ms() - t0;
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
