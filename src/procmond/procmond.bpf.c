// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/* procmond's kernel programs: one record per exec, fork (new process) and
 * process exit, written to a BPF ring buffer that source_ebpf.c drains.
 *
 * Everything that a short-lived process takes with it when it exits is read
 * here, at the tracepoint, from kernel memory: ids, comm, the path it was
 * exec'd by, argv from the new mm, cwd and start time. BTF-typed raw
 * tracepoints (tp_btf) attach without tracefs. CO-RE relocations make the one
 * object load on any kernel with BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "bpf_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DE_BPF_RINGBUF_SIZE);
} events SEC(".maps");

/* Records that did not fit in the ring buffer. A global in .bss, which the
 * skeleton maps into user space: procmond reads it without a bpf() call,
 * so its seccomp filter need not allow one. Only touched on a drop. */
__u64 drop_count = 0;

/* The record is assembled here, not on the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct de_bpf_scratch);
} scratch SEC(".maps");

/* cwd is built backwards, from the last component to the root. */
#define PATHBUF_SIZE 8192
#define NAME_MASK    255 /* NAME_MAX */

struct pathbuf {
	char buf[PATHBUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathbuf);
} pathbufs SEC(".maps");

/* The snapshot iterator's own pair (de_snap): it runs in a read(2) and may
 * be preempted, so it must not share a CPU's buffers with the tracepoints. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct de_bpf_scratch);
} snap_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathbuf);
} snap_pathbufs SEC(".maps");

/* include/linux/sched.h; a #define, so not in BTF. */
#define DE_PF_KTHREAD 0x00200000

/* include/linux/sched/signal.h; a #define, so not in BTF. Unchanged since 2.6. */
#define DE_SIGNAL_GROUP_EXIT 0x00000004

/* Set by user space before load: 0 turns the cwd walk off. */
const volatile __u32 capture_cwd = 1;
/* Set by user space before load: 0 turns the cgroup-set key off (the two
 * cgroup migration programs are then not loaded). cgroup_seed is random per
 * load: the key is a keyed hash nobody outside procmond can compute. */
const volatile __u32 capture_cgroup_set = 1;
const volatile __u64 cgroup_seed = 0;

/* Set by user space once de_cg_attach and de_cg_transfer are attached:
 * only then does an exec record carry a cgroup-set key. */
__u32 cgroup_moves_on = 0;

/* Cgroup migrations per pid slot (tgid % DE_BPF_MOVE_SLOTS), counted after
 * each migration. An exec record carries its slot's count as read before
 * its key; once the process is gone, an unchanged count proves it never
 * changed cgroups between exec and exit (source.h, cgroup_move_slot).
 * Mapped read-only by user space, like drop_count. */
__u64 cgroup_moves[DE_BPF_MOVE_SLOTS] = {};

static __always_inline void
count_drop(void)
{
	__sync_fetch_and_add(&drop_count, 1);
}

/* The process's start, as /proc/<pid>/stat reports it: the leader's. */
static __always_inline __u64
start_ns(struct task_struct *t)
{
	if (bpf_core_field_exists(t->start_boottime))
		return BPF_CORE_READ(t, group_leader, start_boottime);
	return BPF_CORE_READ(t, group_leader, start_time);
}

static __always_inline void
fill_task(struct de_bpf_event *e, struct task_struct *t)
{
	const struct cred *cred = BPF_CORE_READ(t, cred);

	e->tgid = BPF_CORE_READ(t, tgid);
	e->pid = BPF_CORE_READ(t, pid);
	e->ppid = BPF_CORE_READ(t, real_parent, tgid);
	e->uid = BPF_CORE_READ(cred, uid.val);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->gid = BPF_CORE_READ(cred, gid.val);
	e->start_ns = start_ns(t);
	e->ktime_ns = bpf_ktime_get_boot_ns();
	BPF_CORE_READ_STR_INTO(&e->comm, t, comm);
}

static __always_inline void
emit(void *rec, __u64 len)
{
	if (bpf_ringbuf_output(&events, rec, len, 0) < 0)
		count_drop();
}

struct walk_ctx {
	struct dentry *d, *root_d;
	struct vfsmount *vm, *root_m;
	struct mount *mnt;
	int pos; /* where the path written so far starts in pathbuf */
	bool done, trunc;
	bool pseudo; /* a lookup-less file (memfd): its own root, named "/<name>" */
	bool snap;   /* in de_snap: its own path buffer */
};

/* This CPU's path buffer: de_snap's own, or the tracepoints'. */
static __always_inline struct pathbuf *
pathbuf_get(bool snap)
{
	__u32 zero = 0;

	if (snap)
		return bpf_map_lookup_elem(&snap_pathbufs, &zero);
	return bpf_map_lookup_elem(&pathbufs, &zero);
}

/* Prepends "/<d's name>" at w->pos in pb. Returns false when it does not fit. */
static __always_inline bool
prepend_name(struct walk_ctx *w, struct pathbuf *pb, struct dentry *d)
{
	__u32 len = BPF_CORE_READ(d, d_name.len) & NAME_MASK;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	int pos = w->pos;

	if (pos <= (int)len || pos >= DE_BPF_PATH_MAX) {
		w->trunc = true;
		return false;
	}
	pos -= len;
	/* pos < DE_BPF_PATH_MAX: the mask proves it, the buffer is twice that. */
	bpf_probe_read_kernel(&pb->buf[pos & (DE_BPF_PATH_MAX - 1)], len, name);
	pos -= 1;
	pb->buf[pos & (DE_BPF_PATH_MAX - 1)] = '/';
	w->pos = pos;
	return true;
}

/* One step of a path walk, from a dentry up to its parent (or across a
 * mount). A bpf_loop callback: verified once, not once per iteration. */
static long
walk_step(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	struct pathbuf *pb = pathbuf_get(w->snap);
	/* Locals, not w->...: CO-RE relocates every access inside
	 * BPF_CORE_READ, and walk_ctx is not a kernel type. */
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *mnt = w->mnt;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct dentry *mroot = BPF_CORE_READ(vm, mnt_root);

	if (pb == NULL || (d == w->root_d && vm == w->root_m))
		goto done; /* the task's root: chroot ends the path like d_path() */
	if (d == mroot || d == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (d != mroot) {
			/* Its own parent but not a mount's root: a pseudo file
			 * (memfd), which d_path() names "/<name>". */
			if (w->pseudo)
				prepend_name(w, pb, d);
			goto done;
		}
		if (up == mnt)
			goto done; /* the global root */
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vm = &up->mnt;
		return 0;
	}
	if (!prepend_name(w, pb, d))
		goto done;
	w->d = parent;
	return 0;
done:
	w->done = true;
	return 1;
}

/* Writes the path of (d, vm) as seen from t's root into pb, ending at
 * PATH_MAX - 1, and returns the offset where it starts, or -1 when it cannot
 * be read. Mounts are crossed; the walk stops at the task's root (chroot),
 * the global root, or after DE_BPF_CWD_DEPTH steps (then *trunc is set). */
static __always_inline int
walk_path(struct fs_struct *fs, struct dentry *d, struct vfsmount *vm, bool pseudo,
          struct pathbuf *pb, bool snap, bool *trunc)
{
	struct walk_ctx w = { .snap = snap };

	if (fs == NULL || d == NULL || vm == NULL)
		return -1;
	w.root_d = BPF_CORE_READ(fs, root.dentry);
	w.root_m = BPF_CORE_READ(fs, root.mnt);
	w.d = d;
	w.vm = vm;
	w.mnt = container_of(w.vm, struct mount, mnt);
	w.pseudo = pseudo;
	w.pos = DE_BPF_PATH_MAX - 1;
	pb->buf[DE_BPF_PATH_MAX - 1] = '\0';
	if (bpf_loop(DE_BPF_CWD_DEPTH, walk_step, &w, 0) < 0)
		return -1;
	*trunc = w.trunc || !w.done;
	if (w.pos == DE_BPF_PATH_MAX - 1) {
		w.pos -= 1;
		pb->buf[DE_BPF_PATH_MAX - 2] = '/';
	}
	if (w.pos < 0 || w.pos >= DE_BPF_PATH_MAX)
		return -1;
	return w.pos;
}

/* Copies the walked path at pos into s->data at off; returns its length
 * (NUL included), or 0. */
static __always_inline __u32
put_path(struct de_bpf_scratch *s, __u32 off, struct pathbuf *pb, int pos)
{
	__u32 start, len;

	if (pos < 0 || pos >= DE_BPF_PATH_MAX)
		return 0;
	start = (__u32)pos & (DE_BPF_PATH_MAX - 1);
	len = (DE_BPF_PATH_MAX - start) & (DE_BPF_PATH_MAX * 2 - 1);
	/* The strings before took at most 3 * DE_BPF_PATH_MAX: the bounds are
	 * for the verifier, the path still fits behind them. */
	if (off > 3 * DE_BPF_PATH_MAX)
		off = 3 * DE_BPF_PATH_MAX;
	if (len > DE_BPF_PATH_MAX || len == 0)
		return 0;
	if (bpf_probe_read_kernel(&s->data[off], len, &pb->buf[start]) < 0)
		return 0;
	return len;
}

/* Older kernels' inode timestamps (CO-RE flavours: only the field names
 * matter). Before 6.6: i_mtime and i_ctime; 6.6 to 6.10: __i_ctime. */
struct inode___ts_old {
	struct timespec64 i_mtime;
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___ts_66 {
	struct timespec64 i_mtime;
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

/* Before 6.2 the rss counters were atomics. */
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

/* include/linux/mm_types_task.h: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS,
 * MM_SHMEMPAGES; rss is everything but swap, as get_mm_rss() counts. */
static __always_inline __u64
mm_rss(struct mm_struct *mm)
{
	__s64 v[4] = {};

	if (bpf_core_field_exists(struct mm_struct___old, rss_stat.count)) {
		struct mm_struct___old *o = (void *)mm;

		v[0] = BPF_CORE_READ(o, rss_stat.count[0].counter);
		v[1] = BPF_CORE_READ(o, rss_stat.count[1].counter);
		v[3] = BPF_CORE_READ(o, rss_stat.count[3].counter);
	} else {
		v[0] = BPF_CORE_READ(mm, rss_stat[0].count);
		v[1] = BPF_CORE_READ(mm, rss_stat[1].count);
		v[3] = BPF_CORE_READ(mm, rss_stat[3].count);
	}
	/* percpu_counter_read_positive(), as /proc does. */
	return (__u64)(v[0] > 0 ? v[0] : 0) + (__u64)(v[1] > 0 ? v[1] : 0) +
	       (__u64)(v[3] > 0 ? v[3] : 0);
}

/* The running image's identity: what hash.c keys its cache by. */
static __always_inline void
fill_image(struct de_bpf_exec *x, struct inode *ino)
{
	x->exe_dev = BPF_CORE_READ(ino, i_sb, s_dev);
	x->exe_ino = BPF_CORE_READ(ino, i_ino);
	x->exe_size = BPF_CORE_READ(ino, i_size);
	if (bpf_core_field_exists(ino->i_mtime_sec)) {
		x->exe_mtime_sec = BPF_CORE_READ(ino, i_mtime_sec);
		x->exe_mtime_nsec = BPF_CORE_READ(ino, i_mtime_nsec);
	} else {
		struct inode___ts_old *o = (void *)ino;

		x->exe_mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
		x->exe_mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
	}
	if (bpf_core_field_exists(ino->i_ctime_sec)) {
		x->exe_ctime_sec = BPF_CORE_READ(ino, i_ctime_sec);
		x->exe_ctime_nsec = BPF_CORE_READ(ino, i_ctime_nsec);
	} else if (bpf_core_field_exists(struct inode___ts_66, __i_ctime)) {
		struct inode___ts_66 *o = (void *)ino;

		x->exe_ctime_sec = BPF_CORE_READ(o, __i_ctime.tv_sec);
		x->exe_ctime_nsec = BPF_CORE_READ(o, __i_ctime.tv_nsec);
	} else {
		struct inode___ts_old *o = (void *)ino;

		x->exe_ctime_sec = BPF_CORE_READ(o, i_ctime.tv_sec);
		x->exe_ctime_nsec = BPF_CORE_READ(o, i_ctime.tv_nsec);
	}
	/* 6.13+ keeps a "queried" flag in the top bit of the ctime nsec. */
	x->exe_ctime_nsec &= 0x7fffffffu;
}

/* stat's tty_nr: new_encode_dev() of the controlling terminal's device. */
static __always_inline __u32
tty_nr(struct task_struct *t)
{
	struct tty_struct *tty = BPF_CORE_READ(t, signal, tty);
	__u32 major, minor;

	if (tty == NULL)
		return 0;
	major = BPF_CORE_READ(tty, driver, major);
	minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

/* ---- the cgroup-set key ----
 *
 * /proc/PID/cgroup is, for a fixed reader (procmond's cgroup namespace), a
 * function of the task's cgroup in each hierarchy: one line per hierarchy,
 * "<hierarchy_id>:<controllers,name=NAME>:<path>". task->cgroups (a
 * css_set) links to exactly one cgroup per hierarchy (cgrp_cset_link). The
 * css_set's address can be reused once it is freed, so the key is built from
 * the content: per link the hierarchy id and controller mask, the root's
 * name, and the cgroup's serial_nr, which a global 64-bit counter gives every
 * cgroup at creation and never reuses (kernfs ids repeat across hierarchies).
 * The hash is keyed by a per-load random seed (cgroup_seed): the chance that
 * two different sets share a key is about 2^-64 per pair, and nobody can aim
 * for a collision without the seed. A v1 cgroup renamed in place (rename(2)
 * within its parent, v1 only) keeps its serial: the memo keeps the old path
 * until evicted (docs/procmond.md). */

struct cgset_ctx {
	struct list_head *head, *pos;
	__u64 h;
	bool done;
	bool snap; /* in a snapshot iterator: its own path buffer */
};

/* splitmix64's finalizer on h ^ v: a bijection with full avalanche. */
static __always_inline __u64
mix64(__u64 h, __u64 v)
{
	h ^= v;
	h += 0x9e3779b97f4a7c15ULL;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

/* One hierarchy of the set (a bpf_loop callback). */
static long
cgset_step(__u32 i, void *arg)
{
	struct cgset_ctx *c = arg;
	struct list_head *pos = c->pos;
	struct pathbuf *pb = pathbuf_get(c->snap);
	struct cgrp_cset_link *link;
	struct cgroup *cg;
	struct cgroup_root *root;
	__u64 ids = 0, *w;

	if (pos == c->head) {
		c->done = true;
		return 1;
	}
	if (pb == NULL || pos == NULL)
		return 1;
	/* Its node in css_set->cgrp_links is cgrp_link (cset_link is the
	 * one in cgroup->cset_links). */
	link = container_of(pos, struct cgrp_cset_link, cgrp_link);
	cg = BPF_CORE_READ(link, cgrp);
	root = BPF_CORE_READ(cg, root);
	if (cg == NULL || root == NULL)
		return 1;
	/* subsys_mask and hierarchy_id side by side (every kernel so far):
	 * one read. */
	if (bpf_core_field_offset(struct cgroup_root, hierarchy_id) ==
	    bpf_core_field_offset(struct cgroup_root, subsys_mask) + 4)
		bpf_probe_read_kernel(&ids, sizeof(ids), &root->subsys_mask);
	else
		ids = ((__u64)(__u32)BPF_CORE_READ(root, hierarchy_id) << 32) |
		      BPF_CORE_READ(root, subsys_mask);
	c->h = mix64(c->h, ids);
	c->h = mix64(c->h, BPF_CORE_READ(cg, self.serial_nr));
	/* The root's name (64 bytes, zero-filled; empty but for name=
	 * hierarchies), through the per-CPU path buffer (the cwd walk that
	 * uses it comes later): its first word, and the rest when it has one. */
	if (bpf_probe_read_kernel(pb->buf, 8, &root->name) < 0)
		return 1;
	w = (__u64 *)pb->buf;
	c->h = mix64(c->h, w[0]);
	if (w[0] != 0) {
		if (bpf_probe_read_kernel(pb->buf, 64, &root->name) < 0)
			return 1;
		for (int k = 1; k < 8; k++)
			c->h = mix64(c->h, w[k]);
	}
	c->pos = BPF_CORE_READ(pos, next);
	return 0;
}

/* The key of t's cgroup set into *key, with its pid slot's migration count
 * read before the walk (*before) and after it (*after); false when not every
 * hierarchy was read. The css_set is read once, and its links do not
 * change: the key is exactly the set t was in at some instant of the walk. */
static __always_inline bool
set_key(struct task_struct *t, bool snap, __u64 *key, __u64 *before, __u64 *after)
{
	struct css_set *cset;
	__u32 slot = (__u32)BPF_CORE_READ(t, tgid) % DE_BPF_MOVE_SLOTS;
	struct cgset_ctx c = { .snap = snap };

	if (!capture_cgroup_set || !cgroup_moves_on)
		return false;
	/* An atomic read: ordered before the walk. */
	*before = __sync_fetch_and_add(&cgroup_moves[slot], 0);
	if ((cset = BPF_CORE_READ(t, cgroups)) == NULL)
		return false;
	c.head = &cset->cgrp_links;
	c.pos = BPF_CORE_READ(cset, cgrp_links.next);
	c.h = cgroup_seed;
	/* One step more than the links: the last one sees the head. */
	if (bpf_loop(DE_BPF_CGROUP_LINKS + 1, cgset_step, &c, 0) < 0 || !c.done)
		return false;
	*key = c.h;
	*after = __sync_fetch_and_add(&cgroup_moves[slot], 0);
	return true;
}

/* The key of t's cgroup set into x; sets DE_BPF_F_CGROUP_SET only when every
 * hierarchy was read. A migration of t under the walk counts after the slot
 * was read: user space never vouches for a key taken across one. */
static __always_inline void
cgroup_set_key(struct de_bpf_event *e, struct de_bpf_exec *x, struct task_struct *t, bool snap)
{
	__u64 key, before, after;

	if (!set_key(t, snap, &key, &before, &after))
		return;
	x->cgroup_set = key;
	x->cgroup_moves = before;
	x->cgroup_moves_after = after;
	e->flags |= DE_BPF_F_CGROUP_SET;
}

static __always_inline void
count_move(struct task_struct *task)
{
	__u32 slot = (__u32)BPF_CORE_READ(task, tgid) % DE_BPF_MOVE_SLOTS;

	__sync_fetch_and_add(&cgroup_moves[slot], 1);
}

/* A task moved to another cgroup (cgroup.procs, cgroup.threads or tasks
 * written; the tracepoint fires after the move, in the same critical
 * section). A process's last thread cannot exit before it: a move of a
 * thread group holds cgroup_threadgroup_rwsem across both, and exit takes
 * it to set PF_EXITING (which a move then skips); a thread moving itself
 * is in the write(2). */
SEC("tp_btf/cgroup_attach_task")
int
BPF_PROG(de_cg_attach, struct cgroup *dst, const char *path, struct task_struct *task,
         bool threadgroup)
{
	count_move(task);
	return 0;
}

/* cgroup v1 cpuset moving the tasks of a cpuset left without CPUs. */
SEC("tp_btf/cgroup_transfer_tasks")
int
BPF_PROG(de_cg_transfer, struct cgroup *dst, const char *path, struct task_struct *task,
         bool threadgroup)
{
	count_move(task);
	return 0;
}

/* The headers of an EXEC-shaped record (kind EXEC or SNAP) of t in s, its
 * strings empty: ids, comm, start, egid, the cgroup v2 id, the cgroup-set
 * key (snap: through the iterator's own path buffer), threads and tty. */
static __always_inline void
fill_head(struct de_bpf_scratch *s, __u32 kind, struct task_struct *t, __u64 cgroup_id, bool snap)
{
	struct de_bpf_event *e = &s->ev;
	struct de_bpf_exec *x = &s->x;

	e->kind = kind;
	e->flags = 0;
	e->exit_code = 0;
	e->filename_len = 0;
	e->argv_len = 0;
	e->cwd_len = 0;
	fill_task(e, t);
	__builtin_memset(x, 0, sizeof(*x));
	x->egid = BPF_CORE_READ(t, cred, egid.val);
	x->cgroup_id = cgroup_id;
	cgroup_set_key(e, x, t, snap);
	x->threads = BPF_CORE_READ(t, signal, nr_threads);
	x->tty_nr = tty_nr(t);
}

/* The working directory (unless capture_cwd is off) and the running image
 * (for a script its interpreter, for fexecve the file behind the
 * descriptor, as /proc/PID/exe shows it) of a task into s at off, with the
 * image's identity and the tty flag; returns the offset after them. */
static __always_inline __u32
put_cwd_exe(struct de_bpf_scratch *s, __u32 off, struct fs_struct *fs, struct mm_struct *mm,
            struct pathbuf *pb, bool snap)
{
	struct de_bpf_event *e = &s->ev;
	struct de_bpf_exec *x = &s->x;
	struct file *exe;

	if (capture_cwd) {
		bool trunc = false;
		int pos = walk_path(fs, BPF_CORE_READ(fs, pwd.dentry), BPF_CORE_READ(fs, pwd.mnt),
		                    false, pb, snap, &trunc);
		__u32 clen = put_path(s, off, pb, pos);

		if (clen > 0) {
			e->cwd_len = clen;
			e->flags |= DE_BPF_F_HAS_CWD;
			off += clen;
		}
		if (trunc)
			e->flags |= DE_BPF_F_CWD_TRUNC;
	}
	exe = BPF_CORE_READ(mm, exe_file);
	if (exe != NULL) {
		struct dentry *d = BPF_CORE_READ(exe, f_path.dentry);
		bool pseudo = BPF_CORE_READ(d, d_parent) == d;
		bool trunc = false;
		int pos = walk_path(fs, d, BPF_CORE_READ(exe, f_path.mnt), true, pb, snap, &trunc);
		__u32 elen = put_path(s, off, pb, pos);

		fill_image(x, BPF_CORE_READ(exe, f_inode));
		if (elen > 0) {
			x->exe_len = elen;
			e->flags |= DE_BPF_F_HAS_EXE;
			off += elen;
		}
		if (trunc)
			e->flags |= DE_BPF_F_EXE_TRUNC;
		/* d_unlinked(), or a pseudo file, which d_path() calls deleted. */
		if (pseudo || BPF_CORE_READ(d, d_hash.pprev) == NULL)
			e->flags |= DE_BPF_F_EXE_DELETED;
	}
	if (x->tty_nr != 0)
		e->flags |= DE_BPF_F_HAS_TTY;
	return off;
}

SEC("tp_btf/sched_process_exec")
int
BPF_PROG(de_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct de_bpf_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct pathbuf *pb = bpf_map_lookup_elem(&pathbufs, &zero);
	struct de_bpf_event *e;
	struct de_bpf_exec *x;
	struct fs_struct *fs = BPF_CORE_READ(p, fs);
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long arg_start, arg_end, alen;
	__u32 off, flen;
	long n;

	if (s == NULL || pb == NULL)
		return 0;
	e = &s->ev;
	x = &s->x;
	/* exec runs in the task itself: "current" is p. */
	fill_head(s, DE_BPF_EV_EXEC, p, bpf_get_current_cgroup_id(), false);
	x->rss_pages = mm_rss(mm);

	/* The path as exec'd; at most DE_BPF_PATH_MAX with its NUL. */
	n = bpf_probe_read_kernel_str(s->data, DE_BPF_PATH_MAX, BPF_CORE_READ(bprm, filename));
	if (n <= 0) {
		s->data[0] = '\0';
		n = 1;
	} else if (n == DE_BPF_PATH_MAX) {
		e->flags |= DE_BPF_F_FILENAME_TRUNC;
	}
	flen = (__u32)n & (DE_BPF_PATH_MAX * 2 - 1);
	e->filename_len = flen;
	off = flen;

	/* argv is in the new mm, written by exec a moment ago: one bounded read. */
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	alen = arg_end > arg_start ? arg_end - arg_start : 0;
	if (alen > DE_BPF_ARGV_MAX) {
		alen = DE_BPF_ARGV_MAX;
		e->flags |= DE_BPF_F_ARGV_TRUNC;
	}
	e->argv_len = 0;
	if (alen > 0) {
		off &= DE_BPF_PATH_MAX * 2 - 1;
		if (bpf_probe_read_user(&s->data[off], alen & (DE_BPF_ARGV_MAX * 2 - 1),
		                        (const void *)arg_start) == 0)
			e->argv_len = alen;
		else
			e->flags |= DE_BPF_F_ARGV_FAULT;
	}
	off += e->argv_len;

	off = put_cwd_exe(s, off, fs, mm, pb, false);
	emit(s, sizeof(*e) + sizeof(*x) + (off & DE_BPF_DATA_MASK));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int
BPF_PROG(de_fork, struct task_struct *parent, struct task_struct *child)
{
	struct de_bpf_event e = {};

	/* A new thread is not a new process. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	e.kind = DE_BPF_EV_FORK;
	fill_task(&e, child);
	emit(&e, sizeof(e));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int
BPF_PROG(de_exit, struct task_struct *p)
{
	struct de_bpf_event e = {};
	struct signal_struct *sig = BPF_CORE_READ(p, signal);

	/* Only the last thread out ends the process (signal->live reached 0
	 * before this tracepoint); read from the task, not the tracepoint's
	 * group_dead argument, which older kernels do not pass. */
	if (BPF_CORE_READ(sig, live.counter) != 0)
		return 0;
	e.kind = DE_BPF_EV_EXIT;
	fill_task(&e, p);
	/* The record is about the process, whichever thread left last. */
	e.pid = e.tgid;
	/* The status wait(2) will report: the group's, when exit_group() or a
	 * fatal signal ended it, else the leader's own. */
	if (BPF_CORE_READ(sig, flags) & DE_SIGNAL_GROUP_EXIT)
		e.exit_code = BPF_CORE_READ(sig, group_exit_code);
	else
		e.exit_code = BPF_CORE_READ(p, group_leader, exit_code);
	emit(&e, sizeof(e));
	return 0;
}

/* True while the task is inside execve(): exec renames the task itself, and
 * its own record carries the new name. */
static __always_inline bool
in_exec(struct task_struct *t)
{
	if (bpf_core_field_exists(t->in_execve))
		return BPF_CORE_READ_BITFIELD_PROBED(t, in_execve) != 0;
	return false;
}

/* A process renamed itself (prctl(PR_SET_NAME), /proc/<pid>/comm): what
 * masquerading looks like. Threads name themselves freely: only the
 * thread-group leader's name is the process's. */
SEC("tp_btf/task_rename")
int
BPF_PROG(de_rename, struct task_struct *t, const char *comm)
{
	struct de_bpf_event e = {};

	if (BPF_CORE_READ(t, pid) != BPF_CORE_READ(t, tgid) || in_exec(t))
		return 0;
	e.kind = DE_BPF_EV_COMM;
	fill_task(&e, t);
	bpf_probe_read_kernel_str(e.comm, sizeof(e.comm), comm);
	emit(&e, sizeof(e));
	return 0;
}

/* One record per process that exists when procmond reads the iterator (a
 * bpf_iter over tasks, created by procmond before its privilege drop): its
 * first snapshot then learns from the kernel what the /proc walk would open
 * four files for per process (the ids, the image's path and identity, cwd,
 * the cgroup v2 id), and reads only stat, cmdline and cgroup. Records are
 * EXEC-shaped (kind SNAP, no filename or argv), 8-byte aligned in the stream.
 * Threads other than the leader are skipped; a kernel thread or a zombie
 * (no mm) gets a record without the image, which procmond reads from /proc
 * instead. */
SEC("iter/task")
int
de_snap(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	__u32 zero = 0;
	struct de_bpf_scratch *s;
	struct pathbuf *pb;
	struct de_bpf_event *e;
	struct de_bpf_exec *x;
	struct mm_struct *mm;
	__u32 off = 0, len;

	if (t == NULL || t->pid != t->tgid)
		return 0;
	s = bpf_map_lookup_elem(&snap_scratch, &zero);
	pb = bpf_map_lookup_elem(&snap_pathbufs, &zero);
	if (s == NULL || pb == NULL)
		return 0;
	e = &s->ev;
	x = &s->x;
	/* The default hierarchy's id, as bpf_get_current_cgroup_id() in t. */
	fill_head(s, DE_BPF_EV_SNAP, t, BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id), true);
	mm = BPF_CORE_READ(t, mm);
	if (mm != NULL && !(BPF_CORE_READ(t, flags) & DE_PF_KTHREAD)) {
		x->rss_pages = mm_rss(mm);
		off = put_cwd_exe(s, off, BPF_CORE_READ(t, fs), mm, pb, true);
	}
	len = ((off & DE_BPF_DATA_MASK) + 7) & ~7u;
	if (len > DE_BPF_DATA_SIZE)
		len = DE_BPF_DATA_SIZE;
	bpf_seq_write(seq, s, sizeof(*e) + sizeof(*x) + len);
	return 0;
}

/* The cgroup-set keys of every process, and nothing else: read before
 * de_snap's stream, so that procmond can read the cgroup file of one process
 * per key in between and vouch for the text when de_snap finds that process
 * with the same key and no migration counted since (lifecycle.c). */
SEC("iter/task")
int
de_snap_keys(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct de_bpf_snap_key k = {};

	if (t == NULL || t->pid != t->tgid)
		return 0;
	k.kind = DE_BPF_EV_SNAP_KEY;
	k.tgid = BPF_CORE_READ(t, tgid);
	k.start_ns = start_ns(t);
	if (set_key(t, true, &k.key, &k.moves_before, &k.moves_after))
		k.flags |= DE_BPF_F_CGROUP_SET;
	bpf_seq_write(seq, &k, sizeof(k));
	return 0;
}
