/*
 * decompress.h - one compressed cluster to exactly one cluster of bytes.
 */
#ifndef VS_DECOMPRESS_H
#define VS_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>
#include <zstd.h>

enum vs_codec {
	VS_CODEC_DEFLATE,	/* raw RFC 1951 stream, no zlib wrapper */
	VS_CODEC_ZSTD,		/* zstd frames, no length prefix */
};

/* Decoder state kept between clusters (allocated on first use). */
struct vs_decomp {
	z_stream z;		/* inflate state */
	bool z_ready;		/* z is initialised */
	ZSTD_DCtx *zd;		/* zstd state, or NULL */
};

/* Decode @in (@inlen may run past the stream's end) into exactly @outlen
 * bytes of @out.  0 on success, -1 if the stream is invalid or short. */
int vs_decompress(struct vs_decomp *d, enum vs_codec codec, const void *in,
    size_t inlen, void *out, size_t outlen);
void vs_decomp_free(struct vs_decomp *d);

#endif
