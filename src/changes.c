/*
 * changes.c - unchanged blocks of a window, from placements and extents.
 */
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "physmap.h"
#include "util.h"

struct vs_changes {
	struct vs_image *img, *base;		/* new view, base */
	struct vs_physmap *pimg, *pbase;	/* their containers' extents */
	struct vs_place_vec pi, pb;		/* placements of a window */
	struct vs_extent_vec same;		/* same extents in both */
	struct vs_extent_vec bmap;		/* the base's map of it */
	struct vs_extent_vec types;		/* mapped alike in both */
};

int
vs_changes_open(struct vs_image *img, struct vs_image *base,
    struct vs_changes **out)
{
	struct vs_changes *c;

	if (!img->ops->place || img->ops != base->ops) {
		vs_err(VS_EXIT_SOURCE, img->name, "change detection does not "
		    "know where %s images store their data", img->ops->name);
		return -1;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		vs_errno(VS_EXIT_INTERNAL, img->name, "change detection");
		return -1;
	}
	c->img = img;
	c->base = base;
	if (vs_physmap_open(img->io->fd, img->name, &c->pimg) < 0 ||
	    vs_physmap_open(base->io->fd, base->name, &c->pbase) < 0) {
		vs_changes_close(c);
		return -1;
	}
	*out = c;
	return 0;
}

void
vs_changes_close(struct vs_changes *c)
{
	if (!c)
		return;
	vs_physmap_close(c->pimg);
	vs_physmap_close(c->pbase);
	vs_place_vec_free(&c->pi);
	vs_place_vec_free(&c->pb);
	vs_extent_vec_free(&c->same);
	vs_extent_vec_free(&c->bmap);
	vs_extent_vec_free(&c->types);
	free(c);
}

/* Image range [off, off + len), stored at @host in both containers: add
 * the parts where both hold the same extents. */
static int
compare_host(struct vs_changes *c, uint64_t off, uint64_t len, uint64_t host)
{
	uint64_t done = 0;

	while (done < len) {
		bool same;
		uint64_t n;

		if (vs_physmap_cmp(c->pimg, c->pbase, host + done, len - done,
		    &same, &n) < 0)
			return -1;
		if (same && vs_extent_add(&c->same, off + done, n,
		    VS_EXT_DATA) < 0) {
			vs_errno(VS_EXIT_INTERNAL, c->img->name, "extent map");
			return -1;
		}
		done += n;
	}
	return 0;
}

/* The unchanged ranges of [off, off + len) into c->same. */
static int
find_same(struct vs_changes *c, uint64_t off, uint64_t len)
{
	size_t i = 0, j = 0;

	vs_extent_vec_reset(&c->same);
	if (off >= c->base->size)
		return 0;
	if (vs_image_place(c->img, off, len, &c->pi) < 0 ||
	    vs_image_place(c->base, off, vs_min(len, c->base->size - off),
	    &c->pb) < 0)
		return -1;
	/* Walk both placements together. */
	while (i < c->pi.n && j < c->pb.n) {
		const struct vs_place *a = &c->pi.v[i], *b = &c->pb.v[j];
		uint64_t lo = vs_max(a->off, b->off);
		uint64_t hi = vs_min(a->off + a->len, b->off + b->len);

		if (lo < hi && a->host != VS_NOWHERE && b->host != VS_NOWHERE &&
		    a->host - a->off == b->host - b->off &&
		    compare_host(c, lo, hi - lo, a->host + (lo - a->off)) < 0)
			return -1;
		if (a->off + a->len == hi)
			i++;
		if (b->off + b->len == hi)
			j++;
	}
	return 0;
}

/* The ranges of [off, off + len) that @map and the base's map give the
 * same type, into c->types. */
static int
find_types(struct vs_changes *c, const struct vs_extent_vec *map,
    uint64_t off, uint64_t len)
{
	size_t i = 0, j = 0;

	vs_extent_vec_reset(&c->types);
	vs_extent_vec_reset(&c->bmap);
	if (off >= c->base->size)
		return 0;
	if (vs_image_map(c->base, off, vs_min(len, c->base->size - off),
	    &c->bmap) < 0)
		return -1;
	while (i < map->n && j < c->bmap.n) {
		const struct vs_extent *a = &map->v[i], *b = &c->bmap.v[j];
		uint64_t lo = vs_max(a->off, b->off);
		uint64_t hi = vs_min(a->off + a->len, b->off + b->len);

		if (lo < hi && a->type == b->type &&
		    vs_extent_add(&c->types, lo, hi - lo, VS_EXT_DATA) < 0) {
			vs_errno(VS_EXIT_INTERNAL, c->img->name, "extent map");
			return -1;
		}
		if (a->off + a->len == hi)
			i++;
		if (b->off + b->len == hi)
			j++;
	}
	return 0;
}

/* Does one range of @v (sorted, merged) cover [b0, b1)?  *@k: a cursor
 * for blocks in increasing order. */
static bool
covers(const struct vs_extent_vec *v, size_t *k, uint64_t b0, uint64_t b1)
{
	while (*k < v->n && v->v[*k].off + v->v[*k].len < b1)
		(*k)++;
	return *k < v->n && v->v[*k].off <= b0;
}

int
vs_changes_window(struct vs_changes *c, uint64_t off, uint64_t len,
    uint32_t bs, const struct vs_extent_vec *map, uint8_t *keep)
{
	size_t nb = (size_t)((len + bs - 1) / bs), k = 0, t = 0;

	memset(keep, 0, nb);
	if (find_same(c, off, len) < 0 || find_types(c, map, off, len) < 0)
		return -1;
	for (size_t i = 0; i < nb; i++) {
		uint64_t b0 = off + i * bs, b1 = vs_min(b0 + bs, off + len);

		keep[i] = covers(&c->same, &k, b0, b1) &&
		    covers(&c->types, &t, b0, b1);
	}
	return 0;
}
