/* `processes [--tree] [--pid PID]`: the current processes from the store's
 * live_processes snapshot (or, when it is empty because no agent is running,
 * the latest record of each pid in process_instances).
 *
 *   processes              one row per process
 *   processes --pid N      every column of that process (its latest record)
 *   processes --tree       parent -> children with pid, user and command,
 *                          each line fitted to the terminal width
 *   --tree --pid N         the subtree under N */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "output.h"
#include "store.h"
#include "util.h"

#define TREE_MAX_DEPTH 128 /* deeper levels are drawn at this depth */
#define TREE_SQL_MAX   1024

static const char tree_cols[] = "pid, ppid, user_name, name, command_line";

struct tree_node {
	int64_t pid, ppid;
	const char *user, *name, *cmd;  /* point into text */
	char *text;                     /* the three strings, one allocation */
	size_t first_child, n_children; /* into the by-parent index */
	bool visited;
};

struct tree {
	struct tree_node *nodes;
	size_t n, cap;
	size_t *by_parent; /* node indexes sorted by (ppid, pid) */
	int rc;            /* first error of the row callback */
};

static int
cmp_pid(const void *a, const void *b)
{
	const struct tree_node *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

static const struct tree_node *sort_base;

static int
cmp_parent(const void *a, const void *b)
{
	const struct tree_node *x = &sort_base[*(const size_t *)a];
	const struct tree_node *y = &sort_base[*(const size_t *)b];

	if (x->ppid != y->ppid)
		return (x->ppid > y->ppid) - (x->ppid < y->ppid);
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static struct tree_node *
tree_find(struct tree *t, int64_t pid)
{
	struct tree_node key = { .pid = pid };

	return bsearch(&key, t->nodes, t->n, sizeof(*t->nodes), cmp_pid);
}

/* store_query row callback: pid, ppid, user_name, name, command_line. */
static int
tree_add_row(void *arg, int ncol, const char *const *names, const char *const *values,
             const char *types)
{
	struct tree *t = arg;
	struct tree_node *nd;
	size_t lu, ln, lc;
	int64_t pid = 0, ppid = -1;

	(void)names;
	(void)types;
	if (ncol != 5 || values[0] == NULL || parse_i64(values[0], &pid) < 0)
		return 0; /* a row without a pid cannot be placed */
	if (values[1] != NULL && parse_i64(values[1], &ppid) < 0)
		ppid = -1;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct tree_node *nn = reallocarray(t->nodes, cap, sizeof(*nn));

		if (nn == NULL) {
			t->rc = -ENOMEM;
			return 1;
		}
		t->nodes = nn;
		t->cap = cap;
	}
	lu = values[2] ? strlen(values[2]) : 0;
	ln = values[3] ? strlen(values[3]) : 0;
	lc = values[4] ? strlen(values[4]) : 0;
	nd = &t->nodes[t->n];
	memset(nd, 0, sizeof(*nd));
	if ((nd->text = malloc(lu + ln + lc + 3)) == NULL) {
		t->rc = -ENOMEM;
		return 1;
	}
	nd->pid = pid;
	nd->ppid = ppid;
	nd->user = memcpy(nd->text, values[2] ? values[2] : "", lu + 1);
	nd->name = memcpy(nd->text + lu + 1, values[3] ? values[3] : "", ln + 1);
	nd->cmd = memcpy(nd->text + lu + ln + 2, values[4] ? values[4] : "", lc + 1);
	if (*nd->cmd == '\0')
		nd->cmd = *nd->name ? nd->name : "?";
	t->n++;
	return 0;
}

/* Sorts the nodes and builds the parent index. Returns 0 or -ENOMEM. */
static int
tree_index(struct tree *t)
{
	size_t i;

	t->by_parent = calloc(t->n ? t->n : 1, sizeof(size_t));
	if (t->by_parent == NULL)
		return -ENOMEM;
	qsort(t->nodes, t->n, sizeof(*t->nodes), cmp_pid);
	for (i = 0; i < t->n; i++)
		t->by_parent[i] = i;
	sort_base = t->nodes;
	qsort(t->by_parent, t->n, sizeof(size_t), cmp_parent);
	for (i = 0; i < t->n;) {
		size_t j = i;
		struct tree_node *parent = tree_find(t, t->nodes[t->by_parent[i]].ppid);

		while (j < t->n && t->nodes[t->by_parent[j]].ppid == t->nodes[t->by_parent[i]].ppid)
			j++;
		if (parent) {
			parent->first_child = i;
			parent->n_children = j - i;
		}
		i = j;
	}
	return 0;
}

static void
tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].text);
	free(t->nodes);
	free(t->by_parent);
}

/* Prints s cut to at most w display columns ("…" marks the cut); w <= 0: all. */
static void
print_fitted(FILE *f, const char *s, int w)
{
	int used = 0;

	if (w <= 0 || output_display_width(s) <= w) {
		fputs(s, f);
		return;
	}
	for (const char *p = s; *p && used < w - 1;) {
		size_t k = 1;

		while ((p[k] & 0xc0) == 0x80)
			k++;
		fwrite(p, 1, k, f);
		p += k;
		used++;
	}
	fputs("…", f);
}

/* Deeper chains are cut here (what is below is drawn as new roots), so a
 * pathological chain cannot exhaust the stack. */
#define TREE_MAX_RECURSION 4096

enum draw_mode {
	DRAW_TABLE = 0, /* the drawn tree */
	DRAW_JSON,      /* nested objects */
	DRAW_CSV,       /* flat rows in drawing order, with their depth */
};

struct draw {
	FILE *f;
	int width;
	char prefix[TREE_MAX_DEPTH * 8 + 1]; /* "│  " or "   " per level */
	enum draw_mode mode;
	struct output *csv;
	int depth;
};

static void
draw_line(struct draw *d, const struct tree_node *nd, bool root, bool last)
{
	char line[8192];

	snprintf(line, sizeof(line), "%s%s%" PRId64 " %s %s", d->prefix,
	         root ? "" : (last ? "└─ " : "├─ "), nd->pid, *nd->user ? nd->user : "-", nd->cmd);
	print_fitted(d->f, line, d->width);
	fputc('\n', d->f);
}

static void
csv_line(struct draw *d, const struct tree_node *nd)
{
	char pid[24], ppid[24], depth[16];
	const char *v[6] = { pid, ppid, depth, nd->user, nd->name, nd->cmd };

	snprintf(pid, sizeof(pid), "%" PRId64, nd->pid);
	snprintf(ppid, sizeof(ppid), "%" PRId64, nd->ppid);
	snprintf(depth, sizeof(depth), "%d", d->depth);
	output_row(d->csv, 6, v, "iiittt");
}

static json_t *
node_json(const struct tree_node *nd, int depth)
{
	return json_pack("{sI sI ss ss ss si s[]}", "pid", (json_int_t)nd->pid, "ppid",
	                 (json_int_t)nd->ppid, "user", nd->user, "name", nd->name, "command",
	                 nd->cmd, "depth", depth, "children");
}

/* Draws (or collects into siblings) nd and everything under it. */
static void
tree_walk(struct tree *t, struct draw *d, struct tree_node *nd, bool root, bool last,
          json_t *siblings)
{
	size_t plen = strlen(d->prefix);
	json_t *kids = NULL;

	if (nd->visited)
		return;
	nd->visited = true;
	if (d->mode == DRAW_JSON) {
		json_t *o = node_json(nd, d->depth);

		if (o == NULL)
			return;
		kids = json_object_get(o, "children");
		json_array_append_new(siblings, o);
	} else if (d->mode == DRAW_CSV) {
		csv_line(d, nd);
	} else {
		draw_line(d, nd, root, last);
	}
	if (d->depth >= TREE_MAX_RECURSION)
		return;
	if (!root && d->depth < TREE_MAX_DEPTH)
		/* Keep the bar going below a middle child; blanks below the last. */
		snprintf(d->prefix + plen, sizeof(d->prefix) - plen, "%s", last ? "   " : "│  ");
	d->depth++;
	for (size_t i = 0; i < nd->n_children; i++) {
		struct tree_node *c = &t->nodes[t->by_parent[nd->first_child + i]];

		if (c != nd)
			tree_walk(t, d, c, false, i + 1 == nd->n_children, kids);
	}
	d->depth--;
	d->prefix[plen] = '\0';
}

static bool
is_root(struct tree *t, const struct tree_node *nd)
{
	return nd->ppid == nd->pid || tree_find(t, nd->ppid) == NULL;
}

static int
tree_print(struct cli_ctx *ctx, struct tree *t, int64_t only_pid)
{
	static const char *const names[] = { "pid", "ppid", "depth", "user", "name", "command" };
	struct output_opts oo = { .format = CLI_FORMAT_CSV, .f = ctx->out };
	struct draw d = { .f = ctx->out, .width = ctx->term_width };
	_cleanup_(output_freep) struct output *csv = NULL;
	json_t *top = NULL;
	int rc = 0;

	d.mode = ctx->format == CLI_FORMAT_JSON  ? DRAW_JSON
	         : ctx->format == CLI_FORMAT_CSV ? DRAW_CSV
	                                         : DRAW_TABLE;
	if (only_pid >= 0 && tree_find(t, only_pid) == NULL)
		return cli_error("processes: no process with pid %" PRId64, only_pid);
	if (d.mode == DRAW_JSON && (top = json_array()) == NULL)
		return cli_error("out of memory");
	if (d.mode == DRAW_CSV && (output_new(&oo, &csv) < 0 || output_columns(csv, 6, names) < 0))
		return cli_error("out of memory");
	d.csv = csv;
	if (only_pid >= 0) {
		tree_walk(t, &d, tree_find(t, only_pid), true, true, top);
	} else {
		for (size_t i = 0; i < t->n; i++)
			if (is_root(t, &t->nodes[i]))
				tree_walk(t, &d, &t->nodes[i], true, true, top);
		/* What is left sits on a cycle (pid reuse) or below a cut chain. */
		for (size_t i = 0; i < t->n; i++)
			tree_walk(t, &d, &t->nodes[i], true, true, top);
	}
	if (d.mode == DRAW_JSON) {
		rc = output_document(CLI_FORMAT_JSON, ctx->out, top);
		json_decref(top);
	} else if (d.mode == DRAW_CSV) {
		rc = output_end(csv);
	}
	if (rc < 0 || fflush(ctx->out) != 0)
		return cli_error("writing the output");
	return CLI_EXIT_OK;
}

/* The source of "current processes": live_processes, or when it is empty
 * the latest instance of each pid. Returns true when live rows exist. */
static int
process_source(struct store *st, const char **ret)
{
	struct errbuf err = { { 0 } };
	json_t *rows = NULL;
	int rc;

	rc = cli_query_json(st, "SELECT 1 AS x FROM live_processes LIMIT 1", &rows, &err);
	if (rc < 0)
		return rc;
	*ret = json_array_size(rows) > 0 ? "live_processes"
	                                 : "(SELECT *, max(start_time) AS latest_start FROM "
	                                   "process_instances GROUP BY pid)";
	json_decref(rows);
	return 0;
}

static int
processes_tree(struct cli_ctx *ctx, struct store *st, const char *src, int64_t pid)
{
	char sql[TREE_SQL_MAX];
	struct errbuf err = { { 0 } };
	struct tree t = { 0 };
	int rc;

	snprintf(sql, sizeof(sql), "SELECT %s FROM %s", tree_cols, src);
	rc = store_query(st, sql, CLI_QUERY_TIMEOUT_MS, tree_add_row, &t, &err);
	if (rc >= 0 && t.rc < 0)
		rc = t.rc;
	if (rc >= 0)
		rc = tree_index(&t);
	if (rc < 0) {
		tree_free(&t);
		return cli_error("reading processes: %s", err.msg[0] ? err.msg : strerror(-rc));
	}
	rc = tree_print(ctx, &t, pid);
	tree_free(&t);
	return rc;
}

static int
processes_one(struct cli_ctx *ctx, struct store *st, int64_t pid)
{
	char sql[TREE_SQL_MAX];
	struct errbuf err = { { 0 } };
	json_t *rows = NULL;
	int rc;

	snprintf(sql, sizeof(sql),
	         "SELECT * FROM live_processes WHERE pid = %" PRId64 " UNION ALL "
	         "SELECT * FROM (SELECT * FROM processes WHERE pid = %" PRId64
	         " ORDER BY start_time DESC LIMIT 1) LIMIT 1",
	         pid, pid);
	if (ctx->format == CLI_FORMAT_CSV)
		return cli_print_query(ctx, st, sql, CLI_FORMAT_CSV);
	if ((rc = cli_query_json(st, sql, &rows, &err)) < 0)
		return cli_error("reading processes: %s", err.msg[0] ? err.msg : strerror(-rc));
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return cli_error("processes: no process with pid %" PRId64 " in %s", pid,
		                 ctx->store_path);
	}
	rc = output_document(ctx->format, ctx->out, json_array_get(rows, 0));
	json_decref(rows);
	return rc < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

int
cmd_processes(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", no_argument, NULL, 't' },
		{ "pid", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	_cleanup_(store_closep) struct store *st = NULL;
	char sql[TREE_SQL_MAX];
	const char *src = NULL;
	bool tree = false;
	int64_t pid = -1;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 't')
			tree = true;
		else if (c == 'p' && parse_i64(optarg, &pid) == 0 && pid >= 0 && pid <= INT32_MAX)
			continue;
		else if (c == 'p')
			return cli_usage_error("processes --pid: '%s' is not a process id", optarg);
		else
			return cli_usage_error("processes: unknown option or missing value: %s",
			                       argv[optind - 1]);
	}
	if (optind < argc)
		return cli_usage_error("processes: unexpected argument '%s'", argv[optind]);
	if ((rc = cli_store_open(ctx, &st)) != 0)
		return rc;
	if (pid >= 0 && !tree)
		return processes_one(ctx, st, pid);
	if ((rc = process_source(st, &src)) < 0)
		return cli_error("reading processes from %s: %s", ctx->store_path, strerror(-rc));
	if (tree)
		return processes_tree(ctx, st, src, pid);
	snprintf(sql, sizeof(sql),
	         "SELECT pid, ppid, user_name AS user, state, threads, name, command_line "
	         "FROM %s ORDER BY pid",
	         src);
	return cli_print_query(ctx, st, sql, ctx->format);
}
