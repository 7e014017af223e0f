/*
 * btrfs.h - the few btrfs facts vmsync asks of a file: is it on btrfs, in
 * which subvolume (read-only or not), and reflink clones.
 */
#ifndef VS_BTRFS_H
#define VS_BTRFS_H

#include <stdbool.h>
#include <stdint.h>

struct vs_subvol {
	uint8_t uuid[16];	/* the subvolume's UUID */
	uint64_t id;		/* its id in the filesystem */
	bool read_only;		/* a read-only subvolume (snapshot) */
};

/* Is the file behind @fd on btrfs? */
bool vs_on_btrfs(int fd);
/* Is it on a filesystem that may clone files (FICLONE): btrfs, XFS,
 * bcachefs, OCFS2?  Whether it can is known by trying. */
bool vs_may_reflink(int fd);
/* The subvolume holding the file behind @fd (any file of it).  -1 with
 * errno set if it cannot be told. */
int vs_btrfs_subvol(int fd, struct vs_subvol *out);
/* Make the new, empty file @dst share all of @src's data (FICLONE), with
 * @src's nodatacow attribute, which btrfs requires to match.  -1 with
 * errno set. */
int vs_btrfs_clone(int src, int dst);

#endif
