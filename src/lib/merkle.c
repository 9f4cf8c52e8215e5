/* RFC 6962 Merkle trees over SHA-256: hashing, compact ranges, proof
 * generation (RFC 6962 §2.1.1-2) and verification (RFC 9162 §2.1.3-4). */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "merkle.h"

static const uint8_t empty_root[MERKLE_HASH_LEN] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
	0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
	0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/* OpenSSL 3 looks the algorithm up on every implicit use; fetching it once
 * makes small hashes several times faster. The fetched object lives for the
 * whole process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *
sha256(void)
{
	(void)pthread_once(&sha256_once, sha256_fetch);
	return sha256_md != NULL ? sha256_md : EVP_sha256();
}

/* One digest context per thread, reused: allocating one per hash costs more
 * than hashing a small entry. Freed when the thread exits. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static __thread EVP_MD_CTX *tls_ctx;

static void
ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void
ctx_key_make(void)
{
	(void)pthread_key_create(&ctx_key, ctx_free);
}

static EVP_MD_CTX *
thread_ctx(void)
{
	if (tls_ctx == NULL) {
		(void)pthread_once(&ctx_once, ctx_key_make);
		if ((tls_ctx = EVP_MD_CTX_new()) != NULL)
			(void)pthread_setspecific(ctx_key, tls_ctx);
	}
	return tls_ctx;
}

int
merkle_sha256_2(const void *a, size_t na, const void *b, size_t nb, uint8_t out[MERKLE_HASH_LEN])
{
	EVP_MD_CTX *ctx = thread_ctx();
	unsigned int len = 0;

	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DigestInit_ex2(ctx, sha256(), NULL) != 1 || EVP_DigestUpdate(ctx, a, na) != 1 ||
	    (nb > 0 && EVP_DigestUpdate(ctx, b, nb) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != MERKLE_HASH_LEN)
		return -EIO;
	return 0;
}

int
merkle_sha256(const void *data, size_t n, uint8_t out[MERKLE_HASH_LEN])
{
	return merkle_sha256_2(data, n, NULL, 0, out);
}

int
merkle_leaf_hash(const void *leaf, size_t n, uint8_t out[MERKLE_HASH_LEN])
{
	static const uint8_t prefix = 0x00;

	return merkle_sha256_2(&prefix, 1, leaf, n, out);
}

int
merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                 uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t buf[1 + 2 * MERKLE_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, MERKLE_HASH_LEN);
	memcpy(buf + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
	return merkle_sha256(buf, sizeof(buf), out);
}

void
merkle_empty_root(uint8_t out[MERKLE_HASH_LEN])
{
	memcpy(out, empty_root, MERKLE_HASH_LEN);
}

int
merkle_frontier_push(struct merkle_frontier *f, const uint8_t leaf_hash[MERKLE_HASH_LEN])
{
	merkle_hash h;
	uint64_t s = f->size;
	unsigned level = 0;
	int rc;

	if (f->size == UINT64_MAX)
		return -EOVERFLOW;
	memcpy(h, leaf_hash, MERKLE_HASH_LEN);
	/* Each set low bit is a perfect subtree of the same height as h: merge. */
	while (s & 1) {
		if ((rc = merkle_node_hash(f->node[level], h, h)) < 0)
			return rc;
		s >>= 1;
		level++;
	}
	memcpy(f->node[level], h, MERKLE_HASH_LEN);
	f->size++;
	return 0;
}

int
merkle_frontier_root(const struct merkle_frontier *f, uint8_t out[MERKLE_HASH_LEN])
{
	merkle_hash r;
	bool have = false;
	int rc;

	if (f->size == 0) {
		merkle_empty_root(out);
		return 0;
	}
	/* RFC 6962 puts the smaller subtrees on the right: fold from the lowest
	 * level up, each larger subtree becoming the left child. */
	for (unsigned level = 0; level < 64; level++) {
		if (!(f->size >> level & 1))
			continue;
		if (!have) {
			memcpy(r, f->node[level], MERKLE_HASH_LEN);
			have = true;
		} else if ((rc = merkle_node_hash(f->node[level], r, r)) < 0) {
			return rc;
		}
	}
	memcpy(out, r, MERKLE_HASH_LEN);
	return 0;
}

/* The largest power of two strictly below n (n >= 2). */
static uint64_t
split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k < n - k)
		k <<= 1;
	return k;
}

/* MTH(D[lo..lo+n)) for n >= 1. Recursion depth is at most 64. */
static int
subtree_root(const merkle_hash *leaves, uint64_t n, uint8_t out[MERKLE_HASH_LEN])
{
	merkle_hash l, r;
	uint64_t k;
	int rc;

	if (n == 1) {
		memcpy(out, leaves[0], MERKLE_HASH_LEN);
		return 0;
	}
	k = split_point(n);
	if ((rc = subtree_root(leaves, k, l)) < 0 || (rc = subtree_root(leaves + k, n - k, r)) < 0)
		return rc;
	return merkle_node_hash(l, r, out);
}

int
merkle_root(const merkle_hash *leaves, uint64_t n, uint8_t out[MERKLE_HASH_LEN])
{
	if (n == 0) {
		merkle_empty_root(out);
		return 0;
	}
	return subtree_root(leaves, n, out);
}

/* PATH(m, D[n]) appended leaf-first: recurse into the half holding m, then add
 * the root of the other half. */
static int
path_rec(const merkle_hash *leaves, uint64_t n, uint64_t m, merkle_hash *path, size_t *len)
{
	uint64_t k;
	int rc;

	if (n == 1)
		return 0;
	if (*len >= MERKLE_MAX_PATH)
		return -EINVAL;
	k = split_point(n);
	if (m < k) {
		if ((rc = path_rec(leaves, k, m, path, len)) < 0)
			return rc;
		rc = subtree_root(leaves + k, n - k, path[*len]);
	} else {
		if ((rc = path_rec(leaves + k, n - k, m - k, path, len)) < 0)
			return rc;
		rc = subtree_root(leaves, k, path[*len]);
	}
	if (rc < 0)
		return rc;
	(*len)++;
	return 0;
}

int
merkle_inclusion_proof(const merkle_hash *leaves, uint64_t n, uint64_t index, merkle_hash *path,
                       size_t *ret_len)
{
	size_t len = 0;
	int rc;

	if (index >= n)
		return -EINVAL;
	if ((rc = path_rec(leaves, n, index, path, &len)) < 0)
		return rc;
	*ret_len = len;
	return 0;
}

/* SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2. */
static int
subproof_rec(const merkle_hash *leaves, uint64_t n, uint64_t m, bool b, merkle_hash *proof,
             size_t *len)
{
	uint64_t k;
	int rc;

	if (m == n) {
		if (b)
			return 0;
		if (*len >= MERKLE_MAX_PATH)
			return -EINVAL;
		if ((rc = subtree_root(leaves, n, proof[*len])) < 0)
			return rc;
		(*len)++;
		return 0;
	}
	k = split_point(n);
	if (m <= k) {
		if ((rc = subproof_rec(leaves, k, m, b, proof, len)) < 0)
			return rc;
		if (*len >= MERKLE_MAX_PATH)
			return -EINVAL;
		rc = subtree_root(leaves + k, n - k, proof[*len]);
	} else {
		if ((rc = subproof_rec(leaves + k, n - k, m - k, false, proof, len)) < 0)
			return rc;
		if (*len >= MERKLE_MAX_PATH)
			return -EINVAL;
		rc = subtree_root(leaves, k, proof[*len]);
	}
	if (rc < 0)
		return rc;
	(*len)++;
	return 0;
}

int
merkle_consistency_proof(const merkle_hash *leaves, uint64_t n, uint64_t m, merkle_hash *proof,
                         size_t *ret_len)
{
	size_t len = 0;
	int rc;

	if (m == 0 || m > n)
		return -EINVAL;
	if ((rc = subproof_rec(leaves, n, m, true, proof, &len)) < 0)
		return rc;
	*ret_len = len;
	return 0;
}

static bool
hash_eq(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (size_t i = 0; i < MERKLE_HASH_LEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

int
merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                        const merkle_hash *path, size_t path_len,
                        const uint8_t root[MERKLE_HASH_LEN])
{
	merkle_hash r;
	uint64_t fn = index, sn;
	int rc;

	if (index >= size || path_len > MERKLE_MAX_PATH)
		return -EBADMSG;
	sn = size - 1;
	memcpy(r, leaf_hash, MERKLE_HASH_LEN);
	for (size_t i = 0; i < path_len; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			if ((rc = merkle_node_hash(path[i], r, r)) < 0)
				return rc;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((rc = merkle_node_hash(r, path[i], r)) < 0) {
			return rc;
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(r, root) ? 0 : -EBADMSG;
}

int
merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[MERKLE_HASH_LEN],
                          const uint8_t root2[MERKLE_HASH_LEN], const merkle_hash *proof,
                          size_t proof_len)
{
	merkle_hash fr, sr;
	uint64_t fn, sn;
	size_t i = 0;
	int rc;

	if (size1 > size2 || proof_len > MERKLE_MAX_PATH)
		return -EBADMSG;
	if (size1 == size2)
		return proof_len == 0 && hash_eq(root1, root2) ? 0 : -EBADMSG;
	if (size1 == 0)
		return proof_len == 0 ? 0 : -EBADMSG;
	if (proof_len == 0)
		return -EBADMSG;
	/* When size1 is a power of two the old root is itself a node of the new
	 * tree and the proof starts above it: seed both accumulators with it. */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, MERKLE_HASH_LEN);
	} else {
		memcpy(fr, proof[0], MERKLE_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, MERKLE_HASH_LEN);
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < proof_len; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			if ((rc = merkle_node_hash(proof[i], fr, fr)) < 0 ||
			    (rc = merkle_node_hash(proof[i], sr, sr)) < 0)
				return rc;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else if ((rc = merkle_node_hash(sr, proof[i], sr)) < 0) {
			return rc;
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(fr, root1) && hash_eq(sr, root2) ? 0 : -EBADMSG;
}
