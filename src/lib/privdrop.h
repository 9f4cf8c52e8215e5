/* The one place a DaemonEye process gives up privilege (STYLE.md rule 2,
 * SPEC §8), in a fixed order:
 *
 *   1. privdrop_resolve_user(): the configured user, or `nobody` when it does
 *      not exist (the caller logs the fallback once);
 *   2. the caller opens and chowns what needs privilege (sockets, the WAL
 *      directory, BPF programs) while it still can;
 *   3. privdrop_apply(): PR_SET_KEEPCAPS, setgroups to the user's primary
 *      group only, setresgid, setresuid, then the bounding, permitted,
 *      effective and inheritable sets trimmed to exactly the listed
 *      capabilities and the ambient set cleared; then it proves the change:
 *      setuid(0) and setgid(0) must fail and the ids must be the target
 *      ones; then PR_SET_NO_NEW_PRIVS;
 *   4. seccomp_profile_apply() (seccomp_profile.h).
 *
 * Nothing here logs or exits: failures come back as -errno with the reason in
 * err, and the caller (process-level code) calls fatal(). */
#ifndef DE_PRIVDROP_H
#define DE_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errbuf.h"

#define PRIVDROP_FALLBACK_USER "nobody"

struct privdrop_user {
	uid_t uid;
	gid_t gid;
	char name[64];
	bool fell_back; /* the requested user did not exist: this is `nobody` */
};

/* Resolves name (NULL or "": `nobody`) with getpwnam_r, falling back to
 * `nobody`. Returns 0 and fills *ret, or -ENOENT when neither exists. */
int privdrop_resolve_user(const char *name, struct privdrop_user *ret);

/* Drops to u keeping only caps[0..n_caps) (CAP_* numbers from
 * <linux/capability.h>) in the effective and permitted sets. Running as a
 * non-root user already, it only trims capabilities and sets no_new_privs.
 * Returns 0, or -errno with the step that failed in err. */
int privdrop_apply(const struct privdrop_user *u, const int *caps, size_t n_caps,
                   struct errbuf *err);

/* The effective capability mask of this process (CapEff of
 * /proc/self/status). Returns 0 and sets *ret, or -errno. */
int privdrop_cap_effective(uint64_t *ret);

/* True when the effective set has cap. */
bool privdrop_has_cap(int cap);

#endif
