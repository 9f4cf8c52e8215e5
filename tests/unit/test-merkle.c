/* RFC 6962 Merkle tree: known-answer vectors, generated proofs for many tree
 * sizes, and rejection of wrong proofs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "merkle.h"

/* The eight leaves and the roots of the trees over their first n leaves are
 * the Certificate Transparency reference test data, as published in
 * transparency-dev/merkle testonly/constants.go (LeafInputs, RootHashes,
 * originally the CT C++ merkle_tree_test.cc); the inclusion and consistency
 * proofs are from transparency-dev/merkle proof/verify_test.go. */
static const struct {
	const char *data;
	size_t len;
} ct_leaves[8] = {
	{ "", 0 },
	{ "\x00", 1 },
	{ "\x10", 1 },
	{ "\x20\x21", 2 },
	{ "\x30\x31", 2 },
	{ "\x40\x41\x42\x43", 4 },
	{ "\x50\x51\x52\x53\x54\x55\x56\x57", 8 },
	{ "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16 },
};

static const char *const ct_roots[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct vec {
	uint64_t a, b; /* inclusion: index, size; consistency: size1, size2 */
	size_t n;
	const char *hashes[3];
};

static const struct vec ct_inclusion[] = {
	{ 0,
	  8,
	  3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 5,
	  8,
	  3,
	  { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 3, 1, { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
	{ 1,
	  5,
	  3,
	  { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
};

static const struct vec ct_consistency[] = {
	{ 1, 1, 0, { NULL } },
	{ 1,
	  8,
	  3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 6,
	  8,
	  3,
	  { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2,
	  5,
	  2,
	  { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
	{ 6,
	  7,
	  3,
	  { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
};

static void
unhex(const char *s, uint8_t *out)
{
	for (size_t i = 0; i < MERKLE_HASH_LEN; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void
ct_leaf_hashes(merkle_hash *out)
{
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(merkle_leaf_hash(ct_leaves[i].data, ct_leaves[i].len, out[i]), 0);
}

static void
test_ct_roots(void **state)
{
	merkle_hash leaves[8];
	struct merkle_frontier f = { 0 };
	uint8_t want[MERKLE_HASH_LEN], got[MERKLE_HASH_LEN];

	(void)state;
	ct_leaf_hashes(leaves);
	for (uint64_t n = 0; n <= 8; n++) {
		unhex(ct_roots[n], want);
		assert_int_equal(merkle_root(leaves, n, got), 0);
		assert_memory_equal(got, want, MERKLE_HASH_LEN);
		assert_int_equal(merkle_frontier_root(&f, got), 0);
		assert_memory_equal(got, want, MERKLE_HASH_LEN);
		if (n < 8)
			assert_int_equal(merkle_frontier_push(&f, leaves[n]), 0);
	}
}

static void
test_ct_inclusion(void **state)
{
	merkle_hash leaves[8], path[MERKLE_MAX_PATH], want[3];
	uint8_t root[MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	ct_leaf_hashes(leaves);
	for (size_t v = 0; v < sizeof(ct_inclusion) / sizeof(ct_inclusion[0]); v++) {
		const struct vec *t = &ct_inclusion[v];

		for (size_t i = 0; i < t->n; i++)
			unhex(t->hashes[i], want[i]);
		assert_int_equal(merkle_inclusion_proof(leaves, t->b, t->a, path, &len), 0);
		assert_int_equal(len, t->n);
		assert_memory_equal(path, want, t->n * MERKLE_HASH_LEN);
		unhex(ct_roots[t->b], root);
		assert_int_equal(
		    merkle_verify_inclusion(t->a, t->b, leaves[t->a], want, t->n, root), 0);
		/* Wrong index, size, leaf, root; a path one short or one long. */
		assert_int_equal(
		    merkle_verify_inclusion(t->a ^ 1, t->b, leaves[t->a], want, t->n, root),
		    -EBADMSG);
		assert_int_equal(
		    merkle_verify_inclusion(t->a, t->b * 2, leaves[t->a], want, t->n, root),
		    -EBADMSG);
		assert_int_equal(
		    merkle_verify_inclusion(t->a, t->b, leaves[(t->a + 1) % 8], want, t->n, root),
		    -EBADMSG);
		assert_int_equal(
		    merkle_verify_inclusion(t->a, t->b, leaves[t->a], want, t->n - 1, root),
		    -EBADMSG);
		root[0] ^= 1;
		assert_int_equal(
		    merkle_verify_inclusion(t->a, t->b, leaves[t->a], want, t->n, root), -EBADMSG);
	}
}

static void
test_ct_consistency(void **state)
{
	merkle_hash leaves[8], proof[MERKLE_MAX_PATH], want[3];
	uint8_t r1[MERKLE_HASH_LEN], r2[MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	ct_leaf_hashes(leaves);
	for (size_t v = 0; v < sizeof(ct_consistency) / sizeof(ct_consistency[0]); v++) {
		const struct vec *t = &ct_consistency[v];

		for (size_t i = 0; i < t->n; i++)
			unhex(t->hashes[i], want[i]);
		assert_int_equal(merkle_consistency_proof(leaves, t->b, t->a, proof, &len), 0);
		assert_int_equal(len, t->n);
		if (t->n > 0)
			assert_memory_equal(proof, want, t->n * MERKLE_HASH_LEN);
		unhex(ct_roots[t->a], r1);
		unhex(ct_roots[t->b], r2);
		assert_int_equal(merkle_verify_consistency(t->a, t->b, r1, r2, want, t->n), 0);
		if (t->n == 0)
			continue;
		assert_int_equal(merkle_verify_consistency(t->a, t->b, r2, r1, want, t->n),
		                 -EBADMSG);
		assert_int_equal(merkle_verify_consistency(t->a, t->b, r1, r2, want, t->n - 1),
		                 -EBADMSG);
		assert_int_equal(merkle_verify_consistency(t->a + 1, t->b, r1, r2, want, t->n),
		                 -EBADMSG);
	}
}

/* Leaf hashes of n generated leaves ("leaf-<i>"). */
static merkle_hash *
gen_leaves(uint64_t n)
{
	merkle_hash *l = calloc(n + 1, sizeof(*l));
	char buf[32];

	assert_non_null(l);
	for (uint64_t i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof(buf), "leaf-%llu", (unsigned long long)i);

		assert_int_equal(merkle_leaf_hash(buf, (size_t)len, l[i]), 0);
	}
	return l;
}

#define MAX_N 70

/* Every index of every size 1..70 proves against the root, and nowhere else. */
static void
test_inclusion_many_sizes(void **state)
{
	merkle_hash *leaves = gen_leaves(MAX_N), path[MERKLE_MAX_PATH];
	uint8_t root[MERKLE_HASH_LEN], other[MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (uint64_t n = 1; n <= MAX_N; n++) {
		assert_int_equal(merkle_root(leaves, n, root), 0);
		assert_int_equal(merkle_root(leaves, n - 1, other), 0);
		for (uint64_t i = 0; i < n; i++) {
			assert_int_equal(merkle_inclusion_proof(leaves, n, i, path, &len), 0);
			assert_int_equal(merkle_verify_inclusion(i, n, leaves[i], path, len, root),
			                 0);
			assert_int_equal(merkle_verify_inclusion(i, n, leaves[i], path, len, other),
			                 -EBADMSG);
			if (n > 1)
				assert_int_equal(merkle_verify_inclusion((i + 1) % n, n, leaves[i],
				                                         path, len, root),
				                 -EBADMSG);
			if (len > 0) {
				path[len / 2][3] ^= 0x40;
				assert_int_equal(
				    merkle_verify_inclusion(i, n, leaves[i], path, len, root),
				    -EBADMSG);
			}
		}
		assert_int_equal(merkle_inclusion_proof(leaves, n, n, path, &len), -EINVAL);
	}
	free(leaves);
}

/* Every pair 1 <= m <= n <= 70 has a consistency proof that verifies, and
 * fails against a wrong old or new root. */
static void
test_consistency_many_sizes(void **state)
{
	merkle_hash *leaves = gen_leaves(MAX_N), proof[MERKLE_MAX_PATH];
	uint8_t roots[MAX_N + 1][MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (uint64_t n = 0; n <= MAX_N; n++)
		assert_int_equal(merkle_root(leaves, n, roots[n]), 0);
	for (uint64_t n = 1; n <= MAX_N; n++) {
		for (uint64_t m = 1; m <= n; m++) {
			assert_int_equal(merkle_consistency_proof(leaves, n, m, proof, &len), 0);
			assert_int_equal(
			    merkle_verify_consistency(m, n, roots[m], roots[n], proof, len), 0);
			if (m == n)
				continue;
			assert_int_equal(
			    merkle_verify_consistency(m, n, roots[m - 1], roots[n], proof, len),
			    -EBADMSG);
			assert_int_equal(
			    merkle_verify_consistency(m, n, roots[m], roots[n - 1], proof, len),
			    -EBADMSG);
			assert_int_equal(
			    merkle_verify_consistency(n, m, roots[n], roots[m], proof, len),
			    -EBADMSG);
		}
		assert_int_equal(merkle_consistency_proof(leaves, n, n + 1, proof, &len), -EINVAL);
	}
	free(leaves);
}

/* The O(log n) frontier agrees with the recursive definition at every size. */
static void
test_frontier_matches_mth(void **state)
{
	merkle_hash *leaves = gen_leaves(300);
	struct merkle_frontier f = { 0 };
	uint8_t a[MERKLE_HASH_LEN], b[MERKLE_HASH_LEN];

	(void)state;
	for (uint64_t n = 0; n <= 300; n++) {
		assert_int_equal(merkle_frontier_root(&f, a), 0);
		assert_int_equal(merkle_root(leaves, n, b), 0);
		assert_memory_equal(a, b, MERKLE_HASH_LEN);
		if (n < 300)
			assert_int_equal(merkle_frontier_push(&f, leaves[n]), 0);
	}
	free(leaves);
}

/* RFC 9162 edge cases: trivial consistency, index past the end. */
static void
test_edge_cases(void **state)
{
	uint8_t r1[MERKLE_HASH_LEN] = { 1 }, r2[MERKLE_HASH_LEN] = { 2 };
	merkle_hash one = { 0 };

	(void)state;
	assert_int_equal(merkle_verify_consistency(0, 0, r1, r1, NULL, 0), 0);
	assert_int_equal(merkle_verify_consistency(0, 5, r1, r2, NULL, 0), 0);
	assert_int_equal(merkle_verify_consistency(0, 5, r1, r2, &one, 1), -EBADMSG);
	assert_int_equal(merkle_verify_consistency(1, 1, r1, r2, NULL, 0), -EBADMSG);
	assert_int_equal(merkle_verify_consistency(2, 1, r1, r2, NULL, 0), -EBADMSG);
	assert_int_equal(merkle_verify_consistency(1, 2, r1, r2, NULL, 0), -EBADMSG);
	assert_int_equal(merkle_verify_inclusion(0, 0, r1, NULL, 0, r1), -EBADMSG);
	assert_int_equal(merkle_verify_inclusion(0, 1, r1, NULL, 0, r1), 0);
	assert_int_equal(merkle_verify_inclusion(1, 1, r1, NULL, 0, r1), -EBADMSG);
	assert_int_equal(merkle_verify_inclusion(0, 1, r1, &one, 1, r1), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ct_roots),
		cmocka_unit_test(test_ct_inclusion),
		cmocka_unit_test(test_ct_consistency),
		cmocka_unit_test(test_inclusion_many_sizes),
		cmocka_unit_test(test_consistency_many_sizes),
		cmocka_unit_test(test_frontier_matches_mth),
		cmocka_unit_test(test_edge_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
