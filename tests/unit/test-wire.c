/*
 * test-wire.c - message frames (src/transport/wire.c, pack.h): round trips
 * through a socket pair, batching of small messages, and every kind of
 * damage (flipped bits, a huge length, a cut stream, a closed peer) ends in
 * a clean error; payload readers never run past their buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/pack.h"
#include "transport/wire.h"

static int sv[2];
static struct vs_wire a, b;

static int
setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	vs_err_reset();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vs_wire_init(&a, sv[0], sv[0], "peer-a", VS_EXIT_TARGET);
	vs_wire_init(&b, sv[1], sv[1], "peer-b", VS_EXIT_TARGET);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	vs_wire_free(&a);
	vs_wire_free(&b);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return 0;
}

static void
test_round_trip(void **state)
{
	static uint8_t big[1 << 20];
	struct vs_msg m;

	(void)state;
	fill(big, sizeof(big), 3);
	assert_int_equal(vs_wire_send(&a, 7, "hello", 5), 0);
	assert_int_equal(vs_wire_send(&a, 8, NULL, 0), 0);
	assert_int_equal(vs_wire_send2(&a, 9, "hd", 2, big, 100000), 0);
	assert_int_equal(vs_wire_flush(&a), 0);
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(m.type, 7);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.p, "hello", 5);
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(m.type, 8);
	assert_int_equal(m.len, 0);
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(m.type, 9);
	assert_int_equal(m.len, 100002);
	assert_memory_equal(m.p, "hd", 2);
	assert_memory_equal(m.p + 2, big, 100000);
	assert_int_equal(a.sent, b.received);
	assert_int_equal(a.sent, (8 + 5 + 4) + (8 + 4) + (8 + 100002 + 4));
	/* Larger than the output buffer and the socket's: a child sends. */
	if (fork() == 0) {
		int ok = vs_wire_send(&b, 10, big, sizeof(big)) == 0 &&
		    vs_wire_flush(&b) == 0;

		_exit(ok ? 0 : 1);
	}
	assert_int_equal(vs_wire_recv(&a, &m), 0);
	assert_int_equal(m.type, 10);
	{
		int status = -1;

		assert_true(wait(&status) > 0);
		assert_int_equal(status, 0);
	}
	assert_int_equal(m.len, sizeof(big));
	assert_memory_equal(m.p, big, sizeof(big));
}

/* Every single-bit flip of a frame is caught. */
static void
test_bit_flips(void **state)
{
	uint8_t frame[64];
	struct vs_msg m;
	size_t used, len;

	(void)state;
	assert_int_equal(vs_wire_send(&a, 42, "payload of a frame", 18), 0);
	len = a.out_len;
	assert_true(len <= sizeof(frame));
	memcpy(frame, a.out, len);
	assert_int_equal(vs_wire_parse(frame, len, &m, &used), 0);
	assert_int_equal(used, len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		int r;

		frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		r = vs_wire_parse(frame, len, &m, &used);
		/* A flipped length may ask for more bytes: also not a frame. */
		assert_true(r != 0);
		frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* Cut anywhere: more bytes needed, never a frame. */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(vs_wire_parse(frame, cut, &m, &used), 1);
}

static void
test_garbage_checksum(void **state)
{
	struct vs_msg m;

	(void)state;
	assert_int_equal(vs_wire_send(&a, 1, "abcdef", 6), 0);
	a.out[10] ^= 1;
	assert_int_equal(vs_wire_flush(&a), 0);
	assert_int_equal(vs_wire_recv(&b, &m), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
	/* Failed once: stays failed. */
	assert_int_equal(vs_wire_recv(&b, &m), -1);
}

static void
test_huge_length(void **state)
{
	uint8_t hdr[8] = { 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f };
	struct vs_msg m;

	(void)state;
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(vs_wire_recv(&b, &m), -1);
	/* Nothing was allocated for it. */
	assert_null(b.in);
}

static void
test_cut_stream(void **state)
{
	struct vs_msg m;

	(void)state;
	assert_int_equal(vs_wire_send(&a, 1, "abcdef", 6), 0);
	assert_int_equal(write(sv[0], a.out, 9), 9);
	a.out_len = 0;
	shutdown(sv[0], SHUT_WR);
	assert_int_equal(vs_wire_recv(&b, &m), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
}

static void
test_closed_peer(void **state)
{
	static uint8_t big[1 << 20];
	struct vs_msg m;

	(void)state;
	close(sv[1]);
	sv[1] = -1;
	/* Queued, then the write fails: lost connection, one error. */
	assert_int_equal(vs_wire_send(&a, 1, big, sizeof(big)), 0);
	assert_int_equal(vs_wire_recv(&a, &m), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_TARGET);
}

static void
test_pack(void **state)
{
	uint8_t buf[64];
	struct vs_pack w = { .p = buf, .cap = sizeof(buf) };
	struct vs_unpack r;
	char s[8];

	(void)state;
	vs_put_u8(&w, 0xab);
	vs_put_u32(&w, 0x01020304);
	vs_put_u64(&w, 0x1122334455667788ull);
	vs_put_str(&w, "path");
	assert_false(w.bad);
	r = (struct vs_unpack){ .p = buf, .left = w.len };
	assert_int_equal(vs_get_u8(&r), 0xab);
	assert_int_equal(vs_get_u32(&r), 0x01020304);
	assert_int_equal(vs_get_u64(&r), 0x1122334455667788ull);
	vs_get_str(&r, s, 7);
	assert_string_equal(s, "path");
	assert_false(r.bad);
	assert_int_equal(r.left, 0);
	/* Past the end: bad, zeros. */
	assert_int_equal(vs_get_u64(&r), 0);
	assert_true(r.bad);
	/* A string longer than allowed, or with a NUL. */
	r = (struct vs_unpack){ .p = buf + 13, .left = w.len - 13 };
	vs_get_str(&r, s, 3);
	assert_true(r.bad);
	buf[19] = 0;
	r = (struct vs_unpack){ .p = buf + 13, .left = w.len - 13 };
	vs_get_str(&r, s, 7);
	assert_true(r.bad);
	/* Writer overflow. */
	w = (struct vs_pack){ .p = buf, .cap = 6 };
	vs_put_u64(&w, 1);
	assert_true(w.bad);
	assert_int_equal(w.len, 0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),
		T(test_bit_flips),
		T(test_garbage_checksum),
		T(test_huge_length),
		T(test_cut_stream),
		T(test_closed_peer),
		T(test_pack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
