#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/bpf.h>

#include "procmond/bpf_event.h"
#include "procmond/bpf_loader.h"
#include "procmond/bpf_ring.h"
#include "procmond/source.h"

/* A record as the ring buffer hands it over: 8-byte aligned, header + data
 * (an exec record's data begins with struct de_bpf_exec). */
struct rec {
	struct de_bpf_event h;
	struct de_bpf_exec x;
	char data[4 * DE_BPF_PATH_MAX];
};

static struct source_event ev;

/* Builds an exec record from its three strings (no image); returns its size.
 * The lengths include the NUL, as the kernel writes them (argv: raw bytes). */
static size_t
make_exec(struct rec *r, const char *file, const char *argv, size_t argv_len, const char *cwd)
{
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->h.kind = DE_BPF_EV_EXEC;
	r->h.tgid = 4242;
	r->h.pid = 4243;
	r->h.ppid = 1;
	r->h.uid = 1000;
	r->h.euid = 0;
	r->h.gid = 100;
	r->h.start_ns = 123456789;
	r->h.ktime_ns = 123999999;
	memcpy(r->h.comm, "tool", 5);
	r->h.filename_len = (uint16_t)(strlen(file) + 1);
	memcpy(r->data, file, r->h.filename_len);
	off += r->h.filename_len;
	r->h.argv_len = (uint16_t)argv_len;
	memcpy(r->data + off, argv, argv_len);
	off += argv_len;
	if (cwd != NULL) {
		r->h.flags |= DE_BPF_F_HAS_CWD;
		r->h.cwd_len = (uint16_t)(strlen(cwd) + 1);
		memcpy(r->data + off, cwd, r->h.cwd_len);
		off += r->h.cwd_len;
	}
	return sizeof(r->h) + sizeof(r->x) + off;
}

/* Appends the running image's path and identity to an exec record of size n. */
static size_t
add_exe(struct rec *r, size_t n, const char *exe, uint32_t flags)
{
	size_t off = n - sizeof(r->h) - sizeof(r->x);

	r->h.flags |= DE_BPF_F_HAS_EXE | flags;
	r->x.exe_len = (uint16_t)(strlen(exe) + 1);
	memcpy(r->data + off, exe, r->x.exe_len);
	r->x.exe_dev = (8u << 20) | 3u; /* the kernel's encoding of 8:3 */
	r->x.exe_ino = 99;
	r->x.exe_size = 4096;
	r->x.exe_mtime_sec = 1700000000;
	r->x.exe_mtime_nsec = 5;
	r->x.exe_ctime_sec = 1700000001;
	r->x.exe_ctime_nsec = 6;
	return n + r->x.exe_len;
}

static void
test_exec_record_decodes_every_field(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/usr/bin/tool", "tool\0-x\0marker", 15, "/srv/data");

	(void)state;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_EXEC);
	assert_int_equal(ev.has, SOURCE_HAS_IDS | SOURCE_HAS_COMM | SOURCE_HAS_START |
	                             SOURCE_HAS_PPID | SOURCE_HAS_FILENAME | SOURCE_HAS_ARGV |
	                             SOURCE_HAS_CWD | SOURCE_HAS_STAT);
	assert_int_equal(ev.pid, 4242);
	assert_int_equal(ev.tid, 4243);
	assert_int_equal(ev.ppid, 1);
	assert_int_equal(ev.uid, 1000);
	assert_int_equal(ev.euid, 0);
	assert_int_equal(ev.gid, 100);
	assert_int_equal(ev.start_ns, 123456789);
	assert_int_equal(ev.ktime_ns, 123999999);
	assert_string_equal(ev.comm, "tool");
	assert_string_equal(ev.filename, "/usr/bin/tool");
	assert_int_equal(ev.argv_len, 15);
	assert_memory_equal(ev.argv, "tool\0-x\0marker", 15);
	assert_string_equal(ev.cwd, "/srv/data");
	assert_false(ev.argv_truncated);
}

static void
test_flags_and_missing_parts(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "", "", 0, NULL);

	(void)state;
	r.h.flags |= DE_BPF_F_ARGV_TRUNC;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.has & (SOURCE_HAS_FILENAME | SOURCE_HAS_ARGV | SOURCE_HAS_CWD), 0);
	assert_true(ev.argv_truncated);
	assert_string_equal(ev.filename, "");
	assert_string_equal(ev.cwd, "");

	/* cwd bytes without the flag that says they are a cwd are not one. */
	n = make_exec(&r, "/bin/x", "x", 2, "/tmp");
	r.h.flags &= ~DE_BPF_F_HAS_CWD;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.has & SOURCE_HAS_CWD, 0);
}

static void
test_full_argv_and_unterminated_strings(void **state)
{
	static struct rec r;
	static char argv[DE_BPF_ARGV_MAX];
	size_t n;

	(void)state;
	memset(argv, 'a', sizeof(argv));
	n = make_exec(&r, "/bin/x", argv, sizeof(argv), "/");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.argv_len, sizeof(argv));
	assert_memory_equal(ev.argv, argv, sizeof(argv));

	/* A filename whose last byte is not NUL is still terminated. */
	n = make_exec(&r, "/bin/xyz", "x", 2, NULL);
	r.data[r.h.filename_len - 1] = 'Q';
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/bin/xyz");
}

static void
test_relative_filename_is_joined_with_cwd(void **state)
{
	static struct rec r;
	size_t n;

	(void)state;
	n = make_exec(&r, "./bin/tool", "t", 2, "/srv/app");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/srv/app/bin/tool");
	n = make_exec(&r, "tool", "t", 2, "/");
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "/tool");
	/* Without a cwd it stays as exec'd. */
	n = make_exec(&r, "./tool", "t", 2, NULL);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_string_equal(ev.filename, "./tool");
}

/* The cgroup-set key is passed on only with its flag (an incomplete walk
 * leaves it unset: the file is read), with the slot's migration count. */
static void
test_cgroup_set_key(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/bin/true", "true", 2, NULL);

	(void)state;
	r.x.cgroup_set = 0xfeedfacecafebeefull;
	r.x.cgroup_moves = 7;
	n = add_exe(&r, n, "/usr/bin/true", 0);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_false(ev.has & SOURCE_HAS_CGROUP_SET);
	r.h.flags |= DE_BPF_F_CGROUP_SET;
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_true(ev.has & SOURCE_HAS_CGROUP_SET);
	assert_true(ev.cgroup_set == 0xfeedfacecafebeefull);
	assert_int_equal(ev.cgroup_moves, 7);
	/* Not on other kinds. */
	r.h.kind = DE_BPF_EV_FORK;
	r.h.filename_len = r.h.argv_len = r.h.cwd_len = 0;
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_false(ev.has & SOURCE_HAS_CGROUP_SET);
}

static void
test_image_cgroup_and_stat_fields(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/usr/bin/python3", "python3", 8, "/srv");

	(void)state;
	r.x.cgroup_id = 1234;
	r.x.rss_pages = 300;
	r.x.threads = 1;
	r.x.egid = 50;
	r.x.tty_nr = 0x8801; /* pts/1 */
	r.h.flags |= DE_BPF_F_HAS_TTY;
	n = add_exe(&r, n, "/usr/bin/python3.11", 0);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_true(ev.has & SOURCE_HAS_EXE);
	assert_true(ev.has & SOURCE_HAS_IMAGE);
	assert_true(ev.has & SOURCE_HAS_CGROUP);
	assert_true(ev.has & SOURCE_HAS_STAT);
	assert_string_equal(ev.exe, "/usr/bin/python3.11");
	assert_string_equal(ev.filename, "/usr/bin/python3"); /* as exec'd, unchanged */
	assert_false(ev.exe_deleted);
	/* The device in stat(2)'s encoding, so it compares with st_dev. */
	assert_int_equal(ev.image.dev, makedev(8, 3));
	assert_int_equal(ev.image.ino, 99);
	assert_int_equal(ev.image.size, 4096);
	assert_int_equal(ev.image.mtime_sec, 1700000000);
	assert_int_equal(ev.image.mtime_nsec, 5);
	assert_int_equal(ev.image.ctime_sec, 1700000001);
	assert_int_equal(ev.image.ctime_nsec, 6);
	assert_int_equal(ev.cgroup_id, 1234);
	assert_int_equal(ev.rss_pages, 300);
	assert_int_equal(ev.threads, 1);
	assert_int_equal(ev.egid, 50);
	assert_int_equal(ev.tty_nr, 0x8801);

	/* A deleted image; no tty flag means no tty whatever the number says. */
	n = make_exec(&r, "/tmp/x", "x", 2, "/tmp");
	r.x.tty_nr = 0x8801;
	n = add_exe(&r, n, "/memfd:payload", DE_BPF_F_EXE_DELETED);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_true(ev.exe_deleted);
	assert_string_equal(ev.exe, "/memfd:payload");
	assert_int_equal(ev.tty_nr, 0);
	assert_int_equal(ev.has & SOURCE_HAS_CGROUP, 0);

	/* A cut image path is not the image's: no exe, no key; /proc decides. */
	n = make_exec(&r, "/bin/x", "x", 2, NULL);
	n = add_exe(&r, n, "/very/long", DE_BPF_F_EXE_TRUNC);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.has & (SOURCE_HAS_EXE | SOURCE_HAS_IMAGE), 0);
	assert_string_equal(ev.exe, "");

	/* The image path's length is checked like the others. */
	n = make_exec(&r, "/bin/x", "x", 2, NULL);
	n = add_exe(&r, n, "/bin/x", 0);
	assert_int_equal(bpf_event_decode(&r, n - 1, &ev), -EBADMSG);
	/* An exec record too short for its extension. */
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h) + sizeof(r.x) - 1, &ev), -EBADMSG);
}

static void
test_fork_and_exit_records(void **state)
{
	static struct rec r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.h.kind = DE_BPF_EV_FORK;
	r.h.tgid = r.h.pid = 77;
	r.h.ppid = 76;
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_FORK);
	assert_int_equal(ev.has & (SOURCE_HAS_EXIT_CODE | SOURCE_HAS_ARGV | SOURCE_HAS_FILENAME),
	                 0);
	assert_int_equal(ev.ppid, 76);

	r.h.kind = DE_BPF_EV_EXIT;
	r.h.exit_code = 7 << 8;
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_EXIT);
	assert_true(ev.has & SOURCE_HAS_EXIT_CODE);
	assert_int_equal(ev.exit_code, 7 << 8);
	assert_int_equal(ev.argv_len, 0);

	r.h.kind = DE_BPF_EV_COMM;
	memcpy(r.h.comm, "kworker/0:1", 12);
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h), &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_COMM);
	assert_string_equal(ev.comm, "kworker/0:1");
	assert_int_equal(ev.has & SOURCE_HAS_EXIT_CODE, 0);
}

static void
test_malformed_records_are_rejected(void **state)
{
	static struct rec r;
	size_t n = make_exec(&r, "/bin/x", "x", 2, "/tmp");

	(void)state;
	assert_int_equal(bpf_event_decode(NULL, n, &ev), -EBADMSG);
	assert_int_equal(bpf_event_decode(&r, sizeof(r.h) - 1, &ev), -EBADMSG);
	/* The lengths claim more than the record holds. */
	assert_int_equal(bpf_event_decode(&r, n - 1, &ev), -EBADMSG);
	r.h.argv_len = 0xffff;
	assert_int_equal(bpf_event_decode(&r, sizeof(r), &ev), -EBADMSG);
	n = make_exec(&r, "/bin/x", "x", 2, NULL);
	r.h.kind = 99;
	assert_int_equal(bpf_event_decode(&r, n, &ev), -EBADMSG);
	r.h.kind = 0;
	assert_int_equal(bpf_event_decode(&r, n, &ev), -EBADMSG);
}

/* ---- bpf_ring: a ring laid out as the kernel maps it ---- */

#define RING_SIZE 4096u

/* The data pages of a memfd mapped twice in a row (as the kernel maps a
 * ring's), beside a consumer and a producer position; the "kernel" writes
 * through a third, single mapping, byte by byte modulo the size. */
struct fake_ring {
	struct bpf_ring r;
	unsigned long cons, prod;
	uint8_t *w;
	void *twice;
	int fd;
};

static void
ring_open(struct fake_ring *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = memfd_create("ring", MFD_CLOEXEC);
	assert_true(f->fd >= 0);
	assert_int_equal(ftruncate(f->fd, RING_SIZE), 0);
	f->twice = mmap(NULL, 2 * RING_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->twice != MAP_FAILED);
	for (int i = 0; i < 2; i++)
		assert_true(mmap((uint8_t *)f->twice + i * RING_SIZE, RING_SIZE, PROT_READ,
		                 MAP_SHARED | MAP_FIXED, f->fd, 0) != MAP_FAILED);
	f->w = mmap(NULL, RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	assert_true(f->w != MAP_FAILED);
	f->r.cons_pos = &f->cons;
	f->r.prod_pos = &f->prod;
	f->r.data = f->twice;
	f->r.size = RING_SIZE;
}

static void
ring_close(struct fake_ring *f)
{
	munmap(f->twice, 2 * RING_SIZE);
	munmap(f->w, RING_SIZE);
	close(f->fd);
}

static void
ring_set_len(struct fake_ring *f, unsigned long at, uint32_t len)
{
	for (size_t i = 0; i < 4; i++)
		f->w[(at + i) % RING_SIZE] = ((const uint8_t *)&len)[i];
}

/* Appends a record of size bytes, each byte seed + index, with the header
 * flags given; returns the position of its header. */
static unsigned long
ring_put(struct fake_ring *f, uint32_t size, uint8_t seed, uint32_t flags)
{
	unsigned long at = f->prod;

	ring_set_len(f, at, size | flags);
	for (uint32_t i = 0; i < size; i++)
		f->w[(at + BPF_RINGBUF_HDR_SZ + i) % RING_SIZE] = (uint8_t)(seed + i);
	f->prod += (size + BPF_RINGBUF_HDR_SZ + 7u) & ~7ul;
	return at;
}

struct got {
	size_t n;
	size_t size[8];
	uint8_t first[8], last[8];
	int contiguous[8];
};

static void
on_ring_record(void *ctx, const void *data, size_t size)
{
	struct got *g = ctx;
	const uint8_t *b = data;
	int ok = 1;

	assert_true(g->n < 8);
	for (size_t i = 1; i < size; i++)
		ok &= b[i] == (uint8_t)(b[0] + i);
	g->size[g->n] = size;
	g->first[g->n] = size > 0 ? b[0] : 0;
	g->last[g->n] = size > 0 ? b[size - 1] : 0;
	g->contiguous[g->n] = ok;
	g->n++;
}

static void
test_ring_delivers_in_order_and_releases_space(void **state)
{
	struct fake_ring f;
	struct got g = { 0 };

	(void)state;
	ring_open(&f);
	ring_put(&f, 5, 10, 0);
	ring_put(&f, 100, 20, 0);
	ring_put(&f, 0, 0, 0);
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 3);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.size[0], 5);
	assert_int_equal(g.first[0], 10);
	assert_int_equal(g.size[1], 100);
	assert_int_equal(g.first[1], 20);
	assert_int_equal(g.last[1], (uint8_t)(20 + 99));
	assert_int_equal(g.size[2], 0);
	assert_int_equal(f.cons, f.prod);
	/* Nothing new: nothing delivered. */
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 0);
	assert_int_equal(g.n, 3);
	ring_close(&f);
}

static void
test_ring_record_across_the_end_reads_as_one(void **state)
{
	struct fake_ring f;
	struct got g = { 0 };

	(void)state;
	ring_open(&f);
	/* Move both positions near the end, as after many records. */
	f.cons = f.prod = 3 * RING_SIZE - 24;
	ring_put(&f, 300, 7, 0);
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 1);
	assert_int_equal(g.size[0], 300);
	assert_int_equal(g.first[0], 7);
	assert_true(g.contiguous[0]);
	assert_int_equal(f.cons, 3 * RING_SIZE - 24 + 312);
	ring_close(&f);
}

static void
test_ring_stops_at_busy_and_skips_discarded(void **state)
{
	struct fake_ring f;
	struct got g = { 0 };
	unsigned long busy;

	(void)state;
	ring_open(&f);
	ring_put(&f, 16, 1, BPF_RINGBUF_DISCARD_BIT);
	ring_put(&f, 8, 2, 0);
	busy = ring_put(&f, 8, 3, BPF_RINGBUF_BUSY_BIT);
	ring_put(&f, 8, 4, 0);
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 1);
	assert_int_equal(g.first[0], 2);
	assert_int_equal(f.cons, busy); /* the discarded one's space is released too */
	/* Committed now: it and the one after it come, in order. */
	ring_set_len(&f, busy, 8);
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 2);
	assert_int_equal(g.first[1], 3);
	assert_int_equal(g.first[2], 4);
	assert_int_equal(f.cons, f.prod);
	assert_int_equal(f.r.errors, 0);
	ring_close(&f);
}

static void
test_ring_impossible_length_is_an_error_not_a_read(void **state)
{
	struct fake_ring f;
	struct got g = { 0 };

	(void)state;
	ring_open(&f);
	ring_put(&f, 8, 5, 0);
	ring_set_len(&f, ring_put(&f, 8, 6, 0), RING_SIZE); /* larger than the ring */
	assert_int_equal(bpf_ring_consume(&f.r, on_ring_record, &g), 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(f.r.errors, 1);
	assert_true(f.cons < f.prod);
	ring_close(&f);
}

/* ---- the loader's answer (bpf_loader.h) ---- */

static struct bpf_loader_msg
good_answer(void)
{
	return (struct bpf_loader_msg){ .magic = BPF_LOADER_MAGIC,
		                        .ring_size = 256u << 10,
		                        .bss_size = 8 + DE_BPF_MOVE_SLOTS * 8,
		                        .drop_off = 0,
		                        .moves_off = 8,
		                        .nlinks = 6 };
}

static void
test_loader_answer_checks(void **state)
{
	struct bpf_loader_msg m = good_answer();

	(void)state;
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), 0);
	m.moves_off = BPF_LOADER_NO_OFFSET; /* without the cgroup programs */
	m.nlinks = 4;
	assert_int_equal(bpf_loader_msg_check(&m, 6, 4096), 0);
	/* Each figure that does not add up is refused. */
	m = good_answer();
	assert_int_equal(bpf_loader_msg_check(&m, 7, 4096), -EPROTO); /* an fd short */
	m.magic ^= 1;
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m = good_answer();
	m.rc = -EPERM;
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m = good_answer();
	m.nlinks = BPF_LOADER_MAX_LINKS + 1;
	assert_int_equal(bpf_loader_msg_check(&m, BPF_LOADER_MAX_FDS + 1, 4096), -EPROTO);
	m = good_answer();
	m.ring_size = 3 * 4096; /* not a power of two */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m.ring_size = 2048; /* less than a page */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m.ring_size = 0;
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m = good_answer();
	m.drop_off = m.bss_size - 4; /* the counter would end past .bss */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m = good_answer();
	m.drop_off = 4; /* unaligned */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m = good_answer();
	m.moves_off = 16; /* the slots would end past .bss */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m.moves_off = UINT32_MAX - 8; /* and no overflow hides it */
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	/* The snapshot iterators' links are one or two more fds. */
	m = good_answer();
	m.iter = 1;
	assert_int_equal(bpf_loader_msg_check(&m, 9, 4096), 0);
	assert_int_equal(bpf_loader_msg_check(&m, 8, 4096), -EPROTO);
	m.iter = 2; /* and the key iterator's */
	assert_int_equal(bpf_loader_msg_check(&m, 10, 4096), 0);
	m.iter = 3;
	assert_int_equal(bpf_loader_msg_check(&m, 11, 4096), -EPROTO);
}

/* A snapshot iterator record: EXEC-shaped without filename or argv, its
 * data padded to 8 bytes; returns its size in the stream. */
static size_t
make_snap(struct rec *r, const char *cwd, const char *exe)
{
	size_t n = make_exec(r, "", "", 0, cwd);

	r->h.kind = DE_BPF_EV_SNAP;
	r->h.filename_len = 0; /* make_exec wrote an empty one: none */
	memmove(r->data, r->data + 1, r->h.cwd_len);
	n = add_exe(r, n - 1, exe, 0);
	return (n + 7) & ~(size_t)7;
}

static void
test_snapshot_records_decode_and_frame(void **state)
{
	static struct rec stream[2];
	struct rec r;
	size_t n = make_snap(&r, "/srv/with space", "/usr/bin/tool");
	size_t n2;
	char *buf = (char *)stream;

	(void)state;
	assert_int_equal(n % 8, 0);
	assert_int_equal(bpf_event_snap_len(&r, n), (long)n);
	/* A header or data not all there yet: wait for more. */
	assert_int_equal(bpf_event_snap_len(&r, sizeof(r.h) + sizeof(r.x) - 1), 0);
	assert_int_equal(bpf_event_snap_len(&r, n - 8), 0);
	assert_int_equal(bpf_event_decode(&r, n, &ev), 0);
	assert_int_equal(ev.kind, SOURCE_EV_SNAPSHOT);
	assert_int_equal(ev.pid, 4242);
	assert_string_equal(ev.cwd, "/srv/with space");
	assert_string_equal(ev.exe, "/usr/bin/tool");
	assert_true(ev.has & SOURCE_HAS_EXE);
	assert_true(ev.has & SOURCE_HAS_IMAGE);
	assert_false(ev.has & SOURCE_HAS_FILENAME);
	assert_false(ev.has & SOURCE_HAS_ARGV);
	assert_int_equal(ev.image.ino, 99);
	/* Two records back to back: the second starts where the first's
	 * padding ends. */
	memcpy(buf, &r, n);
	n2 = make_snap(&r, "/", "/memfd:x (deleted)");
	memcpy(buf + n, &r, n2);
	assert_int_equal(bpf_event_snap_len(buf, n + n2), (long)n);
	assert_int_equal(bpf_event_snap_len(buf + n, n2), (long)n2);
	assert_int_equal(bpf_event_decode(buf + n, n2, &ev), 0);
	assert_string_equal(ev.exe, "/memfd:x (deleted)");
	/* A snapshot's cut cwd is not used (an exec's is, flagged). */
	r.h.flags |= DE_BPF_F_CWD_TRUNC;
	assert_int_equal(bpf_event_decode(buf + n, n2, &ev), 0);
	assert_true(ev.has & SOURCE_HAS_CWD); /* the copy in the stream is unflagged */
	assert_int_equal(bpf_event_decode(&r, n2, &ev), 0);
	assert_false(ev.has & SOURCE_HAS_CWD);
	r.h.kind = DE_BPF_EV_EXEC;
	assert_int_equal(bpf_event_decode(&r, n2, &ev), 0);
	assert_true(ev.has & SOURCE_HAS_CWD);
	r.h.flags &= ~DE_BPF_F_CWD_TRUNC;
	/* Not a SNAP record, or longer than the kernel could write: refused. */
	r.h.kind = DE_BPF_EV_EXEC;
	assert_int_equal(bpf_event_snap_len(&r, n2), -EBADMSG);
	r.h.kind = DE_BPF_EV_SNAP;
	r.h.cwd_len = DE_BPF_DATA_SIZE;
	assert_int_equal(bpf_event_snap_len(&r, sizeof(r)), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_record_decodes_every_field),
		cmocka_unit_test(test_flags_and_missing_parts),
		cmocka_unit_test(test_image_cgroup_and_stat_fields),
		cmocka_unit_test(test_cgroup_set_key),
		cmocka_unit_test(test_full_argv_and_unterminated_strings),
		cmocka_unit_test(test_relative_filename_is_joined_with_cwd),
		cmocka_unit_test(test_fork_and_exit_records),
		cmocka_unit_test(test_malformed_records_are_rejected),
		cmocka_unit_test(test_ring_delivers_in_order_and_releases_space),
		cmocka_unit_test(test_ring_record_across_the_end_reads_as_one),
		cmocka_unit_test(test_ring_stops_at_busy_and_skips_discarded),
		cmocka_unit_test(test_ring_impossible_length_is_an_error_not_a_read),
		cmocka_unit_test(test_loader_answer_checks),
		cmocka_unit_test(test_snapshot_records_decode_and_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
