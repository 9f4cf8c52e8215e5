/* (Named seccomp_profile.h, not seccomp.h: src/lib is on the include path and
 * would shadow libseccomp's <seccomp.h>.)
 *
 * Syscall filters installed after the privilege drop (SPEC §8). One profile
 * per process role; main.c picks it. docs/procmond.md and docs/security.md
 * list them.
 *
 * procmond (both profiles, the same filter): an ALLOW-list measured from
 * procmond's own system calls in every mode, over a default of EPERM (an
 * unforeseen library path fails with an error instead of killing the
 * collector). What an attacker who took the process would reach for kills
 * it (SCMP_ACT_KILL_PROCESS, SIGSYS): socket() for any domain but AF_UNIX and
 * AF_NETLINK, execve/execveat, ptrace, process_vm_readv/writev, set*id and
 * setgroups, mount and namespace calls (unshare, setns, clone with namespace
 * flags), module and kexec calls, bpf (the eBPF source needs none after
 * start-up), io_uring, keyrings, userfaultfd, perf_event_open, personality,
 * reboot, swap, iopl/ioperm, open_by_handle_at; and any system call through
 * another ABI (i386, x32).
 *
 * agent (the engine): an ALLOW-list measured with strace across every
 * engine path (store, ledger, each sink with libcurl/OpenSSL and name
 * resolution, spools, control socket, reload, stop; docs/security.md), over
 * a default of EPERM; the same forbidden calls as procmond kill it, except
 * that AF_INET and AF_INET6 sockets are allowed (webhooks, remote syslog,
 * DNS); socketpair AF_UNIX only; ioctl TCGETS, TIOCOUTQ, FIONREAD, FIONBIO;
 * kill/tgkill at itself. */
#ifndef DE_SECCOMP_PROFILE_H
#define DE_SECCOMP_PROFILE_H

#include "errbuf.h"

enum seccomp_profile {
	SECCOMP_PROFILE_PROCMOND = 0,
	SECCOMP_PROFILE_PROCMOND_BPF, /* procmond with the eBPF source: today the same filter */
	SECCOMP_PROFILE_AGENT,
};

/* Installs the profile's filter for this thread and every thread created
 * after (and TSYNC for those that exist). Needs no_new_privs or CAP_SYS_ADMIN.
 * Returns 0 or -errno with the reason in err. */
int seccomp_profile_apply(enum seccomp_profile profile, struct errbuf *err);

#endif
