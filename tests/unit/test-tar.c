/*
 * test-tar.c - archive entries as sources (src/formats/tar.c): a sparse
 * entry maps DATA exactly on its runs and reads its bytes, zeros between,
 * through a stream that refuses a read behind it; entry names and types
 * are checked, and each refusal names the entry and its header's offset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tar.h"

/* made by vmsync: 's', 204800 bytes, "abc" at 70000, "xyz" at 150000 */
#define SEED "tests/fuzz/archive-seeds/pax-sparse.tar"

static uint8_t *arch;
static size_t arch_len;

static int
reset(void **state)
{
	(void)state;
	vs_err_reset();
	vs_err_quiet = true;
	return 0;
}

/* Append a ustar header for @name (@type, @size bytes) and @size bytes of
 * @fill to arch. */
static void
add_ustar(const char *name, char type, size_t size, int fillc)
{
	size_t pad = (size + 511) / 512 * 512;
	uint8_t *h;
	unsigned sum = 0;

	arch = realloc(arch, arch_len + 512 + pad);
	assert_non_null(arch);
	h = arch + arch_len;
	memset(h, 0, 512 + pad);
	memcpy(h, name, strlen(name));
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", size);
	snprintf((char *)h + 136, 12, "%011o", 1600000000);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	memset(h + 512, fillc, size);
	arch_len += 512 + pad;
}

static void
end_ustar(void)
{
	arch = realloc(arch, arch_len + 1024);
	assert_non_null(arch);
	memset(arch + arch_len, 0, 1024);
	arch_len += 1024;
}

static int
scan_mem(struct vs_tar_entry **v, size_t *n, bool *delta)
{
	struct vs_io *io;
	int rc;

	assert_int_equal(vs_io_open_mem(arch, arch_len, "t.tar", &io), 0);
	rc = vs_tar_scan(io, v, n, delta);
	vs_io_close(io);
	return rc;
}

static void
load_seed(void)
{
	FILE *f = fopen(SEED, "rb");

	assert_non_null(f);
	free(arch);
	arch = malloc(1 << 16);
	arch_len = fread(arch, 1, 1 << 16, f);
	fclose(f);
	assert_true(arch_len > 0);
}

static void
test_sparse_entry(void **state)
{
	struct vs_extent_vec map = { 0 };
	struct vs_tar_entry *v;
	struct vs_image *img;
	struct vs_io *io;
	size_t n;
	bool delta;
	uint32_t mode;
	int64_t sec, nsec;
	uint8_t b[4096];

	(void)state;
	load_seed();
	assert_int_equal(scan_mem(&v, &n, &delta), 0);
	assert_int_equal(n, 1);
	assert_false(delta);
	assert_string_equal(v[0].name, "s");
	assert_int_equal(v[0].size, 204800);
	vs_tar_entries_free(v, n);

	assert_int_equal(vs_io_open_mem(arch, arch_len, "t.tar", &io), 0);
	assert_int_equal(vs_tar_open(io, 0, "t.tar/s", &img, &mode, &sec,
	    &nsec), 0);
	assert_int_equal(img->size, 204800);
	assert_int_equal(vs_image_map(img, 0, img->size, &map), 0);
	/* Data around each write, holes elsewhere: never all DATA. */
	assert_true(map.n >= 3);
	for (size_t i = 0; i < map.n; i++)
		if (map.v[i].type == VS_EXT_DATA)
			assert_true((map.v[i].off <= 70000 &&
			    70003 <= map.v[i].off + map.v[i].len) ||
			    (map.v[i].off <= 150000 &&
			    150003 <= map.v[i].off + map.v[i].len));
	assert_int_equal(img->ops->read(img, b, 4096, 69632), 0);
	assert_memory_equal(b + 368, "abc", 3);
	assert_int_equal(b[0] | b[367] | b[371], 0);
	assert_int_equal(img->ops->read(img, b, 4096, 147456), 0);
	assert_memory_equal(b + 2544, "xyz", 3);
	/* Behind the stream: refused, as a bug of the caller. */
	assert_int_equal(img->ops->read(img, b, 4096, 0), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_INTERNAL);
	assert_true(img->ops->sequential);
	vs_image_close(img);
	vs_extent_vec_free(&map);
}

static void
test_names(void **state)
{
	static const struct {
		const char *name;	/* the second entry's name */
		char type;		/* and type */
		const char *msg;	/* what the refusal says */
	} bad[] = {
		{ "../x", '0', "entry '../x' at offset 1024: not a plain" },
		{ "a/b", '0', "entry 'a/b' at offset 1024: not a plain" },
		{ "..", '0', "entry '..' at offset 1024: not a plain" },
		{ ".x.vmsync-index", '0', "entry '.x.vmsync-index' at offset "
		    "1024: not a plain" },
		{ ".vmsync.lock", '0', "entry '.vmsync.lock' at offset 1024: "
		    "not a plain" },
		{ "d", '5', "entry 'd' at offset 1024: not a regular file" },
		{ "f", '3', "entry 'f' at offset 1024: not a regular file" },
	};
	struct vs_tar_entry *v;
	size_t n;
	bool delta;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		free(arch);
		arch = NULL;
		arch_len = 0;
		add_ustar("ok", '0', 100, 'x');
		add_ustar(bad[i].name, bad[i].type, 0, 0);
		end_ustar();
		vs_err_reset();
		assert_int_equal(scan_mem(&v, &n, &delta), -1);
		assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
		if (!strstr(vs_err_text(), bad[i].msg))
			print_error("%s\n", vs_err_text());
		assert_non_null(strstr(vs_err_text(), bad[i].msg));
		assert_non_null(strstr(vs_err_text(), "t.tar"));
	}
	/* Both fine (a name may start with a dot): two entries; a delta
	 * first: only that is said. */
	free(arch);
	arch = NULL;
	arch_len = 0;
	add_ustar("ok", '0', 100, 'x');
	add_ustar(".ok2", '0', 600, 'y');
	end_ustar();
	assert_int_equal(scan_mem(&v, &n, &delta), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[1].header, 1024);
	assert_string_equal(v[1].name, ".ok2");
	vs_tar_entries_free(v, n);
	free(arch);
	arch = NULL;
	arch_len = 0;
	add_ustar("d.raw.vmsync-delta", '0', 10, 'x');
	add_ustar("../evil", '0', 1, 'x');
	end_ustar();
	assert_int_equal(scan_mem(&v, &n, &delta), 0);
	assert_true(delta);
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_sparse_entry, reset),
		cmocka_unit_test_setup(test_names, reset),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	free(arch);
	return rc;
}
