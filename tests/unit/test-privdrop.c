/* privdrop + seccomp profiles. The drop is irreversible, so each check runs
 * in a forked child that reports through its exit status (the number of
 * the first failed step, 0 when all held). Needs root; skipped otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "privdrop.h"
#include "seccomp_profile.h"
#include "util.h"

static void
test_resolve_user(void **state)
{
	struct privdrop_user u;

	(void)state;
	if (getpwnam("nobody") == NULL)
		skip();
	assert_int_equal(privdrop_resolve_user("de-no-such-user-xyz", &u), 0);
	assert_string_equal(u.name, "nobody");
	assert_true(u.fell_back);
	assert_int_equal(privdrop_resolve_user("root", &u), 0);
	assert_int_equal(u.uid, 0);
	assert_false(u.fell_back);
	assert_int_equal(privdrop_resolve_user(NULL, &u), 0);
	assert_string_equal(u.name, "nobody");
	assert_false(u.fell_back);
}

static void
test_cap_effective(void **state)
{
	uint64_t eff = 0;

	(void)state;
	assert_int_equal(privdrop_cap_effective(&eff), 0);
	assert_int_equal(privdrop_has_cap(CAP_SYS_ADMIN), (eff >> CAP_SYS_ADMIN) & 1);
	assert_false(privdrop_has_cap(-1));
}

/* Runs fn in a child; returns its exit status (or 100 + signal). */
static int
in_child(int (*fn)(void))
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0)
		_exit(fn());
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int
drop_and_check(void)
{
	static const int keep[] = { CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };
	struct privdrop_user u;
	struct errbuf err;
	uint64_t eff;
	int fd;

	if (privdrop_resolve_user("de-no-such-user-xyz", &u) < 0)
		return 1;
	if (privdrop_apply(&u, keep, 2, &err) < 0)
		return 2;
	if (getuid() != u.uid || geteuid() != u.uid || getgid() != u.gid)
		return 3;
	if (privdrop_cap_effective(&eff) < 0 ||
	    eff != ((1ull << CAP_SYS_PTRACE) | (1ull << CAP_DAC_READ_SEARCH)))
		return 4;
	if (setuid(0) == 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 5;
	if (seccomp_profile_apply(SECCOMP_PROFILE_PROCMOND, &err) < 0)
		return 6;
	/* IP sockets, exec and ptrace now kill the process: test-seccomp.c. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 9;
	close(fd);
	return 0;
}

static int
agent_profile(void)
{
	struct errbuf err;
	int fd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return 1;
	if (seccomp_profile_apply(SECCOMP_PROFILE_AGENT, &err) < 0)
		return 2;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 3; /* webhooks and remote syslog need IP */
	close(fd);
	/* exec now kills the engine (its allow-list): test-seccomp.c. */
	return 0;
}

static void
test_drop_and_filter(void **state)
{
	(void)state;
	if (geteuid() != 0 || getpwnam("nobody") == NULL)
		skip();
	assert_int_equal(in_child(drop_and_check), 0);
	assert_int_equal(in_child(agent_profile), 0);
}

/* Like in_child(), but a coverage build leaves the child through exit() so
 * the counters of the privdrop code it ran are written (the child stays
 * uid 0, so it may still write them). */
static int
in_child_counted(int (*fn)(void))
{
	pid_t pid;
	int st = 0, rc;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		rc = fn();
#ifdef DE_COVERAGE
		exit(rc);
#else
		_exit(rc);
#endif
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* "Dropping" to root itself: the ids stay 0, but the capability sets and the
 * bounding set shrink to the list, and no_new_privs is set. */
static int
drop_to_root_keeping_two(void)
{
	static const int keep[] = { CAP_NET_ADMIN, CAP_SYS_PTRACE };
	struct privdrop_user u;
	struct errbuf err = { { 0 } };
	uid_t r, e, s;
	uint64_t eff;

	if (privdrop_resolve_user("root", &u) < 0 || u.uid != 0 || u.fell_back)
		return 1;
	if (privdrop_apply(&u, keep, 2, &err) < 0)
		return 2;
	if (getresuid(&r, &e, &s) < 0 || r != 0 || e != 0 || s != 0)
		return 3;
	if (privdrop_cap_effective(&eff) < 0 ||
	    eff != ((1ull << CAP_NET_ADMIN) | (1ull << CAP_SYS_PTRACE)))
		return 4;
	if (!privdrop_has_cap(CAP_NET_ADMIN) || privdrop_has_cap(CAP_SYS_ADMIN) ||
	    privdrop_has_cap(CAP_SETUID))
		return 5;
	/* Gone from the bounding set too: no file capability brings it back. */
	if (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_NET_ADMIN, 0, 0, 0) != 1)
		return 6;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 7;
	return 0;
}

/* More capabilities listed than exist: refused with -E2BIG. */
static int
too_many_caps(void)
{
	int keep[65];
	struct privdrop_user u;
	struct errbuf err = { { 0 } };

	for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
		keep[i] = (int)(i % (CAP_LAST_CAP + 1));
	if (privdrop_resolve_user("root", &u) < 0)
		return 1;
	return privdrop_apply(&u, keep, ARRAY_SIZE(keep), &err) == -E2BIG ? 0 : 2;
}

static void
test_drop_keeping_root(void **state)
{
	(void)state;
	if (geteuid() != 0 || !privdrop_has_cap(CAP_SETPCAP) || !privdrop_has_cap(CAP_SETUID))
		skip();
	assert_int_equal(in_child_counted(drop_to_root_keeping_two), 0);
	assert_int_equal(in_child_counted(too_many_caps), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_user),
		cmocka_unit_test(test_cap_effective),
		cmocka_unit_test(test_drop_and_filter),
		cmocka_unit_test(test_drop_keeping_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
