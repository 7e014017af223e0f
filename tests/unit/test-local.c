/*
 * test-local.c - the local target (src/transport/local.c) driven through
 * its ops on temporary files: writes refined to the 4 KiB sectors that
 * differ (also in one write over a hole and data), zero sectors punched,
 * punch() of data and of holes, the index trusted only after commit() and
 * only while the target is unchanged and no run was left unfinished, index
 * entries across resizes, dry runs that change nothing, and the operation
 * log (VMSYNC_DEBUG_OPS).  What else may hold or change a target: a qemu
 * lock refuses it, a write by another program during a run leaves the
 * index dirty, a spot check distrusts an index whose blocks differ though
 * the identity matches, a source that cannot fit is refused before
 * anything is written, a target swapped for a FIFO between check and open
 * is never opened, and under --root a directory swapped for a link leads
 * no removal outside and hard links are refused.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "confine.h"
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
/* The device id the index records for the file @path (stat in @s). */
static uint64_t
fs_id(const char *path, const struct stat *s)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t id;

	assert_true(fd >= 0);
	id = vs_fs_id(fd, s->st_dev);
	close(fd);
	return id;
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
	info->src_data_bytes = 0;	/* the one field begin() reads */
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

/* Open @tgt again: its index must not be trusted ("rebuilt", every entry
 * unknown, as read into @got).  Returns the begun target (caller
 * closes). */
static struct vs_target *
reopen_untrusted(const char *tgt, const struct vs_target_opts *o,
    struct vs_target_info *info, struct vs_hash got[4])
{
	struct vs_target *t = reopen(tgt, o, 4 * BS, info);

	assert_false(info->trusted);
	assert_string_equal(st.index_state, "rebuilt");
	assert_int_equal(t->ops->summaries(t, 0, 4, got), 0);
	for (int i = 0; i < 4; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_unknown));
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

	t = reopen_untrusted(tgt, &o, &info, got);
	/* This run commits: the next one trusts the index again.  A new
	 * index has a new seed: the entries are hashed with it. */
	for (int i = 0; i < 4; i += 2)
		vs_hash_block(data + i * BS, BS, info.seed, &rec[i]);
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

	/* The index holds the target's identity as it is now, dirty, and
	 * still the old entry: entries wait for their data to be durable,
	 * which only commit() (or holding too many) makes it. */
	assert_int_equal(stat(tgt, &s), 0);
	assert_int_equal(idx_open(tpath(".t.img.vmsync-index"), false, &ix), 0);
	h = idx_header(ix, &why);
	assert_non_null(h);
	assert_true(h->flags & IDX_FLAG_DIRTY);
	assert_true(h->virtual_size == 4 * BS);
	assert_true(h->id.dev == fs_id(tgt, &s) && h->id.ino == s.st_ino &&
	    h->id.size == (uint64_t)s.st_size &&
	    h->id.mtime_sec == s.st_mtim.tv_sec &&
	    h->id.mtime_nsec == s.st_mtim.tv_nsec &&
	    h->id.ctime_sec == s.st_ctim.tv_sec &&
	    h->id.ctime_nsec == s.st_ctim.tv_nsec);
	assert_int_equal(idx_read(ix, 0, 1, got), 0);
	assert_true(vs_hash_eq(&got[0], &rec[0]));
	assert_false(vs_hash_eq(&got[0], &changed));
	idx_close(ix);

	/* So the next run must not trust it. */
	t = reopen_untrusted(tgt, &o, &info, got);
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
	/* Block 2 now holds its first 100 bytes, as the sync records. */
	vs_hash_block(data + 2 * BS, 100, info.seed, &got[3]);
	assert_int_equal(t->ops->record(t, 2, 1, &got[2], &got[3]), 0);
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
	/* Header, entries, room, and the sector records of 4 blocks. */
	static uint8_t ix1[64 * K + 4 * 8 * (1 + BS / SECTOR)], ix2[sizeof(ix1)];
	uint8_t data[4 * BS], new[BS];
	struct vs_target *t;

	(void)state;
	first_run(tgt, data, rec, true);
	assert_int_equal(size_of(ixp), sizeof(ix1));
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

/* ---- what else may hold or change the target ---- */

/* Make the index describe the target as it is now: what a write that
 * keeps the identity leaves (a device replica mounted and written, times
 * set back). */
static void
bless_index(const char *tgt)
{
	struct vs_index *ix = NULL;
	const struct idx_header *h;
	struct idx_header nh;
	const char *why;
	struct stat s;

	assert_int_equal(stat(tgt, &s), 0);
	assert_int_equal(idx_open(tpath(".t.img.vmsync-index"), true, &ix), 0);
	assert_non_null(h = idx_header(ix, &why));
	nh = *h;
	nh.id.dev = fs_id(tgt, &s);
	nh.id.ino = s.st_ino;
	nh.id.size = (uint64_t)s.st_size;
	nh.id.mtime_sec = s.st_mtim.tv_sec;
	nh.id.mtime_nsec = s.st_mtim.tv_nsec;
	nh.id.ctime_sec = s.st_ctim.tv_sec;
	nh.id.ctime_nsec = s.st_ctim.tv_nsec;
	assert_int_equal(idx_write_header(ix, &nh), 0);
	idx_close(ix);
}

/* A byte of the target changed behind the index's back at @off. */
static void
spot_case(uint64_t off, bool trusted)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4];
	uint8_t data[4 * BS], x = 0x77;
	struct vs_target *t;

	unlink(tgt);
	unlink(tpath(".t.img.vmsync-index"));
	first_run(tgt, data, rec, true);
	if (off != UINT64_MAX)
		pwrite_at(tgt, &x, 1, off);
	bless_index(tgt);
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted == trusted);
	assert_string_equal(st.index_state, trusted ? "trusted" : "rebuilt");
	assert_int_equal(st.target_read_bytes, 0);
	t->ops->close(t);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* A run's writes leave each data block a sector record of its bytes; a
 * record that holds for its entry but not for the bytes (a bug, or a
 * forgery) fails the spot check, since writes would trust it. */
static void
test_sector_records_spot_checked(void **state)
{
	const char *tgt = tpath("t.img"), *ixp = tpath(".t.img.vmsync-index");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4], e[4];
	uint64_t sec[4 * (BS / SECTOR)], seed;
	uint8_t data[4 * BS];
	bool valid[4], have = true;
	struct vs_index *ix;
	struct vs_target *t;

	(void)state;
	seed = first_run(tgt, data, rec, true);
	assert_int_equal(idx_open(ixp, true, &ix), 0);
	assert_int_equal(idx_read(ix, 0, 4, e), 0);
	assert_int_equal(idx_read_sectors(ix, 0, 4, e, sec, valid), 0);
	for (int i = 0; i < 4; i++) {
		assert_true(valid[i] == (i % 2 == 0));
		for (size_t k = 0; valid[i] && k < BS / SECTOR; k++)
			assert_true(sec[i * (BS / SECTOR) + k] == idx_sector_hash(
			    data + i * BS + k * SECTOR, SECTOR, seed));
	}
	o.dry_run = true;	/* leaves the index clean */
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	t->ops->close(t);
	sec[2 * (BS / SECTOR) + 5] ^= 1;
	assert_int_equal(idx_write_sectors(ix, 2, 1, &e[2],
	    &sec[2 * (BS / SECTOR)], &have), 0);
	idx_close(ix);
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_string_equal(st.index_state, "rebuilt");
	t->ops->close(t);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_spot_check(void **state)
{
	(void)state;
	spot_case(UINT64_MAX, true);		/* nothing changed */
	spot_case(2 * BS + 100, false);		/* the last data block */
	spot_case(5, false);			/* the first */
	spot_case(3 * BS + 7, false);		/* data in the last hole */
}

/* Pass the granularity of the filesystem's timestamps. */
static void
tick(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* Another program writes the target during a run: after the run's own
 * last write (@between false), or between two of them. */
static void
foreign_case(bool between)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash old[4], rec[4];
	uint8_t data[4 * BS], x = 0x55;
	struct vs_target *t;

	memset(data, 0, sizeof(data));
	fill(data, BS, 40);
	fill(data + 2 * BS, BS, 41);
	t = topen(tgt, &o);
	tbegin(t, 4 * BS, &info);
	assert_int_equal(t->ops->summaries(t, 0, 4, old), 0);
	assert_int_equal(t->ops->write(t, data, BS, 0), 0);
	if (between) {
		tick();
		pwrite_at(tgt, &x, 1, 3 * BS);
		tick();
	}
	assert_int_equal(t->ops->write(t, data + 2 * BS, BS, 2 * BS), 0);
	if (!between) {
		tick();
		pwrite_at(tgt, &x, 1, 3 * BS);
	}
	for (int i = 0; i < 4; i++)
		if (i % 2)
			rec[i] = vs_hash_hole;
		else
			vs_hash_block(data + i * BS, BS, info.seed, &rec[i]);
	assert_int_equal(t->ops->record(t, 0, 4, old, rec), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);

	t = reopen(tgt, &o, 4 * BS, &info);
	assert_false(info.trusted);
	assert_string_equal(st.index_state, "rebuilt");
	t->ops->close(t);
}

static void
test_foreign_write_after_last(void **state)
{
	(void)state;
	foreign_case(false);
}

static void
test_foreign_write_between(void **state)
{
	(void)state;
	foreign_case(true);
}

/* Hold an OFD read lock on byte @off of @path, as qemu does; returns the
 * descriptor holding it. */
static int
qemu_lock(const char *path, off_t off)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET,
	    .l_start = off, .l_len = 1 };
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	return fd;
}

static void
test_qemu_lock(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target *t = NULL;
	uint8_t data[BS];
	off_t offs[] = { 100, 101, 201, 203 };

	(void)state;
	fill(data, sizeof(data), 42);
	mkfile(tgt, BS, data, BS, 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		int fd = qemu_lock(tgt, offs[i]);

		o = opts();
		vs_err_reset();
		if (offs[i] == 100) {	/* read permission only: no writer */
			t = topen(tgt, &o);
			t->ops->close(t);
			close(fd);
			continue;
		}
		assert_int_equal(vs_local_open(tgt, &o, &t), -1);
		assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
		vs_err_reset();
		o.dry_run = true;		/* writes nothing */
		t = topen(tgt, &o);
		t->ops->close(t);
		o = opts();
		o.force = true;
		t = topen(tgt, &o);
		t->ops->close(t);
		close(fd);
	}
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
	log_is("");
}

static void
test_no_space(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_hash rec[4];
	uint8_t data[4 * BS], back[4 * BS];
	struct vs_target *t;

	(void)state;
	/* A new target: refused, and nothing is left behind. */
	t = topen(tgt, &o);
	memset(&info, 0, sizeof(info));
	info.src_data_bytes = 1ull << 62;
	assert_int_equal(t->ops->begin(t, 4 * BS, &info), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	t->ops->close(t);
	assert_int_equal(access(tgt, F_OK), -1);
	assert_int_equal(access(tpath(".t.img.vmsync-index"), F_OK), -1);

	/* An existing one keeps its trusted index; --force goes on. */
	vs_err_reset();
	first_run(tgt, data, rec, true);
	t = topen(tgt, &o);
	memset(&info, 0, sizeof(info));
	info.src_data_bytes = 1ull << 62;
	assert_int_equal(t->ops->begin(t, 8 * BS, &info), -1);
	t->ops->close(t);
	assert_int_equal(size_of(tgt), 4 * BS);
	read_at(tgt, back, sizeof(back), 0);
	assert_memory_equal(back, data, sizeof(back));
	vs_err_reset();
	t = reopen(tgt, &o, 4 * BS, &info);
	assert_true(info.trusted);
	t->ops->close(t);
	o.force = true;
	t = topen(tgt, &o);
	memset(&info, 0, sizeof(info));
	info.src_data_bytes = 1ull << 62;
	assert_int_equal(t->ops->begin(t, 4 * BS, &info), 0);
	t->ops->close(t);
	/* What fits is never refused, even with the target holding it. */
	vs_err_reset();
	o.force = false;
	t = topen(tgt, &o);
	memset(&info, 0, sizeof(info));
	info.src_data_bytes = 2 * BS;
	assert_int_equal(t->ops->begin(t, 4 * BS, &info), 0);
	t->ops->close(t);
}

/* Once armed, the first stat of @swap_path (lstat by name, fstat by
 * inode) renames it to orig.img and puts a FIFO in its place, as a race
 * between a check and an open would. */
static char swap_path[4200];
static ino_t swap_ino;

static void
swap_now(void)
{
	if (rename(swap_path, tpath("orig.img")) == 0)
		mkfifo(swap_path, 0600);
	swap_path[0] = '\0';
}

int
lstat(const char *path, struct stat *s)
{
	int r = fstatat(AT_FDCWD, path, s, AT_SYMLINK_NOFOLLOW);

	if (r == 0 && swap_path[0] && strcmp(path, swap_path) == 0)
		swap_now();
	return r;
}

int
fstat(int fd, struct stat *s)
{
	int r = fstatat(fd, "", s, AT_EMPTY_PATH);

	if (r == 0 && swap_path[0] && s->st_ino == swap_ino)
		swap_now();
	return r;
}

static void
test_swapped_for_fifo(void **state)
{
	const char *tgt = tpath("t.img");
	struct vs_target_opts o = opts();
	struct vs_target_info info;
	struct vs_target *t;
	uint8_t data[BS], back[BS];
	struct stat s;

	(void)state;
	fill(data, sizeof(data), 43);
	mkfile(tgt, BS, NULL, 0, 0);
	assert_int_equal(stat(tgt, &s), 0);
	swap_ino = s.st_ino;
	snprintf(swap_path, sizeof(swap_path), "%s", tgt);
	t = topen(tgt, &o);
	swap_path[0] = '\0';
	tbegin(t, BS, &info);
	assert_int_equal(t->ops->write(t, data, BS, 0), 0);
	assert_int_equal(t->ops->commit(t, NULL), 0);
	t->ops->close(t);
	/* The file that was checked got the data; the FIFO was not used. */
	assert_int_equal(lstat(tgt, &s), 0);
	assert_true(S_ISFIFO(s.st_mode));
	read_at(tpath("orig.img"), back, BS, 0);
	assert_memory_equal(back, data, BS);
}

/* In a child (confinement is for the whole process): under --root, a
 * refused target's files are removed beneath the directory that was
 * opened, even once its name leads outside; hard links are refused. */
static int
confined_child(void)
{
	struct vs_target_opts o = opts();
	struct vs_target *t = NULL;

	if (vs_confine_init(tpath("root")) < 0)
		return 10;
	if (vs_local_open("d/t.img", &o, &t) < 0)
		return 11;
	if (rename("d", "d2") < 0 || symlink("../outside", "d") < 0)
		return 12;
	t->ops->close(t);		/* never began: removes what it made */
	if (access(tpath("outside/t.img"), F_OK) < 0 ||
	    access(tpath("outside/.t.img.vmsync-index"), F_OK) < 0)
		return 13;		/* removed outside */
	if (access("d2/t.img", F_OK) == 0 ||
	    access("d2/.t.img.vmsync-index", F_OK) == 0)
		return 14;		/* left behind */
	vs_err_reset();
	if (vs_local_open("d2/hl.img", &o, &t) == 0 ||
	    vs_err_first() != VS_EXIT_TARGET)
		return 15;
	vs_err_reset();
	if (vs_local_open("d2/ok.img", &o, &t) == 0 ||
	    vs_err_first() != VS_EXIT_TARGET)
		return 16;
	return 0;
}

static void
test_confined_names(void **state)
{
	uint8_t data[BS];
	int status;
	pid_t pid;

	(void)state;
	fill(data, sizeof(data), 44);
	assert_int_equal(mkdir(tpath("root"), 0755), 0);
	assert_int_equal(mkdir(tpath("root/d"), 0755), 0);
	assert_int_equal(mkdir(tpath("outside"), 0755), 0);
	mkfile(tpath("outside/t.img"), BS, data, BS, 0);
	mkfile(tpath("outside/.t.img.vmsync-index"), BS, data, BS, 0);
	assert_int_equal(link(tpath("outside/t.img"),
	    tpath("root/d/hl.img")), 0);
	mkfile(tpath("root/d/ok.img"), BS, data, BS, 0);
	assert_int_equal(link(tpath("outside/.t.img.vmsync-index"),
	    tpath("root/d/.ok.img.vmsync-index")), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(confined_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Outside is as it was. */
	assert_int_equal(size_of(tpath("outside/t.img")), BS);
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
		T(test_spot_check),
		T(test_sector_records_spot_checked),
		T(test_foreign_write_after_last),
		T(test_foreign_write_between),
		T(test_qemu_lock),
		T(test_no_space),
		T(test_swapped_for_fifo),
		T(test_confined_names),
	};
#undef T

	return cmocka_run_group_tests_name("local", tests, NULL, NULL);
}
