/*
 * import.h - archives as sources: each regular-file entry of an archive
 * named as a SRC is one source of the run.
 */
#ifndef VS_IMPORT_H
#define VS_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

struct vs_cli;
struct vs_image;
struct vs_io;

/* Replace each SRC of @cli that names an archive (by its ending, without
 * --format; "-": one on standard input) by one source per entry, named "ARCHIVE/ENTRY", after reading
 * every header: a bad entry or a damaged archive is refused before any
 * target is touched.  An incremental archive is applied whole here (*@done
 * set).  Returns the exit code (VS_EXIT_OK: go on and sync the sources). */
int vs_import_expand(struct vs_cli *cli, bool *done);
/* Is @src (the very string vs_import_expand() put in the paths) an
 * archive entry? */
bool vs_import_is_entry(const char *src);
/* The entry's name: its target's name (malloc'd). */
char *vs_import_target_name(const char *src);
/* Open the archive @path for reading, "-" as vs_import_expand() kept
 * standard input's. */
int vs_import_open_io(const char *path, struct vs_io **io);
/* Open the entry @src as an image; its permissions and mtime into @mode,
 * @sec and @nsec. */
int vs_import_open(const char *src, struct vs_image **out, uint32_t *mode,
    int64_t *sec, int64_t *nsec);

#endif
