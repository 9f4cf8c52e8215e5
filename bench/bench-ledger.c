/* bench-ledger: append throughput of the audit ledger beside its floors, and
 * the time to verify a large ledger.
 *
 *   bench-ledger DIR [N]   (N defaults to 1000000)
 *
 * Prints, one per line:
 *   append-batched  N appends, checkpoint (Ed25519 + fdatasync) every 1000,
 *                   fdatasync only at checkpoints; floor: the same record bytes
 *                   through the three SHA-256 hashes each entry needs
 *   append-sync     appends with fdatasync after each (the default policy);
 *                   floor: write() + fdatasync() of the same-size record
 *   verify          ledger_verify() of the N-entry ledger written above;
 *                   floor: one SHA-256 pass over entries.log
 * Exits 0, or 1 when anything fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ledger.h"
#include "merkle.h"
#include "timeutil.h"
#include "util.h"

#define SYNC_N      1000
#define SYNC_ROUNDS 3

static int
payload(uint64_t i, char *buf, size_t n)
{
	return snprintf(
	    buf, n,
	    "{\"alert_id\":\"a-%llu\",\"rule_id\":\"exec-from-tmp\",\"sha256\":\"%064llx\"}",
	    (unsigned long long)i, (unsigned long long)i * 2654435761u);
}

static double
append_run(const char *dir, uint64_t n, bool sync)
{
	struct ledger_policy p = { .checkpoint_every = LEDGER_CHECKPOINT_EVERY,
		                   .checkpoint_interval_s = LEDGER_CHECKPOINT_INTERVAL_S,
		                   .sync_each_append = sync };
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	uint64_t t0;

	if (ledger_open(dir, LEDGER_RW, &l, &err) < 0 || ledger_set_policy(l, &p) < 0) {
		fprintf(stderr, "bench-ledger: %s\n", err.msg);
		return -1;
	}
	t0 = time_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		char buf[160];
		int len = payload(i, buf, sizeof(buf));

		if (ledger_append(l, "agent", "alert.raised", buf, (size_t)len, NULL) < 0) {
			fprintf(stderr, "bench-ledger: append failed\n");
			ledger_close(l);
			return -1;
		}
	}
	ledger_close(l);
	return (double)(time_mono_ns() - t0) / 1e9;
}

/* The hashing an append cannot avoid: payload, entry and leaf hash over a
 * record of the same size. */
static double
hash_floor(uint64_t n)
{
	uint8_t rec[256] = { 0 }, h[MERKLE_HASH_LEN];
	uint64_t t0 = time_mono_ns();

	for (uint64_t i = 0; i < n; i++) {
		int len = payload(i, (char *)rec, sizeof(rec));

		(void)merkle_sha256(rec, (size_t)len, h);
		(void)merkle_sha256(rec, 160, h);
		(void)merkle_leaf_hash(rec, 190, h);
	}
	return (double)(time_mono_ns() - t0) / 1e9;
}

static double
fsync_floor(const char *dir, uint64_t n)
{
	char path[4200], rec[260];
	uint64_t t0;
	int fd;

	snprintf(path, sizeof(path), "%s/floor.bin", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memset(rec, 'x', sizeof(rec));
	t0 = time_mono_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (write_all(fd, rec, sizeof(rec)) < 0 || fdatasync(fd) < 0) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	unlink(path);
	return (double)(time_mono_ns() - t0) / 1e9;
}

static double
verify_run(const char *dir, struct ledger_report *rep)
{
	struct errbuf err = { { 0 } };
	struct ledger *l = NULL;
	uint64_t t0 = time_mono_ns();
	int rc;

	if (ledger_open(dir, LEDGER_RO, &l, &err) < 0)
		return -1;
	rc = ledger_verify(l, NULL, rep, &err);
	ledger_close(l);
	return rc < 0 ? -1 : (double)(time_mono_ns() - t0) / 1e9;
}

static double
file_hash_floor(const char *dir)
{
	char path[4200];
	char *buf = NULL;
	size_t len = 0;
	uint8_t h[MERKLE_HASH_LEN];
	uint64_t t0;
	double s;

	snprintf(path, sizeof(path), "%s/entries.log", dir);
	if (read_file_at(AT_FDCWD, path, (size_t)1 << 31, false, &buf, &len) < 0)
		return -1;
	t0 = time_mono_ns();
	(void)merkle_sha256(buf, len, h);
	s = (double)(time_mono_ns() - t0) / 1e9;
	free(buf);
	return s;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* fsync latency on a shared disk swings by 10x within seconds: alternate
 * ledger and floor rounds and compare the medians. */
static int
sync_rounds(const char *base, const char *dir, double *ret_ledger, double *ret_floor)
{
	double l[SYNC_ROUNDS], f[SYNC_ROUNDS];
	char path[4200];

	for (int r = 0; r < SYNC_ROUNDS; r++) {
		snprintf(path, sizeof(path), "%s-%d", base, r);
		if ((l[r] = append_run(path, SYNC_N, true)) < 0 ||
		    (f[r] = fsync_floor(dir, SYNC_N)) < 0)
			return -1;
	}
	qsort(l, SYNC_ROUNDS, sizeof(double), cmp_double);
	qsort(f, SYNC_ROUNDS, sizeof(double), cmp_double);
	*ret_ledger = l[SYNC_ROUNDS / 2];
	*ret_floor = f[SYNC_ROUNDS / 2];
	return 0;
}

int
main(int argc, char **argv)
{
	char big[4096], small[4096];
	struct ledger_report rep;
	uint64_t n = 1000000;
	double a, f, v, vf;

	if (argc < 2 || (argc > 2 && parse_u64(argv[2], &n) < 0) || n == 0) {
		fprintf(stderr, "usage: bench-ledger DIR [N]\n");
		return 2;
	}
	snprintf(big, sizeof(big), "%s/big", argv[1]);
	snprintf(small, sizeof(small), "%s/sync", argv[1]);

	if ((a = append_run(big, n, false)) < 0)
		return 1;
	f = hash_floor(n);
	printf("append-batched  %llu entries: %.0f appends/s (%.2f us each); floor (3 x SHA-256): "
	       "%.0f/s; ratio %.2fx the floor's time\n",
	       (unsigned long long)n, (double)n / a, a * 1e6 / (double)n, (double)n / f, a / f);

	if (sync_rounds(small, argv[1], &a, &f) < 0)
		return 1;
	printf(
	    "append-sync     %d entries: %.0f appends/s (%.1f us each); floor (write+fdatasync): "
	    "%.0f/s; ratio %.2fx (median of %d alternating rounds)\n",
	    SYNC_N, SYNC_N / a, a * 1e6 / SYNC_N, SYNC_N / f, a / f, SYNC_ROUNDS);

	if ((v = verify_run(big, &rep)) < 0 || !rep.ok) {
		fprintf(stderr, "bench-ledger: verify failed: %s\n", rep.reason);
		return 1;
	}
	vf = file_hash_floor(big);
	printf("verify          %llu entries, %llu checkpoints: %.2f s (%.2f us/entry); floor (one "
	       "SHA-256 pass over entries.log): %.3f s; ratio %.1fx\n",
	       (unsigned long long)rep.entries, (unsigned long long)rep.checkpoints, v,
	       v * 1e6 / (double)rep.entries, vf, vf > 0 ? v / vf : 0.0);
	return 0;
}
