/*
 * engine.c - walk the source map, hash, compare with the index, write.
 *
 * Design notes
 * - The image is handled one window of VS_WINDOW_BYTES at a
 *   time: map the window (no data read), fetch its index entries, read the
 *   DATA blocks in VS_CHUNK pieces, then record the new entries.  Memory is
 *   one chunk plus two windows of entries, whatever the image size.
 * - A block is DATA if any byte of it is mapped as data.  A DATA block that
 *   reads as all zeros is treated as a hole.  Holes are punched on the
 *   target only where the index says the target may hold data.
 * - Without a trusted index every entry is "unknown": each DATA block goes
 *   to the target's write(), which compares with the old bytes, and each
 *   hole is punched where the target has data.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "progress.h"
#include "util.h"

struct sync_state {
	struct vs_image *src;		/* source */
	struct vs_target *t;		/* target */
	struct vs_stats *st;		/* counters */
	struct vs_target_info info;	/* block size, seed, trust */
	uint8_t *buf;			/* one chunk of source data */
	uint8_t *isdata;		/* per block of the window */
	struct vs_hash *old, *new;	/* entries of the window */
	struct vs_extent_vec map;	/* the window's extents */
	uint64_t punch_off, punch_len;	/* pending punch, coalesced */
};

/* Stop at the next check after SIGINT/SIGTERM/SIGHUP. */
static int
check_interrupt(struct sync_state *s)
{
	if (!vs_interrupted)
		return 0;
	vs_err(VS_EXIT_PARTIAL, s->src->name, "interrupted");
	return -1;
}

static int
flush_punch(struct sync_state *s)
{
	int r = 0;

	if (s->punch_len)
		r = s->t->ops->punch(s->t, s->punch_off, s->punch_len);
	s->punch_len = 0;
	return r;
}

/* Block at @off (@len bytes) is a hole in the source. */
static int
hole_block(struct sync_state *s, size_t i, uint64_t off, uint64_t len)
{
	s->new[i] = vs_hash_hole;
	if (vs_hash_eq(&s->old[i], &vs_hash_hole))
		return 0;
	if (s->punch_len && s->punch_off + s->punch_len == off) {
		s->punch_len += len;
		return 0;
	}
	if (flush_punch(s) < 0)
		return -1;
	s->punch_off = off;
	s->punch_len = len;
	return 0;
}

/* Read, hash and send blocks [b0, b1) of the window at @wstart. */
static int
data_run(struct sync_state *s, uint64_t wstart, size_t b0, size_t b1,
    struct vs_progress *p)
{
	uint64_t bs = s->info.block_size, size = s->src->size;
	uint64_t off = wstart + b0 * bs, end = vs_min(wstart + b1 * bs, size);

	while (off < end) {
		size_t n = (size_t)vs_min(end - off, VS_CHUNK);

		if (check_interrupt(s) < 0)
			return -1;
		if (s->src->ops->read(s->src, s->buf, n, off) < 0)
			return -1;
		s->st->read_bytes += n;
		for (size_t pos = 0; pos < n; pos += bs) {
			size_t len = (size_t)vs_min(bs, n - pos);
			size_t i = (size_t)((off + pos - wstart) / bs);
			const uint8_t *blk = s->buf + pos;

			if (vs_is_zero(blk, len)) {
				if (hole_block(s, i, off + pos, len) < 0)
					return -1;
				continue;
			}
			vs_hash_block(blk, len, s->info.seed, &s->new[i]);
			if (vs_hash_eq(&s->new[i], &s->old[i])) {
				s->st->unchanged_bytes += len;
				continue;
			}
			if (flush_punch(s) < 0 ||
			    s->t->ops->write(s->t, blk, len, off + pos) < 0)
				return -1;
		}
		if (s->src->ops->drop_cache)
			s->src->ops->drop_cache(s->src, off, n);
		off += n;
		vs_progress_update(p, off, s->st);
	}
	return 0;
}

/* Mark the blocks of the window that hold any mapped data. */
static void
mark_data(struct sync_state *s, uint64_t wstart, size_t nb)
{
	uint64_t bs = s->info.block_size;

	memset(s->isdata, 0, nb);
	for (size_t k = 0; k < s->map.n; k++) {
		const struct vs_extent *e = &s->map.v[k];

		if (e->type != VS_EXT_DATA)
			continue;
		s->st->data_bytes += e->len;
		for (uint64_t b = (e->off - wstart) / bs;
		    b < nb && wstart + b * bs < e->off + e->len; b++)
			s->isdata[b] = 1;
	}
}

static int
sync_window(struct sync_state *s, uint64_t wstart, struct vs_progress *p)
{
	uint64_t bs = s->info.block_size, size = s->src->size;
	uint64_t wlen = vs_min(VS_WINDOW_BYTES, size - wstart);
	uint64_t first = wstart / bs;
	size_t nb = (size_t)((wlen + bs - 1) / bs), b = 0;

	if (check_interrupt(s) < 0)
		return -1;
	if (vs_image_map(s->src, wstart, wlen, &s->map) < 0 ||
	    s->t->ops->summaries(s->t, first, nb, s->old) < 0)
		return -1;
	mark_data(s, wstart, nb);
	while (b < nb) {
		size_t e = b;

		while (e < nb && s->isdata[e] == s->isdata[b])
			e++;
		if (s->isdata[b]) {
			if (data_run(s, wstart, b, e, p) < 0)
				return -1;
		} else {
			for (size_t i = b; i < e; i++) {
				uint64_t off = wstart + i * bs;

				if (hole_block(s, i, off,
				    vs_min(bs, size - off)) < 0)
					return -1;
			}
			vs_progress_update(p, wstart + vs_min(e * bs, wlen),
			    s->st);
		}
		b = e;
	}
	if (flush_punch(s) < 0)
		return -1;
	return s->t->ops->record(s->t, first, nb, s->old, s->new);
}

int
vs_sync(struct vs_image *src, struct vs_target *t, struct vs_progress *p)
{
	struct sync_state s = { .src = src, .t = t, .st = t->stats };
	double start = vs_now();
	int ret = -1;

	s.st->virtual_size = src->size;
	if (t->ops->begin(t, src->size, &s.info) < 0)
		return -1;
	vs_info(2, "%s: %s, %llu bytes, block size %u, index %s", src->name,
	    src->ops->name, (unsigned long long)src->size, s.info.block_size,
	    s.st->index_state);
	s.buf = malloc(VS_CHUNK);
	s.isdata = malloc(VS_WINDOW_BYTES / s.info.block_size);
	s.old = calloc(VS_WINDOW_BYTES / s.info.block_size, sizeof(*s.old));
	s.new = calloc(VS_WINDOW_BYTES / s.info.block_size, sizeof(*s.new));
	if (!s.buf || !s.isdata || !s.old || !s.new) {
		vs_errno(VS_EXIT_INTERNAL, src->name, "buffers");
		goto out;
	}
	vs_progress_start(p, src->size);
	for (uint64_t w = 0; w < src->size; w += VS_WINDOW_BYTES)
		if (sync_window(&s, w, p) < 0)
			goto out;
	if (t->ops->commit(t) < 0)
		goto out;
	ret = 0;
out:
	s.st->elapsed = vs_now() - start;
	vs_progress_end(p, ret == 0 ? src->size : 0, s.st);
	vs_extent_vec_free(&s.map);
	free(s.buf);
	free(s.isdata);
	free(s.old);
	free(s.new);
	return ret;
}
