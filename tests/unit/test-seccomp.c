/* seccomp profiles: what procmond's and the agent engine's allow-lists let
 * through, what kills and what fails with the default EPERM. A filter cannot be removed, so every
 * check runs in a forked child that installs it and reports through its exit
 * status (or dies by SIGSYS). Needs no root: no_new_privs is enough. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "errbuf.h"
#include "seccomp_profile.h"

enum { DIED = 1000 };

/* Runs fn in a child under `profile`. Returns the child's exit status, or
 * DIED + the signal that killed it. */
static int
under_filter(enum seccomp_profile profile, int (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct errbuf err;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(90);
		if (seccomp_profile_apply(profile, &err) < 0)
			_exit(91);
		_exit(fn());
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : DIED + WTERMSIG(st);
}

static void *
thread_main(void *arg)
{
	return arg;
}

/* What procmond does after its drop: read /proc, write, sleep, a unix socket,
 * a thread (clone with CLONE_THREAD; clone3 answers ENOSYS first). */
static int
allowed_calls(void)
{
	struct timespec ts = { 0, 1000000 };
	pthread_t t;
	void *ret = NULL;
	char buf[64];
	int fd;

	if ((fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) < 0)
		return 1;
	if (read(fd, buf, sizeof(buf)) <= 0)
		return 2;
	close(fd);
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0 || nanosleep(&ts, NULL) < 0)
		return 3;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 4;
	close(fd);
	if ((fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return 5;
	close(fd);
	if (pthread_create(&t, NULL, thread_main, &ts) != 0 || pthread_join(t, &ret) != 0 ||
	    ret != &ts)
		return 6;
	if (getppid() <= 0 || write(STDOUT_FILENO, "", 0) < 0)
		return 7;
	return 0;
}

static int
socket_inet(void)
{
	(void)socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return 0;
}

static int
socket_inet6(void)
{
	(void)socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return 0;
}

static int
socket_packet(void)
{
	(void)socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	return 0;
}

static int
exec_true(void)
{
	(void)execl("/bin/true", "true", (char *)NULL);
	return 0;
}

static int
ptrace_parent(void)
{
	(void)ptrace(PTRACE_ATTACH, getppid(), NULL, NULL);
	return 0;
}

static int
regain_root(void)
{
	if (setuid(0) == 0)
		return 1;
	return 0;
}

static int
bpf_call(void)
{
	(void)syscall(SYS_bpf, 0, NULL, 0);
	return 0;
}

static int
io_uring(void)
{
	(void)syscall(SYS_io_uring_setup, 1, NULL);
	return 0;
}

static int
new_namespace(void)
{
	(void)unshare(CLONE_NEWUSER);
	return 0;
}

/* Calls on neither list fail with EPERM and the process carries on. */
static int
unlisted_calls(void)
{
	if (syscall(SYS_acct, NULL) != -1 || errno != EPERM)
		return 1;
	if (syscall(SYS_memfd_create, "x", 0) != -1 || errno != EPERM)
		return 2;
	if (fork() != -1 || errno != EPERM) /* clone without CLONE_THREAD */
		return 3;
	if (kill(getppid(), 0) != -1 || errno != EPERM) /* kill only at ourselves */
		return 4;
	return 0;
}

static void
test_procmond_allows(void **state)
{
	(void)state;
	assert_int_equal(under_filter(SECCOMP_PROFILE_PROCMOND, allowed_calls), 0);
	assert_int_equal(under_filter(SECCOMP_PROFILE_PROCMOND_BPF, allowed_calls), 0);
}

static void
test_procmond_kills(void **state)
{
	static int (*const fns[])(void) = {
		socket_inet, socket_inet6, socket_packet, exec_true,     ptrace_parent,
		regain_root, bpf_call,     io_uring,      new_namespace,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		print_message("forbidden call %zu\n", i);
		assert_int_equal(under_filter(SECCOMP_PROFILE_PROCMOND, fns[i]), DIED + SIGSYS);
		assert_int_equal(under_filter(SECCOMP_PROFILE_PROCMOND_BPF, fns[i]), DIED + SIGSYS);
	}
}

static void
test_procmond_default_eperm(void **state)
{
	(void)state;
	assert_int_equal(under_filter(SECCOMP_PROFILE_PROCMOND, unlisted_calls), 0);
}

/* Like under_filter(), but a coverage build leaves the child through exit()
 * so the counters of the filter code it ran are written (as supervise.c
 * does for the engine); the agent profile lets those writes through. */
static int
under_filter_counted(enum seccomp_profile profile, int (*fn)(void))
{
	pid_t pid;
	int st, rc;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct errbuf err;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(90);
		if (seccomp_profile_apply(profile, &err) < 0)
			_exit(91);
		rc = fn();
#ifdef DE_COVERAGE
		exit(rc);
#else
		_exit(rc);
#endif
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : DIED + WTERMSIG(st);
}

/* What the agent's engine does after its drop (its measured allow-list):
 * files with sync and rename, IP and unix sockets, libcurl's socketpair, the
 * netlink socket of getaddrinfo, the ioctls of the syslog sink and the
 * resolver, a thread (clone3 answers ENOSYS first), signals at itself. */
static int
agent_allowed_calls(void)
{
	char path[] = "/tmp/test-seccomp-XXXXXX", moved[64], buf[8];
	int fd, sv[2], n = 0, outq = 0;
	pthread_t t;
	void *ret = NULL;

	if ((fd = mkstemp(path)) < 0)
		return 1;
	if (pwrite(fd, "abc", 3, 0) != 3 || fdatasync(fd) < 0 || pread(fd, buf, 3, 0) != 3 ||
	    ftruncate(fd, 1) < 0 || fsync(fd) < 0)
		return 2;
	close(fd);
	snprintf(moved, sizeof(moved), "%s.1", path);
	if (rename(path, moved) < 0 || chmod(moved, 0600) < 0 || access(moved, R_OK) < 0 ||
	    unlink(moved) < 0)
		return 3;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 4;
	if (ioctl(fd, TIOCOUTQ, &outq) < 0 || ioctl(fd, FIONREAD, &n) < 0)
		return 5;
	close(fd);
	if ((fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 && errno != EAFNOSUPPORT)
		return 6;
	if (fd >= 0)
		close(fd);
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0)) < 0)
		return 7;
	close(fd);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 8;
	close(sv[0]);
	close(sv[1]);
	if (pthread_create(&t, NULL, thread_main, &n) != 0 || pthread_join(t, &ret) != 0 ||
	    ret != &n)
		return 9;
	if (getrandom(buf, sizeof(buf), 0) != sizeof(buf) || kill(getpid(), 0) != 0)
		return 10;
#ifdef SYS_clone3
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 11;
#endif
	return 0;
}

/* Calls not on the agent's list fail with EPERM and the engine carries on:
 * a fork, other ioctls, socketpair beyond AF_UNIX, kill at another process,
 * host settings, memfd, prctl. */
static int
agent_unlisted_calls(void)
{
	int fd, on = 1;

	if (fork() != -1 || errno != EPERM)
		return 1;
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return 2;
	if (ioctl(fd, FIOASYNC, &on) != -1 || errno != EPERM)
		return 3;
	close(fd);
	if (syscall(SYS_socketpair, AF_INET, SOCK_STREAM, 0, NULL) != -1 || errno != EPERM)
		return 4;
	if (kill(getppid(), 0) != -1 || errno != EPERM)
		return 5;
	if (syscall(SYS_sethostname, "x", 1) != -1 || errno != EPERM)
		return 6;
	if (syscall(SYS_acct, NULL) != -1 || errno != EPERM)
		return 7;
	if (syscall(SYS_memfd_create, "x", 0) != -1 || errno != EPERM)
		return 8;
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != -1 || errno != EPERM)
		return 9;
	return 0;
}

static void
test_agent_allows(void **state)
{
	(void)state;
	assert_int_equal(under_filter_counted(SECCOMP_PROFILE_AGENT, agent_allowed_calls), 0);
}

/* What an attacker would reach for kills the engine, as it kills procmond
 * (IP sockets excepted: the engine's sinks need them). */
static void
test_agent_kills(void **state)
{
	static int (*const fns[])(void) = {
		socket_packet, exec_true, ptrace_parent, regain_root,
		bpf_call,      io_uring,  new_namespace,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		print_message("forbidden call %zu\n", i);
		assert_int_equal(under_filter(SECCOMP_PROFILE_AGENT, fns[i]), DIED + SIGSYS);
	}
}

static void
test_agent_default_eperm(void **state)
{
	(void)state;
	assert_int_equal(under_filter_counted(SECCOMP_PROFILE_AGENT, agent_unlisted_calls), 0);
}

/* procmond's argument-narrowed calls: ioctl only TCGETS (isatty), kill and
 * tgkill only at itself; clone3 answers ENOSYS. */
static int
procmond_narrow_calls(void)
{
	int fd, n = 0;

	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return 1;
	if (isatty(fd) || errno != ENOTTY) /* TCGETS reached the driver */
		return 2;
	if (ioctl(fd, FIONREAD, &n) != -1 || errno != EPERM)
		return 3;
	close(fd);
	if (kill(getpid(), 0) != 0)
		return 4;
	if (syscall(SYS_tgkill, getpid(), gettid(), 0) != 0)
		return 5;
	if (syscall(SYS_tgkill, getppid(), getppid(), 0) != -1 || errno != EPERM)
		return 6;
#ifdef SYS_clone3
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 7;
#endif
	return 0;
}

static void
test_procmond_narrowed_arguments(void **state)
{
	(void)state;
	assert_int_equal(under_filter_counted(SECCOMP_PROFILE_PROCMOND, procmond_narrow_calls), 0);
	assert_int_equal(under_filter_counted(SECCOMP_PROFILE_PROCMOND_BPF, procmond_narrow_calls),
	                 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_procmond_allows),
		cmocka_unit_test(test_procmond_kills),
		cmocka_unit_test(test_procmond_default_eperm),
		cmocka_unit_test(test_agent_allows),
		cmocka_unit_test(test_agent_kills),
		cmocka_unit_test(test_agent_default_eperm),
		cmocka_unit_test(test_procmond_narrowed_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
