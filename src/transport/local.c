/*
 * local.c - the local target: a regular file or a block device, its index
 * beside it, and a lock.
 *
 * Design notes
 * - Writes are refined to 4 KiB sectors: only sectors that differ are
 *   written, so a btrfs snapshot keeps sharing everything else.  Which
 *   differ, the index's sector records say (sectors.h); where they cannot,
 *   the old block is read (unless the target is a hole there).  A sector
 *   that becomes zero is punched, not written, so target allocation never
 *   exceeds the source's.
 * - Zeroing steps down, as in nbdcopy (zero.c): PUNCH_HOLE, then
 *   ZERO_RANGE, then writing zeros; a method that says it is not supported
 *   is not tried again.  On a block device, BLKDISCARD is used while it
 *   reads back as zeros, else BLKZEROOUT.
 * - Nothing waits for the disk before commit(): the index stays dirty (and
 *   so untrusted) until the data is durable, and it holds the entries
 *   written meanwhile in memory until an fdatasync has made their data
 *   durable (idx_hold; settle_index() syncs early once it holds enough).  Every VS_WRITEBACK_BYTES
 *   written, their writeback is started (never waited for), so the disk
 *   writes while the source is read instead of in one burst at commit(),
 *   and a backup does not pile up gigabytes of dirty pages on the host.
 *   The written pages leave the cache once commit() made them durable.
 *   Waiting for each window's writeback measured slower: on a first sync
 *   it interleaves target writes with source reads.
 * - Starting writeback and reading ahead return only once the I/O is
 *   submitted (checksums, extent lookups, maybe metadata reads): an
 *   advisor thread does both, off the path that compares and writes.
 * - Identity (dev, inode, size, mtime, ctime) ties the index to the file;
 *   ctime cannot be set by a user, so any write behind vmsync's back makes
 *   the index untrusted and the next run compares with the target (the
 *   rules of trust and the order of commit are index.c's).  A
 *   write by another program during a run shows as a ctime other than the
 *   one this run's own last change left: commit() then leaves the index
 *   dirty.  Writes that keep the times (a mount of a device replica, times
 *   restored on a device) are caught by a spot check of a few blocks
 *   against a trusted index at begin().
 * - A resize is the one change made before the index is marked dirty
 *   (begin_changes()): it always changes the size the identity records,
 *   so the index is not trusted after it anyway, and a size the
 *   filesystem cannot hold is refused with the index untouched.
 * - Nothing is opened before it is known what it is: the target is first
 *   opened O_PATH, checked with fstat(), then opened for real through that
 *   descriptor, so a FIFO or a device swapped in is never opened.  Every
 *   later operation on a name (removing what a refused run created,
 *   syncing the directory) is relative to the directory descriptor taken
 *   when the target was opened, checking device and inode, so a directory
 *   swapped for a symbolic link cannot lead anywhere else.
 * - A target that a running qemu holds (its OFD locks on the image) is not
 *   written without --force, nor one whose filesystem cannot hold the
 *   source's data even if everything the target holds were reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"
#include "advisor.h"
#include "sectors.h"
#include "zero.h"
#include "../engine.h"
#include "../index.h"
#include "../physmap.h"
#include "../util.h"
#include "../confine.h"

/* Writeback spans between the start of one's writeback and the drop of
 * its pages from the cache: by then they are mostly written, so clean. */
#define VS_DROP_LAG 2

struct local_target {
	struct vs_target t;	/* base, first */
	char *path;		/* target path */
	char *index_path;	/* index path, NULL for none */
	int fd;			/* target, -1 in a dry run of a new target */
	int dir_fd;		/* the target's directory, -1 if none */
	int subvol_hold;	/* vs_subvol_hold()'s, -1 for none */
	char *base;		/* the target's name in dir_fd */
	int idx_dir_fd;		/* the index's directory, -1 if none */
	char *idx_base;		/* the index's name in idx_dir_fd */
	struct stat tgt_st;	/* the target as opened (dev, ino) */
	struct stat idx_st;	/* the index as opened; st_ino 0: none */
	struct timespec own_ctime; /* ctime after this run's last change */
	bool foreign;		/* another program changed the target */
	bool is_block;		/* a block device */
	uint64_t old_size;	/* size at open */
	struct vs_index *ix;	/* index, NULL for none */
	struct idx_header hdr;	/* this run's header */
	struct vs_target_opts opts; /* as given */
	bool trusted;		/* the index matched the target */
	bool hashes;		/* untrusted, and summaries hash the target */
	uint64_t size;		/* the source's size, from begin() */
	struct vs_hash *hc;	/* hashes of entries [hc_first, hc_first + */
	uint64_t hc_first;	/* hc_n) as first read: one window's, for */
	size_t hc_n;		/* the SUMMARIES after DIGESTS */
	uint64_t unknown_lo;	/* index entries [lo, hi) are stale after a */
	uint64_t unknown_hi;	/* size change: compare with the target */
	bool created;		/* this run created the target file */
	bool index_created;	/* this run created the index file */
	bool began;		/* begin() succeeded */
	bool unsynced;		/* target written since the last fdatasync */
	uint64_t dirty_lo;	/* span written since the last commit() */
	uint64_t dirty_hi;
	uint64_t wb_lo;		/* span of the writes since writeback started */
	uint64_t wb_hi;
	uint64_t wb_bytes;	/* bytes written in it */
	uint64_t drop_lo[VS_DROP_LAG]; /* spans whose writeback started */
	uint64_t drop_hi[VS_DROP_LAG]; /* last, oldest at drop_next */
	unsigned drop_next;
	struct vs_zeroer zeroer; /* the zeroing methods that still work */
	struct vs_sectors *sectors; /* the index's sector records, or NULL */
	uint8_t *buf;		/* old bytes of a write or punch scan */
	size_t buf_len;		/* its size */
	FILE *ops_log;		/* VMSYNC_DEBUG_OPS, or NULL */
	FILE *hints_log;	/* VMSYNC_DEBUG_HINTS (the advisor's), or NULL */
	struct vs_advisor *advisor; /* read-ahead and writeback starts */
	struct vs_advisor *ix_advisor; /* read-ahead of the index, or NULL */
};

#define VS_WRITE_PIECE (4u << 20)	/* compare and write at most this */
#define VS_WRITEBACK_BYTES (32u << 20)	/* start writeback after this much */

/* Widen [*lo, *hi) (empty when equal) to take in [off, off + len). */
static void
span_add(uint64_t *lo, uint64_t *hi, uint64_t off, uint64_t len)
{
	if (*hi == *lo) {
		*lo = off;
		*hi = off + len;
		return;
	}
	*lo = vs_min(*lo, off);
	*hi = vs_max(*hi, off + len);
}

/* Start the writeback of what was written since the last start
 * (asynchronous: nothing waits for it, and failures show at commit()'s
 * fdatasync).  Clean pages in the span cost the kernel nothing. */
static void
start_writeback(struct local_target *lt)
{
	unsigned k = lt->drop_next;

	if (lt->wb_hi > lt->wb_lo)
		vs_advise(lt->advisor, VS_ADVISE_WRITEBACK, lt->wb_lo,
		    lt->wb_hi - lt->wb_lo);
	/* A backup leaves nothing in the cache: the span whose writeback
	 * started VS_DROP_LAG spans ago leaves it now, on the advisor's
	 * thread, rather than all at once after the last fdatasync. */
	if (lt->drop_hi[k] > lt->drop_lo[k])
		vs_advise(lt->advisor, VS_ADVISE_DROP, lt->drop_lo[k],
		    lt->drop_hi[k] - lt->drop_lo[k]);
	lt->drop_lo[k] = lt->wb_lo;
	lt->drop_hi[k] = lt->wb_hi;
	lt->drop_next = (k + 1) % VS_DROP_LAG;
	lt->wb_lo = lt->wb_hi = lt->wb_bytes = 0;
}

/* [off, off + len) of the target was changed. */
static void
mark_dirty(struct local_target *lt, uint64_t off, uint64_t len)
{
	lt->unsynced = true;
	span_add(&lt->dirty_lo, &lt->dirty_hi, off, len);
	span_add(&lt->wb_lo, &lt->wb_hi, off, len);
	if ((lt->wb_bytes += len) >= VS_WRITEBACK_BYTES)
		start_writeback(lt);
}

/* The target's ctime now (zero if it cannot be read). */
static struct timespec
target_ctime(const struct local_target *lt)
{
	struct stat st;

	if (fstat(lt->fd, &st) < 0)
		return (struct timespec){ 0 };
	return st.st_ctim;
}

/* Before this run changes the target: did another program change it
 * since this run last did?  Every write sets ctime, and nobody can set it
 * back. */
static void
check_foreign(struct local_target *lt)
{
	struct timespec c;

	if (lt->foreign || lt->fd < 0)
		return;
	c = target_ctime(lt);
	lt->foreign = c.tv_sec != lt->own_ctime.tv_sec ||
	    c.tv_nsec != lt->own_ctime.tv_nsec;
}

/* After this run changed the target: the ctime that change left. */
static void
own_change(struct local_target *lt)
{
	lt->own_ctime = target_ctime(lt);
}

/* The operation log (VMSYNC_DEBUG_OPS) and, for -n -v, the user's list. */
static void
log_op(struct local_target *lt, const char *op, uint64_t off, uint64_t len)
{
	if (lt->ops_log)
		fprintf(lt->ops_log, "%s %llu %llu\n", op,
		    (unsigned long long)off, (unsigned long long)len);
	if (lt->opts.dry_run && vs_verbose >= 1)
		printf("would %s %llu bytes at offset %llu\n", op,
		    (unsigned long long)len, (unsigned long long)off);
}

char *
vs_local_index_path(const char *target)
{
	char *d = strdup(target), *b = strdup(target), *out = NULL;

	if (d && b) {
		const char *dir = dirname(d), *base = basename(b);
		size_t n = strlen(dir) + strlen(base) + 32;

		out = malloc(n);
		if (out)
			snprintf(out, n, "%s/.%s.vmsync-index", dir, base);
	}
	free(d);
	free(b);
	return out;
}

static int
get_identity(struct local_target *lt, struct idx_identity *id)
{
	struct stat st;

	if (fstat(lt->fd, &st) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "stat");
		return -1;
	}
	id->dev = lt->is_block ? st.st_dev : vs_fs_id(lt->fd, st.st_dev);
	id->ino = st.st_ino;
	id->size = lt->is_block ? lt->old_size : (uint64_t)st.st_size;
	id->mtime_sec = st.st_mtim.tv_sec;
	id->mtime_nsec = st.st_mtim.tv_nsec;
	id->ctime_sec = st.st_ctim.tv_sec;
	id->ctime_nsec = st.st_ctim.tv_nsec;
	/* A device node keeps its inode and times when another disk is put
	 * behind it (a loop device re-attached): the kernel's disk sequence
	 * number tells them apart.  0 where the kernel has none. */
	id->medium = 0;
	if (lt->is_block && ioctl(lt->fd, BLKGETDISKSEQ, &id->medium) < 0)
		id->medium = 0;
	return 0;
}

/* Log and count an operation @op on [off, off + len); false in a dry
 * run, where nothing changes, else the target is about to. */
static bool
will_change(struct local_target *lt, const char *op, uint64_t off,
    uint64_t len, uint64_t *counter)
{
	log_op(lt, op, off, len);
	*counter += len;
	if (lt->opts.dry_run)
		return false;
	mark_dirty(lt, off, len);
	check_foreign(lt);
	return true;
}

static int
zero_range(struct local_target *lt, uint64_t off, uint64_t len)
{
	if (!will_change(lt, "punch", off, len, &lt->t.stats->punched_bytes))
		return 0;
	if (vs_zero(&lt->zeroer, off, len) < 0)
		return -1;
	own_change(lt);
	return 0;
}

/* Is [off, off + len) of a file target a hole (reads as zeros)? */
static bool
is_hole(struct local_target *lt, uint64_t off, uint64_t len)
{
	off_t data;

	if (lt->fd < 0)
		return true;
	if (lt->is_block)
		return false;
	data = lseek(lt->fd, (off_t)off, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO;
	return (uint64_t)data >= off + len;
}

/* What the index says the source was read as, whatever its state: the
 * source's format decides nothing about the target's data. */
static void
record_format(struct local_target *lt)
{
	const struct idx_header *h;
	const char *why;

	if ((h = idx_header(lt->ix, &why)))
		memcpy(lt->t.recorded_format, h->format,
		    sizeof(lt->t.recorded_format));
}

#define SPOT_BLOCKS 8		/* blocks a spot check reads at most */
#define SPOT_SCAN 4096u		/* entries it looks through for data */

/* The index entries [first, first + n) of a trusted index (n <= SPOT_SCAN):
 * the first (or last, @last) that is not a hole, else @dflt. */
static int
spot_find(struct local_target *lt, uint64_t first, size_t n, bool last,
    uint64_t dflt, struct vs_hash *e, uint64_t *out)
{
	*out = dflt;
	if (idx_read(lt->ix, first, n, e) < 0)
		return -1;
	for (size_t k = 0; k < n; k++) {
		size_t i = last ? n - 1 - k : k;

		if (!vs_hash_eq(&e[i], &vs_hash_hole)) {
			*out = first + i;
			break;
		}
	}
	return 0;
}

/* The blocks to check: the first and last block, the first and last data
 * block, and data blocks found from random places. */
static int
spot_pick(struct local_target *lt, uint64_t nb, uint64_t *pick, size_t *np)
{
	struct vs_hash *e = malloc(SPOT_SCAN * sizeof(*e));
	size_t scan = (size_t)vs_min(nb, SPOT_SCAN);
	int rc = -1;

	if (!e) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "spot check");
		return -1;
	}
	pick[0] = 0;
	pick[1] = nb - 1;
	*np = 4;
	if (spot_find(lt, 0, scan, false, 0, e, &pick[2]) < 0 ||
	    spot_find(lt, nb - scan, scan, true, nb - 1, e, &pick[3]) < 0)
		goto out;
	while (*np < SPOT_BLOCKS) {
		uint64_t r;

		if (vs_random64(&r) < 0) {
			vs_errno(VS_EXIT_INTERNAL, lt->path, "getrandom");
			goto out;
		}
		r %= nb;
		if (spot_find(lt, r, (size_t)vs_min(nb - r, 64), false, r, e,
		    &pick[(*np)++]) < 0)
			goto out;
	}
	rc = 0;
out:
	free(e);
	return rc;
}

/* Do block @b's sector hashes, where its record holds, match its bytes
 * @buf (@len)?  Writes would trust them instead of reading the block. */
static int
spot_sectors(struct local_target *lt, const struct idx_header *h, uint64_t b,
    const struct vs_hash *want, const uint8_t *buf, size_t len, bool *ok)
{
	size_t per = idx_sectors_per_block(h->block_size);
	uint64_t *sec = malloc(per * sizeof(*sec));
	bool valid;

	if (!sec) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "spot check");
		return -1;
	}
	if (idx_read_sectors(lt->ix, b, 1, want, sec, &valid) < 0) {
		free(sec);
		return -1;
	}
	for (size_t k = 0; valid && k * IDX_SECTOR < len; k++)
		if (sec[k] != idx_sector_hash(buf + k * IDX_SECTOR,
		    (size_t)vs_min(IDX_SECTOR, len - k * IDX_SECTOR), h->seed))
			*ok = false;
	free(sec);
	return 0;
}

/* Does block @b of the target hold what the index @h says?  Holes are
 * asked of the file's map first, which costs no read. */
static int
spot_block(struct local_target *lt, const struct idx_header *h, uint64_t b,
    uint8_t *buf, bool *ok)
{
	uint64_t off = b * h->block_size;
	size_t len = (size_t)vs_min(h->block_size, h->virtual_size - off);
	struct vs_hash want, got = vs_hash_hole;
	ssize_t r;

	if (idx_read(lt->ix, b, 1, &want) < 0)
		return -1;
	*ok = true;
	if (vs_hash_eq(&want, &vs_hash_hole) && is_hole(lt, off, len))
		return 0;
	r = vs_pread_full(lt->fd, buf, len, off);
	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	memset(buf + r, 0, len - (size_t)r);
	/* A check leaves nothing in the cache. */
	posix_fadvise(lt->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	if (!vs_is_zero(buf, len))
		vs_hash_block(buf, len, h->seed, &got);
	*ok = vs_hash_eq(&want, &got);
	return *ok ? spot_sectors(lt, h, b, &want, buf, len, ok) : 0;
}

/* Read a few blocks of the target @arg and compare them with the index
 * @h: a write that kept the target's identity (a mount of a device
 * replica, times set back) must not leave the index trusted.  *bad: the
 * offset of the first block that differs, or UINT64_MAX. */
static int
spot_check(void *arg, const struct idx_header *h, uint64_t *bad)
{
	struct local_target *lt = arg;
	uint64_t nb = idx_nblocks(h->virtual_size, h->block_size);
	uint64_t pick[SPOT_BLOCKS];
	uint8_t *buf;
	size_t np = 0;
	bool ok = true;
	int rc = 0;

	*bad = UINT64_MAX;
	if (nb == 0 || lt->fd < 0)
		return 0;
	if (!(buf = malloc(h->block_size))) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "spot check");
		return -1;
	}
	rc = spot_pick(lt, nb, pick, &np);
	/* No read-ahead around the blocks checked: the check leaves the
	 * cache as it found it. */
	posix_fadvise(lt->fd, 0, 0, POSIX_FADV_RANDOM);
	for (size_t i = 0; rc == 0 && ok && i < np; i++)
		if ((rc = spot_block(lt, h, pick[i], buf, &ok)) == 0 && !ok)
			*bad = pick[i] * h->block_size;
	posix_fadvise(lt->fd, 0, 0, POSIX_FADV_NORMAL);
	free(buf);
	return rc;
}

/* Even if every byte the target holds were reused, could the source's
 * @data bytes fit?  Compression, sharing and zero blocks can only make
 * the need smaller, so only a plain impossibility is refused. */
static int
check_space(struct local_target *lt, uint64_t data)
{
	struct statvfs sv;
	struct stat st;
	uint64_t held, have, need;

	if (!data || lt->is_block || lt->opts.force ||
	    fstatvfs(lt->fd, &sv) < 0 || fstat(lt->fd, &st) < 0)
		return 0;
	held = (uint64_t)st.st_blocks * 512;
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	need = data > held ? data - held : 0;
	if (need <= have)
		return 0;
	vs_err(VS_EXIT_TARGET, lt->path, "not enough space: need %llu, have "
	    "%llu bytes; nothing written", (unsigned long long)need,
	    (unsigned long long)have);
	return -1;
}

/* Tell the user what was decided about the index, and why. */
static void
say_verdict(const struct local_target *lt, const struct idx_verdict *v)
{
	if (v->spot_bad != UINT64_MAX)
		vs_warn(lt->path, "index not used (spot check failed at offset "
		    "%llu); comparing with the target",
		    (unsigned long long)v->spot_bad);
	else if (!v->hdr && !lt->old_size)
		vs_info(1, "%s: new target", lt->path);
	else if (!v->hdr && lt->index_created)
		vs_info(1, "%s: an existing file without an index: comparing "
		    "with it, the index made anew", lt->path);
	else if (!v->hdr)
		vs_info(1, "%s: index not used (%s); comparing with the target",
		    lt->path, v->why);
}

/* Judge the index against the target as it is (@id), and start this
 * run's header from it or from scratch. */
static int
begin_header(struct local_target *lt, uint64_t size,
    const struct idx_identity *id)
{
	struct idx_target tt = {
		.id = *id,
		.size = lt->old_size,
		.is_block = lt->is_block,
		.block_size = lt->opts.block_size,
		.checksum = lt->opts.checksum,
		.spot_check = spot_check,
		.arg = lt,
	};
	struct idx_verdict v;

	if (idx_trust(lt->ix, &tt, &v) < 0)
		return -1;
	lt->trusted = v.hdr != NULL;
	if (idx_begin_header(v.hdr, lt->opts.block_size ? lt->opts.block_size :
	    VS_DEFAULT_BLOCK, lt->t.src_format, &lt->hdr) < 0) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "getrandom");
		return -1;
	}
	if (lt->trusted)
		idx_stale_range(v.hdr, size, lt->is_block, &lt->unknown_lo,
		    &lt->unknown_hi);
	lt->t.stats->index_state = lt->trusted ? "trusted" :
	    !lt->index_path ? "none" : lt->old_size ? "rebuilt" : "new";
	say_verdict(lt, &v);
	return 0;
}

/* Punch the unwritten extents in the first @end bytes of a file target.  A file
 * preallocated by another program (fallocate, qemu-img's
 * preallocation=falloc) reads as zeros there, so SEEK_DATA calls them
 * holes and no punch reaches them, nor a far engine's digests (zeros
 * hash as a hole): yet they hold space where the source may have holes.
 * Punching them changes no byte. */
static int
punch_unwritten(struct local_target *lt, uint64_t end)
{
	uint64_t off = 0, uoff, ulen;

	while (off < end &&
	    vs_physmap_unwritten(lt->fd, off, end - off, &uoff, &ulen) == 1) {
		if (zero_range(lt, uoff, ulen) < 0)
			return -1;
		off = uoff + ulen;
	}
	return 0;
}

/* The first changes: the file resized, then the index marked dirty.
 *
 * The resize comes first so that a size the filesystem cannot hold (EFBIG
 * on ext4 past 16 TiB) is refused before anything is touched: the index
 * stays clean and trusted.  That is crash-safe without the dirty mark: a
 * resize always changes the size, which is part of the identity the
 * index records, so a crash between the two leaves a clean index that the
 * next run does not trust (idx_mismatch) and compares with the target.
 * Every other change waits for the dirty mark, as before. */
static int
begin_changes(struct local_target *lt, uint64_t size,
    const struct idx_identity *id)
{
	lt->own_ctime = (struct timespec){ .tv_sec = id->ctime_sec,
	    .tv_nsec = id->ctime_nsec };
	if (!lt->is_block && size != lt->old_size) {
		check_foreign(lt);
		if (ftruncate(lt->fd, (off_t)size) < 0) {
			vs_errno(VS_EXIT_TARGET, lt->path,
			    "resize to %llu bytes", (unsigned long long)size);
			return -1;
		}
		own_change(lt);
	}
	if (lt->ix && idx_begin_dirty(lt->ix, &lt->hdr, size, lt->trusted) < 0)
		return -1;
	/* A target not synced by us as it is may be preallocated. */
	if (!lt->is_block && !lt->trusted && punch_unwritten(lt, size) < 0)
		return -1;
	if (lt->ix)
		idx_hold(lt->ix);
	lt->hdr.virtual_size = size;
	return 0;
}

/* What the sector records may tell this run: a trusted index's all
 * (holes are zeros), else only those of blocks hashed from the target. */
static int
open_sectors(struct local_target *lt)
{
	struct vs_sectors_trust trust = {
		.entries = lt->trusted || lt->hashes,
		.holes = lt->trusted,
		.unknown_lo = lt->unknown_lo,
		.unknown_hi = lt->unknown_hi,
	};

	return vs_sectors_new(lt->ix, lt->hdr.block_size, lt->hdr.seed,
	    lt->buf_len, VS_WINDOW_BYTES, &trust, &lt->sectors);
}

static int
local_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	struct local_target *lt = (struct local_target *)t;
	struct idx_identity id = { 0 };

	if (lt->is_block && size > lt->old_size) {
		vs_err(VS_EXIT_TARGET, lt->path, "target device is smaller "
		    "than the source (%llu < %llu bytes); nothing written",
		    (unsigned long long)lt->old_size, (unsigned long long)size);
		return -1;
	}
	if (lt->fd >= 0 && get_identity(lt, &id) < 0)
		return -1;
	if (begin_header(lt, size, &id) < 0)
		return -1;
	lt->buf_len = vs_max(lt->hdr.block_size, VS_WRITE_PIECE);
	lt->buf = malloc(lt->buf_len);
	if (!lt->buf) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "buffer");
		return -1;
	}
	info->caps = VS_CAP_PREFETCH;
	/* Only a trusted index's entries are read. */
	if (lt->ix && lt->trusted && !lt->ix_advisor &&
	    (lt->ix_advisor = vs_advisor_new(idx_fd(lt->ix))))
		info->caps |= VS_CAP_EXPECT;
	info->block_size = lt->hdr.block_size;
	info->seed = lt->hdr.seed;
	info->trusted = lt->trusted;
	/* Only for a far engine: a near one compares while it writes. */
	info->hashes_target = t->hash_untrusted;
	lt->hashes = !lt->trusted && t->hash_untrusted;
	lt->size = size;
	if (lt->ix && open_sectors(lt) < 0)
		return -1;
	memset(&info->view, 0, sizeof(info->view));
	if (lt->trusted)
		info->view = lt->hdr.view;
	if (lt->opts.dry_run) {
		lt->began = true;
		return 0;
	}
	/* From here on the target may change. */
	if (check_space(lt, info->src_data_bytes) < 0 ||
	    begin_changes(lt, size, &id) < 0)
		return -1;
	lt->began = true;
	return 0;
}

#define HASH_AHEAD (32u << 20)	/* read ahead of the blocks being hashed */

/* Hash blocks [b0, b0 + n) (at most buf_len bytes) as a reader would: a
 * block that reads as zeros is a hole.  The pages read leave the cache:
 * only the few blocks that differ are read again, to be written. */
static int
hash_piece(struct local_target *lt, uint64_t b0, size_t n,
    struct vs_hash *out)
{
	uint64_t bs = lt->hdr.block_size, off = b0 * bs;
	size_t len = (size_t)vs_min(n * bs, lt->size - off);
	ssize_t r;

	for (size_t i = 0; i < n; i++)
		out[i] = vs_hash_hole;
	if (lt->fd < 0 || is_hole(lt, off, len))
		return 0;
	if ((r = vs_pread_full(lt->fd, lt->buf, len, off)) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	memset(lt->buf + r, 0, len - (size_t)r);
	lt->t.stats->target_read_bytes += len;
	posix_fadvise(lt->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *blk = lt->buf + i * bs;
		size_t bl = (size_t)vs_min(bs, len - i * bs);

		if (!vs_is_zero(blk, bl))
			vs_hash_block(blk, bl, lt->hdr.seed, &out[i]);
	}
	if (lt->sectors && !lt->opts.dry_run)
		return vs_sectors_hashed(lt->sectors, b0, n, lt->buf, len, out);
	return 0;
}

/* The entries of blocks [first, first + n) from the target's bytes, with
 * this run's seed; the advisor reads ahead of the hashing. */
static int
hash_blocks(struct local_target *lt, uint64_t first, size_t n,
    struct vs_hash *out)
{
	uint64_t bs = lt->hdr.block_size, ahead = first * bs;
	uint64_t end = vs_min(vs_min((first + n) * bs, lt->size),
	    lt->old_size);
	size_t per = lt->buf_len / bs;

	for (size_t i = 0; i < n; i += per) {
		uint64_t to = vs_min((first + i) * bs + HASH_AHEAD, end);

		if (lt->advisor && ahead < to) {
			vs_advise(lt->advisor, VS_ADVISE_READ_AHEAD, ahead,
			    to - ahead);
			ahead = to;
		}
		if (hash_piece(lt, first + i, vs_min(per, n - i), out + i) < 0)
			return -1;
	}
	return 0;
}

/* The emptied index (holes) takes the target's hashes as they are found,
 * while it is dirty: a peer then records only the entries that change
 * (old to new, as for a trusted index), and whatever it leaves out is
 * right.  The source side asks for each range before it records there. */
static int
store_hashed(struct local_target *lt, uint64_t first, size_t n,
    const struct vs_hash *hashes)
{
	if (lt->opts.dry_run || !lt->ix)
		return 0;
	return idx_write(lt->ix, first, n, NULL, hashes);
}

/* Summaries of an untrusted index: the target's hashes, computed once
 * per window (DIGESTS) and taken from there by its SUMMARIES. */
static int
hashed_summaries(struct local_target *lt, uint64_t first, size_t n,
    struct vs_hash *out)
{
	size_t cap = VS_WINDOW_BYTES / lt->hdr.block_size;

	if (first >= lt->hc_first && first + n <= lt->hc_first + lt->hc_n) {
		memcpy(out, lt->hc + (first - lt->hc_first), n * sizeof(*out));
		return 0;
	}
	if (n > cap)
		return hash_blocks(lt, first, n, out) < 0 ? -1 :
		    store_hashed(lt, first, n, out);
	if (!lt->hc && !(lt->hc = malloc(cap * sizeof(*lt->hc)))) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "buffer");
		return -1;
	}
	lt->hc_n = 0;
	if (hash_blocks(lt, first, n, lt->hc) < 0 ||
	    store_hashed(lt, first, n, lt->hc) < 0)
		return -1;
	lt->hc_first = first;
	lt->hc_n = n;
	memcpy(out, lt->hc, n * sizeof(*out));
	return 0;
}

static int
local_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	struct local_target *lt = (struct local_target *)t;

	if (lt->hashes)
		return hashed_summaries(lt, first, n, out);
	if (lt->trusted && idx_read(lt->ix, first, n, out) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!lt->trusted || (first + i >= lt->unknown_lo &&
		    first + i < lt->unknown_hi))
			out[i] = vs_hash_unknown;
	return 0;
}

/* Write or zero one run of differing sectors. */
static int
emit_run(struct local_target *lt, const uint8_t *buf, uint64_t off,
    size_t len, bool zero)
{
	if (zero)
		return zero_range(lt, off, len);
	if (!will_change(lt, "write", off, len, &lt->t.stats->written_bytes))
		return 0;
	if (vs_pwrite_full(lt->fd, buf, len, off) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "write at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	own_change(lt);
	return 0;
}

/* Which sectors of a piece differ from the old bytes, and how to tell. */
struct piece_old {
	bool hole;		/* the target is a hole there */
	const uint64_t *old;	/* else the old sector hashes, if known */
	const uint64_t *new;	/* with the new ones */
};

/* Learn what [off, off + len) holds now: nothing if a hole, its sector
 * hashes if the index knows them, else its bytes, read into lt->buf. */
static int
piece_old(struct local_target *lt, const uint8_t *new, size_t len,
    uint64_t off, struct piece_old *p)
{
	ssize_t r;
	int known = 0;

	*p = (struct piece_old){ .hole = is_hole(lt, off, len) };
	if (lt->sectors)
		vs_sectors_hash(lt->sectors, new, len, &p->new);
	if (p->hole)
		return 0;
	if (lt->sectors &&
	    (known = vs_sectors_old(lt->sectors, off, len, &p->old)) != 0)
		return known < 0 ? -1 : 0;
	r = vs_pread_full(lt->fd, lt->buf, len, off);
	if (r < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "read at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	memset(lt->buf + r, 0, len - (size_t)r);
	lt->t.stats->target_read_bytes += len;
	return 0;
}

/* One piece of a write, at most buf_len bytes. */
static int
write_piece(struct local_target *lt, const uint8_t *new, size_t len,
    uint64_t off)
{
	struct vs_target *t = &lt->t;
	struct piece_old p;
	size_t run = 0, i;
	bool run_zero = false;

	if (piece_old(lt, new, len, off, &p) < 0)
		return -1;
	/* Walk sectors, grouping neighbours that differ the same way.  Over
	 * a hole, a sector differs exactly when it is not zero. */
	for (i = 0; i < len; i += VS_SECTOR) {
		size_t n = (size_t)vs_min(VS_SECTOR, len - i);
		bool differs = p.hole ? !vs_is_zero(new + i, n) : p.old ?
		    p.old[i / VS_SECTOR] != p.new[i / VS_SECTOR] :
		    memcmp(new + i, lt->buf + i, n) != 0;
		bool zero = differs && !p.hole && vs_is_zero(new + i, n);

		if (run && (!differs || zero != run_zero)) {
			if (emit_run(lt, new + i - run, off + i - run, run,
			    run_zero) < 0)
				return -1;
			run = 0;
		}
		if (differs) {
			run += n;
			run_zero = zero;
		} else {
			t->stats->unchanged_bytes += n;
		}
	}
	if (run && emit_run(lt, new + len - run, off + len - run, run,
	    run_zero) < 0)
		return -1;
	if (lt->sectors)
		vs_sectors_stage(lt->sectors, off, len, lt->size);
	return 0;
}

static int
local_write(struct vs_target *t, const void *data, size_t len, uint64_t off)
{
	struct local_target *lt = (struct local_target *)t;
	const uint8_t *new = data;

	for (size_t done = 0; done < len; done += lt->buf_len) {
		size_t n = (size_t)vs_min(lt->buf_len, len - done);

		if (write_piece(lt, new + done, n, off + done) < 0)
			return -1;
	}
	return 0;
}

/* The page cache reads the old bytes in the background, so write_piece()
 * finds them there instead of waiting for each block in turn; pieces
 * whose old sectors the index knows are not read at all.  The advisor
 * logs the read-ahead it started (VMSYNC_DEBUG_HINTS). */
static void
local_prefetch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct local_target *lt = (struct local_target *)t;
	uint64_t end = vs_min(off + len, lt->old_size), from = off;
	const uint64_t *old;

	if (!lt->advisor)
		return;
	for (uint64_t pos = off; lt->sectors && pos < end;) {
		size_t n = (size_t)vs_min(lt->buf_len - pos % lt->buf_len,
		    end - pos);

		if (vs_sectors_old(lt->sectors, pos, n, &old) == 1) {
			if (from < pos)
				vs_advise(lt->advisor, VS_ADVISE_READ_AHEAD,
				    from, pos - from);
			from = pos + n;
		}
		pos += n;
	}
	if (from < end)
		vs_advise(lt->advisor, VS_ADVISE_READ_AHEAD, from, end - from);
}

/* Read ahead the index's entries and sector records of blocks [first,
 * first + n), from the index's own advisor: the engine says so a window
 * or more ahead, so it then finds them in the page cache instead of
 * waiting for each at its turn. */
static void
local_expect(struct vs_target *t, uint64_t first, size_t n)
{
	struct local_target *lt = (struct local_target *)t;
	uint64_t off[2], len[2];

	if (!lt->ix_advisor)
		return;
	idx_where(lt->ix, first, n, off, len);
	for (int i = 0; i < 2; i++)
		if (len[i])
			vs_advise(lt->ix_advisor, VS_ADVISE_READ_AHEAD, off[i],
			    len[i]);
}

/* Zero the parts of [off, off + len) that hold data. */
static int
local_punch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct local_target *lt = (struct local_target *)t;
	uint64_t end = off + len, pos = off;

	if (lt->fd < 0)
		return 0;
	if (lt->is_block) {
		/* No map to ask: zero the blocks that do not read as zero. */
		uint64_t bs = lt->hdr.block_size, run_off = 0, run_len = 0;

		while (pos < end) {
			size_t n = (size_t)vs_min(end - pos, lt->buf_len);
			ssize_t r = vs_pread_full(lt->fd, lt->buf, n, pos);

			if (r != (ssize_t)n) {
				vs_errno(VS_EXIT_TARGET, lt->path,
				    "read at offset %llu",
				    (unsigned long long)pos);
				return -1;
			}
			t->stats->target_read_bytes += n;
			for (size_t i = 0; i < n; i += bs) {
				size_t m = (size_t)vs_min(bs, n - i);

				if (vs_is_zero(lt->buf + i, m)) {
					if (run_len && zero_range(lt, run_off,
					    run_len) < 0)
						return -1;
					run_len = 0;
					continue;
				}
				if (!run_len)
					run_off = pos + i;
				run_len += m;
			}
			pos += n;
		}
		return run_len ? zero_range(lt, run_off, run_len) : 0;
	}
	while (pos < end) {
		off_t data = lseek(lt->fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			/* Cannot tell: zero the whole rest. */
			return zero_range(lt, pos, end - pos);
		}
		if ((uint64_t)data >= end)
			break;
		hole = lseek(lt->fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		if (hole <= data)
			break;
		if (zero_range(lt, (uint64_t)data, (uint64_t)(hole - data)) < 0)
			return -1;
		pos = (uint64_t)hole;
	}
	return 0;
}

static int
sync_data(struct local_target *lt)
{
	if (!lt->unsynced || lt->opts.dry_run)
		return 0;
	/* No read-ahead may refill the cache after the drop below. */
	vs_advisor_drain(lt->advisor);
	if (fdatasync(lt->fd) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "sync");
		return -1;
	}
	lt->unsynced = false;
	/* Durable, hence clean: a backup leaves nothing in the cache. */
	if (lt->dirty_hi > lt->dirty_lo)
		posix_fadvise(lt->fd, (off_t)lt->dirty_lo,
		    (off_t)(lt->dirty_hi - lt->dirty_lo), POSIX_FADV_DONTNEED);
	lt->dirty_lo = lt->dirty_hi = 0;
	lt->wb_lo = lt->wb_hi = lt->wb_bytes = 0;
	memset(lt->drop_lo, 0, sizeof(lt->drop_lo));
	memset(lt->drop_hi, 0, sizeof(lt->drop_hi));
	return 0;
}

/* The index holds the entries written since begin() until the data they
 * describe is durable (idx_hold): at commit(), or here once it holds
 * enough, after an fdatasync of the target. */
static int
settle_index(struct local_target *lt)
{
	if (!lt->ix || !idx_held_full(lt->ix))
		return 0;
	if (sync_data(lt) < 0)
		return -1;
	return idx_release(lt->ix);
}

static int
local_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	struct local_target *lt = (struct local_target *)t;

	if (lt->opts.dry_run || !lt->ix)
		return 0;
	/* An untrusted index was emptied by begin(): it holds holes, or the
	 * hashes summaries() stored.  The entries describe data that is
	 * durable only at commit(), and the index stays dirty until then. */
	if (idx_write(lt->ix, first, n, lt->trusted || lt->hashes ? old :
	    NULL, new) < 0)
		return -1;
	if (lt->sectors && vs_sectors_record(lt->sectors, first, n, new) < 0)
		return -1;
	return settle_index(lt);
}

/* The directory the name lives in, as opened with the target. */
static int
sync_dir(int dir_fd)
{
	return dir_fd >= 0 ? fsync(dir_fd) : 0;
}

/* VMSYNC_DEBUG_PAUSE=FILE: make FILE and wait until it is removed (at
 * most a minute), so that a test can act at this point of a run. */
static void
debug_pause(void)
{
	const char *name = getenv("VMSYNC_DEBUG_PAUSE");
	int fd;

	if (!name || !*name)
		return;
	fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 6000 && access(name, F_OK) == 0; i++)
		usleep(10000);
}

/* Another program wrote the target during the run: the index stays dirty
 * so that the next run compares with the target, and no snapshot of the
 * run keeps a target that may not be the source (snapshot.c). */
static int
foreign_write(struct local_target *lt)
{
	vs_warn(lt->path, "written by another program during this run; %s",
	    lt->ix ? "index left dirty, the next run compares with the target" :
	    "the next run compares with the target");
	return 0;
}

static bool
same_time(const struct timespec *a, int64_t sec, int64_t nsec)
{
	return a->tv_sec == sec && a->tv_nsec == nsec;
}

/* Commit step: the target's data, and its name, durable. */
static int
commit_sync_target(void *arg)
{
	struct local_target *lt = arg;

	if (sync_data(lt) < 0)
		return -1;
	if (sync_dir(lt->dir_fd) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "sync directory");
		return -1;
	}
	return 0;
}

/* Commit step: the identity to record, and whether another program
 * wrote the target: its ctime is not the one this run's last change
 * left. */
static int
commit_identify(void *arg, struct idx_identity *id, bool *foreign)
{
	struct local_target *lt = arg;

	if (get_identity(lt, id) < 0)
		return -1;
	*foreign = lt->foreign || !same_time(&lt->own_ctime, id->ctime_sec,
	    id->ctime_nsec);
	return 0;
}

/* Commit step: the index's name durable. */
static int
commit_sync_index_dir(void *arg)
{
	struct local_target *lt = arg;

	if (sync_dir(lt->idx_dir_fd) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->index_path, "sync directory");
		return -1;
	}
	return 0;
}

/* A file target takes the source's modification time. */
static int
set_times(struct local_target *lt)
{
	struct timespec ts[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = lt->opts.src_mtime_sec,
		  .tv_nsec = lt->opts.src_mtime_nsec },
	};

	if (lt->is_block)
		return 0;
	if (futimens(lt->fd, ts) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "set times");
		return -1;
	}
	own_change(lt);
	return 0;
}

static int
local_commit(struct vs_target *t, const struct vs_hash *view)
{
	struct local_target *lt = (struct local_target *)t;
	const struct idx_commit_steps steps = {
		.sync_target = commit_sync_target,
		.identify = commit_identify,
		.sync_index_dir = commit_sync_index_dir,
		.arg = lt,
	};
	bool clean;

	if (lt->opts.dry_run)
		return 0;
	debug_pause();
	check_foreign(lt);
	if (set_times(lt) < 0)
		return -1;
	lt->unsynced = true;
	if (!lt->ix) {
		if (commit_sync_target(lt) < 0)
			return -1;
		return lt->foreign ? foreign_write(lt) : 0;
	}
	if (idx_commit_clean(lt->ix, &lt->hdr, view, &steps, &clean) < 0)
		return -1;
	return clean ? 0 : foreign_write(lt);
}

/* Remove @name from @dir_fd if it is still the file @st. */
static void
remove_created(int dir_fd, const char *name, const struct stat *st)
{
	struct stat now;

	if (dir_fd >= 0 && name && st->st_ino &&
	    fstatat(dir_fd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino)
		unlinkat(dir_fd, name, 0);
}

static void
local_close(struct vs_target *t)
{
	struct local_target *lt = (struct local_target *)t;

	/* Refused before anything was written: leave no empty files. */
	if (!lt->began && lt->created)
		remove_created(lt->dir_fd, lt->base, &lt->tgt_st);
	if (!lt->began && lt->index_created)
		remove_created(lt->idx_dir_fd, lt->idx_base, &lt->idx_st);
	vs_advisor_free(lt->ix_advisor);	/* before its fd is closed */
	idx_close(lt->ix);
	vs_advisor_free(lt->advisor);	/* before its fd is closed */
	if (lt->fd >= 0)
		close(lt->fd);
	if (lt->ops_log)
		fclose(lt->ops_log);
	if (lt->hints_log)
		fclose(lt->hints_log);
	vs_subvol_release(lt->subvol_hold);	/* written and closed */
	if (lt->dir_fd >= 0)
		close(lt->dir_fd);
	if (lt->idx_dir_fd >= 0)
		close(lt->idx_dir_fd);
	free(lt->base);
	free(lt->idx_base);
	free(lt->buf);
	vs_zeroer_release(&lt->zeroer);
	free(lt->hc);
	vs_sectors_free(lt->sectors);
	free(lt->path);
	free(lt->index_path);
	free(lt);
}

static const struct vs_target_ops local_ops = {
	.name = "local",
	.begin = local_begin,
	.summaries = local_summaries,
	.write = local_write,
	.prefetch = local_prefetch,
	.expect = local_expect,
	.punch = local_punch,
	.record = local_record,
	.commit = local_commit,
	.close = local_close,
};

/* Is @st the source file itself? */
static bool
is_source(const struct local_target *lt, const struct stat *st)
{
	return lt->opts.src_ino && lt->opts.src_dev == st->st_dev &&
	    lt->opts.src_ino == st->st_ino;
}

/* Open the directory of @path (beneath --root when confined) into
 * *dir_fd and name the file in it *base.  A missing directory gives
 * *dir_fd -1 and errno ENOENT. */
static int
open_parent(const char *path, int *dir_fd, char **base)
{
	char *d = strdup(path), *b = strdup(path);
	int rc = -1;

	*dir_fd = -1;
	if (d && b && (*base = strdup(basename(b)))) {
		*dir_fd = vs_open(dirname(d), O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC, 0);
		rc = *dir_fd >= 0 ? 0 : -1;
	}
	free(d);
	free(b);
	return rc;
}

/* A file with other names: under --root one of them may lie outside the
 * directory, so it is refused there; elsewhere it is the user's own. */
static int
check_links(const char *path, const struct stat *st, const char *what)
{
	if (st->st_nlink <= 1)
		return 0;
	if (vs_confined()) {
		vs_err(VS_EXIT_TARGET, path, "%s has %llu hard links; refusing "
		    "to write a file with other names", what,
		    (unsigned long long)st->st_nlink);
		return -1;
	}
	vs_warn(path, "%s has %llu hard links: its other names change too",
	    what, (unsigned long long)st->st_nlink);
	return 0;
}

/* A qemu that writes the image, or wants nobody else to, holds one of
 * its lock bytes (util.h). */
static int
check_qemu_locks(struct local_target *lt)
{
	if (lt->opts.dry_run || lt->opts.force)
		return 0;
	if (vs_qemu_locked(lt->fd, VS_QEMU_HOLDS) ||
	    vs_qemu_locked(lt->fd, VS_QEMU_DENIES)) {
		vs_err(VS_EXIT_TARGET, lt->path, "in use by a VM: a qemu "
		    "process holds a lock on it (--force writes anyway)");
		return -1;
	}
	return 0;
}

/* What the existing target @st is decides how it is opened; anything but
 * a regular file or a block device is refused unopened. */
static int
open_existing(struct local_target *lt, int pfd, const struct stat *st)
{
	const char *path = lt->path;
	int flags = O_CLOEXEC | O_NOCTTY | (lt->opts.dry_run ? O_RDONLY :
	    O_RDWR);

	if (S_ISLNK(st->st_mode)) {
		vs_err(VS_EXIT_TARGET, path,
		    "target is a symbolic link; refusing to write through it");
		return -1;
	}
	if (is_source(lt, st)) {
		vs_err(VS_EXIT_USAGE, path, "target is the source itself");
		return -1;
	}
	if (S_ISDIR(st->st_mode)) {
		vs_err(VS_EXIT_TARGET, path, "target is a directory");
		return -1;
	}
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
		vs_err(VS_EXIT_TARGET, path,
		    "target is not a regular file or a block device");
		return -1;
	}
	lt->is_block = S_ISBLK(st->st_mode);
	/* O_EXCL on a device: refuse one that is mounted or in use. */
	if (lt->is_block && !lt->opts.dry_run)
		flags |= O_EXCL;
	lt->fd = vs_reopen(pfd, flags);
	if (lt->fd < 0) {
		vs_errno(VS_EXIT_TARGET, path, "cannot open target");
		return -1;
	}
	return 0;
}

/* Open the target file or device; fd -1 for a dry run of a new file. */
static int
open_target(struct local_target *lt)
{
	const char *path = lt->path;
	bool dry = lt->opts.dry_run;
	struct stat st;
	int pfd, tries = 0;

	if (open_parent(path, &lt->dir_fd, &lt->base) < 0) {
		if (dry && errno == ENOENT)
			return 0;
		vs_errno(VS_EXIT_TARGET, path, "cannot open target");
		return -1;
	}
	/* Before the target is created: no snapshot sees it half made. */
	if (!dry && vs_subvol_hold(lt->dir_fd, path, &lt->subvol_hold) < 0)
		return -1;
again:
	pfd = vs_openat(lt->dir_fd, lt->base, O_PATH | O_NOFOLLOW | O_CLOEXEC,
	    0);
	if (pfd < 0) {
		if (errno != ENOENT) {
			vs_errno(VS_EXIT_TARGET, path, "cannot access target");
			return -1;
		}
		if (dry)
			return 0;
		lt->fd = vs_openat(lt->dir_fd, lt->base, O_RDWR | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
		    (mode_t)(lt->opts.src_mode & 0777));
		lt->created = lt->fd >= 0;
		/* Another run created it first: open it as existing, so the
		 * lock below answers. */
		if (lt->fd < 0 && errno == EEXIST && tries++ < 3)
			goto again;
		if (lt->fd < 0) {
			vs_errno(VS_EXIT_TARGET, path, "cannot open target");
			return -1;
		}
	} else {
		int rc = fstat(pfd, &st) < 0 ? -1 : 0;

		if (rc < 0)
			vs_errno(VS_EXIT_TARGET, path, "stat");
		else
			rc = open_existing(lt, pfd, &st);
		close(pfd);
		if (rc < 0)
			return -1;
	}
	if (flock(lt->fd, (dry ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			vs_err(VS_EXIT_LOCKED, path,
			    "target is in use by another vmsync run");
		else
			vs_errno(VS_EXIT_TARGET, path, "lock");
		return -1;
	}
	if (fstat(lt->fd, &lt->tgt_st) < 0) {
		vs_errno(VS_EXIT_TARGET, path, "stat");
		return -1;
	}
	if (check_qemu_locks(lt) < 0 ||
	    check_links(path, &lt->tgt_st, "target") < 0)
		return -1;
	lt->old_size = (uint64_t)lt->tgt_st.st_size;
	if (lt->is_block && ioctl(lt->fd, BLKGETSIZE64, &lt->old_size) < 0) {
		vs_errno(VS_EXIT_TARGET, path, "BLKGETSIZE64");
		return -1;
	}
	return 0;
}

/* The index must never be the source or the target, nor an unrelated file
 * that --index named by mistake.  *st: what is there now (st_ino 0 for
 * nothing). */
static int
check_index_path(struct local_target *lt, struct stat *st)
{
	const char *ipath = lt->index_path;
	char magic[8];
	int fd;

	memset(st, 0, sizeof(*st));
	if (lt->idx_dir_fd < 0 || fstatat(lt->idx_dir_fd, lt->idx_base, st,
	    AT_SYMLINK_NOFOLLOW) < 0) {
		if (lt->idx_dir_fd >= 0 && errno != ENOENT) {
			vs_errno(VS_EXIT_TARGET, ipath, "cannot access index");
			return -1;
		}
		memset(st, 0, sizeof(*st));
		lt->index_created = !lt->opts.dry_run;
		return 0;
	}
	if (is_source(lt, st) || (lt->fd >= 0 &&
	    lt->tgt_st.st_dev == st->st_dev &&
	    lt->tgt_st.st_ino == st->st_ino)) {
		vs_err(VS_EXIT_USAGE, ipath, "index would be the %s itself; "
		    "refusing it", is_source(lt, st) ? "source" : "target");
		return -1;
	}
	/* Refused unopened, like the target. */
	if (S_ISLNK(st->st_mode)) {
		vs_err(VS_EXIT_TARGET, ipath,
		    "index is a symbolic link; refusing it");
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		vs_err(VS_EXIT_TARGET, ipath, "index is not a regular file");
		return -1;
	}
	if (check_links(ipath, st, "index") < 0)
		return -1;
	if (!lt->opts.index_path || st->st_size == 0)
		return 0;
	fd = vs_openat(lt->idx_dir_fd, lt->idx_base, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return 0;	/* idx_open reports it */
	if (vs_pread_full(fd, magic, sizeof(magic), 0) != sizeof(magic) ||
	    memcmp(magic, IDX_MAGIC, sizeof(magic)) != 0) {
		close(fd);
		vs_err(VS_EXIT_USAGE, ipath,
		    "not a vmsync index; refusing to overwrite it");
		return -1;
	}
	close(fd);
	return 0;
}

/* Open the index: its directory first, so that the name is only ever
 * used relative to it afterwards. */
static int
open_index(struct local_target *lt)
{
	struct stat before;

	if (lt->opts.index_path) {
		if (open_parent(lt->index_path, &lt->idx_dir_fd,
		    &lt->idx_base) < 0 && errno != ENOENT) {
			vs_errno(VS_EXIT_TARGET, lt->index_path,
			    "cannot open index");
			return -1;
		}
	} else if (lt->dir_fd >= 0) {
		char *b = strdup(lt->index_path);

		lt->idx_dir_fd = fcntl(lt->dir_fd, F_DUPFD_CLOEXEC, 0);
		lt->idx_base = b ? strdup(basename(b)) : NULL;
		free(b);
		if (lt->idx_dir_fd < 0 || !lt->idx_base) {
			vs_errno(VS_EXIT_INTERNAL, lt->index_path, "index");
			return -1;
		}
	}
	if (check_index_path(lt, &before) < 0 ||
	    idx_open(lt->index_path, !lt->opts.dry_run, &lt->ix) < 0)
		return -1;
	if (!lt->ix || lt->idx_dir_fd < 0)
		return 0;
	/* What was opened must be what was checked (or made now). */
	if (fstatat(lt->idx_dir_fd, lt->idx_base, &lt->idx_st,
	    AT_SYMLINK_NOFOLLOW) < 0 || (before.st_ino &&
	    (before.st_dev != lt->idx_st.st_dev ||
	    before.st_ino != lt->idx_st.st_ino))) {
		memset(&lt->idx_st, 0, sizeof(lt->idx_st));
		vs_err(VS_EXIT_TARGET, lt->index_path,
		    "index changed while opening");
		return -1;
	}
	return before.st_ino ? 0 :
	    check_links(lt->index_path, &lt->idx_st, "index");
}

/* The debug log the environment variable @var names, appended to; NULL
 * without one. */
static int
open_log(const char *var, FILE **out)
{
	const char *name = getenv(var);

	*out = NULL;
	if (!name || !*name)
		return 0;
	if (!(*out = fopen(name, "ae"))) {
		vs_errno(VS_EXIT_INTERNAL, name, "%s", var);
		return -1;
	}
	setvbuf(*out, NULL, _IOLBF, 0);
	return 0;
}

int
vs_local_open(const char *path, const struct vs_target_opts *opts,
    struct vs_target **out)
{
	struct local_target *lt = calloc(1, sizeof(*lt));

	if (!lt || !(lt->path = strdup(path))) {
		free(lt);
		vs_errno(VS_EXIT_INTERNAL, path, "open target");
		return -1;
	}
	lt->t.ops = &local_ops;
	lt->t.name = lt->path;
	lt->t.stats = opts->stats;
	lt->opts = *opts;
	lt->fd = lt->dir_fd = lt->idx_dir_fd = lt->subvol_hold = -1;
	/* Refuse --snapshot before anything is created or written. */
	if (opts->snapshot.take && vs_snapshot_check(path) < 0)
		goto fail;
	if (open_target(lt) < 0)
		goto fail;
	vs_zeroer_init(&lt->zeroer, lt->fd, lt->is_block, lt->path);
	if (lt->fd >= 0 && !(lt->advisor = vs_advisor_new(lt->fd))) {
		vs_errno(VS_EXIT_INTERNAL, path, "open target");
		goto fail;
	}
	if (opts->index_path)
		lt->index_path = strdup(opts->index_path);
	else if (!lt->is_block)
		lt->index_path = vs_local_index_path(path);
	if ((opts->index_path || !lt->is_block) && !lt->index_path) {
		vs_errno(VS_EXIT_INTERNAL, path, "index path");
		goto fail;
	}
	if (lt->index_path && open_index(lt) < 0)
		goto fail;
	if (lt->ix)
		record_format(lt);
	if (open_log("VMSYNC_DEBUG_OPS", &lt->ops_log) < 0 ||
	    open_log("VMSYNC_DEBUG_HINTS", &lt->hints_log) < 0)
		goto fail;
	vs_advisor_log(lt->advisor, lt->hints_log);
	*out = &lt->t;
	return 0;
fail:
	local_close(&lt->t);
	return -1;
}
