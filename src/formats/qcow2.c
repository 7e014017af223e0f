/*
 * qcow2.c - the guest view of a qcow2 image: map and read.
 *
 * Design notes
 * - Lookups go one cluster (or run of equal subclusters) at a time through
 *   a small LRU cache of L2 tables, so mapping a 1 TiB image needs the L1
 *   table and a few L2 tables in memory, never the whole map.
 * - Unallocated ranges are mapped and read through the backing image; past
 *   its end, and without one, they are zeros.  Zero clusters never reach
 *   the backing image.
 * - A data cluster over a hole of the host file reads as zeros: it is
 *   mapped ZERO (preallocated images), which is what the host file says.
 * - Every entry is checked when it is used: reserved bits, alignment, the
 *   file's end, and the combinations the specification forbids.
 */
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "../util.h"

#define HOST_MAP_SPAN	(64ull << 20)	/* host allocation fetched at once */

static int
corrupt(struct qcow2 *q, uint64_t off, const char *what)
{
	vs_err(VS_EXIT_SOURCE, q->img.name, "guest offset %llu: %s",
	    (unsigned long long)off, what);
	return -1;
}

int
qcow2_check_table(struct qcow2 *q, uint64_t off, uint64_t bytes,
    const char *what)
{
	uint64_t end;

	if ((off & (q->cluster_size - 1)) || !vs_add_ok(off, bytes, &end) ||
	    end > q->img.io->size) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "%s at host offset %llu "
		    "is %s", what, (unsigned long long)off,
		    (off & (q->cluster_size - 1)) ? "not cluster aligned" :
		    "past the end of the file");
		return -1;
	}
	return 0;
}

int
qcow2_l2_table(struct qcow2 *q, uint64_t off, const uint8_t **tbl)
{
	struct qcow2_l2slot *victim = &q->slots[0];

	for (size_t i = 0; i < q->nslots; i++) {
		struct qcow2_l2slot *s = &q->slots[i];

		if (s->off == off && s->tbl) {
			s->used = ++q->stamp;
			*tbl = s->tbl;
			return 0;
		}
		if (s->used < victim->used)
			victim = s;
	}
	if (qcow2_check_table(q, off, q->cluster_size, "L2 table") < 0)
		return -1;
	if (!victim->tbl && !(victim->tbl = malloc(q->cluster_size))) {
		vs_errno(VS_EXIT_INTERNAL, q->img.name, "L2 cache");
		return -1;
	}
	victim->off = 0;
	if (q->img.io->ops->pread(q->img.io, victim->tbl, q->cluster_size,
	    off) < 0)
		return -1;
	victim->off = off;
	victim->used = ++q->stamp;
	*tbl = victim->tbl;
	return 0;
}

void
qcow2_compressed_span(const struct qcow2 *q, uint64_t entry, uint64_t *host,
    uint64_t *csize)
{
	uint32_t x = 62 - (q->cluster_bits - 8);
	uint64_t sectors;

	*host = entry & ((1ull << x) - 1);
	sectors = ((entry >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;
	*csize = sectors * 512 - (*host & 511);
}

/* A data cluster at @host whose first @need bytes hold guest data: check
 * it and fill @r. */
static int
data_at(struct qcow2 *q, uint64_t off, uint64_t in, uint64_t host,
    uint64_t need, struct qcow2_run *r)
{
	uint64_t end;

	if (q->data != q->img.io && host != off - in)
		return corrupt(q, off, "data file cluster not at its guest "
		    "offset");
	/* A data file may end early (it is read as zeros, as QEMU does); a
	 * qcow2 file cut short has lost guest data. */
	need = vs_min(need, q->img.size - (off - in));
	if (host >= q->data->size || (q->data == q->img.io &&
	    (!vs_add_ok(host, need, &end) || end > q->data->size)))
		return corrupt(q, off, "data cluster past the end of the file");
	r->kind = Q2_DATA;
	r->host = host + in;
	return 0;
}

/* Extended L2: the run of subclusters of one kind starting at @in. */
static int
lookup_ext(struct qcow2 *q, uint64_t off, uint64_t in, uint64_t entry,
    uint64_t bitmap, struct qcow2_run *r)
{
	uint32_t sc_bits = q->cluster_bits - 5, alloc = (uint32_t)bitmap;
	uint32_t zero = (uint32_t)(bitmap >> 32), sc = (uint32_t)(in >> sc_bits);
	uint64_t host = entry & QCOW2_OFFSET_MASK, end = in + r->len;
	bool has_host = host || (q->data != q->img.io &&
	    (entry & QCOW2_COPIED));
	enum qcow2_kind k;

	if (alloc & zero)
		return corrupt(q, off, "subcluster both allocated and zero");
	if (alloc && !has_host)
		return corrupt(q, off, "allocated subclusters without a host "
		    "cluster");
	if (alloc & (1u << sc))
		k = Q2_DATA;
	else if (zero & (1u << sc))
		k = Q2_ZERO;
	else
		k = Q2_HOLE;
	/* Extend over following subclusters of the same kind. */
	for (uint32_t i = sc + 1; i < 32 && ((uint64_t)i << sc_bits) < end;
	    i++) {
		enum qcow2_kind ki = (alloc & (1u << i)) ? Q2_DATA :
		    (zero & (1u << i)) ? Q2_ZERO : Q2_HOLE;

		if (ki != k) {
			end = (uint64_t)i << sc_bits;
			break;
		}
	}
	r->len = end - in;
	if (k != Q2_DATA) {
		r->kind = k;
		return 0;
	}
	/* The host cluster must hold up to the last allocated subcluster. */
	return data_at(q, off, in, host,
	    (uint64_t)(32 - __builtin_clz(alloc)) << sc_bits, r);
}

int
qcow2_lookup(struct qcow2 *q, uint64_t off, uint64_t max, struct qcow2_run *r)
{
	uint64_t cs = q->cluster_size, in = off & (cs - 1);
	uint64_t l1i = off >> (q->cluster_bits + q->l2_bits);
	uint64_t l2i = (off >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
	uint64_t l1e, entry, bitmap = 0, host;
	const uint8_t *tbl;

	r->len = vs_min(cs - in, max);
	r->host = 0;
	r->csize = 0;
	r->kind = Q2_HOLE;
	if (l1i >= q->l1_size || l1i >= q->l1_needed)
		return 0;
	l1e = q->l1[l1i];
	if (l1e & QCOW2_L1_RESERVED)
		return corrupt(q, off, "L1 entry has reserved bits set");
	if (!(l1e & QCOW2_OFFSET_MASK)) {
		/* The whole L2 range is unallocated: say so at once. */
		uint64_t span_end = (l1i + 1) << (q->cluster_bits + q->l2_bits);

		r->len = vs_min(span_end - off, max);
		return 0;
	}
	if (qcow2_l2_table(q, l1e & QCOW2_OFFSET_MASK, &tbl) < 0)
		return -1;
	entry = qcow2_be64(tbl + l2i * q->entry_bytes);
	if (q->extl2)
		bitmap = qcow2_be64(tbl + l2i * q->entry_bytes + 8);
	if (entry & QCOW2_COMPRESSED) {
		if (q->data != q->img.io)
			return corrupt(q, off, "compressed cluster in an image "
			    "with a data file");
		if (q->extl2 && bitmap)
			return corrupt(q, off, "compressed cluster with "
			    "subcluster bits");
		qcow2_compressed_span(q, entry, &host, &r->csize);
		if (host >= (1ull << 56) || host >= q->img.io->size)
			return corrupt(q, off, "compressed cluster past the "
			    "end of the file");
		r->kind = Q2_COMPRESSED;
		r->host = host;
		return 0;
	}
	if (entry & (QCOW2_L2_RESERVED | (q->extl2 ? QCOW2_ZERO : 0)))
		return corrupt(q, off, "L2 entry has reserved bits set");
	host = entry & QCOW2_OFFSET_MASK;
	if (q->extl2)
		return lookup_ext(q, off, in, entry, bitmap, r);
	if (entry & QCOW2_ZERO) {
		if (q->version == 2)
			return corrupt(q, off, "zero flag in a version 2 image");
		r->kind = Q2_ZERO;
		return 0;
	}
	if (!host && !(q->data != q->img.io && (entry & QCOW2_COPIED)))
		return 0;
	return data_at(q, off, in, host, cs, r);
}

/* Is host byte @host (of the data file) allocated?  *@n: for how long. */
static int
host_state(struct qcow2 *q, uint64_t host, uint64_t max, bool *data,
    uint64_t *n)
{
	struct vs_io *io = q->data;

	if (host >= io->size) {		/* a last cluster past EOF */
		*data = false;
		*n = max;
		return 0;
	}
	if (host < q->hmap_lo || host >= q->hmap_hi) {
		uint64_t len = vs_min(HOST_MAP_SPAN, io->size - host);

		vs_extent_vec_reset(&q->hmap);
		q->hmap_lo = q->hmap_hi = 0;
		if (io->ops->map(io, host, len, &q->hmap) < 0)
			return -1;
		q->hmap_lo = host;
		q->hmap_hi = host + len;
	}
	/* Binary search for the extent holding @host. */
	{
		size_t lo = 0, hi = q->hmap.n;

		while (hi - lo > 1) {
			size_t mid = (lo + hi) / 2;

			if (q->hmap.v[mid].off <= host)
				lo = mid;
			else
				hi = mid;
		}
		if (lo < q->hmap.n) {
			const struct vs_extent *e = &q->hmap.v[lo];

			*data = e->type == VS_EXT_DATA;
			*n = vs_min(max, e->off + e->len - host);
			return 0;
		}
	}
	*data = true;
	*n = max;
	return 0;
}

/* Append the backing image's map of [off, off + len), zeros past it. */
static int
map_backing(struct qcow2 *q, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	uint64_t bsize = q->backing ? q->backing->size : 0, n = 0;

	if (off < bsize) {
		n = vs_min(len, bsize - off);
		if (vs_image_map(q->backing, off, n, &q->tmp) < 0)
			return -1;
		for (size_t i = 0; i < q->tmp.n; i++)
			if (vs_extent_add(out, q->tmp.v[i].off, q->tmp.v[i].len,
			    q->tmp.v[i].type) < 0)
				goto nomem;
	}
	if (n < len && vs_extent_add(out, off + n, len - n, VS_EXT_ZERO) < 0)
		goto nomem;
	return 0;
nomem:
	vs_errno(VS_EXIT_INTERNAL, q->img.name, "extent map");
	return -1;
}

static int
qcow2_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t pos = off, end = off + len, hole_off = 0, hole_len = 0;
	struct qcow2_run r;
	int rc = 0;

	while (pos < end && rc == 0) {
		if (qcow2_lookup(q, pos, end - pos, &r) < 0)
			return -1;
		if (r.kind == Q2_HOLE) {	/* gather, map the backing once */
			if (!hole_len)
				hole_off = pos;
			hole_len += r.len;
			pos += r.len;
			continue;
		}
		if (hole_len && map_backing(q, hole_off, hole_len, out) < 0)
			return -1;
		hole_len = 0;
		if (r.kind == Q2_DATA) {
			bool data;
			uint64_t n;

			if (host_state(q, r.host, r.len, &data, &n) < 0)
				return -1;
			r.len = n;
			rc = vs_extent_add(out, pos, n,
			    data ? VS_EXT_DATA : VS_EXT_ZERO);
		} else {
			rc = vs_extent_add(out, pos, r.len,
			    r.kind == Q2_ZERO ? VS_EXT_ZERO : VS_EXT_DATA);
		}
		pos += r.len;
	}
	if (rc == 0 && hole_len && map_backing(q, hole_off, hole_len, out) < 0)
		return -1;
	if (rc < 0) {
		vs_errno(VS_EXIT_INTERNAL, img->name, "extent map");
		return -1;
	}
	return 0;
}

/* Guest clusters stored plainly in the qcow2 file have a host offset;
 * compressed, zero, unallocated (backing) and data-file ones do not.
 * Also the locate op: those host bytes are the guest's. */
static int
qcow2_place(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint64_t pos = off, end = off + len;
	struct qcow2_run r;

	while (pos < end) {
		if (qcow2_lookup(q, pos, end - pos, &r) < 0)
			return -1;
		if (vs_place_add(out, pos, r.len, r.kind == Q2_DATA &&
		    q->data == img->io ? r.host : VS_NOWHERE) < 0) {
			vs_errno(VS_EXIT_INTERNAL, img->name, "placement");
			return -1;
		}
		pos += r.len;
	}
	return 0;
}

/* The decompressed cluster stored at @host, in q->dbuf. */
static int
decompress_cluster(struct qcow2 *q, uint64_t guest, uint64_t host,
    uint64_t csize)
{
	struct vs_io *io = q->img.io;

	if (q->dbuf_host == host)
		return 0;
	if ((!q->cbuf && !(q->cbuf = malloc(2 * q->cluster_size))) ||
	    (!q->dbuf && !(q->dbuf = malloc(q->cluster_size)))) {
		vs_errno(VS_EXIT_INTERNAL, q->img.name, "decompression");
		return -1;
	}
	q->dbuf_host = UINT64_MAX;
	/* The window is an upper bound and may run past the end of the
	 * file: clamp it, the stream ends before. */
	csize = vs_min(vs_min(csize, 2 * q->cluster_size), io->size - host);
	if (io->ops->pread(io, q->cbuf, csize, host) < 0)
		return -1;
	if (vs_decompress(&q->dec, q->compression ? VS_CODEC_ZSTD :
	    VS_CODEC_DEFLATE, q->cbuf, csize, q->dbuf, q->cluster_size) < 0)
		return corrupt(q, guest, q->compression ?
		    "invalid zstd compressed cluster" :
		    "invalid deflate compressed cluster");
	q->dbuf_host = host;
	return 0;
}

/* Read the backing image's bytes of [off, off + len), zeros past it. */
static int
read_backing(struct qcow2 *q, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t bsize = q->backing ? q->backing->size : 0, n = 0;

	if (off < bsize) {
		n = vs_min(len, bsize - off);
		if (q->backing->ops->read(q->backing, buf, n, off) < 0)
			return -1;
	}
	memset(buf + n, 0, len - n);
	return 0;
}

/* A run of host-contiguous data waiting to be read in one pread. */
struct pending {
	uint8_t *buf;		/* destination */
	uint64_t host;		/* source offset in the data file */
	uint64_t len;		/* bytes */
};

static int
flush_pending(struct qcow2 *q, struct pending *p)
{
	int r = 0;

	if (p->len) {
		r = q->data->ops->pread(q->data, p->buf, p->len, p->host);
		q->data->ops->drop_cache(q->data, p->host, p->len);
	}
	p->len = 0;
	return r;
}

static int
qcow2_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = (struct qcow2 *)img;
	uint8_t *out = buf;
	uint64_t pos = off, end = off + len;
	struct pending p = { 0 };
	struct qcow2_run r;

	while (pos < end) {
		uint8_t *dst = out + (pos - off);

		if (qcow2_lookup(q, pos, end - pos, &r) < 0)
			return -1;
		if (r.kind == Q2_DATA) {
			if (p.len && p.host + p.len == r.host &&
			    p.buf + p.len == dst) {
				p.len += r.len;
			} else {
				if (flush_pending(q, &p) < 0)
					return -1;
				p = (struct pending){ dst, r.host, r.len };
			}
			pos += r.len;
			continue;
		}
		if (flush_pending(q, &p) < 0)
			return -1;
		if (r.kind == Q2_COMPRESSED) {
			if (decompress_cluster(q, pos, r.host, r.csize) < 0)
				return -1;
			memcpy(dst, q->dbuf + (pos & (q->cluster_size - 1)),
			    r.len);
		} else if (r.kind == Q2_ZERO) {
			memset(dst, 0, r.len);
		} else if (read_backing(q, dst, r.len, pos) < 0) {
			return -1;
		}
		pos += r.len;
	}
	return flush_pending(q, &p);
}

static void
qcow2_drop_cache(struct vs_image *img, uint64_t off, uint64_t len)
{
	struct qcow2 *q = (struct qcow2 *)img;

	/* Own data pages are dropped as they are read; pass it down. */
	if (q->backing && off < q->backing->size)
		q->backing->ops->drop_cache(q->backing, off,
		    vs_min(len, q->backing->size - off));
}

static bool
qcow2_probe(const uint8_t *head, size_t len)
{
	return len >= 4 && qcow2_be32(head) == QCOW2_MAGIC;
}

static void
qcow2_close(struct vs_image *img)
{
	qcow2_free((struct qcow2 *)img);
}

static const char *
qcow2_external(struct vs_image *img)
{
	struct qcow2 *q = (struct qcow2 *)img;

	return q->data != q->img.io ? q->data->name : NULL;
}

const struct vs_format_ops vs_format_qcow2 = {
	.name = "qcow2",
	.probe = qcow2_probe,
	.open = qcow2_open_image,
	.close = qcow2_close,
	.map = qcow2_map,
	.read = qcow2_read,
	.drop_cache = qcow2_drop_cache,
	.host_live = qcow2_host_live,
	.place = qcow2_place,
	.external = qcow2_external,
	.locate = qcow2_place,
};
