/*
 * test-wirepool.c - WRITE payloads compressed ahead (src/transport/
 * wirepool.c): every block put is sent once, in the order it was put,
 * from the caller's thread, and decodes to the bytes put (which the
 * caller may reuse at once); a flush leaves nothing queued; after a send
 * fails nothing more is sent and every call says so.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <pthread.h>
#include <string.h>

#include "transport/proto.h"
#include "transport/wirecomp.h"
#include "transport/wirepool.h"

#define MAXLEN (256u << 10)
#define NBLOCKS 300u

/* What the sends saw. */
struct sink {
	pthread_t caller;		/* the only thread allowed to send */
	unsigned sent;			/* blocks sent so far */
	unsigned fail_at;		/* fail this send (0: never) */
	uint32_t codec;			/* the pool's */
	uint8_t *back;			/* MAXLEN: a block decoded */
	unsigned compressed;		/* sent compressed */
};

/* Block @i: its offset, length and bytes (text-like for even blocks, so
 * they compress; random for odd ones, so they go as they are). */
static uint64_t
block_off(unsigned i)
{
	return (uint64_t)i * MAXLEN * 2 + (i % 7) * 4096;
}

static size_t
block_len(unsigned i)
{
	return MAXLEN - (i % 5) * 8192;
}

static void
block_bytes(unsigned i, uint8_t *p)
{
	size_t len = block_len(i);

	if (i % 2) {
		fill(p, len, i + 1);
		return;
	}
	for (size_t k = 0; k < len; k++)
		p[k] = (uint8_t)("vmsync block  "[k % 14] + (k / 4096 == i % 3));
}

static int
check_send(void *arg, uint64_t off, uint32_t len, uint32_t codec,
    const void *data, size_t dlen)
{
	struct sink *s = arg;
	static uint8_t want[MAXLEN];
	unsigned i = s->sent++;

	assert_true(pthread_equal(pthread_self(), s->caller));
	if (s->fail_at && s->sent == s->fail_at)
		return -1;
	assert_true(i < NBLOCKS);
	assert_int_equal(off, block_off(i));
	assert_int_equal(len, block_len(i));
	block_bytes(i, want);
	if (codec == VS_WIRE_NONE) {
		assert_int_equal(dlen, len);
		assert_memory_equal(data, want, len);
	} else {
		assert_int_equal(codec, s->codec);
		assert_true(dlen < len);
		assert_int_equal(vs_wiredecomp(codec, data, dlen, s->back,
		    len), 0);
		assert_memory_equal(s->back, want, len);
		s->compressed++;
	}
	return 0;
}

static void
run_order(uint32_t codec)
{
	struct sink s = { .caller = pthread_self(), .codec = codec };
	struct vs_wirepool *p;
	uint8_t *buf = malloc(MAXLEN);

	s.back = malloc(MAXLEN);
	assert_non_null(buf);
	assert_non_null(s.back);
	p = vs_wirepool_new(codec, 0, MAXLEN, 0, check_send, &s);
	assert_non_null(p);
	for (unsigned i = 0; i < NBLOCKS; i++) {
		block_bytes(i, buf);
		assert_int_equal(vs_wirepool_put(p, buf, block_len(i),
		    block_off(i)), 0);
		/* The caller reuses its buffer at once. */
		memset(buf, 0xa5, MAXLEN);
		if (i % 37 == 0) {
			assert_int_equal(vs_wirepool_flush(p), 0);
			assert_int_equal(s.sent, i + 1);
			assert_false(vs_wirepool_pending(p, 0, UINT64_MAX));
		}
	}
	assert_int_equal(vs_wirepool_flush(p), 0);
	assert_int_equal(s.sent, NBLOCKS);
	/* The text blocks compressed, the random ones did not. */
	assert_int_equal(s.compressed, NBLOCKS / 2);
	vs_wirepool_free(p);
	free(buf);
	free(s.back);
}

static void
test_order_and_bytes_zstd(void **state)
{
	(void)state;
	run_order(VS_WIRE_ZSTD);
}

static void
test_order_and_bytes_zlib(void **state)
{
	(void)state;
	run_order(VS_WIRE_ZLIB);
}

/* A block queued is pending over its own range only, until sent. */
static void
test_pending(void **state)
{
	struct sink s = { .caller = pthread_self(), .codec = VS_WIRE_ZSTD };
	struct vs_wirepool *p;
	uint8_t *buf = malloc(MAXLEN);

	(void)state;
	s.back = malloc(MAXLEN);
	p = vs_wirepool_new(VS_WIRE_ZSTD, 0, MAXLEN, 0, check_send, &s);
	assert_non_null(p);
	block_bytes(0, buf);
	assert_int_equal(vs_wirepool_put(p, buf, block_len(0),
	    block_off(0)), 0);
	if (s.sent == 0) {
		assert_true(vs_wirepool_pending(p, block_off(0) +
		    block_len(0) - 1, 4096));
		assert_true(vs_wirepool_pending(p, 0, block_off(0) + 1));
	}
	assert_false(vs_wirepool_pending(p, block_off(0) + block_len(0),
	    4096));
	assert_int_equal(vs_wirepool_flush(p), 0);
	assert_int_equal(s.sent, 1);
	assert_false(vs_wirepool_pending(p, 0, UINT64_MAX));
	vs_wirepool_free(p);
	free(buf);
	free(s.back);
}

/* The 5th send fails: nothing is sent after it, every call fails. */
static void
test_send_failure(void **state)
{
	struct sink s = { .caller = pthread_self(), .codec = VS_WIRE_ZSTD,
	    .fail_at = 5 };
	struct vs_wirepool *p;
	uint8_t *buf = malloc(MAXLEN);
	int rc = 0;
	unsigned i;

	(void)state;
	s.back = malloc(MAXLEN);
	p = vs_wirepool_new(VS_WIRE_ZSTD, 0, MAXLEN, 0, check_send, &s);
	assert_non_null(p);
	for (i = 0; i < 40 && rc == 0; i++) {
		block_bytes(i, buf);
		rc = vs_wirepool_put(p, buf, block_len(i), block_off(i));
	}
	if (rc == 0)
		rc = vs_wirepool_flush(p);
	assert_int_equal(rc, -1);
	assert_int_equal(s.sent, 5);
	assert_int_equal(vs_wirepool_put(p, buf, block_len(i),
	    block_off(i)), -1);
	assert_int_equal(vs_wirepool_flush(p), -1);
	assert_int_equal(s.sent, 5);
	vs_wirepool_free(p);		/* with blocks still queued */
	free(buf);
	free(s.back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_bytes_zstd),
		cmocka_unit_test(test_order_and_bytes_zlib),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_send_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
