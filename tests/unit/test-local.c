/*
 * test-local.c - the local target (src/transport/local.c) driven through
 * its ops on temporary files: writes refined to the 4 KiB sectors that
 * differ (also in one write over a hole and data), zero sectors punched,
 * punch() of data and of holes, the index trusted only after commit() and
 * only while the target is unchanged and no run was left unfinished, index
 * entries across resizes, dry runs that change nothing, and the operation
 * log (VMSYNC_DEBUG_OPS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index.h"
#include "transport/transport.h"
#include "util.h"
#include "vmsync.h"

#define K 1024ull
#define BS (64 * K)
#define SECTOR 4096

static char logpath[4200];
static struct vs_stats st;
static int
setup(void **state)
{
	(void)state;
	vs_err_reset();
	memset(&st, 0, sizeof(st));
	if (unit_mktmp("local") < 0)
		return -1;
	/* Every case logs its operations to its own file. */
	snprintf(logpath, sizeof(logpath), "%s/ops.log", tmpdir);
	return setenv("VMSYNC_DEBUG_OPS", logpath, 1);
}

static int
teardown(void **state)
{
	(void)state;
	unsetenv("VMSYNC_DEBUG_OPS");
	vs_err_reset();
	return unit_rmtmp();
}
static struct vs_target_opts
opts(void)
{
	struct vs_target_opts o = {
		.block_size = BS,
		.src_mode = S_IFREG | 0640,
		.src_mtime_sec = 1234567890,
		.src_mtime_nsec = 500000000,
		.stats = &st,
	};

	return o;
}

static struct vs_target *
topen(const char *path, const struct vs_target_opts *o)
{
	struct vs_target *t = NULL;

	if (vs_local_open(path, o, &t) != 0)
		fail_msg("vs_local_open(%s) failed", path);
	assert_non_null(t);
	return t;
}

static void
tbegin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	memset(info, 0x5a, sizeof(*info));
	if (t->ops->begin(t, size, info) != 0)
		fail_msg("begin(%llu) failed", (unsigned long long)size);
}

/* Make @path a sparse file of @size with @len bytes of @data at @off. */
static void
mkfile(const char *path, uint64_t size, const void *data, size_t len,
    uint64_t off)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (len)
		assert_int_equal(vs_pwrite_full(fd, data, len, off), 0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static void
pwrite_at(const char *path, const void *data, size_t len, uint64_t off)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(vs_pwrite_full(fd, data, len, off), 0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static void
read_at(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(vs_pread_full(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static off_t
size_of(const char *path)
{
	struct stat s;

	assert_int_equal(stat(path, &s), 0);
	return s.st_size;
}

/* The operation log so far ("" if none); static storage. */
static const char *
oplog(void)
{
	static char buf[8192];
	FILE *f = fopen(logpath, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static void
log_is(const char *want)
{
	const char *got = oplog();

	if (strcmp(got, want) != 0)
		fail_msg("operation log is\n%s-- want --\n%s--", got, want);
}

/* SEEK_DATA/SEEK_HOLE at @off of @path. */
static off_t
seek(const char *path, off_t off, int whence)
{
	int fd = open(path, O_RDONLY);
	off_t r;

	assert_true(fd >= 0);
	r = lseek(fd, off, whence);
	if (r < 0)
		r = -errno;
	close(fd);
	return r;
}

/* ---- sector refinement ---- */

static void
test_write_two_sectors(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t old[BS], new[BS], back[BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(old, sizeof(old), 1);
	memcpy(new, old, sizeof(new));
	new[2 * SECTOR + 100] ^= 1;		/* sector 2 */
	new[9 * SECTOR + SECTOR - 1] ^= 0x80;	/* sector 9, last byte */
	mkfile(tgt, BS, old, BS, 0);

	t = topen(tgt, &o);
	tbegin(t, BS, &info);
	assert_int_equal(info.block_size, BS);
	assert_false(info.trusted);
	assert_int_equal(t->ops->write(t, new, BS, 0), 0);
	assert_int_equal(st.written_bytes, 2 * SECTOR);
	assert_int_equal(st.unchanged_bytes, 14 * SECTOR);
	assert_int_equal(st.target_read_bytes, BS);
	assert_int_equal(st.punched_bytes, 0);
	t->ops->close(t);

	log_is("write 8192 4096\nwrite 36864 4096\n");
	read_at(tgt, back, BS, 0);
	assert_memory_equal(back, new, BS);
	assert_int_equal(size_of(tgt), BS);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_write_adjacent_sectors_one_run(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t old[BS], new[BS], back[BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(old, sizeof(old), 2);
	memcpy(new, old, sizeof(new));
	new[4 * SECTOR] ^= 1;
	new[5 * SECTOR + 7] ^= 1;
	new[6 * SECTOR + 4095] ^= 1;
	new[15 * SECTOR] ^= 1;			/* the last sector */
	mkfile(tgt, 2 * BS, old, BS, BS);	/* block 1 of 2 */

	t = topen(tgt, &o);
	tbegin(t, 2 * BS, &info);
	assert_int_equal(t->ops->write(t, new, BS, BS), 0);
	assert_int_equal(st.written_bytes, 4 * SECTOR);
	t->ops->close(t);
	log_is("write 81920 12288\nwrite 126976 4096\n");
	read_at(tgt, back, BS, BS);
	assert_memory_equal(back, new, BS);
}

static void
test_write_unchanged_logs_nothing(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t old[BS];
	struct stat before, after;

	(void)state;
	fill(old, sizeof(old), 3);
	mkfile(tgt, BS, old, BS, 0);
	assert_int_equal(stat(tgt, &before), 0);
	t = topen(tgt, &o);
	tbegin(t, BS, &info);
	assert_int_equal(t->ops->write(t, old, BS, 0), 0);
	assert_int_equal(st.written_bytes, 0);
	assert_int_equal(st.punched_bytes, 0);
	assert_int_equal(st.unchanged_bytes, BS);
	t->ops->close(t);
	log_is("");
	assert_int_equal(stat(tgt, &after), 0);
	assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
	    before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
}

static void
test_write_zero_sector_punched(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t old[BS], new[BS], back[BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(old, sizeof(old), 4);
	memcpy(new, old, sizeof(new));
	memset(new + 5 * SECTOR, 0, SECTOR);
	mkfile(tgt, BS, old, BS, 0);

	t = topen(tgt, &o);
	tbegin(t, BS, &info);
	assert_int_equal(t->ops->write(t, new, BS, 0), 0);
	assert_int_equal(st.written_bytes, 0);
	assert_int_equal(st.punched_bytes, SECTOR);
	assert_int_equal(st.unchanged_bytes, 15 * SECTOR);
	t->ops->close(t);

	log_is("punch 20480 4096\n");
	assert_int_equal(size_of(tgt), BS);
	read_at(tgt, back, BS, 0);
	assert_memory_equal(back, new, BS);
	assert_true(vs_is_zero(back + 5 * SECTOR, SECTOR));
	/* Deallocated, not written as zeros. */
	assert_int_equal(seek(tgt, 0, SEEK_HOLE), 5 * SECTOR);
	assert_int_equal(seek(tgt, 5 * SECTOR, SEEK_HOLE), 5 * SECTOR);
	assert_int_equal(seek(tgt, 5 * SECTOR, SEEK_DATA), 6 * SECTOR);
}

static void
test_write_zero_then_data_split(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t old[BS], new[BS], back[BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(old, sizeof(old), 5);
	memcpy(new, old, sizeof(new));
	memset(new + 3 * SECTOR, 0, 2 * SECTOR);	/* sectors 3, 4 zero */
	fill(new + 5 * SECTOR, SECTOR, 99);		/* sector 5 new data */
	memset(new + 6 * SECTOR, 0, SECTOR);		/* sector 6 zero */

	mkfile(tgt, BS, old, BS, 0);
	t = topen(tgt, &o);
	tbegin(t, BS, &info);
	assert_int_equal(t->ops->write(t, new, BS, 0), 0);
	assert_int_equal(st.written_bytes, SECTOR);
	assert_int_equal(st.punched_bytes, 3 * SECTOR);
	t->ops->close(t);
	log_is("punch 12288 8192\nwrite 20480 4096\npunch 24576 4096\n");
	read_at(tgt, back, BS, 0);
	assert_memory_equal(back, new, BS);
}

static void
test_write_into_hole(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t new[BS], back[BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(new, sizeof(new), 6);
	memset(new, 0, SECTOR);			/* sector 0 stays a hole */
	mkfile(tgt, 4 * BS, NULL, 0, 0);	/* all hole */

	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	assert_int_equal(t->ops->write(t, new, BS, 2 * BS), 0);
	/* A hole is known to read as zeros: nothing is read to compare. */
	assert_int_equal(st.target_read_bytes, 0);
	assert_int_equal(st.written_bytes, BS - SECTOR);
	assert_int_equal(st.punched_bytes, 0);
	t->ops->close(t);
	log_is("write 135168 61440\n");
	read_at(tgt, back, BS, 2 * BS);
	assert_memory_equal(back, new, BS);
	assert_int_equal(seek(tgt, 0, SEEK_DATA), 2 * BS + SECTOR);
}

static void
test_write_short_last_block(void **state)
{
	const char *tgt = tpath("t.img");
	uint64_t size = BS + 5000;
	uint8_t old[5000], new[5000], back[5000];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	fill(old, sizeof(old), 7);
	memcpy(new, old, sizeof(new));
	new[4999] ^= 1;				/* in the partial sector */
	mkfile(tgt, size, old, sizeof(old), BS);
	t = topen(tgt, &o);
	tbegin(t, size, &info);
	assert_int_equal(t->ops->write(t, new, sizeof(new), BS), 0);
	assert_int_equal(st.written_bytes, 5000 - SECTOR);
	t->ops->close(t);
	log_is("write 69632 904\n");
	assert_int_equal(size_of(tgt), size);
	read_at(tgt, back, sizeof(back), BS);
	assert_memory_equal(back, new, sizeof(new));
}

static void
test_write_across_hole_then_data(void **state)
{
	const char *tgt = tpath("t.img");
	uint8_t old[BS], new[2 * BS], back[2 * BS];
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;

	(void)state;
	/* Target: block 0 a hole, block 1 data. */
	fill(old, sizeof(old), 9);
	mkfile(tgt, 2 * BS, old, BS, BS);
	/* One write of both blocks: sector 0 of block 0 gets data, sector 1
	 * of block 1 becomes zeros, everything else is as the target holds
	 * it. */
	memset(new, 0, BS);
	fill(new, SECTOR, 90);
	memcpy(new + BS, old, BS);
	memset(new + BS + SECTOR, 0, SECTOR);

	t = topen(tgt, &o);
	tbegin(t, 2 * BS, &info);
	assert_int_equal(t->ops->write(t, new, 2 * BS, 0), 0);
	t->ops->close(t);

	/* The hole covers only part of the write: the old bytes are read
	 * and compared, so the data already there is not rewritten and the
	 * zeroed sector is punched. */
	log_is("write 0 4096\npunch 69632 4096\n");
	assert_int_equal(st.target_read_bytes, 2 * BS);
	assert_int_equal(st.written_bytes, SECTOR);
	assert_int_equal(st.punched_bytes, SECTOR);
	assert_int_equal(st.unchanged_bytes, 2 * BS - 2 * SECTOR);
	read_at(tgt, back, sizeof(back), 0);
	assert_memory_equal(back, new, sizeof(new));
	assert_int_equal(size_of(tgt), 2 * BS);
	/* Data [0, 4K) and [64K, 128K) but for the punched [68K, 72K). */
	assert_int_equal(seek(tgt, 0, SEEK_DATA), 0);
	assert_int_equal(seek(tgt, 0, SEEK_HOLE), SECTOR);
	assert_int_equal(seek(tgt, SECTOR, SEEK_DATA), BS);
	assert_int_equal(seek(tgt, BS, SEEK_HOLE), BS + SECTOR);
	assert_int_equal(seek(tgt, BS + SECTOR, SEEK_DATA), BS + 2 * SECTOR);
	assert_int_equal(seek(tgt, BS + 2 * SECTOR, SEEK_HOLE), 2 * BS);
}

/* ---- punch ---- */

/* A 256 KiB target with data in [0, 64K) and [128K, 192K). */
static void
mk_two_extents(const char *tgt, uint8_t *data)
{
	fill(data, BS, 8);
	mkfile(tgt, 4 * BS, data, BS, 0);
	pwrite_at(tgt, data, BS, 2 * BS);
}

static void
test_punch_data(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t data[BS], back[4 * BS];

	(void)state;
	mk_two_extents(tgt, data);
	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	assert_int_equal(t->ops->punch(t, 0, 4 * BS), 0);
	assert_int_equal(st.punched_bytes, 2 * BS);
	assert_int_equal(st.written_bytes, 0);
	t->ops->close(t);
	log_is("punch 0 65536\npunch 131072 65536\n");
	assert_int_equal(size_of(tgt), 4 * BS);
	read_at(tgt, back, sizeof(back), 0);
	assert_true(vs_is_zero(back, sizeof(back)));
	assert_int_equal(seek(tgt, 0, SEEK_DATA), -ENXIO);
}

static void
test_punch_hole_counts_nothing(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t data[BS];

	(void)state;
	mk_two_extents(tgt, data);
	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	/* Holes only: [64K, 128K) and [192K, 256K). */
	assert_int_equal(t->ops->punch(t, BS, BS), 0);
	assert_int_equal(t->ops->punch(t, 3 * BS, BS), 0);
	assert_int_equal(st.punched_bytes, 0);
	log_is("");
	/* Punching twice: the second finds nothing. */
	assert_int_equal(t->ops->punch(t, 0, 4 * BS), 0);
	assert_int_equal(st.punched_bytes, 2 * BS);
	assert_int_equal(t->ops->punch(t, 0, 4 * BS), 0);
	assert_int_equal(st.punched_bytes, 2 * BS);
	t->ops->close(t);
	log_is("punch 0 65536\npunch 131072 65536\n");
}

static void
test_punch_partial_range(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t data[BS], back[BS];

	(void)state;
	mk_two_extents(tgt, data);
	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	assert_int_equal(t->ops->punch(t, 32 * K, 128 * K), 0);
	assert_int_equal(st.punched_bytes, 64 * K);
	t->ops->close(t);
	log_is("punch 32768 32768\npunch 131072 32768\n");
	read_at(tgt, back, BS, 0);
	assert_memory_equal(back, data, 32 * K);
	assert_true(vs_is_zero(back + 32 * K, 32 * K));
	read_at(tgt, back, BS, 2 * BS);
	assert_true(vs_is_zero(back, 32 * K));
	assert_memory_equal(back + 32 * K, data + 32 * K, 32 * K);
	assert_int_equal(seek(tgt, 0, SEEK_HOLE), 32 * K);
	assert_int_equal(seek(tgt, 32 * K, SEEK_DATA), 160 * K);
}

/* ---- index: commit, trust, dirty ---- */

/* First run into a new target: blocks 0 and 2 data, 1 and 3 holes.
 * Fills @data (4 blocks) and @rec (the recorded entries); returns the
 * seed. */
static uint64_t
first_run(const char *tgt, uint8_t *data, struct vs_hash *rec, bool commit)
{
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash old[4];
	struct vs_target *t;

	memset(data, 0, 4 * BS);
	fill(data, BS, 10);
	fill(data + 2 * BS, BS, 12);
	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	assert_false(info.trusted);
	assert_non_null(st.index_state);
	assert_string_equal(st.index_state, "new");
	assert_int_equal(t->ops->summaries(t, 0, 4, old), 0);
	for (int i = 0; i < 4; i++) {
		assert_true(vs_hash_eq(&old[i], &vs_hash_unknown));
		if (i % 2) {
			rec[i] = vs_hash_hole;
			continue;
		}
		vs_hash_block(data + i * BS, BS, info.seed, &rec[i]);
		assert_int_equal(t->ops->write(t, data + i * BS, BS, i * BS),
		    0);
	}
	assert_int_equal(t->ops->record(t, 0, 4, old, rec), 0);
	if (commit)
		assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	return info.seed;
}

/* Open @tgt again and begin(@size); returns the target (caller closes). */
static struct vs_target *
reopen(const char *tgt, const struct vs_target_opts *o, uint64_t size,
    struct vs_target_info *info)
{
	struct vs_target *t;

	memset(&st, 0, sizeof(st));
	t = topen(tgt, o);
	tbegin(t, size, info);
	return t;
}

static void
test_commit_then_trusted(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4], got[4];
	uint8_t data[4 * BS], back[4 * BS];
	struct vs_target *t;
	struct stat s;
	uint64_t seed;
	mode_t mask = umask(022);

	(void)state;
	umask(mask);
	seed = first_run(tgt, data, rec, true);
	assert_int_equal(stat(tgt, &s), 0);
	assert_int_equal(s.st_size, 4 * BS);
	assert_int_equal(s.st_mode & 07777, 0640 & ~mask);
	assert_int_equal(s.st_mtim.tv_sec, 1234567890);
	assert_int_equal(s.st_mtim.tv_nsec, 500000000);
	read_at(tgt, back, sizeof(back), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(access(tpath(".t.img.vmsync-index"), F_OK), 0);

	o.block_size = 0;			/* take the index's */
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	assert_true(info.seed == seed);
	assert_int_equal(info.block_size, BS);
	assert_string_equal(st.index_state, "trusted");
	memset(got, 0x33, sizeof(got));
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	for (int i = 0; i < 4; i++)
		if (!vs_hash_eq(&got[i], &rec[i]))
			fail_msg("entry %d differs from what was recorded", i);
	/* Part of the range. */
	assert_int_equal(t->ops->summaries(t, 2, 2, got), 0);
	assert_true(vs_hash_eq(&got[0], &rec[2]));
	assert_true(vs_hash_eq(&got[1], &rec[3]));
	t->ops->close(t);
}

static void
test_no_commit_dirty(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	const struct idx_header *h;
	struct vs_hash rec[4], got[4];
	uint8_t data[4 * BS];
	struct vs_index *ix = NULL;
	struct vs_target *t;
	const char *why;

	(void)state;
	first_run(tgt, data, rec, false);
	assert_int_equal(idx_open(tpath(".t.img.vmsync-index"), false, &ix), 0);
	assert_non_null(ix);
	h = idx_header(ix, &why);
	assert_non_null(h);
	assert_true(h->flags & IDX_FLAG_DIRTY);
	idx_close(ix);

	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_string_equal(st.index_state, "rebuilt");
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	for (int i = 0; i < 4; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_unknown));
	/* This run commits: the next one trusts the index again. */
	assert_int_equal(t->ops->record(t, 0, 4, got, rec), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	t->ops->close(t);
}

/* A trusted run that records a changed entry and ends without commit(),
 * leaving the target's identity (inode, size, mtime, ctime) as the index
 * recorded it: as after a crash that lost the run's target writes but not
 * its index writes.  Only the dirty flag tells the next run that the
 * entries may describe data the target does not hold. */
static void
test_unfinished_trusted_run_dirty(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	const struct idx_header *h;
	struct vs_hash rec[4], got[4], changed;
	uint8_t data[4 * BS], new[BS];
	struct vs_index *ix = NULL;
	struct vs_target *t;
	const char *why;
	struct stat s;

	(void)state;
	first_run(tgt, data, rec, true);

	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	fill(new, sizeof(new), 11);
	vs_hash_block(new, BS, info.seed, &changed);
	got[0] = changed;		/* block 0 now holds @new */
	assert_int_equal(t->ops->record(t, 0, 4, rec, got), 0);
	t->ops->close(t);		/* no commit() */

	/* The index holds the changed entry and the target's identity as it
	 * is now: the dirty flag is all that differs from a committed one. */
	assert_int_equal(stat(tgt, &s), 0);
	assert_int_equal(idx_open(tpath(".t.img.vmsync-index"), false, &ix), 0);
	h = idx_header(ix, &why);
	assert_non_null(h);
	assert_true(h->flags & IDX_FLAG_DIRTY);
	assert_true(h->virtual_size == 4 * BS);
	assert_true(h->id.dev == s.st_dev && h->id.ino == s.st_ino &&
	    h->id.size == (uint64_t)s.st_size &&
	    h->id.mtime_sec == s.st_mtim.tv_sec &&
	    h->id.mtime_nsec == s.st_mtim.tv_nsec &&
	    h->id.ctime_sec == s.st_ctim.tv_sec &&
	    h->id.ctime_nsec == s.st_ctim.tv_nsec);
	assert_int_equal(idx_read(ix, 0, 1, got), 0);
	assert_true(vs_hash_eq(&got[0], &changed));
	idx_close(ix);

	/* So the next run must not trust it. */
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_string_equal(st.index_state, "rebuilt");
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	for (int i = 0; i < 4; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_unknown));
	t->ops->close(t);
}

static void
test_commit_clean_header(void **state)
{
	const char *tgt = tpath("t.img");
	const struct idx_header *h;
	struct vs_hash rec[4];
	uint8_t data[4 * BS];
	struct vs_index *ix = NULL;
	const char *why;
	struct stat s;

	(void)state;
	first_run(tgt, data, rec, true);
	assert_int_equal(stat(tgt, &s), 0);
	assert_int_equal(idx_open(tpath(".t.img.vmsync-index"), false, &ix), 0);
	h = idx_header(ix, &why);
	assert_non_null(h);
	assert_int_equal(h->flags & IDX_FLAG_DIRTY, 0);
	assert_int_equal(h->block_size, BS);
	assert_true(h->virtual_size == 4 * BS);
	/* It describes the target as committed. */
	assert_true(h->id.ino == s.st_ino);
	assert_true(h->id.size == (uint64_t)s.st_size);
	assert_true(h->id.mtime_sec == s.st_mtim.tv_sec);
	assert_true(h->id.ctime_nsec == s.st_ctim.tv_nsec);
	idx_close(ix);
}

static void
test_changed_target_untrusted(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4], got[4];
	uint8_t data[4 * BS];
	struct vs_target *t;

	(void)state;
	first_run(tgt, data, rec, true);
	/* Another program rewrites one byte with the same value. */
	pwrite_at(tgt, data + 5, 1, 5);
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	assert_true(vs_hash_eq(&got[0], &vs_hash_unknown));
	t->ops->close(t);
}

static void
test_checksum_or_block_size_untrusted(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4];
	uint8_t data[4 * BS];
	struct vs_target *t;
	uint64_t seed;

	(void)state;
	seed = first_run(tgt, data, rec, true);
	o.checksum = true;
	o.dry_run = true;			/* keep the index as it is */
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	t->ops->close(t);
	o = opts();
	o.block_size = 4096;
	o.dry_run = true;
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_int_equal(info.block_size, 4096);
	t->ops->close(t);
	/* Nothing above changed the index: still trusted. */
	o = opts();
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	assert_true(info.seed == seed);
	t->ops->close(t);
}

static void
test_resize_entries(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4], got[6];
	uint8_t data[4 * BS];
	struct vs_target *t;

	(void)state;
	first_run(tgt, data, rec, true);

	/* Shrink into block 2: blocks 0, 1 kept, block 2 unknown. */
	t = reopen(tgt, &o, 2 * BS + 100, &info);
	assert_true(info.trusted);
	assert_int_equal(size_of(tgt), 2 * BS + 100);
	assert_int_equal(t->ops->summaries(t, 0, 3, got), 0);
	assert_true(vs_hash_eq(&got[0], &rec[0]));
	assert_true(vs_hash_eq(&got[1], &rec[1]));
	assert_true(vs_hash_eq(&got[2], &vs_hash_unknown));
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);

	/* Grow again: block 2 stays unknown (its length changed), the new
	 * blocks are holes, not the stale entries from the first run. */
	t = reopen(tgt, &o, 6 * BS, &info);
	assert_true(info.trusted);
	assert_int_equal(size_of(tgt), 6 * BS);
	assert_int_equal(t->ops->summaries(t, 0, 6, got), 0);
	assert_true(vs_hash_eq(&got[0], &rec[0]));
	assert_true(vs_hash_eq(&got[1], &rec[1]));
	assert_true(vs_hash_eq(&got[2], &vs_hash_unknown));
	for (int i = 3; i < 6; i++)
		if (!vs_hash_eq(&got[i], &vs_hash_hole))
			fail_msg("entry %d of the grown target is not a hole",
			    i);
	t->ops->close(t);
}

/* ---- dry run ---- */

static void
test_dry_run_changes_nothing(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t old[BS], new[BS], back[BS];
	struct stat before, after;

	(void)state;
	fill(old, sizeof(old), 20);
	fill(new, sizeof(new), 21);
	memset(new + SECTOR, 0, SECTOR);
	mkfile(tgt, 2 * BS, old, BS, 0);
	pwrite_at(tgt, old, BS, BS);
	assert_int_equal(stat(tgt, &before), 0);

	o.dry_run = true;
	t = topen(tgt, &o);
	tbegin(t, 3 * BS, &info);		/* would grow */
	assert_false(info.trusted);
	assert_int_equal(t->ops->write(t, new, BS, 0), 0);
	assert_int_equal(t->ops->punch(t, BS, BS), 0);
	assert_int_equal(t->ops->record(t, 0, 1, &vs_hash_unknown,
	    &vs_hash_hole), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);

	/* Counted and logged as if done... */
	assert_int_equal(st.written_bytes, BS - SECTOR);
	assert_int_equal(st.punched_bytes, BS + SECTOR);
	log_is("write 0 4096\npunch 4096 4096\nwrite 8192 57344\n"
	    "punch 65536 65536\n");
	/* ...but the file is as it was, and no index was made. */
	assert_int_equal(stat(tgt, &after), 0);
	assert_int_equal(after.st_size, 2 * BS);
	assert_true(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
	    before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	read_at(tgt, back, BS, 0);
	assert_memory_equal(back, old, BS);
	read_at(tgt, back, BS, BS);
	assert_memory_equal(back, old, BS);
	assert_int_equal(access(tpath(".t.img.vmsync-index"), F_OK), -1);
}

static void
test_dry_run_new_target(void **state)
{
	const char *tgt = tpath("new.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t new[BS];

	(void)state;
	fill(new, sizeof(new), 22);
	o.dry_run = true;
	t = topen(tgt, &o);
	tbegin(t, 2 * BS, &info);
	assert_int_equal(t->ops->write(t, new, BS, BS), 0);
	assert_int_equal(t->ops->punch(t, 0, BS), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	assert_int_equal(st.written_bytes, BS);
	assert_int_equal(st.punched_bytes, 0);
	assert_int_equal(access(tgt, F_OK), -1);
	assert_int_equal(access(tpath(".new.img.vmsync-index"), F_OK), -1);
}

static void
test_dry_run_keeps_index(void **state)
{
	const char *tgt = tpath("t.img");
	const char *ixp = tpath(".t.img.vmsync-index");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4], got[4];
	uint8_t data[4 * BS], ix1[IDX_HEADER_SIZE + 4 * VS_HASH_LEN],
	    ix2[sizeof(ix1)], new[BS];
	struct vs_target *t;

	(void)state;
	first_run(tgt, data, rec, true);
	read_at(ixp, ix1, sizeof(ix1), 0);
	fill(new, sizeof(new), 23);
	o.dry_run = true;
	t = reopen(tgt, &o, 5 * BS, &info);
	assert_true(info.trusted);
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	assert_true(vs_hash_eq(&got[2], &rec[2]));
	assert_int_equal(t->ops->write(t, new, BS, 0), 0);
	assert_int_equal(t->ops->punch(t, 0, 4 * BS), 0);
	assert_int_equal(t->ops->record(t, 0, 4, got, got), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	assert_int_equal(size_of(ixp), sizeof(ix1));
	read_at(ixp, ix2, sizeof(ix2), 0);
	assert_memory_equal(ix1, ix2, sizeof(ix1));
	assert_int_equal(size_of(tgt), 4 * BS);
	/* And a real run still trusts it. */
	o = opts();
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	t->ops->close(t);
}

/* ---- opening ---- */

static void
test_index_path(void **state)
{
	char *p;

	(void)state;
	p = vs_local_index_path("/backup/vm/disk.img");
	assert_string_equal(p, "/backup/vm/.disk.img.vmsync-index");
	free(p);
	p = vs_local_index_path("disk.img");
	assert_string_equal(p, "./.disk.img.vmsync-index");
	free(p);
}

static void
test_refused_targets(void **state)
{
	struct vs_target_opts o = opts();
	struct vs_target *t = NULL;
	uint8_t data[BS];

	(void)state;
	fill(data, sizeof(data), 30);
	mkfile(tpath("real.img"), BS, data, BS, 0);
	assert_int_equal(symlink("real.img", tpath("link.img")), 0);
	assert_int_equal(vs_local_open(tpath("link.img"), &o, &t), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	vs_err_reset();
	assert_int_equal(vs_local_open(tmpdir, &o, &t), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	vs_err_reset();
	/* A symbolic link planted as the index. */
	assert_int_equal(symlink("elsewhere",
	    tpath(".real.img.vmsync-index")), 0);
	assert_int_equal(vs_local_open(tpath("real.img"), &o, &t), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	assert_int_equal(access(tpath("elsewhere"), F_OK), -1);
}

static void
test_lock(void **state)
{
	struct vs_target_opts o = opts();
	struct vs_target *t1, *t2 = NULL;
	uint8_t data[BS];

	(void)state;
	fill(data, sizeof(data), 31);
	mkfile(tpath("t.img"), BS, data, BS, 0);
	t1 = topen(tpath("t.img"), &o);
	assert_int_equal(vs_local_open(tpath("t.img"), &o, &t2), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_LOCKED);
	t1->ops->close(t1);
	vs_err_reset();
	t2 = topen(tpath("t.img"), &o);
	t2->ops->close(t2);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_write_two_sectors),
		T(test_write_adjacent_sectors_one_run),
		T(test_write_unchanged_logs_nothing),
		T(test_write_zero_sector_punched),
		T(test_write_zero_then_data_split),
		T(test_write_into_hole),
		T(test_write_short_last_block),
		T(test_write_across_hole_then_data),
		T(test_punch_data),
		T(test_punch_hole_counts_nothing),
		T(test_punch_partial_range),
		T(test_commit_then_trusted),
		T(test_no_commit_dirty),
		T(test_unfinished_trusted_run_dirty),
		T(test_commit_clean_header),
		T(test_changed_target_untrusted),
		T(test_checksum_or_block_size_untrusted),
		T(test_resize_entries),
		T(test_dry_run_changes_nothing),
		T(test_dry_run_new_target),
		T(test_dry_run_keeps_index),
		T(test_index_path),
		T(test_refused_targets),
		T(test_lock),
	};
#undef T

	return cmocka_run_group_tests_name("local", tests, NULL, NULL);
}
