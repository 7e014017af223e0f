/*
 * test-engine.c - vs_sync() against a memory target (memtarget.h) that
 * logs every operation, so each case checks what the engine asked the
 * target to do, not only the bytes it ends with:
 * - a first sync into an empty untrusted target writes every data block
 *   once, and its punches change nothing there; into a trusted empty
 *   target (every entry a hole) it punches nothing at all;
 * - a rerun with nothing changed writes and punches nothing; with the
 *   digests op it asks for no entries, without it only for summaries;
 * - one changed block is the one block written, and with digests only
 *   its group's entries are asked for;
 * - a block that became a hole (unmapped, or mapped but all zeros) is
 *   punched once, neighbours in one punch, and a block that already was
 *   a hole in the target is not punched again;
 * - a grown or shrunk source reaches begin() with its new size, and the
 *   block at the old end is written again;
 * - an interrupt during the second write stops the run: -1, category
 *   VS_EXIT_PARTIAL, nothing recorded, no commit.
 * Sources are raw images over a memory container whose map reports holes
 * at 4 KiB granularity, as SEEK_HOLE on a file would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "unit.h"
#include "engine.h"
#include "formats/format.h"
#include "hash.h"
#include "memtarget.h"
#include "util.h"

#define GRAIN 4096u			/* map granularity of a source */
#define BS 4096u			/* block size of most cases */
#define GROUP (VS_CHUNK / BS)		/* blocks per group at BS */
#define SEED 0x5eed5eed1234ull

/* A source disk in memory: bytes, and which grains its map calls holes. */
struct src {
	uint8_t *buf;			/* cap bytes; zero where a hole */
	uint8_t *hole;			/* per GRAIN: mapped as a hole */
	uint64_t cap;			/* bytes allocated */
	uint64_t size;			/* bytes of the disk */
};

/* The memory container of a struct src. */
struct src_io {
	struct vs_io io;		/* base, first */
	const struct src *s;		/* the disk */
};

static struct src *
src_new(uint64_t cap, uint64_t size)
{
	struct src *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->buf = calloc(1, cap);
	s->hole = malloc(cap / GRAIN + 1);
	assert_non_null(s->buf);
	assert_non_null(s->hole);
	memset(s->hole, 1, cap / GRAIN + 1);
	s->cap = cap;
	s->size = size;
	return s;
}

static void
src_free(struct src *s)
{
	free(s->buf);
	free(s->hole);
	free(s);
}

/* [off, off + len) mapped as data, filled from @seed. */
static void
src_data(struct src *s, uint64_t off, uint64_t len, uint32_t seed)
{
	assert_true(off + len <= s->cap);
	fill(s->buf + off, len, seed);
	memset(s->hole + off / GRAIN, 0, (len + GRAIN - 1) / GRAIN);
}

/* [off, off + len) mapped as data, all zeros. */
static void
src_zero(struct src *s, uint64_t off, uint64_t len)
{
	memset(s->buf + off, 0, len);
	memset(s->hole + off / GRAIN, 0, (len + GRAIN - 1) / GRAIN);
}

/* [off, off + len) a hole (whole grains). */
static void
src_hole(struct src *s, uint64_t off, uint64_t len)
{
	memset(s->buf + off, 0, len);
	memset(s->hole + off / GRAIN, 1, (len + GRAIN - 1) / GRAIN);
}

/* The disk is now @size bytes; what lies past it reads as a hole. */
static void
src_resize(struct src *s, uint64_t size)
{
	assert_true(size <= s->cap);
	if (size < s->size) {
		memset(s->buf + size, 0, s->size - size);
		memset(s->hole + (size + GRAIN - 1) / GRAIN, 1,
		    (s->size - size) / GRAIN);
	}
	s->size = size;
}

static int
src_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	const struct src *s = ((struct src_io *)io)->s;
	size_t n = (size_t)(off < s->size ? vs_min(len, s->size - off) : 0);

	memcpy(buf, s->buf + off, n);
	memset((uint8_t *)buf + n, 0, len - n);
	return 0;
}

static int
src_map(struct vs_io *io, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	const struct src *s = ((struct src_io *)io)->s;

	for (uint64_t o = off, e; o < off + len; o = e) {
		e = vs_min((o / GRAIN + 1) * GRAIN, off + len);
		if (vs_extent_add(out, o, e - o, s->hole[o / GRAIN] ?
		    VS_EXT_ZERO : VS_EXT_DATA) < 0)
			return -1;
	}
	return 0;
}

static void
src_drop_cache(struct vs_io *io, uint64_t off, uint64_t len)
{
	(void)io, (void)off, (void)len;
}

static void
src_close(struct vs_io *io)
{
	(void)io;
}

static const struct vs_io_ops src_io_ops = {
	.pread = src_pread,
	.map = src_map,
	.drop_cache = src_drop_cache,
	.close = src_close,
};

/* @s as a raw image. */
static struct vs_image *
src_open(const struct src *s)
{
	struct src_io *sio = calloc(1, sizeof(*sio));
	struct vs_image *img = NULL;

	assert_non_null(sio);
	sio->io.ops = &src_io_ops;
	sio->io.name = strdup("source");
	assert_non_null(sio->io.name);
	sio->io.size = s->size;
	sio->io.fd = -1;
	sio->io.direct_fd = -1;
	sio->s = s;
	assert_int_equal(vs_image_open(&sio->io, "raw", &img), 0);
	return img;
}

/* One sync of @s into @m; vs_sync()'s result. */
static int
sync_once(const struct src *s, struct mem_target *m)
{
	struct vs_image *img = src_open(s);
	int rc = vs_sync(img, &m->t, NULL, NULL);

	vs_image_close(img);
	return rc;
}

static uint64_t
nblocks(const struct src *s, uint32_t bs)
{
	return (s->size + bs - 1) / bs;
}

/* The entry block @b of @s must get: its hash, or a hole if all zeros. */
static struct vs_hash
want_entry(const struct src *s, uint64_t b, uint32_t bs, uint64_t seed)
{
	uint64_t off = b * bs;
	size_t len = (size_t)vs_min(bs, s->size - off);
	struct vs_hash h = vs_hash_hole;

	if (!vs_is_zero(s->buf + off, len))
		vs_hash_block(s->buf + off, len, seed, &h);
	return h;
}

/* The target holds @s: its size, bytes and entries. */
static void
assert_synced(const struct mem_target *m, const struct src *s)
{
	uint64_t nb = nblocks(s, m->block_size);

	assert_int_equal(m->size, s->size);
	assert_int_equal(m->nent, nb);
	assert_memory_equal(m->data, s->buf, s->size);
	for (uint64_t b = 0; b < nb; b++) {
		struct vs_hash h = want_entry(s, b, m->block_size, m->seed);

		assert_memory_equal(&m->entries[b], &h, sizeof(h));
	}
}

/* How many times each of the @nb blocks was covered by a call of @op
 * (calloc'd); every call starts on a block boundary. */
static unsigned *
covered(const struct mem_target *m, enum mt_op op, uint64_t nb)
{
	unsigned *n = calloc(nb ? nb : 1, sizeof(*n));

	assert_non_null(n);
	for (size_t i = 0; i < m->nlog; i++) {
		const struct mt_call *c = &m->log[i];

		if (c->op != op)
			continue;
		assert_int_equal(c->a % m->block_size, 0);
		for (uint64_t b = c->a / m->block_size;
		    b * m->block_size < c->a + c->b; b++) {
			assert_true(b < nb);
			n[b]++;
		}
	}
	return n;
}

/* The run began once, first, with @size, and committed once, last. */
static void
assert_begun_committed(const struct mem_target *m, uint64_t size)
{
	assert_true(m->nlog >= 2);
	assert_int_equal(m->log[0].op, MT_BEGIN);
	assert_int_equal(m->log[0].a, size);
	assert_int_equal(mt_count(m, MT_BEGIN), 1);
	assert_int_equal(m->log[m->nlog - 1].op, MT_COMMIT);
	assert_int_equal(m->commits, 1);
}

/* What the first-sync cases sync: @nb blocks of @bs and a half block,
 * with data, unmapped holes, blocks mapped as data but all zeros, and
 * blocks whose first grain only is data. */
static struct src *
mixed_source(uint32_t bs, uint64_t nb)
{
	uint64_t size = nb * bs + bs / 2;
	struct src *s = src_new(size + bs, size);

	for (uint64_t b = 0; b <= nb; b++) {
		uint64_t off = b * bs, len = vs_min(bs, size - off);

		if (b % 5 == 1)
			continue;			/* a hole */
		if (b % 5 == 3)
			src_zero(s, off, len);		/* zeros, mapped */
		else if (b % 7 == 6)
			src_data(s, off, GRAIN, (uint32_t)b);
		else
			src_data(s, off, len, (uint32_t)b);
	}
	return s;
}

static void
first_sync(uint32_t bs, bool digests)
{
	struct src *s = mixed_source(bs, 40);
	struct mem_target *m = mt_new(bs, SEED, digests);
	uint64_t nb = nblocks(s, bs);
	unsigned *w, *p;

	assert_non_null(m);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, s->size);
	w = covered(m, MT_WRITE, nb);
	p = covered(m, MT_PUNCH, nb);
	for (uint64_t b = 0; b < nb; b++) {
		struct vs_hash h = want_entry(s, b, bs, SEED);
		bool hole = vs_hash_eq(&h, &vs_hash_hole);

		/* Every data block once; a hole is never written. */
		assert_int_equal(w[b], hole ? 0 : 1);
		/* Only holes may be punched, each at most once. */
		assert_true(p[b] <= (hole ? 1u : 0u));
	}
	/* The target held nothing: no punch deallocated anything. */
	assert_int_equal(m->punched_data, 0);
	assert_synced(m, s);
	free(w);
	free(p);
	m->t.ops->close(&m->t);
	src_free(s);
}

static void
test_first_sync_untrusted(void **state)
{
	(void)state;
	first_sync(BS, false);
}

static void
test_first_sync_untrusted_digests(void **state)
{
	(void)state;
	first_sync(BS, true);
}

static void
test_first_sync_untrusted_64k(void **state)
{
	(void)state;
	first_sync(64 * 1024, false);
}

/* A trusted target whose entries are all holes: nothing to punch. */
static void
test_first_sync_trusted_empty(void **state)
{
	struct src *s = mixed_source(BS, 40);
	struct mem_target *m = mt_new(BS, SEED, false);
	struct vs_hash *holes;
	uint64_t nb;
	unsigned *w;

	(void)state;
	src_resize(s, 40 * BS);		/* whole blocks: no edge block */
	nb = nblocks(s, BS);
	holes = calloc(nb, sizeof(*holes));
	assert_non_null(m);
	assert_non_null(holes);
	assert_int_equal(mt_trust(m, holes, nb), 0);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, s->size);
	assert_int_equal(mt_count(m, MT_PUNCH), 0);
	w = covered(m, MT_WRITE, nb);
	for (uint64_t b = 0; b < nb; b++) {
		struct vs_hash h = want_entry(s, b, BS, SEED);

		assert_int_equal(w[b], vs_hash_eq(&h, &vs_hash_hole) ? 0 : 1);
	}
	assert_synced(m, s);
	free(w);
	free(holes);
	m->t.ops->close(&m->t);
	src_free(s);
}

/* Two and a half groups, sparse: data every 97th block, a zero block
 * mapped as data every 101st, holes elsewhere. */
static struct src *
groups_source(void)
{
	uint64_t nb = 2 * GROUP + GROUP / 2;
	struct src *s = src_new(nb * BS, nb * BS);

	for (uint64_t b = 0; b < nb; b++) {
		if (b % 97 == 0)
			src_data(s, b * BS, BS, (uint32_t)b + 1);
		else if (b % 101 == 0)
			src_zero(s, b * BS, BS);
	}
	return s;
}

/* @s synced into a new target, which is then trusted, its log cleared. */
static struct mem_target *
synced_target(const struct src *s, uint32_t bs, bool digests)
{
	struct mem_target *m = mt_new(bs, SEED, digests);

	assert_non_null(m);
	assert_int_equal(sync_once(s, m), 0);
	assert_synced(m, s);
	assert_int_equal(mt_trust(m, NULL, 0), 0);
	mt_log_reset(m);
	return m;
}

static void
rerun_unchanged(bool digests)
{
	struct src *s = groups_source();
	struct mem_target *m = synced_target(s, BS, digests);

	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, s->size);
	assert_int_equal(mt_count(m, MT_WRITE), 0);
	assert_int_equal(mt_count(m, MT_PUNCH), 0);
	if (digests) {
		/* Every group's digest matches: no entry is asked for. */
		assert_int_equal(mt_count(m, MT_DIGESTS), 1);
		assert_int_equal(mt_nth(m, MT_DIGESTS, 0)->c, GROUP);
		assert_int_equal(mt_count(m, MT_SUMMARIES), 0);
	} else {
		/* One window: its entries, asked for once. */
		assert_int_equal(mt_count(m, MT_DIGESTS), 0);
		assert_int_equal(mt_count(m, MT_SUMMARIES), 1);
		assert_int_equal(mt_nth(m, MT_SUMMARIES, 0)->a, 0);
		assert_int_equal(mt_nth(m, MT_SUMMARIES, 0)->b,
		    nblocks(s, BS));
	}
	assert_synced(m, s);
	m->t.ops->close(&m->t);
	src_free(s);
}

static void
test_rerun_unchanged(void **state)
{
	(void)state;
	rerun_unchanged(false);
}

static void
test_rerun_unchanged_digests(void **state)
{
	(void)state;
	rerun_unchanged(true);
}

static void
one_block_changed(bool digests)
{
	struct src *s = groups_source();
	struct mem_target *m = synced_target(s, BS, digests);
	uint64_t b = GROUP + 3 * 97 - GROUP % 97;	/* data, group 1 */
	const struct mt_call *c;

	assert_int_equal(b % 97, 0);
	src_data(s, b * BS, BS, 0xc4a9);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, s->size);
	assert_int_equal(mt_count(m, MT_WRITE), 1);
	c = mt_nth(m, MT_WRITE, 0);
	assert_int_equal(c->a, b * BS);
	assert_int_equal(c->b, BS);
	assert_int_equal(mt_count(m, MT_PUNCH), 0);
	/* With digests only the changed group's entries are asked for. */
	assert_int_equal(mt_count(m, MT_SUMMARIES), 1);
	c = mt_nth(m, MT_SUMMARIES, 0);
	assert_int_equal(c->a, digests ? GROUP : 0);
	assert_int_equal(c->b, digests ? GROUP : nblocks(s, BS));
	assert_synced(m, s);
	m->t.ops->close(&m->t);
	src_free(s);
}

static void
test_one_block_changed(void **state)
{
	(void)state;
	one_block_changed(false);
}

static void
test_one_block_changed_digests(void **state)
{
	(void)state;
	one_block_changed(true);
}

/* Sixteen blocks of data but for a hole at 5 and zeros at 9; then 2 and
 * 11-12 become holes, 7 zeros mapped as data. */
static void
became_hole(bool digests)
{
	struct src *s = src_new(16 * BS, 16 * BS);
	struct mem_target *m;
	const struct mt_call *c;

	for (uint64_t b = 0; b < 16; b++)
		if (b != 5)
			src_data(s, b * BS, BS, (uint32_t)b + 7);
	src_zero(s, 9 * BS, BS);
	m = synced_target(s, BS, digests);
	src_hole(s, 2 * BS, BS);
	src_zero(s, 7 * BS, BS);
	src_hole(s, 11 * BS, 2 * BS);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, s->size);
	assert_int_equal(mt_count(m, MT_WRITE), 0);
	/* Only where the entries say data; 5 and 9 were holes already. */
	assert_int_equal(mt_count(m, MT_PUNCH), 3);
	c = mt_nth(m, MT_PUNCH, 0);
	assert_int_equal(c->a, 2 * BS);
	assert_int_equal(c->b, BS);
	c = mt_nth(m, MT_PUNCH, 1);
	assert_int_equal(c->a, 7 * BS);
	assert_int_equal(c->b, BS);
	c = mt_nth(m, MT_PUNCH, 2);
	assert_int_equal(c->a, 11 * BS);
	assert_int_equal(c->b, 2 * BS);
	assert_int_equal(m->punched_data, 4 * BS);
	assert_synced(m, s);
	m->t.ops->close(&m->t);
	src_free(s);
}

static void
test_became_hole(void **state)
{
	(void)state;
	became_hole(false);
}

static void
test_became_hole_digests(void **state)
{
	(void)state;
	became_hole(true);
}

/* 10.5 blocks grow to 13: block 10 keeps its first half, 11 is data, 12
 * a hole. */
static void
grow(bool digests)
{
	struct src *s = src_new(13 * BS, 10 * BS + BS / 2);
	struct mem_target *m;
	unsigned *w;

	for (uint64_t b = 0; b < 10; b++)
		src_data(s, b * BS, BS, (uint32_t)b + 3);
	src_data(s, 10 * BS, BS / 2, 10);
	m = synced_target(s, BS, digests);
	src_resize(s, 13 * BS);
	src_zero(s, 10 * BS + BS / 2, BS / 2);
	src_data(s, 11 * BS, BS, 11);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, 13 * BS);
	w = covered(m, MT_WRITE, 13);
	for (uint64_t b = 0; b < 13; b++)
		assert_int_equal(w[b], b == 10 || b == 11 ? 1 : 0);
	assert_int_equal(mt_count(m, MT_PUNCH), 0);
	assert_synced(m, s);
	free(w);
	m->t.ops->close(&m->t);
	src_free(s);
}

/* 13 blocks shrink to 10.5: block 10 keeps its first half. */
static void
shrink(bool digests)
{
	struct src *s = src_new(13 * BS, 13 * BS);
	struct mem_target *m;
	const struct mt_call *c;

	for (uint64_t b = 0; b < 13; b++)
		src_data(s, b * BS, BS, (uint32_t)b + 5);
	m = synced_target(s, BS, digests);
	src_resize(s, 10 * BS + BS / 2);
	assert_int_equal(sync_once(s, m), 0);
	assert_begun_committed(m, 10 * BS + BS / 2);
	/* The new last block, short, is the one write; nothing is punched
	 * (the target would refuse a range past its end). */
	assert_int_equal(mt_count(m, MT_WRITE), 1);
	c = mt_nth(m, MT_WRITE, 0);
	assert_int_equal(c->a, 10 * BS);
	assert_int_equal(c->b, BS / 2);
	assert_int_equal(mt_count(m, MT_PUNCH), 0);
	assert_synced(m, s);
	m->t.ops->close(&m->t);
	src_free(s);
}

static void
test_size_grow(void **state)
{
	(void)state;
	grow(false);
}

static void
test_size_grow_digests(void **state)
{
	(void)state;
	grow(true);
}

static void
test_size_shrink(void **state)
{
	(void)state;
	shrink(false);
}

static void
test_size_shrink_digests(void **state)
{
	(void)state;
	shrink(true);
}

/* Twelve groups with sixteen separate data blocks each: the second write
 * comes long before the readers reach the last groups. */
static void
test_interrupt(void **state)
{
	uint64_t nb = 12 * GROUP;
	struct src *s = src_new(nb * BS, nb * BS);
	struct mem_target *m = mt_new(BS, SEED, false);
	unsigned *w;

	(void)state;
	assert_non_null(m);
	for (uint64_t b = 0; b < nb; b += GROUP / 16)
		src_data(s, b * BS, BS, (uint32_t)b + 1);
	m->interrupt_at = 2;
	assert_int_equal(sync_once(s, m), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_PARTIAL);
	assert_true(vs_interrupted);
	assert_int_equal(m->commits, 0);
	assert_int_equal(mt_count(m, MT_COMMIT), 0);
	assert_int_equal(mt_count(m, MT_RECORD), 0);
	/* It stopped: the last groups were never written. */
	assert_true(m->writes >= 2);
	assert_true(m->writes < nb / (GROUP / 16));
	w = covered(m, MT_WRITE, nb);
	for (uint64_t b = nb - GROUP; b < nb; b++)
		assert_int_equal(w[b], 0);
	free(w);
	m->t.ops->close(&m->t);
	src_free(s);
}

static int
setup(void **state)
{
	(void)state;
	vs_err_reset();
	vs_interrupted = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	vs_err_reset();
	vs_interrupted = 0;
	return 0;
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_first_sync_untrusted),
		T(test_first_sync_untrusted_digests),
		T(test_first_sync_untrusted_64k),
		T(test_first_sync_trusted_empty),
		T(test_rerun_unchanged),
		T(test_rerun_unchanged_digests),
		T(test_one_block_changed),
		T(test_one_block_changed_digests),
		T(test_became_hole),
		T(test_became_hole_digests),
		T(test_size_grow),
		T(test_size_grow_digests),
		T(test_size_shrink),
		T(test_size_shrink_digests),
		T(test_interrupt),
	};
#undef T

	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
