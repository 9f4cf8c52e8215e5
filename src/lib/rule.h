/* Detection rules (SPEC §5): one YAML file per rule, parsed, checked and
 * validated here; shared by the agent (detect.c) and `daemoneye-cli rules
 * validate|test`.
 *
 *	id: exec-from-tmp            unique, [a-z0-9-]+, at most 64 bytes
 *	name: ...                    required
 *	description: ...             optional
 *	severity: info|low|medium|high|critical
 *	category: execution          optional, [a-z0-9_-]+
 *	enabled: true                optional, default true
 *	sql: SELECT pid ...          required
 *
 * Informational keys (author, version, tags, references, mitre) are accepted
 * and ignored; any other key is an error. Errors name "file:line: reason".
 *
 * Validation compiles the SQL under the sandbox (sqlguard) and runs it once,
 * under the same time limit and memory budget as in the agent, against a
 * built-in sample of ordinary and hostile process rows in an in-memory
 * database with the store's schema. A rule that is refused, fails, or runs
 * out of time or memory there is not deployed. */
#ifndef DE_RULE_H
#define DE_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errbuf.h"

#define RULE_ID_MAX          64
#define RULE_FILE_MAX        (256u << 10) /* a rule file larger than this is refused */
#define RULE_MAX_PER_SET     4096
#define RULE_SAMPLE_MAX_ROWS 10000 /* rows a rule may return on the validation sample */

struct rule {
	char *id;
	char *name;
	char *description; /* "" when absent */
	char *severity;    /* one of the five names */
	char *category;    /* "" when absent */
	char *sql;
	bool enabled;
	char *path;        /* the file it came from, or the name given to rule_parse */
	unsigned sql_line; /* line of the sql key, for messages */
	char sha256[65];   /* lowercase hex SHA-256 of the file's bytes */
};

void rule_free(struct rule *r);
static inline void
rule_freep(struct rule **r)
{
	if (*r)
		rule_free(*r);
}

/* Parses one rule from memory (name is used in messages and as r->path).
 * Checks the fields but not the SQL. On success *ret owns a new rule.
 * Returns -EINVAL with "name:line: reason" in err, or -ENOMEM. */
int rule_parse(const char *name, const char *text, size_t len, struct rule **ret,
               struct errbuf *err);

/* The sample database validation runs rules against: built once, reused for
 * many rules. */
struct rule_validator;
int rule_validator_new(struct rule_validator **ret, struct errbuf *err);
void rule_validator_free(struct rule_validator *v);
static inline void
rule_validator_freep(struct rule_validator **v)
{
	if (*v)
		rule_validator_free(*v);
}

/* Compiles r->sql under the sandbox and runs it once over the sample rows
 * with timeout_ms (0: the default 100 ms). Returns 0 or -EINVAL /
 * -ETIMEDOUT / -E2BIG with "path:line: reason" in err. ret_rows (may be
 * NULL) gets the number of sample rows it returned. */
int rule_validate(struct rule_validator *v, const struct rule *r, uint32_t timeout_ms,
                  unsigned *ret_rows, struct errbuf *err);

/* Reads, parses and validates one rule file (a private validator). */
int rule_load(const char *path, uint32_t timeout_ms, struct rule **ret, struct errbuf *err);

/* A loaded set of valid rules, in file-name order within each directory. */
struct rule_set {
	struct rule **rules;
	size_t n;
};
void rule_set_free(struct rule_set *s);
static inline void
rule_set_freep(struct rule_set **s)
{
	if (*s)
		rule_set_free(*s);
}

/* Called once per rejected file with its path and reason. */
typedef void (*rule_reject_fn)(void *ctx, const char *path, const char *reason);

/* Loads every *.yaml / *.yml file of dirs[0..n-1]: bad files (invalid YAML
 * or SQL, duplicate id) are skipped and reported to reject (may be NULL).
 * On success *ret owns the set and the return value is the number of
 * rejected files (>= 0). A directory that cannot be read is an error
 * (-errno, with the reason in err) and nothing is returned. */
int rule_set_load(const char *const *dirs, size_t n, uint32_t timeout_ms, rule_reject_fn reject,
                  void *ctx, struct rule_set **ret, struct errbuf *err);

/* True when s is a valid rule id. */
bool rule_id_valid(const char *s);

#endif
