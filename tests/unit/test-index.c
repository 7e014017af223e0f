/*
 * test-index.c - the target hash index (src/index.c): header encoding and
 * every validation branch of the decoder, entry counts, and the file
 * operations on a temporary index (holes past the end, writes of changed
 * entries only, missing files, symbolic links); when an index is trusted
 * (each rule, the spot check asked only when the header passes), what a
 * run begins from, the dirty mark and resize before the first change, and
 * the order of a clean commit.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"
#include "vmsync.h"

/* ---- utilities ---- */

static void
le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* Recompute the header checksum (XXH3-64 of bytes 0..151 at 152), written
 * out here rather than taken from index.c: an independent reading of the
 * format. */
static void
reseal(uint8_t *buf)
{
	le64(buf + 152, XXH3_64bits(buf, 152));
}

static struct idx_header
sample_header(void)
{
	struct idx_header h = {
		.version = IDX_VERSION,
		.block_size = 65536,
		.flags = IDX_FLAG_DIRTY,
		.virtual_size = (1ull << 30) + 4096,
		.seed = 0x0123456789abcdefull,
		.id = {
			.dev = 0x801, .ino = 123456789, .size = (1ull << 30) + 4096,
			.mtime_sec = 1700000000, .mtime_nsec = 123456789,
			.ctime_sec = -5, .ctime_nsec = 999999999,
			.medium = 0x1122334455667788ull,
		},
		.view = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
		    16 } },
		.format = "qcow2",
		.sector_off = 1ull << 32,
	};

	return h;
}

/* Decode @buf; expect failure with a reason containing @want. */
static void
decode_fails(const uint8_t *buf, size_t len, const char *want)
{
	struct idx_header h;
	const char *why = NULL;

	if (idx_header_decode(buf, len, &h, &why) != -1)
		fail_msg("decode accepted a header that should fail with "
		    "\"%s\"", want);
	assert_non_null(why);
	if (!strstr(why, want))
		fail_msg("decode said \"%s\", want a reason with \"%s\"", why,
		    want);
}

static struct vs_hash
mkhash(unsigned k)
{
	struct vs_hash h;

	for (size_t i = 0; i < VS_HASH_LEN; i++)
		h.b[i] = (uint8_t)(k * 31 + i + 1);
	return h;
}

static int
setup_tmp(void **state)
{
	(void)state;
	vs_err_reset();
	return unit_mktmp("index");
}

static int
teardown_tmp(void **state)
{
	(void)state;
	vs_err_reset();
	return unit_rmtmp();
}
/* Read @len bytes of @path at @off into @buf; returns bytes read. */
static ssize_t
file_read(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY);
	ssize_t r;

	assert_true(fd >= 0);
	r = pread(fd, buf, len, off);
	close(fd);
	return r;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* ---- header encoding ---- */

static void
test_header_round_trip(void **state)
{
	struct idx_header h = sample_header(), d;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	idx_header_encode(&h, buf);
	memset(&d, 0x5a, sizeof(d));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &d, &why), 0);
	assert_int_equal(d.version, h.version);
	assert_int_equal(d.block_size, h.block_size);
	assert_int_equal(d.flags, h.flags);
	assert_true(d.virtual_size == h.virtual_size);
	assert_true(d.seed == h.seed);
	assert_true(idx_identity_eq(&d.id, &h.id));
	assert_true(d.id.ctime_sec == -5);
	assert_string_equal(d.format, "qcow2");

	/* Clean header, smallest and largest block sizes. */
	h.flags = 0;
	h.block_size = IDX_MIN_BLOCK;
	idx_header_encode(&h, buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &d, &why), 0);
	assert_int_equal(d.flags, 0);
	assert_int_equal(d.block_size, IDX_MIN_BLOCK);
	h.block_size = IDX_MAX_BLOCK;
	h.virtual_size = 0;
	idx_header_encode(&h, buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &d, &why), 0);
	assert_int_equal(d.block_size, IDX_MAX_BLOCK);
	assert_true(d.virtual_size == 0);
}

static void
test_header_layout(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	assert_memory_equal(buf, "VMSYNCIX", 8);
	assert_int_equal(rd32(buf + 8), IDX_VERSION);
	assert_int_equal(rd32(buf + 12), IDX_HEADER_SIZE);
	assert_int_equal(rd32(buf + 16), 65536);
	assert_int_equal(rd32(buf + 20), IDX_FLAG_DIRTY);
	assert_true(rd64(buf + 24) == h.virtual_size);
	assert_true(rd64(buf + 32) == h.seed);
	assert_true(rd64(buf + 40) == h.id.dev);
	assert_true(rd64(buf + 48) == h.id.ino);
	assert_true(rd64(buf + 56) == h.id.size);
	assert_true(rd64(buf + 64) == (uint64_t)h.id.mtime_sec);
	assert_true(rd64(buf + 72) == (uint64_t)h.id.mtime_nsec);
	assert_true(rd64(buf + 80) == (uint64_t)h.id.ctime_sec);
	assert_true(rd64(buf + 88) == (uint64_t)h.id.ctime_nsec);
	assert_true(rd64(buf + 96) == (1ull << 14) + 1);	/* entries */
	assert_true(rd64(buf + 104) == h.id.medium);
	assert_memory_equal(buf + 112, h.view.b, 16);
	assert_memory_equal(buf + 128, "qcow2\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_true(rd64(buf + 144) == h.sector_off);
	assert_true(rd64(buf + 152) == XXH3_64bits(buf, 152));
	for (size_t i = 160; i < sizeof(buf); i++)
		if (buf[i])
			fail_msg("byte %zu of the header is not zero", i);
	/* The names the tests and helpers use for this layout. */
	assert_int_equal(IDX_OFF_VERSION, 8);
	assert_int_equal(IDX_OFF_HEADER_SIZE, 12);
	assert_int_equal(IDX_OFF_BLOCK_SIZE, 16);
	assert_int_equal(IDX_OFF_FLAGS, 20);
	assert_int_equal(IDX_OFF_VIRTUAL_SIZE, 24);
	assert_int_equal(IDX_OFF_SEED, 32);
	assert_int_equal(IDX_OFF_DEV, 40);
	assert_int_equal(IDX_OFF_INO, 48);
	assert_int_equal(IDX_OFF_SIZE, 56);
	assert_int_equal(IDX_OFF_MTIME_SEC, 64);
	assert_int_equal(IDX_OFF_MTIME_NSEC, 72);
	assert_int_equal(IDX_OFF_CTIME_SEC, 80);
	assert_int_equal(IDX_OFF_CTIME_NSEC, 88);
	assert_int_equal(IDX_OFF_ENTRIES, 96);
	assert_int_equal(IDX_OFF_MEDIUM, 104);
	assert_int_equal(IDX_OFF_VIEW, 112);
	assert_int_equal(IDX_OFF_FORMAT, 128);
	assert_int_equal(IDX_OFF_SECTORS, 144);
	assert_int_equal(IDX_OFF_CSUM, 152);
	assert_int_equal(IDX_OFF_CSUM_V1, 112);
	assert_int_equal(IDX_OFF_CSUM_V2, 128);
	assert_int_equal(IDX_OFF_CSUM_V3, 144);
}

/* idx_header_seal() makes a changed header valid again, with the checksum
 * where its version keeps it. */
static void
test_header_seal(void **state)
{
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE], copy[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	idx_header_encode(&h, buf);
	memcpy(copy, buf, sizeof(buf));
	idx_header_seal(buf);
	assert_memory_equal(buf, copy, sizeof(buf));
	le64(buf + IDX_OFF_SEED, 42);
	decode_fails(buf, sizeof(buf), "checksum");
	idx_header_seal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_true(out.seed == 42);
	le32(buf + IDX_OFF_VERSION, 1);
	idx_header_seal(buf);
	assert_true(rd64(buf + IDX_OFF_CSUM_V1) ==
	    XXH3_64bits(buf, IDX_OFF_CSUM_V1));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 1);
	le32(buf + IDX_OFF_VERSION, 2);
	idx_header_seal(buf);
	assert_true(rd64(buf + IDX_OFF_CSUM_V2) ==
	    XXH3_64bits(buf, IDX_OFF_CSUM_V2));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 2);
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_VERSION, 3);
	idx_header_seal(buf);
	assert_true(rd64(buf + IDX_OFF_CSUM_V3) ==
	    XXH3_64bits(buf, IDX_OFF_CSUM_V3));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 3);
}

/* A version 3 header (no sector records, checksum at 144) is still read,
 * as having no sector records. */
static void
test_decode_version3(void **state)
{
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_VERSION, 3);
	memset(buf + IDX_OFF_CSUM_V3, 0, 16);
	le64(buf + IDX_OFF_CSUM_V3, XXH3_64bits(buf, IDX_OFF_CSUM_V3));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 3);
	assert_true(out.sector_off == 0);
	assert_string_equal(out.format, "qcow2");
}

/* The sector records must start on a 4 KiB boundary past the entries and
 * end below the largest file offset. */
static void
test_decode_sector_offset(void **state)
{
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;
	/* Inside the header, unaligned, over the entries, past the largest
	 * file offset, wrapping around. */
	const uint64_t bad[] = { 4096, (1u << 20) + 8, 1u << 18,
	    INT64_MAX - 4095, UINT64_MAX - 4095 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		idx_header_encode(&h, buf);
		le64(buf + IDX_OFF_SECTORS, bad[i]);
		reseal(buf);
		decode_fails(buf, sizeof(buf), "sector record offset");
	}
	/* Right after the entries, aligned: fine; and 0 means none. */
	idx_header_encode(&h, buf);
	le64(buf + IDX_OFF_SECTORS, 4096 + 65 * 4096);
	reseal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	le64(buf + IDX_OFF_SECTORS, 0);
	reseal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_true(out.sector_off == 0);
}

/* A version 2 header (no source format, checksum at 128) is still read,
 * as recording no format. */
static void
test_decode_version2(void **state)
{
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_VERSION, 2);
	memset(buf + IDX_OFF_CSUM_V2, 0, 24);
	le64(buf + IDX_OFF_CSUM_V2, XXH3_64bits(buf, IDX_OFF_CSUM_V2));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 2);
	assert_memory_equal(out.view.b, h.view.b, 16);
	assert_string_equal(out.format, "");
}

/* The recorded format is a short lower-case name, NUL-padded: anything
 * else is refused, so it can be printed and compared as it is. */
static void
test_decode_format(void **state)
{
	static const char *const bad[] = { "QCOW2", "qc ow2", "raw\n",
	    "raw\033[2J", "abcdefghijklmnop" };
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		idx_header_encode(&h, buf);
		memset(buf + IDX_OFF_FORMAT, 0, IDX_FORMAT_LEN);
		memcpy(buf + IDX_OFF_FORMAT, bad[i], strlen(bad[i]));
		reseal(buf);
		decode_fails(buf, sizeof(buf), "format");
	}
	/* Bytes after the terminating NUL. */
	idx_header_encode(&h, buf);
	buf[IDX_OFF_FORMAT + 7] = 'x';
	reseal(buf);
	decode_fails(buf, sizeof(buf), "format");
	/* Empty and the longest name fit. */
	memset(buf + IDX_OFF_FORMAT, 0, IDX_FORMAT_LEN);
	reseal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_string_equal(out.format, "");
	memcpy(buf + IDX_OFF_FORMAT, "abcdefghijklmno", 15);
	reseal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_string_equal(out.format, "abcdefghijklmno");
}

/* A version 1 header (no view id, checksum at 112) is still read, as
 * synced from no view. */
static void
test_decode_version1(void **state)
{
	struct idx_header h = sample_header(), out;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_VERSION, 1);
	memset(buf + IDX_OFF_CSUM_V1, 0, 24);
	le64(buf + IDX_OFF_CSUM_V1, XXH3_64bits(buf, IDX_OFF_CSUM_V1));
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_int_equal(out.version, 1);
	assert_true(out.seed == h.seed);
	assert_true(vs_hash_eq(&out.view, &vs_hash_hole));
	/* Written again, it is the current version with the view. */
	out.view = h.view;
	idx_header_encode(&out, buf);
	assert_int_equal(rd32(buf + IDX_OFF_VERSION), IDX_VERSION);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &out, &why), 0);
	assert_memory_equal(out.view.b, h.view.b, 16);
}

static void
test_decode_truncated(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	decode_fails(buf, 0, "truncated");
	decode_fails(buf, 112, "truncated");
	decode_fails(buf, IDX_HEADER_SIZE - 1, "truncated");
}

static void
test_decode_bad_magic(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	buf[0] = 'v';
	reseal(buf);
	decode_fails(buf, sizeof(buf), "magic");
	memset(buf, 0, sizeof(buf));
	decode_fails(buf, sizeof(buf), "magic");
}

static void
test_decode_checksum(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	buf[IDX_OFF_SEED + 1] ^= 0x10;
	decode_fails(buf, sizeof(buf), "checksum");
	buf[IDX_OFF_SEED + 1] ^= 0x10;
	buf[IDX_OFF_CSUM + 1] ^= 1;	/* the checksum itself */
	decode_fails(buf, sizeof(buf), "checksum");
	buf[IDX_OFF_CSUM + 1] ^= 1;
	buf[IDX_OFF_CSUM - 1] ^= 0x80;	/* last covered byte */
	decode_fails(buf, sizeof(buf), "checksum");
}

static void
test_decode_version(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_VERSION, IDX_VERSION + 1);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "version");
	le32(buf + IDX_OFF_VERSION, 0);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "version");
}

static void
test_decode_header_size(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_HEADER_SIZE, 512);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "header size");
	le32(buf + IDX_OFF_HEADER_SIZE, 8192);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "header size");
}

/* A header with block size @bs (entry count made to match). */
static void
with_block_size(uint8_t *buf, uint32_t bs)
{
	struct idx_header h = sample_header();

	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_BLOCK_SIZE, bs);
	if (bs)
		le64(buf + IDX_OFF_ENTRIES, h.virtual_size / bs + !!(h.virtual_size % bs));
	reseal(buf);
}

static void
test_decode_block_size(void **state)
{
	uint8_t buf[IDX_HEADER_SIZE];
	struct idx_header d;
	const char *why;

	(void)state;
	with_block_size(buf, 3 * 4096);		/* not a power of two */
	decode_fails(buf, sizeof(buf), "block size");
	with_block_size(buf, 65537);
	decode_fails(buf, sizeof(buf), "block size");
	with_block_size(buf, 2048);		/* too small */
	decode_fails(buf, sizeof(buf), "block size");
	with_block_size(buf, 0);
	decode_fails(buf, sizeof(buf), "block size");
	with_block_size(buf, 8u << 20);		/* too large */
	decode_fails(buf, sizeof(buf), "block size");
	with_block_size(buf, 1u << 31);
	decode_fails(buf, sizeof(buf), "block size");
	/* with_block_size() itself makes valid headers. */
	with_block_size(buf, 1u << 20);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &d, &why), 0);
	assert_int_equal(d.block_size, 1u << 20);
}

static void
test_decode_flags(void **state)
{
	struct idx_header h = sample_header(), d;
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why;

	(void)state;
	idx_header_encode(&h, buf);
	le32(buf + IDX_OFF_FLAGS, IDX_FLAG_DIRTY | 0x2);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "flags");
	le32(buf + IDX_OFF_FLAGS, 0x80000000u);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "flags");
	le32(buf + IDX_OFF_FLAGS, IDX_FLAG_DIRTY);
	reseal(buf);
	assert_int_equal(idx_header_decode(buf, sizeof(buf), &d, &why), 0);
	assert_int_equal(d.flags, IDX_FLAG_DIRTY);
}

static void
test_decode_entry_count(void **state)
{
	struct idx_header h = sample_header();
	uint8_t buf[IDX_HEADER_SIZE];

	(void)state;
	idx_header_encode(&h, buf);
	le64(buf + IDX_OFF_ENTRIES, rd64(buf + IDX_OFF_ENTRIES) + 1);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "entry count");
	le64(buf + IDX_OFF_ENTRIES, 0);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "entry count");
	/* The virtual size grows past what the count covers. */
	idx_header_encode(&h, buf);
	le64(buf + IDX_OFF_VIRTUAL_SIZE, h.virtual_size + 65536);
	reseal(buf);
	decode_fails(buf, sizeof(buf), "entry count");
}

static void
test_nblocks(void **state)
{
	(void)state;
	assert_true(idx_nblocks(0, 4096) == 0);
	assert_true(idx_nblocks(1, 4096) == 1);
	assert_true(idx_nblocks(4095, 4096) == 1);
	assert_true(idx_nblocks(4096, 4096) == 1);
	assert_true(idx_nblocks(4097, 4096) == 2);
	assert_true(idx_nblocks(1ull << 30, 65536) == 16384);
	assert_true(idx_nblocks((1ull << 30) + 1, 65536) == 16385);
	assert_true(idx_nblocks(UINT64_MAX, 4096) == 1ull << 52);
	assert_true(idx_nblocks(UINT64_MAX, IDX_MAX_BLOCK) == 1ull << 42);
	assert_true(idx_nblocks(UINT64_MAX - 4095, 4096) == (1ull << 52) - 1);
	assert_true(idx_nblocks(UINT64_MAX - 4094, 4096) == 1ull << 52);
}

static void
test_identity_eq(void **state)
{
	struct idx_header h = sample_header();
	struct idx_identity a = h.id, b = h.id;

	(void)state;
	assert_true(idx_identity_eq(&a, &b));
	b.dev++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.ino++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.size++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.mtime_sec++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.mtime_nsec++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.ctime_sec++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.ctime_nsec++;
	assert_false(idx_identity_eq(&a, &b));
	b = a, b.medium++;
	assert_false(idx_identity_eq(&a, &b));
}

/* ---- files ---- */

static void
test_open_missing(void **state)
{
	struct vs_index *ix = (struct vs_index *)&ix;

	(void)state;
	assert_int_equal(idx_open(tpath("nothing"), false, &ix), 0);
	assert_null(ix);
	assert_int_equal(access(tpath("nothing"), F_OK), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
	/* Missing directory, create=false: still no index, no error. */
	assert_int_equal(idx_open(tpath("no/such"), false, &ix), 0);
	assert_null(ix);
	/* Missing directory, create=true: an error of the target. */
	assert_int_equal(idx_open(tpath("no/such"), true, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
}

static void
test_open_create_empty(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	const char *why = NULL;
	struct stat st;

	(void)state;
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_non_null(ix);
	assert_null(idx_header(ix, &why));
	assert_non_null(why);
	assert_non_null(strstr(why, "empty"));
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	idx_close(ix);
	idx_close(NULL);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_write_header_reopen(void **state)
{
	const char *p = tpath("ix");
	struct idx_header h = sample_header();
	const struct idx_header *got;
	struct vs_index *ix = NULL;
	uint8_t disk[IDX_HEADER_SIZE], want[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	h.virtual_size = h.id.size = 10 * 65536 + 1;
	h.sector_off = 0;	/* entries only */
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_write_header(ix, &h), 0);
	/* The header is now the in-memory one too. */
	got = idx_header(ix, &why);
	assert_non_null(got);
	assert_true(got->seed == h.seed);
	idx_close(ix);
	assert_int_equal(truncate(p, IDX_HEADER_SIZE + 11 * VS_HASH_LEN), 0);

	assert_int_equal(file_size(p), IDX_HEADER_SIZE + 11 * VS_HASH_LEN);
	assert_int_equal(file_read(p, disk, sizeof(disk), 0), sizeof(disk));
	idx_header_encode(&h, want);
	assert_memory_equal(disk, want, sizeof(disk));

	assert_int_equal(idx_open(p, false, &ix), 0);
	assert_non_null(ix);
	got = idx_header(ix, &why);
	assert_non_null(got);
	assert_int_equal(got->block_size, 65536);
	assert_true(got->virtual_size == h.virtual_size);
	assert_true(got->seed == h.seed);
	assert_int_equal(got->flags, IDX_FLAG_DIRTY);
	assert_true(idx_identity_eq(&got->id, &h.id));
	idx_close(ix);
}

static void
test_open_short_file(void **state)
{
	const char *p = tpath("ix");
	struct idx_header h = sample_header();
	struct vs_index *ix = NULL;
	const char *why = NULL;

	(void)state;
	h.virtual_size = 10 * 65536;
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_write_header(ix, &h), 0);
	idx_close(ix);
	/* One short. */
	assert_int_equal(truncate(p, IDX_HEADER_SIZE + 9 * VS_HASH_LEN), 0);
	assert_int_equal(idx_open(p, false, &ix), 0);
	assert_null(idx_header(ix, &why));
	assert_non_null(strstr(why, "shorter"));
	idx_close(ix);

	/* A header cut in the middle. */
	assert_int_equal(truncate(p, 100), 0);
	assert_int_equal(idx_open(p, false, &ix), 0);
	assert_null(idx_header(ix, &why));
	assert_non_null(strstr(why, "truncated"));
	idx_close(ix);

	/* Garbage. */
	{
		int fd = open(p, O_WRONLY | O_TRUNC);
		char junk[IDX_HEADER_SIZE + 64];

		memset(junk, 'x', sizeof(junk));
		assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
		close(fd);
	}
	assert_int_equal(idx_open(p, false, &ix), 0);
	assert_null(idx_header(ix, &why));
	assert_non_null(strstr(why, "magic"));
	idx_close(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_read_past_end_is_hole(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash e[8], got[6];

	(void)state;
	for (unsigned i = 0; i < 8; i++)
		e[i] = mkhash(i);
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 4), 0);
	assert_int_equal(idx_write(ix, 0, 4, NULL, e), 0);

	memset(got, 0x77, sizeof(got));
	assert_int_equal(idx_read(ix, 2, 6, got), 0);
	assert_memory_equal(&got[0], &e[2], VS_HASH_LEN);
	assert_memory_equal(&got[1], &e[3], VS_HASH_LEN);
	for (int i = 2; i < 6; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_hole));

	/* Wholly past the end, and far past it. */
	memset(got, 0x77, sizeof(got));
	assert_int_equal(idx_read(ix, 4, 3, got), 0);
	for (int i = 0; i < 3; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_hole));
	memset(got, 0x77, sizeof(got));
	assert_int_equal(idx_read(ix, 1ull << 40, 2, got), 0);
	assert_true(vs_hash_eq(&got[0], &vs_hash_hole));
	assert_true(vs_hash_eq(&got[1], &vs_hash_hole));

	/* A freshly grown index reads as holes. */
	assert_int_equal(idx_resize(ix, 8), 0);
	memset(got, 0x77, sizeof(got));
	assert_int_equal(idx_read(ix, 3, 3, got), 0);
	assert_memory_equal(&got[0], &e[3], VS_HASH_LEN);
	assert_true(vs_hash_eq(&got[1], &vs_hash_hole));
	assert_true(vs_hash_eq(&got[2], &vs_hash_hole));
	idx_close(ix);
}

static void
test_held_writes(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash e[8], got[8], file[8];
	unsigned runs = 0;
	int fd;

	(void)state;
	for (unsigned i = 0; i < 8; i++)
		e[i] = mkhash(i);
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 8), 0);
	assert_int_equal(idx_write(ix, 0, 2, NULL, e), 0);
	idx_hold(ix);
	/* Held: reads see the writes (the later over the earlier), the file
	 * does not have them. */
	assert_int_equal(idx_write(ix, 2, 4, NULL, e + 2), 0);
	assert_int_equal(idx_write(ix, 3, 1, NULL, e + 7), 0);
	assert_int_equal(idx_read(ix, 0, 8, got), 0);
	assert_true(vs_hash_eq(&got[1], &e[1]) && vs_hash_eq(&got[2], &e[2]) &&
	    vs_hash_eq(&got[3], &e[7]) && vs_hash_eq(&got[5], &e[5]) &&
	    vs_hash_eq(&got[6], &vs_hash_hole));
	assert_true((fd = open(p, O_RDONLY)) >= 0);
	assert_int_equal(pread(fd, file, sizeof(file), IDX_HEADER_SIZE),
	    (ssize_t)sizeof(file));
	assert_true(vs_hash_eq(&file[1], &e[1]));
	for (int i = 2; i < 6; i++)
		assert_true(vs_hash_eq(&file[i], &vs_hash_hole));
	/* Released: in the file, in the order written. */
	assert_false(idx_held_full(ix));
	assert_int_equal(idx_release(ix), 0);
	assert_int_equal(pread(fd, file, sizeof(file), IDX_HEADER_SIZE),
	    (ssize_t)sizeof(file));
	assert_memory_equal(file, got, sizeof(file));
	/* Still held afterwards; full after enough separate runs. */
	assert_int_equal(idx_write(ix, 7, 1, NULL, e), 0);
	assert_int_equal(pread(fd, file, sizeof(file), IDX_HEADER_SIZE),
	    (ssize_t)sizeof(file));
	assert_true(vs_hash_eq(&file[7], &vs_hash_hole));
	while (!idx_held_full(ix) && runs < 100000)
		assert_int_equal(idx_write(ix, (runs++ & 1) * 2, 1, NULL, e + 4),
		    0);
	assert_true(idx_held_full(ix));
	assert_true(runs < 100000);
	/* Closing drops what is held. */
	idx_close(ix);
	assert_int_equal(pread(fd, file, sizeof(file), IDX_HEADER_SIZE),
	    (ssize_t)sizeof(file));
	assert_true(vs_hash_eq(&file[7], &vs_hash_hole));
	assert_true(vs_hash_eq(&file[0], &e[0]));
	close(fd);
}

static void
test_resize_drops_entries(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash e[8], got[8];

	(void)state;
	for (unsigned i = 0; i < 8; i++)
		e[i] = mkhash(i + 100);
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 8), 0);
	assert_int_equal(idx_write(ix, 0, 8, NULL, e), 0);
	assert_int_equal(idx_resize(ix, 2), 0);
	assert_int_equal(file_size(p), IDX_HEADER_SIZE + 2 * VS_HASH_LEN);
	assert_int_equal(idx_resize(ix, 8), 0);
	assert_int_equal(file_size(p), IDX_HEADER_SIZE + 8 * VS_HASH_LEN);
	assert_int_equal(idx_read(ix, 0, 8, got), 0);
	assert_memory_equal(got, e, 2 * VS_HASH_LEN);
	for (int i = 2; i < 8; i++)
		assert_true(vs_hash_eq(&got[i], &vs_hash_hole));
	assert_int_equal(idx_resize(ix, 0), 0);
	assert_int_equal(file_size(p), IDX_HEADER_SIZE);
	/* A size whose byte count overflows is refused. */
	assert_int_equal(idx_resize(ix, UINT64_MAX / 8), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	idx_close(ix);
}

static void
test_write_only_changes(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash old[8], new[8], disk[8], marker;
	int fd;

	(void)state;
	for (unsigned i = 0; i < 8; i++)
		old[i] = new[i] = mkhash(i);
	new[1] = mkhash(201);
	new[2] = mkhash(202);
	new[6] = vs_hash_unknown;
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 8), 0);
	assert_int_equal(idx_write(ix, 0, 8, NULL, old), 0);

	/* Overwrite every entry on disk behind the index's back: whatever
	 * idx_write leaves alone keeps the marker. */
	memset(&marker, 0xcc, sizeof(marker));
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pwrite(fd, &marker, VS_HASH_LEN,
		    IDX_HEADER_SIZE + i * VS_HASH_LEN), VS_HASH_LEN);
	close(fd);

	assert_int_equal(idx_write(ix, 0, 8, old, new), 0);
	idx_close(ix);
	assert_int_equal(file_read(p, disk, sizeof(disk), IDX_HEADER_SIZE),
	    sizeof(disk));
	for (int i = 0; i < 8; i++) {
		const struct vs_hash *want = (i == 1 || i == 2 || i == 6) ?
		    &new[i] : &marker;

		if (!vs_hash_eq(&disk[i], want))
			fail_msg("entry %d: %s", i, want == &marker ?
			    "written although unchanged" : "not written");
	}
}

static void
test_write_offset(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash old[3], new[3], got[10];

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		old[i] = mkhash(i);
		new[i] = mkhash(i + 50);
	}
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 10), 0);
	assert_int_equal(idx_write(ix, 5, 3, old, new), 0);
	assert_int_equal(idx_read(ix, 0, 10, got), 0);
	for (int i = 0; i < 10; i++) {
		if (i >= 5 && i < 8)
			assert_memory_equal(&got[i], &new[i - 5], VS_HASH_LEN);
		else
			assert_true(vs_hash_eq(&got[i], &vs_hash_hole));
	}
	/* Nothing to write: no change at all. */
	assert_int_equal(idx_write(ix, 5, 3, new, new), 0);
	assert_int_equal(idx_write(ix, 0, 0, NULL, new), 0);
	assert_int_equal(file_size(p), IDX_HEADER_SIZE + 10 * VS_HASH_LEN);
	idx_close(ix);
}

static void
test_write_null_old_skips_holes(void **state)
{
	const char *p = tpath("ix");
	struct vs_index *ix = NULL;
	struct vs_hash new[4], disk[4];
	uint8_t fill[4 * VS_HASH_LEN];
	int fd;

	(void)state;
	assert_int_equal(idx_open(p, true, &ix), 0);
	assert_int_equal(idx_resize(ix, 4), 0);
	memset(fill, 0xaa, sizeof(fill));
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, fill, sizeof(fill), IDX_HEADER_SIZE),
	    sizeof(fill));
	close(fd);
	new[0] = mkhash(1);
	new[1] = vs_hash_hole;
	new[2] = vs_hash_hole;
	new[3] = mkhash(3);
	/* NULL old means "the file holds holes": hole entries are skipped. */
	assert_int_equal(idx_write(ix, 0, 4, NULL, new), 0);
	idx_close(ix);
	assert_int_equal(file_read(p, disk, sizeof(disk), IDX_HEADER_SIZE),
	    sizeof(disk));
	assert_true(vs_hash_eq(&disk[0], &new[0]));
	assert_memory_equal(&disk[1], fill, VS_HASH_LEN);
	assert_memory_equal(&disk[2], fill, VS_HASH_LEN);
	assert_true(vs_hash_eq(&disk[3], &new[3]));
}

static void
test_symlink_refused(void **state)
{
	const char *real = tpath("real"), *link = tpath("link");
	struct idx_header h = sample_header();
	struct vs_index *ix = NULL;
	uint8_t before[IDX_HEADER_SIZE], after[IDX_HEADER_SIZE];

	(void)state;
	assert_int_equal(idx_open(real, true, &ix), 0);
	assert_int_equal(idx_write_header(ix, &h), 0);
	idx_close(ix);
	assert_int_equal(file_read(real, before, sizeof(before), 0),
	    sizeof(before));
	assert_int_equal(symlink("real", link), 0);

	ix = (struct vs_index *)&ix;
	assert_int_equal(idx_open(link, false, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	vs_err_reset();
	assert_int_equal(idx_open(link, true, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	/* A dangling link is not followed to create its target either. */
	vs_err_reset();
	assert_int_equal(symlink("absent", tpath("dangling")), 0);
	assert_int_equal(idx_open(tpath("dangling"), true, &ix), -1);
	assert_int_equal(access(tpath("absent"), F_OK), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);

	assert_int_equal(file_read(real, after, sizeof(after), 0),
	    sizeof(after));
	assert_memory_equal(before, after, sizeof(before));
}

static volatile sig_atomic_t alarmed;

static void
on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

/* Run idx_open(@path, @create) with a one-second alarm: an open that
 * blocks is interrupted (EINTR) and the case fails instead of hanging. */
static int
open_guarded(const char *path, bool create, struct vs_index **ix)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	int r;

	alarmed = 0;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	alarm(1);
	r = idx_open(path, create, ix);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	if (alarmed)
		fail_msg("idx_open(%s, create=%d) blocked", path, (int)create);
	return r;
}

static void
test_directory_refused(void **state)
{
	struct vs_index *ix = NULL;

	(void)state;
	assert_int_equal(mkdir(tpath("dir"), 0700), 0);
	assert_int_equal(idx_open(tpath("dir"), false, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	vs_err_reset();
	assert_int_equal(idx_open(tpath("dir"), true, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
}

static void
test_fifo_refused(void **state)
{
	struct vs_index *ix = NULL;

	(void)state;
	assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
	assert_int_equal(open_guarded(tpath("fifo"), true, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	vs_err_reset();
	/* Read-only (a dry run): must not wait for a writer. */
	assert_int_equal(open_guarded(tpath("fifo"), false, &ix), -1);
	assert_null(ix);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
}

/* ---- trust, begin, commit ---- */

/* A clean sample header and a target it describes. */
static struct idx_header
clean_header(void)
{
	struct idx_header h = sample_header();

	h.flags = 0;
	h.sector_off = 0;	/* the file holds entries only */
	return h;
}

static struct idx_target
target_of(const struct idx_header *h)
{
	struct idx_target t = {
		.id = h->id,
		.size = h->virtual_size,
	};

	return t;
}

static void
mismatch_is(const struct idx_header *h, const struct idx_target *t,
    const char *want)
{
	const char *why = idx_mismatch(h, t);

	if (!want && why)
		fail_msg("index refused (%s), want it trusted", why);
	if (want && (!why || !strstr(why, want)))
		fail_msg("index %s, want \"%s\"", why ? why : "trusted", want);
}

static void
test_mismatch_rules(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t = target_of(&h);

	(void)state;
	mismatch_is(&h, &t, NULL);
	t.checksum = true;
	mismatch_is(&h, &t, "--checksum");
	t = target_of(&h);
	h.flags = IDX_FLAG_DIRTY;
	mismatch_is(&h, &t, "did not finish");
	h = clean_header();
	t.id.ctime_nsec++;
	mismatch_is(&h, &t, "changed since the last run");
	t = target_of(&h);
	t.id.medium++;
	mismatch_is(&h, &t, "changed since the last run");
	t = target_of(&h);
	t.size++;
	mismatch_is(&h, &t, "target's size");
	t = target_of(&h);
	t.block_size = h.block_size * 2;
	mismatch_is(&h, &t, "--block-size");
	t.block_size = h.block_size;
	mismatch_is(&h, &t, NULL);
}

/* A device may be larger than the index (the source was shorter), never
 * smaller. */
static void
test_mismatch_device_size(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t = target_of(&h);

	(void)state;
	t.is_block = true;
	t.size = h.virtual_size + (1ull << 30);
	mismatch_is(&h, &t, NULL);
	t.size = h.virtual_size - 1;
	mismatch_is(&h, &t, "larger than the device");
}

/* The first rule that fails names the reason: --checksum, then dirty,
 * then identity. */
static void
test_mismatch_order(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t = target_of(&h);

	(void)state;
	h.flags = IDX_FLAG_DIRTY;
	t.id.ino++;
	t.size++;
	mismatch_is(&h, &t, "did not finish");
	t.checksum = true;
	mismatch_is(&h, &t, "--checksum");
	h.flags = 0;
	t.checksum = false;
	mismatch_is(&h, &t, "changed since the last run");
}

/* A stand-in spot check: counts calls, answers @spot_answer. */
static int spot_calls;
static int spot_rc;
static uint64_t spot_answer;

static int
fake_spot(void *arg, const struct idx_header *h, uint64_t *bad)
{
	(void)arg;
	assert_non_null(h);
	spot_calls++;
	*bad = spot_answer;
	return spot_rc;
}

/* An index at tmpdir/ix holding @h and its (hole) entries, open for
 * writing. */
static struct vs_index *
index_with(const struct idx_header *h)
{
	struct vs_index *ix = NULL;

	assert_int_equal(idx_open(tpath("ix"), true, &ix), 0);
	assert_int_equal(idx_write_header(ix, h), 0);
	assert_int_equal(idx_resize(ix, idx_nblocks(h->virtual_size,
	    h->block_size)), 0);
	idx_close(ix);
	/* Opened again, to be judged as read from the file. */
	assert_int_equal(idx_open(tpath("ix"), true, &ix), 0);
	assert_non_null(ix);
	return ix;
}

static struct idx_verdict
judge(const struct vs_index *ix, struct idx_target *t)
{
	struct idx_verdict v;

	t->spot_check = fake_spot;
	assert_int_equal(idx_trust(ix, t, &v), 0);
	return v;
}

static void
test_trust_no_index(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t = target_of(&h);
	struct idx_verdict v;

	(void)state;
	spot_calls = 0;
	spot_answer = UINT64_MAX;
	v = judge(NULL, &t);
	assert_null(v.hdr);
	assert_string_equal(v.why, "no index");
	assert_int_equal(spot_calls, 0);
}

static void
test_trust_invalid_header(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t = target_of(&h);
	struct vs_index *ix = NULL;
	struct idx_verdict v;

	(void)state;
	spot_calls = 0;
	assert_int_equal(idx_open(tpath("ix"), true, &ix), 0);
	v = judge(ix, &t);
	assert_null(v.hdr);
	assert_non_null(strstr(v.why, "empty"));
	assert_int_equal(spot_calls, 0);
	idx_close(ix);
}

/* A header that passes is trusted only if the spot check finds nothing;
 * one that fails is not spot checked at all (no reads wasted). */
static void
test_trust_spot_check(void **state)
{
	struct idx_header h = clean_header();
	struct idx_target t;
	struct vs_index *ix;
	struct idx_verdict v;

	(void)state;
	h.virtual_size = h.id.size = 10 * 65536;
	t = target_of(&h);
	ix = index_with(&h);
	spot_calls = spot_rc = 0;
	spot_answer = UINT64_MAX;
	v = judge(ix, &t);
	assert_non_null(v.hdr);
	assert_null(v.why);
	assert_true(v.spot_bad == UINT64_MAX);
	assert_true(v.hdr->seed == h.seed);
	assert_int_equal(spot_calls, 1);

	spot_answer = 3 * 65536;
	v = judge(ix, &t);
	assert_null(v.hdr);
	assert_non_null(strstr(v.why, "spot check"));
	assert_true(v.spot_bad == 3 * 65536);
	assert_int_equal(spot_calls, 2);

	spot_rc = -1;
	t.spot_check = fake_spot;
	assert_int_equal(idx_trust(ix, &t, &v), -1);

	/* Refused by its header: no spot check. */
	spot_rc = 0;
	t.checksum = true;
	v = judge(ix, &t);
	assert_null(v.hdr);
	assert_int_equal(spot_calls, 3);
	idx_close(ix);
}

static void
test_stale_range(void **state)
{
	struct idx_header h = clean_header();
	uint64_t lo = 1, hi = 1;

	(void)state;
	h.block_size = 65536;
	h.virtual_size = 10 * 65536;
	idx_stale_range(&h, 10 * 65536, false, &lo, &hi);
	assert_true(lo == hi);
	/* A file that grows: only the block that held the old end. */
	idx_stale_range(&h, 12 * 65536 + 100, false, &lo, &hi);
	assert_true(lo == 10 && hi == 11);
	/* One that shrinks: the block that holds the new end. */
	idx_stale_range(&h, 5 * 65536 + 100, false, &lo, &hi);
	assert_true(lo == 5 && hi == 6);
	/* A device keeps its old bytes past the old end: nothing known. */
	idx_stale_range(&h, 12 * 65536, true, &lo, &hi);
	assert_true(lo == 10 && hi == UINT64_MAX);
}

static void
test_begin_header(void **state)
{
	struct idx_header old = clean_header(), a, b;

	(void)state;
	assert_int_equal(idx_begin_header(&old, 4096, "raw", &a), 0);
	assert_int_equal(a.block_size, old.block_size);
	assert_true(a.seed == old.seed);
	assert_true(a.virtual_size == old.virtual_size);
	assert_memory_equal(&a.view, &old.view, sizeof(a.view));
	assert_string_equal(a.format, "raw");

	assert_int_equal(idx_begin_header(NULL, 4096, NULL, &a), 0);
	assert_int_equal(idx_begin_header(NULL, 4096,
	    "averyveryverylongname", &b), 0);
	assert_int_equal(a.version, IDX_VERSION);
	assert_int_equal(a.block_size, 4096);
	assert_int_equal(a.flags, 0);
	assert_true(a.virtual_size == 0);
	assert_true(vs_hash_eq(&a.view, &(struct vs_hash){ { 0 } }));
	assert_string_equal(a.format, "");
	/* A new seed each time (equal by chance once in 2^64). */
	assert_true(a.seed != b.seed);
	assert_int_equal(strlen(b.format), IDX_FORMAT_LEN - 1);
}

/* The header on disk at tmpdir/ix. */
static struct idx_header
disk_header(void)
{
	uint8_t buf[IDX_HEADER_SIZE];
	struct idx_header h;
	const char *why = NULL;

	assert_int_equal(file_read(tpath("ix"), buf, sizeof(buf), 0),
	    sizeof(buf));
	if (idx_header_decode(buf, sizeof(buf), &h, &why) < 0)
		fail_msg("header on disk: %s", why);
	return h;
}

/* An index of @n entries 0..n-1 (mkhash) for blocks of 64 KiB. */
static struct vs_index *
index_of_entries(struct idx_header *h, size_t n)
{
	struct vs_hash e[16];
	struct vs_index *ix;

	assert_true(n <= 16);
	h->block_size = 65536;
	h->virtual_size = n * 65536;
	ix = index_with(h);
	for (size_t i = 0; i < n; i++)
		e[i] = mkhash((unsigned)i);
	assert_int_equal(idx_write(ix, 0, n, NULL, e), 0);
	return ix;
}

/* Bytes of a sector record of a 64 KiB block: check and 16 hashes. */
#define RECORD (8 * 17)

/* Entries [first, first + n) are mkhash(first...) if @kept, else holes. */
static void
entries_are(struct vs_index *ix, uint64_t first, size_t n, bool kept)
{
	struct vs_hash e[16];

	assert_int_equal(idx_read(ix, first, n, e), 0);
	for (size_t i = 0; i < n; i++) {
		struct vs_hash want = kept ? mkhash((unsigned)(first + i)) :
		    vs_hash_hole;

		if (!vs_hash_eq(&e[i], &want))
			fail_msg("entry %llu: want %s",
			    (unsigned long long)(first + i),
			    kept ? "kept" : "a hole");
	}
}

static void
test_begin_dirty_shrink(void **state)
{
	struct idx_header h = clean_header();
	struct vs_index *ix = index_of_entries(&h, 10);
	struct idx_header disk;

	(void)state;
	assert_int_equal(idx_begin_dirty(ix, &h, 6 * 65536 + 100, true), 0);
	assert_true(h.flags & IDX_FLAG_DIRTY);
	assert_true(h.virtual_size == 6 * 65536 + 100);
	disk = disk_header();
	assert_int_equal(disk.flags, IDX_FLAG_DIRTY);
	assert_true(disk.virtual_size == 6 * 65536 + 100);
	/* The records placed past room for twice the entries. */
	assert_true(h.sector_off == 65536 && disk.sector_off == 65536);
	assert_int_equal(disk.version, IDX_VERSION);
	assert_int_equal(file_size(tpath("ix")), 65536 + 7 * RECORD);
	entries_are(ix, 0, 7, true);
	idx_close(ix);
}

static void
test_begin_dirty_grow(void **state)
{
	struct idx_header h = clean_header();
	struct vs_index *ix = index_of_entries(&h, 10);

	(void)state;
	assert_int_equal(idx_begin_dirty(ix, &h, 12 * 65536, true), 0);
	assert_int_equal(file_size(tpath("ix")), 65536 + 12 * RECORD);
	entries_are(ix, 0, 10, true);
	entries_are(ix, 10, 2, false);
	idx_close(ix);
}

/* An untrusted index keeps nothing: every entry is a hole. */
static void
test_begin_dirty_drops_untrusted(void **state)
{
	struct idx_header h = clean_header();
	struct vs_index *ix = index_of_entries(&h, 10);

	(void)state;
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, false), 0);
	assert_int_equal(disk_header().flags, IDX_FLAG_DIRTY);
	entries_are(ix, 0, 10, false);
	idx_close(ix);
}

/* Sector records for entries [0, 10): hashes i * 1000 + k + 1, stored for
 * every block but 3. */
static void
write_records(struct vs_index *ix, struct vs_hash *e, uint64_t *sec)
{
	bool have[10];

	assert_int_equal(idx_read(ix, 0, 10, e), 0);
	for (size_t i = 0; i < 10; i++) {
		for (size_t k = 0; k < 16; k++)
			sec[i * 16 + k] = i * 1000 + k + 1;
		have[i] = i != 3;
	}
	assert_int_equal(idx_write_sectors(ix, 0, 10, e, sec, have), 0);
}

/* Which of blocks [0, 10) have a record that holds for @e; those that
 * do must read back as @sec. */
static unsigned
records_valid(struct vs_index *ix, const struct vs_hash *e,
    const uint64_t *sec)
{
	uint64_t got[10 * 16];
	bool valid[10];
	unsigned mask = 0;

	memset(got, 0, sizeof(got));
	assert_int_equal(idx_read_sectors(ix, 0, 10, e, got, valid), 0);
	for (unsigned i = 0; i < 10; i++) {
		if (!valid[i])
			continue;
		mask |= 1u << i;
		assert_memory_equal(got + i * 16, sec + i * 16,
		    16 * sizeof(*got));
	}
	return mask;
}

#define ALL_BUT_3 (0x3ffu & ~(1u << 3))

/* A record holds only for the entry and block it was made for, and
 * only while intact. */
static void
test_sector_records(void **state)
{
	struct idx_header h = clean_header();
	struct vs_index *ix = index_of_entries(&h, 10);
	struct vs_hash e[10], other[10];
	uint64_t sec[10 * 16], got[16];
	bool valid;
	int fd;

	(void)state;
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, true), 0);
	write_records(ix, e, sec);
	assert_int_equal(records_valid(ix, e, sec), ALL_BUT_3);
	/* Another entry, a hole, unknown: not theirs. */
	memcpy(other, e, sizeof(other));
	other[1] = mkhash(99);
	other[2] = vs_hash_hole;
	other[4] = vs_hash_unknown;
	assert_int_equal(records_valid(ix, other, sec),
	    ALL_BUT_3 & ~0x16u);
	/* Block 5's record is not block 6's, even with block 5's entry. */
	assert_int_equal(idx_read_sectors(ix, 6, 1, &e[5], got, &valid), 0);
	assert_false(valid);
	/* A damaged record fails its check. */
	fd = open(tpath("ix"), O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, (off_t)(h.sector_off +
	    5 * RECORD + 20)), 1);
	close(fd);
	assert_int_equal(records_valid(ix, e, sec), ALL_BUT_3 & ~(1u << 5));
	/* Past the end: none. */
	assert_int_equal(idx_read_sectors(ix, 10, 1, &e[0], got, &valid), 0);
	assert_false(valid);
	/* A run that keeps the entries keeps the records... */
	idx_close(ix);
	assert_int_equal(idx_open(tpath("ix"), true, &ix), 0);
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, true), 0);
	assert_int_equal(records_valid(ix, e, sec), ALL_BUT_3 & ~(1u << 5));
	/* ...one that does not drops both. */
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, false), 0);
	entries_are(ix, 0, 10, false);
	assert_int_equal(records_valid(ix, e, sec), 0);
	idx_close(ix);
}

/* An image that grows a little keeps its records in place; one that
 * outgrows the room moves them (dropped) and keeps its entries. */
static void
test_sector_records_grow(void **state)
{
	struct idx_header h = clean_header();
	struct vs_index *ix = index_of_entries(&h, 10);
	struct vs_hash e[10];
	uint64_t sec[10 * 16], off;

	(void)state;
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, true), 0);
	write_records(ix, e, sec);
	off = h.sector_off;
	assert_int_equal(idx_begin_dirty(ix, &h, 12 * 65536, true), 0);
	assert_true(h.sector_off == off);
	assert_int_equal(records_valid(ix, e, sec), ALL_BUT_3);
	entries_are(ix, 0, 10, true);
	entries_are(ix, 10, 2, false);
	assert_int_equal(idx_begin_dirty(ix, &h, 5000 * 65536ull, true), 0);
	assert_true(h.sector_off > off && h.sector_off % 4096 == 0 &&
	    h.sector_off >= IDX_HEADER_SIZE + 5000 * VS_HASH_LEN);
	assert_int_equal(file_size(tpath("ix")),
	    (off_t)(h.sector_off + 5000 * RECORD));
	assert_int_equal(records_valid(ix, e, sec), 0);
	entries_are(ix, 0, 10, true);
	entries_are(ix, 10, 16, false);
	entries_are(ix, 4990, 10, false);
	/* Shrinking again clears the entries past the new end in place. */
	assert_int_equal(idx_write(ix, 20, 1, NULL, &e[0]), 0);
	assert_int_equal(idx_begin_dirty(ix, &h, 15 * 65536, true), 0);
	assert_int_equal(idx_begin_dirty(ix, &h, 30 * 65536, true), 0);
	entries_are(ix, 15, 15, false);
	idx_close(ix);
}

/* A version 3 index is trusted as it is, has no records, and is written
 * as the current version by the first run that changes it. */
static void
test_migrate_version3(void **state)
{
	struct idx_header h = clean_header(), disk;
	struct vs_index *ix;
	struct vs_hash e[10];
	uint64_t sec[10 * 16];
	uint8_t buf[IDX_HEADER_SIZE];
	const char *why = NULL;

	(void)state;
	ix = index_of_entries(&h, 10);
	idx_close(ix);
	assert_int_equal(file_read(tpath("ix"), buf, sizeof(buf), 0),
	    sizeof(buf));
	le32(buf + IDX_OFF_VERSION, 3);
	memset(buf + IDX_OFF_CSUM_V3, 0, 16);
	le64(buf + IDX_OFF_CSUM_V3, XXH3_64bits(buf, IDX_OFF_CSUM_V3));
	{
		int fd = open(tpath("ix"), O_WRONLY);

		assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), sizeof(buf));
		close(fd);
	}
	assert_int_equal(idx_open(tpath("ix"), true, &ix), 0);
	assert_non_null(idx_header(ix, &why));
	assert_int_equal(idx_header(ix, &why)->version, 3);
	h = *idx_header(ix, &why);
	assert_int_equal(idx_read(ix, 0, 10, e), 0);
	assert_int_equal(records_valid(ix, e, sec), 0);
	entries_are(ix, 0, 10, true);
	assert_int_equal(idx_begin_dirty(ix, &h, 10 * 65536, true), 0);
	disk = disk_header();
	assert_int_equal(disk.version, IDX_VERSION);
	assert_true(disk.sector_off >= IDX_HEADER_SIZE + 10 * VS_HASH_LEN);
	entries_are(ix, 0, 10, true);
	write_records(ix, e, sec);
	assert_int_equal(records_valid(ix, e, sec), ALL_BUT_3);
	idx_close(ix);
}

/* The steps a commit took, in order, and what the disk said at each. */
static char commit_log[128];
static int commit_fail_at;	/* 1..3: that step fails */
static bool commit_foreign;
static struct idx_identity commit_id;

static int
commit_step(int step, const char *name)
{
	struct idx_header disk = disk_header();

	strcat(commit_log, name);
	/* The header turns clean only after the data, before the
	 * directory is synced. */
	strcat(commit_log, disk.flags & IDX_FLAG_DIRTY ? "(dirty) " :
	    "(clean) ");
	return commit_fail_at == step ? -1 : 0;
}

static int
step_sync_target(void *arg)
{
	(void)arg;
	return commit_step(1, "target");
}

static int
step_identify(void *arg, struct idx_identity *id, bool *foreign)
{
	(void)arg;
	*id = commit_id;
	*foreign = commit_foreign;
	return commit_step(2, "identify");
}

static int
step_sync_index_dir(void *arg)
{
	(void)arg;
	return commit_step(3, "dir");
}

static const struct idx_commit_steps steps = {
	.sync_target = step_sync_target,
	.identify = step_identify,
	.sync_index_dir = step_sync_index_dir,
};

/* Start a commit test: a dirty index of 10 blocks, as begin left it. */
static struct vs_index *
dirty_index(struct idx_header *h)
{
	struct vs_index *ix;

	*h = clean_header();
	ix = index_of_entries(h, 10);
	assert_int_equal(idx_begin_dirty(ix, h, h->virtual_size, true), 0);
	commit_log[0] = '\0';
	commit_fail_at = 0;
	commit_foreign = false;
	commit_id = h->id;
	commit_id.ctime_sec += 100;
	return ix;
}

static void
test_commit_clean_order(void **state)
{
	struct idx_header h, disk;
	struct vs_index *ix = dirty_index(&h);
	struct vs_hash view = mkhash(99);
	bool clean = false;

	(void)state;
	assert_int_equal(idx_commit_clean(ix, &h, &view, &steps, &clean), 0);
	assert_true(clean);
	assert_string_equal(commit_log,
	    "target(dirty) identify(dirty) dir(clean) ");
	disk = disk_header();
	assert_int_equal(disk.flags, 0);
	assert_true(idx_identity_eq(&disk.id, &commit_id));
	assert_true(vs_hash_eq(&disk.view, &view));
	assert_true(disk.seed == h.seed);
	entries_are(ix, 0, 10, true);
	/* No view: none recorded, whatever the header had. */
	assert_int_equal(idx_commit_clean(ix, &h, NULL, &steps, &clean), 0);
	disk = disk_header();
	assert_true(vs_hash_eq(&disk.view, &(struct vs_hash){ { 0 } }));
	idx_close(ix);
}

/* Another program wrote the target: the index stays dirty. */
static void
test_commit_foreign_stays_dirty(void **state)
{
	struct idx_header h;
	struct vs_index *ix = dirty_index(&h);
	bool clean = true;

	(void)state;
	commit_foreign = true;
	assert_int_equal(idx_commit_clean(ix, &h, NULL, &steps, &clean), 0);
	assert_false(clean);
	assert_string_equal(commit_log, "target(dirty) identify(dirty) ");
	assert_int_equal(disk_header().flags, IDX_FLAG_DIRTY);
	idx_close(ix);
}

/* Data that could not be made durable: nothing further, still dirty. */
static void
test_commit_failed_sync_stays_dirty(void **state)
{
	struct idx_header h;
	struct vs_index *ix = dirty_index(&h);
	bool clean = true;

	(void)state;
	commit_fail_at = 1;
	assert_int_equal(idx_commit_clean(ix, &h, NULL, &steps, &clean), -1);
	assert_false(clean);
	assert_string_equal(commit_log, "target(dirty) ");
	assert_int_equal(disk_header().flags, IDX_FLAG_DIRTY);
	idx_close(ix);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_tmp, teardown_tmp)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test(test_header_seal),
		cmocka_unit_test(test_decode_version1),
		cmocka_unit_test(test_decode_version2),
		cmocka_unit_test(test_decode_version3),
		cmocka_unit_test(test_decode_sector_offset),
		cmocka_unit_test(test_decode_format),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_bad_magic),
		cmocka_unit_test(test_decode_checksum),
		cmocka_unit_test(test_decode_version),
		cmocka_unit_test(test_decode_header_size),
		cmocka_unit_test(test_decode_block_size),
		cmocka_unit_test(test_decode_flags),
		cmocka_unit_test(test_decode_entry_count),
		cmocka_unit_test(test_nblocks),
		cmocka_unit_test(test_identity_eq),
		T(test_open_missing),
		T(test_open_create_empty),
		T(test_write_header_reopen),
		T(test_open_short_file),
		T(test_read_past_end_is_hole),
		T(test_resize_drops_entries),
		T(test_write_only_changes),
		T(test_write_offset),
		T(test_write_null_old_skips_holes),
		T(test_symlink_refused),
		T(test_directory_refused),
		T(test_fifo_refused),
		cmocka_unit_test(test_mismatch_rules),
		cmocka_unit_test(test_mismatch_device_size),
		cmocka_unit_test(test_mismatch_order),
		cmocka_unit_test(test_stale_range),
		T(test_held_writes),
		cmocka_unit_test(test_begin_header),
		cmocka_unit_test(test_trust_no_index),
		T(test_trust_invalid_header),
		T(test_trust_spot_check),
		T(test_begin_dirty_shrink),
		T(test_begin_dirty_grow),
		T(test_begin_dirty_drops_untrusted),
		T(test_sector_records),
		T(test_sector_records_grow),
		T(test_migrate_version3),
		T(test_commit_clean_order),
		T(test_commit_foreign_stays_dirty),
		T(test_commit_failed_sync_stays_dirty),
	};
#undef T

	return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
