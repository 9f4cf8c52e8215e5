/* procmond-bpf-loader: loads and attaches procmond's eBPF programs
 * (procmond.bpf.c, a bpftool skeleton), hands the kernel objects procmond
 * needs to it over fd BPF_LOADER_FD (bpf_loader.h), and exits. procmond
 * runs it once, at start, while it still has CAP_BPF and CAP_PERFMON (or
 * CAP_SYS_ADMIN); it is not meant to be run by hand.
 *
 *   procmond-bpf-loader [--no-cwd] [--debug]
 *
 * The only file in DaemonEye that talks to libbpf (STYLE.md rule 8). Exit
 * status 0 when the objects were sent, 1 when loading failed (the message
 * says why), 2 on misuse. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "bpf_event.h"
#include "bpf_loader.h"
#include "cleanup.h"
#include "log.h"
#include "procmond.skel.h"
#include "util.h"

#define BTF_VMLINUX "/sys/kernel/btf/vmlinux"

/* libbpf reports through one process-wide print hook. The first warning that
 * says why a load or attach failed is kept for the reply, with the
 * verifier's own complaint when a program was rejected; everything else is
 * logged at debug. */
static char libbpf_reason[256];
static char libbpf_verifier[160];

/* The verifier's log ends "<complaint>\nprocessed N insns ...\n-- END PROG
 * LOAD LOG --": keep the complaint. */
static void
keep_verifier_line(const char *log)
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
libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL;
	size_t n;

	if (level == LIBBPF_DEBUG || vasprintf(&msg, fmt, ap) < 0)
		return 0;
	if (strstr(msg, "-- BEGIN PROG LOAD LOG --") != NULL) {
		keep_verifier_line(msg);
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

static void
reason_clear(void)
{
	libbpf_reason[0] = '\0';
	libbpf_verifier[0] = '\0';
}

/* Attaches the two programs that count cgroup migrations, then lets exec
 * records carry the cgroup-set key (a key is only vouched for by counts
 * taken after they were attached). Returns false when either is missing. */
static bool
attach_cgroup_moves(struct procmond_bpf *k)
{
	if ((k->links.de_cg_attach = bpf_program__attach(k->progs.de_cg_attach)) == NULL)
		return false;
	if ((k->links.de_cg_transfer = bpf_program__attach(k->progs.de_cg_transfer)) == NULL)
		return false;
	__atomic_store_n(&k->bss->cgroup_moves_on, 1, __ATOMIC_SEQ_CST);
	return true;
}

/* Opens, loads and attaches into *k. extras: with the cgroup-set key and
 * its two cgroup tracepoint programs, and with the snapshot iterator (the
 * caller retries without them when the load fails). Fills m->rc and
 * m->reason on failure. */
static int
load(struct procmond_bpf **k, bool cwd, bool extras, struct bpf_loader_msg *m)
{
	bool cgroup_set = extras;
	struct procmond_bpf *s;
	int rc;

	if ((s = *k = procmond_bpf__open()) == NULL) {
		rc = -errno;
		snprintf(m->reason, sizeof(m->reason), "cannot open the BPF object: %s",
		         libbpf_reason);
		return rc;
	}
	s->rodata->capture_cwd = cwd ? 1 : 0;
	s->rodata->capture_cgroup_set = cgroup_set ? 1 : 0;
	if (cgroup_set) {
		uint64_t seed = 0;

		/* A failed getrandom leaves a fixed seed: still exact, only
		 * a collision could then be aimed at. */
		if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
			seed = 0x5eed5eed5eed5eedULL;
		s->rodata->cgroup_seed = seed;
	}
	bpf_program__set_autoload(s->progs.de_cg_attach, cgroup_set);
	bpf_program__set_autoload(s->progs.de_cg_transfer, cgroup_set);
	bpf_program__set_autoattach(s->progs.de_cg_attach, false);
	bpf_program__set_autoattach(s->progs.de_cg_transfer, false);
	bpf_program__set_autoload(s->progs.de_snap, extras);
	bpf_program__set_autoattach(s->progs.de_snap, false);
	bpf_program__set_autoload(s->progs.de_snap_keys, extras);
	bpf_program__set_autoattach(s->progs.de_snap_keys, false);
	if ((rc = procmond_bpf__load(s)) < 0) {
		/* The verifier says EACCES too: its log tells the two apart. */
		if (libbpf_verifier[0] != '\0' || (rc != -EPERM && rc != -EACCES))
			snprintf(m->reason, sizeof(m->reason),
			         "the kernel rejected the BPF programs: %s%s%s", libbpf_reason,
			         libbpf_verifier[0] != '\0' ? ": " : "", libbpf_verifier);
		else
			snprintf(m->reason, sizeof(m->reason),
			         "loading BPF programs needs CAP_BPF and CAP_PERFMON (or root): %s",
			         libbpf_reason);
		return rc;
	}
	if ((rc = procmond_bpf__attach(s)) < 0) {
		snprintf(m->reason, sizeof(m->reason),
		         "attaching the sched_process tracepoints failed: %s", libbpf_reason);
		return rc;
	}
	if (s->bss == NULL) {
		snprintf(m->reason, sizeof(m->reason),
		         "this kernel cannot memory-map BPF arrays (the drop counter)");
		return -ENOTSUP;
	}
	if (cgroup_set && !attach_cgroup_moves(s))
		snprintf(m->reason, sizeof(m->reason),
		         "ebpf: cgroup migrations cannot be traced (%s); a new process's "
		         "cgroup is read from /proc",
		         libbpf_reason);
	if (extras &&
	    (s->links.de_snap = bpf_program__attach_iter(s->progs.de_snap, NULL)) == NULL &&
	    m->reason[0] == '\0')
		snprintf(m->reason, sizeof(m->reason),
		         "ebpf: no task iterator (%s); the first snapshot reads /proc",
		         libbpf_reason);
	/* Useful only beside de_snap, and only with the cgroup-set key. */
	if (s->links.de_snap != NULL && s->bss->cgroup_moves_on)
		s->links.de_snap_keys = bpf_program__attach_iter(s->progs.de_snap_keys, NULL);
	return 0;
}

/* Sends m and, when fds != NULL, nfds fds. */
static int
reply(const struct bpf_loader_msg *m, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * BPF_LOADER_MAX_FDS)];
	} u;
	struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		u.h.cmsg_level = SOL_SOCKET;
		u.h.cmsg_type = SCM_RIGHTS;
		u.h.cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(&u.h), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(BPF_LOADER_FD, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*m) ? 0 : -EIO;
}

/* Sends what procmond keeps of the loaded skeleton: the ring buffer, .bss
 * and the links. Links stay attached while procmond holds their fds. */
static int
send_objects(struct procmond_bpf *k, struct bpf_loader_msg *m)
{
	struct bpf_link *links[] = { k->links.de_exec,      k->links.de_fork,
		                     k->links.de_exit,      k->links.de_rename,
		                     k->links.de_cg_attach, k->links.de_cg_transfer };
	bool moves = links[4] != NULL && links[5] != NULL;
	int fds[BPF_LOADER_MAX_FDS];
	size_t n = BPF_LOADER_FD_LINKS;
	int rc;

	_Static_assert(ARRAY_SIZE(links) <= BPF_LOADER_MAX_LINKS, "too many links");
	fds[BPF_LOADER_FD_RING] = bpf_map__fd(k->maps.events);
	fds[BPF_LOADER_FD_BSS] = bpf_map__fd(k->maps.bss);
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		if (links[i] == NULL || (i >= 4 && !moves))
			continue; /* a lone cgroup link is of no use */
		fds[n++] = bpf_link__fd(links[i]);
	}
	m->rc = 0;
	m->ring_size = bpf_map__max_entries(k->maps.events);
	m->bss_size = (uint32_t)bpf_map__value_size(k->maps.bss);
	m->drop_off = offsetof(struct procmond_bpf__bss, drop_count);
	m->moves_off =
	    moves ? offsetof(struct procmond_bpf__bss, cgroup_moves) : BPF_LOADER_NO_OFFSET;
	m->nlinks = (uint32_t)(n - BPF_LOADER_FD_LINKS);
	m->iter = 0;
	if (k->links.de_snap != NULL) {
		fds[n++] = bpf_link__fd(k->links.de_snap);
		m->iter++;
		if (k->links.de_snap_keys != NULL) {
			fds[n++] = bpf_link__fd(k->links.de_snap_keys);
			m->iter++;
		}
	}
	rc = reply(m, fds, n);
	/* Whatever libbpf would do to a link it destroys, procmond's copies of
	 * the fds are what hold the attachment now. */
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (links[i] != NULL)
			bpf_link__disconnect(links[i]);
	if (k->links.de_snap != NULL)
		bpf_link__disconnect(k->links.de_snap);
	if (k->links.de_snap_keys != NULL)
		bpf_link__disconnect(k->links.de_snap_keys);
	return rc;
}

static int
usage(void)
{
	fprintf(stderr, "usage: " BPF_LOADER_NAME " [--no-cwd] [--debug]\n"
	                "Run by procmond with a socket on fd 3; not meant to be run by hand.\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct bpf_loader_msg m = { .magic = BPF_LOADER_MAGIC };
	struct procmond_bpf *k = NULL;
	bool cwd = true;
	struct stat st;
	int rc;

	log_init(BPF_LOADER_NAME);
	log_set_level(LOG_LEVEL_INFO);
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--no-cwd"))
			cwd = false;
		else if (streq(argv[i], "--debug"))
			log_set_level(LOG_LEVEL_DEBUG);
		else
			return usage();
	}
	if (fstat(BPF_LOADER_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		return usage();

	libbpf_set_print(libbpf_print);
	if (access(BTF_VMLINUX, R_OK) < 0) {
		rc = -errno;
		snprintf(m.reason, sizeof(m.reason),
		         "no kernel BTF (%s: %s); CO-RE programs need CONFIG_DEBUG_INFO_BTF",
		         BTF_VMLINUX, strerror(-rc));
		m.rc = rc == -ENOENT ? -ENOTSUP : rc;
		return reply(&m, NULL, 0) < 0 ? 2 : 1;
	}
	reason_clear();
	if ((rc = load(&k, cwd, true, &m)) < 0 && k != NULL) {
		/* Perhaps only the cgroup-set key's programs or the iterator
		 * were refused (a kernel without the cgroup tracepoints or that
		 * rejects the walk): again without them. */
		log_debug("load with the cgroup-set key and iterator failed (%s): again without",
		          m.reason);
		procmond_bpf__destroy(k);
		k = NULL;
		reason_clear();
		m.reason[0] = '\0';
		rc = load(&k, cwd, false, &m);
	}
	if (rc < 0) {
		m.rc = rc;
		procmond_bpf__destroy(k);
		return reply(&m, NULL, 0) < 0 ? 2 : 1;
	}
	rc = send_objects(k, &m);
	procmond_bpf__destroy(k);
	if (rc < 0) {
		log_error("cannot hand the BPF objects to procmond: %s", strerror(-rc));
		return 2;
	}
	return 0;
}
