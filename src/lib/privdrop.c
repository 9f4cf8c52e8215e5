#include "privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

static void
cap_freep(cap_t *c)
{
	if (*c != NULL)
		cap_free(*c);
}

static int
lookup(const char *name, struct privdrop_user *ret)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc;

	rc = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (rc != 0)
		return -rc;
	if (res == NULL)
		return -ENOENT;
	memset(ret, 0, sizeof(*ret));
	ret->uid = pw.pw_uid;
	ret->gid = pw.pw_gid;
	if (de_strlcpy(ret->name, pw.pw_name, sizeof(ret->name)) >= sizeof(ret->name))
		return -ENAMETOOLONG;
	return 0;
}

int
privdrop_resolve_user(const char *name, struct privdrop_user *ret)
{
	struct privdrop_user u;
	int rc;

	if (!isempty(name) && lookup(name, &u) == 0) {
		*ret = u;
		return 0;
	}
	if ((rc = lookup(PRIVDROP_FALLBACK_USER, &u)) < 0)
		return rc;
	u.fell_back = !isempty(name) && !streq(name, PRIVDROP_FALLBACK_USER);
	*ret = u;
	return 0;
}

static bool
in_list(int cap, const int *caps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (caps[i] == cap)
			return true;
	return false;
}

/* Removes every capability not listed from the bounding set, so nothing can
 * come back even through a file capability. Needs CAP_SETPCAP. */
static int
trim_bounding(const int *caps, size_t n, struct errbuf *err)
{
	int last = (int)cap_max_bits() - 1;

	for (int c = 0; c <= last; c++) {
		if (in_list(c, caps, n) || !CAP_IS_SUPPORTED(c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
			int rc = -errno;

			errbuf_set(err, "dropping capability %d from the bounding set: %s", c,
			           strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int
switch_ids(const struct privdrop_user *u, struct errbuf *err)
{
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		goto fail_keep;
	if (setgroups(1, &u->gid) < 0) {
		errbuf_set(err, "setgroups: %s", strerror(errno));
		return -errno;
	}
	if (setresgid(u->gid, u->gid, u->gid) < 0) {
		errbuf_set(err, "setresgid(%u): %s", (unsigned)u->gid, strerror(errno));
		return -errno;
	}
	if (setresuid(u->uid, u->uid, u->uid) < 0) {
		errbuf_set(err, "setresuid(%u): %s", (unsigned)u->uid, strerror(errno));
		return -errno;
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		goto fail_keep;
	return 0;
fail_keep:
	errbuf_set(err, "PR_SET_KEEPCAPS: %s", strerror(errno));
	return -errno;
}

static int
set_caps(const int *caps, size_t n, struct errbuf *err)
{
	_cleanup_(cap_freep) cap_t c = cap_init();
	cap_value_t v[64];

	if (c == NULL)
		return -ENOMEM;
	if (n > ARRAY_SIZE(v))
		return -E2BIG;
	for (size_t i = 0; i < n; i++)
		v[i] = caps[i];
	if (n > 0 && (cap_set_flag(c, CAP_PERMITTED, (int)n, v, CAP_SET) < 0 ||
	              cap_set_flag(c, CAP_EFFECTIVE, (int)n, v, CAP_SET) < 0))
		return -EINVAL;
	if (cap_set_proc(c) < 0) {
		errbuf_set(err, "cap_set_proc: %s", strerror(errno));
		return -errno;
	}
	/* Ambient capabilities survive execve: none may exist. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		errbuf_set(err, "clearing ambient capabilities: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* Proves the old identity cannot come back. */
static int
verify(const struct privdrop_user *u, struct errbuf *err)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0)
		return -errno;
	if (r != u->uid || e != u->uid || s != u->uid || gr != u->gid || ge != u->gid ||
	    gs != u->gid) {
		errbuf_set(err, "ids are not %u:%u after the switch", (unsigned)u->uid,
		           (unsigned)u->gid);
		return -EPERM;
	}
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		errbuf_set(err, "setuid(0) succeeded after dropping privileges");
		return -EPERM;
	}
	if (u->gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
		errbuf_set(err, "setgid(0) succeeded after dropping privileges");
		return -EPERM;
	}
	return 0;
}

int
privdrop_apply(const struct privdrop_user *u, const int *caps, size_t n_caps, struct errbuf *err)
{
	bool can_switch = privdrop_has_cap(CAP_SETUID) && privdrop_has_cap(CAP_SETGID);
	int rc;

	if (privdrop_has_cap(CAP_SETPCAP) && (rc = trim_bounding(caps, n_caps, err)) < 0)
		return rc;
	if (can_switch && (rc = switch_ids(u, err)) < 0)
		return rc;
	if ((rc = set_caps(caps, n_caps, err)) < 0)
		return rc;
	if (can_switch && (rc = verify(u, err)) < 0)
		return rc;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		errbuf_set(err, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int
privdrop_cap_effective(uint64_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	const char *p;
	size_t len;
	uint64_t v = 0;
	int rc;

	if ((rc = read_file_at(AT_FDCWD, "/proc/self/status", 1u << 16, true, &buf, &len)) < 0)
		return rc;
	if ((p = strstr(buf, "\nCapEff:")) == NULL)
		return -ENODATA;
	p += 8;
	while (*p == '\t' || *p == ' ')
		p++;
	for (int i = 0; i < 16 && *p != '\n' && *p != '\0'; i++, p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	*ret = v;
	return 0;
}

bool
privdrop_has_cap(int cap)
{
	uint64_t eff;

	if (cap < 0 || cap > 63 || privdrop_cap_effective(&eff) < 0)
		return false;
	return (eff >> cap) & 1u;
}
