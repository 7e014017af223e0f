/*
 * source.h - the source side of a sync: take the point-in-time view, open
 * the image and its base, choose the view that is synced, name the target.
 */
#ifndef VS_SOURCE_H
#define VS_SOURCE_H

#include <stdbool.h>

#include "engine.h"
#include "formats/format.h"
#include "transport/transport.h"
#include "view.h"

struct vs_source_opts {
	const char *format;		/* -f, NULL for auto */
	const char *output;		/* -O, NULL for the image's own */
	struct vs_view_opts view;	/* point-in-time view, base */
	const char *const *backing_dirs; /* --backing-dir, where backing
					 * and data files may also be */
	size_t nbacking_dirs;		/* entries in backing_dirs */
};

struct vs_source {
	struct vs_view *view;	/* the point-in-time view and its base */
	struct vs_image *img;	/* what is synced */
	struct vs_image *base;	/* the base in the same view, or NULL */
	struct vs_refs *refs;	/* where @img's backing files may be */
	struct vs_refs *base_refs; /* the same for @base, or NULL */
	bool to_raw;		/* the guest disk of a non-raw image */
	struct vs_format_choice choice;	/* what it is read as, and why */
};

/* Open @src as @o says and choose the view: the guest disk if -O raw,
 * the file itself otherwise.  Fills the source fields of @topts. */
int vs_source_open(const char *src, const struct vs_source_opts *o,
    struct vs_target_opts *topts, struct vs_source *s);
/* Once the target is open: decide again with the format its index
 * records (@recorded, "" for none), reopening the image if that confirms
 * another format, and say once if a probed format was not confirmed.
 * Then open the change-detection base kept for @target (its path, or
 * host:path), or --since's; none if @target is NULL (no target: an
 * archive). */
int vs_source_confirm(struct vs_source *s, const char *src,
    const struct vs_source_opts *o, struct vs_target_opts *topts,
    const char *recorded, const char *target);
/* What the engine needs for change detection. */
struct vs_sync_view vs_source_sync_view(const struct vs_source *s);
/* Close; @ok: the sync succeeded, keep the view as the next base. */
void vs_source_close(struct vs_source *s, bool ok);
/* The target's file name for @src (malloc'd): its basename, with the
 * extension replaced by ".raw" for the guest view of a non-raw image. */
char *vs_target_name(const char *src, bool to_raw);
/* One line for vs_target_name() failing for @src (errno as it left it). */
void vs_target_name_failed(const char *src);

#endif
