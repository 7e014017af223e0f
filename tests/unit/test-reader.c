/*
 * test-reader.c - the reader thread: every group with data comes back with
 * the bytes of its own window and blocks, whatever the pattern of empty
 * groups, while the caller rewrites its block map for the next window as
 * soon as it took the last group (as the engine does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "unit.h"
#include "formats/format.h"
#include "reader.h"

#define BS 4096u
#define GROUP 8u		/* blocks per group */
#define NB 64u			/* blocks per window */
#define WINDOWS 64u
#define SIZE ((uint64_t)WINDOWS * NB * BS)

/* Block @b of the image starts with its own number. */
static uint8_t *
make_image(void)
{
	uint8_t *img = malloc(SIZE);

	assert_non_null(img);
	for (uint64_t b = 0; b < SIZE / BS; b++) {
		fill(img + b * BS, BS, (uint32_t)b);
		memcpy(img + b * BS, &b, sizeof(b));
	}
	return img;
}

/* A map of the window: mostly empty groups, a few with data. */
static void
pattern(uint8_t *isdata, uint32_t *x)
{
	memset(isdata, 0, NB);
	for (size_t i = 0; i < NB; i++) {
		*x = *x * 1103515245u + 12345u;
		isdata[i] = (*x >> 16) % 7 == 0;
	}
}

static bool
group_has_data(const uint8_t *isdata, size_t g0)
{
	for (size_t i = g0; i < g0 + GROUP; i++)
		if (isdata[i])
			return true;
	return false;
}

static void
test_windows_and_empty_groups(void **state)
{
	uint8_t *img = make_image(), isdata[NB];
	struct vs_reader *r;
	struct vs_image *src;
	struct vs_io *io;
	uint32_t x = 1;

	(void)state;
	assert_int_equal(vs_io_open_mem(img, SIZE, "mem.img", &io), 0);
	assert_int_equal(vs_image_open(io, "raw", &src), 0);
	assert_int_equal(vs_reader_start(src, GROUP * BS, &r), 0);
	for (int round = 0; round < 20; round++)
		for (uint64_t w = 0; w < WINDOWS; w++) {
			uint64_t wstart = w * NB * BS;

			pattern(isdata, &x);
			assert_int_equal(vs_reader_window(r, wstart, isdata, NB,
			    BS, GROUP), 0);
			for (size_t g0 = 0; g0 < NB; g0 += GROUP) {
				uint64_t bytes = 0;
				uint8_t *buf;

				if (!group_has_data(isdata, g0))
					continue;
				buf = vs_reader_take(r, g0, &bytes);
				assert_non_null(buf);
				for (size_t i = g0; i < g0 + GROUP; i++) {
					uint64_t b = wstart / BS + i;

					if (isdata[i])
						assert_memory_equal(
						    buf + (i - g0) * BS,
						    img + b * BS, BS);
				}
				vs_reader_give(r, buf);
			}
			/* The engine reuses its map at once. */
			memset(isdata, 0xff, NB);
		}
	vs_reader_stop(r);
	vs_image_close(src);
	free(img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows_and_empty_groups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
