/*
 * test-proto.c - the protocol's message parsers (src/transport/proto.c):
 * what the encoders write parses back, and every malformed field, short
 * or over-long payload, bad range and unknown type is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <string.h>
#include <unistd.h>

#include "transport/pack.h"
#include "transport/proto.h"

static uint8_t buf[8192];

static struct vs_msg
msg(uint32_t type, const struct vs_pack *p)
{
	return (struct vs_msg){ type, (uint32_t)p->len, p->p };
}

static struct vs_pack
packer(void)
{
	return (struct vs_pack){ .p = buf, .cap = sizeof(buf) };
}

/* Encode with the real encoder through a wire into a pipe, read back. */
static void
round_trip(int (*send)(struct vs_wire *, const void *), const void *arg,
    struct vs_msg *m)
{
	static struct vs_wire a, b;
	int p[2];

	assert_int_equal(pipe(p), 0);
	vs_wire_init(&a, -1, p[1], "a", VS_EXIT_TARGET);
	vs_wire_init(&b, p[0], -1, "b", VS_EXIT_TARGET);
	assert_int_equal(send(&a, arg), 0);
	assert_int_equal(vs_wire_flush(&a), 0);
	assert_int_equal(vs_wire_recv(&b, m), 0);
	memcpy(buf, m->p, m->len);
	m->p = buf;
	vs_wire_free(&a);
	vs_wire_free(&b);
	close(p[0]);
	close(p[1]);
}

static int
send_open(struct vs_wire *w, const void *o)
{
	return vs_send_open(w, o);
}

static int
send_hello(struct vs_wire *w, const void *h)
{
	return vs_send_hello(w, h);
}

static void
test_round_trips(void **state)
{
	static struct vs_open o, o2;
	struct vs_hello h = { 1, 6, 1 }, h2;
	struct vs_msg m;

	(void)state;
	o.direction = VS_PUSH;
	o.flags = VS_OPEN_DRY_RUN;
	o.block_size = 65536;
	o.codec = VS_WIRE_ZSTD;
	o.level = 3;
	o.mode = 0100644;
	o.mtime_sec = 1700000000;
	o.mtime_nsec = 5;
	strcpy(o.path, "/backup/");
	strcpy(o.name, "vm.raw");
	round_trip(send_open, &o, &m);
	assert_int_equal(vs_parse_open(&m, &o2), 0);
	assert_string_equal(o2.path, "/backup/");
	assert_string_equal(o2.name, "vm.raw");
	assert_int_equal(o2.mtime_sec, 1700000000);
	assert_int_equal(o2.codec, VS_WIRE_ZSTD);
	round_trip(send_hello, &h, &m);
	assert_int_equal(vs_parse_hello(&m, &h2), 0);
	assert_int_equal(h2.codecs, 6);
	/* One byte more or less: refused. */
	m.len--;
	assert_int_equal(vs_parse_hello(&m, &h2), -1);
	m.len += 2;
	assert_int_equal(vs_parse_hello(&m, &h2), -1);
}

static void
test_open_refusals(void **state)
{
	static struct vs_open o;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	for (int k = 0; k < 6; k++) {
		p = packer();
		vs_put_u32(&p, k == 0 ? 3 : VS_PUSH);	/* direction */
		vs_put_u32(&p, k == 1 ? 0x80 : 0);	/* flags */
		vs_put_u32(&p, 0);
		vs_put_u32(&p, k == 2 ? 7 : 0);		/* codec */
		vs_put_u32(&p, 0);
		vs_put_u32(&p, 0);
		vs_put_u64(&p, 0);
		vs_put_u64(&p, k == 3 ? 1000000000 : 0);	/* nsec */
		vs_put_str(&p, k == 4 ? "" : "/backup");
		vs_put_str(&p, k == 5 ? "../x" : "vm.img");
		vs_put_str(&p, "");
		vs_put_str(&p, "");
		m = msg(VS_MSG_OPEN, &p);
		assert_int_equal(vs_parse_open(&m, &o), -1);
	}
	/* A path longer than allowed. */
	p = packer();
	for (int i = 0; i < 8; i++)
		vs_put_u64(&p, i == 0 ? VS_PUSH : 0);
	vs_put_u32(&p, VS_PATH_MAX + 1);
	m = msg(VS_MSG_OPEN, &p);
	assert_int_equal(vs_parse_open(&m, &o), -1);
}

static void
test_requests(void **state)
{
	struct vs_req q;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	/* Good ones. */
	p = packer();
	vs_put_u64(&p, 1ull << 30);
	vs_put_str(&p, "qcow2");
	vs_put_u64(&p, 1ull << 29);
	m = msg(VS_MSG_BEGIN, &p);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.a, 1ull << 30);
	assert_string_equal(q.format, "qcow2");
	assert_int_equal(q.b, 1ull << 29);
	/* More data than the size: refused. */
	p = packer();
	vs_put_u64(&p, 4096);
	vs_put_str(&p, "raw");
	vs_put_u64(&p, 8192);
	m = msg(VS_MSG_BEGIN, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, 4096);
	vs_put_u32(&p, 4096);
	vs_put_u32(&p, 64);
	m = msg(VS_MSG_DIGESTS, &p);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	p = packer();
	vs_put_u64(&p, 0);
	vs_put_u32(&p, 4);
	vs_put_u8(&p, VS_WIRE_NONE);
	vs_put(&p, "abcd", 4);
	m = msg(VS_MSG_WRITE, &p);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.data_len, 4);
	/* Bad ones. */
	p = packer();
	vs_put_u64(&p, 0);
	vs_put_u32(&p, 5);
	vs_put_u8(&p, VS_WIRE_NONE);
	vs_put(&p, "abcd", 4);			/* length says 5 */
	m = msg(VS_MSG_WRITE, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, 0);
	vs_put_u32(&p, (4u << 20) + 1);		/* over a chunk */
	vs_put_u8(&p, VS_WIRE_ZSTD);
	m = msg(VS_MSG_WRITE, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, 0);
	vs_put_u32(&p, 100);
	vs_put_u32(&p, 0);			/* per 0 */
	m = msg(VS_MSG_DIGESTS, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, UINT64_MAX - 10);
	vs_put_u32(&p, 100);			/* wraps */
	m = msg(VS_MSG_SUMMARIES, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, 0);
	vs_put_u32(&p, VS_PROTO_MAX_ENTRIES + 1);
	m = msg(VS_MSG_SUMMARIES, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u64(&p, 5);
	vs_put_u64(&p, 0);			/* empty punch */
	m = msg(VS_MSG_PUNCH, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	m = msg(99, &p);			/* unknown type */
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	vs_put_u8(&p, 0);			/* COMMIT takes nothing */
	m = msg(VS_MSG_COMMIT, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
}

static void
put_record(struct vs_pack *p, uint32_t n, const uint32_t *idx, uint32_t count,
    uint32_t claimed)
{
	uint8_t h[32] = { 0 };

	vs_put_u64(p, 0);
	vs_put_u32(p, n);
	vs_put_u32(p, claimed);
	for (uint32_t i = 0; i < count; i++) {
		vs_put_u32(p, idx[i]);
		vs_put(p, h, sizeof(h));
	}
}

static void
test_record(void **state)
{
	const uint32_t up[] = { 1, 5, 9 }, same[] = { 1, 5, 5 };
	const uint32_t down[] = { 5, 1, 9 }, out[] = { 1, 5, 10 };
	struct vs_req q;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	p = packer();
	put_record(&p, 10, up, 3, 3);
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.count, 3);
	p = packer();
	put_record(&p, 10, same, 3, 3);
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	put_record(&p, 10, down, 3, 3);
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	put_record(&p, 10, out, 3, 3);
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	put_record(&p, 10, up, 3, 4);		/* claims one more */
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
	p = packer();
	put_record(&p, 2, up, 3, 3);		/* more than n */
	m = msg(VS_MSG_RECORD, &p);
	assert_int_equal(vs_parse_req(&m, &q), -1);
}

static void
test_error_message(void **state)
{
	struct vs_error_msg e;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	p = packer();
	vs_put_u32(&p, VS_EXIT_TARGET);
	vs_put_str(&p, "disk full\033[2J\n");
	m = msg(VS_MSG_ERROR, &p);
	assert_int_equal(vs_parse_error(&m, &e), 0);
	assert_int_equal(e.cat, VS_EXIT_TARGET);
	/* Escaped, so it cannot drive the terminal or fake a line. */
	assert_string_equal(e.text, "disk full\\033[2J\\012");
	p = packer();
	vs_put_u32(&p, 0);			/* OK is not an error */
	vs_put_str(&p, "x");
	m = msg(VS_MSG_ERROR, &p);
	assert_int_equal(vs_parse_error(&m, &e), -1);
	p = packer();
	vs_put_u32(&p, 77);
	vs_put_str(&p, "x");
	m = msg(VS_MSG_ERROR, &p);
	assert_int_equal(vs_parse_error(&m, &e), -1);
}

static void
test_replies(void **state)
{
	struct vs_hash h[3];
	struct vs_begun b;
	struct vs_done d;
	struct vs_stats_msg st;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	for (uint32_t bs = 2048; bs <= (8u << 20); bs *= 2) {
		p = packer();
		vs_put_u32(&p, bs == (1u << 20) ? bs + 1 : bs);
		vs_put_u64(&p, 7);
		vs_put_u8(&p, 1);
		vs_put_str(&p, "trusted");
		vs_put(&p, buf + 4000, 16);
		m = msg(VS_MSG_BEGUN, &p);
		/* Powers of two from 4 KiB to 4 MiB only. */
		assert_int_equal(vs_parse_begun(&m, &b), bs < 4096 ||
		    bs > (4u << 20) || bs == (1u << 20) ? -1 : 0);
	}
	m.len--;
	assert_int_equal(vs_parse_begun(&m, &b), -1);
	p = packer();
	vs_put(&p, buf + 4000, 48);
	m = msg(VS_MSG_DIGESTS_R, &p);
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_DIGESTS_R, 3, h), 0);
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_DIGESTS_R, 2, h), -1);
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_SUMMARIES_R, 3, h), -1);
	m.type = VS_MSG_DONE;
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_DONE, 3, h), -1);
	p = packer();
	for (int i = 0; i < 4; i++)
		vs_put_u64(&p, (uint64_t)i);
	m = msg(VS_MSG_DONE, &p);
	assert_int_equal(vs_parse_done(&m, &d), 0);
	assert_int_equal(d.unchanged, 3);
	assert_int_equal(vs_parse_stats(&m, &st), -1);	/* wrong type */
	m.type = VS_MSG_STATS;
	assert_int_equal(vs_parse_stats(&m, &st), -1);	/* one field short */
	vs_put_u64(&p, 99);
	m = msg(VS_MSG_STATS, &p);
	assert_int_equal(vs_parse_stats(&m, &st), 0);
	assert_int_equal(st.usec, 99);
	m.type = VS_MSG_DONE;
	assert_int_equal(vs_parse_done(&m, &d), -1);	/* one field over */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_open_refusals),
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
