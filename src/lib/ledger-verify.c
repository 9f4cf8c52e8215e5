/* The ledger's on-disk format and its verification core: record and
 * checkpoint encoding, the streaming reader, signatures, and the full check
 * that both ledger_open (RW) and ledger_verify run. Format: ledger-internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "cleanup.h"
#include "ledger-internal.h"
#include "util.h"

/* ---- format ---- */

int
ledger_entry_hash(const uint8_t *p, size_t n, uint8_t out[LEDGER_HASH_LEN])
{
	/* The tag, NUL included, separates this hash from Merkle leaves (0x00)
	 * and nodes (0x01) and from every other use of SHA-256 here. */
	return merkle_sha256_2(ENTRY_TAG, sizeof(ENTRY_TAG), p, n - LEDGER_HASH_LEN, out);
}

int
ledger_entry_parse(const uint8_t *p, size_t n, struct entry_view *v)
{
	size_t off = 1 + 8 + 8;
	struct entry_view e = { 0 };

	if (n < ENTRY_FIXED_LEN || n > ENTRY_MAX_LEN || p[0] != ENTRY_VERSION)
		return -EBADMSG;
	e.seq = get_be64(p + 1);
	e.timestamp_ms = get_be64(p + 9);
	e.actor_len = get_be16(p + off);
	off += 2;
	if (e.actor_len > LEDGER_ACTOR_MAX || n - off < e.actor_len + 2u)
		return -EBADMSG;
	e.actor = (const char *)p + off;
	off += e.actor_len;
	e.action_len = get_be16(p + off);
	off += 2;
	if (e.action_len > LEDGER_ACTION_MAX || n - off != e.action_len + 3u * LEDGER_HASH_LEN)
		return -EBADMSG;
	e.action = (const char *)p + off;
	off += e.action_len;
	e.payload_hash = p + off;
	e.prev_hash = p + off + LEDGER_HASH_LEN;
	e.entry_hash = p + off + 2 * LEDGER_HASH_LEN;
	e.bytes = p;
	e.bytes_len = n;
	*v = e;
	return 0;
}

long
ledger_record_parse(const uint8_t *p, size_t avail, struct entry_view *v)
{
	uint32_t rec_len, entry_len, payload_len;
	size_t off;

	if (avail < 4)
		return -EAGAIN;
	rec_len = get_be32(p);
	if (rec_len < ENTRY_FIXED_LEN + 4 || rec_len > RECORD_MAX_LEN - 4)
		return -EBADMSG;
	if (avail - 4 < rec_len)
		return -EAGAIN;
	/* The entry's own lengths say where it ends; the payload length must
	 * then fill the record exactly. */
	off = 1 + 8 + 8;
	entry_len = (uint32_t)(off + 2 + get_be16(p + 4 + off));
	if (entry_len + 2 > rec_len)
		return -EBADMSG;
	entry_len += 2 + get_be16(p + 4 + entry_len) + 3 * LEDGER_HASH_LEN;
	if (entry_len + 4 > rec_len)
		return -EBADMSG;
	if (ledger_entry_parse(p + 4, entry_len, v) < 0)
		return -EBADMSG;
	payload_len = get_be32(p + 4 + entry_len);
	if (payload_len > LEDGER_PAYLOAD_MAX || (uint64_t)entry_len + 4 + payload_len != rec_len)
		return -EBADMSG;
	v->payload = p + 4 + entry_len + 4;
	v->payload_len = payload_len;
	return (long)rec_len + 4;
}

void
ledger_ckpt_encode(const struct ckpt *c, uint8_t out[CKPT_RECORD_LEN])
{
	put_be64(out, c->size);
	put_be64(out + 8, c->timestamp_ms);
	memcpy(out + 16, c->root, LEDGER_HASH_LEN);
	memcpy(out + 48, c->key_id, LEDGER_HASH_LEN);
	memcpy(out + 80, c->sig, CKPT_SIG_LEN);
}

void
ledger_ckpt_decode(const uint8_t in[CKPT_RECORD_LEN], struct ckpt *c)
{
	c->size = get_be64(in);
	c->timestamp_ms = get_be64(in + 8);
	memcpy(c->root, in + 16, LEDGER_HASH_LEN);
	memcpy(c->key_id, in + 48, LEDGER_HASH_LEN);
	memcpy(c->sig, in + 80, CKPT_SIG_LEN);
}

size_t
ledger_ckpt_message(const struct ckpt *c, uint8_t out[CKPT_MSG_MAX])
{
	memcpy(out, CKPT_TAG, sizeof(CKPT_TAG));
	put_be64(out + sizeof(CKPT_TAG), c->size);
	put_be64(out + sizeof(CKPT_TAG) + 8, c->timestamp_ms);
	memcpy(out + sizeof(CKPT_TAG) + 16, c->root, LEDGER_HASH_LEN);
	return CKPT_MSG_MAX;
}

int
ledger_key_id(EVP_PKEY *key, uint8_t out[LEDGER_HASH_LEN])
{
	uint8_t raw[32];
	size_t len = sizeof(raw);

	if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof(raw))
		return -EIO;
	return merkle_sha256(raw, len, out);
}

int
ledger_ckpt_check_sig(const struct ckpt *c, EVP_PKEY *pub)
{
	uint8_t msg[CKPT_MSG_MAX], id[LEDGER_HASH_LEN];
	size_t n = ledger_ckpt_message(c, msg);
	EVP_MD_CTX *ctx;
	int ok;

	if (pub == NULL || ledger_key_id(pub, id) < 0 || memcmp(id, c->key_id, sizeof(id)) != 0)
		return -EBADMSG;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
	     EVP_DigestVerify(ctx, c->sig, CKPT_SIG_LEN, msg, n) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EBADMSG;
}

int
ledger_load_pubkey(const char *path, EVP_PKEY **ret, struct errbuf *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	EVP_PKEY *k;

	if ((f = fopen(path, "re")) == NULL) {
		errbuf_set(err, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if ((k = PEM_read_PUBKEY(f, NULL, NULL, NULL)) == NULL) {
		errbuf_set(err, "%s: not a PEM public key", path);
		return -EINVAL;
	}
	if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		errbuf_set(err, "%s: not an Ed25519 key", path);
		return -EINVAL;
	}
	*ret = k;
	return 0;
}

/* ---- verification core ---- */

/* Keeps the failure with the smallest sequence: that is the first entry an
 * investigator can no longer trust. */
static void __attribute__((format(printf, 3, 4)))
fail(struct ledger_report *rep, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (!rep->ok && rep->first_bad_seq <= seq)
		return;
	rep->ok = false;
	rep->first_bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof(rep->reason), fmt, ap);
	va_end(ap);
}

/* Reads entries.log record by record through a bounded buffer. Not mmap: a
 * file that shrinks under a mapping (a writer rolling back, someone cutting
 * it) would kill the reader with SIGBUS. */
#define READER_CAP (RECORD_MAX_LEN + (1u << 20))

int
ledger_reader_open(int dirfd, struct ledger_reader *r)
{
	struct stat st;
	uint8_t magic[FILE_MAGIC_LEN];
	ssize_t n;

	*r = (struct ledger_reader){ .fd = -1 };
	r->fd = openat(dirfd, ENTRIES_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (r->fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		ledger_reader_close(r);
		return -EINVAL;
	}
	r->file_len = (size_t)st.st_size;
	if (st.st_size == 0) {
		ledger_reader_close(r);
		return 0;
	}
	n = read(r->fd, magic, sizeof(magic));
	if (n != (ssize_t)sizeof(magic) || memcmp(magic, ENTRIES_MAGIC, sizeof(magic)) != 0) {
		ledger_reader_close(r);
		return -EBADMSG;
	}
	if ((r->buf = malloc(READER_CAP)) == NULL) {
		ledger_reader_close(r);
		return -ENOMEM;
	}
	r->off = FILE_MAGIC_LEN;
	return 0;
}

static int
reader_fill(struct ledger_reader *r)
{
	ssize_t n;

	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
	while (!r->eof && r->end < READER_CAP) {
		n = read(r->fd, r->buf + r->end, READER_CAP - r->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			r->eof = true;
		r->end += (size_t)n;
	}
	return 0;
}

long
ledger_reader_next(struct ledger_reader *r, struct entry_view *v)
{
	long n;
	int rc;

	if (r->fd < 0)
		return 0;
	for (;;) {
		if (r->start == r->end && r->eof)
			return 0;
		n = ledger_record_parse(r->buf + r->start, r->end - r->start, v);
		if (n > 0) {
			r->start += (size_t)n;
			r->off += (size_t)n;
			return n;
		}
		if (n != -EAGAIN || r->eof)
			return n;
		if ((rc = reader_fill(r)) < 0)
			return rc;
	}
}

bool
ledger_reader_rest_is_zero(struct ledger_reader *r)
{
	for (;;) {
		for (size_t i = r->start; i < r->end; i++)
			if (r->buf[i] != 0)
				return false;
		r->start = r->end;
		if (r->eof)
			return true;
		if (reader_fill(r) < 0)
			return false;
	}
}

void
ledger_reader_close(struct ledger_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	r->fd = -1;
	r->buf = NULL;
}

/* Reads checkpoints.log whole (it is small: 144 bytes per checkpoint).
 * *ret is NULL for a missing or empty file. */
int
ledger_read_ckpt_file(int dirfd, uint8_t **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = read_file_at(dirfd, CKPT_FILE, CKPT_FILE_MAX, false, &buf, &len);
	if (rc == -ENOENT) {
		*ret = NULL;
		*ret_len = 0;
		return 0;
	}
	if (rc < 0)
		return rc;
	*ret = (uint8_t *)buf;
	*ret_len = len;
	return 0;
}

/* Adds a checkpoint the verifier kept elsewhere (cps has room for it), in
 * size order, so a ledger cut back consistently in both files is caught.
 * Returns the new count. */
static size_t
insert_trusted(struct ckpt *cps, bool *good, size_t n, const struct ckpt *t, EVP_PKEY *pub,
               struct ledger_report *rep, struct ledger_state *st)
{
	size_t at = n;

	while (at > 0 && cps[at - 1].size > t->size) {
		cps[at] = cps[at - 1];
		good[at] = good[at - 1];
		at--;
	}
	cps[at] = *t;
	good[at] = ledger_ckpt_check_sig(t, pub) == 0 && t->size > 0;
	if (!good[at]) {
		fail(rep, 0, "trusted checkpoint (tree size %llu): bad signature or unknown key",
		     (unsigned long long)t->size);
		st->other_damage = true;
	}
	st->trusted_at = at;
	return n + 1;
}

/* Reads and signature-checks the checkpoints. Returns a new array in *ret. */
static int
load_ckpts(int dirfd, EVP_PKEY *pub, const struct ckpt *trusted, struct ledger_report *rep,
           struct ledger_state *st, struct ckpt **ret, bool **ret_good, size_t *ret_n)
{
	_cleanup_free_ struct ckpt *cps = NULL;
	_cleanup_free_ bool *good = NULL;
	uint8_t *base = NULL;
	size_t len = 0, n;
	uint64_t prev = 0;
	int rc;

	if ((rc = ledger_read_ckpt_file(dirfd, &base, &len)) < 0)
		return rc;
	st->ckpt_file_len = len;
	if (len > 0 && (len < FILE_MAGIC_LEN || memcmp(base, CKPT_MAGIC, FILE_MAGIC_LEN) != 0)) {
		fail(rep, 0, "%s: not a checkpoint file (bad magic)", CKPT_FILE);
		st->other_damage = true;
		n = 0;
	} else {
		n = len > FILE_MAGIC_LEN ? (len - FILE_MAGIC_LEN) / CKPT_RECORD_LEN : 0;
		st->torn_ckpt = len > FILE_MAGIC_LEN && (len - FILE_MAGIC_LEN) % CKPT_RECORD_LEN;
	}
	cps = calloc(n + 1, sizeof(*cps));
	good = calloc(n + 1, sizeof(*good));
	if (cps == NULL || good == NULL) {
		free(base);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		ledger_ckpt_decode(base + FILE_MAGIC_LEN + i * CKPT_RECORD_LEN, &cps[i]);
		if (cps[i].size <= prev) {
			fail(rep, prev, "checkpoint %zu: tree size %llu does not grow", i,
			     (unsigned long long)cps[i].size);
			st->other_damage = true;
		} else if (ledger_ckpt_check_sig(&cps[i], pub) < 0) {
			fail(rep, prev,
			     "checkpoint %zu (tree size %llu): bad signature or unknown key", i,
			     (unsigned long long)cps[i].size);
			st->other_damage = true;
		} else {
			good[i] = true;
			prev = cps[i].size;
		}
	}
	free(base);
	st->ckpt_count = n;
	st->trusted_at = SIZE_MAX;
	if (trusted != NULL)
		n = insert_trusted(cps, good, n, trusted, pub, rep, st);
	*ret = TAKE_PTR(cps);
	*ret_good = TAKE_PTR(good);
	*ret_n = n;
	return 0;
}

/* Checks one parsed record against the chain; pushes its leaf. */
static int
check_entry(const struct entry_view *v, struct ledger_report *rep, struct ledger_state *st)
{
	uint8_t h[LEDGER_HASH_LEN];
	int rc;

	if (v->seq != st->count) {
		fail(rep, st->count, "entry %llu: found sequence %llu (entry deleted or reordered)",
		     (unsigned long long)st->count, (unsigned long long)v->seq);
		return -EBADMSG;
	}
	if (memcmp(v->prev_hash, st->last_hash, LEDGER_HASH_LEN) != 0) {
		fail(rep, st->count, "entry %llu: previous hash does not match entry %llu",
		     (unsigned long long)st->count, (unsigned long long)st->count - 1);
		return -EBADMSG;
	}
	if ((rc = merkle_sha256(v->payload, v->payload_len, h)) < 0)
		return rc;
	if (memcmp(h, v->payload_hash, LEDGER_HASH_LEN) != 0) {
		fail(rep, st->count, "entry %llu: payload does not match its hash",
		     (unsigned long long)st->count);
		return -EBADMSG;
	}
	if ((rc = ledger_entry_hash(v->bytes, v->bytes_len, h)) < 0)
		return rc;
	if (memcmp(h, v->entry_hash, LEDGER_HASH_LEN) != 0) {
		fail(rep, st->count, "entry %llu: entry hash mismatch",
		     (unsigned long long)st->count);
		return -EBADMSG;
	}
	if ((rc = merkle_leaf_hash(v->bytes, v->bytes_len, h)) < 0 ||
	    (rc = merkle_frontier_push(&st->frontier, h)) < 0)
		return rc;
	memcpy(st->last_hash, v->entry_hash, LEDGER_HASH_LEN);
	st->count++;
	return 0;
}

static const char *
ckpt_label(const struct ledger_state *st, size_t i)
{
	return i == st->trusted_at ? "trusted checkpoint" : "checkpoint";
}

/* Compares the recomputed root with every good checkpoint of this size. */
static int
check_roots(const struct ckpt *cps, const bool *good, size_t n, size_t *next,
            struct ledger_report *rep, struct ledger_state *st)
{
	uint8_t root[LEDGER_HASH_LEN];
	int rc;

	while (*next < n && cps[*next].size <= st->count) {
		size_t i = (*next)++;

		if (!good[i] || cps[i].size != st->count)
			continue;
		if ((rc = merkle_frontier_root(&st->frontier, root)) < 0)
			return rc;
		if (memcmp(root, cps[i].root, LEDGER_HASH_LEN) != 0) {
			fail(rep, rep->last_checkpoint_size,
			     "%s %zu: root of entries %llu..%llu differs from the signed "
			     "root (an entry in that range was rewritten)",
			     ckpt_label(st, i), i, (unsigned long long)rep->last_checkpoint_size,
			     (unsigned long long)st->count - 1);
			st->other_damage = true;
			continue;
		}
		rep->checkpoints++;
		rep->last_checkpoint_size = st->count;
		st->last_ckpt_size = st->count;
	}
	return 0;
}

static int
scan_entries(struct ledger_reader *rd, const struct ckpt *cps, const bool *good, size_t n,
             struct ledger_report *rep, struct ledger_state *st)
{
	size_t next = 0;
	int rc;

	st->entries_end = rd->fd >= 0 ? FILE_MAGIC_LEN : 0;
	for (;;) {
		struct entry_view v;
		size_t off = rd->off;
		long r = ledger_reader_next(rd, &v);

		if (r == 0)
			break;
		/* A crash can leave a record cut short, or (when the size reached
		 * the disk before the data) a run of zeros: both are a torn tail. */
		if (r == -EBADMSG && ledger_reader_rest_is_zero(rd))
			r = -EAGAIN;
		if (r == -EAGAIN) {
			fail(rep, st->count,
			     "entry %llu: torn tail (incomplete record at offset %zu)",
			     (unsigned long long)st->count, off);
			st->torn_entries = true;
			break;
		}
		if (r == -EBADMSG) {
			fail(rep, st->count, "entry %llu: malformed record at offset %zu",
			     (unsigned long long)st->count, off);
			st->other_damage = true;
			break;
		}
		if (r < 0)
			return (int)r;
		if ((rc = check_entry(&v, rep, st)) == -EBADMSG) {
			st->other_damage = true;
			break;
		}
		if (rc < 0)
			return rc;
		st->entries_end = rd->off;
		if ((rc = check_roots(cps, good, n, &next, rep, st)) < 0)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (good[i] && cps[i].size > st->count) {
			fail(rep, st->count,
			     "entry %llu: missing, but %s %zu covers %llu entries "
			     "(log truncated or damaged)",
			     (unsigned long long)st->count, ckpt_label(st, i), i,
			     (unsigned long long)cps[i].size);
			st->other_damage = true;
			break;
		}
	}
	return 0;
}

int
ledger_verify_core(int dirfd, EVP_PKEY *pub, const struct ckpt *trusted, struct ledger_report *rep,
                   struct ledger_state *st)
{
	_cleanup_free_ struct ckpt *cps = NULL;
	_cleanup_free_ bool *good = NULL;
	struct ledger_reader rd;
	size_t ncp = 0;
	int rc;

	memset(rep, 0, sizeof(*rep));
	memset(st, 0, sizeof(*st));
	rep->ok = true;
	if (pub != NULL) {
		uint8_t id[LEDGER_HASH_LEN];

		if ((rc = ledger_key_id(pub, id)) < 0)
			return rc;
		hex_encode(id, sizeof(id), rep->key_id);
	}
	if ((rc = load_ckpts(dirfd, pub, trusted, rep, st, &cps, &good, &ncp)) < 0)
		return rc;
	rc = ledger_reader_open(dirfd, &rd);
	if (rc == -EBADMSG) {
		fail(rep, 0, "%s: not a ledger (bad magic)", ENTRIES_FILE);
		st->other_damage = true;
	} else if (rc < 0) {
		return rc;
	}
	st->entries_file_len = rd.file_len;
	rc = rc < 0 ? 0 : scan_entries(&rd, cps, good, ncp, rep, st);
	ledger_reader_close(&rd);
	if (rc < 0)
		return rc;
	if (st->torn_ckpt)
		fail(rep, st->last_ckpt_size, "%s: torn tail (incomplete checkpoint record)",
		     CKPT_FILE);
	rep->entries = st->count;
	rep->unsigned_tail = st->count - rep->last_checkpoint_size;
	return merkle_frontier_root(&st->frontier, rep->root);
}

bool
ledger_writer_active(int dirfd)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	_cleanup_close_ int fd = openat(dirfd, ENTRIES_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return false;
	return fl.l_type != F_UNLCK;
}
