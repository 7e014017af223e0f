/*
 * local.c - the local target: a regular file or a block device, its index
 * beside it, and a lock.
 *
 * Design notes
 * - Writes are refined to 4 KiB sectors: the old block is read (unless the
 *   target is a hole there) and only sectors that differ are written, so a
 *   btrfs snapshot keeps sharing everything else.  A sector that becomes
 *   zero is punched, not written, so target allocation never exceeds the
 *   source's.
 * - Zeroing steps down, as in nbdcopy: PUNCH_HOLE, then ZERO_RANGE, then
 *   writing zeros; a method that says ENOTSUP is not tried again.  On a
 *   block device, BLKDISCARD is used while it reads back as zeros (checked
 *   after every discard), else BLKZEROOUT.
 * - Nothing waits for the disk before commit(): the index stays dirty (and
 *   so untrusted) until the data is durable.  Every VS_WRITEBACK_BYTES
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
 *   the index untrusted and the next run compares with the target.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"
#include "advisor.h"
#include "../index.h"
#include "../util.h"
#include "../confine.h"

/* How a range is made to read as zeros. */
enum zero_method {
	ZERO_PUNCH,		/* fallocate PUNCH_HOLE | KEEP_SIZE */
	ZERO_RANGE,		/* fallocate ZERO_RANGE | KEEP_SIZE */
	ZERO_WRITE,		/* pwrite zeros */
	ZERO_DISCARD,		/* BLKDISCARD, verified by reading back */
	ZERO_BLKZEROOUT,	/* BLKZEROOUT */
};

struct local_target {
	struct vs_target t;	/* base, first */
	char *path;		/* target path */
	char *index_path;	/* index path, NULL for none */
	int fd;			/* target, -1 in a dry run of a new target */
	bool is_block;		/* a block device */
	uint64_t old_size;	/* size at open */
	struct vs_index *ix;	/* index, NULL for none */
	struct idx_header hdr;	/* this run's header */
	struct vs_target_opts opts; /* as given */
	bool trusted;		/* the index matched the target */
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
	enum zero_method zero;	/* current zeroing method */
	uint8_t *buf;		/* old bytes of a write or punch scan */
	size_t buf_len;		/* its size */
	uint8_t *check;		/* discard read-back; never aliases buf */
	FILE *ops_log;		/* VMSYNC_DEBUG_OPS, or NULL */
	FILE *hints_log;	/* VMSYNC_DEBUG_HINTS (the advisor's), or NULL */
	struct vs_advisor *advisor; /* read-ahead and writeback starts */
};

#define ZERO_CHUNK (1u << 20)
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
	if (lt->wb_hi > lt->wb_lo)
		vs_advise(lt->advisor, VS_ADVISE_WRITEBACK, lt->wb_lo,
		    lt->wb_hi - lt->wb_lo);
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
	id->dev = st.st_dev;
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

/* Read back a discarded range; false if any byte is not zero. */
static int
reads_as_zero(struct local_target *lt, uint64_t off, uint64_t len, bool *zero)
{
	*zero = true;
	if (!lt->check && !(lt->check = malloc(ZERO_CHUNK))) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "buffer");
		return -1;
	}
	while (len && *zero) {
		size_t n = (size_t)vs_min(len, ZERO_CHUNK);

		if (vs_pread_full(lt->fd, lt->check, n, off) != (ssize_t)n) {
			vs_errno(VS_EXIT_TARGET, lt->path,
			    "read back at offset %llu", (unsigned long long)off);
			return -1;
		}
		*zero = vs_is_zero(lt->check, n);
		off += n;
		len -= n;
	}
	return 0;
}

static int
write_zeros(struct local_target *lt, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[ZERO_CHUNK];

	while (len) {
		size_t n = (size_t)vs_min(len, sizeof(zeros));

		if (vs_pwrite_full(lt->fd, zeros, n, off) < 0)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

/* Make [off, off + len) read as zeros with the best method that works. */
static int
zero_range(struct local_target *lt, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };
	bool zero;

	log_op(lt, "punch", off, len);
	lt->t.stats->punched_bytes += len;
	if (lt->opts.dry_run)
		return 0;
	mark_dirty(lt, off, len);
	for (;;) {
		int r;

		switch (lt->zero) {
		case ZERO_PUNCH:
			r = fallocate(lt->fd, FALLOC_FL_PUNCH_HOLE |
			    FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
			break;
		case ZERO_RANGE:
			r = fallocate(lt->fd, FALLOC_FL_ZERO_RANGE |
			    FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
			break;
		case ZERO_DISCARD:
			r = ioctl(lt->fd, BLKDISCARD, range);
			if (r == 0) {
				if (reads_as_zero(lt, off, len, &zero) < 0)
					return -1;
				if (zero)
					return 0;
				vs_info(1, "%s: discard does not read back "
				    "as zeros; using BLKZEROOUT", lt->path);
				lt->zero = ZERO_BLKZEROOUT;
				continue;
			}
			break;
		case ZERO_BLKZEROOUT:
			r = ioctl(lt->fd, BLKZEROOUT, range);
			break;
		default:
			r = write_zeros(lt, off, len);
			break;
		}
		if (r == 0)
			return 0;
		if (errno != EOPNOTSUPP && errno != ENOTSUP && errno != ENOTTY &&
		    errno != EINVAL) {
			vs_errno(VS_EXIT_TARGET, lt->path,
			    "zero %llu bytes at offset %llu",
			    (unsigned long long)len, (unsigned long long)off);
			return -1;
		}
		/* Step down and never try this method again. */
		if (lt->zero == ZERO_WRITE) {
			vs_errno(VS_EXIT_TARGET, lt->path, "write zeros");
			return -1;
		}
		lt->zero = lt->zero == ZERO_DISCARD ? ZERO_BLKZEROOUT :
		    lt->zero == ZERO_PUNCH ? ZERO_RANGE : ZERO_WRITE;
		if (lt->zero != ZERO_RANGE)
			vs_info(1, "%s: cannot punch holes; writing zeros",
			    lt->path);
	}
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

static int
local_begin(struct vs_target *t, uint64_t size, struct vs_target_info *info)
{
	struct local_target *lt = (struct local_target *)t;
	const struct idx_header *old = NULL;
	struct idx_identity id = { 0 };
	const char *why = "no index";
	uint64_t old_n, new_n;

	if (lt->is_block && size > lt->old_size) {
		vs_err(VS_EXIT_TARGET, lt->path, "target device is smaller "
		    "than the source (%llu < %llu bytes); nothing written",
		    (unsigned long long)lt->old_size, (unsigned long long)size);
		return -1;
	}
	if (lt->fd >= 0 && get_identity(lt, &id) < 0)
		return -1;
	if (lt->ix)
		old = idx_header(lt->ix, &why);
	if (old && lt->opts.checksum) {
		why = "--checksum given";
		old = NULL;
	} else if (old && (old->flags & IDX_FLAG_DIRTY)) {
		why = "an earlier run did not finish";
		old = NULL;
	} else if (old && !idx_identity_eq(&old->id, &id)) {
		why = "the target changed since the last run";
		old = NULL;
	} else if (old && old->virtual_size != lt->old_size &&
	    !lt->is_block) {
		why = "the index does not match the target's size";
		old = NULL;
	} else if (old && lt->is_block && old->virtual_size > lt->old_size) {
		why = "the index is larger than the device";
		old = NULL;
	} else if (old && lt->opts.block_size &&
	    old->block_size != lt->opts.block_size) {
		why = "a different --block-size was asked for";
		old = NULL;
	}
	lt->trusted = old != NULL;
	if (lt->trusted) {
		lt->hdr = *old;
		t->stats->index_state = "trusted";
		/* The block that holds the old or new end changed length: its
		 * entry no longer describes it.  A file grows with a hole,
		 * which the new entries say; a device keeps whatever it held
		 * past the old end, so there nothing is known. */
		if (size != old->virtual_size) {
			lt->unknown_lo = vs_min(size, old->virtual_size) /
			    old->block_size;
			lt->unknown_hi = lt->is_block ? UINT64_MAX :
			    lt->unknown_lo + 1;
		}
	} else {
		lt->hdr.version = IDX_VERSION;
		lt->hdr.block_size = lt->opts.block_size ? lt->opts.block_size :
		    VS_DEFAULT_BLOCK;
		if (vs_random64(&lt->hdr.seed) < 0) {
			vs_errno(VS_EXIT_INTERNAL, lt->path, "getrandom");
			return -1;
		}
		t->stats->index_state = !lt->index_path ? "none" :
		    lt->old_size ? "rebuilt" : "new";
		if (lt->old_size)
			vs_info(1, "%s: index not used (%s); comparing with the "
			    "target", lt->path, why);
		else
			vs_info(1, "%s: new target", lt->path);
	}
	lt->buf_len = vs_max(lt->hdr.block_size, VS_WRITE_PIECE);
	lt->buf = malloc(lt->buf_len);
	if (!lt->buf) {
		vs_errno(VS_EXIT_INTERNAL, lt->path, "buffer");
		return -1;
	}
	info->block_size = lt->hdr.block_size;
	info->seed = lt->hdr.seed;
	info->trusted = lt->trusted;
	memset(&info->view, 0, sizeof(info->view));
	if (lt->trusted)
		info->view = lt->hdr.view;
	if (lt->opts.dry_run) {
		lt->began = true;
		return 0;
	}

	/* From here on the target may change: mark the index dirty first. */
	old_n = idx_nblocks(lt->hdr.virtual_size, lt->hdr.block_size);
	new_n = idx_nblocks(size, lt->hdr.block_size);
	lt->hdr.flags |= IDX_FLAG_DIRTY;
	if (lt->ix) {
		struct idx_header h = lt->hdr;

		h.virtual_size = size;
		if (idx_write_header(lt->ix, &h) < 0)
			return -1;
		/* Drop stale entries past the old end, then grow with holes. */
		if (idx_resize(lt->ix, lt->trusted ? vs_min(old_n, new_n) : 0)
		    < 0 || idx_resize(lt->ix, new_n) < 0)
			return -1;
	}
	if (!lt->is_block && size != lt->old_size &&
	    ftruncate(lt->fd, (off_t)size) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "resize to %llu bytes",
		    (unsigned long long)size);
		return -1;
	}
	lt->hdr.virtual_size = size;
	lt->began = true;
	return 0;
}

static int
local_summaries(struct vs_target *t, uint64_t first, size_t n,
    struct vs_hash *out)
{
	struct local_target *lt = (struct local_target *)t;

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
	log_op(lt, "write", off, len);
	lt->t.stats->written_bytes += len;
	if (lt->opts.dry_run)
		return 0;
	mark_dirty(lt, off, len);
	if (vs_pwrite_full(lt->fd, buf, len, off) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->path, "write at offset %llu",
		    (unsigned long long)off);
		return -1;
	}
	return 0;
}

/* One piece of a write, at most buf_len bytes. */
static int
write_piece(struct local_target *lt, const uint8_t *new, size_t len,
    uint64_t off)
{
	struct vs_target *t = &lt->t;
	size_t run = 0, i;
	bool run_zero = false, hole;

	/* Over a hole, a sector differs exactly when it is not zero. */
	hole = is_hole(lt, off, len);
	if (!hole) {
		ssize_t r = vs_pread_full(lt->fd, lt->buf, len, off);

		if (r < 0) {
			vs_errno(VS_EXIT_TARGET, lt->path,
			    "read at offset %llu", (unsigned long long)off);
			return -1;
		}
		memset(lt->buf + r, 0, len - (size_t)r);
		t->stats->target_read_bytes += len;
	}
	/* Walk sectors, grouping neighbours that differ the same way. */
	for (i = 0; i < len; i += VS_SECTOR) {
		size_t n = (size_t)vs_min(VS_SECTOR, len - i);
		bool differs = hole ? !vs_is_zero(new + i, n) :
		    memcmp(new + i, lt->buf + i, n) != 0;
		bool zero = differs && !hole && vs_is_zero(new + i, n);

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
	if (run)
		return emit_run(lt, new + len - run, off + len - run, run,
		    run_zero);
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
 * finds them there instead of waiting for each block in turn.  The
 * advisor logs the read-ahead it started (VMSYNC_DEBUG_HINTS). */
static void
local_prefetch(struct vs_target *t, uint64_t off, uint64_t len)
{
	struct local_target *lt = (struct local_target *)t;

	if (lt->advisor && off < lt->old_size)
		vs_advise(lt->advisor, VS_ADVISE_READ_AHEAD, off,
		    vs_min(len, lt->old_size - off));
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
	return 0;
}

static int
local_record(struct vs_target *t, uint64_t first, size_t n,
    const struct vs_hash *old, const struct vs_hash *new)
{
	struct local_target *lt = (struct local_target *)t;

	if (lt->opts.dry_run || !lt->ix)
		return 0;
	/* An untrusted index was emptied by begin(): it holds holes.  The
	 * entries describe data that is durable only at commit(), and the
	 * index stays dirty until then. */
	return idx_write(lt->ix, first, n, lt->trusted ? old : NULL, new);
}

static int
sync_dir(const char *path)
{
	char *d = strdup(path);
	int fd, r = 0;

	if (!d)
		return -1;
	fd = vs_open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd >= 0) {
		r = fsync(fd);
		close(fd);
	}
	free(d);
	return r;
}

/* The target is complete and durable: snapshot it if asked. */
static int
snapshot(struct local_target *lt)
{
	if (!lt->opts.snapshot.take)
		return 0;
	return vs_snapshot_take(lt->path, &lt->opts.snapshot);
}

static int
local_commit(struct vs_target *t, const struct vs_hash *view)
{
	struct local_target *lt = (struct local_target *)t;
	struct idx_header h = lt->hdr;

	if (lt->opts.dry_run)
		return 0;
	if (!lt->is_block) {
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_OMIT },
			{ .tv_sec = lt->opts.src_mtime_sec,
			  .tv_nsec = lt->opts.src_mtime_nsec },
		};

		if (futimens(lt->fd, ts) < 0) {
			vs_errno(VS_EXIT_TARGET, lt->path, "set times");
			return -1;
		}
	}
	lt->unsynced = true;
	if (sync_data(lt) < 0 || sync_dir(lt->path) < 0)
		return -1;
	if (!lt->ix)
		return snapshot(lt);
	if (idx_sync(lt->ix) < 0 || get_identity(lt, &h.id) < 0)
		return -1;
	h.flags &= ~IDX_FLAG_DIRTY;
	memset(&h.view, 0, sizeof(h.view));
	if (view)
		h.view = *view;
	if (idx_write_header(lt->ix, &h) < 0)
		return -1;
	if (sync_dir(lt->index_path) < 0) {
		vs_errno(VS_EXIT_TARGET, lt->index_path, "sync directory");
		return -1;
	}
	return snapshot(lt);
}

static void
local_close(struct vs_target *t)
{
	struct local_target *lt = (struct local_target *)t;

	/* Refused before anything was written: leave no empty files. */
	if (!lt->began && lt->created)
		unlink(lt->path);
	if (!lt->began && lt->index_created)
		unlink(lt->index_path);
	idx_close(lt->ix);
	vs_advisor_free(lt->advisor);	/* before its fd is closed */
	if (lt->fd >= 0)
		close(lt->fd);
	if (lt->ops_log)
		fclose(lt->ops_log);
	if (lt->hints_log)
		fclose(lt->hints_log);
	free(lt->buf);
	free(lt->check);
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
	.punch = local_punch,
	.record = local_record,
	.commit = local_commit,
	.close = local_close,
};

/* Open the target file or device; fd -1 for a dry run of a new file. */
/* Is @st the source file itself? */
static bool
is_source(const struct local_target *lt, const struct stat *st)
{
	return lt->opts.src_ino && lt->opts.src_dev == st->st_dev &&
	    lt->opts.src_ino == st->st_ino;
}

static int
open_target(struct local_target *lt)
{
	const char *path = lt->path;
	bool dry = lt->opts.dry_run;
	struct stat st;
	int flags = O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, tries = 0;

again:
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT) {
			vs_errno(VS_EXIT_TARGET, path, "cannot access target");
			return -1;
		}
		if (dry)
			return 0;
		lt->fd = vs_open(path, flags | O_RDWR | O_CREAT | O_EXCL,
		    (mode_t)(lt->opts.src_mode & 0777));
		lt->created = lt->fd >= 0;
		/* Another run created it first: open it as existing, so the
		 * lock below answers. */
		if (lt->fd < 0 && errno == EEXIST && tries++ < 3)
			goto again;
	} else if (S_ISLNK(st.st_mode)) {
		vs_err(VS_EXIT_TARGET, path,
		    "target is a symbolic link; refusing to write through it");
		return -1;
	} else if (is_source(lt, &st)) {
		vs_err(VS_EXIT_USAGE, path, "target is the source itself");
		return -1;
	} else if (S_ISREG(st.st_mode)) {
		lt->fd = vs_open(path, flags | (dry ? O_RDONLY : O_RDWR), 0);
	} else if (S_ISBLK(st.st_mode)) {
		/* O_EXCL on a device: refuse one that is mounted or in use. */
		lt->fd = vs_open(path, flags | (dry ? O_RDONLY :
		    O_RDWR | O_EXCL), 0);
		lt->is_block = true;
	} else if (S_ISDIR(st.st_mode)) {
		vs_err(VS_EXIT_TARGET, path, "target is a directory");
		return -1;
	} else {
		vs_err(VS_EXIT_TARGET, path,
		    "target is not a regular file or a block device");
		return -1;
	}
	if (lt->fd < 0) {
		vs_errno(VS_EXIT_TARGET, path, errno == ELOOP ?
		    "target is a symbolic link; refusing to write through it" :
		    "cannot open target");
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
	if (fstat(lt->fd, &st) < 0) {
		vs_errno(VS_EXIT_TARGET, path, "stat");
		return -1;
	}
	/* Opened by name after lstat: make sure it is still what we saw. */
	if (lt->is_block != !!S_ISBLK(st.st_mode)) {
		vs_err(VS_EXIT_TARGET, path, "target changed while opening");
		return -1;
	}
	lt->old_size = (uint64_t)st.st_size;
	if (lt->is_block && ioctl(lt->fd, BLKGETSIZE64, &lt->old_size) < 0) {
		vs_errno(VS_EXIT_TARGET, path, "BLKGETSIZE64");
		return -1;
	}
	return 0;
}

/* The index must never be the source or the target, nor an unrelated file
 * that --index named by mistake. */
static int
check_index_path(struct local_target *lt)
{
	const char *ipath = lt->index_path;
	struct stat st, tst;
	char magic[8];
	int fd;

	if (lstat(ipath, &st) < 0) {
		if (errno != ENOENT) {
			vs_errno(VS_EXIT_TARGET, ipath, "cannot access index");
			return -1;
		}
		lt->index_created = !lt->opts.dry_run;
		return 0;
	}
	if (is_source(lt, &st) || (lt->fd >= 0 && fstat(lt->fd, &tst) == 0 &&
	    tst.st_dev == st.st_dev && tst.st_ino == st.st_ino)) {
		vs_err(VS_EXIT_USAGE, ipath, "index would be the %s itself; "
		    "refusing it", is_source(lt, &st) ? "source" : "target");
		return -1;
	}
	if (!lt->opts.index_path || !S_ISREG(st.st_mode) || st.st_size == 0)
		return 0;
	fd = vs_open(ipath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
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
	lt->fd = -1;
	/* Refuse --snapshot before anything is created or written. */
	if (opts->snapshot.take && vs_snapshot_check(path) < 0)
		goto fail;
	if (open_target(lt) < 0)
		goto fail;
	lt->zero = lt->is_block ? ZERO_DISCARD : ZERO_PUNCH;
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
	if (lt->index_path && (check_index_path(lt) < 0 ||
	    idx_open(lt->index_path, !opts->dry_run, &lt->ix) < 0))
		goto fail;
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
