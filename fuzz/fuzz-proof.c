/* Fuzzes what the ledger reads from outside: inclusion-proof documents, raw
 * RFC 6962 inclusion and consistency proofs, and on-disk ledger records. The
 * first byte picks the target (its value modulo 4):
 *   0  the rest is a JSON proof for ledger_verify_proof()
 *   1  u64 index, u64 size, leaf[32], root[32], then audit-path hashes
 *   2  u64 size1, u64 size2, root1[32], root2[32], then proof hashes
 *   3  the rest is the tail of entries.log for ledger_record_parse()
 * Integers are big-endian. Nothing may crash, leak or read out of bounds, and
 * a proof may only verify when its sizes are possible. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "ledger-internal.h"
#include "merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
read_hashes(const uint8_t *p, size_t n, merkle_hash *out)
{
	size_t k = n / MERKLE_HASH_LEN;

	if (k > MERKLE_MAX_PATH)
		k = MERKLE_MAX_PATH;
	memcpy(out, p, k * MERKLE_HASH_LEN);
	return k;
}

static void
fuzz_inclusion(const uint8_t *p, size_t n)
{
	merkle_hash path[MERKLE_MAX_PATH];
	uint64_t index, size;
	size_t k;

	if (n < 16 + 2 * MERKLE_HASH_LEN)
		return;
	index = get_be64(p);
	size = get_be64(p + 8);
	k = read_hashes(p + 80, n - 80, path);
	if (merkle_verify_inclusion(index, size, p + 16, path, k, p + 48) == 0 && index >= size)
		abort();
}

static void
fuzz_consistency(const uint8_t *p, size_t n)
{
	merkle_hash proof[MERKLE_MAX_PATH];
	uint64_t size1, size2;
	size_t k;

	if (n < 16 + 2 * MERKLE_HASH_LEN)
		return;
	size1 = get_be64(p);
	size2 = get_be64(p + 8);
	k = read_hashes(p + 80, n - 80, proof);
	if (merkle_verify_consistency(size1, size2, p + 16, p + 48, proof, k) == 0 && size1 > size2)
		abort();
}

static void
fuzz_record(const uint8_t *p, size_t n)
{
	struct entry_view v;
	long r = ledger_record_parse(p, n, &v);

	if (r > 0 &&
	    ((size_t)r > n || v.bytes_len > ENTRY_MAX_LEN || v.payload + v.payload_len > p + n))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errbuf err;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		(void)ledger_verify_proof((const char *)data + 1, size - 1, NULL, NULL, &err);
		break;
	case 1:
		fuzz_inclusion(data + 1, size - 1);
		break;
	case 2:
		fuzz_consistency(data + 1, size - 1);
		break;
	default:
		fuzz_record(data + 1, size - 1);
		break;
	}
	return 0;
}
