/*
 * fileview.c - an image's container as the thing to sync, minus dead bytes.
 *
 * The file view of a qcow2 image is the qcow2 file itself, except that
 * bytes no metadata refers to (clusters the guest discarded, which the host
 * file often still holds) read as zeros and map as holes.  Any format with
 * a host_live op gets it; the map is the container's allocation
 * intersected with the live ranges.
 */
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "../util.h"

struct fileview {
	struct vs_image img;		/* base, first */
	struct vs_image *inner;		/* the format image, owned */
	struct vs_extent_vec alloc;	/* container allocation scratch */
	struct vs_extent_vec live;	/* live ranges scratch */
};

static int
live_of(struct fileview *v, uint64_t off, uint64_t len)
{
	vs_extent_vec_reset(&v->live);
	if (v->inner->ops->host_live(v->inner, off, len, &v->live) < 0)
		return -1;
	if (vs_extent_check(&v->live, off, len) != 0) {
		vs_err(VS_EXIT_INTERNAL, v->img.name, "offset %llu: live map "
		    "does not cover the range asked for",
		    (unsigned long long)off);
		return -1;
	}
	return 0;
}

static int
fileview_map(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_extent_vec *out)
{
	struct fileview *v = (struct fileview *)img;

	vs_extent_vec_reset(&v->alloc);
	if (img->io->ops->map(img->io, off, len, &v->alloc) < 0)
		return -1;
	for (size_t i = 0; i < v->alloc.n; i++) {
		const struct vs_extent *a = &v->alloc.v[i];

		if (a->type != VS_EXT_DATA) {
			if (vs_extent_add(out, a->off, a->len, a->type) < 0)
				goto nomem;
			continue;
		}
		if (live_of(v, a->off, a->len) < 0)
			return -1;
		for (size_t j = 0; j < v->live.n; j++)
			if (vs_extent_add(out, v->live.v[j].off,
			    v->live.v[j].len, v->live.v[j].type) < 0)
				goto nomem;
	}
	return 0;
nomem:
	vs_errno(VS_EXIT_INTERNAL, img->name, "extent map");
	return -1;
}

static int
fileview_read(struct vs_image *img, void *buf, size_t len, uint64_t off)
{
	struct fileview *v = (struct fileview *)img;

	if (img->io->ops->pread(img->io, buf, len, off) < 0 ||
	    live_of(v, off, len) < 0)
		return -1;
	for (size_t i = 0; i < v->live.n; i++)
		if (v->live.v[i].type == VS_EXT_ZERO)
			memset((uint8_t *)buf + (v->live.v[i].off - off), 0,
			    v->live.v[i].len);
	return 0;
}

/* Live bytes are the container's own; dead ones only read() zeros. */
static int
fileview_locate(struct vs_image *img, uint64_t off, uint64_t len,
    struct vs_place_vec *out)
{
	struct fileview *v = (struct fileview *)img;

	if (live_of(v, off, len) < 0)
		return -1;
	for (size_t i = 0; i < v->live.n; i++) {
		const struct vs_extent *e = &v->live.v[i];

		if (vs_place_add(out, e->off, e->len, e->type == VS_EXT_DATA ?
		    e->off : VS_NOWHERE) < 0) {
			vs_errno(VS_EXIT_INTERNAL, img->name, "placement");
			return -1;
		}
	}
	return 0;
}

static void
fileview_drop_cache(struct vs_image *img, uint64_t off, uint64_t len)
{
	img->io->ops->drop_cache(img->io, off, len);
}

static void
fileview_close(struct vs_image *img)
{
	struct fileview *v = (struct fileview *)img;

	vs_image_close(v->inner);
	vs_extent_vec_free(&v->alloc);
	vs_extent_vec_free(&v->live);
	free(v);
}

static const struct vs_format_ops fileview_ops = {
	.name = "file",
	.close = fileview_close,
	.map = fileview_map,
	.read = fileview_read,
	.drop_cache = fileview_drop_cache,
	.place = vs_place_identity,
	.locate = fileview_locate,
};

int
vs_fileview_open(struct vs_image *inner, struct vs_image **out)
{
	const char *ext = inner->ops->external ?
	    inner->ops->external(inner) : NULL;
	struct fileview *v;

	if (!inner->ops->host_live) {	/* raw: the file is the disk */
		*out = inner;
		return 0;
	}
	if (ext) {
		vs_err(VS_EXIT_SOURCE, inner->name, "guest data lives in the "
		    "external data file %s, which a copy of this file would "
		    "not include: use -O raw", ext);
		vs_image_close(inner);
		return -1;
	}
	if (!(v = calloc(1, sizeof(*v)))) {
		vs_errno(VS_EXIT_INTERNAL, inner->name, "open");
		vs_image_close(inner);
		return -1;
	}
	v->img.ops = &fileview_ops;
	v->img.name = inner->name;
	v->img.size = inner->io->size;
	v->img.io = inner->io;
	v->inner = inner;
	/* Find the live bytes now: a damaged image is refused before the
	 * target is touched. */
	if (live_of(v, 0, v->img.size ? 1 : 0) < 0) {
		fileview_close(&v->img);
		return -1;
	}
	*out = &v->img;
	return 0;
}

uint64_t
vs_fileview_guest_size(const struct vs_image *img)
{
	if (img->ops != &fileview_ops)
		return 0;
	return ((const struct fileview *)img)->inner->size;
}
