/* `ledger verify [--pubkey FILE] [--checkpoint FILE]`, `ledger show [--last N]`,
 * `ledger prove SEQ`, `ledger consistency OLD_SIZE`,
 * `ledger verify-proof FILE [--pubkey FILE]`, `ledger export`, `ledger pubkey`:
 * the audit ledger at <data_dir>/ledger, read straight from its files
 * (read-only, no agent needed, so it also works offline on a copied data
 * directory). docs/ledger.md describes the ledger and each subcommand.
 *
 * verify and verify-proof exit 1 when something does not verify, naming the
 * first bad entry; a proof (inclusion or consistency) is a JSON document
 * whatever --format says (it is meant to be saved and checked elsewhere);
 * export is always JSON lines. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "ledger.h"
#include "output.h"
#include "timeutil.h"
#include "util.h"

#define LEDGER_SHOW_DEFAULT 20
#define LEDGER_SHOW_MAX     10000000
#define LEDGER_PROOF_MAX    (64 * 1024)
#define LEDGER_PAYLOAD_SHOW 60 /* characters of the payload in the table */

struct ledger_cmd {
	const char *name;
	int (*run)(struct cli_ctx *ctx, int argc, char **argv);
	const char *usage;
};

/* Parses the options a subcommand takes (each "--name VALUE", names[k] into
 * vals[k]; at most two) and returns the index of the first positional
 * argument, or minus the usage exit code. */
static int
parse_opts(int argc, char **argv, const char *const *names, const char **vals, size_t n)
{
	struct option opts[3] = { { 0 } };
	int c;

	for (size_t k = 0; k < n && k < 2; k++)
		opts[k] = (struct option){ names[k], required_argument, NULL, (int)k + 1 };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c < 1 || c > (int)n)
			return -cli_usage_error("ledger %s: unknown option or missing value: %s",
			                        argv[0], argv[optind - 1]);
		vals[c - 1] = optarg;
	}
	return optind;
}

static int
parse_opt(int argc, char **argv, const char *name, const char **ret_val)
{
	return parse_opts(argc, argv, &name, ret_val, 1);
}

static int
open_ledger(const struct cli_ctx *ctx, struct ledger **ret)
{
	struct errbuf err = { { 0 } };
	char dir[4200];
	int rc;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/ledger", ctx->data_dir) >= sizeof(dir))
		return cli_error("data directory path too long");
	if (access(dir, F_OK) < 0)
		return cli_error("no ledger at %s: is --data-dir right, and has the agent run?",
		                 dir);
	if ((rc = ledger_open(dir, LEDGER_RO, ret, &err)) < 0)
		return cli_error("%s", err.msg[0] ? err.msg : strerror(-rc));
	return CLI_EXIT_OK;
}

static json_t *
report_json(const struct ledger_report *r, const char *trust)
{
	char root[2 * LEDGER_HASH_LEN + 1];
	json_t *o;

	hex_encode(r->root, sizeof(r->root), root);
	o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:s, s:s, s:s}", "ok", r->ok, "entries",
	              (json_int_t)r->entries, "checkpoints", (json_int_t)r->checkpoints,
	              "last_checkpoint_size", (json_int_t)r->last_checkpoint_size, "unsigned_tail",
	              (json_int_t)r->unsigned_tail, "root_hash", root, "key_id", r->key_id,
	              "trusted_key", trust);
	if (o != NULL && !r->ok) {
		json_object_set_new(o, "first_bad_seq", json_integer((json_int_t)r->first_bad_seq));
		json_object_set_new(o, "reason", json_string(r->reason));
	}
	return o;
}

static int
ledger_cmd_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char *const names[] = { "pubkey", "checkpoint" };
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	_cleanup_free_ char *trusted = NULL;
	struct errbuf err = { { 0 } };
	struct ledger_report rep;
	const char *vals[2] = { NULL, NULL };
	size_t tlen = 0;
	json_t *doc;
	int i, rc;

	if ((i = parse_opts(argc, argv, names, vals, 2)) < 0)
		return -i;
	if (i < argc)
		return cli_usage_error("ledger verify: unexpected argument '%s'", argv[i]);
	if (vals[1] != NULL &&
	    (rc = read_file_at(AT_FDCWD, vals[1], LEDGER_PROOF_MAX, false, &trusted, &tlen)) < 0)
		return cli_error("%s: %s", vals[1], strerror(-rc));
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	rc = ledger_verify_with(l, vals[0], trusted, tlen, &rep, &err);
	if (rc == -EINVAL)
		return cli_usage_error("ledger verify --checkpoint %s: %s", vals[1], err.msg);
	if (rc < 0)
		return cli_error("ledger verify: %s", err.msg[0] ? err.msg : strerror(-rc));
	doc = report_json(&rep, vals[0] != NULL ? vals[0] : ledger_pubkey_path(l));
	if (doc == NULL || output_document(ctx->format, ctx->out, doc) < 0) {
		json_decref(doc);
		return cli_error("writing the output");
	}
	json_decref(doc);
	fflush(ctx->out);
	if (!rep.ok)
		return cli_error("ledger verification FAILED at entry %" PRIu64 ": %s",
		                 rep.first_bad_seq, rep.reason);
	return CLI_EXIT_OK;
}

static const char *
show_text(json_t *e, const char *key)
{
	const char *s = json_string_value(json_object_get(e, key));

	return s != NULL ? s : "";
}

static int
show_table(struct cli_ctx *ctx, json_t *arr)
{
	static const char *const cols[] = { "seq",    "time",    "actor",
		                            "action", "payload", "entry_hash" };
	_cleanup_(output_freep) struct output *o = NULL;
	struct output_opts oo = { .format = ctx->format, .f = ctx->out, .width = ctx->term_width };
	size_t i;
	json_t *e;

	if (output_new(&oo, &o) < 0 || output_columns(o, 6, cols) < 0)
		return cli_error("cannot start the output");
	json_array_foreach(arr, i, e)
	{
		char seq[24], payload[LEDGER_PAYLOAD_SHOW + 4], hash[17];
		const char *vals[6];

		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(e, "seq")));
		de_strlcpy(payload, show_text(e, "payload"), sizeof(payload));
		if (strlen(show_text(e, "payload")) >= sizeof(payload) - 3)
			memcpy(payload + sizeof(payload) - 4, "...", 4);
		de_strlcpy(hash, show_text(e, "entry_hash"), sizeof(hash));
		vals[0] = seq;
		vals[1] = show_text(e, "timestamp");
		vals[2] = show_text(e, "actor");
		vals[3] = show_text(e, "action");
		/* People get a glance; csv gets everything. */
		vals[4] = ctx->format == CLI_FORMAT_TABLE ? payload : show_text(e, "payload");
		vals[5] = ctx->format == CLI_FORMAT_TABLE ? hash : show_text(e, "entry_hash");
		if (output_row(o, 6, vals, "ittttt") < 0)
			return cli_error("writing the output");
	}
	return output_end(o) < 0 ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
ledger_cmd_show(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	const char *last = NULL;
	uint64_t n = LEDGER_SHOW_DEFAULT;
	json_t *arr = NULL;
	int i, rc;

	if ((i = parse_opt(argc, argv, "last", &last)) < 0)
		return -i;
	if (i < argc)
		return cli_usage_error("ledger show: unexpected argument '%s'", argv[i]);
	if (last != NULL && (parse_u64(last, &n) < 0 || n == 0 || n > LEDGER_SHOW_MAX))
		return cli_usage_error("ledger show --last: '%s' is not a number from 1 to %d",
		                       last, LEDGER_SHOW_MAX);
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	if ((rc = ledger_show(l, n, &arr, &err)) < 0)
		return cli_error("ledger show: %s", err.msg[0] ? err.msg : strerror(-rc));
	if (ctx->format == CLI_FORMAT_JSON) {
		rc = json_dumpf(arr, ctx->out, JSON_INDENT(2)) < 0 || fputc('\n', ctx->out) < 0
		         ? cli_error("writing the output")
		         : CLI_EXIT_OK;
	} else {
		rc = show_table(ctx, arr);
	}
	json_decref(arr);
	return rc;
}

static int
ledger_cmd_prove(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	json_t *proof = NULL;
	uint64_t seq;
	int rc;

	if (argc != 2 || parse_u64(argv[1], &seq) < 0)
		return cli_usage_error("usage: ledger prove SEQ (an entry's sequence number)");
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	if ((rc = ledger_prove(l, seq, &proof, &err)) < 0)
		return cli_error("ledger prove: %s", err.msg[0] ? err.msg : strerror(-rc));
	rc = json_dumpf(proof, ctx->out, JSON_INDENT(2)) < 0 || fputc('\n', ctx->out) < 0;
	json_decref(proof);
	return rc ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
ledger_cmd_consistency(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	json_t *proof = NULL;
	uint64_t size;
	int rc;

	if (argc != 2 || parse_u64(argv[1], &size) < 0)
		return cli_usage_error("usage: ledger consistency OLD_SIZE (the tree size of a "
		                       "checkpoint you kept)");
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	if ((rc = ledger_prove_consistency(l, size, &proof, &err)) < 0)
		return cli_error("ledger consistency: %s", err.msg[0] ? err.msg : strerror(-rc));
	rc = json_dumpf(proof, ctx->out, JSON_INDENT(2)) < 0 || fputc('\n', ctx->out) < 0;
	json_decref(proof);
	return rc ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
ledger_cmd_verify_proof(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_free_ char *text = NULL, *defkey = NULL;
	struct errbuf err = { { 0 } };
	const char *pubkey = NULL;
	bool signed_ok = false;
	size_t len = 0;
	json_t *doc;
	int i, rc;

	if ((i = parse_opt(argc, argv, "pubkey", &pubkey)) < 0)
		return -i;
	if (argc - i != 1)
		return cli_usage_error("usage: ledger verify-proof FILE [--pubkey FILE]");
	rc = read_file_at(AT_FDCWD, streq(argv[i], "-") ? "/dev/stdin" : argv[i], LEDGER_PROOF_MAX,
	                  false, &text, &len);
	if (rc < 0)
		return cli_error("%s: %s", argv[i],
		                 rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
	if (pubkey == NULL) {
		if (asprintf(&defkey, "%s/ledger/ledger.pub", ctx->data_dir) < 0)
			return cli_error("out of memory");
		if (access(defkey, R_OK) < 0)
			return cli_error("no public key to check the checkpoint signature: pass "
			                 "--pubkey FILE (%s is not readable)",
			                 defkey);
		pubkey = defkey;
	}
	if ((rc = ledger_verify_proof(text, len, pubkey, &signed_ok, &err)) < 0)
		return cli_error("%s: %s", argv[i], err.msg[0] ? err.msg : strerror(-rc));
	doc = json_pack("{s:b, s:s, s:s}", "ok", 1, "proof", argv[i], "trusted_key", pubkey);
	rc = doc == NULL || output_document(ctx->format, ctx->out, doc) < 0;
	json_decref(doc);
	return rc ? cli_error("writing the output") : CLI_EXIT_OK;
}

static int
ledger_cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	struct errbuf err = { { 0 } };
	int rc;

	if (argc > 1)
		return cli_usage_error("ledger export: unexpected argument '%s'", argv[1]);
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	if ((rc = ledger_export(l, ctx->out, &err)) < 0)
		return cli_error("ledger export: %s", err.msg[0] ? err.msg : strerror(-rc));
	return CLI_EXIT_OK;
}

static int
ledger_cmd_pubkey(struct cli_ctx *ctx, int argc, char **argv)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	_cleanup_free_ char *pem = NULL;
	size_t len = 0;
	int rc;

	if (argc > 1)
		return cli_usage_error("ledger pubkey: unexpected argument '%s'", argv[1]);
	if ((rc = open_ledger(ctx, &l)) != 0)
		return rc;
	if ((rc = read_file_at(AT_FDCWD, ledger_pubkey_path(l), 4096, false, &pem, &len)) < 0)
		return cli_error("%s: %s", ledger_pubkey_path(l), strerror(-rc));
	return fwrite(pem, 1, len, ctx->out) == len ? CLI_EXIT_OK : cli_error("writing the output");
}

static const struct ledger_cmd ledger_cmds[] = {
	{ "verify", ledger_cmd_verify, "verify [--pubkey FILE] [--checkpoint FILE]" },
	{ "show", ledger_cmd_show, "show [--last N]" },
	{ "prove", ledger_cmd_prove, "prove SEQ" },
	{ "consistency", ledger_cmd_consistency, "consistency OLD_SIZE" },
	{ "verify-proof", ledger_cmd_verify_proof, "verify-proof FILE [--pubkey FILE]" },
	{ "export", ledger_cmd_export, "export" },
	{ "pubkey", ledger_cmd_pubkey, "pubkey" },
};

int
cmd_ledger(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc >= 2) {
		for (size_t i = 0; i < ARRAY_SIZE(ledger_cmds); i++)
			if (streq(argv[1], ledger_cmds[i].name))
				return ledger_cmds[i].run(ctx, argc - 1, argv + 1);
	}
	fprintf(stderr, "usage: daemoneye-cli ledger SUBCOMMAND\n");
	for (size_t i = 0; i < ARRAY_SIZE(ledger_cmds); i++)
		fprintf(stderr, "  ledger %s\n", ledger_cmds[i].usage);
	return argc >= 2 ? cli_usage_error("ledger: unknown subcommand '%s'", argv[1])
	                 : CLI_EXIT_USAGE;
}
