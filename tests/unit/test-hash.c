/*
 * test-hash.c - seeded XXH3-128 block hashes in canonical form, the two
 * reserved values, the header checksum and the seed source (src/hash.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hash.h"

#define BLK 65536

static uint8_t block[BLK];

static int
setup(void **state)
{
	(void)state;
	fill(block, sizeof(block), 42);
	return 0;
}

static void
test_reserved_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < VS_HASH_LEN; i++) {
		assert_int_equal(vs_hash_hole.b[i], 0);
		assert_int_equal(vs_hash_unknown.b[i], 0xff);
	}
	assert_false(vs_hash_eq(&vs_hash_hole, &vs_hash_unknown));
	assert_true(vs_hash_eq(&vs_hash_hole, &vs_hash_hole));
}

static void
test_deterministic(void **state)
{
	struct vs_hash a, b;

	(void)state;
	memset(&a, 0x11, sizeof(a));
	memset(&b, 0x22, sizeof(b));
	vs_hash_block(block, BLK, 0x1234, &a);
	vs_hash_block(block, BLK, 0x1234, &b);
	assert_true(vs_hash_eq(&a, &b));
	assert_memory_equal(a.b, b.b, VS_HASH_LEN);
	/* The same bytes at another address hash the same. */
	{
		uint8_t *copy = malloc(BLK + 1);

		assert_non_null(copy);
		memcpy(copy + 1, block, BLK);
		vs_hash_block(copy + 1, BLK, 0x1234, &b);
		free(copy);
	}
	assert_true(vs_hash_eq(&a, &b));
}

static void
test_seed_matters(void **state)
{
	struct vs_hash a, b, c;

	(void)state;
	vs_hash_block(block, BLK, 1, &a);
	vs_hash_block(block, BLK, 2, &b);
	vs_hash_block(block, BLK, 1ull << 63, &c);
	assert_false(vs_hash_eq(&a, &b));
	assert_false(vs_hash_eq(&a, &c));
	assert_false(vs_hash_eq(&b, &c));
}

static void
test_one_bit_flip(void **state)
{
	struct vs_hash ref, h;
	size_t where[] = { 0, 1, 4095, 4096, 32768, BLK - 1 };

	(void)state;
	vs_hash_block(block, BLK, 7, &ref);
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		for (int bit = 0; bit < 8; bit += 7) {
			block[where[i]] ^= (uint8_t)(1u << bit);
			vs_hash_block(block, BLK, 7, &h);
			block[where[i]] ^= (uint8_t)(1u << bit);
			if (vs_hash_eq(&h, &ref))
				fail_msg("flip of bit %d at byte %zu not seen",
				    bit, where[i]);
		}
	vs_hash_block(block, BLK, 7, &h);
	assert_true(vs_hash_eq(&h, &ref));
	/* Length is part of the hash: a block and its prefix differ. */
	vs_hash_block(block, BLK - 1, 7, &h);
	assert_false(vs_hash_eq(&h, &ref));
}

static void
test_never_reserved(void **state)
{
	static uint8_t zero[BLK];
	uint8_t ones[4096];
	struct vs_hash h;

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	for (uint64_t seed = 0; seed < 64; seed++) {
		size_t lens[] = { 0, 1, 16, 4096, BLK };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			vs_hash_block(zero, lens[i], seed, &h);
			assert_false(vs_hash_eq(&h, &vs_hash_hole));
			assert_false(vs_hash_eq(&h, &vs_hash_unknown));
			vs_hash_block(block, lens[i], seed, &h);
			assert_false(vs_hash_eq(&h, &vs_hash_hole));
			assert_false(vs_hash_eq(&h, &vs_hash_unknown));
		}
		vs_hash_block(ones, sizeof(ones), seed, &h);
		assert_false(vs_hash_eq(&h, &vs_hash_hole));
		assert_false(vs_hash_eq(&h, &vs_hash_unknown));
	}
}

static void
test_canonical_big_endian(void **state)
{
	uint64_t seeds[] = { 0, 1, 0x0123456789abcdefull, UINT64_MAX };

	(void)state;
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		XXH128_hash_t raw = XXH3_128bits_withSeed(block, BLK, seeds[s]);
		XXH128_canonical_t c;
		struct vs_hash h;

		XXH128_canonicalFromHash(&c, raw);
		vs_hash_block(block, BLK, seeds[s], &h);
		assert_memory_equal(h.b, c.digest, VS_HASH_LEN);
		/* Canonical form: high64 first, most significant byte first. */
		for (int i = 0; i < 8; i++) {
			assert_int_equal(h.b[i],
			    (uint8_t)(raw.high64 >> (56 - 8 * i)));
			assert_int_equal(h.b[8 + i],
			    (uint8_t)(raw.low64 >> (56 - 8 * i)));
		}
	}
}

static void
test_hash64(void **state)
{
	(void)state;
	assert_true(vs_hash64(block, 104) == XXH3_64bits(block, 104));
	assert_true(vs_hash64(block, 0) == XXH3_64bits(block, 0));
	assert_true(vs_hash64(block, 104) != vs_hash64(block, 103));
}

static void
test_random64(void **state)
{
	uint64_t a = 0, b = 0;

	(void)state;
	assert_int_equal(vs_random64(&a), 0);
	assert_int_equal(vs_random64(&b), 0);
	/* Two equal draws: probability 2^-64. */
	assert_true(a != b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserved_values),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_seed_matters),
		cmocka_unit_test(test_one_bit_flip),
		cmocka_unit_test(test_never_reserved),
		cmocka_unit_test(test_canonical_big_endian),
		cmocka_unit_test(test_hash64),
		cmocka_unit_test(test_random64),
	};

	return cmocka_run_group_tests_name("hash", tests, setup, NULL);
}
