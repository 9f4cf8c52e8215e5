/* RFC 6962 Merkle trees over SHA-256 (RFC 6962 §2.1, RFC 9162 §2.1):
 *   leaf hash  = SHA-256(0x00 || leaf input)
 *   node hash  = SHA-256(0x01 || left || right)
 *   MTH({})    = SHA-256("")
 * and for n > 1 leaves MTH splits at k, the largest power of two below n.
 *
 * Pure functions over caller-owned buffers: nothing here allocates except the
 * proof generators, which write into caller-sized arrays (at most
 * MERKLE_MAX_PATH hashes). Every function that can fail returns 0 or -errno;
 * the verifiers return -EBADMSG when a proof does not verify and -EINVAL when
 * its shape is impossible. The only foreign library is OpenSSL's libcrypto. */
#ifndef DE_MERKLE_H
#define DE_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
/* A tree of up to 2^64 leaves has paths of at most 64 hashes. */
#define MERKLE_MAX_PATH 64

typedef uint8_t merkle_hash[MERKLE_HASH_LEN];

/* SHA-256 of n bytes into out. Returns 0, or -EIO when libcrypto fails. */
int merkle_sha256(const void *data, size_t n, uint8_t out[MERKLE_HASH_LEN]);
/* SHA-256 over two buffers (a || b): avoids a copy when hashing a tagged
 * preimage. Returns 0 or -EIO. */
int merkle_sha256_2(const void *a, size_t na, const void *b, size_t nb,
                    uint8_t out[MERKLE_HASH_LEN]);

/* Leaf hash of a leaf input, node hash of two children. Return 0 or -EIO. */
int merkle_leaf_hash(const void *leaf, size_t n, uint8_t out[MERKLE_HASH_LEN]);
int merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN], const uint8_t right[MERKLE_HASH_LEN],
                     uint8_t out[MERKLE_HASH_LEN]);

/* The root of the empty tree, SHA-256(""). */
void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN]);

/* A compact range: the roots of the perfect subtrees that make up a tree of
 * `size` leaves, one per set bit of size (node[level] for bit `level`).
 * Appending is O(log n) amortized O(1) node hashes; the root is O(log n).
 * Plain value: copy it freely; zero-initialise for the empty tree. */
struct merkle_frontier {
	uint64_t size;
	merkle_hash node[64];
};

/* Appends one leaf hash. Returns 0, -EOVERFLOW at 2^64 - 1 leaves, or -EIO. */
int merkle_frontier_push(struct merkle_frontier *f, const uint8_t leaf_hash[MERKLE_HASH_LEN]);
/* The RFC 6962 root of the leaves pushed so far. Returns 0 or -EIO. */
int merkle_frontier_root(const struct merkle_frontier *f, uint8_t out[MERKLE_HASH_LEN]);

/* MTH over n leaf hashes (leaves[0..n)). Returns 0 or -EIO. */
int merkle_root(const merkle_hash *leaves, uint64_t n, uint8_t out[MERKLE_HASH_LEN]);

/* RFC 6962 §2.1.1 PATH(index, D[n]) over leaf hashes: writes the audit path
 * (leaf to root order) into path (room for MERKLE_MAX_PATH) and sets
 * *ret_len. Returns 0, -EINVAL when index >= n, or -EIO. */
int merkle_inclusion_proof(const merkle_hash *leaves, uint64_t n, uint64_t index, merkle_hash *path,
                           size_t *ret_len);

/* RFC 6962 §2.1.2 PROOF(m, D[n]) for 0 < m <= n: writes the consistency proof
 * into proof (room for MERKLE_MAX_PATH) and sets *ret_len (0 when m == n).
 * Returns 0, -EINVAL for m == 0 or m > n, or -EIO. */
int merkle_consistency_proof(const merkle_hash *leaves, uint64_t n, uint64_t m, merkle_hash *proof,
                             size_t *ret_len);

/* RFC 9162 §2.1.3.2: recomputes the root from a leaf hash and its audit path
 * and compares it with root. Returns 0 when it verifies, -EBADMSG when it does
 * not (wrong hash, wrong path length, index >= size), -EIO on libcrypto failure. */
int merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[MERKLE_HASH_LEN],
                            const merkle_hash *path, size_t path_len,
                            const uint8_t root[MERKLE_HASH_LEN]);

/* RFC 9162 §2.1.4.2: checks that the tree of size2 with root2 extends the tree
 * of size1 with root1. size1 == size2 needs an empty proof and equal roots;
 * size1 == 0 needs an empty proof. Returns 0, -EBADMSG, or -EIO. */
int merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[MERKLE_HASH_LEN],
                              const uint8_t root2[MERKLE_HASH_LEN], const merkle_hash *proof,
                              size_t proof_len);

#endif
