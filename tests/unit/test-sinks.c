/* The sinks on their own: RFC 4180 CSV quoting, the human line (colour and
 * control characters), file rotation by size, syslog over a local datagram
 * socket (RFC 3164 header) and over TCP (RFC 5424 + octet counting). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/sink.h"
#include "store.h"
#include "timeutil.h"

static const char alert_json[] =
    "{\"alert_id\":\"0192f6c1-0000-7000-8000-000000000001\","
    "\"timestamp\":\"2026-11-25T17:00:00.123Z\",\"host\":\"box\","
    "\"rule_id\":\"exec-from-tmp\",\"rule_name\":\"Exec from tmp\",\"severity\":\"high\","
    "\"category\":\"execution\",\"title\":\"Exec from tmp: evil\",\"description\":\"d\","
    "\"dedup_key\":\"exec-from-tmp:42:1\",\"process\":{\"pid\":42,\"ppid\":1,"
    "\"name\":\"evil\",\"executable_path\":\"/tmp/evil\","
    "\"command_line\":\"/tmp/evil \\\"a,b\\\"\\n\\u001b[31mred\",\"user_id\":0,"
    "\"start_time\":\"2026-11-25T16:59:59.000Z\",\"executable_hash\":null},\"match\":{}}";

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-sinks-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
csv_is(const char *in, const char *want)
{
	struct sink_buf b = { 0 };

	assert_int_equal(sink_csv_field(&b, in), 0);
	assert_string_equal(b.p ? b.p : "", want);
	free(b.p);
}

static void
test_csv_quoting(void **state)
{
	char *line = NULL;
	size_t n;

	(void)state;
	csv_is("plain", "plain");
	csv_is("", "");
	csv_is("a,b", "\"a,b\"");
	csv_is("say \"hi\"", "\"say \"\"hi\"\"\"");
	csv_is("two\nlines", "\"two\nlines\"");
	csv_is("cr\rhere", "\"cr\rhere\"");
	csv_is("\"", "\"\"\"\"");
	csv_is("spaces stay ", "spaces stay ");
	/* Formulas (OWASP CSV injection): quoted behind a single quote. */
	csv_is("=cmd|' /C calc'!A0", "\"'=cmd|' /C calc'!A0\"");
	csv_is("+1+2", "\"'+1+2\"");
	csv_is("-2+3", "\"'-2+3\"");
	csv_is("@SUM(A1)", "\"'@SUM(A1)\"");
	csv_is("\tx", "\"'\tx\"");
	csv_is("\rx", "\"'\rx\"");
	csv_is("=\"a\",b", "\"'=\"\"a\"\",b\"");
	csv_is("-", "\"'-\"");
	csv_is("-e5", "\"'-e5\"");
	csv_is("1e", "1e"); /* does not start with a formula character */
	/* Plain numbers stay numbers. */
	csv_is("-5", "-5");
	csv_is("+1.25", "+1.25");
	csv_is("-3e-7", "-3e-7");
	csv_is("a=b", "a=b");
	assert_int_equal(
	    sink_format_line(SINK_FORMAT_CSV, alert_json, strlen(alert_json), false, &line, &n), 0);
	assert_int_equal(n, strlen(line));
	assert_string_equal(line, "0192f6c1-0000-7000-8000-000000000001,2026-11-25T17:00:00.123Z,"
	                          "high,exec-from-tmp,Exec from tmp,execution,Exec from tmp: evil,"
	                          "42,1,evil,/tmp/evil,\"/tmp/evil \"\"a,b\"\"\n\033[31mred\",0,"
	                          "exec-from-tmp:42:1\r\n");
	free(line);
	/* The header has as many columns as a line. */
	assert_non_null(strstr(sink_csv_header, "alert_id,timestamp,severity"));
	assert_int_equal(sink_csv_header[strlen(sink_csv_header) - 1], '\n');
}

static void
test_human_and_json(void **state)
{
	char *line = NULL;
	size_t n;

	(void)state;
	assert_int_equal(
	    sink_format_line(SINK_FORMAT_HUMAN, alert_json, strlen(alert_json), false, &line, &n),
	    0);
	assert_non_null(strstr(line, "2026-11-25T17:00:00.123Z HIGH exec-from-tmp: "));
	assert_non_null(strstr(line, "pid=42"));
	/* One line; no escape sequence from the command line reaches the terminal. */
	assert_null(strchr(line, '\033'));
	assert_ptr_equal(strchr(line, '\n'), line + n - 1);
	free(line);
	assert_int_equal(
	    sink_format_line(SINK_FORMAT_HUMAN, alert_json, strlen(alert_json), true, &line, &n),
	    0);
	assert_non_null(strstr(line, " \033[31mHIGH\033[0m "));
	free(line);
	assert_int_equal(
	    sink_format_line(SINK_FORMAT_JSON, alert_json, strlen(alert_json), true, &line, &n), 0);
	assert_int_equal(n, strlen(alert_json) + 1);
	assert_memory_equal(line, alert_json, strlen(alert_json));
	free(line);
	assert_int_equal(sink_format_line(SINK_FORMAT_HUMAN, "[1]", 3, false, &line, &n), -EINVAL);
}

static int
lines_in(const char *path)
{
	char buf[8192];
	FILE *f = fopen(path, "re");
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f) != NULL)
		n++;
	fclose(f);
	return n;
}

static void
test_file_rotation(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_JSON };
	struct errbuf err;
	char path[128], rot[160];
	void *st = NULL;
	size_t line = strlen(alert_json) + 1;
	struct stat sb;

	(void)state;
	snprintf(path, sizeof(path), "%s/alerts.jsonl", tmpdir);
	sc.path = path;
	sc.max_bytes = 3 * line; /* three alerts per file */
	sc.max_files = 2;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err),
		                 0);
	sink_file_ops.close(st);
	/* 10 alerts: path.2 and path.1 hold 3 each, path 1; the oldest 3 rotated out. */
	assert_int_equal(lines_in(path), 1);
	snprintf(rot, sizeof(rot), "%s.1", path);
	assert_int_equal(lines_in(rot), 3);
	assert_int_equal(stat(rot, &sb), 0);
	assert_true((uint64_t)sb.st_size <= sc.max_bytes);
	snprintf(rot, sizeof(rot), "%s.2", path);
	assert_int_equal(lines_in(rot), 3);
	snprintf(rot, sizeof(rot), "%s.3", path);
	assert_int_equal(lines_in(rot), -1);

	/* Rotated from outside (logrotate's rename + create): the next line
	 * goes to a new file at path, not into the moved one. */
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	snprintf(rot, sizeof(rot), "%s.moved", path);
	assert_int_equal(rename(path, rot), 0);
	assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	assert_int_equal(lines_in(path), 1);
	assert_int_equal(lines_in(rot), 2);
	sink_file_ops.close(st);

	sc.path = NULL;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), -EINVAL);
}

static void
test_syslog_local(void **state)
{
	struct sink_config sc = { .type = SINK_SYSLOG, .facility = "local3" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char server[160], buf[8192];
	struct errbuf err;
	void *st = NULL;
	ssize_t n;
	int fd;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/log", tmpdir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(server, sizeof(server), "unix:%s", sa.sun_path);
	sc.server = server;
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	n = recv(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	/* local3 (19) * 8 + err (3) = 155: high maps to err. */
	assert_memory_equal(buf, "<155>", 5);
	assert_non_null(strstr(buf, " daemoneye["));
	assert_non_null(strstr(buf, "]: {\"alert_id\""));
	sink_syslog_ops.close(st);
	close(fd);

	sc.facility = "nonsense";
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), -EINVAL);
	sc.facility = NULL;
	sc.server = "udp://127.0.0.1:514";
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), -EINVAL);
	sc.server = "tcp://:514";
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), -EINVAL);
	sc.server = "tcp://[::1:514";
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), -EINVAL);
	sc.server = "tls://[::1]";
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	sink_syslog_ops.close(st);
}

static void
test_syslog_tcp(void **state)
{
	struct sink_config sc = { .type = SINK_SYSLOG };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char server[64], buf[16384];
	struct errbuf err;
	size_t got = 0, len;
	void *st = NULL;
	char *sp, *msg;
	int lfd, cfd;

	(void)state;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(server, sizeof(server), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	sc.server = server;
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	/* The kernel accepts and acknowledges before accept(): deliver returns. */
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	cfd = accept(lfd, NULL, NULL);
	assert_true(cfd >= 0);
	while (got < sizeof(buf) - 1) {
		ssize_t n = recv(cfd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	/* Octet counting: "LEN SP MSG", LEN the exact size of MSG. */
	sp = strchr(buf, ' ');
	assert_non_null(sp);
	len = strtoul(buf, NULL, 10);
	msg = sp + 1;
	assert_int_equal(len, got - (size_t)(msg - buf));
	/* auth (4) * 8 + err (3) = 35, version 1, then the alert's timestamp and host. */
	assert_memory_equal(msg, "<35>1 2026-11-25T17:00:00.123Z box daemoneye ", 45);
	assert_non_null(strstr(msg, " alert [daemoneye@32473 alert_id=\"0192f6c1-0000-7000-8000-"
	                            "000000000001\" rule_id=\"exec-from-tmp\" severity=\"high\" "
	                            "pid=\"42\"] {\"alert_id\""));
	close(cfd);
	close(lfd);
	/* Receiver gone: the delivery fails (and the caller spools). */
	assert_true(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err) < 0);
	assert_true(strlen(err.msg) > 0);
	sink_syslog_ops.close(st);
}

static char *
slurp(const char *path)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return NULL;
	buf = calloc(1, 65536);
	if (buf != NULL)
		n = fread(buf, 1, 65535, f);
	fclose(f);
	if (buf != NULL)
		buf[n] = '\0';
	return buf;
}

/* The file sink's refusals and its other paths: a bad configuration, CSV
 * with its header once per file, max_files 0 (the file is truncated instead
 * of rotated), text that is not an alert (rejected, not retried) and a
 * directory that does not exist (a retried delivery failure). */
static void
test_file_edges(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_CSV };
	struct errbuf err;
	char path[128], rot[160], longpath[5000];
	void *st = NULL;
	char *text;
	const char *p;
	int headers = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/alerts.csv", tmpdir);
	sc.path = path;
	sc.max_files = 1001;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max_files"));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	sc.path = longpath;
	sc.max_files = 2;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too long"));
	sc.path = "";
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), -EINVAL);

	/* CSV: the header opens the file, then one CRLF line per alert. */
	sc.path = path;
	sc.max_files = 0;
	sc.max_bytes = 1; /* every alert after the first truncates the file */
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_file_ops.deliver(st, "[1]", 3, &err), SINK_REJECTED);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err),
		                 0);
	sink_file_ops.close(st);
	text = slurp(path);
	assert_non_null(text);
	assert_memory_equal(text, sink_csv_header, strlen(sink_csv_header));
	for (p = text; (p = strstr(p, "alert_id,timestamp")) != NULL; p++)
		headers++;
	assert_int_equal(headers, 1);
	/* Only the last alert is left: max_files 0 keeps no rotated file. */
	p = strstr(text, "exec-from-tmp:42:1\r\n");
	assert_non_null(p);
	assert_null(strstr(p + 1, "exec-from-tmp:42:1\r\n"));
	free(text);
	snprintf(rot, sizeof(rot), "%s.1", path);
	assert_int_equal(lines_in(rot), -1);

	/* A directory that does not exist: a delivery error, retried later. */
	snprintf(path, sizeof(path), "%s/missing/alerts.jsonl", tmpdir);
	sc.format = SINK_FORMAT_JSON;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err), -ENOENT);
	assert_non_null(strstr(err.msg, "open "));
	/* The directory appears: the next delivery opens the file. */
	snprintf(rot, sizeof(rot), "%s/missing", tmpdir);
	assert_int_equal(mkdir(rot, 0700), 0);
	assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	assert_int_equal(lines_in(path), 1);
	sink_file_ops.close(st);
	sink_file_ops.close(NULL);
}

/* Points stdout at a fresh pipe; returns its read end and keeps the old
 * stdout in *saved. */
static int
stdout_to_pipe(int *saved)
{
	int p[2];

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	*saved = dup(STDOUT_FILENO);
	dup2(p[1], STDOUT_FILENO);
	close(p[1]);
	return p[0];
}

static void
stdout_restore(int saved)
{
	dup2(saved, STDOUT_FILENO);
	close(saved);
}

/* The stdout sink: CSV header once, then lines; a set abort flag gives up
 * with -ECANCELED; a reader that went away is -EPIPE; non-alert text is
 * rejected. Results are collected before stdout is restored, then checked. */
static void
test_stdout_sink(void **state)
{
	struct sink_config sc = { .type = SINK_STDOUT, .format = SINK_FORMAT_CSV };
	atomic_bool abort_flag = false;
	struct errbuf err;
	void *st = NULL;
	int saved, rfd, r1, r2, r3, r4, r5;
	char buf[8192];
	const char *p;
	ssize_t n;

	(void)state;
	assert_int_equal(setenv("NO_COLOR", "1", 1), 0);
	assert_int_equal(sink_stdout_ops.open(&sc, &st, &err), 0);
	sink_stdout_ops.set_abort(st, &abort_flag);
	rfd = stdout_to_pipe(&saved);
	assert_true(rfd >= 0);
	r1 = sink_stdout_ops.deliver(st, alert_json, strlen(alert_json), &err);
	r2 = sink_stdout_ops.deliver(st, alert_json, strlen(alert_json), &err);
	r3 = sink_stdout_ops.deliver(st, "\"text\"", 6, &err);
	atomic_store(&abort_flag, true);
	r4 = sink_stdout_ops.deliver(st, alert_json, strlen(alert_json), &err);
	atomic_store(&abort_flag, false);
	stdout_restore(saved);
	assert_int_equal(r1, 0);
	assert_int_equal(r2, 0);
	assert_int_equal(r3, SINK_REJECTED);
	assert_int_equal(r4, -ECANCELED);
	assert_non_null(strstr(err.msg, "write to stdout"));
	n = read(rfd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(rfd);
	assert_memory_equal(buf, sink_csv_header, strlen(sink_csv_header));
	assert_non_null(strstr(buf + strlen(sink_csv_header), "exec-from-tmp:42:1\r\n"));
	assert_null(strstr(buf + strlen(sink_csv_header), "alert_id,timestamp"));
	/* Two alert lines after the header, nothing from the cancelled one. */
	p = buf;
	for (int i = 0; i < 3; i++) {
		p = strstr(p, "exec-from-tmp:42:1\r\n");
		if (i < 2) {
			assert_non_null(p);
			p++;
		} else {
			assert_null(p);
		}
	}

	/* The reader is gone: POLLERR on the pipe, -EPIPE, no SIGPIPE. */
	rfd = stdout_to_pipe(&saved);
	assert_true(rfd >= 0);
	close(rfd);
	r5 = sink_stdout_ops.deliver(st, alert_json, strlen(alert_json), &err);
	stdout_restore(saved);
	assert_int_equal(r5, -EPIPE);
	sink_stdout_ops.close(st);
	assert_int_equal(unsetenv("NO_COLOR"), 0);
}

/* One line is bounded (1 MiB): a larger alert cannot be formatted. */
static void
test_line_bound(void **state)
{
	struct sink_buf b = { 0 };
	size_t big = 1024 * 1024 + 1;
	char *blob = malloc(big);
	char *line = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(blob);
	memset(blob, 'x', big);
	assert_int_equal(sink_buf_add(&b, blob, big), -E2BIG);
	assert_int_equal(sink_buf_add(&b, blob, big - 2), 0);
	assert_int_equal(sink_buf_add(&b, "yy", 2), -E2BIG);
	assert_int_equal(b.len, big - 2);
	free(b.p);
	assert_int_equal(sink_format_line(SINK_FORMAT_JSON, blob, big, false, &line, &n), -E2BIG);
	assert_null(line);
	/* A human or CSV line over the bound fails too, and sets nothing. */
	{
		size_t jn = big + 64;
		char *json = malloc(jn);
		int k;

		assert_non_null(json);
		k = snprintf(json, jn, "{\"severity\":\"low\",\"title\":\"%.*s\"}", (int)(big - 1),
		             blob);
		assert_true(k > 0 && (size_t)k < jn);
		assert_true(sink_format_line(SINK_FORMAT_HUMAN, json, (size_t)k, false, &line, &n) <
		            0);
		assert_null(line);
		assert_true(sink_format_line(SINK_FORMAT_CSV, json, (size_t)k, false, &line, &n) <
		            0);
		assert_null(line);
		free(json);
	}
	free(blob);
}

/* Write and rotation failures: the line is not counted as delivered and the
 * error names the file, so the worker retries it. */
static void
test_file_failures(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_CSV };
	struct errbuf err;
	char path[128], rot[160], inner[200];
	void *st = NULL;
	int fd;

	(void)state;
	/* /dev/full takes the open and refuses every write with ENOSPC (a
	 * container without it skips this part). */
	if (access("/dev/full", W_OK) == 0) {
		sc.path = "/dev/full";
		assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
		assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err),
		                 -ENOSPC);
		assert_non_null(strstr(err.msg, "write /dev/full"));
		sink_file_ops.close(st);
		sc.format = SINK_FORMAT_JSON;
		assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
		assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err),
		                 -ENOSPC);
		/* Reopened and refused again: nothing is lost, nothing pretends. */
		assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err),
		                 -ENOSPC);
		sink_file_ops.close(st);
	}

	/* The oldest rotated name is a non-empty directory: rotation fails and
	 * the file keeps its one line. */
	snprintf(path, sizeof(path), "%s/alerts.jsonl", tmpdir);
	snprintf(rot, sizeof(rot), "%s.1", path);
	assert_int_equal(mkdir(rot, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/keep", rot);
	fd = open(inner, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	sc.path = path;
	sc.max_files = 1;
	sc.max_bytes = 1;
	assert_int_equal(sink_file_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	assert_true(sink_file_ops.deliver(st, alert_json, strlen(alert_json), &err) < 0);
	assert_non_null(strstr(err.msg, "rotate "));
	sink_file_ops.close(st);
	assert_int_equal(lines_in(path), 1);
}

static uint64_t
health_u(struct sink *s, const char *key)
{
	json_t *h = sink_health_json(s);
	uint64_t v;

	assert_non_null(h);
	v = (uint64_t)json_integer_value(json_object_get(h, key));
	json_decref(h);
	return v;
}

/* sink_new refuses what it cannot run, names the target without secrets. */
static void
test_worker_setup(void **state)
{
	struct sink_config sc = { .type = SINK_WEBHOOK };
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;
	json_t *h;

	(void)state;
	sc.url = "https://user:secret@hooks.example.com/in?token=abc#frag";
	assert_int_equal(sink_new(&sc, "webhook-1", NULL, &s, &err), 0);
	assert_string_equal(sink_name(s), "webhook-1");
	h = sink_health_json(s);
	assert_non_null(h);
	assert_string_equal(json_string_value(json_object_get(h, "target")),
	                    "https://hooks.example.com/in");
	assert_string_equal(json_string_value(json_object_get(h, "type")), "webhook");
	assert_string_equal(json_string_value(json_object_get(h, "state")), "up");
	assert_false(json_is_true(json_object_get(h, "on_disk_spool")));
	json_decref(h);
	sink_free(s);
	sink_free(NULL);

	s = NULL;
	sc.type = (enum sink_type)99;
	assert_int_equal(sink_new(&sc, "odd", NULL, &s, &err), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err.msg, "unknown sink type"));
	sc = (struct sink_config){ .type = SINK_FILE };
	assert_int_equal(sink_new(&sc, "file-1", NULL, &s, &err), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err.msg, "alert sink file-1"));
}

/* A worker that never runs: the queue is bounded, and what does not fit is
 * counted as dropped_queue_full. */
static void
test_worker_queue_full(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_JSON };
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/q.jsonl", tmpdir);
	sc.path = path;
	assert_int_equal(sink_new(&sc, "file-q", NULL, &s, &err), 0);
	for (int i = 0; i < 16384 + 3; i++)
		sink_enqueue(s, NULL, "{}");
	assert_int_equal(health_u(s, "queue_depth"), 16384);
	assert_int_equal(health_u(s, "dropped_queue_full"), 3);
	assert_int_equal(health_u(s, "dropped"), 3);
	/* Not started: waiting for it times out instead of hanging. */
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 50, false), -ETIMEDOUT);
	sink_request_stop(s);
	sink_free(s);
	assert_int_equal(lines_in(path), -1);
}

/* Alerts the receiver refuses for good are counted as rejected and not
 * retried, whether they come from the queue or from the spool. */
static void
test_worker_rejected(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_CSV };
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;
	char path[128], dir[128], spool[128];
	json_t *h;

	(void)state;
	snprintf(path, sizeof(path), "%s/a.csv", tmpdir);
	sc.path = path;
	assert_int_equal(sink_new(&sc, "file-r", NULL, &s, &err), 0);
	assert_int_equal(sink_start(s, &err), 0);
	sink_enqueue(s, NULL, "[1]");
	sink_enqueue(s, NULL, alert_json);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, false), 0);
	assert_int_equal(health_u(s, "rejected"), 1);
	assert_int_equal(health_u(s, "delivered"), 1);
	assert_int_equal(health_u(s, "failed"), 0);
	h = sink_health_json(s);
	assert_non_null(strstr(json_string_value(json_object_get(h, "last_error")), "format"));
	json_decref(h);
	sink_free(s);
	assert_int_equal(lines_in(path), 3); /* header + one alert over two lines */

	/* Down first: both wait in the spool; the bad one is rejected on replay. */
	snprintf(dir, sizeof(dir), "%s/later", tmpdir);
	snprintf(path, sizeof(path), "%s/later/a.csv", tmpdir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	assert_int_equal(mkdir(spool, 0700), 0);
	sc.spool_max_bytes = 1 << 20;
	assert_int_equal(sink_new(&sc, "file-s", spool, &s, &err), 0);
	assert_int_equal(sink_start(s, &err), 0);
	sink_enqueue(s, NULL, alert_json);
	sink_enqueue(s, NULL, "[2]");
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, false), 0);
	assert_int_equal(health_u(s, "spooled"), 2);
	assert_true(health_u(s, "failed") >= 1);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 10000, true), 0);
	assert_int_equal(health_u(s, "delivered"), 1);
	assert_int_equal(health_u(s, "rejected"), 1);
	assert_int_equal(health_u(s, "spool_depth"), 0);
	sink_free(s);
	assert_int_equal(lines_in(path), 3);
}

/* No spool and the sink down: the memory backlog holds 4096 alerts, the rest
 * are dropped and counted. */
static void
test_worker_memory_backlog_full(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_JSON };
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/missing/a.jsonl", tmpdir);
	sc.path = path;
	assert_int_equal(sink_new(&sc, "file-m", NULL, &s, &err), 0);
	assert_int_equal(sink_start(s, &err), 0);
	for (int i = 0; i < 4096 + 4; i++)
		sink_enqueue(s, NULL, "{\"n\":1}");
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 10000, false), 0);
	assert_int_equal(health_u(s, "spooled"), 4096);
	assert_int_equal(health_u(s, "dropped_spool_full"), 4);
	assert_int_equal(health_u(s, "spool_depth"), 4096);
	assert_int_equal(health_u(s, "delivered"), 0);
	sink_free(s);
}

/* A one-thread HTTP receiver: answers each POST with the next status and
 * keeps the last body. */
struct http_srv {
	int lfd;
	int statuses[4];
	int n;
	char body[8192];
};

static void *
http_serve(void *arg)
{
	struct http_srv *h = arg;

	for (int i = 0; i < h->n; i++) {
		char req[16384], resp[128];
		size_t got = 0;
		char *end = NULL;
		int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return NULL;
		for (;;) {
			ssize_t k = recv(fd, req + got, sizeof(req) - 1 - got, 0);
			const char *cl;

			if (k <= 0)
				break;
			got += (size_t)k;
			req[got] = '\0';
			end = strstr(req, "\r\n\r\n");
			cl = strcasestr(req, "Content-Length:");
			if (end != NULL && cl != NULL &&
			    got >= (size_t)(end + 4 - req) + strtoul(cl + 15, NULL, 10))
				break;
		}
		if (end != NULL)
			snprintf(h->body, sizeof(h->body), "%s", end + 4);
		snprintf(resp, sizeof(resp),
		         "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		         h->statuses[i]);
		(void)send(fd, resp, strlen(resp), MSG_NOSIGNAL);
		close(fd);
	}
	return NULL;
}

/* The webhook sink against a local receiver: 2xx delivers, 4xx is refused
 * for good, 5xx is retried, no receiver is a retried failure, and a set
 * abort flag ends a delivery that waits for an answer. */
static void
test_webhook(void **state)
{
	struct sink_config sc = { .type = SINK_WEBHOOK, .timeout_ms = 5000 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct http_srv h = { .statuses = { 200, 400, 503 }, .n = 3 };
	socklen_t sl = sizeof(sa);
	atomic_bool abort_flag = false;
	struct errbuf err;
	char url[64];
	void *st = NULL;
	pthread_t t;
	int port;

	(void)state;
	assert_int_equal(setenv("NO_PROXY", "*", 1), 0);
	assert_int_equal(setenv("no_proxy", "*", 1), 0);
	sc.url = "ftp://example.com/";
	assert_int_equal(sink_webhook_ops.open(&sc, &st, &err), -EINVAL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(h.lfd >= 0);
	assert_int_equal(bind(h.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(h.lfd, 4), 0);
	assert_int_equal(getsockname(h.lfd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
	sc.url = url;
	assert_int_equal(sink_webhook_ops.open(&sc, &st, &err), 0);
	sink_webhook_ops.set_abort(st, &abort_flag);
	assert_int_equal(pthread_create(&t, NULL, http_serve, &h), 0);
	assert_int_equal(sink_webhook_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	assert_int_equal(sink_webhook_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 SINK_REJECTED);
	assert_non_null(strstr(err.msg, "HTTP 400"));
	assert_int_equal(sink_webhook_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -EAGAIN);
	assert_non_null(strstr(err.msg, "HTTP 503"));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(h.body, alert_json);

	/* Accepted by the kernel, never answered: the abort flag ends it. */
	atomic_store(&abort_flag, true);
	assert_int_equal(sink_webhook_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -ECANCELED);
	atomic_store(&abort_flag, false);
	close(h.lfd);
	/* Nobody listens any more: a failure to retry. */
	assert_int_equal(sink_webhook_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -ECOMM);
	assert_non_null(strstr(err.msg, "POST http://127.0.0.1:"));
	sink_webhook_ops.close(st);
	sink_webhook_ops.close(NULL);
}

/* Accepts one connection, answers with bytes that are not TLS, closes. */
static void *
not_tls_server(void *arg)
{
	int lfd = *(int *)arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	char buf[4096];

	if (fd < 0)
		return NULL;
	(void)recv(fd, buf, sizeof(buf), 0); /* the ClientHello */
	(void)send(fd, "HTTP/1.0 400 Bad Request\r\n\r\n", 28, MSG_NOSIGNAL);
	close(fd);
	return NULL;
}

static int
listen_loopback(int *ret_port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*ret_port = ntohs(sa.sin_port);
	return fd;
}

/* Syslog failures: not an alert, an alert over the syslog size limit, a
 * local socket path too long or missing or gone, a TCP receiver that is not
 * listening, and a TLS peer that does not speak TLS. */
static void
test_syslog_edges(void **state)
{
	struct sink_config sc = { .type = SINK_SYSLOG };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char server[200], *big, *bigjson;
	struct errbuf err;
	void *st = NULL;
	pthread_t t;
	int fd, lfd, port;
	size_t n;

	(void)state;
	/* A long path: "unix:" + 150 characters, over sun_path. */
	memset(server, 'x', sizeof(server) - 1);
	server[sizeof(server) - 1] = '\0';
	memcpy(server, "unix:/", 6);
	sc.server = server;
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, "[1]", 3, &err), SINK_REJECTED);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -ENAMETOOLONG);
	sink_syslog_ops.close(st);
	sink_syslog_ops.close(NULL);

	/* A receiver that goes away between two alerts. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/log", tmpdir);
	snprintf(server, sizeof(server), "unix:%s", sa.sun_path);
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -ENOENT);
	assert_non_null(strstr(err.msg, "connect "));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err), 0);
	/* Over 256 KiB once formatted: refused for good, nothing sent. */
	n = 300 * 1024;
	big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	bigjson = malloc(n + 200);
	assert_non_null(bigjson);
	snprintf(bigjson, n + 200, "{\"severity\":\"low\",\"rule_id\":\"r\",\"title\":\"%s\"}",
	         big);
	assert_int_equal(sink_syslog_ops.deliver(st, bigjson, strlen(bigjson), &err),
	                 SINK_REJECTED);
	assert_non_null(strstr(err.msg, "over the syslog limit"));
	free(big);
	free(bigjson);
	close(fd);
	assert_true(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err) < 0);
	assert_non_null(strstr(err.msg, "send to "));
	sink_syslog_ops.close(st);

	/* TCP: nobody listens on the port any more. */
	lfd = listen_loopback(&port);
	close(lfd);
	snprintf(server, sizeof(server), "tcp://127.0.0.1:%d", port);
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "connect 127.0.0.1:"));
	sink_syslog_ops.close(st);

	/* TLS to a peer that answers in plain text: the handshake fails. */
	lfd = listen_loopback(&port);
	snprintf(server, sizeof(server), "tls://127.0.0.1:%d", port);
	assert_int_equal(sink_syslog_ops.open(&sc, &st, &err), 0);
	assert_int_equal(pthread_create(&t, NULL, not_tls_server, &lfd), 0);
	assert_int_equal(sink_syslog_ops.deliver(st, alert_json, strlen(alert_json), &err),
	                 -EPROTO);
	assert_non_null(strstr(err.msg, "TLS to 127.0.0.1:"));
	assert_int_equal(pthread_join(t, NULL), 0);
	close(lfd);
	sink_syslog_ops.close(st);
}

/* The spool loses its segment file under a down sink: the replay cannot
 * read it, the sink stays down with the reason, and nothing spins. */
static void
test_worker_spool_unreadable(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_JSON };
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;
	char path[128], spool[128], seg[200];
	bool seen = false;
	json_t *h;

	(void)state;
	snprintf(path, sizeof(path), "%s/missing/a.jsonl", tmpdir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	assert_int_equal(mkdir(spool, 0700), 0);
	sc.path = path;
	sc.spool_max_bytes = 1 << 20;
	assert_int_equal(sink_new(&sc, "file-u", spool, &s, &err), 0);
	assert_int_equal(sink_start(s, &err), 0);
	sink_enqueue(s, NULL, alert_json);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, false), 0);
	assert_int_equal(health_u(s, "spooled"), 1);
	/* The first retry is 250 ms away: remove the segment before it. */
	snprintf(seg, sizeof(seg), "%s/file-u/seg-%016x", spool, 1);
	assert_int_equal(unlink(seg), 0);
	for (int i = 0; i < 60 && !seen; i++) {
		const char *e;

		usleep(50 * 1000);
		h = sink_health_json(s);
		e = json_string_value(json_object_get(h, "last_error"));
		seen = e != NULL && strstr(e, "cannot read the spool") != NULL;
		json_decref(h);
	}
	assert_true(seen);
	h = sink_health_json(s);
	assert_string_equal(json_string_value(json_object_get(h, "state")), "down");
	json_decref(h);
	assert_int_equal(health_u(s, "delivered"), 0);
	sink_free(s);
}

/* Stores alert number k (ids and timestamps ascending) and returns its id. */
static void
catch_up_put(struct store *st, int k, char id[40])
{
	uint64_t ts = 1732550000000ull + (uint64_t)k; /* 2024: older than a day */
	struct store_alert a = { .rule_id = "r", .severity = "high", .pid = 100 + k };
	char json[256];

	/* A UUIDv7: its first 48 bits are the timestamp. */
	snprintf(id, 40, "%08" PRIx64 "-%04" PRIx64 "-7000-8000-%012x", ts >> 16, ts & 0xffff,
	         (unsigned)k);
	snprintf(json, sizeof(json), "{\"alert_id\":\"%s\",\"n\":%d}", id, k);
	a.alert_id = id;
	a.timestamp = ts;
	a.json = json;
	assert_int_equal(store_alert_put(st, &a), 0);
}

/* The "n" of every line of the file at path, in order, into ns[]. */
static size_t
catch_up_lines(const char *path, int *ns, size_t max)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return 0;
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		json_t *o = json_loads(line, 0, NULL);

		assert_non_null(o);
		ns[n++] = (int)json_integer_value(json_object_get(o, "n"));
		json_decref(o);
	}
	fclose(f);
	return n;
}

static struct sink *
catch_up_start(const struct sink_config *sc, const char *spool, struct store *st,
               uint64_t want_replayed)
{
	struct errbuf err = { { 0 } };
	struct sink *s = NULL;

	assert_int_equal(sink_new(sc, "file-c", spool, &s, &err), 0);
	assert_int_equal(sink_catch_up_all(&s, 1, st), 0);
	assert_int_equal(health_u(s, "replayed"), want_replayed);
	assert_int_equal(sink_start(s, &err), 0);
	return s;
}

/* At least once across a kill: alerts stored but never finished by a sink
 * (in its memory queue when the agent was SIGKILLed) are spooled again at the
 * next start, in order, after the sink's "delivered through" marker. A new
 * sink is not sent the history; an alert the marker names that retention has
 * trimmed falls back to the time in its UUIDv7. */
static void
test_worker_catch_up(void **state)
{
	struct sink_config sc = { .type = SINK_FILE, .format = SINK_FORMAT_JSON };
	char path[128], spool[128], db[128], id[16][40];
	struct store *st = NULL;
	struct sink *s;
	int ns[32];
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "%s/a.jsonl", tmpdir);
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	snprintf(db, sizeof(db), "%s/events.db", tmpdir);
	assert_int_equal(mkdir(spool, 0700), 0);
	assert_int_equal(store_open(db, STORE_RW, &st), 0);
	sc.path = path;
	sc.max_bytes = 1 << 20;
	sc.max_files = 2;
	sc.spool_max_bytes = 1 << 20;

	catch_up_put(st, 0, id[0]); /* history before the sink existed */
	s = catch_up_start(&sc, spool, st, 0);
	for (int k = 1; k <= 2; k++) {
		catch_up_put(st, k, id[k]);
		sink_enqueue(s, id[k], "{\"n\":0}"); /* the queued copy is not what is replayed */
	}
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, true), 0);
	/* 3..5 stored, then the "kill": they never reach the sink. */
	for (int k = 3; k <= 5; k++)
		catch_up_put(st, k, id[k]);
	sink_free(s);

	s = catch_up_start(&sc, spool, st, 3);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, true), 0);
	catch_up_put(st, 6, id[6]);
	sink_enqueue(s, id[6], "{\"n\":6}");
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, true), 0);
	sink_free(s);
	n = catch_up_lines(path, ns, 32);
	assert_int_equal(n, 6);
	assert_int_equal(ns[0], 0); /* alerts 1, 2 as queued */
	assert_int_equal(ns[1], 0);
	for (int k = 3; k <= 6; k++)
		assert_int_equal(ns[k - 1], k);

	/* A clean restart replays nothing. */
	s = catch_up_start(&sc, spool, st, 0);
	sink_free(s);

	/* Retention trims everything, the marker's alert (6) too; 7 and 8 are
	 * stored and never reach the sink: replayed by the marker's time. */
	while (store_retention_step(st, 1, 1000) > 0)
		;
	catch_up_put(st, 7, id[7]);
	catch_up_put(st, 8, id[8]);
	store_close(st);
	assert_int_equal(store_open(db, STORE_RW, &st), 0);
	s = catch_up_start(&sc, spool, st, 2);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 5000, true), 0);
	sink_free(s);
	n = catch_up_lines(path, ns, 32);
	assert_int_equal(n, 8);
	assert_int_equal(ns[6], 7);
	assert_int_equal(ns[7], 8);

	/* More than a page (64) owed: every one, in order, once. */
	for (int k = 9; k < 9 + 150; k++)
		catch_up_put(st, k, id[9]);
	s = catch_up_start(&sc, spool, st, 150);
	assert_int_equal(sink_wait_idle(s, time_mono_ms() + 10000, true), 0);
	sink_free(s);
	{
		int all[200];

		/* Rotation at 1 MiB keeps everything in one file here. */
		n = catch_up_lines(path, all, 200);
		assert_int_equal(n, 8 + 150);
		for (int k = 9; k < 9 + 150; k++)
			assert_int_equal(all[k - 1], k);
	}
	store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_quoting),
		cmocka_unit_test(test_human_and_json),
		cmocka_unit_test_setup_teardown(test_file_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_syslog_tcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_edges, setup, teardown),
		cmocka_unit_test(test_stdout_sink),
		cmocka_unit_test(test_line_bound),
		cmocka_unit_test_setup_teardown(test_file_failures, setup, teardown),
		cmocka_unit_test(test_worker_setup),
		cmocka_unit_test_setup_teardown(test_worker_queue_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_memory_backlog_full, setup, teardown),
		cmocka_unit_test(test_webhook),
		cmocka_unit_test_setup_teardown(test_syslog_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_spool_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_catch_up, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
