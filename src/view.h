/*
 * view.h - the point-in-time view of a source, and the base it is compared
 * with for change detection.
 *
 * Design notes
 * - A source on a writable btrfs subvolume is cloned (FICLONE) into a state
 *   directory and the clone is read, so a running guest's later writes
 *   cannot tear the copy.  After a successful sync the clone is kept as the
 *   base of the next run.  A source in a read-only subvolume (a snapshot)
 *   is already point-in-time and is read directly.
 * - Bases are kept per target ("<image>.<hash of the target>.base"), so an
 *   image synced to several targets (local and offsite, or both views)
 *   keeps change detection for each.  The lock file lives only while a
 *   run holds it, and a run removes the bases of images that are gone.
 * - Every point-in-time view has an id, recorded in the target's index at
 *   commit: a clone gets a random one, kept as an xattr; a file in a
 *   read-only snapshot is named by the snapshot's UUID and its inode.  The
 *   next run uses its base only if the base's id is the one the target's
 *   index holds: any other history (another target, a restored target, a
 *   failed run) reads everything.
 */
#ifndef VS_VIEW_H
#define VS_VIEW_H

#include <stdbool.h>

#include "hash.h"

struct vs_view_opts {
	bool never;		/* --source-snapshot=never: read live */
	const char *state_dir;	/* --state-dir, NULL: .vmsync beside it */
	const char *since;	/* --since: the base, NULL: the state's */
	bool dry_run;		/* keep nothing for the next run */
};

struct vs_view {
	const char *src;	/* the source as given */
	char *real;		/* its real path (symlinks resolved) */
	char *read_path;	/* what to read: the clone or the source */
	int dir_fd;		/* the state directory, or -1 */
	char *state_dir;	/* its path, once the source is cloned */
	bool own_state;		/* it is .vmsync beside the image */
	char key[24];		/* ".<16 hex>.base": the target's base */
	char *name;		/* the image's file name in it */
	int lock_fd;		/* the image's lock in it, or -1 */
	int backup_fd;		/* a vmsync backup read as it is: held
				 * with a shared lock against its writers,
				 * or -1 */
	bool cloned;		/* read_path is the new clone */
	bool keeps_base;	/* the clone becomes the next base (btrfs,
				 * where extents tell what changed) */
	bool dry;		/* a dry run: the clone is not kept */
	struct vs_hash id;	/* this view's id, zero: none (read live) */
	char *base_path;	/* the base to compare with, or NULL */
	bool base_in_state;	/* it is the state directory's base */
	struct vs_hash base_id;	/* its id, zero: none */
};

/* The zero id: a view that has none. */
extern const struct vs_hash vs_view_none;

/* Choose and make the view of @src.  Fails only when the user asked for
 * something that cannot be done (--state-dir, --since). */
int vs_view_open(const char *src, const struct vs_view_opts *o,
    struct vs_view **out);
/* The view of a source that is no file (an NBD URI): read as it is, no
 * base. */
int vs_view_open_plain(const char *src, struct vs_view **out);
/* Once the target is known (@target names it: a path, or host:path): the
 * base kept for it, if any, in v->base_path and v->base_id. */
int vs_view_target(struct vs_view *v, const char *target);
/* After the sync: on success keep the clone as the next base, otherwise
 * remove it.  Frees @v. */
void vs_view_finish(struct vs_view *v, bool ok);

#endif
