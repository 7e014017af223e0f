/*
 * delta.h - incremental archives: what changed from one generation of an
 * image (BASE) to the next (SRC), and applying that onto a copy of BASE.
 *
 * Format (version 1).  A pax archive (plain or compressed as any archive
 * vmsync writes) of exactly two entries:
 *
 * 1. "NAME.vmsync-delta", a small text file, each line ending in "\n":
 *
 *	vmsync-delta 1
 *	name NAME
 *	base-size N		size of BASE, bytes
 *	base-seed HEX		16 hex digits: the seed of the digest below
 *	base-digest HEX		32 hex digits: BASE's identity (below)
 *	block-size B		bytes per digest entry, a power of two
 *	size N			size of SRC, bytes
 *	hole OFF LEN		zero or more: [OFF, OFF + LEN) held data in
 *				BASE and is a hole in SRC; sorted, apart,
 *				within SIZE, at most VS_DELTA_MAX_HOLES
 *	end HEX			16 hex digits: XXH3-64 of every byte before
 *				this line
 *
 *    Numbers are decimal, without sign or leading zeros; NAME is the name
 *    a full export gives the image (no "/", not "." or "..", none of
 *    vmsync's own: vs_tar_name_ok()).
 *
 * 2. "NAME", a pax sparse entry of SIZE bytes: its data runs are the bytes
 *    of SRC that differ from BASE (4 KiB sectors where both files could be
 *    compared, whole blocks otherwise); its holes are bytes that did not
 *    change, or that are listed as "hole" lines above.
 *
 * The digest: XXH3-128 (seed 0, canonical form) of the string
 * "vmsync-delta-base 1" and its NUL, the block size (u32), the size (u64)
 * and the seed (u64), little-endian, then one 16-byte entry per block of
 * BASE: the hole value (16 zero bytes) for a block that reads as zeros,
 * else the block's XXH3-128 with the seed, as in the index (index.h).  So
 * it comes from a trusted index with that seed and block size without
 * reading, or from hashing the file.
 */
#ifndef VS_DELTA_H
#define VS_DELTA_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hash.h"

#define VS_DELTA_SUFFIX ".vmsync-delta"
#define VS_DELTA_MAX_HOLES (1u << 16)	/* hole lines in one delta */
#define VS_DELTA_MAX_TEXT (4u << 20)	/* bytes of the text entry */

struct vs_cli;
struct vs_index;

/* Write the incremental archive of cli's SRC against cli->since into
 * cli's DEST.  Returns the exit code. */
int vs_delta_export(const struct vs_cli *cli, bool progress);

/* Apply the incremental @archive ("-": stdin) onto DIR/NAME in @dir, which
 * must be the base it was made from.  Returns the exit code: 3 (nothing
 * written) if DIR/NAME is not that base, 2 if the delta is malformed. */
int vs_delta_apply(const struct vs_cli *cli, const char *archive,
    const char *dir);

/* The digest of a base (see above), computed incrementally. */
struct vs_delta_digest;
int vs_delta_digest_new(uint32_t block_size, uint64_t size, uint64_t seed,
    struct vs_delta_digest **out);
void vs_delta_digest_add(struct vs_delta_digest *d,
    const struct vs_hash *entries, size_t n);
/* The result into @out; frees @d. */
void vs_delta_digest_end(struct vs_delta_digest *d, struct vs_hash *out);

/* The index beside the file @path (@st: the file now), if it describes
 * it: clean, of the file's size, times and size as the index recorded
 * them (a snapshot of the file keeps them, under another device).  NULL
 * (*ix too) if not; *ix is to be closed by the caller. */
const struct idx_header *vs_delta_trusted(const char *path,
    const struct stat *st, struct vs_index **ix);
/* The digest of the file @fd (@path, @size bytes) for @block_size and
 * @seed: from the trusted index @ix (header @h, if its block size and
 * seed are those) without reading, else by reading the file.  Bytes
 * read are added to *@read. */
int vs_delta_base_digest(int fd, const char *path, uint64_t size,
    uint32_t block_size, uint64_t seed, struct vs_index *ix,
    const struct idx_header *h, struct vs_hash *out, uint64_t *read);

#endif
