#include "seccomp_profile.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* ---- what kills (procmond) or fails (agent) ----
 *
 * What an attacker who took over the process would reach for: new programs,
 * other processes' memory, kernel and namespace surgery, identity changes
 * after the drop, the kernel attack surfaces that bypass or widen seccomp
 * (io_uring, bpf, userfaultfd, perf). procmond dies on these
 * (SCMP_ACT_KILL_PROCESS: no quiet probing), and so does the agent's engine. */
static const char *const forbidden[] = {
	"execve",
	"execveat",
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"init_module",
	"finit_module",
	"delete_module",
	"kexec_load",
	"kexec_file_load",
	"mount",
	"umount2",
	"pivot_root",
	"chroot",
	"move_mount",
	"open_tree",
	"fsopen",
	"fsmount",
	"fsconfig",
	"fspick",
	"mount_setattr",
	"unshare",
	"setns",
	"keyctl",
	"add_key",
	"request_key",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"perf_event_open",
	"reboot",
	"swapon",
	"swapoff",
	"setuid",
	"setgid",
	"setreuid",
	"setregid",
	"setresuid",
	"setresgid",
	"setfsuid",
	"setfsgid",
	"setgroups",
	"personality",
	"iopl",
	"ioperm",
	"open_by_handle_at",
	"name_to_handle_at",
};

/* ---- what any of our processes needs to run at all (both profiles) ----
 *
 * The C runtime, threads and libraries, measured in both procmond and the
 * agent's engine (docs/procmond.md, docs/security.md): memory (brk, mmap,
 * munmap, mprotect, madvise; margin: mremap for realloc), threads (rseq,
 * set_robust_list, futex, exit; clone3 is answered ENOSYS and clone is
 * narrowed below), signals (rt_sigprocmask, rt_sigaction; margin: handler
 * return, restarting, the stack abort() and sanitizers use), time (what the
 * vDSO does not serve, clock_nanosleep for sleeps), read-only identity, and
 * library start-up (getrandom for OpenSSL and UUIDs, uname, sysinfo;
 * margin: getrusage). */
static const char *const runtime_allowed[] = {
	"brk",
	"mmap",
	"munmap",
	"mprotect",
	"madvise",
	"mremap",
	"futex",
	"set_robust_list",
	"rseq",
	"exit",
	"sched_yield",
	"sched_getaffinity",
	"rt_sigprocmask",
	"rt_sigaction",
	"rt_sigreturn",
	"rt_sigtimedwait",
	"sigaltstack",
	"restart_syscall",
	"clock_gettime",
	"clock_getres",
	"gettimeofday",
	"time",
	"nanosleep",
	"clock_nanosleep",
	"getpid",
	"gettid",
	"getppid",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"getresuid",
	"getresgid",
	"getgroups",
	"capget",
	"getrandom",
	"uname",
	"sysinfo",
	"getrusage",
	"exit_group",
};

/* ---- what procmond may do (after its privilege drop) ----
 *
 * Measured: procmond run under `strace -f` in every mode (--once; standalone
 * with the ebpf, netlink and poll sources through a few hundred short-lived,
 * deleted, memfd-executed and huge binaries, SIGHUP and SIGTERM; managed under
 * the agent through an engine restart and shutdown), counting only the calls
 * made after the filter went in. docs/procmond.md has the figures. The rest
 * of each group is margin: calls glibc, OpenSSL or jansson make for the same
 * job on another path or version. Calls with argument conditions (socket,
 * clone, ioctl, kill, tgkill) are added separately below. */
static const char *const procmond_allowed[] = {
	/* Reading /proc and executables (measured: openat, read, pread64,
	 * newfstatat, readlinkat, getdents64, lseek, close, fcntl, faccessat2;
	 * margin: the other stat and read variants glibc picks by version). */
	"openat",
	"read",
	"readv",
	"pread64",
	"preadv",
	"newfstatat",
	"fstat",
	"statx",
	"readlinkat",
	"getdents64",
	"lseek",
	"close",
	"fcntl",
	"faccessat",
	"faccessat2",
	"dup",
	"dup3",
	/* A process's ids without /proc/PID/status (procfs.c): pidfd_open, then
	 * ioctl PIDFD_GET_INFO only (below). The pidfd itself allows nothing
	 * else here: pidfd_send_signal, pidfd_getfd and setns are not listed. */
	"pidfd_open",
	/* Output and the write-ahead log (measured: write, writev, fdatasync,
	 * fsync, mkdir, flock; from wal.c: ftruncate after a torn tail, unlinkat
	 * for acknowledged segments, mmap to read a segment back). */
	"write",
	"writev",
	"pwrite64",
	"fsync",
	"fdatasync",
	"ftruncate",
	"mkdir",
	"mkdirat",
	"unlinkat",
	"flock",
	/* The event loop (measured: epoll_*, timerfd_*, signalfd4, eventfd2,
	 * poll; margin: the pwait and ppoll forms). */
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"poll",
	"ppoll",
	"timerfd_create",
	"timerfd_settime",
	"timerfd_gettime",
	"eventfd2",
	"signalfd4",
	/* The agent's unix socket and the proc connector (measured: connect,
	 * sendto, recvfrom; socket itself is conditional, below). */
	"connect",
	"sendto",
	"sendmsg",
	"recvfrom",
	"recvmsg",
	"shutdown",
	"getsockopt",
	"getsockname",
	"getpeername",
};

/* ---- what the agent's engine may do (after its privilege drop) ----
 *
 * Measured: the agent run under `strace -ff` (docs/security.md has the method
 * and the counts), the engine's calls after its filter went in and those of
 * every thread it started, through: collectors registering and a 3,000-exec
 * burst (SQLite WAL writes and checkpoints, retention), rules firing 40
 * alerts into every sink at once — stdout csv, a file sink rotating every
 * 4 KiB, syslog over TCP (to 127.0.0.1 and to the host's name), over TLS with
 * a client certificate and over the local socket, webhooks over HTTPS with a
 * client certificate to https://localhost, to a closed port, to the host's
 * name and to a name DNS cannot resolve (libcurl's resolver thread, glibc's
 * NSS files and DNS paths), the spools of the sinks that were down, the
 * ledger's signed checkpoints, `daemoneye-cli` health/stats/alerts/rules over
 * the control socket, a SIGHUP reload and a SIGTERM shutdown. The rest of each
 * group is margin: calls glibc, OpenSSL, SQLite or libcurl make for the same
 * job on another path or version. socket, socketpair, clone, ioctl, kill and
 * tgkill have argument conditions, added below. */
static const char *const agent_allowed[] = {
	/* Files: the store (SQLite: pread64/pwrite64, fcntl locks, fdatasync,
	 * ftruncate of the WAL, unlink of journals), ledger, spools, the file
	 * sink's rotation, reading PEM files and /etc for NSS (measured: openat,
	 * read, write, pread64, pwrite64, newfstatat, lseek, close, fcntl,
	 * getdents64, fsync, fdatasync, ftruncate, mkdir, rename, renameat,
	 * unlink, unlinkat, chmod, access, dup; margin: the other stat, vector
	 * and *at forms, SQLite's fchmod of a new file and fallocate). */
	"openat",
	"read",
	"readv",
	"pread64",
	"preadv",
	"write",
	"writev",
	"pwrite64",
	"pwritev",
	"newfstatat",
	"fstat",
	"statx",
	"readlinkat",
	"getdents64",
	"lseek",
	"close",
	"fcntl",
	"dup",
	"dup2",
	"dup3",
	"fsync",
	"fdatasync",
	"ftruncate",
	"fallocate",
	"mkdir",
	"mkdirat",
	"rename",
	"renameat",
	"renameat2",
	"unlink",
	"unlinkat",
	"chmod",
	"fchmod",
	"access",
	"faccessat",
	"faccessat2",
	"flock",
	"getcwd",
	/* The event loop and libcurl's waits (measured: epoll_create1,
	 * epoll_ctl, epoll_wait, poll, timerfd_create, timerfd_settime,
	 * signalfd4; margin: the pwait/ppoll forms, eventfd). */
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"poll",
	"ppoll",
	"timerfd_create",
	"timerfd_settime",
	"timerfd_gettime",
	"eventfd2",
	"signalfd4",
	/* Sockets: the agent socket (bind, listen, accept4, chmod above), sinks
	 * and name resolution (measured: connect, sendto, sendmmsg, recvfrom,
	 * getsockopt, setsockopt, getsockname, getpeername; margin: the msg
	 * forms, accept, shutdown). socket and socketpair are conditional. */
	"bind",
	"listen",
	"accept",
	"accept4",
	"connect",
	"sendto",
	"sendmsg",
	"sendmmsg",
	"recvfrom",
	"recvmsg",
	"recvmmsg",
	"shutdown",
	"getsockopt",
	"setsockopt",
	"getsockname",
	"getpeername",
};

#define NS_FLAGS                                                                                   \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
	 CLONE_NEWCGROUP)

static int
add(scmp_filter_ctx ctx, uint32_t action, const char *name, struct errbuf *err)
{
	int nr = seccomp_syscall_resolve_name(name), rc;

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture */
	if ((rc = seccomp_rule_add(ctx, action, nr, 0)) < 0) {
		errbuf_set(err, "seccomp rule for %s: %s", name, strerror(-rc));
		return rc;
	}
	return 0;
}

static int
add_list(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
         struct errbuf *err)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = add(ctx, action, names[i], err);
	return rc;
}

static int
rule_failed(int rc, const char *what, struct errbuf *err)
{
	if (rc < 0)
		errbuf_set(err, "seccomp %s rule: %s", what, strerror(-rc));
	return rc;
}

/* socket(): AF_UNIX (the agent, syslog) and AF_NETLINK are allowed; every
 * other domain — AF_INET, AF_INET6, AF_PACKET and the rest — is `bad`. The
 * comparisons are on all 64 bits, so junk in the upper half of the register
 * cannot pass for AF_UNIX; it lands on the `> AF_NETLINK` rule. */
_Static_assert(AF_UNIX < AF_NETLINK, "socket domain ranges below assume AF_UNIX < AF_NETLINK");

static int
socket_rules(scmp_filter_ctx ctx, uint32_t bad, struct errbuf *err)
{
	int rc;

	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_UNIX));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK));
	for (int fam = 0; fam < AF_NETLINK && rc == 0; fam++)
		if (fam != AF_UNIX)
			rc = seccomp_rule_add(ctx, bad, SCMP_SYS(socket), 1,
			                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, bad, SCMP_SYS(socket), 1,
		                      SCMP_A0(SCMP_CMP_GT, (scmp_datum_t)AF_NETLINK));
	return rule_failed(rc, "socket", err);
}

/* The agent's engine: AF_UNIX (its socket, local syslog, libcurl's wake-up
 * socketpair), AF_INET and AF_INET6 (webhooks, remote syslog, DNS) and
 * AF_NETLINK (glibc's getaddrinfo asks the kernel for the host's addresses);
 * every other domain is `bad`. socketpair: AF_UNIX only. */
static int
agent_socket_rules(scmp_filter_ctx ctx, uint32_t bad, struct errbuf *err)
{
	static const int ok[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ok) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ok[i]));
	for (int fam = 0; fam < AF_NETLINK && rc == 0; fam++)
		if (fam != AF_UNIX && fam != AF_INET && fam != AF_INET6)
			rc = seccomp_rule_add(ctx, bad, SCMP_SYS(socket), 1,
			                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, bad, SCMP_SYS(socket), 1,
		                      SCMP_A0(SCMP_CMP_GT, (scmp_datum_t)AF_NETLINK));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_UNIX));
	return rule_failed(rc, "socket", err);
}

/* clone(): threads only (CLONE_THREAD set, no namespace flag); any namespace
 * flag is `bad`; a fork (no CLONE_THREAD) meets the default action. clone3
 * passes its flags in memory seccomp cannot read: ENOSYS makes glibc fall
 * back to clone. */
static int
clone_rules(scmp_filter_ctx ctx, uint32_t bad, bool allow_threads, struct errbuf *err)
{
	int rc = 0;

	if (allow_threads)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ,
		                              (scmp_datum_t)(CLONE_THREAD | NS_FLAGS),
		                              (scmp_datum_t)CLONE_THREAD));
	/* libseccomp has no "any of these bits": one rule per flag. */
	for (unsigned long f = 1; f != 0 && rc == 0; f <<= 1)
		if (NS_FLAGS & f)
			rc = seccomp_rule_add(ctx, bad, SCMP_SYS(clone), 1,
			                      SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return rule_failed(rc, "clone", err);
}

/* ioctl(PIDFD_GET_INFO) with the kernel's first, 64-byte struct pidfd_info
 * (procfs.c; glibc's headers may predate it). */
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, char[64])

/* Calls allowed only with harmless arguments: ioctl only to ask whether an fd
 * is a terminal (isatty, for log output) or for a process's ids
 * (PIDFD_GET_INFO, read-only); kill and tgkill only at ourselves
 * (publish.c's kill(getpid(), SIGTERM), abort()'s raise). */
static int
narrow_rules(scmp_filter_ctx ctx, struct errbuf *err)
{
	scmp_datum_t self = (scmp_datum_t)getpid();
	int rc;

	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	                      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)TCGETS));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		                      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)PIDFD_GET_INFO_V0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, self));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, self));
	return rule_failed(rc, "argument", err);
}

/* The engine's ioctls (measured: TCGETS for isatty, SIOCOUTQ (= TIOCOUTQ)
 * for the syslog sink's acknowledgement wait, FIONREAD from glibc's DNS
 * resolver; margin: FIONBIO), kill and tgkill only at itself (abort()). */
static int
agent_narrow_rules(scmp_filter_ctx ctx, struct errbuf *err)
{
	static const unsigned long ioctls[] = { TCGETS, TIOCOUTQ, FIONREAD, FIONBIO };
	scmp_datum_t self = (scmp_datum_t)getpid();
	int rc = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ioctls) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
		                      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)ioctls[i]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, self));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		                      SCMP_A0(SCMP_CMP_EQ, self));
	return rule_failed(rc, "argument", err);
}

/* procmond: an allow-list over a default of EPERM. bpf() is forbidden with the
 * ebpf source too: once loaded and attached, the source reads its ring buffer
 * and drop counter through mmap and epoll and makes no bpf() call (measured,
 * shutdown included), so both procmond profiles are the same filter. */
static int
build_procmond(scmp_filter_ctx ctx, struct errbuf *err)
{
	const uint32_t die = SCMP_ACT_KILL_PROCESS;
	int rc;

	rc = add_list(ctx, SCMP_ACT_ALLOW, runtime_allowed, ARRAY_SIZE(runtime_allowed), err);
	if (rc == 0)
		rc = add_list(ctx, SCMP_ACT_ALLOW, procmond_allowed, ARRAY_SIZE(procmond_allowed),
		              err);
	if (rc == 0)
		rc = add_list(ctx, die, forbidden, ARRAY_SIZE(forbidden), err);
	if (rc == 0)
		rc = add(ctx, die, "bpf", err);
	if (rc == 0)
		rc = socket_rules(ctx, die, err);
	if (rc == 0)
		rc = clone_rules(ctx, die, true, err);
	if (rc == 0)
		rc = narrow_rules(ctx, err);
	/* A system call through another ABI (i386 int 0x80, x32) is not checked
	 * against the lists above: it kills too. */
	if (rc == 0 && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, die)) < 0)
		errbuf_set(err, "seccomp bad-arch action: %s", strerror(-rc));
	return rc;
}

/* The agent's engine: the measured allow-list over a default of EPERM, the
 * same forbidden calls as procmond killing it, IP sockets allowed. */
static int
build_agent(scmp_filter_ctx ctx, struct errbuf *err)
{
	const uint32_t die = SCMP_ACT_KILL_PROCESS;
	int rc;

	rc = add_list(ctx, SCMP_ACT_ALLOW, runtime_allowed, ARRAY_SIZE(runtime_allowed), err);
	if (rc == 0)
		rc = add_list(ctx, SCMP_ACT_ALLOW, agent_allowed, ARRAY_SIZE(agent_allowed), err);
	if (rc == 0)
		rc = add_list(ctx, die, forbidden, ARRAY_SIZE(forbidden), err);
	if (rc == 0)
		rc = add(ctx, die, "bpf", err);
	if (rc == 0)
		rc = agent_socket_rules(ctx, die, err);
	if (rc == 0)
		rc = clone_rules(ctx, die, true, err);
	if (rc == 0)
		rc = agent_narrow_rules(ctx, err);
	if (rc == 0 && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, die)) < 0)
		errbuf_set(err, "seccomp bad-arch action: %s", strerror(-rc));
	return rc;
}

int
seccomp_profile_apply(enum seccomp_profile profile, struct errbuf *err)
{
	bool agent = profile == SECCOMP_PROFILE_AGENT;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int rc;

	if (ctx == NULL)
		return -ENOMEM;
	rc = agent ? build_agent(ctx, err) : build_procmond(ctx, err);
	if (rc == 0 && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		errbuf_set(err, "seccomp TSYNC: %s", strerror(-rc));
	if (rc == 0 && (rc = seccomp_load(ctx)) < 0)
		errbuf_set(err, "seccomp_load: %s", strerror(-rc));
	seccomp_release(ctx);
	return rc < 0 ? rc : 0;
}
