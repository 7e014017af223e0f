/*
 * physmap.h - where a file's bytes lie on disk (FIEMAP), and which ranges
 * two files on one btrfs share.
 *
 * Design notes
 * - Two files that map a byte to the same physical address hold the same
 *   data there: btrfs never overwrites a shared extent in place, not even
 *   for a nodatacow file.  Ranges that are holes in both are equal too.
 * - Anything FIEMAP cannot place exactly is "different": compressed
 *   (encoded) extents, whose address does not say which part of the extent
 *   a file uses, inline, delayed, unknown and unaligned extents.
 * - Memory is bounded: each file keeps at most PHYS_MAX_EXTENTS extents of
 *   one span at a time.
 */
#ifndef VS_PHYSMAP_H
#define VS_PHYSMAP_H

#include <stdbool.h>
#include <stdint.h>

struct vs_physmap;

/* Map the file open as @fd (named @name in messages). */
int vs_physmap_open(int fd, const char *name, struct vs_physmap **out);
void vs_physmap_close(struct vs_physmap *m);

/* From @off, for how many bytes (at most @max, > 0 when @max > 0) @a and
 * @b are surely equal (*same) or maybe differ (!*same). */
int vs_physmap_cmp(struct vs_physmap *a, struct vs_physmap *b, uint64_t off,
    uint64_t max, bool *same, uint64_t *n);

/* Bytes of the file open as @fd on extents no other file or snapshot
 * shares (FIEMAP_EXTENT_SHARED clear): what deleting it frees. */
int vs_physmap_exclusive(int fd, const char *name, uint64_t *bytes);

/* The first unwritten extent of @fd (allocated, as fallocate leaves it,
 * yet read as zeros, so a hole to SEEK_DATA) that overlaps [@off, @off +
 * @len), clipped to it: 1 and *@uoff, *@ulen; 0 if there is none or
 * FIEMAP cannot tell. */
int vs_physmap_unwritten(int fd, uint64_t off, uint64_t len, uint64_t *uoff,
    uint64_t *ulen);

#endif
