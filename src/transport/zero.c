/*
 * zero.c - make a range of a target read as zeros (see zero.h for the
 * methods and when one is switched off).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "zero.h"
#include "../util.h"
#include "../vmsync.h"

#define ZERO_CHUNK (1u << 20)	/* bytes read back or written at once */

/* What one method did with a range. */
enum zero_outcome {
	ZERO_FAILED = -1,	/* an error, reported */
	ZERO_DONE = 0,		/* the range reads as zeros */
	ZERO_NEXT = 1,		/* not supported here, now switched off */
};

static int
real_ioctl_range(int fd, unsigned long req, uint64_t range[2])
{
	return ioctl(fd, req, range);
}

static const struct vs_zero_sys real_sys = {
	.fallocate = fallocate,
	.ioctl_range = real_ioctl_range,
};

void
vs_zeroer_init(struct vs_zeroer *z, int fd, bool is_block, const char *name)
{
	*z = (struct vs_zeroer){
		.fd = fd,
		.name = name,
		.can_punch = !is_block,
		.can_zero_range = !is_block,
		.can_discard = is_block,
		.can_zeroout = is_block,
		.sys = &real_sys,
	};
}

void
vs_zeroer_release(struct vs_zeroer *z)
{
	free(z->check);
	z->check = NULL;
}

/* Does @err say the method is not supported here?  A device or driver
 * without the ioctl answers ENOTTY or EINVAL. */
static bool
not_supported(int err, bool is_ioctl)
{
	if (err == ENOTSUP || err == EOPNOTSUPP)
		return true;
	return is_ioctl && (err == ENOTTY || err == EINVAL);
}

/* Never try *@can again; say so once only writing zeros is left. */
static int
switch_off(struct vs_zeroer *z, bool *can)
{
	*can = false;
	if (!z->can_punch && !z->can_zero_range && !z->can_discard &&
	    !z->can_zeroout)
		vs_info(1, "%s: cannot punch holes; writing zeros", z->name);
	return ZERO_NEXT;
}

static int
zero_failed(struct vs_zeroer *z, uint64_t off, uint64_t len)
{
	vs_errno(VS_EXIT_TARGET, z->name, "zero %llu bytes at offset %llu",
	    (unsigned long long)len, (unsigned long long)off);
	return ZERO_FAILED;
}

/* The outcome of a method that returned @r, with *@can its flag. */
static int
outcome(struct vs_zeroer *z, int r, bool is_ioctl, bool *can, uint64_t off,
    uint64_t len)
{
	if (r == 0)
		return ZERO_DONE;
	if (!not_supported(errno, is_ioctl))
		return zero_failed(z, off, len);
	return switch_off(z, can);
}

/* How far a punch of [off, off + len) goes.  A filesystem frees only the
 * blocks that lie wholly inside the range and zeros the rest, so a file
 * whose size is not a whole number of blocks would keep its last block
 * allocated.  Past the end of the file there is nothing to keep: a range
 * that reaches it is taken on to the end of the block (st_blksize, the
 * filesystem's block on ext4, btrfs, xfs and tmpfs), and KEEP_SIZE keeps
 * the size. */
static uint64_t
punch_len(struct vs_zeroer *z, uint64_t off, uint64_t len)
{
	struct stat st;
	uint64_t end = off + len, bs, up;

	if (fstat(z->fd, &st) < 0 || st.st_blksize <= 0 ||
	    end < (uint64_t)st.st_size)
		return len;
	bs = (uint64_t)st.st_blksize;
	up = end % bs ? end - end % bs + bs : end;
	return up <= INT64_MAX ? up - off : len;
}

/* fallocate @mode | KEEP_SIZE over [off, off + len), a punch taken on to
 * the end of the file's last block. */
static int
try_fallocate(struct vs_zeroer *z, int mode, bool *can, uint64_t off,
    uint64_t len)
{
	uint64_t n = mode & FALLOC_FL_PUNCH_HOLE ? punch_len(z, off, len) : len;
	int r = z->sys->fallocate(z->fd, mode | FALLOC_FL_KEEP_SIZE,
	    (off_t)off, (off_t)n);

	return outcome(z, r, false, can, off, len);
}

static int
try_ioctl(struct vs_zeroer *z, unsigned long req, bool *can, uint64_t off,
    uint64_t len)
{
	uint64_t range[2] = { off, len };
	int r = z->sys->ioctl_range(z->fd, req, range);

	return outcome(z, r, true, can, off, len);
}

/* Read back a discarded range; *zero false if any byte is not zero. */
static int
reads_as_zero(struct vs_zeroer *z, uint64_t off, uint64_t len, bool *zero)
{
	*zero = true;
	if (!z->check && !(z->check = malloc(ZERO_CHUNK))) {
		vs_errno(VS_EXIT_INTERNAL, z->name, "buffer");
		return -1;
	}
	while (len && *zero) {
		size_t n = (size_t)vs_min(len, ZERO_CHUNK);

		if (vs_pread_full(z->fd, z->check, n, off) != (ssize_t)n) {
			vs_errno(VS_EXIT_TARGET, z->name,
			    "read back at offset %llu", (unsigned long long)off);
			return -1;
		}
		*zero = vs_is_zero(z->check, n);
		off += n;
		len -= n;
	}
	return 0;
}

/* BLKDISCARD, kept only while what it discarded reads back as zeros:
 * a device may return the old data, or anything, after a discard. */
static int
try_discard(struct vs_zeroer *z, uint64_t off, uint64_t len)
{
	int r = try_ioctl(z, BLKDISCARD, &z->can_discard, off, len);
	bool zero;

	if (r != ZERO_DONE)
		return r;
	if (reads_as_zero(z, off, len, &zero) < 0)
		return ZERO_FAILED;
	if (zero)
		return ZERO_DONE;
	vs_info(1, "%s: discard does not read back as zeros; using BLKZEROOUT",
	    z->name);
	return switch_off(z, &z->can_discard);
}

/* The last resort, which every target supports. */
static int
write_zeros(struct vs_zeroer *z, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[ZERO_CHUNK];

	for (uint64_t done = 0; done < len; ) {
		size_t n = (size_t)vs_min(len - done, sizeof(zeros));

		if (vs_pwrite_full(z->fd, zeros, n, off + done) < 0)
			return zero_failed(z, off, len);
		done += n;
	}
	return ZERO_DONE;
}

int
vs_zero(struct vs_zeroer *z, uint64_t off, uint64_t len)
{
	int r = ZERO_NEXT;

	if (len == 0)
		return 0;
	if (z->can_punch)
		r = try_fallocate(z, FALLOC_FL_PUNCH_HOLE, &z->can_punch, off,
		    len);
	if (r == ZERO_NEXT && z->can_zero_range)
		r = try_fallocate(z, FALLOC_FL_ZERO_RANGE, &z->can_zero_range,
		    off, len);
	if (r == ZERO_NEXT && z->can_discard)
		r = try_discard(z, off, len);
	if (r == ZERO_NEXT && z->can_zeroout)
		r = try_ioctl(z, BLKZEROOUT, &z->can_zeroout, off, len);
	if (r == ZERO_NEXT)
		r = write_zeros(z, off, len);
	return r == ZERO_DONE ? 0 : -1;
}
