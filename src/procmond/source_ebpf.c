/* The eBPF event source: runs procmond-bpf-loader (bpf_loader.c), which
 * loads procmond.bpf.c and attaches its four BTF-typed process tracepoints
 * (and two cgroup ones that let exec records carry a cgroup-set key), takes
 * the kernel objects it hands over, and turns the ring buffer's records into
 * struct source_event. procmond itself does not link libbpf: the ring
 * buffer is read through its mapping (bpf_ring.c).
 *
 * Privilege: loading needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), which
 * the loader inherits at start. Once attached, the ring buffer, the drop
 * counter and the cgroup migration counters are memory-mapped, so
 * dispatch() and health() make no system call and work after the privilege
 * drop and under procmond's seccomp filter (epoll_wait only). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

#if DE_HAVE_EBPF

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bpf_event.h"
#include "bpf_loader.h"
#include "bpf_ring.h"
#include "cleanup.h"
#include "log.h"
#include "util.h"

#ifndef DE_BPF_LOADER_DIR
#define DE_BPF_LOADER_DIR "/usr/libexec/daemoneye"
#endif

struct source {
	int ring_fd;
	int link_fds[BPF_LOADER_MAX_LINKS];
	size_t nlinks;
	int iter_link_fds[BPF_LOADER_MAX_ITERS]; /* de_snap's, de_snap_keys', until used */
	size_t niter;
	struct bpf_ring ring; /* over its two mappings (bpf_ring.h) */
	size_t page;
	/* .bss, read-only: the drop counter; DE_BPF_MOVE_SLOTS cgroup
	 * migration counters, NULL while the cgroup-set key is off (the two
	 * cgroup programs did not load or attach). */
	const void *bss_map;
	size_t bss_len;
	const volatile uint64_t *drop_count;
	const volatile uint64_t *cgroup_moves;
	source_event_cb cb;
	void *cb_ctx;
	uint64_t events;
	uint64_t errors;
	struct source_event ev; /* one conversion buffer, reused per record */
};

static void
ebpf_close(struct source *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nlinks; i++)
		close(s->link_fds[i]); /* detaches: the last reference */
	for (size_t i = 0; i < s->niter; i++)
		close(s->iter_link_fds[i]);
	if (s->ring.cons_pos != NULL)
		munmap(s->ring.cons_pos, s->page);
	if (s->ring.prod_pos != NULL)
		munmap((void *)s->ring.prod_pos, s->page + 2 * s->ring.size);
	if (s->bss_map != NULL)
		munmap((void *)s->bss_map, s->bss_len);
	if (s->ring_fd >= 0)
		close(s->ring_fd);
	free(s);
}

static void
ebpf_closep(struct source **s)
{
	ebpf_close(*s);
}

static void
close_fds(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

static const char *loader_override;

void
source_ebpf_set_loader(const char *path)
{
	loader_override = path;
}

/* The loader set by source_ebpf_set_loader(), else the one beside procmond's
 * own executable (the build tree; an install that puts both in one
 * directory), else the one in DE_BPF_LOADER_DIR. */
static int
loader_path(char *buf, size_t n)
{
	char self[PATH_MAX];

	if (loader_override != NULL)
		return de_strlcpy(buf, loader_override, n) < n ? 0 : -ENAMETOOLONG;
	if (self_dir(self, sizeof(self)) == 0 &&
	    snprintf(buf, n, "%s/%s", self, BPF_LOADER_NAME) < (int)n && access(buf, X_OK) == 0)
		return 0;
	if (snprintf(buf, n, "%s/%s", DE_BPF_LOADER_DIR, BPF_LOADER_NAME) < (int)n &&
	    access(buf, X_OK) == 0)
		return 0;
	return -ENOENT;
}

/* Reads the loader's one message: m, and its fds into fds[] (*nfds). */
static int
loader_receive(int sock, struct bpf_loader_msg *m, int *fds, size_t *nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BPF_LOADER_MAX_FDS)];
	} u;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov,
		             .msg_iovlen = 1,
		             .msg_control = u.buf,
		             .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (*nfds + k > BPF_LOADER_MAX_FDS)
			k = BPF_LOADER_MAX_FDS - *nfds; /* MSG_CTRUNC below */
		memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
		*nfds += k;
	}
	if (n == 0)
		return -EPIPE; /* the loader exited without a word */
	if ((size_t)n != sizeof(*m) || m->magic != BPF_LOADER_MAGIC || (mh.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	m->reason[sizeof(m->reason) - 1] = '\0';
	return 0;
}

/* Starts the loader at path with its socket as fd BPF_LOADER_FD; sets
 * *ret_sock (our end) and *ret_pid. */
static int
loader_spawn(const char *path, bool cwd, int *ret_sock, pid_t *ret_pid, struct errbuf *err)
{
	char *argv[4];
	char *envp[] = { NULL };
	size_t argc = 0;
	int sv[2], rc;
	pid_t pid;

	argv[argc++] = (char *)path;
	if (!cwd)
		argv[argc++] = (char *)"--no-cwd";
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		argv[argc++] = (char *)"--debug";
	argv[argc] = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		errbuf_set(err, "socketpair for the BPF loader: %s", strerror(-rc));
		return rc;
	}
	if ((pid = fork()) < 0) {
		rc = -errno;
		close(sv[0]);
		close(sv[1]);
		errbuf_set(err, "cannot start the BPF loader: %s", strerror(-rc));
		return rc;
	}
	if (pid == 0) {
		/* The loader gets its socket as fd 3 and nothing else of ours
		 * but stdin, stdout and stderr (its log), and no environment. */
		if (sv[1] == BPF_LOADER_FD ? fcntl(sv[1], F_SETFD, 0) < 0
		                           : dup2(sv[1], BPF_LOADER_FD) < 0)
			_exit(127);
		close_range(BPF_LOADER_FD + 1, ~0U, 0);
		execve(path, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	*ret_sock = sv[0];
	*ret_pid = pid;
	return 0;
}

/* Runs the loader and waits for its message; on success the fds are ours. */
static int
loader_run(bool cwd, struct bpf_loader_msg *m, int *fds, size_t *nfds, struct errbuf *err)
{
	char path[PATH_MAX];
	int sock = -1, status = 0, rc;
	pid_t pid = -1;

	*nfds = 0;
	if (loader_path(path, sizeof(path)) < 0) {
		/* Not -ENOTSUP: a build with eBPF but without its loader is
		 * broken, not a host without eBPF. */
		errbuf_set(err, "%s is not installed (looked beside procmond and in %s)",
		           BPF_LOADER_NAME, DE_BPF_LOADER_DIR);
		return -ENOENT;
	}
	if ((rc = loader_spawn(path, cwd, &sock, &pid, err)) < 0)
		return rc;
	rc = loader_receive(sock, m, fds, nfds);
	close(sock);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc == -EPIPE) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			errbuf_set(err, "cannot execute %s", path);
		else if (WIFSIGNALED(status))
			errbuf_set(err, "%s was killed by signal %d", path, WTERMSIG(status));
		else
			errbuf_set(err, "%s exited (status %d) without an answer", path,
			           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		rc = -EIO;
	} else if (rc < 0 || m->rc > 0) {
		errbuf_set(err, "no valid answer from %s: %s", path,
		           strerror(rc < 0 ? -rc : EPROTO));
		rc = rc < 0 ? rc : -EPROTO;
	} else if (m->rc < 0) {
		errbuf_set(err, "%s", m->reason);
		rc = m->rc;
	}
	if (rc < 0) {
		close_fds(fds, *nfds);
		*nfds = 0;
	}
	return rc;
}

/* Checks the loader's figures against the fds it sent and maps the ring
 * buffer and .bss. Takes the fds (closes them on failure). */
static int
ebpf_keep(struct source *s, const struct bpf_loader_msg *m, int *fds, size_t nfds,
          struct errbuf *err)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p;
	int rc;

	s->page = page > 0 ? (size_t)page : 4096u;
	if (bpf_loader_msg_check(m, nfds, s->page) < 0) {
		close_fds(fds, nfds);
		errbuf_set(err,
		           "the BPF loader's answer does not add up (%zu fds, %u links, "
		           "ring %u B, .bss %u B)",
		           nfds, m->nlinks, m->ring_size, m->bss_size);
		return -EPROTO;
	}
	s->ring_fd = fds[BPF_LOADER_FD_RING];
	s->nlinks = m->nlinks;
	memcpy(s->link_fds, fds + BPF_LOADER_FD_LINKS, m->nlinks * sizeof(int));
	s->niter = m->iter;
	memcpy(s->iter_link_fds, fds + BPF_LOADER_FD_LINKS + m->nlinks, m->iter * sizeof(int));
	s->ring.size = m->ring_size;
	s->bss_len = ((size_t)m->bss_size + s->page - 1) & ~(s->page - 1);
	p = mmap(NULL, s->bss_len, PROT_READ, MAP_SHARED, fds[BPF_LOADER_FD_BSS], 0);
	rc = p == MAP_FAILED ? -errno : 0;
	close(fds[BPF_LOADER_FD_BSS]); /* the mapping holds the map */
	if (rc < 0) {
		errbuf_set(err, "cannot map the BPF drop counter: %s", strerror(-rc));
		return rc;
	}
	s->bss_map = p;
	s->drop_count = (const volatile uint64_t *)((const char *)p + m->drop_off);
	if (m->moves_off != BPF_LOADER_NO_OFFSET)
		s->cgroup_moves = (const volatile uint64_t *)((const char *)p + m->moves_off);
	p = mmap(NULL, s->page, PROT_READ | PROT_WRITE, MAP_SHARED, s->ring_fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		errbuf_set(err, "cannot map the BPF ring buffer: %s", strerror(-rc));
		return rc;
	}
	s->ring.cons_pos = p;
	p = mmap(NULL, s->page + 2 * s->ring.size, PROT_READ, MAP_SHARED, s->ring_fd,
	         (off_t)s->page);
	if (p == MAP_FAILED) {
		rc = -errno;
		errbuf_set(err, "cannot map the BPF ring buffer's data: %s", strerror(-rc));
		return rc;
	}
	s->ring.prod_pos = p;
	s->ring.data = (const uint8_t *)p + s->page;
	return 0;
}

static int
ebpf_open(const struct collector_opts *opts, struct source **ret, struct errbuf *err)
{
	_cleanup_(ebpf_closep) struct source *s = NULL;
	struct bpf_loader_msg m;
	int fds[BPF_LOADER_MAX_FDS];
	size_t nfds;
	int rc;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->ring_fd = -1;
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < BPF_LOADER_MAX_FDS; i++)
		fds[i] = -1; /* only the first nfds are ever read */
	rc = loader_run(opts == NULL || opts->enhanced_metadata, &m, fds, &nfds, err);
	if (rc < 0)
		return rc;
	if ((rc = ebpf_keep(s, &m, fds, nfds, err)) < 0)
		return rc;
	if (m.reason[0] != '\0')
		log_info("%s", m.reason);
	*ret = TAKE_PTR(s);
	return 0;
}

static void
ebpf_on_record(void *ctx, const void *data, size_t size)
{
	struct source *s = ctx;

	if (bpf_event_decode(data, size, &s->ev) < 0) {
		s->errors++;
		return;
	}
	s->events++;
	if (s->cgroup_moves != NULL && s->ev.pid >= 0)
		s->ev.cgroup_move_slot = &s->cgroup_moves[(uint32_t)s->ev.pid % DE_BPF_MOVE_SLOTS];
	else
		s->ev.has &= ~(uint32_t)SOURCE_HAS_CGROUP_SET;
	s->cb(s->cb_ctx, &s->ev);
}

static int
ebpf_fd(struct source *s)
{
	return s->ring_fd; /* readable while the ring holds data */
}

static int
ebpf_dispatch(struct source *s, source_event_cb cb, void *ctx)
{
	s->cb = cb;
	s->cb_ctx = ctx;
	return bpf_ring_consume(&s->ring, ebpf_on_record, s);
}

static void
ebpf_health(struct source *s, struct source_health *ret)
{
	ret->events = s->events;
	ret->drops = __atomic_load_n(s->drop_count, __ATOMIC_RELAXED);
	ret->errors = s->errors + s->ring.errors;
	ret->ok = true;
}

/* A new stream of the iterator behind link, or -errno. */
static int
iter_create(int link)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.iter_create.link_fd = (uint32_t)link;
	fd = (int)syscall(SYS_bpf, BPF_ITER_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : fd;
}

int
source_ebpf_snapshot_fd(struct source *s, int *keys_fd)
{
	int fd;

	*keys_fd = -ENOTSUP;
	if (s == NULL || s->niter == 0)
		return -ENOTSUP;
	fd = iter_create(s->iter_link_fds[0]);
	if (fd >= 0 && s->niter > 1)
		*keys_fd = iter_create(s->iter_link_fds[1]);
	/* One use: the iterators hold the programs now. */
	for (size_t i = 0; i < s->niter; i++)
		close(s->iter_link_fds[i]);
	s->niter = 0;
	return fd;
}

#else /* !DE_HAVE_EBPF */

void
source_ebpf_set_loader(const char *path)
{
	(void)path;
}

int
source_ebpf_snapshot_fd(struct source *s, int *keys_fd)
{
	(void)s;
	*keys_fd = -ENOTSUP;
	return -ENOTSUP;
}

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
