#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

#define HASH_WAYS       4
#define HASH_READ_CHUNK (64u << 10)

struct hash_key {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct hash_entry {
	struct hash_key key;
	uint64_t stamp; /* 0: empty slot */
	char hex[HASH_HEX_LEN + 1];
};

struct hash_job {
	struct hash_key key;
	int fd; /* -1: free slot */
	off_t done;
	EVP_MD_CTX *md; /* made once per slot and reused */
};

struct hash_cache {
	struct hash_entry *sets; /* n_sets * HASH_WAYS */
	size_t n_sets;
	uint64_t clock;
	uint64_t budget, budget_left;
	EVP_MD *sha256; /* fetched once */
	struct hash_job jobs[HASH_MAX_JOBS];
	unsigned char *buf;
	struct hash_stats st;
};

static bool
key_eq(const struct hash_key *a, const struct hash_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void
key_from_stat(const struct stat *sb, struct hash_key *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->dev = sb->st_dev;
	ret->ino = sb->st_ino;
	ret->size = sb->st_size;
	ret->mtime = sb->st_mtim;
	ret->ctime = sb->st_ctim;
}

static size_t
key_set(const struct hash_cache *hc, const struct hash_key *k)
{
	uint64_t h = (uint64_t)k->dev * 0x9e3779b97f4a7c15ull ^ (uint64_t)k->ino;

	h ^= (uint64_t)k->size * 0xff51afd7ed558ccdull;
	h ^= (uint64_t)k->mtime.tv_nsec ^ ((uint64_t)k->ctime.tv_sec << 17);
	h ^= h >> 33;
	return (size_t)(h % hc->n_sets);
}

int
hash_cache_new(size_t max_entries, uint64_t tick_budget, struct hash_cache **ret)
{
	struct hash_cache *hc;

	/* No openssl.cnf, should anything in the process initialise OpenSSL
	 * later: an OPENSSL_CONF in a privileged process's environment could
	 * load arbitrary providers. */
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1)
		return -EIO;
	if (max_entries == 0)
		max_entries = HASH_DEFAULT_ENTRIES;
	if (tick_budget == 0)
		tick_budget = HASH_DEFAULT_TICK_BUDGET;
	if ((hc = calloc(1, sizeof(*hc))) == NULL)
		return -ENOMEM;
	hc->n_sets = (max_entries + HASH_WAYS - 1) / HASH_WAYS;
	hc->sets = calloc(hc->n_sets * HASH_WAYS, sizeof(*hc->sets));
	hc->buf = malloc(HASH_READ_CHUNK);
	if (hc->sets == NULL || hc->buf == NULL) {
		hash_cache_free(hc);
		return -ENOMEM;
	}
	/* One explicit fetch for the life of the cache, not an implicit one per
	 * digest (EVP_sha256() would look the algorithm up on every init). */
	if ((hc->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL)) == NULL) {
		hash_cache_free(hc);
		return -EIO;
	}
	for (size_t i = 0; i < HASH_MAX_JOBS; i++)
		hc->jobs[i].fd = -1;
	hc->budget = hc->budget_left = tick_budget;
	*ret = hc;
	return 0;
}

static void
job_release(struct hash_job *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
	j->done = 0;
}

void
hash_cache_free(struct hash_cache *hc)
{
	if (hc == NULL)
		return;
	for (size_t i = 0; i < HASH_MAX_JOBS; i++) {
		job_release(&hc->jobs[i]);
		EVP_MD_CTX_free(hc->jobs[i].md);
	}
	EVP_MD_free(hc->sha256);
	free(hc->sets);
	free(hc->buf);
	free(hc);
}

static const struct hash_entry *
cache_find(struct hash_cache *hc, const struct hash_key *k)
{
	struct hash_entry *set = &hc->sets[key_set(hc, k) * HASH_WAYS];

	for (size_t i = 0; i < HASH_WAYS; i++) {
		if (set[i].stamp != 0 && key_eq(&set[i].key, k)) {
			set[i].stamp = ++hc->clock;
			return &set[i];
		}
	}
	return NULL;
}

static void
cache_insert(struct hash_cache *hc, const struct hash_key *k, const char *hex)
{
	struct hash_entry *set = &hc->sets[key_set(hc, k) * HASH_WAYS], *victim = &set[0];

	for (size_t i = 0; i < HASH_WAYS; i++) {
		if (set[i].stamp == 0) {
			victim = &set[i];
			break;
		}
		if (set[i].stamp < victim->stamp)
			victim = &set[i];
	}
	if (victim->stamp != 0)
		hc->st.evictions++;
	else
		hc->st.entries++;
	victim->key = *k;
	victim->stamp = ++hc->clock;
	memcpy(victim->hex, hex, sizeof(victim->hex));
}

/* Feeds up to max bytes of j's file into its digest. Returns 1 when the file
 * is finished, 0 when more remains, -errno on failure. */
static int
job_step(struct hash_cache *hc, struct hash_job *j, uint64_t max, uint64_t *ret_used)
{
	uint64_t used = 0;

	while (used < max) {
		size_t want = HASH_READ_CHUNK;
		ssize_t n;

		if (max - used < want)
			want = (size_t)(max - used);
		n = pread(j->fd, hc->buf, want, j->done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*ret_used = used;
			return -errno;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(j->md, hc->buf, (size_t)n) != 1) {
			*ret_used = used;
			return -EIO;
		}
		j->done += n;
		used += (uint64_t)n;
	}
	*ret_used = used;
	hc->st.bytes_hashed += used;
	return j->done >= j->key.size || used < max ? 1 : 0;
}

/* Finishes j: checks the file did not change while it was read and caches
 * the digest. Returns 0 and writes hex, -EAGAIN when the file changed. */
static int
job_finish(struct hash_cache *hc, struct hash_job *j, char hex[HASH_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	struct stat sb;
	struct hash_key now;

	if (EVP_DigestFinal_ex(j->md, md, &len) != 1 || len != 32)
		return -EIO;
	if (fstat(j->fd, &sb) < 0)
		return -errno;
	key_from_stat(&sb, &now);
	if (!key_eq(&now, &j->key) || j->done != j->key.size)
		return -EAGAIN;
	hex_encode(md, 32, hex);
	cache_insert(hc, &j->key, hex);
	return 0;
}

static int
job_start(struct hash_cache *hc, struct hash_job *j, int fd, const struct hash_key *k)
{
	int dup_fd;

	if (j->md == NULL && (j->md = EVP_MD_CTX_new()) == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex2(j->md, hc->sha256, NULL) != 1)
		return -EIO;
	if ((dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		int rc = -errno;

		job_release(j);
		return rc;
	}
	j->fd = dup_fd;
	j->key = *k;
	j->done = 0;
	return 0;
}

static struct hash_job *
job_find(struct hash_cache *hc, const struct hash_key *k, bool want_free)
{
	for (size_t i = 0; i < HASH_MAX_JOBS; i++) {
		struct hash_job *j = &hc->jobs[i];

		if (want_free ? j->fd < 0 : (j->fd >= 0 && key_eq(&j->key, k)))
			return j;
	}
	return NULL;
}

/* Hashes the file open at fd whose key is k (a cache miss). */
static int
hash_miss(struct hash_cache *hc, int fd, const struct hash_key *k, char hex[HASH_HEX_LEN + 1])
{
	struct hash_job *j;
	uint64_t used;
	int rc;

	hc->st.misses++;
	if (job_find(hc, k, false) != NULL) {
		hc->st.deferred++;
		return -EINPROGRESS;
	}
	if ((j = job_find(hc, k, true)) == NULL) {
		hc->st.deferred++;
		return -EAGAIN;
	}
	if ((rc = job_start(hc, j, fd, k)) < 0)
		return rc;
	hc->st.jobs++;
	/* Small enough for what is left of this tick's budget: finish it now. */
	if ((uint64_t)k->size <= hc->budget_left) {
		rc = job_step(hc, j, (uint64_t)k->size + 1, &used);
		hc->budget_left -= used < hc->budget_left ? used : hc->budget_left;
		if (rc == 1)
			rc = job_finish(hc, j, hex);
		job_release(j);
		hc->st.jobs--;
		return rc;
	}
	hc->st.deferred++;
	return -EINPROGRESS;
}

/* Looks k up; on a hit counts it and writes hex. */
static bool
cache_hit(struct hash_cache *hc, const struct hash_key *k, char hex[HASH_HEX_LEN + 1])
{
	const struct hash_entry *e = cache_find(hc, k);

	if (e == NULL)
		return false;
	hc->st.hits++;
	memcpy(hex, e->hex, HASH_HEX_LEN + 1);
	return true;
}

int
hash_cache_get_fd(struct hash_cache *hc, int fd, char hex[HASH_HEX_LEN + 1])
{
	struct stat sb;
	struct hash_key k;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EINVAL;
	key_from_stat(&sb, &k);
	if (cache_hit(hc, &k, hex))
		return 0;
	return hash_miss(hc, fd, &k, hex);
}

int
hash_cache_get_stat(struct hash_cache *hc, const struct stat *sb, int proc_dirfd, pid_t pid,
                    char hex[HASH_HEX_LEN + 1])
{
	_cleanup_close_ int fd = -1;
	struct hash_key k;
	char path[32];

	if (!S_ISREG(sb->st_mode))
		return -EINVAL;
	key_from_stat(sb, &k);
	if (cache_hit(hc, &k, hex))
		return 0;
	snprintf(path, sizeof(path), "%d/exe", (int)pid);
	if ((fd = openat(proc_dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	/* The image behind the link may have changed since sb was taken: the
	 * key must be the open file's, or a wrong digest gets cached. */
	return hash_cache_get_fd(hc, fd, hex);
}

int
hash_cache_get(struct hash_cache *hc, int proc_dirfd, pid_t pid, char hex[HASH_HEX_LEN + 1])
{
	struct stat sb;
	char path[32];

	snprintf(path, sizeof(path), "%d/exe", (int)pid);
	/* The key from a stat through the link: a cached image (nearly every
	 * process) costs one call, and only a miss opens the file. */
	if (fstatat(proc_dirfd, path, &sb, 0) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return hash_cache_get_stat(hc, &sb, proc_dirfd, pid, hex);
}

int
hash_cache_tick(struct hash_cache *hc)
{
	int completed = 0;

	hc->budget_left = hc->budget;
	for (size_t i = 0; i < HASH_MAX_JOBS && hc->budget_left > 0; i++) {
		struct hash_job *j = &hc->jobs[i];
		char hex[HASH_HEX_LEN + 1];
		uint64_t used = 0;
		int rc;

		if (j->fd < 0)
			continue;
		rc = job_step(hc, j, hc->budget_left, &used);
		hc->budget_left -= used < hc->budget_left ? used : hc->budget_left;
		if (rc == 0)
			continue;
		if (rc == 1 && job_finish(hc, j, hex) == 0)
			completed++;
		job_release(j);
		hc->st.jobs--;
	}
	return completed;
}

void
hash_cache_stats(const struct hash_cache *hc, struct hash_stats *ret)
{
	*ret = hc->st;
}
