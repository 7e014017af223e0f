/*
 * reader.h - read the source's data groups ahead, in reader threads.
 *
 * The engine compares and writes one group while the next ones are read
 * and hashed, several at once: the disk's latency no longer adds to the
 * engine's time, and the disk always has requests to serve.  Only the
 * reader threads call into the source's format (one at a time; the
 * container reads it locates run in parallel, see reader.c).  A caller
 * that maps the next window while the threads read this one holds the
 * format's lock meanwhile (vs_reader_lock_format), so a format's caches
 * are never used by two threads at once.
 */
#ifndef VS_READER_H
#define VS_READER_H

#include <stddef.h>
#include <stdint.h>

#include "formats/format.h"
#include "hash.h"

struct vs_reader;

#define VS_READER_SLOTS 6	/* groups being read or waiting, at most */
#define VS_READER_WINDOWS 8	/* windows posted and not taken whole */

/* Start the threads; groups hold at most @group_bytes, blocks are hashed
 * with *@seed (NULL: not hashed, nor checked for zeros: a reader that
 * only passes the data on saves that work). */
int vs_reader_start(struct vs_image *src, size_t group_bytes,
    const uint64_t *seed, struct vs_reader **out);
/* Read the data blocks of the window at @wstart: @nb blocks of @bs bytes
 * (the last one may be short), @isdata[i] nonzero for a block to read,
 * in groups of @group blocks (@isdata is copied).  Windows are read in
 * the order posted; at most VS_READER_WINDOWS of those posted may have
 * groups not yet taken. */
int vs_reader_window(struct vs_reader *r, uint64_t wstart,
    const uint8_t *isdata, size_t nb, uint64_t bs, size_t group);
/* The buffer of the group starting at block @g0 of the window at @wstart
 * once read (its data
 * blocks at their offset from the group's start), the bytes read, and
 * the group's block hashes (@hash[i] for block g0 + i, set for the
 * blocks read: vs_hash_hole where one is all zeros; unset without a
 * seed).  NULL on a read
 * error (reported) or an interrupt (not reported). */
uint8_t *vs_reader_take(struct vs_reader *r, uint64_t wstart, size_t g0,
    uint64_t *bytes, const struct vs_hash **hash);
/* Give the buffer of the last group taken back. */
void vs_reader_give(struct vs_reader *r, uint8_t *buf);
/* Hold and release the lock the threads take for every call into the
 * source's format, around the caller's own calls (a map) while they
 * read. */
void vs_reader_lock_format(struct vs_reader *r);
void vs_reader_unlock_format(struct vs_reader *r);
/* Stop the threads and free everything. */
void vs_reader_stop(struct vs_reader *r);
/* Mark in @isdata the blocks of @bs bytes of the window at @wstart (@nb
 * of them) that hold data in @map (zeroed first); the data bytes. */
uint64_t vs_mark_data(const struct vs_extent_vec *map, uint64_t wstart,
    uint64_t bs, size_t nb, uint8_t *isdata);
/* Does group [g0, g1) hold a block to read?  A group that does not is
 * skipped by the readers and never taken by the engine. */
bool vs_group_has_data(const uint8_t *isdata, size_t g0, size_t g1);

#endif
