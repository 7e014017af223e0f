/*
 * transport.h - the target side of a sync.
 *
 * Design notes
 * - The engine talks to the target only through these ops, so the local
 *   target (a file or block device with its index) and a remote one (the
 *   same ops spoken over the wire to "vmsync --server") are interchangeable.
 * - Order of durability: begin() marks the index dirty before any byte of
 *   the target changes; record() stores entries only after the data they
 *   describe is durable; commit() makes the index clean again.  A run that
 *   stops anywhere in between leaves a dirty index, which is never trusted.
 */
#ifndef VS_TRANSPORT_H
#define VS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../hash.h"
#include "../index.h"
#include "../snapshot.h"
#include "../vmsync.h"

/* Sector size of the write refinement: only differing sectors are written. */
#define VS_SECTOR IDX_SECTOR
#define VS_DEFAULT_BLOCK (64u << 10)

struct vs_target;

/* What a target can do, as its begin() declares it (info->caps); the
 * engine asks nothing else of it. */
enum vs_target_cap {
	VS_CAP_DIGESTS = 1u << 0,	/* digests(): a far target, asked
					 * one digest per group first */
	VS_CAP_PREFETCH = 1u << 1,	/* prefetch() hints are worth giving */
	VS_CAP_EXPECT = 1u << 2,	/* expect() hints are worth giving */
};

struct vs_target_info {
	uint32_t caps;		/* enum vs_target_cap */
	uint32_t block_size;	/* bytes per index entry */
	uint64_t seed;		/* hash seed of this target */
	bool trusted;		/* summaries come from a valid index */
	bool hashes_target;	/* summaries of an untrusted index come from
				 * hashing the target */
	struct vs_hash view;	/* the source view the trusted index was
				 * synced from (view.h); zero: none */
	uint64_t src_data_bytes; /* in: bytes the source maps as data, for
				 * the free space check; 0: not known */
};

struct vs_target_ops {
	const char *name;	/* "local", ... */
	/* Prepare for a source of @size bytes: check room, resize, mark the
	 * index dirty.  Reads info->src_data_bytes, fills the rest of @info. */
	int (*begin)(struct vs_target *, uint64_t size,
	    struct vs_target_info *info);
	/* Index entries [first, first + n): unknown where not trusted,
	 * unless info->hashes_target. */
	int (*summaries)(struct vs_target *, uint64_t first, size_t n,
	    struct vs_hash *out);
	/* With VS_CAP_DIGESTS, for targets far away: one digest per group of @per
	 * entries of [first, first + n) (the last group may be short), each
	 * vs_hash_group() of the group's entries with the target's seed. */
	int (*digests)(struct vs_target *, uint64_t first, size_t n,
	    size_t per, struct vs_hash *out);
	/* Make [off, off + len) hold @buf, writing only differing sectors. */
	int (*write)(struct vs_target *, const void *buf, size_t len,
	    uint64_t off);
	/* With VS_CAP_PREFETCH, a hint: [off, off + len) is about to be
	 * written, so its old bytes will be compared; start fetching them. */
	void (*prefetch)(struct vs_target *, uint64_t off, uint64_t len);
	/* With VS_CAP_EXPECT, a hint: entries [first, first + n) will be
	 * asked for, and their blocks compared, a window or more from now;
	 * start fetching what that needs from the index. */
	void (*expect)(struct vs_target *, uint64_t first, size_t n);
	/* Make [off, off + len) read as zeros, deallocated where possible. */
	int (*punch)(struct vs_target *, uint64_t off, uint64_t len);
	/* Store entries that changed from @old to @new (after the data). */
	int (*record)(struct vs_target *, uint64_t first, size_t n,
	    const struct vs_hash *old, const struct vs_hash *new);
	/* Make everything durable and the index clean, recording that the
	 * target now holds source view @view (NULL: none). */
	int (*commit)(struct vs_target *, const struct vs_hash *view);
	/* Release; without commit() the index stays dirty. */
	void (*close)(struct vs_target *);
};

struct vs_target {
	const struct vs_target_ops *ops;	/* the transport */
	const char *name;			/* for messages */
	struct vs_stats *stats;			/* counters to add to */
	/* The format the target's index says the source was read as last
	 * time ("raw", "qcow2"), from open on; "": none recorded. */
	char recorded_format[IDX_FORMAT_LEN];
	/* What the source is read as this time, set before begin() (NULL:
	 * unknown); the index records it. */
	const char *src_format;
	/* Set before begin() where the engine is across the wire: reading
	 * the target costs less than sending the source, so an untrusted
	 * index is made up for by hashing the target (hashes_target). */
	bool hash_untrusted;
};

struct vs_target_opts {
	uint32_t block_size;	/* wanted block size; 0: the index's or default */
	bool dry_run;		/* change nothing */
	bool checksum;		/* ignore the index, compare with the target */
	bool force;		/* write even if a VM holds the target, or its
				 * filesystem looks too small */
	const char *index_path;	/* NULL: beside a file target, none for a device */
	uint32_t src_mode;	/* permissions for a new target */
	int64_t src_mtime_sec;	/* times to give the target at commit */
	int64_t src_mtime_nsec;
	uint64_t src_dev;	/* the source's st_dev and st_ino, so that the */
	uint64_t src_ino;	/* target and index are never the source */
	struct vs_snapshot_opts snapshot; /* after commit, if take */
	struct vs_stats *stats;	/* counters */
};

/* Open (or create) the local target @path and lock it. */
int vs_local_open(const char *path, const struct vs_target_opts *opts,
    struct vs_target **out);
/* The index path vmsync uses beside the file @target (malloc'd). */
char *vs_local_index_path(const char *target);

#endif
