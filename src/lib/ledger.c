/* The audit ledger's writer: open, append, checkpoint, keys, crash recovery,
 * quarantine. The format and the verification core are in ledger-verify.c,
 * the read-side views (proofs, show, export) in ledger-read.c. Format:
 * ledger-internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	pthread_mutex_lock(&l->mu);
	l->policy = *p;
	pthread_mutex_unlock(&l->mu);
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
