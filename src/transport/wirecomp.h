/*
 * wirecomp.h - compression of block payloads on the wire (zlib, zstd).
 */
#ifndef VS_WIRECOMP_H
#define VS_WIRECOMP_H

#include <stddef.h>
#include <stdint.h>

/* Worst-case compressed size of @len bytes, for any codec. */
size_t vs_wirecomp_bound(size_t len);
/* Compress @len bytes of @in with @codec at @level (0: default) into @out
 * (@cap bytes).  Returns the compressed size, or 0 if it did not shrink
 * (send the block as it is). */
size_t vs_wirecomp(uint32_t codec, int level, const void *in, size_t len,
    void *out, size_t cap);
/* Decompress into exactly @outlen bytes; -1 if the data is not that. */
int vs_wiredecomp(uint32_t codec, const void *in, size_t inlen, void *out,
    size_t outlen);

#endif
