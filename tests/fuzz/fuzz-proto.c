/*
 * fuzz-proto.c - libFuzzer harness for what a vmsync server parses: frames
 * (vs_wire_parse), every message parser, and the target side's request
 * loop (vs_serve_target) over a target that only checks its arguments.
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

static struct vs_stats stats;

static int
t_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	(void)t, (void)size;
	info->block_size = 65536;
	info->seed = 1;
	info->trusted = true;
	stats.index_state = "trusted";
	return 0;
}

static int
t_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	(void)t, (void)first;
	if (n > VS_PROTO_MAX_ENTRIES)
		abort();
	memset(out, 0xff, n * sizeof(*out));
	return 0;
}

static int
t_write(struct vs_target *t, const void *buf, size_t len, uint64_t off)
{
	volatile uint8_t sum = 0;

	(void)t, (void)off;
	if (len > 65536)
		abort();
	for (size_t i = 0; i < len; i++)	/* touch every byte */
		sum ^= ((const uint8_t *)buf)[i];
	return 0;
}

static int
t_punch(struct vs_target *t, uint64_t off, uint64_t len)
{
	(void)t;
	if (len == 0 || off + len < off)
		abort();
	return 0;
}

static int
t_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	(void)t, (void)first;
	if (n > VS_PROTO_MAX_ENTRIES)
		abort();
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
	struct vs_error_msg e;
	struct vs_hello h;
	struct vs_req q;

	vs_parse_hello(m, &h);
	vs_parse_error(m, &e);
	vs_parse_open(m, &o);
	vs_parse_opened(m, &od);
	vs_parse_req(m, &q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vs_target t = { .ops = &ops, .name = "fuzz", .stats = &stats };
	struct vs_wire in, out;
	struct vs_msg m;
	size_t used, pos = 0;
	int p[2], devnull;

	vs_err_quiet = true;
	vs_err_reset();
	/* The raw bytes as frames. */
	while (pos < size && vs_wire_parse(data + pos, size - pos, &m,
	    &used) == 0) {
		parse_all(&m);
		pos += used;
	}
	/* The input as messages with valid frames, served. */
	if (pipe(p) < 0 || (devnull = open("/dev/null", O_WRONLY)) < 0)
		abort();
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	/* Framed, this stays well under the pipe's size: no blocking. */
	if (size > 64 * 1024)
		size = 64 * 1024;
	vs_wire_init(&in, -1, p[1], "in", VS_EXIT_USAGE);
	for (pos = 0; pos + 3 <= size;) {
		uint32_t type = data[pos] % 32;
		size_t len = (size_t)(data[pos + 1] | data[pos + 2] << 8);

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		m = (struct vs_msg){ type, (uint32_t)len, data + pos };
		parse_all(&m);
		vs_wire_send(&in, type, data + pos, len);
		pos += len;
	}
	vs_wire_flush(&in);
	vs_wire_free(&in);
	close(p[1]);
	vs_wire_init(&out, p[0], devnull, "fuzz", VS_EXIT_USAGE);
	vs_serve_target(&out, &t);
	vs_wire_free(&out);
	close(p[0]);
	close(devnull);
	return 0;
}
