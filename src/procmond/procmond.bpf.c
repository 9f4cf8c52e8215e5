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

/* include/linux/sched/signal.h; a #define, so not in BTF. Unchanged since 2.6. */
#define DE_SIGNAL_GROUP_EXIT 0x00000004

/* Set by user space before load: 0 turns the cwd walk off. */
const volatile __u32 capture_cwd = 1;

static __always_inline void
count_drop(void)
{
	__sync_fetch_and_add(&drop_count, 1);
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
	/* The process's start, as /proc/<pid>/stat reports it: the leader's. */
	if (bpf_core_field_exists(t->start_boottime))
		e->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	else
		e->start_ns = BPF_CORE_READ(t, group_leader, start_time);
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
};

/* One step of the cwd walk, from a dentry up to its parent (or across a
 * mount). A bpf_loop callback: verified once, not once per iteration. */
static long
walk_step(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	__u32 zero = 0;
	struct pathbuf *pb = bpf_map_lookup_elem(&pathbufs, &zero);
	/* Locals, not w->...: CO-RE relocates every access inside
	 * BPF_CORE_READ, and walk_ctx is not a kernel type. */
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *mnt = w->mnt;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct dentry *mroot = BPF_CORE_READ(vm, mnt_root);
	const unsigned char *name;
	int pos = w->pos;
	__u32 len;

	if (pb == NULL || (d == w->root_d && vm == w->root_m))
		goto done; /* the task's root: chroot ends the path like d_path() */
	if (d == mroot || d == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

		if (d != mroot || up == mnt)
			goto done; /* the global root */
		w->d = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vm = &up->mnt;
		return 0;
	}
	len = BPF_CORE_READ(d, d_name.len) & NAME_MASK;
	name = BPF_CORE_READ(d, d_name.name);
	if (pos <= (int)len || pos >= DE_BPF_PATH_MAX) {
		w->trunc = true;
		goto done;
	}
	pos -= len;
	/* pos < DE_BPF_PATH_MAX: the mask proves it, the buffer is twice that. */
	bpf_probe_read_kernel(&pb->buf[pos & (DE_BPF_PATH_MAX - 1)], len, name);
	pos -= 1;
	pb->buf[pos & (DE_BPF_PATH_MAX - 1)] = '/';
	w->pos = pos;
	w->d = parent;
	return 0;
done:
	w->done = true;
	return 1;
}

/* Writes the working directory of t into pb, ending at PATH_MAX - 1, and
 * returns the offset where it starts, or -1 when it cannot be read. Mounts
 * are crossed; the walk stops at the task's root (chroot), the global root,
 * or after DE_BPF_CWD_DEPTH steps (then *trunc is set). */
static __always_inline int
walk_cwd(struct task_struct *t, struct pathbuf *pb, bool *trunc)
{
	struct fs_struct *fs = BPF_CORE_READ(t, fs);
	struct walk_ctx w = {};

	if (fs == NULL)
		return -1;
	w.root_d = BPF_CORE_READ(fs, root.dentry);
	w.root_m = BPF_CORE_READ(fs, root.mnt);
	w.d = BPF_CORE_READ(fs, pwd.dentry);
	w.vm = BPF_CORE_READ(fs, pwd.mnt);
	w.mnt = container_of(w.vm, struct mount, mnt);
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

SEC("tp_btf/sched_process_exec")
int
BPF_PROG(de_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 zero = 0;
	struct de_bpf_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	struct pathbuf *pb = bpf_map_lookup_elem(&pathbufs, &zero);
	struct de_bpf_event *e;
	unsigned long arg_start, arg_end, alen;
	__u32 off, flen;
	long n;

	if (s == NULL || pb == NULL)
		return 0;
	e = &s->ev;
	e->kind = DE_BPF_EV_EXEC;
	e->flags = 0;
	e->exit_code = 0;
	e->cwd_len = 0;
	fill_task(e, p);

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
	arg_start = BPF_CORE_READ(p, mm, arg_start);
	arg_end = BPF_CORE_READ(p, mm, arg_end);
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

	if (capture_cwd) {
		bool trunc = false;
		int pos = walk_cwd(p, pb, &trunc);

		if (pos >= 0 && pos < DE_BPF_PATH_MAX) {
			__u32 clen = DE_BPF_PATH_MAX - pos;

			/* filename and argv took at most 2 * DE_BPF_PATH_MAX: the
			 * bound is for the verifier, cwd still fits behind them. */
			if (off > 2 * DE_BPF_PATH_MAX)
				off = 2 * DE_BPF_PATH_MAX;
			if (clen > DE_BPF_PATH_MAX)
				clen = DE_BPF_PATH_MAX;
			if (bpf_probe_read_kernel(&s->data[off], clen,
			                          &pb->buf[pos & (DE_BPF_PATH_MAX - 1)]) == 0) {
				e->cwd_len = clen;
				e->flags |= DE_BPF_F_HAS_CWD;
				off += clen;
			}
		}
		if (trunc)
			e->flags |= DE_BPF_F_CWD_TRUNC;
	}

	emit(s, sizeof(*e) + (off & DE_BPF_DATA_MASK));
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
