/*
 * decompress.c - raw deflate and zstd, cluster at a time.
 *
 * Input windows are upper bounds (qcow2 packs compressed clusters back to
 * back), so trailing input is normal; the output must be exactly full.
 */
#include <stdint.h>
#include <string.h>

#include "decompress.h"

static int
inflate_cluster(struct vs_decomp *d, const void *in, size_t inlen,
    void *out, size_t outlen)
{
	int r;

	if (!d->z_ready) {
		memset(&d->z, 0, sizeof(d->z));
		/* Negative window bits: raw deflate; 15 decodes any window. */
		if (inflateInit2(&d->z, -15) != Z_OK)
			return -1;
		d->z_ready = true;
	} else if (inflateReset(&d->z) != Z_OK) {
		return -1;
	}
	d->z.next_in = (Bytef *)(uintptr_t)in;
	d->z.avail_in = (uInt)inlen;
	d->z.next_out = out;
	d->z.avail_out = (uInt)outlen;
	r = inflate(&d->z, Z_FINISH);
	if (r != Z_STREAM_END && r != Z_BUF_ERROR && r != Z_OK)
		return -1;
	return d->z.avail_out == 0 ? 0 : -1;
}

static int
zstd_cluster(struct vs_decomp *d, const void *in, size_t inlen, void *out,
    size_t outlen)
{
	ZSTD_inBuffer ib = { in, inlen, 0 };
	ZSTD_outBuffer ob = { out, outlen, 0 };

	if (!d->zd && !(d->zd = ZSTD_createDCtx()))
		return -1;
	ZSTD_DCtx_reset(d->zd, ZSTD_reset_session_only);
	/* Several frames may make up one cluster; stop when full. */
	while (ob.pos < ob.size) {
		size_t before_in = ib.pos, before_out = ob.pos;
		size_t r = ZSTD_decompressStream(d->zd, &ob, &ib);

		if (ZSTD_isError(r))
			return -1;
		if (ib.pos == before_in && ob.pos == before_out)
			return -1;	/* no progress: input ran out */
	}
	return 0;
}

int
vs_decompress(struct vs_decomp *d, enum vs_codec codec, const void *in,
    size_t inlen, void *out, size_t outlen)
{
	if (codec == VS_CODEC_ZSTD)
		return zstd_cluster(d, in, inlen, out, outlen);
	return inflate_cluster(d, in, inlen, out, outlen);
}

void
vs_decomp_free(struct vs_decomp *d)
{
	if (d->z_ready)
		inflateEnd(&d->z);
	d->z_ready = false;
	ZSTD_freeDCtx(d->zd);
	d->zd = NULL;
}
