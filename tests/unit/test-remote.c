/*
 * test-remote.c - the remote target's requests (src/transport/remote.c),
 * against a fake server on a thread at the other end of two pipes: begin()
 * declares VS_CAP_EXPECT; expect() sends its SUMMARIES at once, and a
 * later summaries() inside an expected range is answered from that reply
 * without a request of its own, while one outside sends its own; replies
 * are read in the order their requests were sent, whatever reply is waited
 * for (DIGESTS, SUMMARIES, COMMIT); what is asked ahead is capped at half
 * the reply pipe, however small, counting 12 + 16 * n bytes per expect
 * until taken, and an expect() beyond the cap sends nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "transport/proto.h"
#include "transport/remote.h"

/* Seconds before a stuck side gives up: a bug fails, never hangs. */
#define TIMEOUT 5
#define MAXLOG 64
#define MAXOUT 4096		/* entries one summaries() call takes here */
#define IMAGE_SIZE (1ull << 30)
#define BLOCK (64u << 10)

/* The fake server's DONE, checked in the client's statistics. */
static const struct vs_done done_reply = { .read = 11, .written = 22,
    .punched = 33, .unchanged = 44 };

/* One request as the server received it. */
struct logent {
	uint32_t type;		/* VS_MSG_* */
	uint64_t a, b;		/* struct vs_req's: first and n, offset and
				 * length, or BEGIN's size and data bytes */
};

struct harness {
	int c2s[2], s2c[2];	/* client to server, server to client */
	struct vs_wire cw, sw;	/* the client's and the server's */
	struct vs_stats stats;
	struct vs_target *t;	/* the remote target under test */
	pthread_t server;
	bool started, joined;
	pthread_mutex_t mu;	/* guards the log and the flags below */
	pthread_cond_t cv;	/* signalled at each entry, and at the end */
	struct logent log[MAXLOG];
	size_t nlog;
	bool ended;		/* the server stopped */
	bool committed;		/* ... after answering COMMIT */
	const char *server_err;	/* why it stopped otherwise */
};

/* Index entry @k as the server has it: its number, and its complement so
 * that no entry is zero. */
static struct vs_hash
entry(uint64_t k)
{
	struct vs_hash h;

	for (int i = 0; i < 8; i++) {
		h.b[i] = (uint8_t)(k >> (8 * i));
		h.b[8 + i] = (uint8_t)~(k >> (8 * i));
	}
	return h;
}

/* The server's digest of the group starting at entry @k: not an entry. */
static struct vs_hash
digest(uint64_t k)
{
	struct vs_hash h = entry(k);

	h.b[15] ^= 0xd1;
	return h;
}

static void
log_req(struct harness *h, const struct vs_req *q)
{
	pthread_mutex_lock(&h->mu);
	if (h->nlog < MAXLOG)
		h->log[h->nlog] = (struct logent){ q->type, q->a, q->b };
	h->nlog++;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* A reply of @count hashes made by @make from entry @first on, @step
 * apart. */
static int
send_made(struct vs_wire *w, uint32_t type, uint64_t first, size_t count,
    uint64_t step, struct vs_hash (*make)(uint64_t))
{
	struct vs_hash *v = malloc(count * sizeof(*v));
	int rc;

	if (!v)
		return -1;
	for (size_t i = 0; i < count; i++)
		v[i] = make(first + i * step);
	rc = vs_send_hashes(w, type, v, count);
	free(v);
	return rc;
}

/* Answer as a target side would, logging every request; replies go out
 * at the next receive (or at once for DONE).  Never asserts: cmocka's
 * asserts belong to the test's thread. */
static int
serve_one(struct harness *h, const struct vs_req *q)
{
	struct vs_begun b = { .block_size = BLOCK, .seed = 0x5eed,
	    .trusted = true };

	switch (q->type) {
	case VS_MSG_BEGIN:
		strcpy(b.state, "trusted");
		return vs_send_begun(&h->sw, &b);
	case VS_MSG_SUMMARIES:
		return send_made(&h->sw, VS_MSG_SUMMARIES_R, q->a, q->b, 1,
		    entry);
	case VS_MSG_DIGESTS:
		return send_made(&h->sw, VS_MSG_DIGESTS_R, q->a,
		    (q->b + q->per - 1) / q->per, q->per, digest);
	case VS_MSG_COMMIT:
		if (vs_send_done(&h->sw, &done_reply) < 0 ||
		    vs_wire_flush(&h->sw) < 0)
			return -1;
		return 1;
	default:		/* WRITE, RECORD, ...: no reply */
		return 0;
	}
}

static void *
serve(void *arg)
{
	struct harness *h = arg;
	const char *why = NULL;
	struct vs_msg m;
	struct vs_req q;
	int rc = 0;

	while (rc == 0) {
		rc = vs_wire_recv_or_eof(&h->sw, &m);
		if (rc != 0) {
			why = rc < 0 ? "receive failed" : "end of stream";
			break;
		}
		if (vs_parse_req(&m, &q) < 0) {
			why = "malformed request";
			break;
		}
		log_req(h, &q);
		if ((rc = serve_one(h, &q)) < 0)
			why = "reply failed";
	}
	pthread_mutex_lock(&h->mu);
	h->ended = true;
	h->committed = rc == 1;
	h->server_err = why;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Two pipes, and a wire at each end of them. */
static int
setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	*state = h;
	if (pipe(h->c2s) < 0)
		return -1;
	if (pipe(h->s2c) < 0) {
		close(h->c2s[0]);
		close(h->c2s[1]);
		return -1;
	}
	vs_wire_init(&h->cw, h->s2c[0], h->c2s[1], "server", VS_EXIT_TARGET);
	vs_wire_init(&h->sw, h->c2s[0], h->s2c[1], "client", VS_EXIT_SOURCE);
	vs_wire_set_timeout(&h->cw, TIMEOUT);
	vs_wire_set_timeout(&h->sw, TIMEOUT);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	vs_err_reset();
	return 0;
}

/* Runs after a failed case too: closing the client's ends stops the
 * server (end of stream, or EPIPE on a reply) so it can be joined. */
static int
teardown(void **state)
{
	struct harness *h = *state;

	if (h->t)
		h->t->ops->close(h->t);
	vs_wire_free(&h->cw);
	close(h->c2s[1]);
	close(h->s2c[0]);
	if (h->started && !h->joined)
		pthread_join(h->server, NULL);
	vs_wire_free(&h->sw);
	close(h->c2s[0]);
	close(h->s2c[1]);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
	return 0;
}

/* Connect a remote target of @codec to a new server.  With @pipe_size,
 * the pipe the client reads replies from is resized to that after the
 * wires are set up (which ask for 1 MiB); its size is returned. */
static int
start(struct harness *h, uint32_t codec, int pipe_size)
{
	int size;

	/* Before the target is made: it reads the size once. */
	if (pipe_size && fcntl(h->s2c[0], F_SETPIPE_SZ, pipe_size) < 0)
		return -1;
	size = fcntl(h->s2c[0], F_GETPIPE_SZ);
	assert_int_equal(vs_remote_target(&h->cw, "test", codec, 0, false,
	    &h->stats, &h->t), 0);
	assert_int_equal(pthread_create(&h->server, NULL, serve, h), 0);
	h->started = true;
	return size;
}

static struct vs_target_info
begin(struct harness *h)
{
	struct vs_target_info info = { .src_data_bytes = 0 };

	assert_int_equal(h->t->ops->begin(h->t, IMAGE_SIZE, &info), 0);
	return info;
}

/* Has the server logged SUMMARIES(@first, @n)? */
static bool
logged_summaries(struct harness *h, uint64_t first, uint64_t n)
{
	for (size_t i = 0; i < h->nlog && i < MAXLOG; i++)
		if (h->log[i].type == VS_MSG_SUMMARIES &&
		    h->log[i].a == first && h->log[i].b == n)
			return true;
	return false;
}

/* expect(@first, @n), which should send its request at once: the server
 * gets it with nothing more done on the client's side. */
static void
expect_sent(struct harness *h, uint64_t first, size_t n)
{
	struct timespec until;
	bool seen;

	/* Without the op (before it existed) the case fails here. */
	assert_non_null(h->t->ops->expect);
	h->t->ops->expect(h->t, first, n);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TIMEOUT;
	pthread_mutex_lock(&h->mu);
	while (!(seen = logged_summaries(h, first, n)) && !h->ended &&
	    pthread_cond_timedwait(&h->cv, &h->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&h->mu);
	assert_true(seen);
}

/* expect(@first, @n) without waiting for the server to get anything:
 * whether its request went, and where, is checked in the log at the end
 * (by where the later summaries()'s request is, if it did not). */
static void
expect_only(struct harness *h, uint64_t first, size_t n)
{
	assert_non_null(h->t->ops->expect);
	h->t->ops->expect(h->t, first, n);
}

/* summaries(@first, @n) gets the server's entries. */
static void
summaries(struct harness *h, uint64_t first, size_t n)
{
	static struct vs_hash out[MAXOUT];

	assert_true(n <= MAXOUT);
	memset(out, 0, n * sizeof(*out));
	assert_int_equal(h->t->ops->summaries(h->t, first, n, out), 0);
	for (size_t i = 0; i < n; i++) {
		struct vs_hash want = entry(first + i);

		assert_memory_equal(&out[i], &want, sizeof(want));
	}
}

static void
write_block(struct harness *h, uint64_t off, size_t len)
{
	static uint8_t buf[2u << 20];

	assert_true(len <= sizeof(buf));
	/* Text-like, so that a compressing pool compresses it. */
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)("vmsync remote "[i % 14] + (off >> 20));
	assert_int_equal(h->t->ops->write(h->t, buf, len, off), 0);
}

/* commit(), then the server ends after its DONE, which the client
 * counted. */
static void
finish(struct harness *h)
{
	assert_int_equal(h->t->ops->commit(h->t, NULL), 0);
	assert_int_equal(pthread_join(h->server, NULL), 0);
	h->joined = true;
	assert_null(h->server_err);
	assert_true(h->committed);
	assert_false(h->cw.failed);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
	assert_int_equal(h->stats.written_bytes, done_reply.written);
	assert_int_equal(h->stats.target_read_bytes, done_reply.read);
}

/* The server's log is exactly @want. */
static void
check_log(struct harness *h, const struct logent *want, size_t n)
{
	for (size_t i = 0; i < n && i < h->nlog && i < MAXLOG; i++) {
		if (h->log[i].type != want[i].type || h->log[i].a !=
		    want[i].a || h->log[i].b != want[i].b)
			fail_msg("request %zu: type %u (%" PRIu64 ", %" PRIu64
			    "), wanted type %u (%" PRIu64 ", %" PRIu64 ")", i,
			    h->log[i].type, h->log[i].a, h->log[i].b,
			    want[i].type, want[i].a, want[i].b);
	}
	assert_int_equal(h->nlog, n);
}

#define S(first, n)	{ VS_MSG_SUMMARIES, first, n }
#define W(off, len)	{ VS_MSG_WRITE, off, len }
#define BEGIN		{ VS_MSG_BEGIN, IMAGE_SIZE, 0 }
#define COMMIT		{ VS_MSG_COMMIT, 0, 0 }
#define NLOG(v)		(sizeof(v) / sizeof((v)[0]))

/* begin() declares the far target's capabilities, expect() among them,
 * and passes on what BEGUN said. */
static void
test_caps(void **state)
{
	struct harness *h = *state;
	struct vs_target_info info;
	static const struct logent want[] = { BEGIN, COMMIT };

	start(h, VS_WIRE_NONE, 0);
	info = begin(h);
	assert_int_equal(info.caps, VS_CAP_DIGESTS | VS_CAP_PREFETCH |
	    VS_CAP_EXPECT);
	assert_int_equal(info.block_size, BLOCK);
	assert_int_equal(info.seed, 0x5eed);
	assert_true(info.trusted);
	assert_string_equal(h->stats.index_state, "trusted");
	finish(h);
	check_log(h, want, NLOG(want));
}

/* Two ranges expected, WRITEs in between, then the engine's summaries():
 * those inside an expected range (whole or part of it) send nothing, one
 * outside sends its own SUMMARIES. */
static void
test_expect_answers_later_summaries(void **state)
{
	struct harness *h = *state;
	static const struct logent want[] = { BEGIN, W(0, BLOCK), S(0, 64),
	    S(128, 64), W(BLOCK, BLOCK), W(2 * BLOCK, BLOCK),
	    W(3 * BLOCK, BLOCK), S(500, 8), COMMIT };

	start(h, VS_WIRE_NONE, 0);
	begin(h);
	write_block(h, 0, BLOCK);
	expect_sent(h, 0, 64);
	expect_sent(h, 128, 64);
	for (unsigned i = 1; i <= 3; i++)
		write_block(h, i * BLOCK, BLOCK);
	summaries(h, 0, 64);
	summaries(h, 128, 2);		/* parts of one reply */
	summaries(h, 130, 10);
	summaries(h, 140, 52);
	summaries(h, 500, 8);		/* not expected */
	finish(h);
	check_log(h, want, NLOG(want));
}

/* Replies asked ahead and not taken yet are read first, in order,
 * whichever reply the client waits for: DIGESTS_R, a SUMMARIES_R not
 * expected, and DONE. */
static void
test_replies_in_order(void **state)
{
	struct harness *h = *state;
	static const struct logent want[] = { BEGIN, S(0, 32), S(32, 32),
	    { VS_MSG_DIGESTS, 0, 1000 }, S(2048, 8), { VS_MSG_RECORD, 0, 4 },
	    S(64, 16), S(80, 16), COMMIT };
	struct vs_hash d[4], old[4], new[4];

	start(h, VS_WIRE_NONE, 0);
	begin(h);
	expect_sent(h, 0, 32);
	expect_sent(h, 32, 32);
	/* Both SUMMARIES_R come before the DIGESTS_R. */
	assert_int_equal(h->t->ops->digests(h->t, 0, 1000, 256, d), 0);
	for (unsigned g = 0; g < 4; g++) {
		struct vs_hash want_d = digest(g * 256);

		assert_memory_equal(&d[g], &want_d, sizeof(want_d));
	}
	summaries(h, 2048, 8);
	/* Each from its own reply, not its neighbour's. */
	summaries(h, 0, 32);
	summaries(h, 32, 16);
	for (unsigned i = 0; i < 4; i++) {
		old[i] = entry(i);
		new[i] = entry(i + 4000);
	}
	assert_int_equal(h->t->ops->record(h->t, 0, 4, old, new), 0);
	summaries(h, 48, 16);
	/* Never taken: COMMIT reads their replies before DONE. */
	expect_sent(h, 64, 16);
	expect_sent(h, 80, 16);
	finish(h);
	check_log(h, want, NLOG(want));
}

/* A pipe of 64 KiB (the default): the cap is 32 KiB.  Three expects fill it
 * to 12 bytes short (a fourth of one entry goes beyond), a part taken
 * frees nothing, the whole of one frees its bytes.  An expect beyond the
 * cap sends nothing: its summaries() sends the request, after the WRITE
 * that followed the expect.  (A reply larger than the pipe holds the
 * server until the client reads it, so nothing here waits for the server
 * to log a request: the log at the end says what went.) */
static void
test_cap_default_pipe(void **state)
{
	struct harness *h = *state;
	static const struct logent want[] = { BEGIN, S(0, 1000),
	    S(1000, 1000), S(2000, 45), W(0, BLOCK), S(4000, 1000),
	    S(3000, 1), COMMIT };

	if (start(h, VS_WIRE_NONE, 64 << 10) != (64 << 10))
		skip();		/* pages too large for such a pipe */
	begin(h);
	/* 12 + 16 * 1000 = 16012 bytes each: 32024 of 32768. */
	expect_only(h, 0, 1000);
	expect_only(h, 1000, 1000);
	expect_only(h, 2000, 46);	/* beyond: 748 more, 32772 */
	expect_only(h, 2000, 45);	/* 732 more: 32756 */
	expect_only(h, 3000, 1);	/* beyond: 28 more, 32784 */
	write_block(h, 0, BLOCK);
	summaries(h, 0, 500);
	expect_only(h, 4000, 1);	/* beyond: the part taken is held */
	summaries(h, 500, 500);
	/* 16744 held, 16012 more: 32756. */
	expect_only(h, 4000, 1000);
	summaries(h, 1000, 1000);
	summaries(h, 2000, 45);
	summaries(h, 3000, 1);		/* its own request */
	summaries(h, 4000, 1000);
	finish(h);
	check_log(h, want, NLOG(want));
}

/* A pipe of 4 KiB, as a user over the pipe size limits gets: the cap is
 * half of it, 2 KiB, so a server blocked on a reply cannot stop the
 * WRITEs. */
static void
test_cap_tiny_pipe(void **state)
{
	struct harness *h = *state;
	static const struct logent want[] = { BEGIN, S(0, 127), W(0, BLOCK),
	    S(200, 1), COMMIT };

	if (start(h, VS_WIRE_NONE, 4096) != 4096)
		skip();		/* pages too large for such a pipe */
	begin(h);
	/* 12 + 16 * 127 = 2044 bytes of 2048. */
	expect_sent(h, 0, 127);
	expect_only(h, 200, 1);		/* beyond: 28 more, 2072 */
	write_block(h, 0, BLOCK);
	summaries(h, 0, 127);
	summaries(h, 200, 1);		/* its own request */
	finish(h);
	check_log(h, want, NLOG(want));
}

/* A pipe of 128 KiB: the cap is half of it, 64 KiB, not 32 KiB nor half
 * the 1 MiB the wire asked for. */
static void
test_cap_half_pipe(void **state)
{
	struct harness *h = *state;
	static const struct logent want[] = { BEGIN, S(0, 2047),
	    S(2047, 2047), W(0, BLOCK), S(4094, 1), COMMIT };

	if (start(h, VS_WIRE_NONE, 128 << 10) != (128 << 10))
		skip();		/* the user's pipe limits */
	begin(h);
	/* 12 + 16 * 2047 = 32764 bytes each: 65528 of 65536. */
	expect_sent(h, 0, 2047);
	expect_sent(h, 2047, 2047);
	expect_only(h, 4094, 1);	/* beyond: 28 more, 65556 */
	write_block(h, 0, BLOCK);
	summaries(h, 0, 2047);
	summaries(h, 2047, 2047);
	summaries(h, 4094, 1);
	finish(h);
	check_log(h, want, NLOG(want));
}

/* With a compressing pool: the SUMMARIES asked ahead goes at once, before
 * the WRITEs put after it; every WRITE arrives, in order, before COMMIT;
 * the later summaries() sends nothing.  (How many of the WRITEs put before
 * it are still in the pool then depends on its threads, so that it goes
 * ahead of those is not checked.) */
static void
test_expect_with_pool(void **state)
{
	struct harness *h = *state;
	const size_t mib = 1u << 20;
	size_t at = 0, writes = 0;

	start(h, VS_WIRE_ZSTD, 0);
	begin(h);
	for (unsigned i = 0; i < 6; i++)
		write_block(h, i * mib, mib);
	expect_sent(h, 0, 64);
	for (unsigned i = 6; i < 8; i++)
		write_block(h, i * mib, mib);
	summaries(h, 0, 64);
	finish(h);
	assert_int_equal(h->nlog, 1 + 1 + 8 + 1);
	assert_int_equal(h->log[0].type, VS_MSG_BEGIN);
	for (size_t i = 1; i < h->nlog - 1; i++) {
		if (h->log[i].type == VS_MSG_SUMMARIES) {
			assert_int_equal(h->log[i].a, 0);
			assert_int_equal(h->log[i].b, 64);
			at = i;
			continue;
		}
		assert_int_equal(h->log[i].type, VS_MSG_WRITE);
		assert_int_equal(h->log[i].a, writes * mib);
		assert_int_equal(h->log[i].b, mib);
		writes++;
	}
	assert_int_equal(writes, 8);
	/* After BEGIN and some of the six WRITEs put before it. */
	assert_true(at >= 1 && at <= 7);
	assert_int_equal(h->log[h->nlog - 1].type, VS_MSG_COMMIT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_expect_answers_later_summaries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replies_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cap_default_pipe, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cap_tiny_pipe, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cap_half_pipe, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expect_with_pool, setup,
		    teardown),
	};

	/* A reply to a client gone (after a failed case) is no signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
