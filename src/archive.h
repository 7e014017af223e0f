/*
 * archive.h - export images into a sparse pax archive (libarchive).
 */
#ifndef VS_ARCHIVE_H
#define VS_ARCHIVE_H

#include <stdbool.h>

struct vs_cli;

/* The archive format @name takes as --archive=FORMAT ("tar", "tar.gz",
 * "tgz", "tar.zst", "tar.xz"), as a static string; NULL if unknown. */
const char *vs_archive_format(const char *name);
/* The archive format a DEST named @path asks for by its ending (".tar",
 * ".tar.gz", ".tgz", ".tar.zst", ".tar.xz"), or NULL. */
const char *vs_archive_format_by_name(const char *path);
/* Write every SRC of @cli, as the view a sync would take, into one pax
 * archive of format cli->archive at DEST (its last path; "-": stdout).
 * A file is written beside DEST and renamed over it once complete.
 * Returns the exit code. */
int vs_archive_export(const struct vs_cli *cli, bool progress);

#endif
