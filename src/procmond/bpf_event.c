/* Decoding of the records procmond.bpf.c writes (bpf_event.h). Kept apart
 * from source_ebpf.c, which needs libbpf and the kernel, so that the unit
 * tests (and the sanitizer build, which has no BPF) can check it. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "bpf_event.h"
#include "source.h"
#include "util.h"

/* Copies a NUL-terminated string of at most n bytes (NUL included) from a
 * record; returns false when the record does not hold one. */
static bool
copy_str(char *dst, size_t dstsz, const char *src, size_t n)
{
	if (n == 0 || n > dstsz)
		return false;
	memcpy(dst, src, n);
	dst[n - 1] = '\0';
	return true;
}

/* execve() resolves a relative path against the working directory, which
 * the same record carries: join them, so that a process gone before /proc
 * could be read still has a usable executable path ("./tool" run in /srv
 * becomes "/srv/tool"). Left as exec'd when the result would not fit. */
static void
absolute_filename(struct source_event *ev)
{
	const char *rel = ev->filename;
	char joined[sizeof(ev->filename)];
	int n;

	if (!(ev->has & SOURCE_HAS_FILENAME) || !(ev->has & SOURCE_HAS_CWD) || rel[0] == '/')
		return;
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	n = snprintf(joined, sizeof(joined), "%s%s%s", ev->cwd, streq(ev->cwd, "/") ? "" : "/",
	             rel);
	if (n > 0 && (size_t)n < sizeof(joined))
		memcpy(ev->filename, joined, (size_t)n + 1);
}

int
bpf_event_decode(const void *rec, size_t size, struct source_event *ev)
{
	const struct de_bpf_event *r = rec;
	struct de_bpf_exec x;
	const char *data;
	size_t avail;

	if (r == NULL || size < sizeof(*r))
		return -EBADMSG;
	data = (const char *)(r + 1);
	avail = size - sizeof(*r);
	if (r->kind == DE_BPF_EV_EXEC || r->kind == DE_BPF_EV_SNAP) {
		if (avail < sizeof(x))
			return -EBADMSG;
		memcpy(&x, data, sizeof(x)); /* the record need not be aligned */
		data += sizeof(x);
		avail -= sizeof(x);
	} else {
		memset(&x, 0, sizeof(x));
	}
	if ((size_t)r->filename_len + r->argv_len + r->cwd_len + x.exe_len > avail)
		return -EBADMSG;

	switch (r->kind) {
	case DE_BPF_EV_EXEC:
		ev->kind = SOURCE_EV_EXEC;
		break;
	case DE_BPF_EV_FORK:
		ev->kind = SOURCE_EV_FORK;
		break;
	case DE_BPF_EV_EXIT:
		ev->kind = SOURCE_EV_EXIT;
		break;
	case DE_BPF_EV_COMM:
		ev->kind = SOURCE_EV_COMM;
		break;
	case DE_BPF_EV_SNAP:
		ev->kind = SOURCE_EV_SNAPSHOT;
		break;
	default:
		return -EBADMSG;
	}
	ev->has = SOURCE_HAS_IDS | SOURCE_HAS_COMM | SOURCE_HAS_START | SOURCE_HAS_PPID;
	ev->pid = (pid_t)r->tgid;
	ev->tid = (pid_t)r->pid;
	ev->ppid = (pid_t)r->ppid;
	ev->uid = r->uid;
	ev->euid = r->euid;
	ev->gid = r->gid;
	ev->start_ns = r->start_ns;
	ev->ktime_ns = r->ktime_ns;
	ev->exit_code = r->exit_code;
	ev->argv_truncated = (r->flags & DE_BPF_F_ARGV_TRUNC) != 0;
	memcpy(ev->comm, r->comm, sizeof(ev->comm));
	ev->comm[sizeof(ev->comm) - 1] = '\0';
	ev->filename[0] = '\0';
	ev->cwd[0] = '\0';
	ev->exe[0] = '\0';
	ev->exe_deleted = false;
	ev->argv_len = 0;
	if (r->kind == DE_BPF_EV_EXIT)
		ev->has |= SOURCE_HAS_EXIT_CODE;
	if (r->kind != DE_BPF_EV_EXEC && r->kind != DE_BPF_EV_SNAP)
		return 0;

	if (copy_str(ev->filename, sizeof(ev->filename), data, r->filename_len) &&
	    ev->filename[0] != '\0')
		ev->has |= SOURCE_HAS_FILENAME;
	data += r->filename_len;
	if (r->argv_len > 0 && r->argv_len <= sizeof(ev->argv)) {
		memcpy(ev->argv, data, r->argv_len);
		ev->argv_len = r->argv_len;
		ev->has |= SOURCE_HAS_ARGV;
	}
	data += r->argv_len;
	/* An exec's cut cwd is kept (the process may be gone before /proc
	 * could say more); a snapshot's is left to /proc, which has it whole. */
	if ((r->flags & DE_BPF_F_HAS_CWD) &&
	    !(r->kind == DE_BPF_EV_SNAP && (r->flags & DE_BPF_F_CWD_TRUNC)) &&
	    copy_str(ev->cwd, sizeof(ev->cwd), data, r->cwd_len))
		ev->has |= SOURCE_HAS_CWD;
	data += r->cwd_len;
	/* A cut image path is not the image's: /proc is asked instead. */
	if ((r->flags & DE_BPF_F_HAS_EXE) && !(r->flags & DE_BPF_F_EXE_TRUNC) &&
	    copy_str(ev->exe, sizeof(ev->exe), data, x.exe_len) && ev->exe[0] == '/') {
		ev->has |= SOURCE_HAS_EXE | SOURCE_HAS_IMAGE;
		ev->exe_deleted = (r->flags & DE_BPF_F_EXE_DELETED) != 0;
		/* The kernel's dev_t is major << 20 | minor; stat(2)'s is glibc's. */
		ev->image = (struct source_image_key){
			.dev =
			    makedev((unsigned)(x.exe_dev >> 20), (unsigned)(x.exe_dev & 0xfffff)),
			.ino = x.exe_ino,
			.size = x.exe_size,
			.mtime_sec = x.exe_mtime_sec,
			.ctime_sec = x.exe_ctime_sec,
			.mtime_nsec = x.exe_mtime_nsec,
			.ctime_nsec = x.exe_ctime_nsec,
		};
	}
	if (x.cgroup_id != 0) {
		ev->has |= SOURCE_HAS_CGROUP;
		ev->cgroup_id = x.cgroup_id;
	}
	/* The source sets cgroup_moves_begun (its mapping of the counter). */
	if (r->flags & DE_BPF_F_CGROUP_SET) {
		ev->has |= SOURCE_HAS_CGROUP_SET;
		ev->cgroup_set = x.cgroup_set;
		ev->cgroup_moves = x.cgroup_moves;
		ev->cgroup_moves_after = x.cgroup_moves_after;
	}
	ev->has |= SOURCE_HAS_STAT;
	ev->egid = x.egid;
	ev->threads = x.threads;
	ev->tty_nr = (r->flags & DE_BPF_F_HAS_TTY) ? x.tty_nr : 0;
	ev->rss_pages = x.rss_pages;
	absolute_filename(ev);
	return 0;
}

long
bpf_event_snap_len(const void *buf, size_t avail)
{
	const size_t head = sizeof(struct de_bpf_event) + sizeof(struct de_bpf_exec);
	struct de_bpf_event r;
	struct de_bpf_exec x;
	size_t len;

	if (avail < head)
		return 0;
	memcpy(&r, buf, sizeof(r));
	memcpy(&x, (const char *)buf + sizeof(r), sizeof(x));
	if (r.kind != DE_BPF_EV_SNAP)
		return -EBADMSG;
	len = (size_t)r.filename_len + r.argv_len + r.cwd_len + x.exe_len;
	if (len > DE_BPF_DATA_SIZE)
		return -EBADMSG;
	len = head + ((len + 7u) & ~(size_t)7u);
	return avail < len ? 0 : (long)len;
}
