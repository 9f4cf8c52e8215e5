/* The audit ledger: an append-only, tamper-evident record of what the agent
 * did (SPEC §8; docs/ledger.md is the operator's description).
 *
 * Files under the ledger directory (normally <data_dir>/ledger, mode 0750):
 *   entries.log      records: sequence, time, actor, action, payload hash,
 *                    previous entry hash, entry hash, then the payload itself
 *   checkpoints.log  Ed25519-signed tree heads (size, RFC 6962 root, time)
 *   ledger.key       Ed25519 private key, PKCS#8 PEM, mode 0600 (RW only)
 *   ledger.pub       the public key, SubjectPublicKeyInfo PEM, for verifiers
 *
 * Hashes are SHA-256 with domain separation; the Merkle tree is RFC 6962 over
 * the canonical entry bytes (merkle.h). One writer (the agent, LEDGER_RW,
 * holding an exclusive lock); any number of readers (LEDGER_RO: the CLI).
 *
 * Every function returns 0 (or a count) on success and -errno on failure, with
 * a reason in err where it takes one. Integrity failures are not errors of the
 * call: ledger_verify() returns 0 and says in the report what is wrong. */
#ifndef DE_LEDGER_H
#define DE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "errbuf.h"

struct ledger;
struct json_t;

enum ledger_mode {
	LEDGER_RW = 0, /* the agent: creates the files and the key, appends, signs */
	LEDGER_RO,     /* the CLI and offline verifiers: never writes */
};

#define LEDGER_HASH_LEN    32
#define LEDGER_ACTOR_MAX   64           /* bytes, UTF-8 without NUL */
#define LEDGER_ACTION_MAX  64           /* bytes */
#define LEDGER_PAYLOAD_MAX (256 * 1024) /* bytes; bigger payloads: store a hash */

/* Defaults of struct ledger_policy. */
#define LEDGER_CHECKPOINT_EVERY      1000
#define LEDGER_CHECKPOINT_INTERVAL_S 60

struct ledger_policy {
	uint64_t checkpoint_every;      /* entries between signed checkpoints; 0: never by count */
	uint32_t checkpoint_interval_s; /* seconds; 0: never by time */
	bool sync_each_append;          /* fdatasync after every append (default true);
					 * false: only at checkpoints and close */
};

/* The result of ledger_verify(). */
struct ledger_report {
	bool ok;
	uint64_t entries;              /* records read that passed every check */
	uint64_t checkpoints;          /* checkpoints whose signature and root verified */
	uint64_t first_bad_seq;        /* when !ok: the first entry that cannot be trusted */
	uint64_t last_checkpoint_size; /* tree size of the last verified checkpoint */
	uint64_t unsigned_tail;        /* entries after the last checkpoint (chain-checked only) */
	uint8_t root[LEDGER_HASH_LEN]; /* root over the entries that passed */
	char key_id[2 * LEDGER_HASH_LEN + 1];
	char reason[256]; /* when !ok: what is wrong, in words */
};

/* Opens the ledger in dir. RW creates dir (0750), the files and, on first
 * use, the key pair (recording "key.created" in the ledger), takes an
 * exclusive lock, checks the whole chain and every checkpoint, and recovers a
 * torn tail left by a crash: the incomplete bytes are kept aside in
 * entries.log.torn-<offset> (or checkpoints.log.torn-<offset>), the file is cut
 * back to the last whole record and a "ledger.torn_tail" entry says so.
 * RO only checks that dir exists. On success *ret owns the ledger; free it with
 * ledger_close(). Returns -EBADMSG when the ledger is damaged (err names the
 * first bad entry), -ENOKEY when checkpoints exist but ledger.key is gone,
 * -EPERM when ledger.key is not a 0600 file of the calling user, -EBUSY when
 * another writer holds it, -errno on I/O. */
int ledger_open(const char *dir, enum ledger_mode mode, struct ledger **ret, struct errbuf *err);

/* Replaces the checkpoint and fsync policy (RW). Returns 0 or -EINVAL. */
int ledger_set_policy(struct ledger *l, const struct ledger_policy *p);

/* Appends one entry (RW): actor and action are short names ("agent",
 * "collector.start"), payload is any bytes (usually JSON) up to
 * LEDGER_PAYLOAD_MAX, stored beside the entry and bound to it by its SHA-256.
 * Signs a checkpoint when the policy says one is due (a checkpoint that
 * fails does not fail the append: it is tried again at the next append or
 * tick). Sets *ret_seq (may be NULL) to the new sequence number. Returns 0,
 * -EINVAL for bad arguments, -EROFS on an RO ledger, -errno on I/O: the entry
 * was not stored (when even taking back a partial write failed, the ledger
 * refuses further appends with -EIO until reopened, which recovers the tail).
 * Thread-safe against other appends, checkpoints and ticks. */
int ledger_append(struct ledger *l, const char *actor, const char *action, const void *payload,
                  size_t len, uint64_t *ret_seq);

/* Signs and stores a checkpoint of the current tree now, unless the last one
 * already covers every entry (RW). Returns 1 when one was written, 0 when none
 * was needed, -errno on failure. */
int ledger_checkpoint(struct ledger *l);

/* Writes a checkpoint when the time policy says one is due; for the agent's
 * timer, so a quiet ledger is still signed within checkpoint_interval_s.
 * Returns like ledger_checkpoint(). */
int ledger_tick(struct ledger *l);

/* Number of entries (RW: the in-memory count; RO: 0). */
uint64_t ledger_size(const struct ledger *l);

/* Checks everything on disk: record framing, sequence numbers, payload
 * hashes, entry hashes, the hash chain, each checkpoint's signature and its
 * root against the tree recomputed at its size, and that no checkpoint
 * covers entries that are gone. pubkey_path names the trusted public key
 * (PEM); NULL uses the ledger's own ledger.pub (which only proves
 * consistency with that file: pass a key kept elsewhere to be sure).
 * Returns 0 with *ret filled (ret->ok says whether the ledger is intact), or
 * -errno when the files cannot be read at all. */
int ledger_verify(struct ledger *l, const char *pubkey_path, struct ledger_report *ret,
                  struct errbuf *err);

/* ledger_verify(), and also against a checkpoint the verifier kept outside
 * the ledger (JSON text: a checkpoint line of `ledger export`, or a proof,
 * whose "checkpoint" is used): its signature must verify with the trusted key
 * and the ledger must still hold its tree, so a ledger cut back consistently
 * in both of its files is caught. Returns -EINVAL when trusted_ckpt is not a
 * checkpoint; otherwise as ledger_verify(). */
int ledger_verify_with(struct ledger *l, const char *pubkey_path, const char *trusted_ckpt,
                       size_t len, struct ledger_report *ret, struct errbuf *err);

/* Builds an inclusion proof for entry seq as a JSON object (docs/ledger.md
 * describes it) anchored to the latest checkpoint that covers seq. *ret is a
 * new reference. Returns -ENOENT when seq does not exist, -EAGAIN when no
 * checkpoint covers it yet, -EBADMSG when the ledger fails to match its
 * checkpoint, -errno on I/O. */
int ledger_prove(struct ledger *l, uint64_t seq, struct json_t **ret, struct errbuf *err);

/* Builds an RFC 6962 consistency proof (PROOF(old_size, D[n]), §2.1.2) from
 * the tree of old_size entries to the newest signed checkpoint, as a JSON
 * object (docs/ledger.md): whoever kept a checkpoint of old_size can check
 * that today's signed head extends it without the entries. *ret is a new
 * reference. Returns -ENOENT when old_size is 0 or beyond the newest
 * checkpoint, -EBADMSG when the ledger fails to match that checkpoint. */
int ledger_prove_consistency(struct ledger *l, uint64_t old_size, struct json_t **ret,
                             struct errbuf *err);

/* Verifies a proof given as JSON text. An inclusion proof (ledger_prove()):
 * the leaf hash against the entry bytes, the audit path against the root
 * (RFC 9162 §2.1.3.2), the root against the checkpoint. A consistency proof
 * (ledger_prove_consistency(), told by its "format"): the path between the
 * two roots (RFC 9162 §2.1.4.2), the new root against the checkpoint, the old
 * one against "first_checkpoint" when present. Then, when pubkey_path is not
 * NULL, every checkpoint's Ed25519 signature. Sets *ret_signed (may be NULL)
 * to whether the signatures were checked. Returns 0 when it verifies,
 * -EBADMSG (reason in err) when it does not, -errno when the key cannot be
 * read. */
int ledger_verify_proof(const char *text, size_t len, const char *pubkey_path, bool *ret_signed,
                        struct errbuf *err);

/* The last n entries (all when n is 0) as a JSON array of objects, oldest
 * first. *ret is a new reference. Stops at the first damaged record. */
int ledger_show(struct ledger *l, uint64_t n, struct json_t **ret, struct errbuf *err);

/* Writes every entry and then every checkpoint to out as JSON lines
 * ({"type":"entry",...} / {"type":"checkpoint",...}). Returns the number of
 * lines written or -errno. Stops with -EBADMSG at a damaged record. */
int ledger_export(struct ledger *l, FILE *out, struct errbuf *err);

/* Path of the ledger's public key file (for `ledger verify` defaults). The
 * pointer lives as long as l. */
const char *ledger_pubkey_path(const struct ledger *l);

/* Moves a damaged ledger aside so the agent can start a fresh one without
 * destroying the evidence: renames dir to "<dir>.damaged-<epoch ms>", makes
 * an empty dir and moves ledger.key back into it (same signer, so verifiers
 * keep their public key; the old directory keeps its ledger.pub). Copies the
 * new name of the old ledger into ret_path (n bytes). The caller then reopens
 * dir (RW) and should append a "ledger.quarantined" entry naming ret_path and
 * the reason ledger_open gave. Returns 0 or -errno (reason in err). */
int ledger_quarantine(const char *dir, char *ret_path, size_t n, struct errbuf *err);

/* Closes; RW signs a final checkpoint first when entries are unsigned and
 * syncs. Accepts NULL. */
void ledger_close(struct ledger *l);
static inline void
ledger_closep(struct ledger **l)
{
	if (*l)
		ledger_close(*l);
}

#endif
