/* The pure half of procfs.h: parsers of /proc file contents. They work on
 * buffers (never NUL-terminated by assumption), trust nothing, and are what
 * the fuzz targets exercise. The reader half is procfs.c. */
#include "procfs.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sanitize.h"
#include "util.h"

#define DELETED_SUFFIX " (deleted)"
#define MEMFD_PREFIX   "/memfd:"

static const char *
skip_field(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	while (p < end && *p != ' ' && *p != '\n')
		p++;
	return p;
}

/* Parses the next space-separated unsigned decimal at *pp. */
static int
next_u64(const char **pp, const char *end, uint64_t *ret)
{
	const char *p = *pp;
	uint64_t v = 0;
	bool neg = false, any = false;

	while (p < end && *p == ' ')
		p++;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
		any = true;
	}
	if (!any || (p < end && *p != ' ' && *p != '\n'))
		return -EINVAL;
	*pp = p;
	*ret = neg ? 0 : v; /* negative values only appear in fields we clamp */
	return 0;
}

int
procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *ret)
{
	const char *end = buf + len, *open, *close = NULL, *p;
	struct procfs_stat st = { 0 };
	uint64_t v, pid;

	if ((open = memchr(buf, '(', len)) == NULL)
		return -EINVAL;
	for (p = open + 1; p < end; p++)
		if (*p == ')')
			close = p;
	if (close == NULL || close + 2 >= end || close[1] != ' ')
		return -EINVAL;
	p = buf;
	if (next_u64(&p, open, &pid) < 0)
		return -EINVAL;
	if (pid == 0 || pid > INT32_MAX)
		return -EINVAL;
	st.pid = (pid_t)pid;
	st.comm_len = (size_t)(close - open - 1);
	if (st.comm_len >= sizeof(st.comm))
		st.comm_len = sizeof(st.comm) - 1;
	memcpy(st.comm, open + 1, st.comm_len);
	st.comm[st.comm_len] = '\0';
	p = close + 2;
	st.state = *p++;
	/* Fields 4.. after the state; index them by number for clarity. */
	for (int field = 4; field <= 24; field++) {
		if (field == 5 || field == 6 || field == 8 || (field >= 10 && field <= 13) ||
		    (field >= 16 && field <= 19) || field == 21 || field == 23) {
			const char *q = skip_field(p, end);

			if (q == p)
				return -EINVAL;
			p = q;
			continue;
		}
		if (next_u64(&p, end, &v) < 0)
			return -EINVAL;
		switch (field) {
		case 4:
			st.ppid = v > INT32_MAX ? 0 : (pid_t)v;
			break;
		case 7:
			st.tty_nr = (uint32_t)v;
			break;
		case 9:
			st.flags = (uint32_t)v;
			break;
		case 14:
			st.utime = v;
			break;
		case 15:
			st.stime = v;
			break;
		case 20:
			st.num_threads = v > INT32_MAX ? INT32_MAX : (int32_t)v;
			break;
		case 22:
			st.starttime = v;
			break;
		case 24:
			st.rss_pages = v;
			break;
		default:
			break;
		}
	}
	*ret = st;
	return 0;
}

static int
parse_ids_line(const char *p, const char *eol, int64_t *ret_real, int64_t *ret_eff)
{
	uint64_t v[2];
	int n = 0;

	while (n < 2) {
		uint64_t x = 0;
		bool any = false;

		while (p < eol && (*p == '\t' || *p == ' '))
			p++;
		for (; p < eol && *p >= '0' && *p <= '9'; p++) {
			if (x > UINT32_MAX)
				return -EINVAL;
			x = x * 10 + (uint64_t)(*p - '0');
			any = true;
		}
		if (!any || x > UINT32_MAX || (p < eol && *p != '\t' && *p != ' '))
			return -EINVAL;
		v[n++] = x;
	}
	*ret_real = (int64_t)v[0];
	*ret_eff = (int64_t)v[1];
	return 0;
}

int
procfs_parse_status(const char *buf, size_t len, struct procfs_status *ret)
{
	const char *p = buf, *end = buf + len;
	struct procfs_status st = { -1, -1, -1, -1, -1 };
	bool have_uid = false;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > 4 && memcmp(p, "Uid:", 4) == 0) {
			if (parse_ids_line(p + 4, eol, &st.uid, &st.euid) == 0)
				have_uid = true;
		} else if ((size_t)(eol - p) > 4 && memcmp(p, "Gid:", 4) == 0) {
			if (parse_ids_line(p + 4, eol, &st.gid, &st.egid) < 0)
				st.gid = st.egid = -1;
		} else if ((size_t)(eol - p) > 8 && memcmp(p, "Threads:", 8) == 0) {
			uint64_t v = 0;
			const char *q = p + 8;
			bool any = false;

			while (q < eol && (*q == '\t' || *q == ' '))
				q++;
			for (; q < eol && *q >= '0' && *q <= '9' && v <= INT32_MAX; q++, any = true)
				v = v * 10 + (uint64_t)(*q - '0');
			if (any && q == eol && v <= INT32_MAX)
				st.threads = (int32_t)v;
		}
		p = eol + 1;
	}
	if (!have_uid)
		return -EINVAL;
	*ret = st;
	return 0;
}

static bool
is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

bool
procfs_container_id(const char *path, char id[65])
{
	static const char *const prefixes[] = {
		"docker-", "cri-containerd-", "crio-", "libpod-", "containerd-", "",
	};
	static const char *const engines[] = {
		"docker", "containerd", "crio", "kubepods", "libpod", "podman", "machine.slice",
	};
	bool engine_seen = false;
	const char *p = path;

	while (p != NULL && *p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n > 6 && memcmp(p + n - 6, ".scope", 6) == 0)
			n -= 6;
		for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
			size_t pl = strlen(prefixes[i]);

			if (n < pl || memcmp(p, prefixes[i], pl) != 0)
				continue;
			if (pl == 0 && !engine_seen)
				continue; /* a bare id only under a container engine's tree */
			if (is_hex64(p + pl, n - pl) && strncmp(p, "crio-conmon-", 12) != 0) {
				memcpy(id, p + pl, 64);
				id[64] = '\0';
				return true;
			}
		}
		for (size_t i = 0; i < ARRAY_SIZE(engines); i++)
			if (memmem(p, n, engines[i], strlen(engines[i])) != NULL)
				engine_seen = true;
		p = slash ? slash + 1 : NULL;
	}
	return false;
}

int
procfs_parse_cgroup(const char *buf, size_t len, char **ret_path, char id[65])
{
	const char *p = buf, *end = buf + len, *first = NULL, *unified = NULL;
	const char *first_end = NULL, *unified_end = NULL;
	_cleanup_free_ char *path = NULL;

	id[0] = '\0';
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *c1, *c2;

		if (eol == NULL)
			eol = end;
		c1 = memchr(p, ':', (size_t)(eol - p));
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
		if (c2 != NULL) {
			if (first == NULL) {
				first = c2 + 1;
				first_end = eol;
			}
			if (c1 - p == 1 && p[0] == '0' && c2 == c1 + 1 && unified == NULL) {
				unified = c2 + 1;
				unified_end = eol;
			}
		}
		p = eol + 1;
	}
	if (first == NULL)
		return -EINVAL;
	/* On hybrid hosts "0::/" says nothing; a v1 path may still name the container. */
	if (unified != NULL && !(unified_end - unified == 1 && unified[0] == '/')) {
		first = unified;
		first_end = unified_end;
	}
	if ((path = utf8_sanitize_dup(first, (size_t)(first_end - first))) == NULL)
		return -ENOMEM;
	if (!procfs_container_id(path, id)) {
		/* Try every line: v1 hierarchies often carry the id when v2 does not. */
		for (p = buf; p < end && id[0] == '\0';) {
			const char *eol = memchr(p, '\n', (size_t)(end - p));
			_cleanup_free_ char *line = NULL;

			if (eol == NULL)
				eol = end;
			if ((line = strndup(p, (size_t)(eol - p))) == NULL)
				return -ENOMEM;
			if (strlen(line) == (size_t)(eol - p))
				procfs_container_id(line, id);
			p = eol + 1;
		}
	}
	*ret_path = TAKE_PTR(path);
	return 0;
}

bool
procfs_tty_name(uint32_t tty_nr, char *buf, size_t n)
{
	unsigned major = (tty_nr >> 8) & 0xfff;
	unsigned minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
	int r;

	if (tty_nr == 0)
		return false;
	if (major >= 136 && major <= 143)
		r = snprintf(buf, n, "pts/%u", (major - 136) * 256 + minor);
	else if (major == 4 && minor < 64)
		r = snprintf(buf, n, "tty%u", minor);
	else if (major == 4)
		r = snprintf(buf, n, "ttyS%u", minor - 64);
	else if (major == 5 && minor == 1)
		r = snprintf(buf, n, "console");
	else
		r = snprintf(buf, n, "dev/%u:%u", major, minor);
	return r > 0 && (size_t)r < n;
}

int
procfs_parse_btime(const char *buf, size_t len, uint64_t *ret_sec)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if (eol - p > 6 && memcmp(p, "btime ", 6) == 0) {
			char num[24];
			size_t n = (size_t)(eol - p - 6);

			if (n == 0 || n >= sizeof(num))
				return -EINVAL;
			memcpy(num, p + 6, n);
			num[n] = '\0';
			return parse_u64(num, ret_sec);
		}
		p = eol + 1;
	}
	return -EINVAL;
}

char *
procfs_clean_exe(const char *link, bool *ret_deleted, bool *ret_memfd)
{
	size_t n = strlen(link), sl = strlen(DELETED_SUFFIX);
	bool deleted = false, memfd;

	if (n >= sl && memcmp(link + n - sl, DELETED_SUFFIX, sl) == 0) {
		deleted = true;
		n -= sl;
	}
	memfd = strncmp(link, MEMFD_PREFIX, strlen(MEMFD_PREFIX)) == 0;
	*ret_deleted = deleted || memfd;
	*ret_memfd = memfd;
	return utf8_sanitize_dup(link, n);
}

uint64_t
procfs_digest(const char *buf, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 1099511628211ull;
	}
	return h;
}

int
procfs_sanitize_cmdline(const char *raw, size_t len, char **ret)
{
	_cleanup_free_ char *s = NULL;
	char *u;
	int rc;

	if ((rc = sanitize_cmdline_raw(raw, len, &s)) < 0)
		return rc;
	/* sanitize_cmdline_raw keeps high bytes; the record must be valid UTF-8. */
	if ((u = utf8_sanitize_dup(s, strlen(s))) == NULL)
		return -ENOMEM;
	*ret = u;
	return 0;
}
