/* The floor for a /proc snapshot: what any collector must at least do per
 * process (read stat, status, cmdline and the exe link), with nothing else.
 * bench-snapshot.py compares procmond and ps against it.
 *
 * Usage: snapshot-floor [RUNS]   prints "processes median_us" of RUNS walks,
 * in CPU time (user + system) so other load on the machine does not count. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 50

static char buf[1 << 16];

static void
slurp(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

static int
walk(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[300], link[PATH_MAX];
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		slurp(path);
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		slurp(path);
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		slurp(path);
		snprintf(path, sizeof(path), "/proc/%s/exe", de->d_name);
		if (readlink(path, link, sizeof(link)) < 0)
			link[0] = '\0';
		n++;
	}
	closedir(d);
	return n;
}

static int
cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	long us[MAX_RUNS];
	int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5, n = 0;

	if (runs < 1 || runs > MAX_RUNS)
		runs = 5;
	for (int i = 0; i < runs; i++) {
		struct timespec a, b;

		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		n = walk();
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000;
	}
	qsort(us, (size_t)runs, sizeof(us[0]), cmp);
	printf("%d %ld\n", n, us[runs / 2]);
	return n < 0;
}
