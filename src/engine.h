/*
 * engine.h - one sync of a source image into a target.
 */
#ifndef VS_ENGINE_H
#define VS_ENGINE_H

#include <stdbool.h>

#include "formats/format.h"
#include "transport/transport.h"

/* Source bytes read and hashed per step (a multiple of every block size). */
#define VS_CHUNK (4u << 20)
/* Virtual bytes handled per window (map, entries): bounds memory, not the
 * image size.  A window holds at most VS_WINDOW_BYTES / 4 KiB extents. */
#define VS_WINDOW_BYTES (256u << 20)

struct vs_progress;

/* Sync @src into @t; counters go to t->stats.  @progress may be NULL. */
int vs_sync(struct vs_image *src, struct vs_target *t,
    struct vs_progress *progress);

#endif
