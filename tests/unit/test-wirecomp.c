/*
 * test-wirecomp.c - compression of WRITE payloads (src/transport/wirecomp.c,
 * remote.c): a block that does not compress is judged so by the probe and
 * sent as it is, one that compresses still does, and both reach the peer
 * intact.
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
#include <unistd.h>

#include "transport/pack.h"
#include "transport/proto.h"
#include "transport/remote.h"
#include "transport/wire.h"
#include "transport/wirecomp.h"
#include "util.h"

#define BLK (64u << 10)

static const uint32_t codecs[] = { VS_WIRE_ZSTD, VS_WIRE_ZLIB };
static const int levels[] = { 0, 1, 3, 9 };

/* Lines of text, as a guest's logs and configuration files hold. */
static void
text(uint8_t *p, size_t len)
{
	size_t n = 0;

	for (unsigned i = 0; n < len; i++) {
		char line[80];
		int k = snprintf(line, sizeof(line), "Dec  4 12:%02u:%02u host "
		    "sshd[%u]: session opened for user %u\n", i / 60 % 60,
		    i % 60, 1000 + i * 7 % 913, i % 5);

		memcpy(p + n, line, vs_min((size_t)k, len - n));
		n += (size_t)k;
	}
}

/* Random data is judged incompressible and not compressed by any codec at
 * any level: the caller sends it as it is. */
static void
test_random_skipped(void **state)
{
	static uint8_t in[BLK], out[2 * BLK];

	(void)state;
	for (uint32_t seed = 1; seed <= 8; seed++) {
		fill(in, sizeof(in), seed);
		assert_false(vs_wirecomp_worth(in, sizeof(in)));
		for (size_t c = 0; c < 2; c++)
			for (size_t l = 0; l < 4; l++)
				assert_int_equal(vs_wirecomp(codecs[c],
				    levels[l], in, sizeof(in), out,
				    sizeof(out)), 0);
	}
	/* Too small to sample: compressed, and sent as it is since it did
	 * not shrink. */
	assert_true(vs_wirecomp_worth(in, 4096));
	assert_int_equal(vs_wirecomp(VS_WIRE_ZSTD, 0, in, 4096, out,
	    sizeof(out)), 0);
}

/* Text, zeros, random data with half zeros and a repeated random pattern
 * all compress, and decompress to what they were. */
static void
test_compressible(void **state)
{
	static uint8_t in[BLK], out[2 * BLK], back[BLK];

	(void)state;
	for (int kind = 0; kind < 4; kind++) {
		memset(in, 0, sizeof(in));
		if (kind == 0)
			text(in, sizeof(in));
		else if (kind == 2)
			fill(in, sizeof(in) / 2, 5);
		else if (kind == 3)
			for (size_t o = 0; o < sizeof(in); o += 4096)
				fill(in + o, 4096, 6);
		assert_true(vs_wirecomp_worth(in, sizeof(in)));
		for (size_t c = 0; c < 2; c++)
			for (size_t l = 0; l < 4; l++) {
				size_t n = vs_wirecomp(codecs[c], levels[l],
				    in, sizeof(in), out, sizeof(out));

				assert_true(n > 0);
				assert_true(n < sizeof(in) * 3 / 4);
				assert_int_equal(vs_wiredecomp(codecs[c], out,
				    n, back, sizeof(back)), 0);
				assert_memory_equal(back, in, sizeof(in));
			}
	}
}

/* Through the remote target: a run of two random blocks is one WRITE,
 * with codec none and the blocks themselves; that of a text block zstd
 * and fewer bytes.  The WRITEs are compressed ahead, yet a RECORD sent
 * after them still follows them on the wire. */
static void
test_write_codec(void **state)
{
	static uint8_t rnd[2 * BLK], txt[BLK], back[BLK];
	static struct vs_hash old[4], new[4];
	uint8_t buf[64];
	struct vs_pack p = { .p = buf, .cap = sizeof(buf) };
	struct vs_target_info info = { 0 };
	struct vs_stats stats = { 0 };
	struct vs_target *t;
	struct vs_wire a, b;
	struct vs_msg m;
	struct vs_req q;
	int sv[2];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	vs_err_reset();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	vs_wire_init(&a, sv[0], sv[0], "peer-a", VS_EXIT_TARGET);
	vs_wire_init(&b, sv[1], sv[1], "peer-b", VS_EXIT_TARGET);
	fill(rnd, sizeof(rnd), 9);
	text(txt, sizeof(txt));

	/* The target's answer to BEGIN, ahead of it: 64 KiB blocks. */
	vs_put_u32(&p, BLK);
	vs_put_u64(&p, 1);
	vs_put_u8(&p, 0);
	vs_put_str(&p, "new");
	vs_put(&p, vs_hash_hole.b, sizeof(vs_hash_hole.b));
	assert_int_equal(vs_wire_send(&b, VS_MSG_BEGUN, buf, p.len), 0);
	assert_int_equal(vs_wire_flush(&b), 0);

	assert_int_equal(vs_remote_target(&a, "remote", VS_WIRE_ZSTD, 0,
	    false, &stats, &t), 0);
	assert_int_equal(t->ops->begin(t, 4 * BLK, &info), 0);
	assert_int_equal(t->ops->write(t, rnd, sizeof(rnd), 0), 0);
	assert_int_equal(t->ops->write(t, txt, sizeof(txt), 2 * BLK), 0);
	memset(new, 1, sizeof(new));		/* entries that changed */
	assert_int_equal(t->ops->record(t, 0, 4, old, new), 0);
	assert_int_equal(vs_wire_flush(&a), 0);

	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(m.type, VS_MSG_BEGIN);
	/* A run of two blocks is one WRITE. */
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.type, VS_MSG_WRITE);
	assert_int_equal(q.a, 0);
	assert_int_equal(q.b, 2 * BLK);
	assert_int_equal(q.codec, VS_WIRE_NONE);
	assert_int_equal(q.data_len, 2 * BLK);
	assert_memory_equal(q.data, rnd, 2 * BLK);
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.codec, VS_WIRE_ZSTD);
	assert_true(q.data_len < BLK / 4);
	assert_int_equal(vs_wiredecomp(q.codec, q.data, q.data_len, back,
	    sizeof(back)), 0);
	assert_memory_equal(back, txt, BLK);
	assert_int_equal(vs_wire_recv(&b, &m), 0);
	assert_int_equal(m.type, VS_MSG_RECORD);

	t->ops->close(t);
	vs_wire_free(&a);
	vs_wire_free(&b);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_skipped),
		cmocka_unit_test(test_compressible),
		cmocka_unit_test(test_write_codec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
