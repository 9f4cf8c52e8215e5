/* The privileged supervisor and the engine's view of it: see supervise.h. */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "timeutil.h"
#include "util.h"

#define BACKOFF_MIN_MS         250
#define BACKOFF_MAX_MS         4000
#define STABLE_MS              30000
#define ENGINE_QUICK_MS        2000
#define ENGINE_MAX_QUICK_FAILS 5

struct child {
	char id[65];
	char path[PATH_MAX];
	const struct collector_config *cc;
	pid_t pid;
	uint64_t started_ms;
	uint64_t restart_at_ms; /* 0: none scheduled */
	uint32_t backoff_ms;
	uint64_t restarts;
};

struct supervisor {
	const struct supervise_opts *o;
	int sigfd;
	pid_t engine;
	int chan; /* our end to the current engine */
	uint64_t engine_restart_at;
	uint32_t engine_backoff;
	uint64_t engine_started;
	struct child kids[CONFIG_MAX_COLLECTORS];
	size_t n_kids;
	unsigned engine_quick_fails;
	bool stopping;
	bool failed;
};

/* ---- binaries ---- */

static bool
is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

int
supervise_find_binary(const char *binary, char *buf, size_t n)
{
	char self[PATH_MAX], cand[PATH_MAX];
	const char *env = getenv("DAEMONEYE_PROCMOND_BINARY");
	const char *base = strrchr(binary, '/');

	if (base != NULL) {
		if (!is_exec(binary))
			return -ENOENT;
		return de_strlcpy(buf, binary, n) < n ? 0 : -ENAMETOOLONG;
	}
	if (streq(binary, "procmond") && env && *env && is_exec(env))
		return de_strlcpy(buf, env, n) < n ? 0 : -ENAMETOOLONG;
	if (self_dir(self, sizeof(self)) == 0) {
		if (snprintf(cand, sizeof(cand), "%s/../%s/%s", self, binary, binary) <
		        (int)sizeof(cand) &&
		    is_exec(cand))
			return de_strlcpy(buf, cand, n) < n ? 0 : -ENAMETOOLONG;
		if (snprintf(cand, sizeof(cand), "%s/%s", self, binary) < (int)sizeof(cand) &&
		    is_exec(cand))
			return de_strlcpy(buf, cand, n) < n ? 0 : -ENAMETOOLONG;
	}
	for (const char *const *d = (const char *const[]){ "/usr/sbin", "/usr/local/sbin",
	                                                   "/usr/libexec/daemoneye", NULL };
	     *d; d++)
		if (snprintf(cand, sizeof(cand), "%s/%s", *d, binary) < (int)sizeof(cand) &&
		    is_exec(cand))
			return de_strlcpy(buf, cand, n) < n ? 0 : -ENAMETOOLONG;
	return -ENOENT;
}

/* ---- messages to the engine ---- */

static void
tell_engine(struct supervisor *s, json_t *msg)
{
	char *txt = json_dumps(msg, JSON_COMPACT);

	json_decref(msg);
	if (txt == NULL || s->chan < 0) {
		free(txt);
		return;
	}
	if (send(s->chan, txt, strlen(txt), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("supervisor: engine channel: %s", strerror(errno));
	free(txt);
}

static void
tell_start(struct supervisor *s, const struct child *k)
{
	tell_engine(s,
	            json_pack("{s:s,s:s,s:i,s:I,s:s}", "event", "start", "id", k->id, "pid",
	                      (int)k->pid, "restarts", (json_int_t)k->restarts, "binary", k->path));
}

static void
describe_status(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		(void)snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		(void)snprintf(buf, n, "killed by signal %d", WTERMSIG(status));
	else
		(void)snprintf(buf, n, "stopped (status %#x)", (unsigned)status);
}

/* ---- spawning ---- */

static void
child_reset_signals(void)
{
	sigset_t all;

	sigemptyset(&all);
	for (int sig = 1; sig < NSIG; sig++)
		(void)signal(sig, SIG_DFL);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
}

static int
build_argv(const struct supervise_opts *o, const struct child *k, char **argv, size_t max)
{
	size_t n = 0;
	bool has_wal = false;

	argv[n++] = (char *)k->path;
	for (size_t i = 0; i < k->cc->n_args && n + 1 < max; i++) {
		if (streq(k->cc->args[i], "--wal-dir"))
			has_wal = true;
		argv[n++] = k->cc->args[i];
	}
	if (streq(k->id, "procmond")) {
		if (!has_wal && n + 3 < max) {
			argv[n++] = (char *)"--wal-dir";
			argv[n++] = (char *)o->wal_dir;
		}
		if (o->config_path && n + 3 < max) {
			argv[n++] = (char *)"--config";
			argv[n++] = (char *)o->config_path;
		}
		if (o->log_level && n + 3 < max) {
			argv[n++] = (char *)"--log-level";
			argv[n++] = (char *)o->log_level;
		}
	}
	argv[n] = NULL;
	return 0;
}

static void
spawn_collector(struct supervisor *s, struct child *k)
{
	char *argv[CONFIG_MAX_ARGS + 8];
	pid_t pid;

	build_argv(s->o, k, argv, ARRAY_SIZE(argv));
	pid = fork();
	if (pid < 0) {
		log_error("supervisor: cannot fork for %s: %s", k->id, strerror(errno));
		k->restart_at_ms = time_mono_ms() + k->backoff_ms;
		return;
	}
	if (pid == 0) {
		child_reset_signals();
		/* Dies with us while it keeps our credentials; procmond also watches
		 * its parent once it has dropped them (publish.c). */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (setenv("DAEMONEYE_BROKER_SOCKET", s->o->socket_path, 1) < 0)
			_exit(127);
		execv(k->path, argv);
		log_error("supervisor: exec %s: %s", k->path, strerror(errno));
		_exit(127);
	}
	k->pid = pid;
	k->started_ms = time_mono_ms();
	k->restart_at_ms = 0;
	log_info("supervisor: started collector %s (pid %d): %s", k->id, (int)pid, k->path);
	tell_start(s, k);
}

static void
spawn_engine(struct supervisor *s)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("supervisor: socketpair: %s", strerror(errno));
		s->engine_restart_at = time_mono_ms() + s->engine_backoff;
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error("supervisor: cannot fork the engine: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		s->engine_restart_at = time_mono_ms() + s->engine_backoff;
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		close(s->sigfd);
		child_reset_signals();
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
#ifdef DE_COVERAGE
		/* Coverage builds only: exit() runs the hook that writes the
		 * counters; _exit() would lose everything the engine did. */
		exit(s->o->engine(s->o->ctx, sv[1]));
#else
		_exit(s->o->engine(s->o->ctx, sv[1]));
#endif
	}
	close(sv[1]);
	if (s->chan >= 0)
		close(s->chan);
	s->chan = sv[0];
	s->engine = pid;
	s->engine_started = time_mono_ms();
	s->engine_restart_at = 0;
	/* A new engine learns which collectors are running. */
	for (size_t i = 0; i < s->n_kids; i++)
		if (s->kids[i].pid > 0)
			tell_start(s, &s->kids[i]);
}

/* ---- exits and restarts ---- */

static void
schedule(uint64_t *at, uint32_t *backoff, uint64_t started, uint64_t now)
{
	if (now - started > STABLE_MS)
		*backoff = BACKOFF_MIN_MS;
	*at = now + *backoff;
	*backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
}

static void
on_exit_pid(struct supervisor *s, pid_t pid, int status)
{
	uint64_t now = time_mono_ms();
	char how[64];

	describe_status(status, how, sizeof(how));
	if (pid == s->engine) {
		s->engine = -1;
		/* An engine that cannot even start (bad store, socket in use) is
		 * not restarted forever: after ENGINE_MAX_QUICK_FAILS quick
		 * failures in a row the agent stops with an error. */
		if (now - s->engine_started < ENGINE_QUICK_MS && status != 0)
			s->engine_quick_fails++;
		else
			s->engine_quick_fails = 0;
		if (s->engine_quick_fails >= ENGINE_MAX_QUICK_FAILS && !s->stopping) {
			log_error(
			    "supervisor: the engine failed %u times right after starting (%s): "
			    "giving up",
			    s->engine_quick_fails, how);
			s->stopping = true;
			s->failed = true;
			return;
		}
		if (!s->stopping) {
			schedule(&s->engine_restart_at, &s->engine_backoff, s->engine_started, now);
			log_error("supervisor: engine (pid %d) %s; restarting in %llu ms", (int)pid,
			          how, (unsigned long long)(s->engine_restart_at - now));
		}
		return;
	}
	for (size_t i = 0; i < s->n_kids; i++) {
		struct child *k = &s->kids[i];

		if (k->pid != pid)
			continue;
		k->pid = -1;
		if (s->stopping)
			return;
		schedule(&k->restart_at_ms, &k->backoff_ms, k->started_ms, now);
		k->restarts++;
		log_warn("supervisor: collector %s (pid %d) %s; restarting in %llu ms", k->id,
		         (int)pid, how, (unsigned long long)(k->restart_at_ms - now));
		tell_engine(s, json_pack("{s:s,s:s,s:i,s:s,s:I,s:I}", "event", "exit", "id", k->id,
		                         "pid", (int)pid, "status", how, "restarts",
		                         (json_int_t)k->restarts, "restart_in_ms",
		                         (json_int_t)(k->restart_at_ms - now)));
		return;
	}
}

static void
reap_children(struct supervisor *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		on_exit_pid(s, pid, status);
}

static void
run_due(struct supervisor *s)
{
	uint64_t now = time_mono_ms();

	if (s->engine < 0 && s->engine_restart_at && now >= s->engine_restart_at)
		spawn_engine(s);
	for (size_t i = 0; i < s->n_kids; i++)
		if (s->kids[i].pid < 0 && s->kids[i].restart_at_ms &&
		    now >= s->kids[i].restart_at_ms)
			spawn_collector(s, &s->kids[i]);
}

static int
next_timeout(const struct supervisor *s)
{
	uint64_t now = time_mono_ms(), next = now + 1000;

	if (s->engine < 0 && s->engine_restart_at && s->engine_restart_at < next)
		next = s->engine_restart_at;
	for (size_t i = 0; i < s->n_kids; i++)
		if (s->kids[i].pid < 0 && s->kids[i].restart_at_ms &&
		    s->kids[i].restart_at_ms < next)
			next = s->kids[i].restart_at_ms;
	return next > now ? (int)(next - now) : 0;
}

/* The engine asked for a restart of a collector that stopped answering. */
static void
read_engine_requests(struct supervisor *s)
{
	char buf[SUPERVISE_MSG_MAX];
	ssize_t n;

	while (s->chan >= 0 && (n = recv(s->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		json_t *m;
		const char *id;

		buf[n] = '\0';
		if ((m = json_loads(buf, 0, NULL)) == NULL)
			continue;
		id = json_string_value(json_object_get(m, "restart"));
		for (size_t i = 0; id && i < s->n_kids; i++)
			if (streq(s->kids[i].id, id) && s->kids[i].pid > 0) {
				log_warn("supervisor: restarting collector %s (heartbeats failed)",
				         id);
				kill(s->kids[i].pid, SIGTERM);
			}
		json_decref(m);
	}
}

/* ---- stopping ---- */

static bool
anyone_left(const struct supervisor *s)
{
	if (s->engine > 0)
		return true;
	for (size_t i = 0; i < s->n_kids; i++)
		if (s->kids[i].pid > 0)
			return true;
	return false;
}

static void
signal_all(struct supervisor *s, int sig)
{
	if (s->engine > 0)
		kill(s->engine, sig);
	for (size_t i = 0; i < s->n_kids; i++)
		if (s->kids[i].pid > 0)
			kill(s->kids[i].pid, sig);
}

static void
stop_all(struct supervisor *s)
{
	uint64_t deadline = time_mono_ms() + SUPERVISE_STOP_MS;

	s->stopping = true;
	signal_all(s, SIGTERM);
	while (anyone_left(s) && time_mono_ms() < deadline) {
		struct pollfd p = { .fd = s->sigfd, .events = POLLIN };
		struct signalfd_siginfo si;

		if (poll(&p, 1, 100) > 0)
			(void)!read(s->sigfd, &si, sizeof(si));
		reap_children(s);
	}
	if (anyone_left(s)) {
		log_warn("supervisor: children still running after %d ms: killing them",
		         SUPERVISE_STOP_MS);
		signal_all(s, SIGKILL);
		while (anyone_left(s) && waitpid(-1, NULL, 0) > 0)
			reap_children(s);
	}
}

/* ---- setup ---- */

static int
prepare_dir(const char *dir, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid) && chown(dir, uid, gid) < 0)
		return -errno;
	return 0;
}

static int
setup_children(struct supervisor *s)
{
	const struct de_config *cfg = s->o->cfg;

	for (size_t i = 0; i < cfg->n_collectors; i++) {
		const struct collector_config *cc = &cfg->collectors[i];
		struct child *k;

		if (!cc->spawn)
			continue;
		k = &s->kids[s->n_kids];
		memset(k, 0, sizeof(*k));
		k->pid = -1;
		k->cc = cc;
		k->backoff_ms = BACKOFF_MIN_MS;
		de_strlcpy(k->id, cc->id ? cc->id : "procmond", sizeof(k->id));
		if (supervise_find_binary(cc->binary ? cc->binary : k->id, k->path,
		                          sizeof(k->path)) < 0) {
			log_error("supervisor: collector %s: binary %s not found (set "
			          "DAEMONEYE_PROCMOND_BINARY or collectors[].binary)",
			          k->id, cc->binary ? cc->binary : k->id);
			continue;
		}
		k->restart_at_ms = 1; /* due now */
		s->n_kids++;
	}
	return 0;
}

static int
block_signals(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	if ((fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		return -errno;
	return fd;
}

int
supervise_run(const struct supervise_opts *o)
{
	struct supervisor s = {
		.o = o, .engine = -1, .chan = -1, .engine_backoff = BACKOFF_MIN_MS
	};
	int rc;

	(void)signal(SIGPIPE, SIG_IGN);
	if ((rc = prepare_dir(o->data_dir, 0750, o->engine_uid, o->engine_gid)) < 0) {
		log_error("supervisor: data directory %s: %s", o->data_dir, strerror(-rc));
		return 1;
	}
	if ((rc = prepare_dir(o->wal_dir, 0700, o->collector_uid, o->collector_gid)) < 0)
		log_warn("supervisor: WAL directory %s: %s", o->wal_dir, strerror(-rc));
	if ((s.sigfd = block_signals()) < 0) {
		log_error("supervisor: signals: %s", strerror(-s.sigfd));
		return 1;
	}
	setup_children(&s);
	spawn_engine(&s);
	while (!s.stopping) {
		struct pollfd p[2] = { { .fd = s.sigfd, .events = POLLIN },
			               { .fd = s.chan, .events = POLLIN } };
		struct signalfd_siginfo si;

		run_due(&s);
		if (poll(p, 2, next_timeout(&s)) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			read_engine_requests(&s);
		while (read(s.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				reap_children(&s);
			else if (si.ssi_signo == SIGHUP && s.engine > 0)
				kill(s.engine, SIGHUP);
			else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				log_info("supervisor: %s: stopping the engine and collectors",
				         si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
				s.stopping = true;
			}
		}
	}
	stop_all(&s);
	if (s.chan >= 0)
		close(s.chan);
	close(s.sigfd);
	log_info("supervisor: stopped");
	return s.failed ? 1 : 0;
}

/* ---- the engine's view ---- */

struct view_row {
	char id[65];
	int pid;
	bool running;
	uint64_t restarts;
	char last_exit[64];
};

struct supervise_view {
	int chan;
	struct view_row rows[CONFIG_MAX_COLLECTORS];
	size_t n;
};

int
supervise_view_new(int chan, struct supervise_view **ret)
{
	struct supervise_view *v = calloc(1, sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	v->chan = chan;
	*ret = v;
	return 0;
}

void
supervise_view_free(struct supervise_view *v)
{
	if (v == NULL)
		return;
	if (v->chan >= 0)
		close(v->chan);
	free(v);
}

int
supervise_view_fd(const struct supervise_view *v)
{
	return v->chan;
}

static struct view_row *
view_row(struct supervise_view *v, const char *id)
{
	for (size_t i = 0; i < v->n; i++)
		if (streq(v->rows[i].id, id))
			return &v->rows[i];
	if (v->n == ARRAY_SIZE(v->rows))
		return NULL;
	memset(&v->rows[v->n], 0, sizeof(v->rows[0]));
	de_strlcpy(v->rows[v->n].id, id, sizeof(v->rows[0].id));
	return &v->rows[v->n++];
}

static void
view_apply(struct supervise_view *v, json_t *m, const char *event, const char *id)
{
	struct view_row *r = view_row(v, id);
	const char *st = json_string_value(json_object_get(m, "status"));

	if (r == NULL)
		return;
	r->pid = (int)json_integer_value(json_object_get(m, "pid"));
	r->restarts = (uint64_t)json_integer_value(json_object_get(m, "restarts"));
	r->running = streq(event, "start");
	if (st)
		de_strlcpy(r->last_exit, st, sizeof(r->last_exit));
}

int
supervise_view_read(struct supervise_view *v,
                    void (*fn)(void *ctx, const char *event, const char *id, const char *json),
                    void *ctx)
{
	char buf[SUPERVISE_MSG_MAX];
	ssize_t n;

	while ((n = recv(v->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		json_t *m;
		const char *event, *id;

		buf[n] = '\0';
		if ((m = json_loads(buf, 0, NULL)) == NULL)
			continue;
		event = json_string_value(json_object_get(m, "event"));
		id = json_string_value(json_object_get(m, "id"));
		if (event && id) {
			view_apply(v, m, event, id);
			if (fn)
				fn(ctx, event, id, buf);
		}
		json_decref(m);
	}
	if (n == 0)
		return -ECONNRESET;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

int
supervise_view_request_restart(struct supervise_view *v, const char *id)
{
	char buf[128];
	int len = snprintf(buf, sizeof(buf), "{\"restart\":\"%s\"}", id);

	if (len < 0 || (size_t)len >= sizeof(buf))
		return -ENAMETOOLONG;
	return send(v->chan, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

json_t *
supervise_view_json(const struct supervise_view *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < v->n; i++) {
		const struct view_row *r = &v->rows[i];

		json_array_append_new(a, json_pack("{s:s,s:i,s:b,s:I,s:s?}", "id", r->id, "pid",
		                                   r->pid, "running", r->running, "restarts",
		                                   (json_int_t)r->restarts, "last_exit",
		                                   r->last_exit[0] ? r->last_exit : NULL));
	}
	return a;
}
