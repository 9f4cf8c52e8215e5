#include "lifecycle.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(a, n)   ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

#include "bpf_event.h"
#include "cleanup.h"
#include "log.h"
#include "sanitize.h"
#include "timeutil.h"
#include "util.h"

#define TABLE_MIN_CAP   1024
#define SYSTEM_UID_MAX  999
#define FUTURE_SLACK_MS 2000
#define MODIFIED_MAX    256

/* What a new instance gets read; the parent comes from the table. */
#define FULL_READ (PROCFS_READ_ALL & ~(unsigned)PROCFS_READ_PARENT)
/* Descriptors kept for other uses (sockets, WAL, hashing, logs). */
#define FD_RESERVE 256
/* A kept stat fd holds 4.5 KiB of kernel memory (its seq_file buffer) and
 * saves about 0.13x the floor's per-process cost at each later snapshot
 * over reopening stat by path; a kept cmdline fd holds 220 B. Instances
 * past this many get only the cmdline fd: kernel memory stays under
 * STAT_FD_MAX * 4.5 KiB + 220 B per process. */
#define STAT_FD_MAX 4096
/* Memos of what the kernel's exec records name (entry_from_kernel). */
#define IMAGE_MEMO 256 /* image key -> SHA-256 */
/* Parents read ahead of the walk, nested at most this deep (adopt_parent). */
#define ADOPT_DEPTH_MAX 8
/* A snapshot lets source events in every this many pids. */
#define LIFECYCLE_POLL_EVERY 32
/* What an exec record must carry to be recorded without reading /proc. */
#define KERNEL_COMPLETE                                                                            \
	(SOURCE_HAS_IDS | SOURCE_HAS_COMM | SOURCE_HAS_START | SOURCE_HAS_PPID | SOURCE_HAS_ARGV | \
	 SOURCE_HAS_EXE | SOURCE_HAS_IMAGE | SOURCE_HAS_STAT)

/* The columns of an instance that most processes share with many others
 * (the image, its hash, the user, the working directory, the terminal, the
 * cgroup and the parent's details): one interned, reference-counted tuple of
 * shared strings per distinct combination, so 10,000 workers of one server
 * hold one tuple instead of ten string pointers each. Tuples are immutable:
 * a change makes (or finds) another one. */
enum {
	CX_EXE,
	CX_HASH,
	CX_USER,
	CX_CWD,
	CX_TTY,
	CX_CGROUP,
	CX_CONTAINER,
	CX_PNAME,
	CX_PEXE,
	CX_PCMD,
	CX_N
};

struct ctx {
	struct ctx *next;
	uint64_t hash;
	uint32_t ref;
	char *s[CX_N]; /* shared strings, or NULL */
};

/* What the table keeps of a process_record: the columns that change or that
 * are the instance's own; the rest is in the ctx tuple. */
struct erec {
	int32_t pid;
	int32_t ppid;
	char *name;         /* shared string */
	char *command_line; /* shared string */
	uint64_t start_time;
	uint64_t start_ticks;
	double cpu_usage;
	uint32_t rss_pages; /* memory_usage in pages */
	uint32_t uid;       /* ids as uid_t: ID_UNKNOWN for process.h's -1 */
	uint32_t euid;
	uint32_t gid;
	int32_t threads;
	uint32_t missing;
};

/* The record's one-letter state and flags: in struct entry, next to the
 * entry's own flags, where they fill what would be padding after struct
 * erec (8 + 2 + 1 bytes less per process than bools and a char in each). */
struct rflags {
	char state; /* one letter, '\0' when unknown */
	bool accessible : 1;
	bool file_exists : 1;
	bool exe_deleted : 1;
	bool exe_memfd : 1;
	bool argv_truncated : 1;
};

struct entry {
	struct erec rec;
	struct ctx *cx;      /* NULL: every shared column unknown */
	uint64_t cpu_ticks;  /* utime + stime at the last sample */
	uint64_t sample_ms;  /* monotonic ms of that sample */
	uint64_t cmd_digest; /* of the raw command line */
	uint32_t gen;        /* snapshot generation that last saw it */
	int cmd_fd;          /* kept open: argv re-read without a path lookup, or -1 */
	int stat_fd;         /* kept open (while STAT_FD_MAX allows), or -1 */
	uid_t dir_uid;       /* owner of /proc/PID: follows the euid */
	gid_t dir_gid;
	struct rflags rf;
	bool hash_pending : 1; /* the image is being hashed in the background */
	bool fork_only : 1;    /* known from a fork event, not announced yet */
	bool hidden : 1;       /* tracked but not reported (skip_kernel/system) */
	bool kernel_thread : 1;
	bool flagged_future : 1; /* a suspicious start time was reported */
	bool adopted : 1;        /* read early as a parent (adopt_parent), at gen */
	bool snapshot_only : 1;  /* announced by a `snapshot` event, never by a start */
};

/* 10,000 processes hold 10,000 of these: keep it at two cache lines. */
_Static_assert(sizeof(struct entry) <= 128, "struct entry grew");

#define ID_UNKNOWN UINT32_MAX

/* An id column as process.h has it (-1 unknown), and back. */
static int64_t
id_get(uint32_t v)
{
	return v == ID_UNKNOWN ? -1 : (int64_t)v;
}

static uint32_t
id_put(int64_t v)
{
	return v < 0 || v >= (int64_t)ID_UNKNOWN ? ID_UNKNOWN : (uint32_t)v;
}

static uint64_t
page_size(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 0 ? (uint64_t)page : 4096u;
}

/* A shared column of an entry. */
#define CX(e, i) ((e)->cx != NULL ? (e)->cx->s[i] : NULL)

/* The SHA-256 of an image the kernel identified by its inode key. */
struct image_memo {
	struct source_image_key key;
	bool used;
	char hex[HASH_HEX_LEN + 1];
};

struct lifecycle {
	struct procfs *pf;
	struct hash_cache *hc;
	struct collector_opts opts;
	lifecycle_emit_fn emit;
	void *ctx;
	uint32_t *slots;       /* open addressing by pid, linear probing: entry handles */
	struct pstr **pool;    /* POOL_BUCKETS chains of shared strings */
	struct ctx **ctxs;     /* CTX_BUCKETS chains of shared tuples */
	size_t fds, fd_budget; /* kept fds, and how many may be */
	size_t stat_fds;       /* of which stat fds (at most STAT_FD_MAX) */
	size_t cap, count;
	uint32_t gen;
	bool first_done;
	bool walking;         /* inside the walk's read of a new pid */
	unsigned adopt_depth; /* parents being read early, nested */
	/* Per snapshot. */
	bool emit_all, truncated;
	uint32_t seen;
	uint64_t now_ms, now_mono_ms, now_boot_ms;
	struct lifecycle_stats st;
	void (*poll_fn)(void *ctx); /* lifecycle_set_poll */
	void *poll_ctx;
	uint32_t poll_count;
	struct image_memo *images; /* IMAGE_MEMO, allocated at first use */
	struct witness *wit;       /* during lifecycle_snapshot_from: wit_cap slots */
	size_t wit_cap;
	struct slab *partial; /* slabs with a free entry */
	struct slab **slabs;  /* every slab, by address */
	size_t nslabs, slabs_cap;
	struct slab **by_id; /* every slab at its id (NULL: a free id) */
	size_t ids_cap;
};

/* ---- shared strings ----
 *
 * Many processes carry the same executable path, hash, user name, cgroup and
 * parent details (every worker of a server, every sleeper of a shell). The
 * entries hold those columns (POOLED below) as reference-counted shared
 * strings. Every other column is owned by the record as process.h says. */

#define POOL_BUCKETS 4096
#define CTX_BUCKETS  1024

struct pstr {
	struct pstr *next;
	uint64_t hash;
	uint32_t ref;
	char s[];
};

/* A shared copy of s (NULL for NULL, or when memory is short). */
static char *
pool_get(struct lifecycle *lc, const char *s)
{
	struct pstr **b, *p;
	uint64_t h;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	h = procfs_digest(s, n);
	b = &lc->pool[h % POOL_BUCKETS];
	for (p = *b; p != NULL; p = p->next) {
		if (p->hash == h && strcmp(p->s, s) == 0) {
			p->ref++;
			return p->s;
		}
	}
	if ((p = malloc(sizeof(*p) + n + 1)) == NULL)
		return NULL;
	p->hash = h;
	p->ref = 1;
	memcpy(p->s, s, n + 1);
	p->next = *b;
	*b = p;
	return p->s;
}

static void
pool_put(struct lifecycle *lc, char *s)
{
	struct pstr *p, **b;

	if (s == NULL)
		return;
	p = (struct pstr *)(void *)(s - offsetof(struct pstr, s));
	if (--p->ref > 0)
		return;
	for (b = &lc->pool[p->hash % POOL_BUCKETS]; *b != p; b = &(*b)->next)
		;
	*b = p->next;
	free(p);
}

/* Trades an owned string for a shared one. */
static char *
pool_adopt(struct lifecycle *lc, char *owned)
{
	char *s = pool_get(lc, owned);

	free(owned);
	return s;
}

/* Another reference to the shared string s (NULL for NULL). */
static char *
pool_ref(char *s)
{
	if (s != NULL)
		((struct pstr *)(void *)(s - offsetof(struct pstr, s)))->ref++;
	return s;
}

/* ---- shared tuples ---- */

static uint64_t
ctx_hash(char *const v[CX_N])
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < CX_N; i++)
		h = (h ^ (uint64_t)(uintptr_t)v[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* The tuple of the shared strings v (it takes its own references). NULL
 * when memory is short. Shared strings are unique, so their addresses are
 * their identity. */
static struct ctx *
ctx_get(struct lifecycle *lc, char *const v[CX_N])
{
	uint64_t h = ctx_hash(v);
	struct ctx **b = &lc->ctxs[h % CTX_BUCKETS], *c;

	for (c = *b; c != NULL; c = c->next) {
		if (c->hash == h && memcmp(c->s, v, sizeof(c->s)) == 0) {
			c->ref++;
			return c;
		}
	}
	if ((c = malloc(sizeof(*c))) == NULL)
		return NULL;
	c->hash = h;
	c->ref = 1;
	for (size_t i = 0; i < CX_N; i++)
		c->s[i] = pool_ref(v[i]);
	c->next = *b;
	*b = c;
	return c;
}

static void
ctx_put(struct lifecycle *lc, struct ctx *c)
{
	struct ctx **b;

	if (c == NULL || --c->ref > 0)
		return;
	for (b = &lc->ctxs[c->hash % CTX_BUCKETS]; *b != c; b = &(*b)->next)
		;
	*b = c->next;
	for (size_t i = 0; i < CX_N; i++)
		pool_put(lc, c->s[i]);
	free(c);
}

/* Makes e's tuple the one of v (shared strings; references handed over,
 * released here). Memory short: e keeps its tuple. */
static void
cx_replace(struct lifecycle *lc, struct entry *e, char *v[CX_N])
{
	struct ctx *n = ctx_get(lc, v);

	for (size_t i = 0; i < CX_N; i++)
		pool_put(lc, v[i]);
	if (n == NULL)
		return;
	ctx_put(lc, e->cx);
	e->cx = n;
}

/* Sets e's shared column i to s, a shared string whose reference is handed
 * over (NULL allowed). */
static void
cx_set(struct lifecycle *lc, struct entry *e, int i, char *s)
{
	char *v[CX_N] = { NULL };

	if (CX(e, i) == s) {
		pool_put(lc, s);
		return;
	}
	for (size_t k = 0; k < CX_N; k++)
		v[k] = k == (size_t)i ? s : pool_ref(CX(e, k));
	cx_replace(lc, e, v);
}

/* Moves every column of r, filled with owned strings (by procfs or a copy),
 * into e as shared strings; r is left empty. */
static void
rec_pack(struct lifecycle *lc, struct entry *e, struct process_record *r)
{
	struct erec *d = &e->rec;
	char *v[CX_N];

	pool_put(lc, d->name);
	pool_put(lc, d->command_line);
	d->pid = r->pid;
	d->ppid = r->ppid;
	d->name = pool_adopt(lc, TAKE_PTR(r->name));
	d->command_line = pool_adopt(lc, TAKE_PTR(r->command_line));
	d->start_time = r->start_time;
	d->start_ticks = r->start_ticks;
	d->cpu_usage = r->cpu_usage;
	d->rss_pages = (uint32_t)(r->memory_usage / page_size());
	d->uid = id_put(r->user_id);
	d->euid = id_put(r->effective_user_id);
	d->gid = id_put(r->group_id);
	d->threads = r->threads;
	d->missing = r->missing;
	e->rf.state = r->state != NULL ? r->state[0] : '\0';
	e->rf.accessible = r->accessible;
	e->rf.file_exists = r->file_exists;
	e->rf.exe_deleted = r->exe_deleted;
	e->rf.exe_memfd = r->exe_memfd;
	e->rf.argv_truncated = r->argv_truncated;
	v[CX_EXE] = pool_adopt(lc, TAKE_PTR(r->executable_path));
	v[CX_HASH] = pool_adopt(lc, TAKE_PTR(r->executable_hash));
	v[CX_USER] = pool_adopt(lc, TAKE_PTR(r->user_name));
	v[CX_CWD] = pool_adopt(lc, TAKE_PTR(r->cwd));
	v[CX_TTY] = pool_adopt(lc, TAKE_PTR(r->tty));
	v[CX_CGROUP] = pool_adopt(lc, TAKE_PTR(r->cgroup));
	v[CX_CONTAINER] = pool_adopt(lc, TAKE_PTR(r->container_id));
	v[CX_PNAME] = pool_adopt(lc, TAKE_PTR(r->parent_name));
	v[CX_PEXE] = pool_adopt(lc, TAKE_PTR(r->parent_executable_path));
	v[CX_PCMD] = pool_adopt(lc, TAKE_PTR(r->parent_command_line));
	cx_replace(lc, e, v);
	process_record_clear(r);
}

/* e as a process_record whose strings are borrowed from e (state's from
 * the caller's two bytes): valid while e and state are. */
static void
rec_view(const struct entry *e, struct process_record *r, char state[2])
{
	const struct erec *s = &e->rec;

	process_record_init(r);
	r->pid = s->pid;
	r->ppid = s->ppid;
	r->name = s->name;
	r->command_line = s->command_line;
	r->start_time = s->start_time;
	r->start_ticks = s->start_ticks;
	r->cpu_usage = s->cpu_usage;
	r->memory_usage = s->rss_pages * page_size();
	r->user_id = id_get(s->uid);
	r->effective_user_id = id_get(s->euid);
	r->group_id = id_get(s->gid);
	r->threads = s->threads;
	r->missing = s->missing;
	if (e->rf.state != '\0') {
		state[0] = e->rf.state;
		state[1] = '\0';
		r->state = state;
	}
	r->accessible = e->rf.accessible;
	r->file_exists = e->rf.file_exists;
	r->exe_deleted = e->rf.exe_deleted;
	r->exe_memfd = e->rf.exe_memfd;
	r->argv_truncated = e->rf.argv_truncated;
	r->executable_path = CX(e, CX_EXE);
	r->executable_hash = CX(e, CX_HASH);
	r->user_name = CX(e, CX_USER);
	r->cwd = CX(e, CX_CWD);
	r->tty = CX(e, CX_TTY);
	r->cgroup = CX(e, CX_CGROUP);
	r->container_id = CX(e, CX_CONTAINER);
	r->parent_name = CX(e, CX_PNAME);
	r->parent_executable_path = CX(e, CX_PEXE);
	r->parent_command_line = CX(e, CX_PCMD);
}

static void
erec_init(struct erec *r)
{
	memset(r, 0, sizeof(*r));
	r->pid = -1;
	r->ppid = -1;
	r->uid = r->euid = r->gid = ID_UNKNOWN;
}

static void
set_state(struct entry *e, char state)
{
	e->rf.state = state;
}

/* ---- entry slabs ----
 *
 * Entries come from slabs of SLAB_N (127): no allocator header and rounding per
 * entry (144 bytes a malloc'd entry took, 128 here) and no holes between
 * them. Each slab keeps its own free list, and goes back to malloc when its
 * last entry does, unless it is the only slab with room (so one process
 * starting and exiting at a slab's edge does not allocate a slab each
 * time). Slabs are malloc'd, not calloc'd: an entry's pages become resident
 * when it is first handed out. */

/* A slab and malloc's header take 16 KiB: a slab fits the holes the pid
 * table leaves in the heap as it doubles (16, 32, 64 KiB), where 32 KiB
 * slabs missed them by a few bytes and the heap grew instead. */
#define SLAB_BYTES 16384
#define SLAB_N     ((SLAB_BYTES - 64) / sizeof(struct entry))
/* The pid table holds 32-bit handles, not pointers (half the table: 64 KiB
 * at 10,000 processes): (slab id + 1) << SLAB_SHIFT | index in the slab;
 * 0 is an empty slot. */
#define SLAB_SHIFT  7
#define SLAB_ID_MAX ((UINT32_MAX >> SLAB_SHIFT) - 1)

struct slab {
	struct slab *next, *prev; /* in lc->partial */
	struct entry *free;       /* freed entries, linked through their first bytes */
	uint32_t used;            /* entries handed out */
	uint32_t fresh;           /* e[fresh..] never handed out */
	uint32_t id;              /* in lc->by_id */
	struct entry e[SLAB_N];
};

_Static_assert(sizeof(struct slab) + 16 <= SLAB_BYTES, "a slab outgrew SLAB_BYTES");
_Static_assert(SLAB_N <= 1u << SLAB_SHIFT, "a slab index outgrew SLAB_SHIFT");

static void
partial_link(struct lifecycle *lc, struct slab *sl)
{
	sl->prev = NULL;
	sl->next = lc->partial;
	if (lc->partial != NULL)
		lc->partial->prev = sl;
	lc->partial = sl;
}

static void
partial_unlink(struct lifecycle *lc, struct slab *sl)
{
	if (sl->prev != NULL)
		sl->prev->next = sl->next;
	else
		lc->partial = sl->next;
	if (sl->next != NULL)
		sl->next->prev = sl->prev;
	sl->next = sl->prev = NULL;
}

/* Where sl is, or goes, in lc->slabs (sorted by address). */
static size_t
slab_index(const struct lifecycle *lc, uintptr_t addr)
{
	size_t lo = 0, hi = lc->nslabs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uintptr_t)lc->slabs[mid] <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct slab *
slab_new(struct lifecycle *lc)
{
	struct slab *sl;
	size_t i, id;

	if (lc->nslabs == lc->slabs_cap) {
		size_t ncap = lc->slabs_cap ? lc->slabs_cap * 2 : 16;
		struct slab **n = realloc(lc->slabs, ncap * sizeof(*n));

		if (n == NULL)
			return NULL;
		lc->slabs = n;
		lc->slabs_cap = ncap;
	}
	for (id = 0; id < lc->ids_cap && lc->by_id[id] != NULL; id++)
		;
	if (id == lc->ids_cap) {
		size_t ncap = lc->ids_cap ? lc->ids_cap * 2 : 16;
		struct slab **n;

		if (id > SLAB_ID_MAX || (n = realloc(lc->by_id, ncap * sizeof(*n))) == NULL)
			return NULL;
		memset(&n[id], 0, (ncap - id) * sizeof(*n));
		lc->by_id = n;
		lc->ids_cap = ncap;
	}
	if ((sl = malloc(sizeof(*sl))) == NULL)
		return NULL;
	sl->free = NULL;
	sl->used = sl->fresh = 0;
	sl->id = (uint32_t)id;
	lc->by_id[id] = sl;
	ASAN_POISON_MEMORY_REGION(sl->e, sizeof(sl->e));
	i = slab_index(lc, (uintptr_t)sl);
	memmove(&lc->slabs[i + 1], &lc->slabs[i], (lc->nslabs - i) * sizeof(*lc->slabs));
	lc->slabs[i] = sl;
	lc->nslabs++;
	partial_link(lc, sl);
	return sl;
}

static void
slab_free(struct lifecycle *lc, struct slab *sl)
{
	size_t i = slab_index(lc, (uintptr_t)sl) - 1;

	partial_unlink(lc, sl);
	lc->by_id[sl->id] = NULL;
	memmove(&lc->slabs[i], &lc->slabs[i + 1], (lc->nslabs - i - 1) * sizeof(*lc->slabs));
	lc->nslabs--;
	ASAN_UNPOISON_MEMORY_REGION(sl->e, sizeof(sl->e));
	free(sl);
}

static struct slab *
slab_of(const struct lifecycle *lc, const struct entry *e)
{
	return lc->slabs[slab_index(lc, (uintptr_t)e) - 1];
}

/* An uninitialized entry, or NULL when memory is short. */
static struct entry *
entry_alloc(struct lifecycle *lc)
{
	struct slab *sl = lc->partial;
	struct entry *e;

	if (sl == NULL && (sl = slab_new(lc)) == NULL)
		return NULL;
	if (sl->free != NULL) {
		e = sl->free;
		ASAN_UNPOISON_MEMORY_REGION(e, sizeof(*e));
		memcpy(&sl->free, e, sizeof(sl->free));
	} else {
		e = &sl->e[sl->fresh++];
		ASAN_UNPOISON_MEMORY_REGION(e, sizeof(*e));
	}
	if (++sl->used == SLAB_N)
		partial_unlink(lc, sl);
	return e;
}

static void
entry_release(struct lifecycle *lc, struct entry *e)
{
	struct slab *sl = slab_of(lc, e);

	if (sl->used-- == SLAB_N)
		partial_link(lc, sl);
	if (sl->used == 0 && (lc->partial != sl || sl->next != NULL)) {
		slab_free(lc, sl);
		return;
	}
	memcpy(e, &sl->free, sizeof(sl->free));
	sl->free = e;
	ASAN_POISON_MEMORY_REGION(e, sizeof(*e));
}

/* ---- the pid table ---- */

static size_t
slot_of(const struct lifecycle *lc, pid_t pid)
{
	return ((size_t)(uint32_t)pid * 2654435761u) & (lc->cap - 1);
}

static uint32_t
entry_handle(const struct lifecycle *lc, const struct entry *e)
{
	const struct slab *sl = slab_of(lc, e);

	return (sl->id + 1) << SLAB_SHIFT | (uint32_t)(e - sl->e);
}

/* The entry of handle h, or NULL for 0. */
static struct entry *
handle_entry(const struct lifecycle *lc, uint32_t h)
{
	if (h == 0)
		return NULL;
	return &lc->by_id[(h >> SLAB_SHIFT) - 1]->e[h & ((1u << SLAB_SHIFT) - 1)];
}

static struct entry *
slot_get(const struct lifecycle *lc, size_t i)
{
	return handle_entry(lc, lc->slots[i]);
}

static struct entry *
table_find(const struct lifecycle *lc, pid_t pid)
{
	for (size_t i = slot_of(lc, pid);; i = (i + 1) & (lc->cap - 1)) {
		struct entry *e = slot_get(lc, i);

		if (e == NULL || e->rec.pid == pid)
			return e;
	}
}

static int
table_grow(struct lifecycle *lc)
{
	uint32_t *old = lc->slots;
	size_t old_cap = lc->cap, ncap = lc->cap ? lc->cap * 2 : TABLE_MIN_CAP;

	if ((lc->slots = calloc(ncap, sizeof(*lc->slots))) == NULL) {
		lc->slots = old;
		return -ENOMEM;
	}
	lc->cap = ncap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i] == 0)
			continue;
		for (size_t j = slot_of(lc, handle_entry(lc, old[i])->rec.pid);;
		     j = (j + 1) & (ncap - 1)) {
			if (lc->slots[j] == 0) {
				lc->slots[j] = old[i];
				break;
			}
		}
	}
	free(old);
	return 0;
}

static int
table_insert(struct lifecycle *lc, struct entry *e)
{
	size_t i;
	int rc;

	if ((lc->count + 1) * 10 > lc->cap * 7 && (rc = table_grow(lc)) < 0)
		return rc;
	for (i = slot_of(lc, e->rec.pid); lc->slots[i] != 0; i = (i + 1) & (lc->cap - 1))
		;
	lc->slots[i] = entry_handle(lc, e);
	lc->count++;
	return 0;
}

static void
entry_free(struct lifecycle *lc, struct entry *e)
{
	if (e == NULL)
		return;
	if (e->cmd_fd >= 0) {
		lc->fds--;
		close(e->cmd_fd);
	}
	if (e->stat_fd >= 0) {
		lc->fds--;
		lc->stat_fds--;
		close(e->stat_fd);
	}
	pool_put(lc, e->rec.name);
	pool_put(lc, e->rec.command_line);
	ctx_put(lc, e->cx);
	entry_release(lc, e);
}

static struct entry *
entry_new(struct lifecycle *lc)
{
	struct entry *e = entry_alloc(lc);

	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	erec_init(&e->rec);
	e->cmd_fd = e->stat_fd = -1;
	return e;
}

/* Removes e (backward-shift deletion keeps probe chains intact) and frees it. */
static void
table_remove(struct lifecycle *lc, struct entry *e)
{
	size_t i = slot_of(lc, e->rec.pid), j;
	uint32_t h = entry_handle(lc, e);

	while (lc->slots[i] != h)
		i = (i + 1) & (lc->cap - 1);
	lc->slots[i] = 0;
	for (j = (i + 1) & (lc->cap - 1); lc->slots[j] != 0; j = (j + 1) & (lc->cap - 1)) {
		size_t home = slot_of(lc, slot_get(lc, j)->rec.pid);

		/* Move j back to the hole when its home is not inside (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			lc->slots[i] = lc->slots[j];
			lc->slots[j] = 0;
			i = j;
		}
	}
	lc->count--;
	entry_free(lc, e);
}

/* ---- emitting ---- */

static void
emit_event(struct lifecycle *lc, enum proc_event_type type, const struct entry *e,
           const char *source, const char *fields, const char *reason, int32_t exit_code)
{
	struct process_event ev;
	char state[2];

	if (e->hidden)
		return;
	process_event_init(&ev);
	ev.type = type;
	ev.time = time_now_ms();
	/* Borrowed strings: the event lives only for the duration of the call. */
	ev.source = (char *)source;
	rec_view(e, &ev.proc, state);
	ev.modified_fields = (char *)fields;
	ev.reason = (char *)reason;
	if (type == PROC_EV_STOP) {
		ev.exit_code = exit_code;
		ev.runtime_ms = ev.time > e->rec.start_time ? ev.time - e->rec.start_time : 0;
	}
	lc->st.events[type]++;
	lc->emit(lc->ctx, &ev);
}

/* ---- filling records ---- */

static uint64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* exe_stat: the image's stat from the read that found it, or NULL. */
static void
fill_hash(struct lifecycle *lc, struct entry *e, const struct stat *exe_stat)
{
	char hex[HASH_HEX_LEN + 1];
	int rc;

	e->hash_pending = false;
	if (lc->hc == NULL || !lc->opts.compute_hashes || e->kernel_thread)
		return;
	if (CX(e, CX_EXE) == NULL) {
		e->rec.missing |= PROC_MISSING_HASH;
		return;
	}
	rc = exe_stat ? hash_cache_get_stat(lc->hc, exe_stat, procfs_dirfd(lc->pf), e->rec.pid, hex)
	              : hash_cache_get(lc->hc, procfs_dirfd(lc->pf), e->rec.pid, hex);
	if (rc == 0) {
		cx_set(lc, e, CX_HASH, pool_get(lc, hex));
		e->rec.missing &= ~(uint32_t)PROC_MISSING_HASH;
		return;
	}
	e->rec.missing |= PROC_MISSING_HASH;
	e->hash_pending = rc == -EINPROGRESS || rc == -EAGAIN;
}

static int entry_read_full(struct lifecycle *lc, pid_t pid, struct entry **ret);
static void announce_new(struct lifecycle *lc, struct entry *e, const char *source);

/* The walk meets a process before its parent when pids wrapped (pid_max):
 * the parent, not in the table yet, is then read in full once and tracked
 * (announced now, skipped when the walk reaches it), so its other children
 * find it in the table instead of each reading its files. Returns the new
 * entry, or NULL (not during the walk's own reads, nesting too deep, the
 * max_processes limit, or the parent is gone). */
static struct entry *
adopt_parent(struct lifecycle *lc, pid_t ppid)
{
	struct entry *p;

	if (!lc->walking || lc->adopt_depth >= ADOPT_DEPTH_MAX ||
	    (lc->opts.max_processes && lc->seen >= lc->opts.max_processes))
		return NULL;
	lc->adopt_depth++;
	if (entry_read_full(lc, ppid, &p) < 0)
		p = NULL;
	lc->adopt_depth--;
	if (p == NULL)
		return NULL;
	if (table_insert(lc, p) < 0) {
		entry_free(lc, p);
		return NULL;
	}
	p->gen = lc->gen;
	p->adopted = true;
	announce_new(lc, p, "poll");
	return p;
}

static void
fill_parent(struct lifecycle *lc, struct entry *e)
{
	const struct entry *p;
	struct process_record r;
	char *v[CX_N];

	if (!lc->opts.enhanced_metadata || e->rec.ppid <= 0)
		return;
	for (size_t k = 0; k < CX_N; k++)
		v[k] = pool_ref(CX(e, k));
	pool_put(lc, v[CX_PNAME]);
	pool_put(lc, v[CX_PEXE]);
	pool_put(lc, v[CX_PCMD]);
	if ((p = table_find(lc, e->rec.ppid)) == NULL)
		p = adopt_parent(lc, e->rec.ppid);
	if (p != NULL && !p->fork_only) {
		v[CX_PNAME] = pool_ref(p->rec.name);
		v[CX_PEXE] = pool_ref(CX(p, CX_EXE));
		v[CX_PCMD] = pool_ref(p->rec.command_line);
		cx_replace(lc, e, v);
		return;
	}
	/* procfs fills owned strings into an empty record: then share them. */
	process_record_init(&r);
	r.pid = e->rec.pid;
	r.ppid = e->rec.ppid;
	lc->st.parent_reads++;
	procfs_read_parent(lc->pf, &r);
	e->rec.missing |= r.missing;
	v[CX_PNAME] = pool_adopt(lc, TAKE_PTR(r.parent_name));
	v[CX_PEXE] = pool_adopt(lc, TAKE_PTR(r.parent_executable_path));
	v[CX_PCMD] = pool_adopt(lc, TAKE_PTR(r.parent_command_line));
	process_record_clear(&r);
	cx_replace(lc, e, v);
}

/* CPU percent of one CPU: since the last sample, or over the whole life of
 * the instance when this is the first look. */
static void
update_cpu(struct lifecycle *lc, struct entry *e, uint64_t ticks)
{
	long hz = procfs_ticks_per_sec(lc->pf);
	uint64_t span_ms, used_ms;

	if (e->sample_ms != 0 && lc->now_mono_ms > e->sample_ms) {
		span_ms = lc->now_mono_ms - e->sample_ms;
	} else {
		uint64_t start_ms = e->rec.start_ticks * 1000u / (uint64_t)hz;

		span_ms = lc->now_boot_ms > start_ms ? lc->now_boot_ms - start_ms : 0;
	}
	used_ms = (ticks >= e->cpu_ticks ? ticks - e->cpu_ticks : 0) * 1000u / (uint64_t)hz;
	e->rec.cpu_usage = span_ms ? (double)used_ms * 100.0 / (double)span_ms : 0.0;
	e->cpu_ticks = ticks;
	e->sample_ms = lc->now_mono_ms;
}

static bool
is_hidden(const struct lifecycle *lc, const struct entry *e)
{
	if (lc->opts.skip_kernel && e->kernel_thread)
		return true;
	return lc->opts.skip_system && e->rec.uid <= SYSTEM_UID_MAX;
}

/* Reads every column of pid into a new entry. Returns 0 and sets *ret, or
 * -ESRCH / -ENOMEM. */
static int
entry_read_full(struct lifecycle *lc, pid_t pid, struct entry **ret)
{
	struct entry *e = entry_new(lc);
	bool keep = lc->fds + 2 <= lc->fd_budget;
	bool keep_stat = keep && lc->stat_fds < STAT_FD_MAX;
	bool hashing = lc->hc != NULL && lc->opts.compute_hashes;
	struct procfs_sample s;
	struct process_record r;
	int rc;

	if (e == NULL)
		return -ENOMEM;
	process_record_init(&r);
	rc = procfs_read_pid(lc->pf, pid,
	                     FULL_READ | (keep ? PROCFS_KEEP_FDS : 0u) |
	                         (keep_stat ? PROCFS_KEEP_STAT_FD : 0u) |
	                         (hashing ? PROCFS_READ_EXE_KEY : 0u),
	                     &r, &s);
	if (rc < 0) {
		process_record_clear(&r);
		entry_free(lc, e);
		return rc;
	}
	rec_pack(lc, e, &r);
	e->cmd_fd = s.cmdline_fd;
	e->stat_fd = s.stat_fd;
	lc->fds += (size_t)(e->cmd_fd >= 0) + (size_t)(e->stat_fd >= 0);
	lc->stat_fds += e->stat_fd >= 0;
	lc->st.full_reads++;
	e->kernel_thread = s.kernel_thread;
	e->cmd_digest = s.cmdline_digest;
	e->cpu_ticks = 0;
	update_cpu(lc, e, s.cpu_ticks);
	/* /proc/PID's files belong to the euid and egid while the task is
	 * dumpable (to root otherwise): the next snapshot's stat read compares
	 * its owner, and a mismatch re-reads the ids (recheck_ids), as for an
	 * instance from a kernel event. */
	e->dir_uid = (uid_t)id_put(r.effective_user_id);
	e->dir_gid = (gid_t)id_put(s.egid);
	e->hidden = is_hidden(lc, e);
	if (!e->hidden) {
		fill_hash(lc, e, s.have_exe_stat ? &s.exe_stat : NULL);
		fill_parent(lc, e);
	}
	*ret = e;
	return 0;
}

/* ---- snapshot ---- */

static void
check_future(struct lifecycle *lc, struct entry *e, const char *source)
{
	char reason[160];

	if (e->flagged_future || e->rec.start_time <= lc->now_ms + FUTURE_SLACK_MS)
		return;
	e->flagged_future = true;
	snprintf(reason, sizeof(reason), "start time %llu ms is after the present (%llu ms)",
	         (unsigned long long)e->rec.start_time, (unsigned long long)lc->now_ms);
	emit_event(lc, PROC_EV_SUSPICIOUS, e, source, NULL, reason, -1);
}

static void
add_field(char *buf, const char *name)
{
	size_t n = strlen(buf);

	snprintf(buf + n, MODIFIED_MAX - n, "%s%s", n ? "," : "", name);
}

static bool
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a != b;
	return strcmp(a, b) != 0;
}

/* The instance may have exec'd: re-read the image and rehash when it moved. */
static void
recheck_image(struct lifecycle *lc, struct entry *e, char *fields)
{
	struct process_record tmp;
	struct procfs_sample s;
	bool moved;

	process_record_init(&tmp);
	if (procfs_read_pid(lc->pf, e->rec.pid, PROCFS_READ_STAT | PROCFS_READ_EXE, &tmp, &s) < 0) {
		process_record_clear(&tmp);
		return;
	}
	moved =
	    str_differs(tmp.executable_path, CX(e, CX_EXE)) || tmp.exe_deleted != e->rf.exe_deleted;
	if (moved) {
		cx_set(lc, e, CX_EXE, pool_adopt(lc, TAKE_PTR(tmp.executable_path)));
		e->rf.exe_deleted = tmp.exe_deleted;
		e->rf.exe_memfd = tmp.exe_memfd;
		e->rf.file_exists = tmp.file_exists;
		add_field(fields, "executable_path");
		cx_set(lc, e, CX_HASH, NULL);
		fill_hash(lc, e, NULL);
		if (CX(e, CX_HASH) != NULL)
			add_field(fields, "executable_hash");
	}
	process_record_clear(&tmp);
}

static void
recheck_cmdline(struct lifecycle *lc, struct entry *e, char *fields)
{
	_cleanup_free_ char *raw = NULL;
	char *clean = NULL;
	size_t len;
	bool trunc;

	if ((e->cmd_fd >= 0 ? procfs_pread_cmdline(e->cmd_fd, &raw, &len, &trunc)
	                    : procfs_read_cmdline_raw(lc->pf, e->rec.pid, &raw, &len, &trunc)) < 0)
		return;
	if (procfs_digest(raw, len) == e->cmd_digest)
		return;
	/* An empty argv means the process's memory is gone: it is exiting (a
	 * zombie, or still R/S/D between releasing its mm and becoming one),
	 * not rewriting its argv. A live process cannot empty its argv area
	 * short of PR_SET_MM (CAP_SYS_RESOURCE); its exit follows. */
	if (len == 0)
		return;
	if (procfs_sanitize_cmdline(raw, len, &clean) < 0)
		return;
	e->cmd_digest = procfs_digest(raw, len);
	e->rf.argv_truncated = trunc;
	if (!str_differs(clean, e->rec.command_line)) {
		free(clean);
		return;
	}
	pool_put(lc, e->rec.command_line);
	e->rec.command_line = pool_adopt(lc, clean);
	add_field(fields, "command_line");
	if (!e->kernel_thread)
		recheck_image(lc, e, fields);
}

/* owner: the owner of /proc/PID/stat from this snapshot's read (the ids are
 * re-read when it moved), or NULL to re-read them now. */
static void
recheck_ids(struct lifecycle *lc, struct entry *e, char *fields, const struct stat *owner)
{
	struct process_record tmp;
	struct procfs_sample s;

	if (owner != NULL) {
		if (e->dir_uid == owner->st_uid && e->dir_gid == owner->st_gid)
			return;
		e->dir_uid = owner->st_uid;
		e->dir_gid = owner->st_gid;
	}
	process_record_init(&tmp);
	if (procfs_read_pid(lc->pf, e->rec.pid, PROCFS_READ_STAT | PROCFS_READ_STATUS, &tmp, &s) ==
	    0) {
		if (id_put(tmp.user_id) != e->rec.uid)
			add_field(fields, "user_id");
		if (id_put(tmp.effective_user_id) != e->rec.euid)
			add_field(fields, "effective_user_id");
		if (id_put(tmp.group_id) != e->rec.gid)
			add_field(fields, "group_id");
		if (id_put(tmp.user_id) != e->rec.uid)
			cx_set(lc, e, CX_USER,
			       pool_adopt(lc, procfs_user_name(lc->pf, tmp.user_id)));
		e->rec.uid = id_put(tmp.user_id);
		e->rec.euid = id_put(tmp.effective_user_id);
		e->rec.gid = id_put(tmp.group_id);
		if (owner == NULL) {
			e->dir_uid = (uid_t)id_put(tmp.effective_user_id);
			e->dir_gid = (gid_t)id_put(s.egid);
		}
	}
	process_record_clear(&tmp);
}

/* A known instance: stat numbers, then the cheap change checks. */
static void
refresh_known(struct lifecycle *lc, struct entry *e, const struct procfs_stat *st,
              const struct stat *owner)
{
	char fields[MODIFIED_MAX] = "";

	lc->st.cheap_reads++;
	e->rec.ppid = st->ppid;
	e->rec.threads = st->num_threads;
	e->rec.rss_pages = (uint32_t)st->rss_pages;
	if (e->rf.state != '\0')
		set_state(e, st->state);
	update_cpu(lc, e, st->utime + st->stime);
	if (e->hidden)
		return;
	/* Kernel workers rename themselves after their work item: not news. */
	if (!e->kernel_thread && (e->rec.name == NULL || strncmp(e->rec.name, st->comm, 15) != 0)) {
		char *n = utf8_sanitize_dup(st->comm, st->comm_len);

		if (n != NULL && str_differs(n, e->rec.name)) {
			pool_put(lc, e->rec.name);
			e->rec.name = pool_adopt(lc, n);
			add_field(fields, "name");
		} else {
			free(n);
		}
	}
	if (!e->kernel_thread)
		recheck_cmdline(lc, e, fields);
	/* A comm change without an argv change can still be an exec. */
	if (strstr(fields, "name") != NULL && strstr(fields, "command_line") == NULL)
		recheck_image(lc, e, fields);
	recheck_ids(lc, e, fields, owner);
	if (e->hash_pending) {
		fill_hash(lc, e, NULL);
		if (CX(e, CX_HASH) != NULL)
			add_field(fields, "executable_hash");
	}
	if (fields[0] != '\0')
		emit_event(lc, PROC_EV_MODIFIED, e, "poll", fields, NULL, -1);
}

static void
announce_new(struct lifecycle *lc, struct entry *e, const char *source)
{
	bool snap = lc->emit_all || !lc->first_done;

	e->snapshot_only = snap;
	emit_event(lc, snap ? PROC_EV_SNAPSHOT : PROC_EV_START, e, source, NULL, NULL, -1);
	check_future(lc, e, source);
}

static void
report_reuse(struct lifecycle *lc, struct entry *old, const struct procfs_stat *st)
{
	char reason[200];

	snprintf(reason, sizeof(reason),
	         "pid %d reused between two looks: instance started at tick %llu replaced by one "
	         "started at tick %llu",
	         (int)old->rec.pid, (unsigned long long)old->rec.start_ticks,
	         (unsigned long long)st->starttime);
	emit_event(lc, PROC_EV_STOP, old, "poll", NULL, NULL, -1);
	emit_event(lc, PROC_EV_SUSPICIOUS, old, "poll", NULL, reason, -1);
}

/* PID/name under procmond's /proc, opened for reading. */
static int
open_proc_file(const struct lifecycle *lc, pid_t pid, const char *name)
{
	char path[32];

	snprintf(path, sizeof(path), "%d/%s", (int)pid, name);
	return openat(procfs_dirfd(lc->pf), path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
}

/* An instance recorded from a kernel event (or past the fd budget) has no
 * kept cmdline fd: one is opened at a snapshot, before that snapshot's stat
 * read, while the budget lasts. Returns the fd or -1; the caller keeps it
 * only when the stat read then shows the instance it knows: that instance
 * was alive before the open and after it, so the fd is its own. */
static int
open_cmdline_fd(struct lifecycle *lc, const struct entry *e)
{
	if (e->cmd_fd >= 0 || e->fork_only || e->kernel_thread || lc->fds >= lc->fd_budget)
		return -1;
	return open_proc_file(lc, e->rec.pid, "cmdline");
}

/* Before each pid of a walk: lets the source's pending events in (they may
 * change the table; nothing of it is held across this call). Returns 1 when
 * the walk must stop (max_processes), else 0. */
static int
walk_step(struct lifecycle *lc)
{
	if (lc->poll_fn != NULL && ++lc->poll_count % LIFECYCLE_POLL_EVERY == 0)
		lc->poll_fn(lc->poll_ctx);
	if (lc->opts.max_processes && lc->seen >= lc->opts.max_processes) {
		lc->truncated = true;
		return 1;
	}
	return 0;
}

/* A new instance a walk read: tracked, seen in this walk and announced.
 * Returns 0 or -ENOMEM (e is freed then). */
static int
walk_found(struct lifecycle *lc, struct entry *e)
{
	int rc;

	if ((rc = table_insert(lc, e)) < 0) {
		entry_free(lc, e);
		return rc;
	}
	e->gen = lc->gen;
	lc->seen += !e->hidden;
	announce_new(lc, e, "poll");
	return 0;
}

/* One pid of a /proc walk, after walk_step(). */
static int
snapshot_pid(struct lifecycle *lc, pid_t pid)
{
	struct procfs_stat st;
	struct entry *e;
	int rc;

	e = table_find(lc, pid);
	/* Read already in this walk, as the parent of an earlier pid. */
	if (e != NULL && e->adopted) {
		e->adopted = false;
		if (e->gen == lc->gen) {
			lc->seen += !e->hidden;
			return 0;
		}
	}
	/* A known pid: stat by path (its start time tells the instance) and
	 * the file's owner for the id check. An unknown pid is read in full at
	 * once (stat first): looking at its stat on its own before would read
	 * that file twice. */
	if (e != NULL && e->stat_fd >= 0 && !e->fork_only) {
		struct stat owner;

		/* A kept stat fd reads the very instance we know; ESRCH: it died. */
		if (procfs_pread_stat(e->stat_fd, &st) == 0 && st.starttime == e->rec.start_ticks &&
		    fstat(e->stat_fd, &owner) == 0) {
			refresh_known(lc, e, &st, &owner);
			e->gen = lc->gen;
			lc->seen += !e->hidden;
			return 0;
		}
	}
	if (e != NULL) {
		_cleanup_close_ int cfd = open_cmdline_fd(lc, e);
		struct stat owner;

		if (procfs_read_stat_owner(lc->pf, pid, &st, &owner) < 0)
			return 0; /* gone (or unreadable): the sweep decides */
		if (e->rec.start_ticks == st.starttime && !e->fork_only) {
			if (cfd >= 0) {
				e->cmd_fd = TAKE_FD(cfd);
				lc->fds++;
			}
			refresh_known(lc, e, &st, &owner);
			e->gen = lc->gen;
			lc->seen += !e->hidden;
			return 0;
		}
	}
	if (e != NULL && e->fork_only) {
		table_remove(lc, e); /* never announced: read in full below, then announced */
		e = NULL;
	}
	if (e != NULL) {
		report_reuse(lc, e, &st);
		table_remove(lc, e);
	}
	lc->walking = true;
	rc = entry_read_full(lc, pid, &e);
	lc->walking = false;
	if (rc < 0)
		return rc == -ENOMEM ? rc : 0;
	return walk_found(lc, e);
}

static int
snapshot_one(void *ctx, pid_t pid)
{
	struct lifecycle *lc = ctx;

	return walk_step(lc) ? 1 : snapshot_pid(lc, pid);
}

static void
sweep_stopped(struct lifecycle *lc)
{
	for (size_t i = 0; i < lc->cap;) {
		struct entry *e = slot_get(lc, i);
		struct procfs_stat st;

		if (e == NULL || e->gen == lc->gen) {
			i++;
			continue;
		}
		/* A truncated walk did not look at everyone: only the dead stop. */
		if (lc->truncated && procfs_read_stat(lc->pf, e->rec.pid, &st) == 0 &&
		    st.starttime == e->rec.start_ticks) {
			e->gen = lc->gen;
			i++;
			continue;
		}
		if (e->fork_only)
			emit_event(lc, PROC_EV_START, e, "poll", NULL, NULL, -1);
		emit_event(lc, PROC_EV_STOP, e, "poll", NULL, NULL, -1);
		table_remove(lc, e); /* slot i now holds a shifted entry, or NULL */
	}
}

/* CPU time of this thread (user + system): a snapshot's cost that does not
 * depend on what else the machine is doing. */
static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
stamp_now(struct lifecycle *lc)
{
	lc->now_ms = time_now_ms();
	lc->now_mono_ms = clock_ms(CLOCK_MONOTONIC);
	lc->now_boot_ms = clock_ms(CLOCK_BOOTTIME);
}

static void
snapshot_begin(struct lifecycle *lc, bool emit_all)
{
	stamp_now(lc);
	lc->gen++;
	lc->seen = 0;
	lc->truncated = false;
	lc->emit_all = emit_all;
	if (lc->hc != NULL)
		hash_cache_tick(lc->hc);
}

static int
snapshot_end(struct lifecycle *lc, uint64_t t0, uint64_t c0)
{
	sweep_stopped(lc);
	lc->first_done = true;
	lc->st.snapshots++;
	lc->st.processes = lc->count;
	lc->st.last_snapshot_us = (time_mono_ns() - t0) / 1000u;
	lc->st.last_snapshot_cpu_us = (cpu_ns() - c0) / 1000u;
	return (int)lc->seen;
}

int
lifecycle_snapshot(struct lifecycle *lc, bool emit_all)
{
	uint64_t t0 = time_mono_ns(), c0 = cpu_ns();
	int rc;

	snapshot_begin(lc, emit_all);
	rc = procfs_foreach_pid(lc->pf, snapshot_one, lc);
	if (rc < 0)
		return rc;
	return snapshot_end(lc, t0, c0);
}

/* ---- source events ---- */

/* Fills what /proc could not give from the event itself, marking nothing
 * as known that the event does not carry. */
static void
fill_from_event(struct lifecycle *lc, struct entry *e, const struct source_event *ev)
{
	struct erec *r = &e->rec;

	lc->st.from_event++;
	r->pid = ev->pid;
	if (r->ppid < 0 && (ev->has & SOURCE_HAS_PPID))
		r->ppid = ev->ppid;
	if (r->uid == ID_UNKNOWN && (ev->has & SOURCE_HAS_IDS)) {
		r->uid = id_put(ev->uid);
		r->euid = id_put(ev->euid);
		r->gid = id_put(ev->gid);
		r->missing &= ~(uint32_t)PROC_MISSING_STATUS;
		cx_set(lc, e, CX_USER, pool_adopt(lc, procfs_user_name(lc->pf, id_get(r->uid))));
	} else if (r->uid == ID_UNKNOWN) {
		r->missing |= PROC_MISSING_STATUS;
	}
	if (r->name == NULL && (ev->has & SOURCE_HAS_COMM))
		r->name = pool_adopt(
		    lc, utf8_sanitize_dup(ev->comm, strnlen(ev->comm, sizeof(ev->comm))));
	if (CX(e, CX_EXE) == NULL && (ev->has & SOURCE_HAS_FILENAME)) {
		_cleanup_free_ char *u =
		    utf8_sanitize_dup(ev->filename, strnlen(ev->filename, sizeof(ev->filename)));

		cx_set(lc, e, CX_EXE, u ? pool_adopt(lc, sanitize_path(u)) : NULL);
		r->missing &= ~(uint32_t)PROC_MISSING_EXE;
	} else if (CX(e, CX_EXE) == NULL) {
		r->missing |= PROC_MISSING_EXE;
	}
	/* argv the kernel copied at exec is the truth of the start event: by the
	 * time /proc is read the process may already have rewritten it (that is
	 * what masquerading malware does). The digest follows it, so the next
	 * snapshot reports such a rewrite as a modified command_line. */
	if ((ev->has & SOURCE_HAS_ARGV) &&
	    ((ev->argv_len > 0 && !ev->argv_truncated) || r->command_line == NULL ||
	     (r->missing & PROC_MISSING_CMDLINE))) {
		char *c = NULL;
		size_t len = ev->argv_len < sizeof(ev->argv) ? ev->argv_len : sizeof(ev->argv);

		if (procfs_sanitize_cmdline(ev->argv, len, &c) == 0) {
			pool_put(lc, r->command_line);
			r->command_line = pool_adopt(lc, c);
			e->rf.argv_truncated = ev->argv_truncated;
			r->missing &= ~(uint32_t)PROC_MISSING_CMDLINE;
			e->cmd_digest = procfs_digest(ev->argv, len);
		}
	} else if (r->command_line == NULL) {
		r->missing |= PROC_MISSING_CMDLINE;
	}
	if (CX(e, CX_CWD) == NULL && (ev->has & SOURCE_HAS_CWD)) {
		_cleanup_free_ char *u =
		    utf8_sanitize_dup(ev->cwd, strnlen(ev->cwd, sizeof(ev->cwd)));

		cx_set(lc, e, CX_CWD, u ? pool_adopt(lc, sanitize_path(u)) : NULL);
		r->missing &= ~(uint32_t)PROC_MISSING_CWD;
	}
	if (r->start_ticks == 0 && (ev->has & SOURCE_HAS_START)) {
		long hz = procfs_ticks_per_sec(lc->pf);

		r->start_ticks = ev->start_ns / (1000000000u / (uint64_t)hz);
		r->start_time = procfs_boot_ms(lc->pf) + ev->start_ns / 1000000u;
	} else if (r->start_time == 0) {
		r->start_time = lc->now_ms;
	}
	if (r->missing & PROC_MISSING_STAT)
		e->rf.accessible = false;
}

/* ---- exec records complete enough to need no /proc read ---- */

static size_t
image_slot(const struct source_image_key *k)
{
	uint64_t h = k->dev * 0x9e3779b97f4a7c15ull ^ k->ino;

	h ^= (uint64_t)k->size * 0xff51afd7ed558ccdull;
	h ^= (uint64_t)k->mtime_nsec ^ ((uint64_t)k->ctime_sec << 17) ^ k->ctime_nsec;
	h ^= h >> 33;
	return (size_t)(h % IMAGE_MEMO);
}

static bool
image_key_eq(const struct source_image_key *a, const struct source_image_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

/* True when the open file sb describes is the one the kernel named by k
 * (the device aside: stat(2) reports some filesystems' devices differently
 * from the superblock's). */
static bool
image_is(const struct stat *sb, const struct source_image_key *k)
{
	return S_ISREG(sb->st_mode) && (uint64_t)sb->st_ino == k->ino &&
	       (int64_t)sb->st_size == k->size && (int64_t)sb->st_mtim.tv_sec == k->mtime_sec &&
	       (uint32_t)sb->st_mtim.tv_nsec == k->mtime_nsec &&
	       (int64_t)sb->st_ctim.tv_sec == k->ctime_sec &&
	       (uint32_t)sb->st_ctim.tv_nsec == k->ctime_nsec;
}

/* Opens the image the kernel named: through /proc/PID/exe while the process
 * lives, else by its path (a short-lived process is usually gone by now),
 * and only when the open file is still that image. Returns an fd or -errno. */
static int
open_image(struct lifecycle *lc, const struct entry *e, const struct source_image_key *k)
{
	const char *exe;
	struct stat sb;
	char path[32];
	int fd;

	snprintf(path, sizeof(path), "%d/exe", (int)e->rec.pid);
	fd = openat(procfs_dirfd(lc->pf), path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0 && fstat(fd, &sb) == 0 && image_is(&sb, k))
		return fd;
	if (fd >= 0)
		close(fd);
	exe = CX(e, CX_EXE);
	if (e->rf.exe_deleted || exe == NULL || exe[0] != '/')
		return -ESRCH;
	fd = open(exe, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0 && fstat(fd, &sb) == 0 && image_is(&sb, k))
		return fd;
	if (fd >= 0)
		close(fd);
	return -ESRCH;
}

/* The hash of the image the kernel identified: from the memo (no system
 * call), else hashed (hash.c's cache first) from the file that is still
 * that image, and remembered. */
static void
fill_hash_by_key(struct lifecycle *lc, struct entry *e, const struct source_image_key *k)
{
	_cleanup_close_ int fd = -1;
	char hex[HASH_HEX_LEN + 1];
	struct image_memo *m;
	int rc;

	e->hash_pending = false;
	if (lc->hc == NULL || !lc->opts.compute_hashes)
		return;
	e->rec.missing |= PROC_MISSING_HASH;
	if (lc->images == NULL && (lc->images = calloc(IMAGE_MEMO, sizeof(*lc->images))) == NULL)
		return;
	m = &lc->images[image_slot(k)];
	if (m->used && image_key_eq(&m->key, k)) {
		lc->st.image_memo_hits++;
		memcpy(hex, m->hex, sizeof(hex));
	} else {
		if ((fd = open_image(lc, e, k)) < 0)
			return;
		rc = hash_cache_get_fd(lc->hc, fd, hex);
		/* Too big for this tick: the snapshot asks again while it lives. */
		e->hash_pending = rc == -EINPROGRESS || rc == -EAGAIN;
		if (rc < 0)
			return;
		m->key = *k;
		memcpy(m->hex, hex, sizeof(m->hex));
		m->used = true;
	}
	cx_set(lc, e, CX_HASH, pool_get(lc, hex));
	if (CX(e, CX_HASH) != NULL)
		e->rec.missing &= ~(uint32_t)PROC_MISSING_HASH;
}

/* cgroup and container of a new process from its exec record: by the exact
 * key of its cgroup set (ebpf, v1, hybrid and v2 hosts alike), else by its
 * cgroup v2 id (a memo on pure v2 hosts only). */
static void
fill_cgroup_by_id(struct lifecycle *lc, struct entry *e, const struct source_event *ev)
{
	const struct procfs_cgroup_set cs = {
		.exact = (ev->has & SOURCE_HAS_CGROUP_SET) != 0,
		.key = ev->cgroup_set,
		.start_ticks = e->rec.start_ticks,
		.moves = ev->cgroup_moves,
		.move_slot = ev->cgroup_move_slot,
	};
	char *cg = NULL, cid[65];
	int rc = cs.exact || !(ev->has & SOURCE_HAS_CGROUP)
	             ? procfs_cgroup_by_set(lc->pf, e->rec.pid, &cs, &cg, cid)
	             : procfs_cgroup_by_id(lc->pf, e->rec.pid, ev->cgroup_id, &cg, cid);

	if (rc < 0) {
		e->rec.missing |= PROC_MISSING_CGROUP;
		return;
	}
	cx_set(lc, e, CX_CGROUP, pool_adopt(lc, cg));
	cx_set(lc, e, CX_CONTAINER, cid[0] != '\0' ? pool_get(lc, cid) : NULL);
}

/* The name column: comm, or argv[0]'s basename when the kernel cut comm at
 * 15 bytes (the same rule procfs.c applies to /proc). */
static char *
name_from_event(const struct source_event *ev, const char *a0, size_t alen)
{
	size_t cn = strnlen(ev->comm, sizeof(ev->comm)), n;
	const char *base;

	if (cn == 15 && alen > 0) {
		n = strnlen(a0, alen);
		base = memrchr(a0, '/', n);
		base = base ? base + 1 : a0;
		n -= (size_t)(base - a0);
		if (n > 15 && strncmp(base, ev->comm, 15) == 0 && memchr(base, ' ', n) == NULL)
			return utf8_sanitize_dup(base, n);
	}
	return utf8_sanitize_dup(ev->comm, cn);
}

/* A command line read from /proc/PID/cmdline, for an instance whose other
 * columns come from a kernel record without argv (the snapshot iterator's). */
struct argv_read {
	const char *raw;
	size_t len;
	bool truncated;
};

/* Builds a new instance from an exec record alone (the ebpf source's carry
 * every column a new process has): no /proc read unless the image or the
 * cgroup is seen for the first time. av, when not NULL, is its command line
 * instead of the record's argv. Returns 0 and sets *ret, -ENODATA when the
 * record is not complete enough, or -ENOMEM. */
static int
entry_from_kernel(struct lifecycle *lc, const struct source_event *ev, const struct argv_read *av,
                  struct entry **ret)
{
	uint32_t need = av != NULL ? KERNEL_COMPLETE & ~(uint32_t)SOURCE_HAS_ARGV : KERNEL_COMPLETE;
	const char *argv = av != NULL ? av->raw : ev->argv;
	struct erec *r;
	struct entry *e;
	char tty[32];
	char *exe, *c = NULL;
	size_t alen;

	if ((ev->has & need) != need)
		return -ENODATA;
	if ((e = entry_new(lc)) == NULL)
		return -ENOMEM;
	r = &e->rec;
	lc->st.from_kernel++;
	r->pid = ev->pid;
	r->ppid = ev->ppid;
	e->rf.accessible = true;
	if (av != NULL)
		alen = av->len;
	else
		alen = ev->argv_len < sizeof(ev->argv) ? ev->argv_len : sizeof(ev->argv);
	r->name = pool_adopt(lc, name_from_event(ev, argv, alen));
	/* The running image, as /proc/PID/exe names it. */
	e->rf.exe_memfd = strncmp(ev->exe, "/memfd:", 7) == 0;
	e->rf.exe_deleted = ev->exe_deleted || e->rf.exe_memfd;
	exe = utf8_sanitize_dup(ev->exe, strnlen(ev->exe, sizeof(ev->exe)));
	if (exe != NULL) {
		struct stat sb;

		/* A deleted image's name may have been re-created: look. */
		e->rf.file_exists = !e->rf.exe_memfd && (!e->rf.exe_deleted || stat(exe, &sb) == 0);
		cx_set(lc, e, CX_EXE, pool_adopt(lc, sanitize_path(exe)));
		free(exe);
	}
	if (procfs_sanitize_cmdline(argv, alen, &c) == 0) {
		r->command_line = pool_adopt(lc, c);
		e->cmd_digest = procfs_digest(argv, alen);
	}
	e->rf.argv_truncated = av != NULL ? av->truncated : ev->argv_truncated;
	if (alen == 0)
		r->missing |= PROC_MISSING_CMDLINE;
	/* In clock ticks, as /proc/PID/stat says it: the same instance, the same
	 * start_time as a snapshot reports. */
	r->start_ticks = ev->start_ns / (1000000000u / (uint64_t)procfs_ticks_per_sec(lc->pf));
	r->start_time = procfs_ticks_to_epoch_ms(lc->pf, r->start_ticks);
	r->uid = id_put(ev->uid);
	r->euid = id_put(ev->euid);
	r->gid = id_put(ev->gid);
	cx_set(lc, e, CX_USER, pool_adopt(lc, procfs_user_name(lc->pf, id_get(r->uid))));
	if (ev->has & SOURCE_HAS_CWD) {
		_cleanup_free_ char *u =
		    utf8_sanitize_dup(ev->cwd, strnlen(ev->cwd, sizeof(ev->cwd)));

		cx_set(lc, e, CX_CWD, u ? pool_adopt(lc, sanitize_path(u)) : NULL);
		cx_set(lc, e, CX_TTY,
		       procfs_tty_name(ev->tty_nr, tty, sizeof(tty)) ? pool_get(lc, tty) : NULL);
	}
	/* Right after exec: running, one thread (exec killed the others). */
	r->threads = ev->threads > 0 ? ev->threads : 1;
	r->rss_pages = (uint32_t)ev->rss_pages;
	r->cpu_usage = 0;
	set_state(e, 'R');
	e->cpu_ticks = 0;
	e->sample_ms = lc->now_mono_ms;
	/* /proc/PID's owner follows the euid and egid: the next look compares. */
	e->dir_uid = ev->euid;
	e->dir_gid = ev->egid;
	e->hidden = is_hidden(lc, e);
	if (!e->hidden) {
		fill_hash_by_key(lc, e, &ev->image);
		if (ev->has & (SOURCE_HAS_CGROUP | SOURCE_HAS_CGROUP_SET))
			fill_cgroup_by_id(lc, e, ev);
		else
			r->missing |= PROC_MISSING_CGROUP;
		fill_parent(lc, e);
	}
	*ret = e;
	return 0;
}

static void
on_exec(struct lifecycle *lc, const struct source_event *ev, const char *source)
{
	struct entry *old = table_find(lc, ev->pid), *e = NULL;
	int rc = entry_from_kernel(lc, ev, NULL, &e);

	if (rc == -ENODATA)
		rc = entry_read_full(lc, ev->pid, &e);
	else if (rc == 0)
		rc = 1; /* complete already */
	if (rc == -ENOMEM)
		return;
	if (rc < 0) {
		/* Gone already: keep what the kernel told us, and say what is missing. */
		if ((e = entry_new(lc)) == NULL)
			return;
		e->rec.missing = PROC_MISSING_STAT | PROC_MISSING_CWD | PROC_MISSING_CGROUP |
		                 PROC_MISSING_HASH | PROC_MISSING_PARENT;
		fill_from_event(lc, e, ev);
		if (old != NULL && e->rec.ppid == old->rec.ppid)
			e->rec.start_ticks = old->rec.start_ticks;
		fill_parent(lc, e);
	} else if (rc == 0 &&
	           (ev->has & (SOURCE_HAS_ARGV | SOURCE_HAS_FILENAME | SOURCE_HAS_CWD))) {
		fill_from_event(lc, e, ev); /* /proc fills the rest; exec-time argv wins */
	}
	if (old != NULL && !old->fork_only && !old->snapshot_only &&
	    old->rec.start_ticks == e->rec.start_ticks &&
	    !str_differs(CX(old, CX_EXE), CX(e, CX_EXE)) &&
	    !str_differs(old->rec.command_line, e->rec.command_line)) {
		/* A snapshot raced ahead of this event's delivery and already
		 * announced this very image as a start: announcing it again would
		 * be a duplicate. (Seen by the first snapshot, it was announced as
		 * a `snapshot`: the exec, which happened after procmond started
		 * watching, is still its start.) */
		entry_free(lc, e);
		return;
	}
	if (old != NULL) {
		/* The same instance exec'd (or a reuse we never saw stop). */
		if (old->rec.start_ticks != e->rec.start_ticks && !old->fork_only)
			emit_event(lc, PROC_EV_STOP, old, source, NULL, NULL, -1);
		table_remove(lc, old);
	}
	if (table_insert(lc, e) < 0) {
		entry_free(lc, e);
		return;
	}
	e->gen = lc->gen;
	emit_event(lc, PROC_EV_START, e, source, NULL, NULL, -1);
}

/* ---- a snapshot from the kernel's task iterator ---- */

/* One process per cgroup-set key that two or more processes share, found
 * by the key iterator (de_snap_keys) before de_snap's stream is read; its
 * cgroup file is read in between. When de_snap meets it again with the same
 * key, the same start and its pid slot's migration count unchanged since
 * the key iterator read it (before its key), it was in that set when its
 * file was read: another set and back would take two migrations, and the
 * first one counts before the second can begin (both under cgroup_mutex).
 * The text then stands for every process de_snap finds with that key. */
enum { WITNESS_NONE = 0, WITNESS_PENDING, WITNESS_CONFIRMED, WITNESS_FAILED };

/* A key the key iterator gave, with the first (lowest pid) process that has
 * it: the witness once a second one has it too. */
struct witness {
	uint64_t key;
	uint64_t start_ns;
	uint64_t moves;
	uint32_t count; /* processes with the key; 0: an empty slot */
	pid_t pid;
	int state;
	char *path;
	char cid[65];
};

/* key's slot: its own, or the empty one where it would go. */
static struct witness *
witness_slot(struct witness *tab, size_t cap, uint64_t key)
{
	size_t mask = cap - 1;

	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask)
		if (tab[i].count == 0 || tab[i].key == key)
			return &tab[i];
}

static void
witnesses_free(struct lifecycle *lc)
{
	for (size_t i = 0; i < lc->wit_cap; i++)
		free(lc->wit[i].path);
	free(lc->wit);
	lc->wit = NULL;
	lc->wit_cap = 0;
}

/* Reads a stream of records from fd (an iterator's) through buf, size
 * bytes, 8-byte aligned: rec_len tells a record's length from its first
 * bytes (0: not all there yet, < 0: malformed), on_rec takes each one.
 * Returns 0 at the stream's end, on_rec's first non-zero answer, or -errno
 * (-EBADMSG when the stream ends inside a record). */
static int
read_records(int fd, char *buf, size_t size, long (*rec_len)(const void *rec, size_t avail),
             int (*on_rec)(void *ctx, const void *rec, size_t len), void *ctx)
{
	size_t have = 0;

	for (;;) {
		ssize_t n = read(fd, buf + have, size - have);
		size_t off = 0;
		long len;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return have == 0 ? 0 : -EBADMSG;
		have += (size_t)n;
		while ((len = rec_len(buf + off, have - off)) > 0) {
			int rc;

			if ((rc = on_rec(ctx, buf + off, (size_t)len)) != 0)
				return rc;
			off += (size_t)len;
		}
		if (len < 0)
			return (int)len;
		memmove(buf, buf + off, have - off);
		have -= off;
	}
}

/* Counts k's key in lc->wit (grown to stay at most half full); the first
 * process of a key is its candidate witness. Keys taken across a counted
 * migration are left out. */
static int
count_key(struct lifecycle *lc, const struct de_bpf_snap_key *k, size_t *used)
{
	struct witness *w;

	if (k->kind != DE_BPF_EV_SNAP_KEY)
		return -EBADMSG;
	if (!(k->flags & DE_BPF_F_CGROUP_SET) || k->moves_before != k->moves_after || k->tgid == 0)
		return 0;
	if (2 * (*used + 1) > lc->wit_cap) {
		size_t ncap = lc->wit_cap ? 2 * lc->wit_cap : 64;
		struct witness *nt = calloc(ncap, sizeof(*nt));

		if (nt == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < lc->wit_cap; i++)
			if (lc->wit[i].count != 0)
				*witness_slot(nt, ncap, lc->wit[i].key) = lc->wit[i];
		free(lc->wit);
		lc->wit = nt;
		lc->wit_cap = ncap;
	}
	w = witness_slot(lc->wit, lc->wit_cap, k->key);
	if (w->count++ == 0) {
		*w = (struct witness){ .key = k->key,
			               .start_ns = k->start_ns,
			               .moves = k->moves_before,
			               .count = 1,
			               .pid = (pid_t)k->tgid };
		(*used)++;
	}
	return 0;
}

struct keys_ctx {
	struct lifecycle *lc;
	size_t used; /* keys in lc->wit */
};

static long
key_len(const void *rec, size_t avail)
{
	(void)rec;
	return avail >= sizeof(struct de_bpf_snap_key) ? (long)sizeof(struct de_bpf_snap_key) : 0;
}

static int
on_key(void *ctx, const void *rec, size_t len)
{
	struct keys_ctx *c = ctx;
	struct de_bpf_snap_key k;

	(void)len;
	memcpy(&k, rec, sizeof(k));
	return count_key(c->lc, &k, &c->used);
}

/* Reads the key iterator's stream into lc->wit. */
static int
read_keys(struct lifecycle *lc, int fd)
{
	struct keys_ctx c = { .lc = lc };
	char buf[4096] __attribute__((aligned(8)));

	return read_records(fd, buf, sizeof(buf), key_len, on_key, &c);
}

/* The witnesses of the keys in keys_fd's stream (a key two or more
 * processes share), their cgroup files read. Without them (no stream, a
 * failure) every process reads its own. */
static void
witnesses_prepare(struct lifecycle *lc, int keys_fd)
{
	int rc;

	if (keys_fd < 0)
		return;
	if ((rc = read_keys(lc, keys_fd)) < 0) {
		log_warn("snapshot: the cgroup key iterator failed (%s); each cgroup file is read",
		         strerror(-rc));
		witnesses_free(lc);
		return;
	}
	for (size_t i = 0; i < lc->wit_cap; i++) {
		struct witness *w = &lc->wit[i];

		if (w->count < 2)
			continue;
		w->state = procfs_read_cgroup(lc->pf, w->pid, &w->path, w->cid) < 0
		               ? WITNESS_FAILED
		               : WITNESS_PENDING;
	}
}

/* The witness whose text stands for ev's cgroup set, or NULL (ev is then
 * left to the cgroup file). ev may be the witness itself: it decides. */
static const struct witness *
witness_for(struct lifecycle *lc, const struct source_event *ev)
{
	struct witness *w;

	if (!(ev->has & SOURCE_HAS_CGROUP_SET) || lc->wit == NULL)
		return NULL;
	w = witness_slot(lc->wit, lc->wit_cap, ev->cgroup_set);
	if (w->count == 0)
		return NULL;
	if (w->state == WITNESS_PENDING && w->pid == ev->pid)
		w->state = ev->start_ns == w->start_ns && ev->cgroup_moves == w->moves &&
		                   ev->cgroup_moves_after == w->moves
		               ? WITNESS_CONFIRMED
		               : WITNESS_FAILED;
	return w->state == WITNESS_CONFIRMED ? w : NULL;
}

/* The columns a SNAP record must carry to stand for the /proc reads it
 * saves (a kernel thread's or a zombie's has no image: /proc then). */
#define SNAP_COMPLETE (KERNEL_COMPLETE & ~(uint32_t)SOURCE_HAS_ARGV)

/* A new instance from a SNAP record, its command line and its stat: the
 * record gives the ids, the image (path and identity: the hash key), cwd,
 * tty and the cgroup keys; /proc gives argv, the cgroup file where no
 * witness vouches for the record's set (and the v2 id does not decide it),
 * and stat last. stat's start time must be the
 * record's: pids are handed out cyclically, so a reads-in-between of
 * another instance would need all of pid_max to come round. Returns 0 and
 * sets *ret; -ENODATA (the record is not complete) or -ESTALE (the process
 * is gone or changed under the reads) when /proc must decide; -ENOMEM. */
static int
entry_from_snap(struct lifecycle *lc, struct source_event *ev, struct entry **ret)
{
	const struct witness *w;
	bool keep = lc->fds + 2 <= lc->fd_budget;
	bool keep_stat = keep && lc->stat_fds < STAT_FD_MAX;
	_cleanup_close_ int cfd = -1, sfd = -1;
	_cleanup_free_ char *raw = NULL;
	struct argv_read av = { 0 };
	struct procfs_stat st;
	struct entry *e = NULL;
	int rc;

	/* Without cwd (the loader's --no-cwd) the /proc walk, which reads it
	 * anyway, gives the columns. */
	if ((ev->has & (SNAP_COMPLETE | SOURCE_HAS_CWD)) != (SNAP_COMPLETE | SOURCE_HAS_CWD))
		return -ENODATA;
	if ((cfd = open_proc_file(lc, ev->pid, "cmdline")) < 0)
		return -ESTALE;
	if ((rc = procfs_pread_cmdline(cfd, &raw, &av.len, &av.truncated)) < 0)
		return rc == -ENOMEM ? rc : -ESTALE;
	/* An empty argv: the process is exiting (its mm is gone). */
	if (av.len == 0)
		return -ESTALE;
	av.raw = raw;
	/* The cgroup: a witness's text, else the file (by the v2 id: the
	 * memo of exec records' set keys is not for a snapshot's). */
	w = witness_for(lc, ev);
	ev->has &= ~(uint32_t)SOURCE_HAS_CGROUP_SET;
	if (w != NULL)
		ev->has &= ~(uint32_t)SOURCE_HAS_CGROUP;
	if ((rc = entry_from_kernel(lc, ev, &av, &e)) < 0)
		return rc;
	if (w != NULL && !e->hidden) {
		cx_set(lc, e, CX_CGROUP, pool_get(lc, w->path));
		cx_set(lc, e, CX_CONTAINER, w->cid[0] != '\0' ? pool_get(lc, w->cid) : NULL);
		e->rec.missing &= ~(uint32_t)PROC_MISSING_CGROUP;
		lc->st.iter_cgroups_shared++;
	}
	if ((sfd = open_proc_file(lc, ev->pid, "stat")) < 0 || procfs_pread_stat(sfd, &st) < 0 ||
	    st.starttime != e->rec.start_ticks || st.ppid != e->rec.ppid ||
	    (st.flags & PROCFS_PF_KTHREAD) != 0) {
		entry_free(lc, e);
		return -ESTALE;
	}
	set_state(e, st.state);
	e->rec.threads = st.num_threads;
	e->rec.rss_pages = (uint32_t)st.rss_pages;
	e->cpu_ticks = 0;
	e->sample_ms = 0;
	update_cpu(lc, e, st.utime + st.stime);
	if (keep) {
		e->cmd_fd = TAKE_FD(cfd);
		lc->fds++;
	}
	if (keep_stat) {
		e->stat_fd = TAKE_FD(sfd);
		lc->fds++;
		lc->stat_fds++;
	}
	lc->st.iter_reads++;
	*ret = e;
	return 0;
}

/* One record of the iterator: a new process built from it, or what a /proc
 * walk would do for its pid (known, incomplete or changed under the reads). */
static int
snapshot_rec(struct lifecycle *lc, struct source_event *ev)
{
	struct entry *e;
	int rc;

	if (ev->pid <= 0)
		return 0;
	if (walk_step(lc))
		return 1;
	if (table_find(lc, ev->pid) != NULL)
		return snapshot_pid(lc, ev->pid);
	lc->walking = true;
	rc = entry_from_snap(lc, ev, &e);
	lc->walking = false;
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 || table_find(lc, ev->pid) != NULL) {
		/* Adopted as a parent meanwhile, or /proc must say. */
		if (rc == 0)
			entry_free(lc, e);
		return snapshot_pid(lc, ev->pid);
	}
	return walk_found(lc, e);
}

struct snap_ctx {
	struct lifecycle *lc;
	struct source_event *ev; /* the record, decoded */
};

static int
on_snap(void *ctx, const void *rec, size_t len)
{
	struct snap_ctx *c = ctx;

	if (bpf_event_decode(rec, len, c->ev) < 0)
		return -EBADMSG;
	return snapshot_rec(c->lc, c->ev);
}

/* Reads the iterator's stream of SNAP records. Returns 0 at its end, 1 when
 * the walk was cut (max_processes), -errno. */
static int
walk_iter(struct lifecycle *lc, int fd)
{
	enum { BUF = 64 << 10 };
	_cleanup_free_ char *buf = malloc(BUF);
	_cleanup_free_ struct source_event *ev = malloc(sizeof(*ev));
	struct snap_ctx c = { .lc = lc, .ev = ev };

	if (buf == NULL || ev == NULL)
		return -ENOMEM;
	return read_records(fd, buf, BUF, bpf_event_snap_len, on_snap, &c);
}

int
lifecycle_snapshot_from(struct lifecycle *lc, int fd, int keys_fd, bool emit_all)
{
	uint64_t t0 = time_mono_ns(), c0 = cpu_ns();
	int rc;

	snapshot_begin(lc, emit_all);
	witnesses_prepare(lc, keys_fd);
	rc = walk_iter(lc, fd);
	witnesses_free(lc);
	if (rc < 0 && rc != -ENOMEM) {
		/* The instances read so far are known now: a /proc walk
		 * refreshes them cheaply and reads the rest. */
		log_warn("snapshot: the task iterator failed (%s); reading /proc", strerror(-rc));
		lc->seen = 0;
		lc->truncated = false;
		rc = procfs_foreach_pid(lc->pf, snapshot_one, lc);
	}
	if (rc < 0)
		return rc;
	return snapshot_end(lc, t0, c0);
}

static void
on_fork(struct lifecycle *lc, const struct source_event *ev)
{
	const struct entry *parent = table_find(lc, ev->ppid);
	struct entry *e;
	struct procfs_stat st;

	if (table_find(lc, ev->pid) != NULL)
		return;
	if ((e = entry_new(lc)) == NULL)
		return;
	if (parent != NULL) {
		char *v[CX_N];

		e->rec = parent->rec;
		e->rf = parent->rf;
		pool_ref(e->rec.name);
		pool_ref(e->rec.command_line);
		for (size_t k = 0; k < CX_N; k++)
			v[k] = pool_ref(CX(parent, k));
		pool_put(lc, v[CX_PNAME]);
		pool_put(lc, v[CX_PEXE]);
		pool_put(lc, v[CX_PCMD]);
		v[CX_PNAME] = pool_ref(parent->rec.name);
		v[CX_PEXE] = pool_ref(CX(parent, CX_EXE));
		v[CX_PCMD] = pool_ref(parent->rec.command_line);
		cx_replace(lc, e, v);
		e->kernel_thread = parent->kernel_thread;
		e->cmd_digest = parent->cmd_digest;
		e->hidden = parent->hidden;
	} else {
		e->rec.missing = PROC_MISSING_EXE | PROC_MISSING_CMDLINE | PROC_MISSING_STATUS;
	}
	e->rec.pid = ev->pid;
	e->rec.ppid = ev->ppid;
	e->rec.start_ticks = 0;
	e->rec.start_time = lc->now_ms;
	e->rec.cpu_usage = 0;
	e->fork_only = true;
	/* The kernel's start time is the one stat would show: no read needed. */
	if (ev->has & SOURCE_HAS_START) {
		fill_from_event(lc, e, ev);
	} else if (procfs_read_stat(lc->pf, ev->pid, &st) == 0) {
		e->rec.start_ticks = st.starttime;
		e->rec.start_time = procfs_ticks_to_epoch_ms(lc->pf, st.starttime);
	}
	e->gen = lc->gen;
	if (table_insert(lc, e) < 0)
		entry_free(lc, e);
}

static void
on_exit_ev(struct lifecycle *lc, const struct source_event *ev, const char *source)
{
	struct entry *e = table_find(lc, ev->pid);
	int32_t code = (ev->has & SOURCE_HAS_EXIT_CODE) ? ev->exit_code : -1;

	if (e == NULL)
		return;
	if (e->fork_only)
		emit_event(lc, PROC_EV_START, e, source, NULL, NULL, -1);
	if (e->rf.state != '\0')
		set_state(e, 'X');
	emit_event(lc, PROC_EV_STOP, e, source, NULL, NULL, code);
	table_remove(lc, e);
}

/* set*uid reported by the kernel: re-read the ids now, not at the next tick. */
static void
on_ids(struct lifecycle *lc, const struct source_event *ev, const char *source)
{
	struct entry *e = table_find(lc, ev->pid);
	char fields[MODIFIED_MAX] = "";

	if (e == NULL || e->hidden || e->fork_only)
		return;
	recheck_ids(lc, e, fields, NULL);
	if (fields[0] != '\0')
		emit_event(lc, PROC_EV_MODIFIED, e, source, fields, NULL, -1);
}

/* A process renamed itself (prctl PR_SET_NAME): masquerading shows here. */
static void
on_comm(struct lifecycle *lc, const struct source_event *ev, const char *source)
{
	struct entry *e = table_find(lc, ev->pid);
	char *n;

	if (e == NULL || e->hidden || e->fork_only)
		return;
	n = utf8_sanitize_dup(ev->comm, strnlen(ev->comm, sizeof(ev->comm)));
	if (n == NULL || !str_differs(n, e->rec.name) ||
	    (e->rec.name != NULL && strlen(n) == 15 && strncmp(n, e->rec.name, 15) == 0)) {
		free(n);
		return;
	}
	pool_put(lc, e->rec.name);
	e->rec.name = pool_adopt(lc, n);
	emit_event(lc, PROC_EV_MODIFIED, e, source, "name", NULL, -1);
}

void
lifecycle_on_source_event(struct lifecycle *lc, const struct source_event *ev, const char *source)
{
	/* Threads are not processes: only thread-group events count. */
	if (ev->pid <= 0 || (ev->tid > 0 && ev->tid != ev->pid && ev->kind != SOURCE_EV_EXEC))
		return;
	stamp_now(lc);
	switch (ev->kind) {
	case SOURCE_EV_EXEC:
		on_exec(lc, ev, source);
		break;
	case SOURCE_EV_FORK:
		on_fork(lc, ev);
		break;
	case SOURCE_EV_EXIT:
		on_exit_ev(lc, ev, source);
		break;
	case SOURCE_EV_UID:
		on_ids(lc, ev, source);
		break;
	case SOURCE_EV_COMM:
		on_comm(lc, ev, source);
		break;
	case SOURCE_EV_SNAPSHOT:
		break; /* not an event: lifecycle_snapshot_from reads them */
	}
	lc->st.processes = lc->count;
}

/* ---- life ---- */

int
lifecycle_new(struct procfs *pf, struct hash_cache *hc, const struct collector_opts *opts,
              lifecycle_emit_fn emit, void *ctx, struct lifecycle **ret)
{
	struct lifecycle *lc = calloc(1, sizeof(*lc));
	struct rlimit rl;

	if (lc == NULL)
		return -ENOMEM;
	lc->pf = pf;
	lc->hc = hc;
	lc->opts = *opts;
	lc->emit = emit;
	lc->ctx = ctx;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 2 * FD_RESERVE)
		lc->fd_budget = rl.rlim_cur - FD_RESERVE;
	if ((lc->pool = calloc(POOL_BUCKETS, sizeof(*lc->pool))) == NULL ||
	    (lc->ctxs = calloc(CTX_BUCKETS, sizeof(*lc->ctxs))) == NULL || table_grow(lc) < 0) {
		free(lc->ctxs);
		free(lc->pool);
		free(lc);
		return -ENOMEM;
	}
	*ret = lc;
	return 0;
}

void
lifecycle_free(struct lifecycle *lc)
{
	if (lc == NULL)
		return;
	for (size_t i = 0; i < lc->cap; i++)
		entry_free(lc, slot_get(lc, i));
	while (lc->nslabs > 0) /* the one kept empty */
		slab_free(lc, lc->slabs[0]);
	free(lc->slabs);
	free(lc->by_id);
	free(lc->images);
	free(lc->slots);
	free(lc->ctxs); /* empty: every entry released its tuple */
	free(lc->pool); /* empty: every entry and tuple released its strings */
	free(lc);
}

void
lifecycle_set_poll(struct lifecycle *lc, void (*fn)(void *ctx), void *ctx)
{
	lc->poll_fn = fn;
	lc->poll_ctx = ctx;
}

void
lifecycle_get_stats(const struct lifecycle *lc, struct lifecycle_stats *ret)
{
	*ret = lc->st;
}
