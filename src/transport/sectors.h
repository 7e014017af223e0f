/*
 * sectors.h - what the index's sector records tell a target of its old
 * bytes, and the records a run's writes leave behind.
 *
 * Design notes
 * - A changed block is written sector by sector, only where the sectors
 *   differ (btrfs snapshots keep sharing the rest).  Finding them used to
 *   mean reading the old block.  With a sector record valid for the
 *   block's entry (index.h), the old sectors' hashes are known and the new
 *   ones are hashed from the bytes in hand, so nothing is read.
 * - A block's record is made from the bytes a write() gave it, staged
 *   here until record() stores the block's entry: the record is written
 *   with the entry it belongs to.  Only whole blocks are staged (a write
 *   that covers part of a block leaves that block's record to be made by a
 *   later run), and only for the window being written, which is where the
 *   engine records next.
 * - A target that hashes itself for a far engine (hashes_target) makes the
 *   records of the blocks it hashed as it goes.
 */
#ifndef VS_SECTORS_H
#define VS_SECTORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../hash.h"
#include "../index.h"

/* What the index may be taken to say of the target this run. */
struct vs_sectors_trust {
	bool entries;		/* entries describe the target (trusted, or
				 * hashed from it this run) */
	bool holes;		/* a hole entry means the block reads as
				 * zeros (a trusted index) */
	uint64_t unknown_lo;	/* entries [lo, hi) are stale */
	uint64_t unknown_hi;
};

struct vs_sectors;

/* For the index @ix of blocks of @block_size hashed with @seed, writes of
 * at most @piece bytes, and a window of @window bytes. */
int vs_sectors_new(struct vs_index *ix, uint32_t block_size, uint64_t seed,
    size_t piece, size_t window, const struct vs_sectors_trust *trust,
    struct vs_sectors **out);
void vs_sectors_free(struct vs_sectors *s);
/* Hash the sectors of the piece @buf (@len bytes); *out: one hash per
 * sector, valid until the next call. */
void vs_sectors_hash(struct vs_sectors *s, const uint8_t *buf, size_t len,
    const uint64_t **out);
/* The old bytes' sector hashes of the piece [off, off + len) (at most
 * @piece bytes) if the index knows every block of it: 1 and *out set,
 * else 0 (read the old bytes); -1 on error. */
int vs_sectors_old(struct vs_sectors *s, uint64_t off, size_t len,
    const uint64_t **out);
/* The piece [off, off + len) now holds the bytes last hashed; @size is
 * the image's, whose last block may be short. */
void vs_sectors_stage(struct vs_sectors *s, uint64_t off, size_t len,
    uint64_t size);
/* Store the records of the staged blocks of [first, first + n) whose new
 * entries @new are data. */
int vs_sectors_record(struct vs_sectors *s, uint64_t first, size_t n,
    const struct vs_hash *new);
/* Store the records of blocks [first, first + n) hashed from the target:
 * their bytes @buf (@len, the last block maybe short), entries @entries. */
int vs_sectors_hashed(struct vs_sectors *s, uint64_t first, size_t n,
    const uint8_t *buf, size_t len, const struct vs_hash *entries);

#endif
