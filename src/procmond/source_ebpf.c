/* The eBPF event source: loads procmond.bpf.c (a bpftool skeleton), attaches
 * its four BTF-typed process tracepoints (and two cgroup ones that let exec
 * records carry a cgroup-set key) and turns the ring buffer's records into
 * struct source_event. The only file in DaemonEye that talks to libbpf
 * (STYLE.md rule 8).
 *
 * Privilege: loading needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN). Once
 * attached, the ring buffer, the drop counter and the cgroup migration
 * counts are memory-mapped, so
 * dispatch() and health() make no bpf() call and work after the privilege
 * drop and under procmond's seccomp filter (epoll_wait only). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

#if DE_HAVE_EBPF

#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "bpf_event.h"
#include "cleanup.h"
#include "log.h"
#include "procmond.skel.h"
#include "util.h"

#define BTF_VMLINUX "/sys/kernel/btf/vmlinux"

/* Once attached, what the source needs is kernel objects, not libbpf's
 * description of them: the four links (one fd each), the ring buffer (an fd
 * and its mapping) and the drop counter (a read-only mapping of .bss). The
 * skeleton (the object's parsed BTF, program instructions, map definitions:
 * ~80 KB of heap) is destroyed as soon as these are held. */
#define EBPF_LINKS 6 /* the four process tracepoints, then the two cgroup ones */

struct source {
	struct procmond_bpf *skel; /* only while open() runs */
	struct ring_buffer *rb;
	int link_fds[EBPF_LINKS];
	int ring_fd;
	const volatile uint64_t *drop_count; /* in bss_map */
	/* In bss_map, DE_BPF_MOVE_SLOTS counters; NULL while the cgroup-set
	 * key is off (the two cgroup programs did not load or attach). */
	const volatile uint64_t *cgroup_moves;
	void *bss_map;
	size_t bss_len;
	source_event_cb cb;
	void *cb_ctx;
	uint64_t events;
	uint64_t errors;
	struct source_event ev; /* one conversion buffer, reused per record */
};

/* libbpf reports through one process-wide print hook. While open() runs, the
 * first warning that says why a load or attach failed is kept for errbuf,
 * with the verifier's own complaint when a program was rejected; everything
 * else is logged at debug. open() runs once, from main, so static buffers do. */
static char libbpf_reason[256];
static char libbpf_verifier[160];

/* The verifier's log ends "<complaint>\nprocessed N insns ...\n-- END PROG
 * LOAD LOG --": keep the complaint. */
static void
ebpf_keep_verifier_line(const char *log)
{
	const char *end = strstr(log, "\nprocessed ");
	const char *start;

	if (end == NULL && (end = strstr(log, "\n-- END PROG LOAD LOG")) == NULL)
		return;
	start = end;
	while (start > log && start[-1] != '\n')
		start--;
	if (end > start)
		snprintf(libbpf_verifier, sizeof(libbpf_verifier), "%.*s", (int)(end - start),
		         start);
}

static int
ebpf_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;
	size_t n;

	if (level == LIBBPF_DEBUG || vasprintf(&msg, fmt, ap) < 0)
		return 0;
	if (strstr(msg, "-- BEGIN PROG LOAD LOG --") != NULL) {
		ebpf_keep_verifier_line(msg);
		return 0;
	}
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_debug("libbpf: %s", msg);
	/* libbpf 1.x tries to raise RLIMIT_MEMLOCK and says so when it cannot;
	 * that is never the reason (kernels >= 5.11 account BPF memory to memcg). */
	if (level == LIBBPF_WARN && libbpf_reason[0] == '\0' && n > 0 &&
	    strstr(msg, "RLIMIT_MEMLOCK") == NULL)
		de_strlcpy(libbpf_reason, msg, sizeof(libbpf_reason));
	return 0;
}

static int
ebpf_on_record(void *ctx, void *data, size_t size)
{
	struct source *s = ctx;

	if (bpf_event_decode(data, size, &s->ev) < 0) {
		s->errors++;
		return 0;
	}
	s->events++;
	if (s->cgroup_moves != NULL && s->ev.pid >= 0)
		s->ev.cgroup_move_slot = &s->cgroup_moves[(uint32_t)s->ev.pid % DE_BPF_MOVE_SLOTS];
	else
		s->ev.has &= ~(uint32_t)SOURCE_HAS_CGROUP_SET;
	s->cb(s->cb_ctx, &s->ev);
	return 0;
}

static void
ebpf_close(struct source *s)
{
	if (s == NULL)
		return;
	ring_buffer__free(s->rb);
	procmond_bpf__destroy(s->skel);
	for (size_t i = 0; i < EBPF_LINKS; i++)
		if (s->link_fds[i] >= 0)
			close(s->link_fds[i]); /* detaches: the last reference */
	if (s->ring_fd >= 0)
		close(s->ring_fd);
	if (s->bss_map != NULL)
		munmap(s->bss_map, s->bss_len);
	free(s);
}

static void
ebpf_closep(struct source **s)
{
	ebpf_close(*s);
}

static int ebpf_keep(struct source *s, struct errbuf *err);

/* Attaches the two programs that count cgroup migrations, then lets exec
 * records carry the cgroup-set key (a key is only vouched for by counts
 * taken after they were attached). Returns false when either is missing. */
static bool
ebpf_attach_cgroup_moves(struct source *s)
{
	struct procmond_bpf *k = s->skel;

	if ((k->links.de_cg_attach = bpf_program__attach(k->progs.de_cg_attach)) == NULL)
		return false;
	if ((k->links.de_cg_transfer = bpf_program__attach(k->progs.de_cg_transfer)) == NULL)
		return false;
	__atomic_store_n(&k->bss->cgroup_moves_on, 1, __ATOMIC_SEQ_CST);
	return true;
}

/* Loads and attaches; says in err why not. cgroup_set: with the cgroup-set
 * key and its two cgroup tracepoint programs (the caller retries without
 * them when the load fails). */
static int
ebpf_load(struct source *s, bool cwd, bool cgroup_set, struct errbuf *err)
{
	int rc;

	if ((s->skel = procmond_bpf__open()) == NULL) {
		rc = -errno;
		errbuf_set(err, "cannot open the BPF object: %s", libbpf_reason);
		return rc;
	}
	s->skel->rodata->capture_cwd = cwd ? 1 : 0;
	s->skel->rodata->capture_cgroup_set = cgroup_set ? 1 : 0;
	if (cgroup_set) {
		uint64_t seed = 0;

		/* A failed getrandom leaves a fixed seed: still exact, only
		 * a collision could then be aimed at. */
		if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
			seed = 0x5eed5eed5eed5eedULL;
		s->skel->rodata->cgroup_seed = seed;
	}
	bpf_program__set_autoload(s->skel->progs.de_cg_attach, cgroup_set);
	bpf_program__set_autoload(s->skel->progs.de_cg_transfer, cgroup_set);
	bpf_program__set_autoattach(s->skel->progs.de_cg_attach, false);
	bpf_program__set_autoattach(s->skel->progs.de_cg_transfer, false);
	if ((rc = procmond_bpf__load(s->skel)) < 0) {
		/* The verifier says EACCES too: its log tells the two apart. */
		if (libbpf_verifier[0] != '\0' || (rc != -EPERM && rc != -EACCES))
			errbuf_set(err, "the kernel rejected the BPF programs: %s%s%s",
			           libbpf_reason, libbpf_verifier[0] != '\0' ? ": " : "",
			           libbpf_verifier);
		else
			errbuf_set(
			    err, "loading BPF programs needs CAP_BPF and CAP_PERFMON (or root): %s",
			    libbpf_reason);
		return rc;
	}
	if ((rc = procmond_bpf__attach(s->skel)) < 0) {
		errbuf_set(err, "attaching the sched_process tracepoints failed: %s",
		           libbpf_reason);
		return rc;
	}
	if (s->skel->bss == NULL) {
		errbuf_set(err, "this kernel cannot memory-map BPF arrays (the drop counter)");
		return -ENOTSUP;
	}
	if (cgroup_set && !ebpf_attach_cgroup_moves(s))
		log_info("ebpf: cgroup migrations cannot be traced (%s); a new process's "
		         "cgroup is read from /proc",
		         libbpf_reason);
	return ebpf_keep(s, err);
}

/* Takes from the loaded skeleton what the source keeps (see struct source),
 * then destroys the skeleton. */
static int
ebpf_keep(struct source *s, struct errbuf *err)
{
	struct bpf_link *links[EBPF_LINKS] = {
		s->skel->links.de_exec,   s->skel->links.de_fork,      s->skel->links.de_exit,
		s->skel->links.de_rename, s->skel->links.de_cg_attach, s->skel->links.de_cg_transfer
	};
	bool moves = links[4] != NULL && links[5] != NULL;
	struct bpf_map *bss = s->skel->maps.bss;
	long page = sysconf(_SC_PAGESIZE);
	void *m;
	int rc;

	s->ring_fd = fcntl(bpf_map__fd(s->skel->maps.events), F_DUPFD_CLOEXEC, 3);
	if (s->ring_fd < 0) {
		rc = -errno;
		errbuf_set(err, "cannot keep the BPF ring buffer: %s", strerror(-rc));
		return rc;
	}
	/* A read-only view of .bss, like the one the skeleton maps. */
	s->bss_len = ((size_t)bpf_map__value_size(bss) + (size_t)page - 1) & ~((size_t)page - 1);
	m = mmap(NULL, s->bss_len, PROT_READ, MAP_SHARED, bpf_map__fd(bss), 0);
	if (m == MAP_FAILED) {
		rc = -errno;
		errbuf_set(err, "cannot map the BPF drop counter: %s", strerror(-rc));
		return rc;
	}
	s->bss_map = m;
	s->drop_count = (const volatile uint64_t *)((const char *)m +
	                                            offsetof(struct procmond_bpf__bss, drop_count));
	if (moves)
		s->cgroup_moves =
		    (const volatile uint64_t *)((const char *)m +
		                                offsetof(struct procmond_bpf__bss, cgroup_moves));
	/* A disconnected link stays attached when libbpf frees it: its fd
	 * (ours from now on) is what holds the attachment. */
	for (size_t i = 0; i < EBPF_LINKS; i++) {
		if (links[i] == NULL || (i >= 4 && !moves))
			continue; /* a lone cgroup link goes with the skeleton */
		s->link_fds[i] = bpf_link__fd(links[i]);
		bpf_link__disconnect(links[i]);
	}
	procmond_bpf__destroy(s->skel);
	s->skel = NULL;
	s->rb = ring_buffer__new(s->ring_fd, ebpf_on_record, s, NULL);
	if (s->rb == NULL) {
		rc = -errno;
		errbuf_set(err, "cannot map the BPF ring buffer: %s", libbpf_reason);
		return rc;
	}
	return 0;
}

static int
ebpf_open(const struct collector_opts *opts, struct source **ret, struct errbuf *err)
{
	_cleanup_(ebpf_closep) struct source *s = NULL;
	bool cwd = opts == NULL || opts->enhanced_metadata;
	libbpf_print_fn_t old;
	int rc;

	if (access(BTF_VMLINUX, R_OK) < 0) {
		rc = -errno;
		errbuf_set(err, "no kernel BTF (%s: %s); CO-RE programs need CONFIG_DEBUG_INFO_BTF",
		           BTF_VMLINUX, strerror(-rc));
		return rc == -ENOENT ? -ENOTSUP : rc;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->ring_fd = -1;
	for (size_t i = 0; i < EBPF_LINKS; i++)
		s->link_fds[i] = -1;

	libbpf_reason[0] = '\0';
	libbpf_verifier[0] = '\0';
	old = libbpf_set_print(ebpf_libbpf_print);
	rc = ebpf_load(s, cwd, true, err);
	if (rc < 0 && s->skel != NULL) {
		/* Perhaps only the cgroup-set key's programs were refused (a
		 * kernel without the cgroup tracepoints or that rejects the
		 * walk): again without them. */
		log_debug("ebpf: loading with the cgroup-set key failed (%s); without it",
		          err != NULL ? err->msg : "");
		procmond_bpf__destroy(s->skel);
		s->skel = NULL;
		libbpf_reason[0] = '\0';
		libbpf_verifier[0] = '\0';
		rc = ebpf_load(s, cwd, false, err);
	}
	libbpf_set_print(old);
	if (rc < 0)
		return rc;
	*ret = TAKE_PTR(s);
	return 0;
}

static int
ebpf_fd(struct source *s)
{
	return ring_buffer__epoll_fd(s->rb);
}

static int
ebpf_dispatch(struct source *s, source_event_cb cb, void *ctx)
{
	int n;

	s->cb = cb;
	s->cb_ctx = ctx;
	n = ring_buffer__consume(s->rb);
	if (n < 0)
		s->errors++;
	return n;
}

static void
ebpf_health(struct source *s, struct source_health *ret)
{
	ret->events = s->events;
	ret->drops = __atomic_load_n(s->drop_count, __ATOMIC_RELAXED);
	ret->errors = s->errors;
	ret->ok = true;
}

#else /* !DE_HAVE_EBPF */

static int
ebpf_open(const struct collector_opts *opts, struct source **ret, struct errbuf *err)
{
	(void)opts;
	(void)ret;
	errbuf_set(err, "not built: procmond was configured with -Debpf=disabled "
	                "(or without clang, bpftool or kernel BTF at build time)");
	return -ENOTSUP;
}

static int
ebpf_fd(struct source *s)
{
	(void)s;
	return -1;
}

static int
ebpf_dispatch(struct source *s, source_event_cb cb, void *ctx)
{
	(void)s;
	(void)cb;
	(void)ctx;
	return -ENOTSUP;
}

static void
ebpf_health(struct source *s, struct source_health *ret)
{
	(void)s;
	memset(ret, 0, sizeof(*ret));
}

static void
ebpf_close(struct source *s)
{
	free(s);
}

#endif /* DE_HAVE_EBPF */

const struct source_ops source_ebpf_ops = {
	.name = "ebpf",
	.realtime = true,
	.argv_at_exec = true,
	.open = ebpf_open,
	.fd = ebpf_fd,
	.dispatch = ebpf_dispatch,
	.health = ebpf_health,
	.close = ebpf_close,
};
