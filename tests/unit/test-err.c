/*
 * test-err.c - the first-error state (src/err.c) when several threads
 * report at once, as the reader threads do: the category and text kept
 * belong to one and the same error, and nothing races.  make check also
 * builds this file with ThreadSanitizer (test-err-tsan), which fails on
 * any unlocked access to that state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "vmsync.h"

#define THREADS 8
#define ROUNDS 200

static pthread_barrier_t start;

/* Each thread reports with its own category, and says it in the text. */
static void *
reporter(void *arg)
{
	enum vs_exit cat = (enum vs_exit)(uintptr_t)arg;

	pthread_barrier_wait(&start);
	for (int i = 0; i < ROUNDS; i++) {
		vs_err(cat, "reader", "category %d", (int)cat);
		(void)vs_err_first();
	}
	return NULL;
}

static void
test_first_error_from_threads(void **state)
{
	static const enum vs_exit cats[] = { VS_EXIT_USAGE, VS_EXIT_SOURCE,
	    VS_EXIT_TARGET, VS_EXIT_PARTIAL };
	pthread_t t[THREADS];
	char want[64];

	(void)state;
	vs_err_quiet = true;
	for (int round = 0; round < 20; round++) {
		vs_err_reset();
		pthread_barrier_init(&start, NULL, THREADS);
		for (int i = 0; i < THREADS; i++)
			assert_int_equal(pthread_create(&t[i], NULL, reporter,
			    (void *)(uintptr_t)cats[i % 4]), 0);
		for (int i = 0; i < THREADS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&start);
		snprintf(want, sizeof(want), "reader: category %d",
		    (int)vs_err_first());
		assert_int_not_equal(vs_err_first(), VS_EXIT_OK);
		assert_string_equal(vs_err_text(), want);
	}
	vs_err_reset();
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
	assert_string_equal(vs_err_text(), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_error_from_threads),
	};

	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
