/*
 * archive_zstd.c - the zstd stream of a .tar.zst (see archive_zstd.h).
 *
 * Design notes
 * - libarchive's own zstd filter writes frames without zstd's content
 *   checksum, and most of a disk image is stored by zstd as raw blocks:
 *   a flipped bit there went through `zstd -d`, bsdtar and an import
 *   unnoticed.  Here the frame carries its XXH64 checksum, which every
 *   zstd decoder checks.
 * - libarchive writes the pax stream uncompressed and unblocked into
 *   archive.c's callback, which feeds it here: the bytes of a data block
 *   go from the reader's buffer straight to zstd.
 * - The output is handed on a buffer of ZOUT_BYTES at a time, so the
 *   archive is written in large pieces.
 */
#include <errno.h>
#include <stdlib.h>
#include <zstd.h>

#include "archive_zstd.h"

#define ZOUT_BYTES (1u << 20)	/* compressed bytes per sink call */

struct vs_zstd_out {
	ZSTD_CCtx *cctx;
	vs_zstd_sink_fn sink;
	void *arg;
	ZSTD_outBuffer out;	/* compressed bytes not yet given */
};

struct vs_zstd_out *
vs_zstd_out_new(int level, int threads, vs_zstd_sink_fn sink, void *arg,
    const char **why)
{
	struct vs_zstd_out *z = calloc(1, sizeof(*z));
	size_t rc;

	*why = "out of memory";
	if (!z || !(z->cctx = ZSTD_createCCtx()) ||
	    !(z->out.dst = malloc(ZOUT_BYTES))) {
		vs_zstd_out_free(z);
		return NULL;
	}
	z->out.size = ZOUT_BYTES;
	z->sink = sink;
	z->arg = arg;
	rc = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(rc)) {
		*why = ZSTD_getErrorName(rc);
		vs_zstd_out_free(z);
		return NULL;
	}
	/* A libzstd built without threads refuses: compress inline. */
	if (threads > 0)
		ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_nbWorkers, threads);
	*why = NULL;
	return z;
}

/* Give the sink what the output buffer holds. */
static int
give(struct vs_zstd_out *z)
{
	if (z->out.pos && z->sink(z->arg, z->out.dst, z->out.pos) < 0)
		return -1;
	z->out.pos = 0;
	return 0;
}

/* Run zstd over @in with @op until it took all of it (and, for
 * ZSTD_e_end, flushed everything). */
static int
drive(struct vs_zstd_out *z, ZSTD_inBuffer *in, ZSTD_EndDirective op,
    const char **why)
{
	for (;;) {
		size_t left = ZSTD_compressStream2(z->cctx, &z->out, in, op);

		*why = NULL;
		if (ZSTD_isError(left)) {
			*why = ZSTD_getErrorName(left);
			errno = EIO;
			return -1;
		}
		if (z->out.pos == z->out.size && give(z) < 0)
			return -1;
		if (op == ZSTD_e_end ? left == 0 : in->pos == in->size)
			return 0;
	}
}

int
vs_zstd_out_write(struct vs_zstd_out *z, const void *buf, size_t len,
    const char **why)
{
	ZSTD_inBuffer in = { buf, len, 0 };

	return drive(z, &in, ZSTD_e_continue, why);
}

int
vs_zstd_out_end(struct vs_zstd_out *z, const char **why)
{
	ZSTD_inBuffer in = { NULL, 0, 0 };

	if (drive(z, &in, ZSTD_e_end, why) < 0)
		return -1;
	return give(z);
}

void
vs_zstd_out_free(struct vs_zstd_out *z)
{
	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx);
	free(z->out.dst);
	free(z);
}
