/*
 * test-reader.c - the reader threads: every group with data comes back
 * with the bytes of its own window and blocks, whatever the pattern of
 * empty groups and the order in which reads finish, while the caller
 * rewrites its block map for the next window as soon as it took the last
 * group, or posts the next window before it takes the groups of this one
 * (as the engine does); each block read comes with its hash (a
 * hole's where it is all zeros); a format is never entered by two threads
 * at once, while the reads from where it locates the data are in flight
 * several at once and are the format's bytes.  A reader started without
 * a seed hands the same bytes over and hashes nothing.  A window posted
 * while VS_READER_WINDOWS others have groups to hand out is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "unit.h"
#include "formats/format.h"
#include "hash.h"
#include "reader.h"
#include "util.h"

#define BS 4096u
#define GROUP 8u		/* blocks per group */
#define NB 64u			/* blocks per window */
#define WINDOWS 64u
#define SIZE ((uint64_t)WINDOWS * NB * BS)
#define SEED 0x5eedu

/* Block @b of the image starts with its own number; every eleventh is
 * all zeros. */
static uint8_t *
make_image(void)
{
	uint8_t *img = calloc(1, SIZE);

	assert_non_null(img);
	for (uint64_t b = 0; b < SIZE / BS; b++) {
		if (b % 11 == 5)
			continue;
		fill(img + b * BS, BS, (uint32_t)b);
		memcpy(img + b * BS, &b, sizeof(b));
	}
	return img;
}

/* The hash the reader must give guest block @b of @want. */
static void
check_hash(const uint8_t *want, uint64_t b, const struct vs_hash *got)
{
	struct vs_hash h = vs_hash_hole;

	if (!vs_is_zero(want + b * BS, BS))
		vs_hash_block(want + b * BS, BS, SEED, &h);
	assert_memory_equal(got, &h, sizeof(h));
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

/* Read every window of @src through a reader and check each group with
 * data against @want, the guest bytes, and its hashes (none without
 * @hashing: they stay as allocated, zero).  @ahead: each window is posted
 * before the groups of the one before it are taken. */
static void
read_all_hashing(struct vs_image *src, const uint8_t *want, int rounds,
    bool hashing, bool ahead)
{
	static const uint64_t seed = SEED;
	static const struct vs_hash unset;
	uint8_t maps[2][NB];
	struct vs_reader *r;
	uint32_t x = 1;

	assert_int_equal(vs_reader_start(src, GROUP * BS, hashing ? &seed :
	    NULL, &r), 0);
	for (int round = 0; round < rounds; round++)
		for (uint64_t w = 0; w < WINDOWS; w++) {
			uint64_t wstart = w * NB * BS;
			uint8_t *isdata = maps[w % 2], *next = maps[(w + 1) % 2];

			if (!ahead || w == 0) {
				pattern(isdata, &x);
				assert_int_equal(vs_reader_window(r, wstart,
				    isdata, NB, BS, GROUP), 0);
			}
			if (ahead && w + 1 < WINDOWS) {
				pattern(next, &x);
				assert_int_equal(vs_reader_window(r, wstart +
				    NB * BS, next, NB, BS, GROUP), 0);
			}
			for (size_t g0 = 0; g0 < NB; g0 += GROUP) {
				const struct vs_hash *hash;
				uint64_t bytes = 0;
				uint8_t *buf;

				if (!group_has_data(isdata, g0))
					continue;
				buf = vs_reader_take(r, wstart, g0, &bytes,
				    &hash);
				assert_non_null(buf);
				for (size_t i = g0; i < g0 + GROUP; i++) {
					uint64_t b = wstart / BS + i;

					if (!isdata[i])
						continue;
					assert_memory_equal(buf + (i - g0) * BS,
					    want + b * BS, BS);
					if (hashing)
						check_hash(want, b,
						    &hash[i - g0]);
					else
						assert_memory_equal(
						    &hash[i - g0], &unset,
						    sizeof(unset));
				}
				vs_reader_give(r, buf);
			}
			/* The engine reuses its map at once. */
			memset(isdata, 0xff, NB);
		}
	vs_reader_stop(r);
}

static void
read_all(struct vs_image *src, const uint8_t *want, int rounds)
{
	read_all_hashing(src, want, rounds, true, false);
	read_all_hashing(src, want, rounds, true, true);
}

/* The test image in memory, read @rounds times, with or without hashes. */
static void
read_mem_image(int rounds, bool hashing)
{
	uint8_t *img = make_image();
	struct vs_image *src;
	struct vs_io *io;

	assert_int_equal(vs_io_open_mem(img, SIZE, "mem.img", &io), 0);
	assert_int_equal(vs_image_open(io, "raw", &src), 0);
	read_all_hashing(src, img, rounds, hashing, false);
	read_all_hashing(src, img, rounds, hashing, true);
	vs_image_close(src);
	free(img);
}

static void
test_windows_and_empty_groups(void **state)
{
	(void)state;
	read_mem_image(20, true);
}

/* Without a seed: the same bytes, no hashes. */
static void
test_no_hashes_without_seed(void **state)
{
	(void)state;
	read_mem_image(3, false);
}

/* A reader without a seed over the test image in memory, for cases that
 * post windows and take nothing; every block is data (*@isdata). */
struct idle_reader {
	uint8_t *img;
	struct vs_image *src;
	struct vs_reader *r;
	uint8_t isdata[NB];
};

static void
idle_reader_start(struct idle_reader *ir)
{
	struct vs_io *io;

	ir->img = make_image();
	memset(ir->isdata, 1, NB);
	assert_int_equal(vs_io_open_mem(ir->img, SIZE, "mem.img", &io), 0);
	assert_int_equal(vs_image_open(io, "raw", &ir->src), 0);
	assert_int_equal(vs_reader_start(ir->src, GROUP * BS, NULL, &ir->r),
	    0);
}

static void
idle_reader_stop(struct idle_reader *ir)
{
	vs_reader_stop(ir->r);
	vs_image_close(ir->src);
	free(ir->img);
}

/* A window whose groups are larger than the buffers is refused. */
static void
test_groups_too_large(void **state)
{
	struct idle_reader ir;

	(void)state;
	idle_reader_start(&ir);
	assert_int_equal(vs_reader_window(ir.r, 0, ir.isdata, NB / 2, 2 * BS,
	    GROUP), -1);
	assert_int_equal(vs_reader_window(ir.r, 0, ir.isdata, NB, BS,
	    2 * GROUP), -1);
	idle_reader_stop(&ir);
}

/* VS_READER_WINDOWS windows posted and none taken: one more is refused
 * (the buffers hold fewer groups than the first has, so it still has
 * groups to hand out), and stopping the reader then frees everything. */
static void
test_window_too_many_refused(void **state)
{
	struct idle_reader ir;

	(void)state;
	idle_reader_start(&ir);
	for (uint64_t w = 0; w < VS_READER_WINDOWS; w++)
		assert_int_equal(vs_reader_window(ir.r, w * NB * BS, ir.isdata,
		    NB, BS, GROUP), 0);
	assert_int_equal(vs_reader_window(ir.r, VS_READER_WINDOWS * NB * BS,
	    ir.isdata, NB, BS, GROUP), -1);
	idle_reader_stop(&ir);
}

/*
 * A made-up format over a container whose reads finish in random order:
 * guest block b is stored at container block (b * 5) % blocks, except every
 * third block, which the format makes up itself (its read, not a place).
 * Any overlap of two calls into the format fails the test.
 *
 * The container's first reads wait, for at most RENDEZVOUS_SECS, until
 * IN_FLIGHT of them are in flight at once: a reader that reads one range
 * at a time never gets there, and the test fails after the wait instead
 * of hanging.
 */
struct slow_io {
	struct vs_io io;	/* base, first */
	const uint8_t *data;	/* the container's bytes */
};

static int in_format;		/* threads inside the format */
static int overlaps;		/* times two were */

#define IN_FLIGHT 2		/* container reads the rendezvous waits for */
#define RENDEZVOUS_SECS 10	/* how long it waits for them */

static pthread_mutex_t rv_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rv_cv = PTHREAD_COND_INITIALIZER;
static int rv_waiting;		/* container reads at the rendezvous */
static bool rv_met;		/* IN_FLIGHT of them were there at once */
static bool rv_over;		/* met or timed out: reads go on at once */

/* Wait until IN_FLIGHT container reads are here, or the time is up;
 * once either happened, return at once. */
static void
rendezvous(void)
{
	struct timespec until;
	int rc = 0;

	pthread_mutex_lock(&rv_mu);
	if (!rv_over) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += RENDEZVOUS_SECS;
		if (++rv_waiting >= IN_FLIGHT)
			rv_met = rv_over = true;
		while (!rv_over && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&rv_cv, &rv_mu, &until);
		rv_over = true;
		rv_waiting--;
		pthread_cond_broadcast(&rv_cv);
	}
	pthread_mutex_unlock(&rv_mu);
}

static void
pause_a_little(uint32_t salt)
{
	struct timespec ts = { 0, (long)(salt * 2654435761u % 50000u) };

	nanosleep(&ts, NULL);
}

static void
enter(uint64_t salt)
{
	if (__atomic_add_fetch(&in_format, 1, __ATOMIC_SEQ_CST) > 1)
		__atomic_add_fetch(&overlaps, 1, __ATOMIC_SEQ_CST);
	pause_a_little((uint32_t)salt);
}

static void
leave(void)
{
	__atomic_sub_fetch(&in_format, 1, __ATOMIC_SEQ_CST);
}

static uint64_t
host_block(uint64_t b)
{
	return b % 3 == 2 ? VS_NOWHERE : b * 5 % (SIZE / BS);
}

static int
slow_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	const uint8_t *data = ((struct slow_io *)io)->data;

	rendezvous();
	pause_a_little((uint32_t)(off / BS));
	memcpy(buf, data + off, len);
	return 0;
}

static const struct vs_io_ops slow_io_ops = { .pread = slow_pread };

static int
odd_locate(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	enter(off);
	for (uint64_t b = off / BS; b * BS < off + len; b++) {
		uint64_t h = host_block(b);

		assert_int_equal(vs_place_add(out, b * BS, BS, h == VS_NOWHERE ?
		    h : h * BS), 0);
	}
	(void)img;
	leave();
	return 0;
}

/* Only ever asked for made-up blocks (the located ones are read from the
 * container), or for everything when the format cannot locate. */
static int
odd_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	const uint8_t *data = ((struct slow_io *)img->io)->data;

	enter(off);
	for (uint64_t b = off / BS; b * BS < off + len; b++) {
		uint8_t *dst = (uint8_t *)buf + (b * BS - off);
		uint64_t h = host_block(b);

		if (img->ops->locate)
			assert_true(h == VS_NOWHERE);
		if (h == VS_NOWHERE)
			fill(dst, BS, (uint32_t)b ^ 0xabcdu);
		else
			memcpy(dst, data + h * BS, BS);
	}
	leave();
	return 0;
}

static void
odd_drop_cache(struct vs_image *img, uint64_t off, uint64_t len)
{
	(void)img, (void)len;
	enter(off);
	leave();
}

static void
check_odd_format(bool locate)
{
	struct vs_format_ops ops = {
		.name = "odd", .map = NULL, .read = odd_read,
		.drop_cache = odd_drop_cache,
		.locate = locate ? odd_locate : NULL,
	};
	uint8_t *container = malloc(SIZE), *guest = malloc(SIZE);
	struct slow_io io = { .io = { .ops = &slow_io_ops, .name = "odd.img",
	    .size = SIZE, .fd = -1, .direct_fd = -1 }, .data = container };
	struct vs_image img = { .ops = &ops, .name = "odd.img", .size = SIZE,
	    .io = &io.io };

	assert_non_null(container);
	assert_non_null(guest);
	fill(container, SIZE, 7);
	for (uint64_t b = 0; b < SIZE / BS; b++) {
		uint64_t h = host_block(b);

		if (h == VS_NOWHERE)
			fill(guest + b * BS, BS, (uint32_t)b ^ 0xabcdu);
		else
			memcpy(guest + b * BS, container + h * BS, BS);
	}
	overlaps = 0;
	rv_waiting = 0;
	rv_met = rv_over = false;
	read_all(&img, guest, 3);
	assert_int_equal(overlaps, 0);
	/* The located blocks come straight from the container, several
	 * reads at once. */
	if (locate)
		assert_true(rv_met);
	free(container);
	free(guest);
}

static void
test_located_reads_in_parallel(void **state)
{
	(void)state;
	check_odd_format(true);
}

static void
test_format_reads_one_at_a_time(void **state)
{
	(void)state;
	check_odd_format(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows_and_empty_groups),
		cmocka_unit_test(test_no_hashes_without_seed),
		cmocka_unit_test(test_groups_too_large),
		cmocka_unit_test(test_window_too_many_refused),
		cmocka_unit_test(test_located_reads_in_parallel),
		cmocka_unit_test(test_format_reads_one_at_a_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
