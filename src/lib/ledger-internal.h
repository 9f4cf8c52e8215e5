/* Private to ledger.c and ledger-read.c: the on-disk format and the shared
 * verification core. Nothing outside the ledger module includes this.
 *
 * entries.log = "DELEDG1\n" then records, all integers big-endian:
 *   u32 rec_len                      bytes that follow, up to the next record
 *   entry bytes (the Merkle leaf input):
 *     u8  version (1)
 *     u64 seq                        0, 1, 2, ... with no gaps
 *     u64 timestamp_ms               Unix epoch milliseconds
 *     u16 actor_len,  actor bytes
 *     u16 action_len, action bytes
 *     u8[32] payload_hash            SHA-256(payload)
 *     u8[32] prev_hash               entry_hash of seq-1 (zeros for seq 0)
 *     u8[32] entry_hash              SHA-256(ENTRY_TAG || entry bytes before it)
 *   u32 payload_len, payload bytes
 *
 * checkpoints.log = "DECKPT1\n" then fixed 144-byte records:
 *   u64 tree_size, u64 timestamp_ms, u8[32] root, u8[32] key_id, u8[64] sig
 * where sig is Ed25519 over CKPT_TAG || u64 tree_size || u64 timestamp_ms ||
 * root, and key_id = SHA-256(raw 32-byte public key). */
#ifndef DE_LEDGER_INTERNAL_H
#define DE_LEDGER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ledger.h"
#include "merkle.h"

#define ENTRIES_FILE "entries.log"
#define CKPT_FILE    "checkpoints.log"
#define KEY_FILE     "ledger.key"
#define PUB_FILE     "ledger.pub"

#define ENTRIES_MAGIC   "DELEDG1\n"
#define CKPT_MAGIC      "DECKPT1\n"
#define FILE_MAGIC_LEN  8
#define ENTRY_VERSION   1
#define ENTRY_FIXED_LEN (1 + 8 + 8 + 2 + 2 + 3 * LEDGER_HASH_LEN)
#define ENTRY_MAX_LEN   (ENTRY_FIXED_LEN + LEDGER_ACTOR_MAX + LEDGER_ACTION_MAX)
#define RECORD_MAX_LEN  (4 + ENTRY_MAX_LEN + 4 + LEDGER_PAYLOAD_MAX)
#define CKPT_RECORD_LEN (8 + 8 + LEDGER_HASH_LEN + LEDGER_HASH_LEN + 64)
#define CKPT_SIG_LEN    64
#define ENTRY_TAG       "DaemonEye-ledger-entry-v1"
#define CKPT_TAG        "DaemonEye-ledger-checkpoint-v1"
#define CKPT_MSG_MAX    (sizeof(CKPT_TAG) + 8 + 8 + LEDGER_HASH_LEN)

/* A decoded entry; pointers alias the buffer it was parsed from. */
struct entry_view {
	uint64_t seq, timestamp_ms;
	const char *actor, *action;
	uint16_t actor_len, action_len;
	const uint8_t *payload_hash, *prev_hash, *entry_hash;
	const uint8_t *bytes; /* the whole entry: the leaf input */
	size_t bytes_len;
	const uint8_t *payload;
	uint32_t payload_len;
};

struct ckpt {
	uint64_t size, timestamp_ms;
	uint8_t root[LEDGER_HASH_LEN];
	uint8_t key_id[LEDGER_HASH_LEN];
	uint8_t sig[CKPT_SIG_LEN];
};

/* Parses entry bytes exactly (no trailing bytes). Returns 0 or -EBADMSG. */
int ledger_entry_parse(const uint8_t *p, size_t n, struct entry_view *v);
/* The entry hash the bytes should carry. Returns 0 or -EIO. */
int ledger_entry_hash(const uint8_t *p, size_t n, uint8_t out[LEDGER_HASH_LEN]);
/* Parses one record at p (avail bytes left in the file). Returns the record
 * length, -EAGAIN when the file ends inside it (torn), -EBADMSG when malformed. */
long ledger_record_parse(const uint8_t *p, size_t avail, struct entry_view *v);

/* A bounded, streaming reader of entries.log (ledger.c). */
struct ledger_reader {
	int fd; /* -1: no file, or an empty one */
	uint8_t *buf;
	size_t start, end; /* unparsed bytes: buf[start..end) */
	size_t off;        /* file offset of buf[start] */
	size_t file_len;   /* size when opened */
	bool eof;
};
/* Opens entries.log and checks its magic. A missing or empty file reads as
 * no records. Returns 0, -EBADMSG for a bad magic, or -errno. */
int ledger_reader_open(int dirfd, struct ledger_reader *r);
/* The next record: returns its length (v aliases the reader's buffer until
 * the next call), 0 at the end, -EAGAIN for an incomplete record at the end
 * (torn), -EBADMSG for a malformed one, -errno on I/O. */
long ledger_reader_next(struct ledger_reader *r, struct entry_view *v);
/* After a failed record: whether everything left in the file is zero bytes. */
bool ledger_reader_rest_is_zero(struct ledger_reader *r);
void ledger_reader_close(struct ledger_reader *r);

/* checkpoints.log, whole (*ret NULL when missing or empty; caller frees). */
#define CKPT_FILE_MAX (64u << 20)
int ledger_read_ckpt_file(int dirfd, uint8_t **ret, size_t *ret_len);

/* Serialises / deserialises a checkpoint record and builds the signed message. */
void ledger_ckpt_encode(const struct ckpt *c, uint8_t out[CKPT_RECORD_LEN]);
void ledger_ckpt_decode(const uint8_t in[CKPT_RECORD_LEN], struct ckpt *c);
size_t ledger_ckpt_message(const struct ckpt *c, uint8_t out[CKPT_MSG_MAX]);
/* Checks c->sig with pub and that c->key_id names pub. Returns 0 or -EBADMSG. */
int ledger_ckpt_check_sig(const struct ckpt *c, EVP_PKEY *pub);
/* SHA-256 of the raw public key. Returns 0 or -EIO. */
int ledger_key_id(EVP_PKEY *key, uint8_t out[LEDGER_HASH_LEN]);
/* Reads a PEM public key, which must be Ed25519. Returns 0 or -errno. */
int ledger_load_pubkey(const char *path, EVP_PKEY **ret, struct errbuf *err);

/* What verify_core learned, beyond the report: where the good part ends. */
struct ledger_state {
	struct merkle_frontier frontier;
	uint8_t last_hash[LEDGER_HASH_LEN];
	uint64_t count;     /* good entries */
	size_t entries_end; /* file offset after the last good record */
	size_t ckpt_count;  /* whole checkpoint records in the file */
	size_t trusted_at;  /* index of the caller's trusted checkpoint, or SIZE_MAX */
	uint64_t last_ckpt_size;
	bool torn_entries, torn_ckpt, other_damage;
	size_t entries_file_len, ckpt_file_len;
};

/* Verifies the files under dirfd with the trusted key pub (may be NULL: then
 * every checkpoint fails its signature check), and against trusted (a
 * checkpoint kept outside the ledger; may be NULL). Fills rep and st.
 * Returns 0 when it could read the files, -errno otherwise. */
int ledger_verify_core(int dirfd, EVP_PKEY *pub, const struct ckpt *trusted,
                       struct ledger_report *rep, struct ledger_state *st);

/* True when a writer (the agent) holds the ledger open right now. */
bool ledger_writer_active(int dirfd);

/* The ledger directory's fd (owned by l). */
int ledger_dirfd(const struct ledger *l);

/* Big-endian helpers. */
static inline void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}
static inline void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#endif
