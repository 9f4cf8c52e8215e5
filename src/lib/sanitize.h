/* Privacy sanitizing (SPEC §7), applied before anything is stored, logged or
 * sent:
 *  - the value after --password --secret --token --api-key -p -s -t -k, and the
 *    value of --flag=value forms of the long ones, becomes [REDACTED];
 *  - inside an argument that holds a shell script (it contains white space,
 *    as in `sh -c "..."`), the long flags are redacted the same way (the short
 *    ones are too ambiguous there: `curl -s URL` would lose its URL);
 *  - environment values whose names contain PASSWORD, SECRET, TOKEN, KEY,
 *    API_KEY or AUTH (any case) become [REDACTED]: in a command line, the
 *    value of a NAME=value word (`env DB_PASSWORD=… app`, and inside an
 *    embedded script, `sh -c "TOKEN=… curl …"`);
 *  - an argument naming a path under .ssh/, .aws/, .gnupg/, .kube/config or
 *    .docker/config becomes [REDACTED] (the --flag= prefix is kept). */
#ifndef DE_SANITIZE_H
#define DE_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>

#define SANITIZE_REDACTED "[REDACTED]"

/* Joins argv[0..argc) with single spaces into a new string, sanitized.
 * Returns 0 and sets *ret (caller frees), or -ENOMEM. */
int sanitize_argv(const char *const *argv, size_t argc, char **ret);

/* Sanitizes a command line given as the NUL-separated bytes of
 * /proc/PID/cmdline (len bytes, a trailing NUL optional). Non-printable bytes
 * are shown as '?'. Returns 0 and sets *ret (caller frees), or -ENOMEM. */
int sanitize_cmdline_raw(const char *buf, size_t len, char **ret);

/* True when an environment variable of this name must have its value hidden. */
bool sanitize_env_name_is_secret(const char *name);

/* True when path (or any part of it) lies under a protected directory. */
bool sanitize_path_is_secret(const char *path);

/* Returns a new string: path itself, or [REDACTED] when it is secret.
 * NULL when memory is short or path is NULL. */
char *sanitize_path(const char *path);

#endif
