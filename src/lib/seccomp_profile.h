/* (Named seccomp_profile.h, not seccomp.h: src/lib is on the include path and
 * would shadow libseccomp's <seccomp.h>.)
 *
 * Syscall filters installed after the privilege drop (SPEC §8). One profile
 * per process role; main.c picks it.
 *
 * The filter is a deny-list over a default-allow action (docs/procmond.md says
 * why: an allow-list over glibc, OpenSSL, jansson, SQLite and libcurl was too
 * brittle across library versions for the time we had). What it forbids is
 * what an attacker who took over the process would reach for:
 *   every profile: execve/execveat, ptrace, process_vm_readv/writev, kernel
 *     module and kexec calls, mount/umount/pivot_root/chroot, unshare/setns,
 *     keyctl/add_key/request_key, userfaultfd, io_uring (it bypasses seccomp),
 *     perf_event_open, bpf (except where the role needs it), reboot, swapon/
 *     swapoff, set*id calls, clone/clone3 with namespace flags;
 *   procmond: in addition every socket family but AF_UNIX and AF_NETLINK (no
 *     IP, no packet sockets);
 *   agent: IP sockets allowed (webhooks, remote syslog).
 * Forbidden calls fail with EPERM rather than killing the process, so an
 * unexpected library path shows up as a logged error, not a silent death. */
#ifndef DE_SECCOMP_PROFILE_H
#define DE_SECCOMP_PROFILE_H

#include "errbuf.h"

enum seccomp_profile {
	SECCOMP_PROFILE_PROCMOND = 0,
	SECCOMP_PROFILE_PROCMOND_BPF, /* procmond with the eBPF source: bpf() for map reads */
	SECCOMP_PROFILE_AGENT,
};

/* Installs the profile's filter for this thread and every thread created
 * after (and TSYNC for those that exist). Needs no_new_privs or CAP_SYS_ADMIN.
 * Returns 0 or -errno with the reason in err. */
int seccomp_profile_apply(enum seccomp_profile profile, struct errbuf *err);

#endif
