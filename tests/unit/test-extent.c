/*
 * test-extent.c - building extent lists and checking that a map reply
 * covers its range exactly (vs_extent_add, vs_extent_check in
 * src/formats/format.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "formats/format.h"

#define D VS_EXT_DATA
#define Z VS_EXT_ZERO

/* Check extent @i of @v. */
static void
ext_is(const struct vs_extent_vec *v, size_t i, uint64_t off, uint64_t len,
    enum vs_extent_type type)
{
	assert_true(i < v->n);
	if (v->v[i].off != off || v->v[i].len != len || v->v[i].type != type)
		fail_msg("extent %zu is (%llu, %llu, %d), want (%llu, %llu, %d)",
		    i, (unsigned long long)v->v[i].off,
		    (unsigned long long)v->v[i].len, (int)v->v[i].type,
		    (unsigned long long)off, (unsigned long long)len,
		    (int)type);
}

/* Push without merging (to build malformed replies). */
static void
raw_push(struct vs_extent_vec *v, uint64_t off, uint64_t len,
    enum vs_extent_type type)
{
	assert_int_equal(vs_extent_vec_push(v, (struct vs_extent){
	    .off = off, .len = len, .type = type }), 0);
}

static void
test_add_merges_adjacent(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	assert_int_equal(vs_extent_add(&v, 0, 4096, D), 0);
	assert_int_equal(vs_extent_add(&v, 4096, 4096, D), 0);
	assert_int_equal(vs_extent_add(&v, 8192, 100, D), 0);
	assert_int_equal(v.n, 1);
	ext_is(&v, 0, 0, 8292, D);
	assert_int_equal(vs_extent_add(&v, 8292, 10, Z), 0);
	assert_int_equal(vs_extent_add(&v, 8302, 20, Z), 0);
	assert_int_equal(v.n, 2);
	ext_is(&v, 1, 8292, 30, Z);
	vs_extent_vec_free(&v);
	assert_null(v.v);
	assert_int_equal(v.n, 0);
}

static void
test_add_type_change(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	assert_int_equal(vs_extent_add(&v, 0, 4096, D), 0);
	assert_int_equal(vs_extent_add(&v, 4096, 4096, Z), 0);
	assert_int_equal(vs_extent_add(&v, 8192, 4096, D), 0);
	assert_int_equal(v.n, 3);
	ext_is(&v, 0, 0, 4096, D);
	ext_is(&v, 1, 4096, 4096, Z);
	ext_is(&v, 2, 8192, 4096, D);
	vs_extent_vec_free(&v);
}

static void
test_add_gap(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	assert_int_equal(vs_extent_add(&v, 0, 4096, D), 0);
	assert_int_equal(vs_extent_add(&v, 4097, 4096, D), 0);
	assert_int_equal(v.n, 2);
	ext_is(&v, 0, 0, 4096, D);
	ext_is(&v, 1, 4097, 4096, D);
	/* Going backwards is not a continuation either. */
	assert_int_equal(vs_extent_add(&v, 0, 10, D), 0);
	assert_int_equal(v.n, 3);
	vs_extent_vec_free(&v);
}

static void
test_add_zero_length(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	assert_int_equal(vs_extent_add(&v, 0, 0, D), 0);
	assert_int_equal(v.n, 0);
	assert_int_equal(vs_extent_add(&v, 0, 512, D), 0);
	assert_int_equal(vs_extent_add(&v, 512, 0, Z), 0);
	assert_int_equal(vs_extent_add(&v, 9999, 0, D), 0);
	assert_int_equal(v.n, 1);
	ext_is(&v, 0, 0, 512, D);
	vs_extent_vec_free(&v);
}

static void
test_add_many(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	/* Alternating types: no merges, the vector grows past its first
	 * allocation. */
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(vs_extent_add(&v, i * 10, 10,
		    i % 2 ? Z : D), 0);
	assert_int_equal(v.n, 1000);
	ext_is(&v, 999, 9990, 10, Z);
	assert_int_equal(vs_extent_check(&v, 0, 10000), 0);
	vs_extent_vec_reset(&v);
	assert_int_equal(v.n, 0);
	vs_extent_vec_free(&v);
}

static void
test_check_exact(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 100, 50, D);
	raw_push(&v, 150, 50, Z);
	raw_push(&v, 200, 1, D);
	assert_int_equal(vs_extent_check(&v, 100, 101), 0);
	/* Two extents of one type side by side are still a cover. */
	raw_push(&v, 201, 9, D);
	assert_int_equal(vs_extent_check(&v, 100, 110), 0);
	vs_extent_vec_free(&v);
	/* Nothing covers nothing. */
	assert_int_equal(vs_extent_check(&v, 5, 0), 0);
}

static void
test_check_short_or_empty(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	assert_int_equal(vs_extent_check(&v, 0, 1), -1);
	raw_push(&v, 0, 4096, D);
	assert_int_equal(vs_extent_check(&v, 0, 8192), -1);	/* short */
	assert_int_equal(vs_extent_check(&v, 4096, 4096), -1);	/* elsewhere */
	vs_extent_vec_free(&v);
}

static void
test_check_gap(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 0, 4096, D);
	raw_push(&v, 8192, 4096, Z);
	assert_int_equal(vs_extent_check(&v, 0, 12288), -1);
	vs_extent_vec_free(&v);
	/* A gap at the start. */
	raw_push(&v, 1, 4095, D);
	assert_int_equal(vs_extent_check(&v, 0, 4096), -1);
	vs_extent_vec_free(&v);
}

static void
test_check_overlap(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 0, 8192, D);
	raw_push(&v, 4096, 8192, Z);
	assert_int_equal(vs_extent_check(&v, 0, 12288), -1);
	vs_extent_vec_free(&v);
	/* Out of order. */
	raw_push(&v, 4096, 4096, D);
	raw_push(&v, 0, 4096, D);
	assert_int_equal(vs_extent_check(&v, 0, 8192), -1);
	vs_extent_vec_free(&v);
}

static void
test_check_overrun(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 0, 8192, D);
	assert_int_equal(vs_extent_check(&v, 0, 4096), -1);
	vs_extent_vec_free(&v);
	/* Exact end, then one more extent past it. */
	raw_push(&v, 0, 4096, D);
	raw_push(&v, 4096, 1, Z);
	assert_int_equal(vs_extent_check(&v, 0, 4096), -1);
	vs_extent_vec_free(&v);
}

static void
test_check_zero_length(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 0, 4096, D);
	raw_push(&v, 4096, 0, Z);
	raw_push(&v, 4096, 4096, D);
	assert_int_equal(vs_extent_check(&v, 0, 8192), -1);
	vs_extent_vec_free(&v);
	raw_push(&v, 0, 0, D);
	assert_int_equal(vs_extent_check(&v, 0, 0), -1);
	vs_extent_vec_free(&v);
}

static void
test_check_bad_type(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	raw_push(&v, 0, 4096, D);
	raw_push(&v, 4096, 4096, (enum vs_extent_type)7);
	assert_int_equal(vs_extent_check(&v, 0, 8192), -1);
	v.v[1].type = (enum vs_extent_type)-1;
	assert_int_equal(vs_extent_check(&v, 0, 8192), -1);
	v.v[1].type = Z;
	assert_int_equal(vs_extent_check(&v, 0, 8192), 0);
	vs_extent_vec_free(&v);
}

static void
test_check_overflow(void **state)
{
	struct vs_extent_vec v = { 0 };

	(void)state;
	/* The range itself wraps. */
	raw_push(&v, UINT64_MAX - 10, 20, D);
	assert_int_equal(vs_extent_check(&v, UINT64_MAX - 10, 20), -1);
	vs_extent_vec_free(&v);
	/* An extent that wraps back to the end of the range. */
	raw_push(&v, UINT64_MAX - 4095, 4096, D);
	raw_push(&v, 0, UINT64_MAX - 4095, Z);
	assert_int_equal(vs_extent_check(&v, UINT64_MAX - 4095, 4095), -1);
	vs_extent_vec_free(&v);
	/* One whose end wraps to exactly the range's end. */
	raw_push(&v, 10, UINT64_MAX, D);
	assert_int_equal(vs_extent_check(&v, 10, 9), -1);
	vs_extent_vec_free(&v);
	/* Up to the very last byte is fine. */
	raw_push(&v, UINT64_MAX - 8191, 4096, D);
	raw_push(&v, UINT64_MAX - 4095, 4095, Z);
	assert_int_equal(vs_extent_check(&v, UINT64_MAX - 8191, 8191), 0);
	vs_extent_vec_free(&v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_merges_adjacent),
		cmocka_unit_test(test_add_type_change),
		cmocka_unit_test(test_add_gap),
		cmocka_unit_test(test_add_zero_length),
		cmocka_unit_test(test_add_many),
		cmocka_unit_test(test_check_exact),
		cmocka_unit_test(test_check_short_or_empty),
		cmocka_unit_test(test_check_gap),
		cmocka_unit_test(test_check_overlap),
		cmocka_unit_test(test_check_overrun),
		cmocka_unit_test(test_check_zero_length),
		cmocka_unit_test(test_check_bad_type),
		cmocka_unit_test(test_check_overflow),
	};

	return cmocka_run_group_tests_name("extent", tests, NULL, NULL);
}
