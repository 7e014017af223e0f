/*
 * test-wireadapt.c - compressed or as they are, by timing both
 * (src/transport/wireadapt.c), against a model of a push: each MiB put
 * takes the caller a time set by the way the block put a few MiB before
 * went (the buffers on the way), at a cost per byte for each way, which
 * may depend on the data.  The choice kept is the faster way, compression
 * unless the other is faster by the margin; the warm-up compresses; both
 * ways are timed again later; with no unit every block is compressed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "transport/wireadapt.h"

#define MIB (1u << 20)
#define UNIT (16u * MIB)
#define LAG 6			/* MiB on the way: pipe, buffers, pool */
#define PUTS 3000u		/* MiB put in a model run */

/* Seconds per byte of a MiB of data @i going as it is (@zip false) or
 * compressed: "text" MiB compress, others cost the same either way. */
struct model {
	double plain, zip;	/* for text */
	double other;		/* for the rest, both ways */
	unsigned text_every;	/* MiB i is text when i % text_every == 0
				 * (1: all of it) */
};

static double
cost(const struct model *m, unsigned i, bool zip)
{
	if (i % m->text_every)
		return m->other;
	return zip ? m->zip : m->plain;
}

/* Put PUTS MiB through @a; way[i]: how MiB i went. */
static void
run(const struct model *m, uint64_t unit, bool *way)
{
	struct vs_wireadapt a;
	double now = 100.0;

	vs_wireadapt_init(&a, unit);
	for (unsigned i = 0; i < PUTS; i++) {
		way[i] = vs_wireadapt_zip(&a, MIB, now);
		/* The caller waits for what was put LAG MiB before. */
		if (i >= LAG)
			now += cost(m, i - LAG, way[i - LAG]) * MIB;
	}
}

/* MiB compressed among [from, to). */
static unsigned
zipped(const bool *way, unsigned from, unsigned to)
{
	unsigned n = 0;

	for (unsigned i = from; i < to; i++)
		n += way[i];
	return n;
}

/* Warm-up, then 16 timed runs, then the choice for 64 runs, then timed
 * again. */
#define TRIAL_END ((1 + 16) * 16)
#define KEEP_END (TRIAL_END + 64 * 16)

static void
test_plain_faster(void **state)
{
	static bool way[PUTS];
	struct model m = { .plain = 1e-9, .zip = 1.4e-9, .other = 1e-9,
	    .text_every = 1 };

	(void)state;
	run(&m, UNIT, way);
	assert_int_equal(zipped(way, 0, 16), 16);	/* the warm-up */
	/* Timed: as they are first, then by turns. */
	assert_int_equal(zipped(way, 16, 32), 0);
	assert_int_equal(zipped(way, 32, 48), 16);
	assert_int_equal(zipped(way, 16, TRIAL_END), 8 * 16);
	assert_int_equal(zipped(way, TRIAL_END, KEEP_END), 0);
	/* Then timed again, and the same choice. */
	assert_int_equal(zipped(way, KEEP_END, KEEP_END + 16 * 16), 8 * 16);
	assert_int_equal(zipped(way, KEEP_END + 16 * 16,
	    KEEP_END + 16 * 16 + 64 * 16), 0);
}

/* MiB compressed while the first choice holds, for model @m. */
static unsigned
kept_zipped(const struct model *m)
{
	static bool way[PUTS];

	run(m, UNIT, way);
	return zipped(way, TRIAL_END, KEEP_END);
}

static void
test_zip_faster(void **state)
{
	/* A slow link: fewer bytes on it win. */
	struct model m = { .plain = 10e-9, .zip = 4e-9, .other = 10e-9,
	    .text_every = 1 };

	(void)state;
	assert_int_equal(kept_zipped(&m), KEEP_END - TRIAL_END);
}

static void
test_within_margin_zips(void **state)
{
	struct model m = { .plain = 1e-9, .zip = 1.05e-9, .other = 1e-9,
	    .text_every = 1 };

	(void)state;
	assert_int_equal(kept_zipped(&m), KEEP_END - TRIAL_END);
}

static void
test_mixed_data(void **state)
{
	/* One MiB in three is text, where compression costs half as much
	 * again; on the rest both ways cost the same.  As they are is
	 * 1/6 faster on average: over the margin. */
	struct model m = { .plain = 1e-9, .zip = 1.5e-9, .other = 1e-9,
	    .text_every = 3 };

	(void)state;
	assert_int_equal(kept_zipped(&m), 0);
}

static void
test_no_unit_always_zips(void **state)
{
	static bool way[PUTS];
	struct model m = { .plain = 1e-9, .zip = 5e-9, .other = 1e-9,
	    .text_every = 1 };

	(void)state;
	run(&m, 0, way);
	assert_int_equal(zipped(way, 0, PUTS), PUTS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_faster),
		cmocka_unit_test(test_zip_faster),
		cmocka_unit_test(test_within_margin_zips),
		cmocka_unit_test(test_mixed_data),
		cmocka_unit_test(test_no_unit_always_zips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
