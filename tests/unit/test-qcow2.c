/*
 * test-qcow2.c - the qcow2 reader on images built byte by byte in memory:
 * the map and the bytes of data, zero, unallocated, compressed (deflate
 * and zstd) and extended-L2 clusters; the file view's live bytes; every
 * header and table check refusing a hostile value with a source error;
 * and thousands of randomly damaged images opened, mapped and read
 * without a crash (AddressSanitizer watches under SANITIZE=1).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "formats/format.h"
#include "util.h"

#define CB	16
#define CS	(1u << CB)
#define NCL	12			/* clusters in the image */
#define VSIZE	(1ull << 30)		/* virtual size: 2 L1 entries */
#define EXTL2	1			/* build options */
#define ZSTD	2
#define V2	4

enum {
	C_HDR, C_RT, C_RB, C_L1, C_L2, C_A, C_B, C_Z, C_DEAD,
	C_SNAPTAB, C_SNAPL1, C_SNAPL2,	/* unused unless a test links them */
};

static uint8_t img[NCL * CS];
static uint8_t pat_a[CS], pat_b[CS], pat_c[CS];
static size_t zlen;		/* compressed bytes at C_Z */

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static size_t
deflate_raw(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	z_stream z = { 0 };
	size_t n;

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -12, 9,
	    Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

/* Entry of guest cluster @i in the L2 table (16 bytes with extended L2). */
static uint8_t *
l2(int i, int opts)
{
	return img + C_L2 * CS + (size_t)i * ((opts & EXTL2) ? 16 : 8);
}

/* A valid image: cluster 0 data A, 1 zero flag, 2 unallocated, 3 data B,
 * 4 compressed C; one unreferenced cluster full of old data. */
static void
build(int opts)
{
	uint8_t *h = img;
	uint64_t zoff = (uint64_t)C_Z * CS + 100;
	uint32_t x = 70 - CB;

	memset(img, 0, sizeof(img));
	fill(pat_a, CS, 1);
	fill(pat_b, CS, 2);
	for (size_t i = 0; i < CS; i++)		/* compressible */
		pat_c[i] = (uint8_t)("vmsync qcow2 "[i % 13]);
	put32(h, 0x514649fb);
	put32(h + 4, (opts & V2) ? 2 : 3);
	put32(h + 20, CB);
	put64(h + 24, VSIZE);
	put32(h + 36, 4);
	put64(h + 40, (uint64_t)C_L1 * CS);
	put64(h + 48, (uint64_t)C_RT * CS);
	put32(h + 56, 1);
	if (!(opts & V2)) {
		uint64_t incompat = 0;

		if (opts & EXTL2)
			incompat |= 1u << 4;
		if (opts & ZSTD) {
			incompat |= 1u << 3;
			h[104] = 1;
		}
		put64(h + 72, incompat);
		put32(h + 96, 4);
		put32(h + 100, 112);
	}
	put64(img + C_RT * CS, (uint64_t)C_RB * CS);
	put64(img + C_L1 * CS, (1ull << 63) | (uint64_t)C_L2 * CS);
	memcpy(img + C_A * CS, pat_a, CS);
	memcpy(img + C_B * CS, pat_b, CS);
	fill(img + C_DEAD * CS, CS, 9);
	if (opts & ZSTD)
		zlen = ZSTD_compress(img + zoff, CS - 100, pat_c, CS, 3);
	else
		zlen = deflate_raw(pat_c, CS, img + zoff, CS - 100);
	if (opts & EXTL2) {
		/* Cluster 0: subclusters 0-3 allocated, 4-7 zero. */
		put64(l2(0, opts), (uint64_t)C_A * CS);
		put64(l2(0, opts) + 8, 0x000000f00000000full);
		put64(l2(1, opts), 0);
		put64(l2(1, opts) + 8, 0xffffffff00000000ull);
		put64(l2(3, opts), (uint64_t)C_B * CS);
		put64(l2(3, opts) + 8, 0xffffffffull);
	} else {
		put64(l2(0, opts), (1ull << 63) | (uint64_t)C_A * CS);
		put64(l2(1, opts), (opts & V2) ? 0 : 1);
		put64(l2(3, opts), (1ull << 63) | (uint64_t)C_B * CS);
	}
	put64(l2(4, opts), (1ull << 62) |
	    ((uint64_t)((zlen + 100 + 511) / 512 - 1) << x) | zoff);
}

static int
reset(void **state)
{
	(void)state;
	vs_err_reset();
	build(0);
	return 0;
}

static int
open_img(struct vs_image **out)
{
	struct vs_io *io = NULL;

	assert_int_equal(vs_io_open_mem(img, sizeof(img), "mem.qcow2", &io),
	    0);
	*out = NULL;
	return vs_image_open(io, NULL, out);
}

static void
ext_is(const struct vs_extent_vec *v, size_t i, uint64_t off, uint64_t len,
    enum vs_extent_type type)
{
	if (i >= v->n)
		fail_msg("extent %zu missing", i);
	if (v->v[i].off != off || v->v[i].len != len || v->v[i].type != type)
		fail_msg("extent %zu is %llu+%llu type %d, want %llu+%llu "
		    "type %d", i, (unsigned long long)v->v[i].off,
		    (unsigned long long)v->v[i].len, v->v[i].type,
		    (unsigned long long)off, (unsigned long long)len, type);
}

/* Guest clusters 0-4 map and read as built. */
static void
check_guest(int opts)
{
	struct vs_extent_vec map = { 0 };
	struct vs_image *im;
	static uint8_t got[5 * CS], zero[CS];

	build(opts);
	assert_int_equal(open_img(&im), 0);
	assert_string_equal(im->ops->name, "qcow2");
	assert_int_equal(im->size, VSIZE);
	assert_int_equal(vs_image_map(im, 0, VSIZE, &map), 0);
	if (opts & EXTL2) {
		ext_is(&map, 0, 0, 8192, VS_EXT_DATA);
		ext_is(&map, 1, 8192, 3 * CS - 8192, VS_EXT_ZERO);
	} else {
		ext_is(&map, 0, 0, CS, VS_EXT_DATA);
		ext_is(&map, 1, CS, 2 * CS, VS_EXT_ZERO);
	}
	ext_is(&map, 2, 3 * CS, 2 * CS, VS_EXT_DATA);
	ext_is(&map, 3, 5 * CS, VSIZE - 5 * CS, VS_EXT_ZERO);
	assert_int_equal(map.n, 4);
	assert_int_equal(im->ops->read(im, got, sizeof(got), 0), 0);
	if (opts & EXTL2) {
		assert_memory_equal(got, pat_a, 8192);
		assert_memory_equal(got + 8192, zero, CS - 8192);
	} else {
		assert_memory_equal(got, pat_a, CS);
	}
	assert_memory_equal(got + CS, zero, CS);
	assert_memory_equal(got + 2 * CS, zero, CS);
	assert_memory_equal(got + 3 * CS, pat_b, CS);
	assert_memory_equal(got + 4 * CS, pat_c, CS);
	/* A read that starts and ends inside clusters. */
	assert_int_equal(im->ops->read(im, got, 3 * CS, CS / 2 + 3 * CS), 0);
	assert_memory_equal(got, pat_b + CS / 2, CS / 2);
	assert_memory_equal(got + CS / 2, pat_c, CS);
	vs_extent_vec_free(&map);
	vs_image_close(im);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

static void
test_guest_view(void **state)
{
	(void)state;
	check_guest(0);
}

static void
test_guest_view_zstd(void **state)
{
	(void)state;
	check_guest(ZSTD);
}

static void
test_guest_view_extended_l2(void **state)
{
	(void)state;
	check_guest(EXTL2);
}

/* Version 2: no zero flag; cluster 1 is unallocated instead. */
static void
test_guest_view_v2(void **state)
{
	(void)state;
	check_guest(V2);
}

/* The file view keeps metadata and referenced clusters, drops the rest. */
static void
test_file_view(void **state)
{
	struct vs_extent_vec map = { 0 };
	struct vs_image *im, *fv;
	static uint8_t got[NCL * CS], zero[CS];
	uint64_t zend = (uint64_t)C_Z * CS + 100 + zlen;

	(void)state;
	assert_int_equal(open_img(&im), 0);
	assert_int_equal(vs_fileview_open(im, &fv), 0);
	assert_int_equal(fv->size, sizeof(img));
	assert_int_equal(vs_image_map(fv, 0, fv->size, &map), 0);
	ext_is(&map, 0, 0, vs_align_up(zend, 4096), VS_EXT_DATA);
	ext_is(&map, 1, vs_align_up(zend, 4096),
	    sizeof(img) - vs_align_up(zend, 4096), VS_EXT_ZERO);
	assert_int_equal(fv->ops->read(fv, got, sizeof(got), 0), 0);
	assert_memory_equal(got, img, vs_align_up(zend, 4096));
	assert_memory_equal(got + C_DEAD * CS, zero, CS);
	vs_extent_vec_free(&map);
	vs_image_close(fv);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* A zero cluster that keeps its host cluster: the bytes are dead. */
static void
test_file_view_zero_alloc(void **state)
{
	struct vs_image *im, *fv;
	static uint8_t got[CS], zero[CS];

	(void)state;
	put64(l2(1, 0), (uint64_t)C_DEAD * CS | 1);
	assert_int_equal(open_img(&im), 0);
	assert_int_equal(vs_fileview_open(im, &fv), 0);
	assert_int_equal(fv->ops->read(fv, got, CS, C_DEAD * CS), 0);
	assert_memory_equal(got, zero, CS);
	vs_image_close(fv);
}

/* Snapshot L1 tables and their clusters are live too. */
static void
test_file_view_snapshot(void **state)
{
	struct vs_image *im, *fv;
	static uint8_t got[CS];
	uint8_t *e = img + C_SNAPTAB * CS;

	(void)state;
	/* One snapshot whose L1 -> L2 -> C_DEAD: that cluster is live now. */
	put32(img + 60, 1);
	put64(img + 64, (uint64_t)C_SNAPTAB * CS);
	put64(e, (uint64_t)C_SNAPL1 * CS);
	put32(e + 8, 2);
	put64(img + C_SNAPL1 * CS, (uint64_t)C_SNAPL2 * CS);
	put64(img + C_SNAPL2 * CS + 16, (uint64_t)C_DEAD * CS);
	assert_int_equal(open_img(&im), 0);
	assert_int_equal(vs_fileview_open(im, &fv), 0);
	assert_int_equal(fv->ops->read(fv, got, CS, C_DEAD * CS), 0);
	assert_memory_equal(got, img + C_DEAD * CS, CS);
	vs_image_close(fv);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* One hostile change: opening (or the first full map) is refused. */
struct mutation {
	const char *what;	/* for the failure message */
	size_t off;		/* where in the image */
	uint64_t val;		/* value written */
	int width;		/* 1, 4 or 8 bytes */
	int opts;		/* build options */
};

static const struct mutation mutations[] = {
	{ "version 4", 4, 4, 4, 0 },
	{ "cluster bits 8", 20, 8, 4, 0 },
	{ "cluster bits 22", 20, 22, 4, 0 },
	{ "header length 100", 100, 100, 4, 0 },
	{ "header length 108", 100, 108, 4, 0 },
	{ "header length past cluster", 100, CS + 8, 4, 0 },
	{ "AES", 32, 1, 4, 0 },
	{ "LUKS", 32, 2, 4, 0 },
	{ "unknown incompatible bit", 72, 1u << 5, 8, 0 },
	{ "compression type without bit", 104, 1, 1, 0 },
	{ "compression bit without type", 72, 1u << 3, 8, 0 },
	{ "compression type 2", 104, 2, 1, 0 },
	{ "refcount order 7", 96, 7, 4, 0 },
	{ "L1 too small", 36, 1, 4, 0 },
	{ "L1 huge", 36, 0x7fffffff, 4, 0 },
	{ "L1 unaligned", 40, C_L1 * CS + 8, 8, 0 },
	{ "L1 past EOF", 40, 1ull << 40, 8, 0 },
	{ "no refcount table", 56, 0, 4, 0 },
	{ "refcount table unaligned", 48, 512, 8, 0 },
	{ "refcount table huge", 56, 1u << 20, 4, 0 },
	{ "virtual size 2^63", 24, 1ull << 63, 8, 0 },
	{ "snapshots without table", 60, 1, 4, 0 },
	{ "too many snapshots", 60, 70000, 4, 0 },
	{ "backing name past cluster", 8, CS + 8, 8, 0 },
	{ "data file bit without name", 72, 1u << 2, 8, 0 },
	{ "extended L2 on small clusters", 20, 13, 4, EXTL2 },
	{ "L1 reserved bits", C_L1 * CS, (1ull << 63) | C_L2 * CS | 1, 8, 0 },
	{ "L2 table unaligned", C_L1 * CS, C_L2 * CS + 512, 8, 0 },
	{ "L2 table past EOF", C_L1 * CS, 1ull << 40, 8, 0 },
	{ "L2 reserved bits", C_L2 * CS, C_A * CS | 2, 8, 0 },
	{ "data past EOF", C_L2 * CS, 1ull << 40, 8, 0 },
	{ "zero flag in v2", C_L2 * CS + 8, 1, 8, V2 },
	{ "compressed past EOF", C_L2 * CS + 32, (1ull << 62) | (1ull << 40),
	  8, 0 },
	{ "extended L2 alloc and zero", C_L2 * CS + 8, 0x0000000100000001ull,
	  8, EXTL2 },
	{ "extended L2 alloc without host", C_L2 * CS + 24, 1, 8, EXTL2 },
	{ "extended L2 zero flag bit", C_L2 * CS, C_A * CS | 1, 8, EXTL2 },
	{ "extended L2 compressed with bitmap", C_L2 * CS + 72, 1, 8,
	  EXTL2 },
};

static void
poke(size_t off, uint64_t val, int width)
{
	if (width == 8)
		put64(img + off, val);
	else if (width == 4)
		put32(img + off, (uint32_t)val);
	else
		img[off] = (uint8_t)val;
}

static void
test_hostile(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mutations) / sizeof(mutations[0]);
	    i++) {
		const struct mutation *m = &mutations[i];
		struct vs_image *im = NULL;
		int rc;

		build(m->opts);
		poke(m->off, m->val, m->width);
		vs_err_reset();
		rc = open_img(&im);
		if (rc == 0) {
			rc = vs_image_validate(im);
			vs_image_close(im);
		}
		if (rc != -1 || vs_err_first() != VS_EXIT_SOURCE)
			fail_msg("%s: not refused as a source error (rc %d, "
			    "category %d)", m->what, rc, vs_err_first());
	}
}

/* Header extensions: overrun, repeats, encryption, bad bitmaps. */
static void
test_hostile_extensions(void **state)
{
	static const struct {
		const char *what;	/* for the failure message */
		uint32_t type, len;	/* the record */
		int twice;		/* write it twice */
	} ext[] = {
		{ "overrun", 0x12345678, CS, 0 },
		{ "repeated", 0xe2792aca, 5, 1 },
		{ "encryption header", 0x0537be77, 16, 0 },
		{ "bitmaps of 20 bytes", 0x23852875, 20, 0 },
		{ "bitmaps all zero", 0x23852875, 24, 0 },
		{ "data file without bit", 0x44415441, 4, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		struct vs_image *im = NULL;
		uint8_t *p = img + 112;

		build(0);
		for (int k = 0; k <= ext[i].twice; k++) {
			put32(p, ext[i].type);
			put32(p + 4, ext[i].len);
			if (ext[i].len < 64)
				memset(p + 8, 'a', ext[i].len);
			if (ext[i].type == 0x23852875)
				memset(p + 8, 0, ext[i].len);
			p += 8 + ((ext[i].len + 7) & ~7u);
		}
		vs_err_reset();
		if (open_img(&im) != -1 || vs_err_first() != VS_EXIT_SOURCE) {
			vs_image_close(im);
			fail_msg("extension %s: not refused", ext[i].what);
		}
	}
}

/* Untrusted backing names: protocols, json: and a missing format. */
static void
test_hostile_backing(void **state)
{
	static const char *names[] = {
		"json:{\"file.filename\":\"/etc/shadow\"}", "nbd:host:10809",
		"http://example.com/x", "no-format-recorded",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct vs_image *im = NULL;
		size_t len = strlen(names[i]);

		build(0);
		put64(img + 8, 512);
		put32(img + 16, (uint32_t)len);
		memcpy(img + 512, names[i], len);
		if (i < 3) {	/* format recorded: raw */
			put32(img + 112, 0xe2792aca);
			put32(img + 116, 3);
			memcpy(img + 120, "raw", 3);
		}
		vs_err_reset();
		if (open_img(&im) != -1 || vs_err_first() != VS_EXIT_SOURCE) {
			vs_image_close(im);
			fail_msg("backing '%s': not refused", names[i]);
		}
	}
}

/*
 * Containers of memory buffers that count their reads and open the files
 * an image refers to from a table of other buffers, as the file
 * container opens them from allowed directories.
 */
struct memfile {
	const char *name;	/* the name an image stores */
	const uint8_t *buf;	/* bytes */
	size_t len;		/* bytes in buf */
	uint64_t size;		/* size claimed (zeros past @len) */
	uint64_t ino;		/* identity, for loop checks */
};

struct tio {
	struct vs_io io;		/* base, first */
	const struct memfile *f;	/* its bytes */
	const struct memfile *dir;	/* what open_ref finds, or NULL */
	size_t ndir;			/* entries in dir */
	uint64_t count_lo, count_hi;	/* reads at offsets here counted */
	unsigned *counted;		/* the count, or NULL */
	unsigned *opened;		/* open_ref calls, or NULL */
};

static int
tio_pread(struct vs_io *io, void *buf, size_t len, uint64_t off)
{
	struct tio *t = (struct tio *)io;
	size_t n = off < t->f->len ? (size_t)vs_min(len, t->f->len - off) : 0;

	if (t->counted && off >= t->count_lo && off < t->count_hi)
		(*t->counted)++;
	memcpy(buf, t->f->buf + (n ? off : 0), n);
	memset((uint8_t *)buf + n, 0, len - n);
	return 0;
}

static int
tio_map(struct vs_io *io, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	(void)io;
	return vs_extent_add(out, off, len, VS_EXT_DATA);
}

static void
tio_drop_cache(struct vs_io *io, uint64_t off, uint64_t len)
{
	(void)io, (void)off, (void)len;
}

static void
tio_close(struct vs_io *io)
{
	(void)io;
}

static struct vs_io *tio_new(const struct memfile *f,
    const struct memfile *dir, size_t ndir, unsigned *opened);

static int
tio_open_ref(struct vs_io *io, const char *name, const char *what,
    struct vs_io **out)
{
	struct tio *t = (struct tio *)io;

	if (t->opened)
		(*t->opened)++;
	for (size_t i = 0; i < t->ndir; i++)
		if (strcmp(t->dir[i].name, name) == 0) {
			*out = tio_new(&t->dir[i], t->dir, t->ndir, t->opened);
			return 0;
		}
	vs_err(VS_EXIT_SOURCE, io->name, "%s %s: not found", what, name);
	return -1;
}

static const struct vs_io_ops tio_ops = {
	.pread = tio_pread,
	.map = tio_map,
	.drop_cache = tio_drop_cache,
	.close = tio_close,
	.open_ref = tio_open_ref,
};

static struct vs_io *
tio_new(const struct memfile *f, const struct memfile *dir, size_t ndir,
    unsigned *opened)
{
	struct tio *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->io.ops = &tio_ops;
	t->io.name = strdup(f->name);
	t->io.size = f->size ? f->size : f->len;
	t->io.fd = t->io.direct_fd = -1;
	t->io.ino = f->ino;
	t->f = f;
	t->dir = dir;
	t->ndir = ndir;
	t->opened = opened;
	return &t->io;
}

/* Name @name, format @fmt, as the backing file of the image in img[]. */
static void
set_backing(const char *name, const char *fmt)
{
	put64(img + 8, 512);
	put32(img + 16, (uint32_t)strlen(name));
	memcpy(img + 512, name, strlen(name));
	put32(img + 112, 0xe2792aca);
	put32(img + 116, (uint32_t)strlen(fmt));
	memcpy(img + 120, fmt, strlen(fmt));
}

/* A chain top -> mid (qcow2) -> base (raw), all in memory: what the top
 * leaves unallocated is read from the mid image, and what that leaves
 * from the raw base, zeros past its end. */
static void
test_backing_chain_in_memory(void **state)
{
	static uint8_t mid[sizeof(img)], base[3 * CS], pat_d[CS];
	static uint8_t got[4 * CS], zero[CS];
	const struct memfile files[] = {
		{ "top.qcow2", img, sizeof(img), 0, 1 },
		{ "mid.qcow2", mid, sizeof(mid), 0, 2 },
		{ "../base/base.raw", base, sizeof(base), 0, 3 },
	};
	struct vs_extent_vec map = { 0 };
	struct vs_image *im;
	unsigned opened = 0;

	(void)state;
	fill(pat_d, CS, 4);
	memset(base, 0x77, sizeof(base));
	memcpy(base + 2 * CS, pat_d, CS);
	set_backing("../base/base.raw", "raw");
	put64(l2(3, 0), 0);		/* cluster 3: from base, past its end */
	memcpy(mid, img, sizeof(mid));
	build(0);
	set_backing("mid.qcow2", "qcow2");
	assert_int_equal(vs_image_open(tio_new(&files[0], files, 3, &opened),
	    NULL, &im), 0);
	assert_int_equal(opened, 2);
	assert_int_equal(vs_image_map(im, 0, 4 * CS, &map), 0);
	ext_is(&map, 0, 0, CS, VS_EXT_DATA);
	ext_is(&map, 1, CS, CS, VS_EXT_ZERO);
	ext_is(&map, 2, 2 * CS, 2 * CS, VS_EXT_DATA);
	assert_int_equal(im->ops->read(im, got, sizeof(got), 0), 0);
	assert_memory_equal(got, pat_a, CS);
	assert_memory_equal(got + CS, zero, CS);
	assert_memory_equal(got + 2 * CS, pat_d, CS);	/* the base's */
	assert_memory_equal(got + 3 * CS, pat_b, CS);	/* the top's */
	vs_extent_vec_free(&map);
	vs_image_close(im);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* A chain that comes back to its top is refused, in memory too. */
static void
test_backing_loop_in_memory(void **state)
{
	const struct memfile files[] = {
		{ "a.qcow2", img, sizeof(img), 0, 7 },
	};
	struct vs_image *im = NULL;

	(void)state;
	set_backing("a.qcow2", "qcow2");
	assert_int_equal(vs_image_open(tio_new(&files[0], files, 1, NULL),
	    NULL, &im), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	assert_true(strstr(vs_err_text(), "loops") != NULL);
}

/* A container that cannot open files refuses every backing name. */
static void
test_backing_not_followed(void **state)
{
	struct vs_image *im = NULL;

	(void)state;
	set_backing("base.raw", "raw");
	assert_int_equal(open_img(&im), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	assert_true(strstr(vs_err_text(), "'base.raw'") != NULL);
}

/*
 * Many snapshots sharing L2 tables (512-byte clusters, a file claiming
 * 64 GiB): the file view walks each L2 table once, counted as reads of
 * its offset through the container, whatever the number of L1 tables
 * naming it -- copies of the active one, or the active one again with
 * other sizes.
 */
#define S_CB	9
#define S_CS	(1u << S_CB)
#define S_K	64			/* L2 tables */
#define S_N	1000			/* snapshots */
#define S_L2	4			/* first L2 table cluster */
#define S_DATA	(S_L2 + S_K)
#define S_TAB	(S_DATA + 1)		/* snapshot table */
#define S_TABCL	((S_N * 40 + S_CS - 1) / S_CS)
#define S_COPY	(S_TAB + S_TABCL)	/* snapshot L1 copies */
#define S_NCL	(S_COPY + S_N / 2)

static void
build_snapshots(uint8_t *b)
{
	memset(b, 0, (size_t)S_NCL * S_CS);
	put32(b, 0x514649fb);
	put32(b + 4, 3);
	put32(b + 20, S_CB);
	put64(b + 24, (uint64_t)S_K << (2 * S_CB - 3));
	put32(b + 36, S_K);
	put64(b + 40, 3ull * S_CS);
	put64(b + 48, 1ull * S_CS);
	put32(b + 56, 1);
	put32(b + 60, S_N);
	put64(b + 64, (uint64_t)S_TAB * S_CS);
	put32(b + 96, 4);
	put32(b + 100, 104);
	put64(b + S_CS, 2ull * S_CS);
	for (int i = 0; i < S_K; i++) {
		put64(b + 3 * S_CS + 8 * i,
		    (1ull << 63) | (uint64_t)(S_L2 + i) * S_CS);
		put64(b + (size_t)(S_L2 + i) * S_CS,
		    (1ull << 63) | (uint64_t)S_DATA * S_CS);
	}
	for (int i = 0; i < S_N; i++) {
		uint8_t *e = b + (size_t)S_TAB * S_CS + 40 * (size_t)i;
		uint64_t l1 = 3ull * S_CS;

		if (i % 2) {
			l1 = (uint64_t)(S_COPY + i / 2) * S_CS;
			memcpy(b + l1, b + 3 * S_CS, S_CS);
		}
		put64(e, l1);
		put32(e + 8, i % 2 ? S_K : S_K - (uint32_t)(i / 2) % S_K);
	}
}

static void
test_snapshots_walk_l2_once(void **state)
{
	static uint8_t b[S_NCL * S_CS];
	const struct memfile f = { "snaps.qcow2", b, sizeof(b), 64ull << 30,
	    1 };
	struct vs_image *im, *fv;
	unsigned reads = 0;
	struct tio *t;

	(void)state;
	build_snapshots(b);
	t = (struct tio *)tio_new(&f, NULL, 0, NULL);
	assert_int_equal(vs_image_open(&t->io, NULL, &im), 0);
	t->count_lo = (uint64_t)S_L2 * S_CS;
	t->count_hi = (uint64_t)(S_L2 + S_K) * S_CS;
	t->counted = &reads;
	assert_int_equal(vs_fileview_open(im, &fv), 0);
	if (reads != S_K)
		fail_msg("%u reads of the %d L2 tables", reads, S_K);
	vs_image_close(fv);
	assert_int_equal(vs_err_first(), VS_EXIT_OK);
}

/* A compressed cluster whose stream is garbage fails the read cleanly. */
static void
test_bad_compressed_data(void **state)
{
	struct vs_image *im;
	static uint8_t got[CS];

	(void)state;
	memset(img + C_Z * CS + 100, 0xff, 64);
	assert_int_equal(open_img(&im), 0);
	assert_int_equal(vs_image_validate(im), 0);
	assert_int_equal(im->ops->read(im, got, CS, 4 * CS), -1);
	assert_int_equal(vs_err_first(), VS_EXIT_SOURCE);
	vs_image_close(im);
}

/* Random damage to the metadata: never a crash, only clean refusals. */
static void
test_random_damage(void **state)
{
	struct vs_extent_vec map = { 0 };
	static uint8_t got[6 * CS];
	uint32_t x = 12345;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		int opts = iter % 3 == 0 ? EXTL2 : iter % 3 == 1 ? ZSTD : 0;
		struct vs_image *im = NULL, *fv = NULL;
		int flips;

		build(opts);
		x = x * 1103515245 + 12345;
		flips = 1 + (int)((x >> 16) % 6);
		for (int k = 0; k < flips; k++) {
			size_t where;

			x = x * 1103515245 + 12345;
			/* Mostly the header and tables, sometimes anywhere. */
			where = (x >> 8) % ((x & 3) ? 5 * CS / 16 : sizeof(img));
			if ((x & 3) && where >= 128)
				where = (where % 4) * CS + (where % 512);
			x = x * 1103515245 + 12345;
			img[where] ^= (uint8_t)(1u << ((x >> 16) % 8));
		}
		vs_err_reset();
		if (open_img(&im) < 0)
			goto check;
		if (vs_image_validate(im) == 0 &&
		    im->size >= sizeof(got))
			(void)im->ops->read(im, got, sizeof(got), 0);
		if (vs_fileview_open(im, &fv) == 0) {
			(void)vs_image_map(fv, 0, fv->size, &map);
			(void)fv->ops->read(fv, got, vs_min(sizeof(got),
			    fv->size), 0);
			vs_image_close(fv);
		}
check:
		if (vs_err_first() != VS_EXIT_OK &&
		    vs_err_first() != VS_EXIT_SOURCE)
			fail_msg("iteration %d: error category %d", iter,
			    vs_err_first());
	}
	vs_extent_vec_free(&map);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset)
	const struct CMUnitTest tests[] = {
		T(test_guest_view),
		T(test_guest_view_zstd),
		T(test_guest_view_extended_l2),
		T(test_guest_view_v2),
		T(test_file_view),
		T(test_file_view_zero_alloc),
		T(test_file_view_snapshot),
		T(test_hostile),
		T(test_hostile_extensions),
		T(test_hostile_backing),
		T(test_backing_chain_in_memory),
		T(test_backing_loop_in_memory),
		T(test_backing_not_followed),
		T(test_snapshots_walk_l2_once),
		T(test_bad_compressed_data),
		T(test_random_damage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
