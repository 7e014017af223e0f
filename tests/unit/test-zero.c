/*
 * test-zero.c - the zeroing methods (src/transport/zero.c) on a regular
 * file in a temporary directory: a real punch leaves a hole; a method that
 * answers "not supported" is switched off, alone, and the next one zeroes
 * the range; any other error (EIO, ENOSPC, and EINVAL from fallocate) is
 * reported and switches nothing off.  The block device methods are driven
 * through stand-in ioctls on the same file: a discard that does not read
 * back as zeros is dropped for BLKZEROOUT.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/zero.h"
#include "util.h"
#include "vmsync.h"

#define K 1024ull
#define SIZE (256 * K)

/* What the stand-in system calls answer, and how often they were asked.
 * An errno of 0 lets the call through. */
static struct {
	int punch_errno;	/* fallocate PUNCH_HOLE */
	int range_errno;	/* fallocate ZERO_RANGE */
	int discard_errno;	/* BLKDISCARD */
	bool discard_keeps;	/* a BLKDISCARD that leaves the old data */
	int zeroout_errno;	/* BLKZEROOUT */
	int punches, ranges, discards, zeroouts;
} sys;

static int fd = -1;
static uint8_t data[SIZE];

static int
fake_fallocate(int f, int mode, off_t off, off_t len)
{
	bool punch = mode & FALLOC_FL_PUNCH_HOLE;
	int e = punch ? sys.punch_errno : sys.range_errno;

	if (punch)
		sys.punches++;
	else
		sys.ranges++;
	if (e) {
		errno = e;
		return -1;
	}
	return fallocate(f, mode, off, len);
}

/* Both ioctls zero the range with a punch, as a device would. */
static int
fake_ioctl_range(int f, unsigned long req, uint64_t range[2])
{
	bool discard = req == BLKDISCARD;
	int e = discard ? sys.discard_errno : sys.zeroout_errno;

	assert_true(req == BLKDISCARD || req == BLKZEROOUT);
	if (discard)
		sys.discards++;
	else
		sys.zeroouts++;
	if (e) {
		errno = e;
		return -1;
	}
	if (discard && sys.discard_keeps)
		return 0;
	return fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)range[0], (off_t)range[1]);
}

static const struct vs_zero_sys fake_sys = {
	.fallocate = fake_fallocate,
	.ioctl_range = fake_ioctl_range,
};

static int
setup(void **state)
{
	(void)state;
	vs_err_reset();
	memset(&sys, 0, sizeof(sys));
	if (unit_mktmp("zero") < 0)
		return -1;
	fd = open(tpath("target"), O_RDWR | O_CREAT | O_EXCL, 0600);
	fill(data, sizeof(data), 7);
	if (fd < 0 || vs_pwrite_full(fd, data, sizeof(data), 0) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	close(fd);
	vs_err_reset();
	return unit_rmtmp();
}

/* A zeroer for the file, with the stand-in calls unless @real. */
static struct vs_zeroer
zeroer(bool is_block, bool real)
{
	struct vs_zeroer z;

	vs_zeroer_init(&z, fd, is_block, "target");
	if (!real)
		z.sys = &fake_sys;
	return z;
}

/* The file holds what data[] says it should. */
static void
assert_untouched(void)
{
	static uint8_t back[SIZE];

	assert_int_equal(vs_pread_full(fd, back, SIZE, 0), SIZE);
	assert_memory_equal(back, data, SIZE);
}

/* [off, off + len) now reads as zeros, the rest as before. */
static void
assert_zeroed(uint64_t off, uint64_t len)
{
	memset(data + off, 0, len);
	assert_untouched();
}

/* Is [off, off + len) a hole of the file? */
static bool
is_hole(uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	return (d < 0 && errno == ENXIO) || (uint64_t)d >= off + len;
}

static void
assert_flags(const struct vs_zeroer *z, bool punch, bool range, bool discard,
    bool zeroout)
{
	assert_int_equal(z->can_punch, punch);
	assert_int_equal(z->can_zero_range, range);
	assert_int_equal(z->can_discard, discard);
	assert_int_equal(z->can_zeroout, zeroout);
}

/* ---- files ---- */

static void
test_punch_makes_hole(void **state)
{
	struct vs_zeroer z = zeroer(false, true);

	(void)state;
	assert_flags(&z, true, true, false, false);
	assert_int_equal(vs_zero(&z, 64 * K, 128 * K), 0);
	assert_zeroed(64 * K, 128 * K);
	assert_true(is_hole(64 * K, 128 * K));
	assert_flags(&z, true, true, false, false);
	vs_zeroer_release(&z);
}

/* A file whose size is not a whole number of blocks: a punch that
 * reaches its end frees the last block too, and keeps the size. */
static void
test_punch_to_end_frees_last_block(void **state)
{
	struct vs_zeroer z = zeroer(false, true);
	static uint8_t back[SIZE];
	struct stat st;

	(void)state;
	assert_int_equal(ftruncate(fd, SIZE - 1), 0);
	assert_int_equal(vs_zero(&z, SIZE - 64 * K, 64 * K - 1), 0);
	assert_true(is_hole(SIZE - 64 * K, 64 * K - 1));
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SIZE - 1);
	memset(data + SIZE - 64 * K, 0, 64 * K);
	assert_int_equal(vs_pread_full(fd, back, SIZE, 0), SIZE - 1);
	assert_memory_equal(back, data, SIZE - 1);
	vs_zeroer_release(&z);
}

static void
test_zero_length_asks_nothing(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	assert_int_equal(vs_zero(&z, 64 * K, 0), 0);
	assert_int_equal(sys.punches + sys.ranges, 0);
	assert_untouched();
}

/* EOPNOTSUPP from a punch: only punching is switched off, ZERO_RANGE
 * zeroes this range and every later one, and no punch is tried again. */
static void
test_punch_unsupported_uses_zero_range(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	sys.punch_errno = EOPNOTSUPP;
	assert_int_equal(vs_zero(&z, 0, 64 * K), 0);
	assert_flags(&z, false, true, false, false);
	assert_int_equal(sys.punches, 1);
	assert_int_equal(sys.ranges, 1);
	assert_zeroed(0, 64 * K);

	assert_int_equal(vs_zero(&z, 128 * K, 64 * K), 0);
	assert_int_equal(sys.punches, 1);
	assert_int_equal(sys.ranges, 2);
	assert_flags(&z, false, true, false, false);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* ENOTSUP from both fallocate modes: zeros are written, allocated. */
static void
test_nothing_supported_writes_zeros(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	sys.punch_errno = ENOTSUP;
	sys.range_errno = ENOTSUP;
	assert_int_equal(vs_zero(&z, 64 * K, 64 * K), 0);
	assert_flags(&z, false, false, false, false);
	assert_zeroed(64 * K, 64 * K);
	assert_false(is_hole(64 * K, 64 * K));

	assert_int_equal(vs_zero(&z, 192 * K, 4 * K), 0);
	assert_int_equal(sys.punches + sys.ranges, 2);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* Zeroing [0, 64K) fails as an error of the target, switches no method
 * off and leaves the file alone. */
static void
assert_error_kept(struct vs_zeroer *z)
{
	struct vs_zeroer before = *z;

	assert_int_equal(vs_zero(z, 0, 64 * K), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	assert_non_null(strstr(vs_err_text(), "zero 65536 bytes at offset 0"));
	assert_flags(z, before.can_punch, before.can_zero_range,
	    before.can_discard, before.can_zeroout);
	assert_untouched();
}

/* EIO is the storage failing, not a method missing: reported, nothing
 * switched off, nothing else tried, and the punch is used again next. */
static void
test_eio_reported_and_kept(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	sys.punch_errno = EIO;
	assert_error_kept(&z);
	assert_int_equal(sys.ranges, 0);

	sys.punch_errno = 0;
	assert_int_equal(vs_zero(&z, 0, 64 * K), 0);
	assert_int_equal(sys.punches, 2);
	assert_int_equal(sys.ranges, 0);
	assert_zeroed(0, 64 * K);
}

/* ENOSPC from ZERO_RANGE once punching is off: reported, ZERO_RANGE kept,
 * and no zeros are written in its place. */
static void
test_enospc_reported_and_kept(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	sys.punch_errno = EOPNOTSUPP;
	assert_int_equal(vs_zero(&z, 128 * K, 64 * K), 0);
	assert_zeroed(128 * K, 64 * K);
	sys.range_errno = ENOSPC;
	assert_error_kept(&z);
	assert_flags(&z, false, true, false, false);
}

/* fallocate's EINVAL is a bad request, not a missing method. */
static void
test_fallocate_einval_is_an_error(void **state)
{
	struct vs_zeroer z = zeroer(false, false);

	(void)state;
	sys.punch_errno = EINVAL;
	assert_error_kept(&z);
	assert_int_equal(sys.ranges, 0);
}

/* ---- block devices (stand-in ioctls on the file) ---- */

static void
test_discard_reading_zeros_is_kept(void **state)
{
	struct vs_zeroer z = zeroer(true, false);

	(void)state;
	assert_flags(&z, false, false, true, true);
	assert_int_equal(vs_zero(&z, 0, 64 * K), 0);
	assert_zeroed(0, 64 * K);
	assert_int_equal(vs_zero(&z, 128 * K, 64 * K), 0);
	assert_zeroed(128 * K, 64 * K);
	assert_int_equal(sys.discards, 2);
	assert_int_equal(sys.zeroouts, 0);
	assert_int_equal(sys.punches + sys.ranges, 0);
	assert_flags(&z, false, false, true, true);
	vs_zeroer_release(&z);
}

/* A discard that leaves the old data is dropped for BLKZEROOUT. */
static void
test_discard_not_reading_zeros_uses_zeroout(void **state)
{
	struct vs_zeroer z = zeroer(true, false);

	(void)state;
	sys.discard_keeps = true;
	assert_int_equal(vs_zero(&z, 64 * K, 64 * K), 0);
	assert_flags(&z, false, false, false, true);
	assert_int_equal(sys.zeroouts, 1);
	assert_zeroed(64 * K, 64 * K);

	assert_int_equal(vs_zero(&z, 0, 4 * K), 0);
	assert_int_equal(sys.discards, 1);
	assert_int_equal(sys.zeroouts, 2);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
	vs_zeroer_release(&z);
}

/* A device without the ioctls answers ENOTTY or EINVAL: each switches
 * its method off, and writing zeros is what is left. */
static void
test_ioctls_unsupported_write_zeros(void **state)
{
	struct vs_zeroer z = zeroer(true, false);

	(void)state;
	sys.discard_errno = ENOTTY;
	assert_int_equal(vs_zero(&z, 0, 64 * K), 0);
	assert_flags(&z, false, false, false, true);
	assert_int_equal(sys.zeroouts, 1);
	assert_zeroed(0, 64 * K);

	sys.zeroout_errno = EINVAL;
	assert_int_equal(vs_zero(&z, 128 * K, 64 * K), 0);
	assert_flags(&z, false, false, false, false);
	assert_int_equal(sys.discards, 1);
	assert_int_equal(sys.zeroouts, 2);
	assert_zeroed(128 * K, 64 * K);
	assert_false(is_hole(128 * K, 64 * K));
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_discard_eio_reported_and_kept(void **state)
{
	struct vs_zeroer z = zeroer(true, false);

	(void)state;
	sys.discard_errno = EIO;
	assert_error_kept(&z);
	assert_int_equal(sys.zeroouts, 0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_punch_makes_hole),
		T(test_punch_to_end_frees_last_block),
		T(test_zero_length_asks_nothing),
		T(test_punch_unsupported_uses_zero_range),
		T(test_nothing_supported_writes_zeros),
		T(test_eio_reported_and_kept),
		T(test_enospc_reported_and_kept),
		T(test_fallocate_einval_is_an_error),
		T(test_discard_reading_zeros_is_kept),
		T(test_discard_not_reading_zeros_uses_zeroout),
		T(test_ioctls_unsupported_write_zeros),
		T(test_discard_eio_reported_and_kept),
	};
#undef T

	vs_err_quiet = true;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
