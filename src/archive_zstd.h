/*
 * archive_zstd.h - the zstd stream of a .tar.zst: libzstd compresses the
 * archive's bytes as a run of frames, each with its checksum, and hands
 * them to a sink.
 */
#ifndef VS_ARCHIVE_ZSTD_H
#define VS_ARCHIVE_ZSTD_H

#include <stddef.h>

/* Writes all @len bytes of @buf; 0, or -1 with errno set. */
typedef int (*vs_zstd_sink_fn)(void *arg, const void *buf, size_t len);

struct vs_zstd_out;

/* A stream at zstd @level compressed by @threads worker threads (-1: one
 * a CPU; 0: all on the caller's thread), its frames given in order to
 * @sink(@arg, ...), from a thread of its own when there are workers (one
 * call at a time).  NULL if out of memory or zstd refuses the level
 * (*@why says which). */
struct vs_zstd_out *vs_zstd_out_new(int level, int threads,
    vs_zstd_sink_fn sink, void *arg, const char **why);
/* The worker threads @z compresses with (0: the caller's thread). */
unsigned vs_zstd_out_threads(const struct vs_zstd_out *z);
/* Compress @len bytes of @buf.  0, or -1: *@why is zstd's error, or NULL
 * when the sink failed (errno set); after a failure nothing more reaches
 * the sink, and the next write or the end fails the same way. */
int vs_zstd_out_write(struct vs_zstd_out *z, const void *buf, size_t len,
    const char **why);
/* Compress what is left and wait until the sink has every frame. */
int vs_zstd_out_end(struct vs_zstd_out *z, const char **why);
/* Free @z (NULL is allowed); what it still holds is dropped. */
void vs_zstd_out_free(struct vs_zstd_out *z);

#endif
