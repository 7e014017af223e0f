/*
 * engine.h - one sync of a source image into a target.
 */
#ifndef VS_ENGINE_H
#define VS_ENGINE_H

#include <stdbool.h>

#include "formats/format.h"
#include "transport/proto.h"
#include "transport/transport.h"

/* Source bytes read and hashed per step: the largest block the protocol
 * carries, so a multiple of every block size. */
#define VS_CHUNK VS_PROTO_MAX_CHUNK
/* Virtual bytes handled per window (map, entries): bounds memory, not the
 * image size.  A window holds at most VS_WINDOW_BYTES / 4 KiB extents. */
#define VS_WINDOW_BYTES (256u << 20)

struct vs_progress;

/* What change detection needs (view.h): the base, and which views the
 * target and the source are. */
struct vs_sync_view {
	struct vs_image *base;	/* the base, same format and view, or NULL */
	struct vs_hash base_id;	/* the base's view id */
	struct vs_hash id;	/* the id of the view synced now; zero: none */
	uint64_t bwlimit;	/* local --bwlimit: bytes per second read
				 * and written, 0: none */
};

/* Sync @src into @t; counters go to t->stats.  @progress and @view may be
 * NULL. */
int vs_sync(struct vs_image *src, struct vs_target *t,
    struct vs_progress *progress, const struct vs_sync_view *view);

#endif
