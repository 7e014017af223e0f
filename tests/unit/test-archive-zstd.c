/*
 * test-archive-zstd.c - the compressor of a .tar.zst (src/archive_zstd.c):
 * whatever the threads and however the stream is cut into writes, its
 * frames decompress, in the order given, to the bytes written, each
 * frame with its checksum; an empty stream is one empty frame; a sink
 * that fails ends the stream with its errno, and nothing is given after
 * it, not even by more writes and the end, which fail too (libarchive
 * closes its client after a failed write).  Also built with
 * ThreadSanitizer (test-archive-zstd-tsan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "archive_zstd.h"
#include "vmsync.h"

#define MIB (1u << 20)
#define STREAM (21 * MIB + 12345)	/* some frames and a short last one */

/* What the sink was given, and when it is to fail. */
struct sink {
	uint8_t *buf;
	size_t len, cap;
	int calls;
	int fail_at;		/* the call that fails with ENOSPC (0: none) */
	int calls_after;	/* calls after it failed */
	bool failed;
};

static int
sink_fn(void *arg, const void *buf, size_t len)
{
	struct sink *s = arg;

	if (s->failed)
		s->calls_after++;
	if (++s->calls == s->fail_at) {
		s->failed = true;
		errno = ENOSPC;
		return -1;
	}
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->buf = realloc(s->buf, s->cap);
		assert_non_null(s->buf);
	}
	memcpy(s->buf + s->len, buf, len);
	s->len += len;
	return 0;
}

/* A stream half random, half repeated text (so that zstd both stores and
 * compresses). */
static uint8_t *
make_stream(size_t len)
{
	static const char text[] = "the quick brown fox jumps over it ";
	uint8_t *p = malloc(len);

	assert_non_null(p);
	fill(p, len / 2, 7);
	for (size_t i = len / 2; i < len; i++)
		p[i] = (uint8_t)text[i % (sizeof(text) - 1)];
	return p;
}

/* Check that @s holds zstd frames, each with its checksum, that
 * decompress to @want; return how many. */
static int
check_frames(const struct sink *s, const uint8_t *want, size_t wantlen)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	uint8_t *out = malloc(wantlen + 1);
	ZSTD_outBuffer ob = { out, wantlen + 1, 0 };
	int frames = 0;

	assert_non_null(d);
	assert_non_null(out);
	for (size_t off = 0; off < s->len; frames++) {
		size_t n = ZSTD_findFrameCompressedSize(s->buf + off,
		    s->len - off);
		ZSTD_inBuffer ib = { s->buf + off, n, 0 };

		assert_false(ZSTD_isError(n));
		/* The frame header descriptor, after the magic number:
		 * bit 2 is the content checksum flag (RFC 8878). */
		assert_true(n > 5);
		assert_true(s->buf[off + 4] & 0x04);
		while (ib.pos < ib.size) {
			size_t r = ZSTD_decompressStream(d, &ob, &ib);

			assert_false(ZSTD_isError(r));
		}
		off += n;
	}
	assert_int_equal(ob.pos, wantlen);
	assert_memory_equal(out, want, wantlen);
	free(out);
	ZSTD_freeDCtx(d);
	return frames;
}

/* Write @len bytes of @p in writes of sizes cycling through @cuts. */
static void
write_all(struct vs_zstd_out *z, const uint8_t *p, size_t len,
    const size_t *cuts, size_t ncuts)
{
	const char *why = "unset";

	for (size_t off = 0, i = 0; off < len; i++) {
		size_t n = cuts[i % ncuts];

		if (n > len - off)
			n = len - off;
		assert_int_equal(vs_zstd_out_write(z, p + off, n, &why), 0);
		assert_null(why);
		off += n;
	}
}

/* The whole stream through @threads workers, cut by @cuts. */
static void
round_trip(int threads, const size_t *cuts, size_t ncuts)
{
	uint8_t *p = make_stream(STREAM);
	struct sink s = { 0 };
	const char *why;
	struct vs_zstd_out *z = vs_zstd_out_new(1, threads, sink_fn, &s, &why);

	assert_non_null(z);
	write_all(z, p, STREAM, cuts, ncuts);
	assert_int_equal(vs_zstd_out_end(z, &why), 0);
	vs_zstd_out_free(z);
	/* More than one frame, in order, the random half stored. */
	assert_true(check_frames(&s, p, STREAM) > 2);
	assert_true(s.len < STREAM * 3 / 4);
	free(p);
	free(s.buf);
}

static void
test_frames_one_thread_a_cpu(void **state)
{
	static const size_t cuts[] = { 512, 10240, 3 * MIB + 1, 1 };

	(void)state;
	round_trip(-1, cuts, 4);
}

static void
test_frames_on_the_callers_thread(void **state)
{
	static const size_t cuts[] = { STREAM };

	(void)state;
	round_trip(0, cuts, 1);
}

static void
test_frames_more_threads_than_pieces(void **state)
{
	static const size_t cuts[] = { 4 * MIB, 65536, 7 };

	(void)state;
	round_trip(3, cuts, 3);
	round_trip(1, cuts, 3);
	round_trip(8, cuts, 3);
}

static void
test_empty_stream_is_a_frame(void **state)
{
	struct sink s = { 0 };
	const char *why;
	struct vs_zstd_out *z = vs_zstd_out_new(1, -1, sink_fn, &s, &why);

	(void)state;
	assert_non_null(z);
	assert_int_equal(vs_zstd_out_end(z, &why), 0);
	vs_zstd_out_free(z);
	assert_int_equal(check_frames(&s, (const uint8_t *)"", 0), 1);
	free(s.buf);
}

/* A sink that fails on its @fail_at call ends the stream: the write or
 * the end reports its errno, and the sink is not called again. */
static void
sink_fails(int threads, int fail_at)
{
	uint8_t *p = make_stream(STREAM);
	struct sink s = { .fail_at = fail_at };
	const char *why = "unset";
	struct vs_zstd_out *z = vs_zstd_out_new(1, threads, sink_fn, &s, &why);
	int rc = 0;

	assert_non_null(z);
	for (size_t off = 0; rc == 0 && off < STREAM; off += MIB)
		rc = vs_zstd_out_write(z, p + off,
		    STREAM - off < MIB ? STREAM - off : MIB, &why);
	if (rc == 0)
		rc = vs_zstd_out_end(z, &why);
	assert_int_equal(rc, -1);
	assert_null(why);
	assert_int_equal(errno, ENOSPC);
	vs_zstd_out_free(z);
	assert_true(s.failed);
	assert_int_equal(s.calls_after, 0);
	free(p);
	free(s.buf);
}

/* After the sink failed, more writes and the end fail with its errno too,
 * and give it nothing: libarchive still writes the archive's end and
 * closes its client after a failed write. */
static void
failed_stays_failed(int threads)
{
	uint8_t *p = make_stream(STREAM);
	struct sink s = { .fail_at = 1 };
	const char *why = "unset";
	struct vs_zstd_out *z = vs_zstd_out_new(1, threads, sink_fn, &s, &why);
	size_t off = 0;

	assert_non_null(z);
	while (off < STREAM && vs_zstd_out_write(z, p + off, MIB, &why) == 0)
		off += MIB;
	assert_true(off < STREAM);
	for (int i = 0; i < 12; i++)
		if (vs_zstd_out_write(z, p, MIB, &why) < 0)
			assert_int_equal(errno, ENOSPC);
	assert_int_equal(vs_zstd_out_end(z, &why), -1);
	assert_null(why);
	assert_int_equal(errno, ENOSPC);
	vs_zstd_out_free(z);
	assert_int_equal(s.calls_after, 0);
	free(p);
	free(s.buf);
}

static void
test_failed_stream_stays_failed(void **state)
{
	(void)state;
	failed_stays_failed(0);
	failed_stays_failed(-1);
	failed_stays_failed(1);
}

static void
test_sink_failure_ends_the_stream(void **state)
{
	(void)state;
	sink_fails(-1, 1);
	sink_fails(-1, 3);
	sink_fails(2, 6);	/* the last frame: reported by the end */
	sink_fails(0, 2);
}

/* A sink that writes to a pipe, as an export's does: a write that
 * ends with EINTR is tried again unless the run was interrupted. */
static int
pipe_sink(void *arg, const void *buf, size_t len)
{
	int fd = *(int *)arg;
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n;

		if (vs_interrupted) {
			errno = EINTR;
			return -1;
		}
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
on_int(int sig)
{
	(void)sig;
	vs_interrupted = 1;
}

/* After @arg's delay, interrupt the thread that called us (SIGINT, as a
 * terminal's ^C reaches the process). */
struct interrupter {
	pthread_t target;
	unsigned ms;
};

static void *
interrupt_later(void *arg)
{
	struct interrupter *in = arg;
	struct timespec t = { in->ms / 1000, (in->ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
	pthread_kill(in->target, SIGINT);
	return NULL;
}

/* A reader that stopped reading: an interrupt ends the blocked write
 * (with EINTR) and the stream, and freeing it does not hang. */
static void
interrupted_while_blocked(int threads, unsigned ms)
{
	uint8_t *p = make_stream(STREAM);
	struct sigaction sa = { .sa_handler = on_int }, old;
	struct interrupter in = { pthread_self(), ms };
	const char *why = "unset";
	struct vs_zstd_out *z;
	pthread_t t;
	int fds[2], rc = 0;

	assert_int_equal(pipe(fds), 0);
	fcntl(fds[1], F_SETPIPE_SZ, 4096);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old);
	vs_interrupted = 0;
	z = vs_zstd_out_new(1, threads, pipe_sink, &fds[1], &why);
	assert_non_null(z);
	assert_int_equal(pthread_create(&t, NULL, interrupt_later, &in), 0);
	for (int i = 0; rc == 0 && i < 1000; i++)
		rc = vs_zstd_out_write(z, p + (i % 16) * MIB, MIB, &why);
	if (rc == 0)
		rc = vs_zstd_out_end(z, &why);
	assert_int_equal(rc, -1);
	assert_int_equal(errno, EINTR);
	vs_zstd_out_free(z);
	pthread_join(t, NULL);
	sigaction(SIGINT, &old, NULL);
	vs_interrupted = 0;
	close(fds[0]);
	close(fds[1]);
	free(p);
}

static void
test_interrupt_ends_a_blocked_write(void **state)
{
	(void)state;
	interrupted_while_blocked(-1, 300);
	interrupted_while_blocked(1, 300);
	interrupted_while_blocked(0, 300);
	interrupted_while_blocked(2, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames_one_thread_a_cpu),
		cmocka_unit_test(test_frames_on_the_callers_thread),
		cmocka_unit_test(test_frames_more_threads_than_pieces),
		cmocka_unit_test(test_empty_stream_is_a_frame),
		cmocka_unit_test(test_sink_failure_ends_the_stream),
		cmocka_unit_test(test_failed_stream_stays_failed),
		cmocka_unit_test(test_interrupt_ends_a_blocked_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
