/* Fuzz target: rule_parse over arbitrary bytes and, for what parses, the
 * sandboxed validation of its SQL. Every input must be accepted or rejected
 * with a message; nothing may crash, leak, or run past the time limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* One sample database for the whole run: building it per input would
	 * make the fuzzer measure that instead of the parser and the sandbox. */
	static struct rule_validator *v;
	struct errbuf err;
	struct rule *r = NULL;

	errbuf_clear(&err);
	if (rule_parse("fuzz.yaml", (const char *)data, size, &r, &err) < 0) {
		if (err.msg[0] == '\0')
			abort(); /* a rejection must say why */
		return 0;
	}
	if (v == NULL && rule_validator_new(&v, &err) < 0)
		abort();
	if (rule_validate(v, r, 10, NULL, &err) < 0 && err.msg[0] == '\0')
		abort();
	rule_free(r);
	return 0;
}
