/*
 * fuzz-proto.c - libFuzzer harness for what either side of a session
 * parses: frames (vs_wire_parse), every message parser (requests and the
 * replies a source side reads), the target side's request loop
 * (vs_serve_target, as a push server and a pulling client run it) over a
 * target that aborts on anything outside the size BEGIN declared, and
 * the source side of a pull server (the remote target's operations),
 * whose replies come from the input.
 *
 * The input is a list of messages: u8 type, u16 length (little-endian),
 * payload.  They are framed with valid checksums (so the fuzzer gets past
 * them) and served; the raw input is also parsed as frames as it is.
 * Build and run: make fuzz [FUZZ_SECONDS=600].  make check builds it with
 * replay.c instead of libFuzzer (any compiler), so it always compiles;
 * that binary runs the inputs named on its command line.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/proto.h"
#include "transport/remote.h"
#include "vmsync.h"

#define BS 65536	/* the fake target's block size */

static struct vs_stats stats;
static uint64_t begun_size;	/* what BEGIN declared */

/* [off, off + len) inside @end, as vs_serve_target() must ensure. */
static void
inside(uint64_t off, uint64_t len, uint64_t end)
{
	if (off + len < off || off + len > end)
		abort();
}

static int
t_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	(void)t;
	begun_size = size;
	info->block_size = BS;
	info->seed = 1;
	info->trusted = true;
	stats.index_state = "trusted";
	return 0;
}

static int
t_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	(void)t;
	if (n > VS_PROTO_MAX_ENTRIES)
		abort();
	inside(first, n, (begun_size + BS - 1) / BS);
	memset(out, 0xff, n * sizeof(*out));
	return 0;
}

static int
t_write(struct vs_target *t, const void *buf, size_t len, uint64_t off)
{
	volatile uint8_t sum = 0;

	(void)t;
	if (len > BS)
		abort();
	inside(off, len, begun_size);
	for (size_t i = 0; i < len; i++)	/* touch every byte */
		sum ^= ((const uint8_t *)buf)[i];
	return 0;
}

static int
t_punch(struct vs_target *t, uint64_t off, uint64_t len)
{
	(void)t;
	if (len == 0)
		abort();
	inside(off, len, begun_size);
	return 0;
}

static int
t_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	(void)t;
	if (n > VS_PROTO_MAX_ENTRIES)
		abort();
	inside(first, n, (begun_size + BS - 1) / BS);
	return memcmp(old, new, n * sizeof(*old)) == 2 ? -1 : 0;
}

static int
t_commit(struct vs_target *t, const struct vs_hash *view)
{
	(void)t, (void)view;
	return 0;
}

static void
t_close(struct vs_target *t)
{
	(void)t;
}

static const struct vs_target_ops ops = {
	.name = "fuzz", .begin = t_begin, .summaries = t_summaries,
	.write = t_write, .punch = t_punch, .record = t_record,
	.commit = t_commit, .close = t_close,
};

static void
parse_all(const struct vs_msg *m)
{
	static struct vs_open o;
	static struct vs_opened od;
	static struct vs_error_msg e;
	static struct vs_hash hashes[VS_PROTO_MAX_ENTRIES];
	static struct vs_list_req lq;
	static struct vs_listed ld;
	static struct vs_verified vd;
	uint32_t n;
	struct vs_hello h;
	struct vs_req q;
	struct vs_begun b;
	struct vs_done d;
	struct vs_stats_msg st;

	vs_parse_hello(m, &h);
	vs_parse_error(m, &e);
	vs_parse_open(m, &o);
	vs_parse_opened(m, &od);
	vs_parse_req(m, &q);
	vs_parse_begun(m, &b);
	vs_parse_done(m, &d);
	vs_parse_stats(m, &st);
	vs_parse_list(m, &lq);
	vs_parse_listed(m, &ld);
	vs_parse_list_end(m, &n);
	vs_parse_verified(m, &vd);
	for (size_t n = 0; n < 3; n++) {	/* right count, one off */
		size_t k = m->len / sizeof(hashes[0]) + n - 1;

		vs_parse_hashes(m, VS_MSG_DIGESTS_R, k, hashes);
		vs_parse_hashes(m, VS_MSG_SUMMARIES_R, k, hashes);
	}
}

/* The source side of a pull server: each operation of a remote target
 * reads its reply (or an ERROR) from @rfd, until one fails. */
static void
drive_remote(int rfd, int wfd)
{
	static struct vs_hash old[16], new[16], out[16];
	static uint8_t block[4 * BS];
	struct vs_stats st = { .index_state = "-" };
	struct vs_target_info info;
	struct vs_target *t;
	struct vs_wire w;

	vs_wire_init(&w, rfd, wfd, "fuzz", VS_EXIT_SOURCE);
	if (vs_remote_target(&w, "fuzz", VS_WIRE_NONE, 0, false, &st, &t) < 0)
		abort();
	memset(new, 1, sizeof(new));
	if (t->ops->begin(t, 16 * BS, &info) == 0 &&
	    t->ops->digests(t, 0, 16, 4, out) == 0 &&
	    t->ops->summaries(t, 0, 16, out) == 0 &&
	    t->ops->write(t, block, sizeof(block), 0) == 0 &&
	    t->ops->punch(t, 0, BS) == 0 &&
	    t->ops->record(t, 0, 16, old, new) == 0)
		t->ops->commit(t, NULL);
	t->ops->close(t);
	vs_wire_free(&w);
}

/* Write the input, as messages (u8 type, u16 length, payload), to @fd in
 * valid frames; parse each message too if @parse. */
static void
frame_input(const uint8_t *data, size_t size, int fd, bool parse)
{
	struct vs_wire in;
	struct vs_msg m;

	vs_wire_init(&in, -1, fd, "in", VS_EXIT_USAGE);
	for (size_t pos = 0; pos + 3 <= size;) {
		uint32_t type = data[pos] % 32;
		size_t len = (size_t)(data[pos + 1] | data[pos + 2] << 8);

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		m = (struct vs_msg){ type, (uint32_t)len, data + pos };
		if (parse)
			parse_all(&m);
		vs_wire_send(&in, type, data + pos, len);
		pos += len;
	}
	vs_wire_flush(&in);
	vs_wire_free(&in);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_target t = { .ops = &ops, .name = "fuzz", .stats = &stats };
	struct vs_wire out;
	struct vs_msg m;
	size_t used, pos = 0;
	int p[2], p2[2], devnull;

	vs_err_quiet = true;
	vs_err_reset();
	/* The raw bytes as frames. */
	while (pos < size && vs_wire_parse(data + pos, size - pos, &m,
	    &used) == 0) {
		parse_all(&m);
		pos += used;
	}
	/* The input as messages with valid frames: served as requests, and
	 * read as replies. */
	if (pipe(p) < 0 || pipe(p2) < 0 ||
	    (devnull = open("/dev/null", O_WRONLY)) < 0)
		abort();
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	fcntl(p2[1], F_SETPIPE_SZ, 1 << 20);
	/* Framed, this stays well under the pipe's size: no blocking. */
	if (size > 64 * 1024)
		size = 64 * 1024;
	frame_input(data, size, p[1], true);
	frame_input(data, size, p2[1], false);
	vs_wire_init(&out, p[0], devnull, "fuzz", VS_EXIT_USAGE);
	begun_size = 0;
	vs_serve_target(&out, &t);
	vs_wire_free(&out);
	close(p[0]);
	vs_err_reset();
	drive_remote(p2[0], devnull);
	close(p2[0]);
	close(devnull);
	return 0;
}
