#include "procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "sanitize.h"
#include "util.h"

#define STAT_FILE_MAX   4096
#define STATUS_FILE_MAX 16384
#define CGROUP_FILE_MAX 16384
#define USER_CACHE_SIZE 64
#define CGROUP_CACHE    8
#define CGROUP_ID_MEMO  64
#define CGROUP_SET_MEMO 64
#define EXE_LINK_MAX    PATH_MAX

struct user_cache_entry {
	int64_t uid;
	char *name; /* NULL: the uid has no passwd entry */
};

/* A parsed /proc/PID/cgroup text: most processes share a handful. */
struct cgroup_cache_entry {
	uint64_t digest;
	size_t len;
	char *raw; /* the file's bytes; NULL: empty slot */
	char *path;
	char id[65];
};

/* The cgroup column of a cgroup v2 id, on a pure v2 host (see
 * procfs_cgroup_by_id): used once two reads for the id agreed. */
struct cgroup_id_memo {
	uint64_t id;
	char *path; /* NULL: empty slot */
	char cid[65];
	bool confirmed;
};

/* The cgroup column of a cgroup-set key (procfs_cgroup_by_set), read from
 * the process named here; trusted once that process is gone with its pid
 * slot's migration count unchanged. */
struct cgroup_set_memo {
	uint64_t key;
	char *path; /* NULL: empty slot */
	char cid[65];
	bool confirmed;
	pid_t pid;
	uint64_t start_ticks;
	uint64_t moves;
	const volatile uint64_t *move_slot;
};

struct procfs {
	int dirfd;
	bool pidfd_info; /* the ids come from PIDFD_GET_INFO (see read_ids_step) */
	uint64_t boot_ms;
	long hz;
	long page_size;
	struct user_cache_entry users[USER_CACHE_SIZE];
	size_t n_users, next_user;
	struct cgroup_cache_entry cgroups[CGROUP_CACHE];
	size_t next_cgroup;
	bool cgroup_v2_only; /* this /proc's cgroup files are the unified line alone */
	struct cgroup_id_memo cgroup_ids[CGROUP_ID_MEMO];
	struct cgroup_set_memo cgroup_sets[CGROUP_SET_MEMO];
};

/* ---- process ids through a pidfd ----
 *
 * /proc/PID/status is the dearest file of a process to open and generate
 * (signal masks, capabilities, cpusets, memory counters) and procmond needs
 * three numbers from it. Since Linux 6.13 ioctl(PIDFD_GET_INFO) on a pidfd
 * returns the real and effective ids directly, for about a third of the
 * cost. glibc's headers may predate it: the first, fixed-size version of
 * the structure (64 bytes) is declared here; the kernel takes its size from
 * the ioctl number. */

struct pidfd_info_v0 {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid;
	uint32_t ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
};

_Static_assert(sizeof(struct pidfd_info_v0) == 64, "PIDFD_INFO_SIZE_VER0");

#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_CREDS  (1ull << 1)
#define PIDFD_INFO_CGROUP (1ull << 2)

static int
pidfd_open_pid(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0u);
}

/* The ids of the process behind pidfd. Returns 0, or -errno (-ESRCH once
 * it has been reaped). */
static int
pidfd_get_ids(int pidfd, struct pidfd_info_v0 *ret)
{
	struct pidfd_info_v0 info = { .mask = PIDFD_INFO_CREDS | PIDFD_INFO_CGROUP };

	if (ioctl(pidfd, PIDFD_GET_INFO_V0, &info) < 0)
		return -errno;
	if (!(info.mask & PIDFD_INFO_CREDS))
		return -EOPNOTSUPP;
	*ret = info;
	return 0;
}

/* Whether PIDFD_GET_INFO answers here, and pids of this /proc are ours
 * (pidfd_open takes a pid of procmond's own pid namespace). */
static bool
pidfd_info_works(int proc_dirfd)
{
	char self[32], want[32];
	struct pidfd_info_v0 info = { 0 };
	ssize_t n = readlinkat(proc_dirfd, "self", self, sizeof(self) - 1);
	int fd, rc;

	snprintf(want, sizeof(want), "%d", (int)getpid());
	if (n <= 0 || (self[n] = '\0', !streq(self, want)))
		return false;
	if ((fd = pidfd_open_pid(getpid())) < 0)
		return false;
	rc = pidfd_get_ids(fd, &info);
	close(fd);
	return rc == 0 && info.ruid == (uint32_t)getuid() && info.euid == (uint32_t)geteuid();
}

/* ---- the reader ---- */

static uint64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* True when a /proc/PID/cgroup text is the unified hierarchy's line alone
 * (a pure cgroup v2 host): then the task's cgroup v2 id decides the whole
 * text. On a hybrid host the v1 lines are not in the id, and the column may
 * come from them (procfs_parse_cgroup). */
static bool
unified_only(const char *buf, size_t len)
{
	const char *nl;

	if (buf == NULL || len <= 3 || strncmp(buf, "0::", 3) != 0)
		return false;
	nl = memchr(buf, '\n', len);
	return nl == NULL || nl == buf + len - 1;
}

int
procfs_open(const char *proc_path, struct procfs **ret)
{
	_cleanup_free_ char *stat = NULL;
	struct procfs *pf;
	size_t len;
	uint64_t btime;
	int rc;

	if ((pf = calloc(1, sizeof(*pf))) == NULL)
		return -ENOMEM;
	pf->hz = sysconf(_SC_CLK_TCK);
	pf->page_size = sysconf(_SC_PAGESIZE);
	if (pf->hz <= 0)
		pf->hz = 100;
	if (pf->page_size <= 0)
		pf->page_size = 4096;
	if ((pf->dirfd = open(proc_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		rc = -errno;
		free(pf);
		return rc;
	}
	if (read_file_at(pf->dirfd, "stat", 1u << 16, true, &stat, &len) >= 0 &&
	    procfs_parse_btime(stat, len, &btime) == 0)
		pf->boot_ms = btime * 1000u;
	/* The live /proc: the boot instant to the millisecond, not the second. */
	if (streq(proc_path, "/proc")) {
		_cleanup_free_ char *cg = NULL;

		pf->boot_ms = clock_ms(CLOCK_REALTIME) - clock_ms(CLOCK_BOOTTIME);
		pf->pidfd_info = pidfd_info_works(pf->dirfd);
		/* The hierarchies are the host's: our own file tells. */
		pf->cgroup_v2_only =
		    read_file_at(pf->dirfd, "self/cgroup", CGROUP_FILE_MAX, true, &cg, &len) >= 0 &&
		    unified_only(cg, len);
	}
	*ret = pf;
	return 0;
}

void
procfs_free(struct procfs *pf)
{
	if (pf == NULL)
		return;
	for (size_t i = 0; i < pf->n_users; i++)
		free(pf->users[i].name);
	for (size_t i = 0; i < CGROUP_CACHE; i++) {
		free(pf->cgroups[i].raw);
		free(pf->cgroups[i].path);
	}
	for (size_t i = 0; i < CGROUP_ID_MEMO; i++)
		free(pf->cgroup_ids[i].path);
	for (size_t i = 0; i < CGROUP_SET_MEMO; i++)
		free(pf->cgroup_sets[i].path);
	if (pf->dirfd >= 0)
		close(pf->dirfd);
	free(pf);
}

bool
procfs_set_pidfd_info(struct procfs *pf, bool on)
{
	pf->pidfd_info = on && pidfd_info_works(pf->dirfd);
	return pf->pidfd_info;
}

bool
procfs_set_cgroup_memo(struct procfs *pf, bool on)
{
	pf->cgroup_v2_only = on && pf->pidfd_info;
	return pf->cgroup_v2_only;
}

bool
procfs_pidfd_info(const struct procfs *pf)
{
	return pf->pidfd_info;
}

int
procfs_dirfd(const struct procfs *pf)
{
	return pf->dirfd;
}

uint64_t
procfs_boot_ms(const struct procfs *pf)
{
	return pf->boot_ms;
}

long
procfs_ticks_per_sec(const struct procfs *pf)
{
	return pf->hz;
}

uint64_t
procfs_ticks_to_epoch_ms(const struct procfs *pf, uint64_t ticks)
{
	return pf->boot_ms + ticks * 1000u / (uint64_t)pf->hz;
}

char *
procfs_user_name(struct procfs *pf, int64_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[2048];
	struct user_cache_entry *e;

	if (uid < 0)
		return NULL;
	for (size_t i = 0; i < pf->n_users; i++)
		if (pf->users[i].uid == uid)
			return strdup_or_null(pf->users[i].name);
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) != 0)
		res = NULL;
	if (pf->n_users < USER_CACHE_SIZE) {
		e = &pf->users[pf->n_users++];
	} else {
		e = &pf->users[pf->next_user];
		pf->next_user = (pf->next_user + 1) % USER_CACHE_SIZE;
		free(e->name);
	}
	e->uid = uid;
	e->name = res ? utf8_sanitize_dup(res->pw_name, strlen(res->pw_name)) : NULL;
	return strdup_or_null(e->name);
}

static bool
is_gone(int err)
{
	return err == -ENOENT || err == -ESRCH;
}

/* -errno of the call that just failed, never 0. */
static int
neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* Opens a file of a process. -ESRCH when the process is gone. */
static int
open_at(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return is_gone(-errno) ? -ESRCH : neg_errno();
	return fd;
}

int
procfs_pread_stat(int fd, struct procfs_stat *ret)
{
	char buf[STAT_FILE_MAX];
	ssize_t n;

	do
		n = pread(fd, buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return neg_errno();
	if (n == 0)
		return -ESRCH;
	return procfs_parse_stat(buf, (size_t)n, ret);
}

int
procfs_pread_cmdline(int fd, char **ret, size_t *ret_len, bool *ret_truncated)
{
	_cleanup_free_ char *buf = malloc(PROC_CMDLINE_MAX + 1);
	size_t len = 0;
	ssize_t n;
	char probe;

	if (buf == NULL)
		return -ENOMEM;
	while (len < PROC_CMDLINE_MAX) {
		n = pread(fd, buf + len, PROC_CMDLINE_MAX - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return neg_errno();
		if (n == 0)
			break;
		len += (size_t)n;
		/* proc_pid_cmdline_read fills the whole request unless argv ends. */
		if (len < PROC_CMDLINE_MAX)
			break;
	}
	*ret_truncated = len == PROC_CMDLINE_MAX && pread(fd, &probe, 1, (off_t)len) == 1;
	buf[len] = '\0';
	*ret_len = len;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* Reads a small /proc file (status, cgroup) in one call: seq_file fills
 * the whole buffer when the text fits, so a short read is the end. Longer
 * files are cut at max (the parsers only need their first lines). Returns
 * 0 and sets *ret (caller frees) or -errno. */
static int
small_file_at(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open_at(dirfd, path);
	_cleanup_free_ char *buf = NULL;
	ssize_t n;

	if (fd < 0)
		return fd;
	if ((buf = malloc(max + 1)) == NULL)
		return -ENOMEM;
	do
		n = read(fd, buf, max);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return neg_errno();
	buf[n] = '\0';
	*ret_len = (size_t)n;
	*ret = TAKE_PTR(buf);
	return 0;
}

int
procfs_read_stat_owner(struct procfs *pf, pid_t pid, struct procfs_stat *ret,
                       struct stat *ret_owner)
{
	_cleanup_close_ int fd = -1;
	struct procfs_stat st;
	char path[32];
	int rc;

	snprintf(path, sizeof(path), "%d/stat", (int)pid);
	if ((fd = open_at(pf->dirfd, path)) < 0)
		return fd;
	if ((rc = procfs_pread_stat(fd, &st)) < 0)
		return rc;
	if (ret_owner != NULL && fstat(fd, ret_owner) < 0)
		return neg_errno();
	*ret = st;
	return 0;
}

int
procfs_read_stat(struct procfs *pf, pid_t pid, struct procfs_stat *ret)
{
	return procfs_read_stat_owner(pf, pid, ret, NULL);
}

static int
cmdline_at(int dirfd, const char *path, char **ret, size_t *ret_len, bool *ret_truncated)
{
	_cleanup_close_ int fd = open_at(dirfd, path);

	if (fd < 0)
		return fd;
	return procfs_pread_cmdline(fd, ret, ret_len, ret_truncated);
}

int
procfs_read_cmdline_raw(struct procfs *pf, pid_t pid, char **ret, size_t *ret_len,
                        bool *ret_truncated)
{
	char path[32];

	snprintf(path, sizeof(path), "%d/cmdline", (int)pid);
	return cmdline_at(pf->dirfd, path, ret, ret_len, ret_truncated);
}

/* readlinkat into a new string (caller frees). Returns NULL with -errno in
 * *ret_err (-ENOENT when gone). */
static char *
link_at(int dirfd, const char *name, int *ret_err)
{
	char buf[EXE_LINK_MAX];
	ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
	char *s;

	if (n < 0) {
		*ret_err = neg_errno();
		return NULL;
	}
	buf[n] = '\0';
	if ((s = strdup(buf)) == NULL)
		*ret_err = -ENOMEM;
	return s;
}

static void
replace_str(char **dst, char *src)
{
	free(*dst);
	*dst = src;
}

/* Everything a read step needs; `gone` and `denied` collect outcomes. */
struct read_ctx {
	struct procfs *pf;
	int pdir;        /* the /proc/PID directory, or /proc itself (prefix) */
	char prefix[16]; /* "PID/" when pdir is /proc, else "" */
	size_t prefix_len;
	pid_t pid;
	struct process_record *rec;
	struct procfs_sample *sample;
	int pidfd;          /* opened before any file for the ids, or -1 */
	uint64_t cgroup_id; /* cgroup v2 id from the ids' ioctl (have_cgroup_id) */
	bool have_cgroup_id;
	bool gone, denied, zombie_or_kernel;
};

/* The name of a file of the process relative to c->pdir. */
static const char *
at(const struct read_ctx *c, const char *name, char buf[48])
{
	size_t n = strlen(name);

	if (c->prefix_len == 0)
		return name;
	if (c->prefix_len + n >= 48)
		return ""; /* cannot happen (the names are ours and short); fails ENOENT */
	memcpy(buf, c->prefix, c->prefix_len);
	memcpy(buf + c->prefix_len, name, n + 1);
	return buf;
}

static void
note_err(struct read_ctx *c, int rc, uint32_t missing_bit)
{
	c->rec->missing |= missing_bit;
	if (rc == -EACCES || rc == -EPERM)
		c->denied = true;
	else if (is_gone(rc))
		c->gone = true;
}

static int
read_stat_step(struct read_ctx *c, unsigned what)
{
	_cleanup_close_ int fd = -1;
	struct procfs_stat st = { 0 };
	struct process_record *r = c->rec;
	char tty[32];
	int rc;
	char path[48];

	if ((fd = open_at(c->pdir, at(c, "stat", path))) < 0)
		return fd;
	if ((rc = procfs_pread_stat(fd, &st)) < 0)
		return rc == -EINVAL ? -ESRCH : rc;
	if ((what & PROCFS_KEEP_STAT_FD) && (what & PROCFS_KEEP_FDS))
		c->sample->stat_fd = TAKE_FD(fd);
	r->pid = c->pid;
	r->ppid = st.ppid;
	r->start_ticks = st.starttime;
	r->start_time = procfs_ticks_to_epoch_ms(c->pf, st.starttime);
	r->memory_usage = st.rss_pages * (uint64_t)c->pf->page_size;
	r->threads = st.num_threads;
	if (r->state == NULL || r->state[0] != st.state || r->state[1] != '\0') {
		char s[2] = { st.state, '\0' };

		replace_str(&r->state, utf8_sanitize_dup(s, 1));
	}
	if (r->name == NULL || strlen(r->name) < 15 || strncmp(r->name, st.comm, 15) != 0)
		replace_str(&r->name, utf8_sanitize_dup(st.comm, st.comm_len));
	if (what & PROCFS_READ_CWD)
		replace_str(&r->tty,
		            procfs_tty_name(st.tty_nr, tty, sizeof(tty)) ? strdup(tty) : NULL);
	r->missing &= ~(uint32_t)PROC_MISSING_STAT;
	c->sample->cpu_ticks = st.utime + st.stime;
	c->sample->flags = st.flags;
	c->sample->kernel_thread = (st.flags & PROCFS_PF_KTHREAD) != 0;
	c->zombie_or_kernel = st.state == 'Z' || st.state == 'X' || c->sample->kernel_thread;
	return 0;
}

/* The ids from the pidfd opened before any file of the process (read_pid):
 * the ioctl answers only while that process is not reaped, so the pid cannot
 * have passed to another process before it, and every file read before it
 * is that instance's. Returns 1 when it filled the ids, 0 when status must
 * say (reparented meanwhile, or the ioctl is refused here), -ESRCH once the
 * process is reaped. */
static int
ids_from_pidfd(struct read_ctx *c)
{
	struct pidfd_info_v0 info = { 0 };
	int rc = pidfd_get_ids(c->pidfd, &info);

	if (rc < 0) {
		if (rc == -ESRCH)
			return rc;
		c->pf->pidfd_info = false; /* refused here (seccomp, kernel): use status */
		return 0;
	}
	c->have_cgroup_id = (info.mask & PIDFD_INFO_CGROUP) != 0;
	c->cgroup_id = info.cgroupid;
	/* Reparenting between the stat read and now: let status decide. */
	if ((int64_t)info.ppid != (int64_t)c->rec->ppid)
		return 0;
	c->rec->user_id = info.ruid;
	c->rec->effective_user_id = info.euid;
	c->rec->group_id = info.rgid;
	c->sample->egid = info.egid;
	c->rec->missing &= ~(uint32_t)PROC_MISSING_STATUS;
	return 1;
}

static int
read_status_step(struct read_ctx *c)
{
	_cleanup_free_ char *buf = NULL;
	struct procfs_status st;
	size_t len = 0;
	int rc;
	char path[48];
	struct pidfd_info_v0 alive;

	if (c->pidfd >= 0 && (rc = ids_from_pidfd(c)) != 0) {
		/* Files read by path may be a successor's: read them again. */
		if (rc < 0 && c->prefix[0] != '\0')
			return -ESTALE;
		if (rc > 0)
			return 0;
	}
	/* The files were read by path and the pidfd could not vouch for them:
	 * read again through a directory fd (pidfd_info is off now). */
	if (c->prefix[0] != '\0' && !c->pf->pidfd_info)
		return -ESTALE;
	if ((rc = small_file_at(c->pdir, at(c, "status", path), STATUS_FILE_MAX, &buf, &len)) < 0) {
		note_err(c, rc, PROC_MISSING_STATUS);
		return rc == -ENOMEM ? rc : 0;
	}
	if (procfs_parse_status(buf, len, &st) < 0) {
		c->rec->missing |= PROC_MISSING_STATUS;
		return 0;
	}
	c->rec->user_id = st.uid;
	c->rec->effective_user_id = st.euid;
	c->rec->group_id = st.gid;
	c->sample->egid = st.egid;
	if (st.threads >= 0)
		c->rec->threads = st.threads;
	c->rec->missing &= ~(uint32_t)PROC_MISSING_STATUS;
	/* By path after a reparenting: the instance must still be alive. */
	if (c->prefix[0] != '\0' && pidfd_get_ids(c->pidfd, &alive) == -ESRCH)
		return -ESTALE;
	return 0;
}

/* The name column: comm, or argv[0]'s basename when comm was cut at 15 bytes. */
static void
fix_name_from_argv0(struct process_record *r, const char *raw, size_t len)
{
	const char *a0 = raw, *base;
	size_t n = strnlen(raw, len);
	char *s;

	if (r->name == NULL || strlen(r->name) != 15 || n == 0)
		return;
	base = memrchr(a0, '/', n);
	base = base ? base + 1 : a0;
	n -= (size_t)(base - a0);
	if (n <= 15 || strncmp(base, r->name, 15) != 0 || memchr(base, ' ', n) != NULL)
		return;
	if ((s = utf8_sanitize_dup(base, n)) != NULL)
		replace_str(&r->name, s);
}

static int
read_cmdline_step(struct read_ctx *c, unsigned what)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *raw = NULL;
	char *clean = NULL;
	size_t len = 0;
	bool trunc = false;
	int rc;
	char path[48];

	/* A kernel thread has no memory: its argv reads empty. */
	if (c->sample->kernel_thread) {
		if ((raw = strdup("")) == NULL)
			return -ENOMEM;
	} else if ((fd = open_at(c->pdir, at(c, "cmdline", path))) < 0 ||
	           (rc = procfs_pread_cmdline(fd, &raw, &len, &trunc)) < 0 || raw == NULL) {
		rc = fd < 0 ? fd : rc;
		note_err(c, rc == -ESRCH ? -ENOENT : rc, PROC_MISSING_CMDLINE);
		return rc == -ENOMEM ? rc : 0;
	}
	/* (None for a kernel thread: its argv stays empty.) */
	if (what & PROCFS_KEEP_FDS)
		c->sample->cmdline_fd = TAKE_FD(fd);
	if ((rc = procfs_sanitize_cmdline(raw, len, &clean)) < 0)
		return rc;
	replace_str(&c->rec->command_line, clean);
	c->rec->argv_truncated = trunc;
	c->sample->cmdline_digest = procfs_digest(raw, len);
	/* A zombie's or a kernel thread's argv is empty; only the former is "missing". */
	if (len == 0 && !c->sample->kernel_thread)
		c->rec->missing |= PROC_MISSING_CMDLINE;
	else
		c->rec->missing &= ~(uint32_t)PROC_MISSING_CMDLINE;
	fix_name_from_argv0(c->rec, raw, len);
	return 0;
}

static int
read_exe_step(struct read_ctx *c, unsigned what)
{
	_cleanup_free_ char *link = NULL;
	struct process_record *r = c->rec;
	struct stat sb;
	char *clean;
	int rc;
	char path[48];

	/* A kernel thread has no image (the kernel answers ENOENT). */
	rc = -ENOENT;
	if (c->sample->kernel_thread ||
	    (link = link_at(c->pdir, at(c, "exe", path), &rc)) == NULL) {
		replace_str(&r->executable_path, NULL);
		r->file_exists = false;
		if (c->sample->kernel_thread && rc == -ENOENT)
			return 0; /* kernel threads have no image: not missing */
		if (rc == -ENOENT && c->zombie_or_kernel)
			rc = -ENODATA; /* a zombie lost its mm: missing, but not gone */
		note_err(c, rc, PROC_MISSING_EXE);
		return rc == -ENOMEM ? rc : 0;
	}
	if ((clean = procfs_clean_exe(link, &r->exe_deleted, &r->exe_memfd)) == NULL)
		return -ENOMEM;
	/* The kernel marks an image whose name was unlinked or renamed over
	 * " (deleted)"; otherwise the name still leads to it, and no stat is
	 * needed. A deleted image's name may have been re-created: look. */
	if (r->exe_memfd)
		r->file_exists = false;
	else
		r->file_exists = !r->exe_deleted || stat(clean, &sb) == 0;
	replace_str(&r->executable_path, sanitize_path(clean));
	free(clean);
	/* The same instance's image as the link (see read_pid): the hash key. */
	if ((what & PROCFS_READ_EXE_KEY) &&
	    fstatat(c->pdir, at(c, "exe", path), &c->sample->exe_stat, 0) == 0)
		c->sample->have_exe_stat = true;
	r->missing &= ~(uint32_t)PROC_MISSING_EXE;
	return r->executable_path == NULL ? -ENOMEM : 0;
}

static int
read_cwd_step(struct read_ctx *c)
{
	_cleanup_free_ char *link = NULL;
	int rc;
	char path[48];

	if ((link = link_at(c->pdir, at(c, "cwd", path), &rc)) == NULL) {
		if (!c->sample->kernel_thread || rc != -ENOENT)
			note_err(c, rc == -ENOENT && c->zombie_or_kernel ? -ENODATA : rc,
			         PROC_MISSING_CWD);
		return rc == -ENOMEM ? rc : 0;
	}
	{
		_cleanup_free_ char *u = utf8_sanitize_dup(link, strlen(link));

		if (u == NULL)
			return -ENOMEM;
		replace_str(&c->rec->cwd, sanitize_path(u));
	}
	c->rec->missing &= ~(uint32_t)PROC_MISSING_CWD;
	return c->rec->cwd == NULL ? -ENOMEM : 0;
}

/* procfs_parse_cgroup through a small cache of recent file texts: the same
 * bytes give the same path and container id, and most processes share a
 * few cgroups. Returns 0 and sets *ret_path (caller frees, may be NULL) and
 * id, or what the parser returns. */
static int
parse_cgroup_cached(struct procfs *pf, const char *buf, size_t len, char **ret_path, char id[65])
{
	uint64_t h = procfs_digest(buf, len);
	struct cgroup_cache_entry *e;
	char *path = NULL, *raw;
	int rc;

	if (buf == NULL)
		return -EINVAL;
	for (size_t i = 0; i < CGROUP_CACHE; i++) {
		e = &pf->cgroups[i];
		if (e->raw == NULL || e->digest != h || e->len != len ||
		    memcmp(e->raw, buf, len) != 0)
			continue;
		if (e->path != NULL && (path = strdup(e->path)) == NULL)
			return -ENOMEM;
		memcpy(id, e->id, sizeof(e->id));
		*ret_path = path;
		return 0;
	}
	if ((rc = procfs_parse_cgroup(buf, len, &path, id)) < 0)
		return rc;
	e = &pf->cgroups[pf->next_cgroup];
	if ((raw = malloc(len + 1)) != NULL) {
		char *copy = path ? strdup(path) : NULL;

		if (path == NULL || copy != NULL) {
			free(e->raw);
			free(e->path);
			memcpy(raw, buf, len);
			*e = (struct cgroup_cache_entry){
				.digest = h, .len = len, .raw = raw, .path = copy
			};
			memcpy(e->id, id, sizeof(e->id));
			pf->next_cgroup = (pf->next_cgroup + 1) % CGROUP_CACHE;
		} else {
			free(raw);
		}
	}
	*ret_path = path;
	return 0;
}

/* The cgroup column of id from the memo: 1 (a copy in *ret_path, may be
 * NULL, and cid), 0 when not known yet, -ENOMEM. */
static int
cgroup_memo_get(struct procfs *pf, uint64_t id, char **ret_path, char cid[65])
{
	const struct cgroup_id_memo *m = &pf->cgroup_ids[id % CGROUP_ID_MEMO];
	char *path;

	if (m->path == NULL || m->id != id || !m->confirmed)
		return 0;
	if ((path = strdup(m->path)) == NULL)
		return -ENOMEM;
	memcpy(cid, m->cid, sizeof(m->cid));
	*ret_path = path;
	return 1;
}

/* What a read of id's text found. Only a unified-only text (the id decides
 * it) is kept, and trusted once a second read for the id agrees: a process
 * that moved between the id and the read cannot poison it. */
static void
cgroup_memo_put(struct procfs *pf, uint64_t id, const char *buf, size_t len, const char *path,
                const char cid[65])
{
	struct cgroup_id_memo *m = &pf->cgroup_ids[id % CGROUP_ID_MEMO];
	char *copy;

	if (path == NULL || !unified_only(buf, len))
		return;
	if (m->path != NULL && m->id == id && streq(m->path, path) && streq(m->cid, cid)) {
		m->confirmed = true;
		return;
	}
	if ((copy = strdup(path)) == NULL)
		return;
	free(m->path);
	*m = (struct cgroup_id_memo){ .id = id, .path = copy };
	memcpy(m->cid, cid, sizeof(m->cid));
}

int
procfs_read_cgroup(struct procfs *pf, pid_t pid, char **ret_path, char cid[65])
{
	_cleanup_free_ char *buf = NULL;
	char fname[32];
	size_t len = 0;
	int rc;

	snprintf(fname, sizeof(fname), "%d/cgroup", (int)pid);
	if ((rc = small_file_at(pf->dirfd, fname, CGROUP_FILE_MAX, &buf, &len)) < 0)
		return rc;
	return parse_cgroup_cached(pf, buf, len, ret_path, cid);
}

int
procfs_cgroup_by_id(struct procfs *pf, pid_t pid, uint64_t id, char **ret_path, char cid[65])
{
	_cleanup_free_ char *buf = NULL;
	char fname[32], *path = NULL;
	size_t len = 0;
	int rc;

	if ((rc = cgroup_memo_get(pf, id, ret_path, cid)) != 0)
		return rc < 0 ? rc : 0;
	snprintf(fname, sizeof(fname), "%d/cgroup", (int)pid);
	if ((rc = small_file_at(pf->dirfd, fname, CGROUP_FILE_MAX, &buf, &len)) < 0)
		return rc;
	if ((rc = parse_cgroup_cached(pf, buf, len, &path, cid)) < 0)
		return rc;
	cgroup_memo_put(pf, id, buf, len, path, cid);
	*ret_path = path;
	return 0;
}

/* Whether pid still is the instance that started at start_ticks (read
 * after its cgroup file: pids are handed out cyclically, so the pid would
 * have to come round all of pid_max within one clock tick to fool it). */
static bool
same_instance(struct procfs *pf, pid_t pid, uint64_t start_ticks)
{
	_cleanup_free_ char *buf = NULL;
	struct procfs_stat st;
	char fname[32];
	size_t len = 0;

	snprintf(fname, sizeof(fname), "%d/stat", (int)pid);
	return small_file_at(pf->dirfd, fname, STAT_FILE_MAX, &buf, &len) >= 0 &&
	       procfs_parse_stat(buf, len, &st) == 0 && st.starttime == start_ticks;
}

/* Whether the process a memo entry was read from has been proven to stay
 * in the key's cgroups from exec to exit: it is gone, and its pid slot saw
 * no migration since the key was taken (one that moved it counted before
 * it could exit). An entry whose process moved is dropped. */
static bool
cgroup_set_confirm(struct procfs *pf, struct cgroup_set_memo *m)
{
	uint64_t now;

	if (m->confirmed)
		return true;
	if (same_instance(pf, m->pid, m->start_ticks))
		return false; /* alive: it may still move */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	now = __atomic_load_n(m->move_slot, __ATOMIC_SEQ_CST);
	if (now != m->moves) {
		free(m->path);
		memset(m, 0, sizeof(*m));
		return false;
	}
	m->confirmed = true;
	return true;
}

int
procfs_cgroup_by_set(struct procfs *pf, pid_t pid, const struct procfs_cgroup_set *cs,
                     char **ret_path, char cid[65])
{
	struct cgroup_set_memo *m = &pf->cgroup_sets[cs->key % CGROUP_SET_MEMO];
	bool exact = cs->exact && cs->move_slot != NULL;
	_cleanup_free_ char *buf = NULL;
	char fname[32], *path = NULL, *copy;
	size_t len = 0;
	int rc;

	if (exact && m->path != NULL && m->key == cs->key && cgroup_set_confirm(pf, m)) {
		if ((path = strdup(m->path)) == NULL)
			return -ENOMEM;
		memcpy(cid, m->cid, sizeof(m->cid));
		*ret_path = path;
		return 0;
	}
	snprintf(fname, sizeof(fname), "%d/cgroup", (int)pid);
	if ((rc = small_file_at(pf->dirfd, fname, CGROUP_FILE_MAX, &buf, &len)) < 0)
		return rc;
	if ((rc = parse_cgroup_cached(pf, buf, len, &path, cid)) < 0)
		return rc;
	if (!exact || path == NULL) {
		*ret_path = path;
		return 0;
	}
	/* The pid must still be the instance that exec'd, or the text was
	 * another process's: none then. */
	if (!same_instance(pf, pid, cs->start_ticks)) {
		free(path);
		return -ESRCH;
	}
	/* This process is now the key's witness (replacing one still alive:
	 * the newest of a busy key is the likeliest to be gone soon). */
	if ((copy = strdup(path)) != NULL) {
		free(m->path);
		*m = (struct cgroup_set_memo){ .key = cs->key,
			                       .path = copy,
			                       .pid = pid,
			                       .start_ticks = cs->start_ticks,
			                       .moves = cs->moves,
			                       .move_slot = cs->move_slot };
		memcpy(m->cid, cid, sizeof(m->cid));
	}
	*ret_path = path;
	return 0;
}

/* late: after the ids' ioctl (read by path, pure v2): the memo answers for
 * the cgroup id the ioctl gave, or the file read must be vouched for again. */
static int
read_cgroup_step(struct read_ctx *c, bool late)
{
	_cleanup_free_ char *buf = NULL;
	char *path = NULL, id[65], fname[48];
	struct pidfd_info_v0 alive;
	size_t len = 0;
	int rc;

	if (late && c->have_cgroup_id &&
	    (rc = cgroup_memo_get(c->pf, c->cgroup_id, &path, id)) != 0) {
		if (rc < 0)
			return rc;
		goto done;
	}
	rc = small_file_at(c->pdir, at(c, "cgroup", fname), CGROUP_FILE_MAX, &buf, &len);
	/* Read by path after the ioctl: the instance must still hold the pid. */
	if (late && pidfd_get_ids(c->pidfd, &alive) == -ESRCH)
		return -ESTALE;
	if (rc < 0) {
		note_err(c, rc, PROC_MISSING_CGROUP);
		return rc == -ENOMEM ? rc : 0;
	}
	if ((rc = parse_cgroup_cached(c->pf, buf, len, &path, id)) < 0) {
		if (rc == -ENOMEM)
			return rc;
		c->rec->missing |= PROC_MISSING_CGROUP;
		return 0;
	}
	if (late && c->have_cgroup_id)
		cgroup_memo_put(c->pf, c->cgroup_id, buf, len, path, id);
done:
	replace_str(&c->rec->cgroup, path);
	replace_str(&c->rec->container_id, id[0] ? strdup(id) : NULL);
	c->rec->missing &= ~(uint32_t)PROC_MISSING_CGROUP;
	return 0;
}

/* Parent details straight from /proc (lifecycle.c prefers its own table). */
static int
read_parent_step(struct read_ctx *c)
{
	struct process_record pr;
	struct procfs_sample ps;
	int rc;

	if (c->rec->ppid <= 0)
		return 0;
	process_record_init(&pr);
	rc = procfs_read_pid(c->pf, c->rec->ppid,
	                     PROCFS_READ_STAT | PROCFS_READ_CMDLINE | PROCFS_READ_EXE, &pr, &ps);
	if (rc == -ENOMEM) {
		process_record_clear(&pr);
		return rc;
	}
	if (rc < 0)
		c->rec->missing |= PROC_MISSING_PARENT;
	replace_str(&c->rec->parent_name, TAKE_PTR(pr.name));
	replace_str(&c->rec->parent_executable_path, TAKE_PTR(pr.executable_path));
	replace_str(&c->rec->parent_command_line, TAKE_PTR(pr.command_line));
	process_record_clear(&pr);
	return 0;
}

static int
read_pid(struct procfs *pf, pid_t pid, unsigned what, struct process_record *rec,
         struct procfs_sample *sample)
{
	struct read_ctx c = { .pf = pf, .pid = pid, .rec = rec, .sample = sample, .pidfd = -1 };
	_cleanup_close_ int pdir = -1, pidfd = -1;
	bool cg_late = false;
	char name[16];
	int rc;

	memset(sample, 0, sizeof(*sample));
	sample->cmdline_fd = sample->stat_fd = -1;
	sample->egid = -1;
	snprintf(name, sizeof(name), "%d", (int)pid);
	/* The ids through a pidfd rather than status; it must exist before any
	 * file of the process is opened (see ids_from_pidfd). */
	if ((what & PROCFS_READ_STATUS) && pf->pidfd_info) {
		if ((pidfd = pidfd_open_pid(pid)) < 0 && errno == ESRCH)
			return -ESRCH;
		if (pidfd < 0 && (errno == ENOSYS || errno == EPERM))
			pf->pidfd_info = false;
		c.pidfd = pidfd;
	}
	if (pidfd >= 0) {
		/* The files by path ("PID/stat"), the ioctl last: its answer
		 * proves they were all the pidfd's instance. No directory fd to
		 * open and close. */
		c.pdir = pf->dirfd;
		c.prefix_len = (size_t)snprintf(c.prefix, sizeof(c.prefix), "%s/", name);
		/* Pure cgroup v2: the ioctl's cgroup id first, then the memo. */
		cg_late = pf->cgroup_v2_only;
	} else {
		/* One directory fd per read: every file comes from the same
		 * instance even if the pid is reused meanwhile (reads then fail
		 * ESRCH). */
		if ((pdir = openat(pf->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return is_gone(-errno) ? -ESRCH : neg_errno();
		c.pdir = pdir;
	}
	if ((rc = read_stat_step(&c, what)) < 0)
		return rc;
	rec->accessible = true;
	/* The command line and the image first: a short-lived process loses them
	 * at exit, while its ids stay readable until it is reaped. */
	if ((what & PROCFS_READ_CMDLINE) && (rc = read_cmdline_step(&c, what)) < 0)
		return rc;
	if ((what & PROCFS_READ_EXE) && (rc = read_exe_step(&c, what)) < 0)
		return rc;
	if ((what & PROCFS_READ_CWD) && (rc = read_cwd_step(&c)) < 0)
		return rc;
	if ((what & PROCFS_READ_CGROUP) && !cg_late && (rc = read_cgroup_step(&c, false)) < 0)
		return rc;
	if ((what & PROCFS_READ_STATUS) && (rc = read_status_step(&c)) < 0)
		return rc;
	if ((what & PROCFS_READ_CGROUP) && cg_late && (rc = read_cgroup_step(&c, true)) < 0)
		return rc;
	if ((what & PROCFS_READ_USER) && rec->user_id >= 0)
		replace_str(&rec->user_name, procfs_user_name(pf, rec->user_id));
	if ((what & PROCFS_READ_PARENT) && (rc = read_parent_step(&c)) < 0)
		return rc;
	if (c.denied)
		rec->accessible = false;
	/* A file vanished under us: confirm the process is gone (by path, the
	 * ids' ioctl already did: it answered). */
	if (c.gone && c.prefix[0] == '\0' && faccessat(pdir, "stat", F_OK, 0) < 0)
		return -ESRCH;
	return 0;
}

int
procfs_read_pid(struct procfs *pf, pid_t pid, unsigned what, struct process_record *rec,
                struct procfs_sample *sample)
{
	int rc = read_pid(pf, pid, what, rec, sample);

	/* Read by path, the pidfd's instance went away (a successor may hold
	 * the pid) or could not vouch: once more, from a new pidfd or a
	 * directory fd. */
	if (rc == -ESTALE) {
		if (sample->cmdline_fd >= 0)
			close(sample->cmdline_fd);
		if (sample->stat_fd >= 0)
			close(sample->stat_fd);
		rc = read_pid(pf, pid, what, rec, sample);
		if (rc == -ESTALE)
			rc = -ESRCH;
	}
	if (rc < 0) {
		if (sample->cmdline_fd >= 0)
			close(sample->cmdline_fd);
		if (sample->stat_fd >= 0)
			close(sample->stat_fd);
		sample->cmdline_fd = sample->stat_fd = -1;
	}
	return rc;
}

int
procfs_read_parent(struct procfs *pf, struct process_record *rec)
{
	struct read_ctx c = { .pf = pf, .pid = rec->pid, .rec = rec };

	return read_parent_step(&c);
}

int
procfs_foreach_pid(struct procfs *pf, int (*fn)(void *ctx, pid_t pid), void *ctx)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int fd, rc;

	if ((fd = openat(pf->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		int pid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (parse_int(de->d_name, &pid) < 0 || pid <= 0)
			continue;
		if ((rc = fn(ctx, pid)) != 0)
			return rc;
	}
	return errno ? -errno : 0;
}
