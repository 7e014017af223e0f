/*
 * test-proto.c - the protocol's messages (src/transport/proto.c): what
 * each encoder writes parses back to the same fields, at the sizes
 * proto.h names, and every malformed field, short or over-long payload,
 * bad range and unknown type is refused.
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

/* Encoders and parsers in the shapes round_trip() and
 * refuse_short_long() take. */
#define SENDER(name, fn)						\
	static int							\
	name(struct vs_wire *w, const void *arg)			\
	{								\
		return fn(w, arg);					\
	}
#define PARSER(name, fn)						\
	static int							\
	name(const struct vs_msg *m, void *out)				\
	{								\
		return fn(m, out);					\
	}
SENDER(send_open, vs_send_open)
SENDER(send_hello, vs_send_hello)
SENDER(send_begun, vs_send_begun)
SENDER(send_done, vs_send_done)

static int
send_stats(struct vs_wire *w, const void *arg)
{
	return vs_send_stats(w, arg, VS_PROTO_VERSION);
}

/* STATS as a session of version 4 sends it: no guest size. */
static int
send_stats_v4(struct vs_wire *w, const void *arg)
{
	return vs_send_stats(w, arg, 4);
}
PARSER(parse_req, vs_parse_req)
PARSER(parse_begun, vs_parse_begun)
PARSER(parse_done, vs_parse_done)
PARSER(parse_stats, vs_parse_stats)

/* The payload one byte short, then one byte long: refused.  The byte
 * past the end is there: payloads sit in buf. */
static void
refuse_short_long(struct vs_msg m, int (*parse)(const struct vs_msg *,
    void *), void *out)
{
	m.len--;
	assert_int_equal(parse(&m, out), -1);
	m.len += 2;
	assert_int_equal(parse(&m, out), -1);
}

/* Encoders of requests, from the fields of struct vs_req they fill. */
static int
send_begin(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_begin(w, q->a, q->format[0] ? q->format : NULL, q->b);
}

static int
send_digests(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_digests(w, q->a, (uint32_t)q->b, q->per);
}

static int
send_summaries(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_summaries(w, q->a, (uint32_t)q->b);
}

static int
send_write(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_write(w, q->a, (uint32_t)q->b, q->codec, q->data,
	    q->data_len);
}

static int
send_punch(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_punch(w, q->a, q->b);
}

static int
send_commit(struct vs_wire *w, const void *arg)
{
	const struct vs_req *q = arg;

	return vs_send_commit(w, &q->view);
}

/* Encode @q with @send, parse it back: the same fields, @len bytes. */
static void
req_round_trip(int (*send)(struct vs_wire *, const void *),
    const struct vs_req *q, size_t len)
{
	struct vs_req q2;
	struct vs_msg m;

	round_trip(send, q, &m);
	assert_int_equal(m.type, q->type);
	assert_int_equal(m.len, len);
	assert_int_equal(vs_parse_req(&m, &q2), 0);
	assert_int_equal(q2.type, q->type);
	assert_int_equal(q2.a, q->a);
	assert_int_equal(q2.b, q->b);
	assert_int_equal(q2.per, q->per);
	assert_int_equal(q2.codec, q->codec);
	assert_int_equal(q2.data_len, q->data_len);
	if (q->data_len)
		assert_memory_equal(q2.data, q->data, q->data_len);
	assert_memory_equal(&q2.view, &q->view, sizeof(q->view));
	assert_string_equal(q2.format, q->format);
	refuse_short_long(m, parse_req, &q2);
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
	vs_put_u32(&p, VS_PROTO_MAX_CHUNK + 1);	/* over a chunk */
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
	uint8_t h[2 * VS_PROTO_HASH_LEN] = { 0 };	/* old, new */

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
		vs_put(&p, buf + 4000, VS_PROTO_HASH_LEN);
		m = msg(VS_MSG_BEGUN, &p);
		/* Powers of two from 4 KiB to 4 MiB only. */
		assert_int_equal(vs_parse_begun(&m, &b),
		    bs < VS_PROTO_MIN_BLOCK || bs > VS_PROTO_MAX_CHUNK ||
		    bs == (1u << 20) ? -1 : 0);
	}
	m.len--;
	assert_int_equal(vs_parse_begun(&m, &b), -1);
	p = packer();
	vs_put(&p, buf + 4000, 3 * VS_PROTO_HASH_LEN);
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

static void
test_block_size(void **state)
{
	(void)state;
	assert_false(vs_block_size_ok(0));
	assert_false(vs_block_size_ok(VS_PROTO_MIN_BLOCK / 2));
	assert_true(vs_block_size_ok(VS_PROTO_MIN_BLOCK));
	assert_false(vs_block_size_ok(VS_PROTO_MIN_BLOCK + 1));
	assert_false(vs_block_size_ok(3 * VS_PROTO_MIN_BLOCK));
	assert_true(vs_block_size_ok(64 << 10));
	assert_true(vs_block_size_ok(VS_PROTO_MAX_CHUNK));
	assert_false(vs_block_size_ok(2ull * VS_PROTO_MAX_CHUNK));
	assert_false(vs_block_size_ok(1ull << 32));
}

static void
test_request_round_trips(void **state)
{
	static const uint8_t data[] = "abcdefghij";
	struct vs_req q;

	(void)state;
	q = (struct vs_req){ .type = VS_MSG_BEGIN, .a = 1ull << 30,
	    .b = 1ull << 29, .format = "qcow2" };
	req_round_trip(send_begin, &q, 8 + 4 + 5 + 8);
	q = (struct vs_req){ .type = VS_MSG_BEGIN, .a = VS_PROTO_MAX_SIZE };
	req_round_trip(send_begin, &q, 8 + 4 + 8);	/* NULL format */
	q = (struct vs_req){ .type = VS_MSG_DIGESTS, .a = 4096,
	    .b = VS_PROTO_MAX_ENTRIES, .per = 64 };
	req_round_trip(send_digests, &q, 8 + 4 + 4);
	q = (struct vs_req){ .type = VS_MSG_SUMMARIES, .a = 7, .b = 100 };
	req_round_trip(send_summaries, &q, 8 + 4);
	/* A plain WRITE carries its length; a compressed one less. */
	q = (struct vs_req){ .type = VS_MSG_WRITE, .a = 8192, .b = 10,
	    .codec = VS_WIRE_NONE, .data = data, .data_len = 10 };
	req_round_trip(send_write, &q, VS_PROTO_WRITE_HDR + 10);
	q = (struct vs_req){ .type = VS_MSG_PUNCH, .a = 5, .b = 4096 };
	req_round_trip(send_punch, &q, 8 + 8);
	q = (struct vs_req){ .type = VS_MSG_COMMIT };
	memset(q.view.b, 0xa5, sizeof(q.view.b));
	req_round_trip(send_commit, &q, VS_PROTO_HASH_LEN);
}

/* A compressed WRITE is as long as its data, whatever the length. */
static void
test_write_compressed(void **state)
{
	static const uint8_t data[] = "0123456789";
	struct vs_req q = { .type = VS_MSG_WRITE, .a = 1ull << 40,
	    .b = VS_PROTO_MAX_CHUNK, .codec = VS_WIRE_ZLIB, .data = data,
	    .data_len = 10 }, q2;
	struct vs_msg m;

	(void)state;
	round_trip(send_write, &q, &m);
	assert_int_equal(m.len, VS_PROTO_WRITE_HDR + 10);
	assert_int_equal(vs_parse_req(&m, &q2), 0);
	assert_int_equal(q2.b, VS_PROTO_MAX_CHUNK);
	assert_int_equal(q2.codec, VS_WIRE_ZLIB);
	assert_int_equal(q2.data_len, 10);
	assert_memory_equal(q2.data, data, 10);
	/* One more byte than a chunk: refused. */
	vs_set_le32(buf + 8, VS_PROTO_MAX_CHUNK + 1);
	assert_int_equal(vs_parse_req(&m, &q2), -1);
}

struct record_args {
	uint64_t first;			/* of the range */
	uint32_t n;			/* entries in it */
	const struct vs_hash *old, *new;	/* n of each */
};

static int
send_record(struct vs_wire *w, const void *arg)
{
	const struct record_args *r = arg;

	return vs_send_record(w, r->first, r->n, r->old, r->new);
}

static void
test_record_round_trip(void **state)
{
	struct vs_hash old[10], new[10], old2[10], new2[10];
	struct record_args r = { 1ull << 33, 10, old, new };
	static struct vs_wire w;
	struct vs_req q;
	struct vs_msg m;

	(void)state;
	fill((uint8_t *)old, sizeof(old), 1);
	memcpy(new, old, sizeof(new));
	/* Nothing changed: nothing is sent. */
	vs_wire_init(&w, -1, -1, "w", VS_EXIT_TARGET);
	assert_int_equal(vs_send_record(&w, 0, 10, old, new), 0);
	assert_int_equal(w.out_len, 0);
	vs_wire_free(&w);
	/* Entries 1, 5 and 9 changed: those travel, with their index. */
	for (int i = 1; i < 10; i += 4)
		new[i].b[3] ^= 0x40;
	round_trip(send_record, &r, &m);
	assert_int_equal(m.type, VS_MSG_RECORD);
	assert_int_equal(m.len, VS_PROTO_RECORD_HDR +
	    3 * VS_PROTO_RECORD_ENTRY);
	assert_int_equal(vs_le32(m.p + VS_PROTO_RECORD_HDR +
	    VS_PROTO_RECORD_ENTRY), 5);
	assert_int_equal(vs_parse_req(&m, &q), 0);
	assert_int_equal(q.a, 1ull << 33);
	assert_int_equal(q.b, 10);
	assert_int_equal(q.count, 3);
	memset(old2, 0xff, sizeof(old2));
	vs_record_entries(&q, old2, new2);
	for (int i = 0; i < 10; i++) {
		bool sent = i % 4 == 1;

		/* Entries not sent: unchanged, zero on both sides. */
		assert_memory_equal(&old2[i], sent ? &old[i] : &vs_hash_hole,
		    sizeof(old2[i]));
		assert_memory_equal(&new2[i], sent ? &new[i] : &vs_hash_hole,
		    sizeof(new2[i]));
	}
	refuse_short_long(m, parse_req, &q);
}

static void
test_begun_round_trip(void **state)
{
	struct vs_begun b = { .block_size = VS_PROTO_MAX_CHUNK, .seed = 1ull <<
	    63 | 7, .trusted = false, .hashes_target = true,
	    .state = "rebuilt" }, b2;
	struct vs_msg m;

	(void)state;
	memset(b.view.b, 0x3c, sizeof(b.view.b));
	for (int k = 0; k < 2; k++) {
		round_trip(send_begun, &b, &m);
		assert_int_equal(m.len, 4 + 8 + 1 + 4 + strlen(b.state) +
		    VS_PROTO_HASH_LEN);
		memset(&b2, 0, sizeof(b2));
		assert_int_equal(vs_parse_begun(&m, &b2), 0);
		assert_int_equal(b2.block_size, b.block_size);
		assert_int_equal(b2.seed, b.seed);
		assert_int_equal(b2.trusted, b.trusted);
		assert_int_equal(b2.hashes_target, b.hashes_target);
		assert_string_equal(b2.state, b.state);
		assert_memory_equal(&b2.view, &b.view, sizeof(b.view));
		refuse_short_long(m, parse_begun, &b2);
		b = (struct vs_begun){ .block_size = VS_PROTO_MIN_BLOCK,
		    .trusted = true, .state = "trusted" };
	}
}

static int
send_three_hashes(struct vs_wire *w, const void *h)
{
	return vs_send_hashes(w, VS_MSG_SUMMARIES_R, h, 3);
}

/* @in (@size bytes, no padding) encoded in @len bytes parses back into
 * @out, and not one byte short or long. */
static void
same_back(int (*send)(struct vs_wire *, const void *),
    int (*parse)(const struct vs_msg *, void *), const void *in, void *out,
    size_t size, size_t len)
{
	struct vs_msg m;

	round_trip(send, in, &m);
	assert_int_equal(m.len, len);
	assert_int_equal(parse(&m, out), 0);
	assert_memory_equal(out, in, size);
	refuse_short_long(m, parse, out);
}

static void
test_reply_round_trips(void **state)
{
	struct vs_done d = { 1, 1ull << 40, 3, UINT64_MAX }, d2;
	struct vs_stats_msg st = { 1ull << 34, 5, 6, 7, 123456789, 1ull << 30 },
	    st2;
	struct vs_hash h[3], h2[3];
	struct vs_msg m;

	(void)state;
	same_back(send_done, parse_done, &d, &d2, sizeof(d), 4 * 8);
	same_back(send_stats, parse_stats, &st, &st2, sizeof(st), 6 * 8);
	st.guest_size = 0;	/* version 4: not sent, read as none */
	same_back(send_stats_v4, parse_stats, &st, &st2, sizeof(st), 5 * 8);
	/* Hashes as stored, exactly as many as asked for. */
	fill((uint8_t *)h, sizeof(h), 2);
	round_trip(send_three_hashes, h, &m);
	assert_int_equal(m.len, 3 * VS_PROTO_HASH_LEN);
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_SUMMARIES_R, 3, h2), 0);
	assert_memory_equal(h2, h, sizeof(h));
	m.len--;
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_SUMMARIES_R, 3, h2), -1);
	m.len += 2;
	assert_int_equal(vs_parse_hashes(&m, VS_MSG_SUMMARIES_R, 3, h2), -1);
}

SENDER(send_list, vs_send_list)
SENDER(send_listed, vs_send_listed)
SENDER(send_verified, vs_send_verified)
PARSER(parse_list, vs_parse_list)
PARSER(parse_listed, vs_parse_listed)
PARSER(parse_verified, vs_parse_verified)

static int
send_verify(struct vs_wire *w, const void *arg)
{
	return vs_send_verify(w, arg);
}

static int
send_list_end(struct vs_wire *w, const void *arg)
{
	return vs_send_list_end(w, *(const uint32_t *)arg);
}

/* LIST, VERIFY and their replies parse back to what was sent, at the
 * sizes proto.h names; a byte more or less is refused. */
static void
test_list_round_trips(void **state)
{
	static struct vs_list_req q, q2;
	static struct vs_listed l, l2;
	static struct vs_verified v, v2;
	uint32_t n = 7, n2;
	struct vs_msg m;

	(void)state;
	strcpy(q.path, "/backup/images/");
	strcpy(q.snapshot_dir, "snaps");
	round_trip(send_list, &q, &m);
	assert_int_equal(m.type, VS_MSG_LIST);
	assert_int_equal(m.len, 4 + 15 + 4 + 5);
	assert_int_equal(vs_parse_list(&m, &q2), 0);
	assert_string_equal(q2.path, "/backup/images/");
	assert_string_equal(q2.snapshot_dir, "snaps");
	refuse_short_long(m, parse_list, &q2);
	round_trip(send_verify, "images/vm.img", &m);
	assert_int_equal(m.type, VS_MSG_VERIFY);
	assert_int_equal(m.len, 4 + 13);	/* no snapshot directory */
	assert_int_equal(vs_parse_list(&m, &q2), 0);
	assert_string_equal(q2.path, "images/vm.img");
	assert_string_equal(q2.snapshot_dir, "");
	refuse_short_long(m, parse_list, &q2);

	strcpy(l.name, "vm.img");
	strcpy(l.path, "/backup/.vmsync-snapshots/x/vm.img");
	l.time_sec = 1700000000;
	l.time_nsec = 999999999;
	l.virtual_size = 1ull << 40;
	l.allocated = 12345;
	l.exclusive = 4096;
	l.flags = VS_LISTED_COMPLETE | VS_LISTED_EXCLUSIVE;
	round_trip(send_listed, &l, &m);
	assert_int_equal(m.len, 4 + 6 + 4 + 34 + VS_PROTO_LISTED_FIELDS);
	assert_int_equal(vs_parse_listed(&m, &l2), 0);
	assert_string_equal(l2.name, l.name);
	assert_string_equal(l2.path, l.path);
	assert_int_equal(l2.time_sec, l.time_sec);
	assert_int_equal(l2.time_nsec, l.time_nsec);
	assert_int_equal(l2.virtual_size, l.virtual_size);
	assert_int_equal(l2.allocated, l.allocated);
	assert_int_equal(l2.exclusive, l.exclusive);
	assert_int_equal(l2.flags, l.flags);
	refuse_short_long(m, parse_listed, &l2);
	round_trip(send_list_end, &n, &m);
	assert_int_equal(vs_parse_list_end(&m, &n2), 0);
	assert_int_equal(n2, 7);
	m.len--;
	assert_int_equal(vs_parse_list_end(&m, &n2), -1);

	v.status = VS_EXIT_DIFFERS;
	v.flags = VS_VERIFIED_COMPLETE | VS_VERIFIED_META_BAD;
	v.virtual_size = 1 << 20;
	v.read_bytes = 65536;
	v.bad_bytes = 8192;
	v.more_bad = 3;
	strcpy(v.text, "vm.qcow2: L1 table past the end");
	v.nbad = 2;
	v.bad[0] = (struct vs_verified_bad){ 0, 4096, 1 };
	v.bad[1] = (struct vs_verified_bad){ (1 << 20) - 4096, 4096, 4 };
	round_trip(send_verified, &v, &m);
	assert_int_equal(m.len, VS_PROTO_VERIFIED_FIELDS + 4 + 31 + 4 +
	    2 * VS_PROTO_BAD_ENTRY);
	assert_int_equal(vs_parse_verified(&m, &v2), 0);
	assert_int_equal(v2.status, VS_EXIT_DIFFERS);
	assert_int_equal(v2.flags, v.flags);
	assert_int_equal(v2.virtual_size, v.virtual_size);
	assert_int_equal(v2.read_bytes, v.read_bytes);
	assert_int_equal(v2.bad_bytes, v.bad_bytes);
	assert_int_equal(v2.more_bad, 3);
	assert_string_equal(v2.text, v.text);
	assert_int_equal(v2.nbad, 2);
	assert_int_equal(v2.bad[1].off, (1 << 20) - 4096);
	assert_int_equal(v2.bad[1].len, 4096);
	assert_int_equal(v2.bad[1].reason, 4);
	refuse_short_long(m, parse_verified, &v2);
}

/* A LISTED with the fields given, or a VERIFIED whose one bad range is
 * [@off, @off + @len) for @reason. */
static struct vs_msg
listed(const char *name, const char *path, uint32_t nsec, uint8_t flags)
{
	struct vs_pack p = packer();

	vs_put_str(&p, name);
	vs_put_str(&p, path);
	vs_put_u64(&p, 0);
	vs_put_u32(&p, nsec);
	vs_put_u64(&p, 0);
	vs_put_u64(&p, 0);
	vs_put_u64(&p, 0);
	vs_put_u8(&p, flags);
	return msg(VS_MSG_LISTED, &p);
}

static struct vs_msg
verified(uint32_t status, uint8_t flags, const char *text, uint32_t n,
    uint64_t off, uint64_t len, uint8_t reason)
{
	struct vs_pack p = packer();

	vs_put_u32(&p, status);
	vs_put_u8(&p, flags);
	vs_put_u64(&p, 1 << 20);		/* virtual size */
	vs_put_u64(&p, 0);
	vs_put_u64(&p, 0);
	vs_put_u64(&p, 0);
	vs_put_str(&p, text);
	vs_put_u32(&p, n);
	vs_put_u64(&p, off);
	vs_put_u64(&p, len);
	vs_put_u8(&p, reason);
	return msg(VS_MSG_VERIFIED, &p);
}

static void
test_list_refusals(void **state)
{
	static struct vs_list_req q;
	static struct vs_listed l;
	static struct vs_verified v;
	struct vs_pack p;
	struct vs_msg m;

	(void)state;
	/* Paths the server would act on: not empty, no control
	 * characters. */
	for (int k = 0; k < 3; k++) {
		p = packer();
		vs_put_str(&p, k == 0 ? "" : k == 1 ? "a\033[2J" : "images");
		vs_put_str(&p, k == 2 ? "snaps\n" : "");
		m = msg(VS_MSG_LIST, &p);
		assert_int_equal(vs_parse_list(&m, &q), -1);
	}
	p = packer();
	vs_put_u32(&p, VS_PATH_MAX + 1);
	m = msg(VS_MSG_VERIFY, &p);
	assert_int_equal(vs_parse_list(&m, &q), -1);
	m.type = VS_MSG_OPEN;
	assert_int_equal(vs_parse_list(&m, &q), -1);

	m = listed("vm.img", "/b/vm.img", 0, VS_LISTED_COMPLETE);
	assert_int_equal(vs_parse_listed(&m, &l), 0);
	m = listed("../vm.img", "/b/vm.img", 0, 0);	/* a "/" */
	assert_int_equal(vs_parse_listed(&m, &l), -1);
	m = listed("", "/b/vm.img", 0, 0);
	assert_int_equal(vs_parse_listed(&m, &l), -1);
	m = listed("vm.img", "", 0, 0);
	assert_int_equal(vs_parse_listed(&m, &l), -1);
	m = listed("vm.img", "/b/vm.img", 1000000000, 0);
	assert_int_equal(vs_parse_listed(&m, &l), -1);
	m = listed("vm.img", "/b/vm.img", 0, 4);	/* unknown flag */
	assert_int_equal(vs_parse_listed(&m, &l), -1);

	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, 4096, 4096, 1);
	assert_int_equal(vs_parse_verified(&m, &v), 0);
	m = verified(VS_EXIT_DIFFERS + 1, 0, "x", 1, 4096, 4096, 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 8, "x", 1, 4096, 4096, 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, 4096, 4096, 0);
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, 4096, 4096,
	    VS_VERIFIED_REASONS + 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, 4096, 0, 1);	/* empty */
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, (1 << 20) - 4096, 8192, 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);	/* past the end */
	m = verified(VS_EXIT_DIFFERS, 0, "x", 1, UINT64_MAX - 10, 4096, 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);	/* wraps */
	m = verified(VS_EXIT_DIFFERS, 0, "x", 2, 4096, 4096, 1); /* says 2 */
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	m = verified(VS_EXIT_DIFFERS, 0, "x", VS_VERIFY_MAX_BAD + 1, 4096,
	    4096, 1);
	assert_int_equal(vs_parse_verified(&m, &v), -1);
	/* The text escaped, as an ERROR's. */
	m = verified(VS_EXIT_SOURCE, 0, "bad\033]0;x\007\n", 1, 0, 4096, 2);
	assert_int_equal(vs_parse_verified(&m, &v), 0);
	assert_string_equal(v.text, "bad\\033]0;x\\007\\012");
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
		cmocka_unit_test(test_block_size),
		cmocka_unit_test(test_request_round_trips),
		cmocka_unit_test(test_write_compressed),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_begun_round_trip),
		cmocka_unit_test(test_reply_round_trips),
		cmocka_unit_test(test_list_round_trips),
		cmocka_unit_test(test_list_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
