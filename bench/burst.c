/* burst: starts COUNT short-lived processes as fast as the machine allows,
 * each a fork+exec of CHILD with the unique marker argument PREFIX-<i>, at
 * most PARALLEL alive at once, and reaps them all. Prints each child's pid
 * on stdout (so a benchmark knows which processes to look for) and the
 * elapsed time and rate on stderr.
 *
 * Usage: burst COUNT PREFIX CHILD [PARALLEL] [EXIT] [RATE]
 * EXIT is passed to the child as its exit status (see burst-child.c). RATE,
 * when given and non-zero, paces the starts at that many per second instead
 * of as fast as possible. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Sleeps until start number i is due at rate per second after t0. */
static void
pace(const struct timespec *t0, uint64_t i, uint64_t rate)
{
	uint64_t ns = i * 1000000000ull / rate;
	struct timespec due = { .tv_sec = t0->tv_sec + (time_t)(ns / 1000000000ull),
		                .tv_nsec = t0->tv_nsec + (long)(ns % 1000000000ull) };

	if (due.tv_nsec >= 1000000000L) {
		due.tv_sec++;
		due.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR)
		;
}

int
main(int argc, char **argv)
{
	uint64_t count, parallel = 4, rate = 0;
	const char *exitcode = argc > 5 ? argv[5] : "0";
	struct timespec t0, t1;
	uint64_t started = 0, alive = 0, failed = 0;
	double secs;

	if (argc < 4 || parse_u64(argv[1], &count) < 0 ||
	    (argc > 4 && (parse_u64(argv[4], &parallel) < 0 || parallel == 0)) ||
	    (argc > 6 && parse_u64(argv[6], &rate) < 0)) {
		fprintf(stderr, "usage: burst COUNT PREFIX CHILD [PARALLEL] [EXIT] [RATE]\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (started < count || alive > 0) {
		if (started < count && alive < parallel) {
			char marker[128];
			pid_t pid;

			if (rate > 0)
				pace(&t0, started, rate);
			if ((size_t)snprintf(marker, sizeof(marker), "%s-%llu", argv[2],
			                     (unsigned long long)started) >= sizeof(marker))
				return 2;
			pid = fork();
			if (pid == 0) {
				char *cargv[] = { argv[3], marker, (char *)exitcode, NULL };

				execv(argv[3], cargv);
				_exit(127);
			}
			if (pid < 0) {
				failed++;
				if (errno != EAGAIN)
					break;
			} else {
				printf("%d\n", (int)pid);
				started++;
				alive++;
				continue;
			}
		}
		if (wait(NULL) > 0)
			alive--;
		else if (errno == ECHILD)
			alive = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fflush(stdout);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "burst: %llu processes in %.2f s (%.0f/s), %llu fork failures\n",
	        (unsigned long long)started, secs, secs > 0 ? (double)started / secs : 0.0,
	        (unsigned long long)failed);
	return started == count ? 0 : 1;
}
