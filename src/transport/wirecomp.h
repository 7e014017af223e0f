/*
 * wirecomp.h - compression of block payloads on the wire (zlib, zstd).
 */
#ifndef VS_WIRECOMP_H
#define VS_WIRECOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Levels used when none is asked for (see --compress-level in vmsync.1). */
#define VS_WIRECOMP_ZSTD_LEVEL	1
#define VS_WIRECOMP_ZLIB_LEVEL	1

/* Worst-case compressed size of @len bytes, for any codec. */
size_t vs_wirecomp_bound(size_t len);
/* Whether @len bytes of @in are worth compressing, judged on a few spread
 * samples (8 KiB in all): their byte histogram is skewed, or zstd's
 * fastest level shrinks them by at least 1/16.  A block too small to
 * sample is.  Costs a small fraction of compressing the block. */
bool vs_wirecomp_worth(const void *in, size_t len);
/* Compress @len bytes of @in with @codec at @level (0: default) into @out
 * (@cap bytes).  Returns the compressed size, or 0 if the block is judged
 * incompressible (vs_wirecomp_worth) or did not shrink: send it as it is. */
size_t vs_wirecomp(uint32_t codec, int level, const void *in, size_t len,
    void *out, size_t cap);
/* Decompress into exactly @outlen bytes; -1 if the data is not that. */
int vs_wiredecomp(uint32_t codec, const void *in, size_t inlen, void *out,
    size_t outlen);

#endif
