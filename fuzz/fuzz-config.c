/* Fuzz target: config_parse_string over arbitrary bytes. Every input must be
 * either accepted or rejected with a message; nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "errbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct de_config cfg;
	struct errbuf err;
	char sink[64];

	if (config_defaults(&cfg) < 0)
		return 0;
	errbuf_clear(&err);
	if (config_parse_string(&cfg, "fuzz.yaml", (const char *)data, size, &err) == 0) {
		FILE *f = fmemopen(sink, sizeof(sink), "w");

		(void)config_validate(&cfg, &err);
		if (f != NULL) {
			config_print_summary(&cfg, f);
			fclose(f);
		}
	}
	config_free(&cfg);
	return 0;
}
