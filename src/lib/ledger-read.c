/* The ledger's read side: full verification, inclusion proofs and their
 * verifier, and the JSON views used by `daemoneye-cli ledger`. Reads the files
 * only; never needs the private key. Format: ledger-internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "ledger-internal.h"
#include "timeutil.h"
#include "util.h"

/* Longest hex string a proof may carry (the entry bytes). */
#define PROOF_HEX_MAX      (2 * ENTRY_MAX_LEN)
#define PROOF_TEXT_MAX     (64 * 1024)
#define INCLUSION_FORMAT   "daemoneye-ledger-inclusion-proof-v1"
#define CONSISTENCY_FORMAT "daemoneye-ledger-consistency-proof-v1"
/* Looks at a torn tail while the agent is writing: 10 x 50 ms. */
#define VERIFY_RETRIES  10
#define VERIFY_RETRY_US 50000

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

/* ---- hex and JSON helpers ---- */

static int
hex_decode(const char *s, uint8_t *out, size_t max, size_t *ret_len)
{
	size_t n = strlen(s);

	if (n % 2 != 0 || n / 2 > max)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return -EBADMSG;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	*ret_len = n / 2;
	return 0;
}

static int
hash_from_json(const json_t *obj, const char *key, uint8_t out[LEDGER_HASH_LEN])
{
	const char *s = json_string_value(json_object_get(obj, key));
	size_t n;

	if (s == NULL || hex_decode(s, out, LEDGER_HASH_LEN, &n) < 0 || n != LEDGER_HASH_LEN)
		return -EBADMSG;
	return 0;
}

static int
u64_from_json(const json_t *obj, const char *key, uint64_t *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EBADMSG;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

static int
set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	_cleanup_free_ char *hex = malloc(2 * n + 1);

	if (hex == NULL)
		return -ENOMEM;
	hex_encode(p, n, hex);
	return json_object_set_new(o, key, json_string(hex)) == 0 ? 0 : -ENOMEM;
}

static int
set_time(json_t *o, uint64_t ms)
{
	char buf[40];

	if (time_format_rfc3339_ms(ms, buf, sizeof(buf)) < 0)
		de_strlcpy(buf, "invalid", sizeof(buf));
	if (json_object_set_new(o, "timestamp", json_string(buf)) < 0 ||
	    json_object_set_new(o, "timestamp_ms", json_integer((json_int_t)ms)) < 0)
		return -ENOMEM;
	return 0;
}

static json_t *
text_json(const char *s, size_t n)
{
	_cleanup_free_ char *clean = utf8_sanitize_dup(s, n);

	return clean != NULL ? json_string(clean) : NULL;
}

/* One entry as a JSON object; with_payload adds the payload (text when it is
 * valid UTF-8, else hex). Returns a new reference or NULL. */
static json_t *
entry_json(const struct entry_view *v, bool with_payload)
{
	_cleanup_(json_decrefp) json_t *o = json_object();

	if (o == NULL || json_object_set_new(o, "seq", json_integer((json_int_t)v->seq)) < 0 ||
	    set_time(o, v->timestamp_ms) < 0 ||
	    json_object_set_new(o, "actor", text_json(v->actor, v->actor_len)) < 0 ||
	    json_object_set_new(o, "action", text_json(v->action, v->action_len)) < 0 ||
	    set_hex(o, "payload_hash", v->payload_hash, LEDGER_HASH_LEN) < 0 ||
	    set_hex(o, "prev_hash", v->prev_hash, LEDGER_HASH_LEN) < 0 ||
	    set_hex(o, "entry_hash", v->entry_hash, LEDGER_HASH_LEN) < 0)
		return NULL;
	if (with_payload) {
		int rc;

		if (utf8_is_valid((const char *)v->payload, v->payload_len))
			rc = json_object_set_new(
			    o, "payload", json_stringn((const char *)v->payload, v->payload_len));
		else
			rc = set_hex(o, "payload_hex", v->payload, v->payload_len);
		if (rc < 0)
			return NULL;
	}
	return TAKE_PTR(o);
}

static json_t *
ckpt_json(const struct ckpt *c)
{
	_cleanup_(json_decrefp) json_t *o = json_object();

	if (o == NULL ||
	    json_object_set_new(o, "tree_size", json_integer((json_int_t)c->size)) < 0 ||
	    set_time(o, c->timestamp_ms) < 0 ||
	    set_hex(o, "root_hash", c->root, LEDGER_HASH_LEN) < 0 ||
	    set_hex(o, "key_id", c->key_id, LEDGER_HASH_LEN) < 0 ||
	    set_hex(o, "signature", c->sig, CKPT_SIG_LEN) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/* ---- iteration over the files ---- */

typedef int (*entry_fn)(const struct entry_view *v, void *ctx);

/* Calls fn for each whole record in order; -EBADMSG at the first record that
 * is malformed or out of sequence (a torn tail just ends the walk). */
static int
walk_entries(struct ledger *l, entry_fn fn, void *ctx, struct errbuf *err)
{
	struct ledger_reader rd;
	uint64_t seq = 0;
	int rc;

	if ((rc = ledger_reader_open(ledger_dirfd(l), &rd)) < 0) {
		errbuf_set(err, "%s: %s", ENTRIES_FILE,
		           rc == -EBADMSG ? "not a ledger (bad magic)" : strerror(-rc));
		return rc;
	}
	for (;;) {
		struct entry_view v;
		long r = ledger_reader_next(&rd, &v);

		if (r == 0 || r == -EAGAIN) {
			rc = 0;
			break;
		}
		if (r < 0 || v.seq != seq) {
			errbuf_set(err, "entry %llu is damaged: run `ledger verify`",
			           (unsigned long long)seq);
			rc = r < 0 && r != -EBADMSG ? (int)r : -EBADMSG;
			break;
		}
		if ((rc = fn(&v, ctx)) < 0)
			break;
		seq++;
	}
	ledger_reader_close(&rd);
	return rc;
}

static int
read_ckpts(struct ledger *l, struct ckpt **ret, size_t *ret_n)
{
	uint8_t *base = NULL;
	struct ckpt *cps;
	size_t len = 0, n = 0;
	int rc;

	if ((rc = ledger_read_ckpt_file(ledger_dirfd(l), &base, &len)) < 0)
		return rc;
	if (base != NULL &&
	    (len < FILE_MAGIC_LEN || memcmp(base, CKPT_MAGIC, FILE_MAGIC_LEN) != 0)) {
		free(base);
		return -EBADMSG;
	}
	if (base != NULL)
		n = (len - FILE_MAGIC_LEN) / CKPT_RECORD_LEN;
	if ((cps = calloc(n + 1, sizeof(*cps))) == NULL) {
		free(base);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		ledger_ckpt_decode(base + FILE_MAGIC_LEN + i * CKPT_RECORD_LEN, &cps[i]);
	free(base);
	*ret = cps;
	*ret_n = n;
	return 0;
}

/* ---- show / export ---- */

struct show_ctx {
	json_t *arr;
	uint64_t from; /* first sequence to show */
	uint64_t count;
};

static int
count_one(const struct entry_view *v, void *ctx)
{
	(void)v;
	((struct show_ctx *)ctx)->count++;
	return 0;
}

static int
show_one(const struct entry_view *v, void *ctx)
{
	struct show_ctx *c = ctx;
	json_t *o;

	if (v->seq < c->from)
		return 0;
	if ((o = entry_json(v, true)) == NULL || json_array_append_new(c->arr, o) < 0)
		return -ENOMEM;
	return 0;
}

int
ledger_show(struct ledger *l, uint64_t n, json_t **ret, struct errbuf *err)
{
	_cleanup_(json_decrefp) json_t *arr = json_array();
	struct show_ctx c = { 0 };
	int rc;

	if (arr == NULL)
		return -ENOMEM;
	/* Counting first keeps `show --last 20` of a million entries from
	 * building a million JSON objects. */
	if (n > 0 && (rc = walk_entries(l, count_one, &c, err)) < 0)
		return rc;
	c.arr = arr;
	c.from = n > 0 && c.count > n ? c.count - n : 0;
	if ((rc = walk_entries(l, show_one, &c, err)) < 0)
		return rc;
	/* Entries appended between the two walks are not shown: trim back. */
	while (n > 0 && json_array_size(arr) > n)
		json_array_remove(arr, json_array_size(arr) - 1);
	*ret = TAKE_PTR(arr);
	return 0;
}

struct export_ctx {
	FILE *out;
	int lines;
};

static int
export_obj(struct export_ctx *c, json_t *o, const char *type)
{
	int rc = 0;

	if (o == NULL || json_object_set_new(o, "type", json_string(type)) < 0)
		rc = -ENOMEM;
	else if (json_dumpf(o, c->out, JSON_COMPACT | JSON_SORT_KEYS) < 0 ||
	         fputc('\n', c->out) < 0)
		rc = -EIO;
	json_decref(o);
	if (rc == 0)
		c->lines++;
	return rc;
}

static int
export_one(const struct entry_view *v, void *ctx)
{
	return export_obj(ctx, entry_json(v, true), "entry");
}

int
ledger_export(struct ledger *l, FILE *out, struct errbuf *err)
{
	_cleanup_free_ struct ckpt *cps = NULL;
	struct export_ctx c = { .out = out };
	size_t n = 0;
	int rc;

	if ((rc = walk_entries(l, export_one, &c, err)) < 0)
		return rc;
	if ((rc = read_ckpts(l, &cps, &n)) < 0) {
		errbuf_set(err, "%s: %s", CKPT_FILE, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = export_obj(&c, ckpt_json(&cps[i]), "checkpoint")) < 0)
			return rc;
	if (fflush(out) != 0)
		return -EIO;
	return c.lines;
}

/* ---- inclusion proofs ---- */

struct leaves_ctx {
	merkle_hash *leaves;
	uint64_t n, cap, want;
	json_t *entry; /* the wanted entry, with its bytes */
};

static int
collect_leaf(const struct entry_view *v, void *ctx)
{
	struct leaves_ctx *c = ctx;
	int rc;

	if (c->n == c->cap) {
		uint64_t cap = c->cap ? c->cap * 2 : 1024;
		merkle_hash *p = reallocarray(c->leaves, cap, sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		c->leaves = p;
		c->cap = cap;
	}
	if ((rc = merkle_leaf_hash(v->bytes, v->bytes_len, c->leaves[c->n])) < 0)
		return rc;
	if (c->n == c->want) {
		if ((c->entry = entry_json(v, false)) == NULL ||
		    set_hex(c->entry, "entry_bytes", v->bytes, v->bytes_len) < 0)
			return -ENOMEM;
	}
	c->n++;
	return 0;
}

static json_t *
path_json(const merkle_hash *path, size_t n)
{
	_cleanup_(json_decrefp) json_t *arr = json_array();
	char hex[2 * LEDGER_HASH_LEN + 1];

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		hex_encode(path[i], LEDGER_HASH_LEN, hex);
		if (json_array_append_new(arr, json_string(hex)) < 0)
			return NULL;
	}
	return TAKE_PTR(arr);
}

/* A proof is only worth giving against a root the signed checkpoint vouches
 * for. Returns 0, or -EBADMSG with the reason in err. */
static int
root_matches(const struct ckpt *cp, const uint8_t root[LEDGER_HASH_LEN], struct errbuf *err)
{
	if (memcmp(root, cp->root, LEDGER_HASH_LEN) == 0)
		return 0;
	errbuf_set(err,
	           "the entries do not match checkpoint of tree size %llu: run `ledger verify`",
	           (unsigned long long)cp->size);
	return -EBADMSG;
}

static int
build_proof(const struct leaves_ctx *c, const struct ckpt *cp, uint64_t seq, json_t **ret,
            struct errbuf *err)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	merkle_hash path[MERKLE_MAX_PATH];
	uint8_t root[LEDGER_HASH_LEN];
	size_t plen = 0;
	int rc;

	if ((rc = merkle_root(c->leaves, cp->size, root)) < 0 ||
	    (rc = merkle_inclusion_proof(c->leaves, cp->size, seq, path, &plen)) < 0)
		return rc;
	if ((rc = root_matches(cp, root, err)) < 0)
		return rc;
	if (o == NULL || json_object_set_new(o, "format", json_string(INCLUSION_FORMAT)) < 0 ||
	    json_object_set_new(o, "hash_algorithm", json_string("sha256")) < 0 ||
	    json_object_set_new(o, "leaf_index", json_integer((json_int_t)seq)) < 0 ||
	    json_object_set_new(o, "tree_size", json_integer((json_int_t)cp->size)) < 0 ||
	    set_hex(o, "leaf_hash", c->leaves[seq], LEDGER_HASH_LEN) < 0 ||
	    json_object_set_new(o, "audit_path", path_json(path, plen)) < 0 ||
	    set_hex(o, "root_hash", root, LEDGER_HASH_LEN) < 0 ||
	    json_object_set(o, "entry", c->entry) < 0 ||
	    json_object_set_new(o, "checkpoint", ckpt_json(cp)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

int
ledger_prove(struct ledger *l, uint64_t seq, json_t **ret, struct errbuf *err)
{
	_cleanup_free_ struct ckpt *cps = NULL;
	struct leaves_ctx c = { .want = seq };
	const struct ckpt *cp = NULL;
	size_t ncp = 0;
	int rc;

	if (l == NULL || ret == NULL)
		return -EINVAL;
	if ((rc = read_ckpts(l, &cps, &ncp)) < 0) {
		errbuf_set(err, "%s: %s", CKPT_FILE, strerror(-rc));
		return rc;
	}
	/* Anchor to the newest checkpoint: it is the head a verifier most
	 * likely holds, and it covers every older entry. */
	if (ncp > 0 && cps[ncp - 1].size > seq)
		cp = &cps[ncp - 1];
	rc = walk_entries(l, collect_leaf, &c, err);
	if (rc >= 0 && c.n <= seq) {
		errbuf_set(err, "entry %llu does not exist (the ledger has %llu)",
		           (unsigned long long)seq, (unsigned long long)c.n);
		rc = -ENOENT;
	} else if (rc >= 0 && cp == NULL) {
		errbuf_set(err, "entry %llu is not covered by a signed checkpoint yet",
		           (unsigned long long)seq);
		rc = -EAGAIN;
	} else if (rc >= 0 && cp->size > c.n) {
		errbuf_set(err,
		           "checkpoint covers %llu entries but the ledger has %llu: run "
		           "`ledger verify`",
		           (unsigned long long)cp->size, (unsigned long long)c.n);
		rc = -EBADMSG;
	} else if (rc >= 0) {
		rc = build_proof(&c, cp, seq, ret, err);
	}
	free(c.leaves);
	json_decref(c.entry);
	return rc;
}

static int
build_consistency(const struct leaves_ctx *c, const struct ckpt *cps, size_t ncp, uint64_t old_size,
                  json_t **ret, struct errbuf *err)
{
	_cleanup_(json_decrefp) json_t *o = json_object();
	const struct ckpt *cp = &cps[ncp - 1];
	merkle_hash proof[MERKLE_MAX_PATH];
	uint8_t r1[LEDGER_HASH_LEN], r2[LEDGER_HASH_LEN];
	size_t plen = 0;
	int rc;

	if ((rc = merkle_root(c->leaves, cp->size, r2)) < 0 ||
	    (rc = merkle_root(c->leaves, old_size, r1)) < 0 ||
	    (rc = merkle_consistency_proof(c->leaves, cp->size, old_size, proof, &plen)) < 0)
		return rc;
	if ((rc = root_matches(cp, r2, err)) < 0)
		return rc;
	if (o == NULL || json_object_set_new(o, "format", json_string(CONSISTENCY_FORMAT)) < 0 ||
	    json_object_set_new(o, "hash_algorithm", json_string("sha256")) < 0 ||
	    json_object_set_new(o, "first_size", json_integer((json_int_t)old_size)) < 0 ||
	    json_object_set_new(o, "second_size", json_integer((json_int_t)cp->size)) < 0 ||
	    set_hex(o, "first_root", r1, LEDGER_HASH_LEN) < 0 ||
	    set_hex(o, "second_root", r2, LEDGER_HASH_LEN) < 0 ||
	    json_object_set_new(o, "consistency_path", path_json(proof, plen)) < 0 ||
	    json_object_set_new(o, "checkpoint", ckpt_json(cp)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < ncp; i++)
		if (cps[i].size == old_size &&
		    json_object_set_new(o, "first_checkpoint", ckpt_json(&cps[i])) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(o);
	return 0;
}

int
ledger_prove_consistency(struct ledger *l, uint64_t old_size, json_t **ret, struct errbuf *err)
{
	_cleanup_free_ struct ckpt *cps = NULL;
	struct leaves_ctx c = { .want = UINT64_MAX };
	size_t ncp = 0;
	int rc;

	if (l == NULL || ret == NULL)
		return -EINVAL;
	if ((rc = read_ckpts(l, &cps, &ncp)) < 0) {
		errbuf_set(err, "%s: %s", CKPT_FILE, strerror(-rc));
		return rc;
	}
	if (ncp == 0 || old_size == 0 || old_size > cps[ncp - 1].size) {
		errbuf_set(err,
		           "tree size %llu is not between 1 and the newest checkpoint's (%llu)",
		           (unsigned long long)old_size,
		           ncp > 0 ? (unsigned long long)cps[ncp - 1].size : 0ull);
		return -ENOENT;
	}
	rc = walk_entries(l, collect_leaf, &c, err);
	if (rc >= 0 && c.n < cps[ncp - 1].size) {
		errbuf_set(err,
		           "checkpoint covers %llu entries but the ledger has %llu: run "
		           "`ledger verify`",
		           (unsigned long long)cps[ncp - 1].size, (unsigned long long)c.n);
		rc = -EBADMSG;
	} else if (rc >= 0) {
		rc = build_consistency(&c, cps, ncp, old_size, ret, err);
	}
	free(c.leaves);
	return rc;
}

/* ---- proof verification ---- */

/* A checkpoint as ckpt_json() writes it (also a line of `ledger export`). */
static int
ckpt_from_json(const json_t *cj, struct ckpt *c)
{
	const char *sig = json_string_value(json_object_get(cj, "signature"));
	size_t n;

	if (!json_is_object(cj) || u64_from_json(cj, "tree_size", &c->size) < 0 ||
	    u64_from_json(cj, "timestamp_ms", &c->timestamp_ms) < 0 ||
	    hash_from_json(cj, "root_hash", c->root) < 0 ||
	    hash_from_json(cj, "key_id", c->key_id) < 0 || sig == NULL ||
	    hex_decode(sig, c->sig, sizeof(c->sig), &n) < 0 || n != CKPT_SIG_LEN)
		return -EBADMSG;
	return 0;
}

int
ledger_verify_with(struct ledger *l, const char *pubkey_path, const char *trusted_ckpt, size_t len,
                   struct ledger_report *ret, struct errbuf *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	struct ledger_report rep;
	struct ledger_state st;
	struct ckpt trusted = { 0 };
	int rc;

	if (l == NULL || ret == NULL)
		return -EINVAL;
	if (trusted_ckpt != NULL) {
		_cleanup_(json_decrefp) json_t *j = NULL;
		const json_t *cj;

		if (len <= PROOF_TEXT_MAX)
			j = json_loadb(trusted_ckpt, len, JSON_REJECT_DUPLICATES, NULL);
		cj =
		    json_object_get(j, "checkpoint") != NULL ? json_object_get(j, "checkpoint") : j;
		if (j == NULL || ckpt_from_json(cj, &trusted) < 0) {
			errbuf_set(err, "the trusted checkpoint is not a checkpoint object as "
			                "`ledger export` or `ledger prove` prints it");
			return -EINVAL;
		}
	}
	rc = ledger_load_pubkey(pubkey_path != NULL ? pubkey_path : ledger_pubkey_path(l), &pub,
	                        err);
	/* Without any key the chain and roots are still checked; every
	 * checkpoint then fails its signature, which the report says. */
	if (rc < 0 && (pubkey_path != NULL || rc != -ENOENT))
		return rc;
	/* A reader can catch the agent in the middle of a write: a tail that is
	 * torn while the writer is live gets a few more looks before it counts. */
	for (int attempt = 0;; attempt++) {
		rc = ledger_verify_core(ledger_dirfd(l), pub,
		                        trusted_ckpt != NULL ? &trusted : NULL, &rep, &st);
		if (rc < 0 || rep.ok || st.other_damage || attempt >= VERIFY_RETRIES ||
		    !ledger_writer_active(ledger_dirfd(l)))
			break;
		usleep(VERIFY_RETRY_US);
	}
	if (rc < 0) {
		errbuf_set(err, "cannot read the ledger: %s", strerror(-rc));
		return rc;
	}
	*ret = rep;
	return 0;
}

int
ledger_verify(struct ledger *l, const char *pubkey_path, struct ledger_report *ret,
              struct errbuf *err)
{
	return ledger_verify_with(l, pubkey_path, NULL, 0, ret, err);
}

static int
proof_fail(struct errbuf *err, const char *why)
{
	errbuf_set(err, "proof does not verify: %s", why);
	return -EBADMSG;
}

/* Checks the entry bytes: they parse, hash to leaf_hash, carry a consistent
 * entry hash and the sequence leaf_index. */
static int
check_proof_entry(const json_t *proof, uint64_t index, const uint8_t leaf[LEDGER_HASH_LEN],
                  struct errbuf *err)
{
	const json_t *entry = json_object_get(proof, "entry");
	const char *hex = json_string_value(json_object_get(entry, "entry_bytes"));
	uint8_t bytes[ENTRY_MAX_LEN], h[LEDGER_HASH_LEN];
	struct entry_view v;
	size_t n;
	int rc;

	if (hex == NULL || strlen(hex) > PROOF_HEX_MAX ||
	    hex_decode(hex, bytes, sizeof(bytes), &n) < 0)
		return proof_fail(err, "entry.entry_bytes missing or not hex");
	if (ledger_entry_parse(bytes, n, &v) < 0)
		return proof_fail(err, "entry.entry_bytes is not a ledger entry");
	if ((rc = merkle_leaf_hash(bytes, n, h)) < 0)
		return rc;
	if (memcmp(h, leaf, LEDGER_HASH_LEN) != 0)
		return proof_fail(err, "leaf_hash is not the hash of the entry");
	if ((rc = ledger_entry_hash(bytes, n, h)) < 0)
		return rc;
	if (memcmp(h, v.entry_hash, LEDGER_HASH_LEN) != 0)
		return proof_fail(err, "the entry's own hash does not match its fields");
	if (v.seq != index)
		return proof_fail(err, "leaf_index is not the entry's sequence");
	return 0;
}

static int
check_proof_ckpt(const json_t *proof, const char *key, uint64_t size,
                 const uint8_t root[LEDGER_HASH_LEN], const char *pubkey_path, bool *signed_ok,
                 struct errbuf *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	const json_t *cj = json_object_get(proof, key);
	struct ckpt c = { 0 };
	int rc;

	if (ckpt_from_json(cj, &c) < 0) {
		errbuf_set(err, "proof does not verify: %s missing or malformed", key);
		return -EBADMSG;
	}
	if (c.size != size || memcmp(c.root, root, LEDGER_HASH_LEN) != 0) {
		errbuf_set(err,
		           "proof does not verify: the proven tree differs from the %s's "
		           "(size or root)",
		           key);
		return -EBADMSG;
	}
	*signed_ok = false;
	if (pubkey_path == NULL)
		return 0;
	if ((rc = ledger_load_pubkey(pubkey_path, &pub, err)) < 0)
		return rc;
	if (ledger_ckpt_check_sig(&c, pub) < 0) {
		errbuf_set(err, "proof does not verify: %s signature does not verify with that key",
		           key);
		return -EBADMSG;
	}
	*signed_ok = true;
	return 0;
}

/* Reads a JSON array of at most MERKLE_MAX_PATH hex hashes. */
static int
hashes_from_json(const json_t *arr, merkle_hash *out, size_t *ret_n)
{
	size_t np, n;

	if (!json_is_array(arr) || (np = json_array_size(arr)) > MERKLE_MAX_PATH)
		return -EBADMSG;
	for (size_t i = 0; i < np; i++) {
		const char *s = json_string_value(json_array_get(arr, i));

		if (s == NULL || hex_decode(s, out[i], LEDGER_HASH_LEN, &n) < 0 ||
		    n != LEDGER_HASH_LEN)
			return -EBADMSG;
	}
	*ret_n = np;
	return 0;
}

static int
verify_inclusion_doc(const json_t *proof, const char *pubkey_path, bool *signed_ok,
                     struct errbuf *err)
{
	merkle_hash path[MERKLE_MAX_PATH];
	uint8_t leaf[LEDGER_HASH_LEN], root[LEDGER_HASH_LEN];
	uint64_t index, size;
	size_t np;
	int rc;

	if (u64_from_json(proof, "leaf_index", &index) < 0 ||
	    u64_from_json(proof, "tree_size", &size) < 0 ||
	    hash_from_json(proof, "leaf_hash", leaf) < 0 ||
	    hash_from_json(proof, "root_hash", root) < 0 ||
	    hashes_from_json(json_object_get(proof, "audit_path"), path, &np) < 0)
		return proof_fail(err, "leaf_index, tree_size, leaf_hash, root_hash or audit_path "
		                       "missing or malformed");
	if ((rc = check_proof_entry(proof, index, leaf, err)) < 0)
		return rc;
	if ((rc = merkle_verify_inclusion(index, size, leaf, path, np, root)) == -EBADMSG)
		return proof_fail(err, "the audit path does not lead to root_hash");
	if (rc < 0)
		return rc;
	return check_proof_ckpt(proof, "checkpoint", size, root, pubkey_path, signed_ok, err);
}

static int
verify_consistency_doc(const json_t *proof, const char *pubkey_path, bool *signed_ok,
                       struct errbuf *err)
{
	merkle_hash path[MERKLE_MAX_PATH];
	uint8_t r1[LEDGER_HASH_LEN], r2[LEDGER_HASH_LEN];
	uint64_t size1, size2;
	bool first_signed = true;
	size_t np;
	int rc;

	if (u64_from_json(proof, "first_size", &size1) < 0 ||
	    u64_from_json(proof, "second_size", &size2) < 0 ||
	    hash_from_json(proof, "first_root", r1) < 0 ||
	    hash_from_json(proof, "second_root", r2) < 0 ||
	    hashes_from_json(json_object_get(proof, "consistency_path"), path, &np) < 0)
		return proof_fail(err, "first_size, second_size, first_root, second_root or "
		                       "consistency_path missing or malformed");
	rc = merkle_verify_consistency(size1, size2, r1, r2, path, np);
	if (rc == -EBADMSG)
		return proof_fail(err, "the tree of second_size does not extend the first");
	if (rc < 0)
		return rc;
	if ((rc = check_proof_ckpt(proof, "checkpoint", size2, r2, pubkey_path, signed_ok, err)) <
	    0)
		return rc;
	/* The older signed head, when the ledger still had it, is checked too. */
	if (json_object_get(proof, "first_checkpoint") != NULL &&
	    (rc = check_proof_ckpt(proof, "first_checkpoint", size1, r1, pubkey_path, &first_signed,
	                           err)) < 0)
		return rc;
	*signed_ok = *signed_ok && first_signed;
	return 0;
}

int
ledger_verify_proof(const char *text, size_t len, const char *pubkey_path, bool *ret_signed,
                    struct errbuf *err)
{
	_cleanup_(json_decrefp) json_t *proof = NULL;
	const char *format;
	bool signed_ok = false;
	int rc;

	if (text == NULL || len > PROOF_TEXT_MAX)
		return proof_fail(err, "no proof, or larger than 64 KiB");
	if ((proof = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(proof))
		return proof_fail(err, "not a JSON object");
	format = json_string_value(json_object_get(proof, "format"));
	if (format != NULL && streq(format, CONSISTENCY_FORMAT))
		rc = verify_consistency_doc(proof, pubkey_path, &signed_ok, err);
	else
		rc = verify_inclusion_doc(proof, pubkey_path, &signed_ok, err);
	if (rc < 0)
		return rc;
	if (ret_signed != NULL)
		*ret_signed = signed_ok;
	return 0;
}
