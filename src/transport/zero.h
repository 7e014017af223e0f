/*
 * zero.h - making a range of a target read as zeros, with the best method
 * the target still supports.
 *
 * Design notes
 * - Methods, best first: on a file fallocate PUNCH_HOLE | KEEP_SIZE, then
 *   ZERO_RANGE | KEEP_SIZE; on a block device BLKDISCARD (only while
 *   discarded blocks read back as zeros), then BLKZEROOUT; last, writing
 *   zeros, which every target can do.
 * - Each method has a flag saying whether it still works here.  Only an
 *   answer that means "not supported" clears it (ENOTSUP, EOPNOTSUPP, and
 *   for the ioctls also ENOTTY and EINVAL, which a device or driver that
 *   lacks them gives), and the next method is tried.  Any other error
 *   (EIO, ENOSPC, ...) is reported and fails the call: the method is
 *   kept, since it is the storage that failed, not the method.
 * - A punch that reaches the end of the file goes on to the end of the
 *   file's last block (st_blksize): filesystems free only whole blocks
 *   inside the range, so a size that is not a whole number of blocks
 *   would otherwise keep its last block allocated where the source has a
 *   hole, and verify would find data where the index records one.
 *   KEEP_SIZE keeps the size; the other methods never go past the range.
 */
#ifndef VS_ZERO_H
#define VS_ZERO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The system calls a zeroer makes: the real ones, or a test's. */
struct vs_zero_sys {
	int (*fallocate)(int fd, int mode, off_t off, off_t len);
	/* ioctl(fd, req, range) for BLKDISCARD and BLKZEROOUT. */
	int (*ioctl_range)(int fd, unsigned long req, uint64_t range[2]);
};

struct vs_zeroer {
	int fd;			/* the target */
	const char *name;	/* for messages */
	bool is_block;		/* a block device: ioctls, not fallocate */
	bool can_punch;		/* fallocate PUNCH_HOLE | KEEP_SIZE works */
	bool can_zero_range;	/* fallocate ZERO_RANGE | KEEP_SIZE works */
	bool can_discard;	/* BLKDISCARD works and reads back as zeros */
	bool can_zeroout;	/* BLKZEROOUT works */
	uint8_t *check;		/* discard read-back buffer, NULL until used */
	const struct vs_zero_sys *sys;	/* system calls (tests swap them) */
};

/* Set up @z for the target @fd (named @name, kept, not copied), with
 * every method its kind supports switched on. */
void vs_zeroer_init(struct vs_zeroer *z, int fd, bool is_block,
    const char *name);
/* Make [off, off + len) read as zeros, deallocated where possible; on
 * failure report it and return -1. */
int vs_zero(struct vs_zeroer *z, uint64_t off, uint64_t len);
/* Free what vs_zero() allocated (not the fd). */
void vs_zeroer_release(struct vs_zeroer *z);

#endif
