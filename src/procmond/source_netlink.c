/* The proc connector (NETLINK_CONNECTOR, CN_IDX_PROC): the kernel multicasts
 * fork, exec, uid, comm and exit events of every task as they happen. It
 * carries only ids (no argv, no path): lifecycle.c enriches each exec from
 * /proc right away and, when the process is already gone, still records it
 * with what is known and marks the rest missing.
 *
 * Subscribing needs CAP_NET_ADMIN; reading afterwards needs nothing, so the
 * capability is not kept. source_netlink_open_ids() opens a second kind of
 * socket for the eBPF source: one the kernel filters to uid and gid events. Overflow of the socket buffer shows up as ENOBUFS
 * from recv: counted as drops (the next snapshot reconciles what was lost). */
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "source.h"
#include "util.h"

#define NL_RCVBUF       (32 << 20)
#define NL_IDS_RCVBUF   (1 << 20) /* uid and gid changes only: rare */
#define NL_RECV_BUF     (64u << 10)
#define NL_IDS_RECV_BUF 4096u /* one event per datagram, ~100 bytes each */
#define NL_MAX_BATCH    4096  /* messages per dispatch, so the loop stays fair */

struct source {
	int fd;
	struct source_health health;
	char *buf;
	size_t buf_len;
};

/* Sends the LISTEN (or IGNORE) multicast operation to the connector. With
 * a non-zero filter (PROC_EVENT_* bits), the operation carries it as
 * struct proc_input (Linux 6.6): the kernel then sends this socket only
 * those events. Older headers lack the struct, so it is spelt out here. */
static int
nl_send_op(int fd, enum proc_cn_mcast_op op, uint32_t filter)
{
	struct {
		struct nlmsghdr nl;
		struct cn_msg cn;
		uint32_t op;
		uint32_t event_type; /* struct proc_input's second field */
	} __attribute__((packed)) msg;
	size_t len = filter != 0 ? sizeof(msg) : sizeof(msg) - sizeof(msg.event_type);

	memset(&msg, 0, sizeof(msg));
	msg.nl.nlmsg_len = (uint32_t)len;
	msg.nl.nlmsg_type = NLMSG_DONE;
	msg.nl.nlmsg_pid = (uint32_t)getpid();
	msg.cn.id.idx = CN_IDX_PROC;
	msg.cn.id.val = CN_VAL_PROC;
	msg.cn.len = (uint16_t)(len - offsetof(__typeof__(msg), op));
	msg.op = (uint32_t)op;
	msg.event_type = filter;
	if (send(fd, &msg, len, 0) < 0)
		return -errno;
	return 0;
}

/* Opens a socket on the proc connector, subscribed to every event (filter
 * 0) or to the PROC_EVENT_* bits of filter, with a receive buffer of rcvbuf. */
static int
nl_open_filtered(uint32_t filter, int rcvbuf, size_t buf_len, struct source **ret,
                 struct errbuf *err)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
	struct source *s;
	int size = rcvbuf, rc;

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->buf = malloc(buf_len)) == NULL) {
		free(s);
		return -ENOMEM;
	}
	s->fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
	if (s->fd < 0) {
		rc = -errno;
		errbuf_set(err, "netlink connector socket: %s", strerror(-rc));
		goto fail;
	}
	/* A burst of thousands of execs must fit: FORCE ignores rmem_max (root). */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		errbuf_set(err, "bind to the proc connector: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = nl_send_op(s->fd, PROC_CN_MCAST_LISTEN, filter)) < 0) {
		errbuf_set(err, "subscribe to proc events: %s%s", strerror(-rc),
		           rc == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		goto fail;
	}
	s->buf_len = buf_len;
	s->health.ok = true;
	*ret = s;
	return 0;
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	free(s);
	return rc;
}

static int
nl_open(const struct collector_opts *opts, struct source **ret, struct errbuf *err)
{
	(void)opts;
	return nl_open_filtered(0, NL_RCVBUF, NL_RECV_BUF, ret, err);
}

/* The kernel release as major * 1000 + minor, or 0 when unknown. */
static unsigned
kernel_release(void)
{
	struct utsname u;
	unsigned long major, minor;
	char *end;

	if (uname(&u) < 0)
		return 0;
	major = strtoul(u.release, &end, 10);
	if (end == u.release || *end != '.')
		return 0;
	minor = strtoul(end + 1, &end, 10);
	if (major > 1000 || minor > 999)
		return 0;
	return (unsigned)(major * 1000 + minor);
}

int
source_netlink_open_ids(struct source **ret, struct errbuf *err)
{
	/* A kernel before 6.6 ignores a LISTEN that carries a filter: the
	 * socket would stay silent, so do not pretend. */
	if (kernel_release() < 6006) {
		errbuf_set(err, "the proc connector's event filter needs Linux 6.6");
		return -ENOTSUP;
	}
	return nl_open_filtered(PROC_EVENT_UID | PROC_EVENT_GID, NL_IDS_RCVBUF, NL_IDS_RECV_BUF,
	                        ret, err);
}

static int
nl_fd(struct source *s)
{
	return s->fd;
}

/* Translates one proc_event. Returns true when ev was filled. */
static bool
nl_translate(const struct proc_event *pe, struct source_event *ev)
{
	memset(ev, 0, offsetof(struct source_event, filename));
	ev->ktime_ns = pe->timestamp_ns;
	switch (pe->what) {
	case PROC_EVENT_FORK:
		ev->kind = SOURCE_EV_FORK;
		ev->pid = pe->event_data.fork.child_tgid;
		ev->tid = pe->event_data.fork.child_pid;
		ev->ppid = pe->event_data.fork.parent_tgid;
		ev->has = SOURCE_HAS_PPID;
		return true;
	case PROC_EVENT_EXEC:
		ev->kind = SOURCE_EV_EXEC;
		ev->pid = pe->event_data.exec.process_tgid;
		ev->tid = pe->event_data.exec.process_pid;
		return true;
	case PROC_EVENT_EXIT:
		ev->kind = SOURCE_EV_EXIT;
		ev->pid = pe->event_data.exit.process_tgid;
		ev->tid = pe->event_data.exit.process_pid;
		ev->exit_code = (int32_t)pe->event_data.exit.exit_code;
		ev->has = SOURCE_HAS_EXIT_CODE;
		return true;
	case PROC_EVENT_UID:
		ev->kind = SOURCE_EV_UID;
		ev->pid = pe->event_data.id.process_tgid;
		ev->tid = pe->event_data.id.process_pid;
		ev->uid = pe->event_data.id.r.ruid;
		ev->euid = pe->event_data.id.e.euid;
		ev->has = SOURCE_HAS_IDS;
		return true;
	case PROC_EVENT_GID:
		/* No uid in it: lifecycle.c re-reads every id of the process. */
		ev->kind = SOURCE_EV_UID;
		ev->pid = pe->event_data.id.process_tgid;
		ev->tid = pe->event_data.id.process_pid;
		return true;
	case PROC_EVENT_COMM:
		ev->kind = SOURCE_EV_COMM;
		ev->pid = pe->event_data.comm.process_tgid;
		ev->tid = pe->event_data.comm.process_pid;
		memcpy(ev->comm, pe->event_data.comm.comm, sizeof(ev->comm));
		ev->comm[sizeof(ev->comm) - 1] = '\0';
		ev->has = SOURCE_HAS_COMM;
		return true;
	default:
		return false;
	}
}

/* Walks the netlink messages of one datagram. Returns events delivered. */
static int
nl_parse(struct source *s, size_t len, source_event_cb cb, void *ctx)
{
	struct source_event ev;
	int n = 0;

	for (struct nlmsghdr *nh = (struct nlmsghdr *)s->buf; NLMSG_OK(nh, len);
	     nh = NLMSG_NEXT(nh, len)) {
		const struct cn_msg *cn;
		struct proc_event pe;

		if (nh->nlmsg_type == NLMSG_ERROR || nh->nlmsg_type == NLMSG_NOOP)
			continue;
		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg)))
			continue;
		cn = NLMSG_DATA(nh);
		if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
			continue;
		if (cn->len < offsetof(struct proc_event, event_data) ||
		    NLMSG_LENGTH(sizeof(struct cn_msg) + cn->len) > nh->nlmsg_len)
			continue;
		memset(&pe, 0, sizeof(pe));
		memcpy(&pe, cn->data, cn->len < sizeof(pe) ? cn->len : sizeof(pe));
		if (!nl_translate(&pe, &ev))
			continue;
		s->health.events++;
		cb(ctx, &ev);
		n++;
	}
	return n;
}

static int
nl_dispatch(struct source *s, source_event_cb cb, void *ctx)
{
	int total = 0;

	for (int i = 0; i < NL_MAX_BATCH; i++) {
		struct sockaddr_nl from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(s->fd, s->buf, s->buf_len, MSG_DONTWAIT,
		                     (struct sockaddr *)&from, &flen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno == ENOBUFS) {
				/* The kernel dropped an unknown number: count the overflow. */
				s->health.drops++;
				continue;
			}
			s->health.errors++;
			return total ? total : -errno;
		}
		/* Only the kernel speaks on this group. */
		if (flen < sizeof(from) || from.nl_pid != 0)
			continue;
		total += nl_parse(s, (size_t)n, cb, ctx);
	}
	return total;
}

static void
nl_health(struct source *s, struct source_health *ret)
{
	*ret = s->health;
}

static void
nl_close(struct source *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0) {
		(void)nl_send_op(s->fd, PROC_CN_MCAST_IGNORE, 0);
		close(s->fd);
	}
	free(s->buf);
	free(s);
}

const struct source_ops source_netlink_ops = {
	.name = "netlink",
	.realtime = true,
	.argv_at_exec = false,
	.open = nl_open,
	.fd = nl_fd,
	.dispatch = nl_dispatch,
	.health = nl_health,
	.close = nl_close,
};
