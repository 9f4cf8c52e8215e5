/* Fuzzes the agent's control handler with the payload of a CLI's
 * ControlRequest frame (a command name and JSON arguments from a peer):
 * control_respond() must answer or refuse, never crash, leak or overrun. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Echoes the arguments back, as a health document built from peer data. */
static json_t *
echo(void *ctx, const json_t *args)
{
	(void)ctx;
	return json_pack("{sO?}", "args", (json_t *)args);
}

static json_t *
refuse(void *ctx, const json_t *args)
{
	(void)ctx;
	(void)args;
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct control *c;
	struct control_callbacks cb = { .health = echo, .rules = echo, .stats = refuse };
	uint8_t *frame = NULL;
	size_t n = 0;

	if (c == NULL && control_new(&cb, &c) < 0)
		abort();
	if (control_respond(c, data, size, &frame, &n) == 0 && (frame == NULL || n < 12))
		abort();
	free(frame);
	return 0;
}
