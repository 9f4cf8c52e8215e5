/* Configuration (SPEC §4). Every key is a row of cfg_rows[] or sink_rows[]
 * (STYLE.md rule 10): its section, name, type, bounds, place in the struct
 * and default. The YAML reader, the environment, config_set() and the
 * defaults all go through the same row setter, so a value is checked the same
 * way wherever it comes from. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "config-internal.h"
#include "util.h"

#define CONFIG_SYSTEM_PATH "/etc/daemoneye/config.yaml"
#define CONFIG_USER_SUFFIX "/.config/daemoneye/config.yaml"

static const char *const collector_choices[] = { "auto", "ebpf", "netlink", "poll", NULL };
static const char *const format_choices[] = { "json", "human", "csv", NULL };
static const char *const file_format_choices[] = { "json", NULL };
const char *const config_sink_type_names[] = { "stdout", "file", "syslog", "webhook", NULL };
static const char *const facility_choices[] = { "kern",     "user",   "mail",   "daemon", "auth",
	                                        "syslog",   "lpr",    "news",   "uucp",   "cron",
	                                        "authpriv", "ftp",    "local0", "local1", "local2",
	                                        "local3",   "local4", "local5", "local6", "local7",
	                                        NULL };

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define TIB (UINT64_C(1) << 40)

#define OFF(f) offsetof(struct de_config, f)
#define ROW_STR(s, k, f, d)                                                            \
	{                                                                              \
		.section = s, .key = k, .type = CFG_STRING, .offset = OFF(f), .def = d \
	}
#define ROW_BOOL(s, k, f, d)                                                         \
	{                                                                            \
		.section = s, .key = k, .type = CFG_BOOL, .offset = OFF(f), .def = d \
	}
#define ROW_U32(s, k, f, lo, hi, d)                                                              \
	{                                                                                        \
		.section = s, .key = k, .type = CFG_U32, .offset = OFF(f), .min = lo, .max = hi, \
		.def = d                                                                         \
	}
#define ROW_SIZE(s, k, f, lo, hi, d)                                                              \
	{                                                                                         \
		.section = s, .key = k, .type = CFG_SIZE, .offset = OFF(f), .min = lo, .max = hi, \
		.def = d                                                                          \
	}

static const struct cfg_row cfg_rows[] = {
	ROW_STR("agent", "data_dir", agent.data_dir, "/var/lib/daemoneye"),
	ROW_STR("agent", "socket", agent.socket, NULL),
	ROW_STR("agent", "user", agent.user, "daemoneye"),
	ROW_U32("agent", "scan_interval_ms", agent.scan_interval_ms, 10, 3600000, "1000"),
	ROW_U32("agent", "startup_timeout_s", agent.startup_timeout_s, 1, 3600, "60"),
	ROW_U32("agent", "heartbeat_interval_s", agent.heartbeat_interval_s, 1, 3600, "30"),
	ROW_U32("agent", "retention_days", agent.retention_days, 1, 36500, "30"),
	{ .section = "procmond",
	  .key = "collector",
	  .type = CFG_ENUM,
	  .offset = OFF(procmond.collector),
	  .choices = collector_choices,
	  .def = "auto" },
	ROW_BOOL("procmond", "compute_hashes", procmond.compute_hashes, "true"),
	ROW_SIZE("procmond", "max_buffer_bytes", procmond.max_buffer_bytes, 64 * KIB, 4 * GIB,
	         "10MiB"),
	ROW_STR("procmond", "wal_dir", procmond.wal_dir, NULL),
	ROW_SIZE("procmond", "wal_rotate_bytes", procmond.wal_rotate_bytes, 64 * KIB, 64 * GIB,
	         "80MiB"),
	ROW_STR("procmond", "user", procmond.user, "daemoneye"),
	{ .section = "detection",
	  .key = "rules_dirs",
	  .type = CFG_STRLIST,
	  .offset = OFF(detection.rules_dirs),
	  .count_offset = OFF(detection.n_rules_dirs),
	  .max_items = CONFIG_MAX_RULES_DIRS,
	  .def = "/etc/daemoneye/rules" },
	ROW_U32("detection", "rule_timeout_ms", detection.rule_timeout_ms, 1, 60000, "100"),
	ROW_U32("alerting", "dedup_window_s", alerting.dedup_window_s, 0, 604800, "300"),
	ROW_U32("alerting", "max_alerts_per_minute", alerting.max_alerts_per_minute, 1, 10000000,
	        "600"),
	{ .section = "alerting", .key = "sinks", .type = CFG_SINKS },
	{ .section = NULL, .key = "collectors", .type = CFG_COLLECTORS },
};

#define SOFF(f) offsetof(struct sink_config, f)

/* Per-sink keys; "type" is read first and picks the rows that apply. */
static const struct cfg_row sink_rows[] = {
	{ .key = "format",
	  .type = CFG_ENUM_INT,
	  .offset = SOFF(format),
	  .choices = format_choices,
	  .def = "human",
	  .sink_mask = SINK_BIT(SINK_STDOUT) },
	{ .key = "format",
	  .type = CFG_ENUM_INT,
	  .offset = SOFF(format),
	  .choices = file_format_choices,
	  .def = "json",
	  .sink_mask = SINK_BIT(SINK_FILE) },
	{ .key = "path",
	  .type = CFG_STRING,
	  .offset = SOFF(path),
	  .sink_mask = SINK_BIT(SINK_FILE) },
	{ .key = "max_bytes",
	  .type = CFG_SIZE,
	  .offset = SOFF(max_bytes),
	  .min = 4 * KIB,
	  .max = TIB,
	  .def = "64MiB",
	  .sink_mask = SINK_BIT(SINK_FILE) },
	{ .key = "max_files",
	  .type = CFG_U32,
	  .offset = SOFF(max_files),
	  .min = 1,
	  .max = 1000,
	  .def = "5",
	  .sink_mask = SINK_BIT(SINK_FILE) },
	{ .key = "facility",
	  .type = CFG_ENUM,
	  .offset = SOFF(facility),
	  .choices = facility_choices,
	  .def = "auth",
	  .sink_mask = SINK_BIT(SINK_SYSLOG) },
	{ .key = "server",
	  .type = CFG_STRING,
	  .offset = SOFF(server),
	  .sink_mask = SINK_BIT(SINK_SYSLOG) },
	{ .key = "url",
	  .type = CFG_STRING,
	  .offset = SOFF(url),
	  .sink_mask = SINK_BIT(SINK_WEBHOOK) },
	{ .key = "timeout_ms",
	  .type = CFG_U32,
	  .offset = SOFF(timeout_ms),
	  .min = 1,
	  .max = 600000,
	  .def = "5000",
	  .sink_mask = SINK_BIT(SINK_WEBHOOK) },
	{ .key = "ca_file",
	  .type = CFG_STRING,
	  .offset = SOFF(ca_file),
	  .sink_mask = SINK_BIT(SINK_SYSLOG) | SINK_BIT(SINK_WEBHOOK) },
	{ .key = "client_cert",
	  .type = CFG_STRING,
	  .offset = SOFF(client_cert),
	  .sink_mask = SINK_BIT(SINK_SYSLOG) | SINK_BIT(SINK_WEBHOOK) },
	{ .key = "client_key",
	  .type = CFG_STRING,
	  .offset = SOFF(client_key),
	  .sink_mask = SINK_BIT(SINK_SYSLOG) | SINK_BIT(SINK_WEBHOOK) },
	{ .key = "spool_max_bytes",
	  .type = CFG_SIZE,
	  .offset = SOFF(spool_max_bytes),
	  .min = 0,
	  .max = TIB,
	  .def = "64MiB",
	  .sink_mask = SINK_ALL },
};

int
config_choice_index(const char *const *choices, const char *s)
{
	for (int i = 0; choices[i] != NULL; i++)
		if (streq(choices[i], s))
			return i;
	return -1;
}

void
config_choices_join(const char *const *choices, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; choices[i] != NULL && used < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", choices[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* Parses "64MiB", "80MB", "4096", "1G": binary for K/KiB/M/MiB/G/GiB/T/TiB,
 * decimal for KB/MB/GB/TB. */
static int
parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "K", KIB },
		{ "KiB", KIB },
		{ "KB", 1000 },
		{ "M", MIB },
		{ "MiB", MIB },
		{ "MB", 1000000 },
		{ "G", GIB },
		{ "GiB", GIB },
		{ "GB", 1000000000 },
		{ "T", TIB },
		{ "TiB", TIB },
		{ "TB", UINT64_C(1000000000000) },
	};
	char digits[32];
	size_t nd = strspn(s, "0123456789");
	uint64_t v;

	if (nd == 0 || nd >= sizeof(digits))
		return nd == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, s, nd);
	digits[nd] = '\0';
	if (parse_u64(digits, &v) < 0)
		return -ERANGE;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (!streq(s + nd, units[i].suffix))
			continue;
		if (v > UINT64_MAX / units[i].mult)
			return -ERANGE;
		*ret = v * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

int
config_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1", NULL };
	static const char *const no[] = { "false", "no", "off", "0", NULL };

	for (size_t i = 0; yes[i] != NULL; i++)
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
	for (size_t i = 0; no[i] != NULL; i++)
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	return -EINVAL;
}

static int
set_integer(const struct cfg_row *row, void *base, const char *text, struct errbuf *err)
{
	uint64_t v;
	int rc;

	rc = row->type == CFG_SIZE ? parse_size(text, &v) : parse_u64(text, &v);
	if (rc == -EINVAL) {
		errbuf_set(err, "expected %s, got '%s'",
		           row->type == CFG_SIZE ? "a size (e.g. 4096 or 64MiB)" : "an integer",
		           text);
		return -EINVAL;
	}
	if (rc < 0 || v < row->min || v > row->max) {
		errbuf_set(err, "must be between %" PRIu64 " and %" PRIu64, row->min, row->max);
		return -EINVAL;
	}
	if (row->type == CFG_U32)
		*FIELD(base, row->offset, uint32_t) = (uint32_t)v;
	else
		*FIELD(base, row->offset, uint64_t) = v;
	return 0;
}

int
config_set_string(char **field, const char *text)
{
	char *s = NULL;

	if (text != NULL && (s = strdup(text)) == NULL)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static void
strlist_clear(char **items, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free(items[i]);
		items[i] = NULL;
	}
	*n = 0;
}

/* Replaces a string list with the colon-separated items of text. */
static int
set_strlist_text(const struct cfg_row *row, void *base, const char *text, struct errbuf *err)
{
	char **items = FIELD(base, row->offset, char *);
	size_t *n = FIELD(base, row->count_offset, size_t);
	char *tmp[CONFIG_MAX_RULES_DIRS] = { NULL };
	size_t cnt = 0;
	const char *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, ":");

		if (len > 0) {
			if (cnt >= row->max_items || cnt >= ARRAY_SIZE(tmp)) {
				strlist_clear(tmp, &cnt);
				errbuf_set(err, "at most %zu entries", row->max_items);
				return -EINVAL;
			}
			if ((tmp[cnt] = strndup(p, len)) == NULL) {
				strlist_clear(tmp, &cnt);
				return -ENOMEM;
			}
			cnt++;
		}
		p += len + (p[len] == ':');
	}
	if (cnt == 0) {
		errbuf_set(err, "expected at least one entry");
		return -EINVAL;
	}
	strlist_clear(items, n);
	memcpy(items, tmp, cnt * sizeof(*tmp));
	*n = cnt;
	return 0;
}

/* Sets one row from text; null means an explicit null/empty value. On error
 * err holds the reason without a location (the caller adds it). */
int
config_row_set(const struct cfg_row *row, void *base, const char *text, struct errbuf *err)
{
	char list[256];
	int idx;
	bool b;

	if (row->type == CFG_STRLIST)
		return set_strlist_text(row, base, text, err);
	if (text[0] == '\0' && row->type == CFG_STRING && row->def == NULL)
		return config_set_string(FIELD(base, row->offset, char *), NULL);
	if (text[0] == '\0' && row->type == CFG_STRING) {
		errbuf_set(err, "must not be empty");
		return -EINVAL;
	}
	switch (row->type) {
	case CFG_STRING:
		return config_set_string(FIELD(base, row->offset, char *), text);
	case CFG_BOOL:
		if (config_parse_bool(text, &b) < 0) {
			errbuf_set(err, "expected true or false, got '%s'", text);
			return -EINVAL;
		}
		*FIELD(base, row->offset, bool) = b;
		return 0;
	case CFG_U32:
	case CFG_SIZE:
		return set_integer(row, base, text, err);
	case CFG_ENUM:
	case CFG_ENUM_INT:
		if ((idx = config_choice_index(row->choices, text)) < 0) {
			config_choices_join(row->choices, list, sizeof(list));
			errbuf_set(err, "expected one of %s, got '%s'", list, text);
			return -EINVAL;
		}
		if (row->type == CFG_ENUM_INT) {
			*FIELD(base, row->offset, int) = idx;
			return 0;
		}
		return config_set_string(FIELD(base, row->offset, char *), text);
	default:
		errbuf_set(err, "cannot be set from a single value");
		return -EINVAL;
	}
}

void
config_sink_free(struct sink_config *s)
{
	free(s->path);
	free(s->facility);
	free(s->server);
	free(s->url);
	free(s->ca_file);
	free(s->client_cert);
	free(s->client_key);
	memset(s, 0, sizeof(*s));
}

void
config_collector_free(struct collector_config *c)
{
	free(c->id);
	free(c->binary);
	for (size_t i = 0; i < c->n_args; i++)
		free(c->args[i]);
	memset(c, 0, sizeof(*c));
}

void
config_sinks_clear(struct de_config *cfg)
{
	for (size_t i = 0; i < cfg->alerting.n_sinks; i++)
		config_sink_free(&cfg->alerting.sinks[i]);
	cfg->alerting.n_sinks = 0;
}

void
config_collectors_clear(struct de_config *cfg)
{
	for (size_t i = 0; i < cfg->n_collectors; i++)
		config_collector_free(&cfg->collectors[i]);
	cfg->n_collectors = 0;
}

void
config_free(struct de_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *row = &cfg_rows[i];

		if (row->type == CFG_STRING || row->type == CFG_ENUM)
			free(*FIELD(cfg, row->offset, char *));
		else if (row->type == CFG_STRLIST)
			strlist_clear(FIELD(cfg, row->offset, char *),
			              FIELD(cfg, row->count_offset, size_t));
	}
	config_sinks_clear(cfg);
	config_collectors_clear(cfg);
	free(cfg->source_path);
	memset(cfg, 0, sizeof(*cfg));
}

/* Fills a sink with the defaults of its type. */
int
config_sink_defaults(struct sink_config *s, enum sink_type t)
{
	struct errbuf err;
	int rc;

	memset(s, 0, sizeof(*s));
	s->type = t;
	for (size_t i = 0; i < ARRAY_SIZE(sink_rows); i++) {
		const struct cfg_row *row = &sink_rows[i];

		if (!(row->sink_mask & SINK_BIT(t)) || row->def == NULL)
			continue;
		if ((rc = config_row_set(row, s, row->def, &err)) < 0)
			return rc;
	}
	return 0;
}

static int
collector_default(struct collector_config *c)
{
	memset(c, 0, sizeof(*c));
	c->spawn = true;
	if ((c->id = strdup("procmond")) == NULL || (c->binary = strdup("procmond")) == NULL)
		return -ENOMEM;
	return 0;
}

int
config_defaults(struct de_config *cfg)
{
	struct de_config c = { 0 };
	struct errbuf err;
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *row = &cfg_rows[i];

		if (row->def == NULL)
			continue;
		if ((rc = config_row_set(row, &c, row->def, &err)) < 0)
			goto fail;
	}
	if ((rc = config_sink_defaults(&c.alerting.sinks[0], SINK_STDOUT)) < 0)
		goto fail;
	c.alerting.n_sinks = 1;
	c.n_collectors = 1;
	if ((rc = collector_default(&c.collectors[0])) < 0)
		goto fail;
	*cfg = c;
	return 0;
fail:
	config_free(&c);
	return rc;
}

static int
dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src != NULL && (*dst = strdup(src)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
sink_copy(struct sink_config *d, const struct sink_config *s)
{
	*d = *s;
	d->path = d->facility = d->server = d->url = NULL;
	d->ca_file = d->client_cert = d->client_key = NULL;
	if (dup_str(&d->path, s->path) < 0 || dup_str(&d->facility, s->facility) < 0 ||
	    dup_str(&d->server, s->server) < 0 || dup_str(&d->url, s->url) < 0 ||
	    dup_str(&d->ca_file, s->ca_file) < 0 || dup_str(&d->client_cert, s->client_cert) < 0 ||
	    dup_str(&d->client_key, s->client_key) < 0)
		return -ENOMEM;
	return 0;
}

static int
collector_copy(struct collector_config *d, const struct collector_config *s)
{
	*d = *s;
	d->id = d->binary = NULL;
	d->n_args = 0;
	if (dup_str(&d->id, s->id) < 0 || dup_str(&d->binary, s->binary) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_args; i++) {
		if (dup_str(&d->args[i], s->args[i]) < 0)
			return -ENOMEM;
		d->n_args = i + 1;
	}
	return 0;
}

static int
copy_rows(struct de_config *d, const struct de_config *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *row = &cfg_rows[i];

		if (row->type == CFG_STRING || row->type == CFG_ENUM) {
			if (dup_str(FIELD(d, row->offset, char *), *FIELD(s, row->offset, char *)) <
			    0)
				return -ENOMEM;
		} else if (row->type == CFG_STRLIST) {
			char **di = FIELD(d, row->offset, char *);
			char *const *si = FIELD(s, row->offset, char *);
			size_t *dn = FIELD(d, row->count_offset, size_t);
			size_t sn = *FIELD(s, row->count_offset, size_t);

			*dn = 0;
			for (size_t j = 0; j < sn; j++) {
				if (dup_str(&di[j], si[j]) < 0)
					return -ENOMEM;
				*dn = j + 1;
			}
		}
	}
	return 0;
}

/* Deep copy: every string of *src duplicated. Only the pointer fields are
 * reset first, so a failure half-way leaves *d safe for config_free. */
int
config_copy(const struct de_config *src, struct de_config *ret)
{
	struct de_config d = *src;
	size_t ns = src->alerting.n_sinks, nc = src->n_collectors;

	/* Forget every borrowed pointer before duplicating anything. */
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *row = &cfg_rows[i];

		if (row->type == CFG_STRING || row->type == CFG_ENUM)
			*FIELD(&d, row->offset, char *) = NULL;
		else if (row->type == CFG_STRLIST)
			*FIELD(&d, row->count_offset, size_t) = 0;
	}
	d.alerting.n_sinks = d.n_collectors = 0;
	d.source_path = NULL;
	if (copy_rows(&d, src) < 0 || dup_str(&d.source_path, src->source_path) < 0)
		goto fail;
	for (size_t i = 0; i < ns; i++) {
		d.alerting.n_sinks = i + 1;
		if (sink_copy(&d.alerting.sinks[i], &src->alerting.sinks[i]) < 0)
			goto fail;
	}
	for (size_t i = 0; i < nc; i++) {
		d.n_collectors = i + 1;
		if (collector_copy(&d.collectors[i], &src->collectors[i]) < 0)
			goto fail;
	}
	*ret = d;
	return 0;
fail:
	config_free(&d);
	return -ENOMEM;
}

/* The TLS files of a syslog or webhook sink: absolute paths, a client
 * certificate only with its key, and only where TLS is spoken. Whether the
 * files can be read and hold what they should is checked when the agent
 * opens the sink (as its user, after the privilege drop). */
static const char *
config_sink_tls_problem(const struct sink_config *s)
{
	const char *const files[] = { s->ca_file, s->client_cert, s->client_key };
	bool any = false;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (files[i] == NULL)
			continue;
		if (files[i][0] != '/')
			return "ca_file, client_cert and client_key must be absolute paths";
		any = true;
	}
	if ((s->client_cert == NULL) != (s->client_key == NULL))
		return "client_cert and client_key go together";
	if (any && s->type == SINK_SYSLOG &&
	    (s->server == NULL || strncmp(s->server, "tls://", 6) != 0))
		return "ca_file, client_cert and client_key need a tls:// server";
	if (any && s->type == SINK_WEBHOOK && s->url != NULL && strncmp(s->url, "https://", 8) != 0)
		return "ca_file, client_cert and client_key need an https:// url";
	return NULL;
}

/* Type-specific requirements, checked where the sink is written so the error
 * has its line. */
const char *
config_sink_problem(const struct sink_config *s)
{
	if (s->type == SINK_FILE && isempty(s->path))
		return "a file sink needs a path";
	if (s->type == SINK_WEBHOOK && (s->url == NULL || (strncmp(s->url, "http://", 7) != 0 &&
	                                                   strncmp(s->url, "https://", 8) != 0)))
		return "a webhook sink needs an http:// or https:// url";
	if (s->type == SINK_SYSLOG && s->server != NULL && strncmp(s->server, "tcp://", 6) != 0 &&
	    strncmp(s->server, "tls://", 6) != 0)
		return "a syslog server is tcp://host:port or tls://host:port";
	return config_sink_tls_problem(s);
}

const struct cfg_row *
config_row_find(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *r = &cfg_rows[i];

		if (((r->section == NULL && section == NULL) ||
		     (r->section != NULL && section != NULL && streq(r->section, section))) &&
		    streq(r->key, key))
			return r;
	}
	return NULL;
}

bool
config_section_known(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++)
		if (cfg_rows[i].section != NULL && streq(cfg_rows[i].section, section))
			return true;
	return false;
}

static int
parse_file(struct de_config *cfg, const char *path, struct errbuf *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	char *src;
	int rc;

	rc = read_file_at(AT_FDCWD, path, CONFIG_MAX_FILE, false, &buf, &len);
	if (rc < 0) {
		errbuf_set(err, "%s: %s", path, rc == -EFBIG ? "larger than 1 MiB" : strerror(-rc));
		return rc == -EFBIG ? -EINVAL : rc;
	}
	if ((rc = config_parse_string(cfg, path, buf, len, err)) < 0)
		return rc;
	if ((src = strdup(path)) == NULL)
		return -ENOMEM;
	free(cfg->source_path);
	cfg->source_path = src;
	return 0;
}

static int
load_standard_files(struct de_config *cfg, struct errbuf *err)
{
	const char *home = getenv("HOME");
	char user[PATH_MAX];
	int rc;

	if (access(CONFIG_SYSTEM_PATH, F_OK) == 0 &&
	    (rc = parse_file(cfg, CONFIG_SYSTEM_PATH, err)) < 0)
		return rc;
	if (isempty(home))
		return 0;
	if (snprintf(user, sizeof(user), "%s%s", home, CONFIG_USER_SUFFIX) >= (int)sizeof(user))
		return 0;
	if (access(user, F_OK) == 0 && (rc = parse_file(cfg, user, err)) < 0)
		return rc;
	return 0;
}

int
config_load(const char *path, struct de_config *cfg, struct errbuf *err)
{
	struct de_config c;
	int rc;

	if ((rc = config_defaults(&c)) < 0)
		return rc;
	rc = path != NULL ? parse_file(&c, path, err) : load_standard_files(&c, err);
	if (rc >= 0)
		rc = config_apply_env(&c, err);
	if (rc < 0) {
		config_free(&c);
		return rc;
	}
	*cfg = c;
	return 0;
}

/* ---- environment and flags ----------------------------------------------- */

static void
env_name(const struct cfg_row *row, char *buf, size_t n)
{
	size_t i;

	(void)snprintf(buf, n, "DAEMONEYE_%s_%s", row->section, row->key);
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z')
			buf[i] = (char)(buf[i] - 'a' + 'A');
}

int
config_apply_env(struct de_config *cfg, struct errbuf *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++) {
		const struct cfg_row *row = &cfg_rows[i];
		char name[CONFIG_MAX_NAME];
		const char *v;
		int rc;

		if (row->section == NULL || row->type == CFG_SINKS)
			continue;
		env_name(row, name, sizeof(name));
		if ((v = getenv(name)) == NULL)
			continue;
		if ((rc = config_row_set(row, cfg, v, err)) < 0) {
			if (rc == -EINVAL)
				errbuf_prefix(err, "%s", name);
			return rc;
		}
	}
	return 0;
}

static const struct cfg_row *
row_by_dotted(const char *key)
{
	const char *dot = strchr(key, '.');
	char section[CONFIG_MAX_NAME];

	if (dot == NULL || (size_t)(dot - key) >= sizeof(section))
		return NULL;
	memcpy(section, key, (size_t)(dot - key));
	section[dot - key] = '\0';
	return config_row_find(section, dot + 1);
}

int
config_set(struct de_config *cfg, const char *key, const char *value, struct errbuf *err)
{
	const struct cfg_row *row = row_by_dotted(key);
	int rc;

	if (row == NULL || row->type == CFG_SINKS) {
		errbuf_set(err, row == NULL ? "unknown key '%s'" : "%s cannot be set from a flag",
		           key);
		return -EINVAL;
	}
	if ((rc = config_row_set(row, cfg, value, err)) == -EINVAL)
		errbuf_prefix(err, "%s", key);
	return rc;
}

int
config_append(struct de_config *cfg, const char *key, const char *value, struct errbuf *err)
{
	const struct cfg_row *row = row_by_dotted(key);
	char **items;
	size_t *n;

	if (row == NULL || row->type != CFG_STRLIST) {
		errbuf_set(err, "%s: not a list key", key);
		return -EINVAL;
	}
	items = FIELD(cfg, row->offset, char *);
	n = FIELD(cfg, row->count_offset, size_t);
	if (isempty(value) || *n >= row->max_items) {
		errbuf_set(err, "%s: %s", key,
		           isempty(value) ? "must not be empty" : "too many entries");
		return -EINVAL;
	}
	if ((items[*n] = strdup(value)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* ---- validation and summary ---------------------------------------------- */

static int
validate_collectors(const struct de_config *cfg, const char *src, struct errbuf *err)
{
	for (size_t i = 0; i < cfg->n_collectors; i++) {
		const struct collector_config *c = &cfg->collectors[i];

		if (isempty(c->id) || isempty(c->binary)) {
			errbuf_set(err, "%s: collectors[%zu]: needs an id and a binary", src, i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (streq(cfg->collectors[j].id, c->id)) {
				errbuf_set(err, "%s: collectors: id '%s' is used twice", src,
				           c->id);
				return -EINVAL;
			}
	}
	return 0;
}

int
config_validate(const struct de_config *cfg, struct errbuf *err)
{
	const char *src = cfg->source_path ? cfg->source_path : "configuration";
	char sock[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	const char *why;

	if (isempty(cfg->agent.data_dir) || isempty(cfg->agent.user)) {
		errbuf_set(err, "%s: agent.data_dir and agent.user must be set", src);
		return -EINVAL;
	}
	if (cfg->detection.n_rules_dirs == 0) {
		errbuf_set(err, "%s: detection.rules_dirs: at least one directory", src);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->alerting.n_sinks; i++)
		if ((why = config_sink_problem(&cfg->alerting.sinks[i])) != NULL) {
			errbuf_set(err, "%s: alerting.sinks[%zu]: %s", src, i, why);
			return -EINVAL;
		}
	if (config_socket_path(cfg, sock, sizeof(sock)) < 0) {
		errbuf_set(err, "%s: agent.socket: the socket path is longer than %zu bytes", src,
		           sizeof(sock) - 1);
		return -EINVAL;
	}
	return validate_collectors(cfg, src, err);
}

static void
print_sink(const struct sink_config *s, size_t i, FILE *f)
{
	fprintf(f, "  sink[%zu]: %s", i, sink_type_to_string(s->type));
	switch (s->type) {
	case SINK_STDOUT:
		fprintf(f, " format=%s", sink_format_to_string(s->format));
		break;
	case SINK_FILE:
		fprintf(f, " path=%s format=%s max_bytes=%" PRIu64 " max_files=%" PRIu32,
		        s->path ? s->path : "-", sink_format_to_string(s->format), s->max_bytes,
		        s->max_files);
		break;
	case SINK_SYSLOG:
		fprintf(f, " facility=%s server=%s", s->facility ? s->facility : "auth",
		        s->server ? s->server : "/dev/log");
		break;
	case SINK_WEBHOOK:
		fprintf(f, " url=%s timeout_ms=%" PRIu32, s->url ? s->url : "-", s->timeout_ms);
		break;
	}
	if (s->ca_file != NULL)
		fprintf(f, " ca_file=%s", s->ca_file);
	if (s->client_cert != NULL)
		fprintf(f, " client_cert=%s client_key=%s", s->client_cert,
		        s->client_key ? s->client_key : "-");
	fprintf(f, " spool_max_bytes=%" PRIu64 "\n", s->spool_max_bytes);
}

static void
print_row(const struct cfg_row *row, const struct de_config *cfg, FILE *f)
{
	fprintf(f, "  %s.%s = ", row->section, row->key);
	switch (row->type) {
	case CFG_STRING:
	case CFG_ENUM: {
		const char *s = *FIELD(cfg, row->offset, char *const);

		fprintf(f, "%s\n", s ? s : "(default)");
		break;
	}
	case CFG_BOOL:
		fprintf(f, "%s\n", *FIELD(cfg, row->offset, const bool) ? "true" : "false");
		break;
	case CFG_U32:
		fprintf(f, "%" PRIu32 "\n", *FIELD(cfg, row->offset, const uint32_t));
		break;
	case CFG_SIZE:
		fprintf(f, "%" PRIu64 "\n", *FIELD(cfg, row->offset, const uint64_t));
		break;
	case CFG_STRLIST: {
		char *const *items = FIELD(cfg, row->offset, char *const);
		size_t n = *FIELD(cfg, row->count_offset, const size_t);

		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s%s", i ? ":" : "", items[i]);
		fputc('\n', f);
		break;
	}
	default:
		fputc('\n', f);
		break;
	}
}

void
config_print_summary(const struct de_config *cfg, FILE *f)
{
	char sock[PATH_MAX], wal[PATH_MAX];

	fprintf(f, "configuration: %s\n", cfg->source_path ? cfg->source_path : "(defaults)");
	for (size_t i = 0; i < ARRAY_SIZE(cfg_rows); i++)
		if (cfg_rows[i].type != CFG_SINKS && cfg_rows[i].type != CFG_COLLECTORS)
			print_row(&cfg_rows[i], cfg, f);
	if (config_socket_path(cfg, sock, sizeof(sock)) == 0)
		fprintf(f, "  effective socket: %s\n", sock);
	if (config_wal_dir(cfg, wal, sizeof(wal)) == 0)
		fprintf(f, "  effective wal_dir: %s\n", wal);
	fprintf(f, "alerting.sinks: %zu\n", cfg->alerting.n_sinks);
	for (size_t i = 0; i < cfg->alerting.n_sinks; i++)
		print_sink(&cfg->alerting.sinks[i], i, f);
	fprintf(f, "collectors: %zu\n", cfg->n_collectors);
	for (size_t i = 0; i < cfg->n_collectors; i++) {
		const struct collector_config *c = &cfg->collectors[i];

		fprintf(f, "  collector[%zu]: id=%s binary=%s spawn=%s args=%zu\n", i, c->id,
		        c->binary, c->spawn ? "true" : "false", c->n_args);
	}
}

static int
path_or_default(const char *set, const char *dir, const char *leaf, char *buf, size_t n)
{
	int w;

	if (set != NULL)
		w = snprintf(buf, n, "%s", set);
	else if (dir != NULL)
		w = snprintf(buf, n, "%s/%s", dir, leaf);
	else
		return -EINVAL;
	if (w < 0 || (size_t)w >= n)
		return -ENAMETOOLONG;
	return 0;
}

int
config_socket_path(const struct de_config *cfg, char *buf, size_t n)
{
	return path_or_default(cfg->agent.socket, cfg->agent.data_dir, "daemoneye.sock", buf, n);
}

int
config_wal_dir(const struct de_config *cfg, char *buf, size_t n)
{
	return path_or_default(cfg->procmond.wal_dir, cfg->agent.data_dir, "wal", buf, n);
}

const char *
sink_type_to_string(enum sink_type t)
{
	return (size_t)t < ARRAY_SIZE(config_sink_type_names) - 1 ? config_sink_type_names[t]
	                                                          : "unknown";
}

const char *
sink_format_to_string(enum sink_format f)
{
	return (size_t)f < ARRAY_SIZE(format_choices) - 1 ? format_choices[f] : "unknown";
}

const struct cfg_row *
config_sink_row_find(const char *key, enum sink_type t)
{
	for (size_t i = 0; i < ARRAY_SIZE(sink_rows); i++)
		if (streq(sink_rows[i].key, key) && (sink_rows[i].sink_mask & SINK_BIT(t)))
			return &sink_rows[i];
	return NULL;
}
