/*
 * tar.h - a regular-file entry of a tar archive read as a raw image.
 */
#ifndef VS_TAR_H
#define VS_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* An entry name that marks an incremental archive (its first entry). */
#define VS_TAR_DELTA_SUFFIX ".vmsync-delta"
/* Entries an archive may hold: each becomes a target. */
#define VS_TAR_MAX_ENTRIES 1024
/* The largest entry accepted, as the largest qcow2 virtual size. */
#define VS_TAR_MAX_SIZE (1ull << 62)
/* Runs an entry's sparse map may hold: vmsync writes at most 2^18, GNU
 * tar one per data extent. */
#define VS_TAR_MAX_RUNS (1u << 20)

/* May an entry be named @name?  An import makes DIR/NAME of it, so it
 * must be one plain file name (not empty, no "/", not "." or ".."), and
 * none of vmsync's own beside a target: an index (.NAME.vmsync-index), a
 * delta's text (NAME.vmsync-delta), the .vmsync* state, lock and snapshot
 * names.  Other names starting with a dot are images like any (a sync of
 * .vm.img makes DIR/.vm.img).  An export refuses what this refuses. */
bool vs_tar_name_ok(const char *name);

/* Is @io (not taken) an archive an import can read, by what its first
 * bytes say: its container and format recognised?  0, or -1 reported as
 * vs_tar_scan() reports it. */
int vs_tar_probe(struct vs_io *io);

/* One entry, as vs_tar_scan() found it. */
struct vs_tar_entry {
	char *name;		/* its name: one plain file name */
	uint64_t size;		/* its size, bytes */
	int64_t header;		/* offset of its header in the archive */
};

/* Read every header of the archive in @io (not taken), refusing with one
 * line (naming the archive, the entry and its header's offset) an entry
 * that is not a regular file, whose name is not one plain file name, whose
 * size or sparse map is impossible, or an archive that is damaged.  The
 * entries into *@out (*@n of them; vs_tar_entries_free()).  If the first
 * entry's name ends in VS_TAR_DELTA_SUFFIX, *@delta is set and nothing
 * more is read. */
int vs_tar_scan(struct vs_io *io, struct vs_tar_entry **out, size_t *n,
    bool *delta);
void vs_tar_entries_free(struct vs_tar_entry *v, size_t n);

/* Open entry number @index (counting from 0, as vs_tar_scan() listed
 * them) of the archive in @io as an image named @name; takes @io, also
 * on failure.  Its permissions and mtime into @mode, @mtime_sec and
 * @mtime_nsec. */
int vs_tar_open(struct vs_io *io, size_t index, const char *name,
    struct vs_image **out, uint32_t *mode, int64_t *mtime_sec,
    int64_t *mtime_nsec);

/* A libarchive reader of the archive @io (taken, also on failure) into
 * *@a, read as an import reads it: in-process decoders only, a gzip
 * container inflated with its CRC and length checked.
 * vs_tar_reader_end() after its last header also checks what follows the
 * archive's end (a gzip trailer).  Failures are reported (one line naming
 * the archive). */
struct archive;
struct vs_tar_reader;
int vs_tar_reader_open(struct vs_io *io, struct vs_tar_reader **out,
    struct archive **a);
int vs_tar_reader_end(struct vs_tar_reader *t);
void vs_tar_reader_close(struct vs_tar_reader *t);

extern const struct vs_format_ops vs_format_tar;

#endif
