/*
 * hash.c - seeded XXH3-128 block hashes in canonical form.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "hash.h"

const struct vs_hash vs_hash_hole = { { 0 } };
const struct vs_hash vs_hash_unknown = { {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } };

void
vs_hash_block(const void *buf, size_t len, uint64_t seed, struct vs_hash *out)
{
	XXH128_hash_t h = XXH3_128bits_withSeed(buf, len, seed);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(out->b, c.digest, VS_HASH_LEN);
	/* Keep the two reserved values out of reach (probability 2^-127). */
	if (vs_hash_eq(out, &vs_hash_hole) || vs_hash_eq(out, &vs_hash_unknown))
		out->b[VS_HASH_LEN - 1] ^= 1;
}

bool
vs_hash_eq(const struct vs_hash *a, const struct vs_hash *b)
{
	return memcmp(a->b, b->b, VS_HASH_LEN) == 0;
}

uint64_t
vs_hash64(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

int
vs_random64(uint64_t *out)
{
	size_t done = 0;

	while (done < sizeof(*out)) {
		ssize_t r = getrandom((char *)out + done, sizeof(*out) - done, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

void
vs_hash_group(const struct vs_hash *entries, size_t n, uint64_t seed,
    struct vs_hash *out)
{
	vs_hash_block(entries, n * sizeof(*entries), seed, out);
}
