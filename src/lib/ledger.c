/* The audit ledger: on-disk format, verification core, and the writer (open,
 * append, checkpoint, keys, crash recovery). The read-side views (proofs,
 * show, export) are in ledger-read.c. Format: ledger-internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "cleanup.h"
#include "ledger-internal.h"
#include "timeutil.h"
#include "util.h"

/* Largest torn tail kept aside on recovery (a record, or a run of zeros). */
#define TORN_TAIL_MAX (16u << 20)

struct ledger {
	enum ledger_mode mode;
	int dirfd;
	int entries_fd, ckpt_fd;
	char *dir, *pub_path;
	EVP_PKEY *key; /* RW: the signing key */
	uint8_t key_id[LEDGER_HASH_LEN];
	struct ledger_policy policy;
	struct merkle_frontier frontier;
	uint8_t last_hash[LEDGER_HASH_LEN];
	uint64_t count, last_ckpt_size, last_ckpt_mono_ms;
	size_t entries_end;
	bool broken;        /* an append failed half-way: refuse more until reopened */
	pthread_mutex_t mu; /* orders append, checkpoint and tick */
	uint8_t *buf;       /* RECORD_MAX_LEN scratch for building records */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free)

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

/* ---- writer: files and keys ---- */

static int
fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* Opens (creating with its magic) an append-only file. */
static int
open_log(int dirfd, const char *name, const char *magic, int *ret)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int rc;

	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_size == 0) {
		if ((rc = write_all(fd, magic, FILE_MAGIC_LEN)) < 0)
			return rc;
		if (fsync(fd) < 0)
			return -errno;
		if ((rc = fsync_dir(dirfd)) < 0)
			return rc;
	}
	*ret = TAKE_FD(fd);
	return 0;
}

/* Writes a whole small file atomically: temp file, fsync, rename. */
static int
write_file_atomic(int dirfd, const char *name, const void *data, size_t n, mode_t mode)
{
	char tmp[64];
	_cleanup_close_ int fd = -1;
	int rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	if ((rc = write_all(fd, data, n)) < 0 || (fsync(fd) < 0 && (rc = -errno) < 0)) {
		(void)unlinkat(dirfd, tmp, 0);
		return rc;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = -errno;
		(void)unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return fsync_dir(dirfd);
}

static int
write_pubkey(struct ledger *l)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	int rc;

	if (b == NULL)
		return -ENOMEM;
	if (PEM_write_bio_PUBKEY(b, l->key) != 1 || (n = BIO_get_mem_data(b, &data)) <= 0) {
		BIO_free(b);
		return -EIO;
	}
	rc = write_file_atomic(l->dirfd, PUB_FILE, data, (size_t)n, 0644);
	BIO_free(b);
	return rc;
}

static int
create_key(struct ledger *l, struct errbuf *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	_cleanup_close_ int fd = -1;
	BIO *b;
	int ok;

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		errbuf_set(err, "cannot generate an Ed25519 key");
		return -EIO;
	}
	fd = openat(l->dirfd, KEY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		errbuf_set(err, "%s/%s: %s", l->dir, KEY_FILE, strerror(errno));
		return -errno;
	}
	if ((b = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL)
		return -ENOMEM;
	ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1 && BIO_flush(b) == 1;
	BIO_free(b);
	if (!ok || fsync(fd) < 0) {
		(void)unlinkat(l->dirfd, KEY_FILE, 0);
		errbuf_set(err, "%s/%s: cannot write the key", l->dir, KEY_FILE);
		return -EIO;
	}
	l->key = TAKE_PTR(k);
	return 0;
}

/* Loads ledger.key (refusing one that others can read). Returns -ENOENT when
 * there is none. */
static int
load_key(struct ledger *l, struct errbuf *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_fclose_ FILE *f = NULL;
	struct stat st;

	fd = openat(l->dirfd, KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		errbuf_set(err, "%s/%s: must be a regular file of uid %u with mode 0600", l->dir,
		           KEY_FILE, (unsigned)geteuid());
		return -EPERM;
	}
	if ((f = fdopen(fd, "re")) == NULL)
		return -errno;
	(void)TAKE_FD(fd); /* f owns it now */
	l->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	if (l->key == NULL || EVP_PKEY_get_id(l->key) != EVP_PKEY_ED25519) {
		errbuf_set(err, "%s/%s: not an Ed25519 private key", l->dir, KEY_FILE);
		return -EINVAL;
	}
	return 0;
}

/* ---- writer: recovery, append, checkpoint ---- */

/* Moves the bytes of a torn tail into <name>.torn-<offset>, cuts the file back
 * and returns (in payload) the JSON text the ledger records about it. */
static int
save_torn_tail(struct ledger *l, int fd, const char *name, size_t good_end, size_t file_len,
               char **ret_payload)
{
	_cleanup_free_ uint8_t *tail = NULL;
	char side[96], hex[2 * LEDGER_HASH_LEN + 1], *payload;
	uint8_t h[LEDGER_HASH_LEN];
	size_t n = file_len - good_end;
	ssize_t r;
	int rc;

	if (n > TORN_TAIL_MAX)
		return -EFBIG;
	if ((tail = malloc(n + 1)) == NULL)
		return -ENOMEM;
	if ((r = pread(fd, tail, n, (off_t)good_end)) < 0)
		return -errno;
	if ((size_t)r != n)
		return -EIO;
	if ((size_t)snprintf(side, sizeof(side), "%s.torn-%zu", name, good_end) >= sizeof(side))
		return -ENAMETOOLONG;
	if ((rc = write_file_atomic(l->dirfd, side, tail, n, 0600)) < 0)
		return rc;
	if (ftruncate(fd, (off_t)good_end) < 0 || fsync(fd) < 0)
		return -errno;
	if ((rc = merkle_sha256(tail, n, h)) < 0)
		return rc;
	hex_encode(h, sizeof(h), hex);
	if (asprintf(&payload,
	             "{\"file\":\"%s\",\"offset\":%zu,\"length\":%zu,\"sha256\":\"%s\","
	             "\"saved_as\":\"%s\"}",
	             name, good_end, n, hex, side) < 0)
		return -ENOMEM;
	*ret_payload = payload;
	return 0;
}

static int
build_record(struct ledger *l, const char *actor, const char *action, const void *payload,
             size_t len, size_t *ret_len)
{
	size_t na = strlen(actor), nc = strlen(action), off = 4;
	uint8_t *p = l->buf, *entry;
	int rc;

	entry = p + off;
	p[off++] = ENTRY_VERSION;
	put_be64(p + off, l->count);
	put_be64(p + off + 8, time_now_ms());
	off += 16;
	put_be16(p + off, (uint16_t)na);
	memcpy(p + off + 2, actor, na);
	off += 2 + na;
	put_be16(p + off, (uint16_t)nc);
	memcpy(p + off + 2, action, nc);
	off += 2 + nc;
	if ((rc = merkle_sha256(payload, len, p + off)) < 0)
		return rc;
	memcpy(p + off + LEDGER_HASH_LEN, l->last_hash, LEDGER_HASH_LEN);
	off += 3 * LEDGER_HASH_LEN;
	if ((rc = ledger_entry_hash(entry, (size_t)(p + off - entry), p + off - LEDGER_HASH_LEN)) <
	    0)
		return rc;
	put_be32(p + off, (uint32_t)len);
	if (len > 0)
		memcpy(p + off + 4, payload, len);
	off += 4 + len;
	put_be32(p, (uint32_t)(off - 4));
	*ret_len = off;
	return 0;
}

static bool
name_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > max || !utf8_is_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool
checkpoint_due(const struct ledger *l)
{
	if (l->count == l->last_ckpt_size)
		return false;
	if (l->policy.checkpoint_every > 0 &&
	    l->count - l->last_ckpt_size >= l->policy.checkpoint_every)
		return true;
	return l->policy.checkpoint_interval_s > 0 &&
	       time_mono_ms() - l->last_ckpt_mono_ms >= l->policy.checkpoint_interval_s * 1000ull;
}

static int checkpoint_locked(struct ledger *l);

static int
append_locked(struct ledger *l, const char *actor, const char *action, const void *payload,
              size_t len, uint64_t *ret_seq)
{
	struct entry_view v;
	uint8_t leaf[LEDGER_HASH_LEN];
	size_t n;
	uint64_t seq;
	int rc;

	if (l == NULL || !name_ok(actor, LEDGER_ACTOR_MAX) || !name_ok(action, LEDGER_ACTION_MAX) ||
	    (payload == NULL && len > 0) || len > LEDGER_PAYLOAD_MAX)
		return -EINVAL;
	if (l->mode != LEDGER_RW)
		return -EROFS;
	if (l->broken)
		return -EIO;
	if ((rc = build_record(l, actor, action, payload == NULL ? "" : payload, len, &n)) < 0)
		return rc;
	if ((rc = write_all(l->entries_fd, l->buf, n)) < 0 ||
	    (l->policy.sync_each_append && fdatasync(l->entries_fd) < 0 && (rc = -errno) < 0)) {
		/* Take back what may have been written; if that fails too the
		 * tail is unknown and only a reopen (which recovers it) is safe. */
		if (ftruncate(l->entries_fd, (off_t)l->entries_end) < 0)
			l->broken = true;
		return rc;
	}
	if (ledger_record_parse(l->buf, n, &v) < 0 ||
	    (rc = merkle_leaf_hash(v.bytes, v.bytes_len, leaf)) < 0 ||
	    (rc = merkle_frontier_push(&l->frontier, leaf)) < 0) {
		l->broken = true;
		return rc < 0 ? rc : -EIO;
	}
	memcpy(l->last_hash, v.entry_hash, LEDGER_HASH_LEN);
	seq = l->count++;
	l->entries_end += n;
	/* The entry is stored whatever happens to the checkpoint: a checkpoint
	 * that fails is tried again at the next append or tick (a write
	 * failure marks the ledger broken, and the next append says so). */
	if (checkpoint_due(l))
		(void)checkpoint_locked(l);
	if (ret_seq != NULL)
		*ret_seq = seq;
	return 0;
}

static int
sign_ckpt(struct ledger *l, struct ckpt *c)
{
	uint8_t msg[CKPT_MSG_MAX];
	size_t n = ledger_ckpt_message(c, msg), siglen = CKPT_SIG_LEN;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (ctx == NULL)
		return -ENOMEM;
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, l->key) == 1 &&
	     EVP_DigestSign(ctx, c->sig, &siglen, msg, n) == 1 && siglen == CKPT_SIG_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

/* Appends and checkpoints may come from more than one thread of the agent
 * (the engine loop, alert observers): one lock orders them. */
int
ledger_append(struct ledger *l, const char *actor, const char *action, const void *payload,
              size_t len, uint64_t *ret_seq)
{
	int rc;

	if (l == NULL)
		return -EINVAL;
	pthread_mutex_lock(&l->mu);
	rc = append_locked(l, actor, action, payload, len, ret_seq);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

int
ledger_checkpoint(struct ledger *l)
{
	int rc;

	if (l == NULL)
		return -EINVAL;
	pthread_mutex_lock(&l->mu);
	rc = checkpoint_locked(l);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static int
checkpoint_locked(struct ledger *l)
{
	uint8_t rec[CKPT_RECORD_LEN];
	struct ckpt c = { 0 };
	int rc;

	if (l == NULL)
		return -EINVAL;
	if (l->mode != LEDGER_RW)
		return -EROFS;
	if (l->broken)
		return -EIO;
	if (l->count == l->last_ckpt_size)
		return 0;
	/* A checkpoint must never name entries that a crash could still lose. */
	if (!l->policy.sync_each_append && fdatasync(l->entries_fd) < 0)
		return -errno;
	c.size = l->count;
	c.timestamp_ms = time_now_ms();
	memcpy(c.key_id, l->key_id, LEDGER_HASH_LEN);
	if ((rc = merkle_frontier_root(&l->frontier, c.root)) < 0 || (rc = sign_ckpt(l, &c)) < 0)
		return rc;
	ledger_ckpt_encode(&c, rec);
	if ((rc = write_all(l->ckpt_fd, rec, sizeof(rec))) < 0 || fdatasync(l->ckpt_fd) < 0) {
		l->broken = true;
		return rc < 0 ? rc : -errno;
	}
	l->last_ckpt_size = l->count;
	l->last_ckpt_mono_ms = time_mono_ms();
	return 1;
}

int
ledger_tick(struct ledger *l)
{
	int rc;

	if (l == NULL || l->mode != LEDGER_RW)
		return -EINVAL;
	pthread_mutex_lock(&l->mu);
	rc = checkpoint_due(l) ? checkpoint_locked(l) : 0;
	pthread_mutex_unlock(&l->mu);
	return rc;
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

int
ledger_dirfd(const struct ledger *l)
{
	return l->dirfd;
}

uint64_t
ledger_size(const struct ledger *l)
{
	return l != NULL ? l->count : 0;
}

const char *
ledger_pubkey_path(const struct ledger *l)
{
	return l->pub_path;
}

int
ledger_set_policy(struct ledger *l, const struct ledger_policy *p)
{
	if (l == NULL || p == NULL || p->checkpoint_interval_s > 86400 * 365)
		return -EINVAL;
	l->policy = *p;
	return 0;
}

/* ---- open / close ---- */

static int
ledger_new(const char *dir, enum ledger_mode mode, struct ledger **ret)
{
	struct ledger *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -ENOMEM;
	l->mode = mode;
	l->dirfd = l->entries_fd = l->ckpt_fd = -1;
	pthread_mutex_init(&l->mu, NULL);
	l->policy = (struct ledger_policy){ .checkpoint_every = LEDGER_CHECKPOINT_EVERY,
		                            .checkpoint_interval_s = LEDGER_CHECKPOINT_INTERVAL_S,
		                            .sync_each_append = true };
	if ((l->dir = strdup(dir)) == NULL || asprintf(&l->pub_path, "%s/%s", dir, PUB_FILE) < 0) {
		l->pub_path = NULL;
		ledger_close(l);
		return -ENOMEM;
	}
	*ret = l;
	return 0;
}

/* Applies what verification found: adopts the good state, recovers torn tails. */
static int
adopt_state(struct ledger *l, const struct ledger_report *rep, const struct ledger_state *st,
            char **torn_payloads, struct errbuf *err)
{
	int rc;

	if (st->other_damage) {
		errbuf_set(err, "%s: ledger damaged at entry %llu: %s", l->dir,
		           (unsigned long long)rep->first_bad_seq, rep->reason);
		return -EBADMSG;
	}
	if (st->torn_entries &&
	    (rc = save_torn_tail(l, l->entries_fd, ENTRIES_FILE, st->entries_end,
	                         st->entries_file_len, &torn_payloads[0])) < 0) {
		errbuf_set(err, "%s: cannot recover the torn tail: %s", l->dir, strerror(-rc));
		return rc;
	}
	if (st->torn_ckpt && (rc = save_torn_tail(l, l->ckpt_fd, CKPT_FILE,
	                                          FILE_MAGIC_LEN + st->ckpt_count * CKPT_RECORD_LEN,
	                                          st->ckpt_file_len, &torn_payloads[1])) < 0) {
		errbuf_set(err, "%s: cannot recover the torn checkpoint: %s", l->dir,
		           strerror(-rc));
		return rc;
	}
	l->frontier = st->frontier;
	memcpy(l->last_hash, st->last_hash, LEDGER_HASH_LEN);
	l->count = st->count;
	l->entries_end = st->entries_end;
	l->last_ckpt_size = rep->last_checkpoint_size;
	l->last_ckpt_mono_ms = time_mono_ms();
	return 0;
}

/* Records what opening did: a new key, recovered torn tails. */
static int
record_open_events(struct ledger *l, bool created, char *const torn[2], struct errbuf *err)
{
	int rc;

	if (created) {
		uint8_t raw[32];
		size_t n = sizeof(raw);
		char id[2 * LEDGER_HASH_LEN + 1], pub[2 * sizeof(raw) + 1], payload[256];

		if (EVP_PKEY_get_raw_public_key(l->key, raw, &n) != 1)
			return -EIO;
		hex_encode(l->key_id, LEDGER_HASH_LEN, id);
		hex_encode(raw, sizeof(raw), pub);
		(void)snprintf(
		    payload, sizeof(payload),
		    "{\"algorithm\":\"ed25519\",\"key_id\":\"%s\",\"public_key\":\"%s\"}", id, pub);
		if ((rc = ledger_append(l, "ledger", "key.created", payload, strlen(payload),
		                        NULL)) < 0) {
			errbuf_set(err, "%s: cannot record the new key: %s", l->dir, strerror(-rc));
			return rc;
		}
	}
	for (size_t i = 0; i < 2; i++) {
		if (torn[i] == NULL)
			continue;
		rc = ledger_append(l, "ledger", "ledger.torn_tail", torn[i], strlen(torn[i]), NULL);
		if (rc < 0) {
			errbuf_set(err, "%s: cannot record the torn tail: %s", l->dir,
			           strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int
open_rw(struct ledger *l, struct errbuf *err)
{
	char *torn[2] = { NULL, NULL };
	struct ledger_report rep;
	struct ledger_state st;
	bool created = false;
	int rc;

	if ((rc = open_log(l->dirfd, ENTRIES_FILE, ENTRIES_MAGIC, &l->entries_fd)) < 0 ||
	    (rc = open_log(l->dirfd, CKPT_FILE, CKPT_MAGIC, &l->ckpt_fd)) < 0) {
		errbuf_set(err, "%s: %s", l->dir, strerror(-rc));
		return rc;
	}
	/* An open-file-description lock: readers can test for it (F_OFD_GETLK)
	 * without ever taking it, so a reader can never make the agent fail. */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(l->entries_fd, F_OFD_SETLK, &fl) < 0) {
		errbuf_set(err, "%s: another process holds the ledger", l->dir);
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	}
	rc = load_key(l, err);
	if (rc == -ENOENT) {
		if ((rc = create_key(l, err)) < 0)
			return rc;
		created = true;
	} else if (rc < 0) {
		return rc;
	}
	if ((rc = ledger_key_id(l->key, l->key_id)) < 0 || (rc = write_pubkey(l)) < 0) {
		errbuf_set(err, "%s/%s: cannot write the public key", l->dir, PUB_FILE);
		return rc;
	}
	if ((rc = ledger_verify_core(l->dirfd, l->key, NULL, &rep, &st)) < 0) {
		errbuf_set(err, "%s: cannot read the ledger: %s", l->dir, strerror(-rc));
		return rc;
	}
	if (created && st.ckpt_count > 0) {
		(void)unlinkat(l->dirfd, KEY_FILE, 0);
		errbuf_set(err,
		           "%s: %s is missing but checkpoints exist: restore the key or move "
		           "the ledger aside",
		           l->dir, KEY_FILE);
		return -ENOKEY;
	}
	if ((rc = adopt_state(l, &rep, &st, torn, err)) < 0 ||
	    ((l->buf = malloc(RECORD_MAX_LEN)) == NULL && (rc = -ENOMEM) < 0)) {
		free(torn[0]);
		free(torn[1]);
		return rc;
	}
	l->mode = LEDGER_RW;
	rc = record_open_events(l, created, torn, err);
	free(torn[0]);
	free(torn[1]);
	return rc;
}

int
ledger_open(const char *dir, enum ledger_mode mode, struct ledger **ret, struct errbuf *err)
{
	_cleanup_(ledger_closep) struct ledger *l = NULL;
	int rc;

	if (isempty(dir) || (mode != LEDGER_RW && mode != LEDGER_RO))
		return -EINVAL;
	if ((rc = ledger_new(dir, mode, &l)) < 0)
		return rc;
	if (mode == LEDGER_RW && mkdir(dir, 0750) < 0 && errno != EEXIST) {
		errbuf_set(err, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if ((l->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		errbuf_set(err, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (mode == LEDGER_RW) {
		/* Until the state is adopted, close must not try to checkpoint. */
		l->mode = LEDGER_RO;
		if ((rc = open_rw(l, err)) < 0)
			return rc;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

void
ledger_close(struct ledger *l)
{
	if (l == NULL)
		return;
	if (l->mode == LEDGER_RW && !l->broken) {
		(void)ledger_checkpoint(l);
		(void)fdatasync(l->entries_fd);
	}
	if (l->entries_fd >= 0)
		close(l->entries_fd);
	if (l->ckpt_fd >= 0)
		close(l->ckpt_fd);
	if (l->dirfd >= 0)
		close(l->dirfd);
	EVP_PKEY_free(l->key);
	pthread_mutex_destroy(&l->mu);
	free(l->buf);
	free(l->dir);
	free(l->pub_path);
	free(l);
}

int
ledger_quarantine(const char *dir, char *ret_path, size_t n, struct errbuf *err)
{
	char moved[4096], from[4200], to[4200];

	if (isempty(dir) || ret_path == NULL)
		return -EINVAL;
	if ((size_t)snprintf(moved, sizeof(moved), "%s.damaged-%llu", dir,
	                     (unsigned long long)time_now_ms()) >= sizeof(moved) ||
	    strlen(moved) >= n)
		return -ENAMETOOLONG;
	if (rename(dir, moved) < 0) {
		errbuf_set(err, "%s: cannot move aside: %s", dir, strerror(errno));
		return -errno;
	}
	if (mkdir(dir, 0750) < 0) {
		errbuf_set(err, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	/* Keep the signer: verifiers holding the public key need nothing new. */
	snprintf(from, sizeof(from), "%s/%s", moved, KEY_FILE);
	snprintf(to, sizeof(to), "%s/%s", dir, KEY_FILE);
	if (rename(from, to) < 0 && errno != ENOENT) {
		errbuf_set(err, "%s: cannot move the key back: %s", from, strerror(errno));
		return -errno;
	}
	de_strlcpy(ret_path, moved, n);
	return 0;
}
