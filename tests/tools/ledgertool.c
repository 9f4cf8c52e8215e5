/* ledgertool: writes test ledgers for tests/e2e/test_ledger.py and
 * bench/bench-ledger.sh without the agent (not installed).
 *
 *   ledgertool DIR fill N [EVERY [sync]]  append N entries, a checkpoint every EVERY
 *                                         (default 1000), then close cleanly;
 *                                         "sync" fdatasyncs every append
 *   ledgertool DIR crash N [EVERY]        the same but exit without closing, as a
 *                                         crash would (no final checkpoint)
 *   ledgertool DIR append ACTOR ACTION PAYLOAD
 *
 * Prints "<entries> entries in <ms> ms" for fill. Exits 0, 1 on failure, 2 on usage. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"
#include "timeutil.h"
#include "util.h"

static int
usage(void)
{
	fprintf(stderr, "usage: ledgertool DIR fill|crash N [EVERY [sync]]\n"
	                "       ledgertool DIR append ACTOR ACTION PAYLOAD\n");
	return 2;
}

static int
fill(const char *dir, int argc, char **argv, bool crash)
{
	struct ledger_policy p = { .checkpoint_every = LEDGER_CHECKPOINT_EVERY,
		                   .checkpoint_interval_s = 0 };
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	uint64_t n, t0;
	int rc;

	if (argc < 1 || parse_u64(argv[0], &n) < 0 ||
	    (argc >= 2 && parse_u64(argv[1], &p.checkpoint_every) < 0))
		return usage();
	p.sync_each_append = argc >= 3 && streq(argv[2], "sync");
	if ((rc = ledger_open(dir, LEDGER_RW, &l, &err)) < 0) {
		fprintf(stderr, "ledgertool: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		return 1;
	}
	(void)ledger_set_policy(l, &p);
	t0 = time_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		char payload[160];
		int len = snprintf(payload, sizeof(payload),
		                   "{\"alert_id\":\"a-%llu\",\"rule_id\":\"exec-from-tmp\","
		                   "\"sha256\":\"%064llx\"}",
		                   (unsigned long long)i, (unsigned long long)i * 2654435761u);

		if ((rc = ledger_append(l, "agent", "alert.raised", payload, (size_t)len, NULL)) <
		    0) {
			fprintf(stderr, "ledgertool: append: %s\n", strerror(-rc));
			return 1;
		}
	}
	if (crash)
		_exit(0);
	ledger_close(l);
	printf("%llu entries in %.1f ms\n", (unsigned long long)n,
	       (double)(time_mono_ns() - t0) / 1e6);
	return 0;
}

int
main(int argc, char **argv)
{
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	uint64_t seq;
	int rc;

	if (argc < 3)
		return usage();
	if (streq(argv[2], "fill") || streq(argv[2], "crash"))
		return fill(argv[1], argc - 3, argv + 3, streq(argv[2], "crash"));
	if (!streq(argv[2], "append") || argc != 6)
		return usage();
	if ((rc = ledger_open(argv[1], LEDGER_RW, &l, &err)) < 0) {
		fprintf(stderr, "ledgertool: %s\n", err.msg[0] ? err.msg : strerror(-rc));
		return 1;
	}
	rc = ledger_append(l, argv[3], argv[4], argv[5], strlen(argv[5]), &seq);
	ledger_close(l);
	if (rc < 0) {
		fprintf(stderr, "ledgertool: append: %s\n", strerror(-rc));
		return 1;
	}
	printf("%llu\n", (unsigned long long)seq);
	return 0;
}
