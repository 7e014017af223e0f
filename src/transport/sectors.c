/*
 * sectors.c - sector records: the old bytes' sector hashes a write needs,
 * and the records its bytes leave (see sectors.h).
 */
#include <stdlib.h>
#include <string.h>

#include "sectors.h"
#include "../util.h"
#include "../vmsync.h"

struct vs_sectors {
	struct vs_index *ix;		/* the target's index */
	uint32_t bs;			/* block size */
	size_t per;			/* sectors per block */
	uint64_t seed;			/* of the sector hashes */
	struct vs_sectors_trust trust;	/* what the entries say */
	size_t piece_blocks;		/* blocks of the largest piece */
	uint64_t *nsec;			/* the piece's new sector hashes */
	uint64_t *osec;			/* its old ones, as the index says */
	struct vs_hash *blk;		/* its entries */
	bool *valid;			/* its blocks' records that hold */
	size_t wblocks;			/* blocks of a window */
	uint64_t pend_first;		/* first block of the staged window */
	bool pend_any;			/* a window is staged */
	uint64_t *pend;			/* its blocks' sector hashes */
	bool *have;			/* which of its blocks are staged */
	bool *put;			/* scratch: records to store */
};

int
vs_sectors_new(struct vs_index *ix, uint32_t block_size, uint64_t seed,
    size_t piece, size_t window, const struct vs_sectors_trust *trust,
    struct vs_sectors **out)
{
	struct vs_sectors *s = calloc(1, sizeof(*s));
	size_t sectors = piece / IDX_SECTOR;

	*out = NULL;
	if (!s)
		goto fail;
	*s = (struct vs_sectors){ .ix = ix, .bs = block_size,
	    .per = idx_sectors_per_block(block_size), .seed = seed,
	    .trust = *trust, .piece_blocks = piece / block_size,
	    .wblocks = window / block_size };
	s->nsec = calloc(sectors, sizeof(*s->nsec));
	s->osec = calloc(sectors, sizeof(*s->osec));
	s->blk = calloc(s->piece_blocks, sizeof(*s->blk));
	s->valid = calloc(s->piece_blocks, sizeof(*s->valid));
	s->pend = calloc(s->wblocks * s->per, sizeof(*s->pend));
	s->have = calloc(s->wblocks, sizeof(*s->have));
	s->put = calloc(s->wblocks, sizeof(*s->put));
	if (!s->nsec || !s->osec || !s->blk || !s->valid || !s->pend ||
	    !s->have || !s->put)
		goto fail;
	*out = s;
	return 0;
fail:
	vs_sectors_free(s);
	vs_errno(VS_EXIT_INTERNAL, "sector records", "buffer");
	return -1;
}

void
vs_sectors_free(struct vs_sectors *s)
{
	if (!s)
		return;
	free(s->nsec);
	free(s->osec);
	free(s->blk);
	free(s->valid);
	free(s->pend);
	free(s->have);
	free(s->put);
	free(s);
}

/* Hash the sectors of @len bytes at @buf into @out; @cap hashes at most
 * (past @len: zero). */
static void
hash_sectors(uint64_t seed, const uint8_t *buf, size_t len, uint64_t *out,
    size_t cap)
{
	for (size_t k = 0; k < cap; k++) {
		size_t at = k * IDX_SECTOR;

		out[k] = at < len ? idx_sector_hash(buf + at,
		    (size_t)vs_min(IDX_SECTOR, len - at), seed) : 0;
	}
}

void
vs_sectors_hash(struct vs_sectors *s, const uint8_t *buf, size_t len,
    const uint64_t **out)
{
	hash_sectors(s->seed, buf, len, s->nsec,
	    (len + s->bs - 1) / s->bs * s->per);
	*out = s->nsec;
}

/* The sector hashes of block @i of the piece, @len bytes long, if it is
 * a hole: zeros. */
static void
zero_sectors(struct vs_sectors *s, size_t i, size_t len)
{
	static const uint8_t zeros[IDX_SECTOR];

	for (size_t k = 0; k * IDX_SECTOR < len; k++)
		s->osec[i * s->per + k] = idx_sector_hash(zeros,
		    (size_t)vs_min(IDX_SECTOR, len - k * IDX_SECTOR), s->seed);
}

int
vs_sectors_old(struct vs_sectors *s, uint64_t off, size_t len,
    const uint64_t **out)
{
	uint64_t first = off / s->bs;
	size_t nb = (size_t)((len + s->bs - 1) / s->bs);

	if (!s->trust.entries || off % s->bs || !len || nb > s->piece_blocks ||
	    (first < s->trust.unknown_hi && first + nb > s->trust.unknown_lo))
		return 0;
	if (idx_read(s->ix, first, nb, s->blk) < 0 ||
	    idx_read_sectors(s->ix, first, nb, s->blk, s->osec, s->valid) < 0)
		return -1;
	for (size_t i = 0; i < nb; i++) {
		if (s->valid[i])
			continue;
		if (!s->trust.holes || !vs_hash_eq(&s->blk[i], &vs_hash_hole))
			return 0;
		zero_sectors(s, i, (size_t)vs_min(s->bs, len - i * s->bs));
	}
	*out = s->osec;
	return 1;
}

void
vs_sectors_stage(struct vs_sectors *s, uint64_t off, size_t len,
    uint64_t size)
{
	uint64_t end = off + len;

	for (uint64_t b = off / s->bs; b * s->bs < end; b++) {
		uint64_t start = b * s->bs, stop = vs_min(start + s->bs, size);
		uint64_t win = b / s->wblocks * s->wblocks;
		size_t i;

		if (!s->pend_any || s->pend_first != win) {
			memset(s->have, 0, s->wblocks * sizeof(*s->have));
			s->pend_first = win;
			s->pend_any = true;
		}
		i = (size_t)(b - win);
		/* Only whole blocks, from a piece that starts on one. */
		s->have[i] = off % s->bs == 0 && start >= off && stop <= end;
		if (s->have[i])
			memcpy(s->pend + i * s->per,
			    s->nsec + (start - off) / IDX_SECTOR,
			    s->per * sizeof(*s->pend));
	}
}

static bool
is_data(const struct vs_hash *h)
{
	return !vs_hash_eq(h, &vs_hash_hole) && !vs_hash_eq(h, &vs_hash_unknown);
}

int
vs_sectors_record(struct vs_sectors *s, uint64_t first, size_t n,
    const struct vs_hash *new)
{
	uint64_t lo, hi;

	if (!s->pend_any)
		return 0;
	lo = vs_max(first, s->pend_first);
	hi = vs_min(first + n, s->pend_first + s->wblocks);
	if (lo >= hi)
		return 0;
	for (uint64_t b = lo; b < hi; b++) {
		size_t i = (size_t)(b - s->pend_first);

		s->put[i - (lo - s->pend_first)] = s->have[i] &&
		    is_data(&new[b - first]);
		s->have[i] = false;
	}
	return idx_write_sectors(s->ix, lo, (size_t)(hi - lo), new + (lo - first),
	    s->pend + (lo - s->pend_first) * s->per, s->put);
}

int
vs_sectors_hashed(struct vs_sectors *s, uint64_t first, size_t n,
    const uint8_t *buf, size_t len, const struct vs_hash *entries)
{
	if (n > s->piece_blocks)
		return 0;
	hash_sectors(s->seed, buf, len, s->nsec, n * s->per);
	for (size_t i = 0; i < n; i++)
		s->put[i] = is_data(&entries[i]);
	return idx_write_sectors(s->ix, first, n, entries, s->nsec, s->put);
}
