/*
 * index.h - the target hash index: a sidecar file beside the target.
 *
 * On disk: a 4 KiB header, then one 16-byte hash per block (see hash.h for
 * the reserved "hole" and "unknown" values), then (version 4) at the
 * header's sector offset one sector record per block: a 64-bit check, then
 * a 64-bit seeded hash of each 4 KiB sector of the block.  The header
 * records what the entries describe (block size, virtual size, seed) and
 * which target file they describe (device, inode, size, mtime, ctime).  A
 * run sets the dirty flag before it touches the target and clears it only
 * after data and entries are durable; a dirty or mismatched index is not
 * trusted.
 *
 * A sector record is valid only for the block entry it was made with: its
 * check covers the block's number, its entry and its sector hashes.  So a
 * record never needs to be cleared: one left from older contents, a
 * zeroed one (the sector area of an index migrated from version 3), or a
 * damaged one fails the check, and the old block is then read instead.
 * The entry area has room to grow (the file is sparse there); a larger
 * image moves the sector area past it, dropping the records.
 */
#ifndef VS_INDEX_H
#define VS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define IDX_MAGIC "VMSYNCIX"
#define IDX_VERSION 4
#define IDX_HEADER_SIZE 4096
#define IDX_FLAG_DIRTY 0x1u
#define IDX_MIN_BLOCK (4u << 10)
#define IDX_MAX_BLOCK (4u << 20)

#define IDX_FORMAT_LEN 16
#define IDX_SECTOR 4096u	/* bytes a sector hash covers */

/* Header layout: little-endian fields at these byte offsets.  The
 * checksum (XXH3-64) covers every byte before it; version 1 had no view
 * id and its checksum where the view id is now, version 2 no source
 * format and its checksum where the format is now, version 3 no sector
 * records and its checksum where their offset is now. */
enum idx_offset {
	IDX_OFF_MAGIC = 0,		/* "VMSYNCIX" */
	IDX_OFF_VERSION = 8,		/* u32 */
	IDX_OFF_HEADER_SIZE = 12,	/* u32 */
	IDX_OFF_BLOCK_SIZE = 16,	/* u32 */
	IDX_OFF_FLAGS = 20,		/* u32 */
	IDX_OFF_VIRTUAL_SIZE = 24,	/* u64 */
	IDX_OFF_SEED = 32,		/* u64 */
	IDX_OFF_DEV = 40,		/* u64 */
	IDX_OFF_INO = 48,		/* u64 */
	IDX_OFF_SIZE = 56,		/* u64 */
	IDX_OFF_MTIME_SEC = 64,		/* i64 */
	IDX_OFF_MTIME_NSEC = 72,	/* i64 */
	IDX_OFF_CTIME_SEC = 80,		/* i64 */
	IDX_OFF_CTIME_NSEC = 88,	/* i64 */
	IDX_OFF_ENTRIES = 96,		/* u64 */
	IDX_OFF_MEDIUM = 104,		/* u64 */
	IDX_OFF_VIEW = 112,		/* 16 bytes */
	IDX_OFF_FORMAT = 128,		/* IDX_FORMAT_LEN bytes, NUL-padded */
	IDX_OFF_SECTORS = 144,		/* u64, byte offset of the sector
					 * records */
	IDX_OFF_CSUM = 152,		/* u64 */
	IDX_OFF_CSUM_V1 = 112,
	IDX_OFF_CSUM_V2 = 128,
	IDX_OFF_CSUM_V3 = 144,
};

struct idx_identity {
	uint64_t dev;		/* st_dev of the target */
	uint64_t ino;		/* st_ino */
	uint64_t size;		/* st_size (bytes) */
	int64_t mtime_sec;	/* st_mtim */
	int64_t mtime_nsec;
	int64_t ctime_sec;	/* st_ctim: changes on any write, cannot be set */
	int64_t ctime_nsec;
	uint64_t medium;	/* block devices: disk sequence number, else 0 */
};

struct idx_header {
	uint32_t version;	/* IDX_VERSION */
	uint32_t block_size;	/* bytes, power of two, 4 KiB..4 MiB */
	uint32_t flags;		/* IDX_FLAG_* */
	uint64_t virtual_size;	/* bytes the entries cover */
	uint64_t seed;		/* XXH3 seed, random per target */
	struct idx_identity id;	/* the target file it describes */
	struct vs_hash view;	/* the source view it was synced from
				 * (view.h); zero: none */
	char format[IDX_FORMAT_LEN];	/* the format the source was read
				 * as ("raw", "qcow2"); "": not recorded */
	uint64_t sector_off;	/* byte offset of the sector records; 0:
				 * none (version 3 and older) */
};

/* Blocks needed to cover @size bytes. */
uint64_t idx_nblocks(uint64_t size, uint32_t block_size);
/* Serialize @h into @buf (IDX_HEADER_SIZE bytes, checksummed). */
void idx_header_encode(const struct idx_header *h, uint8_t *buf);
/* Recompute the checksum of the header in @buf for the version it names
 * (what encode does last; tests use it to forge headers). */
void idx_header_seal(uint8_t *buf);
/* Parse and validate; on failure returns -1 and sets *why. */
int idx_header_decode(const uint8_t *buf, size_t len, struct idx_header *h,
    const char **why);
/* True if the identity recorded in @a is @b's. */
bool idx_identity_eq(const struct idx_identity *a,
    const struct idx_identity *b);

struct vs_index;

/* Open the index at @path.  @create: make it if missing.  A missing file
 * with !create gives *out == NULL and returns 0. */
int idx_open(const char *path, bool create, struct vs_index **out);
/* The header as read, or NULL if the file had none or an invalid one
 * (then *why says why). */
const struct idx_header *idx_header(const struct vs_index *ix,
    const char **why);
/* Write @h (durably: the header is the commit point). */
int idx_write_header(struct vs_index *ix, const struct idx_header *h);
/* Size the file for @nblocks entries and no sector records (the layout of
 * version 3; idx_begin_dirty() places the records). */
int idx_resize(struct vs_index *ix, uint64_t nblocks);
/* Read entries [first, first + n); entries past the file read as hole. */
int idx_read(struct vs_index *ix, uint64_t first, size_t n,
    struct vs_hash *out);
/* Write entries [first, first + n) where @new differs from @old; a NULL
 * @old means the file holds holes there (a freshly sized index). */
int idx_write(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new);
/* Sectors per block of @block_size (the last one may be short). */
size_t idx_sectors_per_block(uint32_t block_size);
/* The 64-bit hash of one sector (@len bytes, at most IDX_SECTOR). */
uint64_t idx_sector_hash(const void *buf, size_t len, uint64_t seed);
/* Sector hashes of blocks [first, first + n) whose entries are @blk:
 * out[i * per + k] for sector k of block i (per from
 * idx_sectors_per_block()); valid[i] says whether block i's record holds
 * for blk[i] (never for a hole or unknown entry). */
int idx_read_sectors(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *blk, uint64_t *out, bool *valid);
/* Store the sector records of the blocks [first, first + n) with
 * have[i], for their entries blk[i] and hashes sec[i * per ...]. */
int idx_write_sectors(struct vs_index *ix, uint64_t first, size_t n,
    const struct vs_hash *blk, const uint64_t *sec, const bool *have);
/* The index file's descriptor, for advice about its pages. */
int idx_fd(const struct vs_index *ix);
/* Where entries [first, first + n) and their sector records lie in the
 * file: two byte ranges, of length 0 where there is none (for
 * read-ahead). */
void idx_where(const struct vs_index *ix, uint64_t first, size_t n,
    uint64_t off[2], uint64_t len[2]);
/* From now on, hold the writes of entries and sector records in memory
 * (reads see them) until idx_release(): a run's entries must not reach
 * the disk before the data they describe. */
void idx_hold(struct vs_index *ix);
/* Holding as much as it should: make the data durable, then release. */
bool idx_held_full(const struct vs_index *ix);
/* Write what is held (the data it describes is durable). */
int idx_release(struct vs_index *ix);
/* fdatasync the entries. */
int idx_sync(struct vs_index *ix);
void idx_close(struct vs_index *ix);

/*
 * Trust, begin and commit: when a run may take the index's entries as the
 * target's contents, and the order of writes that keeps an index from
 * ever being clean while it describes data that is not durable.
 */

/* The target an index is held against. */
struct idx_target {
	struct idx_identity id;	/* the target now */
	uint64_t size;		/* a file's length, a device's capacity */
	bool is_block;		/* a device, which may outsize its index */
	uint32_t block_size;	/* the block size asked for; 0: any */
	bool checksum;		/* --checksum: trust no index */
	/* Read a few target blocks and compare them with @h's entries:
	 * *bad the offset of the first that differs, UINT64_MAX if none.
	 * Asked only of an index that passes every other rule. */
	int (*spot_check)(void *arg, const struct idx_header *h,
	    uint64_t *bad);
	void *arg;		/* for spot_check */
};

/* Whether an index describes its target. */
struct idx_verdict {
	const struct idx_header *hdr;	/* the trusted header, NULL if not */
	const char *why;	/* why not (for messages), NULL if trusted */
	uint64_t spot_bad;	/* offset at which the spot check found a
				 * difference; UINT64_MAX: none */
};

/* Why the header @h does not describe the target @t (rules in the order
 * checked: --checksum, dirty, identity, size, block size), or NULL if it
 * does, as far as the header tells. */
const char *idx_mismatch(const struct idx_header *h,
    const struct idx_target *t);
/* Judge the index @ix (NULL: none) against @t: its header, then a spot
 * check of the target.  -1 only if the spot check could not be made. */
int idx_trust(const struct vs_index *ix, const struct idx_target *t,
    struct idx_verdict *out);
/* Entries [*lo, *hi) of the trusted @h that no longer describe their
 * blocks once the target holds @size bytes (empty if the size is the
 * same). */
void idx_stale_range(const struct idx_header *h, uint64_t size,
    bool is_block, uint64_t *lo, uint64_t *hi);
/* This run's header: the trusted @old (NULL for none), else a new one for
 * blocks of @block_size with a new random seed; records the source
 * @format (NULL: none).  -1 with errno if no seed could be drawn. */
int idx_begin_header(const struct idx_header *old, uint32_t block_size,
    const char *format, struct idx_header *out);
/* Before the first change to the target's bytes (a resize may come
 * first: it changes the size the identity records, so a clean index is
 * not trusted after it): write @h dirty for @size bytes (as the current
 * version: an older index is migrated here), then size the entries,
 * keeping (@keep) those below both the old and new ends of a trusted
 * index and dropping the rest, and place the sector records (kept where
 * they are if the entries still fit before them).  @h then says so. */
int idx_begin_dirty(struct vs_index *ix, struct idx_header *h, uint64_t size,
    bool keep);

/* The target's part of a commit, for idx_commit_clean(). */
struct idx_commit_steps {
	/* Make the target's data and its name durable. */
	int (*sync_target)(void *arg);
	/* The target's identity now; *foreign: another program changed it
	 * during the run. */
	int (*identify)(void *arg, struct idx_identity *id, bool *foreign);
	/* Make the index's name durable (fsync its directory). */
	int (*sync_index_dir)(void *arg);
	void *arg;		/* for each step */
};

/* Commit in the one safe order: the target's data durable, then the
 * entries, then the header @h written clean with source view @view
 * (NULL: none) and the target's identity, then the index's directory.
 * A target another program changed leaves the index dirty: *clean false. */
int idx_commit_clean(struct vs_index *ix, const struct idx_header *h,
    const struct vs_hash *view, const struct idx_commit_steps *steps,
    bool *clean);

#endif
