/* daemoneye-agent: flags and configuration, then the privileged supervisor
 * (supervise.c) which runs the engine below in an unprivileged child.
 * docs/pipeline.md describes the processes, the state machine and the
 * exactly-once path. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "agent.h"
#include "alert.h"
#include "cleanup.h"
#include "control.h"
#include "detect.h"
#include "ingest.h"
#include "ledger.h"
#include "log.h"
#include "privdrop.h"
#include "rule.h"
#include "seccomp_profile.h"
#include "store.h"
#include "supervise.h"
#include "timeutil.h"
#include "util.h"

#define EXIT_RUNTIME       1
#define EXIT_USAGE         2
#define INGEST_SLICE       64 /* batches per loop turn before polling again */
#define HEALTH_RPC_EVERY_S 5  /* cheap, and health shows the source counters fresh */
#define RETENTION_EVERY_S  60
#define RETENTION_ROWS     2000
#define STOP_COLLECTORS_MS 2500

const char *
agent_state_to_string(enum agent_state s)
{
	static const char *const names[] = {
		[AGENT_LOADING] = "Loading",
		[AGENT_READY] = "Ready",
		[AGENT_STEADY] = "SteadyState",
		[AGENT_STARTUP_FAILED] = "StartupFailed",
		[AGENT_SHUTTING_DOWN] = "ShuttingDown",
	};

	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* ---- ledger records ---- */

static void
ledger_record(struct agent *a, const char *actor, const char *action, json_t *payload)
{
	_cleanup_free_ char *txt = NULL;
	int rc;

	if (payload == NULL)
		return;
	txt = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(payload);
	if (a->ledger == NULL || txt == NULL)
		return;
	if ((rc = ledger_append(a->ledger, actor, action, txt, strlen(txt), NULL)) < 0)
		log_warn("ledger: cannot record %s: %s", action, strerror(-rc));
}

static void
on_alert(void *ctx, const char *alert_id, const char *alert_json)
{
	struct agent *a = ctx;
	int rc;

	(void)alert_id;
	if (a->ledger && (rc = ledger_append(a->ledger, "agent", "alert.raised", alert_json,
	                                     strlen(alert_json), NULL)) < 0)
		log_warn("ledger: cannot record alert %s: %s", alert_id, strerror(-rc));
}

static void
on_rules_loaded(void *ctx, const struct rule *const *rules, size_t n, unsigned rejected)
{
	struct agent *a = ctx;
	json_t *list = json_array();

	for (size_t i = 0; list && i < n; i++)
		json_array_append_new(
		    list, json_pack("{s:s,s:s}", "id", rules[i]->id, "sha256", rules[i]->sha256));
	ledger_record(a, "agent", "rules.load",
	              json_pack("{s:I,s:i,s:o*}", "loaded", (json_int_t)n, "rejected",
	                        (int)rejected, "rules", list));
}

/* ---- state machine ---- */

static void
set_state(struct agent *a, enum agent_state s, const char *reason)
{
	if (a->state == s)
		return;
	log_info("agent: state %s -> %s%s%s", agent_state_to_string(a->state),
	         agent_state_to_string(s), reason ? ": " : "", reason ? reason : "");
	a->state = s;
	a->state_since_ms = time_mono_ms();
	de_strlcpy(a->state_reason, reason ? reason : "", sizeof(a->state_reason));
	ledger_record(a, "agent", "agent.state",
	              json_pack("{s:s,s:s}", "state", agent_state_to_string(s), "reason",
	                        reason ? reason : ""));
}

static void
begin_monitoring(struct agent *a)
{
	for (size_t i = 0; i < a->reg.n; i++)
		if (a->reg.c[i].conn)
			(void)broker_rpc(a->broker, &a->reg.c[i],
			                 DAEMONEYE__RPC_METHOD__RPC_BEGIN_MONITORING, 0);
}

/* Loading -> Ready once every spawned collector registered, then at once
 * SteadyState after BeginMonitoring went out. */
static void
check_ready(struct agent *a)
{
	if (a->state != AGENT_LOADING && a->state != AGENT_STARTUP_FAILED)
		return;
	if (registry_live(&a->reg) < a->expected_collectors)
		return;
	set_state(a, AGENT_READY, "all collectors registered");
	begin_monitoring(a);
	set_state(a, AGENT_STEADY, NULL);
}

/* ---- broker callbacks ---- */

static int
cb_ingest(void *ctx, struct collector *c, const Daemoneye__ProcessEventBatch *b, uint64_t *ret)
{
	struct agent *a = ctx;
	int rc = ingest_batch(a->ingest, c, b, ret);

	if (rc < 0)
		log_error("ingest: batch from %s: %s", c->id, strerror(-rc));
	return rc < 0 ? rc : 0;
}

static int
cb_high_water(void *ctx, const char *id, uint64_t *ret)
{
	struct agent *a = ctx;

	return store_high_water(a->store, id, ret);
}

static void
cb_collector_up(void *ctx, struct collector *c)
{
	struct agent *a = ctx;

	ledger_record(a, "agent", "collector.register",
	              json_pack("{s:s,s:i,s:i,s:I}", "id", c->id, "pid", (int)c->pid, "protocol",
	                        (int)c->protocol_version, "high_water", (json_int_t)c->high_water));
	if (a->state == AGENT_STEADY)
		(void)broker_rpc(a->broker, c, DAEMONEYE__RPC_METHOD__RPC_BEGIN_MONITORING, 0);
	check_ready(a);
}

static void
cb_collector_down(void *ctx, struct collector *c, const char *why)
{
	struct agent *a = ctx;

	if (a->state != AGENT_SHUTTING_DOWN)
		log_warn("agent: collector %s disconnected: %s", c->id, why);
	ledger_record(a, "agent", "collector.disconnect",
	              json_pack("{s:s,s:i,s:s}", "id", c->id, "pid", (int)c->pid, "reason", why));
}

static void
on_gap(void *ctx, const struct collector *c, uint64_t from, uint64_t to)
{
	struct agent *a = ctx;

	log_error("ingest: collector %s: sequences %llu..%llu never arrived (lost before the "
	          "agent; see procmond's WAL report)",
	          c->id, (unsigned long long)from, (unsigned long long)to);
	ledger_record(a, "agent", "ingest.gap",
	              json_pack("{s:s,s:I,s:I}", "collector", c->id, "from", (json_int_t)from, "to",
	                        (json_int_t)to));
}

static void
on_collector_failed(void *ctx, struct collector *c)
{
	struct agent *a = ctx;

	log_error("agent: collector %s missed %d heartbeats: failed", c->id, HEARTBEAT_MAX_MISSED);
	ledger_record(a, "agent", "collector.failed",
	              json_pack("{s:s,s:i}", "id", c->id, "pid", (int)c->pid));
	if (a->sup)
		(void)supervise_view_request_restart(a->sup, c->id);
}

/* ---- health for the CLI ---- */

static json_t *
health_json(void *ctx, const json_t *args)
{
	struct agent *a = ctx;
	uint64_t now = time_mono_ms();
	json_t *o = json_object();
	struct control_stats cs = { 0 };

	(void)args;
	if (o == NULL)
		return NULL;
	if (a->control)
		control_get_stats(a->control, &cs);
	json_object_set_new(o, "state", json_string(agent_state_to_string(a->state)));
	json_object_set_new(o, "state_reason", json_string(a->state_reason));
	json_object_set_new(o, "state_age_s",
	                    json_integer((json_int_t)((now - a->state_since_ms) / 1000)));
	json_object_set_new(o, "uptime_s",
	                    json_integer((json_int_t)((now - a->started_ms) / 1000)));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "user", json_string(a->user));
	json_object_set_new(o, "version", json_string(DAEMONEYE_VERSION));
	json_object_set_new(o, "collectors", registry_json(&a->reg, now));
	if (a->sup)
		json_object_set_new(o, "supervised", supervise_view_json(a->sup));
	json_object_set_new(o, "broker", broker_json(a->broker));
	json_object_set_new(o, "ingest", ingest_json(a->ingest));
	if (a->detect)
		json_object_set_new(o, "detection", detect_health_json(a->detect));
	if (a->alerts)
		json_object_set_new(o, "alerts", alerts_health_json(a->alerts));
	json_object_set_new(o, "store", store_stats_json(a->store));
	json_object_set_new(o, "reloads",
	                    json_pack("{s:I,s:I}", "ok", (json_int_t)a->reloads, "failed",
	                              (json_int_t)a->reload_failures));
	json_object_set_new(o, "control",
	                    json_pack("{s:I,s:I}", "requests", (json_int_t)cs.requests, "errors",
	                              (json_int_t)cs.errors));
	return o;
}

static json_t *
stats_json(void *ctx, const json_t *args)
{
	struct agent *a = ctx;

	(void)args;
	return store_stats_json(a->store);
}

static json_t *
rules_json(void *ctx, const json_t *args)
{
	struct agent *a = ctx;
	json_t *h, *r;

	(void)args;
	if (a->detect == NULL || (h = detect_health_json(a->detect)) == NULL)
		return NULL;
	r = json_incref(json_object_get(h, "rules"));
	json_decref(h);
	return r;
}

/* ---- configuration ---- */

static int
absolute_path(const char *p, char *buf, size_t n)
{
	char cwd[PATH_MAX];
	int r;

	if (p[0] == '/')
		return de_strlcpy(buf, p, n) < n ? 0 : -ENAMETOOLONG;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -errno;
	r = snprintf(buf, n, "%s/%s", cwd, p);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

/* Reads the configuration with flags on top (SPEC §4 precedence) and makes
 * data_dir absolute (collectors get paths derived from it). */
static int
load_config(const struct agent_flags *f, struct de_config *cfg, struct errbuf *err)
{
	char abs[PATH_MAX];
	int rc;

	if ((rc = config_load(f->config_path, cfg, err)) < 0)
		return rc;
	if (f->data_dir && (rc = config_set(cfg, "agent.data_dir", f->data_dir, err)) < 0)
		return rc;
	if (f->socket && (rc = config_set(cfg, "agent.socket", f->socket, err)) < 0)
		return rc;
	for (size_t i = 0; i < f->n_rules_dirs; i++) {
		rc = i == 0 ? config_set(cfg, "detection.rules_dirs", f->rules_dirs[i], err)
		            : config_append(cfg, "detection.rules_dirs", f->rules_dirs[i], err);
		if (rc < 0)
			return rc;
	}
	if ((rc = absolute_path(cfg->agent.data_dir, abs, sizeof(abs))) < 0 ||
	    (rc = config_set(cfg, "agent.data_dir", abs, err)) < 0) {
		errbuf_set(err, "agent.data_dir: %s", strerror(-rc));
		return rc;
	}
	if (cfg->agent.socket && ((rc = absolute_path(cfg->agent.socket, abs, sizeof(abs))) < 0 ||
	                          (rc = config_set(cfg, "agent.socket", abs, err)) < 0)) {
		errbuf_set(err, "agent.socket: %s", strerror(-rc));
		return rc;
	}
	return config_validate(cfg, err);
}

static void
print_reject(void *ctx, const char *path, const char *reason)
{
	unsigned *n = ctx;

	fprintf(stderr, "daemoneye-agent: %s: %s\n", path, reason);
	(*n)++;
}

/* --check-config: the configuration, every rule, every sink. */
static int
check_config(const struct agent_flags *f)
{
	struct de_config cfg = { 0 };
	struct errbuf err = { 0 };
	struct rule_set *rs = NULL;
	struct alerts *al = NULL;
	unsigned rejected = 0;
	int rc;

	if (load_config(f, &cfg, &err) < 0) {
		fprintf(stderr, "daemoneye-agent: %s\n", err.msg);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	rc =
	    rule_set_load((const char *const *)cfg.detection.rules_dirs, cfg.detection.n_rules_dirs,
	                  cfg.detection.rule_timeout_ms, print_reject, &rejected, &rs, &err);
	if (rc < 0)
		fprintf(stderr, "daemoneye-agent: rules: %s\n", err.msg);
	else if ((rc = alerts_new(&al, &cfg, NULL, NULL, &err)) < 0)
		fprintf(stderr, "daemoneye-agent: sinks: %s\n", err.msg);
	config_print_summary(&cfg, stdout);
	if (rs)
		printf("rules: %zu valid, %u rejected\n", rs->n, rejected);
	alerts_free(al);
	rule_set_free(rs);
	config_free(&cfg);
	return rc < 0 || rejected > 0 ? EXIT_USAGE : 0;
}

/* SIGHUP: a new configuration and rule set, or the old ones with a reason. */
static void
reload(struct agent *a)
{
	struct de_config cfg = { 0 };
	struct errbuf err = { 0 };
	int rc;

	if (load_config(&a->flags, &cfg, &err) < 0) {
		log_error("reload: configuration refused, keeping the running one: %s", err.msg);
		config_free(&cfg);
		a->reload_failures++;
		ledger_record(a, "agent", "config.reload",
		              json_pack("{s:b,s:s}", "ok", 0, "error", err.msg));
		return;
	}
	rc = detect_load_rules(a->detect, (const char *const *)cfg.detection.rules_dirs,
	                       cfg.detection.n_rules_dirs, &err);
	if (rc < 0) {
		log_error("reload: rules refused, keeping the running set: %s", err.msg);
		a->reload_failures++;
	} else {
		a->reloads++;
		log_info("reload: configuration and rules reloaded (%d rule files rejected)", rc);
	}
	ledger_record(a, "agent", "config.reload",
	              json_pack("{s:b,s:s?,s:i}", "ok", rc >= 0, "error", rc < 0 ? err.msg : NULL,
	                        "rejected", rc < 0 ? 0 : rc));
	/* A new scan interval goes to the collectors (AdjustInterval RPC). */
	if (cfg.agent.scan_interval_ms != a->cfg.agent.scan_interval_ms)
		for (size_t i = 0; i < a->reg.n; i++)
			if (a->reg.c[i].conn)
				(void)broker_rpc(a->broker, &a->reg.c[i],
				                 DAEMONEYE__RPC_METHOD__RPC_ADJUST_INTERVAL,
				                 cfg.agent.scan_interval_ms);
	/* Settings the running engine cannot change in place (socket, data
	 * directory, user, sinks) take effect at the next start. */
	config_free(&a->cfg);
	a->cfg = cfg;
}

/* ---- the engine's loop ---- */

static void
begin_stop(struct agent *a, const char *why)
{
	if (a->stop)
		return;
	a->stop = true;
	a->stop_deadline_ms = time_mono_ms() + STOP_COLLECTORS_MS;
	set_state(a, AGENT_SHUTTING_DOWN, why);
	broker_stop_accepting(a->broker);
	for (size_t i = 0; i < a->reg.n; i++)
		if (a->reg.c[i].conn)
			(void)broker_rpc(a->broker, &a->reg.c[i],
			                 DAEMONEYE__RPC_METHOD__RPC_GRACEFUL_SHUTDOWN, 0);
}

static void
on_signal(void *ctx, uint32_t events)
{
	struct agent *a = ctx;
	struct signalfd_siginfo si;

	(void)events;
	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(a);
		else
			begin_stop(a, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
	}
}

static void
on_tick(void *ctx, uint32_t events)
{
	struct agent *a = ctx;
	uint64_t exp, now = time_mono_ms();

	(void)events;
	(void)!read(a->timerfd, &exp, sizeof(exp));
	a->ticks++;
	registry_tick(&a->reg, now, on_collector_failed, a);
	broker_tick(a->broker, now);
	if (a->state == AGENT_LOADING &&
	    now - a->started_ms > (uint64_t)a->cfg.agent.startup_timeout_s * 1000)
		set_state(a, AGENT_STARTUP_FAILED,
		          "startup_timeout passed before every collector "
		          "registered");
	if (a->ticks % HEALTH_RPC_EVERY_S == 0)
		for (size_t i = 0; i < a->reg.n; i++)
			if (a->reg.c[i].conn)
				(void)broker_rpc(a->broker, &a->reg.c[i],
				                 DAEMONEYE__RPC_METHOD__RPC_HEALTH_CHECK, 0);
	if (a->ticks % RETENTION_EVERY_S == 0 && a->cfg.agent.retention_days > 0)
		(void)store_retention_step(a->store, a->cfg.agent.retention_days, RETENTION_ROWS);
	if (a->ledger)
		(void)ledger_tick(a->ledger);
}

static void
on_supervisor_msg(void *ctx, const char *event, const char *id, const char *json)
{
	struct agent *a = ctx;

	ledger_record(a, "supervisor", streq(event, "start") ? "collector.start" : "collector.exit",
	              json_loads(json, 0, NULL));
	(void)id;
}

static void
on_supervisor(void *ctx, uint32_t events)
{
	struct agent *a = ctx;

	(void)events;
	if (supervise_view_read(a->sup, on_supervisor_msg, a) == -ECONNRESET)
		begin_stop(a, "the supervisor is gone");
}

static int
watch(struct agent *a, struct ev_watch *w, int fd, void (*fn)(void *, uint32_t))
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };

	*w = (struct ev_watch){ .fd = fd, .fn = fn, .ctx = a };
	return epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int
setup_loop(struct agent *a, int chan)
{
	struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	(void)sigprocmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	if ((a->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (a->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (a->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) < 0 ||
	    timerfd_settime(a->timerfd, 0, &its, NULL) < 0)
		return -errno;
	if ((rc = watch(a, &a->sig_w, a->sigfd, on_signal)) < 0 ||
	    (rc = watch(a, &a->timer_w, a->timerfd, on_tick)) < 0)
		return rc;
	if (chan >= 0) {
		if ((rc = supervise_view_new(chan, &a->sup)) < 0 ||
		    (rc = watch(a, &a->sup_w, chan, on_supervisor)) < 0)
			return rc;
	}
	return 0;
}

static void
run_loop(struct agent *a)
{
	struct epoll_event evs[64];
	bool more = false;

	for (;;) {
		int n = epoll_wait(a->epfd, evs, (int)ARRAY_SIZE(evs), more ? 0 : 1000);

		for (int i = 0; i < n; i++) {
			struct ev_watch *w = evs[i].data.ptr;

			w->fn(w->ctx, evs[i].events);
		}
		broker_process(a->broker, INGEST_SLICE, &more);
		if (a->stop && !more &&
		    (registry_live(&a->reg) == 0 || time_mono_ms() > a->stop_deadline_ms))
			break;
	}
}

/* ---- engine start-up and tear-down ---- */

static void
drop_privileges(struct agent *a)
{
	struct privdrop_user u;
	struct errbuf err = { 0 };
	pid_t parent = getppid();
	int rc;

	if ((rc = privdrop_resolve_user(a->cfg.agent.user, &u)) < 0)
		fatal("engine: no user %s and no nobody: %s", a->cfg.agent.user, strerror(-rc));
	if (u.fell_back && geteuid() == 0)
		log_warn("engine: user %s does not exist: running as %s", a->cfg.agent.user,
		         u.name);
	if (privdrop_apply(&u, NULL, 0, &err) < 0)
		fatal("engine: privilege drop: %s", err.msg);
	/* The parent-death signal is cleared by the credential change. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		fatal("engine: the supervisor went away during start-up");
	if (seccomp_profile_apply(SECCOMP_PROFILE_AGENT, &err) < 0)
		fatal("engine: seccomp: %s", err.msg);
	de_strlcpy(a->user, u.name, sizeof(a->user));
}

static int
open_path(struct agent *a, const char *name, char *buf, size_t n)
{
	int r = snprintf(buf, n, "%s/%s", a->data_dir, name);

	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static void
open_components(struct agent *a)
{
	struct control_callbacks cb = {
		.health = health_json, .stats = stats_json, .rules = rules_json, .ctx = a
	};
	struct broker_ops ops = { .ingest = cb_ingest,
		                  .high_water = cb_high_water,
		                  .collector_up = cb_collector_up,
		                  .collector_down = cb_collector_down,
		                  .ctx = a };
	struct errbuf err = { 0 };
	char path[PATH_MAX];
	int rc;

	if ((rc = open_path(a, "events.db", path, sizeof(path))) < 0 ||
	    (rc = store_open(path, STORE_RW, &a->store)) < 0)
		fatal("store %s: %s", path, strerror(-rc));
	if ((rc = open_path(a, "ledger", path, sizeof(path))) < 0 ||
	    (rc = ledger_open(path, LEDGER_RW, &a->ledger, &err)) < 0)
		fatal("ledger %s: %s", path, err.msg[0] ? err.msg : strerror(-rc));
	if ((rc = open_path(a, "spool", path, sizeof(path))) < 0 ||
	    (rc = alerts_new(&a->alerts, &a->cfg, a->store, path, &err)) < 0)
		fatal("alerts: %s", err.msg[0] ? err.msg : strerror(-rc));
	alerts_set_observer(a->alerts, on_alert, a);
	if ((rc = detect_new(&a->detect, a->store, &a->cfg, a->alerts, &err)) < 0)
		fatal("detection: %s", err.msg[0] ? err.msg : strerror(-rc));
	detect_set_rules_observer(a->detect, on_rules_loaded, a);
	if (detect_load_rules(a->detect, (const char *const *)a->cfg.detection.rules_dirs,
	                      a->cfg.detection.n_rules_dirs, &err) < 0)
		fatal("rules: %s", err.msg);
	if ((rc = ingest_new(a->store, a->detect, &a->ingest)) < 0 ||
	    (rc = control_new(&cb, &a->control)) < 0)
		fatal("engine: %s", strerror(-rc));
	ingest_set_gap_observer(a->ingest, on_gap, a);
	registry_init(&a->reg);
	if ((rc = broker_new(a->epfd, a->socket_path, &a->reg, a->control, &ops, &a->broker,
	                     &err)) < 0)
		fatal("socket: %s", err.msg[0] ? err.msg : strerror(-rc));
}

static void
close_components(struct agent *a)
{
	broker_free(a->broker);
	registry_free(&a->reg);
	ingest_free(a->ingest);
	control_free(a->control);
	detect_free(a->detect);
	alerts_free(a->alerts); /* delivers or spools what is queued, bounded */
	store_close(a->store);
	ledger_close(a->ledger);
	supervise_view_free(a->sup);
}

static size_t
count_spawned(const struct de_config *cfg)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_collectors; i++)
		n += cfg->collectors[i].spawn;
	return n;
}

/* The engine child (supervise_opts.engine). */
static int
engine_main(void *ctx, int chan)
{
	struct agent *a = ctx;
	int rc;

	log_init("daemoneye-agent[engine]");
	if (geteuid() == 0) {
		drop_privileges(a);
	} else {
		struct errbuf err = { 0 };

		/* Not started as root: nothing to drop, but the same sandbox. */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    seccomp_profile_apply(SECCOMP_PROFILE_AGENT, &err) < 0)
			fatal("engine: sandbox: %s", err.msg[0] ? err.msg : strerror(errno));
		(void)snprintf(a->user, sizeof(a->user), "uid %u (not started as root)",
		               (unsigned)geteuid());
	}
	a->started_ms = a->state_since_ms = time_mono_ms();
	a->expected_collectors = count_spawned(&a->cfg);
	if ((rc = setup_loop(a, chan)) < 0)
		fatal("engine: event loop: %s", strerror(-rc));
	open_components(a);
	ledger_record(a, "agent", "agent.start",
	              json_pack("{s:i,s:s,s:s}", "pid", getpid(), "user", a->user, "version",
	                        DAEMONEYE_VERSION));
	log_info("engine: listening on %s as %s; %zu collector(s) expected", a->socket_path,
	         a->user, a->expected_collectors);
	check_ready(a);
	run_loop(a);
	ledger_record(a, "agent", "agent.stop", json_pack("{s:i}", "pid", getpid()));
	close_components(a);
	config_free(&a->cfg);
	log_info("engine: stopped");
	return 0;
}

/* ---- flags ---- */

static void
usage(FILE *f)
{
	fputs("Usage: daemoneye-agent [OPTIONS]\n"
	      "\n"
	      "  -c, --config PATH      read this configuration file instead of the standard ones\n"
	      "      --data-dir DIR     data directory (store, ledger, socket, WAL)\n"
	      "      --rules-dir DIR    rule directory (repeatable)\n"
	      "      --socket PATH      the agent's Unix socket\n"
	      "      --log-level LEVEL  error|warn|info|debug\n"
	      "      --check-config     validate the configuration, rules and sinks, then exit\n"
	      "  -h, --help             this text\n"
	      "  -V, --version          the version\n",
	      f);
}

static int
parse_flags(int argc, char **argv, struct agent_flags *f)
{
	enum { OPT_DATA = 256, OPT_RULES, OPT_SOCKET, OPT_LOG, OPT_CHECK };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, OPT_DATA },
		{ "rules-dir", required_argument, NULL, OPT_RULES },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "hVc:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("daemoneye-agent %s\n", DAEMONEYE_VERSION);
			exit(0);
		case 'c':
			f->config_path = optarg;
			break;
		case OPT_DATA:
			f->data_dir = optarg;
			break;
		case OPT_RULES:
			if (f->n_rules_dirs == CONFIG_MAX_RULES_DIRS) {
				fprintf(stderr, "daemoneye-agent: at most %d --rules-dir\n",
				        CONFIG_MAX_RULES_DIRS);
				return -EINVAL;
			}
			f->rules_dirs[f->n_rules_dirs++] = optarg;
			break;
		case OPT_SOCKET:
			f->socket = optarg;
			break;
		case OPT_LOG:
			f->log_level = optarg;
			break;
		case OPT_CHECK:
			f->check_config = true;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "daemoneye-agent: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int
resolve_ids(const char *name, uid_t *uid, gid_t *gid)
{
	struct privdrop_user u;
	int rc;

	if (geteuid() != 0) {
		*uid = geteuid();
		*gid = getegid();
		return 0;
	}
	if ((rc = privdrop_resolve_user(name, &u)) < 0)
		return rc;
	*uid = u.uid;
	*gid = u.gid;
	return 0;
}

int
main(int argc, char **argv)
{
	static struct agent a;
	struct supervise_opts so = { 0 };
	struct errbuf err = { 0 };
	enum log_level lvl;
	int rc;

	log_init("daemoneye-agent");
	if (parse_flags(argc, argv, &a.flags) < 0)
		return EXIT_USAGE;
	if (a.flags.log_level) {
		if (log_level_from_string(a.flags.log_level, &lvl) < 0) {
			fprintf(stderr, "daemoneye-agent: bad --log-level '%s'\n",
			        a.flags.log_level);
			return EXIT_USAGE;
		}
		log_set_level(lvl);
	}
	if (a.flags.check_config)
		return check_config(&a.flags);
	if (load_config(&a.flags, &a.cfg, &err) < 0) {
		fprintf(stderr, "daemoneye-agent: %s\n", err.msg);
		return EXIT_USAGE;
	}
	de_strlcpy(a.data_dir, a.cfg.agent.data_dir, sizeof(a.data_dir));
	if (config_socket_path(&a.cfg, a.socket_path, sizeof(a.socket_path)) < 0 ||
	    config_wal_dir(&a.cfg, a.wal_dir, sizeof(a.wal_dir)) < 0) {
		fprintf(stderr, "daemoneye-agent: socket or WAL path too long\n");
		return EXIT_USAGE;
	}
	so.cfg = &a.cfg;
	so.config_path = a.flags.config_path;
	so.log_level = a.flags.log_level;
	so.socket_path = a.socket_path;
	so.data_dir = a.data_dir;
	so.wal_dir = a.wal_dir;
	so.engine = engine_main;
	so.ctx = &a;
	if (resolve_ids(a.cfg.agent.user, &so.engine_uid, &so.engine_gid) < 0 ||
	    resolve_ids(a.cfg.procmond.user, &so.collector_uid, &so.collector_gid) < 0) {
		log_error("neither the configured users nor nobody exist");
		return EXIT_RUNTIME;
	}
	rc = supervise_run(&so);
	config_free(&a.cfg);
	return rc;
}
