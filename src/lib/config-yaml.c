/* The YAML reader of the configuration (SPEC §4): walks a libyaml document,
 * checks each key against the tables of config.c and reports every problem as
 * "file:line: reason", 1-based. Also reads the seed's collectors.json (jansson)
 * when `collectors:` is a path. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cleanup.h"
#include "config-internal.h"
#include "config.h"
#include "util.h"

/* ---- YAML ---------------------------------------------------------------- */

struct yctx {
	yaml_document_t *doc;
	const char *name; /* file name for messages */
	struct de_config *cfg;
};

static size_t
node_line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

static const char *
node_scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A plain ~, null or empty scalar is YAML's null. */
static bool
node_is_null(const yaml_node_t *n)
{
	const char *s = node_scalar(n);

	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (s[0] == '\0' || streq(s, "~") || streq(s, "null") || streq(s, "Null") ||
	        streq(s, "NULL"));
}

static int
loc_error(const struct yctx *y, const yaml_node_t *n, struct errbuf *err, const char *what)
{
	if (what[0] != '\0')
		errbuf_prefix(err, "%s:%zu: %s", y->name, node_line(n), what);
	else
		errbuf_prefix(err, "%s:%zu", y->name, node_line(n));
	return -EINVAL;
}

/* Walks a mapping, rejecting non-scalar and duplicate keys, calling fn for
 * every pair. */
typedef int (*pair_fn)(struct yctx *y, const char *key, yaml_node_t *kn, yaml_node_t *vn, void *ud,
                       struct errbuf *err);

static int
map_each(struct yctx *y, yaml_node_t *map, const char *where, pair_fn fn, void *ud,
         struct errbuf *err)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(y->doc, p->value);
		const char *key = kn ? node_scalar(kn) : NULL;
		int rc;

		if (key == NULL || vn == NULL) {
			errbuf_set(err, "%s:%zu: %s%skeys must be plain strings", y->name,
			           kn ? node_line(kn) : 0, where, where[0] ? ": " : "");
			return -EINVAL;
		}
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
			const char *prev = node_scalar(yaml_document_get_node(y->doc, q->key));

			if (prev != NULL && streq(prev, key)) {
				errbuf_set(err, "%s:%zu: duplicate key '%s%s%s'", y->name,
				           node_line(kn), where, where[0] ? "." : "", key);
				return -EINVAL;
			}
		}
		if ((rc = fn(y, key, kn, vn, ud, err)) < 0)
			return rc;
	}
	return 0;
}

static int
expect(const struct yctx *y, const yaml_node_t *n, yaml_node_type_t t, const char *what,
       const char *name, struct errbuf *err)
{
	if (n->type == t)
		return 0;
	errbuf_set(err, "%s:%zu: %s: expected %s", y->name, node_line(n), name, what);
	return -EINVAL;
}

/* A YAML list for a list key: its items joined with ':' go through the same
 * row setter as an environment value (so the bounds are checked once). */
static int
yaml_set_list(struct yctx *y, const struct cfg_row *row, void *base, const char *name,
              yaml_node_t *vn, struct errbuf *err)
{
	_cleanup_free_ char *joined = NULL;
	size_t used = 0, cap = 1;
	int rc;

	for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
	     it++) {
		yaml_node_t *in = yaml_document_get_node(y->doc, *it);
		const char *s = in ? node_scalar(in) : NULL;

		if (s == NULL || strchr(s, ':') != NULL || s[0] == '\0') {
			errbuf_set(err, "%s:%zu: %s: expected a list of paths (no ':')", y->name,
			           in ? node_line(in) : node_line(vn), name);
			return -EINVAL;
		}
		cap += strlen(s) + 1;
	}
	if ((joined = malloc(cap)) == NULL)
		return -ENOMEM;
	joined[0] = '\0';
	for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
	     it++) {
		const char *s = node_scalar(yaml_document_get_node(y->doc, *it));
		size_t len = strlen(s);

		if (used > 0)
			joined[used++] = ':';
		memcpy(joined + used, s, len + 1);
		used += len;
	}
	if ((rc = config_row_set(row, base, joined, err)) == -EINVAL)
		return loc_error(y, vn, err, name);
	return rc;
}

/* Sets a scalar row from a YAML node, with the location in any error. */
static int
yaml_set_scalar(struct yctx *y, const struct cfg_row *row, void *base, const char *name,
                yaml_node_t *vn, struct errbuf *err)
{
	const char *text;
	int rc;

	if (row->type == CFG_STRLIST && vn->type == YAML_SEQUENCE_NODE)
		return yaml_set_list(y, row, base, name, vn, err);
	if ((rc = expect(y, vn, YAML_SCALAR_NODE, "a single value", name, err)) < 0)
		return rc;
	text = node_is_null(vn) ? "" : node_scalar(vn);
	if (node_is_null(vn) && row->type != CFG_STRING) {
		errbuf_set(err, "%s:%zu: %s: a value is required", y->name, node_line(vn), name);
		return -EINVAL;
	}
	if ((rc = config_row_set(row, base, text, err)) == -EINVAL)
		return loc_error(y, vn, err, name);
	return rc;
}

struct sink_ud {
	struct sink_config *sink;
	size_t index;
};

static int
sink_pair(struct yctx *y, const char *key, yaml_node_t *kn, yaml_node_t *vn, void *ud,
          struct errbuf *err)
{
	struct sink_ud *su = ud;
	const struct cfg_row *row;
	char name[CONFIG_MAX_NAME];

	(void)snprintf(name, sizeof(name), "alerting.sinks[%zu].%s", su->index, key);
	if (streq(key, "type"))
		return 0;
	if ((row = config_sink_row_find(key, su->sink->type)) != NULL)
		return yaml_set_scalar(y, row, su->sink, name, vn, err);
	errbuf_set(err, "%s:%zu: unknown key '%s' for a %s sink", y->name, node_line(kn), name,
	           sink_type_to_string(su->sink->type));
	return -EINVAL;
}

static yaml_node_t *
map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key);
		const char *k = kn ? node_scalar(kn) : NULL;

		if (k != NULL && streq(k, key))
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static int
parse_sink(struct yctx *y, yaml_node_t *n, size_t index, struct sink_config *ret,
           struct errbuf *err)
{
	struct sink_config s;
	struct sink_ud ud = { .sink = &s, .index = index };
	char name[CONFIG_MAX_NAME], list[128];
	yaml_node_t *tn;
	const char *t, *why;
	int idx, rc;

	(void)snprintf(name, sizeof(name), "alerting.sinks[%zu]", index);
	if ((rc = expect(y, n, YAML_MAPPING_NODE, "a mapping with a type", name, err)) < 0)
		return rc;
	tn = map_get(y->doc, n, "type");
	if (tn == NULL || (t = node_scalar(tn)) == NULL) {
		errbuf_set(err, "%s:%zu: %s: a sink needs a type", y->name, node_line(n), name);
		return -EINVAL;
	}
	if ((idx = config_choice_index(config_sink_type_names, t)) < 0) {
		config_choices_join(config_sink_type_names, list, sizeof(list));
		errbuf_set(err, "%s:%zu: %s.type: unknown sink type '%s' (expected one of %s)",
		           y->name, node_line(tn), name, t, list);
		return -EINVAL;
	}
	if ((rc = config_sink_defaults(&s, (enum sink_type)idx)) < 0 ||
	    (rc = map_each(y, n, name, sink_pair, &ud, err)) < 0) {
		config_sink_free(&s);
		return rc;
	}
	if ((why = config_sink_problem(&s)) != NULL) {
		errbuf_set(err, "%s:%zu: %s: %s", y->name, node_line(n), name, why);
		config_sink_free(&s);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

static int
parse_sinks(struct yctx *y, yaml_node_t *vn, struct errbuf *err)
{
	struct sink_config tmp[CONFIG_MAX_SINKS];
	size_t n = 0;
	int rc = 0;

	if ((rc = expect(y, vn, YAML_SEQUENCE_NODE, "a list of sinks", "alerting.sinks", err)) < 0)
		return rc;
	for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
	     it++) {
		yaml_node_t *in = yaml_document_get_node(y->doc, *it);

		if (n >= CONFIG_MAX_SINKS) {
			errbuf_set(err, "%s:%zu: alerting.sinks: at most %d sinks", y->name,
			           node_line(in), CONFIG_MAX_SINKS);
			rc = -EINVAL;
			break;
		}
		if (in == NULL || (rc = parse_sink(y, in, n, &tmp[n], err)) < 0) {
			rc = rc < 0 ? rc : -EINVAL;
			break;
		}
		n++;
	}
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			config_sink_free(&tmp[i]);
		return rc;
	}
	config_sinks_clear(y->cfg);
	memcpy(y->cfg->alerting.sinks, tmp, n * sizeof(tmp[0]));
	y->cfg->alerting.n_sinks = n;
	return 0;
}

/* ---- collectors ---------------------------------------------------------- */

/* Checks and stores one collector built from either YAML or JSON. */
static int
collector_finish(struct collector_config *c, const char *name, struct errbuf *err)
{
	const char *id = c->id;

	if (id == NULL || id[0] == '\0') {
		errbuf_set(err, "%s: a collector needs an id", name);
		return -EINVAL;
	}
	if (c->binary == NULL && (c->binary = strdup(id)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
collector_add_arg(struct collector_config *c, const char *a, const char *name, struct errbuf *err)
{
	if (c->n_args >= CONFIG_MAX_ARGS) {
		errbuf_set(err, "%s: at most %d args", name, CONFIG_MAX_ARGS);
		return -EINVAL;
	}
	if ((c->args[c->n_args] = strdup(a)) == NULL)
		return -ENOMEM;
	c->n_args++;
	return 0;
}

enum coll_kind {
	COLL_STRING,  /* char * in struct collector_config */
	COLL_BOOL,    /* bool in struct collector_config */
	COLL_ARGS,    /* the args list */
	COLL_IGNORED, /* a seed key DaemonEye accepts and does not use */
};

/* One row per collector key. json_only rows are the spellings and extra
 * keys of the seed's collectors.json; the YAML form knows only the first four. */
static const struct coll_key {
	const char *key;
	enum coll_kind kind;
	size_t offset;
	bool json_only;
} coll_keys[] = {
	{ "id", COLL_STRING, offsetof(struct collector_config, id), false },
	{ "binary", COLL_STRING, offsetof(struct collector_config, binary), false },
	{ "args", COLL_ARGS, 0, false },
	{ "spawn", COLL_BOOL, offsetof(struct collector_config, spawn), false },
	{ "binary_path", COLL_STRING, offsetof(struct collector_config, binary), true },
	{ "auto_restart", COLL_BOOL, offsetof(struct collector_config, spawn), true },
	{ "collector_type", COLL_IGNORED, 0, true },
	{ "enabled", COLL_IGNORED, 0, true },
	{ "startup_timeout_secs", COLL_IGNORED, 0, true },
	{ "heartbeat_interval_secs", COLL_IGNORED, 0, true },
	{ "max_restarts", COLL_IGNORED, 0, true },
	{ "restart_delay_secs", COLL_IGNORED, 0, true },
	{ "environment", COLL_IGNORED, 0, true },
};

static const struct coll_key *
coll_key_find(const char *key, bool json)
{
	for (size_t i = 0; i < ARRAY_SIZE(coll_keys); i++)
		if (streq(coll_keys[i].key, key) && (json || !coll_keys[i].json_only))
			return &coll_keys[i];
	return NULL;
}

static int
yaml_collector_args(struct yctx *y, yaml_node_t *vn, struct collector_config *c, struct errbuf *err)
{
	int rc;

	if ((rc = expect(y, vn, YAML_SEQUENCE_NODE, "a list of strings", "collectors.args", err)) <
	    0)
		return rc;
	for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
	     it++) {
		yaml_node_t *in = yaml_document_get_node(y->doc, *it);

		if (in == NULL || node_scalar(in) == NULL)
			return loc_error(y, vn, err, "collectors: args must be strings");
		if ((rc = collector_add_arg(c, node_scalar(in), "collectors", err)) < 0)
			return rc == -EINVAL ? loc_error(y, in, err, "") : rc;
	}
	return 0;
}

static int
collector_pair(struct yctx *y, const char *key, yaml_node_t *kn, yaml_node_t *vn, void *ud,
               struct errbuf *err)
{
	const struct coll_key *k = coll_key_find(key, false);
	struct collector_config *c = ud;
	const char *s = node_scalar(vn);
	bool b;

	if (k == NULL) {
		errbuf_set(err, "%s:%zu: unknown key 'collectors.%s'", y->name, node_line(kn), key);
		return -EINVAL;
	}
	if (k->kind == COLL_ARGS)
		return yaml_collector_args(y, vn, c, err);
	if (s == NULL || node_is_null(vn)) {
		errbuf_set(err, "%s:%zu: collectors.%s: expected a single value", y->name,
		           node_line(vn), key);
		return -EINVAL;
	}
	if (k->kind == COLL_STRING)
		return config_set_string(FIELD(c, k->offset, char *), s);
	if (config_parse_bool(s, &b) < 0) {
		errbuf_set(err, "%s:%zu: collectors.%s: expected true or false, got '%s'", y->name,
		           node_line(vn), key, s);
		return -EINVAL;
	}
	*FIELD(c, k->offset, bool) = b;
	return 0;
}

static int
json_collector_args(json_t *v, const char *name, struct collector_config *c, struct errbuf *err)
{
	size_t i;
	json_t *a;
	int rc;

	if (!json_is_array(v)) {
		errbuf_set(err, "%s.args: expected a list of strings", name);
		return -EINVAL;
	}
	json_array_foreach(v, i, a)
	{
		if (!json_is_string(a)) {
			errbuf_set(err, "%s.args: expected strings", name);
			return -EINVAL;
		}
		if ((rc = collector_add_arg(c, json_string_value(a), name, err)) < 0)
			return rc;
	}
	return 0;
}

/* Sets one key of a collectors.json entry through its coll_keys row. */
static int
json_collector_key(const char *key, json_t *v, const char *name, struct collector_config *c,
                   struct errbuf *err)
{
	const struct coll_key *k = coll_key_find(key, true);

	if (k == NULL) {
		errbuf_set(err, "%s: unknown key '%s'", name, key);
		return -EINVAL;
	}
	switch (k->kind) {
	case COLL_STRING:
		if (!json_is_string(v)) {
			errbuf_set(err, "%s.%s: expected a string", name, key);
			return -EINVAL;
		}
		return config_set_string(FIELD(c, k->offset, char *), json_string_value(v));
	case COLL_BOOL:
		if (!json_is_boolean(v)) {
			errbuf_set(err, "%s.%s: expected true or false", name, key);
			return -EINVAL;
		}
		*FIELD(c, k->offset, bool) = json_is_true(v);
		return 0;
	case COLL_ARGS:
		return json_collector_args(v, name, c, err);
	case COLL_IGNORED:
		return 0;
	}
	return -EINVAL;
}

static int
json_collector(json_t *o, size_t index, const char *file, struct collector_config *c,
               struct errbuf *err)
{
	char name[PATH_MAX + 32];
	const char *key;
	json_t *v;
	int rc;

	(void)snprintf(name, sizeof(name), "%s: collectors[%zu]", file, index);
	if (!json_is_object(o)) {
		errbuf_set(err, "%s: expected an object", name);
		return -EINVAL;
	}
	json_object_foreach(o, key, v)
	{
		if ((rc = json_collector_key(key, v, name, c, err)) < 0)
			return rc;
	}
	return collector_finish(c, name, err);
}

/* Reads the seed's collectors.json: {"collectors":[{...}, ...]}. */
static int
parse_collectors_json(const char *path, struct collector_config *tmp, size_t *ret_n,
                      struct errbuf *err)
{
	_cleanup_free_ char *buf = NULL;
	json_error_t jerr;
	json_t *root, *arr, *o;
	size_t i, len = 0, n = 0;
	int rc;

	/* Bounded like the configuration file itself. */
	if ((rc = read_file_at(AT_FDCWD, path, CONFIG_MAX_FILE, false, &buf, &len)) < 0) {
		errbuf_set(err, "%s: %s", path, rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	if ((root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		errbuf_set(err, "%s:%d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	rc = 0;
	arr = json_object_get(root, "collectors");
	if (!json_is_object(root) || !json_is_array(arr) || json_object_size(root) != 1) {
		errbuf_set(err, "%s: expected {\"collectors\": [...]}", path);
		json_decref(root);
		return -EINVAL;
	}
	json_array_foreach(arr, i, o)
	{
		if (n >= CONFIG_MAX_COLLECTORS) {
			errbuf_set(err, "%s: at most %d collectors", path, CONFIG_MAX_COLLECTORS);
			rc = -EINVAL;
			break;
		}
		memset(&tmp[n], 0, sizeof(tmp[n]));
		tmp[n].spawn = true;
		rc = json_collector(o, i, path, &tmp[n], err);
		n++;
		if (rc < 0)
			break;
	}
	json_decref(root);
	*ret_n = n;
	return rc;
}

/* A relative collectors.json path is relative to the config file's directory. */
static void
resolve_beside(const char *cfgname, const char *rel, char *buf, size_t n)
{
	const char *slash = strrchr(cfgname, '/');

	if (rel[0] == '/' || slash == NULL) {
		(void)snprintf(buf, n, "%s", rel);
		return;
	}
	(void)snprintf(buf, n, "%.*s/%s", (int)(slash - cfgname), cfgname, rel);
}

static int
parse_collectors_yaml(struct yctx *y, yaml_node_t *vn, struct collector_config *tmp, size_t *ret_n,
                      struct errbuf *err)
{
	size_t n = 0;
	int rc = 0;

	for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top;
	     it++) {
		yaml_node_t *in = yaml_document_get_node(y->doc, *it);
		char name[CONFIG_MAX_NAME];

		(void)snprintf(name, sizeof(name), "collectors[%zu]", n);
		if (n >= CONFIG_MAX_COLLECTORS) {
			errbuf_set(err, "%s:%zu: at most %d collectors", y->name, node_line(in),
			           CONFIG_MAX_COLLECTORS);
			rc = -EINVAL;
			break;
		}
		memset(&tmp[n], 0, sizeof(tmp[n]));
		tmp[n].spawn = true;
		n++;
		if ((rc = expect(y, in, YAML_MAPPING_NODE, "a mapping", name, err)) < 0 ||
		    (rc = map_each(y, in, "collectors", collector_pair, &tmp[n - 1], err)) < 0)
			break;
		if ((rc = collector_finish(&tmp[n - 1], name, err)) == -EINVAL) {
			rc = loc_error(y, in, err, "");
			break;
		}
	}
	*ret_n = n;
	return rc;
}

static int
parse_collectors(struct yctx *y, yaml_node_t *vn, struct errbuf *err)
{
	struct collector_config tmp[CONFIG_MAX_COLLECTORS];
	char path[PATH_MAX];
	size_t n = 0;
	int rc;

	if (vn->type == YAML_SCALAR_NODE && !node_is_null(vn)) {
		resolve_beside(y->name, node_scalar(vn), path, sizeof(path));
		if ((rc = parse_collectors_json(path, tmp, &n, err)) == -EINVAL)
			(void)loc_error(y, vn, err, "collectors");
	} else if (vn->type == YAML_SEQUENCE_NODE) {
		rc = parse_collectors_yaml(y, vn, tmp, &n, err);
	} else {
		errbuf_set(err, "%s:%zu: collectors: expected a list or a collectors.json path",
		           y->name, node_line(vn));
		rc = -EINVAL;
	}
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			config_collector_free(&tmp[i]);
		return rc;
	}
	config_collectors_clear(y->cfg);
	memcpy(y->cfg->collectors, tmp, n * sizeof(tmp[0]));
	y->cfg->n_collectors = n;
	return 0;
}

/* ---- sections ------------------------------------------------------------ */

static int
section_pair(struct yctx *y, const char *key, yaml_node_t *kn, yaml_node_t *vn, void *ud,
             struct errbuf *err)
{
	const char *section = ud;
	const struct cfg_row *row = config_row_find(section, key);
	char name[CONFIG_MAX_NAME];

	(void)snprintf(name, sizeof(name), "%s.%s", section, key);
	if (row == NULL) {
		errbuf_set(err, "%s:%zu: unknown key '%s'", y->name, node_line(kn), name);
		return -EINVAL;
	}
	if (row->type == CFG_SINKS)
		return parse_sinks(y, vn, err);
	return yaml_set_scalar(y, row, y->cfg, name, vn, err);
}

static int
top_pair(struct yctx *y, const char *key, yaml_node_t *kn, yaml_node_t *vn, void *ud,
         struct errbuf *err)
{
	(void)ud;
	if (config_row_find(NULL, key) != NULL)
		return parse_collectors(y, vn, err);
	if (!config_section_known(key)) {
		errbuf_set(err, "%s:%zu: unknown key '%s'", y->name, node_line(kn), key);
		return -EINVAL;
	}
	if (node_is_null(vn))
		return 0;
	if (vn->type != YAML_MAPPING_NODE) {
		errbuf_set(err, "%s:%zu: %s: expected a mapping of keys", y->name, node_line(vn),
		           key);
		return -EINVAL;
	}
	return map_each(y, vn, key, section_pair, (void *)(uintptr_t)key, err);
}

static int
yaml_syntax_error(const yaml_parser_t *p, const char *name, struct errbuf *err)
{
	errbuf_set(err, "%s:%zu: YAML syntax error: %s%s%s", name, p->problem_mark.line + 1,
	           p->problem ? p->problem : "unknown problem", p->context ? " " : "",
	           p->context ? p->context : "");
	return p->error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

static int
parse_document(struct de_config *cfg, const char *name, yaml_parser_t *parser, struct errbuf *err)
{
	yaml_document_t doc, extra;
	struct yctx y = { .doc = &doc, .name = name, .cfg = cfg };
	yaml_node_t *root;
	int rc = 0;

	if (!yaml_parser_load(parser, &doc))
		return yaml_syntax_error(parser, name, err);
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && !node_is_null(root)) {
		if (root->type != YAML_MAPPING_NODE) {
			errbuf_set(err, "%s:%zu: expected a mapping of sections at the top", name,
			           node_line(root));
			rc = -EINVAL;
		} else {
			rc = map_each(&y, root, "", top_pair, NULL, err);
		}
	}
	yaml_document_delete(&doc);
	if (rc < 0 || root == NULL)
		return rc;
	if (!yaml_parser_load(parser, &extra))
		return yaml_syntax_error(parser, name, err);
	root = yaml_document_get_root_node(&extra);
	if (root != NULL) {
		errbuf_set(err, "%s:%zu: only one YAML document is allowed", name, node_line(root));
		rc = -EINVAL;
	}
	yaml_document_delete(&extra);
	return rc;
}

int
config_parse_string(struct de_config *cfg, const char *name, const char *yaml, size_t len,
                    struct errbuf *err)
{
	struct de_config work;
	yaml_parser_t parser;
	int rc;

	if ((rc = config_copy(cfg, &work)) < 0)
		return rc;
	if (!yaml_parser_initialize(&parser)) {
		config_free(&work);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	rc = parse_document(&work, name, &parser, err);
	yaml_parser_delete(&parser);
	if (rc < 0) {
		config_free(&work);
		return rc;
	}
	config_free(cfg);
	*cfg = work;
	return 0;
}
