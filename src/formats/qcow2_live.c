/*
 * qcow2_live.c - which bytes of a qcow2 file are live, for the file view.
 *
 * Design notes
 * - Live means referenced: the header cluster, the active and snapshot L1
 *   tables, every L2 table they point to, every data cluster (or allocated
 *   subcluster, or compressed byte range) those L2 tables point to, the
 *   refcount table and blocks, the snapshot table, and the bitmap
 *   directory, tables and data.  Refcounts are not used: lazy refcounts
 *   and unclean shutdowns leave them stale.  Clusters the guest discarded
 *   are referenced by nothing, so they become holes on the target.
 * - All L1 entries are walked, not only those covering the virtual size:
 *   internal snapshots keep their VM state past the disk's end.
 * - Zero clusters with a preallocated host cluster, and host clusters of
 *   unallocated subclusters, read as zeros or from the backing file: their
 *   bytes are dead.
 * - The result is a bitmap with one bit per 4 KiB of the file (coarser for
 *   files over 512 GiB, keeping it at most 16 MiB); a unit is live if any
 *   byte of it is.
 * - The work is bounded by the file, not by what the tables claim: an L1
 *   entry reads the same whichever table (active or snapshot) holds it,
 *   so the L1 tables' byte ranges are merged and each byte of them is
 *   read once, and each L2 table is walked once, however many L1 entries
 *   point to it (snapshots share most of theirs).  The set of L2 tables
 *   walked grows by one per distinct table, which is a cluster of the file
 *   named by an L1 entry read: at most the file's size / 8 entries.
 */
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "../util.h"

#define LIVE_SHIFT_MIN	12
#define LIVE_MAX_BYTES	(16u << 20)
#define TABLE_CHUNK	(64u << 10)	/* bytes of a table read at once */

struct walk {
	struct qcow2 *q;	/* the image */
	uint64_t *seen;		/* L2 tables walked: open hash set of
				 * cluster numbers + 1, 0 for empty */
	size_t seen_cap;	/* slots, a power of 2 */
	size_t seen_n;		/* used slots */
	uint8_t *chunk;		/* TABLE_CHUNK bytes of scratch */
};

/* One L1 table's bytes in the file. */
struct l1span {
	uint64_t off, end;	/* [off, end) */
};

VS_VECTOR(l1span_vec, struct l1span)

static size_t
seen_slot(const uint64_t *set, size_t cap, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);

	while (set[i] && set[i] != key)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Add L2 table @off to the set; 1 if it was there, 0 if not, -1 on
 * allocation failure. */
static int
seen_add(struct walk *w, uint64_t off)
{
	uint64_t key = (off >> w->q->cluster_bits) + 1;
	size_t i;

	if (2 * (w->seen_n + 1) > w->seen_cap) {
		size_t cap = w->seen_cap ? 2 * w->seen_cap : 1024;
		uint64_t *set = calloc(cap, sizeof(*set));

		if (!set)
			return -1;
		for (size_t j = 0; j < w->seen_cap; j++)
			if (w->seen[j])
				set[seen_slot(set, cap, w->seen[j])] =
				    w->seen[j];
		free(w->seen);
		w->seen = set;
		w->seen_cap = cap;
	}
	i = seen_slot(w->seen, w->seen_cap, key);
	if (w->seen[i])
		return 1;
	w->seen[i] = key;
	w->seen_n++;
	return 0;
}

static void
mark(struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t size = q->img.io->size, end;

	if (len == 0 || off >= size)
		return;
	end = vs_min(size, off + vs_min(len, size - off));
	for (uint64_t u = off >> q->live_shift;
	    u <= (end - 1) >> q->live_shift; u++)
		q->live[u / 64] |= 1ull << (u % 64);
}

static bool
is_live(const struct qcow2 *q, uint64_t u)
{
	return q->live[u / 64] & (1ull << (u % 64));
}

/* Mark the whole clusters holding [off, off + len). */
static void
mark_clusters(struct qcow2 *q, uint64_t off, uint64_t len)
{
	mark(q, off, vs_align_up(len, q->cluster_size));
}

/* Mark the data an L2 table points to. */
static int
walk_l2(struct walk *w, uint64_t l2_off)
{
	struct qcow2 *q = w->q;
	uint64_t n = q->cluster_size / q->entry_bytes;
	uint64_t sc = q->cluster_size / 32;
	bool dfile = q->data != q->img.io;
	const uint8_t *tbl;
	int seen;

	if (qcow2_check_table(q, l2_off, q->cluster_size, "L2 table") < 0)
		return -1;
	if ((seen = seen_add(w, l2_off)) != 0) {
		if (seen < 0)
			vs_errno(VS_EXIT_INTERNAL, q->img.name, "live map");
		return seen < 0 ? -1 : 0;
	}
	if (qcow2_l2_table(q, l2_off, &tbl) < 0)
		return -1;
	mark(q, l2_off, q->cluster_size);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = qcow2_be64(tbl + i * q->entry_bytes), host;
		uint32_t alloc;

		if (e & QCOW2_COMPRESSED) {
			uint64_t csize;

			qcow2_compressed_span(q, e, &host, &csize);
			if (host >= q->img.io->size) {
				vs_err(VS_EXIT_SOURCE, q->img.name, "L2 table "
				    "at host offset %llu: compressed cluster "
				    "past the end of the file",
				    (unsigned long long)l2_off);
				return -1;
			}
			mark(q, host, csize);
			continue;
		}
		host = e & QCOW2_OFFSET_MASK;
		if (!host || dfile)
			continue;	/* unallocated, or in the data file */
		if (host >= q->img.io->size) {
			vs_err(VS_EXIT_SOURCE, q->img.name, "L2 table at host "
			    "offset %llu: data cluster past the end of the "
			    "file", (unsigned long long)l2_off);
			return -1;
		}
		if (!q->extl2) {
			if (!(e & QCOW2_ZERO))
				mark(q, host, q->cluster_size);
			continue;
		}
		alloc = (uint32_t)qcow2_be64(tbl + i * q->entry_bytes + 8);
		for (uint32_t s = 0; s < 32; s++)
			if (alloc & (1u << s))
				mark(q, host + s * sc, sc);
	}
	return 0;
}

/* Walk the L1 entries in [off, end) of the file. */
static int
walk_l1_span(struct walk *w, uint64_t off, uint64_t end)
{
	struct qcow2 *q = w->q;

	mark_clusters(q, off, end - off);
	for (uint64_t pos = off; pos < end; pos += TABLE_CHUNK) {
		uint64_t n = vs_min(TABLE_CHUNK, end - pos);

		if (q->img.io->ops->pread(q->img.io, w->chunk, n, pos) < 0)
			return -1;
		for (uint64_t j = 0; j < n; j += 8) {
			uint64_t e = qcow2_be64(w->chunk + j);
			uint64_t l2 = e & QCOW2_OFFSET_MASK;

			if (!l2)
				continue;
			if (e & QCOW2_L1_RESERVED) {
				vs_err(VS_EXIT_SOURCE, q->img.name, "L1 entry "
				    "at host offset %llu has reserved bits "
				    "set", (unsigned long long)(pos + j));
				return -1;
			}
			if (walk_l2(w, l2) < 0)
				return -1;
		}
	}
	return 0;
}

static int
span_cmp(const void *a, const void *b)
{
	const struct l1span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* The active and snapshot L1 tables: their byte ranges merged, so that
 * tables that overlap (or repeat) are read once. */
static int
walk_l1_tables(struct walk *w)
{
	struct qcow2 *q = w->q;
	struct l1span_vec v = { 0 };
	int rc = -1;

	if (q->l1_size && l1span_vec_push(&v, (struct l1span){ q->l1_off,
	    q->l1_off + (uint64_t)q->l1_size * 8 }) < 0)
		goto nomem;
	for (size_t i = 0; i < q->snap_l1.n; i++) {
		const struct qcow2_l1ref *r = &q->snap_l1.v[i];

		if (r->size && l1span_vec_push(&v, (struct l1span){ r->off,
		    r->off + (uint64_t)r->size * 8 }) < 0)
			goto nomem;
	}
	if (v.n)
		qsort(v.v, v.n, sizeof(*v.v), span_cmp);
	for (size_t i = 0; i < v.n;) {
		uint64_t off = v.v[i].off, end = v.v[i].end;

		for (i++; i < v.n && v.v[i].off <= end; i++)
			end = vs_max(end, v.v[i].end);
		if (walk_l1_span(w, off, end) < 0)
			goto out;
	}
	rc = 0;
	goto out;
nomem:
	vs_errno(VS_EXIT_INTERNAL, q->img.name, "live map");
out:
	l1span_vec_free(&v);
	return rc;
}

/* Refcount table and the refcount blocks it points to. */
static int
walk_refcounts(struct walk *w)
{
	struct qcow2 *q = w->q;
	uint64_t bytes = (uint64_t)q->rt_clusters * q->cluster_size;

	mark(q, q->rt_off, bytes);
	for (uint64_t pos = 0; pos < bytes; pos += TABLE_CHUNK) {
		uint64_t n = vs_min(TABLE_CHUNK, bytes - pos);

		if (q->img.io->ops->pread(q->img.io, w->chunk, n,
		    q->rt_off + pos) < 0)
			return -1;
		for (uint64_t j = 0; j < n; j += 8) {
			uint64_t b = qcow2_be64(w->chunk + j) & QCOW2_RT_MASK;

			if (!b)
				continue;
			if (qcow2_check_table(q, b, q->cluster_size,
			    "refcount block") < 0)
				return -1;
			mark(q, b, q->cluster_size);
		}
	}
	return 0;
}

/* Bitmap directory, each bitmap's table and the clusters it names. */
static int
walk_bitmaps(struct walk *w)
{
	struct qcow2 *q = w->q;
	uint64_t pos = q->bm_dir_off, end = q->bm_dir_off + q->bm_dir_size;
	uint8_t e[24];

	if (!q->bm_dir_off)
		return 0;
	mark_clusters(q, q->bm_dir_off, q->bm_dir_size);
	for (uint32_t i = 0; i < q->bm_count; i++) {
		uint64_t toff, tbytes;
		uint32_t tsize, extra;
		uint16_t name_len;

		if (pos + 24 > end)
			goto bad;
		if (q->img.io->ops->pread(q->img.io, e, sizeof(e), pos) < 0)
			return -1;
		toff = qcow2_be64(e);
		tsize = qcow2_be32(e + 8);
		name_len = qcow2_be16(e + 18);
		extra = qcow2_be32(e + 20);
		pos += vs_align_up(24ull + extra + name_len, 8);
		tbytes = (uint64_t)tsize * 8;
		if (tsize == 0)
			continue;
		if (tbytes > (64u << 20)) {
			vs_err(VS_EXIT_SOURCE, q->img.name, "bitmap table of "
			    "%u entries: too large", tsize);
			return -1;
		}
		if (qcow2_check_table(q, toff, tbytes, "bitmap table") < 0)
			return -1;
		mark_clusters(q, toff, tbytes);
		for (uint64_t p = 0; p < tbytes; p += TABLE_CHUNK) {
			uint64_t n = vs_min(TABLE_CHUNK, tbytes - p);

			if (q->img.io->ops->pread(q->img.io, w->chunk, n,
			    toff + p) < 0)
				return -1;
			for (uint64_t j = 0; j < n; j += 8) {
				uint64_t c = qcow2_be64(w->chunk + j) &
				    QCOW2_OFFSET_MASK;

				if (c && qcow2_check_table(q, c,
				    q->cluster_size, "bitmap data") < 0)
					return -1;
				mark(q, c, c ? q->cluster_size : 0);
			}
		}
	}
	return 0;
bad:
	vs_err(VS_EXIT_SOURCE, q->img.name, "invalid bitmap directory");
	return -1;
}

static int
build_live(struct qcow2 *q)
{
	uint64_t size = q->img.io->size;
	struct walk w = { .q = q };
	int rc = -1;

	q->live_shift = LIVE_SHIFT_MIN;
	while ((size >> q->live_shift) / 8 > LIVE_MAX_BYTES)
		q->live_shift++;
	q->live_units = (size + (1ull << q->live_shift) - 1) >> q->live_shift;
	q->live = calloc((q->live_units + 63) / 64 + 1, 8);
	w.chunk = malloc(TABLE_CHUNK);
	if (!q->live || !w.chunk) {
		vs_errno(VS_EXIT_INTERNAL, q->img.name, "live map");
		goto out;
	}
	mark(q, 0, q->cluster_size);
	if (walk_refcounts(&w) < 0 || walk_bitmaps(&w) < 0 ||
	    walk_l1_tables(&w) < 0)
		goto out;
	if (q->nb_snapshots)
		mark_clusters(q, q->snap_off, q->snap_bytes);
	rc = 0;
out:
	free(w.seen);
	free(w.chunk);
	if (rc < 0) {
		free(q->live);
		q->live = NULL;
	}
	return rc;
}

int
qcow2_host_live(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t pos = off, end = off + len, unit = 0;

	if (!q->live && build_live(q) < 0)
		return -1;
	unit = 1ull << q->live_shift;
	while (pos < end) {
		uint64_t u = pos >> q->live_shift;
		bool live = u < q->live_units && is_live(q, u);
		uint64_t next = vs_min(end, vs_align_down(pos, unit) + unit);

		if (vs_extent_add(out, pos, next - pos,
		    live ? VS_EXT_DATA : VS_EXT_ZERO) < 0) {
			vs_errno(VS_EXIT_INTERNAL, img->name, "live map");
			return -1;
		}
		pos = next;
	}
	return 0;
}

void
qcow2_live_free(struct qcow2 *q)
{
	free(q->live);
	q->live = NULL;
}
