#include "seccomp_profile.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* Denied in every profile: no new programs, no peeking into other processes,
 * no kernel or namespace surgery, no identity changes after the drop. */
static const char *const deny_always[] = {
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
	"acct",
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
	"quotactl",
	"syslog",
	"iopl",
	"ioperm",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"sethostname",
	"setdomainname",
	"open_by_handle_at",
	"name_to_handle_at",
	"lookup_dcookie",
	"vhangup",
	"nfsservctl",
	"uselib",
};

#define NS_FLAGS                                                                                   \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
	 CLONE_NEWCGROUP)

static int
deny(scmp_filter_ctx ctx, const char *name, struct errbuf *err)
{
	int nr = seccomp_syscall_resolve_name(name), rc;

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0) {
		errbuf_set(err, "seccomp rule for %s: %s", name, strerror(-rc));
		return rc;
	}
	return 0;
}

/* procmond: sockets only for AF_UNIX (the agent) and AF_NETLINK (already
 * open before the drop; getaddrinfo-free code never needs a new one). */
static int
deny_ip_sockets(scmp_filter_ctx ctx, struct errbuf *err)
{
	for (int fam = 0; fam < AF_MAX; fam++) {
		int rc;

		if (fam == AF_UNIX || fam == AF_NETLINK)
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
		                      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
		if (rc < 0) {
			errbuf_set(err, "seccomp socket rule: %s", strerror(-rc));
			return rc;
		}
	}
	/* socketpair is AF_UNIX only in practice; forbid the rest the same way. */
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
	                        SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)AF_UNIX));
}

/* clone with any namespace flag. libseccomp has no "masked not equal", so
 * one rule per flag. */
static int
deny_namespace_clones(scmp_filter_ctx ctx, struct errbuf *err)
{
	int rc;

	for (unsigned long f = 1; f != 0; f <<= 1) {
		if (!(NS_FLAGS & f))
			continue;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ, f, f));
		if (rc < 0) {
			errbuf_set(err, "seccomp clone rule: %s", strerror(-rc));
			return rc;
		}
	}
	/* clone3 passes flags in memory seccomp cannot read: make glibc fall back
	 * to clone by answering ENOSYS. */
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

int
seccomp_profile_apply(enum seccomp_profile profile, struct errbuf *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

	if (ctx == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(deny_always) && rc == 0; i++)
		rc = deny(ctx, deny_always[i], err);
	if (rc == 0 && profile != SECCOMP_PROFILE_PROCMOND_BPF)
		rc = deny(ctx, "bpf", err);
	if (rc == 0 && profile != SECCOMP_PROFILE_AGENT)
		rc = deny_ip_sockets(ctx, err);
	if (rc == 0)
		rc = deny_namespace_clones(ctx, err);
	if (rc == 0 && (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0)
		errbuf_set(err, "seccomp TSYNC: %s", strerror(-rc));
	if (rc == 0 && (rc = seccomp_load(ctx)) < 0)
		errbuf_set(err, "seccomp_load: %s", strerror(-rc));
	seccomp_release(ctx);
	return rc < 0 ? rc : 0;
}
