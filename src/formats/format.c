/*
 * format.c - choose a format by content, and check what formats answer.
 *
 * Formats vmsync does not read yet are still recognised by their magic, so
 * that a qcow2 or vmdk file is refused by name instead of being copied as
 * if it were a raw disk.
 */
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "../util.h"

#define PROBE_LEN 4096
#define MAP_STEP (256ull << 20)		/* bytes mapped at once, at first */
#define MAP_STEP_MAX (MAP_STEP << 6)	/* ... and at most (map_all()) */

/* Every format vmsync reads, most specific first; raw comes last. */
static const struct vs_format_ops *const formats[] = {
	&vs_format_qcow2,
	&vs_format_raw,
	/* Never probed: only by name or --format (choose.c). */
	&vs_format_vmdk,
	&vs_format_vdi,
	&vs_format_vhdx,
	&vs_format_vpc,
	&vs_format_qed,
};

/* Formats recognised but not read (yet): magic at offset 0. */
static const struct {
	const char *name;	/* as qemu-img names it */
	const char *magic;	/* bytes at offset 0 */
	size_t len;		/* magic length */
} foreign[] = {
	{ "qed", "QED\0", 4 },
	{ "vmdk", "KDMV", 4 },
	{ "vmdk", "# Disk DescriptorFile", 21 },
	{ "vdi", "<<< ", 4 },
	{ "vhdx", "vhdxfile", 8 },
	{ "vpc", "conectix", 8 },
	{ "luks", "LUKS\xba\xbe", 6 },
};

static const char *
probe_foreign(const uint8_t *head, size_t len)
{
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		if (len >= foreign[i].len &&
		    memcmp(head, foreign[i].magic, foreign[i].len) == 0)
			return foreign[i].name;
	return NULL;
}

int
vs_image_open(struct vs_io *io, const char *forced, struct vs_image **out)
{
	return vs_image_open_chain(io, forced, NULL, out);
}

int
vs_image_open_chain(struct vs_io *io, const char *forced,
    const struct vs_chain *chain, struct vs_image **out)
{
	const struct vs_format_ops *fmt = NULL;
	uint8_t head[PROBE_LEN];
	size_t len = (size_t)vs_min(sizeof(head), io->size);
	const char *other;

	if (forced) {
		for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
			if (strcmp(formats[i]->name, forced) == 0)
				fmt = formats[i];
		if (!fmt) {
			vs_err(VS_EXIT_SOURCE, io->name,
			    "format '%s' is not supported", forced);
			goto fail;
		}
		goto open;
	}
	if (io->ops->pread(io, head, len, 0) < 0)
		goto fail;
	other = probe_foreign(head, len);
	for (size_t i = 0; !fmt && i < sizeof(formats) / sizeof(formats[0]); i++)
		if (formats[i]->probe(head, len) &&
		    (!other || strcmp(other, formats[i]->name) == 0))
			fmt = formats[i];
	if (other && (!fmt || strcmp(fmt->name, other) != 0)) {
		vs_err(VS_EXIT_SOURCE, io->name,
		    "%s image: this format is not supported yet "
		    "(use --format=raw to copy the file as it is)", other);
		goto fail;
	}
open:
	if (fmt->open(io, chain, out) < 0)
		goto fail;
	return 0;
fail:
	vs_io_close(io);
	return -1;
}

void
vs_image_close(struct vs_image *img)
{
	if (img)
		img->ops->close(img);
}

int
vs_image_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	vs_extent_vec_reset(out);
	if (img->ops->map(img, off, len, out) < 0)
		return -1;
	if (vs_extent_check(out, off, len) != 0) {
		vs_err(VS_EXIT_INTERNAL, img->name,
		    "offset %llu: %s map does not cover the range asked for",
		    (unsigned long long)off, img->ops->name);
		return -1;
	}
	return 0;
}

typedef int place_fn(struct vs_image *, uint64_t, uint64_t,
    struct vs_place_vec *);

static int
checked_place(struct vs_image *img, place_fn *fn, const char *what,
    uint64_t off, uint64_t len, struct vs_place_vec *out)
{
	uint64_t pos = off;
	size_t i = 0;

	vs_place_vec_reset(out);
	if (fn(img, off, len, out) < 0)
		return -1;
	for (; i < out->n; i++) {
		const struct vs_place *p = &out->v[i];

		if (p->off != pos || p->len == 0 || p->len > off + len - pos)
			break;
		pos += p->len;
	}
	if (i != out->n || pos != off + len) {
		vs_err(VS_EXIT_INTERNAL, img->name, "offset %llu: %s %s "
		    "does not cover the range asked for",
		    (unsigned long long)off, img->ops->name, what);
		return -1;
	}
	return 0;
}

int
vs_image_place(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	return checked_place(img, img->ops->place, "placement", off, len,
	    out);
}

int
vs_image_locate(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	return checked_place(img, img->ops->locate, "location", off, len,
	    out);
}

/* Map all of @img, adding the bytes it maps as DATA to *@data.  A range
 * that maps as one extent is followed by one twice as long, up to
 * MAP_STEP_MAX; any other answer goes back to MAP_STEP.  So a long hole
 * or run of data costs a call per MAP_STEP_MAX, not per MAP_STEP (an
 * archive entry may declare 2^62 bytes: 2^34 steps of MAP_STEP), while a
 * reply still holds the extents of at most MAP_STEP_MAX bytes, 64 steps.
 * A signal (vs_interrupted) stops it between calls. */
static int
map_all(struct vs_image *img, uint64_t *data)
{
	struct vs_extent_vec map = { 0 };
	uint64_t step = MAP_STEP, len;
	int rc = 0;

	for (uint64_t off = 0; off < img->size && rc == 0; off += len) {
		if (vs_interrupted) {
			vs_err(VS_EXIT_PARTIAL, img->name, "interrupted");
			rc = -1;
			break;
		}
		len = vs_min(step, img->size - off);
		rc = vs_image_map(img, off, len, &map);
		for (size_t i = 0; rc == 0 && i < map.n; i++)
			if (map.v[i].type == VS_EXT_DATA)
				*data += map.v[i].len;
		step = map.n == 1 ? vs_min(2 * step, MAP_STEP_MAX) : MAP_STEP;
	}
	vs_extent_vec_free(&map);
	return rc;
}

int
vs_image_validate(struct vs_image *img)
{
	uint64_t data = 0;

	return map_all(img, &data);
}

int
vs_image_data_bytes(struct vs_image *img, uint64_t *data)
{
	*data = 0;
	return map_all(img, data);
}

int
vs_extent_add(struct vs_extent_vec *vec, uint64_t off, uint64_t len,
    enum vs_extent_type type)
{
	struct vs_extent *last = vec->n ? &vec->v[vec->n - 1] : NULL;

	if (len == 0)
		return 0;
	if (last && last->type == type && last->off + last->len == off) {
		last->len += len;
		return 0;
	}
	return vs_extent_vec_push(vec,
	    (struct vs_extent){ .off = off, .len = len, .type = type });
}

int
vs_place_add(struct vs_place_vec *vec, uint64_t off, uint64_t len,
    uint64_t host)
{
	struct vs_place *last = vec->n ? &vec->v[vec->n - 1] : NULL;

	if (len == 0)
		return 0;
	if (last && last->off + last->len == off &&
	    (last->host == VS_NOWHERE ? host == VS_NOWHERE :
	    host != VS_NOWHERE && last->host + last->len == host)) {
		last->len += len;
		return 0;
	}
	return vs_place_vec_push(vec,
	    (struct vs_place){ .off = off, .len = len, .host = host });
}

int
vs_place_identity(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	if (vs_place_add(out, off, len, off) < 0) {
		vs_errno(VS_EXIT_INTERNAL, img->name, "placement");
		return -1;
	}
	return 0;
}

int
vs_extent_check(const struct vs_extent_vec *vec, uint64_t off, uint64_t len)
{
	uint64_t pos = off, end;

	if (!vs_add_ok(off, len, &end))
		return -1;
	for (size_t i = 0; i < vec->n; i++) {
		const struct vs_extent *e = &vec->v[i];
		uint64_t e_end;

		if (e->off != pos || e->len == 0 ||
		    !vs_add_ok(e->off, e->len, &e_end) || e_end > end ||
		    (e->type != VS_EXT_DATA && e->type != VS_EXT_ZERO))
			return -1;
		pos = e_end;
	}
	return pos == end ? 0 : -1;
}
