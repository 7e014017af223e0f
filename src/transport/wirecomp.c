/*
 * wirecomp.c - zlib and zstd, one block per call.
 *
 * Compression must not slow a push down, but zlib spends as long on a
 * block of random, encrypted or already compressed data (some 55 MB/s) as
 * on one that compresses, and zstd 6 runs at 400 MB/s, slower than a fast
 * link.  So a block is first judged on samples (vs_wirecomp_worth), at
 * several GB/s, and one that would not shrink goes as it is.
 */
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "proto.h"
#include "wirecomp.h"

size_t
vs_wirecomp_bound(size_t len)
{
	size_t z = compressBound((uLong)len), s = ZSTD_compressBound(len);

	return z > s ? z : s;
}

/* The samples: PROBE_PIECES pieces of PROBE_PIECE bytes, first and last
 * included, evenly spread.  A block of less than twice that is simply
 * compressed. */
#define PROBE_PIECE	2048
#define PROBE_PIECES	4
#define PROBE_BYTES	(PROBE_PIECE * PROBE_PIECES)

/*
 * First the byte histogram of the samples: if two bytes drawn from them
 * are equal 1.25 times as often as in uniform random data (Renyi entropy
 * below 7.68 bits a byte), the block compresses, and that costs a few
 * microseconds.  Else zstd's fastest level compresses the samples, which
 * also finds repeats of a high-entropy pattern: they must shrink by 1/16.
 */
bool
vs_wirecomp_worth(const void *in, size_t len)
{
	uint8_t sample[PROBE_BYTES], out[ZSTD_COMPRESSBOUND(PROBE_BYTES)];
	const uint8_t *p = in;
	uint32_t count[256] = { 0 };
	uint64_t pairs = 0;
	size_t n;

	if (len < 2 * PROBE_BYTES)
		return true;
	for (size_t i = 0; i < PROBE_PIECES; i++)
		memcpy(sample + i * PROBE_PIECE, p + (len - PROBE_PIECE) * i /
		    (PROBE_PIECES - 1), PROBE_PIECE);
	for (size_t i = 0; i < PROBE_BYTES; i++)
		count[sample[i]]++;
	for (size_t i = 0; i < 256; i++)
		pairs += (uint64_t)count[i] * count[i];
	/* Uniform: pairs = BYTES^2 / 256 (plus BYTES, the noise). */
	if (pairs * 256 * 4 >= (uint64_t)PROBE_BYTES * PROBE_BYTES * 5)
		return true;
	n = ZSTD_compress(out, sizeof(out), sample, sizeof(sample), 1);
	return !ZSTD_isError(n) && n <= PROBE_BYTES - PROBE_BYTES / 16;
}

size_t
vs_wirecomp(uint32_t codec, int level, const void *in, size_t len,
    void *out, size_t cap)
{
	size_t n = 0;

	if (!vs_wirecomp_worth(in, len))
		return 0;
	if (codec == VS_WIRE_ZSTD) {
		n = ZSTD_compress(out, cap, in, len, level ? level :
		    VS_WIRECOMP_ZSTD_LEVEL);
		if (ZSTD_isError(n))
			n = 0;
	} else if (codec == VS_WIRE_ZLIB) {
		uLongf zl = (uLongf)cap;

		if (compress2(out, &zl, in, (uLong)len, level ? level :
		    VS_WIRECOMP_ZLIB_LEVEL) == Z_OK)
			n = zl;
	}
	return n && n < len ? n : 0;
}

int
vs_wiredecomp(uint32_t codec, const void *in, size_t inlen, void *out,
    size_t outlen)
{
	if (codec == VS_WIRE_ZSTD) {
		size_t n = ZSTD_decompress(out, outlen, in, inlen);

		return !ZSTD_isError(n) && n == outlen ? 0 : -1;
	}
	if (codec == VS_WIRE_ZLIB) {
		uLongf zl = (uLongf)outlen;

		return uncompress(out, &zl, in, (uLong)inlen) == Z_OK &&
		    zl == outlen ? 0 : -1;
	}
	return -1;
}
