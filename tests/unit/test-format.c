/*
 * test-format.c - opening sources (src/formats/): formats vmsync does not
 * read are refused by their magic, anything else opens as raw, a forced
 * format skips probing, file containers refuse directories and missing
 * files, and a sparse file's map shows DATA exactly where it was written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/format.h"

#define BUFSZ 8192

static uint8_t buf[BUFSZ];
static int
reset(void **state)
{
	(void)state;
	vs_err_reset();
	fill(buf, sizeof(buf), 1);
	return 0;
}

/* Open @len bytes of @data from memory; returns vs_image_open's result. */
static int
open_mem(const void *data, size_t len, const char *forced,
    struct vs_image **img)
{
	struct vs_io *io = NULL;

	assert_int_equal(vs_io_open_mem(data, len, "mem.img", &io), 0);
	assert_non_null(io);
	*img = NULL;
	return vs_image_open(io, forced, img);
}

/* A buffer starting with @magic (@len bytes) must be refused. */
static void
refused(const char *magic, size_t len)
{
	struct vs_image *img = NULL;

	vs_err_reset();
	fill(buf, sizeof(buf), 2);
	memcpy(buf, magic, len);
	if (open_mem(buf, sizeof(buf), NULL, &img) != -1) {
		vs_image_close(img);
		fail_msg("an image starting with \"%.*s\" opened", (int)len,
		    magic);
	}
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	/* Exactly the magic, nothing after it, is enough. */
	vs_err_reset();
	if (open_mem(magic, len, NULL, &img) != -1) {
		vs_image_close(img);
		fail_msg("a bare \"%.*s\" opened", (int)len, magic);
	}
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	vs_err_reset();
}

/* The qcow2 magic alone, without a valid header, is a damaged qcow2. */
static void
test_bare_qcow2_magic(void **state)
{
	(void)state;
	refused("QFI\xfb", 4);
}

static void
test_vmdk_refused(void **state)
{
	(void)state;
	refused("KDMV", 4);
	refused("# Disk DescriptorFile", 21);
}

static void
test_other_foreign_refused(void **state)
{
	(void)state;
	refused("vhdxfile", 8);
	refused("<<< ", 4);		/* vdi */
	refused("conectix", 8);		/* vpc */
	refused("QED\0", 4);
	refused("LUKS\xba\xbe", 6);
}

static void
test_magic_prefix_or_elsewhere_is_raw(void **state)
{
	struct vs_image *img = NULL;

	(void)state;
	/* Half a magic. */
	assert_int_equal(open_mem("QFI", 3, NULL, &img), 0);
	assert_string_equal(img->ops->name, "raw");
	vs_image_close(img);
	/* A magic that is not at offset 0. */
	memcpy(buf + 512, "QFI\xfb", 4);
	assert_int_equal(open_mem(buf, sizeof(buf), NULL, &img), 0);
	assert_string_equal(img->ops->name, "raw");
	vs_image_close(img);
	/* One byte off. */
	memcpy(buf, "QFI\xfa", 4);
	assert_int_equal(open_mem(buf, sizeof(buf), NULL, &img), 0);
	vs_image_close(img);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_raw_opens(void **state)
{
	struct vs_image *img = NULL;
	uint8_t back[BUFSZ];

	(void)state;
	assert_int_equal(open_mem(buf, sizeof(buf), NULL, &img), 0);
	assert_non_null(img);
	assert_ptr_equal(img->ops, &vs_format_raw);
	assert_string_equal(img->ops->name, "raw");
	assert_int_equal(img->size, sizeof(buf));
	assert_string_equal(img->name, "mem.img");
	memset(back, 0, sizeof(back));
	assert_int_equal(img->ops->read(img, back, sizeof(back), 0), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(img->ops->read(img, back, 100, 4000), 0);
	assert_memory_equal(back, buf + 4000, 100);
	vs_image_close(img);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_raw_read_past_end(void **state)
{
	struct vs_image *img = NULL;
	uint8_t back[200];

	(void)state;
	assert_int_equal(open_mem(buf, 1000, NULL, &img), 0);
	memset(back, 0xee, sizeof(back));
	assert_int_equal(img->ops->read(img, back, 200, 900), 0);
	assert_memory_equal(back, buf + 900, 100);
	for (int i = 100; i < 200; i++)
		assert_int_equal(back[i], 0);
	memset(back, 0xee, sizeof(back));
	assert_int_equal(img->ops->read(img, back, 200, 5000), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(back[i], 0);
	vs_image_close(img);
}

static void
test_raw_map_covers(void **state)
{
	struct vs_extent_vec map = { 0 };
	struct vs_image *img = NULL;

	(void)state;
	assert_int_equal(open_mem(buf, sizeof(buf), NULL, &img), 0);
	assert_int_equal(vs_image_map(img, 0, sizeof(buf), &map), 0);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.v[0].off, 0);
	assert_int_equal(map.v[0].len, sizeof(buf));
	assert_int_equal(map.v[0].type, VS_EXT_DATA);
	assert_int_equal(vs_extent_check(&map, 0, sizeof(buf)), 0);
	/* A window in the middle: the map is reset and covers it exactly. */
	assert_int_equal(vs_image_map(img, 1000, 3000, &map), 0);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.v[0].off, 1000);
	assert_int_equal(map.v[0].len, 3000);
	vs_extent_vec_free(&map);
	vs_image_close(img);
}

static void
test_empty_is_raw(void **state)
{
	struct vs_image *img = NULL;

	(void)state;
	assert_int_equal(open_mem(buf, 0, NULL, &img), 0);
	assert_string_equal(img->ops->name, "raw");
	assert_int_equal(img->size, 0);
	vs_image_close(img);
}

static void
test_forced_raw(void **state)
{
	struct vs_image *img = NULL;
	uint8_t back[16];

	(void)state;
	memcpy(buf, "QFI\xfb", 4);
	assert_int_equal(open_mem(buf, sizeof(buf), "raw", &img), 0);
	assert_string_equal(img->ops->name, "raw");
	assert_int_equal(img->size, sizeof(buf));
	assert_int_equal(img->ops->read(img, back, sizeof(back), 0), 0);
	assert_memory_equal(back, buf, sizeof(back));
	vs_image_close(img);
	memcpy(buf, "KDMV", 4);
	assert_int_equal(open_mem(buf, sizeof(buf), "raw", &img), 0);
	vs_image_close(img);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_forced_unknown(void **state)
{
	struct vs_image *img = NULL;

	(void)state;
	assert_int_equal(open_mem(buf, sizeof(buf), "qcow2", &img), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	vs_err_reset();
	assert_int_equal(open_mem(buf, sizeof(buf), "", &img), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
}

/* ---- files ---- */

static int
setup_tmp(void **state)
{
	reset(state);
	return unit_mktmp("format");
}

static int
teardown_tmp(void **state)
{
	(void)state;
	vs_err_reset();
	return unit_rmtmp();
}
static void
test_file_missing(void **state)
{
	struct vs_io *io = (struct vs_io *)&io;

	(void)state;
	assert_int_equal(vs_io_open_file(tpath("absent.img"), &io), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
}

static void
test_file_directory(void **state)
{
	struct vs_io *io = NULL;

	(void)state;
	assert_int_equal(vs_io_open_file(tmpdir, &io), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
}

static volatile sig_atomic_t alarmed;

static void
on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

static void
test_file_fifo(void **state)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct vs_io *io = NULL;
	int r;

	(void)state;
	assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	alarmed = 0;
	alarm(1);
	r = vs_io_open_file(tpath("fifo"), &io);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	if (alarmed)
		fail_msg("opening a FIFO source blocked waiting for a writer");
	assert_int_equal(r, -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
}

static void
test_file_raw_reads(void **state)
{
	struct vs_image *img = NULL;
	struct vs_io *io = NULL;
	uint8_t back[BUFSZ];
	int fd;

	(void)state;
	fd = open(tpath("small.img"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, 5000), 5000);
	close(fd);
	assert_int_equal(vs_io_open_file(tpath("small.img"), &io), 0);
	assert_int_equal(io->size, 5000);
	assert_false(io->is_block);
	assert_true(S_ISREG(io->mode));
	assert_int_equal(vs_image_open(io, NULL, &img), 0);
	assert_string_equal(img->ops->name, "raw");
	memset(back, 0xee, sizeof(back));
	assert_int_equal(img->ops->read(img, back, sizeof(back), 0), 0);
	assert_memory_equal(back, buf, 5000);
	for (size_t i = 5000; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	vs_image_close(img);
}

/* A file with the qcow2 magic and no valid header is refused. */
static void
test_file_bare_qcow2_magic(void **state)
{
	struct vs_image *img = NULL;
	struct vs_io *io = NULL;
	int fd;

	(void)state;
	memcpy(buf, "QFI\xfb", 4);
	fd = open(tpath("disk.qcow2"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
	assert_int_equal(vs_io_open_file(tpath("disk.qcow2"), &io), 0);
	assert_int_equal(vs_image_open(io, NULL, &img), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
}

static void
ext_is(const struct vs_extent_vec *v, size_t i, uint64_t off, uint64_t len,
    enum vs_extent_type type)
{
	if (i >= v->n)
		fail_msg("map has %zu extents, want more than %zu", v->n, i);
	if (v->v[i].off != off || v->v[i].len != len || v->v[i].type != type)
		fail_msg("extent %zu is (%llu, %llu, %s), want (%llu, %llu, %s)",
		    i, (unsigned long long)v->v[i].off,
		    (unsigned long long)v->v[i].len,
		    v->v[i].type == VS_EXT_DATA ? "data" : "zero",
		    (unsigned long long)off, (unsigned long long)len,
		    type == VS_EXT_DATA ? "data" : "zero");
}

#define K 1024ull
#define M (1024ull * 1024)

static void
test_file_sparse_map(void **state)
{
	struct vs_extent_vec map = { 0 };
	struct vs_image *img = NULL;
	struct vs_io *io = NULL;
	uint8_t back[8192];
	int fd;

	(void)state;
	fd = open(tpath("sparse.img"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * M), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pwrite(fd, buf, sizeof(buf),
		    (off_t)(64 * K + i * sizeof(buf))), sizeof(buf));
	assert_int_equal(pwrite(fd, buf, 4096, (off_t)(1 * M)), 4096);
	assert_int_equal(pwrite(fd, buf, 4096, (off_t)(4 * M - 4096)), 4096);
	assert_int_equal(fsync(fd), 0);
	close(fd);

	assert_int_equal(vs_io_open_file(tpath("sparse.img"), &io), 0);
	assert_int_equal(vs_image_open(io, NULL, &img), 0);
	assert_int_equal(img->size, 4 * M);
	assert_int_equal(vs_image_map(img, 0, 4 * M, &map), 0);
	assert_int_equal(map.n, 6);
	ext_is(&map, 0, 0, 64 * K, VS_EXT_ZERO);
	ext_is(&map, 1, 64 * K, 64 * K, VS_EXT_DATA);
	ext_is(&map, 2, 128 * K, M - 128 * K, VS_EXT_ZERO);
	ext_is(&map, 3, M, 4 * K, VS_EXT_DATA);
	ext_is(&map, 4, M + 4 * K, 3 * M - 8 * K, VS_EXT_ZERO);
	ext_is(&map, 5, 4 * M - 4 * K, 4 * K, VS_EXT_DATA);

	/* A window that starts and ends inside extents is clipped to it. */
	assert_int_equal(vs_image_map(img, 100 * K, M, &map), 0);
	assert_int_equal(map.n, 4);
	ext_is(&map, 0, 100 * K, 28 * K, VS_EXT_DATA);
	ext_is(&map, 1, 128 * K, M - 128 * K, VS_EXT_ZERO);
	ext_is(&map, 2, M, 4 * K, VS_EXT_DATA);
	ext_is(&map, 3, M + 4 * K, 96 * K, VS_EXT_ZERO);

	/* A window wholly inside a hole. */
	assert_int_equal(vs_image_map(img, 2 * M, 4096, &map), 0);
	assert_int_equal(map.n, 1);
	ext_is(&map, 0, 2 * M, 4096, VS_EXT_ZERO);

	/* The data reads back; the holes read as zeros. */
	assert_int_equal(img->ops->read(img, back, sizeof(back), 64 * K), 0);
	assert_memory_equal(back, buf, sizeof(back));
	assert_int_equal(img->ops->read(img, back, sizeof(back), 2 * M), 0);
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	vs_extent_vec_free(&map);
	vs_image_close(img);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_file_all_hole(void **state)
{
	struct vs_extent_vec map = { 0 };
	struct vs_image *img = NULL;
	struct vs_io *io = NULL;

	(void)state;
	assert_int_equal(truncate(tpath("hole.img"), 0), -1);
	{
		int fd = open(tpath("hole.img"), O_WRONLY | O_CREAT, 0600);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 1 << 30), 0);
		close(fd);
	}
	assert_int_equal(vs_io_open_file(tpath("hole.img"), &io), 0);
	assert_int_equal(vs_image_open(io, NULL, &img), 0);
	assert_int_equal(vs_image_map(img, 0, 1 << 30, &map), 0);
	assert_int_equal(map.n, 1);
	ext_is(&map, 0, 0, 1 << 30, VS_EXT_ZERO);
	vs_extent_vec_free(&map);
	vs_image_close(img);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, reset, NULL)
#define F(f) cmocka_unit_test_setup_teardown(f, setup_tmp, teardown_tmp)
	const struct CMUnitTest tests[] = {
		T(test_bare_qcow2_magic),
		T(test_vmdk_refused),
		T(test_other_foreign_refused),
		T(test_magic_prefix_or_elsewhere_is_raw),
		T(test_raw_opens),
		T(test_raw_read_past_end),
		T(test_raw_map_covers),
		T(test_empty_is_raw),
		T(test_forced_raw),
		T(test_forced_unknown),
		F(test_file_missing),
		F(test_file_directory),
		F(test_file_fifo),
		F(test_file_raw_reads),
		F(test_file_bare_qcow2_magic),
		F(test_file_sparse_map),
		F(test_file_all_hole),
	};
#undef T
#undef F

	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
