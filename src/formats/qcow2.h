/*
 * qcow2.h - the qcow2 reader's state, shared by its source files.
 *
 * qcow2_open.c validates the header and the tables it points to,
 * qcow2.c translates guest offsets (map and read), qcow2_live.c finds the
 * live bytes of the file for the file view.  All on-disk integers are
 * big-endian; everything here is in host order.
 */
#ifndef VS_QCOW2_H
#define VS_QCOW2_H

#include "format.h"
#include "decompress.h"

#define QCOW2_MAGIC		0x514649fbu
#define QCOW2_MAX_L1_BYTES	(32u << 20)	/* as QEMU */
#define QCOW2_MAX_RT_BYTES	(8u << 20)	/* refcount table */
#define QCOW2_MAX_SNAPSHOTS	65536
#define QCOW2_MAX_SNAP_TABLE	(64u << 20)
#define QCOW2_MAX_CHAIN		64		/* backing chain depth */

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY		(1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT		(1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE	(1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION	(1ull << 3)
#define QCOW2_INCOMPAT_EXTL2		(1ull << 4)
#define QCOW2_INCOMPAT_KNOWN		0x1full
/* Autoclear bits. */
#define QCOW2_AUTOCLEAR_BITMAPS		(1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW	(1ull << 1)

/* Entry masks. */
#define QCOW2_OFFSET_MASK	0x00fffffffffffe00ull	/* L1, L2 offsets */
#define QCOW2_L1_RESERVED	0x7f000000000001ffull
#define QCOW2_L2_RESERVED	0x3f000000000001feull
#define QCOW2_COPIED		(1ull << 63)
#define QCOW2_COMPRESSED	(1ull << 62)
#define QCOW2_ZERO		1ull
#define QCOW2_RT_MASK		0xfffffffffffffe00ull	/* refcount table */

/* What one guest range is, as the L2 entry says. */
enum qcow2_kind {
	Q2_HOLE,	/* unallocated: the backing file, else zeros */
	Q2_ZERO,	/* reads as zeros, never from the backing file */
	Q2_DATA,	/* at @host in the data file (or the image) */
	Q2_COMPRESSED,	/* whole cluster, compressed at @host */
};

struct qcow2_run {
	enum qcow2_kind kind;	/* what the range is */
	uint64_t len;		/* bytes from the asked offset */
	uint64_t host;		/* DATA: host offset of the asked offset */
	uint64_t csize;		/* COMPRESSED: bytes at @host (upper bound) */
};

/* One cached L2 table. */
struct qcow2_l2slot {
	uint64_t off;		/* host offset of the table, 0 if empty */
	uint64_t used;		/* LRU stamp */
	uint8_t *tbl;		/* cluster_size bytes, on-disk order */
};

/* An L1 table of the image: the active one or a snapshot's. */
struct qcow2_l1ref {
	uint64_t off;		/* host offset */
	uint32_t size;		/* entries */
};

VS_VECTOR(qcow2_l1vec, struct qcow2_l1ref)

struct qcow2 {
	struct vs_image img;		/* base, first */
	uint32_t version;		/* 2 or 3 */
	uint32_t cluster_bits;		/* log2 of the cluster size */
	uint64_t cluster_size;		/* bytes */
	uint32_t l2_bits;		/* log2 of entries per L2 table */
	uint32_t entry_bytes;		/* 8, or 16 with extended L2 */
	bool extl2;			/* extended L2 entries */
	uint64_t incompat;		/* incompatible feature bits */
	uint64_t autoclear;		/* autoclear feature bits */
	uint32_t header_len;		/* bytes of header before extensions */
	uint8_t compression;		/* 0 deflate, 1 zstd */
	uint32_t l1_size;		/* active L1 entries */
	uint64_t l1_off;		/* active L1 host offset */
	uint64_t *l1;			/* active L1, host order */
	uint32_t l1_needed;		/* entries covering the virtual size */
	uint64_t rt_off;		/* refcount table */
	uint32_t rt_clusters;		/* refcount table clusters */
	uint32_t nb_snapshots;		/* snapshot table entries */
	uint64_t snap_off;		/* snapshot table offset */
	uint64_t snap_bytes;		/* snapshot table length, parsed */
	struct qcow2_l1vec snap_l1;	/* the snapshots' L1 tables */
	uint64_t bm_dir_off;		/* bitmap directory, 0 if none */
	uint64_t bm_dir_size;		/* its bytes */
	uint32_t bm_count;		/* bitmaps in it */
	char *backing_name;		/* as stored, NULL if none */
	char *backing_fmt;		/* backing format extension, or NULL */
	char *data_name;		/* external data file name, or NULL */
	struct vs_io *data;		/* data file container (or img.io) */
	struct vs_image *backing;	/* opened backing image, or NULL */
	struct qcow2_l2slot *slots;	/* L2 cache */
	size_t nslots;			/* its size */
	uint64_t stamp;			/* LRU clock */
	struct vs_decomp dec;		/* decompressor state */
	uint8_t *cbuf;			/* compressed input, 2 clusters */
	uint8_t *dbuf;			/* last decompressed cluster */
	uint64_t dbuf_host;		/* its host offset, or UINT64_MAX */
	struct vs_extent_vec hmap;	/* host allocation cache */
	uint64_t hmap_lo, hmap_hi;	/* range it covers */
	struct vs_extent_vec tmp;	/* backing map scratch */
	uint64_t *live;			/* file view: live bitmap, or NULL */
	uint32_t live_shift;		/* log2 of bytes per bit */
	uint64_t live_units;		/* bits in it */
};

/* qcow2_open.c */
int qcow2_open_image(struct vs_io *io, const struct vs_chain *chain,
    struct vs_image **out);
void qcow2_free(struct qcow2 *q);

/* qcow2.c */
/* Classify guest @off, at most @max bytes, within one cluster. */
int qcow2_lookup(struct qcow2 *q, uint64_t off, uint64_t max,
    struct qcow2_run *r);
/* An L2 table, through the cache (on-disk byte order). */
int qcow2_l2_table(struct qcow2 *q, uint64_t off, const uint8_t **tbl);
/* Check an L2 table offset from an L1 entry: aligned, inside the file. */
int qcow2_check_table(struct qcow2 *q, uint64_t off, uint64_t bytes,
    const char *what);
/* Decode a compressed L2 entry into host offset and byte count. */
void qcow2_compressed_span(const struct qcow2 *q, uint64_t entry,
    uint64_t *host, uint64_t *csize);

/* qcow2_live.c: the file view's live bytes. */
int qcow2_host_live(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out);
void qcow2_live_free(struct qcow2 *q);

static inline uint64_t
qcow2_be64(const uint8_t *p)
{
	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 |
	    (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
	    (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
	    (uint64_t)p[6] << 8 | p[7];
}

static inline uint32_t
qcow2_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t
qcow2_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#endif
