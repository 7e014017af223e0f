/*
 * archive_zstd.h - the zstd stream of a .tar.zst: libzstd compresses the
 * archive's bytes, with a checksum, and hands the result to a sink.
 */
#ifndef VS_ARCHIVE_ZSTD_H
#define VS_ARCHIVE_ZSTD_H

#include <stddef.h>

/* Writes all @len bytes of @buf; 0, or -1 with errno set. */
typedef int (*vs_zstd_sink_fn)(void *arg, const void *buf, size_t len);

struct vs_zstd_out;

/* A stream at zstd @level compressed by @threads threads of zstd's own
 * (0: on the caller's thread), its output given to @sink(@arg, ...).
 * NULL if out of memory or zstd refuses the level (*@why says which). */
struct vs_zstd_out *vs_zstd_out_new(int level, int threads,
    vs_zstd_sink_fn sink, void *arg, const char **why);
/* Compress @len bytes of @buf.  0, or -1: *@why is zstd's error, or NULL
 * when the sink failed (errno set). */
int vs_zstd_out_write(struct vs_zstd_out *z, const void *buf, size_t len,
    const char **why);
/* End the frame (its checksum) and give everything left to the sink. */
int vs_zstd_out_end(struct vs_zstd_out *z, const char **why);
/* Free @z (NULL is allowed); what it still holds is dropped. */
void vs_zstd_out_free(struct vs_zstd_out *z);

#endif
