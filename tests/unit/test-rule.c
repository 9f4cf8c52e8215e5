/* Rules: YAML parsing and field checks, every hostile rule of issue 5
 * refused by validation with a clear reason, and directory loading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "errbuf.h"
#include "rule.h"

static const char good_yaml[] = "# a comment\n"
                                "id: exec-from-tmp\n"
                                "name: Process started from /tmp\n"
                                "description: T1059 execution from a world-writable directory\n"
                                "severity: high\n"
                                "category: execution\n"
                                "enabled: true\n"
                                "tags: [a, b]\n"
                                "sql: |\n"
                                "  SELECT pid, name, executable_path FROM processes\n"
                                "  WHERE executable_path LIKE '/tmp/%'\n";

static struct rule *
parse_ok(const char *yaml)
{
	struct rule *r = NULL;
	struct errbuf err = { { 0 } };
	int rc = rule_parse("t.yaml", yaml, strlen(yaml), &r, &err);

	if (rc != 0)
		fprintf(stderr, "parse failed: %s\n", err.msg);
	assert_int_equal(rc, 0);
	return r;
}

static void
test_parse_good(void **state)
{
	struct rule *r;

	(void)state;
	r = parse_ok(good_yaml);
	assert_string_equal(r->id, "exec-from-tmp");
	assert_string_equal(r->severity, "high");
	assert_string_equal(r->category, "execution");
	assert_true(r->enabled);
	assert_int_equal(r->sql_line, 9);
	assert_non_null(strstr(r->sql, "LIKE '/tmp/%'"));
	assert_int_equal(strlen(r->sha256), 64);
	assert_string_equal(r->path, "t.yaml");
	rule_free(r);
	/* Optional fields take their defaults. */
	r = parse_ok("id: a\nname: n\nseverity: info\nsql: SELECT pid FROM processes\n");
	assert_true(r->enabled);
	assert_string_equal(r->description, "");
	rule_free(r);
	r = parse_ok("id: a\nname: n\nseverity: low\nenabled: false\nsql: SELECT pid FROM x\n");
	assert_false(r->enabled);
	rule_free(r);
}

struct bad_yaml {
	const char *yaml;
	const char *reason;
};

static void
test_parse_bad(void **state)
{
	static const struct bad_yaml cases[] = {
		{ "name: n\nseverity: high\nsql: SELECT pid FROM processes\n",
		  "t.yaml:1: missing required key 'id'" },
		{ "id: Bad_Id\nname: n\nseverity: high\nsql: SELECT 1\n", "must match [a-z0-9-]+" },
		{ "id: a\nname: n\nseverity: severe\nsql: SELECT 1\n", "severity 'severe'" },
		{ "id: a\nname: n\nseverity: high\nsql: SELECT 1\nsqll: x\n",
		  "t.yaml:5: unknown key 'sqll'" },
		{ "id: a\nid: b\nname: n\nseverity: high\nsql: SELECT 1\n",
		  "t.yaml:2: duplicate key 'id'" },
		{ "id: a\nname: n\nseverity: high\nenabled: maybe\nsql: SELECT 1\n",
		  "t.yaml:4: enabled: expected true or false" },
		{ "id: a\nname: n\nseverity: high\nsql: [SELECT 1]\n",
		  "sql: expected a single value" },
		{ "id: a\nname: n\nseverity: high\nsql: ''\n", "sql is empty" },
		{ "- id: a\n", "expected a mapping" },
		{ "id: a\nname: n\nseverity: high\nsql: x\n---\nid: b\n", "one rule per file" },
		{ "id: &x a\nname: *x\nseverity: high\nsql: x\n", "aliases are not allowed" },
		{ "id: a\nname: \"unclosed\n", "invalid YAML" },
		{ "", "expected a YAML document" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rule *r = NULL;
		struct errbuf err = { { 0 } };
		int rc = rule_parse("t.yaml", cases[i].yaml, strlen(cases[i].yaml), &r, &err);
		if (rc != -EINVAL || strstr(err.msg, cases[i].reason) == NULL)
			fprintf(stderr, "case %zu: rc %d '%s'\n", i, rc, err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_null(r);
		assert_non_null(strstr(err.msg, cases[i].reason));
	}
}

struct hostile {
	const char *sql;
	int rc;
	const char *reason;
};

/* Every hostile rule of issue 5, refused with a reason (or stopped by the
 * time limit), the validator still answering for a good rule afterwards. */
static void
test_hostile_rules(void **state)
{
	static const struct hostile cases[] = {
		{ "ATTACH DATABASE '/tmp/evil.db' AS evil", -EINVAL, "ATTACH" },
		{ "PRAGMA writable_schema = ON", -EINVAL, "PRAGMA" },
		{ "INSERT INTO live_processes (pid) VALUES (1)", -EINVAL, "INSERT" },
		{ "UPDATE process_events SET name = 'x'", -EINVAL, "UPDATE" },
		{ "UPDATE live_processes SET name = 'x'", -EINVAL, "view" },
		{ "DELETE FROM process_events", -EINVAL, "DELETE" },
		{ "DROP TABLE process_events", -EINVAL, "not allowed" },
		{ "SELECT load_extension('/tmp/evil.so') AS pid", -EINVAL, "load_extension" },
		{ "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
		  " SELECT x AS pid FROM c WHERE x < 0",
		  -ETIMEDOUT, "time limit" },
		{ "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
		  " SELECT x AS pid FROM c",
		  -E2BIG, "more than 10000 rows" },
		{ "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
		  " SELECT p.pid FROM processes p, c WHERE c.x < 0",
		  -ETIMEDOUT, "time limit" },
		{ "SELECT pid, randomblob(2000000000) FROM processes", -EINVAL, "randomblob" },
		{ "SELECT pid, zeroblob(2000000000) FROM processes", -EINVAL, "zeroblob" },
		{ "SELECT pid FROM processes WHERE command_line REGEXP '^(a+)+$'", -EINVAL,
		  "regexp" },
		{ "SELECT pid FROM processes WHERE regexp('^(\\w+\\s?)*$', command_line)", -EINVAL,
		  "regexp" },
		{ "SELECT name, executable_path FROM processes", -EINVAL, "pid" },
		{ "SELECT pid FROM processes WHERE", -EINVAL, "incomplete input" },
		{ "SELECT pid FROM processes WHERE name = = 1", -EINVAL, "syntax error" },
		{ "SELECT pid FROM processes; DELETE FROM alerts", -EINVAL, "one statement" },
		{ "SELECT pid FROM alerts", -EINVAL, "alerts" },
		{ "SELECT pid, replace(command_line, 'a', printf('%.*c', 100000, 'b')) FROM "
		  "processes",
		  -E2BIG, "larger" },
	};
	struct rule_validator *v = NULL;
	struct errbuf err = { { 0 } };
	unsigned rows = 0;
	struct rule *good;

	(void)state;
	assert_int_equal(rule_validator_new(&v, &err), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rule r = {
			.id = (char *)"hostile",
			.sql = (char *)cases[i].sql,
			.path = (char *)"hostile.yaml",
			.sql_line = 7,
		};
		int rc;

		err.msg[0] = '\0';
		/* Generous: a loaded test machine must not turn a fast rule into a timeout. */
		rc = rule_validate(v, &r, 500, NULL, &err);
		if (rc != cases[i].rc || strstr(err.msg, cases[i].reason) == NULL)
			fprintf(stderr, "case %zu (%s): rc %d '%s'\n", i, cases[i].sql, rc,
			        err.msg);
		assert_int_equal(rc, cases[i].rc);
		assert_non_null(strstr(err.msg, cases[i].reason));
		/* The message names the file and line of the sql key. */
		assert_non_null(strstr(err.msg, "hostile.yaml:7:"));
	}
	/* The same validator still accepts good rules, including regexps that
	 * meet the long sample rows. */
	good = parse_ok(good_yaml);
	assert_int_equal(rule_validate(v, good, 5000, &rows, &err), 0);
	assert_int_equal(rows, 3); /* the sample has three executables under /tmp */
	free(good->sql);
	good->sql = strdup("SELECT pid FROM processes WHERE command_line REGEXP"
	                   " '(curl|wget)\\s.*\\|\\s*(ba)?sh' OR command_line REGEXP 'a.*b.*c'");
	assert_int_equal(rule_validate(v, good, 5000, &rows, &err), 0);
	free(good->sql);
	good->sql = strdup("SELECT p.pid, count(*) AS n FROM processes p JOIN live_processes l"
	                   " ON l.ppid = p.pid GROUP BY p.pid");
	assert_int_equal(rule_validate(v, good, 5000, &rows, &err), 0);
	assert_true(rows > 0);
	rule_free(good);
	rule_validator_free(v);
}

static char tmpdir[] = "/tmp/test-rule-XXXXXX";

static void
write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

struct rejects {
	int n;
	char last[512];
};

static void
on_reject(void *ctx, const char *path, const char *reason)
{
	struct rejects *r = ctx;

	(void)path;
	r->n++;
	snprintf(r->last, sizeof(r->last), "%s", reason);
}

static void
test_load_dir(void **state)
{
	const char *dirs[1] = { tmpdir };
	struct rule_set *set = NULL;
	struct rejects rej = { 0 };
	struct errbuf err = { { 0 } };
	struct rule *r = NULL;
	char path[256];
	int rc;

	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	write_file("a.yaml", good_yaml);
	write_file("b.yml", "id: second\nname: n\nseverity: low\nsql: SELECT pid FROM processes"
	                    " WHERE name = 'nc'\n");
	write_file("c.yaml", "id: exec-from-tmp\nname: dup\nseverity: low\nsql: SELECT pid FROM"
	                     " processes\n");
	write_file("d.yaml", "id: evil\nname: n\nseverity: low\nsql: ATTACH 'x' AS y\n");
	write_file("notes.txt", "not a rule");
	rc = rule_set_load(dirs, 1, 100, on_reject, &rej, &set, &err);
	assert_int_equal(rc, 2);
	assert_int_equal(rej.n, 2);
	assert_non_null(strstr(rej.last, "d.yaml"));
	assert_non_null(strstr(rej.last, "ATTACH"));
	assert_int_equal(set->n, 2);
	assert_string_equal(set->rules[0]->id, "exec-from-tmp");
	assert_string_equal(set->rules[1]->id, "second");
	rule_set_free(set);
	/* rule_load: one file, parsed and validated. */
	snprintf(path, sizeof(path), "%s/a.yaml", tmpdir);
	assert_int_equal(rule_load(path, 100, &r, &err), 0);
	rule_free(r);
	snprintf(path, sizeof(path), "%s/d.yaml", tmpdir);
	assert_int_equal(rule_load(path, 100, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "d.yaml:4:"));
	/* A missing directory is an error, not an empty set. */
	dirs[0] = "/nonexistent/rules";
	assert_int_equal(rule_set_load(dirs, 1, 100, NULL, NULL, &set, &err), -ENOENT);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(path), 0);
}

/* Parses yaml, expecting -EINVAL with reason in the message. */
static void
expect_refused(const char *yaml, size_t len, const char *reason)
{
	if (len == 0)
		len = strlen(yaml);
	struct rule *r = NULL;
	struct errbuf err = { { 0 } };
	int rc = rule_parse("t.yaml", yaml, len, &r, &err);

	if (rc != -EINVAL || strstr(err.msg, reason) == NULL)
		fail_msg("rc %d, '%s' does not say '%s'", rc, err.msg, reason);
	assert_null(r);
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Field size limits, character sets, NUL bytes, the file size limit,
 * ignored keys of any shape up to a nesting limit. */
static void
test_field_limits(void **state)
{
	char *big = repeat('a', RULE_FILE_MAX + 1), *s, yaml[8192];
	struct rule *r;

	(void)state;
	expect_refused(big, RULE_FILE_MAX + 1, "t.yaml: larger than");
	free(big);

	s = repeat('a', RULE_ID_MAX + 1);
	snprintf(yaml, sizeof(yaml), "id: %s\nname: n\nseverity: high\nsql: x\n", s);
	expect_refused(yaml, strlen(yaml), "must match [a-z0-9-]+");
	s[RULE_ID_MAX] = '\0';
	assert_true(rule_id_valid(s));
	free(s);
	assert_false(rule_id_valid(NULL));
	assert_false(rule_id_valid(""));

	expect_refused("id: a\nname: ''\nseverity: high\nsql: x\n", 0,
	               "name must be 1 to 256 bytes");
	s = repeat('n', 257);
	snprintf(yaml, sizeof(yaml), "id: a\nname: %s\nseverity: high\nsql: x\n", s);
	expect_refused(yaml, strlen(yaml), "name must be 1 to 256 bytes");
	s[256] = '\0';
	snprintf(yaml, sizeof(yaml), "id: a\nname: %s\nseverity: high\nsql: x\n", s);
	r = parse_ok(yaml);
	assert_int_equal(strlen(r->name), 256);
	rule_free(r);
	free(s);

	s = repeat('d', 4097);
	snprintf(yaml, sizeof(yaml), "id: a\nname: n\ndescription: %s\nseverity: high\nsql: x\n",
	         s);
	expect_refused(yaml, strlen(yaml), "description longer than 4096 bytes");
	free(s);

	expect_refused("id: a\nname: n\ncategory: bad!cat\nseverity: high\nsql: x\n", 0,
	               "category 'bad!cat' must be");
	s = repeat('c', 65);
	snprintf(yaml, sizeof(yaml), "id: a\nname: n\ncategory: %s\nseverity: high\nsql: x\n", s);
	expect_refused(yaml, strlen(yaml), "at most 64 bytes");
	free(s);
	r = parse_ok("id: a\nname: n\ncategory: Defense_Evasion-2 x\nseverity: high\nsql: x\n");
	assert_string_equal(r->category, "Defense_Evasion-2 x");
	rule_free(r);

	/* A NUL written as an escape would cut the value short. */
	expect_refused("id: a\nname: \"a\\0b\"\nseverity: high\nsql: x\n", 0,
	               "t.yaml:2: name: NUL byte in value");
	/* Keys are plain scalars. */
	expect_refused("id: a\n[k]: v\nname: n\nseverity: high\nsql: x\n", 0, "expected a key");

	/* Informational keys may hold anything, nested up to a limit. */
	r = parse_ok("id: a\nname: n\nseverity: high\nauthor: {who: [x, {y: z}]}\n"
	             "mitre: [T1059, [T1059.004]]\nsql: x\n");
	assert_string_equal(r->id, "a");
	rule_free(r);
	snprintf(yaml, sizeof(yaml), "id: a\nname: n\nseverity: high\nsql: x\ntags: %s%s\n",
	         "[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]"); /* 17 deep */
	expect_refused(yaml, strlen(yaml), "nesting too deep");
	snprintf(yaml, sizeof(yaml), "id: a\nname: n\nseverity: high\nsql: x\ntags: %s%s\n",
	         "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]"); /* 16 deep: fine */
	r = parse_ok(yaml);
	rule_free(r);
	rule_free(NULL);
	rule_set_free(NULL);
}

/* Loading from files: unreadable or oversized files, hidden and non-rule
 * names skipped, rejects without a callback still counted. */
static void
test_load_files_edges(void **state)
{
	char dir[] = "/tmp/test-rule2-XXXXXX", path[256], *big;
	const char *dirs[2];
	struct rule_set *set = NULL;
	struct errbuf err = { { 0 } };
	struct rule *r = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.yaml", dir);
	assert_int_equal(rule_load(path, 100, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "none.yaml: No such file"));
	assert_null(r);

	snprintf(path, sizeof(path), "%s/big.yaml", dir);
	f = fopen(path, "we");
	assert_non_null(f);
	big = repeat('#', RULE_FILE_MAX + 10);
	assert_int_equal(fputs(big, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	free(big);
	assert_int_equal(rule_load(path, 100, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "big.yaml: larger than"));

	snprintf(path, sizeof(path), "%s/.hidden.yaml", dir);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs("not: [a rule\n", f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/ok.yml", dir);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(
	    fputs("id: ok\nname: n\nseverity: low\nsql: SELECT pid FROM processes\n", f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/x.yaml.bak", dir);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);

	/* big.yaml rejected (no callback: only counted), .hidden.yaml and
	 * x.yaml.bak not read; the same directory twice: the second copy of
	 * ok.yml is a duplicate id. */
	dirs[0] = dir;
	dirs[1] = dir;
	assert_int_equal(rule_set_load(dirs, 2, 100, NULL, NULL, &set, &err), 3);
	assert_int_equal(set->n, 1);
	assert_string_equal(set->rules[0]->id, "ok");
	rule_set_free(set);
	set = NULL;
	assert_int_equal(rule_set_load(dirs, 0, 100, NULL, NULL, &set, &err), 0);
	assert_int_equal(set->n, 0);
	rule_set_free(set);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),    cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_hostile_rules), cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_field_limits),  cmocka_unit_test(test_load_files_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
