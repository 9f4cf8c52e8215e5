/* Internals shared by config.c (the key tables, value setters, defaults,
 * loading, environment, flags, validation) and config-yaml.c (the YAML and
 * collectors.json readers). Not a contract: only these two files include it. */
#ifndef DE_CONFIG_INTERNAL_H
#define DE_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errbuf.h"

#define CONFIG_MAX_FILE (1u << 20) /* a config or collectors.json larger than 1 MiB is a mistake */
#define CONFIG_MAX_NAME 128        /* longest dotted key name in messages */

#define FIELD(base, off, T) ((T *)(void *)((char *)(base) + (off)))

enum cfg_type {
	CFG_STRING,     /* char *; NULL allowed only when the default is NULL */
	CFG_BOOL,       /* bool */
	CFG_U32,        /* uint32_t, plain decimal */
	CFG_SIZE,       /* uint64_t, decimal with an optional K/KiB/KB/M/... suffix */
	CFG_ENUM,       /* char *, one of choices */
	CFG_ENUM_INT,   /* an int-sized enum: the index of the value in choices */
	CFG_STRLIST,    /* char *[max_items] with a size_t count at count_offset */
	CFG_SINKS,      /* alerting.sinks */
	CFG_COLLECTORS, /* collectors */
};

struct cfg_row {
	const char *section; /* NULL for a top-level key */
	const char *key;
	enum cfg_type type;
	size_t offset;
	size_t count_offset;
	size_t max_items;
	uint64_t min, max;
	const char *const *choices;
	const char *def; /* the default as text, parsed like any value; NULL = unset */
	unsigned sink_mask;
};

#define SINK_ALL    0xfu
#define SINK_BIT(t) (1u << (t))

/* "stdout", "file", "syslog", "webhook", NULL: indexed by enum sink_type. */
extern const char *const config_sink_type_names[];

/* Index of s in a NULL-terminated list, or -1. */
int config_choice_index(const char *const *choices, const char *s);
/* "a, b, c" into buf (truncated to n). */
void config_choices_join(const char *const *choices, char *buf, size_t n);
/* true/false/yes/no/on/off/1/0, any case. Returns 0 or -EINVAL. */
int config_parse_bool(const char *s, bool *ret);
/* Replaces *field with a copy of text (NULL allowed). Returns 0 or -ENOMEM. */
int config_set_string(char **field, const char *text);

/* Sets one row of the struct at base from text. Returns 0, -ENOMEM, or
 * -EINVAL with the reason (without a location) in err. */
int config_row_set(const struct cfg_row *row, void *base, const char *text, struct errbuf *err);
/* The row of a section key (section NULL: a top-level key), or NULL. */
const struct cfg_row *config_row_find(const char *section, const char *key);
/* The row of a sink key valid for sink type t, or NULL. */
const struct cfg_row *config_sink_row_find(const char *key, enum sink_type t);
bool config_section_known(const char *section);

/* Fills *s with the defaults of a sink of type t. Returns 0 or -ENOMEM. */
int config_sink_defaults(struct sink_config *s, enum sink_type t);
/* Why a sink cannot work (a file sink without a path, ...), or NULL. */
const char *config_sink_problem(const struct sink_config *s);
void config_sink_free(struct sink_config *s);
void config_collector_free(struct collector_config *c);
void config_sinks_clear(struct de_config *cfg);
void config_collectors_clear(struct de_config *cfg);

#endif
