/*
 * hash.h - block hashes as stored in the target index.
 *
 * A block hash is XXH3-128 with the target's random seed, in xxHash's
 * canonical big-endian form.  Two values are reserved and never produced
 * by hashing: all zero bytes mean "hole", all 0xff bytes mean "unknown,
 * compare with the target".
 */
#ifndef VS_HASH_H
#define VS_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VS_HASH_LEN 16

struct vs_hash {
	uint8_t b[VS_HASH_LEN];	/* canonical XXH128, or a reserved value */
};

extern const struct vs_hash vs_hash_hole;
extern const struct vs_hash vs_hash_unknown;

/* Hash @len bytes with @seed; never returns a reserved value. */
void vs_hash_block(const void *buf, size_t len, uint64_t seed,
    struct vs_hash *out);
bool vs_hash_eq(const struct vs_hash *a, const struct vs_hash *b);
/* Digest of @n entries: both sides of a remote sync compare groups of
 * index entries by it. */
void vs_hash_group(const struct vs_hash *entries, size_t n, uint64_t seed,
    struct vs_hash *out);
/* 64-bit checksum of a byte range (index header). */
uint64_t vs_hash64(const void *buf, size_t len);
/* A random 64-bit value from getrandom(2). */
int vs_random64(uint64_t *out);

#endif
