/*
 * btrfs.c - filesystem type, subvolume of a file, reflink clones.
 */
#include <errno.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

#include <linux/btrfs.h>

#include "btrfs.h"

bool
vs_on_btrfs(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC;
}

bool
vs_may_reflink(int fd)
{
	static const unsigned long types[] = { BTRFS_SUPER_MAGIC,
	    XFS_SUPER_MAGIC, OCFS2_SUPER_MAGIC, 0xca451a4eul /* bcachefs */ };
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if ((unsigned long)sf.f_type == types[i])
			return true;
	return false;
}

int
vs_btrfs_subvol(int fd, struct vs_subvol *out)
{
	struct btrfs_ioctl_get_subvol_info_args info;

	/* The ioctl itself, not libbtrfsutil: that one wants the subvolume's
	 * root directory, the kernel takes any file of it, unprivileged. */
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &info) < 0)
		return -1;
	memcpy(out->uuid, info.uuid, sizeof(out->uuid));
	out->id = info.treeid;
	out->read_only = info.flags & 1;	/* BTRFS_ROOT_SUBVOL_RDONLY */
	return 0;
}

int
vs_btrfs_clone(int src, int dst)
{
	int sflags = 0, dflags = 0;

	if (ioctl(src, FS_IOC_GETFLAGS, &sflags) < 0)
		return -1;
	if (ioctl(dst, FS_IOC_GETFLAGS, &dflags) < 0)
		return -1;
	if ((sflags ^ dflags) & FS_NOCOW_FL) {
		dflags = (dflags & ~FS_NOCOW_FL) | (sflags & FS_NOCOW_FL);
		if (ioctl(dst, FS_IOC_SETFLAGS, &dflags) < 0)
			return -1;
	}
	return ioctl(dst, FICLONE, src);
}
