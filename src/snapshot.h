/*
 * snapshot.h - read-only snapshots of the target's subvolume after a
 * successful sync, and retention of the ones vmsync made.
 *
 * Design notes
 * - A snapshot is made writable under a temporary name, marked as vmsync's
 *   (an xattr naming the subvolume it was taken of), made read-only and only
 *   then renamed to its final name (the UTC time): a crash leaves no
 *   half-made snapshot under a final name, and the next run removes it.
 * - Retention (--keep N) considers only read-only subvolumes of the
 *   snapshot directory that carry the mark for this subvolume and this
 *   image (a second xattr: the target's inode number and generation, which
 *   every snapshot's copy of it keeps), oldest first by creation time:
 *   snapshots made by anyone else, or taken for another image of the same
 *   subvolume, are never touched.
 * - The snapshot directory is never a symbolic link and belongs to the
 *   running user, writable by no one else: no one else chooses where
 *   snapshots land or what retention looks at.
 * - Confined (--server --root DIR), the subvolume must be DIR or beneath
 *   it, and the snapshot directory too.
 */
#ifndef VS_SNAPSHOT_H
#define VS_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_snapshot_opts {
	bool take;		/* --snapshot */
	const char *dir;	/* --snapshot-dir; relative: in the subvolume */
	uint32_t keep;		/* --keep; 0: keep all */
};

/* Check before the sync that @target (a file path) is on btrfs, in a
 * subvolume vmsync can snapshot.  Reports and returns -1 if not. */
int vs_snapshot_check(const char *target);
/* A run's target, for its snapshot. */
struct vs_snapshot_item {
	const char *target;	/* its path */
	const char *index;	/* its index; NULL: beside it */
	bool synced;		/* this run synced it */
};

/* After a run: snapshot once each subvolume holding one of the @n images
 * of @v that synced, then apply retention.  The number of snapshots
 * taken; reports and returns -1 if any was not taken. */
int vs_snapshot_run(const struct vs_snapshot_item *v, size_t n,
    const struct vs_snapshot_opts *o);

/* A writer's shared hold on the subvolume holding the directory @dir_fd
 * (@target's), waiting while a snapshot is taken.  *@hold is -1 where no
 * snapshot could be taken (not btrfs, or above the --root directory). */
int vs_subvol_hold(int dir_fd, const char *target, int *hold);
void vs_subvol_release(int hold);

#endif
