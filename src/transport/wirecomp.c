/*
 * wirecomp.c - zlib and zstd, one block per call.
 */
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

size_t
vs_wirecomp(uint32_t codec, int level, const void *in, size_t len,
    void *out, size_t cap)
{
	size_t n = 0;

	if (codec == VS_WIRE_ZSTD) {
		n = ZSTD_compress(out, cap, in, len, level ? level : 3);
		if (ZSTD_isError(n))
			n = 0;
	} else if (codec == VS_WIRE_ZLIB) {
		uLongf zl = (uLongf)cap;

		if (compress2(out, &zl, in, (uLong)len, level ? level :
		    Z_DEFAULT_COMPRESSION) == Z_OK)
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
