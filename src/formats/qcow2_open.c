/*
 * qcow2_open.c - validate a qcow2 header and the tables it points to.
 *
 * Design notes
 * - Every field is checked before it is used to size an allocation or to
 *   seek: tables must be cluster aligned, inside the file and below fixed
 *   caps (QEMU's), so a hostile header gets a one-line refusal.
 * - Backing and data file names are untrusted: protocol and json: names
 *   are refused, the file is opened by the container's open_ref op (where
 *   the opener allows, see refs.c), the backing format must be recorded in
 *   the image, and a chain is limited in depth and checked for loops by
 *   device and inode.  Names are shown with control characters escaped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"
#include "../util.h"

#define V2_HEADER_LEN	72
#define V3_HEADER_LEN	104
#define MAX_NAME	1023

/* Header extension types. */
#define EXT_END		0x00000000u
#define EXT_BACKING_FMT	0xe2792acau
#define EXT_FEATURES	0x6803f857u
#define EXT_BITMAPS	0x23852875u
#define EXT_CRYPTO	0x0537be77u
#define EXT_DATA_FILE	0x44415441u

/* What the header walk found, before it is committed to the image. */
struct hdr {
	uint64_t backing_off;		/* name offset in cluster 0, or 0 */
	uint32_t backing_len;		/* name length */
	uint32_t crypt;			/* crypt_method */
	uint32_t refcount_order;	/* log2 of refcount bits */
	const uint8_t *features;	/* feature name table, or NULL */
	uint32_t features_len;		/* its bytes */
	uint8_t *c0;			/* cluster 0 */
};

static int
bad(struct qcow2 *q, const char *msg)
{
	vs_err(VS_EXIT_SOURCE, q->img.name, "%s", msg);
	return -1;
}

/* [off, off + len) is cluster aligned and inside the file. */
static bool
table_ok(const struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t end;

	return off && (off & (q->cluster_size - 1)) == 0 &&
	    vs_add_ok(off, len, &end) && end <= q->img.io->size;
}

/* A copy of @len bytes at @p as a C string, or NULL if it holds a NUL. */
static char *
name_dup(const uint8_t *p, size_t len)
{
	char *s;

	if (memchr(p, 0, len))
		return NULL;
	s = malloc(len + 1);
	if (s) {
		memcpy(s, p, len);
		s[len] = 0;
	}
	return s;
}

/* Name an unknown incompatible feature bit, from the image's table. */
static void
refuse_features(struct qcow2 *q, const struct hdr *h, uint64_t unknown)
{
	int bit = __builtin_ctzll(unknown);
	char name[47] = "";

	for (uint32_t i = 0; h->features && i + 48 <= h->features_len;
	    i += 48) {
		const uint8_t *e = h->features + i;

		if (e[0] == 0 && e[1] == bit) {
			memcpy(name, e + 2, 46);
			name[46] = 0;
		}
	}
	vs_err(VS_EXIT_SOURCE, q->img.name,
	    "unsupported qcow2 feature: incompatible bit %d%s%s%s", bit,
	    name[0] ? " (" : "", name, name[0] ? ")" : "");
}

static int
parse_extensions(struct qcow2 *q, struct hdr *h)
{
	uint64_t pos = q->header_len;
	uint64_t end = h->backing_off ? h->backing_off : q->cluster_size;
	uint32_t seen = 0;

	while (pos + 8 <= end) {
		uint32_t type = qcow2_be32(h->c0 + pos);
		uint32_t len = qcow2_be32(h->c0 + pos + 4);
		const uint8_t *d = h->c0 + pos + 8;
		uint32_t bit;

		if (type == EXT_END)
			return 0;
		if (len > end - pos - 8)
			return bad(q, "header extension runs past the header "
			    "area");
		switch (type) {
		case EXT_BACKING_FMT: bit = 1; break;
		case EXT_FEATURES: bit = 2; break;
		case EXT_BITMAPS: bit = 4; break;
		case EXT_CRYPTO: bit = 8; break;
		case EXT_DATA_FILE: bit = 16; break;
		default: bit = 0; break;	/* unknown: skipped */
		}
		if (seen & bit)
			return bad(q, "header extension repeated");
		seen |= bit;
		switch (type) {
		case EXT_BACKING_FMT:
			if (len == 0 || len > 63 ||
			    !(q->backing_fmt = name_dup(d, len)))
				return bad(q, "invalid backing format "
				    "extension");
			break;
		case EXT_FEATURES:
			h->features = d;
			h->features_len = len;
			break;
		case EXT_BITMAPS:
			if (len != 24)
				return bad(q, "invalid bitmaps extension");
			q->bm_count = qcow2_be32(d);
			q->bm_dir_size = qcow2_be64(d + 8);
			q->bm_dir_off = qcow2_be64(d + 16);
			if (q->bm_count == 0 || q->bm_count > 65535 ||
			    qcow2_be32(d + 4) != 0 ||
			    q->bm_dir_size > (64u << 20) ||
			    !table_ok(q, q->bm_dir_off, q->bm_dir_size))
				return bad(q, "invalid bitmaps extension");
			break;
		case EXT_CRYPTO:
			return bad(q, "encrypted image: not supported");
		case EXT_DATA_FILE:
			if (len == 0 || len > MAX_NAME ||
			    !(q->data_name = name_dup(d, len)))
				return bad(q, "invalid data file name "
				    "extension");
			break;
		}
		pos += 8 + vs_align_up(len, 8);
	}
	return 0;
}

static int
parse_header(struct qcow2 *q, struct hdr *h)
{
	const uint8_t *b = h->c0;
	uint64_t size, l1_span, unknown;

	q->version = qcow2_be32(b + 4);
	h->backing_off = qcow2_be64(b + 8);
	h->backing_len = qcow2_be32(b + 16);
	q->cluster_bits = qcow2_be32(b + 20);
	size = qcow2_be64(b + 24);
	h->crypt = qcow2_be32(b + 32);
	q->l1_size = qcow2_be32(b + 36);
	q->l1_off = qcow2_be64(b + 40);
	q->rt_off = qcow2_be64(b + 48);
	q->rt_clusters = qcow2_be32(b + 56);
	q->nb_snapshots = qcow2_be32(b + 60);
	q->snap_off = qcow2_be64(b + 64);
	if (q->version == 3) {
		q->incompat = qcow2_be64(b + 72);
		q->autoclear = qcow2_be64(b + 88);
		h->refcount_order = qcow2_be32(b + 96);
		q->header_len = qcow2_be32(b + 100);
	} else {
		h->refcount_order = 4;
		q->header_len = V2_HEADER_LEN;
	}
	if (q->cluster_bits < 9 || q->cluster_bits > 21) {
		vs_err(VS_EXIT_SOURCE, q->img.name,
		    "unsupported cluster size: 2^%u", q->cluster_bits);
		return -1;
	}
	q->cluster_size = 1ull << q->cluster_bits;
	if (q->img.io->size < vs_max(q->header_len, V2_HEADER_LEN))
		return bad(q, "file too short for its qcow2 header");
	if (q->version == 3 && (q->header_len < V3_HEADER_LEN ||
	    q->header_len > q->cluster_size || q->header_len % 8))
		return bad(q, "invalid qcow2 header length");
	if (h->crypt != 0) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "encrypted image (%s): "
		    "not supported", h->crypt == 2 ? "LUKS" : "AES");
		return -1;
	}
	if (q->header_len > V3_HEADER_LEN)
		q->compression = b[104];
	if (h->backing_off && (h->backing_off >= q->cluster_size ||
	    h->backing_len > MAX_NAME ||
	    h->backing_len > q->cluster_size - h->backing_off ||
	    h->backing_off < q->header_len))
		return bad(q, "invalid backing file name offset");
	if (parse_extensions(q, h) < 0)
		return -1;
	unknown = q->incompat & ~QCOW2_INCOMPAT_KNOWN;
	if (unknown) {
		refuse_features(q, h, unknown);
		return -1;
	}
	if (q->compression > 1 || (q->compression != 0) !=
	    !!(q->incompat & QCOW2_INCOMPAT_COMPRESSION))
		return bad(q, "invalid compression type");
	if (h->refcount_order > 6)
		return bad(q, "invalid refcount width");
	q->extl2 = q->incompat & QCOW2_INCOMPAT_EXTL2;
	if (q->extl2 && q->cluster_bits < 14)
		return bad(q, "extended L2 entries need clusters of at least "
		    "16 KiB");
	q->entry_bytes = q->extl2 ? 16 : 8;
	q->l2_bits = q->cluster_bits - (q->extl2 ? 4 : 3);

	/* QEMU rounds the virtual size down to whole sectors. */
	q->img.size = size & ~511ull;
	l1_span = 1ull << (q->cluster_bits + q->l2_bits);
	if (q->img.size > (1ull << 62) ||
	    (q->img.size + l1_span - 1) / l1_span > INT32_MAX)
		return bad(q, "virtual size too large");
	q->l1_needed = (uint32_t)((q->img.size + l1_span - 1) / l1_span);
	if (q->l1_size < q->l1_needed)
		return bad(q, "L1 table too small for the virtual size");
	if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return bad(q, "L1 table too large");
	if (q->l1_size && !table_ok(q, q->l1_off, (uint64_t)q->l1_size * 8))
		return bad(q, "invalid L1 table offset");
	if (q->rt_clusters == 0 ||
	    (uint64_t)q->rt_clusters * q->cluster_size > QCOW2_MAX_RT_BYTES ||
	    !table_ok(q, q->rt_off, (uint64_t)q->rt_clusters *
	    q->cluster_size))
		return bad(q, "invalid refcount table");
	if ((q->incompat & QCOW2_INCOMPAT_DATA_FILE) == 0 &&
	    ((q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW) || q->data_name))
		return bad(q, "data file settings without the data file "
		    "feature");
	if (q->version == 2 && q->header_len != V2_HEADER_LEN)
		return bad(q, "invalid qcow2 header length");
	return 0;
}

static int
load_l1(struct qcow2 *q)
{
	uint64_t bytes = (uint64_t)q->l1_size * 8;
	uint8_t *raw;

	if (q->l1_size == 0)
		return 0;
	raw = malloc(bytes);
	q->l1 = malloc(bytes);
	if (!raw || !q->l1) {
		free(raw);
		vs_errno(VS_EXIT_INTERNAL, q->img.name, "L1 table");
		return -1;
	}
	if (q->img.io->ops->pread(q->img.io, raw, bytes, q->l1_off) < 0) {
		free(raw);
		return -1;
	}
	for (uint32_t i = 0; i < q->l1_size; i++)
		q->l1[i] = qcow2_be64(raw + 8 * (size_t)i);
	free(raw);
	return 0;
}

/* Walk the snapshot table: validate each entry, keep its L1 location. */
static int
load_snapshots(struct qcow2 *q)
{
	uint64_t pos = q->snap_off;
	uint8_t e[40];

	if (q->nb_snapshots == 0)
		return 0;
	if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS ||
	    !table_ok(q, q->snap_off, 40))
		return bad(q, "invalid snapshot table");
	for (uint32_t i = 0; i < q->nb_snapshots; i++) {
		struct qcow2_l1ref r;
		uint64_t len;
		uint32_t extra;
		uint16_t id_len, name_len;

		if (pos + 40 > q->img.io->size)
			return bad(q, "snapshot table runs past the end of "
			    "the file");
		if (q->img.io->ops->pread(q->img.io, e, sizeof(e), pos) < 0)
			return -1;
		r.off = qcow2_be64(e);
		r.size = qcow2_be32(e + 8);
		id_len = qcow2_be16(e + 12);
		name_len = qcow2_be16(e + 14);
		extra = qcow2_be32(e + 36);
		if (extra > 1024)
			return bad(q, "invalid snapshot table entry");
		/* Entries are padded to 8 bytes between each other, not after
		 * the last one, which often ends the file. */
		len = 40ull + extra + id_len + name_len;
		pos += i + 1 < q->nb_snapshots ? vs_align_up(len, 8) : len;
		if (pos - q->snap_off > QCOW2_MAX_SNAP_TABLE)
			return bad(q, "snapshot table too large");
		if ((uint64_t)r.size * 8 > QCOW2_MAX_L1_BYTES ||
		    (r.size && !table_ok(q, r.off, (uint64_t)r.size * 8)))
			return bad(q, "invalid snapshot L1 table");
		if (qcow2_l1vec_push(&q->snap_l1, r) < 0) {
			vs_errno(VS_EXIT_INTERNAL, q->img.name, "snapshots");
			return -1;
		}
	}
	if (pos > q->img.io->size)
		return bad(q, "snapshot table runs past the end of the "
		    "file");
	q->snap_bytes = pos - q->snap_off;
	return 0;
}

/* Open a file the image refers to, through its container, refusing
 * names that are not plain file names and loops through @chain. */
static int
open_referenced(struct qcow2 *q, const char *name, const char *what,
    const struct vs_chain *chain, struct vs_io **out)
{
	const char *slash = strchr(name, '/'), *colon = strchr(name, ':');
	struct vs_io *io = q->img.io;
	char shown[4 * MAX_NAME + 1];

	vs_escape(name, shown, sizeof(shown));
	if (strncmp(name, "json:", 5) == 0 || (colon && (!slash ||
	    colon < slash))) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "%s name '%s' is not a "
		    "plain file name: refused", what, shown);
		return -1;
	}
	if (!io->ops->open_ref) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "%s '%s' refused: files "
		    "named by this image are not followed", what, shown);
		return -1;
	}
	if (io->ops->open_ref(io, name, what, out) < 0)
		return -1;
	for (const struct vs_chain *c = chain; c; c = c->up)
		if ((*out)->ino && c->dev == (*out)->dev &&
		    c->ino == (*out)->ino) {
			vs_err(VS_EXIT_SOURCE, q->img.name, "%s '%s': the "
			    "backing chain loops", what, shown);
			vs_io_close(*out);
			*out = NULL;
			return -1;
		}
	return 0;
}

static int
open_backing(struct qcow2 *q, const struct hdr *h,
    const struct vs_chain *chain)
{
	struct vs_chain here = {
		.dev = q->img.io->dev, .ino = q->img.io->ino,
		.depth = chain ? chain->depth + 1 : 1, .up = chain,
	};
	char shown[4 * MAX_NAME + 1];
	struct vs_io *bio;

	if (!(q->backing_name = name_dup(h->c0 + h->backing_off,
	    h->backing_len)))
		return bad(q, "invalid backing file name");
	vs_escape(q->backing_name, shown, sizeof(shown));
	if (q->autoclear & QCOW2_AUTOCLEAR_DATA_RAW)
		return bad(q, "a raw external data file cannot have a "
		    "backing file");
	if (!q->backing_fmt) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "backing file '%s' has "
		    "no recorded format: refused (set it with qemu-img rebase "
		    "-u -F FMT)", shown);
		return -1;
	}
	if (strcmp(q->backing_fmt, "qcow2") != 0 &&
	    strcmp(q->backing_fmt, "raw") != 0) {
		char fmt_shown[4 * 64];

		vs_escape(q->backing_fmt, fmt_shown, sizeof(fmt_shown));
		vs_err(VS_EXIT_SOURCE, q->img.name, "backing file '%s': format "
		    "'%s' is not supported", shown, fmt_shown);
		return -1;
	}
	if (here.depth > QCOW2_MAX_CHAIN) {
		vs_err(VS_EXIT_SOURCE, q->img.name, "backing chain deeper than "
		    "%d images", QCOW2_MAX_CHAIN);
		return -1;
	}
	if (open_referenced(q, q->backing_name, "backing file", &here,
	    &bio) < 0)
		return -1;
	return vs_image_open_chain(bio, q->backing_fmt, &here, &q->backing);
}

/* The data file last said to be read live. */
static uint64_t warned_dev, warned_ino;

static int
open_data_file(struct qcow2 *q, const struct vs_chain *chain)
{
	struct vs_chain here = {
		.dev = q->img.io->dev, .ino = q->img.io->ino,
		.depth = chain ? chain->depth + 1 : 1, .up = chain,
	};

	if (!q->data_name)
		return bad(q, "external data file is not named in the "
		    "image");
	if (open_referenced(q, q->data_name, "data file", &here,
	    &q->data) < 0)
		return -1;
	/* A clone of the image (a btrfs source) is a point in time, but the
	 * data file is read where it is.  Said once for a data file, which
	 * the source's base, opened next, shares. */
	if (q->data->fd >= 0 && vs_qemu_locked(q->data->fd, VS_QEMU_HOLDS) &&
	    !(q->img.io->fd >= 0 && vs_qemu_locked(q->img.io->fd,
	    VS_QEMU_HOLDS)) && (q->data->dev != warned_dev ||
	    q->data->ino != warned_ino)) {
		char shown[4 * MAX_NAME + 1];

		warned_dev = q->data->dev;
		warned_ino = q->data->ino;
		vs_escape(q->data_name, shown, sizeof(shown));
		vs_warn(q->img.name, "a running VM (qemu) writes its data "
		    "file %s, which is read live, not from a point-in-time "
		    "clone: the copy may be torn (sync from a snapshot of "
		    "the VM)", shown);
	}
	return 0;
}

static int
check_state(struct qcow2 *q)
{
	if (q->incompat & QCOW2_INCOMPAT_CORRUPT)
		vs_warn(q->img.name, "image is marked corrupt; reading it "
		    "anyway (check it with qemu-img check)");
	if (q->incompat & QCOW2_INCOMPAT_DIRTY)
		vs_info(1, "%s: dirty bit set (not closed cleanly): the L1/L2 "
		    "tables are read, the refcounts are not needed",
		    q->img.name);
	return 0;
}

int
qcow2_open_image(struct vs_io *io, const struct vs_chain *chain,
    struct vs_image **out)
{
	struct qcow2 *q = calloc(1, sizeof(*q));
	struct hdr h = { 0 };
	uint8_t first[V3_HEADER_LEN + 8];
	uint32_t version;

	if (!q) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "open");
		return -1;
	}
	q->img.ops = &vs_format_qcow2;
	q->img.name = io->name;
	q->img.io = io;
	q->data = io;
	q->dbuf_host = UINT64_MAX;
	if (io->ops->pread(io, first, sizeof(first), 0) < 0)
		goto fail;
	if (qcow2_be32(first) != QCOW2_MAGIC) {
		bad(q, "not a qcow2 image");
		goto fail;
	}
	version = qcow2_be32(first + 4);
	/* Short reads come back zero-filled: say what is wrong (a version
	 * 2 header is 72 bytes, a version 3 header V3_HEADER_LEN). */
	if (io->size < 72 || (version == 3 && io->size < V3_HEADER_LEN)) {
		vs_err(VS_EXIT_SOURCE, io->name, "truncated: %llu bytes, "
		    "shorter than a qcow2 header", (unsigned long long)io->size);
		goto fail;
	}
	/* Version 1 (qcow) has no cluster size where 2 and 3 have one. */
	if (version != 2 && version != 3) {
		vs_err(VS_EXIT_SOURCE, io->name, "unsupported qcow2 version %u",
		    version);
		goto fail;
	}
	/* Cluster 0 holds the header, its extensions and the backing name. */
	{
		uint32_t cb = qcow2_be32(first + 20);

		if (cb < 9 || cb > 21) {
			vs_err(VS_EXIT_SOURCE, io->name,
			    "unsupported cluster size: 2^%u", cb);
			goto fail;
		}
		if (!(h.c0 = malloc(1ull << cb))) {
			vs_errno(VS_EXIT_INTERNAL, io->name, "header");
			goto fail;
		}
		if (io->ops->pread(io, h.c0, 1ull << cb, 0) < 0)
			goto fail;
	}
	if (parse_header(q, &h) < 0 || load_l1(q) < 0 ||
	    load_snapshots(q) < 0)
		goto fail;
	if ((q->incompat & QCOW2_INCOMPAT_DATA_FILE) &&
	    open_data_file(q, chain) < 0)
		goto fail;
	if (h.backing_off && h.backing_len && !io->alone &&
	    open_backing(q, &h, chain) < 0)
		goto fail;
	check_state(q);
	q->nslots = (size_t)vs_max(2, vs_min(16, (8u << 20) >>
	    q->cluster_bits));
	q->slots = calloc(q->nslots, sizeof(*q->slots));
	if (!q->slots) {
		vs_errno(VS_EXIT_INTERNAL, io->name, "L2 cache");
		goto fail;
	}
	free(h.c0);
	*out = &q->img;
	return 0;
fail:
	/* The caller closes @io on failure. */
	free(h.c0);
	if (q->data == io)
		q->data = NULL;
	q->img.io = NULL;
	qcow2_free(q);
	return -1;
}

void
qcow2_free(struct qcow2 *q)
{
	if (!q)
		return;
	for (size_t i = 0; q->slots && i < q->nslots; i++)
		free(q->slots[i].tbl);
	free(q->slots);
	free(q->l1);
	qcow2_l1vec_free(&q->snap_l1);
	vs_extent_vec_free(&q->hmap);
	vs_extent_vec_free(&q->tmp);
	vs_decomp_free(&q->dec);
	free(q->cbuf);
	free(q->dbuf);
	qcow2_live_free(q);
	vs_image_close(q->backing);
	if (q->data != q->img.io)
		vs_io_close(q->data);
	vs_io_close(q->img.io);
	free(q->backing_name);
	free(q->backing_fmt);
	free(q->data_name);
	free(q);
}
