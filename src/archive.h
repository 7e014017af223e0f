/*
 * archive.h - export images into a sparse pax archive (libarchive).
 */
#ifndef VS_ARCHIVE_H
#define VS_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_cli;

/* The archive format @name takes as --archive=FORMAT ("tar", "tar.gz",
 * "tgz", "tar.zst", "tzst", "tar.xz", "txz"), as a static string; NULL if
 * unknown. */
const char *vs_archive_format(const char *name);
/* The archive format a DEST named @path asks for by its ending (".tar",
 * ".tar.gz", ".tgz", ".tar.zst", ".tar.xz"), or NULL. */
const char *vs_archive_format_by_name(const char *path);
/* Write every SRC of @cli, as the view a sync would take, into one pax
 * archive of format cli->archive at DEST (its last path; "-": stdout).
 * A file is written beside DEST and renamed over it once complete.
 * Returns the exit code. */
int vs_archive_export(const struct vs_cli *cli, bool progress);

/* Refuse with one line a DEST (cli's last path) that no archive can be
 * written to: a remote one, a terminal, or one of the run's sources (its
 * SRCs and --since's BASE), also by another name: the archive is renamed
 * over DEST.  Nothing is read or written. */
int vs_archive_check_dest(const struct vs_cli *cli);

/* Refuse with one line (about @src) an entry name @name that an import
 * would refuse (vs_tar_name_ok()): an archive is never written that its
 * import cannot read. */
int vs_archive_entry_name_check(const char *src, const char *name);

/* The writer itself, for archives of other contents (delta.h). */
struct vs_archive_out;
struct vs_image;
struct vs_extent_vec;
/* Start the archive of format cli->archive at DEST (cli's last path):
 * refuse what vs_archive_check_dest() refuses, create the file written
 * beside it.  *@out is set even on failure (give it to
 * vs_archive_out_close). */
int vs_archive_out_open(const struct vs_cli *cli, bool progress,
    struct vs_archive_out **out);
/* A regular file entry @name holding the @len bytes of @buf. */
int vs_archive_out_text(struct vs_archive_out *o, const char *name,
    const void *buf, size_t len, uint32_t mode, int64_t mtime_sec);
/* A pax sparse entry @name of img->size bytes whose data runs are @runs
 * (sorted, apart, within the image), their bytes read from @img; the rest
 * are holes.  @src names the image in messages. */
int vs_archive_out_sparse(struct vs_archive_out *o, const char *src,
    const char *name, struct vs_image *img, const struct vs_extent_vec *runs,
    uint32_t mode, int64_t mtime_sec, long mtime_nsec);
/* Finish the archive (@ok) or abandon it, renaming a complete file over
 * DEST; frees @o.  Returns the exit code. */
int vs_archive_out_close(struct vs_archive_out *o, bool ok);

#endif
