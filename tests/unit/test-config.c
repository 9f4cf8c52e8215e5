#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cleanup.h"
#include "config-internal.h"
#include "config.h"
#include "errbuf.h"
#include "util.h"

/* Parses text on top of the defaults; returns the rc and leaves the error. */
static int
parse(const char *text, struct de_config *cfg, struct errbuf *err)
{
	assert_int_equal(config_defaults(cfg), 0);
	errbuf_clear(err);
	return config_parse_string(cfg, "t.yaml", text, strlen(text), err);
}

/* Expects text to be rejected with exactly msg. */
static void
expect_error(const char *text, const char *msg)
{
	struct de_config cfg;
	struct errbuf err;

	assert_int_equal(parse(text, &cfg, &err), -EINVAL);
	assert_string_equal(err.msg, msg);
	/* A failed parse leaves the previous configuration intact. */
	assert_string_equal(cfg.agent.data_dir, "/var/lib/daemoneye");
	config_free(&cfg);
}

static void
test_defaults(void **state)
{
	struct de_config cfg;
	char buf[256];

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_string_equal(cfg.agent.data_dir, "/var/lib/daemoneye");
	assert_null(cfg.agent.socket);
	assert_string_equal(cfg.agent.user, "daemoneye");
	assert_int_equal(cfg.agent.scan_interval_ms, 1000);
	assert_int_equal(cfg.agent.startup_timeout_s, 60);
	assert_int_equal(cfg.agent.heartbeat_interval_s, 30);
	assert_int_equal(cfg.agent.retention_days, 30);
	assert_string_equal(cfg.procmond.collector, "auto");
	assert_true(cfg.procmond.compute_hashes);
	assert_true(cfg.procmond.max_buffer_bytes == 10u << 20);
	assert_true(cfg.procmond.wal_rotate_bytes == 80u << 20);
	assert_string_equal(cfg.procmond.user, "daemoneye");
	assert_int_equal(cfg.detection.n_rules_dirs, 1);
	assert_string_equal(cfg.detection.rules_dirs[0], "/etc/daemoneye/rules");
	assert_int_equal(cfg.detection.rule_timeout_ms, 100);
	assert_int_equal(cfg.alerting.dedup_window_s, 300);
	assert_int_equal(cfg.alerting.max_alerts_per_minute, 600);
	assert_int_equal(cfg.alerting.n_sinks, 1);
	assert_int_equal(cfg.alerting.sinks[0].type, SINK_STDOUT);
	assert_int_equal(cfg.alerting.sinks[0].format, SINK_FORMAT_HUMAN);
	assert_int_equal(cfg.n_collectors, 1);
	assert_string_equal(cfg.collectors[0].id, "procmond");
	assert_string_equal(cfg.collectors[0].binary, "procmond");
	assert_true(cfg.collectors[0].spawn);
	assert_int_equal(config_socket_path(&cfg, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/lib/daemoneye/daemoneye.sock");
	assert_int_equal(config_wal_dir(&cfg, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/lib/daemoneye/wal");
	assert_int_equal(config_socket_path(&cfg, buf, 8), -ENAMETOOLONG);
	assert_int_equal(config_validate(&cfg, NULL), 0);
	config_free(&cfg);
	config_free(&cfg); /* freeing twice is harmless: the struct is zeroed */
}

static const char good_yaml[] =
    "# a complete file\n"
    "agent:\n"
    "  data_dir: /srv/de\n"
    "  socket: /run/de.sock\n"
    "  user: nobody\n"
    "  scan_interval_ms: 250\n"
    "  startup_timeout_s: 5\n"
    "  heartbeat_interval_s: 2\n"
    "  retention_days: 7\n"
    "procmond:\n"
    "  collector: netlink\n"
    "  compute_hashes: false\n"
    "  max_buffer_bytes: 2MiB\n"
    "  wal_dir: /srv/wal\n"
    "  wal_rotate_bytes: 80MB\n"
    "detection:\n"
    "  rules_dirs: [/a, /b]\n"
    "  rule_timeout_ms: 50\n"
    "alerting:\n"
    "  dedup_window_s: 0\n"
    "  max_alerts_per_minute: 10\n"
    "  sinks:\n"
    "    - { type: stdout, format: csv }\n"
    "    - type: file\n"
    "      path: /srv/alerts.jsonl\n"
    "      max_bytes: 1048576\n"
    "      max_files: 3\n"
    "      spool_max_bytes: 1KiB\n"
    "    - { type: syslog, facility: local3, server: \"tcp://127.0.0.1:514\" }\n"
    "    - { type: webhook, url: \"https://example.test/hook\", timeout_ms: 100,\n"
    "        ca_file: /etc/de/ca.pem, client_cert: /etc/de/c.pem, client_key: /etc/de/c.key }\n"
    "collectors:\n"
    "  - { id: procmond, binary: /usr/lib/de/procmond, args: [--no-hash, -v], spawn: no }\n"
    "  - { id: other }\n";

static void
test_good_file(void **state)
{
	struct de_config cfg, copy;
	struct errbuf err;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(good_yaml, &cfg, &err), 0);
	assert_string_equal(cfg.agent.data_dir, "/srv/de");
	assert_string_equal(cfg.agent.socket, "/run/de.sock");
	assert_int_equal(cfg.agent.scan_interval_ms, 250);
	assert_int_equal(cfg.agent.retention_days, 7);
	assert_string_equal(cfg.procmond.collector, "netlink");
	assert_false(cfg.procmond.compute_hashes);
	assert_true(cfg.procmond.max_buffer_bytes == 2u << 20);
	assert_true(cfg.procmond.wal_rotate_bytes == 80000000u);
	assert_int_equal(cfg.detection.n_rules_dirs, 2);
	assert_string_equal(cfg.detection.rules_dirs[1], "/b");
	assert_int_equal(cfg.alerting.dedup_window_s, 0);
	assert_int_equal(cfg.alerting.n_sinks, 4);
	assert_int_equal(cfg.alerting.sinks[0].format, SINK_FORMAT_CSV);
	assert_int_equal(cfg.alerting.sinks[1].type, SINK_FILE);
	assert_int_equal(cfg.alerting.sinks[1].format, SINK_FORMAT_JSON);
	assert_string_equal(cfg.alerting.sinks[1].path, "/srv/alerts.jsonl");
	assert_int_equal(cfg.alerting.sinks[1].max_files, 3);
	assert_true(cfg.alerting.sinks[1].spool_max_bytes == 1024);
	assert_true(cfg.alerting.sinks[0].spool_max_bytes == 64u << 20);
	assert_string_equal(cfg.alerting.sinks[2].facility, "local3");
	assert_string_equal(cfg.alerting.sinks[2].server, "tcp://127.0.0.1:514");
	assert_string_equal(cfg.alerting.sinks[3].url, "https://example.test/hook");
	assert_int_equal(cfg.alerting.sinks[3].timeout_ms, 100);
	assert_string_equal(cfg.alerting.sinks[3].ca_file, "/etc/de/ca.pem");
	assert_string_equal(cfg.alerting.sinks[3].client_cert, "/etc/de/c.pem");
	assert_string_equal(cfg.alerting.sinks[3].client_key, "/etc/de/c.key");
	assert_null(cfg.alerting.sinks[2].ca_file);
	assert_int_equal(cfg.n_collectors, 2);
	assert_string_equal(cfg.collectors[0].binary, "/usr/lib/de/procmond");
	assert_int_equal(cfg.collectors[0].n_args, 2);
	assert_string_equal(cfg.collectors[0].args[1], "-v");
	assert_false(cfg.collectors[0].spawn);
	assert_string_equal(cfg.collectors[1].binary, "other");
	assert_true(cfg.collectors[1].spawn);
	assert_int_equal(config_validate(&cfg, &err), 0);

	/* The copy is deep: freeing the original leaves it intact. */
	assert_int_equal(config_copy(&cfg, &copy), 0);
	config_free(&cfg);
	assert_string_equal(copy.alerting.sinks[3].url, "https://example.test/hook");
	assert_string_equal(copy.alerting.sinks[3].client_key, "/etc/de/c.key");
	assert_string_equal(copy.collectors[0].args[0], "--no-hash");
	assert_string_equal(copy.detection.rules_dirs[0], "/a");

	assert_non_null(f = open_memstream(&out, &outlen));
	config_print_summary(&copy, f);
	fclose(f);
	assert_non_null(strstr(out, "agent.data_dir = /srv/de"));
	assert_non_null(strstr(out, "detection.rules_dirs = /a:/b"));
	assert_non_null(strstr(out, "sink[1]: file path=/srv/alerts.jsonl"));
	assert_non_null(strstr(out, "ca_file=/etc/de/ca.pem client_cert=/etc/de/c.pem "
	                            "client_key=/etc/de/c.key"));
	assert_non_null(strstr(out, "collector[1]: id=other"));
	free(out);
	config_free(&copy);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("agent:\n  data_dir: /x\n  foo: 1\n", "t.yaml:3: unknown key 'agent.foo'");
	expect_error("agent: {}\nbogus: 1\n", "t.yaml:2: unknown key 'bogus'");
	expect_error("agent:\n  scan_interval_ms: abc\n",
	             "t.yaml:2: agent.scan_interval_ms: expected an integer, got 'abc'");
	expect_error("\n\nagent:\n  retention_days: 0\n",
	             "t.yaml:4: agent.retention_days: must be between 1 and 36500");
	expect_error("agent:\n  scan_interval_ms: 99999999999999999999999\n",
	             "t.yaml:2: agent.scan_interval_ms: must be between 10 and 3600000");
	expect_error("procmond:\n  compute_hashes: maybe\n",
	             "t.yaml:2: procmond.compute_hashes: expected true or false, got 'maybe'");
	expect_error("procmond:\n  collector: kprobe\n",
	             "t.yaml:2: procmond.collector: expected one of auto, ebpf, netlink, poll, "
	             "got 'kprobe'");
	expect_error("procmond:\n  max_buffer_bytes: 10XB\n",
	             "t.yaml:2: procmond.max_buffer_bytes: expected a size (e.g. 4096 or 64MiB), "
	             "got '10XB'");
	expect_error("alerting:\n  sinks:\n    - type: stdout\n    - type: kafka\n",
	             "t.yaml:4: alerting.sinks[1].type: unknown sink type 'kafka' (expected one "
	             "of stdout, file, syslog, webhook)");
	expect_error("alerting:\n  sinks:\n    - type: file\n      path: /x\n      url: http://a\n",
	             "t.yaml:5: unknown key 'alerting.sinks[0].url' for a file sink");
	expect_error("alerting:\n  sinks:\n    - type: file\n      format: human\n",
	             "t.yaml:4: alerting.sinks[0].format: expected one of json, got 'human'");
	expect_error("alerting:\n  sinks:\n    - type: file\n",
	             "t.yaml:3: alerting.sinks[0]: a file sink needs a path");
	expect_error("alerting:\n  sinks:\n    - { type: webhook, url: ftp://x }\n",
	             "t.yaml:3: alerting.sinks[0]: a webhook sink needs an http:// or https:// "
	             "url");
	expect_error("alerting:\n  sinks:\n    - { format: json }\n",
	             "t.yaml:3: alerting.sinks[0]: a sink needs a type");
	expect_error("alerting:\n  sinks: stdout\n",
	             "t.yaml:2: alerting.sinks: expected a list of sinks");
	expect_error("agent:\n  data_dir: /a\n  data_dir: /b\n",
	             "t.yaml:3: duplicate key 'agent.data_dir'");
	expect_error("agent:\n  data_dir: [/a]\n",
	             "t.yaml:2: agent.data_dir: expected a single value");
	expect_error("agent:\n  user: ~\n", "t.yaml:2: agent.user: must not be empty");
	expect_error("agent: 5\n", "t.yaml:1: agent: expected a mapping of keys");
	expect_error("- a\n- b\n", "t.yaml:1: expected a mapping of sections at the top");
	expect_error("collectors:\n  - { id: x, color: red }\n",
	             "t.yaml:2: unknown key 'collectors.color'");
	expect_error("collectors:\n  - { binary: x }\n",
	             "t.yaml:2: collectors[0]: a collector needs an id");
	expect_error("agent: {}\n---\nagent: {}\n", "t.yaml:3: only one YAML document is allowed");
}

static void
test_syntax_error(void **state)
{
	struct de_config cfg;
	struct errbuf err;

	(void)state;
	assert_int_equal(parse("agent:\n  data_dir: /x\n  user: [a, b\n", &cfg, &err), -EINVAL);
	assert_true(strncmp(err.msg, "t.yaml:4: YAML syntax error: ", 29) == 0);
	config_free(&cfg);
	assert_int_equal(parse("agent:\n  data_dir: /x\n user: y\n", &cfg, &err), -EINVAL);
	assert_true(strncmp(err.msg, "t.yaml:3: YAML syntax error: ", 29) == 0);
	config_free(&cfg);
	/* An empty document is the defaults. */
	assert_int_equal(parse("# nothing\n", &cfg, &err), 0);
	assert_string_equal(cfg.agent.user, "daemoneye");
	config_free(&cfg);
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

struct tmpdir {
	char path[64];
};

static void
tmpdir_make(struct tmpdir *t)
{
	(void)snprintf(t->path, sizeof(t->path), "/tmp/de-test-config-XXXXXX");
	assert_non_null(mkdtemp(t->path));
}

static void
rm_rf(const char *p)
{
	char cmd[PATH_MAX + 16];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	assert_int_equal(system(cmd), 0);
}

static void
test_env_and_files(void **state)
{
	struct de_config cfg;
	struct errbuf err;
	struct tmpdir t;
	char path[PATH_MAX], home_cfg[PATH_MAX], old_home[PATH_MAX] = "";
	const char *h = getenv("HOME");

	(void)state;
	if (h != NULL)
		de_strlcpy(old_home, h, sizeof(old_home));
	tmpdir_make(&t);
	(void)snprintf(path, sizeof(path), "%s/explicit.yaml", t.path);
	write_text(path, "agent:\n  data_dir: /from/file\n  user: fileuser\n");

	/* The environment beats the file. */
	setenv("DAEMONEYE_AGENT_DATA_DIR", "/from/env", 1);
	setenv("DAEMONEYE_DETECTION_RULES_DIRS", "/r1:/r2::/r3", 1);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg.agent.data_dir, "/from/env");
	assert_string_equal(cfg.agent.user, "fileuser");
	assert_int_equal(cfg.detection.n_rules_dirs, 3);
	assert_string_equal(cfg.detection.rules_dirs[2], "/r3");
	assert_string_equal(cfg.source_path, path);
	config_free(&cfg);
	unsetenv("DAEMONEYE_DETECTION_RULES_DIRS");

	/* An invalid environment value names the variable. */
	setenv("DAEMONEYE_AGENT_SCAN_INTERVAL_MS", "fast", 1);
	assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "DAEMONEYE_AGENT_SCAN_INTERVAL_MS: expected an integer, "
	                             "got 'fast'");
	unsetenv("DAEMONEYE_AGENT_SCAN_INTERVAL_MS");
	unsetenv("DAEMONEYE_AGENT_DATA_DIR");

	/* The user's file is read without --config, and skipped with it. */
	setenv("HOME", t.path, 1);
	(void)snprintf(home_cfg, sizeof(home_cfg), "%s/.config", t.path);
	assert_int_equal(mkdir(home_cfg, 0700), 0);
	(void)snprintf(home_cfg, sizeof(home_cfg), "%s/.config/daemoneye", t.path);
	assert_int_equal(mkdir(home_cfg, 0700), 0);
	(void)snprintf(home_cfg, sizeof(home_cfg), "%s/.config/daemoneye/config.yaml", t.path);
	write_text(home_cfg, "agent:\n  retention_days: 9\n");
	assert_int_equal(config_load(NULL, &cfg, &err), 0);
	assert_int_equal(cfg.agent.retention_days, 9);
	config_free(&cfg);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_int_equal(cfg.agent.retention_days, 30);
	assert_string_equal(cfg.agent.data_dir, "/from/file");
	config_free(&cfg);

	/* A broken user file is an error with its own name and line. */
	write_text(home_cfg, "agent:\n  retention_days: -1\n");
	assert_int_equal(config_load(NULL, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "config.yaml:2: agent.retention_days: expected an "
	                                "integer, got '-1'"));

	/* A missing explicit file is an I/O error naming it. */
	assert_int_equal(config_load("/nonexistent/de.yaml", &cfg, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/de.yaml"));

	if (old_home[0] != '\0')
		setenv("HOME", old_home, 1);
	rm_rf(t.path);
}

static void
test_collectors_json(void **state)
{
	struct de_config cfg;
	struct errbuf err;
	struct tmpdir t;
	char path[PATH_MAX], json[PATH_MAX];

	(void)state;
	tmpdir_make(&t);
	(void)snprintf(json, sizeof(json), "%s/collectors.json", t.path);
	write_text(json, "{\"collectors\":[{\"id\":\"procmond\",\"collector_type\":\"process\","
	                 "\"binary_path\":\"/opt/procmond\",\"args\":[\"--once\"],"
	                 "\"auto_restart\":false}]}");
	(void)snprintf(path, sizeof(path), "%s/c.yaml", t.path);
	write_text(path, "collectors: collectors.json\n");
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_int_equal(cfg.n_collectors, 1);
	assert_string_equal(cfg.collectors[0].binary, "/opt/procmond");
	assert_string_equal(cfg.collectors[0].args[0], "--once");
	assert_false(cfg.collectors[0].spawn);
	config_free(&cfg);

	write_text(json, "{\"collectors\":[{\"id\":\"p\",\"colour\":1}]}");
	assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "c.yaml:1: collectors: "));
	assert_non_null(strstr(err.msg, "unknown key 'colour'"));
	(void)snprintf(path, sizeof(path), "%s/missing.yaml", t.path);
	write_text(path, "collectors: nope.json\n");
	assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "missing.yaml:1: collectors: "));
	assert_non_null(strstr(err.msg, "nope.json: No such file or directory"));
	(void)snprintf(path, sizeof(path), "%s/c.yaml", t.path);
	write_text(json, "{\"collectors\":[\n{\"id\":}]}");
	assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "collectors.json:2: "));
	rm_rf(t.path);
}

static void
test_set_and_validate(void **state)
{
	static const char dup_ids[] = "collectors: [ {id: dup}, {id: dup} ]\n";
	static const char no_coll[] = "collectors: []\n";
	struct de_config cfg;
	struct errbuf err;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_set(&cfg, "agent.data_dir", "/flag", &err), 0);
	assert_string_equal(cfg.agent.data_dir, "/flag");
	assert_int_equal(config_set(&cfg, "agent.socket", "", &err), 0);
	assert_null(cfg.agent.socket);
	assert_int_equal(config_set(&cfg, "agent.nope", "1", &err), -EINVAL);
	assert_string_equal(err.msg, "unknown key 'agent.nope'");
	assert_int_equal(config_set(&cfg, "detection.rule_timeout_ms", "0", &err), -EINVAL);
	assert_string_equal(err.msg, "detection.rule_timeout_ms: must be between 1 and 60000");
	assert_int_equal(config_set(&cfg, "detection.rules_dirs", "/x:/y", &err), 0);
	assert_int_equal(cfg.detection.n_rules_dirs, 2);
	assert_int_equal(config_append(&cfg, "detection.rules_dirs", "/z", &err), 0);
	assert_int_equal(cfg.detection.n_rules_dirs, 3);
	assert_string_equal(cfg.detection.rules_dirs[2], "/z");
	assert_int_equal(config_append(&cfg, "agent.user", "x", &err), -EINVAL);
	assert_int_equal(config_set(&cfg, "alerting.sinks", "x", &err), -EINVAL);
	assert_int_equal(config_validate(&cfg, &err), 0);

	/* Cross-field checks catch what a single key cannot. */
	assert_int_equal(config_parse_string(&cfg, "t.yaml", dup_ids, strlen(dup_ids), &err), 0);
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "id 'dup' is used twice"));
	assert_int_equal(config_set(&cfg, "agent.socket",
	                            "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	                            &err),
	                 0);
	assert_int_equal(config_parse_string(&cfg, "t.yaml", no_coll, strlen(no_coll), &err), 0);
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "agent.socket"));
	config_free(&cfg);
}

/* The remaining shapes of bad input, each with its location. */
static void
test_more_errors(void **state)
{
	char big[2048];
	size_t used = 0;

	(void)state;
	expect_error("? [a]\n: 1\n", "t.yaml:1: keys must be plain strings");
	expect_error("detection:\n  rules_dirs: [/a, 'b:c']\n",
	             "t.yaml:2: detection.rules_dirs: expected a list of paths (no ':')");
	expect_error("agent:\n  retention_days:\n",
	             "t.yaml:2: agent.retention_days: a value is required");
	expect_error("procmond:\n  max_buffer_bytes: 99999999999999T\n",
	             "t.yaml:2: procmond.max_buffer_bytes: must be between 65536 and 4294967296");
	expect_error("procmond:\n  max_buffer_bytes: 1K\n",
	             "t.yaml:2: procmond.max_buffer_bytes: must be between 65536 and 4294967296");
	expect_error("alerting:\n  sinks:\n    - { type: syslog, server: 'udp://h:514' }\n",
	             "t.yaml:3: alerting.sinks[0]: a syslog server is tcp://host:port or "
	             "tls://host:port");
	/* TLS files: absolute, cert with key, only where TLS is spoken. */
	expect_error("alerting:\n  sinks:\n    - { type: syslog, server: 'tcp://h:514',\n"
	             "        client_cert: /c.pem, client_key: /c.key }\n",
	             "t.yaml:3: alerting.sinks[0]: ca_file, client_cert and client_key need a "
	             "tls:// server");
	expect_error("alerting:\n  sinks:\n    - { type: syslog, ca_file: /ca.pem }\n",
	             "t.yaml:3: alerting.sinks[0]: ca_file, client_cert and client_key need a "
	             "tls:// server");
	expect_error(
	    "alerting:\n  sinks:\n    - { type: webhook, url: 'http://h/', ca_file: /a }\n",
	    "t.yaml:3: alerting.sinks[0]: ca_file, client_cert and client_key need an "
	    "https:// url");
	expect_error("alerting:\n  sinks:\n    - { type: webhook, url: 'https://h/', client_cert: "
	             "/c.pem }\n",
	             "t.yaml:3: alerting.sinks[0]: client_cert and client_key go together");
	expect_error("alerting:\n  sinks:\n\n    - { type: syslog, server: 'tls://h',"
	             " client_key: /k }\n",
	             "t.yaml:4: alerting.sinks[0]: client_cert and client_key go together");
	expect_error("alerting:\n  sinks:\n    - { type: webhook, url: 'https://h/', ca_file: "
	             "ca.pem }\n",
	             "t.yaml:3: alerting.sinks[0]: ca_file, client_cert and client_key must be "
	             "absolute paths");
	expect_error("alerting:\n  sinks:\n    - { type: file, path: /x, ca_file: /ca.pem }\n",
	             "t.yaml:3: unknown key 'alerting.sinks[0].ca_file' for a file sink");
	expect_error(
	    "alerting:\n  sinks:\n    - { type: syslog, facility: mail2 }\n",
	    "t.yaml:3: alerting.sinks[0].facility: expected one of kern, user, mail, daemon, "
	    "auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0, local1, local2, "
	    "local3, local4, local5, local6, local7, got 'mail2'");
	expect_error("collectors:\n  - { id: x, args: [a, [b]] }\n",
	             "t.yaml:2: collectors: args must be strings");
	expect_error("collectors:\n  - { id: x, args: a }\n",
	             "t.yaml:2: collectors.args: expected a list of strings");
	expect_error("collectors:\n  - { id: [x] }\n",
	             "t.yaml:2: collectors.id: expected a single value");
	expect_error("collectors:\n  - { id: x, spawn: sometimes }\n",
	             "t.yaml:2: collectors.spawn: expected true or false, got 'sometimes'");
	expect_error("collectors: { id: x }\n",
	             "t.yaml:1: collectors: expected a list or a collectors.json path");
	expect_error("collectors:\n  - 5\n", "t.yaml:2: collectors[0]: expected a mapping");

	/* Bounds of the lists: 17 sinks, 9 collectors, 33 args. */
	used += (size_t)snprintf(big + used, sizeof(big) - used, "alerting:\n  sinks:\n");
	for (int i = 0; i < CONFIG_MAX_SINKS + 1; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, "    - type: stdout\n");
	expect_error(big, "t.yaml:19: alerting.sinks: at most 16 sinks");
	used = (size_t)snprintf(big, sizeof(big), "collectors:\n");
	for (int i = 0; i < CONFIG_MAX_COLLECTORS + 1; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, "  - { id: c%d }\n", i);
	expect_error(big, "t.yaml:10: at most 8 collectors");
	used = (size_t)snprintf(big, sizeof(big), "collectors:\n  - id: x\n    args: [");
	for (int i = 0; i < CONFIG_MAX_ARGS + 1; i++)
		used += (size_t)snprintf(big + used, sizeof(big) - used, "%sa", i ? ", " : "");
	(void)snprintf(big + used, sizeof(big) - used, "]\n");
	expect_error(big, "t.yaml:3: collectors: at most 32 args");
}

/* Each malformed collectors.json is refused with the file's name. */
static void
test_collectors_json_errors(void **state)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "[]", "expected {\"collectors\": [...]}" },
		{ "{\"collectors\":[], \"x\":1}", "expected {\"collectors\": [...]}" },
		{ "{\"collectors\":[5]}", "collectors[0]: expected an object" },
		{ "{\"collectors\":[{\"id\":5}]}", "collectors[0].id: expected a string" },
		{ "{\"collectors\":[{\"id\":\"a\",\"spawn\":1}]}",
		  "collectors[0].spawn: expected true or false" },
		{ "{\"collectors\":[{\"id\":\"a\",\"args\":\"x\"}]}",
		  "collectors[0].args: expected a list of strings" },
		{ "{\"collectors\":[{\"id\":\"a\",\"args\":[1]}]}",
		  "collectors[0].args: expected strings" },
		{ "{\"collectors\":[{\"binary\":\"a\"}]}",
		  "collectors[0]: a collector needs an id" },
		{ "{\"collectors\":[{\"id\":\"a\"},{\"id\":\"a\"},{\"id\":\"a\"},{\"id\":\"a\"},"
		  "{\"id\":\"a\"},{\"id\":\"a\"},{\"id\":\"a\"},{\"id\":\"a\"},{\"id\":\"a\"}]}",
		  "at most 8 collectors" },
	};
	struct de_config cfg;
	struct errbuf err;
	struct tmpdir t;
	char json[PATH_MAX], yaml[PATH_MAX + 32];

	(void)state;
	tmpdir_make(&t);
	(void)snprintf(json, sizeof(json), "%s/c.json", t.path);
	/* An absolute path is used as it is. */
	(void)snprintf(yaml, sizeof(yaml), "collectors: %s\n", json);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		write_text(json, cases[i].json);
		assert_int_equal(config_defaults(&cfg), 0);
		assert_int_equal(config_parse_string(&cfg, "t.yaml", yaml, strlen(yaml), &err),
		                 -EINVAL);
		if (strstr(err.msg, cases[i].msg) == NULL ||
		    strncmp(err.msg, "t.yaml:1: ", 10) != 0)
			fail_msg("case %zu: %s", i, err.msg);
		config_free(&cfg);
	}
	rm_rf(t.path);
}

/* Environment values are checked like file values, lists included. */
static void
test_env_lists(void **state)
{
	struct de_config cfg;
	struct errbuf err;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	setenv("DAEMONEYE_DETECTION_RULES_DIRS", "::", 1);
	assert_int_equal(config_apply_env(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "DAEMONEYE_DETECTION_RULES_DIRS: expected at least one entry");
	setenv("DAEMONEYE_DETECTION_RULES_DIRS",
	       "/1:/2:/3:/4:/5:/6:/7:/8:/9:/10:/11:/12:/13:/14:/15:/16:/17", 1);
	assert_int_equal(config_apply_env(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "DAEMONEYE_DETECTION_RULES_DIRS: at most 16 entries");
	unsetenv("DAEMONEYE_DETECTION_RULES_DIRS");
	setenv("DAEMONEYE_AGENT_USER", "", 1);
	assert_int_equal(config_apply_env(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "DAEMONEYE_AGENT_USER: must not be empty");
	unsetenv("DAEMONEYE_AGENT_USER");
	setenv("DAEMONEYE_PROCMOND_WAL_ROTATE_BYTES", "1GiB", 1);
	assert_int_equal(config_apply_env(&cfg, &err), 0);
	assert_true(cfg.procmond.wal_rotate_bytes == 1u << 30);
	unsetenv("DAEMONEYE_PROCMOND_WAL_ROTATE_BYTES");
	/* The list is unchanged by the failed attempts. */
	assert_int_equal(cfg.detection.n_rules_dirs, 1);
	for (int i = 1; i < CONFIG_MAX_RULES_DIRS; i++)
		assert_int_equal(config_append(&cfg, "detection.rules_dirs", "/x", &err), 0);
	assert_int_equal(config_append(&cfg, "detection.rules_dirs", "/x", &err), -EINVAL);
	assert_string_equal(err.msg, "detection.rules_dirs: too many entries");
	config_free(&cfg);
}

/* The shipped example must always load and validate. */
static void
test_example_file(void **state)
{
	const char *root = getenv("DE_SOURCE_ROOT");
	struct de_config cfg;
	struct errbuf err;
	char path[PATH_MAX];

	(void)state;
	if (root == NULL)
		skip();
	(void)snprintf(path, sizeof(path), "%s/config/daemoneye.example.yaml", root);
	if (config_load(path, &cfg, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(cfg.alerting.n_sinks, 2);
	assert_int_equal(cfg.alerting.sinks[1].type, SINK_FILE);
	assert_int_equal(config_validate(&cfg, &err), 0);
	config_free(&cfg);
}

/* Sizes: units, and values that do not fit; cross-field validation of
 * fields a single key cannot leave empty. */
static void
test_sizes_and_validate_edges(void **state)
{
	struct de_config cfg;
	struct errbuf err = { { 0 } };
	struct collector_config *c;
	char *saved_id;
	size_t n_dirs;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "64KiB", &err), 0);
	assert_int_equal(cfg.procmond.wal_rotate_bytes, 65536);
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "1MB", &err), 0);
	assert_int_equal(cfg.procmond.wal_rotate_bytes, 1000000);
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "2G", &err), 0);
	assert_int_equal(cfg.procmond.wal_rotate_bytes, 2ull << 30);
	/* Too many digits, more than 64 bits, overflow by the unit: out of range. */
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes",
	                            "99999999999999999999999999999999999", &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "must be between 65536 and"));
	assert_int_equal(
	    config_set(&cfg, "procmond.wal_rotate_bytes", "18446744073709551616", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "must be between 65536 and"));
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "20000000TiB", &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "must be between 65536 and"));
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "1XB", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "expected a size (e.g. 4096 or 64MiB), got '1XB'"));
	assert_int_equal(config_set(&cfg, "procmond.wal_rotate_bytes", "K", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "got 'K'"));
	assert_int_equal(cfg.procmond.wal_rotate_bytes, 2ull << 30); /* unchanged by errors */
	assert_int_equal(config_validate(&cfg, &err), 0);

	/* A collector without an id. */
	c = &cfg.collectors[0];
	saved_id = c->id;
	c->id = NULL;
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "configuration: collectors[0]: needs an id and a binary");
	c->id = saved_id;
	/* A file sink without a path, named by its index. */
	assert_true(cfg.alerting.n_sinks < CONFIG_MAX_SINKS);
	assert_int_equal(config_sink_defaults(&cfg.alerting.sinks[cfg.alerting.n_sinks], SINK_FILE),
	                 0);
	cfg.alerting.n_sinks++;
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "alerting.sinks[1]: a file sink needs a path"));
	/* (kept: config_free() frees it) */
	/* No rules directory. */
	n_dirs = cfg.detection.n_rules_dirs;
	cfg.detection.n_rules_dirs = 0;
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "configuration: detection.rules_dirs: at least one directory");
	cfg.detection.n_rules_dirs = n_dirs;
	/* No data directory. */
	free(cfg.agent.data_dir);
	cfg.agent.data_dir = NULL;
	assert_int_equal(config_validate(&cfg, &err), -EINVAL);
	assert_string_equal(err.msg, "configuration: agent.data_dir and agent.user must be set");
	config_free(&cfg);
	config_free(NULL);
}

/* YAML shapes: an empty section, a list with too many entries (named with
 * its line), a syntax error in a second document. */
static void
test_yaml_shapes(void **state)
{
	static const char empty_section[] = "agent:\ndetection:\n  rule_timeout_ms: 250\n";
	static const char second_bad[] = "agent:\n  user: x\n---\n[unclosed\n";
	struct de_config cfg;
	struct errbuf err = { { 0 } };
	char yaml[512];
	size_t l;

	(void)state;
	assert_int_equal(config_defaults(&cfg), 0);
	assert_int_equal(
	    config_parse_string(&cfg, "t.yaml", empty_section, strlen(empty_section), &err), 0);
	assert_int_equal(cfg.detection.rule_timeout_ms, 250);
	assert_non_null(cfg.agent.user); /* an empty section keeps the defaults */

	l = (size_t)snprintf(yaml, sizeof(yaml), "detection:\n  rules_dirs:\n");
	for (int i = 0; i < 17; i++)
		l += (size_t)snprintf(yaml + l, sizeof(yaml) - l, "    - /r%d\n", i);
	assert_int_equal(config_parse_string(&cfg, "t.yaml", yaml, l, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "t.yaml:3:"));
	assert_non_null(strstr(err.msg, "at most 16 entries"));

	assert_int_equal(config_parse_string(&cfg, "t.yaml", second_bad, strlen(second_bad), &err),
	                 -EINVAL);
	assert_non_null(strstr(err.msg, "YAML syntax error"));
	assert_int_equal(cfg.detection.rule_timeout_ms, 250); /* unchanged by the failures */
	config_free(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_env_and_files),
		cmocka_unit_test(test_collectors_json),
		cmocka_unit_test(test_set_and_validate),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_more_errors),
		cmocka_unit_test(test_collectors_json_errors),
		cmocka_unit_test(test_env_lists),
		cmocka_unit_test(test_sizes_and_validate_edges),
		cmocka_unit_test(test_yaml_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
