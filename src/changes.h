/*
 * changes.h - change detection on btrfs: which blocks of the source did not
 * change since the base it was last synced from, told without reading them.
 *
 * Design notes
 * - A range is unchanged when the image places it at the same container
 *   offset in the base and in the new view (for qcow2: the same guest
 *   mapping) and both containers hold the same physical extents there
 *   (physmap.h).  Both images are the same format and view.
 * - The maps must agree too: a file view's dead bytes keep their extents
 *   while they turn from data into a hole.
 * - Only whole blocks are unchanged: the index has one entry per block.
 */
#ifndef VS_CHANGES_H
#define VS_CHANGES_H

#include <stdint.h>

#include "formats/format.h"

struct vs_changes;

/* Compare @img with @base (neither is owned).  Fails if the format cannot
 * tell where its bytes are stored. */
int vs_changes_open(struct vs_image *img, struct vs_image *base,
    struct vs_changes **out);
void vs_changes_close(struct vs_changes *c);

/* Set keep[i] for each block i of @bs bytes of [off, off + len) that is
 * unchanged; clear the others.  @map: the image's map of the range. */
int vs_changes_window(struct vs_changes *c, uint64_t off, uint64_t len,
    uint32_t bs, const struct vs_extent_vec *map, uint8_t *keep);

#endif
